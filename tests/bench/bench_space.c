/*
 * What a cache_size buys: fills a store through the store API, as edged's
 * fills do (cache_store_put, the writer thread's batches), then reopens
 * its LMDB environment read-only and prints the bytes on disk per byte of
 * body: data.mdb's allocated blocks, the pages of each database's tree
 * (mdb_stat), and the pages in use (with the tags' sub-databases, which
 * mdb_stat leaves out).
 *   bench_space [4k|mix|all] [OBJECTS] [--keep DIR]
 * 4k:  OBJECTS (100,000) bodies of 4 KiB.
 * mix: OBJECTS (20,000) bodies from 1 KiB to 1 MiB, log-normal with a
 *      median of 16 KiB (sigma 1.2, fixed seed, clamped to the range).
 * Every object has a 40-byte URL, a 152-byte header block and one tag of
 * 1,000.  The store is under a mkdtemp directory removed at the end,
 * unless --keep names a directory to create and leave (for inspection).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/cache.h"
#include "common/cdn.h"
#include "common/cdn_log.h"
#include "tests/unit/lmdbstat.h"
#include "tests/unit/tmptree.h"

#define KIB          (UINT64_C(1) << 10)
#define MIB          (UINT64_C(1) << 20)
#define DISK_BUDGET  (UINT64_C(16) << 30) /* never reached: no eviction */
#define PACE_BYTES   (UINT64_C(32) << 20) /* queued between two syncs */
#define PACE_OBJECTS 2048                 /* within the writer queue */
#define MIX_MEDIAN   16384.0
#define MIX_SIGMA    1.2
#define MIX_MIN      KIB
#define MIX_MAX      MIB
#define SEED         0x5eed5eedu
#define NTAGS        1000
#define STAT_BLOCK   512 /* the unit of st_blocks */

static uint64_t rng_state;

/* xorshift64*: the same sequence on every machine. */
static uint64_t
rng_next(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * UINT64_C(2685821657736338717);
}

/* Uniform in (0, 1). */
static double
rng_unit(void)
{
	return ((double)(rng_next() >> 11) + 0.5) / 9007199254740992.0;
}

/* Log-normal body size, clamped to [MIX_MIN, MIX_MAX] (Box-Muller). */
static size_t
mix_size(void)
{
	double z, n;

	z = sqrt(-2.0 * log(rng_unit())) * cos(2.0 * M_PI * rng_unit());
	n = MIX_MEDIAN * exp(MIX_SIGMA * z);
	if (n < (double)MIX_MIN)
		n = (double)MIX_MIN;
	if (n > (double)MIX_MAX)
		n = (double)MIX_MAX;
	return (size_t)n;
}

static struct cache_obj *
make_obj(unsigned id, const unsigned char *body, size_t len)
{
	static const char fields[] =
	    "Content-Type: image/jpeg\r\n"
	    "Cache-Control: public, max-age=86400\r\n"
	    "ETag: \"5f3a9c-1a2b3c\"\r\n"
	    "Last-Modified: Tue, 24 Nov 2026 10:00:00 GMT\r\n"
	    "Accept-Ranges: bytes\r\n";
	char url[64], tag[16];
	uint8_t key[CACHE_HASH_LEN];
	struct cache_decision d;
	struct cache_obj *o;
	int n, tn;

	n = snprintf(url, sizeof(url), "https://www.example.com/img/%08x.jpg",
	    id * 2654435761u);
	cache_key_hash(url, (size_t)n, key);
	memset(&d, 0, sizeof(d));
	d.storable = 1;
	d.reason = "bench";
	d.freshness_s = 86400;
	o = cache_obj_new(key, 0, 200, &d, 1700000000, url, (size_t)n, fields,
	    sizeof(fields) - 1, "", 0);
	tn = snprintf(tag, sizeof(tag), "t%u", id % NTAGS);
	if (o == NULL || cache_obj_set_tags(o, tag, (size_t)tn) != CDN_OK ||
	    cache_obj_append(o, body, len) != CDN_OK) {
		fprintf(stderr, "bench_space: out of memory\n");
		exit(1);
	}
	return o;
}

/* Fill <dir> with <count> objects; the sum of their body bytes. */
static uint64_t
fill(const char *dir, int is_mix, unsigned count, uint64_t *drops)
{
	struct cache_store_conf c;
	struct cache_store_stats st;
	struct cache_store *s;
	struct cache_obj *o;
	unsigned char *body;
	uint64_t total = 0, pending = 0;
	unsigned since = 0;
	size_t len;

	memset(&c, 0, sizeof(c));
	c.dir = dir;
	c.disk_bytes = DISK_BUDGET;
	c.memory_bytes = 0;
	c.max_object_bytes = 64 * MIB;
	c.high_water_pct = 90;
	c.low_water_pct = 80;
	s = cache_store_open(&c);
	body = malloc(MIX_MAX);
	if (s == NULL || body == NULL) {
		fprintf(
		    stderr, "bench_space: cannot open a store in %s\n", dir);
		exit(1);
	}
	rng_state = SEED;
	for (size_t i = 0; i < MIX_MAX; i++)
		body[i] = (unsigned char)rng_next();
	for (unsigned id = 0; id < count; id++) {
		len = is_mix ? mix_size() : 4 * KIB;
		o = make_obj(id, body, len);
		(void)cache_store_put(s, o);
		cache_obj_unref(&o);
		total += len;
		pending += len;
		if (++since >= PACE_OBJECTS || pending >= PACE_BYTES) {
			cache_store_sync(s);
			since = 0;
			pending = 0;
		}
	}
	cache_store_sync(s);
	cache_store_stats(s, &st);
	*drops = st.put_drops;
	cache_store_close(&s);
	free(body);
	return total;
}

