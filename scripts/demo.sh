#!/usr/bin/env bash
# make run: a demo instance of agentgate, end to end, in well under a minute.
#
# An MCP tool server (the reference server-everything) behind a logging
# proxy that shows what reaches it, and a plain HTTP service, on 127.0.0.1;
# the daemon with policies/demo.json, whose MCP decisions come from the
# Cedar policy set policies/demo/, plus a credential for the tool server;
# and agents started with agentgatectl run: an MCP client (the official
# SDK) that lists tools (filtered), makes governed calls, one the policy
# forbids and one it escalates, which the demo approves as an operator
# would from a second terminal; a request whose Authorization the gateway
# adds; a plain call relayed to an allowed pass-through destination; a call
# to an address the configuration denies; a REST API (json-server) governed
# as an HTTP service, one request allowed and one denied; three attempts to
# get around the gateway.  Then agentgatectl status and the signed audit trail of all of
# it.  Only loopback addresses are used.  AG_DEMO_KEEP=1 keeps the work
# directory (the daemon's log, the audit trail, what the tool server saw).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
	echo "make run: the demo loads BPF programs; run it as root (sudo make run)" >&2
	exit 1
fi
# The build directory, relative to the tree when it is in it: agents read
# the MCP peers in it through the view below.
BUILD=${BUILD:-build}
case $BUILD in "$PWD"/*) BUILD=${BUILD#"$PWD"/} ;; esac
export BUILD
# Agents must reach the tree's scripts whatever the clone's location.
[ -n "${AG_TREE_VIEW:-}" ] || {
	export AG_TREE_VIEW=1
	exec scripts/reachable.sh scripts/demo.sh "$@"
}

INSTANCE=agentgate-demo
CTL="$BUILD/agentgatectl --instance $INSTANCE"
MCP_PORT=18090
TOOL_PORT=18091
PROXY_PORT=18092
GATEWAY_PORT=15090

# Another demo (or anything else) on the demo's fixed ports: say so and stop
# before touching the instance, which a running demo owns.
for port in $MCP_PORT $TOOL_PORT $PROXY_PORT $GATEWAY_PORT; do
	if [ -n "$(ss -Hltn "sport = :$port")" ]; then
		echo "make run: 127.0.0.1:$port is in use (another make run?); the demo needs ports" \
			"$MCP_PORT, $TOOL_PORT, $PROXY_PORT and $GATEWAY_PORT" >&2
		exit 1
	fi
done

WORK=$(mktemp -d /tmp/agentgate-demo.XXXXXX)
LOG=$WORK/agentgated.log
SEEN=$WORK/upstream.jsonl
PIDS=()

cleanup() {
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	$CTL uninstall >/dev/null 2>&1 || true
	[ -n "${AG_DEMO_KEEP:-}" ] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT
# Killed (by timeout, ^C): exit, so that the cleanup runs.
trap 'exit 143' TERM INT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# The agent's view, indented.
agent() { $CTL run --agent demo -- bash -c "$1" 2>&1 | sed 's/^/   agent| /' || true; }
# What an operator types in a second terminal, and what it prints.
operator() {
	echo "   operator\$ agentgatectl --instance $INSTANCE $*"
	$CTL "$@" 2>&1 | sed 's/^/   operator| /' || true
}
# Waits up to 5 s for the daemon's log to have a line matching $1.
await_log() {
	for _ in $(seq 100); do
		grep -q "$1" "$LOG" && return 0
		sleep 0.05
	done
}
# Starts a server in the background, waits up to 10 s for its READY line.
serve() {
	local out=$1
	shift
	"$@" >"$out" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 100); do
		grep -q READY "$out" && return 0
		sleep 0.1
	done
	echo "make run: $* did not start:" >&2
	cat "$out" >&2
	exit 1
}

# A leftover from an interrupted demo would be adopted; start clean.
$CTL uninstall >/dev/null 2>&1 || true

# The MCP peers are pinned npm packages, installed into the build directory.
scripts/e2e-deps.sh "$BUILD"
case $BUILD in /*) AGENTGATE_E2E_DIR=$BUILD/e2e ;; *) AGENTGATE_E2E_DIR=$PWD/$BUILD/e2e ;; esac
export AGENTGATE_E2E_DIR

step "An MCP tool server on 127.0.0.1:$MCP_PORT (@modelcontextprotocol/server-everything)"
serve "$WORK/mcp.out" node selftests/e2e/everything.mjs --port "$MCP_PORT" --mode streamableHttp
echo "   In front of it, on 127.0.0.1:$PROXY_PORT, a proxy that logs the headers of every"
echo "   request the server receives (selftests/e2e/capture_proxy.mjs)."
serve "$WORK/proxy.out" node selftests/e2e/capture_proxy.mjs --listen "$PROXY_PORT" \
	--target "$MCP_PORT" --log "$SEEN"

step "A plain HTTP service on 127.0.0.1:$TOOL_PORT (it prints who connected to it)"
node -e '
require("http").createServer((req, res) => {
	console.log(`   tool | ${req.method} ${req.url} from ${req.socket.remoteAddress}:${req.socket.remotePort}`);
	res.end(JSON.stringify({ tool: "weather", result: "sunny" }) + "\n");
}).listen('$TOOL_PORT', "127.0.0.1");' &
PIDS+=($!)

step "The configuration: policies/demo.json"
cat policies/demo.json
step "The policy set it names (\"policy\"): policies/demo/*.cedar"
cat policies/demo/*.cedar

# The tool server's credential: a secret file, root's and 0600, that only
# the daemon reads.  The agents never get it.
(umask 077 && printf 'demo-%s\n' "$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')" \
	>"$WORK/upstream.token")
node -e '
const [src, policies, upstream, out] = process.argv.slice(1);
const c = JSON.parse(require("fs").readFileSync(src, "utf8"));
c.policy.dir = policies;
c.tool_servers[0].upstream = upstream;
c.tool_servers[0].credential = { type: "bearer", secret_file: "upstream.token" };
require("fs").writeFileSync(out, JSON.stringify(c, null, "\t") + "\n");' \
	policies/demo.json "$PWD/policies/demo" "http://127.0.0.1:$PROXY_PORT/mcp" \
	"$WORK/agentgate.json"
step "For this run, the tool server also gets a credential"
echo "   The demo writes $WORK/agentgate.json: policies/demo.json with, for the tool server,"
echo '     "upstream": "http://127.0.0.1:'$PROXY_PORT'/mcp"   (the server, through the logging proxy)'
echo '     "credential": {"type": "bearer", "secret_file": "upstream.token"}'
echo "   upstream.token, next to it, is a random token (root's, mode 0600): the gateway sends"
echo "   it to the tool server as 'Authorization: Bearer <token>'; no agent ever sees it."

# ---- HTTP service (agentgate.conf(5) "http_services"): set-up ----------------
# A real REST API (json-server) that agents reach at its own URL, governed
# request by request; the requests themselves are step 5b.
HTTP_PORT=18093
if [ -n "$(ss -Hltn "sport = :$HTTP_PORT")" ]; then
	echo "make run: 127.0.0.1:$HTTP_PORT is in use (another make run?)" >&2
	exit 1
fi
step "A REST API on 127.0.0.1:$HTTP_PORT (json-server), governed as an HTTP service"
printf '{"todos": [{"id": 1, "title": "write the report"}]}\n' >"$WORK/db.json"
node selftests/e2e/json_server.mjs --db "$WORK/db.json" --log "$WORK/api.jsonl" \
	--port "$HTTP_PORT" >"$WORK/api.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
	grep -q '"port"' "$WORK/api.out" && break
	sleep 0.1
done
mkdir -p "$WORK/policies"
cp policies/demo/*.cedar "$WORK/policies/"
cat >"$WORK/policies/10-todos.cedar" <<'CEDAR'
// The REST API: the demo agent may read todos, nothing else.
@id("demo-todos-read")
permit (
    principal == Agent::"demo",
    action == Action::"http",
    resource in Server::"todos"
)
when { context.method == "GET" };
CEDAR
node -e '
const [file, port, policies] = process.argv.slice(1);
const c = JSON.parse(require("fs").readFileSync(file, "utf8"));
c.policy.dir = policies;
c.http_services = [{
	name: "todos",
	match: { addresses: ["127.0.0.1"], ports: [Number(port)] },
	upstream: `http://127.0.0.1:${port}`,
	routes: [
		{ name: "get", method: "GET", path: "/todos/{id}" },
		{ name: "remove", method: "DELETE", path: "/todos/{id}" },
	],
}];
require("fs").writeFileSync(file, JSON.stringify(c, null, "\t") + "\n");' \
	"$WORK/agentgate.json" "$HTTP_PORT" "$WORK/policies"
echo '   agentgate.json gets "http_services": [{"name": "todos", "match": 127.0.0.1:'$HTTP_PORT','
echo '   "routes": GET and DELETE /todos/{id}}], and the policy set one more policy:'
sed 's/^/   /' "$WORK/policies/10-todos.cedar"
# ---- end of the HTTP service's set-up ---------------------------------------
# ---- hosted stdio server (tool_servers[].command), 1/2: its configuration ----
# The gateway runs the reference filesystem server, a stdio program, itself;
# agents reach it at 127.0.0.1:$FILES_PORT and are governed as with any tool
# server.  It runs as a uid of its own: it must be able to reach its files.
FILES_PORT=18095
FILES_BRIDGE=18096
chmod 0711 "$WORK"
mkdir -m 0755 "$WORK/files"
printf 'Q3 revenue: 4.2M\n' >"$WORK/files/report.txt"
mkdir -p "$WORK/policies"
cp policies/demo/*.cedar "$WORK/policies/"
cat >"$WORK/policies/10-files.cedar" <<'EOF'
// The hosted filesystem server: the demo agent lists and reads, never writes.
@id("demo-files")
permit (
    principal == Agent::"demo",
    action in [Action::"list", Action::"call"],
    resource in Server::"files"
);

@id("no-file-writes")
@reason("the demo agent reads files, it does not write them")
forbid (principal, action == Action::"call", resource == Tool::"files/write_file");
EOF
node -e '
const [f, pol, node, js, dir, port, bridge] = process.argv.slice(1);
const c = JSON.parse(require("fs").readFileSync(f, "utf8"));
c.policy.dir = pol;
c.tool_servers.push({ name: "files", match: { addresses: ["127.0.0.1"], ports: [+port] },
	upstream: `http://127.0.0.1:${bridge}/mcp`,
	command: { argv: [node, js, dir], cwd: dir } });
require("fs").writeFileSync(f, JSON.stringify(c, null, "\t") + "\n");' \
	"$WORK/agentgate.json" "$WORK/policies" "$(command -v node)" \
	"$AGENTGATE_E2E_DIR/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js" \
	"$WORK/files" "$FILES_PORT" "$FILES_BRIDGE"
step "The gateway also hosts a stdio MCP server (tool_servers[].command)"
echo "   $WORK/agentgate.json also has tool server \"files\": the reference filesystem server"
echo "   (a stdio program), which agentgated starts itself on the first request and serves at"
echo "   127.0.0.1:$FILES_BRIDGE; agents use it at 127.0.0.1:$FILES_PORT, governed like any other."
echo "   It runs as a uid of its own in a cgroup below agent \"files\", which no rule lets"
echo "   connect anywhere. Its policies, $WORK/policies/10-files.cedar:"
sed 's/^/   /' "$WORK/policies/10-files.cedar"
# ---- end of the hosted stdio server, 1/2 ----

step "agentgated --instance $INSTANCE --config $WORK/agentgate.json"
"$BUILD/agentgated" --instance "$INSTANCE" --config "$WORK/agentgate.json" \
	--state-dir "$WORK/state" --foreground 2>"$LOG" &
DAEMON_PID=$!
PIDS+=($DAEMON_PID)
for _ in $(seq 100); do
	$CTL status >/dev/null 2>&1 && break
	sleep 0.05
done
sleep 0.2
grep 'event=policy ' "$LOG" | sed 's/^/   daemon| /'

URL=http://127.0.0.1:$MCP_PORT/mcp
step "1. An MCP agent (the official SDK client) uses the tool server at its own URL"
echo "   It lists the tools: the gateway shows it the three that demo-sees permits. It calls"
echo "   echo (demo-echo permits it: forwarded), get-tiny-image (listed, but the forbid"
echo "   no-images refuses it: the call never reaches the server), get-sum with 2 + 3"
echo "   (demo-small-sums: a condition on the call's arguments), and echo again with an"
echo "   e-mail address and a cloud access key in it, which the output rules mask."
$CTL run --agent demo -- node selftests/e2e/agent.mjs --url "$URL" \
	--steps initialize,list,call,call,call,call \
	--call echo --args '{"message":"hello from the demo agent"}' \
	--call get-tiny-image --args '{}' --call get-sum --args '{"a":2,"b":3}' \
	--call echo --args '{"message":"mail ada@example.org the key AKIAIOSFODNN7EXAMPLE"}' \
	2>&1 | sed 's/^/   agent| /' || true
await_log 'event=mcp_conn ' || true
grep 'event=mcp_conn ' "$LOG" | tail -1 | sed 's/^/   daemon| /'
echo "   The tools the gateway has seen, by definition hash: a server that changes one"
echo "   later gets it hidden and refused until 'agentgatectl tools approve'."
$CTL --state-dir "$WORK/state" tools | sed 's/^/   /'

step "2. An escalation: the agent asks for 120 + 7, which needs a person's approval"
echo "   demo-large-sums carries @escalate: the gateway holds the call, and the agent waits."
$CTL run --agent demo -- node selftests/e2e/agent.mjs --url "$URL" --steps initialize,call \
	--call get-sum --args '{"a":120,"b":7}' >"$WORK/held.out" 2>&1 &
HELD_PID=$!
PIDS+=($HELD_PID)
ID=
for _ in $(seq 100); do
	ID=$($CTL approvals --json 2>/dev/null | sed -n 's/.*"id":\([0-9]*\).*/\1/p')
	[ -n "$ID" ] && break
	sleep 0.1
