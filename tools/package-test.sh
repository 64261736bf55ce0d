#!/bin/sh
# The Debian package, end to end (docs/operations.md, "The package test"):
# build it from the committed HEAD with dpkg-buildpackage -us -uc -b, run
# lintian (every tag left must be overridden with its reason), verify the
# units it ships with systemd-analyze, then in a pristine Debian 12 root
# (../shared/tools/fresh.sh; run "fresh.sh prepare" once) install it, start
# edged as its unit would (user edged, CAP_NET_BIND_SERVICE, the shipped
# /etc/edged/edged.conf), fetch through it (a miss, then a hit from
# /var/cache/edged), rotate its logs with the shipped logrotate snippet,
# start it again as root with --user, and remove and purge the package,
# checking that nothing of it is left.  Needs root; takes a few minutes.
#
#   tools/package-test.sh            # FRESH=path/to/fresh.sh to override
# Prints "package-test: PASS" last, or "package-test: FAIL: why".
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
fresh=${FRESH:-$src/../shared/tools/fresh.sh}

fail() {
	echo "package-test: FAIL: $*"
	exit 1
}

[ "$(id -u)" -eq 0 ] || fail "needs root (fresh.sh runs a chroot)"
[ -x "$fresh" ] || fail "no $fresh (set FRESH)"
for t in dpkg-buildpackage dh lintian; do
	command -v $t >/dev/null || fail "no $t: tools/deps.sh --package"
