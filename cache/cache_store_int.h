/*
 * Private to the files of the LMDB store (listed in cache_store.c): the
 * struct cache_store that they share, the writer queue's messages, the
 * streams, and the functions one of them calls in another, grouped by the
 * file that defines them.  The store's design is in cache_store.c; the
 * on-disk layout in cache_int.h.
 */
#ifndef CACHE_STORE_INT_H
#define CACHE_STORE_INT_H

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "cache/cache.h"
#include "cache/cache_int.h"
#include "common/cdn_ratelog.h"

#define CACHE_STORE_MAGIC 0x71c0d5b2u

/* The meta records "format" and "usage" (cache_int.h). */
#define STORE_FORMAT_MAGIC   0x46534543u /* "CESF" */
#define STORE_FORMAT_VERSION 2
#define STORE_FORMAT_1       1 /* read as it is (cache_int.h, version 1) */
#define STORE_USAGE_MAGIC    0x55534543u /* "CESU" */
#define STORE_USAGE_LEN      40

/* The writer thread's name (at most 15 bytes, the kernel's limit). */
#define CACHE_WRITER_THREAD_NAME "cache-writer"

#define STORE_FREE_DBI 0 /* LMDB's own databases: the freelist */
#define STORE_MAIN_DBI 1 /* ... and the one naming the others */

#define W_BATCH_MSGS     1024 /* writer messages per transaction, at most */
#define W_BATCH_MSGS_MIN 128  /* the least a small store batches */

enum wmsg_kind {
	W_PUT = 1,
	W_REMOVE,
	W_TOUCH,
	W_DELETE,
	W_CHUNK,        /* a chunk of a streamed body (and its record) */
	W_STREAM_ABORT, /* delete a streamed body that did not end */
	W_UNPIN,        /* the last reader of a chunk generation left */
};

enum stream_state {
	STREAM_OPEN = 0,
	STREAM_STORED = 1,
	STREAM_FAILED = -1,
};

/*
 * A body streamed to LMDB (cache/cache.h).  The caller's thread queues its
 * chunks (queued, ended); the writer thread writes them, fills in sums[i]
 * and chunk i's tail in tailbuf, and then publishes committed past i with
 * a release store, so a reader that sees committed > i may read both.  mu
 * serialises the wake callback with cache_stream_set_wake().
 */
struct cache_stream {
	uint32_t magic;
#define CACHE_STREAM_MAGIC 0x5e3a81c7u
	atomic_uint refcnt;
	struct cache_store *s;
	struct cache_obj *obj; /* the object's metadata: one reference */
	uint64_t body_len;
	uint32_t nchunks;
	uint64_t *sums;   /* nchunks: the writer's */
	uint16_t *tails;  /* nchunks: the record's share (cache_record_plan) */
	uint8_t *tailbuf; /* their bytes: the writer's */
	_Atomic uint32_t committed;
	atomic_int state; /* enum stream_state */
	pthread_mutex_t mu;
	void (*wake)(void *arg); /* (mu) */
	void *wake_arg;
	uint32_t queued; /* the caller's thread */
	int ended;       /* the caller's thread */
	unsigned gen;    /* its chunks' generation: the writer's */
	/* The writer's: on s->streams from its first chunk on, holding a
	 * reference; clobbered once anything else deleted or wrote its key
	 * and variant (its chunks may be gone or someone else's). */
	struct cache_stream *wnext;
	unsigned listed : 1;
	unsigned clobbered : 1;
};

