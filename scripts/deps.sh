#!/bin/sh
# Installs the Debian packages agentgate needs to build and test, when missing.
# Used by make test, make run and make bench; a no-op once everything is there.
set -eu

pkgs="clang bpftool libbpf-dev libxdp-dev liburing-dev libjansson-dev libssl-dev dpkg-dev systemd \
libelf-dev zlib1g-dev pkg-config iproute2 make gcc curl util-linux openssl python3 libhiredis-dev"
# "deps.sh test" (make test) adds Debian's prometheus: promtool and the server
# test_metrics scrapes the daemon with.  About 20 MB to download but 320 MB
# installed with its web UI's JavaScript, so make run and make bench go without.
# test_fleet runs its own redis-server (a unix socket and a free loopback
# port, a temporary directory); the system one the package may start on
# 127.0.0.1:6379 is neither used nor touched.  Debian's rsyslog with its
# OpenSSL driver too: test_audit_ship runs its own rsyslogd as the audit
# collector (never the system's).
[ "${1:-}" = test ] && pkgs="$pkgs prometheus redis-server rsyslog rsyslog-openssl"

missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing="$missing $p"
done
# The demo's tool server and the end-to-end peers run on Node.js; the
# machine may carry its own build, so only a missing node is installed, and
# one older than 20 (Debian 12 has 18) is joined by a newer one (node.sh).
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
here=$(dirname "$0")
[ -z "$missing" ] && exec "$here/node.sh"

if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing packages:$missing; run as root (sudo make ...) to install them" >&2
	exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
# A system rsyslogd that the install started would take /dev/log and the
# tests' syslog traffic: stop the service we brought, not one that was there.
case " $missing " in
*" rsyslog "*)
	systemctl disable --now rsyslog.service syslog.socket >/dev/null 2>&1 ||
		service rsyslog stop >/dev/null 2>&1 || true
	;;
esac
exec "$here/node.sh"
