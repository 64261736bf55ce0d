/*
 * HTTP/1.1 server connections on libevent bufferevents, shared by edged's
 * public and admin listeners and by purged.
 *
 * A struct http_conn is one client connection; it belongs to the worker
 * thread whose event_base it was created on, and only that thread touches
 * it.  It runs one transaction (struct http_txn) at a time: pipelined
 * requests wait in the input buffer until the current response has been
 * handed to the socket, which answers them in order without buffering
 * responses.
 *
 * The handler (struct http_handler) receives each request head and owns the
 * transaction until it calls http_txn_finish() or http_txn_abort(); the
 * server calls on_abort instead if the client goes away first, after which
 * the handler must not touch the txn again.
 */
#ifndef HTTP_SERVER_H
#define HTTP_SERVER_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "common/cdn.h"
#include "http/http_parse.h"

struct http_conn;
struct http_txn;
struct evbuffer;
struct bufferevent;
struct ssl_st; /* OpenSSL's SSL */

/* What the server needs to know; copied at http_server_new(). */
struct http_server_limits {
	struct http_limits parse;
	uint64_t max_body_size;     /* bytes; larger bodies get 413 */
	uint64_t header_timeout_ms; /* first byte to complete head */
	uint64_t keepalive_timeout_ms;
	uint64_t body_timeout_ms; /* idle while reading a body */
	uint64_t send_timeout_ms; /* idle while sending */
	unsigned max_connections;
};

/* How the TLS handshake of an adopted connection ended. */
enum http_tls_result {
	HTTP_TLS_FULL = 0, /* a full handshake */
	HTTP_TLS_RESUMED,  /* an abbreviated one: ticket or session cache */
	HTTP_TLS_FAILED,   /* a protocol error: garbage, no common version */
	HTTP_TLS_CLOSED,   /* the client closed or reset mid-handshake */
	HTTP_TLS_TIMEOUT,  /* not done within header_timeout_ms */
};

struct http_handler {
	/* A complete request head.  Body bytes, if any, follow through
	 * http_txn_body_read(); the response through http_txn_respond(). */
	void (*on_request)(struct http_txn *txn, void *arg);
	/* More request body arrived (or its end): call http_txn_body_read. */
	void (*on_body)(struct http_txn *txn, void *arg);
	/* The output buffer drained below the low-water mark. */
	void (*on_writable)(struct http_txn *txn, void *arg);
	/* The client is gone; the txn dies when this returns. */
	void (*on_abort)(struct http_txn *txn, void *arg);
	/* A transaction ended (also for errors the server answered itself),
	 * once its response was handed to the socket or the client went: the
	 * place for the access log and counters. */
	void (*on_log)(struct http_txn *txn, void *arg);
	/* Optional: how a TLS connection's handshake ended (counters). */
	void (*on_tls_handshake)(enum http_tls_result r, void *arg);
	/* Optional: a TLS handshake chose ALPN "h2".  The handler takes the
	 * connection's bufferevent (it owns the SSL and the socket; no
	 * callbacks, no timeouts set) with the client's address as text;
	 * the server has forgotten it.  Without this, such a connection is
	 * closed. */
	void (*on_h2)(struct bufferevent *bev, const char *peer, void *arg);
};

struct http_server;

/*
 * A server: listener-independent state of one thread (limits, handler,
 * connection list, date cache).  Never fails.
 */
struct http_server *http_server_new(struct event_base *base,
    const struct http_server_limits *lim, const struct http_handler *h,
    void *arg);
/* Closes every connection (aborting active txns), then frees. */
void http_server_free(struct http_server **sp);

/*
 * Name the node in the answers the server makes itself (400, 408, 413,
 * 414, 431, 501, 505, 503): they then carry "Cache-Status: <node>;
 * fwd=bypass; detail=<reason>" (RFC 9211), as a cache's other answers do,
 * <reason> being the status's reason phrase in lower case with dashes
 * ("bad-request").  <node> is copied; NULL, the default, adds no field.
 */
void http_server_set_cache_status(struct http_server *s, const char *node);

/*
 * Adopt an accepted socket, which must be non-blocking (as libevent's
 * listeners accept them) and which gets no socket options here: its
 * listener was readied with http_listen_nodelay().  Closes it if over
 * max_connections.
 */
void http_server_adopt(
    struct http_server *s, int fd, const struct sockaddr *peer, int peerlen);
/*
 * Adopt an accepted socket that speaks TLS, as the server side of <ssl>
 * (fresh from SSL_new(); this call owns it and the fd from now on, and
 * frees both if over max_connections); the socket is as for
 * http_server_adopt().  The handshake runs on the event
 * loop and must end, with the request head, within header_timeout_ms;
 * on_tls_handshake tells how it ended.  Requests then run as on a plain
 * connection, with http_txn_is_tls() true.
 */
void http_server_adopt_tls(struct http_server *s, int fd,
    const struct sockaddr *peer, int peerlen, struct ssl_st *ssl);

/*
 * Stop taking new requests: idle connections close now, busy ones after
 * their current response.  <on_empty> is called (once) when the last
 * connection is gone, possibly from inside this call.
 */
void http_server_drain(
    struct http_server *s, void (*on_empty)(void *arg), void *arg);
/* Close every connection now (the drain deadline passed). */
void http_server_close_all(struct http_server *s);
unsigned http_server_conn_count(const struct http_server *s);
/*
 * Keep *gauge equal to the connection count, with relaxed stores from the
 * server's thread, so that other threads may read it (a stats reader);
 * http_server_conn_count() itself is for the server's own thread.  The
 * gauge must outlive the server.  NULL stops it.
 */
