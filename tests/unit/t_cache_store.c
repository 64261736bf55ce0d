/*
 * Unit tests of the store (cache/cache_store.c, cache_mem.c, cache_obj.c):
 * round trips of bodies of 0 B to 5 MiB, variants and the vary db,
 * removal, persistence across reopen, detection of corrupt records and
 * chunks, eviction under a small disk budget (and LRU order after a
 * touch), a map too small for its watermarks, object size limits, the
 * memory tier's byte bound and S3-FIFO behaviour, concurrent readers while
 * the writer writes, and kill -9 in the middle of writing.
 */
#include "config.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "cache/cache.h"
#include "cache/cache_int.h"
#include "cache/cache_store_int.h"
/* The memory tier's statics: which S3-FIFO queue holds an entry. */
#include "cache/cache_mem.c"
#include "common/cdn_log.h"
#include "tests/unit/lmdbstat.h"
#include "tests/unit/tap.h"
#include "tests/unit/tmptree.h"

#define KIB 1024u
#define MIB (1024u * 1024u)

static char root[64];

static void
dir_for(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", root, name);
}

static void
key_of(unsigned id, uint8_t out[CACHE_HASH_LEN])
{
	XXH128_canonical_t c;
	char s[32];
	int n;

	n = snprintf(s, sizeof(s), "key-%u", id);
	XXH128_canonicalFromHash(&c, XXH3_128bits(s, (size_t)n));
	memcpy(out, c.digest, CACHE_HASH_LEN);
}

/* Body byte <i> of object (id, version): position-dependent. */
static unsigned char
body_byte(unsigned id, unsigned ver, uint64_t i)
{
	uint64_t x = i * UINT64_C(0x9e3779b97f4a7c15) + id * 131u + ver * 7u;

	return (unsigned char)(x >> 56 ^ x >> 23 ^ i);
}

static struct cache_obj *
make_obj(unsigned id, unsigned ver, uint64_t variant, size_t body_len,
    const char *vary)
{
	uint8_t key[CACHE_HASH_LEN];
	struct cache_decision d;
	struct cache_obj *o;
	char url[64], fields[128];
	unsigned char buf[4096];
	size_t off, n;
	int ul, fl;

	key_of(id, key);
	memset(&d, 0, sizeof(d));
	d.storable = 1;
	d.reason = "test";
	d.freshness_s = 3600 + id;
	d.initial_age_s = ver;
	d.swr_s = 30;
	d.sie_s = -1;
	d.must_revalidate = id & 1;
	d.no_cache = (id >> 1) & 1;
	d.heuristic = 1;
	ul = snprintf(url, sizeof(url), "example.com/obj/%u", id);
	fl = snprintf(fields, sizeof(fields),
	    "Content-Type: application/x-test\r\nX-Id: %u\r\n"
	    "X-Version: %u\r\n",
	    id, ver);
	o = cache_obj_new(key, variant, 200 + (int)(id % 3), &d,
	    1700000000 + id, url, (size_t)ul, fields, (size_t)fl, vary,
	    vary != NULL ? strlen(vary) : 0);
	if (o == NULL)
		abort();
	o->purge_gen = 1000 + id;
	for (off = 0; off < body_len; off += n) {
		n = body_len - off < sizeof(buf) ? body_len - off : sizeof(buf);
		for (size_t i = 0; i < n; i++)
			buf[i] = body_byte(id, ver, off + i);
		if (cache_obj_append(o, buf, n) != CDN_OK)
			abort();
	}
	return o;
}

/* Does <o> hold exactly what make_obj(id, ver, variant, len, vary) made? */
static int
obj_is(const struct cache_obj *o, unsigned id, unsigned ver, uint64_t variant,
    size_t body_len, const char *vary)
{
	struct cache_obj *want;
	uint64_t off;
	int same;

	want = make_obj(id, ver, variant, body_len, vary);
	same = o->body_len == want->body_len && o->nchunks == want->nchunks &&
	    o->variant == want->variant &&
	    memcmp(o->key, want->key, CACHE_HASH_LEN) == 0 &&
	    o->status == want->status &&
	    o->response_time == want->response_time &&
	    o->purge_gen == want->purge_gen && o->url_len == want->url_len &&
	    memcmp(o->url, want->url, o->url_len) == 0 &&
	    o->fields_len == want->fields_len &&
	    memcmp(o->fields, want->fields, o->fields_len) == 0 &&
	    o->vary_len == want->vary_len &&
	    memcmp(o->vary, want->vary, o->vary_len) == 0 &&
	    o->d.storable == want->d.storable &&
	    o->d.freshness_s == want->d.freshness_s &&
	    o->d.initial_age_s == want->d.initial_age_s &&
	    o->d.swr_s == want->d.swr_s && o->d.sie_s == want->d.sie_s &&
	    o->d.must_revalidate == want->d.must_revalidate &&
	    o->d.no_cache == want->d.no_cache &&
	    o->d.heuristic == want->d.heuristic;
	for (uint32_t c = 0; same && c < o->nchunks; c++) {
		off = (uint64_t)c * CACHE_CHUNK_SIZE;
		same = memcmp(o->chunks[c], want->chunks[c],
		           o->body_len - off < CACHE_CHUNK_SIZE
		               ? (size_t)(o->body_len - off)
		               : CACHE_CHUNK_SIZE) == 0;
	}
	cache_obj_unref(&want);
	return same;
}

static struct cache_store *
open_store(const char *name, uint64_t disk, uint64_t mem, uint64_t max_obj,
    unsigned high, unsigned low)
{
	struct cache_store_conf c;
	char dir[128];

	dir_for(dir, sizeof(dir), name);
	memset(&c, 0, sizeof(c));
	c.dir = dir;
	c.disk_bytes = disk;
	c.memory_bytes = mem;
	c.max_object_bytes = max_obj;
	c.high_water_pct = high;
	c.low_water_pct = low;
	return cache_store_open(&c);
}

static void
put_new(struct cache_store *s, unsigned id, unsigned ver, uint64_t variant,
    size_t len, const char *vary)
{
	struct cache_obj *o;

	o = make_obj(id, ver, variant, len, vary);
	cache_store_put(s, o);
	cache_obj_unref(&o);
}

/* get and compare; returns the rc (CDN_OK only if byte-exact too). */
static int
get_is(struct cache_store *s, unsigned id, unsigned ver, uint64_t variant,
    size_t len, const char *vary, int *from_mem)
{
	uint8_t key[CACHE_HASH_LEN];
	struct cache_obj *o = NULL;
	int rc, fm = -1;

	key_of(id, key);
	rc = cache_store_get(s, key, variant, &o, &fm);
	if (from_mem != NULL)
		*from_mem = fm;
	if (rc != CDN_OK)
		return rc;
	if (!obj_is(o, id, ver, variant, len, vary))
		rc = CDN_EINVAL;
	cache_obj_unref(&o);
	return rc;
}

/* ---------------------------------------------------------------- */

