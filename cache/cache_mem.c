/*
 * The memory tier (cache_int.h): hot objects and Vary rules, bounded in
 * bytes, in front of LMDB.
 *
 * Sharding: the primary key hash picks one of m->nshards shards (bits
 * 64..127 of the hash); every variant of a key lives in the same shard and
 * the same hash chain (bits 0..63), so removing a key or finding its
 * tombstone walks one chain.  Each shard is independent: sh->mtx covers
 * every field of the shard and every entry in it (chain links, queue links,
 * freq).  No function holds two shard locks, and none calls out of this
 * file with a lock held except cache_obj_ref (atomic, no lock); references
 * of evicted objects are dropped after the lock is released.
 *
 * Eviction: S3-FIFO (Yang et al., SOSP '23) per shard.  A new entry goes to
 * the small FIFO S (about 10% of the shard's bytes), or straight to the
 * main FIFO M if its fingerprint is in the ghost queue G.  A hit only sets
 * a 2-bit frequency (no list movement).  Evicting from S: an entry hit at
 * least once since insertion (requested twice) moves to M, others leave a
 * fingerprint in G and go.  Evicting from M: an entry with freq > 0 is
 * reinserted at the head with freq - 1, others go.  One-hit wonders thus
 * never disturb M, which makes scans harmless.  G is a two-way
 * set-associative table of fingerprints stamped with an insertion clock;
 * a fingerprint counts as present while fewer than |M| insertions followed
 * it (the paper's ghost size).  tests/bench/bench_mem_evict measures it
 * against LRU and each of these parameters (docs/performance.md).
 *
 * Budget: sh->bytes counts entry footprints (cache_obj_footprint plus the
 * entry, as cache_slab_cost counts the slab's blocks), the hash table and
 * the ghost table, and is kept <= sh->budget after every insertion.  An object
 * larger than 1/8 of a shard's budget is not admitted, except as a pinned entry
 * while the writer thread has it queued (cache_mem_put() with <pin>, until
 * cache_mem_unpin()), so that an object just stored is found at once whatever
 * its size.  Tombstones (pending removals) and pinned objects are never
 * evicted: they are short-lived; pinned ones are charged only their entry, as
 * the writer's queue holds and bounds their bytes.
 *
 * Vary rules: a key's rule is its Vary entry (which may say "known: no
 * Vary"), else, for a key whose last put was of an object without Vary,
 * that object's entry (is_rule): most keys have no Vary, and one entry per
 * object halves the entries a miss inserts and the chains walk.  Whenever
 * a rule with Vary is set, every is_rule mark of the key is cleared, so
 * an evicted Vary entry never leaves an older "no Vary" behind.  Either
 * kind of rule goes when its entry goes; the next lookup then reads LMDB.
 *
 * Generations: sh->gen changes on every put and removal in the shard.  A
 * reader that missed memory and read LMDB passes the generation it saw to
 * promote/set_vary, which insert nothing if the shard changed meanwhile,
 * so a slow LMDB read can never put back an object or a Vary rule that a
 * concurrent put replaced or a removal dropped.
 */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "cache/cache_int.h"

#define CACHE_MEM_MAGIC 0x5d2e81a3u

#define MEM_SMALL_PCT        10 /* S3-FIFO small queue share of bytes */
#define MEM_ADMIT_DIV        8  /* largest admitted: shard budget / 8 */
#define MEM_FREQ_MAX         3  /* 2-bit frequency */
#define MEM_PROMOTE_FREQ     1  /* hits in S needed to move to M */
#define MEM_TAB_MIN          64 /* initial hash buckets per shard */
#define MEM_GHOST_MIN        16
#define MEM_GHOST_MAX        65536
#define MEM_GHOST_PER_BYTES  1024 /* one ghost slot per KiB of budget */
#define MEM_GHOST_WINDOW_MIN 16
#define MEM_MALLOC_OVERHEAD  16 /* malloc's header, for tombstones */

enum mem_kind {
	MEM_OBJ = 1,
	MEM_VARY = 2,
	MEM_TOMB = 3,
};

enum mem_q {
	Q_NONE = 0,
	Q_SMALL = 1,
	Q_MAIN = 2,
};

