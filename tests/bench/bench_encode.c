/*
 * Micro-benchmark of the coders (cache/cache_encode.c): MiB/s of gzip
 * (levels 1, 6, 9) and brotli (qualities 1, 5, 9, 11) over text-like
 * bodies of 16 KiB and 1 MiB, fed as 256 KiB chunks as the variant pool
 * feeds them, the size ratio reached, and MiB/s of decoding.  This is what
 * a compression thread does per variant; it says which bodies are cheap
 * enough to compress right after a store.  Each case runs for a bounded
 * time (0.5 s, or the seconds given as the only argument).
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "common/cdn.h"

struct sink {
	unsigned char *p;
	size_t len, cap;
};

static int
sink_mem(void *arg, const void *p, size_t len)
{
	struct sink *s = arg;

	if (s->len + len > s->cap) {
		s->cap = (s->len + len) * 2;
		s->p = realloc(s->p, s->cap);
		if (s->p == NULL)
			return CDN_ENOMEM;
	}
	memcpy(s->p + s->len, p, len);
	s->len += len;
	return CDN_OK;
}

/* HTML-like text: tags, words and numbers from a fixed-seed generator. */
static unsigned char *
make_body(size_t len)
{
	static const char *const w[] = {"<div class=\"item\">", "</div>\n",
	    "<a href=\"/p/", "\">", "</a>", " the ", " cache ", " edge ",
	    " origin ", " request ", "<span>", "</span>", " and ", " of "};
	unsigned char *p = malloc(len);
	uint64_t x = 0x9e3779b97f4a7c15ull;
	size_t n = 0;

	while (n < len) {
		char num[24];
		const char *s;
		size_t k;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		if (x % 5 == 0) {
			snprintf(num, sizeof(num), "%llu",
			    (unsigned long long)(x % 100000));
			s = num;
		} else {
			s = w[x % CDN_ARRAY_LEN(w)];
		}
		k = strlen(s);
		if (k > len - n)
			k = len - n;
		memcpy(p + n, s, k);
		n += k;
	}
	return p;
}

static void
run(enum cache_enc enc, int level, const unsigned char *body, size_t len,
    double secs)
{
	const void *segs[8];
	size_t lens[8];
	unsigned nseg = 0;
	struct cache_decode_limits lim = {.max_size = UINT64_C(1) << 32};
	struct sink s = {0};
	uint64_t t0, t, n = 0, dn = 0;
	double enc_s, dec_s;
	size_t out = 0;

	for (size_t off = 0; off < len; off += CACHE_CHUNK_SIZE) {
		segs[nseg] = body + off;
		lens[nseg++] =
		    len - off < CACHE_CHUNK_SIZE ? len - off : CACHE_CHUNK_SIZE;
	}
	t0 = cdn_now_ns();
	do {
		s.len = 0;
		if (cache_encode(enc, level, segs, lens, nseg, UINT64_MAX,
		        sink_mem, &s) != CDN_OK)
			abort();
		out = s.len;
		n++;
		t = cdn_now_ns();
	} while ((double)(t - t0) < secs * 1e9);
	enc_s = (double)(t - t0) / 1e9 / (double)n;
	{
		const void *cs[1] = {NULL};
		size_t cl[1] = {out};
		unsigned char *copy = malloc(out);
		struct sink d = {0};

		memcpy(copy, s.p, out);
		cs[0] = copy;
		t0 = cdn_now_ns();
		do {
			d.len = 0;
			if (cache_decode(enc, cs, cl, 1, &lim, sink_mem, &d) !=
			        CDN_OK ||
			    d.len != len)
				abort();
			dn++;
			t = cdn_now_ns();
		} while ((double)(t - t0) < secs * 1e9);
		dec_s = (double)(t - t0) / 1e9 / (double)dn;
		free(d.p);
		free(copy);
	}
	printf("%-5s %2d  %8zu B -> %7zu B (%5.1f%%)  encode %8.1f MiB/s "
	       "(%8.1f us)  decode %8.1f MiB/s\n",
	    cache_enc_name(enc), level, len, out,
	    100.0 * (double)out / (double)len, (double)len / (1 << 20) / enc_s,
	    enc_s * 1e6, (double)len / (1 << 20) / dec_s);
	free(s.p);
}

int
main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 0.5;
	size_t sizes[] = {16 * 1024, 1024 * 1024};
	int gz[] = {1, 6, 9}, br[] = {1, 5, 9, 11};

	if (secs <= 0)
		secs = 0.5;
	for (size_t i = 0; i < CDN_ARRAY_LEN(sizes); i++) {
		unsigned char *body = make_body(sizes[i]);

		for (size_t k = 0; k < CDN_ARRAY_LEN(gz); k++)
			run(CACHE_ENC_GZIP, gz[k], body, sizes[i], secs);
		for (size_t k = 0; k < CDN_ARRAY_LEN(br); k++)
			run(CACHE_ENC_BR, br[k], body, sizes[i], secs);
		free(body);
	}
	return 0;
}
