/*
 * Origin fetches (origin/origin.h): libcurl multi on libevent, and the
 * dispatch to the native client (origin_h1.c).
 *
 * A fetch with a pool whose server is a plain http address is carried by
 * the native client (f->native, decided per attempt in fetch_set_server);
 * its events come back through h1_ops into the same head, body and finish
 * steps as curl's callbacks, so pools, retries, parents, timeouts and
 * counters below are shared.  Such a fetch gets an easy handle only if an
 * attempt goes to a server the native client cannot reach.
 *
 * Threading: a struct origin_multi, its curl multi handle, its sockets'
 * events and every fetch on it belong to the worker thread that created it.
 *
 * curl tells us which sockets to watch (on_curl_socket) and when to wake it
 * (on_curl_timer); libevent calls back into curl_multi_socket_action(), and
 * finished transfers are collected in check_done().  Our own per-fetch timer
 * enforces the first-byte and idle timeouts that curl has no option for;
 * the idle clock stops while the consumer has paused the transfer, so a
 * slow client is never mistaken for a stalled origin.
 *
 * A fetch is only freed outside curl callbacks (from check_done, our timer
 * or origin_fetch_cancel), as curl_multi_remove_handle() must not run
 * inside them.
 *
 * Pools (origin_pool.c): a fetch with a pool picks a server when it
 * starts.  When an idempotent request without a body could not connect,
 * it is sent once more to another server, still inside this file: the
 * consumer has seen nothing yet, so it sees one fetch either way.  Every
 * attempt's outcome feeds the pool's passive health checks.  A pool with
 * no server up ends the fetch with ORIGIN_ENOHEALTHY from a zero timer,
 * never inside origin_fetch_start(): the caller gets its fetch pointer
 * first, as with every other failure.
 *
 * Parents (a shield tier, docs/shield.md) are a pool tried before the
 * origin's, with their own request fields.  A parent that did not answer
 * (server_failed) hands a retryable request to the next parent in hash
 * order, then to the origin pool, unless parent_only; each move happens
 * before the consumer saw a head, so it still sees one fetch.
 *
 * https origins: curl verifies the certificate chain (system store or
 * origin_ca_file) and the host name, and sends SNI.  Each multi has a
 * share handle for TLS sessions, so a new connection to an origin resumes
 * the last one's session instead of a full handshake; it is used by one
 * thread only, so it needs no lock callbacks.  Plain http fetches set none
 * of these options.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/event_struct.h> /* struct event embedded in a fetch */

#include "common/cdn_log.h"
#include "origin/origin_head.h"
#include "origin/origin_int.h"

#define HEAD_MAX         ORIGIN_HEAD_MAX
#define ORIGIN_IDLE_EASY 64 /* easy handles kept for reuse per worker */

struct origin_multi {
	uint32_t magic;
#define ORIGIN_MULTI_MAGIC 0x1f7be2c5u
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	struct origin_fetch *fetches;
	CURLSH *share; /* TLS sessions of this worker's origin connections */
	/* Easy handles of finished fetches, reused: creating one per
	 * request was a measurable part of a miss, and so were resetting
	 * it and setting every option again (easy_get). */
	CURL *idle[ORIGIN_IDLE_EASY];
	unsigned nidle;
	char *ca_file, *client_cert, *client_key; /* NULL: default */
	struct origin_h1 *h1; /* the native client's connections */
};

static size_t on_curl_header(char *p, size_t size, size_t n, void *arg);
static size_t on_curl_write(char *p, size_t size, size_t n, void *arg);

/* The options every fetch has alike, set once per easy handle. */
static void
easy_set_common(CURL *e)
{
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_curl_header);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_curl_write);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	/* The client's path goes out byte for byte: no dot-segment folding. */
	curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 65536L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	/* RFC 9112 §6.3: a body in a transfer coding other than chunked is
	 * read until the origin closes and passed on as it came.  curl would
	 * stack a decoder for it (CURLE_BAD_CONTENT_ENCODING for one it does
	 * not know); no Content-Encoding is decoded either, as no
	 * CURLOPT_ACCEPT_ENCODING is set.  chunked is still removed. */
	curl_easy_setopt(e, CURLOPT_HTTP_CONTENT_DECODING, 0L);
}

/*
 * An easy handle with the common options.  A reused one keeps the options
 * of its last fetch: those that every fetch sets (origin_fetch_start,
 * fetch_set_server) are simply set again, and a fetch that set any other
 * (TLS, a request body, a method other than GET) left it <dirty>, to be
 * reset first.
 */
static CURL *
easy_get(struct origin_multi *m)
{
	CURL *e;

	if (m->nidle == 0) {
		e = curl_easy_init();
		if (e != NULL)
			easy_set_common(e);
		return e;
	}
	return m->idle[--m->nidle];
}

static void
easy_put(struct origin_multi *m, CURL *e, int dirty)
{
	if (m->nidle == ORIGIN_IDLE_EASY) {
		curl_easy_cleanup(e);
		return;
	}
	if (dirty) {
		curl_easy_reset(e);
		easy_set_common(e);
	}
	m->idle[m->nidle++] = e;
}

struct origin_sock {
	struct event *ev;
	struct origin_multi *m;
};

struct origin_fetch {
	uint32_t magic;
#define ORIGIN_FETCH_MAGIC 0x8d2a64f1u
	struct origin_multi *m;
	struct origin_fetch *next, *prev;
	CURL *easy; /* NULL until an attempt needs libcurl */
	/* The native client's connection of this attempt (origin_h1.c), or
	 * NULL when libcurl carries it. */
	struct origin_h1_conn *h1;
	/* A native-capable fetch's method, for a late easy handle; its
	 * allocation holds target, fields and pfields too. */
	char *method;
	int64_t body_length;  /* of the request body, if any; -1: unknown */
	uint64_t deadline_ns; /* native: the attempt's total_ms runs out */
	/* A native-capable fetch's request fields as origin_request has
	 * them (pfields: sent to parents instead of fields). */
	const char *fields, *pfields;
	size_t fields_len, pfields_len;
	/* The same as curl's lists, made with the fetch's easy handle. */
	struct curl_slist *fields_list, *pfields_list;
	struct curl_slist *connect_to; /* CURLOPT_CONNECT_TO, or NULL */
	struct origin_fetch_ops ops;
	void *arg;
	struct origin_timeouts to;
	struct event timer;
	/* The idle timer is lazy: body bytes note when they came, and the
	 * timer, when it fires, moves itself to idle_ms after the last.  0
	 * while the pending timer is another phase's. */
	uint64_t idle_armed_ns; /* when the idle timer was (re)armed */
	uint64_t idle_seen_ns;  /* body bytes last came */
	uint64_t start_ns;
	uint64_t head_ns;

