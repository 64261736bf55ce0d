/*
 * Origin fetches, driven by a worker's libevent loop (no thread per request
 * and no blocking call on the loop): plain http servers given by address
 * through the node's own HTTP/1.1 client, the rest (https, host names,
 * fetches without a pool) through libcurl's multi interface.  Callers see
 * one interface either way.
 *
 * A struct origin_multi belongs to one worker thread and its event_base; so
 * do its fetches and its idle origin connections (the native client's, per
 * server address, and libcurl's connection cache): keep-alive to origins
 * is per worker.
 */
#ifndef ORIGIN_H
#define ORIGIN_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "common/cdn.h"

struct origin_multi;
struct origin_fetch;

/*
 * Why a fetch failed: decides 502 vs 504, or a truncated client response.
 * A timeout is named by the phase it hit, whichever clock ran out (the
 * connect, first-byte, idle or total timeout), on a new connection or a
 * reused one.
 */
enum origin_err {
	ORIGIN_OK = 0,
	ORIGIN_ECONNECT,            /* refused, unreachable, DNS: 502 */
	ORIGIN_ETIMEOUT_CONNECT,    /* TCP connect: 504 */
	ORIGIN_ETIMEOUT_TLS,        /* TLS handshake: 504 */
	ORIGIN_ETIMEOUT_FIRST_BYTE, /* request sent, no response head: 504 */
	ORIGIN_ETIMEOUT_IDLE,       /* inside the body (stalled, or total) */
	ORIGIN_ERESET,              /* closed or reset: 502 or truncation */
	ORIGIN_EPROTO,              /* malformed response: 502 */
	ORIGIN_EINTERNAL,           /* our side (memory, curl setup): 502 */
	ORIGIN_ETLS,                /* TLS handshake or certificate: 502 */
	/* The request's pool has no server up (health checks, cool-downs,
	 * max_conns): reported at once, without a connection attempt.  The
	 * edge answers 503, or stale content where that is allowed. */
	ORIGIN_ENOHEALTHY,
};
/* How many there are (for per-kind counters): keep after the last one. */
#define ORIGIN_ERR_KINDS (ORIGIN_ENOHEALTHY + 1)

const char *origin_err_name(enum origin_err e);
/*
 * The status a client gets for a fetch that failed before any response
 * head: 504 for a timeout before the head, 503 when the pool had no server
 * to try, else 502 (RFC 9110 §15.6.3-5).
 */
int origin_err_status(enum origin_err e);

/* Returned by on_body / on_upload to pause that direction. */
#define ORIGIN_PAUSE ((size_t)-1)