/* One queued write.  Owned by the queue, then by the writer. */
struct wmsg {
	struct wmsg *next;
	int kind;
	int attempts;
	int is_dropped; /* given up: not applied */
	int is_applied; /* committed */
	uint8_t key[CACHE_HASH_LEN];
	uint64_t variant; /* W_TOUCH, W_DELETE, W_UNPIN */
	unsigned gen;     /* W_UNPIN: the chunk generation */
	uint32_t bucket;  /* W_PUT, W_TOUCH */
	uint64_t seq;
	uint64_t enq_ms;
	uint64_t bytes;        /* charged to s->qbytes */
	struct cache_obj *obj; /* W_PUT: one reference */
	/* W_CHUNK, W_STREAM_ABORT */
	struct cache_stream *st; /* one reference */
	uint32_t chunk;
	const void *data; /* borrowed until release(rel_arg) */
	size_t len;
	void (*release)(void *arg);
	void *rel_arg;
	unsigned last : 1;        /* the record goes with this chunk */
	unsigned end_dropped : 1; /* the record was not written */
};

/*
 * Pins (cache_pin.c): the objects whose chunks readers are sending, and
 * what the writer's open transaction deleted.
 */
#define CACHE_PIN_BUCKETS   64
#define CACHE_PIN_GEN_BYTES ((CACHE_CHUNK_GEN_MAX + 1) / 8)
#define CACHE_PIN_CLAIMS    W_BATCH_MSGS
#define CACHE_PIN_MAX_MS    (10 * 60 * 1000) /* a pin protects this long */
struct pin_entry;
struct pin_claim {
	uint8_t hv[CACHE_OBJKEY_LEN];
	uint8_t kept[CACHE_PIN_GEN_BYTES]; /* bit per generation */
};
struct cache_pins {
	pthread_mutex_t mtx;
	struct pin_entry *tab[CACHE_PIN_BUCKETS];  /* (mtx) */
	atomic_size_t count;                       /* entries in tab */
	struct pin_claim claims[CACHE_PIN_CLAIMS]; /* (mtx) */
	size_t nclaims;                            /* (mtx) */
	int is_claims_full; /* (mtx) more deletions than claims: no pin */
};

struct cache_store {
	uint32_t magic;
	uint64_t id; /* unique in the process, for the kept read txns */
	char *dir;
	uint64_t disk_bytes;
	uint64_t max_object_bytes;
	uint64_t max_disk_object;
	uint64_t high_bytes, low_bytes;
	uint64_t batch_bytes;
	size_t batch_msgs; /* (qmtx) messages per transaction now */
	uint64_t squeeze_bytes;

	MDB_env *env;
	MDB_dbi db_obj, db_body, db_vary, db_lru, db_lru_pos, db_meta;
	MDB_dbi db_prules, db_plog, db_tags;
	size_t psize;
	pthread_rwlock_t map_lock;
	/* Written through its map (cache_store_reserve.c); the fields below
	 * it are the writing thread's, under LMDB's write lock. */
	int is_mapped;
	int data_fd;             /* LMDB's own descriptor of data.mdb */
	uint64_t reserved_pages; /* data.mdb allocated up to here, at least */
	uint64_t room_pages;     /* what the write txn may reach, at most */
	uint64_t op_pages;       /* ... per tree operation */
	uint64_t tag_op_pages;   /* ... per one of the tag index */
	int reserve_overrun;     /* a commit went past: logged */
	int dirfd;               /* the directory, for the damage marker */
	int lock_fd;             /* CACHE_LOCK_FILE, flock shared while open */
	atomic_int damaged;

	struct cache_mem *mem;

	pthread_mutex_t qmtx;
	pthread_cond_t qcond;
	pthread_cond_t dcond;
	struct wmsg *qhead, **qtail;
	size_t qcount;
	uint64_t qbytes;
	uint64_t qchunk_bytes; /* of W_CHUNK messages */
	size_t qlasts;         /* W_CHUNK messages with a record */
	uint64_t enq_seq;
	uint64_t done_seq;
	uint64_t sync_req, sync_done, sync_seq;
	int stop;
	pthread_t writer;

	struct cache_pins pins;

