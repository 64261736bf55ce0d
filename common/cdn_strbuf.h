/*
 * A growable byte string for building header blocks and URLs.  Bounded:
 * growing past <max> (or out of memory) sets the failed flag instead, and
 * every later call is a no-op, so a caller checks once at the end.
 */
#ifndef CDN_STRBUF_H
#define CDN_STRBUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct cdn_strbuf {
	char *p; /* NUL-terminated once anything was added */
	size_t len, cap;
	size_t max; /* 0: 1 MiB */
	int failed;
	int borrowed; /* p is the caller's buffer (cdn_sb_init_buf) */
};

/* Start <b> empty on the caller's <buf> of <cap> bytes (at least 1), for
 * strings that are short but built on every request: no malloc until it
 * outgrows <buf>.  <buf> must outlive <b>'s use; cdn_sb_free leaves it
 * alone. */
void cdn_sb_init_buf(struct cdn_strbuf *b, char *buf, size_t cap, size_t max);

/* cdn_sb_add when <len> more bytes do not fit (or <b> failed): grows. */
void cdn_sb_add_grow(struct cdn_strbuf *b, const void *s, size_t len);

/* Inline: a response head is built from a dozen short pieces, most of
 * them literals, whose copy is then a few moves and no call. */
static inline void
cdn_sb_add(struct cdn_strbuf *b, const void *s, size_t len)
{
	if (b->failed || b->len + len + 1 > b->cap) {
		cdn_sb_add_grow(b, s, len);
		return;
	}
	memcpy(b->p + b->len, s, len);
	b->len += len;
	b->p[b->len] = '\0';
}

static inline void
cdn_sb_str(struct cdn_strbuf *b, const char *s)
{
	cdn_sb_add(b, s, strlen(s));
}
/* Formatted: any length up to <max>, as cdn_sb_add. */
void cdn_sb_printf(struct cdn_strbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void cdn_sb_free(struct cdn_strbuf *b);

/* Bytes cdn_fmt_i64() may write: a sign, 19 digits and the NUL. */
#define CDN_FMT_I64_MAX 21

/*
 * Write <v> in decimal, NUL-terminated, to <dst> (CDN_FMT_I64_MAX bytes of
 * room); returns its length without the NUL.  For the numbers of every
 * response head (status, Content-Length, Age), where printf would cost
 * more than the rest of the head together.
 */
size_t cdn_fmt_i64(char *dst, int64_t v);
/* Append <v> in decimal, as cdn_sb_add. */
void cdn_sb_add_i64(struct cdn_strbuf *b, int64_t v);

/*
 * Find field <name> in a header block of "Name: value\r\n" lines.  Returns
 * the value (OWS trimmed) and its length in *len, or NULL.  The value
 * points into <fields>.
 */
const char *cdn_fields_get(
    const char *fields, size_t fields_len, const char *name, size_t *len);

/* One "Name: value\r\n" line of a header block. */
struct cdn_field {
	const char *line, *name, *value; /* into the block */
	size_t line_len;                 /* with its line end */
	size_t name_len, value_len;      /* the value without OWS */
};

/*
 * The header-block walk every "Name: value" loop uses: the next line at
 * *pos (before <end>) that has a colon, in *f, and *pos moved past it
 * (lines without a colon are skipped; the last may lack its line end).
 * Returns 0 at the end.
 *
 *	for (p = fields; cdn_fields_next(&p, fields + len, &f);)
 */
/* Inline: it runs for every field of every response the node forwards. */
static inline int
cdn_fields_next(const char **pp, const char *end, struct cdn_field *fl)
{
	const char *p = *pp, *eol, *next, *colon, *v, *ve;

	for (;;) {
		if (p >= end)
			return 0;
		eol = memchr(p, '\n', (size_t)(end - p));
		next = eol != NULL ? eol + 1 : end;
		if (eol == NULL)
			eol = end; /* a last line without its line end */
		colon = memchr(p, ':', (size_t)(eol - p));
		if (colon != NULL)
			break;
		p = next;
	}
	v = colon + 1;
	ve = eol;
	if (ve > v && ve[-1] == '\r')
		ve--;
	while (v < ve && (*v == ' ' || *v == '\t'))
		v++;
	while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
		ve--;
	fl->line = p;
	fl->line_len = (size_t)(next - p);
	fl->name = p;
	fl->name_len = (size_t)(colon - p);
	fl->value = v;
	fl->value_len = (size_t)(ve - v);
	*pp = next;
	return 1;
}

#endif /* CDN_STRBUF_H */
