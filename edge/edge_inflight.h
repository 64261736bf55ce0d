/*
 * The in-flight table: which cache keys have a shared origin fetch running
 * (an edge_fill, opaque here) and which are remembered as hit-for-miss
 * (their responses were not storable: their requests fetch alone for a
 * while).  One table per node, shared by every worker, so that misses on
 * any worker find each other.
 *
 * Locking: 64 shards by key; a shard's mutex covers its buckets and every
 * entry in them.  A caller locks the shard of one key (edge_inflight_lock),
 * reads and changes that key's entry, and unlocks; the table calls out to
 * nothing, so callers may take their own locks inside (the fill's mutex),
 * never the other way round.
 */
#ifndef EDGE_INFLIGHT_H
#define EDGE_INFLIGHT_H

#include <stdint.h>

#include "cache/cache.h"

struct edge_inflight;
struct inflight_shard;
struct inflight_entry;

struct edge_inflight *edge_inflight_new(void);
/* Every fill must have left the table (their workers have stopped). */
void edge_inflight_free(struct edge_inflight **tp);

/* One key's place in the table, locked (on the stack of the caller). */
struct edge_inflight_slot {
	struct inflight_shard *shard;
	struct inflight_entry *en; /* NULL: the key has no entry */
	const uint8_t *key;
};

/* Lock the shard of <key> and find its entry (expired markers go). */
void edge_inflight_lock(struct edge_inflight *t,
    const uint8_t key[CACHE_HASH_LEN], struct edge_inflight_slot *sl);
void edge_inflight_unlock(struct edge_inflight_slot *sl);

/* The fill running for the key, or NULL. */
void *edge_inflight_fill(const struct edge_inflight_slot *sl);
/* Whether the key is hit-for-miss (an unexpired marker). */
int edge_inflight_is_hfm(const struct edge_inflight_slot *sl);
/* <fill> runs for the key from now on (replacing a marker or a fill). */
void edge_inflight_set_fill(struct edge_inflight_slot *sl, void *fill);
/*
 * The key's fill leaves: with <hfm_ms> > 0 a hit-for-miss marker for that
 * long takes its place (at most a bounded number per shard), else nothing.
 */
void edge_inflight_end_fill(struct edge_inflight_slot *sl, uint64_t hfm_ms);
/* The key is cacheable again: drop its hit-for-miss marker, if any. */
void edge_inflight_clear_hfm(
    struct edge_inflight *t, const uint8_t key[CACHE_HASH_LEN]);

#endif /* EDGE_INFLIGHT_H */
