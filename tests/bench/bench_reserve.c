/*
 * The reserve of a live store written through its map: samples data.mdb
 * in DIR every 100 ms for SECONDS, its allocated blocks against the pages
 * to its last one (mdb_env_info, read-only beside the store's writer),
 * and prints the last sample and the largest reserve seen.
 *   bench_reserve DIR SECONDS
 * e.g. beside tests/bench/miss_store.sh, on the cache directory named in
 * edged's --cache-dir.
 */
#include "config.h"

#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define SAMPLE_US     100000 /* between two samples */
#define SAMPLES_PER_S 10
#define STAT_BLOCK    512 /* the unit of st_blocks */
#define MAX_DBS       16
#define MAX_READERS   1024

int
main(int argc, char **argv)
{
	char path[4096];
	MDB_env *env;
	MDB_envinfo ei;
	MDB_stat ms;
	struct stat st;
	int64_t used = 0, alloc = 0, reserve = 0, largest = 0;
	long n;
	int rc;

	if (argc != 3 || (n = atol(argv[2]) * SAMPLES_PER_S) <= 0) {
		fprintf(stderr, "usage: bench_reserve DIR SECONDS\n");
		return 2;
	}
	snprintf(path, sizeof(path), "%s/data.mdb", argv[1]);
	if ((rc = mdb_env_create(&env)) != 0 ||
	    (rc = mdb_env_set_maxdbs(env, MAX_DBS)) != 0 ||
	    (rc = mdb_env_set_maxreaders(env, MAX_READERS)) != 0 ||
	    (rc = mdb_env_open(
	         env, argv[1], MDB_RDONLY | MDB_NORDAHEAD, 0644)) != 0 ||
	    (rc = mdb_env_stat(env, &ms)) != 0) {
		fprintf(stderr, "bench_reserve: %s: %s\n", argv[1],
		    mdb_strerror(rc));
		return 1;
	}
	for (long i = 0; i < n; i++) {
		if (mdb_env_info(env, &ei) == 0 && stat(path, &st) == 0) {
			used = (int64_t)(ei.me_last_pgno + 1) * ms.ms_psize;
			alloc = (int64_t)st.st_blocks * STAT_BLOCK;
			reserve = alloc - used;
			if (reserve > largest)
				largest = reserve;
		}
		usleep(SAMPLE_US);
	}
	printf("to the last page %.1f MB, allocated %.1f MB, reserve now "
	       "%.1f MB, largest %.1f MB\n",
	    (double)used / 1e6, (double)alloc / 1e6, (double)reserve / 1e6,
	    (double)largest / 1e6);
	mdb_env_close(env);
	return 0;
}
