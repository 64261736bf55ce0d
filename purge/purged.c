/*
 * purged: the purge API daemon (purge/purge.h, docs/purge.md).
 *
 *   purged --cache-dir DIR --listen HOST:PORT --token-file F
 *          [--allow CIDR|loopback]... [--audit-log F] [--error-log F]
 *          [--log-level L] [--ready-file F] [--cache-query keep|sort|drop]
 *          [--cache-key-scheme] [--cache-query-drop P]...
 *          [--cache-query-keep P]...
 *
 * edged starts it as a child when purge_listen is set, passing its own
 * settings; it can also run under a service manager of its own.  The key
 * flags must match edged's, or URL purges would name other keys.  Exit
 * status: 2 for bad flags, 1 for start-up failures, 0 after SIGTERM.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "common/cdn_log.h"
#include "http/http_listen.h"
#include "purge/purge.h"

#define MAX_PARAMS 64

struct purged {
	struct event_base *base;
	struct http_server *http;
	struct evconnlistener *lis;
	struct event *sig_term, *sig_int, *sig_hup;
	struct purge_api api;
};

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: purged --cache-dir DIR --listen HOST:PORT --token-file F\n"
	    "              [--allow ADDRESS[/PREFIX]|loopback]... "
	    "[--audit-log F]\n"
	    "              [--error-log F] [--log-level err|warn|info|debug]\n"
	    "              [--ready-file F] [--cache-query keep|sort|drop]\n"
	    "              [--cache-key-scheme] [--cache-query-drop P]... "
	    "[--cache-query-keep P]...\n");
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
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct purged *d = arg;

	(void)what;
	if (sig == SIGHUP) {
		cdn_log_reopen();
		if (purge_audit_open(&d->api) != CDN_OK)
			CDN_LOG(CDN_LOG_WARN, "purge",
			    "audit log not reopened: still the old file");
		return;
	}
	CDN_LOG(CDN_LOG_INFO, "purge", "%s: stopping",
	    sig == SIGTERM ? "SIGTERM" : "SIGINT");
	event_base_loopexit(d->base, NULL);
}

enum {
	OPT_CACHE_DIR = 1,
	OPT_LISTEN,
	OPT_TOKEN_FILE,
	OPT_ALLOW,
	OPT_AUDIT_LOG,
	OPT_ERROR_LOG,
	OPT_LOG_LEVEL,
	OPT_READY_FILE,
	OPT_QUERY,
	OPT_KEY_SCHEME,
	OPT_QUERY_DROP,
	OPT_QUERY_KEEP,
	OPT_HELP,
	OPT_VERSION,
};

static const struct option long_opts[] = {
    {"cache-dir", required_argument, NULL, OPT_CACHE_DIR},
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
    {"allow", required_argument, NULL, OPT_ALLOW},
    {"audit-log", required_argument, NULL, OPT_AUDIT_LOG},
    {"error-log", required_argument, NULL, OPT_ERROR_LOG},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"ready-file", required_argument, NULL, OPT_READY_FILE},
    {"cache-query", required_argument, NULL, OPT_QUERY},
    {"cache-key-scheme", no_argument, NULL, OPT_KEY_SCHEME},
    {"cache-query-drop", required_argument, NULL, OPT_QUERY_DROP},
    {"cache-query-keep", required_argument, NULL, OPT_QUERY_KEEP},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

int
main(int argc, char **argv)
{
	const char *dir = NULL, *listen_at = NULL, *token_file = NULL;
	const char *audit_log = NULL, *error_log = "", *ready = NULL;
	const char *query = "keep", *why;
	const char *drop[MAX_PARAMS], *keep[MAX_PARAMS];
	unsigned ndrop = 0, nkeep = 0, nallow = 0;
	struct http_server_limits lim;
	struct cache_store_conf sc;
	struct cache_open_err oerr;
	struct purged d;
	enum cdn_log_level level = CDN_LOG_INFO;
	char audit_default[4096];
	int opt, fd, rc = 1;

	memset(&d, 0, sizeof(d));
	d.api.magic = PURGE_API_MAGIC;
	while ((opt = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		switch (opt) {
		case OPT_CACHE_DIR:
			dir = optarg;
			break;
		case OPT_LISTEN:
			listen_at = optarg;
			break;
		case OPT_TOKEN_FILE:
			token_file = optarg;
			break;
		case OPT_ALLOW:
			if (http_acl_add(&d.api.acl, optarg, &why) != CDN_OK) {
				fprintf(stderr,
				    "purged: --allow %s: %s (write "
				    "ADDRESS[/PREFIX] or loopback)\n",
				    optarg, why);
				goto usage_fail;
			}
			nallow++;
			break;
		case OPT_AUDIT_LOG:
			audit_log = optarg;
			break;
		case OPT_ERROR_LOG:
			error_log = optarg;
			break;
		case OPT_LOG_LEVEL:
			if (cdn_log_level_parse(optarg, &level) != CDN_OK) {
				fprintf(stderr,
				    "purged: --log-level: err, warn, info or "
				    "debug\n");
				goto usage_fail;
			}
			break;
		case OPT_READY_FILE:
			ready = optarg;
			break;
		case OPT_QUERY:
			query = optarg;
			break;
		case OPT_KEY_SCHEME:
			d.api.key_rules.include_scheme = 1;
			break;
		case OPT_QUERY_DROP:
		case OPT_QUERY_KEEP:
			if ((opt == OPT_QUERY_DROP ? ndrop : nkeep) ==
			    MAX_PARAMS) {
				fprintf(
				    stderr, "purged: too many parameters\n");
				goto usage_fail;
			}
			if (opt == OPT_QUERY_DROP)
				drop[ndrop++] = optarg;
			else
				keep[nkeep++] = optarg;
			break;
		case OPT_HELP:
			usage(stdout);
			http_acl_free(&d.api.acl);
			return 0;
		case OPT_VERSION:
			printf("purged %s\n", PACKAGE_VERSION);
			http_acl_free(&d.api.acl);
			return 0;
		default:
			goto usage_fail;
		}
	}
	if (optind != argc || dir == NULL || listen_at == NULL ||
	    token_file == NULL) {
		fprintf(stderr,
		    "purged: --cache-dir, --listen and --token-file are "
		    "required\n");
		goto usage_fail;
	}
	/* The same key rules as edge_cache_init() builds from edged's. */
	if (strcmp(query, "sort") == 0)
		d.api.key_rules.query_mode = CACHE_QUERY_SORT;
	else if (strcmp(query, "drop") == 0)
		d.api.key_rules.query_mode = CACHE_QUERY_DROP;
	else if (strcmp(query, "keep") == 0)
		d.api.key_rules.query_mode = CACHE_QUERY_KEEP;
	else {
		fprintf(stderr, "purged: --cache-query: keep, sort or drop\n");
		goto usage_fail;
	}
	if (ndrop > 0 || nkeep > 0) {
		d.api.key_rules.sort_after_filter =
		    d.api.key_rules.query_mode == CACHE_QUERY_SORT;
		d.api.key_rules.query_mode = ndrop > 0
		    ? CACHE_QUERY_DROP_LISTED
		    : CACHE_QUERY_KEEP_LISTED;
		d.api.key_rules.params = ndrop > 0 ? drop : keep;
		d.api.key_rules.nparams = ndrop > 0 ? ndrop : nkeep;
	}
	if (nallow == 0)
		CDN_ASSERT(
		    http_acl_add(&d.api.acl, "loopback", &why) == CDN_OK);

	cdn_log_level_now = (int)level;
	if (cdn_log_open(error_log) != CDN_OK)
		goto out_acl;
	if (http_tokens_load(&d.api.tokens, token_file, 0, "purge",
	        "--token-file") != CDN_OK)
		goto out_log;
	if (audit_log == NULL) {
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
	fd = http_listen_socket(listen_at, 0, 128, "purge");
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
	d.api.base = d.base;
	d.http = http_server_new(d.base, &lim, &purge_api_handler, &d.api);
	d.lis = evconnlistener_new(d.base, on_accept, &d,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (d.lis == NULL) {
		close(fd);
		goto out_http;
	}
	d.sig_term = evsignal_new(d.base, SIGTERM, on_signal, &d);
	d.sig_int = evsignal_new(d.base, SIGINT, on_signal, &d);
	d.sig_hup = evsignal_new(d.base, SIGHUP, on_signal, &d);
	event_add(d.sig_term, NULL);
	event_add(d.sig_int, NULL);
	event_add(d.sig_hup, NULL);
	CDN_LOG(CDN_LOG_INFO, "purge", "purged on %s, cache %s, purge seq %llu",
	    listen_at, dir,
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
	evconnlistener_free(d.lis);
out_http:
	purge_reclaim_stop(&d.api);
	http_server_free(&d.http);
out_base:
	event_base_free(d.base);
	cache_store_close(&d.api.store);
out_audit:
	if (d.api.audit != NULL)
		fclose(d.api.audit);
	free(d.api.audit_path);
out_tokens:
	http_tokens_free(&d.api.tokens);
out_log:
	cdn_log_close();
out_acl:
	http_acl_free(&d.api.acl);
	libevent_global_shutdown();
	return rc;

usage_fail:
	usage(stderr);
	http_acl_free(&d.api.acl);
	return 2;
}
