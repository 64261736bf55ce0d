/*
 * Unit tests of edge/edge_tls_rec.c: whatever the sizes of the pieces
 * added, the output evbuffer holds them in order, every chain but the last
 * one full buffer of whole records (libevent's OpenSSL bufferevent makes
 * records of each chain: a short one at its end), and nothing is leaked
 * (the sanitizer build checks that).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "edge/edge_tls_rec.h"
#include "tests/unit/tap.h"

#define MAX_CHAINS 64

/* The pattern byte at offset <i> of the stream. */
static unsigned char
pat(size_t i)
{
	return (unsigned char)(i * 7 + i / 251);
}

/* Add <n> pieces of the sizes in <sizes> (then flush) and check <out>. */
static void
pieces_case(const char *name, const size_t *sizes, size_t n)
{
	struct evbuffer *out = evbuffer_new();
	struct evbuffer_iovec v[MAX_CHAINS];
	struct tls_rec r = {tls_rec_pool_new(2), NULL, 0};
	unsigned char *src, *got;
	size_t total = 0, at = 0, short_chains = 0, kept_full = 0;
	int nv;

	for (size_t i = 0; i < n; i++)
		total += sizes[i];
	src = malloc(total + 1);
	for (size_t i = 0; i < total; i++)
		src[i] = pat(i);
	for (size_t i = 0; i < n; i++) {
		tls_rec_add(&r, out, src + at, sizes[i]);
		at += sizes[i];
		if (r.len >= TLS_REC_BUF)
			kept_full++;
	}
	is_int(kept_full, 0, "%s: a full record is never kept", name);
	is_int(evbuffer_get_length(out) + r.len, total,
	    "%s: every byte is in the output or the record", name);
	is_int(r.len, total % TLS_REC_BUF, "%s: only the rest is kept", name);
	tls_rec_flush(&r, out);
	is_int(r.len, 0, "%s: flushed", name);
	nv = evbuffer_peek(out, -1, NULL, v, MAX_CHAINS);
	is_int(nv, (total + TLS_REC_BUF - 1) / TLS_REC_BUF,
	    "%s: one chain per buffer", name);
	for (int i = 0; i + 1 < nv && i < MAX_CHAINS; i++)
		if (v[i].iov_len != TLS_REC_BUF)
			short_chains++;
	is_int(short_chains, 0, "%s: every chain but the last is full", name);
	got = malloc(total + 1);
	is_int(evbuffer_remove(out, got, total + 1), total, "%s: length", name);
	ok(memcmp(got, src, total) == 0, "%s: the bytes, in order", name);
	tls_rec_fini(&r);
	evbuffer_free(out);
	tls_rec_pool_free(&r.pool);
	free(got);
	free(src);
}

static void
test_frames(void)
{
	/* A HEADERS frame, then seven DATA frames of a 100 KiB body, each a
	 * 9-byte header and up to 16384 bytes. */
	size_t s[16] = {120};
	size_t n = 1, left = 102400;

	while (left > 0) {
		s[n++] = 9;
		s[n++] = left < TLS_REC_MAX ? left : TLS_REC_MAX;
		left -= s[n - 1];
	}
	pieces_case("frames of a 100 KiB response", s, n);
}

static void
test_sizes(void)
{
	static const size_t exact[] = {TLS_REC_BUF, TLS_REC_BUF};
	static const size_t big[] = {5 * TLS_REC_BUF + 3};
	static const size_t small[] = {1, 0, 2, 3, 5, 8, 13};
	size_t random_sizes[200];

	pieces_case("two exact buffers", exact, 2);
	pieces_case("one piece of several buffers", big, 1);
	pieces_case("small pieces", small, 7);
	srand(7);
	for (size_t i = 0; i < 200; i++)
		random_sizes[i] = (size_t)rand() % 5000;
	pieces_case("random pieces", random_sizes, 200);
}

/* A record that is dropped unsent goes back to the pool. */
static void
test_fini_unsent(void)
{
	struct evbuffer *out = evbuffer_new();
	struct tls_rec r = {tls_rec_pool_new(2), NULL, 0};

	tls_rec_add(&r, out, "abc", 3);
	tls_rec_fini(&r);
	ok(r.buf == NULL && r.len == 0, "fini empties the record");
	is_int(evbuffer_get_length(out), 0, "and gives the output nothing");
	tls_rec_flush(&r, out);
	is_int(evbuffer_get_length(out), 0, "an empty flush adds nothing");
	evbuffer_free(out);
	tls_rec_pool_free(&r.pool);
}

/* Written records come back to the pool and are used again. */
static void
test_pool_reuse(void)
{
	struct evbuffer *out = evbuffer_new();
	struct tls_rec r = {tls_rec_pool_new(2), NULL, 0};
	static char big[2 * TLS_REC_BUF];
	struct evbuffer_iovec v[2];
	const void *first;

	tls_rec_add(&r, out, big, sizeof(big));
	is_int(evbuffer_peek(out, -1, NULL, v, 2), 2, "two buffers out");
	first = v[1].iov_base;
	evbuffer_drain(out, evbuffer_get_length(out)); /* written */
	tls_rec_add(&r, out, big, 1);
	ok(r.buf == first, "the last buffer written is the next one filled");
	tls_rec_flush(&r, out);
	evbuffer_drain(out, evbuffer_get_length(out));
	evbuffer_free(out);
	tls_rec_pool_free(&r.pool);
}

/* Records still in an evbuffer outlive the pool's owner. */
static void
test_pool_outlives_owner(void)
{
	struct evbuffer *out = evbuffer_new();
	struct tls_rec r = {tls_rec_pool_new(2), NULL, 0};
	struct tls_rec_pool *owner = r.pool;
	static char big[3 * TLS_REC_BUF];

	tls_rec_add(&r, out, big, sizeof(big) - 5);
	tls_rec_pool_free(&owner);
	ok(owner == NULL, "the owner's pointer is cleared");
	tls_rec_flush(&r, out);
	is_int(evbuffer_get_length(out), sizeof(big) - 5,
	    "the records are still there");
	/* Gives the last of them back, and the pool goes: a use after free
	 * or a leak here fails the sanitizer build. */
	evbuffer_free(out);
}

int
main(void)
{
	plan_no_plan();
	test_frames();
	test_sizes();
	test_fini_unsent();
	test_pool_reuse();
	test_pool_outlives_owner();
	return done_testing();
}
