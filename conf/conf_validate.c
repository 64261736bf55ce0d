/*
 * Cross-directive checks of a whole conf (conf/conf.h: conf_validate): what
 * no single value can tell, such as at least one listener and an origin, no
 * address twice, TLS files that go together, and site blocks that are
 * complete and name each host once.  Values set through the parsers are
 * valid already; these checks also cover a conf filled in by hand.  No
 * state.
 */
#include "config.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/conf_int.h"
#include "http/http_access.h"
#include "http/http_authority.h"
#include "http/http_listen.h"
#include "http/http_parse.h"

/*
 * The listen, listen_tls and listen_h2c addresses in one numbering (in
 * that order): the directive, value and parsed address at index i.
 */
static int
listen_at(const struct conf *c, unsigned i, char *host, size_t hostlen,
    uint16_t *port, const char **name, int *elem, const char **val,
    const char **why)
{
	if (i < c->listen.n) {
		*name = "listen";
		*elem = (int)i;
		*val = c->listen.v[*elem];
	} else if (i < c->listen.n + c->listen_tls.n) {
		*name = "listen_tls";
		*elem = (int)(i - c->listen.n);
		*val = c->listen_tls.v[*elem];
	} else {
		*name = "listen_h2c";
		*elem = (int)(i - c->listen.n - c->listen_tls.n);
		*val = c->listen_h2c.v[*elem];
	}
	return http_listen_parse(*val, host, hostlen, port, why);
}

/* Longest cross-check message, formatted before it is placed. */
#define VALIDATE_MSG_MAX 512

/*
 * An error of a site block (at its line:col) or, with <line> 0, of the top
 * level (at the line that set <directive>).
 */
