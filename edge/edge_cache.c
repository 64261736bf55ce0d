/*
 * The proxy's use of the cache (edge/edge_int.h): look requests up, serve
 * hits, revalidate stale responses, fill the store from origin responses
 * and invalidate after unsafe methods.
 *
 * Threading: everything here runs on the worker that owns the proxy_txn.
 * Cached objects are immutable and refcounted: a hit hands each body chunk
 * to the client's output buffer by reference (no copy), holding one object
 * reference per chunk until libevent has sent it.  A hit on an object too
 * large for the memory tier reads its chunks from disk one at a time as
 * the client drains (pt->disk, edge_range_disk), never the whole body.
 */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "edge/edge_deliver.h"
#include "edge/edge_inflight.h"
#include "edge/edge_int.h"
#include "http/http_fields.h"
#include "edge/edge_range.h"
#include "edge/edge_stream.h"
#include "edge/edge_variant.h"
#include "http/http_date.h"
#include "http/http_url.h"

#define KEY_MAX     8192 /* longest cache key; longer URLs bypass */
#define VARY_MAX    1024 /* longest stored Vary value */
#define VARY_FIELDS 128  /* request fields the Vary logic looks at */
/* A stored head: the longest kept, and what is copied without a malloc
 * (most heads). */
#define STORED_FIELDS_MAX   (256 * 1024)
#define STORED_FIELDS_STACK 2048

/* How long start-up waits for a purged still closing a damaged store. */
#define MOVE_ASIDE_WAIT_MS 10000

/* ---- helpers ---- */

static int
slice_is(const char *p, size_t len, const char *name)
{
	return strlen(name) == len && strncasecmp(p, name, len) == 0;
}

/* Append <s> to pt->cache_status if it fits whole. */
static void
cache_status_add(struct proxy_txn *pt, const char *s)
{
	size_t n = strlen(pt->cache_status), len = strlen(s);

	if (n + len < sizeof(pt->cache_status))
		memcpy(pt->cache_status + n, s, len + 1);
}

/* "hit; ttl=<ttl_s>", the Cache-Status of every fresh hit: no printf. */
static void
hit_status(struct proxy_txn *pt, int64_t ttl_s)
{
	_Static_assert(sizeof(pt->cache_status) >= 9 + CDN_FMT_I64_MAX,
	    "room for a hit's Cache-Status");
	memcpy(pt->cache_status, "hit; ttl=", 9);
	cdn_fmt_i64(pt->cache_status + 9, ttl_s);
}

/* Host part of the key: the same choice the origin request makes. */
static void
key_host(const struct edge_site *site, const struct http_request *req,
    const char **host, size_t *len)
{
	if (req->target_form == HTTP_TARGET_ABSOLUTE) {
		*host = req->authority.p;
		*len = req->authority.len;
	} else if (req->host.len > 0) {
		*host = req->host.p;
		*len = req->host.len;
	} else {
		*host = site->origin_authority;
		*len = strlen(*host);
	}
}

/* "http" always unless cache_key_scheme 1: one entry for both schemes. */
static const char *
key_scheme(const struct proxy_txn *pt)
{
	if (pt->site->key_rules.include_scheme && edge_stream_is_tls(&pt->cs))
		return "https";
	return "http";
}

/* The key of a URL in <key>, and its text in pt->key_url if <pt>. */
static int
key_for(const struct edge_site *site, const char *scheme, const char *host,
    size_t hostlen, const char *path, size_t pathlen, const char *query,
    size_t querylen, int has_query, uint8_t key[CACHE_HASH_LEN],
    struct proxy_txn *pt)
{
	char buf[KEY_MAX];
	size_t len;

	if (cache_key_build(&site->key_rules, scheme, host, hostlen, path,
	        pathlen, query, querylen, has_query, buf, sizeof(buf),
	        &len) != CDN_OK)
		return CDN_EINVAL;
	cache_key_hash(buf, len, key);
	if (pt == NULL)
		return CDN_OK;
	/* Most fit the transaction's own room, with no malloc and free per
	 * request.  A longer one is as long as the client's target: fail,
	 * never abort. */
	if (len < sizeof(pt->key_url_room)) {
		memcpy(pt->key_url_room, buf, len);
		pt->key_url_room[len] = '\0';
		pt->key_url = pt->key_url_room;
	} else if ((pt->key_url = cdn_strndup(buf, len)) == NULL) {
		return CDN_ENOMEM;
	}
	pt->key_url_len = len;
	return CDN_OK;
}

/*
 * The request's fields as the Vary logic takes them.  -1 if too many.
 * Accept-Encoding is left out: the node negotiates the coding itself
 * among the stored ones (edge_variant_get), whose variant ids carry it.
 */
int
edge_cache_request_fields(
    const struct http_request *req, struct cache_field *f, unsigned cap)
{
	unsigned n = 0;

	for (unsigned i = 0; i < req->n_headers; i++) {
		if (http_slice_eq_ci(req->headers[i].name, "accept-encoding"))
			continue;
		if (n == cap)
			return -1;
		f[n].name = req->headers[i].name.p;
		f[n].name_len = req->headers[i].name.len;
		f[n].value = req->headers[i].value.p;
		f[n].value_len = req->headers[i].value.len;
		n++;
	}
	return (int)n;
}

