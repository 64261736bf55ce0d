/*
 * edged's threads: start-up, worker loops, signals and graceful drain.
 *
 * The main thread binds every listening socket before any worker starts
 * (one socket per worker and address, SO_REUSEPORT, so the kernel spreads
 * connections and no accept lock is needed), then runs its own loop for
 * signals and the admin listener.  Each worker runs one event_base with its
 * listeners, HTTP connections and curl multi handle; when workers outnumber
 * the CPUs it runs a turn at a time, handing the core to a sibling waiting
 * for it once a millisecond (worker_loop).
 *
 * A worker's event_base has no lock: other threads wake its events through
 * its queue (edge_wake.c), and touch none of them otherwise.
 *
 * Drain (SIGTERM/SIGINT): the main thread wakes each worker's drain_ev.
 * A worker then closes its listeners, lets in-flight
 * responses finish, closes idle connections and exits its loop when it has
 * none left or when drain_timeout passes.  The main thread polls
 * workers_done and exits its loop when all are done.
 *
 * HTTP/2 (edge_h2.c): a TLS handshake that chose ALPN h2 hands its
 * connection from the worker's HTTP/1.1 server to its edge_h2, and
 * listen_h2c sockets feed edge_h2 directly; drain waits for both.
 *
 * TLS (edge_tls.c): listen_tls sockets are listeners like the others whose
 * accepted sockets get an SSL from the worker's slot.
 *
 * SIGHUP (edge_reload.c) reloads the whole configuration: a new generation
 * (edge_gen.h) published to each worker through its gen_ev, as drain does,
 * and new certificates through the TLS slots; a broken file leaves the old
 * ones in use.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "common/cdn_notify.h"
#include "edge/edge.h"
#include "edge/edge_h2.h"
#include "edge/edge_inflight.h"
#include "edge/edge_int.h"
#include "edge/edge_tls.h"
#include "http/http_listen.h"

#define ALOG_FLUSH_MS        200
#define LISTEN_BACKLOG       1024
#define WORKER_NAME_MAX      16      /* a thread name's limit, with its NUL */
#define WORKER_QUANTUM_NS    1000000 /* turns between yields: see worker_loop */
#define WORKER_STAT_PATH_MAX 64
#define WORKER_STAT_LINE_MAX 512 /* a stat line's start: pid, comm, state */

static void
ms_tv(uint64_t ms, struct timeval *tv)
{
	tv->tv_sec = (time_t)(ms / 1000);
	tv->tv_usec = (suseconds_t)((ms % 1000) * 1000);
}

static void
on_accept(int fd, const struct sockaddr *sa, int salen, void *arg)
{
	struct edge_worker *w = arg;

	EDGE_COUNTER_INC(w, conns_accepted);
	http_server_adopt(w->http, fd, sa, salen);
}

static void
on_accept_tls(int fd, const struct sockaddr *sa, int salen, void *arg)
{
	struct edge_worker *w = arg;
	SSL *ssl;

	EDGE_COUNTER_INC(w, conns_accepted);
	ssl = edge_tls_ssl_new(w->edge->tls, w->id);
	if (ssl == NULL) {
		close(fd);
		return;
	}
	http_server_adopt_tls(w->http, fd, sa, salen, ssl);
}

/* listen_h2c: HTTP/2 by prior knowledge. */
static void
on_accept_h2c(int fd, const struct sockaddr *sa, int salen, void *arg)
{
	struct edge_worker *w = arg;

	(void)salen;
	EDGE_COUNTER_INC(w, conns_accepted);
	edge_h2_adopt_fd(w->h2, fd, sa);
}

/* A TLS handshake chose h2 (ALPN): the connection moves over. */
static void
on_h2(struct bufferevent *bev, const char *peer, void *arg)
{
	struct edge_worker *w = arg;

	edge_h2_adopt_tls(w->h2, bev, peer);
}