done
work=$(mktemp -d /tmp/edged-pkgtest.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "== build"
git -C "$src" archive --prefix=edged/ HEAD | tar -x -C "$work"
(cd "$work/edged" && dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1 ||
	{ tail -40 "$work/build.log"; fail "dpkg-buildpackage"; }
deb=$(ls "$work"/edged_*_*.deb)

echo "== lintian"
# Warnings and errors fail; informational tags are printed.
lintian --info --display-info --fail-on error,warning \
	"$work"/edged_*.changes || fail "lintian"

echo "== systemd-analyze verify"
mkdir "$work/root"
dpkg-deb -x "$deb" "$work/root"
if command -v systemd-analyze >/dev/null; then
	for u in edged purged; do
		sed -e "s|/usr/sbin/|$work/root/usr/sbin/|g" \
			"$work/root/lib/systemd/system/$u.service" \
			>"$work/$u.service"
	done
	out=$(systemd-analyze verify --man=no "$work/edged.service" \
		"$work/purged.service" 2>&1 | grep '\.service' || true)
	[ -z "$out" ] || { echo "$out"; fail "systemd-analyze verify"; }
else
	echo "(no systemd-analyze: skipped)"
fi

echo "== install, run, remove in a fresh Debian 12 root"
mkdir "$work/shared"
cp "$deb" "$work/shared/edged.deb"
cp "$src/tests/origin/origin.py" "$work/shared/"
# The chroot shares the host's network: ports the host does not use now.
ports=$(python3 -c '
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
set -- $ports
cat >"$work/shared/check.sh" <<EOF
#!/bin/sh
# Runs inside the fresh root, as root.
set -eux
EPORT=$1 OPORT=$2 APORT=$3
EOF
cat >>"$work/shared/check.sh" <<'EOF'
cd /root/shared
# waitfor CMD...: up to 10 s for CMD to succeed.
waitfor() {
	i=0
	until "$@"; do
		i=$((i + 1)); [ $i -lt 100 ] || return 1
		sleep 0.1
	done
}
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends ./edged.deb python3 \
	curl logrotate procps >/dev/null
# What the package left.
test -f /etc/edged/edged.conf
grep -q '^/etc/edged/edged.conf$' /var/lib/dpkg/info/edged.conffiles
getent passwd edged
test "$(stat -c %U /var/cache/edged)" = edged
test "$(stat -c %U /var/log/edged)" = edged
for m in edged.8 edged.conf.5 purged.8; do
	test -f /usr/share/man/man*/$m.gz
done
zcat /usr/share/man/man5/edged.conf.5.gz | grep -q '^\.BI cache_dir '
test -x /usr/bin/edgectl && test -x /usr/sbin/purged
/usr/sbin/edged --version

python3 origin.py --listen "127.0.0.1:$OPORT" >/tmp/origin.log 2>&1 &
OPID=$!
# As the unit: ExecStartPre's check, then User=edged with
# AmbientCapabilities=CAP_NET_BIND_SERVICE; no -c: the default file.
setpriv --reuid=edged --regid=edged --init-groups \
	/usr/sbin/edged -t -c /etc/edged/edged.conf
setpriv --reuid=edged --regid=edged --init-groups \
	--inh-caps=+net_bind_service --ambient-caps=+net_bind_service \
	/usr/sbin/edged --listen "127.0.0.1:$EPORT" \
	--origin "http://127.0.0.1:$OPORT" --admin-listen "127.0.0.1:$APORT" \
	--access-log /var/log/edged/access.log \
	--ready-file /var/cache/edged/ready >/tmp/edged.err 2>&1 &
EPID=$!
waitfor test -s /var/cache/edged/ready || { cat /tmp/edged.err; exit 1; }
grep -q "Uid:.*$(id -u edged)" /proc/$EPID/status
grep -q 'CapEff:.*0000000000000000' /proc/$EPID/status
U="http://127.0.0.1:$EPORT/obj/pkg?size=100000&ttl=60"
curl -fsS -o /tmp/a -D /tmp/h1 "$U"
curl -fsS -o /tmp/b -D /tmp/h2 "$U"
cmp /tmp/a /tmp/b
grep -i '^cache-status:.*fwd=uri-miss' /tmp/h1
grep -i '^cache-status:.*hit' /tmp/h2
test "$(stat -c %U /var/cache/edged/data.mdb)" = edged
curl -fsS "http://127.0.0.1:$APORT/healthz"

# The shipped logrotate snippet: rename, then SIGUSR1 through pkill.
# The access log is written every 200 ms.
waitfor grep -q '/obj/pkg' /var/log/edged/access.log
logrotate -f /etc/logrotate.d/edged
test -f /var/log/edged/access.log.1
waitfor test -f /var/log/edged/access.log
curl -fsS -o /dev/null "http://127.0.0.1:$EPORT/obj/after-rotate?size=10"
waitfor grep -q after-rotate /var/log/edged/access.log
! grep -q after-rotate /var/log/edged/access.log.1
kill -TERM $EPID
wait $EPID
rm -f /var/cache/edged/ready

# Started as root with --user: the same node, the same cache.
/usr/sbin/edged --user edged --listen "127.0.0.1:$EPORT" \
	--origin "http://127.0.0.1:$OPORT" \
	--ready-file /var/cache/edged/ready >/tmp/edged2.err 2>&1 &
EPID=$!
waitfor test -s /var/cache/edged/ready || { cat /tmp/edged2.err; exit 1; }
grep -q "Uid:.*$(id -u edged)" /proc/$EPID/status
curl -fsS -D /tmp/h3 -o /dev/null "$U"
grep -i '^cache-status:.*hit' /tmp/h3
kill -TERM $EPID
wait $EPID
kill $OPID

apt-get remove -y -qq edged >/dev/null
test -f /etc/edged/edged.conf          # a conffile stays until purge
test ! -e /usr/sbin/edged
apt-get purge -y -qq edged >/dev/null
test ! -e /etc/edged
test ! -e /var/cache/edged
test ! -e /var/log/edged
test ! -e /etc/logrotate.d/edged
! getent passwd edged
! dpkg -s edged >/dev/null 2>&1
echo "check.sh: all good"
EOF
chmod +x "$work/shared/check.sh"
"$fresh" run --shared "$work/shared" --timeout 600 "$src" \
	'sh /root/shared/check.sh' || fail "in the fresh root (log above)"
echo "package-test: PASS"
