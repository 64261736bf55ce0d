/*
 * The proxy's use of the cache (edge/edge_int.h): look requests up, serve
 * hits, revalidate stale responses, fill the store from origin responses
 * and invalidate after unsafe methods.
 *
 * Threading: everything here runs on the worker that owns the proxy_txn.
 * Cached objects are immutable and refcounted: a hit hands each body chunk
 * to the client's output buffer by reference (no copy), holding one object
 * reference per chunk until libevent has sent it.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "edge/edge_int.h"

#define KEY_MAX     8192 /* longest cache key; longer URLs bypass */
#define VARY_MAX    1024 /* longest stored Vary value */
#define VARY_FIELDS 128  /* request fields the Vary logic looks at */

/* ---- helpers ---- */

static int
slice_is(const char *p, size_t len, const char *name)
{
	return strlen(name) == len && strncasecmp(p, name, len) == 0;
}

static const char *
cache_name(const struct proxy_txn *pt)
{
	return pt->w->edge->conf->via;
}

/* Host part of the key: the same choice the origin request makes. */
static void
key_host(const struct edge *e, const struct http_request *req,
    const char **host, size_t *len)
{
	if (req->target_form == HTTP_TARGET_ABSOLUTE) {
		*host = req->authority.p;
		*len = req->authority.len;
	} else if (req->host.len > 0) {
		*host = req->host.p;
		*len = req->host.len;
	} else {
		*host = e->origin_authority;
		*len = strlen(*host);
	}
}

/* "http" always unless cache_key_scheme 1: one entry for both schemes. */
static const char *
key_scheme(const struct proxy_txn *pt)
{
	if (pt->w->edge->key_rules.include_scheme && http_txn_is_tls(pt->txn))
		return "https";
	return "http";
}

static int
key_for(const struct edge *e, const char *scheme, const char *host,
    size_t hostlen, const char *path, size_t pathlen, const char *query,
    size_t querylen, int has_query, uint8_t key[CACHE_HASH_LEN], char **url,
    size_t *url_len)
{
	char buf[KEY_MAX];
	size_t len;

	if (cache_key_build(&e->key_rules, scheme, host, hostlen, path, pathlen,
	        query, querylen, has_query, buf, sizeof(buf), &len) != CDN_OK)
		return CDN_EINVAL;
	cache_key_hash(buf, len, key);
	if (url != NULL) {
		*url = cdn_xstrndup(buf, len);
		*url_len = len;
	}
	return CDN_OK;
}

/* The request's fields as the Vary logic takes them.  -1 if too many. */
static int
request_fields(
    const struct http_request *req, struct cache_field *f, unsigned cap)
{
	if (req->n_headers > cap)
		return -1;
	for (unsigned i = 0; i < req->n_headers; i++) {
		f[i].name = req->headers[i].name.p;
		f[i].name_len = req->headers[i].name.len;
		f[i].value = req->headers[i].value.p;
		f[i].value_len = req->headers[i].value.len;
	}
	return (int)req->n_headers;
}

/* RFC 9110 §13.1.2: does the If-None-Match list match <etag> (weakly)? */
static int
inm_matches(const char *list, size_t len, const char *etag, size_t elen)
{
	const char *p = list, *end = list + len, *q;
	size_t n;

	if (elen > 2 && etag[0] == 'W' && etag[1] == '/') {
		etag += 2;
		elen -= 2;
	}
	while (p < end) {
		while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
			p++;
		if (p < end && *p == '*')
			return 1;
		q = p;
		while (q < end && *q != ',')
			q++;
		n = (size_t)(q - p);
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n > 2 && p[0] == 'W' && p[1] == '/') {
			p += 2;
			n -= 2;
		}
		if (n == elen && memcmp(p, etag, n) == 0)
			return 1;
		p = q;
	}
	return 0;
}

