/*
 * Unit tests of what the store's file holds beyond its pages in use
 * (cache/cache_writer.c, batch_cap): a fast fill of 4 KiB bodies with
 * random keys, paced as edged's fills are, leaves data.mdb at most
 * SLACK_PCT longer than the pages its databases use.  The rest of the file
 * is the pages LMDB cannot reuse yet, those the last two commits freed;
 * batches sized for a large store made them a tenth of a small one.
 * And a store of objects that share many tags stays within its budget.
 */
#include "config.h"

#include <inttypes.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "cache/cache.h"
#include "common/cdn_log.h"
#include "tests/unit/lmdbstat.h"
#include "tests/unit/tap.h"
#include "tests/unit/tmptree.h"

#define KIB         1024u
#define MIB         (1024u * 1024u)
#define NOBJ        16384u
#define BODY_LEN    (4 * KIB)
#define PACE_OBJS   2048u /* queued between two syncs, as bench_space */
#define NTAGS       1000u
#define SLACK_PCT   5u
#define STAT_BLOCK  512u /* the unit of st_blocks */
#define DISK_BUDGET (UINT64_C(1) << 30)

/* The tagged fill: objects with TAGGED_TAGS tags each, the same ones. */
#define TAGGED_DISK     (UINT64_C(16) << 20)
#define TAGGED_NOBJ     24000u
#define TAGGED_TAGS     32u
#define TAGGED_BODY_LEN 200u
#define TAGGED_HIGH_PCT 90u
#define TAGGED_LOW_PCT  80u
#define TAGGED_ACCT_PCT 2u /* counted bytes within this of the pages */
#define TAGGED_DROP_PCT 1u /* puts the full map may cost */

static char root[64];

static struct cache_obj *
make_obj(unsigned id, const unsigned char *body)
{
	static const char fields[] = "Content-Type: image/jpeg\r\n"
	                             "Cache-Control: public, max-age=86400\r\n"
	                             "ETag: \"5f3a9c-1a2b3c\"\r\n";
	XXH128_canonical_t c;
	struct cache_decision d;
	struct cache_obj *o;
	char url[64], tag[16];
	int ul, tl;

	ul = snprintf(url, sizeof(url), "example.com/img/%u.jpg", id);
	XXH128_canonicalFromHash(&c, XXH3_128bits(url, (size_t)ul));
	memset(&d, 0, sizeof(d));
	d.storable = 1;
	d.reason = "test";
	d.freshness_s = 86400;
	o = cache_obj_new(c.digest, 0, 200, &d, 1700000000, url, (size_t)ul,
	    fields, sizeof(fields) - 1, "", 0);
	tl = snprintf(tag, sizeof(tag), "t%u", id % NTAGS);
	if (o == NULL || cache_obj_set_tags(o, tag, (size_t)tl) != CDN_OK ||
	    cache_obj_append(o, body, BODY_LEN) != CDN_OK)
		abort();
	return o;
}

/* Put objects 0..n-1 made by <make>, syncing every PACE_OBJS, then sync. */
static void
fill_paced(struct cache_store *s, unsigned n,
    struct cache_obj *(*make)(unsigned, const unsigned char *),
    const unsigned char *body)
{
	struct cache_obj *o;

	for (unsigned id = 0; id < n; id++) {
		o = make(id, body);
		cache_store_put(s, o);
		cache_obj_unref(&o);
		if ((id + 1) % PACE_OBJS == 0)
			cache_store_sync(s);
	}
	cache_store_sync(s);
}

static void
test_fill_slack(void)
{
	struct cache_store_conf c;
	struct cache_store_stats st;
	struct cache_store *s;
	unsigned char *body;
	struct lmdbstat_env es;
	struct stat fst;
	char dir[128], path[160];

	snprintf(dir, sizeof(dir), "%s/fill", root);
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	memset(&c, 0, sizeof(c));
	c.dir = dir;
	c.disk_bytes = DISK_BUDGET;
	c.max_object_bytes = 64 * MIB;
	c.high_water_pct = 90;
	c.low_water_pct = 80;
	s = cache_store_open(&c);
	body = malloc(BODY_LEN);
	if (s == NULL || body == NULL)
		abort();
	for (unsigned i = 0; i < BODY_LEN; i++)
		body[i] = (unsigned char)(i * 131u + 7u);
	fill_paced(s, NOBJ, make_obj, body);
	cache_store_stats(s, &st);
	is_int(st.objects, NOBJ, "fill: every object stored");
	is_int(st.put_drops, 0, "fill: no put dropped");
	cache_store_close(&s);
	free(body);

	is_int(lmdbstat_env(dir, &es), 0, "fill: env read");
	is_int(stat(path, &fst), 0, "fill: data.mdb there");
	ok(es.last_pgno + 1 >= es.used_pages,
	    "fill: pages in use %" PRIu64 " within %" PRIu64, es.used_pages,
	    es.last_pgno + 1);
	/* Allocated blocks: a store written through its map is as long as
	 * the map, with holes. */
	ok((uint64_t)fst.st_blocks * STAT_BLOCK * 100 <=
	        es.used_pages * es.psize * (100 + SLACK_PCT),
	    "fill: data.mdb's %jd B on disk are within %u%% of the %" PRIu64
	    " B in use",
	    (intmax_t)fst.st_blocks * STAT_BLOCK, SLACK_PCT,
	    es.used_pages * es.psize);
}

