/*
 * Unit tests for http/http_url.c: absolute http(s) URLs split in place.
 */
#include "config.h"

#include <string.h>

#include "http/http_url.h"
#include "tests/unit/tap.h"

static int
slice_is(struct http_slice s, const char *want)
{
	return s.len == strlen(want) && memcmp(s.p, want, s.len) == 0;
}

static void
test_parts(void)
{
	struct http_url u;
	const char *why = NULL;
	const char *s = "HTTPS://Example.com:8443/a/b?x=1&y#frag";

	is_int(http_url_parse(s, strlen(s), &u, &why), CDN_OK, "a full URL");
	ok(u.https, "https, in any case");
	ok(slice_is(u.authority, "Example.com:8443"), "authority");
	ok(slice_is(u.host, "Example.com"), "host");
	ok(u.has_port && u.port == 8443, "port");
	ok(slice_is(u.path, "/a/b"), "path");
	ok(u.has_query && slice_is(u.query, "x=1&y"), "query");
	ok(u.has_fragment && slice_is(u.fragment, "frag"), "fragment");

	s = "http://h";
	is_int(http_url_parse(s, strlen(s), &u, &why), CDN_OK, "host alone");
	ok(!u.https && !u.has_port && u.port == 80, "http's default port");
	ok(u.path.len == 0 && !u.has_query && !u.has_fragment, "no path");

	s = "https://[::1]:9/p";
	is_int(http_url_parse(s, strlen(s), &u, &why), CDN_OK, "IPv6");
	ok(slice_is(u.host, "[::1]") && u.port == 9, "IPv6 host and port");

	s = "https://h?q";
	is_int(http_url_parse(s, strlen(s), &u, &why), CDN_OK, "no path");
	ok(u.port == 443 && slice_is(u.query, "q") && u.path.len == 0,
	    "query right after the host; https's port");

	s = "http://user:pw@h/p";
	is_int(http_url_parse(s, strlen(s), &u, &why), CDN_OK, "userinfo");
	ok(u.has_userinfo && slice_is(u.host, "h"), "said, and not the host");

	/* Slices never run past the length given. */
	s = "http://h/p?q#f--past";
	is_int(http_url_parse(s, 13, &u, &why), CDN_OK, "a prefix");
	ok(slice_is(u.query, "q") && u.has_fragment && u.fragment.len == 0,
	    "cut at the length");
}

static void
test_refused(void)
{
	static const char *const bad[] = {"ftp://h/", "http:/h", "//h/p",
	    "http://", "http:///p", "http://h:0/", "http://h:65536/",
	    "http://h:8x/", "http://a b/", "http://[::1/", "http://h:/"};
	struct http_url u;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *why = NULL;

		is_int(http_url_parse(bad[i], strlen(bad[i]), &u, &why),
		    CDN_EINVAL, "refused: %s", bad[i]);
		ok(why != NULL && why[0] != '\0', "with a reason: %s",
		    why != NULL ? why : "(none)");
	}
}

int
main(void)
{
	plan_no_plan();
	test_parts();
	test_refused();
	return done_testing();
}
