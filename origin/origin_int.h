/*
 * What origin_fetch.c and origin_health.c need of origin_pool.c; private
 * to origin/.  Calls run one way: fetch -> pool, health -> fetch and pool.
 */
#ifndef ORIGIN_INT_H
#define ORIGIN_INT_H

#include <stdint.h>
#include <sys/socket.h>

#include "origin/origin.h"
#include "origin/origin_head.h"

/* "scheme://host:port/prefix" to put the target after (no slash at the
 * end), and the CURLOPT_CONNECT_TO entry of server <i> (NULL: none).
 * Both live as long as the pool. */
const char *origin_pool_server_base(const struct origin_pool *p, unsigned i);
const char *origin_pool_connect_to(const struct origin_pool *p, unsigned i);

/* What the native client needs of a plain http server given by address. */
struct origin_h1_server {
	struct sockaddr_storage addr;
	socklen_t addrlen;
	const char *prefix; /* the URL's path, to put before the target */
	size_t prefix_len;
	const char *authority; /* host:port, for a request without Host */
	size_t authority_len;
};
/* Server <i>'s, or NULL when the native client cannot reach it (https, or
 * a host name).  Lives as long as the pool. */
const struct origin_h1_server *origin_pool_h1_server(
    const struct origin_pool *p, unsigned i);

/* A fetch to server <i> starts / ends (least-conn and max_conns). */
void origin_pool_conn_begin(struct origin_pool *p, unsigned i);
void origin_pool_conn_end(struct origin_pool *p, unsigned i);

/*
 * The outcome of a fetch to server <i>, for the passive checks: <failed>
 * when the server did not answer (connect, timeout or reset before the
 * response head); a response of any status counts as an answer.
 */
void origin_pool_report(struct origin_pool *p, unsigned i, int failed);
/* A fetch goes to a second server (origin_pool_retries()). */
void origin_pool_count_retry(struct origin_pool *p);
/*
 * For origin_fetch_stats: a fetch whose last attempt went to server <i>
 * (-1: none was up) got its response head after <us> / is over, with error
 * <e> (ORIGIN_OK also when it was cancelled).  Thread-safe.
 */
void origin_pool_count_head(struct origin_pool *p, int i, uint64_t us);
void origin_pool_count_end(struct origin_pool *p, int i, enum origin_err e);

/* ---- for the active health checks (origin_health.c) ---- */

struct origin_pool_hc {
	const char *path; /* "" when the pool has no active checks */
	const char *host; /* Host of the probes; "" for the server's */
	uint64_t interval_ms, timeout_ms;
	unsigned rise, fall; /* results in a row that change the verdict */
	int status;          /* the status that passes; 0: any 2xx/3xx */
};

/* The pool's check settings, and its name and servers' URLs for logs. */
const struct origin_pool_hc *origin_pool_hc(const struct origin_pool *p);
const char *origin_pool_name(const struct origin_pool *p);
const char *origin_pool_server_url(const struct origin_pool *p, unsigned i);
/*
 * The checks' verdict on server <i>.  Returns 1 if it changed the
 * server's state (a server back in also loses its passive cool-down).
 * Main thread only (the one writer of the verdict).
 */
int origin_pool_hc_verdict(struct origin_pool *p, unsigned i, int healthy);

/* ---- the native HTTP/1.1 client (origin_h1.c) ---- */

/*
 * A worker's plain-http connections to origin servers: each carries one
 * request at a time, and goes back to a bounded idle list per server
 * address when its response was read whole and the server keeps it open.
 * Owned by the worker's origin_multi and its thread.
 */
struct origin_h1;
struct origin_h1_conn;

/* What a request's events go to (origin_fetch.c).  None is called from
 * inside origin_h1_start() or origin_h1_resume(). */
struct origin_h1_ops {
	/* The request is written: the first-byte clock starts. */
	void (*sent)(void *arg);
	/* A 1xx response (fields as in origin_fetch_ops). */
	void (*interim)(
	    void *arg, int status, const char *fields, size_t fields_len);
	/* The final head, already checked. */
	void (*head)(void *arg, const struct origin_head *h, const char *fields,
	    size_t fields_len);
	/* Request body bytes into buf: the count, 0 at the end, or
	 * ORIGIN_PAUSE (origin_h1_resume_upload()). */
	size_t (*upload)(void *arg, char *buf, size_t max);
	/* Body bytes: len taken, or ORIGIN_PAUSE (origin_h1_resume()). */
	size_t (*body)(void *arg, const char *p, size_t len);
	/* The exchange is over; the connection is no longer the caller's
	 * (kept for reuse or closed) and must not be touched again. */
	void (*done)(void *arg, enum origin_err e);
	/* A malformed head: the reason, for the caller's log line. */
	void (*refused)(void *arg, const char *why);
};

struct origin_h1 *origin_h1_new(struct event_base *base);
/* Closes every connection; none may be carrying a request. */
void origin_h1_free(struct origin_h1 **hp);

/* What the connection needs to know of a request. */
struct origin_h1_req {
	int is_head;         /* its response has no body */
	int retryable;       /* idempotent, without a body */
	int has_body;        /* pulled through upload() */
	int64_t body_length; /* -1: sent chunked */
};

/*
 * Send <req> (<reqlen> bytes: request line, fields with the body's framing,
 * empty line; the connection takes the malloc'd buffer), then its body, to
 * <srv>, on an idle connection if there is one.  A retryable request is
 * sent once more on a new connection when a reused one fails before any
 * response byte.  Failures, a connect's too, come later through done().
 */
struct origin_h1_conn *origin_h1_start(struct origin_h1 *h,
    const struct origin_h1_server *srv, char *req, size_t reqlen,
    const struct origin_h1_req *how, const struct origin_h1_ops *ops,
    void *arg);
/* Whether the request has been written (a timeout is then first-byte). */
int origin_h1_sent(const struct origin_h1_conn *c);
/* The consumer has room again after returning ORIGIN_PAUSE. */
void origin_h1_resume(struct origin_h1_conn *c);
/* More request body is there after upload() returned ORIGIN_PAUSE. */
void origin_h1_resume_upload(struct origin_h1_conn *c);
/* Close the connection with its request unfinished; no callback. */
void origin_h1_abort(struct origin_h1_conn **cp);

#endif /* ORIGIN_INT_H */
