#!/bin/sh
# Run one test under a time limit, so a test that hangs fails under its
# own name instead of holding the whole run:
#   tests/bounded.sh COMMAND [ARG...]
# TEST_TIME_LIMIT is the limit in seconds (default 600; the slowest test
# file takes under 40 s in a normal build, a few times that under the
# sanitizers).  timeout(1) puts the test in its own process group and
# signals the whole group, so the edged, origin and redis processes a
# test started go with it.  The test's output goes through a file, not
# the pipe the TAP driver reads: a process that left the group and kept
# its standard output open would otherwise hold the driver until it ends.
limit=${TEST_TIME_LIMIT:-600}
out=$(mktemp) || exit 99
timeout -k 10 "$limit" "$@" >"$out"
status=$?
cat "$out"
rm -f "$out"
if [ $status -eq 124 ]; then
	echo "Bail out! $* did not finish within $limit s (TEST_TIME_LIMIT)"
	exit 99
fi
exit $status
