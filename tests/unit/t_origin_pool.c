/*
 * Unit tests for origin/origin_pool.c: each selection mode's spread,
 * smooth weighted round-robin's order, least-conn, rendezvous hashing's
 * stability when a server leaves (only its keys move) and its weighting,
 * backups, max_conns, passive failures and the cool-down, the exclusion a
 * retry uses, and the server URLs built with a TLS name; for parents,
 * the hash order that failures walk and a lone parent's ejection.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <xxhash.h>

#include "origin/origin_int.h"
#include "tests/unit/tap.h"

#define NKEYS 20000

static const char *const urls[] = {"http://10.0.0.1:8080",
    "http://10.0.0.2:8080", "http://10.0.0.3:8080", "http://10.0.0.4:8080",
    "http://10.0.0.5:8080"};

static struct origin_pool *
pool_of(enum origin_balance bal, const char *const *u, const unsigned *w,
    unsigned n)
{
	struct origin_server_conf sc[8];
	struct origin_pool_conf pc;
	struct origin_pool *p;
	const char *why = NULL;

	memset(&pc, 0, sizeof(pc));
	memset(sc, 0, sizeof(sc));
	for (unsigned i = 0; i < n; i++) {
		sc[i].url = u[i];
		sc[i].weight = w != NULL ? w[i] : 1;
	}
	pc.name = "t";
	pc.balance = bal;
	pc.servers = sc;
	pc.nservers = n;
	pc.max_fails = 2;
	pc.fail_timeout_ms = 60000;
	p = origin_pool_new(&pc, &why);
	if (p == NULL)
		printf("# origin_pool_new: %s\n", why);
	return p;
}

static uint64_t
key(unsigned i)
{
	return XXH3_64bits(&i, sizeof(i));
}

static void
test_round_robin(void)
{
	struct origin_pool *p = pool_of(ORIGIN_BAL_ROUND_ROBIN, urls, NULL, 3);
	unsigned cnt[3] = {0};
	int prev = -1, alternates = 1, i;

	for (unsigned k = 0; k < 300; k++) {
		i = origin_pool_pick(p, 0, -1);
		if (i < 0 || i > 2)
			break;
		cnt[i]++;
		if (i == prev)
			alternates = 0;
		prev = i;
	}
	ok(cnt[0] == 100 && cnt[1] == 100 && cnt[2] == 100,
	    "round-robin: 100 each of 300 (%u %u %u)", cnt[0], cnt[1], cnt[2]);
	ok(alternates, "round-robin: never the same server twice in a row");
	origin_pool_free(&p);
	ok(p == NULL, "free clears the pointer");

	/* A retry does not take a turn: with two servers and one of them
	 * failing, only every other request meets it. */
	p = pool_of(ORIGIN_BAL_ROUND_ROBIN, urls, NULL, 2);
	is_int(origin_pool_pick(p, 0, -1), 0, "first turn: server 0");
	is_int(origin_pool_pick(p, 0, 0), 1, "its retry: server 1");
	is_int(origin_pool_pick(p, 0, -1), 1, "the next turn is still 1's");
	is_int(origin_pool_pick(p, 0, -1), 0, "then 0's");
	origin_pool_free(&p);
}

static void
test_weighted(void)
{
	static const unsigned w[] = {5, 1, 1};
	struct origin_pool *p = pool_of(ORIGIN_BAL_WEIGHTED, urls, w, 3);
	char seq[8];
	unsigned cnt[3] = {0};
	int i;

	for (unsigned k = 0; k < 7; k++)
		seq[k] = (char)('a' + origin_pool_pick(p, 0, -1));
	seq[7] = '\0';
	/* nginx's smooth WRR: the heavy server is spread, not bunched. */
	is_str(seq, "aabacaa", "smooth weighted order for 5,1,1");
	for (unsigned k = 0; k < 7000; k++) {
		i = origin_pool_pick(p, 0, -1);
		if (i >= 0 && i < 3)
			cnt[i]++;
	}
	ok(cnt[0] == 5000 && cnt[1] == 1000 && cnt[2] == 1000,
	    "weighted: 5000/1000/1000 of 7000 (%u %u %u)", cnt[0], cnt[1],
	    cnt[2]);
	origin_pool_free(&p);
}

