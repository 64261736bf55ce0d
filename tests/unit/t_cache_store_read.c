/*
 * Reads from the LMDB store (cache/cache_store_read.c): the read
 * transaction each thread keeps between lookups (cache_store.c, "the
 * threads' kept read transactions") and the objects a lookup builds.
 *  - A kept transaction is renewed per read: a read sees what was
 *    committed since the thread's last read.
 *  - Between reads it holds no snapshot (LMDB's reader table shows no
 *    transaction id for the thread), so the writer can reuse pages.
 *  - It belongs to its store: one thread may read two stores in turn,
 *    close a store and open it again, and exit, without a stale
 *    transaction being used or leaked (ASan and LSan check the build
 *    with --enable-sanitizers).
 *  - A hold (cache_store_read_hold) makes a lookup's reads one
 *    transaction and leaves no snapshot behind when released.
 *  - A 4 KiB body read from LMDB is allocated at its size, not doubled.
 *  - Chunk checksums are the seeded XXH3 the store's format names, so
 *    that bodies written by another build still read back.
 * Each store lives in its own directory under a mkdtemp() root.
 */
#include "config.h"

#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "cache/cache.h"
#include "cache/cache_store_int.h"
#include "common/cdn_log.h"
#include "tests/unit/tap.h"
#include "tests/unit/tmptree.h"

#define MIB       (1024u * 1024u)
#define BODY_4K   4096u
#define NKEYS     40
#define TURNS     200
#define FP_SLACK  1024u /* struct, strings, malloc overhead */
#define SEP_TURNS 20

static char root[64];

static void
bail(const char *why)
{
	printf("Bail out! %s\n", why);
	exit(1);
}

static void
key_of(unsigned id, uint8_t key[CACHE_HASH_LEN])
{
	memset(key, 0, CACHE_HASH_LEN);
	memcpy(key, &id, sizeof(id));
	key[CACHE_HASH_LEN - 1] = 0x5a;
}

/* Object <id> at version <ver>: its body bytes depend on both. */
static struct cache_obj *
make_obj(unsigned id, unsigned ver, size_t len)
{
	uint8_t key[CACHE_HASH_LEN];
	struct cache_decision d;
	struct cache_obj *o;
	unsigned char *body;
	char url[64];
	static const char fields[] = "Content-Type: text/plain\r\n";
	int n;

	key_of(id, key);
	memset(&d, 0, sizeof(d));
	d.storable = 1;
	d.reason = "test";
	d.freshness_s = 3600;
	d.sie_s = -1;
	n = snprintf(url, sizeof(url), "example.com/r/%u", id);
	o = cache_obj_new(key, 0, 200, &d, 1700000000, url, (size_t)n, fields,
	    sizeof(fields) - 1, NULL, 0);
	body = malloc(len + 1);
	if (o == NULL || body == NULL)
		abort();
	for (size_t i = 0; i < len; i++)
		body[i] = (unsigned char)(i * 31u + id * 7u + ver);
	if (cache_obj_append(o, body, len) != CDN_OK)
		abort();
	free(body);
	return o;
}

static struct cache_store *
open_store(const char *name, uint64_t mem)
{
	struct cache_store_conf c;
	char dir[128];

	snprintf(dir, sizeof(dir), "%s/%s", root, name);
	memset(&c, 0, sizeof(c));
	c.dir = dir;
	c.disk_bytes = 64 * MIB;
	c.memory_bytes = mem;
	c.max_object_bytes = 4 * MIB;
	c.high_water_pct = 90;
	c.low_water_pct = 70;
	return cache_store_open(&c);
}

static void
put(struct cache_store *s, unsigned id, unsigned ver, size_t len)
{
	struct cache_obj *o = make_obj(id, ver, len);

	cache_store_put(s, o);
	cache_obj_unref(&o);
}

/* Read <id>: CDN_OK only if it is version <ver>, byte for byte. */
static int
read_is(struct cache_store *s, unsigned id, unsigned ver, size_t len)
{
	uint8_t key[CACHE_HASH_LEN];
	struct cache_obj *o = NULL, *want;
	int rc;

	key_of(id, key);
	rc = cache_store_get(s, key, 0, &o, NULL);
	if (rc != CDN_OK)
		return rc;
	want = make_obj(id, ver, len);
	if (o->body_len != len || o->nchunks != 1 ||
	    memcmp(o->chunks[0], want->chunks[0], len) != 0)
		rc = CDN_EINVAL;
	cache_obj_unref(&want);
	cache_obj_unref(&o);
	return rc;
}

/* ---- a kept transaction sees each commit ---- */

