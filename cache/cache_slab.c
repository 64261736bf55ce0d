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
 * to CACHE_SLAB_MAX (at most 1/8 of a block is rounding).  A class takes
 * blocks from its free list, else carves them from its current run of
 * SLAB_RUN bytes; runs come from regions of SLAB_REGION bytes mapped as
 * the tier grows.  (Not with MADV_HUGEPAGE: a page fault per 2 MiB, but
 * each clears 2 MiB at once, which cost more than it saved in
 * tests/bench/miss_store.sh.)  Memory is never given back to the system:
 * a freed block is reused by its class, so what the process holds is the
 * tier's high-water mark in each class (plus at most one run per class).
 * Larger sizes go to malloc.
 *
 * Threads: any thread allocates and frees.  Each class has its own lock
 * (cls->mtx covers its free list and run); slab_region_mtx covers the
 * current region.  Under AddressSanitizer free blocks are poisoned, so a
 * use after free is still reported.
 */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "cache/cache.h"
#include "cache/cache_int.h"

#if defined(__SANITIZE_ADDRESS__)
#define SLAB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLAB_ASAN 1
#endif
#endif

#ifdef SLAB_ASAN
#include <sanitizer/asan_interface.h>
#define SLAB_POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define SLAB_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define SLAB_POISON(p, n)   ((void)(p), (void)(n))
#define SLAB_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define SLAB_ALIGN           16                 /* as malloc's */
#define SLAB_SMALL_MAX       256                /* 16-byte steps up to here */
#define SLAB_STEPS           8                  /* classes per doubling above */
#define SLAB_RUN             (64 * 1024)        /* a class carves this much */
#define SLAB_REGION          (32 * 1024 * 1024) /* mapped at a time */
#define SLAB_MALLOC_OVERHEAD 16                 /* malloc's header, estimated */
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

struct slab_class {
	pthread_mutex_t mtx;
	struct slab_free *free; /* freed blocks, reused first */
	char *run, *run_end;    /* the rest of the current run */
	char pad[64];           /* keep neighbouring classes' locks apart */
};

static struct slab_class slab_classes[SLAB_NCLASSES];
static pthread_once_t slab_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t slab_region_mtx = PTHREAD_MUTEX_INITIALIZER;
static char *slab_region, *slab_region_end; /* slab_region_mtx */
static _Atomic uint64_t slab_runs_bytes;    /* runs handed out, for stats */

static void
slab_init(void)
{
	for (size_t i = 0; i < SLAB_NCLASSES; i++)
		CDN_ASSERT(pthread_mutex_init(&slab_classes[i].mtx, NULL) == 0);
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

/* A new run of SLAB_RUN bytes; NULL if the system has no memory. */
static char *
run_new(void)
{
	char *r = NULL;
	void *p;

	pthread_mutex_lock(&slab_region_mtx);
	if (slab_region == slab_region_end) {
		p = mmap(NULL, SLAB_REGION, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			goto out;
		slab_region = p;
		slab_region_end = slab_region + SLAB_REGION;
		SLAB_POISON(p, SLAB_REGION);
	}
	r = slab_region;
	slab_region += SLAB_RUN;
	atomic_fetch_add_explicit(
	    &slab_runs_bytes, SLAB_RUN, memory_order_relaxed);
out:
	pthread_mutex_unlock(&slab_region_mtx);
	return r;
}

void *
cache_slab_alloc(size_t n)
{
	struct slab_class *cls;
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
	if ((f = cls->free) != NULL) {
		SLAB_UNPOISON(f, sizeof(*f));
		cls->free = f->next;
		p = (char *)f;
	} else {
		if ((size_t)(cls->run_end - cls->run) < size) {
			/* The tail of the old run (less than one block) is
			 * left unused. */
			cls->run = run_new();
			cls->run_end =
			    cls->run != NULL ? cls->run + SLAB_RUN : NULL;
		}
		if (cls->run != NULL) {
			p = cls->run;
			cls->run += size;
		}
	}
	pthread_mutex_unlock(&cls->mtx);
	if (p != NULL)
		SLAB_UNPOISON(p, n);
	return p;
}

void
cache_slab_free(void *p, size_t n)
{
	struct slab_class *cls;
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
	SLAB_POISON(p, class_size(c));
	SLAB_UNPOISON(f, sizeof(*f));
	pthread_mutex_lock(&cls->mtx);
	f->next = cls->free;
	cls->free = f;
	/* Under the lock: once it is released another thread may take the
	 * block and unpoison it. */
	SLAB_POISON(f, sizeof(*f));
	pthread_mutex_unlock(&cls->mtx);
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
