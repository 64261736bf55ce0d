/*
 * Unit tests for cache/cache_sf.c, the RFC 8941 Dictionary parser, over a
 * table of field values and what they parse to (or that they fail): the
 * whitespace rules (SP around the value and after ';', OWS around commas,
 * no HTAB first), keys (lower case), duplicates (the last wins, in the
 * first one's place, as an ordered map is overwritten), every bare item
 * type with its limits (15-digit Integers, 12.3 Decimals, String escapes
 * and characters, Token characters, base64 of Byte Sequences, ?0 / ?1),
 * Inner Lists and parameters.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cache/cache.h"
#include "tests/unit/tap.h"

#define MAX_MEMBERS 16
#define OUT_CAP     512

/* The dictionary as an ordered map: a repeated key replaces the value in
 * place (RFC 8941 §4.2.2 step 2.4). */
struct dict {
	struct cache_sf_member m[MAX_MEMBERS];
	unsigned n;
	unsigned calls;
};

static int
collect(void *arg, const struct cache_sf_member *m)
{
	struct dict *d = arg;
	unsigned i;

	d->calls++;
	for (i = 0; i < d->n; i++)
		if (d->m[i].key_len == m->key_len &&
		    memcmp(d->m[i].key, m->key, m->key_len) == 0) {
			d->m[i] = *m;
			return CDN_OK;
		}
	if (d->n == MAX_MEMBERS)
		return CDN_ELIMIT;
	d->m[d->n++] = *m;
	return CDN_OK;
}

/* "key=<type><value>" per member, space-separated; "FAIL" on an error. */
static const char *
render(const char *v, size_t len)
{
	static char out[OUT_CAP];
	struct dict d;
	size_t o = 0;
	unsigned i;

	memset(&d, 0, sizeof(d));
	if (cache_sf_dict_parse(v, len, collect, &d) != CDN_OK)
		return "FAIL";
	out[0] = '\0';
	for (i = 0; i < d.n; i++) {
		const struct cache_sf_member *m = &d.m[i];

		o += (size_t)snprintf(out + o, sizeof(out) - o,
		    "%s%.*s=", i > 0 ? " " : "", (int)m->key_len, m->key);
		switch (m->type) {
		case CACHE_SF_INTEGER:
			o += (size_t)snprintf(out + o, sizeof(out) - o, "i%lld",
			    (long long)m->num);
			break;
		case CACHE_SF_DECIMAL:
			o += (size_t)snprintf(out + o, sizeof(out) - o, "d%lld",
			    (long long)m->num);
			break;
		case CACHE_SF_BOOLEAN:
			o += (size_t)snprintf(out + o, sizeof(out) - o, "?%lld",
			    (long long)m->num);
			break;
		case CACHE_SF_STRING:
		case CACHE_SF_TOKEN:
		case CACHE_SF_BYTES:
			o += (size_t)snprintf(out + o, sizeof(out) - o,
			    "%c[%.*s]",
			    m->type == CACHE_SF_STRING      ? 's'
			        : m->type == CACHE_SF_TOKEN ? 't'
			                                    : 'b',
			    (int)m->str_len, m->str);
			break;
		case CACHE_SF_INNER_LIST:
			o += (size_t)snprintf(out + o, sizeof(out) - o, "()");
			break;
		}
	}
	return out;
}

