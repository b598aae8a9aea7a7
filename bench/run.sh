#!/bin/sh
# make bench: every benchmark in bench/, each printing its own figures.
# Run on a quiet machine: the VM's neighbours move absolute numbers, which is
# why each benchmark compares its variants side by side in the same run.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
	echo "make bench: the benchmarks attach BPF programs; run as root (sudo make bench)" >&2
	exit 1
fi
for b in "${BUILD:-build}"/bench/*; do
	[ -x "$b" ] || continue
	# A helper, not a benchmark: mcp_bench.sh runs it.
	[ "$(basename "$b")" = mcp_upstream ] && continue
	echo "== $(basename "$b")"
	"$b"
	echo
done
echo "== mcp_bench.sh"
bash bench/mcp_bench.sh
echo
echo "== relay_bench.sh"
bash bench/relay_bench.sh
