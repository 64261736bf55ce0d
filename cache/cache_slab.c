/*
 * Memory for what the memory tier keeps (cache_int.h "cache_slab.c"):
 * objects' heads, small bodies and the tier's entries, out of the malloc
 * heap.
 *
 * Why: a miss allocates its object, body and tier entries, which live as
 * long as the tier keeps them, between some dozen allocations that die
 * with the request (the fill, the fetch, libevent's and LMDB's buffers).
 * On one heap the long-lived ones pin the short-lived ones' holes: the
 * heap grows a page at a time (an mprotect and a page fault each), and
 * malloc sorts ever more scattered free chunks into its bins.  With the
 * tier's memory apart, malloc's heap holds only temporaries and stays
 * small and warm, and this memory grows in large regions.
 *
 * Layout: size classes of 16 bytes up to 256, then eight per doubling up
 * to CACHE_SLAB_MAX (at most 1/8 of a block is rounding).  A class carves
 * its blocks from runs of SLAB_RUN bytes; runs come from regions of
 * SLAB_REGION bytes, mapped as the tier grows and aligned to their size,
 * so a block's run is found from its address: the region's first run
 * holds the descriptors of the others.  (Not with MADV_HUGEPAGE: a page
 * fault per 2 MiB, but each clears 2 MiB at once, which cost more than it
 * saved in tests/bench/miss_store.sh.)
 *
 * Giving back: each run counts its live blocks and keeps its own free
 * list.  A class takes blocks from its current run until it is full, then
 * makes current a run with free blocks (holes) if these are more than
 * 1/SLAB_HOLES_DIV of the class, else an empty run it kept, else a new
 * one.  So new objects do not scatter into the holes evictions leave in
 * runs that are emptying, where each object that stays (a popular one)
 * would keep its whole run.  A run whose last block is freed is kept
 * empty, up to SLAB_KEEP_EMPTY runs or 1/SLAB_KEEP_DIV of the class's
 * runs, whichever is more (so a class whose objects come and go by less
 * than that does not give back and take again); beyond that the class
 * gives back its longest-kept empty runs: MADV_DONTNEED drops its pages at once
 * (unlike MADV_FREE, which leaves them counted in RSS until the kernel is short
 * of memory), and the run goes to a pool that any class takes from before a new
 * region is mapped.  So when the mix of sizes shifts, the classes the old sizes
 * filled give their memory back as their objects are evicted, and the process
 * holds about the tier's budget, not a high-water mark per class.  Address
 * space is never unmapped; it is reused. Larger sizes go to malloc.
 *
 * Threads: any thread allocates and frees.  Each class has its own lock
 * (cls->mtx covers its runs, lists and counts, and its runs'
 * descriptors);
 * slab_region_mtx covers the current region and the pool.  Under
 * AddressSanitizer free blocks are poisoned, so a use after free is still
 * reported.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cache/cache.h"
#include "cache/cache_int.h"
#include "common/cdn_asan.h"
#include "common/cdn_log.h"

#define SLAB_ALIGN           16                 /* as malloc's */
#define SLAB_SMALL_MAX       256                /* 16-byte steps up to here */
#define SLAB_STEPS           8                  /* classes per doubling above */
#define SLAB_RUN_SHIFT       16                 /* runs of 64 KiB */
#define SLAB_REGION          (32 * 1024 * 1024) /* mapped at a time */
#define SLAB_KEEP_EMPTY      2                  /* empty runs a class keeps, */
#define SLAB_KEEP_DIV        8                  /* or this part of its runs */
#define SLAB_HOLES_DIV       16                 /* holes used past this part */
#define SLAB_MALLOC_OVERHEAD 16                 /* malloc's header, estimated */
#define SLAB_RUN             (1 << SLAB_RUN_SHIFT)
#define SLAB_RUNS            (SLAB_REGION / SLAB_RUN)
#define SLAB_NSMALL          (SLAB_SMALL_MAX / SLAB_ALIGN)
/* 256 << 6 == CACHE_SLAB_MAX */
#define SLAB_NDOUBLINGS 6
#define SLAB_NCLASSES   (SLAB_NSMALL + SLAB_NDOUBLINGS * SLAB_STEPS)

_Static_assert((SLAB_SMALL_MAX << SLAB_NDOUBLINGS) == CACHE_SLAB_MAX,
    "classes end at CACHE_SLAB_MAX");
