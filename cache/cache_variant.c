/*
 * Content-coding variants of stored responses (cache/cache.h "variants"):
 * the head rewriting shared by every coding, the recoding of one object,
 * and the compression pool that makes gzip and brotli variants off the
 * event loops.
 *
 * Threads and locks.  v->mtx covers the job queue (head, tail, qbytes)
 * and v->stop; v->cond wakes the pool's threads.  Jobs hold one reference
 * to an immutable object, so a pool thread reads its chunks without any
 * lock; results enter the store through cache_store_put(), which any
 * thread may call.  Counters are relaxed atomics.
 */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cache/cache.h"
#include "cache/cache_int.h"
#include "common/cdn_log.h"
#include "common/cdn_strbuf.h"

#define CACHE_VARIANTS_MAGIC 0x2d7b91e4u
#define POOL_MAX_THREADS     64
#define POOL_MAX_JOBS        4096
#define DECODE_MEMO_SLOTS    1024 /* a power of two */

static int
name_is(const char *p, size_t len, const char *name)
{
	return strlen(name) == len && strncasecmp(p, name, len) == 0;
}

/* Does the comma-separated list <v> hold token <tok> (or "*")? */
static int
list_has(const char *v, size_t len, const char *tok)
{
	const char *p = v, *end = v + len, *q;
	size_t n;

	while (p < end) {
		while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
			p++;
		q = p;
		while (q < end && *q != ',')
			q++;
		n = (size_t)(q - p);
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if ((n == 1 && *p == '*') || name_is(p, n, tok))
			return 1;
		p = q;
	}
	return 0;
}

void
cache_vary_merge_ae(const char *fields, size_t len, struct cdn_strbuf *out)
{
	const char *p = fields, *end = fields + len;
	struct cdn_field fl;
	int has = 0, seen = 0;

	while (cdn_fields_next(&p, end, &fl))
		if (name_is(fl.name, fl.name_len, "vary") &&
		    list_has(fl.value, fl.value_len, "accept-encoding"))
			has = 1;
	p = fields;
	while (cdn_fields_next(&p, end, &fl)) {
		if (!has && !seen && name_is(fl.name, fl.name_len, "vary")) {
			seen = 1;
			cdn_sb_add(out, fl.name, fl.name_len);
			cdn_sb_str(out, ": ");
			if (fl.value_len > 0) {
				cdn_sb_add(out, fl.value, fl.value_len);
				cdn_sb_str(out, ", ");
			}
			cdn_sb_str(out, "Accept-Encoding\r\n");
			continue;
		}
		cdn_sb_add(out, fl.line, fl.line_len);
	}
	if (!has && !seen)
		cdn_sb_str(out, "Vary: Accept-Encoding\r\n");
}

/* The ETag of another coding: its opaque part suffixed with the name. */
static void
etag_for(const char *v, size_t len, enum cache_enc enc, struct cdn_strbuf *out)
{
	size_t pre = (len > 2 && v[0] == 'W' && v[1] == '/') ? 2 : 0;

	cdn_sb_str(out, "ETag: ");
	if (len < pre + 2 || v[pre] != '"' || v[len - 1] != '"') {
		/* Not an entity-tag: make one that cannot match it. */
		cdn_sb_add(out, "\"", 1);
		cdn_sb_add(out, v, len);
		cdn_sb_printf(out, "-%s\"\r\n", cache_enc_name(enc));
		return;
	}
	cdn_sb_add(out, v, len - 1);
	cdn_sb_printf(out, "-%s\"\r\n", cache_enc_name(enc));
}

void
cache_variant_fields(
    const char *fields, size_t len, enum cache_enc enc, struct cdn_strbuf *out)
{
	struct cdn_strbuf tmp = {.max = 256 * 1024};
	const char *p = fields, *end = fields + len;
	struct cdn_field fl;

	CDN_ASSERT((unsigned)enc < CACHE_ENC_COUNT);
	while (cdn_fields_next(&p, end, &fl)) {
		if (name_is(fl.name, fl.name_len, "content-encoding") ||
		    name_is(fl.name, fl.name_len, "content-length") ||
		    name_is(fl.name, fl.name_len, "content-md5") ||
		    name_is(fl.name, fl.name_len, "repr-digest"))
			continue;
		if (name_is(fl.name, fl.name_len, "etag")) {
			etag_for(fl.value, fl.value_len, enc, &tmp);
			continue;
		}
		cdn_sb_add(&tmp, fl.line, fl.line_len);
	}
	if (enc != CACHE_ENC_IDENTITY)
		cdn_sb_printf(
		    &tmp, "Content-Encoding: %s\r\n", cache_enc_name(enc));
	if (tmp.failed) {
		out->failed = 1;
	} else {
		cache_vary_merge_ae(tmp.p, tmp.len, out);
	}
	cdn_sb_free(&tmp);
}