/* RFC 9110 §13.1.1-2: may the client's conditional get a 304? */
static int
client_not_modified(const struct http_request *req, const struct cache_obj *o)
{
	const struct http_header *inm, *ims;
	const char *etag, *lm;
	size_t elen, lmlen;
	int64_t t_ims, t_lm;

	if (o->status != 200)
		return 0;
	inm = http_request_find(req, "if-none-match");
	if (inm != NULL) {
		etag = cdn_fields_get(o->fields, o->fields_len, "etag", &elen);
		return etag != NULL &&
		    inm_matches(inm->value.p, inm->value.len, etag, elen);
	}
	ims = http_request_find(req, "if-modified-since");
	if (ims == NULL)
		return 0;
	lm = cdn_fields_get(o->fields, o->fields_len, "last-modified", &lmlen);
	if (lm == NULL)
		return 0;
	t_ims = cache_http_date_parse(ims->value.p, ims->value.len);
	t_lm = cache_http_date_parse(lm, lmlen);
	return t_ims >= 0 && t_lm >= 0 && t_lm <= t_ims;
}

/* RFC 9110 §15.4.5: the fields a 304 carries. */
static int
is_304_field(const char *name, size_t len)
{
	static const char *const keep[] = {"cache-control", "content-location",
	    "date", "etag", "expires", "vary", "via", "last-modified"};

	for (size_t i = 0; i < CDN_ARRAY_LEN(keep); i++)
		if (slice_is(name, len, keep[i]))
			return 1;
	return 0;
}

static void
on_chunk_sent(const void *data, size_t len, void *arg)
{
	struct cache_obj *o = arg;

	(void)data;
	(void)len;
	cache_obj_unref(&o);
}

/*
 * Answer from <o>: its stored fields plus Age and Cache-Status, its body by
 * reference, or a 304 when the client's conditional matches.  Does not
 * finish the txn.
 */
static void
send_stored(struct proxy_txn *pt, struct http_txn *txn, struct cache_obj *o,
    int64_t age, const char *status_text)
{
	const struct http_request *req = http_txn_request(txn);
	struct cdn_strbuf f = {.max = 256 * 1024};
	const char *p, *end, *eol, *colon;
	int not_modified = client_not_modified(req, o);
	uint64_t off = 0, n;

	if (not_modified) {
		end = o->fields + o->fields_len;
		for (p = o->fields; p < end; p = eol + 1) {
			eol = memchr(p, '\n', (size_t)(end - p));
			colon = memchr(p, ':', (size_t)(eol - p));
			if (colon != NULL &&
			    is_304_field(p, (size_t)(colon - p)))
				cdn_sb_add(&f, p, (size_t)(eol + 1 - p));
		}
	} else {
		cdn_sb_add(&f, o->fields, o->fields_len);
	}
	cdn_sb_printf(&f, "Age: %lld\r\n", (long long)age);
	cdn_sb_printf(
	    &f, "Cache-Status: %s; %s\r\n", cache_name(pt), status_text);
	if (f.failed) {
		/* Only a pathological stored head gets here: send it bare. */
		cdn_sb_free(&f);
		cdn_sb_add(&f, o->fields, o->fields_len);
	}
	pt->responded = 1;
	http_txn_respond(txn, not_modified ? 304 : o->status, f.p, f.len,
	    (int64_t)o->body_len);
	cdn_sb_free(&f);
	if (not_modified)
		return;
	for (uint32_t i = 0; i < o->nchunks; i++) {
		n = o->body_len - off;
		if (n > CACHE_CHUNK_SIZE)
			n = CACHE_CHUNK_SIZE;
		http_txn_write_ref(txn, o->chunks[i], (size_t)n, on_chunk_sent,
		    cache_obj_ref(o));
		off += n;
	}
}

/* ---- request side ---- */

int
edge_cache_drops_field(const struct proxy_txn *pt, const char *name, size_t len)
{
	/*
	 * A fetch that may fill the cache must get the whole response: the
	 * client's own validators and ranges are answered here, from it.
	 */
	if (!pt->cache_on)
		return 0;
	return slice_is(name, len, "if-none-match") ||
	    slice_is(name, len, "if-modified-since") ||
	    slice_is(name, len, "if-range") || slice_is(name, len, "range");
}

void
edge_cache_origin_path(const struct proxy_txn *pt,
    const struct http_request *req, struct cdn_strbuf *url)
{
	const char *p, *end, *q;

	/*
	 * The origin gets the path the key was built from: were it to see
	 * "/a/../b" raw and answer differently than for "/b", that answer
	 * would be stored under "/b"'s key.  key_url is
	 * "[scheme://]host/path[?query]".
	 */
	if (pt->has_key) {
		end = pt->key_url + pt->key_url_len;
		p = pt->key_url;
		if (pt->w->edge->key_rules.include_scheme &&
		    (q = memmem(p, pt->key_url_len, "://", 3)) != NULL)
			p = q + 3; /* "https://host/path": skip the scheme */
		p = memchr(p, '/', (size_t)(end - p));
		if (p != NULL) {
			q = memchr(p, '?', (size_t)(end - p));
			cdn_sb_add(url, p, (size_t)((q != NULL ? q : end) - p));
			return;
		}
	}
	cdn_sb_add(url, req->path.p, req->path.len);
}

