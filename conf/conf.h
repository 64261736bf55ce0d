/*
 * edged's configuration: one immutable struct conf built from defaults, the
 * config file and the command line (flags override the file).  Directives
 * are declared once, in conf/conf_keys.h; the file parser, the flags, the
 * --help text and --dump-config are all generated from that table.
 *
 * A loaded conf is never edited: a reload builds a new one and swaps it in
 * by reference count (conf_ref / conf_unref).
 */
#ifndef CONF_H
#define CONF_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "common/cdn.h"
#include "common/cdn_log.h"

/*
 * Where the config file set a value, for errors found after the file is
 * read (conf_validate); line 0: a default or a flag set it.
 */
struct conf_loc {
	unsigned line, col; /* of the value */
	int is_bad;         /* the file's value was refused (error printed) */
};

/* A repeatable directive's values, in order, each with its place. */
struct conf_strlist {
	char **v;
	struct conf_loc *at; /* at[i]: where v[i] was set */
	unsigned n;
};

/* How many directives conf/conf_keys.h declares. */
enum {
#define CONF_KEY(name, type, min, max, def, doc) CONF_KEYNO_##name,
#include "conf/conf_keys.h"
#undef CONF_KEY
	CONF_NDIRECTIVES
};

struct conf {
	uint32_t magic;
#define CONF_MAGIC 0x6c0f3e21u
	atomic_uint refcnt;

	char *config; /* the file this was loaded from, or NULL */

	/*
	 * The directives.  String fields (STR, ADDR, URL) are never NULL: ""
	 * means unset.  Every ADDR/ADDRLIST value passed http_listen_parse()
	 * and every URL conf_parse_url() when it was set.
	 */

#define CONF_FIELD_STR(name)                     char *name;
#define CONF_FIELD_STRLIST(name)                 struct conf_strlist name;
#define CONF_FIELD_ADDR(name)                    char *name;
#define CONF_FIELD_ADDRLIST(name)                struct conf_strlist name;
#define CONF_FIELD_URL(name)                     char *name;
#define CONF_FIELD_SIZE(name)                    uint64_t name;
#define CONF_FIELD_UINT(name)                    unsigned name;
#define CONF_FIELD_DURATION(name)                uint64_t name;
#define CONF_FIELD_LOGLEVEL(name)                enum cdn_log_level name;
#define CONF_FIELD_SNICERT(name)                 struct conf_strlist name;
#define CONF_FIELD_ORIGINSRV(name)               struct conf_strlist name;
#define CONF_FIELD_TOKENS(name)                  struct conf_strlist name;
#define CONF_KEY(name, type, min, max, def, doc) CONF_FIELD_##type(name)
#include "conf/conf_keys.h"
#undef CONF_KEY

	/* Where the file set each directive (a list: its first line), in
	 * conf_keys.h order; errors about c->config's values point there. */
	struct conf_loc loc[CONF_NDIRECTIVES];

	/* The site blocks, in file order (none: one implicit site, this). */
	struct conf_site **sites;
	unsigned nsites;
};

/*
 * A site block of the config file:
 *
 *     site example.com *.example.com {
 *         origin_server http://10.0.0.1:8080 weight=3
 *         cache_default_ttl 60s
 *     }
 *
 * names a set of Host names (exact, or "*." and a domain for exactly one
 * more label) and sets site-scoped directives (CONF_SITE_KEY rows of
 * conf_keys.h).  Every other site-scoped value is the top level's, so
 * <conf> is the top level with the block applied on top; command-line
 * flags change the top level, hence what sites inherit, but never a value
 * a block sets itself.
 */
struct conf_site {
	uint32_t magic;
#define CONF_SITE_MAGIC 0x47d2a6b9u
	char **names; /* lower case, no trailing dot */
	unsigned nnames;
	char *file; /* where the block is, for errors */
	unsigned line, col;
	struct conf *conf;          /* effective values; its nsites is 0 */
	struct conf_site_set *sets; /* the block's own lines (conf_int.h) */
	unsigned nsets;
};

/* conf.c */

/* Defaults only (for tests and for building a conf by hand). */
struct conf *conf_new_defaults(void);

/*
 * Set one directive as a file line "name value" would (a list gets the
 * value appended), for building a conf by hand.  An error goes to <err> as
 * "edged: error: name: why"; returns CDN_OK or CDN_EINVAL (<c> untouched).
 */
int conf_set(
    struct conf *c, const char *name, const char *value, FILE *err) CDN_WUR;

