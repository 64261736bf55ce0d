/*
 * libFuzzer target for ranges and codings: http/http_range.c (the Range
 * parser), edge/edge_range.c (the plan, If-Range, the streaming feed),
 * cache/cache_negotiate.c (Accept-Encoding) and cache/cache_encode.c
 * (gzip and brotli decoding under caps).
 *
 * The input is cut at 0xff bytes into: [0] a Range value, [1] 8 bytes of
 * representation length, [2] an If-Range value, [3] an Accept-Encoding
 * value, [4] a coded body.  Beyond the sanitizers' checks it asserts what
 * callers rely on:
 *   - parsed ranges are satisfiable, ascending, disjoint and not adjacent,
 *     at most HTTP_RANGE_MAX;
 *   - a plan's body, fed in any piece size, is exactly content_length
 *     bytes, and a 206 single range is exactly the bytes asked for;
 *   - the same holds for objects read back from an LMDB store (no memory
 *     tier): the metadata alone, then only the chunks the plan covers, as
 *     a range of an object on disk is answered (every size class: empty,
 *     small, one chunk, several);
 *   - the negotiated order holds no coding twice and no q=0 coding;
 *   - decoding never produces more than its cap.
 */
#include "config.h"

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/cache.h"
#include "edge/edge_range.h"
#include "http/http_range.h"

struct feed_out {
	uint64_t n;
	const unsigned char *body;
	uint64_t first;
	int single;
};

static void
count_out(void *arg, const void *p, size_t n)
{
	struct feed_out *f = arg;

	if (f->single && memcmp(p, f->body + f->first + f->n, n) != 0)
		abort();
	f->n += n;
}

static uint64_t decoded;

static int
count_sink(void *arg, const void *p, size_t n)
{
	(void)arg;
	(void)p;
	decoded += n;
	return CDN_OK;
}

/* ---- objects read back from disk ---- */

static const uint64_t disk_sizes[] = {
    0, 1, 2000, CACHE_CHUNK_SIZE, 2 * CACHE_CHUNK_SIZE + 77};
static struct cache_store *store;
static char store_dir[] = "/tmp/fuzz_range.XXXXXX";

static unsigned char
disk_byte(uint64_t i)
{
	return (unsigned char)(i * 7 + (i >> 8) + (i >> 16) * 13);
}

