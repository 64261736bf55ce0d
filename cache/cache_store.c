/*
 * The store (cache/cache.h "the store"): the memory tier (cache_mem.c) in
 * front of one LMDB environment, written by one writer thread.
 *
 * Threads and locks.
 *  - Workers call cache_store_get/get_vary (reads), put/remove/touch
 *    (enqueue only) and stats, concurrently.  A read takes s->map_lock
 *    shared, opens an MDB_RDONLY transaction, copies what it needs and ends
 *    the transaction before returning: no read transaction outlives a call.
 *    Read transactions use LMDB's default thread-local reader slots (no
 *    MDB_NOTLS), so after a thread's first read no read takes LMDB's
 *    reader-table mutex; a thread never holds two transactions.
 *  - The writer thread (cache_writer_main) is the only one that writes.  It
 *    owns s->lru_seq, s->used_bytes, s->dirty, s->last_env_sync_ms.
 *  - s->qmtx covers the queue (qhead, qtail, qcount, qbytes), the sequence
 *    numbers (enq_seq, done_seq) and the sync handshake (sync_req,
 *    sync_seq, sync_done) and s->stop.  s->qcond wakes the writer,
 *    s->dcond wakes cache_store_sync callers.  cache_store_remove holds
 *    qmtx while it plants the memory tier's tombstone (lock order: qmtx,
 *    then a memory shard's lock; never the reverse).
 *  - s->map_lock (rwlock, writer-preferring) is held shared for the whole
 *    life of every transaction of this process, and exclusively only to
 *    adopt a map that another process (purged) grew: LMDB returns
 *    MDB_MAP_RESIZED and mdb_env_set_mapsize(env, 0) must run with no
 *    transaction active.  No thread takes it twice.
 *  - Counters are relaxed atomics.
 *
 * Durability.  The environment is opened with MDB_NOSYNC: a commit writes
 * its pages and meta page with pwrite(2) into the page cache but does not
 * fsync.  A committed transaction therefore survives a crash of the
 * process (kill -9), which is the guarantee tests check, while a power
 * loss may lose the last few seconds of commits (and, as LMDB documents
 * for MDB_NOSYNC, could leave the file inconsistent if the filesystem
 * reorders writes; such a cache directory should then be wiped).  The
 * writer calls mdb_env_sync(env, 1) every W_SYNC_INTERVAL_MS when it has
 * committed anything, on close, and for cache_store_sync(), which returns
 * once every message queued before the call is committed and synced.
 * Nothing half-written is visible: an object's chunks, record, LRU entries
 * and Vary rule are written in one transaction.
 *
 * Accounting and eviction.  "Used bytes" are the pages that hold data:
 * the sum of branch, leaf and overflow pages of every database (ours, the
 * main db and LMDB's freelist db) times the page size, read with
 * mdb_stat() inside the writer's transaction.  This is exact (it includes
 * LMDB's per-record and per-page overhead, overflow page rounding and
 * half-full pages), costs O(1) and needs no scan at start-up; it leaves
 * out only pages that are free or not yet reusable, which the space above
 * the high-water mark absorbs.  Before each batch the writer evicts, in a
 * transaction of its own (so that the freed pages are reusable by the
 * batch), the objects of the oldest lru entries until used + the batch's
 * estimated bytes fits under high_water_pct of disk_bytes, down to
 * low_water_pct.  A batch carries at most (high - low) / 2 bytes of
 * objects (clamped to 256 KiB .. 64 MiB) and W_BATCH_MSGS messages: with
 * random keys each commit rewrites many leaf pages, so larger batches
 * write less per object (1024 gave 1.5x the puts/s of 256 here).  If
 * LMDB still reports MDB_MAP_FULL (or MDB_TXN_FULL), the transaction is
 * aborted, the object being written is dropped (counted in map_full and
 * put_drops), the writer evicts a further SQUEEZE_PCT of the map and
 * retries the rest of the batch: a full map is never an error for a
 * caller.  Objects larger than 1/8 of disk_bytes are kept in memory only.
 *
 * LRU.  lru is keyed by (minute bucket, sequence) and lru_pos maps an
 * object to its lru key, so one bucket is evicted in write order.
 * cache_store_touch() enqueues only when the object's recorded bucket
 * (cache_obj.lru_bucket, an atomic hint, claimed by compare-and-swap so
 * that one hit per object and minute enqueues) is older than the current
 * minute; the writer moves the lru entry, in the eviction transaction when
 * there is one, so that an object just used is not the one evicted.
 *
 * Damage (cache_damage.c, docs/cache-damage.md).  Every LMDB transaction
 * runs between cache_lmdb_enter() and cache_lmdb_leave()
 * (cache_store_txn_begin to cache_store_txn_abort / cache_store_txn_commit),
 * so that a fault inside one marks the directory damaged.  Opening checks
 * what it can before a data page is read.  An LMDB code that only a
 * damaged file gives (cache_store_lmdb_check) sets s->damaged: from then
 * on neither tier is read or written (a purge could no longer reach what
 * memory holds), the writer discards its queue, and the next start moves
 * the files aside.
 *
 * Removal.  cache_store_remove drops the key from memory at once and
 * leaves a tombstone there until the writer has committed the removal, so
 * that a read in between cannot fetch the old object back from LMDB; and
 * an object read from LMDB is promoted to memory only if no put or
 * removal touched its memory shard during the read (cache_mem.c).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "cache/cache.h"
#include "cache/cache_int.h"
#include "cache/cache_store_int.h"
#include "common/cdn_log.h"
#include "common/cdn_ratelog.h"

#define STORE_MAXREADERS 1024
#define STORE_MAXDBS     12

#define WQ_MAX_MSGS        10000                /* pending messages */
#define WQ_MAX_BYTES       (UINT64_C(64) << 20) /* pending object bytes */
#define W_BATCH_BYTES_MAX  (UINT64_C(64) << 20)
#define W_BATCH_BYTES_MIN  (UINT64_C(256) << 10)
#define W_LINGER_MS        20   /* wait this long to fill a batch */
#define W_SYNC_INTERVAL_MS 5000 /* mdb_env_sync after commits */
#define W_IDLE_MS          1000
#define W_RETRIES          8    /* transaction attempts per batch */
#define W_MSG_TRIES        2    /* attempts of one removal or touch */
#define EVICT_TXN_MAX      1024 /* objects deleted per eviction txn */
#define SQUEEZE_PCT        10   /* extra eviction after MAP_FULL */
#define DISK_OBJECT_DIV    8    /* largest persisted: disk_bytes / 8 */
#define MSG_OVERHEAD       256  /* queue bytes charged per object */
#define W_FAULT_LOG_MS     5000 /* between two lines of one failing episode */
#define FAULT_FREE_SLACK   (UINT64_C(1) << 20) /* see fault_of() */

/*
 * Why the writer's disk writes fail, as the log and cache_store_failing()
 * say it.  The writer sets s->w_fault at a failed write and clears it at
 * the next batch that commits (and syncs).
 */
enum store_fault {
	FAULT_NONE = 0,
	FAULT_DISK_FULL,
	FAULT_READ_ONLY,
	FAULT_FILE_LIMIT,
	FAULT_QUOTA,
	FAULT_NOMEM,
	FAULT_MAP_FULL,
	FAULT_IO,
	FAULT_OTHER,
};

const char *const cache_writer_fault_meaning[] = {
    [FAULT_NONE] = NULL,
    [FAULT_DISK_FULL] = "disk full",
    [FAULT_READ_ONLY] = "read-only file system",
    [FAULT_FILE_LIMIT] = "file size limit (RLIMIT_FSIZE) reached",
    [FAULT_QUOTA] = "disk quota exceeded",
    [FAULT_NOMEM] = "out of memory",
    [FAULT_MAP_FULL] = "cache_size reached and eviction failed",
    [FAULT_IO] = "I/O error",
    [FAULT_OTHER] = "write error",
};
_Static_assert(CDN_ARRAY_LEN(cache_writer_fault_meaning) == FAULT_OTHER + 1,
    "a meaning for every store_fault");

/* Streamed chunks per transaction, at most: LMDB holds a transaction's
 * dirty pages in memory, and streaming is there to keep bodies out of it. */
#define W_BATCH_CHUNK_BYTES (UINT64_C(2) << 20)

/* ---------------- keys and checksums ---------------- */

void
cache_record_objkey(uint8_t out[CACHE_OBJKEY_LEN],
    const uint8_t key[CACHE_HASH_LEN], uint64_t variant)
{
	memcpy(out, key, CACHE_HASH_LEN);
	put_be64(out + CACHE_HASH_LEN, variant);
}

void
cache_record_chunkkey(uint8_t out[CACHE_CHUNKKEY_LEN],
    const uint8_t key[CACHE_HASH_LEN], uint64_t variant, uint32_t i)
{
	cache_record_objkey(out, key, variant);
	put_be32(out + CACHE_OBJKEY_LEN, i);
}

/* Checksums are seeded with the key, so a record or chunk found under the
 * wrong key fails its check too. */
uint64_t
cache_record_seed(const uint8_t hv[CACHE_OBJKEY_LEN])
{
	return XXH3_64bits(hv, CACHE_OBJKEY_LEN);
}

/* The record's checksum covers bytes [0, 8) through the seed. */
static uint64_t
rec_sum(const uint8_t *p, size_t len, const uint8_t hv[CACHE_OBJKEY_LEN])
{
	return XXH3_64bits_withSeed(p + CACHE_REC_CSUM_FROM,
	    len - CACHE_REC_CSUM_FROM, cache_record_seed(hv) ^ get_le64(p));
}

uint64_t
cache_record_chunk_sum(uint64_t seed, uint32_t i, const void *p, size_t len)
{
	return XXH3_64bits_withSeed(p, len, seed + i + 1);
}

/* ---------------- the object record ---------------- */

_Static_assert(CACHE_REC_HDR_LEN == 104, "record header layout");
_Static_assert(
    CACHE_OBJKEY_LEN == 24 && CACHE_CHUNKKEY_LEN == 28, "key layout");

#define REC_F_STORABLE   0x1u
#define REC_F_MUST_REVAL 0x2u
#define REC_F_NO_CACHE   0x4u
#define REC_F_HEURISTIC  0x8u
#define REC_F_DERIVED    0x10u /* a coding made here (cache_decision) */
#define REC_F_ALL        0x1fu

size_t
cache_record_len(const struct cache_obj *o)
{
	return CACHE_REC_HDR_LEN + o->url_len + o->fields_len + o->vary_len +
	    o->tags_len + (size_t)o->nchunks * 8;
}

/* Encode <o> into p[0..rec_len(o)), with the chunk checksums <sums>. */
void
cache_record_encode(uint8_t *p, const struct cache_obj *o,
    const uint8_t hv[CACHE_OBJKEY_LEN], const uint64_t *sums)
{
	size_t len, off;
	unsigned flags = 0;

	len = cache_record_len(o);
	if (o->d.storable)
		flags |= REC_F_STORABLE;
	if (o->d.must_revalidate)
		flags |= REC_F_MUST_REVAL;
	if (o->d.no_cache)
		flags |= REC_F_NO_CACHE;
	if (o->d.heuristic)
		flags |= REC_F_HEURISTIC;
	if (o->d.derived)
		flags |= REC_F_DERIVED;
	put_le32(p + 0, CACHE_REC_MAGIC);
	put_le16(p + 4, CACHE_REC_VERSION);
	put_le16(p + 6, (uint16_t)flags);
	put_le32(p + 16, (uint32_t)o->status);
	put_le32(p + 20, o->nchunks);
	put_le64(p + 24, (uint64_t)o->d.freshness_s);
	put_le64(p + 32, (uint64_t)o->d.initial_age_s);
	put_le64(p + 40, (uint64_t)o->d.swr_s);
	put_le64(p + 48, (uint64_t)o->d.sie_s);
	put_le64(p + 56, (uint64_t)o->response_time);
	put_le64(p + 64, (uint64_t)o->stored_at);
	put_le64(p + 72, o->purge_gen);
	put_le64(p + 80, o->body_len);
	put_le32(p + 88, (uint32_t)o->url_len);
	put_le32(p + 92, (uint32_t)o->fields_len);
	put_le32(p + 96, (uint32_t)o->vary_len);
	put_le32(p + 100, (uint32_t)o->tags_len);
	off = CACHE_REC_HDR_LEN;
	memcpy(p + off, o->url, o->url_len);
	off += o->url_len;
	memcpy(p + off, o->fields, o->fields_len);
	off += o->fields_len;
	memcpy(p + off, o->vary, o->vary_len);
	off += o->vary_len;
	if (o->tags_len > 0)
		memcpy(p + off, o->tags, o->tags_len);
	off += o->tags_len;
	for (uint32_t i = 0; i < o->nchunks; i++, off += 8)
		put_le64(p + off, sums[i]);
	CDN_ASSERT(off == len);
	put_le64(p + CACHE_REC_CSUM_AT, rec_sum(p, len, hv));
}

/* Check and parse a record.  CDN_OK or CDN_ECORRUPT; *v borrows <p>. */
int
cache_record_decode(const uint8_t *p, size_t len,
    const uint8_t hv[CACHE_OBJKEY_LEN], struct cache_record_view *v)
{
	uint64_t want, nch;

	if (len < CACHE_REC_HDR_LEN || get_le32(p) != CACHE_REC_MAGIC ||
	    get_le16(p + 4) != CACHE_REC_VERSION)
		return CDN_ECORRUPT;
	if (get_le64(p + CACHE_REC_CSUM_AT) != rec_sum(p, len, hv))
		return CDN_ECORRUPT;
	v->flags = get_le16(p + 6);
	v->status = (int)get_le32(p + 16);
	v->nchunks = get_le32(p + 20);
	v->freshness_s = (int64_t)get_le64(p + 24);
	v->initial_age_s = (int64_t)get_le64(p + 32);
	v->swr_s = (int64_t)get_le64(p + 40);
	v->sie_s = (int64_t)get_le64(p + 48);
	v->response_time = (int64_t)get_le64(p + 56);
	v->stored_at = (int64_t)get_le64(p + 64);
	v->purge_gen = get_le64(p + 72);
	v->body_len = get_le64(p + 80);
	v->url_len = get_le32(p + 88);
	v->fields_len = get_le32(p + 92);
	v->vary_len = get_le32(p + 96);
	v->tags_len = get_le32(p + 100);
	/* The checksum matched, so these fail only for a writer bug. */
	if ((v->flags & ~REC_F_ALL) != 0 || v->tags_len > CACHE_TAGS_CAP)
		return CDN_ECORRUPT;
	want = (uint64_t)CACHE_REC_HDR_LEN + v->url_len + v->fields_len +
	    v->vary_len + v->tags_len + (uint64_t)v->nchunks * 8;
	nch = v->body_len / CACHE_CHUNK_SIZE +
	    (v->body_len % CACHE_CHUNK_SIZE != 0);
	if (want != len || nch != v->nchunks)
		return CDN_ECORRUPT;
	v->url = (const char *)p + CACHE_REC_HDR_LEN;
	v->fields = v->url + v->url_len;
	v->vary = v->fields + v->fields_len;
	v->tags = v->vary + v->vary_len;
	v->sums = (const uint8_t *)v->tags + v->tags_len;
	return CDN_OK;
}

/* ---------------- transactions ---------------- */

uint32_t
cache_store_now_bucket(struct cache_store *s)
{
	int64_t t;

	t = (int64_t)time(NULL) +
	    atomic_load_explicit(&s->clock_skew_s, memory_order_relaxed);
	return t > 0 ? (uint32_t)(t / CACHE_LRU_BUCKET_S) : 0;
}

/* Convert an LMDB failure (already logged by the caller or here). */
static int
mdb_to_cdn(int rc)
{
	switch (rc) {
	case 0:
		return CDN_OK;
	case MDB_NOTFOUND:
		return CDN_NOTFOUND;
	case ENOMEM:
		return CDN_ENOMEM;
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
		return CDN_ECORRUPT;
	}
	return CDN_EIO;
}

