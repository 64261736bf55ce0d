/*
 * Unit tests for cache/cache_bus.c: stream IDs (parse, format, order) and
 * the shared page's applied ID, latency histogram and writer start-up.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cache/cache_bus.h"
#include "tests/unit/tap.h"

static void
test_ids(void)
{
	static const struct {
		const char *in;
		int rc;
		uint64_t ms, seq;
	} cases[] = {
	    {"1733540000000-3", CDN_OK, 1733540000000u, 3},
	    {"0-0", CDN_OK, 0, 0},
	    {"12", CDN_OK, 12, 0}, /* Redis reads "<ms>" as seq 0 */
	    {"18446744073709551615-18446744073709551615", CDN_OK, UINT64_MAX,
	        UINT64_MAX},
	    {"18446744073709551616-0", CDN_EINVAL, 0, 0}, /* > UINT64_MAX */
	    {"", CDN_EINVAL, 0, 0},
	    {"-1", CDN_EINVAL, 0, 0},
	    {"1-", CDN_EINVAL, 0, 0},
	    {"1-2-3", CDN_EINVAL, 0, 0},
	    {"1 -2", CDN_EINVAL, 0, 0},
	    {"+1-2", CDN_EINVAL, 0, 0},
	    {"1-x", CDN_EINVAL, 0, 0},
	};
	char buf[CACHE_BUS_ID_MAX];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cache_bus_id id = {7, 7};
		int rc =
		    cache_bus_id_parse(cases[i].in, strlen(cases[i].in), &id);

		is_int(rc, cases[i].rc, "parse \"%s\"", cases[i].in);
		if (cases[i].rc != CDN_OK) {
			ok(id.ms == 7 && id.seq == 7, "\"%s\": untouched",
			    cases[i].in);
			continue;
		}
		ok(id.ms == cases[i].ms && id.seq == cases[i].seq,
		    "\"%s\": the two numbers", cases[i].in);
	}
	is_str(cache_bus_id_format(
	           (struct cache_bus_id){UINT64_MAX, UINT64_MAX}, buf),
	    "18446744073709551615-18446744073709551615", "longest ID fits");
	is_str(cache_bus_id_format((struct cache_bus_id){5, 0}, buf), "5-0",
	    "format");
	is_int(cache_bus_id_cmp(
	           (struct cache_bus_id){1, 9}, (struct cache_bus_id){2, 0}),
	    -1, "ms orders first");
	is_int(cache_bus_id_cmp(
	           (struct cache_bus_id){2, 1}, (struct cache_bus_id){2, 0}),
	    1, "then seq");
	is_int(cache_bus_id_cmp(
	           (struct cache_bus_id){2, 1}, (struct cache_bus_id){2, 1}),
	    0, "equal");
}

static void
test_page(void)
{
	static struct cache_bus_page page;
	struct cache_bus_id id;

	memset(&page, 0xa5, sizeof(page)); /* a page of another layout */
	cache_bus_page_init(&page);
	ok(page.magic == CACHE_BUS_PAGE_MAGIC, "init: magic");
	ok(page.state == CACHE_BUS_STARTING, "init: starting");
	ok(page.applied == 0 && page.latency_count == 0,
	    "init: an unknown page is zeroed");
	id = cache_bus_applied_get(&page);
	ok(id.ms == 0 && id.seq == 0, "nothing applied yet");
	cache_bus_applied_set(&page, (struct cache_bus_id){100, 2});
	id = cache_bus_applied_get(&page);
	ok(id.ms == 100 && id.seq == 2, "applied ID read back");
	page.applied = 41;
	page.applied_lock++; /* the writer died mid-update */
	id = cache_bus_applied_get(&page);
	ok(id.ms == 0 && id.seq == 0, "a lock left odd reads as none");
	cache_bus_page_init(&page);
	ok((page.applied_lock & 1) == 0, "init releases it");
	ok(page.applied == 41, "counters carry on over a restart");
	id = cache_bus_applied_get(&page);
	ok(id.ms == 100 && id.seq == 2, "and the ID reads again");

	cache_bus_latency_observe(&page, 0);
	cache_bus_latency_observe(&page, 1000);    /* 1 ms: le 1 */
	cache_bus_latency_observe(&page, 1001);    /* le 2 */
	cache_bus_latency_observe(&page, 49000);   /* le 50 */
	cache_bus_latency_observe(&page, 6000000); /* above 5000 ms */
	ok(page.latency_le[0] == 2, "0 and 1 ms in the first bucket");
	ok(page.latency_le[1] == 1, "1.001 ms in the second");
	ok(page.latency_le[5] == 1, "49 ms in le 50");
	ok(page.latency_le[CACHE_BUS_LATENCY_BUCKETS - 1] == 1,
	    "6 s above the last bound");
	ok(page.latency_count == 5 && page.latency_sum_us == 6051001,
	    "count and sum");
}

/* A page as purged's reader would leave it. */
static void
page_set(struct cache_bus_page *p, uint64_t state, uint64_t hb, uint64_t dis)
{
	memset(p, 0, sizeof(*p));
	p->magic = CACHE_BUS_PAGE_MAGIC;
	p->state = state;
	p->heartbeat_ms = hb;
	p->disconnected_ms = dis;
}

#define START UINT64_C(1700000000000) /* edged's start, wall clock ms */
#define GRACE UINT64_C(10000)

static enum cache_bus_verdict
verdict(const struct cache_bus_page *p, uint64_t now, enum cache_bus_offline o)
{
	return cache_bus_verdict(p, now, START, 1, GRACE, o);
}

