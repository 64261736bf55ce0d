/*
 * Unit tests of content codings (cache/cache_encode.c, cache_negotiate.c,
 * cache_variant.c): gzip and brotli round trips over bodies split into
 * segments at awkward places, the "not smaller" stop, compression bomb
 * caps on size and ratio, corrupt and truncated input, several gzip
 * members, the Accept-Encoding negotiation table, the per-coding head
 * (ETag, Content-Encoding, Vary), cache_variant_make on real objects, and
 * the compression pool against a real store (variants stored under the
 * source's key; none made for a source removed or replaced meanwhile).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "cache/cache.h"
#include "cache/cache_int.h"
/* The compression pool's statics, to hold its jobs. */
#include "cache/cache_variant.c"
#include "common/cdn_strbuf.h"
#include "tests/unit/tap.h"
#include "tests/unit/tmptree.h"

struct buf {
	unsigned char *p;
	size_t len, cap;
};

/* Hold the pool's jobs (1) or let them run (0). */
static void
pool_pause(struct cache_variants *v, int paused)
{
	MAGIC_CHECK(v, CACHE_VARIANTS_MAGIC);
	pthread_mutex_lock(&v->mtx);
	v->paused = paused;
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->mtx);
}

static int
sink_buf(void *arg, const void *p, size_t len)
{
	struct buf *b = arg;

	if (b->len + len > b->cap) {
		b->cap = (b->len + len) * 2;
		b->p = realloc(b->p, b->cap);
		if (b->p == NULL)
			return CDN_ENOMEM;
	}
	memcpy(b->p + b->len, p, len);
	b->len += len;
	return CDN_OK;
}

/* Text-like bytes: words from a small vocabulary, reproducible. */
static unsigned char *
make_text(size_t len)
{
	static const char *const w[] = {"edge ", "cache ", "origin ", "range ",
	    "variant\n", "gzip ", "brotli ", "header "};
	unsigned char *p = malloc(len + 1);
	size_t n = 0;
	unsigned i = 0;

	while (n < len) {
		const char *s = w[(i * 7 + i / 5) % 8];
		size_t k = strlen(s);

		if (k > len - n)
			k = len - n;
		memcpy(p + n, s, k);
		n += k;
		i++;
	}
	return p;
}

/* Random bytes (incompressible), from a fixed-seed xorshift. */
static unsigned char *
make_random(size_t len)
{
	unsigned char *p = malloc(len + 1);
	uint64_t x = 88172645463325252ull;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (unsigned char)x;
	}
	return p;
}

/* Split <p> into segments of <seg> bytes. */
static unsigned
split(const unsigned char *p, size_t len, size_t seg, const void **segs,
    size_t *lens, unsigned cap)
{
	unsigned n = 0;

	for (size_t off = 0; off < len && n < cap; off += seg, n++) {
		segs[n] = p + off;
		lens[n] = len - off < seg ? len - off : seg;
	}
	return n;
}

static void
round_trip(enum cache_enc enc, int level, size_t len, size_t seg)
{
	static const void *segs[65536];
	static size_t lens[65536];
	struct cache_decode_limits lim = {
	    .max_size = UINT64_C(1) << 32, .max_ratio = 0};
	struct buf c = {0}, d = {0};
	unsigned char *text = make_text(len);
	unsigned n = split(text, len, seg, segs, lens, 65536);
	int rc;

	rc = cache_encode(enc, level, segs, lens, n, UINT64_MAX, sink_buf, &c);
	is_int(rc, CDN_OK, "%s-%d encode %zu bytes in %zu-byte segments",
	    cache_enc_name(enc), level, len, seg);
	ok(len < 1024 || c.len < len / 4, "%s of %zu text bytes: %zu bytes",
	    cache_enc_name(enc), len, c.len);
	n = split(c.p, c.len, seg / 3 + 1, segs, lens, 65536);
	rc = cache_decode(enc, segs, lens, n, &lim, sink_buf, &d);
	is_int(rc, CDN_OK, "%s decodes (input in %zu-byte segments)",
	    cache_enc_name(enc), seg / 3 + 1);
	ok(d.len == len && (len == 0 || memcmp(d.p, text, len) == 0),
	    "%s round trip of %zu bytes is exact", cache_enc_name(enc), len);
	free(c.p);
	free(d.p);
	free(text);
}

