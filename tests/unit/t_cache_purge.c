/*
 * Unit tests of purges in cache/: tag parsing (Surrogate-Key and Cache-Tag
 * styles, limits), the rule table's verdicts (URL, tag, prefix; soft,
 * hard; purge generations), and purges through the store: a hard URL
 * purge deletes every variant and counts them, a tag purge hides objects
 * in memory and on disk, a soft purge marks them, a dry run changes
 * nothing, a purge survives reopening, a second store handle on the same
 * directory (another process's view) sees a purge through the shared
 * page, and a fill that began before a purge is not stored.
 */
#include "config.h"

#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/cache_int.h"
#include "common/cdn_log.h"
#include "tests/unit/tap.h"
#include "tests/unit/tmptree.h"

static char root[64];

static const char *const names[] = {"Surrogate-Key", "Cache-Tag"};

static void
test_tags(void)
{
	char out[CACHE_TAGS_CAP], big[8192];
	const char *f;
	size_t n;

	f = "Content-Type: text/html\r\nSurrogate-Key: a b  c\r\n"
	    "Cache-Tag: c,d, e\r\nX-Other: z\r\n";
	n = cache_tags_parse(f, strlen(f), names, 2, out, sizeof(out));
	out[n] = '\0';
	is_str(out, "a b c d e", "both styles, duplicates once");

	f = "surrogate-key:\tx\r\n";
	n = cache_tags_parse(f, strlen(f), names, 2, out, sizeof(out));
	out[n] = '\0';
	is_str(out, "x", "field names are case-insensitive, tabs split");

	f = "Server: x\r\n";
	n = cache_tags_parse(f, strlen(f), names, 2, out, sizeof(out));
	is_int(n, 0, "no tag fields: no tags");

	n = cache_tags_parse(f, strlen(f), names, 0, out, sizeof(out));
	is_int(n, 0, "no names configured: no tags");

	/* 300 tags: only CACHE_TAGS_MAX are kept. */
	strcpy(big, "Surrogate-Key:");
	for (int i = 0; i < 300; i++)
		snprintf(
		    big + strlen(big), sizeof(big) - strlen(big), " t%d", i);
	strcat(big, "\r\n");
	n = cache_tags_parse(big, strlen(big), names, 2, out, sizeof(out));
	{
		unsigned count = n > 0;

		for (size_t i = 0; i < n; i++)
			count += out[i] == ' ';
		is_int(count, CACHE_TAGS_MAX, "at most CACHE_TAGS_MAX tags");
	}
	n = cache_tags_parse(big, strlen(big), names, 2, out, 10);
	ok(n <= 10, "the output capacity is respected");

	/* A tag longer than CACHE_TAG_MAX_LEN is skipped. */
	memset(big, 'x', sizeof(big));
	memcpy(big, "Cache-Tag: ", 11);
	big[11 + CACHE_TAG_MAX_LEN + 1] = ',';
	memcpy(big + 11 + CACHE_TAG_MAX_LEN + 2, "ok\r\n", 4);
	n = cache_tags_parse(
	    big, 11 + CACHE_TAG_MAX_LEN + 6, names, 2, out, sizeof(out));
	out[n] = '\0';
	is_str(out, "ok", "an over-long tag is skipped");
}

static struct cache_obj *
obj(const char *url, const char *tags, uint64_t gen)
{
	struct cache_decision d;
	struct cache_obj *o;
	uint8_t key[CACHE_HASH_LEN];

	memset(&d, 0, sizeof(d));
	d.storable = 1;
	d.freshness_s = 100;
	cache_key_hash(url, strlen(url), key);
	o = cache_obj_new(key, 0, 200, &d, time(NULL), url, strlen(url),
	    "X: y\r\n", 6, "", 0);
	CDN_ASSERT(o != NULL);
	CDN_ASSERT(cache_obj_set_tags(o, tags, strlen(tags)) == CDN_OK);
	CDN_ASSERT(cache_obj_append(o, "body", 4) == CDN_OK);
	o->purge_gen = gen;
	return o;
}

