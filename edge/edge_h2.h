/*
 * HTTP/2 clients (RFC 9113) through libnghttp2: one server session per
 * connection on its worker's loop, one client stream (edge_stream.h) per
 * HTTP/2 stream.  TLS connections arrive here after a handshake that chose
 * ALPN "h2" (http_server.h, on_h2); listen_h2c connections speak HTTP/2 by
 * prior knowledge from their first byte.
 *
 * Everything of a struct edge_h2 belongs to its worker's thread.
 */
#ifndef EDGE_H2_H
#define EDGE_H2_H

#include <sys/socket.h>

struct bufferevent;
struct edge_h2;
struct edge_worker;

/* The HTTP/2 side of worker <w>, with the worker's limits.  Never fails. */
struct edge_h2 *edge_h2_new(struct edge_worker *w);
/* Closes every connection (their streams end aborted), then frees. */
void edge_h2_free(struct edge_h2 **hp);

/*
 * Serve HTTP/2 on <bev> (this call owns it from now on: a TLS
 * bufferevent past its handshake, callbacks unset), whose client is
 * <peer> (text).
 */
void edge_h2_adopt_tls(
    struct edge_h2 *h, struct bufferevent *bev, const char *peer);
/* Serve HTTP/2 with prior knowledge on the accepted socket <fd>. */
void edge_h2_adopt_fd(struct edge_h2 *h, int fd, const struct sockaddr *peer);

/*
 * Graceful stop: every connection gets GOAWAY (NO_ERROR, the last stream
 * it started), its streams in flight finish, and it closes once it has
 * none.  <on_empty> is called once no connection is left, possibly from
 * inside this call.
 */
void edge_h2_drain(struct edge_h2 *h, void (*on_empty)(void *arg), void *arg);
/* Close every connection now (the drain deadline passed). */
void edge_h2_close_all(struct edge_h2 *h);
unsigned edge_h2_conn_count(const struct edge_h2 *h);

#endif /* EDGE_H2_H */