static void
test_round_trips(void)
{
	size_t sizes[] = {0, 1, 100, 4096, 65536 + 17, 3 * 1024 * 1024 + 5};

	for (size_t i = 0; i < CDN_ARRAY_LEN(sizes); i++) {
		round_trip(CACHE_ENC_GZIP, 6, sizes[i], 256 * 1024);
		round_trip(CACHE_ENC_BR, 5, sizes[i], 256 * 1024);
	}
	round_trip(CACHE_ENC_GZIP, 1, 100000, 7);
	round_trip(CACHE_ENC_GZIP, 9, 100000, 1000);
	round_trip(CACHE_ENC_BR, 2, 100000, 7);
	round_trip(CACHE_ENC_BR, 1, 1000000, CACHE_CHUNK_SIZE);
	round_trip(CACHE_ENC_BR, 11, 100000, 1000);
}

static void
test_not_smaller(void)
{
	const void *segs[1];
	size_t lens[1];
	unsigned char *r = make_random(100000);
	struct buf c = {0};
	int rc;

	segs[0] = r;
	lens[0] = 100000;
	rc = cache_encode(
	    CACHE_ENC_GZIP, 6, segs, lens, 1, 100000 - 1, sink_buf, &c);
	is_int(rc, CDN_ELIMIT, "gzip of random bytes: not smaller, stopped");
	ok(c.len <= 100000 - 1, "stopped at the limit (%zu bytes out)", c.len);
	free(c.p);
	c = (struct buf){0};
	rc = cache_encode(
	    CACHE_ENC_BR, 5, segs, lens, 1, 100000 - 1, sink_buf, &c);
	is_int(rc, CDN_ELIMIT, "brotli of random bytes: not smaller, stopped");
	free(c.p);
	free(r);
}

/* A gzip member of <n> zero bytes. */
static struct buf
gzip_zeros(size_t n)
{
	static unsigned char zero[65536];
	const void *segs[1] = {zero};
	size_t lens[1];
	struct buf c = {0};
	z_stream z;
	unsigned char out[65536];
	int zr;

	(void)segs;
	(void)lens;
	memset(&z, 0, sizeof(z));
	deflateInit2(&z, 9, Z_DEFLATED, 31, 9, Z_DEFAULT_STRATEGY);
	while (n > 0) {
		size_t k = n < sizeof(zero) ? n : sizeof(zero);

		z.next_in = zero;
		z.avail_in = (uInt)k;
		n -= k;
		do {
			z.next_out = out;
			z.avail_out = sizeof(out);
			zr = deflate(&z, n == 0 ? Z_FINISH : Z_NO_FLUSH);
			sink_buf(&c, out, sizeof(out) - z.avail_out);
		} while (z.avail_out == 0 || (n == 0 && zr != Z_STREAM_END));
	}
	deflateEnd(&z);
	return c;
}

static int
sink_count(void *arg, const void *p, size_t len)
{
	(void)p;
	*(uint64_t *)arg += len;
	return CDN_OK;
}

