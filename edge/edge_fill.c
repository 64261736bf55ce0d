/*
 * Collapsed forwarding (edge/edge_int.h): concurrent misses of one cache
 * key, on any worker, share one origin fetch, and every client waiting on
 * it receives the body as it arrives.
 *
 * A struct edge_fill is one shared origin fetch.  It runs on the worker
 * that started it (its owner): curl delivers the response there, and the
 * body goes into a chain of CACHE_CHUNK_SIZE blocks that only grows.  Each
 * waiting client (a struct fill_waiter, on its own worker) reads the chain
 * at its own pace and hands the bytes to its connection by reference;
 * finished blocks become the stored object's chunks without a copy.  So a
 * slow client never slows the fill or the other clients, and the first
 * client leaving does not stop the fill.
 *
 * Threads: the owner alone writes the chain (a block's length is published
 * with a release store, a new block with a release store of ->next), so
 * readers need no lock to stream.  fill->mu guards the state and the waiter
 * list; the owner wakes a waiter through the waiter's worker (edge_wake.c:
 * at once on the same worker, by the worker's queue from another).  Lock
 * order: the in-flight table's shard lock, then fill->mu, then a worker's
 * wake queue.
 *
 * A response that may not be shared (not storable, too large, or a Vary
 * that some waiter does not match) releases the waiters: each fetches on its
 * own, and the key is remembered as hit-for-miss for cache_hit_for_miss, so
 * one uncacheable URL never makes its clients queue behind each other.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event_struct.h> /* struct event embedded in fill_waiter */

#include "edge/edge_inflight.h"
#include "edge/edge_deliver.h"
#include "edge/edge_int.h"
#include "edge/edge_stream.h"
#include "edge/edge_variant.h"

#define FILL_FIELDS_MAX (256 * 1024)
#define WAITER_HEAD_BUF 2048 /* a waiter's head built on its stack */
#define VARY_FIELDS     128
/* Chunks a streamed fill may have queued for the store and not yet
 * committed; past this the origin transfer waits for the store. */
#define FILL_STREAM_PENDING 8

enum fill_state {
	FILL_HEAD_WAIT = 0, /* fetch started, no response head yet */
	FILL_STREAM,        /* a shared response: its body is arriving */
	FILL_DONE,          /* complete (a body, or a revalidated object) */
	FILL_FAILED,        /* the origin failed: end waiters, or stale */
	FILL_RELEASED,      /* not shareable: every waiter fetches itself */
};

/*
 * One chunk of the body.  Held by the chain until the store has committed
 * it (a streamed fill) or the fill ends, by the waiter reading it, by each
 * piece of it in a client's output buffer and by the writer thread while
 * it writes it; freed with the last reference, on any thread.
 */
struct fill_block {
	_Atomic(struct fill_block *) next;
	atomic_size_t len; /* bytes of data[] written; published last */
	size_t cap;        /* CACHE_CHUNK_SIZE, or what Content-Length left */
	unsigned char *data;
	atomic_uint refs;
	uint32_t idx;           /* chunk number in the body */
	struct edge_fill *fill; /* not a reference: each piece holds one */
	int adopted;            /* data now belongs to fill->obj */
};

struct fill_waiter {
	struct fill_waiter *prev, *next; /* fill->waiters (fill->mu) */
	struct edge_fill *fill;
	struct proxy_txn *pt;
	struct event wake;      /* on pt's worker */
	struct edge_wake xwake; /* of <wake>: posted under fill->mu */
	struct fill_block *blk; /* a reference, or NULL between blocks */
	uint32_t idx;           /* of blk, or the block to read next */
	size_t off;             /* next byte of blk to send */
	uint64_t sent;
	unsigned responded : 1;
	unsigned leader : 1;
	unsigned broken : 1; /* a chunk could not be read back */
};

struct edge_fill {
	uint32_t magic;
#define EDGE_FILL_MAGIC 0x6b1f2d93u
	atomic_uint refcnt;
	pthread_mutex_t mu;
	struct edge *edge;
	const struct edge_site *site;        /* of the leading request */
	struct edge_gen *gen;                /* held: <site> is in it */
	const struct edge_fill_hooks *hooks; /* its caller's (static) */
	struct edge_worker *owner;
	struct origin_fetch *fetch; /* owner thread */
	uint8_t key[CACHE_HASH_LEN];
	char *key_url; /* after rf[], in the fill's allocation */
	size_t key_url_len;
	/* The leading request, for the storing decision and its Vary key. */
	struct cache_exchange x;
	uint64_t purge_gen;      /* the leader's: purges after it outrank us */
	int nrf;                 /* -1: too many fields to compute a Vary key */
	struct cache_obj *stale; /* being revalidated */
	/* (mu) */
	enum fill_state state;
	struct fill_waiter *waiters;
	/* Set before the state leaves FILL_HEAD_WAIT, read-only after. */
	int status;
	char *fields; /* the client's head, without Cache-Status */
	size_t fields_len;
	int64_t content_length;
	/* The object's Vary and tags (for fleet caches among the waiters),
	 * borrowed from f->obj, or from <head> once f->obj is let go (a body
	 * that outgrew max_object_size): f->obj must stay the only reference
	 * until its body is adopted. */
	struct cache_obj *head;
	const char *vary;
	size_t vary_len;
	uint64_t variant;
	const char *tags;
	size_t tags_len;
	char note[96];            /* appended to each waiter's Cache-Status */
	struct cache_obj *result; /* FILL_DONE after a 304: serve this */
	enum origin_err err;      /* FILL_FAILED */
	int err_status;           /* FILL_FAILED by a 5xx head, else 0 */
	uint64_t total;           /* FILL_DONE: body length */
	int stored;               /* FILL_DONE: the store took it, healthy */
	const char *not_stored;   /* why not (edge_cache_log_status) */
	/* The chain: written by the owner; first under mu (the owner drops
	 * committed blocks from its head), tail the owner's alone. */
	struct fill_block *first, *tail;
	/* A large body goes to the store as it arrives (set before the state
	 * leaves FILL_HEAD_WAIT): its committed chunks leave the chain, and a
	 * waiter behind them reads them back from the store. */
	struct cache_stream *stream;
	/* Owner thread only. */
	struct event *stream_ev;      /* the writer moved the stream */
	struct edge_wake stream_wake; /* of stream_ev, from the writer */
	uint32_t pushed;              /* blocks queued for the store */
	unsigned paused : 1;          /* origin transfer waits for the store */
	unsigned storing : 1;         /* body complete, record not committed */
	struct fill_block *held;      /* storing: the last block, its length */
	size_t held_len;              /* not published to the waiters yet */
	uint64_t body_len;
	struct cache_obj *obj; /* the object to store, if storable */
	int recodable;         /* edge_cache_fill_obj's *recodablep for obj */
	unsigned discard : 1;  /* nobody wants the body: end the fetch */
	int in_table; /* published in the in-flight table (its shard's lock;
	               * not a bit field: other workers write it) */
	struct edge_fill *own_prev, *own_next; /* owner's list */
	/* nrf entries, sized to the request, as zeroing room for VARY_FIELDS
	 * was a visible part of a miss; their names and values follow them,
	 * after key_url, in the same allocation. */
	struct cache_field rf[];
};