static void
test_renew_sees_commits(void)
{
	struct cache_store *s = open_store("renew", 0);
	int bad = 0;

	if (s == NULL)
		bail("open");
	is_int(read_is(s, 1, 1, BODY_4K), CDN_NOTFOUND,
	    "renew: not there before the put");
	put(s, 1, 1, BODY_4K);
	cache_store_sync(s);
	is_int(read_is(s, 1, 1, BODY_4K), CDN_OK,
	    "renew: the same thread's next read sees the commit");
	for (unsigned v = 2; v < 2 + SEP_TURNS; v++) {
		put(s, 1, v, BODY_4K);
		cache_store_sync(s);
		bad += read_is(s, 1, v, BODY_4K) != CDN_OK;
	}
	is_int(bad, 0, "renew: each of %d replacements read back", SEP_TURNS);
	cache_store_close(&s);
}

/* ---- no snapshot held between reads ---- */

struct rlist {
	int lines;
	int pinned; /* slots with a transaction id */
};

static int
on_reader_line(const char *msg, void *ctx)
{
	struct rlist *rl = ctx;
	const char *end = msg + strlen(msg);

	if (strstr(msg, "txnid") != NULL)
		return 0; /* the header */
	while (end > msg && (end[-1] == '\n' || end[-1] == ' '))
		end--;
	rl->lines++;
	if (end == msg || end[-1] != '-')
		rl->pinned++;
	return 0;
}

static void
test_no_snapshot_between_reads(void)
{
	struct cache_store *s = open_store("pin", 0);
	struct rlist rl = {0, 0};

	if (s == NULL)
		bail("open");
	put(s, 2, 1, BODY_4K);
	cache_store_sync(s);
	is_int(read_is(s, 2, 1, BODY_4K), CDN_OK, "pin: read");
	is_int(mdb_reader_list(s->env, on_reader_line, &rl), 0,
	    "pin: mdb_reader_list");
	ok(rl.lines >= 1, "pin: this thread has a reader slot (%d)", rl.lines);
	is_int(rl.pinned, 0, "pin: no slot holds a snapshot after the read");
	cache_store_close(&s);
}

/* ---- two stores, a reopen, a thread's exit ---- */

static void
test_two_stores(void)
{
	struct cache_store *a = open_store("two-a", 0);
	struct cache_store *b = open_store("two-b", 0);
	int bad = 0;

	if (a == NULL || b == NULL)
		bail("open");
	for (unsigned id = 0; id < NKEYS; id++) {
		put(a, id, 1, BODY_4K);
		put(b, id, 2, BODY_4K);
	}
	cache_store_sync(a);
	cache_store_sync(b);
	for (unsigned i = 0; i < TURNS; i++) {
		unsigned id = (i * 7u) % NKEYS;

		if (i % 2 == 0)
			bad += read_is(a, id, 1, BODY_4K) != CDN_OK;
		else
			bad += read_is(b, id, 2, BODY_4K) != CDN_OK;
	}
	is_int(bad, 0, "two stores: %d reads in turn, each its own", TURNS);
	cache_store_close(&a);
	/* b's kept transaction was replaced by a's: it works on. */
	is_int(read_is(b, 3, 2, BODY_4K), CDN_OK,
	    "two stores: the other one read after a close");
	cache_store_close(&b);
}

static void
test_reopen(void)
{
	struct cache_store *s = open_store("reopen", 0);

	if (s == NULL)
		bail("open");
	put(s, 5, 1, BODY_4K);
	cache_store_sync(s);
	is_int(read_is(s, 5, 1, BODY_4K), CDN_OK, "reopen: read");
	cache_store_close(&s);
	s = open_store("reopen", 0);
	if (s == NULL)
		bail("reopen");
	is_int(read_is(s, 5, 1, BODY_4K), CDN_OK,
	    "reopen: the same thread reads the reopened store");
	put(s, 5, 2, BODY_4K);
	cache_store_sync(s);
	is_int(read_is(s, 5, 2, BODY_4K), CDN_OK, "reopen: and its commits");
	cache_store_close(&s);
}

struct reader_arg {
	struct cache_store *s;
	int rc;
};

static void *
read_and_exit(void *arg)
{
	struct reader_arg *ra = arg;

	ra->rc = read_is(ra->s, 6, 1, BODY_4K);
	return NULL;
}

static void
test_thread_exit(void)
{
	struct reader_arg ra;
	pthread_t th[4];
	int bad = 0;

	ra.s = open_store("exit", 0);
	if (ra.s == NULL)
		bail("open");
	put(ra.s, 6, 1, BODY_4K);
	cache_store_sync(ra.s);
	for (int round = 0; round < SEP_TURNS; round++) {
		struct reader_arg each[4];

		for (int i = 0; i < 4; i++) {
			each[i] = ra;
			pthread_create(&th[i], NULL, read_and_exit, &each[i]);
		}
		for (int i = 0; i < 4; i++) {
			pthread_join(th[i], NULL);
			bad += each[i].rc != CDN_OK;
		}
	}
	is_int(bad, 0, "exit: %d threads read, then ended", 4 * SEP_TURNS);
	is_int(read_is(ra.s, 6, 1, BODY_4K), CDN_OK,
	    "exit: the store reads on after them");
	cache_store_close(&ra.s);
}

