/*
 * HTTP/2 clients (edge/edge_h2.h) with libnghttp2: the framing, HPACK,
 * flow-control windows and most of RFC 9113's checks are the library's;
 * this file is the glue to the worker's loop and to the edge's request
 * path, plus the limits the library leaves to its user.
 *
 * Objects: a struct h2_conn per connection (an nghttp2 server session over
 * a bufferevent, plain or TLS) holds a list of struct h2_stream, one per
 * client stream, each a client stream of edge_stream.h.  Everything runs
 * on the worker thread that accepted the connection.
 *
 * A stream's life: created at its first HEADERS (on_begin_headers); its
 * request is handed to the edge (edge_proxy_begin) when the header block
 * is complete; it ends in on_stream_close, after the last frame went out
 * or a reset either way, which is where edge_proxy_end is called (and
 * edge_proxy_aborted first if the edge was still producing).  A
 * connection that closes ends its streams the same way first.
 *
 * Output: nghttp2_session_send() runs from one place (conn_flush), never
 * inside a library callback: what the edge writes only queues and
 * activates the connection's flush event, so one loop turn's writes of
 * every stream leave together.  Body bytes wait in their stream's queue
 * of segments and DATA frames are framed here (NGHTTP2_DATA_FLAG_NO_COPY,
 * on_send_data), never copied into nghttp2's frame.  On a plain
 * connection frames go to the bufferevent's output, kept under
 * OUT_HIGH_WATER (nghttp2 waits when it is over: WOULDBLOCK), and the
 * output evbuffer references the segments.
 *
 * Over TLS the output bypasses the bufferevent (which still reads): frames
 * are copied into one record-sized staging buffer per worker, and each
 * full record is handed to SSL_write() at once, while it is in the CPU's
 * cache; OpenSSL copies it into its write buffer (released between writes,
 * so every connection reuses the same warm memory), encrypts it there and
 * passes it to the connection's gathering BIO (edge_tls_out.h), written in
 * 64 KiB writes.  A record holds a frame header and payload side by side
 * because a 16 KiB DATA frame and its header do not fit one record, and
 * OpenSSL makes at least one record of each SSL_write().  Room in the
 * gathered output is reserved before a frame is staged (tls_room), so an
 * SSL_write() never waits halfway: nghttp2 is told WOULDBLOCK instead, the
 * output is written, and framing goes on while the socket takes it.  The
 * record partly filled at the end of a flush is written then: records are
 * full but the last of what one flush framed.
 *
 * Backpressure and memory: congested() is true while a stream has more
 * than STREAM_HIGH_WATER queued or the connection CONN_HIGH_WATER, so a
 * stream whose window the client keeps closed stops the edge (the fill
 * pauses its origin transfer) and a connection holds at most about
 * CONN_HIGH_WATER plus one write per stream, and at most OUT_HIGH_WATER of
 * output, or one gathered TLS buffer (TLS_REC_BUF), whatever its streams
 * do.
 * Request bodies are flow-controlled by what the edge has read (no
 * automatic WINDOW_UPDATE): a connection buffers at most CONN_WINDOW of
 * them.
 *
 * Limits and attacks (docs/metrics.md, edge_h2_refused_total): the
 * library refuses streams over SETTINGS_MAX_CONCURRENT_STREAMS, malformed
 * header sections (pseudo-headers, connection-specific fields, upper
 * case), Content-Length disagreeing with DATA, HPACK errors, CONTINUATION
 * floods and unread SETTINGS/PING ACKs; those are counted here.  Added
 * here, as nginx and h2o do: a header-list size limit (431), budgets per
 * connection (edge_h2_limits.c) for streams the client resets before their
 * answer (rapid reset, CVE-2023-44487) and for SETTINGS, PING, PRIORITY
 * and empty DATA frames (GOAWAY ENHANCE_YOUR_CALM), a send stall limit per
 * stream (slow read) and idle timeouts.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/bufferevent_struct.h> /* ev_read: see conn_tls_drain */
#include <event2/event.h>
#include <event2/event_struct.h> /* struct event in h2_release */
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "edge/edge_deliver.h"
#include "edge/edge_h2.h"
#include "edge/edge_h2_limits.h"
#include "edge/edge_int.h"
#include "edge/edge_stream.h"
#include "edge/edge_tls_out.h"
#include "edge/edge_tls_rec.h"
#include "http/http_fields.h"

#define OUT_HIGH_WATER    (64 * 1024) /* connection output buffer */
#define OUT_LOW_WATER     (16 * 1024)
#define STREAM_HIGH_WATER (64 * 1024)  /* body queued per stream */
#define CONN_HIGH_WATER   (512 * 1024) /* body queued per connection */
#define STREAM_WINDOW     65535        /* request body per stream */
#define CONN_WINDOW       (256 * 1024) /* request body per connection */
#define HPACK_TABLE       4096         /* both ways */
#define FIELDS_INIT       16
#define TICK_MS           1000
#define LINGER_MS         2000
#define READ_MAX          (64 * 1024) /* bytes per read event */
#define RECS_KEPT         64 /* free TLS output buffers (64 KiB) per worker */
#define WRITE_ROUNDS      4  /* output buffers written per flush, over TLS */

struct h2_server;

/* Body bytes waiting to be framed: borrowed (done != NULL) or owned. */
struct h2_seg {
	struct h2_seg *next;
	const char *p;
	size_t len;
	size_t off;    /* bytes already framed */
	unsigned refs; /* the queue, plus pieces in the output buffer */
	void (*done)(const void *p, size_t len, void *arg);
	void *arg;
	char data[];
};

struct h2_stream {
	uint32_t magic;
#define H2_STREAM_MAGIC 0x6e2b91d4u
	struct h2_conn *c;
	struct h2_stream *next, *prev;
	int32_t id;
	struct proxy_txn *pt;
	struct http_request req;
	struct http_header *fields;
	unsigned cap;
	nghttp2_rcbuf **rc; /* the bytes req and fields point into */
	unsigned nrc, rccap;
	char *cookie;     /* RFC 9113 §8.2.3: the crumbs joined */
	size_t list_size; /* RFC 9113 §6.5.2: names + values + 32 each */
	uint64_t start_ns;
	const char *error; /* what the node refused, for the access log */

	/* request body */
	struct evbuffer *body_in;
	uint64_t body_seen;
	unsigned has_body : 1;
	unsigned body_done : 1;
	unsigned want_body : 1; /* the edge got CDN_AGAIN */

	/* state */
	unsigned too_big : 1;   /* header list over the limit: 431 */
	unsigned head_done : 1; /* the request went to the edge (or 4xx) */
	unsigned edge_done : 1; /* the edge called finish or abort */
	unsigned closed : 1;    /* nghttp2 closed it: drop what comes */
	unsigned counted : 1;   /* its refusal was counted */

	/* response */
	int status;
	unsigned responded : 1;
	unsigned no_body : 1;
	unsigned submitted : 1; /* the head is with nghttp2 */
	unsigned finished : 1;
	unsigned aborting : 1;
	unsigned deferred : 1;   /* the data source said DEFERRED */
	unsigned want_write : 1; /* congested() said so: writable follows */
	nghttp2_nv *nv;          /* a head waiting for finish() */
	size_t nvlen;
	char *nvbuf;
	struct h2_seg *segs, **segs_tail;
	size_t queued;
	uint64_t progress_ms; /* last DATA sent, or since queued */
	uint64_t bytes_sent;
};

struct h2_conn {
	uint32_t magic;
#define H2_CONN_MAGIC 0x2f84c6a1u
	struct h2_server *h;
	struct h2_conn *next, *prev;
	struct bufferevent *bev;
	nghttp2_session *ss;
	struct event *flush_ev;
	struct event *tick;
	char peer[INET6_ADDRSTRLEN];
	unsigned is_tls : 1;
	unsigned closing : 1; /* no more input: free once flushed */
	unsigned goaway : 1;  /* a GOAWAY was submitted here */
	unsigned counted : 1; /* the GOAWAY's reason was counted */
	unsigned had_request : 1;
	unsigned blocked : 1;    /* nghttp2 was told WOULDBLOCK: output full */
	unsigned tls_failed : 1; /* SSL_write failed: free once it returns */
	SSL *ssl;                /* over TLS (the bufferevent's) */
	struct tls_out *out;     /* over TLS: records gathered (the SSL's) */
	struct event *out_ev;    /* ... waiting for the socket to take them */
	struct h2_stream *streams;
	unsigned nstreams;
	size_t queued;           /* body bytes in the streams' queues */
	uint64_t idle_ms;        /* since when it has no stream */
	uint64_t closing_ms;     /* since when it is closing */
	struct h2_limits limits; /* attack budgets */
};