struct mem_entry {
	struct mem_entry *hnext; /* hash chain; graveyard list once dead */
	struct mem_entry *qprev, *qnext; /* S or M; unused for tombstones */
	uint8_t key[CACHE_HASH_LEN];
	uint64_t variant;      /* MEM_OBJ only */
	uint8_t kind;          /* enum mem_kind */
	uint8_t queue;         /* enum mem_q */
	uint8_t freq;          /* 0..MEM_FREQ_MAX */
	uint8_t has_vary;      /* MEM_VARY: 0 means "known: no Vary" */
	uint8_t pinned;        /* MEM_OBJ: kept until the writer commits */
	uint8_t is_rule;       /* MEM_OBJ: the key's rule is "no Vary" */
	size_t footprint;      /* bytes charged to the shard */
	struct cache_obj *obj; /* MEM_OBJ: one reference */
	uint64_t tomb_seq;     /* MEM_TOMB */
	size_t vary_len;       /* MEM_VARY */
	char vary[];           /* MEM_VARY: vary_len bytes */
};

struct mem_fifo {
	struct mem_entry *head, *tail; /* insert at head, evict at tail */
	uint64_t bytes;
	uint64_t count;
};

struct ghost_slot {
	uint64_t fp; /* 0: empty */
	uint64_t at; /* sh->ghost_clock when inserted */
};

struct mem_shard {
	pthread_mutex_t mtx;
	struct mem_entry **tab;
	size_t tab_mask; /* buckets - 1 */
	size_t nentries;
	struct mem_fifo small, main;
	uint64_t bytes;
	uint64_t budget;
	uint64_t small_target;
	uint64_t admit_max;
	uint64_t gen;
	uint64_t nobjs;
	uint64_t evictions;
	struct ghost_slot *ghost;
	size_t ghost_mask;
	uint64_t ghost_clock;
	char pad[64]; /* keep neighbouring shards' locks off this line */
};

struct cache_mem {
	uint32_t magic;
	unsigned nshards;
	uint64_t budget;
	struct mem_shard *shards;
};

static uint64_t
load64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static struct mem_shard *
shard_of(struct cache_mem *m, const uint8_t key[CACHE_HASH_LEN])
{
	return &m->shards[load64(key + 8) & (m->nshards - 1)];
}

static size_t
bucket_of(const struct mem_shard *sh, const uint8_t key[CACHE_HASH_LEN])
{
	return (size_t)(load64(key) & sh->tab_mask);
}

/* Non-zero fingerprint of an entry's identity, for the ghost queue. */
static uint64_t
fingerprint(const uint8_t key[CACHE_HASH_LEN], uint64_t variant, int kind)
{
	uint64_t h;

	h = load64(key) ^ load64(key + 8) ^
	    (variant * UINT64_C(0x9e3779b97f4a7c15)) ^ (uint64_t)kind;
	h ^= h >> 29;
	h *= UINT64_C(0xbf58476d1ce4e5b9);
	h ^= h >> 32;
	return h | 1;
}

static uint64_t
ghost_window(const struct mem_shard *sh)
{
	return sh->main.count > MEM_GHOST_WINDOW_MIN ? sh->main.count
	                                             : MEM_GHOST_WINDOW_MIN;
}

static void
ghost_add(struct mem_shard *sh, uint64_t fp)
{
	struct ghost_slot *a, *b, *victim;
	size_t i;

	i = (size_t)(fp >> 1) & sh->ghost_mask;
	a = &sh->ghost[i];
	b = &sh->ghost[i ^ 1];
	if (a->fp == fp || a->fp == 0)
		victim = a;
	else if (b->fp == fp || b->fp == 0)
		victim = b;
	else
		victim = a->at <= b->at ? a : b;
	victim->fp = fp;
	victim->at = sh->ghost_clock++;
}

/* Is <fp> in the ghost queue?  A hit consumes it. */
static int
ghost_take(struct mem_shard *sh, uint64_t fp)
{
	struct ghost_slot *s;
	size_t i;

	i = (size_t)(fp >> 1) & sh->ghost_mask;
	for (int k = 0; k < 2; k++) {
		s = &sh->ghost[i ^ (size_t)k];
		if (s->fp == fp) {
			s->fp = 0;
			return sh->ghost_clock - s->at <= ghost_window(sh);
		}
	}
	return 0;
}

