#!/bin/sh
# Makes sure `node` on PATH is Node.js >= 20, the oldest the demo's tool
# server and the end-to-end MCP peers run on.  Debian 12 ships 18: then the
# pinned official build is installed from the npm registry, where Node.js
# publishes its Linux binaries as the package node-linux-<arch>, into
# $AG_NODE_PREFIX (default /usr/local/lib/agentgate/node), and linked as
# $AG_NODE_LINK (default /usr/local/bin/node, which comes before /usr/bin on
# root's PATH).  An existing file at the link that is not ours is left alone
# and reported.  Prints one line when it installs; silent when node is new
# enough.  Needs npm (scripts/deps.sh installs Debian's).
set -eu

NODE_PIN=20.20.2
NODE_MIN=20
prefix=${AG_NODE_PREFIX:-/usr/local/lib/agentgate/node}
link=${AG_NODE_LINK:-/usr/local/bin/node}

major() {
	"$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0
}

have=$(command -v node || true)
if [ -n "$have" ] && [ "$(major "$have")" -ge "$NODE_MIN" ]; then
	exit 0
fi
case "$(uname -m)" in
x86_64) arch=x64 ;;
aarch64) arch=arm64 ;;
*)
	echo "node: Node.js >= $NODE_MIN required and no build is pinned for $(uname -m); install one" >&2
	exit 1
	;;
esac
pkg=node-linux-$arch
bin=$prefix/node_modules/$pkg/bin/node
if [ ! -x "$bin" ] || [ "$(major "$bin")" -lt "$NODE_MIN" ]; then
	if [ "$(id -u)" -ne 0 ] && [ -z "${AG_NODE_PREFIX:-}" ]; then
		echo "node: Node.js >= $NODE_MIN required, found ${have:-none}; run as root (sudo make ...) to install $pkg@$NODE_PIN" >&2
		exit 1
	fi
	mkdir -p "$prefix"
	# --ignore-scripts: the package is the binary itself; nothing needs to run.
	if ! (cd "$prefix" && timeout 600 npm install --no-save --no-audit --no-fund \
		--ignore-scripts --loglevel=error --prefix "$prefix" "$pkg@$NODE_PIN" >/dev/null); then
		echo "node: installing $pkg@$NODE_PIN into $prefix failed" >&2
		exit 1
	fi
	if [ ! -x "$bin" ] || [ "$(major "$bin")" -lt "$NODE_MIN" ]; then
		echo "node: $pkg@$NODE_PIN installed no working $bin" >&2
		exit 1
	fi
	chmod -R a+rX "$prefix"
fi
if [ -e "$link" ] && [ "$(readlink -f "$link")" != "$(readlink -f "$bin")" ]; then
	echo "node: $link exists and is not $bin; put $(dirname "$bin") first on PATH" >&2
	exit 1
fi
mkdir -p "$(dirname "$link")"
ln -sf "$bin" "$link"
echo "node: ${have:+$("$have" -v) at $have is older than $NODE_MIN; }installed Node.js $("$bin" -v) ($pkg from the npm registry) as $link"
