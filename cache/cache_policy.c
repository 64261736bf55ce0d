/*
 * RFC 9111 policy: Cache-Control parsing, HTTP-dates, whether a shared
 * cache may store a response and for how long it is fresh, and how a
 * stored response may be used for a new request.
 *
 * Design.  Pure functions of their arguments (the one exception: the RFC
 * 850 two-digit year needs today's year, read from the clock), no
 * allocation, no locks: any thread may call them, and cache_cc_parse()
 * runs on every request that carries Cache-Control.
 *
 * The decisions where the RFCs leave room, and what we chose:
 *
 *   - Targeted fields (RFC 9213 §2.2).  With honor_targeted, a valid,
 *     non-empty CDN-Cache-Control (else Surrogate-Control) replaces
 *     Cache-Control and Expires for this cache: the RFC says the cache
 *     "MUST ignore" them, and that is what lets an origin send
 *     "Cache-Control: no-store" to browsers and "CDN-Cache-Control:
 *     max-age=600" to us.  CDN-Cache-Control is an RFC 8941 Dictionary,
 *     parsed strictly (cache_sf.c): a syntax error, or a directive whose
 *     value has another type than RFC 9213 §2.1 infers (max-age="600",
 *     no-store=?0), makes the whole field be ignored, and so does a value
 *     of more than CDN_CC_JOIN_MAX bytes spread over several lines.
 *     Surrogate-Control, older and not a structured field, is read as
 *     Cache-Control is.  Of the targeted field we honour max-age,
 *     s-maxage, no-store, private, no-cache, must-revalidate,
 *     proxy-revalidate and stale-*; public, immutable and must-understand
 *     are not taken from it.  There is no fall-back to Cache-Control's
 *     lifetimes when the targeted field has none: the response then gets a
 *     heuristic or default lifetime like any response without one.
 *
 *   - Status codes (RFC 9111 §3, RFC 9110 §15).  We store only final codes
 *     whose caching semantics we implement (cache_understands()): never
 *     206 (the store keeps whole representations only), never 304 (it
 *     updates a stored response, it is not one), never a code we do not
 *     know (RFC 9110 §15: MUST NOT cache an unrecognised status).
 *
 *   - Lifetimes without explicit freshness (RFC 9111 §4.2.2), for
 *     heuristically cacheable codes (RFC 9110 §15.1) or "public":
 *     heuristic_percent of (Date - Last-Modified), capped at
 *     heuristic_max_s (0: no cap), if there is a Last-Modified and the
 *     percentage is not 0; otherwise default_ttl_s if it is set; otherwise
 *     a response with unqualified no-cache is stored with lifetime 0 (it is
 *     validated before every use anyway); otherwise it is not stored
 *     ("no-freshness"), since nothing would tell us when it changes.
 *
 *   - Operator limits.  min_ttl_s raises explicit lifetimes only, and never
 *     those of no-cache or must-revalidate responses (s-maxage included),
 *     whose origin asked that they not be served stale.  max_ttl_s caps
 *     every lifetime.  0 means no limit for both.
 *
 *   - Repeated directives and fields keep the most restrictive value
 *     (RFC 9111 §4.2.1 allows the first or "stale"): the smallest max-age,
 *     s-maxage, max-stale and stale-*, the largest min-fresh, the earliest
 *     Expires.  Date and Last-Modified: the first.  Age: the first member
 *     of the first line, as RFC 9111 §5.1 says (age_first_member()).
 *
 *   - Flag directives that carry an argument they should not have are
 *     honoured if they restrict (no-store=1) and ignored if they permit
 *     (public=1).  A qualified no-cache or private whose list is empty or
 *     malformed counts as unqualified.
 *
 *   - delta-seconds overflow clamps to 2^31 - 1 (RFC 9111 §1.2.2 allows
 *     "the greatest positive integer it can conveniently represent").
 *
 *   - HTTP-dates before 1970 are treated as invalid (-1): an Expires then
 *     means "already expired" anyway, and a Date or Last-Modified before
 *     the epoch is broken.
 */
#include "config.h"

#include <stdint.h>
#include <string.h>
#include <time.h>

#include "cache/cache.h"
#include "http/http_date.h"
#include "http/http_parse.h"

#define CC_DELTA_MAX INT64_C(2147483647) /* RFC 9111 §1.2.2 */
/* Longest CDN-Cache-Control value joined from several lines. */
#define CDN_CC_JOIN_MAX 4096

/* RFC 5234 WSP (SP / HTAB): what OWS is made of. */
static inline int
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static inline unsigned char
ascii_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c | 0x20) : c;
}

/* s[0..len) equals the lower-case literal <lit>, ignoring case. */
static int
eq_ci(const char *s, size_t len, const char *lit, size_t litlen)
{
	size_t i;

	if (len != litlen)
		return 0;
	for (i = 0; i < len; i++)
		if (ascii_lower((unsigned char)s[i]) != (unsigned char)lit[i])
			return 0;
	return 1;
}

