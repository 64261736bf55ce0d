#!/bin/sh
# CPU per TLS hit of two edged binaries, in alternating rounds.
#   EDGED_A=/path/to/before EDGED_B=./edged sh tests/bench/h2_cpu_ab.sh
# (make tests/bench/bench_origin first; needs h2load and openssl).
# Both servers run with one worker on CPU 0 and cache the same origin
# (bench_origin, CPU 1); h2load (CPU 1, 64 connections; h2 with 10
# streams each, or HTTP/1.1 with BENCH_PROTO=h1) fetches one object of
# BENCH_SIZE bytes (default 102400) BENCH_N times (default 10000) from A,
# then from B, BENCH_REPS times (default 9).  Each round prints the
# server's CPU milliseconds (utime + stime from /proc, 10 ms steps) and
# h2load's wall time; the end prints each server's median.  On a shared
# machine only the medians of many rounds, and the pairs, mean much.
# Everything binds 127.0.0.1 and stops by itself.
set -eu
A=${EDGED_A:?EDGED_A: the first edged binary}
B=${EDGED_B:?EDGED_B: the second edged binary}
ORIGIN=${BENCH_ORIGIN:-./tests/bench/bench_origin}
N=${BENCH_N:-10000}
REPS=${BENCH_REPS:-9}
SIZE=${BENCH_SIZE:-102400}
PROTO=${BENCH_PROTO:-h2}
CIPHER=TLS_AES_128_GCM_SHA256
. "$(dirname "$0")/bench_lib.sh"
bench_dir
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -days 2 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
op=$(port)
taskset -c 1 "$ORIGIN" "$op" & pids="$pids $!"
# start NAME BINARY: port in $sport, pid in $spid
start() {
	sport=$(port)
	taskset -c 0 "$2" --listen-tls "127.0.0.1:$sport" --tls-cert "$dir/cert.pem" \
	    --tls-key "$dir/key.pem" --origin "http://127.0.0.1:$op" --threads 1 \
	    --log-level warn --cache-dir "$dir/cache-$1" --memory-size 256M \
	    --ready-file "$dir/ready-$1" 2>/dev/null & spid=$!; pids="$pids $spid"
	bench_wait_ready "$dir/ready-$1"
}
start a "$A"; apid=$spid aport=$sport
start b "$B"; bpid=$spid bport=$sport
case $PROTO in
h2) args="-m10" ;;
h1) args="--h1 -m1" ;;
*) echo "BENCH_PROTO: h2 or h1" >&2; exit 1 ;;
esac
path="/obj/h2ab?size=$SIZE"
for p in $aport $bport; do # store, then warm up
	curl -sk -o /dev/null "https://127.0.0.1:$p$path"
	curl -sk -o /dev/null "https://127.0.0.1:$p$path"
	# shellcheck disable=SC2086
	taskset -c 1 h2load -t1 -c64 $args -n 2000 --tls13-ciphers=$CIPHER \
	    "https://127.0.0.1:$p$path" >/dev/null 2>&1
done
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
r=0
while [ $r -lt "$REPS" ]; do
	for s in a b; do
		if [ $s = a ]; then pid=$apid p=$aport; else pid=$bpid p=$bport; fi
		t0=$(ticks $pid)
		# shellcheck disable=SC2086
		out=$(timeout 300 taskset -c 1 h2load -t1 -c64 $args -n "$N" \
		    --tls13-ciphers=$CIPHER "https://127.0.0.1:$p$path" 2>&1)
		t1=$(ticks $pid)
		ok=$(echo "$out" | awk '/^requests:/ { print $8 }')
		wall=$(echo "$out" | awk '/^finished in/ { print $3 }')
		echo "$s $(( (t1 - t0) * 1000 / hz )) $wall ${ok:-0}" | tee -a "$dir/res"
	done
	r=$((r + 1))
done
awk -v n="$N" '$4 != n { bad = 1 }
    { v[$1, ++c[$1]] = $2 }
    END {
	for (s in c) {
		m = c[s]
		for (i = 1; i <= m; i++) a[i] = v[s, i]
		for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++)
			if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
		printf "%s: median %d ms of CPU per %d hits over %d rounds%s\n", s, a[int((m + 1) / 2)], n, m, bad ? " (some requests failed)" : ""
	}
    }' "$dir/res" | sort