static void
test_least_conn(void)
{
	struct origin_pool *p = pool_of(ORIGIN_BAL_LEAST_CONN, urls, NULL, 3);
	struct origin_server_state st;

	origin_pool_conn_begin(p, 0);
	origin_pool_conn_begin(p, 0);
	origin_pool_conn_begin(p, 1);
	is_int(origin_pool_pick(p, 0, -1), 2, "least-conn: the idle server");
	origin_pool_conn_begin(p, 2);
	origin_pool_conn_begin(p, 2);
	origin_pool_conn_begin(p, 2);
	is_int(origin_pool_pick(p, 0, -1), 1, "least-conn: one in flight");
	origin_pool_server_state(p, 2, &st);
	is_int(st.active, 3, "state: three in flight");
	is_int(st.fetches, 3, "state: three fetches");
	for (unsigned k = 0; k < 3; k++)
		origin_pool_conn_end(p, 2);
	origin_pool_server_state(p, 2, &st);
	is_int(st.active, 0, "state: none in flight after the ends");
	origin_pool_conn_end(p, 0);
	origin_pool_conn_end(p, 0);
	origin_pool_conn_end(p, 1);
	origin_pool_free(&p);
}

/* Server URL each key maps to. */
static void
map_keys(struct origin_pool *p, const char **out)
{
	struct origin_server_state st;
	int i;

	for (unsigned k = 0; k < NKEYS; k++) {
		i = origin_pool_pick(p, key(k), -1);
		if (i < 0) {
			out[k] = NULL;
			continue;
		}
		origin_pool_server_state(p, (unsigned)i, &st);
		out[k] = st.url;
	}
}

static void
test_hash_stability(void)
{
	static const char *a[NKEYS], *b[NKEYS], *c[NKEYS];
	struct origin_pool *p5 = pool_of(ORIGIN_BAL_HASH, urls, NULL, 5);
	struct origin_pool *p4;
	const char *four[4] = {urls[0], urls[1], urls[3], urls[4]};
	unsigned moved = 0, kept_wrong = 0, cnt[5] = {0}, same = 1;

	map_keys(p5, a);
	map_keys(p5, c);
	for (unsigned k = 0; k < NKEYS; k++) {
		if (a[k] != c[k])
			same = 0;
		for (unsigned s = 0; s < 5; s++)
			if (a[k] == NULL || strcmp(a[k], urls[s]) == 0)
				cnt[s] += a[k] != NULL;
	}
	ok(same, "consistent-hash: a key always maps to the same server");
	ok(cnt[0] > 3400 && cnt[0] < 4600 && cnt[2] > 3400 && cnt[2] < 4600,
	    "consistent-hash: about a fifth each (%u %u %u %u %u)", cnt[0],
	    cnt[1], cnt[2], cnt[3], cnt[4]);

	/* The same pool without server 3: only its keys move. */
	p4 = pool_of(ORIGIN_BAL_HASH, four, NULL, 4);
	map_keys(p4, b);
	for (unsigned k = 0; k < NKEYS; k++) {
		if (a[k] == NULL || b[k] == NULL)
			continue;
		if (strcmp(a[k], urls[2]) == 0)
			moved++;
		else if (strcmp(a[k], b[k]) != 0)
			kept_wrong++;
	}
	is_int(kept_wrong, 0,
	    "removing a server moves no key of the other servers");
	ok(moved == cnt[2], "and every key of the removed one moves (%u)",
	    moved);

	/* The same when the server is taken out by failures. */
	origin_pool_report(p5, 2, 1);
	origin_pool_report(p5, 2, 1);
	map_keys(p5, c);
	kept_wrong = 0;
	for (unsigned k = 0; k < NKEYS; k++)
		if (a[k] != NULL && c[k] != NULL &&
		    strcmp(a[k], urls[2]) != 0 && strcmp(a[k], c[k]) != 0)
			kept_wrong++;
	is_int(
	    kept_wrong, 0, "a server out after failures moves only its keys");
	origin_pool_free(&p4);
	origin_pool_free(&p5);
}

static void
test_hash_weights(void)
{
	static const unsigned w[] = {1, 3};
	struct origin_pool *p = pool_of(ORIGIN_BAL_HASH, urls, w, 2);
	unsigned cnt[2] = {0};
	int i;

	for (unsigned k = 0; k < NKEYS; k++) {
		i = origin_pool_pick(p, key(k), -1);
		if (i >= 0)
			cnt[i]++;
	}
	/* 25% and 75%, within two points on 20000 keys. */
	ok(cnt[0] > NKEYS * 23 / 100 && cnt[0] < NKEYS * 27 / 100,
	    "consistent-hash weights 1:3 give %u:%u", cnt[0], cnt[1]);
	origin_pool_free(&p);
}

