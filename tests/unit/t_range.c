/*
 * Unit tests of ranges: the Range parser (http/http_range.c), the range
 * plan, If-Range and the streaming feed (edge/edge_range.c).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/edge_range.h"
#include "http/http_range.h"
#include "tests/unit/tap.h"

/* "a-b,c-d" of the parsed ranges, or "ignore" / "416". */
static void
range_case(const char *v, uint64_t total, const char *want)
{
	struct http_range r[HTTP_RANGE_MAX];
	unsigned n = 0;
	char got[512];
	size_t at = 0;
	enum http_range_rc rc;

	rc = http_range_parse(v, strlen(v), total, r, &n);
	if (rc == HTTP_RANGE_IGNORE) {
		snprintf(got, sizeof(got), "ignore");
	} else if (rc == HTTP_RANGE_UNSATISFIABLE) {
		snprintf(got, sizeof(got), "416");
	} else {
		got[0] = '\0';
		for (unsigned i = 0; i < n; i++)
			at += (size_t)snprintf(got + at, sizeof(got) - at,
			    "%s%llu-%llu", i > 0 ? "," : "",
			    (unsigned long long)r[i].first,
			    (unsigned long long)r[i].last);
	}
	is_str(
	    got, want, "Range: %s of %llu bytes", v, (unsigned long long)total);
}

static void
test_parse(void)
{
	char many[512];
	size_t at;

	range_case("bytes=0-9", 100, "0-9");
	range_case("bytes=10-", 100, "10-99");
	range_case("bytes=-10", 100, "90-99");
	range_case("bytes=-1000", 100, "0-99");
	range_case("bytes=0-1000", 100, "0-99");
	range_case("bytes=99-99", 100, "99-99");
	range_case("BYTES=0-0", 100, "0-0");
	range_case(" bytes=1-2", 100, "1-2");
	range_case("bytes=0-4, 10-14", 100, "0-4,10-14");
	range_case("bytes=10-14,0-4", 100, "0-4,10-14"); /* sorted */
	range_case("bytes=0-10,5-20", 100, "0-20");      /* overlap merged */
	range_case("bytes=0-9,10-19", 100, "0-19");      /* adjacent merged */
	range_case("bytes=0-9,0-9,0-9", 100, "0-9");     /* repeats merged */
	range_case("bytes=0-4,200-300", 100, "0-4");     /* one satisfiable */
	range_case("bytes=,0-4,", 100, "0-4");           /* empty elements */
	range_case("bytes=100-", 100, "416");
	range_case("bytes=100-200", 100, "416");
	range_case("bytes=-0", 100, "416");
	range_case("bytes=0-0", 0, "416");
	range_case("bytes=-5", 0, "416");
	range_case("bytes=5-4", 100, "ignore"); /* last < first: invalid */
	range_case("bytes=abc", 100, "ignore");
	range_case("bytes=1-2-3", 100, "ignore");
	range_case("bytes=", 100, "ignore");
	range_case("items=0-1", 100, "ignore");
	range_case("bytes=0x1-2", 100, "ignore");
	range_case("bytes=99999999999999999999-", 100, "ignore");
	range_case("bytes=0-9,x", 100, "ignore");
	/* A cap on the count: 16 are answered, 17 are ignored. */
	strcpy(many, "bytes=");
	at = strlen(many);
	for (int i = 0; i < HTTP_RANGE_MAX; i++)
		at += (size_t)snprintf(many + at, sizeof(many) - at, "%s%d-%d",
		    i > 0 ? "," : "", i * 10, i * 10 + 1);
	{
		struct http_range r[HTTP_RANGE_MAX];
		unsigned n = 0;

		is_int(http_range_parse(many, strlen(many), 1000, r, &n),
		    HTTP_RANGE_OK, "%d ranges are answered", HTTP_RANGE_MAX);
		is_int(n, HTTP_RANGE_MAX, "all of them");
		strcat(many, ",500-501");
		is_int(http_range_parse(many, strlen(many), 1000, r, &n),
		    HTTP_RANGE_IGNORE, "%d ranges are ignored (whole body)",
		    HTTP_RANGE_MAX + 1);
	}
}

struct collect {
	char buf[8192];
	size_t len;
};

static void
collect_out(void *arg, const void *p, size_t n)
{
	struct collect *c = arg;

	CDN_ASSERT(c->len + n <= sizeof(c->buf));
	memcpy(c->buf + c->len, p, n);
	c->len += n;
}

/* The whole planned body, fed <step> bytes at a time. */
static void
run_feed(const struct edge_range_plan *p, const char *body, size_t total,
    size_t step, struct collect *c)
{
	struct edge_range_cursor cur = {0, 0};

	c->len = 0;
	for (size_t off = 0; off < total; off += step)
		edge_range_feed(p, &cur, off, body + off,
		    total - off < step ? total - off : step, collect_out, c);
	if (total == 0)
		edge_range_feed(p, &cur, 0, body, 0, collect_out, c);
}

