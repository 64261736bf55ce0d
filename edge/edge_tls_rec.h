/*
 * A pool of buffers of a few TLS records each, for the ciphertext that a
 * connection gathers before writing it (edge_tls_out.h).  It keeps a few
 * free buffers, most recently used first: one just given back is still in
 * the CPU's cache, and a malloc() and free() of 64 KiB cost page faults
 * when glibc hands the memory back to the kernel.  A pool and its buffers
 * belong to one thread: no locks.
 */
#ifndef EDGE_TLS_REC_H
#define EDGE_TLS_REC_H

#include <stddef.h>

#define TLS_REC_MAX 16384             /* plaintext bytes of one TLS record */
#define TLS_REC_BUF (4 * TLS_REC_MAX) /* a pool buffer */

struct tls_rec_pool;

/* A pool that keeps up to <keep> free record buffers. */
struct tls_rec_pool *tls_rec_pool_new(unsigned keep);

/*
 * Give up the owner's hold on *<pp> and set it to NULL.  Its free buffers
 * are freed; buffers still out keep it until they are given back.
 */
void tls_rec_pool_free(struct tls_rec_pool **pp);

/*
 * A buffer of TLS_REC_BUF bytes, the most recently given back first (it
 * is likely still in the CPU's cache).  It holds the pool until it is
 * given back with tls_rec_pool_put(), which may be after the owner let go.
 */
char *tls_rec_pool_get(struct tls_rec_pool *pl);
void tls_rec_pool_put(struct tls_rec_pool *pl, char *buf);

#endif /* EDGE_TLS_REC_H */