struct h2_server {
	uint32_t magic;
#define H2_SERVER_MAGIC 0x59d0e3b7u
	struct edge_worker *w;
	nghttp2_session_callbacks *cbs;
	nghttp2_option *opt;
	struct h2_conn *conns;
	unsigned nconns;
	struct tls_rec_pool *recs; /* tls_out buffers of its TLS connections */
	char *stage;               /* TLS_REC_MAX: the record being framed */
	size_t stage_len;
	struct h2_conn *stage_conn; /* whose bytes are staged */
	unsigned draining : 1;
	unsigned closing_all : 1;     /* freeing every connection: no waits */
	struct h2_release *releasing; /* sockets waiting to leave epoll */
	void (*on_empty)(void *arg);
	void *on_empty_arg;
};

/* A closed connection's bufferevent, freed at the loop's next turn. */
struct h2_release {
	struct h2_release *next, *prev;
	struct h2_server *h;
	struct bufferevent *bev;
	struct event ev;
};

/* edge_h2.h's name for it. */
struct edge_h2 {
	struct h2_server s;
};

static void conn_free(struct h2_conn *c);
static void conn_flush(struct h2_conn *c);
static void conn_recv(struct h2_conn *c);
static const struct edge_stream_ops h2_ops;

static uint64_t
now_ms(void)
{
	return cdn_now_ns() / 1000000u;
}

static void
schedule_flush(struct h2_conn *c)
{
	event_active(c->flush_ev, EV_TIMEOUT, 0);
}

/* ---- refusing: GOAWAY with a reason counted once ---- */

/* Send GOAWAY <code> and close once it is out. */
static void
conn_goaway(struct h2_conn *c, uint32_t code)
{
	if (!c->goaway) {
		c->goaway = 1;
		c->counted = 1; /* the caller counted why */
		(void)nghttp2_session_terminate_session(c->ss, code);
	}
	schedule_flush(c);
}

/* ---- output over TLS ---- */

/*
 * Room in the gathered output for <n> more frame bytes: the records they
 * complete, the one left partly filled, and what OpenSSL may add of its
 * own (a KeyUpdate).  Writes what is gathered if that makes the room.
 */
static int
tls_room(struct h2_conn *c, size_t n)
{
	size_t recs = (c->h->stage_len + n) / TLS_REC_MAX + 1;

	return tls_out_reserve(c->out, recs * TLS_REC_WIRE + TLS_OUT_SLACK);
}

/* Encrypt the staged record into the gathered output. */
static void
tls_stage_write(struct h2_conn *c)
{
	struct h2_server *h = c->h;
	int r;

	if (h->stage_len == 0)
		return;
	CDN_ASSERT(h->stage_conn == c);
	if (!c->tls_failed) {
		ERR_clear_error(); /* SSL_get_error reads the queue */
		r = SSL_write(c->ssl, h->stage, (int)h->stage_len);
		if (r <= 0) {
			/* tls_room() made room: the socket failed. */
			CDN_LOG(CDN_LOG_DEBUG, "h2", "client %s: SSL_write: %d",
			    c->peer, SSL_get_error(c->ssl, r));
			c->tls_failed = 1;
		}
	}
	h->stage_len = 0;
	h->stage_conn = NULL;
}

/* Append frame bytes to the staged record; each full one is encrypted. */
static void
tls_stage_add(struct h2_conn *c, const void *p, size_t n)
{
	struct h2_server *h = c->h;
	const char *s = p;
	size_t k;

	CDN_ASSERT(h->stage_len == 0 || h->stage_conn == c);
	while (n > 0) {
		h->stage_conn = c;
		k = TLS_REC_MAX - h->stage_len;
		if (k > n)
			k = n;
		memcpy(h->stage + h->stage_len, s, k);
		h->stage_len += k;
		s += k;
		n -= k;
		if (h->stage_len == TLS_REC_MAX)
			tls_stage_write(c);
	}
}

/* ---- segments ---- */

static void
seg_unref(struct h2_seg *g)
{
	CDN_ASSERT(g->refs > 0);
	if (--g->refs > 0)
		return;
	if (g->done != NULL)
		g->done(g->p, g->len, g->arg);
	free(g);
}

static void
on_piece_sent(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	seg_unref(arg);
}

static void
stream_enqueue(struct h2_stream *st, struct h2_seg *g)
{
	g->next = NULL;
	g->refs = 1;
	*st->segs_tail = g;
	st->segs_tail = &g->next;
	if (st->queued == 0)
		st->progress_ms = now_ms();
	st->queued += g->len;
	st->c->queued += g->len;
}

/* Drop the first segment once all of it is framed. */
static void
stream_pop(struct h2_stream *st)
{
	struct h2_seg *g = st->segs;

	st->segs = g->next;
	if (st->segs == NULL)
		st->segs_tail = &st->segs;
	seg_unref(g);
}

/* Move <n> queued bytes to <out>: packed into records over TLS,
 * referenced on a plain connection. */
static void
stream_take(struct h2_stream *st, struct evbuffer *out, size_t n)
{
	struct h2_conn *c = st->c;
	struct h2_seg *g;
	size_t k;

	CDN_ASSERT(n <= st->queued);
	st->queued -= n;
	st->c->queued -= n;
	while (n > 0) {
		g = st->segs;
		k = g->len - g->off < n ? g->len - g->off : n;
		if (c->is_tls) {
			tls_stage_add(c, g->p + g->off, k);
		} else {
			g->refs++;
			if (evbuffer_add_reference(
			        out, g->p + g->off, k, on_piece_sent, g) != 0) {
				/* No chain: copy rather than lose bytes. */
				g->refs--;
				(void)evbuffer_add(out, g->p + g->off, k);
			}
		}
		g->off += k;
		n -= k;
		if (g->off == g->len)
			stream_pop(st);
	}
}

static void
stream_drop_queue(struct h2_stream *st)
{
	st->c->queued -= st->queued;
	st->queued = 0;
	while (st->segs != NULL)
		stream_pop(st);
}

/* ---- streams ---- */

static struct h2_stream *
stream_new(struct h2_conn *c, int32_t id)
{
	struct h2_stream *st = cdn_xcalloc(1, sizeof(*st));

	st->magic = H2_STREAM_MAGIC;
	st->c = c;
	st->id = id;
	st->start_ns = cdn_now_ns();
	st->segs_tail = &st->segs;
	st->req.content_length = -1;
	st->next = c->streams;
	if (c->streams != NULL)
		c->streams->prev = st;
	c->streams = st;
	c->nstreams++;
	return st;
}

static void
stream_keep_rc(struct h2_stream *st, nghttp2_rcbuf *rc)
{
	if (st->nrc == st->rccap) {
		st->rccap = st->rccap == 0 ? FIELDS_INIT * 2 : st->rccap * 2;
		st->rc = realloc(st->rc, st->rccap * sizeof(*st->rc));
		CDN_ASSERT(st->rc != NULL); /* bounded by max_headers */
	}
	nghttp2_rcbuf_incref(rc);
	st->rc[st->nrc++] = rc;
}

/* The stream is over: tell the edge, free what it held. */
static void
stream_end(struct h2_stream *st, int aborted)
{
	struct h2_conn *c = st->c;
	struct edge_worker *w = c->h->w;
	struct edge_stream cs = {&h2_ops, st};
	struct edge_stream_end end;

	st->closed = 1;
	if (st->head_done) {
		if (st->pt != NULL && !st->edge_done)
			edge_proxy_aborted(st->pt);
		memset(&end, 0, sizeof(end));
		end.status = st->status;
		end.bytes_sent = st->bytes_sent;
		end.start_ns = st->start_ns;
		end.aborted = aborted || !st->finished;
		end.error = st->error;
		end.protocol = "HTTP/2";
		edge_proxy_end(w, &cs, st->pt, &end);
		st->pt = NULL;
	}
	stream_drop_queue(st);
	if (st->body_in != NULL) {
		/* Unread body: give its share of the connection window back. */
		if (!c->closing)
			(void)nghttp2_session_consume_connection(
			    c->ss, evbuffer_get_length(st->body_in));
		evbuffer_free(st->body_in);
	}
	if (st->prev != NULL)
		st->prev->next = st->next;
	else
		c->streams = st->next;
	if (st->next != NULL)
		st->next->prev = st->prev;
	c->nstreams--;
	if (c->nstreams == 0)
		c->idle_ms = now_ms();
	for (unsigned i = 0; i < st->nrc; i++)
		nghttp2_rcbuf_decref(st->rc[i]);
	free(st->rc);
	free(st->fields);
	free(st->cookie);
	free(st->nv);
	free(st->nvbuf);
	MAGIC_WIPE(st);
	free(st);
}

