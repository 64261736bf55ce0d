/*
 * Content codings of stored responses (edge/edge_variant.h "codings"):
 * which stored coding a request gets, which responses get gzip and brotli
 * variants, and the decoded identity copy of a response the origin sent
 * coded.
 *
 * The context is built once at start-up and read by every worker; its
 * only mutable parts are relaxed atomic counters and the "too large"
 * memo (relaxed atomic slots: a lost update only costs one more whole
 * fetch).
 */
#include "config.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "edge/edge_int.h"
#include "edge/edge_range.h"
#include "edge/edge_variant.h"
#include "http/http_parse.h"

#define EDGE_VARIANT_MAGIC 0x61f0b2d9u
#define QUEUE_BYTES        (UINT64_C(256) << 20)
#define PASS_SLOTS         4096 /* a power of two */
/* Most output of a decoding on an event loop: ~1-5 ms of inflate. */
#define INLINE_DECODE_MAX (UINT64_C(1) << 20)
/* Accept-Encoding lines read for a coding we do not know; more: not
 * taken (the origin answers such a client). */
#define AE_LINES_MAX 16

/* Used when compress_types is not set. */
static const char *const default_types[] = {"text/*", "application/javascript",
    "application/x-javascript", "application/ecmascript", "application/json",
    "application/*+json", "application/xml", "application/*+xml",
    "image/svg+xml", "application/wasm", "application/manifest+json",
    "application/vnd.ms-fontobject", "font/ttf", "font/otf", "image/x-icon",
    "image/bmp"};

/* A compress_types pattern, split once: every miss's type is matched. */
struct type_pat {
	const char *pre; /* the whole name, or what comes before the '*' */
	size_t pre_len;
	const char *suf; /* after the '*'; NULL: no star */
	size_t suf_len;
};

struct edge_variant_ctx {
	uint32_t magic;
	struct cache_variants *pool; /* NULL without a store */
	struct type_pat *types;      /* from conf or default_types */
	unsigned ntypes;
	uint64_t min_size;
	int compress_on; /* a level is set */
	struct cache_decode_limits lim;
	_Atomic uint64_t decoded, bombs, not_acceptable, partial_reads;
	/* First 8 bytes of the hashes of keys found larger than
	 * max_object_size: their ranges go to the origin. */
	_Atomic uint64_t pass[PASS_SLOTS];
};

static int
name_is(const char *p, size_t len, const char *name)
{
	return strlen(name) == len && strncasecmp(p, name, len) == 0;
}

/* "type/subtype" against an exact name, or a pattern with one star in
 * the subtype: "text/" then anything, or "application/" ... "+json".
 * The suffix first: the prefixes of the default patterns are shared. */
static int
type_matches(const char *t, size_t len, const struct type_pat *pat)
{
	if (pat->suf == NULL)
		return len == pat->pre_len && http_mem_eq_ci(t, pat->pre, len);
	return len >= pat->pre_len + pat->suf_len &&
	    http_mem_eq_ci(t + len - pat->suf_len, pat->suf, pat->suf_len) &&
	    http_mem_eq_ci(t, pat->pre, pat->pre_len);
}

static void
type_pat_init(struct type_pat *tp, const char *pat)
{
	const char *star = strchr(pat, '*');

	tp->pre = pat;
	tp->pre_len = star != NULL ? (size_t)(star - pat) : strlen(pat);
	tp->suf = star != NULL ? star + 1 : NULL;
	tp->suf_len = star != NULL ? strlen(star + 1) : 0;
}

/* Does every pattern have the form type/subtype with at most one '*'? */
static const char *
type_pattern_error(const char *pat)
{
	const char *slash = strchr(pat, '/'), *star = strchr(pat, '*');

	if (slash == NULL || slash == pat || slash[1] == '\0')
		return "not a media type (type/subtype)";
	if (star != NULL && (star < slash || strchr(star + 1, '*') != NULL))
		return "'*' may appear once, in the subtype";
	return NULL;
}

