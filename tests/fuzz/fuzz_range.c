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
 *   - the negotiated order holds no coding twice and no q=0 coding;
 *   - decoding never produces more than its cap.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "edge/edge_variant.h"
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