static void
test_obj(void)
{
	struct cache_obj *o, *r;
	uint8_t key[CACHE_HASH_LEN];
	struct cache_decision d;
	size_t fp0;

	key_of(1, key);
	memset(&d, 0, sizeof(d));
	o = cache_obj_new(key, 5, 200, &d, 1, "u", 1, "A: b\r\n", 6, "", 0);
	ok(o != NULL && o->refcnt == 1 && o->body_len == 0 && o->nchunks == 0,
	    "obj: new has one reference and no body");
	ok(o->url[1] == '\0' && o->fields_len == 6 && o->vary_len == 0,
	    "obj: strings copied and terminated");
	fp0 = cache_obj_footprint(o);
	is_int(cache_obj_append(o, "x", 1), CDN_OK, "obj: append 1 byte");
	ok(cache_obj_footprint(o) < fp0 + 2 * CACHE_OBJ_MIN_CHUNK,
	    "obj: a tiny body costs a small chunk");
	for (int i = 0; i < 300; i++) {
		char buf[1000];

		memset(buf, 'a' + i % 26, sizeof(buf));
		if (cache_obj_append(o, buf, sizeof(buf)) != CDN_OK)
			break;
	}
	ok(o->body_len == 300001 && o->nchunks == 2 &&
	        o->chunks[1][300001 - CACHE_CHUNK_SIZE - 1] == 'a' + 299 % 26,
	    "obj: appends fill chunks of CACHE_CHUNK_SIZE in order");
	ok(cache_obj_footprint(o) >= 300001 &&
	        cache_obj_footprint(o) < 300001 + 300001 / 2 + 4096,
	    "obj: footprint counts allocated chunks (%zu)",
	    cache_obj_footprint(o));
	r = cache_obj_ref(o);
	ok(r == o && o->refcnt == 2, "obj: ref");
	cache_obj_unref(&r);
	ok(r == NULL && o->refcnt == 1, "obj: unref NULLs the holder");
	cache_obj_unref(&o);
	ok(o == NULL, "obj: last unref frees");
}

static const size_t rt_sizes[] = {
    0, 1, 1000, CACHE_CHUNK_SIZE, CACHE_CHUNK_SIZE + 1, 5 * MIB};

