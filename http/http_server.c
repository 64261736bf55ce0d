/*
 * HTTP/1.1 server connections (http/http_server.h).
 *
 * Threading: a struct http_server and all its connections belong to the one
 * thread running its event_base; nothing here is shared or locked.
 *
 * Connection life: IDLE (waiting for a request head; the conn timer holds
 * the keep-alive or header deadline) -> ACTIVE (a txn is owned by the
 * handler) -> IDLE again for keep-alive, or CLOSING (flush the output) ->
 * LINGER (write side shut, input discarded for a moment so that a pending
 * RST cannot destroy the response before the client read it) -> freed.
 *
 * Pipelining: the next request is parsed only when the current response is
 * complete and handed to the socket (txn_after_response: its log line then
 * counts what was sent).  dispatch() loops over what is buffered rather
 * than recursing, so a thousand pipelined requests answered synchronously
 * cost no stack.
 *
 * Backpressure: the input buffer has a high watermark, so a client sending a
 * body faster than the handler consumes it is simply not read; the handler
 * stops producing output above HTTP_OUT_HIGH_WATER and is called back
 * (on_writable) below the low-water mark.
 *
 * Writes (plain connections): a response is appended to the output buffer
 * and written at once with one writev, at the end of the dispatch loop
 * or, for writes made from
 * elsewhere (a fill feeding its waiters), from an event activated for the
 * same loop turn: one writev per connection per turn, whatever the number
 * of pieces, and a sendfile for each file segment (a sealed body) in the
 * same turn.  The connection's write event (write_ev) is added only when
 * the socket did not take everything, and deleted again once the output
 * has drained: a response that fits the socket buffer costs no epoll_ctl.
 * The last write before a close lets the FIN ride on the answer's last
 * segment (conn_write_last).
 *
 * Reads (plain connections): an event of the connection's own (read_ev)
 * reads into its input buffer (conn_read_sync); a new connection's
 * request is read in the loop turn that accepted it.  A request answered
 * and closed within that turn never reaches epoll.  A plain connection
 * has no bufferevent: its two buffers, its socket and its events are its
 * own.
 *
 * TLS: a TLS connection differs in its bufferevent (libevent's
 * bufferevent_openssl, which runs the handshake and the records, and
 * whose buffers the connection uses) and in how it starts and ends.  While it
 * handshakes it is IDLE with tls_handshaking set: the header timer armed at
 * adoption bounds the handshake and the request head together, so a client that
 * stalls mid-handshake costs one timer; a failed handshake (garbage, TLS 1.1)
 * frees the connection at once.  On the way out a close_notify is sent
 * when the output is flushed.  Responses are encrypted and written in the
 * loop turn that made them (conn_tls_write_now).  OpenSSL reads ahead
 * from the ClientHello on (conn_tls_read_ahead), and the ClientHello is
 * read in the loop turn that accepted the connection; the bufferevent's
 * write event waits in epoll only while output waits for the socket
 * (conn_tls_write_idle).  Two libevent 2.1 habits are worked around
 * (conn_tls_coalesce, conn_tls_want_input).  The plain path pays a flag
 * test per response and per connection event: no call, no allocation.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <linux/sockios.h> /* SIOCOUTQNSD */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/bufferevent_struct.h> /* ev_read: see conn_tls_want_input */
#include <event2/event.h>
#include <event2/event_struct.h> /* struct event embedded in http_conn */
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/cdn_asan.h"
#include "common/cdn_log.h"
#include "common/cdn_strbuf.h"
#include "http/http_date.h"
#include "http/http_server.h"

#define OUT_LOW_WATER     (64 * 1024)
#define BODY_BUF_MAX      (64 * 1024) /* decoded chunked body kept ahead */
#define CHUNK_WINDOW      (16 * 1024) /* bytes handed to the chunk decoder */
#define CHUNK_MAX_LINE    4096
#define CHUNK_MAX_TRAILER 8192
#define LINGER_MS         2000
#define NS_PER_MS         1000000u
#define TLS_RECORD_MAX    16384 /* plaintext bytes of one TLS record */
#define STATUS_LINE_MAX   160   /* a status line, and Content-Length's */
#define HEAD_INLINE       1024  /* request head bytes kept without malloc */
#define IN_AHEAD          (64 * 1024) /* input kept beyond a full head */
#define READ_STACK        4096        /* a plain read's first buffer */
#define READ_MAX          (64 * 1024) /* plain bytes read per wake-up */
#define LAST_WRITE_IOV    8           /* pieces of a response's last write */
/* The first read at accept (first_read_pays): its estimated hit rate in
 * 1/256ths, kept when at least a quarter, and a try every 16th connection
 * while skipped. */
#define FIRST_READ_ONE   256
#define FIRST_READ_KEEP  (FIRST_READ_ONE / 4)
#define FIRST_READ_DECAY 16
#define FIRST_READ_PROBE 16

/* Plain connections kept for reuse; under ASan a kept connection's
 * memory is poisoned until it is reused (CDN_POISON). */
#define CONN_SPARE_MAX 32

enum conn_state {
	CONN_IDLE = 0,
	CONN_ACTIVE,
	CONN_CLOSING,
	CONN_LINGER,
};

struct http_txn {
	uint32_t magic;
#define HTTP_TXN_MAGIC 0x27d3b19eu
	struct http_conn *conn;
	struct http_request req;
	void *data;
	uint64_t start_ns;
	const char *error; /* static: why the server refused the request */

	/* request body */
	unsigned has_body : 1;
	unsigned body_done : 1;
	unsigned want_body : 1; /* handler got CDN_AGAIN: call on_body */
	uint64_t body_left;     /* Content-Length bodies */
	uint64_t body_seen;     /* chunked bodies, for max_body_size */
	struct http_chunked chunked;
	struct evbuffer *body_buf; /* decoded chunked data not yet read */

	/* response */
	int status;
	unsigned responded : 1;
	unsigned no_body : 1;     /* HEAD, 1xx, 204, 304 */
	unsigned chunked_out : 1; /* we frame with chunked coding */
	unsigned want_write : 1;  /* call on_writable on drain */
	unsigned aborted : 1;     /* ended without a complete response */
	int body_error;           /* 400/413 found while reading the body */
	uint64_t bytes_sent;
};

struct http_conn {
	uint32_t magic;
#define HTTP_CONN_MAGIC 0x91c06e4bu
	struct http_server *srv;
	struct http_conn *next, *prev;
	int fd;
	struct evbuffer *in, *out; /* TLS: the bufferevent's; plain: ours */
	struct bufferevent *bev;   /* TLS only */
	enum conn_state state;
	unsigned keep_alive : 1;
	unsigned head_started : 1; /* bytes of a head seen: header timeout */
	unsigned body_timeout : 1; /* the request body's read timeout is set */
	unsigned in_dispatch : 1;
	unsigned client_eof : 1; /* client half-closed after its request */
	unsigned is_tls : 1;
	unsigned tls_handshaking : 1;
	unsigned tls_done : 1;   /* failed, or close_notify sent: no more TLS */
	unsigned tls_corked : 1; /* TCP_CORK set until the output drains */
	unsigned tls_flush : 1;  /* output added, flush_ev to write it */
	unsigned tls_writing : 1;   /* in conn_tls_write_now: callbacks wait */
	unsigned tls_wrote : 1;     /* ... on_conn_write came meanwhile */
	unsigned tls_read : 1;      /* ... on_conn_read came meanwhile */
	short tls_event;            /* ... on_conn_event came with this */
	unsigned flush_armed : 1;   /* plain: output added, not yet written */
	unsigned client_closes : 1; /* the request asked for the close and
	                               was read whole */
	unsigned read_on : 1;       /* plain: reading wanted (conn_read_set) */
	unsigned read_full : 1;     /* plain: input at its limit, not read */
	unsigned read_added : 1;    /* plain: read_ev is added */
	unsigned read_timed : 1;    /* plain: ... last with the body timeout */
	unsigned read_drained : 1; /* plain: the last read emptied the socket */
	unsigned read_first : 1;   /* plain: accepted, not read yet */
	unsigned read_frees : 1;   /* plain: closed cleanly inside its read,
	                              which frees it (conn_read_got) */
	unsigned out_file : 1;     /* plain: the output may hold a file
	                              segment (conn_write_last) */
	unsigned write_on : 1;     /* plain: write_ev is added */
	unsigned timer_on : 1;     /* timer added or activated */
	unsigned timer_idle : 1;   /* ... added for the keep-alive timeout,
	                              which idle_until_ns may have moved */
	unsigned timer_fired : 1;  /* ... activated (conn_timer_fire) */
	unsigned flush_on : 1;     /* flush_ev activated */
	unsigned eof_on : 1;       /* TLS: read_ev activated (conn_body_eof) */
	unsigned txn_sending : 1;  /* answered; its end waits for the output
	                              to reach the socket (txn_after_response) */
	unsigned events_kept : 1;  /* a spare's: timer and flush_ev assigned */
	unsigned nreq;
	uint64_t idle_until_ns; /* the keep-alive timeout's end (cdn_now_ns) */
	char peer[INET6_ADDRSTRLEN]; /* "" until conn_peer formats it */
	union {
		struct sockaddr sa;
		struct sockaddr_in in4;
		struct sockaddr_in6 in6;
	} peer_addr;
	char *head; /* copy of the current request head */
	size_t head_cap;
	struct http_header *fields; /* max_headers entries, behind the struct */
	struct event read_ev;       /* plain: the socket is readable; TLS:
	                               a body reader's end of file */
	struct event write_ev;      /* plain: the socket has room again */
	struct http_txn txn;
	/* Last: a spare keeps these two assigned (they name neither the
	 * socket nor anything else of one connection), so conn_new clears
	 * only what comes before them. */
	struct event timer;
	struct event flush_ev; /* plain: write the output this turn */
	/* Behind the struct, in its allocation (conn_new): the fields array,
	 * then HEAD_INLINE bytes that c->head uses until a head needs more. */
};

struct http_server {
	uint32_t magic;
#define HTTP_SERVER_MAGIC 0x4e8a53d1u
	struct event_base *base;
	struct http_server_limits lim;
	struct http_handler h;
	void *arg;
	struct http_conn *conns;
	unsigned nconns;
	atomic_uint *conn_gauge; /* mirrors nconns for other threads */
	unsigned draining : 1;
	unsigned reading_gone : 1; /* ... which was freed meanwhile */
	struct http_conn *reading; /* in this plain connection's read */
	struct http_conn *spare;   /* freed plain connections, their buffers
	                              kept (linked by next) */
	unsigned nspare;
	unsigned first_read_hits; /* first_read_pays: in 1/FIRST_READ_ONE */
	unsigned first_read_skips;
	char *cache_status_node; /* NULL: no Cache-Status on own errors */
	void (*on_empty)(void *arg);
	void *on_empty_arg;
};

static void conn_free(struct http_conn *c);
static void conn_dispatch(struct http_conn *c);
static void conn_linger(struct http_conn *c);

/* The head buffer that comes with the connection (conn_new). */
static char *
conn_head_inline(struct http_conn *c)
{
	return (char *)(c->fields + c->srv->lim.parse.max_headers);
}

/*
 * The client's address as text, formatted on first use: inet_ntop (a
 * printf) cost a tenth of a connection's instructions, and most
 * connections never log or pass their client's address.
 */