/*
 * Take the fill out of the table (new requests then go to the cache, which
 * holds the object by now, or start a new fill).  <hfm>: leave a
 * hit-for-miss marker in its place.
 */
static void
fill_unpublish(struct edge_fill *f, int hfm)
{
	struct edge_inflight_slot sl;

	edge_inflight_lock(f->edge->inflight, f->key, &sl);
	if (f->in_table) {
		CDN_ASSERT(edge_inflight_fill(&sl) == f);
		f->in_table = 0;
		edge_inflight_end_fill(
		    &sl, hfm ? f->site->conf->cache_hit_for_miss : 0);
	} /* else never published, or replaced after a purge */
	edge_inflight_unlock(&sl);
}

/* ---- fill lifetime ---- */

static struct fill_block *
block_ref(struct fill_block *b)
{
	atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
	return b;
}

static void
block_unref(struct fill_block **bp)
{
	struct fill_block *b = *bp;

	*bp = NULL;
	if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) > 1)
		return;
	if (!b->adopted)
		free(b->data);
	free(b);
}

/* The writer thread is done with a block it was given. */
static void
block_release(void *arg)
{
	struct fill_block *b = arg;

	block_unref(&b);
}

static struct edge_fill *
fill_ref(struct edge_fill *f)
{
	atomic_fetch_add_explicit(&f->refcnt, 1, memory_order_relaxed);
	return f;
}

static void
fill_unref(struct edge_fill *f)
{
	struct fill_block *b, *next;

	MAGIC_CHECK(f, EDGE_FILL_MAGIC);
	if (atomic_fetch_sub_explicit(&f->refcnt, 1, memory_order_acq_rel) > 1)
		return;
	CDN_ASSERT(f->waiters == NULL && f->fetch == NULL && !f->in_table);
	CDN_ASSERT(f->stream_ev == NULL);
	for (b = f->first; b != NULL; b = next) {
		next = atomic_load_explicit(&b->next, memory_order_relaxed);
		block_unref(&b);
	}
	if (f->stream != NULL) {
		cache_stream_abort(f->stream); /* unless it ended */
		cache_stream_unref(&f->stream);
	}
	if (f->obj != NULL)
		cache_obj_unref(&f->obj);
	if (f->result != NULL)
		cache_obj_unref(&f->result);
	if (f->stale != NULL)
		cache_obj_unref(&f->stale);
	free(f->fields);
	if (f->head != NULL)
		cache_obj_unref(&f->head);
	pthread_mutex_destroy(&f->mu);
	edge_gen_fill_drop(f->gen);
	MAGIC_WIPE(f);
	free(f);
}

static void
wake_all_locked(struct edge_fill *f)
{
	for (struct fill_waiter *fw = f->waiters; fw != NULL; fw = fw->next)
		edge_worker_wake(fw->pt->w, &fw->xwake);
}

static void
set_state(struct edge_fill *f, enum fill_state st)
{
	pthread_mutex_lock(&f->mu);
	f->state = st;
	wake_all_locked(f);
	pthread_mutex_unlock(&f->mu);
}

/* The owner is done with the fetch (and the stream): out of its list, one
 * ref less. */
static void
fill_end(struct edge_fill *f)
{
	struct edge_worker *w = f->owner;

	if (f->stream_ev != NULL) {
		/* No wake comes once set_wake returns (the writer wakes
		 * under the stream's lock). */
		cache_stream_set_wake(f->stream, NULL, NULL);
		edge_worker_wake_cancel(w, &f->stream_wake);
		event_free(f->stream_ev);
		f->stream_ev = NULL;
	}

	if (f->own_prev != NULL)
		f->own_prev->own_next = f->own_next;
	else
		w->fills = f->own_next;
	if (f->own_next != NULL)
		f->own_next->own_prev = f->own_prev;
	f->own_prev = f->own_next = NULL;
	fill_unref(f);
}

/* ---- waiters ---- */

static void waiter_run(struct fill_waiter *fw);

static void
on_waiter_wake(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	waiter_run(arg);
}

static struct fill_waiter *
waiter_attach_locked(struct edge_fill *f, struct proxy_txn *pt, int leader)
{
	struct fill_waiter *fw = cdn_xcalloc(1, sizeof(*fw));
	int rc;

	fw->fill = fill_ref(f);
	fw->pt = pt;
	fw->leader = (unsigned)leader;
	rc = event_assign(&fw->wake, pt->w->base, -1, 0, on_waiter_wake, fw);
	CDN_ASSERT(rc == 0);
	edge_wake_init(&fw->xwake, &fw->wake);
	fw->next = f->waiters;
	if (f->waiters != NULL)
		f->waiters->prev = fw;
	f->waiters = fw;
	pt->waiter = fw;
	/* Catch up with whatever happened before we attached. */
	edge_worker_wake(pt->w, &fw->xwake);
	return fw;
}

/* Leave the fill (the waiter's own thread).  pt->waiter is cleared. */
static void
waiter_detach(struct fill_waiter *fw)
{
	struct edge_fill *f = fw->fill;

	pthread_mutex_lock(&f->mu);
	if (fw->prev != NULL)
		fw->prev->next = fw->next;
	else
		f->waiters = fw->next;
	if (fw->next != NULL)
		fw->next->prev = fw->prev;
	pthread_mutex_unlock(&f->mu);
	/* Out of the list: no wake can come now. */
	edge_worker_wake_cancel(fw->pt->w, &fw->xwake);
	event_del(&fw->wake); /* active or not */
	if (fw->blk != NULL)
		block_unref(&fw->blk);
	fw->pt->waiter = NULL;
	free(fw);
	fill_unref(f);
}