static void
fifo_push(struct mem_fifo *q, struct mem_entry *e)
{
	e->qprev = NULL;
	e->qnext = q->head;
	if (q->head != NULL)
		q->head->qprev = e;
	else
		q->tail = e;
	q->head = e;
	q->bytes += e->footprint;
	q->count++;
}

static void
fifo_unlink(struct mem_fifo *q, struct mem_entry *e)
{
	if (e->qprev != NULL)
		e->qprev->qnext = e->qnext;
	else
		q->head = e->qnext;
	if (e->qnext != NULL)
		e->qnext->qprev = e->qprev;
	else
		q->tail = e->qprev;
	e->qprev = e->qnext = NULL;
	q->bytes -= e->footprint;
	q->count--;
}

static struct mem_fifo *
fifo_of(struct mem_shard *sh, const struct mem_entry *e)
{
	switch (e->queue) {
	case Q_SMALL:
		return &sh->small;
	case Q_MAIN:
		return &sh->main;
	}
	return NULL;
}

/* Unlink <e> from its chain and queue, and uncharge it. */
static void
entry_unlink(struct mem_shard *sh, struct mem_entry *e)
{
	struct mem_entry **pp;
	struct mem_fifo *q;

	pp = &sh->tab[bucket_of(sh, e->key)];
	while (*pp != e) {
		CDN_ASSERT(*pp != NULL);
		pp = &(*pp)->hnext;
	}
	*pp = e->hnext;
	q = fifo_of(sh, e);
	if (q != NULL)
		fifo_unlink(q, e);
	e->queue = Q_NONE;
	sh->bytes -= e->footprint;
	sh->nentries--;
	if (e->kind == MEM_OBJ)
		sh->nobjs--;
}

/*
 * Unlink <e> and move it to the graveyard *gravep; the caller frees the
 * graveyard after unlocking.
 */
static void
entry_kill(struct mem_shard *sh, struct mem_entry *e, struct mem_entry **gravep)
{
	entry_unlink(sh, e);
	e->hnext = *gravep;
	*gravep = e;
}

/* Bytes of an entry's allocation.  Objects' and Vary entries are the
 * slab's (cache_slab.c), as they live as long as what they hold;
 * tombstones, short-lived, are malloc's (cdn_xcalloc). */
static size_t
entry_size(const struct mem_entry *e)
{
	return sizeof(*e) + (e->kind == MEM_VARY ? e->vary_len : 0);
}

static void
graveyard_free(struct mem_entry *e)
{
	struct mem_entry *next;

	for (; e != NULL; e = next) {
		next = e->hnext;
		if (e->kind == MEM_OBJ)
			cache_obj_unref(&e->obj);
		if (e->kind == MEM_TOMB)
			free(e);
		else
			cache_slab_free(e, entry_size(e));
	}
}

/* Evict one entry from S (or move one to M). */
static void
evict_small(struct mem_shard *sh, struct mem_entry **gravep)
{
	struct mem_entry *e;

	e = sh->small.tail;
	if (e->freq >= MEM_PROMOTE_FREQ) {
		fifo_unlink(&sh->small, e);
		e->freq = 0;
		e->queue = Q_MAIN;
		fifo_push(&sh->main, e);
		return;
	}
	ghost_add(sh, fingerprint(e->key, e->variant, e->kind));
	if (e->kind == MEM_OBJ)
		sh->evictions++;
	entry_kill(sh, e, gravep);
}

/* Evict one entry from M (or give one a second chance). */
static void
evict_main(struct mem_shard *sh, struct mem_entry **gravep)
{
	struct mem_entry *e;

	e = sh->main.tail;
	if (e->freq > 0) {
		fifo_unlink(&sh->main, e);
		e->freq--;
		fifo_push(&sh->main, e);
		return;
	}
	if (e->kind == MEM_OBJ)
		sh->evictions++;
	entry_kill(sh, e, gravep);
}

static void
evict_to_budget(struct mem_shard *sh, struct mem_entry **gravep)
{
	while (sh->bytes > sh->budget && sh->small.count + sh->main.count > 0) {
		if (sh->small.count > 0 &&
		    (sh->small.bytes >= sh->small_target ||
		        sh->main.count == 0))
			evict_small(sh, gravep);
		else
			evict_main(sh, gravep);
	}
}

