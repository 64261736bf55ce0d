/*
 * Unit tests of common/cdn_ratelog.c: a repeating condition is announced
 * once, summed up at most once per interval with the count of what was not
 * reported yet, ended with its totals; a different condition starts over;
 * a flood of occurrences gives a bounded number of lines.
 */
#include "config.h"

#include "common/cdn_ratelog.h"
#include "tests/unit/tap.h"

#define IVL 5000 /* ms between two lines of one episode */

enum { COND_A = 1, COND_B = 2 };

static void
test_episode(void)
{
	struct cdn_ratelog rl = {0};
	struct cdn_ratelog_report r;

	is_int(cdn_ratelog_clear(&rl, 10, &r), CDN_RATELOG_QUIET,
	    "clear without a condition says nothing");
	is_int(cdn_ratelog_hit(&rl, COND_A, 1000, IVL, &r), CDN_RATELOG_BEGIN,
	    "the first occurrence is said at once");
	is_int(r.count, 0, "no previous episode");
	is_int(cdn_ratelog_hit(&rl, COND_A, 1001, IVL, &r), CDN_RATELOG_QUIET,
	    "a repeat right after is counted, not said");
	is_int(cdn_ratelog_hit(&rl, COND_A, 5999, IVL, &r), CDN_RATELOG_QUIET,
	    "still inside the interval");
	is_int(cdn_ratelog_hit(&rl, COND_A, 6000, IVL, &r), CDN_RATELOG_REPEAT,
	    "a repeat once the interval has passed is said");
	is_int(r.repeats, 3, "with the repeats since the first line");
	is_int(r.count, 4, "and the episode's count");
	is_int(r.elapsed_ms, 5000, "and how long it has lasted");
	is_int(cdn_ratelog_hit(&rl, COND_A, 6001, IVL, &r), CDN_RATELOG_QUIET,
	    "the interval restarts at each line");
	is_int(cdn_ratelog_clear(&rl, 7000, &r), CDN_RATELOG_END,
	    "the end is said");
	is_int(r.repeats, 1, "with what was not reported yet");
	is_int(r.count, 5, "and the episode's total");
	is_int(r.elapsed_ms, 6000, "and its length");
	is_int(cdn_ratelog_clear(&rl, 7001, &r), CDN_RATELOG_QUIET,
	    "the end is said once");
	is_int(cdn_ratelog_hit(&rl, COND_A, 7002, IVL, NULL), CDN_RATELOG_BEGIN,
	    "after the end, the condition is new again");
}

static void
test_change(void)
{
	struct cdn_ratelog rl = {0};
	struct cdn_ratelog_report r;

	cdn_ratelog_hit(&rl, COND_A, 100, IVL, NULL);
	cdn_ratelog_hit(&rl, COND_A, 200, IVL, NULL);
	is_int(cdn_ratelog_hit(&rl, COND_B, 300, IVL, &r), CDN_RATELOG_BEGIN,
	    "a different condition is said at once");
	is_int(r.count, 2, "with the figures of the one it replaced");
	is_int(cdn_ratelog_hit(&rl, COND_B, 400, IVL, &r), CDN_RATELOG_QUIET,
	    "and is then rate-limited itself");
	is_int(cdn_ratelog_clear(&rl, 500, &r), CDN_RATELOG_END, "ends");
	is_int(r.count, 2, "counting only its own occurrences");
}

static void
test_flood(void)
{
	struct cdn_ratelog rl = {0};
	uint64_t said = 0, reported = 0, t;
	struct cdn_ratelog_report r;
	enum cdn_ratelog_say s;

	/* 100 occurrences a second for 60 s: one BEGIN, then one line per
	 * interval, and every occurrence is accounted for. */
	for (t = 0; t < 60000; t += 10) {
		s = cdn_ratelog_hit(&rl, COND_A, t, IVL, &r);
		if (s != CDN_RATELOG_QUIET)
			said++;
		if (s == CDN_RATELOG_BEGIN)
			reported++;
		if (s == CDN_RATELOG_REPEAT)
			reported += r.repeats;
	}
	is_int(cdn_ratelog_clear(&rl, t, &r), CDN_RATELOG_END, "end");
	reported += r.repeats;
	ok(said <= 1 + 60000 / IVL, "%llu lines for 6000 occurrences",
	    (unsigned long long)said);
	is_int(reported, 6000, "every occurrence is in some line's count");
	is_int(r.count, 6000, "the end has the total");
}

static void
test_clock_back(void)
{
	struct cdn_ratelog rl = {0};

	cdn_ratelog_hit(&rl, COND_A, 10000, IVL, NULL);
	is_int(cdn_ratelog_hit(&rl, COND_A, 2000, IVL, NULL), CDN_RATELOG_QUIET,
	    "a clock that went back does not make a line");
	is_int(cdn_ratelog_hit(&rl, COND_A, 6999, IVL, NULL), CDN_RATELOG_QUIET,
	    "the interval counts from where it went back to");
	is_int(cdn_ratelog_hit(&rl, COND_A, 7000, IVL, NULL),
	    CDN_RATELOG_REPEAT, "and then lines come again");
}

int
main(void)
{
	plan_no_plan();
	test_episode();
	test_change();
	test_flood();
	test_clock_back();
	return done_testing();
}
