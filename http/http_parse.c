/*
 * Strict HTTP/1.1 request head parser and chunked body decoder (RFC 9112),
 * the first code every request meets: it sits on the hit path.
 *
 * Design.  http_parse_request() makes one pass over the caller's buffer and
 * keeps no state: it allocates nothing, copies nothing and writes only into
 * the caller's struct http_request and header array, so it is safe from any
 * thread.  Bytes are classified by one 256-entry table (http_cc_class); the
 * runs that make up most of a head, the request-target, field names and
 * field values, are skimmed eight bytes at a time (SWAR: a word holding no
 * byte below SP and no DEL needs no closer look), and the byte that ends a
 * run is found in its word by counting trailing zero bits, not by walking.
 * Fields the server acts on (Host, Content-Length, Transfer-Encoding,
 * Connection, Expect) are recognised by length and then compared once, in
 * the same pass.  Errors are found as early as the bytes allow, so a
 * malformed head fails on its first bad byte even before it is complete.
 *
 * The chunked decoder is a byte-at-a-time state machine for framing (a few
 * bytes per chunk) that hands data back in runs without looking at them.
 * Its state lives in the caller's struct http_chunked.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdint.h>
#include <string.h>

#include "http/http_parse.h"

/* RFC 9112 §2.2 lets a server skip empty lines before the request line. */
#define HTTP_MAX_EMPTY_LINES 8

/* Largest chunk-size accepted: 2^62, far beyond any body we take. */
#define HTTP_CHUNK_MAX (UINT64_C(1) << 62)

/* Byte classes, bits of http_cc_class[]. */
#define CC_TCHAR  HTTP_CC_TCHAR /* RFC 9110 §5.6.2 tchar */
#define CC_FIELD  0x02 /* RFC 9110 §5.5 field-vchar, obs-text, SP, HTAB */
#define CC_TARGET 0x04 /* request-target: anything but CTL, SP, DEL, '#' */
#define CC_HEX    0x08 /* HEXDIG */
#define CC_HOST   0x10 /* RFC 3986 §3.2.2 reg-name/IPv4address (no ':') */
#define CC_QDTEXT 0x20 /* RFC 9110 §5.6.4 qdtext */
#define CC_WS     0x40 /* SP, HTAB */

/* clang-format off */
const uint8_t http_cc_class[256] = {
	/* 00 */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	/* 08 */ 0x00, 0x62, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	/* 10 */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	/* 18 */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	/* 20 */ 0x62, 0x37, 0x06, 0x23, 0x37, 0x37, 0x37, 0x37,
	/* 28 */ 0x36, 0x36, 0x37, 0x37, 0x36, 0x37, 0x37, 0x26,
	/* 30 */ 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f,
	/* 38 */ 0x3f, 0x3f, 0x26, 0x36, 0x26, 0x36, 0x26, 0x26,
	/* 40 */ 0x26, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x37,
	/* 48 */ 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37,
	/* 50 */ 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37,
	/* 58 */ 0x37, 0x37, 0x37, 0x26, 0x06, 0x26, 0x27, 0x37,
	/* 60 */ 0x27, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x37,
	/* 68 */ 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37,
	/* 70 */ 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37,
	/* 78 */ 0x37, 0x37, 0x37, 0x26, 0x27, 0x26, 0x37, 0x00,
	/* 80 */ 0x26, 0x26, 0x26, 0x26, 0x26, 0x26, 0x26, 0x26,
	/* 88 */ 0x26, 0x26, 0x26, 0x26, 0x26, 0x26, 0x26, 0x26,
	/* 90 */ 0x26, 0x26, 0x26, 0x26, 0x26, 0x26, 0x26, 0x26,
	/* 98 */ 0x26, 0x26, 0x26, 0x26, 0x26, 0x26, 0x26, 0x26,
	/* a0 */ 0x26, 0x26, 0x26, 0x26, 0x26, 0x26, 0x26, 0x26,
	/* a8 */ 0x26, 0x26, 0x26, 0x26, 0x26, 0x26, 0x26, 0x26,
	/* b0 */ 0x26, 0x26, 0x26, 0x26, 0x26, 0x26, 0x26, 0x26,
	/* b8 */ 0x26, 0x26, 0x26, 0x26, 0x26, 0x26, 0x26, 0x26,
	/* c0 */ 0x26, 0x26, 0x26, 0x26, 0x26, 0x26, 0x26, 0x26,
	/* c8 */ 0x26, 0x26, 0x26, 0x26, 0x26, 0x26, 0x26, 0x26,
	/* d0 */ 0x26, 0x26, 0x26, 0x26, 0x26, 0x26, 0x26, 0x26,
	/* d8 */ 0x26, 0x26, 0x26, 0x26, 0x26, 0x26, 0x26, 0x26,
	/* e0 */ 0x26, 0x26, 0x26, 0x26, 0x26, 0x26, 0x26, 0x26,
	/* e8 */ 0x26, 0x26, 0x26, 0x26, 0x26, 0x26, 0x26, 0x26,
	/* f0 */ 0x26, 0x26, 0x26, 0x26, 0x26, 0x26, 0x26, 0x26,
	/* f8 */ 0x26, 0x26, 0x26, 0x26, 0x26, 0x26, 0x26, 0x26,
};
static const uint8_t cc_lower[256] = {
	/* 00 */ 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
	/* 08 */ 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
	/* 10 */ 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
	/* 18 */ 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
	/* 20 */ 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27,
	/* 28 */ 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f,
	/* 30 */ 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
	/* 38 */ 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f,
	/* 40 */ 0x40, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67,
	/* 48 */ 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f,
	/* 50 */ 0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x76, 0x77,
	/* 58 */ 0x78, 0x79, 0x7a, 0x5b, 0x5c, 0x5d, 0x5e, 0x5f,
	/* 60 */ 0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67,
	/* 68 */ 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f,
	/* 70 */ 0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x76, 0x77,
	/* 78 */ 0x78, 0x79, 0x7a, 0x7b, 0x7c, 0x7d, 0x7e, 0x7f,
	/* 80 */ 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
	/* 88 */ 0x88, 0x89, 0x8a, 0x8b, 0x8c, 0x8d, 0x8e, 0x8f,
	/* 90 */ 0x90, 0x91, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97,
	/* 98 */ 0x98, 0x99, 0x9a, 0x9b, 0x9c, 0x9d, 0x9e, 0x9f,
	/* a0 */ 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
	/* a8 */ 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
	/* b0 */ 0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7,
	/* b8 */ 0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf,
	/* c0 */ 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7,
	/* c8 */ 0xc8, 0xc9, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf,
	/* d0 */ 0xd0, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7,
	/* d8 */ 0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf,
	/* e0 */ 0xe0, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7,
	/* e8 */ 0xe8, 0xe9, 0xea, 0xeb, 0xec, 0xed, 0xee, 0xef,
	/* f0 */ 0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7,
	/* f8 */ 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff,
};
/* clang-format on */

