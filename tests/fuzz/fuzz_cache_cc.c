/*
 * libFuzzer target for the pure cache logic: cache/cache_policy.c
 * (Cache-Control, HTTP-dates, the response head parser, the storing and
 * use decisions) and cache/cache_key.c (primary and Vary keys).
 *
 * The input is cut at 0xff bytes into: [0] two flag bytes, [1] a
 * Cache-Control value, [2] an HTTP-date, [3] a response head, [4] host,
 * [5] path, [6] query, [7] a Vary value.  Beyond the sanitizers' checks it
 * asserts what callers rely on:
 *   - directive numbers are -1 or delta-seconds (max-stale: or INT64_MAX),
 *     and parsing a value twice changes nothing (duplicates keep the most
 *     restrictive value, which is idempotent);
 *   - a parsed date lies in 1970..9999 and formats back to itself;
 *   - decisions: lifetimes and ages in [0, 2^31-1], no stale allowance
 *     with must-revalidate or no-cache, max_ttl honoured, a reason always,
 *     MISS exactly for what was not storable;
 *   - keys: the result fits <cap>, is printable ASCII without spaces, is
 *     the same under any larger cap, and building a key from a key gives
 *     the same key (one spelling per resource);
 *   - the Vary key does not depend on the order of the names.
 *
 * Build: clang -fsanitize=fuzzer,address,undefined -I. -I<dir of config.h>
 *     tests/fuzz/fuzz_cache_cc.c common/cdn_util.c -lxxhash
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "common/cdn.h"
#include "http/http_date.h"

/*
 * The code under test is compiled into this target so that libFuzzer's
 * coverage instrumentation reaches it (libedge.a is built without it);
 * the archive members are then never pulled in.
 */
#include "cache/cache_key.c"
#include "cache/cache_policy.c"

#define FZ_PARTS  8
#define FZ_FIELDS 16
#define FZ_KEYCAP 8192

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct part {
	const char *p;
	size_t len;
	int present; /* tells an empty query from none */
};

static void
check_cc(const struct cache_cc *c)
{
	CDN_ASSERT(c->max_age == -1 ||
	    (c->max_age >= 0 && c->max_age <= CC_DELTA_MAX));
	CDN_ASSERT(c->s_maxage == -1 ||
	    (c->s_maxage >= 0 && c->s_maxage <= CC_DELTA_MAX));
	CDN_ASSERT(c->max_stale == -1 || c->max_stale == INT64_MAX ||
	    (c->max_stale >= 0 && c->max_stale <= CC_DELTA_MAX));
	CDN_ASSERT(c->min_fresh >= -1 && c->min_fresh <= CC_DELTA_MAX);
	CDN_ASSERT(c->stale_while_revalidate >= -1 &&
	    c->stale_while_revalidate <= CC_DELTA_MAX);
	CDN_ASSERT(
	    c->stale_if_error >= -1 && c->stale_if_error <= CC_DELTA_MAX);
	if (!c->is_set)
		CDN_ASSERT(c->max_age == -1 && c->s_maxage == -1 &&
		    !c->no_store && !c->no_cache && !c->is_private &&
		    !c->is_public && !c->no_cache_fields && !c->private_fields);
}

static int
cc_equal(const struct cache_cc *a, const struct cache_cc *b)
{
	return a->is_set == b->is_set && a->no_store == b->no_store &&
	    a->no_cache == b->no_cache &&
	    a->no_cache_fields == b->no_cache_fields &&
	    a->is_private == b->is_private &&
	    a->private_fields == b->private_fields &&
	    a->is_public == b->is_public &&
	    a->must_revalidate == b->must_revalidate &&
	    a->proxy_revalidate == b->proxy_revalidate &&
	    a->must_understand == b->must_understand &&
	    a->no_transform == b->no_transform &&
	    a->immutable == b->immutable &&
	    a->only_if_cached == b->only_if_cached &&
	    a->max_age == b->max_age && a->s_maxage == b->s_maxage &&
	    a->max_stale == b->max_stale && a->min_fresh == b->min_fresh &&
	    a->stale_while_revalidate == b->stale_while_revalidate &&
	    a->stale_if_error == b->stale_if_error;
}

