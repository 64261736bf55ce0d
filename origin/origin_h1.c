/*
 * The native HTTP/1.1 origin client (origin_int.h): plain http servers
 * given by address.  libcurl stays for the rest;
 * for these it cost as much per miss as the rest of the node (URL parsed
 * and printed again, the request formatted a byte at a time, the head
 * parsed line by line), where one buffer out and one pass over the head in
 * are enough.
 *
 * Threading: a struct origin_h1 and its connections belong to the worker
 * thread of their origin_multi.
 *
 * A connection is the transfer: while it carries a request, it holds the
 * request bytes, reads the head into its buffer (origin_head_parse(), once
 * the empty line is in) and delivers the body from that buffer by
 * Content-Length, chunks or until close.  Callbacks run only from the
 * connection's event; the consumer's timers (origin_fetch.c) end a
 * connection with origin_h1_abort().  A response read whole, on a
 * connection the server keeps open and with nothing after the response,
 * parks the connection on its server's idle list (most recent first), whose
 * read event closes it when the server does or the idle time runs out.
 *
 * A reused connection may have been closed by the server just as the
 * request went out: an idempotent request that got no response byte is
 * sent once more on a new connection (RFC 9112 §9.3.1), unseen by the
 * consumer and its server's health.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "common/cdn_log.h"
#include "http/http_parse.h"
#include "origin/origin_int.h"

#define H1_BUF_INITIAL  (16 * 1024) /* most heads and a read of body */
#define H1_BUF_HEAD_MAX (ORIGIN_HEAD_MAX + 1024) /* room to see it */
#define H1_READ_MIN     4096  /* compact the buffer below this */
#define H1_IDLE_MS      30000 /* an unused connection is closed */
/* At least the fetches a worker has in flight to one server: a shorter
 * idle list closes connections that the next burst opens again (wrk -c64
 * over two workers left 1,063 in TIME_WAIT in 8 s with 32, 1 with 128). */
#define H1_IDLE_PER_SERVER 128
#define H1_IDLE_TOTAL      256 /* per worker, as curl's connection cache */
#define H1_UPLOAD_CHUNK    (16 * 1024) /* request body pulled per write */
#define H1_CHUNK_HEAD      18 /* room for a chunk-size line: 16 hex, CRLF */

/* The servers a worker has talked to, each with its idle connections. */
struct h1_host {
	struct h1_host *next;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	struct origin_h1_conn *idle; /* most recently used first */
	unsigned nidle;
};

struct origin_h1 {
	uint32_t magic;
#define ORIGIN_H1_MAGIC 0x6c3e91a5u
	struct event_base *base;
	struct h1_host *hosts;
	unsigned nidle;
};

enum h1_state {
	H1_CONNECTING,
	H1_SENDING,
	H1_HEAD,
	H1_BODY,
	H1_IDLE,
};

/* What process() tells the event handler. */
enum h1_step { STEP_MORE, STEP_STOP };

struct origin_h1_conn {
	uint32_t magic;
#define ORIGIN_H1_CONN_MAGIC 0x0e7d52b9u
	struct origin_h1 *h;
	struct h1_host *host;
	struct origin_h1_conn *next, *prev; /* in host->idle */
	int fd;
	struct event *ev;
	enum h1_state state;
	char *req; /* the request head, then staged body bytes */
	size_t reqlen, reqoff, reqcap;
	int64_t body_left; /* request body still to send; -1: chunked */
	char *buf;
	size_t cap, off, len; /* unread bytes: buf[off..len) */
	size_t scan;          /* origin_head_parse()'s resume point */
	struct origin_head hd;
	enum origin_body body;
	struct http_chunked chunked;
	uint64_t left; /* of the body, or of the data a chunk step found */
	const struct origin_h1_ops *ops;
	void *arg;
	enum origin_err deferred; /* a failure to report from the loop */
	unsigned no_body : 1;
	unsigned retryable : 1;
	unsigned has_body : 1;  /* a request body follows the head */
	unsigned body_sent : 1; /* ... and has been staged whole */
	unsigned send_paused : 1;
	unsigned reused : 1; /* this request went on a kept connection */
	unsigned got_byte : 1;
	unsigned paused : 1;
	unsigned keep : 1; /* the server keeps the connection open */
};

