/*
 * What the files of conf/ share and nothing else may see: the directive
 * table (one struct conf_desc per row of conf/conf_keys.h), the error sink,
 * the line lexer, and the helpers that set a directive.  Everything outside
 * conf/ uses conf/conf.h.
 *
 * Which file does what:
 *   conf.c          the directive table, defaults, setting one directive,
 *                   sites (clone and resolve), reference counts
 *   conf_parse.c    value parsers: sizes, durations, numbers, URLs,
 *                   origin_server and tls_sni_cert values
 *   conf_format.c   values written back the way a file writes them
 *   conf_err.c      "FILE:LINE:COL: error: ..." messages, counted
 *   conf_lex.c      one config-file line into tokens
 *   conf_load.c     a config file: directives, site blocks
 *   conf_validate.c cross-directive checks of a whole conf
 *   conf_check.c    checks of a conf against this machine (files, names)
 *   conf_argv.c     the command line and --help
 *   conf_dump.c     --dump-config
 *   conf_reload.c   what a reload may not change
 */
#ifndef CONF_INT_H
#define CONF_INT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/cdn.h"
#include "conf/conf.h"

/* Longest directive name worth printing back in an error. */
#define CONF_NAME_SHOWN_MAX 64
/* Site host names stored per block, at most. */
#define CONF_SITE_NAMES_MAX 32

enum conf_type {
	CONF_T_STR,
	CONF_T_STRLIST,
	CONF_T_ADDR,
	CONF_T_ADDRLIST,
	CONF_T_URL,
	CONF_T_SIZE,
	CONF_T_UINT,
	CONF_T_DURATION,
	CONF_T_LOGLEVEL,
	CONF_T_SNICERT,
	CONF_T_ORIGINSRV,
	CONF_T_TOKENS, /* tokens (field names, methods), several to a line */
};

/*
 * One directive.  min and max bound SIZE (bytes), UINT and DURATION (ms)
 * values; both 0 means unbounded.
 */
struct conf_desc {
	const char *name;
	enum conf_type type;
	uint64_t min, max;
	const char *def;
	const char *doc;
	size_t off;
	int site;    /* a site block may set it (CONF_SITE_KEY) */
	int restart; /* SIGHUP leaves it alone (CONF_RESTART_KEY) */
};

enum {
#define CONF_KEY(name, type, min, max, def, doc) CONF_IDX_##name,
#include "conf/conf_keys.h"
#undef CONF_KEY
	CONF_NKEYS
};
_Static_assert(
    (int)CONF_NKEYS == (int)CONF_NDIRECTIVES, "one table, one count");

/* One line of a site block, replayed over the top level (conf_site). */
struct conf_site_set {
	unsigned idx; /* into conf_descs */
	char *val;
};

static inline int
conf_is_ctl(unsigned char ch)
{
	return ch < 0x20 || ch == 0x7f;
}

static inline int
conf_is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

