/*
 * Growable byte strings and header-block lookups (common/cdn_strbuf.h).
 * No shared state.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/cdn_strbuf.h"

#define SB_DEFAULT_MAX (1024 * 1024)

/* Room for <extra> more bytes and the terminator, or the failed flag. */
static int
sb_reserve(struct cdn_strbuf *b, size_t extra)
{
	size_t cap, max = b->max != 0 ? b->max : SB_DEFAULT_MAX;
	char *n;

	if (b->failed)
		return -1;
	if (b->len + extra + 1 <= b->cap)
		return 0;
	if (b->len + extra + 1 > max) {
		b->failed = 1;
		return -1;
	}
	cap = b->cap != 0 ? b->cap * 2 : 512;
	while (cap < b->len + extra + 1)
		cap *= 2;
	if (cap > max)
		cap = max;
	n = realloc(b->borrowed ? NULL : b->p, cap);
	if (n == NULL) {
		b->failed = 1;
		return -1;
	}
	if (b->borrowed)
		memcpy(n, b->p, b->len + 1);
	b->borrowed = 0;
	b->p = n;
	b->cap = cap;
	return 0;
}

void
cdn_sb_init_buf(struct cdn_strbuf *b, char *buf, size_t cap, size_t max)
{
	b->p = buf;
	b->p[0] = '\0';
	b->len = 0;
	b->cap = cap;
	b->max = max;
	b->failed = 0;
	b->borrowed = 1;
}

void
cdn_sb_add_grow(struct cdn_strbuf *b, const void *s, size_t len)
{
	if (sb_reserve(b, len) != 0)
		return;
	memcpy(b->p + b->len, s, len);
	b->len += len;
	b->p[b->len] = '\0';
}

void
cdn_sb_printf(struct cdn_strbuf *b, const char *fmt, ...)
{
	size_t room;
	va_list ap;
	int n;

	if (b->failed)
		return;
	/* Straight into the spare room; if it is too small, grow to the
	 * length this told us and format again. */
	room = b->p != NULL ? b->cap - b->len : 0;
	va_start(ap, fmt);
	n = vsnprintf(b->p != NULL ? b->p + b->len : NULL, room, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n >= room && sb_reserve(b, (size_t)n) == 0) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	if (n < 0)
		b->failed = 1;
	if (!b->failed)
		b->len += (size_t)n;
	if (b->p != NULL)
		b->p[b->len] = '\0'; /* a failed piece leaves nothing */
}

size_t
cdn_fmt_i64(char *dst, int64_t v)
{
	/* "00" to "99": two digits per division. */
	static const char pairs[201] = "00010203040506070809"
	                               "10111213141516171819"
	                               "20212223242526272829"
	                               "30313233343536373839"
	                               "40414243444546474849"
	                               "50515253545556575859"
	                               "60616263646566676869"
	                               "70717273747576777879"
	                               "80818283848586878889"
	                               "90919293949596979899";
	/* In unsigned arithmetic, so that INT64_MIN negates too. */
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v, t;
	size_t len = v < 0, digits = 1;
	char *q;

	for (t = u; t >= 10; t /= 10)
		digits++;
	len += digits;
	q = dst + len;
	*q = '\0';
	while (u >= 100) {
		t = u % 100;
		u /= 100;
		*--q = pairs[2 * t + 1];
		*--q = pairs[2 * t];
	}
	if (u >= 10) {
		*--q = pairs[2 * u + 1];
		*--q = pairs[2 * u];
	} else {
		*--q = (char)('0' + u);
	}
	if (v < 0)
		*--q = '-';
	return len;
}

void
cdn_sb_add_i64(struct cdn_strbuf *b, int64_t v)
{
	char num[CDN_FMT_I64_MAX];

	cdn_sb_add(b, num, cdn_fmt_i64(num, v));
}

void
cdn_sb_free(struct cdn_strbuf *b)
{
	if (!b->borrowed)
		free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
	b->failed = 0;
	b->borrowed = 0;
}

const char *
cdn_fields_get(
    const char *fields, size_t fields_len, const char *name, size_t *len)
{
	const char *p = fields, *end = fields + fields_len, *eol, *v;
	size_t nlen = strlen(name);

	while (p < end) {
		eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == NULL)
			eol = end;
		/* The first letter, either case, before the call. */
		if ((size_t)(eol - p) > nlen && p[nlen] == ':' &&
		    (p[0] | 0x20) == (name[0] | 0x20) &&
		    strncasecmp(p, name, nlen) == 0) {
			v = p + nlen + 1;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			*len = (size_t)(eol - v);
			while (*len > 0 &&
			    (v[*len - 1] == '\r' || v[*len - 1] == ' ' ||
			        v[*len - 1] == '\t'))
				(*len)--;
			return v;
		}
		p = eol + 1;
	}
	return NULL;
}