#define EQ_CI(s, len, lit) eq_ci((s), (len), (lit), sizeof(lit) - 1)

static inline int64_t
sat_add(int64_t a, int64_t b)
{
	int64_t r;

	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return r;
}

static inline int64_t
sat_sub(int64_t a, int64_t b)
{
	int64_t r;

	if (__builtin_sub_overflow(a, b, &r))
		return b < 0 ? INT64_MAX : INT64_MIN;
	return r;
}

static inline int64_t
clamp_delta(int64_t v)
{
	if (v < 0)
		return 0;
	return v > CC_DELTA_MAX ? CC_DELTA_MAX : v;
}

/*
 * delta-seconds (RFC 9111 §1.2.2): 1*DIGIT, clamped to 2^31 - 1.  -1 if
 * empty or not all digits.
 */
static int64_t
parse_delta(const char *s, size_t len)
{
	int64_t v;
	size_t i;

	if (len == 0)
		return -1;
	v = 0;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (v <= CC_DELTA_MAX)
			v = v * 10 + (s[i] - '0');
	}
	return v > CC_DELTA_MAX ? CC_DELTA_MAX : v;
}

/* ---- Cache-Control ---- */

void
cache_cc_init(struct cache_cc *cc)
{
	CDN_ASSERT(cc != NULL);
	memset(cc, 0, sizeof(*cc));
	cc->max_age = -1;
	cc->s_maxage = -1;
	cc->max_stale = -1;
	cc->min_fresh = -1;
	cc->stale_while_revalidate = -1;
	cc->stale_if_error = -1;
}

enum cc_dir {
	CCD_UNKNOWN = 0,
	CCD_MAX_AGE,
	CCD_S_MAXAGE,
	CCD_MAX_STALE,
	CCD_MIN_FRESH,
	CCD_NO_CACHE,
	CCD_NO_STORE,
	CCD_NO_TRANSFORM,
	CCD_ONLY_IF_CACHED,
	CCD_MUST_REVALIDATE,
	CCD_MUST_UNDERSTAND,
	CCD_PROXY_REVALIDATE,
	CCD_PUBLIC,
	CCD_PRIVATE,
	CCD_SWR,
	CCD_SIE,
	CCD_IMMUTABLE,
};
#define CCD_COUNT (CCD_IMMUTABLE + 1)

/* clang-format off */
#define D(s, d) { s, sizeof(s) - 1, d }
static const struct {
	const char *name;
	size_t len;
	enum cc_dir dir;
} cc_names[] = {
	D("max-age", CCD_MAX_AGE),		/* RFC 9111 §5.2.1.1, §5.2.2.1 */
	D("s-maxage", CCD_S_MAXAGE),		/* §5.2.2.10 */
	D("no-cache", CCD_NO_CACHE),		/* §5.2.1.4, §5.2.2.4 */
	D("no-store", CCD_NO_STORE),		/* §5.2.1.5, §5.2.2.5 */
	D("private", CCD_PRIVATE),		/* §5.2.2.7 */
	D("public", CCD_PUBLIC),		/* §5.2.2.9 */
	D("must-revalidate", CCD_MUST_REVALIDATE), /* §5.2.2.2 */
	D("proxy-revalidate", CCD_PROXY_REVALIDATE), /* §5.2.2.8 */
	D("max-stale", CCD_MAX_STALE),		/* §5.2.1.2 */
	D("min-fresh", CCD_MIN_FRESH),		/* §5.2.1.3 */
	D("no-transform", CCD_NO_TRANSFORM),	/* §5.2.1.6, §5.2.2.6 */
	D("only-if-cached", CCD_ONLY_IF_CACHED), /* §5.2.1.7 */
	D("must-understand", CCD_MUST_UNDERSTAND), /* §5.2.2.3 */
	D("stale-while-revalidate", CCD_SWR),	/* RFC 5861 §3 */
	D("stale-if-error", CCD_SIE),		/* RFC 5861 §4 */
	D("immutable", CCD_IMMUTABLE),		/* RFC 8246 */
};
#undef D
/* clang-format on */

static enum cc_dir
cc_lookup(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < CDN_ARRAY_LEN(cc_names); i++)
		if (eq_ci(s, len, cc_names[i].name, cc_names[i].len))
			return cc_names[i].dir;
	return CCD_UNKNOWN;
}

/* The smallest of the values seen (-1: none yet). */
static void
keep_min(int64_t *slot, int64_t v)
{
	if (*slot < 0 || v < *slot)
		*slot = v;
}

/* Skip to the ',' ending this list member (or len), past quoted-strings. */
static size_t
skip_member(const char *v, size_t len, size_t i)
{
	while (i < len && v[i] != ',') {
		if (v[i] == '"') {
			for (i++; i < len && v[i] != '"'; i++)
				if (v[i] == '\\' && i + 1 < len)
					i++;
		}
		if (i < len)
			i++;
	}
	return i;
}

