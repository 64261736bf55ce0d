#!/bin/sh
# Misses and the store: edged (2 workers, pinned to one CPU as the shared
# harness pins it) under wrk -t1 -c64 misses of new 1 KiB keys for DUR
# seconds, its store in a fresh directory under STORE_DIR (default
# /dev/shm, as the harness keeps the peers' caches).  Prints requests,
# requests per edged CPU-second (its CPU time during the run only) and
# what the store did: objects stored (puts) and puts dropped because the
# writer thread fell behind (put_drops), which a req/s figure alone hides.
# ROUNDS=N (default 1) runs N such rounds against the same process and
# store, one line each: the cost of a miss as the store and the memory
# tier grow (the shared harness keeps one store through its repetitions).
# Each line also splits edged's CPU: the writer thread's (named
# cache-writer) per object stored, the other threads' per request.
# A second line gives edged's minor page faults per request in the round,
# its resident memory (anonymous: the heap) at the round's end, and the
# memory tier's objects and the bytes it is charged for them.
#   tests/bench/miss_store.sh [EDGED] [DUR] [more edged arguments...]
# e.g. tests/bench/miss_store.sh ./edged 8 --cache-preallocate 1
#      ROUNDS=6 tests/bench/miss_store.sh ./edged 5
# Loopback only; stops what it started.
set -eu
EDGED=${1:-./edged}
DUR=${2:-8}
[ $# -ge 2 ] && shift 2 || shift $#
ORIGIN=${BENCH_ORIGIN:-./tests/bench/bench_origin}
CPU=${EDGED_CPU:-1}
command -v wrk >/dev/null || { echo "wrk not found" >&2; exit 1; }
. "$(dirname "$0")/bench_lib.sh"
bench_dir "${STORE_DIR:-/dev/shm}"
d=$dir
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
minflt() { awk '{print $10}' "/proc/$1/stat"; }
# The writer thread's CPU ticks (0 if no thread has its name).
writer_ticks() {
	for t in /proc/"$1"/task/*; do
		[ "$(cat "$t/comm" 2>/dev/null)" = cache-writer ] &&
			awk '{print $14 + $15}' "$t/stat" && return
	done
	echo 0
}

op=$(port); ep=$(port); ap=$(port)
"$ORIGIN" "$op" & pids="$pids $!"
taskset -c "$CPU" "$EDGED" --listen "127.0.0.1:$ep" \
    --admin-listen "127.0.0.1:$ap" --origin "http://127.0.0.1:$op" \
    --threads 2 --log-level warn --cache-dir "$d/cache" --cache-size 4G \
    --memory-size 2G --ready-file "$d/ready" "$@" & epid=$!
pids="$pids $epid"
bench_wait_ready "$d/ready"
round=1
puts0=0
while [ "$round" -le "${ROUNDS:-1}" ]; do
	t0=$(ticks "$epid")
	w0=$(writer_ticks "$epid")
	f0=$(minflt "$epid")
	wrk -t1 -c64 -d"${DUR}s" -s tests/bench/miss.lua "http://127.0.0.1:$ep/" -- "r$round" >"$d/wrk"
	t1=$(ticks "$epid")
	wt1=$(writer_ticks "$epid")
	f1=$(minflt "$epid")
	sleep 1 # the writer's last batch
	w1=$(writer_ticks "$epid")
	curl -s "http://127.0.0.1:$ap/stats" >"$d/stats"
	anon=$(awk '/^RssAnon:/ {print $2}' "/proc/$epid/status")
	python3 - "$d/wrk" "$d/stats" "$((t1 - t0))" "$(getconf CLK_TCK)" "$round" "$*" "$((w1 - w0))" "$puts0" "$((wt1 - w0))" "$((f1 - f0))" "$anon" <<'PY'
import json, re, sys
wrk, st, ticks, hz = open(sys.argv[1]).read(), json.load(open(sys.argv[2])), int(sys.argv[3]), int(sys.argv[4])
rnd, args, wticks, puts0 = sys.argv[5], sys.argv[6], int(sys.argv[7]), int(sys.argv[8])
wrun = int(sys.argv[9])  # the writer's ticks within the run's window
flt, anon_kib = int(sys.argv[10]), int(sys.argv[11])
n = int(re.search(r"(\d+) requests in", wrk).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", wrk).group(1))
c = st["cache"]
puts = c["puts"] - puts0
print("%s round %s: %d requests, %.0f req/s, %.0f req per edged CPU-s, puts %d, put_drops %d;"
      " writer %.1f us CPU per put, other threads %.1f us per request"
      % (args or "(defaults)", rnd, n, rps, n * hz / max(ticks, 1), c["puts"], c["put_drops"],
         wticks * 1e6 / hz / max(puts, 1), max(ticks - wrun, 0) * 1e6 / hz / max(n, 1)))
print("  minor faults per request %.2f, RssAnon %.0f MiB, memory tier %d objects charged %.0f MiB (%.0f B each)%s"
      % (flt / max(n, 1), anon_kib / 1024, c["memory_objects"], c["memory_bytes"] / 2**20,
         c["memory_bytes"] / max(c["memory_objects"], 1),
         ", slab %.0f MiB" % (c["memory_slab_bytes"] / 2**20) if "memory_slab_bytes" in c else ""))
PY
	puts0=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["cache"]["puts"])' "$d/stats")
	round=$((round + 1))
done
