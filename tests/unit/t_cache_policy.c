/*
 * Unit tests for cache/cache_policy.c: Cache-Control parsing, HTTP-dates,
 * the response head parser, cache_policy_decide() over a table of origin
 * responses (every directive, Expires/Date arithmetic, heuristics, the
 * operator's TTLs, Authorization, Set-Cookie, targeted fields), the age
 * calculation of RFC 9111 §4.2.3, and cache_policy_use() over a table of
 * stored responses and requests.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cache/cache.h"
#include "common/cdn_strbuf.h"
#include "http/http_date.h"
#include "tests/unit/tap.h"

#define T0       INT64_C(1700000000) /* Tue, 14 Nov 2023 22:13:20 GMT */
#define D_T0     "Date: Tue, 14 Nov 2023 22:13:20 GMT\r\n"
#define D_M100   "Date: Tue, 14 Nov 2023 22:11:40 GMT\r\n"
#define D_P100   "Date: Tue, 14 Nov 2023 22:15:00 GMT\r\n"
#define E_P3600  "Expires: Tue, 14 Nov 2023 23:13:20 GMT\r\n"
#define E_P10    "Expires: Tue, 14 Nov 2023 22:13:30 GMT\r\n"
#define E_M10000 "Expires: Tue, 14 Nov 2023 19:26:40 GMT\r\n"
#define LM_10D   "Last-Modified: Sat, 04 Nov 2023 22:13:20 GMT\r\n"
#define LM_1000  "Last-Modified: Tue, 14 Nov 2023 21:56:40 GMT\r\n"
#define LM_FUT   "Last-Modified: Tue, 14 Nov 2023 22:15:00 GMT\r\n"
#define CC(v)    "Cache-Control: " v "\r\n"
#define CDN(v)   "CDN-Cache-Control: " v "\r\n"
#define SUR(v)   "Surrogate-Control: " v "\r\n"

/* ---- Cache-Control ---- */

static void
cc(struct cache_cc *c, const char *v)
{
	cache_cc_init(c);
	cache_cc_parse(c, v, strlen(v));
}

static void
test_cc_parse(void)
{
	struct cache_cc c;

	cache_cc_init(&c);
	ok(!c.is_set && c.max_age == -1 && c.s_maxage == -1 &&
	        c.max_stale == -1 && c.min_fresh == -1 &&
	        c.stale_while_revalidate == -1 && c.stale_if_error == -1 &&
	        !c.no_store && !c.no_cache && !c.is_private,
	    "init: nothing seen");

	cc(&c, "max-age=60");
	ok(c.is_set && c.max_age == 60 && c.s_maxage == -1, "max-age=60");
	cc(&c, "MAX-AGE=60");
	is_int(c.max_age, 60, "directive names are case-insensitive");
	cc(&c, "max-age=60, max-age=30");
	is_int(c.max_age, 30, "duplicate max-age: smallest");
	cc(&c, "max-age=30");
	cache_cc_parse(&c, "max-age=60", 10);
	is_int(c.max_age, 30, "duplicate max-age across lines: smallest");
	cc(&c, "max-age=abc");
	is_int(c.max_age, 0, "max-age=abc is 0");
	cc(&c, "max-age=");
	is_int(c.max_age, 0, "max-age= is 0");
	cc(&c, "max-age");
	is_int(c.max_age, 0, "bare max-age is 0");
	cc(&c, "max-age=-1");
	is_int(c.max_age, 0, "max-age=-1 is 0");
	cc(&c, "max-age=1.5");
	is_int(c.max_age, 0, "max-age=1.5 is 0");
	cc(&c, "max-age=60 junk");
	is_int(c.max_age, 0, "max-age with trailing junk is 0");
	cc(&c, "max-age=60, max-age=x");
	is_int(c.max_age, 0, "a malformed duplicate wins (stale)");
	cc(&c, "max-age=\"60\"");
	is_int(c.max_age, 60, "quoted-string argument accepted");
	cc(&c, "max-age = 60");
	is_int(c.max_age, 60, "OWS around '=' tolerated");
	cc(&c, "max-age=99999999999999999999999");
	is_int(c.max_age, 2147483647, "overflow clamps to 2^31-1");
	cc(&c, "max-age=2147483648");
	is_int(c.max_age, 2147483647, "2^31 clamps to 2^31-1");
	cc(&c, "max-age=2147483647");
	is_int(c.max_age, 2147483647, "2^31-1 kept");
	cc(&c, "max-age=007");
	is_int(c.max_age, 7, "leading zeros");
	cc(&c, "s-maxage=10, max-age=20");
	ok(c.s_maxage == 10 && c.max_age == 20, "s-maxage and max-age");
	cc(&c, "s-maxage=abc");
	is_int(c.s_maxage, 0, "malformed s-maxage is 0");
	cc(&c, "s-maxage=10, s-maxage=5");
	is_int(c.s_maxage, 5, "duplicate s-maxage: smallest");

	cc(&c, "no-cache");
	ok(c.no_cache && !c.no_cache_fields, "no-cache");
	cc(&c, "no-cache=\"set-cookie, x-a\"");
	ok(!c.no_cache && c.no_cache_fields, "no-cache=\"f1, f2\" qualified");
	cc(&c, "no-cache=set-cookie");
	ok(!c.no_cache && c.no_cache_fields, "no-cache=token qualified");
	cc(&c, "no-cache=\"\"");
	ok(c.no_cache && !c.no_cache_fields, "no-cache=\"\" unqualified");
	cc(&c, "no-cache=\"set-cookie");
	ok(c.no_cache && !c.no_cache_fields,
	    "unterminated no-cache=\" unqualified");
	cc(&c, "no-cache=\"a\", no-cache");
	ok(c.no_cache && c.no_cache_fields, "both forms");
	cc(&c, "private");
	ok(c.is_private && !c.private_fields, "private");
	cc(&c, "private=\"x-user\"");
	ok(!c.is_private && c.private_fields, "private=\"f\" qualified");
	cc(&c, "private=\" , \"");
	ok(c.is_private && !c.private_fields, "private with no name");
	cc(&c, "public");
	ok(c.is_public, "public");
	cc(&c, "public=1");
	ok(!c.is_public, "public=1 ignored");
	cc(&c, "no-store");
	ok(c.no_store, "no-store");
	cc(&c, "no-store=1");
	ok(c.no_store, "no-store=1 still no-store");
	cc(&c, "no-store junk");
	ok(c.no_store, "malformed no-store still no-store");
	cc(&c,
	    "must-revalidate, proxy-revalidate, must-understand, "
	    "no-transform, immutable, only-if-cached");
	ok(c.must_revalidate && c.proxy_revalidate && c.must_understand &&
	        c.no_transform && c.immutable && c.only_if_cached &&
	        !c.no_store && !c.is_public,
	    "flag directives");
	cc(&c, "immutable=1, must-understand=x");
	ok(!c.immutable && !c.must_understand,
	    "permissive flags with an argument ignored");

	cc(&c, "max-stale");
	ok(c.max_stale == INT64_MAX, "bare max-stale: any staleness");
	cc(&c, "max-stale=10");
	is_int(c.max_stale, 10, "max-stale=10");
	cc(&c, "max-stale, max-stale=5");
	is_int(c.max_stale, 5, "max-stale duplicates: smallest");
	cc(&c, "max-stale=x");
	is_int(c.max_stale, -1, "max-stale=x ignored");
	cc(&c, "min-fresh=10, min-fresh=20");
	is_int(c.min_fresh, 20, "min-fresh duplicates: largest");
	cc(&c, "min-fresh=x");
	is_int(c.min_fresh, -1, "min-fresh=x ignored");
	cc(&c, "stale-while-revalidate=30, stale-if-error=600");
	ok(c.stale_while_revalidate == 30 && c.stale_if_error == 600,
	    "stale-while-revalidate, stale-if-error");
	cc(&c, "stale-while-revalidate=30, stale-while-revalidate=20");
	is_int(c.stale_while_revalidate, 20, "swr duplicates: smallest");
	cc(&c, "stale-if-error=x");
	is_int(c.stale_if_error, -1, "stale-if-error=x ignored");

	cc(&c, "");
	ok(!c.is_set, "empty: nothing set");
	cc(&c, " , ,\t");
	ok(!c.is_set, "only separators: nothing set");
	cc(&c, "foo");
	ok(c.is_set && c.max_age == -1 && !c.no_store,
	    "unknown directive: set, ignored");
	cc(&c, "foo=\"a, no-store\", max-age=5");
	ok(c.max_age == 5 && !c.no_store, "commas inside a quoted argument");
	cc(&c, "no-cache=\"a\\\"b, c\", max-age=3");
	ok(c.max_age == 3 && c.no_cache_fields && !c.no_cache,
	    "quoted-pair inside a quoted argument");
	cc(&c, "@@@, max-age=5");
	ok(c.max_age == 5, "junk member skipped");
	cc(&c, "max-age=5,,,no-store,");
	ok(c.max_age == 5 && c.no_store, "empty members");
	cc(&c, "x=\"a, max-age=5");
	ok(c.max_age == -1, "unterminated quote swallows the rest");
	cc(&c, "private=\"a, b\", no-store");
	ok(c.private_fields && !c.is_private && c.no_store,
	    "qualified private then no-store");
	cc(&c, "max-age=5;q=1");
	is_int(c.max_age, 0, "max-age=5;q=1 malformed");
}

