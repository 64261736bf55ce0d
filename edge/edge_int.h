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

#include "cache/cache.h"
#include "cache/cache_bus.h"
#include "common/cdn_log.h"
#include "common/cdn_ratelog.h"
#include "common/cdn_strbuf.h"
#include "conf/conf.h"
#include "edge/edge_gen.h"
#include "edge/edge_site.h"
#include "edge/edge_stream.h"
#include "http/http_accept.h"
#include "http/http_server.h"
#include "origin/origin.h"

/* Method classes of edge_requests_total (edge_method_class()). */
enum edge_method_class {
	EDGE_MC_GET = 0,
	EDGE_MC_HEAD,
	EDGE_MC_POST,
	EDGE_MC_PUT,
	EDGE_MC_DELETE,
	EDGE_MC_PATCH,
	EDGE_MC_OPTIONS,
	EDGE_MC_OTHER,
	EDGE_MC_COUNT
};

/* Where the bytes of a response came from (edge_response_bytes_total). */
enum edge_from {
	EDGE_FROM_CACHE = 0, /* a hit, or the stored copy after a 304 */
	EDGE_FROM_ORIGIN,    /* the origin's response, streamed through */
	EDGE_FROM_EDGE,      /* written by the node: its errors, 501, 504 */
	EDGE_FROM_COUNT
};

/* Buckets of the origin latency histogram; the last one is +Inf. */
#define EDGE_ORIGIN_BUCKETS ORIGIN_LAT_BUCKETS

/* Single-writer counters: a plain load+store, no locked instruction. */
#define EDGE_COUNTER_ADD(w, field, n)                                          \
	atomic_store_explicit(&(w)->ctr.field,                                 \
	    atomic_load_explicit(&(w)->ctr.field, memory_order_relaxed) + (n), \
	    memory_order_relaxed)
#define EDGE_COUNTER_INC(w, field) EDGE_COUNTER_ADD(w, field, 1)
/* The same for the worker's counters of one site (edge_site.h). */
#define EDGE_SITE_COUNTER_INC(w, site, field)                                  \
	atomic_store_explicit(&(site)->ctr[(w)->id].c.field,                   \
	    atomic_load_explicit(                                              \
	        &(site)->ctr[(w)->id].c.field, memory_order_relaxed) +         \
	        1,                                                             \
	    memory_order_relaxed)

/* The sizes of the counter arrays' dimensions (edge_counters.h). */
enum edge_dim_size {
#define EDGE_DIM(id, label, count) EDGE_DIMN_##id = (count),
#include "edge/edge_counters.h"
};

/* The C type of a counter (edge_counters.h): a GAUGE is kept by another
 * layer through an atomic_uint pointer. */
#define EDGE_CTYPE_COUNTER _Atomic uint64_t
#define EDGE_CTYPE_GAUGE   atomic_uint

/* Every per-worker counter: the rows of edge/edge_counters.h. */
struct edge_counters {
#define EDGE_D1(a)                         [EDGE_DIMN_##a]
#define EDGE_D2(a, b)                      [EDGE_DIMN_##a][EDGE_DIMN_##b]
#define EDGE_COUNTER(field, kind, ...)     EDGE_CTYPE_##kind field;
#define EDGE_COUNTER_VEC(field, dims, ...) _Atomic uint64_t field dims;
#include "edge/edge_counters.h"
#undef EDGE_D1
#undef EDGE_D2
};

static inline enum edge_method_class
edge_method_class(enum http_method m)
{
	switch (m) {
	case HTTP_M_GET:
		return EDGE_MC_GET;
	case HTTP_M_HEAD:
		return EDGE_MC_HEAD;
	case HTTP_M_POST:
		return EDGE_MC_POST;
	case HTTP_M_PUT:
		return EDGE_MC_PUT;
	case HTTP_M_DELETE:
		return EDGE_MC_DELETE;
	case HTTP_M_PATCH:
		return EDGE_MC_PATCH;
	case HTTP_M_OPTIONS:
		return EDGE_MC_OPTIONS;
	default:
		return EDGE_MC_OTHER;
	}
}

struct edge;
struct edge_tls;
struct edge_fill;
struct edge_inflight;
struct fill_waiter;
struct edge_range_disk;

