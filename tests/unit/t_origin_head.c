/*
 * Unit tests for origin/origin_head.c, the response head parser of the
 * native origin client: status lines, field checks shared with the curl
 * path, the framing a head asks for, a head arriving in pieces, the size
 * cap, and chunk-size lines.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "origin/origin_head.h"
#include "tests/unit/tap.h"

struct parsed {
	int r;
	struct origin_head h;
	const char *fields;
	size_t fields_len, used;
	const char *why;
};

static struct parsed
parse(const char *s)
{
	struct parsed p;
	size_t scan = 0;

	memset(&p, 0, sizeof(p));
	p.r = origin_head_parse(s, strlen(s), &scan, &p.h, &p.fields,
	    &p.fields_len, &p.used, &p.why);
	return p;
}

/* <s> must be refused, for a reason containing <why>. */
static void
bad(const char *s, const char *why, const char *name)
{
	struct parsed p = parse(s);

	ok(p.r == ORIGIN_HEAD_BAD && p.why != NULL && strstr(p.why, why),
	    "%s is refused (%s)", name, p.why != NULL ? p.why : "accepted");
}

static void
test_status_lines(void)
{
	struct parsed p;

	p = parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
	is_int(p.r, ORIGIN_HEAD_DONE, "a plain head");
	is_int(p.h.status, 200, "its status");
	is_int(p.h.minor, 1, "its version");
	is_int(p.h.content_length, 5, "its Content-Length");
	is_int(p.used, strlen("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"),
	    "the head's bytes, not the body's");
	ok(p.fields_len == strlen("Content-Length: 5\r\n") &&
	        memcmp(p.fields, "Content-Length: 5\r\n", p.fields_len) == 0,
	    "the fields as received");

	p = parse("HTTP/1.0 404\r\n\r\n");
	ok(p.r == ORIGIN_HEAD_DONE && p.h.status == 404 && p.h.minor == 0 &&
	        p.fields_len == 0,
	    "no reason phrase, no fields, HTTP/1.0");
	is_int(p.h.content_length, -1, "no Content-Length: -1");

	p = parse("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
	          "HTTP/1.1 200 OK\r\n\r\n");
	ok(p.r == ORIGIN_HEAD_DONE && p.h.status == 103 &&
	        p.used ==
	            strlen("HTTP/1.1 103 Early Hints\r\nLink: </a.css>"
	                   "\r\n\r\n"),
	    "an interim head ends at its own empty line");

	bad("HTTP/2 200 OK\r\n\r\n", "status line", "HTTP/2");
	bad("HTTP/1.1 20 OK\r\n\r\n", "status line", "two status digits");
	bad("HTTP/1.1 600 OK\r\n\r\n", "status line", "status 600");
	bad("HTTP/1.1 200OK\r\n\r\n", "status line", "no space after status");
	bad("http/1.1 200 OK\r\n\r\n", "status line", "lower-case HTTP");
	bad("ICY 200 OK\r\n\r\n", "status line", "not HTTP");
	bad("HTTP/1.1 200 O\rK\r\n\r\n", "status line", "a CR in the reason");
	bad("HTTP/1.1 200 OK\nA: b\r\n\r\n", "status line",
	    "a status line ended by LF");
}

static void
test_fields(void)
{
	struct parsed p;

	bad("HTTP/1.1 200 OK\r\nA: 1\r\n folded\r\n\r\n", "obs-fold",
	    "obs-fold");
	bad("HTTP/1.1 200 OK\r\nA: 1\r\n\tfolded\r\n\r\n", "obs-fold",
	    "obs-fold with a tab");
	bad("HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n", "white space",
	    "space before the colon");
	bad("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "without a colon",
	    "a line without a colon");
	bad("HTTP/1.1 200 OK\r\n: empty\r\n\r\n", "empty field name",
	    "an empty name");
	bad("HTTP/1.1 200 OK\r\nA(b): 1\r\n\r\n", "not a token",
	    "a name that is not a token");
	bad("HTTP/1.1 200 OK\r\nA: 1\rB: 2\r\n\r\n", "CR, LF or NUL",
	    "a bare CR inside a line");
	bad("HTTP/1.1 200 OK\r\nA: 1\nB: 2\r\n\r\n", "not ended by CRLF",
	    "a field line ended by a bare LF");
	bad("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
	    "two different", "two Content-Lengths");
	bad("HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n", "invalid",
	    "a Content-Length list of two numbers");
	bad("HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n", "invalid",
	    "a signed Content-Length");
	bad("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
	    "invalid", "a Content-Length beyond int64");

	p = parse("HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\n"
	          "content-length: 7\r\n\r\n");
	ok(p.r == ORIGIN_HEAD_DONE && p.h.content_length == 7,
	    "the same Content-Length repeated is one");
	p = parse("HTTP/1.1 200 OK\r\nConnection: Keep-Alive, foo\r\n\r\n");
	ok(p.r == ORIGIN_HEAD_DONE && p.h.conn_keep_alive && !p.h.conn_close,
	    "Connection: keep-alive is noted");
	p = parse("HTTP/1.1 200 OK\r\nConnection: x, CLOSE\r\n\r\n");
	ok(p.r == ORIGIN_HEAD_DONE && p.h.conn_close,
	    "Connection: close is noted, in any case");
}

