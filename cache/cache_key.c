/*
 * Cache keys: the primary key of a request as a normalised URL, its 128-bit
 * hash, and the Vary secondary key (RFC 9111 §4.1).
 *
 * Design.  Every request passes through here, so nothing allocates and
 * nothing keeps state: the functions write only into the caller's buffers
 * and may run on any thread.  Bytes are classified by one 256-entry table
 * (ktab).  Normalisation follows RFC 3986 §6.2.2 (syntax-based): case
 * (scheme, host, percent-encoding hex digits), percent-encoding (encodings
 * of unreserved characters decoded) and path segments (dot segments
 * removed, §5.2.4), in that order, so "/a/%2E%2E/b" is "/b" as the origin
 * sees it.  Raw bytes a URI may not carry (CTLs, non-ASCII, '"', '{', ...)
 * are percent-encoded, so the key is itself a valid URI and "/%C3%A9" and
 * the raw UTF-8 spelling share one entry.  Percent-encoded reserved
 * characters stay encoded: "%2F" is data, not a segment separator, and
 * "%26" in a query is not a parameter separator.
 *
 * The key is a function of its input alone and idempotent: building a key
 * from a key's own host, path and query gives the same key (the fuzz target
 * checks this), so there is one spelling per cached resource.
 *
 * Query sorting needs the parameter boundaries: they are kept in an array
 * on the stack (CACHE_KEY_MAX_PARAMS entries) and sorted by insertion
 * (stable, and fast for the handful of parameters real URLs carry).
 * Parameters are compared in their normalised form, so "%61=1" and "a=1"
 * sort alike, without writing that form anywhere first.
 *
 * The Vary key hashes a serialisation in which every variable-length item
 * is preceded by its length and absence is a distinct flag, so two
 * different requests can only share a key by a 64-bit hash collision.
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "cache/cache.h"

/* Byte classes, bits of ktab[]. */
#define K_UNRES  0x01 /* RFC 3986 §2.3 unreserved */
#define K_PATH   0x02 /* raw in a path segment: pchar but '%' (§3.3) */
#define K_QUERY  0x04 /* raw in a query: K_PATH, '/', '?' (§3.4) */
#define K_HOST   0x08 /* reg-name (§3.2.2): unreserved, sub-delims, '%' */
#define K_HEX    0x10 /* HEXDIG */
#define K_TCHAR  0x20 /* RFC 9110 §5.6.2 tchar */
#define K_SCHEME 0x40 /* RFC 3986 §3.1 ALPHA / DIGIT / "+" / "-" / "." */
#define K_PFAST  0x80 /* K_PATH but '.', and '/': put_path()'s fast path */

/* clang-format off */
static const uint8_t ktab[256] = {
	/* 00 */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	/* 08 */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	/* 10 */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	/* 18 */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	/* 20 */ 0x00, 0xae, 0x00, 0x20, 0xae, 0x28, 0xae, 0xae,
	/* 28 */ 0x8e, 0x8e, 0xae, 0xee, 0x8e, 0xef, 0x6f, 0x84,
	/* 30 */ 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	/* 38 */ 0xff, 0xff, 0x86, 0x8e, 0x00, 0x8e, 0x00, 0x04,
	/* 40 */ 0x86, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xef,
	/* 48 */ 0xef, 0xef, 0xef, 0xef, 0xef, 0xef, 0xef, 0xef,
	/* 50 */ 0xef, 0xef, 0xef, 0xef, 0xef, 0xef, 0xef, 0xef,
	/* 58 */ 0xef, 0xef, 0xef, 0x00, 0x00, 0x00, 0x20, 0xaf,
	/* 60 */ 0x20, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xef,
	/* 68 */ 0xef, 0xef, 0xef, 0xef, 0xef, 0xef, 0xef, 0xef,
	/* 70 */ 0xef, 0xef, 0xef, 0xef, 0xef, 0xef, 0xef, 0xef,
	/* 78 */ 0xef, 0xef, 0xef, 0x00, 0x20, 0x00, 0xaf, 0x00,
	/* 80-ff: none */
};

