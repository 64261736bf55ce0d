/*
 * The memory tier's own memory (cache/cache_slab.c): size classes and what
 * a block is charged, blocks that never overlap and are reused once
 * freed, threads allocating and freeing at once, objects whose head and
 * small body live there, the tier's charge against the process's
 * resident memory, runs given back to the system once their blocks are
 * freed and taken again by another class, empty runs kept at the edge,
 * and a full tier's slab staying about its budget.
 */
#include "config.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "cache/cache_int.h"
#include "common/cdn_asan.h"
#include "tap.h"

#define NBLOCKS  4000
#define NTHREADS 2
#define NROUNDS  50000
#define NOBJS    20000
#define BURST    256 /* blocks of 4-6 KiB: 16 to 24 runs */
/* What test_give_back takes of one class. */
#define GIVE_BYTES (8 << 20)
/* What a class may keep empty: SLAB_KEEP_EMPTY runs of SLAB_RUN. */
#define KEEP_MAX (2 * 64 * 1024)

/* A pseudo-random sequence, the same every run. */
static uint64_t
next_rand(uint64_t *s)
{
	*s = *s * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
	return *s >> 33;
}

static void
fill(unsigned char *p, size_t n, unsigned char tag)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(tag + i * 31);
}

static int
intact(const unsigned char *p, size_t n, unsigned char tag)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (unsigned char)(tag + i * 31))
			return 0;
	return 1;
}

static void
test_cost(void)
{
	size_t prev = 0, bad = 0;

	for (size_t n = 1; n <= CACHE_SLAB_MAX; n++) {
		size_t c = cache_slab_cost(n);

		/* At least n, 16-aligned, at most 1/8 (or 15 bytes) more,
		 * and never less than a smaller size's. */
		if (c < n || c % 16 != 0 || c < prev ||
		    (n <= 256 ? c - n >= 16 : (c - n) * 8 >= n))
			bad++;
		prev = c;
	}
	is_int(bad, 0, "cost: every size up to CACHE_SLAB_MAX fits its class");
	is_int(
	    cache_slab_cost(1024), 1024, "cost: 1 KiB is a class of its own");
	is_int(cache_slab_cost(CACHE_SLAB_MAX), CACHE_SLAB_MAX,
	    "cost: the largest class");
	ok(cache_slab_cost(CACHE_SLAB_MAX + 1) > CACHE_SLAB_MAX + 1,
	    "cost: beyond the classes, malloc's overhead is counted");
}

static void
test_blocks(void)
{
	static unsigned char *p[NBLOCKS];
	static size_t len[NBLOCKS];
	uint64_t seed = 1;
	size_t bad_align = 0, bad_data = 0;
	void *a, *b;

	for (size_t i = 0; i < NBLOCKS; i++) {
		len[i] = 1 + next_rand(&seed) % (CACHE_SLAB_MAX + 64);
		p[i] = cache_slab_alloc(len[i]);
		if (p[i] == NULL || (uintptr_t)p[i] % 16 != 0)
			bad_align++;
		else
			fill(p[i], len[i], (unsigned char)i);
	}
	/* Free every other block and allocate again: the rest must be
	 * untouched. */
	for (size_t i = 0; i < NBLOCKS; i += 2)
		cache_slab_free(p[i], len[i]);
	for (size_t i = 0; i < NBLOCKS; i += 2) {
		p[i] = cache_slab_alloc(len[i]);
		if (p[i] == NULL)
			bad_align++;
		else
			fill(p[i], len[i], (unsigned char)i);
	}
	for (size_t i = 0; i < NBLOCKS; i++)
		bad_data += !intact(p[i], len[i], (unsigned char)i);
	is_int(bad_align, 0, "blocks: every block allocated, 16-byte aligned");
	is_int(bad_data, 0, "blocks: no block overlaps another");
	for (size_t i = 0; i < NBLOCKS; i++)
		cache_slab_free(p[i], len[i]);

	a = cache_slab_alloc(700);
	cache_slab_free(a, 700);
	b = cache_slab_alloc(690); /* the same class */
	ok(a == b, "reuse: a freed block is the next of its class");
	cache_slab_free(b, 690);
	cache_slab_free(NULL, 10);
	ok(1, "free: NULL is nothing");
}

