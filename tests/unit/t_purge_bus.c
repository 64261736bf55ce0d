/*
 * Unit tests for the purge bus's pure parts: the entry codec
 * (purge/purge_bus_entry.c), the node registry's records and liveness
 * (purge/purge_fleet.c) and the purge_bus URL (conf/conf_bus.c).
 */
#include "config.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "purge/purge_bus.h"
#include "tests/unit/tap.h"

/* Decode NULL-terminated name/value strings. */
static int
decode(struct purge_bus_entry *e, const char **why, ...)
{
	const char *f[32];
	size_t fl[32], n = 0;
	va_list ap;
	const char *s;

	va_start(ap, why);
	while ((s = va_arg(ap, const char *)) != NULL && n < 32) {
		f[n] = s;
		fl[n++] = strlen(s);
	}
	va_end(ap);
	return purge_bus_entry_decode(f, fl, n, e, why);
}

static const struct {
	const char *what;
	const char *f[10];
} bad_entries[] = {
    {"no version", {"node", "n", "purge", "{}"}},
    {"version 2", {"v", "2", "node", "n", "purge", "{}"}},
    {"no node", {"v", "1", "purge", "{}"}},
    {"a node with a space", {"v", "1", "node", "a b", "purge", "{}"}},
    {"no purge", {"v", "1", "node", "n"}},
    {"purge not JSON", {"v", "1", "node", "n", "purge", "{"}},
    {"purge an array", {"v", "1", "node", "n", "purge", "[]"}},
    {"urls not an array", {"v", "1", "node", "n", "purge", "{\"urls\":\"x\"}"}},
    {"a tag not a string", {"v", "1", "node", "n", "purge", "{\"tags\":[1]}"}},
    {"soft not a boolean", {"v", "1", "node", "n", "purge", "{\"soft\":1}"}},
    {"an unknown member",
        {"v", "1", "node", "n", "purge", "{\"dry_run\":true}"}},
    {"a nonce not hex", {"v", "1", "node", "n", "nonce", "XYZ", "purge", "{}"}},
    {"duplicate members",
        {"v", "1", "node", "n", "purge", "{\"soft\":true,\"soft\":false}"}},
};

static void
test_entry_decode(void)
{
	struct purge_bus_entry e;
	const char *why = NULL;
	json_t *urls;

	is_int(decode(&e, &why, "v", "1", "node", "edge-1", "nonce", "0af3",
	           "purge", "{\"urls\":[\"http://a.test/x\"],\"soft\":true}",
	           "later", "ignored", NULL),
	    CDN_OK, "a whole entry decodes (unknown fields ignored)");
	is_str(e.node, "edge-1", "its node");
	is_str(e.nonce, "0af3", "its nonce");
	urls = json_object_get(e.purge, "urls");
	is_str(json_string_value(json_array_get(urls, 0)), "http://a.test/x",
	    "its URL");
	ok(json_is_true(json_object_get(e.purge, "soft")), "soft");
	purge_bus_entry_clear(&e);
	ok(e.purge == NULL && e.node[0] == '\0', "clear empties it");

	is_int(decode(&e, &why, "v", "1", "node", "n", "purge", "{}", NULL),
	    CDN_OK, "no nonce is fine (edgectl's need none)");
	purge_bus_entry_clear(&e);

	for (size_t i = 0; i < sizeof(bad_entries) / sizeof(bad_entries[0]);
	     i++) {
		const char *f[10];
		size_t fl[10], n = 0;

		while (n < 10 && bad_entries[i].f[n] != NULL) {
			f[n] = bad_entries[i].f[n];
			fl[n] = strlen(f[n]);
			n++;
		}
		why = NULL;
		is_int(purge_bus_entry_decode(f, fl, n, &e, &why), CDN_EINVAL,
		    "refused: %s", bad_entries[i].what);
		ok(why != NULL && e.purge == NULL && e.node[0] == '\0',
		    "with a reason, the entry left empty (%s)",
		    why != NULL ? why : "none");
	}
	{
		/* An odd field count, and an oversized entry. */
		const char *f[6] = {"v", "1", "node", "n", "purge"};
		size_t fl[6] = {1, 1, 4, 1, 5};
		char *big = malloc(PURGE_BUS_ENTRY_MAX + 1);

		is_int(purge_bus_entry_decode(f, fl, 5, &e, &why), CDN_EINVAL,
		    "an odd number of fields");
		memset(big, ' ', PURGE_BUS_ENTRY_MAX);
		big[0] = '{';
		big[PURGE_BUS_ENTRY_MAX - 1] = '}';
		f[5] = big;
		fl[5] = PURGE_BUS_ENTRY_MAX;
		is_int(purge_bus_entry_decode(f, fl, 6, &e, &why), CDN_EINVAL,
		    "an entry over 1 MiB");
		free(big);
	}
}