/* A qualified form's argument lists at least one field name. */
static int
lists_a_name(const char *a, size_t alen)
{
	size_t i;

	for (i = 0; i < alen; i++)
		if (http_is_tchar((unsigned char)a[i]))
			return 1;
	return 0;
}

/*
 * One directive: <has_arg> if "=" followed, a[0..alen) the argument (the
 * inside of a quoted-string), <bad> if the member was malformed.
 */
static void
cc_apply(struct cache_cc *cc, enum cc_dir d, int has_arg, const char *a,
    size_t alen, int bad)
{
	int64_t v;

	v = has_arg && !bad ? parse_delta(a, alen) : -1;
	switch (d) {
	case CCD_MAX_AGE:
		/* RFC 9111 §4.2.1: an invalid value means stale */
		keep_min(&cc->max_age, v < 0 ? 0 : v);
		break;
	case CCD_S_MAXAGE:
		keep_min(&cc->s_maxage, v < 0 ? 0 : v);
		break;
	case CCD_MAX_STALE:
		/* §5.2.1.2: without a value, any staleness is accepted */
		if (!has_arg && !bad)
			keep_min(&cc->max_stale, INT64_MAX);
		else if (v >= 0)
			keep_min(&cc->max_stale, v);
		break;
	case CCD_MIN_FRESH:
		if (v > cc->min_fresh)
			cc->min_fresh = v;
		break;
	case CCD_SWR:
		if (v >= 0)
			keep_min(&cc->stale_while_revalidate, v);
		break;
	case CCD_SIE:
		if (v >= 0)
			keep_min(&cc->stale_if_error, v);
		break;
	case CCD_NO_CACHE:
		/* §5.2.2.4: no-cache="f1, f2" only restricts those fields */
		if (has_arg && !bad && lists_a_name(a, alen))
			cc->no_cache_fields = 1;
		else
			cc->no_cache = 1;
		break;
	case CCD_PRIVATE:
		/* §5.2.2.7 */
		if (has_arg && !bad && lists_a_name(a, alen))
			cc->private_fields = 1;
		else
			cc->is_private = 1;
		break;
	case CCD_NO_STORE:
		cc->no_store = 1;
		break;
	case CCD_MUST_REVALIDATE:
		cc->must_revalidate = 1;
		break;
	case CCD_PROXY_REVALIDATE:
		cc->proxy_revalidate = 1;
		break;
	case CCD_NO_TRANSFORM:
		cc->no_transform = 1;
		break;
	case CCD_ONLY_IF_CACHED:
		cc->only_if_cached = 1;
		break;
	case CCD_PUBLIC:
		if (!has_arg && !bad)
			cc->is_public = 1;
		break;
	case CCD_IMMUTABLE:
		if (!has_arg && !bad)
			cc->immutable = 1;
		break;
	case CCD_MUST_UNDERSTAND:
		if (!has_arg && !bad)
			cc->must_understand = 1;
		break;
	case CCD_UNKNOWN:
		break; /* §5.2.3: extensions we do not know are ignored */
	}
}

/*
 * RFC 9111 §5.2: Cache-Control = #cache-directive,
 * cache-directive = token [ "=" ( token / quoted-string ) ].  Recipients
 * accept both argument forms (§5.2); we also tolerate OWS around "=".
 */
void
cache_cc_parse(struct cache_cc *cc, const char *v, size_t len)
{
	size_t i, ns, ne, as, ae;
	int has_arg, bad;

	CDN_ASSERT(cc != NULL);
	CDN_ASSERT(v != NULL || len == 0);
	i = 0;
	while (i < len) {
		if (v[i] == ',' || is_wsp(v[i])) {
			i++;
			continue;
		}
		ns = i;
		while (i < len && http_is_tchar((unsigned char)v[i]))
			i++;
		ne = i;
		if (ne == ns) {
			i = skip_member(v, len, i); /* not a directive */
			continue;
		}
		cc->is_set = 1;
		has_arg = 0;
		bad = 0;
		as = ae = i;
		while (i < len && is_wsp(v[i]))
			i++;
		if (i < len && v[i] == '=') {
			has_arg = 1;
			for (i++; i < len && is_wsp(v[i]); i++)
				;
			if (i < len && v[i] == '"') {
				/* RFC 9110 §5.6.4 quoted-string */
				as = ++i;
				while (i < len && v[i] != '"') {
					if (v[i] == '\\' && i + 1 < len)
						i++;
					i++;
				}
				ae = i < len ? i : len;
				if (i < len)
					i++;
				else
					bad = 1; /* unterminated */
			} else {
				as = i;
				while (i < len &&
				    http_is_tchar((unsigned char)v[i]))
					i++;
				ae = i;
				if (ae == as)
					bad = 1; /* "max-age=" */
			}
			while (i < len && is_wsp(v[i]))
				i++;
		}
		if (i < len && v[i] != ',') {
			bad = 1; /* trailing junk: "max-age=5 x" */
			i = skip_member(v, len, i);
		}
		cc_apply(cc, cc_lookup(v + ns, ne - ns), has_arg, v + as,
		    ae - as, bad);
	}
}

