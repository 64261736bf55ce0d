/*
 * The access log line of one request (edge/edge_int.h: edge_access_log), in
 * the format access_log_format names:
 *
 *   text  TIME CLIENT "HOST" "METHOD TARGET PROTOCOL" STATUS BYTES MS
 *         ORIGIN_MS ORIGIN_RESULT "CACHE_STATUS" ABORTED "ERROR"
 *         "UPSTREAM" "USER_AGENT" "REFERER"
 *   json  one object per line with the same values under the names log
 *         shippers look for (time, client, method, host, uri, protocol,
 *         status, bytes, duration_ms, cache_status, origin_ms,
 *         origin_result, upstream, user_agent, referer, aborted, error);
 *         an absent value is null.
 *
 * What the client sent (host, target, User-Agent, Referer) is written with
 * '"', '\', control bytes and bytes above 0x7e as \xHH, so a line is always
 * one line of printable ASCII whatever the request held, and the JSON is
 * valid whatever its bytes.  Called on the worker's thread only; the line
 * goes to the worker's own buffer (common/cdn_log.h).  No state.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "edge/edge_int.h"
#include "origin/origin.h"

/* Bytes of one client-sent value kept in a line; the rest is cut. */
#define ACCESS_FIELD_MAX 1024
/* The request target is kept longer: it is what a line is looked up by. */
#define ACCESS_TARGET_MAX 2048
/* An escaped byte takes at most four ("\xHH"). */
#define ACCESS_ESC_LEN(n) ((n)*4 + 1)

/*
 * p[0..len) (cut at <max> bytes) into out, escaped as the top of this file
 * says; out needs ACCESS_ESC_LEN(max) bytes.
 */
static void
escape(char *out, const char *p, size_t len, size_t max)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (p == NULL)
		len = 0;
	if (len > max)
		len = max;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)p[i];

		if (ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\') {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 0xf];
		} else {
			out[o++] = (char)ch;
		}
	}
	out[o] = '\0';
}

/* The first field <name> of <req>, or NULL. */
static const struct http_slice *
field(const struct http_request *req, const char *name)
{
	size_t nlen = strlen(name);

	for (unsigned i = 0; i < req->n_headers; i++) {
		const struct http_header *h = &req->headers[i];

		if (h->name.len == nlen &&
		    strncasecmp(h->name.p, name, nlen) == 0)
			return &h->value;
	}
	return NULL;
}

/* The values of one line, escaped, shared by both formats. */
struct access_line {
	char ts[40];
	const char *client;
	char method[ACCESS_ESC_LEN(32)];
	char host[ACCESS_ESC_LEN(ACCESS_FIELD_MAX)];
	char target[ACCESS_ESC_LEN(ACCESS_TARGET_MAX)];
	const char *protocol;
	int status;
	unsigned long long bytes, dur_ms, origin_ms;
	const char *origin_result; /* NULL: no origin fetch */
	const char *cache_status;  /* NULL: none */
	const char *upstream;      /* NULL: none */
	char ua[ACCESS_ESC_LEN(ACCESS_FIELD_MAX)];
	char referer[ACCESS_ESC_LEN(ACCESS_FIELD_MAX)];
	int has_ua, has_referer, aborted;
	const char *error; /* NULL: none */
};

static void
write_text(struct cdn_alog_buf *b, const struct access_line *l)
{
	char origin[64];

	if (l->origin_result != NULL)
		snprintf(origin, sizeof(origin), "%llu %s", l->origin_ms,
		    l->origin_result);
	else
		snprintf(origin, sizeof(origin), "- -");
	cdn_alog_printf(b,
	    "%s %s \"%s\" \"%s %s %s\" %d %llu %llu %s \"%s\" %s \"%s\" "
	    "\"%s\" \"%s\" \"%s\"",
	    l->ts, l->client, l->host[0] != '\0' ? l->host : "-", l->method,
	    l->target, l->protocol, l->status, l->bytes, l->dur_ms, origin,
	    l->cache_status != NULL ? l->cache_status : "-",
	    l->aborted ? "aborted" : "-", l->error != NULL ? l->error : "-",
	    l->upstream != NULL ? l->upstream : "-", l->has_ua ? l->ua : "-",
	    l->has_referer ? l->referer : "-");
}