void
edge_cache_origin_fields(const struct proxy_txn *pt, struct cdn_strbuf *fb)
{
	const char *v;
	size_t len;

	if (pt->stale == NULL)
		return;
	/* RFC 9111 §4.3.1: validate with what the stored response has. */
	v = cdn_fields_get(
	    pt->stale->fields, pt->stale->fields_len, "etag", &len);
	if (v != NULL) {
		cdn_sb_str(fb, "If-None-Match: ");
		cdn_sb_add(fb, v, len);
		cdn_sb_add(fb, "", 1);
	}
	v = cdn_fields_get(
	    pt->stale->fields, pt->stale->fields_len, "last-modified", &len);
	if (v != NULL) {
		cdn_sb_str(fb, "If-Modified-Since: ");
		cdn_sb_add(fb, v, len);
		cdn_sb_add(fb, "", 1);
	}
}

static void
parse_request_directives(struct proxy_txn *pt, const struct http_request *req)
{
	int has_cc = 0;

	cache_cc_init(&pt->x.req_cc);
	for (unsigned i = 0; i < req->n_headers; i++) {
		const struct http_header *h = &req->headers[i];

		if (http_slice_eq_ci(h->name, "cache-control")) {
			cache_cc_parse(&pt->x.req_cc, h->value.p, h->value.len);
			has_cc = 1;
		} else if (http_slice_eq_ci(h->name, "authorization")) {
			pt->x.has_authorization = 1;
		}
	}
	/* RFC 9111 §5.4: Pragma: no-cache only counts without Cache-Control. */
	if (!has_cc) {
		const struct http_header *pr = http_request_find(req, "pragma");

		if (pr != NULL &&
		    memmem(pr->value.p, pr->value.len, "no-cache", 8) != NULL)
			pt->pragma_no_cache = 1;
	}
	pt->x.req_pragma_no_cache = pt->pragma_no_cache;
}

static int
bypassed(const struct conf *cf, const struct http_request *req)
{
	for (unsigned i = 0; i < cf->cache_bypass.n; i++) {
		size_t n = strlen(cf->cache_bypass.v[i]);

		if (req->path.len >= n &&
		    memcmp(req->path.p, cf->cache_bypass.v[i], n) == 0)
			return 1;
	}
	return 0;
}

