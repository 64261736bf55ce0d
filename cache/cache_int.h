/*
 * Private to the files of cache/: the memory tier's interface (cache_mem.c),
 * and the on-disk layout of the LMDB store (cache_store.c,
 * cache_record.c).  Nothing outside cache/ and its unit tests includes
 * this header, but for tests/bench/bench_mem_evict, which drives the
 * memory tier as the store does.
 */
#ifndef CACHE_INT_H
#define CACHE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"

/* ================= cache_obj.c ================= */

/* Smallest allocation for a chunk that is being appended to. */
#define CACHE_OBJ_MIN_CHUNK 256

/* ================= cache_slab.c ================= */

/* Larger blocks come from malloc. */
#define CACHE_SLAB_MAX CACHE_OBJ_SMALL_MAX

/*
 * <n> bytes for something the memory tier may keep (an object's head, a
 * small body, a tier entry), aligned as malloc's.  Any thread; NULL if
 * memory runs out.  Give it back with cache_slab_free(p, n), with the
 * same <n>.
 */
void *cache_slab_alloc(size_t n);
/* Give back cache_slab_alloc(n)'s <p> (NULL: nothing). */
void cache_slab_free(void *p, size_t n);
/* Bytes a block of <n> bytes takes, for the tier's accounting. */
size_t cache_slab_cost(size_t n);
/* Bytes of the runs the classes hold now: partly or wholly used, and the
 * few each keeps empty (the rest of a mapped region is untouched, or was
 * given back, so it costs no memory). */
uint64_t cache_slab_bytes(void);
/* Bytes of runs given back to the system so far (a count that only
 * grows: fast growth is a class taking and giving back runs in turn). */
uint64_t cache_slab_given_back(void);

/* ================= cache_objfd.c ================= */

/* Bytes a sealed body holds: whole pages of its file. */
size_t cache_objfd_footprint(const struct cache_obj *o);
/* Unmap and close the sealed body of <o>, which is being freed. */
void cache_objfd_release(struct cache_obj *o);

/* ================= the memory tier (cache_mem.c) ================= */

/*
 * A byte-bounded, sharded S3-FIFO cache of cache_obj references and of
 * the Vary rules of primary keys, plus "tombstones" for primary keys whose
 * removal is queued for LMDB but not yet committed (so that no tier serves
 * them in between).  Every function may be called from any thread.
 */
struct cache_mem;

#define CACHE_MEM_SHARDS 16 /* what the store uses; a power of two */

/*
 * A memory tier of <budget_bytes> over <nshards> (a power of two) shards,
 * each with budget_bytes / nshards.  Never fails (small fixed allocations).
 */
struct cache_mem *cache_mem_new(uint64_t budget_bytes, unsigned nshards);
/* Drops every reference held.  NULLs *mp. */
void cache_mem_free(struct cache_mem **mp);
/* Footprint of the largest object a shard admits. */
uint64_t cache_mem_admit_max(struct cache_mem *m);

/*
 * Look up (key, variant).  CDN_OK: *objp holds one new reference (a hit;
 * the entry's frequency is bumped).  CDN_NOTFOUND: not in memory; then
 * *is_removed tells that a removal of the key is pending (LMDB must not be
 * asked), and *genp is the shard's generation to pass to
 * cache_mem_promote() after reading LMDB.
 */
int cache_mem_get(struct cache_mem *m, const uint8_t key[CACHE_HASH_LEN],
    uint64_t variant, struct cache_obj **objp, int *is_removed,
    uint64_t *genp) CDN_WUR;

/*
 * Insert a newly stored object (takes its own reference), replacing any
 * entry for the same (key, variant); an object too large to be admitted
 * still removes the old entry.  Updates the key's Vary rule to o->vary.
 * Returns 1 if the tier now holds <o> (admitted, or pinned), else 0.
 */
int cache_mem_put(struct cache_mem *m, struct cache_obj *o, int pin);
/* With <pin>, an object too large to admit is kept anyway (never evicted)
 * until cache_mem_unpin(): the writer thread calls it once it has written
 * (or dropped) the object, which LMDB then serves. */
