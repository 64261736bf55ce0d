/*
 * The command line (conf/conf.h: conf_argv_parse, conf_argv_print_help).
 * Every directive is also a flag, --name with '_' written '-', made from
 * the table as --help is; -l, -p and -o are short aliases, and -c/-f/--config,
 * -t, -h/--help, -V/--version and --dump-config are the only options of their
 * own.  Flags are applied over the file; a repeated flag replaces the file's
 * list.
 * Errors read "edged: error: --flag: why" and are all reported before
 * returning.  No state.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf_int.h"

/* One directive given as a flag, applied after the file. */
struct flagval {
	const struct conf_desc *d;
	const char *flag; /* as written, for errors: flag[0..flen) */
	size_t flen;
	const char *val;
	int is_port; /* -p PORT */
};

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

/*
 * Set <d> to <val> over the file: a list's first flag (*seen 0) replaces
 * the file's list, later ones append.  An error names flag[0..flen).
 */
static void
apply_flag(struct conf *c, struct conf_err *es, unsigned *seen,
    const struct conf_desc *d, const char *flag, size_t flen, const char *val)
{
	char msg[128];
	const char *why;

	if (!(*seen)++) {
		if (conf_desc_is_list(d))
			conf_strlist_clear(conf_field(c, d));
		/* The flag's value, not the file's: no line to point at. */
		c->loc[d - conf_descs] = (struct conf_loc){0};
	}
	if (conf_set_value(c, d, val, msg, sizeof(msg), &why) != CDN_OK) {
		conf_err_flag(es, flag, flen, "%s", why);
		c->loc[d - conf_descs].is_bad = 1;
	}
}

int
conf_apply_flags(struct conf *c, const char *prog, const struct conf_flag *v,
    unsigned n, FILE *err)
{
	struct conf_err es = {.err = err, .name = prog};
	unsigned seen[CONF_NKEYS] = {0};

	MAGIC_CHECK(c, CONF_MAGIC);
	CDN_ASSERT(prog != NULL && (v != NULL || n == 0));
	for (unsigned k = 0; k < n; k++) {
		const struct conf_desc *d =
		    conf_desc_find(v[k].directive, strlen(v[k].directive));

		CDN_ASSERT(d != NULL); /* the caller's own table */
		apply_flag(c, &es, &seen[d - conf_descs], d, v[k].flag,
		    strlen(v[k].flag), v[k].value);
	}
	/* Sites inherit the top level as the flags left it. */
	conf_resolve_sites(c);
	return es.nerr > 0 ? CDN_EINVAL : CDN_OK;
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
	char addr[32];
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

	/* An installed node reads its file unasked; a build that was never
	 * installed runs on its flags alone. */
	if (cfg == NULL && access(CONF_DEFAULT_FILE, F_OK) == 0)
		cfg = CONF_DEFAULT_FILE;
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
		apply_flag(
		    c, &es, &seen[idx], fv[k].d, fv[k].flag, fv[k].flen, val);
	}
	/* Sites inherit the top level as the flags left it. */
	conf_resolve_sites(c);
	/* Even after errors (a refused line must not hide the others), but
	 * not without the file: nothing of it was read. */
	if (act != CONF_ACT_HELP && act != CONF_ACT_VERSION &&
	    (cfg == NULL || c->config != NULL) &&
	    conf_validate_after(c, err, es.nerr > 0) != CDN_OK)
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

/* ---- --help ---- */

const char *
conf_desc_metavar(const struct conf_desc *d)
{
	switch (d->type) {
	case CONF_T_STR:
	case CONF_T_STRLIST:
		return "STRING";
	case CONF_T_TOKENS:
		return "TOKENS";
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
    {"-c, --config FILE",
        "read directives from FILE (-f FILE too; default " CONF_DEFAULT_FILE
        " if it exists)"},
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
		    short_alias(&conf_descs[i]), fl,
		    conf_desc_metavar(&conf_descs[i]));
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
		    conf_desc_metavar(d));
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
