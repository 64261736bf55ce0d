/*
 * Reads of the store (cache/cache.h): lookups, memory first and then LMDB,
 * each answer checked against the purge rules (cache_store_purge.c);
 * metadata reads and chunk loads for ranges; a key's variants and its
 * Vary rule.  Any thread; each read holds one MDB_RDONLY transaction, the
 * thread's kept one (cache_store_read_begin), and ends it before
 * returning (cache_store.c "Threads and locks").
 */
#include "config.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "cache/cache_int.h"
#include "cache/cache_store_int.h"
#include "common/cdn_log.h"

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

/*
 * Find the record <hv> in <txn> (*v borrows the map until the txn ends),
 * and on MDB_NOTFOUND tell in *none_on_disk whether no variant of its key
 * is on disk either.  Records are ordered by key, then variant, so one
 * seek answers both: it lands on <hv> or on the next record, and the
 * record before that one is the only other place a variant may be.  A
 * new key (the usual miss) costs one descent of the tree, not two.
 * 0, MDB_NOTFOUND or an LMDB code.
 */
static int
disk_find(struct cache_store *s, MDB_txn *txn,
    const uint8_t hv[CACHE_OBJKEY_LEN], MDB_val *v, int *none_on_disk)
{
	MDB_cursor *cur = NULL;
	MDB_val k;
	int rc, is_past_end;

	k = mval(hv, CACHE_OBJKEY_LEN);
	if (none_on_disk == NULL)
		return mdb_get(txn, s->db_obj, &k, v);
	rc = mdb_cursor_open(txn, s->db_obj, &cur);
	if (rc != 0)
		return rc;
	rc = mdb_cursor_get(cur, &k, v, MDB_SET_RANGE);
	if (rc == 0 && k.mv_size == CACHE_OBJKEY_LEN &&
	    memcmp(k.mv_data, hv, CACHE_OBJKEY_LEN) == 0)
		goto out; /* found */
	if (rc != 0 && rc != MDB_NOTFOUND)
		goto out;
	is_past_end = rc == MDB_NOTFOUND;
	if (!is_past_end && k.mv_size == CACHE_OBJKEY_LEN &&
	    memcmp(k.mv_data, hv, CACHE_HASH_LEN) == 0) {
		*none_on_disk = 0; /* a later variant */
		rc = MDB_NOTFOUND;
		goto out;
	}
	rc = mdb_cursor_get(cur, &k, v, is_past_end ? MDB_LAST : MDB_PREV);
	if (rc != 0 && rc != MDB_NOTFOUND)
		goto out;
	*none_on_disk = rc == MDB_NOTFOUND || k.mv_size != CACHE_OBJKEY_LEN ||
	    memcmp(k.mv_data, hv, CACHE_HASH_LEN) != 0;
	rc = MDB_NOTFOUND;
out:
	mdb_cursor_close(cur);
	return rc;
}

int
cache_store_read_failed(struct cache_store *s, int rc)
{
	CDN_LOG(CDN_LOG_ERR, "cache", "mdb_get: %s", mdb_strerror(rc));
	atomic_fetch_add_explicit(&s->st_io, 1, memory_order_relaxed);
	cache_store_lmdb_check(s, rc);
	return CDN_EIO;
}

int
cache_store_chunk_get(struct cache_store *s, MDB_txn *txn,
    const uint8_t hv[CACHE_OBJKEY_LEN], unsigned gen, uint32_t i, size_t part,
    uint64_t seed, uint64_t sum, MDB_val *v)
{
	uint8_t ck[CACHE_CHUNKKEY_LEN];
	MDB_val k;
	int rc;

	memcpy(ck, hv, CACHE_OBJKEY_LEN);
	put_be32(
	    ck + CACHE_OBJKEY_LEN, (uint32_t)gen << CACHE_CHUNK_GEN_SHIFT | i);
	k = mval(ck, sizeof(ck));
	rc = mdb_get(txn, s->db_body, &k, v);
	if (rc != 0)
		return rc;
	if (v->mv_size != part ||
	    cache_record_chunk_sum(seed, i, v->mv_data, part) != sum)
		return CDN_ECORRUPT;
	return 0;
}

/*
 * Load (key, variant) from LMDB into a new object (see cache_store_get):
 * its body too if it has at most <body_max> bytes, else its metadata
 * alone (cache_store_get_meta).  One read transaction either way.  On
 * CDN_NOTFOUND, *none_on_disk (if not NULL) says whether the key has no
 * other variant on disk either.
 */
