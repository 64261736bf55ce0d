/*
 * Purges at scale (cache/cache_store_purge.c).
 *
 *   bench_purge [N]
 *       Benchmark: fill a store under a mkdtemp directory with N objects
 *       (default 1,000,000) of 64 bytes, every one tagged "all", then time
 *       a hard purge of that tag made by another process (a child with its
 *       own handle, as purged is), and the memory-tier hit path before any
 *       purge, just after it (first check of each object against the
 *       rules) and again (verdict cached in the object).
 *
 *   bench_purge fill DIR N HOST
 *       What tests/py/test_purge_scale.py uses: store N objects HOST/obj/I
 *       (I = 0 .. N-1; what edged stores for "GET /obj/I" with that Host)
 *       into the store in DIR, tagged "all" and "mod10-<I % 10>", then
 *       commit and exit.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cache/cache.h"
#include "common/cdn.h"
#include "common/cdn_log.h"
#include "tests/unit/tmptree.h"

#define GIB        (UINT64_C(1) << 30)
#define HIT_SAMPLE 20000 /* objects the hit path is timed over */
#define HIT_ROUNDS 20

static struct cache_store *
open_store(const char *dir, uint64_t disk, uint64_t mem)
{
	struct cache_store_conf c;

	memset(&c, 0, sizeof(c));
	c.dir = dir;
	c.disk_bytes = disk;
	c.memory_bytes = mem;
	c.max_object_bytes = 1 << 20;
	c.high_water_pct = 90;
	c.low_water_pct = 80;
	return cache_store_open(&c);
}

static struct cache_obj *
make_obj(const char *host, unsigned i, uint64_t gen)
{
	static const char fields[] = "Content-Type: text/plain\r\n"
	                             "Cache-Control: public, max-age=3600\r\n";
	struct cache_decision d;
	struct cache_obj *o;
	uint8_t key[CACHE_HASH_LEN];
	char url[512], tags[64], body[64];
	int n, tn;

	memset(&d, 0, sizeof(d));
	d.storable = 1;
	d.freshness_s = 3600;
	n = snprintf(url, sizeof(url), "%s/obj/%u", host, i);
	tn = snprintf(tags, sizeof(tags), "all mod10-%u", i % 10);
	cache_key_hash(url, (size_t)n, key);
	o = cache_obj_new(key, 0, 200, &d, time(NULL), url, (size_t)n, fields,
	    sizeof(fields) - 1, "", 0);
	CDN_ASSERT(o != NULL);
	memset(body, 'a' + (int)(i % 26), sizeof(body));
	CDN_ASSERT(cache_obj_append(o, body, sizeof(body)) == CDN_OK);
	CDN_ASSERT(cache_obj_set_tags(o, tags, (size_t)tn) == CDN_OK);
	o->purge_gen = gen;
	return o;
}

/* Put objects [from, to); a sync every 4096 keeps the writer's queue
 * (10000 messages) from refusing any. */
static void
fill(struct cache_store *s, const char *host, unsigned from, unsigned to)
{
	uint64_t gen = cache_store_purge_seq(s);

	for (unsigned i = from; i < to; i++) {
		struct cache_obj *o = make_obj(host, i, gen);

		cache_store_put(s, o);
		cache_obj_unref(&o);
		if (i % 4096 == 4095)
			cache_store_sync(s);
	}
	cache_store_sync(s);
}

static int
cmd_fill(const char *dir, unsigned n, const char *host)
{
	struct cache_store *s = open_store(dir, GIB, 8 << 20);
	struct cache_store_stats st;

	if (s == NULL)
		return 1;
	fill(s, host, 0, n);
	cache_store_stats(s, &st);
	printf("stored %llu objects\n", (unsigned long long)st.objects);
	cache_store_close(&s);
	return 0;
}

/* ns per get over the last HIT_SAMPLE objects (the newest: they are the
 * ones in the memory tier). */
static double
hit_ns(struct cache_store *s, const char *host, unsigned n, int *found)
{
	static uint8_t keys[HIT_SAMPLE][CACHE_HASH_LEN];
	unsigned m = n < HIT_SAMPLE ? n : HIT_SAMPLE;
	uint64_t t0;
	char url[512];

	for (unsigned i = 0; i < m; i++) {
		int len =
		    snprintf(url, sizeof(url), "%s/obj/%u", host, n - m + i);

		cache_key_hash(url, (size_t)len, keys[i]);
	}
	*found = 0;
	t0 = cdn_now_ns();
	for (unsigned i = 0; i < m; i++) {
		struct cache_obj *o = NULL;

		if (cache_store_get(s, keys[i], 0, &o, NULL) == CDN_OK) {
			(*found)++;
			cache_obj_unref(&o);
		}
	}
	return (double)(cdn_now_ns() - t0) / m;
}

