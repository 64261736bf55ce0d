/*
 * Unit tests for cache/cache_key.c: primary keys (host, port, scheme, path
 * normalisation and dot segments, every query mode with globs and sorting,
 * capacity limits), idempotence of every key in the table, the key hash,
 * the Vary secondary key, and the site table (cache/cache_site.c) that
 * edged and purged both build keys with.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <xxhash.h>

#include "cache/cache.h"
#include "conf/conf.h"
#include "tests/unit/tap.h"

#define NOQ NULL /* no '?' in the request at all */
#define OK  CDN_OK
#define INV CDN_EINVAL
#define LIM CDN_ELIMIT

static const char *const drop_list[] = {"utm_*", "fbclid", "gclid"};
static const char *const keep_list[] = {"id", "page", "v*"};
static const char *const all_list[] = {"*"};

enum rs {
	R_KEEP,
	R_SCHEME,
	R_SORT,
	R_DROP,
	R_DROPL,
	R_DROPLS,
	R_KEEPL,
	R_KEEPLS,
	R_ALL
};

static struct cache_key_rules rules[] = {
    [R_KEEP] = {CACHE_QUERY_KEEP, NULL, 0, 0, 0},
    [R_SCHEME] = {CACHE_QUERY_KEEP, NULL, 0, 0, 1},
    [R_SORT] = {CACHE_QUERY_SORT, NULL, 0, 0, 0},
    [R_DROP] = {CACHE_QUERY_DROP, NULL, 0, 0, 0},
    [R_DROPL] = {CACHE_QUERY_DROP_LISTED, drop_list, 3, 0, 0},
    [R_DROPLS] = {CACHE_QUERY_DROP_LISTED, drop_list, 3, 1, 0},
    [R_KEEPL] = {CACHE_QUERY_KEEP_LISTED, keep_list, 3, 0, 0},
    [R_KEEPLS] = {CACHE_QUERY_KEEP_LISTED, keep_list, 3, 1, 0},
    [R_ALL] = {CACHE_QUERY_KEEP_LISTED, all_list, 1, 0, 0},
};

