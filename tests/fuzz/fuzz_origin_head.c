/*
 * libFuzzer target for the origin response head: the libcurl header
 * callback of origin/origin_fetch.c (included: it is static), fed the
 * input a line at a time as libcurl feeds it, and what reads the head it
 * hands over: cache_exchange_parse_response() and the storing decision
 * (cache/cache_policy.c), cache_enc_of_fields(), cache_tags_parse().
 *
 * The input is a response as an origin sends it: status line, fields,
 * perhaps 1xx responses first, perhaps trailer lines after.  Beyond the
 * sanitizers' checks it asserts what edged relies on:
 *   - the head is handed over at most once, for a final status
 *     (200..599), and only after the empty line;
 *   - it is whole "Name: value\r\n" lines, none empty, with no CR, LF or
 *     NUL inside, none folded (starting with white space), each with a
 *     colon and no white space before it, at most HEAD_MAX bytes;
 *     content_length is -1 or what every Content-Length line says;
 *   - no head with Transfer-Encoding and Content-Length, nor one whose
 *     chunked is not the final transfer coding, is handed over;
 *   - a line the callback refuses stops the transfer, as curl does;
 *   - the cache's reading of the head stays in range (dates, Age,
 *     lifetimes), and a storable decision names its reason;
 *   - the coding is one of the four; tags are non-empty, without spaces
 *     or commas, within the cap.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "cache/cache.h"
#include "http/http_date.h"
/* Static functions of the fetch: this is its only copy in the target. */
#include "origin/origin_fetch.c"

#define FZ_TAGS_CAP 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz_seen {
	unsigned heads;
	int status;
	int64_t content_length;
};

static struct event_base *fz_base;

static void
fz_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

static void
fz_check_head(const char *h, size_t len)
{
	const char *p = h, *end = h + len, *nl, *colon;

	CDN_ASSERT(len <= HEAD_MAX);
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		CDN_ASSERT(nl != NULL && nl > p + 1 && nl[-1] == '\r');
		CDN_ASSERT(memchr(p, '\r', (size_t)(nl - 1 - p)) == NULL);
		CDN_ASSERT(memchr(p, '\0', (size_t)(nl - 1 - p)) == NULL);
		CDN_ASSERT(p[0] != ' ' && p[0] != '\t');
		colon = memchr(p, ':', (size_t)(nl - 1 - p));
		CDN_ASSERT(colon != NULL && colon > p);
		CDN_ASSERT(colon[-1] != ' ' && colon[-1] != '\t');
		p = nl + 1;
	}
}

static void
fz_check_cache(int status, const char *h, size_t len)
{
	static const char *const tag_names[] = {"Surrogate-Key", "Cache-Tag"};
	static const struct cache_policy_conf pc = {0, 0, 0, 10, 0, 0, 1};
	static char tags[FZ_TAGS_CAP];
	struct cache_exchange x;
	struct cache_decision d;
	size_t n, s, ntags = 0;
	int enc;

	memset(&x, 0, sizeof(x));
	cache_cc_init(&x.req_cc);
	x.method_get_or_head = 1;
	x.status = status;
	x.request_time = INT64_C(1700000000);
	x.response_time = INT64_C(1700000001);
	cache_exchange_parse_response(&x, h, len);
	CDN_ASSERT(x.date >= -1 && x.date <= HTTP_DATE_MAX);
	CDN_ASSERT(x.last_modified >= -1 && x.last_modified <= HTTP_DATE_MAX);
	CDN_ASSERT(x.age >= -1 && x.age <= INT64_C(2147483647));
	cache_policy_decide(&pc, &x, &d);
	CDN_ASSERT(d.reason != NULL);
	CDN_ASSERT(d.freshness_s >= 0 && d.freshness_s <= INT64_C(2147483647));
	CDN_ASSERT(d.initial_age_s >= 0);

	enc = cache_enc_of_fields(h, len);
	CDN_ASSERT(enc >= CACHE_ENC_IDENTITY && enc <= CACHE_ENC_OTHER);

	n = cache_tags_parse(h, len, tag_names, 2, tags, sizeof(tags));
	CDN_ASSERT(n <= sizeof(tags));
	for (size_t i = 0; i < n; i = s + 1) {
		for (s = i; s < n && tags[s] != ' '; s++)
			CDN_ASSERT(tags[s] != ',' && tags[s] != '\t');
		CDN_ASSERT(s > i && s - i <= CACHE_TAG_MAX_LEN);
		ntags++;
	}
	CDN_ASSERT(ntags <= CACHE_TAGS_MAX);
}

/* The last Content-Length line's value, read alone by the field checks
 * (-1: none, or not a number). */
static int64_t
fz_content_length(const char *h, size_t len)
{
	const char *p = h, *end = h + len, *nl;
	struct origin_head one;
	int64_t cl = -1;

	for (; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if ((size_t)(nl - 1 - p) > 15 &&
		    strncasecmp(p, "Content-Length:", 15) == 0) {
			origin_head_reset(&one);
			cl = origin_head_field(&one, p, (size_t)(nl - 1 - p)) ==
			        NULL
			    ? one.content_length
			    : -1;
		}
	}
	return cl;
}

static void
fz_on_head(struct origin_fetch *f, void *arg, int status, const char *fields,
    size_t len, int64_t content_length)
{
	struct fz_seen *seen = arg;

	CDN_ASSERT(f->head_done && fields != NULL);
	CDN_ASSERT(seen->heads++ == 0);
	CDN_ASSERT(status >= 200 && status <= 599);
	CDN_ASSERT(content_length >= -1);
	seen->status = status;
	seen->content_length = content_length;
	fz_check_head(fields, len);
	CDN_ASSERT(content_length == fz_content_length(fields, len));
	CDN_ASSERT(head_framing_error(f) == NULL);
	fz_check_cache(status, fields, len);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct origin_fetch f;
	struct fz_seen seen = {0, 0, 0};
	const char *p = (const char *)data, *end = p + size, *nl;
	size_t len, took;

	if (fz_base == NULL) {
		fz_base = event_base_new();
		if (fz_base == NULL)
			abort();
	}
	memset(&f, 0, sizeof(f));
	f.magic = ORIGIN_FETCH_MAGIC;
	f.ops.on_head = fz_on_head;
	f.arg = &seen;
	f.srv = -1;
	f.status = -1;
	f.content_length = -1;
	origin_head_reset(&f.hs);
	evtimer_assign(&f.timer, fz_base, fz_timer, NULL);

	/* One call per line, each with its LF, as libcurl calls. */
	for (; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			nl = end - 1;
		len = (size_t)(nl - p) + 1;
		took = on_curl_header((char *)(uintptr_t)p, 1, len, &f);
		if (took != len)
			break; /* curl ends the transfer */
	}
	if (seen.heads == 0)
		CDN_ASSERT(!f.head_done);

	evtimer_del(&f.timer);
	free(f.head);
	return 0;
}
