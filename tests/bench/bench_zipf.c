/*
 * Seeded random numbers and a Zipf sampler (bench_zipf.h).  splitmix64
 * (Steele, Lea, Flood: "Fast splittable pseudorandom number generators")
 * is small, has no bad seeds, and passes BigCrush: enough to pick keys.
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>

#include "tests/bench/bench_zipf.h"

uint64_t
bench_rng_next(uint64_t *state)
{
	uint64_t z;

	z = (*state += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

double
bench_rng_unit(uint64_t *state)
{
	return (double)(bench_rng_next(state) >> 11) * 0x1.0p-53;
}

int
bench_zipf_init(struct bench_zipf *z, uint32_t n, double alpha)
{
	double *cdf, sum = 0;

	if (n == 0 || !(alpha >= 0))
		return CDN_EINVAL;
	cdf = malloc((size_t)n * sizeof(*cdf));
	if (cdf == NULL)
		return CDN_ENOMEM;
	for (uint32_t k = 0; k < n; k++) {
		sum += pow((double)k + 1, -alpha);
		cdf[k] = sum;
	}
	for (uint32_t k = 0; k < n; k++)
		cdf[k] /= sum;
	/* Rounding must not leave a u in [cdf[n-1], 1) without a rank. */
	cdf[n - 1] = 1;
	z->n = n;
	z->alpha = alpha;
	z->cdf = cdf;
	return CDN_OK;
}

void
bench_zipf_fini(struct bench_zipf *z)
{
	free(z->cdf);
	z->cdf = NULL;
	z->n = 0;
}

uint32_t
bench_zipf_next(const struct bench_zipf *z, uint64_t *state)
{
	double u = bench_rng_unit(state);
	uint32_t lo = 0, hi = z->n - 1, mid;

	/* The first rank whose cumulative probability exceeds u. */
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (z->cdf[mid] > u)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

double
bench_zipf_pmf(const struct bench_zipf *z, uint32_t rank)
{
	if (rank >= z->n)
		return 0;
	return rank == 0 ? z->cdf[0] : z->cdf[rank] - z->cdf[rank - 1];
}