static void
test_passive_and_exclude(void)
{
	struct origin_pool *p = pool_of(ORIGIN_BAL_ROUND_ROBIN, urls, NULL, 2);
	struct origin_server_state st;
	int all_one = 1;

	origin_pool_report(p, 0, 1);
	origin_pool_server_state(p, 0, &st);
	ok(st.up, "one failure (max_fails 2): still up");
	origin_pool_report(p, 0, 0);
	origin_pool_report(p, 0, 1);
	origin_pool_server_state(p, 0, &st);
	ok(st.up, "a success in between restarts the count");
	origin_pool_report(p, 0, 1);
	origin_pool_server_state(p, 0, &st);
	ok(!st.up && st.cooling, "two in a row: out, cooling down");
	is_int(st.failures, 3, "three failures counted");
	for (unsigned k = 0; k < 10; k++)
		if (origin_pool_pick(p, 0, -1) != 1)
			all_one = 0;
	ok(all_one, "picks avoid the server that is out");
	is_int(
	    origin_pool_pick(p, 0, 1), -1, "excluding the only one up: none");
	origin_pool_report(p, 1, 1);
	origin_pool_report(p, 1, 1);
	is_int(origin_pool_pick(p, 0, -1), -1, "no server up: -1");
	origin_pool_free(&p);

	/* One server: nothing to fail over to, so failures never take it
	 * out (a single origin behaves as it did before pools). */
	p = pool_of(ORIGIN_BAL_ROUND_ROBIN, urls, NULL, 1);
	for (unsigned k = 0; k < 10; k++)
		origin_pool_report(p, 0, 1);
	origin_pool_server_state(p, 0, &st);
	ok(st.up && !st.cooling, "a lone server stays up after 10 failures");
	is_int(st.failures, 10, "its failures are still counted");
	is_int(origin_pool_pick(p, 0, -1), 0, "and picked");
	origin_pool_free(&p);
}

/*
 * Parents (a shield tier): a key's next parent after failures is the one
 * the pool without the failed ones would pick, so a key that leaves its
 * home lands where every other node sends it too; and a lone parent does
 * go out after failures, as the origin is there to take over.
 */
static void
test_parents(void)
{
	static const char *a[NKEYS], *b[NKEYS];
	const char *three[3] = {urls[0], urls[1], urls[3]};
	const char *two[2] = {urls[0], urls[3]};
	struct origin_pool *p5 = pool_of(ORIGIN_BAL_HASH, urls, NULL, 5);
	struct origin_pool *p3 = pool_of(ORIGIN_BAL_HASH, three, NULL, 3);
	struct origin_pool *p2 = pool_of(ORIGIN_BAL_HASH, two, NULL, 2);
	struct origin_server_conf sc = {.url = urls[0], .weight = 1};
	struct origin_pool_conf pc;
	struct origin_server_state st;
	unsigned wrong = 0, first;
	const char *why;
	int i;

	for (unsigned k = 0; k < NKEYS; k++) {
		/* In the pool of 5 without servers 2 and 4 (urls[2], urls[4]),
		 * a key goes where the pool of 3 sends it. */
		i = origin_pool_pick_except(p5, key(k), (1u << 2) | (1u << 4));
		origin_pool_server_state(p5, (unsigned)i, &st);
		a[k] = st.url;
		i = origin_pool_pick(p3, key(k), -1);
		origin_pool_server_state(p3, (unsigned)i, &st);
		b[k] = st.url;
		if (strcmp(a[k], b[k]) != 0)
			wrong++;
	}
	is_int(wrong, 0, "excluding parents picks as the pool without them");
	for (unsigned k = 0; k < NKEYS; k++) {
		i = origin_pool_pick(p2, key(k), -1);
		origin_pool_server_state(p2, (unsigned)i, &st);
		first = (unsigned)origin_pool_pick(p3, key(k), -1);
		/* Keys whose home (in the pool of 3) is urls[1]: the pool of 2
		 * is that pool without it. */
		if (first != 1)
			continue;
		i = origin_pool_pick_except(p3, key(k), 1u << 1);
		if (strcmp(st.url, three[i]) != 0)
			wrong++;
	}
	is_int(wrong, 0, "a failed home's keys go on in hash order");
	is_int(origin_pool_pick_except(p2, key(1), 3), -1,
	    "every parent excluded: none (the origin's turn)");

	memset(&pc, 0, sizeof(pc));
	pc.name = "parents";
	pc.balance = ORIGIN_BAL_HASH;
	pc.servers = &sc;
	pc.nservers = 1;
	pc.max_fails = 2;
	pc.fail_timeout_ms = 60000;
	pc.eject_lone = 1;
	origin_pool_free(&p2);
	p2 = origin_pool_new(&pc, &why);
	origin_pool_report(p2, 0, 1);
	origin_pool_report(p2, 0, 1);
	origin_pool_server_state(p2, 0, &st);
	ok(!st.up && st.cooling, "a lone parent is out after max_fails");
	is_int(origin_pool_pick(p2, key(1), -1), -1, "and not picked");
	origin_pool_free(&p2);
	origin_pool_free(&p3);
	origin_pool_free(&p5);
}

