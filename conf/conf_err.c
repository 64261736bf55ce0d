/*
 * Config errors (conf/conf_int.h, struct conf_err).
 *
 * Errors never stop a parse: each is printed to the caller's stream as it is
 * found, GNU style ("FILE:LINE:COL: error: DIRECTIVE: why", editors jump to
 * it), and counted; the load returns CDN_EINVAL at the end, so the user sees
 * every mistake at once.  A flood (a binary file given as the config) stops
 * after CONF_MAX_ERRORS.  An unknown name gets the nearest known one as a
 * suggestion, by edit distance.
 *
 * A struct conf_err belongs to the one parse that fills it; no state here.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "conf/conf_int.h"

/* Errors printed for one source before giving up on it. */
#define CONF_MAX_ERRORS 100

static void err_vprint(struct conf_err *es, unsigned line, unsigned col,
    const char *directive, size_t dlen, const char *fmt, va_list ap)
    __attribute__((format(printf, 6, 0)));

unsigned
conf_err_edit_distance(const char *a, size_t la, const char *b, size_t lb)
{
	unsigned row[CONF_NAME_SHOWN_MAX + 1];
	unsigned diag, up;

	if ((la > lb ? la - lb : lb - la) > 2 || la > CONF_NAME_SHOWN_MAX ||
	    lb > CONF_NAME_SHOWN_MAX)
		return 1000;
	for (size_t j = 0; j <= lb; j++)
		row[j] = (unsigned)j;
	for (size_t i = 1; i <= la; i++) {
		diag = row[0];
		row[0] = (unsigned)i;
		for (size_t j = 1; j <= lb; j++) {
			up = row[j];
			row[j] = diag + (a[i - 1] == b[j - 1] ? 0 : 1);
			if (up + 1 < row[j])
				row[j] = up + 1;
			if (row[j - 1] + 1 < row[j])
				row[j] = row[j - 1] + 1;
			diag = up;
		}
	}
	return row[lb];
}

static void
err_vprint(struct conf_err *es, unsigned line, unsigned col,
    const char *directive, size_t dlen, const char *fmt, va_list ap)
{
	es->nerr++;
	if (es->gave_up)
		return;
	if (es->nerr > CONF_MAX_ERRORS) {
		es->gave_up = 1;
		if (es->err != NULL)
			fprintf(es->err,
			    "%s: error: too many errors, giving up\n",
			    es->name);
		return;
	}
	if (es->err == NULL)
		return;
	if (line > 0)
		fprintf(es->err, "%s:%u:%u: error: ", es->name, line, col);
	else
		fprintf(es->err, "%s: error: ", es->name);
	if (directive != NULL) {
		if (dlen > CONF_NAME_SHOWN_MAX)
			fprintf(es->err, "%.*s...: ", CONF_NAME_SHOWN_MAX,
			    directive);
		else
			fprintf(es->err, "%.*s: ", (int)dlen, directive);
	}
	vfprintf(es->err, fmt, ap);
	fputc('\n', es->err);
}

void
conf_err_at(struct conf_err *es, unsigned line, unsigned col,
    const char *directive, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_vprint(es, line, col, directive,
	    directive != NULL ? strlen(directive) : 0, fmt, ap);
	va_end(ap);
}

void
conf_err_key(struct conf_err *es, const struct conf *c, const char *directive,
    int elem, const char *fmt, ...)
{
	const struct conf_desc *d = NULL;
	const struct conf_strlist *l;
	struct conf_loc at = {0};
	struct conf_err fe;
	va_list ap;

	if (directive != NULL) {
		d = conf_desc_find(directive, strlen(directive));
		CDN_ASSERT(d != NULL); /* our own checks name real ones */
		at = c->loc[d - conf_descs];
		if (at.is_bad)
			return; /* its line's own error says it already */
		if (elem >= 0) {
			l = conf_cfield(c, d);
			CDN_ASSERT(
			    conf_desc_is_list(d) && (unsigned)elem < l->n);
			at = l->at[elem];
		}
	}
	va_start(ap, fmt);
	if (c->config != NULL && (at.line > 0 || directive == NULL)) {
		fe = *es;
		fe.name = c->config;
		err_vprint(&fe, at.line, at.col, directive,
		    directive != NULL ? strlen(directive) : 0, fmt, ap);
		es->nerr = fe.nerr;
		es->gave_up = fe.gave_up;
	} else {
		err_vprint(es, 0, 0, directive,
		    directive != NULL ? strlen(directive) : 0, fmt, ap);
	}
	va_end(ap);
}

void
conf_err_flag(
    struct conf_err *es, const char *flag, size_t flen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_vprint(es, 0, 0, flag, flen, fmt, ap);
	va_end(ap);
}
