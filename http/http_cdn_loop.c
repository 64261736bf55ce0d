/*
 * CDN-Loop (http/http_cdn_loop.h): a scanner over the field value, one
 * member at a time, with no allocation.  A well-formed member is read by
 * the grammar (quoted parameter values may hold commas); junk is skipped
 * to the next comma.  cdn-id is a uri-host[:port] or a
 * pseudonym (a token): taken here as the bytes of a token plus ':' and the
 * brackets of an IPv6 literal, which covers both in practice; a reg-name
 * with sub-delims such as ',' or ';' would be ambiguous in the list anyway.
 */
#include "config.h"

#include <string.h>
#include <strings.h>

#include "http/http_cdn_loop.h"
#include "http/http_parse.h"

static int
is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static int
is_id_char(char c)
{
	return http_is_tchar((unsigned char)c) || c == ':' || c == '[' ||
	    c == ']';
}

static const char *
skip_ows(const char *p, const char *end)
{
	while (p < end && is_ows(*p))
		p++;
	return p;
}

static const char *
skip_token(const char *p, const char *end)
{
	while (p < end && http_is_tchar((unsigned char)*p))
		p++;
	return p;
}

/* Past a quoted-string starting at p ('"'), or NULL if it never ends. */
static const char *
skip_quoted(const char *p, const char *end)
{
	for (p++; p < end; p++) {
		if (*p == '\\') {
			if (++p == end)
				return NULL;
		} else if (*p == '"') {
			return p + 1;
		}
	}
	return NULL;
}

/*
 * To the next comma (or the end).  Quotes are not honoured here: in junk,
 * an unterminated quote would otherwise swallow every member after it, and
 * a client could hide a node's own member that way and keep a loop going.
 */
static const char *
skip_member(const char *p, const char *end)
{
	while (p < end && *p != ',')
		p++;
	return p;
}

/*
 * The parameters after a cdn-id, from p: the end of the member (a comma or
 * the end of the value), or NULL when they do not parse.
 */
static const char *
parse_params(const char *p, const char *end)
{
	const char *q;

	for (;;) {
		p = skip_ows(p, end);
		if (p == end || *p == ',')
			return p;
		if (*p != ';')
			return NULL;
		p = skip_ows(p + 1, end);
		q = skip_token(p, end);
		if (q == p || q == end || *q != '=')
			return NULL;
		p = q + 1;
		if (p < end && *p == '"') {
			p = skip_quoted(p, end);
			if (p == NULL)
				return NULL;
		} else {
			q = skip_token(p, end);
			if (q == p)
				return NULL;
			p = q;
		}
	}
}

int
http_cdn_loop_names(const char *v, size_t len, const char *cdn_id)
{
	const char *p = v, *end, *id, *id_end, *m_end;
	size_t want = strlen(cdn_id);

	if (v == NULL || want == 0)
		return 0;
	end = v + len; /* not before: NULL + 0 is undefined */
	while (p < end) {
		while (p < end && (is_ows(*p) || *p == ','))
			p++;
		if (p == end)
			break;
		id = p;
		while (p < end && is_id_char(*p))
			p++;
		id_end = p;
		m_end = id_end > id ? parse_params(p, end) : NULL;
		if (m_end == NULL) {
			p = skip_member(p, end); /* junk: the next member */
			continue;
		}
		if ((size_t)(id_end - id) == want &&
		    strncasecmp(id, cdn_id, want) == 0)
			return 1;
		p = m_end;
	}
	return 0;
}
