#!/bin/sh
# reachable.sh CMD [ARGS...]: runs CMD (as root) in this tree, seen from a
# path that agents can reach.
#
# Agents run under uids of their own (agentgatectl run), so the scripts and
# packages the demo and the tests hand them must be readable by any user.
# A clone in a home directory such as /root (0700) is not, and loosening the
# home would expose everything else in it.  Instead CMD runs in a mount
# namespace of its own in which the tree is also bind-mounted at
# /run/agentgate-tree.PID (0755): a path through that mount never crosses
# the home directory, so agents read the tree's world-readable files there
# and nothing else changes.  The mount goes with the namespace when CMD ends;
# mounts made outside still propagate in (slave).
# When the tree is reachable already (a clone in /srv or /tmp), CMD simply
# runs in place.
set -eu
cd "$(dirname "$0")/.."

reachable() {
	setpriv --reuid=65534 --regid=65534 --clear-groups test -r "$1/Makefile" 2>/dev/null
}

if reachable "$PWD"; then
	exec "$@"
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "reachable: $PWD is not readable by other users, and only root can mount a view of it" >&2
	exit 1
fi
# Kernel objects are pinned in bpffs: mounted here, outside the namespace,
# so that pins outlive CMD as they would without it (agentgated mounts it
# the same way, mode 0700, when it is missing).
mountpoint -q /sys/fs/bpf || mount -t bpf -o mode=0700 bpf /sys/fs/bpf
view=/run/agentgate-tree.$$
mkdir -m 0755 "$view"
trap 'rmdir "$view" 2>/dev/null || true' EXIT INT TERM
status=0
unshare --mount --propagation slave sh -c '
	mount --bind "$1" "$2" || exit 1
	cd "$2"
	if ! setpriv --reuid=65534 --regid=65534 --clear-groups test -r Makefile; then
		echo "reachable: the files of $1 are not world-readable (umask?); agents could not read them" >&2
		exit 1
	fi
	shift 2
	exec "$@"' sh "$PWD" "$view" "$@" || status=$?
exit "$status"
