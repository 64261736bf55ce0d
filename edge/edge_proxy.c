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

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <xxhash.h>

#include "cache/cache_bus.h"
#include "common/cdn_asan.h"
#include "edge/edge_deliver.h"
#include "edge/edge_int.h"
#include "edge/edge_stream.h"
#include "http/http_cdn_loop.h"
#include "http/http_fields.h"

#define FIELDS_MAX (128 * 1024) /* forwarded head size cap */
#define METHOD_MAX 32           /* longest method forwarded, NUL included */
/* forward()'s buffers on its stack: the target, the fields, and each of
 * the values it joins (Via, X-Forwarded-For, CDN-Loop, Accept-Encoding). */
#define FWD_URL_BUF    512
#define FWD_FIELDS_BUF 2048
#define FWD_VALUE_BUF  256

/* A worker keeps its last transaction's memory for the next; not under
 * ASan, which sees a transaction used after its free only if it is. */
#define PT_SPARE_ON (!CDN_ASAN)

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

/* What forward() does with a request field (edge_origin_fields.h). */
enum origin_field_action {
	OF_PASS = 0,
	OF_UNKEYED,
	OF_SET,
	OF_APPEND,
	OF_FRAMING,
};

static const struct {
	const char *name;
	size_t len;
	enum origin_field_action action;
} origin_fields[] = {
#define ORIGIN_FIELD(name, action, doc) {name, sizeof(name) - 1, OF_##action},
#include "edge/edge_origin_fields.h"
#undef ORIGIN_FIELD
};

static enum origin_field_action
origin_field_action(const struct http_slice *name)
{
	for (size_t i = 0; i < CDN_ARRAY_LEN(origin_fields); i++)
		if (name->len == origin_fields[i].len &&
		    strncasecmp(name->p, origin_fields[i].name, name->len) == 0)
			return origin_fields[i].action;
	return OF_PASS;
}

/* Whether origin_drop_fields / origin_pass_fields <l> names <name>. */
static int
names_field(const struct conf_strlist *l, const struct http_slice *name)
{
	for (unsigned i = 0; i < l->n; i++)
		if (http_slice_eq_ci(*name, l->v[i]))
			return 1;
	return 0;
}

/* Whether the request field <h> stays out of the origin request, or is
 * written by forward() itself. */
static int
field_held_back(const struct proxy_txn *pt, const struct http_conn_tokens *ct,
    const struct http_header *h)
{
	const struct conf *sc = pt->site->conf;

	if (http_field_is_hop_by_hop(h->name.p, h->name.len) ||
	    http_conn_tokens_has(ct, h->name.p, h->name.len) ||
	    edge_cache_drops_field(pt, h->name.p, h->name.len) ||
	    names_field(&sc->origin_drop_fields, &h->name))
		return 1;
	switch (origin_field_action(&h->name)) {
	case OF_UNKEYED:
		return !names_field(&sc->origin_pass_fields, &h->name);
	case OF_SET:
	case OF_FRAMING:
		return 1;
	default:
		return 0;
	}
}

/* The methods the node serves (OPTIONS *, and a refused PURGE's 405). */
#define ALLOW_FIELD "Allow: GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS\r\n"

/*
 * Whether the node answers <req>'s method itself (501) instead of
 * forwarding it: refuse_methods names it (methods are case-sensitive,
 * RFC 9110 §9.1), it is CONNECT, as the node tunnels nothing, or it is
 * longer than any method in use.
 */
static int
method_refused(const struct conf *cf, const struct http_request *req)
{
	if (req->method == HTTP_M_CONNECT || req->method_str.len >= METHOD_MAX)
		return 1;
	for (unsigned i = 0; i < cf->refuse_methods.n; i++)
		if (req->method_str.len == strlen(cf->refuse_methods.v[i]) &&
		    memcmp(req->method_str.p, cf->refuse_methods.v[i],
		        req->method_str.len) == 0)
			return 1;
	return 0;
}

static struct proxy_txn *
proxy_txn_new(struct edge_worker *w, const struct edge_stream *cs)
{
	struct proxy_txn *pt = w->pt_spare;

	if (pt != NULL) {
		w->pt_spare = NULL;
		/* key_url_room is written before it is read. */
		memset(pt, 0, offsetof(struct proxy_txn, key_url_room));
	} else {
		pt = cdn_xcalloc(1, sizeof(*pt));
	}
	pt->magic = PROXY_TXN_MAGIC;
	pt->w = w;
	pt->cs = *cs;
	pt->content_length = -1;
	cs->ops->set_txn(cs->s, pt);
	return pt;
}

