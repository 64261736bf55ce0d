#!/bin/sh
# One command from a fresh Debian 12 machine to a running node: installs
# what is missing, builds, and starts edged on 127.0.0.1:8080 in front of
# the demo origin on 127.0.0.1:8090 (admin listener on 127.0.0.1:8081).
# Run it again to rebuild and restart; tools/quickstart.sh --stop stops both.
set -eu
cd "$(dirname "$0")/.."
run=${EDGED_DEMO_DIR:-/tmp/edged-demo}
mkdir -p "$run"

stop() {
	for name in edged origin; do
		if [ -s "$run/$name.pid" ]; then
			kill "$(cat "$run/$name.pid")" 2>/dev/null || true
			rm -f "$run/$name.pid"
		fi
	done
	sleep 0.5
}
stop
[ "${1:-}" = "--stop" ] && exit 0

tools/deps.sh
[ -x configure ] || ./autogen.sh
[ -f Makefile ] || ./configure
make -j"$(nproc)"

python3 tests/origin/origin.py --listen 127.0.0.1:8090 \
	>"$run/origin.log" 2>&1 &
echo $! >"$run/origin.pid"
rm -f "$run/ready"
./edged --config conf/edged.conf --listen 127.0.0.1:8080 \
	--origin http://127.0.0.1:8090 --admin-listen 127.0.0.1:8081 \
	--access-log "$run/access.log" --error-log "$run/error.log" \
	--cache-dir "$run/cache" \
	--ready-file "$run/ready" &
echo $! >"$run/edged.pid"
i=0
until [ -s "$run/ready" ]; do
	i=$((i + 1))
	if [ $i -gt 100 ]; then
		echo "edged did not start; see $run/error.log" >&2
		exit 1
	fi
	sleep 0.1
done
curl -s http://127.0.0.1:8080/ | sed -n '1,12p'
cat <<MSG

edged is serving on http://127.0.0.1:8080/ in front of the demo origin.
  curl -i 'http://127.0.0.1:8080/obj/demo?size=2048&ttl=60'
                                            a 2 KiB object, cached for 60 s:
                                            run it twice, see Cache-Status
  curl -s http://127.0.0.1:8081/stats                counters
  logs: $run/access.log $run/error.log
  stop: tools/quickstart.sh --stop
MSG
