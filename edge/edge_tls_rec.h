/*
 * Output packed into whole TLS records, for a libevent OpenSSL
 * bufferevent.  libevent 2.1 hands each chain of the output evbuffer to
 * its own SSL_write(), and OpenSSL makes at least one record (and one
 * write(2)) of each: output made of many small pieces (HTTP/2 frame
 * headers, control frames, DATA payloads) costs a record, a write and a
 * TCP segment per piece.  A struct tls_rec copies the pieces into a
 * staging buffer of one record and hands each full one to the evbuffer by
 * reference, so every chain but the last is one full record.
 *
 * Plain data of its connection: one thread, no locks.
 */
#ifndef EDGE_TLS_REC_H
#define EDGE_TLS_REC_H

#include <stddef.h>

#include <event2/buffer.h>

#define TLS_REC_MAX 16384 /* plaintext bytes of one TLS record */

/* The record being filled; zeroed memory is an empty one. */
struct tls_rec {
	char *buf; /* TLS_REC_MAX bytes, or NULL */
	size_t len;
};

/*
 * Append <n> bytes at <p> behind what <r> holds; each record that fills
 * up is added to <out> (by reference: <out> frees it once written).
 * Bytes that the evbuffer cannot take by reference are copied into it.
 */
void tls_rec_add(
    struct tls_rec *r, struct evbuffer *out, const void *p, size_t n);

/* Hand the partly filled record, if any, to <out>: <r> is then empty. */
void tls_rec_flush(struct tls_rec *r, struct evbuffer *out);

/* Free the record being filled (its bytes are dropped). */
void tls_rec_fini(struct tls_rec *r);

#endif /* EDGE_TLS_REC_H */
