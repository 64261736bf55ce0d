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

void
cdn_sb_add(struct cdn_strbuf *b, const void *s, size_t len)
{
	size_t cap, max = b->max != 0 ? b->max : SB_DEFAULT_MAX;
	char *n;

	if (b->failed)
		return;
	if (b->len + len + 1 > b->cap) {
		if (b->len + len + 1 > max) {
			b->failed = 1;
			return;
		}
		cap = b->cap != 0 ? b->cap * 2 : 512;
		while (cap < b->len + len + 1)
			cap *= 2;
		if (cap > max)
			cap = max;
		n = realloc(b->p, cap);
		if (n == NULL) {
			b->failed = 1;
			return;
		}
		b->p = n;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, len);
	b->len += len;
	b->p[b->len] = '\0';
}

void
cdn_sb_str(struct cdn_strbuf *b, const char *s)
{
	cdn_sb_add(b, s, strlen(s));
}

void
cdn_sb_printf(struct cdn_strbuf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		b->failed = 1;
		return;
	}
	cdn_sb_add(b, tmp, (size_t)n);
}

void
cdn_sb_free(struct cdn_strbuf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
	b->failed = 0;
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
		if ((size_t)(eol - p) > nlen && p[nlen] == ':' &&
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
