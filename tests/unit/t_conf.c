/*
 * Unit tests of conf/: the value parsers, the config-file parser and
 * its error messages, the command line, --help, --dump-config (and that a
 * dump loads back to the same conf), what purged uses (flags over a file,
 * a file on a descriptor, the checked dump edged hands it, the key checks),
 * and the example conf/edged.conf.
 *
 * Files are written under a mkdtemp() directory, which is also the working
 * directory while they are loaded, so error messages carry short relative
 * names ("a.conf:3:1: error: ...") that the tests compare exactly.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf.h"
#include "http/http_listen.h"
#include "tests/unit/tap.h"

static char tmpdir[64];
static char *made[256];
static int nmade;

static void
write_file(const char *name, const char *text, size_t len)
{
	FILE *f = fopen(name, "wb");

	if (f == NULL || fwrite(text, 1, len, f) != len || fclose(f) != 0) {
		printf(
		    "Bail out! cannot write %s: %s\n", name, strerror(errno));
		exit(1);
	}
	for (int i = 0; i < nmade; i++) {
		if (strcmp(made[i], name) == 0)
			return;
	}
	if (nmade < (int)CDN_ARRAY_LEN(made))
		made[nmade++] = strdup(name);
}

/* Errors printed by one call, collected through open_memstream(). */
struct capture {
	FILE *f;
	char *buf;
	size_t len;
};

static FILE *
cap_open(struct capture *cap)
{
	free(cap->buf);
	cap->buf = NULL;
	cap->len = 0;
	cap->f = open_memstream(&cap->buf, &cap->len);
	if (cap->f == NULL) {
		printf("Bail out! open_memstream failed\n");
		exit(1);
	}
	return cap->f;
}

static const char *
cap_text(struct capture *cap)
{
	fclose(cap->f);
	cap->f = NULL;
	return cap->buf;
}

