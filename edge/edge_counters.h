/*
 * Every figure of /stats and /metrics, once.  An X-macro, as
 * conf/conf_keys.h is for directives: an includer defines the row macros it
 * needs just before including it, the others expand to nothing, and every
 * row macro is undefined at the end.  From these rows come the
 * per-worker counter structs (edge_int.h, edge_site.h), their sums over the
 * workers, the /stats JSON, the /metrics text with its HELP and TYPE lines
 * (edge_stats.c), and the check that docs/metrics.md lists every metric and
 * no other (tests/unit/t_edge_metrics.c).
 *
 * Columns:
 *   field   the member of the row's source struct
 *   kind    COUNTER, GAUGE, or FLAG (a gauge of 0 or 1, a bool in /stats)
 *   group   the /stats object it is in (EDGE_JGROUP), NONE: not in /stats
 *   key     its key there (NULL with NONE)
 *   family  its /metrics family, NULL: not in /metrics.  Rows of a family
 *           are consecutive; the first gives the help, the others "".
 *   label, value   the label pair that tells a family's rows apart, or NULL
 *   help    the family's "# HELP" text
 *
 * EDGE_JGROUP(id, parent, key)   the nested objects of /stats, parents first
 * EDGE_DIM(id, label, count)     a dimension of counter arrays (its names:
 *                                edge_stats.c)
 * EDGE_COUNTER(field, kind, group, key, family, label, value, help)
 *     struct edge_counters: one per worker, written by that worker alone
 *     (EDGE_COUNTER_INC), summed on read.  A GAUGE is an atomic_uint that
 *     another layer keeps through a pointer (http_server_set_conn_gauge).
 * EDGE_COUNTER_VEC(field, dims, first, group, key, family, label, value, help)
 *     the same, an array over EDGE_D1(dim) or EDGE_D2(dim, dim): in /stats
 *     an object by the dimension's names (nested for two) from index
 *     <first>; in /metrics one sample per element, labelled label=value
 *     (if any) and by each dimension.
 * EDGE_COUNTER_ALIAS(field, group, key)
 *     a counter shown once more in /stats, under an older name
 * EDGE_STORE_STAT(...)    struct cache_store_stats (EDGE_COUNTER's columns);
 *     in /stats only while a store is open, but the COUNTERs of group
 *     PURGES always (0 without a store)
 * EDGE_VARIANT_STAT(...)  struct edge_variant_counters (the same columns)
 * EDGE_BUS_STAT(...)      struct edge_bus_stats (edge_int.h), read from the
 *     purge bus's shared page (EDGE_COUNTER's columns; kind MS: a gauge in
 *     ms, shown in seconds in /metrics); shown, like the COUNTERs of group
 *     BUS, only when purge_bus is set
 * EDGE_BUS_HIST(key, family, help)  the bus's publish-to-apply latency
 *     histogram (group BUS; in ms on the page, shown in seconds)
 * EDGE_NODE_STAT(...)     struct edge_node_stats (edge_stats.c): the node's
 *     own figures
 * EDGE_PROCESS_STAT(field, kind, family, help)
 *     struct edge_process_stats (edge_int.h), read from /proc by
 *     edge_process.c: /metrics only, the process_* names every Prometheus
 *     client library exports.  kind MS_TOTAL: a counter kept in ms, shown
 *     in seconds
 * EDGE_SITE_COUNTER(field, key, family, help)
 *     struct edge_site_counters: per worker and site, like edge_counters
 *     (EDGE_SITE_COUNTER_INC); /stats site_counters.<site>.<key>,
 *     /metrics labelled site
 * EDGE_POOL_STAT(field, kind, key, family, help)
 *     struct edge_pool_stats (edge_stats.c), per site's pool:
 *     /stats pools[].<key>, /metrics labelled pool
 * EDGE_SERVER_STAT(field, kind, key, family, help)
 *     struct origin_server_state, per server of a pool:
 *     /stats pools[].servers[].<key>, /metrics labelled pool and server (as
 *     configured)
 * EDGE_ORIGIN_STAT(field, shape, key, family, help)
 *     struct origin_fetch_stats, per server of a pool and for the pool's
 *     fetches that found no server: /stats origins[].<key>, /metrics
 *     labelled pool and server (host:port; "" for no server).  shape:
 *     COUNT, KINDS (an array by origin error kind) or HIST (a latency
 *     histogram in µs, shown in seconds)
 * EDGE_SNAP(name, expr)
 *     a figure of the windows, the history and the site figures of /stats,
 *     taken from the summed counters <t> (struct edge_totals *) once a
 *     second
 */
