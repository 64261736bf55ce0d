/*
 * The admin listener's handler: /healthz, /stats (JSON), /metrics
 * (Prometheus text exposition format 0.0.4) and /dashboard (one
 * self-contained HTML page, edge/dashboard.html), served on the main
 * thread.  docs/metrics.md documents every figure.
 *
 * Counters: each worker writes its own struct edge_counters (single-writer
 * relaxed stores, edge_int.h); a read sums them with relaxed loads into a
 * plain struct edge_totals.  Each worker's figures are exact; the sum may
 * split a request that is ending at that moment (its hit counted, its
 * bytes not yet), never more.  The origin histogram's count is the sum of
 * its buckets, so +Inf and _count always agree.
 *
 * Windows: a timer on the main thread sums the counters once a second into
 * a ring of RING_SLOTS snapshots (a little over 15 minutes).  A window's
 * figures are the live sum minus the newest snapshot at least that old (or
 * the oldest one, just after start-up); the request path knows nothing of
 * it.  The ring, the ACL, the token and the log throttle belong to the
 * main thread alone: no lock.
 *
 * Access: a client outside admin_allow gets 403; when admin_token_file is
 * set, a request without "Authorization: Bearer <token>" gets 401, except
 * /healthz, which load balancers probe without credentials, and /dashboard,
 * a page without data that asks for the token to read /stats.  Each refusal
 * is logged with the client's address, at most LOG_BURST lines a second.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <jansson.h>

#include "edge/edge_dashboard.h"
#include "http/http_access.h"
#include "edge/edge_int.h"
#include "edge/edge_variant.h"

#define RING_SLOTS       (15 * 60 + 8) /* one snapshot a second */
#define SNAP_INTERVAL_MS 1000
#define HISTORY_MAX      900 /* rows /stats?history=N gives at most */
#define METRICS_MAX      (4u << 20)
#define LOG_BURST        10 /* refusals logged per second */

/* Upper bounds of the origin latency buckets, in µs; one more is +Inf. */
static const uint64_t origin_le_us[EDGE_ORIGIN_BUCKETS - 1] = {100, 250, 500,
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,
    2500000, 5000000, 10000000, 30000000};

static const char *const mc_names[EDGE_MC_COUNT] = {
    "get", "head", "post", "put", "delete", "patch", "options", "other"};
static const char *const status_names[6] = {
    "none", "1xx", "2xx", "3xx", "4xx", "5xx"};
static const char *const from_names[EDGE_FROM_COUNT] = {
    "cache", "origin", "edge"};

/* Until sites and origin pools exist, everything is theirs. */
#define SITE_DEFAULT "default"
#define POOL_DEFAULT "default"

/* Every worker's counters, summed. */
struct edge_totals {
	uint64_t requests, status[6], client_aborts, bad_requests, unknown_host;
	uint64_t origin_fetches, origin_errors, origin_timeouts;
	uint64_t bytes_sent, conns_accepted, conns_open;
	uint64_t hits_memory, hits_disk, misses, revalidations, not_modified;
	uint64_t stores, invalidations, bypass;
	uint64_t collapsed, collapse_released, hit_for_miss, hit_for_miss_used;
	uint64_t stale_swr, stale_sie;
	uint64_t req_class[EDGE_MC_COUNT][6];
	uint64_t bytes_from[EDGE_FROM_COUNT];
	uint64_t origin_err_kind[ORIGIN_ERR_KINDS];
	uint64_t origin_hist[EDGE_ORIGIN_BUCKETS];
	uint64_t origin_hist_sum_us;
	uint64_t tls_handshakes, tls_resumed, tls_handshake_errors;
	uint64_t tls_handshake_timeouts, tls_handshake_aborts;
};

/* What the windows and the dashboard's history need, once a second. */
struct edge_snap {
	uint64_t t_ms; /* since start-up */
	uint64_t requests, hits, misses, stale, bypass;
	uint64_t bytes_from[EDGE_FROM_COUNT];
	uint64_t origin_requests, origin_errors;
	uint64_t origin_hist[EDGE_ORIGIN_BUCKETS];
};

struct edge_admin_ctx {
	struct event *snap_timer;
	struct edge_snap *ring; /* RING_SLOTS */
	unsigned ring_head;     /* next slot to write */
	unsigned ring_len;
	struct http_acl acl;
	struct http_tokens tokens; /* none: no token required */
	uint64_t log_sec;          /* the log throttle's second and its count */
	unsigned log_n;
	uint64_t log_dropped;
};

/* ---- reading the counters ---- */

void
edge_stats_origin_head(struct edge_worker *w, uint64_t us)
{
	unsigned b = 0;

	while (b < EDGE_ORIGIN_BUCKETS - 1 && us > origin_le_us[b])
		b++;
	EDGE_COUNTER_INC(w, origin_hist[b]);
	EDGE_COUNTER_ADD(w, origin_hist_sum_us, us);
}

#define LD(x) atomic_load_explicit(&(x), memory_order_relaxed)

static void
totals_read(const struct edge *e, struct edge_totals *t)
{
	memset(t, 0, sizeof(*t));
	for (unsigned i = 0; i < e->nworkers; i++) {
		const struct edge_counters *c = &e->workers[i].ctr;

		t->requests += LD(c->requests);
		for (unsigned k = 0; k < 6; k++)
			t->status[k] += LD(c->status[k]);
		t->client_aborts += LD(c->client_aborts);
		t->bad_requests += LD(c->bad_requests);
		t->unknown_host += LD(c->unknown_host);
		t->origin_fetches += LD(c->origin_fetches);
		t->origin_errors += LD(c->origin_errors);
		t->origin_timeouts += LD(c->origin_timeouts);
		t->bytes_sent += LD(c->bytes_sent);
		t->conns_accepted += LD(c->conns_accepted);
		t->conns_open += LD(c->conns_open);
		t->hits_memory += LD(c->cache_hits_memory);
		t->hits_disk += LD(c->cache_hits_disk);
		t->misses += LD(c->cache_misses);
		t->revalidations += LD(c->cache_revalidations);
		t->not_modified += LD(c->cache_not_modified);
		t->stores += LD(c->cache_stores);
		t->invalidations += LD(c->cache_invalidations);
		t->bypass += LD(c->cache_bypass);
		t->collapsed += LD(c->cache_collapsed);
		t->collapse_released += LD(c->cache_collapse_released);
		t->hit_for_miss += LD(c->cache_hit_for_miss);
		t->hit_for_miss_used += LD(c->cache_hit_for_miss_used);
		t->stale_swr += LD(c->cache_stale_while_revalidate);
		t->stale_sie += LD(c->cache_stale_if_error);
		for (unsigned m = 0; m < EDGE_MC_COUNT; m++)
			for (unsigned k = 0; k < 6; k++)
				t->req_class[m][k] += LD(c->req_class[m][k]);
		for (unsigned f = 0; f < EDGE_FROM_COUNT; f++)
			t->bytes_from[f] += LD(c->bytes_from[f]);
		for (unsigned k = 0; k < ORIGIN_ERR_KINDS; k++)
			t->origin_err_kind[k] += LD(c->origin_err_kind[k]);
		for (unsigned b = 0; b < EDGE_ORIGIN_BUCKETS; b++)
			t->origin_hist[b] += LD(c->origin_hist[b]);
		t->origin_hist_sum_us += LD(c->origin_hist_sum_us);
		t->tls_handshakes += LD(c->tls_handshakes);
		t->tls_resumed += LD(c->tls_resumed);
		t->tls_handshake_errors += LD(c->tls_handshake_errors);
		t->tls_handshake_timeouts += LD(c->tls_handshake_timeouts);
		t->tls_handshake_aborts += LD(c->tls_handshake_aborts);
	}
}