static const struct key_case {
	enum rs r;
	const char *scheme;
	const char *host;
	const char *path;
	const char *query;
	int rc;
	const char *want;
} key_cases[] = {
    /* host: case, ports, trailing dot */
    {R_KEEP, "http", "Example.COM", "/", NOQ, OK, "example.com/"},
    {R_KEEP, "http", "example.com:80", "/", NOQ, OK, "example.com/"},
    {R_KEEP, "https", "example.com:443", "/", NOQ, OK, "example.com/"},
    {R_KEEP, "http", "example.com:443", "/", NOQ, OK, "example.com:443/"},
    {R_KEEP, "https", "example.com:80", "/", NOQ, OK, "example.com:80/"},
    {R_KEEP, "http", "example.com:8080", "/", NOQ, OK, "example.com:8080/"},
    {R_KEEP, "http", "example.com.", "/", NOQ, OK, "example.com/"},
    {R_KEEP, "http", "EXAMPLE.com.:80", "/x", NOQ, OK, "example.com/x"},
    {R_KEEP, "http", "example.com.:81", "/", NOQ, OK, "example.com:81/"},
    {R_KEEP, "http", "example.com:", "/", NOQ, OK, "example.com/"},
    {R_KEEP, "http", "example.com:0080", "/", NOQ, OK, "example.com/"},
    {R_KEEP, "http", "example.com:08080", "/", NOQ, OK, "example.com:8080/"},
    {R_KEEP, "http", "example.com:65535", "/", NOQ, OK, "example.com:65535/"},
    {R_KEEP, "http", "example.com:0", "/", NOQ, OK, "example.com:0/"},
    {R_KEEP, NULL, "example.com:80", "/", NOQ, OK, "example.com/"},
    {R_KEEP, "HTTP", "example.com:80", "/", NOQ, OK, "example.com/"},
    {R_KEEP, "http", "[::1]:80", "/", NOQ, OK, "[::1]/"},
    {R_KEEP, "https", "[2001:DB8::A]:8443", "/", NOQ, OK,
        "[2001:db8::a]:8443/"},
    {R_KEEP, "http", "[::1]", "/", NOQ, OK, "[::1]/"},
    {R_KEEP, "http", "10.0.0.1:80", "/", NOQ, OK, "10.0.0.1/"},
    {R_KEEP, "http", "a-b_c~d.example", "/", NOQ, OK, "a-b_c~d.example/"},
    {R_KEEP, "http", "", "/", NOQ, INV, NULL},
    {R_KEEP, "http", ".", "/", NOQ, INV, NULL},
    {R_KEEP, "http", ":80", "/", NOQ, INV, NULL},
    {R_KEEP, "http", "example.com..", "/", NOQ, INV, NULL},
    {R_KEEP, "http", "..:80", "/", NOQ, INV, NULL},
    {R_KEEP, "http", "exa mple.com", "/", NOQ, INV, NULL},
    {R_KEEP, "http", "a/b", "/", NOQ, INV, NULL},
    {R_KEEP, "http", "a?b", "/", NOQ, INV, NULL},
    {R_KEEP, "http", "user@host", "/", NOQ, INV, NULL},
    {R_KEEP, "http", "host:abc", "/", NOQ, INV, NULL},
    {R_KEEP, "http", "host:65536", "/", NOQ, INV, NULL},
    {R_KEEP, "http", "host:80:80", "/", NOQ, INV, NULL},
    {R_KEEP, "http", "[::1", "/", NOQ, INV, NULL},
    {R_KEEP, "http", "[::1]x", "/", NOQ, INV, NULL},
    {R_KEEP, "http", "[]", "/", NOQ, INV, NULL},
    {R_KEEP, "http", "[::1/]", "/", NOQ, INV, NULL},
    /* scheme */
    {R_SCHEME, "https", "example.com:443", "/", NOQ, OK,
        "https://example.com/"},
    {R_SCHEME, "HTTP", "Example.com", "/a", NOQ, OK, "http://example.com/a"},
    {R_SCHEME, "ftp", "h:80", "/", NOQ, OK, "ftp://h:80/"},
    {R_SCHEME, "ftp", "h:0", "/", NOQ, OK, "ftp://h:0/"},
    {R_SCHEME, NULL, "h", "/", NOQ, OK, "http://h/"},
    {R_SCHEME, "1http", "h", "/", NOQ, INV, NULL},
    {R_SCHEME, "ht tp", "h", "/", NOQ, INV, NULL},
    {R_SCHEME, "", "h", "/", NOQ, INV, NULL},
    /* path: percent-encoding (RFC 3986 §6.2.2.1, §6.2.2.2) */
    {R_KEEP, "http", "h", "", NOQ, OK, "h/"},
    {R_KEEP, "http", "h", "/", NOQ, OK, "h/"},
    {R_KEEP, "http", "h", "/%41", NOQ, OK, "h/A"},
    {R_KEEP, "http", "h", "/%7e%2d%5F%30", NOQ, OK, "h/~-_0"},
    {R_KEEP, "http", "h", "/a%2fb", NOQ, OK, "h/a%2Fb"},
    {R_KEEP, "http", "h", "/a%2Fb", NOQ, OK, "h/a%2Fb"},
    {R_KEEP, "http", "h", "/%c3%a9", NOQ, OK, "h/%C3%A9"},
    {R_KEEP, "http", "h", "/\xc3\xa9", NOQ, OK, "h/%C3%A9"},
    {R_KEEP, "http", "h", "/a b", NOQ, OK, "h/a%20b"},
    {R_KEEP, "http", "h", "/a|b\"<>", NOQ, OK, "h/a%7Cb%22%3C%3E"},
    {R_KEEP, "http", "h", "/a?b", NOQ, OK, "h/a%3Fb"},
    {R_KEEP, "http", "h", "/a#b", NOQ, OK, "h/a%23b"},
    {R_KEEP, "http", "h", "/%25", NOQ, OK, "h/%25"},
    {R_KEEP, "http", "h", "/%2525", NOQ, OK, "h/%2525"},
    {R_KEEP, "http", "h", "/%3f%3A%40", NOQ, OK, "h/%3F%3A%40"},
    {R_KEEP, "http", "h", "/a:b@c!$&'()*+,;=", NOQ, OK, "h/a:b@c!$&'()*+,;="},
    {R_KEEP, "http", "h", "/%zz", NOQ, INV, NULL},
    {R_KEEP, "http", "h", "/%4", NOQ, INV, NULL},
    {R_KEEP, "http", "h", "/%", NOQ, INV, NULL},
    {R_KEEP, "http", "h", "/a%g0", NOQ, INV, NULL},
    {R_KEEP, "http", "h", "a/b", NOQ, INV, NULL},
    {R_KEEP, "http", "h", "*", NOQ, INV, NULL},
    /* path: dot segments (RFC 3986 §5.2.4) */
    {R_KEEP, "http", "h", "/a/./b/../c", NOQ, OK, "h/a/c"},
    {R_KEEP, "http", "h", "/../x", NOQ, OK, "h/x"},
    {R_KEEP, "http", "h", "/../../x/..", NOQ, OK, "h/"},
    {R_KEEP, "http", "h", "/a/b/..", NOQ, OK, "h/a/"},
    {R_KEEP, "http", "h", "/a/b/.", NOQ, OK, "h/a/b/"},
    {R_KEEP, "http", "h", "/a/./", NOQ, OK, "h/a/"},
    {R_KEEP, "http", "h", "/.", NOQ, OK, "h/"},
    {R_KEEP, "http", "h", "/..", NOQ, OK, "h/"},
    {R_KEEP, "http", "h", "/./", NOQ, OK, "h/"},
    {R_KEEP, "http", "h", "/a/%2E%2E/b", NOQ, OK, "h/b"},
    {R_KEEP, "http", "h", "/a/.%2e/b", NOQ, OK, "h/b"},
    {R_KEEP, "http", "h", "/a/%2e/b", NOQ, OK, "h/a/b"},
    {R_KEEP, "http", "h", "/a//b", NOQ, OK, "h/a//b"},
    {R_KEEP, "http", "h", "/a//../b", NOQ, OK, "h/a/b"},
    {R_KEEP, "http", "h", "//", NOQ, OK, "h//"},
    {R_KEEP, "http", "h", "/a/.../b", NOQ, OK, "h/a/.../b"},
    {R_KEEP, "http", "h", "/a/..b/.c/c.", NOQ, OK, "h/a/..b/.c/c."},
    {R_KEEP, "http", "h", "/a/b/c/./../../g", NOQ, OK, "h/a/g"},
    {R_KEEP, "http", "h", "/mid/content=5/../6", NOQ, OK, "h/mid/6"},
    {R_KEEP, "http", "h", "/a%2F..%2Fb", NOQ, OK, "h/a%2F..%2Fb"},
    {R_KEEP, "http", "h", "/a/%2e%2E%2e", NOQ, OK, "h/a/..."},
    /* query: KEEP */
    {R_KEEP, "http", "h", "/p", "b=2&a=1", OK, "h/p?b=2&a=1"},
    {R_KEEP, "http", "h", "/p", "", OK, "h/p"},
    {R_KEEP, "http", "h", "/p", "a=%41&q=%2f", OK, "h/p?a=A&q=%2F"},
    {R_KEEP, "http", "h", "/p", "a=1&&b", OK, "h/p?a=1&&b"},
    {R_KEEP, "http", "h", "/p", "a=/?x", OK, "h/p?a=/?x"},
    {R_KEEP, "http", "h", "/p", "q=a b", OK, "h/p?q=a%20b"},
    {R_KEEP, "http", "h", "/p", "%26=%3d", OK, "h/p?%26=%3D"},
    {R_KEEP, "http", "h", "/p", "a=%zz", INV, NULL},
    {R_KEEP, "http", "h", "/p", "a=100%", INV, NULL},
    /* query: SORT, by name then value, stable */
    {R_SORT, "http", "h", "/p", "b=2&a=1", OK, "h/p?a=1&b=2"},
    {R_SORT, "http", "h", "/p", "a=2&a=1", OK, "h/p?a=1&a=2"},
    {R_SORT, "http", "h", "/p", "a=1&a", OK, "h/p?a&a=1"},
    {R_SORT, "http", "h", "/p", "a=&a", OK, "h/p?a&a="},
    {R_SORT, "http", "h", "/p", "b&a&&c&", OK, "h/p?a&b&c"},
    {R_SORT, "http", "h", "/p", "&&", OK, "h/p"},
    {R_SORT, "http", "h", "/p", "", OK, "h/p"},
    {R_SORT, "http", "h", "/p", "%62=2&a=1", OK, "h/p?a=1&b=2"},
    {R_SORT, "http", "h", "/p", "%61=2&a=1", OK, "h/p?a=1&a=2"},
    {R_SORT, "http", "h", "/p", "b=1&B=1&a=1", OK, "h/p?B=1&a=1&b=1"},
    {R_SORT, "http", "h", "/p", "ab=1&a=2", OK, "h/p?a=2&ab=1"},
    {R_SORT, "http", "h", "/p", "a.b=1&a=1", OK, "h/p?a=1&a.b=1"},
    {R_SORT, "http", "h", "/p", "x=%2f&x=%2F&x=/", OK, "h/p?x=%2F&x=%2F&x=/"},
    {R_SORT, "http", "h", "/p", "z=%C3%A9&z=\xc3\xa9&y", OK,
        "h/p?y&z=%C3%A9&z=%C3%A9"},
    {R_SORT, "http", "h", "/p", "c=3&b=2&a=1&b=1", OK, "h/p?a=1&b=1&b=2&c=3"},
    {R_SORT, "http", "h", "/p", "b&a&b&a=", OK, "h/p?a&a=&b&b"},
    {R_SORT, "http", "h", "/p", "a=%zz&b=1", INV, NULL},
    /* query: DROP */
    {R_DROP, "http", "h", "/p", "a=1", OK, "h/p"},
    {R_DROP, "http", "h", "/p", "a=%zz", OK, "h/p"},
    /* query: DROP_LISTED, globs */
    {R_DROPL, "http", "h", "/p", "utm_source=x&id=1&fbclid=y&utm_medium=z", OK,
        "h/p?id=1"},
    {R_DROPL, "http", "h", "/p", "z=1&utm=2&a=3", OK, "h/p?z=1&utm=2&a=3"},
    {R_DROPL, "http", "h", "/p", "fbclidx=1&fbclid", OK, "h/p?fbclidx=1"},
    {R_DROPL, "http", "h", "/p", "fbclid%41=1&fbcli%64", OK, "h/p?fbclidA=1"},
    {R_DROPL, "http", "h", "/p", "fbcli%64=1&%67clid", OK, "h/p"},
    {R_DROPL, "http", "h", "/p", "utm_source=x", OK, "h/p"},
    {R_DROPL, "http", "h", "/p", "utm_=1&utm_x", OK, "h/p"},
    {R_DROPL, "http", "h", "/p", "utm%5Fsource=x&b=1", OK, "h/p?b=1"},
    {R_DROPL, "http", "h", "/p", "UTM_source=x", OK, "h/p?UTM_source=x"},
    {R_DROPL, "http", "h", "/p", "z=1&utm_a=1&a=2", OK, "h/p?z=1&a=2"},
    {R_DROPLS, "http", "h", "/p", "z=1&utm_a=1&a=2&a=1", OK, "h/p?a=1&a=2&z=1"},
    {R_DROPL, "http", "h", "/p", "a=1&&gclid=2&b", OK, "h/p?a=1&b"},
    /* query: KEEP_LISTED */
    {R_KEEPL, "http", "h", "/p", "x=1&page=2&id=3&ver=4", OK,
        "h/p?page=2&id=3&ver=4"},
    {R_KEEPLS, "http", "h", "/p", "x=1&page=2&id=3&ver=4", OK,
        "h/p?id=3&page=2&ver=4"},
    {R_KEEPL, "http", "h", "/p", "x=1", OK, "h/p"},
    {R_KEEPL, "http", "h", "/p", "ID=1&idx=2&v", OK, "h/p?v"},
    {R_KEEPL, "http", "h", "/p", "%69d=1", OK, "h/p?id=1"},
    {R_ALL, "http", "h", "/p", "b=1&a=2", OK, "h/p?b=1&a=2"},
};