static void
test_entry_encode(void)
{
	json_t *p = json_pack("{s:[s], s:[s,s], s:b, s:b}", "urls",
	    "http://a.test/x", "tags", "t1", "t2", "soft", 1, "dry_run", 0);
	struct purge_bus_entry e;
	const char *why;
	char *enc = NULL;
	size_t len = 0;

	is_int(purge_bus_entry_encode(p, &enc, &len), CDN_OK, "encodes");
	ok(enc != NULL && strstr(enc, "dry_run") == NULL,
	    "dry_run is left out: a bus entry is never a dry run");
	{
		const char *f[] = {"v", "1", "node", "n", "purge", enc};
		size_t fl[] = {1, 1, 4, 1, 5, len};

		is_int(purge_bus_entry_decode(f, fl, 6, &e, &why), CDN_OK,
		    "and decodes back");
		ok(json_equal(json_object_get(e.purge, "tags"),
		       json_object_get(p, "tags")),
		    "to the same tags");
		purge_bus_entry_clear(&e);
	}
	free(enc);
	json_decref(p);
	{
		/* Too large for an entry. */
		json_t *big = json_array();
		json_t *q;

		for (int i = 0; i < 30000; i++)
			json_array_append_new(big,
			    json_string("http://a.test/a-rather-long-path-to-"
			                "make-it-big"));
		q = json_pack("{s:o}", "urls", big);
		is_int(purge_bus_entry_encode(q, &enc, &len), CDN_ELIMIT,
		    "over PURGE_BUS_ENTRY_MAX: CDN_ELIMIT");
		json_decref(q);
	}
}

static const char *const bad_records[] = {"", "v2 1-0 0 0 0", "v1 1-0 0 0",
    "v1 x 0 0 0", "v1 1-0 -1 0 0", "v1 1-0 0 0 0 extra", "v1 1-0 0 0 1-2",
    "v1  1-0 0 0 0"};

static void
test_fleet(void)
{
	struct purge_fleet_node n = {
	    {1733540000000u, 7}, 3, 250, 1733540001000u};
	struct purge_fleet_node m;
	char rec[PURGE_FLEET_RECORD_MAX];

	purge_fleet_record_format(&n, rec);
	is_str(rec, "v1 1733540000000-7 3 250 1733540001000", "a record");
	is_int(purge_fleet_record_parse(rec, strlen(rec), &m), CDN_OK,
	    "parses back");
	ok(memcmp(&m, &n, sizeof(n)) == 0, "to the same node");
	for (size_t i = 0; i < sizeof(bad_records) / sizeof(bad_records[0]);
	     i++)
		is_int(purge_fleet_record_parse(
		           bad_records[i], strlen(bad_records[i]), &m),
		    CDN_EINVAL, "refused: \"%s\"", bad_records[i]);
	ok(purge_fleet_live(10000, 10000 + PURGE_FLEET_LIVE_MS),
	    "live at the bound");
	ok(!purge_fleet_live(10000, 10001 + PURGE_FLEET_LIVE_MS),
	    "down past it");
	ok(purge_fleet_live(20000, 10000), "a clock ahead is live");
}

static const char *const bad_urls[] = {"http://h:1", "redis://h", "redis://h:0",
    "redis://h:65536", "redis://:1", "redis://h:1x", "redis://h:1/a b",
    "redis://[::1]:1", ""};

static void
test_url(void)
{
	struct conf_bus_url u;
	const char *why = NULL;

	is_int(conf_bus_url_parse("redis://127.0.0.1:6379", &u, &why), CDN_OK,
	    "host:port");
	is_str(u.host, "127.0.0.1", "host");
	is_int(u.port, 6379, "port");
	is_str(u.stream, "edged:purges", "the default stream");
	is_str(u.user, "", "no user");
	is_int(conf_bus_url_parse(
	           "redis://edge@bus.example:7000/fleet:a", &u, &why),
	    CDN_OK, "user, host, port and stream");
	is_str(u.user, "edge", "user");
	is_str(u.host, "bus.example", "host");
	is_str(u.stream, "fleet:a", "stream");
	is_int(conf_bus_url_parse("rediss://h:1", &u, &why), CDN_EINVAL,
	    "rediss:// is refused");
	ok(why != NULL && strstr(why, "no TLS") != NULL &&
	        strstr(why, "docs/fleet.md") != NULL,
	    "saying why and where to read on");
	is_int(conf_bus_url_parse("redis://u:secret@h:1", &u, &why), CDN_EINVAL,
	    "a password in the URL is refused");
	ok(strstr(why, "secret") == NULL &&
	        strstr(why, "purge_bus_password_file") != NULL,
	    "pointing at the password file, not echoing the secret");
	for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++)
		is_int(conf_bus_url_parse(bad_urls[i], &u, &why), CDN_EINVAL,
		    "refused: \"%s\"", bad_urls[i]);
}

int
main(void)
{
	plan_no_plan();
	test_entry_decode();
	test_entry_encode();
	test_fleet();
	test_url();
	return done_testing();
}
