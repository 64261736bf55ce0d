# Shared by the shell benchmarks here, sourced with ".":
#   dir=$(bench_dir [PARENT])  a private temporary directory, removed on exit
#   pids="$pids $!"            a process to stop on exit (or on INT/TERM)
#   port                       prints a free loopback TCP port
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
