# rounds.awk: the wrk rounds of a bench script (bench/lib.sh's callers), one
# line each: path round req/s p50_us p99_us requests proxy_ticks extra_ticks
# (extra: the tool server's CPU in mcp_bench.sh, every CPU's in
# relay_bench.sh).  Prints them round by round and leaves, for the caller's
# own END (run after this one), np paths in P[] (-v paths, in report order)
# and each path's median over its rounds in M_rps, M_p50, M_p99, M_cpu
# (proxy us per request) and M_x (extra us per request).
# -v hz: clock ticks per second; -v extra: the extra column's title.
function median(a, n,    i, j, t) {
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{
	p = $1; n[p]++
	rps[p, n[p]] = $3; p50[p, n[p]] = $4; p99[p, n[p]] = $5
	cpu[p, n[p]] = $7 * 1e6 / hz / $6; x[p, n[p]] = $8 * 1e6 / hz / $6
	rows[++nr] = $0
}
END {
	printf "\nper round:\n%-7s %5s %10s %9s %9s %12s %14s\n", "path", "round", "req/s",
		"p50 us", "p99 us", "proxy us/req", extra
	for (i = 1; i <= nr; i++) {
		split(rows[i], f, " ")
		printf "%-7s %5s %10.0f %9.1f %9.1f %12s %14.1f\n", f[1], f[2], f[3], f[4], f[5],
			f[1] == "direct" ? "-" : sprintf("%.1f", f[7] * 1e6 / hz / f[6]),
			f[8] * 1e6 / hz / f[6]
	}
	np = split(paths, P, " ")
	for (k = 1; k <= np; k++) {
		p = P[k]
		for (i = 1; i <= n[p]; i++) {
			a[i] = rps[p, i]; b[i] = p50[p, i]; c[i] = p99[p, i]; d[i] = cpu[p, i]
			e[i] = x[p, i]
		}
		M_rps[p] = median(a, n[p]); M_p50[p] = median(b, n[p]); M_p99[p] = median(c, n[p])
		M_cpu[p] = median(d, n[p]); M_x[p] = median(e, n[p])
	}
}
