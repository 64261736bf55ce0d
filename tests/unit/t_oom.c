/*
 * Unit tests for allocations whose size a client chooses, when memory runs
 * out: each fails its request rather than aborting the node (STYLE 2.4,
 * "out of memory ... by size class").  The test is linked with
 * --wrap=malloc,calloc,realloc, so that our code's allocations go through
 * the wrappers below, which fail the one chosen.  Covered:
 *   - the copy of a request head (http/http_server.c): 503 and a close;
 *   - a purge's item list and its key strings (purge/purge_items.c and
 *     purge/purge_api.c, included for its static functions): 503 from
 *     POST /purge;
 *   - an origin fetch's target and URL (origin/origin_fetch.c): no fetch.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "origin/origin.h"
/* purged's API is not in libedge.a: this is its only copy here. */
#include "purge/purge_api.c"
#include "purge/purge_bus.c"
#include "purge/purge_items.c"
#include "tests/unit/tap.h"

/* ---- failure injection ---- */

void *__real_malloc(size_t len);
void *__real_calloc(size_t n, size_t len);
void *__real_realloc(void *p, size_t len);
void *__wrap_malloc(size_t len);
void *__wrap_calloc(size_t n, size_t len);
void *__wrap_realloc(void *p, size_t len);

enum { FAIL_MALLOC = 1, FAIL_CALLOC = 2, FAIL_REALLOC = 4 };

static struct {
	unsigned kinds; /* armed for these calls; 0: off */
	size_t len;     /* only this size (0: any) */
	unsigned skip;  /* let this many matching calls through first */
	unsigned failed;
} inject;

/* Fail one later allocation: the (skip+1)-th of <kinds> asking <len>. */
static void
fail_next(unsigned kinds, size_t len, unsigned skip)
{
	inject.kinds = kinds;
	inject.len = len;
	inject.skip = skip;
	inject.failed = 0;
}

static int
inject_now(unsigned kind, size_t len)
{
	if (!(inject.kinds & kind) || (inject.len != 0 && len != inject.len))
		return 0;
	if (inject.skip > 0) {
		inject.skip--;
		return 0;
	}
	inject.kinds = 0;
	inject.failed++;
	return 1;
}

void *
__wrap_malloc(size_t len)
{
	return inject_now(FAIL_MALLOC, len) ? NULL : __real_malloc(len);
}

void *
__wrap_calloc(size_t n, size_t len)
{
	return inject_now(FAIL_CALLOC, n * len) ? NULL : __real_calloc(n, len);
}

void *
__wrap_realloc(void *p, size_t len)
{
	return inject_now(FAIL_REALLOC, len) ? NULL : __real_realloc(p, len);
}

/* ---- a server on loopback, driven by hand ---- */

struct rig {
	struct event_base *base;
	struct http_server *srv;
	int lfd;
	unsigned requests; /* seen by the echo handler */
};

static void
on_echo(struct http_txn *txn, void *arg)
{
	struct rig *r = arg;

	r->requests++;
	http_txn_simple(txn, 200, "text/plain", "ok\n", 3);
}

static const struct http_handler echo_handler = {.on_request = on_echo};

static void
rig_init(struct rig *r, const struct http_handler *h, void *arg)
{
	struct http_server_limits lim;
	struct sockaddr_in sin;

	memset(r, 0, sizeof(*r));
	memset(&lim, 0, sizeof(lim));
	lim.parse.max_request_line = 16384;
	lim.parse.max_header_bytes = 65536;
	lim.parse.max_headers = 100;
	lim.max_body_size = PURGE_MAX_BODY;
	lim.header_timeout_ms = 5000;
	lim.keepalive_timeout_ms = 5000;
	lim.body_timeout_ms = 5000;
	lim.send_timeout_ms = 5000;
	lim.max_connections = 16;
	r->base = event_base_new();
	r->srv = http_server_new(r->base, &lim, h, arg != NULL ? arg : r);
	r->lfd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(r->lfd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(r->lfd, 4) == -1)
		printf("# bind/listen: %s\n", strerror(errno));
}

static void
rig_fini(struct rig *r)
{
	http_server_free(&r->srv);
	event_base_free(r->base);
	close(r->lfd);
}

/*
 * Send <req> on a new connection and run the server until the response is
 * complete (the server closes) or 2 s pass.  The response is in out.
 */