	int status;
	int64_t content_length;
	/* Framing of the head being read (RFC 9112 §6): reset per status
	 * line, so an interim response's fields do not count. */
	struct origin_head hs;
	char *head;
	size_t head_len, head_cap;
	unsigned head_done : 1;
	unsigned recv_paused : 1;
	unsigned send_paused : 1;
	unsigned in_callback : 1;
	unsigned retryable : 1; /* idempotent, no body: may go elsewhere */
	unsigned retried : 1;
	unsigned counted : 1;   /* origin_pool_conn_begin() was called */
	unsigned is_tls : 1;    /* an https URL: a TLS handshake comes first */
	unsigned on_parent : 1; /* this attempt goes to a parent */
	unsigned parent_only : 1; /* never to origin_pool */
	unsigned easy_dirty : 1;  /* an option beyond the usual set: reset */
	unsigned native_ok : 1;   /* pooled: the native client may carry it */
	unsigned has_body : 1;
	unsigned native : 1; /* this attempt is the native client's */
	unsigned is_head : 1;
	struct origin_pool *pool; /* of this attempt: parents or origin_pool */
	struct origin_pool *parents, *origin_pool;
	uint64_t parents_tried; /* bit i: parent i failed this fetch */
	int srv;                /* the pool's server of this attempt, or -1 */
	char *target; /* with a pool: what follows the server's base (in
	               * f->method's allocation) */
	uint64_t hash_key;
	enum origin_err timer_err;    /* set when our timer ended the fetch */
	char errbuf[CURL_ERROR_SIZE]; /* curl's detail of a failure */
};

static const char *const err_names[] = {
    [ORIGIN_OK] = "ok",
    [ORIGIN_ECONNECT] = "connect",
    [ORIGIN_ETIMEOUT_CONNECT] = "connect_timeout",
    [ORIGIN_ETIMEOUT_TLS] = "tls_timeout",
    [ORIGIN_ETIMEOUT_FIRST_BYTE] = "first_byte_timeout",
    [ORIGIN_ETIMEOUT_IDLE] = "idle_timeout",
    [ORIGIN_ERESET] = "reset",
    [ORIGIN_EPROTO] = "protocol",
    [ORIGIN_EINTERNAL] = "internal",
    [ORIGIN_ETLS] = "tls",
    [ORIGIN_ENOHEALTHY] = "no_healthy_server",
};
_Static_assert(CDN_ARRAY_LEN(err_names) == ORIGIN_ERR_KINDS,
    "a name for every origin_err");

const char *
origin_err_name(enum origin_err e)
{
	CDN_ASSERT((unsigned)e < CDN_ARRAY_LEN(err_names));
	return err_names[e];
}

int
origin_err_status(enum origin_err e)
{
	switch (e) {
	case ORIGIN_ETIMEOUT_CONNECT:
	case ORIGIN_ETIMEOUT_TLS:
	case ORIGIN_ETIMEOUT_FIRST_BYTE:
		return 504;
	case ORIGIN_ENOHEALTHY:
		return 503; /* nothing to send to */
	default:
		return 502;
	}
}

static void check_done(struct origin_multi *m);

/* ---- curl <-> libevent plumbing ---- */

static void
on_sock_event(evutil_socket_t fd, short what, void *arg)
{
	struct origin_sock *os = arg;
	struct origin_multi *m = os->m; /* os may die inside socket_action */
	int flags = 0, running;

	if (what & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(m->multi, fd, flags, &running);
	check_done(m);
}

static int
on_curl_socket(
    CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct origin_multi *m = userp;
	struct origin_sock *os = socketp;
	short kind = EV_PERSIST;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (os != NULL) {
			event_free(os->ev);
			free(os);
			curl_multi_assign(m->multi, fd, NULL);
		}
		return 0;
	}
	if (what & CURL_POLL_IN)
		kind |= EV_READ;
	if (what & CURL_POLL_OUT)
		kind |= EV_WRITE;
	if (os == NULL) {
		os = cdn_xmalloc(sizeof(*os));
		os->m = m;
		os->ev = event_new(m->base, fd, kind, on_sock_event, os);
		curl_multi_assign(m->multi, fd, os);
	} else {
		event_del(os->ev);
		event_assign(os->ev, m->base, fd, kind, on_sock_event, os);
	}
	event_add(os->ev, NULL);
	return 0;
}

static void
on_multi_timer(evutil_socket_t fd, short what, void *arg)
{
	struct origin_multi *m = arg;
	int running;

	(void)fd;
	(void)what;
	curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(m);
}

static int
on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct origin_multi *m = userp;
	struct timeval tv;

	(void)multi;
	if (timeout_ms < 0) {
		evtimer_del(m->timer);
		return 0;
	}
	/* Never call socket_action from here: curl forbids the recursion. */
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	evtimer_add(m->timer, &tv);
	return 0;
}

struct origin_multi *
origin_multi_new(struct event_base *base)
{
	struct origin_multi *m = cdn_xcalloc(1, sizeof(*m));

	m->magic = ORIGIN_MULTI_MAGIC;
	m->base = base;
	m->multi = curl_multi_init();
	CDN_ASSERT(m->multi != NULL);
	m->timer = evtimer_new(base, on_multi_timer, m);
	curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
	curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
	curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
	/* Idle keep-alive connections kept per worker. */
	curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, 256L);
	m->h1 = origin_h1_new(base);
	m->share = curl_share_init();
	if (m->share != NULL &&
	    curl_share_setopt(m->share, CURLSHOPT_SHARE,
	        CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK) {
		curl_share_cleanup(m->share);
		m->share = NULL; /* no resumption: every connection is full */
	}
	return m;
}

static char *
dup_or_null(const char *s)
{
	return s != NULL && s[0] != '\0' ? cdn_xstrdup(s) : NULL;
}

void
origin_multi_set_tls(struct origin_multi *m, const struct origin_tls_conf *tls)
{
	MAGIC_CHECK(m, ORIGIN_MULTI_MAGIC);
	free(m->ca_file);
	free(m->client_cert);
	free(m->client_key);
	m->ca_file = dup_or_null(tls->ca_file);
	m->client_cert = dup_or_null(tls->client_cert);
	m->client_key = dup_or_null(tls->client_key);
}

/* ---- fetch ---- */

static void
fetch_arm_timer(struct origin_fetch *f, uint64_t ms)
{
	struct timeval tv;

	/* libcurl keeps the total timeout itself; the native client has
	 * this timer only. */
	if (f->native && f->to.total_ms > 0) {
		uint64_t now = cdn_now_ns(), left_ms = 0;

		if (f->deadline_ns > now)
			left_ms = (f->deadline_ns - now + 999999) / 1000000;
		if (ms > left_ms)
			ms = left_ms;
	}
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
	evtimer_add(&f->timer, &tv);
	f->idle_armed_ns = 0;
}

