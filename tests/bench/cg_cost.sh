#!/bin/sh
# Instructions per request, counted by callgrind (exact where this shared
# machine's timings are not): edged with one worker serves a warm-up hit,
# then N requests over one keep-alive connection, twice (N1 and N2); the
# difference divided by N2 - N1 leaves out start-up and shut-down.
#   tests/bench/cg_cost.sh [EDGED] [hit|miss|churn|tls-resume] [N1] [N2]
# hit: one cached 1 KiB object; miss: a new 1 KiB key each request, fetched
# from tests/bench/bench_origin and stored; churn: the hit, each on a new
# connection with Connection: close (so a connection's own cost is in);
# tls-resume: the churn over HTTPS, each connection resuming the session
# of the one before from its newest ticket (BENCH_TLS=1.2 for TLS 1.2,
# default 1.3); every connection after the first must resume.
# BENCH_SIZE: the body size in bytes (default 1024; 102400 prices a hit
# sent from a sealed body with sendfile).
# Loopback only; stops by itself.
# EDGED_ARGS: more edged arguments, word-split (e.g. "--purge-bus
# redis://127.0.0.1:1" to price the purge bus's verdict on hits).
# EDGED=nginx counts nginx instead, for churn and tls-resume: one process
# (master_process off) with the proxy_cache of tests/bench/h2_bench.sh,
# the same certificate kind, client, protocol and cipher (AES-128-GCM).
# CG_KEEP=DIR keeps each run's callgrind profile there (cg-N.out), for
# callgrind_annotate --inclusive=yes.
# CG_SPLIT=1 also prints the instructions per request of the worker
# threads (under worker_main) and of the LMDB writer thread (under
# cache_writer_main): the writer's batches depend on timing and move the
# total by up to about 1,000 instructions a run, the workers' by about
# 100.
set -eu
EDGED=${1:-./edged}
KIND=${2:-hit}
N1=${3:-500}
N2=${4:-2500}
ORIGIN=${BENCH_ORIGIN:-./tests/bench/bench_origin}
command -v valgrind >/dev/null || { echo "valgrind not found" >&2; exit 1; }

. "$(dirname "$0")/bench_lib.sh"

# client PORT N KIND TAG: N GETs on one connection, each response read whole.
client() {
	python3 - "$@" <<'PY'
import os, socket, ssl, sys
port, n, kind, tag = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
tls = kind == "tls-resume"
if tls:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    v = os.environ.get("BENCH_TLS", "1.3")
    ctx.maximum_version = (ssl.TLSVersion.TLSv1_2 if v == "1.2"
                           else ssl.TLSVersion.TLSv1_3)
    ctx.set_alpn_protocols(["http/1.1"])
sess = None
s = None
buf = b""
for i in range(n):
    if s is None or kind in ("churn", "tls-resume"):
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        if tls:
            s = ctx.wrap_socket(s, session=sess)
        buf = b""
    size = int(os.environ.get("BENCH_SIZE", "1024"))
    path = ("/obj/m%d-%s?size=%d" % (i, tag, size) if kind == "miss"
            else "/obj/hot?size=%d" % size)
    close = "Connection: close\r\n" if kind != "hit" and kind != "miss" else ""
    s.sendall(("GET %s HTTP/1.1\r\nHost: a\r\n%s\r\n" % (path, close)).encode())
    while b"\r\n\r\n" not in buf:
        buf += s.recv(65536)
    head, _, rest = buf.partition(b"\r\n\r\n")
    cl = [int(l.split(b":")[1]) for l in head.split(b"\r\n")[1:]
          if l.lower().startswith(b"content-length:")][0]
    while len(rest) < cl:
        rest += s.recv(65536)
    buf = rest[cl:]
    if kind != "hit" and kind != "miss":
        while s.recv(65536):
            pass  # to the server's close
        if tls:
            if i > 0 and not s.session_reused:
                sys.exit("connection %d not resumed" % i)
            sess = s.session  # the newest ticket
        s.close()
PY
}

