/*
 * The figures of the admin listener: /stats (JSON) and /metrics (Prometheus
 * text exposition format 0.0.4), both made from the rows of
 * edge/edge_counters.h, and the ring of snapshots behind /stats' windows.
 * Main thread only.  docs/metrics.md documents every figure.
 *
 * Counters: each worker writes its own struct edge_counters (single-writer
 * relaxed stores, edge_int.h); a read sums them with relaxed loads into a
 * plain struct edge_totals of the same rows.  Each worker's figures are
 * exact; the sum may split a request that is ending at that moment (its
 * hit counted, its bytes not yet), never more.  A histogram's count is the
 * sum of its buckets, so +Inf and _count always agree.
 *
 * Every row becomes a struct metric_row and a pointer to its value(s), and
 * two loops write them: into the /stats object of its group, and as a
 * /metrics sample of its family (the family's HELP and TYPE lines before
 * its first row).  Sites, pools, servers and origins are the same rows
 * once per site or server, with the site or server as labels.
 *
 * Windows: a timer on the main thread sums the counters once a second into
 * a ring of RING_SLOTS snapshots (a little over 15 minutes).  A window's
 * figures are the live sum minus the newest snapshot at least that old (or
 * the oldest one, just after start-up); the request path knows nothing of
 * it.  The ring belongs to the main thread alone: no lock.
 */
#include "config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "edge/edge_int.h"
#include "edge/edge_variant.h"

#define RING_SLOTS       (15 * 60 + 8) /* one snapshot a second */
#define SNAP_INTERVAL_MS 1000
#define METRICS_MAX      (4u << 20)
#define LABELS_MAX       4 /* label pairs of a sample */

static const char *const mc_names[EDGE_MC_COUNT] = {
    "get", "head", "post", "put", "delete", "patch", "options", "other"};
static const char *const status_names[6] = {
    "none", "1xx", "2xx", "3xx", "4xx", "5xx"};
static const char *const from_names[EDGE_FROM_COUNT] = {
    "cache", "origin", "edge"};

/* ---- the rows ---- */

/* KIND_MS, KIND_MS_TOTAL: a gauge, a counter kept in ms, shown in seconds
 * in /metrics. */
enum metric_kind {
	KIND_COUNTER,
	KIND_GAUGE,
	KIND_FLAG,
	KIND_MS,
	KIND_MS_TOTAL
};

enum jgroup {
#define EDGE_JGROUP(id, parent, key) JG_##id,
#include "edge/edge_counters.h"
	JG_NONE,
	JG_COUNT = JG_NONE
};

static const struct {
	enum jgroup parent;
	const char *key;
} jgroups[JG_COUNT] = {
#define EDGE_JGROUP(id, parent, key) [JG_##id] = {JG_##parent, key},
#include "edge/edge_counters.h"
};

enum dim {
#define EDGE_DIM(id, label, count) DIM_##id,
#include "edge/edge_counters.h"
	DIM_NONE
};

static const struct {
	const char *label;
	unsigned count;
} dims[DIM_NONE] = {
#define EDGE_DIM(id, label, count) [DIM_##id] = {label, count},
#include "edge/edge_counters.h"
};

/* The name of element <i> of a dimension. */
static const char *
dim_name(enum dim d, unsigned i)
{
	CDN_ASSERT(i < dims[d].count);
	switch (d) {
	case DIM_STATUS:
		return status_names[i];
	case DIM_METHOD:
		return mc_names[i];
	case DIM_FROM:
		return from_names[i];
	case DIM_KIND:
		return origin_err_name((enum origin_err)i);
	default:
		CDN_ASSERT(!"a dimension without names is never shown");
		return "";
	}
}

struct metric_row {
	enum metric_kind kind;
	enum jgroup group;
	const char *key, *family, *label, *value, *help;
	enum dim dim[2]; /* DIM_NONE: a scalar, or a vector of one */
	unsigned first;  /* of the last dimension, in /stats */
};

#define ROW(kind, group, key, family, label, value, help)                      \
	{                                                                      \
		KIND_##kind, JG_##group, key, family, label, value, help,      \
		    {DIM_NONE, DIM_NONE}, 0                                    \
	}

/* Every worker's counters, summed: the same rows as struct edge_counters. */
struct edge_totals {
#define EDGE_D1(a)                         [EDGE_DIMN_##a]
#define EDGE_D2(a, b)                      [EDGE_DIMN_##a][EDGE_DIMN_##b]
#define EDGE_COUNTER(field, ...)           uint64_t field;
#define EDGE_COUNTER_VEC(field, dims, ...) uint64_t field dims;
#include "edge/edge_counters.h"
#undef EDGE_D1
#undef EDGE_D2
};

#define EDGE_D1(a)    DIM_##a, DIM_NONE
#define EDGE_D2(a, b) DIM_##a, DIM_##b
static const struct metric_row counter_rows[] = {
#define EDGE_COUNTER(field, kind, group, key, family, label, value, help)      \
	ROW(kind, group, key, family, label, value, help),
#define EDGE_COUNTER_VEC(                                                      \
    field, dim, first, group, key, family, label, value, help)                 \
	{KIND_COUNTER, JG_##group, key, family, label, value, help, {dim},     \
	    first},
#include "edge/edge_counters.h"
};
#undef EDGE_D1
#undef EDGE_D2

/* Where each counter row's values are in <t>. */
static void
counter_values(const struct edge_totals *t, const uint64_t **v)
{
	size_t n = 0;

#define EDGE_COUNTER(field, ...) v[n++] = &t->field;
#define EDGE_COUNTER_VEC(field, ...)                                           \
	v[n++] = (const uint64_t *)(const void *)&t->field;
#include "edge/edge_counters.h"
	CDN_ASSERT(n == CDN_ARRAY_LEN(counter_rows));
}