/* reg-name bytes (K_HOST) lower-cased; 0 for every other byte. */
static const uint8_t hostmap[256] = {
	/* 00 */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	/* 08 */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	/* 10 */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	/* 18 */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	/* 20 */ 0x00, 0x21, 0x00, 0x00, 0x24, 0x25, 0x26, 0x27,
	/* 28 */ 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x00,
	/* 30 */ 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
	/* 38 */ 0x38, 0x39, 0x00, 0x3b, 0x00, 0x3d, 0x00, 0x00,
	/* 40 */ 0x00, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67,
	/* 48 */ 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f,
	/* 50 */ 0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x76, 0x77,
	/* 58 */ 0x78, 0x79, 0x7a, 0x00, 0x00, 0x00, 0x00, 0x5f,
	/* 60 */ 0x00, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67,
	/* 68 */ 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f,
	/* 70 */ 0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x76, 0x77,
	/* 78 */ 0x78, 0x79, 0x7a, 0x00, 0x00, 0x00, 0x7e, 0x00,
	/* 80-ff: none */
};
/* clang-format on */

static const char hexup[] = "0123456789ABCDEF";

static inline int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static inline unsigned char
lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c | 0x20) : c;
}

static inline int
is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* ---- output buffer ---- */

struct kbuf {
	char *p;
	size_t len;
	size_t cap;
};

static inline int
kb_put(struct kbuf *b, const char *s, size_t n)
{
	if (n > b->cap - b->len)
		return CDN_ELIMIT;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	return CDN_OK;
}

static inline int
kb_putc(struct kbuf *b, char c)
{
	if (b->len == b->cap)
		return CDN_ELIMIT;
	b->p[b->len++] = c;
	return CDN_OK;
}

static inline int
kb_put_pct(struct kbuf *b, unsigned char c)
{
	char enc[3];

	enc[0] = '%';
	enc[1] = hexup[c >> 4];
	enc[2] = hexup[c & 15];
	return kb_put(b, enc, sizeof(enc));
}

/*
 * Append s[0..len) percent-normalised (RFC 3986 §6.2.2.1, §6.2.2.2):
 * encodings of unreserved characters decoded, other encodings upper-cased,
 * raw bytes outside <allow> encoded.  CDN_EINVAL for a '%' not followed by
 * two hex digits.
 */
static int
put_norm(struct kbuf *b, const char *s, size_t len, uint8_t allow)
{
	size_t i, run;
	unsigned char c;
	int hi, lo;

	i = 0;
	while (i < len) {
		run = i;
		while (run < len && (ktab[(unsigned char)s[run]] & allow))
			run++;
		if (run > i) {
			if (kb_put(b, s + i, run - i) != CDN_OK)
				return CDN_ELIMIT;
			i = run;
			if (i == len)
				break;
		}
		c = (unsigned char)s[i];
		if (c == '%') {
			if (len - i < 3)
				return CDN_EINVAL;
			hi = hexval((unsigned char)s[i + 1]);
			lo = hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				return CDN_EINVAL;
			c = (unsigned char)(hi << 4 | lo);
			i += 3;
			if (ktab[c] & K_UNRES) {
				if (kb_putc(b, (char)c) != CDN_OK)
					return CDN_ELIMIT;
				continue;
			}
		} else {
			i++;
		}
		if (kb_put_pct(b, c) != CDN_OK)
			return CDN_ELIMIT;
	}
	return CDN_OK;
}

/*
 * The bytes put_norm(.., K_QUERY) would write, one at a time (-1 at the
 * end), for comparing parameters without writing them out.  A malformed
 * '%' reads as itself: put_norm() rejects the key later anyway.
 */
struct nit {
	const unsigned char *p;
	const unsigned char *end;
	unsigned char pend[2];
	unsigned npend;
};

static void
nit_init(struct nit *it, const char *s, size_t len)
{
	it->p = (const unsigned char *)s;
	it->end = it->p + len;
	it->npend = 0;
}

static int
nit_next(struct nit *it)
{
	unsigned char c;
	int hi, lo;

	if (it->npend > 0) {
		it->npend--;
		return it->pend[1 - it->npend];
	}
	if (it->p == it->end)
		return -1;
	c = *it->p++;
	if (ktab[c] & K_QUERY)
		return c;
	if (c == '%') {
		if (it->end - it->p < 2)
			return '%';
		hi = hexval(it->p[0]);
		lo = hexval(it->p[1]);
		if (hi < 0 || lo < 0)
			return '%';
		it->p += 2;
		c = (unsigned char)(hi << 4 | lo);
		if (ktab[c] & K_UNRES)
			return c;
	}
	it->pend[0] = (unsigned char)hexup[c >> 4];
	it->pend[1] = (unsigned char)hexup[c & 15];
	it->npend = 2;
	return '%';
}

