/*
 * Listening sockets on "HOST:PORT" addresses, shared by edged and purged.
 */
#ifndef HTTP_LISTEN_H
#define HTTP_LISTEN_H

#include <stddef.h>
#include <stdint.h>

#include "common/cdn.h"
#include "http/http_authority.h"

/*
 * Split "HOST:PORT" ("127.0.0.1:80", "[::1]:80", "*:80", "localhost:80")
 * into host (brackets removed; "*" becomes "0.0.0.0") and port 1..65535.
 * host[0..hostlen) gets the host and its NUL; HTTP_AUTHORITY_HOST_MAX bytes
 * always suffice.  Returns CDN_OK, or CDN_EINVAL with *why a static message
 * (a host too long for hostlen too).
 */
int http_listen_parse(const char *s, char *host, size_t hostlen, uint16_t *port,
    const char **why) CDN_WUR;

/*
 * Open a listening socket (non-blocking, close-on-exec, SO_REUSEADDR; with
 * <reuseport> SO_REUSEPORT too, so that several threads can each listen)
 * on "HOST:PORT" as http_listen_parse() reads it.  An IPv6 socket takes
 * IPv6 only.  Returns the fd, or -1 after logging why under <who>.
 */
int http_listen_socket(
    const char *hostport, int reuseport, int backlog, const char *who);

/*
 * Whether "HOST:PORT" is free: a socket without SO_REUSEPORT binds it and
 * is closed again.  Sockets that all set SO_REUSEPORT share a port, so a
 * second edged started by mistake would quietly take part of a running
 * one's connections; probing first refuses it instead.  Call it before
 * this process opens its own SO_REUSEPORT sockets there.  CDN_OK, or
 * CDN_EIO after logging why under <who>.
 */
int http_listen_probe(const char *hostport, const char *who) CDN_WUR;

/*
 * Ready listening socket <fd> for http_server_adopt(): set TCP_NODELAY on
 * it, which Linux copies to every connection it accepts, instead of one
 * setsockopt(2) per connection.  A socket that takes no TCP options (a
 * Unix socket handed in, say: it has no Nagle delay either) is left as it
 * is.  Returns CDN_OK, or CDN_EIO for any other failure, logged under
 * <who>; connections accepted then wait for Nagle's algorithm.
 */
int http_listen_nodelay(int fd, const char *who);

/*
 * Set TCP_DEFER_ACCEPT on listening socket <fd> to <secs> seconds (0: off):
 * the kernel queues a connection for accept(2) once its first data has
 * arrived, or once about <secs> have passed (it rounds up to its SYN-ACK
 * retransmission times, 1, 3, 7, 15... s).  Set every time, 0 included,
 * since a socket handed over by a takeover keeps the old process's value.
 * A socket that takes no TCP options is left as it is.  Returns CDN_OK, or
 * CDN_EIO for any other failure, logged under <who>.
 */
int http_listen_defer(int fd, unsigned secs, const char *who);

#endif /* HTTP_LISTEN_H */