/* The same key again from the key's own host, path and query. */
static void
check_idempotent(const struct key_case *c, const char *key, size_t len)
{
	char again[512];
	const char *host, *path, *q;
	size_t hl, pl, ql, n;
	int rc;

	host = key;
	if (rules[c->r].include_scheme)
		host = strstr(key, "://") + 3;
	path = memchr(host, '/', len - (size_t)(host - key));
	hl = (size_t)(path - host);
	q = memchr(path, '?', len - (size_t)(path - key));
	pl = q != NULL ? (size_t)(q - path) : len - (size_t)(path - key);
	ql = q != NULL ? len - (size_t)(q + 1 - key) : 0;
	n = 0;
	rc = cache_key_build(&rules[c->r], c->scheme, host, hl, path, pl,
	    q != NULL ? q + 1 : NULL, ql, q != NULL, again, sizeof(again), &n);
	ok(rc == CDN_OK && n == len && memcmp(again, key, len) == 0,
	    "idempotent: %.*s", (int)len, key);
}

static void
test_key_table(void)
{
	char out[512];
	size_t i, n;
	int rc;

	for (i = 0; i < CDN_ARRAY_LEN(key_cases); i++) {
		const struct key_case *c = &key_cases[i];

		n = 12345;
		rc = cache_key_build(&rules[c->r], c->scheme, c->host,
		    strlen(c->host), c->path, strlen(c->path), c->query,
		    c->query != NULL ? strlen(c->query) : 0, c->query != NULL,
		    out, sizeof(out) - 1, &n);
		if (c->rc != CDN_OK) {
			ok(rc == c->rc && n == 12345,
			    "key %zu: %s %s ? %s -> %s", i, c->host, c->path,
			    c->query ? c->query : "-", cdn_strerror(c->rc));
			if (rc != c->rc)
				printf("#   got %s\n", cdn_strerror(rc));
			continue;
		}
		out[rc == CDN_OK && n < sizeof(out) ? n : 0] = '\0';
		is_str(rc == CDN_OK ? out : cdn_strerror(rc), c->want,
		    "key %zu: %s %s ? %s", i, c->host, c->path,
		    c->query ? c->query : "-");
		if (rc == CDN_OK)
			check_idempotent(c, out, n);
	}
}