/* Arm the idle timer, counting from <now_ns>. */
static void
fetch_arm_idle(struct origin_fetch *f, uint64_t now_ns)
{
	fetch_arm_timer(f, f->to.idle_ms);
	f->idle_armed_ns = f->idle_seen_ns = now_ns;
}

/*
 * The idle timer fired: if bytes came since it was armed, arm it again
 * for idle_ms after the last of them and return 1 (no timeout yet).  An
 * attempt past its deadline (total_ms) has timed out whatever came.
 */
static int
idle_deferred(struct origin_fetch *f)
{
	uint64_t now, due;

	if (f->idle_armed_ns == 0 || f->idle_seen_ns <= f->idle_armed_ns)
		return 0;
	now = cdn_now_ns();
	if (f->native && f->to.total_ms > 0 && now >= f->deadline_ns)
		return 0;
	due = f->idle_seen_ns + f->to.idle_ms * 1000000u;
	if (due <= now)
		return 0;
	fetch_arm_timer(f, (due - now + 999999) / 1000000);
	f->idle_armed_ns = now;
	return 1;
}

/* Detach from curl and free; no callback is called. */
static void
fetch_free(struct origin_fetch *f)
{
	struct origin_multi *m = f->m;

	CDN_ASSERT(!f->in_callback);
	if (f->counted)
		origin_pool_conn_end(f->pool, (unsigned)f->srv);
	f->pool = NULL;
	origin_pool_free(&f->parents);
	origin_pool_free(&f->origin_pool);
	free(f->method); /* and f->target */
	origin_h1_abort(&f->h1);
	if (f->easy != NULL) {
		curl_multi_remove_handle(m->multi, f->easy);
		easy_put(m, f->easy, f->easy_dirty);
	}
	free(f->fields_list);
	free(f->pfields_list);
	curl_slist_free_all(f->connect_to);
	event_del(&f->timer);
	free(f->head);
	if (f->prev != NULL)
		f->prev->next = f->next;
	else
		m->fetches = f->next;
	if (f->next != NULL)
		f->next->prev = f->prev;
	MAGIC_WIPE(f);
	free(f);
}

static void
fetch_end(struct origin_fetch *f, enum origin_err e)
{
	if (f->pool != NULL)
		origin_pool_count_end(f->pool, f->srv, e);
	if (f->easy != NULL)
		curl_multi_remove_handle(f->m->multi, f->easy);
	evtimer_del(&f->timer);
	f->ops.on_done(f, f->arg, e);
	fetch_free(f);
}

/* Whether <e> means the server did not answer (passive health). */
static int
server_failed(const struct origin_fetch *f, enum origin_err e)
{
	switch (e) {
	case ORIGIN_ECONNECT:
	case ORIGIN_ETIMEOUT_CONNECT:
	case ORIGIN_ETIMEOUT_TLS:
	case ORIGIN_ETIMEOUT_FIRST_BYTE:
	case ORIGIN_ETLS:
		return 1;
	case ORIGIN_ERESET:
	case ORIGIN_EPROTO:
		return !f->head_done;
	default:
		return 0;
	}
}

static int fetch_set_server(struct origin_fetch *f);
static int attempt_start(struct origin_fetch *f);
static int easy_attach(struct origin_fetch *f);

/* Send the request again, to server <next> of <pool>, after the attempt
 * failed with <e> (the consumer has seen nothing). */
static void
fetch_move(struct origin_fetch *f, struct origin_pool *pool, int next,
    enum origin_err e)
{
	CDN_LOG(CDN_LOG_INFO, "origin", "retrying on %s after %s",
	    origin_pool_server_base(pool, (unsigned)next), origin_err_name(e));
	if (f->easy != NULL)
		curl_multi_remove_handle(f->m->multi, f->easy);
	origin_h1_abort(&f->h1);
	evtimer_del(&f->timer);
	origin_pool_conn_end(f->pool, (unsigned)f->srv);
	f->counted = 0;
	f->pool = pool;
	f->srv = next;
	f->errbuf[0] = '\0';
	f->status = -1;
	f->head_len = 0;
	if (fetch_set_server(f) != CDN_OK || attempt_start(f) != CDN_OK)
		fetch_end(f, e);
}

/*
 * A parent did not answer: the next parent in hash order, else the
 * origin pool (whose own one retry is still to come), else the end.
 */
static void
parent_failed(struct origin_fetch *f, enum origin_err e)
{
	int next;

	f->parents_tried |= UINT64_C(1) << f->srv;
	next =
	    origin_pool_pick_except(f->parents, f->hash_key, f->parents_tried);
	if (next >= 0) {
		origin_pool_count_retry(f->parents);
		fetch_move(f, f->parents, next, e);
		return;
	}
	next = -1;
	if (!f->parent_only)
		next = origin_pool_pick(f->origin_pool, f->hash_key, -1);
	if (next < 0) {
		fetch_end(f, e);
		return;
	}
	f->on_parent = 0;
	fetch_move(f, f->origin_pool, next, e);
}

/*
 * The attempt ended with <e>: tell the pool, and either send the request
 * to another server (a connect failure of a retryable fetch, once; any
 * failure to answer of a parent) or end the fetch.  Not inside curl
 * callbacks.
 */
static void
fetch_finish(struct origin_fetch *f, enum origin_err e)
{
	int next;

	if (f->pool == NULL || f->srv < 0) {
		fetch_end(f, e);
		return;
	}
	if (e == ORIGIN_OK || f->head_done || server_failed(f, e))
		origin_pool_report(f->pool, (unsigned)f->srv,
		    e != ORIGIN_OK && server_failed(f, e));
	/* A parent is a cache: an idempotent request it did not answer may
	 * go elsewhere even after it went out. */
	if (f->on_parent && e != ORIGIN_OK && server_failed(f, e) &&
	    f->retryable && !f->head_done) {
		parent_failed(f, e);
		return;
	}
	/* Before the request went out: safe to send elsewhere. */
	if ((e != ORIGIN_ECONNECT && e != ORIGIN_ETIMEOUT_CONNECT &&
	        e != ORIGIN_ETIMEOUT_TLS) ||
	    !f->retryable || f->retried || f->head_done || f->on_parent) {
		fetch_end(f, e);
		return;
	}
	next = origin_pool_pick(f->pool, f->hash_key, f->srv);
	if (next < 0) {
		fetch_end(f, e);
		return;
	}
	origin_pool_count_retry(f->pool);
	f->retried = 1;
	fetch_move(f, f->pool, next, e);
}