/* An object of <id> with TAGGED_TAGS tags that every object has. */
static int
tagged_url(unsigned id, char *url, size_t len, uint8_t key[CACHE_HASH_LEN])
{
	XXH128_canonical_t c;
	int ul;

	ul = snprintf(url, len, "example.com/page/%u.html", id);
	XXH128_canonicalFromHash(&c, XXH3_128bits(url, (size_t)ul));
	memcpy(key, c.digest, CACHE_HASH_LEN);
	return ul;
}

static struct cache_obj *
make_tagged(unsigned id, const unsigned char *body)
{
	static const char fields[] = "Content-Type: text/html\r\n"
	                             "Cache-Control: public, max-age=600\r\n";
	uint8_t key[CACHE_HASH_LEN];
	struct cache_decision d;
	struct cache_obj *o;
	char url[64], tags[TAGGED_TAGS * 16];
	size_t tl = 0;
	int ul;

	ul = tagged_url(id, url, sizeof(url), key);
	for (unsigned t = 0; t < TAGGED_TAGS; t++)
		tl += (size_t)snprintf(tags + tl, sizeof(tags) - tl,
		    "%ssection-%02u", t > 0 ? " " : "", t);
	memset(&d, 0, sizeof(d));
	d.storable = 1;
	d.reason = "test";
	d.freshness_s = 600;
	o = cache_obj_new(key, 0, 200, &d, 1700000000, url, (size_t)ul, fields,
	    sizeof(fields) - 1, "", 0);
	if (o == NULL || cache_obj_set_tags(o, tags, tl) != CDN_OK ||
	    cache_obj_append(o, body, TAGGED_BODY_LEN) != CDN_OK)
		abort();
	return o;
}

/*
 * Objects that all carry the same tags put thousands of entries under
 * each tag, which LMDB keeps in a sub-database per tag that mdb_stat does
 * not count; and as the keys are random, each batch rewrites most of
 * those pages, which LMDB cannot reuse until two commits later.  A store
 * filled with them still stays within its budget: the bytes it counts are
 * the pages in use, its file within the map, and it evicts, in smaller
 * transactions when deleting too finds the map full, rather than dropping
 * the puts.
 */
static void
test_tagged_budget(void)
{
	struct cache_store_conf c;
	struct cache_store_stats st;
	struct cache_store *s;
	struct cache_obj *o;
	struct lmdbstat_env es;
	unsigned char body[TAGGED_BODY_LEN];
	uint8_t key[CACHE_HASH_LEN];
	uint64_t used;
	char dir[128], url[64];
	int rc;

	snprintf(dir, sizeof(dir), "%s/tagged", root);
	memset(&c, 0, sizeof(c));
	c.dir = dir;
	c.disk_bytes = TAGGED_DISK;
	c.max_object_bytes = MIB;
	c.high_water_pct = TAGGED_HIGH_PCT;
	c.low_water_pct = TAGGED_LOW_PCT;
	s = cache_store_open(&c);
	if (s == NULL)
		abort();
	for (unsigned i = 0; i < sizeof(body); i++)
		body[i] = (unsigned char)(i * 29u + 3u);
	fill_paced(s, TAGGED_NOBJ, make_tagged, body);
	cache_store_stats(s, &st);
	tagged_url(TAGGED_NOBJ - 1, url, sizeof(url), key);
	rc = cache_store_get(s, key, 0, &o, NULL);
	is_int(rc, CDN_OK, "tagged: the last object put is stored");
	if (rc == CDN_OK)
		cache_obj_unref(&o);
	cache_store_close(&s);
	ok(st.put_drops * 100 <= TAGGED_NOBJ * TAGGED_DROP_PCT,
	    "tagged: %" PRIu64 " puts dropped (%" PRIu64 " MDB_MAP_FULL)",
	    st.put_drops, st.map_full);
	ok(st.evictions > 0, "tagged: %" PRIu64 " objects evicted",
	    st.evictions);
	is_int(lmdbstat_env(dir, &es), 0, "tagged: env read");
	used = es.used_pages * es.psize;
	ok(es.used_pages > es.tree_pages,
	    "tagged: the tag index has sub-databases (%" PRIu64
	    " pages in use, %" PRIu64 " in the trees)",
	    es.used_pages, es.tree_pages);
	ok(st.bytes * 100 >= used * (100 - TAGGED_ACCT_PCT) &&
	        st.bytes * 100 <= used * (100 + TAGGED_ACCT_PCT),
	    "tagged: %" PRIu64 " bytes counted, %" PRIu64 " B in use", st.bytes,
	    used);
	ok(used <= TAGGED_DISK / 100 * TAGGED_HIGH_PCT,
	    "tagged: %" PRIu64 " B in use, under the high-water mark", used);
	ok((es.last_pgno + 1) * es.psize <= TAGGED_DISK,
	    "tagged: the file's pages within cache_size");
}

int
main(void)
{

	plan_no_plan();
	cdn_log_level_now = CDN_LOG_ERR;
	if (tmptree_make(root, sizeof(root), "t_cache_store_space") != 0)
		return 1;
	test_fill_slack();
	test_tagged_budget();
	tmptree_remove(root);
	return done_testing();
}