	/* writer thread only */
	struct cache_stream *streams; /* bodies being streamed */
	uint64_t lru_seq;
	uint64_t used_bytes;
	uint64_t dup_pages;   /* the tag index's sub-databases, last counted */
	uint64_t dup_entries; /* ... with this many tag index entries */
	int dirty;
	uint64_t last_env_sync_ms;
	struct cdn_ratelog wfail;  /* the episode of failing writes */
	struct cdn_ratelog rmlost; /* ... and of removals it dropped */
	int sync_failed;           /* the last mdb_env_sync failed */
	int batch_failed;          /* a write failed for the current batch */

	_Atomic int w_fault; /* enum store_fault; any thread reads it */

	_Atomic uint64_t st_objects, st_bytes, st_puts, st_put_drops,
	    st_evictions, st_map_full, st_corrupt, st_io;
	_Atomic int64_t clock_skew_s;
	_Atomic uint64_t removals; /* cache_store_remove() calls */

	/* Purges (see cache_store_purge.c).  purge_page maps the shared
	 * CACHE_PURGE_SEQ_FILE: its first u64 is the newest purge seq any
	 * process committed and synced.  rules_lock covers rules;
	 * reload_mtx serialises reloads (lock order: reload_mtx, map_lock,
	 * rules_lock). */
	_Atomic uint64_t *purge_page;
	int purge_fd;
	_Atomic uint64_t rules_seq; /* purge seq the rules are loaded up to */
	struct cache_rules *rules;
	pthread_rwlock_t rules_lock;
	pthread_mutex_t reload_mtx;
	_Atomic uint64_t st_purged_hard, st_purged_soft;
};

/* ================= byte helpers ================= */

static inline void
put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void
put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void
put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t
get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t
get_le32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static inline uint64_t
get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static inline void
put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static inline void
put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static inline uint32_t
get_be32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 0; i < 4; i++)
		v = (v << 8) | p[i];
	return v;
}

static inline uint64_t
get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

/* Bytes of chunk <i> of a body of <body_len> bytes. */
static inline size_t
cache_chunk_len(uint64_t body_len, uint32_t i)
{
	uint64_t left = body_len - (uint64_t)i * CACHE_CHUNK_SIZE;

	return left < CACHE_CHUNK_SIZE ? (size_t)left : CACHE_CHUNK_SIZE;
}

/* An MDB_val over borrowed bytes (LMDB does not write through it). */
static inline MDB_val
mval(const void *p, size_t len)
{
	MDB_val v;

	v.mv_size = len;
	v.mv_data = (void *)(uintptr_t)p;
	return v;
}

/* ================= cache_store.c ================= */

static inline int
cache_store_is_damaged(struct cache_store *s)
{
	return atomic_load_explicit(&s->damaged, memory_order_relaxed);
}

/* LMDB found no room: the map is full, or the transaction's pages are. */
static inline int
cache_store_is_full(int rc)
{
	return rc == MDB_MAP_FULL || rc == MDB_TXN_FULL;
}

int cache_store_txn_begin(
    struct cache_store *s, unsigned flags, MDB_txn **txnp) CDN_WUR;
/* A write transaction refused for want of disk (cache_store_reserve.c)
 * gives one of these errno codes, not logged: its caller says why. */
static inline int
cache_store_is_unreserved(int rc)
{
	return rc == ENOSPC || rc == EFBIG || rc == EDQUOT;
}
void cache_store_txn_abort(struct cache_store *s, MDB_txn **txnp);
/* A read transaction with the calling thread's kept one (cache_store.c). */
int cache_store_read_begin(struct cache_store *s, MDB_txn **txnp) CDN_WUR;
void cache_store_read_end(struct cache_store *s, MDB_txn **txnp);
/* Is the calling thread inside cache_store_read_hold(s)? */
int cache_store_read_held(struct cache_store *s);
int cache_store_txn_commit(struct cache_store *s, MDB_txn **txnp);
int cache_store_lmdb_check(struct cache_store *s, int rc);
uint64_t cache_store_used_bytes(struct cache_store *s, MDB_txn *txn);
/* The writer, after a commit: the exact used bytes, or <est> (see there). */
uint64_t cache_store_count_pages(struct cache_store *s, uint64_t est);
uint64_t cache_store_object_count(struct cache_store *s, MDB_txn *txn);
/* The LRU bucket (CACHE_LRU_BUCKET_S) of now, with the test clock skew. */
uint32_t cache_store_now_bucket(struct cache_store *s);