static void
test_rules(void)
{
	struct cache_rules *r = cache_rules_new();
	struct cache_obj *a = obj("h/a/1", "t1 t2", 0);
	struct cache_obj *b = obj("h/b/1", "t3", 0);
	struct cache_obj *late = obj("h/a/2", "t1", 5);
	struct cache_obj *short_url, *many;

	is_int(cache_rules_match(r, a), 0, "no rules: not purged");
	cache_rules_add(r, CACHE_PURGE_TAG, "t2", 2, 3, 3);
	is_int(cache_rules_match(r, a), CACHE_PURGED_HARD, "hard tag purge");
	is_int(cache_rules_match(r, b), 0, "other tags untouched");
	cache_rules_add(r, CACHE_PURGE_TAG, "t1", 2, 3, 3);
	is_int(cache_rules_match(r, late), 0,
	    "a fill begun after the purge (gen 5 >= seq 3) is fresh");
	cache_rules_add(r, CACHE_PURGE_PREFIX, "h/b/", 4, 0, 4);
	is_int(cache_rules_match(r, b), CACHE_PURGED_SOFT, "soft prefix");
	cache_rules_add(r, CACHE_PURGE_PREFIX, "h/b/", 4, 6, 6);
	is_int(cache_rules_match(r, b), CACHE_PURGED_HARD,
	    "a later hard purge of the same prefix wins");
	cache_rules_add(r, CACHE_PURGE_PREFIX, "h/b/", 4, 0, 7);
	is_int(cache_rules_match(r, b), CACHE_PURGED_HARD,
	    "a soft purge never undoes a hard one");
	cache_rules_add(r, CACHE_PURGE_URL, late->key, CACHE_HASH_LEN, 9, 9);
	is_int(cache_rules_match(r, late), CACHE_PURGED_HARD, "URL purge");
	cache_rules_add(r, CACHE_PURGE_PREFIX, "h/c", 3, 9, 9);
	short_url = obj("h/", "", 0);
	is_int(cache_rules_match(r, short_url), 0,
	    "a prefix longer than the URL does not match");
	for (int i = 0; i < 5000; i++) {
		char t[32];

		snprintf(t, sizeof(t), "many%d", i);
		cache_rules_add(r, CACHE_PURGE_TAG, t, strlen(t), 10, 10);
	}
	for (int i = 0; i < 5000; i += 499) {
		char t[32];
		struct cache_obj *o;

		snprintf(t, sizeof(t), "many%d", i);
		o = obj("h/y", t, 9);
		is_int(cache_rules_match(r, o), CACHE_PURGED_HARD,
		    "the table grows: rule %d of 5000 still found", i);
		cache_obj_unref(&o);
	}
	cache_rules_add(r, CACHE_PURGE_TAG, "t3", 2, 1, 1);
	many = obj("h/x", "many4999", 9);
	is_int(cache_rules_match(r, many), CACHE_PURGED_HARD,
	    "found after growing");
	cache_obj_unref(&a);
	cache_obj_unref(&b);
	cache_obj_unref(&late);
	cache_obj_unref(&short_url);
	cache_obj_unref(&many);
	cache_rules_free(&r);
}

static struct cache_store *
open_store(const char *dir, uint64_t disk)
{
	struct cache_store_conf c;

	memset(&c, 0, sizeof(c));
	c.dir = dir;
	c.disk_bytes = disk;
	c.memory_bytes = 16u << 20;
	c.max_object_bytes = 1u << 20;
	c.high_water_pct = 90;
	c.low_water_pct = 80;
	return cache_store_open(&c);
}

static int
lookup(struct cache_store *s, const char *url, uint64_t variant, int *soft)
{
	uint8_t key[CACHE_HASH_LEN];
	struct cache_obj *o = NULL;
	int rc;

	cache_key_hash(url, strlen(url), key);
	rc = cache_store_get(s, key, variant, &o, NULL);
	if (rc == CDN_OK) {
		if (soft != NULL)
			*soft = cache_obj_soft_purged(o);
		cache_obj_unref(&o);
	}
	return rc;
}

