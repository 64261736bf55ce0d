/*
 * Every edged directive, once.  Included with CONF_KEY defined:
 *   CONF_KEY(name, type, min, max, default, doc)
 * name     the config-file directive and the struct conf field; the flag is
 *          --name with '_' written '-' (cache_dir: --cache-dir)
 * type     STR, STRLIST (repeatable), ADDR (HOST:PORT), ADDRLIST (repeatable
 *          HOST:PORT), URL (http:// or https://), SIZE (bytes; K, M, G, T
 *          suffixes of 1024), UINT, DURATION (stored in ms; units ms, s, m,
 *          h, d required), LOGLEVEL (err, warn, info, debug), SNICERT
 *          (repeatable "NAME CERTFILE KEYFILE [OCSPFILE]", see
 *          conf_parse_sni_cert()), TOKENS (repeatable tokens, several to a
 *          line: field names, methods)
 * min/max  bounds for SIZE, UINT and DURATION in bytes, units or ms
 * default  a string parsed by the same code as a file value ("" for none)
 * doc      one line for --help and --dump-config
 *
 * CONF_SITE_KEY (same columns) marks a directive that a site block may set
 * too (conf.h, struct conf_site): its top-level value is the default every
 * site inherits.  Marking a row is all it takes; includers that do not care
 * about scope define only CONF_KEY and get every row from it.
 *
 * CONF_RESTART_KEY (same columns) marks a directive that SIGHUP does not
 * change: listeners, threads, the store, the logs, the HTTP limits, the
 * compression pool, purged's bus.  A reload that changes one logs that it
 * takes effect on restart (conf_restart_changed()) and applies the rest.
 * Every other row is reloaded.
 */
