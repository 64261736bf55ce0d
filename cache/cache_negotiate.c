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
 * One member: codings [ weight ], weight = OWS ";" OWS "q=" qvalue.  Other
 * parameters are not defined for Accept-Encoding; a member with one is
 * skipped rather than guessed at.
 */
static void
parse_member(struct cache_accept_enc *ae, const char *p, size_t len)
{
	const char *semi, *end = p + len, *v;
	size_t nlen;
	int q = 1000, enc;

	semi = memchr(p, ';', len);
	nlen = (size_t)((semi != NULL ? semi : end) - p);
	while (nlen > 0 && is_ows(p[nlen - 1]))
		nlen--;
	if (nlen == 0)
		return;
	if (semi != NULL) {
		v = semi + 1;
		while (v < end && is_ows(*v))
			v++;
		if (end - v < 2 || (v[0] != 'q' && v[0] != 'Q') || v[1] != '=')
			return;
		v += 2;
		len = (size_t)(end - v);
		while (len > 0 && is_ows(v[len - 1]))
			len--;
		q = parse_qvalue(v, len);
		if (q < 0)
			return;
	}
	if (nlen == 1 && p[0] == '*') {
		ae->q_star = q;
		return;
	}
	enc = cache_enc_parse(p, nlen);
	if (enc < 0)
		return; /* deflate, zstd...: codings we never store */
	ae->q[enc] = q;
}

void
cache_accept_enc_parse(
    struct cache_accept_enc *ae, const char *value, size_t len)
{
	const char *p = value, *end = value + len, *comma;

	CDN_ASSERT(ae != NULL && (value != NULL || len == 0));
	ae->seen = 1;
	while (p < end) {
		while (p < end && (is_ows(*p) || *p == ','))
			p++;
		if (p == end)
			break;
		comma = memchr(p, ',', (size_t)(end - p));
		if (comma == NULL)
			comma = end;
		parse_member(ae, p, (size_t)(comma - p));
		p = comma;
	}
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