static int
sink_obj(void *arg, const void *p, size_t len)
{
	return cache_obj_append(arg, p, len);
}

int
cache_variant_make(const struct cache_obj *src, enum cache_enc enc, int level,
    const struct cache_decode_limits *lim, struct cache_obj **outp)
{
	const void *segs[1024];
	size_t lens[1024];
	const void **sp = segs;
	size_t *lp = lens;
	struct cdn_strbuf f = {.max = 256 * 1024};
	struct cache_decision d;
	struct cache_obj *o;
	enum cache_enc from = cache_variant_enc(src->variant);
	uint64_t off = 0;
	int rc;

	MAGIC_CHECK(src, CACHE_OBJ_MAGIC);
	CDN_ASSERT(outp != NULL && *outp == NULL);
	CDN_ASSERT((from == CACHE_ENC_IDENTITY) != (enc == CACHE_ENC_IDENTITY));
	CDN_ASSERT(src->chunks != NULL || src->nchunks == 0);
	cache_variant_fields(src->fields, src->fields_len, enc, &f);
	if (f.failed) {
		cdn_sb_free(&f);
		return CDN_ENOMEM;
	}
	d = src->d;
	d.derived = 1;
	o = cache_obj_new(src->key, cache_variant_id(src->variant, enc),
	    src->status, &d, src->response_time, src->url, src->url_len, f.p,
	    f.len, src->vary, src->vary_len);
	cdn_sb_free(&f);
	if (o == NULL)
		return CDN_ENOMEM;
	o->purge_gen = src->purge_gen;
	if (src->nchunks > CDN_ARRAY_LEN(segs)) {
		sp = malloc(src->nchunks * sizeof(*sp));
		lp = malloc(src->nchunks * sizeof(*lp));
		if (sp == NULL || lp == NULL) {
			rc = CDN_ENOMEM;
			goto out;
		}
	}
	for (uint32_t i = 0; i < src->nchunks; i++) {
		uint64_t n = src->body_len - off;

		sp[i] = src->chunks[i];
		lp[i] = n > CACHE_CHUNK_SIZE ? CACHE_CHUNK_SIZE : (size_t)n;
		off += lp[i];
	}
	if (enc == CACHE_ENC_IDENTITY)
		rc = cache_decode(from, sp, lp, src->nchunks, lim, sink_obj, o);
	else
		rc = cache_encode(enc, level, sp, lp, src->nchunks,
		    src->body_len > 0 ? src->body_len - 1 : 0, sink_obj, o);
out:
	if (sp != segs) {
		free(sp);
		free(lp);
	}
	if (rc == CDN_OK)
		*outp = o;
	else
		cache_obj_unref(&o);
	return rc;
}

/* ---------------- the pool ---------------- */

struct vjob {
	struct vjob *next;
	struct cache_obj *obj;
	uint64_t removals; /* cache_store_removals() when queued */
	int decode;        /* decode obj to identity, not compress it */
};

struct cache_variants {
	uint32_t magic;
	struct cache_store *store;
	struct cache_variant_conf conf;
	pthread_mutex_t mtx;
	pthread_cond_t cond;
	struct vjob *head, **tail;
	unsigned njobs;
	uint64_t qbytes;
	int stop;
	int paused; /* jobs wait (tests hold the pool with it) */
	struct cache_decode_limits lim; /* of decode jobs */
	/* Decodes queued or failed, by decode_tag(): each coded response is
	 * decoded once, and a bomb is not tried again. */
	uint64_t memo_tag[DECODE_MEMO_SLOTS];
	uint8_t memo_state[DECODE_MEMO_SLOTS];
	unsigned nthreads;
	pthread_t threads[POOL_MAX_THREADS];
	_Atomic uint64_t st_queued, st_dropped, st_made, st_not_smaller,
	    st_failed, st_superseded, st_in, st_out, st_busy_ns, st_decoded,
	    st_bombs;
};

/*
 * Is <src> still the stored response for its key?  A removal (an unsafe
 * method, a purge) or a newer response may have replaced it while it was
 * being compressed, and a variant of the old one must not come back after
 * that.  Where the store cannot tell (the source is being committed), any
 * removal since the job was queued counts as one of this key: at worst a
 * variant is not made.
 */
