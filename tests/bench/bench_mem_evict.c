/*
 * What S3-FIFO buys the memory tier: its hit ratio on seeded Zipf traces
 * against a plain LRU of the same byte budget.
 *
 * The tier is the real one (cache/cache_mem.c, CACHE_MEM_SHARDS shards as
 * the store makes it), driven as edged's lookup drives it: per request
 * cache_mem_get_vary() (on CDN_AGAIN, cache_mem_set_vary() with "no Vary",
 * as after an LMDB read), then cache_mem_get(); on a miss the object is
 * built as an LMDB read builds it (whole chunks, the last one exact) and
 * inserted: by cache_mem_put() with a pin and cache_mem_unpin() the first
 * time a key is seen (an origin fill, then the writer's commit), by
 * cache_mem_promote() after that (a read from LMDB, which holds every key).
 * Keys are cache_key_hash() of a URL, so shards are picked as in edged.
 *
 * The LRU is a reference model written for this benchmark, not code that
 * edged runs: the same entries (one per object, one per key's Vary rule),
 * charged the same footprints (cache_obj_footprint() plus the tier's
 * per-entry charge, measured from the tier itself), the same shards, the
 * same admission rule (nothing above 1/8 of a shard) and the same hash
 * table charge; a hit moves the entry to the head, the tail is evicted.
 * The tier alone also pays for its ghost table, out of the same budget.
 *
 * Each case: <keys> keys whose footprints add up to ten times the budget,
 * a warm-up of a quarter of the counted requests, then <requests> counted
 * ones.  "scan" cases insert, in the middle of the counted part, one
 * request each for keys/5 cold keys never seen before (about twice what
 * the tier holds); those requests are not counted, and the hit ratio of
 * the SCAN_WINDOW Zipf requests right after the scan is reported too.
 * "churn" cases model new content: every CHURN_EPOCH requests, keys/
 * CHURN_DIV keys that were the coldest become the most popular and every
 * other key moves that many ranks down.
 *
 *   bench_mem_evict [-n requests] [-k keys] [-s seed] [-c case]
 * -c picks the cases whose name contains the string (e.g. "mixed",
 * "a1.0", "scan", "churn").  Pure computation: no files, no sockets, no clock.
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/cache_int.h"
#include "common/cdn.h"
#include "tests/bench/bench_zipf.h"

#define KIB              1024u
#define MIB              (1024u * 1024u)
#define DEF_REQUESTS     4000000u
#define DEF_KEYS         100000u
#define DEF_SEED         UINT64_C(20261207)
#define WARMUP_DIV       4  /* warm-up: counted requests / 4 */
#define KEYSPACE_FACTOR  10 /* key space bytes / tier budget */
#define SCAN_DIV         5  /* scan of keys / 5 cold keys */
#define SCAN_WINDOW      10000u
#define CHURN_EPOCH      50000u
#define CHURN_DIV        100 /* keys / 100 new popular keys per epoch */
#define UNIFORM_SIZE     (4 * KIB)
#define MIXED_MIN        KIB
#define MIXED_MAX        MIB
#define MIXED_MEDIAN     (16.0 * KIB)
#define MIXED_SIGMA      1.5 /* of ln(size): a wide lognormal */
#define LRU_TAB_MIN      64  /* as the tier: initial buckets per shard */
#define LRU_BUCKET_BYTES sizeof(void *)
#define LRU_NONE         UINT32_MAX
#define SCAN_NONE        UINT64_MAX

static const char bench_fields[] =
    "Content-Type: text/html; charset=utf-8\r\n"
    "Cache-Control: public, max-age=3600\r\n"
    "ETag: \"5f3a9c-1a2b\"\r\n"
    "Last-Modified: Tue, 24 Nov 2026 10:00:00 GMT\r\n";

/* The key space of one size distribution (scan keys included). */
struct space {
	const char *name;
	uint32_t nkeys;     /* Zipf keys; scan keys follow them */
	uint32_t nall;      /* nkeys + scan keys */
	uint32_t *body_len; /* per key */
	uint64_t *charge;   /* per key: object entry's footprint in the tier */
	uint8_t (*key)[CACHE_HASH_LEN];
	uint64_t entry_charge; /* the tier's charge for an entry (Vary rule) */
	uint64_t budget;       /* of the whole tier */
};

enum case_kind {
	CASE_ZIPF,
	CASE_SCAN,
	CASE_CHURN,
	CASE_COUNT,
};

static const char *const case_suffix[CASE_COUNT] = {"", " scan", " churn"};

