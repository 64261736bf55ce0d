/*
 * The store (cache/cache.h "the store"): the memory tier (cache_mem.c) in
 * front of one LMDB environment, written by one writer thread.  This file
 * opens and closes it (the environment, its databases, the checks for
 * damage at open, the shared purge page), runs its transactions and reads
 * its counters.  The other parts, each in a file of its own:
 *   cache_record.c       the object record: keys, checksums, encoding
 *   cache_objdb.c        an object's entries, in a write transaction
 *   cache_writer.c       the writer thread, its queue and batches
 *   cache_evict.c        accounting and eviction, the LRU
 *   cache_store_read.c   lookups, metadata reads, chunk loads
 *   cache_store_write.c  puts, removals and touches; sync
 *   cache_store_purge.c  purges: rules, purge log, reclaim
 *   cache_stream.c       large bodies streamed to LMDB
 * and cache_store_int.h, what they share (struct cache_store).
 *
 * Threads and locks.
 *  - Workers call cache_store_get/get_vary (reads), put/remove/touch
 *    (enqueue only) and stats, concurrently.  A read takes s->map_lock
 *    shared, opens an MDB_RDONLY transaction, copies what it needs and ends
 *    the transaction before returning: no read transaction outlives a call.
 *    Read transactions use LMDB's default thread-local reader slots (no
 *    MDB_NOTLS), so after a thread's first read no read takes LMDB's
 *    reader-table mutex; a thread never holds two transactions.  The
 *    lookups renew and reset a transaction each thread keeps ("the
 *    threads' kept read transactions" below) instead of beginning and
 *    ending one.
 *  - The writer thread (cache_writer_main) is the only one that writes.  It
 *    owns s->lru_seq, s->used_bytes, s->dup_pages, s->dup_entries,
 *    s->dirty, s->last_env_sync_ms.
 *  - s->qmtx covers the queue (qhead, qtail, qcount, qbytes), the sequence
 *    numbers (enq_seq, done_seq) and the sync handshake (sync_req,
 *    sync_seq, sync_done) and s->stop.  s->qcond wakes the writer,
 *    s->dcond wakes cache_store_sync callers.  cache_store_remove holds
 *    qmtx while it plants the memory tier's tombstone (lock order: qmtx,
 *    then a memory shard's lock; never the reverse).
 *  - s->map_lock (rwlock, writer-preferring) is held shared for the whole
 *    life of every transaction of this process, and exclusively only to
 *    adopt a map that another process (purged) grew: LMDB returns
 *    MDB_MAP_RESIZED and mdb_env_set_mapsize(env, 0) must run with no
 *    transaction active.  No thread takes it twice.
 *  - Counters are relaxed atomics.
 *
 * Durability.  The environment is opened with MDB_NOSYNC: a commit writes
 * its pages and meta page into the page cache (in the map) but does not
 * fsync.  A committed transaction therefore survives a crash of the
 * process (kill -9), which is the guarantee tests check, while a power
 * loss may lose the last few seconds of commits (and, as LMDB documents
 * for MDB_NOSYNC, could leave the file inconsistent if the filesystem
 * reorders writes; such a cache directory should then be wiped).  The
 * writer calls mdb_env_sync(env, 1) every W_SYNC_INTERVAL_MS when it has
 * committed anything, on close, and for cache_store_sync(), which returns
 * once every message queued before the call is committed and synced.
 * Nothing half-written is visible: an object's chunks, record, LRU entries
 * and Vary rule are written in one transaction.
 *
 * Written through its map.  The environment is opened with MDB_WRITEMAP:
 * a commit writes its pages in the map, where pwrite(2) would copy each
 * into the file (half of the writer's CPU under misses).  LMDB makes such
 * a file as long as the map, with holes, and a page written into a hole
 * on a full disk faults; so data.mdb is kept allocated by fallocate(2)
 * past what each write transaction can reach, before it writes
 * (cache_store_reserve.c), and every tree write of a write transaction
 * goes through store_mdb_put / store_mdb_del / store_mdb_cursor_del,
 * which reserve first.  Every process that writes the store (edged,
 * purged) opens it so.  Where data.mdb cannot be reserved as it grows (no
 * fallocate, a file size limit below the map) the store is written with
 * pwrite(2), logged at open.  data.mdb's length is then the map's, not
 * what it holds: its allocated blocks or the store's counters say that.
 *
 * Damage (cache_damage.c, docs/cache-damage.md).  Every LMDB transaction
 * runs between cache_lmdb_enter() and cache_lmdb_leave()
 * (cache_store_txn_begin to cache_store_txn_abort / cache_store_txn_commit),
 * so that a fault inside one marks the directory damaged.  Opening checks
 * what it can before a data page is read.  An LMDB code that only a
 * damaged file gives (cache_store_lmdb_check) sets s->damaged: from then
 * on neither tier is read or written (a purge could no longer reach what
 * memory holds), the writer discards its queue, and the next start moves
 * the files aside.
 *
 * Removal.  cache_store_remove drops the key from memory at once and
 * leaves a tombstone there until the writer has committed the removal, so
 * that a read in between cannot fetch the old object back from LMDB; and
 * an object read from LMDB is promoted to memory only if no put or
 * removal touched its memory shard during the read (cache_mem.c).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "cache/cache.h"
#include "cache/cache_int.h"
#include "cache/cache_store_int.h"
#include "common/cdn_log.h"

#define STORE_MAXREADERS 1024
#define STORE_MAXDBS     12

#define W_BATCH_BYTES_MAX (UINT64_C(64) << 20)
#define W_BATCH_BYTES_MIN (UINT64_C(256) << 10)
#define SQUEEZE_PCT       10 /* extra eviction after MAP_FULL */
#define DISK_OBJECT_DIV   8  /* largest persisted: disk_bytes / 8 */