static const struct {
	const char *in;
	const char *want;
} cases[] = {
    /* the dictionary */
    {"", ""},
    {"a=1", "a=i1"},
    {"a=1, b=2", "a=i1 b=i2"},
    {"a=1,b=2", "a=i1 b=i2"},
    {"a=1 ,  b=2", "a=i1 b=i2"},
    {"a=1\t,\tb=2", "a=i1 b=i2"},
    {"  a=1  ", "a=i1"},
    {"a=1\t", "a=i1"},
    {"\ta=1", "FAIL"},
    {"a=1,", "FAIL"},
    {"a=1, ", "FAIL"},
    {",a=1", "FAIL"},
    {"a=1,,b=2", "FAIL"},
    {"a=1 b=2", "FAIL"},
    {"a =1", "FAIL"},
    {"a= 1", "FAIL"},
    {"a", "a=?1"},
    {"a, b", "a=?1 b=?1"},
    /* duplicates: the last value, in the first one's place */
    {"a=1, b=2, a=3", "a=i3 b=i2"},
    {"a=\"x\", a", "a=?1"},
    {"a, a=?0", "a=?0"},
    /* keys */
    {"A=1", "FAIL"},
    {"aB=1", "FAIL"},
    {"*a=1", "*a=i1"},
    {"a_b-c.d*9=1", "a_b-c.d*9=i1"},
    {"1a=1", "FAIL"},
    {"_a=1", "FAIL"},
    {"-a=1", "FAIL"},
    {"a%=1", "FAIL"},
    /* Integers */
    {"a=-5", "a=i-5"},
    {"a=0015", "a=i15"},
    {"a=999999999999999", "a=i999999999999999"},
    {"a=-999999999999999", "a=i-999999999999999"},
    {"a=1000000000000000", "FAIL"},
    {"a=-", "FAIL"},
    {"a=--1", "FAIL"},
    {"a=1a", "FAIL"},
    {"a=+1", "FAIL"},
    /* Decimals, in thousandths */
    {"a=1.5", "a=d1500"},
    {"a=-0.125", "a=d-125"},
    {"a=123456789012.123", "a=d123456789012123"},
    {"a=1234567890123.1", "FAIL"},
    {"a=1.1234", "FAIL"},
    {"a=1.", "FAIL"},
    {"a=.5", "FAIL"},
    {"a=1.2.3", "FAIL"},
    /* Strings */
    {"a=\"x y\"", "a=s[x y]"},
    {"a=\"\"", "a=s[]"},
    {"a=\"q\\\"q\"", "a=s[q\\\"q]"},
    {"a=\"b\\\\s\"", "a=s[b\\\\s]"},
    {"a=\"n\\n\"", "FAIL"},
    {"a=\"tab\there\"", "FAIL"},
    {"a=\"\xc3\xa9\"", "FAIL"},
    {"a=\"x", "FAIL"},
    {"a=\"x\\", "FAIL"},
    {"a=\"a, b\"", "a=s[a, b]"},
    /* Tokens */
    {"a=foo", "a=t[foo]"},
    {"a=Foo", "a=t[Foo]"},
    {"a=*foo", "a=t[*foo]"},
    {"a=text/html:x!#$%&'*+-.^_`|~9", "a=t[text/html:x!#$%&'*+-.^_`|~9]"},
    {"a=f{", "FAIL"},
    {"a=f\"", "FAIL"},
    /* Byte Sequences */
    {"a=:aGVsbG8=:", "a=b[aGVsbG8=]"},
    {"a=:aGVsbG8:", "a=b[aGVsbG8]"},
    {"a=:YQ==:", "a=b[YQ==]"},
    {"a=:YQ=:", "a=b[YQ=]"},
    {"a=::", "a=b[]"},
    {"a=:YQ===:", "FAIL"},
    {"a=:YWJj=:", "FAIL"},
    {"a=:a:", "FAIL"},
    {"a=:a=b=:", "FAIL"},
    {"a=:a b:", "FAIL"},
    {"a=:abc", "FAIL"},
    /* Booleans */
    {"a=?0", "a=?0"},
    {"a=?1", "a=?1"},
    {"a=?2", "FAIL"},
    {"a=?", "FAIL"},
    {"a=?10", "FAIL"},
    {"a=true", "a=t[true]"},
    /* Inner Lists */
    {"a=(1 2 3)", "a=()"},
    {"a=()", "a=()"},
    {"a=( 1  \"x\" )", "a=()"},
    {"a=(1;p=2 b);q", "a=()"},
    {"a=(1,2)", "FAIL"},
    {"a=(1", "FAIL"},
    {"a=(1\t2)", "FAIL"},
    {"a=((1))", "FAIL"},
    /* parameters: checked, then dropped */
    {"a;x=1", "a=?1"},
    {"a=1;x", "a=i1"},
    {"a=1; x=2", "a=i1"},
    {"a=1;x=\"s\";y=:YQ==:;z=?0;w=1.5;v=tok", "a=i1"},
    {"a=1 ;x=2", "FAIL"},
    {"a=1;X=2", "FAIL"},
    {"a;", "FAIL"},
    {"a;=1", "FAIL"},
    {"a;b=", "FAIL"},
    {"a;b=(1)", "FAIL"},
    {"a;b=\"x", "FAIL"},
    {"a;\tb", "FAIL"},
};

int
main(void)
{
	struct dict d;
	size_t i;

	plan_no_plan();
	for (i = 0; i < CDN_ARRAY_LEN(cases); i++)
		is_str(render(cases[i].in, strlen(cases[i].in)), cases[i].want,
		    "case %zu", i);

	/* A NUL is a byte like any other: not allowed outside nothing. */
	is_str(render("a=1\0", 4), "FAIL", "a NUL after a member");
	is_str(render("a=\"\0\"", 5), "FAIL", "a NUL in a String");
	is_str(render(NULL, 0), "", "no value at all: empty");

	/* The callback sees every member, the repeated ones too, and can
	 * stop the parse. */
	memset(&d, 0, sizeof(d));
	ok(cache_sf_dict_parse("a, b, a, c", 10, collect, &d) == CDN_OK &&
	        d.calls == 4 && d.n == 3,
	    "four members seen, three keys");
	memset(&d, 0, sizeof(d));
	d.n = MAX_MEMBERS; /* full: collect() refuses a new key */
	is_int(cache_sf_dict_parse("z=1, &", 6, collect, &d), CDN_ELIMIT,
	    "the callback's code stops the parse");
	return done_testing();
}
