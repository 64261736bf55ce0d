/*
 * The client stream: what the edge's request path (edge_proxy.c,
 * edge_fill.c, edge_cache.c, edge_deliver.c) needs from the protocol that
 * carries one client request and its response.  HTTP/1.1 implements it
 * over an http_txn (edge_h1.c); an HTTP/2 stream implements the same ops,
 * so the request path never knows which protocol a client speaks.
 *
 * Ownership and lifetime:
 * - The protocol owns the stream.  It hands it to the edge with
 *   edge_proxy_begin() once a request head is complete; the edge keeps a
 *   copy of this small handle (ops and the protocol's object) until the
 *   protocol calls edge_proxy_end(): the one call every stream ends with
 *   (answered, aborted or refused).  After it, neither side touches the
 *   other's state.
 * - The edge answers once: respond(), body bytes, then finish() (complete)
 *   or abort() (cut short: the client never sees a complete-looking body).
 *   Interim (1xx) responses may come before respond(), through interim().
 *   finish() and abort() may call edge_proxy_end() before they return,
 *   so the caller's transaction may be gone after either.
 * - write() copies; write_ref() borrows the bytes until <done> is called,
 *   from the worker's loop, or at once if the stream is already gone or
 *   the response has no body (HEAD).  write_file() borrows a range of an
 *   immutable file the same way, where the protocol can send from it.
 * - Backpressure: while congested() says so, the edge produces no body
 *   bytes; the protocol calls edge_proxy_writable() when it can take
 *   more.  The request body is read with body_read() as it arrives, after
 *   edge_proxy_body() says there is some.
 * - Everything runs on the worker thread that owns the client's
 *   connection.
 */
#ifndef EDGE_STREAM_H
#define EDGE_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "http/http_parse.h"

struct edge_worker;
struct proxy_txn;

struct edge_stream_ops {
	/* The request head; valid for the stream's life. */
	const struct http_request *(*request)(void *s);
	/* Whether the request has a body, and its length (-1 unknown). */
	int (*has_body)(void *s);
	int64_t (*body_length)(void *s);
	/* Up to <max> request body bytes: a count (0 at its end), CDN_AGAIN
	 * (none yet: edge_proxy_body() follows) or CDN_EINVAL. */
	long (*body_read)(void *s, char *dst, size_t max);
	/* The response head: fields "Name: value\r\n" without framing
	 * fields or Date (the protocol adds them); <content_length> -1 if
	 * unknown. */
	void (*respond)(void *s, int status, const char *fields, size_t len,
	    int64_t content_length);
	/* An interim (1xx) response before respond(): fields "Name:
	 * value\r\n" as the client gets them.  The protocol drops it for a
	 * client that cannot take one (HTTP/1.0). */
	void (*interim)(void *s, int status, const char *fields, size_t len);
	void (*write)(void *s, const void *p, size_t len);
	void (*write_ref)(void *s, const void *p, size_t len,
	    void (*done)(const void *p, size_t len, void *arg), void *arg);
	/* <len> body bytes at <off> of file <fd>, whose bytes never change,
	 * for the kernel to send from the file; borrowed as by write_ref.
	 * CDN_OK, or an error when this stream cannot (TLS, HTTP/2): then
	 * nothing was queued and the caller writes the bytes.  May be NULL. */
	int (*write_file)(void *s, int fd, uint64_t off, size_t len,
	    void (*done)(const void *p, size_t len, void *arg), void *arg);
	/* Whether the client's output is full enough to stop producing. */
	int (*congested)(void *s);
	void (*finish)(void *s);
	void (*abort)(void *s);
	/* No further request on this connection after this response (for a
	 * request whose meaning the node does not know). */
	void (*set_close)(void *s);
	/* Who the client is, and over what. */
	const char *(*client_addr)(void *s);
	int (*is_tls)(void *s);
	/* The edge's state for this stream, handed back by the protocol
	 * (NULL until set). */
	void (*set_txn)(void *s, struct proxy_txn *pt);
};

