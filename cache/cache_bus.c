/*
 * Stream IDs and the shared bus page (cache/cache_bus.h).  No state of
 * its own.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cache/cache_bus.h"

static const uint64_t latency_bounds[] = CACHE_BUS_LATENCY_BOUNDS;

_Static_assert(sizeof(latency_bounds) / sizeof(latency_bounds[0]) + 1 ==
        CACHE_BUS_LATENCY_BUCKETS,
    "one bucket per bound, and one above them");

/* A decimal u64 of s[0..len): CDN_OK or CDN_EINVAL (empty, not a digit,
 * or above UINT64_MAX). */
static int
parse_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0)
		return CDN_EINVAL;
	for (size_t i = 0; i < len; i++) {
		unsigned d = (unsigned)(unsigned char)s[i] - '0';

		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return CDN_EINVAL;
		v = v * 10 + d;
	}
	*out = v;
	return CDN_OK;
}

int
cache_bus_id_parse(const char *s, size_t len, struct cache_bus_id *out)
{
	size_t dash = 0;
	struct cache_bus_id id = {0, 0};

	while (dash < len && s[dash] != '-')
		dash++;
	if (parse_u64(s, dash, &id.ms) != CDN_OK)
		return CDN_EINVAL;
	if (dash < len &&
	    parse_u64(s + dash + 1, len - dash - 1, &id.seq) != CDN_OK)
		return CDN_EINVAL;
	*out = id;
	return CDN_OK;
}

char *
cache_bus_id_format(struct cache_bus_id id, char out[CACHE_BUS_ID_MAX])
{
	snprintf(out, CACHE_BUS_ID_MAX, "%" PRIu64 "-%" PRIu64, id.ms, id.seq);
	return out;
}

int
cache_bus_id_cmp(struct cache_bus_id a, struct cache_bus_id b)
{
	if (a.ms != b.ms)
		return a.ms < b.ms ? -1 : 1;
	if (a.seq != b.seq)
		return a.seq < b.seq ? -1 : 1;
	return 0;
}

void
cache_bus_applied_set(struct cache_bus_page *p, struct cache_bus_id id)
{
	/* A sequence lock: odd while the two halves change. */
	atomic_fetch_add(&p->applied_lock, 1);
	atomic_store(&p->applied_ms, id.ms);
	atomic_store(&p->applied_seq, id.seq);
	atomic_fetch_add(&p->applied_lock, 1);
}

struct cache_bus_id
cache_bus_applied_get(const struct cache_bus_page *p)
{
	struct cache_bus_id id;
	uint64_t before, after;

	/* The writer is another process that may die mid-update, leaving
	 * the lock odd until purged restarts: after a bounded number of
	 * tries, "nothing applied", which errs towards a miss. */
	for (int tries = 0; tries < 1000; tries++) {
		before = atomic_load(&p->applied_lock);
		id.ms = atomic_load(&p->applied_ms);
		id.seq = atomic_load(&p->applied_seq);
		after = atomic_load(&p->applied_lock);
		if (before == after && (before & 1) == 0)
			return id;
	}
	return (struct cache_bus_id){0, 0};
}

void
cache_bus_page_init(struct cache_bus_page *p)
{
	if (atomic_load(&p->magic) != CACHE_BUS_PAGE_MAGIC) {
		/* A page from before the bus existed: every field zero. */
		memset((void *)p, 0, sizeof(*p));
		atomic_store(&p->magic, CACHE_BUS_PAGE_MAGIC);
	}
	if (atomic_load(&p->applied_lock) & 1)
		atomic_fetch_add(&p->applied_lock, 1); /* a writer died */
	atomic_store(&p->disconnected_ms, 0);
	atomic_store(&p->state, CACHE_BUS_STARTING);
}

void
cache_bus_latency_observe(struct cache_bus_page *p, uint64_t us)
{
	unsigned b = 0;

	while (
	    b + 1 < CACHE_BUS_LATENCY_BUCKETS && us > latency_bounds[b] * 1000)
		b++;
	atomic_fetch_add_explicit(&p->latency_le[b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&p->latency_count, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&p->latency_sum_us, us, memory_order_relaxed);
}

/* Within <grace_ms> of <since_ms> at <now_ms>, a clock stepped back
 * counting as within. */
static int
within(uint64_t now_ms, uint64_t since_ms, uint64_t grace_ms)
{
	return now_ms <= since_ms || now_ms - since_ms <= grace_ms;
}

enum cache_bus_verdict
cache_bus_verdict(const struct cache_bus_page *p, uint64_t now_ms,
    uint64_t start_ms, int configured, uint64_t grace_ms,
    enum cache_bus_offline offline)
{
	uint64_t hb, dis;

	if (!configured)
		return CACHE_BUS_SERVE;
	if (p != NULL &&
	    atomic_load_explicit(&p->magic, memory_order_relaxed) ==
	        CACHE_BUS_PAGE_MAGIC) {
		hb = atomic_load_explicit(
		    &p->heartbeat_ms, memory_order_relaxed);
		/* A heartbeat from before edged started is a previous run's
		 * (or a purged that hangs since): it proves nothing. */
		if (hb >= start_ms && within(now_ms, hb, grace_ms)) {
			switch (atomic_load_explicit(
			    &p->state, memory_order_relaxed)) {
			case CACHE_BUS_CURRENT:
				return CACHE_BUS_SERVE;
			case CACHE_BUS_CATCHING_UP:
				return CACHE_BUS_REVALIDATE;
			case CACHE_BUS_DISCONNECTED:
				dis = atomic_load_explicit(
				    &p->disconnected_ms, memory_order_relaxed);
				if (dis != 0 && within(now_ms, dis, grace_ms))
					return CACHE_BUS_SERVE;
				goto offline;
			default:
				break; /* STARTING: nothing proven yet */
			}
		}
	}
	/* Just started: a node catches up before it serves what a missed
	 * purge could cover. */
	if (now_ms < start_ms + grace_ms)
		return CACHE_BUS_REVALIDATE;
offline:
	return offline == CACHE_BUS_OFFLINE_SERVE ? CACHE_BUS_SERVE_OFFLINE
	                                          : CACHE_BUS_REVALIDATE;
}

const char *
cache_bus_state_name(uint64_t state)
{
	static const char *const names[] = {[CACHE_BUS_NONE] = "none",
	    [CACHE_BUS_STARTING] = "starting",
	    [CACHE_BUS_CATCHING_UP] = "catching_up",
	    [CACHE_BUS_CURRENT] = "current",
	    [CACHE_BUS_DISCONNECTED] = "disconnected"};

	return state < CDN_ARRAY_LEN(names) ? names[state] : "unknown";
}