struct conf *conf_ref(struct conf *c);
void conf_unref(struct conf **cp);

/* conf_argv.c */

/* What the command line asked for besides running. */
enum conf_action {
	CONF_ACT_RUN = 0,
	CONF_ACT_HELP,    /* --help / -h */
	CONF_ACT_VERSION, /* --version / -V */
	CONF_ACT_TEST,    /* -t: check the config and exit */
	CONF_ACT_DUMP,    /* --dump-config: print the effective config */
};

/*
 * Build a conf from defaults, the file named by --config/-f (without one,
 * CONF_DEFAULT_FILE, the installed sysconfdir's edged/edged.conf, if that
 * exists) and the other flags, in that order of precedence (lowest first); a
 * flag for a repeatable directive replaces the file's values rather than adding
 * to them. Every error found is printed to <err> (file errors as
 * "FILE:LINE:COL: error: DIRECTIVE: why", flag errors as
 * "edged: error: --flag: why"), and then CDN_EINVAL is returned with *out
 * untouched.  On CDN_OK, *out holds one reference and *action what to do.
 */
int conf_argv_parse(int argc, char **argv, FILE *err, struct conf **out,
    enum conf_action *action) CDN_WUR;

/* One directive given on another program's command line (purged's). */
struct conf_flag {
	const char *flag;      /* as written, for errors: "--allow" */
	const char *directive; /* a name in conf_keys.h: "purge_allow" */
	const char *value;
};

/*
 * Apply <n> flags over <c> (defaults and a file, already loaded) the way
 * conf_argv_parse() applies edged's: a scalar is overwritten, a list is
 * replaced by its first flag and appended to by later ones; then every
 * site inherits the top level as the flags left it.  Every error goes to
 * <err> as "PROG: error: FLAG: why"; returns CDN_OK, or CDN_EINVAL and <c>
 * must be discarded.
 */
int conf_apply_flags(struct conf *c, const char *prog,
    const struct conf_flag *v, unsigned n, FILE *err) CDN_WUR;

/* The --help text, options and every directive flag, to <out>. */
void conf_argv_print_help(FILE *out, const char *progname);

/* conf_load.c */

/* Limits of a config file. */
#define CONF_MAX_LINE 4096       /* bytes per line, without the newline */
#define CONF_MAX_FILE (1u << 20) /* bytes per file */

/*
 * Apply the file at <path> on top of <c>.  Errors go to <err> as above and
 * are counted: returns CDN_OK or CDN_EINVAL; <c> may hold part of the file on
 * error and must then be discarded.
 */
int conf_load_file(struct conf *c, const char *path, FILE *err) CDN_WUR;

/*
 * The same, for a file already in memory (buf[0..len), need not end in a
 * NUL); <name> is what errors call it.  Does not set c->config.  <err> may
 * be NULL here and in conf_load_file: errors are then only counted.
 */
int conf_load_buf(struct conf *c, const char *name, const char *buf, size_t len,
    FILE *err) CDN_WUR;

/*
 * The same, for the config file open on <fd>, read from where it stands to
 * its end (a file or a pipe; not closed).  <name> is what errors call it.
 */
int conf_load_fd(struct conf *c, int fd, const char *name, FILE *err) CDN_WUR;

/* conf_validate.c */

/*
 * Cross-directive checks that need the whole config (at least one listen,
 * an origin).  Prints errors to <err>; returns CDN_OK or CDN_EINVAL.
 */
int conf_validate(const struct conf *c, FILE *err) CDN_WUR;

/*
 * Only what building cache keys needs, for a program that serves no
 * requests of its own (purged): the cache_query settings of the top level
 * and of every site, site names given once, default_site known.  Errors go
 * to <err> as conf_validate()'s do, under <prog>'s name.
 */
int conf_validate_keys(
    const struct conf *c, const char *prog, FILE *err) CDN_WUR;

/* conf_check.c */

/*
 * The checks against this machine that start-up would otherwise fail on:
 * the user exists, every listen address resolves, cache_dir or its parent
 * exists, the token files the listeners need are readable.  Errors go to
 * <err> as conf_validate()'s do; returns CDN_OK or CDN_EINVAL.
 */
int conf_check_host(const struct conf *c, FILE *err) CDN_WUR;

/* conf_dump.c */

/* Every directive with its effective value, in config-file syntax. */
void conf_dump(FILE *out, const struct conf *c);