/* clang-format off */
#ifndef CONF_SITE_KEY
#define CONF_SITE_KEY(name, type, min, max, def, doc) CONF_KEY(name, type, min, max, def, doc)
#define CONF_SITE_KEY_IS_CONF_KEY
#endif
#ifndef CONF_RESTART_KEY
#define CONF_RESTART_KEY(name, type, min, max, def, doc) CONF_KEY(name, type, min, max, def, doc)
#define CONF_RESTART_KEY_IS_CONF_KEY
#endif
CONF_RESTART_KEY(listen, ADDRLIST, 0, 0, "", "address to serve HTTP on, HOST:PORT (repeatable)")
CONF_RESTART_KEY(listen_tls, ADDRLIST, 0, 0, "", "address to serve HTTPS on, HOST:PORT (repeatable; needs tls_cert)")
CONF_RESTART_KEY(listen_h2c, ADDRLIST, 0, 0, "", "address to serve HTTP/2 on without TLS, by prior knowledge (for a load balancer in front), HOST:PORT (repeatable)")
CONF_RESTART_KEY(listen_defer_accept, DURATION, 0, 60000, "0", "accept a connection on listen and listen_tls only once its first bytes arrive, waiting up to this long, in whole seconds (TCP_DEFER_ACCEPT; 0: off); see docs/operations.md")
CONF_RESTART_KEY(tls_alpn, STR, 0, 0, "h2,http/1.1", "protocols listen_tls offers by ALPN, in the server's order: h2 and http/1.1, comma-separated")
CONF_RESTART_KEY(h2_max_concurrent_streams, UINT, 1, 10000, "100", "HTTP/2 streams a client may have open at once on one connection (more are refused)")
CONF_SITE_KEY(origin, URL, 0, 0, "", "origin server URL, http://host[:port] (one server; see origin_server for a pool)")
CONF_SITE_KEY(origin_server, ORIGINSRV, 0, 0, "", "\"URL [weight=N] [max_conns=N] [backup]\": one server of the origin pool; when given, origin is not used (repeatable)")
CONF_SITE_KEY(origin_balance, STR, 0, 0, "round-robin", "how the pool picks a server: round-robin, weighted, least-conn or consistent-hash (by cache key)")
CONF_SITE_KEY(origin_tls_name, STR, 0, 0, "", "name https servers are verified against and sent as SNI, while connecting to their address (empty: the URL's host)")
CONF_SITE_KEY(origin_max_fails, UINT, 0, 1000, "3", "failures in a row (connect, timeout, reset) that take a server out for origin_fail_timeout (0: never)")
CONF_SITE_KEY(origin_fail_timeout, DURATION, 100, 3600000, "10s", "how long a failing server is left out")
CONF_KEY(refuse_methods, TOKENS, 0, 0, "TRACE CONNECT PURGE", "methods answered 501 at the edge, never forwarded (PURGE: 405, pointing at the purge listener; repeatable, several to a line; CONNECT always is)")
CONF_SITE_KEY(origin_drop_fields, TOKENS, 0, 0, "", "request fields never sent to the origin, besides those docs/origin-request.md lists (repeatable, several names to a line)")
CONF_SITE_KEY(origin_pass_fields, TOKENS, 0, 0, "", "unkeyed request fields dropped by default (X-Forwarded-Host, Forwarded, ...) that this site's origin gets after all (repeatable, several names to a line)")
CONF_SITE_KEY(origin_host, STR, 0, 0, "", "Host header sent to the origin (empty: the client's)")
CONF_SITE_KEY(parent_server, ORIGINSRV, 0, 0, "", "\"URL [weight=N] [max_conns=N] [backup]\": a parent edged (shield) misses are filled from, picked by consistent hash of the cache key; the origin when none is up (repeatable)")
CONF_SITE_KEY(parent_only, UINT, 0, 1, "0", "1: misses never go to the origin itself: 502, 503 or 504 when no parent answers")
CONF_RESTART_KEY(origin_ca_file, STR, 0, 0, "", "CA certificates (PEM) that verify an https origin (empty: the system store)")
CONF_RESTART_KEY(origin_client_cert, STR, 0, 0, "", "client certificate (PEM) shown to an https origin (empty: none)")
CONF_RESTART_KEY(origin_client_key, STR, 0, 0, "", "private key of origin_client_cert, PEM (empty: in that file)")
CONF_SITE_KEY(origin_total_timeout, DURATION, 0, 86400000, "0", "time for a whole origin transfer, per attempt (0: none)")
CONF_SITE_KEY(health_check_path, STR, 0, 0, "", "path each pool server is asked for by active health checks (empty: no active checks)")
CONF_SITE_KEY(health_check_interval, DURATION, 100, 3600000, "5s", "time between two health checks of a server")
CONF_SITE_KEY(health_check_timeout, DURATION, 10, 600000, "2s", "time a health check may take")
CONF_SITE_KEY(health_check_rise, UINT, 1, 100, "2", "successful checks in a row that bring a server back")
CONF_SITE_KEY(health_check_fall, UINT, 1, 100, "3", "failed checks in a row that take a server out")
CONF_SITE_KEY(health_check_status, UINT, 0, 599, "0", "status a healthy server answers (0: any 2xx or 3xx)")
CONF_KEY(default_site, STR, 0, 0, "", "host name of the site that answers requests no site names (empty: those get 421)")
CONF_KEY(tls_cert, STR, 0, 0, "", "default certificate chain of listen_tls, PEM, leaf first")
CONF_KEY(tls_key, STR, 0, 0, "", "private key of tls_cert, PEM (empty: in the tls_cert file)")
CONF_KEY(tls_ocsp_file, STR, 0, 0, "", "OCSP response (DER) stapled to tls_cert (empty: none)")
CONF_KEY(tls_sni_cert, SNICERT, 0, 0, "", "\"NAME CERTFILE KEYFILE [OCSPFILE]\": the certificate for SNI NAME, exact or *.wildcard (repeatable)")
CONF_RESTART_KEY(tls_ticket_rotate, DURATION, 0, 604800000, "1h", "session ticket key lifetime; a ticket is accepted for up to two (0: no tickets)")
CONF_KEY(tls_session_cache, UINT, 0, 10000000, "20480", "TLS sessions kept for resumption by session ID (0: none)")
CONF_RESTART_KEY(threads, UINT, 0, 256, "0", "worker threads (0: one per core)")
CONF_RESTART_KEY(admin_listen, ADDR, 0, 0, "", "address of the admin listener (/healthz, /stats, /metrics, /dashboard)")
CONF_RESTART_KEY(admin_allow, STRLIST, 0, 0, "loopback", "clients allowed on the admin listener: ADDRESS[/PREFIX] or loopback (repeatable)")
CONF_RESTART_KEY(admin_token_file, STR, 0, 0, "", "file holding the Bearer token the admin listener requires (empty: none)")
CONF_RESTART_KEY(cache_dir, STR, 0, 0, "", "cache directory, an LMDB environment (empty: no cache)")
CONF_RESTART_KEY(cache_size, SIZE, 1048576, UINT64_C(1) << 44, "1G", "disk cache budget (the LMDB map size)")
CONF_RESTART_KEY(cache_preallocate, UINT, 0, 1, "0", "1: reserve all of cache_size on disk at start, not as the store grows (it is written through its memory map either way); see docs/operations.md")
CONF_RESTART_KEY(memory_size, SIZE, 0, UINT64_C(1) << 40, "256M", "memory tier budget")
CONF_RESTART_KEY(max_object_size, SIZE, 0, UINT64_C(1) << 40, "64M", "larger responses stream through uncached")
CONF_SITE_KEY(cache_default_ttl, DURATION, 0, UINT64_C(315360000000), "0", "lifetime of cacheable responses with no freshness information and no Last-Modified (0: not stored)")
CONF_SITE_KEY(cache_min_ttl, DURATION, 0, UINT64_C(315360000000), "0", "floor on explicit lifetimes")
CONF_SITE_KEY(cache_max_ttl, DURATION, 0, UINT64_C(315360000000), "365d", "ceiling on every lifetime (0: none)")
CONF_SITE_KEY(cache_heuristic_percent, UINT, 0, 100, "10", "heuristic lifetime, % of the time since Last-Modified")
CONF_SITE_KEY(cache_heuristic_max, DURATION, 0, UINT64_C(315360000000), "1d", "cap on heuristic lifetimes")
CONF_SITE_KEY(cache_query, STR, 0, 0, "keep", "query string in the cache key: keep, sort or drop")
CONF_SITE_KEY(cache_query_drop, STRLIST, 0, 0, "", "query parameter left out of the key, prefix* globs (repeatable)")
CONF_SITE_KEY(cache_query_keep, STRLIST, 0, 0, "", "if given, only these query parameters are in the key (repeatable)")
CONF_SITE_KEY(cache_bypass, STRLIST, 0, 0, "", "path prefix never cached (repeatable)")
CONF_SITE_KEY(cache_share_set_cookie, UINT, 0, 1, "0", "1: store responses that carry Set-Cookie")
CONF_SITE_KEY(cache_key_scheme, UINT, 0, 1, "0", "1: http and https requests have separate cache entries")
CONF_SITE_KEY(cache_grace, DURATION, 0, UINT64_C(315360000000), "0", "how long past its lifetime a response is served while one background request refreshes it (stale-while-revalidate for every response; never against must-revalidate or no-cache)")
CONF_SITE_KEY(cache_stale_if_error, DURATION, 0, UINT64_C(315360000000), "0", "how long past its lifetime a response is served when the origin fails (refused, timeout, 5xx); never against must-revalidate or no-cache")
CONF_SITE_KEY(cache_hit_for_miss, DURATION, 0, 86400000, "30s", "how long a key whose response could not be stored sends its misses to the origin one by one instead of queueing them behind one fetch (0: never)")
CONF_SITE_KEY(cache_targeted, UINT, 0, 1, "1", "1: obey CDN-Cache-Control and Surrogate-Control, and strip them")
CONF_KEY(log_level, LOGLEVEL, 0, 0, "info", "diagnostic log level: err, warn, info or debug")
CONF_RESTART_KEY(error_log, STR, 0, 0, "", "diagnostic log file (empty: stderr)")
CONF_RESTART_KEY(access_log, STR, 0, 0, "", "access log file (empty: none)")
CONF_RESTART_KEY(access_log_format, STR, 0, 0, "text", "access log lines: text (space-separated, quoted where a value may hold spaces) or json (one JSON object per line)")
CONF_RESTART_KEY(user, STR, 0, 0, "", "user to run as when started as root: the cache, logs and certificates are opened as this user, the listeners bound before its last privilege goes (empty: stay as started)")
CONF_RESTART_KEY(ready_file, STR, 0, 0, "", "file written once every listener is bound")
CONF_KEY(via, STR, 0, 0, "edged", "pseudonym in the Via header")
CONF_RESTART_KEY(node_name, STR, 0, 0, "", "this node's name in a fleet, a token unique among its nodes (empty: the host name)")
CONF_RESTART_KEY(max_connections, UINT, 1, 1000000, "10000", "client connections per worker thread")
CONF_RESTART_KEY(max_request_line, SIZE, 256, 1048576, "8K", "longest request line (414 beyond)")
CONF_RESTART_KEY(max_header_size, SIZE, 1024, 4194304, "32K", "largest request head (431 beyond)")
CONF_RESTART_KEY(max_headers, UINT, 8, 1000, "100", "most request header fields (431 beyond)")
CONF_RESTART_KEY(max_body_size, SIZE, 0, UINT64_C(1) << 40, "1G", "largest request body (413 beyond)")
CONF_RESTART_KEY(client_header_timeout, DURATION, 100, 3600000, "10s", "time to receive a request head")
CONF_RESTART_KEY(client_body_timeout, DURATION, 100, 3600000, "60s", "idle time allowed while receiving a body")
CONF_RESTART_KEY(keepalive_timeout, DURATION, 0, 3600000, "75s", "idle time of a keep-alive connection")
CONF_RESTART_KEY(send_timeout, DURATION, 100, 3600000, "60s", "idle time allowed while sending to a client")
CONF_SITE_KEY(origin_connect_timeout, DURATION, 10, 600000, "5s", "time to connect to the origin (504 beyond)")
CONF_SITE_KEY(origin_first_byte_timeout, DURATION, 10, 3600000, "30s", "time to the origin's response head (504 beyond)")
CONF_SITE_KEY(origin_idle_timeout, DURATION, 10, 3600000, "30s", "idle time within an origin response")
CONF_RESTART_KEY(drain_timeout, DURATION, 0, 3600000, "30s", "on SIGTERM, how long in-flight responses may finish")
CONF_RESTART_KEY(takeover_socket, STR, 0, 0, "", "unix socket through which edged --takeover receives this node's listeners (empty: edged.takeover in cache_dir; none without cache_dir)")
/* Compression variants and decoding limits (edge_variant.c, cache_variant.c). */
CONF_RESTART_KEY(compress_types, STRLIST, 0, 0, "", "media type given gzip/brotli variants, type/* and type/*+suffix globs (repeatable; unset: text/*, JavaScript, JSON, XML, SVG, wasm, fonts)")
CONF_RESTART_KEY(compress_min_size, SIZE, 0, UINT64_C(1) << 40, "1K", "smaller responses get no compressed variants")
CONF_RESTART_KEY(gzip_level, UINT, 0, 9, "6", "zlib level of gzip variants (0: none)")
CONF_RESTART_KEY(brotli_level, UINT, 0, 11, "5", "brotli quality of br variants (0: none)")
CONF_RESTART_KEY(compress_threads, UINT, 1, 64, "1", "threads that compress variants off the event loops")
CONF_RESTART_KEY(decompress_max_size, SIZE, 1024, UINT64_C(1) << 40, "64M", "largest identity copy decoded from a gzip/br response (a compression bomb stops here)")
CONF_RESTART_KEY(decompress_max_ratio, UINT, 0, 1000000, "200", "most output/input of a decoding above 1 MiB of output (0: no ratio cap)")
/* Purges (purged, edge_purged.c) and tags. */
CONF_RESTART_KEY(purge_listen, ADDR, 0, 0, "", "address of the purge API: edged runs purged there as a child (empty: none)")
CONF_KEY(purge_token_file, STR, 0, 0, "", "file holding the Bearer token every purge request needs (required with purge_listen)")
CONF_KEY(purge_allow, STRLIST, 0, 0, "loopback", "clients allowed to purge: ADDRESS[/PREFIX] or loopback (repeatable)")
CONF_KEY(purge_audit_log, STR, 0, 0, "", "purge audit log, one line per purge (empty: purge_audit.log in cache_dir)")
CONF_RESTART_KEY(purge_bus, STR, 0, 0, "", "purge bus, redis://[USER@]HOST:PORT[/STREAM] (stream edged:purges by default; empty: none)")
CONF_RESTART_KEY(purge_bus_password_file, STR, 0, 0, "", "file holding the purge bus's Redis password (empty: none)")
CONF_RESTART_KEY(purge_bus_grace, DURATION, 0, 3600000, "10s", "how long the purge bus may be out of reach before purge_bus_offline applies")
CONF_RESTART_KEY(purge_bus_offline, STR, 0, 0, "revalidate", "cache hits while the node cannot prove it has every purge: revalidate or serve")
CONF_RESTART_KEY(purge_bus_retention, UINT, 1000, 1000000000, "1000000", "entries the purge stream keeps (XADD MAXLEN ~); a node away for longer soft-purges everything it stored")
CONF_RESTART_KEY(fleet_allow, STRLIST, 0, 0, "loopback", "clients whose Edge-Bus-Applied is honoured (other fleet nodes): ADDRESS[/PREFIX] or loopback (repeatable)")
CONF_RESTART_KEY(cache_tag_fields, STR, 0, 0, "Surrogate-Key Cache-Tag", "origin response fields whose values tag stored objects for purges")
CONF_RESTART_KEY(surrogate_key_pass, UINT, 0, 1, "0", "1: pass Surrogate-Key on to clients (0: it is for this node only)")
/* clang-format on */
#ifdef CONF_SITE_KEY_IS_CONF_KEY
#undef CONF_SITE_KEY
#undef CONF_SITE_KEY_IS_CONF_KEY
#endif
#ifdef CONF_RESTART_KEY_IS_CONF_KEY
#undef CONF_RESTART_KEY
#undef CONF_RESTART_KEY_IS_CONF_KEY
#endif