/* The aliases: a row of counter_rows shown once more in /stats. */
static const struct {
	size_t off; /* in struct edge_totals */
	enum jgroup group;
	const char *key;
} aliases[] = {
#define EDGE_COUNTER_ALIAS(field, group, key)                                  \
	{offsetof(struct edge_totals, field), JG_##group, key},
#include "edge/edge_counters.h"
};

static const struct metric_row store_rows[] = {
#define EDGE_STORE_STAT(field, kind, group, key, family, label, value, help)   \
	ROW(kind, group, key, family, label, value, help),
#include "edge/edge_counters.h"
};

static const struct metric_row variant_rows[] = {
#define EDGE_VARIANT_STAT(field, kind, group, key, family, label, value, help) \
	ROW(kind, group, key, family, label, value, help),
#include "edge/edge_counters.h"
};

static const struct metric_row bus_rows[] = {
#define EDGE_BUS_STAT(field, kind, group, key, family, label, value, help)     \
	ROW(kind, group, key, family, label, value, help),
#include "edge/edge_counters.h"
};

static const uint64_t bus_bounds_ms[] = CACHE_BUS_LATENCY_BOUNDS;

static void
bus_values(const struct edge_bus_stats *bs, uint64_t *v)
{
	size_t n = 0;

#define EDGE_BUS_STAT(field, ...) v[n++] = bs->field;
#include "edge/edge_counters.h"
}

static void
store_values(const struct cache_store_stats *st, uint64_t *v)
{
	size_t n = 0;

#define EDGE_STORE_STAT(field, ...) v[n++] = st->field;
#include "edge/edge_counters.h"
}

static void
variant_values(const struct edge_variant_counters *vc, uint64_t *v)
{
	size_t n = 0;

#define EDGE_VARIANT_STAT(field, ...) v[n++] = vc->field;
#include "edge/edge_counters.h"
}

/* The node's own figures. */
struct edge_node_stats {
#define EDGE_NODE_STAT(field, ...) uint64_t field;
#include "edge/edge_counters.h"
};

static const struct metric_row node_rows[] = {
#define EDGE_NODE_STAT(field, kind, group, key, family, label, value, help)    \
	ROW(kind, group, key, family, label, value, help),
#include "edge/edge_counters.h"
};

static void
node_values(const struct edge_node_stats *ns, uint64_t *v)
{
	size_t n = 0;

#define EDGE_NODE_STAT(field, ...) v[n++] = ns->field;
#include "edge/edge_counters.h"
}

static const struct metric_row process_rows[] = {
#define EDGE_PROCESS_STAT(field, kind, family, help)                           \
	ROW(kind, NONE, NULL, family, NULL, NULL, help),
#include "edge/edge_counters.h"
};

static void
process_values(const struct edge_process_stats *ps, uint64_t *v)
{
	size_t n = 0;

#define EDGE_PROCESS_STAT(field, ...) v[n++] = ps->field;
#include "edge/edge_counters.h"
}

/* A pool's own figures (its servers': struct origin_server_state). */
struct edge_pool_stats {
#define EDGE_POOL_STAT(field, ...) uint64_t field;
#include "edge/edge_counters.h"
};

/* ---- reading the counters ---- */

void
edge_stats_origin_head(struct edge_worker *w, uint64_t us)
{
	EDGE_COUNTER_INC(w, origin_hist[origin_lat_bucket(us)]);
	EDGE_COUNTER_ADD(w, origin_hist_sum_us, us);
}

#define LD(x) atomic_load_explicit(&(x), memory_order_relaxed)

/* Add the <n> atomic counters at <c> to <t>. */
static void
sum_into(uint64_t *t, const _Atomic uint64_t *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		t[i] += LD(c[i]);
}

static void
totals_read(const struct edge *e, struct edge_totals *t)
{
	memset(t, 0, sizeof(*t));
	for (unsigned i = 0; i < e->nworkers; i++) {
		const struct edge_counters *c = &e->workers[i].ctr;

#define EDGE_COUNTER(field, ...) t->field += LD(c->field);
#define EDGE_COUNTER_VEC(field, ...)                                           \
	sum_into((uint64_t *)(void *)&t->field,                                \
	    (const _Atomic uint64_t *)(const void *)&c->field,                 \
	    sizeof(t->field) / sizeof(uint64_t));
#include "edge/edge_counters.h"
	}
}

/* The counters of site <idx> of the current generation, summed over the
 * workers, with what its earlier generations counted. */
static void
site_read(const struct edge *e, unsigned idx, uint64_t *v)
{
	edge_site_counters_read(
	    edge_sites_at(e->gen->sites, idx), e->nworkers, v);
}

#undef LD

static void
node_read(struct edge *e, struct edge_node_stats *n)
{
	char state[sizeof(e->cache_off) + 16];
	uint64_t up_ms = cdn_now_ms() - e->start_ms;

	edge_cache_state(e, state, sizeof(state));
	n->build_info = 1;
	n->uptime_s = up_ms / 1000;
	n->uptime_ms = up_ms;
	n->workers = e->nworkers;
	n->draining = (uint64_t)(atomic_load(&e->draining) != 0);
	n->cache_enabled = strcmp(state, "ok") == 0;
	n->config_generation = e->gen->id;
	n->config_loaded = e->gen->load_ms / 1000;
	n->config_reloads = e->reloads;
	n->config_reloads_failed = e->reloads_failed;
	n->cache_disabled = strncmp(state, "disabled", 8) == 0;
}

/* ---- the snapshots ---- */

/* What the windows, the history and the site figures need. */
struct edge_snap {
	uint64_t t_ms; /* since start-up */
#define EDGE_SNAP(name, expr) uint64_t name;
#include "edge/edge_counters.h"
	uint64_t origin_hist[EDGE_ORIGIN_BUCKETS];
};

static const char *const snap_names[] = {
#define EDGE_SNAP(name, expr) #name,
#include "edge/edge_counters.h"
};

struct edge_stats {
	struct event *snap_timer;
	struct edge_snap *ring; /* RING_SLOTS */
	unsigned ring_head;     /* next slot to write */
	unsigned ring_len;
};

static void
snap_from(
    const struct edge *e, const struct edge_totals *t, struct edge_snap *s)
{
	memset(s, 0, sizeof(*s));
	s->t_ms = cdn_now_ms() - e->start_ms;
#define EDGE_SNAP(name, expr) s->name = (expr);
#include "edge/edge_counters.h"
	memcpy(s->origin_hist, t->origin_hist, sizeof(s->origin_hist));
}

/* The snapshot's figures (EDGE_SNAP rows), in that order. */
static void
snap_values(const struct edge_snap *s, uint64_t *v)
{
	size_t n = 0;

#define EDGE_SNAP(name, expr) v[n++] = s->name;
#include "edge/edge_counters.h"
}

static void
ring_push(struct edge_stats *a, const struct edge_snap *s)
{
	a->ring[a->ring_head] = *s;
	a->ring_head = (a->ring_head + 1) % RING_SLOTS;
	if (a->ring_len < RING_SLOTS)
		a->ring_len++;
}

/* The i-th snapshot, 0 the newest.  i < ring_len. */
static const struct edge_snap *
ring_at(const struct edge_stats *a, unsigned i)
{
	CDN_ASSERT(i < a->ring_len);
	return &a->ring[(a->ring_head + RING_SLOTS - 1 - i) % RING_SLOTS];
}

/* The newest snapshot at least <age_ms> older than <now_ms>, else the
 * oldest. */
static const struct edge_snap *
ring_base(const struct edge_stats *a, uint64_t now_ms, uint64_t age_ms)
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
	ring_push(e->stats, &s);
}

