/*
 * Configuration generations (edge/edge_gen.h).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "common/cdn_log.h"
#include "edge/edge_gen.h"

struct edge_gen *
edge_gen_new(struct conf *c, unsigned id, unsigned nworkers, struct event *wake)
{
	struct edge_gen *g = cdn_xcalloc(1, sizeof(*g));
	struct timeval tv;

	MAGIC_CHECK(c, CONF_MAGIC);
	g->magic = EDGE_GEN_MAGIC;
	g->id = id;
	gettimeofday(&tv, NULL);
	g->load_ms = (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
	g->conf = conf_ref(c);
	g->nworkers = nworkers;
	g->use = cdn_xcalloc(nworkers > 0 ? nworkers : 1, sizeof(*g->use));
	atomic_init(&g->fills, 0);
	atomic_init(&g->retired, 0);
	g->wake = wake;
	g->sites = edge_sites_new(c, nworkers);
	if (g->sites == NULL)
		edge_gen_free(&g);
	return g;
}

void
edge_gen_health_start(struct edge_gen *g, struct event_base *main_base,
    const struct conf *tls_conf)
{
	struct origin_tls_conf otls;
	struct origin_pool **pools;
	unsigned n;

	MAGIC_CHECK(g, EDGE_GEN_MAGIC);
	CDN_ASSERT(g->health == NULL);
	n = edge_sites_count(g->sites);
	pools = cdn_xcalloc(2 * n, sizeof(*pools));
	n = edge_sites_pools(g->sites, pools);
	otls.ca_file = tls_conf->origin_ca_file;
	otls.client_cert = tls_conf->origin_client_cert;
	otls.client_key = tls_conf->origin_client_key;
	g->health = origin_health_new(main_base, pools, n, &otls);
	free(pools);
}

void
edge_gen_health_stop(struct edge_gen *g)
{
	MAGIC_CHECK(g, EDGE_GEN_MAGIC);
	origin_health_free(&g->health);
}

/* Site <name> of <g>, or NULL. */
static struct edge_site *
site_named(const struct edge_gen *g, const char *name)
{
	for (unsigned i = 0; i < edge_sites_count(g->sites); i++) {
		const struct edge_site *s = edge_sites_at(g->sites, i);

		if (strcmp(s->name, name) == 0)
			return (struct edge_site *)(uintptr_t)s;
	}
	return NULL;
}

void
edge_gen_carry_counters(struct edge_gen *old, struct edge_gen *nw)
{
	MAGIC_CHECK(old, EDGE_GEN_MAGIC);
	MAGIC_CHECK(nw, EDGE_GEN_MAGIC);
	for (unsigned i = 0; i < edge_sites_count(old->sites); i++) {
		struct edge_site *s =
		    (struct edge_site *)(uintptr_t)edge_sites_at(old->sites, i);
		struct edge_site *to = site_named(nw, s->name);

		edge_site_counters_read(s, old->nworkers, s->handed);
		if (to != NULL) /* a site that is gone keeps nothing */
			memcpy(to->carry, s->handed, sizeof(to->carry));
	}
}

void
edge_gen_carry_rest(const struct edge_gen *old, struct edge_gen *cur)
{
	uint64_t v[EDGE_SITE_NCTR];

	MAGIC_CHECK(old, EDGE_GEN_MAGIC);
	MAGIC_CHECK(cur, EDGE_GEN_MAGIC);
	for (unsigned i = 0; i < edge_sites_count(old->sites); i++) {
		const struct edge_site *s = edge_sites_at(old->sites, i);
		struct edge_site *to = site_named(cur, s->name);

		if (to == NULL)
			continue;
		edge_site_counters_read(s, old->nworkers, v);
		for (size_t n = 0; n < EDGE_SITE_NCTR; n++)
			to->carry[n] += v[n] - s->handed[n];
	}
}

int
edge_gen_unused(const struct edge_gen *g)
{
	MAGIC_CHECK(g, EDGE_GEN_MAGIC);
	if (atomic_load_explicit(&g->fills, memory_order_acquire) != 0)
		return 0;
	for (unsigned i = 0; i < g->nworkers; i++)
		if (atomic_load_explicit(&g->use[i].n, memory_order_acquire) !=
		    0)
			return 0;
	return 1;
}

void
edge_gen_fill_hold(struct edge_gen *g)
{
	MAGIC_CHECK(g, EDGE_GEN_MAGIC);
	atomic_fetch_add_explicit(&g->fills, 1, memory_order_relaxed);
}

void
edge_gen_fill_drop(struct edge_gen *g)
{
	MAGIC_CHECK(g, EDGE_GEN_MAGIC);
	if (atomic_fetch_sub_explicit(&g->fills, 1, memory_order_acq_rel) ==
	        1 &&
	    atomic_load_explicit(&g->retired, memory_order_acquire))
		event_active(g->wake, 0, 0);
}

void
edge_gen_free(struct edge_gen **gp)
{
	struct edge_gen *g = *gp;

	*gp = NULL;
	if (g == NULL)
		return;
	MAGIC_CHECK(g, EDGE_GEN_MAGIC);
	origin_health_free(&g->health);
	edge_sites_free(&g->sites);
	conf_unref(&g->conf);
	free(g->use);
	MAGIC_WIPE(g);
	free(g);
}