static inline char
conf_ascii_lower(char ch)
{
	return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

/* The field of <c> that <d> is stored in. */
static inline void *
conf_field(struct conf *c, const struct conf_desc *d)
{
	return (char *)c + d->off;
}

static inline const void *
conf_cfield(const struct conf *c, const struct conf_desc *d)
{
	return (const char *)c + d->off;
}

/* Whether <d> is repeatable (its field is a struct conf_strlist). */
static inline int
conf_desc_is_list(const struct conf_desc *d)
{
	return d->type == CONF_T_STRLIST || d->type == CONF_T_ADDRLIST ||
	    d->type == CONF_T_SNICERT || d->type == CONF_T_ORIGINSRV ||
	    d->type == CONF_T_TOKENS;
}

/* conf.c */

/* Every directive, in conf_keys.h order (index: CONF_IDX_name). */
extern const struct conf_desc conf_descs[CONF_NKEYS];

/* The directive named name[0..len), or NULL. */
const struct conf_desc *conf_desc_find(const char *name, size_t len);
/* realloc() that aborts: for the config's own small tables. */
void *conf_xrealloc(void *p, size_t len);
/* Append a copy of <s>, set at no line (a default or a flag). */
void conf_strlist_push(struct conf_strlist *l, const char *s);
void conf_strlist_clear(struct conf_strlist *l);
/* Replace the string *sp with a copy of <val> (which may point into it). */
void conf_set_str(char **sp, const char *val);
/*
 * Parse <val> for <d> and store it in <c> (a list gets it appended).  On
 * error <c> is untouched and *why points to a static string or into msg.
 */
int conf_set_value(struct conf *c, const struct conf_desc *d, const char *val,
    char *msg, size_t msglen, const char **why) CDN_WUR;
/*
 * Rebuild every site's effective conf from the top level of <c>, after the
 * file and the flags have set it (conf_load_buf, conf_argv_parse).
 */
void conf_resolve_sites(struct conf *c);

/* conf_err.c */

/* Where errors go, and how many there were. */
struct conf_err {
	FILE *err;        /* may be NULL: count only */
	const char *name; /* file name, or "edged" for flags */
	unsigned nerr;
	int gave_up;
};

/* "NAME:LINE:COL: error: DIRECTIVE: ..." (line 0: "NAME: error: ..."). */
void conf_err_at(struct conf_err *es, unsigned line, unsigned col,
    const char *directive, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/*
 * An error about the value of <directive> in <c> (of its element <elem>, or
 * -1 for the directive as a whole), placed where c->config set it:
 * "FILE:LINE:COL: error: DIRECTIVE: ..."; a value no file line set (a
 * default, a flag) gets "NAME: error: DIRECTIVE: ...".  <directive> NULL:
 * about the whole conf ("FILE: error: ...").  Nothing is printed or counted
 * when the file's own line for <directive> was refused: that error is
 * printed already, and the value checked now is not the one written.
 */
void conf_err_key(struct conf_err *es, const struct conf *c,
    const char *directive, int elem, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* "edged: error: FLAG: ..." (flag NULL: "edged: error: ..."). */
void conf_err_flag(struct conf_err *es, const char *flag, size_t flen,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * conf_validate(), after <had_errors> errors in the file or the flags: what
 * is missing is then not reported (it may be on a refused line).
 */
int conf_validate_after(
    const struct conf *c, FILE *err, int had_errors) CDN_WUR;

/* The purge bus's directives (conf_bus.c), for conf_validate*(). */
void conf_validate_bus(const struct conf *c, struct conf_err *es);
/*
 * Levenshtein distance between a[0..la) and b[0..lb), or a large number when
 * the lengths alone put it over 2 (so a 4 KiB junk name costs nothing); for
 * "did you mean" suggestions.
 */
unsigned conf_err_edit_distance(
    const char *a, size_t la, const char *b, size_t lb);

/* conf_lex.c */

struct conf_tok {
	const char *s;   /* unescaped, NUL-terminated */
	unsigned col;    /* 1-based column of its first byte */
	unsigned endcol; /* column just past its last byte */
};

/* Tokens stored per line: "site", its names and "{" (the rest are counted). */
#define CONF_LEX_TOKS (CONF_SITE_NAMES_MAX + 3)

/*
 * Split a line into tokens: bare words, or "quoted values" with \" and \\.
 * A '#' outside quotes ends the line.  Unescaped tokens go to buf, which
 * needs len + 1 bytes.  *ntok counts every token up to the end or the error;
 * the first CONF_LEX_TOKS are stored.  On error, *ecol and *why say where and
 * why.
 */
int conf_lex_line(const char *line, size_t len, char *buf,
    struct conf_tok *toks, unsigned *ntok, unsigned *ecol,
    const char **why) CDN_WUR;

/* conf_parse.c */

/* A DURATION unit, largest first; "ms" last, and it divides everything. */
struct conf_dur_unit {
	const char *name;
	uint64_t ms;
};
#define CONF_NDUR_UNITS 5
extern const struct conf_dur_unit conf_parse_dur_units[CONF_NDUR_UNITS];

/* A UINT value: digits only, at most UINT32_MAX. */
int conf_parse_uint(const char *s, uint64_t *out, const char **why) CDN_WUR;

/* conf_argv.c: how --help and edged.conf(5) name a directive's value. */
const char *conf_desc_metavar(const struct conf_desc *d);

/* conf_format.c */

/* <v> bytes in the largest unit that divides it exactly: "1G", "1536". */
void conf_format_size(char *buf, size_t len, uint64_t v);
/* A number the way its directive's type is written in a file. */
void conf_format_number(
    const struct conf_desc *d, char *buf, size_t len, uint64_t v);

#endif /* CONF_INT_H */
