/*
 * Absolute http(s) URLs (http/http_url.h).
 */
#include "config.h"

#include <string.h>
#include <strings.h>

#include "http/http_authority.h"
#include "http/http_url.h"

static struct http_slice
slice(const char *p, const char *end)
{
	struct http_slice s = {p, (size_t)(end - p)};

	return s;
}

int
http_url_parse(const char *s, size_t len, struct http_url *u, const char **why)
{
	const char *p, *end = s + len, *a, *auth_end, *at, *q, *portp;
	char host[HTTP_AUTHORITY_HOST_MAX];
	size_t portlen;

	CDN_ASSERT(s != NULL && u != NULL && why != NULL);
	memset(u, 0, sizeof(*u));
	if (len >= 7 && strncasecmp(s, "http://", 7) == 0) {
		p = s + 7;
	} else if (len >= 8 && strncasecmp(s, "https://", 8) == 0) {
		u->https = 1;
		p = s + 8;
	} else {
		*why = "must start with http:// or https://";
		return CDN_EINVAL;
	}
	for (auth_end = p; auth_end < end && *auth_end != '/' &&
	     *auth_end != '?' && *auth_end != '#';
	     auth_end++)
		;
	u->authority = slice(p, auth_end);
	at = memchr(p, '@', (size_t)(auth_end - p));
	if (at != NULL) {
		u->has_userinfo = 1;
		p = at + 1;
	}
	if (auth_end == p) {
		*why = "missing host";
		return CDN_EINVAL;
	}
	if (http_authority_split(p, (size_t)(auth_end - p), host, &portp,
	        &portlen, why) != CDN_OK)
		return CDN_EINVAL;
	if (p[0] != '[' && http_authority_check_host(host, why) != CDN_OK)
		return CDN_EINVAL;
	u->host = slice(p, portp != NULL ? portp - 1 : auth_end);
	u->port = u->https ? 443 : 80;
	if (portp != NULL) {
		if (http_authority_parse_port(portp, portlen, &u->port, why) !=
		    CDN_OK)
			return CDN_EINVAL;
		u->has_port = 1;
	}
	a = auth_end;
	q = memchr(a, '#', (size_t)(end - a));
	if (q != NULL) {
		u->has_fragment = 1;
		u->fragment = slice(q + 1, end);
		end = q;
	}
	q = memchr(a, '?', (size_t)(end - a));
	if (q != NULL) {
		u->has_query = 1;
		u->query = slice(q + 1, end);
		end = q;
	}
	u->path = slice(a, end);
	return CDN_OK;
}