void
edge_fill_detach(struct proxy_txn *pt)
{
	if (pt->waiter != NULL)
		waiter_detach(pt->waiter);
}

static void
on_block_sent(const void *data, size_t len, void *arg)
{
	struct fill_block *b = arg;
	struct edge_fill *f = b->fill;

	(void)data;
	(void)len;
	block_unref(&b);
	fill_unref(f);
}

/* Hand bytes of <b> to the client by reference: the piece holds the block
 * and the fill (whose object may own the block's data). */
static void
piece_write(struct proxy_txn *pt, struct fill_block *b, size_t off, size_t len)
{
	fill_ref(b->fill);
	edge_stream_write_ref(
	    &pt->cs, b->data + off, len, on_block_sent, block_ref(b));
}

/*
 * Give the waiter block fw->idx: from the chain, or read back from the
 * store once the chain has let it go.  1: fw->blk is set; 0: not here
 * yet; -1: it cannot be read back (deleted or replaced meanwhile).
 */
static int
waiter_block(struct fill_waiter *fw)
{
	struct edge_fill *f = fw->fill;
	struct fill_block *b;
	uint32_t committed = 0;
	unsigned char *data;
	size_t len;

	pthread_mutex_lock(&f->mu);
	for (b = f->first; b != NULL && b->idx < fw->idx;
	     b = atomic_load_explicit(&b->next, memory_order_acquire))
		;
	if (b != NULL && b->idx == fw->idx) {
		fw->blk = block_ref(b);
		pthread_mutex_unlock(&f->mu);
		return 1;
	}
	/* Only committed blocks leave the chain. */
	if (f->stream != NULL && (f->first == NULL || f->first->idx > fw->idx))
		committed = cache_stream_committed(f->stream);
	pthread_mutex_unlock(&f->mu);
	if (fw->idx >= committed)
		return 0;
	/* Failing (out of memory too) cuts this client short, no other. */
	if (cache_stream_read(f->stream, fw->idx, &data, &len) != CDN_OK) {
		CDN_LOG(CDN_LOG_WARN, "fill",
		    "chunk %u of a stored body is gone: a client is cut short",
		    (unsigned)fw->idx);
		return -1;
	}
	b = calloc(1, sizeof(*b));
	if (b == NULL) {
		free(data);
		return -1;
	}
	b->data = data;
	b->cap = len;
	atomic_init(&b->len, len);
	atomic_init(&b->refs, 1);
	b->idx = fw->idx;
	b->fill = f;
	fw->blk = b;
	return 1;
}

/* Cache-Status of a waiter: its own lookup result plus the fill's note. */
static void
waiter_status(struct fill_waiter *fw, const char *extra)
{
	struct proxy_txn *pt = fw->pt;
	size_t n = strlen(pt->cache_status);

	if (!fw->leader)
		n += cdn_strlcpy(pt->cache_status + n, "; collapsed",
		    sizeof(pt->cache_status) - n);
	cdn_strlcpy(pt->cache_status + n, extra, sizeof(pt->cache_status) - n);
}

/*
 * May the waiter have the response the fill carries (head <fields>)?  Its
 * request must select the same Vary variant, and take the response's
 * content coding.
 */
static int
waiter_matches(struct fill_waiter *fw, const char *vary, size_t vlen,
    uint64_t variant, const char *fields, size_t flen)
{
	const struct http_request *req = edge_stream_request(&fw->pt->cs);
	struct cache_field rf[VARY_FIELDS];
	enum cache_enc enc = cache_variant_enc(variant);
	uint64_t mine;
	int nf;

	if (!edge_variant_takes(req, enc, fields, flen))
		return 0;
	if (vlen == 0)
		return 1;
	nf = edge_cache_request_fields(req, rf, VARY_FIELDS);
	return nf >= 0 &&
	    cache_vary_key(vary, vlen, rf, (unsigned)nf, &mine) == CDN_OK &&
	    cache_variant_id(mine, enc) == variant;
}

/* Hand the waiter back to the proxy: it fetches on its own. */
static void
waiter_release(struct fill_waiter *fw)
{
	struct proxy_txn *pt = fw->pt;
	const struct edge_fill_hooks *hooks = fw->fill->hooks;

	waiter_detach(fw); /* frees fw */
	EDGE_COUNTER_INC(pt->w, cache_collapse_released);
	hooks->fetch_alone(pt);
}

/* The origin failed before this waiter had a head: stale or an error. */
static void
waiter_failed(struct fill_waiter *fw, enum origin_err err, int err_status)
{
	struct proxy_txn *pt = fw->pt;
	char why[64];

	waiter_detach(fw);
	if (err_status != 0)
		snprintf(why, sizeof(why), "%d", err_status);
	else
		snprintf(why, sizeof(why), "%s", origin_err_name(err));
	if (edge_cache_serve_stale_on_error(pt, err_status, why, 1))
		return;
	pt->origin_err = err;
	edge_deliver_error(
	    pt, &pt->cs, err_status != 0 ? err_status : origin_err_status(err));
}

static void
waiter_send_head(struct fill_waiter *fw)
{
	struct edge_fill *f = fw->fill;
	struct proxy_txn *pt = fw->pt;
	struct cdn_strbuf out;
	char buf[WAITER_HEAD_BUF]; /* most heads: no malloc */
	int status = f->status;
	int64_t content_length = f->content_length;

	cdn_sb_init_buf(&out, buf, sizeof(buf), FILL_FIELDS_MAX);
	waiter_status(fw, f->note);
	cdn_sb_add(&out, f->fields, f->fields_len);
	/* The waiter's own Range, answered from the bytes as they come. */
	edge_deliver_range_head(
	    pt, &status, f->fields, f->fields_len, &out, &content_length);
	edge_deliver_status_field(pt, &out);
	edge_deliver_tags_field(pt, f->tags, f->tags_len, &out);
	pt->responded = 1;
	fw->responded = 1;
	edge_stream_respond(
	    &pt->cs, status, out.p, out.failed ? 0 : out.len, content_length);
	cdn_sb_free(&out);
}