static const char *
conn_peer(struct http_conn *c)
{
	if (c->peer[0] != '\0')
		return c->peer;
	if (c->peer_addr.sa.sa_family == AF_INET)
		inet_ntop(AF_INET, &c->peer_addr.in4.sin_addr, c->peer,
		    sizeof(c->peer));
	else if (c->peer_addr.sa.sa_family == AF_INET6)
		inet_ntop(AF_INET6, &c->peer_addr.in6.sin6_addr, c->peer,
		    sizeof(c->peer));
	if (c->peer[0] == '\0')
		strcpy(c->peer, "-");
	return c->peer;
}

/*
 * Whether a drain closes idle connection <c> now.  Only at a response
 * boundary: a connection that has had no request yet was just accepted
 * (a client that connected as the drain began has its request on the
 * way, and closing would fail it where no retry is safe), so its first
 * request is read and answered, with Connection: close, within the
 * header timeout.
 */
static int
drain_closes(const struct http_conn *c)
{
	return c->srv->draining && c->nreq > 0;
}
static void conn_close_after_flush(struct http_conn *c);

/* ---- Date cache ---- */

static __thread time_t date_sec;
static __thread char date_field[64];

const char *
http_date_field(void)
{
	time_t now = time(NULL);

	if (now != date_sec) {
		memcpy(date_field, "Date: ", 6);
		http_date_format((int64_t)now, date_field + 6, 32);
		memcpy(date_field + 35, "\r\n", 3);
		date_sec = now;
	}
	return date_field;
}

/* ---- helpers ---- */

static void
ms_to_tv(uint64_t ms, struct timeval *tv)
{
	tv->tv_sec = (time_t)(ms / 1000);
	tv->tv_usec = (suseconds_t)((ms % 1000) * 1000);
}

static void conn_read_sync(struct http_conn *c);

/*
 * The send timeout stays armed for the connection's life: libevent counts
 * it only while the write event waits on a socket that takes nothing, so
 * it bounds a client that stops reading on any of its requests (a plain
 * connection's write_ev carries it, conn_write_wait).  The read timeout
 * runs only while a request body is read (between requests the
 * connection's timer has the keep-alive timeout).
 */
static void
conn_set_timeouts(struct http_conn *c, int reading_body)
{
	struct timeval rtv, wtv;

	c->body_timeout = reading_body ? 1 : 0;
	if (!c->is_tls) {
		/* The body timeout rides on the read event. */
		conn_read_sync(c);
		return;
	}
	ms_to_tv(c->srv->lim.send_timeout_ms, &wtv);
	if (reading_body)
		ms_to_tv(c->srv->lim.body_timeout_ms, &rtv);
	bufferevent_set_timeouts(c->bev, reading_body ? &rtv : NULL, &wtv);
}

static void
conn_arm_timer(struct http_conn *c, uint64_t ms)
{
	struct timeval tv;

	ms_to_tv(ms, &tv);
	evtimer_add(&c->timer, &tv);
	c->timer_on = 1;
	c->timer_idle = 0;
}

/*
 * The keep-alive timeout, from now.  A timer still added for an earlier
 * one is left alone: its callback moves it on to idle_until_ns.  A
 * request on a kept-alive connection then costs no event_del and
 * event_add (the base's lock, and the timer heap, twice), only a later
 * wake-up per timeout.
 */
static void
conn_arm_idle(struct http_conn *c)
{
	uint64_t ms = c->srv->lim.keepalive_timeout_ms;

	c->idle_until_ns = cdn_now_ns() + ms * NS_PER_MS;
	if (c->timer_on && c->timer_idle)
		return;
	conn_arm_timer(c, ms);
	c->timer_idle = 1;
}

/*
 * Run <c>'s timer callback from the loop, where freeing <c> is safe.  The
 * flags timer_on and flush_on spare an event_del (the base's lock and a
 * few hundred instructions) for an event that is neither added nor
 * active, as most of a short connection's are when it is freed.
 */
static void
conn_timer_fire(struct http_conn *c)
{
	event_active(&c->timer, EV_TIMEOUT, 0);
	c->timer_on = 1;
	c->timer_fired = 1;
}

static void
conn_timer_stop(struct http_conn *c)
{
	if (c->timer_on) {
		evtimer_del(&c->timer);
		c->timer_on = 0;
		c->timer_idle = 0;
		c->timer_fired = 0;
	}
}

static void
conn_flush_fire(struct http_conn *c)
{
	event_active(&c->flush_ev, EV_WRITE, 1);
	c->flush_on = 1;
}

/* ---- reading (plain connections) ---- */

/*
 * The input a connection holds before it stops reading: a whole head and
 * some body ahead, so a client sending a body faster than the handler
 * takes it is simply not read.
 */
static size_t
conn_in_limit(const struct http_conn *c)
{
	return c->srv->lim.parse.max_header_bytes + IN_AHEAD;
}

/*
 * Plain connections read through an event of their own (read_ev); the
 * bufferevent only writes.  libevent 2.1's bufferevent asks the socket
 * how much it holds (ioctl FIONREAD) before every read: a system call per
 * request.  read_ev is added while reading is wanted and the input is
 * below its limit, with the body timeout while a body is read (a
 * persistent event's timeout restarts at each read, as the bufferevent's
 * did).  With the loop's changelist, an add and a delete in one loop turn
 * never reach epoll.
 */
static void on_conn_readable(evutil_socket_t fd, short what, void *arg);

/* Set up plain <c>'s read_ev afresh, with no timeout; it must not be added. */
static void
conn_read_assign(struct http_conn *c)
{
	event_assign(&c->read_ev, c->srv->base, c->fd, EV_READ | EV_PERSIST,
	    on_conn_readable, c);
}

static void
conn_read_sync(struct http_conn *c)
{
	struct timeval tv;

	if (c->read_on && !c->read_full) {
		if (c->read_added && c->read_timed == c->body_timeout)
			return;
		if (c->read_timed && !c->body_timeout) {
			/* A persistent event keeps its timeout through
			 * event_del() and an event_add() without one, and
			 * re-arms it at its next read: the body timeout
			 * would end an idle or waiting connection. */
			if (c->read_added)
				event_del(&c->read_ev);
			conn_read_assign(c);
		}
		ms_to_tv(c->srv->lim.body_timeout_ms, &tv);
		event_add(&c->read_ev, c->body_timeout ? &tv : NULL);
		c->read_added = 1;
		c->read_timed = c->body_timeout;
	} else if (c->read_added) {
		event_del(&c->read_ev);
		c->read_added = 0;
	}
}

/* Start (on) or stop reading <c>. */
static void
conn_read_set(struct http_conn *c, int on)
{
	if (c->is_tls) {
		if (on)
			bufferevent_enable(c->bev, EV_READ);
		else
			bufferevent_disable(c->bev, EV_READ);
		return;
	}
	c->read_on = on ? 1 : 0;
	conn_read_sync(c);
}

/* Input was taken from <c>: read again if that made room. */
static void
conn_input_taken(struct http_conn *c)
{
	if (c->read_full && evbuffer_get_length(c->in) < conn_in_limit(c)) {
		c->read_full = 0;
		conn_read_sync(c);
	}
}

/*
 * Read what plain connection <c>'s socket holds into its input.  The
 * first read goes to the stack, so that a request head gets an input
 * chain of its own size; a read that fills the buffer goes on straight
 * into the input, up to READ_MAX bytes.  Sets read_drained when a read
 * came back short, or at the end of file: the socket held nothing more.
 * Returns the bytes read, 0 at the end of file, or -1 with errno set.
 */
static ssize_t
conn_read_in(struct http_conn *c)
{
	struct evbuffer *in = c->in;
	int fd = c->fd;
	size_t have = evbuffer_get_length(in), room, want, total;
	struct evbuffer_iovec v[2];
	struct iovec iov[2];
	char buf[READ_STACK];
	ssize_t n;
	int nv;

	c->read_drained = 0;
	if (have >= conn_in_limit(c)) {
		errno = EAGAIN;
		return -1;
	}
	room = conn_in_limit(c) - have;
	if (room > READ_MAX)
		room = READ_MAX;
	want = room < sizeof(buf) ? room : sizeof(buf);
	n = recv(fd, buf, want, 0);
	if (n <= 0) {
		c->read_drained = n == 0;
		return n;
	}
	if (evbuffer_add(in, buf, (size_t)n) != 0) {
		errno = ENOMEM;
		return -1;
	}
	total = (size_t)n;
	c->read_drained = (size_t)n < want;
	while (!c->read_drained && total < room) {
		want = room - total;
		nv = evbuffer_reserve_space(in, (ev_ssize_t)want, v, 2);
		if (nv < 1)
			break;
		for (int i = 0; i < nv; i++) {
			iov[i].iov_base = v[i].iov_base;
			iov[i].iov_len = v[i].iov_len;
		}
		n = readv(fd, iov, nv);
		if (n <= 0) {
			/* Nothing more; an end of file or error is met by
			 * the next read. */
			c->read_drained =
			    n == 0 || errno == EAGAIN || errno == EWOULDBLOCK;
			break;
		}
		if ((size_t)n <= v[0].iov_len) {
			v[0].iov_len = (size_t)n;
			nv = 1;
		} else {
			v[1].iov_len = (size_t)n - v[0].iov_len;
		}
		evbuffer_commit_space(in, v, nv);
		total += (size_t)n;
		c->read_drained = (size_t)n < want;
	}
	return (ssize_t)total;
}

static void
rebase(struct http_slice *s, const char *from, size_t len, char *to)
{
	if (s->p >= from && s->p < from + len)
		s->p = to + (s->p - from);
}

/* Point every slice of <req> at the copy of the head in <to>. */
static void
request_rebase(struct http_request *req, const char *from, char *to)
{
	size_t len = req->head_len;

	rebase(&req->method_str, from, len, to);
	rebase(&req->target, from, len, to);
	rebase(&req->scheme, from, len, to);
	rebase(&req->authority, from, len, to);
	rebase(&req->path, from, len, to);
	rebase(&req->query, from, len, to);
	rebase(&req->host, from, len, to);
	for (unsigned i = 0; i < req->n_headers; i++) {
		rebase(&req->headers[i].name, from, len, to);
		rebase(&req->headers[i].value, from, len, to);
	}
}

/*
 * Output was added to plain connection <c>: have it written this loop
 * turn.  Inside the dispatch loop its end writes; elsewhere the flush
 * event runs once the current callback returns.  While the write event is
 * enabled, the bufferevent writes by itself.  A TLS connection's output
 * is written by the flush event (conn_tls_write_now).
 */
static void
conn_out_added(struct http_conn *c)
{
	if (c->is_tls) {
		if (!c->tls_flush && !c->tls_handshaking) {
			c->tls_flush = 1;
			conn_flush_fire(c);
		}
		return;
	}
	if (c->flush_armed)
		return;
	c->flush_armed = 1;
	if (!c->in_dispatch)
		conn_flush_fire(c);
}

/*
 * Write the last of plain connection <c>'s output before it closes, with
 * MSG_MORE: the kernel keeps the final partial segment back, and the FIN
 * that the close (or the linger's shutdown) sends right after leaves in
 * it.  The response and the FIN then take one segment instead of two: of
 * the ten a connection cost, the one built, sent and received on the
 * server's core for the FIN alone is gone.  The caller closes or shuts
 * down once everything went; what stays is written by the write event
 * without MSG_MORE, which pushes it.  A file segment has no memory to
 * point at, and an output in many pieces is rare here: both are left to
 * evbuffer_write.  Returns what evbuffer_write would.
 */
