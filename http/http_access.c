/*
 * Address ACLs and Bearer tokens (http/http_access.h).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "common/cdn_log.h"
#include "http/http_access.h"

#define TOKENS_MAX 64 /* lines of a token file */

static int
net_parse(const char *s, struct http_acl_net *n, const char **why)
{
	char addr[INET6_ADDRSTRLEN + 1], *end;
	const char *slash = strchr(s, '/');
	size_t alen = slash != NULL ? (size_t)(slash - s) : strlen(s);
	unsigned long prefix;
	unsigned max, bits;

	memset(n, 0, sizeof(*n));
	if (alen == 0 || alen >= sizeof(addr)) {
		*why = "not an address";
		return CDN_EINVAL;
	}
	memcpy(addr, s, alen);
	addr[alen] = '\0';
	if (inet_pton(AF_INET, addr, n->addr) == 1) {
		n->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, addr, n->addr) == 1) {
		n->family = AF_INET6;
		max = 128;
	} else {
		*why = "not an IPv4 or IPv6 address";
		return CDN_EINVAL;
	}
	n->prefix = max;
	if (slash != NULL) {
		errno = 0;
		prefix = strtoul(slash + 1, &end, 10);
		if (slash[1] < '0' || slash[1] > '9' || *end != '\0' ||
		    errno != 0 || prefix > max) {
			*why = n->family == AF_INET
			    ? "prefix length must be 0 to 32"
			    : "prefix length must be 0 to 128";
			return CDN_EINVAL;
		}
		n->prefix = (unsigned)prefix;
	}
	for (bits = n->prefix; bits < max; bits++) {
		if (n->addr[bits / 8] & (0x80u >> (bits % 8))) {
			*why = "address bits set beyond the prefix length";
			return CDN_EINVAL;
		}
	}
	return CDN_OK;
}

static int
net_match(const struct http_acl_net *n, int family, const uint8_t *addr)
{
	unsigned full = n->prefix / 8, rest = n->prefix % 8;

	if (n->family != family)
		return 0;
	if (memcmp(n->addr, addr, full) != 0)
		return 0;
	return rest == 0 ||
	    ((n->addr[full] ^ addr[full]) & (0xffu << (8 - rest)) & 0xffu) == 0;
}

static void
acl_push(struct http_acl *acl, const struct http_acl_net *n)
{
	if (acl->n == acl->cap) {
		acl->cap = acl->cap == 0 ? 4 : acl->cap * 2;
		acl->nets = realloc(acl->nets, acl->cap * sizeof(*acl->nets));
		CDN_ASSERT(acl->nets != NULL);
	}
	acl->nets[acl->n++] = *n;
}

int
http_acl_add(struct http_acl *acl, const char *spec, const char **why)
{
	struct http_acl_net n;

	if (strcmp(spec, "loopback") == 0) {
		CDN_ASSERT(net_parse("127.0.0.0/8", &n, why) == CDN_OK);
		acl_push(acl, &n);
		CDN_ASSERT(net_parse("::1", &n, why) == CDN_OK);
		acl_push(acl, &n);
		return CDN_OK;
	}
	if (net_parse(spec, &n, why) != CDN_OK)
		return CDN_EINVAL;
	acl_push(acl, &n);
	return CDN_OK;
}

int
http_acl_allows(const struct http_acl *acl, const char *client)
{
	uint8_t addr[16];
	int family;

	if (inet_pton(AF_INET, client, addr) == 1) {
		family = AF_INET;
	} else if (inet_pton(AF_INET6, client, addr) == 1) {
		family = AF_INET6;
		/* ::ffff:a.b.c.d is an IPv4 client. */
		if (memcmp(addr, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0) {
			memmove(addr, addr + 12, 4);
			family = AF_INET;
		}
	} else {
		return 0;
	}
	for (unsigned i = 0; i < acl->n; i++)
		if (net_match(&acl->nets[i], family, addr))
			return 1;
	return 0;
}

void
http_acl_free(struct http_acl *acl)
{
	free(acl->nets);
	acl->nets = NULL;
	acl->n = acl->cap = 0;
}

static int
visible(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] <= ' ' || p[i] > '~')
			return 0;
	return 1;
}

/* Parse one line into t->v[t->n]; static why on error. */
static int
token_line(
    struct http_tokens *t, char *line, size_t n, int single, const char **why)
{
	struct http_token *tk;
	char *sp = single ? NULL : memchr(line, ' ', n);
	const char *secret = line;
	size_t slen = n;