#undef LD

static void
snap_from(
    const struct edge *e, const struct edge_totals *t, struct edge_snap *s)
{
	memset(s, 0, sizeof(*s));
	s->t_ms = cdn_now_ms() - e->start_ms;
	s->requests = t->requests;
	s->hits = t->hits_memory + t->hits_disk;
	s->misses = t->misses;
	s->stale = t->revalidations;
	s->bypass = t->bypass;
	memcpy(s->bytes_from, t->bytes_from, sizeof(s->bytes_from));
	s->origin_requests = t->origin_fetches;
	s->origin_errors = t->origin_errors;
	memcpy(s->origin_hist, t->origin_hist, sizeof(s->origin_hist));
}

static uint64_t
hist_count(const uint64_t *h)
{
	uint64_t n = 0;

	for (unsigned b = 0; b < EDGE_ORIGIN_BUCKETS; b++)
		n += h[b];
	return n;
}

/* ---- the ring of snapshots ---- */

static void
ring_push(struct edge_admin_ctx *a, const struct edge_snap *s)
{
	a->ring[a->ring_head] = *s;
	a->ring_head = (a->ring_head + 1) % RING_SLOTS;
	if (a->ring_len < RING_SLOTS)
		a->ring_len++;
}

/* The i-th snapshot, 0 the newest.  i < ring_len. */
static const struct edge_snap *
ring_at(const struct edge_admin_ctx *a, unsigned i)
{
	CDN_ASSERT(i < a->ring_len);
	return &a->ring[(a->ring_head + RING_SLOTS - 1 - i) % RING_SLOTS];
}

/* The newest snapshot at least <age_ms> older than <now_ms>, else the
 * oldest. */
static const struct edge_snap *
ring_base(const struct edge_admin_ctx *a, uint64_t now_ms, uint64_t age_ms)
{
	for (unsigned i = 0; i < a->ring_len; i++) {
		const struct edge_snap *s = ring_at(a, i);

		if (s->t_ms + age_ms <= now_ms)
			return s;
	}
	return ring_at(a, a->ring_len - 1);
}

static void
on_snap_timer(evutil_socket_t fd, short what, void *arg)
{
	struct edge *e = arg;
	struct edge_totals t;
	struct edge_snap s;

	(void)fd;
	(void)what;
	totals_read(e, &t);
	snap_from(e, &t, &s);
	ring_push(e->admin_ctx, &s);
}

/* ---- /stats ---- */

#define JINT(v) json_integer((json_int_t)(v))

static json_t *
ratio_json(uint64_t part, uint64_t whole)
{
	return whole > 0 ? json_real((double)part / (double)whole)
	                 : json_null();
}

/* The figures of <now> minus <base>: one site, or all of them. */
static json_t *
window_json(const struct edge_snap *now, const struct edge_snap *base)
{
	json_t *w = json_object(), *r = json_object();
	uint64_t span_ms = now->t_ms - base->t_ms;
	uint64_t hits = now->hits - base->hits;
	uint64_t lookups =
	    hits + (now->misses - base->misses) + (now->stale - base->stale);
	uint64_t bc = now->bytes_from[EDGE_FROM_CACHE] -
	    base->bytes_from[EDGE_FROM_CACHE];
	uint64_t bo = now->bytes_from[EDGE_FROM_ORIGIN] -
	    base->bytes_from[EDGE_FROM_ORIGIN];
	uint64_t req = now->requests - base->requests;

	json_object_set_new(w, "span_s", json_real((double)span_ms / 1000.0));
	json_object_set_new(w, "requests", JINT(req));
	json_object_set_new(w, "requests_per_s",
	    json_real(
	        span_ms > 0 ? (double)req * 1000.0 / (double)span_ms : 0.0));
	json_object_set_new(w, "hits", JINT(hits));
	json_object_set_new(w, "misses", JINT(now->misses - base->misses));
	json_object_set_new(w, "stale", JINT(now->stale - base->stale));
	json_object_set_new(w, "bypass", JINT(now->bypass - base->bypass));
	json_object_set_new(w, "bytes_cache", JINT(bc));
	json_object_set_new(w, "bytes_origin", JINT(bo));
	json_object_set_new(w, "bytes_edge",
	    JINT(now->bytes_from[EDGE_FROM_EDGE] -
	        base->bytes_from[EDGE_FROM_EDGE]));
	json_object_set_new(w, "origin_requests",
	    JINT(now->origin_requests - base->origin_requests));
	json_object_set_new(
	    w, "origin_errors", JINT(now->origin_errors - base->origin_errors));
	json_object_set_new(r, "requests", ratio_json(hits, lookups));
	json_object_set_new(r, "bytes", ratio_json(bc, bc + bo));
	json_object_set_new(w, "hit_ratio", r);
	return w;
}

static json_t *
windows_json(const struct edge_admin_ctx *a, const struct edge_snap *now)
{
	static const struct {
		const char *name;
		uint64_t ms;
	} win[] = {{"1m", 60000}, {"5m", 300000}, {"15m", 900000}};
	json_t *j = json_object();

	for (size_t i = 0; i < CDN_ARRAY_LEN(win); i++)
		json_object_set_new(j, win[i].name,
		    window_json(now, ring_base(a, now->t_ms, win[i].ms)));
	return j;
}

/* Bucket bounds, per-bucket counts (not cumulative; the last is +Inf),
 * sum and count of the origin latency histogram. */
static json_t *
hist_json(const uint64_t *h, uint64_t sum_us)
{
	json_t *j = json_object(), *le = json_array(), *c = json_array();

	for (unsigned b = 0; b < EDGE_ORIGIN_BUCKETS - 1; b++)
		json_array_append_new(
		    le, json_real((double)origin_le_us[b] / 1e6));
	for (unsigned b = 0; b < EDGE_ORIGIN_BUCKETS; b++)
		json_array_append_new(c, JINT(h[b]));
	json_object_set_new(j, "le_s", le);
	json_object_set_new(j, "counts", c);
	json_object_set_new(j, "sum_s", json_real((double)sum_us / 1e6));
	json_object_set_new(j, "count", JINT(hist_count(h)));
	return j;
}

static json_t *
origin_errors_json(const struct edge_totals *t)
{
	json_t *j = json_object();

	for (unsigned k = 1; k < ORIGIN_ERR_KINDS; k++)
		json_object_set_new(j, origin_err_name((enum origin_err)k),
		    JINT(t->origin_err_kind[k]));
	return j;
}

