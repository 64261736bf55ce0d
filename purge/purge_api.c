/*
 * The purge API (purge/purge.h, docs/purge.md), on purged's one event loop.
 *
 *   PURGE /path?query (Host) or PURGE http://host/path: that URL, every
 *       variant.  With Surrogate-Key: or xkey: fields, those tags instead.
 *       Purge-Mode: soft makes it soft; a dry=1 query parameter (removed
 *       from the URL) or Purge-Dry-Run: 1 only counts.
 *   POST /purge {"urls": [...], "tags": [...], "prefixes": [...],
 *       "soft": false, "dry_run": false}: any mix in one transaction.
 *   POST /purge?wait=TIMEOUT: with purge_bus, answer once every live
 *       node applied it (docs/fleet.md).
 *   GET /inspect?url=URL: what the store holds for a URL.
 *   GET /fleet: the purge bus's nodes (with purge_bus).
 *   GET /healthz: 200 (ACL only, no token).
 *
 * Every request must come from an address in the ACL (else 403) and carry
 * a Bearer token from the token file (else 401); refusals are logged with
 * the client and written to the audit log, as is every purge.
 *
 * With purge_bus set, a purge (not a dry run) is published to the bus
 * instead of applied here (purge_bus.c): every node, this one included,
 * applies it from there, and the answer waits for this node's.
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
#include "conf/conf.h"
#include "purge/purge.h"
#include "purge/purge_bus.h"

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
	uint64_t wait_ms; /* ?wait=: confirmation by every live node */
};

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

void
purge_send_json(struct http_txn *txn, int status, json_t *j)
{
	send_json(txn, status, j);
}

void
purge_send_error(struct http_txn *txn, int status, const char *why)
{
	send_error(txn, status, why);
}

