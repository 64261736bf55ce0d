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

int
main(void)
{
	plan_no_plan();
	test_printf_any_length();
	test_bounds();
	return done_testing();
}
