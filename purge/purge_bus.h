/*
 * The purge bus on purged's side (docs/fleet.md): every purge accepted
 * here is appended to a Redis stream, and every node applies the stream
 * in order, exactly once, recording the last entry applied in LMDB in the
 * same transaction as the purge.
 *
 *   purge_bus_entry.c  the entry codec (pure: unit tests, fuzz target)
 *   purge_fleet.c      the node registry's record codec and liveness
 *                      (pure)
 *   purge_bus.c        the Redis connections on purged's loop: reader,
 *                      publisher, registry, confirmation
 */
#ifndef PURGE_BUS_H
#define PURGE_BUS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "cache/cache_bus.h"
#include "conf/conf.h"

struct purge_api;
struct http_txn;
struct event_base;

/* ---- entries (purge_bus_entry.c) ---- */

/* Largest entry accepted, all fields together: POST /purge's own bound. */
#define PURGE_BUS_ENTRY_MAX (1024 * 1024)
#define PURGE_BUS_NONCE_MAX 33 /* 32 hex digits and the NUL */

/*
 * An entry's fields: "v" "1", "node" the publishing node's name, "nonce"
 * (hex, the publisher's way to recognise its own entry), "purge" the
 * purge as a JSON object {"urls": [...], "tags": [...], "prefixes":
 * [...], "soft": bool}: absolute URLs (or "//HOST/PATH" for a PURGE that
 * named no scheme), so that every node makes keys with its own site
 * rules.  Unknown fields are ignored (a later version may add some).
 */
struct purge_bus_entry {
	char node[CONF_NODE_NAME_MAX];
	char nonce[PURGE_BUS_NONCE_MAX];
	json_t *purge; /* owned; the shape is checked, the URLs are not */
};

/*
 * Decode the fields f[0..nf) (lengths flen[]), alternating name and
 * value, into *e.  CDN_OK (release with purge_bus_entry_clear), or
 * CDN_EINVAL with *why a static reason and *e empty: a missing or bad
 * version, node, nonce or purge, more than PURGE_BUS_ENTRY_MAX bytes.
 */
int purge_bus_entry_decode(const char *const *f, const size_t *flen, size_t nf,
    struct purge_bus_entry *e, const char **why) CDN_WUR;
void purge_bus_entry_clear(struct purge_bus_entry *e);

/*
 * The "purge" field for <purge> (urls, tags, prefixes, soft; anything
 * else is left out), NUL-terminated, in *out (free()).  CDN_OK, CDN_ELIMIT
 * (over PURGE_BUS_ENTRY_MAX), CDN_ENOMEM.
 */
int purge_bus_entry_encode(
    const json_t *purge, char **out, size_t *len) CDN_WUR;

/* ---- the node registry (purge_fleet.c) ---- */

/* A node whose heartbeat is older than this is down: it is not waited
 * for, and confirmation names it as down (docs/fleet.md). */
#define PURGE_FLEET_LIVE_S  5
#define PURGE_FLEET_LIVE_MS (PURGE_FLEET_LIVE_S * 1000)

/* One node's record in the hash "<stream>:nodes", field = its name. */
struct purge_fleet_node {
	struct cache_bus_id applied;
	uint64_t lag_entries, lag_ms;
	uint64_t heartbeat_ms;
};

#define PURGE_FLEET_RECORD_MAX 128

/* "v1 <applied> <lag_entries> <lag_ms> <heartbeat_ms>" into out. */
void purge_fleet_record_format(
    const struct purge_fleet_node *n, char out[PURGE_FLEET_RECORD_MAX]);

/* Parse a record.  CDN_OK or CDN_EINVAL. */
int purge_fleet_record_parse(
    const char *s, size_t len, struct purge_fleet_node *n) CDN_WUR;

/* Is a node with this heartbeat live at <now_ms>? */
int purge_fleet_live(uint64_t heartbeat_ms, uint64_t now_ms);

/* ---- the bus (purge_bus.c) ---- */

/*
 * Start the bus for purged: the reader and the control connection on
 * <base>, retrying with backoff while Redis is out of reach (it is not
 * needed to start).  <password> may be NULL; it is copied.  NULL after
 * logging why (a bad purge_bus URL).
 */
struct purge_bus *purge_bus_new(struct purge_api *a, const struct conf *c,
    struct event_base *base, const char *password);
void purge_bus_free(struct purge_bus **bp);

/*
 * Publish a purge (body: taken; its items already checked) and answer
 * <txn> once this node has applied it, or (<wait_ms> > 0) once every live
 * node has, or when the bus fails (503).  <token_id> is borrowed for the
 * audit line and must live as long as purged's token table.
 */
void purge_bus_publish(struct purge_bus *b, struct http_txn *txn,
    const char *token_id, json_t *body, uint64_t wait_ms, uint64_t start_ns);

/* Is <data> (a txn's data) a publish in flight?  on_abort then calls
 * purge_bus_abandon(). */
int purge_bus_owns(const void *data);
void purge_bus_abandon(void *data);

/* GET /fleet: this node's bus state and every node of the registry. */
void purge_bus_fleet(struct purge_bus *b, struct http_txn *txn);

#endif /* PURGE_BUS_H */