static void conn_cb(evutil_socket_t fd, short what, void *arg);

struct origin_h1 *
origin_h1_new(struct event_base *base)
{
	struct origin_h1 *h = cdn_xcalloc(1, sizeof(*h));

	h->magic = ORIGIN_H1_MAGIC;
	h->base = base;
	return h;
}

/*
 * Watch c->fd for <kind>, with the timeout <tv> (NULL: none).  A kept
 * connection reads both while it waits for a response and while it idles,
 * so between requests only its idle timer comes and goes: no epoll_ctl
 * (a new watch each time cost two per miss).
 */
static void
conn_watch(struct origin_h1_conn *c, short kind, const struct timeval *tv)
{
	if (event_pending(c->ev, EV_READ | EV_WRITE, NULL) &&
	    event_get_fd(c->ev) == c->fd && event_get_events(c->ev) == kind) {
		if (tv != NULL)
			event_add(c->ev, tv);
		else
			event_remove_timer(c->ev);
		return;
	}
	event_del(c->ev);
	event_assign(c->ev, c->h->base, c->fd, kind, conn_cb, c);
	event_add(c->ev, tv);
}

static void
idle_unlink(struct origin_h1_conn *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		c->host->idle = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
	c->host->nidle--;
	c->h->nidle--;
}

static void
conn_close(struct origin_h1_conn *c)
{
	if (c->state == H1_IDLE)
		idle_unlink(c);
	event_free(c->ev);
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	free(c->req);
	MAGIC_WIPE(c);
	free(c);
}

void
origin_h1_free(struct origin_h1 **hp)
{
	struct origin_h1 *h = *hp;
	struct h1_host *host;

	*hp = NULL;
	if (h == NULL)
		return;
	MAGIC_CHECK(h, ORIGIN_H1_MAGIC);
	while ((host = h->hosts) != NULL) {
		while (host->idle != NULL)
			conn_close(host->idle);
		h->hosts = host->next;
		free(host);
	}
	MAGIC_WIPE(h);
	free(h);
}

static struct h1_host *
host_get(struct origin_h1 *h, const struct origin_h1_server *srv)
{
	struct h1_host *host;

	for (host = h->hosts; host != NULL; host = host->next)
		if (host->addrlen == srv->addrlen &&
		    memcmp(&host->addr, &srv->addr, srv->addrlen) == 0)
			return host;
	host = cdn_xcalloc(1, sizeof(*host));
	memcpy(&host->addr, &srv->addr, srv->addrlen);
	host->addrlen = srv->addrlen;
	host->next = h->hosts;
	h->hosts = host;
	return host;
}

/* Report <e> from the loop, not from the caller's stack. */
static void
conn_defer(struct origin_h1_conn *c, enum origin_err e)
{
	c->deferred = e;
	event_del(c->ev);
	event_assign(c->ev, c->h->base, -1, 0, conn_cb, c);
	event_active(c->ev, EV_TIMEOUT, 0);
}

static int conn_send(struct origin_h1_conn *c, int pull);

/*
 * The request's first bytes, right after connect(): on loopback and on a
 * near server the handshake is often over by then, and waiting for the
 * write event instead holds the request back behind every other ready
 * event of the loop's turn (with a herd, about a hundred client requests).
 * Returns 1 when the request is all out, else 0.
 */
