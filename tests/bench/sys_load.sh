#!/bin/sh
# System calls of edged per request under concurrent load, counted by
# strace -c: edged (two workers, pinned to CPU 1) serves one cached 1 KiB
# object to wrk -t1 -c64 (CPU 0) for 6 s, over keep-alive connections
# (keep) or a new connection per request with Connection: close (close);
# strace counts the middle 3 s.  Unlike sys_count.sh's one sequential
# client, this shows what batching does: several connections per accept
# wake-up, and whether a request is in when its connection is accepted.
#   tests/bench/sys_load.sh [EDGED] [keep|close]
# Prints wrk's rate and strace's table; divide the calls by writev's
# count (one per response).  Loopback only; stops by itself.
set -eu
EDGED=${1:-./edged}
MODE=${2:-close}
ORIGIN=${BENCH_ORIGIN:-./tests/bench/bench_origin}
for t in strace wrk taskset; do
	command -v $t >/dev/null || { echo "$t not found" >&2; exit 1; }
done

. "$(dirname "$0")/bench_lib.sh"
bench_dir
d=$dir
op=$(port)
ep=$(port)
"$ORIGIN" "$op" & pids="$pids $!"
taskset -c 1 "$EDGED" --listen "127.0.0.1:$ep" \
    --origin "http://127.0.0.1:$op" --threads 2 --log-level warn \
    --cache-dir "$d/cache" --ready-file "$d/ready" >"$d/log" 2>&1 &
epid=$!
pids="$pids $epid"
bench_wait_ready "$d/ready" "$d/log"
url="http://127.0.0.1:$ep/obj/hot?size=1024"
python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1]).read()' "$url"
if [ "$MODE" = close ]; then
	set -- -H "Connection: close"
else
	set --
fi
taskset -c 0 wrk -t1 -c64 -d6s "$@" "$url" >"$d/wrk" &
wpid=$!
sleep 1.5
timeout 3 strace -c -f -p $epid -o "$d/strace" 2>/dev/null || true
wait $wpid
grep Requests "$d/wrk"
cat "$d/strace"