int
edge_cache_request(struct proxy_txn *pt, struct http_txn *txn)
{
	struct edge_worker *w = pt->w;
	struct edge *e = w->edge;
	const struct http_request *req = http_txn_request(txn);
	struct cache_field fields[VARY_FIELDS];
	struct cache_obj *o = NULL;
	char vary[VARY_MAX];
	const char *host;
	size_t hostlen, vlen;
	uint64_t variant = 0;
	int64_t now, age;
	int rc, from_memory = 0, has_vary = 0, nf;
	enum cache_use use;

	pt->x.request_time = time(NULL);
	if (e->store == NULL) {
		snprintf(pt->cache_status, sizeof(pt->cache_status),
		    "fwd=bypass; detail=no-cache");
		EDGE_COUNTER_INC(w, cache_bypass);
		return 0;
	}
	pt->purge_gen = cache_store_purge_seq(e->store);
	key_host(e, req, &host, &hostlen);
	if (key_for(e, key_scheme(pt), host, hostlen, req->path.p,
	        req->path.len, req->query.p, req->query.len, req->has_query,
	        pt->key, &pt->key_url, &pt->key_url_len) == CDN_OK)
		pt->has_key = 1;
	if (req->method != HTTP_M_GET && req->method != HTTP_M_HEAD) {
		snprintf(
		    pt->cache_status, sizeof(pt->cache_status), "fwd=method");
		EDGE_COUNTER_INC(w, cache_bypass);
		return 0;
	}
	if (!pt->has_key || bypassed(e->conf, req)) {
		snprintf(
		    pt->cache_status, sizeof(pt->cache_status), "fwd=bypass");
		EDGE_COUNTER_INC(w, cache_bypass);
		return 0;
	}
	parse_request_directives(pt, req);
	pt->x.method_get_or_head = 1;
	pt->cache_on = 1;
	/* Fill the cache from a HEAD miss too: fetch GET, send the head. */
	if (req->method == HTTP_M_HEAD && !pt->x.req_cc.no_store)
		pt->head_as_get = 1;

	nf = request_fields(req, fields, VARY_FIELDS);
	rc = cache_store_get_vary(e->store, pt->key, vary, sizeof(vary), &vlen);
	if (rc != CDN_OK && rc != CDN_NOTFOUND) {
		/* A Vary rule we cannot read (too long): never guess a variant.
		 */
		snprintf(pt->cache_status, sizeof(pt->cache_status),
		    "fwd=vary-miss");
		goto miss;
	}
	if (rc == CDN_OK) {
		has_vary = 1;
		if (nf < 0 ||
		    cache_vary_key(
		        vary, vlen, fields, (unsigned)nf, &variant) != CDN_OK) {
			snprintf(pt->cache_status, sizeof(pt->cache_status),
			    "fwd=vary-miss");
			goto miss;
		}
	}
	rc = cache_store_get(e->store, pt->key, variant, &o, &from_memory);
	if (rc != CDN_OK) {
		snprintf(pt->cache_status, sizeof(pt->cache_status), "%s",
		    has_vary ? "fwd=vary-miss" : "fwd=uri-miss");
		goto miss;
	}
	now = time(NULL);
	age = cache_current_age(o->d.initial_age_s, o->response_time, now);
	if (cache_obj_soft_purged(o) && age < o->d.freshness_s)
		age = o->d.freshness_s; /* soft purge: stale from now on */
	use = cache_policy_use(&o->d, age, &pt->x.req_cc, pt->pragma_no_cache);
	if (use == CACHE_USE_FRESH || use == CACHE_USE_STALE_OK ||
	    (pt->x.req_cc.only_if_cached && use != CACHE_USE_MISS &&
	        !o->d.must_revalidate && !o->d.no_cache)) {
		snprintf(pt->cache_status, sizeof(pt->cache_status),
		    "hit; ttl=%lld", (long long)(o->d.freshness_s - age));
		if (from_memory)
			EDGE_COUNTER_INC(w, cache_hits_memory);
		else
			EDGE_COUNTER_INC(w, cache_hits_disk);
		cache_store_touch(e->store, o);
		send_stored(pt, txn, o, age, pt->cache_status);
		cache_obj_unref(&o);
		http_txn_finish(txn); /* pt dies here */
		return 1;
	}
	if (use == CACHE_USE_MISS) {
		cache_obj_unref(&o);
		snprintf(
		    pt->cache_status, sizeof(pt->cache_status), "fwd=request");
		goto miss;
	}
	/* Stale, or the request asked for validation: ask the origin. */
	pt->stale = o;
	snprintf(pt->cache_status, sizeof(pt->cache_status), "%s",
	    (pt->x.req_cc.no_cache || pt->pragma_no_cache) ? "fwd=request"
	                                                   : "fwd=stale");
	EDGE_COUNTER_INC(w, cache_revalidations);
	if (!pt->x.req_cc.only_if_cached)
		return 0;
	cache_obj_unref(&pt->stale);
miss:
	EDGE_COUNTER_INC(w, cache_misses);
	if (pt->x.req_cc.only_if_cached) {
		/* RFC 9111 §5.2.1.7: nothing usable stored: 504. */
		http_txn_simple(
		    txn, 504, "text/plain", "504 Gateway Timeout\n", 20);
		return 1;
	}
	return 0;
}

/* ---- response side ---- */