static void
test_framing(void)
{
	struct parsed p;

	p = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
	ok(p.r == ORIGIN_HEAD_DONE && origin_head_framing(&p.h) == NULL &&
	        origin_head_body(&p.h, 0) == ORIGIN_BODY_CHUNKED,
	    "chunked");
	p = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n"
	          "Transfer-Encoding: chunked\r\n\r\n");
	ok(origin_head_framing(&p.h) == NULL &&
	        origin_head_body(&p.h, 0) == ORIGIN_BODY_CHUNKED,
	    "chunked last over two lines");
	p = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
	ok(origin_head_framing(&p.h) == NULL &&
	        origin_head_body(&p.h, 0) == ORIGIN_BODY_CLOSE,
	    "an unknown coding alone: until close");
	p = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
	          "Content-Length: 5\r\n\r\n");
	ok(p.r == ORIGIN_HEAD_DONE && origin_head_framing(&p.h) != NULL,
	    "Transfer-Encoding with Content-Length is refused");
	p = parse(
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
	ok(origin_head_framing(&p.h) != NULL, "chunked not last is refused");
	p = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n"
	          "\r\n");
	ok(origin_head_framing(&p.h) != NULL, "chunked twice is refused");

	p = parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
	is_int(origin_head_body(&p.h, 0), ORIGIN_BODY_LENGTH, "by length");
	is_int(origin_head_body(&p.h, 1), ORIGIN_BODY_NONE, "HEAD: none");
	p = parse("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n");
	is_int(origin_head_body(&p.h, 0), ORIGIN_BODY_NONE, "204: none");
	p = parse("HTTP/1.1 304 Not Modified\r\n\r\n");
	is_int(origin_head_body(&p.h, 0), ORIGIN_BODY_NONE, "304: none");
	p = parse("HTTP/1.1 200 OK\r\n\r\n");
	is_int(origin_head_body(&p.h, 0), ORIGIN_BODY_CLOSE,
	    "no length: until close");
}

/* A head arriving a byte at a time is found once, where it ends. */
static void
test_pieces(void)
{
	static const char head[] = "HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody";
	size_t hlen = strlen(head) - 4, scan = 0, used = 0, flen = 0;
	struct origin_head h;
	const char *fields = NULL, *why = NULL;
	int r = ORIGIN_HEAD_PARTIAL;
	size_t n;

	for (n = 1; n <= strlen(head); n++) {
		r = origin_head_parse(
		    head, n, &scan, &h, &fields, &flen, &used, &why);
		if (r != ORIGIN_HEAD_PARTIAL)
			break;
		if (scan > n)
			break;
	}
	ok(r == ORIGIN_HEAD_DONE && n == hlen && used == hlen,
	    "found when its last byte comes (%zu of %zu)", n, hlen);
}

static void
test_size_cap(void)
{
	size_t len = ORIGIN_HEAD_MAX + 100, scan = 0, used, flen;
	char *s = malloc(len + 1);
	struct origin_head h;
	const char *fields, *why = NULL;
	int r;

	if (s == NULL)
		return;
	memcpy(s, "HTTP/1.1 200 OK\r\nX: ", 20);
	memset(s + 20, 'a', len - 20);
	s[len] = '\0';
	r = origin_head_parse(s, len, &scan, &h, &fields, &flen, &used, &why);
	ok(r == ORIGIN_HEAD_BAD && why != NULL,
	    "a head over 64 KiB is refused");
	/* The same with its end in: still too long. */
	memcpy(s + len - 4, "\r\n\r\n", 4);
	scan = 0;
	r = origin_head_parse(s, len, &scan, &h, &fields, &flen, &used, &why);
	ok(r == ORIGIN_HEAD_BAD, "a whole head over 64 KiB is refused");
	free(s);
}

static void
test_chunk_sizes(void)
{
	uint64_t size = 0;
	size_t used = 0;

	ok(origin_chunk_size("1a\r\nxyz", 7, &size, &used) == CDN_OK &&
	        size == 26 && used == 4,
	    "hex size");
	ok(origin_chunk_size("0\r\n", 3, &size, &used) == CDN_OK && size == 0,
	    "the last chunk");
	ok(origin_chunk_size("A;name=\"v\"\r\n", 12, &size, &used) == CDN_OK &&
	        size == 10 && used == 12,
	    "an extension is skipped");
	ok(origin_chunk_size("5 ;x\r\n", 6, &size, &used) == CDN_OK &&
	        size == 5,
	    "white space before an extension");
	is_int(origin_chunk_size("1a", 2, &size, &used), CDN_AGAIN,
	    "incomplete line");
	is_int(origin_chunk_size("\r\n", 2, &size, &used), CDN_EINVAL,
	    "no digits");
	is_int(origin_chunk_size("5x\r\n", 4, &size, &used), CDN_EINVAL,
	    "junk after the digits");
	is_int(
	    origin_chunk_size("-5\r\n", 4, &size, &used), CDN_EINVAL, "a sign");
	is_int(
	    origin_chunk_size("5\n", 2, &size, &used), CDN_EINVAL, "a bare LF");
	is_int(origin_chunk_size("5\r\r\n", 4, &size, &used), CDN_EINVAL,
	    "a CR inside the line");
	is_int(origin_chunk_size("fffffffffffffffff\r\n", 19, &size, &used),
	    CDN_EINVAL, "a size beyond 2^60");
	{
		char line[ORIGIN_CHUNK_LINE_MAX + 8];

		memset(line, ' ', sizeof(line));
		line[0] = '5';
		line[1] = ';';
		is_int(origin_chunk_size(line, sizeof(line), &size, &used),
		    CDN_EINVAL, "a line over the cap");
	}
}

int
main(void)
{
	plan_no_plan();
	test_status_lines();
	test_fields();
	test_framing();
	test_pieces();
	test_size_cap();
	test_chunk_sizes();
	return done_testing();
}
