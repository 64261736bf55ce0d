#!/usr/bin/env bash
# Where a herd's time goes inside edged: edged (2 workers, pinned to CPU 1) runs
# under strace (--seccomp-bpf: only the traced calls stop it) against the test
# origin (tests/origin/origin.py), and tests/bench/herd_timed.py sends HERDS herds of 200 clients
# for new URLs (origin delay 500 ms).  No request comes before the first herd, so
# its origin connection is a new one; later herds may reuse it.  Prints, per herd,
# tests/bench/herd_strace.py's reading of the trace.
#
#   tests/bench/herd_strace.sh EDGED [HERDS=2]
# BASE (default 23490) and BASE+7 are the ports used.
set -u
EDGED=$1 HERDS=${2:-2}
HERE=$(cd "$(dirname "$0")" && pwd)
B=${BASE:-23490}
W=$(mktemp -d /tmp/herd-strace.XXXXXX)
pids=()
cleanup() { # strace's child first: it does not pass a TERM on
  for p in "${pids[@]}"; do
    for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do kill "$c"; done
    kill "$p" 2>/dev/null
  done
  sleep 0.5
  rm -rf "$W"
}
trap cleanup EXIT
taskset -c 0 python3 "$HERE/../origin/origin.py" --listen "127.0.0.1:$B" > /dev/null 2>&1 & pids+=($!)
taskset -c 1 strace -f -ttt --seccomp-bpf -o "$W/trace" \
    -e trace=readv,recvfrom,connect,sendto,writev \
    "$EDGED" --listen 127.0.0.1:$((B + 7)) --origin "http://127.0.0.1:$B" \
    --cache-dir "$W/cache" --cache-size 1G --memory-size 256M --threads 2 \
    --log-level warn --ready-file "$W/ready" > "$W/edged.out" 2>&1 & pids+=($!)
for i in $(seq 1 100); do [ -s "$W/ready" ] && break; sleep 0.1; done
sleep 0.3
for r in $(seq 1 "$HERDS"); do
  taskset -c 0 python3 "$HERE/herd_timed.py" 127.0.0.1 $((B + 7)) \
      "/obj/herd-$$-$r?size=1024&ttl=3600&delay_ms=500" 200 30 | sed -n 's/^JSON //p'
  sleep 1
done
python3 "$HERE/herd_strace.py" "$W/trace"