/* What a listening socket is for: how its connections are served, and
 * which socket of a new edged it becomes on a takeover. */
enum edge_listen_kind {
	EDGE_LISTEN_PLAIN,
	EDGE_LISTEN_TLS,
	EDGE_LISTEN_H2C,
	EDGE_LISTEN_ADMIN,
	EDGE_LISTEN_PURGE, /* purge_listen, which purged serves */
	EDGE_LISTEN_KINDS
};

struct edge_listen_id {
	enum edge_listen_kind kind;
	const char *addr; /* a string of edge->conf */
};

/*
 * edge_wake.c: another thread's wake of a worker's event.  Embedded in what
 * it wakes; posted, it is on the worker's queue (under the queue's lock).
 */
struct edge_worker;

struct edge_wake {
	struct edge_wake *prev, *next;
	struct event *ev; /* activated on the worker's own loop */
	int is_posted;    /* not a bit-field: read beside its neighbours */
};

struct edge_wakeq {
	pthread_mutex_t mu;
	struct edge_wake *head; /* posted, not yet taken by the worker */
	int is_signalled;       /* the eventfd written since last taken */
	int fd;                 /* eventfd, in the worker's loop */
	struct event *ev;
};

int edge_wakeq_init(struct edge_wakeq *q, struct event_base *base);
void edge_wakeq_fini(struct edge_wakeq *q);
void edge_wake_init(struct edge_wake *x, struct event *ev);
/* Wake <x> on <w>'s loop, from any thread. */
void edge_worker_wake(struct edge_worker *w, struct edge_wake *x);
/* Take back a post of <x> not yet taken: on <w>'s thread (or after it
 * ended), once no more posts of <x> can come. */
void edge_worker_wake_cancel(struct edge_worker *w, struct edge_wake *x);

struct edge_worker {
	uint32_t magic;
#define EDGE_WORKER_MAGIC 0x3cb5e890u
	struct edge *edge;
	unsigned id;
	pthread_t thread;
	struct event_base *base;
	struct http_acceptor **listeners;
	struct edge_listen_id *listen_ids; /* one per listener */
	unsigned nlisteners;
	struct http_server *http;
	struct edge_h2 *h2; /* HTTP/2 connections (edge_h2.h) */
	unsigned drained;   /* of http and h2: both empty ends the loop */
	int is_stopping;    /* worker_stop() ran: the loop ends this turn */
	/* For siblings' hand-over checks (worker_loop): this thread's id, and
	 * the CPU it last ran a turn on. */
	_Atomic int tid;
	_Atomic int cpu;
	struct origin_multi *origin;
	struct cdn_alog_buf *alog;
	int alog_json;             /* access_log_format json (edge_access.c) */
	struct event *flush_timer; /* hands the access log over */
	struct edge_wakeq wakeq;   /* other threads' wakes (edge_wake.c) */
	struct event *drain_ev;    /* woken by the main thread */
	struct edge_wake drain_wake;
	struct event *drain_timer;  /* drain deadline */
	struct edge_fill *fills;    /* shared fetches it runs */
	struct cdn_ratelog bus_log; /* hits served offline (edge_bus.c) */
	/* Configuration generations (edge_gen.h): the one this worker gives
	 * new requests (its thread only); the one the main thread published
	 * for it, taken by gen_ev; the id of the newest it took (read by the
	 * main thread). */
	struct edge_gen *gen;
	_Atomic(struct edge_gen *) gen_next;
	_Atomic unsigned gen_seen;
	struct event *gen_ev;
	struct edge_wake gen_wake;
	/* The last transaction's memory, kept for the next (edge_proxy.c) */
	struct proxy_txn *pt_spare;
	/*
	 * Written on every request by this worker only.  The pads keep other
	 * fields (and the next worker's, read on its every request) off the
	 * counters' cache lines: the array of workers is only 16-byte aligned.
	 */
	char ctr_pad_before[64];
	struct edge_counters ctr;
	char ctr_pad_after[64];
};

