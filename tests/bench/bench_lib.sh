# Shared by the shell benchmarks here, sourced with ".":
#   dir=$(bench_dir [PARENT])  a private temporary directory, removed on exit
#   pids="$pids $!"            a process to stop on exit (or on INT/TERM)
#   port                       prints a free loopback TCP port
#   bench_wait_ready FILE [LOG] waits up to 30 s for edged's ready file;
#                              otherwise prints LOG and exits 1
pids=""
bench_tmp=""

port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

bench_cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	for p in $pids; do wait "$p" 2>/dev/null || true; done
	[ -z "$bench_tmp" ] || rm -rf "$bench_tmp"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

# Called in the script itself, not in $(...): the directory must be known
# to bench_cleanup.  Sets $dir.
bench_dir() {
	bench_tmp=$(mktemp -d "${1:-${TMPDIR:-/tmp}}/edged-bench.XXXXXX")
	dir=$bench_tmp
}

bench_wait_ready() {
	_i=0
	until [ -s "$1" ]; do
		_i=$((_i + 1))
		if [ $_i -gt 300 ]; then
			echo "edged did not start" >&2
			[ -z "${2:-}" ] || cat "$2" >&2
			exit 1
		fi
		sleep 0.1
	done
}
