/*
 * Connection-specific fields (RFC 9110 §7.6.1): what a proxy removes when
 * it forwards a message, in either direction.  Pure logic, any thread.
 */
#ifndef HTTP_FIELDS_H
#define HTTP_FIELDS_H

#include <stddef.h>

#include "http/http_parse.h"

#define HTTP_CONN_TOKENS_MAX 16

/* Whether field <name> applies to one connection only (always). */
int http_field_is_hop_by_hop(const char *name, size_t len);

/*
 * The field names a Connection field lists, which are hop-by-hop too.
 * Slices point into the values added; at most HTTP_CONN_TOKENS_MAX are
 * kept (more is not a message a proxy must forward faithfully).
 */
struct http_conn_tokens {
	struct http_slice t[HTTP_CONN_TOKENS_MAX];
	unsigned n;
};

/* Add the names of one Connection field value. */
void http_conn_tokens_add(
    struct http_conn_tokens *ct, const char *v, size_t len);
int http_conn_tokens_has(
    const struct http_conn_tokens *ct, const char *name, size_t len);

#endif /* HTTP_FIELDS_H */
