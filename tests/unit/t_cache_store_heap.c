/*
 * Unit test of what opening the store leaves in the heap.  LMDB gives a
 * writable environment its free-page and dirty-page lists (3 MiB) for the
 * environment's life.  glibc maps blocks that large on their own, unless
 * one as large was freed before: its dynamic mmap threshold has then risen
 * and they come from the heap, where the pages touched stay resident.  An
 * environment opened and closed to check data.mdb before the real one did
 * that, and cost edged 2.3 MiB of its idle memory.  A process opens its
 * store once, so the test opens one, on a store a child process made.
 */
#include "config.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cache/cache.h"
#include "common/cdn_asan.h"
#include "tests/unit/tap.h"
#include "tests/unit/tmptree.h"

#define MIB (1024u * 1024u)
/* The smaller of LMDB's two lists: 128 Ki page numbers of 8 bytes. */
#define LMDB_LIST_BYTES (1u * MIB)
/* What the rest of the opening may take from the heap. */
#define HEAP_MAX (1u * MIB)

static char root[64], dir[96];

static struct cache_store *
open_store(void)
{
	struct cache_store_conf c;

	memset(&c, 0, sizeof(c));
	c.dir = dir;
	c.disk_bytes = 64 * MIB;
	c.memory_bytes = 4 * MIB;
	c.max_object_bytes = 4 * MIB;
	c.high_water_pct = 90;
	c.low_water_pct = 70;
	return cache_store_open(&c);
}

/* The store, made and closed by a child, whose heap is its own. */
static int
make_store(void)
{
	struct cache_store *s;
	int status;
	pid_t pid;

	pid = fork();
	if (pid == 0) {
		s = open_store();
		if (s == NULL)
			_exit(1);
		cache_store_close(&s);
		_exit(0);
	}
	return pid > 0 && waitpid(pid, &status, 0) == pid &&
	    WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int
main(void)
{
	struct cache_store *s;
	struct mallinfo2 a, b;

	plan_no_plan();
	if (tmptree_make(root, sizeof(root), "t_cache_store_heap") != 0)
		return 1;
	snprintf(dir, sizeof(dir), "%s/store", root);
	ok(make_store(), "a child made the store");

	a = mallinfo2();
	s = open_store();
	b = mallinfo2();
	ok(s != NULL, "the store opens");
	if (CDN_ASAN) {
		ok(1, "# SKIP AddressSanitizer has its own allocator");
	} else {
		ok(b.hblkhd >= a.hblkhd + 2 * LMDB_LIST_BYTES,
		    "LMDB's lists are blocks of their own (%zu bytes more)",
		    b.hblkhd - a.hblkhd);
		ok(b.arena < a.arena + HEAP_MAX,
		    "the heap grew by %zd bytes, less than %u",
		    (ssize_t)(b.arena - a.arena), HEAP_MAX);
	}
	cache_store_close(&s);
	tmptree_remove(root);
	return done_testing();
}