void cache_mem_unpin(struct cache_mem *m, const struct cache_obj *o);

/* <o>, stored in LMDB alone (its body is not in memory), replaces the
 * entry for its (key, variant): drop that entry, set the key's Vary rule
 * to o->vary.  <o> itself is not kept. */
void cache_mem_forget(struct cache_mem *m, const struct cache_obj *o);

/*
 * Insert an object read from LMDB, unless the shard changed since
 * cache_mem_get() returned <gen> (a put or a removal raced with the read)
 * or the key is already present.  Takes its own reference.
 */
void cache_mem_promote(struct cache_mem *m, struct cache_obj *o, uint64_t gen);

/*
 * The Vary rule of a primary key as far as memory knows.  CDN_OK: copied
 * (CDN_ELIMIT if longer than <cap>; *len is the full length either way).
 * CDN_NOTFOUND: known to have no Vary (or a removal is pending).
 * CDN_AGAIN: unknown, ask LMDB, then cache_mem_set_vary() with *genp.
 */
int cache_mem_get_vary(struct cache_mem *m, const uint8_t key[CACHE_HASH_LEN],
    char *buf, size_t cap, size_t *len, uint64_t *genp) CDN_WUR;
/* Does memory hold an object of any variant of <key> (one that may not
 * be in LMDB yet, or at all)?  Vary rules and removals do not count. */
int cache_mem_has_obj(struct cache_mem *m, const uint8_t key[CACHE_HASH_LEN]);
/* Remember the Vary rule read from LMDB (vary == NULL: none), if the shard
 * has not changed since <gen>. */
void cache_mem_set_vary(struct cache_mem *m, const uint8_t key[CACHE_HASH_LEN],
    const char *vary, size_t vary_len, uint64_t gen);

/*
 * Drop every variant and the Vary rule of <key> and leave a tombstone
 * tagged <seq> (the writer queue's sequence number of the removal) until
 * cache_mem_unmark() reports the removal committed.
 */
void cache_mem_remove(
    struct cache_mem *m, const uint8_t key[CACHE_HASH_LEN], uint64_t seq);
/* The removal tagged <seq> has committed: drop the tombstone unless a later
 * removal of the same key re-tagged it. */
void cache_mem_unmark(
    struct cache_mem *m, const uint8_t key[CACHE_HASH_LEN], uint64_t seq);

struct cache_mem_stats {
	uint64_t objects;   /* object entries */
	uint64_t bytes;     /* footprint: entries, objects, tables */
	uint64_t evictions; /* object entries evicted for space */
	uint64_t budget;    /* bytes */
};
void cache_mem_stats(struct cache_mem *m, struct cache_mem_stats *st);

/* ================= purge rules (cache_purge.c) ================= */

/* The purge rules known to one process: a hash table of (kind, name) ->
 * (hard seq, soft seq).  Not locked: cache_store_purge.c locks around it. */
struct cache_rules;
struct cache_rules *cache_rules_new(void);
void cache_rules_free(struct cache_rules **rp);
void cache_rules_add(struct cache_rules *r, int kind, const void *name,
    size_t len, uint64_t hard, uint64_t soft);
/* CACHE_PURGED_HARD, CACHE_PURGED_SOFT or 0 for <o>. */
int cache_rules_match(const struct cache_rules *r, const struct cache_obj *o);

/* ========== the LMDB store (cache_store.c, cache_record.c) ========== */

