/*
 * purged: the purge API daemon (purge/purge.h, docs/purge.md).
 *
 *   purged [-c FILE | --config-fd N] [--cache-dir DIR] [--listen HOST:PORT]
 *          [--token-file F] [--allow CIDR|loopback]... [--audit-log F]
 *          [--error-log F] [--log-level L] [--ready-file F]
 *          [--cache-query keep|sort|drop] [--cache-key-scheme 0|1]
 *          [--cache-query-drop P]... [--cache-query-keep P]...
 *          [--bus URL] [--bus-password-file F] [--bus-retention N]
 *          [--node-name NAME] [--listen-fd N]
 *
 * It reads edged's configuration file (-c), or one handed over on an open
 * descriptor (--config-fd: edged starts it so as a child when purge_listen
 * is set, edge_purged.c), and uses of it the purge settings, cache_dir,
 * the log settings, and the sites with their key rules: a URL purge builds
 * its keys with the rules of the site the URL's host names, exactly as
 * edged stores them (cache_sites_*, cache/cache_site.c).  Each flag sets
 * one directive over the file (--listen is purge_listen, --token-file
 * purge_token_file, --allow purge_allow, --audit-log purge_audit_log, the
 * others their namesakes), as edged's flags do.  The config's ready_file
 * is edged's; purged writes only --ready-file.  With purge_bus it also
 * reads and publishes the purge bus (purge_bus.c); purge_listen is then
 * optional: without it purged only applies what the bus brings.
 * --listen-fd serves purge_listen on a socket edged bound (and keeps, so
 * that purges queue there while one purged replaces another).  Exit status: 2
 * for bad flags or configuration, 1 for start-up failures, 0 after SIGTERM.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "common/cdn_log.h"
#include "conf/conf.h"
#include "http/http_listen.h"
#include "purge/purge.h"
#include "purge/purge_bus.h"

/* On SIGTERM, how long purges already received may take to be answered. */
#define STOP_DRAIN_MS 2000

struct purged {
	struct event_base *base;
	struct http_server *http;
	struct evconnlistener *lis;
	struct event *sig_term, *sig_int, *sig_hup, *sig_usr1;
	struct event *stop_timer;
	struct purge_api api;
};

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: purged [-c FILE | --config-fd N] [--cache-dir DIR] "
	    "[--listen HOST:PORT]\n"
	    "              [--token-file F] [--allow ADDRESS[/PREFIX]|"
	    "loopback]...\n"
	    "              [--audit-log F] [--error-log F] "
	    "[--log-level err|warn|info|debug]\n"
	    "              [--ready-file F] [--cache-query keep|sort|drop]\n"
	    "              [--cache-key-scheme 0|1] [--cache-query-drop P]... "
	    "[--cache-query-keep P]...\n"
	    "              [--bus redis://[USER@]HOST:PORT[/STREAM]] "
	    "[--bus-password-file F]\n"
	    "              [--bus-retention N] [--node-name NAME] "
	    "[--listen-fd N]\n"
	    "cache_dir, and purge_listen with purge_token_file or purge_bus, "
	    "are required,\nfrom the file or the flags.\n");
}

static void
on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct purged *d = arg;

	(void)l;
	http_server_adopt(d->http, fd, sa, salen);
}

static void
on_drained(void *arg)
{
	struct purged *d = arg;

	event_base_loopexit(d->base, NULL);
}

static void
on_stop_timer(evutil_socket_t fd, short what, void *arg)
{
	struct purged *d = arg;

	(void)fd;
	(void)what;
	CDN_LOG(CDN_LOG_WARN, "purge", "stop: closing the connections left");
	http_server_close_all(d->http);
	event_base_loopexit(d->base, NULL);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct purged *d = arg;

	(void)what;
	/* SIGUSR1 from edged (or logrotate) after a rotation; SIGHUP too. */
	if (sig == SIGHUP || sig == SIGUSR1) {
		cdn_log_reopen();
		CDN_LOG(CDN_LOG_INFO, "purge", "%s: logs reopened",
		    sig == SIGHUP ? "SIGHUP" : "SIGUSR1");
		if (purge_audit_open(&d->api) != CDN_OK)
			CDN_LOG(CDN_LOG_WARN, "purge",
			    "audit log not reopened: still the old file");
		return;
	}
	CDN_LOG(CDN_LOG_INFO, "purge", "%s: stopping",
	    sig == SIGTERM ? "SIGTERM" : "SIGINT");
	/* edged replaces us on SIGTERM when its configuration is reloaded:
	 * close the listener at once (the next purged binds it) and answer
	 * every purge already received before exiting. */
	if (d->lis != NULL) {
		struct timeval tv = {
		    STOP_DRAIN_MS / 1000, (STOP_DRAIN_MS % 1000) * 1000};

		evconnlistener_free(d->lis);
		d->lis = NULL;
		d->stop_timer = evtimer_new(d->base, on_stop_timer, d);
		if (d->stop_timer != NULL)
			evtimer_add(d->stop_timer, &tv);
		http_server_drain(d->http, on_drained, d);
		return;
	}
	event_base_loopexit(d->base, NULL);
}