void http_server_set_conn_gauge(struct http_server *s, atomic_uint *gauge);

/* ---- transaction: request side ---- */

/* The parsed request; slices stay valid for the life of the txn. */
const struct http_request *http_txn_request(const struct http_txn *txn);
/* The client's address as text ("127.0.0.1", "::1"). */
const char *http_txn_client_addr(const struct http_txn *txn);
/* Whether the request came over TLS (for X-Forwarded-Proto, the key). */
int http_txn_is_tls(const struct http_txn *txn);
/* Whether the request has a body (Content-Length > 0 or chunked). */
int http_txn_has_body(const struct http_txn *txn);
/* Request body length if known (Content-Length), else -1. */
int64_t http_txn_body_length(const struct http_txn *txn);

/*
 * Copy up to <max> bytes of request body into <dst>.  Returns the number of
 * bytes copied (> 0); 0 at the end of the body; CDN_AGAIN when no bytes are
 * there yet (on_body will be called); CDN_EINVAL when the body is malformed
 * or over the limit (the server has then answered 400/413 and the txn is
 * ending: the handler receives on_abort), or when the client closed before
 * the body's end (the txn is aborted: on_abort too).
 */
long http_txn_body_read(struct http_txn *txn, char *dst, size_t max);

/* ---- transaction: response side ---- */

/*
 * Start the response.  <fields> holds header lines, each ending in CRLF,
 * without framing fields: the server adds Content-Length when
 * <content_length> >= 0, otherwise chunked coding for HTTP/1.1 clients or
 * a close-delimited body for HTTP/1.0 ones; and Connection, and Date unless
 * <fields> has one.  For HEAD and for 1xx/204/304, no body follows and
 * <content_length> is sent as given (if >= 0) for HEAD.
 */
void http_txn_respond(struct http_txn *txn, int status, const char *fields,
    size_t fields_len, int64_t content_length);
/*
 * An interim response (1xx) before the final one: the status line, then
 * <fields> ("Name: value\r\n" lines, copied) as given.  Nothing is sent to
 * an HTTP/1.0 client, which cannot take one (RFC 9110 §15.2).  Only before
 * http_txn_respond().
 */
void http_txn_interim(
    struct http_txn *txn, int status, const char *fields, size_t fields_len);
/* Append body bytes (framed as needed; dropped for HEAD). */
void http_txn_write(struct http_txn *txn, const void *data, size_t len);
/*
 * Append body bytes without copying them: <done>(p, n, arg) is called once
 * the bytes are sent or dropped (at once for HEAD), from this thread.  Over
 * TLS the first bytes may be copied to fill the record of what is queued
 * before them; <p, n> is then the rest, or the whole if all was copied.
 */
void http_txn_write_ref(struct http_txn *txn, const void *data, size_t len,
    void (*done)(const void *data, size_t len, void *arg), void *arg);
/*
 * Append <len> body bytes at <off> of file <fd> for the kernel to send
 * from the file (sendfile): no copy through user memory.  The file's bytes
 * must never change (a sealed memfd), as the kernel may send them after
 * <done>.  <done>(NULL, len, arg) is called, from this thread, once they
 * left the output buffer (sent or dropped; at once for HEAD).  CDN_OK, or
 * CDN_EINVAL over TLS or chunked framing and CDN_ENOMEM: then nothing was
 * queued, <done> is not called, and the caller writes the bytes itself.
 */
int http_txn_write_file(struct http_txn *txn, int fd, uint64_t off, size_t len,
    void (*done)(const void *data, size_t len, void *arg), void *arg) CDN_WUR;
/* Bytes waiting in the output buffer: stop producing above ~256 KiB. */
size_t http_txn_out_pending(const struct http_txn *txn);
#define HTTP_OUT_HIGH_WATER (256 * 1024)
/* The response is complete.  The handler must not touch txn afterwards. */
void http_txn_finish(struct http_txn *txn);
/* The response cannot be completed: close the connection once what was
 * written is flushed (the client sees a truncated transfer).  As finish. */
void http_txn_abort(struct http_txn *txn);
/* Close the connection after this response (before http_txn_respond). */
void http_txn_set_close(struct http_txn *txn);
/* Send a whole short response (errors, admin pages) and finish. */
void http_txn_simple(struct http_txn *txn, int status, const char *content_type,
    const char *body, size_t body_len);

/* Handler's per-txn pointer (NULL at on_request). */
void http_txn_set_data(struct http_txn *txn, void *data);
void *http_txn_data(const struct http_txn *txn);

/* ---- for on_log ---- */
int http_txn_status(const struct http_txn *txn); /* 0 if none sent */
/* Whether the txn ended without a complete response (client gone, abort). */
int http_txn_aborted(const struct http_txn *txn);
/* Bytes of the response (head, interim answers and body) the socket took:
 * what a client gone mid-answer never got is not counted. */
uint64_t http_txn_bytes_sent(const struct http_txn *txn);
uint64_t http_txn_start_ns(const struct http_txn *txn);
/* Why the server refused the request itself, or NULL. */
const char *http_txn_error(const struct http_txn *txn);

/* Cached "Date: ...\r\n" for the current second (this thread). */
const char *http_date_field(void);

#endif /* HTTP_SERVER_H */