static int
still_current(struct cache_variants *v, const struct vjob *j)
{
	int rc = cache_store_is_current(v->store, j->obj);

	if (rc == CDN_AGAIN)
		return cache_store_removals(v->store) == j->removals;
	return rc;
}

static void
make_one(struct cache_variants *v, const struct vjob *j, enum cache_enc enc,
    unsigned level)
{
	struct cache_obj *src = j->obj;
	struct cache_obj *o = NULL;
	uint64_t t0 = cdn_now_ns();
	int rc;

	if (!still_current(v, j)) {
		atomic_fetch_add_explicit(
		    &v->st_superseded, 1, memory_order_relaxed);
		return;
	}
	rc = cache_variant_make(src, enc, (int)level, NULL, &o);
	atomic_fetch_add_explicit(
	    &v->st_busy_ns, cdn_now_ns() - t0, memory_order_relaxed);
	/* The window between this check and the put is a few
	 * instructions, not a compression. */
	if (rc == CDN_OK && !still_current(v, j)) {
		atomic_fetch_add_explicit(
		    &v->st_superseded, 1, memory_order_relaxed);
		cache_obj_unref(&o);
		return;
	}
	if (rc == CDN_OK) {
		cache_obj_seal(o); /* a large coding is sent as a file too */
		cache_store_put(v->store, o);
		atomic_fetch_add_explicit(&v->st_made, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(
		    &v->st_in, src->body_len, memory_order_relaxed);
		atomic_fetch_add_explicit(
		    &v->st_out, o->body_len, memory_order_relaxed);
		cache_obj_unref(&o);
	} else if (rc == CDN_ELIMIT) {
		atomic_fetch_add_explicit(
		    &v->st_not_smaller, 1, memory_order_relaxed);
	} else {
		atomic_fetch_add_explicit(
		    &v->st_failed, 1, memory_order_relaxed);
		CDN_LOG(CDN_LOG_WARN, "cache", "%s variant of %.*s: %s",
		    cache_enc_name(enc),
		    (int)(src->url_len > 200 ? 200 : src->url_len), src->url,
		    cdn_strerror(rc));
	}
}

/* Which coded response a memo slot is about: key, variant and length
 * (a refetch of the same bomb has a new stored_at, not a new length). */
static uint64_t
decode_tag(const struct cache_obj *o)
{
	uint64_t t;

	memcpy(&t, o->key, sizeof(t));
	t ^= o->variant * UINT64_C(0x9e3779b97f4a7c15);
	t ^= (o->body_len + 1) * UINT64_C(0xc2b2ae3d27d4eb4f);
	return t | 1; /* 0: empty slot */
}

/* v->mtx held. */
static int
memo_get(struct cache_variants *v, uint64_t tag)
{
	unsigned i = (unsigned)(tag % DECODE_MEMO_SLOTS);

	return v->memo_tag[i] == tag ? v->memo_state[i] : CACHE_DECODE_NONE;
}

static void
memo_set(struct cache_variants *v, uint64_t tag, int state)
{
	unsigned i = (unsigned)(tag % DECODE_MEMO_SLOTS);

	pthread_mutex_lock(&v->mtx);
	if (state == CACHE_DECODE_NONE) {
		if (v->memo_tag[i] == tag)
			v->memo_tag[i] = 0;
	} else {
		v->memo_tag[i] = tag;
		v->memo_state[i] = (uint8_t)state;
	}
	pthread_mutex_unlock(&v->mtx);
}

static void
decode_one(struct cache_variants *v, const struct vjob *j)
{
	struct cache_obj *src = j->obj, *o = NULL;
	uint64_t t0 = cdn_now_ns();
	int rc;

	rc = cache_variant_make(src, CACHE_ENC_IDENTITY, 0, &v->lim, &o);
	atomic_fetch_add_explicit(
	    &v->st_busy_ns, cdn_now_ns() - t0, memory_order_relaxed);
	if (rc == CDN_OK) {
		if (still_current(v, j)) {
			cache_obj_seal(o);
			cache_store_put(v->store, o);
			atomic_fetch_add_explicit(
			    &v->st_decoded, 1, memory_order_relaxed);
		} else {
			atomic_fetch_add_explicit(
			    &v->st_superseded, 1, memory_order_relaxed);
		}
		cache_obj_unref(&o);
		memo_set(v, decode_tag(src), CACHE_DECODE_NONE);
		return;
	}
	if (rc == CDN_ELIMIT) {
		atomic_fetch_add_explicit(
		    &v->st_bombs, 1, memory_order_relaxed);
		CDN_LOG(CDN_LOG_WARN, "cache",
		    "compression bomb: %s body of %.*s (%llu bytes) inflates "
		    "past decompress_max_size or decompress_max_ratio",
		    cache_enc_name(cache_variant_enc(src->variant)),
		    (int)(src->url_len > 200 ? 200 : src->url_len), src->url,
		    (unsigned long long)src->body_len);
	} else {
		atomic_fetch_add_explicit(
		    &v->st_failed, 1, memory_order_relaxed);
		CDN_LOG(CDN_LOG_WARN, "cache", "decoding %.*s: %s",
		    (int)(src->url_len > 200 ? 200 : src->url_len), src->url,
		    cdn_strerror(rc));
	}
	memo_set(v, decode_tag(src), CACHE_DECODE_FAILED);
}

static void *
pool_main(void *arg)
{
	struct cache_variants *v = arg;
	struct vjob *j;

	pthread_mutex_lock(&v->mtx);
	for (;;) {
		while ((v->head == NULL || v->paused) && !v->stop)
			pthread_cond_wait(&v->cond, &v->mtx);
		if (v->stop)
			break;
		j = v->head;
		v->head = j->next;
		if (v->head == NULL)
			v->tail = &v->head;
		v->njobs--;
		v->qbytes -= j->obj->body_len;
		pthread_mutex_unlock(&v->mtx);
		if (j->decode) {
			decode_one(v, j);
		} else {
			/* Brotli first: the coding most clients prefer. */
			if (v->conf.brotli_level > 0)
				make_one(
				    v, j, CACHE_ENC_BR, v->conf.brotli_level);
			if (v->conf.gzip_level > 0)
				make_one(
				    v, j, CACHE_ENC_GZIP, v->conf.gzip_level);
		}
		cache_obj_unref(&j->obj);
		free(j);
		pthread_mutex_lock(&v->mtx);
	}
	pthread_mutex_unlock(&v->mtx);
	return NULL;
}

struct cache_variants *
cache_variants_new(struct cache_store *s, const struct cache_variant_conf *c)
{
	struct cache_variants *v;
	int rc;

	CDN_ASSERT(s != NULL && c != NULL);
	CDN_ASSERT(c->gzip_level <= 9 && c->brotli_level <= 11);
	v = cdn_xcalloc(1, sizeof(*v));
	v->magic = CACHE_VARIANTS_MAGIC;
	v->store = s;
	v->conf = *c;
	v->lim = c->decode;
	v->tail = &v->head;
	CDN_ASSERT(pthread_mutex_init(&v->mtx, NULL) == 0);
	CDN_ASSERT(pthread_cond_init(&v->cond, NULL) == 0);
	v->nthreads = c->threads < 1        ? 1
	    : c->threads > POOL_MAX_THREADS ? POOL_MAX_THREADS
	                                    : c->threads;
	for (unsigned i = 0; i < v->nthreads; i++) {
		rc = pthread_create(&v->threads[i], NULL, pool_main, v);
		if (rc != 0) {
			/* Fewer threads still work; none means no variants. */
			CDN_LOG(CDN_LOG_ERR, "cache", "pthread_create: %s",
			    strerror(rc));
			v->nthreads = i;
			break;
		}
	}
	return v;
}

void
cache_variants_free(struct cache_variants **vp)
{
	struct cache_variants *v;
	struct vjob *j;

	CDN_ASSERT(vp != NULL);
	v = *vp;
	*vp = NULL;
	if (v == NULL)
		return;
	MAGIC_CHECK(v, CACHE_VARIANTS_MAGIC);
	pthread_mutex_lock(&v->mtx);
	v->stop = 1;
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->mtx);
	for (unsigned i = 0; i < v->nthreads; i++)
		CDN_ASSERT(pthread_join(v->threads[i], NULL) == 0);
	while ((j = v->head) != NULL) {
		v->head = j->next;
		cache_obj_unref(&j->obj);
		free(j);
	}
	pthread_cond_destroy(&v->cond);
	pthread_mutex_destroy(&v->mtx);
	MAGIC_WIPE(v);
	free(v);
}