/* ---- host ---- */

/*
 * Append the host lower-cased (RFC 3986 §6.2.2.1), without a trailing dot
 * (the root label: "example.com." names "example.com") and without its
 * port when that is empty or the scheme's default (§6.2.3).
 */
static int
put_host(struct kbuf *b, const char *h, size_t len, long defport)
{
	size_t i, nlen, plen, avail;
	const char *port;
	char *o;
	unsigned char c;
	long pv;
	char digits[8];
	int nd;

	if (len == 0)
		return CDN_EINVAL; /* RFC 9110 §4.2.1: no empty host */
	o = b->p + b->len;
	avail = b->cap - b->len;
	port = NULL;
	plen = 0;
	if (h[0] == '[') {
		/* IP-literal (§3.2.2): IPv6, IPvFuture, RFC 6874 zones */
		for (i = 1; i < len && h[i] != ']'; i++) {
			c = (unsigned char)h[i];
			if (!(ktab[c] & K_HOST) && c != ':')
				return CDN_EINVAL;
		}
		if (i == len || i == 1)
			return CDN_EINVAL;
		nlen = i + 1;
		if (nlen < len) {
			if (h[nlen] != ':')
				return CDN_EINVAL;
			port = h + nlen + 1;
			plen = len - nlen - 1;
		}
		for (i = 0; i < nlen && i < avail; i++)
			o[i] = (char)lower((unsigned char)h[i]);
	} else {
		/* One pass: check, lower-case and copy (what fits). */
		for (i = 0; i < len; i++) {
			c = hostmap[(unsigned char)h[i]];
			if (c == 0)
				break;
			if (i < avail)
				o[i] = (char)c;
		}
		if (i < len && h[i] != ':')
			return CDN_EINVAL;
		nlen = i;
		if (i < len) {
			port = h + i + 1;
			plen = len - i - 1;
		}
		/* RFC 1034 §3.1: "example.com." is the same absolute name */
		if (nlen > 0 && h[nlen - 1] == '.')
			nlen--;
		/* "a.." has an empty label: invalid, and keys must be
		 * idempotent */
		if (nlen == 0 || h[nlen - 1] == '.')
			return CDN_EINVAL;
	}
	pv = 0;
	for (i = 0; i < plen; i++) {
		if (port[i] < '0' || port[i] > '9')
			return CDN_EINVAL;
		pv = pv * 10 + (port[i] - '0');
		if (pv > 65535)
			return CDN_EINVAL;
	}
	if (nlen > avail)
		return CDN_ELIMIT;
	b->len += nlen;
	if (plen == 0 || pv == defport)
		return CDN_OK;
	nd = 0;
	do {
		digits[sizeof(digits) - 1 - nd++] = (char)('0' + pv % 10);
		pv /= 10;
	} while (pv > 0);
	digits[sizeof(digits) - 1 - nd++] = ':';
	return kb_put(b, digits + sizeof(digits) - nd, (size_t)nd);
}

/* ---- path ---- */

/* 1 for a "." segment, 2 for "..", after decoding "%2E" (§5.2.4). */
static int
dot_segment(const char *s, size_t len)
{
	size_t i;
	int dots;

	dots = 0;
	for (i = 0; i < len; i++) {
		if (s[i] == '.') {
			dots++;
		} else if (s[i] == '%' && len - i >= 3 && s[i + 1] == '2' &&
		    (s[i + 2] == 'e' || s[i + 2] == 'E')) {
			dots++;
			i += 2;
		} else {
			return 0;
		}
		if (dots > 2)
			return 0;
	}
	return dots;
}

/*
 * Append the normalised path.  Segments are written one by one after their
 * '/', so remove_dot_segments (RFC 3986 §5.2.4) works on the output: "."
 * is skipped, ".." truncates the output back to the previous '/'.  A dot
 * segment at the end leaves a trailing '/' ("/a/b/.." is "/a/").  Since
 * "%2F" is never decoded, every '/' in the output is a segment boundary.
 */
