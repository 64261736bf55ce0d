/*
 * libFuzzer target for Accept-Encoding (cache/cache_negotiate.c): the
 * parser and order of the codings the node knows, and
 * cache_accept_enc_takes() for the codings it does not, which are two
 * readings of one RFC 9110 §12.5.3 and must agree.
 *
 * The input is cut at the first 0xff byte into [0] Accept-Encoding lines
 * (split at LF) and [1] a Content-Encoding value.  Beyond the sanitizers'
 * checks it asserts:
 *   - the order holds no coding twice, none with q = 0, best q first;
 *   - the lines parsed one by one equal them joined by commas (RFC 9110
 *     §5.3), for the order and for takes;
 *   - for a Content-Encoding of one known coding, takes says yes exactly
 *     when the order offers that coding (with at least one line);
 *   - a list of codings is taken exactly when each of its members is;
 *   - without any Accept-Encoding line every coding is taken.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "common/cdn.h"

/* Compiled in for coverage, as fuzz_cache_cc.c does. */
#include "cache/cache_negotiate.c"

#define FZ_LINES 16
#define FZ_JOIN  65536

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* RFC 9110 §12.5.3: a coding's weight, named or by "*"; identity is
 * acceptable unless excluded. */
static int
fz_q(const struct cache_accept_enc *ae, enum cache_enc enc)
{
	if (ae->q[enc] >= 0)
		return ae->q[enc];
	if (ae->q_star >= 0)
		return ae->q_star;
	return enc == CACHE_ENC_IDENTITY ? 1000 : 0;
}

static unsigned
fz_order(const struct cache_field *f, unsigned n, enum cache_enc *order)
{
	struct cache_accept_enc ae;
	unsigned m, seen = 0;

	cache_accept_enc_init(&ae);
	for (unsigned i = 0; i < n; i++)
		cache_accept_enc_parse(&ae, f[i].value, f[i].value_len);
	m = cache_accept_enc_order(&ae, order);
	CDN_ASSERT(m <= CACHE_ENC_COUNT);
	CDN_ASSERT(n > 0 || (m == 1 && order[0] == CACHE_ENC_IDENTITY));
	for (unsigned i = 0; i < m; i++) {
		CDN_ASSERT((unsigned)order[i] < CACHE_ENC_COUNT);
		CDN_ASSERT(!(seen & (1u << order[i])));
		seen |= 1u << order[i];
		if (n == 0)
			continue;
		CDN_ASSERT(fz_q(&ae, order[i]) > 0);
		if (i > 0)
			CDN_ASSERT(
			    fz_q(&ae, order[i - 1]) >= fz_q(&ae, order[i]));
	}
	return m;
}

static int
fz_offers(const enum cache_enc *order, unsigned m, enum cache_enc enc)
{
	for (unsigned i = 0; i < m; i++)
		if (order[i] == enc)
			return 1;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const known[] = {
	    "gzip", "GZip", "x-gzip", "br", "BR", "identity", "Identity"};
	static char joined[FZ_JOIN];
	struct cache_field f[FZ_LINES], one;
	enum cache_enc order[CACHE_ENC_COUNT], jorder[CACHE_ENC_COUNT];
	const char *v = size > 0 ? (const char *)data : "", *end, *p, *nl;
	const char *ce, *sep;
	size_t celen, jl = 0;
	unsigned n = 0, m, jm;
	int takes, each;

	sep = memchr(v, 0xff, size);
	end = sep != NULL ? sep : v + size;
	ce = sep != NULL ? sep + 1 : "gzip, zstd";
	celen = sep != NULL ? size - (size_t)(sep + 1 - v) : 10;

	for (p = v; p < end && n < FZ_LINES; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			nl = end;
		if (jl + (size_t)(nl - p) + 1 > sizeof(joined))
			break;
		f[n].name = "Accept-Encoding";
		f[n].name_len = 15;
		f[n].value = p;
		f[n].value_len = (size_t)(nl - p);
		if (jl > 0)
			joined[jl++] = ',';
		memcpy(joined + jl, p, f[n].value_len);
		jl += f[n].value_len;
		n++;
	}
	one.name = "Accept-Encoding";
	one.name_len = 15;
	one.value = joined;
	one.value_len = jl;

	m = fz_order(f, n, order);
	if (n > 0) {
		jm = fz_order(&one, 1, jorder);
		CDN_ASSERT(
		    jm == m && memcmp(jorder, order, m * sizeof(*order)) == 0);
	}

	/* One known coding: takes agrees with the order. */
	for (unsigned i = 0; i < CDN_ARRAY_LEN(known); i++) {
		int enc = cache_enc_parse(known[i], strlen(known[i]));

		takes =
		    cache_accept_enc_takes(f, n, known[i], strlen(known[i]));
		CDN_ASSERT(takes == 0 || takes == 1);
		if (n == 0)
			CDN_ASSERT(takes);
		else
			CDN_ASSERT(
			    takes == fz_offers(order, m, (enum cache_enc)enc));
	}

	/* The fuzzed Content-Encoding: as a whole, joined, and member by
	 * member. */
	takes = cache_accept_enc_takes(f, n, ce, celen);
	CDN_ASSERT(takes == 0 || takes == 1);
	if (n == 0)
		CDN_ASSERT(takes);
	else
		CDN_ASSERT(cache_accept_enc_takes(&one, 1, ce, celen) == takes);
	each = 1;
	for (p = ce; p < ce + celen; p = nl + 1) {
		nl = memchr(p, ',', (size_t)(ce + celen - p));
		if (nl == NULL)
			nl = ce + celen;
		if (!cache_accept_enc_takes(f, n, p, (size_t)(nl - p)))
			each = 0;
	}
	CDN_ASSERT(takes == each);
	return 0;
}