/* ---- CDN-Cache-Control (RFC 9213) ---- */

/* The last member of each directive we know, and how many members. */
struct cdn_cc_seen {
	struct cache_sf_member last[CCD_COUNT]; /* type 0: absent */
	unsigned members;
};

static int
cdn_cc_member(void *arg, const struct cache_sf_member *m)
{
	struct cdn_cc_seen *seen = arg;

	seen->members++;
	seen->last[cc_lookup(m->key, m->key_len)] = *m;
	return CDN_OK;
}

/* RFC 9213 §2.1: delta-seconds become non-negative Integers. */
static int
cdn_cc_delta(const struct cache_sf_member *m, int64_t *slot)
{
	if (m->type == 0)
		return CDN_OK;
	if (m->type != CACHE_SF_INTEGER || m->num < 0)
		return CDN_EINVAL;
	*slot = clamp_delta(m->num);
	return CDN_OK;
}

/* A directive without an argument is Boolean true; 1 if present. */
static int
cdn_cc_flag(const struct cache_sf_member *m, int *bad)
{
	if (m->type == 0)
		return 0;
	if (m->type != CACHE_SF_BOOLEAN || m->num != 1)
		*bad = 1;
	return 1;
}

/* no-cache and private: Boolean true, or a String of field names.
 * Returns 0 absent, 1 unqualified, 2 qualified. */
static int
cdn_cc_qualified(const struct cache_sf_member *m, int *bad)
{
	if (m->type == 0)
		return 0;
	if (m->type == CACHE_SF_STRING)
		return lists_a_name(m->str, m->str_len) ? 2 : 1;
	if (m->type != CACHE_SF_BOOLEAN || m->num != 1)
		*bad = 1;
	return 1;
}

int
cache_cdn_cc_parse(struct cache_cc *cc, const char *v, size_t len)
{
	struct cdn_cc_seen seen;
	const struct cache_sf_member *l = seen.last;
	int bad = 0, q;

	CDN_ASSERT(cc != NULL);
	CDN_ASSERT(v != NULL || len == 0);
	cache_cc_init(cc);
	memset(&seen, 0, sizeof(seen));
	if (cache_sf_dict_parse(v, len, cdn_cc_member, &seen) != CDN_OK)
		return CDN_EINVAL;
	if (cdn_cc_delta(&l[CCD_MAX_AGE], &cc->max_age) != CDN_OK ||
	    cdn_cc_delta(&l[CCD_S_MAXAGE], &cc->s_maxage) != CDN_OK ||
	    cdn_cc_delta(&l[CCD_SWR], &cc->stale_while_revalidate) != CDN_OK ||
	    cdn_cc_delta(&l[CCD_SIE], &cc->stale_if_error) != CDN_OK)
		bad = 1;
	cc->no_store = (unsigned)cdn_cc_flag(&l[CCD_NO_STORE], &bad);
	cc->must_revalidate =
	    (unsigned)cdn_cc_flag(&l[CCD_MUST_REVALIDATE], &bad);
	cc->proxy_revalidate =
	    (unsigned)cdn_cc_flag(&l[CCD_PROXY_REVALIDATE], &bad);
	cc->is_public = (unsigned)cdn_cc_flag(&l[CCD_PUBLIC], &bad);
	cc->immutable = (unsigned)cdn_cc_flag(&l[CCD_IMMUTABLE], &bad);
	cc->must_understand =
	    (unsigned)cdn_cc_flag(&l[CCD_MUST_UNDERSTAND], &bad);
	cc->no_transform = (unsigned)cdn_cc_flag(&l[CCD_NO_TRANSFORM], &bad);
	q = cdn_cc_qualified(&l[CCD_NO_CACHE], &bad);
	cc->no_cache = q == 1;
	cc->no_cache_fields = q == 2;
	q = cdn_cc_qualified(&l[CCD_PRIVATE], &bad);
	cc->is_private = q == 1;
	cc->private_fields = q == 2;
	/* max-stale, min-fresh and only-if-cached are request directives:
	 * in a response they are extensions we ignore, like unknown ones. */
	if (bad) {
		cache_cc_init(cc);
		return CDN_EINVAL;
	}
	cc->is_set = seen.members > 0;
	return CDN_OK;
}

/* ---- response head ---- */

/* Does a Vary value list "*" (RFC 9110 §12.5.5)? */
static int
vary_has_star(const char *v, size_t len)
{
	size_t i, s, e;

	i = 0;
	while (i < len) {
		while (i < len && is_wsp(v[i]))
			i++;
		for (s = i; i < len && v[i] != ','; i++)
			;
		for (e = i; e > s && is_wsp(v[e - 1]); e--)
			;
		if (e - s == 1 && v[s] == '*')
			return 1;
		if (i < len)
			i++;
	}
	return 0;
}

