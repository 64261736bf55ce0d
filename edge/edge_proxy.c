/*
 * The request path's entry (edge/edge_stream.h): each client request is
 * routed to its site, answered from the cache (edge_cache.c), or forwarded
 * to the origin, alone or through a shared fill (edge_fill.c), and the
 * response streams back (edge_deliver.c).
 *
 * Threading: a struct proxy_txn lives on one worker, between
 * edge_proxy_begin and edge_proxy_end of its client stream; the end is
 * the one place it is freed, because it is the one call every stream ends
 * with (answered, aborted or refused).
 *
 * Flow control both ways: origin bytes are taken only while the client's
 * stream is not congested (else the curl transfer is paused until
 * edge_proxy_writable), and request body bytes are handed to curl only
 * as the client sends them (else the upload is paused until
 * edge_proxy_body).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <xxhash.h>

#include "edge/edge_deliver.h"
#include "edge/edge_int.h"
#include "edge/edge_stream.h"
#include "http/http_fields.h"

#define FIELDS_MAX (128 * 1024) /* forwarded head size cap */

static void forward(struct proxy_txn *pt, int may_coalesce);
static const struct origin_fetch_ops origin_ops;

static int
name_is(const struct http_slice *s, const char *name)
{
	return http_slice_eq_ci(*s, name);
}

/* ---- building the origin request ---- */

/* Append "Name: value" and a NUL: the fields are split at NULs later. */
static void
sb_field(struct cdn_strbuf *b, const char *name, size_t nlen, const char *v,
    size_t vlen)
{
	cdn_sb_add(b, name, nlen);
	/* curl drops "Name:" lines; "Name;" is how it sends an empty value. */
	if (vlen == 0) {
		cdn_sb_add(b, ";", 2);
		return;
	}
	cdn_sb_add(b, ": ", 2);
	cdn_sb_add(b, v, vlen);
	cdn_sb_add(b, "", 1);
}

static int
method_forwarded(enum http_method m)
{
	switch (m) {
	case HTTP_M_GET:
	case HTTP_M_HEAD:
	case HTTP_M_POST:
	case HTTP_M_PUT:
	case HTTP_M_DELETE:
	case HTTP_M_PATCH:
	case HTTP_M_OPTIONS:
		return 1;
	default:
		return 0;
	}
}

static struct proxy_txn *
proxy_txn_new(struct edge_worker *w, const struct edge_stream *cs)
{
	struct proxy_txn *pt = cdn_xcalloc(1, sizeof(*pt));

	pt->magic = PROXY_TXN_MAGIC;
	pt->w = w;
	pt->cs = *cs;
	pt->content_length = -1;
	cs->ops->set_txn(cs->s, pt);
	return pt;
}