/* clang-format off */
#ifndef EDGE_JGROUP
#define EDGE_JGROUP(id, parent, key)
#endif
#ifndef EDGE_DIM
#define EDGE_DIM(id, label, count)
#endif
#ifndef EDGE_COUNTER
#define EDGE_COUNTER(field, kind, group, key, family, label, value, help)
#endif
#ifndef EDGE_COUNTER_VEC
#define EDGE_COUNTER_VEC(field, dims, first, group, key, family, label, value, help)
#endif
#ifndef EDGE_COUNTER_ALIAS
#define EDGE_COUNTER_ALIAS(field, group, key)
#endif
#ifndef EDGE_STORE_STAT
#define EDGE_STORE_STAT(field, kind, group, key, family, label, value, help)
#endif
#ifndef EDGE_VARIANT_STAT
#define EDGE_VARIANT_STAT(field, kind, group, key, family, label, value, help)
#endif
#ifndef EDGE_BUS_STAT
#define EDGE_BUS_STAT(field, kind, group, key, family, label, value, help)
#endif
#ifndef EDGE_BUS_HIST
#define EDGE_BUS_HIST(key, family, help)
#endif
#ifndef EDGE_NODE_STAT
#define EDGE_NODE_STAT(field, kind, group, key, family, label, value, help)
#endif
#ifndef EDGE_PROCESS_STAT
#define EDGE_PROCESS_STAT(field, kind, family, help)
#endif
#ifndef EDGE_SITE_COUNTER
#define EDGE_SITE_COUNTER(field, key, family, help)
#endif
#ifndef EDGE_POOL_STAT
#define EDGE_POOL_STAT(field, kind, key, family, help)
#endif
#ifndef EDGE_SERVER_STAT
#define EDGE_SERVER_STAT(field, kind, key, family, help)
#endif
#ifndef EDGE_ORIGIN_STAT
#define EDGE_ORIGIN_STAT(field, shape, key, family, help)
#endif
#ifndef EDGE_SNAP
#define EDGE_SNAP(name, expr)
#endif

EDGE_JGROUP(ROOT, NONE, NULL)
EDGE_JGROUP(CACHE, ROOT, "cache")
EDGE_JGROUP(STALE, CACHE, "stale")
EDGE_JGROUP(PURGES, CACHE, "purges")
EDGE_JGROUP(VARIANTS, CACHE, "variants")
EDGE_JGROUP(TLS, ROOT, "tls")
EDGE_JGROUP(PROTO, ROOT, "requests_by_protocol")
EDGE_JGROUP(H2, ROOT, "http2")
EDGE_JGROUP(H2_REFUSED, H2, "refused")
EDGE_JGROUP(BUS, ROOT, "bus")
EDGE_JGROUP(CONFIG, ROOT, "config")

EDGE_DIM(STATUS, "status", 6)
EDGE_DIM(METHOD, "method", EDGE_MC_COUNT)
EDGE_DIM(FROM, "from", EDGE_FROM_COUNT)
EDGE_DIM(KIND, "kind", ORIGIN_ERR_KINDS)
EDGE_DIM(BUCKET, "le", ORIGIN_LAT_BUCKETS)

EDGE_NODE_STAT(build_info, GAUGE, NONE, NULL, "edge_build_info", "version", PACKAGE_VERSION, "Always 1; the labels say which edged this is.")
EDGE_NODE_STAT(uptime_s, GAUGE, ROOT, "uptime_s", "edge_uptime_seconds", NULL, NULL, "Seconds since edged started.")
EDGE_NODE_STAT(uptime_ms, GAUGE, ROOT, "uptime_ms", NULL, NULL, NULL, "")
EDGE_NODE_STAT(workers, GAUGE, ROOT, "workers", "edge_workers", NULL, NULL, "Worker threads.")
EDGE_NODE_STAT(draining, FLAG, ROOT, "draining", "edge_draining", NULL, NULL, "1 while draining after SIGTERM (then /healthz answers 503).")
EDGE_NODE_STAT(cache_enabled, FLAG, CACHE, "enabled", NULL, NULL, NULL, "")
EDGE_NODE_STAT(config_generation, GAUGE, CONFIG, "generation", "edge_config_generation", NULL, NULL, "Configuration generation in force: 1 at start, +1 per accepted reload (SIGHUP).")
EDGE_NODE_STAT(config_loaded, GAUGE, CONFIG, "loaded_unix", "edge_config_loaded_timestamp_seconds", NULL, NULL, "When the configuration in force was loaded, Unix time.")
EDGE_NODE_STAT(config_reloads, COUNTER, CONFIG, "reloads", "edge_config_reloads_total", NULL, NULL, "Reloads (SIGHUP) accepted.")
EDGE_NODE_STAT(config_reloads_failed, COUNTER, CONFIG, "reloads_failed", "edge_config_reloads_failed_total", NULL, NULL, "Reloads refused (errors in the configuration, a pool or a certificate): the previous configuration stayed in force.")
EDGE_NODE_STAT(cache_disabled, FLAG, NONE, NULL, "edge_cache_disabled", NULL, NULL, "1 when cache_dir is set but the node runs proxy-only (the cache could not be opened, or was found damaged; /healthz says why).")

