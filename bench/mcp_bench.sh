#!/bin/bash
# mcp_bench: MCP tools/call latency and CPU per call through
#   direct   wrk -> tool server
#   nginx    wrk -> nginx (keep-alive reverse proxy, 1 worker) -> tool server
#   mcp      wrk as an agent -> (kernel redirect) agentgated full MCP path
#            (HTTP parse, JSON-RPC, allow-list decision, audit) -> tool server
# side by side in one run, in alternating rounds, with the same tool server
# (build/bench/mcp_upstream) and the same load (wrk, bench/mcp_call.lua).
#
#	bash bench/mcp_bench.sh		(as root, after make)
#
# Environment: MCP_BENCH_SECONDS (5) per measurement, MCP_BENCH_ROUNDS (3),
# MCP_BENCH_CONNS (8) wrk connections, MCP_BENCH_DURABILITY (the audit
# durability: written, strict, sync or none; default the daemon's own),
# BUILD (build), AGENTGATED (the daemon binary, default $BUILD/agentgated:
# to measure another build), MCP_BENCH_BASELINE (a second daemon binary, for
# example an older build's: measured as path "base" in the same rounds, with
# the same configuration, so a change is compared with what it changed),
# MCP_BENCH_BASE_DURABILITY (the baseline's durability, default
# MCP_BENCH_DURABILITY: an older build may know other modes), MCP_BENCH_IDLE
# (4000 idle keep-alive connections for the memory figure, fewer when the
# descriptor limit cannot be raised for them), MCP_BENCH_LOG_MB (150: the
# audit log the measured daemon starts on, 0 for none).  Each daemon's mode
# is printed as its status reports it.  After the rounds it measures, for
# each daemon, while one more instance serves, restart to first served call
# (kill -9, start, until an agent's call is answered), with the start line's
# startup_us and audit_read, and memory per idle connection (RSS growth with
# MCP_BENCH_IDLE connections that made one call each and stay open; nginx's
# worker with the same load for comparison) with the upstream connections
# each holds meanwhile, and the disk's fdatasync p50 (strict adds at most
# about that to nginx's p50).
# Installs nginx-light and wrk with apt-get when they are missing.  Runs its
# own nginx from a temp dir (never the system service) and its own agentgated
# instances "agbench-mcp<pid>", "agbench-other<pid>" (and
# "agbench-base<pid>"), and removes them on
# exit: it never uninstalls an instance it did not start.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
SECS=${MCP_BENCH_SECONDS:-5}
ROUNDS=${MCP_BENCH_ROUNDS:-3}
CONNS=${MCP_BENCH_CONNS:-8}
DURABILITY=${MCP_BENCH_DURABILITY:-}
case $DURABILITY in "" | written | strict | sync | none) ;; *)
	echo "mcp_bench: MCP_BENCH_DURABILITY: written, strict, sync or none, not $DURABILITY" >&2
	exit 2
	;;
esac
BASE_DURABILITY=${MCP_BENCH_BASE_DURABILITY:-$DURABILITY}
IDLE=${MCP_BENCH_IDLE:-4000}
LOG_MB=${MCP_BENCH_LOG_MB:-150}
# An idle connection is a socket in the agent and one in the proxy, and an
# agent's fair share of the daemon's descriptors is a sixth of the limit
# (two agents hold the idle connections): the daemons, nginx and the
# agents inherit this limit.
[ "$(ulimit -n)" -ge $((IDLE * 3 + 4096)) ] || ulimit -n $((IDLE * 3 + 4096)) 2>/dev/null || true
if [ $((IDLE * 3 + 4096)) -gt "$(ulimit -n)" ]; then
	IDLE=$((($(ulimit -n) - 4096) / 3 / 2 * 2))
	echo "mcp_bench: descriptor limit $(ulimit -n): $IDLE idle connections" >&2