/* ---- CDN-Cache-Control (RFC 9213 §2.1) ---- */

static int
cdn(struct cache_cc *c, const char *v)
{
	return cache_cdn_cc_parse(c, v, strlen(v));
}

static void
test_cdn_cc_parse(void)
{
	static const char *const invalid[] = {
	    "max-age=\"10000\"", /* a String where an Integer belongs */
	    "&&&",
	    "max-age=60;FOO",           /* a parameter key in upper case */
	    "max-age=60;",              /* a parameter without its key */
	    "max-age=-1",               /* delta-seconds are not negative */
	    "max-age=1.5",              /* nor decimals */
	    "max-age=1000000000000000", /* 16 digits */
	    "max-age=abc",              /* a Token */
	    "MAX-AGE=5",
	    "max-age=5,",
	    "max-age = 5",
	    "\tmax-age=5",
	    "no-store=?0", /* no-store is always true */
	    "no-store=1",
	    "must-revalidate=\"yes\"",
	    "public=(1)",
	    "no-cache=set-cookie", /* a Token: only true or a String */
	    "private=?0",
	    "s-maxage=:YQ==:",
	    "stale-if-error=?1",
	    "stale-while-revalidate=(1 2)",
	    "max-age=5, no-store, &",
	};
	struct cache_cc c;
	size_t i;

	for (i = 0; i < CDN_ARRAY_LEN(invalid); i++) {
		c.max_age = 42;
		ok(cdn(&c, invalid[i]) == CDN_EINVAL && !c.is_set &&
		        c.max_age == -1 && !c.no_store,
		    "CDN-Cache-Control invalid and reset: %s", invalid[i]);
	}

	ok(cdn(&c, "max-age=60") == CDN_OK && c.is_set && c.max_age == 60,
	    "CDN max-age=60");
	ok(cdn(&c, "") == CDN_OK && !c.is_set, "CDN empty: valid, not set");
	ok(cdn(&c, "   ") == CDN_OK && !c.is_set, "CDN spaces: empty");
	ok(cdn(&c, "max-age=10, max-age=20") == CDN_OK && c.max_age == 20,
	    "CDN repeated max-age: the last (RFC 8941), not the smallest");
	ok(cdn(&c, "max-age=\"x\", max-age=5") == CDN_OK && c.max_age == 5,
	    "CDN a wrong type overwritten by a valid one");
	ok(cdn(&c, "max-age=5, max-age=\"x\"") == CDN_EINVAL,
	    "CDN a valid value overwritten by a wrong type");
	ok(cdn(&c, "max-age=99999999999") == CDN_OK && c.max_age == 2147483647,
	    "CDN max-age clamps to 2^31-1");
	ok(cdn(&c, "s-maxage=0, stale-while-revalidate=5, stale-if-error=6") ==
	            CDN_OK &&
	        c.s_maxage == 0 && c.stale_while_revalidate == 5 &&
	        c.stale_if_error == 6,
	    "CDN integers");
	ok(cdn(&c,
	       "no-store, must-revalidate=?1, proxy-revalidate, public, "
	       "immutable, must-understand, no-transform") == CDN_OK &&
	        c.no_store && c.must_revalidate && c.proxy_revalidate &&
	        c.is_public && c.immutable && c.must_understand &&
	        c.no_transform,
	    "CDN booleans");
	ok(cdn(&c, "no-cache=\"set-cookie\", private=\"a, b\"") == CDN_OK &&
	        c.no_cache_fields && !c.no_cache && c.private_fields &&
	        !c.is_private,
	    "CDN qualified no-cache and private");
	ok(cdn(&c, "no-cache=\"\", private") == CDN_OK && c.no_cache &&
	        !c.no_cache_fields && c.is_private,
	    "CDN no-cache with an empty list: unqualified");
	ok(cdn(&c,
	       "max-age=60;a=1;b, foo=(1 2);c=?0, bar=:YQ==:, baz=1.5, "
	       "qux=tok, *x") == CDN_OK &&
	        c.is_set && c.max_age == 60,
	    "CDN extensions of every type and parameters ignored");
	ok(cdn(&c, "max-stale=abc, min-fresh=\"x\", only-if-cached=?0") ==
	            CDN_OK &&
	        c.is_set && c.max_stale == -1 && !c.only_if_cached,
	    "CDN request directives are extensions here");
	ok(cdn(&c, "max-age=5 ,\tno-store") == CDN_OK && c.max_age == 5 &&
	        c.no_store,
	    "CDN OWS around commas");
}

/* ---- HTTP-date ---- */

static void
test_dates(void)
{
	static const struct {
		const char *s;
		int64_t want;
	} dc[] = {
	    {"Sun, 06 Nov 1994 08:49:37 GMT", 784111777},
	    {"Sunday, 06-Nov-94 08:49:37 GMT", 784111777},
	    {"Sun Nov  6 08:49:37 1994", 784111777},
	    {"Sun Nov 06 08:49:37 1994", 784111777},
	    {" Sun, 06 Nov 1994 08:49:37 GMT\t", 784111777},
	    {"Thu, 01 Jan 1970 00:00:00 GMT", 0},
	    {"Fri, 31 Dec 9999 23:59:59 GMT", INT64_C(253402300799)},
	    {"Tue, 14 Nov 2023 22:13:20 GMT", T0},
	    {"Tue, 29 Feb 2000 00:00:00 GMT", 951782400},
	    {"Thu, 29 Feb 2024 12:00:00 GMT", 1709208000},
	    {"Wed, 31 Dec 2008 23:59:60 GMT", 1230768000}, /* leap second */
	    {"Thursday, 01-Jan-37 00:00:00 GMT", 2114380800},
	    {"Friday, 01-Jan-99 00:00:00 GMT", 915148800},
	    {"Saturday, 01-Jan-00 00:00:00 GMT", 946684800},
	    {"Wednesday, 09-Nov-94 08:49:37 GMT", 784370977},
	    {"Mon, 06 Nov 1994 08:49:37 GMT",
	        784111777}, /* weekday unchecked */
	    /* invalid */
	    {"Wed, 29 Feb 2023 12:00:00 GMT", -1},
	    {"Mon, 29 Feb 2100 12:00:00 GMT", -1},
	    {"Sun, 31 Apr 1994 08:49:37 GMT", -1},
	    {"Sun, 00 Nov 1994 08:49:37 GMT", -1},
	    {"Sun, 32 Nov 1994 08:49:37 GMT", -1},
	    {"Sun, 06 Nov 1994 24:00:00 GMT", -1},
	    {"Sun, 06 Nov 1994 08:60:00 GMT", -1},
	    {"Sun, 06 Nov 1994 08:49:61 GMT", -1},
	    {"Sun, 06 Nov 1994 08:49:37 UTC", -1},
	    {"Sun, 06 Nov 1994 08:49:37 gmt", -1},
	    {"sun, 06 Nov 1994 08:49:37 GMT", -1},
	    {"Sun, 06 nov 1994 08:49:37 GMT", -1},
	    {"Foo, 06 Nov 1994 08:49:37 GMT", -1},
	    {"Sun, 06 Foo 1994 08:49:37 GMT", -1},
	    {"Sun, 6 Nov 1994 08:49:37 GMT", -1},
	    {"Sun, 06 Nov 1994 8:49:37 GMT", -1},
	    {"Sun, 06 Nov 1994 08:49:37 GMTX", -1},
	    {"Sun, 06 Nov 1994 08-49-37 GMT", -1},
	    {"Sun, 06 Nov 19a4 08:49:37 GMT", -1},
	    {"Sun, 06-Nov-1994 08:49:37 GMT", -1},
	    {"Sunday, 06-Nov-1994 08:49:37 GMT", -1},
	    {"Sunday, 06 Nov 94 08:49:37 GMT", -1},
	    {"Sundae, 06-Nov-94 08:49:37 GMT", -1},
	    {"Sun Nov  6 08:49:37 94", -1},
	    {"Sun Nov 6  08:49:37 1994", -1},
	    {"Wed, 31 Dec 1969 23:59:59 GMT", -1},
	    {"Mon, 01 Jan 1900 00:00:00 GMT", -1},
	    {"0", -1},
	    {"-1", -1},
	    {"", -1},
	    {"1700000000", -1},
	};
	static const struct {
		int64_t t;
		const char *want;
	} fc[] = {
	    {784111777, "Sun, 06 Nov 1994 08:49:37 GMT"},
	    {0, "Thu, 01 Jan 1970 00:00:00 GMT"},
	    {-5, "Thu, 01 Jan 1970 00:00:00 GMT"},
	    {T0, "Tue, 14 Nov 2023 22:13:20 GMT"},
	    {951782400, "Tue, 29 Feb 2000 00:00:00 GMT"},
	    {INT64_C(253402300799), "Fri, 31 Dec 9999 23:59:59 GMT"},
	    {INT64_MAX, "Fri, 31 Dec 9999 23:59:59 GMT"},
	    {INT64_C(4102444799), "Thu, 31 Dec 2099 23:59:59 GMT"},
	};
	char buf[32];
	size_t i;
	int64_t t;

	for (i = 0; i < CDN_ARRAY_LEN(dc); i++)
		is_int(http_date_parse(dc[i].s, strlen(dc[i].s)), dc[i].want,
		    "date \"%s\"", dc[i].s);
	is_int(http_date_parse(NULL, 0), -1, "NULL date");
	for (i = 0; i < CDN_ARRAY_LEN(fc); i++) {
		memset(buf, 'x', sizeof(buf));
		http_date_format(fc[i].t, buf, 30);
		is_str(buf, fc[i].want, "format %lld", (long long)fc[i].t);
	}
	/* every format parses back, across leap years and centuries */
	for (t = 0; t < INT64_C(7258118400); t += 86400 * 7 + 3607) {
		http_date_format(t, buf, sizeof(buf));
		if (http_date_parse(buf, strlen(buf)) != t)
			break;
	}
	ok(t >= INT64_C(7258118400), "format/parse round trip to 2200 (%s)",
	    buf);
}

