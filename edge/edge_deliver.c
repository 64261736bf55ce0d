/*
 * Delivery (edge/edge_deliver.h): what the client receives, whoever decided
 * it.  Beneath the proxy, the shared fill and the cache, so that calls run
 * one way: proxy -> fill -> cache -> delivery.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "edge/edge_deliver.h"
#include "edge/edge_int.h"
#include "edge/edge_range.h"
#include "edge/edge_stream.h"
#include "edge/edge_variant.h"
#include "http/http_date.h"
#include "http/http_fields.h"

/*
 * A stored head is built on the stack while it fits: most are a few
 * hundred bytes, and a malloc and free per hit cost more than the rest of
 * its building.  The bound is the head's own, as before.
 */
#define STORED_HEAD_BUF 2048
#define STORED_HEAD_MAX (256 * 1024)

/* ---- Cache-Status (RFC 9211) ---- */

void
edge_deliver_cache_status(
    const struct proxy_txn *pt, const char *text, struct cdn_strbuf *out)
{
	/* Every answer has one: no printf for it. */
	cdn_sb_add(out, "Cache-Status: ", 14);
	cdn_sb_str(out, pt->gen->conf->via);
	cdn_sb_add(out, "; ", 2);
	cdn_sb_str(out, text);
	cdn_sb_add(out, "\r\n", 2);
}

void
edge_deliver_status_field(const struct proxy_txn *pt, struct cdn_strbuf *out)
{
	edge_deliver_cache_status(pt,
	    pt->cache_status[0] != '\0' ? pt->cache_status : "fwd=bypass", out);
}

void
edge_deliver_tags_field(const struct proxy_txn *pt, const char *tags,
    size_t len, struct cdn_strbuf *out)
{
	if (!pt->fleet_cache || len == 0 ||
	    !edge_purge_hides_field(pt->w->edge, "surrogate-key", 13))
		return;
	cdn_sb_add(out, "Surrogate-Key: ", 15);
	cdn_sb_add(out, tags, len);
	cdn_sb_add(out, "\r\n", 2);
}

void
edge_deliver_error_field(const struct proxy_txn *pt, struct cdn_strbuf *out)
{
	const char *detail;

	/* An origin that broke HTTP (framing, an invalid field) is told
	 * apart from one that failed to answer; the log names the reason.
	 * Under parent_only the origin was never asked: say which tier
	 * failed. */
	if (pt->site != NULL && pt->site->parent_only)
		detail = pt->origin_err == ORIGIN_ENOHEALTHY ? "no-parent-up"
		                                             : "parent-error";
	else if (pt->origin_err == ORIGIN_EPROTO)
		detail = "origin-protocol-error";
	else
		detail = "origin-error";
	cdn_sb_printf(out, "Cache-Status: %s; %s; detail=%s\r\n",
	    pt->gen->conf->via,
	    pt->cache_status[0] != '\0' ? pt->cache_status : "fwd=miss",
	    detail);
}

/* ---- answers the node writes itself ---- */

void
edge_deliver_node_answer(const struct edge *e, const struct edge_stream *cs,
    int status, const char *fields, const char *body, const char *cache_status)
{
	const struct edge_worker *w = edge_worker_current();
	struct cdn_strbuf f = {0};
	size_t blen = strlen(body);

	cdn_sb_str(&f, "Content-Type: text/plain\r\n");
	cdn_sb_str(&f, fields);
	/* The worker's current generation: no transaction holds one yet. */
	cdn_sb_printf(&f, "Cache-Status: %s; %s\r\n",
	    w != NULL ? w->gen->conf->via : e->conf->via, cache_status);
	edge_stream_respond(
	    cs, status, f.p, f.failed ? 0 : f.len, (int64_t)blen);
	edge_stream_write(cs, body, blen);
	cdn_sb_free(&f);
	edge_stream_finish(cs);
}

/* An error the proxy answers itself (502, 504, ...). */
void
edge_deliver_error(
    struct proxy_txn *pt, const struct edge_stream *cs, int status)
{
	struct cdn_strbuf f = {0};
	char body[96];
	int n;

	n = snprintf(
	    body, sizeof(body), "%d %s\n", status, http_status_reason(status));
	cdn_sb_str(&f, "Content-Type: text/plain\r\n");
	edge_deliver_error_field(pt, &f);
	edge_stream_respond(cs, status, f.p, f.failed ? 0 : f.len, n);
	edge_stream_write(cs, body, (size_t)n);
	cdn_sb_free(&f);
	edge_stream_finish(cs);
}

