#!/bin/sh
# make test: the whole suite, as root (the kernel tests attach real programs).
# Ends with one line: "N passed, N failed, N skipped".
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
	echo "make test: the kernel tests load BPF programs; run as root (sudo make test)" >&2
	exit 1
fi
# Agents must reach the tree's scripts whatever the clone's location.
[ -n "${AG_TREE_VIEW:-}" ] || {
	export AG_TREE_VIEW=1
	exec scripts/reachable.sh scripts/test.sh "$@"
}
# The end-to-end peers (pinned npm packages) go into the build directory;
# without them their tests skip and say why, the rest still runs.
scripts/e2e-deps.sh "${BUILD:-build}" || echo "make test: MCP peers not installed; their tests skip" >&2
exec "${BUILD:-build}/test_progs" "$@"
