/*
 * edged's configuration core (conf/conf.h): the directive table, defaults,
 * setting one directive, site blocks and reference counts.  The other files
 * of conf/ are listed in conf/conf_int.h.
 *
 * Every directive is one row of conf/conf_keys.h.  This file expands the rows
 * into a table of descriptors (name, type, bounds, default, doc, and the
 * offsetof its struct conf field), and everything is driven from that table:
 * the defaults, the config-file parser, the command-line flags, --help and
 * --dump-config.  Nothing in conf/ knows a directive by name, except the
 * short aliases -l, -o and -p and the cross-directive checks.
 *
 * Layers, lowest first: defaults, the file, the flags.  A scalar is
 * overwritten by a higher layer.  A list (STRLIST, ADDRLIST) is replaced by
 * the first occurrence in a higher layer and appended to by the later ones.
 * Defaults go through the same value parser as the file, so a bad default in
 * conf_keys.h is caught (and aborts) the first time a conf is built.
 *
 * Threads: a struct conf is built by one thread and immutable once it is
 * published; afterwards only its reference count changes (atomically).
 * conf/ has no global mutable state.
 */
#include "config.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf_int.h"
#include "http/http_listen.h"
#include "http/http_parse.h"

const struct conf_desc conf_descs[CONF_NKEYS] = {
#define CONF_KEY(name, type, min, max, def, doc)                               \
	{#name, CONF_T_##type, (uint64_t)(min), (uint64_t)(max), def, doc,     \
	    offsetof(struct conf, name), 0, 0},
#define CONF_SITE_KEY(name, type, min, max, def, doc)                          \
	{#name, CONF_T_##type, (uint64_t)(min), (uint64_t)(max), def, doc,     \
	    offsetof(struct conf, name), 1, 0},
#define CONF_RESTART_KEY(name, type, min, max, def, doc)                       \
	{#name, CONF_T_##type, (uint64_t)(min), (uint64_t)(max), def, doc,     \
	    offsetof(struct conf, name), 0, 1},
#include "conf/conf_keys.h"
#undef CONF_RESTART_KEY
#undef CONF_SITE_KEY
#undef CONF_KEY
};

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
		l->at =
		    conf_xrealloc(l->at, sizeof(*l->at) * (n < 4 ? 4 : 2 * n));
	}
	l->v[n] = cdn_xstrdup(s);
	l->at[n] = (struct conf_loc){0};
	l->n = n + 1;
}

void
conf_strlist_clear(struct conf_strlist *l)
{
	for (unsigned i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	free(l->at);
	l->v = NULL;
	l->at = NULL;
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

/* "Name Name, Name": each an RFC 9110 §5.6.2 token (a field name, a
 * method), pushed on its own, so one line may name several.  Nothing is
 * pushed on error. */
static int
set_field_names(struct conf_strlist *l, const char *val, const char **why)
{
	const char *p;
	char *one;
	size_t n;

	for (p = val; *p != '\0'; p += n) {
		p += strspn(p, " \t,");
		for (n = 0; p[n] != '\0' && !strchr(" \t,", p[n]); n++)
			if (!http_is_tchar((unsigned char)p[n])) {
				*why = "not a token (a field name or a method)";
				return CDN_EINVAL;
			}
	}
	for (p = val; *p != '\0'; p += n) {
		p += strspn(p, " \t,");
		n = strcspn(p, " \t,");
		if (n == 0)
			continue;
		one = cdn_xstrndup(p, n);
		conf_strlist_push(l, one);
		free(one);
	}
	return CDN_OK;
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
	case CONF_T_TOKENS:
		return set_field_names(f, val, why);
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
		case CONF_T_TOKENS:
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
		case CONF_T_TOKENS:
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

void
conf_node_name(const struct conf *c, char out[CONF_NODE_NAME_MAX])
{
	MAGIC_CHECK(c, CONF_MAGIC);
	if (c->node_name[0] != '\0') {
		snprintf(out, CONF_NODE_NAME_MAX, "%s", c->node_name);
		return;
	}
	/* A host name longer than the buffer is cut: still unique enough
	 * for a fleet, and conf_validate bounds a configured one. */
	if (gethostname(out, CONF_NODE_NAME_MAX) != 0 || out[0] == '\0')
		snprintf(out, CONF_NODE_NAME_MAX, "edged");
	out[CONF_NODE_NAME_MAX - 1] = '\0';
}
