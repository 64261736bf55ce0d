/*
 * Unit tests for http/http_parse.c: the request head parser (every accept
 * and reject rule, incremental feeding, pipelining, limits at their exact
 * boundaries, target splitting, persistence), the chunked decoder (whole,
 * byte by byte, random splits, every framing error) and the reason phrases.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_parse.h"
#include "tests/unit/tap.h"

#define MAX_HDRS 100

static struct http_header hdrs[MAX_HDRS];
static const struct http_limits deflim = {8192, 32768, MAX_HDRS};

/* A slice as a C string, for is_str (four rotating buffers). */
static const char *
sl(struct http_slice s)
{
	static char bufs[4][512];
	static unsigned n;
	char *b;

	b = bufs[n++ % 4];
	if (s.p == NULL)
		return "(null)";
	snprintf(b, sizeof(bufs[0]), "%.*s", (int)s.len, s.p);
	return b;
}

static int
parse_lim(const char *buf, size_t len, const struct http_limits *lim,
    struct http_request *req, int *status, const char **why)
{
	memset(req, 0, sizeof(*req));
	req->headers = hdrs;
	*status = 0;
	*why = NULL;
	return http_parse_request(buf, len, lim, req, status, why);
}

static int
parse(const char *s, struct http_request *req, int *status)
{
	const char *why;

	return parse_lim(s, strlen(s), &deflim, req, status, &why);
}

/* ---- table: raw request -> rc and status ---- */

#define OK    CDN_OK
#define AGAIN CDN_AGAIN
#define BAD   CDN_EINVAL

/* A string literal and its length, NULs included. */
#define LIT(s) s, sizeof(s) - 1

#define R11(fields) "GET / HTTP/1.1\r\nHost: a\r\n" fields "\r\n"

struct tcase {
	const char *name;
	const char *raw;
	size_t len; /* 0: strlen(raw) */
	int rc;
	int status; /* on BAD */
};