/* Double the hash table when entries outnumber buckets. */
static void
maybe_grow(struct mem_shard *sh)
{
	struct mem_entry **tab, *e, *next;
	size_t n, nn, i, b;

	n = sh->tab_mask + 1;
	if (sh->nentries <= n)
		return;
	nn = n * 2;
	tab = calloc(nn, sizeof(*tab));
	if (tab == NULL)
		return; /* longer chains, still correct */
	for (i = 0; i < n; i++) {
		for (e = sh->tab[i]; e != NULL; e = next) {
			next = e->hnext;
			b = (size_t)(load64(e->key) & (nn - 1));
			e->hnext = tab[b];
			tab[b] = e;
		}
	}
	free(sh->tab);
	sh->tab = tab;
	sh->tab_mask = nn - 1;
	sh->bytes += (nn - n) * sizeof(*tab);
}

/* Link <e> into the chain and, unless a tombstone, into S or M. */
static void
entry_insert(
    struct mem_shard *sh, struct mem_entry *e, struct mem_entry **gravep)
{
	size_t b;

	b = bucket_of(sh, e->key);
	e->hnext = sh->tab[b];
	sh->tab[b] = e;
	sh->nentries++;
	sh->bytes += e->footprint;
	e->freq = 0;
	e->qprev = e->qnext = NULL;
	if (e->kind == MEM_OBJ)
		sh->nobjs++;
	if (e->kind == MEM_TOMB || e->pinned) {
		e->queue = Q_NONE;
	} else if (ghost_take(sh, fingerprint(e->key, e->variant, e->kind))) {
		e->queue = Q_MAIN;
		fifo_push(&sh->main, e);
	} else {
		e->queue = Q_SMALL;
		fifo_push(&sh->small, e);
	}
	maybe_grow(sh);
	evict_to_budget(sh, gravep);
}

/* Find an entry of <kind> for <key> (and <variant> for objects). */
static struct mem_entry *
entry_find(struct mem_shard *sh, const uint8_t key[CACHE_HASH_LEN], int kind,
    uint64_t variant)
{
	struct mem_entry *e;

	for (e = sh->tab[bucket_of(sh, key)]; e != NULL; e = e->hnext) {
		if (e->kind != kind || memcmp(e->key, key, CACHE_HASH_LEN) != 0)
			continue;
		if (kind == MEM_OBJ && e->variant != variant)
			continue;
		return e;
	}
	return NULL;
}

/* What one walk of <key>'s chain found: its object of one variant, its
 * Vary entry, an object entry holding its rule and its tombstone (each
 * NULL if none).  Valid until the chain changes. */
struct mem_scan {
	struct mem_entry *obj, *vary, *rule, *tomb;
};

/* Walk <key>'s chain once for all three kinds (see struct mem_scan). */
static void
chain_scan(struct mem_shard *sh, const uint8_t key[CACHE_HASH_LEN],
    uint64_t variant, struct mem_scan *sc)
{
	struct mem_entry *e;

	sc->obj = sc->vary = sc->rule = sc->tomb = NULL;
	for (e = sh->tab[bucket_of(sh, key)]; e != NULL; e = e->hnext) {
		if (memcmp(e->key, key, CACHE_HASH_LEN) != 0)
			continue;
		if (e->kind == MEM_OBJ && e->is_rule && sc->rule == NULL)
			sc->rule = e;
		if (e->kind == MEM_OBJ && e->variant == variant &&
		    sc->obj == NULL)
			sc->obj = e;
		else if (e->kind == MEM_VARY && sc->vary == NULL)
			sc->vary = e;
		else if (e->kind == MEM_TOMB && sc->tomb == NULL)
			sc->tomb = e;
	}
}

static void
bump(struct mem_entry *e)
{
	if (e->freq < MEM_FREQ_MAX)
		e->freq++;
}

static size_t
pow2_floor(uint64_t v)
{
	size_t p = 1;

	while ((uint64_t)p * 2 <= v && p < ((size_t)1 << 30))
		p *= 2;
	return p;
}

/*
 * A memory tier of <budget_bytes> split over <nshards> (a power of two)
 * shards.  Never fails: its allocations are small and fixed, and abort if
 * memory runs out.
 */