static void
test_roundtrip(void)
{
	struct cache_store_stats st;
	struct cache_store *s;
	int fm, all_ok, all_disk, all_mem;
	size_t n = CDN_ARRAY_LEN(rt_sizes);

	s = open_store("rt", 64 * MIB, 64 * MIB, 16 * MIB, 90, 70);
	ok(s != NULL, "roundtrip: open");
	if (s == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		put_new(s, (unsigned)i, 1, 0, rt_sizes[i], NULL);
	/* Before the sync the small ones are served from memory. */
	is_int(get_is(s, 1, 1, 0, 1, NULL, &fm), CDN_OK,
	    "roundtrip: 1 B object right after put");
	is_int(fm, 1, "roundtrip: ... from memory");
	cache_store_sync(s);
	all_ok = 1;
	for (size_t i = 0; i < n; i++) {
		int rc = get_is(s, (unsigned)i, 1, 0, rt_sizes[i], NULL, &fm);

		if (!ok(rc == CDN_OK, "roundtrip: %zu B byte-exact (%s, %s)",
		        rt_sizes[i], cdn_strerror(rc), fm ? "memory" : "disk"))
			all_ok = 0;
	}
	cache_store_stats(s, &st);
	is_int(st.objects, n, "roundtrip: stats objects");
	is_int(st.puts, n, "roundtrip: stats puts");
	is_int(st.put_drops, 0, "roundtrip: no drops");
	ok(st.bytes > 5 * MIB && st.bytes < 8 * MIB,
	    "roundtrip: accounted bytes %llu", (unsigned long long)st.bytes);
	cache_store_close(&s);
	ok(s == NULL, "roundtrip: close NULLs the holder");

	s = open_store("rt", 64 * MIB, 64 * MIB, 16 * MIB, 90, 70);
	ok(s != NULL, "roundtrip: reopen");
	if (s == NULL)
		return;
	cache_store_stats(s, &st);
	is_int(st.objects, n, "roundtrip: objects known after reopen");
	is_int(st.mem_objects, 0, "roundtrip: memory tier empty after reopen");
	all_disk = 1;
	all_mem = 1;
	for (size_t i = 0; i < n; i++) {
		if (get_is(s, (unsigned)i, 1, 0, rt_sizes[i], NULL, &fm) !=
		    CDN_OK)
			all_ok = 0;
		if (fm != 0)
			all_disk = 0;
	}
	ok(all_ok, "roundtrip: every object byte-exact after reopen");
	ok(all_disk, "roundtrip: ... read from disk");
	for (size_t i = 0; i < 4; i++) {
		if (get_is(s, (unsigned)i, 1, 0, rt_sizes[i], NULL, &fm) !=
		        CDN_OK ||
		    fm != 1)
			all_mem = 0;
	}
	ok(all_mem, "roundtrip: small objects promoted to memory");
	is_int(get_is(s, 99, 1, 0, 0, NULL, NULL), CDN_NOTFOUND,
	    "roundtrip: unknown key is a miss");
	is_int(get_is(s, 1, 1, 7, 1, NULL, NULL), CDN_NOTFOUND,
	    "roundtrip: unknown variant is a miss");
	/* Replace an object: the new version wins on both tiers. */
	put_new(s, 2, 2, 0, 3000, NULL);
	is_int(get_is(s, 2, 2, 0, 3000, NULL, NULL), CDN_OK,
	    "roundtrip: replaced object, new version from memory");
	cache_store_close(&s);
	s = open_store("rt", 64 * MIB, 0, 16 * MIB, 90, 70);
	is_int(get_is(s, 2, 2, 0, 3000, NULL, NULL), CDN_OK,
	    "roundtrip: replaced object, new version from disk");
	cache_store_stats(s, &st);
	is_int(st.objects, n, "roundtrip: replacing does not add an object");
	cache_store_close(&s);
}

static int
vary_is(struct cache_store *s, unsigned id, const char *want)
{
	uint8_t key[CACHE_HASH_LEN];
	char buf[256];
	size_t len = 0;
	int rc;

	key_of(id, key);
	rc = cache_store_get_vary(s, key, buf, sizeof(buf), &len);
	if (want == NULL)
		return rc == CDN_NOTFOUND;
	return rc == CDN_OK && len == strlen(want) &&
	    memcmp(buf, want, len) == 0;
}

static void
test_vary(void)
{
	const char *ae = "Accept-Encoding";
	uint8_t key[CACHE_HASH_LEN];
	struct cache_store *s;
	char small[4];
	size_t len = 0;

	s = open_store("vary", 32 * MIB, 8 * MIB, 4 * MIB, 90, 70);
	put_new(s, 10, 1, 0, 500, NULL);
	ok(vary_is(s, 10, NULL), "vary: no rule for a response without Vary");
	cache_store_sync(s);
	ok(vary_is(s, 10, NULL), "vary: still none after sync");
	put_new(s, 10, 2, 11, 600, ae);
	put_new(s, 10, 2, 22, 700, ae);
	ok(vary_is(s, 10, ae), "vary: rule known at once (memory)");
	key_of(10, key);
	is_int(cache_store_get_vary(s, key, small, sizeof(small), &len),
	    CDN_ELIMIT, "vary: too small a buffer");
	is_int(len, strlen(ae), "vary: ... reports the length");
	cache_store_close(&s);

	s = open_store("vary", 32 * MIB, 8 * MIB, 4 * MIB, 90, 70);
	ok(vary_is(s, 10, ae), "vary: rule read from the vary db");
	ok(vary_is(s, 10, ae), "vary: ... then from memory");
	is_int(get_is(s, 10, 2, 11, 600, ae, NULL), CDN_OK, "vary: variant 11");
	is_int(get_is(s, 10, 2, 22, 700, ae, NULL), CDN_OK, "vary: variant 22");
	is_int(get_is(s, 10, 1, 0, 500, NULL, NULL), CDN_OK,
	    "vary: the earlier variant 0 is still there");
	/* A response without Vary replaces the rule. */
	put_new(s, 10, 3, 0, 800, NULL);
	ok(vary_is(s, 10, NULL),
	    "vary: rule dropped at once by a put "
	    "without Vary");
	cache_store_close(&s);
	s = open_store("vary", 32 * MIB, 0, 4 * MIB, 90, 70);
	ok(vary_is(s, 10, NULL), "vary: rule deleted from the vary db");
	is_int(get_is(s, 10, 3, 0, 800, NULL, NULL), CDN_OK,
	    "vary: variant 0 is the new one");
	/* Without a memory tier the rule comes from LMDB every time. */
	put_new(s, 12, 1, 5, 100, "Accept-Language");
	cache_store_sync(s);
	ok(vary_is(s, 12, "Accept-Language"),
	    "vary: no memory tier: rule from LMDB");
	cache_store_close(&s);
}

/* cache_store_get_meta_probe() of variant 0: does any tier hold any
 * variant of the key?  A "none" answer lets a miss skip every other
 * variant lookup, so it must never be said of a key that has one. */
static int
none_stored_v(
    struct cache_store *s, const uint8_t key[CACHE_HASH_LEN], uint64_t variant)
{
	struct cache_obj *o = NULL;
	int none = -1, rc;

	rc = cache_store_get_meta_probe(s, key, variant, &o, NULL, &none);
	if (rc == CDN_OK)
		cache_obj_unref(&o);
	return rc == CDN_NOTFOUND ? none : rc == CDN_OK ? 2 : -1;
}

static int
none_stored(struct cache_store *s, const uint8_t key[CACHE_HASH_LEN])
{
	return none_stored_v(s, key, 0);
}

static void
test_none_stored(void)
{
	uint8_t key[CACHE_HASH_LEN], near[CACHE_HASH_LEN];
	struct cache_store *s;

	s = open_store("none", 32 * MIB, 8 * MIB, 4 * MIB, 90, 70);
	key_of(30, key);
	is_int(none_stored(s, key), 1, "none stored: a key never stored");
	/* A lookup leaves a "no Vary" rule in memory: not an object. */
	ok(vary_is(s, 30, NULL), "none stored: no Vary rule either");
	is_int(none_stored(s, key), 1, "none stored: ... still none after it");
	/* Only a coded variant (not 0): found by the one seek. */
	put_new(s, 30, 1, 0x77, 500, NULL);
	is_int(none_stored(s, key), 0, "none stored: not once put (memory)");
	cache_store_close(&s);

	s = open_store("none", 32 * MIB, 8 * MIB, 4 * MIB, 90, 70);
	is_int(none_stored(s, key), 0,
	    "none stored: not with a variant on disk alone");
	is_int(get_is(s, 30, 1, 0x77, 500, NULL, NULL), CDN_OK,
	    "none stored: ... and that variant is found");
	/* Keys just below and above sort next to it: not taken for it. */
	memcpy(near, key, sizeof(near));
	near[CACHE_HASH_LEN - 1]--;
	is_int(none_stored(s, near), 1, "none stored: the key just below");
	memcpy(near, key, sizeof(near));
	near[CACHE_HASH_LEN - 1]++;
	is_int(none_stored(s, near), 1, "none stored: the key just above");
	cache_store_close(&s);
}

/* cache_store_get_vary_probe(): the rule as cache_store_get_vary gives
 * it, and "none stored" for a key with no object in either tier, which
 * lets a miss skip the vary db and every variant; so it must never be
 * said of a key that has one, in memory or on disk alone. */
static int
vary_probe_is(struct cache_store *s, const uint8_t key[CACHE_HASH_LEN],
    const char *want, int want_none)
{
	char buf[256];
	size_t len = 0;
	int none = -1, rc;

	rc = cache_store_get_vary_probe(s, key, buf, sizeof(buf), &len, &none);
	if (none != want_none)
		return 0;
	if (want == NULL)
		return rc == CDN_NOTFOUND;
	return rc == CDN_OK && len == strlen(want) &&
	    memcmp(buf, want, len) == 0;
}

static void
test_vary_probe(void)
{
	const char *ae = "Accept-Encoding";
	uint8_t key[CACHE_HASH_LEN], near[CACHE_HASH_LEN];
	struct cache_store *s;

	s = open_store("vprobe", 32 * MIB, 8 * MIB, 4 * MIB, 90, 70);
	key_of(50, key);
	ok(vary_probe_is(s, key, NULL, 1), "vary probe: a key never stored");
	ok(vary_probe_is(s, key, NULL, 1), "vary probe: ... asked again");
	put_new(s, 51, 1, 0x77, 500, NULL);
	put_new(s, 52, 1, 11, 600, ae);
	key_of(51, key);
	ok(vary_probe_is(s, key, NULL, 0), "vary probe: no rule, in memory");
	key_of(52, key);
	ok(vary_probe_is(s, key, ae, 0), "vary probe: a rule, in memory");
	cache_store_close(&s);

	/* Reopened: memory knows nothing, LMDB has both. */
	s = open_store("vprobe", 32 * MIB, 8 * MIB, 4 * MIB, 90, 70);
	key_of(51, key);
	ok(vary_probe_is(s, key, NULL, 0),
	    "vary probe: a coded variant on disk alone");
	memcpy(near, key, sizeof(near));
	near[CACHE_HASH_LEN - 1]--;
	ok(vary_probe_is(s, near, NULL, 1), "vary probe: the key just below");
	memcpy(near, key, sizeof(near));
	near[CACHE_HASH_LEN - 1]++;
	ok(vary_probe_is(s, near, NULL, 1), "vary probe: the key just above");
	key_of(52, key);
	ok(vary_probe_is(s, key, ae, 0), "vary probe: a rule on disk alone");
	ok(vary_probe_is(s, key, ae, 0), "vary probe: ... then from memory");
	cache_store_close(&s);

	/* No memory tier: every answer is LMDB's. */
	s = open_store("vprobe0", 32 * MIB, 0, 4 * MIB, 90, 70);
	put_new(s, 53, 1, 0, 300, ae);
	cache_store_sync(s);
	key_of(53, key);
	ok(vary_probe_is(s, key, ae, 0), "vary probe: no memory tier: rule");
	key_of(54, key);
	ok(vary_probe_is(s, key, NULL, 1), "vary probe: no memory tier: none");
	cache_store_close(&s);
}

/* The probe of a variant that is not stored, from LMDB alone (no memory
 * tier): its seek lands on the variant after it, on another key, or past
 * the last record, and any variant before or after it must be seen. */
static void
test_none_stored_variants(void)
{
	uint8_t key[CACHE_HASH_LEN], near[CACHE_HASH_LEN];
	struct cache_store *s;

	s = open_store("nonev", 32 * MIB, 0, 4 * MIB, 90, 70);
	put_new(s, 40, 1, 0x100, 300, NULL);
	put_new(s, 40, 1, 0x300, 300, NULL);
	for (unsigned id = 41; id < 49; id++)
		put_new(s, id, 1, 5, 200, NULL);
	cache_store_sync(s);
	key_of(40, key);
	is_int(none_stored_v(s, key, 0x100), 2, "none v: variant 0x100 found");
	is_int(none_stored_v(s, key, 0x300), 2, "none v: variant 0x300 found");
	is_int(none_stored_v(s, key, 0x50), 0, "none v: one after it");
	is_int(none_stored_v(s, key, 0x200), 0, "none v: one each side");
	is_int(none_stored_v(s, key, 0x400), 0, "none v: one before it");
	is_int(none_stored_v(s, key, UINT64_MAX), 0,
	    "none v: one before the last variant there can be");
	memcpy(near, key, sizeof(near));
	near[CACHE_HASH_LEN - 1]--;
	is_int(none_stored_v(s, near, 0x200), 1, "none v: the key just below");
	memcpy(near, key, sizeof(near));
	near[CACHE_HASH_LEN - 1]++;
	is_int(none_stored_v(s, near, 0x200), 1, "none v: the key just above");
	/* Some of these keys sort first or last: the seek runs off an end. */
	for (unsigned id = 41; id < 49; id++) {
		key_of(id, key);
		is_int(none_stored_v(s, key, 4), 0, "none v: key %u, variant 4",
		    id);
		is_int(none_stored_v(s, key, 6), 0, "none v: key %u, variant 6",
		    id);
		memcpy(near, key, sizeof(near));
		near[0] ^= 0xff;
		is_int(none_stored_v(s, near, 5), 1,
		    "none v: key %u turned over", id);
	}
	memset(near, 0, sizeof(near));
	is_int(none_stored_v(s, near, 0), 1, "none v: the lowest key");
	memset(near, 0xff, sizeof(near));
	is_int(
	    none_stored_v(s, near, UINT64_MAX), 1, "none v: the highest key");
	cache_store_close(&s);
}

static void
test_remove(void)
{
	uint8_t key[CACHE_HASH_LEN];
	struct cache_store_stats st;
	struct cache_store *s;

	s = open_store("rm", 32 * MIB, 8 * MIB, 4 * MIB, 90, 70);
	put_new(s, 20, 1, 1, 1000, "Accept-Encoding");
	put_new(s, 20, 1, 2, 300 * KIB, "Accept-Encoding");
	put_new(s, 21, 1, 0, 1000, NULL);
	cache_store_sync(s);
	key_of(20, key);
	cache_store_remove(s, key);
	is_int(get_is(s, 20, 1, 1, 1000, NULL, NULL), CDN_NOTFOUND,
	    "remove: variant 1 gone at once");
	is_int(get_is(s, 20, 1, 2, 300 * KIB, NULL, NULL), CDN_NOTFOUND,
	    "remove: variant 2 (disk only) gone at once");
	ok(vary_is(s, 20, NULL), "remove: Vary rule gone at once");
	is_int(get_is(s, 21, 1, 0, 1000, NULL, NULL), CDN_OK,
	    "remove: other key untouched");
	cache_store_sync(s);
	cache_store_stats(s, &st);
	is_int(st.objects, 1, "remove: one object left in LMDB");
	cache_store_close(&s);

	s = open_store("rm", 32 * MIB, 0, 4 * MIB, 90, 70);
	is_int(get_is(s, 20, 1, 1, 1000, NULL, NULL), CDN_NOTFOUND,
	    "remove: variant 1 gone after reopen");
	is_int(get_is(s, 20, 1, 2, 300 * KIB, NULL, NULL), CDN_NOTFOUND,
	    "remove: variant 2 gone after reopen");
	ok(vary_is(s, 20, NULL), "remove: vary db entry gone");
	is_int(get_is(s, 21, 1, 0, 1000, NULL, NULL), CDN_OK,
	    "remove: other key still there");
	/* No memory tier: the tombstone alone hides the LMDB copy until
	 * the removal commits. */
	key_of(21, key);
	cache_store_remove(s, key);
	is_int(get_is(s, 21, 1, 0, 1000, NULL, NULL), CDN_NOTFOUND,
	    "remove: pending removal hides the disk copy");
	put_new(s, 21, 2, 0, 2000, NULL);
	cache_store_sync(s);
	is_int(get_is(s, 21, 2, 0, 2000, NULL, NULL), CDN_OK,
	    "remove: a put after the removal is stored");
	cache_store_close(&s);
}

/*
 * Through a raw LMDB write: flip the bits <mask> of byte <at> of a value
 * (if it has that byte), and cut it to <truncate_to> bytes (if not 0).
 */
/* An offset <n> bytes before the last byte of a value, for corrupt_value. */
#define FROM_END(n) (SIZE_MAX - (n))

static int
corrupt_value(const char *dir, const char *dbname, const void *key, size_t klen,
    size_t at, unsigned mask, size_t truncate_to)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi dbi;
	MDB_val k, v;
	unsigned char *copy = NULL;
	int rc;

	if ((rc = mdb_env_create(&env)) != 0 ||
	    (rc = mdb_env_set_mapsize(env, 32 * MIB)) != 0 ||
	    (rc = mdb_env_set_maxdbs(env, 8)) != 0 ||
	    (rc = mdb_env_open(env, dir, 0, 0644)) != 0 ||
	    (rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, dbname, 0, &dbi)) != 0)
		goto out;
	k.mv_data = (void *)(uintptr_t)key;
	k.mv_size = klen;
	if ((rc = mdb_get(txn, dbi, &k, &v)) != 0)
		goto out;
	copy = malloc(v.mv_size);
	memcpy(copy, v.mv_data, v.mv_size);
	if (at >= FROM_END(64) && mask != 0)
		at = v.mv_size - 1 - (SIZE_MAX - at);
	if (at < v.mv_size)
		copy[at] ^= (unsigned char)mask;
	if (truncate_to > 0 && truncate_to < v.mv_size)
		v.mv_size = truncate_to;
	v.mv_data = copy;
	if ((rc = mdb_put(txn, dbi, &k, &v, 0)) != 0)
		goto out;
	rc = mdb_txn_commit(txn);
	txn = NULL;
