/*
 * A listening socket's accept loop (http/http_accept.h).
 *
 * A failed accept4(2) is not a cheap call: Linux allocates the new
 * socket's inode, dentry and file before it looks at the queue, and frees
 * them again when the queue is empty (about 3.5 us of CPU here, against
 * 0.4 us for an epoll_wait(2) that finds a socket ready).  libevent's
 * evconnlistener accepts until that failure, so under connection churn
 * every wake-up of the listener paid one (0.66 per request with wrk -c64
 * and "Connection: close").  As nginx does with multi_accept off (its
 * default), a wake-up here accepts one connection: a listener with more
 * queued stays ready, and the loop's next epoll_wait(2), which it makes
 * anyway, reports it again at once.  HAProxy accepts up to tune.maxaccept
 * (4) per wake-up, and pays the failure whenever fewer were queued.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h> /* the acceptor holds its event */

#include "common/cdn.h"
#include "common/cdn_log.h"
#include "http/http_accept.h"

struct http_acceptor {
	uint32_t magic;
#define HTTP_ACCEPTOR_MAGIC 0x5a1c3e07u
	struct event ev;
	int fd;
	http_accept_cb cb;
	void *arg;
	const char *who;
};

static void
on_listener_ready(evutil_socket_t fd, short what, void *arg)
{
	struct http_acceptor *a = arg;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int cfd;

	(void)what;
	MAGIC_CHECK(a, HTTP_ACCEPTOR_MAGIC);
	cfd = accept4(
	    fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd != -1) {
		a->cb(cfd, (struct sockaddr *)&ss, (int)len, a->arg);
		return;
	}
	/* Nothing queued after all (EAGAIN), or a client that left before it
	 * was taken (ECONNABORTED): a listener with more stays ready. */
	if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
	    errno != ECONNABORTED)
		CDN_LOG(CDN_LOG_WARN, a->who, "accept: %s", strerror(errno));
}

struct http_acceptor *
http_acceptor_new(struct event_base *base, int fd, http_accept_cb cb, void *arg,
    const char *who)
{
	struct http_acceptor *a = cdn_xmalloc(sizeof(*a));

	memset(a, 0, sizeof(*a));
	a->magic = HTTP_ACCEPTOR_MAGIC;
	a->fd = fd;
	a->cb = cb;
	a->arg = arg;
	a->who = who;
	/* As libevent's listener did: a blocking socket handed in would
	 * stall the loop in accept4 at a wake-up that finds no connection. */
	if (evutil_make_socket_nonblocking(fd) != 0 ||
	    event_assign(&a->ev, base, fd, EV_READ | EV_PERSIST,
	        on_listener_ready, a) != 0 ||
	    event_add(&a->ev, NULL) != 0) {
		close(fd);
		MAGIC_WIPE(a);
		free(a);
		return NULL;
	}
	return a;
}

void
http_acceptor_free(struct http_acceptor *a)
{
	if (a == NULL)
		return;
	MAGIC_CHECK(a, HTTP_ACCEPTOR_MAGIC);
	event_del(&a->ev);
	close(a->fd);
	MAGIC_WIPE(a);
	free(a);
}

int
http_acceptor_fd(const struct http_acceptor *a)
{
	MAGIC_CHECK(a, HTTP_ACCEPTOR_MAGIC);
	return a->fd;
}