struct edge {
	uint32_t magic;
#define EDGE_MAGIC 0x70d4a1e3u
	struct conf *conf;
	struct event_base *main_base;
	struct edge_worker *workers;
	unsigned nworkers;
	int is_crowded; /* more workers than CPUs to run on: see worker_loop */
	atomic_uint workers_done;
	atomic_int draining;
	struct cdn_alog *alog;
	struct evconnlistener *admin;
	struct http_server *admin_http;
	struct event *sig_term, *sig_int, *sig_hup, *sig_usr1, *sig_usr2;
	struct event *join_timer;
	struct edge_admin_ctx *admin_ctx; /* edge_admin.c; NULL without admin */
	struct edge_stats *stats;         /* edge_stats.c; NULL without admin */
	uint64_t start_ms;
	/* The configuration a reload replaces (edge_gen.h): the newest
	 * generation, those retired but still held, and what wakes the main
	 * thread to free them.  <conf> above is the start-up one, the only
	 * source of restart-only directives. */
	struct edge_gen *gen;
	struct edge_gen *retired;
	struct event *gen_wake;
	unsigned reloads, reloads_failed;
	int argc; /* the command line a reload parses again */
	char **argv;
	/* The cache; NULL without cache_dir, or when it could not be opened
	 * (cache_off then says why: the node runs proxy-only). */
	struct cache_store *store;
	char cache_off[CACHE_WHY_LEN + 64];
	struct edge_variant_ctx *variant; /* codings (edge_variant.c) */
	struct edge_purged *purged;       /* edge_purged.c */
	struct edge_tls *tls;             /* NULL without listen_tls */
	struct edge_inflight *inflight;   /* shared fetches by key */
	/* node_name (conf_node_name): this node's CDN-Loop member. */
	char node_name[CONF_NODE_NAME_MAX];
	struct edge_bus *bus;           /* edge_bus.c */
	struct edge_takeover *takeover; /* edge_takeover.c */
};

/*
 * One client transaction of the proxy, from on_request to on_log (the one
 * place it is freed, as every transaction ends there).
 */
/* Bytes of a cache key's URL kept in the transaction (with the NUL). */
#define KEY_URL_ROOM 256

struct proxy_txn {
	uint32_t magic;
#define PROXY_TXN_MAGIC 0x52e9c0a7u
	struct edge_worker *w;
	struct edge_stream cs;        /* the client's (edge_stream.h) */
	const struct edge_site *site; /* chosen by Host in on_request */
	struct edge_gen *gen;         /* held: <site> points into it */
	struct origin_fetch *fetch;
	enum origin_err origin_err;
	uint64_t origin_ms;
	unsigned responded : 1; /* the client has its response head */
	unsigned used_origin : 1;
	/* The client is a cache of the fleet (fleet_allow, with CDN-Loop):
	 * it gets the stored objects' tags, to purge by them too. */
	unsigned fleet_cache : 1;
	/* cache (edge_cache.c) */
	unsigned has_key : 1;     /* key and key_url are set */
	unsigned cache_on : 1;    /* may be answered from / stored in cache */
	unsigned head_as_get : 1; /* a HEAD fetched as GET to fill the cache */
	unsigned served : 1;      /* answered from the stored copy (304) */
	unsigned pragma_no_cache : 1;
	unsigned swr : 1; /* answer pt->stale, refresh in the background */
	struct fill_waiter *waiter;  /* waiting on a shared fetch */
	unsigned range_upstream : 1; /* Range goes to the origin (too large) */
	unsigned decoding : 1;  /* the identity copy is being decoded: do not
	                         * replace the coded response with another */
	unsigned stored : 1;    /* the whole response went to a healthy store */
	const char *not_stored; /* why not, if the head said "stored" (static,
	                         * an access log detail; NULL: incomplete) */
	uint8_t key[CACHE_HASH_LEN];
	char *key_url;
	size_t key_url_len;
	int64_t content_length;  /* the origin's, -1 if unknown */
	struct cache_exchange x; /* request side, then the response's */
	struct cache_obj *stale; /* stored response being revalidated */
	struct cache_obj *fill;  /* response being stored */
	int fill_recodable;      /* edge_cache_fill_obj's *recodablep */
	uint64_t purge_gen;      /* purge seq when the request began */
	char cache_status[96];   /* Cache-Status after "name; " */
	char upstream[128];      /* the server that answered, for the log */

	/* The client's Range answered from the whole response (edge_range.c) */
	struct edge_range_stream *range;
	/* A hit's body being read from disk as the client takes it */
	struct edge_range_disk *disk;
	/* key_url when it fits (edge_cache.c key_for) */
	char key_url_room[KEY_URL_ROOM];
};