/* The path of an absolute-form without one, and of the authority-form. */
static const char slash[] = "/";

static const struct http_slice empty = {NULL, 0};

/* What the derived fields looked like so far; decided after the last one. */
struct hp_fields {
	unsigned n_host;
	unsigned n_cl;
	/* Flags as bytes, not bit-fields: cheaper to set one at a time. */
	uint8_t has_te;
	uint8_t te_chunked;       /* "chunked" seen */
	uint8_t te_after_chunked; /* any coding after a "chunked" */
	uint8_t te_other;         /* a coding other than "chunked" */
	uint8_t conn_close;
	uint8_t conn_keep_alive;
	uint8_t expect_continue;
};

static inline int
is_ws(char c)
{
	return http_cc_class[(uint8_t)c] & CC_WS;
}

/* Compare p[0..len) with s[0..len), ignoring ASCII case. */
static inline int
eq_ci(const char *p, const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (cc_lower[(uint8_t)p[i]] != cc_lower[(uint8_t)s[i]])
			return 0;
	return 1;
}

/* The same against a string known to be lowercase: half the lookups. */
static inline int
eq_lc(const char *p, const char *lstr, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (cc_lower[(uint8_t)p[i]] != (uint8_t)lstr[i])
			return 0;
	return 1;
}

static inline int
slice_is(struct http_slice s, const char *lstr, size_t len)
{
	return s.len == len && eq_lc(s.p, lstr, len);
}

#define SWAR_ONES UINT64_C(0x0101010101010101)
#define SWAR_HIGH UINT64_C(0x8080808080808080)

