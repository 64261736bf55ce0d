/*
 * The items of a purge (purge/purge.h): URLs made into the key strings
 * edged stores under, with the rules of the site each URL's host names;
 * tags and prefixes; and the members of a POST /purge body, which is also
 * the body of a purge bus entry (purge_bus_entry.c).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "http/http_url.h"
#include "purge/purge.h"

#define KEY_MAX 8192 /* longest key string, as edged's */

void
purge_plist_free(struct purge_plist *l)
{
	for (unsigned i = 0; i < l->n; i++)
		free(l->owned[i]);
	free(l->v);
	free(l->owned);
	free(l->shown);
	free(l->shown_len);
	memset(l, 0, sizeof(*l));
}

/* Room for twice the items.  CDN_ENOMEM leaves the items as they were. */
static int
plist_grow(struct purge_plist *l)
{
	unsigned cap = l->cap == 0 ? 8 : l->cap * 2;
	void *p;

	/* Each array keeps what it got: only cap says what all have. */
	p = realloc(l->v, cap * sizeof(*l->v));
	if (p == NULL)
		return CDN_ENOMEM;
	l->v = p;
	p = realloc(l->owned, cap * sizeof(*l->owned));
	if (p == NULL)
		return CDN_ENOMEM;
	l->owned = p;
	p = realloc(l->shown, cap * sizeof(*l->shown));
	if (p == NULL)
		return CDN_ENOMEM;
	l->shown = p;
	p = realloc(l->shown_len, cap * sizeof(*l->shown_len));
	if (p == NULL)
		return CDN_ENOMEM;
	l->shown_len = p;
	l->cap = cap;
	return CDN_OK;
}

/*
 * Add an item; name is copied.  CDN_ELIMIT past PURGE_MAX_ITEMS,
 * CDN_ENOMEM when memory runs out (the client sized the list: answer 503).
 */
int
purge_plist_add(struct purge_plist *l, enum cache_purge_kind kind,
    const char *name, size_t len, const char *shown, size_t shown_len)
{
	struct cache_purge_item *it;
	char *copy;

	if (l->n == PURGE_MAX_ITEMS)
		return CDN_ELIMIT;
	if (l->n == l->cap && plist_grow(l) != CDN_OK)
		return CDN_ENOMEM;
	copy = malloc(len + 1);
	if (copy == NULL)
		return CDN_ENOMEM;
	memcpy(copy, name, len);
	copy[len] = '\0';
	it = &l->v[l->n];
	memset(it, 0, sizeof(*it));
	it->kind = kind;
	l->owned[l->n] = copy;
	it->name = copy;
	it->len = len;
	if (kind == CACHE_PURGE_URL)
		cache_key_hash(name, len, it->key);
	l->shown[l->n] = shown;
	l->shown_len[l->n] = shown_len;
	l->n++;
	return CDN_OK;
}

/* Split an absolute http(s) URL (its host with the port, a path of "/"
 * when it has none).  CDN_EINVAL if it is not one. */
int
purge_url_split(const char *u, size_t len, const char **scheme,
    const char **host, size_t *hostlen, const char **path, size_t *pathlen,
    const char **query, size_t *querylen, int *has_query)
{
	struct http_url pu;
	const char *why;

	if (http_url_parse(u, len, &pu, &why) != CDN_OK || pu.has_userinfo)
		return CDN_EINVAL;
	*scheme = pu.https ? "https" : "http";
	*host = pu.authority.p;
	*hostlen = pu.authority.len;
	*path = pu.path.len > 0 ? pu.path.p : "/";
	*pathlen = pu.path.len > 0 ? pu.path.len : 1;
	*has_query = pu.has_query;
	*query = pu.has_query ? pu.query.p : "";
	*querylen = pu.query.len;
	return CDN_OK;
}

/*
 * The key string(s) edged uses for a URL, with the rules of the site its
 * host names (cache_sites_rules_for(), the lookup edged routes by).  Without
 * cache_key_scheme, edged keys every request as "http" (edge_cache.c
 * key_scheme()); with it, the scheme given, or when none is (<scheme> NULL:
 * PURGE with a Host) both the http and the https key.  CDN_EINVAL if the
 * URL makes no key; else as purge_plist_add().
 */
int
purge_add_url(struct purge_api *a, struct purge_plist *l,
    enum cache_purge_kind kind, const char *scheme, const char *host,
    size_t hostlen, const char *path, size_t pathlen, const char *query,
    size_t querylen, int has_query, const char *shown, size_t shown_len)
{
	static const char *const both[] = {"http", "https"};
	const struct cache_key_rules *kr =
	    &cache_sites_rules_for(a->sites, host, hostlen)->key;
	char key[KEY_MAX];
	size_t klen;
	unsigned nsch = 1;
	int rc;

	if (!kr->include_scheme)
		scheme = "http";
	else if (scheme == NULL)
		nsch = 2;
	for (unsigned i = 0; i < nsch; i++) {
		const char *sch = scheme != NULL ? scheme : both[i];

		if (cache_key_build(kr, sch, host, hostlen, path, pathlen,
		        query, querylen, has_query, key, sizeof(key),
		        &klen) != CDN_OK)
			return CDN_EINVAL;
		rc = purge_plist_add(l, kind, key, klen, shown, shown_len);
		if (rc != CDN_OK)
			return rc;
	}
	return CDN_OK;
}