static void
test_key_misc(void)
{
	char out[64], big[4096], q[4096];
	size_t n, len, i;
	int rc;

	/* has_query == 0 ignores the query entirely */
	rc = cache_key_build(&rules[R_KEEP], "http", "h", 1, "/p", 2, "a=1", 3,
	    0, out, sizeof(out), &n);
	ok(rc == CDN_OK && n == 3 && memcmp(out, "h/p", 3) == 0,
	    "has_query 0 ignores the query");
	rc = cache_key_build(&rules[R_KEEP], "http", "h", 1, NULL, 0, NULL, 0,
	    1, out, sizeof(out), &n);
	ok(rc == CDN_OK && n == 2 && memcmp(out, "h/", 2) == 0,
	    "NULL path and query");

	/* capacity: exact fit, one short, zero */
	rc = cache_key_build(&rules[R_SCHEME], "https", "h", 1, "/abc", 4,
	    "x=1", 3, 1, out, 17, &n);
	ok(rc == CDN_OK && n == 17, "exact capacity fits (%d)", rc);
	for (i = 0; i < 17; i++) {
		n = 99;
		rc = cache_key_build(&rules[R_SCHEME], "https", "h", 1, "/abc",
		    4, "x=1", 3, 1, out, i, &n);
		if (rc != CDN_ELIMIT || n != 99)
			break;
	}
	ok(i == 17, "every capacity below 17 is CDN_ELIMIT (stopped at %zu)",
	    i);
	rc = cache_key_build(
	    &rules[R_SORT], "http", "h", 1, "/", 1, "b&a", 3, 1, out, 4, &n);
	is_int(rc, CDN_ELIMIT, "sorted query over capacity");
	rc = cache_key_build(&rules[R_KEEP], "http", "h", 1, "/%41%41", 7, NULL,
	    0, 0, out, 3, &n);
	ok(rc == CDN_ELIMIT, "decoded path over capacity");
	rc = cache_key_build(
	    &rules[R_KEEP], "http", "h", 1, "/\xff", 2, NULL, 0, 0, out, 4, &n);
	ok(rc == CDN_ELIMIT, "encoded byte over capacity");

	/* CACHE_KEY_MAX_PARAMS parameters sort; one more does not */
	len = 0;
	for (i = 0; i < CACHE_KEY_MAX_PARAMS; i++)
		len += (size_t)snprintf(q + len, sizeof(q) - len, "%sp%zu",
		    i ? "&" : "", CACHE_KEY_MAX_PARAMS - i);
	rc = cache_key_build(&rules[R_SORT], "http", "h", 1, "/", 1, q, len, 1,
	    big, sizeof(big), &n);
	ok(rc == CDN_OK && n > 8 && memcmp(big, "h/?p1&p10", 9) == 0,
	    "%d parameters sort", CACHE_KEY_MAX_PARAMS);
	len += (size_t)snprintf(q + len, sizeof(q) - len, "&p0");
	rc = cache_key_build(&rules[R_SORT], "http", "h", 1, "/", 1, q, len, 1,
	    big, sizeof(big), &n);
	is_int(rc, CDN_ELIMIT, "%d parameters are too many to sort",
	    CACHE_KEY_MAX_PARAMS + 1);
	rc = cache_key_build(&rules[R_KEEP], "http", "h", 1, "/", 1, q, len, 1,
	    big, sizeof(big), &n);
	ok(rc == CDN_OK && n == 3 + len, "... but KEEP takes them");
	rc = cache_key_build(&rules[R_DROPL], "http", "h", 1, "/", 1, q, len, 1,
	    big, sizeof(big), &n);
	ok(rc == CDN_OK && n == 3 + len, "... and so does an unsorted filter");

	/* a long path of dot segments collapses */
	len = 0;
	for (i = 0; i < 500; i++)
		len += (size_t)snprintf(q + len, sizeof(q) - len, "/seg/..");
	rc = cache_key_build(&rules[R_KEEP], "http", "h", 1, q, len, NULL, 0, 0,
	    big, sizeof(big), &n);
	ok(rc == CDN_OK && n == 2 && memcmp(big, "h/", 2) == 0,
	    "500 x /seg/.. is /");
}

