/*
 * Eviction from LMDB, on the writer thread (cache_writer.c) before each
 * batch, and the LRU it follows.
 *
 * Accounting and eviction.  "Used bytes" are the pages that hold data:
 * the sum of branch, leaf and overflow pages of every database (ours, the
 * main db and LMDB's freelist db) times the page size, read with
 * mdb_stat() inside the writer's transaction, plus the pages of the
 * sub-databases LMDB makes under a tag many objects carry, which mdb_stat
 * does not count: after each commit the writer counts the pages in use
 * exactly (those up to the file's last page that are not on the
 * freelist; one pass over the freelist's records, and only when there
 * are tags) and keeps the difference (cache_store_count_pages).  This
 * includes LMDB's per-record and per-page overhead, overflow page
 * rounding and half-full pages, costs O(1) per object and needs no scan
 * at start-up; it leaves out only pages that are free or not yet
 * reusable, which the space above the high-water mark absorbs.  Before each
 * batch the writer evicts, in a transaction of its own, the objects of the
 * oldest lru entries until used + the batch's estimated bytes fits under
 * high_water_pct of disk_bytes, down to low_water_pct.  (LMDB reuses the pages
 * a commit frees only from the second transaction after it: not in the batch
 * that follows, but from the next round on.)  A batch carries at most (high -
 * low) / 2 bytes of objects (clamped to 256 KiB .. 64 MiB) and W_BATCH_MSGS
 * messages, fewer in a store of less than a few GB (cache_writer.c, batch_cap):
 * with random keys each commit rewrites many leaf pages, so larger batches
 * write less per object (1024 gave 1.5x the puts/s of 256 here), but the file
 * keeps two commits' rewritten pages beyond the pages in use.  If LMDB still
 * reports MDB_MAP_FULL (or MDB_TXN_FULL), the transaction is aborted, the
 * object being written is dropped (counted in map_full and put_drops), the
 * writer evicts a further SQUEEZE_PCT of the map and retries the rest of the
 * batch: a full map is never an error for a caller.  Objects larger than 1/8 of
 * disk_bytes are kept in memory only.
 *
 * LRU.  lru is keyed by (minute bucket, sequence), and an object's record
 * ends with its lru key (lru_pos holds it for records of format 1), so
 * one bucket is evicted in write order.
 * cache_store_touch() enqueues only when the object's recorded bucket
 * (cache_obj.lru_bucket, an atomic hint, claimed by compare-and-swap so
 * that one hit per object and minute enqueues) is older than the current
 * minute; the writer moves the lru entry, in the eviction transaction when
 * there is one, so that an object just used is not the one evicted.
 */
#include "config.h"

#include <lmdb.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "cache/cache.h"
#include "cache/cache_int.h"
#include "cache/cache_store_int.h"

#define EVICT_TXN_MAX 1024 /* objects deleted per eviction txn */

/* The lru key just after <lk> (keys are big-endian numbers). */
static void
lrukey_next(uint8_t lk[CACHE_LRUKEY_LEN])
{
	for (size_t i = CACHE_LRUKEY_LEN; i-- > 0;)
		if (++lk[i] != 0)
			break;
}

/*
 * Delete the objects of the oldest lru entries, in <txn>, until used bytes
 * are <= target or <max> objects went; *usedp: used bytes then,
 * *is_empty: the lru ran out.  An object a client is being sent from disk
 * (cache_pin.c) is passed over: it is in use, and its chunks would stay
 * until the client is done anyway.  Returns 0 or an LMDB code.
 */