/* A bus entry's "//HOST/PATH[?QUERY]": a PURGE that named no scheme. */
static int
bus_host_url(struct purge_api *a, struct purge_plist *l,
    enum cache_purge_kind kind, const char *s, size_t len)
{
	char u[KEY_MAX];
	const char *scheme, *host, *path, *query;
	size_t hostlen, pathlen, querylen;
	int has_query;

	if (len + 5 >= sizeof(u))
		return CDN_EINVAL;
	memcpy(u, "http:", 5);
	memcpy(u + 5, s, len);
	if (purge_url_split(u, len + 5, &scheme, &host, &hostlen, &path,
	        &pathlen, &query, &querylen, &has_query) != CDN_OK)
		return CDN_EINVAL;
	/* The shown value is the entry's own string, alive with the JSON. */
	return purge_add_url(a, l, kind, NULL, host, hostlen, path, pathlen,
	    query, querylen, has_query, s, len);
}

/*
 * Members of a POST /purge body, into l.  NULL, or the reason (static or
 * in <why>) with *rcp CDN_ENOMEM when memory ran out, else CDN_EINVAL.
 */
const char *
purge_json_items(struct purge_api *a, json_t *root, struct purge_plist *l,
    int *soft, int *dry, int bus, char *why, size_t whylen, int *rcp)
{
	const char *name;
	json_t *v;

	*rcp = CDN_EINVAL;
	if (!json_is_object(root))
		return "the body must be a JSON object";
	json_object_foreach(root, name, v)
	{
		enum cache_purge_kind kind;
		size_t i;
		json_t *e;

		if (bus && strcmp(name, "dry_run") == 0)
			return "a bus entry is never a dry run";
		if (strcmp(name, "soft") == 0 || strcmp(name, "dry_run") == 0) {
			if (!json_is_boolean(v)) {
				snprintf(why, whylen,
				    "\"%s\" must be true or false", name);
				return why;
			}
			*(name[0] == 's' ? soft : dry) = json_is_true(v);
			continue;
		}
		if (strcmp(name, "urls") == 0)
			kind = CACHE_PURGE_URL;
		else if (strcmp(name, "tags") == 0)
			kind = CACHE_PURGE_TAG;
		else if (strcmp(name, "prefixes") == 0)
			kind = CACHE_PURGE_PREFIX;
		else {
			snprintf(why, whylen,
			    "unknown member \"%.64s\" (urls, tags, prefixes, "
			    "soft, dry_run)",
			    name);
			return why;
		}
		if (!json_is_array(v)) {
			snprintf(why, whylen, "\"%s\" must be an array", name);
			return why;
		}
		json_array_foreach(v, i, e)
		{
			const char *s = json_string_value(e), *scheme, *host,
			           *path, *query;
			size_t len, hostlen, pathlen, querylen;
			int has_query, rc;

			if (s == NULL) {
				snprintf(why, whylen,
				    "\"%s\"[%zu] must be a string", name, i);
				return why;
			}
			len = json_string_length(e);
			if (kind == CACHE_PURGE_TAG) {
				if (len == 0 || len > CACHE_TAG_MAX_LEN ||
				    strcspn(s, " \t,") != len) {
					snprintf(why, whylen,
					    "\"tags\"[%zu]: a tag is 1 to %d "
					    "bytes without spaces or commas",
					    i, CACHE_TAG_MAX_LEN);
					return why;
				}
				rc = purge_plist_add(l, kind, s, len, s, len);
			} else if (bus && len > 2 && s[0] == '/' &&
			    s[1] == '/') {
				/* PURGE with a Host: no scheme, both keys. */
				rc = bus_host_url(a, l, kind, s, len);
				if (rc == CDN_EINVAL) {
					snprintf(why, whylen,
					    "\"%s\"[%zu]: not //HOST/PATH",
					    name, i);
					return why;
				}
			} else if (purge_url_split(s, len, &scheme, &host,
			               &hostlen, &path, &pathlen, &query,
			               &querylen, &has_query) != CDN_OK) {
				snprintf(why, whylen,
				    "\"%s\"[%zu]: not an absolute http:// or "
				    "https:// URL",
				    name, i);
				return why;
			} else {
				rc = purge_add_url(a, l, kind, scheme, host,
				    hostlen, path, pathlen, query, querylen,
				    has_query, s, len);
			}
			if (rc == CDN_OK && kind == CACHE_PURGE_PREFIX &&
			    l->v[l->n - 1].len > CACHE_PREFIX_MAX_LEN) {
				snprintf(why, whylen,
				    "\"prefixes\"[%zu]: longer than %d bytes "
				    "as a key",
				    i, CACHE_PREFIX_MAX_LEN);
				return why;
			}
			if (rc == CDN_ELIMIT)
				return "too many items (at most 10000)";
			if (rc == CDN_ENOMEM) {
				*rcp = rc;
				return "out of memory";
			}
			if (rc != CDN_OK) {
				snprintf(why, whylen,
				    "\"%s\"[%zu]: the URL cannot be made a "
				    "cache key",
				    name, i);
				return why;
			}
		}
	}
	if (l->n == 0)
		return "nothing to purge: give urls, tags or prefixes";
	return NULL;
}
