/*
 * TLS termination for edged's listen_tls listeners (edge/edge_tls.c):
 * certificates chosen by SNI, session resumption, OCSP stapling and the
 * SIGHUP reload.  Private to edge/; kept out of edge_int.h so that the TLS
 * state has one owner file.
 *
 * Threads: edge_tls_new, _start, _reload and _free run on the main thread;
 * edge_tls_ssl_new(t, id) only on worker <id>.
 */
#ifndef EDGE_TLS_H
#define EDGE_TLS_H

#include <event2/event.h>
#include <openssl/ssl.h>

#include "common/cdn.h"
#include "conf/conf.h"

struct edge_tls;

/*
 * Build the TLS state for the listen_tls listeners of <c> (one reference
 * taken), with one slot per worker: every
 * certificate, key and OCSP file is read and checked now.  Returns CDN_OK
 * with *out set (NULL when <c> has no listen_tls and no tls_cert), or
 * CDN_EINVAL after logging every file that cannot be used (*out untouched).
 */
int edge_tls_new(
    struct conf *c, unsigned nworkers, struct edge_tls **out) CDN_WUR;

/* Start rotating the session ticket keys on <main_base>. */
void edge_tls_start(struct edge_tls *t, struct event_base *main_base);

/*
 * Read every certificate, key and OCSP file that <c> names (SIGHUP; a
 * reference to <c> is kept on success).  On success new connections use
 * them from the next accept on; connections already open, handshakes in
 * flight included, keep the ones they started with.  On failure every
 * cause is logged, CDN_EINVAL returned and nothing changes.
 */
int edge_tls_reload(struct edge_tls *t, struct conf *c);

/*
 * A server SSL for a new connection of worker <id>, with the newest
 * certificates published to it.  The caller owns the result; NULL (logged)
 * when OpenSSL is out of memory.
 */
SSL *edge_tls_ssl_new(struct edge_tls *t, unsigned id);

/* Free everything; every connection and worker must be gone. */
void edge_tls_free(struct edge_tls **tp);

#endif /* EDGE_TLS_H */