/* edge_worker.c */
/*
 * The worker whose thread calls, NULL on any other thread.  Per-worker
 * objects (a proxy_txn, a fill's fetch side) check their owner with
 * CDN_DASSERT(edge_worker_current() == owner) at their entry points.
 */
struct edge_worker *edge_worker_current(void);
/* Count a failed origin fetch (no-op for ORIGIN_OK). */
void edge_count_origin_error(struct edge_worker *w, enum origin_err err);

/* edge_access.c */
/*
 * The access log line of the request that <end> ends (<pt>: the proxy's
 * transaction, NULL if none), in w's access_log_format; <dur_ms> from the
 * complete request head to the end.  No-op without an access log.
 */
void edge_access_log(struct edge_worker *w, const struct edge_stream *cs,
    const struct proxy_txn *pt, const struct edge_stream_end *end,
    uint64_t dur_ms);

/* edge_reload.c */
/*
 * SIGHUP: parse the command line's config again and, if it is valid,
 * publish it as a new generation (edge_gen.h) to every worker and restart
 * purged on it; otherwise log why and keep the old one.  Main thread.
 */
void edge_reload(struct edge *e);
/* Take the generation the main thread published for <w> (its thread). */
void edge_reload_switch(struct edge_worker *w);
/* Free the retired generations no one holds any more (main thread). */
void edge_reload_collect(struct edge *e);

/* edge_cache.c */
/*
 * Look the request up.  Returns 1 when the cache answered it: the stream
 * is finished and <pt> is gone, or pt->disk sends the rest of the body as
 * the stream becomes writable (edge_cache_writable) and finishes it.  0 to
 * go to the origin; pt->stale is then set when a stored response is to be
 * revalidated.
 */
int edge_cache_request(struct proxy_txn *pt);
/* The client can take more of a body read from disk (no-op without
 * pt->disk); may finish the stream (<pt> is then gone). */
void edge_cache_writable(struct proxy_txn *pt);
/* Whether a client request field is left out of a cache-filling fetch. */
int edge_cache_drops_field(
    const struct proxy_txn *pt, const char *name, size_t len);
/* The path sent to the origin: the normalised one the key was built from. */
void edge_cache_origin_path(const struct proxy_txn *pt,
    const struct http_request *req, struct cdn_strbuf *url);
/* Fields added to the origin request (validators of pt->stale). */
void edge_cache_origin_fields(
    const struct proxy_txn *pt, struct cdn_strbuf *fb);
/*
 * The origin's response head: decide what to store, and append the
 * Cache-Status field to <out> (the client's fields).  Returns 1 when the
 * response was answered from the stored copy (a 304 to a revalidation);
 * the caller then sends nothing itself.
 */
int edge_cache_on_head(struct proxy_txn *pt, int status, const char *fields,
    size_t len, struct cdn_strbuf *out);
void edge_cache_on_body(struct proxy_txn *pt, const char *data, size_t len);
void edge_cache_on_done(struct proxy_txn *pt, enum origin_err e);
/*
 * Hand the complete response <o> to the store (and its codings to the
 * variant pool).  NULL if it was stored: the store took it and its disk
 * writes are not failing; else why not, as a Cache-Status detail
 * ("store-failing", "store-refused").
 */
const char *edge_cache_store(
    struct edge_worker *w, struct cache_obj *o, int recodable);
/*
 * What a response head that is going to be stored says of it: "; stored",
 * or "; detail=store-failing" while the store's disk writes fail.
 */
const char *edge_cache_store_note(struct edge *e);
/*
 * Before the access log line: the head's "stored" stands only if the
 * response was (pt->stored); otherwise it is replaced by a detail saying
 * why not (pt->not_stored, or "incomplete": the body had not all arrived
 * when the transaction ended).
 */
void edge_cache_log_status(struct proxy_txn *pt);
void edge_cache_txn_free(struct proxy_txn *pt);
/* Open the store (moving a damaged one aside) and build the policy from
 * the config.  A cache that cannot be opened is no failure: the node runs
 * proxy-only (edge_cache_state). */