/* ---------------- transactions ---------------- */

uint32_t
cache_store_now_bucket(struct cache_store *s)
{
	int64_t t;

	t = (int64_t)time(NULL) +
	    atomic_load_explicit(&s->clock_skew_s, memory_order_relaxed);
	return t > 0 ? (uint32_t)(t / CACHE_LRU_BUCKET_S) : 0;
}

/* Codes LMDB gives only for a file that is not what it wrote. */
static int
is_damage(int rc)
{
	return rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH ||
	    rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND ||
	    rc == MDB_CURSOR_FULL || rc == MDB_PAGE_FULL;
}

/*
 * After a failed LMDB call: if <rc> says the file is damaged, stop using
 * the store (see "Damage" above) and leave the marker.  Returns <rc>.
 */
int
cache_store_lmdb_check(struct cache_store *s, int rc)
{
	int was = 0;

	if (!is_damage(rc) ||
	    !atomic_compare_exchange_strong(&s->damaged, &was, 1))
		return rc;
	CDN_LOG(CDN_LOG_ERR, "cache",
	    "store %s is damaged (%s): no longer used; the next start moves "
	    "it aside",
	    s->dir, mdb_strerror(rc));
	cache_damage_mark(s->dirfd, mdb_strerror(rc));
	return rc;
}

/*
 * Begin a transaction with s->map_lock held shared (released by
 * cache_store_txn_abort or cache_store_txn_commit).  Adopts a map grown by
 * another process.  Returns 0 or an LMDB code, logged.
 */
int
cache_store_txn_begin(struct cache_store *s, unsigned flags, MDB_txn **txnp)
{
	int rc;

	if (atomic_load_explicit(&s->damaged, memory_order_relaxed)) {
		*txnp = NULL;
		return MDB_CORRUPTED;
	}
	cache_lmdb_enter();
	pthread_rwlock_rdlock(&s->map_lock);
	rc = mdb_txn_begin(s->env, NULL, flags, txnp);
	if (rc == MDB_MAP_RESIZED) {
		pthread_rwlock_unlock(&s->map_lock);
		pthread_rwlock_wrlock(&s->map_lock);
		rc = mdb_env_set_mapsize(s->env, 0);
		CDN_LOG(CDN_LOG_WARN, "cache",
		    "map grown by another process: adopted (%s)",
		    mdb_strerror(rc));
		pthread_rwlock_unlock(&s->map_lock);
		pthread_rwlock_rdlock(&s->map_lock);
		rc = mdb_txn_begin(s->env, NULL, flags, txnp);
	}
	if (rc == 0 && !(flags & MDB_RDONLY)) {
		rc = cache_store_reserve_begin(s, *txnp);
		if (rc != 0) {
			/* Not started.  Wanting disk is its caller's to say
			 * (cache_writer_failed, once per episode). */
			cache_store_txn_abort(s, txnp);
			if (!cache_store_is_unreserved(rc)) {
				CDN_LOG(CDN_LOG_ERR, "cache",
				    "reserving %s/data.mdb: %s", s->dir,
				    mdb_strerror(rc));
				atomic_fetch_add_explicit(
				    &s->st_io, 1, memory_order_relaxed);
			}
			return rc;
		}
	}
	if (rc != 0) {
		pthread_rwlock_unlock(&s->map_lock);
		cache_lmdb_leave();
		*txnp = NULL;
		CDN_LOG(CDN_LOG_ERR, "cache", "mdb_txn_begin: %s",
		    mdb_strerror(rc));
		atomic_fetch_add_explicit(&s->st_io, 1, memory_order_relaxed);
	}
	return rc;
}

void
cache_store_txn_abort(struct cache_store *s, MDB_txn **txnp)
{
	if (*txnp == NULL)
		return;
	mdb_txn_abort(*txnp);
	*txnp = NULL;
	pthread_rwlock_unlock(&s->map_lock);
	cache_lmdb_leave();
}

int
cache_store_txn_commit(struct cache_store *s, MDB_txn **txnp)
{
	size_t id = mdb_txn_id(*txnp);
	int rc;

	rc = mdb_txn_commit(*txnp); /* frees the txn even on failure */
	*txnp = NULL;
	if (rc == 0)
		cache_store_reserve_check(s, id);
	pthread_rwlock_unlock(&s->map_lock);
	cache_lmdb_leave();
	return rc;
}

/* ---------------- the threads' kept read transactions ---------------- */

/*
 * A read transaction per thread, kept between reads: a read renews it
 * (mdb_txn_renew) and ends by resetting it (mdb_txn_reset), LMDB's
 * documented way to spare each read mdb_txn_begin's allocation and set-up.
 * A reset transaction holds no snapshot, so it pins no page: the writer's
 * view is as with begin and abort.  Its reader slot is the thread's in
 * either case (no MDB_NOTLS), so the reader table is no fuller.
 *
 * A kept transaction belongs to one store's environment and must be freed
 * before it closes: every thread's struct store_reader is on <readers>,
 * and reader_mtx covers the list and each one's store_id and txn, which
 * cache_store_close (readers_forget) and a thread that turns to another
 * store change.  The thread reads its own store_id without the lock: only
 * the close of the store it names (never during a read of that store) or
 * the thread itself writes it.  A thread's exit frees its reader.
 */
struct store_reader {
	struct store_reader *next; /* (reader_mtx) */
	_Atomic uint64_t store_id; /* txn's store (cache_store.id); 0: none */
	MDB_txn *txn;              /* reset between reads; NULL: none */
	/* The thread's own: */
	unsigned in_use;  /* reads that have txn now */
	uint64_t hold_id; /* the store of cache_store_read_hold; 0: none */
	int held_open;    /* txn is renewed for the hold */
};