_Static_assert(SLAB_RUN >= CACHE_SLAB_MAX, "a run holds the largest block");
_Static_assert(SLAB_REGION % SLAB_RUN == 0, "regions hold whole runs");

struct slab_free {
	struct slab_free *next;
};

enum slab_run_state {
	SLAB_RUN_POOL,    /* no class's: in the pool or never handed out */
	SLAB_RUN_CUR,     /* its class's current run, on no list */
	SLAB_RUN_FULL,    /* its class's, every block live */
	SLAB_RUN_PARTIAL, /* on its class's partial list */
	SLAB_RUN_EMPTY,   /* on its class's empty list, no block live */
};

/* A run's descriptor, in the first run of its region. */
struct slab_run {
	char *base;                   /* its SLAB_RUN bytes */
	struct slab_free *free;       /* its freed blocks */
	struct slab_run *next, *prev; /* on a class's list, or the pool */
	uint32_t live;                /* blocks handed out */
	uint32_t carved;              /* blocks ever carved, from base */
	uint32_t cls;                 /* its class, while it has one */
	enum slab_run_state state;
};

struct slab_region {
	struct slab_run runs[SLAB_RUNS]; /* runs[0] is this header's */
};

_Static_assert(sizeof(struct slab_region) <= SLAB_RUN,
    "a region's descriptors fit its first run");

struct slab_list {
	struct slab_run *head, *tail;
	size_t n;
};

struct slab_class {
	pthread_mutex_t mtx;
	struct slab_run *cur;     /* the run blocks are taken from */
	struct slab_list partial; /* other runs with live and free blocks */
	struct slab_list empty;   /* runs kept with no live block */
	size_t holes;             /* free blocks of the partial runs */
	size_t nruns;             /* runs it holds: on its lists, cur, full */
	uint32_t per_run;         /* blocks a run holds */
	char pad[64];             /* keep neighbouring classes' locks apart */
};

static struct slab_class slab_classes[SLAB_NCLASSES];
static pthread_once_t slab_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t slab_region_mtx = PTHREAD_MUTEX_INITIALIZER;
/* slab_region_mtx: the next run never handed out, and the pool of runs
 * given back. */
static struct slab_run *slab_fresh, *slab_fresh_end;
static struct slab_run *slab_pool;
static _Atomic uint64_t slab_runs_bytes; /* runs the classes hold */
static _Atomic uint64_t slab_given_back; /* runs given back, in bytes */

static void
list_push(struct slab_list *l, struct slab_run *r)
{
	r->prev = NULL;
	r->next = l->head;
	if (l->head != NULL)
		l->head->prev = r;
	else
		l->tail = r;
	l->head = r;
	l->n++;
}

static void
list_remove(struct slab_list *l, struct slab_run *r)
{
	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		l->head = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	else
		l->tail = r->prev;
	l->n--;
}

/* The class of a block of <n> bytes (0 < n <= CACHE_SLAB_MAX). */
static size_t
class_of(size_t n)
{
	size_t base = SLAB_SMALL_MAX, step, d = 0;

	if (n <= SLAB_SMALL_MAX)
		return (n + SLAB_ALIGN - 1) / SLAB_ALIGN - 1;
	while (n > base * 2) {
		base *= 2;
		d++;
	}
	step = base / SLAB_STEPS;
	return SLAB_NSMALL + d * SLAB_STEPS + (n - base + step - 1) / step - 1;
}

/* The block size of class <c>. */
static size_t
class_size(size_t c)
{
	size_t d, base;

	if (c < SLAB_NSMALL)
		return (c + 1) * SLAB_ALIGN;
	c -= SLAB_NSMALL;
	d = c / SLAB_STEPS;
	base = (size_t)SLAB_SMALL_MAX << d;
	return base + (c % SLAB_STEPS + 1) * (base / SLAB_STEPS);
}

static void
slab_init(void)
{
	for (size_t i = 0; i < SLAB_NCLASSES; i++) {
		CDN_ASSERT(pthread_mutex_init(&slab_classes[i].mtx, NULL) == 0);
		slab_classes[i].per_run = (uint32_t)(SLAB_RUN / class_size(i));
	}
}

/* A new region's descriptors, aligned to SLAB_REGION; NULL if the system
 * has no memory.  Twice the size is mapped and the ends beyond the aligned
 * region are unmapped again. */