int edge_cache_init(struct edge *e) CDN_WUR;
/*
 * The cache's state for /healthz, /stats and the dashboard: "ok", "off"
 * (no cache_dir) or "disabled (<why>)" (proxy-only: not opened, or found
 * damaged while running).  Writes a NUL-terminated string to <buf>.
 */
void edge_cache_state(struct edge *e, char *buf, size_t cap);
void edge_cache_fini(struct edge *e);

/* RFC 9111 §4.3.4: <old> refreshed by a 304's <fields>; NULL if out of
 * memory.  *d is the new storing decision. */
struct cache_obj *edge_cache_merge_304(const struct cache_policy_conf *policy,
    const struct cache_exchange *req_x, uint64_t purge_gen,
    const struct cache_obj *old, const char *fields, size_t len,
    struct cache_decision *d);
/* The request's fields as the Vary logic takes them (Accept-Encoding is
 * the codings' business); -1 if more than <cap>. */
int edge_cache_request_fields(
    const struct http_request *req, struct cache_field *f, unsigned cap);
struct cache_obj *edge_cache_fill_obj(struct edge *e,
    const struct edge_site *site, struct cache_exchange *x,
    const uint8_t key[CACHE_HASH_LEN], const char *key_url, size_t key_url_len,
    const struct cache_field *rf, int nrf, int decoding, uint64_t purge_gen,
    int status, const char *fields, size_t len, int64_t content_length,
    struct cdn_strbuf *out, struct cache_decision *d, int *recodablep);
/* A new object to fill, from the client's copy of the response head;
 * <age_or_status>: cache_head_scan's, of the origin's head it was made from
 * (1 when unknown), as 0 lets the copy skip the filter of those fields. */
struct cache_obj *edge_cache_new_obj(const uint8_t key[CACHE_HASH_LEN],
    uint64_t variant, int status, const struct cache_decision *d,
    int64_t response_time, const char *url, size_t url_len,
    const char *client_fields, size_t fields_len, int age_or_status,
    const char *vary, size_t vary_len);
/* May <o> be served stale because the origin failed (RFC 5861 §4 and the
 * operator's cache_stale_if_error)? */
int edge_cache_stale_if_error_ok(const struct edge_site *site,
    const struct cache_obj *o, const struct cache_cc *req_cc,
    int req_pragma_no_cache);
/*
 * The origin failed (<err_status> 5xx, or 0 and <why> names the error):
 * answer pt->stale if allowed and return 1 (with <finish>, the stream is
 * finished and pt gone); else 0.
 */
int edge_cache_serve_stale_on_error(
    struct proxy_txn *pt, int err_status, const char *why, int finish);
/* stale-while-revalidate: answer pt->stale now; pt dies. */
void edge_cache_serve_swr(struct proxy_txn *pt);

/* edge_fill.c: collapsed forwarding (the table: edge_inflight.h) */
/*
 * What a fill needs from the caller that started it (the proxy), so that
 * it calls nothing above itself.
 */
struct edge_fill_hooks {
	/* <pt> cannot share the fill (another Vary, a coding it does not
	 * take, a response not shareable): it fetches on its own. */
	void (*fetch_alone)(struct proxy_txn *pt);
	/* The origin callbacks of a fetch of one client: a fill whose
	 * response may not be shared hands its fetch to the leading client
	 * with these (and calls on_head or on_body for what already came). */
	const struct origin_fetch_ops *client_ops;
};
/*
 * Share a cache-filling fetch: join the one in flight for pt->key, or
 * start it with <oreq> (on this worker) and wait on it; with pt->swr,
 * make sure a background refresh runs and answer stale.  Returns 1 when
 * the fill has the stream, 0 when the request must fetch alone (not
 * shareable, or the key is hit-for-miss).
 */
int edge_fill_begin(struct proxy_txn *pt, const struct origin_request *oreq,
    const struct edge_fill_hooks *hooks);
/* The client can take more / is gone (no-ops unless pt waits). */
void edge_fill_writable(struct proxy_txn *pt);
void edge_fill_detach(struct proxy_txn *pt);
/* Cancel this worker's fills (its loop has stopped). */
void edge_fill_worker_stop(struct edge_worker *w);

/* edge_h1.c: HTTP/1.1 clients, a client stream over each http_txn */
extern const struct http_handler edge_h1_handler;

