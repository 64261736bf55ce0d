/*
 * Ciphertext gathered into large writes, for an SSL that libevent's
 * OpenSSL bufferevent drives.  OpenSSL hands its write BIO one record at
 * a time, and a socket BIO makes a write(2) of each: a 100 KiB response
 * costs seven.  A struct tls_out is the SSL's write BIO instead: it
 * appends the records to a buffer of TLS_REC_BUF bytes, writes the
 * buffer once it is full, and the rest when its owner calls
 * tls_out_flush() at the end of its writing.  The read side stays the
 * socket BIO.  One thread only: no locks.
 */
#ifndef EDGE_TLS_OUT_H
#define EDGE_TLS_OUT_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "edge/edge_tls_rec.h"

struct tls_out;

/*
 * Make a new gathering BIO writing to socket <fd> (non-blocking) the
 * write BIO of <ssl>, with buffers from <pool>.  The BIO belongs to
 * <ssl> and answers BIO_get_fd() with <fd> (libevent closes that one);
 * the returned state lives as long as <ssl> and must not be used after
 * SSL_free().  A buffer it holds then goes back to <pool>, whose holder
 * count keeps the pool alive until that.  Aborts if out of memory (a
 * small fixed-size structure).
 */
struct tls_out *tls_out_attach(SSL *ssl, int fd, struct tls_rec_pool *pool);

/*
 * Write what is gathered: the end of a round of writing.  Returns CDN_OK
 * once nothing is left, CDN_AGAIN
 * if the socket took only part (wait until it is writable, then call
 * again), CDN_EIO if the socket failed (errno was logged at debug level).
 */
int tls_out_flush(struct tls_out *o);

/* Wire bytes of a full TLS 1.3 record: header, content type and tag. */
#define TLS_REC_WIRE (TLS_REC_MAX + 5 + 1 + 16)
/* What OpenSSL may write of its own with a record (a KeyUpdate). */
#define TLS_OUT_SLACK 256

/*
 * Whether <need> more bytes (at most TLS_REC_BUF) can be gathered without
 * the BIO refusing any, after writing what the socket takes if that is
 * what it takes.  0 also once the socket failed (tls_out_flush says so).
 */
int tls_out_reserve(struct tls_out *o, size_t need);

/* Bytes gathered and not yet written. */
size_t tls_out_pending(const struct tls_out *o);

#endif /* EDGE_TLS_OUT_H */