static pthread_mutex_t reader_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct store_reader *readers; /* (reader_mtx) */
static pthread_key_t reader_key;     /* to free a reader at thread exit */
static pthread_once_t reader_once = PTHREAD_ONCE_INIT;
static _Thread_local struct store_reader *my_reader;
static _Atomic uint64_t store_ids; /* the last cache_store.id given */

/* Free <r>'s transaction, if it has one.  With reader_mtx held. */
static void
reader_drop_locked(struct store_reader *r)
{
	if (r->txn != NULL)
		mdb_txn_abort(r->txn); /* its store is open: close drops it */
	r->txn = NULL;
	atomic_store_explicit(&r->store_id, 0, memory_order_relaxed);
}

/* At a thread's exit: unlist and free its reader. */
static void
reader_dest(void *arg)
{
	struct store_reader *r = arg, **pp;

	pthread_mutex_lock(&reader_mtx);
	reader_drop_locked(r);
	for (pp = &readers; *pp != NULL; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	pthread_mutex_unlock(&reader_mtx);
	my_reader = NULL; /* runs in the exiting thread itself */
	free(r);
}

static void
reader_key_init(void)
{
	CDN_ASSERT(pthread_key_create(&reader_key, reader_dest) == 0);
}

/* Free every thread's kept transaction of <s> (at close: no read runs). */
static void
readers_forget(struct cache_store *s)
{
	pthread_mutex_lock(&reader_mtx);
	for (struct store_reader *r = readers; r != NULL; r = r->next)
		if (atomic_load_explicit(&r->store_id, memory_order_relaxed) ==
		    s->id)
			reader_drop_locked(r);
	pthread_mutex_unlock(&reader_mtx);
}

/* The calling thread's reader, made and listed on its first read. */
static struct store_reader *
reader_mine(void)
{
	struct store_reader *r = my_reader;

	if (r != NULL)
		return r;
	pthread_once(&reader_once, reader_key_init);
	r = cdn_xcalloc(1, sizeof(*r));
	pthread_mutex_lock(&reader_mtx);
	r->next = readers;
	readers = r;
	pthread_mutex_unlock(&reader_mtx);
	CDN_ASSERT(pthread_setspecific(reader_key, r) == 0);
	my_reader = r;
	return r;
}

/*
 * Begin a read-only transaction of <s> for the calling thread, as
 * cache_store_txn_begin(s, MDB_RDONLY, txnp) does, with the thread's kept
 * transaction when it has one for <s> (inside cache_store_read_hold, the
 * one the hold renewed).  End it with cache_store_read_end, never with
 * cache_store_txn_abort.  Returns 0 or an LMDB code, logged.
 */
int
cache_store_read_begin(struct cache_store *s, MDB_txn **txnp)
{
	struct store_reader *r = reader_mine();
	int rc;

	if (r->held_open && r->hold_id == s->id) {
		r->in_use++;
		*txnp = r->txn;
		return 0;
	}
	/* A read inside a read, or of another store during a hold: a
	 * transaction of its own. */
	if (r->in_use > 0 || r->held_open)
		return cache_store_txn_begin(s, MDB_RDONLY, txnp);
	if (atomic_load_explicit(&r->store_id, memory_order_relaxed) == s->id &&
	    !cache_store_is_damaged(s)) {
		cache_lmdb_enter();
		pthread_rwlock_rdlock(&s->map_lock);
		rc = mdb_txn_renew(r->txn);
		if (rc == 0)
			goto have;
		pthread_rwlock_unlock(&s->map_lock);
		cache_lmdb_leave();
		/* MDB_MAP_RESIZED, say: a new one, as the first time. */
	}
	/* The first read, or a thread that turns to another store: the
	 * transaction it kept is freed while its store is sure to be open. */
	pthread_mutex_lock(&reader_mtx);
	reader_drop_locked(r);
	pthread_mutex_unlock(&reader_mtx);
	rc = cache_store_txn_begin(s, MDB_RDONLY, txnp);
	if (rc != 0)
		return rc;
	pthread_mutex_lock(&reader_mtx);
	r->txn = *txnp;
	atomic_store_explicit(&r->store_id, s->id, memory_order_relaxed);
	pthread_mutex_unlock(&reader_mtx);
have:
	r->in_use = 1;
	r->held_open = r->hold_id == s->id;
	*txnp = r->txn;
	return 0;
}

/* Reset the kept transaction and let go of what its renewal took. */
static void
reader_reset(struct cache_store *s, struct store_reader *r)
{
	mdb_txn_reset(r->txn); /* its snapshot goes: no page stays pinned */
	pthread_rwlock_unlock(&s->map_lock);
	cache_lmdb_leave();
}

/* End a transaction of cache_store_read_begin; NULLs *txnp. */
void
cache_store_read_end(struct cache_store *s, MDB_txn **txnp)
{
	struct store_reader *r = my_reader;

	if (*txnp == NULL)
		return;
	if (r == NULL || r->in_use == 0 || *txnp != r->txn) {
		cache_store_txn_abort(s, txnp);
		return;
	}
	*txnp = NULL;
	if (--r->in_use == 0 && !r->held_open)
		reader_reset(s, r);
}

void
cache_store_read_hold(struct cache_store *s)
{
	struct store_reader *r = reader_mine();

	MAGIC_CHECK(s, CACHE_STORE_MAGIC);
	CDN_ASSERT(r->hold_id == 0 && r->in_use == 0);
	/* Now, not inside the hold: a reload of the purge rules reads LMDB
	 * under reload_mtx, which is taken before map_lock, never after. */
	cache_store_purge_refresh(s);
	r->hold_id = s->id;
}

void
cache_store_read_release(struct cache_store *s)
{
	struct store_reader *r = my_reader;

	MAGIC_CHECK(s, CACHE_STORE_MAGIC);
	CDN_ASSERT(r != NULL && r->hold_id == s->id && r->in_use == 0);
	r->hold_id = 0;
	if (r->held_open) {
		r->held_open = 0;
		reader_reset(s, r);
	}
}

int
cache_store_read_held(struct cache_store *s)
{
	struct store_reader *r = my_reader;

	return r != NULL && r->hold_id == s->id;
}

/* mdb_stat's pages of every database, the two meta pages, in <txn>; the
 * tag index's entries in *tag_entries. */
static uint64_t
tree_pages(struct cache_store *s, MDB_txn *txn, uint64_t *tag_entries)
{
	MDB_dbi dbs[11];
	MDB_stat st;
	uint64_t pages = 2; /* the two meta pages */

	dbs[0] = STORE_FREE_DBI;
	dbs[1] = STORE_MAIN_DBI;
	dbs[2] = s->db_obj;
	dbs[3] = s->db_body;
	dbs[4] = s->db_vary;
	dbs[5] = s->db_lru;
	dbs[6] = s->db_lru_pos;
	dbs[7] = s->db_meta;
	dbs[8] = s->db_prules;
	dbs[9] = s->db_plog;
	dbs[10] = s->db_tags;
	*tag_entries = 0;
	for (size_t i = 0; i < CDN_ARRAY_LEN(dbs); i++) {
		if (mdb_stat(txn, dbs[i], &st) != 0)
			continue;
		pages += st.ms_branch_pages + st.ms_leaf_pages +
		    st.ms_overflow_pages;
		if (dbs[i] == s->db_tags)
			*tag_entries = st.ms_entries;
	}
	return pages;
}

/*
 * Pages holding data, in bytes (see cache_evict.c "Accounting"): the trees
 * of every database, as mdb_stat counts them, and the sub-databases LMDB
 * makes under a tag that many objects carry (the tag index is
 * MDB_DUPSORT), which mdb_stat leaves out.  Those were counted after the
 * last commit (cache_store_count_pages); until the next, they are taken to
 * grow and shrink with the tag index's entries.
 */
uint64_t
cache_store_used_bytes(struct cache_store *s, MDB_txn *txn)
{
	uint64_t pages, tags, dup = s->dup_pages;

	pages = tree_pages(s, txn, &tags);
	if (dup > 0 && s->dup_entries > 0)
		dup = (uint64_t)((double)dup * (double)tags /
		    (double)s->dup_entries);
	return (pages + dup) * s->psize;
}

/*
 * After a commit, on the writer thread: the bytes of the pages in use,
 * counted exactly: every page up to the last one the file has used that is
 * not on LMDB's freelist.  Their difference from the trees' pages is the
 * pages of the tag index's sub-databases, kept for cache_store_used_bytes.
 * Returns <est> (and keeps the last count) when it cannot count: the
 * store is not readable, or another process committed meanwhile.
 */
uint64_t
cache_store_count_pages(struct cache_store *s, uint64_t est)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cur;
	MDB_envinfo ei;
	MDB_val k, v;
	uint64_t tree, tags, free_pages = 0, used;
	int rc;

	if (cache_store_read_begin(s, &txn) != 0)
		return est;
	tree = tree_pages(s, txn, &tags);
	if (tags == 0) {
		/* No tag index, no sub-database: the trees are all. */
		s->dup_pages = 0;
		s->dup_entries = 0;
		est = tree * s->psize;
		goto out;
	}
	if (mdb_env_info(s->env, &ei) != 0 ||
	    ei.me_last_txnid != mdb_txn_id(txn) ||
	    mdb_cursor_open(txn, STORE_FREE_DBI, &cur) != 0)
		goto out;
	/* A freelist record is an ID list: its count, then the pages. The count
	 * is read as LMDB reads it: a record reserved larger than it was filled
	 * holds fewer pages than its size says. */
	while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
		size_t n = 0; /* LMDB's MDB_ID */

		if (v.mv_size >= sizeof(n))
			memcpy(&n, v.mv_data, sizeof(n));
		free_pages += n;
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND) {
		cache_store_lmdb_check(s, rc);
		goto out;
	}
	used = (uint64_t)ei.me_last_pgno + 1 - free_pages;
	s->dup_pages = used > tree ? used - tree : 0;
	s->dup_entries = tags;
	est = (tree + s->dup_pages) * s->psize;
