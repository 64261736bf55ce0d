/*
 * Unit tests of data.mdb's meta pages read without LMDB
 * (cache/cache_lmdb_meta.c) on files LMDB wrote: what it reads agrees with
 * LMDB's own mdb_env_info, the newer meta page wins wherever it is, and
 * an empty, short, foreign or scribbled file gives the code mdb_env_open
 * gives for it.  Includes the file for its copy of LMDB's layout.
 */
#include "cache/cache_lmdb_meta.c"

#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/unit/tap.h"
#include "tests/unit/tmptree.h"

#define MAPSIZE  (UINT64_C(8) << 20)
#define VAL_LEN  2000 /* a record each, so that each commit adds pages */
#define PER_TXN  20
#define BAD_PSZ  3000 /* not a power of two */
#define SENTINEL UINT64_C(0x5eed)

static char root[64], dir[96], path[128];
static unsigned char *pristine;
static size_t pristine_len;

static void
fail(const char *what)
{
	perror(what);
	tmptree_remove(root);
	exit(1);
}

/* Commit PER_TXN more records in one write transaction. */
static void
commit_some(unsigned from)
{
	static unsigned char val[VAL_LEN];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k, v;
	unsigned key;

	if (mdb_env_create(&env) != 0 ||
	    mdb_env_set_mapsize(env, (size_t)MAPSIZE) != 0 ||
	    mdb_env_open(env, dir, MDB_NOSYNC, 0644) != 0 ||
	    mdb_txn_begin(env, NULL, 0, &txn) != 0 ||
	    mdb_dbi_open(txn, NULL, 0, &dbi) != 0)
		fail("lmdb");
	for (unsigned i = 0; i < PER_TXN; i++) {
		key = from + i;
		k.mv_data = &key;
		k.mv_size = sizeof(key);
		v.mv_data = val;
		v.mv_size = sizeof(val);
		if (mdb_put(txn, dbi, &k, &v, 0) != 0)
			fail("mdb_put");
	}
	if (mdb_txn_commit(txn) != 0)
		fail("mdb_txn_commit");
	mdb_env_close(env);
}

/* What mdb_env_open says of the file: 0 with its info, or its error. */
static int
lmdb_says(MDB_envinfo *ei, unsigned *psize)
{
	MDB_env *env;
	MDB_stat st;
	int rc;

	if (mdb_env_create(&env) != 0)
		fail("mdb_env_create");
	rc = mdb_env_open(env, dir, MDB_RDONLY, 0644);
	if (rc == 0)
		rc = mdb_env_info(env, ei);
	if (rc == 0)
		rc = mdb_env_stat(env, &st);
	if (rc == 0)
		*psize = st.ms_psize;
	mdb_env_close(env);
	return rc;
}

static int
read_meta(struct cache_lmdb_meta *m)
{
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		fail(path);
	rc = cache_lmdb_meta_read(fd, m);
	close(fd);
	return rc;
}

static void
save_pristine(void)
{
	struct stat st;
	FILE *f;

	if (stat(path, &st) != 0 || (f = fopen(path, "rb")) == NULL)
		fail(path);
	pristine_len = (size_t)st.st_size;
	pristine = malloc(pristine_len);
	if (pristine == NULL ||
	    fread(pristine, 1, pristine_len, f) != pristine_len)
		fail("read data.mdb");
	fclose(f);
}

/* data.mdb as saved, then cut to <len> bytes. */
static void
restore(size_t len)
{
	int fd;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd == -1 ||
	    pwrite(fd, pristine, pristine_len, 0) != (ssize_t)pristine_len ||
	    ftruncate(fd, (off_t)len) != 0)
		fail("restore data.mdb");
	close(fd);
}

/* Overwrite <n> bytes at <off> in meta page <which> (of page size <ps>). */
static void
scribble(unsigned which, unsigned ps, size_t off, const void *p, size_t n)
{
	int fd;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd == -1 ||
	    pwrite(fd, p, n, (off_t)(which * ps + off)) != (ssize_t)n)
		fail("scribble data.mdb");
	close(fd);
}

/* A scribbled meta page gives <want>, as mdb_env_open does when <same>. */
static void
check_bad(const char *name, int want, int same)
{
	struct cache_lmdb_meta m = {.last_pgno = SENTINEL};
	MDB_envinfo ei;
	unsigned ps;

	is_int(read_meta(&m), want, "%s: %s", name, mdb_strerror(want));
	ok(m.last_pgno == SENTINEL, "%s: nothing filled in", name);
	if (same)
		is_int(lmdb_says(&ei, &ps), want, "%s: as mdb_env_open", name);
}

