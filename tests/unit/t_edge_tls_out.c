/*
 * Unit tests of edge/edge_tls_out.c, the write BIO that gathers records:
 * on a socketpair, bytes wait until the buffer is full or flushed and
 * arrive in order; a full socket makes the BIO ask for a retry and the
 * flush say CDN_AGAIN until the peer reads; a closed peer is CDN_EIO; and
 * SSL_free() frees the BIO and gives its buffer back (ASan checks).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/ssl.h>

#include "common/cdn.h"
#include "edge/edge_tls_out.h"
#include "edge/edge_tls_rec.h"
#include "tests/unit/tap.h"

#define MAX_TRIES 10000 /* bounds every loop on the socket */

struct fixture {
	SSL_CTX *ctx;
	SSL *ssl;
	BIO *b;
	struct tls_out *o;
	struct tls_rec_pool *pool;
	int fd[2]; /* [0]: the BIO's, [1]: the peer's */
};

static unsigned char
pat(size_t i)
{
	return (unsigned char)(i * 7 + i / 251);
}

static void
setup(struct fixture *f, int sndbuf)
{
	memset(f, 0, sizeof(*f));
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, f->fd) != 0)
		abort();
	if (sndbuf > 0)
		(void)setsockopt(
		    f->fd[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	(void)fcntl(f->fd[0], F_SETFL, O_NONBLOCK);
	(void)fcntl(f->fd[1], F_SETFL, O_NONBLOCK);
	f->ctx = SSL_CTX_new(TLS_server_method());
	f->ssl = SSL_new(f->ctx);
	f->pool = tls_rec_pool_new(2);
	f->o = tls_out_attach(f->ssl, f->fd[0], f->pool);
	f->b = SSL_get_wbio(f->ssl);
}

static void
teardown(struct fixture *f)
{
	SSL_free(f->ssl); /* frees the BIO: its buffer goes back */
	SSL_CTX_free(f->ctx);
	tls_rec_pool_free(&f->pool);
	close(f->fd[0]);
	if (f->fd[1] >= 0)
		close(f->fd[1]);
}

/* Write bytes <at>..<at + n> of the pattern through the BIO: how many
 * it took (it may take part of them). */
static size_t
put(struct fixture *f, size_t at, size_t n)
{
	unsigned char buf[4096];
	size_t done = 0;
	int r;

	while (done < n) {
		size_t k = n - done < sizeof(buf) ? n - done : sizeof(buf);

		for (size_t i = 0; i < k; i++)
			buf[i] = pat(at + done + i);
		r = BIO_write(f->b, buf, (int)k);
		if (r <= 0)
			break;
		done += (size_t)r;
	}
	return done;
}

/* Read what the peer has; check it continues the pattern from *<at>. */
static int
take(struct fixture *f, size_t *at)
{
	unsigned char buf[8192];
	ssize_t n;
	int good = 1;

	while ((n = read(f->fd[1], buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != pat(*at + (size_t)i))
				good = 0;
		*at += (size_t)n;
	}
	return good;
}

static void
test_gathered_until_flushed(void)
{
	struct fixture f;
	size_t got = 0;
	long fd = -1;

	setup(&f, 0);
	is_int(BIO_get_fd(f.b, &fd), f.fd[0], "BIO_get_fd: the socket");
	is_int(put(&f, 0, 3000), 3000, "three records' worth taken");
	ok(take(&f, &got) && got == 0, "nothing written yet");
	is_int(tls_out_pending(f.o), 3000, "pending");
	is_int(tls_out_flush(f.o), CDN_OK, "flushed");
	ok(take(&f, &got) && got == 3000, "the bytes, in order");
	is_int(tls_out_pending(f.o), 0, "none pending");
	is_int(tls_out_flush(f.o), CDN_OK, "an empty flush");
	is_int(put(&f, 3000, TLS_REC_BUF + 10), TLS_REC_BUF + 10,
	    "more than a buffer");
	ok(take(&f, &got) && got == 3000 + TLS_REC_BUF,
	    "a full buffer goes by itself");
	is_int(tls_out_flush(f.o), CDN_OK, "the rest flushed");
	ok(take(&f, &got) && got == 3010 + TLS_REC_BUF, "all, in order");
	teardown(&f);
}

static void
test_full_socket(void)
{
	struct fixture f;
	size_t sent = 0, got = 0, n;
	int tries = 0, rc = CDN_AGAIN;

	setup(&f, 4096);
	do {
		n = put(&f, sent, 16384);
		sent += n;
	} while (n == 16384 && ++tries < MAX_TRIES);
	ok(BIO_should_retry(f.b) && BIO_should_write(f.b),
	    "a full socket: retry the write");
	ok(tls_out_reserve(f.o, TLS_REC_BUF) == 0, "no room to reserve");
	is_int(tls_out_flush(f.o), CDN_AGAIN, "flush: not yet");
	for (tries = 0; rc == CDN_AGAIN && tries < MAX_TRIES; tries++) {
		if (!take(&f, &got))
			break;
		rc = tls_out_flush(f.o);
	}
	is_int(rc, CDN_OK, "written once the peer reads");
	ok(take(&f, &got) && got == sent, "every byte, in order (%zu)", got);
	ok(tls_out_reserve(f.o, TLS_REC_BUF), "the whole buffer is free");
	teardown(&f);
}

static void
test_peer_closed(void)
{
	struct fixture f;

	setup(&f, 0);
	close(f.fd[1]);
	f.fd[1] = -1;
	is_int(put(&f, 0, 100), 100, "gathered");
	is_int(tls_out_flush(f.o), CDN_EIO, "the write fails");
	is_int(BIO_write(f.b, "x", 1), -1, "later writes fail");
	ok(!BIO_should_retry(f.b), "without a retry");
	ok(tls_out_reserve(f.o, 1) == 0, "no room after a failure");
	teardown(&f);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN); /* as edged does */
	plan_no_plan();
	test_gathered_until_flushed();
	test_full_socket();
	test_peer_closed();
	return done_testing();
}
