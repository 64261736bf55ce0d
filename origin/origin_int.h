/*
 * What origin_fetch.c needs of origin_pool.c; private to origin/.
 */
#ifndef ORIGIN_INT_H
#define ORIGIN_INT_H

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

#endif /* ORIGIN_INT_H */
