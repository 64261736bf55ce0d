#!/bin/sh
# Every test: unit tests, varnishtest stories and Python stories against the
# real edged, built twice: with ASan/UBSan and the --enable-debug checks,
# then a normal -Werror build (left in place).  Installs what it needs.  Last line: "N passed, M failed".
set -u
cd "$(dirname "$0")/.."
tools/deps.sh --test || exit 1
[ -x configure ] || ./autogen.sh || exit 1

total_pass=0
total_fail=0
jobs=$(nproc)

# count_results: add the :test-result: lines of every .trs file.
count_results() {
	p=$(find tests -name '*.trs' -exec grep -h '^:test-result: PASS' {} + | wc -l)
	f=$(find tests -name '*.trs' -exec grep -h -E '^:test-result: (FAIL|ERROR|XPASS)' {} + | wc -l)
	total_pass=$((total_pass + p))
	total_fail=$((total_fail + f))
	echo "$1: $p passed, $f failed"
}

run_build() {
	name=$1
	shift
	echo "=== $name build: ./configure $*"
	[ -f Makefile ] && make -s distclean >/dev/null 2>&1
	if ! ./configure -q "$@" || ! make -s -j"$jobs"; then
		echo "$name: build failed"
		total_fail=$((total_fail + 1))
		return
	fi
	make -s -j"$jobs" check >"check-$name.log" 2>&1
	status=$?
	grep -E '^(FAIL|ERROR|XPASS|# )' "check-$name.log" || true
	if [ $status -ne 0 ]; then
		for f in $(grep -l -E '^:test-result: (FAIL|ERROR)' $(find tests -name '*.trs')); do
			echo "--- ${f%.trs}.log (tail)"
			tail -40 "${f%.trs}.log"
		done
	fi
	count_results "$name"
	# A failure outside the test list (e.g. the layering check) counts too.
	if [ $status -ne 0 ] && ! grep -q -E '^(FAIL|ERROR)' "check-$name.log"; then
		tail -20 "check-$name.log"
		total_fail=$((total_fail + 1))
	fi
}

# A short run of every fuzz target, where clang has libFuzzer, from its
# committed corpus (tests/fuzz/corpus/<target>, only read), stopping at
# the first UBSan report as at a crash (but tests/fuzz/ubsan.supp's).
# An input that runs 30 s is a hang, reported as a crash is.
run_fuzz() {
	echo "=== fuzz smoke: CC=clang ./configure --enable-fuzz"
	[ -f Makefile ] && make -s distclean >/dev/null 2>&1
	if ! command -v clang >/dev/null ||
	    ! CC=clang ./configure -q --enable-fuzz >/dev/null 2>&1; then
		echo "fuzz: skipped (no clang with libFuzzer)"
		return
	fi
	for src in tests/fuzz/fuzz_*.c; do
		t=${src%.c}
		corpus=tests/fuzz/corpus/${t##*/}
		[ -d "$corpus" ] || corpus=
		work=$(mktemp -d)
		if make -s -j"$jobs" "$t" >/dev/null 2>&1 &&
		    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:suppressions=tests/fuzz/ubsan.supp \
		    "./$t" -max_total_time="${FUZZ_SECONDS:-20}" -timeout=30 \
			-rss_limit_mb=2048 "$work" $corpus >"$t.log" 2>&1; then
			echo "PASS: $t ($(grep -o 'Done [0-9]* runs' "$t.log"))"
			total_pass=$((total_pass + 1))
		else
			echo "FAIL: $t"
			tail -30 "$t.log"
			total_fail=$((total_fail + 1))
		fi
		rm -rf "$work"
	done
}

# A short soak on the sanitizer build, before the next build replaces it.
run_soak() {
	echo "=== soak: SOAK_SECONDS=${SOAK_SECONDS:-90} make soak"
	if SOAK_SECONDS=${SOAK_SECONDS:-90} make -s soak >soak.log 2>&1; then
		total_pass=$((total_pass + 1))
	else
		total_fail=$((total_fail + 1))
	fi
	grep '^soak:' soak.log || tail -20 soak.log
}

run_build sanitizers --enable-werror --enable-sanitizers --enable-debug
run_soak
run_fuzz
run_build normal --enable-werror

echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