/*
 * The lines of one field joined into one value (RFC 9110 §5.3), without
 * copying when there is one.  Empty lines add no member.
 */
struct joined {
	const char *p;
	size_t len;
	unsigned lines;
	int too_long; /* over CDN_CC_JOIN_MAX over several lines */
	char buf[CDN_CC_JOIN_MAX];
};

static void
join_line(struct joined *j, const char *v, size_t len)
{
	if (len == 0 || j->too_long)
		return;
	if (j->lines++ == 0) {
		j->p = v;
		j->len = len;
		return;
	}
	if (j->p != j->buf) {
		if (j->len > sizeof(j->buf)) {
			j->too_long = 1;
			return;
		}
		memcpy(j->buf, j->p, j->len);
		j->p = j->buf;
	}
	if (len + 2 > sizeof(j->buf) - j->len) {
		j->too_long = 1;
		return;
	}
	memcpy(j->buf + j->len, ", ", 2);
	memcpy(j->buf + j->len + 2, v, len);
	j->len += len + 2;
}

/*
 * RFC 9111 §5.1: Age is a singleton, but "a cache encountering a message
 * with a list-based Age field value SHOULD use the first member of the
 * field value, discarding subsequent ones", and ignore the field if that
 * member is not delta-seconds.  Several lines are one list in order (RFC
 * 9110 §5.3), so the first member of the first line decides; empty
 * members are not members (RFC 9110 §5.6.1).  Sets x->age (-1: invalid)
 * and returns 1 once a member was found, 0 for a line with none.
 */
static int
age_first_member(struct cache_exchange *x, const char *v, size_t len)
{
	size_t i, s, e;

	for (i = 0; i < len; i++) {
		if (v[i] == ',' || is_wsp(v[i]))
			continue;
		for (s = i; i < len && v[i] != ','; i++)
			;
		for (e = i; e > s && is_wsp(v[e - 1]); e--)
			;
		x->age = parse_delta(v + s, e - s);
		return 1;
	}
	return 0;
}

/* Whether a Transfer-Encoding value names chunked and nothing else. */
static int
only_chunked(const char *v, size_t len)
{
	size_t i = 0, s, e;
	int n = 0;

	while (i < len) {
		while (i < len && (is_wsp(v[i]) || v[i] == ','))
			i++;
		if (i == len)
			break;
		for (s = i; i < len && v[i] != ','; i++)
			;
		for (e = i; e > s && is_wsp(v[e - 1]); e--)
			;
		if (!EQ_CI(v + s, e - s, "chunked"))
			return 0;
		n++;
	}
	return n > 0;
}

void
cache_exchange_parse_response(
    struct cache_exchange *x, const char *f, size_t len)
{
	struct cache_head_scan hs;

	cache_exchange_parse_head(x, f, len, NULL, 0, &hs);
}

/* Is the field name s[0..len) one of <names>, ignoring case?  Most names
 * differ from them in length: only those of the same length are read. */
static int
is_named(const char *s, size_t len, const struct cache_name *names, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (names[i].len == len && http_mem_eq_ci(s, names[i].p, len))
			return 1;
	return 0;
}

void
cache_exchange_parse_head(struct cache_exchange *x, const char *f, size_t len,
    const struct cache_name *tag_fields, unsigned ntag_fields,
    struct cache_head_scan *hs)
{
	struct cache_cc cdn, sur;
	struct joined cdn_v;
	const char *name, *val, *colon, *nl;
	size_t i, ls, le, nlen, vlen, k;
	int64_t t;
	int date_seen, lm_seen, age_seen, coding_lines = 0;

	CDN_ASSERT(x != NULL);
	CDN_ASSERT(f != NULL || len == 0);
	cache_cc_init(&x->cc);
	cache_cc_init(&x->cdn_cc);
	cache_cc_init(&sur);
	cdn_v.p = NULL;
	cdn_v.len = 0;
	cdn_v.lines = 0;
	cdn_v.too_long = 0;
	x->date = -1;
	x->expires = -1;
	x->has_expires = 0;
	x->last_modified = -1;
	x->age = -1;
	x->has_set_cookie = 0;
	x->vary_star = 0;
	x->transfer_coded = 0;
	date_seen = lm_seen = age_seen = 0;
	memset(hs, 0, sizeof(*hs));
	hs->coding = CACHE_ENC_IDENTITY;