static void
disk_key(unsigned k, uint8_t key[CACHE_HASH_LEN])
{
	char name[32];

	snprintf(name, sizeof(name), "fuzz/%u", k);
	cache_key_hash(name, strlen(name), key);
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
store_close(void)
{
	cache_store_close(&store);
	nftw(store_dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* Store one object of every size once, in a directory of this run's. */
static void
store_open(void)
{
	struct cache_store_conf c = {.disk_bytes = 64 << 20,
	    .max_object_bytes = 16 << 20,
	    .high_water_pct = 90,
	    .low_water_pct = 80};
	struct cache_decision d = {.storable = 1, .freshness_s = 3600};
	static const char fields[] = "Content-Type: text/plain\r\n";
	static unsigned char buf[4096];

	if (mkdtemp(store_dir) == NULL)
		abort();
	c.dir = store_dir;
	store = cache_store_open(&c);
	if (store == NULL)
		abort();
	atexit(store_close);
	for (unsigned k = 0; k < CDN_ARRAY_LEN(disk_sizes); k++) {
		uint8_t key[CACHE_HASH_LEN];
		struct cache_obj *o;

		disk_key(k, key);
		o = cache_obj_new(key, 0, 200, &d, 1700000000, "u", 1, fields,
		    sizeof(fields) - 1, "", 0);
		if (o == NULL)
			abort();
		for (uint64_t off = 0; off < disk_sizes[k];) {
			size_t n = sizeof(buf);

			if (n > disk_sizes[k] - off)
				n = (size_t)(disk_sizes[k] - off);
			for (size_t i = 0; i < n; i++)
				buf[i] = disk_byte(off + i);
			if (cache_obj_append(o, buf, n) != CDN_OK)
				abort();
			off += n;
		}
		cache_store_put(store, o);
		cache_obj_unref(&o);
	}
	cache_store_sync(store);
}

struct piece_check {
	uint64_t n;    /* response body bytes so far */
	uint64_t next; /* single range: the representation offset expected */
	int single;
};

static void
check_piece(void *arg, const unsigned char *p, size_t n, int in_obj)
{
	struct piece_check *c = arg;

	if (c->single) {
		if (!in_obj)
			abort();
		for (size_t i = 0; i < n; i++)
			if (p[i] != disk_byte(c->next + i))
				abort();
		c->next += n;
	}
	c->n += n;
}

/* Answer <range> from each stored object as a range of an object on disk
 * is answered: its metadata, then the chunks the plan covers. */
static void
ranges_from_disk(const char *range, size_t rlen, int allow_multi)
{
	if (store == NULL)
		store_open();
	for (unsigned k = 0; k < CDN_ARRAY_LEN(disk_sizes); k++) {
		uint8_t key[CACHE_HASH_LEN];
		struct cache_obj *o = NULL;
		struct edge_range_plan p;
		struct piece_check c = {0, 0, 0};
		int from_memory = -1;

		disk_key(k, key);
		if (cache_store_get_meta(store, key, 0, &o, &from_memory) !=
		        CDN_OK ||
		    from_memory || o->body_len != disk_sizes[k])
			abort();
		edge_range_plan_init(&p, range, rlen, o->body_len, "text/plain",
		    10, allow_multi);
		if (edge_range_load_chunks(store, &p, o) != CDN_OK)
			abort();
		c.single = p.status == 206 && !p.multipart;
		if (c.single)
			c.next = p.segs[0].off;
		edge_range_obj_pieces(&p, o, check_piece, &c);
		if (c.n != p.content_length)
			abort();
		edge_range_plan_fini(&p);
		cache_obj_unref(&o);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *part[5] = {NULL};
	size_t plen[5] = {0};
	size_t at = 0;
	unsigned k = 0;
	uint64_t total = 0;
	struct http_range r[HTTP_RANGE_MAX];
	unsigned n = 0;
	static unsigned char body[1 << 16];

	for (size_t i = 0; i <= size && k < 5; i++) {
		if (i == size || data[i] == 0xff) {
			part[k] = data + at;
			plen[k] = i - at;
			k++;
			at = i + 1;
		}
	}
	for (size_t i = 0; i < plen[1] && i < 8; i++)
		total = (total << 8) | part[1][i];
	total %= sizeof(body) + 1;

	if (part[0] != NULL &&
	    http_range_parse((const char *)part[0], plen[0], total, r, &n) ==
	        HTTP_RANGE_OK) {
		if (n == 0 || n > HTTP_RANGE_MAX)
			abort();
		for (unsigned i = 0; i < n; i++) {
			if (r[i].first > r[i].last || r[i].last >= total)
				abort();
			if (i > 0 && r[i].first <= r[i - 1].last + 1)
				abort();
		}
	}
	if (part[0] != NULL) {
		struct edge_range_plan p;
		struct edge_range_cursor c = {0, 0};
		struct feed_out f = {0, body, 0, 0};
		size_t step = plen[0] % 7 + 1, off;

		for (size_t i = 0; i < sizeof(body); i++)
			body[i] = (unsigned char)(i * 7 + (i >> 8));
		edge_range_plan_init(&p, (const char *)part[0], plen[0], total,
		    "text/plain", 10, plen[2] % 2);
		f.single = p.status == 206 && !p.multipart;
		if (f.single)
			f.first = p.segs[0].off;
		for (off = 0; off < total; off += step)
			edge_range_feed(&p, &c, off, body + off,
			    total - off < step ? total - off : step, count_out,
			    &f);
		if (total == 0)
			edge_range_feed(&p, &c, 0, body, 0, count_out, &f);
		if (f.n != p.content_length)
			abort();
		if (part[2] != NULL) {
			static const char fields[] =
			    "ETag: \"abc\"\r\n"
			    "Last-Modified: Tue, 15 Nov 1994 08:12:31 GMT\r\n";

			(void)edge_if_range_ok((const char *)part[2], plen[2],
			    fields, sizeof(fields) - 1);
		}
		edge_range_plan_fini(&p);
		ranges_from_disk((const char *)part[0], plen[0], plen[2] % 2);
	}
	if (part[3] != NULL) {
		struct cache_accept_enc ae;
		enum cache_enc order[CACHE_ENC_COUNT];
		unsigned m, seen = 0;

		cache_accept_enc_init(&ae);
		cache_accept_enc_parse(&ae, (const char *)part[3], plen[3]);
		m = cache_accept_enc_order(&ae, order);
		if (m > CACHE_ENC_COUNT)
			abort();
		for (unsigned i = 0; i < m; i++) {
			if (seen & (1u << order[i]))
				abort();
			seen |= 1u << order[i];
		}
	}
	if (part[4] != NULL) {
		const void *segs[1] = {part[4]};
		size_t lens[1] = {plen[4]};
		struct cache_decode_limits lim = {
		    .max_size = 1 << 20, .max_ratio = 50};

		for (int e = CACHE_ENC_GZIP; e <= CACHE_ENC_BR; e++) {
			decoded = 0;
			(void)cache_decode((enum cache_enc)e, segs, lens, 1,
			    &lim, count_sink, NULL);
			if (decoded > lim.max_size)
				abort();
		}
	}
	return 0;
}
