/*
 * The store written through its map (cache_store.c "Written through its
 * map"): data.mdb is kept allocated (fallocate(2)) up to what the write
 * transaction under way can reach, and no tree operation runs before its
 * pages are.  LMDB opened with MDB_WRITEMAP makes data.mdb as long as the
 * map, with holes, and writes a transaction's new pages straight into the
 * map: a store into a hole on a full disk faults (SIGBUS) where pwrite(2)
 * returns ENOSPC.  Here the disk says no to fallocate instead, and the
 * operation fails as a write on a full disk fails.
 *
 * Why the bound holds.  With MDB_WRITEMAP, LMDB writes to a page of the
 * file past its committed last page only by handing it out in
 * mdb_page_alloc (mt_next_pgno moves on by the pages it takes; pages of
 * its free list lie below the last page, written before).  The meta pages
 * are the first two; mdb_env_sync is an msync(2), which writes back what
 * is dirty and allocates nothing.  So what a transaction can write past
 * the last page is at most the pages it allocates, and those are:
 *  - a copy of each page it changes, the first time (mdb_page_touch): at
 *    most the depth of the tree per operation;
 *  - the pages of splits: a split at one level adds at most one page and
 *    one separator to the level above, so an insert adds at most one page
 *    per level and one for a new root;
 *  - a deletion's rebalance: a sibling per level is copied (merges free
 *    pages, they take none);
 *  - the overflow pages of a value: its bytes / page size + 1;
 *  - at commit, the record of each database changed in the main database
 *    (mdb_txn_commit), and the free list's own records
 *    (mdb_freelist_save): the pages freed in the transaction (at most the
 *    pages of the trees at its start and those it allocated), 8 bytes
 *    each, and the reclaimed pages it writes back (at most the free list's
 *    pages at the start) under the keys of the records it took, which it
 *    deletes: each an operation on the free list's tree.
 * A tree gains a level only when its root splits, and a second one only
 * if the transaction at least doubles its leaves (a branch page holds two
 * children at least); so with D two more than the deepest tree at the
 * start of the transaction, each mdb_put, mdb_del or mdb_cursor_del is
 * given 2D + 2 pages: D copies, D splits or sibling copies, one for a new
 * root and one for its share of the free list's record of freed pages.
 * (A batch of a fresh store, whose trees are a page or two, could grow
 * them by more: its first reservation is RESERVE_STEP, a thousand pages.)  An
 * operation of the tag index counts twice: under a tag many objects carry it
 * goes into a sub-database, whose keys are the objects' and which is no deeper
 * than the objects' tree. cache_store_reserve_begin gives the transaction the
 * rest: its start, the free list's write-back, the record of the pages freed
 * out of the trees. A commit that went past the reservation anyway is logged
 * (cache_store_reserve_check): the bound would be wrong, not the disk.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdint.h>
#include <string.h>
#include <sys/file.h>

#include "cache/cache.h"
#include "cache/cache_int.h"
#include "cache/cache_store_int.h"
#include "common/cdn_log.h"

#define RESERVE_STEP     (UINT64_C(4) << 20) /* fallocate at least this */
#define RESERVE_SLACK_PG 64 /* the databases' own records, the meta */
#define PGNO_BYTES       8  /* a page number in a free list record */
#define FREE_SAVE_OPS    4  /* mdb_freelist_save's record and its rounds */
#define DEPTH_GROWTH     2  /* levels a transaction may add (see above) */

/*
 * Is data.mdb reserved past its last page by fallocate(2) (not glibc's
 * emulation, which writes zeros)?  Asks for the last page, which is
 * there already, so nothing is taken.  0 or errno (EOPNOTSUPP: the file
 * system has no fallocate).
 */
int
cache_store_reserve_probe(struct cache_store *s)
{
	MDB_envinfo ei;
	int rc;

	rc = mdb_env_info(s->env, &ei);
	if (rc != 0)
		return rc;
	if (fallocate(s->data_fd, 0, (off_t)(ei.me_last_pgno * s->psize),
	        (off_t)s->psize) == -1)
		return errno;
	/* Every page to the last was written (or reserved) before. */
	s->reserved_pages = ei.me_last_pgno + 1;
	return 0;
}

/*
 * At the start of write transaction <txn> (LMDB's write lock held): the
 * per-operation bounds from the trees' depth, and room for the start and
 * the free list (see above).  0 or errno, as cache_store_room.
 */
