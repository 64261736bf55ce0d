/*
 * Output packed into whole TLS records (edge/edge_tls_rec.h).
 *
 * Each byte is copied once, into the staging record; the record then
 * becomes an evbuffer chain by reference, so the output evbuffer copies
 * nothing more and the encryption reads the record where it was filled.
 * That copy replaces the one into the evbuffer that the pieces would
 * otherwise cost, and a large body pays it instead of a short record, a
 * write(2) and a TCP segment per frame header.
 *
 * The pool counts its holders: the owner, and every record buffer that is
 * out (being filled or in an evbuffer).  It is freed when the last one
 * lets go, which may be after its owner (bufferevents are finalized late).
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

static void
on_rec_written(const void *data, size_t len, void *arg)
{
	(void)len;
	tls_rec_pool_put(arg, (char *)(uintptr_t)data);
}

static void
rec_hand_over(struct tls_rec *r, struct evbuffer *out)
{
	if (evbuffer_add_reference(
	        out, r->buf, r->len, on_rec_written, r->pool) != 0) {
		/* No chain for the reference: copy rather than lose bytes. */
		(void)evbuffer_add(out, r->buf, r->len);
		tls_rec_pool_put(r->pool, r->buf);
	}
	r->buf = NULL;
	r->len = 0;
}

void
tls_rec_add(struct tls_rec *r, struct evbuffer *out, const void *p, size_t n)
{
	const char *s = p;
	size_t k;

	CDN_ASSERT(r->len < TLS_REC_BUF);
	while (n > 0) {
		if (r->buf == NULL)
			r->buf = tls_rec_pool_get(r->pool);
		k = TLS_REC_BUF - r->len;
		if (k > n)
			k = n;
		memcpy(r->buf + r->len, s, k);
		r->len += k;
		s += k;
		n -= k;
		if (r->len == TLS_REC_BUF)
			rec_hand_over(r, out);
	}
}

void
tls_rec_flush(struct tls_rec *r, struct evbuffer *out)
{
	if (r->len > 0)
		rec_hand_over(r, out);
}

void
tls_rec_fini(struct tls_rec *r)
{
	if (r->buf != NULL)
		tls_rec_pool_put(r->pool, r->buf);
	r->buf = NULL;
	r->len = 0;
}