	for (i = 0; i < len; i = le + 1) {
		ls = i;
		nl = memchr(f + i, '\n', len - i);
		le = nl != NULL ? (size_t)(nl - f) : len;
		k = le;
		if (k > ls && f[k - 1] == '\r')
			k--;
		if (k == ls) {
			/* the empty line ending a head: what follows is not
			 * walked */
			hs->age_or_status |= le + 1 < len;
			hs->may_have_tags |= le + 1 < len && ntag_fields > 0;
			break;
		}
		if (is_wsp(f[ls]))
			continue; /* obs-fold (RFC 9112 §5.2): not ours */
		colon = memchr(f + ls, ':', k - ls);
		if (colon == NULL)
			continue;
		name = f + ls;
		nlen = (size_t)(colon - name);
		val = colon + 1;
		vlen = k - (size_t)(val - f);
		while (vlen > 0 && is_wsp(val[0])) {
			val++;
			vlen--;
		}
		while (vlen > 0 && is_wsp(val[vlen - 1]))
			vlen--;

		if (!hs->may_have_tags &&
		    is_named(name, nlen, tag_fields, ntag_fields))
			hs->may_have_tags = 1;
		if (EQ_CI(name, nlen, "cache-control")) {
			cache_cc_parse(&x->cc, val, vlen);
		} else if (EQ_CI(name, nlen, "cdn-cache-control")) {
			join_line(&cdn_v, val, vlen); /* RFC 9213 §3 */
		} else if (EQ_CI(name, nlen, "surrogate-control")) {
			cache_cc_parse(&sur, val, vlen);
		} else if (EQ_CI(name, nlen, "date")) {
			if (!date_seen)
				x->date = http_date_parse(val, vlen);
			date_seen = 1;
		} else if (EQ_CI(name, nlen, "expires")) {
			/* RFC 9111 §5.3: invalid means in the past */
			t = http_date_parse(val, vlen);
			if (t < 0)
				t = 0;
			if (!x->has_expires || t < x->expires)
				x->expires = t;
			x->has_expires = 1;
		} else if (EQ_CI(name, nlen, "last-modified")) {
			if (!lm_seen)
				x->last_modified = http_date_parse(val, vlen);
			lm_seen = 1;
		} else if (EQ_CI(name, nlen, "age")) {
			hs->age_or_status = 1;
			if (!age_seen)
				age_seen = age_first_member(x, val, vlen);
		} else if (EQ_CI(name, nlen, "cache-status")) {
			hs->age_or_status = 1;
		} else if (EQ_CI(name, nlen, "set-cookie")) {
			x->has_set_cookie = 1;
		} else if (EQ_CI(name, nlen, "vary")) {
			if (vary_has_star(val, vlen))
				x->vary_star = 1;
			if (hs->vary == NULL) {
				hs->vary = val;
				hs->vary_len = vlen;
			}
		} else if (EQ_CI(name, nlen, "content-type")) {
			if (hs->ctype == NULL) {
				hs->ctype = val;
				hs->ctype_len = vlen;
			}
		} else if (EQ_CI(name, nlen, "content-encoding")) {
			hs->has_coding = 1;
			/* Two lines are a list of two codings (RFC 9110
			 * §5.3): not one we know. */
			if (vlen > 0)
				hs->coding = coding_lines++ == 0
				    ? cache_enc_parse(val, vlen)
				    : -1;
		} else if (EQ_CI(name, nlen, "transfer-encoding")) {
			if (!only_chunked(val, vlen))
				x->transfer_coded = 1;
		}
	}
	/* RFC 9213 §2.2: the first field of the target list with a valid,
	 * non-empty value. */
	if (cdn_v.lines > 0 && !cdn_v.too_long &&
	    cache_cdn_cc_parse(&cdn, cdn_v.p, cdn_v.len) == CDN_OK &&
	    cdn.is_set)
		x->cdn_cc = cdn;
	else if (sur.is_set)
		x->cdn_cc = sur;
	if (hs->coding < 0)
		hs->coding = CACHE_ENC_OTHER;
}

/* ---- storing (RFC 9111 §3, §4.2) ---- */

/*
 * Final status codes whose caching rules we implement (RFC 9111 §3).  Not
 * 206 (we store whole representations only) nor 304 (it freshens a stored
 * response, §4.3.4).
 */
static int
cache_understands(int status)
{
	switch (status) {
	case 200:
	case 203:
	case 204:
	case 300:
	case 301:
	case 302:
	case 303:
	case 307:
	case 308:
	case 400:
	case 403:
	case 404:
	case 405:
	case 410:
	case 414:
	case 451:
	case 500:
	case 501:
	case 502:
	case 503:
	case 504:
		return 1;
	}
	return 0;
}

/* RFC 9110 §15.1: heuristically cacheable status codes. */
static int
heuristic_status(int status)
{
	switch (status) {
	case 200:
	case 203:
	case 204:
	case 206:
	case 300:
	case 301:
	case 308:
	case 404:
	case 405:
	case 410:
	case 414:
	case 501:
		return 1;
	}
	return 0;
}

/*
 * The directives this cache obeys: Cache-Control, or with honor_targeted
 * and a targeted field present, only that field (RFC 9213 §2.2).  Returns
 * whether the targeted field was taken.
 */
static int
effective_cc(const struct cache_policy_conf *pc, const struct cache_exchange *x,
    struct cache_cc *e)
{
	const struct cache_cc *t;