static void
fuzz_cc(const struct part *v, struct cache_cc *out)
{
	struct cache_cc twice;

	cache_cc_init(out);
	cache_cc_parse(out, v->p, v->len);
	check_cc(out);
	twice = *out;
	cache_cc_parse(&twice, v->p, v->len);
	CDN_ASSERT(cc_equal(out, &twice));
}

static void
fuzz_date(const struct part *v)
{
	char buf[32];
	int64_t t;

	t = http_date_parse(v->p, v->len);
	CDN_ASSERT(t >= -1 && t <= HTTP_DATE_MAX);
	if (t < 0)
		return;
	http_date_format(t, buf, sizeof(buf));
	CDN_ASSERT(strlen(buf) == 29);
	CDN_ASSERT(http_date_parse(buf, 29) == t);
}

static void
fuzz_policy(const struct part *head, const struct cache_cc *req, uint8_t f)
{
	static const struct cache_policy_conf confs[] = {
	    {0, 0, 0, 10, 0, 0, 1},
	    {300, 60, 3600, 10, 86400, 1, 1},
	    {0, 0, 0, 0, 0, 0, 0},
	    {INT64_MAX, INT64_MAX, 0, 4000000000u, 0, 0, 1},
	};
	static const int statuses[] = {200, 206, 302, 404, 500, 304, 299};
	struct cache_exchange x;
	struct cache_decision d;
	const struct cache_policy_conf *pc;
	enum cache_use u;
	int64_t age, now;
	size_t i;

	memset(&x, 0, sizeof(x));
	x.req_cc = *req;
	x.method_get_or_head = !(f & 1);
	x.has_authorization = (f >> 1) & 1;
	x.req_pragma_no_cache = (f >> 2) & 1;
	x.status = statuses[(f >> 3) % CDN_ARRAY_LEN(statuses)];
	x.request_time = INT64_C(1700000000) - ((f >> 6) & 1);
	x.response_time = INT64_C(1700000000);
	if (f & 0x80) {
		x.request_time = INT64_MIN; /* hostile clocks */
		x.response_time = INT64_MAX;
	}
	cache_exchange_parse_response(&x, head->p, head->len);
	check_cc(&x.cc);
	check_cc(&x.cdn_cc);
	CDN_ASSERT(x.date >= -1 && x.date <= HTTP_DATE_MAX);
	CDN_ASSERT(x.last_modified >= -1 && x.last_modified <= HTTP_DATE_MAX);
	CDN_ASSERT(x.age >= -1 && x.age <= CC_DELTA_MAX);
	CDN_ASSERT(x.has_expires ? x.expires >= 0 && x.expires <= HTTP_DATE_MAX
	                         : x.expires == -1);

	for (i = 0; i < CDN_ARRAY_LEN(confs); i++) {
		pc = &confs[i];
		cache_policy_decide(pc, &x, &d);
		CDN_ASSERT(d.reason != NULL);
		CDN_ASSERT(d.freshness_s >= 0 && d.freshness_s <= CC_DELTA_MAX);
		CDN_ASSERT(
		    d.initial_age_s >= 0 && d.initial_age_s <= CC_DELTA_MAX);
		CDN_ASSERT(d.swr_s >= 0 && d.swr_s <= CC_DELTA_MAX);
		CDN_ASSERT(d.sie_s >= 0 && d.sie_s <= CC_DELTA_MAX);
		if (!d.storable) {
			CDN_ASSERT(d.freshness_s == 0 && d.swr_s == 0 &&
			    d.sie_s == 0 && !d.must_revalidate && !d.no_cache);
		} else {
			CDN_ASSERT(strncmp(d.reason, "fresh:", 6) == 0 ||
			    strcmp(d.reason, "no-cache") == 0);
			CDN_ASSERT(x.method_get_or_head && !x.vary_star &&
			    !x.req_cc.no_store);
			if (pc->max_ttl_s > 0)
				CDN_ASSERT(d.freshness_s <= pc->max_ttl_s);
			if (d.must_revalidate || d.no_cache)
				CDN_ASSERT(d.swr_s == 0 && d.sie_s == 0);
			if (d.heuristic)
				CDN_ASSERT(
				    strcmp(d.reason, "fresh:heuristic") == 0);
		}
		/* now: from a little before the response to long after */
		now = x.response_time;
		if (now < INT64_MAX - 4096)
			now += (int64_t)f * 13 - 100;
		age = cache_current_age(d.initial_age_s, x.response_time, now);
		CDN_ASSERT(age >= 0);
		u = cache_policy_use(&d, age, req, x.req_pragma_no_cache);
		CDN_ASSERT(u >= CACHE_USE_FRESH && u <= CACHE_USE_MISS);
		CDN_ASSERT((u == CACHE_USE_MISS) == !d.storable);
		if (u == CACHE_USE_FRESH)
			CDN_ASSERT(d.freshness_s > age && !d.no_cache);
		if (u == CACHE_USE_STALE_OK || u == CACHE_USE_STALE_REVALIDATE)
			CDN_ASSERT(d.freshness_s <= age && !d.must_revalidate &&
			    !d.no_cache);
	}
}