enum {
	OPT_CONFIG_FD = 1,
	OPT_READY_FILE,
	OPT_LISTEN_FD,
	OPT_HELP,
	OPT_VERSION,
	OPT_DIRECTIVE, /* + the index in directive_opts[] */
};

/* The flags that set a directive, and which (as edged's flags do). */
static const struct {
	const char *flag, *directive;
} directive_opts[] = {
    {"--cache-dir", "cache_dir"},
    {"--listen", "purge_listen"},
    {"--token-file", "purge_token_file"},
    {"--allow", "purge_allow"},
    {"--audit-log", "purge_audit_log"},
    {"--error-log", "error_log"},
    {"--log-level", "log_level"},
    {"--cache-query", "cache_query"},
    {"--cache-key-scheme", "cache_key_scheme"},
    {"--cache-query-drop", "cache_query_drop"},
    {"--cache-query-keep", "cache_query_keep"},
    {"--bus", "purge_bus"},
    {"--bus-password-file", "purge_bus_password_file"},
    {"--bus-retention", "purge_bus_retention"},
    {"--node-name", "node_name"},
};

#define NDIRECTIVE_OPTS (sizeof(directive_opts) / sizeof(directive_opts[0]))

static const struct option own_opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"config-fd", required_argument, NULL, OPT_CONFIG_FD},
    {"ready-file", required_argument, NULL, OPT_READY_FILE},
    {"listen-fd", required_argument, NULL, OPT_LISTEN_FD},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
};

#define NOWN_OPTS (sizeof(own_opts) / sizeof(own_opts[0]))

/* getopt_long()'s table: ours, then directive_opts, then the end. */
static void
long_opts_fill(struct option *o)
{
	memcpy(o, own_opts, sizeof(own_opts));
	for (size_t i = 0; i < NDIRECTIVE_OPTS; i++) {
		o[NOWN_OPTS + i].name = directive_opts[i].flag + 2;
		o[NOWN_OPTS + i].has_arg = required_argument;
		o[NOWN_OPTS + i].flag = NULL;
		o[NOWN_OPTS + i].val = OPT_DIRECTIVE + (int)i;
	}
	memset(&o[NOWN_OPTS + NDIRECTIVE_OPTS], 0, sizeof(*o));
}

/* <fd> if it is a listening socket (made non-blocking), else -1 after
 * logging why. */
static int
listen_fd_check(int fd)
{
	int on = 0, flags;
	socklen_t len = sizeof(on);

	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) != 0 || !on) {
		CDN_LOG(CDN_LOG_ERR, "purge",
		    "--listen-fd %d: not a listening socket", fd);
		return -1;
	}
	flags = fcntl(fd, F_GETFL);
	if (flags == -1 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) == -1) {
		CDN_LOG(CDN_LOG_ERR, "purge", "--listen-fd %d: %s", fd,
		    strerror(errno));
		return -1;
	}
	return fd;
}

/* A descriptor number as --config-fd takes it; -1 if it is none. */
static int
parse_fd(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 0 || v > INT_MAX)
		return -1;
	return (int)v;
}

/*
 * The configuration: defaults, the file (-c) or descriptor (--config-fd),
 * then the flags.  NULL after printing why.
 */
static struct conf *
load_conf(
    const char *file, int fd, const struct conf_flag *flags, unsigned nflags)
{
	struct conf *c = conf_new_defaults();
	char name[64];
	int rc = CDN_OK;

	if (file != NULL) {
		rc = conf_load_file(c, file, stderr);
	} else if (fd >= 0) {
		snprintf(name, sizeof(name), "config-fd %d", fd);
		rc = conf_load_fd(c, fd, name, stderr);
		close(fd); /* read once; nothing else of ours uses it */
	}
	if (rc == CDN_OK)
		rc = conf_apply_flags(c, "purged", flags, nflags, stderr);
	if (rc == CDN_OK)
		rc = conf_validate_keys(c, "purged", stderr);
	/* With purge_bus alone, purged only applies the bus (no API). */
	if (rc == CDN_OK &&
	    (c->cache_dir[0] == '\0' ||
	        (c->purge_listen[0] == '\0' && c->purge_bus[0] == '\0') ||
	        (c->purge_listen[0] != '\0' &&
	            c->purge_token_file[0] == '\0'))) {
		fprintf(stderr,
		    "purged: error: cache_dir, and purge_listen with "
		    "purge_token_file or purge_bus, are required (in the "
		    "file, or --cache-dir, --listen, --token-file and "
		    "--bus)\n");
		rc = CDN_EINVAL;
	}
	if (rc != CDN_OK)
		conf_unref(&c);
	return c;
}