struct origin_fetch_ops {
	/*
	 * The final response head (1xx interim responses go to on_interim).
	 * <fields> holds every header line as received ("Name: value\r\n"),
	 * without the status line; valid during the call only, never NULL
	 * ("" when the origin sent no fields).
	 * <content_length> is -1 when the origin sent none.
	 */
	void (*on_head)(struct origin_fetch *f, void *arg, int status,
	    const char *fields, size_t fields_len, int64_t content_length);
	/*
	 * An interim (1xx) response before the final head, and its fields
	 * as on_head gives them; never part of the final head.  May be NULL.
	 */
	void (*on_interim)(struct origin_fetch *f, void *arg, int status,
	    const char *fields, size_t fields_len);
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
	uint64_t total_ms;      /* whole transfer, per attempt (0: none) */
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

struct origin_pool;

/*
 * One origin request, described before origin_fetch_start().
 *
 * Two ways to name the server: with <pool> set, the fetch picks one of the
 * pool's servers (by <hash_key> for consistent hashing) and sends <target>
 * to it, retrying once on another server when an idempotent request could
 * not connect; <url> is then unused.  Without a pool, <url> is fetched as
 * is (health checks, and callers that know their server).
 */
struct origin_request {
	const char *method; /* "GET" */
	const char *url;    /* absolute URL, path and query as sent */
	/* "Name: value" lines, each ending in its NUL, end to end;
	 * <fields_len> counts the NULs. */
	const char *fields;
	size_t fields_len;
	int has_body;
	int64_t body_length; /* -1: unknown (sent chunked) */
	int is_head;
	struct origin_pool *pool; /* NULL: fetch <url> */
	const char *target;       /* with a pool: "/path?query" as sent */
	uint64_t hash_key;        /* with a pool: the cache key's hash */
	/* Without a pool: NULL, or a CURLOPT_CONNECT_TO entry
	 * "HOST:PORT:ADDR:PORT" (reach ADDR while the URL names HOST). */
	const char *connect_to;
	/*
	 * A shield tier in front of <pool> (docs/shield.md): the fetch goes
	 * to a parent first, picked by <hash_key> in <parents> (a
	 * consistent-hash pool), with <parent_fields> (laid out as <fields>)
	 * instead of <fields>.
	 * A parent that does not answer counts against its health and the
	 * next one in hash order is tried (retryable requests only); when
	 * none is left the fetch goes to <pool> with <fields>, unless
	 * <parent_only>.  NULL: no parents.
	 */
	struct origin_pool *parents;
	const char *parent_fields;
	size_t parent_fields_len;
	int parent_only;
};

/*
 * Start a fetch on <m>.  Returns NULL (and logs) if curl refused the
 * request or memory for it ran out (its target is the client's: the caller
 * answers an error); otherwise the fetch runs until on_done or
 * origin_fetch_cancel().
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
/* Whether the fetch's current (at the end: last) attempt went to one of
 * the request's parents rather than to its origin pool. */
int origin_fetch_on_parent(const struct origin_fetch *f);
/*
 * The base URL of the server the current (at the end: last) attempt went
 * to, or NULL when there was none (no server up).  Valid while the pool
 * lives (the caller's site or generation holds it).
 */
const char *origin_fetch_server(const struct origin_fetch *f);
/* Milliseconds from start to the response head (0 if none yet). */
uint64_t origin_fetch_first_byte_ms(const struct origin_fetch *f);
/* The same in microseconds, for latency histograms. */
uint64_t origin_fetch_first_byte_us(const struct origin_fetch *f);

/* ---- origin pools (origin_pool.c) ---- */

/*
 * A pool is the set of servers behind one site.  It is built once from the
 * config, shared by every worker (its health state is atomics) and freed
 * after the workers have stopped.
 */
enum origin_balance {
	ORIGIN_BAL_ROUND_ROBIN = 0, /* each server in turn, weights ignored */
	ORIGIN_BAL_WEIGHTED,        /* smooth weighted round-robin */
	ORIGIN_BAL_LEAST_CONN,      /* fewest fetches in flight per weight */
	ORIGIN_BAL_HASH, /* rendezvous hashing of the key: stable on change */
};

/* "round-robin", "weighted", "least-conn", "consistent-hash". */
int origin_balance_parse(const char *s, enum origin_balance *out) CDN_WUR;
const char *origin_balance_name(enum origin_balance b);

struct origin_server_conf {
	const char *url;    /* http[s]://host[:port][/prefix], validated */
	unsigned weight;    /* 1.. */
	unsigned max_conns; /* fetches in flight over all workers (0: any) */
	int backup;         /* used only while no other server is up */
};

struct origin_pool_conf {
	const char *name; /* for logs and metrics (the site) */
	enum origin_balance balance;
	const struct origin_server_conf *servers;
	unsigned nservers; /* 1..ORIGIN_POOL_MAX */
	/* If set, https servers are verified against this name and it is
	 * sent as SNI; the connection still goes to the server's address. */
	const char *tls_name;
	/* Passive checks: <max_fails> failures in a row (connect, timeout,
	 * reset before the head) take a server out for <fail_timeout_ms>;
	 * max_fails 0 turns them off. */
	unsigned max_fails;
	uint64_t fail_timeout_ms;
	/* Active checks (origin_health_new()): GET <hc_path> every
	 * <hc_interval_ms>; <hc_fall> failures in a row take the server out,
	 * <hc_rise> successes bring it back.  hc_path "" turns them off. */
	const char *hc_path;
	const char *hc_host; /* Host of the checks ("" : the server's) */
	uint64_t hc_interval_ms, hc_timeout_ms;
	unsigned hc_rise, hc_fall;
	int hc_status; /* expected status; 0: any 2xx or 3xx */
	/* Passive failures take out even a lone server: set for pools that
	 * have somewhere else to go (parents fall back to the origin). */
	int eject_lone;
};

#define ORIGIN_POOL_MAX 64 /* servers per pool */

/*
 * Build a pool (copies everything).  NULL with *why on a bad config.  The
 * result holds one reference; every fetch using the pool holds one more,
 * so that a pool a reload replaced outlives the fetches still on it.
 */
struct origin_pool *origin_pool_new(
    const struct origin_pool_conf *pc, const char **why);
/* One more reference to <p> (any thread). */
struct origin_pool *origin_pool_ref(struct origin_pool *p);
/* Drop a reference (any thread); the last one frees the pool. */
void origin_pool_free(struct origin_pool **pp);

/*
 * The server a new fetch goes to: its index, or -1 when none is up.
 * <exclude> (a server that just failed this request, or -1) is never
 * chosen: a retry must go elsewhere.  Thread-safe.
 */
int origin_pool_pick(struct origin_pool *p, uint64_t hash_key, int exclude);
/*
 * The same with every server whose bit is set in <excluded> (bit i:
 * server i) left out: the next server in order after those that failed.
 * Thread-safe.
 */
int origin_pool_pick_except(
    struct origin_pool *p, uint64_t hash_key, uint64_t excluded);

/* Buckets of the latency histograms of origin fetches (request sent to
 * response head); the last one is +Inf. */
#define ORIGIN_LAT_BUCKETS 18
/* Upper bounds of the buckets but the last, in µs, ascending. */
extern const uint64_t origin_lat_le_us[ORIGIN_LAT_BUCKETS - 1];
/* The bucket of a latency of <us>. */
unsigned origin_lat_bucket(uint64_t us);

/*
 * What fetches did, since start.  A fetch counts once, on the server of
 * its last attempt (a retry after a connect failure moves it), when it
 * ends or is cancelled; its latency when its response head comes.
 */
struct origin_fetch_stats {
	uint64_t requests;
	uint64_t errors[ORIGIN_ERR_KINDS];    /* by kind; [ORIGIN_OK] unused */
	uint64_t head_us[ORIGIN_LAT_BUCKETS]; /* not cumulative */
	uint64_t head_us_sum;
};

/* What /stats and /metrics show of one server. */
struct origin_server_state {
	const char *url;       /* as configured */
	const char *authority; /* the URL's host:port */
	int up;                /* chosen for new fetches now */
	int hc_healthy; /* the active checks' verdict (1 without checks) */
	int cooling;    /* out after passive failures, for a while */
	unsigned active;
	uint64_t fetches, failures; /* attempts, since start */
	struct origin_fetch_stats fs;
};
unsigned origin_pool_nservers(const struct origin_pool *p);
/* Fetches sent to a second server after a connect failure. */
uint64_t origin_pool_retries(const struct origin_pool *p);
int origin_pool_has_checks(const struct origin_pool *p);
void origin_pool_server_state(
    const struct origin_pool *p, unsigned i, struct origin_server_state *st);
/* The fetches of the pool that found no server up (ORIGIN_ENOHEALTHY), or
 * failed to start before one was picked. */
void origin_pool_unserved(
    const struct origin_pool *p, struct origin_fetch_stats *fs);

/*
 * Active health checks of <pools> on <base> (the main thread's loop, off
 * the workers' hot path), with their own curl multi handle and <tls>.
 * The pools must outlive the checker.
 */
struct origin_health;
struct origin_health *origin_health_new(struct event_base *base,
    struct origin_pool *const *pools, unsigned npools,
    const struct origin_tls_conf *tls);
void origin_health_free(struct origin_health **hp);

#endif /* ORIGIN_H */
