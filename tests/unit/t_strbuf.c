/*
 * Unit tests for common/cdn_strbuf.c: bounded growth, the failed flag, and
 * formatted pieces of any length (once capped at 511 bytes).
 */
#include "config.h"

#include <string.h>

#include "common/cdn_strbuf.h"
#include "tests/unit/tap.h"

static void
test_printf_any_length(void)
{
	struct cdn_strbuf b = {0};
	char big[3000];

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cdn_sb_str(&b, "X-A: ");
	cdn_sb_printf(&b, "%s\r\n", big);
	ok(!b.failed, "a 3 KiB formatted piece fits");
	is_int(b.len, 5 + 2999 + 2, "its length");
	ok(b.p[b.len] == '\0' && memcmp(b.p + 5, big, 2999) == 0,
	    "its bytes, terminated");
	cdn_sb_printf(&b, "%d-%s", 42, "x");
	ok(b.len == 3006 + 4 && memcmp(b.p + 3006, "42-x", 5) == 0,
	    "a short piece after it");
	cdn_sb_free(&b);

	cdn_sb_printf(&b, "%s", "");
	ok(!b.failed && b.len == 0, "an empty piece on an empty buffer");
	cdn_sb_free(&b);
}

static void
test_bounds(void)
{
	struct cdn_strbuf b = {.max = 16};

	cdn_sb_printf(&b, "%s", "0123456789");
	ok(!b.failed && b.len == 10, "within max");
	cdn_sb_printf(&b, "%s", "0123456789");
	ok(b.failed, "past max: failed");
	is_int(b.len, 10, "nothing of the failed piece kept");
	ok(b.p[10] == '\0', "still terminated");
	cdn_sb_add(&b, "z", 1);
	is_int(b.len, 10, "later calls do nothing");
	cdn_sb_free(&b);
}

/* On the caller's buffer until it outgrows it; then on the heap with
 * what it held, and the caller's buffer untouched. */
static void
test_init_buf(void)
{
	struct cdn_strbuf b;
	char buf[8];

	cdn_sb_init_buf(&b, buf, sizeof(buf), 64);
	ok(b.len == 0 && b.p == buf && buf[0] == '\0', "starts empty on buf");
	cdn_sb_add(&b, "abc", 3);
	cdn_sb_printf(&b, "%d", 1234);
	ok(b.p == buf && strcmp(buf, "abc1234") == 0, "fits: no malloc");
	cdn_sb_add(&b, "xyz", 3);
	ok(!b.failed && b.p != buf && strcmp(b.p, "abc1234xyz") == 0,
	    "outgrown: moved to the heap whole");
	ok(strcmp(buf, "abc1234") == 0, "the caller's buffer left as it was");
	cdn_sb_free(&b); /* frees the heap copy only */
	ok(b.p == NULL && b.len == 0, "freed");

	cdn_sb_init_buf(&b, buf, sizeof(buf), 10);
	cdn_sb_printf(&b, "%s", "0123456789a");
	ok(b.failed && b.len == 0 && b.p == buf, "max still holds");
	cdn_sb_free(&b); /* leaves buf alone */
	cdn_sb_init_buf(&b, buf, sizeof(buf), 64);
	cdn_sb_add(&b, "ok", 2);
	ok(strcmp(b.p, "ok") == 0, "reusable after free");
	cdn_sb_free(&b);
}

/* cdn_fmt_i64 against printf, at the edges of its range. */
static void
test_fmt_i64(void)
{
	static const int64_t v[] = {0, 1, -1, 9, 10, 99, 100, 200, 404, 1024,
	    -1024, 1234567890123LL, INT64_MAX, INT64_MIN, INT64_MIN + 1};
	struct cdn_strbuf b = {0};
	char got[CDN_FMT_I64_MAX], want[32];
	size_t n;

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		snprintf(want, sizeof(want), "%lld", (long long)v[i]);
		memset(got, 'x', sizeof(got));
		n = cdn_fmt_i64(got, v[i]);
		ok(n == strlen(want) && strcmp(got, want) == 0,
		    "cdn_fmt_i64(%s)", want);
	}
	/* Each side of every change in the number of digits, both signs. */
	for (int64_t p = 10, bad = 0;; p *= 10) {
		for (int64_t d = -1; d <= 1; d++)
			for (int64_t sign = -1; sign <= 1; sign += 2) {
				int64_t x = sign * (p + d);

				snprintf(
				    want, sizeof(want), "%lld", (long long)x);
				n = cdn_fmt_i64(got, x);
				bad +=
				    n != strlen(want) || strcmp(got, want) != 0;
			}
		if (p > INT64_MAX / 10) {
			ok(bad == 0, "cdn_fmt_i64 at every power of ten");
			break;
		}
	}
	cdn_sb_add(&b, "Age: ", 5);
	cdn_sb_add_i64(&b, 86400);
	ok(!b.failed && strcmp(b.p, "Age: 86400") == 0, "cdn_sb_add_i64");
	cdn_sb_free(&b);
}

int
main(void)
{
	plan_no_plan();
	test_printf_any_length();
	test_bounds();
	test_init_buf();
	test_fmt_i64();
	return done_testing();
}