/* Send what has arrived, as far as the client's buffer allows. */
static void
waiter_stream(struct fill_waiter *fw)
{
	struct proxy_txn *pt = fw->pt;
	size_t len;
	int rc;

	while (!edge_stream_congested(&pt->cs)) {
		if (fw->blk == NULL) {
			rc = waiter_block(fw);
			if (rc < 0)
				fw->broken = 1;
			if (rc <= 0)
				return;
		}
		len = atomic_load_explicit(&fw->blk->len, memory_order_acquire);
		if (fw->off < len && pt->range != NULL) {
			/* Copies only the ranges' bytes. */
			edge_deliver_body(pt,
			    (const char *)fw->blk->data + fw->off,
			    len - fw->off);
		} else if (fw->off < len) {
			piece_write(pt, fw->blk, fw->off, len - fw->off);
		}
		if (fw->off < len) {
			fw->sent += len - fw->off;
			fw->off = len;
		}
		if (fw->off < fw->blk->cap)
			return; /* the block is still filling */
		block_unref(&fw->blk);
		fw->idx++;
		fw->off = 0;
	}
}

static void
waiter_run(struct fill_waiter *fw)
{
	struct edge_fill *f = fw->fill;
	struct proxy_txn *pt = fw->pt;
	const struct http_request *req = edge_stream_request(&pt->cs);
	enum fill_state st;
	struct cache_obj *o;

	CDN_DASSERT(edge_worker_current() == pt->w); /* the waiter's own */
	pthread_mutex_lock(&f->mu);
	st = f->state;
	pthread_mutex_unlock(&f->mu);

	switch (st) {
	case FILL_HEAD_WAIT:
		return;
	case FILL_RELEASED:
		waiter_release(fw);
		return;
	case FILL_FAILED:
		if (!fw->responded) {
			waiter_failed(fw, f->err, f->err_status);
			return;
		}
		break;
	case FILL_STREAM:
	case FILL_DONE:
		break;
	}
	if (!fw->responded && f->result != NULL) {
		/* A revalidation that ended in 304: the refreshed object. */
		o = cache_obj_ref(f->result);
		if (!fw->leader &&
		    !waiter_matches(fw, o->vary, o->vary_len, o->variant,
		        o->fields, o->fields_len)) {
			cache_obj_unref(&o);
			waiter_release(fw);
			return;
		}
		waiter_status(fw, f->note);
		pt->stored = (unsigned)f->stored;
		pt->not_stored = f->not_stored;
		waiter_detach(fw);
		pt->served = 1;
		edge_deliver_stored(pt, o);
		cache_obj_unref(&o);
		edge_stream_finish(&pt->cs);
		return;
	}
	if (!fw->responded) {
		if (!fw->leader &&
		    !waiter_matches(fw, f->vary, f->vary_len, f->variant,
		        f->fields, f->fields_len)) {
			waiter_release(fw);
			return;
		}
		waiter_send_head(fw);
		if (req->method == HTTP_M_HEAD) {
			pt->not_stored = "pending"; /* the fetch goes on */
			waiter_detach(fw);
			edge_stream_finish(&pt->cs);
			return;
		}
		fw->idx = 0;
		fw->off = 0;
	}
	waiter_stream(fw);
	if (st == FILL_FAILED || fw->broken) {
		/* Truncated: the client must not mistake it for complete. */
		waiter_detach(fw);
		edge_stream_abort(&pt->cs);
		return;
	}
	if (st == FILL_DONE && fw->sent == f->total) {
		pt->stored = (unsigned)f->stored;
		pt->not_stored = f->not_stored;
		waiter_detach(fw);
		edge_stream_finish(&pt->cs);
	}
}

void
edge_fill_writable(struct proxy_txn *pt)
{
	if (pt->waiter != NULL)
		waiter_run(pt->waiter);
}

/* ---- the fetch (owner thread) ---- */

/*
 * A block sized for what is still to come, when the origin said.  NULL
 * when memory runs out: the origin sizes the body, so the fill fails.
 */
static struct fill_block *
block_new(const struct edge_fill *f)
{
	struct fill_block *b = calloc(1, sizeof(*b));
	uint64_t at, left;

	if (b == NULL)
		return NULL;
	b->idx = f->tail != NULL ? f->tail->idx + 1 : 0;
	/* Every block before this one is full (f->body_len lags within
	 * one on_body call). */
	at = (uint64_t)b->idx * CACHE_CHUNK_SIZE;
	b->cap = CACHE_CHUNK_SIZE;
	if (f->content_length >= 0) {
		left = (uint64_t)f->content_length - at;
		if (at < (uint64_t)f->content_length && left < CACHE_CHUNK_SIZE)
			b->cap = (size_t)left;
	}
	b->data = malloc(b->cap);
	if (b->data == NULL) {
		free(b);
		return NULL;
	}
	atomic_init(&b->refs, 1); /* the chain's */
	b->fill = (struct edge_fill *)(uintptr_t)f;
	return b;
}

/* ---- the stream to the store (owner thread) ---- */

/* The writer thread committed chunks: go on on the owner's loop. */
static void
stream_wake(void *arg)
{
	struct edge_fill *f = arg;

	edge_worker_wake(f->owner, &f->stream_wake);
}

/*
 * Queue the full blocks not queued yet; <last>, the body's final block,
 * goes with the object's record.  A stream the store refused stops here:
 * the fill then keeps its blocks, as one that never streamed.
 */
static void
stream_push(struct edge_fill *f, const struct fill_block *last)
{
	struct fill_block *b;
	int is_last;

	/* The owner alone changes the chain: no lock to read it. */
	for (b = f->first; b != NULL && b->idx < f->pushed;
	     b = atomic_load_explicit(&b->next, memory_order_relaxed))
		;
	for (; b != NULL && cache_stream_state(f->stream) == 0 &&
	     (b == last ||
	         atomic_load_explicit(&b->len, memory_order_relaxed) == b->cap);
	     b = atomic_load_explicit(&b->next, memory_order_relaxed)) {
		is_last = b == last;
		if (cache_stream_chunk(f->stream, b->data, b->cap, is_last,
		        block_release, block_ref(b)) != CDN_OK)
			return;
		f->pushed++;
		if (is_last)
			return;
	}
}

