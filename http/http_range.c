/*
 * Range field parsing (http/http_range.h).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/cdn.h"
#include "http/http_range.h"

static int
is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* 1*DIGIT into *v; 0 if empty or past 2^63 (a length no body has). */
static int
parse_digits(const char *p, size_t len, uint64_t *v)
{
	uint64_t x = 0;

	if (len == 0 || len > 18)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return 0;
		x = x * 10 + (uint64_t)(p[i] - '0');
	}
	*v = x;
	return 1;
}

static int
cmp_range(const void *a, const void *b)
{
	const struct http_range *x = a, *y = b;

	if (x->first != y->first)
		return x->first < y->first ? -1 : 1;
	return x->last < y->last ? -1 : x->last > y->last;
}

enum http_range_rc
http_range_parse(const char *value, size_t len, uint64_t total,
    struct http_range r[HTTP_RANGE_MAX], unsigned *n)
{
	struct http_range tmp[HTTP_RANGE_MAX];
	const char *p, *end = value + len, *comma, *dash;
	unsigned cnt = 0, seen = 0, out;
	uint64_t a, b;

	CDN_ASSERT(value != NULL || len == 0);
	CDN_ASSERT(r != NULL && n != NULL);
	while (len > 0 && is_ows(*value)) {
		value++;
		len--;
	}
	/* ranges-specifier = range-unit "=" range-set; unit is
	 * case-insensitive (§14.1). */
	if (len < 6 || strncasecmp(value, "bytes=", 6) != 0)
		return HTTP_RANGE_IGNORE;
	for (p = value + 6; p < end; p = comma + 1) {
		const char *s, *e;

		comma = memchr(p, ',', (size_t)(end - p));
		if (comma == NULL)
			comma = end;
		s = p;
		e = comma;
		while (s < e && is_ows(*s))
			s++;
		while (e > s && is_ows(e[-1]))
			e--;
		if (s == e) {
			if (comma == end)
				break;
			continue; /* empty list elements are allowed */
		}
		if (++seen > HTTP_RANGE_MAX)
			return HTTP_RANGE_IGNORE;
		dash = memchr(s, '-', (size_t)(e - s));
		if (dash == NULL)
			return HTTP_RANGE_IGNORE;
		if (dash == s) {
			/* suffix-range: the last <b> bytes. */
			if (!parse_digits(dash + 1, (size_t)(e - dash - 1), &b))
				return HTTP_RANGE_IGNORE;
			if (b == 0 || total == 0)
				goto next; /* unsatisfiable member */
			a = b >= total ? 0 : total - b;
			b = total - 1;
		} else {
			if (!parse_digits(s, (size_t)(dash - s), &a))
				return HTTP_RANGE_IGNORE;
			if (dash + 1 == e) {
				b = UINT64_MAX; /* open: to the end */
			} else if (!parse_digits(
			               dash + 1, (size_t)(e - dash - 1), &b) ||
			    b < a) {
				/* §14.1.1: last < first is invalid. */
				return HTTP_RANGE_IGNORE;
			}
			if (a >= total)
				goto next;
			if (b >= total)
				b = total - 1;
		}
		tmp[cnt].first = a;
		tmp[cnt].last = b;
		cnt++;
	next:
		if (comma == end)
			break;
	}
	if (seen == 0)
		return HTTP_RANGE_IGNORE;
	if (cnt == 0)
		return HTTP_RANGE_UNSATISFIABLE;
	/* Unsorted and overlapping sets are coalesced, so that no request
	 * makes the node send a byte twice. */
	qsort(tmp, cnt, sizeof(tmp[0]), cmp_range);
	out = 0;
	for (unsigned i = 0; i < cnt; i++) {
		if (out > 0 && tmp[i].first <= r[out - 1].last + 1) {
			if (tmp[i].last > r[out - 1].last)
				r[out - 1].last = tmp[i].last;
			continue;
		}
		r[out++] = tmp[i];
	}
	*n = out;
	return HTTP_RANGE_OK;
}