struct result {
	uint64_t reqs, hits, bytes, hit_bytes;
	uint64_t win_reqs, win_hits;
};

/* ---------------- objects as an LMDB read builds them ---------------- */

static struct cache_obj *
obj_build(const struct space *sp, uint32_t id)
{
	struct cache_decision d;
	struct cache_obj *o;
	unsigned char *c;
	size_t left, n, cap;
	char url[64];
	int len;

	memset(&d, 0, sizeof(d));
	d.storable = 1;
	d.reason = "bench";
	d.freshness_s = 3600;
	len = snprintf(url, sizeof(url), "bench.example/obj/%u", id);
	o = cache_obj_new(sp->key[id], 0, 200, &d, 1700000000, url, (size_t)len,
	    bench_fields, sizeof(bench_fields) - 1, "", 0);
	if (o == NULL)
		goto oom;
	/* Nobody reads these bodies: only their allocations count. */
	for (left = sp->body_len[id]; left > 0; left -= n) {
		n = left < CACHE_CHUNK_SIZE ? left : CACHE_CHUNK_SIZE;
		cap = n < CACHE_OBJ_MIN_CHUNK ? CACHE_OBJ_MIN_CHUNK : n;
		c = malloc(cap);
		if (c == NULL || cache_obj_adopt_chunk(o, c, n, cap) != CDN_OK)
			goto oom;
	}
	return o;
oom:
	fprintf(stderr, "bench_mem_evict: out of memory\n");
	exit(1);
}

/* The tier's charge for one entry beyond the object it holds: a put into
 * an empty tier adds the object's entry and the key's Vary entry. */
static uint64_t
measure_entry_charge(const struct space *sp)
{
	struct cache_mem *m = cache_mem_new(64 * MIB, 1);
	struct cache_mem_stats before, after;
	struct cache_obj *o = obj_build(sp, 0);
	uint64_t extra;

	cache_mem_stats(m, &before);
	if (cache_mem_put(m, o, 0) != 1)
		abort();
	cache_mem_stats(m, &after);
	extra = after.bytes - before.bytes - cache_obj_footprint(o);
	cache_obj_unref(&o);
	cache_mem_free(&m);
	if (extra == 0 || extra % 2 != 0) {
		fprintf(stderr,
		    "bench_mem_evict: cannot tell the entry charge "
		    "(%llu bytes for two entries)\n",
		    (unsigned long long)extra);
		exit(1);
	}
	return extra / 2;
}

