#!/bin/sh
# Run one varnishtest story against the real edged:
#   tests/vtc/run.sh tests/vtc/b00001.vtc
# Picks two free loopback ports and passes them in as ${edge_port} and
# ${admin_port}, with ${edged} the binary under test (EDGED, default
# ./edged) and ${origin_py} the scriptable test origin.
set -eu
vtc=$1
here=$(cd "$(dirname "$0")" && pwd)
edged=${EDGED:-$(pwd)/edged}
# Without varnishtest (an optional test tool) the story is skipped, with
# the reason, as automake's 77; it is not a failure of edged.
command -v varnishtest >/dev/null 2>&1 || {
	echo "SKIP: varnishtest not found (tools/deps.sh --test installs varnish)"
	exit 77
}
ports=$(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
')
set -- $ports
exec varnishtest -t 120 \
	-D edged="$edged" \
	-D edge_port="$1" -D admin_port="$2" \
	-D origin_py="$here/../origin/origin.py" \
	"$vtc"
