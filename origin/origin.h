/*
 * Origin fetches through libcurl's multi interface, driven by a worker's
 * libevent loop (socket and timer callbacks: no thread per request and no
 * blocking call on the loop).
 *
 * A struct origin_multi belongs to one worker thread and its event_base; so
 * do its fetches.  libcurl keeps idle origin connections in the multi
 * handle's connection cache, so keep-alive to origins is per worker.
 */
#ifndef ORIGIN_H
#define ORIGIN_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "common/cdn.h"

struct origin_multi;
struct origin_fetch;

/* Why a fetch failed: decides 502 vs 504, or a truncated client response. */
enum origin_err {
	ORIGIN_OK = 0,
	ORIGIN_ECONNECT,            /* refused, unreachable, DNS: 502 */
	ORIGIN_ETIMEOUT_CONNECT,    /* 504 */
	ORIGIN_ETIMEOUT_FIRST_BYTE, /* 504 */
	ORIGIN_ETIMEOUT_IDLE,       /* stalled inside the body */
	ORIGIN_ERESET,              /* closed or reset: 502 or truncation */
	ORIGIN_EPROTO,              /* malformed response: 502 */
	ORIGIN_EINTERNAL,           /* our side (memory, curl setup): 502 */
	ORIGIN_ETLS,                /* TLS handshake or certificate: 502 */
};
/* How many there are (for per-kind counters): keep after the last one. */
#define ORIGIN_ERR_KINDS (ORIGIN_ETLS + 1)

const char *origin_err_name(enum origin_err e);

/* Returned by on_body / on_upload to pause that direction. */
#define ORIGIN_PAUSE ((size_t)-1)

struct origin_fetch_ops {
	/*
	 * The final response head (1xx interim responses are skipped).
	 * <fields> holds every header line as received ("Name: value\r\n"),
	 * without the status line; valid during the call only.
	 * <content_length> is -1 when the origin sent none.
	 */
	void (*on_head)(struct origin_fetch *f, void *arg, int status,
	    const char *fields, size_t fields_len, int64_t content_length);
	/* Body bytes; return len to take them or ORIGIN_PAUSE to be called
	 * again with the same bytes after origin_fetch_resume_body(). */
	size_t (*on_body)(
	    struct origin_fetch *f, void *arg, const char *data, size_t len);
	/* Fill <buf> with request body bytes: return the count, 0 at the
	 * end, or ORIGIN_PAUSE until origin_fetch_resume_upload(). */
	size_t (*on_upload)(
	    struct origin_fetch *f, void *arg, char *buf, size_t max);
	/* The fetch is over; <f> is freed when this returns. */
	void (*on_done)(struct origin_fetch *f, void *arg, enum origin_err e);
};

struct origin_timeouts {
	uint64_t connect_ms;
	uint64_t first_byte_ms; /* request sent to response head */
	uint64_t idle_ms;       /* between body bytes (not while paused) */
};

struct origin_multi *origin_multi_new(struct event_base *base);

/*
 * How https origins are checked and what we show them.  Every field may be
 * NULL or "" for the default: the system CA store, no client certificate,
 * the key in the client_cert file.  The peer's certificate is always
 * verified, against the URL's host name (curl also sends it as SNI).
 */
struct origin_tls_conf {
	const char *ca_file;     /* PEM CA certificates */
	const char *client_cert; /* PEM, for origins that ask (mTLS) */
	const char *client_key;
};

/* Use <tls> (copied) for the https fetches started on <m> from now on. */
void origin_multi_set_tls(
    struct origin_multi *m, const struct origin_tls_conf *tls);

/* Cancels every fetch still running (their on_done is not called). */
void origin_multi_free(struct origin_multi **mp);
unsigned origin_multi_active(const struct origin_multi *m);

/* One origin request, described before origin_fetch_start(). */
struct origin_request {
	const char *method;        /* "GET" */
	const char *url;           /* absolute URL, path and query as sent */
	const char *const *fields; /* "Name: value" lines, NULL-terminated */
	int has_body;
	int64_t body_length; /* -1: unknown (sent chunked) */
	int is_head;
};

/*
 * Start a fetch on <m>.  Returns NULL (and logs) if curl refused the
 * request; otherwise the fetch runs until on_done or origin_fetch_cancel().
 */
struct origin_fetch *origin_fetch_start(struct origin_multi *m,
    const struct origin_request *req, const struct origin_timeouts *to,
    const struct origin_fetch_ops *ops, void *arg);

/* Send the rest of the fetch's events to <ops>/<arg> (a consumer taking
 * over a running fetch, from inside one of its callbacks or not). */
void origin_fetch_set_consumer(
    struct origin_fetch *f, const struct origin_fetch_ops *ops, void *arg);
/* Stop a fetch now without calling on_done, and free it. */
void origin_fetch_cancel(struct origin_fetch **fp);
/* The consumer has room again / more request body arrived. */
void origin_fetch_resume_body(struct origin_fetch *f);
void origin_fetch_resume_upload(struct origin_fetch *f);
/* Milliseconds from start to the response head (0 if none yet). */
uint64_t origin_fetch_first_byte_ms(const struct origin_fetch *f);
/* The same in microseconds, for latency histograms. */
uint64_t origin_fetch_first_byte_us(const struct origin_fetch *f);

#endif /* ORIGIN_H */
