#!/usr/bin/env bash
# Installs the pinned end-to-end MCP peers (selftests/e2e/package.json and its
# package-lock.json) into ${BUILD_DIR:-build}/e2e/node_modules, never into the
# source tree. `npm ci` runs only when node_modules is missing or the lock file
# changed since the last install (a stamp file holds the sha256 of package.json
# + package-lock.json), so a re-run on an up-to-date tree is a no-op that takes
# a fraction of a second.
#
# Usage: scripts/e2e-deps.sh [BUILD_DIR]     (BUILD_DIR defaults to $BUILD_DIR or "build")
# Prints exactly one line saying what it did; exit 1 when node/npm are missing
# or the install fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$here/../selftests/e2e"
build="${1:-${BUILD_DIR:-build}}"
dest="$build/e2e"

for tool in node npm sha256sum; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "e2e-deps: '$tool' not found; install Node.js >= 20 with npm (scripts/deps.sh does) to run the end-to-end tests" >&2
		exit 1
	fi
done
major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$major" -lt 20 ]; then
	echo "e2e-deps: Node.js >= 20 required, found $(node -v)" >&2
	exit 1
fi
for f in package.json package-lock.json; do
	[ -f "$src/$f" ] || { echo "e2e-deps: missing $src/$f" >&2; exit 1; }
done

mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"
stamp="$dest/.lock.sha256"
want="$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"

if [ -d "$dest/node_modules" ] && [ "$want" = "$have" ] &&
	cmp -s "$src/package-lock.json" "$dest/package-lock.json"; then
	echo "e2e-deps: up to date in $dest (lock ${want:0:12})"
	exit 0
fi

cp "$src/package.json" "$src/package-lock.json" "$dest/"
rm -f "$stamp"
start=$(date +%s)
log="$dest/npm-ci.log"
# npm ci removes any existing node_modules first and installs exactly the lock.
if ! (cd "$dest" && timeout 600 npm ci --no-audit --no-fund --loglevel=error >"$log" 2>&1); then
	echo "e2e-deps: npm ci failed in $dest (see $log):" >&2
	tail -n 20 "$log" >&2
	exit 1
fi
echo "$want" >"$stamp"
echo "e2e-deps: installed $(grep -c '"node_modules/' "$dest/package-lock.json") packages into $dest/node_modules in $(($(date +%s) - start))s (lock ${want:0:12})"