/* Invalidate the URL of a Location or Content-Location on the same host. */
static void
invalidate_location(struct proxy_txn *pt, const char *v, size_t len)
{
	struct edge *e = pt->w->edge;
	const struct http_request *req = http_txn_request(pt->txn);
	const char *host, *path, *q;
	size_t hostlen, pathlen;
	uint8_t key[CACHE_HASH_LEN];

	key_host(e, req, &host, &hostlen);
	if (len > 7 && strncasecmp(v, "http://", 7) == 0) {
		/* RFC 9111 §4.4: only on the same host. */
		path = memchr(v + 7, '/', len - 7);
		if (path == NULL)
			path = v + len;
		if ((size_t)(path - (v + 7)) != hostlen ||
		    strncasecmp(v + 7, host, hostlen) != 0)
			return;
	} else if (len > 0 && v[0] == '/') {
		path = v;
	} else {
		return;
	}
	pathlen = (size_t)(v + len - path);
	q = memchr(path, '?', pathlen);
	if (key_for(e, key_scheme(pt), host, hostlen, path,
	        q != NULL ? (size_t)(q - path) : pathlen,
	        q != NULL ? q + 1 : "",
	        q != NULL ? (size_t)(path + pathlen - q - 1) : 0, q != NULL,
	        key, NULL, NULL) == CDN_OK)
		cache_store_remove(e->store, key);
}

/* RFC 9111 §4.4: a successful unsafe method invalidates what it names. */
static void
invalidate(struct proxy_txn *pt, int status, const char *fields, size_t len)
{
	struct edge_worker *w = pt->w;
	const char *v;
	size_t vlen;

	if (status < 200 || status >= 400 || !pt->has_key)
		return;
	cache_store_remove(w->edge->store, pt->key);
	EDGE_COUNTER_INC(w, cache_invalidations);
	v = cdn_fields_get(fields, len, "location", &vlen);
	if (v != NULL)
		invalidate_location(pt, v, vlen);
	v = cdn_fields_get(fields, len, "content-location", &vlen);
	if (v != NULL)
		invalidate_location(pt, v, vlen);
}

/* The stored copy of a response head: without Age and Cache-Status. */
static void
stored_fields(const char *fields, size_t len, struct cdn_strbuf *st)
{
	const char *p, *end = fields + len, *eol, *colon;

	for (p = fields; p < end; p = eol + 1) {
		eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == NULL)
			break;
		colon = memchr(p, ':', (size_t)(eol - p));
		if (colon != NULL &&
		    (slice_is(p, (size_t)(colon - p), "age") ||
		        slice_is(p, (size_t)(colon - p), "cache-status")))
			continue;
		cdn_sb_add(st, p, (size_t)(eol + 1 - p));
	}
}

/* Does <name> appear among the field lines of <fields>? */
static int
has_field(const char *fields, size_t len, const char *name, size_t nlen)
{
	const char *p, *end = fields + len, *eol;

	for (p = fields; p < end; p = eol + 1) {
		eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == NULL)
			return 0;
		if ((size_t)(eol - p) > nlen && p[nlen] == ':' &&
		    strncasecmp(p, name, nlen) == 0)
			return 1;
	}
	return 0;
}

/*
 * RFC 9111 §4.3.4: a 304 to our revalidation.  The stored fields are
 * updated with the 304's, the object is stored again with its new
 * freshness, and the client is answered from it.
 */
