/*
 * Unit tests of edge_deliver_client_fields (edge/edge_deliver.c), the
 * client's copy of an origin's head, made in one walk: on varied heads
 * (duplicates, names in any case, empty values, obs-fold lines, Connection
 * naming fields before and after it, more names than are kept) its output
 * equals the two walks it replaced, the first gathering what Connection
 * names and the second copying, written out here as the reference.
 */
#include "config.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "common/cdn_strbuf.h"
#include "conf/conf.h"
#include "edge/edge_deliver.h"
#include "edge/edge_int.h"
#include "edge/edge_site.h"
#include "http/http_fields.h"
#include "tests/unit/tap.h"

static char via[] = "edged";

static int
name_is(const struct cdn_field *fl, const char *name)
{
	size_t n = strlen(name);

	return fl->name_len == n && strncasecmp(fl->name, name, n) == 0;
}

/* The two walks, with no purge fields configured. */
static void
reference(const struct conf *c, const char *fields, size_t len,
    struct cdn_strbuf *out, int64_t *content_length)
{
	struct http_conn_tokens ct = {.n = 0};
	const char *p, *end = fields + len;
	struct cdn_field fl;
	int has_via = 0, chunked = 0;

	for (p = fields; cdn_fields_next(&p, end, &fl);)
		if (name_is(&fl, "connection"))
			http_conn_tokens_add(&ct, fl.value, fl.value_len);
	for (p = fields; cdn_fields_next(&p, end, &fl);) {
		if (name_is(&fl, "transfer-encoding"))
			chunked = 1;
		if (http_field_is_hop_by_hop(fl.name, fl.name_len) ||
		    http_conn_tokens_has(&ct, fl.name, fl.name_len) ||
		    name_is(&fl, "content-length"))
			continue;
		if (c->cache_targeted &&
		    (name_is(&fl, "cdn-cache-control") ||
		        name_is(&fl, "surrogate-control")))
			continue;
		if (name_is(&fl, "via")) {
			cdn_sb_add(out, fl.name, fl.name_len);
			cdn_sb_add(out, ": ", 2);
			cdn_sb_add(out, fl.value, fl.value_len);
			cdn_sb_str(out, ", 1.1 ");
			cdn_sb_str(out, c->via);
			cdn_sb_add(out, "\r\n", 2);
			has_via = 1;
			continue;
		}
		cdn_sb_add(out, fl.line, fl.line_len);
	}
	if (!has_via) {
		cdn_sb_str(out, "Via: 1.1 ");
		cdn_sb_str(out, c->via);
		cdn_sb_add(out, "\r\n", 2);
	}
	if (chunked)
		*content_length = -1;
}

static const char *const heads[] = {
    "",
    "Content-Type: text/plain\r\nCache-Control: max-age=60\r\n",
    "X-A: 1\r\nx-a: 2\r\nX-A:\r\nX-B: \r\n",
    "X-A: 1\r\nConnection: x-a\r\nX-B: 2\r\n",
    "Connection: X-A, x-b\r\nx-a: 1\r\nX-B: 2\r\nX-C: 3\r\n",
    "X-A: 1\r\nX-B: 2\r\nConnection: close\r\nConnection: X-B\r\n",
    "Connection: keep-alive\r\nKeep-Alive: timeout=5\r\nX-A: 1\r\n",
    "X-A: 1\r\nConnection: keep-alive\r\n",
    "Connection:\r\nConnection: , ,\r\nX-A: 1\r\n",
    "Via: 1.1 up\r\nX-A: 1\r\nCONNECTION: via\r\n",
    "Via: 1.1 up\r\nvia: 1.0 far\r\n",
    "Transfer-Encoding: chunked\r\nContent-Length: 5\r\nX-A: 1\r\n",
    "TE: trailers\r\nTrailer: X-T\r\nUpgrade: h2c\r\n"
    "Proxy-Connection: close\r\nX-A: 1\r\n",
    "X-A: 1\r\n folded: on\r\nno colon here\r\nX-B: 2\r\n",
    "X-A: 1\r\n folded\r\nConnection: folded\r\n",
    "CDN-Cache-Control: max-age=9\r\nSurrogate-Control: max-age=8\r\n"
    "X-A: 1\r\n",
    "X-P: 1\r\nConnection: t1, t2, t3, t4, t5, t6, t7, t8, t9, t10, "
    "t11, t12, t13, t14, t15, t16, x-p\r\n",
    "X-A: 1\r\nConnection: x-a\r\nX-B: 2",
    "X-A: 1\nConnection: x-a\nX-B: 2\n",
};

static void
test_equals_reference(void)
{
	struct conf c;
	struct edge e;
	struct edge_site site;

	for (unsigned targeted = 0; targeted <= 1; targeted++) {
		memset(&c, 0, sizeof(c));
		memset(&e, 0, sizeof(e));
		memset(&site, 0, sizeof(site));
		c.via = via;
		c.cache_targeted = targeted;
		site.conf = &c;
		for (size_t i = 0; i < CDN_ARRAY_LEN(heads); i++) {
			/* What the caller has put in already stays. */
			struct cdn_strbuf got = {0}, want = {0};
			int64_t got_cl = 5, want_cl = 5;

			cdn_sb_str(&got, "X-A: before\r\n");
			cdn_sb_str(&want, "X-A: before\r\n");
			is_int(edge_deliver_client_fields(&e, &site, heads[i],
			           strlen(heads[i]), &got, &got_cl),
			    CDN_OK, "head %zu, targeted %u: done", i, targeted);
			reference(
			    &c, heads[i], strlen(heads[i]), &want, &want_cl);
			is_str(got.p, want.p,
			    "head %zu, targeted %u: as the two walks", i,
			    targeted);
			is_int(got_cl, want_cl,
			    "head %zu, targeted %u: the length", i, targeted);
			cdn_sb_free(&got);
			cdn_sb_free(&want);
		}
	}
}

/* The reference itself, on the cases the one walk must restart for. */
static void
test_connection_names_earlier_fields(void)
{
	struct conf c = {0};
	struct edge e;
	struct edge_site site;
	struct cdn_strbuf out = {0};
	int64_t cl = 5;
	const char *h = "X-A: 1\r\nVia: 1.1 up\r\nX-B: 2\r\nConnection: x-a\r\n"
	                "Connection: VIA\r\n";

	memset(&e, 0, sizeof(e));
	memset(&site, 0, sizeof(site));
	c.via = via;
	site.conf = &c;
	edge_deliver_client_fields(&e, &site, h, strlen(h), &out, &cl);
	is_str(out.p, "X-B: 2\r\nVia: 1.1 edged\r\n",
	    "fields a later Connection names are dropped");
	is_int(cl, 5, "no chunked: the length stays");
	cdn_sb_free(&out);
}

int
main(void)
{
	plan_no_plan();
	test_equals_reference();
	test_connection_names_earlier_fields();
	return done_testing();
}
