/*
 * edged internals shared by the files in edge/.
 *
 * Threads: N workers, each owning one struct edge_worker (its event_base,
 * listeners, HTTP connections, curl multi handle, access-log buffer and
 * counters), and the main thread (signals, admin listener, start/stop).
 * Workers share nothing mutable but their counters, which only the owning
 * worker writes (relaxed atomics, read by the admin listener) and the
 * draining flag.
 */
#ifndef EDGE_INT_H
#define EDGE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "common/cdn_log.h"
#include "conf/conf.h"
#include "http/http_server.h"
#include "origin/origin.h"

/* Single-writer counters: a plain load+store, no locked instruction. */
#define EDGE_COUNTER_ADD(w, field, n)                                     \
	atomic_store_explicit(&(w)->ctr.field,                            \
	    atomic_load_explicit(&(w)->ctr.field, memory_order_relaxed) + \
		(n),                                                      \
	    memory_order_relaxed)
#define EDGE_COUNTER_INC(w, field) EDGE_COUNTER_ADD(w, field, 1)

struct edge_counters {
	_Atomic uint64_t requests;	 /* client requests ended */
	_Atomic uint64_t status[6];	 /* by class: [1]=1xx..[5]=5xx, [0] none */
	_Atomic uint64_t client_aborts;	 /* client gone before the end */
	_Atomic uint64_t bad_requests;	 /* refused by the parser/limits */
	_Atomic uint64_t origin_fetches;
	_Atomic uint64_t origin_errors;
	_Atomic uint64_t origin_timeouts;
	_Atomic uint64_t bytes_sent;
	_Atomic uint64_t conns_accepted;
};

struct edge;

struct edge_worker {
	uint32_t magic;
#define EDGE_WORKER_MAGIC 0x3cb5e890u
	struct edge *edge;
	unsigned id;
	pthread_t thread;
	struct event_base *base;
	struct evconnlistener **listeners;
	unsigned nlisteners;
	struct http_server *http;
	struct origin_multi *origin;
	struct cdn_alog_buf *alog;
	struct event *flush_timer; /* hands the access log over */
	struct event *drain_ev;	   /* activated by the main thread */
	struct event *drain_timer; /* drain deadline */
	struct edge_counters ctr;
};

struct edge {
	uint32_t magic;
#define EDGE_MAGIC 0x70d4a1e3u
	struct conf *conf;
	struct event_base *main_base;
	struct edge_worker *workers;
	unsigned nworkers;
	atomic_uint workers_done;
	atomic_int draining;
	struct cdn_alog *alog;
	struct evconnlistener *admin;
	struct http_server *admin_http;
	struct event *sig_term, *sig_int, *sig_hup;
	struct event *join_timer;
	uint64_t start_ms;
	/* From conf->origin: "http://host:port", no trailing slash. */
	char *origin_base;
	char *origin_authority; /* "host:port": Host when the client sent none */
	struct origin_timeouts origin_to;
};

/* edge_proxy.c */
extern const struct http_handler edge_proxy_handler;

/* edge_admin.c */
extern const struct http_handler edge_admin_handler;

#endif /* EDGE_INT_H */
