/*
 * libFuzzer target for http/http_parse.c.
 *
 * The input is parsed as a request head under tight and under normal limits,
 * and decoded as a chunked body both whole and in pseudo-random splits drawn
 * from the input itself.  Beyond the sanitizers' own checks it asserts what
 * callers rely on: results inside the buffer, head_len within len, error
 * statuses from the documented set, the same answer for a head however much
 * follows it or however little of it has arrived, and a chunked decoder whose
 * result does not depend on how the bytes were split.  Both are also checked
 * against small reference implementations written line by line from RFC
 * 9112, which catch what no invariant can: accepting what should be refused
 * (or the reverse), and wrong values.
 *
 * Build: clang -fsanitize=fuzzer,address,undefined (--enable-fuzz), or by
 * hand: clang -fsanitize=fuzzer,address,undefined -I. -I<dir of config.h>
 *     tests/fuzz/fuzz_http_parse.c common/cdn_util.c
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/cdn.h"
#include "http/http_parse.h"

#define FZ_MAX_HEADERS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A slice lies inside buf[0..len) (or is the parser's static "/"). */
static void
check_slice(struct http_slice s, const char *buf, size_t len, int may_static)
{
	if (s.len == 0)
		return;
	CDN_ASSERT(s.p != NULL);
	if (may_static && s.len == 1 && s.p[0] == '/' &&
	    (s.p < buf || s.p >= buf + len))
		return;
	CDN_ASSERT(s.p >= buf && s.p + s.len <= buf + len);
}

static void
check_request(const struct http_request *req, const char *buf, size_t len,
    const struct http_limits *lim)
{
	unsigned i;

	CDN_ASSERT(req->head_len > 0 && req->head_len <= len);
	CDN_ASSERT(req->head_len <= lim->max_header_bytes);
	CDN_ASSERT(req->n_headers <= lim->max_headers);
	CDN_ASSERT(req->version_minor == 0 || req->version_minor == 1);
	CDN_ASSERT(req->method_str.len > 0);
	CDN_ASSERT(req->target.len > 0);
	CDN_ASSERT(req->path.len > 0);
	check_slice(req->method_str, buf, req->head_len, 0);
	check_slice(req->target, buf, req->head_len, 0);
	check_slice(req->scheme, buf, req->head_len, 0);
	check_slice(req->authority, buf, req->head_len, 0);
	check_slice(req->path, buf, req->head_len, 1);
	check_slice(req->query, buf, req->head_len, 0);
	check_slice(req->host, buf, req->head_len, 0);
	for (i = 0; i < req->n_headers; i++) {
		CDN_ASSERT(req->headers[i].name.len > 0);
		check_slice(req->headers[i].name, buf, req->head_len, 0);
		check_slice(req->headers[i].value, buf, req->head_len, 0);
	}
	if (req->target_form == HTTP_TARGET_ABSOLUTE)
		CDN_ASSERT(req->scheme.len > 0 && req->authority.len > 0);
	if (req->version_minor == 1)
		CDN_ASSERT(req->host.len > 0);
	CDN_ASSERT(!(req->is_chunked && req->content_length >= 0));
	CDN_ASSERT(req->content_length >= -1);
}

/*
 * Parse buf[0..len) copied into an allocation of exactly len bytes, so
 * that reading one byte too far is caught.
 */
static int
parse_exact(const uint8_t *data, size_t len, const struct http_limits *lim,
    struct http_request *req, struct http_header *hdrs, int *status)
{
	const char *why;
	char *buf;
	int rc;

	buf = malloc(len > 0 ? len : 1);
	CDN_ASSERT(buf != NULL);
	if (len > 0)
		memcpy(buf, data, len);
	req->headers = hdrs;
	why = NULL;
	*status = 0;
	rc = http_parse_request(buf, len, lim, req, status, &why);
	if (rc == CDN_OK) {
		check_request(req, buf, len, lim);
	} else if (rc == CDN_EINVAL) {
		CDN_ASSERT(why != NULL && why[0] != '\0');
		CDN_ASSERT(*status == 400 || *status == 414 || *status == 431 ||
		    *status == 501 || *status == 505);
	} else {
		CDN_ASSERT(rc == CDN_AGAIN);
	}
	free(buf);
	return rc;
}

