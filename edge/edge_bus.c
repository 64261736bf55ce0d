/*
 * edged's side of the purge bus (docs/fleet.md, "On the edge"): purged's
 * bus reader writes the shared page (cache/cache_bus.h), edged only reads
 * it, for three things:
 *  - cache hits: can this node prove it has every purge?  If not, a hit is
 *    revalidated with the origin, or served and said so (purge_bus_offline);
 *  - the tier race: a fleet node that has applied purges this one has not
 *    (its Edge-Bus-Applied is after ours) gets no stored object;
 *  - the figures of /stats and /metrics.
 *
 * Threading: struct edge_bus is set up before the workers start and
 * read-only afterwards, but for each worker's own log throttle
 * (edge_worker.bus_log).  The page is read with relaxed loads.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "cache/cache_bus.h"
#include "edge/edge_int.h"
#include "http/http_access.h"

/* Least time between two log lines about serving while offline. */
#define OFFLINE_LOG_INTERVAL_MS 10000
#define OFFLINE_COND            1 /* the one condition of the throttle */

struct edge_bus {
	uint32_t magic;
#define EDGE_BUS_MAGIC 0x9b1e4d27u
	int configured; /* purge_bus is set */
	enum cache_bus_offline offline;
	uint64_t grace_ms;
	uint64_t start_ms;           /* wall clock, when edged started */
	struct cache_bus_page *page; /* NULL without a store */
	struct http_acl fleet;       /* fleet_allow */
};

static uint64_t
wall_ms(const struct timeval *tv)
{
	return (uint64_t)tv->tv_sec * 1000 + (uint64_t)tv->tv_usec / 1000;
}

int
edge_bus_init(struct edge *e)
{
	const struct conf *c = e->conf;
	struct edge_bus *b;
	struct timeval tv;
	const char *why;

	CDN_ASSERT(e->bus == NULL);
	b = cdn_xcalloc(1, sizeof(*b));
	b->magic = EDGE_BUS_MAGIC;
	e->bus = b;
	gettimeofday(&tv, NULL);
	b->start_ms = wall_ms(&tv);
	b->configured = c->purge_bus[0] != '\0';
	b->grace_ms = c->purge_bus_grace;
	b->offline = strcmp(c->purge_bus_offline, "serve") == 0
	    ? CACHE_BUS_OFFLINE_SERVE
	    : CACHE_BUS_OFFLINE_REVALIDATE;
	if (e->store != NULL)
		b->page = cache_store_bus_page(e->store);
	for (unsigned i = 0; i < c->fleet_allow.n; i++) {
		if (http_acl_add(&b->fleet, c->fleet_allow.v[i], &why) !=
		    CDN_OK) {
			CDN_LOG(CDN_LOG_ERR, "edge",
			    "fleet_allow \"%s\": %s (write ADDRESS[/PREFIX] "
			    "or loopback)",
			    c->fleet_allow.v[i], why);
			return CDN_EINVAL;
		}
	}
	return CDN_OK;
}

void
edge_bus_fini(struct edge *e)
{
	struct edge_bus *b = e->bus;

	e->bus = NULL;
	if (b == NULL)
		return;
	MAGIC_CHECK(b, EDGE_BUS_MAGIC);
	http_acl_free(&b->fleet);
	MAGIC_WIPE(b);
	free(b);
}

int
edge_bus_configured(const struct edge *e)
{
	return e->bus != NULL && e->bus->configured;
}