out:
	if (txn != NULL)
		mdb_txn_abort(txn);
	if (env != NULL)
		mdb_env_close(env);
	free(copy);
	return rc;
}

static void
test_corrupt(void)
{
	uint8_t key[CACHE_HASH_LEN], ok_key[CACHE_OBJKEY_LEN];
	uint8_t ck[CACHE_CHUNKKEY_LEN];
	struct cache_store_stats st;
	struct cache_store *s;
	char dir[128];

	dir_for(dir, sizeof(dir), "bad");
	s = open_store("bad", 32 * MIB, 0, 4 * MIB, 90, 70);
	for (unsigned id = 30; id < 37; id++)
		put_new(s, id, 1, 0, 300 * KIB, NULL);
	cache_store_close(&s);

	key_of(30, key);
	cache_record_objkey(ok_key, key, 0);
	is_int(corrupt_value(dir, CACHE_DB_OBJECTS, ok_key, sizeof(ok_key),
	           CACHE_REC_HDR_LEN + 3, 0x20, 0),
	    0, "corrupt: flipped a bit of a record's url");
	key_of(31, key);
	cache_record_objkey(ok_key, key, 0);
	is_int(corrupt_value(
	           dir, CACHE_DB_OBJECTS, ok_key, sizeof(ok_key), 1, 0x20, 0),
	    0, "corrupt: flipped a bit of a record's magic");
	key_of(32, key);
	cache_record_objkey(ok_key, key, 0);
	is_int(corrupt_value(dir, CACHE_DB_OBJECTS, ok_key, sizeof(ok_key),
	           (size_t)-1, 0, 50),
	    0, "corrupt: truncated a record");
	key_of(33, key);
	cache_record_chunkkey(ck, key, 0, 0, 1);
	is_int(
	    corrupt_value(dir, CACHE_DB_BODIES, ck, sizeof(ck), 1000, 0x20, 0),
	    0, "corrupt: flipped a bit of a chunk");
	key_of(35, key);
	cache_record_objkey(ok_key, key, 0);
	is_int(corrupt_value(
	           dir, CACHE_DB_OBJECTS, ok_key, sizeof(ok_key), 6, 0x02, 0),
	    0, "corrupt: flipped the must_revalidate flag bit");
	key_of(36, key);
	cache_record_objkey(ok_key, key, 0);
	is_int(corrupt_value(dir, CACHE_DB_OBJECTS, ok_key, sizeof(ok_key),
	           FROM_END(CACHE_LRUKEY_LEN), 0x20, 0),
	    0, "corrupt: flipped a bit of the body's tail in the record");

	s = open_store("bad", 32 * MIB, 8 * MIB, 4 * MIB, 90, 70);
	is_int(get_is(s, 30, 1, 0, 300 * KIB, NULL, NULL), CDN_ECORRUPT,
	    "corrupt: bad url byte detected");
	is_int(get_is(s, 31, 1, 0, 300 * KIB, NULL, NULL), CDN_ECORRUPT,
	    "corrupt: bad magic detected");
	is_int(get_is(s, 32, 1, 0, 300 * KIB, NULL, NULL), CDN_ECORRUPT,
	    "corrupt: truncated record detected");
	is_int(get_is(s, 33, 1, 0, 300 * KIB, NULL, NULL), CDN_ECORRUPT,
	    "corrupt: bad chunk detected");
	is_int(get_is(s, 35, 1, 0, 300 * KIB, NULL, NULL), CDN_ECORRUPT,
	    "corrupt: bad flag bit detected");
	is_int(get_is(s, 36, 1, 0, 300 * KIB, NULL, NULL), CDN_ECORRUPT,
	    "corrupt: bad tail byte detected");
	is_int(get_is(s, 34, 1, 0, 300 * KIB, NULL, NULL), CDN_OK,
	    "corrupt: the intact object reads fine");
	cache_store_stats(s, &st);
	is_int(st.corrupt, 6, "corrupt: counted");
	cache_store_sync(s);
	is_int(get_is(s, 30, 1, 0, 300 * KIB, NULL, NULL), CDN_NOTFOUND,
	    "corrupt: bad record deleted");
	is_int(get_is(s, 33, 1, 0, 300 * KIB, NULL, NULL), CDN_NOTFOUND,
	    "corrupt: object with a bad chunk deleted");
	cache_store_stats(s, &st);
	is_int(st.objects, 1, "corrupt: one object left");
	is_int(st.corrupt, 6, "corrupt: no further corruption seen");
	cache_store_close(&s);
}

