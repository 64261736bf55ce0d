/*
 * The purge API (purge/purge.h, docs/purge.md), on purged's one event loop.
 *
 *   PURGE /path?query (Host) or PURGE http://host/path: that URL, every
 *       variant.  With Surrogate-Key: or xkey: fields, those tags instead.
 *       Purge-Mode: soft makes it soft; a dry=1 query parameter (removed
 *       from the URL) or Purge-Dry-Run: 1 only counts.
 *   POST /purge {"urls": [...], "tags": [...], "prefixes": [...],
 *       "soft": false, "dry_run": false}: any mix in one transaction.
 *   GET /inspect?url=URL: what the store holds for a URL.
 *   GET /healthz: 200 (ACL only, no token).
 *
 * Every request must come from an address in the ACL (else 403) and carry
 * a Bearer token from the token file (else 401); refusals are logged with
 * the client and written to the audit log, as is every purge.
 *
 * A purge blocks the loop for its LMDB transaction and fsync: the answer
 * must wait for both anyway, and purges are serialised by LMDB's write
 * lock whatever we do.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include <event2/event.h>
#include <jansson.h>

#include "common/cdn_log.h"
#include "common/cdn_strbuf.h"
#include "http/http_url.h"
#include "purge/purge.h"

#define KEY_MAX   8192 /* longest key string, as edged's */
#define WHAT_MAX  2000 /* bytes of an audit line's list of items */
#define READ_SIZE 16384

/* State of a POST /purge while its body arrives. */
struct preq {
	uint32_t magic;
#define PREQ_MAGIC 0x19c4b27eu
	struct purge_api *api;
	const struct http_token *tok;
	struct cdn_strbuf body;
	uint64_t start_ns;
};

/* The items of one purge, with the key strings they own. */
struct plist {
	struct cache_purge_item *v;
	char **owned;       /* per item: its name, freed at the end */
	const char **shown; /* per item: as the client wrote it (borrowed) */
	size_t *shown_len;
	unsigned n, cap;
};

/* ---- helpers ---- */

static void
plist_free(struct plist *l)
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
plist_grow(struct plist *l)
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
static int
plist_add(struct plist *l, enum cache_purge_kind kind, const char *name,
    size_t len, const char *shown, size_t shown_len)
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
static int
url_split(const char *u, size_t len, const char **scheme, const char **host,
    size_t *hostlen, const char **path, size_t *pathlen, const char **query,
    size_t *querylen, int *has_query)
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
 * URL makes no key; else as plist_add().
 */
static int
add_url(struct purge_api *a, struct plist *l, enum cache_purge_kind kind,
    const char *scheme, const char *host, size_t hostlen, const char *path,
    size_t pathlen, const char *query, size_t querylen, int has_query,
    const char *shown, size_t shown_len)
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
		rc = plist_add(l, kind, key, klen, shown, shown_len);
		if (rc != CDN_OK)
			return rc;
	}
	return CDN_OK;
}

/* One audit line.  Values are printed with %.*s and never contain a
 * newline: request fields cannot, key strings and tags neither. */
static void audit(struct purge_api *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
audit(struct purge_api *a, const char *fmt, ...)
{
	char when[64];
	va_list ap;

	if (a->audit == NULL)
		return;
	cdn_log_timestamp(when, sizeof(when));
	fprintf(a->audit, "%s ", when);
	va_start(ap, fmt);
	vfprintf(a->audit, fmt, ap);
	va_end(ap);
	fputc('\n', a->audit);
	fflush(a->audit);
}

int
purge_audit_open(struct purge_api *a)
{
	FILE *f;

	if (a->audit_path == NULL)
		return CDN_OK;
	f = fopen(a->audit_path, "a");
	if (f == NULL) {
		CDN_LOG(CDN_LOG_ERR, "purge", "audit log %s: %s", a->audit_path,
		    strerror(errno));
		return CDN_EIO;
	}
	if (a->audit != NULL)
		fclose(a->audit);
	a->audit = f;
	return CDN_OK;
}

static void
send_json(struct http_txn *txn, int status, json_t *j)
{
	static const char f[] =
	    "Content-Type: application/json\r\nCache-Control: no-store\r\n";
	char *s = j != NULL
	    ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9))
	    : NULL;

	json_decref(j);
	if (s == NULL) {
		http_txn_simple(
		    txn, 500, "text/plain", "500 out of memory\n", 18);
		return;
	}
	http_txn_respond(txn, status, f, sizeof(f) - 1, (int64_t)strlen(s) + 1);
	http_txn_write(txn, s, strlen(s));
	http_txn_write(txn, "\n", 1);
	http_txn_finish(txn);
	free(s);
}

