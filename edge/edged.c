/*
 * edged: the edge caching node's entry point.  Configuration errors exit 2,
 * start-up failures 1, a drained shutdown 0.  -t also loads the TLS
 * certificates, keys and OCSP responses, as start-up would.  --takeover
 * starts a new edged on the listeners of the running one (an upgrade,
 * edge_takeover.c).
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/cdn_log.h"
#include "common/cdn_priv.h"
#include "conf/conf.h"
#include "edge/edge.h"
#include "edge/edge_tls.h"

/* Remove every <flag> from argv; whether there was one.  --takeover is
 * edged's own, not a directive, and a reload parses argv again. */
static int
take_flag(int *argc, char **argv, const char *flag)
{
	int found = 0, j = 1;

	for (int i = 1; i < *argc; i++) {
		if (strcmp(argv[i], flag) == 0)
			found = 1;
		else
			argv[j++] = argv[i];
	}
	argv[j] = NULL;
	*argc = j;
	return found;
}

int
main(int argc, char **argv)
{
	struct conf *conf = NULL;
	enum conf_action action;
	struct edge_tls *tls = NULL;
	struct edge *e;
	int rc, takeover;

	takeover = take_flag(&argc, argv, "--takeover");
	if (conf_argv_parse(argc, argv, stderr, &conf, &action) != CDN_OK)
		return 2;
	/* -t refuses what start-up would, with the same messages. */
	if ((action == CONF_ACT_TEST || action == CONF_ACT_RUN) &&
	    conf_check_host(conf, stderr) != CDN_OK) {
		conf_unref(&conf);
		return 2;
	}
	switch (action) {
	case CONF_ACT_HELP:
		conf_argv_print_help(stdout, "edged");
		printf("\nUpgrade:\n  --takeover  take over the listeners of "
		       "the edged running with this configuration, which "
		       "then drains\n");
		conf_unref(&conf);
		return 0;
	case CONF_ACT_VERSION:
		printf("edged %s\n", PACKAGE_VERSION);
		conf_unref(&conf);
		return 0;
	case CONF_ACT_DUMP:
		conf_dump(stdout, conf);
		conf_unref(&conf);
		return 0;
	case CONF_ACT_TEST:
		cdn_log_level_now = (int)conf->log_level;
		if (edge_tls_new(conf, 0, &tls) != CDN_OK) {
			conf_unref(&conf);
			return 2;
		}
		edge_tls_free(&tls);
		fprintf(stderr, "edged: configuration %s is ok\n",
		    conf->config != NULL ? conf->config : "(flags only)");
		conf_unref(&conf);
		return 0;
	case CONF_ACT_RUN:
		break;
	}
	cdn_log_level_now = (int)conf->log_level;
	/* A file-size limit (ulimit -f) must fail the write that reaches it
	 * (EFBIG: the store stops storing and says so), not kill the node. */
	signal(SIGXFSZ, SIG_IGN);
	/* Before anything is opened: what edged creates, its user owns. */
	if (cdn_priv_become(conf->user) != CDN_OK) {
		conf_unref(&conf);
		return 1;
	}
	if (geteuid() == 0 && conf->user[0] == '\0')
		CDN_LOG(CDN_LOG_WARN, "priv",
		    "running as root: set user (--user) to run as another");
	if (cdn_log_open(conf->error_log) != CDN_OK) {
		conf_unref(&conf);
		return 1;
	}
	e = edge_new(conf, argc, argv, takeover);
	conf_unref(&conf);
	/* Every listener is bound and purged started: the last privilege
	 * goes before the first request is read. */
	if (e == NULL || cdn_priv_finish() != CDN_OK) {
		edge_free(&e);
		cdn_log_close();
		return 1;
	}
	rc = edge_run(e);
	edge_free(&e);
	cdn_log_close();
	return rc;
}