static void
put(struct cache_store *s, const char *url, uint64_t variant, const char *tags)
{
	struct cache_obj *o = obj(url, tags, cache_store_purge_seq(s));

	o->variant = variant;
	cache_store_put(s, o);
	cache_obj_unref(&o);
}

static void
item(struct cache_purge_item *it, enum cache_purge_kind kind, const char *name)
{
	memset(it, 0, sizeof(*it));
	it->kind = kind;
	it->name = name;
	it->len = strlen(name);
	if (kind == CACHE_PURGE_URL)
		cache_key_hash(name, it->len, it->key);
}

/*
 * Purge in a child process with its own handle on <dir>, as purged does
 * (LMDB forbids opening one environment twice in one process).  Returns
 * CDN_OK and fills it[].matched and *seq from the child, or CDN_EIO.
 */
static int
purge_child(const char *dir, struct cache_purge_item *it, unsigned n, int soft,
    int dry, uint64_t *seq)
{
	uint64_t res[1 + 8];
	int fds[2], status;
	pid_t pid;

	CDN_ASSERT(n <= 8 && pipe(fds) == 0);
	pid = fork();
	CDN_ASSERT(pid != -1);
	if (pid == 0) {
		struct cache_store *s2 = open_store(dir, 0);

		close(fds[0]);
		if (s2 == NULL ||
		    cache_store_purge(s2, it, n, soft, dry, &res[0]) != CDN_OK)
			_exit(1);
		for (unsigned i = 0; i < n; i++)
			res[1 + i] = it[i].matched;
		cache_store_close(&s2);
		_exit(write(fds[1], res, sizeof(res)) == sizeof(res) ? 0 : 1);
	}
	close(fds[1]);
	if (read(fds[0], res, sizeof(res)) != sizeof(res)) {
		close(fds[0]);
		waitpid(pid, &status, 0);
		return CDN_EIO;
	}
	close(fds[0]);
	waitpid(pid, &status, 0);
	*seq = res[0];
	for (unsigned i = 0; i < n; i++)
		it[i].matched = res[1 + i];
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? CDN_OK : CDN_EIO;
}