/* A stream as the edge holds it: two words, copied freely. */
struct edge_stream {
	const struct edge_stream_ops *ops;
	void *s; /* the protocol's per-request object */
};

/* How a stream ended, for counters and the access log. */
struct edge_stream_end {
	int status;           /* sent, or 0 if none */
	uint64_t bytes_sent;  /* head and body */
	uint64_t start_ns;    /* when the request head was complete */
	int aborted;          /* the client left, or the response was cut */
	const char *error;    /* what the protocol refused, or NULL */
	const char *protocol; /* "HTTP/1.1", "HTTP/2" */
};

/* ---- the protocol calls these: the request path's entry (edge_proxy.c) ----
 */

/* A complete request head on worker <w>. */
void edge_proxy_begin(struct edge_worker *w, const struct edge_stream *cs);
/* More request body (or its end) for <pt>'s stream. */
void edge_proxy_body(struct proxy_txn *pt);
/* <pt>'s stream can take more body bytes. */
void edge_proxy_writable(struct proxy_txn *pt);
/* <pt>'s client is gone: stop producing (end follows). */
void edge_proxy_aborted(struct proxy_txn *pt);
/* The stream ended; <pt> (NULL if the edge kept none) is freed here. */
void edge_proxy_end(struct edge_worker *w, const struct edge_stream *cs,
    struct proxy_txn *pt, const struct edge_stream_end *end);

/* ---- the edge calls the protocol through these ---- */

static inline const struct http_request *
edge_stream_request(const struct edge_stream *cs)
{
	return cs->ops->request(cs->s);
}

static inline int
edge_stream_has_body(const struct edge_stream *cs)
{
	return cs->ops->has_body(cs->s);
}

static inline int64_t
edge_stream_body_length(const struct edge_stream *cs)
{
	return cs->ops->body_length(cs->s);
}

static inline long
edge_stream_body_read(const struct edge_stream *cs, char *dst, size_t max)
{
	return cs->ops->body_read(cs->s, dst, max);
}

static inline void
edge_stream_respond(const struct edge_stream *cs, int status,
    const char *fields, size_t len, int64_t content_length)
{
	cs->ops->respond(cs->s, status, fields, len, content_length);
}

static inline void
edge_stream_interim(
    const struct edge_stream *cs, int status, const char *fields, size_t len)
{
	cs->ops->interim(cs->s, status, fields, len);
}

static inline void
edge_stream_write(const struct edge_stream *cs, const void *p, size_t len)
{
	cs->ops->write(cs->s, p, len);
}

static inline void
edge_stream_write_ref(const struct edge_stream *cs, const void *p, size_t len,
    void (*done)(const void *p, size_t len, void *arg), void *arg)
{
	cs->ops->write_ref(cs->s, p, len, done, arg);
}

static inline int
edge_stream_write_file(const struct edge_stream *cs, int fd, uint64_t off,
    size_t len, void (*done)(const void *p, size_t len, void *arg), void *arg)
{
	if (cs->ops->write_file == NULL)
		return CDN_EINVAL;
	return cs->ops->write_file(cs->s, fd, off, len, done, arg);
}

static inline int
edge_stream_congested(const struct edge_stream *cs)
{
	return cs->ops->congested(cs->s);
}

static inline void
edge_stream_finish(const struct edge_stream *cs)
{
	cs->ops->finish(cs->s);
}

static inline void
edge_stream_abort(const struct edge_stream *cs)
{
	cs->ops->abort(cs->s);
}

static inline void
edge_stream_set_close(const struct edge_stream *cs)
{
	cs->ops->set_close(cs->s);
}

static inline const char *
edge_stream_client_addr(const struct edge_stream *cs)
{
	return cs->ops->client_addr(cs->s);
}

static inline int
edge_stream_is_tls(const struct edge_stream *cs)
{
	return cs->ops->is_tls(cs->s);
}

#endif /* EDGE_STREAM_H */