EDGE_PROCESS_STAT(cpu_ms, MS_TOTAL, "process_cpu_seconds_total", "User and system CPU time edged has used, in seconds.")
EDGE_PROCESS_STAT(rss_bytes, GAUGE, "process_resident_memory_bytes", "Resident memory size in bytes.")
EDGE_PROCESS_STAT(vm_bytes, GAUGE, "process_virtual_memory_bytes", "Virtual memory size in bytes (the LMDB map counts in full).")
EDGE_PROCESS_STAT(open_fds, GAUGE, "process_open_fds", "Open file descriptors.")
EDGE_PROCESS_STAT(max_fds, GAUGE, "process_max_fds", "The limit on open file descriptors (RLIMIT_NOFILE, soft).")
EDGE_PROCESS_STAT(start_ms, MS, "process_start_time_seconds", "When edged started, Unix time in seconds.")

EDGE_COUNTER(requests, COUNTER, ROOT, "requests", NULL, NULL, NULL, "") /* client requests ended */
EDGE_COUNTER_VEC(status, EDGE_D1(STATUS), 1, ROOT, "responses", NULL, NULL, NULL, "") /* [0]: none */
EDGE_COUNTER_VEC(req_class, EDGE_D2(METHOD, STATUS), 0, ROOT, "requests_by_method", "edge_requests_total", "site", "default", "Client requests on the public listeners, by site, method class and status class (none: the client left before a response).")
EDGE_COUNTER(client_aborts, COUNTER, ROOT, "client_aborts", "edge_client_aborts_total", NULL, NULL, "Requests whose client left (or whose response was cut) before the end.")
EDGE_COUNTER(bad_requests, COUNTER, ROOT, "bad_requests", "edge_bad_requests_total", NULL, NULL, "Requests the HTTP layer refused (malformed, over a limit).")
EDGE_COUNTER(unknown_host, COUNTER, ROOT, "unknown_host", "edge_unknown_host_total", NULL, NULL, "Requests answered 421: no site for their Host and no default.")
EDGE_COUNTER(loop_detected, COUNTER, ROOT, "loop_detected", "edge_loop_detected_total", NULL, NULL, "Requests answered 508: their CDN-Loop already named this node.")
EDGE_COUNTER(origin_fetches, COUNTER, ROOT, "origin_fetches", NULL, NULL, NULL, "")
EDGE_COUNTER(origin_errors, COUNTER, ROOT, "origin_errors", NULL, NULL, NULL, "")
EDGE_COUNTER(origin_timeouts, COUNTER, ROOT, "origin_timeouts", NULL, NULL, NULL, "")
EDGE_COUNTER_VEC(origin_err_kind, EDGE_D1(KIND), 1, NONE, NULL, NULL, NULL, NULL, "") /* [0] unused */
/* Time to the origin's response head (edge_stats_origin_head()). */
EDGE_COUNTER_VEC(origin_hist, EDGE_D1(BUCKET), 0, NONE, NULL, NULL, NULL, NULL, "")
EDGE_COUNTER(origin_hist_sum_us, COUNTER, NONE, NULL, NULL, NULL, NULL, "")
EDGE_COUNTER(bytes_sent, COUNTER, ROOT, "bytes_sent", NULL, NULL, NULL, "")
EDGE_COUNTER_VEC(bytes_from, EDGE_D1(FROM), 0, ROOT, "response_bytes", "edge_response_bytes_total", NULL, NULL, "Bytes sent to clients (heads and bodies), by where the response came from: cache, origin, or edge (the node's own answers).")
EDGE_COUNTER(conns_accepted, COUNTER, ROOT, "connections_accepted", "edge_connections_accepted_total", NULL, NULL, "Client connections accepted on the public listeners.")
EDGE_COUNTER(conns_open, GAUGE, ROOT, "connections_open", "edge_connections_open", NULL, NULL, "Open client connections on the public listeners.")
EDGE_COUNTER(worker_yields, COUNTER, ROOT, "worker_yields", "edge_worker_yields_total", NULL, NULL, "Times a worker handed its CPU to another worker waiting for it (edge_worker.c: worker_loop).")
EDGE_COUNTER(tls_handshakes, COUNTER, TLS, "handshakes", "edge_tls_handshakes_total", "result", "full", "TLS handshakes on the public listeners, by result: full, resumed (ticket or session cache), error, timeout, aborted.")
EDGE_COUNTER(tls_resumed, COUNTER, TLS, "resumed", "edge_tls_handshakes_total", "result", "resumed", "")
EDGE_COUNTER(tls_handshake_errors, COUNTER, TLS, "handshake_errors", "edge_tls_handshakes_total", "result", "error", "") /* garbage, old protocol */
EDGE_COUNTER(tls_handshake_timeouts, COUNTER, TLS, "handshake_timeouts", "edge_tls_handshakes_total", "result", "timeout", "")
EDGE_COUNTER(tls_handshake_aborts, COUNTER, TLS, "handshake_aborts", "edge_tls_handshakes_total", "result", "aborted", "") /* closed mid-handshake */
EDGE_COUNTER(requests_h1, COUNTER, PROTO, "http1", "edge_requests_by_protocol_total", "protocol", "HTTP/1.1", "Client requests ended, by protocol: HTTP/1.1 (HTTP/1.0 included) and HTTP/2.")
EDGE_COUNTER(requests_h2, COUNTER, PROTO, "http2", "edge_requests_by_protocol_total", "protocol", "HTTP/2", "")
EDGE_COUNTER(h2_conns, COUNTER, H2, "connections", "edge_h2_connections_total", NULL, NULL, "Client connections that spoke HTTP/2 (ALPN h2 on listen_tls, or listen_h2c).")
EDGE_COUNTER(h2_conns_open, GAUGE, H2, "connections_open", "edge_h2_connections_open", NULL, NULL, "Open HTTP/2 client connections.")
EDGE_COUNTER(h2_streams, COUNTER, H2, "streams", "edge_h2_streams_total", NULL, NULL, "HTTP/2 streams (requests) clients opened.")
EDGE_COUNTER(h2_concurrent_streams, COUNTER, H2_REFUSED, "concurrent_streams", "edge_h2_refused_total", "reason", "concurrent_streams", "HTTP/2 streams and connections refused, by reason (docs/metrics.md lists each reason's RST_STREAM or GOAWAY).")
EDGE_COUNTER(h2_header_list, COUNTER, H2_REFUSED, "header_list", "edge_h2_refused_total", "reason", "header_list", "")
EDGE_COUNTER(h2_hpack, COUNTER, H2_REFUSED, "hpack", "edge_h2_refused_total", "reason", "hpack", "")
EDGE_COUNTER(h2_rapid_reset, COUNTER, H2_REFUSED, "rapid_reset", "edge_h2_refused_total", "reason", "rapid_reset", "")
EDGE_COUNTER(h2_continuation_flood, COUNTER, H2_REFUSED, "continuation_flood", "edge_h2_refused_total", "reason", "continuation_flood", "")
EDGE_COUNTER(h2_settings_flood, COUNTER, H2_REFUSED, "settings_flood", "edge_h2_refused_total", "reason", "settings_flood", "")
EDGE_COUNTER(h2_ping_flood, COUNTER, H2_REFUSED, "ping_flood", "edge_h2_refused_total", "reason", "ping_flood", "")
EDGE_COUNTER(h2_priority_flood, COUNTER, H2_REFUSED, "priority_flood", "edge_h2_refused_total", "reason", "priority_flood", "")
EDGE_COUNTER(h2_empty_data, COUNTER, H2_REFUSED, "empty_data", "edge_h2_refused_total", "reason", "empty_data", "")
EDGE_COUNTER(h2_ack_flood, COUNTER, H2_REFUSED, "ack_flood", "edge_h2_refused_total", "reason", "ack_flood", "")
EDGE_COUNTER(h2_slow_read, COUNTER, H2_REFUSED, "slow_read", "edge_h2_refused_total", "reason", "slow_read", "")
EDGE_COUNTER(h2_bad_header, COUNTER, H2_REFUSED, "bad_header", "edge_h2_refused_total", "reason", "bad_header", "")
EDGE_COUNTER(h2_content_length, COUNTER, H2_REFUSED, "content_length", "edge_h2_refused_total", "reason", "content_length", "")
EDGE_COUNTER(h2_body_size, COUNTER, H2_REFUSED, "body_size", "edge_h2_refused_total", "reason", "body_size", "")
EDGE_COUNTER(h2_protocol, COUNTER, H2_REFUSED, "protocol", "edge_h2_refused_total", "reason", "protocol", "")
EDGE_COUNTER(cache_hits_memory, COUNTER, CACHE, "hits_memory", "edge_cache_hits_total", "tier", "memory", "Requests answered from a fresh stored response, by the tier it came from.")
EDGE_COUNTER(cache_hits_disk, COUNTER, CACHE, "hits_disk", "edge_cache_hits_total", "tier", "disk", "")
EDGE_COUNTER(cache_misses, COUNTER, CACHE, "misses", "edge_cache_misses_total", NULL, NULL, "Cacheable requests with no usable stored response (URL or Vary variant not stored, or the request refused the stored one).")
EDGE_COUNTER(cache_revalidations, COUNTER, CACHE, "revalidations", "edge_cache_stale_total", "reason", "revalidate", "Requests that found a stored response past its lifetime, by what was done: revalidate (asked the origin first), stale_while_revalidate (served it, refreshed behind), stale_if_error (served it as the origin failed).")
EDGE_COUNTER(cache_stale_while_revalidate, COUNTER, STALE, "stale_while_revalidate", "edge_cache_stale_total", "reason", "stale_while_revalidate", "")
EDGE_COUNTER(cache_stale_if_error, COUNTER, STALE, "stale_if_error", "edge_cache_stale_total", "reason", "stale_if_error", "")
EDGE_COUNTER_ALIAS(cache_revalidations, STALE, "revalidate")
EDGE_COUNTER(cache_disk_streams, COUNTER, CACHE, "disk_streams", "edge_cache_disk_streams_total", NULL, NULL, "Hits on objects too large for the memory tier whose bodies were read from disk chunk by chunk as the client took them.")
EDGE_COUNTER(cache_disk_cuts, COUNTER, CACHE, "disk_stream_cuts", "edge_cache_disk_stream_cuts_total", NULL, NULL, "Such bodies cut short: the stored object was purged or removed meanwhile, or a chunk failed its checksum or could not be read.")
EDGE_COUNTER(cache_not_modified, COUNTER, CACHE, "not_modified", "edge_cache_not_modified_total", NULL, NULL, "Revalidations the origin answered with 304 (the stored body was sent).")
EDGE_COUNTER(cache_bypass, COUNTER, CACHE, "bypass", "edge_cache_bypass_total", NULL, NULL, "Requests that did not use the cache (method, cache_bypass prefix, key too long, or no cache_dir).")
EDGE_COUNTER(cache_stores, COUNTER, CACHE, "stores", "edge_cache_stores_total", NULL, NULL, "Responses handed to the store.")
EDGE_COUNTER(cache_invalidations, COUNTER, CACHE, "invalidations", "edge_cache_invalidations_total", NULL, NULL, "Stored URLs invalidated by successful unsafe requests.")
EDGE_COUNTER(cache_collapsed, COUNTER, CACHE, "coalesced", "edge_coalesced_total", NULL, NULL, "Misses that waited on another request's origin fetch instead of making their own.")
EDGE_COUNTER(cache_collapse_released, COUNTER, CACHE, "coalesce_released", "edge_coalesce_released_total", NULL, NULL, "Waiting misses sent to fetch on their own (the response could not be shared, or had a Vary they did not match).")
EDGE_COUNTER(cache_hit_for_miss, COUNTER, CACHE, "hit_for_miss", "edge_hit_for_miss_total", NULL, NULL, "Shared fetches whose response could not be stored: the URL became hit-for-miss for cache_hit_for_miss.")
EDGE_COUNTER(cache_hit_for_miss_used, COUNTER, CACHE, "hit_for_miss_misses", "edge_hit_for_miss_misses_total", NULL, NULL, "Misses that went to the origin on their own because their URL was hit-for-miss.")
EDGE_COUNTER(bus_field_behind, COUNTER, CACHE, "bus_behind", "edge_bus_applied_field_total", "result", "behind", "Requests that carried Edge-Bus-Applied, by what was done: behind (from fleet_allow, after this node's applied bus entry: a miss, nothing stored served), current (honoured, not after ours), ignored (outside fleet_allow, unparsable or repeated).")
EDGE_COUNTER(bus_field_current, COUNTER, CACHE, "bus_current", "edge_bus_applied_field_total", "result", "current", "")
EDGE_COUNTER(bus_field_ignored, COUNTER, CACHE, "bus_ignored", "edge_bus_applied_field_total", "result", "ignored", "")
EDGE_COUNTER(bus_hits_offline, COUNTER, BUS, "hits_offline", "edge_bus_hits_total", "result", "offline", "Cache hits the bus decided on: offline (served while the node could not prove it had every purge, purge_bus_offline serve), revalidated (asked the origin first instead).")
EDGE_COUNTER(bus_hits_revalidated, COUNTER, BUS, "hits_revalidated", "edge_bus_hits_total", "result", "revalidated", "")

