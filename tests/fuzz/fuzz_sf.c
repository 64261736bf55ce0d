/*
 * libFuzzer target for Structured Field Dictionaries and the fields read
 * through them: cache/cache_sf.c (RFC 8941), cache_cdn_cc_parse()
 * (CDN-Cache-Control, RFC 9213) and the Age of a response head (RFC 9111
 * §5.1) in cache_exchange_parse_response().
 *
 * The input is cut at the first 0xff byte into [0] a Dictionary value and
 * [1] Age values, one per line.  Beyond the sanitizers' checks it asserts:
 *   - every member has a valid key, a known type, a number within RFC
 *     8941's range and text inside the value parsed;
 *   - a parsed dictionary, serialised again (RFC 8941 §4.1, members in
 *     order, parameters and inner-list items left out), parses back to
 *     the same dictionary, a repeated key keeping its last value;
 *   - CDN-Cache-Control fails whenever the dictionary does, and leaves
 *     nothing set when it fails; its numbers are delta-seconds; and read
 *     from a head over several lines it is the joined value's;
 *   - the Age of a head is its first non-empty member across the lines,
 *     as delta-seconds, else -1 (a reference written from the RFC text).
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "common/cdn.h"

/* Compiled in for coverage, as fuzz_cache_cc.c does. */
#include "cache/cache_policy.c"
#include "cache/cache_sf.c"

#define FZ_MEMBERS 64
#define FZ_BUF     65536
#define SF_NUM_MAX INT64_C(999999999999999)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz_dict {
	struct cache_sf_member m[FZ_MEMBERS];
	unsigned n;
	const char *lo, *hi; /* the value parsed */
};

static int
fz_collect(void *arg, const struct cache_sf_member *m)
{
	struct fz_dict *d = arg;
	unsigned i;

	CDN_ASSERT(m->key >= d->lo && m->key + m->key_len <= d->hi);
	CDN_ASSERT(m->key_len > 0);
	CDN_ASSERT(sf_lcalpha((unsigned char)m->key[0]) || m->key[0] == '*');
	for (i = 1; i < m->key_len; i++)
		CDN_ASSERT(sf_lcalpha((unsigned char)m->key[i]) ||
		    sf_digit((unsigned char)m->key[i]) ||
		    (m->key[i] != '\0' && strchr("_-.*", m->key[i]) != NULL));
	switch (m->type) {
	case CACHE_SF_INTEGER:
	case CACHE_SF_DECIMAL:
		CDN_ASSERT(m->num >= -SF_NUM_MAX && m->num <= SF_NUM_MAX);
		break;
	case CACHE_SF_BOOLEAN:
		CDN_ASSERT(m->num == 0 || m->num == 1);
		break;
	case CACHE_SF_STRING:
	case CACHE_SF_TOKEN:
	case CACHE_SF_BYTES:
		CDN_ASSERT(m->str_len == 0 ||
		    (m->str >= d->lo && m->str + m->str_len <= d->hi));
		CDN_ASSERT(m->type != CACHE_SF_TOKEN || m->str_len > 0);
		break;
	case CACHE_SF_INNER_LIST:
		break;
	default:
		CDN_ASSERT(!"a member type");
	}
	for (i = 0; i < d->n; i++)
		if (d->m[i].key_len == m->key_len &&
		    memcmp(d->m[i].key, m->key, m->key_len) == 0) {
			d->m[i] = *m; /* an ordered map keeps the place */
			return CDN_OK;
		}
	if (d->n == FZ_MEMBERS)
		return CDN_ELIMIT;
	d->m[d->n++] = *m;
	return CDN_OK;
}

static int
fz_parse(const char *v, size_t len, struct fz_dict *d)
{
	memset(d, 0, sizeof(*d));
	d->lo = v;
	d->hi = v + len;
	return cache_sf_dict_parse(v, len, fz_collect, d);
}