/* ---- response head ---- */

/* CDN-Cache-Control over several lines is joined into a bounded buffer;
 * one long line is read in place. */
static void
test_cdn_long_lines(struct cache_exchange *x)
{
	static char h[3 * 4096];
	const char *line = "CDN-Cache-Control: max-age=60, ";
	size_t n, ll = strlen(line);

	/* One line of 5000 bytes: "max-age=60, a, a, ..., a" */
	memcpy(h, line, ll);
	for (n = ll; n < ll + 5000; n += 3)
		memcpy(h + n, "a, ", 3);
	memcpy(h + n, "a\r\n", 3);
	n += 3;
	cache_exchange_parse_response(x, h, n);
	ok(x->cdn_cc.is_set && x->cdn_cc.max_age == 60,
	    "one long CDN-Cache-Control line");
	/* The same then a second line: past CDN_CC_JOIN_MAX, ignored. */
	ll = strlen(CDN("no-store"));
	memcpy(h + n, CDN("no-store"), ll);
	cache_exchange_parse_response(x, h, n + ll);
	ok(!x->cdn_cc.is_set, "lines joined past 4 KiB: ignored");
	/* Two short lines well within it. */
	n = (size_t)snprintf(h, sizeof(h), "%s%s",
	    "CDN-Cache-Control: max-age=60\r\n",
	    "CDN-Cache-Control: no-store\r\n");
	cache_exchange_parse_response(x, h, n);
	ok(x->cdn_cc.max_age == 60 && x->cdn_cc.no_store, "two short lines");
}

/* RFC 9111 §5.1: the first member of a list-based Age, else ignored. */
static void
test_age_members(struct cache_exchange *x)
{
	static const struct {
		const char *head;
		int64_t age;
	} ac[] = {
	    /* the head's lines; the TAP name shows only the index */
	    {"Age: 7200, 0\r\n", 7200},
	    {"Age: 0, 7200\r\n", 0},
	    {"Age: 100\r\nAge: 7200\r\n", 100},
	    {"Age: 7200\r\nAge: 100\r\n", 7200},
	    {"Age:  5 ,\t9\r\n", 5},
	    {"Age: , 5\r\n", 5},
	    {"Age:\r\nAge: 8\r\n", 8},
	    {"Age: ,\r\nAge: 8, 1\r\n", 8},
	    {"Age: abc, 5\r\n", -1},
	    {"Age: abc\r\nAge: 5\r\n", -1},
	    {"Age: -5, 5\r\n", -1},
	    {"Age: 1 2\r\n", -1},
	    {"Age: \"5\"\r\n", -1},
	    {"Age: 5;x=1\r\n", -1},
	    {"Age: 99999999999, 1\r\n", 2147483647},
	    {"Age:\r\n", -1},
	};
	size_t i;

	for (i = 0; i < CDN_ARRAY_LEN(ac); i++) {
		cache_exchange_parse_response(
		    x, ac[i].head, strlen(ac[i].head));
		is_int(x->age, ac[i].age, "list-based Age, case %zu", i);
	}
}

static void
test_parse_response(void)
{
	struct cache_exchange x;
	const char *h;

	memset(&x, 0x5a, sizeof(x));
	h = "cache-control: max-age=60\r\n"
	    "CACHE-CONTROL: no-transform, max-age=30\r\n"
	    "Date: Tue, 14 Nov 2023 22:13:20 GMT\r\n"
	    "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
	    "Expires: Tue, 14 Nov 2023 23:13:20 GMT\r\n"
	    "expires: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
	    "Last-Modified:Sun, 06 Nov 1994 08:49:37 GMT  \r\n"
	    "Age: 10\r\n"
	    "Age: 20\r\n"
	    "Age: 5\r\n"
	    "Set-Cookie: a=1\r\n"
	    "Vary: Accept-Encoding\r\n"
	    "X-Other: max-age=1\r\n";
	cache_exchange_parse_response(&x, h, strlen(h));
	ok(x.cc.is_set && x.cc.max_age == 30 && x.cc.no_transform,
	    "two Cache-Control lines, smallest max-age");
	ok(!x.cdn_cc.is_set && x.cdn_cc.max_age == -1, "no targeted field");
	is_int(x.date, T0, "the first Date");
	ok(x.has_expires && x.expires == 784111777, "the earliest Expires");
	is_int(x.last_modified, 784111777, "Last-Modified, no OWS");
	is_int(x.age, 10, "three Age lines: the first (RFC 9111 §5.1)");
	ok(x.has_set_cookie && !x.vary_star, "Set-Cookie, Vary");

	h = "Expires: Sun, 06 Nov 1994 08:49:37 GMT\r\n" E_P3600;
	cache_exchange_parse_response(&x, h, strlen(h));
	ok(x.has_expires && x.expires == 784111777,
	    "the earliest Expires, in either order");

	h = "Expires: 0\nAge: abc\nAge: -5\nVary: Accept, *\nDate: nope\n";
	cache_exchange_parse_response(&x, h, strlen(h));
	ok(x.has_expires && x.expires == 0, "invalid Expires is in the past");
	is_int(x.age, -1, "invalid Age ignored");
	ok(x.vary_star && !x.has_set_cookie, "Vary: Accept, * (LF lines)");
	is_int(x.date, -1, "invalid Date");
	ok(!x.cc.is_set && x.last_modified == -1, "fields reset");

	h = "Age: 2147483648000\r\nVary: *";
	cache_exchange_parse_response(&x, h, strlen(h));
	ok(x.age == 2147483647 && x.vary_star, "Age clamps; no final CRLF");
	h = "Age: 1, 2\r\nVary: a*, *b\r\n";
	cache_exchange_parse_response(&x, h, strlen(h));
	ok(x.age == 1 && !x.vary_star, "Age list: the first; '*b' is no star");
	test_age_members(&x);

	h = "Cache-Control: max-age=5\r\n\r\nCache-Control: no-store\r\n";
	cache_exchange_parse_response(&x, h, strlen(h));
	ok(x.cc.max_age == 5 && !x.cc.no_store, "stops at the empty line");
	h = "Cache-Control: max-age=5\r\n no-store\r\nBroken\r\n"
	    "Cache-Control : no-store\r\nX: y\r\n";
	cache_exchange_parse_response(&x, h, strlen(h));
	ok(x.cc.max_age == 5 && !x.cc.no_store,
	    "obs-fold, no colon, space before colon: ignored");

	h = CDN("max-age=100") SUR("max-age=300");
	cache_exchange_parse_response(&x, h, strlen(h));
	is_int(x.cdn_cc.max_age, 100, "CDN-Cache-Control over Surrogate");
	h = SUR("max-age=300") CDN("max-age=100");
	cache_exchange_parse_response(&x, h, strlen(h));
	is_int(x.cdn_cc.max_age, 100, "... in either order");
	h = CDN(" ") SUR("max-age=300");
	cache_exchange_parse_response(&x, h, strlen(h));
	is_int(x.cdn_cc.max_age, 300, "empty CDN-Cache-Control: Surrogate");
	h = SUR("no-store");
	cache_exchange_parse_response(&x, h, strlen(h));
	ok(x.cdn_cc.no_store && !x.cc.is_set, "Surrogate-Control alone");
	h = SUR("max-age=5;q") CDN("max-age=\"1\"");
	cache_exchange_parse_response(&x, h, strlen(h));
	is_int(x.cdn_cc.max_age, 0,
	    "invalid CDN-Cache-Control: Surrogate-Control, read as CC is");
	h = CDN("max-age=100") "X: y\r\n" CDN("no-store");
	cache_exchange_parse_response(&x, h, strlen(h));
	ok(x.cdn_cc.max_age == 100 && x.cdn_cc.no_store,
	    "CDN-Cache-Control lines joined");
	h = CDN("a=\"x") CDN("y\", max-age=7");
	cache_exchange_parse_response(&x, h, strlen(h));
	is_int(x.cdn_cc.max_age, 7, "a String spanning two lines (joined)");
	h = CDN("max-age=100") CDN("") CDN("max-age=9");
	cache_exchange_parse_response(&x, h, strlen(h));
	is_int(x.cdn_cc.max_age, 9, "an empty line adds no member");
	h = CDN("max-age=100,") CDN("no-store");
	cache_exchange_parse_response(&x, h, strlen(h));
	ok(!x.cdn_cc.is_set, "a trailing comma on a line: invalid joined");
	test_cdn_long_lines(&x);

	cache_exchange_parse_response(&x, NULL, 0);
	ok(x.date == -1 && x.expires == -1 && !x.has_expires && x.age == -1 &&
	        !x.cc.is_set,
	    "empty head");
}