/* Codes LMDB gives only for a file that is not what it wrote. */
static int
is_damage(int rc)
{
	return rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH ||
	    rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND ||
	    rc == MDB_CURSOR_FULL || rc == MDB_PAGE_FULL;
}

/*
 * After a failed LMDB call: if <rc> says the file is damaged, stop using
 * the store (see "Damage" above) and leave the marker.  Returns <rc>.
 */
int
cache_store_lmdb_check(struct cache_store *s, int rc)
{
	int was = 0;

	if (!is_damage(rc) ||
	    !atomic_compare_exchange_strong(&s->damaged, &was, 1))
		return rc;
	CDN_LOG(CDN_LOG_ERR, "cache",
	    "store %s is damaged (%s): no longer used; the next start moves "
	    "it aside",
	    s->dir, mdb_strerror(rc));
	cache_damage_mark(s->dirfd, mdb_strerror(rc));
	return rc;
}

/*
 * Begin a transaction with s->map_lock held shared (released by
 * cache_store_txn_abort or cache_store_txn_commit).  Adopts a map grown by
 * another process.  Returns 0 or an LMDB code, logged.
 */
int
cache_store_txn_begin(struct cache_store *s, unsigned flags, MDB_txn **txnp)
{
	int rc;

	if (atomic_load_explicit(&s->damaged, memory_order_relaxed)) {
		*txnp = NULL;
		return MDB_CORRUPTED;
	}
	cache_lmdb_enter();
	pthread_rwlock_rdlock(&s->map_lock);
	rc = mdb_txn_begin(s->env, NULL, flags, txnp);
	if (rc == MDB_MAP_RESIZED) {
		pthread_rwlock_unlock(&s->map_lock);
		pthread_rwlock_wrlock(&s->map_lock);
		rc = mdb_env_set_mapsize(s->env, 0);
		CDN_LOG(CDN_LOG_WARN, "cache",
		    "map grown by another process: adopted (%s)",
		    mdb_strerror(rc));
		pthread_rwlock_unlock(&s->map_lock);
		pthread_rwlock_rdlock(&s->map_lock);
		rc = mdb_txn_begin(s->env, NULL, flags, txnp);
	}
	if (rc != 0) {
		pthread_rwlock_unlock(&s->map_lock);
		cache_lmdb_leave();
		*txnp = NULL;
		CDN_LOG(CDN_LOG_ERR, "cache", "mdb_txn_begin: %s",
		    mdb_strerror(rc));
		atomic_fetch_add_explicit(&s->st_io, 1, memory_order_relaxed);
	}
	return rc;
}

void
cache_store_txn_abort(struct cache_store *s, MDB_txn **txnp)
{
	if (*txnp == NULL)
		return;
	mdb_txn_abort(*txnp);
	*txnp = NULL;
	pthread_rwlock_unlock(&s->map_lock);
	cache_lmdb_leave();
}

int
cache_store_txn_commit(struct cache_store *s, MDB_txn **txnp)
{
	int rc;

	rc = mdb_txn_commit(*txnp); /* frees the txn even on failure */
	*txnp = NULL;
	pthread_rwlock_unlock(&s->map_lock);
	cache_lmdb_leave();
	return rc;
}

/* Pages holding data, in bytes (see the header comment). */
uint64_t
cache_store_used_bytes(struct cache_store *s, MDB_txn *txn)
{
	MDB_dbi dbs[11];
	MDB_stat st;
	uint64_t pages = 2; /* the two meta pages */

	dbs[0] = 0; /* FREE_DBI */
	dbs[1] = 1; /* MAIN_DBI */
	dbs[2] = s->db_obj;
	dbs[3] = s->db_body;
	dbs[4] = s->db_vary;
	dbs[5] = s->db_lru;
	dbs[6] = s->db_lru_pos;
	dbs[7] = s->db_meta;
	dbs[8] = s->db_prules;
	dbs[9] = s->db_plog;
	dbs[10] = s->db_tags;
	for (size_t i = 0; i < CDN_ARRAY_LEN(dbs); i++) {
		if (mdb_stat(txn, dbs[i], &st) != 0)
			continue;
		pages += st.ms_branch_pages + st.ms_leaf_pages +
		    st.ms_overflow_pages;
	}
	return pages * s->psize;
}

uint64_t
cache_store_object_count(struct cache_store *s, MDB_txn *txn)
{
	MDB_stat st;

	if (mdb_stat(txn, s->db_obj, &st) != 0)
		return 0;
	return st.ms_entries;
}

/* ---------------- writer-side operations (in a write txn) ---------------- */

/* Add an lru entry for <hv> in <bucket>; returns 0 or an LMDB code. */
static int
lru_add(struct cache_store *s, MDB_txn *txn, const uint8_t hv[CACHE_OBJKEY_LEN],
    uint32_t bucket)
{
	uint8_t lk[CACHE_LRUKEY_LEN];
	MDB_val k, v;
	int rc;

	do {
		put_be32(lk, bucket);
		put_be64(lk + 4, ++s->lru_seq);
		k = mval(lk, sizeof(lk));
		v = mval(hv, CACHE_OBJKEY_LEN);
		rc = mdb_put(txn, s->db_lru, &k, &v, MDB_NOOVERWRITE);
	} while (rc == MDB_KEYEXIST); /* lru_seq was lost: skip ahead */
	if (rc != 0)
		return rc;
	k = mval(hv, CACHE_OBJKEY_LEN);
	v = mval(lk, sizeof(lk));
	return mdb_put(txn, s->db_lru_pos, &k, &v, 0);
}

/* Count the variants of primary key <key>. */
int
cache_objdb_key_count(struct cache_store *s, MDB_txn *txn,
    const uint8_t key[CACHE_HASH_LEN], uint64_t *n)
{
	uint8_t start[CACHE_OBJKEY_LEN];
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	*n = 0;
	rc = mdb_cursor_open(txn, s->db_obj, &cur);
	if (rc != 0)
		return rc;
	cache_record_objkey(start, key, 0);
	k = mval(start, sizeof(start));
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	     rc == 0 && k.mv_size == CACHE_OBJKEY_LEN &&
	     memcmp(k.mv_data, key, CACHE_HASH_LEN) == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
		(*n)++;
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND || rc == 0 ? 0 : rc;
}

static int
tags_index(struct cache_store *s, MDB_txn *txn, const char *tags, size_t len,
    const uint8_t hv[CACHE_OBJKEY_LEN], int add)
{
	const char *p = tags, *end = tags + len, *sp;
	MDB_val k, v;
	int rc;

	while (p < end) {
		sp = memchr(p, ' ', (size_t)(end - p));
		if (sp == NULL)
			sp = end;
		if (sp > p && (size_t)(sp - p) <= CACHE_TAG_MAX_LEN) {
			k = mval(p, (size_t)(sp - p));
			v = mval(hv, CACHE_OBJKEY_LEN);
			rc = add
			    ? mdb_put(txn, s->db_tags, &k, &v, MDB_NODUPDATA)
			    : mdb_del(txn, s->db_tags, &k, &v);
			if (rc != 0 && rc != MDB_KEYEXIST && rc != MDB_NOTFOUND)
				return rc;
		}
		p = sp + 1;
	}
	return 0;
}

/* Remove the tag index entries of the stored record <hv>, if any.  The
 * record is not checksummed here: it is about to go, and a bad length
 * only means no entry is found. */
static int
tags_unindex(
    struct cache_store *s, MDB_txn *txn, const uint8_t hv[CACHE_OBJKEY_LEN])
{
	char tags[CACHE_TAGS_CAP];
	const uint8_t *p;
	uint64_t off, tlen;
	MDB_val k, v;
	int rc;

	k = mval(hv, CACHE_OBJKEY_LEN);
	rc = mdb_get(txn, s->db_obj, &k, &v);
	if (rc != 0)
		return rc == MDB_NOTFOUND ? 0 : rc;
	p = v.mv_data;
	if (v.mv_size < CACHE_REC_HDR_LEN)
		return 0;
	tlen = get_le32(p + 100);
	off = (uint64_t)CACHE_REC_HDR_LEN + get_le32(p + 88) +
	    get_le32(p + 92) + get_le32(p + 96);
	if (tlen == 0 || tlen > sizeof(tags) || off + tlen > v.mv_size)
		return 0;
	/* Copied: the deletes below may move the map's pages. */
	memcpy(tags, p + off, (size_t)tlen);
	return tags_index(s, txn, tags, (size_t)tlen, hv, 0);
}

/* Objects stored with <tag>, from the tag index. */
int
cache_objdb_tag_count(struct cache_store *s, MDB_txn *txn, const char *tag,
    size_t len, uint64_t *n)
{
	MDB_cursor *cur;
	MDB_val k, v;
	size_t count = 0;
	int rc;

	*n = 0;
	if (len == 0 || len > CACHE_TAG_MAX_LEN)
		return 0;
	rc = mdb_cursor_open(txn, s->db_tags, &cur);
	if (rc != 0)
		return rc;
	k = mval(tag, len);
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET);
	if (rc == 0)
		rc = mdb_cursor_count(cur, &count);
	mdb_cursor_close(cur);
	*n = count;
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/*
 * Delete the object <hv>: record, chunks (whatever is stored under its
 * prefix), lru and lru_pos entries; with <clean_vary>, also the Vary rule
 * if no variant of the key remains.  *existed tells whether a record was
 * there.  Returns 0 or an LMDB code.
 */
int
cache_objdb_delete(struct cache_store *s, MDB_txn *txn,
    const uint8_t hv[CACHE_OBJKEY_LEN], int clean_vary, int *existed)
{
	uint8_t lk[CACHE_LRUKEY_LEN], ck[CACHE_CHUNKKEY_LEN];
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	uint64_t left;
	int rc;

	*existed = 0;
	for (struct cache_stream *st = s->streams; st != NULL; st = st->wnext)
		if (memcmp(st->obj->key, hv, CACHE_HASH_LEN) == 0 &&
		    st->obj->variant == get_be64(hv + CACHE_HASH_LEN))
			st->clobbered = 1;
	rc = tags_unindex(s, txn, hv);
	if (rc != 0)
		return rc;
	k = mval(hv, CACHE_OBJKEY_LEN);
	rc = mdb_get(txn, s->db_lru_pos, &k, &v);
	if (rc == 0 && v.mv_size == CACHE_LRUKEY_LEN) {
		memcpy(lk, v.mv_data, sizeof(lk));
		k = mval(lk, sizeof(lk));
		rc = mdb_del(txn, s->db_lru, &k, NULL);
		if (rc != 0 && rc != MDB_NOTFOUND)
			goto out;
		k = mval(hv, CACHE_OBJKEY_LEN);
		rc = mdb_del(txn, s->db_lru_pos, &k, NULL);
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		goto out;
	k = mval(hv, CACHE_OBJKEY_LEN);
	rc = mdb_del(txn, s->db_obj, &k, NULL);
	if (rc != 0 && rc != MDB_NOTFOUND)
		goto out;
	*existed = rc == 0;

	rc = mdb_cursor_open(txn, s->db_body, &cur);
	if (rc != 0)
		goto out;
	memcpy(ck, hv, CACHE_OBJKEY_LEN);
	put_be32(ck + CACHE_OBJKEY_LEN, 0);
	for (;;) {
		k = mval(ck, sizeof(ck));
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc == MDB_NOTFOUND ||
		    (rc == 0 &&
		        (k.mv_size != CACHE_CHUNKKEY_LEN ||
		            memcmp(k.mv_data, hv, CACHE_OBJKEY_LEN) != 0))) {
			rc = 0;
			break;
		}
		if (rc != 0)
			goto out;
		rc = mdb_cursor_del(cur, 0);
		if (rc != 0)
			goto out;
	}
	if (clean_vary) {
		rc = cache_objdb_key_count(s, txn, hv, &left);
		if (rc != 0)
			goto out;
		if (left == 0) {
			k = mval(hv, CACHE_HASH_LEN);
			rc = mdb_del(txn, s->db_vary, &k, NULL);
			if (rc == MDB_NOTFOUND)
				rc = 0;
		}
	}
out:
	if (cur != NULL)
		mdb_cursor_close(cur);
	return rc;
}

/* Write the record of <o> (whose chunks are written, with checksums
 * <sums>), its lru entries, tags and Vary rule. */
