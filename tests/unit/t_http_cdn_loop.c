/*
 * Unit tests for http/http_cdn_loop.c: finding a node's cdn-id in a
 * CDN-Loop value (RFC 8586 §2), with parameters, case, IPv6 and ports, a
 * shield of the same fleet under another name, and junk that must neither
 * match nor hide a member after it.
 */
#include "config.h"

#include <string.h>

#include "http/http_cdn_loop.h"
#include "tests/unit/tap.h"

static int
names(const char *v, const char *id)
{
	return http_cdn_loop_names(v, strlen(v), id);
}

static const struct {
	const char *value, *id;
	int want;
} cases[] = {
    {"edge-a", "edge-a", 1},
    {"EDGE-A", "edge-a", 1},
    {"", "edge-a", 0},
    {"edge-a", "", 0},
    {"shield-1", "edge-a", 0},
    {"shield-1, edge-a", "edge-a", 1},
    {"edge-a, shield-1", "shield-1", 1},
    {"edge-ab", "edge-a", 0},
    {"xedge-a", "edge-a", 0},
    {"edge-a; hops=2", "edge-a", 1},
    {"edge-a ; hops=2 ;v=\"1,2\"", "edge-a", 1},
    {"foo; a=\"edge-a\"", "edge-a", 0},
    {"foo; a=\"x, edge-a\"", "edge-a", 0},
    {"foo; a=\"x, edge-a\", edge-a", "edge-a", 1},
    {"cdn.example.com:8080", "cdn.example.com:8080", 1},
    {"cdn.example.com:8080", "cdn.example.com", 0},
    {"[::1]:8080; x=y", "[::1]:8080", 1},
    {",,, ,edge-a,,", "edge-a", 1},
    {"\tedge-a\t", "edge-a", 1},
    /* Junk members: never a match, never a hiding place. */
    {"edge-a garbage", "edge-a", 0},
    {"edge-a;", "edge-a", 0},
    {"edge-a; =1", "edge-a", 0},
    {"edge-a; a=", "edge-a", 0},
    {"edge-a; a=\"open", "edge-a", 0},
    {"\"open, edge-a", "edge-a", 1},
    {"foo; a=\"open, edge-a", "edge-a", 1},
    {"@@@, edge-a", "edge-a", 1},
    {"edge-a/x, shield", "edge-a", 0},
    {"foo bar baz, edge-a; q=1", "edge-a", 1},
};

int
main(void)
{
	plan_no_plan();
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		is_int(names(cases[i].value, cases[i].id), cases[i].want,
		    "CDN-Loop \"%s\" names \"%s\": %d", cases[i].value,
		    cases[i].id, cases[i].want);
	/* The length bounds the scan: the id past it is not seen. */
	is_int(http_cdn_loop_names("shield, edge-a", 8, "edge-a"), 0,
	    "nothing past the given length is read");
	is_int(http_cdn_loop_names(NULL, 0, "edge-a"), 0, "no value");
	return done_testing();
}