/* Entries and overflow pages of database <name> in the store <dir>. */
static int
db_pages(const char *dir, const char *name, size_t *entries, size_t *ovf)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_stat ms;
	int rc;

	if ((rc = lmdbstat_open(dir, &env, &txn)) != 0)
		return rc;
	if ((rc = lmdbstat_db(txn, name, &ms)) == 0) {
		*entries = ms.ms_entries;
		*ovf = ms.ms_overflow_pages;
	}
	lmdbstat_close(&env, &txn);
	return rc;
}

/*
 * What a body takes on disk (cache_int.h, the object record): a 4 KiB
 * body one overflow page (its value is a page's payload, the 16 bytes
 * left over go in the record), a 1000-byte body none (it lives in its
 * record), a body of two full chunks and 5000 bytes 64 + 64 + 1 pages;
 * no lru_pos entries.  All read back byte-exact, whole and by chunks.
 */
static void
test_layout(void)
{
	static const size_t sizes[] = {
	    4096, 1000, 2 * CACHE_CHUNK_SIZE + 5000, 4080, 4097};
	uint8_t key[CACHE_HASH_LEN];
	struct cache_store *s;
	struct cache_obj *o = NULL;
	size_t entries = 0, ovf = 0, bad = 0;
	char dir[128];
	int fm;

	dir_for(dir, sizeof(dir), "layout");
	s = open_store("layout", 64 * MIB, 0, 16 * MIB, 90, 70);
	for (unsigned i = 0; i < CDN_ARRAY_LEN(sizes); i++)
		put_new(s, 40 + i, 1, 0, sizes[i], NULL);
	cache_store_close(&s);
	is_int(db_pages(dir, CACHE_DB_BODIES, &entries, &ovf), 0,
	    "layout: bodies db read");
	/* 4096: 1 page; 1000: none; 64 + 64 + 1; 4080: 1; 4097: 1. */
	is_int(entries, 6, "layout: bodies values");
	is_int(ovf, 1 + 64 + 64 + 1 + 1 + 1, "layout: overflow pages");
	is_int(db_pages(dir, CACHE_DB_LRU_POS, &entries, &ovf), 0,
	    "layout: lru_pos db read");
	is_int(entries, 0, "layout: no lru_pos entries");

	s = open_store("layout", 64 * MIB, 0, 16 * MIB, 90, 70);
	for (unsigned i = 0; i < CDN_ARRAY_LEN(sizes); i++)
		is_int(get_is(s, 40 + i, 1, 0, sizes[i], NULL, &fm), CDN_OK,
		    "layout: %zu B byte-exact from disk", sizes[i]);
	key_of(42, key);
	is_int(cache_store_get_meta(s, key, 0, &o, &fm), CDN_OK,
	    "layout: metadata of the 3-chunk body");
	if (o != NULL) {
		is_int(cache_store_load_chunks(s, o, 1, 2), CDN_OK,
		    "layout: chunks 1 and 2 loaded");
		for (uint64_t i = CACHE_CHUNK_SIZE; i < o->body_len; i++)
			if (o->chunks[i / CACHE_CHUNK_SIZE][i %
			        CACHE_CHUNK_SIZE] != body_byte(42, 1, i))
				bad++;
		is_int(bad, 0, "layout: loaded chunks byte-exact");
		cache_obj_unref(&o);
	}
	cache_store_close(&s);
}

/* Read every chunk of <pin> and compare with object (id, ver); returns
 * the first failing rc, CDN_EINVAL for other bytes. */
static int
pin_reads(struct cache_store *s, const struct cache_pin *pin, unsigned id,
    unsigned ver, size_t len)
{
	unsigned char *p;
	size_t n;
	int rc;

	for (uint32_t i = 0; i * (uint64_t)CACHE_CHUNK_SIZE < len; i++) {
		rc = cache_store_pin_read(s, pin, i, &p, &n);
		if (rc != CDN_OK)
			return rc;
		for (size_t j = 0; j < n && rc == CDN_OK; j++)
			if (p[j] !=
			    body_byte(
			        id, ver, (uint64_t)i * CACHE_CHUNK_SIZE + j))
				rc = CDN_EINVAL;
		free(p);
		if (rc != CDN_OK)
			return rc;
	}
	return CDN_OK;
}

static struct cache_pin *
pin_of(struct cache_store *s, unsigned id)
{
	uint8_t key[CACHE_HASH_LEN];
	struct cache_obj *o = NULL;
	struct cache_pin *pin = NULL;
	int fm;

	key_of(id, key);
	if (cache_store_get_meta(s, key, 0, &o, &fm) != CDN_OK)
		return NULL;
	if (cache_store_pin(s, o, &pin) != CDN_OK)
		pin = NULL;
	cache_obj_unref(&o);
	return pin;
}

/*
 * Pins: a reader of an object on disk keeps the copy it began with when a
 * newer one replaces it (whose chunks go beside it, and whose bytes the
 * next lookups get), the old chunks go once it lets go; eviction passes a
 * pinned object over; a removal takes the chunks (the reader is told).
 */