/* The operator's grace and stale-if-error apply where the origin allows. */
static struct cache_decision
effective_decision(const struct edge_site *site, const struct cache_obj *o)
{
	struct cache_decision d = o->d;
	int64_t grace = (int64_t)(site->conf->cache_grace / 1000);
	int64_t sie = (int64_t)(site->conf->cache_stale_if_error / 1000);

	if (!d.must_revalidate && !d.no_cache) {
		if (grace > d.swr_s)
			d.swr_s = grace;
		if (sie > d.sie_s)
			d.sie_s = sie;
	}
	return d;
}

int
edge_cache_stale_if_error_ok(const struct edge_site *site,
    const struct cache_obj *o, const struct cache_cc *req_cc,
    int req_pragma_no_cache)
{
	struct cache_decision d = effective_decision(site, o);
	int64_t age, staleness, allow = d.sie_s;

	/* RFC 9111 §4.2.4: never against must-revalidate, no-cache,
	 * s-maxage, or a client that asked for validation. */
	if (d.must_revalidate || d.no_cache || req_cc->no_cache ||
	    (req_pragma_no_cache && !req_cc->is_set))
		return 0;
	/* RFC 5861 §4: the request may allow (more) stale on error too. */
	if (req_cc->stale_if_error > allow)
		allow = req_cc->stale_if_error;
	age = cache_current_age(
	    o->d.initial_age_s, o->response_time, (int64_t)time(NULL));
	staleness = age - o->d.freshness_s;
	return staleness <= allow;
}

int
edge_cache_serve_stale_on_error(
    struct proxy_txn *pt, int err_status, const char *why, int finish)
{
	struct edge_worker *w = pt->w;

	if (pt->stale == NULL ||
	    !edge_cache_stale_if_error_ok(
	        pt->site, pt->stale, &pt->x.req_cc, pt->pragma_no_cache))
		return 0;
	if (err_status != 0)
		snprintf(pt->cache_status, sizeof(pt->cache_status),
		    "fwd=stale; fwd-status=%d; detail=stale-if-error",
		    err_status);
	else
		snprintf(pt->cache_status, sizeof(pt->cache_status),
		    "fwd=stale; detail=\"stale-if-error: origin %s\"", why);
	EDGE_COUNTER_INC(w, cache_stale_if_error);
	pt->served = 1;
	edge_deliver_stored(pt, pt->stale);
	if (finish)
		edge_stream_finish(&pt->cs); /* pt dies here */
	return 1;
}

void
edge_cache_serve_swr(struct proxy_txn *pt)
{
	EDGE_COUNTER_INC(pt->w, cache_stale_while_revalidate);
	pt->served = 1;
	edge_deliver_stored(pt, pt->stale);
	edge_stream_finish(&pt->cs); /* pt dies here */
}

/* ---- hits on large objects read from disk as they are sent ---- */

/* A chunk of pt's object failed its checksum: remove the object, so that
 * the next request fetches it again rather than meeting the same chunk. */
static void
drop_corrupt(struct proxy_txn *pt, const char *outcome)
{
	CDN_LOG(CDN_LOG_WARN, "cache",
	    "a stored body chunk of %.*s fails its checksum: removed, %s",
	    (int)(pt->key_url_len > 200 ? 200 : pt->key_url_len), pt->key_url,
	    outcome);
	cache_store_remove(pt->w->edge->store, pt->key);
}

/*
 * The sender of a fresh hit on <*op>, a large object of which only the
 * metadata was read (the reference is taken).  The first chunk the answer
 * needs is read now, before anything is sent: when it cannot be, NULL,
 * and the request is a miss (the origin answers it; a record that failed
 * its checksum is removed so that the response replaces it).
 */
static struct edge_range_disk *
disk_open(
    struct proxy_txn *pt, const struct http_request *req, struct cache_obj **op)
{
	struct edge_range_disk *rd;
	int rc = CDN_OK;

	rd = edge_range_disk_new(
	    pt->w->edge->store, req, op, edge_deliver_not_modified(req, *op));
	if (req->method != HTTP_M_HEAD)
		rc = edge_range_disk_prime(rd);
	if (rc == CDN_OK)
		return rd;
	if (rc == CDN_ECORRUPT)
		drop_corrupt(pt, "fetched again");
	edge_range_disk_free(&rd);
	return NULL;
}

/*
 * Send what the client can take now.  A chunk that cannot be read once the
 * head is out (the object purged or removed meanwhile: eviction and a
 * newer copy leave a pinned reader's chunks alone; a chunk failing its
 * checksum, the disk failing) ends the transfer short, as a failed fill
 * does: the client sees a truncated response, never wrong bytes.
 */
static void
disk_run(struct proxy_txn *pt)
{
	int rc;

	rc = edge_range_disk_send(pt->disk, &pt->cs);
	if (rc == CDN_AGAIN)
		return;
	edge_range_disk_free(&pt->disk);
	if (rc == CDN_OK) {
		edge_stream_finish(&pt->cs); /* pt dies here */
		return;
	}
	EDGE_COUNTER_INC(pt->w, cache_disk_cuts);
	cache_status_add(pt,
	    rc == CDN_NOTFOUND       ? "; detail=cut-replaced"
	        : rc == CDN_ECORRUPT ? "; detail=cut-corrupt"
	                             : "; detail=cut-read-error");
	if (rc == CDN_ECORRUPT)
		drop_corrupt(pt, "the client is cut short");
	edge_stream_abort(&pt->cs); /* pt dies here */
}