int
cache_objdb_write_record(struct cache_store *s, MDB_txn *txn,
    const struct cache_obj *o, const uint8_t hv[CACHE_OBJKEY_LEN],
    const uint64_t *sums, uint32_t bucket)
{
	MDB_val k, v;
	int rc;

	k = mval(hv, CACHE_OBJKEY_LEN);
	v.mv_size = cache_record_len(o);
	v.mv_data = NULL;
	rc = mdb_put(txn, s->db_obj, &k, &v, MDB_RESERVE);
	if (rc != 0)
		return rc;
	/* v.mv_data is valid until the next write in this txn. */
	cache_record_encode(v.mv_data, o, hv, sums);
	rc = lru_add(s, txn, hv, bucket);
	if (rc != 0)
		return rc;
	rc = tags_index(s, txn, o->tags, o->tags_len, hv, 1);
	if (rc != 0)
		return rc;
	k = mval(o->key, CACHE_HASH_LEN);
	if (o->vary_len > 0) {
		v = mval(o->vary, o->vary_len);
		return mdb_put(txn, s->db_vary, &k, &v, 0);
	}
	rc = mdb_del(txn, s->db_vary, &k, NULL);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Write <o> with its chunks, lru entries and Vary rule. */
int
cache_objdb_write(
    struct cache_store *s, MDB_txn *txn, struct cache_obj *o, uint32_t bucket)
{
	uint8_t hv[CACHE_OBJKEY_LEN], ck[CACHE_CHUNKKEY_LEN];
	uint64_t stack_sums[16], *sums, seed, left;
	MDB_val k, v;
	size_t clen;
	int rc, existed;

	cache_record_objkey(hv, o->key, o->variant);
	sums = stack_sums;
	if (o->nchunks > CDN_ARRAY_LEN(stack_sums)) {
		sums = malloc((size_t)o->nchunks * sizeof(*sums));
		if (sums == NULL)
			return ENOMEM;
	}
	rc = cache_objdb_delete(s, txn, hv, 0, &existed);
	if (rc != 0)
		goto out;
	seed = cache_record_seed(hv);
	left = o->body_len;
	for (uint32_t i = 0; i < o->nchunks; i++) {
		clen =
		    left < CACHE_CHUNK_SIZE ? (size_t)left : CACHE_CHUNK_SIZE;
		left -= clen;
		sums[i] = cache_record_chunk_sum(seed, i, o->chunks[i], clen);
		cache_record_chunkkey(ck, o->key, o->variant, i);
		k = mval(ck, sizeof(ck));
		v = mval(o->chunks[i], clen);
		rc = mdb_put(txn, s->db_body, &k, &v, 0);
		if (rc != 0)
			goto out;
	}
	rc = cache_objdb_write_record(s, txn, o, hv, sums, bucket);
out:
	if (sums != stack_sums)
		free(sums);
	return rc;
}

/* Bytes of chunk <i> of a body of <body_len> bytes. */
static size_t
chunk_len(uint64_t body_len, uint32_t i)
{
	uint64_t left = body_len - (uint64_t)i * CACHE_CHUNK_SIZE;

	return left < CACHE_CHUNK_SIZE ? (size_t)left : CACHE_CHUNK_SIZE;
}

/* Put <st> on the writer's list of streams, or take it off. */
static void
stream_list(struct cache_store *s, struct cache_stream *st)
{
	if (st->listed)
		return;
	atomic_fetch_add_explicit(&st->refcnt, 1, memory_order_relaxed);
	st->listed = 1;
	st->wnext = s->streams;
	s->streams = st;
}

void
cache_stream_unlist(struct cache_store *s, struct cache_stream *st)
{
	struct cache_stream **pp;

	if (!st->listed)
		return;
	for (pp = &s->streams; *pp != st; pp = &(*pp)->wnext)
		;
	*pp = st->wnext;
	st->listed = 0;
	cache_stream_unref(&st);
}

/* Delete the chunks <st> wrote, unless its key was written since. */
int
cache_stream_delete(
    struct cache_store *s, MDB_txn *txn, struct cache_stream *st)
{
	uint8_t ck[CACHE_CHUNKKEY_LEN];
	MDB_val k;
	int rc;

	if (st->clobbered)
		return 0; /* the chunks under its key are someone else's */
	for (uint32_t i = 0; i < st->nchunks; i++) {
		cache_record_chunkkey(ck, st->obj->key, st->obj->variant, i);
		k = mval(ck, sizeof(ck));
		rc = mdb_del(txn, s->db_body, &k, NULL);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return rc;
	}
	return 0;
}

/*
 * One chunk of a streamed body.  The first deletes whatever object was
 * stored under the key and variant (its chunks would be overwritten); the
 * last writes the record, unless something else deleted or wrote the key
 * and variant meanwhile or a hard purge came after the fill began
 * (m->end_dropped: its chunks are deleted instead).  No chunk is read
 * back: that would map the whole body into this process.
 */
int
cache_stream_apply(struct cache_store *s, MDB_txn *txn, struct wmsg *m)
{
	struct cache_stream *st = m->st;
	struct cache_obj *o = st->obj;
	uint8_t hv[CACHE_OBJKEY_LEN], ck[CACHE_CHUNKKEY_LEN];
	MDB_val k, v;
	int rc, existed;

	m->end_dropped = 0;
	if (atomic_load_explicit(&st->state, memory_order_relaxed) !=
	    STREAM_OPEN)
		return 0;
	cache_record_objkey(hv, o->key, o->variant);
	if (m->chunk == 0) {
		/* Again after a retry: this delete is not a clobber. */
		cache_stream_unlist(s, st);
		st->clobbered = 0;
		rc = cache_objdb_delete(s, txn, hv, 0, &existed);
		if (rc != 0)
			return rc;
		stream_list(s, st);
	}
	st->sums[m->chunk] = cache_record_chunk_sum(
	    cache_record_seed(hv), m->chunk, m->data, m->len);
	cache_record_chunkkey(ck, o->key, o->variant, m->chunk);
	k = mval(ck, sizeof(ck));
	v = mval(m->data, m->len);
	rc = mdb_put(txn, s->db_body, &k, &v, 0);
	if (rc != 0 || !m->last)
		return rc;
	if (!st->clobbered &&
	    cache_store_purge_verdict(s, o) != CACHE_PURGED_HARD)
		return cache_objdb_write_record(
		    s, txn, o, hv, st->sums, m->bucket);
	m->end_dropped = 1;
	return cache_stream_delete(s, txn, st);
}

/* Delete every variant and the Vary rule of a primary key. */
int
cache_objdb_remove_key(
    struct cache_store *s, MDB_txn *txn, const uint8_t key[CACHE_HASH_LEN])
{
	uint8_t start[CACHE_OBJKEY_LEN], hv[CACHE_OBJKEY_LEN];
	MDB_cursor *cur;
	MDB_val k, v;
	int rc, existed;

	rc = mdb_cursor_open(txn, s->db_obj, &cur);
	if (rc != 0)
		return rc;
	cache_record_objkey(start, key, 0);
	for (;;) {
		k = mval(start, sizeof(start));
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc == MDB_NOTFOUND ||
		    (rc == 0 &&
		        (k.mv_size != CACHE_OBJKEY_LEN ||
		            memcmp(k.mv_data, key, CACHE_HASH_LEN) != 0))) {
			rc = 0;
			break;
		}
		if (rc != 0)
			break;
		memcpy(hv, k.mv_data, sizeof(hv));
		rc = cache_objdb_delete(s, txn, hv, 0, &existed);
		if (rc != 0)
			break;
	}
	mdb_cursor_close(cur);
	if (rc != 0)
		return rc;
	k = mval(key, CACHE_HASH_LEN);
	rc = mdb_del(txn, s->db_vary, &k, NULL);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Move the lru entry of <hv> to <bucket> if it is older. */
int
cache_objdb_touch(struct cache_store *s, MDB_txn *txn,
    const uint8_t hv[CACHE_OBJKEY_LEN], uint32_t bucket)
{
	uint8_t lk[CACHE_LRUKEY_LEN];
	MDB_val k, v;
	int rc;

	k = mval(hv, CACHE_OBJKEY_LEN);
	rc = mdb_get(txn, s->db_lru_pos, &k, &v);
	if (rc == 0 && v.mv_size == CACHE_LRUKEY_LEN) {
		if (get_be32(v.mv_data) >= bucket)
			return 0;
		memcpy(lk, v.mv_data, sizeof(lk));
		k = mval(lk, sizeof(lk));
		rc = mdb_del(txn, s->db_lru, &k, NULL);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return rc;
	} else if (rc == 0 || rc == MDB_NOTFOUND) {
		/* No position: only an existing object gets one. */
		k = mval(hv, CACHE_OBJKEY_LEN);
		rc = mdb_get(txn, s->db_obj, &k, &v);
		if (rc != 0)
			return rc == MDB_NOTFOUND ? 0 : rc;
	} else {
		return rc;
	}
	return lru_add(s, txn, hv, bucket);
}

/* Write the usage record; returns 0 or an LMDB code. */
static int
usage_write(
    struct cache_store *s, MDB_txn *txn, uint64_t objects, uint64_t used)
{
	uint8_t rec[STORE_USAGE_LEN];
	MDB_val k, v;

	put_le32(rec, STORE_USAGE_MAGIC);
	put_le32(rec + 4, STORE_FORMAT_VERSION);
	put_le64(rec + 8, objects);
	put_le64(rec + 16, used);
	put_le64(rec + 24, s->lru_seq);
	put_le64(rec + 32, XXH3_64bits(rec, 32));
	k = mval("usage", 5);
	v = mval(rec, sizeof(rec));
	return mdb_put(txn, s->db_meta, &k, &v, 0);
}

/* Commit with the usage record; publishes counters.  0 or LMDB code. */
int
cache_writer_commit(struct cache_store *s, MDB_txn **txnp)
{
	uint64_t objects, used;
	int rc;

	objects = cache_store_object_count(s, *txnp);
	used = cache_store_used_bytes(s, *txnp);
	rc = usage_write(s, *txnp, objects, used);
	if (rc != 0) {
		cache_store_txn_abort(s, txnp);
		return rc;
	}
	rc = cache_store_txn_commit(s, txnp);
	if (rc != 0)
		return rc;
	s->used_bytes = used;
	s->dirty = 1;
	atomic_store_explicit(&s->st_objects, objects, memory_order_relaxed);
	atomic_store_explicit(&s->st_bytes, used, memory_order_relaxed);
	return 0;
}

static int
is_full(int rc)
{
	return rc == MDB_MAP_FULL || rc == MDB_TXN_FULL;
}

/*
 * What the failed write <rc> means.  LMDB reports a short write (what a
 * full disk or a file-size limit gives) as EIO, so the file system and the
 * limit are asked too: a failed write with less than <need> bytes plus
 * FAULT_FREE_SLACK free is a full disk.
 */
static enum store_fault
fault_of(struct cache_store *s, int rc, uint64_t need)
{
	struct statvfs sv;
	struct rlimit lim;
	struct stat st;
	uint64_t avail;
	int fd;

	switch (rc) {
	case ENOSPC:
		return FAULT_DISK_FULL;
	case EROFS:
		return FAULT_READ_ONLY;
	case EFBIG:
		return FAULT_FILE_LIMIT;
	case EDQUOT:
		return FAULT_QUOTA;
	case ENOMEM:
		return FAULT_NOMEM;
	case MDB_MAP_FULL:
	case MDB_TXN_FULL:
		return FAULT_MAP_FULL;
	}
	if (statvfs(s->dir, &sv) == 0) {
		if (sv.f_flag & ST_RDONLY)
			return FAULT_READ_ONLY;
		/* root may write into the blocks reserved for it */
		avail = (uint64_t)(geteuid() == 0 ? sv.f_bfree : sv.f_bavail) *
		    sv.f_frsize;
		if (avail < need + FAULT_FREE_SLACK)
			return FAULT_DISK_FULL;
	}
	if (getrlimit(RLIMIT_FSIZE, &lim) == 0 &&
	    lim.rlim_cur != RLIM_INFINITY && mdb_env_get_fd(s->env, &fd) == 0 &&
	    fstat(fd, &st) == 0 &&
	    (uint64_t)st.st_size + need + s->psize > (uint64_t)lim.rlim_cur)
		return FAULT_FILE_LIMIT;
	return rc == EIO ? FAULT_IO : FAULT_OTHER;
}

/*
 * A write of the writer failed with <rc> (<need>: bytes it was writing, if
 * known).  From now on cache_store_failing() says why, and the log says it
 * once, then at most every W_FAULT_LOG_MS how often since, not once per
 * batch (a full disk fails every batch until space is freed).
 */
void
cache_writer_failed(
    struct cache_store *s, const char *what, int rc, uint64_t need)
{
	struct cdn_ratelog_report r;
	enum store_fault f = fault_of(s, rc, need);

	/* A damaged file: the store stops being used. */
	cache_store_lmdb_check(s, rc);
	atomic_fetch_add_explicit(&s->st_io, 1, memory_order_relaxed);
	atomic_store_explicit(&s->w_fault, (int)f, memory_order_relaxed);
	s->batch_failed = 1;
	switch (cdn_ratelog_hit(
	    &s->wfail, (int)f, cdn_now_ms(), W_FAULT_LOG_MS, &r)) {
	case CDN_RATELOG_BEGIN:
		CDN_LOG(CDN_LOG_ERR, "cache",
		    "disk writes failing: %s (%s: %s); responses are not "
		    "stored on disk until writes succeed again",
		    cache_writer_fault_meaning[f], what, mdb_strerror(rc));
		break;
	case CDN_RATELOG_REPEAT:
		CDN_LOG(CDN_LOG_ERR, "cache",
		    "disk writes still failing: %s: %" PRIu64
		    " failed writes since it began %" PRIu64 " s ago (%" PRIu64
		    " since the last line)",
		    cache_writer_fault_meaning[f], r.count, r.elapsed_ms / 1000,
		    r.repeats);
		break;
	default:
		break;
	}
}

/*
 * The writer committed a batch, or <synced> its commits: writes work again
 * unless a write failed on the way (even the eviction before the batch:
 * one success between failures is no recovery) or the last sync did.
 */
static void
write_ok(struct cache_store *s, int synced)
{
	struct cdn_ratelog_report r;

	if (synced)
		s->sync_failed = 0;
	if (s->sync_failed || s->batch_failed)
		return; /* not on the disk yet, or the last batch failed */
	atomic_store_explicit(&s->w_fault, FAULT_NONE, memory_order_relaxed);
	if (cdn_ratelog_clear(&s->wfail, cdn_now_ms(), &r) == CDN_RATELOG_END)
		CDN_LOG(CDN_LOG_WARN, "cache",
		    "disk writes succeed again, after %" PRIu64
		    " failed writes in %" PRIu64 " s",
		    r.count, r.elapsed_ms / 1000);
	if (cdn_ratelog_clear(&s->rmlost, cdn_now_ms(), &r) == CDN_RATELOG_END)
		CDN_LOG(CDN_LOG_WARN, "cache",
		    "%" PRIu64 " removals were not persisted while writes "
		    "failed: those keys may be served again after a restart",
		    r.count);
}

/*
 * Evict the oldest objects until used bytes are <= target, in
 * transactions of at most EVICT_TXN_MAX objects.
 */
static void
evict_to(struct cache_store *s, uint64_t target, struct wmsg **touches,
    size_t ntouches)
{
	uint8_t lk[CACHE_LRUKEY_LEN], hv[CACHE_OBJKEY_LEN];
	MDB_txn *txn = NULL;
	MDB_cursor *cur;
	MDB_val k, v;
	uint64_t used, n;
	int rc = 0, existed, is_empty = 0;

	used = s->used_bytes;
	while (used > target && !is_empty) {
		if (cache_store_txn_begin(s, 0, &txn) != 0)
			return;
		/* Touches first, so that what was just used is not what
		 * goes; they are hints, lost if this txn fails. */
		for (size_t i = 0; i < ntouches && rc == 0; i++) {
			cache_record_objkey(
			    hv, touches[i]->key, touches[i]->variant);
			rc = cache_objdb_touch(s, txn, hv, touches[i]->bucket);
			touches[i]->is_applied = 1;
		}
		ntouches = 0;
		if (rc != 0)
			goto fail;
		rc = mdb_cursor_open(txn, s->db_lru, &cur);
		if (rc != 0)
			goto fail;
		for (n = 0; n < EVICT_TXN_MAX && used > target;) {
			rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
			if (rc == MDB_NOTFOUND) {
				is_empty = 1;
				rc = 0;
				break;
			}
			if (rc != 0)
				break;
			if (k.mv_size != CACHE_LRUKEY_LEN ||
			    v.mv_size != CACHE_OBJKEY_LEN) {
				rc = mdb_cursor_del(cur, 0); /* junk */
				if (rc != 0)
					break;
				continue;
			}
			memcpy(lk, k.mv_data, sizeof(lk));
			memcpy(hv, v.mv_data, sizeof(hv));
			rc = cache_objdb_delete(s, txn, hv, 1, &existed);
			if (rc != 0)
				break;
			k = mval(lk, sizeof(lk));
			rc = mdb_del(txn, s->db_lru, &k, NULL);
			if (rc != 0 && rc != MDB_NOTFOUND)
				break;
			rc = 0;
			if (existed)
				n++;
			used = cache_store_used_bytes(s, txn);
		}
		mdb_cursor_close(cur);
		if (rc != 0)
			goto fail;
		rc = cache_writer_commit(s, &txn);
		if (rc != 0)
			goto fail;
		atomic_fetch_add_explicit(
		    &s->st_evictions, n, memory_order_relaxed);
		used = s->used_bytes;
	}
	return;
fail:
	cache_writer_failed(s, "eviction", rc, 0);
	cache_store_txn_abort(s, &txn);
}

/* Bytes a put will add, roughly: body, strings, a page per chunk. */
static uint64_t
put_estimate(const struct cache_store *s, const struct cache_obj *o)
{
	return o->body_len + o->url_len + o->fields_len + o->vary_len +
	    CACHE_REC_HDR_LEN + ((uint64_t)o->nchunks + 2) * s->psize;
}

/* The same for a message of a batch. */
static uint64_t
msg_estimate(const struct cache_store *s, const struct wmsg *m)
{
	const struct cache_obj *o;

	if (m->kind == W_PUT)
		return put_estimate(s, m->obj);
	if (m->kind != W_CHUNK)
		return 0;
	o = m->st->obj;
	return m->len + s->psize +
	    (m->last ? o->url_len + o->fields_len + o->vary_len +
	                CACHE_REC_HDR_LEN + 2 * s->psize
	             : 0);
}

/* Tell the stream's owner that it moved (the writer thread). */
void
cache_stream_wake(struct cache_stream *st)
{
	pthread_mutex_lock(&st->mu);
	if (st->wake != NULL)
		st->wake(st->wake_arg);
	pthread_mutex_unlock(&st->mu);
}

/* <m> committed: publish its chunk (and the stream's end). */
void
cache_stream_publish(struct wmsg *m)
{
	struct cache_stream *st = m->st;

	if (atomic_load_explicit(&st->state, memory_order_relaxed) !=
	    STREAM_OPEN)
		return;
	atomic_store_explicit(
	    &st->committed, m->chunk + 1, memory_order_release);
	if (m->last)
		atomic_store_explicit(&st->state,
		    m->end_dropped ? STREAM_FAILED : STREAM_STORED,
		    memory_order_release);
	cache_stream_wake(st);
}

/*
 * Evict before the batch v[0..n) that needs <need> bytes (see the
 * header).  The batch's touches are applied first, in the eviction txn.
 */
void
cache_evict_make_room(struct cache_store *s, uint64_t need, int squeeze,
    struct wmsg **v, size_t n)
{
	struct wmsg *touches[W_BATCH_MSGS];
	uint64_t target;
	size_t nt = 0;

	if (!squeeze && s->used_bytes + need <= s->high_bytes)
		return;
	target = s->low_bytes;
	if (target + need > s->high_bytes)
		target = s->high_bytes > need ? s->high_bytes - need : 0;
	if (squeeze)
		target =
		    target > s->squeeze_bytes ? target - s->squeeze_bytes : 0;
	for (size_t i = 0; i < n && nt < CDN_ARRAY_LEN(touches); i++) {
		if (v[i]->kind == W_TOUCH && !v[i]->is_dropped &&
		    !v[i]->is_applied)
			touches[nt++] = v[i];
	}
	evict_to(s, target, touches, nt);
}

static int
msg_apply(struct cache_store *s, MDB_txn *txn, struct wmsg *m)
{
	uint8_t hv[CACHE_OBJKEY_LEN];
	int existed;

	switch (m->kind) {
	case W_PUT:
		/* A fill that began before a hard purge of it is not
		 * stored (lookups would not serve it anyway). */
		if (cache_store_purge_verdict(s, m->obj) == CACHE_PURGED_HARD)
			return 0;
		return cache_objdb_write(s, txn, m->obj, m->bucket);
	case W_REMOVE:
		return cache_objdb_remove_key(s, txn, m->key);
	case W_TOUCH:
		cache_record_objkey(hv, m->key, m->variant);
		return cache_objdb_touch(s, txn, hv, m->bucket);
	case W_DELETE:
		cache_record_objkey(hv, m->key, m->variant);
		return cache_objdb_delete(s, txn, hv, 1, &existed);
	case W_CHUNK:
		return cache_stream_apply(s, txn, m);
	case W_STREAM_ABORT:
		if (atomic_load_explicit(&m->st->state, memory_order_relaxed) ==
		    STREAM_STORED)
			return 0;
		return cache_stream_delete(s, txn, m->st);
	}
	CDN_ASSERT(!"unknown writer message");
	return EINVAL;
}

/*
 * Give up on <m>.  A dropped removal keeps its memory tombstone (it is
 * never unmarked), so memory never serves the key again in this process
 * while LMDB may still hold it: the error is logged, the first at once and
 * then a count at most every W_FAULT_LOG_MS (each removal of a failing
 * episode is dropped).
 */
static void
msg_drop(struct cache_store *s, struct wmsg *m, int rc)
{
	struct cdn_ratelog_report r;

	m->is_dropped = 1;
	if (m->kind == W_CHUNK) {
		/* The body is no longer whole: the rest is not written. */
		if (atomic_exchange_explicit(&m->st->state, STREAM_FAILED,
		        memory_order_acq_rel) == STREAM_OPEN)
			atomic_fetch_add_explicit(
			    &s->st_put_drops, 1, memory_order_relaxed);
		cache_stream_wake(m->st);
	} else if (m->kind == W_PUT) {
		atomic_fetch_add_explicit(
		    &s->st_put_drops, 1, memory_order_relaxed);
		return;
	}
	if (m->kind != W_REMOVE && m->kind != W_DELETE)
		return;
	switch (
	    cdn_ratelog_hit(&s->rmlost, 1, cdn_now_ms(), W_FAULT_LOG_MS, &r)) {
	case CDN_RATELOG_BEGIN:
		CDN_LOG(CDN_LOG_ERR, "cache", "removal not persisted: %s",
		    mdb_strerror(rc));
		break;
	case CDN_RATELOG_REPEAT:
		CDN_LOG(CDN_LOG_ERR, "cache",
		    "removals not persisted: %" PRIu64
		    " since it began %" PRIu64 " s ago (%" PRIu64
		    " since the last line)",
		    r.count, r.elapsed_ms / 1000, r.repeats);
		break;
	default:
		break;
	}
}

/*
 * Apply the batch v[0..n) in one transaction.  On failure, the message
 * that failed is dropped (a put) or retried once (others), everything
 * else is retried after evicting harder; after W_RETRIES attempts the
 * rest is dropped.
 */
static void
writer_apply(struct cache_store *s, struct wmsg **v, size_t n)
{
	MDB_txn *txn = NULL;
	uint64_t need;
	size_t k, fail;
	int rc, squeeze = 0, tries, commit_fails = 0;

	s->batch_failed = 0;
	for (tries = 0; tries < W_RETRIES; tries++) {
		need = 0;
		for (k = 0; k < n; k++) {
			if (!v[k]->is_dropped)
				need += msg_estimate(s, v[k]);
		}
		cache_evict_make_room(s, need, squeeze, v, n);
		cache_store_purge_refresh(s);
		rc = cache_store_txn_begin(s, 0, &txn);
		if (rc != 0) {
			/* Logged and counted by cache_store_txn_begin. */
			atomic_store_explicit(&s->w_fault,
			    (int)fault_of(s, rc, need), memory_order_relaxed);
			break;
		}
		fail = n;
		for (k = 0; k < n; k++) {
			if (v[k]->is_dropped || v[k]->is_applied)
				continue;
			rc = cache_store_lmdb_check(s, msg_apply(s, txn, v[k]));
			if (rc != 0) {
				fail = k;
				break;
			}
		}
		if (rc == 0) {
			rc = cache_writer_commit(s, &txn);
			if (rc == 0) {
				for (k = 0; k < n; k++) {
					if (!v[k]->is_dropped)
						v[k]->is_applied = 1;
					if (v[k]->is_applied &&
					    v[k]->kind == W_CHUNK)
						cache_stream_publish(v[k]);
					if (v[k]->is_applied &&
					    (v[k]->kind == W_PUT ||
					        (v[k]->kind == W_CHUNK &&
					            v[k]->last &&
					            !v[k]->end_dropped)))
						atomic_fetch_add_explicit(
						    &s->st_puts, 1,
						    memory_order_relaxed);
				}
				write_ok(s, 0);
				return;
			}
			commit_fails++;
		} else {
			cache_store_txn_abort(s, &txn);
		}
		if (rc == MDB_MAP_FULL)
			atomic_fetch_add_explicit(
			    &s->st_map_full, 1, memory_order_relaxed);
		if (is_full(rc))
			squeeze = 1;
		else
			cache_writer_failed(
			    s, fail < n ? "write" : "commit", rc, need);
		if (fail < n) {
			if (v[fail]->kind == W_PUT ||
			    v[fail]->kind == W_CHUNK ||
			    ++v[fail]->attempts >= W_MSG_TRIES)
				msg_drop(s, v[fail], rc);
		} else if (commit_fails >= 2) {
			/* The commit itself keeps failing: keep only the
			 * removals for the last attempts. */
			for (k = 0; k < n; k++) {
				if (!v[k]->is_dropped &&
				    (v[k]->kind == W_PUT ||
				        v[k]->kind == W_CHUNK ||
				        v[k]->kind == W_TOUCH))
					msg_drop(s, v[k], rc);
			}
		}
	}
	for (k = 0; k < n; k++) {
		if (!v[k]->is_dropped && !v[k]->is_applied)
			msg_drop(s, v[k], rc);
	}
}

/* A damaged store: drop the batch without touching LMDB. */
static void
writer_discard(struct cache_store *s, struct wmsg **v, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		v[k]->is_dropped = 1;
		if (v[k]->kind == W_PUT)
			atomic_fetch_add_explicit(
			    &s->st_put_drops, 1, memory_order_relaxed);
	}
}