/* RFC 8941 §4.1.2, with what the parser kept of each member. */
static size_t
fz_serialise(const struct fz_dict *d, char *out, size_t cap)
{
	size_t o = 0;
	unsigned i;
	int64_t a;

	for (i = 0; i < d->n && o + 128 < cap; i++) {
		const struct cache_sf_member *m = &d->m[i];

		if (m->key_len + m->str_len + 128 > cap - o)
			break;
		if (i > 0) {
			memcpy(out + o, ", ", 2);
			o += 2;
		}
		memcpy(out + o, m->key, m->key_len);
		o += m->key_len;
		switch (m->type) {
		case CACHE_SF_INTEGER:
			o += (size_t)snprintf(
			    out + o, cap - o, "=%lld", (long long)m->num);
			break;
		case CACHE_SF_DECIMAL:
			a = m->num < 0 ? -m->num : m->num;
			o += (size_t)snprintf(out + o, cap - o,
			    "=%s%lld.%03lld", m->num < 0 ? "-" : "",
			    (long long)(a / 1000), (long long)(a % 1000));
			break;
		case CACHE_SF_BOOLEAN:
			if (m->num == 0)
				o += (size_t)snprintf(out + o, cap - o, "=?0");
			break;
		case CACHE_SF_STRING:
			o += (size_t)snprintf(out + o, cap - o, "=\"%.*s\"",
			    (int)m->str_len, m->str);
			break;
		case CACHE_SF_TOKEN:
			o += (size_t)snprintf(
			    out + o, cap - o, "=%.*s", (int)m->str_len, m->str);
			break;
		case CACHE_SF_BYTES:
			o += (size_t)snprintf(out + o, cap - o,
			    "=:%.*s:", (int)m->str_len, m->str);
			break;
		case CACHE_SF_INNER_LIST:
			o += (size_t)snprintf(out + o, cap - o, "=()");
			break;
		}
	}
	return o;
}

static int
fz_same_member(const struct cache_sf_member *a, const struct cache_sf_member *b)
{
	if (a->key_len != b->key_len ||
	    memcmp(a->key, b->key, a->key_len) != 0 || a->type != b->type)
		return 0;
	switch (a->type) {
	case CACHE_SF_STRING:
	case CACHE_SF_TOKEN:
	case CACHE_SF_BYTES:
		return a->str_len == b->str_len &&
		    memcmp(a->str, b->str, a->str_len) == 0;
	case CACHE_SF_INNER_LIST:
		return 1;
	default:
		return a->num == b->num;
	}
}

static void
fz_dictionary(const char *v, size_t len)
{
	static char ser[FZ_BUF];
	struct fz_dict d, again;
	struct cache_cc cc;
	size_t n;
	int rc, rc_cc;
	unsigned i;

	rc = fz_parse(v, len, &d);
	CDN_ASSERT(rc == CDN_OK || rc == CDN_EINVAL || rc == CDN_ELIMIT);

	rc_cc = cache_cdn_cc_parse(&cc, v, len);
	CDN_ASSERT(rc_cc == CDN_OK || rc_cc == CDN_EINVAL);
	if (rc == CDN_EINVAL)
		CDN_ASSERT(rc_cc == CDN_EINVAL);
	if (rc_cc != CDN_OK) {
		CDN_ASSERT(!cc.is_set && cc.max_age == -1 &&
		    cc.s_maxage == -1 && !cc.no_store && !cc.no_cache &&
		    !cc.is_private);
	} else {
		CDN_ASSERT(cc.max_age >= -1 && cc.max_age <= CC_DELTA_MAX);
		CDN_ASSERT(cc.s_maxage >= -1 && cc.s_maxage <= CC_DELTA_MAX);
		CDN_ASSERT(cc.stale_if_error >= -1 &&
		    cc.stale_if_error <= CC_DELTA_MAX);
		CDN_ASSERT(cc.stale_while_revalidate >= -1 &&
		    cc.stale_while_revalidate <= CC_DELTA_MAX);
		CDN_ASSERT(!(cc.no_cache && cc.no_cache_fields));
		CDN_ASSERT(cc.max_stale == -1 && cc.min_fresh == -1 &&
		    !cc.only_if_cached);
	}
	if (rc != CDN_OK)
		return;
	if (rc_cc == CDN_OK)
		CDN_ASSERT(cc.is_set == (d.n > 0));

	n = fz_serialise(&d, ser, sizeof(ser));
	rc = fz_parse(ser, n, &again);
	CDN_ASSERT(rc == CDN_OK);
	if (n == 0 || again.n != d.n)
		return; /* cut short for room */
	for (i = 0; i < d.n; i++)
		CDN_ASSERT(fz_same_member(&d.m[i], &again.m[i]));
}

/* The reference: the first non-empty member over the lines (RFC 9110
 * §5.3, §5.6.1), delta-seconds (RFC 9111 §1.2.2) or -1. */
