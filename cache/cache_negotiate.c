/*
 * Accept-Encoding (RFC 9110 §12.5.3): which stored coding a client gets.
 * Pure logic, any thread.
 */
#include "config.h"

#include <string.h>
#include <strings.h>

#include "cache/cache.h"

void
cache_accept_enc_init(struct cache_accept_enc *ae)
{
	memset(ae, 0, sizeof(*ae));
	for (unsigned i = 0; i < CACHE_ENC_COUNT; i++)
		ae->q[i] = -1;
	ae->q_star = -1;
}

static int
is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* RFC 9110 §12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ]
 * ), in thousandths; -1 if malformed. */
static int
parse_qvalue(const char *p, size_t len)
{
	int q, scale = 100;

	if (len == 0 || (p[0] != '0' && p[0] != '1'))
		return -1;
	q = (p[0] - '0') * 1000;
	if (len == 1)
		return q;
	if (p[1] != '.' || len > 5)
		return -1;
	for (size_t i = 2; i < len; i++, scale /= 10) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		q += (p[i] - '0') * scale;
	}
	return q <= 1000 ? q : -1;
}

/*
 * One member p[0..len) (no leading OWS): codings [ weight ], weight = OWS
 * ";" OWS "q=" qvalue, its coding in *name / *nlen and its q in *q.
 * Other parameters are not defined for Accept-Encoding; a member with one
 * is skipped (returns 0) rather than guessed at.
 */
static int
split_member(const char *p, size_t len, const char **name, size_t *nlen, int *q)
{
	const char *semi, *end = p + len, *v;

	semi = memchr(p, ';', len);
	*name = p;
	*nlen = (size_t)((semi != NULL ? semi : end) - p);
	while (*nlen > 0 && is_ows(p[*nlen - 1]))
		(*nlen)--;
	if (*nlen == 0)
		return 0;
	*q = 1000;
	if (semi != NULL) {
		v = semi + 1;
		while (v < end && is_ows(*v))
			v++;
		if (end - v < 2 || (v[0] != 'q' && v[0] != 'Q') || v[1] != '=')
			return 0;
		v += 2;
		len = (size_t)(end - v);
		while (len > 0 && is_ows(v[len - 1]))
			len--;
		*q = parse_qvalue(v, len);
		if (*q < 0)
			return 0;
	}
	return 1;
}

/* Calls <fn> for each well-formed member of a list value. */
static void
each_member(const char *value, size_t len,
    void (*fn)(void *arg, const char *name, size_t nlen, int q), void *arg)
{
	const char *p = value, *end = value + len, *comma, *name;
	size_t nlen;
	int q;

	while (p < end) {
		while (p < end && (is_ows(*p) || *p == ','))
			p++;
		if (p == end)
			break;
		comma = memchr(p, ',', (size_t)(end - p));
		if (comma == NULL)
			comma = end;
		if (split_member(p, (size_t)(comma - p), &name, &nlen, &q))
			fn(arg, name, nlen, q);
		p = comma;
	}
}

static void
parse_member(void *arg, const char *name, size_t nlen, int q)
{
	struct cache_accept_enc *ae = arg;
	int enc;

	if (nlen == 1 && name[0] == '*') {
		ae->q_star = q;
		return;
	}
	enc = cache_enc_parse(name, nlen);
	if (enc < 0)
		return; /* deflate, zstd...: see cache_accept_enc_takes */
	ae->q[enc] = q;
}

void
cache_accept_enc_parse(
    struct cache_accept_enc *ae, const char *value, size_t len)
{
	CDN_ASSERT(ae != NULL && (value != NULL || len == 0));
	ae->seen = 1;
	each_member(value, len, parse_member, ae);
}

/* Two coding names for one coding: the same name, or aliases. */
static int
same_coding(const char *a, size_t alen, const char *b, size_t blen)
{
	int ea, eb;

	if (alen == blen && strncasecmp(a, b, alen) == 0)
		return 1;
	ea = cache_enc_parse(a, alen);
	eb = cache_enc_parse(b, blen);
	return ea >= 0 && ea == eb;
}

/* The q of one coding in a client's Accept-Encoding: by its name (the
 * last member naming it), else by "*"; -1 when neither is there. */
struct coding_q {
	const char *name;
	size_t len;
	int named, star;
};

static void
coding_q_member(void *arg, const char *name, size_t nlen, int q)
{
	struct coding_q *c = arg;

	if (nlen == 1 && name[0] == '*')
		c->star = q;
	else if (same_coding(name, nlen, c->name, c->len))
		c->named = q;
}

int
cache_accept_enc_takes(
    const struct cache_field *ae, unsigned n, const char *ce, size_t celen)
{
	const char *p = ce, *end = ce + celen, *comma;
	struct coding_q c;
	size_t len;
	int q;

	CDN_ASSERT(ae != NULL || n == 0);
	CDN_ASSERT(ce != NULL || celen == 0);
	if (n == 0)
		return 1; /* RFC 9110 §12.5.3: any coding is acceptable */
	while (p < end) {
		while (p < end && (is_ows(*p) || *p == ','))
			p++;
		if (p == end)
			break;
		comma = memchr(p, ',', (size_t)(end - p));
		if (comma == NULL)
			comma = end;
		for (len = (size_t)(comma - p); len > 0 && is_ows(p[len - 1]);)
			len--;
		c.name = p;
		c.len = len;
		c.named = c.star = -1;
		for (unsigned i = 0; i < n; i++)
			each_member(
			    ae[i].value, ae[i].value_len, coding_q_member, &c);
		q = c.named >= 0 ? c.named : c.star;
		/* identity is acceptable unless excluded */
		if (q == 0 ||
		    (q < 0 && cache_enc_parse(p, len) != CACHE_ENC_IDENTITY))
			return 0;
		p = comma;
	}
	return 1;
}

unsigned
cache_accept_enc_order(
    const struct cache_accept_enc *ae, enum cache_enc order[CACHE_ENC_COUNT])
{
	/* Server preference on equal q: smaller codings first. */
	static const enum cache_enc pref[CACHE_ENC_COUNT] = {
	    CACHE_ENC_BR, CACHE_ENC_GZIP, CACHE_ENC_IDENTITY};
	int q[CACHE_ENC_COUNT];
	unsigned n = 0;

	CDN_ASSERT(ae != NULL && order != NULL);
	if (!ae->seen) {
		order[0] = CACHE_ENC_IDENTITY;
		return 1;
	}
	for (unsigned i = 0; i < CACHE_ENC_COUNT; i++)
		q[i] = ae->q[i] >= 0  ? ae->q[i]
		    : ae->q_star >= 0 ? ae->q_star
		                      : 0;
	/* Identity is acceptable unless excluded by name or by "*;q=0". */
	if (ae->q[CACHE_ENC_IDENTITY] < 0 && ae->q_star < 0)
		q[CACHE_ENC_IDENTITY] = 1000;
	for (int best = 1000; best > 0 && n < CACHE_ENC_COUNT;) {
		int next = 0;

		for (unsigned i = 0; i < CACHE_ENC_COUNT; i++) {
			if (q[pref[i]] == best)
				order[n++] = pref[i];
			else if (q[pref[i]] < best && q[pref[i]] > next)
				next = q[pref[i]];
		}
		best = next;
	}
	return n;
}