/*
 * The phase a timeout hit.  curl says CURLE_OPERATION_TIMEDOUT for every
 * phase, so its timings of the attempt tell: PRETRANSFER is set once the
 * request goes out, on a new connection or a reused one, whereas a reused
 * connection reads 0 for CONNECT, APPCONNECT and NUM_CONNECTS, as one
 * still connecting does.  curl 7.88 also reads CONNECT 0 until the TLS
 * handshake is over, but NUM_CONNECTS 1 from the TCP connect on.
 */
static enum origin_err
timeout_phase(struct origin_fetch *f)
{
	curl_off_t pre = 0, conn = 0, app = 0;
	long nconn = 0;

	if (f->head_done)
		return ORIGIN_ETIMEOUT_IDLE;
	if (f->native)
		return f->h1 != NULL && origin_h1_sent(f->h1)
		    ? ORIGIN_ETIMEOUT_FIRST_BYTE
		    : ORIGIN_ETIMEOUT_CONNECT;
	curl_easy_getinfo(f->easy, CURLINFO_PRETRANSFER_TIME_T, &pre);
	if (pre > 0)
		return ORIGIN_ETIMEOUT_FIRST_BYTE;
	curl_easy_getinfo(f->easy, CURLINFO_CONNECT_TIME_T, &conn);
	curl_easy_getinfo(f->easy, CURLINFO_NUM_CONNECTS, &nconn);
	if (conn == 0 && nconn == 0)
		return ORIGIN_ETIMEOUT_CONNECT;
	curl_easy_getinfo(f->easy, CURLINFO_APPCONNECT_TIME_T, &app);
	if (f->is_tls && app == 0)
		return ORIGIN_ETIMEOUT_TLS;
	return ORIGIN_ETIMEOUT_FIRST_BYTE;
}

static enum origin_err
map_curl_error(struct origin_fetch *f, CURLcode rc)
{
	switch (rc) {
	case CURLE_OK:
		return ORIGIN_OK;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return ORIGIN_ECONNECT;
	case CURLE_OPERATION_TIMEDOUT:
		return timeout_phase(f);
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_BAD_CONTENT_ENCODING:
	case CURLE_TOO_MANY_REDIRECTS:
		return ORIGIN_EPROTO;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_USE_SSL_FAILED:
		return ORIGIN_ETLS;
	case CURLE_WRITE_ERROR:
	case CURLE_READ_ERROR:
	case CURLE_ABORTED_BY_CALLBACK:
	case CURLE_OUT_OF_MEMORY:
		return f->head_done ? ORIGIN_EINTERNAL : ORIGIN_EPROTO;
	default:
		return ORIGIN_ERESET;
	}
}

static void
check_done(struct origin_multi *m)
{
	struct origin_fetch *f;
	CURLMsg *msg;
	int left;
	enum origin_err e;

	while ((msg = curl_multi_info_read(m->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		/* msg dies at curl_multi_remove_handle: read it first. */
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &f);
		MAGIC_CHECK(f, ORIGIN_FETCH_MAGIC);
		e = map_curl_error(f, msg->data.result);
		if (e != ORIGIN_OK)
			CDN_LOG(CDN_LOG_INFO, "origin",
			    "fetch failed: %s (%s)%s%s",
			    curl_easy_strerror(msg->data.result),
			    origin_err_name(e),
			    f->errbuf[0] != '\0' ? ": " : "", f->errbuf);
		fetch_finish(f, e);
	}
}

static void
on_fetch_timer(evutil_socket_t fd, short what, void *arg)
{
	struct origin_fetch *f = arg;
	enum origin_err e;

	(void)fd;
	(void)what;
	MAGIC_CHECK(f, ORIGIN_FETCH_MAGIC);
	if (f->timer_err != ORIGIN_OK) {
		fetch_end(f, f->timer_err); /* decided at the start */
		return;
	}
	if (idle_deferred(f))
		return;
	e = timeout_phase(f);
	CDN_LOG(
	    CDN_LOG_INFO, "origin", "fetch timed out: %s", origin_err_name(e));
	fetch_finish(f, e);
}

static int
head_append(struct origin_fetch *f, const char *p, size_t len)
{
	size_t cap;
	char *n;

	if (f->head_len + len > HEAD_MAX)
		return -1;
	if (f->head_len + len > f->head_cap) {
		cap = f->head_cap ? f->head_cap * 2 : 2048;
		while (cap < f->head_len + len)
			cap *= 2;
		n = realloc(f->head, cap);
		if (n == NULL)
			return -1;
		f->head = n;
		f->head_cap = cap;
	}
	memcpy(f->head + f->head_len, p, len);
	f->head_len += len;
	return 0;
}

/* Which server this fetch talks to, for log lines. */
static const char *
fetch_server_name(const struct origin_fetch *f)
{
	char *url = NULL;

	if (f->pool != NULL && f->srv >= 0)
		return origin_pool_server_base(f->pool, (unsigned)f->srv);
	if (f->easy != NULL &&
	    curl_easy_getinfo(f->easy, CURLINFO_EFFECTIVE_URL, &url) ==
	        CURLE_OK &&
	    url != NULL)
		return url;
	return "(unknown server)";
}

/*
 * Refuse the origin's response head: returning 0 from the header callback
 * ends the transfer (CURLE_WRITE_ERROR, ORIGIN_EPROTO: a 502), before
 * anything of it reached a client or the cache.
 */
static size_t
head_refuse(struct origin_fetch *f, const char *why)
{
	CDN_LOG(CDN_LOG_WARN, "origin", "%s: invalid response head: %s",
	    fetch_server_name(f), why);
	return 0;
}

/* RFC 9112 §6.3 for the head now complete (origin_head_framing()). */
static const char *
head_framing_error(const struct origin_fetch *f)
{
	return origin_head_framing(&f->hs);
}

/* The final head is in (either client): its clock, then the consumer. */
static void
fetch_head(struct origin_fetch *f, const char *fields, size_t len)
{
	f->head_done = 1;
	f->head_ns = cdn_now_ns();
	if (f->pool != NULL)
		origin_pool_count_head(
		    f->pool, f->srv, (f->head_ns - f->start_ns) / 1000u);
	evtimer_del(&f->timer);
	fetch_arm_idle(f, f->head_ns);
	f->in_callback = 1;
	f->ops.on_head(f, f->arg, f->status, fields, len, f->content_length);
	f->in_callback = 0;
}

static void
fetch_interim(struct origin_fetch *f, const char *fields, size_t len)
{
	if (f->ops.on_interim == NULL)
		return;
	f->in_callback = 1;
	f->ops.on_interim(f, f->arg, f->status, fields, len);
	f->in_callback = 0;
}

/* Body bytes (either client): len taken, or ORIGIN_PAUSE. */
static size_t
fetch_body(struct origin_fetch *f, const char *p, size_t len)
{
	size_t took;

	f->in_callback = 1;
	took = f->ops.on_body(f, f->arg, p, len);
	f->in_callback = 0;
	if (took == ORIGIN_PAUSE) {
		f->recv_paused = 1;
		evtimer_del(&f->timer); /* the client is slow, not the origin */
		f->idle_armed_ns = 0;
		return ORIGIN_PAUSE;
	}
	/* Not an event_add per piece: the timer moves when it fires. */
	if (f->idle_armed_ns != 0)
		f->idle_seen_ns = cdn_now_ns();
	else
		fetch_arm_idle(f, cdn_now_ns());
	return took;
}

/* One line of the origin's response head, the status line included. */
static size_t
on_curl_header(char *p, size_t size, size_t n, void *arg)
{
	struct origin_fetch *f = arg;
	size_t len = size * n, body;
	const char *why;

	if (f->head_done)
		return len; /* trailer fields of a chunked body: dropped */
	if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		const char *sp = memchr(p, ' ', len);

		f->head_len = 0;
		f->content_length = -1;
		origin_head_reset(&f->hs);
		f->status = -1;
		if (sp != NULL && (size_t)(p + len - sp) >= 4 && sp[1] >= '1' &&
		    sp[1] <= '5' && sp[2] >= '0' && sp[2] <= '9' &&
		    sp[3] >= '0' && sp[3] <= '9')
			f->status = (sp[1] - '0') * 100 + (sp[2] - '0') * 10 +
			    (sp[3] - '0');
		return f->status == -1 ? 0 : len;
	}
	if (len <= 2 && (p[0] == '\r' || p[0] == '\n')) {
		if (f->status < 200) {
			/* Interim: its fields end here, the final head's
			 * start at the next status line. */
			fetch_interim(
			    f, f->head != NULL ? f->head : "", f->head_len);
			return len;
		}
		why = head_framing_error(f);
		if (why != NULL)
			return head_refuse(f, why);
		/* A head of no fields is "", not NULL: readers do
		 * fields + len. */
		fetch_head(f, f->head != NULL ? f->head : "", f->head_len);
		return len;
	}
	/* Store each line with a CRLF ending, whatever the origin sent. */
	body = len;
	while (body > 0 && (p[body - 1] == '\r' || p[body - 1] == '\n'))
		body--;
	if (body == 0)
		return 0;
	why = origin_head_field(&f->hs, p, body);
	if (why != NULL)
		return head_refuse(f, why);
	f->content_length = f->hs.content_length;
	if (head_append(f, p, body) != 0 || head_append(f, "\r\n", 2) != 0)
		return 0;
	return len;
}