int
edge_variant_init(struct edge *e)
{
	const struct conf *c = e->conf;
	struct edge_variant_ctx *v;
	struct cache_variant_conf vc;
	const char *why;

	for (unsigned i = 0; i < c->compress_types.n; i++) {
		why = type_pattern_error(c->compress_types.v[i]);
		if (why != NULL) {
			CDN_LOG(CDN_LOG_ERR, "edge", "compress_types %s: %s",
			    c->compress_types.v[i], why);
			return CDN_EINVAL;
		}
	}
	v = cdn_xcalloc(1, sizeof(*v));
	v->magic = EDGE_VARIANT_MAGIC;
	v->ntypes = c->compress_types.n > 0 ? c->compress_types.n
	                                    : CDN_ARRAY_LEN(default_types);
	v->types = cdn_xcalloc(v->ntypes, sizeof(*v->types));
	for (unsigned i = 0; i < v->ntypes; i++)
		type_pat_init(&v->types[i],
		    c->compress_types.n > 0 ? c->compress_types.v[i]
		                            : default_types[i]);
	v->min_size = c->compress_min_size;
	v->compress_on = c->gzip_level > 0 || c->brotli_level > 0;
	v->lim.max_size = c->decompress_max_size;
	v->lim.max_ratio = c->decompress_max_ratio;
	if (e->store != NULL) {
		memset(&vc, 0, sizeof(vc));
		vc.gzip_level = c->gzip_level;
		vc.brotli_level = c->brotli_level;
		vc.threads = c->compress_threads;
		vc.queue_bytes = QUEUE_BYTES;
		vc.decode = v->lim;
		v->pool = cache_variants_new(e->store, &vc);
	}
	e->variant = v;
	return CDN_OK;
}

void
edge_variant_fini(struct edge *e)
{
	struct edge_variant_ctx *v = e->variant;

	e->variant = NULL;
	if (v == NULL)
		return;
	MAGIC_CHECK(v, EDGE_VARIANT_MAGIC);
	if (v->pool != NULL)
		cache_variants_free(&v->pool);
	free(v->types);
	MAGIC_WIPE(v);
	free(v);
}

/* compress_on, the size and the type; <ct> may be NULL. */
static int
type_compressible(const struct edge_variant_ctx *v, const char *ct,
    size_t ctlen, int64_t content_length)
{
	if (!v->compress_on || v->pool == NULL ||
	    (content_length >= 0 && (uint64_t)content_length < v->min_size) ||
	    ct == NULL)
		return 0;
	for (size_t j = 0; j < ctlen; j++)
		if (ct[j] == ';' || ct[j] == ' ' || ct[j] == '\t') {
			ctlen = j;
			break;
		}
	for (unsigned i = 0; i < v->ntypes; i++)
		if (type_matches(ct, ctlen, &v->types[i]))
			return 1;
	return 0;
}

int
edge_variant_compressible(const struct edge *e, const char *fields, size_t len,
    int64_t content_length)
{
	const struct edge_variant_ctx *v = e->variant;
	struct cache_cc cc;
	const char *ct = NULL, *p, *end = fields + len;
	struct cdn_field fl;
	size_t ctlen = 0;

	MAGIC_CHECK(v, EDGE_VARIANT_MAGIC);
	if (!v->compress_on || v->pool == NULL)
		return 0;
	/* One walk for the coding and the type: this runs after every
	 * store. */
	for (p = fields; cdn_fields_next(&p, end, &fl);) {
		if (name_is(fl.name, fl.name_len, "content-encoding"))
			return 0;
		if (ct == NULL &&
		    name_is(fl.name, fl.name_len, "content-type")) {
			ct = fl.value;
			ctlen = fl.value_len;
		}
	}
	if (!type_compressible(v, ct, ctlen, content_length))
		return 0;
	/* RFC 9111 §5.2.2.6: no-transform forbids recoding.  Parsed only
	 * for a type that would be recoded. */
	cache_cc_init(&cc);
	for (p = fields; cdn_fields_next(&p, end, &fl);)
		if (name_is(fl.name, fl.name_len, "cache-control"))
			cache_cc_parse(&cc, fl.value, fl.value_len);
	return !cc.no_transform;
}

int
edge_variant_compressible_head(const struct edge *e,
    const struct cache_head_scan *hs, int no_transform, int64_t content_length)
{
	const struct edge_variant_ctx *v = e->variant;

	MAGIC_CHECK(v, EDGE_VARIANT_MAGIC);
	return !hs->has_coding && !no_transform &&
	    type_compressible(v, hs->ctype, hs->ctype_len, content_length);
}