static int
put_path(struct kbuf *b, const char *path, size_t len)
{
	size_t base, i, j;
	int dots, rc;

	if (len == 0)
		return kb_putc(b, '/'); /* RFC 3986 §6.2.3: empty path is "/" */
	if (path[0] != '/')
		return CDN_EINVAL; /* not origin-form ("*", relative) */
	/* Most paths need nothing: no '%', nothing to encode, no segment
	 * starting with '.'.  Those are copied as they are. */
	j = 1;
	for (;;) {
		while (j < len && (ktab[(unsigned char)path[j]] & K_PFAST))
			j++;
		if (j == len)
			return kb_put(b, path, len);
		if (path[j] != '.' || path[j - 1] == '/')
			break;
		j++;
	}
	base = b->len;
	i = 1;
	for (;;) {
		j = i;
		while (j < len && path[j] != '/')
			j++;
		dots = dot_segment(path + i, j - i);
		if (dots == 2) {
			while (b->len > base && b->p[b->len - 1] != '/')
				b->len--;
			if (b->len > base)
				b->len--;
		}
		if (dots == 0) {
			if (kb_putc(b, '/') != CDN_OK)
				return CDN_ELIMIT;
			rc = put_norm(b, path + i, j - i, K_PATH);
			if (rc != CDN_OK)
				return rc;
		} else if (j == len) {
			if (kb_putc(b, '/') != CDN_OK)
				return CDN_ELIMIT;
		}
		if (j == len)
			break;
		i = j + 1;
	}
	if (b->len == base)
		return kb_putc(b, '/');
	return CDN_OK;
}

/* ---- query ---- */

/* One parameter of the query: p[0..len), its name p[0..nlen). */
struct qparam {
	const char *p;
	uint32_t len;
	uint32_t nlen;
	uint32_t plain; /* no '%' and no byte to encode: normalised == raw */
};

/* Compare a[0..alen) and b[0..blen) as put_norm() would write them. */
static int
norm_cmp(const char *a, size_t alen, int aplain, const char *b, size_t blen,
    int bplain)
{
	struct nit ia, ib;
	int ca, cb, r;

	if (aplain && bplain) {
		r = memcmp(a, b, alen < blen ? alen : blen);
		if (r != 0)
			return r;
		return (alen > blen) - (alen < blen);
	}
	nit_init(&ia, a, alen);
	nit_init(&ib, b, blen);
	do {
		ca = nit_next(&ia);
		cb = nit_next(&ib);
		if (ca != cb)
			return ca - cb;
	} while (ca >= 0);
	return 0;
}

/* By name, then "a" before "a=" before "a=x", then by value. */
static int
qparam_cmp(const struct qparam *a, const struct qparam *b)
{
	int r, ahas, bhas;

	r = norm_cmp(a->p, a->nlen, a->plain, b->p, b->nlen, b->plain);
	if (r != 0)
		return r;
	ahas = a->len > a->nlen;
	bhas = b->len > b->nlen;
	if (ahas != bhas || !ahas)
		return ahas - bhas;
	return norm_cmp(a->p + a->nlen + 1, a->len - a->nlen - 1, a->plain,
	    b->p + b->nlen + 1, b->len - b->nlen - 1, b->plain);
}

/* Does the normalised name match pattern pat[0..plen) (a prefix if
 * <prefix>)?  Patterns are compared byte for byte: names are case-
 * sensitive. */
static int
name_match(const char *name, size_t nlen, int plain, const char *pat,
    size_t plen, int prefix)
{
	struct nit it;
	size_t i;

	if (plain) {
		if (nlen < plen || (!prefix && nlen != plen))
			return 0;
		return memcmp(name, pat, plen) == 0;
	}
	nit_init(&it, name, nlen);
	for (i = 0; i < plen; i++)
		if (nit_next(&it) != (unsigned char)pat[i])
			return 0;
	return prefix || nit_next(&it) < 0;
}

static int
param_listed(
    const struct cache_key_rules *r, const char *name, size_t nlen, int plain)
{
	const char *pat;
	size_t plen;
	unsigned i;
	int prefix;

	for (i = 0; i < r->nparams; i++) {
		pat = r->params[i];
		CDN_ASSERT(pat != NULL);
		plen = strlen(pat);
		prefix = plen > 0 && pat[plen - 1] == '*';
		if (prefix)
			plen--;
		if (name_match(name, nlen, plain, pat, plen, prefix))
			return 1;
	}
	return 0;
}