static int
conn_write_last(struct http_conn *c, struct evbuffer *out, evutil_socket_t fd)
{
	struct evbuffer_iovec v[LAST_WRITE_IOV];
	struct iovec iov[LAST_WRITE_IOV];
	struct msghdr msg;
	ssize_t n;
	int nv;

	if (c->out_file)
		return evbuffer_write(out, fd);
	nv = evbuffer_peek(out, -1, NULL, v, LAST_WRITE_IOV);
	if (nv < 1 || nv > LAST_WRITE_IOV)
		return evbuffer_write(out, fd);
	for (int i = 0; i < nv; i++) {
		iov[i].iov_base = v[i].iov_base;
		iov[i].iov_len = v[i].iov_len;
	}
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = iov;
	msg.msg_iovlen = (size_t)nv;
	n = sendmsg(fd, &msg, MSG_MORE | MSG_NOSIGNAL);
	if (n > 0)
		evbuffer_drain(out, (size_t)n);
	return (int)n;
}

/*
 * Whether <c> closes once the answer being sent is out: the txn_end and
 * txn_sent conditions, known before they run.
 */
static int
conn_closes_after(const struct http_conn *c)
{
	return !c->keep_alive || !c->txn.body_done || c->srv->draining ||
	    (c->client_eof && evbuffer_get_length(c->in) == 0);
}

/* Have plain <c>'s write_ev write what its socket did not take. */
static void
conn_write_wait(struct http_conn *c)
{
	struct timeval tv;

	ms_to_tv(c->srv->lim.send_timeout_ms, &tv);
	event_add(&c->write_ev, &tv);
	c->write_on = 1;
}

static void
conn_write_stop(struct http_conn *c)
{
	if (c->write_on) {
		event_del(&c->write_ev);
		c->write_on = 0;
	}
}

/*
 * Write the output of plain connection <c> straight to its socket.  What
 * the socket does not take (or an error, which write_ev then meets and
 * reports through on_conn_event) is left to write_ev.  Returns 1 when
 * everything went.
 */
static int
conn_write_out(struct http_conn *c)
{
	size_t len;
	int n, last;

	c->flush_armed = 0;
	if (c->write_on)
		return 0; /* write_ev is writing already */
	/* Each write stops where memory and a file segment meet (a writev,
	 * then a sendfile), so write again until all went or the socket took
	 * nothing: a head and its body leave in this turn, and write_ev is
	 * needed only when the socket is full. */
	len = evbuffer_get_length(c->out);
	last = c->state == CONN_CLOSING ||
	    (c->txn_sending && conn_closes_after(c));
	while (len > 0) {
		n = last ? conn_write_last(c, c->out, c->fd)
		         : evbuffer_write(c->out, c->fd);
		if (n <= 0)
			break;
		len -= (size_t)n; /* drained what went */
	}
	if (len == 0) {
		c->out_file = 0;
		return 1;
	}
	conn_write_wait(c);
	return 0;
}

static void on_conn_write(struct bufferevent *bev, void *arg);
static void on_conn_read(struct bufferevent *bev, void *arg);
static void on_conn_event(struct bufferevent *bev, short what, void *arg);

/*
 * write_ev: what a socket bufferevent's write callback did.  It calls
 * on_conn_write whenever the output is at or below the low-water mark,
 * as libevent's watermark does; on_conn_write stops write_ev once the
 * output is empty.
 */
