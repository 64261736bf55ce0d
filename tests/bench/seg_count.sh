#!/bin/sh
# TCP segments per churn request: edged with one worker serves one cached
# 1 KiB object to N sequential connections, each a GET with Connection:
# close read to edged's close.  Everything runs in a network namespace of
# its own (unshare -n, so root), whose counters nothing else touches;
# nstat then counts both ends' segments over the N connections.
#   tests/bench/seg_count.sh [EDGED] [N]
# Prints nstat's counters; divide TcpOutSegs by N.  Stops by itself.
set -eu
EDGED=${1:-./edged}
N=${2:-1000}
ORIGIN=${BENCH_ORIGIN:-./tests/bench/bench_origin}
for t in unshare nstat ip curl; do
	command -v $t >/dev/null || { echo "$t not found" >&2; exit 1; }
done
if [ -z "${SEG_COUNT_INNER:-}" ]; then
	SEG_COUNT_INNER=1 exec unshare -n sh "$0" "$EDGED" "$N"
fi

. "$(dirname "$0")/bench_lib.sh"
ip link set lo up
bench_dir
d=$dir
op=$(port)
ep=$(port)
"$ORIGIN" "$op" & pids="$pids $!"
"$EDGED" --listen "127.0.0.1:$ep" --origin "http://127.0.0.1:$op" \
    --threads 1 --log-level warn --cache-dir "$d/cache" \
    --ready-file "$d/ready" >"$d/log" 2>&1 &
pids="$pids $!"
bench_wait_ready "$d/ready" "$d/log"
curl -s -o /dev/null "http://127.0.0.1:$ep/obj/hot?size=1024"
sleep 0.5 # the warm-up's connection gone
nstat -n >/dev/null
python3 - "$ep" "$N" <<'PY'
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /obj/hot?size=1024 HTTP/1.1\r\nHost: a\r\n"
              b"Connection: close\r\n\r\n")
    while s.recv(65536):
        pass
    s.close()
PY
sleep 0.5 # the last connection's end
nstat | grep -E "TcpOutSegs|TcpExtTCPPureAcks|TcpActiveOpens"