static void *
churn(void *arg)
{
	uint64_t seed = (uint64_t)(uintptr_t)arg;
	unsigned char *live[64] = {0}, *burst[BURST];
	size_t len[64] = {0};
	unsigned char tag = (unsigned char)(uintptr_t)arg;
	/* A size of this thread's own (4 KiB and more: a class far from the
	 * churn's). */
	size_t burst_len = 4000 + 1000 * (size_t)tag;
	uintptr_t bad = 0;

	for (int r = 0; r < NROUNDS; r++) {
		size_t k = next_rand(&seed) % 64;

		/* Now and then some runs of one class taken and freed: they
		 * go back to the pool while the other thread takes runs. */
		if (r % (NROUNDS / 10) == 0) {
			for (size_t i = 0; i < BURST; i++)
				if ((burst[i] = cache_slab_alloc(burst_len)) ==
				    NULL)
					return (void *)(uintptr_t)1;
			for (size_t i = 0; i < BURST; i++)
				cache_slab_free(burst[i], burst_len);
		}

		if (live[k] != NULL) {
			bad += !intact(live[k], len[k], tag);
			cache_slab_free(live[k], len[k]);
		}
		len[k] = 1 + next_rand(&seed) % 3000;
		live[k] = cache_slab_alloc(len[k]);
		if (live[k] == NULL)
			return (void *)(uintptr_t)1;
		fill(live[k], len[k], tag);
	}
	for (size_t k = 0; k < 64; k++) {
		bad += !intact(live[k], len[k], tag);
		cache_slab_free(live[k], len[k]);
	}
	return (void *)bad;
}

static void
test_threads(void)
{
	pthread_t t[NTHREADS];
	void *bad;
	size_t nbad = 0;
	uint64_t given0 = cache_slab_given_back();

	for (uintptr_t i = 0; i < NTHREADS; i++)
		CDN_ASSERT(
		    pthread_create(&t[i], NULL, churn, (void *)(i + 1)) == 0);
	for (int i = 0; i < NTHREADS; i++) {
		CDN_ASSERT(pthread_join(t[i], &bad) == 0);
		nbad += (size_t)(uintptr_t)bad;
	}
	is_int(nbad, 0, "threads: %d threads allocating and freeing at once",
	    NTHREADS);
	/* Few blocks live in many classes: runs empty, go back to the pool
	 * and are taken again by other classes while the threads run. */
	ok(cache_slab_given_back() > given0,
	    "threads: %llu bytes of runs given back meanwhile",
	    (unsigned long long)(cache_slab_given_back() - given0));
}

static struct cache_obj *
obj_new(uint32_t i)
{
	uint8_t key[CACHE_HASH_LEN] = {0};
	struct cache_decision d = {0};
	uint64_t h = (i + 1) * UINT64_C(0x9e3779b97f4a7c15);

	/* Both halves vary: one picks the shard, the other the bucket. */
	memcpy(key, &h, sizeof(h));
	memcpy(key + 8, &h, sizeof(h));
	return cache_obj_new(key, 0, 200, &d, 0, "/obj/x", 6,
	    "Content-Type: text/plain\r\n", 26, "", 0);
}

static void
test_object(void)
{
	static unsigned char body[40000];
	struct cache_obj *o;
	size_t head;
	int good = 1;

	fill(body, sizeof(body), 7);
	o = obj_new(1);
	cache_obj_reserve(o, 1024);
	ok(cache_obj_append(o, body, 1024) == CDN_OK, "object: 1 KiB body");
	ok(o->is_body_slab, "object: a small body is the slab's");
	head = sizeof(*o) + 6 + 1 + 26 + 1 + 0 + 1;
	is_int(cache_obj_footprint(o),
	    cache_slab_cost(head) + cache_slab_cost(1024),
	    "object: charged its two blocks as the slab holds them");
	cache_obj_unref(&o);

	/* Appended in pieces, the body grows past the slab's largest
	 * block and moves to malloc, intact. */
	o = obj_new(2);
	for (size_t at = 0; at < sizeof(body); at += 1000)
		if (cache_obj_append(o, body + at,
		        sizeof(body) - at < 1000 ? sizeof(body) - at : 1000) !=
		    CDN_OK)
			good = 0;
	ok(good && o->body_len == sizeof(body),
	    "object: 40000 bytes in pieces");
	ok(!o->is_body_slab,
	    "object: past CACHE_SLAB_MAX the body is malloc's");
	ok(intact(o->chunks[0], sizeof(body), 7), "object: body intact");
	cache_obj_unref(&o);
}

