#!/bin/sh
# Install what building and testing edged needs on Debian 12, skipping
# what is already there.  Runs apt-get as root (or through sudo).
#   tools/deps.sh          build dependencies
#   tools/deps.sh --test   build and test dependencies
#   tools/deps.sh --package   build and Debian packaging dependencies
#                          (dpkg-buildpackage, lintian, and debootstrap for
#                          tools/package-test.sh)
set -eu
pkgs="build-essential autoconf automake pkg-config libevent-dev
libcurl4-openssl-dev libssl-dev liblmdb-dev zlib1g-dev libbrotli-dev
libjansson-dev libxxhash-dev libnghttp2-dev libhiredis-dev libsystemd-dev
curl python3 ca-certificates"
if [ "${1:-}" = "--test" ]; then
	# varnishtest runs the integration stories; brotli checks variants;
	# chromium loads the dashboard; openssl makes the TLS tests' CA;
	# nghttp2-client (nghttp, h2load) and python3-h2 speak HTTP/2;
	# redis-server runs the purge bus stories (each its own, no service);
	# strace counts edged's system calls in the stories about them
	# (accept, first read, write turns; skipped where it cannot attach);
	# clang and libclang-rt-dev (libFuzzer, only recommended by clang) build
	# the fuzz smoke run; prometheus brings promtool, which checks
	# contrib/prometheus/ (19 MB to download, 94 MB installed: a third of
	# chromium; its service is not used).
	pkgs="$pkgs varnish brotli procps chromium fonts-liberation openssl
nghttp2-client python3-h2 redis-server strace clang libclang-rt-dev prometheus"
fi
if [ "${1:-}" = "--package" ]; then
	pkgs="$pkgs debhelper dpkg-dev fakeroot lintian debootstrap systemd"
fi
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
	SUDO=""
else
	SUDO=sudo
fi
echo "installing:$missing"
$SUDO apt-get update -qq
# Installing varnish (for varnishtest) must not start a varnishd service.
policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
	policy=/usr/sbin/policy-rc.d
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee $policy >/dev/null
	$SUDO chmod +x $policy
fi
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
	--no-install-recommends $missing >/dev/null
[ -n "$policy" ] && $SUDO rm -f "$policy"
exit 0
