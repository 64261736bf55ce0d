/*
 * What origin_fetch.c and origin_health.c need of origin_pool.c; private
 * to origin/.  Calls run one way: fetch -> pool, health -> fetch and pool.
 */
#ifndef ORIGIN_INT_H
#define ORIGIN_INT_H

#include <stdint.h>

#include "origin/origin.h"

/* "scheme://host:port/prefix" to put the target after (no slash at the
 * end), and the CURLOPT_CONNECT_TO entry of server <i> (NULL: none).
 * Both live as long as the pool. */
const char *origin_pool_server_base(const struct origin_pool *p, unsigned i);
const char *origin_pool_connect_to(const struct origin_pool *p, unsigned i);

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

#endif /* ORIGIN_INT_H */