/* ---- cache_policy_decide ---- */

enum cf { C_STD, C_CAP, C_DEF, C_NOHEUR, C_MIN, C_MAX, C_COOKIE, C_NOTGT };

static const struct cache_policy_conf confs[] = {
    /* default, min, max, %, heuristic cap, cookie, targeted */
    [C_STD] = {0, 0, 0, 10, 0, 0, 1},
    [C_CAP] = {0, 0, 0, 10, 3600, 0, 1},
    [C_DEF] = {300, 0, 0, 10, 0, 0, 1},
    [C_NOHEUR] = {300, 0, 0, 0, 0, 0, 1},
    [C_MIN] = {0, 600, 0, 10, 0, 0, 1},
    [C_MAX] = {0, 0, 100, 10, 0, 0, 1},
    [C_COOKIE] = {0, 0, 0, 10, 0, 1, 1},
    [C_NOTGT] = {0, 0, 0, 10, 0, 0, 0},
};

#define GET  0
#define POST 1
#define AUTH 1

static const struct dcase {
	const char *name;
	enum cf conf;
	int method;
	int auth;
	const char *req_cc;
	int status;
	const char *head;
	/* expected */
	int storable;
	const char *reason;
	int64_t fresh;
	unsigned mr, nc;
	int64_t swr, sie;
} dcases[] = {
    /* explicit freshness, RFC 9111 §4.2.1 */
    {"max-age", C_STD, GET, 0, NULL, 200, CC("max-age=60") D_T0, 1,
        "fresh:max-age", 60, 0, 0, 0, 0},
    {"s-maxage over max-age", C_STD, GET, 0, NULL, 200,
        CC("max-age=60, s-maxage=120"), 1, "fresh:s-maxage", 120, 1, 0, 0, 0},
    {"s-maxage=0", C_STD, GET, 0, NULL, 200, CC("s-maxage=0"), 1,
        "fresh:s-maxage", 0, 1, 0, 0, 0},
    {"max-age over Expires", C_STD, GET, 0, NULL, 200,
        CC("max-age=60") D_T0 E_P3600, 1, "fresh:max-age", 60, 0, 0, 0, 0},
    {"Expires - Date", C_STD, GET, 0, NULL, 200, D_T0 E_P3600, 1,
        "fresh:expires", 3600, 0, 0, 0, 0},
    {"Expires - response_time without Date", C_STD, GET, 0, NULL, 200, E_P3600,
        1, "fresh:expires", 3600, 0, 0, 0, 0},
    {"Expires - an older Date", C_STD, GET, 0, NULL, 200, D_M100 E_P3600, 1,
        "fresh:expires", 3700, 0, 0, 0, 0},
    {"Expires before Date", C_STD, GET, 0, NULL, 200, D_T0 E_M10000, 1,
        "fresh:expires", 0, 0, 0, 0, 0},
    {"invalid Expires", C_STD, GET, 0, NULL, 200, D_T0 "Expires: 0\r\n", 1,
        "fresh:expires", 0, 0, 0, 0, 0},
    {"invalid Expires, LM present: no heuristic", C_STD, GET, 0, NULL, 200,
        D_T0 LM_10D "Expires: -1\r\n", 1, "fresh:expires", 0, 0, 0, 0, 0},
    {"malformed max-age is stale", C_STD, GET, 0, NULL, 200,
        CC("max-age=soon") E_P3600, 1, "fresh:max-age", 0, 0, 0, 0, 0},
    {"duplicate max-age: smallest", C_STD, GET, 0, NULL, 200,
        CC("max-age=60") CC("max-age=30, public"), 1, "fresh:max-age", 30, 0, 0,
        0, 0},
    {"huge max-age clamps", C_STD, GET, 0, NULL, 200, CC("max-age=99999999999"),
        1, "fresh:max-age", 2147483647, 0, 0, 0, 0},
    /* no-store, private, no-cache */
    {"no-store", C_STD, GET, 0, NULL, 200, CC("no-store, max-age=60"), 0,
        "no-store", 0, 0, 0, 0, 0},
    {"no-store on its own line", C_STD, GET, 0, NULL, 200,
        CC("max-age=60") CC("no-store"), 0, "no-store", 0, 0, 0, 0, 0},
    {"must-understand overrides no-store", C_STD, GET, 0, NULL, 200,
        CC("no-store, must-understand, max-age=60"), 1, "fresh:max-age", 60, 0,
        0, 0, 0},
    {"must-understand, unknown status", C_STD, GET, 0, NULL, 299,
        CC("no-store, must-understand, max-age=60"), 0, "status", 0, 0, 0, 0,
        0},
    {"request no-store", C_STD, GET, 0, "no-store", 200, CC("max-age=60"), 0,
        "req-no-store", 0, 0, 0, 0, 0},
    {"private", C_STD, GET, 0, NULL, 200, CC("private, max-age=60"), 0,
        "private", 0, 0, 0, 0, 0},
    /* The field names are not kept, so a shared cache cannot strip them. */
    {"private=\"f\" is not stored", C_STD, GET, 0, NULL, 200,
        CC("private=\"x-user\", max-age=60"), 0, "private-fields", 0, 0, 0, 0,
        0},
    {"no-cache: store, always revalidate", C_STD, GET, 0, NULL, 200,
        CC("no-cache, max-age=60, stale-while-revalidate=30"), 1,
        "fresh:max-age", 60, 0, 1, 0, 0},
    {"no-cache alone", C_STD, GET, 0, NULL, 200, CC("no-cache"), 1, "no-cache",
        0, 0, 1, 0, 0},
    {"no-cache alone, LM: heuristic", C_STD, GET, 0, NULL, 200,
        CC("no-cache") D_T0 LM_10D, 1, "fresh:heuristic", 86400, 0, 1, 0, 0},
    {"no-cache on a 302 without freshness", C_STD, GET, 0, NULL, 302,
        CC("no-cache"), 0, "no-freshness", 0, 0, 0, 0, 0},
    /* §5.2.2.4: treated as unqualified: validate before each reuse. */
    {"no-cache=\"f\" revalidates", C_STD, GET, 0, NULL, 200,
        CC("no-cache=\"set-cookie\", max-age=60"), 1, "fresh:max-age", 60, 0, 1,
        0, 0},
    /* revalidation and stale allowances */
    {"must-revalidate", C_STD, GET, 0, NULL, 200,
        CC("max-age=60, must-revalidate, stale-if-error=60"), 1,
        "fresh:max-age", 60, 1, 0, 0, 0},
    {"proxy-revalidate", C_STD, GET, 0, NULL, 200,
        CC("max-age=60, proxy-revalidate"), 1, "fresh:max-age", 60, 1, 0, 0, 0},
    {"s-maxage implies proxy-revalidate", C_STD, GET, 0, NULL, 200,
        CC("s-maxage=60, stale-while-revalidate=30"), 1, "fresh:s-maxage", 60,
        1, 0, 0, 0},
    {"stale-while-revalidate, stale-if-error", C_STD, GET, 0, NULL, 200,
        CC("max-age=60, stale-while-revalidate=30, stale-if-error=600"), 1,
        "fresh:max-age", 60, 0, 0, 30, 600},
    {"stale-* clamp", C_STD, GET, 0, NULL, 200,
        CC("max-age=1, stale-if-error=99999999999"), 1, "fresh:max-age", 1, 0,
        0, 0, 2147483647},
    /* Authorization, RFC 9111 §3.5 */
    {"authorization", C_STD, GET, AUTH, NULL, 200, CC("max-age=60"), 0,
        "authorization", 0, 0, 0, 0, 0},
    {"authorization + public", C_STD, GET, AUTH, NULL, 200,
        CC("max-age=60, public"), 1, "fresh:max-age", 60, 0, 0, 0, 0},
    {"authorization + s-maxage", C_STD, GET, AUTH, NULL, 200, CC("s-maxage=60"),
        1, "fresh:s-maxage", 60, 1, 0, 0, 0},
    {"authorization + must-revalidate", C_STD, GET, AUTH, NULL, 200,
        CC("max-age=60, must-revalidate"), 1, "fresh:max-age", 60, 1, 0, 0, 0},
    {"authorization + proxy-revalidate is not enough", C_STD, GET, AUTH, NULL,
        200, CC("max-age=60, proxy-revalidate"), 0, "authorization", 0, 0, 0, 0,
        0},
    {"authorization, no directives", C_STD, GET, AUTH, NULL, 200, D_T0 LM_10D,
        0, "authorization", 0, 0, 0, 0, 0},
    /* Set-Cookie, Vary */
    {"set-cookie", C_STD, GET, 0, NULL, 200,
        CC("max-age=60") "Set-Cookie: s=1\r\n", 0, "set-cookie", 0, 0, 0, 0, 0},
    {"set-cookie shared by conf", C_COOKIE, GET, 0, NULL, 200,
        CC("max-age=60") "Set-Cookie: s=1\r\n", 1, "fresh:max-age", 60, 0, 0, 0,
        0},
    {"vary star", C_STD, GET, 0, NULL, 200,
        CC("max-age=60") "Vary: Accept, *\r\n", 0, "vary-star", 0, 0, 0, 0, 0},
    {"vary", C_STD, GET, 0, NULL, 200,
        CC("max-age=60") "Vary: Accept-Encoding\r\n", 1, "fresh:max-age", 60, 0,
        0, 0, 0},
    /* method and status */
    {"POST", C_STD, POST, 0, NULL, 200, CC("max-age=60"), 0, "method", 0, 0, 0,
        0, 0},
    {"206", C_STD, GET, 0, NULL, 206, CC("max-age=60"), 0, "status", 0, 0, 0, 0,
        0},
    {"304", C_STD, GET, 0, NULL, 304, CC("max-age=60"), 0, "status", 0, 0, 0, 0,
        0},
    {"100", C_STD, GET, 0, NULL, 100, CC("max-age=60"), 0, "status", 0, 0, 0, 0,
        0},
    {"201", C_STD, GET, 0, NULL, 201, CC("max-age=60"), 0, "status", 0, 0, 0, 0,
        0},
    {"unknown 299", C_STD, GET, 0, NULL, 299, CC("max-age=60"), 0, "status", 0,
        0, 0, 0, 0},
    {"302 with max-age", C_STD, GET, 0, NULL, 302, CC("max-age=60"), 1,
        "fresh:max-age", 60, 0, 0, 0, 0},
    {"302 without freshness", C_STD, GET, 0, NULL, 302, D_T0 LM_10D, 0,
        "no-freshness", 0, 0, 0, 0, 0},
    {"302 public: heuristic", C_STD, GET, 0, NULL, 302,
        CC("public") D_T0 LM_10D, 1, "fresh:heuristic", 86400, 0, 0, 0, 0},
    {"302 public, default ttl", C_DEF, GET, 0, NULL, 302, CC("public"), 1,
        "fresh:default", 300, 0, 0, 0, 0},
    {"500 without freshness", C_DEF, GET, 0, NULL, 500, D_T0 LM_10D, 0,
        "no-freshness", 0, 0, 0, 0, 0},
    {"503 with max-age", C_STD, GET, 0, NULL, 503, CC("max-age=5"), 1,
        "fresh:max-age", 5, 0, 0, 0, 0},
    {"404 heuristic", C_STD, GET, 0, NULL, 404, D_T0 LM_10D, 1,
        "fresh:heuristic", 86400, 0, 0, 0, 0},
    {"410 default", C_DEF, GET, 0, NULL, 410, D_T0, 1, "fresh:default", 300, 0,
        0, 0, 0},
    {"501 heuristic", C_STD, GET, 0, NULL, 501, D_T0 LM_1000, 1,
        "fresh:heuristic", 100, 0, 0, 0, 0},
    {"204 heuristic", C_STD, GET, 0, NULL, 204, D_T0 LM_1000, 1,
        "fresh:heuristic", 100, 0, 0, 0, 0},
    /* heuristics, RFC 9111 §4.2.2 */
    {"heuristic 10%", C_STD, GET, 0, NULL, 200, D_T0 LM_10D, 1,
        "fresh:heuristic", 86400, 0, 0, 0, 0},
    {"heuristic capped", C_CAP, GET, 0, NULL, 200, D_T0 LM_10D, 1,
        "fresh:heuristic", 3600, 0, 0, 0, 0},
    {"heuristic under the cap", C_CAP, GET, 0, NULL, 200, D_T0 LM_1000, 1,
        "fresh:heuristic", 100, 0, 0, 0, 0},
    {"heuristic from response_time without Date", C_STD, GET, 0, NULL, 200,
        LM_1000, 1, "fresh:heuristic", 100, 0, 0, 0, 0},
    {"heuristic from an older Date", C_STD, GET, 0, NULL, 200, D_M100 LM_1000,
        1, "fresh:heuristic", 90, 0, 0, 0, 0},
    {"Last-Modified in the future", C_STD, GET, 0, NULL, 200, D_T0 LM_FUT, 1,
        "fresh:heuristic", 0, 0, 0, 0, 0},
    {"no Last-Modified, no default", C_STD, GET, 0, NULL, 200, D_T0, 0,
        "no-freshness", 0, 0, 0, 0, 0},
    {"no Last-Modified, public, no default", C_STD, GET, 0, NULL, 200,
        CC("public") D_T0, 0, "no-freshness", 0, 0, 0, 0, 0},
    {"invalid Last-Modified", C_STD, GET, 0, NULL, 200,
        D_T0 "Last-Modified: yesterday\r\n", 0, "no-freshness", 0, 0, 0, 0, 0},
    {"heuristic keeps swr", C_STD, GET, 0, NULL, 200,
        CC("stale-while-revalidate=9") D_T0 LM_1000, 1, "fresh:heuristic", 100,
        0, 0, 9, 0},
    /* default, min and max TTL */
    {"default ttl", C_DEF, GET, 0, NULL, 200, D_T0, 1, "fresh:default", 300, 0,
        0, 0, 0},
    {"default ttl loses to Last-Modified", C_DEF, GET, 0, NULL, 200,
        D_T0 LM_10D, 1, "fresh:heuristic", 86400, 0, 0, 0, 0},
    {"default ttl when heuristics are off", C_NOHEUR, GET, 0, NULL, 200,
        D_T0 LM_10D, 1, "fresh:default", 300, 0, 0, 0, 0},
    {"default ttl loses to max-age=0", C_DEF, GET, 0, NULL, 200,
        CC("max-age=0"), 1, "fresh:max-age", 0, 0, 0, 0, 0},
    {"min ttl raises max-age", C_MIN, GET, 0, NULL, 200, CC("max-age=5"), 1,
        "fresh:max-age", 600, 0, 0, 0, 0},
    {"min ttl raises max-age=0", C_MIN, GET, 0, NULL, 200, CC("max-age=0"), 1,
        "fresh:max-age", 600, 0, 0, 0, 0},
    {"min ttl raises Expires", C_MIN, GET, 0, NULL, 200, D_T0 E_P10, 1,
        "fresh:expires", 600, 0, 0, 0, 0},
    {"min ttl keeps longer lifetimes", C_MIN, GET, 0, NULL, 200,
        CC("max-age=3600"), 1, "fresh:max-age", 3600, 0, 0, 0, 0},
    {"min ttl not for must-revalidate", C_MIN, GET, 0, NULL, 200,
        CC("max-age=5, must-revalidate"), 1, "fresh:max-age", 5, 1, 0, 0, 0},
    {"min ttl not for s-maxage", C_MIN, GET, 0, NULL, 200, CC("s-maxage=5"), 1,
        "fresh:s-maxage", 5, 1, 0, 0, 0},
    {"min ttl not for no-cache", C_MIN, GET, 0, NULL, 200,
        CC("max-age=5, no-cache"), 1, "fresh:max-age", 5, 0, 1, 0, 0},
    {"min ttl not for heuristics", C_MIN, GET, 0, NULL, 200, D_T0 LM_1000, 1,
        "fresh:heuristic", 100, 0, 0, 0, 0},
    {"max ttl caps max-age", C_MAX, GET, 0, NULL, 200, CC("max-age=3600"), 1,
        "fresh:max-age", 100, 0, 0, 0, 0},
    {"max ttl caps s-maxage", C_MAX, GET, 0, NULL, 200, CC("s-maxage=3600"), 1,
        "fresh:s-maxage", 100, 1, 0, 0, 0},
    {"max ttl caps heuristics", C_MAX, GET, 0, NULL, 200, D_T0 LM_10D, 1,
        "fresh:heuristic", 100, 0, 0, 0, 0},
    {"max ttl keeps shorter", C_MAX, GET, 0, NULL, 200, CC("max-age=10"), 1,
        "fresh:max-age", 10, 0, 0, 0, 0},
    /* targeted fields, RFC 9213 */
    {"CDN-Cache-Control over Cache-Control", C_STD, GET, 0, NULL, 200,
        CC("max-age=10") CDN("max-age=100"), 1, "fresh:cdn-max-age", 100, 0, 0,
        0, 0},
    {"targeted ignored when not honoured", C_NOTGT, GET, 0, NULL, 200,
        CC("max-age=10") CDN("max-age=100"), 1, "fresh:max-age", 10, 0, 0, 0,
        0},
    {"targeted no-store ignored when not honoured", C_NOTGT, GET, 0, NULL, 200,
        CC("max-age=10") CDN("no-store"), 1, "fresh:max-age", 10, 0, 0, 0, 0},
    {"CDN-Cache-Control overrides CC no-store", C_STD, GET, 0, NULL, 200,
        CC("no-store") CDN("max-age=600"), 1, "fresh:cdn-max-age", 600, 0, 0, 0,
        0},
    {"CDN-Cache-Control overrides CC private", C_STD, GET, 0, NULL, 200,
        CC("private") CDN("max-age=600"), 1, "fresh:cdn-max-age", 600, 0, 0, 0,
        0},
    {"CDN-Cache-Control no-store", C_STD, GET, 0, NULL, 200,
        CC("max-age=600") CDN("no-store"), 0, "no-store", 0, 0, 0, 0, 0},
    {"CDN-Cache-Control private", C_STD, GET, 0, NULL, 200,
        CC("public, max-age=600") CDN("private"), 0, "private", 0, 0, 0, 0, 0},
    {"CDN-Cache-Control s-maxage", C_STD, GET, 0, NULL, 200,
        CDN("s-maxage=50, max-age=100"), 1, "fresh:cdn-s-maxage", 50, 1, 0, 0,
        0},
    {"CDN-Cache-Control no-cache", C_STD, GET, 0, NULL, 200,
        CDN("no-cache, max-age=60"), 1, "fresh:cdn-max-age", 60, 0, 1, 0, 0},
    {"CDN-Cache-Control must-revalidate", C_STD, GET, 0, NULL, 200,
        CDN("max-age=60, must-revalidate, stale-if-error=5"), 1,
        "fresh:cdn-max-age", 60, 1, 0, 0, 0},
    {"CDN-Cache-Control stale-*", C_STD, GET, 0, NULL, 200,
        CC("stale-while-revalidate=99")
            CDN("max-age=60, stale-while-revalidate=10, stale-if-error=20"),
        1, "fresh:cdn-max-age", 60, 0, 0, 10, 20},
    {"CC stale-* ignored under CDN-Cache-Control", C_STD, GET, 0, NULL, 200,
        CC("stale-while-revalidate=99, stale-if-error=99") CDN("max-age=60"), 1,
        "fresh:cdn-max-age", 60, 0, 0, 0, 0},
    {"targeted without lifetime ignores CC and Expires", C_STD, GET, 0, NULL,
        200, CC("max-age=60") D_T0 E_P3600 CDN("stale-if-error=60"), 0,
        "no-freshness", 0, 0, 0, 0, 0},
    {"targeted without lifetime: heuristic", C_STD, GET, 0, NULL, 200,
        CC("max-age=60") D_T0 E_P3600 LM_1000 CDN("stale-if-error=60"), 1,
        "fresh:heuristic", 100, 0, 0, 0, 60},
    {"targeted public not honoured", C_STD, GET, AUTH, NULL, 200,
        CC("public") CDN("public, max-age=60"), 0, "authorization", 0, 0, 0, 0,
        0},
    {"targeted s-maxage allows authorization", C_STD, GET, AUTH, NULL, 200,
        CDN("s-maxage=60"), 1, "fresh:cdn-s-maxage", 60, 1, 0, 0, 0},
    {"Surrogate-Control", C_STD, GET, 0, NULL, 200,
        CC("max-age=10") SUR("max-age=300"), 1, "fresh:cdn-max-age", 300, 0, 0,
        0, 0},
    {"CDN-Cache-Control over Surrogate-Control", C_STD, GET, 0, NULL, 200,
        SUR("max-age=300") CDN("max-age=100"), 1, "fresh:cdn-max-age", 100, 0,
        0, 0, 0},
    {"empty CDN-Cache-Control falls to Surrogate", C_STD, GET, 0, NULL, 200,
        CDN("") SUR("max-age=300") CC("max-age=10"), 1, "fresh:cdn-max-age",
        300, 0, 0, 0, 0},
    {"empty targeted fields fall to CC", C_STD, GET, 0, NULL, 200,
        CDN("") SUR(" ") CC("max-age=10"), 1, "fresh:max-age", 10, 0, 0, 0, 0},
    {"min ttl raises targeted max-age", C_MIN, GET, 0, NULL, 200,
        CDN("max-age=1"), 1, "fresh:cdn-max-age", 600, 0, 0, 0, 0},
    /* CDN-Cache-Control is a Dictionary: an invalid one is ignored whole */
    {"CDN-Cache-Control max-age as a String: CC rules", C_STD, GET, 0, NULL,
        200, CC("max-age=10") CDN("max-age=\"10000\""), 1, "fresh:max-age", 10,
        0, 0, 0, 0},
    {"CDN-Cache-Control junk: its no-store ignored too", C_STD, GET, 0, NULL,
        200, CC("max-age=10") CDN("no-store, &&&"), 1, "fresh:max-age", 10, 0,
        0, 0, 0},
    {"CDN-Cache-Control parameter error", C_STD, GET, 0, NULL, 200,
        CC("max-age=10") CDN("max-age=600;A=1"), 1, "fresh:max-age", 10, 0, 0,
        0, 0},
    {"CDN-Cache-Control upper-case key", C_STD, GET, 0, NULL, 200,
        CC("max-age=10") CDN("Max-Age=600"), 1, "fresh:max-age", 10, 0, 0, 0,
        0},
    {"invalid CDN-Cache-Control falls to Surrogate", C_STD, GET, 0, NULL, 200,
        CDN("max-age=1.5") SUR("max-age=300") CC("max-age=10"), 1,
        "fresh:cdn-max-age", 300, 0, 0, 0, 0},
    {"CDN-Cache-Control parameters ignored", C_STD, GET, 0, NULL, 200,
        CC("max-age=10") CDN("max-age=600;foo=bar, no-cache;x"), 1,
        "fresh:cdn-max-age", 600, 0, 1, 0, 0},
    {"CDN-Cache-Control repeated key: the last", C_STD, GET, 0, NULL, 200,
        CDN("max-age=600, max-age=60"), 1, "fresh:cdn-max-age", 60, 0, 0, 0, 0},
    {"CDN-Cache-Control over two lines, one invalid", C_STD, GET, 0, NULL, 200,
        CC("max-age=10") CDN("max-age=600") CDN("no-store=?0"), 1,
        "fresh:max-age", 10, 0, 0, 0, 0},
    /* RFC 9112 §6.3: a coding other than chunked is read until close */
    {"unknown transfer coding: never stored", C_STD, GET, 0, NULL, 200,
        CC("max-age=60") "Transfer-Encoding: foo\r\n", 0, "transfer-coding", 0,
        0, 0, 0, 0},
    {"a coding under chunked: never stored", C_STD, GET, 0, NULL, 200,
        CC("max-age=60") "Transfer-Encoding: gzip, chunked\r\n", 0,
        "transfer-coding", 0, 0, 0, 0, 0},
    {"chunked alone is stored", C_STD, GET, 0, NULL, 200,
        CC("max-age=60") "transfer-encoding: , Chunked \r\n", 1,
        "fresh:max-age", 60, 0, 0, 0, 0},
};