/* ---- /stats ---- */

#define JINT(v) json_integer((json_int_t)(v))

static json_t *
ratio_json(uint64_t part, uint64_t whole)
{
	return whole > 0 ? json_real((double)part / (double)whole)
	                 : json_null();
}

/* A row's value(s) at <v> into the object of its group. */
static void
row_json(json_t **groups, const struct metric_row *r, const uint64_t *v)
{
	json_t *j, *inner;
	enum dim d0 = r->dim[0], d1 = r->dim[1];
	enum dim last = d1 != DIM_NONE ? d1 : d0;
	unsigned n1, nl;

	if (r->group == JG_NONE)
		return;
	if (d0 == DIM_NONE) {
		j = r->kind == KIND_FLAG ? json_boolean(v[0] != 0) : JINT(v[0]);
		json_object_set_new(groups[r->group], r->key, j);
		return;
	}
	n1 = d1 != DIM_NONE ? dims[d0].count : 1;
	nl = dims[last].count;
	j = json_object();
	for (unsigned i = 0; i < n1; i++) {
		inner = d1 != DIM_NONE ? json_object() : j;
		for (unsigned k = r->first; k < nl; k++)
			json_object_set_new(
			    inner, dim_name(last, k), JINT(v[i * nl + k]));
		if (d1 != DIM_NONE)
			json_object_set_new(j, dim_name(d0, i), inner);
	}
	json_object_set_new(groups[r->group], r->key, j);
}

/* Per-bucket counts (not cumulative; the last is +Inf), bounds, sum and
 * count of a latency histogram. */
static json_t *
hist_json(const uint64_t *h, uint64_t sum_us)
{
	json_t *j = json_object(), *le = json_array(), *c = json_array();
	uint64_t n = 0;

	for (unsigned b = 0; b < EDGE_ORIGIN_BUCKETS - 1; b++)
		json_array_append_new(
		    le, json_real((double)origin_lat_le_us[b] / 1e6));
	for (unsigned b = 0; b < EDGE_ORIGIN_BUCKETS; b++) {
		json_array_append_new(c, JINT(h[b]));
		n += h[b];
	}
	json_object_set_new(j, "le_s", le);
	json_object_set_new(j, "counts", c);
	json_object_set_new(j, "sum_s", json_real((double)sum_us / 1e6));
	json_object_set_new(j, "count", JINT(n));
	return j;
}

/* Counts by origin error kind, [ORIGIN_OK] left out. */
static json_t *
kinds_json(const uint64_t *v)
{
	json_t *j = json_object();

	for (unsigned k = 1; k < ORIGIN_ERR_KINDS; k++)
		json_object_set_new(
		    j, origin_err_name((enum origin_err)k), JINT(v[k]));
	return j;
}

/* The figures of <now> minus <base>: one site, or all of them. */
static json_t *
window_json(const struct edge_snap *now, const struct edge_snap *base)
{
	json_t *w = json_object(), *r = json_object();
	uint64_t span_ms = now->t_ms - base->t_ms;
	uint64_t req = now->requests - base->requests;
	uint64_t hits = now->hits - base->hits;
	uint64_t bc = now->bytes_cache - base->bytes_cache;
	uint64_t bo = now->bytes_origin - base->bytes_origin;
	uint64_t vn[CDN_ARRAY_LEN(snap_names)], vb[CDN_ARRAY_LEN(snap_names)];

	snap_values(now, vn);
	snap_values(base, vb);
	json_object_set_new(w, "span_s", json_real((double)span_ms / 1000.0));
	for (size_t i = 0; i < CDN_ARRAY_LEN(snap_names); i++)
		json_object_set_new(w, snap_names[i], JINT(vn[i] - vb[i]));
	json_object_set_new(w, "requests_per_s",
	    json_real(
	        span_ms > 0 ? (double)req * 1000.0 / (double)span_ms : 0.0));
	json_object_set_new(r, "requests",
	    ratio_json(hits,
	        hits + (now->misses - base->misses) +
	            (now->stale - base->stale)));
	json_object_set_new(r, "bytes", ratio_json(bc, bc + bo));
	json_object_set_new(w, "hit_ratio", r);
	return w;
}

static json_t *
windows_json(const struct edge_stats *a, const struct edge_snap *now)
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

/*
 * The last <n> snapshots, oldest first, as rows of cumulative figures (the
 * dashboard charts their differences): t_ms, the EDGE_SNAP rows, then the
 * origin histogram's buckets.
 */