static size_t
on_curl_write(char *p, size_t size, size_t n, void *arg)
{
	struct origin_fetch *f = arg;
	size_t len = size * n, took;

	if (!f->head_done)
		return 0;
	took = fetch_body(f, p, len);
	return took == ORIGIN_PAUSE ? CURL_WRITEFUNC_PAUSE : took;
}

/* ---- the native client's events (origin_h1.c) ---- */

static void
h1_sent(void *arg)
{
	struct origin_fetch *f = arg;

	fetch_arm_timer(f, f->to.first_byte_ms);
}

static void
h1_interim(void *arg, int status, const char *fields, size_t len)
{
	struct origin_fetch *f = arg;

	f->status = status;
	fetch_interim(f, fields, len);
}

static void
h1_head(void *arg, const struct origin_head *h, const char *fields, size_t len)
{
	struct origin_fetch *f = arg;

	f->hs = *h;
	f->status = h->status;
	f->content_length = h->content_length;
	fetch_head(f, fields, len);
}

static size_t
h1_body(void *arg, const char *p, size_t len)
{
	return fetch_body(arg, p, len);
}

static size_t
h1_upload(void *arg, char *buf, size_t max)
{
	struct origin_fetch *f = arg;
	size_t got;

	f->in_callback = 1;
	got = f->ops.on_upload(f, f->arg, buf, max);
	f->in_callback = 0;
	if (got == ORIGIN_PAUSE)
		f->send_paused = 1;
	return got;
}

static void
h1_refused(void *arg, const char *why)
{
	head_refuse(arg, why);
}

static void
h1_done(void *arg, enum origin_err e)
{
	struct origin_fetch *f = arg;

	f->h1 = NULL; /* gone, or kept for the next request */
	if (e != ORIGIN_OK)
		CDN_LOG(CDN_LOG_INFO, "origin", "fetch failed: %s (%s)",
		    fetch_server_name(f), origin_err_name(e));
	fetch_finish(f, e);
}

static const struct origin_h1_ops h1_ops = {
    .sent = h1_sent,
    .interim = h1_interim,
    .head = h1_head,
    .upload = h1_upload,
    .body = h1_body,
    .done = h1_done,
    .refused = h1_refused,
};

static size_t
on_curl_read(char *buf, size_t size, size_t n, void *arg)
{
	struct origin_fetch *f = arg;
	size_t got;

	f->in_callback = 1;
	got = f->ops.on_upload(f, f->arg, buf, size * n);
	f->in_callback = 0;
	if (got == ORIGIN_PAUSE) {
		f->send_paused = 1;
		return CURL_READFUNC_PAUSE;
	}
	if (got == 0) /* request sent: the first-byte clock starts now */
		fetch_arm_timer(f, f->to.first_byte_ms);
	return got;
}

static void
fetch_repause(struct origin_fetch *f)
{
	int bits = 0;

	if (f->recv_paused)
		bits |= CURLPAUSE_RECV;
	if (f->send_paused)
		bits |= CURLPAUSE_SEND;
	curl_easy_pause(f->easy, bits);
}

void
origin_fetch_resume_body(struct origin_fetch *f)
{
	MAGIC_CHECK(f, ORIGIN_FETCH_MAGIC);
	if (!f->recv_paused)
		return;
	f->recv_paused = 0;
	fetch_arm_idle(f, cdn_now_ns());
	if (f->native) {
		if (f->h1 != NULL)
			origin_h1_resume(f->h1);
		return;
	}
	fetch_repause(f);
}

void
origin_fetch_resume_upload(struct origin_fetch *f)
{
	MAGIC_CHECK(f, ORIGIN_FETCH_MAGIC);
	if (!f->send_paused)
		return;
	f->send_paused = 0;
	if (f->native) {
		if (f->h1 != NULL)
			origin_h1_resume_upload(f->h1);
		return;
	}
	fetch_repause(f);
}

int
origin_fetch_on_parent(const struct origin_fetch *f)
{
	MAGIC_CHECK(f, ORIGIN_FETCH_MAGIC);
	return f->on_parent;
}