/* ---- a response from the origin ---- */

/* What a walk of an origin's field lines found. */
struct client_walk {
	struct http_conn_tokens ct; /* the names Connection fields list */
	int has_via, chunked;
};

/* Does a field line of out->p[from..) have a name that <ct> lists? */
static int
copied_named(const struct cdn_strbuf *out, size_t from,
    const struct http_conn_tokens *ct)
{
	const char *p, *end;
	struct cdn_field fl;

	if (out->failed || out->len <= from)
		return 0;
	end = out->p + out->len;
	for (p = out->p + from; cdn_fields_next(&p, end, &fl);)
		if (http_conn_tokens_has(ct, fl.name, fl.name_len))
			return 1;
	return 0;
}

/*
 * Append to <out> the fields of fields[0..len) a client may see.  With
 * <collect>, the Connection names are taken as their fields come, and the
 * walk gives up (returns 0) when one names a field it already copied;
 * without, w->ct holds them all before it starts.
 */
static int
client_walk(const struct edge *e, const struct edge_site *site,
    const char *fields, size_t len, int collect, struct client_walk *w,
    struct cdn_strbuf *out)
{
	const char *p, *end = fields + len, *name;
	const char *via = site->conf->via;
	size_t from = out->len, nlen;
	struct cdn_field fl;

	for (p = fields; cdn_fields_next(&p, end, &fl);) {
		name = fl.name;
		nlen = fl.name_len;
		if (nlen == 10 && strncasecmp(name, "connection", 10) == 0) {
			if (!collect)
				continue; /* hop-by-hop */
			http_conn_tokens_add(&w->ct, fl.value, fl.value_len);
			if (copied_named(out, from, &w->ct))
				return 0;
			continue;
		}
		if (nlen == 17 &&
		    strncasecmp(name, "transfer-encoding", 17) == 0)
			w->chunked = 1;
		if (http_field_is_hop_by_hop(name, nlen) ||
		    http_conn_tokens_has(&w->ct, name, nlen) ||
		    (nlen == 14 &&
		        strncasecmp(name, "content-length", 14) == 0))
			continue;
		/* RFC 9213: targeted fields are for this node, not clients. */
		if (site->conf->cache_targeted &&
		    ((nlen == 17 &&
		         strncasecmp(name, "cdn-cache-control", 17) == 0) ||
		        (nlen == 17 &&
		            strncasecmp(name, "surrogate-control", 17) == 0)))
			continue;
		if (edge_purge_hides_field(e, name, nlen))
			continue;
		if (nlen == 3 && strncasecmp(name, "via", 3) == 0) {
			/* RFC 9110 §7.6.3: append ourselves to the chain. */
			cdn_sb_add(out, name, nlen);
			cdn_sb_add(out, ": ", 2);
			cdn_sb_add(out, fl.value, fl.value_len);
			cdn_sb_str(out, ", 1.1 ");
			cdn_sb_str(out, via);
			cdn_sb_add(out, "\r\n", 2);
			w->has_via = 1;
			continue;
		}
		cdn_sb_add(out, fl.line, fl.line_len);
	}
	return 1;
}

int
edge_deliver_client_fields(const struct edge *e, const struct edge_site *site,
    const char *fields, size_t len, struct cdn_strbuf *out,
    int64_t *content_length)
{
	struct client_walk w = {.ct.n = 0};
	size_t from = out->len;
	const char *p, *end = fields + len;
	struct cdn_field fl;

	/* One walk, as a Connection field rarely names a field that came
	 * before it; when one does, the copy restarts knowing every name. */
	if (!client_walk(e, site, fields, len, 1, &w, out)) {
		out->len = from;
		if (out->p != NULL)
			out->p[from] = '\0';
		memset(&w, 0, sizeof(w));
		for (p = fields; cdn_fields_next(&p, end, &fl);)
			if (fl.name_len == 10 &&
			    strncasecmp(fl.name, "connection", 10) == 0)
				http_conn_tokens_add(
				    &w.ct, fl.value, fl.value_len);
		client_walk(e, site, fields, len, 0, &w, out);
	}
	if (!w.has_via) {
		cdn_sb_str(out, "Via: 1.1 ");
		cdn_sb_str(out, site->conf->via);
		cdn_sb_add(out, "\r\n", 2);
	}
	if (w.chunked)
		*content_length = -1; /* RFC 9112 §6.3: chunked wins */
	return out->failed ? CDN_ENOMEM : CDN_OK;
}