static const struct tcase cases[] = {
    /* accepted */
    {"minimal 1.1", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, OK, 0},
    {"minimal 1.0 without Host", "GET / HTTP/1.0\r\n\r\n", 0, OK, 0},
    {"bare LF line ends", "GET / HTTP/1.1\nHost: a\n\n", 0, OK, 0},
    {"mixed line ends", "GET / HTTP/1.1\nHost: a\r\n\n", 0, OK, 0},
    {"leading CRLFs", "\r\n\r\nGET / HTTP/1.0\r\n\r\n", 0, OK, 0},
    {"leading bare LFs", "\n\nGET / HTTP/1.0\r\n\r\n", 0, OK, 0},
    {"8 leading empty lines",
        "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.0\r\n\r\n", 0, OK, 0},
    {"OWS around value", R11("X-A: \t v \t \r\n"), 0, OK, 0},
    {"empty value", R11("X-Empty:\r\n"), 0, OK, 0},
    {"only-OWS value", R11("X-Empty:  \t \r\n"), 0, OK, 0},
    {"obs-text in value", R11("X-A: caf\xc3\xa9\r\n"), 0, OK, 0},
    {"HTAB inside value", R11("X-A: a\tb\tc\r\n"), 0, OK, 0},
    {"unknown method", "FOO / HTTP/1.1\r\nHost: a\r\n\r\n", 0, OK, 0},
    {"token method", "M-SEARCH /x HTTP/1.1\r\nHost: a\r\n\r\n", 0, OK, 0},
    {"asterisk needs OPTIONS", "M-SEARCH * HTTP/1.1\r\nHost: a\r\n\r\n", 0, BAD,
        400},
    {"lowercase get is OTHER", "get / HTTP/1.1\r\nHost: a\r\n\r\n", 0, OK, 0},
    {"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 0, OK, 0},
    {"CONNECT authority", "CONNECT a.b:443 HTTP/1.1\r\nHost: a.b\r\n\r\n", 0,
        OK, 0},
    {"CONNECT ipv6", "CONNECT [::1]:443 HTTP/1.1\r\nHost: a\r\n\r\n", 0, OK, 0},
    {"absolute-form", "GET http://a.b/x HTTP/1.1\r\nHost: a.b\r\n\r\n", 0, OK,
        0},
    {"absolute https upper", "GET HTTPS://a.b HTTP/1.1\r\nHost: a.b\r\n\r\n", 0,
        OK, 0},
    {"Content-Length 0", R11("Content-Length: 0\r\n"), 0, OK, 0},
    {"Content-Length max", R11("Content-Length: 9223372036854775807\r\n"), 0,
        OK, 0},
    {"Content-Length leading zeros", R11("Content-Length: 007\r\n"), 0, OK, 0},
    {"TE chunked", R11("Transfer-Encoding: chunked\r\n"), 0, OK, 0},
    {"TE Chunked any case", R11("Transfer-Encoding: ChUnKeD\r\n"), 0, OK, 0},
    {"TE empty elements", R11("Transfer-Encoding: , chunked ,\r\n"), 0, OK, 0},
    {"Host with port", "GET / HTTP/1.1\r\nHost: a.b:8080\r\n\r\n", 0, OK, 0},
    {"Host empty port", "GET / HTTP/1.1\r\nHost: a.b:\r\n\r\n", 0, OK, 0},
    {"Host ipv6", "GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n", 0, OK, 0},
    {"Host lowercase name", "GET / HTTP/1.1\r\nhOsT: a\r\n\r\n", 0, OK, 0},
    {"obs-text in target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 0,
        OK, 0},
    {"PURGE", "PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n", 0, OK, 0},
    {"tchar field name", R11("!#$%&'*+-.^_`|~09azAZ: v\r\n"), 0, OK, 0},

    /* incomplete */
    {"empty buffer", "", 0, AGAIN, 0},
    {"lone CR", "\r", 0, AGAIN, 0},
    {"method only", "GET", 0, AGAIN, 0},
    {"request line no LF", "GET / HTTP/1.1", 0, AGAIN, 0},
    {"request line CR", "GET / HTTP/1.1\r", 0, AGAIN, 0},
    {"no empty line", "GET / HTTP/1.1\r\nHost: a\r\n", 0, AGAIN, 0},
    {"final CR", "GET / HTTP/1.1\r\nHost: a\r\n\r", 0, AGAIN, 0},

    /* request line */
    {"9 leading empty lines",
        "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.0\r\n\r\n", 0, BAD,
        400},
    {"leading CR without LF", "\rGET / HTTP/1.0\r\n\r\n", 0, BAD, 400},
    {"leading SP", " GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, BAD, 400},
    {"double SP after method", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 0, BAD,
        400},
    {"double SP after target", "GET /  HTTP/1.1\r\nHost: a\r\n\r\n", 0, BAD,
        400},
    {"trailing SP", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 0, BAD, 400},
    {"HTAB separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 0, BAD, 400},
    {"HTAB in target", "GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", 0, BAD, 400},
    {"non-token method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 0, BAD, 400},
    {"method with obs-text", "G\xc3T / HTTP/1.1\r\nHost: a\r\n\r\n", 0, BAD,
        400},
    {"HTTP/0.9", "GET /\r\n\r\n", 0, BAD, 400},
    {"missing version", "GET / \r\n\r\n", 0, BAD, 400},
    {"lowercase version", "GET / http/1.1\r\nHost: a\r\n\r\n", 0, BAD, 400},
    {"HTTP/1.10", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", 0, BAD, 400},
    {"HTTP/1", "GET / HTTP/1\r\nHost: a\r\n\r\n", 0, BAD, 400},
    {"HTTP/11", "GET / HTTP/11\r\nHost: a\r\n\r\n", 0, BAD, 400},
    {"HTTP/1.x", "GET / HTTP/1.x\r\nHost: a\r\n\r\n", 0, BAD, 400},
    {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 0, BAD, 505},
    {"HTTP/0.9 version", "GET / HTTP/0.9\r\n\r\n", 0, BAD, 505},
    {"HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 0, BAD, 505},
    {"HTTP/3.1 incomplete head", "GET / HTTP/3.1\r\n", 0, BAD, 505},
    {"bare CR after version", "GET / HTTP/1.1\rHost: a\r\n\r\n", 0, BAD, 400},
    {"bare CR in target", "GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n", 0, BAD, 400},
    {"CTL in target", "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 0, BAD, 400},
    {"DEL in target", "GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 0, BAD, 400},
    {"NUL in target", LIT("GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n"), BAD, 400},
    {"CTL early, head incomplete", "GET /\x01", 0, BAD, 400},
    {"asterisk with GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 0, BAD, 400},
    {"authority-form with GET", "GET a.b:80 HTTP/1.1\r\nHost: a\r\n\r\n", 0,
        BAD, 400},
    {"CONNECT origin-form", "CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", 0, BAD,
        400},
    {"CONNECT without port", "CONNECT a.b HTTP/1.1\r\nHost: a\r\n\r\n", 0, BAD,
        400},
    {"CONNECT empty port", "CONNECT a.b: HTTP/1.1\r\nHost: a\r\n\r\n", 0, BAD,
        400},
    {"CONNECT absolute", "CONNECT http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 0,
        BAD, 400},
    {"ftp scheme", "GET ftp://a.b/ HTTP/1.1\r\nHost: a\r\n\r\n", 0, BAD, 400},
    {"scheme without //", "GET http:/a HTTP/1.1\r\nHost: a\r\n\r\n", 0, BAD,
        400},
    {"empty authority", "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", 0, BAD,
        400},
    {"bare scheme", "GET http:// HTTP/1.1\r\nHost: a\r\n\r\n", 0, BAD, 400},
    {"userinfo", "GET http://u@a.b/ HTTP/1.1\r\nHost: a\r\n\r\n", 0, BAD, 400},
    {"relative target", "GET foo HTTP/1.1\r\nHost: a\r\n\r\n", 0, BAD, 400},
    {"fragment", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 0, BAD, 400},
    {"empty fragment", "GET /a# HTTP/1.1\r\nHost: a\r\n\r\n", 0, BAD, 400},
    {"fragment after query", "GET /a?b#c HTTP/1.1\r\nHost: a\r\n\r\n", 0, BAD,
        400},
    {"fragment in absolute-form",
        "GET http://a/b#c HTTP/1.1\r\nHost: a\r\n\r\n", 0, BAD, 400},
    {"fragment in long target",
        "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa#b HTTP/1.1\r\n"
        "Host: a\r\n\r\n",
        0, BAD, 400},
    {"fragment early, head incomplete", "GET /a#", 0, BAD, 400},
    {"encoded # is fine", "GET /a%23b HTTP/1.1\r\nHost: a\r\n\r\n", 0, OK, 0},
    {"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 0, BAD, 400},
    {"HTTP/2 preface, first line only", "PRI * HTTP/2.0\r\n", 0, BAD, 400},
    {"HTTP/2 preface, bare LF", "PRI * HTTP/2.0\n", 0, BAD, 400},
    {"PRI with another target", "PRI / HTTP/2.0\r\n\r\n", 0, BAD, 505},

    /* fields */
    {"missing Host 1.1", "GET / HTTP/1.1\r\n\r\n", 0, BAD, 400},
    {"missing Host absolute-form", "GET http://a/ HTTP/1.1\r\n\r\n", 0, BAD,
        400},
    {"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 0, BAD, 400},
    {"two Hosts 1.0", "GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", 0, BAD,
        400},
    {"empty Host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", 0, BAD, 400},
    {"Host with SP", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 0, BAD, 400},
    {"Host with slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 0, BAD, 400},
    {"Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 0, BAD, 400},
    {"Host bad port", "GET / HTTP/1.1\r\nHost: a:8a\r\n\r\n", 0, BAD, 400},
    {"Host open bracket", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 0, BAD, 400},
    {"Host empty brackets", "GET / HTTP/1.1\r\nHost: []\r\n\r\n", 0, BAD, 400},
    {"SP before colon", R11("X-A : v\r\n"), 0, BAD, 400},
    {"HTAB before colon", R11("X-A\t: v\r\n"), 0, BAD, 400},
    {"Host SP before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 0, BAD, 400},
    {"empty name", R11(": v\r\n"), 0, BAD, 400},
    {"non-tchar name", R11("X(A): v\r\n"), 0, BAD, 400},
    {"obs-text name", R11("X\xc3: v\r\n"), 0, BAD, 400},
    {"no colon", R11("X-A\r\n"), 0, BAD, 400},
    {"obs-fold SP", R11("X-A: v\r\n w\r\n"), 0, BAD, 400},
    {"obs-fold HTAB", R11("X-A: v\r\n\tw\r\n"), 0, BAD, 400},
    {"SP before first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 0, BAD,
        400},
    {"CTL in value", R11("X-A: a\x01z\r\n"), 0, BAD, 400},
    {"ESC in value", R11("X-A: a\x1bz\r\n"), 0, BAD, 400},
    {"DEL in value", R11("X-A: a\x7fz\r\n"), 0, BAD, 400},
    {"VT in value", R11("X-A: a\x0bz\r\n"), 0, BAD, 400},
    {"NUL in value", LIT("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"), BAD,
        400},
    {"bare CR in value", R11("X-A: a\rb\r\n"), 0, BAD, 400},
    {"CR CR LF", R11("X-A: a\r\r\n"), 0, BAD, 400},
    {"bare CR ending head", "GET / HTTP/1.1\r\nHost: a\r\n\rx", 0, BAD, 400},
    {"bad byte early, incomplete", "GET / HTTP/1.1\r\nX: \x01", 0, BAD, 400},

    /* Content-Length */
    {"CL letters", R11("Content-Length: abc\r\n"), 0, BAD, 400},
    {"CL negative", R11("Content-Length: -1\r\n"), 0, BAD, 400},
    {"CL plus", R11("Content-Length: +5\r\n"), 0, BAD, 400},
    {"CL list", R11("Content-Length: 5, 5\r\n"), 0, BAD, 400},
    {"CL list no space", R11("Content-Length: 5,5\r\n"), 0, BAD, 400},
    {"CL inner SP", R11("Content-Length: 1 2\r\n"), 0, BAD, 400},
    {"CL empty", R11("Content-Length:\r\n"), 0, BAD, 400},
    {"CL hex", R11("Content-Length: 0x10\r\n"), 0, BAD, 400},
    {"CL overflow by one", R11("Content-Length: 9223372036854775808\r\n"), 0,
        BAD, 400},
    {"CL overflow", R11("Content-Length: 99999999999999999999999\r\n"), 0, BAD,
        400},
    {"CL twice same", R11("Content-Length: 5\r\nContent-Length: 5\r\n"), 0, BAD,
        400},
    {"CL twice differ", R11("Content-Length: 5\r\ncontent-length: 6\r\n"), 0,
        BAD, 400},

    /* Transfer-Encoding */
    {"TE in 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 0,
        BAD, 400},
    {"CL then TE", R11("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"),
        0, BAD, 400},
    {"TE then CL", R11("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"),
        0, BAD, 400},
    {"TE gzip", R11("Transfer-Encoding: gzip\r\n"), 0, BAD, 501},
    {"TE identity", R11("Transfer-Encoding: identity\r\n"), 0, BAD, 501},
    {"TE unknown", R11("Transfer-Encoding: foo\r\n"), 0, BAD, 501},
    {"TE gzip, chunked", R11("Transfer-Encoding: gzip, chunked\r\n"), 0, BAD,
        501},
    {"TE gzip + chunked fields",
        R11("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"), 0,
        BAD, 501},
    {"TE chunked, gzip", R11("Transfer-Encoding: chunked, gzip\r\n"), 0, BAD,
        400},
    {"TE chunked twice", R11("Transfer-Encoding: chunked, chunked\r\n"), 0, BAD,
        400},
    {"TE chunked twice fields",
        R11("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"), 0,
        BAD, 400},
    {"TE empty", R11("Transfer-Encoding:\r\n"), 0, BAD, 400},
    {"TE only commas", R11("Transfer-Encoding: , ,\r\n"), 0, BAD, 400},
    {"TE chunked with param", R11("Transfer-Encoding: chunked;q=1\r\n"), 0, BAD,
        501},
    {"TE quoted chunked", R11("Transfer-Encoding: \"chunked\"\r\n"), 0, BAD,
        501},
    {"TE xchunked", R11("Transfer-Encoding: xchunked\r\n"), 0, BAD, 501},
};

static void
test_table(void)
{
	struct http_request req;
	const struct tcase *tc;
	const char *why;
	size_t i, len;
	int rc, status;

	for (i = 0; i < CDN_ARRAY_LEN(cases); i++) {
		tc = &cases[i];
		len = tc->len ? tc->len : strlen(tc->raw);
		rc = parse_lim(tc->raw, len, &deflim, &req, &status, &why);
		is_int(rc, tc->rc, "table: %s: rc", tc->name);
		if (tc->rc == BAD) {
			is_int(status, tc->status, "table: %s: status (%s)",
			    tc->name, why ? why : "-");
			ok(why != NULL && why[0] != '\0', "table: %s: why",
			    tc->name);
		} else if (tc->rc == OK) {
			is_int(
			    req.head_len, len, "table: %s: head_len", tc->name);
		}
	}
}

/* ---- parsed values ---- */

static void
test_values(void)
{
	struct http_request req;
	const struct http_header *h;
	const char *s;
	int rc, status;

	s = "\r\nPOST /up/load?x=1&y HTTP/1.1\r\n"
	    "Host: example.com:8080\r\n"
	    "User-Agent:   curl/8.0 \t\r\n"
	    "Content-Length: 42\r\n"
	    "X-Empty:\r\n"
	    "x-dup: one\r\n"
	    "X-Dup: two\r\n"
	    "\r\nBODY";
	rc = parse(s, &req, &status);
	is_int(rc, CDN_OK, "values: parsed");
	is_int(req.head_len, strlen(s) - 4, "values: head_len before body");
	is_int(req.method, HTTP_M_POST, "values: method");
	is_str(sl(req.method_str), "POST", "values: method_str");
	is_str(sl(req.target), "/up/load?x=1&y", "values: target");
	is_int(req.target_form, HTTP_TARGET_ORIGIN, "values: origin-form");
	is_str(sl(req.path), "/up/load", "values: path");
	is_str(sl(req.query), "x=1&y", "values: query");
	ok(req.has_query, "values: has_query");
	is_int(req.scheme.len, 0, "values: no scheme");
	is_int(req.authority.len, 0, "values: no authority");
	is_int(req.version_minor, 1, "values: minor");
	is_int(req.n_headers, 6, "values: n_headers");
	is_str(sl(req.headers[1].name), "User-Agent", "values: name as sent");
	is_str(sl(req.headers[1].value), "curl/8.0", "values: value trimmed");
	is_int(req.headers[3].value.len, 0, "values: empty value");
	is_str(sl(req.host), "example.com:8080", "values: host");
	is_int(req.content_length, 42, "values: content_length");
	ok(!req.is_chunked, "values: not chunked");
	ok(req.keep_alive, "values: keep-alive by default");
	ok(!req.expect_continue, "values: no expect");

	h = http_request_find(&req, "user-agent");
	ok(h == &req.headers[1], "find: case-insensitive");
	h = http_request_find(&req, "X-DUP");
	ok(h != NULL && strcmp(sl(h->value), "one") == 0, "find: first one");
	ok(http_request_find(&req, "Cookie") == NULL, "find: missing");
	ok(http_request_find(&req, "X-Dup2") == NULL, "find: longer name");
	ok(http_request_find(&req, "X-Du") == NULL, "find: prefix");

	rc = parse("GET / HTTP/1.0\r\n\r\n", &req, &status);
	is_int(rc, CDN_OK, "values 1.0: parsed");
	is_int(req.version_minor, 0, "values 1.0: minor");
	is_int(req.host.len, 0, "values 1.0: no host");
	is_int(req.content_length, -1, "values 1.0: no content_length");
	ok(!req.has_query, "values 1.0: no query");
	ok(!req.keep_alive, "values 1.0: close by default");

	rc = parse(R11("Transfer-Encoding: gzip-not, \r\n"), &req, &status);
	is_int(status, 501, "values: unknown coding, trailing comma: 501");
	rc = parse(R11("Transfer-Encoding: chunked\r\n"), &req, &status);
	ok(rc == CDN_OK && req.is_chunked, "values: is_chunked");
	is_int(req.content_length, -1, "values: chunked has no length");
}

/* The log reasons of the smuggling-relevant refusals name the cause. */
static void
test_why(void)
{
	static const struct {
		const char *raw;
		int status;
		const char *why;
	} t[] = {
	    {R11("X: a\r\n b\r\n"), 400, "obs-fold"},
	    {R11("X : a\r\n"), 400, "whitespace before colon"},
	    {R11("X: a\rb\r\n"), 400, "bare CR"},
	    {R11("Content-Length: 1\r\nTransfer-Encoding: chunked\r\n"), 400,
	        "Content-Length with Transfer-Encoding"},
	    {R11("Content-Length: 1\r\nContent-Length: 1\r\n"), 400,
	        "duplicate Content-Length"},
	    {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
	        "Transfer-Encoding in HTTP/1.0"},
	    {R11("Transfer-Encoding: chunked, gzip\r\n"), 400,
	        "chunked is not the final transfer coding"},
	    {R11("Transfer-Encoding: gzip\r\n"), 501,
	        "unsupported transfer coding"},
	    {"GET / HTTP/1.1\r\n\r\n", 400, "missing Host"},
	    {"GET / HTTP/3.0\r\n\r\n", 505, "unsupported HTTP version"},
	    {"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400,
	        "fragment in request-target"},
	    {"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400,
	        "HTTP/2 connection preface"},
	};
	struct http_request req;
	const char *why;
	size_t i;
	int rc, status;

	for (i = 0; i < CDN_ARRAY_LEN(t); i++) {
		rc = parse_lim(
		    t[i].raw, strlen(t[i].raw), &deflim, &req, &status, &why);
		ok(rc == CDN_EINVAL && status == t[i].status && why != NULL &&
		        strcmp(why, t[i].why) == 0,
		    "why: %s", t[i].why);
	}

	/* No header array is needed when no field is allowed. */
	memset(&req, 0, sizeof(req));
	req.headers = NULL;
	rc = http_parse_request("GET / HTTP/1.0\r\n\r\n", 18,
	    &(struct http_limits){8192, 8192, 0}, &req, &status, &why);
	ok(rc == CDN_OK && req.headers == NULL, "max_headers 0, no array");
}

static void
test_slice_eq(void)
{
	struct http_slice s;

	s.p = "Keep-Alive";
	s.len = 10;
	ok(http_slice_eq_ci(s, "keep-alive"), "eq_ci: lower");
	ok(http_slice_eq_ci(s, "KEEP-ALIVE"), "eq_ci: upper");
	ok(!http_slice_eq_ci(s, "keep-aliv"), "eq_ci: shorter");
	ok(!http_slice_eq_ci(s, "keep-alive2"), "eq_ci: longer");
	ok(!http_slice_eq_ci(s, "keep_alive"), "eq_ci: differs");
	s.len = 0;
	ok(http_slice_eq_ci(s, ""), "eq_ci: empty");
	s.p = "@[`{";
	s.len = 4;
	ok(!http_slice_eq_ci(s, "`{@["), "eq_ci: no case folding of symbols");
}

static void
test_methods(void)
{
	static const struct {
		const char *m;
		enum http_method want;
	} t[] = {
	    {"GET", HTTP_M_GET},
	    {"HEAD", HTTP_M_HEAD},
	    {"POST", HTTP_M_POST},
	    {"PUT", HTTP_M_PUT},
	    {"DELETE", HTTP_M_DELETE},
	    {"PATCH", HTTP_M_PATCH},
	    {"OPTIONS", HTTP_M_OPTIONS},
	    {"TRACE", HTTP_M_TRACE},
	    {"PURGE", HTTP_M_PURGE},
	    {"Get", HTTP_M_OTHER},
	    {"GETX", HTTP_M_OTHER},
	    {"PROPFIND", HTTP_M_OTHER},
	    {"X", HTTP_M_OTHER},
	};
	struct http_request req;
	char buf[128];
	size_t i;
	int rc, status;

	for (i = 0; i < CDN_ARRAY_LEN(t); i++) {
		snprintf(buf, sizeof(buf), "%s /x HTTP/1.1\r\nHost: a\r\n\r\n",
		    t[i].m);
		rc = parse(buf, &req, &status);
		ok(rc == CDN_OK && req.method == t[i].want &&
		        strcmp(sl(req.method_str), t[i].m) == 0,
		    "method %s", t[i].m);
	}
	rc = parse("CONNECT h:1 HTTP/1.1\r\nHost: h\r\n\r\n", &req, &status);
	ok(rc == CDN_OK && req.method == HTTP_M_CONNECT, "method CONNECT");
}

/* ---- request-target forms ---- */

static void
test_targets(void)
{
	struct http_request req;
	int rc, status;

	rc = parse("GET http://Example.com:8080/a/b?x=1 HTTP/1.1\r\n"
	           "Host: example.com:8080\r\n\r\n",
	    &req, &status);
	is_int(rc, CDN_OK, "abs: parsed");
	is_int(req.target_form, HTTP_TARGET_ABSOLUTE, "abs: form");
	is_str(sl(req.target), "http://Example.com:8080/a/b?x=1",
	    "abs: target as sent");
	is_str(sl(req.scheme), "http", "abs: scheme");
	is_str(sl(req.authority), "Example.com:8080", "abs: authority");
	is_str(sl(req.path), "/a/b", "abs: path");
	is_str(sl(req.query), "x=1", "abs: query");
	ok(req.has_query, "abs: has_query");
	is_str(sl(req.host), "example.com:8080", "abs: host is the field");

	rc = parse(
	    "GET HTTPS://h.example HTTP/1.1\r\nHost: h\r\n\r\n", &req, &status);
	is_int(rc, CDN_OK, "abs no path: parsed");
	is_str(sl(req.scheme), "HTTPS", "abs no path: scheme as sent");
	is_str(sl(req.authority), "h.example", "abs no path: authority");
	is_str(sl(req.path), "/", "abs no path: path is /");
	ok(req.path.p < req.target.p ||
	        req.path.p >= req.target.p + req.target.len,
	    "abs no path: path is the static /");
	ok(!req.has_query, "abs no path: no query");

	rc = parse(
	    "GET http://h?q=1 HTTP/1.1\r\nHost: h\r\n\r\n", &req, &status);
	is_int(rc, CDN_OK, "abs query only: parsed");
	is_str(sl(req.authority), "h", "abs query only: authority");
	is_str(sl(req.path), "/", "abs query only: path");
	is_str(sl(req.query), "q=1", "abs query only: query");

	rc = parse(
	    "GET http://[::1]:80/? HTTP/1.1\r\nHost: h\r\n\r\n", &req, &status);
	is_int(rc, CDN_OK, "abs ipv6: parsed");
	is_str(sl(req.authority), "[::1]:80", "abs ipv6: authority");
	ok(req.has_query && req.query.len == 0, "abs ipv6: empty query");

	rc = parse("GET /a?b?c HTTP/1.1\r\nHost: h\r\n\r\n", &req, &status);
	is_str(sl(req.path), "/a", "origin: path stops at first ?");
	is_str(sl(req.query), "b?c", "origin: query keeps later ?");
	rc = parse("GET /a? HTTP/1.1\r\nHost: h\r\n\r\n", &req, &status);
	ok(rc == CDN_OK && req.has_query && req.query.len == 0,
	    "origin: empty query");
	rc = parse("GET /?x HTTP/1.1\r\nHost: h\r\n\r\n", &req, &status);
	ok(rc == CDN_OK && strcmp(sl(req.path), "/") == 0 &&
	        strcmp(sl(req.query), "x") == 0,
	    "origin: root with query");

	rc = parse("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", &req, &status);
	is_int(req.target_form, HTTP_TARGET_ASTERISK, "asterisk: form");
	is_str(sl(req.path), "*", "asterisk: path");

	rc = parse(
	    "CONNECT h.example:443 HTTP/1.1\r\nHost: h\r\n\r\n", &req, &status);
	is_int(req.target_form, HTTP_TARGET_AUTHORITY, "authority: form");
	is_str(sl(req.target), "h.example:443", "authority: target");
	ok(req.path.len > 0, "authority: path never empty");
}

/* ---- persistence and Expect ---- */

static void
test_keepalive(void)
{
	static const struct {
		const char *ver;
		const char *fields;
		int want;
	} t[] = {
	    {"1.1", "", 1},
	    {"1.1", "Connection: close\r\n", 0},
	    {"1.1", "Connection: Close\r\n", 0},
	    {"1.1", "Connection: keep-alive\r\n", 1},
	    {"1.1", "Connection: Upgrade, CLOSE\r\n", 0},
	    {"1.1", "Connection: closed\r\n", 1},
	    {"1.1", "Connection: te,close ,x\r\n", 0},
	    {"1.1", "Connection: keep-alive\r\nConnection: close\r\n", 0},
	    {"1.0", "", 0},
	    {"1.0", "Connection: keep-alive\r\n", 1},
	    {"1.0", "Connection: Keep-Alive\r\n", 1},
	    {"1.0", "Connection: foo, keep-alive\r\n", 1},
	    {"1.0", "Connection: keep-alive, close\r\n", 0},
	    {"1.0", "Connection: close\r\n", 0},
	    {"1.0", "Keep-Alive: timeout=5\r\n", 0},
	};
	struct http_request req;
	char buf[256];
	size_t i;
	int rc, status;

	for (i = 0; i < CDN_ARRAY_LEN(t); i++) {
		snprintf(buf, sizeof(buf), "GET / HTTP/%s\r\nHost: h\r\n%s\r\n",
		    t[i].ver, t[i].fields);
		rc = parse(buf, &req, &status);
		ok(rc == CDN_OK && req.keep_alive == (unsigned)t[i].want,
		    "keep-alive: HTTP/%s [%.*s] -> %d", t[i].ver,
		    (int)strcspn(t[i].fields, "\r"), t[i].fields, t[i].want);
	}

	rc = parse(R11("Expect: 100-continue\r\n"), &req, &status);
	ok(rc == CDN_OK && req.expect_continue, "expect: 100-continue");
	rc = parse(R11("Expect: 100-Continue\r\n"), &req, &status);
	ok(rc == CDN_OK && req.expect_continue, "expect: any case");
	rc = parse(R11("Expect: foo\r\n"), &req, &status);
	ok(rc == CDN_OK && !req.expect_continue, "expect: other");
	rc = parse(
	    "GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", &req, &status);
	ok(rc == CDN_OK && !req.expect_continue, "expect: ignored in 1.0");
}

/* ---- incremental feeding and pipelining ---- */

static const char *valid_heads[] = {
    "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    ("GET /index.html?x=1 HTTP/1.1\r\nHost: www.example.com\r\n"
     "User-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n"
     "Accept: text/html,application/xhtml+xml;q=0.9,*/*;q=0.8\r\n"
     "Accept-Encoding: gzip, deflate, br\r\n"
     "Connection: keep-alive\r\n\r\n"),
    "\r\n\nPOST http://h/x HTTP/1.1\nHost: h\nContent-Length: 3\n\n",
    ("PUT /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
     "X-Tab: a\tb\t\r\n\r\n"),
    "OPTIONS * HTTP/1.0\r\n\r\n",
};

static void
test_incremental(void)
{
	struct http_request req;
	const char *s, *why;
	size_t i, n, len, bad;
	int rc, status;

	for (i = 0; i < CDN_ARRAY_LEN(valid_heads); i++) {
		s = valid_heads[i];
		len = strlen(s);
		bad = SIZE_MAX;
		for (n = 0; n < len && bad == SIZE_MAX; n++) {
			rc = parse_lim(s, n, &deflim, &req, &status, &why);
			if (rc != CDN_AGAIN)
				bad = n;
		}
		ok(bad == SIZE_MAX, "incremental %zu: every prefix is AGAIN%s",
		    i, bad == SIZE_MAX ? "" : " (not at some length)");
		if (bad != SIZE_MAX)
			printf("#   prefix of %zu bytes\n", bad);
		rc = parse_lim(s, len, &deflim, &req, &status, &why);
		ok(rc == CDN_OK && req.head_len == len,
		    "incremental %zu: whole head OK, head_len %zu", i,
		    req.head_len);
	}
}

/*
 * Every prefix of a bad request is either still AGAIN or already the same
 * error: the parser never changes its mind as bytes arrive.
 */
static void
test_prefix_consistency(void)
{
	struct http_request req;
	const struct tcase *tc;
	const char *why;
	size_t i, n, len;
	int rc, status, fine;

	fine = 1;
	for (i = 0; i < CDN_ARRAY_LEN(cases); i++) {
		tc = &cases[i];
		if (tc->rc != BAD)
			continue;
		len = tc->len ? tc->len : strlen(tc->raw);
		for (n = 0; n < len; n++) {
			rc =
			    parse_lim(tc->raw, n, &deflim, &req, &status, &why);
			if (rc == CDN_OK ||
			    (rc == BAD && status != tc->status)) {
				printf("#   %s: prefix %zu gives %d/%d\n",
				    tc->name, n, rc, status);
				fine = 0;
				break;
			}
		}
	}
	ok(fine, "prefixes of bad requests: AGAIN or the same error");
}

static void
test_pipelined(void)
{
	struct http_request req;
	char buf[512];
	const char *a, *b;
	size_t alen;
	int rc, status;

	a = "GET /one HTTP/1.1\r\nHost: a\r\n\r\n";
	b = "GET /two HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n";
	alen = strlen(a);
	snprintf(buf, sizeof(buf), "%s%s", a, b);
	rc = parse(buf, &req, &status);
	is_int(rc, CDN_OK, "pipelined: first OK");
	is_int(req.head_len, alen, "pipelined: head_len stops at first");
	is_str(sl(req.path), "/one", "pipelined: first path");
	is_int(req.n_headers, 1, "pipelined: first has one field");
	ok(req.keep_alive, "pipelined: first keeps alive");
	rc = parse(buf + alen, &req, &status);
	is_int(rc, CDN_OK, "pipelined: second OK");
	is_int(req.head_len, strlen(b), "pipelined: second head_len");
	is_str(sl(req.path), "/two", "pipelined: second path");
	ok(!req.keep_alive, "pipelined: second closes");

	/* A partial second request after a complete first. */
	rc = parse("GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /x HT", &req, &status);
	ok(rc == CDN_OK && req.head_len == 27, "pipelined: partial second");
	/* Garbage after a complete head is not the parser's business. */
	rc = parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n\x01\x02", &req, &status);
	ok(rc == CDN_OK && req.head_len == 27, "pipelined: garbage after");
}

/* ---- limits at their exact boundaries ---- */

static void
test_limits(void)
{
	struct http_request req;
	struct http_limits lim;
	char buf[4096], line[512];
	const char *why;
	size_t rl, hl, n;
	int rc, status;

	/* A request line of exactly 100 bytes with its CRLF. */
	memset(line, 'a', sizeof(line));
	memcpy(line, "GET /", 5);
	memcpy(line + 100 - 11, " HTTP/1.1\r\n", 11);
	line[100] = '\0';
	rl = strlen(line);
	is_int(rl, 100, "limits: request line is 100 bytes");
	snprintf(buf, sizeof(buf), "%sHost: h\r\n\r\n", line);

	lim = deflim;
	lim.max_request_line = 100;
	rc = parse_lim(buf, strlen(buf), &lim, &req, &status, &why);
	is_int(rc, CDN_OK, "limits: request line == max is OK");
	lim.max_request_line = 99;
	rc = parse_lim(buf, strlen(buf), &lim, &req, &status, &why);
	ok(rc == CDN_EINVAL && status == 414, "limits: max + 1 is 414");
	/* Incomplete: 99 bytes seen without LF and max 99 -> 414 already. */
	rc = parse_lim(buf, 99, &lim, &req, &status, &why);
	ok(rc == CDN_EINVAL && status == 414, "limits: 414 while incomplete");
	rc = parse_lim(buf, 98, &lim, &req, &status, &why);
	is_int(rc, CDN_AGAIN, "limits: under max, incomplete is AGAIN");
	lim.max_request_line = 100;
	rc = parse_lim(buf, 99, &lim, &req, &status, &why);
	is_int(rc, CDN_AGAIN, "limits: LF still to come fits max");
	/* With a bare LF the line is one byte shorter. */
	line[98] = '\n';
	line[99] = '\0';
	snprintf(buf, sizeof(buf), "%sHost: h\r\n\r\n", line);
	lim.max_request_line = 99;
	rc = parse_lim(buf, strlen(buf), &lim, &req, &status, &why);
	is_int(rc, CDN_OK, "limits: bare-LF line == max is OK");
	/* Leading empty lines are not part of the request line. */
	snprintf(buf, sizeof(buf), "\r\n\r\n%sHost: h\r\n\r\n", line);
	rc = parse_lim(buf, strlen(buf), &lim, &req, &status, &why);
	is_int(rc, CDN_OK, "limits: empty lines don't count as request line");

	/* Header count. */
	lim = deflim;
	lim.max_headers = 3;
	rc = parse_lim(R11("A: 1\r\nB: 2\r\n"), strlen(R11("A: 1\r\nB: 2\r\n")),
	    &lim, &req, &status, &why);
	ok(rc == CDN_OK && req.n_headers == 3, "limits: max_headers fields OK");
	rc = parse_lim(R11("A: 1\r\nB: 2\r\nC: 3\r\n"),
	    strlen(R11("A: 1\r\nB: 2\r\nC: 3\r\n")), &lim, &req, &status, &why);
	ok(rc == CDN_EINVAL && status == 431, "limits: max_headers + 1 is 431");
	rc = parse_lim(R11("A: 1\r\nB: 2\r\nC"),
	    strlen(R11("A: 1\r\nB: 2\r\nC")), &lim, &req, &status, &why);
	ok(rc == CDN_EINVAL && status == 431,
	    "limits: 431 as the extra field starts");
	lim.max_headers = 0;
	rc = parse_lim("GET / HTTP/1.0\r\n\r\n", 18, &lim, &req, &status, &why);
	is_int(rc, CDN_OK, "limits: max_headers 0 and no field");

	/* Header bytes, leading empty lines included. */
	snprintf(buf, sizeof(buf),
	    "\r\nGET / HTTP/1.1\r\nHost: h\r\nX-Fill: %0200d\r\n\r\n", 0);
	hl = strlen(buf);
	lim = deflim;
	lim.max_header_bytes = hl;
	rc = parse_lim(buf, hl, &lim, &req, &status, &why);
	ok(rc == CDN_OK && req.head_len == hl, "limits: head == max is OK");
	rc = parse_lim(buf, hl + 5, &lim, &req, &status, &why);
	ok(rc == CDN_OK && req.head_len == hl,
	    "limits: bytes after the head don't count");
	lim.max_header_bytes = hl - 1;
	rc = parse_lim(buf, hl, &lim, &req, &status, &why);
	ok(rc == CDN_EINVAL && status == 431, "limits: max + 1 is 431");
	rc = parse_lim(buf, hl - 1, &lim, &req, &status, &why);
	ok(rc == CDN_EINVAL && status == 431,
	    "limits: 431 while incomplete once max bytes are seen");
	rc = parse_lim(buf, hl - 2, &lim, &req, &status, &why);
	is_int(rc, CDN_AGAIN, "limits: under max is AGAIN");
	/* Every prefix under the limit is AGAIN, at it 431. */
	lim.max_header_bytes = 60;
	for (n = 0; n < 60; n++) {
		rc = parse_lim(buf, n, &lim, &req, &status, &why);
		if (rc != CDN_AGAIN)
			break;
	}
	is_int(n, 60, "limits: AGAIN below max_header_bytes");
	rc = parse_lim(buf, 60, &lim, &req, &status, &why);
	ok(rc == CDN_EINVAL && status == 431,
	    "limits: 431 at max_header_bytes");
	/* A request line over both limits: 414 wins when it is known. */
	lim.max_request_line = 10;
	lim.max_header_bytes = 10;
	rc = parse_lim("GET /abcdefghijkl", 17, &lim, &req, &status, &why);
	ok(rc == CDN_EINVAL && status == 414, "limits: 414 before 431");
	lim.max_request_line = 100;
	rc = parse_lim("GET /abcdefghijkl", 17, &lim, &req, &status, &why);
	ok(rc == CDN_EINVAL && status == 431,
	    "limits: head limit cuts a long line");
}

/*
 * Every position of a target or value, with a bad byte there: the 8-byte
 * skimming must never step over it.
 */
static void
test_bad_byte_positions(void)
{
	static const char bad[] = {'\0', '\x01', '\x1f', '\x7f', '\r'};
	struct http_request req;
	char buf[256];
	const char *why;
	size_t i, b, len;
	int rc, status, fine_v, fine_t, fine_ok, fine_f;

	fine_v = fine_t = fine_ok = fine_f = 1;
	for (i = 0; i < 40; i++) {
		for (b = 0; b < sizeof(bad); b++) {
			len = (size_t)snprintf(buf, sizeof(buf),
			    "GET / HTTP/1.1\r\nHost: h\r\nX: "
			    "%040d\r\n\r\n",
			    0);
			buf[28 + i] = bad[b];
			rc = parse_lim(buf, len, &deflim, &req, &status, &why);
			if (rc != CDN_EINVAL || status != 400)
				fine_v = 0;

			len = (size_t)snprintf(buf, sizeof(buf),
			    "GET /%040d HTTP/1.1\r\nHost: h\r\n\r\n", 0);
			buf[5 + i] = bad[b];
			rc = parse_lim(buf, len, &deflim, &req, &status, &why);
			if (rc != CDN_EINVAL || status != 400)
				fine_t = 0;
		}
		/* RFC 9112 §3.2: a request-target has no fragment. */
		len = (size_t)snprintf(buf, sizeof(buf),
		    "GET /%040d HTTP/1.1\r\nHost: h\r\n\r\n", 0);
		buf[5 + i] = '#';
		rc = parse_lim(buf, len, &deflim, &req, &status, &why);
		if (rc != CDN_EINVAL || status != 400 ||
		    strcmp(why, "fragment in request-target") != 0)
			fine_f = 0;
		/* HTAB and obs-text are fine in values. */
		len = (size_t)snprintf(buf, sizeof(buf),
		    "GET / HTTP/1.1\r\nHost: h\r\nX: %040d\r\n\r\n", 0);
		buf[28 + i] = i & 1 ? '\t' : '\xff';
		rc = parse_lim(buf, len, &deflim, &req, &status, &why);
		if (rc != CDN_OK || req.headers[1].value.len == 0)
			fine_ok = 0;
	}
	ok(fine_v, "bad byte at each of 40 value positions -> 400");
	ok(fine_t, "bad byte at each of 40 target positions -> 400");
	ok(fine_f, "'#' at each of 40 target positions -> 400");
	ok(fine_ok, "HTAB/obs-text at each value position is fine");

	/* Trailing HTAB/SP runs longer than a word are trimmed. */
	rc = parse(
	    R11("X: \t \t \t \t \t v \t \t \t \t \t \t\r\n"), &req, &status);
	ok(rc == CDN_OK && strcmp(sl(req.headers[1].value), "v") == 0,
	    "long OWS runs trimmed");
}

/* ---- chunked decoder ---- */

static uint32_t rng_state;

static uint32_t
rng(void)
{
	rng_state = rng_state * 1103515245u + 12345u;
	return rng_state >> 8;
}

/*
 * Feed in[0..len) the way a connection would: bytes arrive in pieces of
 * <split> bytes (0: random 1..17), the decoder sees everything arrived and
 * not yet consumed.  Data goes to out.  Returns the final rc; *used is
 * the bytes consumed (framing + data) when it returned.
 */
static int
chunk_feed(const char *in, size_t len, size_t split, size_t max_line,
    size_t max_trailer, char *out, size_t *outlen, size_t *used,
    const char **why)
{
	struct http_chunked c;
	size_t pos, avail, fr, da, step;
	int rc;

	http_chunked_init(&c, max_line, max_trailer);
	pos = 0;
	avail = 0;
	*outlen = 0;
	for (;;) {
		rc =
		    http_chunked_step(&c, in + pos, avail - pos, &fr, &da, why);
		if (rc == CDN_EINVAL)
			break;
		if (fr + da > avail - pos) {
			rc = -100; /* contract broken */
			break;
		}
		memcpy(out + *outlen, in + pos + fr, da);
		*outlen += da;
		pos += fr + da;
		if (rc == CDN_OK)
			break;
		if (pos < avail && fr + da > 0)
			continue;
		if (avail == len)
			break; /* CDN_AGAIN with nothing left */
		step = split ? split : 1 + rng() % 17;
		avail = avail + step > len ? len : avail + step;
	}
	*used = pos;
	return rc;
}

/* The last cfeed() call's results. */
static struct {
	char out[256];
	size_t outlen, used;
	const char *why;
} cf;

/* chunk_feed() on a NUL-terminated body, results in cf. */
static int
cfeed(const char *in, size_t split, size_t max_line, size_t max_trailer)
{
	return chunk_feed(in, strlen(in), split, max_line, max_trailer, cf.out,
	    &cf.outlen, &cf.used, &cf.why);
}

static void
test_chunked_basic(void)
{
	static const char body[] =
	    "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
	char out[256];
	const char *why;
	size_t outlen, used, split, framed;
	int rc;

	framed = strlen(body) - 4;
	for (split = 1; split <= 9; split++) {
		rc = chunk_feed(body, strlen(body), split, 64, 64, out, &outlen,
		    &used, &why);
		ok(rc == CDN_OK && outlen == 11 &&
		        memcmp(out, "hello world", 11) == 0 && used == framed,
		    "chunked split %zu: data and framing end", split);
	}
	rc = chunk_feed(body, strlen(body), sizeof(body), 64, 64, out, &outlen,
	    &used, &why);
	ok(rc == CDN_OK && outlen == 11 && used == framed, "chunked: whole");

	rc = cfeed("0\r\n\r\n", 1, 64, 64);
	ok(rc == CDN_OK && cf.outlen == 0 && cf.used == 5,
	    "chunked: empty body");
	rc = cfeed("000\r\n\r\n", 7, 64, 64);
	ok(rc == CDN_OK && cf.used == 7, "chunked: last-chunk with zeros");
	rc = cfeed("A\r\n0123456789\r\n0\r\n\r\n", 3, 64, 64);
	ok(rc == CDN_OK && cf.outlen == 10, "chunked: uppercase hex");
	rc = cfeed("0000a\r\n0123456789\r\n0\r\n\r\n", 3, 64, 64);
	ok(rc == CDN_OK && cf.outlen == 10, "chunked: leading zeros");
	rc = cfeed(
	    "1f\r\n0123456789012345678901234567890\r\n0\r\n\r\n", 5, 64, 64);
	ok(rc == CDN_OK && cf.outlen == 31 &&
	        memcmp(cf.out, "0123456789012345678901234567890", 31) == 0,
	    "chunked: two hex digits");
	rc = cfeed("5\r\nhel", 1, 64, 64);
	ok(rc == CDN_AGAIN && cf.outlen == 3 && cf.used == 6,
	    "chunked: incomplete is AGAIN with data so far");
}

static void
test_chunked_steps(void)
{
	struct http_chunked c;
	const char *why;
	size_t fr, da;
	int rc;

	http_chunked_init(&c, 64, 64);
	rc = http_chunked_step(&c, "5\r\nhelloXYZ", 11, &fr, &da, &why);
	ok(rc == CDN_AGAIN && fr == 3 && da == 5,
	    "step: one run of data, stops at the chunk end");
	rc = http_chunked_step(&c, "", 0, &fr, &da, &why);
	ok(rc == CDN_AGAIN && fr == 0 && da == 0, "step: nothing in, nothing");
	rc = http_chunked_step(&c, "XYZ", 3, &fr, &da, &why);
	ok(rc == CDN_EINVAL && why != NULL, "step: data overrun is an error");
	rc = http_chunked_step(&c, "\r\n", 2, &fr, &da, &why);
	is_int(rc, CDN_EINVAL, "step: stays failed");

	http_chunked_init(&c, 64, 64);
	rc = http_chunked_step(
	    &c, "3\r\nabc\r\n0\r\n\r\nGET", 16, &fr, &da, &why);
	ok(rc == CDN_AGAIN && fr == 3 && da == 3, "step: first chunk");
	rc = http_chunked_step(&c, "\r\n0\r\n\r\nGET", 10, &fr, &da, &why);
	ok(rc == CDN_OK && fr == 7 && da == 0, "step: end, next request kept");
	rc = http_chunked_step(&c, "GET", 3, &fr, &da, &why);
	ok(rc == CDN_OK && fr == 0 && da == 0, "step: done stays done");

	/* What follows a bare-LF body is never handed back as a request. */
	http_chunked_init(&c, 64, 64);
	rc = http_chunked_step(
	    &c, "0\n\r\nGET / HTTP/1.1\r\n", 22, &fr, &da, &why);
	ok(rc == CDN_EINVAL && fr == 0 && da == 0,
	    "step: bare LF after the last chunk fails, nothing consumed");

	/* The largest size accepted is 2^62. */
	http_chunked_init(&c, 64, 64);
	rc =
	    http_chunked_step(&c, "4000000000000000\r\nab", 20, &fr, &da, &why);
	ok(rc == CDN_AGAIN && fr == 18 && da == 2, "step: 2^62 accepted");
}

/* Append a string at buf[*len]. */
static void
put(char *buf, size_t *len, const char *s)
{
	size_t n;

	n = strlen(s);
	memcpy(buf + *len, s, n);
	*len += n;
}

static void
test_chunked_random(void)
{
	static char in[65536], data[32768], out[32768];
	char hex[32];
	const char *why;
	size_t inlen, dlen, outlen, used, n, k;
	unsigned round;
	int rc, fine;

	rng_state = 20261127u;
	fine = 1;
	for (round = 0; round < 200; round++) {
		inlen = 0;
		dlen = 0;
		for (k = rng() % 6; k > 0; k--) {
			n = 1 + rng() % 700;
			snprintf(
			    hex, sizeof(hex), rng() % 3 ? "%zx" : "%zX", n);
			put(in, &inlen, hex);
			if (rng() % 4 == 0)
				put(in, &inlen, " ;a=b ; c=\"q\\\"x\";d");
			put(in, &inlen, "\r\n");
			while (n-- > 0) {
				data[dlen] = (char)(rng() & 0xff);
				in[inlen++] = data[dlen++];
			}
			put(in, &inlen, "\r\n");
		}
		put(in, &inlen, "0\r\n");
		if (rng() % 2)
			put(in, &inlen, "Trailer-A: x\r\nB:\r\n");
		put(in, &inlen, "\r\n");
		rc =
		    chunk_feed(in, inlen, 0, 64, 64, out, &outlen, &used, &why);
		if (rc != CDN_OK || outlen != dlen || used != inlen ||
		    memcmp(out, data, dlen) != 0) {
			printf("#   round %u: rc %d out %zu/%zu used %zu/%zu\n",
			    round, rc, outlen, dlen, used, inlen);
			fine = 0;
			break;
		}
	}
	ok(fine, "chunked: 200 random bodies in random splits reassembled");
}

static void
test_chunked_errors(void)
{
	static const struct {
		const char *name;
		const char *in;
		size_t max_line, max_trailer;
	} t[] = {
	    {"empty size", "\r\n5\r\nhello\r\n0\r\n\r\n", 64, 64},
	    {"non-hex size", "g\r\n", 64, 64},
	    {"negative size", "-1\r\n", 64, 64},
	    {"0x prefix", "0x5\r\nhello\r\n", 64, 64},
	    {"leading SP", " 5\r\nhello\r\n", 64, 64},
	    {"trailing SP, no ext", "5 \r\nhello\r\n", 64, 64},
	    {"trailing garbage", "5z\r\nhello\r\n", 64, 64},
	    {"overflow 2^62+1", "4000000000000001\r\n", 64, 64},
	    {"overflow 2^64", "10000000000000000\r\n", 64, 64},
	    {"overflow long", "ffffffffffffffffffffffff\r\n", 64, 64},
	    {"bare CR in size line", "5\rhello\r\n", 64, 64},
	    {"missing CRLF after data", "5\r\nhelloX\r\n0\r\n\r\n", 64, 64},
	    {"CR then garbage after data", "5\r\nhello\rX\n0\r\n\r\n", 64, 64},
	    {"data longer than size", "3\r\nhello\r\n0\r\n\r\n", 64, 64},
	    {"ext without name", "5;\r\nhello\r\n", 64, 64},
	    {"ext starting with =", "5;=x\r\nhello\r\n", 64, 64},
	    {"ext empty value", "5;a=\r\nhello\r\n", 64, 64},
	    {"ext CTL", "5;a=b\x01\r\nhello\r\n", 64, 64},
	    {"ext unterminated quote", "5;a=\"b\r\nhello\r\n", 64, 64},
	    {"ext trailing SP", "5;a=b \r\nhello\r\n", 64, 64},
	    {"ext two values", "5;a=b c\r\nhello\r\n", 64, 64},
	    {"ext too long",
	        "5;aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\nhello\r\n", 16, 64},
	    {"size line too long (zeros)",
	        "00000000000000000000000000000005\r\nhello\r\n", 16, 64},
	    {"trailer obs-fold", "0\r\nA: b\r\n c\r\n\r\n", 64, 64},
	    {"trailer SP before colon", "0\r\nA : b\r\n\r\n", 64, 64},
	    {"trailer empty name", "0\r\n: b\r\n\r\n", 64, 64},
	    {"trailer no colon", "0\r\nAb\r\n\r\n", 64, 64},
	    {"trailer CTL", "0\r\nA: b\x01\r\n\r\n", 64, 64},
	    {"trailer NUL", "0\r\nA: b\0\r\n\r\n", 64, 64},
	    {"trailer bare CR", "0\r\nA: b\rc\r\n\r\n", 64, 64},
	    {"bare CR at end", "0\r\n\rX", 64, 64},
	    {"trailers too large", "0\r\nX-A: 1234567890\r\n\r\n", 64, 16},
	    {"many small trailers", "0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n",
	        64, 20},
	    {"trailer with max 0", "0\r\nA: 1\r\n\r\n", 64, 0},
	    /* RFC 9112 §7.1: every framing line ends in CRLF, never LF. */
	    {"bare LF after size", "2\nxx\r\n0\r\n\r\n", 64, 64},
	    {"bare LF after ext name", "2;a\nxx\r\n0\r\n\r\n", 64, 64},
	    {"bare LF after ext token", "2;a=b\nxx\r\n0\r\n\r\n", 64, 64},
	    {"bare LF after ext quoted", "2;a=\"b\"\nxx\r\n0\r\n\r\n", 64, 64},
	    {"bare LF after chunk data", "2\r\nxx\n0\r\n\r\n", 64, 64},
	    {"bare LF after last chunk", "0\n\r\n", 64, 64},
	    {"bare LF after last chunk ext", "0;a=b\n\r\n", 64, 64},
	    {"bare LF ending empty trailers", "0\r\n\n", 64, 64},
	    {"bare LF after trailer field", "0\r\nA: b\n\r\n", 64, 64},
	    {"bare LF ending trailers", "0\r\nA: b\r\n\n", 64, 64},
	    {"LF CR after size", "2\n\rxx\r\n0\r\n\r\n", 64, 64},
	};
	char out[256];
	const char *why;
	size_t i, len, outlen, used, split;
	int rc, fine;

	for (i = 0; i < CDN_ARRAY_LEN(t); i++) {
		len = strlen(t[i].in);
		if (strcmp(t[i].name, "trailer NUL") == 0)
			len = sizeof("0\r\nA: b\0\r\n\r\n") - 1;
		why = NULL;
		rc = chunk_feed(t[i].in, len, len, t[i].max_line,
		    t[i].max_trailer, out, &outlen, &used, &why);
		ok(rc == CDN_EINVAL && why != NULL, "chunked error: %s (%s)",
		    t[i].name, why ? why : "-");
		fine = 1;
		for (split = 1; split < 4; split++) {
			rc = chunk_feed(t[i].in, len, split, t[i].max_line,
			    t[i].max_trailer, out, &outlen, &used, &why);
			if (rc != CDN_EINVAL)
				fine = 0;
		}
		ok(fine, "chunked error: %s, split feeding", t[i].name);
	}

	/* The same limits, just met, pass. */
	rc = cfeed("5;aaaaaaa\r\nhello\r\n0\r\n\r\n", 1, 11, 0);
	ok(rc == CDN_OK, "chunked: size line == max_line OK");
	rc = cfeed("5;aaaaaaaa\r\nhello\r\n0\r\n\r\n", 1, 11, 0);
	is_int(rc, CDN_EINVAL, "chunked: size line == max_line + 1 fails");
	rc = cfeed("0\r\nX-A: 1234567890\r\n\r\n", 1, 64, 17);
	ok(rc == CDN_OK && cf.used == 22,
	    "chunked: trailers == max_trailer OK");
	rc = cfeed("0\r\nX-A: 1234567890\r\n\r\n", 1, 64, 16);
	is_int(rc, CDN_EINVAL, "chunked: trailers == max_trailer + 1 fails");

	/* Extensions the grammar allows. */
	rc = cfeed(
	    "5 ; a = \"x;\\\"y\" ; b ;c=d\r\nhello\r\n0;z\r\n\r\n", 1, 64, 64);
	ok(rc == CDN_OK && cf.outlen == 5,
	    "chunked: BWS and quoted extensions");
	rc = cfeed("5;a\thello", 1, 64, 64);
	is_int(rc, CDN_EINVAL, "chunked: ext name then HTAB then data");
}

static void
test_reasons(void)
{
	int s, named;

	is_str(http_status_reason(200), "OK", "reason 200");
	is_str(http_status_reason(100), "Continue", "reason 100");
	is_str(http_status_reason(204), "No Content", "reason 204");
	is_str(http_status_reason(206), "Partial Content", "reason 206");
	is_str(http_status_reason(301), "Moved Permanently", "reason 301");
	is_str(http_status_reason(304), "Not Modified", "reason 304");
	is_str(http_status_reason(400), "Bad Request", "reason 400");
	is_str(http_status_reason(404), "Not Found", "reason 404");
	is_str(http_status_reason(413), "Content Too Large", "reason 413");
	is_str(http_status_reason(414), "URI Too Long", "reason 414");
	is_str(http_status_reason(431), "Request Header Fields Too Large",
	    "reason 431");
	is_str(http_status_reason(501), "Not Implemented", "reason 501");
	is_str(http_status_reason(502), "Bad Gateway", "reason 502");
	is_str(http_status_reason(503), "Service Unavailable", "reason 503");
	is_str(http_status_reason(504), "Gateway Timeout", "reason 504");
	is_str(http_status_reason(505), "HTTP Version Not Supported",
	    "reason 505");
	is_str(http_status_reason(511), "Network Authentication Required",
	    "reason 511");
	is_str(http_status_reason(0), "Unknown", "reason 0");
	is_str(http_status_reason(299), "Unknown", "reason 299");
	is_str(http_status_reason(600), "Unknown", "reason 600");
	is_str(http_status_reason(-1), "Unknown", "reason -1");
	named = 0;
	for (s = 100; s <= 511; s++)
		if (strcmp(http_status_reason(s), "Unknown") != 0)
			named++;
	is_int(named, 61, "reasons: 61 codes named between 100 and 511");
}

int
main(void)
{
	plan_no_plan();
	test_table();
	test_values();
	test_why();
	test_slice_eq();
	test_methods();
	test_targets();
	test_keepalive();
	test_incremental();
	test_prefix_consistency();
	test_pipelined();
	test_limits();
	test_bad_byte_positions();
	test_chunked_basic();
	test_chunked_steps();
	test_chunked_random();
	test_chunked_errors();
	test_reasons();
	return done_testing();
}