/* Anonymous resident KiB of this process (the heap and the slab). */
static long
rss_anon_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "RssAnon: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

static void
test_tier_charge(void)
{
	static unsigned char body[1024];
	struct cache_mem *m;
	struct cache_mem_stats st0, st1;
	struct cache_obj *o;
	long rss0, rss1;
	size_t held = 0;

	m = cache_mem_new(UINT64_C(1) << 30, CACHE_MEM_SHARDS);
	cache_mem_stats(m, &st0);
	rss0 = rss_anon_kib();
	for (uint32_t i = 0; i < NOBJS; i++) {
		o = obj_new(i + 100);
		cache_obj_reserve(o, sizeof(body));
		CDN_ASSERT(cache_obj_append(o, body, sizeof(body)) == CDN_OK);
		held += (size_t)cache_mem_put(m, o, 0);
		cache_obj_unref(&o);
	}
	rss1 = rss_anon_kib();
	cache_mem_stats(m, &st1);
	is_int(held, NOBJS, "tier: every 1 KiB object admitted");
	if (rss0 < 0 || rss1 < 0 || CDN_ASAN) {
		ok(1,
		    "tier: resident size not checked (no /proc/self/status, "
		    "or AddressSanitizer's shadow memory)");
	} else {
		/* What the process took for the objects is about what the
		 * tier is charged: not more (the budget would be a lie),
		 * and not much less (the budget would be wasted). */
		double took = (double)(rss1 - rss0) * 1024;
		double charged = (double)(st1.bytes - st0.bytes);

		ok(took <= charged * 1.1 && took >= charged * 0.8,
		    "tier: resident growth %.0f bytes for %.0f charged", took,
		    charged);
	}
	cache_mem_free(&m);
}

/* Virtual KiB of this process: grows by a region when the slab maps one. */
static long
vm_size_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmSize: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* GIVE_BYTES of blocks of <n> bytes into <p>, written; the count. */
static size_t
take_blocks(unsigned char **p, size_t n, unsigned char tag)
{
	size_t k = GIVE_BYTES / n;

	for (size_t i = 0; i < k; i++) {
		p[i] = cache_slab_alloc(n);
		CDN_ASSERT(p[i] != NULL);
		fill(p[i], n, (unsigned char)(tag + i));
	}
	return k;
}

/* A class whose blocks are all freed gives its runs back to the system,
 * but for the few it keeps; another class then takes those runs rather
 * than new memory. */
static void
test_give_back(void)
{
	static unsigned char *p[GIVE_BYTES / 3000 + 1];
	uint64_t bytes0, given0, grown;
	long rss0, rss1, rss2, vm0, vm1;
	size_t k, bad = 0;

	bytes0 = cache_slab_bytes();
	given0 = cache_slab_given_back();
	rss0 = rss_anon_kib();
	k = take_blocks(p, 5000, 1);
	grown = cache_slab_bytes() - bytes0;
	ok(grown >= GIVE_BYTES, "give back: %zu blocks of 5000 bytes took %llu",
	    k, (unsigned long long)grown);
	rss1 = rss_anon_kib();
	for (size_t i = 0; i < k; i++) {
		bad += !intact(p[i], 5000, (unsigned char)(1 + i));
		cache_slab_free(p[i], 5000);
	}
	is_int(bad, 0, "give back: blocks intact");
	ok(cache_slab_bytes() <= bytes0 + KEEP_MAX,
	    "give back: the class holds at most a few empty runs (%lld bytes "
	    "more than before)",
	    (long long)(cache_slab_bytes() - bytes0));
	ok(cache_slab_given_back() - given0 >= GIVE_BYTES - KEEP_MAX,
	    "give back: %llu bytes given back",
	    (unsigned long long)(cache_slab_given_back() - given0));
	rss2 = rss_anon_kib();
	if (rss0 < 0 || CDN_ASAN) {
		ok(1,
		    "give back: resident size not checked (no "
		    "/proc/self/status, or AddressSanitizer's shadow memory)");
	} else {
		ok(rss1 - rss0 >= GIVE_BYTES / 1024 &&
		        rss2 - rss0 <= (long)(KEEP_MAX / 1024) + 256,
		    "give back: RssAnon %+ld KiB with the blocks, %+ld KiB "
		    "after",
		    rss1 - rss0, rss2 - rss0);
	}

	/* Another size takes the runs given back. */
	vm0 = vm_size_kib();
	k = take_blocks(p, 3000, 2);
	vm1 = vm_size_kib();
	grown = cache_slab_bytes() - bytes0;
	ok(grown >= GIVE_BYTES && grown <= GIVE_BYTES + GIVE_BYTES / 8,
	    "reuse: %zu blocks of 3000 bytes hold %llu", k,
	    (unsigned long long)grown);
	if (vm0 < 0 || CDN_ASAN)
		ok(1, "reuse: address space not checked");
	else
		ok(vm1 - vm0 < 1024,
		    "reuse: the runs given back are taken again, no new "
		    "region (%+ld KiB mapped)",
		    vm1 - vm0);
	bad = 0;
	for (size_t i = 0; i < k; i++) {
		bad += !intact(p[i], 3000, (unsigned char)(2 + i));
		cache_slab_free(p[i], 3000);
	}
	is_int(bad, 0, "reuse: blocks intact");
}