static void
fuzz_key(const struct part *pt, uint8_t f)
{
	static const char *const params[] = {"utm_*", "id", "*x", "", "a"};
	static const char *const schemes[] = {"http", "https", "ftp", NULL};
	static char out[FZ_KEYCAP], again[FZ_KEYCAP];
	struct cache_key_rules r;
	const char *scheme, *host, *path, *q;
	size_t n, n2, cap, hl, pl, ql, i;
	uint8_t h1[CACHE_HASH_LEN], h2[CACHE_HASH_LEN];
	int rc, rc2;

	memset(&r, 0, sizeof(r));
	r.query_mode = (enum cache_query_mode)(f % 5);
	r.include_scheme = (f >> 3) & 1;
	r.sort_after_filter = (f >> 4) & 1;
	r.params = params;
	r.nparams = CDN_ARRAY_LEN(params);
	scheme = schemes[(f >> 5) & 3];
	cap = (f & 0x80) ? (size_t)(pt[4].len + pt[5].len + pt[6].len) / 2
	                 : sizeof(out);
	if (cap > sizeof(out))
		cap = sizeof(out);

	rc = cache_key_build(&r, scheme, pt[4].p, pt[4].len, pt[5].p, pt[5].len,
	    pt[6].p, pt[6].len, pt[6].present, out, cap, &n);
	CDN_ASSERT(rc == CDN_OK || rc == CDN_EINVAL || rc == CDN_ELIMIT);
	if (rc != CDN_OK)
		return;
	CDN_ASSERT(n <= cap && n > 0);
	for (i = 0; i < n; i++)
		CDN_ASSERT(out[i] > ' ' && out[i] < 0x7f);

	/* the same under the largest cap */
	rc2 =
	    cache_key_build(&r, scheme, pt[4].p, pt[4].len, pt[5].p, pt[5].len,
	        pt[6].p, pt[6].len, pt[6].p != NULL, again, sizeof(again), &n2);
	CDN_ASSERT(rc2 == CDN_OK && n2 == n && memcmp(out, again, n) == 0);

	/* idempotent: a key built from the key is the key */
	host = out;
	if (r.include_scheme) {
		host = memchr(out, ':', n);
		CDN_ASSERT(host != NULL && host + 3 <= out + n);
		host += 3;
	}
	path = memchr(host, '/', n - (size_t)(host - out));
	CDN_ASSERT(path != NULL);
	hl = (size_t)(path - host);
	q = memchr(path, '?', n - (size_t)(path - out));
	pl = q != NULL ? (size_t)(q - path) : n - (size_t)(path - out);
	ql = q != NULL ? n - (size_t)(q + 1 - out) : 0;
	rc2 = cache_key_build(&r, scheme, host, hl, path, pl,
	    q != NULL ? q + 1 : NULL, ql, q != NULL, again, n, &n2);
	CDN_ASSERT(rc2 == CDN_OK && n2 == n && memcmp(out, again, n) == 0);

	cache_key_hash(out, n, h1);
	cache_key_hash(again, n2, h2);
	CDN_ASSERT(memcmp(h1, h2, sizeof(h1)) == 0);
}