static void
test_verdict(void)
{
	static struct cache_bus_page page;
	const enum cache_bus_offline R = CACHE_BUS_OFFLINE_REVALIDATE;
	const enum cache_bus_offline S = CACHE_BUS_OFFLINE_SERVE;
	uint64_t late = START + 60000; /* long after start-up */

	page_set(&page, CACHE_BUS_DISCONNECTED, late - 1000, late - 50000);
	is_int(cache_bus_verdict(&page, late, START, 0, GRACE, S),
	    CACHE_BUS_SERVE, "no bus configured: serve, whatever the page");
	is_int(cache_bus_verdict(NULL, late, START, 0, GRACE, S),
	    CACHE_BUS_SERVE, "no bus, no page: serve");

	page_set(&page, CACHE_BUS_CURRENT, late - 1000, 0);
	is_int(verdict(&page, late, S), CACHE_BUS_SERVE, "current: serve");
	page_set(&page, CACHE_BUS_CURRENT, START - 1000, 0);
	is_int(verdict(&page, START + 1, S), CACHE_BUS_REVALIDATE,
	    "current, but its heartbeat is older than edged: revalidate "
	    "during the start grace");
	page_set(&page, CACHE_BUS_CURRENT, START + 1, 0);
	is_int(verdict(&page, START + 2, S), CACHE_BUS_SERVE,
	    "current since edged started: serve at once");

	page_set(&page, CACHE_BUS_CATCHING_UP, late - 1000, 0);
	is_int(verdict(&page, late, S), CACHE_BUS_REVALIDATE,
	    "catching up: revalidate even with offline serve");
	is_int(verdict(&page, late, R), CACHE_BUS_REVALIDATE,
	    "catching up: revalidate");

	/* Disconnected: the grace counts from disconnected_ms. */
	page_set(&page, CACHE_BUS_DISCONNECTED, late - 500, late - GRACE);
	is_int(verdict(&page, late, S), CACHE_BUS_SERVE,
	    "disconnected exactly grace ago: still serve");
	page_set(&page, CACHE_BUS_DISCONNECTED, late - 500, late - GRACE - 1);
	is_int(verdict(&page, late, S), CACHE_BUS_SERVE_OFFLINE,
	    "disconnected 1 ms past grace, offline serve: serve offline");
	is_int(verdict(&page, late, R), CACHE_BUS_REVALIDATE,
	    "... offline revalidate: revalidate");
	page_set(&page, CACHE_BUS_DISCONNECTED, late - 500, 0);
	is_int(verdict(&page, late, S), CACHE_BUS_SERVE_OFFLINE,
	    "disconnected, never current: no grace");
	is_int(verdict(&page, START + 100, S), CACHE_BUS_SERVE_OFFLINE,
	    "... not even during edged's start grace");

	/* The page is believed while its heartbeat is at most grace old. */
	page_set(&page, CACHE_BUS_CURRENT, late - GRACE, 0);
	is_int(verdict(&page, late, S), CACHE_BUS_SERVE,
	    "heartbeat exactly grace old: believed");
	page_set(&page, CACHE_BUS_CURRENT, late - GRACE - 1, 0);
	is_int(verdict(&page, late, S), CACHE_BUS_SERVE_OFFLINE,
	    "heartbeat 1 ms older than grace: purged dead or hung, offline");
	is_int(verdict(&page, late, R), CACHE_BUS_REVALIDATE,
	    "... revalidate by default");

	/* A previous run's page: heartbeat before edged started. */
	page_set(&page, CACHE_BUS_CURRENT, START - 1, 0);
	is_int(verdict(&page, START + GRACE - 1, S), CACHE_BUS_REVALIDATE,
	    "previous run's page, within the start grace: revalidate");
	is_int(verdict(&page, START + GRACE, S), CACHE_BUS_SERVE_OFFLINE,
	    "... at the grace: offline");

	page_set(&page, CACHE_BUS_STARTING, START + 5, 0);
	is_int(verdict(&page, START + 10, S), CACHE_BUS_REVALIDATE,
	    "purged starting, edged just started: revalidate");
	page_set(&page, CACHE_BUS_STARTING, late - 10, 0);
	is_int(verdict(&page, late, S), CACHE_BUS_SERVE_OFFLINE,
	    "purged starting long after edged: offline");

	page_set(&page, CACHE_BUS_CURRENT, late - 10, 0);
	page.magic = 0;
	is_int(verdict(&page, late, S), CACHE_BUS_SERVE_OFFLINE,
	    "wrong magic: not believed");
	is_int(verdict(NULL, START + 1, R), CACHE_BUS_REVALIDATE,
	    "no page at start-up: revalidate");
	page_set(&page, 99, late - 10, 0);
	is_int(verdict(&page, late, S), CACHE_BUS_SERVE_OFFLINE,
	    "an unknown state proves nothing");
	page_set(&page, CACHE_BUS_CURRENT, late + 5000, 0);
	is_int(verdict(&page, late, S), CACHE_BUS_SERVE,
	    "a heartbeat ahead of our clock counts as recent");

	is_str(cache_bus_state_name(CACHE_BUS_CATCHING_UP), "catching_up",
	    "state names");
	is_str(cache_bus_state_name(77), "unknown", "unknown state name");
}

int
main(void)
{
	plan_no_plan();
	test_ids();
	test_page();
	test_verdict();
	return done_testing();
}