static json_t *
history_json(const struct edge_stats *a, unsigned n)
{
	json_t *j = json_object(), *c = json_array(), *rows = json_array();
	uint64_t v[CDN_ARRAY_LEN(snap_names)];

	if (n > a->ring_len)
		n = a->ring_len;
	json_array_append_new(c, json_string("t_ms"));
	for (size_t i = 0; i < CDN_ARRAY_LEN(snap_names); i++)
		json_array_append_new(c, json_string(snap_names[i]));
	json_array_append_new(c, json_string("origin_hist"));
	for (unsigned i = n; i-- > 0;) {
		const struct edge_snap *s = ring_at(a, i);
		json_t *row = json_array(), *h = json_array();

		snap_values(s, v);
		json_array_append_new(row, JINT(s->t_ms));
		for (size_t k = 0; k < CDN_ARRAY_LEN(snap_names); k++)
			json_array_append_new(row, JINT(v[k]));
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

/* The node's figures as one site's (the "default" of /stats' sites). */
static json_t *
site_json(const struct edge_stats *a, const struct edge_totals *t,
    const struct edge_snap *now, unsigned history)
{
	json_t *s = json_object();
	uint64_t v[CDN_ARRAY_LEN(snap_names)];

	snap_values(now, v);
	for (size_t i = 0; i < CDN_ARRAY_LEN(snap_names); i++)
		json_object_set_new(s, snap_names[i], JINT(v[i]));
	json_object_set_new(s, "hits_memory", JINT(t->cache_hits_memory));
	json_object_set_new(s, "hits_disk", JINT(t->cache_hits_disk));
	json_object_set_new(
	    s, "origin_errors_by_kind", kinds_json(t->origin_err_kind));
	json_object_set_new(s, "origin_duration",
	    hist_json(t->origin_hist, t->origin_hist_sum_us));
	json_object_set_new(s, "windows", windows_json(a, now));
	if (history > 0)
		json_object_set_new(s, "history", history_json(a, history));
	return s;
}

/* One server's fetches (or a pool's that found no server). */
struct origin_row {
	const char *pool, *role, *server;
	struct origin_fetch_stats fs;
};

/* A site's pools: its origins, and its parents (parent_server, the shield
 * tier; NULL without), told apart by the label role. */
enum pool_role { ROLE_ORIGIN, ROLE_PARENT, ROLE_COUNT };
static const char *const role_names[ROLE_COUNT] = {"origin", "parent"};

static const struct origin_pool *
site_pool(const struct edge_site *s, enum pool_role role)
{
	return role == ROLE_ORIGIN ? s->pool : s->parents;
}

/*
 * Every pool's servers, then the pool's fetches that found none if there
 * were any.  Returns the count; *rowsp is the caller's to free.
 */
static size_t
origin_rows(const struct edge *e, struct origin_row **rowsp)
{
	unsigned ns = edge_sites_count(e->gen->sites), cap = 0;
	struct origin_server_state st;
	struct origin_row *rows;
	size_t n = 0;

	for (unsigned i = 0; i < ns; i++)
		for (unsigned r = 0; r < ROLE_COUNT; r++) {
			const struct origin_pool *p =
			    site_pool(edge_sites_at(e->gen->sites, i), r);

			if (p != NULL)
				cap += origin_pool_nservers(p) + 1;
		}
	rows = cdn_xcalloc(cap, sizeof(*rows));
	for (unsigned i = 0; i < ns; i++) {
		const struct edge_site *s = edge_sites_at(e->gen->sites, i);

		for (unsigned r = 0; r < ROLE_COUNT; r++) {
			const struct origin_pool *p = site_pool(s, r);

			if (p == NULL)
				continue;
			for (unsigned k = 0; k < origin_pool_nservers(p); k++) {
				origin_pool_server_state(p, k, &st);
				rows[n].pool = s->name;
				rows[n].role = role_names[r];
				rows[n].server = st.authority;
				rows[n++].fs = st.fs;
			}
			origin_pool_unserved(p, &rows[n].fs);
			if (rows[n].fs.requests > 0) {
				rows[n].pool = s->name;
				rows[n].role = role_names[r];
				rows[n++].server = "";
			}
		}
	}
	*rowsp = rows;
	return n;
}

static json_t *
origins_json(const struct edge *e)
{
	json_t *arr = json_array(), *o;
	struct origin_row *rows;
	size_t n = origin_rows(e, &rows);

	for (size_t i = 0; i < n; i++) {
		const struct origin_fetch_stats *fs = &rows[i].fs;

		o = json_object();
		json_object_set_new(o, "pool", json_string(rows[i].pool));
		json_object_set_new(o, "role", json_string(rows[i].role));
		json_object_set_new(o, "server", json_string(rows[i].server));
#define ORIGIN_COUNT(field, key) json_object_set_new(o, key, JINT(fs->field));
#define ORIGIN_KINDS(field, key)                                               \
	json_object_set_new(o, key, kinds_json(fs->field));
#define ORIGIN_HIST(field, key)                                                \
	json_object_set_new(o, key, hist_json(fs->field, fs->field##_sum));
#define EDGE_ORIGIN_STAT(field, shape, key, family, help)                      \
	ORIGIN_##shape(field, key)
#include "edge/edge_counters.h"
#undef ORIGIN_COUNT
#undef ORIGIN_KINDS
#undef ORIGIN_HIST
		json_array_append_new(arr, o);
	}
	free(rows);
	return arr;
}

static const struct metric_row server_rows[] = {
#define EDGE_SERVER_STAT(field, kind, key, family, help)                       \
	ROW(kind, NONE, key, family, NULL, NULL, help),
#include "edge/edge_counters.h"
};

static const struct metric_row pool_rows[] = {
#define EDGE_POOL_STAT(field, kind, key, family, help)                         \
	ROW(kind, NONE, key, family, NULL, NULL, help),
#include "edge/edge_counters.h"
};

static void
server_values(const struct origin_server_state *st, uint64_t *v)
{
	size_t n = 0;

#define EDGE_SERVER_STAT(field, ...) v[n++] = (uint64_t)st->field;
#include "edge/edge_counters.h"
}

static void
pool_read(const struct origin_pool *p, uint64_t *v)
{
	struct edge_pool_stats ps;
	size_t n = 0;

	ps.retries = origin_pool_retries(p);
#define EDGE_POOL_STAT(field, ...) v[n++] = ps.field;
#include "edge/edge_counters.h"
}

/* A row of a per-site or per-server table: its group is the object. */
static void
row_json_in(json_t *o, const struct metric_row *r, uint64_t v)
{
	json_object_set_new(
	    o, r->key, r->kind == KIND_FLAG ? json_boolean(v != 0) : JINT(v));
}

/* One pool of a site and its servers' health, as the workers see it now. */
static json_t *
pool_json(const struct edge_site *site, enum pool_role role,
    const struct origin_pool *pool)
{
	json_t *p = json_object(), *servers = json_array(), *o;
	struct origin_server_state st;
	uint64_t pv[CDN_ARRAY_LEN(pool_rows)], sv[CDN_ARRAY_LEN(server_rows)];

	json_object_set_new(p, "site", json_string(site->name));
	json_object_set_new(p, "role", json_string(role_names[role]));
	json_object_set_new(p, "balance",
	    json_string(role == ROLE_ORIGIN ? site->conf->origin_balance
	                                    : "consistent-hash"));
	json_object_set_new(
	    p, "health_checks", json_boolean(origin_pool_has_checks(pool)));
	pool_read(pool, pv);
	for (size_t r = 0; r < CDN_ARRAY_LEN(pool_rows); r++)
		row_json_in(p, &pool_rows[r], pv[r]);
	for (unsigned k = 0; k < origin_pool_nservers(pool); k++) {
		origin_pool_server_state(pool, k, &st);
		server_values(&st, sv);
		o = json_object();
		json_object_set_new(o, "url", json_string(st.url));
		json_object_set_new(o, "server", json_string(st.authority));
		for (size_t r = 0; r < CDN_ARRAY_LEN(server_rows); r++)
			row_json_in(o, &server_rows[r], sv[r]);
		json_array_append_new(servers, o);
	}
	json_object_set_new(p, "servers", servers);
	return p;
}

/* Each site's pools: its origins', then its parents' if it has any. */
static json_t *
pools_json(const struct edge *e)
{
	json_t *arr = json_array();

	for (unsigned i = 0; i < edge_sites_count(e->gen->sites); i++) {
		const struct edge_site *site = edge_sites_at(e->gen->sites, i);

		for (unsigned r = 0; r < ROLE_COUNT; r++)
			if (site_pool(site, r) != NULL)
				json_array_append_new(arr,
				    pool_json(site, r, site_pool(site, r)));
	}
	return arr;
}

static const char *const site_keys[] = {
#define EDGE_SITE_COUNTER(field, key, family, help) key,
#include "edge/edge_counters.h"
};

static json_t *
site_counters_json(const struct edge *e)
{
	json_t *obj = json_object(), *o;
	uint64_t v[CDN_ARRAY_LEN(site_keys)];

	for (unsigned i = 0; i < edge_sites_count(e->gen->sites); i++) {
		site_read(e, i, v);
		o = json_object();
		for (size_t k = 0; k < CDN_ARRAY_LEN(site_keys); k++)
			json_object_set_new(o, site_keys[k], JINT(v[k]));
		json_object_set_new(
		    obj, edge_sites_at(e->gen->sites, i)->name, o);
	}
	return obj;
}

/* The figures of the scalar tables, read once for /stats or /metrics. */
struct scalars {
	uint64_t node[CDN_ARRAY_LEN(node_rows)];
	uint64_t store[CDN_ARRAY_LEN(store_rows)];
	uint64_t variant[CDN_ARRAY_LEN(variant_rows)];
	/* The bus's figures, only when purge_bus is set (bus_shown). */
	int bus_shown;
	struct edge_bus_stats bs;
	uint64_t bus[CDN_ARRAY_LEN(bus_rows)];
};

static void
scalars_read(struct edge *e, struct scalars *sc)
{
	struct edge_node_stats node;
	struct cache_store_stats st;
	struct edge_variant_counters vc;

	node_read(e, &node);
	node_values(&node, sc->node);
	memset(&st, 0, sizeof(st));
	if (e->store != NULL)
		cache_store_stats(e->store, &st);
	store_values(&st, sc->store);
	edge_variant_counters(e, &vc);
	variant_values(&vc, sc->variant);
	sc->bus_shown = edge_bus_configured(e);
	if (sc->bus_shown) {
		edge_bus_stats(e, &sc->bs);
		bus_values(&sc->bs, sc->bus);
	}
}

/* A row that is about the bus, on a node without one: not shown. */
static int
row_hidden(const struct scalars *sc, const struct metric_row *r)
{
	return r->group == JG_BUS && !sc->bus_shown;
}

/* The bus's object of /stats, beyond its rows. */
static void
bus_json(json_t *g, const struct edge_bus_stats *bs)
{
	static const char *const verdicts[] = {[CACHE_BUS_SERVE] = "serve",
	    [CACHE_BUS_REVALIDATE] = "revalidate",
	    [CACHE_BUS_SERVE_OFFLINE] = "serve_offline"};
	json_t *h = json_object(), *le = json_array(), *c = json_array();
	char id[CACHE_BUS_ID_MAX];
	uint64_t n = 0;

	json_object_set_new(
	    g, "state", json_string(cache_bus_state_name(bs->state)));
	json_object_set_new(g, "verdict",
	    json_string(bs->verdict < CDN_ARRAY_LEN(verdicts)
	            ? verdicts[bs->verdict]
	            : "unknown"));
	json_object_set_new(g, "applied_id",
	    json_string(cache_bus_id_format(bs->applied_id, id)));
	for (size_t b = 0; b < CDN_ARRAY_LEN(bus_bounds_ms); b++)
		json_array_append_new(
		    le, json_real((double)bus_bounds_ms[b] / 1e3));
	for (unsigned b = 0; b < CACHE_BUS_LATENCY_BUCKETS; b++) {
		json_array_append_new(c, JINT(bs->latency_le[b]));
		n += bs->latency_le[b];
	}
	json_object_set_new(h, "le_s", le);
	json_object_set_new(h, "counts", c);
	json_object_set_new(
	    h, "sum_s", json_real((double)bs->latency_sum_us / 1e6));
	json_object_set_new(h, "count", JINT(n));
#define EDGE_BUS_HIST(key, family, help) json_object_set_new(g, key, h);
#include "edge/edge_counters.h"
}

char *
edge_stats_json(struct edge *e, unsigned history)
{
	struct edge_stats *a = e->stats;
	struct edge_totals t;
	struct edge_snap now;
	struct scalars sc;
	const uint64_t *cv[CDN_ARRAY_LEN(counter_rows)];
	json_t *g[JG_COUNT], *sites;
	char state[sizeof(e->cache_off) + 16], *text;

	totals_read(e, &t);
	snap_from(e, &t, &now);
	scalars_read(e, &sc);
	edge_cache_state(e, state, sizeof(state));
	for (size_t i = 0; i < JG_COUNT; i++)
		g[i] = json_object();

	json_object_set_new(
	    g[JG_ROOT], "version", json_string(PACKAGE_VERSION));
	for (size_t i = 0; i < CDN_ARRAY_LEN(node_rows); i++)
		row_json(g, &node_rows[i], &sc.node[i]);
	json_object_set_new(g[JG_CACHE], "state", json_string(state));
	counter_values(&t, cv);
	for (size_t i = 0; i < CDN_ARRAY_LEN(counter_rows); i++)
		if (!row_hidden(&sc, &counter_rows[i]))
			row_json(g, &counter_rows[i], cv[i]);
	for (size_t i = 0; i < CDN_ARRAY_LEN(aliases); i++)
		json_object_set_new(g[aliases[i].group], aliases[i].key,
		    JINT(*(const uint64_t *)(const void *)((const char *)&t +
		        aliases[i].off)));
	for (size_t i = 0; i < CDN_ARRAY_LEN(store_rows); i++) {
		const struct metric_row *r = &store_rows[i];

		if (e->store != NULL ||
		    (r->group == JG_PURGES && r->kind == KIND_COUNTER))
			row_json(g, r, &sc.store[i]);
	}
	for (size_t i = 0; i < CDN_ARRAY_LEN(variant_rows); i++)
		row_json(g, &variant_rows[i], &sc.variant[i]);
	if (sc.bus_shown) {
		for (size_t i = 0; i < CDN_ARRAY_LEN(bus_rows); i++)
			row_json(g, &bus_rows[i], &sc.bus[i]);
		bus_json(g[JG_BUS], &sc.bs);
	}
	for (size_t i = 1; i < JG_COUNT; i++) {
		if (i == JG_BUS && !sc.bus_shown)
			json_decref(g[i]); /* no bus: no "bus" */
		else
			json_object_set_new(
			    g[jgroups[i].parent], jgroups[i].key, g[i]);
	}

	json_object_set_new(g[JG_ROOT], "origins", origins_json(e));
	json_object_set_new(g[JG_ROOT], "windows", windows_json(a, &now));
	sites = json_object();
	json_object_set_new(sites, "default", site_json(a, &t, &now, history));
	json_object_set_new(g[JG_ROOT], "sites", sites);
	json_object_set_new(g[JG_ROOT], "pools", pools_json(e));
	json_object_set_new(g[JG_ROOT], "site_counters", site_counters_json(e));
	/* Indented for people; with history (for the dashboard) on one line. */
	text = json_dumps(g[JG_ROOT],
	    (history > 0 ? 0 : JSON_INDENT(1)) | JSON_PRESERVE_ORDER);
	json_decref(g[JG_ROOT]);
	return text;
}

/* ---- /metrics ---- */

static const char *const kind_types[] = {[KIND_COUNTER] = "counter",
    [KIND_GAUGE] = "gauge",
    [KIND_FLAG] = "gauge",
    [KIND_MS] = "gauge",
    [KIND_MS_TOTAL] = "counter"};

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

/* Label pairs of a sample, in order. */
struct prom_labels {
	const char *k[LABELS_MAX], *v[LABELS_MAX];
	unsigned n;
};

static void
lab_add(struct prom_labels *l, const char *k, const char *v)
{
	CDN_ASSERT(l->n < LABELS_MAX);
	if (k == NULL)
		return;
	l->k[l->n] = k;
	l->v[l->n++] = v;
}

/* One sample: <name><suffix>{<labels>} <value>, value printed as given. */
static void
prom_sample(struct cdn_strbuf *b, const char *name, const char *suffix,
    const struct prom_labels *l, const char *value)
{
	cdn_sb_str(b, name);
	cdn_sb_str(b, suffix);
	for (unsigned i = 0; i < l->n; i++) {
		cdn_sb_printf(b, "%s%s=\"", i == 0 ? "{" : ",", l->k[i]);
		prom_label_value(b, l->v[i]);
		cdn_sb_add(b, "\"", 1);
	}
	cdn_sb_printf(b, "%s %s\n", l->n > 0 ? "}" : "", value);
}

static const char *
u64s(char *buf, size_t len, uint64_t v)
{
	snprintf(buf, len, "%llu", (unsigned long long)v);
	return buf;
}

/* The family's HELP and TYPE lines if <r> is its first row. */
static void
row_family(struct cdn_strbuf *b, const struct metric_row *r)
{
	if (r->help[0] != '\0')
		prom_family(b, r->family, kind_types[r->kind], r->help);
}

/* A row's samples: one, or one per element of its dimensions. */
static void
row_prom(struct cdn_strbuf *b, const struct metric_row *r, const uint64_t *v,
    const struct prom_labels *base)
{
	struct prom_labels l;
	enum dim d0 = r->dim[0], d1 = r->dim[1];
	unsigned n0, n1;
	char n[24];

	if (r->family == NULL)
		return;
	row_family(b, r);
	n0 = d0 != DIM_NONE ? dims[d0].count : 1;
	n1 = d1 != DIM_NONE ? dims[d1].count : 1;
	for (unsigned i = 0; i < n0; i++) {
		for (unsigned k = 0; k < n1; k++) {
			l = *base;
			lab_add(&l, r->label, r->value);
			if (d0 != DIM_NONE)
				lab_add(&l, dims[d0].label, dim_name(d0, i));
			if (d1 != DIM_NONE)
				lab_add(&l, dims[d1].label, dim_name(d1, k));
			if (r->kind == KIND_MS || r->kind == KIND_MS_TOTAL)
				snprintf(n, sizeof(n), "%.3f",
				    (double)v[i * n1 + k] / 1e3);
			else
				u64s(n, sizeof(n), v[i * n1 + k]);
			prom_sample(b, r->family, "", &l, n);
		}
	}
}

/* The samples of a histogram family: cumulative buckets, sum, count. */
static void
hist_prom(struct cdn_strbuf *b, const char *family, const uint64_t *h,
    uint64_t sum_us, const struct prom_labels *base)
{
	struct prom_labels l;
	char n[24], le[32];
	uint64_t cum = 0;

	for (unsigned k = 0; k < EDGE_ORIGIN_BUCKETS; k++) {
		cum += h[k];
		if (k < EDGE_ORIGIN_BUCKETS - 1)
			snprintf(le, sizeof(le), "%g",
			    (double)origin_lat_le_us[k] / 1e6);
		else
			snprintf(le, sizeof(le), "+Inf");
		l = *base;
		lab_add(&l, "le", le);
		prom_sample(b, family, "_bucket", &l, u64s(n, sizeof(n), cum));
	}
	snprintf(le, sizeof(le), "%.6f", (double)sum_us / 1e6);
	prom_sample(b, family, "_sum", base, le);
	prom_sample(b, family, "_count", base, u64s(n, sizeof(n), cum));
}

/* The bus's publish-to-apply latency: cumulative buckets, sum, count. */
static void
metrics_bus_hist(struct cdn_strbuf *b, const struct edge_bus_stats *bs)
{
	const struct prom_labels none = {.n = 0};
	struct prom_labels l;
	char n[24], le[32];
	uint64_t cum = 0;

#define EDGE_BUS_HIST(key, family, help)                                       \
	prom_family(b, family, "histogram", help);                             \
	for (unsigned k = 0; k < CACHE_BUS_LATENCY_BUCKETS; k++) {             \
		cum += bs->latency_le[k];                                      \
		if (k < CDN_ARRAY_LEN(bus_bounds_ms))                          \
			snprintf(le, sizeof(le), "%g",                         \
			    (double)bus_bounds_ms[k] / 1e3);                   \
		else                                                           \
			snprintf(le, sizeof(le), "+Inf");                      \
		l = none;                                                      \
		lab_add(&l, "le", le);                                         \
		prom_sample(                                                   \
		    b, family, "_bucket", &l, u64s(n, sizeof(n), cum));        \
	}                                                                      \
	snprintf(le, sizeof(le), "%.6f", (double)bs->latency_sum_us / 1e6);    \
	prom_sample(b, family, "_sum", &none, le);                             \
	prom_sample(b, family, "_count", &none, u64s(n, sizeof(n), cum));
#include "edge/edge_counters.h"
}

static void
metrics_origins(struct cdn_strbuf *b, const struct edge *e)
{
	struct origin_row *rows;
	struct prom_labels l;
	size_t n = origin_rows(e, &rows);
	char num[24];

#define ORIGIN_COUNT(field, family)                                            \
	prom_sample(b, family, "", &l, u64s(num, sizeof(num), fs->field));
#define ORIGIN_KINDS(field, family)                                            \
	for (unsigned k = 1; k < ORIGIN_ERR_KINDS; k++) {                      \
		struct prom_labels lk = l;                                     \
		lab_add(&lk, dims[DIM_KIND].label, dim_name(DIM_KIND, k));     \
		prom_sample(                                                   \
		    b, family, "", &lk, u64s(num, sizeof(num), fs->field[k])); \
	}
#define ORIGIN_HIST(field, family)                                             \
	hist_prom(b, family, fs->field, fs->field##_sum, &l);
#define ORIGIN_TYPE_COUNT "counter"
#define ORIGIN_TYPE_KINDS "counter"
#define ORIGIN_TYPE_HIST  "histogram"
#define EDGE_ORIGIN_STAT(field, shape, key, family, help)                      \
	prom_family(b, family, ORIGIN_TYPE_##shape, help);                     \
	for (size_t i = 0; i < n; i++) {                                       \
		const struct origin_fetch_stats *fs = &rows[i].fs;             \
		l.n = 0;                                                       \
		lab_add(&l, "pool", rows[i].pool);                             \
		lab_add(&l, "role", rows[i].role);                             \
		lab_add(&l, "server", rows[i].server);                         \
		ORIGIN_##shape(field, family)                                  \
	}
#include "edge/edge_counters.h"
#undef ORIGIN_COUNT
#undef ORIGIN_KINDS
#undef ORIGIN_HIST
#undef ORIGIN_TYPE_COUNT
#undef ORIGIN_TYPE_KINDS
#undef ORIGIN_TYPE_HIST
	free(rows);
}

static void
pool_labels(
    struct prom_labels *l, const struct edge_site *s, enum pool_role role)
{
	l->n = 0;
	lab_add(l, "pool", s->name);
	lab_add(l, "role", role_names[role]);
}

/* Row <r> of pool_rows for one pool of <s>, if it has that pool. */
static void
pool_prom(struct cdn_strbuf *b, const struct edge_site *s, enum pool_role role,
    size_t r)
{
	const struct origin_pool *p = site_pool(s, role);
	uint64_t pv[CDN_ARRAY_LEN(pool_rows)];
	struct prom_labels l;
	char n[24];

	if (p == NULL)
		return;
	pool_read(p, pv);
	pool_labels(&l, s, role);
	prom_sample(b, pool_rows[r].family, "", &l, u64s(n, sizeof(n), pv[r]));
}

/* Row <r> of server_rows for each server of one pool of <s>. */
static void
servers_prom(struct cdn_strbuf *b, const struct edge_site *s,
    enum pool_role role, size_t r)
{
	const struct origin_pool *p = site_pool(s, role);
	struct origin_server_state st;
	uint64_t sv[CDN_ARRAY_LEN(server_rows)];
	struct prom_labels l;
	char n[24];

	for (unsigned k = 0; p != NULL && k < origin_pool_nservers(p); k++) {
		origin_pool_server_state(p, k, &st);
		server_values(&st, sv);
		pool_labels(&l, s, role);
		lab_add(&l, "server", st.authority);
		prom_sample(b, server_rows[r].family, "", &l,
		    u64s(n, sizeof(n), sv[r]));
	}
}

/* Sites, their pools and the pools' servers. */
static void
metrics_sites(struct cdn_strbuf *b, const struct edge *e)
{
	static const struct metric_row site_rows[] = {
#define EDGE_SITE_COUNTER(field, key, family, help)                            \
	ROW(COUNTER, NONE, key, family, NULL, NULL, help),
#include "edge/edge_counters.h"
	};
	struct prom_labels l;
	unsigned ns = edge_sites_count(e->gen->sites);
	uint64_t v[CDN_ARRAY_LEN(site_rows)];
	char n[24];

	for (size_t r = 0; r < CDN_ARRAY_LEN(site_rows); r++) {
		row_family(b, &site_rows[r]);
		for (unsigned i = 0; i < ns; i++) {
			site_read(e, i, v);
			l.n = 0;
			lab_add(
			    &l, "site", edge_sites_at(e->gen->sites, i)->name);
			prom_sample(b, site_rows[r].family, "", &l,
			    u64s(n, sizeof(n), v[r]));
		}
	}
	for (size_t r = 0; r < CDN_ARRAY_LEN(pool_rows); r++) {
		row_family(b, &pool_rows[r]);
		for (unsigned i = 0; i < ns; i++)
			for (unsigned role = 0; role < ROLE_COUNT; role++)
				pool_prom(b, edge_sites_at(e->gen->sites, i),
				    role, r);
	}
	for (size_t r = 0; r < CDN_ARRAY_LEN(server_rows); r++) {
		if (server_rows[r].family == NULL)
			continue;
		row_family(b, &server_rows[r]);
		for (unsigned i = 0; i < ns; i++)
			for (unsigned role = 0; role < ROLE_COUNT; role++)
				servers_prom(b, edge_sites_at(e->gen->sites, i),
				    role, r);
	}
}

/* The process_* families, unless /proc could not be read. */
static void
metrics_process(struct cdn_strbuf *b)
{
	const struct prom_labels none = {.n = 0};
	struct edge_process_stats ps;
	uint64_t v[CDN_ARRAY_LEN(process_rows)];

	if (edge_process_stats(&ps) != CDN_OK)
		return;
	process_values(&ps, v);
	for (size_t i = 0; i < CDN_ARRAY_LEN(process_rows); i++)
		row_prom(b, &process_rows[i], &v[i], &none);
}

char *
edge_metrics_text(struct edge *e, size_t *len)
{
	struct cdn_strbuf b = {.max = METRICS_MAX};
	struct edge_totals t;
	struct scalars sc;
	const uint64_t *cv[CDN_ARRAY_LEN(counter_rows)];
	const struct prom_labels none = {.n = 0};

	totals_read(e, &t);
	scalars_read(e, &sc);
	for (size_t i = 0; i < CDN_ARRAY_LEN(node_rows); i++)
		row_prom(&b, &node_rows[i], &sc.node[i], &none);
	counter_values(&t, cv);
	for (size_t i = 0; i < CDN_ARRAY_LEN(counter_rows); i++)
		if (!row_hidden(&sc, &counter_rows[i]))
			row_prom(&b, &counter_rows[i], cv[i], &none);
	for (size_t i = 0; i < CDN_ARRAY_LEN(store_rows); i++)
		row_prom(&b, &store_rows[i], &sc.store[i], &none);
	for (size_t i = 0; i < CDN_ARRAY_LEN(variant_rows); i++)
		row_prom(&b, &variant_rows[i], &sc.variant[i], &none);
	if (sc.bus_shown) {
		for (size_t i = 0; i < CDN_ARRAY_LEN(bus_rows); i++)
			row_prom(&b, &bus_rows[i], &sc.bus[i], &none);
		metrics_bus_hist(&b, &sc.bs);
	}
	metrics_origins(&b, e);
	metrics_sites(&b, e);
	metrics_process(&b);
	if (b.failed) {
		cdn_sb_free(&b);
		return NULL;
	}
	*len = b.len;
	return b.p;
}

/* ---- set-up ---- */

int
edge_stats_init(struct edge *e)
{
	struct edge_stats *a;
	struct edge_totals t;
	struct edge_snap s;
	struct timeval tv = {.tv_sec = SNAP_INTERVAL_MS / 1000,
	    .tv_usec = (SNAP_INTERVAL_MS % 1000) * 1000};

	CDN_ASSERT(e->stats == NULL && e->main_base != NULL);
	a = cdn_xcalloc(1, sizeof(*a));
	e->stats = a;
	a->ring = cdn_xcalloc(RING_SLOTS, sizeof(*a->ring));
	totals_read(e, &t);
	snap_from(e, &t, &s);
	s.t_ms = 0;
	ring_push(a, &s);
	a->snap_timer =
	    event_new(e->main_base, -1, EV_PERSIST, on_snap_timer, e);
	if (a->snap_timer == NULL)
		return CDN_ENOMEM;
	event_add(a->snap_timer, &tv);
	return CDN_OK;
}

void
edge_stats_fini(struct edge *e)
{
	struct edge_stats *a = e->stats;

	if (a == NULL)
		return;
	e->stats = NULL;
	if (a->snap_timer != NULL)
		event_free(a->snap_timer);
	free(a->ring);
	free(a);
}
