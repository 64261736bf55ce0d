/*
 * Seeded random numbers and a Zipf sampler for the benchmarks (pure
 * logic, no clock, no global state): the same seed gives the same trace on
 * every machine, so two eviction policies can be fed one request stream.
 */
#ifndef BENCH_ZIPF_H
#define BENCH_ZIPF_H

#include <stdint.h>

#include "common/cdn.h"

/* Next 64 random bits of the splitmix64 stream whose state is *state. */
uint64_t bench_rng_next(uint64_t *state);
/* A double uniform in [0, 1) (53 random bits). */
double bench_rng_unit(uint64_t *state);

/*
 * Ranks 0..n-1 drawn with P(rank k) proportional to 1 / (k + 1)^alpha:
 * rank 0 is the most popular.  Sampling inverts a table of the cumulative
 * distribution (n doubles) by binary search, so it is exact for any alpha
 * >= 0, at 8 bytes per rank.
 */
struct bench_zipf {
	uint32_t n;
	double alpha;
	double *cdf; /* cdf[k] = P(rank <= k); cdf[n - 1] == 1 */
};

/* CDN_EINVAL if n == 0 or alpha < 0 (or not a number), CDN_ENOMEM if the
 * table cannot be allocated; *z is then left untouched. */
int bench_zipf_init(struct bench_zipf *z, uint32_t n, double alpha) CDN_WUR;
void bench_zipf_fini(struct bench_zipf *z);
/* One rank in 0..n-1, drawn with the random stream *state. */
uint32_t bench_zipf_next(const struct bench_zipf *z, uint64_t *state);
/* The exact probability of <rank> (0 if rank >= n). */
double bench_zipf_pmf(const struct bench_zipf *z, uint32_t rank);

#endif
