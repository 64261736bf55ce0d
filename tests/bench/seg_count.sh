#!/bin/sh
# TCP segments per churn request: edged with one worker serves one cached
# 1 KiB object to N sequential connections, each a GET with Connection:
# close read to edged's close.  Everything runs in a network namespace of
# its own (unshare -n, so root), whose counters nothing else touches;
# nstat then counts both ends' segments over the N connections.
#   tests/bench/seg_count.sh [EDGED] [N]
# Prints nstat's counters; divide TcpOutSegs by N.  Stops by itself.
# SEG_TLS=1: over HTTPS (TLS 1.3), each connection resuming the session of
# the one before from its newest ticket, as tests/bench/cg_cost.sh's
# tls-resume does.
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
listen="--listen 127.0.0.1:$ep"
scheme=http
if [ -n "${SEG_TLS:-}" ]; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
	    -nodes -days 2 -subj /CN=localhost -keyout "$d/key.pem" \
	    -out "$d/cert.pem" 2>/dev/null
	listen="--listen-tls 127.0.0.1:$ep --tls-cert $d/cert.pem"
	listen="$listen --tls-key $d/key.pem"
	scheme=https
fi
"$ORIGIN" "$op" & pids="$pids $!"
# shellcheck disable=SC2086
"$EDGED" $listen --origin "http://127.0.0.1:$op" \
    --threads 1 --log-level warn --cache-dir "$d/cache" \
    --ready-file "$d/ready" >"$d/log" 2>&1 &
pids="$pids $!"
bench_wait_ready "$d/ready" "$d/log"
curl -sk -o /dev/null "$scheme://127.0.0.1:$ep/obj/hot?size=1024"
sleep 0.5 # the warm-up's connection gone
nstat -n >/dev/null
python3 - "$ep" "$N" "$scheme" <<'PY'
import socket, ssl, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
ctx = None
if sys.argv[3] == "https":
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
sess = None
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if ctx:
        s = ctx.wrap_socket(s, session=sess)
    s.sendall(b"GET /obj/hot?size=1024 HTTP/1.1\r\nHost: a\r\n"
              b"Connection: close\r\n\r\n")
    while s.recv(65536):
        pass
    if ctx:
        if i > 0 and not s.session_reused:
            sys.exit("connection %d not resumed" % i)
        sess = s.session  # the newest ticket
    s.close()
PY
sleep 0.5 # the last connection's end
nstat | grep -E "TcpOutSegs|TcpExtTCPPureAcks|TcpActiveOpens"