static void
test_store(void)
{
	char dir[128];
	struct cache_store *s;
	struct cache_purge_item it[2];
	uint64_t seq = 0;
	int soft = 0;

	snprintf(dir, sizeof(dir), "%s/store", root);
	s = open_store(dir, 64u << 20);
	ok(s != NULL, "store opens");
	is_int(cache_store_purge_seq(s), 0, "a new store is at purge seq 0");
	put(s, "h/u", 1, "");
	put(s, "h/u", 2, "");
	put(s, "h/u", 3, "");
	put(s, "h/tagged", 0, "news sport");
	put(s, "h/dir/a", 0, "");
	put(s, "h/other", 0, "");
	cache_store_sync(s);

	/* Purges come from another process, as from purged: s must see
	 * them through the shared page. */
	item(&it[0], CACHE_PURGE_URL, "h/u");
	ok(purge_child(dir, it, 1, 0, 1, &seq) == CDN_OK, "dry run");
	is_int(it[0].matched, 3, "dry run counts every variant");
	is_int(lookup(s, "h/u", 2, NULL), CDN_OK, "dry run purges nothing");

	ok(purge_child(dir, it, 1, 0, 0, &seq) == CDN_OK, "URL purge");
	is_int(seq, 1, "first purge has seq 1");
	is_int(it[0].matched, 3, "URL purge matched every variant");
	for (uint64_t v = 1; v <= 3; v++)
		is_int(lookup(s, "h/u", v, NULL), CDN_NOTFOUND,
		    "variant %d gone from the other handle (memory tier)",
		    (int)v);
	is_int(cache_store_purge_seq(s), 1, "the shared page carries seq 1");

	item(&it[0], CACHE_PURGE_TAG, "sport");
	item(&it[1], CACHE_PURGE_PREFIX, "h/dir/");
	ok(purge_child(dir, it, 2, 1, 0, &seq) == CDN_OK,
	    "soft tag+prefix purge");
	is_int(it[0].matched, 1, "tag count from the tag index");
	ok(it[1].matched == CACHE_MATCHED_UNKNOWN, "prefix count not known");
	is_int(lookup(s, "h/tagged", 0, &soft), CDN_OK, "soft: still there");
	ok(soft, "soft: marked soft-purged");
	soft = 0;
	is_int(lookup(s, "h/dir/a", 0, &soft), CDN_OK, "soft prefix");
	ok(soft, "prefix: marked soft-purged");
	soft = 1;
	is_int(lookup(s, "h/other", 0, &soft), CDN_OK, "others untouched");
	ok(!soft, "others: not marked");

	/* A fill that began before a hard purge and ends after it. */
	{
		struct cache_obj *o = obj("h/slow", "slowtag", 0);

		o->purge_gen = cache_store_purge_seq(s);
		item(&it[0], CACHE_PURGE_TAG, "slowtag");
		ok(purge_child(dir, it, 1, 0, 0, &seq) == CDN_OK,
		    "hard tag purge during a fill");
		cache_store_put(s, o);
		cache_obj_unref(&o);
		cache_store_sync(s);
		is_int(lookup(s, "h/slow", 0, NULL), CDN_NOTFOUND,
		    "the racing fill is not served");
	}
	put(s, "h/slow", 0, "slowtag");
	is_int(lookup(s, "h/slow", 0, NULL), CDN_OK,
	    "a fill begun after the purge is served");

	item(&it[0], CACHE_PURGE_TAG, "news");
	ok(purge_child(dir, it, 1, 0, 0, &seq) == CDN_OK, "hard tag");
	cache_store_sync(s);
	cache_store_close(&s);

	/* Reopened, with a lost shared page: LMDB holds the rules. */
	{
		char page[192];

		snprintf(
		    page, sizeof(page), "%s/%s", dir, CACHE_PURGE_SEQ_FILE);
		ok(unlink(page) == 0, "shared page removed");
	}
	s = open_store(dir, 64u << 20);
	ok(s != NULL, "store reopens");
	is_int(cache_store_purge_seq(s), seq, "purge seq survives");
	is_int(lookup(s, "h/tagged", 0, NULL), CDN_NOTFOUND,
	    "hard tag purge survives reopening");
	is_int(lookup(s, "h/u", 1, NULL), CDN_NOTFOUND, "URL purge too");
	soft = 0;
	is_int(lookup(s, "h/dir/a", 0, &soft), CDN_OK, "soft purge too");
	ok(soft, "still soft-purged");
	is_int(lookup(s, "h/other", 0, NULL), CDN_OK, "others still there");

	/* Reclaim: the one object a hard tag purge covers (h/tagged) goes,
	 * in scans of 2 records at a time. */
	{
		uint8_t pos[CACHE_HASH_LEN + 8], key[CACHE_HASH_LEN];
		struct cache_obj *v[4];
		uint64_t deleted = 0;
		unsigned nv = 9, rounds = 0;
		int done = 0;

		memset(pos, 0, sizeof(pos));
		while (!done && rounds++ < 100)
			ok(cache_store_reclaim(s, pos, 2, &deleted, &done) ==
			        CDN_OK,
			    "reclaim round %u", rounds);
		ok(done, "reclaim reached the end");
		is_int(deleted, 1, "reclaim deleted the hard-purged object");
		item(&it[0], CACHE_PURGE_TAG, "sport");
		ok(purge_child(dir, it, 1, 0, 1, &seq) == CDN_OK &&
		        it[0].matched == 0,
		    "the tag index lost the reclaimed object");
		cache_key_hash("h/tagged", 8, key);
		ok(cache_store_variants(s, key, v, 4, &nv) == CDN_OK,
		    "variants read");
		is_int(nv, 0, "h/tagged is gone from disk");
		cache_key_hash("h/dir/a", 7, key);
		ok(cache_store_variants(s, key, v, 4, &nv) == CDN_OK,
		    "variants read");
		is_int(nv, 1, "a soft-purged object is kept");
		is_str(nv == 1 &&
		            atomic_load(&v[0]->purge_state) == CACHE_PURGED_SOFT
		        ? "soft"
		        : "no",
		    "soft", "inspection shows the soft purge");
		for (unsigned i = 0; i < nv; i++)
			cache_obj_unref(&v[i]);
		is_int(lookup(s, "h/other", 0, NULL), CDN_OK,
		    "others survive the reclaim");
	}
	cache_store_close(&s);
}