static void
test_hash(void)
{
	uint8_t a[CACHE_HASH_LEN], b[CACHE_HASH_LEN], c[CACHE_HASH_LEN];
	XXH128_canonical_t canon;

	cache_key_hash("example.com/a", 13, a);
	cache_key_hash("example.com/a", 13, b);
	cache_key_hash("example.com/b", 13, c);
	ok(memcmp(a, b, sizeof(a)) == 0, "hash is stable");
	ok(memcmp(a, c, sizeof(a)) != 0, "hash differs for different keys");
	XXH128_canonicalFromHash(&canon, XXH3_128bits("example.com/a", 13));
	ok(memcmp(a, canon.digest, sizeof(a)) == 0,
	    "hash is XXH3-128, big-endian high64 then low64");
	cache_key_hash("", 0, a);
	cache_key_hash(NULL, 0, b);
	XXH128_canonicalFromHash(&canon, XXH3_128bits("", 0));
	ok(memcmp(a, b, sizeof(a)) == 0 &&
	        memcmp(a, canon.digest, sizeof(a)) == 0,
	    "hash of the empty key");
	cache_key_hash("example.com/a?", 14, c);
	ok(memcmp(c, canon.digest, sizeof(c)) != 0, "a longer key differs");
	ok(a[0] != 0 || a[1] != 0 || a[15] != 0, "hash is not all zero");
}

/* ---- Vary ---- */

#define F(n, v)                                                                \
	{                                                                      \
		n, sizeof(n) - 1, v, sizeof(v) - 1                             \
	}