/*
 * The last <n> snapshots, oldest first, as rows of cumulative figures (the
 * dashboard charts their differences).
 */
static json_t *
history_json(const struct edge_admin_ctx *a, unsigned n)
{
	static const char *const cols[] = {"t_ms", "requests", "hits", "misses",
	    "stale", "bypass", "bytes_cache", "bytes_origin", "bytes_edge",
	    "origin_requests", "origin_errors", "origin_hist"};
	json_t *j = json_object(), *c = json_array(), *rows = json_array();

	if (n > a->ring_len)
		n = a->ring_len;
	for (size_t i = 0; i < CDN_ARRAY_LEN(cols); i++)
		json_array_append_new(c, json_string(cols[i]));
	for (unsigned i = n; i-- > 0;) {
		const struct edge_snap *s = ring_at(a, i);
		json_t *row = json_array(), *h = json_array();

		json_array_append_new(row, JINT(s->t_ms));
		json_array_append_new(row, JINT(s->requests));
		json_array_append_new(row, JINT(s->hits));
		json_array_append_new(row, JINT(s->misses));
		json_array_append_new(row, JINT(s->stale));
		json_array_append_new(row, JINT(s->bypass));
		for (unsigned f = 0; f < EDGE_FROM_COUNT; f++)
			json_array_append_new(row, JINT(s->bytes_from[f]));
		json_array_append_new(row, JINT(s->origin_requests));
		json_array_append_new(row, JINT(s->origin_errors));
		for (unsigned b = 0; b < EDGE_ORIGIN_BUCKETS; b++)
			json_array_append_new(h, JINT(s->origin_hist[b]));
		json_array_append_new(row, h);
		json_array_append_new(rows, row);
	}
	json_object_set_new(j, "step_ms", JINT(SNAP_INTERVAL_MS));
	json_object_set_new(j, "columns", c);
	json_object_set_new(j, "rows", rows);
	return j;
}

/* One site's figures (today the one site has them all). */
static json_t *
site_json(const struct edge_admin_ctx *a, const struct edge_totals *t,
    const struct edge_snap *now, unsigned history)
{
	json_t *s = json_object();

	json_object_set_new(s, "requests", JINT(t->requests));
	json_object_set_new(s, "hits", JINT(now->hits));
	json_object_set_new(s, "hits_memory", JINT(t->hits_memory));
	json_object_set_new(s, "hits_disk", JINT(t->hits_disk));
	json_object_set_new(s, "misses", JINT(t->misses));
	json_object_set_new(s, "stale", JINT(t->revalidations));
	json_object_set_new(s, "bypass", JINT(t->bypass));
	json_object_set_new(
	    s, "bytes_cache", JINT(t->bytes_from[EDGE_FROM_CACHE]));
	json_object_set_new(
	    s, "bytes_origin", JINT(t->bytes_from[EDGE_FROM_ORIGIN]));
	json_object_set_new(
	    s, "bytes_edge", JINT(t->bytes_from[EDGE_FROM_EDGE]));
	json_object_set_new(s, "origin_requests", JINT(t->origin_fetches));
	json_object_set_new(s, "origin_errors", JINT(t->origin_errors));
	json_object_set_new(s, "origin_errors_by_kind", origin_errors_json(t));
	json_object_set_new(s, "origin_duration",
	    hist_json(t->origin_hist, t->origin_hist_sum_us));
	json_object_set_new(s, "windows", windows_json(a, now));
	if (history > 0)
		json_object_set_new(s, "history", history_json(a, history));
	return s;
}

static json_t *
variants_json(const struct edge *e)
{
	struct edge_variant_counters vc;
	json_t *j = json_object();

	edge_variant_counters(e, &vc);
	json_object_set_new(j, "made", JINT(vc.made));
	json_object_set_new(j, "not_smaller", JINT(vc.not_smaller));
	json_object_set_new(j, "dropped", JINT(vc.dropped));
	json_object_set_new(j, "superseded", JINT(vc.superseded));
	json_object_set_new(j, "decoded", JINT(vc.decoded));
	json_object_set_new(j, "bombs", JINT(vc.bombs));
	json_object_set_new(j, "not_acceptable", JINT(vc.not_acceptable));
	json_object_set_new(j, "partial_reads", JINT(vc.partial_reads));
	json_object_set_new(j, "in_bytes", JINT(vc.in_bytes));
	json_object_set_new(j, "out_bytes", JINT(vc.out_bytes));
	json_object_set_new(j, "busy_ms", JINT(vc.busy_ns / 1000000));
	return j;
}

static json_t *
cache_json(struct edge *e, const struct edge_totals *t)
{
	struct cache_store_stats st;
	json_t *c = json_object(), *stale = json_object(), *pu = json_object();

	char state[sizeof(e->cache_off) + 16];

	edge_cache_state(e, state, sizeof(state));
	json_object_set_new(
	    c, "enabled", json_boolean(strcmp(state, "ok") == 0));
	json_object_set_new(c, "state", json_string(state));
	json_object_set_new(c, "hits_memory", JINT(t->hits_memory));
	json_object_set_new(c, "hits_disk", JINT(t->hits_disk));
	json_object_set_new(c, "misses", JINT(t->misses));
	json_object_set_new(c, "revalidations", JINT(t->revalidations));
	json_object_set_new(c, "not_modified", JINT(t->not_modified));
	json_object_set_new(c, "stores", JINT(t->stores));
	json_object_set_new(c, "invalidations", JINT(t->invalidations));
	json_object_set_new(c, "bypass", JINT(t->bypass));
	json_object_set_new(stale, "revalidate", JINT(t->revalidations));
	json_object_set_new(
	    stale, "stale_while_revalidate", JINT(t->stale_swr));
	json_object_set_new(stale, "stale_if_error", JINT(t->stale_sie));
	json_object_set_new(c, "stale", stale);
	json_object_set_new(c, "coalesced", JINT(t->collapsed));
	json_object_set_new(c, "coalesce_released", JINT(t->collapse_released));
	json_object_set_new(c, "hit_for_miss", JINT(t->hit_for_miss));
	json_object_set_new(
	    c, "hit_for_miss_misses", JINT(t->hit_for_miss_used));
	json_object_set_new(c, "purges", pu);
	json_object_set_new(c, "variants", variants_json(e));
	if (e->store == NULL) {
		json_object_set_new(pu, "hard", JINT(0));
		json_object_set_new(pu, "soft", JINT(0));
		return c;
	}
	cache_store_stats(e->store, &st);
	json_object_set_new(pu, "hard", JINT(st.purged_hard));
	json_object_set_new(pu, "soft", JINT(st.purged_soft));
	json_object_set_new(pu, "seq", JINT(st.purge_seq));
	json_object_set_new(c, "objects", JINT(st.objects));
	json_object_set_new(c, "bytes", JINT(st.bytes));
	json_object_set_new(c, "memory_objects", JINT(st.mem_objects));
	json_object_set_new(c, "memory_bytes", JINT(st.mem_bytes));
	json_object_set_new(c, "puts", JINT(st.puts));
	json_object_set_new(c, "put_drops", JINT(st.put_drops));
	json_object_set_new(c, "evictions", JINT(st.evictions));
	json_object_set_new(c, "memory_evictions", JINT(st.mem_evictions));
	json_object_set_new(c, "map_full", JINT(st.map_full));
	json_object_set_new(c, "corrupt", JINT(st.corrupt));
	json_object_set_new(c, "io_errors", JINT(st.io_errors));
	return c;
}