static void
rig_exchange(struct rig *r, const char *req, size_t len, char *out, size_t cap)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	size_t got = 0;
	ssize_t n;
	int cfd, sfd;

	out[0] = '\0';
	getsockname(r->lfd, (struct sockaddr *)&sin, &sl);
	cfd = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(cfd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
		printf("# connect: %s\n", strerror(errno));
		close(cfd);
		return;
	}
	sl = sizeof(sin);
	sfd = accept4(r->lfd, (struct sockaddr *)&sin, &sl, SOCK_NONBLOCK);
	http_server_adopt(r->srv, sfd, (struct sockaddr *)&sin, (int)sl);
	if (write(cfd, req, len) != (ssize_t)len)
		printf("# short write\n");
	shutdown(cfd, SHUT_WR); /* one request: the server closes after it */
	fcntl(cfd, F_SETFL, O_NONBLOCK);
	for (int i = 0; i < 2000 && got + 1 < cap; i++) {
		event_base_loop(r->base, EVLOOP_NONBLOCK);
		n = read(cfd, out + got, cap - 1 - got);
		if (n == 0)
			break;
		if (n > 0)
			got += (size_t)n;
		else
			usleep(1000);
	}
	out[got] = '\0';
	close(cfd);
	event_base_loop(r->base, EVLOOP_NONBLOCK);
}

/* ---- the request head ---- */

static void
test_request_head(void)
{
	char req[4096], resp[4096];
	struct rig r;
	int n;

	rig_init(&r, &echo_handler, NULL);
	n = snprintf(req, sizeof(req),
	    "GET /a HTTP/1.1\r\nHost: x\r\nX-Pad: %03000d\r\n\r\n", 7);
	/* The head is copied into a buffer of exactly its length. */
	fail_next(FAIL_MALLOC, (size_t)n, 0);
	rig_exchange(&r, req, (size_t)n, resp, sizeof(resp));
	is_int(inject.failed, 1, "head: the copy's allocation failed");
	ok(strncmp(resp, "HTTP/1.1 503 ", 13) == 0, "head: answered 503");
	ok(strstr(resp, "Connection: close\r\n") != NULL, "head: and closed");
	is_int(r.requests, 0, "head: the handler never saw it");
	rig_exchange(&r, req, (size_t)n, resp, sizeof(resp));
	ok(strncmp(resp, "HTTP/1.1 200 ", 13) == 0,
	    "head: the next connection is served");
	is_int(r.requests, 1, "head: by the handler");
	rig_fini(&r);
}

/* ---- a purge's items ---- */

static void
test_plist(void)
{
	char name[777];
	struct purge_plist l;
	int rc;

	memset(&l, 0, sizeof(l));
	for (int i = 0; i < 8; i++)
		(void)!purge_plist_add(&l, CACHE_PURGE_TAG, "t", 1, "t", 1);
	is_int(l.n, 8, "plist: 8 items fill the first allocation");
	/* Growing reallocates four arrays: fail each in turn. */
	for (unsigned k = 0; k < 4; k++) {
		fail_next(FAIL_REALLOC, 0, k);
		rc = purge_plist_add(&l, CACHE_PURGE_TAG, "u", 1, "u", 1);
		is_int(rc, CDN_ENOMEM, "plist: realloc %u of 4 fails", k + 1);
		is_int(l.n, 8, "plist: the items are as they were");
	}
	is_int(purge_plist_add(&l, CACHE_PURGE_TAG, "u", 1, "u", 1), CDN_OK,
	    "plist: then it grows");
	memset(name, 'n', sizeof(name));
	fail_next(FAIL_MALLOC, sizeof(name) + 1, 0);
	rc = purge_plist_add(
	    &l, CACHE_PURGE_TAG, name, sizeof(name), name, sizeof(name));
	is_int(rc, CDN_ENOMEM, "plist: the name's copy fails");
	is_int(l.n, 9, "plist: nothing added");
	ok(strcmp(l.v[8].name, "u") == 0, "plist: the items are intact");
	purge_plist_free(&l);
}

/* POST /purge through the real handler: 503, not an abort. */
static void
test_purge_api(void)
{
	static const char body[] = "{\"tags\": [\"a\", \"b\"]}";
	char dir[] = "/tmp/t_oom.XXXXXX", path[64], req[512], resp[4096];
	struct purge_api a;
	const char *why;
	struct rig r;
	FILE *f;
	int n;

	memset(&a, 0, sizeof(a));
	a.magic = PURGE_API_MAGIC;
	if (mkdtemp(dir) == NULL) {
		ok(0, "purge: mkdtemp: %s", strerror(errno));
		return;
	}
	snprintf(path, sizeof(path), "%s/token", dir);
	f = fopen(path, "w");
	fputs("ci s3cret\n", f);
	fclose(f);
	chmod(path, 0600);
	ok(http_acl_add(&a.acl, "loopback", &why) == CDN_OK &&
	        http_tokens_load(&a.tokens, path, 0, "purge", "token") ==
	            CDN_OK,
	    "purge: ACL and token");
	rig_init(&r, &purge_api_handler, &a);
	n = snprintf(req, sizeof(req),
	    "POST /purge HTTP/1.1\r\nHost: x\r\n"
	    "Authorization: Bearer s3cret\r\nContent-Length: %zu\r\n\r\n%s",
	    sizeof(body) - 1, body);
	/* The body's buffer takes one realloc; then the first item makes
	 * the list, and its first realloc fails. */
	fail_next(FAIL_REALLOC, 0, 1);
	rig_exchange(&r, req, (size_t)n, resp, sizeof(resp));
	is_int(inject.failed, 1, "purge: the item list's allocation failed");
	if (!ok(strncmp(resp, "HTTP/1.1 503 ", 13) == 0, "purge: answered 503"))
		printf("# %.200s\n", resp);
	ok(strstr(resp, "out of memory") != NULL, "purge: saying why");
	rig_fini(&r);
	http_acl_free(&a.acl);
	http_tokens_free(&a.tokens);
	unlink(path);
	rmdir(dir);
}