static int
conn_send_early(struct origin_h1_conn *c)
{
	ssize_t n;
	int r;

	n = send(c->fd, c->req, c->reqlen, MSG_NOSIGNAL);
	if (n < 0 &&
	    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
		conn_watch(c, EV_WRITE | EV_PERSIST, NULL); /* connecting */
		return 0;
	}
	if (n < 0) { /* the connect's own failure (refused, unreachable) */
		CDN_LOG(CDN_LOG_INFO, "origin", "connect: %s", strerror(errno));
		conn_defer(c, ORIGIN_ECONNECT);
		return 0;
	}
	c->reqoff = (size_t)n;
	c->state = H1_SENDING;
	r = conn_send(c, 0);
	if (r < 0)
		conn_defer(c, ORIGIN_ERESET);
	return r > 0;
}

/*
 * A new socket to c->host, connecting, the request sent at once if it can
 * be.  Returns 1 when the request is all out (no sent() follows), else 0;
 * failures are deferred.
 */
static int
conn_connect(struct origin_h1_conn *c)
{
	int one = 1;

	c->reused = 0;
	c->fd = socket(c->host->addr.ss_family,
	    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		CDN_LOG(CDN_LOG_ERR, "origin", "socket: %s", strerror(errno));
		conn_defer(c, ORIGIN_ECONNECT);
		return 0;
	}
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->state = H1_CONNECTING;
	if (connect(c->fd, (const struct sockaddr *)&c->host->addr,
	        c->host->addrlen) == 0 ||
	    errno == EINPROGRESS)
		return conn_send_early(c);
	conn_defer(c, ORIGIN_ECONNECT);
	return 0;
}

/*
 * Stage the next piece of the request body in c->req: its bytes, framed as
 * a chunk when its length is unknown, or the last chunk.  0 when staged,
 * 1 when the consumer paused the upload, -1 when the body does not match
 * its length.
 */
static int
stage_body(struct origin_h1_conn *c)
{
	size_t n, at = H1_CHUNK_HEAD;
	char hex[H1_CHUNK_HEAD + 1];
	int hl;

	if (c->reqcap < H1_CHUNK_HEAD + H1_UPLOAD_CHUNK + 2) {
		char *nb = realloc(c->req, H1_CHUNK_HEAD + H1_UPLOAD_CHUNK + 2);

		if (nb == NULL)
			return -1;
		c->req = nb;
		c->reqcap = H1_CHUNK_HEAD + H1_UPLOAD_CHUNK + 2;
	}
	n = c->ops->upload(c->arg, c->req + at, H1_UPLOAD_CHUNK);
	if (n == ORIGIN_PAUSE) {
		c->send_paused = 1;
		event_del(c->ev);
		return 1;
	}
	if (c->body_left >= 0) {
		/* RFC 9112 §6.2: exactly Content-Length bytes. */
		if ((n == 0 && c->body_left > 0) || (int64_t)n > c->body_left)
			return -1;
		c->body_left -= (int64_t)n;
		c->body_sent = c->body_left == 0;
		c->reqoff = at;
		c->reqlen = at + n;
		return 0;
	}
	if (n == 0) { /* RFC 9112 §7.1: the last chunk, no trailers */
		memcpy(c->req, "0\r\n\r\n", 5);
		c->reqoff = 0;
		c->reqlen = 5;
		c->body_sent = 1;
		return 0;
	}
	hl = snprintf(hex, sizeof(hex), "%zx\r\n", n);
	memcpy(c->req + at - (size_t)hl, hex, (size_t)hl);
	memcpy(c->req + at + n, "\r\n", 2);
	c->reqoff = at - (size_t)hl;
	c->reqlen = at + n + 2;
	return 0;
}

/*
 * Write what is left of the request, pulling its body when <pull>.
 * 0 while it goes (or the upload is paused), 1 when it is all out, -1 on
 * a failure of the connection, -2 when the body did not match its length.
 */