static uint64_t
vk(const char *vary, const struct cache_field *f, unsigned nf, int *rc)
{
	uint64_t out = 0xdeadbeef;

	*rc = cache_vary_key(vary, strlen(vary), f, nf, &out);
	return out;
}

static size_t
ser_u64(unsigned char *p, uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
	return 8;
}

/*
 * The key is XXH3-64 of: per name in sorted order, its length (8 bytes,
 * little-endian), the name in lower case, 1 if the request has the field
 * (then the value's length and the value) or 0.
 */
static void
vary_reference(const struct cache_field *r1, size_t longlen)
{
	static unsigned char ser[4096];
	static char longval[2048];
	struct cache_field lf[2];
	size_t n;
	uint64_t k;
	int rc;

	n = 0;
	n += ser_u64(ser + n, 15);
	memcpy(ser + n, "accept-encoding", 15);
	n += 15;
	ser[n++] = 1;
	n += ser_u64(ser + n, 7);
	memcpy(ser + n, "gzip,br", 7);
	n += 7;
	n += ser_u64(ser + n, 2);
	memcpy(ser + n, "dn", 2);
	n += 2;
	ser[n++] = 0;
	rc = cache_vary_key("DN, Accept-Encoding", 19, r1, 3, &k);
	ok(rc == CDN_OK && k == XXH3_64bits(ser, n),
	    "Vary key: XXH3-64 of the documented serialisation");

	memset(longval, 'v', longlen);
	lf[0].name = "X-Long";
	lf[0].name_len = 6;
	lf[0].value = longval;
	lf[0].value_len = longlen;
	lf[1] = lf[0];
	lf[1].name = "x-long";
	n = 0;
	n += ser_u64(ser + n, 6);
	memcpy(ser + n, "x-long", 6);
	n += 6;
	ser[n++] = 1;
	n += ser_u64(ser + n, 2 * longlen + 1);
	memcpy(ser + n, longval, longlen);
	n += longlen;
	ser[n++] = ',';
	memcpy(ser + n, longval, longlen);
	n += longlen;
	rc = cache_vary_key("x-LONG", 6, lf, 2, &k);
	ok(rc == CDN_OK && k == XXH3_64bits(ser, n),
	    "Vary key: the same when the serialisation is long (%zu bytes)", n);
}