/* ---- the client stream (edge_stream.h) ---- */

static const struct http_request *
h2_request(void *s)
{
	struct h2_stream *st = s;

	MAGIC_CHECK(st, H2_STREAM_MAGIC);
	return &st->req;
}

static int
h2_has_body(void *s)
{
	struct h2_stream *st = s;

	return st->has_body;
}

static int64_t
h2_body_length(void *s)
{
	struct h2_stream *st = s;

	return st->has_body ? st->req.content_length : 0;
}

static long
h2_body_read(void *s, char *dst, size_t max)
{
	struct h2_stream *st = s;
	struct h2_conn *c = st->c;
	int n;

	MAGIC_CHECK(st, H2_STREAM_MAGIC);
	if (st->closed || st->error != NULL)
		return CDN_EINVAL;
	if (st->body_in != NULL && evbuffer_get_length(st->body_in) > 0) {
		n = evbuffer_remove(st->body_in, dst, max);
		if (n > 0) {
			/* Only what the edge took reopens the window. */
			(void)nghttp2_session_consume(c->ss, st->id, (size_t)n);
			schedule_flush(c);
			return n;
		}
	}
	if (st->body_done)
		return 0;
	st->want_body = 1;
	return CDN_AGAIN;
}

/* Lower-case copy of the header name: RFC 9113 §8.2.1. */
static void
lower(char *dst, const char *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = (src[i] >= 'A' && src[i] <= 'Z') ? (char)(src[i] + 32)
		                                          : src[i];
}

static void
nv_set(nghttp2_nv *nv, char *name, size_t nlen, char *value, size_t vlen)
{
	nv->name = (uint8_t *)name;
	nv->namelen = nlen;
	nv->value = (uint8_t *)value;
	nv->valuelen = vlen;
	nv->flags = NGHTTP2_NV_FLAG_NONE;
}

/*
 * The head as nghttp2 takes it: ":status", the fields ("Name: value\r\n")
 * lower-cased without the connection-specific ones (RFC 9113 §8.2.2),
 * Content-Length if known, and Date unless the fields have one.
 */
static void
build_head(struct h2_stream *st, int status, const char *fields, size_t len,
    int64_t content_length)
{
	const char *p = fields, *end, *eol, *colon, *v, *date;
	size_t n = 3, used = 0, cap;
	int has_date = 0;
	char *b;

	end = len > 0 ? fields + len : fields; /* fields may be NULL */
	for (size_t i = 0; i < len; i++)
		if (fields[i] == '\n')
			n++;
	date = http_date_field(); /* "Date: ...\r\n" */
	cap = len + 128 + strlen(date);
	st->nvbuf = b = cdn_xmalloc(cap);
	st->nv = cdn_xcalloc(n, sizeof(*st->nv));
	st->nvlen = 0;
	used = (size_t)snprintf(b, cap, ":status%03d", status);
	nv_set(&st->nv[st->nvlen++], b, 7, b + 7, 3);
	while (p < end) {
		eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == NULL)
			eol = end;
		colon = memchr(p, ':', (size_t)(eol - p));
		if (colon != NULL && colon > p) {
			size_t nl = (size_t)(colon - p), vl;
			const char *ve = eol;

			v = colon + 1;
			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v &&
			    (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			vl = (size_t)(ve - v);
			if (!http_field_is_hop_by_hop(p, nl) &&
			    !(nl == 16 &&
			        strncasecmp(p, "proxy-connection", nl) == 0) &&
			    !(nl == 14 &&
			        strncasecmp(p, "content-length", nl) == 0) &&
			    used + nl + vl <= cap) {
				if (nl == 4 && strncasecmp(p, "date", 4) == 0)
					has_date = 1;
				lower(b + used, p, nl);
				memcpy(b + used + nl, v, vl);
				nv_set(&st->nv[st->nvlen++], b + used, nl,
				    b + used + nl, vl);
				used += nl + vl;
			}
		}
		p = eol + 1;
	}
	if (content_length >= 0 && used + 40 <= cap) {
		int k = snprintf(b + used, cap - used, "content-length%lld",
		    (long long)content_length);

		nv_set(&st->nv[st->nvlen++], b + used, 14, b + used + 14,
		    (size_t)k - 14);
		used += (size_t)k;
	}
	if (!has_date && used + strlen(date) <= cap) {
		/* "Date: " then the value, without its CRLF */
		size_t vl = strlen(date) - 8;

		memcpy(b + used, "date", 4);
		memcpy(b + used + 4, date + 6, vl);
		nv_set(&st->nv[st->nvlen++], b + used, 4, b + used + 4, vl);
	}
	CDN_ASSERT(st->nvlen <= n);
}

static ssize_t on_data_read(nghttp2_session *ss, int32_t id, uint8_t *buf,
    size_t length, uint32_t *flags, nghttp2_data_source *src, void *arg);

static void
submit_head(struct h2_stream *st)
{
	nghttp2_data_provider dp;
	int rv;

	dp.source.ptr = st;
	dp.read_callback = on_data_read;
	st->submitted = 1;
	rv = nghttp2_submit_response(
	    st->c->ss, st->id, st->nv, st->nvlen, st->no_body ? NULL : &dp);
	if (rv != 0) {
		CDN_LOG(CDN_LOG_DEBUG, "h2", "client %s: submit_response: %s",
		    st->c->peer, nghttp2_strerror(rv));
		(void)nghttp2_submit_rst_stream(st->c->ss, NGHTTP2_FLAG_NONE,
		    st->id, NGHTTP2_INTERNAL_ERROR);
	}
	free(st->nv);
	free(st->nvbuf);
	st->nv = NULL;
	st->nvbuf = NULL;
	schedule_flush(st->c);
}

static void
h2_respond(
    void *s, int status, const char *fields, size_t len, int64_t content_length)
{
	struct h2_stream *st = s;

	MAGIC_CHECK(st, H2_STREAM_MAGIC);
	CDN_ASSERT(!st->responded);
	st->responded = 1;
	st->status = status;
	st->no_body = st->req.method == HTTP_M_HEAD || status == 204 ||
	    status == 304 || status < 200;
	if (st->closed)
		return;
	build_head(st, status, fields, len, content_length);
	/* A head without a body ends the stream: not before finish(), or
	 * the stream could close (and end) under the edge's feet. */
	if (!st->no_body)
		submit_head(st);
}

/* A 1xx: a HEADERS frame that does not end the stream (RFC 9113 §8.1). */
static void
h2_interim(void *s, int status, const char *fields, size_t len)
{
	struct h2_stream *st = s;
	int rv;

	MAGIC_CHECK(st, H2_STREAM_MAGIC);
	CDN_ASSERT(!st->responded && status >= 100 && status < 200);
	if (st->closed)
		return;
	build_head(st, status, fields, len, -1);
	/* nghttp2 copies the fields. */
	rv = nghttp2_submit_headers(st->c->ss, NGHTTP2_FLAG_NONE, st->id, NULL,
	    st->nv, st->nvlen, NULL);
	if (rv != 0)
		CDN_LOG(CDN_LOG_DEBUG, "h2", "client %s: a %d response: %s",
		    st->c->peer, status, nghttp2_strerror(rv));
	free(st->nv);
	free(st->nvbuf);
	st->nv = NULL;
	st->nvbuf = NULL;
	schedule_flush(st->c);
}

static void
stream_resume(struct h2_stream *st)
{
	if (st->deferred && !st->closed) {
		st->deferred = 0;
		(void)nghttp2_session_resume_data(st->c->ss, st->id);
	}
	schedule_flush(st->c);
}

static void
h2_write(void *s, const void *p, size_t len)
{
	struct h2_stream *st = s;
	struct h2_seg *g;

	MAGIC_CHECK(st, H2_STREAM_MAGIC);
	if (st->closed || st->no_body || len == 0)
		return;
	/* The edge checks congested() before producing: bounded. */
	g = cdn_xmalloc(sizeof(*g) + len);
	memcpy(g->data, p, len);
	g->p = g->data;
	g->len = len;
	g->off = 0;
	g->done = NULL;
	g->arg = NULL;
	stream_enqueue(st, g);
	stream_resume(st);
}