/* The ACL of purge_allow.  CDN_EINVAL after printing why. */
static int
load_acl(const struct conf *c, struct http_acl *acl)
{
	const char *why;

	for (unsigned i = 0; i < c->purge_allow.n; i++) {
		if (http_acl_add(acl, c->purge_allow.v[i], &why) != CDN_OK) {
			fprintf(stderr,
			    "purged: error: purge_allow \"%s\": %s (write "
			    "ADDRESS[/PREFIX] or loopback)\n",
			    c->purge_allow.v[i], why);
			return CDN_EINVAL;
		}
	}
	return CDN_OK;
}

int
main(int argc, char **argv)
{
	const char *file = NULL, *ready = NULL, *audit_log, *dir;
	struct option long_opts[NOWN_OPTS + NDIRECTIVE_OPTS + 1];
	struct conf_flag *flags;
	struct http_server_limits lim;
	struct cache_store_conf sc;
	struct cache_open_err oerr;
	struct cache_sites *sites = NULL;
	struct conf *c = NULL;
	struct purged d;
	unsigned nflags = 0;
	char audit_default[4096], *bus_password = NULL;
	int opt, fd, cfd = -1, lfd = -1, rc = 1;

	memset(&d, 0, sizeof(d));
	d.api.magic = PURGE_API_MAGIC;
	long_opts_fill(long_opts);
	flags = cdn_xcalloc((size_t)argc + 1, sizeof(*flags));
	while ((opt = getopt_long(argc, argv, "c:", long_opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			file = optarg;
			break;
		case OPT_CONFIG_FD:
			cfd = parse_fd(optarg);
			if (cfd == -1) {
				fprintf(stderr,
				    "purged: error: --config-fd: not a "
				    "descriptor number\n");
				goto usage_fail;
			}
			break;
		case OPT_READY_FILE:
			ready = optarg;
			break;
		case OPT_LISTEN_FD:
			lfd = parse_fd(optarg);
			if (lfd == -1) {
				fprintf(stderr,
				    "purged: error: --listen-fd: not a "
				    "descriptor number\n");
				goto usage_fail;
			}
			break;
		case OPT_HELP:
			usage(stdout);
			free(flags);
			return 0;
		case OPT_VERSION:
			printf("purged %s\n", PACKAGE_VERSION);
			free(flags);
			return 0;
		default:
			if (opt < OPT_DIRECTIVE ||
			    opt >= OPT_DIRECTIVE + (int)NDIRECTIVE_OPTS)
				goto usage_fail;
			flags[nflags].flag =
			    directive_opts[opt - OPT_DIRECTIVE].flag;
			flags[nflags].directive =
			    directive_opts[opt - OPT_DIRECTIVE].directive;
			flags[nflags].value = optarg;
			nflags++;
			break;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "purged: error: unexpected argument \"%s\"\n",
		    argv[optind]);
		goto usage_fail;
	}
	if (file != NULL && cfd >= 0) {
		fprintf(stderr,
		    "purged: error: -c and --config-fd: one configuration "
		    "only\n");
		goto usage_fail;
	}
	c = load_conf(file, cfd, flags, nflags);
	free(flags);
	flags = NULL;
	if (c == NULL || load_acl(c, &d.api.acl) != CDN_OK)
		goto usage_fail;
	dir = c->cache_dir;
	sites = cache_sites_new(c);
	d.api.sites = sites;

	cdn_log_level_now = (int)c->log_level;
	if (cdn_log_open(c->error_log) != CDN_OK)
		goto out_acl;
	if (c->purge_listen[0] != '\0' &&
	    http_tokens_load(&d.api.tokens, c->purge_token_file, 0, "purge",
	        "purge_token_file") != CDN_OK)
		goto out_log;
	if (c->purge_bus_password_file[0] != '\0') {
		bus_password = conf_bus_password_load(
		    c->purge_bus_password_file, "purged");
		if (bus_password == NULL)
			goto out_tokens;
	}
	audit_log = c->purge_audit_log;
	if (audit_log[0] == '\0') {
		snprintf(audit_default, sizeof(audit_default),
		    "%s/purge_audit.log", dir);
		audit_log = audit_default;
	}
	d.api.audit_path = cdn_xstrdup(audit_log);
	if (purge_audit_open(&d.api) != CDN_OK)
		goto out_tokens;

	memset(&sc, 0, sizeof(sc));
	sc.dir = dir;
	sc.disk_bytes = 0; /* adopt edged's map size */
	sc.memory_bytes = 1 << 20;
	sc.max_object_bytes = 0;
	/* As edged: LMDB asks that processes do not mix the two ways. */
	sc.is_preallocated = c->cache_preallocate != 0;
	sc.high_water_pct = 90;
	sc.low_water_pct = 80;
	d.api.store = cache_store_open_diag(&sc, &oerr);
	if (d.api.store == NULL) {
		/* edged moves a damaged cache aside when it starts (it waits
		 * for this process to close it): never two movers. */
		CDN_LOG(CDN_LOG_ERR, "purge",
		    "cache %s %s (%s): not starting%s", dir,
		    oerr.kind == CACHE_OPEN_DAMAGED ? "is damaged"
		                                    : "cannot be opened",
		    oerr.why,
		    oerr.kind == CACHE_OPEN_DAMAGED
		        ? "; edged moves it aside at its next start"
		        : "");
		goto out_audit;
	}

	signal(SIGPIPE, SIG_IGN);
	d.base = event_base_new();
	d.api.base = d.base;
	if (c->purge_bus[0] != '\0') {
		d.api.bus = purge_bus_new(&d.api, c, d.base, bus_password);
		if (d.api.bus == NULL)
			goto out_base;
	}
	fd = c->purge_listen[0] == '\0' ? -2
	    : lfd >= 0                  ? listen_fd_check(lfd)
	               : http_listen_socket(c->purge_listen, 0, 128, "purge");
	if (fd == -1)
		goto out_base;
	memset(&lim, 0, sizeof(lim));
	lim.parse.max_request_line = 16384;
	lim.parse.max_header_bytes = 65536;
	lim.parse.max_headers = 100;
	lim.max_body_size = PURGE_MAX_BODY;
	lim.header_timeout_ms = 10000;
	lim.keepalive_timeout_ms = 75000;
	lim.body_timeout_ms = 30000;
	lim.send_timeout_ms = 30000;
	lim.max_connections = 256;
	d.http = http_server_new(d.base, &lim, &purge_api_handler, &d.api);
	if (fd >= 0) {
		(void)http_listen_nodelay(fd, "purged");
		d.lis = evconnlistener_new(d.base, on_accept, &d,
		    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
		if (d.lis == NULL) {
			close(fd);
			goto out_http;
		}
	}
	d.sig_term = evsignal_new(d.base, SIGTERM, on_signal, &d);
	d.sig_int = evsignal_new(d.base, SIGINT, on_signal, &d);
	d.sig_hup = evsignal_new(d.base, SIGHUP, on_signal, &d);
	d.sig_usr1 = evsignal_new(d.base, SIGUSR1, on_signal, &d);
	event_add(d.sig_term, NULL);
	event_add(d.sig_int, NULL);
	event_add(d.sig_hup, NULL);
	event_add(d.sig_usr1, NULL);
	CDN_LOG(CDN_LOG_INFO, "purge", "purged on %s, cache %s, purge seq %llu",
	    c->purge_listen[0] != '\0' ? c->purge_listen : "(bus only)", dir,
	    (unsigned long long)cache_store_purge_seq(d.api.store));
	if (ready != NULL && cdn_ready_file_write(ready) != CDN_OK) {
		CDN_LOG(CDN_LOG_ERR, "purge", "ready file %s: %s", ready,
		    strerror(errno));
		goto out_sig;
	}
	/* A reclaim cut short by a restart is redone. */
	if (cache_store_purge_seq(d.api.store) > 0)
		purge_reclaim_start(&d.api);
	event_base_dispatch(d.base);
	rc = 0;

out_sig:
	event_free(d.sig_term);
	event_free(d.sig_int);
	event_free(d.sig_hup);
	event_free(d.sig_usr1);
	if (d.stop_timer != NULL)
		event_free(d.stop_timer);
	if (d.lis != NULL)
		evconnlistener_free(d.lis);
out_http:
	purge_reclaim_stop(&d.api);
	http_server_free(&d.http);
out_base:
	purge_bus_free(&d.api.bus);
	event_base_free(d.base);
	cache_store_close(&d.api.store);
out_audit:
	if (d.api.audit != NULL)
		fclose(d.api.audit);
	free(d.api.audit_path);
out_tokens:
	if (bus_password != NULL) {
		explicit_bzero(bus_password, strlen(bus_password));
		free(bus_password);
	}
	http_tokens_free(&d.api.tokens);
out_log:
	cdn_log_close();
out_acl:
	http_acl_free(&d.api.acl);
	cache_sites_free(&sites);
	conf_unref(&c);
	libevent_global_shutdown();
	return rc;

usage_fail:
	usage(stderr);
	free(flags);
	http_acl_free(&d.api.acl);
	conf_unref(&c);
	return 2;
}