static void
send_error(struct http_txn *txn, int status, const char *why)
{
	send_json(txn, status, json_pack("{s:s}", "error", why));
}

/* Out of memory is ours to answer (503), the rest the client's (400). */
static void
send_item_error(struct http_txn *txn, int rc, const char *why)
{
	if (rc == CDN_ENOMEM)
		send_error(txn, 503, "out of memory: try again later");
	else
		send_error(txn, 400, why);
}

/* ---- reclaiming space ---- */

/* Records per write transaction.  Each batch is synced: a purge's own
 * fsync then has only its own pages to write, so a reclaim running
 * behind it does not make it slow. */
#define RECLAIM_SCAN 1000

static void
on_reclaim(evutil_socket_t fd, short what, void *arg)
{
	struct purge_api *a = arg;
	struct timeval tv = {0, 1000};
	int done = 0;

	(void)fd;
	(void)what;
	if (cache_store_reclaim(a->store, a->reclaim_pos, RECLAIM_SCAN,
	        &a->reclaimed, &done) != CDN_OK) {
		tv.tv_sec = 1; /* logged; try again later */
		tv.tv_usec = 0;
	} else if (done && a->reclaim_again) {
		a->reclaim_again = 0;
		memset(a->reclaim_pos, 0, sizeof(a->reclaim_pos));
	} else if (done) {
		a->reclaim_running = 0;
		CDN_LOG(CDN_LOG_INFO, "purge",
		    "reclaim: %" PRIu64 " purged objects deleted in %" PRIu64
		    " ms",
		    a->reclaimed, cdn_now_ms() - a->reclaim_start_ms);
		return;
	}
	evtimer_add(a->reclaim_ev, &tv);
}

void
purge_reclaim_start(struct purge_api *a)
{
	struct timeval tv = {0, 1000};

	MAGIC_CHECK(a, PURGE_API_MAGIC);
	if (a->reclaim_running) {
		a->reclaim_again = 1;
		return;
	}
	if (a->reclaim_ev == NULL)
		a->reclaim_ev = evtimer_new(a->base, on_reclaim, a);
	memset(a->reclaim_pos, 0, sizeof(a->reclaim_pos));
	a->reclaim_running = 1;
	a->reclaimed = 0;
	a->reclaim_start_ms = cdn_now_ms();
	evtimer_add(a->reclaim_ev, &tv);
}

void
purge_reclaim_stop(struct purge_api *a)
{
	if (a->reclaim_ev != NULL)
		event_free(a->reclaim_ev);
	a->reclaim_ev = NULL;
	a->reclaim_running = 0;
}

/* ---- purging ---- */

/* Apply the purge, answer, audit. */
static void
run_purge(struct purge_api *a, struct http_txn *txn,
    const struct http_token *tok, struct plist *l, int soft, int dry,
    uint64_t start_ns)
{
	struct cdn_strbuf what = {.max = WHAT_MAX};
	json_t *items, *j;
	uint64_t seq = 0, total = 0;
	double ms;
	int rc;

	rc = cache_store_purge(a->store, l->v, l->n, soft, dry, &seq);
	/* Microsecond resolution: no binary-float noise in the JSON. */
	ms = (double)((cdn_now_ns() - start_ns) / 1000) / 1000.0;
	if (rc != CDN_OK) {
		audit(a, "client=%s token=%s failed=%s items=%u ms=%.3f",
		    http_txn_client_addr(txn), tok->id, cdn_strerror(rc), l->n,
		    ms);
		send_error(txn, 500, "the purge could not be committed");
		return;
	}
	items = json_array();
	for (unsigned i = 0; i < l->n; i++) {
		const struct cache_purge_item *it = &l->v[i];
		const char *type = it->kind == CACHE_PURGE_URL ? "url"
		    : it->kind == CACHE_PURGE_TAG              ? "tag"
		                                               : "prefix";

		j = json_pack("{s:s, s:s#, s:s#}", "type", type, "value",
		    l->shown[i], (int)l->shown_len[i], "key", it->name,
		    (int)it->len);
		if (it->matched == CACHE_MATCHED_UNKNOWN) {
			json_object_set_new(j, "matched", json_null());
		} else {
			json_object_set_new(j, "matched",
			    json_integer((json_int_t)it->matched));
			total += it->matched;
		}
		json_array_append_new(items, j);
		cdn_sb_printf(&what, "%s%s:%.*s", i > 0 ? "," : "", type,
		    (int)it->len, it->name);
	}
	if (!dry)
		a->purges++;
	for (unsigned i = 0; !dry && !soft && i < l->n; i++) {
		if (l->v[i].kind != CACHE_PURGE_URL) {
			purge_reclaim_start(a);
			break;
		}
	}
	audit(a,
	    "client=%s token=%s seq=%" PRIu64
	    " mode=%s dry=%d items=%u matched=%" PRIu64 " ms=%.3f what=%s%s",
	    http_txn_client_addr(txn), tok->id, seq, soft ? "soft" : "hard",
	    dry, l->n, total, ms, what.failed ? "" : what.p,
	    what.failed ? "(too long)" : "");
	cdn_sb_free(&what);
	CDN_LOG(CDN_LOG_INFO, "purge",
	    "seq %" PRIu64 ": %u item(s), %s%s, %.3f ms", seq, l->n,
	    soft ? "soft" : "hard", dry ? ", dry run" : "", ms);
	send_json(txn, 200,
	    json_pack("{s:s, s:I, s:b, s:b, s:I, s:o, s:f}", "status", "ok",
	        "seq", (json_int_t)seq, "soft", soft, "dry_run", dry, "matched",
	        (json_int_t)total, "items", items, "ms", ms));
}

