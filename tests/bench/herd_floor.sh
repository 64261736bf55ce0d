#!/usr/bin/env bash
# The herd's floor: interleaved herds of 200 clients (tests/bench/herd_timed.py,
# pinned to CPU 0 with the test origin (tests/origin/origin.py); every server
# pinned to CPU 1), one line of JSON per herd:
#   static      a static nginx, answering at once
#   NAME-hit    each edged binary, a cached object
#   ideal-500   tests/bench/herd_ideal: every answer 500 ms after the first request
#   origin-500  the origin itself, delay_ms=500 on each request
#   NAME-miss   each edged binary, one new URL, the origin's delay 500 ms
#
#   tests/bench/herd_floor.sh ROUNDS OUT [NAME:EDGED ...]
# Needs: make tests/bench/herd_ideal; nginx.
# BASE (default 24610) is the first of the ports used; the servers stop at exit.
set -u
R=$1 OUT=$2; shift 2
HERE=$(cd "$(dirname "$0")" && pwd)
B=${BASE:-24610}
W=$(mktemp -d /tmp/herd-floor.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  sleep 1
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  rm -rf "$W" "/dev/shm/$(basename "$W")"
}
trap cleanup EXIT
taskset -c 0 python3 "$HERE/../origin/origin.py" --listen "127.0.0.1:$B" > /dev/null 2>&1 & pids+=($!)
taskset -c 1 "$HERE/herd_ideal" $((B + 2)) 500 & pids+=($!)
mkdir -p "$W/static"
body=$(python3 -c "print(''.join(chr(97 + i % 26) for i in range(1024)), end='')")
cat > "$W/static/nginx.conf" <<EOF
worker_processes 2;
pid $W/static/nginx.pid;
events {}
http {
	access_log off;
	default_type application/octet-stream;
	server {
		listen 127.0.0.1:$((B + 1));
		location / { return 200 "$body"; }
	}
}
EOF
taskset -c 1 nginx -p "$W/static" -c "$W/static/nginx.conf" -e "$W/static/error.log" \
    -g 'daemon off;' > /dev/null 2>&1 & pids+=($!)
declare -A port
names=()
k=0
for e in "$@"; do
  n=${e%%:*} bin=${e#*:}
  port[$n]=$((B + 10 + k)); k=$((k + 1)); names+=("$n")
  mkdir -p "/dev/shm/$(basename "$W")/$n"
  taskset -c 1 "$bin" --listen "127.0.0.1:${port[$n]}" --origin "http://127.0.0.1:$B" \
      --cache-dir "/dev/shm/$(basename "$W")/$n" --cache-size 1G --memory-size 256M \
      --threads 2 --log-level warn > /dev/null 2>&1 & pids+=($!)
done
for p in $((B + 1)) "${port[@]}"; do
  for i in $(seq 1 100); do
    curl -s -m 2 -o /dev/null "http://127.0.0.1:$p/obj/warm?size=1024&ttl=3600" && break
    sleep 0.2
  done
  curl -s -m 2 -o /dev/null "http://127.0.0.1:$p/obj/warm?size=1024&ttl=3600"
done
herd() { # herd LABEL PORT PATH
  echo "$1 $(taskset -c 0 python3 "$HERE/herd_timed.py" 127.0.0.1 "$2" "$3" 200 30 |
      sed -n 's/^JSON //p')" >> "$OUT"
  sleep 0.5
}
for r in $(seq 1 "$R"); do
  herd static $((B + 1)) '/obj/warm?size=1024&ttl=3600'
  for n in "${names[@]}"; do herd "$n-hit" "${port[$n]}" '/obj/warm?size=1024&ttl=3600'; done
  herd ideal-500 $((B + 2)) "/obj/i-$r"
  herd origin-500 "$B" "/obj/o-$r-$$?size=1024&ttl=3600&delay_ms=500"
  for n in "${names[@]}"; do
    herd "$n-miss" "${port[$n]}" "/obj/$n-$r-$$?size=1024&ttl=3600&delay_ms=500"
  done
done
python3 "$HERE/herd_floor_table.py" "$OUT"