/*
 * Named databases of the environment.  Integers in keys are big-endian so
 * that LMDB's byte order is numeric order; integers in values are
 * little-endian.
 *   objects  hash(16) variant(8)           -> object record (below)
 * variant: the top byte is the content coding (enum cache_enc), the other
 * 56 bits the Vary secondary key (cache_variant_id), so every coding and
 * Vary variant of one URL lies under its hash(16) prefix.
 *   bodies   hash(16) variant(8) chunk(4)  -> up to CACHE_CHUNK_SIZE bytes
 *   vary     hash(16)                      -> Vary value of the latest store
 *   lru      bucket(4) seq(8)              -> hash(16) variant(8)
 *   lru_pos  hash(16) variant(8)           -> bucket(4) seq(8), for
 *                                             version 1 records only
 *   meta     "format"                      -> format record
 *            "usage"                       -> usage record
 *            "purge_seq"                   -> u64 last purge sequence no.
 *   purge_rules kind(1) name               -> u64 hard seq, u64 soft seq
 *   purge_log   seq(8) item(4)             -> kind(1) soft(1) name
 *   tags     tag (MDB_DUPSORT)             -> hash(16) variant(8), one per
 *                                             object stored with the tag
 * bucket: minutes since the epoch of the last recorded access; seq: a
 * store-wide counter, so that one bucket is in write order.
 */
#define CACHE_DB_OBJECTS     "objects"
#define CACHE_DB_BODIES      "bodies"
#define CACHE_DB_VARY        "vary"
#define CACHE_DB_LRU         "lru"
#define CACHE_DB_LRU_POS     "lru_pos"
#define CACHE_DB_META        "meta"
#define CACHE_DB_PRULES      "purge_rules"
#define CACHE_DB_PLOG        "purge_log"
#define CACHE_DB_TAGS        "tags"
#define CACHE_PURGE_SEQ_FILE "purge.seq"

#define CACHE_OBJKEY_LEN   (CACHE_HASH_LEN + 8)
#define CACHE_CHUNKKEY_LEN (CACHE_OBJKEY_LEN + 4)
#define CACHE_LRUKEY_LEN   12
#define CACHE_LRU_BUCKET_S 60 /* seconds per access-time bucket */

/*
 * The object record (version 2), little-endian:
 *    0 u32 magic CACHE_REC_MAGIC     4 u16 version     6 u16 flags
 *    8 u64 XXH3-64 of bytes [16, end), seeded with XXH3-64 of the key
 *          XOR bytes [0, 8) as a little-endian u64
 *   16 i32 status                   20 u32 nchunks
 *   24 i64 freshness_s  32 i64 initial_age_s  40 i64 swr_s  48 i64 sie_s
 *   56 i64 response_time  64 i64 stored_at  72 u64 purge_gen
 *   80 u64 body_len  88 u32 url_len  92 u32 fields_len  96 u32 vary_len
 *  100 u32 tags_len (0 in records written before tags existed)
 *  104 url, fields, vary, tags, then nchunks u64 XXH3-64 of each chunk's
 *      bodies value, nchunks u16 tail lengths, the tails' bytes, and
 *      last the object's lru key (12 bytes), which the checksum leaves
 *      out: a touch moves it in place.
 * flags: bit 0 storable, 1 must_revalidate, 2 no_cache, 3 heuristic,
 *        4 derived (a coding this node made from another variant); bits
 *        8-15 the generation of its chunks' keys (CACHE_CHUNK_GEN_SHIFT).
 * Chunk i of a body is its bodies value (absent if empty) followed by
 * its tail, kept in the record: the value's length is then a whole
 * number of LMDB overflow pages less their 16-byte header, so no page is
 * left part empty, and a body shorter than a page's payload is read with
 * its record (cache_record_plan).  Version 1 (format 1 stores) has no
 * tail lengths and no tails: every chunk is whole in its bodies value;
 * such records are read as they are, and their lru key is in lru_pos.
 */
#define CACHE_REC_MAGIC     0x4f42c3e5u
#define CACHE_REC_VERSION   2
#define CACHE_REC_VERSION_1 1
#define CACHE_REC_HDR_LEN   104
#define CACHE_REC_CSUM_AT   8
#define CACHE_REC_CSUM_FROM 16

/* Key of the objects db for (key, variant). */
void cache_record_objkey(uint8_t out[CACHE_OBJKEY_LEN],
    const uint8_t key[CACHE_HASH_LEN], uint64_t variant);
