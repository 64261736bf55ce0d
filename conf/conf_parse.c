/*
 * Value parsers (conf/conf.h, conf/conf_int.h): sizes, durations, numbers,
 * origin URLs, origin_server and tls_sni_cert values.  Each takes a
 * NUL-terminated string and returns CDN_OK, or CDN_EINVAL with *why a static
 * message that the caller places at file:line:col; none keeps state.  Host
 * names, IPv6 literals and ports are the http/ authority grammar
 * (http/http_authority.h), HOST:PORT addresses a listener's
 * (http/http_listen.h).
 */
#include "config.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "conf/conf_int.h"
#include "http/http_authority.h"
#include "http/http_url.h"

const struct conf_dur_unit conf_parse_dur_units[CONF_NDUR_UNITS] = {
    {"d", 86400000},
    {"h", 3600000},
    {"m", 60000},
    {"s", 1000},
    {"ms", 1},
};

/* Leading decimal digits of *sp into *out; CDN_EINVAL on none or overflow. */
static int
parse_u64(const char **sp, uint64_t *out, const char **why)
{
	const char *p = *sp;
	uint64_t v = 0;

	if (!conf_is_digit(*p)) {
		*why = "not a number";
		return CDN_EINVAL;
	}
	for (; conf_is_digit(*p); p++) {
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10) {
			*why = "too large";
			return CDN_EINVAL;
		}
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*sp = p;
	*out = v;
	return CDN_OK;
}

int
conf_parse_size(const char *s, uint64_t *out, const char **why)
{
	const char *p = s;
	uint64_t v;
	unsigned shift = 0;

	CDN_ASSERT(s != NULL && out != NULL && why != NULL);
	if (*p == '\0') {
		*why = "empty value";
		return CDN_EINVAL;
	}
	if (!conf_is_digit(*p)) {
		*why = "not a size (a number with an optional K, M, G or T "
		       "suffix)";
		return CDN_EINVAL;
	}
	if (parse_u64(&p, &v, why) != CDN_OK)
		return CDN_EINVAL;
	if (*p == '.' || *p == ',') {
		*why = "fractions are not supported (write 1536K, not 1.5M)";
		return CDN_EINVAL;
	}
	switch (conf_ascii_lower(*p)) {
	case 'k':
		shift = 10;
		break;
	case 'm':
		shift = 20;
		break;
	case 'g':
		shift = 30;
		break;
	case 't':
		shift = 40;
		break;
	default:
		break;
	}
	if (shift != 0)
		p++;
	if (shift != 0 && conf_ascii_lower(p[0]) == 'i' &&
	    conf_ascii_lower(p[1]) == 'b')
		p += 2;
	else if (conf_ascii_lower(*p) == 'b')
		p++;
	if (*p != '\0') {
		*why = "unknown unit (K, M, G or T, optionally followed by B "
		       "or iB)";
		return CDN_EINVAL;
	}
	if (shift != 0 && v > (UINT64_MAX >> shift)) {
		*why = "too large";
		return CDN_EINVAL;
	}
	*out = v << shift;
	return CDN_OK;
}

int
conf_parse_duration_ms(const char *s, uint64_t *out, const char **why)
{
	const char *p = s;
	uint64_t v;

	CDN_ASSERT(s != NULL && out != NULL && why != NULL);
	if (*p == '\0') {
		*why = "empty value";
		return CDN_EINVAL;
	}
	if (!conf_is_digit(*p)) {
		*why = "not a duration (a number and a unit: ms, s, m, h or d)";
		return CDN_EINVAL;
	}
	if (parse_u64(&p, &v, why) != CDN_OK)
		return CDN_EINVAL;
	if (*p == '.' || *p == ',') {
		*why = "fractions are not supported (write 1500ms, not 1.5s)";
		return CDN_EINVAL;
	}
	if (*p == '\0') {
		if (v == 0) { /* zero is zero in any unit */
			*out = 0;
			return CDN_OK;
		}
		*why = "missing unit (ms, s, m, h or d)";
		return CDN_EINVAL;
	}
	for (size_t i = 0; i < CDN_ARRAY_LEN(conf_parse_dur_units); i++) {
		if (strcmp(p, conf_parse_dur_units[i].name) != 0)
			continue;
		if (v > UINT64_MAX / conf_parse_dur_units[i].ms) {
			*why = "too large";
			return CDN_EINVAL;
		}
		*out = v * conf_parse_dur_units[i].ms;
		return CDN_OK;
	}
	*why = "unknown unit (ms, s, m, h or d)";
	return CDN_EINVAL;
}

int
conf_parse_uint(const char *s, uint64_t *out, const char **why)
{
	const char *p = s;
	uint64_t v;

	if (*p == '\0') {
		*why = "empty value";
		return CDN_EINVAL;
	}
	if (!conf_is_digit(*p)) {
		*why = "not a number";
		return CDN_EINVAL;
	}
	if (parse_u64(&p, &v, why) != CDN_OK)
		return CDN_EINVAL;
	if (*p != '\0') {
		*why = "not a number (no unit or sign)";
		return CDN_EINVAL;
	}
	if (v > UINT32_MAX) {
		*why = "too large";
		return CDN_EINVAL;
	}
	*out = v;
	return CDN_OK;
}