struct cache_mem *
cache_mem_new(uint64_t budget_bytes, unsigned nshards)
{
	struct cache_mem *m;
	struct mem_shard *sh;
	size_t g;

	CDN_ASSERT(nshards > 0 && (nshards & (nshards - 1)) == 0);
	m = cdn_xcalloc(1, sizeof(*m));
	m->magic = CACHE_MEM_MAGIC;
	m->nshards = nshards;
	m->budget = budget_bytes;
	m->shards = cdn_xcalloc(nshards, sizeof(*m->shards));
	for (unsigned i = 0; i < nshards; i++) {
		sh = &m->shards[i];
		CDN_ASSERT(pthread_mutex_init(&sh->mtx, NULL) == 0);
		sh->tab = cdn_xcalloc(MEM_TAB_MIN, sizeof(*sh->tab));
		sh->tab_mask = MEM_TAB_MIN - 1;
		sh->budget = budget_bytes / nshards;
		sh->small_target = sh->budget * MEM_SMALL_PCT / 100;
		sh->admit_max = sh->budget / MEM_ADMIT_DIV;
		g = pow2_floor(sh->budget / MEM_GHOST_PER_BYTES);
		if (g < MEM_GHOST_MIN)
			g = MEM_GHOST_MIN;
		if (g > MEM_GHOST_MAX)
			g = MEM_GHOST_MAX;
		sh->ghost = cdn_xcalloc(g, sizeof(*sh->ghost));
		sh->ghost_mask = g - 1;
		sh->bytes =
		    MEM_TAB_MIN * sizeof(*sh->tab) + g * sizeof(*sh->ghost);
	}
	return m;
}

/* Every shard has the same budget, so the same admission limit. */
uint64_t
cache_mem_admit_max(struct cache_mem *m)
{
	MAGIC_CHECK(m, CACHE_MEM_MAGIC);
	return m->shards[0].admit_max;
}

/* Drop every entry and reference, free the tier, NULL *mp. */
void
cache_mem_free(struct cache_mem **mp)
{
	struct cache_mem *m;
	struct mem_shard *sh;
	struct mem_entry *grave, *e;

	CDN_ASSERT(mp != NULL);
	m = *mp;
	*mp = NULL;
	if (m == NULL)
		return;
	MAGIC_CHECK(m, CACHE_MEM_MAGIC);
	for (unsigned i = 0; i < m->nshards; i++) {
		sh = &m->shards[i];
		grave = NULL;
		for (size_t b = 0; b <= sh->tab_mask; b++) {
			while ((e = sh->tab[b]) != NULL)
				entry_kill(sh, e, &grave);
		}
		graveyard_free(grave);
		free(sh->tab);
		free(sh->ghost);
		CDN_ASSERT(pthread_mutex_destroy(&sh->mtx) == 0);
	}
	free(m->shards);
	MAGIC_WIPE(m);
	free(m);
}

int
cache_mem_get(struct cache_mem *m, const uint8_t key[CACHE_HASH_LEN],
    uint64_t variant, struct cache_obj **objp, int *is_removed, uint64_t *genp)
{
	struct mem_shard *sh;
	struct mem_scan sc;
	int rc;

	MAGIC_CHECK(m, CACHE_MEM_MAGIC);
	CDN_ASSERT(objp != NULL && is_removed != NULL && genp != NULL);
	sh = shard_of(m, key);
	pthread_mutex_lock(&sh->mtx);
	chain_scan(sh, key, variant, &sc);
	if (sc.obj != NULL) {
		bump(sc.obj);
		*objp = cache_obj_ref(sc.obj->obj);
		rc = CDN_OK;
	} else {
		*is_removed = sc.tomb != NULL;
		*genp = sh->gen;
		rc = CDN_NOTFOUND;
	}
	pthread_mutex_unlock(&sh->mtx);
	return rc;
}