static void
on_conn_writable(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *c = arg;
	int n;

	MAGIC_CHECK(c, HTTP_CONN_MAGIC);
	if (what & EV_TIMEOUT) {
		conn_write_stop(c);
		on_conn_event(NULL, BEV_EVENT_WRITING | BEV_EVENT_TIMEOUT, c);
		return;
	}
	if (evbuffer_get_length(c->out) > 0) {
		n = evbuffer_write(c->out, fd);
		if (n < 0 &&
		    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		if (n <= 0) {
			conn_write_stop(c);
			on_conn_event(NULL,
			    BEV_EVENT_WRITING |
			        (n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR),
			    c);
			return;
		}
	}
	if (evbuffer_get_length(c->out) <= OUT_LOW_WATER)
		on_conn_write(NULL, c);
}

/*
 * Encrypt and write TLS connection <c>'s output now, not at the loop's
 * next turn.  libevent's OpenSSL bufferevent writes only from its write
 * event: each response cost the event's add (epoll_ctl), a wait for the
 * socket to be writable (epoll_wait) and its delete (epoll_ctl).  Its
 * write callback is run here by hand (as edge_h2.c's conn_write_now does;
 * no public call does this, and struct bufferevent is libevent's
 * documented but discouraged layout); once the output is written it
 * deletes the write event, which the loop's changelist then never sends
 * to epoll.  What the bufferevent calls back meanwhile waits in notes and
 * is run after it, from this top-level event, where freeing <c> is safe.
 */
static void
conn_tls_write_now(struct http_conn *c)
{
	struct event *ev = &c->bev->ev_write;
	event_callback_fn cb = event_get_callback(ev);
	short what;

	c->tls_flush = 0;
	if (c->tls_done || evbuffer_get_length(c->out) == 0)
		return;
	c->tls_writing = 1;
	cb(event_get_fd(ev), EV_WRITE, event_get_callback_arg(ev));
	c->tls_writing = 0;
	what = c->tls_event;
	c->tls_event = 0;
	if (what != 0) {
		on_conn_event(c->bev, what, c);
		return;
	}
	if (c->tls_wrote) {
		c->tls_wrote = 0;
		on_conn_write(c->bev, c);
	}
	if (c->tls_read) {
		c->tls_read = 0;
		on_conn_read(c->bev, c);
	}
}

static void
on_conn_flush(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *c = arg;

	(void)fd;
	(void)what;
	MAGIC_CHECK(c, HTTP_CONN_MAGIC);
	c->flush_on = 0;
	if (c->is_tls) {
		conn_tls_write_now(c);
		return;
	}
	if (c->flush_armed && !conn_write_out(c))
		return;
	if (evbuffer_get_length(c->out) > 0)
		return; /* the write event has it */
	/* Drained: what libevent's write callback would do now. */
	on_conn_write(c->bev, c);
}

static void
out_add(struct http_txn *txn, const void *p, size_t len)
{
	evbuffer_add(txn->conn->out, p, len);
	txn->bytes_sent += len;
	conn_out_added(txn->conn);
}

/* ---- transaction end ---- */

static void
txn_reset(struct http_txn *txn)
{
	struct evbuffer *keep = txn->body_buf;

	if (keep != NULL)
		evbuffer_drain(keep, evbuffer_get_length(keep));
	memset(txn, 0, sizeof(*txn));
	txn->body_buf = keep;
}

/* The txn is over (answered, or the client is gone): log it, reset it. */
static void
txn_end(struct http_conn *c)
{
	struct http_server *s = c->srv;
	struct http_txn *txn = &c->txn;

	c->txn_sending = 0;
	if (s->h.on_log != NULL)
		s->h.on_log(txn, s->arg);
	if (!txn->body_done) {
		c->keep_alive = 0; /* unread body bytes: framing is lost */
		c->client_closes = 0;
	}
	txn_reset(txn);
	c->nreq++;
}

/* <c>'s answer is out: end its txn, then keep alive or close. */
static void
txn_sent(struct http_conn *c)
{
	txn_end(c);
	/* Requests pipelined ahead of the client's end of file are
	 * answered: the dispatch closes once none is left whole. */
	if (!c->keep_alive || c->srv->draining ||
	    (c->client_eof && evbuffer_get_length(c->in) == 0)) {
		conn_close_after_flush(c);
		return;
	}
	c->state = CONN_IDLE;
	c->head_started = 0;
	if (c->body_timeout)
		conn_set_timeouts(c, 0);
	conn_arm_idle(c);
	if (!c->in_dispatch)
		conn_dispatch(c);
}

/*
 * <c>'s txn is answered (or abandoned).  Its end, and the log line with
 * it, waits until the output has reached the socket, so that the line
 * tells what the client was sent and when; the next request waits with
 * it.  The write that takes the output ends it (conn_dispatch,
 * on_conn_write); one that fails ends it as aborted (conn_free).
 */
static void
txn_after_response(struct http_conn *c)
{
	if (evbuffer_get_length(c->out) > 0) {
		c->txn_sending = 1;
		c->txn.want_body = 0; /* the handler is done with it */
		return;
	}
	txn_sent(c);
}

/* ---- server-made responses ---- */

void
http_txn_simple(struct http_txn *txn, int status, const char *content_type,
    const char *body, size_t body_len)
{
	char fields[256];
	int n;

	MAGIC_CHECK(txn, HTTP_TXN_MAGIC);
	n = snprintf(fields, sizeof(fields), "Content-Type: %s\r\n",
	    content_type != NULL ? content_type : "text/plain");
	http_txn_respond(txn, status, fields, (size_t)n, (int64_t)body_len);
	http_txn_write(txn, body, body_len);
	http_txn_finish(txn);
}

/* Append the Cache-Status of an answer the server made itself. */
static void
own_cache_status(const struct http_server *s, int status, struct cdn_strbuf *f)
{
	const char *r = http_status_reason(status);
	char detail[64];
	size_t i;

	if (s->cache_status_node == NULL)
		return;
	/* An sf-token: "URI Too Long" -> "uri-too-long". */
	for (i = 0; i < sizeof(detail) - 1 && r[i] != '\0'; i++)
		detail[i] = r[i] == ' ' ? '-' : (char)tolower((uint8_t)r[i]);
	detail[i] = '\0';
	cdn_sb_printf(f, "Cache-Status: %s; fwd=bypass; detail=%s\r\n",
	    s->cache_status_node, detail);
}

/* Answer an error the server found itself and close the connection. */
static void
conn_error(struct http_conn *c, int status, const char *why)
{
	struct http_txn *txn = &c->txn;
	struct cdn_strbuf f = {0};
	char body[128];
	int n;

	CDN_LOG(CDN_LOG_INFO, "http", "client %s: %d %s", conn_peer(c), status,
	    why);
	txn->magic = HTTP_TXN_MAGIC;
	txn->conn = c;
	if (txn->start_ns == 0)
		txn->start_ns = cdn_now_ns();
	txn->error = why;
	c->keep_alive = 0;
	c->client_closes = 0;
	c->state = CONN_ACTIVE;
	n = snprintf(
	    body, sizeof(body), "%d %s\n", status, http_status_reason(status));
	cdn_sb_str(&f, "Content-Type: text/plain\r\n");
	own_cache_status(c->srv, status, &f);
	/* Out of memory: the bare answer still goes out. */
	http_txn_respond(
	    txn, status, f.failed ? "" : f.p, f.failed ? 0 : f.len, (int64_t)n);
	cdn_sb_free(&f);
	http_txn_write(txn, body, (size_t)n);
	http_txn_finish(txn);
}

/*
 * The connection waits for more input.  libevent 2.1's bufferevent_openssl
 * reads until OpenSSL holds no decrypted bytes of the current record, or
 * until the input high-watermark, and resumes only when the socket turns
 * readable again.  What OpenSSL still holds would wait for the client's
 * next bytes: the rest of a record after the watermark (a client that has
 * sent its whole body would wait for the body timeout), and, with read-ahead
 * (conn_tls_read_ahead), whole records read from the socket behind the one
 * decrypted (a body sent as a record of its own behind its head, pipelined
 * requests).  Run its read event once by hand when OpenSSL holds bytes (no
 * public call does this; struct bufferevent is libevent's documented but
 * discouraged layout).
 */
static void
conn_tls_want_input(struct http_conn *c)
{
	SSL *ssl;

	if (!c->is_tls || c->tls_handshaking ||
	    !(bufferevent_get_enabled(c->bev) & EV_READ))
		return;
	ssl = bufferevent_openssl_get_ssl(c->bev);
	if (ssl != NULL && SSL_has_pending(ssl))
		event_active(&c->bev->ev_read, EV_READ, 1);
}

/* ---- request body ---- */

int
http_txn_has_body(const struct http_txn *txn)
{
	MAGIC_CHECK(txn, HTTP_TXN_MAGIC);
	return txn->has_body;
}

int64_t
http_txn_body_length(const struct http_txn *txn)
{
	MAGIC_CHECK(txn, HTTP_TXN_MAGIC);
	return txn->req.is_chunked ? -1 : txn->req.content_length;
}

/*
 * Move decoded chunked data from the input into txn->body_buf.  Returns 0,
 * or 400 (with *why) or 413 for a body to refuse.
 */
static int
chunked_fill(struct http_txn *txn, struct evbuffer *in, const char **why)
{
	const struct http_server_limits *lim = &txn->conn->srv->lim;
	size_t avail, win, framing, data;
	unsigned char *p;
	int rc;

	while (!txn->body_done &&
	    evbuffer_get_length(txn->body_buf) < BODY_BUF_MAX) {
		avail = evbuffer_get_length(in);
		if (avail == 0)
			break;
		win = avail < CHUNK_WINDOW ? avail : CHUNK_WINDOW;
		p = evbuffer_pullup(in, (ev_ssize_t)win);
		rc = http_chunked_step(
		    &txn->chunked, (const char *)p, win, &framing, &data, why);
		if (rc == CDN_EINVAL)
			return 400;
		evbuffer_drain(in, framing);
		if (data > 0) {
			txn->body_seen += data;
			if (txn->body_seen > lim->max_body_size)
				return 413;
			evbuffer_remove_buffer(in, txn->body_buf, data);
		}
		if (rc == CDN_OK)
			txn->body_done = 1;
		else if (framing + data == 0)
			break;
	}
	return 0;
}

/*
 * The client closed before <txn>'s body came whole (a request pipelined
 * ahead of its end of file): none will come.  The handler learns through
 * on_abort, from the event loop.
 */
static long
body_cut(struct http_txn *txn)
{
	struct http_conn *c = txn->conn;

	txn->error = "client closed within the body";
	txn->want_body = 0;
	c->keep_alive = 0;
	conn_timer_fire(c);
	return CDN_EINVAL;
}

long
http_txn_body_read(struct http_txn *txn, char *dst, size_t max)
{
	struct http_conn *c;
	struct evbuffer *in;
	const char *why = "bad chunked body";
	size_t n;
	int status;

	MAGIC_CHECK(txn, HTTP_TXN_MAGIC);
	c = txn->conn;
	in = c->in;
	if (!txn->has_body)
		return 0;
	if (!txn->req.is_chunked) {
		n = evbuffer_get_length(in);
		if (n > txn->body_left)
			n = (size_t)txn->body_left;
		if (n > max)
			n = max;
		if (n == 0) {
			if (txn->body_left == 0)
				return 0;
			if (c->client_eof)
				return body_cut(txn);
			txn->want_body = 1;
			conn_tls_want_input(c);
			return CDN_AGAIN;
		}
		evbuffer_remove(in, dst, n);
		conn_input_taken(c);
		txn->body_left -= n;
		if (txn->body_left == 0)
			txn->body_done = 1;
		return (long)n;
	}
	status = chunked_fill(txn, in, &why);
	conn_input_taken(c);
	if (status != 0) {
		txn->error = status == 413 ? "request body too large" : why;
		txn->want_body = 0;
		/* The handler learns through on_abort, from the event loop. */
		c->keep_alive = 0;
		conn_timer_fire(c);
		txn->body_error = status;
		return CDN_EINVAL;
	}
	n = evbuffer_remove(txn->body_buf, dst, max);
	if (n > 0)
		return (long)n;
	if (txn->body_done)
		return 0;
	if (c->client_eof)
		return body_cut(txn);
	txn->want_body = 1;
	conn_tls_want_input(c);
	return CDN_AGAIN;
}

/* ---- response ---- */

static int
fields_have_date(const char *f, size_t len)
{
	const char *end = f + len;

	while (f < end) {
		/* The first letter before the call: most lines are not it. */
		if ((*f == 'D' || *f == 'd') && (size_t)(end - f) >= 5 &&
		    strncasecmp(f, "Date:", 5) == 0)
			return 1;
		f = memchr(f, '\n', (size_t)(end - f));
		if (f == NULL)
			return 0;
		f++;
	}
	return 0;
}

/*
 * "HTTP/1.1 <status> <reason>\r\n" into <line> (STATUS_LINE_MAX bytes);
 * returns its length.  The reasons are short static strings.
 */
static size_t
status_line(char *line, int status)
{
	static const char ok[] = "HTTP/1.1 200 OK\r\n";
	const char *reason;
	size_t rlen, n = 9;

	if (status == 200) { /* nearly every answer */
		memcpy(line, ok, sizeof(ok) - 1);
		return sizeof(ok) - 1;
	}
	reason = http_status_reason(status);
	rlen = strlen(reason);
	memcpy(line, "HTTP/1.1 ", 9);
	n += cdn_fmt_i64(line + n, status);
	line[n++] = ' ';
	if (rlen > STATUS_LINE_MAX - n - 2)
		rlen = STATUS_LINE_MAX - n - 2;
	memcpy(line + n, reason, rlen);
	n += rlen;
	memcpy(line + n, "\r\n", 2);
	return n + 2;
}

void
http_txn_respond(struct http_txn *txn, int status, const char *fields,
    size_t fields_len, int64_t content_length)
{
	struct http_conn *c;
	struct evbuffer *out;
	struct evbuffer_iovec v;
	const char *date = "", *framing = "", *tail;
	char cl[STATUS_LINE_MAX];
	size_t date_len = 0, framing_len = 0, tail_len;
	char *p;

	MAGIC_CHECK(txn, HTTP_TXN_MAGIC);
	c = txn->conn;
	CDN_ASSERT(!txn->responded);
	txn->responded = 1;
	txn->status = status;
	if (c->srv->draining)
		c->keep_alive = 0;
	if (status < 200 || status == 204 || status == 304)
		txn->no_body = 1;
	if (txn->req.method == HTTP_M_HEAD)
		txn->no_body = 1;

	if (!fields_have_date(fields, fields_len)) {
		date = http_date_field();
		date_len = strlen(date);
	}
	if (status < 200 || status == 204 || status == 304) {
		/* RFC 9110 §8.6: no Content-Length on 1xx and 204 */
	} else if (content_length >= 0) {
		memcpy(cl, "Content-Length: ", 16);
		framing_len = 16 + cdn_fmt_i64(cl + 16, content_length);
		memcpy(cl + framing_len, "\r\n", 2);
		framing = cl;
		framing_len += 2;
	} else if (txn->no_body) {
		/* HEAD with an unknown length: nothing to frame */
	} else if (txn->req.version_minor >= 1) {
		framing = "Transfer-Encoding: chunked\r\n";
		framing_len = 28;
		txn->chunked_out = 1;
	} else {
		c->keep_alive = 0; /* HTTP/1.0: the close ends the body */
	}
	if (!c->keep_alive)
		tail = "Connection: close\r\n\r\n";
	else if (txn->req.version_minor == 0)
		tail = "Connection: keep-alive\r\n\r\n";
	else
		tail = "\r\n";
	tail_len = strlen(tail);

	/* The head in one piece of the output: one copy, and one run of the
	 * output buffer's callbacks instead of one per piece. */
	out = c->out;
	if (evbuffer_reserve_space(out,
	        (ev_ssize_t)(STATUS_LINE_MAX + fields_len + date_len +
	            framing_len + tail_len),
	        &v, 1) < 1) {
		CDN_LOG(CDN_LOG_ERR, "http",
		    "client %s: no memory for a response head", conn_peer(c));
		txn->no_body = 1; /* nothing goes out, and the close says so */
		txn->chunked_out = 0;
		c->keep_alive = 0;
		return;
	}
	p = v.iov_base;
	p += status_line(p, status);
	memcpy(p, fields, fields_len);
	p += fields_len;
	memcpy(p, date, date_len);
	p += date_len;
	memcpy(p, framing, framing_len);
	p += framing_len;
	memcpy(p, tail, tail_len);
	p += tail_len;
	v.iov_len = (size_t)(p - (char *)v.iov_base);
	evbuffer_commit_space(out, &v, 1);
	txn->bytes_sent += v.iov_len;
	conn_out_added(c);
}

void
http_txn_interim(
    struct http_txn *txn, int status, const char *fields, size_t fields_len)
{
	char line[160];
	int n;

	MAGIC_CHECK(txn, HTTP_TXN_MAGIC);
	CDN_ASSERT(!txn->responded);
	CDN_ASSERT(status >= 100 && status < 200);
	if (txn->req.version_minor == 0)
		return;
	n = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", status,
	    http_status_reason(status));
	out_add(txn, line, (size_t)n);
	if (fields_len > 0)
		out_add(txn, fields, fields_len);
	out_add(txn, "\r\n", 2);
}

void
http_txn_set_close(struct http_txn *txn)
{
	MAGIC_CHECK(txn, HTTP_TXN_MAGIC);
	CDN_ASSERT(!txn->responded);
	txn->conn->keep_alive = 0;
}

/*
 * OpenSSL writes each record with its own write(2), and with TCP_NODELAY
 * each ends in a short segment: a 100 KiB body left as seven 16 KiB
 * sends, each a segment (on loopback) or a run of full ones and a short
 * one (on a network).  While more than one record is queued the socket is
 * corked, so the records leave in full segments; on_conn_write uncorks
 * once libevent has handed everything to the kernel, which then sends the
 * rest at once.  A response of one record is sent as before.
 */
static void
conn_tls_cork(struct http_conn *c)
{
	int one = 1;

	if (c->tls_corked || evbuffer_get_length(c->out) <= TLS_RECORD_MAX)
		return;
	if (setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &one, sizeof(one)) == 0)
		c->tls_corked = 1;
}

static void
conn_tls_uncork(struct http_conn *c)
{
	int zero = 0;

	c->tls_corked = 0;
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &zero, sizeof(zero));
}

void
http_txn_write(struct http_txn *txn, const void *data, size_t len)
{
	char hex[24];
	int n;

	MAGIC_CHECK(txn, HTTP_TXN_MAGIC);
	CDN_ASSERT(txn->responded);
	if (txn->no_body || len == 0)
		return;
	if (txn->chunked_out) {
		n = snprintf(hex, sizeof(hex), "%zx\r\n", len);
		out_add(txn, hex, (size_t)n);
		out_add(txn, data, len);
		out_add(txn, "\r\n", 2);
	} else {
		out_add(txn, data, len);
	}
	if (txn->conn->is_tls)
		conn_tls_cork(txn->conn);
}

/*
 * libevent 2.1 hands each evbuffer chain to its own SSL_write(), and
 * OpenSSL makes at least one record (and one write(2)) of each: a large
 * body referenced behind its head would send the head, a few hundred
 * bytes, as a record and a TCP segment of its own.  Copy the start of the
 * body behind what is queued, into the same chain, up to one full record:
 * the head travels in the first full record.  Returns how many bytes of
 * <data> it took (0 when nothing small is queued).
 */