static void
test_bombs(void)
{
	struct buf g = gzip_zeros(64u << 20), b = {0};
	const void *segs[1] = {g.p};
	size_t lens[1] = {g.len};
	struct cache_decode_limits lim;
	uint64_t out = 0;
	int rc;

	ok(g.len < (1u << 20), "64 MiB of zeros gzip to %zu bytes", g.len);
	lim.max_size = 8u << 20;
	lim.max_ratio = 0;
	rc =
	    cache_decode(CACHE_ENC_GZIP, segs, lens, 1, &lim, sink_count, &out);
	is_int(rc, CDN_ELIMIT, "gzip bomb stops at max_size");
	ok(out <= lim.max_size, "no more than max_size produced (%llu)",
	    (unsigned long long)out);
	lim.max_size = UINT64_C(1) << 40;
	lim.max_ratio = 100;
	out = 0;
	rc =
	    cache_decode(CACHE_ENC_GZIP, segs, lens, 1, &lim, sink_count, &out);
	is_int(rc, CDN_ELIMIT, "gzip bomb stops at max_ratio");
	ok(out <= (uint64_t)g.len * 100 + CACHE_DECODE_RATIO_FLOOR,
	    "no more than ratio x input produced (%llu)",
	    (unsigned long long)out);
	lim.max_ratio = 100000;
	out = 0;
	rc =
	    cache_decode(CACHE_ENC_GZIP, segs, lens, 1, &lim, sink_count, &out);
	is_int(rc, CDN_OK, "within generous caps it decodes");
	is_int(out, 64u << 20, "to all 64 MiB");

	/* Small bodies may inflate a lot: the ratio bites above 1 MiB. */
	free(g.p);
	g = gzip_zeros(512u << 10);
	segs[0] = g.p;
	lens[0] = g.len;
	lim.max_ratio = 2;
	out = 0;
	rc =
	    cache_decode(CACHE_ENC_GZIP, segs, lens, 1, &lim, sink_count, &out);
	is_int(rc, CDN_OK, "512 KiB of zeros pass a ratio cap of 2 (floor)");

	/* A brotli bomb. */
	{
		unsigned char *z = calloc(1, 16u << 20);
		const void *zs[1] = {z};
		size_t zl[1] = {16u << 20};

		rc = cache_encode(
		    CACHE_ENC_BR, 5, zs, zl, 1, UINT64_MAX, sink_buf, &b);
		is_int(
		    rc, CDN_OK, "16 MiB of zeros brotli to %zu bytes", b.len);
		segs[0] = b.p;
		lens[0] = b.len;
		lim.max_size = 1u << 20;
		lim.max_ratio = 0;
		out = 0;
		rc = cache_decode(
		    CACHE_ENC_BR, segs, lens, 1, &lim, sink_count, &out);
		is_int(rc, CDN_ELIMIT, "brotli bomb stops at max_size");
		free(z);
	}
	free(b.p);
	free(g.p);
}

static void
test_corrupt(void)
{
	unsigned char *text = make_text(50000);
	const void *segs[2];
	size_t lens[2];
	struct cache_decode_limits lim = {.max_size = 1u << 30};
	struct buf c = {0}, d = {0};
	int rc;

	segs[0] = text;
	lens[0] = 50000;
	rc = cache_encode(
	    CACHE_ENC_GZIP, 6, segs, lens, 1, UINT64_MAX, sink_buf, &c);
	is_int(rc, CDN_OK, "gzip encode");
	segs[0] = c.p;
	lens[0] = c.len - 5;
	rc = cache_decode(CACHE_ENC_GZIP, segs, lens, 1, &lim, sink_buf, &d);
	is_int(rc, CDN_EINVAL, "truncated gzip: CDN_EINVAL");
	/* Two members back to back (RFC 1952 §2.2). */
	d.len = 0;
	segs[0] = c.p;
	lens[0] = c.len;
	segs[1] = c.p;
	lens[1] = c.len;
	rc = cache_decode(CACHE_ENC_GZIP, segs, lens, 2, &lim, sink_buf, &d);
	is_int(rc, CDN_OK, "two gzip members decode");
	ok(d.len == 100000 && memcmp(d.p, text, 50000) == 0 &&
	        memcmp(d.p + 50000, text, 50000) == 0,
	    "to both bodies, in order");
	d.len = 0;
	c.p[c.len / 2] ^= 0x55;
	segs[0] = c.p;
	lens[0] = c.len;
	rc = cache_decode(CACHE_ENC_GZIP, segs, lens, 1, &lim, sink_buf, &d);
	is_int(rc, CDN_EINVAL, "corrupt gzip: CDN_EINVAL");
	d.len = 0;
	segs[0] = "not brotli at all, just text";
	lens[0] = strlen(segs[0]);
	rc = cache_decode(CACHE_ENC_BR, segs, lens, 1, &lim, sink_buf, &d);
	is_int(rc, CDN_EINVAL, "garbage as brotli: CDN_EINVAL");
	free(c.p);
	free(d.p);
	free(text);
}