/* The Host the origin sees. */
static void
origin_host(const struct edge_site *site, const struct http_request *req,
    const char **host, size_t *len)
{
	if (site->conf->origin_host[0] != '\0') {
		*host = site->conf->origin_host;
		*len = strlen(*host);
	} else if (req->target_form == HTTP_TARGET_ABSOLUTE) {
		/* RFC 9112 §3.2.2: the target's authority replaces Host. */
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

/*
 * The site for the request's Host (the target's authority in absolute
 * form, RFC 9112 §3.2.2).  NULL after answering 421 when no site has the
 * name and there is no default site: RFC 9110 §15.5.20 says this node
 * cannot answer for that origin, which tells a client or a load balancer
 * that the request came to the wrong place (a 404 would read as "this site
 * has no such page", and be cached as such).
 */
static const struct edge_site *
route(struct edge_worker *w, const struct edge_stream *cs)
{
	const struct http_request *req = edge_stream_request(cs);
	const struct edge_site *site;
	struct http_slice h;

	h = req->target_form == HTTP_TARGET_ABSOLUTE ? req->authority
	                                             : req->host;
	site = edge_sites_lookup(w->edge->sites, h.p, h.len);
	if (site != NULL) {
		EDGE_SITE_COUNTER_INC(w, site, requests);
		return site;
	}
	EDGE_COUNTER_INC(w, unknown_host);
	edge_deliver_node_answer(w->edge, cs, 421, "",
	    "421 Misdirected Request: this node serves no site of that name\n",
	    "fwd=bypass; detail=unknown-host");
	return NULL;
}

/* What consistent hashing spreads by: the cache key, else the target. */
static uint64_t
request_hash(const struct proxy_txn *pt, const char *target, size_t len)
{
	uint64_t h = 0;

	if (!pt->has_key)
		return XXH3_64bits(target, len);
	memcpy(&h, pt->key,
	    sizeof(h) < sizeof(pt->key) ? sizeof(h) : sizeof(pt->key));
	return h;
}

void
edge_proxy_begin(struct edge_worker *w, const struct edge_stream *cs)
{
	const struct http_request *req = edge_stream_request(cs);
	struct proxy_txn *pt;
	const struct edge_site *site;

	if (!method_forwarded(req->method)) {
		/* We do not know what the method means for what follows it. */
		edge_stream_set_close(cs);
		edge_deliver_node_answer(w->edge, cs, 501, "",
		    "501 Not Implemented\n", "fwd=bypass; detail=method");
		return;
	}
	if (req->target_form == HTTP_TARGET_ASTERISK) {
		edge_deliver_node_answer(w->edge, cs, 200,
		    "Allow: GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS\r\n",
		    "", "fwd=bypass");
		return;
	}
	site = route(w, cs);
	if (site == NULL)
		return; /* answered */
	pt = proxy_txn_new(w, cs);
	pt->site = site;
	if (edge_cache_request(pt))
		return; /* answered from cache: pt is gone */
	forward(pt, 1);
}

/* A client a shared fill cannot keep fetches alone, never shared again. */
static void
fetch_alone(struct proxy_txn *pt)
{
	forward(pt, 0);
}

static const struct edge_fill_hooks fill_hooks = {
    .fetch_alone = fetch_alone,
    .client_ops = &origin_ops,
};

/* Build the origin request for <pt> and start it (sharing it if
 * <may_coalesce>), or answer an error. */
static void
forward(struct proxy_txn *pt, int may_coalesce)
{
	struct edge_worker *w = pt->w;
	struct edge *e = w->edge;
	const struct conf *cf = e->conf;
	const struct edge_stream *cs = &pt->cs;
	const struct http_request *req = edge_stream_request(cs);
	struct http_conn_tokens ct = {.n = 0};
	struct cdn_strbuf url = {.max = FIELDS_MAX}, fb = {.max = FIELDS_MAX};
	struct cdn_strbuf via = {.max = FIELDS_MAX}, xff = {.max = FIELDS_MAX};
	struct origin_request oreq;
	const char **fields = NULL;
	const char *host;
	size_t hostlen, nfields = 0, i;
	int has_accept = 0;
	char method[32];

	for (i = 0; i < req->n_headers; i++)
		if (name_is(&req->headers[i].name, "connection"))
			http_conn_tokens_add(&ct, req->headers[i].value.p,
			    req->headers[i].value.len);

	for (i = 0; i < req->n_headers; i++) {
		const struct http_header *h = &req->headers[i];

		if (http_field_is_hop_by_hop(h->name.p, h->name.len) ||
		    http_conn_tokens_has(&ct, h->name.p, h->name.len) ||
		    name_is(&h->name, "content-length") ||
		    name_is(&h->name, "expect") || name_is(&h->name, "host") ||
		    name_is(&h->name, "x-forwarded-proto") ||
		    edge_cache_drops_field(pt, h->name.p, h->name.len))
			continue;
		if (name_is(&h->name, "via")) {
			cdn_sb_add(&via, h->value.p, h->value.len);
			cdn_sb_add(&via, ", ", 2);
			continue;
		}
		if (name_is(&h->name, "x-forwarded-for")) {
			cdn_sb_add(&xff, h->value.p, h->value.len);
			cdn_sb_add(&xff, ", ", 2);
			continue;
		}
		if (name_is(&h->name, "accept"))
			has_accept = 1;
		sb_field(&fb, h->name.p, h->name.len, h->value.p, h->value.len);
	}
	origin_host(pt->site, req, &host, &hostlen);
	sb_field(&fb, "Host", 4, host, hostlen);
	cdn_sb_str(&via, "1.1 ");
	cdn_sb_str(&via, cf->via);
	sb_field(&fb, "Via", 3, via.p, via.len);
	cdn_sb_str(&xff, edge_stream_client_addr(cs));
	sb_field(&fb, "X-Forwarded-For", 15, xff.p, xff.len);
	sb_field(&fb, "X-Forwarded-Proto", 17,
	    edge_stream_is_tls(cs) ? "https" : "http",
	    edge_stream_is_tls(cs) ? 5 : 4);
	if (!has_accept)
		cdn_sb_add(&fb, "Accept:", 8); /* no curl default */
	edge_cache_origin_fields(pt, &fb);

	/* The target: the pool puts a server's base URL in front. */
	edge_cache_origin_path(pt, req, &url);
	if (req->has_query) {
		cdn_sb_add(&url, "?", 1);
		cdn_sb_add(&url, req->query.p, req->query.len);
	}
	if (fb.failed || url.failed || via.failed || xff.failed) {
		edge_deliver_error(pt, cs, 431);
		goto out;
	}

	/* Split the NUL-separated fields into the array curl takes. */
	for (i = 0; i < fb.len; i++)
		if (fb.p[i] == '\0')
			nfields++;
	/* As many as the client sent: fail the request, never abort. */
	fields = calloc(nfields + 1, sizeof(*fields));
	if (fields == NULL) {
		edge_deliver_error(pt, cs, 503);
		goto out;
	}
	nfields = 0;
	for (i = 0; i < fb.len; i += strlen(fb.p + i) + 1)
		fields[nfields++] = fb.p + i;
	fields[nfields] = NULL;

	if (pt->head_as_get)
		snprintf(method, sizeof(method), "GET");
	else
		snprintf(method, sizeof(method), "%.*s",
		    (int)req->method_str.len, req->method_str.p);
	memset(&oreq, 0, sizeof(oreq));
	oreq.method = method;
	oreq.pool = pt->site->pool;
	oreq.target = url.p;
	oreq.hash_key = request_hash(pt, url.p, url.len);
	oreq.fields = fields;
	oreq.is_head = req->method == HTTP_M_HEAD && !pt->head_as_get;
	/* An explicit "Content-Length: 0" is forwarded as such. */
	oreq.has_body = edge_stream_has_body(cs) || req->content_length == 0;
	oreq.body_length = edge_stream_body_length(cs);

	if (may_coalesce && edge_fill_begin(pt, &oreq, &fill_hooks))
		goto out; /* one shared fetch, or a stale answer */
	pt->used_origin = 1;
	EDGE_COUNTER_INC(w, origin_fetches);
	pt->fetch = origin_fetch_start(
	    w->origin, &oreq, &pt->site->to, &origin_ops, pt);
	if (pt->fetch == NULL) {
		pt->origin_err = ORIGIN_EINTERNAL;
		EDGE_COUNTER_INC(w, origin_errors);
		EDGE_COUNTER_INC(w, origin_err_kind[ORIGIN_EINTERNAL]);
		edge_deliver_error(pt, cs, 502);
	}
out:
	free(fields);
	cdn_sb_free(&fb);
	cdn_sb_free(&url);
	cdn_sb_free(&via);
	cdn_sb_free(&xff);
}

/* ---- origin callbacks ---- */

static void
on_origin_head(struct origin_fetch *f, void *arg, int status,
    const char *fields, size_t len, int64_t content_length)
{
	struct proxy_txn *pt = arg;
	struct cdn_strbuf out = {.max = FIELDS_MAX};

	MAGIC_CHECK(pt, PROXY_TXN_MAGIC);
	CDN_DASSERT(edge_worker_current() == pt->w);
	pt->origin_ms = origin_fetch_first_byte_ms(f);
	edge_stats_origin_head(pt->w, origin_fetch_first_byte_us(f));
	edge_deliver_client_fields(
	    pt->w->edge, pt->site, fields, len, &out, &content_length);
	pt->content_length = content_length;
	if (out.failed) {
		cdn_sb_free(&out);
		return; /* on_done answers 502: nothing was sent */
	}
	if (edge_cache_on_head(pt, status, fields, len, &out)) {
		cdn_sb_free(&out);
		return; /* answered from the stored copy */
	}
	if (out.failed) {
		cdn_sb_free(&out);
		return;
	}
	edge_deliver_range_head(
	    pt, &status, fields, len, &out, &content_length);
	pt->responded = 1;
	edge_stream_respond(&pt->cs, status, out.p, out.len, content_length);
	cdn_sb_free(&out);
}

static size_t
on_origin_body(struct origin_fetch *f, void *arg, const char *data, size_t len)
{
	struct proxy_txn *pt = arg;

	(void)f;
	MAGIC_CHECK(pt, PROXY_TXN_MAGIC);
	CDN_DASSERT(edge_worker_current() == pt->w);
	if (pt->served)
		return len; /* a 304's body, if any: not the client's */
	if (!pt->responded)
		return 0; /* the head was refused: abort the transfer */
	if (edge_stream_congested(&pt->cs))
		return ORIGIN_PAUSE;
	edge_cache_on_body(pt, data, len);
	edge_deliver_body(pt, data, len);
	return len;
}

static size_t
on_origin_upload(struct origin_fetch *f, void *arg, char *buf, size_t max)
{
	struct proxy_txn *pt = arg;
	long n;

	(void)f;
	MAGIC_CHECK(pt, PROXY_TXN_MAGIC);
	CDN_DASSERT(edge_worker_current() == pt->w);
	n = edge_stream_body_read(&pt->cs, buf, max);
	if (n >= 0)
		return (size_t)n;
	/* CDN_AGAIN: on_body resumes us; CDN_EINVAL: on_abort follows. */
	return ORIGIN_PAUSE;
}

static void
on_origin_done(struct origin_fetch *f, void *arg, enum origin_err err)
{
	struct proxy_txn *pt = arg;
	struct edge_worker *w = pt->w;
	const struct edge_stream *cs = &pt->cs;

	(void)f;
	MAGIC_CHECK(pt, PROXY_TXN_MAGIC);
	CDN_DASSERT(edge_worker_current() == pt->w);
	pt->fetch = NULL;
	pt->origin_err = err;
	edge_count_origin_error(w, err);
	edge_cache_on_done(pt, err);
	/* pt dies in edge_proxy_end, inside finish/abort/error below. */
	if (pt->served)
		edge_stream_finish(cs); /* the stored copy was complete */
	else if (err == ORIGIN_OK && pt->responded)
		edge_stream_finish(cs);
	else if (pt->responded)
		edge_stream_abort(cs); /* truncated: never complete-looking */
	else if (edge_cache_serve_stale_on_error(
	             pt, 0, origin_err_name(err), 1))
		return; /* stale-if-error: pt is gone */
	else
		edge_deliver_error(pt, cs, origin_err_status(err));
}

static const struct origin_fetch_ops origin_ops = {
    .on_head = on_origin_head,
    .on_body = on_origin_body,
    .on_upload = on_origin_upload,
    .on_done = on_origin_done,
};

/* ---- the client stream (edge_stream.h) ---- */

void
edge_proxy_body(struct proxy_txn *pt)
{
	MAGIC_CHECK(pt, PROXY_TXN_MAGIC);
	if (pt->fetch != NULL)
		origin_fetch_resume_upload(pt->fetch);
}

void
edge_proxy_writable(struct proxy_txn *pt)
{
	MAGIC_CHECK(pt, PROXY_TXN_MAGIC);
	if (pt->fetch != NULL)
		origin_fetch_resume_body(pt->fetch);
	else if (pt->waiter != NULL)
		edge_fill_writable(pt); /* more of a shared fetch's body */
	else if (pt->disk != NULL)
		edge_cache_writable(pt); /* more of a stored body on disk */
}

void
edge_proxy_aborted(struct proxy_txn *pt)
{
	MAGIC_CHECK(pt, PROXY_TXN_MAGIC);
	origin_fetch_cancel(&pt->fetch);
	edge_fill_detach(pt); /* a shared fetch goes on for the others */
}

static int
status_class(int status)
{
	if (status < 100 || status > 599)
		return 0;
	return status / 100;
}

static enum edge_from
response_from(const struct proxy_txn *pt)
{
	if (pt == NULL || !pt->responded)
		return EDGE_FROM_EDGE; /* the node's own answer, or none */
	if (pt->served || !pt->used_origin)
		return EDGE_FROM_CACHE;
	return EDGE_FROM_ORIGIN;
}

void
edge_proxy_end(struct edge_worker *w, const struct edge_stream *cs,
    struct proxy_txn *pt, const struct edge_stream_end *end)
{
	const struct http_request *req = edge_stream_request(cs);
	uint64_t dur_ms = (cdn_now_ns() - end->start_ns) / 1000000u;
	int status = end->status;
	char ts[40], origin[64];

	EDGE_COUNTER_INC(w, requests);
	if (strcmp(end->protocol, "HTTP/2") == 0)
		EDGE_COUNTER_INC(w, requests_h2);
	else
		EDGE_COUNTER_INC(w, requests_h1);
	EDGE_COUNTER_INC(w, status[status_class(status)]);
	EDGE_COUNTER_ADD(w, bytes_sent, end->bytes_sent);
	EDGE_COUNTER_INC(
	    w, req_class[edge_method_class(req->method)][status_class(status)]);
	EDGE_COUNTER_ADD(w, bytes_from[response_from(pt)], end->bytes_sent);
	if (end->aborted)
		EDGE_COUNTER_INC(w, client_aborts);
	/* Refused by the protocol layer (parse, limits, body framing). */
	if (end->error != NULL && !end->aborted && status >= 400)
		EDGE_COUNTER_INC(w, bad_requests);

	if (w->alog != NULL) {
		if (pt != NULL)
			edge_cache_log_status(pt);
		cdn_log_timestamp(ts, sizeof(ts));
		if (pt != NULL && pt->used_origin)
			snprintf(origin, sizeof(origin), "%llu %s",
			    (unsigned long long)pt->origin_ms,
			    origin_err_name(pt->origin_err));
		else
			snprintf(origin, sizeof(origin), "- -");
		/* time client "request" status bytes ms origin_ms origin_result
		 * "cache_status" aborted "error" */
		cdn_alog_printf(w->alog,
		    "%s %s \"%.*s %.*s %s\" %d %llu %llu %s \"%s\" %s \"%s\"",
		    ts, edge_stream_client_addr(cs),
		    (int)(req->method_str.len < 32 ? req->method_str.len : 32),
		    req->method_str.p != NULL ? req->method_str.p : "",
		    (int)(req->target.len < 2048 ? req->target.len : 2048),
		    req->target.p != NULL ? req->target.p : "", end->protocol,
		    status, (unsigned long long)end->bytes_sent,
		    (unsigned long long)dur_ms, origin,
		    pt != NULL && pt->cache_status[0] != '\0' ? pt->cache_status
		                                              : "-",
		    end->aborted ? "aborted" : "-",
		    end->error != NULL ? end->error : "-");
	}
	if (pt != NULL) {
		MAGIC_CHECK(pt, PROXY_TXN_MAGIC);
		CDN_ASSERT(pt->fetch == NULL);
		edge_fill_detach(pt);
		edge_cache_txn_free(pt);
		MAGIC_WIPE(pt);
		free(pt);
	}
}
