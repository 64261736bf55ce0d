/*
 * edged's configuration loader (conf/conf.h).
 *
 * Every directive is one row of conf/conf_keys.h.  This file expands the rows
 * into a table of descriptors (name, type, bounds, default, doc, and the
 * offsetof its struct conf field) and drives everything from that table:
 * the defaults, the config-file parser, the command-line flags, --help and
 * --dump-config.  Nothing else here knows a directive by name, except the
 * short aliases -l, -o and -p.
 *
 * Layers, lowest first: defaults, the file, the flags.  A scalar is
 * overwritten by a higher layer.  A list (STRLIST, ADDRLIST) is replaced by
 * the first occurrence in a higher layer and appended to by the later ones.
 * Defaults go through the same value parser as the file, so a bad default in
 * conf_keys.h is caught (and aborts) the first time a conf is built.
 *
 * Errors never stop a parse: each is printed to the caller's stream as it is
 * found, GNU style, and counted; the load returns CDN_EINVAL at the end, so
 * the user sees every mistake at once.  A flood (a binary file given as the
 * config) stops after CONF_MAX_ERRORS.
 *
 * Threads: a struct conf is built by one thread and immutable once it is
 * published; afterwards only its reference count changes (atomically).
 * This file has no global mutable state.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/conf_int.h"
#include "http/http_authority.h"
#include "http/http_listen.h"

/* Errors printed for one source before giving up on it. */
#define CONF_MAX_ERRORS 100

const struct conf_desc conf_descs[CONF_NKEYS] = {
#define CONF_KEY(name, type, min, max, def, doc)                               \
	{#name, CONF_T_##type, (uint64_t)(min), (uint64_t)(max), def, doc,     \
	    offsetof(struct conf, name), 0},
#define CONF_SITE_KEY(name, type, min, max, def, doc)                          \
	{#name, CONF_T_##type, (uint64_t)(min), (uint64_t)(max), def, doc,     \
	    offsetof(struct conf, name), 1},
#include "conf/conf_keys.h"
#undef CONF_SITE_KEY
#undef CONF_KEY
};

/* ---- small helpers ---- */

void *
conf_xrealloc(void *p, size_t len)
{
	void *q = realloc(p, len);

	if (q == NULL) {
		fprintf(stderr, "out of memory allocating %zu bytes\n", len);
		abort();
	}
	return q;
}

void
conf_strlist_push(struct conf_strlist *l, const char *s)
{
	unsigned n = l->n;

	/* Capacity is implied by n: grow at 0 and at every power of two. */
	if ((n & (n - 1)) == 0) {
		CDN_ASSERT(n < UINT32_MAX / 2);
		l->v = conf_xrealloc(l->v, sizeof(*l->v) * (n < 4 ? 4 : 2 * n));
	}
	l->v[n] = cdn_xstrdup(s);
	l->n = n + 1;
}