static void
test_backup_and_max_conns(void)
{
	struct origin_server_conf sc[2];
	struct origin_pool_conf pc;
	struct origin_pool *p;
	const char *why;

	memset(&pc, 0, sizeof(pc));
	memset(sc, 0, sizeof(sc));
	sc[0].url = urls[0];
	sc[0].weight = 1;
	sc[0].max_conns = 2;
	sc[1].url = urls[1];
	sc[1].weight = 1;
	sc[1].backup = 1;
	pc.balance = ORIGIN_BAL_ROUND_ROBIN;
	pc.servers = sc;
	pc.nservers = 2;
	p = origin_pool_new(&pc, &why);
	is_int(origin_pool_pick(p, 0, -1), 0, "the primary first");
	is_int(origin_pool_pick(p, 0, -1), 0, "and again: a backup waits");
	origin_pool_conn_begin(p, 0);
	origin_pool_conn_begin(p, 0);
	is_int(origin_pool_pick(p, 0, -1), 1,
	    "the primary at max_conns: the backup");
	origin_pool_conn_end(p, 0);
	is_int(origin_pool_pick(p, 0, -1), 0, "room again: the primary");
	origin_pool_conn_end(p, 0);
	origin_pool_free(&p);
}

static void
test_urls(void)
{
	struct origin_server_conf sc[2];
	struct origin_pool_conf pc;
	struct origin_pool *p;
	const char *why = NULL;
	enum origin_balance b;

	memset(&pc, 0, sizeof(pc));
	memset(sc, 0, sizeof(sc));
	sc[0].url = "https://10.0.0.1/static/";
	sc[1].url = "http://[::1]:81";
	pc.servers = sc;
	pc.nservers = 2;
	pc.tls_name = "origin.example";
	p = origin_pool_new(&pc, &why);
	ok(p != NULL, "a pool with a TLS name");
	is_str(origin_pool_server_base(p, 0),
	    "https://origin.example:443/static",
	    "https: the URL names the TLS name, the prefix is kept");
	is_str(origin_pool_connect_to(p, 0), "origin.example:443:10.0.0.1:443",
	    "and the connection goes to the address");
	is_str(origin_pool_server_base(p, 1), "http://[::1]:81",
	    "http: as configured");
	ok(origin_pool_connect_to(p, 1) == NULL, "http: no CONNECT_TO");
	origin_pool_free(&p);

	pc.nservers = 0;
	ok(origin_pool_new(&pc, &why) == NULL && why != NULL,
	    "a pool needs a server");
	ok(origin_balance_parse("consistent-hash", &b) == CDN_OK &&
	        b == ORIGIN_BAL_HASH,
	    "balance names parse");
	ok(origin_balance_parse("random", &b) == CDN_EINVAL,
	    "an unknown balance is refused");
	is_str(origin_balance_name(ORIGIN_BAL_LEAST_CONN), "least-conn",
	    "balance names print");
}

/* A pool outlives its owner while a fetch still holds it (a reload). */
static void
test_refcount(void)
{
	struct origin_pool *p = pool_of(ORIGIN_BAL_ROUND_ROBIN, urls, NULL, 2);
	struct origin_pool *held = origin_pool_ref(p);

	ok(held == p, "ref returns the pool");
	origin_pool_free(&p);
	ok(p == NULL, "the owner's pointer is cleared");
	/* Still usable through the fetch's reference (ASan would see a use
	 * after free otherwise). */
	origin_pool_conn_begin(held, 0);
	origin_pool_conn_end(held, 0);
	is_int(origin_pool_pick(held, 0, -1) >= 0, 1, "still picks a server");
	origin_pool_free(&held);
	ok(held == NULL, "the last reference frees it");
}

int
main(void)
{
	plan_no_plan();
	test_round_robin();
	test_weighted();
	test_least_conn();
	test_hash_stability();
	test_hash_weights();
	test_passive_and_exclude();
	test_backup_and_max_conns();
	test_parents();
	test_urls();
	test_refcount();
	return done_testing();
}