static size_t
conn_tls_fill_record(struct http_conn *c, const void *data, size_t len)
{
	struct evbuffer *out = c->out;
	size_t queued = evbuffer_get_length(out);
	size_t n;

	if (queued == 0 || queued >= TLS_RECORD_MAX)
		return 0;
	n = TLS_RECORD_MAX - queued;
	if (n > len)
		n = len;
	/* Room behind the queued bytes first, so the copy joins their chain. */
	if (evbuffer_expand(out, n) != 0 || evbuffer_add(out, data, n) != 0)
		return 0;
	if (evbuffer_get_contiguous_space(out) < queued + n)
		evbuffer_pullup(out, (ev_ssize_t)(queued + n));
	return n;
}

void
http_txn_write_ref(struct http_txn *txn, const void *data, size_t len,
    void (*done)(const void *data, size_t len, void *arg), void *arg)
{
	struct evbuffer *out;
	const char *p = data;
	size_t copied = 0;
	char hex[24];
	int n;

	MAGIC_CHECK(txn, HTTP_TXN_MAGIC);
	CDN_ASSERT(txn->responded);
	if (txn->no_body || len == 0) {
		done(data, len, arg);
		return;
	}
	out = txn->conn->out;
	if (txn->chunked_out) {
		n = snprintf(hex, sizeof(hex), "%zx\r\n", len);
		out_add(txn, hex, (size_t)n);
	}
	if (txn->conn->is_tls)
		copied = conn_tls_fill_record(txn->conn, p, len);
	txn->bytes_sent += copied;
	if (copied == len) {
		done(data, len, arg);
	} else if (evbuffer_add_reference(
	               out, p + copied, len - copied, done, arg) != 0) {
		/* no memory for the reference: copy */
		out_add(txn, p + copied, len - copied);
		done(p + copied, len - copied, arg);
	} else {
		txn->bytes_sent += len - copied;
		conn_out_added(txn->conn);
	}
	if (txn->chunked_out)
		out_add(txn, "\r\n", 2);
	if (txn->conn->is_tls)
		conn_tls_cork(txn->conn);
}

/* Who to tell when a file segment has left the output buffer. */
struct file_done {
	void (*done)(const void *data, size_t len, void *arg);
	void *arg;
	size_t len;
};

static void
on_file_segment_free(
    struct evbuffer_file_segment const *seg, int flags, void *arg)
{
	struct file_done *fd = arg;

	(void)seg;
	(void)flags;
	fd->done(NULL, fd->len, fd->arg);
	free(fd);
}

int
http_txn_write_file(struct http_txn *txn, int fd, uint64_t off, size_t len,
    void (*done)(const void *data, size_t len, void *arg), void *arg)
{
	struct evbuffer_file_segment *seg;
	struct file_done *fdn;

	MAGIC_CHECK(txn, HTTP_TXN_MAGIC);
	CDN_ASSERT(txn->responded);
	if (txn->conn->is_tls || txn->chunked_out)
		return CDN_EINVAL;
	if (txn->no_body || len == 0) {
		done(NULL, len, arg);
		return CDN_OK;
	}
	if (off > (uint64_t)INT64_MAX - len)
		return CDN_EINVAL;
	fdn = malloc(sizeof(*fdn));
	if (fdn == NULL)
		return CDN_ENOMEM;
	/* Only this connection's thread touches the segment: no lock. */
	seg = evbuffer_file_segment_new(
	    fd, (ev_off_t)off, (ev_off_t)len, EVBUF_FS_DISABLE_LOCKING);
	if (seg == NULL) {
		free(fdn);
		return CDN_ENOMEM;
	}
	if (evbuffer_add_file_segment(txn->conn->out, seg, 0, (ev_off_t)len) !=
	    0) {
		evbuffer_file_segment_free(seg);
		free(fdn);
		return CDN_ENOMEM;
	}
	/* Only now: the output buffer holds the segment, and the last of
	 * its references to go calls <done>. */
	fdn->done = done;
	fdn->arg = arg;
	fdn->len = len;
	evbuffer_file_segment_add_cleanup_cb(seg, on_file_segment_free, fdn);
	evbuffer_file_segment_free(seg);
	txn->conn->out_file = 1;
	txn->bytes_sent += len;
	conn_out_added(txn->conn);
	return CDN_OK;
}

size_t
http_txn_out_pending(const struct http_txn *txn)
{
	size_t n;

	MAGIC_CHECK(txn, HTTP_TXN_MAGIC);
	n = evbuffer_get_length(txn->conn->out);
	if (n > HTTP_OUT_HIGH_WATER)
		((struct http_txn *)(uintptr_t)txn)->want_write = 1;
	return n;
}

/*
 * libevent 2.1 hands each evbuffer chain to its own SSL_write(), so a
 * response whose pieces sit in separate chains (copied and referenced
 * writes, chunk framing) costs a TLS record and a write(2) per piece.  A
 * response that fits one record is made contiguous first: copying 16 KiB
 * is cheaper than the extra record and system call.
 */
static void
conn_tls_coalesce(struct http_conn *c)
{
	struct evbuffer *out = c->out;
	size_t n = evbuffer_get_length(out);

	if (n > 0 && n <= TLS_RECORD_MAX &&
	    evbuffer_get_contiguous_space(out) < n)
		evbuffer_pullup(out, (ev_ssize_t)n);
}

void
http_txn_finish(struct http_txn *txn)
{
	MAGIC_CHECK(txn, HTTP_TXN_MAGIC);
	CDN_ASSERT(txn->responded);
	if (txn->chunked_out)
		out_add(txn, "0\r\n\r\n", 5);
	if (txn->conn->is_tls) {
		conn_tls_coalesce(txn->conn);
		conn_tls_cork(txn->conn);
	}
	txn_after_response(txn->conn);
}

void
http_txn_abort(struct http_txn *txn)
{
	struct http_conn *c;

	MAGIC_CHECK(txn, HTTP_TXN_MAGIC);
	c = txn->conn;
	c->keep_alive = 0;
	txn->aborted = 1;
	txn_after_response(c);
}

/* ---- accessors ---- */

const struct http_request *
http_txn_request(const struct http_txn *txn)
{
	MAGIC_CHECK(txn, HTTP_TXN_MAGIC);
	return &txn->req;
}

const char *
http_txn_client_addr(const struct http_txn *txn)
{
	MAGIC_CHECK(txn, HTTP_TXN_MAGIC);
	return conn_peer(txn->conn);
}

int
http_txn_is_tls(const struct http_txn *txn)
{
	MAGIC_CHECK(txn, HTTP_TXN_MAGIC);
	return txn->conn->is_tls;
}

void
http_txn_set_data(struct http_txn *txn, void *data)
{
	MAGIC_CHECK(txn, HTTP_TXN_MAGIC);
	txn->data = data;
}

void *
http_txn_data(const struct http_txn *txn)
{
	MAGIC_CHECK(txn, HTTP_TXN_MAGIC);
	return txn->data;
}

int
http_txn_status(const struct http_txn *txn)
{
	return txn->status;
}

int
http_txn_aborted(const struct http_txn *txn)
{
	return txn->aborted;
}

uint64_t
http_txn_bytes_sent(const struct http_txn *txn)
{
	return txn->bytes_sent;
}

uint64_t
http_txn_start_ns(const struct http_txn *txn)
{
	return txn->start_ns;
}

const char *
http_txn_error(const struct http_txn *txn)
{
	return txn->error;
}

/* ---- connection ---- */

/* Start the transaction for the parsed head in c->head. */
static void
txn_start(struct http_conn *c)
{
	struct http_server *s = c->srv;
	struct http_txn *txn = &c->txn;
	struct http_request *req = &txn->req;

	txn->magic = HTTP_TXN_MAGIC;
	txn->conn = c;
	c->state = CONN_ACTIVE;
	c->keep_alive = req->keep_alive;
	c->client_closes = !req->keep_alive;
	if (!c->timer_idle)
		conn_timer_stop(c); /* an idle one is let run: on_conn_timer */

	if (req->is_chunked) {
		txn->has_body = 1;
		http_chunked_init(
		    &txn->chunked, CHUNK_MAX_LINE, CHUNK_MAX_TRAILER);
		if (txn->body_buf == NULL)
			txn->body_buf = evbuffer_new();
	} else if (req->content_length > 0) {
		if ((uint64_t)req->content_length > s->lim.max_body_size) {
			conn_error(c, 413, "request body too large");
			return;
		}
		txn->has_body = 1;
		txn->body_left = (uint64_t)req->content_length;
	}
	txn->body_done = !txn->has_body;
	if (txn->has_body) {
		conn_set_timeouts(c, 1);
		if (req->expect_continue && req->version_minor >= 1) {
			out_add(txn, "HTTP/1.1 100 Continue\r\n\r\n", 25);
		}
	}
	s->h.on_request(txn, s->arg);
}

/* Parse and start as many buffered requests as complete synchronously. */
static void
conn_dispatch(struct http_conn *c)
{
	struct http_server *s = c->srv;
	struct evbuffer *in = c->in;
	struct http_request *req;
	const char *why = NULL;
	unsigned char *p;
	char *head;
	size_t len;
	int rc, status = 0;

again:
	c->in_dispatch = 1;
	while (c->state == CONN_IDLE && !drain_closes(c)) {
		len = evbuffer_get_length(in);
		if (len == 0)
			break;
		if (len > s->lim.parse.max_header_bytes + 1)
			len = s->lim.parse.max_header_bytes + 1;
		p = evbuffer_pullup(in, (ev_ssize_t)len);
		req = &c->txn.req;
		req->headers = c->fields;
		rc = http_parse_request(
		    (const char *)p, len, &s->lim.parse, req, &status, &why);
		if (rc == CDN_AGAIN) {
			/* The header timeout runs from the first bytes of a
			 * head; one that arrives whole never arms it. */
			if (!c->head_started) {
				c->head_started = 1;
				conn_arm_timer(c, s->lim.header_timeout_ms);
			}
			break;
		}
		c->txn.start_ns = cdn_now_ns();
		if (rc != CDN_OK) {
			conn_error(c, status, why);
			break;
		}
		if (req->head_len > c->head_cap) {
			/* The client sized the head: refuse it, never abort. */
			head = malloc(req->head_len);
			if (head == NULL) {
				conn_error(c, 503, "out of memory");
				break;
			}
			if (c->head != conn_head_inline(c))
				free(c->head);
			c->head = head;
			c->head_cap = req->head_len;
		}
		memcpy(c->head, p, req->head_len);
		request_rebase(req, (const char *)p, c->head);
		evbuffer_drain(in, req->head_len);
		txn_start(c);
	}
	c->in_dispatch = 0;
	conn_input_taken(c);
	if (c->state == CONN_IDLE)
		conn_tls_want_input(c);
	if (c->state == CONN_IDLE && c->client_eof &&
	    evbuffer_get_length(in) > 0)
		CDN_LOG(CDN_LOG_INFO, "http",
		    "client %s: closed within a request head (%zu bytes)",
		    conn_peer(c), evbuffer_get_length(in));
	if (c->state == CONN_IDLE && (drain_closes(c) || c->client_eof))
		conn_close_after_flush(c);
	/* The answer in one writev.  Once drained, a handler waiting for
	 * room hears of it from the loop, not from in here. */
	if (c->flush_armed ? conn_write_out(c)
	                   : evbuffer_get_length(c->out) == 0) {
		if (c->txn_sending) {
			/* Its end, then the next request: a loop, not a
			 * recursion, whatever the number pipelined. */
			c->in_dispatch = 1;
			txn_sent(c);
			c->in_dispatch = 0;
			if (c->state == CONN_CLOSING) {
				conn_input_taken(c);
				conn_linger(c); /* its output is out */
				return;
			}
			if (c->client_eof || drain_closes(c) ||
			    evbuffer_get_length(in) > 0)
				goto again;
			return; /* nothing more to read or write */
		}
		if (c->state == CONN_CLOSING)
			conn_linger(c);
		else if (c->state == CONN_ACTIVE && c->txn.want_write)
			conn_flush_fire(c);
	} else if (c->state == CONN_CLOSING) {
		/* The socket is full: no more requests while it drains. */
		conn_read_set(c, 0);
	}
}