const char *
origin_fetch_server(const struct origin_fetch *f)
{
	MAGIC_CHECK(f, ORIGIN_FETCH_MAGIC);
	if (f->pool == NULL || f->srv < 0)
		return NULL;
	return origin_pool_server_base(f->pool, (unsigned)f->srv);
}

uint64_t
origin_fetch_first_byte_ms(const struct origin_fetch *f)
{
	MAGIC_CHECK(f, ORIGIN_FETCH_MAGIC);
	if (!f->head_done)
		return 0;
	return (f->head_ns - f->start_ns) / 1000000u;
}

uint64_t
origin_fetch_first_byte_us(const struct origin_fetch *f)
{
	MAGIC_CHECK(f, ORIGIN_FETCH_MAGIC);
	if (!f->head_done)
		return 0;
	return (f->head_ns - f->start_ns) / 1000u;
}

/* TLS options of an https fetch (curl verifies peer and host by default). */
static void
fetch_set_tls(struct origin_multi *m, CURL *e)
{
	curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	if (m->share != NULL)
		curl_easy_setopt(e, CURLOPT_SHARE, m->share);
	if (m->ca_file != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, m->ca_file);
	if (m->client_cert != NULL) {
		curl_easy_setopt(e, CURLOPT_SSLCERT, m->client_cert);
		curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
		curl_easy_setopt(e, CURLOPT_SSLKEY,
		    m->client_key != NULL ? m->client_key : m->client_cert);
		curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
	}
}

/*
 * Point the easy handle at server f->srv of the pool: the URL, and the
 * address to connect to when the URL carries the TLS name instead.
 * CDN_ENOMEM (the client sized the target) leaves the server uncounted.
 */
static int
fetch_set_server(struct origin_fetch *f)
{
	struct curl_slist *ct = NULL;
	const char *base, *to;
	size_t blen, tlen;
	char *url;

	CDN_ASSERT(f->pool != NULL && f->srv >= 0);
	f->native = f->native_ok &&
	    origin_pool_h1_server(f->pool, (unsigned)f->srv) != NULL;
	if (f->native) {
		origin_pool_conn_begin(f->pool, (unsigned)f->srv);
		f->counted = 1;
		return CDN_OK;
	}
	if (f->easy == NULL && easy_attach(f) != CDN_OK)
		return CDN_ENOMEM;
	base = origin_pool_server_base(f->pool, (unsigned)f->srv);
	to = origin_pool_connect_to(f->pool, (unsigned)f->srv);
	/* As long as the target is (max_request_line): never cut. */
	blen = strlen(base);
	tlen = strlen(f->target);
	url = malloc(blen + tlen + 1);
	if (url == NULL)
		return CDN_ENOMEM;
	memcpy(url, base, blen);
	memcpy(url + blen, f->target, tlen + 1);
	/* curl copies the URL string; the list is kept until the easy
	 * handle is reset, so it lives in the fetch. */
	curl_easy_setopt(f->easy, CURLOPT_URL, url);
	free(url);
	curl_easy_setopt(f->easy, CURLOPT_HTTPHEADER,
	    f->on_parent ? f->pfields_list : f->fields_list);
	curl_slist_free_all(f->connect_to);
	f->connect_to = NULL;
	if (to != NULL)
		ct = curl_slist_append(NULL, to);
	f->connect_to = ct;
	curl_easy_setopt(f->easy, CURLOPT_CONNECT_TO, ct);
	f->is_tls = strncasecmp(base, "https:", 6) == 0;
	if (f->is_tls) {
		f->easy_dirty = 1;
		fetch_set_tls(f->m, f->easy);
	}
	origin_pool_conn_begin(f->pool, (unsigned)f->srv);
	f->counted = 1;
	return CDN_OK;
}

/*
 * The request's fields (<len> bytes laid out as origin_request's) as a
 * curl list, and "Expect:" last: we forward the client's own Expect
 * handling, so curl must not wait.  One allocation holds the nodes and a
 * copy of the strings (curl reads the list and never frees it), where
 * curl_slist_append() made two per field; free() frees it.  NULL when out
 * of memory (the client sized the fields).
 */
static struct curl_slist *
field_list(const char *fields, size_t len)
{
	static const char expect[] = "Expect:";
	const char *q = fields, *end = len > 0 ? fields + len : fields;
	struct curl_slist *l;
	size_t n = 1, bytes = len + sizeof(expect);
	char *p;

	for (; q < end; n++)
		q = (const char *)memchr(q, '\0', (size_t)(end - q)) + 1;
	l = malloc(n * sizeof(*l) + bytes);
	if (l == NULL)
		return NULL;
	p = (char *)(l + n);
	if (len > 0)
		memcpy(p, fields, len);
	memcpy(p + len, expect, sizeof(expect));
	end = p + bytes;
	for (size_t i = 0; i < n; i++) {
		l[i].data = p;
		l[i].next = i + 1 < n ? &l[i + 1] : NULL;
		p = (char *)memchr(p, '\0', (size_t)(end - p)) + 1;
	}
	return l;
}

static int
method_idempotent(const char *m)
{
	/* RFC 9110 §9.2.2. */
	return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 ||
	    strcmp(m, "OPTIONS") == 0 || strcmp(m, "DELETE") == 0 ||
	    strcmp(m, "PUT") == 0;
}

/*
 * The per-fetch options of a new attempt's easy handle (the common ones
 * are set already): callbacks' data, timeouts and the method.
 */
static void
easy_set_fetch(struct origin_fetch *f, const char *method, int is_head,
    int has_body, int64_t body_length)
{
	CURL *e = f->easy;

	curl_easy_setopt(e, CURLOPT_PRIVATE, f);
	/* fetch_set_server() picks the parents' list for a parent. */
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, f->fields_list);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, f);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)f->to.connect_ms);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, f->errbuf);
	/* 0: none, curl's default. */
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
	    f->to.total_ms > 0 ? (long)f->to.total_ms : 0L);
	curl_easy_setopt(e, CURLOPT_CONNECT_TO, (struct curl_slist *)NULL);
	f->easy_dirty |= is_head || has_body || strcmp(method, "GET") != 0;
	if (is_head) {
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	} else if (has_body) {
		curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(e, CURLOPT_READFUNCTION, on_curl_read);
		curl_easy_setopt(e, CURLOPT_READDATA, f);
		curl_easy_setopt(
		    e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)body_length);
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	} else if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	} else {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	}
}

/* curl's lists of the request's fields (<pfields>: NULL without
 * parents).  CDN_ENOMEM when memory ran out. */