/* The negotiation table: Accept-Encoding values and the order served. */
static void
test_negotiation(void)
{
	static const struct {
		const char *ae; /* NULL: no field */
		const char *want;
	} t[] = {
	    {NULL, "identity"},
	    {"", "identity"},
	    {"gzip", "gzip identity"},
	    {"gzip, br", "br gzip identity"},
	    {"br;q=0.5, gzip", "gzip identity br"},
	    {"gzip;q=0.8, br;q=0.9", "identity br gzip"},
	    {"gzip;q=0", "identity"},
	    {"gzip, identity;q=0", "gzip"},
	    {"*", "br gzip identity"},
	    {"*;q=0", ""},
	    {"*;q=0, identity", "identity"},
	    {"br;q=0, *", "gzip identity"},
	    {"identity;q=0", ""},
	    {"identity;q=0, *;q=0.1", "br gzip"},
	    {"x-gzip", "gzip identity"},
	    {"GZIP ; Q=0.5", "identity gzip"},
	    {"deflate, compress", "identity"},
	    {"gzip;q=1.5, br", "br identity"}, /* bad q: member skipped */
	    {"gzip;q=0.001", "identity gzip"},
	    {"gzip;level=1", "identity"},
	    {" , ,gzip,, ", "gzip identity"},
	    {"br;q=1.000, gzip;q=1", "br gzip identity"},
	};
	char got[64];
	enum cache_enc order[CACHE_ENC_COUNT];

	for (size_t i = 0; i < CDN_ARRAY_LEN(t); i++) {
		struct cache_accept_enc ae;
		unsigned n;

		cache_accept_enc_init(&ae);
		if (t[i].ae != NULL)
			cache_accept_enc_parse(&ae, t[i].ae, strlen(t[i].ae));
		n = cache_accept_enc_order(&ae, order);
		got[0] = '\0';
		for (unsigned k = 0; k < n; k++) {
			if (k > 0)
				strcat(got, " ");
			strcat(got, cache_enc_name(order[k]));
		}
		is_str(got, t[i].want, "Accept-Encoding: %s",
		    t[i].ae != NULL ? t[i].ae : "(none)");
	}
	/* Several field lines add up. */
	{
		struct cache_accept_enc ae;
		unsigned n;

		cache_accept_enc_init(&ae);
		cache_accept_enc_parse(&ae, "gzip", 4);
		cache_accept_enc_parse(&ae, "br;q=0.5", 8);
		n = cache_accept_enc_order(&ae, order);
		ok(n == 3 && order[0] == CACHE_ENC_GZIP &&
		        order[1] == CACHE_ENC_IDENTITY &&
		        order[2] == CACHE_ENC_BR,
		    "two Accept-Encoding lines combine");
	}
	is_int(cache_enc_parse("gzip", 4), CACHE_ENC_GZIP, "gzip");
	is_int(cache_enc_parse(" br ", 4), CACHE_ENC_BR, "br");
	is_int(cache_enc_parse("", 0), CACHE_ENC_IDENTITY, "empty: identity");
	is_int(cache_enc_parse("gzip, br", 8), -1, "two codings: not stored");
	is_int(cache_enc_parse("deflate", 7), -1, "deflate: not known");
	ok(cache_variant_id(0, CACHE_ENC_IDENTITY) == 0,
	    "identity without Vary is variant 0");
	ok(cache_variant_enc(cache_variant_id(UINT64_MAX, CACHE_ENC_BR)) ==
	        CACHE_ENC_BR,
	    "the coding is the top byte");
	ok((cache_variant_id(0x1234, CACHE_ENC_GZIP) &
	       CACHE_VARIANT_VARY_MASK) == 0x1234,
	    "the Vary key keeps its low 56 bits");
}

/* Codings the node does not know: stored as they came (CACHE_ENC_OTHER),
 * served to whom RFC 9110 §12.5.3 says takes them. */
