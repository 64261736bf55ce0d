/*
 * conf-man: print every directive of conf/conf_keys.h as roff, for the
 * DIRECTIVES section of edged.conf(5) (a rule in Makefile.am puts it into
 * man/edged.conf.5.in at build time).  The page, --help and the table then
 * never disagree, and a new directive needs no edit of the page.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "conf/conf_int.h"

/* <s> as roff text: backslashes and hyphens escaped, no control line. */
static void
roff_text(const char *s)
{
	if (*s == '.' || *s == '\'')
		fputs("\\&", stdout);
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			fputs("\\e", stdout);
		else if (*s == '-')
			fputs("\\-", stdout);
		else
			putchar(*s);
	}
}

static int
has_range(const struct conf_desc *d)
{
	return (d->type == CONF_T_SIZE || d->type == CONF_T_UINT ||
	           d->type == CONF_T_DURATION) &&
	    d->max != 0;
}

static void
print_desc(const struct conf_desc *d)
{
	char lo[32], hi[32];

	fputs(".TP\n.BI ", stdout);
	roff_text(d->name);
	fputs(" \" ", stdout);
	roff_text(conf_desc_metavar(d));
	fputs("\"\n", stdout);
	roff_text(d->doc);
	fputs(".\n", stdout);
	if (d->def[0] != '\0') {
		fputs("Default: \\fB", stdout);
		roff_text(d->def);
		fputs("\\fR.\n", stdout);
	}
	if (has_range(d)) {
		conf_format_number(d, lo, sizeof(lo), d->min);
		conf_format_number(d, hi, sizeof(hi), d->max);
		printf("From %s to %s.\n", lo, hi);
	}
	if (conf_desc_is_list(d))
		fputs("Repeatable.\n", stdout);
	if (d->site)
		fputs("A site block may set it too.\n", stdout);
	fputs("Flag: \\fB\\-\\-", stdout);
	for (const char *p = d->name; *p != '\0'; p++)
		fputs(*p == '_' ? "\\-" : (char[2]){*p, '\0'}, stdout);
	fputs("\\fR.\n", stdout);
}

int
main(void)
{
	for (size_t i = 0; i < CONF_NKEYS; i++)
		print_desc(&conf_descs[i]);
	return fflush(stdout) == 0 ? 0 : 1;
}
