/*
 * A strict parser of RFC 8941 Structured Field Dictionaries (cache/cache.h
 * "structured fields"), for the targeted cache-control fields of RFC 9213
 * (CDN-Cache-Control).
 *
 * It follows the parsing algorithms of RFC 8941 §4.2 step by step: every
 * bare item type (Integer, Decimal, String, Token, Byte Sequence, Boolean)
 * and Inner Lists are recognised, so that a valid field with an extension
 * member of any type is accepted; parameters are parsed and dropped (RFC
 * 9213 §2.1: "Parameters received on cache directives are to be
 * ignored").  What a member means is the caller's business.
 *
 * Pure function of its arguments: no allocation, any thread.
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "cache/cache.h"
#include "http/http_parse.h"

#define SF_INT_DIGITS   15 /* RFC 8941 §3.3.1 */
#define SF_DEC_INT_MAX  12 /* §3.3.2: integer digits of a Decimal */
#define SF_DEC_FRAC_MAX 3  /* §3.3.2: fraction digits */

struct sf_in {
	const char *p;
	const char *end;
};

static int
sf_empty(const struct sf_in *in)
{
	return in->p == in->end;
}

/* The next character, or -1 at the end. */
static int
sf_peek(const struct sf_in *in)
{
	return in->p < in->end ? (unsigned char)*in->p : -1;
}

static int
sf_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int
sf_lcalpha(int c)
{
	return c >= 'a' && c <= 'z';
}

static int
sf_alpha(int c)
{
	return sf_lcalpha(c) || (c >= 'A' && c <= 'Z');
}

/* §4.2: only SP, not HTAB, around the whole value and after ";". */
static void
skip_sp(struct sf_in *in)
{
	while (sf_peek(in) == ' ')
		in->p++;
}

/* §4.2.2: OWS (SP and HTAB) around the commas of a Dictionary. */
static void
skip_ows(struct sf_in *in)
{
	while (sf_peek(in) == ' ' || sf_peek(in) == '\t')
		in->p++;
}

/* §4.2.3.3: key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "."
 * / "*" ). */
static int
parse_key(struct sf_in *in, const char **key, size_t *len)
{
	const char *s = in->p;
	int c = sf_peek(in);

	if (!sf_lcalpha(c) && c != '*')
		return CDN_EINVAL;
	for (in->p++; !sf_empty(in); in->p++) {
		c = sf_peek(in);
		if (!sf_lcalpha(c) && !sf_digit(c) && c != '_' && c != '-' &&
		    c != '.' && c != '*')
			break;
	}
	*key = s;
	*len = (size_t)(in->p - s);
	return CDN_OK;
}

/* §4.2.4: an Integer, or a Decimal kept in thousandths. */
static int
parse_number(struct sf_in *in, struct cache_sf_member *m)
{
	int64_t v = 0, sign = 1;
	unsigned ndig = 0, nfrac = 0, is_dec = 0;
	int c;

	if (sf_peek(in) == '-') {
		in->p++;
		sign = -1;
	}
	if (!sf_digit(sf_peek(in)))
		return CDN_EINVAL;
	while (!sf_empty(in)) {
		c = sf_peek(in);
		if (sf_digit(c)) {
			v = v * 10 + (c - '0');
			ndig++;
			nfrac += is_dec;
		} else if (c == '.' && !is_dec) {
			if (ndig > SF_DEC_INT_MAX)
				return CDN_EINVAL;
			is_dec = 1;
		} else {
			break;
		}
		in->p++;
		/* Checked per digit, so v never overflows. */
		if (!is_dec && ndig > SF_INT_DIGITS)
			return CDN_EINVAL;
		if (nfrac > SF_DEC_FRAC_MAX)
			return CDN_EINVAL;
	}
	if (is_dec && nfrac == 0)
		return CDN_EINVAL; /* "1." */
	if (is_dec) {
		for (; nfrac < SF_DEC_FRAC_MAX; nfrac++)
			v *= 10;
		m->type = CACHE_SF_DECIMAL;
	} else {
		m->type = CACHE_SF_INTEGER;
	}
	m->num = sign * v;
	return CDN_OK;
}

/* §4.2.5: the text between the quotes, escapes left in. */
static int
parse_string(struct sf_in *in, struct cache_sf_member *m)
{
	const char *s;
	int c;

	in->p++; /* the opening DQUOTE */
	s = in->p;
	for (;;) {
		c = sf_peek(in);
		if (c < 0)
			return CDN_EINVAL; /* unterminated */
		in->p++;
		if (c == '\\') {
			c = sf_peek(in);
			if (c != '"' && c != '\\')
				return CDN_EINVAL;
			in->p++;
		} else if (c == '"') {
			break;
		} else if (c < 0x20 || c > 0x7e) {
			return CDN_EINVAL;
		}
	}
	m->type = CACHE_SF_STRING;
	m->str = s;
	m->str_len = (size_t)(in->p - 1 - s);
	return CDN_OK;
}