static int
easy_lists(struct origin_fetch *f, const char *fields, size_t len,
    const char *pfields, size_t plen)
{
	f->fields_list = field_list(fields, len);
	if (f->fields_list == NULL)
		return CDN_ENOMEM;
	if (pfields != NULL) {
		f->pfields_list = field_list(pfields, plen);
		if (f->pfields_list == NULL)
			return CDN_ENOMEM;
	}
	return CDN_OK;
}

/* A native-capable fetch whose attempt goes to a server the native client
 * cannot reach (https, a name) gets its easy handle now. */
static int
easy_attach(struct origin_fetch *f)
{
	if (easy_lists(f, f->fields, f->fields_len, f->pfields,
	        f->pfields_len) != CDN_OK)
		return CDN_ENOMEM;
	f->easy = easy_get(f->m);
	if (f->easy == NULL) {
		CDN_LOG(CDN_LOG_ERR, "origin", "curl_easy_init failed");
		return CDN_ENOMEM;
	}
	easy_set_fetch(f, f->method, f->is_head, f->has_body, f->body_length);
	return CDN_OK;
}

/*
 * The request head as the native client sends it, in one buffer: request
 * line, the fields of this attempt, Host if they had none, the body's
 * framing, the empty line.
 * Fields follow curl's conventions, as the callers write them for it:
 * "Name:" with no value removes a field curl would add (none here), so it
 * is not sent; "Name;" sends the field empty.  Each field's NUL becomes
 * its CRLF, one byte more for each field sent, and a field sent takes at
 * least three bytes ("X:" or "X;" and its NUL): a third of the fields'
 * bytes more is room enough.  NULL when out of memory.
 */
static char *
h1_request(const struct origin_fetch *f, const struct origin_h1_server *srv,
    size_t *lenp)
{
	static const char version[] = " HTTP/1.1\r\n";
	const char *q = f->on_parent ? f->pfields : f->fields, *v, *nul;
	size_t flen, len = f->on_parent ? f->pfields_len : f->fields_len,
	             mlen = strlen(f->method), tlen = strlen(f->target), n;
	const char *end = q + len;
	int has_host = 0, is_host;
	char *buf, *p;

	n = mlen + 1 + srv->prefix_len + tlen + sizeof(version) - 1 +
	    sizeof("Host: \r\n") - 1 + srv->authority_len + 2 +
	    sizeof("Transfer-Encoding: chunked\r\n") + 24 + len + len / 3;
	buf = malloc(n);
	if (buf == NULL)
		return NULL;
	p = buf;
	memcpy(p, f->method, mlen);
	p += mlen;
	*p++ = ' ';
	memcpy(p, srv->prefix, srv->prefix_len);
	p += srv->prefix_len;
	memcpy(p, f->target, tlen);
	p += tlen;
	memcpy(p, version, sizeof(version) - 1);
	p += sizeof(version) - 1;
	for (; q < end; q = nul + 1) {
		nul = memchr(q, '\0', (size_t)(end - q));
		flen = (size_t)(nul - q);
		v = memchr(q, ':', flen);
		if (v == NULL) {
			if (flen < 2 || q[flen - 1] != ';')
				continue;
			memcpy(p, q, flen - 1);
			p += flen - 1;
			memcpy(p, ":\r\n", 3);
			p += 3;
			continue;
		}
		is_host = v - q == 4 && strncasecmp(q, "Host", 4) == 0;
		for (v++; *v == ' ' || *v == '\t'; v++)
			;
		if (*v == '\0')
			continue;
		has_host |= is_host;
		memcpy(p, q, flen);
		p += flen;
		memcpy(p, "\r\n", 2);
		p += 2;
	}
	if (!has_host) {
		memcpy(p, "Host: ", 6);
		p += 6;
		memcpy(p, srv->authority, srv->authority_len);
		p += srv->authority_len;
		memcpy(p, "\r\n", 2);
		p += 2;
	}
	/* The body's framing is the client's to write (RFC 9112 §6). */
	if (f->has_body && f->body_length >= 0)
		p += sprintf(
		    p, "Content-Length: %lld\r\n", (long long)f->body_length);
	else if (f->has_body)
		p += sprintf(p, "Transfer-Encoding: chunked\r\n");
	memcpy(p, "\r\n", 2);
	p += 2;
	CDN_ASSERT((size_t)(p - buf) <= n);
	*lenp = (size_t)(p - buf);
	return buf;
}

/*
 * Send the request of this attempt, on the native client or libcurl, and
 * start its clock.  CDN_ENOMEM or CDN_EIO when it could not go out (the
 * caller ends the fetch).
 */
static int
attempt_start(struct origin_fetch *f)
{
	const struct origin_h1_server *srv;
	struct origin_h1_req how;
	CURLMcode mrc;
	char *req;
	size_t len;

	if (!f->native) {
		mrc = curl_multi_add_handle(f->m->multi, f->easy);
		if (mrc != CURLM_OK) {
			CDN_LOG(CDN_LOG_ERR, "origin",
			    "curl_multi_add_handle: %s",
			    curl_multi_strerror(mrc));
			return CDN_EIO;
		}
		fetch_arm_timer(f, f->to.first_byte_ms);
		return CDN_OK;
	}
	srv = origin_pool_h1_server(f->pool, (unsigned)f->srv);
	req = h1_request(f, srv, &len);
	if (req == NULL) {
		CDN_LOG(
		    CDN_LOG_ERR, "origin", "out of memory building a request");
		return CDN_ENOMEM;
	}
	f->deadline_ns = cdn_now_ns() + f->to.total_ms * 1000000u;
	how.is_head = f->is_head;
	how.retryable = f->retryable;
	how.has_body = f->has_body;
	how.body_length = f->body_length;
	f->h1 = origin_h1_start(f->m->h1, srv, req, len, &how, &h1_ops, f);
	/* Until the request is out, the connect timeout runs too. */
	if (origin_h1_sent(f->h1) || f->to.connect_ms == 0 ||
	    f->to.connect_ms > f->to.first_byte_ms)
		fetch_arm_timer(f, f->to.first_byte_ms);
	else
		fetch_arm_timer(f, f->to.connect_ms);
	return CDN_OK;
}

