/*
 * Sites: which configuration answers a request, chosen by its Host.
 *
 * A table is built from one config (edge_sites_new(), main thread) for a
 * generation (edge_gen.h) and immutable afterwards: workers look sites up
 * without a lock.  Each site owns its origin pool; the pool's health state
 * and the site's counters are the only things in a site that change.
 *
 * Without site blocks the table holds one implicit site, the top level of
 * the config, which answers every Host: the single-origin setup.
 */
#ifndef EDGE_SITE_H
#define EDGE_SITE_H

#include <stdatomic.h>
#include <stdint.h>

#include "cache/cache.h"
#include "conf/conf.h"
#include "origin/origin.h"

/* Per worker and site; single writer (the worker), like edge_counters:
 * the EDGE_SITE_COUNTER rows of edge/edge_counters.h. */
struct edge_site_counters {
#define EDGE_SITE_COUNTER(field, ...) _Atomic uint64_t field;
#include "edge/edge_counters.h"
};

/* How many rows that is. */
enum {
#define EDGE_SITE_COUNTER(field, ...) EDGE_SITE_CTR_##field,
#include "edge/edge_counters.h"
	EDGE_SITE_NCTR
};

/* One worker's counters of a site, off the next worker's cache lines. */
struct edge_site_slot {
	struct edge_site_counters c;
	char pad[64];
};

struct edge_site {
	uint32_t magic;
#define EDGE_SITE_MAGIC 0x91c4d72eu
	unsigned idx;            /* in the table, for per-worker counters */
	const char *name;        /* first host name, or "default" */
	const struct conf *conf; /* the site's values (borrowed) */
	/* From cache_sites_at(), as purged builds them (cache_site.c). */
	struct cache_policy_conf policy;
	struct cache_key_rules key_rules; /* params borrowed from conf */
	struct origin_pool *pool;
	/* The shield tier (parent_server; docs/shield.md): NULL without. */
	struct origin_pool *parents;
	int parent_only;
	struct origin_timeouts to;
	/* Host sent to the origin when the client sent none (and the
	 * health checks' Host without origin_host): the first server's
	 * "host:port". */
	char *origin_authority;
	/* Counters: [worker id], each written by that worker alone. */
	struct edge_site_slot *ctr;
	/* Main thread only: what earlier generations of the site (same
	 * name) counted, and, once retired, what it handed on at the swap
	 * (edge_gen.h). */
	uint64_t carry[EDGE_SITE_NCTR];
	uint64_t handed[EDGE_SITE_NCTR];
};

struct edge_sites;

/*
 * Build the sites of <c> (borrowed; must outlive the table), with counters
 * for <nworkers> workers.  NULL after logging why when a pool cannot be
 * built.
 */
struct edge_sites *edge_sites_new(const struct conf *c, unsigned nworkers);
/* Site <s>'s counters, summed over <nworkers> workers, plus its carry,
 * into v[EDGE_SITE_NCTR] (edge_counters.h order). */
void edge_site_counters_read(
    const struct edge_site *s, unsigned nworkers, uint64_t *v);
void edge_sites_free(struct edge_sites **tp);
unsigned edge_sites_count(const struct edge_sites *t);
const struct edge_site *edge_sites_at(const struct edge_sites *t, unsigned i);
/* Every pool, origins' and parents', for the health checker: <out> has
 * room for twice the count; returns how many it filled. */
unsigned edge_sites_pools(const struct edge_sites *t, struct origin_pool **out);

/*
 * The site for Host <host>, as cache_sites_find() (cache/cache.h) picks
 * it: an exact name, else a wildcard, else the default site; NULL when
 * none (the caller answers 421).
 */
const struct edge_site *edge_sites_lookup(
    const struct edge_sites *t, const char *host, size_t len);

#endif /* EDGE_SITE_H */