static int
conn_send(struct origin_h1_conn *c, int pull)
{
	ssize_t n;
	int r;

	for (;;) {
		while (c->reqoff < c->reqlen) {
			n = send(c->fd, c->req + c->reqoff,
			    c->reqlen - c->reqoff, MSG_NOSIGNAL);
			if (n >= 0) {
				c->reqoff += (size_t)n;
				continue;
			}
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -1;
			if (c->state != H1_SENDING || !pull) {
				c->state = H1_SENDING;
				conn_watch(c, EV_WRITE | EV_PERSIST, NULL);
			}
			return 0;
		}
		if (!c->has_body || c->body_sent)
			break;
		if (!pull) { /* the body is pulled from the loop */
			c->state = H1_SENDING;
			conn_watch(c, EV_WRITE | EV_PERSIST, NULL);
			return 0;
		}
		r = stage_body(c);
		if (r != 0)
			return r > 0 ? 0 : -2;
	}
	c->state = H1_HEAD;
	conn_watch(c, EV_READ | EV_PERSIST, NULL);
	return 1;
}

/* Whether an idle connection is still open and quiet. */
static int
conn_alive(struct origin_h1_conn *c)
{
	char b;
	ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

	return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

struct origin_h1_conn *
origin_h1_start(struct origin_h1 *h, const struct origin_h1_server *srv,
    char *req, size_t reqlen, const struct origin_h1_req *how,
    const struct origin_h1_ops *ops, void *arg)
{
	struct h1_host *host;
	struct origin_h1_conn *c;

	MAGIC_CHECK(h, ORIGIN_H1_MAGIC);
	host = host_get(h, srv);
	while ((c = host->idle) != NULL) {
		idle_unlink(c);
		c->reused = 1;
		/* One that cannot be sent again must not go out on a
		 * connection the server has closed already, its FIN not
		 * yet read (the idle event comes a turn later). */
		if (how->retryable || conn_alive(c))
			break;
		c->state = H1_CONNECTING; /* not idle: no unlink */
		conn_close(c);
	}
	if (c == NULL) {
		c = cdn_xcalloc(1, sizeof(*c));
		c->magic = ORIGIN_H1_CONN_MAGIC;
		c->h = h;
		c->host = host;
		c->fd = -1;
		c->ev = event_new(h->base, -1, 0, conn_cb, c);
	}
	c->req = req;
	c->reqlen = c->reqcap = reqlen;
	c->reqoff = 0;
	c->off = c->len = c->scan = 0;
	c->no_body = how->is_head != 0;
	c->retryable = how->retryable != 0;
	c->has_body = how->has_body != 0;
	c->body_left = how->body_length;
	c->got_byte = c->paused = c->keep = 0;
	/* "Content-Length: 0" is sent as such, with nothing to pull: the
	 * consumer may have no upload() then, as libcurl never asked. */
	c->body_sent = c->has_body && c->body_left == 0;
	c->send_paused = 0;
	c->deferred = ORIGIN_OK;
	c->ops = ops;
	c->arg = arg;
	if (!c->reused) {
		(void)conn_connect(c); /* the consumer asks origin_h1_sent() */
		return c;
	}
	c->state = H1_SENDING;
	if (conn_send(c, 0) < 0)
		conn_defer(c, ORIGIN_ERESET); /* retried from the loop */
	return c;
}

void
origin_h1_resume_upload(struct origin_h1_conn *c)
{
	MAGIC_CHECK(c, ORIGIN_H1_CONN_MAGIC);
	if (!c->send_paused)
		return;
	c->send_paused = 0;
	conn_watch(c, EV_WRITE | EV_PERSIST, NULL);
}

int
origin_h1_sent(const struct origin_h1_conn *c)
{
	MAGIC_CHECK(c, ORIGIN_H1_CONN_MAGIC);
	return c->state == H1_HEAD || c->state == H1_BODY;
}

void
origin_h1_abort(struct origin_h1_conn **cp)
{
	struct origin_h1_conn *c = *cp;

	*cp = NULL;
	if (c == NULL)
		return;
	MAGIC_CHECK(c, ORIGIN_H1_CONN_MAGIC);
	CDN_ASSERT(c->state != H1_IDLE);
	conn_close(c);
}

void
origin_h1_resume(struct origin_h1_conn *c)
{
	MAGIC_CHECK(c, ORIGIN_H1_CONN_MAGIC);
	if (!c->paused)
		return;
	c->paused = 0;
	/* The bytes held back are delivered from the loop. */
	conn_watch(c, EV_READ | EV_PERSIST, NULL);
	event_active(c->ev, EV_READ, 0);
}

/* Keep the connection for the next request to its server, or close it. */
static void
conn_park(struct origin_h1_conn *c)
{
	struct timeval tv = {H1_IDLE_MS / 1000, (H1_IDLE_MS % 1000) * 1000};
	struct h1_host *host = c->host;

	if (host->nidle >= H1_IDLE_PER_SERVER || c->h->nidle >= H1_IDLE_TOTAL) {
		conn_close(c);
		return;
	}
	free(c->req);
	c->req = NULL;
	c->reqcap = 0;
	if (c->cap > H1_BUF_INITIAL) { /* a large head: do not keep it */
		free(c->buf);
		c->buf = NULL;
		c->cap = 0;
	}
	c->ops = NULL;
	c->arg = NULL;
	c->state = H1_IDLE;
	c->prev = NULL;
	c->next = host->idle;
	if (host->idle != NULL)
		host->idle->prev = c;
	host->idle = c;
	host->nidle++;
	c->h->nidle++;
	/* Any byte, the close or the time ends it (conn_cb). */
	conn_watch(c, EV_READ | EV_PERSIST, &tv);
}

/* The exchange is over: park or close, then tell the consumer. */
static void
conn_finish(struct origin_h1_conn *c, enum origin_err e)
{
	const struct origin_h1_ops *ops = c->ops;
	void *arg = c->arg;

	if (e == ORIGIN_OK && c->keep && c->off == c->len)
		conn_park(c);
	else
		conn_close(c);
	ops->done(arg, e);
}

/*
 * The connection failed before the response was read: a reused one that
 * got no byte of it sends an idempotent request again on a new one.
 */
static void
conn_failed(struct origin_h1_conn *c, enum origin_err e)
{
	if (c->reused && !c->got_byte && c->retryable && c->state != H1_BODY) {
		CDN_LOG(CDN_LOG_DEBUG, "origin",
		    "kept connection closed by the server: resending");
		event_del(c->ev);
		close(c->fd);
		c->fd = -1;
		c->reqoff = 0;
		c->off = c->len = c->scan = 0;
		if (conn_connect(c))
			c->ops->sent(c->arg);
		return;
	}
	conn_finish(c, e);
}

static enum h1_step
refuse(struct origin_h1_conn *c, const char *why)
{
	c->ops->refused(c->arg, why);
	conn_finish(c, ORIGIN_EPROTO);
	return STEP_STOP;
}

/* Hand body bytes over; STEP_STOP when the consumer paused (or it
 * failed, and the connection is gone). */
static enum h1_step
deliver(struct origin_h1_conn *c, size_t n)
{
	size_t took;

	if (n == 0)
		return STEP_MORE;
	took = c->ops->body(c->arg, c->buf + c->off, n);
	if (took == ORIGIN_PAUSE) {
		c->paused = 1;
		event_del(c->ev);
		return STEP_STOP;
	}
	if (took != n) {
		conn_finish(c, ORIGIN_EINTERNAL);
		return STEP_STOP;
	}
	c->off += n;
	return STEP_MORE;
}

static enum h1_step
on_head(struct origin_h1_conn *c)
{
	const char *fields = "", *why = NULL;
	size_t flen = 0, used = 0;
	int r;

	r = origin_head_parse(c->buf + c->off, c->len - c->off, &c->scan,
	    &c->hd, &fields, &flen, &used, &why);
	if (r == ORIGIN_HEAD_PARTIAL)
		return STEP_MORE;
	if (r == ORIGIN_HEAD_BAD)
		return refuse(c, why);
	if (c->hd.status < 200) {
		/* Nothing here asks to switch protocols. */
		if (c->hd.status == 101)
			return refuse(c, "101 to a request without Upgrade");
		c->ops->interim(c->arg, c->hd.status, fields, flen);
		c->off += used;
		return STEP_MORE;
	}
	why = origin_head_framing(&c->hd);
	if (why != NULL)
		return refuse(c, why);
	c->body = origin_head_body(&c->hd, c->no_body);
	/* RFC 9112 §9.3: HTTP/1.1 persists unless closed; 1.0 only if
	 * asked; a body until close ends the connection. */
	c->keep = !c->hd.conn_close &&
	    (c->hd.minor >= 1 || c->hd.conn_keep_alive) &&
	    c->body != ORIGIN_BODY_CLOSE;
	c->left =
	    c->body == ORIGIN_BODY_LENGTH ? (uint64_t)c->hd.content_length : 0;
	http_chunked_init(&c->chunked, ORIGIN_CHUNK_LINE_MAX, ORIGIN_HEAD_MAX);
	c->state = H1_BODY;
	/* The fields point into buf: consumed only after the call. */
	c->ops->head(c->arg, &c->hd, fields, flen);
	c->off += used;
	if (c->body == ORIGIN_BODY_NONE ||
	    (c->body == ORIGIN_BODY_LENGTH && c->left == 0)) {
		conn_finish(c, ORIGIN_OK);
		return STEP_STOP;
	}
	return STEP_MORE;
}

/*
 * Chunked body bytes in the buffer (RFC 9112 §7.1), framed by the HTTP
 * layer's decoder, which request bodies use too; trailer fields are
 * dropped, as the curl path does.  c->left holds data a step found that
 * the consumer has not taken yet (it paused).
 */
static enum h1_step
on_chunked(struct origin_h1_conn *c)
{
	size_t framing, data, n;
	const char *why;
	int r;

	while (c->off < c->len) {
		if (c->left > 0) {
			n = c->len - c->off;
			if (n > c->left)
				n = (size_t)c->left;
			if (deliver(c, n) == STEP_STOP)
				return STEP_STOP;
			c->left -= n;
			continue;
		}
		r = http_chunked_step(&c->chunked, c->buf + c->off,
		    c->len - c->off, &framing, &data, &why);
		if (r == CDN_EINVAL) {
			conn_finish(c, ORIGIN_EPROTO);
			return STEP_STOP;
		}
		c->off += framing;
		c->left = data;
		if (r == CDN_OK) {
			conn_finish(c, ORIGIN_OK);
			return STEP_STOP;
		}
		if (framing + data == 0)
			return STEP_MORE;
	}
	return STEP_MORE;
}

/* Everything the buffer holds, in the connection's state. */
static enum h1_step
process(struct origin_h1_conn *c)
{
	size_t n;

	while (c->off < c->len) {
		if (c->state == H1_HEAD) {
			size_t before = c->off;

			if (on_head(c) == STEP_STOP)
				return STEP_STOP;
			if (c->off == before)
				return STEP_MORE; /* a partial head */
			continue;
		}
		switch (c->body) {
		case ORIGIN_BODY_LENGTH:
			n = c->len - c->off;
			if (n > c->left)
				n = (size_t)c->left;
			if (deliver(c, n) == STEP_STOP)
				return STEP_STOP;
			c->left -= n;
			if (c->left == 0) {
				conn_finish(c, ORIGIN_OK);
				return STEP_STOP;
			}
			return STEP_MORE;
		case ORIGIN_BODY_CHUNKED:
			return on_chunked(c);
		case ORIGIN_BODY_CLOSE:
			return deliver(c, c->len - c->off);
		case ORIGIN_BODY_NONE: /* finished in on_head() */
			break;
		}
		return STEP_MORE;
	}
	return STEP_MORE;
}

/* Room to read into: compacted, and grown while a head needs it. */
static int
buf_room(struct origin_h1_conn *c)
{
	size_t want;
	char *nb;

	if (c->off == c->len)
		c->off = c->len = 0;
	if (c->cap - c->len >= H1_READ_MIN)
		return CDN_OK;
	if (c->off > 0) {
		memmove(c->buf, c->buf + c->off, c->len - c->off);
		c->len -= c->off;
		c->off = 0;
		c->scan = 0;
		if (c->cap - c->len >= H1_READ_MIN)
			return CDN_OK;
	}
	want = c->cap == 0 ? H1_BUF_INITIAL : c->cap * 2;
	if (c->cap > 0 && (c->state != H1_HEAD || c->cap >= H1_BUF_HEAD_MAX))
		return c->cap > c->len ? CDN_OK : CDN_ENOMEM;
	if (want > H1_BUF_HEAD_MAX)
		want = H1_BUF_HEAD_MAX;
	nb = realloc(c->buf, want);
	if (nb == NULL)
		return c->cap > c->len ? CDN_OK : CDN_ENOMEM;
	c->buf = nb;
	c->cap = want;
	return CDN_OK;
}

/* The server closed the connection (or reset it) while we read. */
static void
on_eof(struct origin_h1_conn *c, int reset)
{
	if (c->state == H1_HEAD) {
		conn_failed(c, ORIGIN_ERESET);
		return;
	}
	/* A body until close ends here: the normal end.  Any other body is
	 * cut short. */
	conn_finish(c,
	    !reset && c->body == ORIGIN_BODY_CLOSE ? ORIGIN_OK : ORIGIN_ERESET);
}

static void
on_readable(struct origin_h1_conn *c)
{
	ssize_t n;

	if (process(c) == STEP_STOP)
		return;
	if (buf_room(c) != CDN_OK) {
		conn_finish(c, ORIGIN_EINTERNAL);
		return;
	}
	n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
	if (n > 0) {
		c->got_byte = 1;
		c->len += (size_t)n;
		(void)process(c);
		return;
	}
	if (n == 0) {
		on_eof(c, 0);
		return;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return;
	on_eof(c, 1);
}

/* The non-blocking connect is over: its verdict, then the request. */
static void
on_connected(struct origin_h1_conn *c)
{
	int err = 0, r;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		err = errno;
	if (err != 0) {
		CDN_LOG(CDN_LOG_INFO, "origin", "connect: %s", strerror(err));
		conn_finish(c, ORIGIN_ECONNECT);
		return;
	}
	c->state = H1_SENDING;
	r = conn_send(c, 1);
	if (r < 0)
		conn_finish(c, r == -2 ? ORIGIN_EINTERNAL : ORIGIN_ERESET);
	else if (r > 0)
		c->ops->sent(c->arg);
}

static void
conn_cb(evutil_socket_t fd, short what, void *arg)
{
	struct origin_h1_conn *c = arg;
	int r;

	(void)fd;
	MAGIC_CHECK(c, ORIGIN_H1_CONN_MAGIC);
	if (c->deferred != ORIGIN_OK) {
		enum origin_err e = c->deferred;

		c->deferred = ORIGIN_OK;
		if (c->fd >= 0 && e == ORIGIN_ERESET)
			conn_failed(c, e);
		else
			conn_finish(c, e);
		return;
	}
	switch (c->state) {
	case H1_IDLE:
		/* The server closed it, sent what it should not have, or
		 * the connection outlived its idle time. */
		(void)what;
		conn_close(c);
		return;
	case H1_CONNECTING:
		on_connected(c);
		return;
	case H1_SENDING:
		if (c->send_paused)
			return;
		r = conn_send(c, 1);
		if (r == -2)
			conn_finish(c, ORIGIN_EINTERNAL);
		else if (r < 0)
			conn_failed(c, ORIGIN_ERESET);
		else if (r > 0)
			c->ops->sent(c->arg);
		return;
	case H1_HEAD:
	case H1_BODY:
		if (!c->paused)
			on_readable(c);
		return;
	}
}