static void
test_pin(void)
{
	const size_t len = 2 * CACHE_CHUNK_SIZE + 5000;
	struct cache_store_stats st;
	struct cache_store *s;
	struct cache_pin *pin;
	uint8_t key[CACHE_HASH_LEN];
	size_t entries = 0, ovf = 0;
	char dir[128];
	int fm;

	dir_for(dir, sizeof(dir), "pin");
	s = open_store("pin", 8 * MIB, 0, 1 * MIB, 80, 60);
	put_new(s, 60, 1, 0, len, NULL);
	cache_store_sync(s);
	pin = pin_of(s, 60);
	ok(pin != NULL, "pin: pinned");
	put_new(s, 60, 2, 0, len, NULL);
	cache_store_sync(s);
	is_int(get_is(s, 60, 2, 0, len, NULL, &fm), CDN_OK,
	    "pin: the new copy is what a lookup finds");
	is_int(pin != NULL ? pin_reads(s, pin, 60, 1, len) : -1, CDN_OK,
	    "pin: the reader still reads the old copy");
	cache_store_unpin(s, &pin);
	ok(pin == NULL, "pin: unpin NULLs the holder");
	cache_store_sync(s);
	cache_store_close(&s);
	is_int(db_pages(dir, CACHE_DB_BODIES, &entries, &ovf), 0,
	    "pin: bodies db read");
	is_int(entries, 3, "pin: the old copy's chunks went with its reader");

	s = open_store("pin", 8 * MIB, 0, 1 * MIB, 80, 60);
	is_int(get_is(s, 60, 2, 0, len, NULL, &fm), CDN_OK,
	    "pin: the new copy after a restart");
	pin = pin_of(s, 60);
	for (unsigned i = 0; i < 200; i++)
		put_new(s, 300 + i, 1, 0, 100 * KIB, NULL);
	cache_store_sync(s);
	cache_store_stats(s, &st);
	ok(st.evictions >= 100, "pin: %llu objects evicted",
	    (unsigned long long)st.evictions);
	is_int(pin != NULL ? pin_reads(s, pin, 60, 2, len) : -1, CDN_OK,
	    "pin: the pinned object's chunks are all there");
	is_int(get_is(s, 60, 2, 0, len, NULL, &fm), CDN_OK,
	    "pin: the pinned object was passed over");

	key_of(60, key);
	cache_store_remove(s, key);
	cache_store_sync(s);
	is_int(pin != NULL ? pin_reads(s, pin, 60, 2, len) : -1, CDN_NOTFOUND,
	    "pin: a removal takes the chunks; the reader is told");
	cache_store_unpin(s, &pin);
	cache_store_close(&s);
}

static void
test_eviction(void)
{
	struct cache_store_stats st;
	struct cache_store *s;
	struct cache_obj *o = NULL;
	uint8_t key[CACHE_HASH_LEN];
	unsigned present = 0, first = 0, has_first = 0, recent = 0, back = 0;
	unsigned i;
	struct stat fst;
	char path[160];
	int rc, fails = 0;

	s = open_store("ev", 8 * MIB, 0, 1 * MIB, 80, 60);
	for (i = 0; i < 200; i++)
		put_new(s, 100 + i, 1, 0, 100 * KIB, NULL);
	cache_store_sync(s);
	cache_store_stats(s, &st);
	is_int(st.put_drops, 0, "eviction: no put dropped");
	is_int(st.map_full, 0, "eviction: never hit MDB_MAP_FULL");
	is_int(st.puts, 200, "eviction: 200 puts committed");
	ok(st.evictions >= 100, "eviction: %llu objects evicted",
	    (unsigned long long)st.evictions);
	ok(st.bytes <= 8 * MIB / 100 * 80,
	    "eviction: %llu bytes used, under the high-water mark",
	    (unsigned long long)st.bytes);
	for (i = 0; i < 200; i++) {
		rc = get_is(s, 100 + i, 1, 0, 100 * KIB, NULL, NULL);
		if (rc == CDN_OK) {
			present++;
			if (!has_first) {
				first = i;
				has_first = 1;
			}
			if (i >= 190)
				recent++;
		} else if (rc != CDN_NOTFOUND) {
			fails++;
		}
	}
	is_int(fails, 0, "eviction: every get is a hit or a clean miss");
	is_int(present, st.objects, "eviction: stats objects = present");
	ok(present >= 30 && present <= 64, "eviction: %u objects fit", present);
	is_int(recent, 10, "eviction: the 10 most recent are present");
	ok(has_first && first > 100,
	    "eviction: the oldest went first "
	    "(oldest present: #%u)",
	    first);
	snprintf(path, sizeof(path), "%s/ev/data.mdb", root);
	if (stat(path, &fst) == -1)
		fst.st_size = -1;
	ok(fst.st_size > 0 && (uint64_t)fst.st_size <= 8 * MIB,
	    "eviction: data file within the map (%lld bytes)",
	    (long long)fst.st_size);

	/* Two minutes later, touch the oldest: it moves to the back. */
	atomic_store(&s->clock_skew_s, 2 * CACHE_LRU_BUCKET_S);
	key_of(100 + first, key);
	if (cache_store_get(s, key, 0, &o, NULL) == CDN_OK) {
		cache_store_touch(s, o);
		cache_store_touch(s, o); /* coalesced */
		cache_obj_unref(&o);
	}
	for (i = 0; i < present / 2; i++)
		put_new(s, 1000 + i, 1, 0, 100 * KIB, NULL);
	cache_store_sync(s);
	is_int(get_is(s, 100 + first, 1, 0, 100 * KIB, NULL, NULL), CDN_OK,
	    "eviction: the touched object survived");
	is_int(get_is(s, 100 + first + 1, 1, 0, 100 * KIB, NULL, NULL),
	    CDN_NOTFOUND, "eviction: its untouched neighbour was evicted");
	is_int(get_is(s, 1000 + present / 2 - 1, 1, 0, 100 * KIB, NULL, NULL),
	    CDN_OK, "eviction: the newest is present");

	/* The clock goes back two minutes: new lru keys sort before the
	 * last ones, so they cannot be appended.  Still stored. */
	atomic_store(&s->clock_skew_s, 0);
	for (i = 0; i < 5; i++)
		put_new(s, 2000 + i, 1, 0, 100 * KIB, NULL);
	cache_store_sync(s);
	for (i = 0; i < 5; i++)
		back +=
		    get_is(s, 2000 + i, 1, 0, 100 * KIB, NULL, NULL) == CDN_OK;
	is_int(back, 5, "eviction: stored after the clock went back");
	cache_store_stats(s, &st);
	is_int(st.put_drops, 0, "eviction: no put dropped then");
	cache_store_close(&s);

	/* Reopen: start-up reads the counters, no scan. */
	s = open_store("ev", 8 * MIB, 0, 1 * MIB, 80, 60);
	cache_store_stats(s, &st);
	ok(st.objects > 0 && st.bytes <= 8 * MIB / 100 * 80,
	    "eviction: sane counters after reopen (%llu objects)",
	    (unsigned long long)st.objects);
	cache_store_close(&s);
}

static void
test_map_full(void)
{
	struct cache_store_stats st;
	struct cache_store *s;
	unsigned i, bad = 0;
	int rc;

	/* Watermarks that leave LMDB no headroom: MAP_FULL must stay
	 * internal. */
	s = open_store("full", 2 * MIB, 0, 1 * MIB, 100, 99);
	for (i = 0; i < 60; i++) {
		put_new(s, 200 + i, 1, 0, 120 * KIB, NULL);
		if (i % 7 == 0)
			cache_store_sync(s);
	}
	cache_store_sync(s);
	cache_store_stats(s, &st);
	is_int(st.puts + st.put_drops, 60,
	    "map full: every put committed or dropped (%llu dropped, "
	    "%llu MAP_FULL)",
	    (unsigned long long)st.put_drops, (unsigned long long)st.map_full);
	is_int(st.io_errors, 0, "map full: no I/O errors");
	for (i = 0; i < 60; i++) {
		rc = get_is(s, 200 + i, 1, 0, 120 * KIB, NULL, NULL);
		if (rc != CDN_OK && rc != CDN_NOTFOUND)
			bad++;
	}
	is_int(bad, 0, "map full: every get is a hit or a clean miss");
	put_new(s, 299, 1, 0, 1000, NULL);
	cache_store_sync(s);
	is_int(get_is(s, 299, 1, 0, 1000, NULL, NULL), CDN_OK,
	    "map full: the store still works");
	cache_store_close(&s);
}