fi
AGENTGATED=${AGENTGATED:-$BUILD/agentgated}
BASELINE=${MCP_BENCH_BASELINE:-}
HZ=$(getconf CLK_TCK)
BENCH=mcp_bench
. bench/lib.sh

[ "$(id -u)" -eq 0 ] || die "needs root (BPF programs, cgroups); run sudo bash bench/mcp_bench.sh"

# ---- tools --------------------------------------------------------------
need_tools nginx-light wrk
PATH=$PATH:/usr/sbin
NGINX=$(command -v nginx) || die "nginx not found"
WRK=$(command -v wrk) || die "wrk not found"
timeout 300 make -s "$BUILD/agentgated" "$BUILD/agentgatectl" "$BUILD/bench/mcp_upstream" \
	"$BUILD/bench/audit_bench" "$BUILD/bench/resume_bench" ||
	die "build failed"

# ---- state and cleanup --------------------------------------------------
TMP=$(mktemp -d /tmp/mcp_bench.XXXXXX)
UP_PID= NG_PID=
declare -A AG_PID=() AG_CTL=() AG_ORIG=()
cleanup() {
	set +e
	for k in "${!AG_PID[@]}"; do
		timeout 20 ${AG_CTL[$k]} uninstall >/dev/null 2>&1
		kill "${AG_PID[$k]}" 2>/dev/null && wait "${AG_PID[$k]}" 2>/dev/null
	done
	[ -n "$NG_PID" ] && kill "$NG_PID" 2>/dev/null && wait "$NG_PID" 2>/dev/null
	[ -n "$UP_PID" ] && kill "$UP_PID" 2>/dev/null && wait "$UP_PID" 2>/dev/null
	if [ -n "${MCP_BENCH_KEEP:-}" ]; then
		echo "mcp_bench: kept $TMP" >&2
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# The agent (nobody) must read the wrk script; nothing else here is secret.
chmod 711 "$TMP"
cp bench/mcp_call.lua bench/mcp_idle.py bench/mcp_first.py "$TMP/"
chmod 644 "$TMP/mcp_call.lua" "$TMP/mcp_idle.py" "$TMP/mcp_first.py"

# ---- the tool server ----------------------------------------------------
start_upstream

# ---- nginx ---------------------------------------------------------------
free_port
NG_PORT=$PORT
mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile $((IDLE * 2 + 1024));
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections $((IDLE + 1024)); }
http {
	access_log off;
	client_body_temp_path $TMP/nginx/body;
	proxy_temp_path $TMP/nginx/proxy;
	keepalive_requests 1000000;
	upstream tool {
		server 127.0.0.1:$UP_PORT;
		keepalive 32;
		keepalive_requests 1000000;
	}
	server {
		listen 127.0.0.1:$NG_PORT;
		location / {
			proxy_pass http://tool;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
		}
	}
}
EOF
"$NGINX" -e "$TMP/nginx/error.log" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" &
NG_PID=$!
wait_port "$NG_PORT" || die "nginx did not start: $(cat "$TMP/nginx/error.log")"
NG_WORKER=$(pgrep -P "$NG_PID" | head -n1)
[ -n "$NG_WORKER" ] || die "no nginx worker"

# ---- agentgated ------------------------------------------------------------
# start_daemon PATH BINARY DURABILITY: an instance of its own with the same
# configuration (its own state, listener and original port); fills AG_PID,
# AG_CTL, AG_ORIG, AG_BIN.
declare -A AG_BIN=()
start_daemon() {
	local path=$1 bin=$2 inst=agbench-$1$$ dir=$TMP/$1 port orig audit=
	local ctl="$BUILD/agentgatectl --instance $inst"
	free_port
	port=$PORT
	free_port # the tool server as the agent knows it: nothing listens
	orig=$PORT
	mkdir -p "$dir"
	[ -z "$3" ] || audit=", \"audit\": {\"durability\": \"$3\"}"
	cat >"$dir/agentgate.json" <<EOF
{
	"listen": {"port": $port},
	"resolvers": [],
	"tool_servers": [{"name": "t", "upstream": "http://127.0.0.1:$UP_PORT/mcp",
		"match": {"addresses": ["127.0.0.1"], "ports": [$orig]}}],
	"agents": [{"name": "bench", "tools": ["t/echo"], "max_conns": $((IDLE + 64))},
		{"name": "bench2", "tools": ["t/echo"], "max_conns": $((IDLE + 64))}]$audit
}
EOF
	AG_CTL[$path]=$ctl
	AG_ORIG[$path]=$orig
	AG_BIN[$path]=$bin
	launch_daemon "$path"
}

