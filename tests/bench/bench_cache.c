/*
 * Micro-benchmark of the store (cache/cache_store.c): gets answered by the
 * memory tier (1 KiB object, one thread and four), gets answered by LMDB
 * (1 KiB and 100 KiB objects, memory tier off, so each get is a read txn,
 * a record check and a copy of every chunk), and puts through the writer
 * thread (1 KiB and 100 KiB objects, counted once committed); and the
 * probe a miss makes before its fetch (cache_store_get_meta_probe of a
 * key never stored, memory tier off) as the store grows to 500,000
 * objects, in CPU time of the probing thread, so that other load on the
 * machine counts less.  Each part runs for a bounded time (1 s, or the
 * seconds given as the only argument; a second argument "get", "put" or
 * "probe" runs only those parts) in stores under a mkdtemp directory (in
 * /tmp, or in $BENCH_DIR) that is removed at the end.
 */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"
#include "common/cdn.h"
#include "common/cdn_log.h"
#include "tests/unit/tmptree.h"

#define BENCH_BATCH  256 /* gets between two clock reads */
#define BENCH_SLICES 10
#define PROBE_ABSENT (1u << 30) /* ids from here on are never stored */
#define MIB          (UINT64_C(1) << 20)

static char root[64];
static volatile size_t sink;

static void
key_of(unsigned id, uint8_t key[CACHE_HASH_LEN])
{
	memset(key, 0, CACHE_HASH_LEN);
	for (int i = 0; i < 4; i++)
		key[i] = key[i + 8] = (uint8_t)(id >> (8 * i));
	key[15] = (uint8_t)(id * 151u);
	key[7] = (uint8_t)(id * 31u);
}

static struct cache_obj *
make_obj(unsigned id, size_t len)
{
	static unsigned char body[128 * 1024];
	static const char fields[] =
	    "Content-Type: text/html; charset=utf-8\r\n"
	    "Cache-Control: public, max-age=3600\r\n"
	    "ETag: \"5f3a9c-1a2b\"\r\n"
	    "Last-Modified: Tue, 24 Nov 2026 10:00:00 GMT\r\n";
	uint8_t key[CACHE_HASH_LEN];
	struct cache_decision d;
	struct cache_obj *o;
	char url[64];
	int n;

	if (len > sizeof(body))
		abort();
	memset(body, 'a' + id % 26, len);
	key_of(id, key);
	memset(&d, 0, sizeof(d));
	d.storable = 1;
	d.reason = "bench";
	d.freshness_s = 3600;
	n = snprintf(url, sizeof(url), "bench.example/obj/%u", id);
	o = cache_obj_new(key, 0, 200, &d, 1700000000, url, (size_t)n, fields,
	    sizeof(fields) - 1, "", 0);
	if (o == NULL || cache_obj_append(o, body, len) != CDN_OK)
		abort();
	return o;
}

static struct cache_store *
open_store(const char *name, uint64_t disk, uint64_t mem)
{
	struct cache_store_conf c;
	char dir[128];

	snprintf(dir, sizeof(dir), "%s/%s", root, name);
	memset(&c, 0, sizeof(c));
	c.dir = dir;
	c.disk_bytes = disk;
	c.memory_bytes = mem;
	c.max_object_bytes = 64 * MIB;
	c.high_water_pct = 90;
	c.low_water_pct = 80;
	return cache_store_open(&c);
}

struct get_arg {
	struct cache_store *s;
	unsigned nkeys;
	unsigned next;
	double seconds;
	double best_ns, mean_ns;
	int want_memory;
};

/* Get (and drop) objects 0..nkeys-1 in turn for <seconds>. */
static void *
get_loop(void *argp)
{
	struct get_arg *a = argp;
	uint8_t keys[64][CACHE_HASH_LEN];
	struct cache_obj *o;
	uint64_t t0, ts, t1, slice_ns, n, total = 0;
	double ns;
	int fm;

	for (unsigned k = 0; k < a->nkeys && k < 64; k++)
		key_of(k, keys[k]);
	slice_ns = (uint64_t)(a->seconds * 1e9 / BENCH_SLICES);
	a->best_ns = 1e18;
	t0 = t1 = cdn_now_ns();
	for (int s = 0; s < BENCH_SLICES; s++) {
		ts = cdn_now_ns();
		n = 0;
		do {
			for (int i = 0; i < BENCH_BATCH; i++) {
				o = NULL;
				if (cache_store_get(a->s,
				        keys[a->next++ % a->nkeys], 0, &o,
				        &fm) != CDN_OK ||
				    fm != a->want_memory)
					abort();
				sink += o->body_len;
				cache_obj_unref(&o);
			}
			n += BENCH_BATCH;
			t1 = cdn_now_ns();
		} while (t1 - ts < slice_ns);
		ns = (double)(t1 - ts) / (double)n;
		if (ns < a->best_ns)
			a->best_ns = ns;
		total += n;
	}
	a->mean_ns = (double)(t1 - t0) / (double)total;
	return NULL;
}