static void
test_limits(void)
{
	struct cache_store_stats st;
	struct cache_store *s;

	s = open_store("lim", 8 * MIB, 8 * MIB, 100 * KIB, 90, 70);
	put_new(s, 40, 1, 0, 100 * KIB + 1, NULL);
	put_new(s, 41, 1, 0, 100 * KIB, NULL);
	cache_store_sync(s);
	cache_store_stats(s, &st);
	is_int(st.put_drops, 1, "limits: object over max_object_bytes dropped");
	is_int(get_is(s, 40, 1, 0, 100 * KIB + 1, NULL, NULL), CDN_NOTFOUND,
	    "limits: ... and not even in memory");
	is_int(get_is(s, 41, 1, 0, 100 * KIB, NULL, NULL), CDN_OK,
	    "limits: object of exactly max_object_bytes stored");
	cache_store_close(&s);

	/* Larger than 1/8 of the disk budget: memory only. */
	s = open_store("lim2", 8 * MIB, 256 * MIB, 4 * MIB, 90, 70);
	put_new(s, 42, 1, 0, 1 * MIB + 1, NULL);
	cache_store_sync(s);
	cache_store_stats(s, &st);
	is_int(st.put_drops, 1, "limits: object over disk/8 not persisted");
	is_int(get_is(s, 42, 1, 0, 1 * MIB + 1, NULL, NULL), CDN_OK,
	    "limits: ... but served from memory");
	cache_store_close(&s);
	s = open_store("lim2", 8 * MIB, 64 * MIB, 4 * MIB, 90, 70);
	is_int(get_is(s, 42, 1, 0, 1 * MIB + 1, NULL, NULL), CDN_NOTFOUND,
	    "limits: ... and gone after reopen");
	cache_store_close(&s);
}

static uint64_t
rnd(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void
test_mem_bound(void)
{
	struct cache_store_stats st;
	struct cache_store *s;
	uint64_t x = 88172645463325252ull, max_seen = 0;
	unsigned i;

	s = open_store("mem", 64 * MIB, 1 * MIB, 4 * MIB, 90, 70);
	for (i = 0; i < 1500; i++) {
		put_new(s, 5000 + i, 1, 0, 100 + rnd(&x) % 8000, NULL);
		cache_store_stats(s, &st);
		if (st.mem_bytes > max_seen)
			max_seen = st.mem_bytes;
	}
	ok(max_seen <= 1 * MIB,
	    "mem bound: footprint never above 1 MiB "
	    "(max %llu)",
	    (unsigned long long)max_seen);
	ok(st.mem_evictions > 0 && st.mem_objects > 50,
	    "mem bound: %llu evictions, %llu objects held",
	    (unsigned long long)st.mem_evictions,
	    (unsigned long long)st.mem_objects);
	cache_store_close(&s);
}

static int
mem_has(struct cache_mem *m, unsigned id)
{
	uint8_t key[CACHE_HASH_LEN];
	struct cache_obj *o = NULL;
	uint64_t gen;
	int removed, rc;

	key_of(id, key);
	rc = cache_mem_get(m, key, 0, &o, &removed, &gen);
	if (rc == CDN_OK)
		cache_obj_unref(&o);
	return rc == CDN_OK;
}

/* Which S3-FIFO queue holds (key, variant): 'S', 'M' or 0. */
static int
mem_queue_of(
    struct cache_mem *m, const uint8_t key[CACHE_HASH_LEN], uint64_t variant)
{
	struct mem_shard *sh;
	struct mem_entry *e;
	int q = 0;

	MAGIC_CHECK(m, CACHE_MEM_MAGIC);
	sh = shard_of(m, key);
	pthread_mutex_lock(&sh->mtx);
	e = entry_find(sh, key, MEM_OBJ, variant);
	if (e != NULL)
		q = e->queue == Q_MAIN ? 'M' : 'S';
	pthread_mutex_unlock(&sh->mtx);
	return q;
}

static int
mem_queue(struct cache_mem *m, unsigned id)
{
	uint8_t key[CACHE_HASH_LEN];

	key_of(id, key);
	return mem_queue_of(m, key, 0);
}

static void
mem_put(struct cache_mem *m, unsigned id, size_t len)
{
	struct cache_obj *o;

	o = make_obj(id, 1, 0, len, NULL);
	cache_mem_put(m, o, 0);
	cache_obj_unref(&o);
}

/* An object too large for the tier is kept while pinned, and only then. */
static void
test_mem_pin(void)
{
	struct cache_mem_stats st;
	struct cache_mem *m;
	struct cache_obj *big;

	m = cache_mem_new(1 * MIB, 1); /* admits up to 128 KiB */
	big = make_obj(900, 1, 0, 600 * 1024, NULL);
	cache_mem_put(m, big, 0);
	ok(!mem_has(m, 900), "too large: not admitted without a pin");
	cache_mem_put(m, big, 1);
	ok(mem_has(m, 900), "pinned: found");
	for (unsigned i = 0; i < 400; i++)
		mem_put(m, 901 + i, 4000);
	ok(mem_has(m, 900), "a pinned object is never evicted");
	cache_mem_stats(m, &st);
	ok(st.bytes <= st.budget, "and its body is not charged to the budget");
	cache_mem_unpin(m, big);
	ok(!mem_has(m, 900), "unpinned: gone (LMDB serves it)");
	cache_mem_put(m, big, 1);
	cache_mem_remove(m, big->key, UINT64_MAX);
	ok(!mem_has(m, 900), "a removal drops a pinned object too");
	cache_obj_unref(&big);
	cache_mem_free(&m);
}

static void
test_s3fifo(void)
{
	struct cache_mem_stats st;
	struct cache_mem *m;
	unsigned i, hot_kept = 0, scan_kept = 0, scan_main = 0, rounds;

	/* One shard of 1 MiB: about 200 objects of 4 KiB. */
	m = cache_mem_new(1 * MIB, 1);
	for (i = 0; i < 50; i++)
		mem_put(m, 7000 + i, 4000);
	for (rounds = 0; rounds < 2; rounds++) {
		for (i = 0; i < 50; i++)
			(void)mem_has(m, 7000 + i);
	}
	/* A scan of 3000 one-hit wonders, with the hot set in use. */
	for (i = 0; i < 3000; i++) {
		mem_put(m, 10000 + i, 4000);
		if (i % 20 == 0)
			(void)mem_has(m, 7000 + (i / 20) % 50);
	}
	for (i = 0; i < 50; i++)
		hot_kept += mem_queue(m, 7000 + i) == 'M';
	for (i = 0; i < 3000; i++) {
		scan_kept += mem_queue(m, 10000 + i) != 0;
		scan_main += mem_queue(m, 10000 + i) == 'M';
	}
	is_int(hot_kept, 50, "s3fifo: the hot set survives a scan, in main");
	is_int(scan_main, 0, "s3fifo: no one-hit wonder reaches main");
	ok(scan_kept > 0 && scan_kept < 200,
	    "s3fifo: the scan only uses the space main leaves (%u kept)",
	    scan_kept);
	ok(mem_has(m, 10000 + 2999) && !mem_has(m, 10000),
	    "s3fifo: the small queue is a FIFO");
	cache_mem_stats(m, &st);
	ok(st.bytes <= 1 * MIB, "s3fifo: within budget (%llu)",
	    (unsigned long long)st.bytes);

	/* Ghost: an object evicted from S unhit comes back into M. */
	mem_put(m, 20000, 4000);
	is_int(mem_queue(m, 20000), 'S', "s3fifo: a new object enters S");
	for (i = 0; i < 1000 && mem_queue(m, 20000) != 0; i++)
		mem_put(m, 20001 + i, 4000);
	is_int(mem_queue(m, 20000), 0,
	    "s3fifo: ... and leaves it unhit "
	    "(after %u more)",
	    i);
	mem_put(m, 20000, 4000);
	is_int(mem_queue(m, 20000), 'M',
	    "s3fifo: re-inserted while in the ghost: main");
	/* Too large for 1/8 of the shard: not admitted. */
	mem_put(m, 20500, 200 * KIB);
	is_int(mem_queue(m, 20500), 0,
	    "s3fifo: an object over 1/8 of the "
	    "budget is not admitted");
	cache_mem_free(&m);
	ok(m == NULL, "s3fifo: free NULLs the holder");
}

/* ---- concurrent readers ---- */

#define CONC_KEYS 300

struct conc {
	struct cache_store *s;
	atomic_int stop;
	atomic_ulong reads, hits, errors;
};

static size_t
conc_len(unsigned id)
{
	return id % 50 == 0 ? 300 * KIB : 200 + (id * 977u) % (20 * KIB);
}

static void *
conc_reader(void *arg)
{
	struct conc *c = arg;
	uint8_t key[CACHE_HASH_LEN];
	struct cache_obj *o;
	uint64_t x = (uint64_t)(uintptr_t)&o | 1;
	unsigned id, ver;
	const char *p;
	int rc;

	while (!atomic_load(&c->stop)) {
		id = (unsigned)(rnd(&x) % CONC_KEYS);
		key_of(id, key);
		o = NULL;
		rc = cache_store_get(c->s, key, 0, &o, NULL);
		atomic_fetch_add(&c->reads, 1);
		if (rc == CDN_NOTFOUND)
			continue;
		if (rc != CDN_OK) {
			atomic_fetch_add(&c->errors, 1);
			continue;
		}
		p = strstr(o->fields, "X-Version: ");
		ver = p != NULL ? (unsigned)atoi(p + 11) : 0;
		if (!obj_is(o, id, ver, 0, conc_len(id), NULL))
			atomic_fetch_add(&c->errors, 1);
		else
			atomic_fetch_add(&c->hits, 1);
		cache_store_touch(c->s, o);
		cache_obj_unref(&o);
	}
	return NULL;
}

static void
test_concurrent(void)
{
	struct cache_store_stats st;
	pthread_t th[4];
	struct conc c;
	uint8_t key[CACHE_HASH_LEN];
	uint64_t x = 0x2545f4914f6cdd1dull, t0;
	unsigned id, ver = 2, writes = 0;

	memset(&c, 0, sizeof(c));
	c.s = open_store("conc", 64 * MIB, 2 * MIB, 4 * MIB, 90, 70);
	for (id = 0; id < CONC_KEYS; id++)
		put_new(c.s, id, 1, 0, conc_len(id), NULL);
	cache_store_sync(c.s);
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, conc_reader, &c);
	t0 = cdn_now_ms();
	while (cdn_now_ms() - t0 < 1000) {
		id = (unsigned)(rnd(&x) % CONC_KEYS);
		if (rnd(&x) % 10 == 0) {
			key_of(id, key);
			cache_store_remove(c.s, key);
		} else {
			put_new(c.s, id, ver++, 0, conc_len(id), NULL);
		}
		writes++;
		if (writes % 200 == 0)
			cache_store_sync(c.s);
		if (writes % 20 == 0)
			usleep(1000);
	}
	atomic_store(&c.stop, 1);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	cache_store_stats(c.s, &st);
	is_int(atomic_load(&c.errors), 0,
	    "concurrent: 4 readers, %lu reads, %lu hits, %u writes: no error",
	    (unsigned long)atomic_load(&c.reads),
	    (unsigned long)atomic_load(&c.hits), writes);
	ok(atomic_load(&c.hits) > 100, "concurrent: readers got hits");
	is_int(st.io_errors + st.corrupt, 0, "concurrent: no LMDB error");
	cache_store_close(&c.s);
}