int
edge_variant_recodable(const struct edge *e, const struct cache_obj *o)
{
	return edge_variant_compressible(
	    e, o->fields, o->fields_len, (int64_t)o->body_len);
}

void
edge_variant_stored(struct edge *e, struct cache_obj *o, int recodable)
{
	struct edge_variant_ctx *v = e->variant;

	MAGIC_CHECK(v, EDGE_VARIANT_MAGIC);
	/* The head's verdict may predate the body's size (chunked). */
	if (!recodable || o->body_len < v->min_size || o->status != 200 ||
	    o->d.derived || cache_variant_enc(o->variant) != CACHE_ENC_IDENTITY)
		return;
	(void)cache_variants_submit(v->pool, o);
}

static int
is_fresh(const struct cache_obj *o, int64_t now)
{
	return cache_current_age(o->d.initial_age_s, o->response_time, now) <
	    o->d.freshness_s;
}

/*
 * An identity copy of the coded object <src>.  Small bodies are decoded
 * here (at most INLINE_DECODE_MAX bytes of output, a few milliseconds);
 * larger ones go to the compression pool and this request to the origin,
 * and later requests find the copy stored.  A bomb is remembered, so that
 * it costs its decoding once.  CDN_OK (*objp: the copy), CDN_AGAIN (being
 * decoded: go to the origin), CDN_NOTFOUND (go to the origin) or
 * CDN_ELIMIT (cannot be decoded within the caps: 406).
 */
static int
decode_now(struct edge *e, struct cache_obj *src, struct cache_obj **objp)
{
	struct edge_variant_ctx *v = e->variant;
	struct cache_decode_limits lim = v->lim;
	struct cache_obj *o = NULL;
	int rc;

	rc = cache_variants_decode_state(v->pool, src);
	if (rc == CACHE_DECODE_FAILED)
		return CDN_ELIMIT;
	if (rc == CACHE_DECODE_PENDING)
		return CDN_AGAIN;
	if (lim.max_size > INLINE_DECODE_MAX)
		lim.max_size = INLINE_DECODE_MAX;
	rc = cache_variant_make(src, CACHE_ENC_IDENTITY, 0, &lim, &o);
	if (rc == CDN_OK) {
		atomic_fetch_add_explicit(&v->decoded, 1, memory_order_relaxed);
		cache_obj_seal(o);
		cache_store_put(e->store, o);
		*objp = o;
		return CDN_OK;
	}
	if (rc == CDN_ELIMIT && lim.max_size < v->lim.max_size) {
		(void)cache_variants_submit_decode(v->pool, src);
		return CDN_AGAIN;
	}
	cache_variants_decode_failed(v->pool, src);
	if (rc == CDN_ELIMIT) {
		atomic_fetch_add_explicit(&v->bombs, 1, memory_order_relaxed);
		CDN_LOG(CDN_LOG_WARN, "edge",
		    "compression bomb: %s body of %.*s (%llu bytes) inflates "
		    "past decompress_max_size",
		    cache_enc_name(cache_variant_enc(src->variant)),
		    (int)(src->url_len > 200 ? 200 : src->url_len), src->url,
		    (unsigned long long)src->body_len);
		return CDN_ELIMIT;
	}
	CDN_LOG(CDN_LOG_WARN, "edge", "decoding %.*s: %s",
	    (int)(src->url_len > 200 ? 200 : src->url_len), src->url,
	    cdn_strerror(rc));
	return CDN_NOTFOUND;
}

unsigned
edge_variant_accepted(
    const struct http_request *req, enum cache_enc order[CACHE_ENC_COUNT])
{
	struct cache_accept_enc ae;

	cache_accept_enc_init(&ae);
	for (unsigned i = 0; i < req->n_headers; i++)
		if (http_slice_eq_ci(req->headers[i].name, "accept-encoding"))
			cache_accept_enc_parse(&ae, req->headers[i].value.p,
			    req->headers[i].value.len);
	return cache_accept_enc_order(&ae, order);
}