EDGE_STORE_STAT(objects, GAUGE, CACHE, "objects", "edge_cache_objects", NULL, NULL, "Objects in the disk store (LMDB).")
EDGE_STORE_STAT(bytes, GAUGE, CACHE, "bytes", "edge_cache_bytes", NULL, NULL, "Accounted bytes of the objects in the disk store.")
EDGE_STORE_STAT(mem_objects, GAUGE, CACHE, "memory_objects", "edge_cache_memory_objects", NULL, NULL, "Objects in the memory tier.")
EDGE_STORE_STAT(mem_bytes, GAUGE, CACHE, "memory_bytes", "edge_cache_memory_bytes", NULL, NULL, "Bytes of the objects in the memory tier.")
EDGE_STORE_STAT(mem_slab_bytes, GAUGE, CACHE, "memory_slab_bytes", "edge_cache_memory_slab_bytes", NULL, NULL, "Bytes the memory tier's size classes hold for its objects (heads, bodies up to 16 KiB, entries): their runs of 64 KiB in use, and the empty ones each class keeps (two, or an eighth of its runs); runs wholly freed beyond those are given back to the system.")
EDGE_STORE_STAT(mem_slab_given_back, COUNTER, CACHE, "memory_slab_given_back_bytes", "edge_cache_memory_slab_given_back_bytes_total", NULL, NULL, "Bytes of the memory tier's runs given back to the system once wholly free (MADV_DONTNEED). Steady growth with a steady edge_cache_memory_slab_bytes means a class keeps taking and giving back runs.")
EDGE_STORE_STAT(sealed_bodies, GAUGE, CACHE, "sealed_bodies", "edge_cache_sealed_bodies", NULL, NULL, "Bodies of 64 KiB or more held in sealed memory files, which plain HTTP/1.1 hits send with sendfile: in the memory tier, or evicted but still being sent. Each holds a file descriptor.")
EDGE_STORE_STAT(sealed_bytes, GAUGE, CACHE, "sealed_bytes", "edge_cache_sealed_bytes", NULL, NULL, "Bytes (whole pages) of those sealed bodies: shared memory, counted in edge_cache_memory_bytes while in the memory tier, but in a process's PSS only once read through its mapping.")
EDGE_STORE_STAT(disk_budget, GAUGE, CACHE, "budget_bytes", "edge_cache_budget_bytes", "tier", "disk", "The budget of each tier, in bytes: disk (cache_size, the LMDB map; eviction keeps edge_cache_bytes under its high-water mark, 90%), memory (memory_size).")
EDGE_STORE_STAT(mem_budget, GAUGE, CACHE, "memory_budget_bytes", "edge_cache_budget_bytes", "tier", "memory", "")
EDGE_STORE_STAT(disk_high, GAUGE, CACHE, "high_water_bytes", NULL, NULL, NULL, "")
EDGE_STORE_STAT(evictions, COUNTER, CACHE, "evictions", "edge_cache_evictions_total", "tier", "disk", "Objects evicted to stay within budget, by tier (an object evicted from memory is still on disk).")
EDGE_STORE_STAT(mem_evictions, COUNTER, CACHE, "memory_evictions", "edge_cache_evictions_total", "tier", "memory", "")
EDGE_STORE_STAT(puts, COUNTER, CACHE, "puts", "edge_cache_writes_total", "result", "stored", "Objects the writer thread stored, or dropped (queue full, map full).")
EDGE_STORE_STAT(put_drops, COUNTER, CACHE, "put_drops", "edge_cache_writes_total", "result", "dropped", "")
EDGE_STORE_STAT(map_full, COUNTER, CACHE, "map_full", NULL, NULL, NULL, "")
EDGE_STORE_STAT(corrupt, COUNTER, CACHE, "corrupt", "edge_cache_corrupt_total", NULL, NULL, "Stored records that failed their checks (treated as misses).")
EDGE_STORE_STAT(io_errors, COUNTER, CACHE, "io_errors", "edge_cache_io_errors_total", NULL, NULL, "LMDB failures other than a full map (logged once per episode).")
EDGE_STORE_STAT(purged_hard, COUNTER, PURGES, "hard", "edge_cache_purged_lookups_total", "type", "hard", "Cache lookups that found their object purged, by type of purge: hard (a miss), soft (served only as stale). Not the purges received: purged answers those.")
EDGE_STORE_STAT(purged_soft, COUNTER, PURGES, "soft", "edge_cache_purged_lookups_total", "type", "soft", "")
EDGE_STORE_STAT(purge_seq, GAUGE, PURGES, "seq", NULL, NULL, NULL, "") /* newest purge seen */