	if (!pc->honor_targeted || !x->cdn_cc.is_set) {
		*e = x->cc;
		return 0;
	}
	t = &x->cdn_cc;
	cache_cc_init(e);
	e->is_set = 1;
	e->max_age = t->max_age;
	e->s_maxage = t->s_maxage;
	e->no_store = t->no_store;
	e->is_private = t->is_private;
	e->private_fields = t->private_fields;
	e->no_cache = t->no_cache;
	e->no_cache_fields = t->no_cache_fields;
	e->must_revalidate = t->must_revalidate;
	e->proxy_revalidate = t->proxy_revalidate;
	e->stale_while_revalidate = t->stale_while_revalidate;
	e->stale_if_error = t->stale_if_error;
	return 1;
}

/* RFC 9111 §4.2.3: corrected_initial_age. */
static int64_t
initial_age(const struct cache_exchange *x)
{
	int64_t date_value, apparent, delay, corrected;

	date_value = x->date >= 0 ? x->date : x->response_time;
	apparent = sat_sub(x->response_time, date_value);
	if (apparent < 0)
		apparent = 0;
	delay = sat_sub(x->response_time, x->request_time);
	if (delay < 0)
		delay = 0; /* a clock step; the delay cannot be negative */
	corrected = sat_add(x->age > 0 ? x->age : 0, delay);
	return clamp_delta(apparent > corrected ? apparent : corrected);
}

/* RFC 9111 §4.2.2: a fraction of the time since Last-Modified. */
static int64_t
heuristic_lifetime(
    const struct cache_policy_conf *pc, const struct cache_exchange *x)
{
	int64_t base, delta, pct, life;

	base = x->date >= 0 ? x->date : x->response_time;
	delta = sat_sub(base, x->last_modified);
	if (delta < 0)
		delta = 0;
	/* Keep the product in range: 2^40 s is 34000 years. */
	if (delta > (INT64_C(1) << 40))
		delta = INT64_C(1) << 40;
	pct = pc->heuristic_percent > 10000 ? 10000 : pc->heuristic_percent;
	life = delta * pct / 100;
	if (pc->heuristic_max_s > 0 && life > pc->heuristic_max_s)
		life = pc->heuristic_max_s;
	return life;
}

void
cache_policy_decide(const struct cache_policy_conf *pc,
    const struct cache_exchange *x, struct cache_decision *d)
{
	struct cache_cc e;
	const char *why;
	int64_t life, date_value;
	int targeted, explicit, must_reval;

	CDN_ASSERT(pc != NULL && x != NULL && d != NULL);
	memset(d, 0, sizeof(*d));
	d->initial_age_s = initial_age(x);
	targeted = effective_cc(pc, x, &e);

	/* RFC 9111 §3: the conditions for storing, most decisive first. */
	if (!x->method_get_or_head) {
		d->reason = "method";
		return;
	}
	if (!cache_understands(x->status)) {
		d->reason = "status";
		return;
	}
	/* RFC 9112 §6.3: read until close, a cut body looks complete. */
	if (x->transfer_coded) {
		d->reason = "transfer-coding";
		return;
	}
	if (x->req_cc.no_store) {
		d->reason = "req-no-store"; /* §5.2.1.5 */
		return;
	}
	/* §5.2.2.3: must-understand overrides no-store for a cache that
	 * understands the status code. */
	if (e.no_store && !e.must_understand) {
		d->reason = "no-store"; /* §5.2.2.5 */
		return;
	}
	if (e.is_private) {
		d->reason = "private"; /* §5.2.2.7: we are a shared cache */
		return;
	}
	/*
	 * §5.2.2.7: a shared cache must not store the fields private="..."
	 * names.  The names are not kept, so the response is not stored.
	 */
	if (e.private_fields) {
		d->reason = "private-fields";
		return;
	}
	if (x->has_authorization &&
	    !(e.is_public || e.s_maxage >= 0 || e.must_revalidate)) {
		d->reason = "authorization"; /* §3.5 */
		return;
	}
	if (x->has_set_cookie && !pc->share_set_cookie) {
		d->reason = "set-cookie"; /* one user's session, not ours */
		return;
	}
	if (x->vary_star) {
		d->reason = "vary-star"; /* §4.1: would never match */
		return;
	}

	/* §5.2.2.10: s-maxage implies proxy-revalidate; §5.2.2.8 applies to
	 * us as a shared cache. */
	must_reval = e.must_revalidate || e.proxy_revalidate || e.s_maxage >= 0;

	/* §4.2.1: s-maxage, then max-age, then Expires - Date. */
	explicit = 1;
	life = 0;
	why = NULL;
	if (e.s_maxage >= 0) {
		life = e.s_maxage;
		why = targeted ? "fresh:cdn-s-maxage" : "fresh:s-maxage";
	} else if (e.max_age >= 0) {
		life = e.max_age;
		why = targeted ? "fresh:cdn-max-age" : "fresh:max-age";
	} else if (!targeted && x->has_expires) {
		date_value = x->date >= 0 ? x->date : x->response_time;
		life = sat_sub(x->expires < 0 ? 0 : x->expires, date_value);
		why = "fresh:expires";
	} else {
		explicit = 0;
		/* §3, §4.2.2: heuristics for heuristically cacheable codes
		 * and for responses marked public. */
		if (!heuristic_status(x->status) && !e.is_public) {
			d->reason = "no-freshness";
			return;
		}
		if (pc->heuristic_percent > 0 && x->last_modified >= 0) {
			life = heuristic_lifetime(pc, x);
			why = "fresh:heuristic";
			d->heuristic = 1;
		} else if (pc->default_ttl_s > 0) {
			life = pc->default_ttl_s;
			why = "fresh:default";
		} else if (e.no_cache) {
			why = "no-cache"; /* validated before each use */
		} else {
			d->reason = "no-freshness";
			return;
		}
	}
	life = clamp_delta(life);
	if (explicit && pc->min_ttl_s > 0 && life < pc->min_ttl_s &&
	    !must_reval && !e.no_cache)
		life = clamp_delta(pc->min_ttl_s);
	if (pc->max_ttl_s > 0 && life > pc->max_ttl_s)
		life = pc->max_ttl_s;

	/* RFC 5861 §3, §4; RFC 9111 §4.2.4: no stale when the origin said
	 * revalidate. */
	/* §5.2.2.4: no-cache="f" may be treated as unqualified: validate
	 * before each reuse rather than strip fields we did not record. */
	if (e.no_cache_fields)
		e.no_cache = 1;
	if (!must_reval && !e.no_cache) {
		d->swr_s = clamp_delta(e.stale_while_revalidate);
		d->sie_s = clamp_delta(e.stale_if_error);
	}
	d->storable = 1;
	d->must_revalidate = must_reval;
	d->no_cache = e.no_cache; /* §5.2.2.4: store, validate each use */
	d->freshness_s = life;
	d->reason = why;
}