static void
test_vary(void)
{
	static const struct cache_field r1[] = {
	    F("Accept-Encoding", "gzip, br"),
	    F("Accept-Language", "en"),
	    F("Cookie", "a=1"),
	};
	static const struct cache_field r1_case[] = {
	    F("accept-language", "en"),
	    F("ACCEPT-ENCODING", "gzip, br"),
	};
	static const struct cache_field r1_lines[] = {
	    F("Accept-Encoding", "gzip"),
	    F("Accept-Language", "en"),
	    F("accept-encoding", "br"),
	};
	static const struct cache_field r1_ws[] = {
	    F("Accept-Encoding", "  gzip ,\tbr  "),
	    F("Accept-Language", "en "),
	};
	static const struct cache_field r1_tight[] = {
	    F("Accept-Encoding", "gzip,br"),
	    F("Accept-Language", "en"),
	};
	static const struct cache_field r_br[] = {
	    F("Accept-Encoding", "br"),
	    F("Accept-Language", "en"),
	};
	static const struct cache_field r_upper[] = {
	    F("Accept-Encoding", "GZIP, BR"),
	    F("Accept-Language", "en"),
	};
	static const struct cache_field r_inner[] = {
	    F("Accept-Encoding", "gzip, b r"),
	    F("Accept-Language", "en"),
	};
	static const struct cache_field r_inner2[] = {
	    F("Accept-Encoding", "gzip, br"),
	    F("Accept-Language", "e n"),
	};
	static const struct cache_field r_empty[] = {
	    F("Accept-Encoding", ""),
	};
	static const struct cache_field r_ws_only[] = {
	    F("Accept-Encoding", "   "),
	};
	static const struct cache_field r_a1[] = {F("A", "1")};
	static const struct cache_field r_b1[] = {F("B", "1")};
	static const struct cache_field r_a_comma[] = {F("A", "1,")};
	static const struct cache_field r_a_two[] = {F("A", "1"), F("A", "")};
	static const struct cache_field r_ab[] = {F("A", "x"), F("B", "y")};
	static const struct cache_field r_ab2[] = {F("A", "x,y")};
	char many[2048];
	uint64_t k1, k2, k3;
	size_t len;
	int rc, rc2, i;

	k1 = vk("", r1, 3, &rc);
	ok(rc == CDN_OK && k1 == 0, "empty Vary: 0");
	k1 = vk(" , ,\t", r1, 3, &rc);
	ok(rc == CDN_OK && k1 == 0, "Vary of empty members: 0");
	ok(cache_vary_key(NULL, 0, NULL, 0, &k1) == CDN_OK && k1 == 0,
	    "NULL Vary: 0");

	vk("*", r1, 3, &rc);
	is_int(rc, CDN_EINVAL, "Vary: * refused");
	vk("Accept, *", r1, 3, &rc);
	is_int(rc, CDN_EINVAL, "Vary: Accept, * refused");
	vk(" * ,Accept", r1, 3, &rc);
	is_int(rc, CDN_EINVAL, "Vary: ' * ,Accept' refused");
	vk("Accept Encoding", r1, 3, &rc);
	is_int(rc, CDN_EINVAL, "a name with a space is malformed");
	vk("Accept(", r1, 3, &rc);
	is_int(rc, CDN_EINVAL, "a name with '(' is malformed");
	vk("Accept-Encoding, \"x\"", r1, 3, &rc);
	is_int(rc, CDN_EINVAL, "a quoted member is malformed");

	k1 = vk("Accept-Encoding, Accept-Language", r1, 3, &rc);
	k2 = vk("accept-language,ACCEPT-ENCODING", r1, 3, &rc2);
	ok(rc == CDN_OK && rc2 == CDN_OK && k1 == k2 && k1 != 0,
	    "names: order and case do not matter");
	k2 =
	    vk("Accept-Language, Accept-Encoding, accept-language", r1, 3, &rc);
	ok(rc == CDN_OK && k1 == k2, "names: duplicates count once");
	k2 = vk("Accept-Encoding,,Accept-Language,", r1, 3, &rc);
	ok(rc == CDN_OK && k1 == k2, "names: empty members ignored");
	k2 = vk("Accept-Encoding, Accept-Language", r1_case, 2, &rc);
	ok(rc == CDN_OK && k1 == k2,
	    "request field names are case-insensitive; others ignored");
	k2 = vk("Accept-Encoding, Accept-Language", r1_lines, 3, &rc);
	ok(rc == CDN_OK && k1 == k2, "two field lines == one joined by ','");
	k2 = vk("Accept-Encoding, Accept-Language", r1_ws, 2, &rc);
	ok(rc == CDN_OK && k1 == k2, "OWS around commas and ends removed");
	k2 = vk("Accept-Encoding, Accept-Language", r1_tight, 2, &rc);
	ok(rc == CDN_OK && k1 == k2, "'gzip, br' == 'gzip,br'");
	k2 = vk("Accept-Encoding, Accept-Language", r_br, 2, &rc);
	ok(rc == CDN_OK && k1 != k2, "different value, different key");
	k2 = vk("Accept-Encoding, Accept-Language", r_upper, 2, &rc);
	ok(rc == CDN_OK && k1 != k2, "values are case-sensitive");
	k2 = vk("Accept-Encoding, Accept-Language", r_inner, 2, &rc);
	k3 = vk("Accept-Encoding, Accept-Language", r_inner2, 2, &rc2);
	ok(rc == CDN_OK && k1 != k2 && k1 != k3 && k2 != k3,
	    "whitespace inside a member is kept");
	k2 = vk("Accept-Encoding, Accept-Language, Cookie", r1, 3, &rc);
	ok(rc == CDN_OK && k1 != k2, "one more name, different key");

	k1 = vk("Accept-Encoding", NULL, 0, &rc);
	k2 = vk("Accept-Encoding", r_empty, 1, &rc2);
	k3 = vk("Accept-Encoding", r_ws_only, 1, &rc2);
	ok(rc == CDN_OK && k1 != 0 && k1 != k2, "absent differs from empty");
	ok(k2 == k3, "whitespace-only equals empty");
	k1 = vk("A", NULL, 0, &rc);
	k2 = vk("B", NULL, 0, &rc);
	ok(k1 != k2, "names take part even when absent");
	k1 = vk("A, B", r_a1, 1, &rc);
	k2 = vk("A, B", r_b1, 1, &rc);
	ok(k1 != k2, "A=1,B absent differs from A absent,B=1");
	k1 = vk("A", r_a_comma, 1, &rc);
	k2 = vk("A", r_a_two, 2, &rc);
	k3 = vk("A", r_a1, 1, &rc);
	ok(k1 == k2 && k1 != k3, "'1,' == lines '1' and '' != '1'");
	k1 = vk("A, B", r_ab, 2, &rc);
	k2 = vk("A, B", r_ab2, 1, &rc);
	ok(k1 != k2, "A=x,B=y differs from A='x,y',B absent");

	/* the serialisation itself, short (one-shot hash) and long
	 * (streamed) */
	vary_reference(r1, 600);

	/* CACHE_VARY_MAX_FIELDS distinct names, then one more */
	len = 0;
	for (i = 0; i < CACHE_VARY_MAX_FIELDS; i++)
		len += (size_t)snprintf(
		    many + len, sizeof(many) - len, "%sx-%d", i ? ", " : "", i);
	ok(cache_vary_key(many, len, r1, 3, &k1) == CDN_OK && k1 != 0,
	    "%d names", CACHE_VARY_MAX_FIELDS);
	len += (size_t)snprintf(many + len, sizeof(many) - len, ", X-0, x-1");
	ok(cache_vary_key(many, len, r1, 3, &k2) == CDN_OK && k1 == k2,
	    "... plus duplicates");
	len += (size_t)snprintf(many + len, sizeof(many) - len, ", y");
	is_int(cache_vary_key(many, len, r1, 3, &k2), CDN_EINVAL,
	    "%d names are too many", CACHE_VARY_MAX_FIELDS + 1);
}