static void
on_tls_handshake(enum http_tls_result r, void *arg)
{
	struct edge_worker *w = arg;

	switch (r) {
	case HTTP_TLS_FULL:
		EDGE_COUNTER_INC(w, tls_handshakes);
		break;
	case HTTP_TLS_RESUMED:
		EDGE_COUNTER_INC(w, tls_resumed);
		break;
	case HTTP_TLS_FAILED:
		EDGE_COUNTER_INC(w, tls_handshake_errors);
		break;
	case HTTP_TLS_TIMEOUT:
		EDGE_COUNTER_INC(w, tls_handshake_timeouts);
		break;
	case HTTP_TLS_CLOSED:
		EDGE_COUNTER_INC(w, tls_handshake_aborts);
		break;
	}
}

static void
on_flush_timer(evutil_socket_t fd, short what, void *arg)
{
	struct edge_worker *w = arg;

	(void)fd;
	(void)what;
	cdn_alog_buf_flush(w->alog);
}

/* Ends worker_loop() once this turn's callbacks have run.  The flag spares
 * the loop a call of event_base_got_exit() each turn. */
static void
worker_stop(struct edge_worker *w)
{
	w->is_stopping = 1;
	event_base_loopexit(w->base, NULL);
}

/* Called once by each of the HTTP/1.1 and HTTP/2 sides when empty. */
static void
on_worker_empty(void *arg)
{
	struct edge_worker *w = arg;

	if (++w->drained == 2)
		worker_stop(w);
}

static void
on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct edge_worker *w = arg;

	(void)fd;
	(void)what;
	CDN_LOG(CDN_LOG_WARN, "edge",
	    "worker %u: drain timeout, closing %u connection(s)", w->id,
	    http_server_conn_count(w->http) + edge_h2_conn_count(w->h2));
	http_server_close_all(w->http);
	edge_h2_close_all(w->h2);
	worker_stop(w);
}

/* The main thread published a new configuration generation. */
static void
on_gen(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	edge_reload_switch(arg);
}

static void
on_drain(evutil_socket_t fd, short what, void *arg)
{
	struct edge_worker *w = arg;
	struct timeval tv;

	(void)fd;
	(void)what;
	for (unsigned i = 0; i < w->nlisteners; i++)
		http_acceptor_free(w->listeners[i]);
	w->nlisteners = 0;
	ms_tv(w->edge->conf->drain_timeout, &tv);
	evtimer_add(w->drain_timer, &tv);
	http_server_drain(w->http, on_worker_empty, w);
	edge_h2_drain(w->h2, on_worker_empty, w);
}

void
edge_count_origin_error(struct edge_worker *w, enum origin_err err)
{
	if (err == ORIGIN_OK)
		return;
	EDGE_COUNTER_INC(w, origin_errors);
	EDGE_COUNTER_INC(w, origin_err_kind[err]);
	if (err == ORIGIN_ETIMEOUT_CONNECT || err == ORIGIN_ETIMEOUT_TLS ||
	    err == ORIGIN_ETIMEOUT_FIRST_BYTE || err == ORIGIN_ETIMEOUT_IDLE)
		EDGE_COUNTER_INC(w, origin_timeouts);
}

/* The worker this thread runs, for owner-thread checks. */
static __thread struct edge_worker *current_worker;

struct edge_worker *
edge_worker_current(void)
{
	return current_worker;
}

/*
 * The CPUs this process may run on: its affinity at start (taskset, a
 * container's cpuset), not every CPU online.  A node given 2 CPUs of a
 * 64-core host would otherwise start 64 workers crowded on those 2.
 */
