/*
 * libFuzzer target for the purge API's request parsing (purge/purge_api.c,
 * included for its static functions): the JSON body of POST /purge read
 * by jansson and turned into purge items (purge_json_items, purge_items.c), and
 * the absolute URLs and queries of PURGE (purge_url_split, strip_dry), with key
 * rules from sites of different kinds, as purged builds them.
 *
 * The whole input is the JSON body, and also a URL.  Beyond the
 * sanitizers' checks it asserts:
 *   - a body is accepted with 1 to PURGE_MAX_ITEMS items, and refused with
 *     a reason and CDN_EINVAL (memory does not run out here);
 *   - every item is well formed: a known kind; a name of its length,
 *     NUL-terminated; a tag of 1 to CACHE_TAG_MAX_LEN bytes without
 *     spaces, tabs or commas; a URL's key hash is the hash of its key
 *     string; a prefix no longer than CACHE_PREFIX_MAX_LEN;
 *   - a URL split lies inside the URL, its host is not empty and its path
 *     starts with '/';
 *   - strip_dry never grows a query and leaves no "dry=1" member.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
/* purged's API is not in libedge.a: this is its only copy here. */
#include "purge/purge_api.c"
#include "purge/purge_items.c"
#include "purge/purge_bus.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Sites with each kind of key rule, so that URLs meet all of them. */
static const char fz_conf[] = "cache_query sort\n"
                              "site drop.test {\n\tcache_query drop\n}\n"
                              "site *.keep.test {\n\tcache_query_keep id\n"
                              "\tcache_query_keep v*\n}\n"
                              "site scheme.test {\n\tcache_key_scheme 1\n}\n"
                              "default_site scheme.test\n";

static struct purge_api fz_api;
static struct conf *fz_c;
static struct cache_sites *fz_sites;

static void
fz_fini(void)
{
	cache_sites_free(&fz_sites);
	conf_unref(&fz_c);
}

static void
fz_init(void)
{
	fz_c = conf_new_defaults();
	if (conf_load_buf(fz_c, "fuzz.conf", fz_conf, sizeof(fz_conf) - 1,
	        stderr) != CDN_OK ||
	    conf_validate_keys(fz_c, "fuzz", stderr) != CDN_OK)
		abort();
	fz_sites = cache_sites_new(fz_c); /* borrows fz_c: both for the run */
	fz_api.magic = PURGE_API_MAGIC;
	fz_api.sites = fz_sites;
	atexit(fz_fini);
}

static void
fz_check_items(const struct purge_plist *l)
{
	uint8_t h[CACHE_HASH_LEN];

	CDN_ASSERT(l->n >= 1 && l->n <= PURGE_MAX_ITEMS);
	for (unsigned i = 0; i < l->n; i++) {
		const struct cache_purge_item *it = &l->v[i];

		CDN_ASSERT(it->name == l->owned[i]);
		CDN_ASSERT(strlen(it->name) <= it->len);
		CDN_ASSERT(it->name[it->len] == '\0');
		switch (it->kind) {
		case CACHE_PURGE_TAG:
			CDN_ASSERT(
			    it->len >= 1 && it->len <= CACHE_TAG_MAX_LEN);
			CDN_ASSERT(strcspn(it->name, " \t,") >= it->len);
			break;
		case CACHE_PURGE_URL:
			cache_key_hash(it->name, it->len, h);
			CDN_ASSERT(memcmp(h, it->key, sizeof(h)) == 0);
			CDN_ASSERT(it->len > 0 && it->len <= KEY_MAX);
			break;
		case CACHE_PURGE_PREFIX:
			CDN_ASSERT(
			    it->len > 0 && it->len <= CACHE_PREFIX_MAX_LEN);
			break;
		default:
			CDN_ASSERT(!"an item kind");
		}
	}
}

static void
fz_json(const char *v, size_t len)
{
	char why[256];
	json_error_t err;
	const char *bad;
	struct purge_plist l;
	json_t *root;
	int soft = -1, dry = -1, rc = 0;

	memset(&l, 0, sizeof(l));
	root = json_loadb(v, len, JSON_REJECT_DUPLICATES, &err);
	if (root == NULL)
		return;
	bad = purge_json_items(
	    &fz_api, root, &l, &soft, &dry, 0, why, sizeof(why), &rc);
	if (bad != NULL) {
		CDN_ASSERT(rc == CDN_EINVAL && bad[0] != '\0');
	} else {
		fz_check_items(&l);
		CDN_ASSERT(soft == -1 || soft == 0 || soft == 1);
		CDN_ASSERT(dry == -1 || dry == 0 || dry == 1);
	}
	purge_plist_free(&l);
	json_decref(root);
}

static void
fz_url(const char *u, size_t len)
{
	const char *scheme, *host, *path, *query;
	size_t hostlen, pathlen, querylen, n;
	int has_query, dry = 0;
	char *out;

	if (purge_url_split(u, len, &scheme, &host, &hostlen, &path, &pathlen,
	        &query, &querylen, &has_query) != CDN_OK)
		return;
	CDN_ASSERT(hostlen > 0 && host > u && host + hostlen <= u + len);
	CDN_ASSERT(pathlen > 0 && path[0] == '/');
	CDN_ASSERT(pathlen == 1 || (path > u && path + pathlen <= u + len));
	CDN_ASSERT(!has_query || (query > u && query + querylen <= u + len));
	CDN_ASSERT(has_query || querylen == 0);

	out = malloc(querylen + 1);
	if (out == NULL)
		abort();
	n = strip_dry(query, querylen, out, &dry);
	CDN_ASSERT(n <= querylen);
	for (size_t i = 0; i + 5 <= n; i++)
		if (memcmp(out + i, "dry=1", 5) == 0)
			CDN_ASSERT((i > 0 && out[i - 1] != '&') ||
			    (i + 5 < n && out[i + 5] != '&'));
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *v = size > 0 ? (const char *)data : "";

	if (fz_api.sites == NULL)
		fz_init();
	fz_json(v, size);
	fz_url(v, size);
	return 0;
}