/* edge_admin.c */
extern const struct http_handler edge_admin_handler;
/*
 * The admin listener's state, on the main thread: the address ACL, the
 * token and the figures (edge_stats_init()).  CDN_EINVAL after logging why
 * if admin_allow or admin_token_file is unusable.
 */
int edge_admin_init(struct edge *e) CDN_WUR;
void edge_admin_fini(struct edge *e);
/* edge_stats.c */
/*
 * The ring of per-second snapshots behind /stats' windows, filled by a
 * timer on e->main_base.  CDN_ENOMEM if the timer cannot be made.
 */
int edge_stats_init(struct edge *e) CDN_WUR;
void edge_stats_fini(struct edge *e);
/*
 * /stats as JSON text, with the last <history> snapshots (0: none; then
 * indented); NULL if out of memory.  The caller frees it.  Needs
 * edge_stats_init().
 */
char *edge_stats_json(struct edge *e, unsigned history);
/* /metrics as text of *len bytes, or NULL if over its size cap or out of
 * memory.  The caller frees it. */
char *edge_metrics_text(struct edge *e, size_t *len);
/* edge_bus.c */
/*
 * The purge bus as edged sees it (purge_bus*, fleet_allow), after
 * edge_cache_init (it reads the store's shared page).  CDN_EINVAL after
 * logging why if fleet_allow is unusable.
 */
int edge_bus_init(struct edge *e) CDN_WUR;
void edge_bus_fini(struct edge *e);
/* Whether purge_bus is set. */
int edge_bus_configured(const struct edge *e);
/*
 * What a cache hit on worker <w> may do now (cache_bus_verdict with the
 * loop's cached clock); CACHE_BUS_SERVE at once without a bus.  Logs,
 * rate-limited per worker, while hits are served offline.
 */
enum cache_bus_verdict edge_bus_hit(struct edge_worker *w);
/* Whether the client at <addr> is a node of the fleet (fleet_allow). */
int edge_bus_in_fleet(const struct edge *e, const char *addr);

/*
 * The tier race, parent side: the request of <cs> carried <nfields>
 * Edge-Bus-Applied fields, the first with <value>.  1 if the client is in
 * fleet_allow and has applied a bus entry this node has not (no stored
 * object may answer it); 0 otherwise: the field is behind ours, or
 * ignored (more than one, unparsable, or a client outside fleet_allow).
 * Counts each outcome.
 */
int edge_bus_behind(struct edge_worker *w, const struct edge_stream *cs,
    struct http_slice value, unsigned nfields);
/* The bus figures of /stats and /metrics (edge_counters.h EDGE_BUS_STAT). */
struct edge_bus_stats {
#define EDGE_BUS_STAT(field, ...) uint64_t field;
#include "edge/edge_counters.h"
	struct cache_bus_id applied_id;
	uint64_t latency_le[CACHE_BUS_LATENCY_BUCKETS]; /* not cumulative */
	uint64_t latency_sum_us;
};
/* Read them from the shared page (main thread). */
void edge_bus_stats(const struct edge *e, struct edge_bus_stats *st);

/* edge_process.c */
/* The process_* figures of /metrics (edge_counters.h EDGE_PROCESS_STAT). */
struct edge_process_stats {
#define EDGE_PROCESS_STAT(field, ...) uint64_t field;
#include "edge/edge_counters.h"
};
/*
 * Read this process's figures from /proc (Linux).  CDN_OK with every field
 * of <ps> set, or CDN_EIO (logged once per process) when /proc cannot be
 * read; <ps> is then undefined.  Main thread (the failure is logged once
 * without a lock); a few reads of /proc files, so never on a worker.
 */
int edge_process_stats(struct edge_process_stats *ps) CDN_WUR;

/* edge_purged.c */
/*
 * Tags (cache_tag_fields) and, with purge_listen, purged as a child of the
 * main thread's event_base, restarted if it dies.  CDN_EINVAL after
 * logging why if the settings are unusable.
 */
int edge_purged_init(struct edge *e) CDN_WUR;
/* Stops the child (SIGTERM, then SIGKILL) and frees. */
void edge_purged_fini(struct edge *e);
/* The purge_listen socket edged keeps for its purged children, or -1. */
int edge_purged_listen_fd(const struct edge *e);
/* Start the child edge_purged_init() left for later (a takeover: the old
 * edged's purged held purge_listen).  A no-op otherwise. */