/* ---- using (RFC 9111 §4) ---- */

int64_t
cache_current_age(int64_t initial_age_s, int64_t response_time, int64_t now)
{
	int64_t resident;

	/* RFC 9111 §4.2.3: resident_time = now - response_time */
	resident = sat_sub(now, response_time);
	if (resident < 0)
		resident = 0;
	return sat_add(initial_age_s > 0 ? initial_age_s : 0, resident);
}

/*
 * <req_cc> may be NULL (no Cache-Control).  CACHE_USE_MISS only for a
 * decision that was not storable: a request no-store still lets a stored
 * response be used (RFC 9111 §5.2.1.5), and only-if-cached is the
 * caller's (504 instead of REVALIDATE, §5.2.1.7).
 */
enum cache_use
cache_policy_use(const struct cache_decision *stored, int64_t current_age_s,
    const struct cache_cc *req_cc, int req_pragma_no_cache)
{
	int64_t age, remaining, staleness;
	int has_cc;

	CDN_ASSERT(stored != NULL);
	if (!stored->storable)
		return CACHE_USE_MISS;
	age = current_age_s > 0 ? current_age_s : 0;
	has_cc = req_cc != NULL && req_cc->is_set;

	/* §5.2.1.4; §5.4: Pragma only counts without Cache-Control. */
	if ((has_cc && req_cc->no_cache) || (req_pragma_no_cache && !has_cc))
		return CACHE_USE_REVALIDATE;
	/* §5.2.2.4: stored with no-cache, validate every use. */
	if (stored->no_cache)
		return CACHE_USE_REVALIDATE;
	/* §5.2.1.1: the client wants nothing older than max-age, fresh or
	 * not, so not even a stale-while-revalidate answer. */
	if (has_cc && req_cc->max_age >= 0 && age > req_cc->max_age)
		return CACHE_USE_REVALIDATE;
	/* §5.2.1.3: fresh for at least min-fresh more seconds. */
	remaining = sat_sub(stored->freshness_s, age);
	if (has_cc && req_cc->min_fresh >= 0 && remaining < req_cc->min_fresh)
		return CACHE_USE_REVALIDATE;
	/* §4.2: fresh while freshness_lifetime > current_age */
	if (remaining > 0)
		return CACHE_USE_FRESH;

	/* Stale.  §4.2.4: never served stale against must-revalidate,
	 * proxy-revalidate or s-maxage (§5.2.2.2, §5.2.2.8, §5.2.2.10). */
	if (stored->must_revalidate)
		return CACHE_USE_REVALIDATE;
	staleness = sat_sub(age, stored->freshness_s);
	/* §5.2.1.2: the client accepts this much staleness. */
	if (has_cc && req_cc->max_stale >= 0 && staleness <= req_cc->max_stale)
		return CACHE_USE_STALE_OK;
	/* RFC 5861 §3: up to swr_s seconds stale, with a background
	 * revalidation. */
	if (stored->swr_s > 0 && staleness <= stored->swr_s)
		return CACHE_USE_STALE_REVALIDATE;
	return CACHE_USE_REVALIDATE;
}