/* Print the environment's pages per database against <body> bytes. */
static int
report(const char *name, const char *dir, unsigned count, uint64_t body,
    uint64_t drops)
{
	char path[4200];
	struct stat fst;
	struct lmdbstat_env es;
	MDB_env *env;
	MDB_txn *txn;
	MDB_stat ms;
	uint64_t pages;
	int rc;

	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	if (stat(path, &fst) != 0) {
		fprintf(stderr, "bench_space: %s: %s\n", path, strerror(errno));
		return 1;
	}
	if ((rc = lmdbstat_env(dir, &es)) != 0 ||
	    (rc = lmdbstat_open(dir, &env, &txn)) != 0) {
		fprintf(stderr, "bench_space: %s: %s\n", dir, mdb_strerror(rc));
		return 1;
	}
	printf("%s: %u objects, %.1f MB of body (%.1f KiB each on average), "
	       "%" PRIu64 " puts dropped\n",
	    name, count, (double)body / 1e6, (double)body / count / 1024.0,
	    drops);
	printf("  %-12s %10s %8s %8s %10s %10s %8s\n", "db", "entries",
	    "branch", "leaf", "overflow", "MB", "B/object");
	for (int i = -1; i < (int)CDN_ARRAY_LEN(lmdbstat_db_names); i++) {
		const char *dn = i < 0 ? "(free list)" : lmdbstat_db_names[i];

		if (i < 0)
			rc = mdb_stat(txn, LMDBSTAT_FREE_DBI, &ms);
		else
			rc = lmdbstat_db(txn, lmdbstat_db_names[i], &ms);
		if (rc != 0)
			continue;
		pages = lmdbstat_pages(&ms);
		printf("  %-12s %10zu %8zu %8zu %10zu %10.1f %8.0f\n", dn,
		    ms.ms_entries, ms.ms_branch_pages, ms.ms_leaf_pages,
		    ms.ms_overflow_pages, (double)(pages * es.psize) / 1e6,
		    (double)(pages * es.psize) / count);
	}
	printf("  pages in trees %10" PRIu64 " (%.1f MB): %.3f x body\n",
	    es.tree_pages, (double)(es.tree_pages * es.psize) / 1e6,
	    (double)(es.tree_pages * es.psize) / body);
	printf("  pages in use   %10" PRIu64 " (%.1f MB): %.3f x body "
	       "(the trees and the tags' sub-databases)\n",
	    es.used_pages, (double)(es.used_pages * es.psize) / 1e6,
	    (double)(es.used_pages * es.psize) / body);
	/* Its allocated blocks: written through its map, data.mdb is as
	 * long as the map, with holes. */
	printf("  data.mdb       %10.1f MB on disk (%" PRIu64
	       " pages to the last, %.1f MB long): %.3f x body\n",
	    (double)fst.st_blocks * STAT_BLOCK / 1e6, es.last_pgno + 1,
	    (double)fst.st_size / 1e6,
	    (double)fst.st_blocks * STAT_BLOCK / body);
	lmdbstat_close(&env, &txn);
	return 0;
}

static int
run(const char *name, const char *root, unsigned count)
{
	char dir[4096];
	uint64_t body, drops;

	if (strlen(root) > sizeof(dir) - 16)
		return 1;

	snprintf(dir, sizeof(dir), "%s/%s", root, name);
	body = fill(dir, strcmp(name, "mix") == 0, count, &drops);
	return report(name, dir, count, body, drops);
}

int
main(int argc, char **argv)
{
	char tmp[] = "/tmp/bench-space-XXXXXX";
	const char *what = "all", *keep = NULL, *root;
	unsigned count = 0;
	int rc = 0;

	cdn_log_level_now = CDN_LOG_WARN;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--keep") == 0 && i + 1 < argc)
			keep = argv[++i];
		else if (argv[i][strspn(argv[i], "0123456789")] == '\0')
			count = (unsigned)strtoul(argv[i], NULL, 10);
		else
			what = argv[i];
	}
	if (strcmp(what, "4k") != 0 && strcmp(what, "mix") != 0 &&
	    strcmp(what, "all") != 0) {
		fprintf(stderr,
		    "usage: bench_space [4k|mix|all] [OBJECTS] [--keep DIR]\n");
		return 2;
	}
	if (keep != NULL) {
		if (mkdir(keep, 0755) != 0) {
			fprintf(stderr, "bench_space: %s: %s\n", keep,
			    strerror(errno));
			return 1;
		}
		root = keep;
	} else if ((root = mkdtemp(tmp)) == NULL) {
		perror("bench_space: mkdtemp");
		return 1;
	}
	if (strcmp(what, "mix") != 0)
		rc |= run("4k", root, count != 0 ? count : 100000);
	if (strcmp(what, "4k") != 0)
		rc |= run("mix", root, count != 0 ? count : 20000);
	if (keep == NULL)
		tmptree_remove(root);
	return rc;
}