static void
exchange(const struct dcase *c, struct cache_exchange *x)
{
	memset(x, 0, sizeof(*x));
	cache_cc_init(&x->req_cc);
	if (c->req_cc != NULL)
		cache_cc_parse(&x->req_cc, c->req_cc, strlen(c->req_cc));
	x->method_get_or_head = c->method == GET;
	x->has_authorization = c->auth;
	x->status = c->status;
	x->request_time = T0;
	x->response_time = T0;
	cache_exchange_parse_response(x, c->head, strlen(c->head));
}

static void
test_decide_table(void)
{
	struct cache_exchange x;
	struct cache_decision d;
	size_t i;

	for (i = 0; i < CDN_ARRAY_LEN(dcases); i++) {
		const struct dcase *c = &dcases[i];

		exchange(c, &x);
		memset(&d, 0x5a, sizeof(d));
		cache_policy_decide(&confs[c->conf], &x, &d);
		is_int(d.storable, c->storable, "%s: storable", c->name);
		is_str(d.reason, c->reason, "%s: reason", c->name);
		is_int(d.freshness_s, c->fresh, "%s: freshness", c->name);
		if (!ok(d.must_revalidate == c->mr && d.no_cache == c->nc &&
		            d.swr_s == c->swr && d.sie_s == c->sie,
		        "%s: must_revalidate %u no_cache %u swr %lld sie %lld",
		        c->name, c->mr, c->nc, (long long)c->swr,
		        (long long)c->sie))
			printf("#   got %u %u %lld %lld\n", d.must_revalidate,
			    d.no_cache, (long long)d.swr_s, (long long)d.sie_s);
		ok(d.heuristic ==
		        (c->reason != NULL &&
		            strcmp(c->reason, "fresh:heuristic") == 0),
		    "%s: heuristic flag", c->name);
	}
}