static void scoped_err(struct conf_err *es, const struct conf *c, unsigned line,
    unsigned col, const char *directive, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void
scoped_err(struct conf_err *es, const struct conf *c, unsigned line,
    unsigned col, const char *directive, const char *fmt, ...)
{
	char msg[VALIDATE_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		conf_err_at(es, line, col, directive, "%s", msg);
	else
		conf_err_key(es, c, directive, -1, "%s", msg);
}

/* tls_alpn: "h2", "http/1.1" or both, in either order. */
static int
alpn_valid(const char *list)
{
	if (list == NULL)
		return 0;
	return strcmp(list, "h2") == 0 || strcmp(list, "http/1.1") == 0 ||
	    strcmp(list, "h2,http/1.1") == 0 ||
	    strcmp(list, "http/1.1,h2") == 0;
}

/* tls_* cross-checks: a default certificate, no SNI name twice. */
static void
validate_tls(const struct conf *c, struct conf_err *es)
{
	struct conf_sni_cert a, b;
	char *ba, *bb;
	const char *why;

	if (c->listen_tls.n > 0 && c->tls_cert[0] == '\0')
		conf_err_key(es, c, "listen_tls", -1,
		    "needs tls_cert, the certificate served when SNI is "
		    "absent or unknown");
	if (c->tls_cert[0] == '\0' &&
	    (c->tls_key[0] != '\0' || c->tls_ocsp_file[0] != '\0'))
		conf_err_key(es, c,
		    c->tls_key[0] != '\0' ? "tls_key" : "tls_ocsp_file", -1,
		    "set without tls_cert");
	if (!alpn_valid(c->tls_alpn))
		conf_err_key(es, c, "tls_alpn", -1,
		    "must list h2 and/or http/1.1, comma-separated, each once");
	if (c->tls_ticket_rotate > 0 && c->tls_ticket_rotate < 1000)
		conf_err_key(es, c, "tls_ticket_rotate", -1,
		    "must be 0 (no tickets) or at least 1s");
	if (c->origin_client_key[0] != '\0' && c->origin_client_cert[0] == '\0')
		conf_err_key(es, c, "origin_client_key", -1,
		    "set without origin_client_cert");
	for (unsigned i = 0; i < c->tls_sni_cert.n; i++) {
		ba = cdn_xstrdup(c->tls_sni_cert.v[i]);
		if (conf_parse_sni_cert(c->tls_sni_cert.v[i], ba,
		        strlen(ba) + 1, &a, &why) != CDN_OK) {
			conf_err_key(es, c, "tls_sni_cert", (int)i, "%s", why);
			free(ba);
			continue;
		}
		for (unsigned j = 0; j < i; j++) {
			bb = cdn_xstrdup(c->tls_sni_cert.v[j]);
			if (conf_parse_sni_cert(c->tls_sni_cert.v[j], bb,
			        strlen(bb) + 1, &b, &why) == CDN_OK &&
			    strcmp(a.name, b.name) == 0) {
				conf_err_key(es, c, "tls_sni_cert", (int)i,
				    "%s given twice", a.name);
				free(bb);
				break;
			}
			free(bb);
		}
		free(ba);
	}
}

/* Each address list entry is ADDRESS[/PREFIX] or "loopback". */
static void
validate_acl(const struct conf *c, struct conf_err *es, const char *name,
    const struct conf_strlist *l)
{
	struct http_acl acl;
	const char *why;

	for (unsigned i = 0; i < l->n; i++) {
		memset(&acl, 0, sizeof(acl));
		if (http_acl_add(&acl, l->v[i], &why) != CDN_OK)
			conf_err_key(es, c, name, (int)i,
			    "\"%s\": %s (write ADDRESS[/PREFIX] or loopback)",
			    l->v[i], why);
		http_acl_free(&acl);
	}
}

/* The purge API: a store to purge and tokens to check, each named alone. */
static void
validate_purge(const struct conf *c, struct conf_err *es)
{
	validate_acl(c, es, "purge_allow", &c->purge_allow);
	if (c->purge_listen[0] == '\0')
		return;
	if (c->purge_token_file[0] == '\0')
		conf_err_key(es, c, "purge_listen", -1,
		    "needs purge_token_file (the tokens a purge must carry)");
	if (c->cache_dir[0] == '\0')
		conf_err_key(es, c, "purge_listen", -1,
		    "needs cache_dir (the store purges apply to)");
}

static int
balance_known(const char *b)
{
	return strcmp(b, "round-robin") == 0 || strcmp(b, "weighted") == 0 ||
	    strcmp(b, "least-conn") == 0 || strcmp(b, "consistent-hash") == 0;
}

/*
 * The site-scoped values that must agree with each other, of the top level
 * (line 0) or of one site's effective conf (errors at its block's line).
 */
/* The key rules of the top level (line 0) or of one site. */
static void
validate_keys(
    const struct conf *c, struct conf_err *es, unsigned line, unsigned col)
{
	if (strcmp(c->cache_query, "keep") != 0 &&
	    strcmp(c->cache_query, "sort") != 0 &&
	    strcmp(c->cache_query, "drop") != 0)
		scoped_err(es, c, line, col, "cache_query",
		    "\"%s\": must be keep, sort or drop", c->cache_query);
	if (c->cache_query_drop.n > 0 && c->cache_query_keep.n > 0)
		scoped_err(es, c, line, col, "cache_query_keep",
		    "cannot be used with cache_query_drop");
}

/* node_name names this node in CDN-Loop (an RFC 8586 pseudonym, a
 * token) and in the purge bus's node list. */
static void
validate_node(const struct conf *c, struct conf_err *es)
{
	size_t n = strlen(c->node_name);

	if (n >= CONF_NODE_NAME_MAX)
		conf_err_key(es, c, "node_name", -1, "longer than %d bytes",
		    CONF_NODE_NAME_MAX - 1);
	for (size_t i = 0; i < n; i++)
		if (!http_is_tchar((unsigned char)c->node_name[i])) {
			conf_err_key(es, c, "node_name", -1,
			    "\"%s\": not a token (letters, digits and "
			    "!#$%%&'*+-.^_`|~)",
			    c->node_name);
			break;
		}
}

static void
validate_scoped(const struct conf *c, struct conf_err *es, unsigned line,
    unsigned col, int need_origin)
{
	if (need_origin && c->origin[0] == '\0' && c->origin_server.n == 0)
		scoped_err(es, c, line, col, line > 0 ? "site" : NULL,
		    line > 0
		        ? "no origin: set origin or origin_server in the "
		          "block or at the top level"
		        : "no origin: set origin in the config or --origin");
	validate_keys(c, es, line, col);
	if (!balance_known(c->origin_balance))
		scoped_err(es, c, line, col, "origin_balance",
		    "\"%s\": must be round-robin, weighted, least-conn or "
		    "consistent-hash",
		    c->origin_balance);
	if (c->origin_server.n > 64)
		scoped_err(es, c, line, col, "origin_server",
		    "more than 64 servers in one pool");
	if (c->parent_server.n > 64)
		scoped_err(es, c, line, col, "parent_server",
		    "more than 64 parents in one pool");
	if (c->parent_only && c->parent_server.n == 0)
		scoped_err(es, c, line, col, "parent_only",
		    "needs parent_server: without parents every miss would "
		    "fail");
	if (c->health_check_path[0] != '\0' && c->health_check_path[0] != '/')
		scoped_err(es, c, line, col, "health_check_path",
		    "must start with '/'");
	if (c->health_check_status != 0 && c->health_check_status < 100)
		scoped_err(es, c, line, col, "health_check_status",
		    "must be 0 (any 2xx or 3xx) or a status from 100 to 599");
}

/*
 * Sites: each complete (<keys_only>: its key rules valid), no host name
 * twice, default_site known.
 */
static void
validate_sites(
    const struct conf *c, struct conf_err *es, int keys_only, int had_errors)
{
	struct conf_err ses;
	int found = c->default_site[0] == '\0';

	for (unsigned i = 0; i < c->nsites; i++) {
		const struct conf_site *s = c->sites[i];

		ses = (struct conf_err){.err = es->err, .name = s->file};
		CDN_ASSERT(s->conf != NULL); /* conf_resolve_sites() ran */
		if (keys_only)
			validate_keys(s->conf, &ses, s->line, s->col);
		else
			validate_scoped(
			    s->conf, &ses, s->line, s->col, !had_errors);
		for (unsigned j = 0; j < s->nnames; j++) {
			if (strcasecmp(s->names[j], c->default_site) == 0)
				found = 1;
			for (unsigned k = 0; k <= i; k++) {
				const struct conf_site *o = c->sites[k];
				unsigned lim = k == i ? j : o->nnames;
				unsigned m;

				for (m = 0; m < lim; m++)
					if (strcmp(o->names[m], s->names[j]) ==
					    0)
						break;
				if (m < lim) {
					conf_err_at(&ses, s->line, s->col,
					    "site",
					    "%s is also named by the site at "
					    "%s:%u",
					    s->names[j], o->file, o->line);
					break;
				}
			}
		}
		es->nerr += ses.nerr;
	}
	if (!found)
		conf_err_key(es, c, "default_site", -1,
		    "\"%s\" is not a name of any site block", c->default_site);
	if (c->nsites == 0 && c->default_site[0] != '\0')
		conf_err_key(
		    es, c, "default_site", -1, "set without site blocks");
}

int
conf_validate(const struct conf *c, FILE *err)
{
	return conf_validate_after(c, err, 0);
}

int
conf_validate_after(const struct conf *c, FILE *err, int had_errors)
{
	struct conf_err es = {.err = err, .name = "edged"};
	char h1[HTTP_AUTHORITY_HOST_MAX], h2[HTTP_AUTHORITY_HOST_MAX];
	char ha[HTTP_AUTHORITY_HOST_MAX], lo[32], hi[32];
	uint16_t p1, p2, pa = 0;
	const char *why, *n1, *n2, *v1, *v2;
	unsigned nl;
	int e1, e2;

	MAGIC_CHECK(c, CONF_MAGIC);
	/* After errors, what is missing may be on a line that was refused
	 * (a misspelt "listen"): only what is there is checked. */
	if (!had_errors && c->listen.n == 0 && c->listen_tls.n == 0 &&
	    c->listen_h2c.n == 0 && !c->loc[CONF_IDX_listen].is_bad &&
	    !c->loc[CONF_IDX_listen_tls].is_bad &&
	    !c->loc[CONF_IDX_listen_h2c].is_bad)
		conf_err_key(&es, c, NULL, -1,
		    "no listen address: set listen in the config or --listen");
	/* With sites, each needs an origin; the top level may have none. */
	if (!had_errors && c->nsites == 0 &&
	    (c->origin == NULL || c->origin[0] == '\0') &&
	    c->origin_server.n == 0 && !c->loc[CONF_IDX_origin].is_bad &&
	    !c->loc[CONF_IDX_origin_server].is_bad)
		conf_err_key(&es, c, NULL, -1,
		    "no origin: set origin in the config or --origin");
	/*
	 * Values set through the parsers are valid already; these checks
	 * also cover a conf whose fields were filled in by hand.
	 */
	if (c->origin != NULL && c->origin[0] != '\0' &&
	    conf_parse_url(c->origin, &why) != CDN_OK)
		conf_err_key(&es, c, "origin", -1, "%s", why);
	if (c->admin_listen != NULL && c->admin_listen[0] != '\0' &&
	    http_listen_parse(c->admin_listen, ha, sizeof(ha), &pa, &why) !=
	        CDN_OK) {
		conf_err_key(&es, c, "admin_listen", -1, "%s", why);
		pa = 0;
	}
	nl = c->listen.n + c->listen_tls.n + c->listen_h2c.n;
	for (unsigned i = 0; i < nl; i++) {
		if (listen_at(c, i, h1, sizeof(h1), &p1, &n1, &e1, &v1, &why) !=
		    CDN_OK) {
			conf_err_key(&es, c, n1, e1, "%s", why);
			continue;
		}
		for (unsigned j = 0; j < i; j++) {
			if (listen_at(c, j, h2, sizeof(h2), &p2, &n2, &e2, &v2,
			        &why) == CDN_OK &&
			    p1 == p2 && strcmp(h1, h2) == 0) {
				if (strcmp(n1, n2) == 0)
					conf_err_key(&es, c, n1, e1,
					    "%s given twice", v1);
				else
					conf_err_key(&es, c, n1, e1,
					    "%s is also a %s address", v1, n2);
				break;
			}
		}
		if (pa != 0 && p1 == pa && strcmp(h1, ha) == 0)
			conf_err_key(&es, c, "admin_listen", -1,
			    "%s is also a listen address", c->admin_listen);
	}
	validate_scoped(c, &es, 0, 0, 0);
	validate_node(c, &es);
	conf_validate_bus(c, &es);
	validate_sites(c, &es, 0, had_errors);
	validate_tls(c, &es);
	validate_acl(c, &es, "admin_allow", &c->admin_allow);
	validate_acl(c, &es, "fleet_allow", &c->fleet_allow);
	validate_purge(c, &es);
	if (strcmp(c->access_log_format, "text") != 0 &&
	    strcmp(c->access_log_format, "json") != 0)
		conf_err_key(&es, c, "access_log_format", -1,
		    "\"%s\": must be text or json", c->access_log_format);
	for (unsigned i = 0; i < c->compress_types.n; i++) {
		const char *t = c->compress_types.v[i];
		const char *slash = strchr(t, '/'), *star = strchr(t, '*');

		/* type/subtype; one star at most, in the subtype, as in
		 * "text/" + star or "application/" + star + "+json". */
		if (slash == NULL || slash == t || slash[1] == '\0' ||
		    (star != NULL &&
		        (star < slash || strchr(star + 1, '*') != NULL)))
			conf_err_key(&es, c, "compress_types", (int)i,
			    "\"%s\": not type/subtype with at most one * in "
			    "the subtype",
			    t);
	}
	/* TCP_DEFER_ACCEPT takes seconds: no value is rounded unseen. */
	if (c->listen_defer_accept % 1000 != 0)
		conf_err_key(&es, c, "listen_defer_accept", -1,
		    "%llums: must be whole seconds (0: off)",
		    (unsigned long long)c->listen_defer_accept);
	if (c->max_request_line > c->max_header_size) {
		conf_format_size(lo, sizeof(lo), c->max_request_line);
		conf_format_size(hi, sizeof(hi), c->max_header_size);
		conf_err_key(&es, c, "max_request_line", -1,
		    "%s is larger than max_header_size (%s)", lo, hi);
	}
	return es.nerr > 0 ? CDN_EINVAL : CDN_OK;
}

int
conf_validate_keys(const struct conf *c, const char *prog, FILE *err)
{
	struct conf_err es = {.err = err, .name = prog};

	MAGIC_CHECK(c, CONF_MAGIC);
	validate_keys(c, &es, 0, 0);
	validate_node(c, &es);
	conf_validate_bus(c, &es);
	validate_sites(c, &es, 1, 0);
	return es.nerr > 0 ? CDN_EINVAL : CDN_OK;
}