static const char *
item_type(enum cache_purge_kind kind)
{
	return kind == CACHE_PURGE_URL ? "url"
	    : kind == CACHE_PURGE_TAG  ? "tag"
	                               : "prefix";
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

json_t *
purge_result_json(const struct purge_plist *l, int soft, int dry, uint64_t seq,
    uint64_t *total)
{
	json_t *items, *j;
	int counted = 1;

	*total = 0;
	items = json_array();
	for (unsigned i = 0; i < l->n; i++) {
		const struct cache_purge_item *it = &l->v[i];

		j = json_pack("{s:s, s:s#, s:s#}", "type", item_type(it->kind),
		    "value", l->shown[i], (int)l->shown_len[i], "key", it->name,
		    (int)it->len);
		/* A prefix is applied as a generation, in O(1): what it
		 * made stale is never walked, so it is not counted, and
		 * "counted" says so where a pipeline can test it. */
		if (it->matched == CACHE_MATCHED_UNKNOWN) {
			json_object_set_new(j, "matched", json_null());
			counted = 0;
		} else {
			json_object_set_new(j, "matched",
			    json_integer((json_int_t)it->matched));
			*total += it->matched;
		}
		json_object_set_new(j, "counted",
		    json_boolean(it->matched != CACHE_MATCHED_UNKNOWN));
		json_array_append_new(items, j);
	}
	/* "matched" sums the counted items; "counted" is false when some
	 * item (a prefix) could not be, so the sum is not the whole. */
	return json_pack("{s:s, s:I, s:b, s:b, s:I, s:b, s:o}", "status", "ok",
	    "seq", (json_int_t)seq, "soft", soft, "dry_run", dry, "matched",
	    (json_int_t)*total, "counted", counted, "items", items);
}

void
purge_note(struct purge_api *a, struct http_txn *txn, const char *token_id,
    const struct purge_plist *l, int soft, int dry, uint64_t seq,
    uint64_t matched, double ms, const char *bus_id)
{
	struct cdn_strbuf what = {.max = WHAT_MAX};

	for (unsigned i = 0; i < l->n; i++)
		cdn_sb_printf(&what, "%s%s:%.*s", i > 0 ? "," : "",
		    item_type(l->v[i].kind), (int)l->v[i].len, l->v[i].name);
	if (!dry)
		a->purges++;
	for (unsigned i = 0; !dry && !soft && i < l->n; i++) {
		if (l->v[i].kind != CACHE_PURGE_URL) {
			purge_reclaim_start(a);
			break;
		}
	}
	if (txn != NULL)
		audit(a,
		    "client=%s token=%s seq=%" PRIu64 "%s%s mode=%s dry=%d "
		    "items=%u matched=%" PRIu64 " ms=%.3f what=%s%s",
		    http_txn_client_addr(txn), token_id, seq,
		    bus_id != NULL ? " bus_id=" : "",
		    bus_id != NULL ? bus_id : "", soft ? "soft" : "hard", dry,
		    l->n, matched, ms, what.failed ? "" : what.p,
		    what.failed ? "(too long)" : "");
	cdn_sb_free(&what);
	/* The bus's entries from other nodes: its reader logs each batch. */
	CDN_LOG(txn != NULL || bus_id == NULL ? CDN_LOG_INFO : CDN_LOG_DEBUG,
	    "purge", "seq %" PRIu64 "%s%s: %u item(s), %s%s, %.3f ms", seq,
	    bus_id != NULL ? ", bus " : "", bus_id != NULL ? bus_id : "", l->n,
	    soft ? "soft" : "hard", dry ? ", dry run" : "", ms);
}

/* Apply the purge here (no bus, or a dry run), answer, audit. */
static void
run_purge(struct purge_api *a, struct http_txn *txn,
    const struct http_token *tok, struct purge_plist *l, int soft, int dry,
    uint64_t start_ns)
{
	json_t *j;
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
	j = purge_result_json(l, soft, dry, seq, &total);
	purge_note(a, txn, tok->id, l, soft, dry, seq, total, ms, NULL);
	if (j != NULL)
		json_object_set_new(j, "ms", json_real(ms));
	send_json(txn, 200, j);
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

/*
 * Publish a PURGE of one URL to the bus: as the absolute URL, or
 * "//HOST/PATH" when it named no scheme, so that every node makes its
 * keys with its own site rules.
 */
static void
publish_url(struct purge_api *a, struct http_txn *txn,
    const struct http_token *tok, const char *scheme, const char *host,
    size_t hostlen, const char *path, size_t pathlen, const char *query,
    size_t querylen, int has_query, int soft, uint64_t start_ns)
{
	struct cdn_strbuf u = {.max = PURGE_MAX_BODY};

	if (scheme != NULL)
		cdn_sb_printf(&u, "%s:", scheme);
	cdn_sb_printf(&u, "//%.*s%.*s%s%.*s", (int)hostlen, host, (int)pathlen,
	    path, has_query ? "?" : "", (int)querylen, query);
	if (u.failed) {
		cdn_sb_free(&u);
		send_error(txn, 503, "out of memory");
		return;
	}
	purge_bus_publish(a->bus, txn, tok->id,
	    json_pack("{s:[s#], s:b}", "urls", u.p, (int)u.len, "soft", soft),
	    0, start_ns);
	cdn_sb_free(&u);
}

/* PURGE: a URL, or the tags of Surrogate-Key / xkey fields. */
static void
purge_method(struct purge_api *a, struct http_txn *txn,
    const struct http_token *tok, uint64_t start_ns)
{
	static const char *const tag_fields[] = {"Surrogate-Key", "xkey"};
	const struct http_request *req = http_txn_request(txn);
	struct cdn_strbuf hb = {.max = 256 * 1024};
	struct purge_plist l;
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
			rc = purge_plist_add(&l, CACHE_PURGE_TAG, p,
			    (size_t)(sp - p), p, (size_t)(sp - p));
			p = sp + 1;
		}
		if (rc == CDN_OK && a->bus != NULL && !dry) {
			json_t *tl = json_array();

			for (unsigned i = 0; i < l.n; i++)
				json_array_append_new(
				    tl, json_stringn(l.v[i].name, l.v[i].len));
			purge_bus_publish(a->bus, txn, tok->id,
			    json_pack("{s:o, s:b}", "tags", tl, "soft", soft),
			    0, start_ns);
		} else if (rc == CDN_OK) {
			run_purge(a, txn, tok, &l, soft, dry, start_ns);
		} else {
			send_item_error(txn, rc, "too many tags");
		}
		/* shown[] borrowed tags[]: answered before it goes. */
		purge_plist_free(&l);
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
	rc = purge_add_url(a, &l, CACHE_PURGE_URL, scheme, host, hostlen, path,
	    pathlen, query, querylen, has_query, req->target.p,
	    req->target.len);
	if (rc == CDN_OK && a->bus != NULL && !dry)
		publish_url(a, txn, tok, scheme, host, hostlen, path, pathlen,
		    query, querylen, has_query, soft, start_ns);
	else if (rc == CDN_OK)
		run_purge(a, txn, tok, &l, soft, dry, start_ns);
	else
		send_item_error(txn, rc, "the URL cannot be made a cache key");
	purge_plist_free(&l);
	free(q);
}

static void
purge_json(struct preq *pr, struct http_txn *txn)
{
	struct purge_api *a = pr->api;
	char why[256], msg[400];
	json_error_t err;
	const char *bad;
	struct purge_plist l;
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
	bad = purge_json_items(
	    a, root, &l, &soft, &dry, 0, why, sizeof(why), &rc);
	if (bad != NULL)
		send_item_error(txn, rc, bad);
	else if (a->bus != NULL && !dry)
		purge_bus_publish(a->bus, txn, pr->tok->id, json_incref(root),
		    pr->wait_ms, pr->start_ns);
	else if (pr->wait_ms > 0)
		send_error(txn, 400,
		    "wait asks the purge bus (purge_bus) to confirm, and a "
		    "dry run is never published");
	else
		run_purge(a, txn, pr->tok, &l, soft, dry, pr->start_ns);
	/* shown[] borrowed strings of root: answered before it goes. */
	purge_plist_free(&l);
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

/* The coding of a stored variant: identity, gzip, br, or "other". */
static const char *
variant_name(uint64_t variant)
{
	enum cache_enc enc = cache_variant_enc(variant);

	return enc < CACHE_ENC_COUNT ? cache_enc_name(enc) : "other";
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
	/* "variant" names the coding (what an operator asks about); the id,
	 * which also holds the Vary key, stays as "variant_id". */
	j = json_pack("{s:s, s:s, s:i, s:s#, s:s#, s:I, s:I, s:I, s:I, s:I, "
	              "s:o, s:s}",
	    "variant", variant_name(o->variant), "variant_id", hex, "status",
	    o->status, "vary", o->vary, (int)o->vary_len, "headers", o->fields,
	    (int)o->fields_len, "age", (json_int_t)age, "ttl_left",
	    (json_int_t)(o->d.freshness_s - age), "size",
	    (json_int_t)o->body_len, "stored_at", (json_int_t)o->stored_at,
	    "purge_gen", (json_int_t)o->purge_gen, "tags", tags, "purged",
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
	struct purge_plist l;
	char url[KEY_MAX], hex[2 * CACHE_HASH_LEN + 1];
	const char *scheme, *host, *path, *query;
	size_t ulen, hostlen, pathlen, querylen;
	int has_query, rc;
	unsigned n = 0;
	json_t *keys;
	int64_t now = (int64_t)time(NULL);

	memset(&l, 0, sizeof(l));
	if (query_param(req, "url", url, sizeof(url), &ulen) != CDN_OK ||
	    purge_url_split(url, ulen, &scheme, &host, &hostlen, &path,
	        &pathlen, &query, &querylen, &has_query) != CDN_OK) {
		send_error(txn, 400, "give url=<absolute http(s) URL>");
		return;
	}
	rc = purge_add_url(a, &l, CACHE_PURGE_URL, scheme, host, hostlen, path,
	    pathlen, query, querylen, has_query, url, ulen);
	if (rc != CDN_OK) {
		send_item_error(txn, rc, "the URL cannot be made a cache key");
		purge_plist_free(&l);
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
	purge_plist_free(&l);
}

/* ---- the handler ---- */

/* POST /purge's one query parameter, wait=TIMEOUT ("10s", "500ms"; a
 * bare number is seconds).  CDN_EINVAL for anything else. */
static int
parse_wait(const struct http_request *req, uint64_t *ms)
{
	char v[32], d[40];
	size_t len;
	const char *why;

	if (req->query.len < 6 || memcmp(req->query.p, "wait=", 5) != 0 ||
	    memchr(req->query.p, '&', req->query.len) != NULL ||
	    query_param(req, "wait", v, sizeof(v) - 1, &len) != CDN_OK)
		return CDN_EINVAL;
	v[len] = '\0';
	snprintf(
	    d, sizeof(d), "%s%s", v, strspn(v, "0123456789") == len ? "s" : "");
	if (conf_parse_duration_ms(d, ms, &why) != CDN_OK || *ms == 0 ||
	    *ms > 600000)
		return CDN_EINVAL;
	return CDN_OK;
}

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
	void *data = http_txn_data(txn);
	struct preq *pr;

	(void)arg;
	http_txn_set_data(txn, NULL);
	if (purge_bus_owns(data)) {
		purge_bus_abandon(data);
		return;
	}
	pr = data;
	preq_free(&pr);
}

static void
on_request(struct http_txn *txn, void *arg)
{
	struct purge_api *a = arg;
	const struct http_request *req = http_txn_request(txn);
	const struct http_token *tok;
	struct preq *pr;
	uint64_t start_ns = cdn_now_ns(), wait_ms = 0;
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
	    http_slice_eq_ci(req->path, "/purge") && req->has_query &&
	    parse_wait(req, &wait_ms) != CDN_OK) {
		/* Never a real purge for what was meant as a dry run. */
		send_error(txn, 400,
		    "POST /purge takes only wait=TIMEOUT (e.g. wait=10s) in "
		    "its "
		    "query: its options (dry_run, soft) are members of the "
		    "JSON body");
	} else if (req->method == HTTP_M_POST &&
	    http_slice_eq_ci(req->path, "/purge") && wait_ms > 0 &&
	    a->bus == NULL) {
		send_error(txn, 400,
		    "wait asks the purge bus to confirm: purge_bus is not set");
	} else if (is_get && http_slice_eq_ci(req->path, "/fleet")) {
		if (a->bus == NULL)
			send_error(txn, 404, "no purge bus (purge_bus)");
		else
			purge_bus_fleet(a->bus, txn);
	} else if (req->method == HTTP_M_POST &&
	    http_slice_eq_ci(req->path, "/purge")) {
		pr = cdn_xcalloc(1, sizeof(*pr));
		pr->magic = PREQ_MAGIC;
		pr->api = a;
		pr->tok = tok;
		pr->body.max = PURGE_MAX_BODY;
		pr->start_ns = start_ns;
		pr->wait_ms = wait_ms;
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
