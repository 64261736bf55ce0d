/*
 * The writer thread (cache_store.c "Threads and locks", "Durability"):
 * workers queue messages (cache_writer_enqueue, under s->qmtx); the
 * writer takes them in batches, has room made for each (cache_evict.c),
 * applies it in one write transaction, retries or drops what fails, and
 * syncs the environment.  It also keeps what cache_store_failing() says:
 * why disk writes fail, until a batch commits again.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
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

#define WQ_MAX_MSGS        10000                /* pending messages */
#define WQ_MAX_BYTES       (UINT64_C(64) << 20) /* pending object bytes */
#define W_LINGER_MS        20   /* wait this long to fill a batch */
#define W_SYNC_INTERVAL_MS 5000 /* mdb_env_sync after commits */
#define W_IDLE_MS          1000
#define W_RETRIES          8    /* transaction attempts per batch */
#define W_MSG_TRIES        2    /* attempts of one removal or touch */
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

#define W_BATCH_PAGES_DIV 1024 /* see batch_cap() */

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
	return store_mdb_put(s, txn, s->db_meta, &k, &v, 0);
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
		cache_pins_txn_end(s);
		return rc;
	}
	rc = cache_store_txn_commit(s, txnp);
	cache_pins_txn_end(s);
	if (rc != 0)
		return rc;
	used = cache_store_count_pages(s, used);
	s->used_bytes = used;
	s->dirty = 1;
	atomic_store_explicit(&s->st_objects, objects, memory_order_relaxed);
	atomic_store_explicit(&s->st_bytes, used, memory_order_relaxed);
	return 0;
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
		return cache_objdb_delete(s, txn, hv, 1, NULL, &existed);
	case W_CHUNK:
		return cache_stream_apply(s, txn, m);
	case W_STREAM_ABORT:
		if (atomic_load_explicit(&m->st->state, memory_order_relaxed) ==
		    STREAM_STORED)
			return 0;
		return cache_stream_delete(s, txn, m->st);
	case W_UNPIN:
		return cache_pins_drop(s, txn, m);
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
		if (cache_store_is_unreserved(rc)) {
			/* No disk for what the batch could write. */
			cache_writer_failed(s, "reserve", rc, need);
			break;
		}
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
			cache_pins_txn_end(s);
		}
		if (rc == MDB_MAP_FULL)
			atomic_fetch_add_explicit(
			    &s->st_map_full, 1, memory_order_relaxed);
		if (cache_store_is_full(rc))
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

/*
 * Messages per transaction for the store as it is now.  With random keys a
 * commit copies a leaf page or more per message in each of objects, bodies
 * and tags, and LMDB reuses the pages a commit frees only after the next
 * commit: data.mdb holds about two commits' copies beyond its pages in use.
 * A batch is kept to 1/W_BATCH_PAGES_DIV of the pages in use, so those
 * copies stay a small share of the file; a store of a few GB or more
 * batches W_BATCH_MSGS, which writes fewer pages per object.
 */
static size_t
batch_cap(const struct cache_store *s)
{
	uint64_t n = s->used_bytes / s->psize / W_BATCH_PAGES_DIV;

	if (n < W_BATCH_MSGS_MIN)
		return W_BATCH_MSGS_MIN;
	return n > W_BATCH_MSGS ? W_BATCH_MSGS : (size_t)n;
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
		return s->stop || sync_wanted || s->qcount >= s->batch_msgs ||
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
	s->batch_msgs = batch_cap(s);
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
		while (s->qhead != NULL && n < s->batch_msgs &&
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
				if (batch[k]->kind == W_UNPIN &&
				    !batch[k]->is_applied)
					cache_pins_forget(s, batch[k]->key,
					    batch[k]->variant, batch[k]->gen);
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
		s->batch_msgs = batch_cap(s);
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
	if (was_empty || s->qcount >= s->batch_msgs ||
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