void
edge_deliver_range_head(struct proxy_txn *pt, int *status, const char *fields,
    size_t len, struct cdn_strbuf *out, int64_t *content_length)
{
	/* Only where the Range was kept from the origin: the response is
	 * then the whole representation. */
	if (!pt->cache_on || pt->range_upstream || pt->head_as_get ||
	    *status != 200 || *content_length < 0)
		return;
	pt->range = edge_range_stream_new(edge_stream_request(&pt->cs), fields,
	    len, (uint64_t)*content_length, out);
	if (pt->range == NULL)
		return;
	*status = edge_range_stream_status(pt->range);
	*content_length = (int64_t)edge_range_stream_length(pt->range);
}

static void
client_write_out(void *arg, const void *p, size_t n)
{
	struct proxy_txn *pt = arg;

	edge_stream_write(&pt->cs, p, n);
}

void
edge_deliver_body(struct proxy_txn *pt, const char *data, size_t len)
{
	if (pt->range == NULL) {
		edge_stream_write(&pt->cs, data, len);
		return;
	}
	edge_range_stream_feed(pt->range, data, len, client_write_out, pt);
}

/* ---- a stored response ---- */

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

int
edge_deliver_not_modified(
    const struct http_request *req, const struct cache_obj *o)
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
	t_ims = http_date_parse(ims->value.p, ims->value.len);
	t_lm = http_date_parse(lm, lmlen);
	return t_ims >= 0 && t_lm >= 0 && t_lm <= t_ims;
}

/* RFC 9110 §15.4.5: the fields a 304 carries. */
static int
is_304_field(const char *name, size_t len)
{
	static const char *const keep[] = {"cache-control", "content-location",
	    "date", "etag", "expires", "vary", "via", "last-modified"};

	for (size_t i = 0; i < CDN_ARRAY_LEN(keep); i++)
		if (strlen(keep[i]) == len &&
		    strncasecmp(name, keep[i], len) == 0)
			return 1;
	return 0;
}

void
edge_deliver_stored_head(struct proxy_txn *pt, const struct cache_obj *o,
    int64_t age, int not_modified, struct edge_range_plan *plan)
{
	char buf[STORED_HEAD_BUF];
	struct cdn_strbuf f;
	const char *p, *end;
	struct cdn_field fl;

	cdn_sb_init_buf(&f, buf, sizeof(buf), STORED_HEAD_MAX);
	if (not_modified) {
		end = o->fields + o->fields_len;
		for (p = o->fields; cdn_fields_next(&p, end, &fl);)
			if (is_304_field(fl.name, fl.name_len))
				cdn_sb_add(&f, fl.line, fl.line_len);
	} else {
		edge_range_fields(plan, o, &f);
	}
	cdn_sb_add(&f, "Age: ", 5);
	cdn_sb_add_i64(&f, age);
	cdn_sb_add(&f, "\r\n", 2);
	edge_deliver_cache_status(pt, pt->cache_status, &f);
	edge_deliver_tags_field(pt, o->tags, o->tags_len, &f);
	if (f.failed) {
		/* Only a pathological stored head gets here: send it bare,
		 * and whole (its head has no room for a Content-Range). */
		cdn_sb_free(&f);
		cdn_sb_add(&f, o->fields, o->fields_len);
		if (plan->status != 200 && !not_modified) {
			edge_range_plan_fini(plan);
			edge_range_plan_init(
			    plan, NULL, 0, o->body_len, NULL, 0, 1);
		}
	}
	pt->responded = 1;
	edge_stream_respond(&pt->cs,
	    not_modified              ? 304
	        : plan->status != 200 ? plan->status
	                              : o->status,
	    f.p, f.len, (int64_t)plan->content_length);
	cdn_sb_free(&f);
}

void
edge_deliver_stored_at_age(
    struct proxy_txn *pt, struct cache_obj *o, int64_t age)
{
	const struct http_request *req = edge_stream_request(&pt->cs);
	int not_modified = edge_deliver_not_modified(req, o);
	struct edge_range_plan plan;

	edge_range_plan_for(&plan, req, o, not_modified);
	edge_deliver_stored_head(pt, o, age, not_modified, &plan);
	if (!not_modified)
		edge_range_send_obj(&pt->cs, &plan, o);
	edge_range_plan_fini(&plan);
}

void
edge_deliver_stored(struct proxy_txn *pt, struct cache_obj *o)
{
	int64_t age = cache_current_age(
	    o->d.initial_age_s, o->response_time, (int64_t)time(NULL));

	edge_deliver_stored_at_age(pt, o, age);
}
