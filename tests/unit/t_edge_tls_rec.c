/*
 * Unit tests of edge/edge_tls_rec.c: buffers given back are handed out
 * again, most recent first; the pool keeps no more than it was told; and
 * buffers still out keep the pool after its owner let go (the sanitizer
 * build checks the frees).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/edge_tls_rec.h"
#include "tests/unit/tap.h"

/* The buffer given back last is the next one handed out. */
static void
test_reuse(void)
{
	struct tls_rec_pool *pl = tls_rec_pool_new(2);
	char *a = tls_rec_pool_get(pl), *b = tls_rec_pool_get(pl);

	ok(a != NULL && b != NULL && a != b, "two distinct buffers");
	memset(a, 1, TLS_REC_BUF); /* the whole size is usable */
	tls_rec_pool_put(pl, a);
	tls_rec_pool_put(pl, b);
	ok(tls_rec_pool_get(pl) == b, "the last given back comes first");
	ok(tls_rec_pool_get(pl) == a, "then the one before");
	tls_rec_pool_put(pl, a);
	tls_rec_pool_put(pl, b);
	tls_rec_pool_free(&pl);
	ok(pl == NULL, "the owner's pointer is cleared");
}

/* Beyond <keep>, buffers given back are freed (a leak fails ASan). */
static void
test_keep(void)
{
	struct tls_rec_pool *pl = tls_rec_pool_new(1);
	char *a = tls_rec_pool_get(pl), *b = tls_rec_pool_get(pl);

	tls_rec_pool_put(pl, a);
	tls_rec_pool_put(pl, b); /* over keep: freed */
	ok(tls_rec_pool_get(pl) == a, "the one kept");
	tls_rec_pool_put(pl, a);
	tls_rec_pool_free(&pl);
}

/* A buffer still out outlives the owner's hold; giving it back frees all. */
static void
test_outlives_owner(void)
{
	struct tls_rec_pool *pl = tls_rec_pool_new(2), *owner = pl;
	char *a = tls_rec_pool_get(pl);

	tls_rec_pool_free(&owner);
	ok(owner == NULL, "the owner let go");
	memset(a, 2, TLS_REC_BUF); /* still ours: ASan would see a free */
	tls_rec_pool_put(pl, a);   /* the last holder: pool and buffer go */
	ok(1, "given back after the owner");
}

int
main(void)
{
	plan_no_plan();
	test_reuse();
	test_keep();
	test_outlives_owner();
	return done_testing();
}