void
cache_writer_msg_free(struct wmsg **mp)
{
	struct wmsg *m = *mp;

	*mp = NULL;
	if (m->obj != NULL)
		cache_obj_unref(&m->obj);
	if (m->release != NULL)
		m->release(m->rel_arg);
	if (m->st != NULL)
		cache_stream_unref(&m->st);
	free(m);
}

static void
cond_wait_until_ms(pthread_cond_t *c, pthread_mutex_t *mtx, uint64_t ms)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	(void)pthread_cond_timedwait(c, mtx, &ts);
}

/* Is there a reason for the writer to act now?  Under s->qmtx. */
static int
writer_has_work(struct cache_store *s, uint64_t now, uint64_t *deadline)
{
	int sync_wanted;

	sync_wanted = s->sync_req > s->sync_done;
	if (s->qhead != NULL) {
		*deadline = s->qhead->enq_ms + W_LINGER_MS;
		/* A full transaction of streamed chunks, or a body's last
		 * chunk, goes at once: its fill is waiting for it. */
		return s->stop || sync_wanted || s->qcount >= W_BATCH_MSGS ||
		    s->qbytes >= s->batch_bytes ||
		    s->qchunk_bytes >= W_BATCH_CHUNK_BYTES || s->qlasts > 0 ||
		    now >= *deadline;
	}
	if (s->stop || sync_wanted)
		return 1;
	if (s->dirty) {
		*deadline = s->last_env_sync_ms + W_SYNC_INTERVAL_MS;
		return now >= *deadline;
	}
	*deadline = now + W_IDLE_MS;
	return 0;
}

void *
cache_writer_main(void *arg)
{
	struct cache_store *s = arg;
	struct wmsg *batch[W_BATCH_MSGS];
	uint64_t now, deadline, bytes, chunk_bytes, last_seq, gen;
	size_t n;
	int rc;

	pthread_mutex_lock(&s->qmtx);
	for (;;) {
		now = cdn_now_ms();
		while (!writer_has_work(s, now, &deadline)) {
			cond_wait_until_ms(&s->qcond, &s->qmtx, deadline);
			now = cdn_now_ms();
		}
		n = 0;
		bytes = 0;
		chunk_bytes = 0;
		last_seq = 0;
		while (s->qhead != NULL && n < W_BATCH_MSGS &&
		    (n == 0 ||
		        (bytes + s->qhead->bytes <= s->batch_bytes &&
		            (s->qhead->kind != W_CHUNK ||
		                chunk_bytes + s->qhead->bytes <=
		                    W_BATCH_CHUNK_BYTES)))) {
			if (s->qhead->kind == W_CHUNK)
				chunk_bytes += s->qhead->bytes;
			batch[n] = s->qhead;
			s->qhead = batch[n]->next;
			if (s->qhead == NULL)
				s->qtail = &s->qhead;
			s->qcount--;
			s->qbytes -= batch[n]->bytes;
			if (batch[n]->kind == W_CHUNK)
				s->qchunk_bytes -= batch[n]->bytes;
			if (batch[n]->kind == W_CHUNK && batch[n]->last)
				s->qlasts--;
			bytes += batch[n]->bytes;
			last_seq = batch[n]->seq;
			n++;
		}
		pthread_mutex_unlock(&s->qmtx);

		if (n > 0) {
			if (cache_store_is_damaged(s))
				writer_discard(s, batch, n);
			else
				writer_apply(s, batch, n);
			for (size_t k = 0; k < n; k++) {
				if (batch[k]->kind == W_REMOVE &&
				    batch[k]->is_applied)
					cache_mem_unmark(s->mem, batch[k]->key,
					    batch[k]->seq);
				if (batch[k]->kind == W_PUT)
					cache_mem_unpin(s->mem, batch[k]->obj);
				if (batch[k]->st != NULL &&
				    (batch[k]->last ||
				        batch[k]->kind == W_STREAM_ABORT ||
				        atomic_load_explicit(
				            &batch[k]->st->state,
				            memory_order_relaxed) !=
				            STREAM_OPEN))
					cache_stream_unlist(s, batch[k]->st);
				cache_writer_msg_free(&batch[k]);
			}
		}

		pthread_mutex_lock(&s->qmtx);
		if (n > 0)
			s->done_seq = last_seq;
		now = cdn_now_ms();
		if ((s->sync_req > s->sync_done &&
		        s->done_seq >= s->sync_seq) ||
		    (s->dirty &&
		        (now >= s->last_env_sync_ms + W_SYNC_INTERVAL_MS ||
		            (s->stop && s->qhead == NULL)))) {
			gen = s->done_seq >= s->sync_seq ? s->sync_req
			                                 : s->sync_done;
			s->dirty = 0;
			pthread_mutex_unlock(&s->qmtx);
			rc = mdb_env_sync(s->env, 1);
			if (rc != 0) {
				s->sync_failed = 1;
				cache_writer_failed(s, "mdb_env_sync", rc, 0);
			} else {
				write_ok(s, 1);
			}
			pthread_mutex_lock(&s->qmtx);
			s->last_env_sync_ms = cdn_now_ms();
			if (gen > s->sync_done)
				s->sync_done = gen;
			pthread_cond_broadcast(&s->dcond);
		}
		if (s->stop && s->qhead == NULL && !s->dirty &&
		    s->sync_req == s->sync_done)
			break;
	}
	pthread_mutex_unlock(&s->qmtx);
	/* Streams whose end never came: their chunks stay, unreferenced. */
	while (s->streams != NULL)
		cache_stream_unlist(s, s->streams);
	return NULL;
}

/*
 * Queue <m>.  A put or touch is refused (returns 0) when the queue is
 * full; removals are always queued.  With <tomb>, plants the memory
 * tier's tombstone under the queue lock, before the writer can see the
 * message.
 */
int
cache_writer_enqueue(struct cache_store *s, struct wmsg *m, int tomb)
{
	int was_empty;

	pthread_mutex_lock(&s->qmtx);
	/* One object above WQ_MAX_BYTES (up to max_object_bytes, a large
	 * download) is still taken when it would be the only one waiting:
	 * its memory is the memory tier's anyway.  Streamed chunks are always
	 * taken: their owner bounds how many it has waiting. */
	if ((m->kind == W_PUT &&
	        (s->qcount >= WQ_MAX_MSGS ||
	            (s->qbytes + m->bytes > WQ_MAX_BYTES && s->qbytes > 0))) ||
	    (m->kind == W_TOUCH && s->qcount >= WQ_MAX_MSGS) || s->stop) {
		pthread_mutex_unlock(&s->qmtx);
		return 0;
	}
	m->seq = ++s->enq_seq;
	m->enq_ms = cdn_now_ms();
	if (tomb)
		cache_mem_remove(s->mem, m->key, m->seq);
	was_empty = s->qhead == NULL;
	m->next = NULL;
	*s->qtail = m;
	s->qtail = &m->next;
	s->qcount++;
	s->qbytes += m->bytes;
	if (m->kind == W_CHUNK)
		s->qchunk_bytes += m->bytes;
	if (m->kind == W_CHUNK && m->last)
		s->qlasts++;
	if (was_empty || s->qcount >= W_BATCH_MSGS ||
	    s->qbytes >= s->batch_bytes ||
	    (m->kind == W_CHUNK &&
	        (m->last || s->qchunk_bytes >= W_BATCH_CHUNK_BYTES)))
		pthread_cond_signal(&s->qcond);
	pthread_mutex_unlock(&s->qmtx);
	return 1;
}

struct wmsg *
cache_writer_msg_new(
    int kind, const uint8_t key[CACHE_HASH_LEN], uint64_t variant)
{
	struct wmsg *m;

	m = cdn_xcalloc(1, sizeof(*m));
	m->kind = kind;
	memcpy(m->key, key, CACHE_HASH_LEN);
	m->variant = variant;
	return m;
}

/* ---------------- purges ---------------- */

/*
 * Purges.  purged (another process on the same environment) applies a
 * purge in one write transaction: the next sequence number goes to
 * meta "purge_seq", each item to purge_log (seq, item) and to
 * purge_rules (kind, name) -> (hard seq, soft seq), and a hard URL purge
 * deletes the URL's objects.  It syncs, then publishes the seq in the
 * shared page (CACHE_PURGE_SEQ_FILE, mapped by every process), then
 * answers.  A lookup compares the page with s->rules_seq (one relaxed
 * load: nothing else while no purge happens) and, when it moved, one
 * thread reads the new log entries into s->rules.  An object is purged if
 * a rule's seq exceeds its purge_gen (the published seq when its fill
 * began); the verdict is cached in the object for the current seq.  The
 * page is only a doorbell: LMDB is the truth, and at open the rules are
 * loaded from purge_rules, so a page lost or reset costs nothing.
 */

/* The seq published in the shared page. */
static uint64_t
purge_page_load(struct cache_store *s)
{
	return atomic_load_explicit(s->purge_page, memory_order_acquire);
}