struct origin_fetch *
origin_fetch_start(struct origin_multi *m, const struct origin_request *req,
    const struct origin_timeouts *to, const struct origin_fetch_ops *ops,
    void *arg)
{
	struct origin_fetch *f;
	const char *target;
	size_t mlen, tlen, plen;
	char *p;

	MAGIC_CHECK(m, ORIGIN_MULTI_MAGIC);
	f = cdn_xcalloc(1, sizeof(*f));
	f->magic = ORIGIN_FETCH_MAGIC;
	f->m = m;
	f->ops = *ops;
	f->arg = arg;
	f->to = *to;
	f->status = -1;
	f->content_length = -1;
	origin_head_reset(&f->hs);
	f->start_ns = cdn_now_ns();
	evtimer_assign(&f->timer, m->base, on_fetch_timer, f);
	f->srv = -1;
	f->is_head = req->is_head != 0;
	f->has_body = req->has_body != 0;
	f->body_length = req->body_length;
	/* Unpooled fetches (health checks) stay with libcurl. */
	f->native_ok = req->pool != NULL;
	/* Every field ends in its NUL (the walks stop at the last). */
	CDN_ASSERT(
	    req->fields_len == 0 || req->fields[req->fields_len - 1] == '\0');
	CDN_ASSERT(req->parents == NULL ||
	    (req->pool != NULL && req->parent_fields != NULL &&
	        (req->parent_fields_len == 0 ||
	            req->parent_fields[req->parent_fields_len - 1] == '\0')));
	if (f->native_ok) {
		/* The method, the target and the fields, kept for every
		 * attempt: one allocation, freed with f->method. */
		target = req->target != NULL ? req->target : "/";
		mlen = strlen(req->method);
		tlen = strlen(target);
		plen = req->parents != NULL ? req->parent_fields_len : 0;
		f->method =
		    malloc(mlen + 1 + tlen + 1 + req->fields_len + plen);
		if (f->method == NULL)
			goto fail;
		memcpy(f->method, req->method, mlen + 1);
		f->target = f->method + mlen + 1;
		memcpy(f->target, target, tlen + 1);
		p = f->target + tlen + 1;
		if (req->fields_len > 0)
			memcpy(p, req->fields, req->fields_len);
		f->fields = p;
		f->fields_len = req->fields_len;
		if (req->parents != NULL) {
			p += req->fields_len;
			if (plen > 0)
				memcpy(p, req->parent_fields, plen);
			f->pfields = p;
			f->pfields_len = plen;
		}
	} else {
		if (easy_lists(f, req->fields, req->fields_len, NULL, 0) !=
		    CDN_OK)
			goto fail;
		f->easy = easy_get(m);
		if (f->easy == NULL) {
			CDN_LOG(CDN_LOG_ERR, "origin", "curl_easy_init failed");
			goto fail_quiet;
		}
	}

	if (f->easy != NULL)
		easy_set_fetch(f, req->method, req->is_head, req->has_body,
		    req->body_length);

	if (req->pool != NULL) {
		f->pool = req->pool;
		f->hash_key = req->hash_key;
		f->retryable = !req->has_body && method_idempotent(req->method);
		/* Held until fetch_free(): the pool's counters are touched
		 * after on_done, when the caller may have let go of it. */
		f->origin_pool = origin_pool_ref(req->pool);
		f->parents =
		    req->parents != NULL ? origin_pool_ref(req->parents) : NULL;
		f->parent_only = req->parent_only != 0 && f->parents != NULL;
		f->srv = -1;
		if (f->parents != NULL) {
			f->pool = f->parents;
			f->on_parent = 1;
			f->srv = origin_pool_pick(f->pool, f->hash_key, -1);
		}
		/* No parent up: the origin, as after their failures. */
		if (f->srv < 0 && !f->parent_only) {
			f->pool = f->origin_pool;
			f->on_parent = 0;
			f->srv = origin_pool_pick(f->pool, f->hash_key, -1);
		}
		if (f->srv >= 0 && fetch_set_server(f) != CDN_OK)
			goto fail;
	} else {
		curl_easy_setopt(f->easy, CURLOPT_URL, req->url);
		if (req->connect_to != NULL) {
			f->connect_to =
			    curl_slist_append(NULL, req->connect_to);
			curl_easy_setopt(
			    f->easy, CURLOPT_CONNECT_TO, f->connect_to);
		}
		f->is_tls = strncasecmp(req->url, "https:", 6) == 0;
		if (f->is_tls) {
			f->easy_dirty = 1;
			fetch_set_tls(m, f->easy);
		}
	}

	f->next = m->fetches;
	if (m->fetches != NULL)
		m->fetches->prev = f;
	m->fetches = f;
	if (f->pool != NULL && f->srv < 0) {
		/* Nothing to connect to: fail fast, from the loop. */
		f->timer_err = ORIGIN_ENOHEALTHY;
		fetch_arm_timer(f, 0);
		return f;
	}
	if (attempt_start(f) != CDN_OK) {
		if (f->pool != NULL)
			origin_pool_count_end(
			    f->pool, f->srv, ORIGIN_EINTERNAL);
		fetch_free(f);
		return NULL;
	}
	return f;

fail:
	CDN_LOG(CDN_LOG_ERR, "origin", "out of memory building a request");
fail_quiet:
	if (f->pool != NULL)
		origin_pool_count_end(f->pool, f->srv, ORIGIN_EINTERNAL);
	else if (req->pool != NULL)
		origin_pool_count_end(req->pool, -1, ORIGIN_EINTERNAL);
	if (f->counted)
		origin_pool_conn_end(f->pool, (unsigned)f->srv);
	origin_pool_free(&f->parents);
	origin_pool_free(&f->origin_pool);
	free(f->method); /* and f->target */
	free(f->fields_list);
	free(f->pfields_list);
	if (f->easy != NULL)
		curl_easy_cleanup(f->easy);
	event_del(&f->timer);
	MAGIC_WIPE(f);
	free(f);
	return NULL;
}

void
origin_fetch_set_consumer(
    struct origin_fetch *f, const struct origin_fetch_ops *ops, void *arg)
{
	MAGIC_CHECK(f, ORIGIN_FETCH_MAGIC);
	f->ops = *ops;
	f->arg = arg;
}

void
origin_fetch_cancel(struct origin_fetch **fp)
{
	struct origin_fetch *f = *fp;

	*fp = NULL;
	if (f == NULL)
		return;
	MAGIC_CHECK(f, ORIGIN_FETCH_MAGIC);
	if (f->pool != NULL)
		origin_pool_count_end(f->pool, f->srv, ORIGIN_OK);
	fetch_free(f);
}

void
origin_multi_free(struct origin_multi **mp)
{
	struct origin_multi *m = *mp;

	*mp = NULL;
	if (m == NULL)
		return;
	MAGIC_CHECK(m, ORIGIN_MULTI_MAGIC);
	while (m->fetches != NULL)
		fetch_free(m->fetches);
	origin_h1_free(&m->h1);
	while (m->nidle > 0)
		curl_easy_cleanup(m->idle[--m->nidle]);
	/* Closing cached connections calls on_curl_socket(REMOVE). */
	curl_multi_cleanup(m->multi);
	/* After the easy handles that used it are gone. */
	if (m->share != NULL)
		curl_share_cleanup(m->share);
	free(m->ca_file);
	free(m->client_cert);
	free(m->client_key);
	event_free(m->timer);
	MAGIC_WIPE(m);
	free(m);
}