	if (n > HTTP_TOKEN_MAX + 32) {
		*why = "token longer than 4096 bytes";
		return CDN_EINVAL;
	}
	if (sp != NULL) {
		secret = sp + 1;
		slen = n - (size_t)(secret - line);
		if ((size_t)(sp - line) >= sizeof(tk->id) ||
		    !visible(line, (size_t)(sp - line))) {
			*why = "a token id is at most 31 visible characters";
			return CDN_EINVAL;
		}
	}
	if (slen == 0 || slen > HTTP_TOKEN_MAX || !visible(secret, slen)) {
		*why = single ? "the token must be one line of visible ASCII "
		                "characters"
		              : "each line must be TOKEN or \"ID TOKEN\" in "
		                "visible ASCII characters";
		return CDN_EINVAL;
	}
	tk = &t->v[t->n++];
	tk->secret = cdn_xstrndup(secret, slen);
	tk->len = slen;
	if (sp != NULL)
		snprintf(
		    tk->id, sizeof(tk->id), "%.*s", (int)(sp - line), line);
	else
		snprintf(tk->id, sizeof(tk->id), "%08x",
		    (unsigned)(XXH3_64bits(secret, slen) >> 32));
	return CDN_OK;
}

int
http_tokens_load(struct http_tokens *t, const char *path, int single,
    const char *subsys, const char *what)
{
	const size_t cap = TOKENS_MAX * (HTTP_TOKEN_MAX + 40);
	const char *why = NULL;
	char *buf;
	struct stat stb;
	char *p, *end, *eol;
	size_t n, len;
	FILE *f;
	int rc = CDN_OK;

	memset(t, 0, sizeof(*t));
	f = fopen(path, "r");
	if (f == NULL) {
		CDN_LOG(CDN_LOG_ERR, subsys, "%s %s: %s", what, path,
		    strerror(errno));
		return CDN_EINVAL;
	}
	buf = cdn_xmalloc(cap);
	n = fread(buf, 1, cap - 1, f);
	if (fstat(fileno(f), &stb) == 0 && (stb.st_mode & 0077) != 0)
		CDN_LOG(CDN_LOG_WARN, subsys,
		    "%s %s is readable by other users", what, path);
	fclose(f);
	buf[n] = '\0';
	t->v = cdn_xcalloc(TOKENS_MAX, sizeof(*t->v));
	for (p = buf, end = buf + n; p < end && rc == CDN_OK; p = eol + 1) {
		eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == NULL)
			eol = end;
		len = (size_t)(eol - p);
		while (len > 0 &&
		    (p[len - 1] == '\r' || p[len - 1] == ' ' ||
		        p[len - 1] == '\t'))
			len--;
		if (len == 0 || (!single && p[0] == '#'))
			continue;
		if (t->n == (single ? 1u : TOKENS_MAX)) {
			why = single ? "the token must be one line"
			             : "more than 64 tokens";
			rc = CDN_EINVAL;
			break;
		}
		rc = token_line(t, p, len, single, &why);
	}
	if (rc == CDN_OK && t->n == 0) {
		why = "empty";
		rc = CDN_EINVAL;
	}
	explicit_bzero(buf, cap);
	free(buf);
	if (rc != CDN_OK) {
		CDN_LOG(CDN_LOG_ERR, subsys, "%s %s: %s", what, path, why);
		http_tokens_free(t);
	}
	return rc;
}

const struct http_token *
http_tokens_check(const struct http_tokens *t, const struct http_request *req)
{
	const struct http_header *h = http_request_find(req, "authorization");
	const struct http_token *found = NULL;
	const char *v, *end;

	if (h == NULL || h->value.len < 7 ||
	    strncasecmp(h->value.p, "bearer ", 7) != 0)
		return NULL;
	v = h->value.p + 7;
	end = h->value.p + h->value.len;
	while (v < end && *v == ' ')
		v++;
	for (unsigned i = 0; i < t->n; i++) {
		const struct http_token *tk = &t->v[i];

		if ((size_t)(end - v) != tk->len)
			continue;
		/* In constant time, by a comparison no compiler shortens:
		 * the length is all a timing attack learns. */
		if (CRYPTO_memcmp(v, tk->secret, tk->len) == 0)
			found = tk;
	}
	return found;
}

void
http_tokens_free(struct http_tokens *t)
{
	for (unsigned i = 0; t->v != NULL && i < t->n; i++) {
		explicit_bzero(t->v[i].secret, t->v[i].len);
		free(t->v[i].secret);
	}
	free(t->v);
	t->v = NULL;
	t->n = 0;
}
