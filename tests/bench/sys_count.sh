#!/bin/sh
# System calls of edged per request, counted by strace -c: edged with one
# worker serves a warm-up hit, then strace attaches and N requests for one
# cached 1 KiB object follow, over one keep-alive connection (keep) or
# each on its own connection with Connection: close (close).
#   tests/bench/sys_count.sh [EDGED] [keep|close] [N]
# BENCH_SIZE: the object's size in bytes (default 1024).
# Prints strace's table; divide the calls by N.  Loopback only; stops by
# itself.
set -eu
EDGED=${1:-./edged}
MODE=${2:-keep}
N=${3:-2000}
ORIGIN=${BENCH_ORIGIN:-./tests/bench/bench_origin}
command -v strace >/dev/null || { echo "strace not found" >&2; exit 1; }

. "$(dirname "$0")/bench_lib.sh"

# client PORT N MODE: N GETs of the hot object, each response read whole.
client() {
	python3 - "$@" <<'PY'
import os, socket, sys
port, n, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
size = int(os.environ.get("BENCH_SIZE", "1024"))
s = None
for i in range(n):
    if s is None:
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        buf = b""
    close = "Connection: close\r\n" if mode == "close" else ""
    s.sendall(("GET /obj/hot?size=%d HTTP/1.1\r\nHost: a\r\n%s\r\n"
               % (size, close)).encode())
    while b"\r\n\r\n" not in buf:
        buf += s.recv(65536)
    head, _, rest = buf.partition(b"\r\n\r\n")
    cl = [int(l.split(b":")[1]) for l in head.split(b"\r\n")[1:]
          if l.lower().startswith(b"content-length:")][0]
    while len(rest) < cl:
        rest += s.recv(65536)
    buf = rest[cl:]
    if mode == "close":
        while s.recv(65536):
            pass  # to the server's close
        s.close()
        s = None
PY
}

d=$(mktemp -d)
op=$(port)
ep=$(port)
"$ORIGIN" "$op" &
opid=$!
"$EDGED" --listen "127.0.0.1:$ep" --origin "http://127.0.0.1:$op" \
    --threads 1 --log-level warn --cache-dir "$d/cache" \
    --ready-file "$d/ready" >"$d/log" 2>&1 &
epid=$!
i=0
until [ -s "$d/ready" ]; do
	i=$((i + 1))
	[ $i -gt 100 ] && { kill $epid $opid; exit 1; }
	sleep 0.1
done
client "$ep" 1 keep
strace -c -f -p $epid -o "$d/strace" 2>/dev/null &
spid=$!
sleep 0.5 # attached
client "$ep" "$N" "$MODE"
sleep 0.2
kill -INT $spid
wait $spid || true
kill -TERM $epid
wait $epid || true
kill $opid
cat "$d/strace"
rm -rf "$d"
