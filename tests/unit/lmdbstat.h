/*
 * What a store's LMDB environment holds, read from its files by a unit
 * test or benchmark after the store is closed (or beside it, read-only):
 *   MDB_env *env; MDB_txn *txn;
 *   if (lmdbstat_open(dir, &env, &txn) != 0) ...
 *   lmdbstat_db(txn, CACHE_DB_BODIES, &ms); ...
 *   lmdbstat_close(&env, &txn);
 * or, for the whole environment at once, lmdbstat_env(dir, &es).
 */
#ifndef LMDBSTAT_H
#define LMDBSTAT_H

#include <lmdb.h>
#include <stdint.h>
#include <string.h>

#include "cache/cache_int.h"

#define LMDBSTAT_MAXDBS   16
#define LMDBSTAT_FREE_DBI 0 /* LMDB's freelist */
#define LMDBSTAT_MAIN_DBI 1 /* LMDB's main db: the names of the others */

/* The store's databases (cache_int.h), in the order they are printed. */
static const char *const lmdbstat_db_names[] = {CACHE_DB_OBJECTS,
    CACHE_DB_BODIES, CACHE_DB_VARY, CACHE_DB_LRU, CACHE_DB_LRU_POS,
    CACHE_DB_META, CACHE_DB_PRULES, CACHE_DB_PLOG, CACHE_DB_TAGS};

/* The environment in <dir> opened read-only and a read transaction in
 * it; 0 or an LMDB code (and nothing left open). */
static int __attribute__((unused))
lmdbstat_open(const char *dir, MDB_env **envp, MDB_txn **txnp)
{
	int rc;

	*envp = NULL;
	*txnp = NULL;
	if ((rc = mdb_env_create(envp)) != 0 ||
	    (rc = mdb_env_set_maxdbs(*envp, LMDBSTAT_MAXDBS)) != 0 ||
	    (rc = mdb_env_open(*envp, dir, MDB_RDONLY, 0644)) != 0 ||
	    (rc = mdb_txn_begin(*envp, NULL, MDB_RDONLY, txnp)) != 0) {
		if (*envp != NULL)
			mdb_env_close(*envp);
		*envp = NULL;
		*txnp = NULL;
	}
	return rc;
}

static void __attribute__((unused))
lmdbstat_close(MDB_env **envp, MDB_txn **txnp)
{
	if (*txnp != NULL)
		mdb_txn_abort(*txnp);
	if (*envp != NULL)
		mdb_env_close(*envp);
	*txnp = NULL;
	*envp = NULL;
}

/* mdb_stat of the database <name> (NULL: the main db); 0 or an LMDB code,
 * MDB_NOTFOUND if there is no such database. */
static int __attribute__((unused))
lmdbstat_db(MDB_txn *txn, const char *name, MDB_stat *ms)
{
	MDB_dbi dbi = LMDBSTAT_MAIN_DBI;
	int rc;

	if (name != NULL && (rc = mdb_dbi_open(txn, name, 0, &dbi)) != 0)
		return rc;
	return mdb_stat(txn, dbi, ms);
}

/* The pages a database's own tree takes.  mdb_stat leaves out the
 * sub-databases LMDB makes for keys with many duplicates (MDB_DUPSORT). */
static uint64_t __attribute__((unused)) lmdbstat_pages(const MDB_stat *ms)
{
	return (uint64_t)ms->ms_branch_pages + ms->ms_leaf_pages +
	    ms->ms_overflow_pages;
}

struct lmdbstat_env {
	size_t psize;
	uint64_t last_pgno;  /* the file's pages are 0 .. last_pgno */
	uint64_t tree_pages; /* mdb_stat of every db, freelist, main, metas */
	uint64_t free_pages; /* listed in the freelist */
	/* Pages in use: those up to last_pgno that are not free.  This
	 * counts the pages of duplicate sub-databases, tree_pages does not. */
	uint64_t used_pages;
};

/* The pages of the environment in <dir>; 0 or an LMDB code. */
static int __attribute__((unused))
lmdbstat_env(const char *dir, struct lmdbstat_env *es)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_envinfo ei;
	MDB_stat ms;
	MDB_val k, v;
	int rc;

	memset(es, 0, sizeof(*es));
	es->tree_pages = 2; /* the two meta pages */
	if ((rc = lmdbstat_open(dir, &env, &txn)) != 0)
		return rc;
	if ((rc = mdb_env_info(env, &ei)) != 0)
		goto out;
	es->last_pgno = ei.me_last_pgno;
	for (int i = -2; i <
	     (int)(sizeof(lmdbstat_db_names) / sizeof(lmdbstat_db_names[0]));
	     i++) {
		if (i == -2)
			rc = mdb_stat(txn, LMDBSTAT_FREE_DBI, &ms);
		else
			rc = lmdbstat_db(
			    txn, i < 0 ? NULL : lmdbstat_db_names[i], &ms);
		if (rc == MDB_NOTFOUND)
			continue;
		if (rc != 0)
			goto out;
		es->psize = ms.ms_psize;
		es->tree_pages += lmdbstat_pages(&ms);
	}
	/* A freelist record is an ID list: its count, then the pages. */
	if ((rc = mdb_cursor_open(txn, LMDBSTAT_FREE_DBI, &cur)) != 0)
		goto out;
	while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
		size_t n = 0; /* LMDB's MDB_ID */

		/* The count word, as LMDB and mdb_stat read it. */
		if (v.mv_size >= sizeof(n))
			memcpy(&n, v.mv_data, sizeof(n));
		es->free_pages += n;
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND)
		goto out;
	rc = 0;
	es->used_pages = es->last_pgno + 1 - es->free_pages;
out:
	lmdbstat_close(&env, &txn);
	return rc;
}

#endif