/*
 * Append "?query" per the rules, or nothing if no parameter is left.  The
 * modes that rebuild the query (SORT, *_LISTED) drop empty parameters
 * ("a&&b" is "a&b"); KEEP keeps the query as sent, normalised.
 */
static int
put_query(
    const struct cache_key_rules *r, struct kbuf *b, const char *q, size_t qlen)
{
	struct qparam prm[CACHE_KEY_MAX_PARAMS];
	struct qparam t;
	size_t i, end, nlen, start;
	unsigned n, k, m;
	int sort, filter, plain, rc;
	unsigned char c;

	filter = 0;
	switch (r->query_mode) {
	case CACHE_QUERY_DROP:
		return CDN_OK;
	case CACHE_QUERY_KEEP:
		if (qlen == 0)
			return CDN_OK;
		if (kb_putc(b, '?') != CDN_OK)
			return CDN_ELIMIT;
		return put_norm(b, q, qlen, K_QUERY);
	case CACHE_QUERY_SORT:
		sort = 1;
		break;
	case CACHE_QUERY_DROP_LISTED:
	case CACHE_QUERY_KEEP_LISTED:
		sort = r->sort_after_filter;
		filter = 1;
		break;
	default:
		CDN_ASSERT(!"bad query_mode");
		return CDN_EINVAL;
	}
	if (qlen > UINT32_MAX)
		return CDN_ELIMIT;
	start = b->len;
	n = 0;
	for (i = 0; i < qlen; i = end + 1) {
		nlen = SIZE_MAX;
		plain = 1;
		for (end = i; end < qlen && q[end] != '&'; end++) {
			c = (unsigned char)q[end];
			if (c == '=' && nlen == SIZE_MAX)
				nlen = end - i;
			if (!(ktab[c] & K_QUERY))
				plain = 0;
		}
		if (end == i)
			continue;
		if (nlen == SIZE_MAX)
			nlen = end - i;
		if (filter &&
		    param_listed(r, q + i, nlen, plain) ==
		        (r->query_mode == CACHE_QUERY_DROP_LISTED))
			continue;
		if (sort) {
			if (n == CACHE_KEY_MAX_PARAMS)
				return CDN_ELIMIT;
			prm[n].p = q + i;
			prm[n].len = (uint32_t)(end - i);
			prm[n].nlen = (uint32_t)nlen;
			prm[n].plain = (uint32_t)plain;
			n++;
			continue;
		}
		if (kb_putc(b, b->len == start ? '?' : '&') != CDN_OK)
			return CDN_ELIMIT;
		rc = put_norm(b, q + i, end - i, K_QUERY);
		if (rc != CDN_OK)
			return rc;
	}
	if (!sort)
		return CDN_OK;
	/* Insertion sort: stable, no allocation, quick on short lists. */
	for (k = 1; k < n; k++) {
		t = prm[k];
		for (m = k; m > 0 && qparam_cmp(&prm[m - 1], &t) > 0; m--)
			prm[m] = prm[m - 1];
		prm[m] = t;
	}
	for (k = 0; k < n; k++) {
		if (kb_putc(b, k == 0 ? '?' : '&') != CDN_OK)
			return CDN_ELIMIT;
		rc = put_norm(b, prm[k].p, prm[k].len, K_QUERY);
		if (rc != CDN_OK)
			return rc;
	}
	return CDN_OK;
}

/* ---- the key ---- */

/* RFC 9110 §4.2.1, §4.2.2: the port a scheme implies, or -1. */
static long
default_port(const char *s, size_t len)
{
	/* c | 0x20 equals a lower-case letter only for that letter's two
	 * cases */
	if ((len != 4 && len != 5) || (s[0] | 0x20) != 'h' ||
	    (s[1] | 0x20) != 't' || (s[2] | 0x20) != 't' ||
	    (s[3] | 0x20) != 'p')
		return -1;
	if (len == 4)
		return 80;
	return (s[4] | 0x20) == 's' ? 443 : -1;
}