/* ---- kill -9 ---- */

#define CRASH_OBJS 120

static size_t
crash_len(unsigned i)
{
	return i % 10 == 0 ? 600 * KIB : 1 + (i * 7919u) % (40 * KIB);
}

static void
crash_child(const char *name, unsigned delay_us)
{
	struct cache_store *s;

	s = open_store(name, 64 * MIB, 8 * MIB, 4 * MIB, 90, 70);
	if (s == NULL)
		_exit(3);
	for (unsigned i = 0; i < CRASH_OBJS / 2; i++)
		put_new(s, 30000 + i, 1, 0, crash_len(i), NULL);
	cache_store_sync(s);
	for (unsigned i = CRASH_OBJS / 2; i < CRASH_OBJS; i++) {
		put_new(s, 30000 + i, 1, 0, crash_len(i), NULL);
		if (i == CRASH_OBJS * 3 / 4 && delay_us > 0)
			usleep(delay_us); /* let a commit get under way */
	}
	kill(getpid(), SIGKILL);
	_exit(4);
}

static void
test_crash(void)
{
	struct cache_store_stats st;
	struct cache_store *s;
	static const unsigned delays[] = {0, 2000, 15000, 25000};
	unsigned synced_ok, later_ok, later_missing, bad;
	char name[32];
	pid_t pid;
	int wst, rc;

	for (size_t r = 0; r < CDN_ARRAY_LEN(delays); r++) {
		snprintf(name, sizeof(name), "crash%zu", r);
		fflush(stdout);
		pid = fork();
		if (pid == 0)
			crash_child(name, delays[r]);
		ok(pid > 0 && waitpid(pid, &wst, 0) == pid &&
		        WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL,
		    "crash %zu: child killed by SIGKILL mid-stream", r);
		s = open_store(name, 64 * MIB, 0, 4 * MIB, 90, 70);
		ok(s != NULL, "crash %zu: reopen after kill -9", r);
		if (s == NULL)
			continue;
		synced_ok = later_ok = later_missing = bad = 0;
		for (unsigned i = 0; i < CRASH_OBJS; i++) {
			rc = get_is(
			    s, 30000 + i, 1, 0, crash_len(i), NULL, NULL);
			if (i < CRASH_OBJS / 2)
				synced_ok += rc == CDN_OK;
			else if (rc == CDN_OK)
				later_ok++;
			else if (rc == CDN_NOTFOUND)
				later_missing++;
			if (rc != CDN_OK && rc != CDN_NOTFOUND)
				bad++;
		}
		is_int(synced_ok, CRASH_OBJS / 2,
		    "crash %zu: every synced object present and byte-exact", r);
		is_int(bad, 0,
		    "crash %zu: nothing partial (%u later objects complete, "
		    "%u absent)",
		    r, later_ok, later_missing);
		cache_store_stats(s, &st);
		is_int(st.objects, CRASH_OBJS / 2 + later_ok,
		    "crash %zu: object count matches", r);
		cache_store_close(&s);
	}
}

int
main(void)
{

	plan_no_plan();
	cdn_log_level_now = CDN_LOG_ERR;
	if (tmptree_make(root, sizeof(root), "t_cache_store") != 0)
		return 1;

	test_obj();
	test_roundtrip();
	test_vary();
	test_none_stored();
	test_none_stored_variants();
	test_vary_probe();
	test_remove();
	test_corrupt();
	test_layout();
	test_eviction();
	test_pin();
	test_map_full();
	test_limits();
	test_mem_bound();
	test_s3fifo();
	test_mem_pin();
	test_concurrent();
	test_crash();

	tmptree_remove(root);
	return done_testing();
}