void edge_purged_start(struct edge *e);
/* Stop the child now (SIGTERM, then SIGKILL), not to restart it: a new
 * edged starts its own. */
void edge_purged_stop(struct edge *e);
/* Ask the purged child, if one runs, to reopen its logs (SIGUSR1). */
void edge_purged_reopen_logs(struct edge *e);
/*
 * The configuration changed: hand <c> to a new purged, started once the
 * old one has stopped (SIGTERM: it answers the purges it has and exits).
 * A no-op without the child.  CDN_EINVAL (logged) if <c> cannot be handed
 * over; the old purged then keeps running.
 */
int edge_purged_reload(struct edge *e, const struct conf *c) CDN_WUR;
/* The names of the fields whose values are purge tags (*n of them; none
 * without purges by tag), for cache_exchange_parse_head. */
const struct cache_name *edge_purge_tag_fields(
    const struct edge *e, unsigned *n);
/* A fill starts: record the purge generation <purge_gen> and the tags of
 * the origin's <fields> in <o>; <may_have_tags> 0 (the head scan's) when
 * no field has a tag field's name.  CDN_ENOMEM: do not store it. */
int edge_purge_on_fill(struct edge *e, struct cache_obj *o, const char *fields,
    size_t len, int may_have_tags, uint64_t purge_gen) CDN_WUR;
/* Whether a response field is kept from clients (Surrogate-Key). */
int edge_purge_hides_field(const struct edge *e, const char *name, size_t len);
/* The origin's response head came <us> after the request (worker thread). */
void edge_stats_origin_head(struct edge_worker *w, uint64_t us);

/* edge_worker.c: drain as on SIGTERM, <why> naming the cause in the log;
 * with <stopping>, tell the service manager that the service stops (not
 * so when a new edged took over).  Main thread; a second call is a no-op.
 */
void edge_start_drain(struct edge *e, const char *why, int stopping);

/* edge_takeover.c (main thread only) */
/*
 * The old side: listen on the takeover socket (takeover_socket, or
 * edged.takeover in cache_dir; nothing without either) and hand every
 * listener to an edged --takeover that connects, then drain once it
 * serves.  After edge_takeover_fetch() the socket is bound under a
 * temporary name that edge_takeover_ready() renames.  CDN_OK, or an error
 * after logging why (another edged listens there: use --takeover).
 */
int edge_takeover_listen(struct edge *e) CDN_WUR;
/*
 * The new side, before any listener is bound: receive the running edged's
 * listening sockets.  CDN_OK, or an error after logging why (no edged
 * there, or it refused); the running edged keeps serving either way.
 */
int edge_takeover_fetch(struct edge *e) CDN_WUR;
/* Whether this edged takes over from another and has not told it yet
 * that it serves. */
int edge_takeover_pending(const struct edge *e);
/* Whether a socket of <kind> on <addr> was received (it needs no probe). */
int edge_takeover_has(
    const struct edge *e, enum edge_listen_kind kind, const char *addr);
/* A received socket of <kind> on <addr>, now the caller's, or -1. */
int edge_takeover_take(
    struct edge *e, enum edge_listen_kind kind, const char *addr);
/* Any received socket not taken yet, now the caller's, with its kind and
 * address (valid until edge_takeover_fini()); -1 when none is left. */
int edge_takeover_next(
    struct edge *e, enum edge_listen_kind *kind, const char **addr);
/* "listen", "listen_tls", ...: the directive a kind comes from. */
const char *edge_takeover_kind_name(enum edge_listen_kind kind);
/*
 * The new side, once its workers serve: tell the old edged, wait (bounded)
 * until it drains and its purged stopped, take the socket's path over and
 * start purged.  A no-op without a takeover.
 */
void edge_takeover_ready(struct edge *e);
/*
 * SIGUSR2: start the binary at the path edged was started from (after a
 * package upgrade, the new one) with this edged's command line and
 * --takeover, as a child: under systemd it stays in the service.  Its
 * failure is logged; this edged serves on either way.
 */
void edge_takeover_spawn(struct edge *e);
/* Close the socket (removing its path unless a new edged owns it now). */
void edge_takeover_fini(struct edge *e);

#endif /* EDGE_INT_H */