static inline uint64_t
swar_load(const char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/*
 * Non-zero if a byte of <v> is below <below> (at most 0x80) or is DEL: 0x80
 * is set in such bytes.  "Any byte less than n" and "any byte zero" are
 * exact as yes/no answers; a flag above a true one may be false (a borrow),
 * the lowest one never is.  Bytes >= 0x80 never match, so obs-text runs at
 * full speed.
 */
static inline uint64_t
swar_stop(uint64_t v, unsigned below)
{
	uint64_t d;

	d = v ^ (SWAR_ONES * 0x7f);
	return ((v - SWAR_ONES * below) & ~v & SWAR_HIGH) |
	    ((d - SWAR_ONES) & ~d & SWAR_HIGH);
}

/*
 * Index of the first byte (in memory order) flagged in a SWAR mask.  Only
 * on little-endian machines, where the lowest flagged byte of the tests
 * above is always a true one (borrows run towards higher bytes); elsewhere
 * the scanners finish the flagged word byte by byte.
 */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SWAR_LE 1
static inline size_t
swar_first(uint64_t m)
{
	return (size_t)__builtin_ctzll(m) >> 3;
}
#else
#define SWAR_LE 0
#endif

/*
 * The first byte in [p, end) that cannot be in a request-target, or end.
 * '#' stops it too: RFC 9112 §3.2 has no fragment in a request-target.
 */
static const char *
scan_target(const char *p, const char *end)
{
	uint64_t v, h, m;

	while (end - p >= 8) {
		v = swar_load(p);
		h = v ^ (SWAR_ONES * '#'); /* a zero byte where a '#' is */
		m = swar_stop(v, 0x21) | ((h - SWAR_ONES) & ~h & SWAR_HIGH);
		if (m != 0) {
#if SWAR_LE
			return p + swar_first(m);
#else
			break;
#endif
		}
		p += 8;
	}
	while (p < end && (http_cc_class[(uint8_t)*p] & CC_TARGET))
		p++;
	return p;
}

/*
 * Per byte of <v>: 0x80 where the byte is an ASCII letter or '-', else 0.
 * Each test is exact per byte: bytes are masked to 7 bits before adding,
 * so no carry crosses into the next byte.
 */
static inline uint64_t
swar_name_bytes(uint64_t v)
{
	uint64_t x, letter, d, dash;

	x = (v | (SWAR_ONES * 0x20)) & (SWAR_ONES * 0x7f);
	letter = ((x + SWAR_ONES * (0x80 - 'a')) &
	    ~(x + SWAR_ONES * (0x80 - 'z' - 1)) & ~v & SWAR_HIGH);
	d = v ^ (SWAR_ONES * '-');
	dash = ~(((d & (SWAR_ONES * 0x7f)) + SWAR_ONES * 0x7f) | d |
	    (SWAR_ONES * 0x7f));
	return letter | dash;
}

/*
 * The first byte in [p, end) that is not a tchar, or end.  Field names are
 * nearly all letters and dashes: the skim stops at the first other byte,
 * usually the colon, and the table has the last word.
 */
static const char *
scan_name(const char *p, const char *end)
{
	uint64_t m;

	while (end - p >= 8) {
		m = ~swar_name_bytes(swar_load(p)) & SWAR_HIGH;
		if (m != 0) {
#if SWAR_LE
			p += swar_first(m);
#endif
			break;
		}
		p += 8;
	}
	while (p < end && (http_cc_class[(uint8_t)*p] & CC_TCHAR))
		p++;
	return p;
}

/* The first byte in [p, end) that cannot be in a field value, or end. */
static const char *
scan_field(const char *p, const char *end)
{
	uint64_t m;

	while (end - p >= 8) {
		m = swar_stop(swar_load(p), 0x20);
		if (m == 0) {
			p += 8;
			continue;
		}
#if SWAR_LE
		/* The flagged byte ends the value unless it is an HTAB. */
		p += swar_first(m);
		if (*p != '\t')
			return p;
		p++;
#else
		break;
#endif
	}
	while (p < end && (http_cc_class[(uint8_t)*p] & CC_FIELD))
		p++;
	return p;
}

static int
hp_error(int *status, const char **why, int code, const char *msg)
{
	*status = code;
	*why = msg;
	return CDN_EINVAL;
}

/* RFC 9110 §9.1: method names are case-sensitive. */
enum http_method
http_method_lookup(const char *p, size_t len)
{
	switch (len) {
	case 3:
		if (memcmp(p, "GET", 3) == 0)
			return HTTP_M_GET;
		if (memcmp(p, "PUT", 3) == 0)
			return HTTP_M_PUT;
		break;
	case 4:
		if (memcmp(p, "HEAD", 4) == 0)
			return HTTP_M_HEAD;
		if (memcmp(p, "POST", 4) == 0)
			return HTTP_M_POST;
		break;
	case 5:
		if (memcmp(p, "PATCH", 5) == 0)
			return HTTP_M_PATCH;
		if (memcmp(p, "TRACE", 5) == 0)
			return HTTP_M_TRACE;
		if (memcmp(p, "PURGE", 5) == 0)
			return HTTP_M_PURGE;
		break;
	case 6:
		if (memcmp(p, "DELETE", 6) == 0)
			return HTTP_M_DELETE;
		break;
	case 7:
		if (memcmp(p, "OPTIONS", 7) == 0)
			return HTTP_M_OPTIONS;
		if (memcmp(p, "CONNECT", 7) == 0)
			return HTTP_M_CONNECT;
		break;
	}
	return HTTP_M_OTHER;
}

/*
 * RFC 9110 §7.2 Host = uri-host [ ":" port ], RFC 3986 §3.2.2: a bracketed
 * IP-literal or a reg-name/IPv4address, never empty (RFC 9110 §4.2.1: an
 * http URI with an empty host is invalid), no userinfo.  With <need_port>
 * (authority-form, RFC 9112 §3.2.3) the port must be there.
 */
static int host_valid(const char *p, size_t len, int need_port);

int
http_host_valid(const char *p, size_t len)
{
	return host_valid(p, len, 0);
}

static int
host_valid(const char *p, size_t len, int need_port)
{
	size_t i;

	i = 0;
	if (len > 0 && p[0] == '[') {
		for (i = 1; i < len && p[i] != ']'; i++)
			if (!(http_cc_class[(uint8_t)p[i]] & CC_HOST) &&
			    p[i] != ':')
				return 0;
		if (i == len || i == 1)
			return 0;
		i++;
	} else {
		while (i < len && (http_cc_class[(uint8_t)p[i]] & CC_HOST))
			i++;
		if (i == 0)
			return 0;
	}
	if (i == len)
		return !need_port;
	if (p[i] != ':')
		return 0;
	/* RFC 3986 §3.2.3 port = *DIGIT: it may be empty. */
	if (++i == len)
		return !need_port;
	for (; i < len; i++)
		if (p[i] < '0' || p[i] > '9')
			return 0;
	return 1;
}

/*
 * Next element of a comma-separated list (RFC 9110 §5.6.1) in [p, end):
 * stores it, OWS removed, in *elem (possibly empty) and returns where the
 * element after it starts (end when it was the last).
 */
static const char *
list_next(const char *p, const char *end, struct http_slice *elem)
{
	const char *e;

	while (p < end && is_ws(*p))
		p++;
	/* List values are short: a loop beats a call to memchr(). */
	for (e = p; e < end && *e != ',';)
		e++;
	elem->p = p;
	elem->len = (size_t)(e - p);
	while (elem->len > 0 && is_ws(p[elem->len - 1]))
		elem->len--;
	return e < end ? e + 1 : end;
}

/* RFC 9112 §6.1, RFC 9110 §10.1.4: collect what Transfer-Encoding says. */
static void
te_parse(struct hp_fields *f, struct http_slice v)
{
	struct http_slice el;
	const char *p, *end;

	f->has_te = 1;
	p = v.p;
	end = v.p + v.len;
	while (p < end) {
		p = list_next(p, end, &el);
		/* RFC 9110 §5.6.1: empty elements don't count. */
		if (el.len == 0)
			continue;
		if (f->te_chunked)
			f->te_after_chunked = 1;
		if (slice_is(el, "chunked", 7))
			f->te_chunked = 1;
		else
			f->te_other = 1;
	}
}

/* RFC 9112 §6.2: Content-Length = 1*DIGIT, one field, no list. */
static int
cl_parse(struct http_request *req, struct http_slice v, int *status,
    const char **why)
{
	int64_t n;
	size_t i;
	unsigned d;

	if (v.len == 0)
		return hp_error(status, why, 400, "empty Content-Length");
	n = 0;
	for (i = 0; i < v.len; i++) {
		d = (unsigned)((uint8_t)v.p[i] - '0');
		if (d > 9)
			return hp_error(
			    status, why, 400, "invalid Content-Length");
		if (n > (INT64_MAX - (int64_t)d) / 10)
			return hp_error(
			    status, why, 400, "Content-Length overflow");
		n = n * 10 + (int64_t)d;
	}
	req->content_length = n;
	return CDN_OK;
}

/*
 * Note what one field means for framing and persistence.  Called for every
 * field, so it first tells the interesting names apart by length.
 */
static int
field_derive(struct http_request *req, struct hp_fields *f,
    const struct http_header *h, int *status, const char **why)
{
	struct http_slice el;
	const char *p, *end;

	switch (h->name.len) {
	case 4:
		if (!slice_is(h->name, "host", 4))
			break;
		/* RFC 9112 §3.2: one Host, with a valid value, or 400. */
		if (++f->n_host > 1)
			return hp_error(status, why, 400, "duplicate Host");
		if (!host_valid(h->value.p, h->value.len, 0))
			return hp_error(status, why, 400, "invalid Host");
		req->host = h->value;
		break;
	case 6:
		if (!slice_is(h->name, "expect", 6))
			break;
		p = h->value.p;
		end = p + h->value.len;
		while (p < end) {
			p = list_next(p, end, &el);
			if (slice_is(el, "100-continue", 12))
				f->expect_continue = 1;
		}
		break;
	case 10:
		if (!slice_is(h->name, "connection", 10))
			break;
		/* RFC 9112 §9.3, RFC 9110 §7.6.1: a list of options. */
		p = h->value.p;
		end = p + h->value.len;
		while (p < end) {
			p = list_next(p, end, &el);
			if (slice_is(el, "close", 5))
				f->conn_close = 1;
			else if (slice_is(el, "keep-alive", 10))
				f->conn_keep_alive = 1;
		}
		break;
	case 14:
		if (!slice_is(h->name, "content-length", 14))
			break;
		/*
		 * RFC 9112 §6.3: differing lengths are a smuggling vector;
		 * a repeated one, even equal, is refused outright.
		 */
		if (++f->n_cl > 1)
			return hp_error(
			    status, why, 400, "duplicate Content-Length");
		return cl_parse(req, h->value, status, why);
	case 17:
		if (slice_is(h->name, "transfer-encoding", 17))
			te_parse(f, h->value);
		break;
	}
	return CDN_OK;
}

/*
 * Classify the request-target (RFC 9112 §3.2) and split it into scheme,
 * authority, path and query.
 */
static int
target_split(struct http_request *req, int *status, const char **why)
{
	const char *t, *te, *a, *ae, *q;
	size_t skip;

	t = req->target.p;
	te = t + req->target.len;
	if (t[0] == '/') {
		/* §3.2.1 origin-form = absolute-path [ "?" query ] */
		if (req->method == HTTP_M_CONNECT)
			return hp_error(status, why, 400,
			    "CONNECT needs the authority-form");
		req->target_form = HTTP_TARGET_ORIGIN;
		a = t;
	} else if (req->method == HTTP_M_CONNECT) {
		/* §3.2.3 authority-form = uri-host ":" port */
		if (!host_valid(t, req->target.len, 1))
			return hp_error(
			    status, why, 400, "invalid authority-form target");
		req->target_form = HTTP_TARGET_AUTHORITY;
		req->path.p = slash;
		req->path.len = 1;
		return CDN_OK;
	} else if (req->target.len == 1 && t[0] == '*') {
		/* §3.2.4 asterisk-form */
		if (req->method != HTTP_M_OPTIONS)
			return hp_error(
			    status, why, 400, "asterisk-form needs OPTIONS");
		req->target_form = HTTP_TARGET_ASTERISK;
		req->path = req->target;
		return CDN_OK;
	} else {
		/* §3.2.2 absolute-form = absolute-URI, http or https only */
		if (req->target.len >= 7 && eq_lc(t, "http://", 7))
			skip = 4;
		else if (req->target.len >= 8 && eq_lc(t, "https://", 8))
			skip = 5;
		else
			return hp_error(
			    status, why, 400, "invalid request-target");
		req->target_form = HTTP_TARGET_ABSOLUTE;
		req->scheme.p = t;
		req->scheme.len = skip;
		a = t + skip + 3;
		for (ae = a; ae < te && *ae != '/' && *ae != '?'; ae++)
			continue;
		/* RFC 9110 §4.2.4: no userinfo; §4.2.1: no empty host. */
		if (!host_valid(a, (size_t)(ae - a), 0))
			return hp_error(status, why, 400,
			    "invalid authority in request-target");
		req->authority.p = a;
		req->authority.len = (size_t)(ae - a);
		a = ae;
		if (a == te || *a == '?') {
			/* An empty path is "/" (RFC 9110 §4.2.3). */
			req->path.p = slash;
			req->path.len = 1;
			if (a < te) {
				req->has_query = 1;
				req->query.p = a + 1;
				req->query.len = (size_t)(te - a - 1);
			}
			return CDN_OK;
		}
	}
	/* memchr() pays a call for the short paths of most requests. */
	if (te - a < 32) {
		for (q = a; q < te && *q != '?';)
			q++;
		if (q == te)
			q = NULL;
	} else {
		q = memchr(a, '?', (size_t)(te - a));
	}
	req->path.p = a;
	if (q == NULL) {
		req->path.len = (size_t)(te - a);
	} else {
		req->path.len = (size_t)(q - a);
		req->has_query = 1;
		req->query.p = q + 1;
		req->query.len = (size_t)(te - q - 1);
	}
	return CDN_OK;
}

/*
 * RFC 9112 §2.3 HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive.
 * Returns the minor version of 1.0 and 1.1, or an error.
 */
static int
version_parse(
    const char *p, size_t len, int *minor, int *status, const char **why)
{
	if (len == 8 && memcmp(p, "HTTP/1.", 7) == 0 &&
	    (p[7] == '0' || p[7] == '1')) {
		*minor = p[7] - '0';
		return CDN_OK;
	}
	if (len == 8 && memcmp(p, "HTTP/", 5) == 0 && p[5] >= '0' &&
	    p[5] <= '9' && p[6] == '.' && p[7] >= '0' && p[7] <= '9')
		return hp_error(status, why, 505, "unsupported HTTP version");
	return hp_error(status, why, 400, "invalid HTTP version");
}

/*
 * RFC 9113 §3.4: the first line of the HTTP/2 connection preface.  This is
 * an HTTP/1.1 port: the preface is a bad request, not a version to refuse
 * with 505 as a request line that merely says HTTP/2.0 is.
 */
static int
is_h2_preface(const struct http_request *req, const char *ver, size_t len)
{
	return req->method_str.len == 3 &&
	    memcmp(req->method_str.p, "PRI", 3) == 0 && req->target.len == 1 &&
	    req->target.p[0] == '*' && len == 8 &&
	    memcmp(ver, "HTTP/2.0", 8) == 0;
}

/*
 * RFC 9112 §6.1, §6.3: decide the framing once every field is known; sets
 * *chunked.
 */
static int
framing_decide(const struct http_request *req, const struct hp_fields *f,
    int *chunked, int *status, const char **why)
{
	*chunked = 0;
	if (!f->has_te)
		return CDN_OK;
	if (req->version_minor == 0)
		return hp_error(
		    status, why, 400, "Transfer-Encoding in HTTP/1.0");
	if (f->n_cl > 0)
		return hp_error(
		    status, why, 400, "Content-Length with Transfer-Encoding");
	if (f->te_after_chunked)
		return hp_error(status, why, 400,
		    "chunked is not the final transfer coding");
	if (f->te_other)
		return hp_error(
		    status, why, 501, "unsupported transfer coding");
	if (!f->te_chunked)
		return hp_error(status, why, 400, "empty Transfer-Encoding");
	*chunked = 1;
	return CDN_OK;
}

/* The contract is in http_parse.h. */
int
http_parse_request(const char *buf, size_t len, const struct http_limits *lim,
    struct http_request *req, int *status, const char **why)
{
	struct http_header *h;
	struct hp_fields f;
	const char *p, *q, *end, *rl_end, *nl, *ve;
	unsigned n_empty;
	int hb_full, rl_full, rc, chunked, minor;

	CDN_ASSERT(buf != NULL || len == 0);
	CDN_ASSERT(lim != NULL && req != NULL);
	CDN_ASSERT(status != NULL && why != NULL);
	CDN_ASSERT(req->headers != NULL || lim->max_headers == 0);

	/*
	 * Field by field, not memset(): on a short head the start-up cost of
	 * a string store for the whole struct is a third of the parse.
	 * req->headers is the caller's and stays.
	 */
	req->method = HTTP_M_OTHER;
	req->method_str = empty;
	req->target = empty;
	req->target_form = HTTP_TARGET_ORIGIN;
	req->scheme = empty;
	req->authority = empty;
	req->path = empty;
	req->query = empty;
	req->has_query = 0;
	req->version_minor = 0;
	req->n_headers = 0;
	req->host = empty;
	req->content_length = -1;
	req->is_chunked = 0;
	req->keep_alive = 0;
	req->expect_continue = 0;
	req->head_len = 0;
	memset(&f, 0, sizeof(f));
	if (len == 0)
		return CDN_AGAIN; /* buf may be NULL: no pointer arithmetic */

	/*
	 * Scan no further than the head may reach.  Running out at <end>
	 * means 431 when the limit cut it (the head is already too long:
	 * it needs more bytes than the limit allows), else CDN_AGAIN.
	 */
	hb_full = len >= lim->max_header_bytes;
	end = buf + (hb_full ? lim->max_header_bytes : len);
	p = buf;

	/* RFC 9112 §2.2: skip empty lines before the request line. */
	for (n_empty = 0;; n_empty++) {
		if (p == end)
			goto short_head;
		if (*p == '\r') {
			if (end - p < 2)
				goto short_head;
			if (p[1] != '\n')
				return hp_error(status, why, 400, "bare CR");
			p += 2;
		} else if (*p == '\n') {
			p++;
		} else {
			break;
		}
		if (n_empty == HTTP_MAX_EMPTY_LINES)
			return hp_error(status, why, 400,
			    "too many empty lines before the request");
	}

	/* The request line, CRLF included, may not exceed its own limit. */
	rl_full = lim->max_request_line <= (size_t)(end - p);
	rl_end = rl_full ? p + lim->max_request_line : end;

	/* RFC 9112 §3: method SP request-target SP HTTP-version CRLF */
	if (rl_end - p >= 4 && memcmp(p, "GET ", 4) == 0) {
		req->method = HTTP_M_GET;
		q = p + 3;
	} else {
		for (q = p;
		     q < rl_end && (http_cc_class[(uint8_t)*q] & CC_TCHAR);)
			q++;
		if (q == rl_end)
			goto short_line;
		if (q == p)
			return hp_error(status, why, 400, "invalid method");
		if (*q != ' ')
			return hp_error(
			    status, why, 400, "invalid byte after method");
		req->method = http_method_lookup(p, (size_t)(q - p));
	}
	req->method_str.p = p;
	req->method_str.len = (size_t)(q - p);
	p = q + 1;

	q = scan_target(p, rl_end);
	if (q == rl_end)
		goto short_line;
	if (q == p)
		return hp_error(status, why, 400, "empty request-target");
	if (*q != ' ') {
		/* Tell why only off the path of a good request. */
		if (*q == '\r' || *q == '\n')
			return hp_error(
			    status, why, 400, "missing HTTP version");
		return hp_error(status, why, 400,
		    *q == '#' ? "fragment in request-target"
		              : "invalid byte in request-target");
	}
	req->target.p = p;
	req->target.len = (size_t)(q - p);
	p = q + 1;

	/* HTTP/1.1 and HTTP/1.0 first: eight bytes and a line end. */
	if (rl_end - p >= 9 && memcmp(p, "HTTP/1.", 7) == 0 &&
	    (p[7] == '1' || p[7] == '0') && (p[8] == '\r' || p[8] == '\n')) {
		req->version_minor = p[7] - '0';
		q = p + 8;
	} else {
		for (q = p;
		     q < rl_end && (http_cc_class[(uint8_t)*q] & CC_FIELD);)
			q++;
		if (q == rl_end)
			goto short_line;
		if (*q != '\r' && *q != '\n')
			return hp_error(
			    status, why, 400, "invalid byte in HTTP version");
		if (is_h2_preface(req, p, (size_t)(q - p)))
			return hp_error(
			    status, why, 400, "HTTP/2 connection preface");
		rc = version_parse(
		    p, (size_t)(q - p), &req->version_minor, status, why);
		if (rc != CDN_OK)
			return rc;
	}
	if (*q == '\r') {
		if (rl_end - q < 2)
			goto short_line;
		if (q[1] != '\n')
			return hp_error(status, why, 400, "bare CR");
		q++;
	}
	p = q + 1;

	rc = target_split(req, status, why);
	if (rc != CDN_OK)
		return rc;

	/* RFC 9112 §5: field-line = field-name ":" OWS field-value OWS */
	for (;;) {
		if (p == end)
			goto short_head;
		if (*p == '\r') {
			if (end - p < 2)
				goto short_head;
			if (p[1] != '\n')
				return hp_error(status, why, 400, "bare CR");
			p += 2;
			break;
		}
		if (*p == '\n') {
			p++;
			break;
		}
		/*
		 * RFC 9112 §5.2: obs-fold is refused (§2.2 likewise for
		 * whitespace before the first field).
		 */
		if (is_ws(*p))
			return hp_error(status, why, 400, "obs-fold");
		if (req->n_headers == lim->max_headers)
			return hp_error(
			    status, why, 431, "too many header fields");

		q = scan_name(p, end);
		if (q == end)
			goto short_head;
		if (*q != ':') {
			/* RFC 9112 §5.1: no whitespace before the colon. */
			return hp_error(status, why, 400,
			    is_ws(*q) ? "whitespace before colon"
			              : "invalid field name");
		}
		if (q == p)
			return hp_error(status, why, 400, "empty field name");
		h = &req->headers[req->n_headers];
		h->name.p = p;
		h->name.len = (size_t)(q - p);

		for (q++; q < end && is_ws(*q);)
			q++;
		p = q;
		q = scan_field(q, end);
		if (q == end)
			goto short_head;
		if (*q == '\r') {
			if (end - q < 2)
				goto short_head;
			if (q[1] != '\n')
				return hp_error(status, why, 400, "bare CR");
			nl = q + 2;
		} else if (*q == '\n') {
			nl = q + 1;
		} else {
			return hp_error(
			    status, why, 400, "invalid byte in field value");
		}
		for (ve = q; ve > p && is_ws(ve[-1]);)
			ve--;
		h->value.p = p;
		h->value.len = (size_t)(ve - p);
		req->n_headers++;
		rc = field_derive(req, &f, h, status, why);
		if (rc != CDN_OK)
			return rc;
		p = nl;
	}
	req->head_len = (size_t)(p - buf);

	/* RFC 9112 §3.2: HTTP/1.1 needs exactly one Host. */
	if (req->version_minor == 1 && f.n_host == 0)
		return hp_error(status, why, 400, "missing Host");
	rc = framing_decide(req, &f, &chunked, status, why);
	if (rc != CDN_OK)
		return rc;
	/*
	 * RFC 9112 §9.3: 1.1 persists unless "close"; 1.0 only with
	 * "keep-alive" (RFC 9112 Appendix C.2.2).  RFC 9110 §10.1.1: ignore
	 * 100-continue from an HTTP/1.0 client.  The three bit-fields are
	 * stored together, so the compiler can merge the stores.
	 */
	minor = req->version_minor;
	req->is_chunked = chunked;
	req->keep_alive = !f.conn_close && (minor == 1 || f.conn_keep_alive);
	req->expect_continue = f.expect_continue && minor == 1;
	return CDN_OK;

short_line:
	if (rl_full)
		return hp_error(status, why, 414, "request line too long");
short_head:
	if (hb_full)
		return hp_error(status, why, 431, "request head too large");
	return CDN_AGAIN;
}

const struct http_header *
http_request_find_n(
    const struct http_request *req, const char *name, size_t len)
{
	unsigned i;

	CDN_ASSERT(req != NULL && name != NULL);
	for (i = 0; i < req->n_headers; i++)
		if (req->headers[i].name.len == len &&
		    eq_ci(req->headers[i].name.p, name, len))
			return &req->headers[i];
	return NULL;
}

int
http_mem_eq_ci(const char *p, const char *s, size_t len)
{
	return eq_ci(p, s, len);
}

/* ---- chunked body (RFC 9112 §7.1) ---- */

enum chunk_state {
	CH_SIZE0 = 0,   /* first HEXDIG of chunk-size */
	CH_SIZE,        /* more HEXDIGs */
	CH_SIZE_WS,     /* BWS after the size: ';' must follow */
	CH_EXT_PRE,     /* after ';': BWS, then chunk-ext-name */
	CH_EXT_NAME,    /* in chunk-ext-name */
	CH_EXT_NAME_WS, /* BWS after the name: '=' or ';' must follow */
	CH_EXT_VAL_PRE, /* after '=': BWS, then token or quoted-string */
	CH_EXT_VAL,     /* in a token value */
	CH_EXT_QS,      /* in a quoted-string value */
	CH_EXT_QP,      /* after a backslash in it */
	CH_EXT_VAL_END, /* after a value: BWS ';', or the line end */
	CH_EXT_VAL_WS,  /* BWS after a value: ';' must follow */
	CH_SIZE_LF,     /* CR ending the size line seen: LF must follow */
	CH_DATA,        /* chunk-data, <remaining> bytes to go */
	CH_DATA_END,    /* CRLF after chunk-data */
	CH_DATA_LF,     /* its CR seen: LF must follow */
	CH_TRAILER,     /* start of a trailer field line or the final one */
	CH_TR_NAME,     /* in a trailer field name */
	CH_TR_VALUE,    /* in a trailer field value */
	CH_TR_LF,       /* CR ending a trailer line seen */
	CH_END_LF,      /* CR of the final empty line seen */
	CH_DONE,
	CH_ERROR,
};

void
http_chunked_init(struct http_chunked *c, size_t max_line, size_t max_trailer)
{
	CDN_ASSERT(c != NULL);
	memset(c, 0, sizeof(*c));
	c->state = CH_SIZE0;
	c->max_line = max_line;
	c->max_trailer = max_trailer;
}

/* The size line ended: data follows, or the trailer section if size 0. */
static int
chunk_line_done(const struct http_chunked *c)
{
	return c->remaining > 0 ? CH_DATA : CH_TRAILER;
}

/*
 * The contract is in http_parse.h.  Framing is walked a byte at a time
 * through the states above; data is handed back as one run without a look.
 */
int
http_chunked_step(struct http_chunked *c, const char *buf, size_t len,
    size_t *framing, size_t *data, const char **why)
{
	const char *msg;
	size_t i, n;
	unsigned d;
	int st;
	uint8_t ch;

	CDN_ASSERT(c != NULL && (buf != NULL || len == 0));
	CDN_ASSERT(framing != NULL && data != NULL && why != NULL);
	*framing = 0;
	*data = 0;
	st = c->state;
	if (st == CH_DONE)
		return CDN_OK;
	if (st == CH_ERROR) {
		*why = "chunked decoder already failed";
		return CDN_EINVAL;
	}

	for (i = 0; i < len;) {
		if (st == CH_DATA) {
			n = len - i;
			if (n > c->remaining)
				n = (size_t)c->remaining;
			c->remaining -= n;
			if (c->remaining == 0)
				st = CH_DATA_END;
			c->state = st;
			*framing = i;
			*data = n;
			return CDN_AGAIN;
		}
		ch = (uint8_t)buf[i++];
		if (st <= CH_SIZE_LF && ++c->line_len > c->max_line) {
			msg = "chunk size line too long";
			goto fail;
		}
		if (st >= CH_TRAILER && st <= CH_TR_LF &&
		    (st != CH_TRAILER || (ch != '\r' && ch != '\n')) &&
		    ++c->trailer_len > c->max_trailer) {
			msg = "trailer section too large";
			goto fail;
		}
		switch (st) {
		case CH_SIZE0:
		case CH_SIZE:
			if (http_cc_class[ch] & CC_HEX) {
				d = ch <= '9' ? ch - '0'
				              : (ch | 0x20) - 'a' + 10;
				if (c->remaining > (HTTP_CHUNK_MAX - d) >> 4) {
					msg = "chunk size too large";
					goto fail;
				}
				c->remaining = (c->remaining << 4) | d;
				st = CH_SIZE;
				break;
			}
			if (st == CH_SIZE0) {
				msg = "invalid chunk size";
				goto fail;
			}
			if (ch == ';')
				st = CH_EXT_PRE;
			else if (is_ws((char)ch))
				st = CH_SIZE_WS;
			else if (ch == '\r')
				st = CH_SIZE_LF;
			else {
				msg = ch == '\n' ? "bare LF in chunk size line"
				                 : "invalid chunk size";
				goto fail;
			}
			break;
		case CH_SIZE_WS:
		case CH_EXT_VAL_WS:
			if (ch == ';')
				st = CH_EXT_PRE;
			else if (!is_ws((char)ch)) {
				msg = "invalid chunk extension";
				goto fail;
			}
			break;
		case CH_EXT_PRE:
			if (http_cc_class[ch] & CC_TCHAR)
				st = CH_EXT_NAME;
			else if (!is_ws((char)ch)) {
				msg = "invalid chunk extension";
				goto fail;
			}
			break;
		case CH_EXT_NAME:
			if (http_cc_class[ch] & CC_TCHAR)
				break;
			if (ch == '=') {
				st = CH_EXT_VAL_PRE;
				break;
			}
			if (is_ws((char)ch)) {
				st = CH_EXT_NAME_WS;
				break;
			}
			st = CH_EXT_VAL_END;
			goto val_end;
		case CH_EXT_NAME_WS:
			if (ch == '=')
				st = CH_EXT_VAL_PRE;
			else if (ch == ';')
				st = CH_EXT_PRE;
			else if (!is_ws((char)ch)) {
				msg = "invalid chunk extension";
				goto fail;
			}
			break;
		case CH_EXT_VAL_PRE:
			if (http_cc_class[ch] & CC_TCHAR)
				st = CH_EXT_VAL;
			else if (ch == '"')
				st = CH_EXT_QS;
			else if (!is_ws((char)ch)) {
				msg = "invalid chunk extension";
				goto fail;
			}
			break;
		case CH_EXT_VAL:
			if (http_cc_class[ch] & CC_TCHAR)
				break;
			goto val_end;
		case CH_EXT_QS:
			if (ch == '"')
				st = CH_EXT_VAL_END;
			else if (ch == '\\')
				st = CH_EXT_QP;
			else if (!(http_cc_class[ch] & CC_QDTEXT)) {
				msg = "invalid chunk extension";
				goto fail;
			}
			break;
		case CH_EXT_QP:
			/* RFC 9110 §5.6.4 quoted-pair */
			if (!(http_cc_class[ch] & CC_FIELD)) {
				msg = "invalid chunk extension";
				goto fail;
			}
			st = CH_EXT_QS;
			break;
		case CH_EXT_VAL_END:
		val_end:
			if (ch == ';')
				st = CH_EXT_PRE;
			else if (is_ws((char)ch))
				st = CH_EXT_VAL_WS;
			else if (ch == '\r')
				st = CH_SIZE_LF;
			else {
				msg = ch == '\n' ? "bare LF in chunk size line"
				                 : "invalid chunk extension";
				goto fail;
			}
			break;
		case CH_SIZE_LF:
			if (ch != '\n') {
				msg = "bare CR in chunk size line";
				goto fail;
			}
			st = chunk_line_done(c);
			break;
		case CH_DATA_END:
			if (ch != '\r') {
				msg = ch == '\n'
				    ? "bare LF after chunk data"
				    : "missing CRLF after chunk data";
				goto fail;
			}
			st = CH_DATA_LF;
			break;
		case CH_DATA_LF:
			if (ch != '\n') {
				msg = "missing CRLF after chunk data";
				goto fail;
			}
			st = CH_SIZE0;
			break;
		case CH_TRAILER:
			if (ch == '\r')
				st = CH_END_LF;
			else if (http_cc_class[ch] & CC_TCHAR)
				st = CH_TR_NAME;
			else {
				msg = ch == '\n' ? "bare LF in trailer section"
				    : is_ws((char)ch) ? "obs-fold in trailer"
				                      : "invalid trailer field";
				goto fail;
			}
			break;
		case CH_TR_NAME:
			if (ch == ':')
				st = CH_TR_VALUE;
			else if (!(http_cc_class[ch] & CC_TCHAR)) {
				msg = "invalid trailer field name";
				goto fail;
			}
			break;
		case CH_TR_VALUE:
			if (ch == '\r')
				st = CH_TR_LF;
			else if (!(http_cc_class[ch] & CC_FIELD)) {
				msg = ch == '\n'
				    ? "bare LF in trailer section"
				    : "invalid trailer field value";
				goto fail;
			}
			break;
		case CH_TR_LF:
			if (ch != '\n') {
				msg = "bare CR in trailer";
				goto fail;
			}
			st = CH_TRAILER;
			break;
		case CH_END_LF:
			if (ch != '\n') {
				msg = "bare CR after trailer";
				goto fail;
			}
			goto done;
		default:
			CDN_ASSERT(!"chunked decoder state");
		}
		if (st == CH_SIZE0)
			c->line_len = 0;
	}
	c->state = st;
	*framing = len;
	return CDN_AGAIN;

done:
	c->state = CH_DONE;
	*framing = i;
	return CDN_OK;

fail:
	c->state = CH_ERROR;
	*why = msg;
	return CDN_EINVAL;
}

const char *
http_status_reason(int status)
{
	/* RFC 9110 §15 names, plus the registered WebDAV/RFC 6585 ones. */
	switch (status) {
	case 100:
		return "Continue";
	case 101:
		return "Switching Protocols";
	case 102:
		return "Processing";
	case 103:
		return "Early Hints";
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 202:
		return "Accepted";
	case 203:
		return "Non-Authoritative Information";
	case 204:
		return "No Content";
	case 205:
		return "Reset Content";
	case 206:
		return "Partial Content";
	case 207:
		return "Multi-Status";
	case 208:
		return "Already Reported";
	case 226:
		return "IM Used";
	case 300:
		return "Multiple Choices";
	case 301:
		return "Moved Permanently";
	case 302:
		return "Found";
	case 303:
		return "See Other";
	case 304:
		return "Not Modified";
	case 305:
		return "Use Proxy";
	case 307:
		return "Temporary Redirect";
	case 308:
		return "Permanent Redirect";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 402:
		return "Payment Required";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 406:
		return "Not Acceptable";
	case 407:
		return "Proxy Authentication Required";
	case 408:
		return "Request Timeout";
	case 409:
		return "Conflict";
	case 410:
		return "Gone";
	case 411:
		return "Length Required";
	case 412:
		return "Precondition Failed";
	case 413:
		return "Content Too Large";
	case 414:
		return "URI Too Long";
	case 415:
		return "Unsupported Media Type";
	case 416:
		return "Range Not Satisfiable";
	case 417:
		return "Expectation Failed";
	case 421:
		return "Misdirected Request";
	case 422:
		return "Unprocessable Content";
	case 423:
		return "Locked";
	case 424:
		return "Failed Dependency";
	case 425:
		return "Too Early";
	case 426:
		return "Upgrade Required";
	case 428:
		return "Precondition Required";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 451:
		return "Unavailable For Legal Reasons";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 505:
		return "HTTP Version Not Supported";
	case 506:
		return "Variant Also Negotiates";
	case 507:
		return "Insufficient Storage";
	case 508:
		return "Loop Detected";
	case 510:
		return "Not Extended";
	case 511:
		return "Network Authentication Required";
	}
	return "Unknown";
}
