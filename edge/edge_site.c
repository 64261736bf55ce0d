/*
 * The site table (edge/edge_site.h).
 *
 * Exact names and wildcards share one open-addressing hash table: a
 * wildcard "*.example.com" is stored under that very string, and a lookup
 * of "www.example.com" that misses tries "*.example.com" next.  So a lookup
 * is at most two probes sequences whatever the number of sites, and a
 * wildcard matches exactly one more label, as in TLS (RFC 6125 §6.4.3).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <xxhash.h>

#include "common/cdn_log.h"
#include "edge/edge_site.h"

#define HOST_MAX 255 /* RFC 1035 §2.3.4, with room for "*." */

struct site_slot {
	const char *name; /* NULL: empty */
	unsigned site;
};

struct edge_sites {
	uint32_t magic;
#define EDGE_SITES_MAGIC 0x3da8f051u
	struct edge_site *v;
	unsigned n;
	struct site_slot *slots;
	unsigned nslots; /* a power of two, at least twice the names */
	unsigned nnames; /* 0: no site blocks, every Host is the default */
	int def;         /* default site, or -1 */
};

void
edge_site_cache_rules(const struct conf *c, struct cache_policy_conf *pol,
    struct cache_key_rules *kr)
{
	const struct conf_strlist *params = NULL;

	memset(pol, 0, sizeof(*pol));
	memset(kr, 0, sizeof(*kr));
	pol->default_ttl_s = (int64_t)(c->cache_default_ttl / 1000);
	pol->min_ttl_s = (int64_t)(c->cache_min_ttl / 1000);
	pol->max_ttl_s = (int64_t)(c->cache_max_ttl / 1000);
	pol->heuristic_percent = c->cache_heuristic_percent;
	pol->heuristic_max_s = (int64_t)(c->cache_heuristic_max / 1000);
	pol->share_set_cookie = (int)c->cache_share_set_cookie;
	pol->honor_targeted = (int)c->cache_targeted;
	kr->include_scheme = (int)c->cache_key_scheme;

	if (strcmp(c->cache_query, "sort") == 0)
		kr->query_mode = CACHE_QUERY_SORT;
	else if (strcmp(c->cache_query, "drop") == 0)
		kr->query_mode = CACHE_QUERY_DROP;
	else
		kr->query_mode = CACHE_QUERY_KEEP;
	if (c->cache_query_drop.n > 0) {
		kr->sort_after_filter = kr->query_mode == CACHE_QUERY_SORT;
		kr->query_mode = CACHE_QUERY_DROP_LISTED;
		params = &c->cache_query_drop;
	} else if (c->cache_query_keep.n > 0) {
		kr->sort_after_filter = kr->query_mode == CACHE_QUERY_SORT;
		kr->query_mode = CACHE_QUERY_KEEP_LISTED;
		params = &c->cache_query_keep;
	}
	if (params != NULL) {
		kr->params = (const char *const *)params->v;
		kr->nparams = params->n;
	}
}

/* "host:port" of a validated URL. */
static char *
url_authority(const char *u)
{
	const char *a = strstr(u, "://");

	CDN_ASSERT(a != NULL);
	a += 3;
	return cdn_xstrndup(a, strcspn(a, "/"));
}

static int
site_init(
    struct edge_site *s, unsigned idx, const char *name, const struct conf *c)
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
	edge_site_cache_rules(c, &s->policy, &s->key_rules);
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
	return rc;
}

static uint64_t
name_hash(const char *s, size_t len)
{
	return XXH3_64bits(s, len);
}

static void
slot_add(struct edge_sites *t, const char *name, unsigned site)
{
	unsigned mask = t->nslots - 1;
	unsigned i = (unsigned)name_hash(name, strlen(name)) & mask;

	/* conf_validate() refused a name given twice. */
	while (t->slots[i].name != NULL)
		i = (i + 1) & mask;
	t->slots[i].name = name;
	t->slots[i].site = site;
}

static int
slot_find(const struct edge_sites *t, const char *name, size_t len)
{
	unsigned mask = t->nslots - 1;
	unsigned i = (unsigned)name_hash(name, len) & mask;

	for (unsigned k = 0; k < t->nslots; k++, i = (i + 1) & mask) {
		const char *n = t->slots[i].name;

		if (n == NULL)
			return -1;
		if (strlen(n) == len && memcmp(n, name, len) == 0)
			return (int)t->slots[i].site;
	}
	return -1;
}

