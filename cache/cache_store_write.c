/*
 * Writes of the store (cache/cache.h): a put, a removal or a touch takes
 * effect in memory at once and reaches LMDB through the writer's queue
 * (cache_writer.c); cache_store_sync waits until the queue is committed
 * and synced.  Any thread; only cache_store_sync waits for the disk.
 */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "cache/cache.h"
#include "cache/cache_int.h"
#include "cache/cache_store_int.h"

#define MSG_OVERHEAD 256 /* queue bytes charged per object */

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
