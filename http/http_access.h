/*
 * Access control shared by the listeners that are not public: edged's
 * admin listener and purged.  An address ACL (networks in CIDR form) and
 * Bearer tokens read from a file.  Both are built once at start-up and
 * read-only afterwards, so any thread may check against them.
 */
#ifndef HTTP_ACCESS_H
#define HTTP_ACCESS_H

#include <stddef.h>
#include <stdint.h>

#include "common/cdn.h"
#include "http/http_parse.h"

#define HTTP_TOKEN_MAX 4096 /* bytes of one token */

struct http_acl_net {
	int family; /* AF_INET or AF_INET6 */
	unsigned prefix;
	uint8_t addr[16];
};

struct http_acl {
	struct http_acl_net *nets;
	unsigned n, cap;
};

/*
 * Add "ADDRESS[/PREFIX]" or "loopback" (127.0.0.0/8 and ::1).  CDN_OK, or
 * CDN_EINVAL with a static *why (the ACL is unchanged).
 */
int http_acl_add(
    struct http_acl *acl, const char *spec, const char **why) CDN_WUR;
/* Whether the client address text ("10.1.2.3", "::1", "::ffff:10.1.2.3")
 * is inside one of the networks.  An empty ACL allows nobody. */
int http_acl_allows(const struct http_acl *acl, const char *client);
void http_acl_free(struct http_acl *acl);

struct http_token {
	char *secret;
	size_t len;
	char id[32]; /* for logs: the file's name for it, or a hash prefix */
};

struct http_tokens {
	struct http_token *v;
	unsigned n;
};

/*
 * Read the tokens of <path>: one per line, "TOKEN" or "ID TOKEN" (ID names
 * the token in logs; without it, the first 8 hex digits of a hash of the
 * token do), visible ASCII, at most HTTP_TOKEN_MAX bytes; blank lines and
 * lines starting with '#' are skipped.  With <single>, exactly one line,
 * "TOKEN" only (the admin listener's format).  CDN_OK, or CDN_EINVAL after
 * logging under <subsys> why (naming <what>, the directive).  Warns if the
 * file is readable by other users.
 */
int http_tokens_load(struct http_tokens *t, const char *path, int single,
    const char *subsys, const char *what) CDN_WUR;
/*
 * The token "Authorization: Bearer <token>" of <req> carries, compared in
 * constant time per token, or NULL.
 */
const struct http_token *http_tokens_check(
    const struct http_tokens *t, const struct http_request *req);
/* Wipes the secrets. */
void http_tokens_free(struct http_tokens *t);

#endif /* HTTP_ACCESS_H */
