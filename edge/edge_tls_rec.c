/*
 * Output packed into whole TLS records (edge/edge_tls_rec.h).
 *
 * Each byte is copied once, into the staging record; the record then
 * becomes an evbuffer chain by reference, so the output evbuffer copies
 * nothing more and the encryption reads the record where it was filled.
 * That copy replaces the one into the evbuffer that the pieces would
 * otherwise cost, and a large body pays it instead of a short record, a
 * write(2) and a TCP segment per frame header.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/cdn.h"
#include "edge/edge_tls_rec.h"

static void
on_rec_written(const void *data, size_t len, void *arg)
{
	(void)len;
	(void)arg;
	free((void *)(uintptr_t)data);
}

static void
rec_hand_over(struct tls_rec *r, struct evbuffer *out)
{
	if (evbuffer_add_reference(out, r->buf, r->len, on_rec_written, NULL) !=
	    0) {
		/* No chain for the reference: copy rather than lose bytes. */
		(void)evbuffer_add(out, r->buf, r->len);
		free(r->buf);
	}
	r->buf = NULL;
	r->len = 0;
}

void
tls_rec_add(struct tls_rec *r, struct evbuffer *out, const void *p, size_t n)
{
	const char *s = p;
	size_t k;

	CDN_ASSERT(r->len < TLS_REC_MAX);
	while (n > 0) {
		if (r->buf == NULL)
			r->buf = cdn_xmalloc(TLS_REC_MAX); /* small, fixed */
		k = TLS_REC_MAX - r->len;
		if (k > n)
			k = n;
		memcpy(r->buf + r->len, s, k);
		r->len += k;
		s += k;
		n -= k;
		if (r->len == TLS_REC_MAX)
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
	free(r->buf);
	r->buf = NULL;
	r->len = 0;
}