# launch_daemon PATH: starts (or restarts) PATH's daemon, waits until it serves.
launch_daemon() {
	local path=$1 inst=agbench-$1$$ dir=$TMP/$1 ctl=${AG_CTL[$1]}
	"${AG_BIN[$path]}" --instance "$inst" --config "$dir/agentgate.json" \
		--state-dir "$dir/state" --foreground 2>>"$dir/agentgated.log" &
	AG_PID[$path]=$!
	daemon_ready "${AG_PID[$path]}" "$inst" "$ctl" "$dir/agentgated.log"
}
PATHS=(direct nginx mcp)
# The measured daemon starts on an audit log of LOG_MB (written and closed
# by resume_bench, whose key and resume state come with it), as a daemon
# that has run for a while would.
if [ "$LOG_MB" -gt 0 ]; then
	timeout 600 "$BUILD/bench/resume_bench" -m "$LOG_MB" -d "$TMP" -k >"$TMP/resume_bench.out" ||
		die "resume_bench: $(cat "$TMP/resume_bench.out")"
	kept=$(sed -n 's/^resume_bench: kept //p' "$TMP/resume_bench.out")
	mkdir -p "$TMP/mcp/state"
	mv "$kept/audit.log" "$kept/audit.key" "$kept/audit.log-resume" "$TMP/mcp/state/"
	rm -rf "$kept"
	# Written back before the rounds: otherwise the disk is still taking
	# those megabytes while strict's fdatasyncs are measured.
	sync -f "$TMP/mcp/state/audit.log"
fi
start_daemon mcp "$AGENTGATED" "$DURABILITY"
if [ -n "$BASELINE" ]; then
	start_daemon base "$BASELINE" "$BASE_DURABILITY"
	PATHS+=(base)
fi
# The mode each daemon runs with, as it reports it (its default without a choice).
mode_of() { timeout 5 ${AG_CTL[$1]} status 2>/dev/null | grep -o 'durability [a-z]*' | head -n1 |
	sed 's/durability //'; }
DURABILITY=$(mode_of mcp)
[ -z "$BASELINE" ] || BASE_DURABILITY=$(mode_of base)

# ---- measurements ---------------------------------------------------------
decisions() { # PATH: the decision records in that daemon's audit log
	local audit=$TMP/$1/state/audit.log
	if [ -f "$audit" ]; then grep -c '"kind":"decision"' "$audit" || true; else echo 0; fi
}

# run PATH ROUND: one wrk measurement; appends "path round rps p50 p99 reqs
# proxy_ticks upstream_ticks" to $TMP/results.
run() {
	local path=$1 round=$2 out=$TMP/wrk-$1-$2.txt url proxy=0 p0=0 u0 p1 u1 d0 d1
	local -a cmd
	case $path in
	direct) url=http://127.0.0.1:$UP_PORT/mcp cmd=() proxy=0 ;;
	nginx) url=http://127.0.0.1:$NG_PORT/mcp cmd=() proxy=$NG_WORKER ;;
	mcp | base)
		url=http://127.0.0.1:${AG_ORIG[$path]}/mcp proxy=${AG_PID[$path]}
		cmd=(${AG_CTL[$path]} run --agent bench --)
		;;
	esac
	cmd+=("$WRK" -t1 -c"$CONNS" -d"${SECS}s" --latency -s "$TMP/mcp_call.lua" "$url")
	[ "$round" = warm ] && cmd=("${cmd[@]/#-d${SECS}s/-d1s}")
	d0=$(decisions "$path")
	[ "$proxy" = 0 ] || p0=$(cpu_ticks "$proxy")
	u0=$(cpu_ticks "$UP_PID")
	timeout $((SECS + 30)) "${cmd[@]}" >"$out" 2>&1 || die "$path: wrk failed: $(cat "$out")"
	u1=$(cpu_ticks "$UP_PID")
	[ "$proxy" = 0 ] && p1=0 || p1=$(cpu_ticks "$proxy")
	if grep -q 'Non-2xx or 3xx responses' "$out"; then
		die "$path: failing requests, the figures are worthless: $(cat "$out")