int
cache_key_build(const struct cache_key_rules *rules, const char *scheme,
    const char *host, size_t hostlen, const char *path, size_t pathlen,
    const char *query, size_t querylen, int has_query, char *out, size_t cap,
    size_t *outlen)
{
	struct kbuf b;
	size_t slen, i;
	long defport;
	int rc;

	CDN_ASSERT(rules != NULL && outlen != NULL);
	CDN_ASSERT(out != NULL || cap == 0);
	CDN_ASSERT(host != NULL || hostlen == 0);
	CDN_ASSERT(path != NULL || pathlen == 0);
	CDN_ASSERT(query != NULL || querylen == 0 || !has_query);

	if (scheme == NULL)
		scheme = "http";
	slen = strlen(scheme);
	if (slen == 0 || lower((unsigned char)scheme[0]) < 'a' ||
	    lower((unsigned char)scheme[0]) > 'z')
		return CDN_EINVAL; /* RFC 3986 §3.1: ALPHA first */
	for (i = 1; i < slen; i++)
		if ((ktab[(unsigned char)scheme[i]] & K_SCHEME) == 0)
			return CDN_EINVAL;
	defport = default_port(scheme, slen);

	b.p = out;
	b.len = 0;
	b.cap = cap;
	if (rules->include_scheme) {
		if (slen + 3 > cap)
			return CDN_ELIMIT;
		for (i = 0; i < slen; i++)
			out[i] = (char)lower((unsigned char)scheme[i]);
		memcpy(out + slen, "://", 3);
		b.len = slen + 3;
	}
	rc = put_host(&b, host, hostlen, defport);
	if (rc != CDN_OK)
		return rc;
	rc = put_path(&b, path, pathlen);
	if (rc != CDN_OK)
		return rc;
	if (has_query) {
		rc = put_query(rules, &b, query, querylen);
		if (rc != CDN_OK)
			return rc;
	}
	*outlen = b.len;
	return CDN_OK;
}

void
cache_key_hash(const char *s, size_t len, uint8_t out[CACHE_HASH_LEN])
{
	XXH128_hash_t h;
	int i;

	CDN_ASSERT(s != NULL || len == 0);
	h = XXH3_128bits(len > 0 ? s : "", len);
	/* Big-endian, high half first: XXH128_canonical_t's layout. */
	for (i = 0; i < 8; i++) {
		out[i] = (uint8_t)(h.high64 >> (56 - 8 * i));
		out[8 + i] = (uint8_t)(h.low64 >> (56 - 8 * i));
	}
}

/* ---- Vary ---- */

struct vname {
	const char *p;
	size_t len;
};

static int
ci_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t i, n;
	unsigned char ca, cb;

	n = alen < blen ? alen : blen;
	for (i = 0; i < n; i++) {
		ca = lower((unsigned char)a[i]);
		cb = lower((unsigned char)b[i]);
		if (ca != cb)
			return ca - cb;
	}
	return (alen > blen) - (alen < blen);
}

/* Equal field names (RFC 9110 §5.1: case-insensitive); usually they are
 * spelt alike, and memcmp() says so at once. */
static inline int
name_eq(const char *a, const char *b, size_t n)
{
	return memcmp(a, b, n) == 0 || ci_cmp(a, n, b, n) == 0;
}

/*
 * Where the Vary serialisation goes: a buffer on the stack, hashed in one
 * call when it is complete (the common case: a few short fields), or, once
 * it outgrows the buffer, XXH3's streaming state.  Both give the same hash
 * for the same bytes.
 */
struct vsink {
	size_t n;
	int streaming;
	XXH3_state_t st;
	unsigned char buf[512];
};

static void
feed(struct vsink *vs, const void *p, size_t n)
{
	if (!vs->streaming) {
		if (n <= sizeof(vs->buf) - vs->n) {
			memcpy(vs->buf + vs->n, p, n);
			vs->n += n;
			return;
		}
		(void)XXH3_64bits_reset(&vs->st);
		(void)XXH3_64bits_update(&vs->st, vs->buf, vs->n);
		vs->streaming = 1;
	}
	(void)XXH3_64bits_update(&vs->st, p, n);
}

static void
feed_u64(struct vsink *vs, uint64_t v)
{
	unsigned char le[8];
	int i;

	for (i = 0; i < 8; i++)
		le[i] = (unsigned char)(v >> (8 * i));
	feed(vs, le, sizeof(le));
}

/*
 * The request's value of field <name>: every line in order, joined with
 * ",", each trimmed and with the OWS around its commas removed (RFC 9111
 * §4.1 allows such normalisation).  With vs == NULL only measures it.
 * *present tells absent from empty.
 */