static int64_t
fz_ref_age(const char *const *lines, const size_t *lens, unsigned n)
{
	for (unsigned l = 0; l < n; l++) {
		const char *p = lines[l], *end = p + lens[l];

		while (p < end) {
			const char *s, *e;
			int64_t v = 0;

			while (p < end && (*p == ' ' || *p == '\t'))
				p++;
			if (p < end && *p == ',') {
				p++;
				continue;
			}
			if (p == end)
				break;
			for (s = p; p < end && *p != ','; p++)
				;
			for (e = p; e > s && (e[-1] == ' ' || e[-1] == '\t');
			     e--)
				;
			for (const char *q = s; q < e; q++) {
				if (*q < '0' || *q > '9')
					return -1;
				if (v <= CC_DELTA_MAX)
					v = v * 10 + (*q - '0');
			}
			return v > CC_DELTA_MAX ? CC_DELTA_MAX : v;
		}
	}
	return -1;
}

/* <part> split at LF into field lines named <name>, as one head. */
static size_t
fz_head(const char *name, const char *v, size_t len, char *out, size_t cap,
    const char **lines, size_t *lens, unsigned *nlines, unsigned max)
{
	const char *p = v, *end = v + len, *nl;
	size_t o = 0, nlen = strlen(name), l;

	*nlines = 0;
	while (p <= end && *nlines < max) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			nl = end;
		l = (size_t)(nl - p);
		/* A CR ends a line for the head parser: keep to whole lines. */
		if (memchr(p, '\r', l) != NULL || o + nlen + l + 4 > cap)
			break;
		memcpy(out + o, name, nlen);
		o += nlen;
		memcpy(out + o, ": ", 2);
		o += 2;
		memcpy(out + o, p, l);
		o += l;
		memcpy(out + o, "\r\n", 2);
		o += 2;
		lines[*nlines] = p;
		lens[(*nlines)++] = l;
		p = nl + 1;
	}
	return o;
}

/* The trimmed, non-empty lines joined with ", ", as the head parser
 * joins CDN-Cache-Control; *used: how many lines were not empty. */
static size_t
fz_join(const char *const *lines, const size_t *lens, unsigned n, char *out,
    size_t cap, unsigned *used)
{
	size_t o = 0;

	*used = 0;

	for (unsigned i = 0; i < n; i++) {
		const char *s = lines[i], *e = s + lens[i];

		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (s == e)
			continue;
		(*used)++;
		if (o > 0) {
			memcpy(out + o, ", ", 2);
			o += 2;
		}
		CDN_ASSERT(o + (size_t)(e - s) <= cap);
		memcpy(out + o, s, (size_t)(e - s));
		o += (size_t)(e - s);
	}
	return o;
}

static void
fz_heads(const char *dict, size_t dlen, const char *age, size_t alen)
{
	static char head[FZ_BUF], joined[FZ_BUF];
	const char *lines[64];
	size_t lens[64], n, jl;
	unsigned nl, used;
	struct cache_exchange x;
	struct cache_cc cc;

	memset(&x, 0, sizeof(x));
	n = fz_head("Age", age, alen, head, sizeof(head), lines, lens, &nl, 64);
	cache_exchange_parse_response(&x, head, n);
	CDN_ASSERT(x.age == fz_ref_age(lines, lens, nl));

	n = fz_head("CDN-Cache-Control", dict, dlen, head, sizeof(head), lines,
	    lens, &nl, 64);
	cache_exchange_parse_response(&x, head, n);
	jl = fz_join(lines, lens, nl, joined, sizeof(joined), &used);
	if (jl == 0 || (used > 1 && jl > CDN_CC_JOIN_MAX) ||
	    cache_cdn_cc_parse(&cc, joined, jl) != CDN_OK || !cc.is_set) {
		CDN_ASSERT(!x.cdn_cc.is_set);
		return;
	}
	CDN_ASSERT(x.cdn_cc.is_set && x.cdn_cc.max_age == cc.max_age &&
	    x.cdn_cc.s_maxage == cc.s_maxage &&
	    x.cdn_cc.no_store == cc.no_store &&
	    x.cdn_cc.no_cache == cc.no_cache &&
	    x.cdn_cc.is_private == cc.is_private &&
	    x.cdn_cc.stale_if_error == cc.stale_if_error);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *v = size > 0 ? (const char *)data : "", *sep;
	size_t dlen;

	sep = memchr(v, 0xff, size);
	dlen = sep != NULL ? (size_t)(sep - v) : size;
	fz_dictionary(v, dlen);
	fz_dictionary(v, size); /* the whole input, 0xff and all */
	if (sep != NULL)
		fz_heads(v, dlen, sep + 1, size - dlen - 1);
	else
		fz_heads(v, dlen, v, dlen);
	return 0;
}