/* The head's lines as request fields, for the Vary key. */
static unsigned
split_fields(const struct part *head, struct cache_field *fl)
{
	const char *p, *end, *nl, *colon;
	unsigned n;

	n = 0;
	p = head->p;
	end = p + head->len;
	while (p < end && n < FZ_FIELDS) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			nl = end;
		colon = memchr(p, ':', (size_t)(nl - p));
		if (colon != NULL) {
			fl[n].name = p;
			fl[n].name_len = (size_t)(colon - p);
			fl[n].value = colon + 1;
			fl[n].value_len = (size_t)(nl - colon - 1);
			n++;
		}
		p = nl + 1;
	}
	return n;
}

static void
fuzz_vary(const struct part *vary, const struct part *head)
{
	static char rev[8192];
	struct cache_field fl[FZ_FIELDS];
	const char *p, *end, *c;
	size_t rl, m;
	uint64_t k1, k2;
	unsigned nf;
	int rc1, rc2;

	nf = split_fields(head, fl);
	k1 = k2 = 42;
	rc1 = cache_vary_key(vary->p, vary->len, fl, nf, &k1);
	CDN_ASSERT(rc1 == CDN_OK || rc1 == CDN_EINVAL);
	if (vary->len >= sizeof(rev))
		return;
	/* The members in reverse order. */
	rl = 0;
	end = vary->p + vary->len;
	while (end > vary->p) {
		for (c = end; c > vary->p && c[-1] != ','; c--)
			;
		m = (size_t)(end - c);
		if (rl > 0)
			rev[rl++] = ',';
		memcpy(rev + rl, c, m);
		rl += m;
		end = c > vary->p ? c - 1 : c;
	}
	p = rev;
	rc2 = cache_vary_key(p, rl, fl, nf, &k2);
	CDN_ASSERT(rc1 == rc2);
	if (rc1 == CDN_OK)
		CDN_ASSERT(k1 == k2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct part pt[FZ_PARTS];
	struct cache_cc req;
	const char *s, *end, *sep;
	uint8_t f0, f1;
	unsigned k;

	for (k = 0; k < FZ_PARTS; k++) {
		pt[k].p = "";
		pt[k].len = 0;
		pt[k].present = 0;
	}
	if (size == 0)
		return 0;
	s = (const char *)data;
	end = s + size;
	for (k = 0; k < FZ_PARTS && s <= end; k++) {
		sep = memchr(s, 0xff, (size_t)(end - s));
		if (sep == NULL)
			sep = end;
		pt[k].p = s;
		pt[k].len = (size_t)(sep - s);
		pt[k].present = 1;
		if (sep == end)
			break;
		s = sep + 1;
	}
	f0 = pt[0].len > 0 ? (uint8_t)pt[0].p[0] : 0;
	f1 = pt[0].len > 1 ? (uint8_t)pt[0].p[1] : 0;

	fuzz_cc(&pt[1], &req);
	fuzz_date(&pt[2]);
	fuzz_date(&pt[1]);
	fuzz_policy(&pt[3], &req, f0);
	fuzz_key(pt, f1);
	fuzz_vary(&pt[7], &pt[3]);
	return 0;
}