EDGE_BUS_STAT(state, GAUGE, NONE, NULL, "edge_bus_state", NULL, NULL, "The bus reader's state: 0 none, 1 starting, 2 catching up, 3 current, 4 disconnected.")
EDGE_BUS_STAT(verdict, GAUGE, NONE, NULL, "edge_bus_verdict", NULL, NULL, "What cache hits do now: 0 serve, 1 revalidate, 2 serve offline.")
EDGE_BUS_STAT(heartbeat_age_ms, MS, BUS, "heartbeat_age_ms", "edge_bus_heartbeat_age_seconds", NULL, NULL, "Seconds since the bus reader's last heartbeat.")
EDGE_BUS_STAT(lag_entries, GAUGE, BUS, "lag_entries", "edge_bus_lag_entries", NULL, NULL, "Stream entries this node has not applied yet.")
EDGE_BUS_STAT(lag_ms, MS, BUS, "lag_ms", "edge_bus_lag_seconds", NULL, NULL, "How far behind the stream's newest entry this node is, in seconds.")
EDGE_BUS_STAT(applied, COUNTER, BUS, "applied", "edge_bus_applied_total", NULL, NULL, "Purges applied from the bus.")
EDGE_BUS_STAT(published, COUNTER, BUS, "published", "edge_bus_published_total", NULL, NULL, "Purges this node published to the bus.")
EDGE_BUS_STAT(gaps, COUNTER, BUS, "gaps", "edge_bus_gaps_total", NULL, NULL, "Trimmed stretches of the stream this node missed: everything stored before was soft-purged.")
EDGE_BUS_STAT(reconnects, COUNTER, BUS, "reconnects", "edge_bus_reconnects_total", NULL, NULL, "Connections to the bus made again after one was lost.")
EDGE_BUS_STAT(malformed, COUNTER, BUS, "malformed", "edge_bus_malformed_total", NULL, NULL, "Stream entries skipped as unreadable.")
EDGE_BUS_HIST("apply_latency", "edge_bus_apply_latency_seconds", "Time from a purge's publication (its stream ID) to its application on this node.")