/* ---- an origin fetch ---- */

static void
of_head(struct origin_fetch *f, void *arg, int status, const char *fields,
    size_t len, int64_t content_length)
{
	(void)f, (void)arg, (void)status, (void)fields, (void)len;
	(void)content_length;
}

static size_t
of_body(struct origin_fetch *f, void *arg, const char *data, size_t len)
{
	(void)f, (void)arg, (void)data;
	return len;
}

static void
of_done(struct origin_fetch *f, void *arg, enum origin_err err)
{
	(void)f, (void)arg, (void)err;
}

static void
test_origin_fetch(void)
{
	static const char base_url[] = "http://127.0.0.1:9";
	static const char tls_url[] = "https://127.0.0.1:9";
	static const struct origin_fetch_ops ops = {
	    .on_head = of_head, .on_body = of_body, .on_done = of_done};
	struct origin_server_conf sc = {.url = base_url, .weight = 1};
	static const char fields[] = "Accept: */*";
	const char *why = NULL;
	struct origin_timeouts to = {
	    .connect_ms = 1000, .first_byte_ms = 1000, .idle_ms = 1000};
	struct origin_pool_conf pc;
	struct origin_request req;
	struct origin_multi *m;
	struct origin_pool *p;
	struct origin_fetch *f;
	struct event_base *base = event_base_new();
	char target[4000];

	memset(&pc, 0, sizeof(pc));
	pc.name = "t";
	pc.servers = &sc;
	pc.nservers = 1;
	p = origin_pool_new(&pc, &why);
	m = origin_multi_new(base);
	memset(target, 'a', sizeof(target) - 1);
	target[0] = '/';
	target[sizeof(target) - 1] = '\0';
	memset(&req, 0, sizeof(req));
	req.method = "GET";
	req.fields = fields;
	req.fields_len = sizeof(fields);
	req.pool = p;
	req.target = target;
	req.body_length = -1;

	/* The copies of the method, the target and the fields share one
	 * allocation. */
	fail_next(
	    FAIL_MALLOC, sizeof("GET") + sizeof(target) + sizeof(fields), 0);
	f = origin_fetch_start(m, &req, &to, &ops, NULL);
	is_int(inject.failed, 1,
	    "fetch: the method's, target's and fields' copy failed");
	ok(f == NULL, "fetch: no fetch");
	/* The native client's request head, one allocation: request line,
	 * the fields with a third of their bytes more for their CRLFs, Host,
	 * room for the body's framing. */
	fail_next(FAIL_MALLOC,
	    strlen("GET ") + strlen(target) + strlen(" HTTP/1.1\r\n") +
	        sizeof(fields) + sizeof(fields) / 3 + strlen("Host: \r\n") +
	        strlen("127.0.0.1:9") + 2 +
	        sizeof("Transfer-Encoding: chunked\r\n") + 24,
	    0);
	f = origin_fetch_start(m, &req, &to, &ops, NULL);
	is_int(inject.failed, 1, "fetch: the request head's allocation failed");
	ok(f == NULL, "fetch: no fetch");
	fail_next(0, 0, 0);
	f = origin_fetch_start(m, &req, &to, &ops, NULL);
	ok(f != NULL, "fetch: with memory, a fetch");
	origin_fetch_cancel(&f);
	origin_pool_free(&p);

	/* libcurl's (https): the URL is built for it. */
	sc.url = tls_url;
	p = origin_pool_new(&pc, &why);
	req.pool = p;
	fail_next(FAIL_MALLOC, sizeof(tls_url) - 1 + sizeof(target), 0);
	f = origin_fetch_start(m, &req, &to, &ops, NULL);
	is_int(inject.failed, 1, "fetch: the URL's allocation failed");
	ok(f == NULL, "fetch: no fetch");
	fail_next(0, 0, 0);
	f = origin_fetch_start(m, &req, &to, &ops, NULL);
	ok(f != NULL, "fetch: with memory, a fetch");
	origin_fetch_cancel(&f);
	origin_multi_free(&m);
	origin_pool_free(&p);
	event_base_free(base);
}

int
main(void)
{
	plan_no_plan();
	curl_global_init(CURL_GLOBAL_DEFAULT);
	test_request_head();
	test_plist();
	test_purge_api();
	test_origin_fetch();
	curl_global_cleanup();
	return done_testing();
}