/* Let committed blocks go: a waiter still behind reads them back. */
static void
stream_drop_committed(struct edge_fill *f)
{
	struct fill_block *gone = NULL, *b;
	uint32_t committed = cache_stream_committed(f->stream);
	int complete = f->body_len == (uint64_t)f->content_length;

	pthread_mutex_lock(&f->mu);
	/* The tail stays while the body grows: on_body appends to it. */
	while ((b = f->first) != NULL && b->idx < committed &&
	    (b != f->tail || complete)) {
		f->first = atomic_load_explicit(&b->next, memory_order_relaxed);
		if (f->tail == b)
			f->tail = NULL;
		atomic_store_explicit(&b->next, gone, memory_order_relaxed);
		gone = b;
	}
	pthread_mutex_unlock(&f->mu);
	while ((b = gone) != NULL) {
		gone = atomic_load_explicit(&b->next, memory_order_relaxed);
		block_unref(&b);
	}
}

static int
stream_backlog(struct edge_fill *f)
{
	return cache_stream_state(f->stream) == 0 &&
	    f->pushed - cache_stream_committed(f->stream) >=
	    FILL_STREAM_PENDING;
}

/*
 * The stream of a complete body ended (or the worker stops): the waiters
 * get its last bytes only now, so that a client that has the whole body
 * and asks again finds it stored rather than missing.
 */
/* Why a streamed body was not stored (the access log's detail). */
static const char *
stream_refused(const struct edge_fill *f)
{
	return cache_store_failing(f->edge->store) != NULL ? "store-failing"
	                                                   : "store-refused";
}

static void
fill_stored(struct edge_fill *f)
{
	f->storing = 0;
	f->stored = cache_stream_state(f->stream) > 0;
	if (!f->stored)
		f->not_stored = stream_refused(f);
	atomic_store_explicit(&f->held->len, f->held_len, memory_order_release);
	f->held = NULL;
	fill_unpublish(f, 0);
	set_state(f, FILL_DONE);
}

static void
on_stream_ev(evutil_socket_t fd, short what, void *arg)
{
	struct edge_fill *f = arg;

	(void)fd;
	(void)what;
	MAGIC_CHECK(f, EDGE_FILL_MAGIC);
	if (f->storing && cache_stream_state(f->stream) != 0) {
		/* The record committed (or failed): new requests find the
		 * object in the store now, and the waiters get the end. */
		fill_stored(f);
		if (f->fetch == NULL) {
			stream_drop_committed(f);
			fill_end(f);
			return;
		}
	}
	stream_drop_committed(f);
	if (f->paused && !stream_backlog(f) && f->fetch != NULL) {
		f->paused = 0;
		origin_fetch_resume_body(f->fetch);
	}
}

/* Stream a storable body of known, large length to the store. */
static void
stream_begin(struct edge_fill *f)
{
	struct cache_store *store = f->edge->store;

	if (f->obj == NULL || f->content_length <= 0 ||
	    (uint64_t)f->content_length <= cache_store_stream_min(store))
		return;
	f->stream_ev = event_new(f->owner->base, -1, 0, on_stream_ev, f);
	CDN_ASSERT(f->stream_ev != NULL);
	edge_wake_init(&f->stream_wake, f->stream_ev);
	f->stream = cache_store_stream_begin(
	    store, f->obj, (uint64_t)f->content_length, stream_wake, f);
	if (f->stream == NULL) {
		event_free(f->stream_ev);
		f->stream_ev = NULL;
		return;
	}
}

static void
fill_fail(struct edge_fill *f, enum origin_err err, int err_status)
{
	if (f->stream != NULL)
		cache_stream_abort(f->stream); /* unless it ended */
	f->err = err;
	f->err_status = err_status;
	fill_unpublish(f, 0);
	set_state(f, FILL_FAILED);
}

/* Hand the fetch to the leading client alone (not shareable). */
static int
hand_to_leader(struct edge_fill *f, struct origin_fetch *of, int status,
    const char *fields, size_t len, int64_t content_length)
{
	struct fill_waiter *fw, *leader = NULL;
	struct proxy_txn *pt;

	pthread_mutex_lock(&f->mu);
	for (fw = f->waiters; fw != NULL; fw = fw->next)
		if (fw->leader)
			leader = fw;
	pthread_mutex_unlock(&f->mu);
	if (leader == NULL)
		return 0;
	pt = leader->pt;
	CDN_ASSERT(pt->w == f->owner);
	waiter_detach(leader);
	f->fetch = NULL;
	pt->fetch = of;
	origin_fetch_set_consumer(of, f->hooks->client_ops, pt);
	f->hooks->client_ops->on_head(
	    of, pt, status, fields, len, content_length);
	return 1;
}

/*
 * A body without Content-Length outgrew max_object_size: it will not be
 * stored.  A leader alone gets what has arrived and then the fetch itself,
 * with the proxy's flow control, so memory stops growing; with other
 * waiters the fill keeps streaming to all of them.
 */
static struct proxy_txn *
hand_over_midway(struct edge_fill *f, struct origin_fetch *of)
{
	struct fill_waiter *fw;
	struct proxy_txn *pt;
	size_t len;

	pthread_mutex_lock(&f->mu);
	fw = f->waiters;
	if (fw == NULL || fw->next != NULL || !fw->leader || !fw->responded) {
		pthread_mutex_unlock(&f->mu);
		return NULL;
	}
	pthread_mutex_unlock(&f->mu);
	pt = fw->pt;
	/* Everything that arrived so far, by reference, in order (all in
	 * the chain: a body of unknown length is not streamed). */
	while (fw->blk != NULL || waiter_block(fw) == 1) {
		len = atomic_load_explicit(&fw->blk->len, memory_order_relaxed);
		if (fw->off < len && pt->range != NULL)
			edge_deliver_body(pt,
			    (const char *)fw->blk->data + fw->off,
			    len - fw->off);
		else if (fw->off < len)
			piece_write(pt, fw->blk, fw->off, len - fw->off);
		fw->off = len;
		if (len < fw->blk->cap)
			break;
		block_unref(&fw->blk);
		fw->idx++;
		fw->off = 0;
	}
	waiter_detach(fw);
	f->fetch = NULL;
	pt->fetch = of;
	origin_fetch_set_consumer(of, f->hooks->client_ops, pt);
	return pt;
}

