/*
 * HTTP/1.1 clients (edge/edge_stream.h): the client stream over an
 * http_txn of the shared HTTP/1.1 server (http/http_server.h), and the
 * handler that feeds the edge's request path from it.  The transaction's
 * data pointer holds the edge's proxy_txn (NULL until it has one).
 */
#include "config.h"

#include <stdio.h>

#include "edge/edge_int.h"
#include "edge/edge_stream.h"

/* ---- the stream ---- */

static const struct http_request *
h1_request(void *s)
{
	return http_txn_request(s);
}

static int
h1_has_body(void *s)
{
	return http_txn_has_body(s);
}

static int64_t
h1_body_length(void *s)
{
	return http_txn_body_length(s);
}

static long
h1_body_read(void *s, char *dst, size_t max)
{
	return http_txn_body_read(s, dst, max);
}

static void
h1_respond(
    void *s, int status, const char *fields, size_t len, int64_t content_length)
{
	http_txn_respond(s, status, fields, len, content_length);
}

static void
h1_interim(void *s, int status, const char *fields, size_t len)
{
	http_txn_interim(s, status, fields, len);
}

static void
h1_write(void *s, const void *p, size_t len)
{
	http_txn_write(s, p, len);
}

static void
h1_write_ref(void *s, const void *p, size_t len,
    void (*done)(const void *p, size_t len, void *arg), void *arg)
{
	http_txn_write_ref(s, p, len, done, arg);
}

static int
h1_write_file(void *s, int fd, uint64_t off, size_t len,
    void (*done)(const void *p, size_t len, void *arg), void *arg)
{
	return http_txn_write_file(s, fd, off, len, done, arg);
}

static int
h1_congested(void *s)
{
	return http_txn_out_pending(s) > HTTP_OUT_HIGH_WATER;
}

static void
h1_finish(void *s)
{
	http_txn_finish(s);
}

static void
h1_abort(void *s)
{
	http_txn_abort(s);
}

static void
h1_set_close(void *s)
{
	http_txn_set_close(s);
}

static const char *
h1_client_addr(void *s)
{
	return http_txn_client_addr(s);
}

static int
h1_is_tls(void *s)
{
	return http_txn_is_tls(s);
}

static void
h1_set_txn(void *s, struct proxy_txn *pt)
{
	http_txn_set_data(s, pt);
}

static const struct edge_stream_ops h1_ops = {
    .request = h1_request,
    .has_body = h1_has_body,
    .body_length = h1_body_length,
    .body_read = h1_body_read,
    .respond = h1_respond,
    .interim = h1_interim,
    .write = h1_write,
    .write_ref = h1_write_ref,
    .write_file = h1_write_file,
    .congested = h1_congested,
    .finish = h1_finish,
    .abort = h1_abort,
    .set_close = h1_set_close,
    .client_addr = h1_client_addr,
    .is_tls = h1_is_tls,
    .set_txn = h1_set_txn,
};

/* ---- the handler ---- */

static void
on_request(struct http_txn *txn, void *arg)
{
	struct edge_stream cs = {&h1_ops, txn};

	edge_proxy_begin(arg, &cs);
}

static void
on_body(struct http_txn *txn, void *arg)
{
	struct proxy_txn *pt = http_txn_data(txn);

	(void)arg;
	if (pt != NULL)
		edge_proxy_body(pt);
}

static void
on_writable(struct http_txn *txn, void *arg)
{
	struct proxy_txn *pt = http_txn_data(txn);

	(void)arg;
	if (pt != NULL)
		edge_proxy_writable(pt);
}

static void
on_abort(struct http_txn *txn, void *arg)
{
	struct proxy_txn *pt = http_txn_data(txn);

	(void)arg;
	if (pt != NULL)
		edge_proxy_aborted(pt);
}

static void
on_log(struct http_txn *txn, void *arg)
{
	struct edge_stream cs = {&h1_ops, txn};
	struct edge_stream_end end = {
	    .status = http_txn_status(txn),
	    .bytes_sent = http_txn_bytes_sent(txn),
	    .start_ns = http_txn_start_ns(txn),
	    .aborted = http_txn_aborted(txn),
	    .error = http_txn_error(txn),
	    .protocol = http_txn_request(txn)->version_minor == 0 ? "HTTP/1.0"
	                                                          : "HTTP/1.1",
	};

	edge_proxy_end(arg, &cs, http_txn_data(txn), &end);
	http_txn_set_data(txn, NULL);
}

const struct http_handler edge_h1_handler = {
    .on_request = on_request,
    .on_body = on_body,
    .on_writable = on_writable,
    .on_abort = on_abort,
    .on_log = on_log,
};
