/*
 * The admin listener's handler: /healthz, /stats (JSON), /metrics
 * (Prometheus text exposition format 0.0.4) and /dashboard (one
 * self-contained HTML page, edge/dashboard.html), served on the main
 * thread.  The figures and the windows' ring of snapshots are
 * edge_stats.c's; docs/metrics.md documents every figure.
 *
 * Access: a client outside admin_allow gets 403; when admin_token_file is
 * set, a request without "Authorization: Bearer <token>" gets 401, except
 * /healthz, which load balancers probe without credentials, and /dashboard,
 * a page without data that asks for the token to read /stats.  Each refusal
 * is logged with the client's address, at most LOG_BURST lines a second.
 * The ACL, the token and the log throttle belong to the main thread alone:
 * no lock.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "edge/edge_dashboard.h"
#include "http/http_access.h"
#include "edge/edge_int.h"

#define HISTORY_MAX 900 /* rows /stats?history=N gives at most */
#define LOG_BURST   10  /* refusals logged per second */

struct edge_admin_ctx {
	struct http_acl acl;
	struct http_tokens tokens; /* none: no token required */
	uint64_t log_sec;          /* the log throttle's second and its count */
	unsigned log_n;
	uint64_t log_dropped;
};

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
	const char *p, *end;
	unsigned long v = 0;

	if (!req->has_query)
		return 0; /* and query.p may be NULL: no NULL + 0 */
	p = req->query.p;
	end = p + req->query.len;
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
	char *body = edge_stats_json(e, query_history(http_txn_request(txn)));

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
	char *body = edge_metrics_text(e, &len);

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

	CDN_ASSERT(e->admin_ctx == NULL && e->main_base != NULL);
	a = cdn_xcalloc(1, sizeof(*a));
	e->admin_ctx = a;
	if (acl_init(a, e->conf) != CDN_OK ||
	    token_init(a, e->conf->admin_token_file) != CDN_OK)
		return CDN_EINVAL;
	return edge_stats_init(e);
}

void
edge_admin_fini(struct edge *e)
{
	struct edge_admin_ctx *a = e->admin_ctx;

	edge_stats_fini(e);
	if (a == NULL)
		return;
	e->admin_ctx = NULL;
	http_acl_free(&a->acl);
	http_tokens_free(&a->tokens);
	free(a);
}
