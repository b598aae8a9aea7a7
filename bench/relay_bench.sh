#!/bin/bash
# relay_bench: request/response latency and CPU per request of the plain relay
# path (a pass-through destination, no MCP) through
#   direct   wrk -> upstream
#   nginx    wrk -> nginx TCP stream proxy (ngx_stream_module, 1 worker) -> upstream
#   splice   wrk as an agent -> (kernel redirect) agentgated relay, spliced in
#            the kernel (bpf/splice.bpf.c) -> upstream
#   copy     the same with "relay_splice": false: agentgated copies every byte
# side by side in one run, in alternating rounds, with the same upstream
# (build/bench/mcp_upstream: its bytes are only relayed, never parsed) and the
# same load (wrk over persistent connections, bench/mcp_call.lua).
#
#	bash bench/relay_bench.sh		(as root, after make)
#
# Environment: RELAY_BENCH_SECONDS (5) per measurement, RELAY_BENCH_ROUNDS (3),
# RELAY_BENCH_CONNS (8) wrk connections, BUILD (build).
#
# CPU per request is given twice.  proxy: utime+stime of the nginx worker or
# of agentgated (all threads).  machine: every CPU's busy time (/proc/stat)
# per request, less direct's: a spliced byte is moved by the kernel in softirq
# and in a kworker (the socket map's backlog), which no proxy process is
# charged for, so only the machine figure counts that work.  It counts every
# other process on the machine too: run it on a quiet one.
# Installs nginx-light, libnginx-mod-stream and wrk with apt-get when missing.
# Runs its own nginx from a temp dir (never the system service) and its own
# agentgated instances "agbench-splice<pid>" and "agbench-copy<pid>", and
# removes them on exit: it never uninstalls an instance it did not start.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
SECS=${RELAY_BENCH_SECONDS:-5}
ROUNDS=${RELAY_BENCH_ROUNDS:-3}
CONNS=${RELAY_BENCH_CONNS:-8}
HZ=$(getconf CLK_TCK)
STREAM_MOD=/usr/lib/nginx/modules/ngx_stream_module.so
BENCH=relay_bench
. bench/lib.sh

[ "$(id -u)" -eq 0 ] || die "needs root (BPF programs, cgroups); run sudo bash bench/relay_bench.sh"

# ---- tools --------------------------------------------------------------
NEED_FILE=$STREAM_MOD need_tools nginx-light libnginx-mod-stream wrk
PATH=$PATH:/usr/sbin
NGINX=$(command -v nginx) || die "nginx not found"
WRK=$(command -v wrk) || die "wrk not found"
[ -f "$STREAM_MOD" ] || die "no $STREAM_MOD"
timeout 300 make -s "$BUILD/agentgated" "$BUILD/agentgatectl" "$BUILD/bench/mcp_upstream" ||
	die "build failed"