/* The fresh hit on a large object on disk, with the sender disk_open made:
 * the head, then the body as the client drains (pt->disk). */
static void
send_from_disk(struct proxy_txn *pt, struct edge_range_disk *rd, int64_t age)
{
	const struct http_request *req = edge_stream_request(&pt->cs);
	const struct cache_obj *o = edge_range_disk_obj(rd);
	int not_modified = edge_deliver_not_modified(req, o);

	edge_deliver_stored_head(
	    pt, o, age, not_modified, edge_range_disk_plan(rd));
	if (not_modified || req->method == HTTP_M_HEAD ||
	    edge_range_disk_plan(rd)->content_length == 0) {
		edge_range_disk_free(&rd);
		edge_stream_finish(&pt->cs); /* pt dies here */
		return;
	}
	EDGE_COUNTER_INC(pt->w, cache_disk_streams);
	pt->disk = rd;
	disk_run(pt);
}

void
edge_cache_writable(struct proxy_txn *pt)
{
	if (pt->disk != NULL)
		disk_run(pt);
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
	/* Ranges of what cannot be stored are the origin's to answer. */
	if ((slice_is(name, len, "if-range") || slice_is(name, len, "range")) &&
	    pt->range_upstream)
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
		if (pt->site->key_rules.include_scheme &&
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

/* The request's Cache-Control, Pragma and Authorization; and its
 * Edge-Bus-Applied fields: *nbus of them, the first in *bus. */
static void
parse_request_directives(struct proxy_txn *pt, const struct http_request *req,
    struct http_slice *bus, unsigned *nbus)
{
	struct http_conn_tokens ct = {.n = 0};
	int has_cc = 0;

	for (unsigned i = 0; i < req->n_headers; i++)
		if (http_slice_eq_ci(req->headers[i].name, "connection"))
			http_conn_tokens_add(&ct, req->headers[i].value.p,
			    req->headers[i].value.len);
	cache_cc_init(&pt->x.req_cc);
	for (unsigned i = 0; i < req->n_headers; i++) {
		const struct http_header *h = &req->headers[i];

		if (http_slice_eq_ci(h->name, "cache-control")) {
			cache_cc_parse(&pt->x.req_cc, h->value.p, h->value.len);
			has_cc = 1;
		} else if (http_slice_eq_ci(h->name, "authorization") &&
		    !http_conn_tokens_has(&ct, h->name.p, h->name.len)) {
			/* RFC 9111 §3.5 is about the credentials the origin
			 * sees: one Connection names is not forwarded. */
			pt->x.has_authorization = 1;
		} else if (http_slice_eq_ci(h->name, "edge-bus-applied")) {
			if ((*nbus)++ == 0)
				*bus = h->value;
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

/*
 * The stored response for <req>: the Vary rule of <key>, then the variant
 * the request selects (edge_variant_get, whose codes it returns), in one
 * read transaction of the store; a key with nothing stored (a new key, the
 * usual miss) stops at the first.  *has_vary tells whether a rule applied;
 * *vary_miss, with CDN_NOTFOUND, that it could not be read (too long) or
 * applied to the request.
 */
static int
find_stored(struct edge *e, const struct http_request *req,
    const uint8_t key[CACHE_HASH_LEN], struct cache_obj **op, int *from_memory,
    int *has_vary, int *vary_miss)
{
	struct cache_field fields[VARY_FIELDS];
	char vary[VARY_MAX];
	uint64_t variant = 0;
	size_t vlen;
	int rc, nf, none_stored;

	nf = edge_cache_request_fields(req, fields, VARY_FIELDS);
	cache_store_read_hold(e->store);
	rc = cache_store_get_vary_probe(
	    e->store, key, vary, sizeof(vary), &vlen, &none_stored);
	if (none_stored) {
		cache_store_read_release(e->store);
		return CDN_NOTFOUND;
	}
	if (rc == CDN_OK) {
		*has_vary = 1;
		if (nf < 0 ||
		    cache_vary_key(
		        vary, vlen, fields, (unsigned)nf, &variant) != CDN_OK)
			*vary_miss = 1;
	} else if (rc != CDN_NOTFOUND) {
		*vary_miss = 1;
	}
	rc = *vary_miss
	    ? CDN_NOTFOUND
	    : edge_variant_get(e, req, key, variant, op, from_memory);
	cache_store_read_release(e->store);
	return rc;
}

int
edge_cache_request(struct proxy_txn *pt)
{
	struct edge_worker *w = pt->w;
	struct edge *e = w->edge;
	const struct edge_stream *cs = &pt->cs;
	const struct http_request *req = edge_stream_request(cs);
	struct cache_obj *o = NULL;
	struct edge_range_disk *rd = NULL;
	const char *host;
	size_t hostlen;
	int64_t now, age;
	int rc, from_memory = 0, has_vary = 0, vary_miss = 0;
	enum cache_use use;
	enum cache_bus_verdict bus;
	struct cache_decision d;
	struct http_slice bus_field = {NULL, 0};
	unsigned nbus = 0;

	pt->x.request_time = time(NULL);
	if (e->store == NULL) {
		snprintf(pt->cache_status, sizeof(pt->cache_status),
		    "fwd=bypass; detail=no-cache");
		EDGE_COUNTER_INC(w, cache_bypass);
		return 0;
	}
	pt->purge_gen = cache_store_purge_seq(e->store);
	key_host(pt->site, req, &host, &hostlen);
	rc = key_for(pt->site, key_scheme(pt), host, hostlen, req->path.p,
	    req->path.len, req->query.p, req->query.len, req->has_query,
	    pt->key, pt);
	if (rc == CDN_ENOMEM) {
		/* Not a bypass: an unsafe method must still invalidate. */
		edge_deliver_error(pt, cs, 503);
		return 1;
	}
	if (rc == CDN_OK)
		pt->has_key = 1;
	if (req->method != HTTP_M_GET && req->method != HTTP_M_HEAD) {
		snprintf(
		    pt->cache_status, sizeof(pt->cache_status), "fwd=method");
		EDGE_COUNTER_INC(w, cache_bypass);
		return 0;
	}
	if (!pt->has_key || bypassed(pt->site->conf, req)) {
		snprintf(
		    pt->cache_status, sizeof(pt->cache_status), "fwd=bypass");
		EDGE_COUNTER_INC(w, cache_bypass);
		return 0;
	}
	/*
	 * RFC 9110 §9.3.1: a GET body has no defined meaning, but an origin
	 * may answer by it, and the key ignores it: storing that answer, or
	 * serving a stored one, would let one client's body decide what
	 * others get.  It goes to the origin with its body, and no further
	 * (README, "What the proxy does").
	 */
	if (edge_stream_has_body(cs)) {
		snprintf(pt->cache_status, sizeof(pt->cache_status),
		    "fwd=bypass; detail=request-body");
		EDGE_COUNTER_INC(w, cache_bypass);
		return 0;
	}
	parse_request_directives(pt, req, &bus_field, &nbus);
	pt->x.method_get_or_head = 1;
	pt->cache_on = 1;
	pt->range_upstream = edge_variant_is_large(e, pt->key);
	/* Fill the cache from a HEAD miss too: fetch GET, send the head. */
	if (req->method == HTTP_M_HEAD && !pt->x.req_cc.no_store)
		pt->head_as_get = 1;
	/* The tier race: a fleet node that applied a purge we have not may
	 * not get what that purge covers from us.  The answer may be
	 * stored: it is the origin's, newer than the purge. */
	if (nbus > 0 && edge_bus_behind(w, cs, bus_field, nbus)) {
		snprintf(pt->cache_status, sizeof(pt->cache_status),
		    "fwd=miss; detail=bus-behind");
		goto miss;
	}

	rc = find_stored(
	    e, req, pt->key, &o, &from_memory, &has_vary, &vary_miss);
	if (vary_miss) {
		/* A Vary rule we cannot read (too long) or apply: never guess
		 * a variant. */
		snprintf(pt->cache_status, sizeof(pt->cache_status),
		    "fwd=vary-miss");
		goto miss;
	}
	if (rc == CDN_ELIMIT) {
		/* RFC 9110 §12.5.3: no stored coding is acceptable.  The
		 * answer varies on Accept-Encoding like the codings do. */
		static const char body[] = "406 Not Acceptable\n";
		struct cdn_strbuf f = {.max = 1024};

		snprintf(pt->cache_status, sizeof(pt->cache_status),
		    "hit; detail=not-acceptable");
		cdn_sb_str(&f,
		    "Content-Type: text/plain\r\nVary: Accept-Encoding\r\n");
		edge_deliver_cache_status(pt, pt->cache_status, &f);
		pt->responded = 1;
		edge_stream_respond(cs, 406, f.p, f.len, sizeof(body) - 1);
		edge_stream_write(cs, body, sizeof(body) - 1);
		cdn_sb_free(&f);
		edge_stream_finish(cs); /* pt dies here */
		return 1;
	}
	if (rc != CDN_OK) {
		pt->decoding = rc == CDN_AGAIN;
		cdn_strlcpy(pt->cache_status,
		    has_vary ? "fwd=vary-miss" : "fwd=uri-miss",
		    sizeof(pt->cache_status));
		goto miss;
	}
	now = time(NULL);
	age = cache_current_age(o->d.initial_age_s, o->response_time, now);
	if (cache_obj_soft_purged(o) && age < o->d.freshness_s)
		age = o->d.freshness_s; /* soft purge: stale from now on */
	d = effective_decision(pt->site, o);
	use = cache_policy_use(&d, age, &pt->x.req_cc, pt->pragma_no_cache);
	/* Only what would be served without asking the origin asks the
	 * bus. */
	bus = use == CACHE_USE_FRESH || use == CACHE_USE_STALE_OK ||
	        use == CACHE_USE_STALE_REVALIDATE ||
	        (pt->x.req_cc.only_if_cached && use != CACHE_USE_MISS)
	    ? edge_bus_hit(w)
	    : CACHE_BUS_SERVE;
	if (bus == CACHE_BUS_REVALIDATE) {
		/* The node cannot prove it has every purge: as a soft-purged
		 * object, but asked about before it is served (no stale-while-
		 * revalidate, max-stale or only-if-cached answer from it). */
		use = CACHE_USE_REVALIDATE;
		EDGE_COUNTER_INC(w, bus_hits_revalidated);
	} else if (use == CACHE_USE_FRESH || use == CACHE_USE_STALE_OK ||
	    (pt->x.req_cc.only_if_cached && use != CACHE_USE_MISS &&
	        !o->d.must_revalidate && !o->d.no_cache)) {
		hit_status(pt, o->d.freshness_s - age);
		if (bus == CACHE_BUS_SERVE_OFFLINE)
			cache_status_add(pt, "; detail=bus-offline");
		/* A large object on disk stays metadata here: its body is
		 * read as the client takes it (disk_open). */
		if (edge_variant_load_body(e, req, &o, 0) != CDN_OK)
			goto unreadable;
		cache_store_touch(e->store, o);
		if (o->chunks == NULL && o->nchunks > 0 &&
		    (rd = disk_open(pt, req, &o)) == NULL)
			goto unreadable;
		if (from_memory)
			EDGE_COUNTER_INC(w, cache_hits_memory);
		else
			EDGE_COUNTER_INC(w, cache_hits_disk);
		EDGE_SITE_COUNTER_INC(w, pt->site, hits);
		if (bus == CACHE_BUS_SERVE_OFFLINE)
			EDGE_COUNTER_INC(w, bus_hits_offline);
		if (rd != NULL) {
			send_from_disk(pt, rd, age);
			return 1;
		}
		edge_deliver_stored_at_age(pt, o, age);
		cache_obj_unref(&o);
		edge_stream_finish(cs); /* pt dies here */
		return 1;
	}
	if (use == CACHE_USE_STALE_REVALIDATE && !pt->x.req_cc.only_if_cached) {
		/* RFC 5861 §3: answer stale now, refresh once behind it. */
		snprintf(pt->cache_status, sizeof(pt->cache_status),
		    "hit; ttl=%lld; fwd=stale; detail=stale-while-revalidate",
		    (long long)(o->d.freshness_s - age));
		/* The refresh may end in a 304, whose merged object is made
		 * from this one's body: all of it. */
		if (edge_variant_load_body(e, req, &o, 1) != CDN_OK)
			goto unreadable;
		if (from_memory)
			EDGE_COUNTER_INC(w, cache_hits_memory);
		else
			EDGE_COUNTER_INC(w, cache_hits_disk);
		pt->stale = o;
		pt->swr = 1;
		return 0;
	}
	if (use == CACHE_USE_MISS) {
		cache_obj_unref(&o);
		snprintf(
		    pt->cache_status, sizeof(pt->cache_status), "fwd=request");
		goto miss;
	}
	/* Stale, or the request asked for validation: ask the origin. */
	if (edge_variant_load_body(e, req, &o, 1) != CDN_OK)
		goto unreadable;
	pt->stale = o;
	snprintf(pt->cache_status, sizeof(pt->cache_status), "%s",
	    (pt->x.req_cc.no_cache || pt->pragma_no_cache) ? "fwd=request"
	        : bus == CACHE_BUS_REVALIDATE
	        ? "fwd=stale; detail=bus-revalidate"
	        : "fwd=stale");
	EDGE_COUNTER_INC(w, cache_revalidations);
	if (!pt->x.req_cc.only_if_cached)
		return 0;
	cache_obj_unref(&pt->stale);
	goto miss;
unreadable:
	/* Found but not readable (replaced meanwhile, a bad chunk, the disk
	 * failing): a miss, which the origin answers. */
	snprintf(pt->cache_status, sizeof(pt->cache_status), "fwd=uri-miss");
miss:
	EDGE_COUNTER_INC(w, cache_misses);
	if (pt->x.req_cc.only_if_cached) {
		/* RFC 9111 §5.2.1.7: nothing usable stored: 504. */
		static const char body[] = "504 Gateway Timeout\n";
		struct cdn_strbuf f = {.max = 1024};

		cdn_sb_str(&f, "Content-Type: text/plain\r\n");
		edge_deliver_cache_status(
		    pt, "fwd=miss; detail=only-if-cached", &f);
		edge_stream_respond(cs, 504, f.p, f.len, sizeof(body) - 1);
		edge_stream_write(cs, body, sizeof(body) - 1);
		cdn_sb_free(&f);
		edge_stream_finish(cs); /* pt dies here */
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
	const struct http_request *req = edge_stream_request(&pt->cs);
	const char *host, *path, *q, *why;
	size_t hostlen, pathlen;
	struct http_url u;
	uint8_t key[CACHE_HASH_LEN];

	key_host(pt->site, req, &host, &hostlen);
	if (http_url_parse(v, len, &u, &why) == CDN_OK) {
		/* RFC 9111 §4.4: only on the same host. */
		if (u.authority.len != hostlen ||
		    strncasecmp(u.authority.p, host, hostlen) != 0)
			return;
		path = u.path.p;
		pathlen = (size_t)(v + len - path);
	} else if (len > 0 && v[0] == '/') {
		path = v;
		pathlen = len;
	} else {
		return;
	}
	q = memchr(path, '?', pathlen);
	if (key_for(pt->site, key_scheme(pt), host, hostlen, path,
	        q != NULL ? (size_t)(q - path) : pathlen,
	        q != NULL ? q + 1 : "",
	        q != NULL ? (size_t)(path + pathlen - q - 1) : 0, q != NULL,
	        key, NULL) == CDN_OK)
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

/* The stored copy of a response head, without Age and Cache-Status, at
 * <out> (room for <len> bytes); returns its length. */
static size_t
stored_fields(const char *fields, size_t len, char *out)
{
	const char *p, *end = fields + len, *eol, *colon;
	size_t n = 0;

	for (p = fields; p < end; p = eol + 1) {
		eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == NULL)
			break;
		colon = memchr(p, ':', (size_t)(eol - p));
		if (colon != NULL &&
		    (slice_is(p, (size_t)(colon - p), "age") ||
		        slice_is(p, (size_t)(colon - p), "cache-status")))
			continue;
		memcpy(out + n, p, (size_t)(eol + 1 - p));
		n += (size_t)(eol + 1 - p);
	}
	return n;
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

struct cache_obj *
edge_cache_merge_304(const struct cache_policy_conf *policy,
    const struct cache_exchange *req_x, uint64_t purge_gen,
    const struct cache_obj *old, const char *fields, size_t len,
    struct cache_decision *d)
{
	struct cdn_strbuf merged = {.max = 256 * 1024};
	const char *p, *end = old->fields + old->fields_len, *eol, *colon;
	char *stored;
	struct cache_exchange x;
	struct cache_obj *o;
	uint64_t off = 0, n;

	for (p = old->fields; p < end; p = eol + 1) {
		eol = memchr(p, '\n', (size_t)(end - p));
		colon = memchr(p, ':', (size_t)(eol - p));
		if (colon != NULL &&
		    has_field(fields, len, p, (size_t)(colon - p)))
			continue; /* the 304's value replaces it */
		cdn_sb_add(&merged, p, (size_t)(eol + 1 - p));
	}
	stored = malloc(len + 1);
	if (stored != NULL)
		cdn_sb_add(&merged, stored, stored_fields(fields, len, stored));
	free(stored);
	if (stored == NULL || merged.failed) {
		cdn_sb_free(&merged);
		return NULL;
	}
	x = *req_x;
	cache_exchange_parse_response(&x, merged.p, merged.len);
	x.status = old->status;
	cache_policy_decide(policy, &x, d);
	if (req_x->req_cc.no_store)
		d->storable = 0;
	o = cache_obj_new(old->key, old->variant, old->status, d,
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
		/* Validated now: purges before this request no longer apply
		 * to it; its tags are the stored response's. */
		o->purge_gen = purge_gen;
		if (old->tags_len > 0 &&
		    cache_obj_set_tags(o, old->tags, old->tags_len) != CDN_OK)
			cache_obj_unref(&o);
	}
	return o;
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
	struct cache_decision d;
	struct cache_obj *o;

	o = edge_cache_merge_304(&pt->site->policy, &pt->x, pt->purge_gen,
	    pt->stale, out->p, out->len, &d);
	if (o == NULL)
		return 0; /* no memory: the origin's 304 goes to the client */
	EDGE_COUNTER_INC(w, cache_not_modified);
	snprintf(pt->cache_status, sizeof(pt->cache_status),
	    "fwd=stale; fwd-status=304%s",
	    d.storable ? edge_cache_store_note(e) : "");
	if (d.storable) {
		pt->not_stored =
		    edge_cache_store(w, o, edge_variant_recodable(e, o));
		pt->stored = pt->not_stored == NULL;
	}
	pt->served = 1;
	edge_deliver_stored(pt, o);
	cache_obj_unref(&o);
	cache_obj_unref(&pt->stale);
	return 1;
}

struct cache_obj *
edge_cache_new_obj(const uint8_t key[CACHE_HASH_LEN], uint64_t variant,
    int status, const struct cache_decision *d, int64_t response_time,
    const char *url, size_t url_len, const char *client_fields,
    size_t fields_len, int age_or_status, const char *vary, size_t vary_len)
{
	char stack[STORED_FIELDS_STACK], *buf;
	struct cache_obj *o;

	if (fields_len > STORED_FIELDS_MAX)
		return NULL;
	/* Nothing to leave out (and no unended last line, which the filter
	 * drops): stored as they are, without a walk and a copy. */
	if (!age_or_status && fields_len > 0 &&
	    client_fields[fields_len - 1] == '\n')
		return cache_obj_new(key, variant, status, d, response_time,
		    url, url_len, client_fields, fields_len, vary, vary_len);
	buf = fields_len <= sizeof(stack) ? stack : malloc(fields_len);
	if (buf == NULL)
		return NULL;
	o = cache_obj_new(key, variant, status, d, response_time, url, url_len,
	    buf, stored_fields(client_fields, fields_len, buf), vary, vary_len);
	if (buf != stack)
		free(buf);
	return o;
}

/* Responses with codings vary on Accept-Encoding: say so downstream and
 * in the stored head. */
static void
merge_vary_ae(struct cdn_strbuf *out)
{
	struct cdn_strbuf m = {.max = out->max};

	if (out->failed)
		return;
	cache_vary_merge_ae(out->p, out->len, &m);
	if (m.failed) {
		cdn_sb_free(&m);
		return;
	}
	cdn_sb_free(out);
	*out = m;
}

/*
 * What of an origin response is stored, by either path (a lone fetch or a
 * shared one): decides with the site's policy and the request <x> (its
 * response fields are filled here), merges Vary: Accept-Encoding into
 * <out> (the client's head) where codings apply, and returns a new object
 * to fill, or NULL when nothing is stored (*d says why if not storable).
 * <rf>/<nrf>: the request's fields for the Vary key (-1: too many);
 * <decoding>: an identity copy of a coded response is being made.
 * *recodablep: whether the object, once stored, is one to make codings of
 * (edge_variant_compressible_head), for edge_cache_store.
 */
struct cache_obj *
edge_cache_fill_obj(struct edge *e, const struct edge_site *site,
    struct cache_exchange *x, const uint8_t key[CACHE_HASH_LEN],
    const char *key_url, size_t key_url_len, const struct cache_field *rf,
    int nrf, int decoding, uint64_t purge_gen, int status, const char *fields,
    size_t len, int64_t content_length, struct cdn_strbuf *out,
    struct cache_decision *d, int *recodablep)
{
	struct cache_head_scan hs;
	struct cache_obj *o;
	const struct cache_name *tag_fields;
	uint64_t variant = 0;
	unsigned ntag_fields;
	int store, coding, recodable = 0;

	x->status = status;
	tag_fields = edge_purge_tag_fields(e, &ntag_fields);
	cache_exchange_parse_head(x, fields, len, tag_fields, ntag_fields, &hs);
	cache_policy_decide(&site->policy, x, d);
	store = d->storable && !x->req_cc.no_store && status != 206 &&
	    (content_length < 0 ||
	        (uint64_t)content_length <= e->conf->max_object_size);
	if (content_length >= 0 &&
	    (uint64_t)content_length > e->conf->max_object_size)
		edge_variant_note_large(e, key);
	/* The coding is part of the variant id; others are not stored. */
	coding = hs.coding;
	if (coding == CACHE_ENC_IDENTITY)
		recodable = edge_variant_compressible_head(
		    e, &hs, x->cc.no_transform, content_length);
	if (coding < 0 || (coding != CACHE_ENC_IDENTITY && decoding))
		store = 0;
	else if (coding != CACHE_ENC_IDENTITY || recodable)
		merge_vary_ae(out);
	if (store && hs.vary != NULL &&
	    (nrf < 0 || hs.vary_len > VARY_MAX ||
	        cache_vary_key(hs.vary, hs.vary_len, rf, (unsigned)nrf,
	            &variant) != CDN_OK))
		store = 0;
	if (!store)
		return NULL;
	variant = cache_variant_id(variant, (enum cache_enc)coding);
	o = edge_cache_new_obj(key, variant, status, d, x->response_time,
	    key_url, key_url_len, out->p, out->len, hs.age_or_status,
	    hs.vary != NULL ? hs.vary : "", hs.vary_len);
	/* Tags for purges, and the purge seq when the request began: a
	 * purge during the fetch outranks what it stores. */
	if (o != NULL &&
	    edge_purge_on_fill(
	        e, o, fields, len, hs.may_have_tags, purge_gen) != CDN_OK)
		cache_obj_unref(&o);
	*recodablep = recodable;
	return o;
}

int
edge_cache_on_head(struct proxy_txn *pt, int status, const char *fields,
    size_t len, struct cdn_strbuf *out)
{
	struct edge_worker *w = pt->w;
	struct edge *e = w->edge;
	const struct http_request *req = edge_stream_request(&pt->cs);
	struct cache_field rf[VARY_FIELDS];
	struct cache_decision d;
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
	if (pt->stale != NULL && status >= 500) {
		char why[16];

		snprintf(why, sizeof(why), "%d", status);
		/* The origin's body is discarded; on_done finishes. */
		if (edge_cache_serve_stale_on_error(pt, status, why, 0))
			return 1;
	}
	if (pt->stale != NULL)
		cache_obj_unref(&pt->stale); /* a full response replaces it */
	nf = edge_cache_request_fields(req, rf, VARY_FIELDS);
	pt->fill = edge_cache_fill_obj(pt->w->edge, pt->site, &pt->x, pt->key,
	    pt->key_url, pt->key_url_len, rf, nf, pt->decoding, pt->purge_gen,
	    status, fields, len, pt->content_length, out, &d,
	    &pt->fill_recodable);
	store = pt->fill != NULL;
	if (store)
		cache_status_add(pt, edge_cache_store_note(e));
	else if (!store && d.reason != NULL &&
	    strlen(pt->cache_status) + strlen(d.reason) + 10 <
	        sizeof(pt->cache_status) &&
	    !d.storable) {
		strcat(pt->cache_status, "; detail=");
		strcat(pt->cache_status, d.reason);
	}
field:
	edge_deliver_status_field(pt, out);
	if (pt->fill != NULL)
		edge_deliver_tags_field(
		    pt, pt->fill->tags, pt->fill->tags_len, out);
	return 0;
}

void
edge_cache_on_body(struct proxy_txn *pt, const char *data, size_t len)
{
	uint64_t max = pt->w->edge->conf->max_object_size;

	if (pt->fill == NULL)
		return;
	if (pt->fill->body_len + len > max) {
		edge_variant_note_large(pt->w->edge, pt->key);
		cache_obj_unref(&pt->fill); /* streams on, uncached */
		pt->not_stored = "too-large";
	} else if (cache_obj_append(pt->fill, data, len) != CDN_OK) {
		cache_obj_unref(&pt->fill);
		pt->not_stored = "no-memory";
	}
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
		pt->not_stored =
		    edge_cache_store(w, pt->fill, pt->fill_recodable);
		pt->stored = pt->not_stored == NULL;
		/* Cacheable again: the next misses may share a fetch. */
		edge_inflight_clear_hfm(w->edge->inflight, pt->key);
	}
	cache_obj_unref(&pt->fill);
}

const char *
edge_cache_store(struct edge_worker *w, struct cache_obj *o, int recodable)
{
	int rc;

	/* A large body goes to the memory tier in a sealed file, which a
	 * plain HTTP/1.1 hit sends without a copy. */
	cache_obj_seal(o);
	rc = cache_store_put(w->edge->store, o);
	edge_variant_stored(w->edge, o, recodable);
	EDGE_COUNTER_INC(w, cache_stores);
	if (rc == CDN_OK)
		return NULL;
	return rc == CDN_EIO ? "store-failing" : "store-refused";
}

const char *
edge_cache_store_note(struct edge *e)
{
	return cache_store_failing(e->store) != NULL ? "; detail=store-failing"
	                                             : "; stored";
}

void
edge_cache_log_status(struct proxy_txn *pt)
{
	char *p = strstr(pt->cache_status, "; stored");
	char detail[48];

	if (p == NULL || pt->stored)
		return;
	/* The head promised what the end did not keep: take it back. */
	memmove(p, p + 8, strlen(p + 8) + 1);
	snprintf(detail, sizeof(detail), "; detail=%s",
	    pt->not_stored != NULL ? pt->not_stored : "incomplete");
	cache_status_add(pt, detail);
}

void
edge_cache_txn_free(struct proxy_txn *pt)
{
	if (pt->stale != NULL)
		cache_obj_unref(&pt->stale);
	if (pt->fill != NULL)
		cache_obj_unref(&pt->fill);
	edge_range_stream_free(&pt->range);
	edge_range_disk_free(&pt->disk);
	if (pt->key_url != pt->key_url_room)
		free(pt->key_url);
	pt->key_url = NULL;
}

/* ---- set-up ---- */

/*
 * Open the store; a damaged one is moved aside and a fresh one opened.
 * A cache that cannot be opened at all (a read-only file system, no
 * permission, the move failing) leaves the node proxy-only, with the
 * reason in e->cache_off: a bad disk never stops the node.
 */
static void
store_open(struct edge *e, const struct cache_store_conf *sc)
{
	struct cache_open_err err;
	char aside[CACHE_WHY_LEN + PATH_MAX], why[CACHE_WHY_LEN];

	e->store = cache_store_open_diag(sc, &err);
	if (e->store == NULL && err.kind == CACHE_OPEN_DAMAGED) {
		if (cache_store_move_aside(sc->dir, MOVE_ASIDE_WAIT_MS, aside,
		        sizeof(aside), why, sizeof(why)) != CDN_OK) {
			CDN_LOG(CDN_LOG_ERR, "cache",
			    "damaged cache %s not moved aside: %s", sc->dir,
			    why);
			snprintf(e->cache_off, sizeof(e->cache_off),
			    "damaged, not moved aside: %s", why);
			return;
		}
		CDN_LOG(CDN_LOG_WARN, "cache",
		    "damaged cache (%s) moved aside to %s, kept for "
		    "inspection; starting with an empty cache",
		    err.why, aside);
		e->store = cache_store_open_diag(sc, &err);
	}
	if (e->store != NULL)
		return;
	snprintf(e->cache_off, sizeof(e->cache_off), "%s", err.why);
	CDN_LOG(CDN_LOG_ERR, "cache",
	    "cache %s disabled (%s): running proxy-only, every request goes "
	    "to the origin",
	    sc->dir, err.why);
}

int
edge_cache_init(struct edge *e)
{
	const struct conf *c = e->conf;
	struct cache_store_conf sc;

	if (c->cache_dir[0] == '\0')
		return edge_variant_init(e);
	memset(&sc, 0, sizeof(sc));
	sc.dir = c->cache_dir;
	sc.disk_bytes = c->cache_size;
	sc.memory_bytes = c->memory_size;
	sc.max_object_bytes = c->max_object_size;
	sc.is_preallocated = c->cache_preallocate != 0;
	sc.high_water_pct = 90;
	sc.low_water_pct = 80;
	store_open(e, &sc);
	return edge_variant_init(e);
}

void
edge_cache_state(struct edge *e, char *buf, size_t cap)
{
	struct cache_store_stats st;

	if (e->cache_off[0] != '\0') {
		snprintf(buf, cap, "disabled (%s)", e->cache_off);
		return;
	}
	if (e->store == NULL) {
		snprintf(buf, cap, "off");
		return;
	}
	cache_store_stats(e->store, &st);
	snprintf(buf, cap, "%s",
	    st.damaged ? "disabled (damaged: moved aside at the next start)"
	               : "ok");
}

void
edge_cache_fini(struct edge *e)
{
	edge_variant_fini(e); /* its pool stores into the store */
	cache_store_close(&e->store);
}
