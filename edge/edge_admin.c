/*
 * The admin listener's handler: /healthz and /stats, served on the main
 * thread.  Counters are read with relaxed loads from every worker: each is
 * exact for its worker, and the sum is a consistent-enough snapshot.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "edge/edge_int.h"

static void
sum_counters(struct edge *e, struct edge_counters *sum)
{
#define SUM(field)                                                        \
	atomic_store_explicit(&sum->field,                                \
	    atomic_load_explicit(&sum->field, memory_order_relaxed) +     \
		atomic_load_explicit(&w->ctr.field, memory_order_relaxed), \
	    memory_order_relaxed)

	memset(sum, 0, sizeof(*sum));
	for (unsigned i = 0; i < e->nworkers; i++) {
		struct edge_worker *w = &e->workers[i];

		SUM(requests);
		for (unsigned k = 0; k < CDN_ARRAY_LEN(sum->status); k++)
			SUM(status[k]);
		SUM(client_aborts);
		SUM(bad_requests);
		SUM(origin_fetches);
		SUM(origin_errors);
		SUM(origin_timeouts);
		SUM(bytes_sent);
		SUM(conns_accepted);
		SUM(cache_hits_memory);
		SUM(cache_hits_disk);
		SUM(cache_misses);
		SUM(cache_revalidations);
		SUM(cache_not_modified);
		SUM(cache_stores);
		SUM(cache_invalidations);
		SUM(cache_bypass);
	}
#undef SUM
}

#define JINT(v) json_integer((json_int_t)(v))

static json_t *
cache_json(struct edge *e, const struct edge_counters *s)
{
	struct cache_store_stats st;
	json_t *c = json_object();

	json_object_set_new(c, "enabled", json_boolean(e->store != NULL));
	json_object_set_new(c, "hits_memory", JINT(s->cache_hits_memory));
	json_object_set_new(c, "hits_disk", JINT(s->cache_hits_disk));
	json_object_set_new(c, "misses", JINT(s->cache_misses));
	json_object_set_new(c, "revalidations", JINT(s->cache_revalidations));
	json_object_set_new(c, "not_modified", JINT(s->cache_not_modified));
	json_object_set_new(c, "stores", JINT(s->cache_stores));
	json_object_set_new(c, "invalidations", JINT(s->cache_invalidations));
	json_object_set_new(c, "bypass", JINT(s->cache_bypass));
	if (e->store == NULL)
		return c;
	cache_store_stats(e->store, &st);
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
	return c;
}

static json_t *
stats_json(struct edge *e)
{
	struct edge_counters s;
	json_t *root, *status;
	char key[8];

	sum_counters(e, &s);
	root = json_object();
	json_object_set_new(root, "uptime_s",
	    json_integer((json_int_t)((cdn_now_ms() - e->start_ms) / 1000)));
	json_object_set_new(root, "workers", json_integer(e->nworkers));
	json_object_set_new(root, "draining",
	    json_boolean(atomic_load(&e->draining)));
	json_object_set_new(root, "requests", json_integer((json_int_t)s.requests));
	status = json_object();
	for (unsigned k = 1; k < CDN_ARRAY_LEN(s.status); k++) {
		snprintf(key, sizeof(key), "%uxx", k);
		json_object_set_new(status, key,
		    json_integer((json_int_t)s.status[k]));
	}
	json_object_set_new(root, "responses", status);
	json_object_set_new(root, "client_aborts",
	    json_integer((json_int_t)s.client_aborts));
	json_object_set_new(root, "bad_requests",
	    json_integer((json_int_t)s.bad_requests));
	json_object_set_new(root, "origin_fetches",
	    json_integer((json_int_t)s.origin_fetches));
	json_object_set_new(root, "origin_errors",
	    json_integer((json_int_t)s.origin_errors));
	json_object_set_new(root, "origin_timeouts",
	    json_integer((json_int_t)s.origin_timeouts));
	json_object_set_new(root, "bytes_sent",
	    json_integer((json_int_t)s.bytes_sent));
	json_object_set_new(root, "connections_accepted",
	    json_integer((json_int_t)s.conns_accepted));
	json_object_set_new(root, "cache", cache_json(e, &s));
	return root;
}

static void
on_admin_request(struct http_txn *txn, void *arg)
{
	struct edge *e = arg;
	const struct http_request *req = http_txn_request(txn);
	json_t *j;
	char *body;

	if (req->method != HTTP_M_GET && req->method != HTTP_M_HEAD) {
		http_txn_simple(txn, 405, "text/plain", "405 Method Not Allowed\n",
		    23);
		return;
	}
	if (http_slice_eq_ci(req->path, "/healthz")) {
		if (atomic_load(&e->draining))
			http_txn_simple(txn, 503, "text/plain", "draining\n", 9);
		else
			http_txn_simple(txn, 200, "text/plain", "ok\n", 3);
		return;
	}
	if (http_slice_eq_ci(req->path, "/stats")) {
		j = stats_json(e);
		body = json_dumps(j, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
		json_decref(j);
		if (body == NULL) {
			http_txn_simple(txn, 500, "text/plain", "500\n", 4);
			return;
		}
		http_txn_simple(txn, 200, "application/json", body,
		    strlen(body));
		free(body);
		return;
	}
	http_txn_simple(txn, 404, "text/plain", "404 Not Found\n", 14);
}

const struct http_handler edge_admin_handler = {
	.on_request = on_admin_request,
};