EDGE_VARIANT_STAT(made, COUNTER, VARIANTS, "made", "edge_cache_variants_total", "result", "made", "Content-coding variants: made (gzip/br stored), not_smaller (not kept), dropped (compression queue full), decoded (identity copies of origin-coded responses), bomb (decodes stopped at the caps), not_acceptable (406).")
EDGE_VARIANT_STAT(not_smaller, COUNTER, VARIANTS, "not_smaller", "edge_cache_variants_total", "result", "not_smaller", "")
EDGE_VARIANT_STAT(dropped, COUNTER, VARIANTS, "dropped", "edge_cache_variants_total", "result", "dropped", "")
EDGE_VARIANT_STAT(decoded, COUNTER, VARIANTS, "decoded", "edge_cache_variants_total", "result", "decoded", "")
EDGE_VARIANT_STAT(bombs, COUNTER, VARIANTS, "bombs", "edge_cache_variants_total", "result", "bomb", "")
EDGE_VARIANT_STAT(not_acceptable, COUNTER, VARIANTS, "not_acceptable", "edge_cache_variants_total", "result", "not_acceptable", "")
EDGE_VARIANT_STAT(superseded, COUNTER, VARIANTS, "superseded", NULL, NULL, NULL, "")
EDGE_VARIANT_STAT(partial_reads, COUNTER, VARIANTS, "partial_reads", NULL, NULL, NULL, "")
EDGE_VARIANT_STAT(in_bytes, COUNTER, VARIANTS, "in_bytes", NULL, NULL, NULL, "")
EDGE_VARIANT_STAT(out_bytes, COUNTER, VARIANTS, "out_bytes", NULL, NULL, NULL, "")
EDGE_VARIANT_STAT(busy_ms, COUNTER, VARIANTS, "busy_ms", NULL, NULL, NULL, "")

