/*
 * The site table (edge/edge_site.h).
 *
 * Which site a Host names, and each site's key rules and storage policy,
 * come from the cache's site table (cache/cache_site.c), the one purged
 * builds its keys with too; this file adds what only edged has per site:
 * the origin pool, the parents' pool and the timeouts.  Site i here is
 * site i there.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cdn_log.h"
#include "edge/edge_site.h"
#include "http/http_url.h"

struct edge_sites {
	uint32_t magic;
#define EDGE_SITES_MAGIC 0x3da8f051u
	struct edge_site *v;
	unsigned n;
	struct cache_sites *rules; /* Host -> site, keys and policy */
};

/* "host:port" of a validated URL. */
static char *
url_authority(const char *u)
{
	struct http_url pu;
	const char *why;
	int rc = http_url_parse(u, strlen(u), &pu, &why);

	CDN_ASSERT(rc == CDN_OK); /* conf_parse_url checked it */
	return cdn_xstrndup(pu.authority.p, pu.authority.len);
}

/*
 * The parents of a site (parent_server), or NULL without: a consistent-hash
 * pool, so each key has one home among them, with the site's passive
 * health settings.  Active checks, when the site has them, ask a parent
 * with the site's own name as Host, so they pass through its routing.
 */
static struct origin_pool *
parents_new(const char *name, const struct conf *c, int named)
{
	struct origin_server_conf sc[ORIGIN_POOL_MAX];
	struct conf_origin_server *os;
	struct origin_pool_conf pc;
	struct origin_pool *p;
	const char *why;
	unsigned n;

	if (c->parent_server.n == 0)
		return NULL;
	os = cdn_xcalloc(ORIGIN_POOL_MAX, sizeof(*os));
	for (n = 0; n < c->parent_server.n && n < ORIGIN_POOL_MAX; n++) {
		CDN_ASSERT(conf_parse_origin_server(
		               c->parent_server.v[n], &os[n], &why) == CDN_OK);
		sc[n].url = os[n].url;
		sc[n].weight = os[n].weight;
		sc[n].max_conns = os[n].max_conns;
		sc[n].backup = os[n].backup;
	}
	memset(&pc, 0, sizeof(pc));
	pc.name = name;
	pc.balance = ORIGIN_BAL_HASH;
	pc.servers = sc;
	pc.nservers = n;
	pc.max_fails = c->origin_max_fails;
	pc.fail_timeout_ms = c->origin_fail_timeout;
	pc.eject_lone = 1; /* the origin is there to fail over to */
	pc.hc_path = c->health_check_path;
	pc.hc_host = named && name[0] != '*' ? name : "";
	pc.hc_interval_ms = c->health_check_interval;
	pc.hc_timeout_ms = c->health_check_timeout;
	pc.hc_rise = c->health_check_rise;
	pc.hc_fall = c->health_check_fall;
	pc.hc_status = (int)c->health_check_status;
	p = origin_pool_new(&pc, &why);
	if (p == NULL)
		CDN_LOG(CDN_LOG_ERR, "edge", "site %s: parents: %s", name, why);
	free(os);
	return p;
}

static int
site_init(struct edge_site *s, unsigned idx, const char *name, int named,
    const struct conf *c, const struct cache_site_rules *r)
{
	struct origin_server_conf sc[ORIGIN_POOL_MAX];
	struct conf_origin_server *os;
	struct origin_pool_conf pc;
	enum origin_balance bal;
	const char *why;
	unsigned n = 0;
	int rc = CDN_OK;

	s->magic = EDGE_SITE_MAGIC;
	s->idx = idx;
	s->name = name;
	s->conf = c;
	s->policy = r->policy;
	s->key_rules = r->key;
	s->to.connect_ms = c->origin_connect_timeout;
	s->to.first_byte_ms = c->origin_first_byte_timeout;
	s->to.idle_ms = c->origin_idle_timeout;
	s->to.total_ms = c->origin_total_timeout;

	/* conf_validate() checked every value used below. */
	os = cdn_xcalloc(ORIGIN_POOL_MAX, sizeof(*os));
	if (c->origin_server.n > 0) {
		for (; n < c->origin_server.n && n < ORIGIN_POOL_MAX; n++) {
			CDN_ASSERT(
			    conf_parse_origin_server(
			        c->origin_server.v[n], &os[n], &why) == CDN_OK);
			sc[n].url = os[n].url;
			sc[n].weight = os[n].weight;
			sc[n].max_conns = os[n].max_conns;
			sc[n].backup = os[n].backup;
		}
	} else {
		sc[0].url = c->origin;
		sc[0].weight = 1;
		sc[0].max_conns = 0;
		sc[0].backup = 0;
		n = 1;
	}
	CDN_ASSERT(sc[0].url[0] != '\0');
	s->origin_authority = url_authority(sc[0].url);
	if (origin_balance_parse(c->origin_balance, &bal) != CDN_OK)
		bal = ORIGIN_BAL_ROUND_ROBIN;
	memset(&pc, 0, sizeof(pc));
	pc.name = name;
	pc.balance = bal;
	pc.servers = sc;
	pc.nservers = n;
	pc.tls_name = c->origin_tls_name;
	pc.max_fails = c->origin_max_fails;
	pc.fail_timeout_ms = c->origin_fail_timeout;
	pc.hc_path = c->health_check_path;
	pc.hc_host = c->origin_host;
	pc.hc_interval_ms = c->health_check_interval;
	pc.hc_timeout_ms = c->health_check_timeout;
	pc.hc_rise = c->health_check_rise;
	pc.hc_fall = c->health_check_fall;
	pc.hc_status = (int)c->health_check_status;
	s->pool = origin_pool_new(&pc, &why);
	if (s->pool == NULL) {
		CDN_LOG(
		    CDN_LOG_ERR, "edge", "site %s: origin pool: %s", name, why);
		rc = CDN_EINVAL;
	}
	free(os); /* the pool copied the URLs */
	if (rc == CDN_OK && c->parent_server.n > 0) {
		s->parents = parents_new(name, c, named);
		if (s->parents == NULL)
			rc = CDN_EINVAL;
		s->parent_only = c->parent_only != 0;
	}
	return rc;
}