/*
 * conf_dump() into a buffer, checked to load back (conf_load_buf() over
 * the defaults) to a conf whose own dump is the very same bytes: the form
 * in which edged hands purged its effective configuration.  On CDN_OK,
 * *out (malloc'd, NUL-terminated) holds *len bytes.  CDN_EINVAL when the
 * dump does not load back as it was (the loader's errors go to <err>),
 * CDN_ENOMEM; *out untouched then.
 */
int conf_dump_buf(
    const struct conf *c, char **out, size_t *len, FILE *err) CDN_WUR;

/* conf_reload.c */

/*
 * The restart-only directives (CONF_RESTART_KEY in conf_keys.h) whose
 * values differ between <old> and <nw>: their names (static strings) in
 * table order into names[0..cap); returns how many differ, which may be
 * more than <cap>.
 */
unsigned conf_restart_changed(const struct conf *old, const struct conf *nw,
    const char **names, unsigned cap);
/* 1 if the directive <name> takes effect only on restart, 0 if a reload
 * applies it, -1 if there is no such directive. */
int conf_key_is_restart(const char *name);

/* Longest node_name, NUL included. */
#define CONF_NODE_NAME_MAX 64

/*
 * This node's name in a fleet into out[CONF_NODE_NAME_MAX]: node_name, or
 * the host name when that is empty (or "edged" if even that is unknown).
 */
void conf_node_name(const struct conf *c, char out[CONF_NODE_NAME_MAX]);

/* purge_bus, split (conf_bus.c). */
#define CONF_BUS_STREAM_MAX 201
struct conf_bus_url {
	char user[128]; /* empty: none (AUTH with the password alone) */
	char host[256];
	int port;
	char stream[CONF_BUS_STREAM_MAX];
};

/*
 * Parse "redis://[USER@]HOST:PORT[/STREAM]" (the stream edged:purges when
 * none is given).  CDN_OK, or CDN_EINVAL with *why a static message
 * (rediss:// and a password in the URL are refused with the reason).
 */
int conf_bus_url_parse(
    const char *s, struct conf_bus_url *out, const char **why) CDN_WUR;

/*
 * The password of purge_bus_password_file: its first line, without the
 * newline, in a new string (free() it after explicit_bzero()).  NULL
 * after printing why to stderr, prefixed with <prog>.
 */
char *conf_bus_password_load(const char *path, const char *prog);

/*
 * conf_parse.c: value parsers, shared with anything that reads these
 * values.  Each returns CDN_OK or CDN_EINVAL with *why a static message.
 */

int conf_parse_size(const char *s, uint64_t *out, const char **why) CDN_WUR;
int conf_parse_duration_ms(
    const char *s, uint64_t *out, const char **why) CDN_WUR;
/*
 * Check an origin URL: http:// or https://, a host (IPv6 in brackets), an
 * optional port 1..65535 and path; no userinfo, query or fragment.
 */
int conf_parse_url(const char *s, const char **why) CDN_WUR;

/* One origin_server value, split. */
struct conf_origin_server {
	char url[1024];
	unsigned weight;    /* 1..256, default 1 */
	unsigned max_conns; /* 0: no limit */
	int backup;
};

/*
 * Parse "URL [weight=N] [max_conns=N] [backup]" (blank-separated; the URL
 * as for origin).
 */
int conf_parse_origin_server(
    const char *s, struct conf_origin_server *out, const char **why) CDN_WUR;

/* One tls_sni_cert value, split; the pointers point into the caller's buf. */
struct conf_sni_cert {
	const char *name; /* lower case: "www.example.com" or "*.example.com" */
	const char *cert; /* certificate chain file (PEM) */
	const char *key;  /* private key file (PEM) */
	const char *ocsp; /* OCSP response file (DER), or NULL */
};

/*
 * Split a tls_sni_cert value, "NAME CERTFILE KEYFILE [OCSPFILE]" (fields
 * separated by blanks, so file names cannot contain any), into <out>.  NAME
 * is a DNS name, or "*." and a name of at least two labels (a wildcard
 * matches exactly one more label: *.example.com covers www.example.com,
 * not example.com nor a.b.example.com); it is stored in lower case, without
 * a trailing dot.  IP addresses are refused: SNI never carries them
 * (RFC 6066 §3).  <buf> needs strlen(s) + 1 bytes.  <out> is untouched on
 * error.
 */
int conf_parse_sni_cert(const char *s, char *buf, size_t buflen,
    struct conf_sni_cert *out, const char **why) CDN_WUR;

#endif /* CONF_H */