/* ================= cache_store_reserve.c ================= */

/* With data.mdb's descriptor: does it take fallocate(2)?  0 or errno. */
int cache_store_reserve_probe(struct cache_store *s);
int cache_store_reserve_begin(struct cache_store *s, MDB_txn *txn) CDN_WUR;
int cache_store_reserve_more(struct cache_store *s, uint64_t pages) CDN_WUR;
void cache_store_reserve_check(struct cache_store *s, size_t txnid);
void cache_store_reserve_release(struct cache_store *s);

/*
 * Before a tree operation of the write transaction that can add <bytes>
 * of value: the pages it can take are reserved in data.mdb (see
 * cache_store_reserve.c).  0, or an errno code: the operation must not
 * run, and the transaction is to be aborted.
 */
static inline int
cache_store_room(struct cache_store *s, MDB_dbi dbi, size_t bytes)
{
	if (!s->is_mapped)
		return 0;
	s->room_pages += dbi == s->db_tags ? s->tag_op_pages : s->op_pages;
	if (bytes > 0)
		s->room_pages += bytes / s->psize + 1; /* overflow pages */
	if (s->room_pages <= s->reserved_pages)
		return 0;
	return cache_store_reserve_more(s, s->room_pages);
}

/* mdb_put, mdb_del and mdb_cursor_del of the store's write transactions:
 * each makes its room first. */
static inline int
store_mdb_put(struct cache_store *s, MDB_txn *txn, MDB_dbi dbi, MDB_val *k,
    MDB_val *v, unsigned flags)
{
	int rc = cache_store_room(s, dbi, v->mv_size);

	return rc != 0 ? rc : mdb_put(txn, dbi, k, v, flags);
}

static inline int
store_mdb_del(
    struct cache_store *s, MDB_txn *txn, MDB_dbi dbi, MDB_val *k, MDB_val *v)
{
	int rc = cache_store_room(s, dbi, 0);

	return rc != 0 ? rc : mdb_del(txn, dbi, k, v);
}

static inline int
store_mdb_cursor_del(struct cache_store *s, MDB_cursor *cur, unsigned flags)
{
	int rc = cache_store_room(s, mdb_cursor_dbi(cur), 0);

	return rc != 0 ? rc : mdb_cursor_del(cur, flags);
}

/* ================= cache_record.c ================= */

/* A decoded object record (cache_int.h); borrows the record's bytes. */
struct cache_record_view {
	unsigned flags;
	unsigned chunk_gen; /* its chunks' generation (cache_int.h) */
	int status;
	uint32_t nchunks;
	int64_t freshness_s, initial_age_s, swr_s, sie_s;
	int64_t response_time, stored_at;
	uint64_t purge_gen;
	uint64_t body_len;
	const char *url, *fields, *vary, *tags;
	uint32_t url_len, fields_len, vary_len, tags_len;
	const uint8_t *sums;      /* nchunks little-endian u64 */
	const uint8_t *tail_lens; /* nchunks little-endian u16; NULL: none */
	const uint8_t *tails;     /* their bytes, in chunk order */
	const uint8_t *lru;       /* its lru key; NULL: in lru_pos (v1) */
};

uint64_t cache_record_seed(const uint8_t hv[CACHE_OBJKEY_LEN]);
uint64_t cache_record_chunk_sum(
    uint64_t seed, uint32_t i, const void *p, size_t len);
/* Bytes of the record of <o> with <nchunks> chunks and <tails> bytes of
 * tails. */
size_t cache_record_len(
    const struct cache_obj *o, uint32_t nchunks, size_t tails);
/*
 * Which bytes of a body of <body_len> bytes in <nchunks> chunks its record
 * keeps, in an environment of <psize>-byte pages, for a record of
 * <base_len> bytes without them: the tail of each chunk in tails[i]
 * (cache_int.h).  Returns their sum.
 */