# ---- state and cleanup --------------------------------------------------
TMP=$(mktemp -d /tmp/relay_bench.XXXXXX)
UP_PID= NG_PID=
declare -A AG_PID=() AG_CTL=()
cleanup() {
	set +e
	for k in "${!AG_PID[@]}"; do
		timeout 20 ${AG_CTL[$k]} uninstall >/dev/null 2>&1
		kill "${AG_PID[$k]}" 2>/dev/null && wait "${AG_PID[$k]}" 2>/dev/null
	done
	[ -n "$NG_PID" ] && kill "$NG_PID" 2>/dev/null && wait "$NG_PID" 2>/dev/null
	[ -n "$UP_PID" ] && kill "$UP_PID" 2>/dev/null && wait "$UP_PID" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# The agent (nobody) must read the wrk script; nothing else here is secret.
chmod 711 "$TMP"
cp bench/mcp_call.lua "$TMP/"
chmod 644 "$TMP/mcp_call.lua"

# Busy ticks of every CPU together (all but idle and iowait).
machine_ticks() {
	awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

# ---- the upstream -------------------------------------------------------
start_upstream

# ---- nginx as a TCP stream proxy ------------------------------------------
free_port
NG_PORT=$PORT
mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/nginx.conf" <<EOF
load_module $STREAM_MOD;
worker_processes 1;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 1024; }
stream {
	server {
		listen 127.0.0.1:$NG_PORT;
		proxy_pass 127.0.0.1:$UP_PORT;
	}
}
EOF
"$NGINX" -e "$TMP/nginx/error.log" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" &
NG_PID=$!
wait_port "$NG_PORT" || die "nginx did not start: $(cat "$TMP/nginx/error.log")"
NG_WORKER=$(pgrep -P "$NG_PID" | head -n1)
[ -n "$NG_WORKER" ] || die "no nginx worker"

# ---- agentgated -------------------------------------------------------------
# start_daemon PATH SPLICE: an instance of its own; no tool server, so the
# upstream's address is a pass-through destination, relayed.
start_daemon() {
	local path=$1 inst=agbench-$1$$ dir=$TMP/$1 port
	local ctl="$BUILD/agentgatectl --instance $inst"
	free_port
	port=$PORT
	mkdir -p "$dir"
	cat >"$dir/agentgate.json" <<EOF
{
	"listen": {"port": $port},
	"resolvers": [],
	"relay_splice": $2,
	"agents": [{"name": "bench"}]
}
EOF
	AG_CTL[$path]=$ctl
	"$BUILD/agentgated" --instance "$inst" --config "$dir/agentgate.json" \
		--state-dir "$dir/state" --foreground 2>>"$dir/agentgated.log" &
	AG_PID[$path]=$!
	daemon_ready "${AG_PID[$path]}" "$inst" "$ctl" "$dir/agentgated.log"
}
PATHS=(direct nginx splice copy)
start_daemon splice true
start_daemon copy false

# relay_field PATH NAME: a figure of agentgatectl status --json's "relay".
relay_field() {
	timeout 5 ${AG_CTL[$1]} status --json 2>/dev/null |
		python3 -c "import json,sys; print(json.load(sys.stdin)['daemon']['relay']['$2'])"
}

# ---- measurements -------------------------------------------------------------
# run PATH ROUND: one wrk measurement; appends "path round rps p50 p99 reqs
# proxy_ticks machine_ticks" to $TMP/results.
run() {
	local path=$1 round=$2 out=$TMP/wrk-$1-$2.txt url proxy=0 p0=0 p1=0 m0 m1 secs=$SECS
	local -a cmd=()
	[ "$round" = warm ] && secs=1
	case $path in
	direct) url=http://127.0.0.1:$UP_PORT/mcp ;;
	nginx) url=http://127.0.0.1:$NG_PORT/mcp proxy=$NG_WORKER ;;
	splice | copy)
		url=http://127.0.0.1:$UP_PORT/mcp proxy=${AG_PID[$path]}
		cmd=(${AG_CTL[$path]} run --agent bench --)
		;;
	esac
	cmd+=("$WRK" -t1 -c"$CONNS" -d"${secs}s" --latency -s "$TMP/mcp_call.lua" "$url")
	[ "$proxy" = 0 ] || p0=$(cpu_ticks "$proxy")
	m0=$(machine_ticks)
	timeout $((secs + 30)) "${cmd[@]}" >"$out" 2>&1 || die "$path: wrk failed: $(cat "$out")"
	m1=$(machine_ticks)
	[ "$proxy" = 0 ] || p1=$(cpu_ticks "$proxy")
	grep -q 'Non-2xx or 3xx responses\|Socket errors' "$out" &&
		die "$path: failing requests, the figures are worthless: $(cat "$out")"
	local reqs rps p50 p99
	reqs=$(awk '/requests in/{print $1}' "$out")
	rps=$(awk '/^Requests\/sec:/{print $2}' "$out")
	p50=$(us "$(awk '$1 == "50%" {print $2}' "$out")")
	p99=$(us "$(awk '$1 == "99%" {print $2}' "$out")")
	[ -n "$reqs" ] && [ "$reqs" -gt 0 ] || die "$path: no requests: $(cat "$out")"
	[ "$round" = warm ] && return
	echo "$path $round $rps $p50 $p99 $reqs $((p1 - p0)) $((m1 - m0))" >>"$TMP/results"
}