/* A string member, or null for NULL. */
static json_t *
jstr(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

static void
write_json(struct cdn_alog_buf *b, const struct access_line *l)
{
	json_t *o = json_object();
	char *text;

	if (o == NULL)
		return; /* out of memory: one line lost, the request is not */
	json_object_set_new(o, "time", json_string(l->ts));
	json_object_set_new(o, "client", json_string(l->client));
	json_object_set_new(o, "method", json_string(l->method));
	json_object_set_new(
	    o, "host", jstr(l->host[0] != '\0' ? l->host : NULL));
	json_object_set_new(o, "uri", json_string(l->target));
	json_object_set_new(o, "protocol", json_string(l->protocol));
	json_object_set_new(o, "status", json_integer(l->status));
	json_object_set_new(o, "bytes", json_integer((json_int_t)l->bytes));
	json_object_set_new(
	    o, "duration_ms", json_integer((json_int_t)l->dur_ms));
	json_object_set_new(o, "cache_status", jstr(l->cache_status));
	json_object_set_new(o, "origin_ms",
	    l->origin_result != NULL ? json_integer((json_int_t)l->origin_ms)
	                             : json_null());
	json_object_set_new(o, "origin_result", jstr(l->origin_result));
	json_object_set_new(o, "upstream", jstr(l->upstream));
	json_object_set_new(o, "user_agent", jstr(l->has_ua ? l->ua : NULL));
	json_object_set_new(
	    o, "referer", jstr(l->has_referer ? l->referer : NULL));
	json_object_set_new(o, "aborted", json_boolean(l->aborted));
	json_object_set_new(o, "error", jstr(l->error));
	text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (text != NULL)
		cdn_alog_printf(b, "%s", text);
	free(text);
	json_decref(o);
}

void
edge_access_log(struct edge_worker *w, const struct edge_stream *cs,
    const struct proxy_txn *pt, const struct edge_stream_end *end,
    uint64_t dur_ms)
{
	const struct http_request *req = edge_stream_request(cs);
	const struct http_slice *s;
	struct access_line *l;

	if (w->alog == NULL)
		return;
	/* About 12 KiB: off the worker's stack, which fetches also use. */
	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return;
	cdn_log_timestamp(l->ts, sizeof(l->ts));
	l->client = edge_stream_client_addr(cs);
	escape(l->method, req->method_str.p, req->method_str.len, 32);
	/* RFC 9112 §3.2.2: an absolute-form target's authority is the host. */
	s = req->authority.len > 0 ? &req->authority : &req->host;
	escape(l->host, s->p, s->len, ACCESS_FIELD_MAX);
	escape(l->target, req->target.p, req->target.len, ACCESS_TARGET_MAX);
	l->protocol = end->protocol;
	l->status = end->status;
	l->bytes = (unsigned long long)end->bytes_sent;
	l->dur_ms = (unsigned long long)dur_ms;
	if (pt != NULL && pt->used_origin) {
		l->origin_ms = (unsigned long long)pt->origin_ms;
		l->origin_result = origin_err_name(pt->origin_err);
	}
	if (pt != NULL && pt->cache_status[0] != '\0')
		l->cache_status = pt->cache_status;
	if (pt != NULL && pt->upstream[0] != '\0')
		l->upstream = pt->upstream;
	if ((s = field(req, "User-Agent")) != NULL) {
		escape(l->ua, s->p, s->len, ACCESS_FIELD_MAX);
		l->has_ua = 1;
	}
	if ((s = field(req, "Referer")) != NULL) {
		escape(l->referer, s->p, s->len, ACCESS_FIELD_MAX);
		l->has_referer = 1;
	}
	l->aborted = end->aborted;
	l->error = end->error;
	if (w->alog_json)
		write_json(w->alog, l);
	else
		write_text(w->alog, l);
	free(l);
}