/* A Vary entry for <key>; NULL if memory runs out (then none is cached). */
static struct mem_entry *
vary_entry_new(
    const uint8_t key[CACHE_HASH_LEN], const char *vary, size_t vary_len)
{
	struct mem_entry *e;
	size_t n = vary != NULL ? vary_len : 0;

	e = cache_slab_alloc(sizeof(*e) + n);
	if (e == NULL)
		return NULL;
	memset(e, 0, sizeof(*e));
	memcpy(e->key, key, CACHE_HASH_LEN);
	e->kind = MEM_VARY;
	e->has_vary = vary != NULL;
	e->vary_len = n;
	if (n > 0)
		memcpy(e->vary, vary, n);
	e->footprint = cache_slab_cost(sizeof(*e) + n);
	return e;
}

/* A rule with Vary replaces every "no Vary" an object entry of <key>
 * holds. */
static void
rule_marks_clear(struct mem_shard *sh, const uint8_t key[CACHE_HASH_LEN])
{
	struct mem_entry *e;

	for (e = sh->tab[bucket_of(sh, key)]; e != NULL; e = e->hnext)
		if (e->kind == MEM_OBJ &&
		    memcmp(e->key, key, CACHE_HASH_LEN) == 0)
			e->is_rule = 0;
}

/* Set the Vary rule of <key> (under the shard lock) in a Vary entry,
 * whose current one is <e> (NULL: none). */
static void
vary_set_locked(struct mem_shard *sh, const uint8_t key[CACHE_HASH_LEN],
    struct mem_entry *e, const char *vary, size_t vary_len,
    struct mem_entry **gravep)
{
	if (vary != NULL)
		rule_marks_clear(sh, key);
	if (e != NULL) {
		if (e->has_vary == (vary != NULL) &&
		    (vary == NULL ||
		        (e->vary_len == vary_len &&
		            memcmp(e->vary, vary, vary_len) == 0)))
			return; /* the usual case: the same rule again */
		entry_kill(sh, e, gravep);
	}
	if (cache_slab_cost(sizeof(*e) + vary_len) > sh->admit_max)
		return;
	e = vary_entry_new(key, vary, vary_len);
	if (e != NULL)
		entry_insert(sh, e, gravep);
}

/* Insert an entry holding a reference to <o>, charged <footprint>, in
 * <mem> (an unlinked entry of sizeof(struct mem_entry) bytes) or in a new
 * block if NULL.  If memory runs out there is none (not an error: this is
 * a cache). */
static void
obj_entry_insert(struct mem_shard *sh, struct cache_obj *o, size_t footprint,
    int pinned, int is_rule, struct mem_entry *mem, struct mem_entry **gravep)
{
	struct mem_entry *e = mem != NULL ? mem : cache_slab_alloc(sizeof(*e));

	if (e == NULL)
		return;
	memset(e, 0, sizeof(*e));
	memcpy(e->key, o->key, CACHE_HASH_LEN);
	e->variant = o->variant;
	e->kind = MEM_OBJ;
	e->pinned = (uint8_t)pinned;
	e->is_rule = (uint8_t)is_rule;
	e->footprint = footprint;
	e->obj = cache_obj_ref(o);
	entry_insert(sh, e, gravep);
}

int
cache_mem_put(struct cache_mem *m, struct cache_obj *o, int pin)
{
	struct mem_shard *sh;
	struct mem_entry *e, *mem = NULL, *grave = NULL;
	struct mem_scan sc;
	size_t fp;
	int held = 1, pinned = 0;

	MAGIC_CHECK(m, CACHE_MEM_MAGIC);
	MAGIC_CHECK(o, CACHE_OBJ_MAGIC);
	CDN_DASSERT(cache_obj_valid(o));
	fp = cache_obj_footprint(o) + cache_slab_cost(sizeof(*e));
	sh = shard_of(m, o->key);
	pthread_mutex_lock(&sh->mtx);
	sh->gen++;
	chain_scan(sh, o->key, o->variant, &sc);
	if (sc.obj != NULL)
		entry_kill(sh, sc.obj, &grave);
	if (fp > sh->admit_max) {
		held = pin;
		pinned = pin;
		fp = cache_slab_cost(sizeof(*e));
	}
	if (held && o->vary_len == 0) {
		/* The entry holds the rule; a Vary entry (usually the "no
		 * Vary" the miss's lookup left) goes, its block reused. */
		if (sc.vary != NULL && entry_size(sc.vary) == sizeof(*e)) {
			entry_unlink(sh, sc.vary);
			mem = sc.vary;
		} else if (sc.vary != NULL) {
			entry_kill(sh, sc.vary, &grave);
		}
		obj_entry_insert(sh, o, fp, pinned, 1, mem, &grave);
	} else {
		if (held)
			obj_entry_insert(sh, o, fp, pinned, 0, NULL, &grave);
		/* Found after the insertion, which may have evicted it. */
		vary_set_locked(sh, o->key, entry_find(sh, o->key, MEM_VARY, 0),
		    o->vary_len > 0 ? o->vary : NULL, o->vary_len, &grave);
	}
	pthread_mutex_unlock(&sh->mtx);
	graveyard_free(grave);
	return held;
}

