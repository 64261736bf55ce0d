/*
 * Sites as the cache sees them (cache/cache.h: cache_sites_*): which site
 * a Host names, and each site's key rules and storage policy, built from a
 * loaded config.  edged (edge_site.c) and purged (purge_api.c) both build
 * their keys through this table, so a URL purge names the very key a
 * worker stored under, whatever rules the URL's site sets.
 *
 * Exact names and wildcards share one open-addressing hash table: a
 * wildcard "*.example.com" is stored under that very string, and a lookup
 * of "www.example.com" that misses tries "*.example.com" next.  So a lookup
 * is at most two probe sequences whatever the number of sites, and a
 * wildcard matches exactly one more label, as in TLS (RFC 6125 §6.4.3).
 *
 * Built once on one thread, immutable afterwards: lookups take no lock.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "cache/cache_int.h"
#include "conf/conf.h"

#define HOST_MAX 255 /* RFC 1035 §2.3.4, with room for "*." */

struct site_slot {
	const char *name; /* NULL: empty */
	unsigned site;
};

struct cache_sites {
	uint32_t magic;
#define CACHE_SITES_MAGIC 0x5e0b93d4u
	struct cache_site_rules *v;
	unsigned n;
	struct cache_site_rules top; /* for a Host no site answers */
	struct site_slot *slots;
	unsigned nslots; /* a power of two, at least twice the names */
	unsigned nnames; /* 0: no site blocks, every Host is the default */
	int def;         /* default site, or -1 */
};

void
cache_site_rules_init(const struct conf *c, struct cache_site_rules *r)
{
	struct cache_policy_conf *pol = &r->policy;
	struct cache_key_rules *kr = &r->key;
	const struct conf_strlist *params = NULL;

	MAGIC_CHECK(c, CONF_MAGIC);
	memset(r, 0, sizeof(*r));
	pol->default_ttl_s = (int64_t)(c->cache_default_ttl / 1000);
	pol->min_ttl_s = (int64_t)(c->cache_min_ttl / 1000);
	pol->max_ttl_s = (int64_t)(c->cache_max_ttl / 1000);
	pol->heuristic_percent = c->cache_heuristic_percent;
	pol->heuristic_max_s = (int64_t)(c->cache_heuristic_max / 1000);
	pol->share_set_cookie = (int)c->cache_share_set_cookie;
	pol->honor_targeted = (int)c->cache_targeted;
	kr->include_scheme = (int)c->cache_key_scheme;

	/* conf_validate_keys() refused any other value, and both lists. */
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

static uint64_t
name_hash(const char *s, size_t len)
{
	return XXH3_64bits(s, len);
}

static void
slot_add(struct cache_sites *t, const char *name, unsigned site)
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
slot_find(const struct cache_sites *t, const char *name, size_t len)
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

struct cache_sites *
cache_sites_new(const struct conf *c)
{
	struct cache_sites *t = cdn_xcalloc(1, sizeof(*t));
	unsigned names = 0;

	MAGIC_CHECK(c, CONF_MAGIC);
	t->magic = CACHE_SITES_MAGIC;
	t->def = -1;
	cache_site_rules_init(c, &t->top);
	if (c->nsites == 0) {
		t->n = 1;
		t->v = cdn_xcalloc(1, sizeof(*t->v));
		t->v[0] = t->top;
		t->def = 0;
	} else {
		t->n = c->nsites;
		t->v = cdn_xcalloc(t->n, sizeof(*t->v));
		for (unsigned i = 0; i < t->n; i++) {
			MAGIC_CHECK(c->sites[i], CONF_SITE_MAGIC);
			cache_site_rules_init(c->sites[i]->conf, &t->v[i]);
			names += c->sites[i]->nnames;
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
}

void
cache_sites_free(struct cache_sites **tp)
{
	struct cache_sites *t = *tp;

	*tp = NULL;
	if (t == NULL)
		return;
	MAGIC_CHECK(t, CACHE_SITES_MAGIC);
	free(t->v);
	free(t->slots);
	MAGIC_WIPE(t);
	free(t);
}

unsigned
cache_sites_count(const struct cache_sites *t)
{
	MAGIC_CHECK(t, CACHE_SITES_MAGIC);
	return t->n;
}

const struct cache_site_rules *
cache_sites_at(const struct cache_sites *t, unsigned i)
{
	MAGIC_CHECK(t, CACHE_SITES_MAGIC);
	CDN_ASSERT(i < t->n);
	return &t->v[i];
}

int
cache_sites_find(const struct cache_sites *t, const char *host, size_t len)
{
	char buf[HOST_MAX + 3], *dot;
	size_t n;
	int i;

	MAGIC_CHECK(t, CACHE_SITES_MAGIC);
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
		return i;
	dot = memchr(buf + 2, '.', len);
	if (dot != NULL && dot > buf + 2) {
		char *w = dot - 1; /* "www.example.com" -> "*.example.com" */

		w[0] = '*';
		i = slot_find(t, w, (size_t)(buf + 2 + len - w));
		if (i >= 0)
			return i;
	}
deflt:
	return t->def;
}

const struct cache_site_rules *
cache_sites_rules_for(const struct cache_sites *t, const char *host, size_t len)
{
	int i = cache_sites_find(t, host, len);

	return i >= 0 ? &t->v[i] : &t->top;
}