/* A class at the edge of a run, or whose objects come and go by a small
 * part of what it holds, keeps its empty runs rather than giving them back
 * each time. */
static void
test_keep_empty(void)
{
	/* 7000 bytes: 7168-byte blocks, nine to a 64 KiB run. */
	static unsigned char *p[2 * 9], *p9k[GIVE_BYTES / 9000];
	uint64_t given0 = 0;
	size_t k;

	/* Two rounds first: the class may hold runs of earlier tests. */
	for (int round = 0; round < 2 + 100; round++) {
		if (round == 2)
			given0 = cache_slab_given_back();
		for (size_t i = 0; i < 2 * 9; i++)
			p[i] = cache_slab_alloc(7000);
		for (size_t i = 0; i < 2 * 9; i++)
			cache_slab_free(p[i], 7000);
	}
	is_int(cache_slab_given_back() - given0, 0,
	    "keep: two runs' worth taken and freed 100 times, nothing "
	    "given back");

	/* 9000 bytes: 9216-byte blocks, seven to a run.  A class of some
	 * 130 runs whose last tenth of blocks comes and goes keeps them. */
	k = take_blocks(p9k, 9000, 3);
	given0 = cache_slab_given_back();
	for (int round = 0; round < 20; round++) {
		for (size_t i = k - k / 10; i < k; i++)
			cache_slab_free(p9k[i], 9000);
		for (size_t i = k - k / 10; i < k; i++)
			p9k[i] = cache_slab_alloc(9000);
	}
	is_int(cache_slab_given_back() - given0, 0,
	    "keep: a tenth of %zu blocks taken and freed 20 times, nothing "
	    "given back",
	    k);
	for (size_t i = 0; i < k; i++)
		cache_slab_free(p9k[i], 9000);
	ok(cache_slab_given_back() - given0 >= GIVE_BYTES - GIVE_BYTES / 8,
	    "keep: all freed, the class gives back all but a few runs");
}

/* A full tier evicting: what the slab maps stays about the budget, as
 * evicted objects' blocks are reused by the next ones.  (Bodies of a size
 * the tests above hardly used, whose freed blocks would hide a leak.) */
static void
test_tier_bounded(void)
{
	static unsigned char body[3000];
	uint64_t budget = UINT64_C(16) << 20, taken0;
	struct cache_mem *m;
	struct cache_mem_stats st;
	struct cache_obj *o;
	uint32_t n = 0;

	m = cache_mem_new(budget, CACHE_MEM_SHARDS);
	taken0 = cache_slab_bytes();
	do {
		o = obj_new(NOBJS + 1000 + n++);
		cache_obj_reserve(o, sizeof(body));
		CDN_ASSERT(cache_obj_append(o, body, sizeof(body)) == CDN_OK);
		(void)cache_mem_put(m, o, 0);
		cache_obj_unref(&o);
		cache_mem_stats(m, &st);
	} while (st.evictions < 4 * st.objects);
	ok(st.bytes <= budget,
	    "bounded: the tier is charged at most its budget");
	ok(cache_slab_bytes() - taken0 <= budget + budget / 8,
	    "bounded: %u objects through a 16 MiB tier took %llu bytes", n,
	    (unsigned long long)(cache_slab_bytes() - taken0));
	cache_mem_free(&m);
}

int
main(void)
{
	plan_no_plan();
	test_cost();
	test_blocks();
	test_threads();
	test_object();
	test_tier_charge();
	test_give_back();
	test_keep_empty();
	test_tier_bounded();
	return done_testing();
}