int
edge_variant_takes(const struct http_request *req, enum cache_enc enc,
    const char *fields, size_t len)
{
	enum cache_enc order[CACHE_ENC_COUNT];
	struct cache_field ae[AE_LINES_MAX];
	const char *p, *end = fields + len;
	struct cdn_field fl;
	unsigned n, nae = 0;

	if (enc != CACHE_ENC_OTHER) {
		n = edge_variant_accepted(req, order);
		for (unsigned i = 0; i < n; i++)
			if (order[i] == enc)
				return 1;
		return 0;
	}
	for (unsigned i = 0; i < req->n_headers; i++) {
		if (!http_slice_eq_ci(req->headers[i].name, "accept-encoding"))
			continue;
		if (nae == AE_LINES_MAX)
			return 0;
		ae[nae].name = req->headers[i].name.p;
		ae[nae].name_len = req->headers[i].name.len;
		ae[nae].value = req->headers[i].value.p;
		ae[nae].value_len = req->headers[i].value.len;
		nae++;
	}
	for (p = fields; cdn_fields_next(&p, end, &fl);)
		if (name_is(fl.name, fl.name_len, "content-encoding") &&
		    !cache_accept_enc_takes(ae, nae, fl.value, fl.value_len))
			return 0;
	return 1;
}

int
edge_variant_get(struct edge *e, const struct http_request *req,
    const uint8_t key[CACHE_HASH_LEN], uint64_t vary_key,
    struct cache_obj **objp, int *from_memory)
{
	struct edge_variant_ctx *v = e->variant;
	enum cache_enc order[CACHE_ENC_COUNT];
	struct cache_obj *o = NULL;
	int acceptable[CACHE_ENC_COUNT] = {0};
	int64_t now = time(NULL);
	uint64_t variant;
	unsigned n;
	int rc, stored_other = 0, none_stored = 0;

	MAGIC_CHECK(v, EDGE_VARIANT_MAGIC);
	n = edge_variant_accepted(req, order);
	/* An object on disk comes as metadata: the body is read as the
	 * answer needs it (edge_variant_load_body). */
	for (unsigned i = 0; i < n; i++) {
		acceptable[order[i]] = 1;
		/* The first miss also tells whether the key has any variant
		 * stored: a miss then costs one lookup, not one per coding. */
		if (i == 0)
			rc = cache_store_get_meta_probe(e->store, key,
			    cache_variant_id(vary_key, order[i]), &o,
			    from_memory, &none_stored);
		else
			rc = cache_store_get_meta(e->store, key,
			    cache_variant_id(vary_key, order[i]), &o,
			    from_memory);
		if (none_stored)
			return CDN_NOTFOUND;
		if (rc != CDN_OK)
			continue;
		if (o->d.derived && !is_fresh(o, now)) {
			/* Its source is revalidated instead; a new copy is
			 * made from the revalidated one. */
			cache_obj_unref(&o);
			continue;
		}
		*objp = o;
		return CDN_OK;
	}
	/* A coding we do not know, stored as it came, for a client that
	 * takes it. */
	variant = cache_variant_id(vary_key, CACHE_ENC_OTHER);
	rc = cache_store_get_meta(e->store, key, variant, &o, from_memory);
	if (rc == CDN_OK) {
		if (edge_variant_takes(
		        req, CACHE_ENC_OTHER, o->fields, o->fields_len)) {
			*objp = o;
			return CDN_OK;
		}
		cache_obj_unref(&o);
	}
	/* Nothing acceptable is stored: a coding the client does not take
	 * may be (the origin sent it coded). */
	for (unsigned enc = 0; enc < CACHE_ENC_COUNT; enc++) {
		if (acceptable[enc])
			continue;
		rc = cache_store_get(e->store, key,
		    cache_variant_id(vary_key, (enum cache_enc)enc), &o,
		    from_memory);
		if (rc != CDN_OK)
			continue;
		if (o->d.derived) {
			cache_obj_unref(&o);
			continue;
		}
		stored_other = 1;
		if (enc != CACHE_ENC_IDENTITY &&
		    acceptable[CACHE_ENC_IDENTITY]) {
			if (o->status != 200 || !is_fresh(o, now)) {
				/* A new response from the origin, rather than
				 * a decoded copy of an old one. */
				cache_obj_unref(&o);
				return CDN_NOTFOUND;
			}
			rc = decode_now(e, o, objp);
			cache_obj_unref(&o);
			if (rc == CDN_OK) {
				*from_memory = 1;
				return CDN_OK;
			}
			if (rc == CDN_ELIMIT)
				break; /* a bomb: 406, not a refetch of it */
			return rc;
		}
		cache_obj_unref(&o);
	}
	if (stored_other) {
		atomic_fetch_add_explicit(
		    &v->not_acceptable, 1, memory_order_relaxed);
		return CDN_ELIMIT;
	}
	return CDN_NOTFOUND;
}