done
echo "   Meanwhile, in another terminal, an operator sees the held call and approves it:"
operator approvals
if [ -n "$ID" ]; then
	operator approve "$ID" --by alice
else
	echo "   (no call is held: the escalation did not happen)"
fi
# The agent's own timeout (20 s) bounds this wait.
wait "$HELD_PID" || true
sed 's/^/   agent| /' "$WORK/held.out"

step "3. The tool server's credential: added by the gateway, never seen by the agent"
before=$(wc -l <"$SEEN")
echo "   The agent sends an MCP initialize with curl; the headers it sends (curl -v):"
INIT='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}'
agent "curl -sS -v --max-time 5 -H 'Content-Type: application/json' \
	-H 'Accept: application/json, text/event-stream' --data '$INIT' $URL 2>&1 >/dev/null |
	grep -E '^(> |< HTTP)' | tr -d '\r'"
echo "   What the tool server received for it (the proxy's log; the token masked here):"
node scripts/demo-upstream.mjs "$SEEN" "$WORK/upstream.token" "$before"

step "4. The agent calls a plain HTTP service it may reach: transparently relayed"
agent "curl -sS http://127.0.0.1:$TOOL_PORT/forecast"
# The daemon logs a connection when it closes.
await_log 'event=conn ' || true
echo "   daemon| $(grep 'event=conn ' "$LOG" | tail -1)"
echo "   (curl connected to 127.0.0.1:$TOOL_PORT and getpeername says so; the kernel sent it"
echo "    to agentgated, which relayed it: the tool's peer is the daemon's socket)"