/*
 * Send close_notify once, when nothing else is queued (a record libevent
 * is still retrying would otherwise be interleaved).  SSL_shutdown writes
 * to the non-blocking socket directly; if that fails, the peer sees a
 * plain close, which is what it would get anyway.
 */
static void
conn_tls_close_notify(struct http_conn *c)
{
	SSL *ssl;

	if (!c->is_tls || c->tls_handshaking || c->tls_done ||
	    evbuffer_get_length(c->out) > 0)
		return;
	c->tls_done = 1;
	ssl = bufferevent_openssl_get_ssl(c->bev);
	if (ssl != NULL && SSL_shutdown(ssl) < 0)
		ERR_clear_error(); /* leave nothing for the next connection */
}

/* Bytes of a connection's one allocation (conn_new). */
static size_t
conn_alloc_size(const struct http_server *s)
{
	return sizeof(struct http_conn) +
	    s->lim.parse.max_headers * sizeof(struct http_header) + HEAD_INLINE;
}

/* Free <c>'s memory: it is unlinked, its events and socket gone. */
static void
conn_release(struct http_conn *c)
{
	if (!c->is_tls) {
		evbuffer_free(c->in);
		evbuffer_free(c->out);
	}
	free(c);
}

/*
 * A plain connection's memory and its two (empty) buffers are kept for
 * the next one (s->spare): under churn, the allocations and the buffers'
 * set-up and teardown were a twentieth of a request's instructions.
 */
static void
conn_unlink_and_free(struct http_conn *c)
{
	struct http_server *s = c->srv;

	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	s->nconns--;
	if (s->conn_gauge != NULL)
		atomic_store_explicit(
		    s->conn_gauge, s->nconns, memory_order_relaxed);
	if (s->reading == c)
		s->reading_gone = 1;
	if (c->bev != NULL) {
		conn_tls_close_notify(c);
		bufferevent_free(c->bev);
	}
	if (c->flush_on)
		event_del(&c->flush_ev);
	if (c->eof_on)
		event_del(&c->read_ev);
	conn_timer_stop(c);
	if (!c->is_tls) {
		if (c->read_added)
			event_del(&c->read_ev);
		conn_write_stop(c);
		/* A file segment's or reference's owner hears of it here. */
		evbuffer_drain(c->in, evbuffer_get_length(c->in));
		evbuffer_drain(c->out, evbuffer_get_length(c->out));
		close(c->fd);
	}
	if (c->txn.body_buf != NULL)
		evbuffer_free(c->txn.body_buf);
	if (c->head != conn_head_inline(c))
		free(c->head);
	MAGIC_WIPE(c);
	if (!c->is_tls && s->nspare < CONN_SPARE_MAX && !s->draining) {
		c->next = s->spare;
		s->spare = c;
		s->nspare++;
		CDN_POISON(c, conn_alloc_size(s));
	} else {
		conn_release(c);
	}
	if (s->nconns == 0 && s->draining && s->on_empty != NULL) {
		void (*cb)(void *) = s->on_empty;

		s->on_empty = NULL;
		cb(s->on_empty_arg);
	}
}

/* Free now; an active txn is aborted first (the handler lets go). */
static void
conn_free(struct http_conn *c)
{
	struct http_server *s = c->srv;
	size_t unsent;

	MAGIC_CHECK(c, HTTP_CONN_MAGIC);
	if (c->state == CONN_ACTIVE) {
		c->state = CONN_CLOSING;
		c->keep_alive = 0;
		/* A txn being sent is over for the handler already. */
		if (!c->txn_sending && s->h.on_abort != NULL)
			s->h.on_abort(&c->txn, s->arg);
		/* The log counts what the socket took: a client gone
		 * mid-answer leaves the rest unsent (nginx's $bytes_sent). */
		unsent = evbuffer_get_length(c->out);
		c->txn.bytes_sent -=
		    unsent < c->txn.bytes_sent ? unsent : c->txn.bytes_sent;
		c->txn.aborted = 1;
		txn_end(c);
	}
	conn_unlink_and_free(c);
}

/*
 * Close <c> once its output is out.  Reading stops meanwhile, except on a
 * plain connection whose output is written now: it goes on to linger,
 * which reads again, and stopping in between would cost two epoll_ctl.
 */
static void
conn_close_after_flush(struct http_conn *c)
{
	c->state = CONN_CLOSING;
	if (c->in_dispatch)
		return; /* the dispatch loop's end writes and lingers */
	if (c->flush_armed ? conn_write_out(c)
	                   : evbuffer_get_length(c->out) == 0) {
		conn_linger(c);
		return;
	}
	conn_read_set(c, 0);
}

/*
 * Whether <c>'s socket has sent everything it was given.  A TLS client
 * may send its close_notify right behind a request that asked for the
 * close and read the answer after (TLS 1.3 lets a side close while the
 * other sends on).  Reaching a closed socket, those bytes make the kernel
 * answer with a reset and drop what it had not sent: the answer's end.
 */
static int
conn_sent_all(const struct http_conn *c)
{
	int unsent;

	return ioctl(c->fd, SIOCOUTQNSD, &unsent) == 0 && unsent == 0;
}

/*
 * conn_close_is_clean over TLS.  A peek would mostly find the client's
 * close_notify, which clients send as soon as they have the answer to a
 * request that asked for the close.  Read instead: the close_notify or
 * the end of the connection (which edge_tls.c has OpenSSL read as one)
 * leave nothing unread for a reset to be sent for, and so does nothing
 * yet once the answer has left the socket (conn_sent_all); our
 * close_notify goes as <c> is freed, and one the client sends later finds
 * the socket closed, as it does with nginx.  Application bytes (discarded,
 * as lingering discards them), a record partly received or a broken one,
 * or nothing yet with the answer still in the socket, mean lingering.
 */
static int
conn_tls_close_is_clean(struct http_conn *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	char b;
	int n, err;

	if (ssl == NULL)
		return 0;
	n = SSL_read(ssl, &b, 1);
	if (n > 0)
		return 0;
	err = SSL_get_error(ssl, n);
	ERR_clear_error(); /* leave nothing for the next connection */
	if (err == SSL_ERROR_WANT_READ)
		return !SSL_has_pending(ssl) && conn_sent_all(c);
	if (err == SSL_ERROR_ZERO_RETURN)
		return 1;
	c->tls_done = 1; /* no close_notify on a broken connection */
	return 0;
}

/*
 * Whether <c> may close at once rather than linger: the client asked for
 * the close, its request was read whole, and it has sent nothing since,
 * so no RST can overtake the response (nginx's "lingering_close on").
 * Inside the read that brought the request, a short read has just said
 * so; otherwise a peek costs one recv(2).  Lingering costs four system
 * calls and a loop turn more.
 */
static int
conn_close_is_clean(struct http_conn *c)
{
	char b;
	ssize_t n;

	if (!c->client_closes || c->srv->draining ||
	    evbuffer_get_length(c->in) > 0)
		return 0;
	if (c->is_tls)
		return conn_tls_close_is_clean(c);
	if (c->srv->reading == c && c->read_drained)
		return 1;
	n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	return n == 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

static void
conn_linger(struct http_conn *c)
{
	c->state = CONN_LINGER;
	if (conn_close_is_clean(c)) {
		/* Nothing more to read: read_ev stays out after the first
		 * read (on_conn_readable), or leaves now, not at the free. */
		if (!c->is_tls)
			conn_read_set(c, 0);
		/* Callers up the stack still hold c: freed as the read that
		 * brought the request returns, or else from the loop. */
		if (c->srv->reading == c)
			c->read_frees = 1;
		else
			conn_timer_fire(c);
		return;
	}
	if (c->is_tls)
		conn_tls_close_notify(c);
	shutdown(c->fd, SHUT_WR);
	if (c->is_tls)
		bufferevent_set_timeouts(c->bev, NULL, NULL);
	c->body_timeout = 0;
	conn_read_set(c, 1);
	conn_arm_timer(c, LINGER_MS);
}

static void
conn_tls_report(struct http_conn *c, enum http_tls_result r)
{
	if (c->srv->h.on_tls_handshake != NULL)
		c->srv->h.on_tls_handshake(r, c->srv->arg);
}

/* Whether ALPN chose HTTP/2 (RFC 9113 §3.2: "h2"). */
static int
conn_tls_is_h2(SSL *ssl)
{
	const unsigned char *p;
	unsigned int n;

	SSL_get0_alpn_selected(ssl, &p, &n);
	return n == 2 && memcmp(p, "h2", 2) == 0;
}

/*
 * Give the connection to the handler's HTTP/2 side: its bufferevent (with
 * the SSL and the socket) leaves this server, which forgets it.  A
 * handler without one cannot have offered h2: close.
 */
static void
conn_hand_over_h2(struct http_conn *c)
{
	struct http_server *s = c->srv;
	struct bufferevent *bev = c->bev;
	char peer[sizeof(c->peer)];

	if (s->h.on_h2 == NULL) {
		conn_free(c);
		return;
	}
	bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	bufferevent_set_timeouts(bev, NULL, NULL);
	memcpy(peer, conn_peer(c), sizeof(peer));
	c->bev = NULL;
	conn_unlink_and_free(c);
	s->h.on_h2(bev, peer, s->arg);
}

/*
 * With read-ahead OpenSSL reads what the socket holds, not a record's
 * 5-byte header and then its rest: the ClientHello in one read(2) instead
 * of two, the client's ChangeCipherSpec, Finished and often its request in
 * one instead of four or six, and one per request after.  The records it
 * reads ahead are ours to drain (conn_tls_want_input); an h2 connection
 * gets them with its bufferevent, and reads one record at a time from then
 * on (edge_h2.c drains what is left).
 */
static void
conn_tls_read_ahead(SSL *ssl, int on)
{
	SSL_set_read_ahead(ssl, on);
}

/*
 * libevent 2.1 adds the bufferevent's write event when a handshake starts
 * and again when it ends (its bufferevent_enable of what is enabled), and
 * takes it off at the next loop turn when there is nothing to write: an
 * epoll_ctl, an epoll_wait woken by EPOLLOUT and another epoll_ctl, twice
 * per connection.  Take it off at once: the changelist then never sends
 * the add.  EV_WRITE stays enabled, so output still goes (conn_tls_write_now
 * and the event libevent adds when a write does not finish), and the
 * handshake adds the event itself when OpenSSL wants to write.
 */
static void
conn_tls_write_idle(struct http_conn *c)
{
	if (evbuffer_get_length(c->out) == 0)
		event_del(&c->bev->ev_write);
}

/*
 * The handshake ended: BEV_EVENT_CONNECTED, or an error, EOF or timeout.
 * libevent has moved OpenSSL's error queue into the bufferevent.
 */
static void
conn_tls_handshake_end(struct http_conn *c, short what)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	unsigned long err, first = 0;
	char why[256];
	int serr = EVUTIL_SOCKET_ERROR();

	if (what & BEV_EVENT_CONNECTED) {
		c->tls_handshaking = 0;
		conn_tls_report(c,
		    ssl != NULL && SSL_session_reused(ssl) ? HTTP_TLS_RESUMED
		                                           : HTTP_TLS_FULL);
		if (ssl != NULL && conn_tls_is_h2(ssl)) {
			conn_tls_read_ahead(ssl, 0);
			conn_hand_over_h2(c);
			return;
		}
		conn_tls_write_idle(c);
		/* The request may have come with the client's Finished. */
		conn_tls_want_input(c);
		return;
	}
	c->tls_done = 1;
	while ((err = bufferevent_get_openssl_error(c->bev)) != 0)
		if (first == 0)
			first = err;
	ERR_clear_error();
	if (first != 0) {
		ERR_error_string_n(first, why, sizeof(why));
		CDN_LOG(CDN_LOG_INFO, "http",
		    "client %s: TLS handshake failed: %s", conn_peer(c), why);
		conn_tls_report(c, HTTP_TLS_FAILED);
	} else if (what & BEV_EVENT_TIMEOUT) {
		CDN_LOG(CDN_LOG_INFO, "http",
		    "client %s: TLS handshake timeout", conn_peer(c));
		conn_tls_report(c, HTTP_TLS_TIMEOUT);
	} else {
		CDN_LOG(CDN_LOG_DEBUG, "http",
		    "client %s: closed during the TLS handshake (%s)",
		    conn_peer(c),
		    (what & BEV_EVENT_EOF)
		        ? "EOF"
		        : evutil_socket_error_to_string(serr));
		conn_tls_report(c, HTTP_TLS_CLOSED);
	}
	conn_free(c);
}

