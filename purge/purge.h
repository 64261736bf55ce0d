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

#include "cache/cache.h"
#include "http/http_access.h"
#include "http/http_server.h"

#define PURGE_MAX_BODY  (1024 * 1024) /* POST /purge bodies: 413 beyond */
#define PURGE_MAX_ITEMS 10000         /* URLs, tags and prefixes per purge */

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

#endif /* PURGE_H */
