/*
 * The authority of a URL or a listen address: "HOST[:PORT]" with HOST a DNS
 * name, a dotted IPv4 address or a bracketed IPv6 literal (RFC 3986 §3.2.2).
 * Each function returns CDN_OK, or CDN_EINVAL with *why a static message.
 */
#ifndef HTTP_AUTHORITY_H
#define HTTP_AUTHORITY_H

#include <stddef.h>
#include <stdint.h>

#include "common/cdn.h"

/* Room for any host these functions hand back, with its NUL. */
#define HTTP_AUTHORITY_HOST_MAX 256

/*
 * Split the authority a[0..len) into the host (copied into <host>, which
 * has HTTP_AUTHORITY_HOST_MAX bytes; an IPv6 literal checked and without its
 * brackets, any other host not checked yet) and the port part after the
 * colon, s[0..*portlen) at *portp, NULL when there is no colon.
 */
int http_authority_split(const char *a, size_t len, char *host,
    const char **portp, size_t *portlen, const char **why) CDN_WUR;

/*
 * An unbracketed host: a dotted IPv4 address, or a DNS name of labels made
 * of letters, digits, '-' and '_' (one trailing dot allowed).
 */
int http_authority_check_host(const char *h, const char **why) CDN_WUR;

/* Port s[0..len): 1..65535, digits only. */
int http_authority_parse_port(
    const char *s, size_t len, uint16_t *port, const char **why) CDN_WUR;

#endif /* HTTP_AUTHORITY_H */