$(cat "$TMP"/*/agentgated.log | grep 'event=mcp_conn' | grep -v 'result=ok' | head -n 3)"
	fi
	if grep -q 'Socket errors' "$out"; then
		die "$path: socket errors: $(cat "$out")"
	fi
	local reqs rps p50 p99
	reqs=$(awk '/requests in/{print $1}' "$out")
	rps=$(awk '/^Requests\/sec:/{print $2}' "$out")
	p50=$(us "$(awk '$1 == "50%" {print $2}' "$out")")
	p99=$(us "$(awk '$1 == "99%" {print $2}' "$out")")
	[ -n "$reqs" ] && [ "$reqs" -gt 0 ] || die "$path: no requests: $(cat "$out")"
	if [ "$path" = mcp ] || [ "$path" = base ]; then
		sleep 0.3 # an old build's batch durability: let the committer write the last records
		d1=$(decisions "$path")
		# wrk's count excludes the requests in flight when it stopped.
		if [ $((d1 - d0)) -lt "$reqs" ] || [ $((d1 - d0)) -gt $((reqs + 2 * CONNS)) ]; then
			die "$path: $reqs requests but $((d1 - d0)) decision records"
		fi
	fi
	[ "$round" = warm ] && return
	echo "$path $round $rps $p50 $p99 $reqs $((p1 - p0)) $((u1 - u0))" >>"$TMP/results"
}

echo "mcp_bench: tools/call through direct, nginx $("$NGINX" -v 2>&1 | sed 's/.*\///'),"\
" agentgated; wrk -t1 -c$CONNS, ${SECS} s x $ROUNDS rounds; $(nproc) CPUs"
[ "$AGENTGATED" = "$BUILD/agentgated" ] || echo "daemon: $AGENTGATED"
[ -z "$BASELINE" ] || echo "baseline (path base): $BASELINE"
describe() {
	case $1 in
	written) echo "written (a call waits for its record's write; fdatasync within an interval)" ;;
	strict) echo "strict (the result waits for its record's fdatasync, overlapped with the call)" ;;
	sync) echo "sync (a call waits for its record's group fdatasync)" ;;
	batch) echo "batch (records are queued; no call waits for the disk)" ;;
	none) echo "none (a call waits for its record's write; never an fdatasync)" ;;
	*) echo "${1:-unknown}" ;;
	esac
}
echo "audit durability: $(describe "$DURABILITY")"
[ -z "$BASELINE" ] || echo "baseline's audit durability: $(describe "$BASE_DURABILITY")"
# fsync_p50: the disk's 4 KiB append + fdatasync p50 in us, where the logs are.
fsync_p50() {
	timeout 30 "$BUILD/bench/audit_bench" -s 1 -t 1 -w 1 -d "$TMP" 2>/dev/null |
		sed -n 's/.*fdatasync p50 \([0-9]*\)us.*/\1/p'
}
FSYNC0=$(fsync_p50)
rounds

# ---- the daemon's health --------------------------------------------------
daemons_healthy
[ -s "$TMP/upstream.err" ] && die "mcp_upstream: $(head -n 5 "$TMP/upstream.err")"

# ---- restart and idle connections ---------------------------------------------
rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }

# restart_ms PATH: kill -9 of PATH's daemon, a new one started: RESTART[PATH]
# gets the ms from its start to the first tools/call an agent (trying every
# ms, bench/mcp_first.py) gets answered, RESTART_CONN[PATH] to the first
# connect the new daemon accepted.  Not in a subshell: AG_PID changes.
restart_ms() {
	local path=$1 go=$TMP/go-$1 out=$TMP/first-$1.out t1 t2 tc apid
	timeout 60 ${AG_CTL[$path]} run --agent bench -- \
		python3 "$TMP/mcp_first.py" "${AG_ORIG[$path]}" "$go" >"$out" 2>"$out.err" &
	apid=$!
	sleep 1 # the agent is in place, waiting for $go
	kill -9 "${AG_PID[$path]}"
	wait "${AG_PID[$path]}" 2>/dev/null || true
	touch "$go"
	t1=$(date +%s%N)
	launch_daemon "$path"
	wait "$apid" || die "$path: no call answered after the restart: $(cat "$out" "$out.err")"
	read -r t2 tc _ <"$out"
	RESTART[$path]=$(((t2 - t1) / 1000000))
	RESTART_CONN[$path]=$(((tc - t1) / 1000000))
}

# idle_bytes PATH PID: IDLEB[PATH] gets the RSS growth of PID per connection,
# with IDLE keep-alive connections of PATH that made one call each and stay
# open, and IDLEUP[PATH] the connections PID holds to the tool server then.
# Two agents open half each: one agent's fair share of the daemon's
# descriptors (daemon/fair.c) is about a sixth of the limit.
idle_bytes() {
	local path=$1 pid=$2 stop=$TMP/stop-$1 half=$((IDLE / 2)) r0 r1 port i
	local -a apids=()
	case $path in
	nginx) port=$NG_PORT ;;
	*) port=${AG_ORIG[$path]} ;;
	esac
	rm -f "$stop"
	r0=$(rss_kb "$pid")
	for i in 1 2; do
		local -a cmd=()
		[ "$path" = nginx ] || cmd=(${AG_CTL[$path]} run --agent "bench${i#1}" --)
		timeout 90 "${cmd[@]}" python3 "$TMP/mcp_idle.py" "$port" "$half" "$stop" \
			>"$TMP/idle-$path-$i.out" 2>&1 &
		apids+=($!)
	done
	for i in 1 2; do
		for _ in $(seq 1500); do
			grep -q '^ready' "$TMP/idle-$path-$i.out" && break
			kill -0 "${apids[i - 1]}" 2>/dev/null || break
			sleep 0.05
		done
		grep -q '^ready' "$TMP/idle-$path-$i.out" ||
			die "$path: $half idle connections: $(cat "$TMP/idle-$path-$i.out")"
	done
	sleep 0.5
	r1=$(rss_kb "$pid")
	IDLEUP[$path]=$(ss -Htnp state established "( dport = :$UP_PORT )" | grep -c "pid=$pid," || true)
	touch "$stop"
	wait "${apids[@]}" || true
	IDLEB[$path]=$(((r1 - r0) * 1024 / (half * 2)))
}

declare -A RESTART=() RESTART_CONN=() IDLEB=() IDLEUP=()
idle_bytes nginx "$NG_WORKER"
MEASURED=("${!AG_CTL[@]}")
# Restarts happen while another instance serves on the same host.
start_daemon other "$AGENTGATED" ""
for p in "${MEASURED[@]}"; do
	idle_bytes "$p" "${AG_PID[$p]}"
	restart_ms "$p"
done
FSYNC1=$(fsync_p50)

# ---- report -------------------------------------------------------------------
awk -v hz="$HZ" -v durability="$DURABILITY" -v paths="${PATHS[*]}" -v extra="tool us/req" \
	-f bench/rounds.awk -f /dev/stdin "$TMP/results" <<'EOF'
