/*
 * A write BIO that gathers TLS records into large writes
 * (edge/edge_tls_out.h).
 *
 * The records are copied once more, from OpenSSL's write buffer, where
 * they were just encrypted and are still in the CPU's cache, into a pool
 * buffer that is written when full (64 KiB: four records) or flushed by
 * the owner.  (Writes before the flush with MSG_MORE, to hold a short
 * last segment as a cork would, cost more CPU than they saved: measured
 * in docs/performance.md.)  The copy costs
 * about what the write(2) per record it saves did; what it buys is room
 * that can be reserved (tls_out_reserve), so an owner that reserves first
 * never sees SSL_write() stop halfway through a record.
 *
 * While the buffer is full and the socket takes nothing, the BIO asks
 * OpenSSL to retry (BIO_set_retry_write): SSL_write() then reports
 * SSL_ERROR_WANT_WRITE and libevent waits until the socket is writable,
 * as with a socket BIO.  A write error is kept and reported to every
 * later call: OpenSSL then fails with SSL_ERROR_SYSCALL, which libevent
 * turns into BEV_EVENT_ERROR.
 *
 * The state hangs off the BIO (BIO_get_data), which the SSL owns, so it
 * dies with the SSL, whenever libevent finalizes the bufferevent.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/bio.h>
#include <openssl/ssl.h>

#include "common/cdn.h"
#include "common/cdn_log.h"
#include "edge/edge_tls_out.h"

struct tls_out {
	uint32_t magic;
#define TLS_OUT_MAGIC 0x4d17a2c3u
	int fd;
	struct tls_rec_pool *pool;
	char *buf;  /* TLS_REC_BUF bytes, or NULL while nothing is gathered */
	size_t off; /* bytes of buf already written */
	size_t len; /* bytes of buf filled */
	int err;    /* errno of a failed write(2), or 0 */
};

static BIO_METHOD *out_method;
static pthread_once_t out_method_once = PTHREAD_ONCE_INIT;

/* Write what the socket takes; give the buffer back once it is empty. */
static void
out_drain(struct tls_out *o)
{
	ssize_t n;

	while (o->off < o->len && o->err == 0) {
		n = send(o->fd, o->buf + o->off, o->len - o->off, MSG_NOSIGNAL);
		if (n > 0) {
			o->off += (size_t)n;
		} else if (n == -1 && errno == EINTR) {
			continue;
		} else if (n == -1 &&
		    (errno == EAGAIN || errno == EWOULDBLOCK)) {
			return;
		} else {
			o->err = n == -1 ? errno : EPIPE;
			CDN_LOG(
			    CDN_LOG_DEBUG, "tls", "send: %s", strerror(o->err));
		}
	}
	if (o->off == o->len && o->buf != NULL) {
		tls_rec_pool_put(o->pool, o->buf);
		o->buf = NULL;
		o->off = 0;
		o->len = 0;
	}
}

static int
on_bio_write(BIO *b, const char *p, int n)
{
	struct tls_out *o = BIO_get_data(b);
	size_t k;

	MAGIC_CHECK(o, TLS_OUT_MAGIC);
	BIO_clear_retry_flags(b);
	if (n <= 0)
		return 0;
	if (o->len == TLS_REC_BUF)
		out_drain(o);
	if (o->err != 0) {
		errno = o->err;
		return -1;
	}
	if (o->len == TLS_REC_BUF) {
		BIO_set_retry_write(b); /* the socket is full */
		return -1;
	}
	if (o->buf == NULL)
		o->buf = tls_rec_pool_get(o->pool);
	k = TLS_REC_BUF - o->len;
	if (k > (size_t)n)
		k = (size_t)n;
	memcpy(o->buf + o->len, p, k);
	o->len += k;
	if (o->len == TLS_REC_BUF)
		out_drain(o);
	return (int)k; /* OpenSSL writes the rest of a record again */
}

static long
on_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct tls_out *o = BIO_get_data(b);

	(void)num;
	MAGIC_CHECK(o, TLS_OUT_MAGIC);
	switch (cmd) {
	case BIO_C_GET_FD:
		/* libevent learns the socket to close from the write BIO. */
		if (ptr != NULL)
			*(int *)ptr = o->fd;
		return o->fd;
	case BIO_CTRL_FLUSH:
		/* Handshake messages: what the socket does not take now is
		 * written by the owner's next tls_out_flush(). */
		out_drain(o);
		return o->err == 0;
	case BIO_CTRL_WPENDING:
		return (long)(o->len - o->off);
	case BIO_CTRL_GET_CLOSE:
		return BIO_NOCLOSE; /* the socket is libevent's */
	case BIO_CTRL_SET_CLOSE:
		return 1;
	default:
		return 0;
	}
}

static int
on_bio_destroy(BIO *b)
{
	struct tls_out *o = BIO_get_data(b);

	if (o == NULL)
		return 1;
	MAGIC_CHECK(o, TLS_OUT_MAGIC);
	if (o->buf != NULL)
		tls_rec_pool_put(o->pool, o->buf);
	MAGIC_WIPE(o);
	free(o);
	BIO_set_data(b, NULL);
	BIO_set_init(b, 0);
	return 1;
}

static void
out_method_init(void)
{
	out_method = BIO_meth_new(
	    BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "edged tls_out");
	CDN_ASSERT(out_method != NULL); /* small: out of memory */
	if (BIO_meth_set_write(out_method, on_bio_write) != 1 ||
	    BIO_meth_set_ctrl(out_method, on_bio_ctrl) != 1 ||
	    BIO_meth_set_destroy(out_method, on_bio_destroy) != 1)
		CDN_ASSERT(!"BIO_meth_set");
}

struct tls_out *
tls_out_attach(SSL *ssl, int fd, struct tls_rec_pool *pool)
{
	struct tls_out *o;
	BIO *b;

	CDN_ASSERT(ssl != NULL && fd >= 0 && pool != NULL);
	pthread_once(&out_method_once, out_method_init);
	b = BIO_new(out_method);
	CDN_ASSERT(b != NULL); /* small: out of memory */
	o = cdn_xcalloc(1, sizeof(*o));
	o->magic = TLS_OUT_MAGIC;
	o->fd = fd;
	o->pool = pool;
	BIO_set_data(b, o);
	BIO_set_init(b, 1);
	SSL_set0_wbio(ssl, b); /* the read side keeps the socket BIO */
	return o;
}

int
tls_out_flush(struct tls_out *o)
{
	MAGIC_CHECK(o, TLS_OUT_MAGIC);
	out_drain(o);
	if (o->err != 0)
		return CDN_EIO;
	return o->len > o->off ? CDN_AGAIN : CDN_OK;
}

int
tls_out_reserve(struct tls_out *o, size_t need)
{
	MAGIC_CHECK(o, TLS_OUT_MAGIC);
	CDN_ASSERT(need <= TLS_REC_BUF);
	if (o->err == 0 && TLS_REC_BUF - o->len >= need)
		return 1;
	out_drain(o);
	if (o->off > 0 && o->err == 0) {
		/* The socket took part: the rest moves to the front. */
		memmove(o->buf, o->buf + o->off, o->len - o->off);
		o->len -= o->off;
		o->off = 0;
	}
	return o->err == 0 && TLS_REC_BUF - o->len >= need;
}

size_t
tls_out_pending(const struct tls_out *o)
{
	MAGIC_CHECK(o, TLS_OUT_MAGIC);
	return o->len - o->off;
}