out:
	cache_store_read_end(s, &txn);
	return est;
}

uint64_t
cache_store_object_count(struct cache_store *s, MDB_txn *txn)
{
	MDB_stat st;

	if (mdb_stat(txn, s->db_obj, &st) != 0)
		return 0;
	return st.ms_entries;
}

/* ---------------- open / close ---------------- */

/* The budget-derived sizes, once the map size is known. */
static void
store_set_budget(
    struct cache_store *s, uint64_t disk, const struct cache_store_conf *conf)
{
	s->disk_bytes = disk;
	s->max_disk_object = disk / DISK_OBJECT_DIV;
	/* A chunk's number fits below its generation (cache_int.h). */
	if (s->max_disk_object / CACHE_CHUNK_SIZE >= CACHE_CHUNKS_MAX)
		s->max_disk_object =
		    (uint64_t)(CACHE_CHUNKS_MAX - 1) * CACHE_CHUNK_SIZE;
	s->high_bytes = disk / 100 * conf->high_water_pct;
	s->low_bytes = disk / 100 * conf->low_water_pct;
	s->squeeze_bytes = disk / 100 * SQUEEZE_PCT;
	s->batch_bytes = (s->high_bytes - s->low_bytes) / 2;
	if (s->batch_bytes > W_BATCH_BYTES_MAX)
		s->batch_bytes = W_BATCH_BYTES_MAX;
	if (s->batch_bytes < W_BATCH_BYTES_MIN)
		s->batch_bytes = W_BATCH_BYTES_MIN;
}