int
conf_parse_url(const char *s, const char **why)
{
	struct http_url u;

	CDN_ASSERT(s != NULL && why != NULL);
	for (const char *q = s; *q != '\0'; q++) {
		if (*q == ' ' || conf_is_ctl((unsigned char)*q)) {
			*why = "spaces and control characters are not allowed "
			       "in a URL";
			return CDN_EINVAL;
		}
	}
	if (http_url_parse(s, strlen(s), &u, why) != CDN_OK)
		return CDN_EINVAL;
	if (u.has_userinfo) {
		*why = "credentials in the origin URL are not supported";
		return CDN_EINVAL;
	}
	if (u.has_query) {
		*why = "a query string in the origin URL is not supported";
		return CDN_EINVAL;
	}
	if (u.has_fragment) {
		*why = "a fragment in the origin URL is not supported";
		return CDN_EINVAL;
	}
	return CDN_OK;
}

int
conf_parse_sni_cert(const char *s, char *buf, size_t buflen,
    struct conf_sni_cert *out, const char **why)
{
	char *f[5], *p, *name;
	size_t len = strlen(s), nlen;
	unsigned n = 0;
	int dots = 0;

	CDN_ASSERT(buf != NULL && out != NULL && why != NULL);
	CDN_ASSERT(buflen > len);
	memcpy(buf, s, len + 1);
	for (p = buf; *p != '\0' && n < CDN_ARRAY_LEN(f);) {
		while (*p == ' ' || *p == '\t')
			*p++ = '\0';
		if (*p == '\0')
			break;
		f[n++] = p;
		while (*p != '\0' && *p != ' ' && *p != '\t')
			p++;
	}
	if (n < 3) {
		*why = "expected \"NAME CERTFILE KEYFILE [OCSPFILE]\"";
		return CDN_EINVAL;
	}
	if (n > 4) {
		*why = "more than four fields (NAME CERTFILE KEYFILE "
		       "[OCSPFILE]; file names cannot contain blanks)";
		return CDN_EINVAL;
	}
	name = f[0];
	for (p = name; *p != '\0'; p++)
		*p = conf_ascii_lower(*p);
	nlen = strlen(name);
	if (nlen > 1 && name[nlen - 1] == '.')
		name[--nlen] = '\0';
	p = name;
	if (p[0] == '*') {
		if (p[1] != '.') {
			*why = "a wildcard must be a whole first label "
			       "(*.example.com)";
			return CDN_EINVAL;
		}
		p += 2;
		for (const char *q = p; *q != '\0'; q++)
			dots += *q == '.';
		if (dots == 0) {
			*why = "a wildcard needs at least two labels after "
			       "\"*.\" (*.example.com)";
			return CDN_EINVAL;
		}
	}
	if (strchr(p, '*') != NULL) {
		*why = "'*' is only allowed as the whole first label";
		return CDN_EINVAL;
	}
	if (*p == '\0') {
		*why = "empty name";
		return CDN_EINVAL;
	}
	if (strspn(p, "0123456789.") == strlen(p) || strchr(p, ':') != NULL) {
		*why = "an IP address is not a server name (SNI carries names "
		       "only)";
		return CDN_EINVAL;
	}
	if (http_authority_check_host(p, why) != CDN_OK)
		return CDN_EINVAL;
	out->name = name;
	out->cert = f[1];
	out->key = f[2];
	out->ocsp = n == 4 ? f[3] : NULL;
	return CDN_OK;
}

int
conf_parse_origin_server(
    const char *s, struct conf_origin_server *out, const char **why)
{
	struct conf_origin_server o = {.weight = 1};
	const char *p = s, *end;
	char word[1100];
	uint64_t v;
	size_t len;
	int first = 1;

	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		end = p + strcspn(p, " \t");
		len = (size_t)(end - p);
		if (len >= sizeof(word)) {
			*why =
			    first ? "server URL too long" : "option too long";
			return CDN_EINVAL;
		}
		memcpy(word, p, len);
		word[len] = '\0';
		p = end;
		if (first) {
			if (conf_parse_url(word, why) != CDN_OK)
				return CDN_EINVAL;
			if (len >= sizeof(o.url)) {
				*why = "server URL too long";
				return CDN_EINVAL;
			}
			memcpy(o.url, word, len + 1);
			first = 0;
		} else if (strcmp(word, "backup") == 0) {
			o.backup = 1;
		} else if (strncmp(word, "weight=", 7) == 0) {
			if (conf_parse_uint(word + 7, &v, why) != CDN_OK)
				return CDN_EINVAL;
			if (v < 1 || v > 256) {
				*why = "weight must be between 1 and 256";
				return CDN_EINVAL;
			}
			o.weight = (unsigned)v;
		} else if (strncmp(word, "max_conns=", 10) == 0) {
			if (conf_parse_uint(word + 10, &v, why) != CDN_OK)
				return CDN_EINVAL;
			if (v > 1000000) {
				*why = "max_conns must be at most 1000000";
				return CDN_EINVAL;
			}
			o.max_conns = (unsigned)v;
		} else {
			*why = "unknown server option (weight=N, max_conns=N "
			       "or backup)";
			return CDN_EINVAL;
		}
	}
	if (first) {
		*why = "missing server URL";
		return CDN_EINVAL;
	}
	*out = o;
	return CDN_OK;
}