static uint64_t
vary_value(const struct cache_field *f, unsigned nf, const char *name,
    size_t nlen, struct vsink *vs, int *present)
{
	const char *v, *comma;
	size_t vl, i, j, e;
	uint64_t len;
	unsigned k;

	len = 0;
	*present = 0;
	for (k = 0; k < nf; k++) {
		if (f[k].name_len != nlen || !name_eq(f[k].name, name, nlen))
			continue;
		if (*present) {
			if (vs != NULL)
				feed(vs, ",", 1);
			len++;
		}
		*present = 1;
		v = f[k].value;
		vl = f[k].value_len;
		CDN_ASSERT(v != NULL || vl == 0);
		while (vl > 0 && is_ows(v[vl - 1]))
			vl--;
		i = 0;
		while (i < vl && is_ows(v[i]))
			i++;
		while (i < vl) {
			if (v[i] == ',') {
				if (vs != NULL)
					feed(vs, ",", 1);
				len++;
				for (i++; i < vl && is_ows(v[i]); i++)
					;
				continue;
			}
			comma = memchr(v + i, ',', vl - i);
			j = comma != NULL ? (size_t)(comma - v) : vl;
			for (e = j; e > i && is_ows(v[e - 1]); e--)
				;
			if (vs != NULL)
				feed(vs, v + i, e - i);
			len += e - i;
			i = j;
		}
	}
	return len;
}

int
cache_vary_key(const char *vary, size_t vary_len,
    const struct cache_field *fields, unsigned nfields, uint64_t *out)
{
	struct vname names[CACHE_VARY_MAX_FIELDS];
	struct vsink vs;
	unsigned char lc[64];
	size_t i, s, e, k, chunk;
	unsigned n, m, x;
	uint64_t vlen, h;
	int r, present;
	unsigned char flag;

	CDN_ASSERT(vary != NULL || vary_len == 0);
	CDN_ASSERT(fields != NULL || nfields == 0);
	CDN_ASSERT(out != NULL);

	/* RFC 9110 §12.5.5: Vary = #( "*" / field-name ); empty members are
	 * allowed (§5.6.1). */
	n = 0;
	i = 0;
	while (i < vary_len) {
		while (i < vary_len && is_ows(vary[i]))
			i++;
		for (s = i; i < vary_len && vary[i] != ','; i++)
			;
		for (e = i; e > s && is_ows(vary[e - 1]); e--)
			;
		if (i < vary_len)
			i++;
		if (e == s)
			continue;
		if (e - s == 1 && vary[s] == '*')
			return CDN_EINVAL;
		for (k = s; k < e; k++)
			if (!(ktab[(unsigned char)vary[k]] & K_TCHAR))
				return CDN_EINVAL;
		/* Insert in order, once (names are case-insensitive). */
		r = 1;
		for (m = n; m > 0; m--) {
			r = ci_cmp(
			    names[m - 1].p, names[m - 1].len, vary + s, e - s);
			if (r <= 0)
				break;
		}
		if (m > 0 && r == 0)
			continue;
		if (n == CACHE_VARY_MAX_FIELDS)
			return CDN_EINVAL;
		for (x = n; x > m; x--)
			names[x] = names[x - 1];
		names[m].p = vary + s;
		names[m].len = e - s;
		n++;
	}
	if (n == 0) {
		*out = 0;
		return CDN_OK;
	}

	/* Per name: len, name (lower case), flag, [len, value]. */
	vs.n = 0;
	vs.streaming = 0;
	for (m = 0; m < n; m++) {
		feed_u64(&vs, names[m].len);
		for (i = 0; i < names[m].len; i += chunk) {
			chunk = names[m].len - i;
			if (chunk > sizeof(lc))
				chunk = sizeof(lc);
			for (k = 0; k < chunk; k++)
				lc[k] = lower((unsigned char)names[m].p[i + k]);
			feed(&vs, lc, chunk);
		}
		vlen = vary_value(
		    fields, nfields, names[m].p, names[m].len, NULL, &present);
		flag = (unsigned char)present;
		feed(&vs, &flag, 1);
		if (!present)
			continue;
		feed_u64(&vs, vlen);
		(void)vary_value(
		    fields, nfields, names[m].p, names[m].len, &vs, &present);
	}
	h = vs.streaming ? XXH3_64bits_digest(&vs.st)
	                 : XXH3_64bits(vs.buf, vs.n);
	*out = h != 0 ? h : 1; /* 0 means "no Vary" */
	return CDN_OK;
}