/* The Host a parent sees: the client's, so it routes to the same site. */
static void
parent_host(const struct edge_site *site, const struct http_request *req,
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
	site = edge_sites_lookup(w->gen->sites, h.p, h.len);
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

/*
 * RFC 8586: a request whose CDN-Loop already names this node has been
 * here before; answering 508 ends the circle at once instead of when some
 * header grows past a limit.  Another node of the fleet (a shield) has
 * another node_name, so it is not a loop.  *via_cdn: whether the request
 * came through a CDN at all.
 */
static int
looped(struct edge_worker *w, const struct edge_stream *cs, int *via_cdn)
{
	const struct http_request *req = edge_stream_request(cs);

	*via_cdn = 0;
	for (unsigned i = 0; i < req->n_headers; i++) {
		const struct http_header *h = &req->headers[i];

		if (!name_is(&h->name, "cdn-loop"))
			continue;
		*via_cdn = 1;
		if (http_cdn_loop_names(
		        h->value.p, h->value.len, w->edge->node_name)) {
			EDGE_COUNTER_INC(w, loop_detected);
			edge_deliver_node_answer(w->edge, cs, 508, "",
			    "508 Loop Detected: this request has been through "
			    "this node already\n",
			    "fwd=bypass; detail=loop");
			return 1;
		}
	}
	return 0;
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
	int via_cdn;

	if (method_refused(w->gen->conf, req) && req->method == HTTP_M_PURGE) {
		/*
		 * A Varnish habit: PURGE sent to the cache's own port.  Not
		 * "not implemented" but "not here": say where purges go, by
		 * name only, as the purge listener's address is no business
		 * of a public client.
		 */
		edge_deliver_node_answer(w->edge, cs, 405, ALLOW_FIELD,
		    "405 Method Not Allowed\n"
		    "PURGE is not served on this port: send purges to the "
		    "node's purge listener (purge_listen), e.g. with "
		    "\"edgectl purge\".\n",
		    "fwd=bypass; detail=method");
		return;
	}
	if (method_refused(w->gen->conf, req)) {
		/* What follows CONNECT is a tunnel's bytes, not a request. */
		edge_stream_set_close(cs);
		edge_deliver_node_answer(w->edge, cs, 501, "",
		    "501 Not Implemented\n", "fwd=bypass; detail=method");
		return;
	}
	if (req->target_form == HTTP_TARGET_ASTERISK) {
		edge_deliver_node_answer(
		    w->edge, cs, 200, ALLOW_FIELD, "", "fwd=bypass");
		return;
	}
	if (looped(w, cs, &via_cdn))
		return; /* answered */
	site = route(w, cs);
	if (site == NULL)
		return; /* answered */
	pt = proxy_txn_new(w, cs);
	pt->site = site;
	pt->gen = w->gen; /* route() took the site from it */
	edge_gen_hold(pt->gen, w->id);
	pt->fleet_cache =
	    via_cdn && edge_bus_in_fleet(w->edge, edge_stream_client_addr(cs));
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

/*
 * What only a request to a parent carries (docs/shield.md): the client's
 * Host, so the parent routes it to the same site; Accept-Encoding:
 * identity, so the response is one this node can serve to every client
 * (it makes its own gzip and br variants, and all waiters of a shared
 * fill can take it); and with a purge bus, the bus ID this node has
 * applied, so a parent that is behind does not hand back what this node
 * has purged (the tier race).
 */
static void
parent_fields(const struct proxy_txn *pt, const struct http_request *req,
    struct cdn_strbuf *pb)
{
	struct edge *e = pt->w->edge;
	char id[CACHE_BUS_ID_MAX];
	const char *host;
	size_t hostlen;

	parent_host(pt->site, req, &host, &hostlen);
	sb_field(pb, "Host", 4, host, hostlen);
	cdn_sb_str(pb, "Accept-Encoding: identity");
	cdn_sb_add(pb, "", 1);
	if (e->conf->purge_bus[0] != '\0' && e->store != NULL) {
		cache_bus_id_format(
		    cache_bus_applied_get(cache_store_bus_page(e->store)), id);
		cdn_sb_str(pb, "Edge-Bus-Applied: ");
		cdn_sb_str(pb, id);
		cdn_sb_add(pb, "", 1);
	}
}

/* Build the origin request for <pt> (and, with parents, the parents'
 * version of it) and start it (sharing it if <may_coalesce>), or answer
 * an error. */
static void
forward(struct proxy_txn *pt, int may_coalesce)
{
	struct edge_worker *w = pt->w;
	struct edge *e = w->edge;
	const struct conf *cf = pt->gen->conf;
	const struct edge_stream *cs = &pt->cs;
	const struct http_request *req = edge_stream_request(cs);
	const struct edge_site *site = pt->site;
	struct http_conn_tokens ct = {.n = 0};
	struct cdn_strbuf url, fb, pb = {.max = FIELDS_MAX}, ae, via, xff, loop;
	struct origin_request oreq;
	const char *host;
	size_t hostlen, i, n;
	int has_accept = 0;
	char method[METHOD_MAX];
	/* Most requests build these without a malloc. */
	char url_buf[FWD_URL_BUF], fb_buf[FWD_FIELDS_BUF];
	char ae_buf[FWD_VALUE_BUF], via_buf[FWD_VALUE_BUF];
	char xff_buf[FWD_VALUE_BUF], loop_buf[FWD_VALUE_BUF];

	cdn_sb_init_buf(&url, url_buf, sizeof(url_buf), FIELDS_MAX);
	cdn_sb_init_buf(&fb, fb_buf, sizeof(fb_buf), FIELDS_MAX);
	cdn_sb_init_buf(&ae, ae_buf, sizeof(ae_buf), FIELDS_MAX);
	cdn_sb_init_buf(&via, via_buf, sizeof(via_buf), FIELDS_MAX);
	cdn_sb_init_buf(&xff, xff_buf, sizeof(xff_buf), FIELDS_MAX);
	cdn_sb_init_buf(&loop, loop_buf, sizeof(loop_buf), FIELDS_MAX);

	for (i = 0; i < req->n_headers; i++)
		if (name_is(&req->headers[i].name, "connection"))
			http_conn_tokens_add(&ct, req->headers[i].value.p,
			    req->headers[i].value.len);

	for (i = 0; i < req->n_headers; i++) {
		const struct http_header *h = &req->headers[i];

		/* Edge-Bus-Applied is SET (edge_origin_fields.h): between
		 * two fleet nodes, a client's is never passed on. */
		if (field_held_back(pt, &ct, h))
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
		/* RFC 8586 §2: kept, with our member appended. */
		if (name_is(&h->name, "cdn-loop")) {
			cdn_sb_add(&loop, h->value.p, h->value.len);
			cdn_sb_add(&loop, ", ", 2);
			continue;
		}
		if (name_is(&h->name, "accept-encoding")) {
			sb_field(&ae, h->name.p, h->name.len, h->value.p,
			    h->value.len);
			continue;
		}
		if (name_is(&h->name, "accept"))
			has_accept = 1;
		sb_field(&fb, h->name.p, h->name.len, h->value.p, h->value.len);
	}
	cdn_sb_str(&via, "1.1 ");
	cdn_sb_str(&via, cf->via);
	sb_field(&fb, "Via", 3, via.p, via.len);
	cdn_sb_str(&loop, e->node_name);
	sb_field(&fb, "CDN-Loop", 8, loop.p, loop.len);
	cdn_sb_str(&xff, edge_stream_client_addr(cs));
	sb_field(&fb, "X-Forwarded-For", 15, xff.p, xff.len);
	sb_field(&fb, "X-Forwarded-Proto", 17,
	    edge_stream_is_tls(cs) ? "https" : "http",
	    edge_stream_is_tls(cs) ? 5 : 4);
	if (!has_accept)
		cdn_sb_add(&fb, "Accept:", 8); /* no curl default */
	edge_cache_origin_fields(pt, &fb);
	/* What the two tiers share; then each its own. */
	if (site->parents != NULL) {
		cdn_sb_add(&pb, fb.p, fb.len);
		parent_fields(pt, req, &pb);
	}
	origin_host(site, req, &host, &hostlen);
	sb_field(&fb, "Host", 4, host, hostlen);
	if (ae.len > 0)
		cdn_sb_add(&fb, ae.p, ae.len);

	/* The target: the pool puts a server's base URL in front. */
	edge_cache_origin_path(pt, req, &url);
	if (req->has_query) {
		cdn_sb_add(&url, "?", 1);
		cdn_sb_add(&url, req->query.p, req->query.len);
	}
	if (fb.failed || pb.failed || url.failed || via.failed || xff.failed ||
	    loop.failed || ae.failed) {
		edge_deliver_error(pt, cs, 431);
		goto out;
	}
	if (pt->head_as_get) {
		cdn_strlcpy(method, "GET", sizeof(method));
	} else {
		n = req->method_str.len < sizeof(method) - 1
		    ? req->method_str.len
		    : sizeof(method) - 1;
		memcpy(method, req->method_str.p, n);
		method[n] = '\0';
	}
	memset(&oreq, 0, sizeof(oreq));
	oreq.method = method;
	oreq.pool = site->pool;
	oreq.target = url.p;
	oreq.hash_key = request_hash(pt, url.p, url.len);
	oreq.fields = fb.p;
	oreq.fields_len = fb.len;
	oreq.parents = site->parents;
	oreq.parent_fields = pb.p;
	oreq.parent_fields_len = pb.len;
	oreq.parent_only = site->parent_only;
	oreq.is_head = req->method == HTTP_M_HEAD && !pt->head_as_get;
	/* An explicit "Content-Length: 0" is forwarded as such. */
	oreq.has_body = edge_stream_has_body(cs) || req->content_length == 0;
	oreq.body_length = edge_stream_body_length(cs);

	if (may_coalesce && edge_fill_begin(pt, &oreq, &fill_hooks))
		goto out; /* one shared fetch, or a stale answer */
	pt->used_origin = 1;
	EDGE_COUNTER_INC(w, origin_fetches);
	pt->fetch =
	    origin_fetch_start(w->origin, &oreq, &site->to, &origin_ops, pt);
	if (pt->fetch == NULL) {
		pt->origin_err = ORIGIN_EINTERNAL;
		EDGE_COUNTER_INC(w, origin_errors);
		EDGE_COUNTER_INC(w, origin_err_kind[ORIGIN_EINTERNAL]);
		edge_deliver_error(pt, cs, 502);
	}
out:
	cdn_sb_free(&fb);
	cdn_sb_free(&pb);
	cdn_sb_free(&ae);
	cdn_sb_free(&url);
	cdn_sb_free(&via);
	cdn_sb_free(&xff);
	cdn_sb_free(&loop);
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
	cdn_strlcpy(pt->upstream,
	    origin_fetch_server(f) != NULL ? origin_fetch_server(f) : "",
	    sizeof(pt->upstream));
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

/*
 * RFC 9110 §15.2: 102 and 103 from the origin go on to the client, with
 * their fields but the hop-by-hop ones, and are never stored.  100 is not
 * forwarded: the HTTP layer answers the client's Expect itself as the body
 * is read, and the origin never sees that Expect.  101 never comes, as
 * Upgrade is not forwarded.
 */
static void
on_origin_interim(struct origin_fetch *f, void *arg, int status,
    const char *fields, size_t len)
{
	struct proxy_txn *pt = arg;
	struct cdn_strbuf out = {.max = FIELDS_MAX};
	struct http_conn_tokens ct = {.n = 0};
	const char *p, *end = fields + len, *nl, *colon;
	size_t vlen;
	const char *v;

	(void)f;
	MAGIC_CHECK(pt, PROXY_TXN_MAGIC);
	if (pt->responded || (status != 102 && status != 103))
		return;
	v = cdn_fields_get(fields, len, "connection", &vlen);
	if (v != NULL)
		http_conn_tokens_add(&ct, v, vlen);
	/* The origin's lines are whole "Name: value\r\n" (origin_fetch.c). */
	for (p = fields; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		colon = memchr(p, ':', (size_t)(nl - p));
		if (http_field_is_hop_by_hop(p, (size_t)(colon - p)) ||
		    http_conn_tokens_has(&ct, p, (size_t)(colon - p)))
			continue;
		cdn_sb_add(&out, p, (size_t)(nl + 1 - p));
	}
	if (!out.failed)
		edge_stream_interim(&pt->cs, status, out.p, out.len);
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
    .on_interim = on_origin_interim,
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
		edge_access_log(w, cs, pt, end, dur_ms);
	}
	if (pt != NULL) {
		MAGIC_CHECK(pt, PROXY_TXN_MAGIC);
		CDN_ASSERT(pt->fetch == NULL);
		edge_fill_detach(pt);
		edge_cache_txn_free(pt);
		if (pt->gen != NULL)
			edge_gen_drop(pt->gen, w->id, w->gen);
		MAGIC_WIPE(pt);
		if (PT_SPARE_ON && w->pt_spare == NULL)
			w->pt_spare = pt;
		else
			free(pt);
	}
}
