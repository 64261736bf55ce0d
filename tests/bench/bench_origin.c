/*
 * A fast static origin for benchmarks, built on our own HTTP/1.1 server
 * layer: every GET answers 200 with "size" bytes (query ?size=N, default
 * 1024) and Cache-Control: public, max-age=3600.  One thread.
 *   bench_origin PORT
 */
#include "config.h"

#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "http/http_listen.h"
#include "http/http_server.h"

static char body[1 << 20];

static void
on_request(struct http_txn *txn, void *arg)
{
	const struct http_request *req = http_txn_request(txn);
	static const char fields[] =
	    "Content-Type: application/octet-stream\r\n"
	    "Cache-Control: public, max-age=3600\r\n";
	size_t size = 1024;
	const char *q;

	(void)arg;
	if (req->has_query &&
	    (q = memmem(req->query.p, req->query.len, "size=", 5)) != NULL)
		size = strtoul(q + 5, NULL, 10);
	if (size > sizeof(body))
		size = sizeof(body);
	http_txn_respond(txn, 200, fields, sizeof(fields) - 1, (int64_t)size);
	http_txn_write(txn, body, size);
	http_txn_finish(txn);
}

static void
on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	(void)l;
	http_server_adopt(arg, fd, sa, salen);
}

int
main(int argc, char **argv)
{
	static const struct http_handler h = {.on_request = on_request};
	struct http_server_limits lim = {
	    .parse = {8192, 65536, 100},
	    .max_body_size = 1 << 20,
	    .header_timeout_ms = 10000,
	    .keepalive_timeout_ms = 60000,
	    .body_timeout_ms = 10000,
	    .send_timeout_ms = 10000,
	    .max_connections = 10000,
	};
	struct sockaddr_in sin;
	struct event_base *base;
	struct http_server *s;
	struct evconnlistener *l;

	if (argc != 2) {
		fprintf(stderr, "usage: bench_origin PORT\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	memset(body, 'x', sizeof(body));
	base = event_base_new();
	s = http_server_new(base, &lim, &h, NULL);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)atoi(argv[1]));
	l = evconnlistener_new_bind(base, on_accept, s,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 1024,
	    (struct sockaddr *)&sin, sizeof(sin));
	if (l == NULL) {
		perror("bind");
		return 1;
	}
	(void)http_listen_nodelay(evconnlistener_get_fd(l), "bench_origin");
	event_base_dispatch(base);
	return 0;
}
