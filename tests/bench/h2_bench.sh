#!/bin/sh
# HTTP/2 hits over TLS: edged beside nginx, measured with h2load.
#   EDGED=./edged BENCH_ORIGIN=./tests/bench/bench_origin sh tests/bench/h2_bench.sh
# (make tests/bench/bench_origin first; needs nginx and h2load, Debian's
# nginx-light and nghttp2-client).
#
# Both servers use one worker on CPU 0 (taskset), the same certificate
# and TLS 1.3 cipher, and cache the same origin (bench_origin, CPU 1);
# h2load runs on CPU 1 with 64 connections x 10 streams for BENCH_DURATION
# seconds (default 5) per run, after a warm-up that stores the objects.
# For each object size (1 KiB, 100 KiB) and protocol (h2; HTTP/1.1 with
# h2load --h1 on kept-alive connections; and h1-resume, HTTP/1.1 with
# "Connection: close", so that every request is a new TLS connection that
# resumes the client's session from a ticket, BENCH_DURATION x 1000
# requests) it prints requests/s and requests per CPU-second of the
# server, edged and nginx alternating, BENCH_REPS times (default 3), then
# the median of each and edged's ratio to nginx.
# BENCH_SIZES and BENCH_PROTOS pick rows (e.g. BENCH_SIZES=102400
# BENCH_PROTOS=h2). EDGED_BASE=path adds a second edged binary (say, one
# built from main) as a third server "base", pinned and alternated like
# the others, so that a change is measured before and after in one run.
# Everything binds 127.0.0.1 and stops by itself.
set -eu
EDGED=${EDGED:-./edged}
BASE=${EDGED_BASE:-}
SIZES=${BENCH_SIZES:-1024 102400}
PROTOS=${BENCH_PROTOS:-h2 h1 h1-resume}
ORIGIN=${BENCH_ORIGIN:-./tests/bench/bench_origin}
DUR=${BENCH_DURATION:-5}
REPS=${BENCH_REPS:-3}
CIPHER=TLS_AES_128_GCM_SHA256
for t in nginx h2load openssl taskset; do
	command -v $t >/dev/null || { echo "$t not found" >&2; exit 1; }
done
. "$(dirname "$0")/bench_lib.sh"
bench_dir

tree() { # a process and its children
	echo "$1 $(pgrep -P "$1" | tr '\n' ' ')"
}
# "pid ticks" of each of the processes that still exists (nginx's cache
# loader exits a minute after start, in the middle of a run)
cpu_ticks() {
	for p in $1; do
		awk -v p="$p" '{ print p, $14 + $15 }' "/proc/$p/stat" 2>/dev/null || true
	done
}
# CPU ticks between two cpu_ticks outputs, of the processes in both
ticks_between() {
	printf '%s\n--\n%s\n' "$1" "$2" | awk '
	    $1 == "--" { second = 1; next }
	    !second { t0[$1] = $2; next }
	    $1 in t0 { d += $2 - t0[$1] }
	    END { print d + 0 }'
}
# run NAME "PIDS" URL [h2load args, with -D or -n]: "rps req_per_cpu_s"
# on stdout (the requests that succeeded over the server's CPU-seconds)
run() {
	pids_=$2 url=$3
	shift 3
	t0=$(cpu_ticks "$pids_")
	out=$(timeout $((DUR * 10 + 30)) taskset -c 1 h2load -t1 -c64 \
	    --tls13-ciphers=$CIPHER "$@" "$url" 2>&1)
	t1=$(cpu_ticks "$pids_")
	echo "$out" | awk -v c="$(ticks_between "$t0" "$t1")" -v hz="$(getconf CLK_TCK)" '
	    /^finished in/ { for (i = 1; i <= NF; i++) if ($(i+1) ~ /req\/s/) r = $i; gsub(",", "", r) }
	    /^requests:/ { ok = $8; if ($10 + 0 > 0 || $12 + 0 > 0) bad = 1 }
	    END { cs = c / hz; printf "%.0f %.0f%s\n", r, (cs > 0 ? ok / cs : 0), bad || r == "" ? " errors" : "" }'
}

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -days 2 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
op=$(port); ep=$(port); np=$(port); bp=$(port)
taskset -c 1 "$ORIGIN" "$op" & pids="$pids $!"
# start_edged BINARY PORT NAME: its pid in $spid
start_edged() {
	taskset -c 0 "$1" --listen-tls "127.0.0.1:$2" --tls-cert "$dir/cert.pem" \
	    --tls-key "$dir/key.pem" --origin "http://127.0.0.1:$op" --threads 1 \
	    --log-level warn --cache-dir "$dir/cache-$3" --memory-size 256M \
	    --ready-file "$dir/ready-$3" & spid=$!; pids="$pids $spid"
}
start_edged "$EDGED" "$ep" edged; epid=$spid
servers="e n"
if [ -n "$BASE" ]; then
	start_edged "$BASE" "$bp" base; bpid=$spid
	servers="b e n"
