/*
 * Cost of picking an origin server (origin_pool_pick) and of finding a
 * request's site (edge_sites_lookup), per call, single thread.
 *   bench_pool [ITERATIONS]
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "conf/conf.h"
#include "edge/edge_site.h"
#include "origin/origin.h"

static double
ns_per(uint64_t t0, unsigned long n)
{
	return (double)(cdn_now_ns() - t0) / (double)n;
}

static void
bench_pick(
    enum origin_balance bal, unsigned nsrv, int weighted, unsigned long n)
{
	struct origin_server_conf sc[16];
	struct origin_pool_conf pc;
	struct origin_pool *p;
	char urls[16][32];
	const char *why;
	uint64_t t0, sink = 0;

	memset(&pc, 0, sizeof(pc));
	memset(sc, 0, sizeof(sc));
	for (unsigned i = 0; i < nsrv; i++) {
		snprintf(
		    urls[i], sizeof(urls[i]), "http://10.0.0.%u:80", i + 1);
		sc[i].url = urls[i];
		sc[i].weight = weighted ? i + 1 : 1;
	}
	pc.balance = bal;
	pc.servers = sc;
	pc.nservers = nsrv;
	p = origin_pool_new(&pc, &why);
	CDN_ASSERT(p != NULL);
	t0 = cdn_now_ns();
	for (unsigned long k = 0; k < n; k++)
		sink += (uint64_t)origin_pool_pick(p, XXH3_64bits(&k, 8), -1);
	printf("pick %-16s %2u servers, %s weights: %6.1f ns (%llu)\n",
	    origin_balance_name(bal), nsrv, weighted ? "mixed" : "equal",
	    ns_per(t0, n), (unsigned long long)(sink & 1));
	origin_pool_free(&p);
}

static void
bench_lookup(unsigned long n)
{
	static const char text[] =
	    "listen 127.0.0.1:1\n"
	    "site a.example b.example c.example d.example {\n"
	    "\torigin http://a\n}\n"
	    "site *.cdn.example {\n\torigin http://b\n}\n";
	static const char *const hosts[] = {
	    "b.example", "img7.cdn.example:443", "unknown.example"};
	struct conf *c = conf_new_defaults();
	struct edge_sites *t;
	uint64_t t0, sink = 0;

	CDN_ASSERT(
	    conf_load_buf(c, "bench", text, strlen(text), stderr) == CDN_OK);
	t = edge_sites_new(c, 1); /* one worker: this thread */
	CDN_ASSERT(t != NULL);
	for (size_t h = 0; h < CDN_ARRAY_LEN(hosts); h++) {
		size_t len = strlen(hosts[h]);

		t0 = cdn_now_ns();
		for (unsigned long k = 0; k < n; k++)
			sink += edge_sites_lookup(t, hosts[h], len) != NULL;
		printf("site lookup %-22s %6.1f ns (%llu)\n", hosts[h],
		    ns_per(t0, n), (unsigned long long)(sink & 1));
	}
	edge_sites_free(&t);
	conf_unref(&c);
}

int
main(int argc, char **argv)
{
	unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 2000000;

	bench_pick(ORIGIN_BAL_ROUND_ROBIN, 4, 0, n);
	bench_pick(ORIGIN_BAL_WEIGHTED, 4, 1, n);
	bench_pick(ORIGIN_BAL_LEAST_CONN, 4, 1, n);
	bench_pick(ORIGIN_BAL_HASH, 4, 0, n);
	bench_pick(ORIGIN_BAL_HASH, 4, 1, n);
	bench_pick(ORIGIN_BAL_HASH, 16, 0, n);
	bench_pick(ORIGIN_BAL_HASH, 16, 1, n);
	bench_lookup(n);
	return 0;
}