END {
	printf "\nmedian of %d rounds (CPU: utime+stime of the nginx worker / agentgated, all threads):\n", n["direct"]
	printf "%-7s %10s %9s %9s %12s %12s %14s\n", "path", "req/s", "p50 us", "p99 us",
		"+p50 us", "+p99 us", "proxy CPU us/req"
	for (k = 1; k <= np; k++) {
		p = P[k]
		printf "%-7s %10.0f %9.1f %9.1f %12s %12s %14s\n", p, M_rps[p], M_p50[p], M_p99[p],
			p == "direct" ? "-" : sprintf("%+.1f", M_p50[p] - M_p50["direct"]),
			p == "direct" ? "-" : sprintf("%+.1f", M_p99[p] - M_p99["direct"]),
			p == "direct" ? "-" : sprintf("%.1f", M_cpu[p])
	}
	addn = M_p50["nginx"] - M_p50["direct"]; adda = M_p50["mcp"] - M_p50["direct"]
	printf "\nagentgated MCP path vs nginx (audit durability %s):\n", durability
	if (addn > 0)
		printf "  p50 added:     %.1f us vs %.1f us: ratio %.2f (target < 1)\n", adda, addn, adda / addn
	else
		printf "  p50 added:     %.1f us vs %.1f us: nginx added nothing measurable, no ratio\n", adda, addn
	printf "  CPU per call:  %.1f us vs %.1f us: ratio %.2f (target <= 1)\n", M_cpu["mcp"],
		M_cpu["nginx"], (M_cpu["nginx"] > 0 ? M_cpu["mcp"] / M_cpu["nginx"] : 0)
	printf "  throughput:    %.0f vs %.0f req/s: ratio %.2f\n", M_rps["mcp"], M_rps["nginx"],
		M_rps["mcp"] / M_rps["nginx"]
	if ("base" in M_rps) {
		addb = M_p50["base"] - M_p50["direct"]
		printf "\nthis build (mcp) vs the baseline (base), same rounds:\n"
		printf "  p50 added:     %.1f us vs %.1f us: ratio %.2f\n", adda, addb,
			(addb > 0 ? adda / addb : 0)
		printf "  CPU per call:  %.1f us vs %.1f us: ratio %.2f\n", M_cpu["mcp"], M_cpu["base"],
			(M_cpu["base"] > 0 ? M_cpu["mcp"] / M_cpu["base"] : 0)
		printf "  throughput:    %.0f vs %.0f req/s: ratio %.2f\n", M_rps["mcp"], M_rps["base"],
			M_rps["mcp"] / M_rps["base"]
	}
}
EOF
echo "(CPU resolution: 1/$HZ s per process per measurement)"
echo
echo "memory per idle keep-alive connection ($IDLE connections, one call each; RSS growth):"
for p in nginx mcp base; do
	[ -n "${IDLEB[$p]:-}" ] && printf "  %-6s %8s bytes, %s upstream connections open meanwhile\n" \
		"$p" "${IDLEB[$p]}" "${IDLEUP[$p]}"
done
echo "restart (kill -9, start; another instance serving; a ${LOG_MB} MB audit log; an agent trying every ms):"
echo "  first connect accepted, first call answered, the start line's startup_us and audit_read:"
for p in mcp base; do
	[ -n "${RESTART[$p]:-}" ] &&
		printf "  %-6s %8s ms %8s ms   %s\n" "$p" "${RESTART_CONN[$p]}" "${RESTART[$p]}" \
			"$(grep 'event=start ' "$TMP/$p/agentgated.log" | tail -n 1 |
				grep -o 'startup_us=[0-9]*\|audit_read=[0-9]*' | tr '\n' ' ')"
done
echo "the disk's 4 KiB append + fdatasync p50 (before / after the rounds): ${FSYNC0:-?} / ${FSYNC1:-?} us"
[ "$DURABILITY" != strict ] ||
	echo "  strict's target: mcp's added p50 <= nginx's added p50 + that fdatasync p50"