/* §4.2.6: token = ( ALPHA / "*" ) *( tchar / ":" / "/" ). */
static int
parse_token(struct sf_in *in, struct cache_sf_member *m)
{
	const char *s = in->p;
	int c;

	for (in->p++; !sf_empty(in); in->p++) {
		c = sf_peek(in);
		if (!http_is_tchar(c) && c != ':' && c != '/')
			break;
	}
	m->type = CACHE_SF_TOKEN;
	m->str = s;
	m->str_len = (size_t)(in->p - s);
	return CDN_OK;
}

/*
 * §4.2.7: ":" base64 ":".  Missing "=" padding is synthesised and
 * non-zero pad bits are accepted, as the RFC asks; what no base64 decoder
 * takes is not: "=" before the end, more "=" than a quantum needs, a
 * length of 4n + 1.  The bytes are not decoded (nobody reads them).
 */
static int
parse_bytes(struct sf_in *in, struct cache_sf_member *m)
{
	const char *s;
	size_t n, pad = 0, rem;
	int c;

	in->p++;
	s = in->p;
	for (;;) {
		c = sf_peek(in);
		if (c < 0)
			return CDN_EINVAL;
		in->p++;
		if (c == ':')
			break;
		if (c == '=') {
			if (++pad > 2)
				return CDN_EINVAL;
		} else if (pad > 0 ||
		    !(sf_alpha(c) || sf_digit(c) || c == '+' || c == '/')) {
			return CDN_EINVAL;
		}
	}
	n = (size_t)(in->p - 1 - s);
	rem = (n - pad) % 4;
	if (rem == 1 || pad > (rem == 0 ? 0 : 4 - rem))
		return CDN_EINVAL;
	m->type = CACHE_SF_BYTES;
	m->str = s;
	m->str_len = n;
	return CDN_OK;
}

/* §4.2.3.1 */
static int
parse_bare_item(struct sf_in *in, struct cache_sf_member *m)
{
	int c = sf_peek(in);

	if (c == '-' || sf_digit(c))
		return parse_number(in, m);
	if (c == '"')
		return parse_string(in, m);
	if (c == '*' || sf_alpha(c))
		return parse_token(in, m);
	if (c == ':')
		return parse_bytes(in, m);
	if (c == '?') {
		in->p++;
		c = sf_peek(in);
		if (c != '0' && c != '1')
			return CDN_EINVAL;
		in->p++;
		m->type = CACHE_SF_BOOLEAN;
		m->num = c == '1';
		return CDN_OK;
	}
	return CDN_EINVAL;
}

/* §4.2.3.2: checked and dropped. */
static int
parse_params(struct sf_in *in)
{
	struct cache_sf_member v;
	const char *key;
	size_t klen;

	while (sf_peek(in) == ';') {
		in->p++;
		skip_sp(in);
		if (parse_key(in, &key, &klen) != CDN_OK)
			return CDN_EINVAL;
		if (sf_peek(in) == '=') {
			in->p++;
			if (parse_bare_item(in, &v) != CDN_OK)
				return CDN_EINVAL;
		}
	}
	return CDN_OK;
}

/* §4.2.1.2: "(" *SP [ item *( 1*SP item ) *SP ] ")" parameters. */
static int
parse_inner_list(struct sf_in *in, struct cache_sf_member *m)
{
	struct cache_sf_member item;
	int c;

	in->p++;
	for (;;) {
		skip_sp(in);
		c = sf_peek(in);
		if (c < 0)
			return CDN_EINVAL;
		if (c == ')') {
			in->p++;
			m->type = CACHE_SF_INNER_LIST;
			return parse_params(in);
		}
		if (parse_bare_item(in, &item) != CDN_OK ||
		    parse_params(in) != CDN_OK)
			return CDN_EINVAL;
		c = sf_peek(in);
		if (c != ' ' && c != ')')
			return CDN_EINVAL;
	}
}

int
cache_sf_dict_parse(
    const char *value, size_t len, cache_sf_member_fn fn, void *arg)
{
	struct sf_in in;
	struct cache_sf_member m;
	int rc;

	CDN_ASSERT(value != NULL || len == 0);
	CDN_ASSERT(fn != NULL);
	in.p = value;
	in.end = value + len;
	skip_sp(&in);
	while (!sf_empty(&in)) {
		memset(&m, 0, sizeof(m));
		if (parse_key(&in, &m.key, &m.key_len) != CDN_OK)
			return CDN_EINVAL;
		if (sf_peek(&in) == '=') {
			in.p++;
			rc = sf_peek(&in) == '(' ? parse_inner_list(&in, &m)
			                         : parse_bare_item(&in, &m);
		} else {
			/* A key alone is Boolean true. */
			m.type = CACHE_SF_BOOLEAN;
			m.num = 1;
			rc = CDN_OK;
		}
		if (rc != CDN_OK || parse_params(&in) != CDN_OK)
			return CDN_EINVAL;
		rc = fn(arg, &m);
		if (rc != CDN_OK)
			return rc;
		skip_ows(&in);
		if (sf_empty(&in))
			break;
		if (*in.p != ',')
			return CDN_EINVAL;
		in.p++;
		skip_ows(&in);
		if (sf_empty(&in))
			return CDN_EINVAL; /* a trailing comma */
	}
	/* §4.2: trailing SP is discarded; the loop above ate it as OWS. */
	return CDN_OK;
}
