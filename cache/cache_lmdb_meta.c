/*
 * data.mdb's meta pages read without LMDB (cache_int.h,
 * cache_lmdb_meta_read): the store checks the file against them before it
 * opens its one environment (cache_store.c, open_env).  The layout is
 * LMDB 0.9's (mdb.c: MDB_page, MDB_meta, mdb_env_read_header), which
 * lmdb.h does not export: the first two pages are meta pages, each a page
 * header and then the meta record, in the machine's byte order, with
 * LMDB's pgno_t and txnid_t as size_t.
 */
#include "config.h"

#include <errno.h>
#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include "cache/cache_int.h"

#define LMDB_MAGIC        0xBEEFC0DEu /* MDB_MAGIC */
#define LMDB_DATA_VERSION 1           /* MDB_DATA_VERSION */
#define LMDB_P_META       0x08        /* a meta page's mp_flags */
#define LMDB_NUM_METAS    2
/* MAX_PAGESIZE; LMDB writes the system's page size, 4 KiB here. */
#define LMDB_PSIZE_MAX 0x8000
/* Two meta pages must not overlap. */
#define LMDB_PSIZE_MIN 512

/* MDB_db: a database's record in the meta page. */
struct lmdb_db {
	uint32_t pad; /* the free list's holds the page size (mm_psize) */
	uint16_t flags;
	uint16_t depth;
	size_t branch_pages;
	size_t leaf_pages;
	size_t overflow_pages;
	size_t entries;
	size_t root;
};

/* MDB_metabuf: the page header (MDB_page up to mp_ptrs), then MDB_meta. */
struct lmdb_meta_page {
	size_t pgno;
	uint16_t pad;
	uint16_t flags;
	uint16_t lower;
	uint16_t upper;
	uint32_t magic;
	uint32_t version;
	void *address;
	size_t mapsize;
	struct lmdb_db dbs[2]; /* FREE_DBI, MAIN_DBI */
	size_t last_pg;
	size_t txnid;
};

_Static_assert(sizeof(size_t) != 8 ||
        (offsetof(struct lmdb_meta_page, magic) == 16 &&
            offsetof(struct lmdb_meta_page, dbs) == 40 &&
            offsetof(struct lmdb_meta_page, txnid) == 144),
    "LMDB 0.9's meta page on a 64-bit machine");

static int
psize_ok(uint32_t psize)
{
	return psize >= LMDB_PSIZE_MIN && psize <= LMDB_PSIZE_MAX &&
	    (psize & (psize - 1)) == 0;
}

int
cache_lmdb_meta_read(int fd, struct cache_lmdb_meta *m)
{
	struct lmdb_meta_page pg[LMDB_NUM_METAS];
	const struct lmdb_meta_page *newest;
	off_t off = 0;
	ssize_t n;

	CDN_ASSERT(m != NULL);
	for (int i = 0; i < LMDB_NUM_METAS; i++) {
		n = pread(fd, &pg[i], sizeof(pg[i]), off);
		if (n == -1)
			return errno;
		if (n == 0 && i == 0)
			return ENOENT;
		if ((size_t)n != sizeof(pg[i]) ||
		    (pg[i].flags & LMDB_P_META) == 0 ||
		    pg[i].magic != LMDB_MAGIC)
			return MDB_INVALID;
		if (pg[i].version != LMDB_DATA_VERSION)
			return MDB_VERSION_MISMATCH;
		/* A page size LMDB never writes would place the second meta
		 * page, and every page, wrongly. */
		if (!psize_ok(pg[i].dbs[0].pad))
			return MDB_INVALID;
		/* The second meta page is at the first's page size. */
		off = pg[0].dbs[0].pad;
	}
	/* As mdb_env_pick_meta: the last commit wrote the newer. */
	newest = &pg[pg[1].txnid > pg[0].txnid];
	m->last_pgno = newest->last_pg;
	m->txnid = newest->txnid;
	m->mapsize = newest->mapsize;
	m->psize = newest->dbs[0].pad;
	return 0;
}