static int
purge_page_open(struct cache_store *s)
{
	char path[4096];
	struct stat st;
	long pg = sysconf(_SC_PAGESIZE);
	void *p;

	snprintf(path, sizeof(path), "%s/%s", s->dir, CACHE_PURGE_SEQ_FILE);
	s->purge_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (s->purge_fd == -1 || fstat(s->purge_fd, &st) == -1 ||
	    (st.st_size < pg && ftruncate(s->purge_fd, pg) == -1)) {
		CDN_LOG(CDN_LOG_ERR, "cache", "%s: %s", path, strerror(errno));
		return CDN_EIO;
	}
	p = mmap(NULL, (size_t)pg, PROT_READ | PROT_WRITE, MAP_SHARED,
	    s->purge_fd, 0);
	if (p == MAP_FAILED) {
		CDN_LOG(
		    CDN_LOG_ERR, "cache", "mmap %s: %s", path, strerror(errno));
		return CDN_EIO;
	}
	s->purge_page = p;
	return CDN_OK;
}

static void
purge_fini(struct cache_store *s)
{
	if (s->purge_page != NULL)
		munmap((void *)(uintptr_t)s->purge_page,
		    (size_t)sysconf(_SC_PAGESIZE));
	s->purge_page = NULL;
	if (s->purge_fd != -1)
		close(s->purge_fd);
	s->purge_fd = -1;
	cache_rules_free(&s->rules);
	pthread_rwlock_destroy(&s->rules_lock);
	pthread_mutex_destroy(&s->reload_mtx);
}

