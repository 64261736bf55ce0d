/*
 * Response heads from origins, read strictly (origin_head.h).  A field an
 * edge takes differently from a downstream reader is how responses get
 * smuggled, so whatever two readers could disagree on is a 502.
 */
#include "config.h"

#include <string.h>
#include <strings.h>

#include "http/http_parse.h"
#include "origin/origin_head.h"

/* Chunk sizes beyond this are refused: no body is that large, and the
 * arithmetic on them stays far from overflow. */
#define CHUNK_SIZE_MAX (UINT64_C(1) << 60)

static int
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

void
origin_head_reset(struct origin_head *h)
{
	memset(h, 0, sizeof(*h));
	h->status = -1;
	h->content_length = -1;
}

/* One Content-Length value, digits only: its number, or -1. */
static int64_t
parse_cl_value(const char *v, size_t len)
{
	int64_t n = 0;

	if (len == 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9' || n > (INT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (v[i] - '0');
	}
	return n;
}

/*
 * A Content-Length field value: one number, or a list of one number
 * repeated (RFC 9110 §8.6 lets a recipient take "5, 5" as 5).  Returns it,
 * or -1 for anything else (differing numbers, a sign, an empty member).
 */
static int64_t
parse_content_length(const char *v, size_t len)
{
	int64_t n = -1, m;
	size_t i = 0, s, e;

	for (;;) {
		while (i < len && is_wsp(v[i]))
			i++;
		for (s = i; i < len && v[i] != ','; i++)
			;
		for (e = i; e > s && is_wsp(v[e - 1]); e--)
			;
		m = parse_cl_value(v + s, e - s);
		if (m < 0 || (n >= 0 && m != n))
			return -1;
		n = m;
		if (i == len)
			return n;
		i++; /* the comma */
	}
}

/*
 * Call <fn> on each member of a comma-separated list value (RFC 9110
 * §5.6.1), trimmed, without its parameters.
 */
static void
each_member(struct origin_head *h, const char *v, size_t len,
    void (*fn)(struct origin_head *, const char *, size_t))
{
	size_t i = 0, s, e;

	while (i < len) {
		while (i < len && (is_wsp(v[i]) || v[i] == ','))
			i++;
		if (i == len)
			break;
		/* A member ends at its parameters or the next member. */
		for (s = i; i < len && v[i] != ',' && v[i] != ';'; i++)
			;
		for (e = i; e > s && is_wsp(v[e - 1]); e--)
			;
		while (i < len && v[i] != ',')
			i++;
		fn(h, v + s, e - s);
	}
}

static void
note_coding(struct origin_head *h, const char *c, size_t len)
{
	h->te_codings++;
	h->te_last_chunked = len == 7 && strncasecmp(c, "chunked", 7) == 0;
	h->te_chunked += h->te_last_chunked;
}

static void
note_connection(struct origin_head *h, const char *c, size_t len)
{
	if (len == 5 && strncasecmp(c, "close", 5) == 0)
		h->conn_close = 1;
	else if (len == 10 && strncasecmp(c, "keep-alive", 10) == 0)
		h->conn_keep_alive = 1;
}

const char *
origin_head_field(struct origin_head *h, const char *p, size_t len)
{
	const char *colon;
	size_t nlen;

	/* RFC 9110 §5.5: CR, LF or NUL inside a field is invalid.  Passed
	 * on, a bare CR would end the line early for some clients. */
	if (memchr(p, '\r', len) != NULL || memchr(p, '\n', len) != NULL ||
	    memchr(p, '\0', len) != NULL)
		return "CR, LF or NUL inside a field";
	/* RFC 9112 §5.2: a proxy must not forward obs-fold; refused rather
	 * than unfolded, as a fold is mostly a smuggling attempt. */
	if (len > 0 && is_wsp(p[0]))
		return "obs-fold";
	colon = memchr(p, ':', len);
	if (colon == NULL)
		return "a field line without a colon";
	nlen = (size_t)(colon - p);
	if (nlen == 0)
		return "an empty field name";
	/* RFC 9112 §5.1: a proxy must reject it, or some reader takes
	 * "Content-Length " for another field than others do. */
	if (is_wsp(colon[-1]))
		return "white space between a field name and the colon";
	for (size_t i = 0; i < nlen; i++)
		if (!http_is_tchar((unsigned char)p[i]))
			return "a field name that is not a token";
	if (nlen == 14 && strncasecmp(p, "Content-Length", 14) == 0) {
		int64_t cl = parse_content_length(colon + 1, len - nlen - 1);

		/* §6.3 item 5: a proxy answers 502 to an invalid one. */
		if (cl < 0)
			return "an invalid Content-Length";
		if (h->cl_seen && cl != h->content_length)
			return "two different Content-Length values";
		h->cl_seen = 1;
		h->content_length = cl;
	} else if (nlen == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0) {
		each_member(h, colon + 1, len - nlen - 1, note_coding);
	} else if (nlen == 10 && strncasecmp(p, "Connection", 10) == 0) {
		each_member(h, colon + 1, len - nlen - 1, note_connection);
	}
	return NULL;
}

const char *
origin_head_framing(const struct origin_head *h)
{
	if (h->te_codings == 0)
		return NULL;
	/* §6.3 item 3: "ought to be handled as an error" (smuggling). */
	if (h->cl_seen)
		return "Transfer-Encoding with Content-Length";
	/* §6.3 says read until close when chunked is not the final coding,
	 * but libcurl decodes chunks wherever chunked is named, and both
	 * clients must agree; §6.1 forbids chunked twice. */
	if (h->te_chunked > 1 || (h->te_chunked == 1 && !h->te_last_chunked))
		return "chunked is not the final transfer coding";
	return NULL;
}