static unsigned
count_lines(const char *s)
{
	unsigned n = 0;

	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

/* Load <text> as file <name> on top of defaults; the errors go to *errs. */
static int
load_text(
    const char *name, const char *text, struct conf **cp, struct capture *cap)
{
	struct conf *c = conf_new_defaults();
	int rc;

	write_file(name, text, strlen(text));
	rc = conf_load_file(c, name, cap_open(cap));
	cap_text(cap);
	if (cp != NULL)
		*cp = c;
	else
		conf_unref(&c);
	return rc;
}

/* conf_argv_parse() on a NULL-terminated list of arguments after "edged". */
static int
run_argv(struct conf **cp, enum conf_action *act, struct capture *cap, ...)
{
	char *argv[64];
	int argc = 0, rc;
	const char *a;
	va_list ap;

	argv[argc++] = strdup("edged");
	va_start(ap, cap);
	while ((a = va_arg(ap, const char *)) != NULL && argc < 63)
		argv[argc++] = strdup(a);
	va_end(ap);
	argv[argc] = NULL;
	rc = conf_argv_parse(argc, argv, cap_open(cap), cp, act);
	cap_text(cap);
	for (int i = 0; i < argc; i++)
		free(argv[i]);
	return rc;
}

static int
str_eq(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	    (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int
list_eq(const struct conf_strlist *a, const struct conf_strlist *b)
{
	if (a->n != b->n)
		return 0;
	for (unsigned i = 0; i < a->n; i++) {
		if (strcmp(a->v[i], b->v[i]) != 0)
			return 0;
	}
	return 1;
}

/*
 * Compare every field the table declares.  With <each>, one assertion per
 * field; returns the number of fields that differ, skipping <skip1>/<skip2>.
 */
static int
conf_cmp(const struct conf *a, const struct conf *b, int each, const char *what,
    const char *skip1, const char *skip2)
{
	int bad = 0, same;

#define CMP_STR(n)       same = str_eq(a->n, b->n);
#define CMP_ADDR(n)      same = str_eq(a->n, b->n);
#define CMP_URL(n)       same = str_eq(a->n, b->n);
#define CMP_STRLIST(n)   same = list_eq(&a->n, &b->n);
#define CMP_ADDRLIST(n)  same = list_eq(&a->n, &b->n);
#define CMP_SIZE(n)      same = a->n == b->n;
#define CMP_UINT(n)      same = a->n == b->n;
#define CMP_DURATION(n)  same = a->n == b->n;
#define CMP_LOGLEVEL(n)  same = a->n == b->n;
#define CMP_SNICERT(n)   same = list_eq(&a->n, &b->n);
#define CMP_ORIGINSRV(n) same = list_eq(&a->n, &b->n);
#define CMP_TOKENS(n)    same = list_eq(&a->n, &b->n);
#define CONF_KEY(name, type, min, max, def, doc)                               \
	if (!str_eq(#name, skip1) && !str_eq(#name, skip2)) {                  \
		CMP_##type(name) if (each) ok(same, "%s: %s", what, #name);    \
		bad += !same;                                                  \
	}
#include "conf/conf_keys.h"
#undef CONF_KEY
	return bad;
}

/* ---- value parsers ---- */

static void
test_sizes(void)
{
	static const struct {
		const char *in;
		uint64_t want;
	} good[] = {
	    {"0", 0},
	    {"1", 1},
	    {"512", 512},
	    {"007", 7},
	    {"1K", 1024},
	    {"1k", 1024},
	    {"8K", 8192},
	    {"64M", 64ull << 20},
	    {"64m", 64ull << 20},
	    {"1G", 1ull << 30},
	    {"3T", 3ull << 40},
	    {"1GiB", 1ull << 30},
	    {"1gib", 1ull << 30},
	    {"4KB", 4096},
	    {"4kb", 4096},
	    {"2MiB", 2ull << 20},
	    {"10B", 10},
	    {"16777215T", 16777215ull << 40},
	    {"18446744073709551615", UINT64_MAX},
	};
	static const struct {
		const char *in, *why;
	} bad[] = {
	    {"", "empty value"},
	    {"abc",
	        "not a size (a number with an optional K, M, G or T "
	        "suffix)"},
	    {"-1",
	        "not a size (a number with an optional K, M, G or T "
	        "suffix)"},
	    {"K",
	        "not a size (a number with an optional K, M, G or T "
	        "suffix)"},
	    {"1.5G",
	        "fractions are not supported (write 1536K, not "
	        "1.5M)"},
	    {"1X",
	        "unknown unit (K, M, G or T, optionally followed by B "
	        "or iB)"},
	    {"1KiBx",
	        "unknown unit (K, M, G or T, optionally followed "
	        "by B or iB)"},
	    {"5iB",
	        "unknown unit (K, M, G or T, optionally followed by "
	        "B or iB)"},
	    {"1 K",
	        "unknown unit (K, M, G or T, optionally followed by "
	        "B or iB)"},
	    {"1KK",
	        "unknown unit (K, M, G or T, optionally followed by "
	        "B or iB)"},
	    {"18446744073709551616", "too large"},
	    {"99999999999999999999999", "too large"},
	    {"16777216T", "too large"},
	    {"17179869184G", "too large"},
	};
	uint64_t v;
	const char *why;

	for (size_t i = 0; i < CDN_ARRAY_LEN(good); i++) {
		v = 12345;
		why = NULL;
		is_int(conf_parse_size(good[i].in, &v, &why), CDN_OK,
		    "size \"%s\" parses", good[i].in);
		ok(v == good[i].want, "size \"%s\" = %llu", good[i].in,
		    (unsigned long long)good[i].want);
	}
	for (size_t i = 0; i < CDN_ARRAY_LEN(bad); i++) {
		v = 12345;
		why = NULL;
		is_int(conf_parse_size(bad[i].in, &v, &why), CDN_EINVAL,
		    "size \"%s\" is refused", bad[i].in);
		is_str(why, bad[i].why, "size \"%s\": why", bad[i].in);
		ok(v == 12345, "size \"%s\": out untouched", bad[i].in);
	}
}

static void
test_durations(void)
{
	static const struct {
		const char *in;
		uint64_t want;
	} good[] = {
	    {"0", 0},
	    {"000", 0},
	    {"0ms", 0},
	    {"0s", 0},
	    {"1ms", 1},
	    {"1500ms", 1500},
	    {"1s", 1000},
	    {"30s", 30000},
	    {"2m", 120000},
	    {"3h", 10800000},
	    {"1d", 86400000},
	    {"213503982334d", 213503982334ull * 86400000},
	    {"18446744073709551615ms", UINT64_MAX},
	};
	static const struct {
		const char *in, *why;
	} bad[] = {
	    {"", "empty value"},
	    {"10", "missing unit (ms, s, m, h or d)"},
	    {"1", "missing unit (ms, s, m, h or d)"},
	    {"10x", "unknown unit (ms, s, m, h or d)"},
	    {"10S", "unknown unit (ms, s, m, h or d)"},
	    {"10sec", "unknown unit (ms, s, m, h or d)"},
	    {"1m30s", "unknown unit (ms, s, m, h or d)"},
	    {"10 s", "unknown unit (ms, s, m, h or d)"},
	    {"s",
	        "not a duration (a number and a unit: ms, s, m, h or "
	        "d)"},
	    {"-5s",
	        "not a duration (a number and a unit: ms, s, m, h or "
	        "d)"},
	    {"1.5s",
	        "fractions are not supported (write 1500ms, not "
	        "1.5s)"},
	    {"213503982335d", "too large"},
	    {"18446744073709551615s", "too large"},
	    {"18446744073709551616ms", "too large"},
	};
	uint64_t v;
	const char *why;

	for (size_t i = 0; i < CDN_ARRAY_LEN(good); i++) {
		v = 12345;
		why = NULL;
		is_int(conf_parse_duration_ms(good[i].in, &v, &why), CDN_OK,
		    "duration \"%s\" parses", good[i].in);
		ok(v == good[i].want, "duration \"%s\" = %llums", good[i].in,
		    (unsigned long long)good[i].want);
	}
	for (size_t i = 0; i < CDN_ARRAY_LEN(bad); i++) {
		v = 12345;
		why = NULL;
		is_int(conf_parse_duration_ms(bad[i].in, &v, &why), CDN_EINVAL,
		    "duration \"%s\" is refused", bad[i].in);
		is_str(why, bad[i].why, "duration \"%s\": why", bad[i].in);
		ok(v == 12345, "duration \"%s\": out untouched", bad[i].in);
	}
}

/* Bounds and the other types, through conf_set(). */
static void
test_set(void)
{
	static const struct {
		const char *name, *val, *err; /* err NULL: accepted */
	} cases[] = {
	    {"cache_size", "1M", NULL},
	    {"cache_size", "16T", NULL},
	    {"cache_size", "1023K",
	        "edged: error: cache_size: must be between 1M and 16T\n"},
	    {"cache_size", "17T",
	        "edged: error: cache_size: must be between 1M and 16T\n"},
	    {"client_header_timeout", "100ms", NULL},
	    {"client_header_timeout", "1h", NULL},
	    {"client_header_timeout", "99ms",
	        "edged: error: client_header_timeout: must be between "
	        "100ms and 1h\n"},
	    {"client_header_timeout", "3600001ms",
	        "edged: error: client_header_timeout: must be between "
	        "100ms and 1h\n"},
	    {"origin_connect_timeout", "11m",
	        "edged: error: origin_connect_timeout: must be between "
	        "10ms and 10m\n"},
	    {"keepalive_timeout", "0", NULL},
	    {"keepalive_timeout", "2h",
	        "edged: error: keepalive_timeout: must be between 0 and "
	        "1h\n"},
	    {"threads", "0", NULL},
	    {"threads", "256", NULL},
	    {"threads", "257",
	        "edged: error: threads: must be between 0 and 256\n"},
	    {"threads", "4k",
	        "edged: error: threads: not a number (no unit or sign)\n"},
	    {"threads", "-1", "edged: error: threads: not a number\n"},
	    {"threads", "99999999999", "edged: error: threads: too large\n"},
	    {"max_connections", "0",
	        "edged: error: max_connections: must be between 1 and "
	        "1000000\n"},
	    {"max_request_line", "255",
	        "edged: error: max_request_line: must be between 256 and "
	        "1M\n"},
	    {"log_level", "debug", NULL},
	    {"log_level", "loud",
	        "edged: error: log_level: unknown level (err, warn, info "
	        "or debug)\n"},
	    {"via", "", NULL},
	    {"via", "a b # c", NULL},
	    {"via", "a\tb",
	        "edged: error: via: control characters are not "
	        "allowed\n"},
	    {"admin_listen", "", NULL},
	    {"admin_listen", "[::1]:9000", NULL},
	    {"admin_listen", "9000",
	        "edged: error: admin_listen: missing port (HOST:PORT)\n"},
	    {"listen", "", "edged: error: listen: empty address (HOST:PORT)\n"},
	    {"origin", "", NULL},
	    {"origin", "ftp://x",
	        "edged: error: origin: must start with http:// or "
	        "https://\n"},
	    {"nosuch", "1", "edged: error: nosuch: unknown directive\n"},
	};
	struct capture cap = {0};
	struct conf *c;

	for (size_t i = 0; i < CDN_ARRAY_LEN(cases); i++) {
		c = conf_new_defaults();
		is_int(conf_set(c, cases[i].name, cases[i].val, cap_open(&cap)),
		    cases[i].err == NULL ? CDN_OK : CDN_EINVAL,
		    "set %s \"%s\": rc", cases[i].name, cases[i].val);
		is_str(cap_text(&cap), cases[i].err == NULL ? "" : cases[i].err,
		    "set %s \"%s\": message", cases[i].name, cases[i].val);
		conf_unref(&c);
	}

	c = conf_new_defaults();
	is_int(conf_set(c, "cache_size", "2G", NULL), CDN_OK, "set 2G");
	is_int(
	    conf_set(c, "cache_size", "1K", NULL), CDN_EINVAL, "out of range");
	ok(c->cache_size == 2ull << 30, "a refused value leaves the field");
	is_int(conf_set(c, "via", "x", NULL), CDN_OK, "set via");
	is_int(conf_set(c, "via", "y", NULL), CDN_OK, "set via again");
	is_str(c->via, "y", "the last set wins");
	is_int(conf_set(c, "listen", "a.example:1", NULL), CDN_OK, "listen");
	is_int(conf_set(c, "listen", "b.example:2", NULL), CDN_OK, "listen");
	is_int(c->listen.n, 2, "conf_set appends to a list");
	conf_unref(&c);
	free(cap.buf);
}

static void
test_hostport(void)
{
	static const struct {
		const char *in, *host;
		unsigned port;
	} good[] = {
	    {"127.0.0.1:8080", "127.0.0.1", 8080},
	    {"0.0.0.0:1", "0.0.0.0", 1},
	    {"[::1]:8080", "::1", 8080},
	    {"[2001:db8::17]:443", "2001:db8::17", 443},
	    {"[::]:80", "::", 80},
	    {"*:8080", "0.0.0.0", 8080},
	    {"localhost:8080", "localhost", 8080},
	    {"edge-1.example.com:65535", "edge-1.example.com", 65535},
	    {"example.com.:80", "example.com.", 80},
	};
	static const struct {
		const char *in, *why;
	} bad[] = {
	    {"", "empty address (HOST:PORT)"},
	    {"127.0.0.1", "missing port (HOST:PORT)"},
	    {"127.0.0.1:", "missing port (HOST:PORT)"},
	    {"127.0.0.1:0", "invalid port (a number from 1 to 65535)"},
	    {"127.0.0.1:65536", "invalid port (a number from 1 to 65535)"},
	    {"127.0.0.1:99999999999",
	        "invalid port (a number from 1 to "
	        "65535)"},
	    {"127.0.0.1:80x", "invalid port (a number from 1 to 65535)"},
	    {"127.0.0.1:-1", "invalid port (a number from 1 to 65535)"},
	    {"::1:8080",
	        "an IPv6 address must be in brackets "
	        "([::1]:8080)"},
	    {"2001:db8::1:80",
	        "an IPv6 address must be in brackets "
	        "([::1]:8080)"},
	    {"[::1]", "missing port (HOST:PORT)"},
	    {"[::1]8080", "expected ':' and a port after ']'"},
	    {"[::1:8080", "missing ']' after an IPv6 address"},
	    {"[]:80", "invalid IPv6 address"},
	    {"[zz::1]:80", "invalid IPv6 address"},
	    {"[127.0.0.1]:80", "invalid IPv6 address"},
	    {":80", "missing host"},
	    {"256.1.1.1:80", "invalid IPv4 address"},
	    {"1.2.3:80", "invalid IPv4 address"},
	    {"ho st:80", "invalid host name"},
	    {"a..b:80", "invalid host name (empty label)"},
	    {"**:80", "invalid host name"},
	};
	char host[256];
	uint16_t port;
	const char *why;

	for (size_t i = 0; i < CDN_ARRAY_LEN(good); i++) {
		host[0] = '\0';
		port = 0;
		is_int(http_listen_parse(
		           good[i].in, host, sizeof(host), &port, &why),
		    CDN_OK, "hostport \"%s\" parses", good[i].in);
		is_str(host, good[i].host, "hostport \"%s\": host", good[i].in);
		is_int(port, good[i].port, "hostport \"%s\": port", good[i].in);
	}
	for (size_t i = 0; i < CDN_ARRAY_LEN(bad); i++) {
		snprintf(host, sizeof(host), "untouched");
		port = 7;
		why = NULL;
		is_int(http_listen_parse(
		           bad[i].in, host, sizeof(host), &port, &why),
		    CDN_EINVAL, "hostport \"%s\" is refused", bad[i].in);
		is_str(why, bad[i].why, "hostport \"%s\": why", bad[i].in);
		ok(strcmp(host, "untouched") == 0 && port == 7,
		    "hostport \"%s\": outputs untouched", bad[i].in);
	}
	is_int(http_listen_parse("localhost:80", host, 9, &port, &why),
	    CDN_EINVAL, "a host longer than hostlen is refused");
	is_int(http_listen_parse("localhost:80", host, 10, &port, &why), CDN_OK,
	    "a host that just fits");
}

static void
test_url(void)
{
	static const char *const good[] = {
	    "http://a",
	    "http://origin.example:8080",
	    "https://origin.example/",
	    "https://origin.example/static/v1",
	    "http://[::1]:8081/x",
	    "http://[2001:db8::1]",
	    "HTTP://Origin.Example",
	    "http://127.0.0.1:1",
	};
	static const struct {
		const char *in, *why;
	} bad[] = {
	    {"origin.example", "must start with http:// or https://"},
	    {"ftp://origin.example",
	        "must start with http:// or "
	        "https://"},
	    {"http:/a", "must start with http:// or https://"},
	    {"http://", "missing host"},
	    {"http:///x", "missing host"},
	    {"http://user:pw@origin.example",
	        "credentials in the origin "
	        "URL are not supported"},
	    {"http://user@origin.example/",
	        "credentials in the origin "
	        "URL are not supported"},
	    {"http://a/x?y=1",
	        "a query string in the origin URL is not "
	        "supported"},
	    {"http://a?y",
	        "a query string in the origin URL is not "
	        "supported"},
	    {"http://a/#frag",
	        "a fragment in the origin URL is not "
	        "supported"},
	    {"http://a:0", "invalid port (a number from 1 to 65535)"},
	    {"http://a:65536/", "invalid port (a number from 1 to 65535)"},
	    {"http://a:", "missing port (HOST:PORT)"},
	    {"http://a:b", "invalid port (a number from 1 to 65535)"},
	    {"http://::1/",
	        "an IPv6 address must be in brackets "
	        "([::1]:8080)"},
	    {"http://[::1/", "missing ']' after an IPv6 address"},
	    {"http://*:80", "invalid host name"},
	    {"http://a b/",
	        "spaces and control characters are not "
	        "allowed in a URL"},
	    {"http://999.0.0.1/", "invalid IPv4 address"},
	};
	const char *why;

	for (size_t i = 0; i < CDN_ARRAY_LEN(good); i++)
		is_int(conf_parse_url(good[i], &why), CDN_OK,
		    "url \"%s\" is accepted", good[i]);
	for (size_t i = 0; i < CDN_ARRAY_LEN(bad); i++) {
		why = NULL;
		is_int(conf_parse_url(bad[i].in, &why), CDN_EINVAL,
		    "url \"%s\" is refused", bad[i].in);
		is_str(why, bad[i].why, "url \"%s\": why", bad[i].in);
	}
}

/* ---- the file ---- */

static void
test_file_ok(void)
{
	struct capture cap = {0};
	struct conf *c, *d;
	int rc;

	rc = load_text("ok.conf",
	    "# a comment\n"
	    "\n"
	    "   \t\n"
	    "listen 127.0.0.1:8080   # trailing comment\n"
	    "\tlisten\t[::1]:8080\n"
	    "origin http://origin.example:8081\n"
	    "cache_size 2GiB\n"
	    "origin_connect_timeout 1500ms\r\n"
	    "via \"edge # one\"\n"
	    "origin_host \"\"\n"
	    "access_log \"a \\\"quoted\\\" \\\\ path\"\n"
	    "cache_dir /var/cache/edged#not-a-comment-inside\n"
	    "log_level debug\n"
	    "threads 4", /* no final newline */
	    &c, &cap);
	is_int(rc, CDN_OK, "a good file loads");
	is_str(cap.buf, "", "and prints nothing");
	is_int(c->listen.n, 2, "listen twice: two values");
	if (c->listen.n == 2) {
		is_str(c->listen.v[0], "127.0.0.1:8080", "first listen");
		is_str(c->listen.v[1], "[::1]:8080", "second listen (tabs)");
	}
	is_str(c->origin, "http://origin.example:8081", "origin");
	ok(c->cache_size == 2ull << 30, "cache_size 2GiB");
	ok(c->origin_connect_timeout == 1500, "CRLF line: 1500ms");
	is_str(c->via, "edge # one", "a quoted '#' is not a comment");
	is_str(c->origin_host, "", "\"\" is the empty value");
	is_str(c->access_log, "a \"quoted\" \\ path", "escapes in quotes");
	is_str(c->cache_dir, "/var/cache/edged", "a bare '#' starts a comment");
	is_int(c->log_level, CDN_LOG_DEBUG, "log_level debug");
	is_int(c->threads, 4, "last line without a newline");
	is_str(c->config, "ok.conf", "c->config names the file");
	ok(c->max_headers == 100, "an unset directive keeps its default");
	conf_unref(&c);

	/* The file's list replaces one set below it (here by conf_set). */
	d = conf_new_defaults();
	is_int(conf_set(d, "listen", "10.0.0.1:1", NULL), CDN_OK, "pre-set");
	write_file("repl.conf", "listen 10.0.0.2:2\nlisten 10.0.0.3:3\n", 36);
	is_int(conf_load_file(d, "repl.conf", NULL), CDN_OK, "load on top");
	is_int(d->listen.n, 2, "the file's list replaced the earlier one");
	if (d->listen.n == 2)
		is_str(d->listen.v[0], "10.0.0.2:2", "file list first value");
	conf_unref(&d);

	/* A byte order mark and an empty file. */
	rc = load_text("bom.conf", "\xef\xbb\xbfthreads 3\n", &c, &cap);
	is_int(rc, CDN_OK, "a UTF-8 BOM is skipped");
	is_int(c->threads, 3, "and the first line still counts");
	conf_unref(&c);
	is_int(load_text("empty.conf", "", NULL, &cap), CDN_OK, "empty file");
	free(cap.buf);
}

static void
test_file_errors(void)
{
	static const struct {
		const char *text, *err;
	} cases[] = {
	    {"via a\nthreads 2\nvia b\n",
	        "e.conf:3:1: error: via: set twice (first at line 1)\n"},
	    {"cach_size 1G\n",
	        "e.conf:1:1: error: cach_size: unknown directive (did you "
	        "mean cache_size?)\n"},
	    {"  lissten 127.0.0.1:80\n",
	        "e.conf:1:3: error: lissten: unknown directive (did you "
	        "mean listen?)\n"},
	    {"cache-size 1G\n",
	        "e.conf:1:1: error: cache-size: unknown directive (did "
	        "you mean cache_size?)\n"},
	    {"frobnicate 1\n",
	        "e.conf:1:1: error: frobnicate: unknown directive\n"},
	    {"config /etc/other.conf\n",
	        "e.conf:1:1: error: config: cannot be set in a config file "
	        "(use -c FILE)\n"},
	    {"origin_connect_timeout 5\n",
	        "e.conf:1:24: error: origin_connect_timeout: missing unit "
	        "(ms, s, m, h or d)\n"},
	    {"cache_size    5X\n",
	        "e.conf:1:15: error: cache_size: unknown unit (K, M, G or "
	        "T, optionally followed by B or iB)\n"},
	    {"threads\n", "e.conf:1:8: error: threads: missing value\n"},
	    {"threads   # none\n",
	        "e.conf:1:8: error: threads: missing value\n"},
	    {"via edge one\n",
	        "e.conf:1:10: error: via: more than one value (quote a "
	        "value that contains spaces)\n"},
	    {"site example {\n",
	        "e.conf:1:1: error: site: block not closed (missing '}')\n"},
	    {"}\n",
	        "e.conf:1:1: error: unexpected '}' (a block starts with "
	        "\"site NAME... {\")\n"},
	    {"via a{b\n",
	        "e.conf:1:6: error: via: a brace must stand alone "
	        "(put blanks around it)\n"},
	    {"via \"{ok}\"\n", NULL},
	    {"via \"abc\n",
	        "e.conf:1:5: error: via: unterminated quoted value\n"},
	    {"via \"a\\nb\"\n",
	        "e.conf:1:7: error: via: invalid escape (only \\\" and \\\\ "
	        "are allowed)\n"},
	    {"via \"a\"b\n",
	        "e.conf:1:8: error: via: unexpected text after a closing "
	        "quote\n"},
	    {"via a\"b\"\n",
	        "e.conf:1:6: error: via: unexpected quote inside a value "
	        "(quote the whole value)\n"},
	    {"via a\x01z\n", "e.conf:1:6: error: via: control character\n"},
	    {"via \"a\tb\"\n",
	        "e.conf:1:7: error: via: control character in a quoted "
	        "value\n"},
	    {"listen ::1:80\n",
	        "e.conf:1:8: error: listen: an IPv6 address must be in "
	        "brackets ([::1]:8080)\n"},
	    {"origin http://u:p@o.example\n",
	        "e.conf:1:8: error: origin: credentials in the origin URL "
	        "are not supported\n"},
	    {"log_level \"verbose\"\n",
	        "e.conf:1:11: error: log_level: unknown level (err, warn, "
	        "info or debug)\n"},
	    {"send_timeout 1ms\n",
	        "e.conf:1:14: error: send_timeout: must be between 100ms "
	        "and 1h\n"},
	};
	struct capture cap = {0};
	int rc;

	for (size_t i = 0; i < CDN_ARRAY_LEN(cases); i++) {
		rc = load_text("e.conf", cases[i].text, NULL, &cap);
		is_int(rc, cases[i].err == NULL ? CDN_OK : CDN_EINVAL,
		    "file case %zu: rc", i);
		is_str(cap.buf, cases[i].err == NULL ? "" : cases[i].err,
		    "file case %zu: message", i);
	}

	/* Every error of a file is reported, in order, and nothing else. */
	rc = load_text("multi.conf",
	    "listen 127.0.0.1:8080\n"
	    "cache_size 12Q\n"
	    "# fine\n"
	    "origin_connect_timeout 30\n"
	    "listen 127.0.0.1:0\n"
	    "via ok\n"
	    "chache_dir /x\n"
	    "via again\n"
	    "threads 1\n",
	    NULL, &cap);
	is_int(rc, CDN_EINVAL, "a file with five errors fails");
	is_str(cap.buf,
	    "multi.conf:2:12: error: cache_size: unknown unit (K, M, G or T, "
	    "optionally followed by B or iB)\n"
	    "multi.conf:4:24: error: origin_connect_timeout: missing unit "
	    "(ms, s, m, h or d)\n"
	    "multi.conf:5:8: error: listen: invalid port (a number from 1 to "
	    "65535)\n"
	    "multi.conf:7:1: error: chache_dir: unknown directive (did you "
	    "mean cache_dir?)\n"
	    "multi.conf:8:1: error: via: set twice (first at line 6)\n",
	    "all five errors, with file:line:col");

	/* Lines: 4096 bytes is fine, 4097 is not. */
	{
		char *big = malloc(CONF_MAX_LINE + 32);

		memset(big, ' ', CONF_MAX_LINE + 32);
		memcpy(big, "via x", 5);
		big[CONF_MAX_LINE] = '\n';
		big[CONF_MAX_LINE + 1] = '\0';
		is_int(load_text("l.conf", big, NULL, &cap), CDN_OK,
		    "a 4096-byte line is fine");
		big[CONF_MAX_LINE] = ' ';
		big[CONF_MAX_LINE + 1] = '\n';
		big[CONF_MAX_LINE + 2] = '\0';
		is_int(load_text("l.conf", big, NULL, &cap), CDN_EINVAL,
		    "a 4097-byte line is not");
		is_str(cap.buf,
		    "l.conf:1:4097: error: line too long (more than 4096 "
		    "bytes)\n",
		    "the line-length message");
		free(big);
	}

	/* A flood of errors stops at 100. */
	{
		size_t n = 300 * 4;
		char *junk = malloc(n + 1);
		struct conf *c = conf_new_defaults();

		for (size_t i = 0; i < 300; i++)
			memcpy(junk + 4 * i, "zz!\n", 4);
		junk[n] = '\0';
		is_int(conf_load_buf(c, "junk", junk, n, cap_open(&cap)),
		    CDN_EINVAL, "a junk buffer fails");
		cap_text(&cap);
		is_int(count_lines(cap.buf), 101, "100 errors, then one more");
		ok(strstr(cap.buf,
		       "junk: error: too many errors, giving up\n") != NULL,
		    "and that one says it gave up");
		conf_unref(&c);
		free(junk);
	}

	/* Limits on the file itself. */
	{
		struct conf *c = conf_new_defaults();
		char *huge = calloc(1, CONF_MAX_FILE + 2);

		memset(huge, '#', CONF_MAX_FILE + 1);
		is_int(conf_load_buf(
		           c, "huge", huge, CONF_MAX_FILE + 1, cap_open(&cap)),
		    CDN_EINVAL, "a file over 1 MiB is refused");
		is_str(cap_text(&cap),
		    "huge: error: file too large (more than 1024 KiB)\n",
		    "with a message");
		write_file("huge.conf", huge, CONF_MAX_FILE + 1);
		is_int(conf_load_file(c, "huge.conf", NULL), CDN_EINVAL,
		    "also from disk");
		is_int(conf_load_file(c, "nonexistent.conf", cap_open(&cap)),
		    CDN_EINVAL, "a missing file fails");
		is_str(cap_text(&cap),
		    "nonexistent.conf: error: cannot open: No such file or "
		    "directory\n",
		    "cannot open: strerror");
		mkdir("adir", 0700);
		is_int(conf_load_file(c, "adir", cap_open(&cap)), CDN_EINVAL,
		    "a directory fails");
		is_str(cap_text(&cap),
		    "adir: error: cannot read: Is a directory\n",
		    "cannot read: strerror");
		rmdir("adir");
		conf_unref(&c);
		free(huge);
	}
	free(cap.buf);
}

/* ---- the command line ---- */

static void
test_argv(void)
{
	struct capture cap = {0};
	struct conf *c = NULL;
	enum conf_action act;
	int rc;

	write_file("base.conf",
	    "listen 10.0.0.1:80\nlisten 10.0.0.2:80\norigin "
	    "http://file.example\n"
	    "cache_size 2G\nvia file\n",
	    strlen("listen 10.0.0.1:80\nlisten 10.0.0.2:80\norigin "
	           "http://file.example\ncache_size 2G\nvia file\n"));

	/* The file alone. */
	act = CONF_ACT_HELP;
	rc = run_argv(&c, &act, &cap, "-c", "base.conf", NULL);
	is_int(rc, CDN_OK, "-c FILE loads");
	is_str(cap.buf, "", "quietly");
	is_int(act, CONF_ACT_RUN, "no action flag: run");
	if (c != NULL) {
		is_int(c->listen.n, 2, "the file's two listens");
		ok(c->cache_size == 2ull << 30, "the file's cache_size");
		is_str(c->config, "base.conf", "c->config");
	}
	conf_unref(&c);

	/* Flags win over the file; a list flag replaces the file's list. */
	rc = run_argv(&c, &act, &cap, "--config", "base.conf", "--cache-size",
	    "3G", "--listen", "10.0.0.3:80", "--via=flag", "-p", "8080",
	    "--origin-connect-timeout=250ms", "-o", "http://flag.example",
	    NULL);
	is_int(rc, CDN_OK, "flags over a file");
	is_str(cap.buf, "", "quietly");
	if (c != NULL) {
		ok(c->cache_size == 3ull << 30, "--cache-size beats the file");
		is_str(c->via, "flag", "--via=value beats the file");
		ok(c->origin_connect_timeout == 250, "--x-y=value");
		is_str(c->origin, "http://flag.example", "-o beats the file");
		is_int(c->listen.n, 2, "--listen and -p replace the file's");
		if (c->listen.n == 2) {
			is_str(c->listen.v[0], "10.0.0.3:80", "--listen first");
			is_str(c->listen.v[1], "127.0.0.1:8080",
			    "-p PORT is 127.0.0.1:PORT");
		}
	}
	conf_unref(&c);

	/* Short forms, attached values, -f, and last-wins for scalars. */
	rc = run_argv(&c, &act, &cap, "-f", "base.conf", "-l127.0.0.1:81",
	    "-p8082", "--threads", "2", "--threads", "3", "-t", NULL);
	is_int(rc, CDN_OK, "-f, -lADDR, -pPORT");
	is_int(act, CONF_ACT_TEST, "-t: test");
	if (c != NULL) {
		is_int(c->threads, 3, "a repeated scalar flag: the last wins");
		is_int(c->listen.n, 2, "-l and -p");
		if (c->listen.n == 2)
			is_str(c->listen.v[1], "127.0.0.1:8082", "-p8082");
		is_str(
		    c->via, "file", "an untouched directive keeps the file's");
	}
	conf_unref(&c);

	/* No file at all. */
	rc = run_argv(&c, &act, &cap, "--listen", "[::1]:8080", "--origin",
	    "https://o.example", "--dump-config", NULL);
	is_int(rc, CDN_OK, "flags without a file");
	is_int(act, CONF_ACT_DUMP, "--dump-config");
	if (c != NULL)
		ok(c->config == NULL, "no file: c->config is NULL");
	conf_unref(&c);

	rc = run_argv(&c, &act, &cap, "-l", "*:80", "-o", "http://o", "-t",
	    "--dump-config", NULL);
	is_int(act, CONF_ACT_DUMP, "-t with --dump-config: dump (it checks)");
	conf_unref(&c);

	/* Help and version need neither listen nor origin, nor the file. */
	rc = run_argv(&c, &act, &cap, "-h", NULL);
	is_int(rc, CDN_OK, "-h without listen or origin");
	is_int(act, CONF_ACT_HELP, "-h: help");
	conf_unref(&c);
	rc = run_argv(&c, &act, &cap, "--help", "-c", "missing.conf", NULL);
	is_int(rc, CDN_OK, "--help does not read the file");
	is_int(act, CONF_ACT_HELP, "--help: help");
	conf_unref(&c);
	rc = run_argv(&c, &act, &cap, "-V", NULL);
	is_int(act, CONF_ACT_VERSION, "-V: version");
	conf_unref(&c);
	rc = run_argv(&c, &act, &cap, "--version", "-t", NULL);
	is_int(act, CONF_ACT_VERSION, "--version wins over -t");
	conf_unref(&c);

	/* Validation. */
	c = NULL;
	rc = run_argv(&c, &act, &cap, NULL);
	is_int(rc, CDN_EINVAL, "no listen and no origin: error");
	ok(c == NULL, "*out untouched on error");
	is_str(cap.buf,
	    "edged: error: no listen address: set listen in the config or "
	    "--listen\n"
	    "edged: error: no origin: set origin in the config or --origin\n",
	    "both missing directives are reported");
	rc = run_argv(&c, &act, &cap, "-o", "http://o", "-t", NULL);
	is_int(rc, CDN_EINVAL, "-t checks too");
	is_str(cap.buf,
	    "edged: error: no listen address: set listen in the config or "
	    "--listen\n",
	    "no listen");

	/* Flag errors: every one is printed. */
	c = NULL;
	rc = run_argv(&c, &act, &cap, "--cache-sise", "1G", "--cache-size",
	    "12X", "--frob", "-x", "-t1", "--listen", "::1:80", "-p", "0",
	    "--help=yes", "stray", "--origin", NULL);
	is_int(rc, CDN_EINVAL, "bad flags fail");
	ok(c == NULL, "*out untouched");
	is_str(cap.buf,
	    "edged: error: unknown option --cache-sise (did you mean "
	    "--cache-size?)\n"
	    "edged: error: unknown option --frob\n"
	    "edged: error: unknown option -x\n"
	    "edged: error: unknown option -t1\n"
	    "edged: error: --help: takes no value\n"
	    "edged: error: unexpected argument \"stray\"\n"
	    "edged: error: --origin: missing value\n"
	    "edged: error: --cache-size: unknown unit (K, M, G or T, "
	    "optionally followed by B or iB)\n"
	    "edged: error: --listen: an IPv6 address must be in brackets "
	    "([::1]:8080)\n"
	    "edged: error: -p: invalid port (a number from 1 to 65535)\n",
	    "every flag error, exactly");

	rc = run_argv(&c, &act, &cap, "--dump-confg", "--cache_size", "1G",
	    "--", "-l", NULL);
	is_str(cap.buf,
	    "edged: error: unknown option --dump-confg (did you mean "
	    "--dump-config?)\n"
	    "edged: error: unknown option --cache_size (did you mean "
	    "--cache-size?)\n"
	    "edged: error: unexpected argument \"-l\"\n",
	    "suggestions for flags; -- ends the options");

	rc = run_argv(
	    &c, &act, &cap, "-c", "base.conf", "-f", "other.conf", NULL);
	is_str(cap.buf,
	    "edged: error: -f: config file given twice (first -c)\n",
	    "two config files");

	/* File errors and flag errors together. */
	write_file("bad.conf", "threads lots\n", 13);
	rc = run_argv(&c, &act, &cap, "-c", "bad.conf", "--via", "a\nb", NULL);
	is_int(rc, CDN_EINVAL, "a bad file fails the command line");
	is_str(cap.buf,
	    "bad.conf:1:9: error: threads: not a number\n"
	    "edged: error: --via: control characters are not allowed\n",
	    "file errors, then flag errors");
	rc = run_argv(&c, &act, &cap, "-c", "nope.conf", NULL);
	is_str(cap.buf,
	    "nope.conf: error: cannot open: No such file or directory\n",
	    "a missing -c file");
	free(cap.buf);
}

static void
test_validate(void)
{
	struct capture cap = {0};
	struct conf *c = conf_new_defaults();

	is_int(conf_set(c, "listen", "*:80", NULL), CDN_OK, "listen");
	is_int(conf_set(c, "origin", "http://o", NULL), CDN_OK, "origin");
	is_int(conf_validate(c, NULL), CDN_OK, "listen and origin suffice");
	is_int(conf_set(c, "listen", "0.0.0.0:80", NULL), CDN_OK, "dup");
	is_int(conf_set(c, "admin_listen", "[::1]:90", NULL), CDN_OK, "admin");
	is_int(conf_set(c, "listen", "[::1]:90", NULL), CDN_OK, "clash");
	is_int(conf_set(c, "max_request_line", "64K", NULL), CDN_OK, "64K");
	is_int(conf_set(c, "compress_types", "text/*", NULL), CDN_OK, "type");
	is_int(conf_set(c, "compress_types", "*/json", NULL), CDN_OK, "type");
	is_int(conf_set(c, "compress_types", "application/*+json", NULL),
	    CDN_OK, "type");
	is_int(conf_validate(c, cap_open(&cap)), CDN_EINVAL, "invalid");
	is_str(cap_text(&cap),
	    "edged: error: listen: 0.0.0.0:80 given twice\n"
	    "edged: error: admin_listen: [::1]:90 is also a listen address\n"
	    "edged: error: compress_types: \"*/json\": not type/subtype with "
	    "at most one * in the subtype\n"
	    "edged: error: max_request_line: 64K is larger than "
	    "max_header_size (32K)\n",
	    "cross-directive checks");
	conf_unref(&c);
	free(cap.buf);
}

/* node_name: a token, bounded; empty means the host name. */
static void
test_node_name(void)
{
	struct capture cap = {0};
	struct conf *c = conf_new_defaults();
	char name[CONF_NODE_NAME_MAX], host[CONF_NODE_NAME_MAX] = "";

	is_int(conf_set(c, "listen", "*:80", NULL), CDN_OK, "listen");
	is_int(conf_set(c, "origin", "http://o", NULL), CDN_OK, "origin");
	conf_node_name(c, name);
	if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
		snprintf(host, sizeof(host), "edged");
	host[sizeof(host) - 1] = '\0';
	is_str(name, host, "unset: the host name");
	is_int(conf_set(c, "node_name", "edge-1.fra", NULL), CDN_OK, "set");
	is_int(conf_validate(c, NULL), CDN_OK, "a token is valid");
	conf_node_name(c, name);
	is_str(name, "edge-1.fra", "set: as given");
	is_int(conf_set(c, "node_name", "edge 1", NULL), CDN_OK, "set");
	is_int(conf_validate(c, cap_open(&cap)), CDN_EINVAL, "space");
	is_str(cap_text(&cap),
	    "edged: error: node_name: \"edge 1\": not a token (letters, "
	    "digits and !#$%&'*+-.^_`|~)\n",
	    "not a token");
	is_int(conf_set(c, "node_name",
	           "n123456789012345678901234567890123456789012345678901234567"
	           "890123",
	           NULL),
	    CDN_OK, "set");
	is_int(conf_validate_keys(c, "purged", cap_open(&cap)), CDN_EINVAL,
	    "too long, for purged too");
	is_str(cap_text(&cap),
	    "purged: error: node_name: longer than 63 bytes\n", "too long");
	conf_unref(&c);
	free(cap.buf);
}

/* ---- --help, --dump-config ---- */

/* tls_sni_cert syntax (with file:line:col), TLS cross-checks. */
static void
test_tls(void)
{
	static const struct {
		const char *in, *name, *cert, *key, *ocsp;
	} good[] = {
	    {"www.example.com a.pem a.key", "www.example.com", "a.pem", "a.key",
	        NULL},
	    {"  WWW.Example.COM.\ta.pem  a.key o.der ", "www.example.com",
	        "a.pem", "a.key", "o.der"},
	    {"*.example.com w.pem w.key", "*.example.com", "w.pem", "w.key",
	        NULL},
	    {"a-b_c.test /x y", "a-b_c.test", "/x", "y", NULL},
	};
	static const struct {
		const char *in, *why;
	} bad[] = {
	    {"", "expected \"NAME CERTFILE KEYFILE [OCSPFILE]\""},
	    {"www.a.test a.pem",
	        "expected \"NAME CERTFILE KEYFILE "
	        "[OCSPFILE]\""},
	    {"a b c d e",
	        "more than four fields (NAME CERTFILE KEYFILE [OCSPFILE]; "
	        "file names cannot contain blanks)"},
	    {"*.com a b",
	        "a wildcard needs at least two labels after \"*.\" "
	        "(*.example.com)"},
	    {"*a.example.com a b",
	        "a wildcard must be a whole first label (*.example.com)"},
	    {"a.*.example.com a b",
	        "'*' is only allowed as the whole first label"},
	    {"10.0.0.1 a b",
	        "an IP address is not a server name (SNI carries names only)"},
	    {"[::1] a b",
	        "an IP address is not a server name (SNI carries names only)"},
	    {"a/b.test a b", "invalid host name"},
	    {"a..b a b", "invalid host name (empty label)"},
	};
	struct capture cap = {0};
	struct conf_sni_cert sc;
	struct conf *c;
	const char *why;
	char buf[128];

	for (size_t i = 0; i < CDN_ARRAY_LEN(good); i++) {
		memset(&sc, 0, sizeof(sc));
		is_int(conf_parse_sni_cert(
		           good[i].in, buf, sizeof(buf), &sc, &why),
		    CDN_OK, "sni cert \"%s\"", good[i].in);
		is_str(sc.name, good[i].name, "  name");
		is_str(sc.cert, good[i].cert, "  cert");
		is_str(sc.key, good[i].key, "  key");
		ok(str_eq(sc.ocsp, good[i].ocsp), "  ocsp");
	}
	for (size_t i = 0; i < CDN_ARRAY_LEN(bad); i++) {
		why = NULL;
		is_int(
		    conf_parse_sni_cert(bad[i].in, buf, sizeof(buf), &sc, &why),
		    CDN_EINVAL, "bad sni cert \"%s\"", bad[i].in);
		is_str(why, bad[i].why, "  why");
	}

	/* In a file: file:line:col of the value, every error at once. */
	is_int(load_text("tls.conf",
	           "listen_tls *:443\n"
	           "tls_sni_cert \"www.a.test a.pem a.key\"\n"
	           "tls_sni_cert \"*.test a b\"\n"
	           "tls_sni_cert   www.b.test\n",
	           &c, &cap),
	    CDN_EINVAL, "a file with bad tls_sni_cert lines");
	is_str(cap.buf,
	    "tls.conf:3:14: error: tls_sni_cert: a wildcard needs at least "
	    "two labels after \"*.\" (*.example.com)\n"
	    "tls.conf:4:16: error: tls_sni_cert: expected \"NAME CERTFILE "
	    "KEYFILE [OCSPFILE]\"\n",
	    "the errors");
	is_int((int)c->tls_sni_cert.n, 1, "the good line is kept");
	conf_unref(&c);

	/* Cross-checks. */
	c = conf_new_defaults();
	is_int(conf_set(c, "origin", "http://o", NULL), CDN_OK, "origin");
	is_int(conf_set(c, "listen_tls", "*:443", NULL), CDN_OK, "listen_tls");
	is_int(conf_set(c, "listen", "0.0.0.0:443", NULL), CDN_OK, "listen");
	is_int(conf_set(c, "tls_sni_cert", "A.test a b", NULL), CDN_OK, "sni");
	is_int(conf_set(c, "tls_sni_cert", "a.test. c d", NULL), CDN_OK, "dup");
	is_int(conf_set(c, "tls_ticket_rotate", "500ms", NULL), CDN_OK, "ms");
	is_int(conf_set(c, "origin_client_key", "k", NULL), CDN_OK, "key");
	is_int(conf_validate(c, cap_open(&cap)), CDN_EINVAL, "invalid");
	is_str(cap_text(&cap),
	    "edged: error: listen_tls: *:443 is also a listen address\n"
	    "edged: error: listen_tls: needs tls_cert, the certificate served "
	    "when SNI is absent or unknown\n"
	    "edged: error: tls_ticket_rotate: must be 0 (no tickets) or at "
	    "least 1s\n"
	    "edged: error: origin_client_key: set without origin_client_cert\n"
	    "edged: error: tls_sni_cert: a.test given twice\n",
	    "every TLS mistake");
	conf_unref(&c);

	c = conf_new_defaults();
	is_int(conf_set(c, "origin", "http://o", NULL), CDN_OK, "origin");
	is_int(conf_set(c, "listen_tls", "*:443", NULL), CDN_OK, "listen_tls");
	is_int(conf_set(c, "tls_cert", "c.pem", NULL), CDN_OK, "tls_cert");
	is_int(conf_validate(c, NULL), CDN_OK,
	    "listen_tls and tls_cert suffice (no plain listen)");
	is_int(conf_set(c, "cache_key_scheme", "2", cap_open(&cap)), CDN_EINVAL,
	    "cache_key_scheme is 0 or 1");
	cap_text(&cap);
	conf_unref(&c);
	free(cap.buf);
}

static void
test_help(void)
{
	struct capture cap = {0};
	const char *h;
	char want[128];
	int all = 1;

	conf_argv_print_help(cap_open(&cap), "edged");
	h = cap_text(&cap);
	ok(strncmp(h, "Usage: edged ", 13) == 0, "help starts with usage");
	ok(strstr(h, "  --cache-size SIZE") != NULL, "--cache-size SIZE");
	ok(strstr(h, "disk cache budget (the LMDB map size) (default 1G)\n") !=
	        NULL,
	    "doc and default");
	ok(strstr(h, "-l, --listen HOST:PORT") != NULL, "-l alias shown");
	ok(strstr(h, "-o, --origin URL") != NULL, "-o alias shown");
	ok(strstr(h, "  -p PORT ") != NULL, "-p shown");
	ok(strstr(h, "-c, --config FILE") != NULL, "-c shown");
	ok(strstr(h, "  -t ") != NULL, "-t shown");
	ok(strstr(h, "--dump-config") != NULL, "--dump-config shown");
	ok(strstr(h, "-h, --help") != NULL, "-h shown");
	ok(strstr(h, "-V, --version") != NULL, "-V shown");
	ok(strstr(h, "--client-header-timeout DURATION") != NULL,
	    "'_' is written '-'");
#define CONF_KEY(name, type, min, max, def, doc)                               \
	snprintf(want, sizeof(want), "--%s ", #name);                          \
	for (char *p = want; *p != '\0'; p++)                                  \
		*p = *p == '_' ? '-' : *p;                                     \
	if (strstr(h, want) == NULL || strstr(h, doc) == NULL) {               \
		all = 0;                                                       \
		printf("# help lacks %s\n", want);                             \
	}
#include "conf/conf_keys.h"
#undef CONF_KEY
	ok(all, "every directive has its flag and doc in --help");
	/* Aligned: the doc column is the same for two different lines. */
	{
		const char *a = strstr(h, "  --threads N"),
		           *b = strstr(h, "  --via STRING");
		const char *da = a ? strstr(a, "worker threads") : NULL,
		           *db = b ? strstr(b, "pseudonym") : NULL;

		ok(da != NULL && db != NULL && da - a == db - b,
		    "help columns are aligned");
	}
	free(cap.buf);
}

static void
test_dump(void)
{
	struct capture cap = {0};
	struct conf *c = conf_new_defaults(), *back;
	const char *d;

	conf_dump(cap_open(&cap), c);
	d = cap_text(&cap);
	ok(strstr(d, "\ncache_size 1G\n") != NULL, "1073741824 is 1G");
	ok(strstr(d, "\nmax_request_line 8K\n") != NULL, "8K");
	ok(strstr(d, "\norigin_first_byte_timeout 30s\n") != NULL, "30s");
	ok(strstr(d, "\nclient_header_timeout 10s\n") != NULL, "10s");
	ok(strstr(d, "\nlog_level info\n") != NULL, "log_level info");
	ok(strstr(d, "\nvia edged\n") != NULL, "a plain string is bare");
	ok(strstr(d, "\norigin_host \"\"\n") != NULL, "the empty string: \"\"");
	ok(strstr(d, "\nadmin_listen \"\"\n") != NULL, "an unset address");
	ok(strstr(d, "\n# listen: none\n") != NULL, "an empty list");
	ok(strstr(d, "\n# disk cache budget (the LMDB map size)\ncache_size") !=
	        NULL,
	    "the doc line comes first");

	/* Round trip: a dump loads back to the same conf. */
	back = conf_new_defaults();
	is_int(conf_load_buf(back, "dump", d, strlen(d), NULL), CDN_OK,
	    "a dump of the defaults loads");
	is_int(
	    conf_cmp(c, back, 0, "", NULL, NULL), 0, "and equals the defaults");
	conf_unref(&back);

	{
		static const char *const set[][2] = {
		    {"listen", "127.0.0.1:8080"},
		    {"listen", "[::1]:8080"},
		    {"listen", "*:81"},
		    {"origin", "https://origin.example:8443/base"},
		    {"origin_host", "www.example"},
		    {"threads", "8"},
		    {"admin_listen", "localhost:9000"},
		    {"cache_dir", "/var/cache/edge d#1"},
		    {"cache_size", "1536M"},
		    {"memory_size", "1536"},
		    {"log_level", "warn"},
		    {"error_log", ""},
		    {"access_log", "quote\"back\\slash{}"},
		    {"ready_file", "\""},
		    {"via", "1.1 edge"},
		    {"max_connections", "1"},
		    {"max_request_line", "1M"},
		    {"max_header_size", "4M"},
		    {"max_headers", "1000"},
		    {"max_body_size", "0"},
		    {"client_header_timeout", "1500ms"},
		    {"client_body_timeout", "90s"},
		    {"keepalive_timeout", "0"},
		    {"send_timeout", "1h"},
		    {"origin_connect_timeout", "10m"},
		    {"origin_first_byte_timeout", "61s"},
		    {"origin_idle_timeout", "100ms"},
		    {"drain_timeout", "60m"},
		};

		for (size_t i = 0; i < CDN_ARRAY_LEN(set); i++) {
			if (conf_set(c, set[i][0], set[i][1], NULL) != CDN_OK)
				printf("# cannot set %s\n", set[i][0]);
		}
	}
	conf_dump(cap_open(&cap), c);
	d = cap_text(&cap);
	ok(strstr(d, "\ncache_size 1536M\n") != NULL, "1536M stays 1536M");
	ok(strstr(d, "\nmemory_size 1536\n") != NULL, "1536 bytes: no unit");
	ok(strstr(d, "\nclient_header_timeout 1500ms\n") != NULL, "1500ms");
	ok(strstr(d, "\ndrain_timeout 1h\n") != NULL, "60m is 1h");
	ok(strstr(d, "\norigin_first_byte_timeout 61s\n") != NULL, "61s");
	ok(strstr(d, "\nkeepalive_timeout 0\n") != NULL, "zero: 0");
	ok(strstr(d, "\nmax_request_line 1M\n") != NULL, "1M");
	ok(strstr(d, "\ncache_dir \"/var/cache/edge d#1\"\n") != NULL,
	    "spaces and # are quoted");
	ok(strstr(d, "\naccess_log \"quote\\\"back\\\\slash{}\"\n") != NULL,
	    "quote and backslash are escaped");
	ok(strstr(d, "\nready_file \"\\\"\"\n") != NULL, "a lone quote");
	ok(strstr(d,
	       "\nlisten 127.0.0.1:8080\nlisten [::1]:8080\nlisten "
	       "*:81\n") != NULL,
	    "one line per list value, in order");
	back = conf_new_defaults();
	is_int(conf_load_buf(back, "dump", d, strlen(d), stdout), CDN_OK,
	    "a dump of a changed conf loads");
	is_int(conf_cmp(c, back, 1, "round trip", NULL, NULL), 0,
	    "every field survives the round trip");
	conf_unref(&back);
	conf_unref(&c);
	free(cap.buf);
}

/* A dump names the file it came from, in a comment that stays one line. */
static void
test_dump_config_name(void)
{
	struct capture cap = {0};
	struct conf *c = NULL, *back;
	enum conf_action act;
	const char *d;

	write_file("new\nline.conf", "listen *:80\norigin http://o\n",
	    strlen("listen *:80\norigin http://o\n"));
	is_int(run_argv(&c, &act, &cap, "-c", "new\nline.conf", "--dump-config",
	           NULL),
	    CDN_OK, "a file name with a newline");
	if (c == NULL) {
		free(cap.buf);
		return;
	}
	conf_dump(cap_open(&cap), c);
	d = cap_text(&cap);
	ok(strstr(d,
	       "# (defaults, then new?line.conf, then the command "
	       "line)\n") != NULL,
	    "the dump names the file, control characters masked");
	back = conf_new_defaults();
	is_int(conf_load_buf(back, "dump", d, strlen(d), stdout), CDN_OK,
	    "and still loads back");
	is_int(conf_cmp(c, back, 0, "", NULL, NULL), 0, "to the same values");
	conf_unref(&back);
	conf_unref(&c);
	free(cap.buf);
}

static void
test_refcount(void)
{
	struct conf *c = conf_new_defaults(), *r;

	r = conf_ref(c);
	ok(r == c, "conf_ref returns its argument");
	conf_unref(&r);
	ok(r == NULL, "conf_unref clears the holder");
	is_str(c->via, "edged", "one reference left: still alive");
	conf_unref(&c);
	ok(c == NULL, "the last unref frees");
	conf_unref(&c); /* a NULL holder is fine */
	ok(1, "unref of NULL is a no-op");
}

/* ---- site blocks ---- */

static void
test_sites(void)
{
	struct capture cap = {0};
	struct conf *c = NULL, *back;
	const struct conf_site *a, *b;
	struct conf_origin_server os;
	enum conf_action act;
	const char *why;
	char *dump = NULL;
	size_t dlen = 0;
	FILE *f;

	is_int(load_text("s.conf",
	           "cache_default_ttl 10s\n"
	           "cache_bypass /a\n"
	           "site Example.COM. *.example.com {\n"
	           "\torigin_server http://10.0.0.1:8080 weight=3 max_conns=9\n"
	           "\torigin_server \"http://10.0.0.2:8080 backup\"\n"
	           "\tcache_default_ttl 60s\n"
	           "\tcache_bypass /b\n"
	           "\tcache_bypass /c\n"
	           "\torigin_pass_fields Forwarded, X-Forwarded-Host\n"
	           "\torigin_pass_fields X-Rewrite-URL\n"
	           "}\n"
	           "site other.org { # a comment\n"
	           "}\n"
	           "origin http://top.example\n"
	           "cache_min_ttl 1s\n",
	           &c, &cap),
	    CDN_OK, "two site blocks load");
	is_str(cap.buf, "", "quietly");
	is_int(c->nsites, 2, "two sites");
	a = c->sites[0];
	b = c->sites[1];
	is_int(a->nnames, 2, "the first has two names");
	is_str(a->names[0], "example.com", "lower case, no trailing dot");
	is_str(a->names[1], "*.example.com", "a wildcard");
	is_int(a->line, 3, "the block's line");
	is_int(a->conf->cache_default_ttl, 60000, "the block's own value");
	is_int(b->conf->cache_default_ttl, 10000, "the other inherits the top");
	is_int(a->conf->cache_min_ttl, 1000,
	    "a top-level line after the blocks is inherited too");
	is_str(b->conf->origin, "http://top.example", "origin inherited");
	ok(a->conf->origin_pass_fields.n == 3 &&
	        strcmp(a->conf->origin_pass_fields.v[0], "Forwarded") == 0 &&
	        strcmp(a->conf->origin_pass_fields.v[1], "X-Forwarded-Host") ==
	            0 &&
	        strcmp(a->conf->origin_pass_fields.v[2], "X-Rewrite-URL") ==
	            0 &&
	        b->conf->origin_pass_fields.n == 0,
	    "origin_pass_fields: several names to a line, repeatable");
	ok(a->conf->cache_bypass.n == 2 &&
	        strcmp(a->conf->cache_bypass.v[0], "/b") == 0 &&
	        strcmp(a->conf->cache_bypass.v[1], "/c") == 0,
	    "a block's list replaces the inherited one");
	ok(b->conf->cache_bypass.n == 1 &&
	        strcmp(b->conf->cache_bypass.v[0], "/a") == 0,
	    "and the other keeps the top's");
	is_int(c->cache_default_ttl, 10000, "the top level is untouched");
	is_int(a->conf->origin_server.n, 2, "two servers");
	is_str(a->conf->origin_server.v[0],
	    "http://10.0.0.1:8080 weight=3 max_conns=9",
	    "the rest of the line is the value");
	ok(conf_parse_origin_server(a->conf->origin_server.v[0], &os, &why) ==
	            CDN_OK &&
	        os.weight == 3 && os.max_conns == 9 && !os.backup &&
	        strcmp(os.url, "http://10.0.0.1:8080") == 0,
	    "server options parsed");
	ok(conf_parse_origin_server(a->conf->origin_server.v[1], &os, &why) ==
	            CDN_OK &&
	        os.weight == 1 && os.backup,
	    "a quoted value works too; backup");
	is_int(conf_set(c, "listen", "127.0.0.1:1", NULL), CDN_OK, "listen");
	is_int(conf_validate(c, NULL), CDN_OK, "validates (with a top origin)");

	/* The dump writes the blocks back, and they load the same. */
	f = open_memstream(&dump, &dlen);
	conf_dump(f, c);
	fclose(f);
	ok(strstr(dump,
	       "\nsite example.com *.example.com {\n\tcache_default_"
	       "ttl 60s\n") == NULL &&
	        strstr(dump, "\nsite example.com *.example.com {\n") != NULL,
	    "the dump has the block");
	back = conf_new_defaults();
	is_int(conf_load_buf(back, "dump", dump, dlen, NULL), CDN_OK,
	    "the dump loads back");
	ok(back->nsites == 2 &&
	        back->sites[0]->conf->cache_default_ttl == 60000 &&
	        back->sites[0]->conf->origin_server.n == 2 &&
	        back->sites[1]->conf->cache_default_ttl == 10000,
	    "with the same sites");
	conf_unref(&back);
	free(dump);
	conf_unref(&c);
	free(cap.buf);
	memset(&cap, 0, sizeof(cap));

	is_int(load_text("o.conf",
	           "origin_server http://pool-a\n"
	           "site a.test {\n\torigin http://single\n}\n"
	           "site b.test {\n}\n",
	           &c, &cap),
	    CDN_OK, "a top-level pool");
	is_int(c->sites[0]->conf->origin_server.n, 0,
	    "a block's own origin replaces the inherited pool");
	is_int(c->sites[1]->conf->origin_server.n, 1,
	    "a block without one inherits the pool");
	conf_unref(&c);
	free(cap.buf);
	memset(&cap, 0, sizeof(cap));

	/* Flags change the top level, hence what sites inherit, not what a
	 * block sets itself. */
	write_file("sf.conf",
	    "listen 127.0.0.1:1\n"
	    "site a.test {\n\torigin http://a\n\tcache_default_ttl 1m\n}\n"
	    "site b.test {\n\torigin http://b\n}\n",
	    strlen("listen 127.0.0.1:1\n"
	           "site a.test {\n\torigin http://a\n\tcache_default_ttl 1m\n}"
	           "\n"
	           "site b.test {\n\torigin http://b\n}\n"));
	is_int(run_argv(&c, &act, &cap, "-c", "sf.conf", "--cache-default-ttl",
	           "5s", NULL),
	    CDN_OK, "sites without a top-level origin");
	is_str(cap.buf, "", "quietly");
	if (c != NULL) {
		is_int(c->sites[1]->conf->cache_default_ttl, 5000,
		    "a flag reaches a site that does not set the directive");
		is_int(c->sites[0]->conf->cache_default_ttl, 60000,
		    "but not one that does");
		conf_unref(&c);
	}
	free(cap.buf);
	memset(&cap, 0, sizeof(cap));
}

static void
test_site_errors(void)
{
	static const struct {
		const char *text, *err;
	} cases[] = {
	    {"site a.test {\n\tlisten 127.0.0.1:80\n}\n",
	        "e.conf:2:2: error: listen: cannot be set in a site block "
	        "(only at the top level)\n"},
	    {"site a.test {\n\tvia x\n}\n",
	        "e.conf:2:2: error: via: cannot be set in a site block (only "
	        "at the top level)\n"},
	    {"site a.test {\n\tcache_min_ttl 1s\n\tcache_min_ttl 2s\n}\n",
	        "e.conf:3:2: error: cache_min_ttl: set twice in this site "
	        "(first at line 2)\n"},
	    {"site a.test {\n\tcache_min_ttl 1x\n}\n",
	        "e.conf:2:16: error: cache_min_ttl: unknown unit (ms, s, m, h "
	        "or d)\n"},
	    {"site a.test {\n\torigin_drop_fields X-A X(B)\n}\n",
	        "e.conf:2:21: error: origin_drop_fields: not a token (a field "
	        "name or a method)\n"},
	    {"site a.test {\nsite b.test {\n}\n}\n",
	        "e.conf:2:1: error: site: sites cannot be nested (the block at "
	        "line 1 is not closed)\n"
	        "e.conf:4:1: error: unexpected '}' (a block starts with \"site "
	        "NAME... {\")\n"},
	    {"site {\n\tvia x\n}\n",
	        "e.conf:1:6: error: site: missing host name\n"
	        "e.conf:2:2: error: via: cannot be set in a site block (only "
	        "at the top level)\n"},
	    {"site a.test\n",
	        "e.conf:1:12: error: site: expected '{' at the "
	        "end of the line\n"},
	    {"site a.test{\n}\n",
	        "e.conf:1:12: error: site: a brace must stand "
	        "alone (put blanks around it)\n"
	        "e.conf:2:1: error: unexpected '}' (a block "
	        "starts with \"site NAME... {\")\n"},
	    {"site a.test:80 {\n}\n",
	        "e.conf:1:6: error: site: \"a.test:80\": a site name has no "
	        "port "
	        "(and IPv6 literals are not supported)\n"},
	    {"site *.test {\n}\n",
	        "e.conf:1:6: error: site: \"*.test\": a wildcard is \"*.\" and "
	        "a "
	        "domain of two labels or more (*.example.com)\n"},
	    {"site a.*.test {\n}\n",
	        "e.conf:1:6: error: site: \"a.*.test\": '*' is allowed only as "
	        "the first label\n"},
	    {"site a..test {\n}\n",
	        "e.conf:1:6: error: site: \"a..test\": "
	        "invalid host name (empty label)\n"},
	    {"site a.test {\n} x\n",
	        "e.conf:2:3: error: unexpected text after '}'\n"},
	    {"site a.test {\n\torigin_server http://a weight=0\n}\n",
	        "e.conf:2:16: error: origin_server: weight must be between 1 "
	        "and 256\n"},
	    {"origin_server http://a speed=9\n",
	        "e.conf:1:15: error: origin_server: unknown server option "
	        "(weight=N, max_conns=N or backup)\n"},
	    {"origin_server ftp://a\n",
	        "e.conf:1:15: error: origin_server: must start with http:// or "
	        "https://\n"},
	    {"site a.test {\n\tcache_min_ttl 1s\n",
	        "e.conf:1:1: error: site: block not closed (missing '}')\n"},
	};
	struct capture cap = {0};

	for (size_t i = 0; i < CDN_ARRAY_LEN(cases); i++) {
		is_int(load_text("e.conf", cases[i].text, NULL, &cap),
		    CDN_EINVAL, "site case %zu: rc", i);
		is_str(cap.buf, cases[i].err, "site case %zu: message", i);
		free(cap.buf);
		memset(&cap, 0, sizeof(cap));
	}
}

static void
test_site_validate(void)
{
	static const struct {
		const char *text, *err;
	} cases[] = {
	    {"listen 127.0.0.1:1\nsite a.test {\n}\n",
	        "v.conf:2:1: error: site: no origin: set origin or "
	        "origin_server in the block or at the top level\n"},
	    {"listen 127.0.0.1:1\norigin http://o\nsite a.test {\n}\n"
	     "site b.test A.test {\n}\n",
	        "v.conf:5:1: error: site: a.test is also named by the site at "
	        "v.conf:3\n"},
	    {"listen 127.0.0.1:1\norigin http://o\nsite a.test {\n"
	     "\torigin_balance random\n}\n",
	        "v.conf:3:1: error: origin_balance: \"random\": must be "
	        "round-robin, weighted, least-conn or consistent-hash\n"},
	    {"listen 127.0.0.1:1\norigin http://o\nsite a.test {\n"
	     "\thealth_check_path healthz\n}\n",
	        "v.conf:3:1: error: health_check_path: must start with '/'\n"},
	    {"listen 127.0.0.1:1\norigin http://o\nsite a.test {\n}\n"
	     "default_site b.test\n",
	        "v.conf:5:14: error: default_site: \"b.test\" is not a name of "
	        "any site block\n"},
	    {"listen 127.0.0.1:1\norigin http://o\ndefault_site b.test\n",
	        "v.conf:3:14: error: default_site: \"b.test\" is not a name of "
	        "any site block\n"
	        "v.conf:3:14: error: default_site: set without site blocks\n"},
	    {"listen 127.0.0.1:1\norigin_server http://o\n", NULL},
	    {"listen 127.0.0.1:1\nsite a.test {\n\torigin http://a\n}\n"
	     "default_site A.TEST\n",
	        NULL},
	};
	struct capture cap = {0};
	struct conf *c;

	for (size_t i = 0; i < CDN_ARRAY_LEN(cases); i++) {
		is_int(load_text("v.conf", cases[i].text, &c, &cap), CDN_OK,
		    "validate case %zu: loads", i);
		free(cap.buf);
		memset(&cap, 0, sizeof(cap));
		is_int(conf_validate(c, cap_open(&cap)),
		    cases[i].err != NULL ? CDN_EINVAL : CDN_OK,
		    "validate case %zu: rc", i);
		is_str(cap_text(&cap), cases[i].err != NULL ? cases[i].err : "",
		    "validate case %zu: message", i);
		free(cap.buf);
		memset(&cap, 0, sizeof(cap));
		conf_unref(&c);
	}
}

/*
 * What purged builds its conf with: the file, on a descriptor too, its
 * flags over it, the key checks; and the checked dump edged hands it.
 */
static void
test_purged_conf(void)
{
	static const char text[] =
	    "cache_dir /var/cache/edge\n"
	    "purge_allow 10.0.0.0/8\n"
	    "purge_allow 10.1.0.0/16\n"
	    "cache_query_drop a\n"
	    "site own.test {\n\tcache_query_drop b\n\tcache_query keep\n}\n"
	    "site inherits.test {\n}\n";
	const struct conf_flag flags[] = {
	    {"--allow", "purge_allow", "loopback"},
	    {"--cache-query", "cache_query", "sort"},
	    {"--cache-query-drop", "cache_query_drop", "x"},
	    {"--cache-query-drop", "cache_query_drop", "y"},
	    {"--cache-key-scheme", "cache_key_scheme", "1"},
	};
	const struct conf_flag bad[] = {
	    {"--cache-key-scheme", "cache_key_scheme", "2"},
	    {"--log-level", "log_level", "loud"},
	};
	struct capture cap = {0};
	struct conf *c = conf_new_defaults(), *back;
	char *d = NULL, big[CONF_MAX_LINE + 16];
	size_t dlen = 0;
	int pfd[2];

	/* A file on a pipe, as --config-fd reads it. */
	if (pipe(pfd) != 0 ||
	    write(pfd[1], text, strlen(text)) != (ssize_t)strlen(text)) {
		ok(0, "pipe: %s", strerror(errno));
		conf_unref(&c);
		return;
	}
	close(pfd[1]);
	is_int(conf_load_fd(c, pfd[0], "fd", cap_open(&cap)), CDN_OK,
	    "a config on a pipe loads");
	is_str(cap_text(&cap), "", "quietly");
	close(pfd[0]);
	is_int(c->nsites, 2, "with its sites");
	is_int(conf_apply_flags(
	           c, "purged", flags, CDN_ARRAY_LEN(flags), cap_open(&cap)),
	    CDN_OK, "flags apply");
	is_str(cap_text(&cap), "", "quietly");
	ok(c->purge_allow.n == 1 &&
	        strcmp(c->purge_allow.v[0], "loopback") == 0,
	    "a list flag replaces the file's list");
	ok(c->cache_query_drop.n == 2 &&
	        strcmp(c->cache_query_drop.v[1], "y") == 0,
	    "and a repeated one appends");
	is_str(c->cache_dir, "/var/cache/edge", "the file's other values stay");
	is_str(c->sites[1]->conf->cache_query, "sort",
	    "a site inherits the top level as the flags left it");
	ok(c->sites[1]->conf->cache_key_scheme == 1 &&
	        c->sites[1]->conf->cache_query_drop.n == 2,
	    "every inherited key value");
	ok(strcmp(c->sites[0]->conf->cache_query, "keep") == 0 &&
	        c->sites[0]->conf->cache_query_drop.n == 1 &&
	        strcmp(c->sites[0]->conf->cache_query_drop.v[0], "b") == 0,
	    "but not what a block sets itself");
	is_int(conf_validate_keys(c, "purged", cap_open(&cap)), CDN_OK,
	    "the key checks need no listen nor origin");
	is_str(cap_text(&cap), "", "quietly");

	/* edged's hand-over: the dump loads back to the same values. */
	is_int(conf_dump_buf(c, &d, &dlen, cap_open(&cap)), CDN_OK,
	    "the dump round-trips");
	is_str(cap_text(&cap), "", "quietly");
	back = conf_new_defaults();
	if (d != NULL &&
	    conf_load_buf(back, "dump", d, dlen, stdout) == CDN_OK) {
		is_int(conf_cmp(c, back, 0, "", NULL, NULL), 0,
		    "every top-level value survives");
		ok(back->nsites == 2 &&
		        strcmp(back->sites[0]->conf->cache_query, "keep") ==
		            0 &&
		        strcmp(back->sites[1]->conf->cache_query, "sort") ==
		            0 &&
		        back->sites[1]->conf->cache_key_scheme == 1,
		    "and every site's");
	} else {
		ok(0, "the dump loads");
	}
	conf_unref(&back);
	free(d);
	d = NULL;

	/* A flag value longer than a file line cannot go over as a file. */
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	is_int(conf_set(c, "cache_query_drop", big, NULL), CDN_OK,
	    "a long flag value");
	is_int(conf_dump_buf(c, &d, &dlen, cap_open(&cap)), CDN_EINVAL,
	    "a dump that does not load back is refused");
	ok(strstr(cap_text(&cap), "line too long") != NULL, "saying why: %s",
	    cap.buf);
	ok(d == NULL, "nothing returned");
	conf_unref(&c);

	c = conf_new_defaults();
	is_int(conf_apply_flags(
	           c, "purged", bad, CDN_ARRAY_LEN(bad), cap_open(&cap)),
	    CDN_EINVAL, "bad flag values");
	is_str(cap_text(&cap),
	    "purged: error: --cache-key-scheme: must be between 0 and 1\n"
	    "purged: error: --log-level: unknown level (err, warn, info or "
	    "debug)\n",
	    "every one named by its flag");
	conf_unref(&c);

	is_int(load_text("k.conf",
	           "cache_query_drop a\ncache_query_keep b\n"
	           "site a.test {\n\tcache_query nope\n}\n",
	           &c, &cap),
	    CDN_OK, "loads");
	is_int(conf_validate_keys(c, "purged", cap_open(&cap)), CDN_EINVAL,
	    "bad key rules");
	is_str(cap_text(&cap),
	    "k.conf:2:18: error: cache_query_keep: cannot be used with "
	    "cache_query_drop\n"
	    "k.conf:3:1: error: cache_query: \"nope\": must be keep, sort or "
	    "drop\n"
	    "k.conf:3:1: error: cache_query_keep: cannot be used with "
	    "cache_query_drop\n",
	    "at the top level and in a block (which inherits both lists)");
	conf_unref(&c);
	free(cap.buf);
}

static void
write_text(const char *name, const char *text)
{
	write_file(name, text, strlen(text));
}

/*
 * An error found once the whole conf is read points at the line
 * that set the value (a list: its element's line), a refused line hides
 * neither the value errors after it nor the cross checks, and a message
 * names only what is missing.
 */
static void
test_validate_places(void)
{
	struct capture cap = {0};
	struct conf *c = NULL;
	enum conf_action act;
	int rc;

	write_text("p.conf",
	    "listen 127.0.0.1:8080\n"
	    "origin http://127.0.0.1:9000\n"
	    "bogus \"unterminated\n"
	    "cache_default_ttl 5x\n"
	    "listen 127.0.0.1:8081\n"
	    "listen  127.0.0.1:8080\n"
	    "admin_allow 10.0.0.300\n"
	    "fleet_allow loopback\n"
	    "fleet_allow zz\n"
	    "purge_listen 127.0.0.1:8090\n"
	    "cache_dir /var/cache/edged\n");
	rc = run_argv(&c, &act, &cap, "-c", "p.conf", NULL);
	is_int(rc, CDN_EINVAL, "refused");
	is_str(cap.buf,
	    "p.conf:3:7: error: bogus: unterminated quoted value\n"
	    "p.conf:4:19: error: cache_default_ttl: unknown unit (ms, s, m, h "
	    "or d)\n"
	    "p.conf:6:9: error: listen: 127.0.0.1:8080 given twice\n"
	    "p.conf:7:13: error: admin_allow: \"10.0.0.300\": not an IPv4 or "
	    "IPv6 address (write ADDRESS[/PREFIX] or loopback)\n"
	    "p.conf:9:13: error: fleet_allow: \"zz\": not an IPv4 or IPv6 "
	    "address (write ADDRESS[/PREFIX] or loopback)\n"
	    "p.conf:10:14: error: purge_listen: needs purge_token_file (the "
	    "tokens a purge must carry)\n",
	    "every error, each at its line and column");

	/* A refused origin line is not also "no origin". */
	write_text("q.conf", "listen 127.0.0.1:1\norigin ftp://x\n");
	rc = run_argv(&c, &act, &cap, "-c", "q.conf", NULL);
	is_int(rc, CDN_EINVAL, "refused");
	ok(cap.buf != NULL &&
	        strstr(cap.buf, "q.conf:2:8: error: origin: ") == cap.buf &&
	        strstr(cap.buf, "no origin") == NULL,
	    "the refused line only: %s", cap.buf != NULL ? cap.buf : "");

	/* A flag's value has no line: the flag's name says where. */
	rc = run_argv(&c, &act, &cap, "--origin", "http://127.0.0.1:1",
	    "--listen", "127.0.0.1:2", "--listen", "127.0.0.1:2", NULL);
	is_str(cap.buf, "edged: error: listen: 127.0.0.1:2 given twice\n",
	    "a flag's value is placed by name");

	write_text("r.conf",
	    "listen 127.0.0.1:1\norigin http://127.0.0.1:2\n"
	    "purge_listen 127.0.0.1:3\npurge_token_file /etc/edged/t\n");
	rc = run_argv(&c, &act, &cap, "-c", "r.conf", NULL);
	is_str(cap.buf,
	    "r.conf:3:14: error: purge_listen: needs cache_dir (the store "
	    "purges apply to)\n",
	    "only what is missing is named");
	free(cap.buf);
	conf_unref(&c);
}

/* The example config in the source tree loads and documents the defaults. */
static void
test_example(const char *path)
{
	struct capture cap = {0};
	struct conf *c, *def;

	ok(path != NULL, "conf/edged.conf found (via TESTS_SRCDIR or the cwd)");
	if (path == NULL)
		return;
	c = conf_new_defaults();
	is_int(conf_load_file(c, path, cap_open(&cap)), CDN_OK,
	    "conf/edged.conf loads");
	is_str(cap_text(&cap), "", "with no errors");
	is_int(conf_validate(c, stdout), CDN_OK, "and validates");
	def = conf_new_defaults();
	/* Set so that the file runs a node as it is (its header says so). */
	ok(conf_set(def, "admin_listen", "127.0.0.1:8081", stdout) == CDN_OK &&
	        conf_set(def, "cache_dir", "/var/cache/edged", stdout) ==
	            CDN_OK,
	    "the example's own values are valid");
	if (!ok(conf_cmp(c, def, 0, "", "listen", "origin") == 0,
	        "every other value in edged.conf is the default"))
		conf_cmp(
		    c, def, 1, "edged.conf vs default", "listen", "origin");
	conf_unref(&def);
	conf_unref(&c);
	free(cap.buf);
}

static char *
find_example(void)
{
	char p[PATH_MAX], *r;
	const char *srcdir = getenv("TESTS_SRCDIR");

	if (srcdir != NULL && *srcdir != '\0') {
		snprintf(p, sizeof(p), "%s/../conf/edged.conf", srcdir);
		if ((r = realpath(p, NULL)) != NULL)
			return r;
	}
	/* Run by hand: from the top of the tree, tests/ or tests/unit/. */
	if ((r = realpath("../conf/edged.conf", NULL)) != NULL)
		return r;
	if ((r = realpath("conf/edged.conf", NULL)) != NULL)
		return r;
	return realpath("../../conf/edged.conf", NULL);
}

/* Which directives a reload may not change, and that it names them. */
static void
test_restart_changed(void)
{
	struct conf *a = conf_new_defaults(), *b = conf_new_defaults();
	const char *names[4];

	is_int(conf_key_is_restart("listen"), 1, "listen needs a restart");
	is_int(conf_key_is_restart("cache_dir"), 1, "cache_dir too");
	is_int(conf_key_is_restart("origin"), 0, "origin is reloaded");
	is_int(conf_key_is_restart("cache_default_ttl"), 0, "a TTL too");
	is_int(conf_key_is_restart("via"), 0, "via too");
	is_int(conf_key_is_restart("no_such"), -1, "unknown");
	is_int((int)conf_restart_changed(a, b, names, 4), 0, "equal: none");
	is_int(conf_set(b, "origin", "http://127.0.0.1:9", NULL), CDN_OK, "o");
	is_int(conf_set(b, "cache_default_ttl", "1m", NULL), CDN_OK, "ttl");
	is_int((int)conf_restart_changed(a, b, names, 4), 0,
	    "reloadable changes are not named");
	is_int(conf_set(b, "listen", "127.0.0.1:1", NULL), CDN_OK, "listen");
	is_int(conf_set(b, "threads", "3", NULL), CDN_OK, "threads");
	is_int(conf_set(b, "memory_size", "1M", NULL), CDN_OK, "memory");
	is_int(conf_set(b, "node_name", "n2", NULL), CDN_OK, "node_name");
	is_int(conf_set(b, "log_level", "debug", NULL), CDN_OK, "log_level");
	is_int((int)conf_restart_changed(a, b, names, 2), 4,
	    "four restart-only changes (a list, a number, a size, a string)");
	ok(strcmp(names[0], "listen") == 0 && strcmp(names[1], "threads") == 0,
	    "named in table order, up to the room given: %s %s", names[0],
	    names[1]);
	conf_unref(&a);
	conf_unref(&b);
}

int
main(void)
{
	char *example;

	plan_no_plan();
	example = find_example();
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/t_conf.XXXXXX");
	if (mkdtemp(tmpdir) == NULL || chdir(tmpdir) != 0) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}

	test_sizes();
	test_durations();
	test_set();
	test_hostport();
	test_url();
	test_file_ok();
	test_file_errors();
	test_argv();
	test_validate();
	test_node_name();
	test_tls();
	test_help();
	test_dump();
	test_dump_config_name();
	test_refcount();
	test_sites();
	test_site_errors();
	test_site_validate();
	test_validate_places();
	test_purged_conf();
	test_restart_changed();
	test_example(example);

	free(example);
	for (int i = 0; i < nmade; i++) {
		unlink(made[i]);
		free(made[i]);
	}
	if (chdir("/") != 0 || rmdir(tmpdir) != 0)
		printf("# cannot remove %s\n", tmpdir);
	return done_testing();
}