/* Open the databases and check the format, in the opening txn. */
static int
open_dbs(struct cache_store *s, MDB_txn *txn)
{
	static const char *const names[] = {CACHE_DB_OBJECTS, CACHE_DB_BODIES,
	    CACHE_DB_VARY, CACHE_DB_LRU, CACHE_DB_LRU_POS, CACHE_DB_META,
	    CACHE_DB_PRULES, CACHE_DB_PLOG, CACHE_DB_TAGS};
	MDB_dbi *dbis[CDN_ARRAY_LEN(names)];
	uint8_t fmt[8];
	MDB_cursor *cur;
	MDB_val k, v;
	uint32_t version;
	int rc;

	dbis[0] = &s->db_obj;
	dbis[1] = &s->db_body;
	dbis[2] = &s->db_vary;
	dbis[3] = &s->db_lru;
	dbis[4] = &s->db_lru_pos;
	dbis[5] = &s->db_meta;
	dbis[6] = &s->db_prules;
	dbis[7] = &s->db_plog;
	dbis[8] = &s->db_tags;
	for (size_t i = 0; i < CDN_ARRAY_LEN(names); i++) {
		rc = mdb_dbi_open(txn, names[i],
		    MDB_CREATE | (dbis[i] == &s->db_tags ? MDB_DUPSORT : 0),
		    dbis[i]);
		if (rc != 0) {
			CDN_LOG(CDN_LOG_ERR, "cache", "mdb_dbi_open %s: %s",
			    names[i], mdb_strerror(rc));
			return rc;
		}
	}

	k = mval("format", 6);
	rc = mdb_get(txn, s->db_meta, &k, &v);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	version = rc == 0 && v.mv_size == sizeof(fmt) &&
	        get_le32(v.mv_data) == STORE_FORMAT_MAGIC
	    ? get_le32((const uint8_t *)v.mv_data + 4)
	    : 0;
	if (version == STORE_FORMAT_1) {
		/* Its objects stay and are read as they are, so that an
		 * upgrade costs the origins no refill; new ones are written
		 * in this format, which the older binary cannot read. */
		CDN_LOG(CDN_LOG_INFO, "cache",
		    "%s: store format %u: its %" PRIu64 " objects are kept "
		    "and read as they are; new objects are stored in format "
		    "%u",
		    s->dir, version, cache_store_object_count(s, txn),
		    STORE_FORMAT_VERSION);
	} else if (version != STORE_FORMAT_VERSION) {
		if (cache_store_object_count(s, txn) > 0 || rc == 0)
			CDN_LOG(CDN_LOG_WARN, "cache",
			    "%s: unknown store format, emptying it", s->dir);
		for (size_t i = 0; i < CDN_ARRAY_LEN(names); i++) {
			rc = mdb_drop(txn, *dbis[i], 0);
			if (rc != 0)
				return rc;
		}
	}
	if (version != STORE_FORMAT_VERSION) {
		put_le32(fmt, STORE_FORMAT_MAGIC);
		put_le32(fmt + 4, STORE_FORMAT_VERSION);
		v = mval(fmt, sizeof(fmt));
		rc = store_mdb_put(s, txn, s->db_meta, &k, &v, 0);
		if (rc != 0)
			return rc;
	}

	/* lru_seq: the usage record, or past the newest lru key. */
	k = mval("usage", 5);
	rc = mdb_get(txn, s->db_meta, &k, &v);
	if (rc == 0 && v.mv_size == STORE_USAGE_LEN &&
	    get_le64((const uint8_t *)v.mv_data + 32) ==
	        XXH3_64bits(v.mv_data, 32))
		s->lru_seq = get_le64((const uint8_t *)v.mv_data + 24);
	rc = mdb_cursor_open(txn, s->db_lru, &cur);
	if (rc != 0)
		return rc;
	rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	if (rc == 0 && k.mv_size == CACHE_LRUKEY_LEN &&
	    get_be64((const uint8_t *)k.mv_data + 4) > s->lru_seq)
		s->lru_seq = get_be64((const uint8_t *)k.mv_data + 4);
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* The directory's fd and lock; the marker is no longer armed for it. */
static void
store_close_files(struct cache_store *s)
{
	if (s->dirfd != -1) {
		cache_damage_disarm(s->dirfd);
		close(s->dirfd);
		s->dirfd = -1;
	}
	if (s->lock_fd != -1)
		close(s->lock_fd); /* releases the flock */
	s->lock_fd = -1;
}

static int
conf_ok(const struct cache_store_conf *conf)
{
	return conf->dir != NULL && conf->dir[0] != '\0' &&
	    (conf->disk_bytes == 0 ||
	        conf->disk_bytes >= (UINT64_C(1) << 20)) &&
	    conf->high_water_pct > 0 && conf->high_water_pct <= 100 &&
	    conf->low_water_pct < conf->high_water_pct;
}

/* The short cause of an LMDB or errno failure, in *e. */
static void
open_why(struct cache_open_err *e, int rc)
{
	e->kind = is_damage(rc) ? CACHE_OPEN_DAMAGED : CACHE_OPEN_FAILED;
	snprintf(e->why, sizeof(e->why), "%s", mdb_strerror(rc));
	/* strerror's "Read-only file system" reads better mid-sentence. */
	if (rc > 0 && e->why[0] >= 'A' && e->why[0] <= 'Z')
		e->why[0] = (char)(e->why[0] - 'A' + 'a');
}

/* A new environment handle for a map of <mapsize> bytes (0: the file's). */
static int
env_new(struct cache_store *s, uint64_t mapsize)
{
	int rc;

	rc = mdb_env_create(&s->env);
	if (rc == 0 && mapsize > 0)
		rc = mdb_env_set_mapsize(s->env, (size_t)mapsize);
	if (rc == 0)
		rc = mdb_env_set_maxdbs(s->env, STORE_MAXDBS);
	if (rc == 0)
		rc = mdb_env_set_maxreaders(s->env, STORE_MAXREADERS);
	return rc;
}

/*
 * Open s->env, made by env_new, on <dir> with <flags>: its page size in
 * s->psize and, when *mapsize is 0 (purged), the map size it took in
 * *mapsize.  0 or an LMDB or errno code.
 */
static int
env_open(
    struct cache_store *s, const char *dir, unsigned flags, uint64_t *mapsize)
{
	MDB_envinfo ei;
	MDB_stat st;
	int rc;

	flags |= MDB_NOSYNC | MDB_NORDAHEAD;
	rc = mdb_env_open(s->env, dir, flags, 0644);
	if (rc == 0)
		rc = mdb_env_stat(s->env, &st);
	if (rc == 0)
		rc = mdb_env_info(s->env, &ei);
	if (rc != 0)
		return rc;
	s->psize = st.ms_psize;
	/* disk_bytes 0 (purged): adopt the map size the environment has. */
	if (*mapsize == 0)
		*mapsize = ei.me_mapsize;
	return 0;
}

/*
 * Open the environment written through its map (MDB_WRITEMAP; "Written
 * through its map" above): data.mdb reserved as far as it is used
 * (cache_store_reserve.c), or, with cache_preallocate, all of the map at
 * once.  0 or an error code (the file system has no fallocate, a file
 * size limit below the map, a full disk for cache_preallocate); on error
 * the environment is closed and s->env is NULL.
 */
static int
open_mapped(struct cache_store *s, const struct cache_store_conf *conf,
    uint64_t *mapsize)
{
	int rc;

	rc = env_new(s, *mapsize);
	if (rc == 0)
		rc = env_open(s, conf->dir, MDB_WRITEMAP, mapsize);
	if (rc == 0)
		rc = mdb_env_get_fd(s->env, &s->data_fd);
	if (rc == 0 && conf->is_preallocated) {
		if (fallocate(s->data_fd, 0, 0, (off_t)*mapsize) == -1)
			rc = errno;
		s->reserved_pages = *mapsize / s->psize;
	} else if (rc == 0) {
		rc = cache_store_reserve_probe(s);
	}
	if (rc != 0) {
		mdb_env_close(s->env);
		s->env = NULL;
		s->data_fd = -1; /* closed with it */
		s->reserved_pages = 0;
		return rc;
	}
	s->is_mapped = 1;
	return 0;
}

/*
 * Is data.mdb as long as its newer meta page says?  LMDB would fault past
 * its end, and a file opened through its map is made as long as the map,
 * which would hide a truncated one behind zeros: so this is read before
 * the environment is opened, with pread(2) as LMDB reads it, not through a
 * first environment (whose large buffers, freed, would leave glibc
 * serving the second's from the heap for good).  CDN_OK also when the
 * file is not there or empty: LMDB makes a new one.  Fills *e on failure.
 */
static int
check_data_file(struct cache_store *s, struct cache_open_err *e)
{
	struct cache_lmdb_meta m;
	uint64_t need;
	int fd, rc;

	fd = openat(s->dirfd, "data.mdb", O_RDONLY | O_CLOEXEC);
	if (fd == -1 && errno == ENOENT)
		return CDN_OK;
	if (fd == -1) {
		open_why(e, errno);
		return CDN_EIO;
	}
	rc = cache_lmdb_meta_read(fd, &m);
	close(fd);
	if (rc == ENOENT)
		return CDN_OK;
	if (rc != 0) {
		open_why(e, rc);
		return e->kind == CACHE_OPEN_DAMAGED ? CDN_ECORRUPT : CDN_EIO;
	}
	/* A page number no file could hold is as good as truncated. */
	need = m.last_pgno < UINT64_MAX / m.psize ? (m.last_pgno + 1) * m.psize
	                                          : UINT64_MAX;
	if (cache_damage_check_size(s->dirfd, need, e->why, sizeof(e->why)) !=
	    CDN_OK) {
		e->kind = CACHE_OPEN_DAMAGED;
		return CDN_ECORRUPT;
	}
	return CDN_OK;
}

/*
 * Check data.mdb against its meta page (check_data_file), then open the
 * environment once, written through its map; where that cannot be done,
 * written with pwrite(2).  Inside the store: a fault here marks the cache
 * damaged.
 */
static int
open_env(struct cache_store *s, const struct cache_store_conf *conf,
    uint64_t *mapsize, struct cache_open_err *e)
{
	int rc, mapped_rc, dead;

	rc = check_data_file(s, e);
	if (rc != CDN_OK)
		return rc;
	cache_lmdb_enter();
	rc = mapped_rc = open_mapped(s, conf, mapsize);
	if (rc != 0) {
		rc = env_new(s, *mapsize);
		if (rc == 0)
			rc = env_open(s, conf->dir, 0, mapsize);
	}
	/* Free the reader slots of dead processes (a crashed edged). */
	if (rc == 0)
		(void)mdb_reader_check(s->env, &dead);
	cache_lmdb_leave();
	if (rc != 0) {
		open_why(e, rc);
		return CDN_EIO;
	}
	/* Written with pwrite(2) as before, which a full disk fails with
	 * ENOSPC rather than a fault. */
	if (mapped_rc != 0 && conf->is_preallocated)
		CDN_LOG(CDN_LOG_WARN, "cache",
		    "cache_preallocate: cannot reserve %s/data.mdb (%s): "
		    "writing it without its map",
		    conf->dir, mdb_strerror(mapped_rc));
	else if (mapped_rc != 0)
		CDN_LOG(CDN_LOG_WARN, "cache",
		    "%s/data.mdb cannot be reserved as it grows (%s): "
		    "writing it without its map",
		    conf->dir, mdb_strerror(mapped_rc));
	return CDN_OK;
}

/*
 * Take the directory's shared lock, open it for the damage marker, and
 * refuse it if a crash left the marker.  Fills *e on failure.
 */
static int
open_dir(struct cache_store *s, const char *dir, struct cache_open_err *e)
{
	if (cache_damage_lock_shared(dir, &s->lock_fd) != CDN_OK ||
	    (s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		open_why(e, errno);
		return CDN_EIO;
	}
	if (cache_damage_marked(s->dirfd, e->why, sizeof(e->why))) {
		e->kind = CACHE_OPEN_DAMAGED;
		return CDN_ECORRUPT;
	}
	cache_damage_arm(s->dirfd);
	return CDN_OK;
}

struct cache_store *
cache_store_open(const struct cache_store_conf *conf)
{
	return cache_store_open_diag(conf, NULL);
}

/*
 * Open (creating if needed) the store in conf->dir and start its writer
 * thread.  Reads only the databases' roots and the meta records: no scan.
 * Returns NULL after logging, and with *err filled when not NULL, if the
 * configuration is invalid or the directory or the environment cannot be
 * opened or is damaged.
 */
struct cache_store *
cache_store_open_diag(
    const struct cache_store_conf *conf, struct cache_open_err *err)
{
	struct cache_store *s;
	struct cache_open_err e;
	pthread_rwlockattr_t rwa;
	pthread_condattr_t ca;
	MDB_txn *txn = NULL;
	long pg;
	uint64_t mapsize;
	int rc;

	CDN_ASSERT(conf != NULL);
	memset(&e, 0, sizeof(e));
	if (!conf_ok(conf)) {
		CDN_LOG(CDN_LOG_ERR, "cache",
		    "store: invalid configuration (dir, disk >= 1 MiB, "
		    "0 <= low < high <= 100)");
		e.kind = CACHE_OPEN_FAILED;
		snprintf(e.why, sizeof(e.why), "invalid configuration");
		goto out_err;
	}
	if (mkdir(conf->dir, 0755) == -1 && errno != EEXIST) {
		open_why(&e, errno);
		CDN_LOG(CDN_LOG_ERR, "cache", "mkdir %s: %s", conf->dir, e.why);
		goto out_err;
	}

	s = cdn_xcalloc(1, sizeof(*s));
	s->magic = CACHE_STORE_MAGIC;
	s->id = atomic_fetch_add(&store_ids, 1) + 1;
	s->dir = cdn_xstrdup(conf->dir);
	s->max_object_bytes = conf->max_object_bytes;
	s->purge_fd = -1;
	s->data_fd = -1;
	s->dirfd = -1;
	s->lock_fd = -1;
	s->rules = cache_rules_new();
	CDN_ASSERT(pthread_rwlock_init(&s->rules_lock, NULL) == 0);
	CDN_ASSERT(pthread_mutex_init(&s->reload_mtx, NULL) == 0);
	s->qtail = &s->qhead;
	pthread_rwlockattr_init(&rwa);
	pthread_rwlockattr_setkind_np(
	    &rwa, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	CDN_ASSERT(pthread_rwlock_init(&s->map_lock, &rwa) == 0);
	pthread_rwlockattr_destroy(&rwa);
	CDN_ASSERT(pthread_mutex_init(&s->qmtx, NULL) == 0);
	cache_pins_init(&s->pins);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	CDN_ASSERT(pthread_cond_init(&s->qcond, &ca) == 0);
	CDN_ASSERT(pthread_cond_init(&s->dcond, &ca) == 0);
	pthread_condattr_destroy(&ca);
	if (open_dir(s, conf->dir, &e) != CDN_OK)
		goto fail;

	pg = sysconf(_SC_PAGESIZE);
	mapsize = conf->disk_bytes;
	if (pg > 0 && mapsize % (uint64_t)pg != 0)
		mapsize += (uint64_t)pg - mapsize % (uint64_t)pg;
	if (open_env(s, conf, &mapsize, &e) != CDN_OK)
		goto fail;
	store_set_budget(s, mapsize, conf);
	if (purge_page_open(s) != CDN_OK) {
		e.kind = CACHE_OPEN_FAILED;
		snprintf(e.why, sizeof(e.why), "cannot map %s",
		    CACHE_PURGE_SEQ_FILE);
		goto fail;
	}

	rc = cache_store_txn_begin(s, 0, &txn);
	if (rc == 0)
		rc = open_dbs(s, txn);
	if (rc == 0)
		rc = cache_store_purge_load_rules(s, txn);
	if (rc == 0)
		rc = cache_writer_commit(s, &txn);
	if (rc != 0) {
		open_why(&e, rc);
		goto fail;
	}
	s->dirty = 0;
	s->last_env_sync_ms = cdn_now_ms();
	/* A purge committed by a process that died before it published it
	 * (its client got no OK) is published now. */
	cache_store_purge_publish(
	    s, atomic_load_explicit(&s->rules_seq, memory_order_relaxed));

	s->mem = cache_mem_new(conf->memory_bytes, CACHE_MEM_SHARDS);
	rc = pthread_create(&s->writer, NULL, cache_writer_main, s);
	if (rc != 0) {
		CDN_LOG(
		    CDN_LOG_ERR, "cache", "pthread_create: %s", strerror(rc));
		cache_mem_free(&s->mem);
		open_why(&e, rc);
		goto fail;
	}
	/* Its own name, so that a thread listing (top -H, /proc/PID/task)
	 * shows the writer's share of the CPU apart from the workers'. */
	(void)pthread_setname_np(s->writer, CACHE_WRITER_THREAD_NAME);
	CDN_LOG(CDN_LOG_INFO, "cache",
	    "store %s: %" PRIu64 " objects, %" PRIu64 " bytes used of %" PRIu64,
	    s->dir, atomic_load(&s->st_objects), atomic_load(&s->st_bytes),
	    s->disk_bytes);
	return s;

fail:
	CDN_LOG(CDN_LOG_ERR, "cache", "store %s: %s%s", conf->dir,
	    e.kind == CACHE_OPEN_DAMAGED ? "damaged: " : "", e.why);
	cache_store_txn_abort(s, &txn);
	if (s->env != NULL)
		mdb_env_close(s->env);
	store_close_files(s);
	purge_fini(s);
	pthread_cond_destroy(&s->qcond);
	pthread_cond_destroy(&s->dcond);
	pthread_mutex_destroy(&s->qmtx);
	cache_pins_fini(&s->pins);
	pthread_rwlock_destroy(&s->map_lock);
	free(s->dir);
	MAGIC_WIPE(s);
	free(s);
out_err:
	if (err != NULL)
		*err = e;
	return NULL;
}

/* Commit and sync everything queued, stop the writer, close; NULLs *sp. */
void
cache_store_close(struct cache_store **sp)
{
	struct cache_store *s;

	CDN_ASSERT(sp != NULL);
	s = *sp;
	*sp = NULL;
	if (s == NULL)
		return;
	MAGIC_CHECK(s, CACHE_STORE_MAGIC);
	pthread_mutex_lock(&s->qmtx);
	s->stop = 1;
	pthread_cond_signal(&s->qcond);
	pthread_mutex_unlock(&s->qmtx);
	CDN_ASSERT(pthread_join(s->writer, NULL) == 0);
	CDN_ASSERT(s->qhead == NULL);
	readers_forget(s);
	cache_store_reserve_release(s);
	mdb_env_close(s->env);
	store_close_files(s);
	cache_mem_free(&s->mem);
	purge_fini(s);
	pthread_cond_destroy(&s->qcond);
	pthread_cond_destroy(&s->dcond);
	pthread_mutex_destroy(&s->qmtx);
	cache_pins_fini(&s->pins);
	pthread_rwlock_destroy(&s->map_lock);
	free(s->dir);
	MAGIC_WIPE(s);
	free(s);
}

/* ---------------- counters ---------------- */

void
cache_store_stats(struct cache_store *s, struct cache_store_stats *st)
{
	struct cache_mem_stats ms;

	MAGIC_CHECK(s, CACHE_STORE_MAGIC);
	CDN_ASSERT(st != NULL);
	cache_mem_stats(s->mem, &ms);
	memset(st, 0, sizeof(*st));
	st->objects =
	    atomic_load_explicit(&s->st_objects, memory_order_relaxed);
	st->bytes = atomic_load_explicit(&s->st_bytes, memory_order_relaxed);
	st->mem_objects = ms.objects;
	st->mem_bytes = ms.bytes;
	st->mem_slab_bytes = cache_slab_bytes();
	st->mem_slab_given_back = cache_slab_given_back();
	st->mem_evictions = ms.evictions;
	st->sealed_bodies = cache_obj_sealed_count();
	st->sealed_bytes = cache_obj_sealed_bytes();
	st->puts = atomic_load_explicit(&s->st_puts, memory_order_relaxed);
	st->put_drops =
	    atomic_load_explicit(&s->st_put_drops, memory_order_relaxed);
	st->evictions =
	    atomic_load_explicit(&s->st_evictions, memory_order_relaxed);
	st->map_full =
	    atomic_load_explicit(&s->st_map_full, memory_order_relaxed);
	st->corrupt =
	    atomic_load_explicit(&s->st_corrupt, memory_order_relaxed);
	st->io_errors = atomic_load_explicit(&s->st_io, memory_order_relaxed);
	st->purged_hard =
	    atomic_load_explicit(&s->st_purged_hard, memory_order_relaxed);
	st->purged_soft =
	    atomic_load_explicit(&s->st_purged_soft, memory_order_relaxed);
	st->purge_seq = cache_store_purge_seq(s);
	st->disk_budget = s->disk_bytes; /* set at open, before any reader */
	st->disk_high = s->high_bytes;
	st->mem_budget = ms.budget;
	st->damaged = cache_store_is_damaged(s);
}