/* Commit and check that the reader and LMDB agree. */
static void
check_agrees(const char *name)
{
	struct cache_lmdb_meta m;
	MDB_envinfo ei;
	unsigned ps;

	is_int(read_meta(&m), 0, "%s: read", name);
	is_int(lmdb_says(&ei, &ps), 0, "%s: LMDB opens it", name);
	is_int(m.txnid, ei.me_last_txnid, "%s: txnid", name);
	is_int(m.last_pgno, ei.me_last_pgno, "%s: last page", name);
	is_int(m.mapsize, ei.me_mapsize, "%s: map size", name);
	is_int(m.psize, ps, "%s: page size", name);
}

int
main(void)
{
	struct cache_lmdb_meta m;
	struct lmdb_meta_page pg[2];
	uint32_t u32;
	size_t big;
	unsigned ps;
	int fd;

	plan_no_plan();
	if (tmptree_make(root, sizeof(root), "t_cache_lmdb_meta") != 0)
		return 1;
	snprintf(dir, sizeof(dir), "%s/env", root);
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	if (mkdir(dir, 0755) != 0)
		fail(dir);

	/* LMDB writes its first commit (txnid 1) into the second meta page
	 * and alternates from there. */
	commit_some(0);
	check_agrees("one commit, the second page newer");
	commit_some(PER_TXN);
	check_agrees("two commits, the first page newer");
	commit_some(2 * PER_TXN);
	check_agrees("three commits, the second page newer again");

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1 ||
	    pread(fd, &pg[0], sizeof(pg[0]), 0) != (ssize_t)sizeof(pg[0]))
		fail(path);
	ps = pg[0].dbs[0].pad;
	if (pread(fd, &pg[1], sizeof(pg[1]), ps) != (ssize_t)sizeof(pg[1]))
		fail(path);
	close(fd);
	ok(pg[1].txnid > pg[0].txnid && pg[1].last_pg > pg[0].last_pg,
	    "the older meta page names fewer pages (%zu, %zu)", pg[0].last_pg,
	    pg[1].last_pg);
	save_pristine();

	/* The larger txnid wins, not the position. */
	big = pg[1].txnid + 100;
	scribble(
	    0, ps, offsetof(struct lmdb_meta_page, txnid), &big, sizeof(big));
	is_int(read_meta(&m), 0, "older page given a larger txnid: read");
	is_int(m.txnid, big, "older page given a larger txnid: it wins");
	is_int(m.last_pgno, pg[0].last_pg,
	    "older page given a larger txnid: its last page");

	restore(0);
	check_bad("empty file", ENOENT, 0);
	restore(100);
	check_bad("cut inside the first meta page", MDB_INVALID, 1);
	restore(ps + 100);
	check_bad("cut inside the second meta page", MDB_INVALID, 1);

	/* Cut past the meta pages: read, and the store's size check refuses
	 * it (cache_store.c, check_data_file). */
	restore(2 * (size_t)ps);
	is_int(read_meta(&m), 0, "cut after the meta pages: read");
	ok((m.last_pgno + 1) * m.psize > 2 * (uint64_t)ps,
	    "cut after the meta pages: its last page lies past the end");

	for (unsigned which = 0; which < 2; which++) {
		char name[64];

		restore(pristine_len);
		u32 = 0xC0DEBEEFu;
		scribble(which, ps, offsetof(struct lmdb_meta_page, magic),
		    &u32, sizeof(u32));
		snprintf(name, sizeof(name), "meta page %u: bad magic", which);
		check_bad(name, MDB_INVALID, 1);

		restore(pristine_len);
		u32 = LMDB_DATA_VERSION + 1;
		scribble(which, ps, offsetof(struct lmdb_meta_page, version),
		    &u32, sizeof(u32));
		snprintf(
		    name, sizeof(name), "meta page %u: other version", which);
		check_bad(name, MDB_VERSION_MISMATCH, 1);

		restore(pristine_len);
		u32 = 0;
		scribble(which, ps, offsetof(struct lmdb_meta_page, flags),
		    &u32, sizeof(uint16_t));
		snprintf(
		    name, sizeof(name), "meta page %u: not a meta page", which);
		check_bad(name, MDB_INVALID, 1);

		/* LMDB 0.9.24 divides by a page size of 0; not asked. */
		restore(pristine_len);
		u32 = which == 0 ? 0 : BAD_PSZ;
		scribble(which, ps, offsetof(struct lmdb_meta_page, dbs), &u32,
		    sizeof(u32));
		snprintf(name, sizeof(name), "meta page %u: page size %u",
		    which, u32);
		check_bad(name, MDB_INVALID, 0);
	}

	restore(pristine_len);
	check_agrees("restored");

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	is_int(cache_lmdb_meta_read(fd, &m), EISDIR, "a directory: EISDIR");
	close(fd);

	free(pristine);
	tmptree_remove(root);
	return done_testing();
}