enum origin_body
origin_head_body(const struct origin_head *h, int is_head)
{
	/* RFC 9112 §6.3 items 1 and 2. */
	if (is_head || h->status < 200 || h->status == 204 || h->status == 304)
		return ORIGIN_BODY_NONE;
	if (h->te_codings > 0)
		return h->te_last_chunked ? ORIGIN_BODY_CHUNKED
		                          : ORIGIN_BODY_CLOSE;
	if (h->cl_seen)
		return ORIGIN_BODY_LENGTH;
	return ORIGIN_BODY_CLOSE;
}

/* "HTTP/1.x SSS[ reason]" in p[0..len), without its CRLF. */
static int
parse_status_line(struct origin_head *h, const char *p, size_t len)
{
	if (len < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[7] < '0' ||
	    p[7] > '9' || p[8] != ' ' || p[9] < '1' || p[9] > '5' ||
	    p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9' ||
	    (len > 12 && p[12] != ' '))
		return CDN_EINVAL;
	/* The reason phrase is ignored, but it may not hide a line end. */
	if (memchr(p, '\r', len) != NULL || memchr(p, '\0', len) != NULL)
		return CDN_EINVAL;
	h->minor = p[7] - '0';
	h->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	return CDN_OK;
}

int
origin_head_parse(const char *buf, size_t len, size_t *scan,
    struct origin_head *h, const char **fields, size_t *fields_len,
    size_t *used, const char **why)
{
	const char *end = NULL, *p, *eol, *stop;
	size_t from = *scan;

	/* Find the empty line first, resuming where the last call gave up,
	 * so that a head arriving in pieces is still scanned once. */
	for (p = buf + from; p < buf + len;) {
		p = memchr(p, '\n', (size_t)(buf + len - p));
		if (p == NULL)
			break;
		if (p - buf >= 3 && p[-1] == '\r' && p[-2] == '\n' &&
		    p[-3] == '\r') {
			end = p + 1;
			break;
		}
		p++;
	}
	if (end == NULL) {
		if (len > ORIGIN_HEAD_MAX) {
			*why = "a response head over 64 KiB";
			return ORIGIN_HEAD_BAD;
		}
		*scan = len >= 3 ? len - 3 : 0;
		return ORIGIN_HEAD_PARTIAL;
	}
	if ((size_t)(end - buf) > ORIGIN_HEAD_MAX) {
		*why = "a response head over 64 KiB";
		return ORIGIN_HEAD_BAD;
	}
	origin_head_reset(h);
	stop = end - 2; /* the empty line's CRLF */
	eol = memchr(buf, '\n', (size_t)(stop - buf + 1));
	if (eol == NULL || eol == buf || eol[-1] != '\r' ||
	    parse_status_line(h, buf, (size_t)(eol - 1 - buf)) != CDN_OK) {
		*why = "a bad status line";
		return ORIGIN_HEAD_BAD;
	}
	*fields = eol + 1;
	*fields_len = (size_t)(stop - (eol + 1));
	for (p = eol + 1; p < stop; p = eol + 1) {
		eol = memchr(p, '\n', (size_t)(stop - p));
		/* RFC 9112 §2.2: a bare LF could be taken as a line end by
		 * one reader and not by another. */
		if (eol == NULL || eol == p || eol[-1] != '\r') {
			*why = "a field line not ended by CRLF";
			return ORIGIN_HEAD_BAD;
		}
		*why = origin_head_field(h, p, (size_t)(eol - 1 - p));
		if (*why != NULL)
			return ORIGIN_HEAD_BAD;
	}
	*used = (size_t)(end - buf);
	*scan = 0;
	return ORIGIN_HEAD_DONE;
}

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
origin_chunk_size(const char *p, size_t len, uint64_t *size, size_t *used)
{
	const char *lf;
	uint64_t n = 0;
	size_t i = 0;
	int d;

	lf = memchr(
	    p, '\n', len < ORIGIN_CHUNK_LINE_MAX ? len : ORIGIN_CHUNK_LINE_MAX);
	if (lf == NULL)
		return len < ORIGIN_CHUNK_LINE_MAX ? CDN_AGAIN : CDN_EINVAL;
	if (lf == p || lf[-1] != '\r')
		return CDN_EINVAL;
	for (; p + i < lf - 1 && (d = hex_value(p[i])) >= 0; i++) {
		if (n >= CHUNK_SIZE_MAX >> 4)
			return CDN_EINVAL;
		n = n << 4 | (uint64_t)d;
	}
	if (i == 0)
		return CDN_EINVAL;
	/* What may follow the digits: white space, then extensions
	 * (chunk-ext, RFC 9112 §7.1.1), which are ignored; never a CR. */
	while (p + i < lf - 1 && is_wsp(p[i]))
		i++;
	if (p + i < lf - 1 && p[i] != ';')
		return CDN_EINVAL;
	for (; p + i < lf - 1; i++)
		if (!is_wsp(p[i]) && p[i] != ';' && p[i] != '=' &&
		    p[i] != '"' && !http_is_tchar((unsigned char)p[i]))
			return CDN_EINVAL;
	*size = n;
	*used = (size_t)(lf + 1 - p);
	return CDN_OK;
}