struct edge_sites *
edge_sites_new(const struct conf *c)
{
	struct edge_sites *t = cdn_xcalloc(1, sizeof(*t));
	unsigned names = 0;

	MAGIC_CHECK(c, CONF_MAGIC);
	t->magic = EDGE_SITES_MAGIC;
	t->def = -1;
	if (c->nsites == 0) {
		t->n = 1;
		t->v = cdn_xcalloc(1, sizeof(*t->v));
		t->def = 0;
		if (site_init(&t->v[0], 0, "default", c) != CDN_OK)
			goto fail;
	} else {
		t->n = c->nsites;
		t->v = cdn_xcalloc(t->n, sizeof(*t->v));
		for (unsigned i = 0; i < t->n; i++) {
			const struct conf_site *cs = c->sites[i];

			MAGIC_CHECK(cs, CONF_SITE_MAGIC);
			names += cs->nnames;
			if (site_init(&t->v[i], i,
			        cs->nnames > 0 ? cs->names[0] : "site",
			        cs->conf) != CDN_OK)
				goto fail;
		}
	}
	t->nnames = names;
	t->nslots = 8;
	while (t->nslots < names * 2)
		t->nslots *= 2;
	t->slots = cdn_xcalloc(t->nslots, sizeof(*t->slots));
	for (unsigned i = 0; i < c->nsites; i++)
		for (unsigned j = 0; j < c->sites[i]->nnames; j++)
			slot_add(t, c->sites[i]->names[j], i);
	if (c->nsites > 0 && c->default_site[0] != '\0') {
		char buf[HOST_MAX + 1];
		size_t len = strlen(c->default_site);

		if (len <= HOST_MAX) {
			for (size_t i = 0; i < len; i++)
				buf[i] = (char)(c->default_site[i] >= 'A' &&
				            c->default_site[i] <= 'Z'
				        ? c->default_site[i] + 32
				        : c->default_site[i]);
			t->def = slot_find(t, buf, len);
		}
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
		free(t->v[i].origin_authority);
		MAGIC_WIPE(&t->v[i]);
	}
	free(t->v);
	free(t->slots);
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

void
edge_sites_pools(const struct edge_sites *t, struct origin_pool **out)
{
	MAGIC_CHECK(t, EDGE_SITES_MAGIC);
	for (unsigned i = 0; i < t->n; i++)
		out[i] = t->v[i].pool;
}

const struct edge_site *
edge_sites_lookup(const struct edge_sites *t, const char *host, size_t len)
{
	char buf[HOST_MAX + 3], *dot;
	size_t n;
	int i;

	MAGIC_CHECK(t, EDGE_SITES_MAGIC);
	/* No Host (HTTP/1.0: host may be NULL), or no names to compare. */
	if (len == 0 || t->nnames == 0)
		goto deflt;
	/* The port goes; an IPv6 literal keeps its brackets. */
	if (host[0] == '[') {
		const char *rb = memchr(host, ']', len);

		if (rb != NULL)
			len = (size_t)(rb - host) + 1;
	} else {
		const char *colon = memchr(host, ':', len);

		if (colon != NULL)
			len = (size_t)(colon - host);
	}
	if (len > 0 && host[len - 1] == '.')
		len--;
	if (len == 0 || len > HOST_MAX)
		goto deflt;
	/* Room for "*." in front, for the wildcard probe below. */
	for (n = 0; n < len; n++) {
		char ch = host[n];

		buf[n + 2] = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
	}
	i = slot_find(t, buf + 2, len);
	if (i >= 0)
		return &t->v[i];
	dot = memchr(buf + 2, '.', len);
	if (dot != NULL && dot > buf + 2) {
		char *w = dot - 1; /* "www.example.com" -> "*.example.com" */

		w[0] = '*';
		i = slot_find(t, w, (size_t)(buf + 2 + len - w));
		if (i >= 0)
			return &t->v[i];
	}
deflt:
	return t->def >= 0 ? &t->v[t->def] : NULL;
}