struct edge_sites *
edge_sites_new(const struct conf *c, unsigned nworkers)
{
	struct edge_sites *t = cdn_xcalloc(1, sizeof(*t));

	MAGIC_CHECK(c, CONF_MAGIC);
	t->magic = EDGE_SITES_MAGIC;
	t->rules = cache_sites_new(c);
	t->n = cache_sites_count(t->rules);
	t->v = cdn_xcalloc(t->n, sizeof(*t->v));
	for (unsigned i = 0; i < t->n; i++) {
		const struct conf_site *cs = c->nsites > 0 ? c->sites[i] : NULL;

		t->v[i].ctr = cdn_xcalloc(
		    nworkers > 0 ? nworkers : 1, sizeof(*t->v[i].ctr));

		if (site_init(&t->v[i], i,
		        cs == NULL           ? "default"
		            : cs->nnames > 0 ? cs->names[0]
		                             : "site",
		        cs != NULL && cs->nnames > 0, cs == NULL ? c : cs->conf,
		        cache_sites_at(t->rules, i)) != CDN_OK)
			goto fail;
	}
	return t;
fail:
	edge_sites_free(&t);
	return NULL;
}

void
edge_sites_free(struct edge_sites **tp)
{
	struct edge_sites *t = *tp;

	*tp = NULL;
	if (t == NULL)
		return;
	MAGIC_CHECK(t, EDGE_SITES_MAGIC);
	for (unsigned i = 0; i < t->n; i++) {
		origin_pool_free(&t->v[i].pool);
		origin_pool_free(&t->v[i].parents);
		free(t->v[i].origin_authority);
		free(t->v[i].ctr);
		MAGIC_WIPE(&t->v[i]);
	}
	free(t->v);
	cache_sites_free(&t->rules);
	MAGIC_WIPE(t);
	free(t);
}

unsigned
edge_sites_count(const struct edge_sites *t)
{
	MAGIC_CHECK(t, EDGE_SITES_MAGIC);
	return t->n;
}

const struct edge_site *
edge_sites_at(const struct edge_sites *t, unsigned i)
{
	MAGIC_CHECK(t, EDGE_SITES_MAGIC);
	CDN_ASSERT(i < t->n);
	return &t->v[i];
}

unsigned
edge_sites_pools(const struct edge_sites *t, struct origin_pool **out)
{
	unsigned n = 0;

	MAGIC_CHECK(t, EDGE_SITES_MAGIC);
	for (unsigned i = 0; i < t->n; i++) {
		out[n++] = t->v[i].pool;
		if (t->v[i].parents != NULL)
			out[n++] = t->v[i].parents;
	}
	return n;
}

const struct edge_site *
edge_sites_lookup(const struct edge_sites *t, const char *host, size_t len)
{
	int i;

	MAGIC_CHECK(t, EDGE_SITES_MAGIC);
	i = cache_sites_find(t->rules, host, len);
	return i >= 0 ? &t->v[i] : NULL;
}

void
edge_site_counters_read(
    const struct edge_site *s, unsigned nworkers, uint64_t *v)
{
	size_t n;

	MAGIC_CHECK(s, EDGE_SITE_MAGIC);
	for (n = 0; n < EDGE_SITE_NCTR; n++)
		v[n] = s->carry[n];
	for (unsigned w = 0; w < nworkers; w++) {
		const struct edge_site_counters *c = &s->ctr[w].c;

		n = 0;
#define EDGE_SITE_COUNTER(field, ...)                                          \
	v[n++] += atomic_load_explicit(&c->field, memory_order_relaxed);
#include "edge/edge_counters.h"
	}
}