/* Queue a job for <o>; 0 if the queue is full (counted). */
static int
enqueue_job(struct cache_variants *v, struct cache_obj *o, int decode)
{
	struct vjob *j;
	int ok, dup = 0;

	j = cdn_xmalloc(sizeof(*j));
	j->next = NULL;
	j->obj = NULL;
	j->decode = decode;
	j->removals = cache_store_removals(v->store);
	pthread_mutex_lock(&v->mtx);
	ok = v->nthreads > 0 && !v->stop && v->njobs < POOL_MAX_JOBS &&
	    v->qbytes + o->body_len <= v->conf.queue_bytes;
	if (ok && decode) {
		dup = memo_get(v, decode_tag(o)) != CACHE_DECODE_NONE;
		if (!dup) {
			unsigned i =
			    (unsigned)(decode_tag(o) % DECODE_MEMO_SLOTS);

			v->memo_tag[i] = decode_tag(o);
			v->memo_state[i] = CACHE_DECODE_PENDING;
		}
	}
	if (ok && !dup) {
		j->obj = cache_obj_ref(o);
		*v->tail = j;
		v->tail = &j->next;
		v->njobs++;
		v->qbytes += o->body_len;
		pthread_cond_signal(&v->cond);
	}
	pthread_mutex_unlock(&v->mtx);
	if (dup) {
		free(j); /* queued or failed before: once is enough */
		return 0;
	}
	if (!ok) {
		free(j);
		atomic_fetch_add_explicit(
		    &v->st_dropped, 1, memory_order_relaxed);
		return 0;
	}
	atomic_fetch_add_explicit(&v->st_queued, 1, memory_order_relaxed);
	return 1;
}