static void
h2_write_ref(void *s, const void *p, size_t len,
    void (*done)(const void *p, size_t len, void *arg), void *arg)
{
	struct h2_stream *st = s;
	struct h2_seg *g;

	MAGIC_CHECK(st, H2_STREAM_MAGIC);
	if (st->closed || st->no_body || len == 0) {
		done(p, len, arg);
		return;
	}
	g = cdn_xmalloc(sizeof(*g));
	g->p = p;
	g->len = len;
	g->off = 0;
	g->done = done;
	g->arg = arg;
	stream_enqueue(st, g);
	stream_resume(st);
}

static int
h2_congested(void *s)
{
	struct h2_stream *st = s;

	MAGIC_CHECK(st, H2_STREAM_MAGIC);
	if (st->closed)
		return 0; /* the edge learns of the end through aborted */
	if (st->queued > STREAM_HIGH_WATER || st->c->queued > CONN_HIGH_WATER) {
		st->want_write = 1;
		return 1;
	}
	return 0;
}

static void
h2_finish(void *s)
{
	struct h2_stream *st = s;

	MAGIC_CHECK(st, H2_STREAM_MAGIC);
	st->edge_done = 1;
	st->finished = 1;
	if (st->closed)
		return;
	if (!st->submitted && st->nv != NULL)
		submit_head(st); /* no body: HEADERS with END_STREAM */
	stream_resume(st);
}

static void
h2_abort(void *s)
{
	struct h2_stream *st = s;

	MAGIC_CHECK(st, H2_STREAM_MAGIC);
	st->edge_done = 1;
	if (st->closed)
		return;
	if (!st->submitted) {
		(void)nghttp2_submit_rst_stream(st->c->ss, NGHTTP2_FLAG_NONE,
		    st->id, NGHTTP2_INTERNAL_ERROR);
		schedule_flush(st->c);
		return;
	}
	/* What was written goes out, then RST_STREAM: never a complete-
	 * looking body (on_data_read). */
	st->aborting = 1;
	stream_resume(st);
}

static void
h2_set_close(void *s)
{
	/* Each stream has its own framing: the next one is unaffected. */
	(void)s;
}

static const char *
h2_client_addr(void *s)
{
	struct h2_stream *st = s;

	return st->c->peer;
}

static int
h2_is_tls(void *s)
{
	struct h2_stream *st = s;

	return st->c->is_tls;
}

static void
h2_set_txn(void *s, struct proxy_txn *pt)
{
	struct h2_stream *st = s;

	st->pt = pt;
}

static const struct edge_stream_ops h2_ops = {
    .request = h2_request,
    .has_body = h2_has_body,
    .body_length = h2_body_length,
    .body_read = h2_body_read,
    .interim = h2_interim,
    .respond = h2_respond,
    .write = h2_write,
    .write_ref = h2_write_ref,
    .congested = h2_congested,
    .finish = h2_finish,
    .abort = h2_abort,
    .set_close = h2_set_close,
    .client_addr = h2_client_addr,
    .is_tls = h2_is_tls,
    .set_txn = h2_set_txn,
};

/* ---- the response body: nghttp2's data source ---- */

