/*
 * The purge bus's directives (docs/fleet.md): the purge_bus URL, parsed
 * once here for conf validation, purged and edgectl alike.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf_int.h"

#define BUS_DEFAULT_STREAM "edged:purges"

/* A stream name: printable, no blank, so that logs and keys stay one
 * word; Redis itself would take any bytes. */
static int
stream_name_ok(const char *s)
{
	if (*s == '\0' || strlen(s) >= CONF_BUS_STREAM_MAX)
		return 0;
	for (; *s != '\0'; s++)
		if (*s <= ' ' || *s >= 0x7f)
			return 0;
	return 1;
}

int
conf_bus_url_parse(const char *s, struct conf_bus_url *out, const char **why)
{
	const char *p, *at, *slash, *colon, *hend;
	char *end;
	unsigned long port;
	size_t n;

	memset(out, 0, sizeof(*out));
	if (strncmp(s, "rediss://", 9) == 0) {
		*why =
		    "hiredis from Debian has no TLS: use redis:// to a Redis "
		    "replica beside the nodes, see docs/fleet.md";
		return CDN_EINVAL;
	}
	if (strncmp(s, "redis://", 8) != 0) {
		*why = "not redis://[USER@]HOST:PORT[/STREAM]";
		return CDN_EINVAL;
	}
	p = s + 8;
	slash = strchr(p, '/');
	hend = slash != NULL ? slash : p + strlen(p);
	at = memchr(p, '@', (size_t)(hend - p));
	if (at != NULL) {
		n = (size_t)(at - p);
		if (memchr(p, ':', n) != NULL) {
			*why = "no password in the URL: put it in "
			       "purge_bus_password_file";
			return CDN_EINVAL;
		}
		if (n == 0 || n >= sizeof(out->user)) {
			*why = "the user name is empty or too long";
			return CDN_EINVAL;
		}
		memcpy(out->user, p, n);
		p = at + 1;
	}
	colon = NULL;
	for (const char *q = p; q < hend; q++)
		if (*q == ':')
			colon = q;
	if (colon == NULL || colon == p || p[0] == '[') {
		*why =
		    "give HOST:PORT (a host name or IPv4 address and a port)";
		return CDN_EINVAL;
	}
	n = (size_t)(colon - p);
	if (n >= sizeof(out->host)) {
		*why = "the host name is too long";
		return CDN_EINVAL;
	}
	memcpy(out->host, p, n);
	port = strtoul(colon + 1, &end, 10);
	if (end != hend || colon + 1 == hend || port == 0 || port > 65535) {
		*why = "the port must be 1 to 65535";
		return CDN_EINVAL;
	}
	out->port = (int)port;
	if (slash == NULL || slash[1] == '\0') {
		snprintf(
		    out->stream, sizeof(out->stream), "%s", BUS_DEFAULT_STREAM);
	} else if (!stream_name_ok(slash + 1)) {
		*why = "the stream name must be 1 to 200 printable bytes "
		       "without blanks";
		return CDN_EINVAL;
	} else {
		snprintf(out->stream, sizeof(out->stream), "%s", slash + 1);
	}
	return CDN_OK;
}

void
conf_validate_bus(const struct conf *c, struct conf_err *es)
{
	struct conf_bus_url u;
	const char *why;

	if (strcmp(c->purge_bus_offline, "revalidate") != 0 &&
	    strcmp(c->purge_bus_offline, "serve") != 0)
		conf_err_key(es, c, "purge_bus_offline", -1,
		    "\"%s\": must be revalidate or serve",
		    c->purge_bus_offline);
	if (c->purge_bus[0] == '\0')
		return;
	if (conf_bus_url_parse(c->purge_bus, &u, &why) != CDN_OK)
		conf_err_key(
		    es, c, "purge_bus", -1, "\"%s\": %s", c->purge_bus, why);
	if (c->purge_bus_password_file[0] != '\0' &&
	    access(c->purge_bus_password_file, R_OK) != 0)
		conf_err_key(es, c, "purge_bus_password_file", -1, "%s: %s",
		    c->purge_bus_password_file, strerror(errno));
	if (c->cache_dir[0] == '\0')
		conf_err_key(es, c, "purge_bus", -1,
		    "needs cache_dir (the applied purges are stored there)");
}

char *
conf_bus_password_load(const char *path, const char *what)
{
	char line[1024], *pw;
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL) {
		fprintf(stderr, "%s: error: purge_bus_password_file %s: %s\n",
		    what, path, strerror(errno));
		return NULL;
	}
	if (fgets(line, sizeof(line), f) == NULL) {
		fclose(f);
		fprintf(stderr,
		    "%s: error: purge_bus_password_file %s: empty\n", what,
		    path);
		return NULL;
	}
	fclose(f);
	n = strcspn(line, "\r\n");
	line[n] = '\0';
	if (n == 0) {
		explicit_bzero(line, sizeof(line));
		fprintf(stderr,
		    "%s: error: purge_bus_password_file %s: empty first line\n",
		    what, path);
		return NULL;
	}
	pw = cdn_xstrdup(line);
	explicit_bzero(line, sizeof(line));
	return pw;
}