size_t cache_record_plan(uint64_t body_len, uint32_t nchunks, size_t base_len,
    size_t psize, uint16_t *tails);
void cache_record_encode(uint8_t *p, const struct cache_obj *o,
    const uint8_t hv[CACHE_OBJKEY_LEN], unsigned gen, uint32_t nchunks,
    const uint64_t *sums, const uint16_t *tails, const uint8_t *tailbuf,
    const uint8_t lk[CACHE_LRUKEY_LEN]);
int cache_record_decode(const uint8_t *p, size_t len,
    const uint8_t hv[CACHE_OBJKEY_LEN], struct cache_record_view *v) CDN_WUR;
/* The tail of chunk <i> of a decoded record: its length, its bytes. */
size_t cache_record_tail_len(const struct cache_record_view *v, uint32_t i);
const uint8_t *cache_record_tail(const struct cache_record_view *v, uint32_t i);
int cache_record_to_obj(const struct cache_record_view *rv,
    const uint8_t key[CACHE_HASH_LEN], uint64_t variant,
    struct cache_obj **op) CDN_WUR;

/* ================= cache_objdb.c ================= */

/* Each returns 0 or an LMDB code, as their callers hand it on. */
/* <kept>: NULL, or the chunk generations to leave (cache_pins_claim). */
int cache_objdb_delete(struct cache_store *s, MDB_txn *txn,
    const uint8_t hv[CACHE_OBJKEY_LEN], int clean_vary, const uint8_t *kept,
    int *existed);
int cache_objdb_write_record(struct cache_store *s, MDB_txn *txn,
    const struct cache_obj *o, const uint8_t hv[CACHE_OBJKEY_LEN], unsigned gen,
    uint32_t nchunks, const uint64_t *sums, const uint16_t *tails,
    const uint8_t *tailbuf, uint32_t bucket);
int cache_objdb_write(
    struct cache_store *s, MDB_txn *txn, struct cache_obj *o, uint32_t bucket);
int cache_objdb_remove_key(
    struct cache_store *s, MDB_txn *txn, const uint8_t key[CACHE_HASH_LEN]);
int cache_objdb_touch(struct cache_store *s, MDB_txn *txn,
    const uint8_t hv[CACHE_OBJKEY_LEN], uint32_t bucket);
int cache_objdb_key_count(struct cache_store *s, MDB_txn *txn,
    const uint8_t key[CACHE_HASH_LEN], uint64_t *n);
int cache_objdb_tag_count(struct cache_store *s, MDB_txn *txn, const char *tag,
    size_t len, uint64_t *n);

/* ================= cache_writer.c ================= */

/* What cache_store_failing() says, by enum store_fault. */
extern const char *const cache_writer_fault_meaning[];
void *cache_writer_main(void *arg);
struct wmsg *cache_writer_msg_new(
    int kind, const uint8_t key[CACHE_HASH_LEN], uint64_t variant);
void cache_writer_msg_free(struct wmsg **mp);
int cache_writer_enqueue(struct cache_store *s, struct wmsg *m, int tomb);
int cache_writer_commit(struct cache_store *s, MDB_txn **txnp);
void cache_writer_failed(
    struct cache_store *s, const char *what, int rc, uint64_t need);

/* ================= cache_evict.c ================= */

void cache_evict_make_room(struct cache_store *s, uint64_t need, int squeeze,
    struct wmsg **v, size_t n);

/* ================= cache_store_read.c ================= */

/*
 * The bodies value of chunk <i> of the object <hv> in chunk generation
 * <gen>, which must hold <part> bytes with checksum <sum> (<seed>:
 * cache_record_seed(hv)), in *v, borrowing the map until <txn> ends.
 * 0, CDN_ECORRUPT for a value of the wrong size or sum, or an LMDB code
 * (MDB_NOTFOUND: no such chunk).
 */
