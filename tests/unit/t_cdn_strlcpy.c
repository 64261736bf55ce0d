/*
 * Unit tests of cdn_strlcpy (common/cdn_util.c): a string that fits is
 * copied whole, a longer one is cut to the buffer and still terminated,
 * and the length returned is what was copied, so that appends can chain.
 */
#include "config.h"

#include "common/cdn.h"
#include "tests/unit/tap.h"

int
main(void)
{
	char b[8];
	size_t n;

	plan_no_plan();
	memset(b, 'x', sizeof(b));
	is_int(cdn_strlcpy(b, "fwd", sizeof(b)), 3, "fits: its length");
	is_str(b, "fwd", "fits: copied whole");
	is_int(cdn_strlcpy(b, "", sizeof(b)), 0, "empty: length 0");
	is_str(b, "", "empty: terminated");
	is_int(cdn_strlcpy(b, "1234567", sizeof(b)), 7, "exactly full");
	is_str(b, "1234567", "exactly full: whole");
	memset(b, 'x', sizeof(b));
	is_int(cdn_strlcpy(b, "fwd=uri-miss", sizeof(b)), 7, "cut: cap - 1");
	is_str(b, "fwd=uri", "cut: the start, terminated");
	is_int(cdn_strlcpy(b, "abc", 1), 0, "cap 1: nothing copied");
	is_str(b, "", "cap 1: terminated");
	n = cdn_strlcpy(b, "hit", sizeof(b));
	n += cdn_strlcpy(b + n, "; collapsed", sizeof(b) - n);
	is_int(n, 7, "chained appends stop at the end");
	is_str(b, "hit; co", "chained appends: cut and terminated");
	return done_testing();
}