EDGE_SITE_COUNTER(requests, "requests", "edge_site_requests_total", "Client requests routed to each site by Host.")
EDGE_SITE_COUNTER(hits, "hits", "edge_site_cache_hits_total", "Fresh cache hits of each site.") /* any tier */

EDGE_POOL_STAT(retries, COUNTER, "retries", "edge_origin_retries_total", "Fetches sent to a second server of the pool after a connect failure.")

EDGE_SERVER_STAT(up, FLAG, "up", "edge_origin_server_up", "1 if the server gets new requests: its health checks pass and it is not cooling down after failures.")
EDGE_SERVER_STAT(hc_healthy, FLAG, "healthy", "edge_origin_server_healthy", "The active health checks' verdict (1 without checks).")
EDGE_SERVER_STAT(cooling, FLAG, "cooling_down", NULL, "")
EDGE_SERVER_STAT(active, GAUGE, "active", "edge_origin_server_active", "Fetches in flight to the server, over all workers.")
EDGE_SERVER_STAT(fetches, COUNTER, "fetches", "edge_origin_server_fetches_total", "Attempts sent to the server (a retry counts on both servers).")
EDGE_SERVER_STAT(failures, COUNTER, "failures", "edge_origin_server_failures_total", "Attempts the server did not answer (connect, timeout, reset before the head).")