static void
bench_get(const char *name, uint64_t mem, size_t len, unsigned nthreads,
    double seconds)
{
	struct get_arg args[4];
	pthread_t th[4];
	struct cache_store *s;
	struct cache_obj *o;
	double mean = 0, best = 0;

	s = open_store(name, 256 * MIB, mem);
	if (s == NULL)
		abort();
	for (unsigned k = 0; k < 16; k++) {
		o = make_obj(k, len);
		cache_store_put(s, o);
		cache_obj_unref(&o);
	}
	cache_store_sync(s);
	for (unsigned t = 0; t < nthreads; t++) {
		memset(&args[t], 0, sizeof(args[t]));
		args[t].s = s;
		args[t].nkeys = 16;
		args[t].next = t * 5;
		args[t].seconds = seconds;
		args[t].want_memory = mem > 0;
		pthread_create(&th[t], NULL, get_loop, &args[t]);
	}
	for (unsigned t = 0; t < nthreads; t++) {
		pthread_join(th[t], NULL);
		mean += args[t].mean_ns / nthreads;
		best += args[t].best_ns / nthreads;
	}
	printf("get %-7s %6zu B, %u thread%s: %8.0f ns/op (best slice %8.0f), "
	       "%6.2f M op/s in all\n",
	    mem > 0 ? "memory" : "LMDB", len, nthreads,
	    nthreads > 1 ? "s" : " ", mean, best, nthreads * 1e3 / mean);
	cache_store_close(&s);
}

static void
bench_put(const char *name, size_t len, double seconds)
{
	struct cache_store_stats st;
	struct cache_store *s;
	struct cache_obj *o;
	uint64_t t0, t1, offered = 0, backlog;
	unsigned id = 0;
	double sec;

	s = open_store(name, 2048 * MIB, 0);
	if (s == NULL)
		abort();
	/* Keep the queue (10k messages, 64 MiB) from overflowing. */
	backlog = 32 * MIB / (len + 512);
	if (backlog > 8000)
		backlog = 8000;
	t0 = cdn_now_ns();
	do {
		for (int i = 0; i < 64; i++) {
			o = make_obj(id++, len);
			cache_store_put(s, o);
			cache_obj_unref(&o);
			offered++;
		}
		t1 = cdn_now_ns();
		/* Offer no more than the writer can take: wait while
		 * the queue is near full rather than count drops. */
		cache_store_stats(s, &st);
		while (offered - st.puts - st.put_drops > backlog) {
			usleep(200);
			cache_store_stats(s, &st);
		}
	} while (t1 - t0 < (uint64_t)(seconds * 1e9));
	cache_store_sync(s);
	t1 = cdn_now_ns();
	cache_store_stats(s, &st);
	sec = (double)(t1 - t0) / 1e9;
	printf("put %6zu B through the writer: %8.0f puts/s committed "
	       "(%.1f MB/s), %llu dropped, %llu evicted, %llu in LMDB\n",
	    len, (double)st.puts / sec,
	    (double)st.puts * (double)len / sec / 1e6,
	    (unsigned long long)st.put_drops, (unsigned long long)st.evictions,
	    (unsigned long long)st.objects);
	cache_store_close(&s);

	/* Start-up reads no object: time a reopen of what was written. */
	t0 = cdn_now_ns();
	s = open_store(name, 2048 * MIB, 0);
	t1 = cdn_now_ns();
	if (s == NULL)
		abort();
	cache_store_stats(s, &st);
	printf("    reopen with %llu objects: %.2f ms\n",
	    (unsigned long long)st.objects, (double)(t1 - t0) / 1e6);
	cache_store_close(&s);
}