/*
 * In a child (LMDB allows one environment handle per process), rewrite
 * the kind byte of the first record of database <db> in the store in
 * <dir>: the first byte of the key (<in_key>) or of the value.  1 if done.
 */
static int
scribble_kind(const char *dir, const char *db, int in_key)
{
	int status;
	pid_t pid = fork();

	CDN_ASSERT(pid != -1);
	if (pid == 0) {
		MDB_env *env;
		MDB_txn *txn;
		MDB_cursor *cur;
		MDB_dbi dbi;
		MDB_val k, v;
		unsigned char kb[512], vb[512];

		if (mdb_env_create(&env) != 0 ||
		    mdb_env_set_maxdbs(env, 16) != 0 ||
		    mdb_env_set_mapsize(env, 64u << 20) != 0 ||
		    mdb_env_open(env, dir, 0, 0644) != 0 ||
		    mdb_txn_begin(env, NULL, 0, &txn) != 0 ||
		    mdb_dbi_open(txn, db, 0, &dbi) != 0 ||
		    mdb_cursor_open(txn, dbi, &cur) != 0)
			_exit(1);
		if (mdb_cursor_get(cur, &k, &v, MDB_FIRST) != 0 ||
		    k.mv_size > sizeof(kb) || v.mv_size > sizeof(vb))
			_exit(1);
		memcpy(kb, k.mv_data, k.mv_size);
		memcpy(vb, v.mv_data, v.mv_size);
		(in_key ? kb : vb)[0] = 'x';
		k.mv_data = kb;
		v.mv_data = vb;
		if (mdb_cursor_del(cur, 0) != 0 ||
		    mdb_put(txn, dbi, &k, &v, 0) != 0)
			_exit(1);
		_exit(mdb_txn_commit(txn) == 0 ? 0 : 1);
	}
	waitpid(pid, &status, 0);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* A purge record whose kind byte is damaged never aborts the node: at
 * open the store is damaged (moved aside by edged), and one read while
 * running stops the store's use, so what the purge removed is never
 * served. */
static void
test_unreadable_purge_records(void)
{
	struct cache_store_conf c;
	struct cache_open_err err;
	struct cache_store_stats st;
	struct cache_purge_item it;
	struct cache_store *s;
	char dir[128];
	uint64_t seq = 0;

	snprintf(dir, sizeof(dir), "%s/badrule", root);
	s = open_store(dir, 64u << 20);
	item(&it, CACHE_PURGE_TAG, "sport");
	ok(s != NULL && cache_store_purge(s, &it, 1, 0, 0, &seq) == CDN_OK,
	    "a tag purge makes a rule");
	cache_store_close(&s);
	ok(scribble_kind(dir, CACHE_DB_PRULES, 1), "its kind byte damaged");
	memset(&c, 0, sizeof(c));
	c.dir = dir;
	c.disk_bytes = 64u << 20;
	c.high_water_pct = 90;
	c.low_water_pct = 80;
	memset(&err, 0, sizeof(err));
	s = cache_store_open_diag(&c, &err);
	ok(s == NULL, "the store does not open on a rule it cannot read");
	is_int(err.kind, CACHE_OPEN_DAMAGED, "as damaged, to be moved aside");
	cache_store_close(&s);

	snprintf(dir, sizeof(dir), "%s/badlog", root);
	s = open_store(dir, 64u << 20);
	ok(s != NULL, "another store");
	item(&it, CACHE_PURGE_TAG, "news");
	ok(purge_child(dir, &it, 1, 0, 0, &seq) == CDN_OK,
	    "another process purges a tag");
	ok(scribble_kind(dir, CACHE_DB_PLOG, 0),
	    "its purge log record damaged before we read it");
	ok(lookup(s, "h/any", 0, NULL) != CDN_OK,
	    "a lookup reads the log and serves nothing");
	cache_store_stats(s, &st);
	ok(st.damaged, "the store is damaged, not used");
	cache_store_close(&s);
}

/* A batch of the purge bus, applied by another process: each op its own
 * seq, an op of nothing still marked, the mark in the same transaction,
 * and the empty prefix ("every key", a bus gap) honoured by lookups, also
 * after the rules are loaded again at open. */
static void
test_batch(void)
{
	struct cache_purge_item u, every;
	struct cache_store *s;
	char dir[128], mark[64];
	size_t len = 0;
	uint64_t seq0;
	int soft = 0, status;
	pid_t pid;

	snprintf(dir, sizeof(dir), "%s/batch", root);
	s = open_store(dir, 64u << 20);
	ok(s != NULL, "a store");
	is_int(
	    cache_store_purge_mark(s, "bus_applied", mark, sizeof(mark), &len),
	    CDN_NOTFOUND, "no mark yet");
	put(s, "h/b1", 0, "");
	put(s, "h/b2", 0, "");
	cache_store_sync(s);
	seq0 = cache_store_purge_seq(s);
	item(&u, CACHE_PURGE_URL, "h/b1");
	memset(&every, 0, sizeof(every));
	every.kind = CACHE_PURGE_PREFIX;
	every.name = "";
	pid = fork();
	CDN_ASSERT(pid != -1);
	if (pid == 0) {
		struct cache_store *s2 = open_store(dir, 0);
		struct cache_purge_op ops[3] = {
		    {.items = &u, .n = 1, .soft = 0},
		    {.items = NULL, .n = 0},
		    {.items = &every, .n = 1, .soft = 1},
		};

		_exit(s2 != NULL &&
		            cache_store_purge_batch(s2, ops, 3, "bus_applied",
		                "fleet 5-1", 9) == CDN_OK &&
		            ops[0].seq == seq0 + 1 && ops[1].seq == 0 &&
		            ops[2].seq == seq0 + 2 && u.matched == 1
		        ? 0
		        : 1);
	}
	waitpid(pid, &status, 0);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "a batch of three: two purges, their seqs, one op of nothing");
	is_int(cache_store_purge_seq(s), seq0 + 2, "published");
	is_int(lookup(s, "h/b1", 0, NULL), CDN_NOTFOUND, "the URL is gone");
	ok(lookup(s, "h/b2", 0, &soft) == CDN_OK && soft,
	    "the empty prefix soft-purged everything stored before");
	ok(cache_store_purge_mark(s, "bus_applied", mark, sizeof(mark), &len) ==
	            CDN_OK &&
	        len == 9 && memcmp(mark, "fleet 5-1", 9) == 0,
	    "the mark committed with them");
	put(s, "h/b3", 0, "");
	ok(lookup(s, "h/b3", 0, &soft) == CDN_OK && !soft,
	    "what is stored after is fresh");
	cache_store_sync(s);
	cache_store_close(&s);
	s = open_store(dir, 64u << 20);
	ok(lookup(s, "h/b2", 0, &soft) == CDN_OK && soft,
	    "after a reopen the empty prefix still holds (rules reloaded)");
	ok(lookup(s, "h/b3", 0, &soft) == CDN_OK && !soft,
	    "and the later object is still fresh");
	cache_store_close(&s);
}

int
main(void)
{

	plan_no_plan();
	cdn_log_level_now = CDN_LOG_ERR;
	if (tmptree_make(root, sizeof(root), "t_cache_purge") != 0)
		return 1;
	test_tags();
	test_rules();
	test_store();
	test_unreadable_purge_records();
	test_batch();
	tmptree_remove(root);
	return done_testing();
}