/* The origin's head came: count its latency once, here or in the proxy. */
static void
count_head(struct edge_fill *f, struct origin_fetch *of)
{
	edge_stats_origin_head(f->owner, origin_fetch_first_byte_us(of));
}

static void
fill_on_head(struct origin_fetch *of, void *arg, int status, const char *fields,
    size_t len, int64_t content_length)
{
	struct edge_fill *f = arg;
	struct edge *e = f->edge;
	struct edge_worker *w = f->owner;
	struct cdn_strbuf out = {.max = FILL_FIELDS_MAX};
	struct cache_decision d;
	struct cache_obj *merged;

	MAGIC_CHECK(f, EDGE_FILL_MAGIC);
	CDN_DASSERT(edge_worker_current() == f->owner);
	f->x.response_time = time(NULL);
	if (edge_deliver_client_fields(f->edge, f->site, fields, len, &out,
	        &content_length) != CDN_OK) {
		cdn_sb_free(&out);
		count_head(f, of);
		f->discard = 1; /* on_done answers 502 */
		return;
	}
	if (f->stale != NULL && status == 304) {
		count_head(f, of);
		merged = edge_cache_merge_304(&f->site->policy, &f->x,
		    f->purge_gen, f->stale, out.p, out.len, &d);
		cdn_sb_free(&out);
		if (merged == NULL) {
			f->discard = 1;
			return;
		}
		EDGE_COUNTER_INC(w, cache_not_modified);
		snprintf(f->note, sizeof(f->note), "; fwd-status=304%s",
		    d.storable ? edge_cache_store_note(e) : "");
		if (d.storable) {
			f->not_stored = edge_cache_store(
			    w, merged, edge_variant_recodable(e, merged));
			f->stored = f->not_stored == NULL;
		}
		f->result = merged;
		f->total = 0;
		fill_unpublish(f, 0);
		set_state(f, FILL_DONE);
		return;
	}
	if (status >= 500 && f->stale != NULL &&
	    edge_cache_stale_if_error_ok(
	        f->site, f->stale, &f->x.req_cc, f->x.req_pragma_no_cache)) {
		/* stale-if-error: waiters answer from their stored copies. */
		cdn_sb_free(&out);
		count_head(f, of);
		fill_fail(f, ORIGIN_OK, status);
		return;
	}
	f->obj = edge_cache_fill_obj(e, f->site, &f->x, f->key, f->key_url,
	    f->key_url_len, f->rf, f->nrf, 0, f->purge_gen, status, fields, len,
	    content_length, &out, &d, &f->recodable);
	if (f->obj == NULL) {
		/* Not for sharing: the leader takes the fetch, the others
		 * fetch on their own, and the key is hit-for-miss. */
		if (!d.storable || status == 206)
			EDGE_COUNTER_INC(w, cache_hit_for_miss);
		fill_unpublish(f, 1);
		cdn_sb_free(&out);
		if (hand_to_leader(
		        f, of, status, fields, len, content_length)) {
			set_state(f, FILL_RELEASED);
			fill_end(f); /* the fetch is the leader's now */
			return;
		}
		count_head(f, of);
		f->discard = 1;
		set_state(f, FILL_RELEASED);
		return;
	}
	count_head(f, of);
	f->status = status;
	/* The head's buffer becomes the fill's, not a copy of it. */
	CDN_ASSERT(!out.borrowed);
	f->fields = out.p != NULL ? out.p : cdn_strndup("", 0);
	f->fields_len = out.len;
	out.p = NULL;
	f->content_length = content_length;
	f->vary = f->obj->vary;
	f->vary_len = f->obj->vary_len;
	f->variant = f->obj->variant;
	f->tags = f->obj->tags;
	f->tags_len = f->obj->tags_len;
	cdn_strlcpy(f->note, edge_cache_store_note(e), sizeof(f->note));
	cdn_sb_free(&out);
	f->first = f->tail = block_new(f);
	if (f->fields == NULL || f->first == NULL) {
		f->discard = 1; /* out of memory: on_done answers 502 */
		return;
	}
	stream_begin(f);
	set_state(f, FILL_STREAM);
}

/*
 * The finished body becomes the object's chunks (no copy).  <last> is the
 * block whose final length <last_len> is not published yet.
 */
static int
adopt_body(struct edge_fill *f, struct fill_block *last, size_t last_len)
{
	/* Waiters send from the blocks: a body to be sealed (it then frees
	 * its chunks) takes a copy of them instead.  So does a small one, so
	 * that what the memory tier keeps is out of the malloc heap
	 * (CACHE_OBJ_SMALL_MAX), where the blocks, freed with the fill,
	 * are reused by the next fills. */
	int copy_all = f->body_len >= CACHE_OBJ_FD_MIN ||
	    f->body_len <= CACHE_OBJ_SMALL_MAX;

	if (copy_all && f->obj->body_len == 0 && f->obj->nchunks == 0)
		cache_obj_reserve(f->obj, f->body_len);

	for (struct fill_block *b = f->first; b != NULL;
	     b = atomic_load_explicit(&b->next, memory_order_relaxed)) {
		size_t len = b == last
		    ? last_len
		    : atomic_load_explicit(&b->len, memory_order_relaxed);
		unsigned char *copy;

		if (len == 0)
			break;
		if (copy_all) {
			if (cache_obj_append(f->obj, b->data, len) != CDN_OK)
				return CDN_ENOMEM;
			continue;
		}
		if (len == b->cap) {
			if (cache_obj_adopt_chunk(f->obj, b->data, len, len) !=
			    CDN_OK)
				return CDN_ENOMEM;
			b->adopted = 1;
			continue;
		}
		/* A short last block of a body of unknown length: store a
		 * right-sized copy, not the whole block. */
		copy = malloc(len);
		if (copy == NULL)
			return CDN_ENOMEM;
		memcpy(copy, b->data, len);
		if (cache_obj_adopt_chunk(f->obj, copy, len, len) != CDN_OK) {
			free(copy);
			return CDN_ENOMEM;
		}
	}
	return CDN_OK;
}

