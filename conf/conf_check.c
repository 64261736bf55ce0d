/*
 * The checks of a conf against this machine (conf/conf.h: conf_check_host):
 * what start-up would trip over that no value alone can tell, such as a
 * listen address no resolver knows, a user that does not exist, a token file
 * that cannot be read, or a cache_dir whose parent is missing (a typo that
 * would otherwise run the node proxy-only).  edged runs them for -t and
 * before it starts, so that the two refuse the same configs with the same
 * messages.  Reloads do not: the machine was checked at start.  No state.
 */
#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf_int.h"
#include "http/http_authority.h"
#include "http/http_listen.h"

/* Whether HOST:PORT <v> of <name> (list element <elem>, or -1) resolves. */
static void
check_addr(const struct conf *c, struct conf_err *es, const char *name,
    int elem, const char *v)
{
	struct addrinfo hints, *res = NULL;
	char host[HTTP_AUTHORITY_HOST_MAX], port[8];
	const char *why;
	uint16_t portnum;
	int rc;

	if (v[0] == '\0' ||
	    http_listen_parse(v, host, sizeof(host), &portnum, &why) != CDN_OK)
		return; /* conf_validate() says why */
	snprintf(port, sizeof(port), "%u", (unsigned)portnum);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		conf_err_key(es, c, name, elem, "%s: %s", v,
		    rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return;
	}
	freeaddrinfo(res);
}

static void
check_addrs(const struct conf *c, struct conf_err *es, const char *name,
    const struct conf_strlist *l)
{
	for (unsigned i = 0; i < l->n; i++)
		check_addr(c, es, name, (int)i, l->v[i]);
}

/* A file edged reads at start: it must be there and readable. */
static void
check_readable(const struct conf *c, struct conf_err *es, const char *name,
    const char *path)
{
	if (path[0] != '\0' && access(path, R_OK) != 0)
		conf_err_key(es, c, name, -1, "%s: %s", path, strerror(errno));
}

/*
 * cache_dir is made at start if missing, but never its parents: a missing
 * parent is a typo in the config.  A cache_dir that exists but cannot be
 * used is the world's doing, and the node runs proxy-only and says so.
 */
static void
check_cache_dir(const struct conf *c, struct conf_err *es)
{
	struct stat st;
	char *parent, *slash;

	if (c->cache_dir[0] == '\0' || stat(c->cache_dir, &st) == 0 ||
	    errno != ENOENT)
		return;
	parent = cdn_xstrdup(c->cache_dir);
	/* "a/b/" names b: drop trailing slashes before cutting. */
	for (size_t n = strlen(parent); n > 1 && parent[n - 1] == '/'; n--)
		parent[n - 1] = '\0';
	slash = strrchr(parent, '/');
	if (slash == NULL)
		snprintf(parent, strlen(parent) + 1, ".");
	else if (slash == parent)
		slash[1] = '\0';
	else
		*slash = '\0';
	if (stat(parent, &st) != 0 && errno == ENOENT)
		conf_err_key(es, c, "cache_dir", -1,
		    "%s: its parent %s does not exist (edged makes the last "
		    "directory only)",
		    c->cache_dir, parent);
	free(parent);
}

int
conf_check_host(const struct conf *c, FILE *err)
{
	struct conf_err es = {.err = err, .name = "edged"};

	MAGIC_CHECK(c, CONF_MAGIC);
	if (c->user[0] != '\0' && getpwnam(c->user) == NULL)
		conf_err_key(&es, c, "user", -1, "%s: no such user", c->user);
	check_addrs(c, &es, "listen", &c->listen);
	check_addrs(c, &es, "listen_tls", &c->listen_tls);
	check_addrs(c, &es, "listen_h2c", &c->listen_h2c);
	check_addr(c, &es, "admin_listen", -1, c->admin_listen);
	check_addr(c, &es, "purge_listen", -1, c->purge_listen);
	check_cache_dir(c, &es);
	if (c->purge_listen[0] != '\0')
		check_readable(c, &es, "purge_token_file", c->purge_token_file);
	if (c->admin_listen[0] != '\0')
		check_readable(c, &es, "admin_token_file", c->admin_token_file);
	return es.nerr > 0 ? CDN_EINVAL : CDN_OK;
}