static void
on_conn_timer(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *c = arg;
	struct http_txn *txn = &c->txn;
	uint64_t now;
	int status, idle;

	(void)fd;
	(void)what;
	MAGIC_CHECK(c, HTTP_CONN_MAGIC);
	c->timer_on = 0; /* not persistent: neither added nor active now */
	idle = c->timer_idle && !c->timer_fired;
	c->timer_idle = 0;
	c->timer_fired = 0;
	if (idle) {
		/* A keep-alive timeout that requests came within: none
		 * while one is under way, or the rest of the latest. */
		if (c->state != CONN_IDLE)
			return;
		now = cdn_now_ns();
		if (c->idle_until_ns > now) {
			conn_arm_timer(c,
			    (c->idle_until_ns - now + NS_PER_MS - 1) /
			        NS_PER_MS);
			c->timer_idle = 1;
			return;
		}
	}
	switch (c->state) {
	case CONN_IDLE:
		if (c->tls_handshaking) {
			CDN_LOG(CDN_LOG_INFO, "http",
			    "client %s: TLS handshake timeout", conn_peer(c));
			conn_tls_report(c, HTTP_TLS_TIMEOUT);
			conn_free(c);
			return;
		}
		if (c->head_started && evbuffer_get_length(c->in) > 0) {
			conn_error(c, 408, "request head timeout");
			return;
		}
		conn_free(c);
		return;
	case CONN_ACTIVE:
		if (c->txn_sending)
			return; /* answered: its output's end ends it */
		/* A body error found inside http_txn_body_read. */
		status = txn->body_error;
		if (c->srv->h.on_abort != NULL)
			c->srv->h.on_abort(txn, c->srv->arg);
		if (!txn->responded && status >= 400) {
			txn->body_done = 1;
			conn_error(c, status, txn->error);
		} else {
			http_txn_abort(txn);
		}
		return;
	case CONN_CLOSING:
		if (evbuffer_get_length(c->out) == 0)
			conn_linger(c);
		return;
	case CONN_LINGER:
		conn_free(c);
		return;
	}
}

static void
on_conn_read(struct bufferevent *bev, void *arg)
{
	struct http_conn *c = arg;
	struct http_txn *txn = &c->txn;

	(void)bev;
	MAGIC_CHECK(c, HTTP_CONN_MAGIC);
	if (c->tls_writing) {
		c->tls_read = 1;
		return;
	}
	switch (c->state) {
	case CONN_IDLE:
		conn_dispatch(c);
		return;
	case CONN_ACTIVE:
		if (txn->want_body) {
			txn->want_body = 0;
			c->srv->h.on_body(txn, c->srv->arg);
		}
		return;
	case CONN_CLOSING:
		return;
	case CONN_LINGER:
		evbuffer_drain(c->in, evbuffer_get_length(c->in));
		conn_input_taken(c);
		return;
	}
}

static void
on_conn_write(struct bufferevent *bev, void *arg)
{
	struct http_conn *c = arg;
	struct http_txn *txn = &c->txn;

	(void)bev;
	MAGIC_CHECK(c, HTTP_CONN_MAGIC);
	if (c->tls_writing) {
		c->tls_wrote = 1;
		return;
	}
	if (c->tls_corked && evbuffer_get_length(c->out) == 0)
		conn_tls_uncork(c);
	/* Plain: the next response is written directly again. */
	if (!c->is_tls && evbuffer_get_length(c->out) == 0)
		conn_write_stop(c);
	if (c->state == CONN_CLOSING) {
		if (evbuffer_get_length(c->out) == 0)
			conn_linger(c);
		return;
	}
	if (c->txn_sending) {
		if (evbuffer_get_length(c->out) == 0)
			txn_sent(c);
		return;
	}
	if (c->state == CONN_ACTIVE && txn->want_write) {
		txn->want_write = 0;
		if (c->srv->h.on_writable != NULL)
			c->srv->h.on_writable(txn, c->srv->arg);
	}
}

/*
 * Whether <c> still owes the client answers when the client's end of file
 * comes: its request is read whole or may be (its body), or, between
 * requests, an answer waits for the socket or requests wait to be
 * parsed.  Over TLS both happen: libevent's OpenSSL bufferevent reports
 * the end of file it read behind a request before it runs the read
 * callback for that request, and it reads on while an answer is queued.
 */
static int
conn_owes_answers(const struct http_conn *c)
{
	if (c->state == CONN_ACTIVE)
		return 1; /* a body not read whole: conn_body_eof */
	return c->state == CONN_IDLE &&
	    (evbuffer_get_length(c->in) > 0 || evbuffer_get_length(c->out) > 0);
}

/*
 * The client's end of file came while <c>'s request body was read: no
 * more will come, but the rest of the body may be in the input already
 * (plain: not yet taken by the handler; TLS: libevent's OpenSSL
 * bufferevent reports the end of file before it adds the bytes read with
 * it, and runs the read callback after).  A handler waiting for the body
 * then reads what is there, or learns of the cut (body_cut): over TLS
 * from the loop, once those bytes are in.
 */
static void
conn_body_eof(struct http_conn *c)
{
	if (!c->txn.want_body)
		return; /* the handler's next read tells */
	if (c->is_tls) {
		event_active(&c->read_ev, EV_READ, 1);
		c->eof_on = 1;
		return;
	}
	c->txn.want_body = 0;
	c->srv->h.on_body(&c->txn, c->srv->arg);
}

/*
 * libevent 2.1's OpenSSL bufferevent stops writing as well as reading when
 * it reads the end of the connection (close_notify, or a FIN), and starts
 * again only when output is added to an empty buffer.  An answer still
 * queued there (a client that half-closed behind a large one, or while
 * its writes waited for the socket) would stay unsent, and with no write
 * event pending no send timeout would end the connection either.  Start
 * the write event again (with its timeout).
 */
static void
conn_tls_write_on(struct http_conn *c)
{
	if (c->is_tls && evbuffer_get_length(c->out) > 0)
		bufferevent_enable(c->bev, EV_WRITE);
}

/* read_ev of a TLS connection: conn_body_eof from the loop. */
static void
on_conn_tls_eof(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *c = arg;

	(void)fd;
	(void)what;
	MAGIC_CHECK(c, HTTP_CONN_MAGIC);
	c->eof_on = 0;
	if (c->state == CONN_ACTIVE && c->txn.want_body) {
		c->txn.want_body = 0;
		c->srv->h.on_body(&c->txn, c->srv->arg);
	}
}