void
cache_mem_forget(struct cache_mem *m, const struct cache_obj *o)
{
	struct mem_shard *sh;
	struct mem_entry *grave = NULL;
	struct mem_scan sc;

	MAGIC_CHECK(m, CACHE_MEM_MAGIC);
	MAGIC_CHECK(o, CACHE_OBJ_MAGIC);
	sh = shard_of(m, o->key);
	pthread_mutex_lock(&sh->mtx);
	sh->gen++;
	chain_scan(sh, o->key, o->variant, &sc);
	if (sc.obj != NULL)
		entry_kill(sh, sc.obj, &grave);
	vary_set_locked(sh, o->key, sc.vary, o->vary_len > 0 ? o->vary : NULL,
	    o->vary_len, &grave);
	pthread_mutex_unlock(&sh->mtx);
	graveyard_free(grave);
}

void
cache_mem_promote(struct cache_mem *m, struct cache_obj *o, uint64_t gen)
{
	struct mem_shard *sh;
	struct mem_entry *e, *grave = NULL;
	struct mem_scan sc;
	size_t fp;

	MAGIC_CHECK(m, CACHE_MEM_MAGIC);
	MAGIC_CHECK(o, CACHE_OBJ_MAGIC);
	fp = cache_obj_footprint(o) + cache_slab_cost(sizeof(*e));
	sh = shard_of(m, o->key);
	if (fp > sh->admit_max)
		return;
	pthread_mutex_lock(&sh->mtx);
	if (sh->gen == gen) {
		chain_scan(sh, o->key, o->variant, &sc);
		if (sc.obj == NULL && sc.tomb == NULL)
			obj_entry_insert(sh, o, fp, 0, 0, NULL, &grave);
	}
	pthread_mutex_unlock(&sh->mtx);
	graveyard_free(grave);
}

int
cache_mem_get_vary(struct cache_mem *m, const uint8_t key[CACHE_HASH_LEN],
    char *buf, size_t cap, size_t *len, uint64_t *genp)
{
	struct mem_shard *sh;
	struct mem_entry *e;
	struct mem_scan sc;
	int rc;

	MAGIC_CHECK(m, CACHE_MEM_MAGIC);
	CDN_ASSERT(len != NULL && genp != NULL);
	CDN_ASSERT(buf != NULL || cap == 0);
	sh = shard_of(m, key);
	pthread_mutex_lock(&sh->mtx);
	chain_scan(sh, key, 0, &sc);
	if (sc.tomb != NULL) {
		rc = CDN_NOTFOUND;
	} else if ((e = sc.vary) != NULL) {
		bump(e);
		if (!e->has_vary) {
			rc = CDN_NOTFOUND;
		} else {
			*len = e->vary_len;
			rc = e->vary_len <= cap ? CDN_OK : CDN_ELIMIT;
			if (rc == CDN_OK && e->vary_len > 0)
				memcpy(buf, e->vary, e->vary_len);
		}
	} else if (sc.rule != NULL) {
		rc = CDN_NOTFOUND; /* not bumped: the object's own get is */
	} else {
		*genp = sh->gen;
		rc = CDN_AGAIN;
	}
	pthread_mutex_unlock(&sh->mtx);
	return rc;
}

int
cache_mem_has_obj(struct cache_mem *m, const uint8_t key[CACHE_HASH_LEN])
{
	struct mem_shard *sh;
	struct mem_entry *e;
	int found = 0;

	MAGIC_CHECK(m, CACHE_MEM_MAGIC);
	sh = shard_of(m, key);
	pthread_mutex_lock(&sh->mtx);
	for (e = sh->tab[bucket_of(sh, key)]; e != NULL && !found; e = e->hnext)
		found = e->kind == MEM_OBJ &&
		    memcmp(e->key, key, CACHE_HASH_LEN) == 0;
	pthread_mutex_unlock(&sh->mtx);
	return found;
}