int cache_store_chunk_get(struct cache_store *s, MDB_txn *txn,
    const uint8_t hv[CACHE_OBJKEY_LEN], unsigned gen, uint32_t i, size_t part,
    uint64_t seed, uint64_t sum, MDB_val *v);
/* A read's mdb_get failed with <rc> (not MDB_NOTFOUND): logged, counted
 * in st_io, checked for damage (cache_store_lmdb_check).  CDN_EIO. */
int cache_store_read_failed(struct cache_store *s, int rc);

/* ================= cache_store_purge.c ================= */

void cache_store_purge_reload(struct cache_store *s);
int cache_store_purge_verdict_slow(
    struct cache_store *s, struct cache_obj *o, uint64_t seq);
int cache_store_purge_load_rules(struct cache_store *s, MDB_txn *txn);
void cache_store_purge_publish(struct cache_store *s, uint64_t seq);

/*
 * The two purge checks of every lookup, inline because they are on the
 * hit path: without a purge since the object's fill began they cost two
 * loads and two compares.  See cache_store_purge.c.
 */

/* If a purge was published since the rules were loaded, load it. */
static inline void
cache_store_purge_refresh(struct cache_store *s)
{
	if (atomic_load_explicit(s->purge_page, memory_order_acquire) >
	    atomic_load_explicit(&s->rules_seq, memory_order_acquire))
		cache_store_purge_reload(s);
}

/* The purge verdict for <o> (CACHE_PURGED_* or 0), cached in <o>. */
static inline int
cache_store_purge_verdict(struct cache_store *s, struct cache_obj *o)
{
	uint64_t seq =
	    atomic_load_explicit(&s->rules_seq, memory_order_acquire);

	/* No purge since the fill began: the usual case. */
	if (o->purge_gen >= seq)
		return 0;
	return cache_store_purge_verdict_slow(s, o, seq);
}

/* ================= cache_pin.c ================= */

void cache_pins_init(struct cache_pins *p);
void cache_pins_fini(struct cache_pins *p);
/* Does any reader pin anything (or is a deletion pending)? */
int cache_pins_any(struct cache_store *s);
/* Does a reader still within CACHE_PIN_MAX_MS pin any generation of <hv>?
 * (Eviction skips it.) */
int cache_pins_held(struct cache_store *s, const uint8_t hv[CACHE_OBJKEY_LEN]);
/*
 * The writer is about to delete the chunks of <hv>, or write a new copy
 * of it, in its open transaction: the generations whose chunks must stay
 * in kept[] (a bit each), and a generation no pin holds for the new copy
 * (returned).  Noted until cache_pins_txn_end, so that no reader pins
 * what the transaction deleted.
 */
int cache_pins_claim(struct cache_store *s, const uint8_t hv[CACHE_OBJKEY_LEN],
    uint8_t kept[CACHE_PIN_GEN_BYTES]);
/* The writer's transaction ended (committed or not). */
void cache_pins_txn_end(struct cache_store *s);
/* Apply W_UNPIN <m> in <txn>: delete the generation's chunks unless a
 * reader came back, or the stored record or a stream uses them. */
int cache_pins_drop(struct cache_store *s, MDB_txn *txn, const struct wmsg *m);
/* A W_UNPIN that was not applied: forget the entry if it has no reader
 * (its chunks stay until the key is deleted). */
void cache_pins_forget(struct cache_store *s, const uint8_t key[CACHE_HASH_LEN],
    uint64_t variant, unsigned gen);

/* ================= cache_stream.c (the writer's side) ================= */

int cache_stream_apply(struct cache_store *s, MDB_txn *txn, struct wmsg *m);
int cache_stream_delete(
    struct cache_store *s, MDB_txn *txn, struct cache_stream *st);
void cache_stream_unlist(struct cache_store *s, struct cache_stream *st);
void cache_stream_wake(struct cache_stream *st);
void cache_stream_publish(struct wmsg *m);

#endif /* CACHE_STORE_INT_H */
