/*
 * Large bodies streamed to LMDB (cache/cache.h cache_store_stream_begin,
 * docs/coalescing.md).  The filling thread queues the body chunk by chunk;
 * the writer thread (cache_writer.c) writes each under its final key, and
 * the record with the last one, so that nothing is visible before the
 * whole body is on disk; readers read the committed chunks back.  Which
 * thread owns which field: struct cache_stream (cache_store_int.h).
 */
#include "config.h"

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

/* Where chunk <i>'s tail starts in st->tailbuf. */
static size_t
tail_off(const struct cache_stream *st, uint32_t i)
{
	size_t off = 0;

	for (uint32_t j = 0; j < i; j++)
		off += st->tails[j];
	return off;
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
		cache_record_chunkkey(
		    ck, st->obj->key, st->obj->variant, st->gen, i);
		k = mval(ck, sizeof(ck));
		rc = store_mdb_del(s, txn, s->db_body, &k, NULL);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return rc;
	}
	return 0;
}

/*
 * One chunk of a streamed body.  The first deletes whatever object was
 * stored under the key and variant (but the chunks readers still send,
 * cache_pin.c) and picks a chunk generation no reader holds; the
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
	uint8_t kept[CACHE_PIN_GEN_BYTES];
	MDB_val k, v;
	size_t part;
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
		st->gen = (unsigned)cache_pins_claim(s, hv, kept);
		rc = cache_objdb_delete(s, txn, hv, 0, kept, &existed);
		if (rc != 0)
			return rc;
		stream_list(s, st);
	}
	/* The tail stays in memory until the record takes it. */
	part = m->len - st->tails[m->chunk];
	memcpy(st->tailbuf + tail_off(st, m->chunk),
	    (const uint8_t *)m->data + part, st->tails[m->chunk]);
	st->sums[m->chunk] = cache_record_chunk_sum(
	    cache_record_seed(hv), m->chunk, m->data, part);
	if (part > 0) {
		cache_record_chunkkey(
		    ck, o->key, o->variant, st->gen, m->chunk);
		k = mval(ck, sizeof(ck));
		v = mval(m->data, part);
		rc = store_mdb_put(s, txn, s->db_body, &k, &v, 0);
		if (rc != 0)
			return rc;
	}
	if (!m->last)
		return 0;
	if (!st->clobbered &&
	    cache_store_purge_verdict(s, o) != CACHE_PURGED_HARD)
		return cache_objdb_write_record(s, txn, o, hv, st->gen,
		    st->nchunks, st->sums, st->tails, st->tailbuf, m->bucket);
	m->end_dropped = 1;
	return cache_stream_delete(s, txn, st);
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
	size_t total;

	MAGIC_CHECK(s, CACHE_STORE_MAGIC);
	MAGIC_CHECK(o, CACHE_OBJ_MAGIC);
	CDN_ASSERT(o->nchunks == 0 && o->chunks == NULL);
	/* Larger than the memory tier takes: so the memory tier never holds
	 * it, whose body is not in memory. */
	if (body_len <= cache_store_stream_min(s) ||
	    body_len > s->max_object_bytes || body_len > s->max_disk_object)
		return NULL;
	n = (body_len + CACHE_CHUNK_SIZE - 1) / CACHE_CHUNK_SIZE;
	if (n >= CACHE_CHUNKS_MAX)
		return NULL;
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return NULL;
	st->sums = calloc((size_t)n, sizeof(*st->sums));
	st->tails = calloc((size_t)n, sizeof(*st->tails));
	if (st->sums == NULL || st->tails == NULL)
		goto fail;
	total = cache_record_plan(body_len, (uint32_t)n,
	    cache_record_len(o, (uint32_t)n, 0), s->psize, st->tails);
	st->tailbuf = malloc(total + 1);
	if (st->tailbuf == NULL)
		goto fail;
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

fail:
	free(st->sums);
	free(st->tails);
	free(st);
	return NULL;
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
	    len != cache_chunk_len(st->body_len, i) ||
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
	uint8_t hv[CACHE_OBJKEY_LEN];
	unsigned char *p;
	MDB_txn *txn = NULL;
	MDB_val v;
	size_t len, part;
	int rc;

	MAGIC_CHECK(st, CACHE_STREAM_MAGIC);
	CDN_ASSERT(i < cache_stream_committed(st));
	s = st->s;
	len = cache_chunk_len(st->body_len, i);
	part = len - st->tails[i];
	p = malloc(len + 1);
	if (p == NULL)
		return CDN_ENOMEM;
	/* Published with committed (cache_stream_publish): stays as is. */
	memcpy(p + part, st->tailbuf + tail_off(st, i), st->tails[i]);
	if (part == 0)
		goto done;
	cache_record_objkey(hv, st->obj->key, st->obj->variant);
	if (cache_store_txn_begin(s, MDB_RDONLY, &txn) != 0) {
		free(p);
		return CDN_EIO;
	}
	/* gen was set with chunk 0, before committed moved (release). */
	rc = cache_store_chunk_get(s, txn, hv, st->gen, i, part,
	    cache_record_seed(hv), st->sums[i], &v);
	if (rc == MDB_NOTFOUND || rc == CDN_ECORRUPT) {
		rc = CDN_NOTFOUND; /* replaced or deleted since */
		goto out;
	}
	if (rc != 0) {
		rc = cache_store_read_failed(s, rc);
		goto out;
	}
	/* v borrows the map until the txn ends: copied. */
	memcpy(p, v.mv_data, part);
	cache_store_txn_abort(s, &txn);
done:
	*outp = p;
	*lenp = len;
	return CDN_OK;
out:
	cache_store_txn_abort(s, &txn);
	free(p);
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
	free(st->tails);
	free(st->tailbuf);
	pthread_mutex_destroy(&st->mu);
	MAGIC_WIPE(st);
	free(st);
}
