/*
 * --dump-config (conf/conf.h: conf_dump): every directive with its doc line
 * and effective value, then the site blocks as written, in config-file
 * syntax that loads back to the same conf.  conf_dump_buf() checks that it
 * does, for the dump edged hands purged.  No state.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf_int.h"

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
		case CONF_T_TOKENS:
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

/* conf_dump() of <c> into a malloc'd buffer; CDN_ENOMEM. */
static int
dump_mem(const struct conf *c, char **out, size_t *len)
{
	FILE *f = open_memstream(out, len);

	if (f == NULL)
		return CDN_ENOMEM;
	conf_dump(f, c);
	/* A stream that ran out of memory fails its flush. */
	if (fclose(f) != 0) {
		free(*out);
		*out = NULL;
		return CDN_ENOMEM;
	}
	return CDN_OK;
}

int
conf_dump_buf(const struct conf *c, char **out, size_t *len, FILE *err)
{
	struct conf *back;
	char *d = NULL, *d2 = NULL;
	size_t dlen = 0, d2len = 0;
	int rc;

	MAGIC_CHECK(c, CONF_MAGIC);
	if (dump_mem(c, &d, &dlen) != CDN_OK)
		return CDN_ENOMEM;
	back = conf_new_defaults();
	rc = conf_load_buf(back, "the effective configuration", d, dlen, err);
	if (rc != CDN_OK)
		goto out;
	/* The file name is a comment of the dump, not a directive. */
	if (c->config != NULL)
		conf_set_str(&back->config, c->config);
	rc = dump_mem(back, &d2, &d2len);
	if (rc != CDN_OK)
		goto out;
	if (d2len != dlen || memcmp(d, d2, dlen) != 0) {
		if (err != NULL)
			fprintf(err,
			    "the effective configuration: error: does not "
			    "load back to the same values\n");
		rc = CDN_EINVAL;
		goto out;
	}
	*out = d;
	*len = dlen;
	d = NULL;
out:
	free(d);
	free(d2);
	conf_unref(&back);
	return rc;
}