static int
disk_get(struct cache_store *s, const uint8_t key[CACHE_HASH_LEN],
    uint64_t variant, uint64_t body_max, struct cache_obj **objp,
    int *none_on_disk)
{
	uint8_t hv[CACHE_OBJKEY_LEN];
	struct cache_obj *o = NULL;
	struct cache_record_view rv;
	MDB_txn *txn = NULL;
	MDB_val k, v;
	uint64_t seed, left;
	size_t clen, tail;
	int rc, with_body;

	cache_record_objkey(hv, key, variant);
	if (cache_store_read_begin(s, &txn) != 0)
		return CDN_EIO;
	rc = disk_find(s, txn, hv, &v, none_on_disk);
	if (rc != 0)
		goto lmdb_fail;
	/* v borrows the map until the txn ends: everything is copied. */
	rc = cache_record_decode(v.mv_data, v.mv_size, hv, &rv);
	if (rc != CDN_OK)
		goto out;
	rc = cache_record_to_obj(&rv, key, variant, &o);
	if (rc != CDN_OK)
		goto out;
	with_body = rv.body_len <= body_max;
	if (with_body)
		cache_obj_reserve(o, rv.body_len);
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
		tail = cache_record_tail_len(&rv, i);
		if (tail < clen) {
			rc = cache_store_chunk_get(s, txn, hv, rv.chunk_gen, i,
			    clen - tail, seed,
			    get_le64(rv.sums + 8 * (size_t)i), &v);
			if (rc == MDB_NOTFOUND || rc == CDN_ECORRUPT) {
				rc = CDN_ECORRUPT;
				goto out;
			}
			if (rc != 0)
				goto lmdb_fail;
			if (cache_obj_append(o, v.mv_data, v.mv_size) !=
			    CDN_OK) {
				rc = CDN_ENOMEM;
				goto out;
			}
		}
		if (tail > 0 &&
		    cache_obj_append(o, cache_record_tail(&rv, i), tail) !=
		        CDN_OK) {
			rc = CDN_ENOMEM;
			goto out;
		}
	}

	k = mval(hv, sizeof(hv));
	if (rv.lru != NULL)
		atomic_store_explicit(
		    &o->lru_bucket, get_be32(rv.lru), memory_order_relaxed);
	else if (mdb_get(txn, s->db_lru_pos, &k, &v) == 0 &&
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
	cache_store_read_end(s, &txn);
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
 * The lookup behind cache_store_get and cache_store_get_meta: memory
 * first, then LMDB (a body of at most <body_max> bytes read with its
 * record), each answer filtered by the purge rules.  A whole object read
 * from disk is promoted to memory; a corrupt record's deletion is queued.
 */
static int
store_lookup(struct cache_store *s, const uint8_t key[CACHE_HASH_LEN],
    uint64_t variant, uint64_t body_max, struct cache_obj **objp,
    int *from_memory, int *none_stored)
{
	struct cache_obj *o = NULL;
	struct wmsg *m;
	uint64_t gen = 0;
	int rc, is_removed = 0, none = 0;

	MAGIC_CHECK(s, CACHE_STORE_MAGIC);
	CDN_ASSERT(key != NULL && objp != NULL);
	if (none_stored != NULL)
		*none_stored = 0;
	if (cache_store_is_damaged(s))
		return CDN_NOTFOUND;
	if (!cache_store_read_held(s)) /* the hold refreshed them */
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
	rc = disk_get(
	    s, key, variant, body_max, &o, none_stored != NULL ? &none : NULL);
	/* Memory is asked after LMDB: a put reaches it first. */
	if (rc == CDN_NOTFOUND && none && !cache_mem_has_obj(s->mem, key))
		*none_stored = 1;
	if (rc == CDN_OK && purge_filter(s, &o) != CDN_OK)
		return CDN_NOTFOUND;
	if (rc == CDN_OK) {
		/* Sealed before the memory tier shares it; not when it is
		 * too large to stay there. */
		if (o->body_len <= body_max &&
		    cache_obj_footprint(o) <= cache_mem_admit_max(s->mem))
			cache_obj_seal(o);
		if (o->body_len <= body_max)
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
	return store_lookup(
	    s, key, variant, UINT64_MAX, objp, from_memory, NULL);
}

int
cache_store_get_meta(struct cache_store *s, const uint8_t key[CACHE_HASH_LEN],
    uint64_t variant, struct cache_obj **objp, int *from_memory)
{
	return store_lookup(s, key, variant, cache_store_stream_min(s), objp,
	    from_memory, NULL);
}

int
cache_store_get_meta_probe(struct cache_store *s,
    const uint8_t key[CACHE_HASH_LEN], uint64_t variant,
    struct cache_obj **objp, int *from_memory, int *none_stored)
{
	CDN_ASSERT(none_stored != NULL);
	return store_lookup(s, key, variant, cache_store_stream_min(s), objp,
	    from_memory, none_stored);
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
	rc = disk_get(s, o->key, o->variant, 0, &cur, NULL);
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
	uint8_t hv[CACHE_OBJKEY_LEN];
	struct cache_record_view rv;
	MDB_txn *txn = NULL;
	MDB_val k, v;
	uint64_t seed, clen;
	size_t tail, part;
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
	if (cache_store_read_begin(s, &txn) != 0)
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
		tail = cache_record_tail_len(&rv, i);
		part = (size_t)clen - tail;
		if (part > 0) {
			rc = cache_store_chunk_get(s, txn, hv, rv.chunk_gen, i,
			    part, seed, get_le64(rv.sums + 8 * (size_t)i), &v);
			if (rc == MDB_NOTFOUND || rc == CDN_ECORRUPT) {
				rc = CDN_ECORRUPT;
				goto out;
			}
			if (rc != 0)
				goto lmdb_fail;
		}
		/* v borrows the map until the txn ends: copied. */
		o->chunks[i] = malloc((size_t)clen);
		if (o->chunks[i] == NULL) {
			rc = CDN_ENOMEM;
			goto out;
		}
		if (part > 0)
			memcpy(o->chunks[i], v.mv_data, part);
		if (tail > 0)
			memcpy(o->chunks[i] + part, cache_record_tail(&rv, i),
			    tail);
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
	cache_store_read_end(s, &txn);
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
	if (!cache_store_read_held(s)) /* the hold refreshed them */
		cache_store_purge_refresh(s);
	if (cache_store_read_begin(s, &txn) != 0)
		return CDN_EIO;
	rc = mdb_cursor_open(txn, s->db_obj, &cur);
	if (rc != 0) {
		cache_store_read_end(s, &txn);
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
	cache_store_read_end(s, &txn);
	return rc == ENOMEM ? CDN_ENOMEM : CDN_OK;
}

/*
 * Does LMDB hold a record of any variant of <key>?  Records are ordered by
 * key, then variant, so the first at or after the bare key is its first
 * variant if it has one: one seek.  0 (*found set), or an LMDB code.
 */
static int
key_on_disk(struct cache_store *s, MDB_txn *txn,
    const uint8_t key[CACHE_HASH_LEN], int *found)
{
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	int rc;

	rc = mdb_cursor_open(txn, s->db_obj, &cur);
	if (rc != 0)
		return rc;
	k = mval(key, CACHE_HASH_LEN);
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	*found = rc == 0 && k.mv_size == CACHE_OBJKEY_LEN &&
	    memcmp(k.mv_data, key, CACHE_HASH_LEN) == 0;
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/*
 * cache_store_get_vary, and with <none_stored> (not NULL) the probe of
 * cache_store_get_vary_probe: when memory knows nothing of the key, the
 * objects db is asked first, and a key with no record there nor in memory
 * is answered without reading the vary db.
 */
static int
vary_lookup(struct cache_store *s, const uint8_t key[CACHE_HASH_LEN], char *buf,
    size_t cap, size_t *len, int *none_stored)
{
	MDB_txn *txn = NULL;
	MDB_val k, v;
	uint64_t gen = 0;
	size_t n = 0;
	int rc, found = 1;

	MAGIC_CHECK(s, CACHE_STORE_MAGIC);
	CDN_ASSERT(key != NULL && len != NULL && (buf != NULL || cap == 0));
	if (none_stored != NULL)
		*none_stored = 0;
	if (cache_store_is_damaged(s))
		return CDN_NOTFOUND;
	rc = cache_mem_get_vary(s->mem, key, buf, cap, len, &gen);
	if (rc != CDN_AGAIN)
		return rc;
	if (cache_store_read_begin(s, &txn) != 0)
		return CDN_EIO;
	rc = none_stored != NULL ? key_on_disk(s, txn, key, &found) : 0;
	if (rc == 0 && !found) {
		/* Memory is asked after LMDB: a put reaches it first. */
		if (!cache_mem_has_obj(s->mem, key)) {
			cache_store_read_end(s, &txn);
			*none_stored = 1;
			return CDN_NOTFOUND;
		}
	}
	if (rc == 0) {
		k = mval(key, CACHE_HASH_LEN);
		rc = mdb_get(txn, s->db_vary, &k, &v);
	}
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
	cache_store_read_end(s, &txn);
	if (rc == CDN_OK || rc == CDN_ELIMIT)
		*len = n;
	if (rc == CDN_OK)
		cache_mem_set_vary(s->mem, key, buf, n, gen);
	else if (rc == CDN_NOTFOUND)
		cache_mem_set_vary(s->mem, key, NULL, 0, gen);
	return rc;
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
	return vary_lookup(s, key, buf, cap, len, NULL);
}

int
cache_store_get_vary_probe(struct cache_store *s,
    const uint8_t key[CACHE_HASH_LEN], char *buf, size_t cap, size_t *len,
    int *none_stored)
{
	CDN_ASSERT(none_stored != NULL);
	return vary_lookup(s, key, buf, cap, len, none_stored);
}