static unsigned
cpus_usable(void)
{
	cpu_set_t set;
	long n;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return (unsigned)CPU_COUNT(&set);
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

/*
 * Whether worker <s> is runnable, from its /proc stat line: its state is
 * the first field after the command name's closing parenthesis.  <fd> is
 * the caller's descriptor of that file, opened at the first look and read
 * again from its start each time: an open and a close per look were two
 * thirds of the look's system calls, and the path's lookup most of its
 * kernel time.
 */
static int
worker_runnable(const struct edge_worker *s, int *fd)
{
	char path[WORKER_STAT_PATH_MAX], line[WORKER_STAT_LINE_MAX];
	int tid = atomic_load_explicit(&s->tid, memory_order_relaxed);
	const char *p;
	ssize_t n;

	if (*fd == -1) {
		if (tid == 0)
			return 0; /* its loop has not started */
		(void)snprintf(
		    path, sizeof(path), "/proc/self/task/%d/stat", tid);
		*fd = open(path, O_RDONLY | O_CLOEXEC);
		if (*fd == -1)
			return 0;
	}
	n = pread(*fd, line, sizeof(line) - 1, 0);
	if (n <= 0)
		return 0;
	line[n] = '\0';
	p = strrchr(line, ')');
	return p != NULL && p[1] == ' ' && p[2] == 'R';
}

/* Whether another worker waits for the CPU this one runs on.  <fds> holds
 * a stat descriptor per worker (worker_runnable), -1 until opened. */
static int
sibling_waits(struct edge_worker *w, int *fds)
{
	struct edge *e = w->edge;
	int cpu = sched_getcpu();

	atomic_store_explicit(&w->cpu, cpu, memory_order_relaxed);
	for (unsigned i = 0; i < e->nworkers; i++) {
		const struct edge_worker *s = &e->workers[i];

		if (s != w &&
		    atomic_load_explicit(&s->cpu, memory_order_relaxed) ==
		        cpu &&
		    worker_runnable(s, &fds[i]))
			return 1;
	}
	return 0;
}

/*
 * A worker's loop, one turn at a time.  Under load a worker never waits in
 * epoll_wait: clients have sent more by the time it has answered what it
 * read.  Workers that share a core (pinned to one, or more workers than
 * cores) are then all runnable, and the kernel switches between them only
 * at its tick (4 ms at HZ=250): for that long every connection of the
 * others waits, which set the p99 of hits (docs/performance.md, "p99 of
 * hits").  So once WORKER_QUANTUM_NS have passed since it last looked, a
 * worker checks at the end of a turn (a poll and the callbacks it made
 * ready) whether a sibling last ran on its CPU and is runnable now, and if
 * one is, yields to it.  The quantum bounds the sibling's wait at a quarter
 * of that tick; each hand-over is a context switch (a microsecond or two).
 * sched_yield() moves the caller behind every runnable task, not only
 * its sibling: with a busy process pinned next to two workers, yielding
 * once a millisecond gave it 60% of the core where the tick gave it a
 * third, and yielding only to a waiting sibling still about that.  So
 * workers do all this only when they are crowded, more of them than CPUs
 * to run on (the benchmark's two workers pinned to one core), where they
 * must share cores whatever else runs; otherwise the loop is libevent's
 * own, as before, and nothing else on a core loses to them or gains.
 */
static void
worker_loop(struct edge_worker *w)
{
	uint64_t checked_ns = cdn_now_ns();
	unsigned n = w->edge->nworkers;
	uint64_t now_ns;
	int *fds;

	if (!w->edge->is_crowded) {
		event_base_dispatch(w->base);
		return;
	}
	fds = cdn_xmalloc(n * sizeof(*fds));
	for (unsigned i = 0; i < n; i++)
		fds[i] = -1;
	atomic_store_explicit(&w->tid, (int)gettid(), memory_order_relaxed);
	atomic_store_explicit(&w->cpu, sched_getcpu(), memory_order_relaxed);
	while (!w->is_stopping) {
		/* EVLOOP_ONCE: waits for events and returns once every
		 * callback they (and those) made active has run. */
		if (event_base_loop(w->base, EVLOOP_ONCE) != 0)
			break; /* an error, or nothing left to wait for */
		now_ns = cdn_now_ns();
		if (now_ns - checked_ns < WORKER_QUANTUM_NS)
			continue;
		checked_ns = now_ns;
		if (sibling_waits(w, fds)) {
			EDGE_COUNTER_INC(w, worker_yields);
			(void)sched_yield();
		}
	}
	for (unsigned i = 0; i < n; i++)
		if (fds[i] != -1)
			close(fds[i]);
	free(fds);
}

static void *
worker_main(void *arg)
{
	struct edge_worker *w = arg;

	current_worker = w;
	worker_loop(w);
	/* Connections first: their txns may hold origin fetches. */
	edge_h2_free(&w->h2);
	http_server_free(&w->http);
	edge_fill_worker_stop(w);
	origin_multi_free(&w->origin);
	cdn_alog_buf_free(&w->alog);
	atomic_fetch_add(&w->edge->workers_done, 1);
	return NULL;
}

static struct http_server_limits
server_limits(const struct conf *c)
{
	struct http_server_limits lim;

	memset(&lim, 0, sizeof(lim));
	lim.parse.max_request_line = c->max_request_line;
	lim.parse.max_header_bytes = c->max_header_size;
	lim.parse.max_headers = c->max_headers;
	lim.max_body_size = c->max_body_size;
	lim.header_timeout_ms = c->client_header_timeout;
	lim.keepalive_timeout_ms = c->keepalive_timeout;
	lim.body_timeout_ms = c->client_body_timeout;
	lim.send_timeout_ms = c->send_timeout;
	lim.max_connections = c->max_connections;
	return lim;
}

/* The addresses of each kind of worker listener in <c>. */
static const struct conf_strlist *
kind_list(const struct conf *c, enum edge_listen_kind kind)
{
	switch (kind) {
	case EDGE_LISTEN_PLAIN:
		return &c->listen;
	case EDGE_LISTEN_TLS:
		return &c->listen_tls;
	case EDGE_LISTEN_H2C:
		return &c->listen_h2c;
	case EDGE_LISTEN_ADMIN:
	case EDGE_LISTEN_PURGE:
	case EDGE_LISTEN_KINDS:
		break;
	}
	return NULL;
}

/* Every address this node will listen on is free (http_listen_probe),
 * but for those a takeover hands over: they are meant to be in use. */
static int
listen_probe_all(const struct edge *e)
{
	const struct conf *c = e->conf;

	for (int k = EDGE_LISTEN_PLAIN; k <= EDGE_LISTEN_H2C; k++) {
		const struct conf_strlist *l = kind_list(c, k);

		for (unsigned i = 0; i < l->n; i++)
			if (!edge_takeover_has(e, k, l->v[i]) &&
			    http_listen_probe(l->v[i], "edge") != CDN_OK)
				return CDN_EIO;
	}
	if (c->admin_listen[0] != '\0' &&
	    !edge_takeover_has(e, EDGE_LISTEN_ADMIN, c->admin_listen) &&
	    http_listen_probe(c->admin_listen, "edge") != CDN_OK)
		return CDN_EIO;
	return CDN_OK;
}

/* Serve listening socket <fd> (ours either way) on worker <w>. */
static int
worker_adopt(
    struct edge_worker *w, int fd, enum edge_listen_kind kind, const char *addr)
{
	static const http_accept_cb cbs[] = {[EDGE_LISTEN_PLAIN] = on_accept,
	    [EDGE_LISTEN_TLS] = on_accept_tls,
	    [EDGE_LISTEN_H2C] = on_accept_h2c};
	struct http_acceptor *l;
	unsigned n = w->nlisteners;

	CDN_ASSERT(kind <= EDGE_LISTEN_H2C);
	(void)http_listen_nodelay(fd, "edge");
	/* Not listen_h2c: a load balancer's few long connections gain
	 * nothing, and its pre-opened idle ones would be hidden. */
	if (kind != EDGE_LISTEN_H2C)
		(void)http_listen_defer(fd,
		    (unsigned)(w->edge->conf->listen_defer_accept / 1000),
		    "edge");
	l = http_acceptor_new(w->base, fd, cbs[kind], w, "edge");
	if (l == NULL)
		return CDN_EIO;
	w->listeners = realloc(w->listeners, (n + 1) * sizeof(*w->listeners));
	w->listen_ids =
	    realloc(w->listen_ids, (n + 1) * sizeof(*w->listen_ids));
	CDN_ASSERT(w->listeners != NULL && w->listen_ids != NULL);
	w->listeners[n] = l;
	w->listen_ids[n].kind = kind;
	w->listen_ids[n].addr = addr;
	w->nlisteners = n + 1;
	return CDN_OK;
}

/* One listener of worker <w>: a socket a takeover handed over, or a new
 * one. */
static int
worker_listen(
    struct edge_worker *w, enum edge_listen_kind kind, const char *addr)
{
	int fd;

	fd = edge_takeover_take(w->edge, kind, addr);
	if (fd == -1)
		fd = http_listen_socket(addr, 1, LISTEN_BACKLOG, "edge");
	if (fd == -1)
		return CDN_EIO;
	return worker_adopt(w, fd, kind, addr);
}

/* Sockets handed over beyond one per worker (the old edged ran more
 * threads): each still holds a share of the connections, so each is
 * served, round robin.  One whose address is no longer configured is
 * closed, its queued connections with it. */
static int
adopt_extra(struct edge *e)
{
	enum edge_listen_kind kind;
	const char *addr;
	unsigned next = 0;
	int fd;

	while ((fd = edge_takeover_next(e, &kind, &addr)) != -1) {
		const struct conf_strlist *l = kind_list(e->conf, kind);
		const char *mine = NULL;

		for (unsigned i = 0; l != NULL && i < l->n; i++)
			if (strcmp(l->v[i], addr) == 0)
				mine = l->v[i];
		if (mine == NULL) {
			CDN_LOG(CDN_LOG_WARN, "takeover",
			    "%s %s is not in the configuration: closed",
			    edge_takeover_kind_name(kind), addr);
			close(fd);
			continue;
		}
		if (worker_adopt(&e->workers[next++ % e->nworkers], fd, kind,
		        mine) != CDN_OK)
			return CDN_EIO;
	}
	return CDN_OK;
}

/*
 * A worker's loop.  With epoll's changelist, an event deleted and added
 * again (or added and deleted) before the loop waits costs no
 * epoll_ctl(): over TLS, libevent adds a connection's write event when
 * output is queued and deletes it once the output is written, two
 * epoll_ctl() per response, even when the output is written before the
 * loop waits; and a keep-alive client's read, switched off and on around
 * a request.
 * The changelist's caveat, an fd and its dup() both in the loop, does not
 * arise: no worker duplicates an fd.
 */
static struct event_base *
worker_base_new(void)
{
	struct event_config *cfg = event_config_new();
	struct event_base *base;

	if (cfg == NULL)
		return NULL;
	(void)event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	/* Its thread alone touches it (edge_wake.c). */
	(void)event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}

static int
worker_init(struct edge *e, struct edge_worker *w, unsigned id)
{
	const struct conf *c = e->conf;
	struct http_server_limits lim = server_limits(c);
	struct http_handler h = edge_h1_handler;
	struct origin_tls_conf otls;
	struct timeval tv;

	w->magic = EDGE_WORKER_MAGIC;
	w->edge = e;
	w->id = id;
	w->gen = e->gen;
	atomic_init(&w->gen_next, NULL);
	atomic_init(&w->gen_seen, e->gen->id);
	w->base = worker_base_new();
	if (w->base == NULL)
		return CDN_ENOMEM;
	if (edge_wakeq_init(&w->wakeq, w->base) != CDN_OK)
		return CDN_EIO;
	h.on_tls_handshake = on_tls_handshake;
	h.on_h2 = on_h2;
	w->http = http_server_new(w->base, &lim, &h, w);
	w->h2 = edge_h2_new(w);
	http_server_set_cache_status(w->http, c->via);
	http_server_set_conn_gauge(w->http, &w->ctr.conns_open);
	w->origin = origin_multi_new(w->base);
	otls.ca_file = c->origin_ca_file;
	otls.client_cert = c->origin_client_cert;
	otls.client_key = c->origin_client_key;
	origin_multi_set_tls(w->origin, &otls);
	w->alog = cdn_alog_buf_new(e->alog);
	w->alog_json = strcmp(c->access_log_format, "json") == 0;
	w->drain_ev = event_new(w->base, -1, 0, on_drain, w);
	edge_wake_init(&w->drain_wake, w->drain_ev);
	w->drain_timer = evtimer_new(w->base, on_drain_timeout, w);
	w->gen_ev = event_new(w->base, -1, 0, on_gen, w);
	edge_wake_init(&w->gen_wake, w->gen_ev);
	w->flush_timer = event_new(w->base, -1, EV_PERSIST, on_flush_timer, w);
	ms_tv(ALOG_FLUSH_MS, &tv);
	if (w->alog != NULL)
		event_add(w->flush_timer, &tv);
	for (int k = EDGE_LISTEN_PLAIN; k <= EDGE_LISTEN_H2C; k++) {
		const struct conf_strlist *l = kind_list(c, k);

		for (unsigned i = 0; i < l->n; i++)
			if (worker_listen(w, k, l->v[i]) != CDN_OK)
				return CDN_EIO;
	}
	return CDN_OK;
}

static void
worker_fini(struct edge_worker *w)
{
	if (w->magic != EDGE_WORKER_MAGIC)
		return; /* never initialised */
	for (unsigned i = 0; i < w->nlisteners; i++)
		http_acceptor_free(w->listeners[i]);
	free(w->listeners);
	free(w->listen_ids);
	edge_h2_free(&w->h2);
	http_server_free(&w->http);
	edge_fill_worker_stop(w);
	origin_multi_free(&w->origin);
	cdn_alog_buf_free(&w->alog);
	if (w->drain_ev != NULL)
		event_free(w->drain_ev);
	if (w->drain_timer != NULL)
		event_free(w->drain_timer);
	if (w->gen_ev != NULL)
		event_free(w->gen_ev);
	if (w->flush_timer != NULL)
		event_free(w->flush_timer);
	free(w->pt_spare);
	w->pt_spare = NULL;
	edge_wakeq_fini(&w->wakeq);
	if (w->base != NULL)
		event_base_free(w->base);
	MAGIC_WIPE(w);
}

/* ---- main thread: signals, admin, start and stop ---- */

static void
on_join_timer(evutil_socket_t fd, short what, void *arg)
{
	struct edge *e = arg;

	(void)fd;
	(void)what;
	if (atomic_load(&e->workers_done) < e->nworkers)
		return;
	if (e->admin != NULL) {
		evconnlistener_free(e->admin);
		e->admin = NULL;
	}
	if (e->admin_http != NULL)
		http_server_close_all(e->admin_http);
	event_base_loopexit(e->main_base, NULL);
}

void
edge_start_drain(struct edge *e, const char *why, int stopping)
{
	struct timeval tv;

	if (atomic_exchange(&e->draining, 1))
		return;
	if (stopping)
		cdn_notify("STOPPING=1");
	CDN_LOG(CDN_LOG_INFO, "edge", "%s: draining (up to %llu ms)", why,
	    (unsigned long long)e->conf->drain_timeout);
	for (unsigned i = 0; i < e->nworkers; i++)
		edge_worker_wake(&e->workers[i], &e->workers[i].drain_wake);
	/* The admin listener stays up until the workers are done, so load
	 * balancers probing /healthz see 503 rather than a refused connection.
	 */
	ms_tv(20, &tv);
	evtimer_add(e->join_timer, &tv);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct edge *e = arg;

	(void)what;
	if (sig == SIGHUP) {
		CDN_LOG(CDN_LOG_INFO, "edge",
		    "SIGHUP: reopening log files, reloading the configuration");
		cdn_log_reopen();
		cdn_alog_reopen(e->alog);
		edge_reload(e);
		return;
	}
	if (sig == SIGUSR2) {
		/* An upgrade from inside the service, as nginx's USR2. */
		edge_takeover_spawn(e);
		return;
	}
	if (sig == SIGUSR1) {
		/* After logrotate renamed them, as nginx's USR1. */
		CDN_LOG(CDN_LOG_INFO, "edge", "SIGUSR1: reopening log files");
		cdn_log_reopen();
		cdn_alog_reopen(e->alog);
		edge_purged_reopen_logs(e);
		return;
	}
	edge_start_drain(e, sig == SIGTERM ? "SIGTERM" : "SIGINT", 1);
}

static void
on_admin_accept(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct edge *e = arg;

	(void)l;
	http_server_adopt(e->admin_http, fd, sa, salen);
}

/* A holder dropped the last use of a retired generation, or a worker
 * switched to the newest. */
static void
on_gen_wake(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	edge_reload_collect(arg);
}

struct edge *
edge_new(struct conf *conf, int argc, char **argv, int takeover)
{
	struct edge *e;
	struct http_server_limits lim;
	unsigned ncpus = cpus_usable();
	int fd;

	evthread_use_pthreads();
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		CDN_LOG(CDN_LOG_ERR, "edge", "curl_global_init failed");
		return NULL;
	}
	e = cdn_xcalloc(1, sizeof(*e));
	e->magic = EDGE_MAGIC;
	e->conf = conf_ref(conf);
	conf_node_name(conf, e->node_name);
	e->start_ms = cdn_now_ms();
	e->argc = argc;
	e->argv = argv;
	e->nworkers = conf->threads > 0 ? conf->threads : ncpus;
	/* More workers than CPUs to run on: some share a CPU (worker_loop). */
	e->is_crowded = ncpus < e->nworkers;
	e->main_base = event_base_new();
	e->gen_wake = event_new(e->main_base, -1, 0, on_gen_wake, e);
	e->gen = edge_gen_new(conf, 1, e->nworkers, e->gen_wake);
	if (e->gen == NULL)
		goto fail;
	/* Before the probe: the addresses handed over need none. */
	if (takeover && edge_takeover_fetch(e) != CDN_OK)
		goto fail;
	if (listen_probe_all(e) != CDN_OK)
		goto fail;
	if (edge_cache_init(e) != CDN_OK || edge_bus_init(e) != CDN_OK)
		goto fail;
	e->inflight = edge_inflight_new();
	if (edge_tls_new(conf, e->nworkers, &e->tls) != CDN_OK)
		goto fail;
	if (conf->access_log[0] != '\0') {
		e->alog = cdn_alog_new(conf->access_log);
		if (e->alog == NULL)
			goto fail;
	}
	edge_gen_health_start(e->gen, e->main_base, conf);
	if (e->tls != NULL)
		edge_tls_start(e->tls, e->main_base);
	e->workers = cdn_xcalloc(e->nworkers, sizeof(*e->workers));
	for (unsigned i = 0; i < e->nworkers; i++)
		if (worker_init(e, &e->workers[i], i) != CDN_OK)
			goto fail;
	if (conf->admin_listen[0] != '\0') {
		if (edge_admin_init(e) != CDN_OK)
			goto fail;
		fd = edge_takeover_take(
		    e, EDGE_LISTEN_ADMIN, conf->admin_listen);
		if (fd == -1)
			fd = http_listen_socket(
			    conf->admin_listen, 1, LISTEN_BACKLOG, "edge");
		if (fd == -1)
			goto fail;
		lim = server_limits(conf);
		lim.max_connections = 64;
		e->admin_http =
		    http_server_new(e->main_base, &lim, &edge_admin_handler, e);
		(void)http_listen_nodelay(fd, "edge");
		e->admin = evconnlistener_new(e->main_base, on_admin_accept, e,
		    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
		if (e->admin == NULL) {
			close(fd);
			goto fail;
		}
	}
	if (edge_purged_init(e) != CDN_OK)
		goto fail;
	/* After the admin listener and purged took their own. */
	if (adopt_extra(e) != CDN_OK || edge_takeover_listen(e) != CDN_OK)
		goto fail;
	e->sig_term = evsignal_new(e->main_base, SIGTERM, on_signal, e);
	e->sig_int = evsignal_new(e->main_base, SIGINT, on_signal, e);
	e->sig_hup = evsignal_new(e->main_base, SIGHUP, on_signal, e);
	e->sig_usr1 = evsignal_new(e->main_base, SIGUSR1, on_signal, e);
	e->sig_usr2 = evsignal_new(e->main_base, SIGUSR2, on_signal, e);
	event_add(e->sig_term, NULL);
	event_add(e->sig_int, NULL);
	event_add(e->sig_hup, NULL);
	event_add(e->sig_usr1, NULL);
	event_add(e->sig_usr2, NULL);
	e->join_timer =
	    event_new(e->main_base, -1, EV_PERSIST, on_join_timer, e);
	return e;

fail:
	edge_free(&e);
	return NULL;
}

int
edge_run(struct edge *e)
{
	unsigned started = 0;

	MAGIC_CHECK(e, EDGE_MAGIC);
	signal(SIGPIPE, SIG_IGN);
	for (unsigned i = 0; i < e->nworkers; i++) {
		char name[WORKER_NAME_MAX];

		if (pthread_create(&e->workers[i].thread, NULL, worker_main,
		        &e->workers[i]) != 0) {
			CDN_LOG(CDN_LOG_ERR, "edge", "pthread_create failed");
			break;
		}
		/* Named so that top -H, perf and the tests can tell workers
		 * apart; here, so that every name is set before edged says
		 * it is ready. */
		(void)snprintf(
		    name, sizeof(name), "edged-worker-%u", e->workers[i].id);
		(void)pthread_setname_np(e->workers[i].thread, name);
		started++;
	}
	if (started == e->nworkers) {
		CDN_LOG(CDN_LOG_INFO, "edge",
		    "serving on %u address(es) (%u TLS, %u h2c) with %u "
		    "worker(s), %u site(s)",
		    e->conf->listen.n + e->conf->listen_tls.n +
		        e->conf->listen_h2c.n,
		    e->conf->listen_tls.n, e->conf->listen_h2c.n, e->nworkers,
		    edge_sites_count(e->gen->sites));
		if (e->conf->ready_file[0] != '\0' &&
		    cdn_ready_file_write(e->conf->ready_file) != CDN_OK) {
			CDN_LOG(CDN_LOG_ERR, "edge", "ready file %s: %s",
			    e->conf->ready_file, strerror(errno));
			edge_start_drain(e, "ready file", 1);
		} else {
			edge_takeover_ready(e);
			cdn_notify("READY=1");
		}
	} else {
		edge_start_drain(e, "start-up failure", 1);
	}
	event_base_dispatch(e->main_base);
	for (unsigned i = 0; i < started; i++)
		pthread_join(e->workers[i].thread, NULL);
	CDN_LOG(CDN_LOG_INFO, "edge", "stopped");
	return started == e->nworkers ? 0 : 1;
}

void
edge_free(struct edge **ep)
{
	struct edge *e = *ep;

	*ep = NULL;
	if (e == NULL)
		return;
	MAGIC_CHECK(e, EDGE_MAGIC);
	for (unsigned i = 0; e->workers != NULL && i < e->nworkers; i++)
		worker_fini(&e->workers[i]);
	free(e->workers);
	if (e->admin != NULL)
		evconnlistener_free(e->admin);
	http_server_free(&e->admin_http);
	edge_admin_fini(e);
	edge_purged_fini(e);
	edge_takeover_fini(e);
	if (e->sig_term != NULL) {
		event_free(e->sig_term);
		event_free(e->sig_int);
		event_free(e->sig_hup);
		event_free(e->sig_usr1);
		event_free(e->sig_usr2);
		event_free(e->join_timer);
	}
	/* After the workers (their connections held SSLs), before the base
	 * its rotation timer is on. */
	edge_tls_free(&e->tls);
	/* After the workers and before main_base: their transactions held
	 * generations, whose health checks are on main_base. */
	while (e->retired != NULL) {
		struct edge_gen *g = e->retired;

		e->retired = g->next;
		edge_gen_free(&g);
	}
	edge_gen_free(&e->gen);
	if (e->gen_wake != NULL)
		event_free(e->gen_wake);
	if (e->main_base != NULL)
		event_base_free(e->main_base);
	cdn_alog_free(&e->alog);
	/* After the workers: their fills were in it, their transactions
	 * held cache objects. */
	edge_inflight_free(&e->inflight);
	edge_bus_fini(e); /* its page is the store's */
	edge_cache_fini(e);
	conf_unref(&e->conf);
	MAGIC_WIPE(e);
	free(e);
	curl_global_cleanup();
	libevent_global_shutdown();
}