/* RFC 9111 §4.2.3 */
static void
test_age(void)
{
	static const struct {
		const char *name;
		int64_t req, resp;
		const char *head;
		int64_t want;
	} ac[] = {
	    {"response delay only", T0 - 2, T0, D_T0, 2},
	    {"apparent age", T0 - 2, T0, D_M100, 100},
	    {"Age + delay", T0 - 2, T0, D_T0 "Age: 50\r\n", 52},
	    {"Age + delay over apparent", T0 - 2, T0, D_M100 "Age: 1000\r\n",
	        1002},
	    {"apparent over Age + delay", T0 - 2, T0, D_M100 "Age: 10\r\n",
	        100},
	    {"Date in the future", T0 - 2, T0, D_P100, 2},
	    {"no Date", T0 - 3, T0, "Age: 7\r\n", 10},
	    {"invalid Age ignored", T0, T0, D_T0 "Age: x\r\n", 0},
	    {"clock stepped back", T0 + 5, T0, D_T0, 0},
	    {"list-based Age: the first member", T0, T0,
	        D_T0 "Age: 7200, 0\r\n", 7200},
	    {"two Age lines: the first", T0, T0,
	        D_T0 "Age: 30\r\nAge: 7200\r\n", 30},
	    {"invalid first Age member ignored", T0, T0,
	        D_T0 "Age: x, 7200\r\n", 0},
	    /* last: the non-storable check below reuses it */
	    {"huge Age clamps", T0, T0, "Age: 99999999999\r\n", 2147483647},
	};
	struct cache_exchange x;
	struct cache_decision d;
	size_t i;

	for (i = 0; i < CDN_ARRAY_LEN(ac); i++) {
		memset(&x, 0, sizeof(x));
		cache_cc_init(&x.req_cc);
		x.method_get_or_head = 1;
		x.status = 200;
		x.request_time = ac[i].req;
		x.response_time = ac[i].resp;
		cache_exchange_parse_response(
		    &x, ac[i].head, strlen(ac[i].head));
		cache_policy_decide(&confs[C_STD], &x, &d);
		is_int(
		    d.initial_age_s, ac[i].want, "initial age: %s", ac[i].name);
	}
	/* the age is computed even when the response is not storable */
	x.status = 206;
	cache_policy_decide(&confs[C_STD], &x, &d);
	ok(!d.storable && d.initial_age_s == 2147483647,
	    "initial age on a non-storable decision");

	is_int(cache_current_age(10, T0, T0 + 5), 15, "current age");
	is_int(cache_current_age(10, T0, T0), 10, "current age at receipt");
	is_int(cache_current_age(10, T0, T0 - 100), 10,
	    "current age never goes back");
	is_int(cache_current_age(-5, T0, T0 + 1), 1,
	    "negative initial age counts as 0");
	is_int(cache_current_age(INT64_MAX, 0, INT64_MAX), INT64_MAX,
	    "current age saturates");
	ok(cache_current_age(0, INT64_MIN, INT64_MAX) >= 0,
	    "current age never negative");
}

