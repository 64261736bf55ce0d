/*
 * A listening socket's accept loop on an event_base, in place of
 * libevent's evconnlistener, which accepts until accept4(2) fails: each
 * wake-up of a busy listener then ended with a failed call.  This one
 * takes one connection per wake-up (http/http_accept.c).
 */
#ifndef HTTP_ACCEPT_H
#define HTTP_ACCEPT_H

#include <sys/socket.h>

#include <event2/event.h>

struct http_acceptor;

/* A connection <fd> (non-blocking, close-on-exec) from <peer>; the
 * callback owns <fd>.  It must not free the acceptor. */
typedef void (*http_accept_cb)(
    int fd, const struct sockaddr *peer, int peerlen, void *arg);

/*
 * Accept connections on listening socket <fd> (made non-blocking) in
 * <base>'s loop, calling <cb> with <arg> for each.  An accept that fails for
 * want of resources (EMFILE, ENOBUFS...) is logged under <who> and tried again
 * at the next wake-up, as libevent's listener did.  The acceptor owns <fd> from
 * here, also on failure. Returns NULL when the event cannot be added.
 */
struct http_acceptor *http_acceptor_new(struct event_base *base, int fd,
    http_accept_cb cb, void *arg, const char *who);

/* Stop accepting and close the socket. */
void http_acceptor_free(struct http_acceptor *a);

/* The listening socket (for a takeover to hand over). */
int http_acceptor_fd(const struct http_acceptor *a);

#endif /* HTTP_ACCEPT_H */
