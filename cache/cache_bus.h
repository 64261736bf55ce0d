/*
 * The purge bus's state as every process of one cache directory sees it
 * (docs/fleet.md).  purged's bus reader is its only writer; edged reads it
 * on lookups (is this node current?), for the tier race (which purges has
 * it applied?) and for /metrics.  It lives in the shared page of
 * CACHE_PURGE_SEQ_FILE beside the purge seq (cache_store_bus_page), so a
 * read is a few loads from memory: no system call, no LMDB transaction.
 *
 * Also the stream ID type of Redis Streams ("<ms>-<seq>") with its parser,
 * formatter and order, used by purged, edgectl and edged alike.
 */
#ifndef CACHE_BUS_H
#define CACHE_BUS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cdn.h"

/* A Redis stream entry ID; {0, 0} is "none". */
struct cache_bus_id {
	uint64_t ms;
	uint64_t seq;
};

/* "18446744073709551615-18446744073709551615" and its NUL. */
#define CACHE_BUS_ID_MAX 42

/*
 * Parse "<ms>-<seq>" (both decimal, no sign, no spaces; "<ms>" alone means
 * seq 0, as Redis reads it) from s[0..len).  CDN_OK or CDN_EINVAL.
 */
int cache_bus_id_parse(
    const char *s, size_t len, struct cache_bus_id *out) CDN_WUR;

/* Format <id> as "<ms>-<seq>" into out[CACHE_BUS_ID_MAX]; returns out. */
char *cache_bus_id_format(struct cache_bus_id id, char out[CACHE_BUS_ID_MAX]);

/* -1, 0 or 1 as a is before, equal to or after b in stream order. */
int cache_bus_id_cmp(struct cache_bus_id a, struct cache_bus_id b);

/* What the bus reader is doing (cache_bus_page.state). */
enum cache_bus_state {
	CACHE_BUS_NONE = 0,     /* no bus configured, or never written */
	CACHE_BUS_STARTING,     /* purged started, not yet connected */
	CACHE_BUS_CATCHING_UP,  /* connected, reading what it missed */
	CACHE_BUS_CURRENT,      /* connected, applied all there is */
	CACHE_BUS_DISCONNECTED, /* lost the bus; see disconnected_ms */
};

/* Upper bounds (ms) of the publish-to-apply latency histogram's buckets;
 * the last bucket is everything above. */
#define CACHE_BUS_LATENCY_BOUNDS                                               \
	{                                                                      \
		1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000                 \
	}
#define CACHE_BUS_LATENCY_BUCKETS 12

/*
 * The shared state.  Each field is loaded on its own, so two fields may
 * come from two updates; only the applied ID is read consistently
 * (cache_bus_applied_get).  The page outlives processes: a reader checks
 * magic and that heartbeat_ms is recent before it believes the rest.
 */
struct cache_bus_page {
	_Atomic uint64_t magic;
#define CACHE_BUS_PAGE_MAGIC UINT64_C(0x6275737061676531) /* "buspage1" */
	_Atomic uint64_t state;        /* enum cache_bus_state */
	_Atomic uint64_t heartbeat_ms; /* wall clock, written every second */
	/* When the reader last lost the bus (wall clock ms); 0 while it has
	 * not been current since purged started. */
	_Atomic uint64_t disconnected_ms;
	/* The last entry applied, under a sequence lock. */
	_Atomic uint64_t applied_lock; /* odd while being written */
	_Atomic uint64_t applied_ms, applied_seq;
	/* How far behind the stream's newest entry it is. */
	_Atomic uint64_t lag_entries, lag_ms;
	/* Counters since the page was created. */
	_Atomic uint64_t published; /* purges this node appended */
	_Atomic uint64_t applied;   /* entries applied from the bus */
	_Atomic uint64_t gaps; /* trimmed stretches: everything soft-purged */
	_Atomic uint64_t reconnects;
	_Atomic uint64_t malformed; /* entries skipped as unreadable */
	/* Publish (the entry ID's time) to applied here, in ms. */
	_Atomic uint64_t latency_le[CACHE_BUS_LATENCY_BUCKETS];
	_Atomic uint64_t latency_count, latency_sum_us;
};

/*
 * Make the page the writer's at its start: fields zeroed if the page has
 * never held bus state, a lock left odd by a writer that died released,
 * state STARTING, not yet current.  Counters carry on.
 */
void cache_bus_page_init(struct cache_bus_page *p);

/* Record <id> as applied (the single writer only). */
void cache_bus_applied_set(struct cache_bus_page *p, struct cache_bus_id id);

/* The last applied ID, never torn between two updates. */
struct cache_bus_id cache_bus_applied_get(const struct cache_bus_page *p);

/* Add one publish-to-apply latency of <us> microseconds to the histogram
 * (the single writer only). */
void cache_bus_latency_observe(struct cache_bus_page *p, uint64_t us);

/* What a cache hit may do, as far as the bus can tell (cache_bus_verdict). */
enum cache_bus_verdict {
	CACHE_BUS_SERVE = 0,     /* serve as usual */
	CACHE_BUS_REVALIDATE,    /* treat as stale: ask the origin first */
	CACHE_BUS_SERVE_OFFLINE, /* serve, and say the bus is out of reach */
};

/* What a node was told to do while it cannot prove it is current
 * (purge_bus_offline). */
enum cache_bus_offline {
	CACHE_BUS_OFFLINE_REVALIDATE = 0,
	CACHE_BUS_OFFLINE_SERVE,
};

/*
 * Can this node prove it has every purge of the bus (docs/fleet.md, "On
 * the edge")?  <p>: the shared page (NULL: none could be mapped); <now_ms>
 * and <start_ms>: wall clock now and when edged started; <configured>:
 * purge_bus is set (if not: always SERVE); <grace_ms>: purge_bus_grace;
 * <offline>: purge_bus_offline.
 *  - The page is believed when its magic is right and its heartbeat is
 *    from since edged started and at most <grace_ms> old.
 *  - Believed and CURRENT: SERVE.  CATCHING_UP: REVALIDATE.  DISCONNECTED
 *    for at most <grace_ms> since disconnected_ms (0: never current, no
 *    grace): SERVE.
 *  - Not believed, or STARTING (not proven either way yet), while edged
 *    started less than <grace_ms> ago: REVALIDATE (it catches up first).
 *  - Anything else: <offline> (REVALIDATE, or SERVE_OFFLINE).
 * A few loads from the page; no system call.
 */
enum cache_bus_verdict cache_bus_verdict(const struct cache_bus_page *p,
    uint64_t now_ms, uint64_t start_ms, int configured, uint64_t grace_ms,
    enum cache_bus_offline offline);

/* The name of a page's state ("current"...; "unknown" past the enum). */
const char *cache_bus_state_name(uint64_t state);

#endif /* CACHE_BUS_H */