static json_t *
tls_json(const struct edge_totals *t)
{
	json_t *j = json_object();

	json_object_set_new(j, "handshakes", JINT(t->tls_handshakes));
	json_object_set_new(j, "resumed", JINT(t->tls_resumed));
	json_object_set_new(
	    j, "handshake_errors", JINT(t->tls_handshake_errors));
	json_object_set_new(
	    j, "handshake_timeouts", JINT(t->tls_handshake_timeouts));
	json_object_set_new(
	    j, "handshake_aborts", JINT(t->tls_handshake_aborts));
	return j;
}

/* Each site's pool and its servers' health, as the workers see it now. */
static json_t *
pools_json(const struct edge *e)
{
	json_t *arr = json_array(), *p, *servers, *o;
	struct origin_server_state st;

	for (unsigned i = 0; i < edge_sites_count(e->sites); i++) {
		const struct edge_site *site = edge_sites_at(e->sites, i);

		p = json_object();
		json_object_set_new(p, "site", json_string(site->name));
		json_object_set_new(
		    p, "balance", json_string(site->conf->origin_balance));
		json_object_set_new(p, "health_checks",
		    json_boolean(origin_pool_has_checks(site->pool)));
		json_object_set_new(
		    p, "retries", JINT(origin_pool_retries(site->pool)));
		servers = json_array();
		for (unsigned k = 0; k < origin_pool_nservers(site->pool);
		     k++) {
			origin_pool_server_state(site->pool, k, &st);
			o = json_object();
			json_object_set_new(o, "url", json_string(st.url));
			json_object_set_new(o, "up", json_boolean(st.up));
			json_object_set_new(
			    o, "healthy", json_boolean(st.hc_healthy));
			json_object_set_new(
			    o, "cooling_down", json_boolean(st.cooling));
			json_object_set_new(o, "active", JINT(st.active));
			json_object_set_new(o, "fetches", JINT(st.fetches));
			json_object_set_new(o, "failures", JINT(st.failures));
			json_array_append_new(servers, o);
		}
		json_object_set_new(p, "servers", servers);
		json_array_append_new(arr, p);
	}
	return arr;
}

/* Requests and fresh hits of one site, summed over the workers. */
static void
site_sums(const struct edge *e, unsigned idx, uint64_t *req, uint64_t *hits)
{
	*req = 0;
	*hits = 0;
	for (unsigned w = 0; w < e->nworkers; w++) {
		const struct edge_site_counters *c =
		    &e->workers[w].site_ctr[idx];

		*req +=
		    atomic_load_explicit(&c->requests, memory_order_relaxed);
		*hits += atomic_load_explicit(&c->hits, memory_order_relaxed);
	}
}

static json_t *
site_counters_json(const struct edge *e)
{
	json_t *obj = json_object(), *o;
	uint64_t req, hits;

	for (unsigned i = 0; i < edge_sites_count(e->sites); i++) {
		site_sums(e, i, &req, &hits);
		o = json_object();
		json_object_set_new(o, "requests", JINT(req));
		json_object_set_new(o, "hits", JINT(hits));
		json_object_set_new(obj, edge_sites_at(e->sites, i)->name, o);
	}
	return obj;
}

static json_t *
stats_json(struct edge *e, unsigned history)
{
	struct edge_admin_ctx *a = e->admin_ctx;
	struct edge_totals t;
	struct edge_snap now;
	json_t *root, *status, *by, *m, *bytes, *origins, *o, *sites;
	uint64_t up_ms = cdn_now_ms() - e->start_ms;

	totals_read(e, &t);
	snap_from(e, &t, &now);
	root = json_object();
	json_object_set_new(root, "version", json_string(PACKAGE_VERSION));
	json_object_set_new(root, "uptime_s", JINT(up_ms / 1000));
	json_object_set_new(root, "uptime_ms", JINT(now.t_ms));
	json_object_set_new(root, "workers", json_integer(e->nworkers));
	json_object_set_new(
	    root, "draining", json_boolean(atomic_load(&e->draining)));
	json_object_set_new(root, "requests", JINT(t.requests));
	status = json_object();
	for (unsigned k = 1; k < 6; k++)
		json_object_set_new(status, status_names[k], JINT(t.status[k]));
	json_object_set_new(root, "responses", status);
	by = json_object();
	for (unsigned mc = 0; mc < EDGE_MC_COUNT; mc++) {
		m = json_object();
		for (unsigned k = 0; k < 6; k++)
			json_object_set_new(
			    m, status_names[k], JINT(t.req_class[mc][k]));
		json_object_set_new(by, mc_names[mc], m);
	}
	json_object_set_new(root, "requests_by_method", by);
	json_object_set_new(root, "client_aborts", JINT(t.client_aborts));
	json_object_set_new(root, "bad_requests", JINT(t.bad_requests));
	json_object_set_new(root, "origin_fetches", JINT(t.origin_fetches));
	json_object_set_new(root, "origin_errors", JINT(t.origin_errors));
	json_object_set_new(root, "origin_timeouts", JINT(t.origin_timeouts));
	json_object_set_new(root, "bytes_sent", JINT(t.bytes_sent));
	bytes = json_object();
	for (unsigned f = 0; f < EDGE_FROM_COUNT; f++)
		json_object_set_new(
		    bytes, from_names[f], JINT(t.bytes_from[f]));
	json_object_set_new(root, "response_bytes", bytes);
	json_object_set_new(
	    root, "connections_accepted", JINT(t.conns_accepted));
	json_object_set_new(root, "connections_open", JINT(t.conns_open));
	json_object_set_new(root, "cache", cache_json(e, &t));
	json_object_set_new(root, "tls", tls_json(&t));
	origins = json_array();
	o = json_object();
	json_object_set_new(o, "pool", json_string(POOL_DEFAULT));
	json_object_set_new(o, "server",
	    json_string(edge_sites_at(e->sites, 0)->origin_authority));
	json_object_set_new(o, "requests", JINT(t.origin_fetches));
	json_object_set_new(o, "errors", origin_errors_json(&t));
	json_object_set_new(
	    o, "duration", hist_json(t.origin_hist, t.origin_hist_sum_us));
	json_array_append_new(origins, o);
	json_object_set_new(root, "origins", origins);
	json_object_set_new(root, "windows", windows_json(a, &now));
	sites = json_object();
	json_object_set_new(
	    sites, SITE_DEFAULT, site_json(a, &t, &now, history));
	json_object_set_new(root, "sites", sites);
	json_object_set_new(root, "pools", pools_json(e));
	json_object_set_new(root, "site_counters", site_counters_json(e));
	json_object_set_new(root, "unknown_host", JINT(t.unknown_host));
	return root;
}

