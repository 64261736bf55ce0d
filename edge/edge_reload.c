/*
 * SIGHUP: the whole configuration again (edge/edge_int.h: edge_reload).
 *
 * A reload runs the same parse as start-up (the -c file, then the flags of
 * the command line over it) and its checks.  A config with errors is
 * refused as a whole: the loader's "file:line:col: error:" lines go to the
 * log and the running generation stays.  Otherwise the main thread builds
 * a new generation (edge_gen.h: sites, pools, policy, key rules), loads
 * the certificates it names (refusing everything if they cannot be used),
 * moves the active health checks and the site counters over, publishes it
 * to every worker (w->gen_next, then gen_ev) and restarts purged on it.
 * Restart-only directives (CONF_RESTART_KEY) keep their start-up values;
 * each one changed is named in a warning.
 *
 * Nothing is dropped: connections stay open, a transaction or a fill in
 * flight finishes with the generation it began with (its site, origin
 * pool and policy), and the cache is the same store.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cdn_log.h"
#include "edge/edge_int.h"
#include "edge/edge_tls.h"

/* Restart-only directives named in one reload's warnings, at most. */
#define RESTART_NAMES_MAX 64

/* Log the loader's messages, one line each. */
static void
log_lines(char *buf)
{
	char *save = NULL;

	for (char *l = strtok_r(buf, "\n", &save); l != NULL;
	     l = strtok_r(NULL, "\n", &save))
		CDN_LOG(CDN_LOG_ERR, "conf", "%s", l);
}

/* The command line's configuration again; NULL after logging why. */
static struct conf *
parse(const struct edge *e)
{
	enum conf_action act;
	struct conf *c = NULL;
	char *buf = NULL;
	size_t len = 0;
	FILE *err;
	int rc;

	err = open_memstream(&buf, &len);
	if (err == NULL) {
		CDN_LOG(CDN_LOG_ERR, "conf", "reload: out of memory");
		return NULL;
	}
	rc = conf_argv_parse(e->argc, e->argv, err, &c, &act);
	fclose(err);
	log_lines(buf);
	free(buf);
	return rc == CDN_OK ? c : NULL;
}

static void
refuse(struct edge *e, const char *why)
{
	e->reloads_failed++;
	CDN_LOG(CDN_LOG_ERR, "conf",
	    "configuration not reloaded (%s): still serving generation %u", why,
	    e->gen->id);
}

void
edge_reload(struct edge *e)
{
	const char *names[RESTART_NAMES_MAX];
	struct edge_gen *g, *old, *prev;
	struct conf *c;
	unsigned n;

	MAGIC_CHECK(e, EDGE_MAGIC);
	if (atomic_load(&e->draining))
		return;
	c = parse(e);
	if (c == NULL) {
		refuse(e, "the configuration has errors");
		return;
	}
	g = edge_gen_new(c, e->gen->id + 1, e->nworkers, e->gen_wake);
	if (g == NULL) {
		conf_unref(&c);
		refuse(e, "a pool cannot be built");
		return;
	}
	if (e->tls != NULL && edge_tls_reload(e->tls, c) != CDN_OK) {
		edge_gen_free(&g);
		conf_unref(&c);
		refuse(e, "the certificates cannot be used");
		return;
	}
	n = conf_restart_changed(e->conf, c, names, RESTART_NAMES_MAX);
	for (unsigned i = 0; i < n && i < RESTART_NAMES_MAX; i++)
		CDN_LOG(CDN_LOG_WARN, "conf",
		    "reload: %s changed: takes effect on restart", names[i]);
	cdn_log_level_now = (int)c->log_level;

	old = e->gen;
	edge_gen_health_stop(old);
	edge_gen_health_start(g, e->main_base, e->conf);
	edge_gen_carry_counters(old, g);
	atomic_store_explicit(&old->retired, 1, memory_order_release);
	old->next = e->retired;
	e->retired = old;
	e->gen = g;
	for (unsigned i = 0; i < e->nworkers; i++) {
		struct edge_worker *w = &e->workers[i];

		/* One the worker never took stays on the retired list, and
		 * goes once it has taken this one. */
		prev = atomic_exchange_explicit(
		    &w->gen_next, g, memory_order_acq_rel);
		(void)prev;
		edge_worker_wake(w, &w->gen_wake);
	}
	if (edge_purged_reload(e, c) != CDN_OK)
		CDN_LOG(CDN_LOG_WARN, "purge",
		    "purged keeps the previous configuration");
	e->reloads++;
	CDN_LOG(CDN_LOG_INFO, "conf",
	    "configuration reloaded: generation %u, %u site(s)", g->id,
	    edge_sites_count(g->sites));
	conf_unref(&c);
}

void
edge_reload_switch(struct edge_worker *w)
{
	struct edge_gen *g;

	MAGIC_CHECK(w, EDGE_WORKER_MAGIC);
	g = atomic_exchange_explicit(&w->gen_next, NULL, memory_order_acquire);
	if (g == NULL)
		return;
	w->gen = g;
	http_server_set_cache_status(w->http, g->conf->via);
	/* release: this worker's holds of older ones are counted before the
	 * main thread reads that it moved past them. */
	atomic_store_explicit(&w->gen_seen, g->id, memory_order_release);
	event_active(w->edge->gen_wake, 0, 0);
}

/* Whether every worker has moved past <g>. */
static int
switched_past(const struct edge *e, const struct edge_gen *g)
{
	for (unsigned i = 0; i < e->nworkers; i++)
		if (atomic_load_explicit(
		        &e->workers[i].gen_seen, memory_order_acquire) <= g->id)
			return 0;
	return 1;
}

void
edge_reload_collect(struct edge *e)
{
	struct edge_gen **pp = &e->retired;

	MAGIC_CHECK(e, EDGE_MAGIC);
	while (*pp != NULL) {
		struct edge_gen *g = *pp;

		if (!switched_past(e, g) || !edge_gen_unused(g)) {
			pp = &g->next;
			continue;
		}
		*pp = g->next;
		edge_gen_carry_rest(g, e->gen);
		CDN_LOG(CDN_LOG_DEBUG, "conf", "generation %u freed", g->id);
		edge_gen_free(&g);
	}
}