static struct slab_region *
region_new(void)
{
	char *p, *r;
	size_t head;

	p = mmap(NULL, 2 * (size_t)SLAB_REGION, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	head = (size_t)(-(uintptr_t)p & (SLAB_REGION - 1));
	r = p + head;
	if (head > 0)
		CDN_ASSERT(munmap(p, head) == 0);
	CDN_ASSERT(munmap(r + SLAB_REGION, SLAB_REGION - head) == 0);
	CDN_POISON(r + SLAB_RUN, SLAB_REGION - SLAB_RUN);
	return (struct slab_region *)(void *)r;
}

/* A run for a class: one given back before, else a new one; NULL if the
 * system has no memory. */
static struct slab_run *
run_new(void)
{
	struct slab_region *g;
	struct slab_run *r = NULL;

	pthread_mutex_lock(&slab_region_mtx);
	if ((r = slab_pool) != NULL) {
		slab_pool = r->next;
		goto out;
	}
	if (slab_fresh == slab_fresh_end) {
		if ((g = region_new()) == NULL)
			goto out;
		for (size_t i = 1; i < SLAB_RUNS; i++)
			g->runs[i].base = (char *)g + i * SLAB_RUN;
		slab_fresh = &g->runs[1];
		slab_fresh_end = &g->runs[SLAB_RUNS];
	}
	r = slab_fresh++;
out:
	if (r != NULL)
		atomic_fetch_add_explicit(
		    &slab_runs_bytes, SLAB_RUN, memory_order_relaxed);
	pthread_mutex_unlock(&slab_region_mtx);
	return r;
}

/* Give run <r> (no block live, on no list) back to the system, and to the
 * pool. */
static __attribute__((noinline)) void
run_give_back(struct slab_run *r)
{
	/* On failure the pages stay resident; the run is reused all the
	 * same. */
	if (madvise(r->base, SLAB_RUN, MADV_DONTNEED) == -1)
		CDN_LOG(CDN_LOG_WARN, "cache", "slab: madvise: %s",
		    strerror(errno));
	CDN_POISON(r->base, SLAB_RUN);
	r->free = NULL;
	r->carved = 0;
	r->state = SLAB_RUN_POOL;
	pthread_mutex_lock(&slab_region_mtx);
	r->next = slab_pool;
	slab_pool = r;
	atomic_fetch_sub_explicit(
	    &slab_runs_bytes, SLAB_RUN, memory_order_relaxed);
	atomic_fetch_add_explicit(
	    &slab_given_back, SLAB_RUN, memory_order_relaxed);
	pthread_mutex_unlock(&slab_region_mtx);
}

/* The descriptor of the run that holds block <p>. */
static struct slab_run *
run_of(const void *p)
{
	uintptr_t a = (uintptr_t)p;
	struct slab_region *g;

	g = (struct slab_region *)(a & ~(uintptr_t)(SLAB_REGION - 1));
	return &g->runs[(a & (SLAB_REGION - 1)) >> SLAB_RUN_SHIFT];
}

/*
 * The next run for class <cls> (locked, index <c>), whose current run is
 * full: one with holes once they are more than 1/SLAB_HOLES_DIV of the
 * class, else an empty one kept or a new one.  New blocks then go
 * together rather than into the holes of runs being emptied by evictions
 * (where one long-lived object would keep a whole run).  NULL if the
 * system has no memory.  Not inlined, as run_freed.
 */
static __attribute__((noinline)) struct slab_run *
run_next(struct slab_class *cls, size_t c)
{
	struct slab_run *r = cls->partial.head;

	if (r != NULL &&
	    cls->holes * SLAB_HOLES_DIV >= cls->nruns * (size_t)cls->per_run) {
		list_remove(&cls->partial, r);
		cls->holes -= cls->per_run - r->live;
	} else if ((r = cls->empty.head) != NULL) {
		list_remove(&cls->empty, r);
	} else if ((r = run_new()) != NULL) {
		cls->nruns++;
		r->cls = (uint32_t)c;
	} else if ((r = cls->partial.head) != NULL) {
		list_remove(&cls->partial, r);
		cls->holes -= cls->per_run - r->live;
	} else {
		return NULL;
	}
	r->state = SLAB_RUN_CUR;
	cls->cur = r;
	return r;
}

void *
cache_slab_alloc(size_t n)
{
	struct slab_class *cls;
	struct slab_run *r;
	struct slab_free *f;
	size_t c, size;
	char *p = NULL;

	if (n == 0 || n > CACHE_SLAB_MAX)
		return malloc(n);
	CDN_ASSERT(pthread_once(&slab_once, slab_init) == 0);
	c = class_of(n);
	size = class_size(c);
	cls = &slab_classes[c];
	pthread_mutex_lock(&cls->mtx);
	if ((r = cls->cur) == NULL && (r = run_next(cls, c)) == NULL)
		goto out;
	if ((f = r->free) != NULL) {
		CDN_UNPOISON(f, sizeof(*f));
		r->free = f->next;
		p = (char *)f;
	} else {
		/* The tail of a run (less than one block) is left unused. */
		p = r->base + r->carved * size;
		r->carved++;
	}
	if (++r->live == cls->per_run) {
		r->state = SLAB_RUN_FULL;
		cls->cur = NULL;
	}
out:
	pthread_mutex_unlock(&cls->mtx);
	if (p != NULL)
		CDN_UNPOISON(p, n);
	return p;
}

/*
 * Run <r> of class <cls> (locked) just had a block freed and is not a
 * partial run with blocks still live: a full run becomes partial, a
 * partial one with none live empty.  Returns the runs to give back (taken
 * off every list, chained by next), or NULL.  Not inlined: the common
 * free then saves fewer registers.
 */
static __attribute__((noinline)) struct slab_run *
run_freed(struct slab_class *cls, struct slab_run *r)
{
	struct slab_run *old, *give = NULL;

	if (r->state == SLAB_RUN_CUR)
		return NULL; /* even empty, it stays current */
	if (r->state == SLAB_RUN_FULL) {
		list_push(&cls->partial, r);
		r->state = SLAB_RUN_PARTIAL;
		cls->holes++;
		return NULL;
	}
	list_remove(&cls->partial, r);
	cls->holes -= cls->per_run - 1;
	list_push(&cls->empty, r);
	r->state = SLAB_RUN_EMPTY;
	/* Beyond what it may keep, the class gives back the longest kept:
	 * their pages are the coldest.  (As the class shrinks, what it may
	 * keep does too.) */
	while (cls->empty.n > SLAB_KEEP_EMPTY &&
	    cls->empty.n * SLAB_KEEP_DIV > cls->nruns) {
		old = cls->empty.tail;
		list_remove(&cls->empty, old);
		cls->nruns--;
		old->state = SLAB_RUN_POOL;
		old->next = give;
		give = old;
	}
	return give;
}

void
cache_slab_free(void *p, size_t n)
{
	struct slab_class *cls;
	struct slab_run *r, *old = NULL;
	struct slab_free *f = p;
	size_t c;

	if (p == NULL)
		return;
	if (n == 0 || n > CACHE_SLAB_MAX) {
		free(p);
		return;
	}
	c = class_of(n);
	cls = &slab_classes[c];
	r = run_of(p);
	CDN_POISON(p, class_size(c));
	CDN_UNPOISON(f, sizeof(*f));
	pthread_mutex_lock(&cls->mtx);
	/* More frees than blocks taken, or a size of another class. */
	CDN_ASSERT(r->live > 0 && r->cls == c);
	f->next = r->free;
	r->free = f;
	/* Under the lock: once it is released another thread may take the
	 * block and unpoison it. */
	CDN_POISON(f, sizeof(*f));
	if (--r->live > 0 && r->state == SLAB_RUN_PARTIAL)
		cls->holes++;
	else
		old = run_freed(cls, r);
	pthread_mutex_unlock(&cls->mtx);
	while (old != NULL) {
		r = old->next;
		run_give_back(old);
		old = r;
	}
}

size_t
cache_slab_cost(size_t n)
{
	if (n == 0 || n > CACHE_SLAB_MAX)
		return n + SLAB_MALLOC_OVERHEAD;
	return class_size(class_of(n));
}

uint64_t
cache_slab_bytes(void)
{
	return atomic_load_explicit(&slab_runs_bytes, memory_order_relaxed);
}

uint64_t
cache_slab_given_back(void)
{
	return atomic_load_explicit(&slab_given_back, memory_order_relaxed);
}