/* ---- cache_policy_use ---- */

#define U_FRESH  CACHE_USE_FRESH
#define U_STALE  CACHE_USE_STALE_OK
#define U_SWR    CACHE_USE_STALE_REVALIDATE
#define U_REVAL  CACHE_USE_REVALIDATE
#define U_MISS   CACHE_USE_MISS
#define NO_REQCC "(none)"

static void
test_use(void)
{
	static const struct {
		const char *name;
		int storable;
		int64_t fresh;
		unsigned mr, nc;
		int64_t swr;
		int64_t age;
		const char *req_cc; /* NULL: pass NULL */
		int pragma;
		enum cache_use want;
	} uc[] = {
	    {"fresh", 1, 100, 0, 0, 0, 50, "", 0, U_FRESH},
	    {"fresh, NULL req_cc", 1, 100, 0, 0, 0, 50, NULL, 0, U_FRESH},
	    {"fresh until the last second", 1, 100, 0, 0, 0, 99, "", 0,
	        U_FRESH},
	    {"stale at age == lifetime", 1, 100, 0, 0, 0, 100, "", 0, U_REVAL},
	    {"stale", 1, 100, 0, 0, 0, 500, "", 0, U_REVAL},
	    {"lifetime 0", 1, 0, 0, 0, 0, 0, "", 0, U_REVAL},
	    {"negative age counts as 0", 1, 100, 0, 0, 0, -50, "", 0, U_FRESH},
	    {"not storable", 0, 100, 0, 0, 0, 0, "", 0, U_MISS},
	    {"request no-store still served", 1, 100, 0, 0, 0, 10, "no-store",
	        0, U_FRESH},
	    {"only-if-cached: normal answer", 1, 100, 0, 0, 0, 10,
	        "only-if-cached", 0, U_FRESH},
	    /* max-stale, §5.2.1.2 */
	    {"bare max-stale", 1, 100, 0, 0, 0, 100000, "max-stale", 0,
	        U_STALE},
	    {"max-stale=10, 10 stale", 1, 100, 0, 0, 0, 110, "max-stale=10", 0,
	        U_STALE},
	    {"max-stale=10, 11 stale", 1, 100, 0, 0, 0, 111, "max-stale=10", 0,
	        U_REVAL},
	    {"max-stale while fresh", 1, 100, 0, 0, 0, 10, "max-stale=10", 0,
	        U_FRESH},
	    {"max-stale vs must-revalidate", 1, 100, 1, 0, 0, 110, "max-stale",
	        0, U_REVAL},
	    {"max-stale and swr", 1, 100, 0, 0, 30, 110, "max-stale", 0,
	        U_STALE},
	    /* min-fresh, §5.2.1.3 */
	    {"min-fresh met", 1, 100, 0, 0, 0, 85, "min-fresh=10", 0, U_FRESH},
	    {"min-fresh met exactly", 1, 100, 0, 0, 0, 90, "min-fresh=10", 0,
	        U_FRESH},
	    {"min-fresh not met", 1, 100, 0, 0, 0, 95, "min-fresh=10", 0,
	        U_REVAL},
	    {"min-fresh not met, swr", 1, 100, 0, 0, 30, 95, "min-fresh=10", 0,
	        U_REVAL},
	    /* request max-age, §5.2.1.1 */
	    {"max-age older", 1, 100, 0, 0, 0, 50, "max-age=30", 0, U_REVAL},
	    {"max-age equal", 1, 100, 0, 0, 0, 50, "max-age=50", 0, U_FRESH},
	    {"max-age=0 at age 0", 1, 100, 0, 0, 0, 0, "max-age=0", 0, U_FRESH},
	    {"max-age=0 at age 1", 1, 100, 0, 0, 0, 1, "max-age=0", 0, U_REVAL},
	    {"max-age older, swr", 1, 100, 0, 0, 30, 110, "max-age=30", 0,
	        U_REVAL},
	    {"max-age older, max-stale", 1, 100, 0, 0, 0, 110,
	        "max-age=30, max-stale", 0, U_REVAL},
	    {"max-age and max-stale", 1, 100, 0, 0, 0, 110,
	        "max-age=200, max-stale", 0, U_STALE},
	    /* must-revalidate, stale-while-revalidate */
	    {"must-revalidate fresh", 1, 100, 1, 0, 0, 50, "", 0, U_FRESH},
	    {"must-revalidate stale", 1, 100, 1, 0, 0, 101, "", 0, U_REVAL},
	    {"swr: 20 stale of 30", 1, 100, 0, 0, 30, 120, "", 0, U_SWR},
	    {"swr: 30 stale of 30", 1, 100, 0, 0, 30, 130, "", 0, U_SWR},
	    {"swr: 31 stale of 30", 1, 100, 0, 0, 30, 131, "", 0, U_REVAL},
	    {"swr: 0 stale", 1, 100, 0, 0, 30, 100, "", 0, U_SWR},
	    {"swr vs must-revalidate", 1, 100, 1, 0, 30, 110, "", 0, U_REVAL},
	    {"swr while fresh", 1, 100, 0, 0, 30, 10, "", 0, U_FRESH},
	    /* no-cache both sides, Pragma */
	    {"stored no-cache", 1, 100, 0, 1, 0, 0, "", 0, U_REVAL},
	    {"stored no-cache, max-stale", 1, 100, 0, 1, 0, 0, "max-stale", 0,
	        U_REVAL},
	    {"request no-cache", 1, 100, 0, 0, 0, 0, "no-cache", 0, U_REVAL},
	    {"request no-cache, swr", 1, 100, 0, 0, 30, 110, "no-cache", 0,
	        U_REVAL},
	    {"Pragma: no-cache", 1, 100, 0, 0, 0, 0, "", 1, U_REVAL},
	    {"Pragma: no-cache, NULL req_cc", 1, 100, 0, 0, 0, 0, NULL, 1,
	        U_REVAL},
	    {"Pragma ignored with Cache-Control", 1, 100, 0, 0, 0, 10,
	        "max-age=100", 1, U_FRESH},
	    {"Pragma ignored with unknown Cache-Control", 1, 100, 0, 0, 0, 10,
	        "foo", 1, U_FRESH},
	    {"not storable beats everything", 0, 100, 0, 0, 0, 0, "max-stale",
	        1, U_MISS},
	};
	struct cache_decision d;
	struct cache_cc rc;
	size_t i;

	for (i = 0; i < CDN_ARRAY_LEN(uc); i++) {
		memset(&d, 0, sizeof(d));
		d.storable = uc[i].storable;
		d.reason = "test";
		d.freshness_s = uc[i].fresh;
		d.must_revalidate = uc[i].mr;
		d.no_cache = uc[i].nc;
		d.swr_s = uc[i].swr;
		if (uc[i].req_cc != NULL)
			cc(&rc, uc[i].req_cc);
		is_int(cache_policy_use(&d, uc[i].age,
		           uc[i].req_cc != NULL ? &rc : NULL, uc[i].pragma),
		    uc[i].want, "use: %s", uc[i].name);
	}
}