/* Raise the shared page to <seq> (never lower it). */
void
cache_store_purge_publish(struct cache_store *s, uint64_t seq)
{
	uint64_t cur = purge_page_load(s);

	while (cur < seq &&
	    !atomic_compare_exchange_weak_explicit(s->purge_page, &cur, seq,
	        memory_order_release, memory_order_acquire))
		;
}

static int
purge_page_open(struct cache_store *s)
{
	char path[4096];
	struct stat st;
	long pg = sysconf(_SC_PAGESIZE);
	void *p;

	snprintf(path, sizeof(path), "%s/%s", s->dir, CACHE_PURGE_SEQ_FILE);
	s->purge_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (s->purge_fd == -1 || fstat(s->purge_fd, &st) == -1 ||
	    (st.st_size < pg && ftruncate(s->purge_fd, pg) == -1)) {
		CDN_LOG(CDN_LOG_ERR, "cache", "%s: %s", path, strerror(errno));
		return CDN_EIO;
	}
	p = mmap(NULL, (size_t)pg, PROT_READ | PROT_WRITE, MAP_SHARED,
	    s->purge_fd, 0);
	if (p == MAP_FAILED) {
		CDN_LOG(
		    CDN_LOG_ERR, "cache", "mmap %s: %s", path, strerror(errno));
		return CDN_EIO;
	}
	s->purge_page = p;
	return CDN_OK;
}

static void
purge_fini(struct cache_store *s)
{
	if (s->purge_page != NULL)
		munmap((void *)(uintptr_t)s->purge_page,
		    (size_t)sysconf(_SC_PAGESIZE));
	s->purge_page = NULL;
	if (s->purge_fd != -1)
		close(s->purge_fd);
	s->purge_fd = -1;
	cache_rules_free(&s->rules);
	pthread_rwlock_destroy(&s->rules_lock);
	pthread_mutex_destroy(&s->reload_mtx);
}

static int
purge_seq_get(struct cache_store *s, MDB_txn *txn, uint64_t *seq)
{
	MDB_val k, v;
	int rc;

	k = mval("purge_seq", 9);
	rc = mdb_get(txn, s->db_meta, &k, &v);
	*seq = 0;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc == 0 && v.mv_size == 8)
		*seq = get_le64(v.mv_data);
	return rc;
}

/* A purge record's kind byte, read from disk: one cache_rules_add takes. */
static int
purge_kind_known(uint8_t k)
{
	return k == CACHE_PURGE_URL || k == CACHE_PURGE_TAG ||
	    k == CACHE_PURGE_PREFIX;
}

/* At open: every rule, and the seq they are current to.  MDB_CORRUPTED
 * for a rule it cannot read (the store is then damaged). */
int
cache_store_purge_load_rules(struct cache_store *s, MDB_txn *txn)
{
	MDB_cursor *cur;
	MDB_val k, v;
	uint64_t seq;
	int rc;

	rc = purge_seq_get(s, txn, &seq);
	if (rc != 0)
		return rc;
	rc = mdb_cursor_open(txn, s->db_prules, &cur);
	if (rc != 0)
		return rc;
	pthread_rwlock_wrlock(&s->rules_lock);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		const uint8_t *kp = k.mv_data;

		if (k.mv_size < 2 || v.mv_size != 16 ||
		    k.mv_size - 1 > CACHE_TAGS_CAP)
			continue;
		if (!purge_kind_known(kp[0])) {
			rc = MDB_CORRUPTED; /* a purge we cannot read */
			break;
		}
		cache_rules_add(s->rules, kp[0], kp + 1, k.mv_size - 1,
		    get_le64(v.mv_data), get_le64((uint8_t *)v.mv_data + 8));
	}
	pthread_rwlock_unlock(&s->rules_lock);
	mdb_cursor_close(cur);
	atomic_store_explicit(&s->rules_seq, seq, memory_order_release);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Read the purge log past s->rules_seq into s->rules.  Under reload_mtx.
 * A record it cannot read marks the store damaged: skipping it would
 * serve what that purge removed. */
static void
rules_load_log(struct cache_store *s)
{
	uint8_t start[12];
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	uint64_t seq, from;
	int rc;

	if (cache_store_txn_begin(s, MDB_RDONLY, &txn) != 0)
		return;
	rc = purge_seq_get(s, txn, &seq);
	if (rc == 0)
		rc = mdb_cursor_open(txn, s->db_plog, &cur);
	if (rc != 0)
		goto out;
	from = atomic_load_explicit(&s->rules_seq, memory_order_relaxed);
	put_be64(start, from + 1);
	put_be32(start + 8, 0);
	k = mval(start, sizeof(start));
	pthread_rwlock_wrlock(&s->rules_lock);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		const uint8_t *vp = v.mv_data;
		uint64_t at;

		if (k.mv_size != 12 || v.mv_size < 3)
			continue;
		at = get_be64(k.mv_data);
		if (at > seq)
			break;
		if (!purge_kind_known(vp[0])) {
			rc = MDB_CORRUPTED; /* a purge we cannot read */
			break;
		}
		cache_rules_add(
		    s->rules, vp[0], vp + 2, v.mv_size - 2, vp[1] ? 0 : at, at);
	}
	pthread_rwlock_unlock(&s->rules_lock);
	if (rc == 0 || rc == MDB_NOTFOUND)
		atomic_store_explicit(&s->rules_seq, seq, memory_order_release);
out:
	if (rc != 0 && rc != MDB_NOTFOUND) {
		cache_store_lmdb_check(s, rc);
		CDN_LOG(
		    CDN_LOG_ERR, "cache", "purge log: %s", mdb_strerror(rc));
		atomic_fetch_add_explicit(&s->st_io, 1, memory_order_relaxed);
	}
	if (cur != NULL)
		mdb_cursor_close(cur);
	cache_store_txn_abort(s, &txn);
}

/* Load what cache_store_purge_refresh() saw published, unless another
 * thread did. */
void
cache_store_purge_reload(struct cache_store *s)
{
	pthread_mutex_lock(&s->reload_mtx);
	if (purge_page_load(s) >
	    atomic_load_explicit(&s->rules_seq, memory_order_acquire))
		rules_load_log(s);
	pthread_mutex_unlock(&s->reload_mtx);
}

/* cache_store_purge_verdict() for an object filled before purge <seq>. */
int
cache_store_purge_verdict_slow(
    struct cache_store *s, struct cache_obj *o, uint64_t seq)
{
	int v;

	if (atomic_load_explicit(&o->purge_seen, memory_order_acquire) == seq)
		return atomic_load_explicit(
		    &o->purge_state, memory_order_relaxed);
	pthread_rwlock_rdlock(&s->rules_lock);
	v = cache_rules_match(s->rules, o);
	pthread_rwlock_unlock(&s->rules_lock);
	atomic_store_explicit(&o->purge_state, v, memory_order_relaxed);
	atomic_store_explicit(&o->purge_seen, seq, memory_order_release);
	return v;
}

uint64_t
cache_store_purge_seq(struct cache_store *s)
{
	uint64_t a, b;

	MAGIC_CHECK(s, CACHE_STORE_MAGIC);
	a = purge_page_load(s);
	b = atomic_load_explicit(&s->rules_seq, memory_order_acquire);
	return a > b ? a : b;
}

/* Raise the rule of one item to <seq> and log it. */
static int
purge_record(struct cache_store *s, MDB_txn *txn,
    const struct cache_purge_item *it, unsigned idx, uint64_t seq, int soft)
{
	uint8_t kbuf[1 + CACHE_TAGS_CAP], val[16], lk[12];
	uint8_t *lv;
	const void *name = it->kind == CACHE_PURGE_URL ? (const void *)it->key
	                                               : (const void *)it->name;
	size_t len = it->kind == CACHE_PURGE_URL ? CACHE_HASH_LEN : it->len;
	uint64_t hard = 0, sft = 0;
	MDB_val k, v;
	int rc;

	if (len == 0 || len > CACHE_TAGS_CAP)
		return EINVAL;
	kbuf[0] = (uint8_t)it->kind;
	memcpy(kbuf + 1, name, len);
	k = mval(kbuf, len + 1);
	rc = mdb_get(txn, s->db_prules, &k, &v);
	if (rc == 0 && v.mv_size == 16) {
		hard = get_le64(v.mv_data);
		sft = get_le64((uint8_t *)v.mv_data + 8);
	} else if (rc != 0 && rc != MDB_NOTFOUND) {
		return rc;
	}
	if (!soft)
		hard = seq;
	sft = seq;
	put_le64(val, hard);
	put_le64(val + 8, sft);
	v = mval(val, sizeof(val));
	rc = mdb_put(txn, s->db_prules, &k, &v, 0);
	if (rc != 0)
		return rc;
	put_be64(lk, seq);
	put_be32(lk + 8, idx);
	k = mval(lk, sizeof(lk));
	v.mv_size = len + 2;
	v.mv_data = NULL;
	rc = mdb_put(txn, s->db_plog, &k, &v, MDB_RESERVE);
	if (rc != 0)
		return rc;
	lv = v.mv_data;
	lv[0] = (uint8_t)it->kind;
	lv[1] = soft ? 1 : 0;
	memcpy(lv + 2, name, len);
	return 0;
}

int
cache_store_purge(struct cache_store *s, struct cache_purge_item *items,
    unsigned n, int soft, int dry, uint64_t *seqp)
{
	MDB_txn *txn = NULL;
	MDB_val k, v;
	uint8_t sb[8];
	uint64_t seq;
	int rc;

	MAGIC_CHECK(s, CACHE_STORE_MAGIC);
	CDN_ASSERT(items != NULL || n == 0);
	rc = cache_store_txn_begin(s, dry ? MDB_RDONLY : 0, &txn);
	if (rc != 0)
		return CDN_EIO;
	rc = purge_seq_get(s, txn, &seq);
	if (rc != 0)
		goto fail;
	if (!dry)
		seq++;
	for (unsigned i = 0; i < n; i++) {
		struct cache_purge_item *it = &items[i];

		it->matched = CACHE_MATCHED_UNKNOWN;
		if (it->kind == CACHE_PURGE_TAG) {
			rc = cache_objdb_tag_count(
			    s, txn, it->name, it->len, &it->matched);
			if (rc != 0)
				goto fail;
		} else if (it->kind == CACHE_PURGE_URL) {
			rc = cache_objdb_key_count(
			    s, txn, it->key, &it->matched);
			if (rc == 0 && !dry && !soft && it->matched > 0)
				rc = cache_objdb_remove_key(s, txn, it->key);
			if (rc != 0)
				goto fail;
		}
		if (!dry && (rc = purge_record(s, txn, it, i, seq, soft)) != 0)
			goto fail;
	}
	if (dry) {
		cache_store_txn_abort(s, &txn);
		*seqp = seq;
		return CDN_OK;
	}
	put_le64(sb, seq);
	k = mval("purge_seq", 9);
	v = mval(sb, sizeof(sb));
	rc = mdb_put(txn, s->db_meta, &k, &v, 0);
	if (rc != 0)
		goto fail;
	rc = cache_store_txn_commit(s, &txn);
	if (rc != 0)
		goto fail;
	/* Durable before anyone is told: the OK must survive a crash. */
	rc = mdb_env_sync(s->env, 1);
	if (rc != 0)
		goto fail;
	cache_store_purge_publish(s, seq);
	*seqp = seq;
	return CDN_OK;
fail:
	CDN_LOG(CDN_LOG_ERR, "cache", "purge: %s", mdb_strerror(rc));
	atomic_fetch_add_explicit(&s->st_io, 1, memory_order_relaxed);
	cache_store_txn_abort(s, &txn);
	return CDN_EIO;
}

/*
 * Reclaim space after tag and prefix purges: scan up to <max_scan> object
 * records from *pos (a CACHE_OBJKEY_LEN key; all zero to start) and
 * delete, in one write transaction, those a hard purge covers.  *pos
 * moves on; *done is set once the scan reached the end; *deleted counts.
 * A batch that deleted anything is synced, not for its own sake (a
 * reclaim lost in a crash is redone, and lookups never serve what it
 * deletes) but so that the next purge's fsync does not write its pages.
 * CDN_OK or CDN_EIO.
 */
int
cache_store_reclaim(struct cache_store *s, uint8_t pos[CACHE_OBJKEY_LEN],
    unsigned max_scan, uint64_t *deleted, int *done)
{
	uint8_t(*dead)[CACHE_OBJKEY_LEN] = NULL;
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	struct cache_record_view rv;
	struct cache_obj view;
	uint64_t seq;
	unsigned ndead = 0, n = 0;
	int rc, existed;

	MAGIC_CHECK(s, CACHE_STORE_MAGIC);
	*done = 0;
	cache_store_purge_refresh(s);
	seq = atomic_load_explicit(&s->rules_seq, memory_order_acquire);
	dead = calloc(max_scan, sizeof(*dead));
	if (dead == NULL)
		return CDN_ENOMEM;
	rc = cache_store_txn_begin(s, 0, &txn);
	if (rc != 0) {
		free(dead);
		return CDN_EIO;
	}
	rc = mdb_cursor_open(txn, s->db_obj, &cur);
	if (rc != 0)
		goto out;
	k = mval(pos, CACHE_OBJKEY_LEN);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	     rc == 0 && n < max_scan;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT), n++) {
		if (k.mv_size != CACHE_OBJKEY_LEN ||
		    cache_record_decode(v.mv_data, v.mv_size, k.mv_data, &rv) !=
		        CDN_OK ||
		    rv.purge_gen >= seq)
			continue;
		/* A view borrowing the map, for the rule check only. */
		memset(&view, 0, sizeof(view));
		view.magic = CACHE_OBJ_MAGIC;
		memcpy(view.key, k.mv_data, CACHE_HASH_LEN);
		view.purge_gen = rv.purge_gen;
		view.url = (char *)(uintptr_t)rv.url;
		view.url_len = rv.url_len;
		view.tags = (char *)(uintptr_t)rv.tags;
		view.tags_len = rv.tags_len;
		pthread_rwlock_rdlock(&s->rules_lock);
		if (cache_rules_match(s->rules, &view) == CACHE_PURGED_HARD)
			memcpy(dead[ndead++], k.mv_data, CACHE_OBJKEY_LEN);
		pthread_rwlock_unlock(&s->rules_lock);
	}
	if (rc == 0 && k.mv_size == CACHE_OBJKEY_LEN)
		memcpy(pos, k.mv_data, CACHE_OBJKEY_LEN); /* the next one */
	else if (rc == MDB_NOTFOUND)
		*done = 1;
	else if (rc == 0)
		*done = 1; /* a key of the wrong size: stop the scan */
	else
		goto out;
	mdb_cursor_close(cur);
	cur = NULL;
	rc = 0;
	for (unsigned i = 0; i < ndead && rc == 0; i++) {
		rc = cache_objdb_delete(s, txn, dead[i], 1, &existed);
		*deleted += existed ? 1 : 0;
	}
	if (rc == 0)
		rc = cache_store_txn_commit(s, &txn);
	if (rc == 0 && ndead > 0)
		rc = mdb_env_sync(s->env, 1);
out:
	if (cur != NULL)
		mdb_cursor_close(cur);
	cache_store_txn_abort(s, &txn);
	free(dead);
	if (rc != 0) {
		CDN_LOG(CDN_LOG_ERR, "cache", "reclaim: %s", mdb_strerror(rc));
		atomic_fetch_add_explicit(&s->st_io, 1, memory_order_relaxed);
		return CDN_EIO;
	}
	return CDN_OK;
}

/* The budget-derived sizes, once the map size is known. */
static void
store_set_budget(
    struct cache_store *s, uint64_t disk, const struct cache_store_conf *conf)
{
	s->disk_bytes = disk;
	s->max_disk_object = disk / DISK_OBJECT_DIV;
	s->high_bytes = disk / 100 * conf->high_water_pct;
	s->low_bytes = disk / 100 * conf->low_water_pct;
	s->squeeze_bytes = disk / 100 * SQUEEZE_PCT;
	s->batch_bytes = (s->high_bytes - s->low_bytes) / 2;
	if (s->batch_bytes > W_BATCH_BYTES_MAX)
		s->batch_bytes = W_BATCH_BYTES_MAX;
	if (s->batch_bytes < W_BATCH_BYTES_MIN)
		s->batch_bytes = W_BATCH_BYTES_MIN;
}

