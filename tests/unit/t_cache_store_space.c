/*
 * Unit tests of what the store's file holds beyond its pages in use
 * (cache/cache_writer.c, batch_cap): a fast fill of 4 KiB bodies with
 * random keys, paced as edged's fills are, leaves data.mdb at most
 * SLACK_PCT longer than the pages its databases use.  The rest of the file
 * is the pages LMDB cannot reuse yet, those the last two commits freed;
 * batches sized for a large store made them a tenth of a small one.
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
#include "tests/unit/tap.h"
#include "tests/unit/tmptree.h"

#define KIB         1024u
#define MIB         (1024u * 1024u)
#define NOBJ        16384u
#define BODY_LEN    (4 * KIB)
#define PACE_OBJS   2048u /* queued between two syncs, as bench_space */
#define NTAGS       1000u
#define SLACK_PCT   5u
#define DISK_BUDGET (UINT64_C(1) << 30)

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

/* Pages in use in the environment <dir> (every db, the two metas), and
 * its last page number. */
static int
env_pages(const char *dir, uint64_t *used, uint64_t *last, size_t *psize)
{
	static const char *const names[] = {"objects", "bodies", "vary", "lru",
	    "lru_pos", "meta", "purge_rules", "purge_log", "tags"};
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_envinfo ei;
	MDB_stat ms;
	MDB_dbi dbi;
	int rc;

	*used = 2;
	if ((rc = mdb_env_create(&env)) != 0 ||
	    (rc = mdb_env_set_maxdbs(env, 16)) != 0 ||
	    (rc = mdb_env_open(env, dir, MDB_RDONLY, 0644)) != 0 ||
	    (rc = mdb_env_info(env, &ei)) != 0 ||
	    (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) != 0)
		goto out;
	*last = ei.me_last_pgno;
	for (int i = -2; i < (int)(sizeof(names) / sizeof(names[0])); i++) {
		if (i < 0)
			dbi = (MDB_dbi)(i + 2); /* FREE_DBI, MAIN_DBI */
		else if (mdb_dbi_open(txn, names[i], 0, &dbi) != 0)
			continue;
		if ((rc = mdb_stat(txn, dbi, &ms)) != 0)
			goto out;
		*psize = ms.ms_psize;
		*used += ms.ms_branch_pages + ms.ms_leaf_pages +
		    ms.ms_overflow_pages;
	}
out:
	if (txn != NULL)
		mdb_txn_abort(txn);
	if (env != NULL)
		mdb_env_close(env);
	return rc;
}

static void
test_fill_slack(void)
{
	struct cache_store_conf c;
	struct cache_store_stats st;
	struct cache_store *s;
	struct cache_obj *o;
	unsigned char *body;
	uint64_t used = 0, last = 0;
	size_t psize = 0;
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
	for (unsigned id = 0; id < NOBJ; id++) {
		o = make_obj(id, body);
		cache_store_put(s, o);
		cache_obj_unref(&o);
		if ((id + 1) % PACE_OBJS == 0)
			cache_store_sync(s);
	}
	cache_store_sync(s);
	cache_store_stats(s, &st);
	is_int(st.objects, NOBJ, "fill: every object stored");
	is_int(st.put_drops, 0, "fill: no put dropped");
	cache_store_close(&s);
	free(body);

	is_int(env_pages(dir, &used, &last, &psize), 0, "fill: env read");
	is_int(stat(path, &fst), 0, "fill: data.mdb there");
	ok(last + 1 >= used, "fill: pages in use %" PRIu64 " within %" PRIu64,
	    used, last + 1);
	ok((uint64_t)fst.st_size * 100 <= used * psize * (100 + SLACK_PCT),
	    "fill: data.mdb %jd B is within %u%% of the %" PRIu64 " B in use",
	    (intmax_t)fst.st_size, SLACK_PCT, used * psize);
}

int
main(void)
{

	plan_no_plan();
	cdn_log_level_now = CDN_LOG_ERR;
	if (tmptree_make(root, sizeof(root), "t_cache_store_space") != 0)
		return 1;
	test_fill_slack();
	tmptree_remove(root);
	return done_testing();
}