fi
mkdir -p "$dir/nginx/cache"
# As root, nginx's workers would become "nobody", who cannot write the
# private cache directory: keep them the user who runs this.
cat >"$dir/nginx.conf" <<NGX
user $(id -un);
worker_processes 1;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log;
events { worker_connections 4096; }
http {
	access_log off;
	keepalive_requests 1000000;
	proxy_cache_path $dir/nginx/cache keys_zone=c:64m;
	upstream o { server 127.0.0.1:$op; keepalive 32; }
	server {
		listen 127.0.0.1:$np ssl http2;
		ssl_certificate $dir/cert.pem;
		ssl_certificate_key $dir/key.pem;
		ssl_protocols TLSv1.3;
		location / {
			proxy_pass http://o;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_cache c;
			proxy_cache_lock on;
		}
	}
}
NGX
taskset -c 0 nginx -p "$dir/nginx" -c "$dir/nginx.conf" -g 'daemon off;' &
npid=$!; pids="$pids $npid"
for r in edged ${BASE:+base}; do
	bench_wait_ready "$dir/ready-$r"
done
sleep 0.5
echo "edged $("$EDGED" --version | cut -d' ' -f2) and nginx $(nginx -v 2>&1 | cut -d/ -f2): one worker each on CPU 0, h2load -c64 on CPU 1, ${DUR} s x $REPS"
printf '%-10s %-9s %-6s %10s %12s\n' size proto server "req/s" "req/CPU-s"
for size in $SIZES; do
	path="/obj/h2bench?size=$size"
	for p in $ep $np ${BASE:+$bp}; do
		curl -sk -o /dev/null "https://127.0.0.1:$p$path"
		curl -sk -o /dev/null "https://127.0.0.1:$p$path"
	done
	for proto in $PROTOS; do
		# h2load's -D never ends when the server closes connections:
		# h1-resume runs a number of requests instead.
		case $proto in
		h2) args="-D $DUR -m10" ;;
		h1) args="-D $DUR --h1 -m1" ;;
		h1-resume) args="-n $((DUR * 1000)) --h1 -m1 -H connection:close" ;;
		esac
		: >"$dir/e"; : >"$dir/n"; : >"$dir/b"
		r=0
		while [ $r -lt "$REPS" ]; do
			for s in $servers; do
				case $s in
				e) pid=$epid p=$ep ;;
				n) pid=$npid p=$np ;;
				b) pid=$bpid p=$bp ;;
				esac
				# shellcheck disable=SC2086
				run $s "$(tree $pid)" "https://127.0.0.1:$p$path" $args >>"$dir/$s"
			done
			r=$((r + 1))
		done
		for s in $servers; do
			case $s in
			e) name=edged ;;
			n) name=nginx ;;
			b) name=base ;;
			esac
			sort -n -k2 "$dir/$s" | awk -v sz=$size -v pr=$proto -v n=$name '
			    { r[NR] = $1; c[NR] = $2; if ($3 != "") bad = 1 }
			    END { m = int((NR + 1) / 2); printf "%-10s %-9s %-6s %10s %12s%s\n", sz, pr, n, r[m], c[m], bad ? "  (errors)" : "" }'
		done | tee -a "$dir/medians"
	done
done
awk '{ k = $1 " " $2; if ($3 == "edged") e[k] = $5; else if ($3 == "base") b[k] = $5; else n[k] = $5 }
    END {
	for (k in e) if (n[k] > 0) printf "edged/nginx per CPU-s, %s: %.2f\n", k, e[k] / n[k]
	for (k in b) if (n[k] > 0) printf "base/nginx per CPU-s, %s: %.2f\n", k, b[k] / n[k]
    }' "$dir/medians" | sort