/* CPU time of the calling thread, in ns. */
static uint64_t
thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Put 1 KiB objects <from>..<to>-1 and wait until they are committed. */
static void
fill(struct cache_store *s, unsigned from, unsigned to)
{
	struct cache_store_stats st;
	struct cache_obj *o;
	uint64_t offered = 0, base;

	cache_store_stats(s, &st);
	base = st.puts + st.put_drops;
	for (unsigned id = from; id < to; id++) {
		o = make_obj(id, 1024);
		cache_store_put(s, o);
		cache_obj_unref(&o);
		offered++;
		if (offered % 64 != 0)
			continue;
		cache_store_stats(s, &st);
		while (offered - (st.puts + st.put_drops - base) > 8000) {
			usleep(200);
			cache_store_stats(s, &st);
		}
	}
	cache_store_sync(s);
}

/* Probes of keys never stored, each a new one, for <seconds> of this
 * thread's CPU: ns per probe. */
static double
probe_absent(struct cache_store *s, unsigned *next, double seconds)
{
	uint8_t key[CACHE_HASH_LEN];
	struct cache_obj *o;
	uint64_t t0, t1, n = 0;
	int fm, none;

	t0 = t1 = thread_cpu_ns();
	while (t1 - t0 < (uint64_t)(seconds * 1e9)) {
		for (int i = 0; i < BENCH_BATCH; i++) {
			key_of(PROBE_ABSENT + (*next)++, key);
			o = NULL;
			none = 0;
			if (cache_store_get_meta_probe(
			        s, key, 0, &o, &fm, &none) != CDN_NOTFOUND ||
			    !none)
				abort();
		}
		n += BENCH_BATCH;
		t1 = thread_cpu_ns();
	}
	return (double)(t1 - t0) / (double)n;
}

static void
bench_probe(const char *name, double seconds)
{
	static const unsigned sizes[] = {10000, 100000, 500000};
	struct cache_store_stats st;
	struct cache_store *s;
	unsigned have = 0, next = 0;

	s = open_store(name, 4096 * MIB, 0);
	if (s == NULL)
		abort();
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		fill(s, have, sizes[i]);
		have = sizes[i];
		cache_store_stats(s, &st);
		printf("probe of a new key, %7llu objects in LMDB: %6.0f ns "
		       "CPU\n",
		    (unsigned long long)st.objects,
		    probe_absent(s, &next, seconds));
	}
	cache_store_close(&s);
}

int
main(int argc, char **argv)
{
	const char *part;
	double seconds;

	seconds = argc > 1 ? atof(argv[1]) : 1.0;
	part = argc > 2 ? argv[2] : NULL;
	if (seconds <= 0 || seconds > 60 || argc > 3) {
		fprintf(stderr,
		    "usage: %s [seconds (0 < s <= 60) [get|put|probe]]\n",
		    argv[0]);
		return 2;
	}
	cdn_log_level_now = CDN_LOG_ERR;
	/* BENCH_DIR: the stores under it (/dev/shm: tmpfs, as the shared
	 * harness keeps its caches) rather than under /tmp. */
	if (getenv("BENCH_DIR") != NULL) {
		if ((size_t)snprintf(root, sizeof(root),
		        "%s/bench_cache.XXXXXX",
		        getenv("BENCH_DIR")) >= sizeof(root) ||
		    mkdtemp(root) == NULL) {
			fprintf(stderr, "BENCH_DIR: cannot make a directory\n");
			return 1;
		}
	} else if (tmptree_make(root, sizeof(root), "bench_cache") != 0)
		return 1;
	if (part == NULL || strcmp(part, "get") == 0) {
		bench_get("m1", 64 * MIB, 1024, 1, seconds);
		bench_get("m4", 64 * MIB, 1024, 4, seconds);
		bench_get("d1", 0, 1024, 1, seconds);
		bench_get("d100", 0, 100 * 1024, 1, seconds);
		bench_get("d4", 0, 1024, 4, seconds);
	}
	if (part == NULL || strcmp(part, "put") == 0) {
		bench_put("p1", 1024, seconds);
		bench_put("p100", 100 * 1024, seconds);
	}
	if (part == NULL || strcmp(part, "probe") == 0)
		bench_probe("probe", seconds);
	tmptree_remove(root);
	return 0;
}
