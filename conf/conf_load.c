/*
 * The config file (conf/conf.h: conf_load_file, conf_load_fd,
 * conf_load_buf): lines of "DIRECTIVE VALUE" and "site NAME... { ... }"
 * blocks, applied over the conf the caller passes (its defaults).  Each
 * line is lexed by conf_lex.c and each value set through conf_set_value();
 * a block's lines are checked when read and replayed over the top level by
 * conf_resolve_sites().
 *
 * Within one file a scalar may be set once; a list's first line replaces
 * the list below and later lines append.  Every error is reported at
 * file:line:col and the parse goes on (conf_err.c).  The parse state lives
 * in one struct fileparse per call; no global state.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf_int.h"
#include "http/http_authority.h"

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

/*
 * The top-level line of directive <name> was refused: the checks of the
 * whole conf then say nothing about it (its error is printed already).
 */
static void
mark_bad(struct conf *c, const struct fileparse *fp, const char *name)
{
	const struct conf_desc *d = conf_desc_find(name, strlen(name));

	if (d != NULL && fp->site == NULL)
		c->loc[d - conf_descs].is_bad = 1;
}

static void
parse_line(struct conf *c, struct fileparse *fp, unsigned lineno,
    const char *line, size_t len)
{
	char buf[CONF_MAX_LINE + 1], msg[128], joined[CONF_MAX_LINE + 1];
	struct conf_tok toks[CONF_LEX_TOKS];
	const struct conf_desc *d;
	const char *why, *name, *sugg;
	struct conf_strlist *list;
	unsigned ntok, ecol, idx, n0;

	CDN_ASSERT(len <= CONF_MAX_LINE);
	if (conf_lex_line(line, len, buf, toks, &ntok, &ecol, &why) != CDN_OK) {
		/* Name the directive when the error is past it. */
		conf_err_at(&fp->es, lineno, ecol, ntok > 0 ? toks[0].s : NULL,
		    "%s", why);
		if (ntok > 0)
			mark_bad(c, fp, toks[0].s);
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
		mark_bad(c, fp, d->name);
		return;
	}
	if (ntok > 2 &&
	    (d->type == CONF_T_ORIGINSRV || d->type == CONF_T_TOKENS)) {
		/* "URL weight=3 backup", "Name Name": the rest of the
		 * line is one value. */
		if (ntok > CONF_LEX_TOKS) {
			conf_err_at(&fp->es, lineno, toks[1].col, d->name,
			    "too many options");
			mark_bad(c, fp, d->name);
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
		mark_bad(c, fp, d->name);
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
	list = conf_desc_is_list(d) ? conf_field(c, d) : NULL;
	n0 = list != NULL ? list->n : 0;
	if (conf_set_value(c, d, toks[1].s, msg, sizeof(msg), &why) != CDN_OK) {
		conf_err_at(&fp->es, lineno, toks[1].col, d->name, "%s", why);
		c->loc[idx].is_bad = 1;
		return;
	}
	if (c->loc[idx].line == 0) {
		c->loc[idx].line = lineno;
		c->loc[idx].col = toks[1].col;
	}
	for (unsigned k = n0; list != NULL && k < list->n; k++)
		list->at[k] =
		    (struct conf_loc){.line = lineno, .col = toks[1].col};
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

int
conf_load_fd(struct conf *c, int fd, const char *name, FILE *err)
{
	char *buf;
	size_t len = 0;
	ssize_t n;
	int rc, saved;

	MAGIC_CHECK(c, CONF_MAGIC);
	CDN_ASSERT(fd >= 0 && name != NULL);
	buf = malloc(CONF_MAX_FILE + 1);
	if (buf == NULL) {
		if (err != NULL)
			fprintf(err, "%s: error: out of memory\n", name);
		return CDN_EINVAL;
	}
	/* One byte more than allowed, so that conf_load_buf() says "too
	 * large" rather than parsing a cut file. */
	while (len < CONF_MAX_FILE + 1) {
		n = read(fd, buf + len, CONF_MAX_FILE + 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			saved = errno;
			if (err != NULL)
				fprintf(err, "%s: error: cannot read: %s\n",
				    name, strerror(saved));
			rc = CDN_EINVAL;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	rc = conf_load_buf(c, name, buf, len, err);
out:
	free(buf);
	return rc;
}