/*
 * Parse the input under <lim>; returns the rc and sets *head_len (on
 * CDN_OK) or *status (on CDN_EINVAL).
 */
static int
fuzz_head(const uint8_t *data, size_t size, const struct http_limits *lim,
    size_t *head_len, int *status)
{
	static struct http_header hdrs[FZ_MAX_HEADERS], hdrs2[FZ_MAX_HEADERS];
	struct http_request req, req2;
	size_t cut;
	int rc, rc2, status2;

	rc = parse_exact(data, size, lim, &req, hdrs, status);
	*head_len = rc == CDN_OK ? req.head_len : 0;

	/*
	 * The parser never changes its mind as bytes arrive: a prefix is
	 * still CDN_AGAIN, or already gives the answer the whole gives.
	 */
	cut = size > 0 ? (size * 7 + data[0]) % (size + 1) : 0;
	rc2 = parse_exact(data, cut, lim, &req2, hdrs2, &status2);
	if (rc2 == CDN_OK) {
		CDN_ASSERT(rc == CDN_OK && req2.head_len == req.head_len);
	} else if (rc2 == CDN_EINVAL) {
		CDN_ASSERT(rc == CDN_EINVAL && status2 == *status);
	}
	if (rc != CDN_OK)
		return rc;

	/* The head alone parses the same; one byte less is not enough. */
	rc2 = parse_exact(data, req.head_len, lim, &req2, hdrs2, &status2);
	CDN_ASSERT(rc2 == CDN_OK);
	CDN_ASSERT(req2.head_len == req.head_len);
	CDN_ASSERT(req2.n_headers == req.n_headers);
	CDN_ASSERT(req2.method == req.method);
	CDN_ASSERT(req2.content_length == req.content_length);
	CDN_ASSERT(req2.keep_alive == req.keep_alive);
	CDN_ASSERT(req2.is_chunked == req.is_chunked);
	CDN_ASSERT(req2.expect_continue == req.expect_continue);
	rc2 = parse_exact(data, req.head_len - 1, lim, &req2, hdrs2, &status2);
	CDN_ASSERT(rc2 == CDN_AGAIN);
	return rc;
}

struct fz_chunk_result {
	int rc;
	size_t used;     /* framing + data consumed */
	size_t data_len; /* data bytes delivered */
	uint32_t hash;   /* of the data bytes, in order */
};

/*
 * Decode buf[0..len) as a connection would see it: bytes arrive in pieces
 * (whole when seed is 0, else sizes drawn from seed) and the decoder is
 * handed what arrived and was not consumed yet.
 */
static struct fz_chunk_result
decode(const char *buf, size_t len, uint32_t seed, size_t max_line,
    size_t max_trailer)
{
	struct fz_chunk_result r;
	struct http_chunked c;
	const char *why;
	size_t avail, fr, da, i;
	int rc;

	http_chunked_init(&c, max_line, max_trailer);
	memset(&r, 0, sizeof(r));
	r.hash = 2166136261u;
	avail = seed == 0 ? len : 0;
	for (;;) {
		why = NULL;
		rc = http_chunked_step(
		    &c, buf + r.used, avail - r.used, &fr, &da, &why);
		if (rc == CDN_EINVAL) {
			CDN_ASSERT(why != NULL);
			break;
		}
		CDN_ASSERT(rc == CDN_OK || rc == CDN_AGAIN);
		CDN_ASSERT(fr + da <= avail - r.used);
		for (i = 0; i < da; i++)
			r.hash = (r.hash ^ (uint8_t)buf[r.used + fr + i]) *
			    16777619u;
		r.data_len += da;
		r.used += fr + da;
		if (rc == CDN_OK) {
			CDN_ASSERT(da == 0);
			break;
		}
		if (r.used < avail && fr + da > 0)
			continue;
		/* No progress is only allowed with nothing to look at. */
		CDN_ASSERT(r.used == avail);
		if (avail == len)
			break;
		seed = seed * 1103515245u + 12345u;
		avail += 1 + (seed >> 16) % 23;
		if (avail > len)
			avail = len;
	}
	r.rc = rc;
	CDN_ASSERT(r.used <= len && r.data_len <= r.used);
	return r;
}

