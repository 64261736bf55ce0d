/*
 * Unit tests of common/cdn_log.c: level names, the timestamp format, the
 * diagnostic log, and the access log (two writer threads' lines arrive
 * whole and exactly once; reopen after a rename moves new lines to the new
 * file; a NULL access log makes every call a no-op).
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cdn_log.h"
#include "tests/unit/tap.h"

#define NTHREADS 2
#define NLINES   10000

static char tmpdir[64];

static void
path_in(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", tmpdir, name);
}

/* The whole file, NUL-terminated (NULL if it cannot be read). */
static char *
slurp(const char *path, size_t *lenp)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (f == NULL)
		return NULL;
	for (;;) {
		if (cap - len < 65536) {
			cap = cap * 2 + 65536;
			buf = realloc(buf, cap + 1);
			if (buf == NULL)
				abort();
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	fclose(f);
	buf[len] = '\0';
	if (lenp != NULL)
		*lenp = len;
	return buf;
}

static void
test_levels(void)
{
	static const struct {
		const char *name;
		enum cdn_log_level level;
	} levels[] = {
	    {"err", CDN_LOG_ERR},
	    {"warn", CDN_LOG_WARN},
	    {"info", CDN_LOG_INFO},
	    {"debug", CDN_LOG_DEBUG},
	};
	static const char *const bad[] = {
	    "", "ERR", "Info", "warning", "error", "debug ", "inf", "trace"};
	enum cdn_log_level l;

	for (size_t i = 0; i < CDN_ARRAY_LEN(levels); i++) {
		l = (enum cdn_log_level)99;
		is_int(cdn_log_level_parse(levels[i].name, &l), CDN_OK,
		    "level \"%s\" parses", levels[i].name);
		is_int(
		    l, levels[i].level, "level \"%s\" value", levels[i].name);
		is_str(cdn_log_level_name(levels[i].level), levels[i].name,
		    "name of level %d", (int)levels[i].level);
	}
	for (size_t i = 0; i < CDN_ARRAY_LEN(bad); i++) {
		l = (enum cdn_log_level)99;
		is_int(cdn_log_level_parse(bad[i], &l), CDN_EINVAL,
		    "level \"%s\" is refused", bad[i]);
		is_int(l, 99, "level \"%s\": out untouched", bad[i]);
	}
	ok(CDN_LOG_ERR < CDN_LOG_WARN && CDN_LOG_WARN < CDN_LOG_INFO &&
	        CDN_LOG_INFO < CDN_LOG_DEBUG,
	    "levels are ordered by verbosity");
}

/* "2026-11-26T23:20:03.123Z": digits where digits go, and the rest. */
static int
is_timestamp(const char *s, size_t len)
{
	static const char pat[] = "dddd-dd-ddTdd:dd:dd.dddZ";

	if (len != sizeof(pat) - 1)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (pat[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9')
		                  : s[i] != pat[i])
			return 0;
	}
	return 1;
}

static void
test_timestamp(void)
{
	char buf[32], want[32];
	struct tm tm;
	time_t before, after;
	int mon, day, hh, mm, ss;

	memset(buf, 'x', sizeof(buf));
	before = time(NULL);
	cdn_log_timestamp(buf, sizeof(buf));
	after = time(NULL);
	ok(memchr(buf, '\0', sizeof(buf)) != NULL, "timestamp is terminated");
	is_int(strlen(buf), 24, "timestamp is 24 characters");
	ok(is_timestamp(buf, strlen(buf)),
	    "timestamp has the form YYYY-MM-DDTHH:MM:SS.mmmZ (%s)", buf);
	ok(sscanf(buf + 5, "%2d-%2d", &mon, &day) == 2 && mon >= 1 &&
	        mon <= 12 && day >= 1 && day <= 31,
	    "month and day are in range");
	ok(sscanf(buf + 11, "%2d:%2d:%2d", &hh, &mm, &ss) == 3 && hh < 24 &&
	        mm < 60 && ss < 61,
	    "time of day is in range");
	/* It is now, in UTC: the seconds match time() at one of the ends. */
	gmtime_r(&before, &tm);
	strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%S", &tm);
	if (strncmp(buf, want, 19) != 0) {
		gmtime_r(&after, &tm);
		strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%S", &tm);
	}
	ok(strncmp(buf, want, 19) == 0, "timestamp is the current UTC time");
}

static void
test_diag_log(void)
{
	char path[128], *text, *nl;
	int saved = cdn_log_level_now;

	path_in(path, sizeof(path), "diag.log");
	is_int(cdn_log_open(path), CDN_OK, "cdn_log_open a file");
	cdn_log_level_now = CDN_LOG_INFO;
	CDN_LOG(CDN_LOG_ERR, "test", "hello %d", 42);
	CDN_LOG(CDN_LOG_DEBUG, "test", "filtered %d", 1);
	CDN_LOG(CDN_LOG_INFO, "sub", "second");
	cdn_log_close();
	cdn_log_level_now = saved;
	text = slurp(path, NULL);
	ok(text != NULL, "the diagnostic log was written");
	if (text == NULL)
		return;
	is_int(strlen(text) > 0 ? (int)(strchr(text, '\n') != NULL) : 0, 1,
	    "it has a line");
	nl = strchr(text, '\n');
	ok(nl != NULL && is_timestamp(text, 24) &&
	        strncmp(text + 24, " err test: hello 42\n", 20) == 0,
	    "line 1: TIMESTAMP err test: hello 42");
	ok(nl != NULL && is_timestamp(nl + 1, 24) &&
	        strcmp(nl + 25, " info sub: second\n") == 0,
	    "line 2: the debug line was filtered out, info kept");
	free(text);
	unlink(path);
}

struct writer {
	struct cdn_alog *al;
	int id;
};

/* The one line a writer produces for n: its id, n, and n-dependent padding. */
static int
make_line(char *buf, size_t len, int id, int n)
{
	return snprintf(buf, len, "w%d %05d %.*s|", id, n, n % 97,
	    "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz"
	    "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz");
}

static void *
writer_main(void *arg)
{
	struct writer *w = arg;
	struct cdn_alog_buf *b = cdn_alog_buf_new(w->al);
	char line[256];

	for (int n = 0; n < NLINES; n++) {
		make_line(line, sizeof(line), w->id, n);
		cdn_alog_printf(b, "%s", line);
		if (n % 1500 == 0)
			cdn_alog_buf_flush(b); /* as a worker's timer would */
	}
	cdn_alog_buf_free(&b);
	return NULL;
}

static void
test_alog_threads(void)
{
	struct writer w[NTHREADS];
	pthread_t th[NTHREADS];
	struct cdn_alog *al;
	char path[128], want[256], *text, *p, *nl;
	unsigned char *seen;
	int next[NTHREADS] = {0}, id, n, bad = 0, dup = 0, order = 0;
	unsigned lines = 0;

	path_in(path, sizeof(path), "access.log");
	al = cdn_alog_new(path);
	ok(al != NULL, "cdn_alog_new on a temp file");
	if (al == NULL)
		return;
	for (int i = 0; i < NTHREADS; i++) {
		w[i].al = al;
		w[i].id = i;
		if (pthread_create(&th[i], NULL, writer_main, &w[i]) != 0) {
			printf("Bail out! pthread_create\n");
			exit(1);
		}
	}
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	cdn_alog_free(&al);
	ok(al == NULL, "cdn_alog_free clears the holder");

	text = slurp(path, NULL);
	ok(text != NULL, "the access log can be read back");
	if (text == NULL)
		return;
	seen = calloc(NTHREADS * NLINES, 1);
	for (p = text; *p != '\0'; p = nl + 1) {
		nl = strchr(p, '\n');
		if (nl == NULL) {
			bad++; /* a last line without its newline */
			break;
		}
		lines++;
		if (sscanf(p, "w%d %d", &id, &n) != 2 || id < 0 ||
		    id >= NTHREADS || n < 0 || n >= NLINES) {
			bad++;
			continue;
		}
		make_line(want, sizeof(want), id, n);
		if ((size_t)(nl - p) != strlen(want) ||
		    memcmp(p, want, strlen(want)) != 0) {
			bad++; /* torn or interleaved */
			continue;
		}
		if (seen[id * NLINES + n]++)
			dup++;
		if (n != next[id])
			order++;
		next[id] = n + 1;
	}
	is_int(lines, NTHREADS * NLINES, "%d lines in the file",
	    NTHREADS * NLINES);
	is_int(bad, 0, "every line is intact (no interleaving within a line)");
	is_int(dup, 0, "no line appears twice");
	n = 0;
	for (int i = 0; i < NTHREADS * NLINES; i++)
		n += seen[i] == 0;
	is_int(n, 0, "no line is missing");
	is_int(order, 0, "each writer's lines are in the order it wrote them");
	free(seen);
	free(text);
	unlink(path);
}

static int
wait_exists(const char *path)
{
	struct stat st;

	for (int i = 0; i < 500; i++) { /* 5 s */
		if (stat(path, &st) == 0)
			return 1;
		usleep(10000);
	}
	return 0;
}

static void
test_alog_reopen(void)
{
	char path[128], old[128], *a, *b;
	struct cdn_alog *al;
	struct cdn_alog_buf *buf;
	int misplaced = 0;

	path_in(path, sizeof(path), "rot.log");
	path_in(old, sizeof(old), "rot.log.1");
	al = cdn_alog_new(path);
	buf = cdn_alog_buf_new(al);
	ok(al != NULL && buf != NULL, "access log and buffer");
	if (al == NULL)
		return;
	cdn_alog_printf(buf, "before %d", 1);
	cdn_alog_printf(buf, "before %d", 2);
	cdn_alog_buf_flush(buf);
	ok(rename(path, old) == 0, "rotate: rename the file away");
	cdn_alog_reopen(al);
	/* The writer thread reopens asynchronously: the new file appears. */
	ok(wait_exists(path), "cdn_alog_reopen creates the file again");
	cdn_alog_printf(buf, "after %d", 1);
	cdn_alog_printf(buf, "after %d", 2);
	cdn_alog_buf_free(&buf);
	cdn_alog_free(&al);

	a = slurp(old, NULL);
	b = slurp(path, NULL);
	is_str(a, "before 1\nbefore 2\n", "old lines stay in the old file");
	is_str(b, "after 1\nafter 2\n", "new lines land in the new file");
	free(a);
	free(b);
	unlink(path);
	unlink(old);

	/*
	 * Without waiting: lines handed over before cdn_alog_reopen() go to
	 * the old file and lines handed over after it to the new one, however
	 * late the writer thread wakes up.  Repeated to catch the race.
	 */
	for (int i = 0; i < 200; i++) {
		al = cdn_alog_new(path);
		buf = cdn_alog_buf_new(al);
		if (al == NULL)
			break;
		cdn_alog_printf(buf, "before");
		cdn_alog_buf_flush(buf);
		if (rename(path, old) != 0)
			break;
		cdn_alog_reopen(al);
		cdn_alog_printf(buf, "after");
		cdn_alog_buf_free(&buf);
		cdn_alog_free(&al);
		a = slurp(old, NULL);
		b = slurp(path, NULL);
		if (a == NULL || b == NULL || strcmp(a, "before\n") != 0 ||
		    strcmp(b, "after\n") != 0)
			if (misplaced++ == 0)
				printf("# old file %s, new file %s\n",
				    a != NULL && strcmp(a, "before\n") == 0
				        ? "right"
				        : "wrong",
				    b != NULL && strcmp(b, "after\n") == 0
				        ? "right"
				        : "wrong");
		free(a);
		free(b);
		unlink(path);
		unlink(old);
	}
	is_int(misplaced, 0,
	    "a reopen splits the lines by when they were handed over");
}

static void
test_alog_null(void)
{
	struct cdn_alog *al;
	struct cdn_alog_buf *b;
	char path[128];
	int saved;

	ok(cdn_alog_new(NULL) == NULL, "cdn_alog_new(NULL): no access log");
	ok(cdn_alog_new("") == NULL, "cdn_alog_new(\"\"): no access log");
	path_in(path, sizeof(path), "no/such/dir/access.log");
	saved = cdn_log_level_now;
	cdn_log_level_now = -1; /* the expected error need not be printed */
	ok(cdn_alog_new(path) == NULL, "an unopenable file: NULL");
	cdn_log_level_now = saved;
	al = NULL;
	b = cdn_alog_buf_new(al);
	ok(b == NULL, "a buffer of no access log is NULL");
	cdn_alog_printf(b, "ignored %d", 1);
	cdn_alog_buf_flush(b);
	cdn_alog_reopen(al);
	cdn_alog_buf_free(&b);
	cdn_alog_free(&al);
	ok(b == NULL && al == NULL, "every call on NULL is a no-op");
}

static void
test_alog_long_line(void)
{
	char path[128], *big, *text, *nl;
	struct cdn_alog *al;
	struct cdn_alog_buf *b;
	size_t len;

	path_in(path, sizeof(path), "long.log");
	al = cdn_alog_new(path);
	b = cdn_alog_buf_new(al);
	big = malloc(100001);
	memset(big, 'L', 100000);
	big[100000] = '\0';
	cdn_alog_printf(b, "short %d", 1);
	cdn_alog_printf(b, "%s", big);
	cdn_alog_printf(b, "short %d", 2);
	cdn_alog_buf_free(&b);
	cdn_alog_free(&al);
	text = slurp(path, &len);
	ok(text != NULL && strncmp(text, "short 1\nLLLL", 12) == 0,
	    "a line longer than the buffer follows the one before");
	nl = text != NULL ? strchr(text + 8, '\n') : NULL;
	ok(nl != NULL && nl - (text + 8) > 32768 && nl - (text + 8) < 100000,
	    "it is truncated, not split");
	ok(nl != NULL && strspn(text + 8, "L") == (size_t)(nl - (text + 8)),
	    "and is all its own bytes");
	is_str(
	    nl != NULL ? nl + 1 : NULL, "short 2\n", "the next line is intact");
	free(big);
	free(text);
	unlink(path);
}

int
main(void)
{
	plan_no_plan();
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/t_log.XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	test_levels();
	test_timestamp();
	test_diag_log();
	test_alog_threads();
	test_alog_reopen();
	test_alog_null();
	test_alog_long_line();
	if (rmdir(tmpdir) != 0)
		printf("# cannot remove %s: %s\n", tmpdir, strerror(errno));
	return done_testing();
}
