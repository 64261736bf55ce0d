#!/bin/sh
# The tail of hits, binaries side by side: each EDGED runs as the shared
# harness runs it (--threads 2, every thread pinned to CPU 1, its store on
# tmpfs), tests/bench/bench_origin and wrk (-t1 -c64) on CPU 0, and ROUNDS
# rounds of D seconds alternate between the binaries.  Per run it prints
# wrk's req/s and latency percentiles, edged's CPU-seconds and requests per
# CPU-second, each busy thread's time on the CPU, time waiting for it and
# timeslices (/proc/PID/task/TID/schedstat), and per request the context
# switches and a few system calls (perf stat; left out without perf).
#   tests/bench/p99_ab.sh hot1k|many ROUNDS EDGED...
# hot1k: one cached 1 KiB object; many: MANY_N (default 100000) 4 KiB
# objects fetched once through each edged first, then a uniform random one
# per request.  D: seconds per run (default 3).  LUA_DIR: the harness's wrk
# scripts (default ../shared/bench/lua).  Loopback only; stops by itself.
set -eu
SCEN=$1
ROUNDS=$2
shift 2
D=${D:-3}
MANY_N=${MANY_N:-100000}
LUA_DIR=${LUA_DIR:-../shared/bench/lua}
ORIGIN=${BENCH_ORIGIN:-./tests/bench/bench_origin}
for t in wrk taskset curl; do
	command -v $t >/dev/null || { echo "$t not found" >&2; exit 1; }
done
[ -x "$ORIGIN" ] || { echo "make $ORIGIN first" >&2; exit 1; }
LUA_DIR=$(cd "$LUA_DIR" && pwd)
export BENCH_LUA_DIR="$LUA_DIR"

. "$(dirname "$0")/bench_lib.sh"
bench_dir /dev/shm

op=$(port)
taskset -c 0 "$ORIGIN" "$op" >/dev/null 2>&1 &
pids="$pids $!"

i=0
for b in "$@"; do
	p=$(port)
	mkdir -p "$dir/$i"
	taskset -c 1 "$b" --listen "127.0.0.1:$p" \
	    --origin "http://127.0.0.1:$op" --cache-dir "$dir/$i/edged" \
	    --cache-size 4G --memory-size 2G --threads 2 --log-level warn \
	    --ready-file "$dir/$i/ready" >"$dir/$i/log" 2>&1 &
	pids="$pids $!"
	echo "$!" >"$dir/$i/pid"
	echo "$p" >"$dir/$i/port"
	echo "$b" >"$dir/$i/bin"
	i=$((i + 1))
done
n=$i

for j in $(seq 0 $((n - 1))); do
	bench_wait_ready "$dir/$j/ready" "$dir/$j/log"
	p=$(cat "$dir/$j/port")
	for _ in 1 2; do
		curl -s -o /dev/null "http://127.0.0.1:$p/obj/hot?size=1024"
	done
	if [ "$SCEN" = many ]; then
		seq 0 $((MANY_N - 1)) | sed "s|.*|url = \"http://127.0.0.1:$p/obj/m&?size=4096\"\noutput = /dev/null|" >"$dir/urls"
		taskset -c 0 curl -s --parallel --parallel-max 64 -K "$dir/urls" 2>/dev/null
	fi
done

# Every thread's "run_ns,wait_ns,slices" of process $1.
sched() {
	for t in /proc/"$1"/task/*; do
		printf '%s,%s ' "$(cat "$t/comm")" "$(tr ' ' , <"$t/schedstat")"
	done
}

for r in $(seq "$ROUNDS"); do
	for j in $(seq 0 $((n - 1))); do
		p=$(cat "$dir/$j/port")
		pid=$(cat "$dir/$j/pid")
		s0=$(sched "$pid")
		c0=$(awk '{print $14 + $15}' /proc/"$pid"/stat)
		pp=""
		if command -v perf >/dev/null; then
			taskset -c 0 perf stat -x, -o "$dir/perf" -p "$pid" -e \
			    context-switches,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_sched_yield,syscalls:sys_enter_writev \
			    -- sleep "$D" 2>/dev/null &
			pp=$!
		fi
		if [ "$SCEN" = many ]; then
			out=$(taskset -c 0 wrk -t1 -c64 -d"${D}s" --timeout 5s \
			    -s "$LUA_DIR/many.lua" "http://127.0.0.1:$p/" -- \
			    "$MANY_N" 4096 2>&1)
		else
			out=$(taskset -c 0 wrk -t1 -c64 -d"${D}s" --timeout 5s \
			    -s "$LUA_DIR/hot.lua" \
			    "http://127.0.0.1:$p/obj/hot?size=1024" 2>&1)
		fi
		c1=$(awk '{print $14 + $15}' /proc/"$pid"/stat)
		s1=$(sched "$pid")
		[ -z "$pp" ] || wait "$pp" || true
		echo "$out" | grep '^JSON ' | sed 's/^JSON //' | python3 -c '
import json, os, sys
r = json.load(sys.stdin)
name, rnd, scen = sys.argv[1], sys.argv[2], sys.argv[3]
cpu = (int(sys.argv[4]) - int(sys.argv[5])) / os.sysconf("SC_CLK_TCK")
print("%s %s round %s: req/s %.0f p50 %.2f p90 %.2f p99 %.2f p99.9 %.2f "
      "max %.1f ms; cpu %.2f s, %.0f req per cpu-s"
      % (name, scen, rnd, r["rps"], r["p50_us"] / 1e3, r["p90_us"] / 1e3,
         r["p99_us"] / 1e3, r["p999_us"] / 1e3, r["max_us"] / 1e3, cpu,
         r["requests"] / cpu if cpu else 0))
def parse(s):
    d = {}
    for i, x in enumerate(s.split()):
        f = x.split(",")
        d[(i, f[0])] = [int(v) for v in f[1:]]
    return d
a, b = parse(sys.argv[6]), parse(sys.argv[7])
for k in sorted(b):
    if k not in a:
        continue
    run, wait, sl = (y - x for x, y in zip(a[k], b[k]))
    if run < 10e6:
        continue  # (unnamed before edged-worker-N: the busy ones)
    print("  %s: run %.0f ms, waiting %.0f ms, %d timeslices: %.3f ms run "
          "and %.3f ms waiting each" % (k[1], run / 1e6, wait / 1e6, sl,
          run / 1e6 / max(sl, 1), wait / 1e6 / max(sl, 1)))
perf = sys.argv[8]
if os.path.exists(perf):
    per = []
    for line in open(perf):
        f = line.strip().split(",")
        if len(f) > 2 and f[0].replace(".", "").isdigit():
            per.append("%s %.3f" % (f[2].split("sys_enter_")[-1],
                                    float(f[0]) / r["requests"]))
    print("  per request: " + ", ".join(per))
' "$(basename "$(cat "$dir/$j/bin")")" "$r" "$SCEN" "$c1" "$c0" "$s0" "$s1" "$dir/perf"
		rm -f "$dir/perf"
	done
done