/* ---- a hold: one transaction for a lookup's reads ---- */

static void
test_hold(void)
{
	struct cache_store *s = open_store("hold", 0);
	struct cache_store *t = open_store("hold-other", 0);
	struct rlist rl = {0, 0};
	uint8_t key[CACHE_HASH_LEN];
	char vary[64];
	size_t vlen = 0;
	int bad = 0;

	if (s == NULL || t == NULL)
		bail("open");
	put(s, 8, 1, BODY_4K);
	put(t, 8, 2, BODY_4K);
	cache_store_sync(s);
	cache_store_sync(t);
	key_of(8, key);
	for (int i = 0; i < SEP_TURNS; i++) {
		cache_store_read_hold(s);
		bad += cache_store_get_vary(
		           s, key, vary, sizeof(vary), &vlen) != CDN_NOTFOUND;
		bad += read_is(s, 8, 1, BODY_4K) != CDN_OK;
		bad += read_is(s, 9, 1, BODY_4K) != CDN_NOTFOUND;
		/* Another store's read inside the hold: its own. */
		bad += read_is(t, 8, 2, BODY_4K) != CDN_OK;
		cache_store_read_release(s);
	}
	is_int(
	    bad, 0, "hold: %d lookups of a Vary rule and objects", SEP_TURNS);
	cache_store_read_hold(s);
	cache_store_read_release(s);
	ok(1, "hold: released without a read");
	is_int(mdb_reader_list(s->env, on_reader_line, &rl), 0,
	    "hold: mdb_reader_list");
	is_int(rl.pinned, 0, "hold: no snapshot left after the release");
	put(s, 8, 2, BODY_4K);
	cache_store_sync(s);
	is_int(read_is(s, 8, 2, BODY_4K), CDN_OK,
	    "hold: a read after it sees the next commit");
	cache_store_close(&t);
	cache_store_close(&s);
}

/* ---- the checksums: what the store's format names ---- */

static void
test_chunk_sums(void)
{
	static const size_t lens[] = {0, 1, 16, 128, 129, 240, 241, 1000, 4080,
	    4096, 100000, CACHE_CHUNK_SIZE};
	const uint64_t seed = 0x0123456789abcdefull;
	unsigned char *buf = malloc(CACHE_CHUNK_SIZE);
	int bad = 0;

	if (buf == NULL)
		bail("malloc");
	for (size_t i = 0; i < CACHE_CHUNK_SIZE; i++)
		buf[i] = (unsigned char)(i * 131u >> 3);
	for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++)
		for (uint32_t c = 0; c < 3; c++)
			bad += cache_record_chunk_sum(seed, c, buf, lens[k]) !=
			    XXH3_64bits_withSeed(buf, lens[k], seed + c + 1);
	is_int(bad, 0,
	    "sums: chunk checksums are XXH3 as stored, for every length");
	free(buf);
}

/* ---- what a read from LMDB costs in memory ---- */

static void
test_disk_read_footprint(void)
{
	struct cache_store *s = open_store("fp", 0);
	uint8_t key[CACHE_HASH_LEN];
	struct cache_obj *o = NULL;
	int from_memory = -1;

	if (s == NULL)
		bail("open");
	put(s, 7, 1, BODY_4K);
	cache_store_sync(s);
	key_of(7, key);
	is_int(cache_store_get(s, key, 0, &o, &from_memory), CDN_OK,
	    "footprint: read");
	is_int(from_memory, 0, "footprint: from LMDB");
	if (o != NULL) {
		ok(cache_obj_footprint(o) < BODY_4K + FP_SLACK,
		    "footprint: a 4 KiB body read from LMDB takes %zu bytes "
		    "(under %u)",
		    cache_obj_footprint(o), BODY_4K + FP_SLACK);
		cache_obj_unref(&o);
	}
	cache_store_close(&s);
}

int
main(void)
{

	plan_no_plan();
	cdn_log_level_now = CDN_LOG_ERR;
	if (tmptree_make(root, sizeof(root), "t_cache_store_read") != 0)
		return 1;

	test_renew_sees_commits();
	test_no_snapshot_between_reads();
	test_two_stores();
	test_reopen();
	test_thread_exit();
	test_disk_read_footprint();
	test_hold();
	test_chunk_sums();

	tmptree_remove(root);
	return done_testing();
}