/* ---------------- open / close ---------------- */

/* Open the databases and check the format, in the opening txn. */
static int
open_dbs(struct cache_store *s, MDB_txn *txn)
{
	static const char *const names[] = {CACHE_DB_OBJECTS, CACHE_DB_BODIES,
	    CACHE_DB_VARY, CACHE_DB_LRU, CACHE_DB_LRU_POS, CACHE_DB_META,
	    CACHE_DB_PRULES, CACHE_DB_PLOG, CACHE_DB_TAGS};
	MDB_dbi *dbis[CDN_ARRAY_LEN(names)];
	uint8_t fmt[8];
	MDB_cursor *cur;
	MDB_val k, v;
	int rc, is_current;

	dbis[0] = &s->db_obj;
	dbis[1] = &s->db_body;
	dbis[2] = &s->db_vary;
	dbis[3] = &s->db_lru;
	dbis[4] = &s->db_lru_pos;
	dbis[5] = &s->db_meta;
	dbis[6] = &s->db_prules;
	dbis[7] = &s->db_plog;
	dbis[8] = &s->db_tags;
	for (size_t i = 0; i < CDN_ARRAY_LEN(names); i++) {
		rc = mdb_dbi_open(txn, names[i],
		    MDB_CREATE | (dbis[i] == &s->db_tags ? MDB_DUPSORT : 0),
		    dbis[i]);
		if (rc != 0) {
			CDN_LOG(CDN_LOG_ERR, "cache", "mdb_dbi_open %s: %s",
			    names[i], mdb_strerror(rc));
			return rc;
		}
	}

	k = mval("format", 6);
	rc = mdb_get(txn, s->db_meta, &k, &v);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	is_current = rc == 0 && v.mv_size == sizeof(fmt) &&
	    get_le32(v.mv_data) == STORE_FORMAT_MAGIC &&
	    get_le32((const uint8_t *)v.mv_data + 4) == STORE_FORMAT_VERSION;
	if (!is_current) {
		if (cache_store_object_count(s, txn) > 0 || rc == 0)
			CDN_LOG(CDN_LOG_WARN, "cache",
			    "%s: unknown store format, emptying it", s->dir);
		for (size_t i = 0; i < CDN_ARRAY_LEN(names); i++) {
			rc = mdb_drop(txn, *dbis[i], 0);
			if (rc != 0)
				return rc;
		}
		put_le32(fmt, STORE_FORMAT_MAGIC);
		put_le32(fmt + 4, STORE_FORMAT_VERSION);
		v = mval(fmt, sizeof(fmt));
		rc = mdb_put(txn, s->db_meta, &k, &v, 0);
		if (rc != 0)
			return rc;
	}

	/* lru_seq: the usage record, or past the newest lru key. */
	k = mval("usage", 5);
	rc = mdb_get(txn, s->db_meta, &k, &v);
	if (rc == 0 && v.mv_size == STORE_USAGE_LEN &&
	    get_le64((const uint8_t *)v.mv_data + 32) ==
	        XXH3_64bits(v.mv_data, 32))
		s->lru_seq = get_le64((const uint8_t *)v.mv_data + 24);
	rc = mdb_cursor_open(txn, s->db_lru, &cur);
	if (rc != 0)
		return rc;
	rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	if (rc == 0 && k.mv_size == CACHE_LRUKEY_LEN &&
	    get_be64((const uint8_t *)k.mv_data + 4) > s->lru_seq)
		s->lru_seq = get_be64((const uint8_t *)k.mv_data + 4);
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* The directory's fd and lock; the marker is no longer armed for it. */
static void
store_close_files(struct cache_store *s)
{
	if (s->dirfd != -1) {
		cache_damage_disarm(s->dirfd);
		close(s->dirfd);
		s->dirfd = -1;
	}
	if (s->lock_fd != -1)
		close(s->lock_fd); /* releases the flock */
	s->lock_fd = -1;
}

static int
conf_ok(const struct cache_store_conf *conf)
{
	return conf->dir != NULL && conf->dir[0] != '\0' &&
	    (conf->disk_bytes == 0 ||
	        conf->disk_bytes >= (UINT64_C(1) << 20)) &&
	    conf->high_water_pct > 0 && conf->high_water_pct <= 100 &&
	    conf->low_water_pct < conf->high_water_pct;
}

/* The short cause of an LMDB or errno failure, in *e. */
static void
open_why(struct cache_open_err *e, int rc)
{
	e->kind = is_damage(rc) ? CACHE_OPEN_DAMAGED : CACHE_OPEN_FAILED;
	snprintf(e->why, sizeof(e->why), "%s", mdb_strerror(rc));
	/* strerror's "Read-only file system" reads better mid-sentence. */
	if (rc > 0 && e->why[0] >= 'A' && e->why[0] <= 'Z')
		e->why[0] = (char)(e->why[0] - 'A' + 'a');
}

/*
 * Open the environment and check, before any data page is read, that
 * data.mdb is as long as its meta page says (LMDB would fault past its
 * end).  Inside the store: a fault here marks the cache damaged.
 */
static int
open_env(struct cache_store *s, const struct cache_store_conf *conf,
    uint64_t *mapsize, struct cache_open_err *e)
{
	MDB_envinfo ei;
	MDB_stat st;
	int rc, dead;

	cache_lmdb_enter();
	rc = mdb_env_open(s->env, conf->dir, MDB_NOSYNC | MDB_NORDAHEAD, 0644);
	if (rc == 0) {
		/* Free the reader slots of dead processes (a crashed edged). */
		(void)mdb_reader_check(s->env, &dead);
		rc = mdb_env_stat(s->env, &st);
	}
	if (rc == 0)
		rc = mdb_env_info(s->env, &ei);
	cache_lmdb_leave();
	if (rc != 0) {
		open_why(e, rc);
		return CDN_EIO;
	}
	s->psize = st.ms_psize;
	/* disk_bytes 0 (purged): adopt the map size the environment has. */
	if (*mapsize == 0)
		*mapsize = ei.me_mapsize;
	if (cache_damage_check_size(s->dirfd,
	        ((uint64_t)ei.me_last_pgno + 1) * st.ms_psize, e->why,
	        sizeof(e->why)) != CDN_OK) {
		e->kind = CACHE_OPEN_DAMAGED;
		return CDN_ECORRUPT;
	}
	return CDN_OK;
}

/*
 * Take the directory's shared lock, open it for the damage marker, and
 * refuse it if a crash left the marker.  Fills *e on failure.
 */
static int
open_dir(struct cache_store *s, const char *dir, struct cache_open_err *e)
{
	if (cache_damage_lock_shared(dir, &s->lock_fd) != CDN_OK ||
	    (s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		open_why(e, errno);
		return CDN_EIO;
	}
	if (cache_damage_marked(s->dirfd, e->why, sizeof(e->why))) {
		e->kind = CACHE_OPEN_DAMAGED;
		return CDN_ECORRUPT;
	}
	cache_damage_arm(s->dirfd);
	return CDN_OK;
}

struct cache_store *
cache_store_open(const struct cache_store_conf *conf)
{
	return cache_store_open_diag(conf, NULL);
}

/*
 * Open (creating if needed) the store in conf->dir and start its writer
 * thread.  Reads only the databases' roots and the meta records: no scan.
 * Returns NULL after logging, and with *err filled when not NULL, if the
 * configuration is invalid or the directory or the environment cannot be
 * opened or is damaged.
 */
struct cache_store *
cache_store_open_diag(
    const struct cache_store_conf *conf, struct cache_open_err *err)
{
	struct cache_store *s;
	struct cache_open_err e;
	pthread_rwlockattr_t rwa;
	pthread_condattr_t ca;
	MDB_txn *txn = NULL;
	long pg;
	uint64_t mapsize;
	int rc;

	CDN_ASSERT(conf != NULL);
	memset(&e, 0, sizeof(e));
	if (!conf_ok(conf)) {
		CDN_LOG(CDN_LOG_ERR, "cache",
		    "store: invalid configuration (dir, disk >= 1 MiB, "
		    "0 <= low < high <= 100)");
		e.kind = CACHE_OPEN_FAILED;
		snprintf(e.why, sizeof(e.why), "invalid configuration");
		goto out_err;
	}
	if (mkdir(conf->dir, 0755) == -1 && errno != EEXIST) {
		open_why(&e, errno);
		CDN_LOG(CDN_LOG_ERR, "cache", "mkdir %s: %s", conf->dir, e.why);
		goto out_err;
	}

	s = cdn_xcalloc(1, sizeof(*s));
	s->magic = CACHE_STORE_MAGIC;
	s->dir = cdn_xstrdup(conf->dir);
	s->max_object_bytes = conf->max_object_bytes;
	s->purge_fd = -1;
	s->dirfd = -1;
	s->lock_fd = -1;
	s->rules = cache_rules_new();
	CDN_ASSERT(pthread_rwlock_init(&s->rules_lock, NULL) == 0);
	CDN_ASSERT(pthread_mutex_init(&s->reload_mtx, NULL) == 0);
	s->qtail = &s->qhead;
	pthread_rwlockattr_init(&rwa);
	pthread_rwlockattr_setkind_np(
	    &rwa, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	CDN_ASSERT(pthread_rwlock_init(&s->map_lock, &rwa) == 0);
	pthread_rwlockattr_destroy(&rwa);
	CDN_ASSERT(pthread_mutex_init(&s->qmtx, NULL) == 0);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	CDN_ASSERT(pthread_cond_init(&s->qcond, &ca) == 0);
	CDN_ASSERT(pthread_cond_init(&s->dcond, &ca) == 0);
	pthread_condattr_destroy(&ca);
	if (open_dir(s, conf->dir, &e) != CDN_OK)
		goto fail;

	pg = sysconf(_SC_PAGESIZE);
	mapsize = conf->disk_bytes;
	if (pg > 0 && mapsize % (uint64_t)pg != 0)
		mapsize += (uint64_t)pg - mapsize % (uint64_t)pg;
	rc = mdb_env_create(&s->env);
	if (rc == 0 && mapsize > 0)
		rc = mdb_env_set_mapsize(s->env, (size_t)mapsize);
	if (rc == 0)
		rc = mdb_env_set_maxdbs(s->env, STORE_MAXDBS);
	if (rc == 0)
		rc = mdb_env_set_maxreaders(s->env, STORE_MAXREADERS);
	if (rc != 0) {
		open_why(&e, rc);
		goto fail;
	}
	if (open_env(s, conf, &mapsize, &e) != CDN_OK)
		goto fail;
	store_set_budget(s, mapsize, conf);
	if (purge_page_open(s) != CDN_OK) {
		e.kind = CACHE_OPEN_FAILED;
		snprintf(e.why, sizeof(e.why), "cannot map %s",
		    CACHE_PURGE_SEQ_FILE);
		goto fail;
	}

	rc = cache_store_txn_begin(s, 0, &txn);
	if (rc == 0)
		rc = open_dbs(s, txn);
	if (rc == 0)
		rc = cache_store_purge_load_rules(s, txn);
	if (rc == 0)
		rc = cache_writer_commit(s, &txn);
	if (rc != 0) {
		open_why(&e, rc);
		goto fail;
	}
	s->dirty = 0;
	s->last_env_sync_ms = cdn_now_ms();
	/* A purge committed by a process that died before it published it
	 * (its client got no OK) is published now. */
	cache_store_purge_publish(
	    s, atomic_load_explicit(&s->rules_seq, memory_order_relaxed));

	s->mem = cache_mem_new(conf->memory_bytes, CACHE_MEM_SHARDS);
	rc = pthread_create(&s->writer, NULL, cache_writer_main, s);
	if (rc != 0) {
		CDN_LOG(
		    CDN_LOG_ERR, "cache", "pthread_create: %s", strerror(rc));
		cache_mem_free(&s->mem);
		open_why(&e, rc);
		goto fail;
	}
	CDN_LOG(CDN_LOG_INFO, "cache",
	    "store %s: %" PRIu64 " objects, %" PRIu64 " bytes used of %" PRIu64,
	    s->dir, atomic_load(&s->st_objects), atomic_load(&s->st_bytes),
	    s->disk_bytes);
	return s;

fail:
	CDN_LOG(CDN_LOG_ERR, "cache", "store %s: %s%s", conf->dir,
	    e.kind == CACHE_OPEN_DAMAGED ? "damaged: " : "", e.why);
	cache_store_txn_abort(s, &txn);
	if (s->env != NULL)
		mdb_env_close(s->env);
	store_close_files(s);
	purge_fini(s);
	pthread_cond_destroy(&s->qcond);
	pthread_cond_destroy(&s->dcond);
	pthread_mutex_destroy(&s->qmtx);
	pthread_rwlock_destroy(&s->map_lock);
	free(s->dir);
	MAGIC_WIPE(s);
	free(s);
out_err:
	if (err != NULL)
		*err = e;
	return NULL;
}

/* Commit and sync everything queued, stop the writer, close; NULLs *sp. */
void
cache_store_close(struct cache_store **sp)
{
	struct cache_store *s;

	CDN_ASSERT(sp != NULL);
	s = *sp;
	*sp = NULL;
	if (s == NULL)
		return;
	MAGIC_CHECK(s, CACHE_STORE_MAGIC);
	pthread_mutex_lock(&s->qmtx);
	s->stop = 1;
	pthread_cond_signal(&s->qcond);
	pthread_mutex_unlock(&s->qmtx);
	CDN_ASSERT(pthread_join(s->writer, NULL) == 0);
	CDN_ASSERT(s->qhead == NULL);
	mdb_env_close(s->env);
	store_close_files(s);
	cache_mem_free(&s->mem);
	purge_fini(s);
	pthread_cond_destroy(&s->qcond);
	pthread_cond_destroy(&s->dcond);
	pthread_mutex_destroy(&s->qmtx);
	pthread_rwlock_destroy(&s->map_lock);
	free(s->dir);
	MAGIC_WIPE(s);
	free(s);
}

/* ---------------- reads ---------------- */

/* A new object (without its body) from a decoded record. */
int
cache_record_to_obj(const struct cache_record_view *rv,
    const uint8_t key[CACHE_HASH_LEN], uint64_t variant, struct cache_obj **op)
{
	struct cache_decision d;
	struct cache_obj *o;

	memset(&d, 0, sizeof(d));
	d.storable = (rv->flags & REC_F_STORABLE) != 0;
	d.reason = "stored";
	d.freshness_s = rv->freshness_s;
	d.initial_age_s = rv->initial_age_s;
	d.swr_s = rv->swr_s;
	d.sie_s = rv->sie_s;
	d.must_revalidate = (rv->flags & REC_F_MUST_REVAL) != 0;
	d.no_cache = (rv->flags & REC_F_NO_CACHE) != 0;
	d.heuristic = (rv->flags & REC_F_HEURISTIC) != 0;
	d.derived = (rv->flags & REC_F_DERIVED) != 0;
	o = cache_obj_new(key, variant, rv->status, &d, rv->response_time,
	    rv->url, rv->url_len, rv->fields, rv->fields_len, rv->vary,
	    rv->vary_len);
	if (o == NULL)
		return CDN_ENOMEM;
	o->stored_at = rv->stored_at;
	o->purge_gen = rv->purge_gen;
	if (rv->tags_len > 0 &&
	    cache_obj_set_tags(o, rv->tags, rv->tags_len) != CDN_OK) {
		cache_obj_unref(&o);
		return CDN_ENOMEM;
	}
	*op = o;
	return CDN_OK;
}

/*
 * Load (key, variant) from LMDB into a new object (see cache_store_get);
 * without <with_body>, only its metadata (cache_store_get_meta).
 */
static int
disk_get(struct cache_store *s, const uint8_t key[CACHE_HASH_LEN],
    uint64_t variant, int with_body, struct cache_obj **objp)
{
	uint8_t hv[CACHE_OBJKEY_LEN], ck[CACHE_CHUNKKEY_LEN];
	struct cache_obj *o = NULL;
	struct cache_record_view rv;
	MDB_txn *txn = NULL;
	MDB_val k, v;
	uint64_t seed, left;
	size_t clen;
	int rc;

	cache_record_objkey(hv, key, variant);
	if (cache_store_txn_begin(s, MDB_RDONLY, &txn) != 0)
		return CDN_EIO;
	k = mval(hv, sizeof(hv));
	rc = mdb_get(txn, s->db_obj, &k, &v);
	if (rc != 0)
		goto lmdb_fail;
	/* v borrows the map until the txn ends: everything is copied. */
	rc = cache_record_decode(v.mv_data, v.mv_size, hv, &rv);
	if (rc != CDN_OK)
		goto out;
	rc = cache_record_to_obj(&rv, key, variant, &o);
	if (rc != CDN_OK)
		goto out;
	if (!with_body) {
		/* Chunks come later, as needed (cache_store_load_chunks). */
		o->body_len = rv.body_len;
		o->nchunks = rv.nchunks;
	}

	seed = cache_record_seed(hv);
	left = rv.body_len;
	for (uint32_t i = 0; with_body && i < rv.nchunks; i++) {
		clen =
		    left < CACHE_CHUNK_SIZE ? (size_t)left : CACHE_CHUNK_SIZE;
		left -= clen;
		cache_record_chunkkey(ck, key, variant, i);
		k = mval(ck, sizeof(ck));
		rc = mdb_get(txn, s->db_body, &k, &v);
		if (rc == MDB_NOTFOUND) {
			rc = CDN_ECORRUPT;
			goto out;
		}
		if (rc != 0)
			goto lmdb_fail;
		if (v.mv_size != clen ||
		    cache_record_chunk_sum(seed, i, v.mv_data, clen) !=
		        get_le64(rv.sums + 8 * (size_t)i)) {
			rc = CDN_ECORRUPT;
			goto out;
		}
		if (cache_obj_append(o, v.mv_data, clen) != CDN_OK) {
			rc = CDN_ENOMEM;
			goto out;
		}
	}

	k = mval(hv, sizeof(hv));
	if (mdb_get(txn, s->db_lru_pos, &k, &v) == 0 &&
	    v.mv_size == CACHE_LRUKEY_LEN)
		atomic_store_explicit(
		    &o->lru_bucket, get_be32(v.mv_data), memory_order_relaxed);
	*objp = o;
	o = NULL;
	rc = CDN_OK;
	goto out;

lmdb_fail:
	if (rc != MDB_NOTFOUND) {
		CDN_LOG(CDN_LOG_ERR, "cache", "mdb_get: %s", mdb_strerror(rc));
		atomic_fetch_add_explicit(&s->st_io, 1, memory_order_relaxed);
	}
	rc = mdb_to_cdn(cache_store_lmdb_check(s, rc));
out:
	cache_store_txn_abort(s, &txn);
	if (o != NULL)
		cache_obj_unref(&o);
	return rc;
}

/*
 * <o> is hard-purged: drop every variant of its key from both tiers (the
 * variants of one URL share its purges) and our reference.
 */
static void
purged_hard(struct cache_store *s, struct cache_obj **op)
{
	uint8_t key[CACHE_HASH_LEN];

	memcpy(key, (*op)->key, sizeof(key));
	cache_obj_unref(op);
	atomic_fetch_add_explicit(&s->st_purged_hard, 1, memory_order_relaxed);
	cache_store_remove(s, key);
}

/* Apply the purge verdict to a found object: a hard-purged one is dropped
 * from both tiers (CDN_NOTFOUND), a soft-purged one is counted and kept. */
static int
purge_filter(struct cache_store *s, struct cache_obj **op)
{
	switch (cache_store_purge_verdict(s, *op)) {
	case CACHE_PURGED_HARD:
		purged_hard(s, op);
		return CDN_NOTFOUND;
	case CACHE_PURGED_SOFT:
		atomic_fetch_add_explicit(
		    &s->st_purged_soft, 1, memory_order_relaxed);
		break;
	}
	return CDN_OK;
}

/*
 * The lookup behind cache_store_get (with_body) and cache_store_get_meta:
 * memory first, then LMDB, each answer filtered by the purge rules.  A
 * whole object read from disk is promoted to memory; a corrupt record's
 * deletion is queued.
 */
static int
store_lookup(struct cache_store *s, const uint8_t key[CACHE_HASH_LEN],
    uint64_t variant, int with_body, struct cache_obj **objp, int *from_memory)
{
	struct cache_obj *o = NULL;
	struct wmsg *m;
	uint64_t gen = 0;
	int rc, is_removed = 0;

	MAGIC_CHECK(s, CACHE_STORE_MAGIC);
	CDN_ASSERT(key != NULL && objp != NULL);
	if (cache_store_is_damaged(s))
		return CDN_NOTFOUND;
	cache_store_purge_refresh(s);
	rc = cache_mem_get(s->mem, key, variant, &o, &is_removed, &gen);
	if (rc == CDN_OK) {
		if (purge_filter(s, &o) != CDN_OK)
			return CDN_NOTFOUND;
		*objp = o;
		if (from_memory != NULL)
			*from_memory = 1;
		return CDN_OK;
	}
	if (is_removed)
		return CDN_NOTFOUND;
	rc = disk_get(s, key, variant, with_body, &o);
	if (rc == CDN_OK && purge_filter(s, &o) != CDN_OK)
		return CDN_NOTFOUND;
	if (rc == CDN_OK) {
		if (with_body)
			cache_mem_promote(s->mem, o, gen);
		*objp = o;
		if (from_memory != NULL)
			*from_memory = 0;
	} else if (rc == CDN_ECORRUPT) {
		atomic_fetch_add_explicit(
		    &s->st_corrupt, 1, memory_order_relaxed);
		CDN_LOG(CDN_LOG_WARN, "cache",
		    "corrupt object record, deleting it");
		m = cache_writer_msg_new(W_DELETE, key, variant);
		if (!cache_writer_enqueue(s, m, 0))
			free(m);
	}
	return rc;
}

/*
 * Find the object for (key, variant): memory first, then LMDB; an object
 * found on disk is promoted to memory if it fits.  On CDN_OK, *objp holds
 * one new reference and *from_memory (if not NULL) tells the tier.
 * Returns CDN_NOTFOUND on a miss, CDN_ECORRUPT for a record or chunk that
 * fails its checks (counted; its deletion is queued), CDN_EIO or
 * CDN_ENOMEM.  *objp is untouched unless CDN_OK.
 */
int
cache_store_get(struct cache_store *s, const uint8_t key[CACHE_HASH_LEN],
    uint64_t variant, struct cache_obj **objp, int *from_memory)
{
	return store_lookup(s, key, variant, 1, objp, from_memory);
}

/*
 * As cache_store_get, but an object found only in LMDB comes back with its
 * metadata alone (o->chunks NULL, nchunks and body_len set) and is not
 * promoted to memory: for a range, whose chunks the caller then reads
 * with cache_store_load_chunks().  The object is the caller's alone until
 * its chunks are loaded (never share it, never store it).
 */
int
cache_store_get_meta(struct cache_store *s, const uint8_t key[CACHE_HASH_LEN],
    uint64_t variant, struct cache_obj **objp, int *from_memory)
{
	return store_lookup(s, key, variant, 0, objp, from_memory);
}

uint64_t
cache_store_removals(struct cache_store *s)
{
	MAGIC_CHECK(s, CACHE_STORE_MAGIC);
	return atomic_load_explicit(&s->removals, memory_order_relaxed);
}

/*
 * Is <o> (stored with cache_store_put) still the response stored for its
 * (key, variant)?  Looks, in order, at the memory tier (the same object,
 * or a pending removal), the writer queue (a later put or a removal of
 * the key) and the LMDB record (the same stored_at, response_time, size
 * and purge generation).  Found nowhere (a batch being committed, or a
 * removal already committed): CDN_AGAIN, for the caller to decide.
 * Returns 1, 0 or CDN_AGAIN.
 */
int
cache_store_is_current(struct cache_store *s, const struct cache_obj *o)
{
	struct cache_obj *cur = NULL;
	struct wmsg *m;
	uint64_t gen = 0;
	int rc, is_removed = 0, state = CDN_AGAIN;

	MAGIC_CHECK(s, CACHE_STORE_MAGIC);
	MAGIC_CHECK(o, CACHE_OBJ_MAGIC);
	rc = cache_mem_get(s->mem, o->key, o->variant, &cur, &is_removed, &gen);
	if (rc == CDN_OK) {
		rc = cur == o;
		cache_obj_unref(&cur);
		return rc;
	}
	if (is_removed)
		return 0;
	pthread_mutex_lock(&s->qmtx);
	for (m = s->qhead; m != NULL; m = m->next) {
		if (memcmp(m->key, o->key, CACHE_HASH_LEN) != 0)
			continue;
		if (m->kind == W_REMOVE)
			state = 0;
		else if (m->kind == W_PUT && m->obj->variant == o->variant)
			state = m->obj == o;
	}
	pthread_mutex_unlock(&s->qmtx);
	if (state != CDN_AGAIN)
		return state;
	rc = disk_get(s, o->key, o->variant, 0, &cur);
	if (rc != CDN_OK)
		return CDN_AGAIN;
	state = cur->stored_at == o->stored_at &&
	    cur->response_time == o->response_time &&
	    cur->body_len == o->body_len && cur->purge_gen == o->purge_gen;
	cache_obj_unref(&cur);
	return state;
}

/*
 * Read chunks [first, last] of an object from cache_store_get_meta() into
 * it (chunks already there are kept), each checked against its checksum,
 * in one read transaction.  CDN_NOTFOUND if the stored object is no longer
 * the one <o> describes (replaced or removed meanwhile), CDN_ECORRUPT,
 * CDN_EIO, CDN_ENOMEM; the chunks read so far stay on failure.
 */
int
cache_store_load_chunks(
    struct cache_store *s, struct cache_obj *o, uint32_t first, uint32_t last)
{
	uint8_t hv[CACHE_OBJKEY_LEN], ck[CACHE_CHUNKKEY_LEN];
	struct cache_record_view rv;
	MDB_txn *txn = NULL;
	MDB_val k, v;
	uint64_t seed, clen;
	int rc;

	MAGIC_CHECK(s, CACHE_STORE_MAGIC);
	MAGIC_CHECK(o, CACHE_OBJ_MAGIC);
	CDN_ASSERT(first <= last && last < o->nchunks);
	CDN_ASSERT(atomic_load(&o->refcnt) == 1); /* never shared */
	if (o->chunks == NULL) {
		o->chunks = calloc(o->nchunks, sizeof(*o->chunks));
		if (o->chunks == NULL)
			return CDN_ENOMEM;
		o->chunks_cap = o->nchunks;
	}
	cache_record_objkey(hv, o->key, o->variant);
	if (cache_store_txn_begin(s, MDB_RDONLY, &txn) != 0)
		return CDN_EIO;
	k = mval(hv, sizeof(hv));
	rc = mdb_get(txn, s->db_obj, &k, &v);
	if (rc != 0)
		goto lmdb_fail;
	rc = cache_record_decode(v.mv_data, v.mv_size, hv, &rv);
	if (rc != CDN_OK)
		goto out;
	if (rv.stored_at != o->stored_at || rv.body_len != o->body_len ||
	    rv.nchunks != o->nchunks || rv.purge_gen != o->purge_gen) {
		rc = CDN_NOTFOUND;
		goto out;
	}
	seed = cache_record_seed(hv);
	for (uint32_t i = first; i <= last; i++) {
		if (o->chunks[i] != NULL)
			continue;
		clen = o->body_len - (uint64_t)i * CACHE_CHUNK_SIZE;
		if (clen > CACHE_CHUNK_SIZE)
			clen = CACHE_CHUNK_SIZE;
		cache_record_chunkkey(ck, o->key, o->variant, i);
		k = mval(ck, sizeof(ck));
		rc = mdb_get(txn, s->db_body, &k, &v);
		if (rc == MDB_NOTFOUND) {
			rc = CDN_ECORRUPT;
			goto out;
		}
		if (rc != 0)
			goto lmdb_fail;
		if (v.mv_size != clen ||
		    cache_record_chunk_sum(seed, i, v.mv_data, (size_t)clen) !=
		        get_le64(rv.sums + 8 * (size_t)i)) {
			rc = CDN_ECORRUPT;
			goto out;
		}
		/* v borrows the map until the txn ends: copied. */
		o->chunks[i] = malloc((size_t)clen);
		if (o->chunks[i] == NULL) {
			rc = CDN_ENOMEM;
			goto out;
		}
		memcpy(o->chunks[i], v.mv_data, (size_t)clen);
	}
	rc = CDN_OK;
	goto out;

lmdb_fail:
	if (rc != MDB_NOTFOUND) {
		CDN_LOG(CDN_LOG_ERR, "cache", "mdb_get: %s", mdb_strerror(rc));
		atomic_fetch_add_explicit(&s->st_io, 1, memory_order_relaxed);
	}
	rc = mdb_to_cdn(cache_store_lmdb_check(s, rc));
out:
	if (rc == CDN_ECORRUPT)
		atomic_fetch_add_explicit(
		    &s->st_corrupt, 1, memory_order_relaxed);
	cache_store_txn_abort(s, &txn);
	return rc;
}

/*
 * Every stored variant of <key>, without bodies (body_len is set, nchunks
 * is 0), for inspection: up to <cap> new references in v[], the count in
 * *n, each with its purge verdict (cache_obj.purge_state) computed.
 * CDN_OK (also for none), CDN_EIO, CDN_ENOMEM.
 */
int
cache_store_variants(struct cache_store *s, const uint8_t key[CACHE_HASH_LEN],
    struct cache_obj **v, unsigned cap, unsigned *n)
{
	uint8_t start[CACHE_OBJKEY_LEN];
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, val;
	struct cache_record_view rv;
	int rc;

	MAGIC_CHECK(s, CACHE_STORE_MAGIC);
	*n = 0;
	cache_store_purge_refresh(s);
	if (cache_store_txn_begin(s, MDB_RDONLY, &txn) != 0)
		return CDN_EIO;
	rc = mdb_cursor_open(txn, s->db_obj, &cur);
	if (rc != 0) {
		cache_store_txn_abort(s, &txn);
		return CDN_EIO;
	}
	cache_record_objkey(start, key, 0);
	k = mval(start, sizeof(start));
	for (rc = mdb_cursor_get(cur, &k, &val, MDB_SET_RANGE);
	     rc == 0 && *n < cap && k.mv_size == CACHE_OBJKEY_LEN &&
	     memcmp(k.mv_data, key, CACHE_HASH_LEN) == 0;
	     rc = mdb_cursor_get(cur, &k, &val, MDB_NEXT)) {
		uint64_t variant = get_be64((const uint8_t *)k.mv_data + 16);
		struct cache_obj *o = NULL;

		if (cache_record_decode(
		        val.mv_data, val.mv_size, k.mv_data, &rv) != CDN_OK)
			continue;
		if (cache_record_to_obj(&rv, key, variant, &o) != CDN_OK) {
			rc = ENOMEM;
			break;
		}
		o->body_len = rv.body_len;
		(void)cache_store_purge_verdict(s, o);
		v[(*n)++] = o;
	}
	mdb_cursor_close(cur);
	cache_store_txn_abort(s, &txn);
	return rc == ENOMEM ? CDN_ENOMEM : CDN_OK;
}

/*
 * The Vary rule of the latest stored response for <key>: copies it into
 * buf and its length into *len.  Returns CDN_OK, CDN_NOTFOUND if that
 * response had no Vary (look up variant 0), CDN_ELIMIT if it is longer
 * than <cap> (*len set, buf unspecified), or CDN_EIO.  Answered from
 * memory when the rule is known there.
 */
int
cache_store_get_vary(struct cache_store *s, const uint8_t key[CACHE_HASH_LEN],
    char *buf, size_t cap, size_t *len)
{
	MDB_txn *txn = NULL;
	MDB_val k, v;
	uint64_t gen = 0;
	size_t n = 0;
	int rc;

	MAGIC_CHECK(s, CACHE_STORE_MAGIC);
	CDN_ASSERT(key != NULL && len != NULL && (buf != NULL || cap == 0));
	if (cache_store_is_damaged(s))
		return CDN_NOTFOUND;
	rc = cache_mem_get_vary(s->mem, key, buf, cap, len, &gen);
	if (rc != CDN_AGAIN)
		return rc;
	if (cache_store_txn_begin(s, MDB_RDONLY, &txn) != 0)
		return CDN_EIO;
	k = mval(key, CACHE_HASH_LEN);
	rc = mdb_get(txn, s->db_vary, &k, &v);
	if (rc == 0) {
		n = v.mv_size;
		if (n <= cap && n > 0)
			memcpy(buf, v.mv_data, n);
		rc = n <= cap ? CDN_OK : CDN_ELIMIT;
	} else if (rc == MDB_NOTFOUND) {
		rc = CDN_NOTFOUND;
	} else {
		cache_store_lmdb_check(s, rc);
		CDN_LOG(
		    CDN_LOG_ERR, "cache", "mdb_get vary: %s", mdb_strerror(rc));
		atomic_fetch_add_explicit(&s->st_io, 1, memory_order_relaxed);
		rc = CDN_EIO;
	}
	cache_store_txn_abort(s, &txn);
	if (rc == CDN_OK || rc == CDN_ELIMIT)
		*len = n;
	if (rc == CDN_OK)
		cache_mem_set_vary(s->mem, key, buf, n, gen);
	else if (rc == CDN_NOTFOUND)
		cache_mem_set_vary(s->mem, key, NULL, 0, gen);
	return rc;
}

/* ---------------- writes (queued) ---------------- */

/*
 * Store <o>: into memory now, into LMDB through the writer.  The caller
 * keeps its reference; the store takes its own.  Objects larger than
 * max_object_bytes are not stored at all; larger than 1/8 of the disk
 * budget, or arriving while the queue is full, they stay in memory only
 * (if the memory tier admits them).  Every such refusal counts in
 * put_drops.
 */
int
cache_store_put(struct cache_store *s, struct cache_obj *o)
{
	struct wmsg *m;
	uint32_t bucket;

	MAGIC_CHECK(s, CACHE_STORE_MAGIC);
	MAGIC_CHECK(o, CACHE_OBJ_MAGIC);
	if (o->body_len > s->max_object_bytes || cache_store_is_damaged(s)) {
		atomic_fetch_add_explicit(
		    &s->st_put_drops, 1, memory_order_relaxed);
		return CDN_ELIMIT;
	}
	bucket = cache_store_now_bucket(s);
	atomic_store_explicit(&o->lru_bucket, bucket, memory_order_relaxed);
	if (o->body_len > s->max_disk_object) {
		atomic_fetch_add_explicit(
		    &s->st_put_drops, 1, memory_order_relaxed);
		return cache_mem_put(s->mem, o, 0) ? CDN_OK : CDN_ELIMIT;
	}
	/* Pinned while queued, so that the next request finds it even when
	 * it is too large for the memory tier (the writer unpins it). */
	cache_mem_put(s->mem, o, 1);
	m = cache_writer_msg_new(W_PUT, o->key, o->variant);
	m->bucket = bucket;
	m->bytes = o->body_len + o->url_len + o->fields_len + o->vary_len +
	    MSG_OVERHEAD;
	m->obj = cache_obj_ref(o);
	if (!cache_writer_enqueue(s, m, 0)) {
		cache_writer_msg_free(&m);
		cache_mem_unpin(s->mem, o);
		atomic_fetch_add_explicit(
		    &s->st_put_drops, 1, memory_order_relaxed);
		return CDN_ELIMIT;
	}
	return cache_store_failing(s) != NULL ? CDN_EIO : CDN_OK;
}

const char *
cache_store_failing(struct cache_store *s)
{
	MAGIC_CHECK(s, CACHE_STORE_MAGIC);
	return cache_writer_fault_meaning[atomic_load_explicit(
	    &s->w_fault, memory_order_relaxed)];
}

/* Remove every variant of <key>: from memory now (with a tombstone until
 * LMDB has committed), from LMDB through the writer. */
void
cache_store_remove(struct cache_store *s, const uint8_t key[CACHE_HASH_LEN])
{
	struct wmsg *m;

	MAGIC_CHECK(s, CACHE_STORE_MAGIC);
	CDN_ASSERT(key != NULL);
	atomic_fetch_add_explicit(&s->removals, 1, memory_order_relaxed);
	m = cache_writer_msg_new(W_REMOVE, key, 0);
	if (!cache_writer_enqueue(s, m, 1)) {
		/* Only while closing. */
		free(m);
		cache_mem_remove(s->mem, key, UINT64_MAX);
	}
}

/*
 * Note a hit on <o>.  Enqueues at most once per object and minute: only
 * the caller whose compare-and-swap moves o->lru_bucket forward does.
 */
void
cache_store_touch(struct cache_store *s, const struct cache_obj *o)
{
	struct cache_obj *mo;
	struct wmsg *m;
	unsigned cur, now;

	MAGIC_CHECK(s, CACHE_STORE_MAGIC);
	MAGIC_CHECK(o, CACHE_OBJ_MAGIC);
	/* lru_bucket is the one field that is written after sharing. */
	mo = (struct cache_obj *)(uintptr_t)o;
	now = cache_store_now_bucket(s);
	cur = atomic_load_explicit(&mo->lru_bucket, memory_order_relaxed);
	if (cur >= now)
		return;
	if (!atomic_compare_exchange_strong_explicit(&mo->lru_bucket, &cur, now,
	        memory_order_relaxed, memory_order_relaxed))
		return;
	m = cache_writer_msg_new(W_TOUCH, o->key, o->variant);
	m->bucket = now;
	if (!cache_writer_enqueue(s, m, 0))
		free(m);
}

/*
 * Wait until every message queued before this call is committed and the
 * environment is synced to disk.  Blocks: not for event loops.
 */
void
cache_store_sync(struct cache_store *s)
{
	uint64_t my;

	MAGIC_CHECK(s, CACHE_STORE_MAGIC);
	pthread_mutex_lock(&s->qmtx);
	my = ++s->sync_req;
	if (s->enq_seq > s->sync_seq)
		s->sync_seq = s->enq_seq;
	pthread_cond_signal(&s->qcond);
	while (s->sync_done < my)
		pthread_cond_wait(&s->dcond, &s->qmtx);
	pthread_mutex_unlock(&s->qmtx);
}

void
cache_store_stats(struct cache_store *s, struct cache_store_stats *st)
{
	struct cache_mem_stats ms;

	MAGIC_CHECK(s, CACHE_STORE_MAGIC);
	CDN_ASSERT(st != NULL);
	cache_mem_stats(s->mem, &ms);
	memset(st, 0, sizeof(*st));
	st->objects =
	    atomic_load_explicit(&s->st_objects, memory_order_relaxed);
	st->bytes = atomic_load_explicit(&s->st_bytes, memory_order_relaxed);
	st->mem_objects = ms.objects;
	st->mem_bytes = ms.bytes;
	st->mem_evictions = ms.evictions;
	st->puts = atomic_load_explicit(&s->st_puts, memory_order_relaxed);
	st->put_drops =
	    atomic_load_explicit(&s->st_put_drops, memory_order_relaxed);
	st->evictions =
	    atomic_load_explicit(&s->st_evictions, memory_order_relaxed);
	st->map_full =
	    atomic_load_explicit(&s->st_map_full, memory_order_relaxed);
	st->corrupt =
	    atomic_load_explicit(&s->st_corrupt, memory_order_relaxed);
	st->io_errors = atomic_load_explicit(&s->st_io, memory_order_relaxed);
	st->purged_hard =
	    atomic_load_explicit(&s->st_purged_hard, memory_order_relaxed);
	st->purged_soft =
	    atomic_load_explicit(&s->st_purged_soft, memory_order_relaxed);
	st->purge_seq = cache_store_purge_seq(s);
	st->damaged = cache_store_is_damaged(s);
}

void
cache_store_test_set_clock_skew(struct cache_store *s, int64_t skew_s)
{
	MAGIC_CHECK(s, CACHE_STORE_MAGIC);
	atomic_store_explicit(&s->clock_skew_s, skew_s, memory_order_relaxed);
}

/* ---------------- streamed bodies ---------------- */

uint64_t
cache_store_stream_min(struct cache_store *s)
{
	uint64_t admit;

	MAGIC_CHECK(s, CACHE_STORE_MAGIC);
	admit = cache_mem_admit_max(s->mem);
	return admit > CACHE_CHUNK_SIZE ? admit : CACHE_CHUNK_SIZE;
}

struct cache_stream *
cache_store_stream_begin(struct cache_store *s, struct cache_obj *o,
    uint64_t body_len, void (*wake)(void *arg), void *arg)
{
	struct cache_stream *st;
	uint64_t n;

	MAGIC_CHECK(s, CACHE_STORE_MAGIC);
	MAGIC_CHECK(o, CACHE_OBJ_MAGIC);
	CDN_ASSERT(o->nchunks == 0 && o->chunks == NULL);
	/* Larger than the memory tier takes: so the memory tier never holds
	 * it, whose body is not in memory. */
	if (body_len <= cache_store_stream_min(s) ||
	    body_len > s->max_object_bytes || body_len > s->max_disk_object)
		return NULL;
	n = (body_len + CACHE_CHUNK_SIZE - 1) / CACHE_CHUNK_SIZE;
	if (n > UINT32_MAX)
		return NULL;
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return NULL;
	st->sums = calloc((size_t)n, sizeof(*st->sums));
	if (st->sums == NULL) {
		free(st);
		return NULL;
	}
	st->magic = CACHE_STREAM_MAGIC;
	atomic_init(&st->refcnt, 1);
	st->s = s;
	st->obj = cache_obj_ref(o);
	st->body_len = body_len;
	st->nchunks = (uint32_t)n;
	atomic_init(&st->committed, 0);
	atomic_init(&st->state, STREAM_OPEN);
	pthread_mutex_init(&st->mu, NULL);
	st->wake = wake;
	st->wake_arg = arg;
	return st;
}

void
cache_stream_set_wake(
    struct cache_stream *st, void (*wake)(void *arg), void *arg)
{
	MAGIC_CHECK(st, CACHE_STREAM_MAGIC);
	pthread_mutex_lock(&st->mu);
	st->wake = wake;
	st->wake_arg = arg;
	pthread_mutex_unlock(&st->mu);
}

int
cache_stream_chunk(struct cache_stream *st, const void *data, size_t len,
    int last, void (*release)(void *arg), void *arg)
{
	struct cache_store *s;
	struct cache_obj *o;
	struct wmsg *m;
	uint32_t i;

	MAGIC_CHECK(st, CACHE_STREAM_MAGIC);
	s = st->s;
	o = st->obj;
	i = st->queued;
	if (st->ended || i >= st->nchunks ||
	    len != chunk_len(st->body_len, i) ||
	    (last != 0) != (i + 1 == st->nchunks) ||
	    atomic_load_explicit(&st->state, memory_order_relaxed) !=
	        STREAM_OPEN) {
		release(arg);
		return CDN_EINVAL;
	}
	m = cache_writer_msg_new(W_CHUNK, o->key, o->variant);
	m->st = st;
	atomic_fetch_add_explicit(&st->refcnt, 1, memory_order_relaxed);
	m->chunk = i;
	m->data = data;
	m->len = len;
	m->release = release;
	m->rel_arg = arg;
	m->last = last != 0;
	m->bytes = len;
	if (last) {
		/* The caller's reference is the only other one: the object
		 * is not shared yet, and becomes whole on disk only. */
		o->body_len = st->body_len;
		o->nchunks = st->nchunks;
		m->bucket = cache_store_now_bucket(s);
		atomic_store_explicit(
		    &o->lru_bucket, m->bucket, memory_order_relaxed);
		cache_mem_forget(s->mem, o);
		st->ended = 1;
	}
	if (!cache_writer_enqueue(s, m, 0)) {
		cache_writer_msg_free(&m); /* releases the data */
		atomic_store_explicit(
		    &st->state, STREAM_FAILED, memory_order_relaxed);
		return CDN_EINVAL;
	}
	st->queued++;
	return CDN_OK;
}

uint32_t
cache_stream_committed(struct cache_stream *st)
{
	MAGIC_CHECK(st, CACHE_STREAM_MAGIC);
	return atomic_load_explicit(&st->committed, memory_order_acquire);
}

int
cache_stream_state(struct cache_stream *st)
{
	MAGIC_CHECK(st, CACHE_STREAM_MAGIC);
	return atomic_load_explicit(&st->state, memory_order_acquire);
}

int
cache_stream_read(
    struct cache_stream *st, uint32_t i, unsigned char **outp, size_t *lenp)
{
	struct cache_store *s;
	uint8_t hv[CACHE_OBJKEY_LEN], ck[CACHE_CHUNKKEY_LEN];
	unsigned char *p;
	MDB_txn *txn = NULL;
	MDB_val k, v;
	size_t len;
	int rc;

	MAGIC_CHECK(st, CACHE_STREAM_MAGIC);
	CDN_ASSERT(i < cache_stream_committed(st));
	s = st->s;
	len = chunk_len(st->body_len, i);
	cache_record_objkey(hv, st->obj->key, st->obj->variant);
	cache_record_chunkkey(ck, st->obj->key, st->obj->variant, i);
	if (cache_store_txn_begin(s, MDB_RDONLY, &txn) != 0)
		return CDN_EIO;
	k = mval(ck, sizeof(ck));
	rc = mdb_get(txn, s->db_body, &k, &v);
	if (rc == MDB_NOTFOUND ||
	    (rc == 0 &&
	        (v.mv_size != len ||
	            cache_record_chunk_sum(cache_record_seed(hv), i, v.mv_data,
	                len) != st->sums[i]))) {
		rc = CDN_NOTFOUND; /* replaced or deleted since */
		goto out;
	}
	if (rc != 0) {
		cache_store_lmdb_check(s, rc);
		CDN_LOG(CDN_LOG_ERR, "cache", "mdb_get: %s", mdb_strerror(rc));
		atomic_fetch_add_explicit(&s->st_io, 1, memory_order_relaxed);
		rc = CDN_EIO;
		goto out;
	}
	/* v borrows the map until the txn ends: copied. */
	p = malloc(len);
	if (p == NULL) {
		rc = CDN_ENOMEM;
		goto out;
	}
	memcpy(p, v.mv_data, len);
	*outp = p;
	*lenp = len;
	rc = CDN_OK;
out:
	cache_store_txn_abort(s, &txn);
	return rc;
}

void
cache_stream_abort(struct cache_stream *st)
{
	struct wmsg *m;

	MAGIC_CHECK(st, CACHE_STREAM_MAGIC);
	if (st->ended)
		return; /* its last chunk went: the writer decides */
	st->ended = 1;
	/* No record can follow now; later chunks are skipped. */
	atomic_store_explicit(&st->state, STREAM_FAILED, memory_order_release);
	m = cache_writer_msg_new(
	    W_STREAM_ABORT, st->obj->key, st->obj->variant);
	m->st = st;
	atomic_fetch_add_explicit(&st->refcnt, 1, memory_order_relaxed);
	/* Refused only while closing: the chunks stay, unreferenced. */
	if (!cache_writer_enqueue(st->s, m, 0))
		cache_writer_msg_free(&m);
}

void
cache_stream_unref(struct cache_stream **stp)
{
	struct cache_stream *st = *stp;

	*stp = NULL;
	MAGIC_CHECK(st, CACHE_STREAM_MAGIC);
	if (atomic_fetch_sub_explicit(&st->refcnt, 1, memory_order_acq_rel) > 1)
		return;
	cache_obj_unref(&st->obj);
	free(st->sums);
	pthread_mutex_destroy(&st->mu);
	MAGIC_WIPE(st);
	free(st);
}