static void
test_unknown_codings(void)
{
	static const struct {
		const char *head;
		int enc;
	} hc[] = {
	    {"Content-Type: a/b\r\n", CACHE_ENC_IDENTITY},
	    {"Content-Encoding: \r\n", CACHE_ENC_IDENTITY},
	    {"content-encoding: GZIP\r\n", CACHE_ENC_GZIP},
	    {"Content-Encoding: zstd\r\n", CACHE_ENC_OTHER},
	    {"Content-Encoding: deflate\r\n", CACHE_ENC_OTHER},
	    {"Content-Encoding: gzip, br\r\n", CACHE_ENC_OTHER},
	    {"Content-Encoding: gzip\r\nContent-Encoding: br\r\n",
	        CACHE_ENC_OTHER},
	    {"Content-Encoding: gzip\r\nContent-Encoding:\r\n", CACHE_ENC_GZIP},
	};
	static const struct {
		const char *ae[2]; /* NULL: fewer lines */
		const char *ce;
		int takes;
	} tc[] = {
	    {{NULL, NULL}, "zstd", 1}, /* no Accept-Encoding: any coding */
	    {{"zstd", NULL}, "zstd", 1},
	    {{"ZStd;q=0.001", NULL}, "zstd", 1},
	    {{"zstd;q=0", NULL}, "zstd", 0},
	    {{"zstd;Q=0.000", NULL}, "zstd", 0},
	    {{"gzip, br", NULL}, "zstd", 0}, /* not named, no "*" */
	    {{"", NULL}, "zstd", 0},         /* an empty field: none */
	    {{"*", NULL}, "zstd", 1},
	    {{"*;q=0", NULL}, "zstd", 0},
	    {{"*, zstd;q=0", NULL}, "zstd", 0},
	    {{"zstd;q=0, *", NULL}, "zstd", 0},
	    {{"*;q=0, zstd", NULL}, "zstd", 1},
	    {{"zstd;q=0", "zstd"}, "zstd", 1}, /* lines in order: the last */
	    {{"zstd;q=2", NULL}, "zstd", 0},   /* malformed q: skipped */
	    {{"zstd;v=1", NULL}, "zstd", 0},   /* unknown parameter: skipped */
	    {{"gzip, zstd", NULL}, "gzip, zstd", 1},
	    {{"zstd", NULL}, "gzip, zstd", 0},
	    {{"x-gzip, deflate", NULL}, "gzip ,deflate", 1},
	    {{"gzip", "deflate;q=0.5"}, "gzip, deflate", 1},
	    {{"deflate", NULL}, "identity, deflate", 1},
	    {{"deflate, identity;q=0", NULL}, "identity, deflate", 0},
	    {{"gzip", NULL}, " , ", 1},
	};
	struct cache_field f[2];
	size_t i;
	unsigned n;

	for (i = 0; i < CDN_ARRAY_LEN(hc); i++)
		is_int(cache_enc_of_fields(hc[i].head, strlen(hc[i].head)),
		    hc[i].enc, "coding of head %zu", i);
	for (i = 0; i < CDN_ARRAY_LEN(tc); i++) {
		for (n = 0; n < 2 && tc[i].ae[n] != NULL; n++) {
			f[n].name = "Accept-Encoding";
			f[n].name_len = 15;
			f[n].value = tc[i].ae[n];
			f[n].value_len = strlen(tc[i].ae[n]);
		}
		is_int(cache_accept_enc_takes(f, n, tc[i].ce, strlen(tc[i].ce)),
		    tc[i].takes, "Accept-Encoding [%s|%s] takes [%s]",
		    tc[i].ae[0] != NULL ? tc[i].ae[0] : "-",
		    tc[i].ae[1] != NULL ? tc[i].ae[1] : "-", tc[i].ce);
	}
	ok(cache_variant_enc(cache_variant_id(UINT64_MAX, CACHE_ENC_OTHER)) ==
	        CACHE_ENC_OTHER,
	    "an unknown coding has a variant id of its own");
}

static void
fields_case(const char *in, enum cache_enc enc, const char *want)
{
	struct cdn_strbuf out = {.max = 0};

	cache_variant_fields(in, strlen(in), enc, &out);
	is_str(out.p != NULL ? out.p : "", want, "head for %s of [%s]",
	    cache_enc_name(enc), in);
	cdn_sb_free(&out);
}