int
cache_variants_submit(struct cache_variants *v, struct cache_obj *o)
{
	MAGIC_CHECK(v, CACHE_VARIANTS_MAGIC);
	MAGIC_CHECK(o, CACHE_OBJ_MAGIC);
	CDN_ASSERT(cache_variant_enc(o->variant) == CACHE_ENC_IDENTITY);
	if (v->conf.gzip_level == 0 && v->conf.brotli_level == 0)
		return 1;
	return enqueue_job(v, o, 0);
}

int
cache_variants_decode_state(struct cache_variants *v, const struct cache_obj *o)
{
	int st;

	MAGIC_CHECK(v, CACHE_VARIANTS_MAGIC);
	MAGIC_CHECK(o, CACHE_OBJ_MAGIC);
	pthread_mutex_lock(&v->mtx);
	st = memo_get(v, decode_tag(o));
	pthread_mutex_unlock(&v->mtx);
	return st;
}

int
cache_variants_submit_decode(struct cache_variants *v, struct cache_obj *o)
{
	MAGIC_CHECK(v, CACHE_VARIANTS_MAGIC);
	MAGIC_CHECK(o, CACHE_OBJ_MAGIC);
	CDN_ASSERT(cache_variant_enc(o->variant) != CACHE_ENC_IDENTITY);
	return enqueue_job(v, o, 1);
}

void
cache_variants_decode_failed(
    struct cache_variants *v, const struct cache_obj *o)
{
	MAGIC_CHECK(v, CACHE_VARIANTS_MAGIC);
	MAGIC_CHECK(o, CACHE_OBJ_MAGIC);
	memo_set(v, decode_tag(o), CACHE_DECODE_FAILED);
}

void
cache_variants_stats(struct cache_variants *v, struct cache_variant_stats *st)
{
	MAGIC_CHECK(v, CACHE_VARIANTS_MAGIC);
	CDN_ASSERT(st != NULL);
	st->queued = atomic_load_explicit(&v->st_queued, memory_order_relaxed);
	st->dropped =
	    atomic_load_explicit(&v->st_dropped, memory_order_relaxed);
	st->made = atomic_load_explicit(&v->st_made, memory_order_relaxed);
	st->not_smaller =
	    atomic_load_explicit(&v->st_not_smaller, memory_order_relaxed);
	st->failed = atomic_load_explicit(&v->st_failed, memory_order_relaxed);
	st->superseded =
	    atomic_load_explicit(&v->st_superseded, memory_order_relaxed);
	st->decoded =
	    atomic_load_explicit(&v->st_decoded, memory_order_relaxed);
	st->bombs = atomic_load_explicit(&v->st_bombs, memory_order_relaxed);
	st->in_bytes = atomic_load_explicit(&v->st_in, memory_order_relaxed);
	st->out_bytes = atomic_load_explicit(&v->st_out, memory_order_relaxed);
	st->busy_ns =
	    atomic_load_explicit(&v->st_busy_ns, memory_order_relaxed);
}