echo "relay_bench: plain relay through direct, nginx $("$NGINX" -v 2>&1 | sed 's/.*\///')" \
	"stream, agentgated spliced and copying; wrk -t1 -c$CONNS, ${SECS} s x $ROUNDS rounds;" \
	"$(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)"
rounds

# ---- the daemons' health, and that each path was what it says -----------------
daemons_healthy
[ "$(relay_field splice splice)" = True ] ||
	die "splice: the kernel refused: $(relay_field splice splice_off)"
[ "$(relay_field splice bytes_copied)" = 0 ] ||
	die "splice: the daemon copied $(relay_field splice bytes_copied) bytes"
[ "$(relay_field copy spliced)" = 0 ] || die "copy: spliced"
# Every connection closed, no socket left in the splice maps.
for _ in $(seq 50); do
	[ "$(timeout 5 ${AG_CTL[splice]} status --json | python3 -c \
		"import json,sys; print(json.load(sys.stdin)['daemon']['connections']['active'])")" = 0 ] &&
		break
	sleep 0.1
done
for m in splice_peers splice_from; do
	n=$(bpftool -j map dump pinned "/sys/fs/bpf/agbench-splice$$/$m" |
		python3 -c "import json,sys; print(len(json.load(sys.stdin)))") ||
		die "splice: no map $m"
	[ "$n" = 0 ] || die "splice: $n sockets left in $m after the rounds"
done
echo "agentgated spliced: $(relay_field splice spliced) directions, 0 bytes copied," \
	"the maps empty after; copying: $(relay_field copy bytes_copied) bytes copied"

# ---- report -------------------------------------------------------------------
awk -v hz="$HZ" -v paths="${PATHS[*]}" -v extra="machine us/req" \
	-f bench/rounds.awk -f /dev/stdin "$TMP/results" <<'EOF'
END {
	printf "\nmedian of %d rounds:\n", n["direct"]
	printf "%-7s %10s %9s %9s %9s %14s %16s\n", "path", "req/s", "p50 us", "p99 us",
		"+p50 us", "proxy CPU us/req", "+machine us/req"
	for (k = 1; k <= np; k++) {
		p = P[k]
		printf "%-7s %10.0f %9.1f %9.1f %9s %16s %16s\n", p, M_rps[p], M_p50[p], M_p99[p],
			p == "direct" ? "-" : sprintf("%+.1f", M_p50[p] - M_p50["direct"]),
			p == "direct" ? "-" : sprintf("%.1f", M_cpu[p]),
			p == "direct" ? "-" : sprintf("%+.1f", M_x[p] - M_x["direct"])
	}
	addn = M_p50["nginx"] - M_p50["direct"]
	machn = M_x["nginx"] - M_x["direct"]
	for (k = 3; k <= 4; k++) {
		p = P[k]; add = M_p50[p] - M_p50["direct"]; madd = M_x[p] - M_x["direct"]
		printf "\nagentgated %s vs nginx stream:\n", p
		if (addn > 0)
			printf "  p50 added:        %.1f us vs %.1f us: ratio %.2f (target <= 0.5)\n",
				add, addn, add / addn
		else
			printf "  p50 added:        %.1f us vs %.1f us: no ratio\n", add, addn
		printf "  proxy CPU/req:    %.1f us vs %.1f us: ratio %.2f (target <= 0.5)\n",
			M_cpu[p], M_cpu["nginx"], (M_cpu["nginx"] > 0 ? M_cpu[p] / M_cpu["nginx"] : 0)
		if (machn > 0)
			printf "  machine CPU/req:  %+.1f us vs %+.1f us: ratio %.2f\n", madd, machn,
				madd / machn
		else
			printf "  machine CPU/req:  %+.1f us vs %+.1f us: no ratio\n", madd, machn
		printf "  throughput:       %.0f vs %.0f req/s: ratio %.2f\n", M_rps[p], M_rps["nginx"],
			M_rps[p] / M_rps["nginx"]
	}
}
EOF
echo "(CPU resolution: 1/$HZ s per process per measurement)"