static int
evict_some(struct cache_store *s, MDB_txn *txn, uint64_t target, uint64_t max,
    uint64_t *usedp, uint64_t *evicted, int *is_empty)
{
	uint8_t lk[CACHE_LRUKEY_LEN], hv[CACHE_OBJKEY_LEN];
	uint8_t from[CACHE_LRUKEY_LEN], kept[CACHE_PIN_GEN_BYTES];
	MDB_cursor *cur;
	MDB_val k, v;
	uint64_t used = *usedp, n = *evicted;
	int rc, existed, has_from = 0;

	rc = mdb_cursor_open(txn, s->db_lru, &cur);
	if (rc != 0)
		return rc;
	while (n < max && used > target) {
		k = mval(from, sizeof(from));
		rc = mdb_cursor_get(
		    cur, &k, &v, has_from ? MDB_SET_RANGE : MDB_FIRST);
		if (rc == MDB_NOTFOUND) {
			*is_empty = 1;
			rc = 0;
			break;
		}
		if (rc != 0)
			break;
		if (k.mv_size != CACHE_LRUKEY_LEN ||
		    v.mv_size != CACHE_OBJKEY_LEN) {
			rc = store_mdb_cursor_del(s, cur, 0); /* junk */
			if (rc != 0)
				break;
			continue;
		}
		memcpy(lk, k.mv_data, sizeof(lk));
		memcpy(hv, v.mv_data, sizeof(hv));
		if (cache_pins_held(s, hv)) {
			memcpy(from, lk, sizeof(from));
			lrukey_next(from);
			has_from = 1;
			continue;
		}
		(void)cache_pins_claim(s, hv, kept);
		rc = cache_objdb_delete(s, txn, hv, 1, kept, &existed);
		if (rc != 0)
			break;
		k = mval(lk, sizeof(lk));
		rc = store_mdb_del(s, txn, s->db_lru, &k, NULL);
		if (rc != 0 && rc != MDB_NOTFOUND)
			break;
		rc = 0;
		if (existed)
			n++;
		used = cache_store_used_bytes(s, txn);
	}
	mdb_cursor_close(cur);
	*usedp = used;
	*evicted = n;
	return rc;
}

/*
 * Evict the oldest objects until used bytes are <= target, in
 * transactions of at most EVICT_TXN_MAX objects.
 */
static void
evict_to(struct cache_store *s, uint64_t target, struct wmsg **touches,
    size_t ntouches)
{
	uint8_t hv[CACHE_OBJKEY_LEN];
	MDB_txn *txn = NULL;
	uint64_t used, n, per_txn = EVICT_TXN_MAX;
	int rc = 0, is_empty = 0;

	used = s->used_bytes;
	while (used > target && !is_empty) {
		if (cache_store_txn_begin(s, 0, &txn) != 0)
			return;
		/* Touches first, so that what was just used is not what
		 * goes; they are hints, lost if this txn fails. */
		for (size_t i = 0; i < ntouches && rc == 0; i++) {
			cache_record_objkey(
			    hv, touches[i]->key, touches[i]->variant);
			rc = cache_objdb_touch(s, txn, hv, touches[i]->bucket);
			touches[i]->is_applied = 1;
		}
		ntouches = 0;
		n = 0;
		if (rc == 0)
			rc = evict_some(
			    s, txn, target, per_txn, &used, &n, &is_empty);
		if (rc == 0)
			rc = cache_writer_commit(s, &txn);
		else
			cache_store_txn_abort(s, &txn);
		/* Deleting takes pages too (each b-tree page it changes is
		 * copied), and LMDB cannot reuse yet the pages the last
		 * commit freed: in a map that full, fewer deletions per
		 * transaction still fit, and each commit makes more pages
		 * reusable. */
		cache_pins_txn_end(s);
		if (cache_store_is_full(rc) && per_txn > 1) {
			per_txn /= 2;
			rc = 0;
			is_empty = 0;
		} else if (rc != 0) {
			cache_writer_failed(s, "eviction", rc, 0);
			return;
		} else {
			atomic_fetch_add_explicit(
			    &s->st_evictions, n, memory_order_relaxed);
		}
		used = s->used_bytes;
	}
}

/*
 * Evict before the batch v[0..n) that needs <need> bytes (see the
 * header).  The batch's touches are applied first, in the eviction txn.
 */
void
cache_evict_make_room(struct cache_store *s, uint64_t need, int squeeze,
    struct wmsg **v, size_t n)
{
	struct wmsg *touches[W_BATCH_MSGS];
	uint64_t target;
	size_t nt = 0;

	if (!squeeze && s->used_bytes + need <= s->high_bytes)
		return;
	target = s->low_bytes;
	if (target + need > s->high_bytes)
		target = s->high_bytes > need ? s->high_bytes - need : 0;
	if (squeeze) {
		/* LMDB found no room with fewer bytes used than the mark:
		 * pages the last commits freed, which it cannot reuse yet,
		 * fill the rest of the map.  Room is made below what is used
		 * now, or a squeeze would evict nothing. */
		if (target > s->used_bytes)
			target = s->used_bytes;
		target =
		    target > s->squeeze_bytes ? target - s->squeeze_bytes : 0;
	}
	for (size_t i = 0; i < n && nt < CDN_ARRAY_LEN(touches); i++) {
		if (v[i]->kind == W_TOUCH && !v[i]->is_dropped &&
		    !v[i]->is_applied)
			touches[nt++] = v[i];
	}
	evict_to(s, target, touches, nt);
}