static ssize_t
on_data_read(nghttp2_session *ss, int32_t id, uint8_t *buf, size_t length,
    uint32_t *flags, nghttp2_data_source *src, void *arg)
{
	struct h2_stream *st = src->ptr;
	size_t n;

	(void)ss;
	(void)id;
	(void)buf;
	(void)arg;
	MAGIC_CHECK(st, H2_STREAM_MAGIC);
	if (st->queued == 0) {
		if (st->aborting)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST */
		if (st->finished) {
			*flags |= NGHTTP2_DATA_FLAG_EOF;
			return 0;
		}
		st->deferred = 1;
		return NGHTTP2_ERR_DEFERRED;
	}
	n = st->queued < length ? st->queued : length;
	*flags |= NGHTTP2_DATA_FLAG_NO_COPY; /* on_send_data frames it */
	if (n == st->queued && st->finished && !st->aborting)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

/* Frame bytes of nghttp2's to the output: staged into records over TLS. */
static void
out_add(struct h2_conn *c, struct evbuffer *out, const void *p, size_t n)
{
	if (c->is_tls)
		tls_stage_add(c, p, n);
	else
		(void)evbuffer_add(out, p, n);
}

/* Whether the output has room for a frame of <n> bytes. */
static int
out_has_room(struct h2_conn *c, size_t n)
{
	if (c->is_tls)
		return !c->tls_failed && tls_room(c, n);
	return evbuffer_get_length(bufferevent_get_output(c->bev)) <
	    OUT_HIGH_WATER;
}

static int
on_send_data(nghttp2_session *ss, nghttp2_frame *frame, const uint8_t *framehd,
    size_t length, nghttp2_data_source *src, void *arg)
{
	static const uint8_t zeros[256];
	struct h2_stream *st = src->ptr;
	struct h2_conn *c = arg;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	uint8_t pad = 0;

	(void)ss;
	MAGIC_CHECK(st, H2_STREAM_MAGIC);
	if (!out_has_room(c, 9 + frame->data.padlen + length)) {
		c->blocked = 1;
		return NGHTTP2_ERR_WOULDBLOCK;
	}
	out_add(c, out, framehd, 9);
	if (frame->data.padlen > 0) {
		/* padlen counts the Pad Length byte: at most 256 */
		pad = (uint8_t)(frame->data.padlen - 1);
		out_add(c, out, &pad, 1);
	}
	stream_take(st, out, length);
	if (pad > 0)
		out_add(c, out, zeros, pad);
	return c->tls_failed ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

static ssize_t
on_send(
    nghttp2_session *ss, const uint8_t *data, size_t len, int flags, void *arg)
{
	struct h2_conn *c = arg;
	struct evbuffer *out = bufferevent_get_output(c->bev);

	(void)ss;
	(void)flags;
	if (!out_has_room(c, len)) {
		c->blocked = 1;
		return NGHTTP2_ERR_WOULDBLOCK;
	}
	if (c->is_tls)
		tls_stage_add(c, data, len);
	else if (evbuffer_add(out, data, len) != 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	return c->tls_failed ? NGHTTP2_ERR_CALLBACK_FAILURE : (ssize_t)len;
}

/* ---- the request: nghttp2's receive callbacks ---- */

static struct h2_stream *
stream_of(nghttp2_session *ss, int32_t id)
{
	struct h2_stream *st = nghttp2_session_get_stream_user_data(ss, id);

	if (st != NULL)
		MAGIC_CHECK(st, H2_STREAM_MAGIC);
	return st;
}

static int
on_begin_headers(nghttp2_session *ss, const nghttp2_frame *frame, void *arg)
{
	struct h2_conn *c = arg;
	struct h2_stream *st;

	if (frame->hd.type != NGHTTP2_HEADERS ||
	    frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0; /* trailers: their stream exists */
	st = stream_new(c, frame->hd.stream_id);
	c->had_request = 1;
	EDGE_COUNTER_INC(c->h->w, h2_streams);
	(void)nghttp2_session_set_stream_user_data(ss, st->id, st);
	return 0;
}

static struct http_slice
rc_slice(nghttp2_rcbuf *rc)
{
	nghttp2_vec v = nghttp2_rcbuf_get_buf(rc);
	struct http_slice sl = {(const char *)v.base, v.len};

	return sl;
}

static int
on_header(nghttp2_session *ss, const nghttp2_frame *frame, nghttp2_rcbuf *name,
    nghttp2_rcbuf *value, uint8_t flags, void *arg)
{
	struct h2_conn *c = arg;
	const struct conf *cf = c->h->w->edge->conf;
	struct h2_stream *st;
	struct http_slice n = rc_slice(name), v = rc_slice(value);
	struct http_header *f;

	(void)flags;
	if (frame->hd.type != NGHTTP2_HEADERS ||
	    frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0; /* trailer fields are not forwarded */
	st = stream_of(ss, frame->hd.stream_id);
	if (st == NULL || st->too_big)
		return 0;
	st->list_size += n.len + v.len + 32;
	if (st->list_size > cf->max_header_size) {
		st->too_big = 1; /* answered 431 once the block ends */
		return 0;
	}
	if (n.len > 0 && n.p[0] == ':') {
		/* nghttp2 has checked them: each once, before the fields. */
		stream_keep_rc(st, value);
		if (http_slice_eq_ci(n, ":method"))
			st->req.method_str = v;
		else if (http_slice_eq_ci(n, ":path"))
			st->req.target = v;
		else if (http_slice_eq_ci(n, ":authority"))
			st->req.authority = v;
		else if (http_slice_eq_ci(n, ":scheme"))
			st->req.scheme = v;
		return 0;
	}
	if (http_slice_eq_ci(n, "cookie")) {
		/* RFC 9113 §8.2.3: one field for the origin, "; " between. */
		size_t old = st->cookie != NULL ? strlen(st->cookie) : 0;
		char *nc = realloc(st->cookie, old + v.len + 3);

		if (nc == NULL) {
			st->too_big = 1;
			return 0;
		}
		if (old > 0)
			memcpy(nc + old, "; ", 2), old += 2;
		memcpy(nc + old, v.p, v.len);
		nc[old + v.len] = '\0';
		st->cookie = nc;
		return 0;
	}
	if (st->req.n_headers + 1 >= cf->max_headers) {
		st->too_big = 1;
		return 0;
	}
	if (st->req.n_headers == st->cap) {
		st->cap = st->cap == 0 ? FIELDS_INIT : st->cap * 2;
		st->fields = realloc(st->fields, st->cap * sizeof(*st->fields));
		CDN_ASSERT(st->fields != NULL); /* at most max_headers */
		st->req.headers = st->fields;
	}
	stream_keep_rc(st, name);
	stream_keep_rc(st, value);
	f = &st->fields[st->req.n_headers++];
	f->name = n;
	f->value = v;
	if (http_slice_eq_ci(n, "host") && st->req.host.len == 0)
		st->req.host = v;
	else if (http_slice_eq_ci(n, "content-length"))
		st->req.content_length = strtoll(v.p, NULL, 10); /* checked */
	return 0;
}

/* RFC 9113 §8.2.1: a field nghttp2 found invalid makes the request
 * malformed (it would only drop it). */
static int
on_invalid_header(nghttp2_session *ss, const nghttp2_frame *frame,
    nghttp2_rcbuf *name, nghttp2_rcbuf *value, uint8_t flags, void *arg)
{
	struct h2_conn *c = arg;

	struct h2_stream *st = stream_of(ss, frame->hd.stream_id);

	(void)name;
	(void)value;
	(void)flags;
	if (st != NULL)
		st->counted = 1;
	EDGE_COUNTER_INC(c->h->w, h2_bad_header);
	(void)nghttp2_submit_rst_stream(
	    ss, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_PROTOCOL_ERROR);
	return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
}

static const struct http_slice slash = {"/", 1};

/* Answer the node's own refusal of a request the edge never saw. */
static void
stream_refuse(struct h2_stream *st, int status, const char *why)
{
	struct edge_stream cs = {&h2_ops, st};
	struct edge *e = st->c->h->w->edge;
	char cstat[96], body[96];

	st->error = why;
	snprintf(
	    body, sizeof(body), "%d %s\n", status, http_status_reason(status));
	snprintf(cstat, sizeof(cstat), "fwd=bypass; detail=%s",
	    status == 431 ? "request-header-fields-too-large" : "bad-request");
	edge_deliver_node_answer(e, &cs, status, "", body, cstat);
}

/* The request head is complete: check what nghttp2 leaves to us, then
 * hand it to the edge. */
static void
request_complete(struct h2_conn *c, struct h2_stream *st, int end_stream)
{
	struct http_request *r = &st->req;
	const char *q;
	struct http_header *f;

	st->has_body = !end_stream;
	st->body_done = end_stream;
	/* RFC 9113 §8.3.1, whatever the library let through. */
	if (r->method_str.len == 0 ||
	    (r->target.len == 0 &&
	        !http_slice_eq_ci(r->method_str, "CONNECT"))) {
		st->counted = 1;
		EDGE_COUNTER_INC(c->h->w, h2_bad_header);
		(void)nghttp2_submit_rst_stream(
		    c->ss, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_PROTOCOL_ERROR);
		return;
	}
	st->head_done = 1;
	r->version_minor = 1;
	r->keep_alive = 1;
	r->method = http_method_lookup(r->method_str.p, r->method_str.len);
	if (st->too_big) {
		EDGE_COUNTER_INC(c->h->w, h2_header_list);
		stream_refuse(st, 431, "header list too large");
		return;
	}
	if (st->cookie != NULL) {
		if (st->req.n_headers == st->cap) {
			st->cap = st->cap == 0 ? FIELDS_INIT : st->cap * 2;
			st->fields =
			    realloc(st->fields, st->cap * sizeof(*st->fields));
			CDN_ASSERT(st->fields != NULL);
			r->headers = st->fields;
		}
		f = &st->fields[r->n_headers++];
		f->name.p = "cookie";
		f->name.len = 6;
		f->value.p = st->cookie;
		f->value.len = strlen(st->cookie);
	}
	/* RFC 9113 §8.3.1: :authority, else Host, names the origin. */
	if (r->authority.len > 0)
		r->host = r->authority;
	r->authority.p = NULL;
	r->authority.len = 0;
	r->head_len = st->list_size;
	if (r->target.len == 1 && r->target.p[0] == '*' &&
	    r->method == HTTP_M_OPTIONS) {
		r->target_form = HTTP_TARGET_ASTERISK;
		r->path = r->target;
	} else if (r->method == HTTP_M_CONNECT) {
		r->target_form = HTTP_TARGET_AUTHORITY;
		r->path = slash;
	} else {
		r->target_form = HTTP_TARGET_ORIGIN;
		if (memchr(r->target.p, '#', r->target.len) != NULL) {
			EDGE_COUNTER_INC(c->h->w, h2_bad_header);
			stream_refuse(st, 400, "fragment in :path");
			return;
		}
		q = memchr(r->target.p, '?', r->target.len);
		r->path.p = r->target.p;
		r->path.len =
		    q != NULL ? (size_t)(q - r->target.p) : r->target.len;
		if (q != NULL) {
			r->has_query = 1;
			r->query.p = q + 1;
			r->query.len = r->target.len - r->path.len - 1;
		}
	}
	if (r->host.len == 0 || !http_host_valid(r->host.p, r->host.len)) {
		EDGE_COUNTER_INC(c->h->w, h2_bad_header);
		stream_refuse(st, 400,
		    r->host.len == 0 ? "no :authority or Host"
		                     : "invalid :authority or Host");
		return;
	}
	{
		struct edge_stream cs = {&h2_ops, st};

		edge_proxy_begin(c->h->w, &cs);
	}
}

static void
body_arrived(struct h2_stream *st)
{
	if (st->want_body && st->pt != NULL && !st->edge_done) {
		st->want_body = 0;
		edge_proxy_body(st->pt);
	}
}

static int
on_frame_recv(nghttp2_session *ss, const nghttp2_frame *frame, void *arg)
{
	struct h2_conn *c = arg;
	struct edge_worker *w = c->h->w;
	struct h2_stream *st;
	int end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
	enum h2_spent spent = h2_limits_frame(&c->limits, &frame->hd);

	if (spent != H2_WITHIN) {
		h2_limits_count(w, spent);
		conn_goaway(c, NGHTTP2_ENHANCE_YOUR_CALM);
		return 0;
	}
	switch (frame->hd.type) {
	case NGHTTP2_HEADERS:
		st = stream_of(ss, frame->hd.stream_id);
		if (st == NULL)
			return 0;
		if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
			request_complete(c, st, end);
		} else if (end) {
			st->body_done = 1; /* trailers end the body */
			body_arrived(st);
		}
		return 0;
	case NGHTTP2_DATA:
		st = stream_of(ss, frame->hd.stream_id);
		if (st != NULL && end) {
			st->body_done = 1;
			body_arrived(st);
		}
		return 0;
	default:
		return 0;
	}
}

/* What nghttp2 refused on its own (it has queued RST_STREAM or GOAWAY). */
static int
on_invalid_frame_recv(
    nghttp2_session *ss, const nghttp2_frame *frame, int err, void *arg)
{
	struct h2_conn *c = arg;
	struct edge_worker *w = c->h->w;
	struct h2_stream *st = stream_of(ss, frame->hd.stream_id);

	if (st != NULL)
		st->counted = 1;
	switch (err) {
	case NGHTTP2_ERR_HTTP_HEADER:
		EDGE_COUNTER_INC(w, h2_bad_header);
		break;
	case NGHTTP2_ERR_HTTP_MESSAGING:
		/* A header section without what it needs (:path), or a body
		 * that disagrees with its Content-Length. */
		if (frame->hd.type == NGHTTP2_HEADERS && st != NULL &&
		    !st->head_done)
			EDGE_COUNTER_INC(w, h2_bad_header);
		else
			EDGE_COUNTER_INC(w, h2_content_length);
		break;
	case NGHTTP2_ERR_REFUSED_STREAM:
		EDGE_COUNTER_INC(w, h2_concurrent_streams);
		break;
	case NGHTTP2_ERR_PROTO:
		if (frame->hd.type == NGHTTP2_HEADERS &&
		    c->nstreams >= w->edge->conf->h2_max_concurrent_streams) {
			EDGE_COUNTER_INC(w, h2_concurrent_streams);
			break;
		}
		CDN_FALLTHROUGH;
	default:
		EDGE_COUNTER_INC(w, h2_protocol);
		c->counted = 1;
		break;
	}
	return 0;
}

static int
on_data_chunk(nghttp2_session *ss, uint8_t flags, int32_t id,
    const uint8_t *data, size_t len, void *arg)
{
	struct h2_conn *c = arg;
	const struct conf *cf = c->h->w->edge->conf;
	struct h2_stream *st = stream_of(ss, id);

	(void)flags;
	if (st == NULL || st->pt == NULL || st->edge_done ||
	    st->error != NULL) {
		/* Nobody reads it: the windows open again at once. */
		(void)nghttp2_session_consume(ss, id, len);
		return 0;
	}
	st->body_seen += len;
	if (st->body_seen > cf->max_body_size) {
		EDGE_COUNTER_INC(c->h->w, h2_body_size);
		st->error = "request body too large";
		(void)nghttp2_session_consume(ss, id, len);
		(void)nghttp2_submit_rst_stream(
		    ss, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
		return 0;
	}
	if (st->body_in == NULL)
		st->body_in = evbuffer_new();
	if (st->body_in == NULL || evbuffer_add(st->body_in, data, len) != 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	body_arrived(st);
	return 0;
}

static int
on_stream_close(nghttp2_session *ss, int32_t id, uint32_t code, void *arg)
{
	struct h2_conn *c = arg;
	struct h2_stream *st = stream_of(ss, id);

	if (st == NULL)
		return 0;
	(void)nghttp2_session_set_stream_user_data(ss, id, NULL);
	/* Rapid reset: the client cancels what it just asked for. */
	if (code != NGHTTP2_NO_ERROR && st->head_done && !st->edge_done &&
	    h2_limits_reset(&c->limits) != H2_WITHIN) {
		h2_limits_count(c->h->w, H2_SPENT_RESET);
		conn_goaway(c, NGHTTP2_ENHANCE_YOUR_CALM);
	}
	stream_end(st, code != NGHTTP2_NO_ERROR);
	return 0;
}

static int
on_frame_send(nghttp2_session *ss, const nghttp2_frame *frame, void *arg)
{
	struct h2_conn *c = arg;
	struct edge_worker *w = c->h->w;
	struct h2_stream *st;

	switch (frame->hd.type) {
	case NGHTTP2_DATA:
	case NGHTTP2_HEADERS:
		st = stream_of(ss, frame->hd.stream_id);
		if (st != NULL) {
			st->bytes_sent += frame->hd.length;
			st->progress_ms = now_ms();
		}
		return 0;
	case NGHTTP2_RST_STREAM:
		/* A reset the library chose and no callback explained: a
		 * malformed request (RFC 9113 §8.1.1), before its head was
		 * complete (pseudo-headers) or after (Content-Length against
		 * DATA). */
		st = stream_of(ss, frame->hd.stream_id);
		if (st != NULL && !st->counted &&
		    frame->rst_stream.error_code == NGHTTP2_PROTOCOL_ERROR) {
			st->counted = 1;
			if (st->head_done)
				EDGE_COUNTER_INC(w, h2_content_length);
			else
				EDGE_COUNTER_INC(w, h2_bad_header);
		}
		return 0;
	case NGHTTP2_GOAWAY:
		c->goaway = 1;
		if (c->counted)
			return 0;
		c->counted = 1;
		if (frame->goaway.error_code == NGHTTP2_COMPRESSION_ERROR)
			EDGE_COUNTER_INC(w, h2_hpack);
		else if (frame->goaway.error_code == NGHTTP2_ENHANCE_YOUR_CALM)
			EDGE_COUNTER_INC(w, h2_rapid_reset); /* the library's */
		else if (frame->goaway.error_code != NGHTTP2_NO_ERROR)
			EDGE_COUNTER_INC(w, h2_protocol);
		return 0;
	default:
		return 0;
	}
}

/* ---- connections ---- */

static void
server_maybe_empty(struct h2_server *h)
{
	void (*cb)(void *);

	if (h->nconns == 0 && h->draining && h->on_empty != NULL) {
		cb = h->on_empty;
		h->on_empty = NULL;
		cb(h->on_empty_arg);
	}
}

static void
gauge(struct h2_server *h)
{
	atomic_store_explicit(
	    &h->w->ctr.h2_conns_open, h->nconns, memory_order_relaxed);
}

/* Nothing left to write: neither in the output nor gathered. */
static int
out_empty(struct h2_conn *c)
{
	return evbuffer_get_length(bufferevent_get_output(c->bev)) == 0 &&
	    (c->out == NULL || tls_out_pending(c->out) == 0);
}

/* Stop reading; free once the output is out (or LINGER_MS passed). */
static void
conn_close_after_flush(struct h2_conn *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	c->closing_ms = now_ms();
	bufferevent_disable(c->bev, EV_READ);
	if (out_empty(c))
		schedule_flush(c);
}

/*
 * Over TLS, write the records gathered (edge_tls_out.h): at the end of
 * each round of writing, so that what a round framed leaves in a few
 * large writes.  What the socket does not take waits for out_ev, no
 * longer than send_timeout, as libevent's write timeout bounds its own
 * output.  Returns 0 if the connection failed (the caller frees it).
 */
static int
conn_out_flush(struct h2_conn *c)
{
	const struct conf *cf = c->h->w->edge->conf;
	struct timeval tv;
	int rc;

	if (c->out == NULL)
		return 1;
	rc = tls_out_flush(c->out);
	if (rc == CDN_EIO)
		return 0;
	if (rc == CDN_AGAIN && !event_pending(c->out_ev, EV_WRITE, NULL)) {
		tv.tv_sec = (time_t)(cf->send_timeout / 1000);
		tv.tv_usec = (suseconds_t)((cf->send_timeout % 1000) * 1000);
		event_add(c->out_ev, &tv);
	}
	return 1;
}

static void
on_out_writable(evutil_socket_t fd, short what, void *arg)
{
	struct h2_conn *c = arg;

	(void)fd;
	MAGIC_CHECK(c, H2_CONN_MAGIC);
	if (what & EV_TIMEOUT) {
		EDGE_COUNTER_INC(c->h->w, h2_slow_read); /* not reading */
		conn_free(c);
		return;
	}
	conn_flush(c); /* writes what waits, then frames more */
}

/*
 * Send what nghttp2 has, tell congested streams they may write again,
 * and close when the session is done.  The one caller of
 * nghttp2_session_send.
 */
static void
conn_flush(struct h2_conn *c)
{
	struct h2_stream *st, *next;
	int rv;

	for (unsigned round = 1;; round++) {
		c->blocked = 0;
		if (!c->closing || c->goaway) {
			rv = nghttp2_session_send(c->ss);
			if (rv != 0) {
				CDN_LOG(CDN_LOG_DEBUG, "h2",
				    "client %s: send: %s", c->peer,
				    nghttp2_strerror(rv));
				conn_free(c);
				return;
			}
		}
		if (!c->is_tls)
			break;
		/* Over TLS, nghttp2 waits for room in the gathered output:
		 * write it, and go on filling the record while the socket
		 * takes it (a few rounds, then after the other connections'
		 * turn).  Leaving, the record partly filled goes too. */
		if (c->blocked && round < WRITE_ROUNDS) {
			if (!conn_out_flush(c)) {
				conn_free(c);
				return;
			}
			if (tls_out_pending(c->out) == 0)
				continue;
		}
		tls_stage_write(c);
		if (c->tls_failed || !conn_out_flush(c)) {
			conn_free(c);
			return;
		}
		if (c->blocked && tls_out_pending(c->out) == 0)
			schedule_flush(c);
		break;
	}
	for (st = c->streams; st != NULL; st = next) {
		next = st->next;
		if (st->want_write && st->pt != NULL && !st->edge_done &&
		    st->queued <= STREAM_HIGH_WATER &&
		    c->queued <= CONN_HIGH_WATER) {
			st->want_write = 0;
			edge_proxy_writable(st->pt); /* may queue more */
		}
	}
	if (!c->closing && !nghttp2_session_want_read(c->ss) &&
	    !nghttp2_session_want_write(c->ss))
		conn_close_after_flush(c);
	if (c->closing && out_empty(c))
		conn_free(c);
}

static void
on_flush(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_flush(arg);
}

/* A fatal error of nghttp2_session_mem_recv: count it, try a GOAWAY. */
static void
conn_recv_error(struct h2_conn *c, ssize_t rv)
{
	struct edge_worker *w = c->h->w;
	uint32_t code = NGHTTP2_PROTOCOL_ERROR;

	switch (rv) {
	case NGHTTP2_ERR_TOO_MANY_CONTINUATIONS:
		EDGE_COUNTER_INC(w, h2_continuation_flood);
		code = NGHTTP2_ENHANCE_YOUR_CALM;
		break;
	case NGHTTP2_ERR_FLOODED:
		EDGE_COUNTER_INC(w, h2_ack_flood);
		code = NGHTTP2_ENHANCE_YOUR_CALM;
		break;
	case NGHTTP2_ERR_TOO_MANY_SETTINGS:
		EDGE_COUNTER_INC(w, h2_settings_flood);
		code = NGHTTP2_ENHANCE_YOUR_CALM;
		break;
	case NGHTTP2_ERR_HEADER_COMP:
		EDGE_COUNTER_INC(w, h2_hpack);
		code = NGHTTP2_COMPRESSION_ERROR;
		break;
	default:
		EDGE_COUNTER_INC(w, h2_protocol);
		break;
	}
	CDN_LOG(CDN_LOG_INFO, "h2", "client %s: %s", c->peer,
	    nghttp2_strerror((int)rv));
	c->counted = 1;
	if (!c->goaway) {
		/* The session may still frame one GOAWAY; if not, close. */
		c->goaway = 1;
		(void)nghttp2_session_terminate_session(c->ss, code);
	}
	conn_close_after_flush(c);
	schedule_flush(c);
}

/* Hand nghttp2 what was read (decrypted, over TLS). */
static void
conn_recv(struct h2_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	struct evbuffer_iovec v[8];
	size_t used = 0;
	ssize_t rv;
	int n;

	while (!c->closing && evbuffer_get_length(in) > 0) {
		n = evbuffer_peek(in, -1, NULL, v, CDN_ARRAY_LEN(v));
		if (n > (int)CDN_ARRAY_LEN(v))
			n = (int)CDN_ARRAY_LEN(v);
		used = 0;
		for (int i = 0; i < n && !c->closing; i++) {
			rv = nghttp2_session_mem_recv(
			    c->ss, v[i].iov_base, v[i].iov_len);
			if (rv < 0) {
				conn_recv_error(c, rv);
				break;
			}
			used += v[i].iov_len;
		}
		evbuffer_drain(in, used);
		if (c->closing)
			evbuffer_drain(in, evbuffer_get_length(in));
	}
}

/*
 * Records OpenSSL read ahead during the handshake (http_server.c turns
 * read-ahead on for the ClientHello, off at the hand-over) wait in it
 * whole, and libevent 2.1's bufferevent reads on only while OpenSSL holds
 * decrypted bytes, or when the socket turns readable again: run its read
 * event once more while OpenSSL holds any.
 */
static void
conn_tls_drain(struct h2_conn *c)
{
	if (c->is_tls && !c->closing && SSL_has_pending(c->ssl))
		event_active(&c->bev->ev_read, EV_READ, 1);
}

static void
on_read(struct bufferevent *bev, void *arg)
{
	struct h2_conn *c = arg;

	(void)bev;
	MAGIC_CHECK(c, H2_CONN_MAGIC);
	conn_recv(c);
	conn_tls_drain(c);
	conn_flush(c);
}

static void
on_write(struct bufferevent *bev, void *arg)
{
	struct h2_conn *c = arg;

	(void)bev;
	MAGIC_CHECK(c, H2_CONN_MAGIC);
	conn_flush(c);
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	struct h2_conn *c = arg;

	(void)bev;
	MAGIC_CHECK(c, H2_CONN_MAGIC);
	if (what & BEV_EVENT_TIMEOUT)
		EDGE_COUNTER_INC(c->h->w, h2_slow_read); /* not reading */
	conn_free(c); /* EOF, error or send timeout */
}

/* Once a second: idle and send-stall limits. */
static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct h2_conn *c = arg;
	const struct conf *cf = c->h->w->edge->conf;
	struct h2_stream *st;
	uint64_t now = now_ms(), idle_max;

	(void)fd;
	(void)what;
	MAGIC_CHECK(c, H2_CONN_MAGIC);
	if (c->closing) {
		if (now - c->closing_ms >= LINGER_MS)
			conn_free(c);
		return;
	}
	for (st = c->streams; st != NULL; st = st->next) {
		/* A client that keeps its window shut holds the stream (and
		 * its origin transfer) no longer than send_timeout. */
		if (st->queued > 0 && !st->closed &&
		    now - st->progress_ms >= cf->send_timeout) {
			EDGE_COUNTER_INC(c->h->w, h2_slow_read);
			st->error = "send timeout";
			(void)nghttp2_submit_rst_stream(
			    c->ss, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
			schedule_flush(c);
		}
	}
	if (c->nstreams > 0)
		return;
	idle_max =
	    c->had_request ? cf->keepalive_timeout : cf->client_header_timeout;
	if (now - c->idle_ms >= idle_max || c->h->draining) {
		if (!c->goaway) {
			c->goaway = 1;
			(void)nghttp2_submit_goaway(c->ss, NGHTTP2_FLAG_NONE,
			    nghttp2_session_get_last_proc_stream_id(c->ss),
			    NGHTTP2_NO_ERROR, NULL, 0);
		}
		conn_close_after_flush(c);
		schedule_flush(c);
	}
}

static void
release_unlink_and_free(struct h2_release *r)
{
	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		r->h->releasing = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	bufferevent_free(r->bev); /* closes the socket */
	free(r);
}

static void
on_release(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	release_unlink_and_free(arg);
}

/*
 * Free <bev>, closing its socket, once the loop has taken the socket out
 * of epoll.  With the changelist (edge_worker.c) stopping its events only
 * notes the EPOLL_CTL_DEL, which the next epoll_wait applies: freed at
 * once, the bufferevent closed the socket first and the delete failed
 * (EBADF).  A zero timeout runs after that epoll_wait.  What the output
 * still references is let go of now, while the server exists; at the
 * server's end, or without memory for the wait, it is freed at once.
 */
static void
conn_bev_release(struct h2_server *h, struct bufferevent *bev)
{
	static const struct timeval now = {0, 0};
	struct evbuffer *out = bufferevent_get_output(bev);
	struct h2_release *r;

	bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	evbuffer_drain(out, evbuffer_get_length(out));
	bufferevent_disable(bev, EV_READ | EV_WRITE);
	r = h->closing_all ? NULL : malloc(sizeof(*r));
	if (r == NULL) {
		bufferevent_free(bev);
		return;
	}
	r->h = h;
	r->bev = bev;
	r->prev = NULL;
	r->next = h->releasing;
	if (r->next != NULL)
		r->next->prev = r;
	h->releasing = r;
	evtimer_assign(&r->ev, h->w->base, on_release, r);
	evtimer_add(&r->ev, &now);
}

static void
conn_free(struct h2_conn *c)
{
	struct h2_server *h = c->h;

	MAGIC_CHECK(c, H2_CONN_MAGIC);
	c->closing = 1;
	/* nghttp2_session_del calls no on_stream_close: end them here. */
	while (c->streams != NULL) {
		(void)nghttp2_session_set_stream_user_data(
		    c->ss, c->streams->id, NULL);
		stream_end(c->streams, 1);
	}
	nghttp2_session_del(c->ss);
	if (h->stage_conn == c) {
		h->stage_len = 0; /* a failed send's: dropped */
		h->stage_conn = NULL;
	}
	if (c->out_ev != NULL)
		event_free(c->out_ev);
	c->out = NULL; /* the SSL's: freed with it */
	conn_bev_release(h, c->bev);
	event_free(c->flush_ev);
	event_free(c->tick);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		h->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	h->nconns--;
	gauge(h);
	MAGIC_WIPE(c);
	free(c);
	server_maybe_empty(h);
}

static void
conn_start(
    struct h2_server *h, struct bufferevent *bev, const char *peer, int is_tls)
{
	struct edge_worker *w = h->w;
	const struct conf *cf = w->edge->conf;
	struct h2_conn *c;
	struct timeval tv;
	uint32_t maxs = cf->h2_max_concurrent_streams;
	nghttp2_settings_entry set[] = {
	    {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, maxs},
	    {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
	    {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
	        (uint32_t)cf->max_header_size},
	    {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, HPACK_TABLE},
	    {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
	};

	if (h->nconns >= cf->max_connections || h->draining) {
		CDN_LOG(CDN_LOG_WARN, "h2", "connection limit %u reached",
		    cf->max_connections);
		bufferevent_free(bev);
		return;
	}
	c = cdn_xcalloc(1, sizeof(*c));
	c->magic = H2_CONN_MAGIC;
	c->h = h;
	c->bev = bev;
	c->is_tls = is_tls != 0;
	if (c->is_tls) {
		c->ssl = bufferevent_openssl_get_ssl(bev);
		c->out =
		    tls_out_attach(c->ssl, bufferevent_getfd(bev), h->recs);
		c->out_ev = event_new(w->base, bufferevent_getfd(bev), EV_WRITE,
		    on_out_writable, c);
	}
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	c->idle_ms = now_ms();
	h2_limits_init(&c->limits, maxs);
	if (nghttp2_session_server_new2(&c->ss, h->cbs, c, h->opt) != 0)
		CDN_ASSERT(!"nghttp2_session_server_new2"); /* out of memory */
	/* Request bodies: the connection's window is what we buffer. */
	(void)nghttp2_session_set_local_window_size(
	    c->ss, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW);
	(void)nghttp2_submit_settings(
	    c->ss, NGHTTP2_FLAG_NONE, set, CDN_ARRAY_LEN(set));
	c->flush_ev = event_new(w->base, -1, 0, on_flush, c);
	c->tick = event_new(w->base, -1, EV_PERSIST, on_tick, c);
	tv.tv_sec = TICK_MS / 1000;
	tv.tv_usec = (TICK_MS % 1000) * 1000;
	event_add(c->tick, &tv);
	bufferevent_setcb(bev, on_read, on_write, on_event, c);
	/* Input is bounded by the windows, not by a read watermark (which
	 * libevent's OpenSSL bufferevent can stall at). */
	bufferevent_setwatermark(bev, EV_READ, 0, 0);
	bufferevent_setwatermark(bev, EV_WRITE, OUT_LOW_WATER, 0);
	bufferevent_set_max_single_read(bev, READ_MAX);
	bufferevent_set_max_single_write(bev, 1024 * 1024);
	tv.tv_sec = (time_t)(cf->send_timeout / 1000);
	tv.tv_usec = (suseconds_t)((cf->send_timeout % 1000) * 1000);
	bufferevent_set_timeouts(bev, NULL, &tv);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	c->next = h->conns;
	if (h->conns != NULL)
		h->conns->prev = c;
	h->conns = c;
	h->nconns++;
	gauge(h);
	EDGE_COUNTER_INC(w, h2_conns);
	/* The handshake may have brought the preface already. */
	if (evbuffer_get_length(bufferevent_get_input(bev)) > 0) {
		on_read(bev, c);
	} else {
		conn_tls_drain(c);
		schedule_flush(c); /* our SETTINGS */
	}
}

/* ---- API ---- */

void
edge_h2_adopt_tls(struct edge_h2 *e, struct bufferevent *bev, const char *peer)
{
	MAGIC_CHECK(&e->s, H2_SERVER_MAGIC);
	conn_start(&e->s, bev, peer, 1);
}

void
edge_h2_adopt_fd(struct edge_h2 *e, int fd, const struct sockaddr *peer)
{
	struct h2_server *h = &e->s;
	struct bufferevent *bev;
	char addr[INET6_ADDRSTRLEN] = "-";

	MAGIC_CHECK(h, H2_SERVER_MAGIC);
	if (peer->sa_family == AF_INET)
		inet_ntop(AF_INET,
		    &((const struct sockaddr_in *)(const void *)peer)->sin_addr,
		    addr, sizeof(addr));
	else if (peer->sa_family == AF_INET6)
		inet_ntop(AF_INET6,
		    &((const struct sockaddr_in6 *)(const void *)peer)
		         ->sin6_addr,
		    addr, sizeof(addr));
	/* TCP_NODELAY is inherited from the listener (worker_adopt). */
	evutil_make_socket_nonblocking(fd);
	bev = bufferevent_socket_new(h->w->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		close(fd);
		return;
	}
	conn_start(h, bev, addr, 0);
}

struct edge_h2 *
edge_h2_new(struct edge_worker *w)
{
	struct edge_h2 *e = cdn_xcalloc(1, sizeof(*e));
	struct h2_server *h = &e->s;
	nghttp2_session_callbacks *cb;

	h->magic = H2_SERVER_MAGIC;
	h->w = w;
	if (nghttp2_session_callbacks_new(&cb) != 0 ||
	    nghttp2_option_new(&h->opt) != 0)
		CDN_ASSERT(!"nghttp2 allocation"); /* small: out of memory */
	h->cbs = cb;
	h->recs = tls_rec_pool_new(RECS_KEPT);
	h->stage = cdn_xmalloc(TLS_REC_MAX);
	nghttp2_session_callbacks_set_send_callback(cb, on_send);
	nghttp2_session_callbacks_set_send_data_callback(cb, on_send_data);
	nghttp2_session_callbacks_set_on_begin_headers_callback(
	    cb, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback2(cb, on_header);
	nghttp2_session_callbacks_set_on_invalid_header_callback2(
	    cb, on_invalid_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(
	    cb, on_invalid_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
	    cb, on_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(
	    cb, on_stream_close);
	nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
	/* Request bodies open their windows as the edge reads them. */
	nghttp2_option_set_no_auto_window_update(h->opt, 1);
	/* Our encoder's table, whatever size the client allows. */
	nghttp2_option_set_max_deflate_dynamic_table_size(h->opt, HPACK_TABLE);
	/* Closed streams kept for the priority tree cost memory. */
	nghttp2_option_set_no_closed_streams(h->opt, 1);
	return e;
}

void
edge_h2_close_all(struct edge_h2 *e)
{
	MAGIC_CHECK(&e->s, H2_SERVER_MAGIC);
	e->s.closing_all = 1;
	while (e->s.conns != NULL)
		conn_free(e->s.conns);
	e->s.closing_all = 0;
}

void
edge_h2_drain(struct edge_h2 *e, void (*on_empty)(void *arg), void *arg)
{
	struct h2_server *h = &e->s;
	struct h2_conn *c, *next;

	MAGIC_CHECK(h, H2_SERVER_MAGIC);
	h->draining = 1;
	h->on_empty = on_empty;
	h->on_empty_arg = arg;
	for (c = h->conns; c != NULL; c = next) {
		next = c->next;
		if (!c->goaway) {
			c->goaway = 1;
			(void)nghttp2_submit_goaway(c->ss, NGHTTP2_FLAG_NONE,
			    nghttp2_session_get_last_proc_stream_id(c->ss),
			    NGHTTP2_NO_ERROR, NULL, 0);
		}
		if (c->nstreams == 0)
			conn_close_after_flush(c);
		schedule_flush(c);
	}
	server_maybe_empty(h);
}

unsigned
edge_h2_conn_count(const struct edge_h2 *e)
{
	MAGIC_CHECK(&e->s, H2_SERVER_MAGIC);
	return e->s.nconns;
}

void
edge_h2_free(struct edge_h2 **ep)
{
	struct edge_h2 *e = *ep;

	*ep = NULL;
	if (e == NULL)
		return;
	e->s.on_empty = NULL;
	edge_h2_close_all(e);
	while (e->s.releasing != NULL) {
		event_del(&e->s.releasing->ev);
		release_unlink_and_free(e->s.releasing);
	}
	tls_rec_pool_free(&e->s.recs);
	free(e->s.stage);
	nghttp2_session_callbacks_del(e->s.cbs);
	nghttp2_option_del(e->s.opt);
	MAGIC_WIPE(&e->s);
	free(e);
}