/* ---- /metrics ---- */

static void
prom_family(
    struct cdn_strbuf *b, const char *name, const char *type, const char *help)
{
	cdn_sb_printf(
	    b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value: backslash, double quote and newline escaped. */
static void
prom_label_value(struct cdn_strbuf *b, const char *v)
{
	for (; *v != '\0'; v++) {
		if (*v == '\\')
			cdn_sb_add(b, "\\\\", 2);
		else if (*v == '"')
			cdn_sb_add(b, "\\\"", 2);
		else if (*v == '\n')
			cdn_sb_add(b, "\\n", 2);
		else
			cdn_sb_add(b, v, 1);
	}
}

/*
 * One sample: <name>{<labels>} <value>.  The labels are name/value pairs
 * of strings ending in NULL; <value> is printed as given.
 */
static void
prom_sample(struct cdn_strbuf *b, const char *name, const char *value, ...)
{
	va_list ap;
	const char *k, *v;
	int first = 1;

	cdn_sb_str(b, name);
	va_start(ap, value);
	while ((k = va_arg(ap, const char *)) != NULL) {
		v = va_arg(ap, const char *);
		cdn_sb_printf(b, "%s%s=\"", first ? "{" : ",", k);
		prom_label_value(b, v);
		cdn_sb_add(b, "\"", 1);
		first = 0;
	}
	va_end(ap);
	cdn_sb_printf(b, "%s %s\n", first ? "" : "}", value);
}

static const char *
u64s(char *buf, size_t len, uint64_t v)
{
	snprintf(buf, len, "%llu", (unsigned long long)v);
	return buf;
}

/* A family with one unlabelled sample. */
static void
prom_one(struct cdn_strbuf *b, const char *name, const char *type,
    const char *help, uint64_t v)
{
	char n[24];

	prom_family(b, name, type, help);
	prom_sample(b, name, u64s(n, sizeof(n), v), NULL);
}

static void
metrics_origin(
    struct cdn_strbuf *b, const struct edge *e, const struct edge_totals *t)
{
	const char *srv = edge_sites_at(e->sites, 0)->origin_authority;
	char n[24], le[32];
	uint64_t cum = 0;

	prom_family(b, "edge_origin_requests_total", "counter",
	    "Requests sent to origin servers, by pool and server.");
	prom_sample(b, "edge_origin_requests_total",
	    u64s(n, sizeof(n), t->origin_fetches), "pool", POOL_DEFAULT,
	    "server", srv, NULL);
	prom_family(b, "edge_origin_errors_total", "counter",
	    "Origin fetches that failed, by pool, server and kind (connect, "
	    "connect_timeout, tls_timeout, first_byte_timeout, idle_timeout, "
	    "reset, protocol, internal, tls, no_healthy_server).");
	for (unsigned k = 1; k < ORIGIN_ERR_KINDS; k++)
		prom_sample(b, "edge_origin_errors_total",
		    u64s(n, sizeof(n), t->origin_err_kind[k]), "pool",
		    POOL_DEFAULT, "server", srv, "kind",
		    origin_err_name((enum origin_err)k), NULL);
	prom_family(b, "edge_origin_duration_seconds", "histogram",
	    "Time from sending a request to an origin to its response head "
	    "(fixed buckets, summed over workers).");
	for (unsigned k = 0; k < EDGE_ORIGIN_BUCKETS; k++) {
		cum += t->origin_hist[k];
		if (k < EDGE_ORIGIN_BUCKETS - 1)
			snprintf(le, sizeof(le), "%g",
			    (double)origin_le_us[k] / 1e6);
		else
			snprintf(le, sizeof(le), "+Inf");
		prom_sample(b, "edge_origin_duration_seconds_bucket",
		    u64s(n, sizeof(n), cum), "pool", POOL_DEFAULT, "server",
		    srv, "le", le, NULL);
	}
	snprintf(le, sizeof(le), "%.6f", (double)t->origin_hist_sum_us / 1e6);
	prom_sample(b, "edge_origin_duration_seconds_sum", le, "pool",
	    POOL_DEFAULT, "server", srv, NULL);
	prom_sample(b, "edge_origin_duration_seconds_count",
	    u64s(n, sizeof(n), cum), "pool", POOL_DEFAULT, "server", srv, NULL);
}

static void
metrics_variants(struct cdn_strbuf *b, const struct edge *e)
{
	struct edge_variant_counters vc;
	char n[24];

	edge_variant_counters(e, &vc);
	prom_family(b, "edge_cache_variants_total", "counter",
	    "Content-coding variants: made (gzip/br stored), not_smaller (not "
	    "kept), dropped (compression queue full), decoded (identity copies "
	    "of origin-coded responses), bomb (decodes stopped at the caps), "
	    "not_acceptable (406).");
	prom_sample(b, "edge_cache_variants_total", u64s(n, sizeof(n), vc.made),
	    "result", "made", NULL);
	prom_sample(b, "edge_cache_variants_total",
	    u64s(n, sizeof(n), vc.not_smaller), "result", "not_smaller", NULL);
	prom_sample(b, "edge_cache_variants_total",
	    u64s(n, sizeof(n), vc.dropped), "result", "dropped", NULL);
	prom_sample(b, "edge_cache_variants_total",
	    u64s(n, sizeof(n), vc.decoded), "result", "decoded", NULL);
	prom_sample(b, "edge_cache_variants_total",
	    u64s(n, sizeof(n), vc.bombs), "result", "bomb", NULL);
	prom_sample(b, "edge_cache_variants_total",
	    u64s(n, sizeof(n), vc.not_acceptable), "result", "not_acceptable",
	    NULL);
}

static void
metrics_cache(struct cdn_strbuf *b, struct edge *e, const struct edge_totals *t)
{
	struct cache_store_stats st;
	char n[24], state[sizeof(e->cache_off) + 16];

	memset(&st, 0, sizeof(st));
	if (e->store != NULL)
		cache_store_stats(e->store, &st);
	edge_cache_state(e, state, sizeof(state));
	prom_one(b, "edge_cache_disabled", "gauge",
	    "1 when cache_dir is set but the node runs proxy-only (the cache "
	    "could not be opened, or was found damaged; /healthz says why).",
	    (uint64_t)(strncmp(state, "disabled", 8) == 0));
	prom_family(b, "edge_cache_hits_total", "counter",
	    "Requests answered from a fresh stored response, by the tier it "
	    "came from.");
	prom_sample(b, "edge_cache_hits_total",
	    u64s(n, sizeof(n), t->hits_memory), "tier", "memory", NULL);
	prom_sample(b, "edge_cache_hits_total",
	    u64s(n, sizeof(n), t->hits_disk), "tier", "disk", NULL);
	prom_one(b, "edge_cache_misses_total", "counter",
	    "Cacheable requests with no usable stored response (URL or Vary "
	    "variant not stored, or the request refused the stored one).",
	    t->misses);
	prom_family(b, "edge_cache_stale_total", "counter",
	    "Requests that found a stored response past its lifetime, by what "
	    "was done: revalidate (asked the origin first), "
	    "stale_while_revalidate (served it, refreshed behind), "
	    "stale_if_error (served it as the origin failed).");
	prom_sample(b, "edge_cache_stale_total",
	    u64s(n, sizeof(n), t->revalidations), "reason", "revalidate", NULL);
	prom_sample(b, "edge_cache_stale_total",
	    u64s(n, sizeof(n), t->stale_swr), "reason",
	    "stale_while_revalidate", NULL);
	prom_sample(b, "edge_cache_stale_total",
	    u64s(n, sizeof(n), t->stale_sie), "reason", "stale_if_error", NULL);
	prom_one(b, "edge_cache_not_modified_total", "counter",
	    "Revalidations the origin answered with 304 (the stored body was "
	    "sent).",
	    t->not_modified);
	prom_one(b, "edge_cache_bypass_total", "counter",
	    "Requests that did not use the cache (method, cache_bypass prefix, "
	    "key too long, or no cache_dir).",
	    t->bypass);
	prom_one(b, "edge_cache_stores_total", "counter",
	    "Responses handed to the store.", t->stores);
	prom_one(b, "edge_cache_invalidations_total", "counter",
	    "Stored URLs invalidated by successful unsafe requests.",
	    t->invalidations);
	prom_one(b, "edge_coalesced_total", "counter",
	    "Misses that waited on another request's origin fetch instead of "
	    "making their own.",
	    t->collapsed);
	prom_one(b, "edge_coalesce_released_total", "counter",
	    "Waiting misses sent to fetch on their own (the response could "
	    "not be shared, or had a Vary they did not match).",
	    t->collapse_released);
	prom_one(b, "edge_hit_for_miss_total", "counter",
	    "Shared fetches whose response could not be stored: the URL "
	    "became hit-for-miss for cache_hit_for_miss.",
	    t->hit_for_miss);
	prom_one(b, "edge_hit_for_miss_misses_total", "counter",
	    "Misses that went to the origin on their own because their URL "
	    "was hit-for-miss.",
	    t->hit_for_miss_used);
	prom_one(b, "edge_cache_objects", "gauge",
	    "Objects in the disk store (LMDB).", st.objects);
	prom_one(b, "edge_cache_bytes", "gauge",
	    "Accounted bytes of the objects in the disk store.", st.bytes);
	prom_one(b, "edge_cache_memory_objects", "gauge",
	    "Objects in the memory tier.", st.mem_objects);
	prom_one(b, "edge_cache_memory_bytes", "gauge",
	    "Bytes of the objects in the memory tier.", st.mem_bytes);
	prom_family(b, "edge_cache_evictions_total", "counter",
	    "Objects evicted to stay within budget, by tier (an object evicted "
	    "from memory is still on disk).");
	prom_sample(b, "edge_cache_evictions_total",
	    u64s(n, sizeof(n), st.evictions), "tier", "disk", NULL);
	prom_sample(b, "edge_cache_evictions_total",
	    u64s(n, sizeof(n), st.mem_evictions), "tier", "memory", NULL);
	prom_family(b, "edge_cache_writes_total", "counter",
	    "Objects the writer thread stored, or dropped (queue full, map "
	    "full).");
	prom_sample(b, "edge_cache_writes_total", u64s(n, sizeof(n), st.puts),
	    "result", "stored", NULL);
	prom_sample(b, "edge_cache_writes_total",
	    u64s(n, sizeof(n), st.put_drops), "result", "dropped", NULL);
	metrics_variants(b, e);
	prom_one(b, "edge_cache_corrupt_total", "counter",
	    "Stored records that failed their checks (treated as misses).",
	    st.corrupt);
	prom_one(b, "edge_cache_io_errors_total", "counter",
	    "LMDB failures other than a full map (logged once per episode).",
	    st.io_errors);
	prom_family(b, "edge_purges_total", "counter",
	    "Lookups that found an object purged, by type of purge.");
	prom_sample(b, "edge_purges_total", u64s(n, sizeof(n), st.purged_hard),
	    "type", "hard", NULL);
	prom_sample(b, "edge_purges_total", u64s(n, sizeof(n), st.purged_soft),
	    "type", "soft", NULL);
}

/* Sites and their pools' servers. */
static void
metrics_sites(
    struct cdn_strbuf *b, const struct edge *e, const struct edge_totals *t)
{
	struct origin_server_state st;
	uint64_t req, hits;
	char n[24];
	unsigned ns = edge_sites_count(e->sites);

	prom_one(b, "edge_unknown_host_total", "counter",
	    "Requests answered 421: no site for their Host and no default.",
	    t->unknown_host);
	prom_family(b, "edge_site_requests_total", "counter",
	    "Client requests routed to each site by Host.");
	for (unsigned i = 0; i < ns; i++) {
		site_sums(e, i, &req, &hits);
		prom_sample(b, "edge_site_requests_total",
		    u64s(n, sizeof(n), req), "site",
		    edge_sites_at(e->sites, i)->name, NULL);
	}
	prom_family(b, "edge_site_cache_hits_total", "counter",
	    "Fresh cache hits of each site.");
	for (unsigned i = 0; i < ns; i++) {
		site_sums(e, i, &req, &hits);
		prom_sample(b, "edge_site_cache_hits_total",
		    u64s(n, sizeof(n), hits), "site",
		    edge_sites_at(e->sites, i)->name, NULL);
	}
#define EACH_SERVER(body)                                                      \
	for (unsigned i = 0; i < ns; i++) {                                    \
		const struct edge_site *s = edge_sites_at(e->sites, i);        \
		for (unsigned k = 0; k < origin_pool_nservers(s->pool); k++) { \
			origin_pool_server_state(s->pool, k, &st);             \
			body                                                   \
		}                                                              \
	}
	prom_family(b, "edge_origin_retries_total", "counter",
	    "Fetches sent to a second server of the pool after a connect "
	    "failure.");
	for (unsigned i = 0; i < ns; i++) {
		const struct edge_site *s = edge_sites_at(e->sites, i);

		prom_sample(b, "edge_origin_retries_total",
		    u64s(n, sizeof(n), origin_pool_retries(s->pool)), "pool",
		    s->name, NULL);
	}
	prom_family(b, "edge_origin_server_up", "gauge",
	    "1 if the server gets new requests: its health checks pass and "
	    "it is not cooling down after failures.");
	EACH_SERVER(prom_sample(b, "edge_origin_server_up", st.up ? "1" : "0",
	    "pool", s->name, "server", st.url, NULL);)
	prom_family(b, "edge_origin_server_healthy", "gauge",
	    "The active health checks' verdict (1 without checks).");
	EACH_SERVER(prom_sample(b, "edge_origin_server_healthy",
	    st.hc_healthy ? "1" : "0", "pool", s->name, "server", st.url,
	    NULL);)
	prom_family(b, "edge_origin_server_active", "gauge",
	    "Fetches in flight to the server, over all workers.");
	EACH_SERVER(prom_sample(b, "edge_origin_server_active",
	    u64s(n, sizeof(n), st.active), "pool", s->name, "server", st.url,
	    NULL);)
	prom_family(b, "edge_origin_server_fetches_total", "counter",
	    "Attempts sent to the server (a retry counts on both servers).");
	EACH_SERVER(prom_sample(b, "edge_origin_server_fetches_total",
	    u64s(n, sizeof(n), st.fetches), "pool", s->name, "server", st.url,
	    NULL);)
	prom_family(b, "edge_origin_server_failures_total", "counter",
	    "Attempts the server did not answer (connect, timeout, reset "
	    "before the head).");
	EACH_SERVER(prom_sample(b, "edge_origin_server_failures_total",
	    u64s(n, sizeof(n), st.failures), "pool", s->name, "server", st.url,
	    NULL);)
#undef EACH_SERVER
}

static char *
metrics_text(struct edge *e, size_t *len)
{
	struct cdn_strbuf b = {.max = METRICS_MAX};
	struct edge_totals t;
	char n[24];

	totals_read(e, &t);
	prom_family(&b, "edge_build_info", "gauge",
	    "Always 1; the labels say which edged this is.");
	prom_sample(
	    &b, "edge_build_info", "1", "version", PACKAGE_VERSION, NULL);
	prom_one(&b, "edge_uptime_seconds", "gauge",
	    "Seconds since edged started.",
	    (cdn_now_ms() - e->start_ms) / 1000);
	prom_one(&b, "edge_workers", "gauge", "Worker threads.", e->nworkers);
	prom_one(&b, "edge_draining", "gauge",
	    "1 while draining after SIGTERM (then /healthz answers 503).",
	    (uint64_t)atomic_load(&e->draining));
	prom_one(&b, "edge_connections_open", "gauge",
	    "Open client connections on the public listeners.", t.conns_open);
	prom_one(&b, "edge_connections_accepted_total", "counter",
	    "Client connections accepted on the public listeners.",
	    t.conns_accepted);
	prom_family(&b, "edge_requests_total", "counter",
	    "Client requests on the public listeners, by site, method class "
	    "and status class (none: the client left before a response).");
	for (unsigned mc = 0; mc < EDGE_MC_COUNT; mc++)
		for (unsigned k = 0; k < 6; k++)
			prom_sample(&b, "edge_requests_total",
			    u64s(n, sizeof(n), t.req_class[mc][k]), "site",
			    SITE_DEFAULT, "method", mc_names[mc], "status",
			    status_names[k], NULL);
	prom_one(&b, "edge_client_aborts_total", "counter",
	    "Requests whose client left (or whose response was cut) before "
	    "the end.",
	    t.client_aborts);
	prom_one(&b, "edge_bad_requests_total", "counter",
	    "Requests the HTTP layer refused (malformed, over a limit).",
	    t.bad_requests);
	prom_family(&b, "edge_response_bytes_total", "counter",
	    "Bytes sent to clients (heads and bodies), by where the response "
	    "came from: cache, origin, or edge (the node's own answers).");
	for (unsigned f = 0; f < EDGE_FROM_COUNT; f++)
		prom_sample(&b, "edge_response_bytes_total",
		    u64s(n, sizeof(n), t.bytes_from[f]), "from", from_names[f],
		    NULL);
	prom_family(&b, "edge_tls_handshakes_total", "counter",
	    "TLS handshakes on the public listeners, by result: full, resumed "
	    "(ticket or session cache), error, timeout, aborted.");
	prom_sample(&b, "edge_tls_handshakes_total",
	    u64s(n, sizeof(n), t.tls_handshakes), "result", "full", NULL);
	prom_sample(&b, "edge_tls_handshakes_total",
	    u64s(n, sizeof(n), t.tls_resumed), "result", "resumed", NULL);
	prom_sample(&b, "edge_tls_handshakes_total",
	    u64s(n, sizeof(n), t.tls_handshake_errors), "result", "error",
	    NULL);
	prom_sample(&b, "edge_tls_handshakes_total",
	    u64s(n, sizeof(n), t.tls_handshake_timeouts), "result", "timeout",
	    NULL);
	prom_sample(&b, "edge_tls_handshakes_total",
	    u64s(n, sizeof(n), t.tls_handshake_aborts), "result", "aborted",
	    NULL);
	metrics_cache(&b, e, &t);
	metrics_origin(&b, e, &t);
	metrics_sites(&b, e, &t);
	if (b.failed) {
		cdn_sb_free(&b);
		return NULL;
	}
	*len = b.len;
	return b.p;
}

/* ---- access control ---- */

static int
acl_init(struct edge_admin_ctx *a, const struct conf *c)
{
	const char *why;

	for (unsigned i = 0; i < c->admin_allow.n; i++) {
		const char *v = c->admin_allow.v[i];

		if (http_acl_add(&a->acl, v, &why) != CDN_OK) {
			CDN_LOG(CDN_LOG_ERR, "admin",
			    "admin_allow \"%s\": %s (write ADDRESS[/PREFIX] "
			    "or loopback)",
			    v, why);
			return CDN_EINVAL;
		}
	}
	return CDN_OK;
}

static int
token_init(struct edge_admin_ctx *a, const char *path)
{
	if (path[0] == '\0')
		return CDN_OK;
	return http_tokens_load(
	    &a->tokens, path, 1, "admin", "admin_token_file");
}

/* A refusal, logged with the client's address, LOG_BURST a second. */
static void
log_refusal(
    struct edge_admin_ctx *a, struct http_txn *txn, int status, const char *why)
{
	const struct http_request *req = http_txn_request(txn);
	uint64_t sec = cdn_now_ms() / 1000;

	if (sec != a->log_sec) {
		if (a->log_dropped > 0)
			CDN_LOG(CDN_LOG_WARN, "admin",
			    "%llu more refusals not logged",
			    (unsigned long long)a->log_dropped);
		a->log_sec = sec;
		a->log_n = 0;
		a->log_dropped = 0;
	}
	if (a->log_n++ >= LOG_BURST) {
		a->log_dropped++;
		return;
	}
	CDN_LOG(CDN_LOG_WARN, "admin", "%d for client %s: %.*s %.*s: %s",
	    status, http_txn_client_addr(txn),
	    (int)(req->method_str.len < 32 ? req->method_str.len : 32),
	    req->method_str.p != NULL ? req->method_str.p : "",
	    (int)(req->path.len < 256 ? req->path.len : 256),
	    req->path.p != NULL ? req->path.p : "", why);
}

/* ---- serving ---- */

static void
on_static_sent(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	(void)arg;
}

/* Send a whole response with <extra> header lines ("Name: v\r\n"...). */
static void
admin_send(struct http_txn *txn, int status, const char *ctype,
    const char *extra, const char *body, size_t len, int is_static)
{
	char fields[1024];
	int n;

	n = snprintf(fields, sizeof(fields),
	    "Content-Type: %s\r\nCache-Control: no-store\r\n"
	    "X-Content-Type-Options: nosniff\r\n%s",
	    ctype, extra != NULL ? extra : "");
	CDN_ASSERT(n > 0 && (size_t)n < sizeof(fields));
	http_txn_respond(txn, status, fields, (size_t)n, (int64_t)len);
	if (is_static)
		http_txn_write_ref(txn, body, len, on_static_sent, NULL);
	else
		http_txn_write(txn, body, len);
	http_txn_finish(txn);
}

/* The value of ?history=N (0 without), at most HISTORY_MAX. */
static unsigned
query_history(const struct http_request *req)
{
	const char *p = req->query.p, *end = p + req->query.len;
	unsigned long v = 0;

	if (!req->has_query)
		return 0;
	while (p < end) {
		if ((size_t)(end - p) > 8 && memcmp(p, "history=", 8) == 0) {
			for (p += 8; p < end && *p >= '0' && *p <= '9'; p++)
				if ((v = v * 10 + (unsigned long)(*p - '0')) >
				    HISTORY_MAX)
					v = HISTORY_MAX;
			return (unsigned)v;
		}
		p = memchr(p, '&', (size_t)(end - p));
		if (p == NULL)
			break;
		p++;
	}
	return 0;
}

static void
serve_stats(struct edge *e, struct http_txn *txn)
{
	unsigned history = query_history(http_txn_request(txn));
	json_t *j = stats_json(e, history);
	/* Indented for people; with history (for the dashboard) on one line. */
	char *body = json_dumps(
	    j, (history > 0 ? 0 : JSON_INDENT(1)) | JSON_PRESERVE_ORDER);

	json_decref(j);
	if (body == NULL) {
		http_txn_simple(txn, 500, "text/plain", "500\n", 4);
		return;
	}
	admin_send(txn, 200, "application/json", NULL, body, strlen(body), 0);
	free(body);
}

static void
serve_metrics(struct edge *e, struct http_txn *txn)
{
	size_t len = 0;
	char *body = metrics_text(e, &len);

	if (body == NULL) {
		http_txn_simple(txn, 500, "text/plain", "500\n", 4);
		return;
	}
	admin_send(txn, 200, "text/plain; version=0.0.4; charset=utf-8", NULL,
	    body, len, 0);
	free(body);
}

static void
serve_dashboard(struct http_txn *txn)
{
	/* The page may talk to this listener and nothing else. */
	static const char csp[] =
	    "Content-Security-Policy: default-src 'none'; "
	    "script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
	    "connect-src 'self'; img-src data:; base-uri 'none'; "
	    "form-action 'none'; frame-ancestors 'none'\r\n";

	admin_send(txn, 200, "text/html; charset=utf-8", csp,
	    edge_dashboard_html, sizeof(edge_dashboard_html) - 1, 1);
}

/* 200 while serving, also proxy-only (a line says why the cache is not
 * used: the node still answers); 503 while draining. */
static void
serve_healthz(struct edge *e, struct http_txn *txn)
{
	char state[sizeof(e->cache_off) + 16], body[sizeof(state) + 16];
	int n;

	if (atomic_load(&e->draining)) {
		http_txn_simple(txn, 503, "text/plain", "draining\n", 9);
		return;
	}
	edge_cache_state(e, state, sizeof(state));
	if (strcmp(state, "ok") == 0 || strcmp(state, "off") == 0) {
		http_txn_simple(txn, 200, "text/plain", "ok\n", 3);
		return;
	}
	n = snprintf(body, sizeof(body), "ok\ncache: %s\n", state);
	http_txn_simple(txn, 200, "text/plain", body,
	    n > 0 && (size_t)n < sizeof(body) ? (size_t)n : strlen(body));
}

static void
on_admin_request(struct http_txn *txn, void *arg)
{
	struct edge *e = arg;
	struct edge_admin_ctx *a = e->admin_ctx;
	const struct http_request *req = http_txn_request(txn);
	int healthz = http_slice_eq_ci(req->path, "/healthz");
	int dashboard = http_slice_eq_ci(req->path, "/dashboard");

	if (!http_acl_allows(&a->acl, http_txn_client_addr(txn))) {
		log_refusal(a, txn, 403, "not in admin_allow");
		http_txn_simple(txn, 403, "text/plain", "403 Forbidden\n", 14);
		return;
	}
	/* The page holds no data: it asks for the token to read /stats. */
	if (a->tokens.n > 0 && !healthz && !dashboard &&
	    http_tokens_check(&a->tokens, req) == NULL) {
		log_refusal(a, txn, 401, "missing or wrong bearer token");
		admin_send(txn, 401, "text/plain",
		    "WWW-Authenticate: Bearer realm=\"edged admin\"\r\n",
		    "401 Unauthorized\n", 17, 1);
		return;
	}
	if (req->method != HTTP_M_GET && req->method != HTTP_M_HEAD) {
		http_txn_simple(
		    txn, 405, "text/plain", "405 Method Not Allowed\n", 23);
		return;
	}
	if (healthz) {
		serve_healthz(e, txn);
	} else if (http_slice_eq_ci(req->path, "/stats")) {
		serve_stats(e, txn);
	} else if (http_slice_eq_ci(req->path, "/metrics")) {
		serve_metrics(e, txn);
	} else if (dashboard) {
		serve_dashboard(txn);
	} else {
		http_txn_simple(txn, 404, "text/plain", "404 Not Found\n", 14);
	}
}

const struct http_handler edge_admin_handler = {
    .on_request = on_admin_request,
};

/* ---- set-up ---- */

int
edge_admin_init(struct edge *e)
{
	struct edge_admin_ctx *a;
	struct edge_totals t;
	struct edge_snap s;
	struct timeval tv = {.tv_sec = SNAP_INTERVAL_MS / 1000,
	    .tv_usec = (SNAP_INTERVAL_MS % 1000) * 1000};

	CDN_ASSERT(e->admin_ctx == NULL && e->main_base != NULL);
	a = cdn_xcalloc(1, sizeof(*a));
	e->admin_ctx = a;
	if (acl_init(a, e->conf) != CDN_OK ||
	    token_init(a, e->conf->admin_token_file) != CDN_OK)
		return CDN_EINVAL;
	a->ring = cdn_xcalloc(RING_SLOTS, sizeof(*a->ring));
	totals_read(e, &t);
	snap_from(e, &t, &s);
	s.t_ms = 0;
	ring_push(a, &s);
	a->snap_timer =
	    event_new(e->main_base, -1, EV_PERSIST, on_snap_timer, e);
	event_add(a->snap_timer, &tv);
	return CDN_OK;
}

void
edge_admin_fini(struct edge *e)
{
	struct edge_admin_ctx *a = e->admin_ctx;

	if (a == NULL)
		return;
	e->admin_ctx = NULL;
	if (a->snap_timer != NULL)
		event_free(a->snap_timer);
	free(a->ring);
	http_acl_free(&a->acl);
	http_tokens_free(&a->tokens);
	free(a);
}