/*
 * The whole body is here: store it, then let the waiters have its last
 * bytes.  In that order, so that a client that has the whole body and asks
 * again finds the object in the cache rather than a new miss.
 */
static void
fill_complete(struct edge_fill *f, struct fill_block *last, size_t last_len)
{
	struct edge_worker *w = f->owner;

	if (f->stream != NULL) {
		/* The last chunk takes the record along.  Until it commits
		 * the fill stays in the table, so that a client asking again
		 * joins it rather than missing. */
		CDN_ASSERT(last != NULL && last_len == last->cap);
		stream_push(f, last);
		if (cache_stream_state(f->stream) == 0 &&
		    f->pushed == last->idx + 1) {
			f->storing = 1;
			f->held = last;
			f->held_len = last_len;
			f->total = f->body_len;
			EDGE_COUNTER_INC(w, cache_stores);
			return; /* fill_stored() goes on */
		}
		/* The record committed already, or the stream failed. */
		f->stored = cache_stream_state(f->stream) > 0;
		if (!f->stored)
			f->not_stored = stream_refused(f);
	} else if (f->obj != NULL && adopt_body(f, last, last_len) == CDN_OK) {
		f->not_stored = edge_cache_store(w, f->obj, f->recodable);
		f->stored = f->not_stored == NULL;
	} else if (f->obj != NULL) {
		f->not_stored = "no-memory";
	}
	if (last != NULL)
		atomic_store_explicit(
		    &last->len, last_len, memory_order_release);
	f->total = f->body_len;
	fill_unpublish(f, 0);
	set_state(f, FILL_DONE);
}

static size_t
fill_on_body(struct origin_fetch *of, void *arg, const char *data, size_t len)
{
	struct edge_fill *f = arg;
	struct fill_block *b, *last = NULL;
	struct proxy_txn *pt;
	size_t used, n, left = len, last_len = 0;
	int completes;

	(void)of;
	MAGIC_CHECK(f, EDGE_FILL_MAGIC);
	CDN_DASSERT(edge_worker_current() == f->owner);
	if (f->discard)
		return 0; /* ends the transfer */
	if (f->result != NULL || f->err_status != 0)
		return len; /* a 304's or a 5xx's body: nobody's */
	if (f->stream != NULL && stream_backlog(f)) {
		/* The store is behind: wait for it (on_stream_ev). */
		f->paused = 1;
		return ORIGIN_PAUSE;
	}
	if (f->obj != NULL &&
	    f->body_len + len > f->edge->conf->max_object_size) {
		/* Will not be stored; its Vary and tags are still lent. */
		f->head = f->obj;
		f->obj = NULL;
		f->not_stored = "too-large";
		fill_unpublish(f, 1);
		pt = hand_over_midway(f, of);
		if (pt != NULL) {
			pt->not_stored = f->not_stored;
			fill_end(f);
			return f->hooks->client_ops->on_body(of, pt, data, len);
		}
	}
	completes = f->content_length >= 0 &&
	    f->body_len + len == (uint64_t)f->content_length;
	while (left > 0) {
		b = f->tail;
		used = atomic_load_explicit(&b->len, memory_order_relaxed);
		if (used == b->cap) {
			b = block_new(f);
			if (b == NULL) {
				/* No memory: fail the fill, not the node. */
				f->discard = 1;
				return 0;
			}
			atomic_store_explicit(
			    &f->tail->next, b, memory_order_release);
			f->tail = b;
			used = 0;
		}
		n = b->cap - used;
		if (n > left)
			n = left;
		memcpy(b->data + used, data, n);
		data += n;
		left -= n;
		if (completes && left == 0) {
			last = b; /* published by fill_complete() */
			last_len = used + n;
		} else {
			atomic_store_explicit(
			    &b->len, used + n, memory_order_release);
		}
	}
	f->body_len += len;
	if (completes) {
		fill_complete(f, last, last_len);
		return len;
	}
	if (f->stream != NULL)
		stream_push(f, NULL);
	pthread_mutex_lock(&f->mu);
	if (f->waiters == NULL && f->obj == NULL)
		f->discard = 1; /* nobody to stream to, nothing to store */
	wake_all_locked(f);
	pthread_mutex_unlock(&f->mu);
	return len;
}

/*
 * 1xx go to the request that started the fill, while it has no final
 * head: it is on this worker and its client asked for this fetch.  Later
 * waiters joined a fetch already under way and get none.
 */
static void
fill_on_interim(struct origin_fetch *of, void *arg, int status,
    const char *fields, size_t len)
{
	struct edge_fill *f = arg;
	struct fill_waiter *fw, *leader = NULL;

	MAGIC_CHECK(f, EDGE_FILL_MAGIC);
	pthread_mutex_lock(&f->mu);
	for (fw = f->waiters; fw != NULL; fw = fw->next)
		if (fw->leader && !fw->responded)
			leader = fw;
	pthread_mutex_unlock(&f->mu);
	if (leader != NULL)
		f->hooks->client_ops->on_interim(
		    of, leader->pt, status, fields, len);
}

static void
fill_on_done(struct origin_fetch *of, void *arg, enum origin_err err)
{
	struct edge_fill *f = arg;
	enum fill_state st;

	(void)of;
	MAGIC_CHECK(f, EDGE_FILL_MAGIC);
	CDN_DASSERT(edge_worker_current() == f->owner);
	f->fetch = NULL;
	edge_count_origin_error(f->owner, err);
	pthread_mutex_lock(&f->mu);
	st = f->state;
	pthread_mutex_unlock(&f->mu);
	if (st == FILL_HEAD_WAIT) {
		fill_fail(f, err != ORIGIN_OK ? err : ORIGIN_EPROTO, 0);
	} else if (st == FILL_STREAM && !f->storing) {
		/* Only a complete body is stored or ends cleanly; a body of
		 * known length completed in fill_on_body(), unless it was
		 * empty and no body callback came. */
		if (err == ORIGIN_OK && !f->discard &&
		    (f->content_length < 0 ||
		        (uint64_t)f->content_length == f->body_len))
			fill_complete(f, NULL, 0);
		else
			fill_fail(f, err != ORIGIN_OK ? err : ORIGIN_ERESET, 0);
	}
	if (f->storing)
		return; /* on_stream_ev ends it */
	fill_end(f);
}

