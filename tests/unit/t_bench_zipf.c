/*
 * The benchmarks' Zipf sampler (tests/bench/bench_zipf.c): its table is
 * the Zipf law, its draws follow the table (a chi-square test over the top
 * ranks and the tail as one bin), and a seed fixes the stream.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>

#include "tests/bench/bench_zipf.h"
#include "tests/unit/tap.h"

#define DRAWS 1000000u
#define BINS  100 /* top ranks tested one by one; the rest is one bin */
/* chi-square, 100 degrees of freedom: P(X > 160) < 1e-4 */
#define CHI2_MAX 160.0

static void
law(uint32_t n, double alpha)
{
	struct bench_zipf z;
	double sum = 0, ratio;
	int rc;

	rc = bench_zipf_init(&z, n, alpha);
	is_int(rc, CDN_OK, "init n=%u alpha=%.1f", n, alpha);
	if (rc != CDN_OK)
		return;
	for (uint32_t k = 0; k < n; k++)
		sum += bench_zipf_pmf(&z, k);
	ok(fabs(sum - 1) < 1e-9, "alpha=%.1f: probabilities sum to 1", alpha);
	/* P(1) / P(k) = k^alpha (ranks counted from 1) */
	ratio = bench_zipf_pmf(&z, 0) / bench_zipf_pmf(&z, 999);
	ok(fabs(ratio / pow(1000, alpha) - 1) < 1e-9,
	    "alpha=%.1f: P(1)/P(1000) = 1000^alpha", alpha);
	ok(bench_zipf_pmf(&z, n) == 0, "alpha=%.1f: no rank n", alpha);
	bench_zipf_fini(&z);
}

static void
draws(uint32_t n, double alpha, uint64_t seed)
{
	static uint32_t hist[BINS + 1];
	struct bench_zipf z;
	uint64_t st = seed;
	double chi2 = 0, want, tail = 1;
	uint32_t r, out = 0;

	if (bench_zipf_init(&z, n, alpha) != CDN_OK) {
		ok(0, "init");
		return;
	}
	memset(hist, 0, sizeof(hist));
	for (uint32_t i = 0; i < DRAWS; i++) {
		r = bench_zipf_next(&z, &st);
		if (r >= n)
			out++;
		hist[r < BINS ? r : BINS]++;
	}
	is_int(out, 0, "alpha=%.1f: every draw is a rank", alpha);
	for (uint32_t k = 0; k < BINS; k++) {
		want = bench_zipf_pmf(&z, k) * DRAWS;
		tail -= bench_zipf_pmf(&z, k);
		chi2 += (hist[k] - want) * (hist[k] - want) / want;
	}
	want = tail * DRAWS;
	chi2 += (hist[BINS] - want) * (hist[BINS] - want) / want;
	if (!ok(chi2 < CHI2_MAX, "alpha=%.1f: draws follow the law", alpha))
		printf("#   chi-square %.1f\n", chi2);
	/* The most popular rank is drawn about P(1) of the time. */
	want = bench_zipf_pmf(&z, 0) * DRAWS;
	ok(fabs(hist[0] - want) < 5 * sqrt(want),
	    "alpha=%.1f: rank 1 drawn %u times, %.0f expected", alpha, hist[0],
	    want);
	bench_zipf_fini(&z);
}

static void
seeds(void)
{
	struct bench_zipf z;
	uint64_t a = 7, b = 7, c = 8;
	int same = 1, differ = 0;

	if (bench_zipf_init(&z, 10000, 0.8) != CDN_OK) {
		ok(0, "init");
		return;
	}
	for (int i = 0; i < 1000; i++) {
		uint32_t x = bench_zipf_next(&z, &a),
		         y = bench_zipf_next(&z, &b),
		         w = bench_zipf_next(&z, &c);
		same &= x == y;
		differ |= x != w;
	}
	ok(same, "one seed, one stream");
	ok(differ, "another seed, another stream");
	bench_zipf_fini(&z);
}

int
main(void)
{
	struct bench_zipf z = {0};
	double u;
	uint64_t st = 1;
	int in_range = 1;

	plan_no_plan();
	is_int(bench_zipf_init(&z, 0, 1.0), CDN_EINVAL, "no ranks: EINVAL");
	is_int(bench_zipf_init(&z, 10, -1.0), CDN_EINVAL, "alpha < 0: EINVAL");
	is_int(bench_zipf_init(&z, 10, NAN), CDN_EINVAL, "alpha NaN: EINVAL");
	ok(z.cdf == NULL, "a refused init leaves the sampler untouched");
	for (int i = 0; i < 100000; i++) {
		u = bench_rng_unit(&st);
		in_range &= u >= 0 && u < 1;
	}
	ok(in_range, "uniform draws lie in [0, 1)");
	law(100000, 0.8);
	law(100000, 1.0);
	draws(100000, 0.8, 1);
	draws(100000, 1.0, 2);
	draws(1000, 0.0, 3); /* alpha 0: uniform */
	seeds();
	return done_testing();
}