int
cache_store_reserve_begin(struct cache_store *s, MDB_txn *txn)
{
	MDB_dbi dbs[] = {STORE_FREE_DBI, STORE_MAIN_DBI, s->db_obj, s->db_body,
	    s->db_vary, s->db_lru, s->db_lru_pos, s->db_meta, s->db_prules,
	    s->db_plog, s->db_tags};
	MDB_envinfo ei;
	MDB_stat st;
	uint64_t depth = 0, pages = 0, free_pages = 0, free_entries = 0;
	int rc;

	if (!s->is_mapped)
		return 0;
	rc = mdb_env_info(s->env, &ei);
	if (rc != 0)
		return rc;
	/* At open the databases may not be open yet: mdb_stat fails on
	 * those, and the slack covers their creation. */
	for (size_t i = 0; i < CDN_ARRAY_LEN(dbs); i++) {
		if (mdb_stat(txn, dbs[i], &st) != 0)
			continue;
		if (st.ms_depth > depth)
			depth = st.ms_depth;
		pages += st.ms_branch_pages + st.ms_leaf_pages +
		    st.ms_overflow_pages;
		if (i == 0) {
			free_pages = st.ms_branch_pages + st.ms_leaf_pages +
			    st.ms_overflow_pages;
			free_entries = st.ms_entries;
		}
	}
	depth += DEPTH_GROWTH;
	s->op_pages = 2 * depth + 2;
	s->tag_op_pages = 2 * s->op_pages;
	/* The commit's own writes: a record in the main database per
	 * database changed, and the free list's records (those it takes
	 * deleted and written back, one for the pages freed). */
	s->room_pages = ei.me_last_pgno + 1 + RESERVE_SLACK_PG +
	    pages / (s->psize / PGNO_BYTES) + 1 + free_pages + 1 +
	    (CDN_ARRAY_LEN(dbs) + 2 * free_entries + FREE_SAVE_OPS) *
	        s->op_pages;
	if (s->room_pages <= s->reserved_pages)
		return 0;
	return cache_store_reserve_more(s, s->room_pages);
}

/*
 * Reserve data.mdb up to <pages> pages, rounded up to RESERVE_STEP and
 * at most the map (LMDB allocates nothing past it: MDB_MAP_FULL).  0 or
 * errno; on failure nothing is taken.
 */
int
cache_store_reserve_more(struct cache_store *s, uint64_t pages)
{
	uint64_t step = RESERVE_STEP / s->psize, target, max;
	MDB_envinfo ei;
	int rc;

	rc = mdb_env_info(s->env, &ei);
	if (rc != 0)
		return rc;
	max = ei.me_mapsize / s->psize;
	target = (pages + step - 1) / step * step;
	if (target > max)
		target = max;
	if (target <= s->reserved_pages)
		return 0;
	if (fallocate(s->data_fd, 0, (off_t)(s->reserved_pages * s->psize),
	        (off_t)((target - s->reserved_pages) * s->psize)) == -1)
		return errno;
	s->reserved_pages = target;
	return 0;
}

/*
 * After the commit of transaction <txnid>: did it stay in the reserved
 * part?  Logged once if not.  (If another process committed since, its
 * pages are its own reservation's.)
 */
void
cache_store_reserve_check(struct cache_store *s, size_t txnid)
{
	MDB_envinfo ei;

	if (!s->is_mapped || s->reserve_overrun ||
	    mdb_env_info(s->env, &ei) != 0 || ei.me_last_txnid != txnid ||
	    ei.me_last_pgno < s->reserved_pages)
		return;
	s->reserve_overrun = 1;
	CDN_LOG(CDN_LOG_ERR, "cache",
	    "store %s: a commit reached page %" PRIu64 " of data.mdb, past "
	    "the %" PRIu64 " reserved for it",
	    s->dir, (uint64_t)ei.me_last_pgno, s->reserved_pages);
}

/*
 * At close, with no transaction left in this process: give back what is
 * reserved past the last page, so that a closed store takes on disk only
 * what it holds.  Only when no other process has the store open (the
 * directory's lock taken exclusively): another writer's reservation there
 * may be under way.
 */
void
cache_store_reserve_release(struct cache_store *s)
{
	MDB_envinfo ei;
	off_t from;

	if (!s->is_mapped || s->lock_fd == -1 ||
	    flock(s->lock_fd, LOCK_EX | LOCK_NB) == -1 ||
	    mdb_env_info(s->env, &ei) != 0)
		return;
	from = (off_t)((ei.me_last_pgno + 1) * s->psize);
	if ((uint64_t)from < ei.me_mapsize &&
	    fallocate(s->data_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
	        from, (off_t)ei.me_mapsize - from) == -1)
		CDN_LOG(CDN_LOG_WARN, "cache",
		    "store %s: the reserve past data.mdb's last page is kept "
		    "(%s)",
		    s->dir, strerror(errno));
}