int
edge_variant_load_body(struct edge *e, const struct http_request *req,
    struct cache_obj **op, int need_all)
{
	struct edge_variant_ctx *v = e->variant;
	struct cache_obj *o = *op, *full = NULL;
	struct edge_range_plan plan;
	int rc = CDN_OK;

	MAGIC_CHECK(v, EDGE_VARIANT_MAGIC);
	MAGIC_CHECK(o, CACHE_OBJ_MAGIC);
	if (o->chunks != NULL || o->nchunks == 0)
		return CDN_OK; /* the whole body is there */
	if (!need_all) {
		edge_range_plan_for(&plan, req, o, 0);
		if (o->body_len > cache_store_stream_min(e->store)) {
			/* Too large for the memory tier: read as it is sent
			 * (edge_range_disk), only the chunks the plan needs. */
			if (plan.status != 200)
				atomic_fetch_add_explicit(
				    &v->partial_reads, 1, memory_order_relaxed);
			edge_range_plan_fini(&plan);
			return CDN_OK;
		}
		rc = edge_range_load_chunks(e->store, &plan, o);
		if (plan.status == 200 && plan.nsegs > 0)
			rc =
			    CDN_ELIMIT; /* the whole: the tier path is better */
		edge_range_plan_fini(&plan);
		if (rc == CDN_OK) {
			atomic_fetch_add_explicit(
			    &v->partial_reads, 1, memory_order_relaxed);
			return CDN_OK;
		}
	}
	/* The whole body after all (or the object changed): read it all. */
	rc = cache_store_get(e->store, o->key, o->variant, &full, NULL);
	cache_obj_unref(op);
	if (rc == CDN_OK)
		*op = full;
	return rc;
}

/* ---------------- the "too large to store" memo ---------------- */

static uint64_t
pass_tag(const uint8_t key[CACHE_HASH_LEN])
{
	uint64_t t = 0;

	memcpy(&t, key, sizeof(t));
	return t | 1; /* 0 marks an empty slot */
}

void
edge_variant_note_large(struct edge *e, const uint8_t key[CACHE_HASH_LEN])
{
	struct edge_variant_ctx *v = e->variant;
	uint64_t t = pass_tag(key);

	MAGIC_CHECK(v, EDGE_VARIANT_MAGIC);
	atomic_store_explicit(
	    &v->pass[t % PASS_SLOTS], t, memory_order_relaxed);
}

int
edge_variant_is_large(const struct edge *e, const uint8_t key[CACHE_HASH_LEN])
{
	struct edge_variant_ctx *v = e->variant;
	uint64_t t = pass_tag(key);

	MAGIC_CHECK(v, EDGE_VARIANT_MAGIC);
	return atomic_load_explicit(
	           &v->pass[t % PASS_SLOTS], memory_order_relaxed) == t;
}

void
edge_variant_counters(const struct edge *e, struct edge_variant_counters *c)
{
	const struct edge_variant_ctx *v = e->variant;
	struct cache_variant_stats st;

	memset(c, 0, sizeof(*c));
	if (v == NULL)
		return;
	MAGIC_CHECK(v, EDGE_VARIANT_MAGIC);
	c->decoded = atomic_load_explicit(&v->decoded, memory_order_relaxed);
	c->bombs = atomic_load_explicit(&v->bombs, memory_order_relaxed);
	c->not_acceptable =
	    atomic_load_explicit(&v->not_acceptable, memory_order_relaxed);
	c->partial_reads =
	    atomic_load_explicit(&v->partial_reads, memory_order_relaxed);
	if (v->pool != NULL) {
		cache_variants_stats(v->pool, &st);
		c->made = st.made;
		c->not_smaller = st.not_smaller;
		c->dropped = st.dropped;
		c->superseded = st.superseded;
		c->in_bytes = st.in_bytes;
		c->out_bytes = st.out_bytes;
		c->busy_ms = st.busy_ns / 1000000;
		c->decoded += st.decoded;
		c->bombs += st.bombs;
	}
}
