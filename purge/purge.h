/*
 * purged: the purge API of one edge node (docs/purge.md).  A program of
 * its own on the shared HTTP/1.1 server layer, one libevent loop, opening
 * the same LMDB environment as edged.
 *
 * purge_api.c serves the API: authentication (address ACL, Bearer
 * tokens), PURGE and POST /purge, GET /inspect, the audit log.  purged.c
 * is the program: flags, the listener, signals.
 */
#ifndef PURGE_H
#define PURGE_H

#include <stdio.h>

#include <jansson.h>

#include "cache/cache.h"
#include "http/http_access.h"
#include "http/http_server.h"

#define PURGE_MAX_BODY  (1024 * 1024) /* POST /purge bodies: 413 beyond */
#define PURGE_MAX_ITEMS 10000         /* URLs, tags and prefixes per purge */

/* The items of one purge, with the key strings they own (purge_items.c). */
struct purge_plist {
	struct cache_purge_item *v;
	char **owned;       /* per item: its name, freed at the end */
	const char **shown; /* per item: as the client wrote it (borrowed) */
	size_t *shown_len;
	unsigned n, cap;
};

struct purge_bus;

struct purge_api {
	uint32_t magic;
#define PURGE_API_MAGIC 0x6ad03e17u
	struct cache_store *store;
	/* Each site's key rules, found by host as edged finds them. */
	const struct cache_sites *sites;
	struct http_acl acl;
	struct http_tokens tokens;
	FILE *audit; /* line-buffered; NULL: none */
	char *audit_path;
	uint64_t purges, refused;
	/* Background reclaim of hard-purged objects (purge_reclaim_start). */
	struct event_base *base;
	struct event *reclaim_ev;
	uint8_t reclaim_pos[CACHE_HASH_LEN + 8];
	int reclaim_running, reclaim_again;
	uint64_t reclaimed, reclaim_start_ms;
	/* The purge bus (purge_bus.c); NULL: purges are applied here only. */
	struct purge_bus *bus;
};

/* The handler of purged's listener; its arg is the struct purge_api. */
extern const struct http_handler purge_api_handler;

/*
 * Scan the store for objects a hard tag or prefix purge covers and delete
 * them, a batch per turn of the loop so that purges keep being answered
 * at once.  A call while a scan runs makes it start over when it ends.
 */
void purge_reclaim_start(struct purge_api *a);
void purge_reclaim_stop(struct purge_api *a);

/* Open (append) or reopen (SIGHUP) the audit log.  CDN_EIO, logged. */
int purge_audit_open(struct purge_api *a) CDN_WUR;

/*
 * What purged answers for a purge applied here: {"status", "seq", "soft",
 * "dry_run", "matched", "items"} for l (after cache_store_purge*), its
 * total matched in *total.  A new reference; NULL if memory ran out.
 */
json_t *purge_result_json(const struct purge_plist *l, int soft, int dry,
    uint64_t seq, uint64_t *total);

/* Send <j> (taken) as the JSON answer, or 500 if it is NULL. */
void purge_send_json(struct http_txn *txn, int status, json_t *j);
void purge_send_error(struct http_txn *txn, int status, const char *why);

/*
 * After a purge was applied (l with seq, or a bus answer): audit and log
 * it; start the reclaim a hard tag or prefix purge needs.
 */
void purge_note(struct purge_api *a, struct http_txn *txn, const char *token_id,
    const struct purge_plist *l, int soft, int dry, uint64_t seq,
    uint64_t matched, double ms, const char *bus_id);

/* ---- items (purge_items.c) ---- */

void purge_plist_free(struct purge_plist *l);

/*
 * Add an item; name is copied.  CDN_ELIMIT past PURGE_MAX_ITEMS,
 * CDN_ENOMEM when memory runs out (the client sized the list: answer 503).
 */
int purge_plist_add(struct purge_plist *l, enum cache_purge_kind kind,
    const char *name, size_t len, const char *shown, size_t shown_len) CDN_WUR;

/* Split an absolute http(s) URL (its host with the port, a path of "/"
 * when it has none).  CDN_EINVAL if it is not one. */
int purge_url_split(const char *u, size_t len, const char **scheme,
    const char **host, size_t *hostlen, const char **path, size_t *pathlen,
    const char **query, size_t *querylen, int *has_query) CDN_WUR;

/*
 * Add the key string(s) edged uses for a URL, with the rules of the site
 * its host names; <scheme> NULL (a PURGE with a Host) is both the http and
 * the https key where the site keys by scheme.  CDN_EINVAL if the URL
 * makes no key; else as purge_plist_add().
 */
int purge_add_url(struct purge_api *a, struct purge_plist *l,
    enum cache_purge_kind kind, const char *scheme, const char *host,
    size_t hostlen, const char *path, size_t pathlen, const char *query,
    size_t querylen, int has_query, const char *shown,
    size_t shown_len) CDN_WUR;

/*
 * The members of a POST /purge body (or, with <bus>, of a purge bus
 * entry, which also takes "//HOST/PATH" URLs and no dry_run) into l;
 * shown[] borrows root's strings.  NULL, or the reason (static or in
 * <why>) with *rcp CDN_ENOMEM when memory ran out, else CDN_EINVAL.
 */
const char *purge_json_items(struct purge_api *a, json_t *root,
    struct purge_plist *l, int *soft, int *dry, int bus, char *why,
    size_t whylen, int *rcp);

#endif /* PURGE_H */
