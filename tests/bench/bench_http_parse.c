/*
 * Micro-benchmark of the request head parser and the chunked decoder on one
 * core: a browser-like GET (about 500 bytes, 12 fields), the minimal head a
 * load generator such as wrk sends, and a chunked body.  Each case runs for
 * a bounded time (1 s, or the seconds given as the only argument) and
 * prints ns per request and requests per second (the mean, and the best of
 * ten slices, which is steadier on a shared machine); then it exits.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cdn.h"
#include "http/http_parse.h"

#define BENCH_BATCH 1024 /* parses between two clock reads */

static const char browser_head[] =
    "GET /assets/img/products/2026/catalogue-hero.webp?v=8f3a2c&w=1280 "
    "HTTP/1.1\r\n"
    "Host: static.shop.example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36\r\n"
    "Accept: image/avif,image/webp,image/apng,image/*,*/*;q=0.8\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Accept-Language: en-US,en;q=0.9,fr;q=0.7\r\n"
    "Referer: https://shop.example.com/catalogue/spring\r\n"
    "Sec-Fetch-Dest: image\r\n"
    "Sec-Fetch-Mode: no-cors\r\n"
    "Sec-Fetch-Site: same-site\r\n"
    "Cookie: sid=4d9f1e0c7b2a; ab=blue; consent=1\r\n"
    "Cache-Control: no-cache\r\n"
    "Connection: keep-alive\r\n"
    "\r\n";

static const char wrk_head[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";

static volatile size_t sink; /* keeps the work from being optimised away */

/*
 * Time <fn>(arg) over <seconds>, split into BENCH_SLICES slices: prints the
 * mean and the best slice, since a shared or virtual machine often loses
 * whole slices to other work.  <fn> does one unit of work per call.
 */
#define BENCH_SLICES 10

struct bench_result {
	double mean_ns;
	double best_ns;
};

static struct bench_result
bench_run(void (*fn)(void *), void *arg, unsigned batch, double seconds)
{
	struct bench_result r;
	uint64_t t0, ts, t1, slice_ns, n, total;
	unsigned s, i;
	double ns;

	slice_ns = (uint64_t)(seconds * 1e9 / BENCH_SLICES);
	r.best_ns = 1e18;
	total = 0;
	t0 = cdn_now_ns();
	t1 = t0;
	for (s = 0; s < BENCH_SLICES; s++) {
		ts = cdn_now_ns();
		n = 0;
		do {
			for (i = 0; i < batch; i++)
				fn(arg);
			n += batch;
			t1 = cdn_now_ns();
		} while (t1 - ts < slice_ns);
		ns = (double)(t1 - ts) / (double)n;
		if (ns < r.best_ns)
			r.best_ns = ns;
		total += n;
	}
	r.mean_ns = (double)(t1 - t0) / (double)total;
	return r;
}

struct head_case {
	const char *head;
	size_t len;
	struct http_header hdrs[64];
	struct http_limits lim;
	struct http_request req;
};

static void
parse_once(void *arg)
{
	struct head_case *hc;
	const char *why;
	int status;

	hc = arg;
	if (http_parse_request(
	        hc->head, hc->len, &hc->lim, &hc->req, &status, &why) != CDN_OK)
		abort();
	sink += hc->req.head_len;
}

static void
bench_head(const char *name, const char *head, size_t len, double seconds)
{
	static struct head_case hc;
	struct bench_result r;
	const char *why;
	int status;

	hc.head = head;
	hc.len = len;
	hc.lim.max_request_line = 8192;
	hc.lim.max_header_bytes = 32768;
	hc.lim.max_headers = 64;
	hc.req.headers = hc.hdrs;
	if (http_parse_request(head, len, &hc.lim, &hc.req, &status, &why) !=
	    CDN_OK) {
		fprintf(
		    stderr, "%s: does not parse (%d %s)\n", name, status, why);
		exit(1);
	}
	r = bench_run(parse_once, &hc, BENCH_BATCH, seconds);
	printf("%-12s %4zu bytes %2u fields: %6.1f ns/req (best slice "
	       "%6.1f), %5.2f M req/s/core (best %5.2f)\n",
	    name, len, hc.req.n_headers, r.mean_ns, r.best_ns, 1e3 / r.mean_ns,
	    1e3 / r.best_ns);
}

struct chunked_case {
	char body[70000];
	size_t len;
};

static void
decode_once(void *arg)
{
	const struct chunked_case *cc;
	struct http_chunked c;
	const char *why;
	size_t pos, fr, da;
	int rc;

	cc = arg;
	http_chunked_init(&c, 4096, 4096);
	pos = 0;
	do {
		rc = http_chunked_step(
		    &c, cc->body + pos, cc->len - pos, &fr, &da, &why);
		pos += fr + da;
		sink += da;
	} while (rc == CDN_AGAIN && pos < cc->len);
	if (rc != CDN_OK)
		abort();
}

static void
bench_chunked(double seconds)
{
	static struct chunked_case cc;
	struct bench_result r;
	int k;

	/* 64 chunks of 1 KiB, each with an extension, and a trailer. */
	cc.len = 0;
	for (k = 0; k < 64; k++) {
		cc.len += (size_t)sprintf(cc.body + cc.len, "400;k=%d\r\n", k);
		memset(cc.body + cc.len, 'x', 1024);
		cc.len += 1024;
		cc.len += (size_t)sprintf(cc.body + cc.len, "\r\n");
	}
	cc.len +=
	    (size_t)sprintf(cc.body + cc.len, "0\r\nX-Checksum: abc\r\n\r\n");
	r = bench_run(decode_once, &cc, 16, seconds);
	printf("%-12s %zu bytes, 64 chunks: %6.0f ns/body (best slice %6.0f), "
	       "%4.1f ns/chunk\n",
	    "chunked", cc.len, r.mean_ns, r.best_ns, r.best_ns / 65);
}

int
main(int argc, char **argv)
{
	double seconds;

	seconds = argc > 1 ? atof(argv[1]) : 1.0;
	if (seconds <= 0 || seconds > 60) {
		fprintf(stderr, "usage: %s [seconds, 0 < s <= 60]\n", argv[0]);
		return 2;
	}
	bench_head(
	    "browser GET", browser_head, sizeof(browser_head) - 1, seconds);
	bench_head("wrk GET", wrk_head, sizeof(wrk_head) - 1, seconds);
	bench_chunked(seconds);
	return 0;
}