# nginx_start DIR PORT ORIGIN_PORT: nginx under callgrind in the background
# (its pid in $epid), the ready file written once it answers on PORT.
nginx_start() {
	mkdir -p "$1/nginx/cache"
	ssl=""
	# nginx 1.22 leaves TLS 1.3 out unless asked; edged's first ciphers
	[ "$KIND" = tls-resume ] && ssl="ssl; ssl_protocols TLSv1.2 TLSv1.3" &&
	    ssl="$ssl; ssl_certificate $1/cert.pem; ssl_certificate_key $1/key.pem" &&
	    ssl="$ssl; ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256" &&
	    ssl="$ssl; ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256"
	cat >"$1/nginx.conf" <<NGX
user $(id -un);
master_process off;
daemon off;
pid $1/nginx/nginx.pid;
error_log $1/nginx/error.log;
events { worker_connections 1024; }
http {
	access_log off;
	proxy_cache_path $1/nginx/cache keys_zone=c:8m;
	upstream o { server 127.0.0.1:$3; keepalive 32; }
	server {
		listen 127.0.0.1:$2 $ssl;
		location / {
			proxy_pass http://o;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_cache c;
		}
	}
}
NGX
	valgrind --tool=callgrind --callgrind-out-file="$1/cg.out" \
	    nginx -p "$1/nginx" -c "$1/nginx.conf" >"$1/log" 2>&1 &
	epid=$!
	python3 - "$2" "$1/ready" <<'PY'
import socket, sys, time
for _ in range(300):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1]))).close()
        open(sys.argv[2], "w").write("up\n")
        break
    except OSError:
        time.sleep(0.1)
PY
}

# run N: total instructions of edged serving a warm-up and N requests.
run() {
	d=$(mktemp -d)
	op=$(port)
	ep=$(port)
	listen="--listen 127.0.0.1:$ep"
	if [ "$KIND" = tls-resume ]; then
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		    -nodes -days 2 -subj /CN=localhost -keyout "$d/key.pem" \
		    -out "$d/cert.pem" 2>/dev/null
		listen="--listen-tls 127.0.0.1:$ep --tls-cert $d/cert.pem"
		listen="$listen --tls-key $d/key.pem"
	fi
	"$ORIGIN" "$op" &
	opid=$!
	if [ "$EDGED" = nginx ]; then
		nginx_start "$d" "$ep" "$op"
	else
		# shellcheck disable=SC2086
		valgrind --tool=callgrind --callgrind-out-file="$d/cg.out" \
		    "$EDGED" $listen --origin "http://127.0.0.1:$op" \
		    --threads 1 --log-level warn --cache-dir "$d/cache" \
		    --ready-file "$d/ready" ${EDGED_ARGS:-} >"$d/log" 2>&1 &
		epid=$!
	fi
	i=0
	until [ -s "$d/ready" ]; do
		i=$((i + 1))
		[ $i -gt 300 ] && { kill $epid $opid; exit 1; }
		sleep 0.1
	done
	client "$ep" 1 "$([ "$KIND" = tls-resume ] && echo "$KIND" || echo hit)" warm
	client "$ep" "$1" "$KIND" "$$.$1"
	kill -TERM $epid
	wait $epid || true
	kill $opid
	if [ -n "${CG_SPLIT:-}" ]; then
		callgrind_annotate --auto=no --inclusive=yes "$d/cg.out" |
		    awk '/PROGRAM TOTALS/ {gsub(",", "", $1); t = $1}
			/edge_worker.c:worker_main / && w == "" {
				gsub(",", "", $1); w = $1 }
			/cache_writer.c:cache_writer_main / && c == "" {
				gsub(",", "", $1); c = $1 }
			END {print t, w + 0, c + 0}'
	else
		awk '/^(summary|totals):/ {print $2; exit}' "$d/cg.out"
	fi
	[ -z "${CG_KEEP:-}" ] || cp "$d/cg.out" "$CG_KEEP/cg-$1.out"
	rm -rf "$d"
}

a=$(run "$N1")
b=$(run "$N2")
if [ -n "${CG_SPLIT:-}" ]; then
	# shellcheck disable=SC2086 # three numbers each
	set -- $a $b
	echo "$KIND: $((($4 - $1) / (N2 - N1))) instructions per request," \
	    "workers $((($5 - $2) / (N2 - N1))), writer" \
	    "$((($6 - $3) / (N2 - N1))) ($EDGED)"
	exit 0
fi
echo "$KIND: $(( (b - a) / (N2 - N1) )) instructions per request ($EDGED)"