static double
hit_ns_best(struct cache_store *s, const char *host, unsigned n, int *found)
{
	double best = 1e18, v;

	for (int r = 0; r < HIT_ROUNDS; r++) {
		v = hit_ns(s, host, n, found);
		if (v < best)
			best = v;
	}
	return best;
}

/* Purge tag "all" from a child process; its wall time in ms. */
static double
purge_child(const char *dir, uint64_t *seq)
{
	struct cache_purge_item it;
	double ms = -1;
	int fds[2], status;
	pid_t pid;

	CDN_ASSERT(pipe(fds) == 0);
	pid = fork();
	CDN_ASSERT(pid != -1);
	if (pid == 0) {
		struct cache_store *s2 = open_store(dir, 0, 1 << 20);
		double res[2];
		uint64_t t0, sq = 0;

		memset(&it, 0, sizeof(it));
		it.kind = CACHE_PURGE_TAG;
		it.name = "all";
		it.len = 3;
		if (s2 == NULL)
			_exit(1);
		t0 = cdn_now_ns();
		if (cache_store_purge(s2, &it, 1, 0, 0, &sq) != CDN_OK)
			_exit(1);
		res[0] = (double)(cdn_now_ns() - t0) / 1e6;
		res[1] = (double)sq;
		cache_store_close(&s2);
		_exit(write(fds[1], res, sizeof(res)) == sizeof(res) ? 0 : 1);
	}
	close(fds[1]);
	{
		double res[2];

		if (read(fds[0], res, sizeof(res)) == sizeof(res)) {
			ms = res[0];
			*seq = (uint64_t)res[1];
		}
	}
	close(fds[0]);
	waitpid(pid, &status, 0);
	return ms;
}

static int
cmd_bench(unsigned n)
{
	char tmpl[] = "/tmp/bench_purge.XXXXXX", dir[128];
	struct cache_store *s;
	uint64_t t0, seq = 0;
	double before, first, after, ms;
	int found_before, found_first, found_after;

	if (mkdtemp(tmpl) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(dir, sizeof(dir), "%s/store", tmpl);
	s = open_store(dir, 4 * GIB, 64 << 20);
	if (s == NULL)
		return 1;
	t0 = cdn_now_ns();
	fill(s, "bench.example", 0, n);
	printf("filled %u tagged objects in %.1f s\n", n,
	    (double)(cdn_now_ns() - t0) / 1e9);
	before = hit_ns_best(s, "bench.example", n, &found_before);
	ms = purge_child(dir, &seq);
	printf("hard purge of one tag over %u objects (seq %llu): %.2f ms, "
	       "from another process, synced\n",
	    n, (unsigned long long)seq, ms);
	first = hit_ns(s, "bench.example", n, &found_first);
	/* What was hard-purged is gone: refill the sample, then time hits
	 * after a purge that matches none of them. */
	fill(s, "bench.example", n < HIT_SAMPLE ? 0 : n - HIT_SAMPLE, n);
	after = hit_ns_best(s, "bench.example", n, &found_after);
	printf("memory-tier hit, %d objects: %.0f ns/get before any purge\n",
	    found_before, before);
	printf("first lookup after the purge (rule check, miss): %.0f ns/get "
	       "(%d of %d still found)\n",
	    first, found_first, n < HIT_SAMPLE ? (int)n : HIT_SAMPLE);
	printf("memory-tier hit after the purge (refilled): %.0f ns/get, "
	       "%d found\n",
	    after, found_after);
	cache_store_close(&s);
	tmptree_remove(tmpl);
	return found_first == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	cdn_log_level_now = CDN_LOG_ERR;
	if (argc == 5 && strcmp(argv[1], "fill") == 0)
		return cmd_fill(
		    argv[2], (unsigned)strtoul(argv[3], NULL, 10), argv[4]);
	if (argc <= 2) {
		unsigned long n =
		    argc == 2 ? strtoul(argv[1], NULL, 10) : 1000000ul;

		if (n == 0 || n > 10000000ul) {
			fprintf(stderr, "usage: %s [N] | fill DIR N HOST\n",
			    argv[0]);
			return 2;
		}
		return cmd_bench((unsigned)n);
	}
	fprintf(stderr, "usage: %s [N] | fill DIR N HOST\n", argv[0]);
	return 2;
}