step "5. The agent calls 127.0.0.2:9000, which the configuration denies"
agent "curl -sS --max-time 2 http://127.0.0.2:9000/admin"

# ---- HTTP service: an allowed and a denied request --------------------------
step "5b. The agent uses the REST API at its own URL; the gateway decides each request"
echo "   GET /todos/1 (demo-todos-read permits it: forwarded):"
agent "curl -sS --max-time 5 http://127.0.0.1:$HTTP_PORT/todos/1; echo"
echo "   DELETE /todos/1 (no policy permits it: refused, json-server never sees it):"
agent "curl -sS --max-time 5 -w ' (HTTP %{http_code})\n' -X DELETE http://127.0.0.1:$HTTP_PORT/todos/1"
echo "   What json-server received: $(grep -c '"method"' "$WORK/api.jsonl") request(s)," \
	"$(grep -c '"DELETE"' "$WORK/api.jsonl") DELETE; todo 1 is still there:" \
	"$(grep -c 'write the report' "$WORK/db.json")"
# ---- end of the HTTP service ------------------------------------------------

step "6. Bypass attempts"
echo "   a) DNS-over-UDP to a server that is not the configured resolver:"
agent "echo query > /dev/udp/127.0.0.1/53 && echo sent || echo 'refused by the kernel'"
echo "   b) a fresh user and network namespace, to get away from the gateway:"
agent "unshare -Urn bash -c 'exec 3<>/dev/tcp/127.0.0.1/$TOOL_PORT' 2>&1 || echo 'refused by the kernel'"
echo "   c) straight to the gateway's port:"
agent "exec 3<>/dev/tcp/127.0.0.1/$GATEWAY_PORT 2>&1 || echo 'refused by the kernel'"

# ---- hosted stdio server (tool_servers[].command), 2/2: an agent uses it ----
step "7. The agent uses the stdio server the gateway hosts (server-filesystem)"
echo "   It lists the tools, reads report.txt (demo-files permits it) and tries write_file"
echo "   (no-file-writes forbids it: the server never sees the call)."
$CTL run --agent demo -- node selftests/e2e/agent.mjs --url "http://127.0.0.1:$FILES_PORT/mcp" \
	--steps initialize,list,call,call \
	--call read_text_file --args "{\"path\":\"$WORK/files/report.txt\"}" \
	--call write_file --args "{\"path\":\"$WORK/files/report.txt\",\"content\":\"0\"}" \
	2>&1 | sed 's/^/   agent| /' || true
echo "   The server's process, as the daemon logged it (its stderr included):"
grep 'event=hosted ' "$LOG" | sed 's/^/   daemon| /'
# ---- end of the hosted stdio server, 2/2 ----

step "agentgatectl status"
$CTL status || true

step "agentgatectl agents"
$CTL agents

step "The audit trail: every connection, decision and refusal, hash-chained and signed"
echo "   (decision=escalate, then the approval by alice, then the sum's result)"
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