static void
on_conn_event(struct bufferevent *bev, short what, void *arg)
{
	struct http_conn *c = arg;
	struct http_txn *txn = &c->txn;

	(void)bev;
	MAGIC_CHECK(c, HTTP_CONN_MAGIC);
	if (c->tls_writing) {
		c->tls_event |= what;
		return;
	}
	if (c->tls_handshaking) {
		conn_tls_handshake_end(c, what);
		return;
	}
	if (what & BEV_EVENT_ERROR)
		c->tls_done = 1; /* no close_notify on a broken connection */
	if (c->state == CONN_LINGER || c->state == CONN_CLOSING) {
		conn_free(c);
		return;
	}
	/* An end of file met by a write (a TLS client gone without
	 * close_notify: libevent's dirty shutdown) takes no answer. */
	if ((what & BEV_EVENT_EOF) &&
	    !(what & (BEV_EVENT_ERROR | BEV_EVENT_WRITING)) &&
	    conn_owes_answers(c)) {
		/* Half-close after complete requests: answer, then close. */
		c->client_eof = 1;
		conn_read_set(c, 0);
		conn_tls_write_on(c);
		if (c->state == CONN_IDLE)
			conn_dispatch(c);
		else if (!txn->body_done)
			conn_body_eof(c);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		txn->error = (what & BEV_EVENT_READING) ? "client body timeout"
		                                        : "client send timeout";
	conn_free(c);
}

/* Input arrived on plain <c>: hand it on.  Returns 0 if <c> is gone
 * after, 1 if it is still there. */
static int
conn_read_got(struct http_conn *c)
{
	struct http_server *s = c->srv;
	int gone;

	if (evbuffer_get_length(c->in) >= conn_in_limit(c)) {
		c->read_full = 1;
		conn_read_sync(c);
	}
	s->reading = c;
	s->reading_gone = 0;
	on_conn_read(c->bev, c);
	gone = s->reading_gone;
	s->reading = NULL;
	s->reading_gone = 0;
	if (!gone && c->read_frees) {
		/* No loop turn to free it (conn_linger). */
		conn_free(c);
		return 0;
	}
	return !gone;
}

/*
 * Whether a new plain connection is read in the turn that accepted it
 * (http_server_adopt).  That read saves the read event's add, its delete
 * and a wake-up when the request is already in; when it is not, it is a
 * recv() that returns EAGAIN, and the connection waits for epoll as it
 * would have anyway.  A client on another core that connects and then
 * writes is often slower than the accept: under wrk's churn nine first
 * reads in ten came back empty.  So the reads are kept while a moving
 * estimate of their hit rate is at least FIRST_READ_KEEP, and otherwise
 * tried on one connection in FIRST_READ_PROBE, which keeps the estimate
 * current.
 */
static int
first_read_pays(struct http_server *s)
{
	if (s->first_read_hits >= FIRST_READ_KEEP)
		return 1;
	return s->first_read_skips++ % FIRST_READ_PROBE == 0;
}

/* A first read found input (or the end of file): <hit>, or nothing. */
static void
first_read_note(struct http_server *s, int hit)
{
	s->first_read_hits -= s->first_read_hits / FIRST_READ_DECAY;
	if (hit)
		s->first_read_hits += FIRST_READ_ONE / FIRST_READ_DECAY;
}

/* read_ev: what the bufferevent's read callbacks did for plain <c>. */
static void
on_conn_readable(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *c = arg;
	int first;
	ssize_t n;

	(void)fd;
	MAGIC_CHECK(c, HTTP_CONN_MAGIC);
	if (what & EV_TIMEOUT) {
		conn_read_set(c, 0);
		on_conn_event(c->bev, BEV_EVENT_READING | BEV_EVENT_TIMEOUT, c);
		return;
	}
	first = c->read_first;
	c->read_first = 0;
	n = conn_read_in(c);
	if (first)
		first_read_note(c->srv, n >= 0);
	/* After the first read, read_ev is added if reading is still
	 * wanted (conn_start left it out). */
	if (n > 0) {
		if (conn_read_got(c) && first)
			conn_read_sync(c);
		return;
	}
	if (n < 0 &&
	    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
		if (first) {
			conn_arm_timer(c, c->srv->lim.header_timeout_ms);
			conn_read_sync(c);
		}
		return;
	}
	conn_read_set(c, 0);
	on_conn_event(c->bev,
	    BEV_EVENT_READING | (n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR), c);
}

/* Whether a new connection may be adopted (logs why not). */
static int
server_admits(struct http_server *s)
{
	if (s->nconns >= s->lim.max_connections || s->draining) {
		CDN_LOG(CDN_LOG_WARN, "http", "connection limit %u reached",
		    s->lim.max_connections);
		return 0;
	}
	return 1;
}

/*
 * A new connection from <peer>, before its buffers or bufferevent exist.
 * A plain one may be a spare, and then comes with its two empty buffers
 * (c->in, c->out); otherwise both are NULL.
 */
static struct http_conn *
conn_new(struct http_server *s, const struct sockaddr *peer, int plain)
{
	struct http_conn *c;
	struct evbuffer *in = NULL, *out = NULL;
	size_t fields_len = s->lim.parse.max_headers * sizeof(*c->fields);

	_Static_assert(sizeof(*c) % _Alignof(struct http_header) == 0,
	    "the fields array can follow the connection");
	if (plain && s->spare != NULL) {
		c = s->spare;
		CDN_UNPOISON(c, conn_alloc_size(s));
		s->spare = c->next;
		s->nspare--;
		in = c->in;
		out = c->out;
		memset(c, 0, offsetof(struct http_conn, timer));
		c->events_kept = 1;
	} else {
		/* One allocation, of which only the struct needs zeroing:
		 * the parser fills the fields it reports, and the head is
		 * copied in. */
		c = cdn_xmalloc(sizeof(*c) + fields_len + HEAD_INLINE);
		memset(c, 0, sizeof(*c));
	}
	c->in = in;
	c->out = out;
	c->fields = (struct http_header *)(c + 1);
	c->head = (char *)c->fields + fields_len;
	c->head_cap = HEAD_INLINE;
	c->magic = HTTP_CONN_MAGIC;
	c->srv = s;
	c->keep_alive = 1;
	if (peer->sa_family == AF_INET)
		memcpy(&c->peer_addr.in4, peer, sizeof(c->peer_addr.in4));
	else if (peer->sa_family == AF_INET6)
		memcpy(&c->peer_addr.in6, peer, sizeof(c->peer_addr.in6));
	else
		c->peer_addr.sa.sa_family = AF_UNSPEC;
	return c;
}

/* Set up <c>'s events and link it; the caller arms its timer. */
static void
conn_start(struct http_server *s, struct http_conn *c)
{
	if (!c->events_kept) {
		evtimer_assign(&c->timer, s->base, on_conn_timer, c);
		event_assign(&c->flush_ev, s->base, -1, 0, on_conn_flush, c);
	}
	if (c->is_tls) {
		c->fd = bufferevent_getfd(c->bev);
		c->in = bufferevent_get_input(c->bev);
		c->out = bufferevent_get_output(c->bev);
		bufferevent_setcb(
		    c->bev, on_conn_read, on_conn_write, on_conn_event, c);
		event_assign(&c->read_ev, s->base, -1, 0, on_conn_tls_eof, c);
		bufferevent_setwatermark(c->bev, EV_WRITE, OUT_LOW_WATER, 0);
		/* libevent writes 16 KiB per loop turn by default: a 100 KiB
		 * hit would take seven turns instead of one. */
		bufferevent_set_max_single_write(c->bev, 1024 * 1024);
		/* Reading stops at the limit: body backpressure. */
		bufferevent_setwatermark(c->bev, EV_READ, 0, conn_in_limit(c));
		bufferevent_set_max_single_read(c->bev, READ_MAX);
		conn_set_timeouts(c, 0);
		bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	} else {
		conn_read_assign(c);
		event_assign(&c->write_ev, s->base, c->fd,
		    EV_WRITE | EV_PERSIST, on_conn_writable, c);
		/* Reading is wanted, but read_ev is added only after the first
		 * read, which the caller runs at once (on_conn_readable): a
		 * request answered and closed in it then costs no event_add
		 * and event_del. */
		c->read_on = 1;
	}

	c->next = s->conns;
	if (s->conns != NULL)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	if (s->conn_gauge != NULL)
		atomic_store_explicit(
		    s->conn_gauge, s->nconns, memory_order_relaxed);
}

void
http_server_adopt(
    struct http_server *s, int fd, const struct sockaddr *peer, int peerlen)
{
	struct http_conn *c;

	MAGIC_CHECK(s, HTTP_SERVER_MAGIC);
	(void)peerlen;
	if (!server_admits(s)) {
		close(fd);
		return;
	}
	c = conn_new(s, peer, 1);
	/* No bufferevent: read_ev reads, the output is written at once
	 * (conn_write_out) and write_ev waits only on a full socket, so a
	 * bufferevent's set-up and teardown (a fifth of a churn request's
	 * instructions) bought nothing. */
	c->fd = fd;
	if (c->in == NULL) {
		c->in = evbuffer_new();
		c->out = evbuffer_new();
		/* File segments are then sent with sendfile, not copied. */
		if (c->out != NULL)
			evbuffer_set_flags(c->out, EVBUFFER_FLAG_DRAINS_TO_FD);
	}
	if (c->in == NULL || c->out == NULL) {
		CDN_LOG(CDN_LOG_ERR, "http", "client %s: no memory for buffers",
		    conn_peer(c));
		if (c->in != NULL)
			evbuffer_free(c->in);
		if (c->out != NULL)
			evbuffer_free(c->out);
		close(fd);
		MAGIC_WIPE(c);
		free(c);
		return;
	}
	conn_start(s, c);
	/* A client sends its request right after connecting: read it in
	 * this loop turn, once the listener has taken every connection
	 * waiting (the last of them has had the most time to send).  A
	 * request answered and closed in this turn then costs no epoll_wait,
	 * and the read event is never added.  Otherwise, or when such reads
	 * have mostly found nothing (first_read_pays), the header timeout
	 * runs from here, and the read event waits for the request. */
	if (first_read_pays(s)) {
		c->read_first = 1;
		event_active(&c->read_ev, EV_READ, 1);
		return;
	}
	conn_arm_timer(c, s->lim.header_timeout_ms);
	conn_read_sync(c);
}

void
http_server_adopt_tls(struct http_server *s, int fd,
    const struct sockaddr *peer, int peerlen, SSL *ssl)
{
	struct http_conn *c;

	MAGIC_CHECK(s, HTTP_SERVER_MAGIC);
	CDN_ASSERT(ssl != NULL);
	(void)peerlen;
	if (!server_admits(s)) {
		SSL_free(ssl);
		close(fd);
		return;
	}
	c = conn_new(s, peer, 0);
	/* On success the bufferevent owns ssl and fd (CLOSE_ON_FREE). */
	c->bev = bufferevent_openssl_socket_new(
	    s->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		/* libevent 2.1 has freed ssl (CLOSE_ON_FREE) but not the fd,
		 * which ssl's BIO did not own. */
		CDN_LOG(CDN_LOG_ERR, "http", "client %s: cannot set up TLS",
		    conn_peer(c));
		close(fd);
		MAGIC_WIPE(c);
		free(c);
		return;
	}
	/* A client that closes without close_notify ends the connection as
	 * a plain FIN does; framing, not the alert, tells a whole response. */
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	c->is_tls = 1;
	c->tls_handshaking = 1;
	conn_tls_read_ahead(ssl, 1);
	conn_start(s, c);
	conn_arm_timer(c, s->lim.header_timeout_ms);
	conn_tls_write_idle(c);
	/* A client sends its ClientHello right after connecting: read it in
	 * this loop turn (as http_server_adopt reads a request), so that the
	 * server's flight goes without a wait in epoll first. */
	event_active(&c->bev->ev_read, EV_READ, 1);
}

struct http_server *
http_server_new(struct event_base *base, const struct http_server_limits *lim,
    const struct http_handler *h, void *arg)
{
	struct http_server *s = cdn_xcalloc(1, sizeof(*s));

	CDN_ASSERT(h->on_request != NULL);
	s->magic = HTTP_SERVER_MAGIC;
	s->base = base;
	s->lim = *lim;
	s->h = *h;
	s->arg = arg;
	s->first_read_hits = FIRST_READ_ONE;
	return s;
}

void
http_server_set_cache_status(struct http_server *s, const char *node)
{
	MAGIC_CHECK(s, HTTP_SERVER_MAGIC);
	free(s->cache_status_node);
	s->cache_status_node = node != NULL ? cdn_xstrdup(node) : NULL;
}

/* Free the connections kept for reuse. */
static void
conn_spare_free(struct http_server *s)
{
	struct http_conn *c;

	while ((c = s->spare) != NULL) {
		CDN_UNPOISON(c, conn_alloc_size(s));
		s->spare = c->next;
		conn_release(c);
	}
	s->nspare = 0;
}

void
http_server_close_all(struct http_server *s)
{
	MAGIC_CHECK(s, HTTP_SERVER_MAGIC);
	while (s->conns != NULL)
		conn_free(s->conns);
}

void
http_server_drain(struct http_server *s, void (*on_empty)(void *arg), void *arg)
{
	struct http_conn *c, *next;

	MAGIC_CHECK(s, HTTP_SERVER_MAGIC);
	s->draining = 1;
	conn_spare_free(s);
	s->on_empty = on_empty;
	s->on_empty_arg = arg;
	for (c = s->conns; c != NULL; c = next) {
		next = c->next;
		if (c->state == CONN_IDLE && drain_closes(c))
			conn_close_after_flush(c);
	}
	if (s->nconns == 0 && s->on_empty != NULL) {
		s->on_empty = NULL;
		on_empty(arg);
	}
}

unsigned
http_server_conn_count(const struct http_server *s)
{
	MAGIC_CHECK(s, HTTP_SERVER_MAGIC);
	return s->nconns;
}

void
http_server_set_conn_gauge(struct http_server *s, atomic_uint *gauge)
{
	MAGIC_CHECK(s, HTTP_SERVER_MAGIC);
	s->conn_gauge = gauge;
	if (gauge != NULL)
		atomic_store_explicit(gauge, s->nconns, memory_order_relaxed);
}

void
http_server_free(struct http_server **sp)
{
	struct http_server *s = *sp;

	*sp = NULL;
	if (s == NULL)
		return;
	s->on_empty = NULL;
	http_server_close_all(s);
	conn_spare_free(s);
	free(s->cache_status_node);
	MAGIC_WIPE(s);
	free(s);
}