void
cache_mem_set_vary(struct cache_mem *m, const uint8_t key[CACHE_HASH_LEN],
    const char *vary, size_t vary_len, uint64_t gen)
{
	struct mem_shard *sh;
	struct mem_entry *grave = NULL;
	struct mem_scan sc;

	MAGIC_CHECK(m, CACHE_MEM_MAGIC);
	sh = shard_of(m, key);
	pthread_mutex_lock(&sh->mtx);
	if (sh->gen == gen) {
		chain_scan(sh, key, 0, &sc);
		if (sc.vary == NULL && sc.rule == NULL && sc.tomb == NULL)
			vary_set_locked(sh, key, NULL, vary, vary_len, &grave);
	}
	pthread_mutex_unlock(&sh->mtx);
	graveyard_free(grave);
}

void
cache_mem_remove(
    struct cache_mem *m, const uint8_t key[CACHE_HASH_LEN], uint64_t seq)
{
	struct mem_shard *sh;
	struct mem_entry *e, *next, *tomb = NULL, *grave = NULL;

	MAGIC_CHECK(m, CACHE_MEM_MAGIC);
	sh = shard_of(m, key);
	pthread_mutex_lock(&sh->mtx);
	sh->gen++;
	for (e = sh->tab[bucket_of(sh, key)]; e != NULL; e = next) {
		next = e->hnext;
		if (memcmp(e->key, key, CACHE_HASH_LEN) != 0)
			continue;
		if (e->kind == MEM_TOMB)
			tomb = e;
		else
			entry_kill(sh, e, &grave);
	}
	if (tomb != NULL) {
		if (tomb->tomb_seq < seq)
			tomb->tomb_seq = seq;
	} else {
		tomb = cdn_xcalloc(1, sizeof(*tomb));
		memcpy(tomb->key, key, CACHE_HASH_LEN);
		tomb->kind = MEM_TOMB;
		tomb->tomb_seq = seq;
		tomb->footprint = sizeof(*tomb) + MEM_MALLOC_OVERHEAD;
		entry_insert(sh, tomb, &grave);
	}
	pthread_mutex_unlock(&sh->mtx);
	graveyard_free(grave);
}

void
cache_mem_unpin(struct cache_mem *m, const struct cache_obj *o)
{
	struct mem_shard *sh;
	struct mem_entry *e, *grave = NULL;

	MAGIC_CHECK(m, CACHE_MEM_MAGIC);
	sh = shard_of(m, o->key);
	pthread_mutex_lock(&sh->mtx);
	e = entry_find(sh, o->key, MEM_OBJ, o->variant);
	if (e != NULL && e->pinned && e->obj == o)
		entry_kill(sh, e, &grave);
	pthread_mutex_unlock(&sh->mtx);
	graveyard_free(grave);
}

void
cache_mem_unmark(
    struct cache_mem *m, const uint8_t key[CACHE_HASH_LEN], uint64_t seq)
{
	struct mem_shard *sh;
	struct mem_entry *e, *grave = NULL;

	MAGIC_CHECK(m, CACHE_MEM_MAGIC);
	sh = shard_of(m, key);
	pthread_mutex_lock(&sh->mtx);
	e = entry_find(sh, key, MEM_TOMB, 0);
	if (e != NULL && e->tomb_seq <= seq)
		entry_kill(sh, e, &grave);
	pthread_mutex_unlock(&sh->mtx);
	graveyard_free(grave);
}

void
cache_mem_stats(struct cache_mem *m, struct cache_mem_stats *st)
{
	struct mem_shard *sh;

	MAGIC_CHECK(m, CACHE_MEM_MAGIC);
	memset(st, 0, sizeof(*st));
	st->budget = m->budget;
	for (unsigned i = 0; i < m->nshards; i++) {
		sh = &m->shards[i];
		pthread_mutex_lock(&sh->mtx);
		st->objects += sh->nobjs;
		st->bytes += sh->bytes;
		st->evictions += sh->evictions;
		pthread_mutex_unlock(&sh->mtx);
	}
}
