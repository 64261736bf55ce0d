/*
 * A pool of TLS output buffers (edge/edge_tls_rec.h).
 *
 * The pool counts its holders: the owner, and every buffer that is out.
 * It is freed when the last one lets go, which may be after its owner
 * (an SSL, and the write BIO holding a buffer, goes when libevent
 * finalizes its bufferevent, late).
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/cdn.h"
#include "edge/edge_tls_rec.h"

struct tls_rec_pool {
	uint32_t magic;
#define TLS_REC_POOL_MAGIC 0x7c3e52a9u
	unsigned refs; /* the owner, plus buffers out */
	unsigned has_owner : 1;
	unsigned nfree, keep;
	char *free[]; /* the most recently written last: still cached */
};

struct tls_rec_pool *
tls_rec_pool_new(unsigned keep)
{
	struct tls_rec_pool *pl =
	    cdn_xcalloc(1, sizeof(*pl) + keep * sizeof(pl->free[0]));

	pl->magic = TLS_REC_POOL_MAGIC;
	pl->refs = 1;
	pl->has_owner = 1;
	pl->keep = keep;
	return pl;
}

static void
pool_unref(struct tls_rec_pool *pl)
{
	CDN_ASSERT(pl->refs > 0);
	if (--pl->refs > 0)
		return;
	MAGIC_WIPE(pl);
	free(pl);
}

void
tls_rec_pool_free(struct tls_rec_pool **pp)
{
	struct tls_rec_pool *pl = *pp;

	*pp = NULL;
	if (pl == NULL)
		return;
	MAGIC_CHECK(pl, TLS_REC_POOL_MAGIC);
	CDN_ASSERT(pl->has_owner);
	pl->has_owner = 0;
	while (pl->nfree > 0)
		free(pl->free[--pl->nfree]);
	pool_unref(pl);
}

char *
tls_rec_pool_get(struct tls_rec_pool *pl)
{
	MAGIC_CHECK(pl, TLS_REC_POOL_MAGIC);
	pl->refs++;
	if (pl->nfree > 0)
		return pl->free[--pl->nfree];
	return cdn_xmalloc(TLS_REC_BUF); /* fixed size */
}

void
tls_rec_pool_put(struct tls_rec_pool *pl, char *buf)
{
	MAGIC_CHECK(pl, TLS_REC_POOL_MAGIC);
	if (pl->has_owner && pl->nfree < pl->keep)
		pl->free[pl->nfree++] = buf;
	else
		free(buf);
	pool_unref(pl);
}