/*
 * A second chunked decoder, written from RFC 9112 §7.1 a line at a time on
 * the whole buffer, sharing no code with the real one: the fuzzer compares
 * the two.  REF_MORE: the input ends inside a size or trailer line, where
 * the real decoder may already have failed or may still be waiting.
 */
#define REF_MORE 1

static int
ref_tchar(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z') || (c != 0 && strchr("!#$%&'*+-.^_`|~", c));
}

static int
ref_hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* SP, HTAB, VCHAR, obs-text */
static int
ref_text(int c)
{
	return c == ' ' || c == '\t' || (c >= 0x21 && c != 0x7f);
}

static size_t
ref_bws(const uint8_t *l, size_t i, size_t n)
{
	while (i < n && (l[i] == ' ' || l[i] == '\t'))
		i++;
	return i;
}

/* chunk-size [ chunk-ext ] without the line end; *size on success. */
static int
ref_size_line(const uint8_t *l, size_t n, uint64_t *size)
{
	size_t i, j;
	int d;

	*size = 0;
	for (i = 0; i < n && (d = ref_hex(l[i])) >= 0; i++) {
		if (*size > ((UINT64_C(1) << 62) - (uint64_t)d) / 16)
			return CDN_EINVAL;
		*size = *size * 16 + (uint64_t)d;
	}
	if (i == 0)
		return CDN_EINVAL;
	/* *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ) */
	while (i < n) {
		i = ref_bws(l, i, n);
		if (i == n || l[i] != ';')
			return CDN_EINVAL;
		i = ref_bws(l, i + 1, n);
		for (j = i; i < n && ref_tchar(l[i]); i++)
			continue;
		if (i == j)
			return CDN_EINVAL;
		j = ref_bws(l, i, n);
		if (j == n || l[j] != '=')
			continue; /* the next round wants ';' after BWS */
		i = ref_bws(l, j + 1, n);
		if (i < n && l[i] == '"') {
			for (i++; i < n && l[i] != '"'; i++) {
				if (l[i] == '\\' && ++i == n)
					return CDN_EINVAL;
				if (!ref_text(l[i]))
					return CDN_EINVAL;
			}
			if (i == n)
				return CDN_EINVAL;
			i++;
		} else {
			for (j = i; i < n && ref_tchar(l[i]); i++)
				continue;
			if (i == j)
				return CDN_EINVAL;
		}
	}
	return CDN_OK;
}

/*
 * Find a line at buf[pos..len): its content length without CR LF.  A head
 * line may end in a bare LF (RFC 9112 §2.2); with <crlf>, as the lines of
 * a chunked body must, it may not.
 */
static int
ref_line(const uint8_t *buf, size_t len, size_t pos, int crlf, size_t *n,
    size_t *next)
{
	const uint8_t *lf;

	lf = memchr(buf + pos, '\n', len - pos);
	if (lf == NULL)
		return REF_MORE;
	*next = (size_t)(lf - buf) + 1;
	*n = (size_t)(lf - buf) - pos;
	if (*n > 0 && buf[pos + *n - 1] == '\r')
		(*n)--;
	else if (crlf)
		return CDN_EINVAL; /* a bare LF */
	if (memchr(buf + pos, '\r', *n) != NULL)
		return CDN_EINVAL; /* a bare CR */
	return CDN_OK;
}

static struct fz_chunk_result
ref_decode(const uint8_t *buf, size_t len, size_t max_line, size_t max_trailer)
{
	struct fz_chunk_result r;
	uint64_t size;
	size_t pos, n, next, i, trailers;

	memset(&r, 0, sizeof(r));
	r.hash = 2166136261u;
	pos = 0;
	for (;;) {
		r.rc = ref_line(buf, len, pos, 1, &n, &next);
		if (r.rc == REF_MORE && len - pos > max_line)
			r.rc = CDN_EINVAL;
		if (r.rc != CDN_OK)
			return r;
		if (next - pos > max_line)
			return r.rc = CDN_EINVAL, r;
		r.rc = ref_size_line(buf + pos, n, &size);
		if (r.rc != CDN_OK)
			return r;
		pos = next;
		if (size == 0)
			break;
		for (i = 0; i < size && pos < len; i++, pos++)
			r.hash = (r.hash ^ buf[pos]) * 16777619u;
		r.data_len += i;
		if (pos == len) {
			r.rc = CDN_AGAIN;
			return r;
		}
		if (buf[pos] != '\r')
			return r.rc = CDN_EINVAL, r;
		if (++pos == len) {
			r.rc = CDN_AGAIN;
			return r;
		}
		if (buf[pos] != '\n')
			return r.rc = CDN_EINVAL, r;
		pos++;
	}
	/* trailer-section = *( field-line CRLF ), then CRLF */
	trailers = 0;
	for (;;) {
		r.rc = ref_line(buf, len, pos, 1, &n, &next);
		if (r.rc == REF_MORE && len - pos > 0 &&
		    trailers + (len - pos) > max_trailer &&
		    !(len - pos == 1 && buf[pos] == '\r'))
			r.rc = CDN_EINVAL;
		if (r.rc != CDN_OK)
			return r;
		if (n == 0) {
			r.used = next;
			return r;
		}
		trailers += next - pos;
		if (trailers > max_trailer)
			return r.rc = CDN_EINVAL, r;
		for (i = 0; i < n && ref_tchar(buf[pos + i]); i++)
			continue;
		if (i == 0 || i == n || buf[pos + i] != ':')
			return r.rc = CDN_EINVAL, r;
		for (i++; i < n; i++)
			if (!ref_text(buf[pos + i]))
				return r.rc = CDN_EINVAL, r;
		pos = next;
	}
}

/*
 * A reference request parser, written from RFC 9112 a line at a time on a
 * complete head and sharing no code with the real one, for what the real
 * one must accept and what it must find.  No byte limits (the fuzzer gives
 * the real parser huge ones for the comparison); max_headers does apply.
 */
struct ref_req {
	int rc; /* CDN_OK, CDN_EINVAL or REF_MORE */
	size_t head_len;
	enum http_method method;
	struct http_slice method_str, target, scheme, authority, path, query;
	int path_is_static, has_query, minor;
	enum http_target_form form;
	unsigned n_headers;
	struct http_header hdrs[FZ_MAX_HEADERS];
	struct http_slice host;
	int64_t content_length;
	int is_chunked, keep_alive, expect_continue;
};

static int
ref_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static int
ref_eq_ci(const char *p, size_t n, const char *s)
{
	size_t i;

	if (strlen(s) != n)
		return 0;
	for (i = 0; i < n; i++)
		if (ref_lower((uint8_t)p[i]) != s[i])
			return 0;
	return 1;
}

static int
ref_ws(int c)
{
	return c == ' ' || c == '\t';
}

/* RFC 3986 reg-name bytes: unreserved, pct-encoded's '%', sub-delims */
static int
ref_regname(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z') ||
	    (c != 0 && strchr("-._~%!$&'()*+,;=", c) != NULL);
}

/* uri-host [ ":" port ] with a non-empty host; the port if need_port. */
static int
ref_host(const char *p, size_t n, int need_port)
{
	const char *rb;
	size_t hl, i;

	if (n > 0 && p[0] == '[') {
		rb = memchr(p, ']', n);
		if (rb == NULL || rb == p + 1)
			return 0;
		for (i = 1; p + i < rb; i++)
			if (!ref_regname((uint8_t)p[i]) && p[i] != ':')
				return 0;
		hl = (size_t)(rb - p) + 1;
	} else {
		for (hl = 0; hl < n && ref_regname((uint8_t)p[hl]); hl++)
			continue;
		if (hl == 0)
			return 0;
	}
	if (hl == n)
		return !need_port;
	if (p[hl] != ':')
		return 0;
	if (hl + 1 == n)
		return !need_port;
	for (i = hl + 1; i < n; i++)
		if (p[i] < '0' || p[i] > '9')
			return 0;
	return 1;
}

static enum http_method
ref_method(const char *p, size_t n)
{
	static const char *names[] = {"GET", "HEAD", "POST", "PUT", "DELETE",
	    "PATCH", "OPTIONS", "TRACE", "CONNECT", "PURGE"};
	static const enum http_method ids[] = {HTTP_M_GET, HTTP_M_HEAD,
	    HTTP_M_POST, HTTP_M_PUT, HTTP_M_DELETE, HTTP_M_PATCH,
	    HTTP_M_OPTIONS, HTTP_M_TRACE, HTTP_M_CONNECT, HTTP_M_PURGE};
	size_t i;

	for (i = 0; i < CDN_ARRAY_LEN(names); i++)
		if (strlen(names[i]) == n && memcmp(names[i], p, n) == 0)
			return ids[i];
	return HTTP_M_OTHER;
}

static struct http_slice
ref_slice(const char *p, size_t n)
{
	struct http_slice s;

	s.p = n > 0 ? p : NULL;
	s.len = n;
	return s;
}

/* Split request-target t[0..n) as RFC 9112 §3.2 says. */
static int
ref_target(struct ref_req *r, const char *t, size_t n)
{
	const char *end, *a, *ae, *q;
	size_t skip;

	end = t + n;
	if (t[0] == '/') {
		if (r->method == HTTP_M_CONNECT)
			return CDN_EINVAL;
		r->form = HTTP_TARGET_ORIGIN;
		a = t;
	} else if (r->method == HTTP_M_CONNECT) {
		if (!ref_host(t, n, 1))
			return CDN_EINVAL;
		r->form = HTTP_TARGET_AUTHORITY;
		r->path_is_static = 1;
		return CDN_OK;
	} else if (n == 1 && t[0] == '*') {
		if (r->method != HTTP_M_OPTIONS)
			return CDN_EINVAL;
		r->form = HTTP_TARGET_ASTERISK;
		r->path = ref_slice(t, 1);
		return CDN_OK;
	} else {
		if (n >= 7 && ref_eq_ci(t, 7, "http://"))
			skip = 4;
		else if (n >= 8 && ref_eq_ci(t, 8, "https://"))
			skip = 5;
		else
			return CDN_EINVAL;
		r->form = HTTP_TARGET_ABSOLUTE;
		r->scheme = ref_slice(t, skip);
		a = t + skip + 3;
		for (ae = a; ae < end && *ae != '/' && *ae != '?'; ae++)
			continue;
		if (!ref_host(a, (size_t)(ae - a), 0))
			return CDN_EINVAL;
		r->authority = ref_slice(a, (size_t)(ae - a));
		if (ae == end || *ae == '?') {
			r->path_is_static = 1;
			if (ae < end) {
				r->has_query = 1;
				r->query =
				    ref_slice(ae + 1, (size_t)(end - ae - 1));
			}
			return CDN_OK;
		}
		a = ae;
	}
	q = memchr(a, '?', (size_t)(end - a));
	if (q == NULL)
		q = end;
	r->path = ref_slice(a, (size_t)(q - a));
	if (q < end) {
		r->has_query = 1;
		r->query = ref_slice(q + 1, (size_t)(end - q - 1));
	}
	return CDN_OK;
}

/* Call fn on each non-empty element (OWS removed) of a #list value. */
static void
ref_list(const char *v, size_t n,
    void (*fn)(struct ref_req *, const char *, size_t, void *),
    struct ref_req *r, void *arg)
{
	const char *end, *e, *s;

	if (n == 0)
		return;
	end = v + n;
	while (v < end) {
		e = memchr(v, ',', (size_t)(end - v));
		if (e == NULL)
			e = end;
		for (s = v; s < e && ref_ws(*s); s++)
			continue;
		while (e > s && ref_ws(e[-1]))
			e--;
		if (e > s)
			fn(r, s, (size_t)(e - s), arg);
		e = memchr(v, ',', (size_t)(end - v));
		v = e == NULL ? end : e + 1;
	}
}

struct ref_flags {
	int te, te_chunked, te_after, te_other;
	int conn_close, conn_ka, expect;
};

static void
ref_te(struct ref_req *r, const char *p, size_t n, void *arg)
{
	struct ref_flags *f = arg;

	(void)r;
	if (f->te_chunked)
		f->te_after = 1;
	if (ref_eq_ci(p, n, "chunked"))
		f->te_chunked = 1;
	else
		f->te_other = 1;
}

static void
ref_conn(struct ref_req *r, const char *p, size_t n, void *arg)
{
	struct ref_flags *f = arg;

	(void)r;
	if (ref_eq_ci(p, n, "close"))
		f->conn_close = 1;
	if (ref_eq_ci(p, n, "keep-alive"))
		f->conn_ka = 1;
}

static void
ref_expect(struct ref_req *r, const char *p, size_t n, void *arg)
{
	struct ref_flags *f = arg;

	(void)r;
	if (ref_eq_ci(p, n, "100-continue"))
		f->expect = 1;
}

static int
ref_field(struct ref_req *r, struct ref_flags *f, const char *l, size_t n,
    unsigned *n_host, unsigned *n_cl)
{
	struct http_header *h;
	size_t i, nl, vs, ve;
	int64_t cl;

	if (ref_ws((uint8_t)l[0]))
		return CDN_EINVAL; /* obs-fold */
	for (i = 0; i < n && ref_tchar((uint8_t)l[i]); i++)
		continue;
	if (i == 0 || i == n || l[i] != ':')
		return CDN_EINVAL;
	nl = i;
	for (vs = i + 1; vs < n && ref_ws((uint8_t)l[vs]); vs++)
		continue;
	for (ve = n; ve > vs && ref_ws((uint8_t)l[ve - 1]); ve--)
		continue;
	for (i = vs; i < n; i++)
		if (!ref_text((uint8_t)l[i]))
			return CDN_EINVAL;
	h = &r->hdrs[r->n_headers++];
	h->name = ref_slice(l, nl);
	h->value = ref_slice(l + vs, ve - vs);
	if (ref_eq_ci(h->name.p, h->name.len, "host")) {
		if (++*n_host > 1 || !ref_host(h->value.p, h->value.len, 0))
			return CDN_EINVAL;
		r->host = h->value;
	} else if (ref_eq_ci(h->name.p, h->name.len, "content-length")) {
		if (++*n_cl > 1 || h->value.len == 0)
			return CDN_EINVAL;
		cl = 0;
		for (i = 0; i < h->value.len; i++) {
			if (h->value.p[i] < '0' || h->value.p[i] > '9')
				return CDN_EINVAL;
			if (cl > (INT64_MAX - (h->value.p[i] - '0')) / 10)
				return CDN_EINVAL;
			cl = cl * 10 + (h->value.p[i] - '0');
		}
		r->content_length = cl;
	} else if (ref_eq_ci(h->name.p, h->name.len, "transfer-encoding")) {
		f->te = 1;
		ref_list(h->value.p, h->value.len, ref_te, r, f);
	} else if (ref_eq_ci(h->name.p, h->name.len, "connection")) {
		ref_list(h->value.p, h->value.len, ref_conn, r, f);
	} else if (ref_eq_ci(h->name.p, h->name.len, "expect")) {
		ref_list(h->value.p, h->value.len, ref_expect, r, f);
	}
	return CDN_OK;
}

static void
ref_parse(const char *b, size_t len, unsigned max_headers, struct ref_req *r)
{
	struct ref_flags f;
	const char *l, *sp1, *sp2;
	size_t pos, n, next, nempty;
	unsigned n_host, n_cl;

	memset(r, 0, sizeof(*r));
	memset(&f, 0, sizeof(f));
	r->content_length = -1;
	pos = 0;
	for (nempty = 0;; nempty++) {
		r->rc = ref_line((const uint8_t *)b, len, pos, 0, &n, &next);
		if (r->rc != CDN_OK)
			return;
		if (n > 0)
			break;
		if (nempty == 8)
			return (void)(r->rc = CDN_EINVAL);
		pos = next;
	}

	/* method SP request-target SP HTTP-version */
	l = b + pos;
	r->rc = CDN_EINVAL;
	sp1 = memchr(l, ' ', n);
	if (sp1 == NULL || sp1 == l)
		return;
	sp2 = memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - l));
	if (sp2 == NULL || sp2 == sp1 + 1)
		return;
	r->method_str = ref_slice(l, (size_t)(sp1 - l));
	r->target = ref_slice(sp1 + 1, (size_t)(sp2 - sp1 - 1));
	/* RFC 9112 §3.2: no CTL, SP, DEL, and no fragment. */
	for (n = (size_t)(l + n - sp2 - 1), l = sp1 + 1; l < sp2; l++)
		if ((uint8_t)*l <= 0x20 || *l == 0x7f || *l == '#')
			return;
	for (l = r->method_str.p; l < sp1; l++)
		if (!ref_tchar((uint8_t)*l))
			return;
	if (n != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0 ||
	    (sp2[8] != '0' && sp2[8] != '1'))
		return;
	r->minor = sp2[8] - '0';
	r->method = ref_method(r->method_str.p, r->method_str.len);
	if (ref_target(r, r->target.p, r->target.len) != CDN_OK)
		return;

	n_host = n_cl = 0;
	pos = next;
	for (;;) {
		r->rc = ref_line((const uint8_t *)b, len, pos, 0, &n, &next);
		if (r->rc != CDN_OK)
			return;
		if (n == 0)
			break;
		r->rc = CDN_EINVAL;
		if (r->n_headers == max_headers)
			return;
		if (ref_field(r, &f, b + pos, n, &n_host, &n_cl) != CDN_OK)
			return;
		pos = next;
	}
	r->head_len = next;
	r->rc = CDN_EINVAL;
	if (r->minor == 1 && n_host == 0)
		return;
	if (f.te) {
		if (r->minor == 0 || n_cl > 0 || f.te_after || f.te_other ||
		    !f.te_chunked)
			return;
		r->is_chunked = 1;
	}
	r->keep_alive = !f.conn_close && (r->minor == 1 || f.conn_ka);
	r->expect_continue = f.expect && r->minor == 1;
	r->rc = CDN_OK;
}

static int
same_slice(struct http_slice a, struct http_slice b)
{
	return a.len == b.len && (a.len == 0 || a.p == b.p);
}

/* The real parser against the reference, on one buffer. */
static void
fuzz_head_ref(const uint8_t *data, size_t size)
{
	static struct http_header hdrs[FZ_MAX_HEADERS];
	static struct ref_req r;
	static const struct http_limits huge = {
	    (size_t)1 << 30, (size_t)1 << 30, FZ_MAX_HEADERS};
	struct http_request req;
	const char *buf, *why;
	unsigned i;
	int rc, status;

	buf = (const char *)data;
	ref_parse(buf, size, FZ_MAX_HEADERS, &r);
	req.headers = hdrs;
	rc = http_parse_request(buf, size, &huge, &req, &status, &why);
	if (r.rc == REF_MORE) {
		CDN_ASSERT(rc == CDN_AGAIN || rc == CDN_EINVAL);
		return;
	}
	CDN_ASSERT(rc == r.rc);
	if (rc != CDN_OK)
		return;
	CDN_ASSERT(req.head_len == r.head_len);
	CDN_ASSERT(req.method == r.method);
	CDN_ASSERT(same_slice(req.method_str, r.method_str));
	CDN_ASSERT(same_slice(req.target, r.target));
	CDN_ASSERT(req.target_form == r.form);
	CDN_ASSERT(same_slice(req.scheme, r.scheme));
	CDN_ASSERT(same_slice(req.authority, r.authority));
	if (r.path_is_static)
		CDN_ASSERT(req.path.len == 1 && req.path.p[0] == '/' &&
		    (req.path.p < buf || req.path.p >= buf + size));
	else
		CDN_ASSERT(same_slice(req.path, r.path));
	CDN_ASSERT(req.has_query == (unsigned)r.has_query);
	CDN_ASSERT(same_slice(req.query, r.query));
	CDN_ASSERT(req.version_minor == r.minor);
	CDN_ASSERT(req.n_headers == r.n_headers);
	for (i = 0; i < r.n_headers; i++) {
		CDN_ASSERT(same_slice(req.headers[i].name, r.hdrs[i].name));
		CDN_ASSERT(same_slice(req.headers[i].value, r.hdrs[i].value));
	}
	CDN_ASSERT(same_slice(req.host, r.host));
	CDN_ASSERT(req.content_length == r.content_length);
	CDN_ASSERT(req.is_chunked == (unsigned)r.is_chunked);
	CDN_ASSERT(req.keep_alive == (unsigned)r.keep_alive);
	CDN_ASSERT(req.expect_continue == (unsigned)r.expect_continue);
}

static void
fuzz_chunked(const uint8_t *data, size_t size)
{
	struct fz_chunk_result whole, split, ref;
	uint32_t seed;
	char *buf;
	size_t i, max_line, max_trailer;

	if (size == 0)
		return;
	/* The first byte picks the limits, the rest is the body. */
	max_line = 4 + (data[0] & 0x0f) * 4;
	max_trailer = (size_t)(data[0] >> 4) * 16;
	buf = malloc(size - 1 > 0 ? size - 1 : 1);
	CDN_ASSERT(buf != NULL);
	memcpy(buf, data + 1, size - 1);
	seed = 1;
	for (i = 0; i < size && i < 16; i++)
		seed = seed * 31 + data[i];
	seed |= 1;

	whole = decode(buf, size - 1, 0, max_line, max_trailer);
	split = decode(buf, size - 1, seed, max_line, max_trailer);
	ref = ref_decode(data + 1, size - 1, max_line, max_trailer);
	if (ref.rc == REF_MORE) {
		CDN_ASSERT(whole.rc == CDN_AGAIN || whole.rc == CDN_EINVAL);
	} else {
		CDN_ASSERT(whole.rc == ref.rc);
		CDN_ASSERT(whole.data_len == ref.data_len || ref.rc != CDN_OK);
		CDN_ASSERT(whole.hash == ref.hash || ref.rc == CDN_EINVAL);
		if (ref.rc == CDN_OK)
			CDN_ASSERT(whole.used == ref.used);
	}
	/* How the bytes were split must not change the outcome. */
	CDN_ASSERT(whole.rc == split.rc);
	if (whole.rc == CDN_OK) {
		CDN_ASSERT(whole.used == split.used);
		CDN_ASSERT(whole.data_len == split.data_len);
		CDN_ASSERT(whole.hash == split.hash);
	} else if (whole.rc == CDN_AGAIN) {
		CDN_ASSERT(whole.used == size - 1 && split.used == size - 1);
		CDN_ASSERT(whole.hash == split.hash);
	}
	free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct http_limits tight = {64, 128, 4};
	static const struct http_limits normal = {8192, 32768, FZ_MAX_HEADERS};

	size_t len_t, len_n;
	int rc_t, rc_n, st_t, st_n;

	rc_t = fuzz_head(data, size, &tight, &len_t, &st_t);
	rc_n = fuzz_head(data, size, &normal, &len_n, &st_n);
	/* What passes tight limits passes looser ones, unchanged. */
	if (rc_t == CDN_OK)
		CDN_ASSERT(rc_n == CDN_OK && len_n == len_t);
	/* Tighter limits fail no later, and on the same syntax errors. */
	if (rc_n == CDN_EINVAL)
		CDN_ASSERT(rc_t == CDN_EINVAL);
	if (rc_t == CDN_EINVAL && st_t != 414 && st_t != 431)
		CDN_ASSERT(rc_n == CDN_EINVAL && st_n == st_t);
	fuzz_head_ref(data, size);
	fuzz_chunked(data, size);
	return 0;
}
