#!/bin/sh
# make bench: edged's request rate and cost, measured with wrk.
#   1. the HTTP/1.1 layer alone (admin /healthz: parse, route, write),
#   2. hits: one cached 1 KiB object, from the memory tier,
#   3. misses: a new key every request (tests/bench/miss.lua), each fetched
#      from a fast local origin and stored,
# each with wrk -t1 -c64 for 5 s, edged with 2 threads.  Where nginx is
# installed, a static nginx "return 200" with 2 workers runs beside it as a
# reference.  Reports req/s and requests per CPU-second of the server.
# Everything binds 127.0.0.1 and stops by itself.
set -eu
EDGED=${EDGED:-./edged}
ORIGIN=${BENCH_ORIGIN:-./tests/bench/bench_origin}
DUR=${BENCH_DURATION:-5}
. "$(dirname "$0")/bench_lib.sh"
bench_dir
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }

cpu_ticks() { # utime+stime of processes (threads included), in clock ticks
	t=0
	for p in $1; do
		t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
	done
	echo $t
}
measure() { # measure NAME "PIDS" URL [wrk args]
	# Not "pids": that is the list bench_cleanup stops (sh has no locals).
	name=$1 mpids=$2 url=$3
	shift 3
	t0=$(cpu_ticks "$mpids")
	out=$(wrk -t1 -c64 -d"${DUR}s" "$@" "$url")
	t1=$(cpu_ticks "$mpids")
	rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
	hz=$(getconf CLK_TCK)
	awk -v n="$name" -v r="$rps" -v c="$((t1 - t0))" -v hz="$hz" -v d="$DUR" \
	    'BEGIN { cs = c / hz; printf "%-28s %10.0f req/s  %5.0f%% CPU  %8.0f req/CPU-s\n", n, r, 100 * cs / d, (cs > 0 ? r * d / cs : 0) }'
}

op=$(port); ep=$(port); ap=$(port)
"$ORIGIN" "$op" & pids="$pids $!"
"$EDGED" --listen "127.0.0.1:$ep" --admin-listen "127.0.0.1:$ap" \
    --origin "http://127.0.0.1:$op" --threads 2 --log-level warn \
    --cache-dir "$dir/cache" \
    --ready-file "$dir/ready" & epid=$!; pids="$pids $epid"
bench_wait_ready "$dir/ready"

echo "edged $("$EDGED" --version | cut -d' ' -f2), wrk -t1 -c64 -d${DUR}s, $(nproc) cores"
if command -v nginx >/dev/null; then
	np=$(port)
	mkdir -p "$dir/nginx/logs"
	cat >"$dir/nginx.conf" <<NGX
worker_processes 2;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log;
events { worker_connections 1024; }
http {
	access_log off;
	keepalive_requests 1000000;
	server {
		listen 127.0.0.1:$np;
		location / { return 200 "\$request_uri"; }
	}
}
NGX
	nginx -p "$dir/nginx" -c "$dir/nginx.conf" -g 'daemon off;' & npid=$!
	pids="$pids $npid"
	sleep 0.5
	measure "nginx static (reference)" "$npid $(pgrep -P "$npid" | tr '\n' ' ')" \
	    "http://127.0.0.1:$np/healthz"
fi
measure "edged HTTP layer (/healthz)" "$epid" "http://127.0.0.1:$ap/healthz"
curl -s -o /dev/null "http://127.0.0.1:$ep/obj/hot?size=1024"
measure "edged hit, 1 KiB (memory)" "$epid" "http://127.0.0.1:$ep/obj/hot?size=1024"
measure "edged miss, 1 KiB (stored)" "$epid" "http://127.0.0.1:$ep/" \
    -s "$(dirname "$0")/miss.lua"