void
conf_strlist_clear(struct conf_strlist *l)
{
	for (unsigned i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

const struct conf_desc *
conf_desc_find(const char *name, size_t len)
{
	for (size_t i = 0; i < CONF_NKEYS; i++) {
		if (strlen(conf_descs[i].name) == len &&
		    memcmp(conf_descs[i].name, name, len) == 0)
			return &conf_descs[i];
	}
	return NULL;
}

static const char *const long_opts[] = {
    "config", "dump-config", "help", "version"};

/* The flag of a directive: "--" and the name with '_' written '-'. */
static void
flag_name(const struct conf_desc *d, char *buf, size_t len)
{
	size_t i;

	CDN_ASSERT(strlen(d->name) + 3 <= len);
	buf[0] = '-';
	buf[1] = '-';
	for (i = 0; d->name[i] != '\0'; i++)
		buf[i + 2] = d->name[i] == '_' ? '-' : d->name[i];
	buf[i + 2] = '\0';
}

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

/* The directive nearest to name[0..len), if within distance 2, or NULL. */
static const char *
suggest_directive(const char *name, size_t len)
{
	const char *best = NULL;
	unsigned bestd = 3, dist;

	for (size_t i = 0; i < CONF_NKEYS; i++) {
		dist = conf_err_edit_distance(
		    name, len, conf_descs[i].name, strlen(conf_descs[i].name));
		if (dist < bestd) {
			bestd = dist;
			best = conf_descs[i].name;
		}
	}
	return best;
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
conf_err_flag(
    struct conf_err *es, const char *flag, size_t flen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_vprint(es, 0, 0, flag, flen, fmt, ap);
	va_end(ap);
}

/* ---- value formatting ---- */

void
conf_format_size(char *buf, size_t len, uint64_t v)
{
	static const char units[] = "KMGT";
	int u = -1;

	while (v != 0 && u < 3 && v % 1024 == 0) {
		v /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%" PRIu64, v);
	else
		snprintf(buf, len, "%" PRIu64 "%c", v, units[u]);
}

const struct conf_dur_unit conf_parse_dur_units[CONF_NDUR_UNITS] = {
    {"d", 86400000},
    {"h", 3600000},
    {"m", 60000},
    {"s", 1000},
    {"ms", 1},
};

/* <ms> in the largest unit that divides it exactly: "30s", "1500ms", "0". */
static void
format_duration(char *buf, size_t len, uint64_t ms)
{
	if (ms == 0) {
		snprintf(buf, len, "0");
		return;
	}
	for (size_t i = 0; i < CDN_ARRAY_LEN(conf_parse_dur_units); i++) {
		if (ms % conf_parse_dur_units[i].ms == 0) {
			snprintf(buf, len, "%" PRIu64 "%s",
			    ms / conf_parse_dur_units[i].ms,
			    conf_parse_dur_units[i].name);
			return;
		}
	}
	CDN_ASSERT(0); /* "ms" divides everything */
}

void
conf_format_number(const struct conf_desc *d, char *buf, size_t len, uint64_t v)
{
	if (d->type == CONF_T_SIZE)
		conf_format_size(buf, len, v);
	else if (d->type == CONF_T_DURATION)
		format_duration(buf, len, v);
	else
		snprintf(buf, len, "%" PRIu64, v);
}

/* ---- value parsers ---- */

/* Leading decimal digits of *sp into *out; CDN_EINVAL on none or overflow. */
static int
parse_u64(const char **sp, uint64_t *out, const char **why)
{
	const char *p = *sp;
	uint64_t v = 0;

	if (!conf_is_digit(*p)) {
		*why = "not a number";
		return CDN_EINVAL;
	}
	for (; conf_is_digit(*p); p++) {
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10) {
			*why = "too large";
			return CDN_EINVAL;
		}
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*sp = p;
	*out = v;
	return CDN_OK;
}

int
conf_parse_size(const char *s, uint64_t *out, const char **why)
{
	const char *p = s;
	uint64_t v;
	unsigned shift = 0;

	CDN_ASSERT(s != NULL && out != NULL && why != NULL);
	if (*p == '\0') {
		*why = "empty value";
		return CDN_EINVAL;
	}
	if (!conf_is_digit(*p)) {
		*why = "not a size (a number with an optional K, M, G or T "
		       "suffix)";
		return CDN_EINVAL;
	}
	if (parse_u64(&p, &v, why) != CDN_OK)
		return CDN_EINVAL;
	if (*p == '.' || *p == ',') {
		*why = "fractions are not supported (write 1536K, not 1.5M)";
		return CDN_EINVAL;
	}
	switch (conf_ascii_lower(*p)) {
	case 'k':
		shift = 10;
		break;
	case 'm':
		shift = 20;
		break;
	case 'g':
		shift = 30;
		break;
	case 't':
		shift = 40;
		break;
	default:
		break;
	}
	if (shift != 0)
		p++;
	if (shift != 0 && conf_ascii_lower(p[0]) == 'i' &&
	    conf_ascii_lower(p[1]) == 'b')
		p += 2;
	else if (conf_ascii_lower(*p) == 'b')
		p++;
	if (*p != '\0') {
		*why = "unknown unit (K, M, G or T, optionally followed by B "
		       "or iB)";
		return CDN_EINVAL;
	}
	if (shift != 0 && v > (UINT64_MAX >> shift)) {
		*why = "too large";
		return CDN_EINVAL;
	}
	*out = v << shift;
	return CDN_OK;
}

int
conf_parse_duration_ms(const char *s, uint64_t *out, const char **why)
{
	const char *p = s;
	uint64_t v;

	CDN_ASSERT(s != NULL && out != NULL && why != NULL);
	if (*p == '\0') {
		*why = "empty value";
		return CDN_EINVAL;
	}
	if (!conf_is_digit(*p)) {
		*why = "not a duration (a number and a unit: ms, s, m, h or d)";
		return CDN_EINVAL;
	}
	if (parse_u64(&p, &v, why) != CDN_OK)
		return CDN_EINVAL;
	if (*p == '.' || *p == ',') {
		*why = "fractions are not supported (write 1500ms, not 1.5s)";
		return CDN_EINVAL;
	}
	if (*p == '\0') {
		if (v == 0) { /* zero is zero in any unit */
			*out = 0;
			return CDN_OK;
		}
		*why = "missing unit (ms, s, m, h or d)";
		return CDN_EINVAL;
	}
	for (size_t i = 0; i < CDN_ARRAY_LEN(conf_parse_dur_units); i++) {
		if (strcmp(p, conf_parse_dur_units[i].name) != 0)
			continue;
		if (v > UINT64_MAX / conf_parse_dur_units[i].ms) {
			*why = "too large";
			return CDN_EINVAL;
		}
		*out = v * conf_parse_dur_units[i].ms;
		return CDN_OK;
	}
	*why = "unknown unit (ms, s, m, h or d)";
	return CDN_EINVAL;
}

int
conf_parse_uint(const char *s, uint64_t *out, const char **why)
{
	const char *p = s;
	uint64_t v;

	if (*p == '\0') {
		*why = "empty value";
		return CDN_EINVAL;
	}
	if (!conf_is_digit(*p)) {
		*why = "not a number";
		return CDN_EINVAL;
	}
	if (parse_u64(&p, &v, why) != CDN_OK)
		return CDN_EINVAL;
	if (*p != '\0') {
		*why = "not a number (no unit or sign)";
		return CDN_EINVAL;
	}
	if (v > UINT32_MAX) {
		*why = "too large";
		return CDN_EINVAL;
	}
	*out = v;
	return CDN_OK;
}

int
conf_parse_url(const char *s, const char **why)
{
	char h[HTTP_AUTHORITY_HOST_MAX];
	const char *p, *auth_end, *portp;
	size_t portlen;
	uint16_t pv;

	CDN_ASSERT(s != NULL && why != NULL);
	if (strncasecmp(s, "http://", 7) == 0) {
		p = s + 7;
	} else if (strncasecmp(s, "https://", 8) == 0) {
		p = s + 8;
	} else {
		*why = "must start with http:// or https://";
		return CDN_EINVAL;
	}
	for (const char *q = s; *q != '\0'; q++) {
		if (*q == ' ' || conf_is_ctl((unsigned char)*q)) {
			*why = "spaces and control characters are not allowed "
			       "in a URL";
			return CDN_EINVAL;
		}
	}
	auth_end = p + strcspn(p, "/?#");
	if (memchr(p, '@', (size_t)(auth_end - p)) != NULL) {
		*why = "credentials in the origin URL are not supported";
		return CDN_EINVAL;
	}
	if (auth_end == p) {
		*why = "missing host";
		return CDN_EINVAL;
	}
	if (http_authority_split(
	        p, (size_t)(auth_end - p), h, &portp, &portlen, why) != CDN_OK)
		return CDN_EINVAL;
	if (p[0] != '[' && http_authority_check_host(h, why) != CDN_OK)
		return CDN_EINVAL;
	if (portp != NULL &&
	    http_authority_parse_port(portp, portlen, &pv, why) != CDN_OK)
		return CDN_EINVAL;
	if (strchr(auth_end, '?') != NULL) {
		*why = "a query string in the origin URL is not supported";
		return CDN_EINVAL;
	}
	if (strchr(auth_end, '#') != NULL) {
		*why = "a fragment in the origin URL is not supported";
		return CDN_EINVAL;
	}
	return CDN_OK;
}

int
conf_parse_sni_cert(const char *s, char *buf, size_t buflen,
    struct conf_sni_cert *out, const char **why)
{
	char *f[5], *p, *name;
	size_t len = strlen(s), nlen;
	unsigned n = 0;
	int dots = 0;

	CDN_ASSERT(buf != NULL && out != NULL && why != NULL);
	CDN_ASSERT(buflen > len);
	memcpy(buf, s, len + 1);
	for (p = buf; *p != '\0' && n < CDN_ARRAY_LEN(f);) {
		while (*p == ' ' || *p == '\t')
			*p++ = '\0';
		if (*p == '\0')
			break;
		f[n++] = p;
		while (*p != '\0' && *p != ' ' && *p != '\t')
			p++;
	}
	if (n < 3) {
		*why = "expected \"NAME CERTFILE KEYFILE [OCSPFILE]\"";
		return CDN_EINVAL;
	}
	if (n > 4) {
		*why = "more than four fields (NAME CERTFILE KEYFILE "
		       "[OCSPFILE]; file names cannot contain blanks)";
		return CDN_EINVAL;
	}
	name = f[0];
	for (p = name; *p != '\0'; p++)
		*p = conf_ascii_lower(*p);
	nlen = strlen(name);
	if (nlen > 1 && name[nlen - 1] == '.')
		name[--nlen] = '\0';
	p = name;
	if (p[0] == '*') {
		if (p[1] != '.') {
			*why = "a wildcard must be a whole first label "
			       "(*.example.com)";
			return CDN_EINVAL;
		}
		p += 2;
		for (const char *q = p; *q != '\0'; q++)
			dots += *q == '.';
		if (dots == 0) {
			*why = "a wildcard needs at least two labels after "
			       "\"*.\" (*.example.com)";
			return CDN_EINVAL;
		}
	}
	if (strchr(p, '*') != NULL) {
		*why = "'*' is only allowed as the whole first label";
		return CDN_EINVAL;
	}
	if (*p == '\0') {
		*why = "empty name";
		return CDN_EINVAL;
	}
	if (strspn(p, "0123456789.") == strlen(p) || strchr(p, ':') != NULL) {
		*why = "an IP address is not a server name (SNI carries names "
		       "only)";
		return CDN_EINVAL;
	}
	if (http_authority_check_host(p, why) != CDN_OK)
		return CDN_EINVAL;
	out->name = name;
	out->cert = f[1];
	out->key = f[2];
	out->ocsp = n == 4 ? f[3] : NULL;
	return CDN_OK;
}

/* ---- setting one directive ---- */

static int
check_text(const char *s, const char **why)
{
	for (; *s != '\0'; s++) {
		if (conf_is_ctl((unsigned char)*s)) {
			*why = "control characters are not allowed";
			return CDN_EINVAL;
		}
	}
	return CDN_OK;
}

void
conf_set_str(char **sp, const char *val)
{
	char *old = *sp;

	*sp = cdn_xstrdup(val); /* val may point into the old value */
	free(old);
}

int
conf_set_value(struct conf *c, const struct conf_desc *d, const char *val,
    char *msg, size_t msglen, const char **why)
{
	void *f = conf_field(c, d);
	char host[HTTP_AUTHORITY_HOST_MAX], lo[32], hi[32];
	uint16_t port;
	uint64_t v;
	enum cdn_log_level level;
	struct conf_sni_cert sni;
	char *tmp;
	int rc;

	if (check_text(val, why) != CDN_OK)
		return CDN_EINVAL;
	switch (d->type) {
	case CONF_T_SNICERT:
		tmp = cdn_xmalloc(strlen(val) + 1);
		rc = conf_parse_sni_cert(val, tmp, strlen(val) + 1, &sni, why);
		free(tmp);
		if (rc != CDN_OK)
			return CDN_EINVAL;
		conf_strlist_push(f, val);
		return CDN_OK;
	case CONF_T_ORIGINSRV: {
		struct conf_origin_server os;

		if (conf_parse_origin_server(val, &os, why) != CDN_OK)
			return CDN_EINVAL;
		conf_strlist_push(f, val);
		return CDN_OK;
	}
	case CONF_T_STR:
		conf_set_str(f, val);
		return CDN_OK;
	case CONF_T_STRLIST:
		conf_strlist_push(f, val);
		return CDN_OK;
	case CONF_T_ADDR:
		/* "" means unset, as in the defaults and in a dump. */
		if (*val != '\0' &&
		    http_listen_parse(val, host, sizeof(host), &port, why) !=
		        CDN_OK)
			return CDN_EINVAL;
		conf_set_str(f, val);
		return CDN_OK;
	case CONF_T_ADDRLIST:
		if (http_listen_parse(val, host, sizeof(host), &port, why) !=
		    CDN_OK)
			return CDN_EINVAL;
		conf_strlist_push(f, val);
		return CDN_OK;
	case CONF_T_URL:
		if (*val != '\0' && conf_parse_url(val, why) != CDN_OK)
			return CDN_EINVAL;
		conf_set_str(f, val);
		return CDN_OK;
	case CONF_T_LOGLEVEL:
		if (cdn_log_level_parse(val, &level) != CDN_OK) {
			*why = "unknown level (err, warn, info or debug)";
			return CDN_EINVAL;
		}
		*(enum cdn_log_level *)f = level;
		return CDN_OK;
	case CONF_T_SIZE:
		rc = conf_parse_size(val, &v, why);
		break;
	case CONF_T_DURATION:
		rc = conf_parse_duration_ms(val, &v, why);
		break;
	case CONF_T_UINT:
		rc = conf_parse_uint(val, &v, why);
		break;
	default:
		CDN_ASSERT(0);
		return CDN_EINVAL;
	}
	if (rc != CDN_OK)
		return CDN_EINVAL;
	if ((d->min != 0 || d->max != 0) && (v < d->min || v > d->max)) {
		conf_format_number(d, lo, sizeof(lo), d->min);
		conf_format_number(d, hi, sizeof(hi), d->max);
		snprintf(msg, msglen, "must be between %s and %s", lo, hi);
		*why = msg;
		return CDN_EINVAL;
	}
	if (d->type == CONF_T_UINT)
		*(unsigned *)f = (unsigned)v;
	else
		*(uint64_t *)f = v;
	return CDN_OK;
}

/* The table's own consistency: names, bounds, and that every default parses. */
static void
check_table(void)
{
	for (size_t i = 0; i < CONF_NKEYS; i++) {
		const struct conf_desc *d = &conf_descs[i];

		CDN_ASSERT(strlen(d->name) + 3 <= CONF_NAME_SHOWN_MAX);
		CDN_ASSERT(strcmp(d->name, "config") != 0);
		CDN_ASSERT(d->min <= d->max);
		CDN_ASSERT(d->type != CONF_T_UINT || d->max <= UINT32_MAX);
		for (size_t j = 0; j < i; j++)
			CDN_ASSERT(strcmp(d->name, conf_descs[j].name) != 0);
		for (const char *p = d->name; *p != '\0'; p++)
			CDN_ASSERT((*p >= 'a' && *p <= 'z') ||
			    conf_is_digit(*p) || *p == '_');
	}
}

struct conf *
conf_new_defaults(void)
{
	struct conf *c;
	char msg[128];
	const char *why;

	check_table();
	c = cdn_xcalloc(1, sizeof(*c));
	c->magic = CONF_MAGIC;
	atomic_init(&c->refcnt, 1);
	for (size_t i = 0; i < CONF_NKEYS; i++) {
		const struct conf_desc *d = &conf_descs[i];

		if (conf_desc_is_list(d) && d->def[0] == '\0')
			continue; /* an empty list */
		if (conf_set_value(c, d, d->def, msg, sizeof(msg), &why) !=
		    CDN_OK) {
			fprintf(stderr,
			    "conf_keys.h: default \"%s\" of %s: %s\n", d->def,
			    d->name, why);
			CDN_ASSERT(!"invalid default in conf/conf_keys.h");
		}
	}
	return c;
}

int
conf_set(struct conf *c, const char *name, const char *value, FILE *err)
{
	struct conf_err es = {.err = err, .name = "edged"};
	const struct conf_desc *d;
	char msg[128];
	const char *why;

	MAGIC_CHECK(c, CONF_MAGIC);
	CDN_ASSERT(name != NULL && value != NULL);
	d = conf_desc_find(name, strlen(name));
	if (d == NULL) {
		conf_err_at(&es, 0, 0, name, "unknown directive");
		return CDN_EINVAL;
	}
	if (conf_set_value(c, d, value, msg, sizeof(msg), &why) != CDN_OK) {
		conf_err_at(&es, 0, 0, name, "%s", why);
		return CDN_EINVAL;
	}
	return CDN_OK;
}

static void
site_free(struct conf_site *s)
{
	MAGIC_CHECK(s, CONF_SITE_MAGIC);
	for (unsigned i = 0; i < s->nnames; i++)
		free(s->names[i]);
	free(s->names);
	for (unsigned i = 0; i < s->nsets; i++)
		free(s->sets[i].val);
	free(s->sets);
	free(s->file);
	conf_unref(&s->conf);
	MAGIC_WIPE(s);
	free(s);
}

/* The directives of <c> in a new conf; no sites, no file name. */
static struct conf *
conf_clone(const struct conf *c)
{
	struct conf *n = cdn_xcalloc(1, sizeof(*n));

	n->magic = CONF_MAGIC;
	atomic_init(&n->refcnt, 1);
	for (size_t i = 0; i < CONF_NKEYS; i++) {
		const struct conf_desc *d = &conf_descs[i];
		const struct conf_strlist *l;

		switch (d->type) {
		case CONF_T_STR:
		case CONF_T_ADDR:
		case CONF_T_URL:
			*(char **)conf_field(n, d) =
			    cdn_xstrdup(*(char *const *)conf_cfield(c, d));
			break;
		case CONF_T_STRLIST:
		case CONF_T_ADDRLIST:
		case CONF_T_SNICERT:
		case CONF_T_ORIGINSRV:
			l = conf_cfield(c, d);
			for (unsigned j = 0; j < l->n; j++)
				conf_strlist_push(conf_field(n, d), l->v[j]);
			break;
		case CONF_T_SIZE:
		case CONF_T_DURATION:
			*(uint64_t *)conf_field(n, d) =
			    *(const uint64_t *)conf_cfield(c, d);
			break;
		case CONF_T_UINT:
			*(unsigned *)conf_field(n, d) =
			    *(const unsigned *)conf_cfield(c, d);
			break;
		case CONF_T_LOGLEVEL:
			*(enum cdn_log_level *)conf_field(n, d) =
			    *(const enum cdn_log_level *)conf_cfield(c, d);
			break;
		}
	}
	return n;
}

void
conf_resolve_sites(struct conf *c)
{
	char msg[128];
	const char *why;

	MAGIC_CHECK(c, CONF_MAGIC);
	for (unsigned i = 0; i < c->nsites; i++) {
		struct conf_site *s = c->sites[i];
		unsigned char seen[CONF_NKEYS] = {0};

		conf_unref(&s->conf);
		s->conf = conf_clone(c);
		for (unsigned j = 0; j < s->nsets; j++) {
			const struct conf_desc *d = &conf_descs[s->sets[j].idx];

			/* As a file over the defaults: the block's list
			 * replaces the inherited one. */
			if (!seen[s->sets[j].idx]++ && conf_desc_is_list(d))
				conf_strlist_clear(conf_field(s->conf, d));
			/* Checked when the block was read. */
			CDN_ASSERT(conf_set_value(s->conf, d, s->sets[j].val,
			               msg, sizeof(msg), &why) == CDN_OK);
		}
		/* A block that names its own single origin means it, even if
		 * the top level has a pool (origin_server would win). */
		if (seen[CONF_IDX_origin] && !seen[CONF_IDX_origin_server])
			conf_strlist_clear(&s->conf->origin_server);
	}
}

int
conf_parse_origin_server(
    const char *s, struct conf_origin_server *out, const char **why)
{
	struct conf_origin_server o = {.weight = 1};
	const char *p = s, *end;
	char word[1100];
	uint64_t v;
	size_t len;
	int first = 1;

	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		end = p + strcspn(p, " \t");
		len = (size_t)(end - p);
		if (len >= sizeof(word)) {
			*why =
			    first ? "server URL too long" : "option too long";
			return CDN_EINVAL;
		}
		memcpy(word, p, len);
		word[len] = '\0';
		p = end;
		if (first) {
			if (conf_parse_url(word, why) != CDN_OK)
				return CDN_EINVAL;
			if (len >= sizeof(o.url)) {
				*why = "server URL too long";
				return CDN_EINVAL;
			}
			memcpy(o.url, word, len + 1);
			first = 0;
		} else if (strcmp(word, "backup") == 0) {
			o.backup = 1;
		} else if (strncmp(word, "weight=", 7) == 0) {
			if (conf_parse_uint(word + 7, &v, why) != CDN_OK)
				return CDN_EINVAL;
			if (v < 1 || v > 256) {
				*why = "weight must be between 1 and 256";
				return CDN_EINVAL;
			}
			o.weight = (unsigned)v;
		} else if (strncmp(word, "max_conns=", 10) == 0) {
			if (conf_parse_uint(word + 10, &v, why) != CDN_OK)
				return CDN_EINVAL;
			if (v > 1000000) {
				*why = "max_conns must be at most 1000000";
				return CDN_EINVAL;
			}
			o.max_conns = (unsigned)v;
		} else {
			*why = "unknown server option (weight=N, max_conns=N "
			       "or backup)";
			return CDN_EINVAL;
		}
	}
	if (first) {
		*why = "missing server URL";
		return CDN_EINVAL;
	}
	*out = o;
	return CDN_OK;
}

struct conf *
conf_ref(struct conf *c)
{
	unsigned prev;

	MAGIC_CHECK(c, CONF_MAGIC);
	prev = atomic_fetch_add_explicit(&c->refcnt, 1, memory_order_relaxed);
	CDN_ASSERT(prev > 0);
	return c;
}

void
conf_unref(struct conf **cp)
{
	struct conf *c;
	unsigned prev;

	CDN_ASSERT(cp != NULL);
	c = *cp;
	*cp = NULL;
	if (c == NULL)
		return;
	MAGIC_CHECK(c, CONF_MAGIC);
	prev = atomic_fetch_sub_explicit(&c->refcnt, 1, memory_order_acq_rel);
	CDN_ASSERT(prev > 0);
	if (prev > 1)
		return;
	for (size_t i = 0; i < CONF_NKEYS; i++) {
		const struct conf_desc *d = &conf_descs[i];

		switch (d->type) {
		case CONF_T_STR:
		case CONF_T_ADDR:
		case CONF_T_URL:
			free(*(char **)conf_field(c, d));
			break;
		case CONF_T_STRLIST:
		case CONF_T_ADDRLIST:
		case CONF_T_SNICERT:
		case CONF_T_ORIGINSRV:
			conf_strlist_clear(conf_field(c, d));
			break;
		default:
			break;
		}
	}
	for (unsigned i = 0; i < c->nsites; i++)
		site_free(c->sites[i]);
	free(c->sites);
	free(c->config);
	MAGIC_WIPE(c);
	free(c);
}

/* ---- the config file ---- */

int
conf_lex_line(const char *line, size_t len, char *buf, struct conf_tok *toks,
    unsigned *ntok, unsigned *ecol, const char **why)
{
	size_t i = 0, o = 0, start, tokstart;
	unsigned n = 0;
	char ch;

	for (;;) {
		while (i < len && (line[i] == ' ' || line[i] == '\t'))
			i++;
		if (i == len || line[i] == '#')
			break;
		start = i;
		tokstart = o;
		if (line[i] == '"') {
			for (i++;; i++) {
				if (i == len) {
					*ecol = (unsigned)start + 1;
					*why = "unterminated quoted value";
					goto fail;
				}
				ch = line[i];
				if (ch == '"')
					break;
				if (ch == '\\') {
					if (i + 1 < len &&
					    (line[i + 1] == '"' ||
					        line[i + 1] == '\\')) {
						buf[o++] = line[++i];
						continue;
					}
					*ecol = (unsigned)i + 1;
					*why = "invalid escape (only \\\" and "
					       "\\\\ are allowed)";
					goto fail;
				}
				if (conf_is_ctl((unsigned char)ch)) {
					*ecol = (unsigned)i + 1;
					*why = "control character in a quoted "
					       "value";
					goto fail;
				}
				buf[o++] = ch;
			}
			i++; /* the closing quote */
			if (i < len && line[i] != ' ' && line[i] != '\t' &&
			    line[i] != '#') {
				*ecol = (unsigned)i + 1;
				*why = "unexpected text after a closing quote";
				goto fail;
			}
		} else {
			for (; i < len && line[i] != ' ' && line[i] != '\t' &&
			     line[i] != '#';
			     i++) {
				ch = line[i];
				if ((ch == '{' || ch == '}') && i == start &&
				    (i + 1 == len || line[i + 1] == ' ' ||
				        line[i + 1] == '\t' ||
				        line[i + 1] == '#')) {
					buf[o++] = ch; /* a brace on its own */
					i++;
					break;
				}
				if (ch == '{' || ch == '}') {
					*ecol = (unsigned)i + 1;
					*why = "a brace must stand alone "
					       "(put blanks around it)";
					goto fail;
				}
				if (ch == '"') {
					*ecol = (unsigned)i + 1;
					*why =
					    "unexpected quote inside a value "
					    "(quote the whole value)";
					goto fail;
				}
				if (conf_is_ctl((unsigned char)ch)) {
					*ecol = (unsigned)i + 1;
					*why = "control character";
					goto fail;
				}
				buf[o++] = ch;
			}
		}
		buf[o++] = '\0';
		if (n < CONF_LEX_TOKS) {
			toks[n].s = buf + tokstart;
			toks[n].col = (unsigned)start + 1;
			toks[n].endcol = (unsigned)i + 1;
		}
		n++;
	}
	*ntok = n;
	return CDN_OK;
fail:
	*ntok = n;
	return CDN_EINVAL;
}

struct fileparse {
	struct conf_err es;
	unsigned first_line[CONF_NKEYS]; /* 0: not seen in this file */
	/* Inside a site block: the site, and first lines within it. */
	struct conf_site *site;
	unsigned site_first_line[CONF_NKEYS];
	struct conf *scratch; /* where block values are checked */
};

/*
 * A site name: a host name or "*." and a domain of two labels or more,
 * stored lower case without a trailing dot.  No port: a site is the same
 * on every listener.
 */
static int
site_name(const char *s, char *out, size_t outlen, const char **why)
{
	size_t len = strlen(s);
	const char *h = s;

	if (len > 0 && s[len - 1] == '.')
		len--;
	if (len == 0 || len >= outlen) {
		*why = "invalid site name";
		return CDN_EINVAL;
	}
	for (size_t i = 0; i < len; i++)
		out[i] = conf_ascii_lower(s[i]);
	out[len] = '\0';
	if (strchr(out, ':') != NULL || strchr(out, '[') != NULL) {
		*why = "a site name has no port (and IPv6 literals are not "
		       "supported)";
		return CDN_EINVAL;
	}
	h = out;
	if (out[0] == '*') {
		if (out[1] != '.' || strchr(out + 2, '.') == NULL) {
			*why = "a wildcard is \"*.\" and a domain of two "
			       "labels or more (*.example.com)";
			return CDN_EINVAL;
		}
		h = out + 2;
	}
	if (strchr(h, '*') != NULL) {
		*why = "'*' is allowed only as the first label";
		return CDN_EINVAL;
	}
	return http_authority_check_host(h, why);
}

/* "site NAME... {": open a block. */
static void
site_open(struct conf *c, struct fileparse *fp, unsigned lineno,
    const struct conf_tok *toks, unsigned ntok)
{
	struct conf_site *s;
	char name[256];
	const char *why;
	unsigned last = ntok - 1;

	if (fp->site != NULL) {
		conf_err_at(&fp->es, lineno, toks[0].col, "site",
		    "sites cannot be nested (the block at line %u is not "
		    "closed)",
		    fp->site->line);
		return;
	}
	if (ntok > CONF_LEX_TOKS) {
		conf_err_at(&fp->es, lineno, toks[0].col, "site",
		    "too many names (at most %d per block)",
		    CONF_SITE_NAMES_MAX);
		return;
	}
	if (strcmp(toks[last].s, "{") != 0) {
		conf_err_at(&fp->es, lineno, toks[last].endcol, "site",
		    "expected '{' at the end of the line");
		return;
	}
	/* Even with an error, the block opens: its lines are still checked
	 * and its '}' is not reported as stray. */
	if (ntok < 3)
		conf_err_at(&fp->es, lineno, toks[last].col, "site",
		    "missing host name");
	s = cdn_xcalloc(1, sizeof(*s));
	s->magic = CONF_SITE_MAGIC;
	s->file = cdn_xstrdup(fp->es.name);
	s->line = lineno;
	s->col = toks[0].col;
	s->names = cdn_xcalloc(ntok > 2 ? ntok - 2 : 1, sizeof(*s->names));
	for (unsigned i = 1; i < last; i++) {
		if (site_name(toks[i].s, name, sizeof(name), &why) != CDN_OK) {
			conf_err_at(&fp->es, lineno, toks[i].col, "site",
			    "\"%s\": %s", toks[i].s, why);
			continue;
		}
		s->names[s->nnames++] = cdn_xstrdup(name);
	}
	c->sites = conf_xrealloc(c->sites, sizeof(*c->sites) * (c->nsites + 1));
	c->sites[c->nsites++] = s;
	fp->site = s;
	memset(fp->site_first_line, 0, sizeof(fp->site_first_line));
	if (fp->scratch == NULL)
		fp->scratch = conf_new_defaults();
}

/* A directive inside a block: check it now, apply it at resolve time. */
static void
site_set(struct fileparse *fp, unsigned lineno, const struct conf_desc *d,
    const struct conf_tok *name, const struct conf_tok *val)
{
	struct conf_site *s = fp->site;
	unsigned idx = (unsigned)(d - conf_descs);
	char msg[128];
	const char *why;

	if (!d->site) {
		conf_err_at(&fp->es, lineno, name->col, d->name,
		    "cannot be set in a site block (only at the top level)");
		return;
	}
	if (fp->site_first_line[idx] == 0) {
		fp->site_first_line[idx] = lineno;
	} else if (!conf_desc_is_list(d)) {
		conf_err_at(&fp->es, lineno, name->col, d->name,
		    "set twice in this site (first at line %u)",
		    fp->site_first_line[idx]);
		return;
	}
	if (conf_set_value(fp->scratch, d, val->s, msg, sizeof(msg), &why) !=
	    CDN_OK) {
		conf_err_at(&fp->es, lineno, val->col, d->name, "%s", why);
		return;
	}
	s->sets = conf_xrealloc(s->sets, sizeof(*s->sets) * (s->nsets + 1));
	s->sets[s->nsets].idx = idx;
	s->sets[s->nsets].val = cdn_xstrdup(val->s);
	s->nsets++;
}

static void
parse_line(struct conf *c, struct fileparse *fp, unsigned lineno,
    const char *line, size_t len)
{
	char buf[CONF_MAX_LINE + 1], msg[128], joined[CONF_MAX_LINE + 1];
	struct conf_tok toks[CONF_LEX_TOKS];
	const struct conf_desc *d;
	const char *why, *name, *sugg;
	unsigned ntok, ecol, idx;

	CDN_ASSERT(len <= CONF_MAX_LINE);
	if (conf_lex_line(line, len, buf, toks, &ntok, &ecol, &why) != CDN_OK) {
		/* Name the directive when the error is past it. */
		conf_err_at(&fp->es, lineno, ecol, ntok > 0 ? toks[0].s : NULL,
		    "%s", why);
		return;
	}
	if (ntok == 0)
		return;
	name = toks[0].s;
	if (strcmp(name, "site") == 0) {
		site_open(c, fp, lineno, toks, ntok);
		return;
	}
	if (strcmp(name, "}") == 0 || strcmp(name, "{") == 0) {
		if (name[0] == '}' && fp->site != NULL) {
			fp->site = NULL;
			if (ntok > 1)
				conf_err_at(&fp->es, lineno, toks[1].col, NULL,
				    "unexpected text after '}'");
		} else
			conf_err_at(&fp->es, lineno, toks[0].col, NULL,
			    "unexpected '%s' (a block starts with \"site "
			    "NAME... {\")",
			    name);
		return;
	}
	d = conf_desc_find(name, strlen(name));
	if (d == NULL) {
		if (strcmp(name, "config") == 0) {
			conf_err_at(&fp->es, lineno, toks[0].col, name,
			    "cannot be set in a config file (use -c FILE)");
			return;
		}
		sugg = suggest_directive(name, strlen(name));
		if (sugg != NULL)
			conf_err_at(&fp->es, lineno, toks[0].col, name,
			    "unknown directive (did you mean %s?)", sugg);
		else
			conf_err_at(&fp->es, lineno, toks[0].col, name,
			    "unknown directive");
		return;
	}
	if (ntok == 1) {
		conf_err_at(
		    &fp->es, lineno, toks[0].endcol, d->name, "missing value");
		return;
	}
	if (ntok > 2 && d->type == CONF_T_ORIGINSRV) {
		/* "URL weight=3 backup": the rest of the line is one value. */
		if (ntok > CONF_LEX_TOKS) {
			conf_err_at(&fp->es, lineno, toks[1].col, d->name,
			    "too many options");
			return;
		}
		joined[0] = '\0';
		for (unsigned k = 1; k < ntok; k++) {
			if (k > 1)
				strcat(joined, " ");
			strcat(joined, toks[k].s);
		}
		toks[1].s = joined;
		ntok = 2;
	}
	if (ntok > 2) {
		conf_err_at(&fp->es, lineno, toks[2].col, d->name,
		    "more than one value (quote a value that contains "
		    "spaces)");
		return;
	}
	if (fp->site != NULL) {
		site_set(fp, lineno, d, &toks[0], &toks[1]);
		return;
	}
	idx = (unsigned)(d - conf_descs);
	if (fp->first_line[idx] == 0) {
		fp->first_line[idx] = lineno;
		if (conf_desc_is_list(
		        d)) /* the file's list replaces the one below */
			conf_strlist_clear(conf_field(c, d));
	} else if (!conf_desc_is_list(d)) {
		conf_err_at(&fp->es, lineno, toks[0].col, d->name,
		    "set twice (first at line %u)", fp->first_line[idx]);
		return;
	}
	if (conf_set_value(c, d, toks[1].s, msg, sizeof(msg), &why) != CDN_OK)
		conf_err_at(&fp->es, lineno, toks[1].col, d->name, "%s", why);
}

int
conf_load_buf(
    struct conf *c, const char *name, const char *buf, size_t len, FILE *err)
{
	struct fileparse *fp;
	const char *nl;
	size_t pos = 0, end, ll;
	unsigned lineno = 0;
	int rc;

	MAGIC_CHECK(c, CONF_MAGIC);
	CDN_ASSERT(name != NULL && (buf != NULL || len == 0));
	fp = cdn_xcalloc(1, sizeof(*fp));
	fp->es.err = err;
	fp->es.name = name;
	if (len > CONF_MAX_FILE) {
		conf_err_at(&fp->es, 0, 0, NULL,
		    "file too large (more than %u KiB)", CONF_MAX_FILE / 1024);
		goto out;
	}
	if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
		pos = 3; /* a UTF-8 byte order mark, from some editors */
	while (pos < len && !fp->es.gave_up) {
		nl = memchr(buf + pos, '\n', len - pos);
		end = nl != NULL ? (size_t)(nl - buf) : len;
		ll = end - pos;
		lineno++;
		if (ll > 0 && buf[pos + ll - 1] == '\r')
			ll--; /* CRLF */
		if (ll > CONF_MAX_LINE)
			conf_err_at(&fp->es, lineno, CONF_MAX_LINE + 1, NULL,
			    "line too long (more than %u bytes)",
			    CONF_MAX_LINE);
		else
			parse_line(c, fp, lineno, buf + pos, ll);
		pos = end + 1;
	}
	if (fp->site != NULL)
		conf_err_at(&fp->es, fp->site->line, fp->site->col, "site",
		    "block not closed (missing '}')");
	conf_resolve_sites(c);
out:
	rc = fp->es.nerr > 0 ? CDN_EINVAL : CDN_OK;
	conf_unref(&fp->scratch);
	free(fp);
	return rc;
}

int
conf_load_file(struct conf *c, const char *path, FILE *err)
{
	FILE *f;
	char *buf = NULL;
	size_t len;
	int rc, saved;

	MAGIC_CHECK(c, CONF_MAGIC);
	CDN_ASSERT(path != NULL);
	f = fopen(path, "r");
	if (f == NULL) {
		saved = errno;
		if (err != NULL)
			fprintf(err, "%s: error: cannot open: %s\n", path,
			    strerror(saved));
		return CDN_EINVAL;
	}
	buf = malloc(CONF_MAX_FILE + 1);
	if (buf == NULL) {
		if (err != NULL)
			fprintf(err, "%s: error: out of memory\n", path);
		rc = CDN_EINVAL;
		goto out;
	}
	len = fread(buf, 1, CONF_MAX_FILE + 1, f);
	if (ferror(f)) {
		saved = errno;
		if (err != NULL)
			fprintf(err, "%s: error: cannot read: %s\n", path,
			    strerror(saved));
		rc = CDN_EINVAL;
		goto out;
	}
	conf_set_str(&c->config, path);
	rc = conf_load_buf(c, path, buf, len, err);
out:
	free(buf);
	fclose(f);
	return rc;
}

/* ---- validation ---- */

/*
 * The listen and listen_tls addresses in one numbering (listen first):
 * the directive, value and parsed address at index i.
 */
static int
listen_at(const struct conf *c, unsigned i, char *host, size_t hostlen,
    uint16_t *port, const char **name, const char **val, const char **why)
{
	if (i < c->listen.n) {
		*name = "listen";
		*val = c->listen.v[i];
	} else {
		*name = "listen_tls";
		*val = c->listen_tls.v[i - c->listen.n];
	}
	return http_listen_parse(*val, host, hostlen, port, why);
}

/* tls_* cross-checks: a default certificate, no SNI name twice. */
static void
validate_tls(const struct conf *c, struct conf_err *es)
{
	struct conf_sni_cert a, b;
	char *ba, *bb;
	const char *why;

	if (c->listen_tls.n > 0 && c->tls_cert[0] == '\0')
		conf_err_at(es, 0, 0, "listen_tls",
		    "needs tls_cert, the certificate served when SNI is "
		    "absent or unknown");
	if (c->tls_cert[0] == '\0' &&
	    (c->tls_key[0] != '\0' || c->tls_ocsp_file[0] != '\0'))
		conf_err_at(es, 0, 0,
		    c->tls_key[0] != '\0' ? "tls_key" : "tls_ocsp_file",
		    "set without tls_cert");
	if (c->tls_ticket_rotate > 0 && c->tls_ticket_rotate < 1000)
		conf_err_at(es, 0, 0, "tls_ticket_rotate",
		    "must be 0 (no tickets) or at least 1s");
	if (c->origin_client_key[0] != '\0' && c->origin_client_cert[0] == '\0')
		conf_err_at(es, 0, 0, "origin_client_key",
		    "set without origin_client_cert");
	for (unsigned i = 0; i < c->tls_sni_cert.n; i++) {
		ba = cdn_xstrdup(c->tls_sni_cert.v[i]);
		if (conf_parse_sni_cert(c->tls_sni_cert.v[i], ba,
		        strlen(ba) + 1, &a, &why) != CDN_OK) {
			conf_err_at(es, 0, 0, "tls_sni_cert", "%s", why);
			free(ba);
			continue;
		}
		for (unsigned j = 0; j < i; j++) {
			bb = cdn_xstrdup(c->tls_sni_cert.v[j]);
			if (conf_parse_sni_cert(c->tls_sni_cert.v[j], bb,
			        strlen(bb) + 1, &b, &why) == CDN_OK &&
			    strcmp(a.name, b.name) == 0) {
				conf_err_at(es, 0, 0, "tls_sni_cert",
				    "%s given twice", a.name);
				free(bb);
				break;
			}
			free(bb);
		}
		free(ba);
	}
}

static int
balance_known(const char *b)
{
	return strcmp(b, "round-robin") == 0 || strcmp(b, "weighted") == 0 ||
	    strcmp(b, "least-conn") == 0 || strcmp(b, "consistent-hash") == 0;
}

/*
 * The site-scoped values that must agree with each other, of the top level
 * (line 0) or of one site's effective conf (errors at its block's line).
 */
static void
validate_scoped(const struct conf *c, struct conf_err *es, unsigned line,
    unsigned col, int need_origin)
{
	if (need_origin && c->origin[0] == '\0' && c->origin_server.n == 0)
		conf_err_at(es, line, col, line > 0 ? "site" : NULL,
		    line > 0
		        ? "no origin: set origin or origin_server in the "
		          "block or at the top level"
		        : "no origin: set origin in the config or --origin");
	if (strcmp(c->cache_query, "keep") != 0 &&
	    strcmp(c->cache_query, "sort") != 0 &&
	    strcmp(c->cache_query, "drop") != 0)
		conf_err_at(es, line, col, "cache_query",
		    "\"%s\": must be keep, sort or drop", c->cache_query);
	if (c->cache_query_drop.n > 0 && c->cache_query_keep.n > 0)
		conf_err_at(es, line, col, "cache_query_keep",
		    "cannot be used with cache_query_drop");
	if (!balance_known(c->origin_balance))
		conf_err_at(es, line, col, "origin_balance",
		    "\"%s\": must be round-robin, weighted, least-conn or "
		    "consistent-hash",
		    c->origin_balance);
	if (c->origin_server.n > 64)
		conf_err_at(es, line, col, "origin_server",
		    "more than 64 servers in one pool");
	if (c->health_check_path[0] != '\0' && c->health_check_path[0] != '/')
		conf_err_at(
		    es, line, col, "health_check_path", "must start with '/'");
	if (c->health_check_status != 0 && c->health_check_status < 100)
		conf_err_at(es, line, col, "health_check_status",
		    "must be 0 (any 2xx or 3xx) or a status from 100 to 599");
}

/* Sites: each complete, no host name twice, default_site known. */
static void
validate_sites(const struct conf *c, struct conf_err *es)
{
	struct conf_err ses;
	int found = c->default_site[0] == '\0';

	for (unsigned i = 0; i < c->nsites; i++) {
		const struct conf_site *s = c->sites[i];

		ses = (struct conf_err){.err = es->err, .name = s->file};
		CDN_ASSERT(s->conf != NULL); /* conf_resolve_sites() ran */
		validate_scoped(s->conf, &ses, s->line, s->col, 1);
		for (unsigned j = 0; j < s->nnames; j++) {
			if (strcasecmp(s->names[j], c->default_site) == 0)
				found = 1;
			for (unsigned k = 0; k <= i; k++) {
				const struct conf_site *o = c->sites[k];
				unsigned lim = k == i ? j : o->nnames;
				unsigned m;

				for (m = 0; m < lim; m++)
					if (strcmp(o->names[m], s->names[j]) ==
					    0)
						break;
				if (m < lim) {
					conf_err_at(&ses, s->line, s->col,
					    "site",
					    "%s is also named by the site at "
					    "%s:%u",
					    s->names[j], o->file, o->line);
					break;
				}
			}
		}
		es->nerr += ses.nerr;
	}
	if (!found)
		conf_err_at(es, 0, 0, "default_site",
		    "\"%s\" is not a name of any site block", c->default_site);
	if (c->nsites == 0 && c->default_site[0] != '\0')
		conf_err_at(
		    es, 0, 0, "default_site", "set without site blocks");
}

int
conf_validate(const struct conf *c, FILE *err)
{
	struct conf_err es = {.err = err, .name = "edged"};
	char h1[HTTP_AUTHORITY_HOST_MAX], h2[HTTP_AUTHORITY_HOST_MAX];
	char ha[HTTP_AUTHORITY_HOST_MAX], lo[32], hi[32];
	uint16_t p1, p2, pa = 0;
	const char *why, *n1, *n2, *v1, *v2;
	unsigned nl;

	MAGIC_CHECK(c, CONF_MAGIC);
	if (c->listen.n == 0 && c->listen_tls.n == 0)
		conf_err_at(&es, 0, 0, NULL,
		    "no listen address: set listen in the config or --listen");
	/* With sites, each needs an origin; the top level may have none. */
	if (c->nsites == 0 && (c->origin == NULL || c->origin[0] == '\0') &&
	    c->origin_server.n == 0)
		conf_err_at(&es, 0, 0, NULL,
		    "no origin: set origin in the config or --origin");
	/*
	 * Values set through the parsers are valid already; these checks
	 * also cover a conf whose fields were filled in by hand.
	 */
	if (c->origin != NULL && c->origin[0] != '\0' &&
	    conf_parse_url(c->origin, &why) != CDN_OK)
		conf_err_at(&es, 0, 0, "origin", "%s", why);
	if (c->admin_listen != NULL && c->admin_listen[0] != '\0' &&
	    http_listen_parse(c->admin_listen, ha, sizeof(ha), &pa, &why) !=
	        CDN_OK) {
		conf_err_at(&es, 0, 0, "admin_listen", "%s", why);
		pa = 0;
	}
	nl = c->listen.n + c->listen_tls.n;
	for (unsigned i = 0; i < nl; i++) {
		if (listen_at(c, i, h1, sizeof(h1), &p1, &n1, &v1, &why) !=
		    CDN_OK) {
			conf_err_at(&es, 0, 0, n1, "%s", why);
			continue;
		}
		for (unsigned j = 0; j < i; j++) {
			if (listen_at(c, j, h2, sizeof(h2), &p2, &n2, &v2,
			        &why) == CDN_OK &&
			    p1 == p2 && strcmp(h1, h2) == 0) {
				if (strcmp(n1, n2) == 0)
					conf_err_at(&es, 0, 0, n1,
					    "%s given twice", v1);
				else
					conf_err_at(&es, 0, 0, n1,
					    "%s is also a %s address", v1, n2);
				break;
			}
		}
		if (pa != 0 && p1 == pa && strcmp(h1, ha) == 0)
			conf_err_at(&es, 0, 0, "admin_listen",
			    "%s is also a listen address", c->admin_listen);
	}
	validate_scoped(c, &es, 0, 0, 0);
	validate_sites(c, &es);
	validate_tls(c, &es);
	for (unsigned i = 0; i < c->compress_types.n; i++) {
		const char *t = c->compress_types.v[i];
		const char *slash = strchr(t, '/'), *star = strchr(t, '*');

		/* type/subtype; one star at most, in the subtype, as in
		 * "text/" + star or "application/" + star + "+json". */
		if (slash == NULL || slash == t || slash[1] == '\0' ||
		    (star != NULL &&
		        (star < slash || strchr(star + 1, '*') != NULL)))
			conf_err_at(&es, 0, 0, "compress_types",
			    "\"%s\": not type/subtype with at most one * in "
			    "the subtype",
			    t);
	}
	if (c->max_request_line > c->max_header_size) {
		conf_format_size(lo, sizeof(lo), c->max_request_line);
		conf_format_size(hi, sizeof(hi), c->max_header_size);
		conf_err_at(&es, 0, 0, "max_request_line",
		    "%s is larger than max_header_size (%s)", lo, hi);
	}
	return es.nerr > 0 ? CDN_EINVAL : CDN_OK;
}

/* ---- the command line ---- */

/* One directive given as a flag, applied after the file. */
struct flagval {
	const struct conf_desc *d;
	const char *flag; /* as written, for errors: flag[0..flen) */
	size_t flen;
	const char *val;
	int is_port; /* -p PORT */
};

/* The long option nearest to name[0..len), if within distance 2. */
static const char *
suggest_flag(const char *name, size_t len, char *buf, size_t buflen)
{
	char f[CONF_NAME_SHOWN_MAX];
	const char *best = NULL;
	unsigned bestd = 3, dist;

	for (size_t i = 0; i < CDN_ARRAY_LEN(long_opts); i++) {
		dist = conf_err_edit_distance(
		    name, len, long_opts[i], strlen(long_opts[i]));
		if (dist < bestd) {
			bestd = dist;
			best = long_opts[i];
		}
	}
	for (size_t i = 0; i < CONF_NKEYS; i++) {
		flag_name(&conf_descs[i], f, sizeof(f));
		dist = conf_err_edit_distance(name, len, f + 2, strlen(f + 2));
		if (dist < bestd) {
			bestd = dist;
			snprintf(buf, buflen, "%s", f + 2);
			best = buf;
		}
	}
	return best;
}

static const struct conf_desc *
find_flag(const char *name, size_t len)
{
	char f[CONF_NAME_SHOWN_MAX];

	for (size_t i = 0; i < CONF_NKEYS; i++) {
		flag_name(&conf_descs[i], f, sizeof(f));
		if (strlen(f + 2) == len && memcmp(f + 2, name, len) == 0)
			return &conf_descs[i];
	}
	return NULL;
}

static void
set_action(enum conf_action *act, enum conf_action want)
{
	/* --help wins over --version, which wins over --dump-config (which
	 * checks as -t does), which wins over -t. */
	static const int rank[] = {[CONF_ACT_RUN] = 0,
	    [CONF_ACT_TEST] = 1,
	    [CONF_ACT_DUMP] = 2,
	    [CONF_ACT_VERSION] = 3,
	    [CONF_ACT_HELP] = 4};

	if (rank[want] > rank[*act])
		*act = want;
}

/* "unknown option --NAME", with the nearest long option if there is one. */
static void
unknown_long(struct conf_err *es, const char *name, size_t nlen)
{
	char buf[CONF_NAME_SHOWN_MAX];
	const char *sugg = suggest_flag(name, nlen, buf, sizeof(buf));
	int shown =
	    nlen > CONF_NAME_SHOWN_MAX ? CONF_NAME_SHOWN_MAX : (int)nlen;

	if (sugg != NULL)
		conf_err_flag(es, NULL, 0,
		    "unknown option --%.*s (did you mean --%s?)", shown, name,
		    sugg);
	else
		conf_err_flag(
		    es, NULL, 0, "unknown option --%.*s", shown, name);
}

static enum conf_action
short_action(char opt)
{
	switch (opt) {
	case 'h':
		return CONF_ACT_HELP;
	case 'V':
		return CONF_ACT_VERSION;
	default:
		CDN_ASSERT(opt == 't');
		return CONF_ACT_TEST;
	}
}

int
conf_argv_parse(int argc, char **argv, FILE *err, struct conf **out,
    enum conf_action *action)
{
	struct conf_err es = {.err = err, .name = "edged"};
	struct flagval *fv;
	struct conf *c = NULL;
	const char *cfg = NULL, *cfgflag = NULL, *arg, *name, *eq, *val;
	const struct conf_desc *d;
	enum conf_action act = CONF_ACT_RUN;
	unsigned nfv = 0, seen[CONF_NKEYS] = {0};
	char addr[32], msg[128];
	const char *why;
	size_t nlen;
	int i, opts_done = 0, rc;

	CDN_ASSERT(argc >= 0 && (argc == 0 || argv != NULL));
	CDN_ASSERT(out != NULL && action != NULL);
	fv = cdn_xcalloc((size_t)argc + 1, sizeof(*fv));

	for (i = 1; i < argc; i++) {
		arg = argv[i];
		if (!opts_done && strcmp(arg, "--") == 0) {
			opts_done = 1;
			continue;
		}
		if (opts_done || arg[0] != '-' || arg[1] == '\0') {
			conf_err_flag(
			    &es, NULL, 0, "unexpected argument \"%s\"", arg);
			continue;
		}
		d = NULL;
		val = NULL;
		if (arg[1] == '-') {
			name = arg + 2;
			eq = strchr(name, '=');
			nlen = eq != NULL ? (size_t)(eq - name) : strlen(name);
#define IS(s) (nlen == strlen(s) && memcmp(name, s, nlen) == 0)
			if (IS("help") || IS("version") || IS("dump-config")) {
				if (eq != NULL) {
					conf_err_flag(&es, arg, nlen + 2,
					    "takes no value");
					continue;
				}
				set_action(&act,
				    IS("help")          ? CONF_ACT_HELP
				        : IS("version") ? CONF_ACT_VERSION
				                        : CONF_ACT_DUMP);
				continue;
			}
			if (!IS("config")) {
				d = find_flag(name, nlen);
				if (d == NULL) {
					unknown_long(&es, name, nlen);
					/* Directive flags take a value: "--typo
					 * value" is one mistake, not two. */
					if (eq == NULL && i + 1 < argc &&
					    argv[i + 1][0] != '-')
						i++;
					continue;
				}
			}
#undef IS
			nlen += 2; /* the flag as written, with its "--" */
			if (eq != NULL)
				val = eq + 1;
		} else {
			nlen = 2;
			if (arg[2] == '\0' && strchr("hVt", arg[1]) != NULL) {
				set_action(&act, short_action(arg[1]));
				continue;
			}
			if (strchr("lpocf", arg[1]) == NULL) {
				conf_err_flag(&es, NULL, 0,
				    "unknown option %.*s", CONF_NAME_SHOWN_MAX,
				    arg);
				continue;
			}
			if (arg[1] == 'l' || arg[1] == 'p')
				d = &conf_descs[CONF_IDX_listen];
			else if (arg[1] == 'o')
				d = &conf_descs[CONF_IDX_origin];
			if (arg[2] != '\0')
				val = arg + 2; /* -p8080 */
		}
		if (val == NULL) {
			if (i + 1 >= argc) {
				conf_err_flag(&es, arg, nlen, "missing value");
				continue;
			}
			val = argv[++i];
		}
		if (d == NULL) { /* -c, -f, --config */
			if (val[0] == '\0') {
				conf_err_flag(
				    &es, arg, nlen, "empty file name");
				continue;
			}
			if (cfg != NULL) {
				conf_err_flag(&es, arg, nlen,
				    "config file given twice (first %s)",
				    cfgflag);
				continue;
			}
			cfg = val;
			cfgflag = arg[1] == '-' ? "--config"
			    : arg[1] == 'c'     ? "-c"
			                        : "-f";
			continue;
		}
		fv[nfv].d = d;
		fv[nfv].flag = arg;
		fv[nfv].flen = nlen;
		fv[nfv].val = val;
		fv[nfv].is_port = arg[1] == 'p';
		nfv++;
	}

	c = conf_new_defaults();
	/* Help and version must work whatever state the config file is in. */
	if (cfg != NULL && act != CONF_ACT_HELP && act != CONF_ACT_VERSION) {
		if (conf_load_file(c, cfg, err) != CDN_OK)
			es.nerr++;
	}
	for (unsigned k = 0; k < nfv; k++) {
		unsigned idx = (unsigned)(fv[k].d - conf_descs);

		val = fv[k].val;
		if (fv[k].is_port) {
			if (strlen(val) > 5 || val[0] == '\0' ||
			    strspn(val, "0123456789") != strlen(val)) {
				conf_err_flag(&es, fv[k].flag, fv[k].flen,
				    "invalid port (a number from 1 to 65535)");
				continue;
			}
			snprintf(addr, sizeof(addr), "127.0.0.1:%s", val);
			val = addr;
		}
		if (!seen[idx]++ && conf_desc_is_list(fv[k].d))
			conf_strlist_clear(
			    conf_field(c, fv[k].d)); /* flags replace */
		if (conf_set_value(c, fv[k].d, val, msg, sizeof(msg), &why) !=
		    CDN_OK)
			conf_err_flag(&es, fv[k].flag, fv[k].flen, "%s", why);
	}
	/* Sites inherit the top level as the flags left it. */
	conf_resolve_sites(c);
	if (es.nerr == 0 && act != CONF_ACT_HELP && act != CONF_ACT_VERSION &&
	    conf_validate(c, err) != CDN_OK)
		es.nerr++;

	if (es.nerr > 0) {
		conf_unref(&c);
		rc = CDN_EINVAL;
	} else {
		*out = c;
		*action = act;
		rc = CDN_OK;
	}
	free(fv);
	return rc;
}

/* ---- --help and --dump-config ---- */

static const char *
metavar(const struct conf_desc *d)
{
	switch (d->type) {
	case CONF_T_STR:
	case CONF_T_STRLIST:
		return "STRING";
	case CONF_T_ADDR:
	case CONF_T_ADDRLIST:
		return "HOST:PORT";
	case CONF_T_URL:
		return "URL";
	case CONF_T_SIZE:
		return "SIZE";
	case CONF_T_UINT:
		return "N";
	case CONF_T_DURATION:
		return "DURATION";
	case CONF_T_LOGLEVEL:
		return "LEVEL";
	case CONF_T_SNICERT:
	case CONF_T_ORIGINSRV:
		return "SPEC";
	}
	return "VALUE";
}

static const char *
short_alias(const struct conf_desc *d)
{
	if (d == &conf_descs[CONF_IDX_listen])
		return "-l, ";
	if (d == &conf_descs[CONF_IDX_origin])
		return "-o, ";
	return "    ";
}

static const struct {
	const char *left, *doc;
} help_opts[] = {
    {"-c, --config FILE", "read directives from FILE (-f FILE too)"},
    {"-t", "check the configuration and exit"},
    {"    --dump-config", "print the effective configuration and exit"},
    {"-h, --help", "print this help and exit"},
    {"-V, --version", "print the version and exit"},
};

void
conf_argv_print_help(FILE *out, const char *progname)
{
	char left[128], fl[CONF_NAME_SHOWN_MAX];
	int width = 0, n;

	if (progname == NULL || *progname == '\0')
		progname = "edged";
	for (size_t i = 0; i < CDN_ARRAY_LEN(help_opts); i++) {
		n = (int)strlen(help_opts[i].left);
		width = n > width ? n : width;
	}
	for (size_t i = 0; i < CONF_NKEYS; i++) {
		flag_name(&conf_descs[i], fl, sizeof(fl));
		n = snprintf(left, sizeof(left), "%s%s %s",
		    short_alias(&conf_descs[i]), fl, metavar(&conf_descs[i]));
		width = n > width ? n : width;
	}
	width += 2;

	fprintf(out,
	    "Usage: %s [-t | --dump-config] [-c FILE] [--DIRECTIVE VALUE]...\n"
	    "       %s -h | -V\n"
	    "\n"
	    "Options:\n",
	    progname, progname);
	for (size_t i = 0; i < CDN_ARRAY_LEN(help_opts); i++)
		fprintf(out, "  %-*s%s\n", width, help_opts[i].left,
		    help_opts[i].doc);
	fprintf(out,
	    "\nDirectives (in a config file: DIRECTIVE VALUE, one per line; "
	    "flags override\nthe file, and a repeated flag replaces the "
	    "file's list):\n");
	for (size_t i = 0; i < CONF_NKEYS; i++) {
		const struct conf_desc *d = &conf_descs[i];

		flag_name(d, fl, sizeof(fl));
		snprintf(left, sizeof(left), "%s%s %s", short_alias(d), fl,
		    metavar(d));
		fprintf(out, "  %-*s%s", width, left, d->doc);
		if (d->def[0] != '\0')
			fprintf(out, " (default %s)", d->def);
		fputc('\n', out);
		if (i == CONF_IDX_listen)
			fprintf(out, "  %-*s%s\n", width, "-p PORT",
			    "the same as --listen 127.0.0.1:PORT");
	}
	fprintf(out,
	    "\nSIZE is bytes, with an optional K, M, G or T (powers of "
	    "1024): 64M, 1G.\n"
	    "DURATION needs a unit: ms, s, m, h or d (500ms, 30s, 5m).\n");
}

/* Print <s> as one config-file value: bare if it can be, quoted if not. */
static void
print_value(FILE *out, const char *s)
{
	if (s[0] != '\0' && strpbrk(s, " \t#\"{}") == NULL) {
		fputs(s, out);
		return;
	}
	fputc('"', out);
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', out);
		fputc(*s, out);
	}
	fputc('"', out);
}

/* The site blocks as written (their own lines only). */
static void
dump_sites(FILE *out, const struct conf *c)
{
	for (unsigned i = 0; i < c->nsites; i++) {
		const struct conf_site *s = c->sites[i];

		fprintf(out, "\nsite");
		for (unsigned j = 0; j < s->nnames; j++)
			fprintf(out, " %s", s->names[j]);
		fprintf(out, " {\n");
		for (unsigned j = 0; j < s->nsets; j++) {
			fprintf(out, "\t%s ", conf_descs[s->sets[j].idx].name);
			print_value(out, s->sets[j].val);
			fputc('\n', out);
		}
		fprintf(out, "}\n");
	}
}

void
conf_dump(FILE *out, const struct conf *c)
{
	char num[32];

	MAGIC_CHECK(c, CONF_MAGIC);
	fprintf(out,
	    "# edged configuration: every directive and its "
	    "effective value\n");
	if (c->config != NULL) {
		/* A comment line: a newline in the path must not end it. */
		fprintf(out, "# (defaults, then ");
		for (const char *p = c->config; *p != '\0'; p++)
			fputc(conf_is_ctl((unsigned char)*p) ? '?' : *p, out);
		fprintf(out, ", then the command line)\n");
	}
	for (size_t i = 0; i < CONF_NKEYS; i++) {
		const struct conf_desc *d = &conf_descs[i];
		const void *f = conf_cfield(c, d);
		const struct conf_strlist *l;

		fprintf(out, "\n# %s\n", d->doc);
		switch (d->type) {
		case CONF_T_STR:
		case CONF_T_ADDR:
		case CONF_T_URL:
			fprintf(out, "%s ", d->name);
			print_value(out, *(char *const *)f);
			fputc('\n', out);
			break;
		case CONF_T_STRLIST:
		case CONF_T_ADDRLIST:
		case CONF_T_SNICERT:
		case CONF_T_ORIGINSRV:
			l = f;
			if (l->n == 0)
				fprintf(out, "# %s: none\n", d->name);
			for (unsigned j = 0; j < l->n; j++) {
				fprintf(out, "%s ", d->name);
				print_value(out, l->v[j]);
				fputc('\n', out);
			}
			break;
		case CONF_T_SIZE:
		case CONF_T_DURATION:
			conf_format_number(
			    d, num, sizeof(num), *(const uint64_t *)f);
			fprintf(out, "%s %s\n", d->name, num);
			break;
		case CONF_T_UINT:
			fprintf(out, "%s %u\n", d->name, *(const unsigned *)f);
			break;
		case CONF_T_LOGLEVEL:
			fprintf(out, "%s %s\n", d->name,
			    cdn_log_level_name(*(const enum cdn_log_level *)f));
			break;
		}
	}
	dump_sites(out, c);
}
