#!/usr/bin/env bash
# make run: a demo instance of agentgate, end to end, in well under a minute.
#
# An MCP tool server (the reference server-everything) and a plain HTTP
# service on 127.0.0.1, the daemon with policies/demo.json, and agents
# started with agentgatectl run: an MCP client (the official SDK) that
# lists tools (filtered), makes a governed call and a call the allow-list
# refuses; a plain call relayed to an allowed pass-through destination; a
# call to an address the configuration denies; three attempts to get
# around the gateway.  Then agentgatectl status and the signed audit trail
# of all of it.  Only loopback addresses are used.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
	echo "make run: the demo loads BPF programs; run it as root (sudo make run)" >&2
	exit 1
fi
# Agents must reach the tree's scripts whatever the clone's location.
[ -n "${AG_TREE_VIEW:-}" ] || {
	export AG_TREE_VIEW=1
	exec scripts/reachable.sh scripts/demo.sh "$@"
}

INSTANCE=agentgate-demo
BUILD=${BUILD:-build}
CTL="$BUILD/agentgatectl --instance $INSTANCE"
WORK=$(mktemp -d /tmp/agentgate-demo.XXXXXX)
MCP_PORT=18090
TOOL_PORT=18091
LOG=$WORK/agentgated.log
TOOL_PID=
MCP_PID=
DAEMON_PID=

cleanup() {
	[ -n "$TOOL_PID" ] && kill "$TOOL_PID" 2>/dev/null || true
	[ -n "$MCP_PID" ] && kill "$MCP_PID" 2>/dev/null || true
	$CTL uninstall >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# The agent's view, indented.
agent() { $CTL run --agent demo -- bash -c "$1" 2>&1 | sed 's/^/   agent| /' || true; }

# A leftover from an interrupted demo would be adopted; start clean.
$CTL uninstall >/dev/null 2>&1 || true

# The MCP peers are pinned npm packages, installed into the build directory.
scripts/e2e-deps.sh "$BUILD"
export AGENTGATE_E2E_DIR="$PWD/$BUILD/e2e"

step "An MCP tool server on 127.0.0.1:$MCP_PORT (@modelcontextprotocol/server-everything)"
node selftests/e2e/everything.mjs --port "$MCP_PORT" --mode streamableHttp >"$WORK/mcp.out" 2>&1 &
MCP_PID=$!
for _ in $(seq 100); do
	grep -q READY "$WORK/mcp.out" && break
	sleep 0.1
done

step "A plain HTTP service on 127.0.0.1:$TOOL_PORT (it prints who connected to it)"
node -e '
require("http").createServer((req, res) => {
	console.log(`   tool | ${req.method} ${req.url} from ${req.socket.remoteAddress}:${req.socket.remotePort}`);
	res.end(JSON.stringify({ tool: "weather", result: "sunny" }) + "\n");
}).listen('$TOOL_PORT', "127.0.0.1");' &
TOOL_PID=$!

step "agentgated --instance $INSTANCE --config policies/demo.json"
cat policies/demo.json
"$BUILD/agentgated" --instance "$INSTANCE" --config policies/demo.json \
	--state-dir "$WORK/state" --foreground 2>"$LOG" &
DAEMON_PID=$!
for _ in $(seq 100); do
	$CTL status >/dev/null 2>&1 && break
	sleep 0.05
done
sleep 0.2

step "1. An MCP agent (the official SDK client) uses the tool server at its own URL"
echo "   It lists the tools (the gateway filters the list to the agent's allow-list),"
echo "   calls echo (allowed: forwarded), get-tiny-image (not allowed: refused by the"
echo "   gateway, never reaching the server), and echo again with an e-mail address and"
echo "   a cloud access key in it, which the output rules mask in the result."
$CTL run --agent demo -- node selftests/e2e/agent.mjs --url "http://127.0.0.1:$MCP_PORT/mcp" \
	--steps initialize,list,call,call,call --call echo --args '{"message":"hello from the demo agent"}' \
	--call get-tiny-image --args '{}' \
	--call echo --args '{"message":"mail ada@example.org the key AKIAIOSFODNN7EXAMPLE"}' \
	2>&1 | sed 's/^/   agent| /' || true
for _ in $(seq 50); do
	grep -q 'event=mcp_conn ' "$LOG" && break
	sleep 0.05
done
grep 'event=mcp_conn ' "$LOG" | tail -1 | sed 's/^/   daemon| /'
echo "   The tools the gateway has seen, by definition hash: a server that changes one"
echo "   later gets it hidden and refused until 'agentgatectl tools approve'."
$CTL --state-dir "$WORK/state" tools | sed 's/^/   /'

step "2. The agent calls a plain HTTP service it may reach: transparently relayed"
agent "curl -sS http://127.0.0.1:$TOOL_PORT/forecast"
# The daemon logs a connection when it closes.
for _ in $(seq 50); do
	grep -q 'event=conn ' "$LOG" && break
	sleep 0.05
done
echo "   daemon| $(grep 'event=conn ' "$LOG" | tail -1)"
echo "   (curl connected to 127.0.0.1:$TOOL_PORT and getpeername says so; the kernel sent it"
echo "    to agentgated, which relayed it: the tool's peer is the daemon's socket)"

step "3. The agent calls 127.0.0.2:9000, which the configuration denies"
agent "curl -sS --max-time 2 http://127.0.0.2:9000/admin"

step "4. Bypass attempts"
echo "   a) DNS-over-UDP to a server that is not the configured resolver:"
agent "echo query > /dev/udp/127.0.0.1/53 && echo sent || echo 'refused by the kernel'"
echo "   b) a fresh user and network namespace, to get away from the gateway:"
agent "unshare -Urn bash -c 'exec 3<>/dev/tcp/127.0.0.1/$TOOL_PORT' 2>&1 || echo 'refused by the kernel'"
echo "   c) straight to the gateway's port:"
agent "exec 3<>/dev/tcp/127.0.0.1/15090 2>&1 || echo 'refused by the kernel'"

step "agentgatectl status"
$CTL status || true

step "agentgatectl agents"
$CTL agents

step "The audit trail: every connection, decision and refusal, hash-chained and signed"
# Stopped first, so the log ends with a signed checkpoint over every record.
kill -TERM "$DAEMON_PID"
wait "$DAEMON_PID" || true
AUDIT="$BUILD/agentgatectl audit"
$AUDIT query "$WORK/state/audit.log" | sed 's/^/   /'
echo
$AUDIT verify --pubkey "$WORK/state/audit.key" "$WORK/state/audit.log" 2>&1 | sed 's/^/   /'

step "One edited byte in a copy of the log, and the verifier says where"
sed "s/\"dst\":\"127.0.0.1:$TOOL_PORT\"/\"dst\":\"127.0.0.1:$((TOOL_PORT + 1))\"/" \
	"$WORK/state/audit.log" >"$WORK/edited.log"
$AUDIT verify --pubkey "$WORK/state/audit.key" "$WORK/edited.log" 2>&1 | sed 's/^/   /' || true