static void
test_fields(void)
{
	fields_case("ETag: \"abc\"\r\nContent-Type: text/html\r\n",
	    CACHE_ENC_GZIP,
	    "ETag: \"abc-gzip\"\r\nContent-Type: text/html\r\n"
	    "Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n");
	fields_case("ETag: W/\"x\"\r\nVary: Cookie\r\n", CACHE_ENC_BR,
	    "ETag: W/\"x-br\"\r\nVary: Cookie, Accept-Encoding\r\n"
	    "Content-Encoding: br\r\n");
	fields_case("Content-Encoding: gzip\r\nETag: \"g\"\r\n"
	            "Vary: accept-encoding\r\nContent-MD5: xyz\r\n",
	    CACHE_ENC_IDENTITY,
	    "ETag: \"g-identity\"\r\nVary: accept-encoding\r\n");
	fields_case("Vary: *\r\n", CACHE_ENC_GZIP,
	    "Vary: *\r\nContent-Encoding: gzip\r\n");
	fields_case("ETag: broken\r\n", CACHE_ENC_GZIP,
	    "ETag: \"broken-gzip\"\r\nContent-Encoding: gzip\r\n"
	    "Vary: Accept-Encoding\r\n");
}

static void
test_make(void)
{
	uint8_t key[CACHE_HASH_LEN] = {1, 2, 3};
	struct cache_decision d = {.storable = 1, .freshness_s = 60};
	const char *f = "Content-Type: text/plain\r\nETag: \"e\"\r\n";
	unsigned char *text = make_text(600 * 1024);
	struct cache_decode_limits lim = {.max_size = 1u << 30};
	struct cache_obj *src, *gz = NULL, *id = NULL, *br = NULL;
	int rc;

	src = cache_obj_new(key, cache_variant_id(77, CACHE_ENC_IDENTITY), 200,
	    &d, 1000, "h/p", 3, f, strlen(f), "Cookie", 6);
	ok(src != NULL && cache_obj_append(src, text, 600 * 1024) == CDN_OK,
	    "source object of 600 KiB (3 chunks)");
	rc = cache_variant_make(src, CACHE_ENC_GZIP, 6, NULL, &gz);
	is_int(rc, CDN_OK, "gzip variant made");
	ok(gz->d.derived && gz->d.freshness_s == 60 &&
	        gz->response_time == 1000,
	    "derived, same freshness");
	ok(cache_variant_enc(gz->variant) == CACHE_ENC_GZIP &&
	        (gz->variant & CACHE_VARIANT_VARY_MASK) == 77,
	    "variant id: gzip, same Vary key");
	ok(memcmp(gz->key, key, CACHE_HASH_LEN) == 0, "same primary key");
	ok(gz->body_len < src->body_len / 4, "smaller (%llu bytes)",
	    (unsigned long long)gz->body_len);
	rc = cache_variant_make(src, CACHE_ENC_BR, 5, NULL, &br);
	is_int(rc, CDN_OK, "br variant made");
	/* The origin-coded case: decode the gzip one back. */
	gz->d.derived = 0;
	rc = cache_variant_make(gz, CACHE_ENC_IDENTITY, 0, &lim, &id);
	is_int(rc, CDN_OK, "identity decoded from gzip");
	ok(id->body_len == src->body_len, "same length");
	{
		int same = id->nchunks == src->nchunks;

		for (uint32_t i = 0; same && i < id->nchunks; i++) {
			size_t n = i + 1 < id->nchunks
			    ? CACHE_CHUNK_SIZE
			    : (size_t)(id->body_len -
			          (uint64_t)i * CACHE_CHUNK_SIZE);

			same = memcmp(id->chunks[i], src->chunks[i], n) == 0;
		}
		ok(same, "identical bytes, chunk by chunk");
	}
	lim.max_size = 1000;
	cache_obj_unref(&id);
	rc = cache_variant_make(gz, CACHE_ENC_IDENTITY, 0, &lim, &id);
	is_int(rc, CDN_ELIMIT, "decode over its cap: CDN_ELIMIT");
	ok(id == NULL, "and no object");
	cache_obj_unref(&gz);
	cache_obj_unref(&br);
	cache_obj_unref(&src);
	free(text);
}

static void
wait_stats(struct cache_variants *v, struct cache_variant_stats *st,
    uint64_t made, uint64_t superseded)
{
	struct timespec ts = {0, 10 * 1000 * 1000};

	/* Bounded: 10 s. */
	for (int i = 0; i < 1000; i++) {
		cache_variants_stats(v, st);
		if (st->made >= made && st->superseded >= superseded &&
		    st->queued ==
		        st->made + st->not_smaller + st->failed +
		            st->superseded)
			return;
		nanosleep(&ts, NULL);
	}
}

