/*
 * The authority of a URL or a listen address, "HOST[:PORT]" (RFC 3986
 * §3.2.2, §3.2.3; http/http_authority.h): a DNS name or dotted IPv4 address,
 * a bracketed IPv6 literal, and a port 1..65535.  Checked strictly, with a
 * static message on error, for config values and listeners; a request's
 * Host header is the parser's business (http_parse.c).  No state.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

#include "http/http_authority.h"

static int
is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

static int
is_alnum(char ch)
{
	return is_digit(ch) || (ch >= 'a' && ch <= 'z') ||
	    (ch >= 'A' && ch <= 'Z');
}

int
http_authority_parse_port(
    const char *s, size_t len, uint16_t *port, const char **why)
{
	unsigned v = 0;

	if (len == 0) {
		*why = "missing port (HOST:PORT)";
		return CDN_EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		if (!is_digit(s[i]) || v > 65535) {
			*why = "invalid port (a number from 1 to 65535)";
			return CDN_EINVAL;
		}
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v < 1 || v > 65535) {
		*why = "invalid port (a number from 1 to 65535)";
		return CDN_EINVAL;
	}
	*port = (uint16_t)v;
	return CDN_OK;
}

int
http_authority_check_host(const char *h, const char **why)
{
	struct in_addr a4;
	size_t len = strlen(h), label = 0;
	int only_num = 1;

	for (size_t i = 0; i < len; i++) {
		if (!is_digit(h[i]) && h[i] != '.')
			only_num = 0;
	}
	if (only_num) {
		if (inet_pton(AF_INET, h, &a4) != 1) {
			*why = "invalid IPv4 address";
			return CDN_EINVAL;
		}
		return CDN_OK;
	}
	if (len > 253) {
		*why = "host name too long";
		return CDN_EINVAL;
	}
	for (size_t i = 0; i < len; i++) {
		if (h[i] == '.') {
			if (label == 0) {
				*why = "invalid host name (empty label)";
				return CDN_EINVAL;
			}
			label = 0;
			continue;
		}
		if (!is_alnum(h[i]) && h[i] != '-' && h[i] != '_') {
			*why = "invalid host name";
			return CDN_EINVAL;
		}
		if (++label > 63) {
			*why = "invalid host name (label longer than 63)";
			return CDN_EINVAL;
		}
	}
	return CDN_OK;
}

/* A bracketed IPv6 literal's inside, h[0..len). */
static int
check_ipv6(
    const char *h, size_t len, char *out, size_t outlen, const char **why)
{
	struct in6_addr a6;

	if (len == 0 || len >= outlen) {
		*why = "invalid IPv6 address";
		return CDN_EINVAL;
	}
	memcpy(out, h, len);
	out[len] = '\0';
	if (inet_pton(AF_INET6, out, &a6) != 1) {
		*why = "invalid IPv6 address";
		return CDN_EINVAL;
	}
	return CDN_OK;
}

int
http_authority_split(const char *a, size_t len, char *h, const char **portp,
    size_t *portlen, const char **why)
{
	const char *colon, *end = a + len;
	size_t hlen;

	*portp = NULL;
	*portlen = 0;
	if (len > 0 && a[0] == '[') {
		const char *rb = memchr(a, ']', len);

		if (rb == NULL) {
			*why = "missing ']' after an IPv6 address";
			return CDN_EINVAL;
		}
		if (check_ipv6(a + 1, (size_t)(rb - a - 1), h,
		        HTTP_AUTHORITY_HOST_MAX, why) != CDN_OK)
			return CDN_EINVAL;
		if (rb + 1 == end)
			return CDN_OK;
		if (rb[1] != ':') {
			*why = "expected ':' and a port after ']'";
			return CDN_EINVAL;
		}
		*portp = rb + 2;
		*portlen = (size_t)(end - rb - 2);
		return CDN_OK;
	}
	colon = memchr(a, ':', len);
	if (colon != NULL &&
	    memchr(colon + 1, ':', (size_t)(end - colon - 1))) {
		*why = "an IPv6 address must be in brackets ([::1]:8080)";
		return CDN_EINVAL;
	}
	hlen = colon != NULL ? (size_t)(colon - a) : len;
	if (hlen == 0) {
		*why = "missing host";
		return CDN_EINVAL;
	}
	if (hlen > 253) {
		*why = "host name too long";
		return CDN_EINVAL;
	}
	memcpy(h, a, hlen);
	h[hlen] = '\0';
	if (colon != NULL) {
		*portp = colon + 1;
		*portlen = (size_t)(end - colon - 1);
	}
	return CDN_OK;
}