/* Does the request have a field <name> with value <v> (case-insensitive)? */
static int
field_is(const struct http_request *req, const char *name, const char *v)
{
	const struct http_header *h = http_request_find(req, name);

	return h != NULL && h->value.len == strlen(v) &&
	    strncasecmp(h->value.p, v, h->value.len) == 0;
}

/* Remove "dry=1" parameters from a query; *dry tells if there was one. */
static size_t
strip_dry(const char *q, size_t len, char *out, int *dry)
{
	const char *p = q, *end = q + len, *amp;
	size_t n = 0;

	while (p < end) {
		amp = memchr(p, '&', (size_t)(end - p));
		if (amp == NULL)
			amp = end;
		if ((size_t)(amp - p) == 5 && memcmp(p, "dry=1", 5) == 0) {
			*dry = 1;
		} else if (amp > p) {
			if (n > 0)
				out[n++] = '&';
			memcpy(out + n, p, (size_t)(amp - p));
			n += (size_t)(amp - p);
		}
		p = amp + 1;
	}
	return n;
}

/* PURGE: a URL, or the tags of Surrogate-Key / xkey fields. */
static void
purge_method(struct purge_api *a, struct http_txn *txn,
    const struct http_token *tok, uint64_t start_ns)
{
	static const char *const tag_fields[] = {"Surrogate-Key", "xkey"};
	const struct http_request *req = http_txn_request(txn);
	struct cdn_strbuf hb = {.max = 256 * 1024};
	struct plist l;
	char tags[CACHE_TAGS_CAP], *q = NULL;
	const char *host, *scheme = NULL, *path, *query;
	size_t hostlen, pathlen, querylen, n;
	int soft, dry, has_query, rc = CDN_OK;

	memset(&l, 0, sizeof(l));
	soft = field_is(req, "purge-mode", "soft");
	dry = field_is(req, "purge-dry-run", "1");
	for (unsigned i = 0; i < req->n_headers; i++) {
		const struct http_header *h = &req->headers[i];

		cdn_sb_add(&hb, h->name.p, h->name.len);
		cdn_sb_add(&hb, ": ", 2);
		cdn_sb_add(&hb, h->value.p, h->value.len);
		cdn_sb_add(&hb, "\r\n", 2);
	}
	n = hb.failed
	    ? 0
	    : cache_tags_parse(hb.p, hb.len, tag_fields, 2, tags, sizeof(tags));
	cdn_sb_free(&hb);
	if (n > 0) {
		const char *p = tags, *end = tags + n, *sp;

		while (p < end && rc == CDN_OK) {
			sp = memchr(p, ' ', (size_t)(end - p));
			if (sp == NULL)
				sp = end;
			rc = plist_add(&l, CACHE_PURGE_TAG, p, (size_t)(sp - p),
			    p, (size_t)(sp - p));
			p = sp + 1;
		}
		if (rc == CDN_OK)
			run_purge(a, txn, tok, &l, soft, dry, start_ns);
		else
			send_item_error(txn, rc, "too many tags");
		/* shown[] borrowed tags[]: answered before it goes. */
		plist_free(&l);
		return;
	}
	if (req->target_form == HTTP_TARGET_ABSOLUTE) {
		scheme =
		    http_slice_eq_ci(req->scheme, "https") ? "https" : "http";
		host = req->authority.p;
		hostlen = req->authority.len;
	} else if (req->target_form == HTTP_TARGET_ORIGIN &&
	    req->host.len > 0) {
		host = req->host.p;
		hostlen = req->host.len;
	} else {
		send_error(
		    txn, 400, "PURGE needs a Host field or an absolute URL");
		return;
	}
	path = req->path.p;
	pathlen = req->path.len;
	has_query = req->has_query;
	query = req->query.p != NULL ? req->query.p : "";
	querylen = req->query.len;
	if (has_query) {
		q = malloc(querylen + 1);
		if (q == NULL) {
			send_error(txn, 500, "out of memory");
			return;
		}
		querylen = strip_dry(query, querylen, q, &dry);
		query = q;
		has_query = querylen > 0;
	}
	rc = add_url(a, &l, CACHE_PURGE_URL, scheme, host, hostlen, path,
	    pathlen, query, querylen, has_query, req->target.p,
	    req->target.len);
	if (rc == CDN_OK)
		run_purge(a, txn, tok, &l, soft, dry, start_ns);
	else
		send_item_error(txn, rc, "the URL cannot be made a cache key");
	plist_free(&l);
	free(q);
}