/* A decision then a use, end to end, over time. */
static void
test_lifecycle(void)
{
	struct cache_exchange x;
	struct cache_decision d;
	struct cache_cc req;
	const char *h;
	int64_t age;

	memset(&x, 0, sizeof(x));
	cache_cc_init(&x.req_cc);
	cache_cc_init(&req);
	x.method_get_or_head = 1;
	x.status = 200;
	x.request_time = T0 - 1;
	x.response_time = T0;
	h = D_M100 "Age: 20\r\n" CC("max-age=300, stale-while-revalidate=60");
	cache_exchange_parse_response(&x, h, strlen(h));
	cache_policy_decide(&confs[C_STD], &x, &d);
	ok(d.storable && d.freshness_s == 300 && d.initial_age_s == 100 &&
	        d.swr_s == 60,
	    "lifecycle: stored, 300 s, initial age 100");
	age = cache_current_age(d.initial_age_s, x.response_time, T0 + 150);
	is_int(age, 250, "lifecycle: age after 150 s");
	is_int(cache_policy_use(&d, age, &req, 0), CACHE_USE_FRESH,
	    "lifecycle: fresh at 250");
	age = cache_current_age(d.initial_age_s, x.response_time, T0 + 230);
	is_int(cache_policy_use(&d, age, &req, 0), CACHE_USE_STALE_REVALIDATE,
	    "lifecycle: swr at 330");
	age = cache_current_age(d.initial_age_s, x.response_time, T0 + 261);
	is_int(cache_policy_use(&d, age, &req, 0), CACHE_USE_REVALIDATE,
	    "lifecycle: revalidate at 361");
}

/* What the head's one pass notes agrees with the walks it saves:
 * cache_enc_of_fields, cdn_fields_get and the Cache-Control parse. */
static void
test_parse_head(void)
{
	static const char *const heads[] = {
	    "",
	    "Content-Type: text/html; charset=utf-8\r\n"
	    "Cache-Control: public, max-age=60\r\n",
	    "content-type:  application/json \r\nVary: Accept-Encoding\r\n"
	    "vary: Cookie\r\nContent-Encoding: gzip\r\n",
	    "Content-Encoding: br\r\nContent-Encoding: gzip\r\n",
	    "Content-Encoding:\r\nContent-Type: text/css\r\n"
	    "Cache-Control: no-transform\r\n",
	    "Content-Encoding: \r\ncontent-encoding: GZIP\r\n",
	    "Content-Encoding: x-unknown\r\nVary:\r\n",
	    "X-Content-Type: a/b\r\nContent-Types: c/d\r\n"
	    "Cache-Control: max-age=5\r\ncache-control: no-transform\r\n",
	    "Content-Type: image/png\r\nContent-Encoding: identity\r\n",
	};
	struct cache_exchange x;
	struct cache_head_scan hs;
	struct cache_cc cc;
	struct cdn_field f;
	const char *h, *p, *want;
	size_t len, wlen;

	for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
		h = heads[i];
		len = strlen(h);
		memset(&x, 0, sizeof(x));
		cache_exchange_parse_head(&x, h, len, NULL, 0, &hs);
		is_int(hs.coding, cache_enc_of_fields(h, len),
		    "head %zu: coding", i);
		wlen = 0;
		is_int(hs.has_coding,
		    cdn_fields_get(h, len, "content-encoding", &wlen) != NULL,
		    "head %zu: has a coding", i);
		want = cdn_fields_get(h, len, "content-type", &wlen);
		ok(hs.ctype == want && (want == NULL || hs.ctype_len == wlen),
		    "head %zu: content type", i);
		want = cdn_fields_get(h, len, "vary", &wlen);
		ok(hs.vary == want && (want == NULL || hs.vary_len == wlen),
		    "head %zu: vary", i);
		cache_cc_init(&cc);
		for (p = h; cdn_fields_next(&p, h + len, &f);)
			if (f.name_len == 13 &&
			    strncasecmp(f.name, "cache-control", 13) == 0)
				cache_cc_parse(&cc, f.value, f.value_len);
		is_int(x.cc.no_transform, cc.no_transform,
		    "head %zu: no-transform", i);
	}
}

/* Does a copy of h[0..len) without its Age and Cache-Status lines differ
 * from it?  The walk of the stored copy's filter, line by line. */
static int
filter_drops(const char *h, size_t len)
{
	const char *p, *end = h + len, *eol, *colon;
	size_t n;

	for (p = h; p < end; p = eol + 1) {
		eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == NULL)
			return 1; /* an unended last line is dropped too */
		colon = memchr(p, ':', (size_t)(eol - p));
		if (colon == NULL)
			continue;
		n = (size_t)(colon - p);
		if ((n == 3 && strncasecmp(p, "age", 3) == 0) ||
		    (n == 12 && strncasecmp(p, "cache-status", 12) == 0))
			return 1;
	}
	return 0;
}

static void
test_parse_head_age_or_status(void)
{
	/* Heads whose every line is walked: the flag is the filter's. */
	static const char *const heads[] = {
	    "",
	    "Content-Type: text/plain\r\nCache-Control: max-age=60\r\n",
	    "Age: 1\r\n",
	    "X-A: 1\r\nAGE: 2\r\nage: 3\r\n",
	    "Age:\r\nX-A: 1\r\n",
	    "Cache-Status: up; hit\r\n",
	    "X-A: 1\r\ncache-STATUS:\r\n",
	    "X-Age: 1\r\nAges: 2\r\nCache-Statuses: 3\r\n",
	    "Age : 1\r\nCache-Status\t: x\r\n",
	    "X-A: 1\r\n Age: 1\r\n\tCache-Status: x\r\n",
	    "no colon\r\nX-A: 1\r\n",
	    "X-A: 1\nAge: 2\n",
	    "X-A: 1\r\n\r\n",
	};
	/* Heads cut by an empty line: what follows may hold them. */
	static const char *const cut[] = {
	    "X-A: 1\r\n\r\nAge: 1\r\n",
	    "X-A: 1\r\n\r\nX-B: 2\r\n",
	    "\nX-B: 2\n",
	};
	struct cache_exchange x;
	struct cache_head_scan hs;
	const char *h;

	for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
		h = heads[i];
		memset(&x, 0, sizeof(x));
		cache_exchange_parse_head(&x, h, strlen(h), NULL, 0, &hs);
		is_int(hs.age_or_status, filter_drops(h, strlen(h)),
		    "head %zu: an Age or Cache-Status line as the filter's", i);
	}
	for (size_t i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
		h = cut[i];
		memset(&x, 0, sizeof(x));
		cache_exchange_parse_head(&x, h, strlen(h), NULL, 0, &hs);
		is_int(hs.age_or_status, 1, "cut head %zu: unknown", i);
	}
}

/* may_have_tags lets a fill skip cache_tags_parse: it must be 1 wherever
 * that parse finds a tag, and 0 where the walked head has no field of a
 * tag field's name. */
static void
test_parse_head_may_have_tags(void)
{
	static const char *const names[] = {"Surrogate-Key", "Cache-Tag"};
	static const struct cache_name sized[] = {
	    {"Surrogate-Key", 13}, {"Cache-Tag", 9}};
	static const struct {
		const char *h;
		int want;
	} heads[] = {
	    {"", 0},
	    {"Content-Type: a/b\r\nCache-Control: max-age=60\r\n", 0},
	    {"Surrogate-Key: a b\r\n", 1},
	    {"X-A: 1\r\ncache-TAG: x, y\r\n", 1},
	    {"CACHE-TAG:\r\n", 1},
	    {"X-Cache-Tag: a\r\nCache-Tags: b\r\nCache-Ta: c\r\n", 0},
	    {"Cache-Control: a\r\nSurrogate-Keys: b\r\nSurrogate: c\r\n", 0},
	    {"X-A: 1\nSurrogate-Key: k\n", 1},
	    {"X-A: 1\r\nSurrogate-Key: k", 1},
	    {" Cache-Tag: folded\r\nX-A: 1\r\n", 0},
	    /* Cut by an empty line: what follows may hold them. */
	    {"X-A: 1\r\n\r\nCache-Tag: t\r\n", 1},
	    {"X-A: 1\r\n\r\nX-B: 2\r\n", 1},
	};
	struct cache_exchange x;
	struct cache_head_scan hs;
	char tags[256];
	const char *h;
	size_t n;

	for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
		h = heads[i].h;
		memset(&x, 0, sizeof(x));
		cache_exchange_parse_head(&x, h, strlen(h), sized, 2, &hs);
		is_int(hs.may_have_tags, heads[i].want, "tags head %zu", i);
		n = cache_tags_parse(
		    h, strlen(h), names, 2, tags, sizeof(tags));
		ok(n == 0 || hs.may_have_tags,
		    "tags head %zu: set where the parse finds tags", i);
		memset(&x, 0, sizeof(x));
		cache_exchange_parse_head(&x, h, strlen(h), NULL, 0, &hs);
		is_int(hs.may_have_tags, 0, "tags head %zu: no tag fields", i);
	}
}

int
main(void)
{
	plan_no_plan();
	test_cc_parse();
	test_dates();
	test_cdn_cc_parse();
	test_parse_response();
	test_parse_head();
	test_parse_head_age_or_status();
	test_parse_head_may_have_tags();
	test_decide_table();
	test_age();
	test_use();
	test_lifecycle();
	return done_testing();
}