static int
revalidated(struct proxy_txn *pt, struct cdn_strbuf *out)
{
	struct edge_worker *w = pt->w;
	struct edge *e = w->edge;
	struct cache_obj *old = pt->stale, *o;
	struct cdn_strbuf merged = {.max = 256 * 1024};
	const char *p, *end = old->fields + old->fields_len, *eol, *colon;
	struct cache_exchange x;
	struct cache_decision d;
	uint64_t off = 0, n;
	char status_text[96];

	for (p = old->fields; p < end; p = eol + 1) {
		eol = memchr(p, '\n', (size_t)(end - p));
		colon = memchr(p, ':', (size_t)(eol - p));
		if (colon != NULL &&
		    has_field(out->p, out->len, p, (size_t)(colon - p)))
			continue; /* the 304's value replaces it */
		cdn_sb_add(&merged, p, (size_t)(eol + 1 - p));
	}
	stored_fields(out->p, out->len, &merged);
	if (merged.failed) {
		cdn_sb_free(&merged);
		return 0;
	}
	x = pt->x;
	cache_exchange_parse_response(&x, merged.p, merged.len);
	x.status = old->status;
	cache_policy_decide(&e->policy, &x, &d);
	EDGE_COUNTER_INC(w, cache_not_modified);
	o = cache_obj_new(old->key, old->variant, old->status, &d,
	    x.response_time, old->url, old->url_len, merged.p, merged.len,
	    old->vary, old->vary_len);
	for (uint32_t i = 0; o != NULL && i < old->nchunks; i++) {
		n = old->body_len - off;
		if (n > CACHE_CHUNK_SIZE)
			n = CACHE_CHUNK_SIZE;
		if (cache_obj_append(o, old->chunks[i], (size_t)n) != CDN_OK)
			cache_obj_unref(&o);
		off += n;
	}
	cdn_sb_free(&merged);
	if (o != NULL) {
		o->purge_gen = pt->purge_gen;
		if (old->tags_len > 0 &&
		    cache_obj_set_tags(o, old->tags, old->tags_len) != CDN_OK)
			cache_obj_unref(&o);
	}
	if (o == NULL)
		return 0; /* no memory: the origin's 304 goes to the client */
	snprintf(status_text, sizeof(status_text),
	    "fwd=stale; fwd-status=304%s", d.storable ? "; stored" : "");
	snprintf(pt->cache_status, sizeof(pt->cache_status), "%s", status_text);
	if (d.storable && !pt->x.req_cc.no_store) {
		cache_store_put(e->store, o);
		EDGE_COUNTER_INC(w, cache_stores);
	}
	pt->served = 1;
	send_stored(pt, pt->txn, o,
	    cache_current_age(
	        d.initial_age_s, x.response_time, x.response_time),
	    status_text);
	cache_obj_unref(&o);
	cache_obj_unref(&pt->stale);
	return 1;
}

int
edge_cache_on_head(struct proxy_txn *pt, int status, const char *fields,
    size_t len, struct cdn_strbuf *out)
{
	struct edge_worker *w = pt->w;
	struct edge *e = w->edge;
	const struct http_request *req = http_txn_request(pt->txn);
	struct cache_field rf[VARY_FIELDS];
	struct cache_decision d;
	struct cdn_strbuf st = {.max = 256 * 1024};
	const char *vary;
	size_t vlen = 0;
	uint64_t variant = 0;
	int nf, store;

	if (e->store != NULL && !pt->cache_on) {
		if (req->method != HTTP_M_GET && req->method != HTTP_M_HEAD &&
		    req->method != HTTP_M_OPTIONS)
			invalidate(pt, status, fields, len);
		goto field;
	}
	if (!pt->cache_on)
		goto field;
	pt->x.response_time = time(NULL);
	if (pt->stale != NULL && status == 304 && revalidated(pt, out))
		return 1;
	if (pt->stale != NULL)
		cache_obj_unref(&pt->stale); /* a full response replaces it */
	pt->x.status = status;
	cache_exchange_parse_response(&pt->x, fields, len);
	cache_policy_decide(&e->policy, &pt->x, &d);
	store = d.storable && !pt->x.req_cc.no_store && status != 206 &&
	    (pt->content_length < 0 ||
	        (uint64_t)pt->content_length <= e->conf->max_object_size);
	vary = cdn_fields_get(fields, len, "vary", &vlen);
	if (store && vary != NULL) {
		nf = request_fields(req, rf, VARY_FIELDS);
		if (nf < 0 || vlen > VARY_MAX ||
		    cache_vary_key(vary, vlen, rf, (unsigned)nf, &variant) !=
		        CDN_OK)
			store = 0;
	}
	if (store) {
		stored_fields(out->p, out->len, &st);
		if (!st.failed)
			pt->fill = cache_obj_new(pt->key, variant, status, &d,
			    pt->x.response_time, pt->key_url, pt->key_url_len,
			    st.p, st.len, vary != NULL ? vary : "", vlen);
		cdn_sb_free(&st);
		if (pt->fill != NULL &&
		    edge_purge_on_fill(
		        e, pt->fill, fields, len, pt->purge_gen) != CDN_OK)
			cache_obj_unref(&pt->fill);
		store = pt->fill != NULL;
	}
	if (store && strlen(pt->cache_status) + 8 < sizeof(pt->cache_status))
		strcat(pt->cache_status, "; stored");
	else if (!store && d.reason != NULL &&
	    strlen(pt->cache_status) + strlen(d.reason) + 10 <
	        sizeof(pt->cache_status) &&
	    !d.storable) {
		strcat(pt->cache_status, "; detail=");
		strcat(pt->cache_status, d.reason);
	}
field:
	cdn_sb_printf(out, "Cache-Status: %s; %s\r\n", cache_name(pt),
	    pt->cache_status[0] != '\0' ? pt->cache_status : "fwd=bypass");
	return 0;
}

