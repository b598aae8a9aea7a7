# Shell functions the benchmark scripts share (sourced, not run): ports,
# readiness, CPU ticks, wrk's figures, the tool server.  The sourcing script
# sets BENCH (its name, for messages) and BUILD, and TMP before
# start_upstream.

die() {
	echo "$BENCH: $*" >&2
	exit 1
}

# need_tools PACKAGE...: installs the Debian packages with apt-get when one
# of nginx, wrk (or a file named by NEED_FILE) is missing.
need_tools() {
	if command -v nginx >/dev/null && command -v wrk >/dev/null &&
		{ [ -z "${NEED_FILE:-}" ] || [ -f "$NEED_FILE" ]; }; then
		return
	fi
	echo "$BENCH: installing $* (apt-get)" >&2
	export DEBIAN_FRONTEND=noninteractive
	if ! timeout 300 apt-get install -y -qq "$@" >/dev/null 2>&1; then
		timeout 300 apt-get update -qq >/dev/null 2>&1 || true
		timeout 300 apt-get install -y -qq "$@" >/dev/null 2>&1 || die "could not install $*"
	fi
}

# free_port: PORT gets a port nothing listens on, none given before (not in a
# subshell: TAKEN and the random sequence must move on), below the
# ephemeral range: a port some connection (or its TIME_WAIT) holds there
# would refuse a listener's bind.
TAKEN=" "
EPHEMERAL=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range)
free_port() {
	local p
	for _ in $(seq 200); do
		p=$((10000 + RANDOM % (EPHEMERAL - 10000)))
		case "$TAKEN" in *" $p "*) continue ;; esac
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			TAKEN="$TAKEN$p "
			PORT=$p
			return
		fi
	done
	die "no free port"
}

wait_port() { # PORT: up to 5 s
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# utime + stime of a process (all its threads, the exited ones included), ticks.
cpu_ticks() {
	local s
	s=$(cat "/proc/$1/stat") || die "process $1 is gone"
	s=${s##*) }
	set -- $s
	echo $((${12} + ${13}))
}

# us VALUE-WITH-UNIT: wrk's latency figure in microseconds.
us() {
	awk -v v="$1" 'BEGIN {
		n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
		if (u == "us") f = 1; else if (u == "ms") f = 1000;
		else if (u == "s") f = 1000000; else if (u == "m") f = 60000000; else f = -1
		printf "%.1f", n * f }'
}

# start_upstream: the tool server (build/bench/mcp_upstream): UP_PID, UP_PORT.
start_upstream() {
	"$BUILD/bench/mcp_upstream" >"$TMP/upstream.out" 2>"$TMP/upstream.err" &
	UP_PID=$!
	for _ in $(seq 100); do
		grep -q '^port ' "$TMP/upstream.out" 2>/dev/null && break
		sleep 0.05
	done
	UP_PORT=$(awk '/^port /{print $2}' "$TMP/upstream.out")
	[ -n "$UP_PORT" ] || die "mcp_upstream did not start: $(cat "$TMP/upstream.err")"
}

# daemon_ready PID INSTANCE CTL LOG: waits (5 s) until the daemon answers
# its control socket, or dies with its log.
daemon_ready() {
	for _ in $(seq 100); do
		[ -S "/run/$2/control.sock" ] && timeout 5 $3 agents >/dev/null 2>&1 && return
		kill -0 "$1" 2>/dev/null || die "$2: agentgated exited: $(cat "$4")"
		sleep 0.05
	done
	timeout 5 $3 agents >/dev/null 2>&1 || die "$2: agentgated not ready: $(cat "$4")"
}

# rounds: a warm-up of every path in PATHS, then ROUNDS rounds into
# $TMP/results, the order rotated each round so no path always goes first.
# The caller's run PATH ROUND measures one path.
rounds() {
	local p r order=("${PATHS[@]}")

	for p in "${PATHS[@]}"; do run "$p" warm; done
	: >"$TMP/results"
	for r in $(seq "$ROUNDS"); do
		for p in "${order[@]}"; do run "$p" "$r"; done
		order=("${order[@]:1}" "${order[0]}")
	done
}

# daemons_healthy: every daemon in AG_PID still runs and logged no error.
daemons_healthy() {
	local k

	for k in "${!AG_PID[@]}"; do
		kill -0 "${AG_PID[$k]}" 2>/dev/null ||
			die "$k: agentgated died: $(tail -n 20 "$TMP/$k/agentgated.log")"
		if grep -E 'level=(error|crit|alert|emerg)|ERROR|panic|assert' \
			"$TMP/$k/agentgated.log" >"$TMP/errs"; then
			die "$k: agentgated logged errors: $(head -n 20 "$TMP/errs")"
		fi
	done
}