static const struct origin_fetch_ops fill_origin_ops = {
    .on_head = fill_on_head,
    .on_interim = fill_on_interim,
    .on_body = fill_on_body,
    .on_upload = NULL,
    .on_done = fill_on_done,
};

/* ---- starting and joining ---- */

static int
coalescable(const struct proxy_txn *pt)
{
	const struct http_request *req = edge_stream_request(&pt->cs);

	return pt->cache_on && pt->w->edge->store != NULL &&
	    !pt->x.req_cc.no_store && !pt->x.req_cc.only_if_cached &&
	    !pt->decoding && !pt->range_upstream &&
	    !edge_stream_has_body(&pt->cs) &&
	    (req->method == HTTP_M_GET || pt->head_as_get);
}

/*
 * A fill for <pt>'s request, in one allocation with the leader's key URL
 * and request fields (copied: the leader may be gone by head time, when
 * they give the Vary key).  NULL when memory runs out: the client sizes
 * them, so the request then fetches alone rather than aborting.
 */
static struct edge_fill *
fill_new(struct proxy_txn *pt, const struct edge_fill_hooks *hooks)
{
	const struct http_request *req = edge_stream_request(&pt->cs);
	struct edge_fill *f;
	struct cache_field rf[VARY_FIELDS];
	size_t fields_len = 0, head;
	char *p;
	int nrf;

	nrf = edge_cache_request_fields(req, rf, VARY_FIELDS);
	for (int i = 0; i < nrf; i++)
		fields_len += rf[i].name_len + rf[i].value_len;
	if (fields_len > FILL_FIELDS_MAX)
		nrf = -1;
	if (nrf < 0)
		fields_len = 0;
	head = sizeof(*f) + (size_t)(nrf > 0 ? nrf : 0) * sizeof(rf[0]);
	f = malloc(head + pt->key_url_len + 1 + fields_len);
	if (f == NULL)
		return NULL;
	memset(f, 0, sizeof(*f));
	f->magic = EDGE_FILL_MAGIC;
	atomic_init(&f->refcnt, 1); /* the owner's, until the fetch ends */
	pthread_mutex_init(&f->mu, NULL);
	f->edge = pt->w->edge;
	f->site = pt->site;
	f->gen = pt->gen;
	edge_gen_fill_hold(f->gen);
	f->hooks = hooks;
	f->owner = pt->w;
	memcpy(f->key, pt->key, CACHE_HASH_LEN);
	p = (char *)f + head;
	f->key_url = p;
	f->key_url_len = pt->key_url_len;
	memcpy(p, pt->key_url, pt->key_url_len);
	p[pt->key_url_len] = '\0';
	p += pt->key_url_len + 1;
	f->x = pt->x;
	f->purge_gen = pt->purge_gen;
	f->content_length = -1;
	if (pt->stale != NULL)
		f->stale = cache_obj_ref(pt->stale);
	f->nrf = nrf;
	for (int i = 0; i < nrf; i++) {
		f->rf[i].name = p;
		f->rf[i].name_len = rf[i].name_len;
		memcpy(p, rf[i].name, rf[i].name_len);
		p += rf[i].name_len;
		f->rf[i].value = p;
		f->rf[i].value_len = rf[i].value_len;
		memcpy(p, rf[i].value, rf[i].value_len);
		p += rf[i].value_len;
	}
	return f;
}

int
edge_fill_begin(struct proxy_txn *pt, const struct origin_request *oreq,
    const struct edge_fill_hooks *hooks)
{
	struct edge_worker *w = pt->w;
	struct edge *e = w->edge;
	struct edge_inflight_slot sl;
	struct edge_fill *f;
	int background = pt->swr;

	if (!coalescable(pt))
		return 0;
	edge_inflight_lock(e->inflight, pt->key, &sl);
	if (edge_inflight_is_hfm(&sl) && !background) {
		edge_inflight_unlock(&sl);
		EDGE_COUNTER_INC(w, cache_hit_for_miss_used);
		return 0; /* hit-for-miss: fetch alone */
	}
	f = edge_inflight_fill(&sl);
	if (f != NULL && f->purge_gen < pt->purge_gen) {
		/* A purge came after that fetch began: what it brings may be
		 * the purged content.  It goes on for its own waiters, and
		 * this request starts a fresh one in its place. */
		f->in_table = 0;
		f = NULL;
	}
	if (f != NULL) {
		if (!background) {
			pthread_mutex_lock(&f->mu);
			waiter_attach_locked(f, pt, 0);
			pthread_mutex_unlock(&f->mu);
			EDGE_COUNTER_INC(w, cache_collapsed);
		}
		edge_inflight_unlock(&sl);
		if (background)
			edge_cache_serve_swr(pt);
		return 1;
	}
	f = fill_new(pt, hooks);
	if (f == NULL) {
		edge_inflight_unlock(&sl);
		return 0; /* out of memory: this request fetches alone */
	}
	edge_inflight_set_fill(&sl, f); /* a background refresh: the marker
	                                   goes */
	f->in_table = 1;
	if (!background) {
		pthread_mutex_lock(&f->mu);
		waiter_attach_locked(f, pt, 1);
		pthread_mutex_unlock(&f->mu);
	}
	edge_inflight_unlock(&sl);

	f->own_next = w->fills;
	if (w->fills != NULL)
		w->fills->own_prev = f;
	w->fills = f;
	EDGE_COUNTER_INC(w, origin_fetches);
	if (!background)
		pt->used_origin = 1;
	f->fetch = origin_fetch_start(
	    w->origin, oreq, &pt->site->to, &fill_origin_ops, f);
	if (f->fetch == NULL) {
		edge_count_origin_error(w, ORIGIN_EINTERNAL);
		fill_fail(f, ORIGIN_EINTERNAL, 0);
		fill_end(f);
	}
	if (background)
		edge_cache_serve_swr(pt);
	return 1;
}

void
edge_fill_worker_stop(struct edge_worker *w)
{
	struct edge_fill *f;

	while ((f = w->fills) != NULL) {
		origin_fetch_cancel(&f->fetch);
		if (f->storing) {
			/* Complete: its waiters may finish; the writer
			 * commits the record without us. */
			fill_stored(f);
		} else {
			fill_fail(f, ORIGIN_EINTERNAL, 0);
		}
		fill_end(f);
	}
}
