/*
 * Absolute http(s) URLs (RFC 3986 §3, RFC 9110 §4.2), split in place: the
 * one parsed-URL type of the node, for origin URLs in the config and in
 * pools, purge URLs, and Location fields.  No allocation; the slices point
 * into the string parsed.  Pure logic, any thread.
 */
#ifndef HTTP_URL_H
#define HTTP_URL_H

#include <stddef.h>
#include <stdint.h>

#include "common/cdn.h"
#include "http/http_parse.h"

struct http_url {
	unsigned https : 1;
	unsigned has_port : 1;
	unsigned has_query : 1;
	unsigned has_fragment : 1;
	unsigned has_userinfo : 1;   /* "user@" before the host */
	struct http_slice authority; /* [userinfo@]host[:port], as written */
	struct http_slice host;      /* without the port; IPv6 in brackets */
	uint16_t port;               /* as written, or the scheme's (80/443) */
	struct http_slice path;      /* "" when none (the origin form is "/") */
	struct http_slice query;     /* after '?', without the fragment */
	struct http_slice fragment;  /* after '#' */
};

/*
 * Split s[0..len): "http://" or "https://" (any case), an authority whose
 * host is a DNS name, an IPv4 address or a bracketed IPv6 literal and
 * whose port, if any, is 1..65535, then path, query and fragment.
 * CDN_EINVAL with *why a static message otherwise; *u is then undefined.
 */
int http_url_parse(
    const char *s, size_t len, struct http_url *u, const char **why) CDN_WUR;

#endif /* HTTP_URL_H */