/*
 * Key of the bodies db for chunk <i> of (key, variant) in generation
 * <gen>: the object key, then a big-endian u32 of the generation in its
 * high byte and the chunk's number below.  A record says which generation
 * its chunks are in (the high byte of its flags; 0 in records written
 * before generations existed, whose chunks are under generation 0), so
 * that a new copy of an object can be written while a reader still reads
 * the old one's chunks (cache_pin.c).
 */
#define CACHE_CHUNK_GEN_SHIFT 24
#define CACHE_CHUNK_GEN_MAX   255u
#define CACHE_CHUNKS_MAX      (UINT32_C(1) << CACHE_CHUNK_GEN_SHIFT)
void cache_record_chunkkey(uint8_t out[CACHE_CHUNKKEY_LEN],
    const uint8_t key[CACHE_HASH_LEN], uint64_t variant, unsigned gen,
    uint32_t i);

/* ================= LMDB's meta pages (cache_lmdb_meta.c) ================= */

/* What the newer of data.mdb's two meta pages says. */
struct cache_lmdb_meta {
	uint64_t last_pgno; /* the last page in use */
	uint64_t txnid;     /* the last commit's */
	uint64_t mapsize;   /* the map's size when it was written */
	uint32_t psize;     /* bytes per page */
};

/*
 * Read the meta pages of the data.mdb open as <fd> with pread(2), as
 * mdb_env_open does before it maps the file, and keep the newer (the
 * larger txnid).  0 and *m filled; ENOENT if the file is empty (LMDB makes
 * a new environment of it); MDB_INVALID if a meta page is short, not a
 * meta page, of another magic or of a page size LMDB does not write;
 * MDB_VERSION_MISMATCH for another data version; an errno value if a read
 * fails.  *m is untouched on failure.
 */
int cache_lmdb_meta_read(int fd, struct cache_lmdb_meta *m);

/* ================= damage (cache_damage.c) ================= */

#define CACHE_DAMAGE_FILE "damaged"    /* the marker: why, one line */
#define CACHE_LOCK_FILE   "store.lock" /* flock: shared while open */

/*
 * How deep the calling thread is inside the store's LMDB work (a
 * transaction, the environment's opening): a fatal signal raised there
 * marks the cache damaged.  Thread-local, so the hit path pays one
 * increment and one decrement of a thread's own word.
 */
extern _Thread_local unsigned cache_lmdb_depth;

static inline void
cache_lmdb_enter(void)
{
	cache_lmdb_depth++;
	atomic_signal_fence(memory_order_seq_cst);
}

static inline void
cache_lmdb_leave(void)
{
	atomic_signal_fence(memory_order_seq_cst);
	cache_lmdb_depth--;
}

/*
 * Arm the fatal-signal handler (SIGSEGV, SIGBUS, SIGABRT; installed once
 * per process, chaining to what was there) for the cache directory open
 * as <dirfd>: a fault raised while cache_lmdb_depth > 0 leaves
 * CACHE_DAMAGE_FILE in it before the process dies.  One directory per
 * process is armed at a time: the last one.  disarm forgets <dirfd> if it
 * is the armed one (before the caller closes it).
 */
void cache_damage_arm(int dirfd);
void cache_damage_disarm(int dirfd);
/* Leave the marker with <why> in <dirfd> (not from a signal handler). */
void cache_damage_mark(int dirfd, const char *why);
/* 1 and its line in <why> if <dirfd> holds the marker, 0 if not. */
int cache_damage_marked(int dirfd, char *why, size_t cap);
/*
 * Open <dir>'s CACHE_LOCK_FILE and hold a shared lock on it, checking
 * that the directory was not moved aside meanwhile.  CDN_OK and the fd
 * in *fdp; CDN_EIO with errno set.
 */
int cache_damage_lock_shared(const char *dir, int *fdp);
/*
 * Is data.mdb in <dirfd> at least <need> bytes long?  CDN_OK, or
 * CDN_ECORRUPT with the sizes in <why>.
 */
int cache_damage_check_size(int dirfd, uint64_t need, char *why, size_t cap);

#endif /* CACHE_INT_H */