EDGE_ORIGIN_STAT(requests, COUNT, "requests", "edge_origin_requests_total", "Requests sent to origin servers, by pool and server (the server of the last attempt; empty: none was up).")
EDGE_ORIGIN_STAT(errors, KINDS, "errors", "edge_origin_errors_total", "Origin fetches that failed, by pool, server and kind (connect, connect_timeout, tls_timeout, first_byte_timeout, idle_timeout, reset, protocol, internal, tls, no_healthy_server).")
EDGE_ORIGIN_STAT(head_us, HIST, "duration", "edge_origin_duration_seconds", "Time from sending a request to an origin to its response head (fixed buckets, summed over workers).")

EDGE_SNAP(requests, t->requests)
EDGE_SNAP(hits, t->cache_hits_memory + t->cache_hits_disk)
EDGE_SNAP(misses, t->cache_misses)
EDGE_SNAP(stale, t->cache_revalidations)
EDGE_SNAP(bypass, t->cache_bypass)
EDGE_SNAP(bytes_cache, t->bytes_from[EDGE_FROM_CACHE])
EDGE_SNAP(bytes_origin, t->bytes_from[EDGE_FROM_ORIGIN])
EDGE_SNAP(bytes_edge, t->bytes_from[EDGE_FROM_EDGE])
EDGE_SNAP(origin_requests, t->origin_fetches)
EDGE_SNAP(origin_errors, t->origin_errors)
EDGE_SNAP(requests_http1, t->requests_h1)
EDGE_SNAP(requests_http2, t->requests_h2)

#undef EDGE_JGROUP
#undef EDGE_DIM
#undef EDGE_COUNTER
#undef EDGE_COUNTER_VEC
#undef EDGE_COUNTER_ALIAS
#undef EDGE_STORE_STAT
#undef EDGE_VARIANT_STAT
#undef EDGE_BUS_STAT
#undef EDGE_BUS_HIST
#undef EDGE_NODE_STAT
#undef EDGE_PROCESS_STAT
#undef EDGE_SITE_COUNTER
#undef EDGE_POOL_STAT
#undef EDGE_SERVER_STAT
#undef EDGE_ORIGIN_STAT
#undef EDGE_SNAP
/* clang-format on */