static uint32_t
mixed_size(uint64_t seed, uint32_t id)
{
	uint64_t st = seed ^ ((uint64_t)id * UINT64_C(0x9e3779b97f4a7c15));
	double u1, u2, s;

	/* Box-Muller, redrawn until within [MIXED_MIN, MIXED_MAX]. */
	for (;;) {
		u1 = 1.0 - bench_rng_unit(&st);
		u2 = bench_rng_unit(&st);
		s = MIXED_MEDIAN *
		    exp(MIXED_SIGMA * sqrt(-2.0 * log(u1)) *
		        cos(2 * M_PI * u2));
		if (s >= MIXED_MIN && s <= MIXED_MAX)
			return (uint32_t)s;
	}
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

static void
space_init(struct space *sp, const char *name, int mixed, uint32_t nkeys,
    uint64_t seed)
{
	uint64_t total = 0, body_total = 0;
	uint32_t *sorted;
	struct cache_obj *o;
	char url[64];
	int len;

	sp->name = name;
	sp->nkeys = nkeys;
	sp->nall = nkeys + nkeys / SCAN_DIV;
	sp->body_len = calloc(sp->nall, sizeof(*sp->body_len));
	sp->charge = calloc(sp->nall, sizeof(*sp->charge));
	sp->key = calloc(sp->nall, sizeof(*sp->key));
	if (sp->body_len == NULL || sp->charge == NULL || sp->key == NULL)
		abort();
	for (uint32_t id = 0; id < sp->nall; id++) {
		len = snprintf(url, sizeof(url), "bench.example/obj/%u", id);
		cache_key_hash(url, (size_t)len, sp->key[id]);
		sp->body_len[id] = mixed ? mixed_size(seed, id) : UNIFORM_SIZE;
	}
	sp->entry_charge = measure_entry_charge(sp);
	for (uint32_t id = 0; id < sp->nall; id++) {
		o = obj_build(sp, id);
		sp->charge[id] = cache_obj_footprint(o) + sp->entry_charge;
		cache_obj_unref(&o);
		if (id < nkeys) {
			total += sp->charge[id] + sp->entry_charge;
			body_total += sp->body_len[id];
		}
	}
	sp->budget = total / KEYSPACE_FACTOR;
	sorted = malloc(nkeys * sizeof(*sorted));
	if (sorted == NULL)
		abort();
	memcpy(sorted, sp->body_len, nkeys * sizeof(*sorted));
	qsort(sorted, nkeys, sizeof(*sorted), cmp_u32);
	printf("# %s: %u keys, bodies median %u B, mean %llu B, max %u B; "
	       "key space %.1f MiB charged; tier %.1f MiB in %u shards "
	       "(admits up to %.1f KiB); entry charge %llu B\n",
	    name, nkeys, sorted[nkeys / 2],
	    (unsigned long long)(body_total / nkeys), sorted[nkeys - 1],
	    (double)total / MIB, (double)sp->budget / MIB, CACHE_MEM_SHARDS,
	    (double)(sp->budget / CACHE_MEM_SHARDS / 8) / KIB,
	    (unsigned long long)sp->entry_charge);
	free(sorted);
}

static void
space_fini(struct space *sp)
{
	free(sp->body_len);
	free(sp->charge);
	free(sp->key);
}

/* ---------------- the trace ---------------- */

/*
 * <warm> + <counted> Zipf requests, plus for CASE_SCAN the scan keys in
 * order in the middle of the counted ones.  Ranks map to key ids through a
 * seeded permutation, so that popularity is independent of size and
 * shard; for CASE_CHURN the map turns by keys / CHURN_DIV every epoch.
 */
static uint32_t *
trace_new(const struct space *sp, double alpha, uint64_t seed, uint64_t warm,
    uint64_t counted, enum case_kind kind, uint64_t *lenp)
{
	struct bench_zipf z;
	uint32_t *perm, *t, tmp, j;
	uint64_t st = seed, n = 0, nscan, scan_at, shift = 0;

	nscan = kind == CASE_SCAN ? sp->nall - sp->nkeys : 0;
	scan_at = warm + counted / 2;
	perm = malloc(sp->nkeys * sizeof(*perm));
	t = malloc((warm + counted + nscan) * sizeof(*t));
	if (perm == NULL || t == NULL ||
	    bench_zipf_init(&z, sp->nkeys, alpha) != CDN_OK)
		abort();
	for (uint32_t i = 0; i < sp->nkeys; i++)
		perm[i] = i;
	for (uint32_t i = sp->nkeys - 1; i > 0; i--) {
		j = (uint32_t)(bench_rng_next(&st) % (i + 1));
		tmp = perm[i];
		perm[i] = perm[j];
		perm[j] = tmp;
	}
	for (uint64_t i = 0; i < warm + counted; i++) {
		if (nscan > 0 && i == scan_at) {
			for (uint32_t id = sp->nkeys; id < sp->nall; id++)
				t[n++] = id;
		}
		if (kind == CASE_CHURN && i > 0 && i % CHURN_EPOCH == 0)
			shift = (shift + sp->nkeys / CHURN_DIV) % sp->nkeys;
		/* Rank 0 is the key that was rank nkeys - shift at shift 0. */
		t[n++] = perm[(bench_zipf_next(&z, &st) + sp->nkeys - shift) %
		    sp->nkeys];
	}
	bench_zipf_fini(&z);
	free(perm);
	*lenp = n;
	return t;
}

static void
count(struct result *r, const struct space *sp, uint32_t id, int hit,
    int in_window)
{
	r->reqs++;
	r->bytes += sp->body_len[id];
	if (hit) {
		r->hits++;
		r->hit_bytes += sp->body_len[id];
	}
	if (in_window) {
		r->win_reqs++;
		r->win_hits += (uint64_t)hit;
	}
}

/*
 * Walk the trace: the first <warm> Zipf requests and the scan's are not
 * counted; the SCAN_WINDOW Zipf requests after the scan also count in the
 * window.  <step> serves one request and tells whether it was a hit.
 */
static void
replay(const struct space *sp, const uint32_t *t, uint64_t len, uint64_t warm,
    int (*step)(void *, const struct space *, uint32_t), void *arg,
    struct result *r)
{
	uint64_t zipf_seen = 0, since_scan = SCAN_NONE;
	int hit;

	memset(r, 0, sizeof(*r));
	for (uint64_t i = 0; i < len; i++) {
		hit = step(arg, sp, t[i]);
		if (t[i] >= sp->nkeys) {
			since_scan = 0;
			continue;
		}
		if (zipf_seen++ < warm)
			continue;
		count(r, sp, t[i], hit,
		    since_scan != SCAN_NONE && since_scan++ < SCAN_WINDOW);
	}
}

/* ---------------- the real tier ---------------- */

struct tier {
	struct cache_mem *m;
	uint8_t *seen; /* per key: stored once (LMDB has it) */
};

static int
tier_step(void *arg, const struct space *sp, uint32_t id)
{
	struct tier *tr = arg;
	struct cache_obj *o = NULL;
	uint64_t gen = 0;
	size_t vlen = 0;
	int rc, is_removed = 0;

	rc = cache_mem_get_vary(tr->m, sp->key[id], NULL, 0, &vlen, &gen);
	if (rc == CDN_AGAIN)
		cache_mem_set_vary(tr->m, sp->key[id], NULL, 0, gen);
	rc = cache_mem_get(tr->m, sp->key[id], 0, &o, &is_removed, &gen);
	if (rc == CDN_OK) {
		cache_obj_unref(&o);
		return 1;
	}
	o = obj_build(sp, id);
	if (!tr->seen[id]) {
		tr->seen[id] = 1;
		cache_mem_put(tr->m, o, 1);
		cache_mem_unpin(tr->m, o);
	} else {
		cache_mem_promote(tr->m, o, gen);
	}
	cache_obj_unref(&o);
	return 0;
}

/* ---------------- the LRU reference model ---------------- */

/* Node 2 * id is key id's object entry, 2 * id + 1 its Vary entry. */
struct lru_node {
	uint32_t prev, next; /* LRU_NONE at the ends */
	uint8_t in;
};

struct lru_shard {
	uint32_t head, tail; /* most recent at the head */
	uint64_t bytes, budget, admit_max;
	uint64_t nentries, buckets;
};

struct lru {
	struct lru_node *node;
	struct lru_shard shard[CACHE_MEM_SHARDS];
};

/* The tier's choice of shard (cache_mem.c: bits 64..127 of the hash). */
static unsigned
lru_shard_of(const uint8_t key[CACHE_HASH_LEN])
{
	uint64_t v;

	memcpy(&v, key + 8, sizeof(v));
	return (unsigned)(v & (CACHE_MEM_SHARDS - 1));
}

static uint64_t
lru_charge(const struct space *sp, uint32_t n)
{
	return n % 2 == 0 ? sp->charge[n / 2] : sp->entry_charge;
}

static void
lru_unlink(struct lru *l, struct lru_shard *sh, uint32_t n)
{
	struct lru_node *x = &l->node[n];

	if (x->prev != LRU_NONE)
		l->node[x->prev].next = x->next;
	else
		sh->head = x->next;
	if (x->next != LRU_NONE)
		l->node[x->next].prev = x->prev;
	else
		sh->tail = x->prev;
}

static void
lru_push(struct lru *l, struct lru_shard *sh, uint32_t n)
{
	struct lru_node *x = &l->node[n];

	x->prev = LRU_NONE;
	x->next = sh->head;
	if (sh->head != LRU_NONE)
		l->node[sh->head].prev = n;
	else
		sh->tail = n;
	sh->head = n;
}

/* Look up node <n>: a hit moves it to the head, a miss inserts it. */
static int
lru_touch(struct lru *l, const struct space *sp, uint32_t n)
{
	struct lru_shard *sh = &l->shard[lru_shard_of(sp->key[n / 2])];
	uint64_t charge = lru_charge(sp, n);
	uint32_t victim;

	if (l->node[n].in) {
		lru_unlink(l, sh, n);
		lru_push(l, sh, n);
		return 1;
	}
	if (charge > sh->admit_max)
		return 0;
	l->node[n].in = 1;
	lru_push(l, sh, n);
	sh->bytes += charge;
	if (++sh->nentries > sh->buckets) {
		sh->bytes += sh->buckets * LRU_BUCKET_BYTES;
		sh->buckets *= 2;
	}
	while (sh->bytes > sh->budget && sh->tail != LRU_NONE) {
		victim = sh->tail;
		lru_unlink(l, sh, victim);
		l->node[victim].in = 0;
		sh->bytes -= lru_charge(sp, victim);
		sh->nentries--;
	}
	return 0;
}

static int
lru_step(void *arg, const struct space *sp, uint32_t id)
{
	struct lru *l = arg;

	lru_touch(l, sp, 2 * id + 1);
	return lru_touch(l, sp, 2 * id);
}

static void
lru_init(struct lru *l, const struct space *sp)
{
	struct lru_shard *sh;

	l->node = calloc(2 * (size_t)sp->nall, sizeof(*l->node));
	if (l->node == NULL)
		abort();
	for (unsigned i = 0; i < CACHE_MEM_SHARDS; i++) {
		sh = &l->shard[i];
		sh->head = sh->tail = LRU_NONE;
		sh->budget = sp->budget / CACHE_MEM_SHARDS;
		sh->admit_max = sh->budget / 8;
		sh->buckets = LRU_TAB_MIN;
		sh->bytes = LRU_TAB_MIN * LRU_BUCKET_BYTES;
		sh->nentries = 0;
	}
}

/* ---------------- cases ---------------- */

static double
pct(uint64_t part, uint64_t whole)
{
	return whole > 0 ? 100.0 * (double)part / (double)whole : 0;
}

static void
print_row(
    const char *name, const char *policy, const struct result *r, int scan)
{
	char win[32] = "";

	if (scan)
		snprintf(win, sizeof(win), " %6.2f%% |",
		    pct(r->win_hits, r->win_reqs));
	printf("| %-18s | %-7s | %6.2f%% | %6.2f%% |%s\n", name, policy,
	    pct(r->hits, r->reqs), pct(r->hit_bytes, r->bytes),
	    scan ? win : " - |");
}

static void
run_case(const struct space *sp, double alpha, enum case_kind kind,
    uint64_t counted, uint64_t seed)
{
	struct result rt, rl;
	struct tier tr;
	struct lru l;
	uint32_t *t;
	uint64_t len, warm = counted / WARMUP_DIV;
	char name[64];

	snprintf(name, sizeof(name), "%s a%.1f%s", sp->name, alpha,
	    case_suffix[kind]);
	t = trace_new(sp, alpha, seed, warm, counted, kind, &len);
	tr.m = cache_mem_new(sp->budget, CACHE_MEM_SHARDS);
	tr.seen = calloc(sp->nall, 1);
	if (tr.seen == NULL)
		abort();
	replay(sp, t, len, warm, tier_step, &tr, &rt);
	cache_mem_free(&tr.m);
	free(tr.seen);
	lru_init(&l, sp);
	replay(sp, t, len, warm, lru_step, &l, &rl);
	free(l.node);
	free(t);
	print_row(name, "S3-FIFO", &rt, kind == CASE_SCAN);
	print_row(name, "LRU", &rl, kind == CASE_SCAN);
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	static const double alphas[] = {0.8, 1.0};
	uint64_t counted = DEF_REQUESTS, seed = DEF_SEED;
	uint32_t nkeys = DEF_KEYS;
	const char *only = NULL;
	struct space sp;
	char name[64];
	int opt;

	while ((opt = getopt(argc, argv, "n:k:s:c:")) != -1) {
		switch (opt) {
		case 'n':
			counted = strtoull(optarg, NULL, 10);
			break;
		case 'k':
			nkeys = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 's':
			seed = strtoull(optarg, NULL, 10);
			break;
		case 'c':
			only = optarg;
			break;
		default:
			fprintf(stderr,
			    "usage: bench_mem_evict [-n requests] "
			    "[-k keys] [-s seed] [-c case]\n");
			return 2;
		}
	}
	if (counted < 2 * SCAN_WINDOW || nkeys < 2 * KEYSPACE_FACTOR) {
		fprintf(stderr, "bench_mem_evict: want -n >= %u, -k >= %u\n",
		    2 * SCAN_WINDOW, 2 * KEYSPACE_FACTOR);
		return 2;
	}
	printf("# %llu counted requests after %llu of warm-up, seed %llu\n",
	    (unsigned long long)counted,
	    (unsigned long long)(counted / WARMUP_DIV),
	    (unsigned long long)seed);
	printf("| case | policy | object hits | byte hits | "
	       "objects, %u after the scan |\n|---|---|---|---|---|\n",
	    SCAN_WINDOW);
	for (int mixed = 0; mixed <= 1; mixed++) {
		space_init(&sp, mixed ? "mixed" : "4KiB", mixed, nkeys, seed);
		for (size_t a = 0; a < sizeof(alphas) / sizeof(alphas[0]);
		     a++) {
			for (int k = 0; k < CASE_COUNT; k++) {
				snprintf(name, sizeof(name), "%s a%.1f%s",
				    sp.name, alphas[a], case_suffix[k]);
				if (only != NULL && strstr(name, only) == NULL)
					continue;
				run_case(&sp, alphas[a], (enum case_kind)k,
				    counted, seed);
			}
		}
		space_fini(&sp);
	}
	return 0;
}