enum cache_bus_verdict
edge_bus_hit(struct edge_worker *w)
{
	const struct edge_bus *b = w->edge->bus;
	enum cache_bus_verdict v;
	struct cdn_ratelog_report r;
	struct timeval tv;
	uint64_t now;

	if (!b->configured)
		return CACHE_BUS_SERVE;
	/* The loop's cached clock: no system call per hit. */
	event_base_gettimeofday_cached(w->base, &tv);
	now = wall_ms(&tv);
	v = cache_bus_verdict(
	    b->page, now, b->start_ms, 1, b->grace_ms, b->offline);
	if (v == CACHE_BUS_SERVE_OFFLINE) {
		switch (cdn_ratelog_hit(&w->bus_log, OFFLINE_COND, now,
		    OFFLINE_LOG_INTERVAL_MS, &r)) {
		case CDN_RATELOG_BEGIN:
			CDN_LOG(CDN_LOG_WARN, "bus",
			    "serving cache hits without proof that every "
			    "purge of the bus was applied (purge_bus_offline "
			    "serve): purged's bus reader is not current");
			break;
		case CDN_RATELOG_REPEAT:
			CDN_LOG(CDN_LOG_WARN, "bus",
			    "still serving hits offline: %llu more in this "
			    "worker, %llu in %llu s",
			    (unsigned long long)r.repeats,
			    (unsigned long long)r.count,
			    (unsigned long long)(r.elapsed_ms / 1000));
			break;
		default:
			break;
		}
	} else if (w->bus_log.cond != 0 &&
	    cdn_ratelog_clear(&w->bus_log, now, &r) == CDN_RATELOG_END) {
		CDN_LOG(CDN_LOG_INFO, "bus",
		    "hits no longer served offline, after %llu in %llu s "
		    "in this worker",
		    (unsigned long long)r.count,
		    (unsigned long long)(r.elapsed_ms / 1000));
	}
	return v;
}

int
edge_bus_in_fleet(const struct edge *e, const char *addr)
{
	return e->bus != NULL && http_acl_allows(&e->bus->fleet, addr);
}

int
edge_bus_behind(struct edge_worker *w, const struct edge_stream *cs,
    struct http_slice value, unsigned nfields)
{
	const struct edge_bus *b = w->edge->bus;
	struct cache_bus_id theirs, ours = {0, 0};

	/* From outside the fleet, or unreadable: as if it were not there
	 * (it never goes upstream either way). */
	if (nfields != 1 ||
	    cache_bus_id_parse(value.p, value.len, &theirs) != CDN_OK ||
	    !http_acl_allows(&b->fleet, edge_stream_client_addr(cs))) {
		EDGE_COUNTER_INC(w, bus_field_ignored);
		return 0;
	}
	/* A node without a bus (or a store) has applied nothing. */
	if (b->configured && b->page != NULL)
		ours = cache_bus_applied_get(b->page);
	if (cache_bus_id_cmp(theirs, ours) > 0) {
		EDGE_COUNTER_INC(w, bus_field_behind);
		return 1;
	}
	EDGE_COUNTER_INC(w, bus_field_current);
	return 0;
}

void
edge_bus_stats(const struct edge *e, struct edge_bus_stats *st)
{
	const struct edge_bus *b = e->bus;
	const struct cache_bus_page *p = b->page;
	struct timeval tv;
	uint64_t now, hb;

	memset(st, 0, sizeof(*st));
	gettimeofday(&tv, NULL);
	now = wall_ms(&tv);
	st->verdict = (uint64_t)cache_bus_verdict(
	    p, now, b->start_ms, b->configured, b->grace_ms, b->offline);
	if (p == NULL ||
	    atomic_load_explicit(&p->magic, memory_order_relaxed) !=
	        CACHE_BUS_PAGE_MAGIC)
		return; /* never written: every figure 0, state none */
#define LD(f) atomic_load_explicit(&p->f, memory_order_relaxed)
	st->state = LD(state);
	hb = LD(heartbeat_ms);
	st->heartbeat_age_ms = now > hb ? now - hb : 0;
	st->lag_entries = LD(lag_entries);
	st->lag_ms = LD(lag_ms);
	st->published = LD(published);
	st->applied = LD(applied);
	st->gaps = LD(gaps);
	st->reconnects = LD(reconnects);
	st->malformed = LD(malformed);
	for (unsigned i = 0; i < CACHE_BUS_LATENCY_BUCKETS; i++)
		st->latency_le[i] = LD(latency_le[i]);
	st->latency_sum_us = LD(latency_sum_us);
#undef LD
	st->applied_id = cache_bus_applied_get(p);
}