void
edge_cache_on_body(struct proxy_txn *pt, const char *data, size_t len)
{
	uint64_t max = pt->w->edge->conf->max_object_size;

	if (pt->fill == NULL)
		return;
	if (pt->fill->body_len + len > max ||
	    cache_obj_append(pt->fill, data, len) != CDN_OK)
		cache_obj_unref(&pt->fill); /* streams on, uncached */
}

void
edge_cache_on_done(struct proxy_txn *pt, enum origin_err e)
{
	struct edge_worker *w = pt->w;

	if (pt->fill == NULL)
		return;
	/* Only a complete body is stored: never a truncated one. */
	if (e == ORIGIN_OK &&
	    (pt->content_length < 0 ||
	        pt->fill->body_len == (uint64_t)pt->content_length)) {
		cache_store_put(w->edge->store, pt->fill);
		EDGE_COUNTER_INC(w, cache_stores);
	}
	cache_obj_unref(&pt->fill);
}

void
edge_cache_error_field(struct proxy_txn *pt, struct cdn_strbuf *out)
{
	cdn_sb_printf(out, "Cache-Status: %s; %s; detail=origin-error\r\n",
	    cache_name(pt),
	    pt->cache_status[0] != '\0' ? pt->cache_status : "fwd=miss");
}

void
edge_cache_txn_free(struct proxy_txn *pt)
{
	if (pt->stale != NULL)
		cache_obj_unref(&pt->stale);
	if (pt->fill != NULL)
		cache_obj_unref(&pt->fill);
	free(pt->key_url);
	pt->key_url = NULL;
}

/* ---- set-up ---- */

int
edge_cache_init(struct edge *e)
{
	const struct conf *c = e->conf;
	struct cache_store_conf sc;
	const struct conf_strlist *params = NULL;

	e->policy.default_ttl_s = (int64_t)(c->cache_default_ttl / 1000);
	e->policy.min_ttl_s = (int64_t)(c->cache_min_ttl / 1000);
	e->policy.max_ttl_s = (int64_t)(c->cache_max_ttl / 1000);
	e->policy.heuristic_percent = c->cache_heuristic_percent;
	e->policy.heuristic_max_s = (int64_t)(c->cache_heuristic_max / 1000);
	e->policy.share_set_cookie = (int)c->cache_share_set_cookie;
	e->policy.honor_targeted = (int)c->cache_targeted;
	e->key_rules.include_scheme = (int)c->cache_key_scheme;

	if (strcmp(c->cache_query, "sort") == 0)
		e->key_rules.query_mode = CACHE_QUERY_SORT;
	else if (strcmp(c->cache_query, "drop") == 0)
		e->key_rules.query_mode = CACHE_QUERY_DROP;
	else
		e->key_rules.query_mode = CACHE_QUERY_KEEP;
	if (c->cache_query_drop.n > 0) {
		e->key_rules.sort_after_filter =
		    e->key_rules.query_mode == CACHE_QUERY_SORT;
		e->key_rules.query_mode = CACHE_QUERY_DROP_LISTED;
		params = &c->cache_query_drop;
	} else if (c->cache_query_keep.n > 0) {
		e->key_rules.sort_after_filter =
		    e->key_rules.query_mode == CACHE_QUERY_SORT;
		e->key_rules.query_mode = CACHE_QUERY_KEEP_LISTED;
		params = &c->cache_query_keep;
	}
	if (params != NULL) {
		e->key_rules.params = (const char *const *)params->v;
		e->key_rules.nparams = params->n;
	}
	if (c->cache_dir[0] == '\0')
		return CDN_OK;
	memset(&sc, 0, sizeof(sc));
	sc.dir = c->cache_dir;
	sc.disk_bytes = c->cache_size;
	sc.memory_bytes = c->memory_size;
	sc.max_object_bytes = c->max_object_size;
	sc.high_water_pct = 90;
	sc.low_water_pct = 80;
	e->store = cache_store_open(&sc);
	return e->store != NULL ? CDN_OK : CDN_EIO;
}

void
edge_cache_fini(struct edge *e)
{
	cache_store_close(&e->store);
}
