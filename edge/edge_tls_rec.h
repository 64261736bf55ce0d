/*
 * Output packed into whole TLS records, for a libevent OpenSSL
 * bufferevent.  libevent 2.1 hands each chain of the output evbuffer to
 * its own SSL_write(), and OpenSSL makes at least one record (and one
 * write(2)) of each: output made of many small pieces (HTTP/2 frame
 * headers, control frames, DATA payloads) costs a record, a write and a
 * TCP segment per piece.  A struct tls_rec copies the pieces into a
 * staging buffer of a few records and hands each full one to the
 * evbuffer by reference, so every chain but the last is whole records
 * (OpenSSL cuts one SSL_write() into records of TLS_REC_MAX).
 *
 * The buffers come from a struct tls_rec_pool, which keeps a few that
 * were written for the next records: they are still in the CPU's cache,
 * and a malloc() and free() of 64 KiB, and the evbuffer chain that
 * references it, cost more per record the smaller the buffer.  A pool and its
 * records belong to one thread: no locks.
 */
#ifndef EDGE_TLS_REC_H
#define EDGE_TLS_REC_H

#include <stddef.h>

#include <event2/buffer.h>

#define TLS_REC_MAX 16384             /* plaintext bytes of one TLS record */
#define TLS_REC_BUF (4 * TLS_REC_MAX) /* a staging buffer: whole records */

struct tls_rec_pool;

/* The record being filled; zeroed memory (plus .pool) is an empty one. */
struct tls_rec {
	struct tls_rec_pool *pool; /* where its buffers come from: set once */
	char *buf;                 /* TLS_REC_BUF bytes, or NULL */
	size_t len;
};

/* A pool that keeps up to <keep> free record buffers. */
struct tls_rec_pool *tls_rec_pool_new(unsigned keep);

/*
 * Give up the owner's hold on *<pp> and set it to NULL.  Its free buffers
 * are freed; records still in evbuffers keep it until they are written or
 * dropped, so evbuffers may outlive the owner.
 */
void tls_rec_pool_free(struct tls_rec_pool **pp);

/*
 * A buffer of TLS_REC_BUF bytes, the most recently given back first (it
 * is likely still in the CPU's cache).  It holds the pool until it is
 * given back with tls_rec_pool_put(), which may be after the owner let go.
 */
char *tls_rec_pool_get(struct tls_rec_pool *pl);
void tls_rec_pool_put(struct tls_rec_pool *pl, char *buf);

/*
 * Append <n> bytes at <p> behind what <r> holds; each buffer that fills
 * up is added to <out> (by reference: <out> gives it back to the pool
 * once written).  Bytes that the evbuffer cannot take by reference are
 * copied into it.
 */
void tls_rec_add(
    struct tls_rec *r, struct evbuffer *out, const void *p, size_t n);

/* Hand the partly filled buffer, if any, to <out>: <r> is then empty. */
void tls_rec_flush(struct tls_rec *r, struct evbuffer *out);

/* Give the record being filled back to the pool (its bytes are dropped). */
void tls_rec_fini(struct tls_rec *r);

#endif /* EDGE_TLS_REC_H */