/*
 * Members of a POST /purge body, into l.  NULL, or the reason (static or
 * in <why>) with *rcp CDN_ENOMEM when memory ran out, else CDN_EINVAL.
 */
static const char *
json_items(struct purge_api *a, json_t *root, struct plist *l, int *soft,
    int *dry, char *why, size_t whylen, int *rcp)
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
				rc = plist_add(l, kind, s, len, s, len);
			} else if (url_split(s, len, &scheme, &host, &hostlen,
			               &path, &pathlen, &query, &querylen,
			               &has_query) != CDN_OK) {
				snprintf(why, whylen,
				    "\"%s\"[%zu]: not an absolute http:// or "
				    "https:// URL",
				    name, i);
				return why;
			} else {
				rc = add_url(a, l, kind, scheme, host, hostlen,
				    path, pathlen, query, querylen, has_query,
				    s, len);
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

static void
purge_json(struct preq *pr, struct http_txn *txn)
{
	struct purge_api *a = pr->api;
	char why[256], msg[400];
	json_error_t err;
	const char *bad;
	struct plist l;
	json_t *root;
	int soft = 0, dry = 0, rc;

	memset(&l, 0, sizeof(l));
	root = json_loadb(pr->body.p != NULL ? pr->body.p : "", pr->body.len,
	    JSON_REJECT_DUPLICATES, &err);
	if (root == NULL) {
		snprintf(msg, sizeof(msg), "bad JSON at line %d column %d: %s",
		    err.line, err.column, err.text);
		send_error(txn, 400, msg);
		return;
	}
	bad = json_items(a, root, &l, &soft, &dry, why, sizeof(why), &rc);
	if (bad != NULL)
		send_item_error(txn, rc, bad);
	else
		run_purge(a, txn, pr->tok, &l, soft, dry, pr->start_ns);
	/* shown[] borrowed strings of root: answered before it goes. */
	plist_free(&l);
	json_decref(root);
}

/* ---- inspect ---- */

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The value of query parameter <name>, percent-decoded into out. */
static int
query_param(const struct http_request *req, const char *name, char *out,
    size_t cap, size_t *outlen)
{
	const char *p = req->query.p, *end = p + req->query.len, *amp;
	size_t nl = strlen(name), n = 0;

	while (p != NULL && p < end) {
		amp = memchr(p, '&', (size_t)(end - p));
		if (amp == NULL)
			amp = end;
		if ((size_t)(amp - p) > nl && memcmp(p, name, nl) == 0 &&
		    p[nl] == '=') {
			for (const char *s = p + nl + 1; s < amp; s++) {
				char c = *s;

				if (c == '%' && amp - s > 2 &&
				    hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
					c = (char)(hexval(s[1]) * 16 +
					    hexval(s[2]));
					s += 2;
				} else if (c == '+') {
					c = ' ';
				}
				if (n == cap)
					return CDN_ELIMIT;
				out[n++] = c;
			}
			*outlen = n;
			return CDN_OK;
		}
		p = amp + 1;
	}
	return CDN_NOTFOUND;
}

static json_t *
obj_json(const struct cache_obj *o, int64_t now)
{
	char hex[2 * CACHE_HASH_LEN + 1];
	int64_t age =
	    cache_current_age(o->d.initial_age_s, o->response_time, now);
	int state =
	    atomic_load(&((struct cache_obj *)(uintptr_t)o)->purge_state);
	json_t *tags = json_array(), *j;
	const char *p = o->tags, *end = o->tags + o->tags_len, *sp;

	while (p < end) {
		sp = memchr(p, ' ', (size_t)(end - p));
		if (sp == NULL)
			sp = end;
		json_array_append_new(tags, json_stringn(p, (size_t)(sp - p)));
		p = sp + 1;
	}
	snprintf(hex, sizeof(hex), "%016" PRIx64, o->variant);
	j = json_pack("{s:s, s:i, s:s#, s:s#, s:I, s:I, s:I, s:I, s:I, s:o, "
	              "s:s}",
	    "variant", hex, "status", o->status, "vary", o->vary,
	    (int)o->vary_len, "headers", o->fields, (int)o->fields_len, "age",
	    (json_int_t)age, "ttl_left", (json_int_t)(o->d.freshness_s - age),
	    "size", (json_int_t)o->body_len, "stored_at",
	    (json_int_t)o->stored_at, "purge_gen", (json_int_t)o->purge_gen,
	    "tags", tags, "purged",
	    state == CACHE_PURGED_HARD       ? "hard"
	        : state == CACHE_PURGED_SOFT ? "soft"
	                                     : "no");
	return j;
}

static void
inspect(struct purge_api *a, struct http_txn *txn)
{
	const struct http_request *req = http_txn_request(txn);
	struct cache_obj *v[64];
	struct plist l;
	char url[KEY_MAX], hex[2 * CACHE_HASH_LEN + 1];
	const char *scheme, *host, *path, *query;
	size_t ulen, hostlen, pathlen, querylen;
	int has_query, rc;
	unsigned n = 0;
	json_t *keys;
	int64_t now = (int64_t)time(NULL);

	memset(&l, 0, sizeof(l));
	if (query_param(req, "url", url, sizeof(url), &ulen) != CDN_OK ||
	    url_split(url, ulen, &scheme, &host, &hostlen, &path, &pathlen,
	        &query, &querylen, &has_query) != CDN_OK) {
		send_error(txn, 400, "give url=<absolute http(s) URL>");
		return;
	}
	rc = add_url(a, &l, CACHE_PURGE_URL, scheme, host, hostlen, path,
	    pathlen, query, querylen, has_query, url, ulen);
	if (rc != CDN_OK) {
		send_item_error(txn, rc, "the URL cannot be made a cache key");
		plist_free(&l);
		return;
	}
	keys = json_array();
	for (unsigned i = 0; i < l.n; i++) {
		json_t *vars = json_array();

		/* On an error, what was read is still shown. */
		if (cache_store_variants(a->store, l.v[i].key, v,
		        CDN_ARRAY_LEN(v), &n) != CDN_OK)
			CDN_LOG(CDN_LOG_WARN, "purge", "inspect: read failed");
		for (unsigned k = 0; k < n; k++) {
			json_array_append_new(vars, obj_json(v[k], now));
			cache_obj_unref(&v[k]);
		}
		for (unsigned k = 0; k < CACHE_HASH_LEN; k++)
			snprintf(hex + 2 * k, 3, "%02x", l.v[i].key[k]);
		json_array_append_new(keys,
		    json_pack("{s:s, s:s, s:o}", "key", l.v[i].name, "hash",
		        hex, "variants", vars));
	}
	send_json(txn, 200,
	    json_pack("{s:s#, s:I, s:o}", "url", url, (int)ulen, "purge_seq",
	        (json_int_t)cache_store_purge_seq(a->store), "keys", keys));
	plist_free(&l);
}

/* ---- the handler ---- */

static void
refuse(struct purge_api *a, struct http_txn *txn, int status, const char *why)
{
	const struct http_request *req = http_txn_request(txn);
	int ml = (int)(req->method_str.len < 32 ? req->method_str.len : 32);
	int tl = (int)(req->target.len < 256 ? req->target.len : 256);

	a->refused++;
	CDN_LOG(CDN_LOG_WARN, "purge", "%d for client %s: %.*s %.*s: %s",
	    status, http_txn_client_addr(txn), ml, req->method_str.p, tl,
	    req->target.p, why);
	audit(a, "client=%s refused=%d why=\"%s\" request=\"%.*s %.*s\"",
	    http_txn_client_addr(txn), status, why, ml, req->method_str.p, tl,
	    req->target.p);
	if (status == 401) {
		static const char f[] =
		    "WWW-Authenticate: Bearer realm=\"purge\"\r\n"
		    "Content-Type: application/json\r\n";

		http_txn_respond(txn, 401, f, sizeof(f) - 1, -1);
		http_txn_write(txn, "{\"error\":\"unauthorized\"}\n", 25);
		http_txn_finish(txn);
		return;
	}
	send_error(txn, status, why);
}

static void
preq_free(struct preq **prp)
{
	struct preq *pr = *prp;

	*prp = NULL;
	if (pr == NULL)
		return;
	MAGIC_CHECK(pr, PREQ_MAGIC);
	cdn_sb_free(&pr->body);
	MAGIC_WIPE(pr);
	free(pr);
}

static void
on_body(struct http_txn *txn, void *arg)
{
	struct preq *pr = http_txn_data(txn);
	char buf[READ_SIZE];
	long n;

	(void)arg;
	if (pr == NULL)
		return; /* answered without the body: the server drops it */
	MAGIC_CHECK(pr, PREQ_MAGIC);
	for (;;) {
		n = http_txn_body_read(txn, buf, sizeof(buf));
		if (n == CDN_AGAIN)
			return;
		if (n < 0)
			return; /* answered 400/413; on_abort frees pr */
		if (n == 0)
			break;
		cdn_sb_add(&pr->body, buf, (size_t)n);
	}
	http_txn_set_data(txn, NULL);
	if (pr->body.failed)
		send_error(txn, 413, "body too large");
	else
		purge_json(pr, txn);
	preq_free(&pr);
}

static void
on_abort(struct http_txn *txn, void *arg)
{
	struct preq *pr = http_txn_data(txn);

	(void)arg;
	http_txn_set_data(txn, NULL);
	preq_free(&pr);
}

static void
on_request(struct http_txn *txn, void *arg)
{
	struct purge_api *a = arg;
	const struct http_request *req = http_txn_request(txn);
	const struct http_token *tok;
	struct preq *pr;
	uint64_t start_ns = cdn_now_ns();
	int is_get = req->method == HTTP_M_GET || req->method == HTTP_M_HEAD;

	MAGIC_CHECK(a, PURGE_API_MAGIC);
	if (!http_acl_allows(&a->acl, http_txn_client_addr(txn))) {
		refuse(a, txn, 403, "address not allowed to purge");
		return;
	}
	if (is_get && http_slice_eq_ci(req->path, "/healthz")) {
		http_txn_simple(txn, 200, "text/plain", "ok\n", 3);
		return;
	}
	tok = http_tokens_check(&a->tokens, req);
	if (tok == NULL) {
		refuse(a, txn, 401, "missing or wrong bearer token");
		return;
	}
	if (req->method == HTTP_M_PURGE) {
		purge_method(a, txn, tok, start_ns);
	} else if (req->method == HTTP_M_POST &&
	    http_slice_eq_ci(req->path, "/purge") && req->has_query) {
		/* Never a real purge for what was meant as a dry run. */
		send_error(txn, 400,
		    "POST /purge takes no query: its options (dry_run, soft) "
		    "are members of the JSON body");
	} else if (req->method == HTTP_M_POST &&
	    http_slice_eq_ci(req->path, "/purge")) {
		pr = cdn_xcalloc(1, sizeof(*pr));
		pr->magic = PREQ_MAGIC;
		pr->api = a;
		pr->tok = tok;
		pr->body.max = PURGE_MAX_BODY;
		pr->start_ns = start_ns;
		http_txn_set_data(txn, pr);
		on_body(txn, a);
	} else if (is_get && http_slice_eq_ci(req->path, "/inspect")) {
		inspect(a, txn);
	} else if (req->method != HTTP_M_POST && !is_get) {
		static const char f[] = "Allow: PURGE, POST, GET, HEAD\r\n"
		                        "Content-Type: application/json\r\n";

		http_txn_respond(txn, 405, f, sizeof(f) - 1, -1);
		http_txn_write(txn, "{\"error\":\"method not allowed\"}\n", 31);
		http_txn_finish(txn);
	} else {
		send_error(txn, 404, "no such endpoint");
	}
}

const struct http_handler purge_api_handler = {
    .on_request = on_request,
    .on_body = on_body,
    .on_abort = on_abort,
};
