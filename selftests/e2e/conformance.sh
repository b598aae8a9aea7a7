#!/usr/bin/env bash
# conformance.sh URL OUTFILE [extra `conformance server` options, e.g. --suite all]
#
# Runs the server scenarios of @modelcontextprotocol/conformance (pinned 0.1.13)
# against the MCP server at URL (Streamable HTTP) and writes one JSON line per
# scenario to OUTFILE:
#   {"scenario":"tools-list","ok":true,"passed":1,"failed":0,
#    "checks":[{"id":"tools-list","status":"SUCCESS"}]}
# (failed checks carry "errorMessage"; a scenario is ok when it has no FAILURE
# check). Prints a summary line "conformance: scenarios ok=N not-ok=N, Ss, results in OUTFILE"
# on stderr. Exit 0 when the suite ran and OUTFILE was written (scenario
# failures are data), 1 when it could not run, 2 on bad usage.
#
# The scenarios only call the conformance suite's own test_* tools (never
# server-everything's get-env / gzip-file-as-resource). The default "active"
# suite takes about 3 s against a local server-everything; bounded to 300 s.
# Needs scripts/e2e-deps.sh to have run (same install dir rules as lib.mjs).
set -euo pipefail

if [ $# -lt 2 ]; then
	echo "usage: $0 URL OUTFILE [conformance server options]" >&2
	exit 2
fi
url="$1"
outfile="$2"
shift 2

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ -n "${AGENTGATE_E2E_DIR:-}" ]; then
	e2e="$AGENTGATE_E2E_DIR"
elif [ -n "${BUILD_DIR:-}" ]; then
	e2e="$BUILD_DIR/e2e"
else
	e2e="$here/../../build/e2e"
fi
bin="$e2e/node_modules/.bin/conformance"
if [ ! -x "$bin" ]; then
	echo "conformance.sh: $bin not found; run scripts/e2e-deps.sh first" >&2
	exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
set +e
timeout 300 "$bin" server --url "$url" -o "$tmp/results" "$@" >"$tmp/run.log" 2>&1
rc=$?
set -e
if [ "$rc" -eq 124 ]; then
	echo "conformance.sh: timed out after 300 s" >&2
	exit 1
fi
if [ ! -d "$tmp/results" ]; then
	echo "conformance.sh: no results (exit $rc):" >&2
	tail -n 20 "$tmp/run.log" >&2
	exit 1
fi

node - "$tmp/results" "$outfile" "$(($(date +%s) - start))" <<'EOF'
const fs = require('node:fs');
const path = require('node:path');
const [dir, outfile, secs] = process.argv.slice(2);
const lines = [];
let pass = 0, fail = 0;
for (const d of fs.readdirSync(dir).sort()) {
	// <dir>/server-<scenario>-<ISO timestamp with - for : and .>/checks.json
	const m = /^server-(.+)-\d{4}-\d\d-\d\dT[\d-]+Z$/.exec(d);
	const file = path.join(dir, d, 'checks.json');
	if (!m || !fs.existsSync(file)) continue;
	let checks;
	try {
		checks = JSON.parse(fs.readFileSync(file, 'utf8'));
	} catch (err) {
		checks = [{ id: 'checks.json', status: 'FAILURE', errorMessage: `unreadable: ${err.message}` }];
	}
	const slim = checks.map((c) => {
		const o = { id: c.id, status: c.status };
		if (c.errorMessage) o.errorMessage = c.errorMessage;
		return o;
	});
	const passed = slim.filter((c) => c.status === 'SUCCESS').length;
	const failed = slim.filter((c) => c.status === 'FAILURE').length;
	const ok = failed === 0;
	ok ? pass++ : fail++;
	lines.push(JSON.stringify({ scenario: m[1], ok, passed, failed, checks: slim }));
}
fs.writeFileSync(outfile, lines.join('\n') + (lines.length ? '\n' : ''));
process.stderr.write(`conformance: scenarios ok=${pass} not-ok=${fail}, ${secs}s, results in ${outfile}\n`);
if (lines.length === 0) process.exit(1);
EOF