/* The key of http://<host><target> under the rules of <host>'s site. */
static const char *
site_key(const struct cache_sites *t, const char *host, const char *path,
    const char *query)
{
	static char buf[512];
	const struct cache_site_rules *r =
	    cache_sites_rules_for(t, host, strlen(host));
	size_t len = 0;

	if (cache_key_build(&r->key, "http", host, strlen(host), path,
	        strlen(path), query, strlen(query), 1, buf, sizeof(buf) - 1,
	        &len) != CDN_OK)
		return "(no key)";
	buf[len] = '\0';
	return buf;
}

static void
test_sites(void)
{
#define SITES_TEXT                                                             \
	"cache_query sort\n"                                                   \
	"site drop.test {\n\tcache_query drop\n}\n"                            \
	"site *.utm.test other.test {\n\tcache_query_drop utm_*\n"             \
	"\tcache_query sort\n}\n"                                              \
	"site scheme.test {\n\tcache_key_scheme 1\n"                           \
	"\tcache_default_ttl 60s\n}\n"
	static const char text[] = SITES_TEXT "default_site SCHEME.test\n";
	static const char nodef[] = SITES_TEXT;
	struct conf *c = conf_new_defaults(), *one = conf_new_defaults();
	struct cache_sites *t;
	const struct cache_site_rules *r;

	if (conf_load_buf(c, "t.conf", text, strlen(text), stdout) != CDN_OK ||
	    conf_validate_keys(c, "t", stdout) != CDN_OK) {
		ok(0, "sites: the config loads");
		conf_unref(&c);
		conf_unref(&one);
		return;
	}
	t = cache_sites_new(c);
	is_int(cache_sites_count(t), 3, "sites: one per block");
	is_int(cache_sites_find(t, "drop.test", 9), 0, "exact name");
	is_int(cache_sites_find(t, "DROP.test.:8080", 15), 0,
	    "any case, a port, a trailing dot");
	is_int(cache_sites_find(t, "www.utm.test", 12), 1, "a wildcard");
	is_int(cache_sites_find(t, "Other.test", 10), 1, "a second name");
	is_int(cache_sites_find(t, "a.b.utm.test", 12), 2,
	    "no wildcard for two more labels: the default site");
	is_int(cache_sites_find(t, "utm.test", 8), 2,
	    "nor for the bare domain: the default site");
	is_int(cache_sites_find(t, "", 0), 2, "no Host: the default site");

	r = cache_sites_at(t, 2);
	ok(r->key.include_scheme && r->policy.default_ttl_s == 60,
	    "a block's own key and policy values");
	is_int(cache_sites_at(t, 0)->key.query_mode, CACHE_QUERY_DROP,
	    "cache_query drop");
	is_str(site_key(t, "drop.test", "/a", "x=1&top=2"), "drop.test/a",
	    "drop.test: no query in the key");
	is_str(site_key(t, "www.utm.test", "/a", "utm_a=1&b=2&a=3"),
	    "www.utm.test/a?a=3&b=2", "*.utm.test: utm_* dropped, sorted");
	is_str(site_key(t, "scheme.test", "/a", "top=1&b=2"),
	    "http://scheme.test/a?b=2&top=1",
	    "scheme.test: the scheme, and the inherited sort");
	conf_unref(&c);
	cache_sites_free(&t);
	ok(t == NULL, "free NULLs the holder");

	/* Without site blocks every Host is the top level. */
	t = cache_sites_new(one);
	is_int(cache_sites_count(t), 1, "no blocks: one implicit site");
	is_int(cache_sites_find(t, "any.where", 9), 0, "answers every Host");
	cache_sites_free(&t);

	/* With blocks and no default_site, an unknown Host has no site; its
	 * keys are built with the top level's rules (none was stored). */
	c = conf_new_defaults();
	if (conf_load_buf(c, "u.conf", nodef, strlen(nodef), stdout) ==
	    CDN_OK) {
		t = cache_sites_new(c);
		is_int(cache_sites_find(t, "nowhere.test", 12), -1,
		    "unknown Host: no site");
		is_str(site_key(t, "nowhere.test", "/a", "top=1&b=2"),
		    "nowhere.test/a?b=2&top=1",
		    "keyed with the top level's rules");
		cache_sites_free(&t);
	} else {
		ok(0, "sites: the config without default_site loads");
	}
	conf_unref(&c);
	conf_unref(&one);
#undef SITES_TEXT
}

int
main(void)
{
	plan_no_plan();
	test_key_table();
	test_key_misc();
	test_hash();
	test_vary();
	test_sites();
	return done_testing();
}