static void
test_plan(void)
{
	char body[100];
	struct edge_range_plan p;
	struct collect c;
	const char *ct = "text/plain";

	for (int i = 0; i < 100; i++)
		body[i] = (char)('a' + i % 26);

	edge_range_plan_init(&p, NULL, 0, 100, ct, strlen(ct), 1);
	ok(p.status == 200 && p.content_length == 100 && p.nsegs == 1,
	    "no Range: 200, whole body");
	run_feed(&p, body, 100, 7, &c);
	ok(c.len == 100 && memcmp(c.buf, body, 100) == 0,
	    "feed gives the whole body");
	edge_range_plan_fini(&p);

	edge_range_plan_init(&p, "bytes=5-9", 9, 100, ct, strlen(ct), 1);
	ok(p.status == 206 && p.content_length == 5, "single range: 206");
	is_str(p.fields.p, "Content-Range: bytes 5-9/100\r\n", "Content-Range");
	run_feed(&p, body, 100, 3, &c);
	ok(c.len == 5 && memcmp(c.buf, "fghij", 5) == 0, "feed: fghij");
	edge_range_plan_fini(&p);

	edge_range_plan_init(&p, "bytes=500-", 10, 100, ct, strlen(ct), 1);
	ok(p.status == 416 && p.content_length == 0 && p.nsegs == 0,
	    "unsatisfiable: 416, no body");
	is_str(
	    p.fields.p, "Content-Range: bytes */100\r\n", "416 Content-Range");
	edge_range_plan_fini(&p);

	edge_range_plan_init(&p, "bytes=0-1,-2", 12, 100, ct, strlen(ct), 1);
	ok(p.status == 206 && p.multipart, "two ranges: multipart 206");
	ok(p.fields.p != NULL &&
	        strncmp(p.fields.p,
	            "Content-Type: multipart/byteranges; boundary=", 45) == 0,
	    "multipart Content-Type");
	run_feed(&p, body, 100, 1, &c);
	is_int(c.len, p.content_length, "Content-Length matches the body");
	{
		char b[64], want[512];
		const char *bp = strstr(p.fields.p, "boundary=") + 9;
		size_t bl = strcspn(bp, "\r");

		snprintf(b, sizeof(b), "%.*s", (int)bl, bp);
		snprintf(want, sizeof(want),
		    "--%s\r\nContent-Type: text/plain\r\n"
		    "Content-Range: bytes 0-1/100\r\n\r\nab"
		    "\r\n--%s\r\nContent-Type: text/plain\r\n"
		    "Content-Range: bytes 98-99/100\r\n\r\nuv"
		    "\r\n--%s--\r\n",
		    b, b, b);
		ok(c.len == strlen(want) && memcmp(c.buf, want, c.len) == 0,
		    "multipart body byte for byte");
	}
	run_feed(&p, body, 100, 100, &c);
	is_int(c.len, p.content_length, "same body fed in one piece");
	edge_range_plan_fini(&p);

	edge_range_plan_init(&p, "bytes=0-1,-2", 12, 100, ct, strlen(ct), 0);
	ok(p.status == 200 && p.content_length == 100,
	    "multi-range without multipart allowed: the whole (200)");
	edge_range_plan_fini(&p);

	edge_range_plan_init(&p, "bytes=0-1,5-6", 13, 100, NULL, 0, 1);
	run_feed(&p, body, 100, 10, &c);
	ok(c.len == p.content_length && strstr(c.buf, "Content-Type") == NULL,
	    "no part Content-Type when the object has none");
	edge_range_plan_fini(&p);
}

static void
test_if_range(void)
{
	const char *f = "ETag: \"v1\"\r\n"
	                "Last-Modified: Tue, 15 Nov 1994 08:12:31 GMT\r\n";
	const char *w = "ETag: W/\"v1\"\r\n";

	ok(edge_if_range_ok("\"v1\"", 4, f, strlen(f)), "same strong ETag");
	ok(!edge_if_range_ok("\"v2\"", 4, f, strlen(f)), "other ETag");
	ok(!edge_if_range_ok("W/\"v1\"", 6, f, strlen(f)),
	    "a weak If-Range never matches");
	ok(!edge_if_range_ok("\"v1\"", 4, w, strlen(w)),
	    "a weak stored ETag never matches");
	ok(edge_if_range_ok("Tue, 15 Nov 1994 08:12:31 GMT", 29, f, strlen(f)),
	    "same date as Last-Modified");
	ok(!edge_if_range_ok("Tue, 15 Nov 1994 08:12:32 GMT", 29, f, strlen(f)),
	    "a later date does not match");
	ok(!edge_if_range_ok("yesterday", 9, f, strlen(f)), "not a date");
	ok(!edge_if_range_ok("\"v1\"", 4, "", 0), "no stored ETag");
	ok(!edge_if_range_ok("Tue, 15 Nov 1994 08:12:31 GMT", 29, w, strlen(w)),
	    "no stored Last-Modified");
}

int
main(void)
{
	plan_no_plan();
	test_parse();
	test_plan();
	test_if_range();
	return done_testing();
}