static void
test_pool(void)
{
	char dir[] = "/tmp/t_cache_encode.XXXXXX";
	uint8_t key[CACHE_HASH_LEN] = {9, 8, 7};
	struct cache_decision d = {.storable = 1, .freshness_s = 60};
	const char *f = "Content-Type: text/plain\r\n";
	unsigned char *text = make_text(300000);
	struct cache_store_conf sc = {.disk_bytes = 64u << 20,
	    .memory_bytes = 16u << 20,
	    .max_object_bytes = 8u << 20,
	    .high_water_pct = 90,
	    .low_water_pct = 80};
	struct cache_variant_conf vc = {.gzip_level = 6,
	    .brotli_level = 5,
	    .threads = 2,
	    .queue_bytes = 64u << 20};
	struct cache_decode_limits lim = {.max_size = 1u << 30};
	struct cache_variant_stats st;
	struct cache_store *s;
	struct cache_variants *v;
	struct cache_obj *src, *other, *gz = NULL, *id = NULL;
	int rc;

	ok(mkdtemp(dir) != NULL, "temporary store directory");
	sc.dir = dir;
	s = cache_store_open(&sc);
	ok(s != NULL, "store opened");
	v = cache_variants_new(s, &vc);
	src =
	    cache_obj_new(key, 0, 200, &d, 1000, "h/p", 3, f, strlen(f), "", 0);
	ok(cache_obj_append(src, text, 300000) == CDN_OK, "source body");
	cache_store_put(s, src);
	ok(cache_variants_submit(v, src), "submitted");
	wait_stats(v, &st, 2, 0);
	is_int(st.made, 2, "gzip and br made");
	is_int(st.superseded, 0, "none superseded");
	ok(st.out_bytes < st.in_bytes / 4, "they are smaller (%llu of %llu)",
	    (unsigned long long)st.out_bytes, (unsigned long long)st.in_bytes);
	rc = cache_store_get(
	    s, key, cache_variant_id(0, CACHE_ENC_GZIP), &gz, NULL);
	is_int(rc, CDN_OK, "the gzip variant is stored under the same key");
	if (rc == CDN_OK) {
		gz->d.derived = 0; /* decode it as if the origin had sent it */
		rc = cache_variant_make(gz, CACHE_ENC_IDENTITY, 0, &lim, &id);
		ok(rc == CDN_OK && id->body_len == 300000,
		    "and decodes to the source length");
		cache_obj_unref(&gz);
		if (id != NULL)
			cache_obj_unref(&id);
	}

	/* A source that is not (or no longer) the stored one. */
	other =
	    cache_obj_new(key, 0, 200, &d, 1001, "h/p", 3, f, strlen(f), "", 0);
	ok(cache_obj_append(other, text, 300000) == CDN_OK, "another body");
	ok(cache_variants_submit(v, other), "submitted");
	wait_stats(v, &st, 2, 2);
	is_int(st.superseded, 2, "a replaced source makes no variant");
	/* Removed while its job waits. */
	pool_pause(v, 1);
	ok(cache_variants_submit(v, src), "submitted, pool held");
	cache_store_remove(s, key);
	cache_store_sync(s); /* committed: no tombstone, nothing queued */
	pool_pause(v, 0);
	wait_stats(v, &st, 2, 4);
	is_int(st.superseded, 4, "a removed source makes no variant");
	is_int(st.made, 2, "still two made");
	rc = cache_store_get(
	    s, key, cache_variant_id(0, CACHE_ENC_BR), &gz, NULL);
	is_int(rc, CDN_NOTFOUND, "removal took the variants too");

	cache_variants_free(&v);
	cache_store_close(&s);
	cache_obj_unref(&src);
	cache_obj_unref(&other);
	tmptree_remove(dir);
	free(text);
}

int
main(void)
{
	plan_no_plan();
	test_round_trips();
	test_not_smaller();
	test_bombs();
	test_corrupt();
	test_negotiation();
	test_unknown_codings();
	test_fields();
	test_make();
	test_pool();
	return done_testing();
}
