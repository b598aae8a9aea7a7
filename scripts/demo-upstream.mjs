#!/usr/bin/env node
// demo-upstream.mjs SEEN TOKEN_FILE FROM: for make run (scripts/demo.sh),
// what the tool server received, from the log of selftests/e2e/capture_proxy.mjs
// (SEEN, one JSON line per request): the header lines of the first POST after
// line FROM, with the bearer token masked (only its first characters are
// shown, and whether it is the content of TOKEN_FILE), then how many of all
// the requests carried that token and how many an agent's own Authorization
// (agent.mjs sends "Bearer agent-canary-...").  The token is never printed.
import { readFileSync } from 'node:fs';

const [seen, tokenFile, from] = process.argv.slice(2);
const token = readFileSync(tokenFile, 'utf8').replace(/\n$/, '');
const lines = readFileSync(seen, 'utf8')
	.split('\n')
	.filter((l) => l)
	.map((l) => JSON.parse(l));
const SHOWN = 8;

function masked(value) {
	const m = /^Bearer (.+)$/.exec(value);
	if (!m) return '(not a bearer token)';
	const t = m[1];
	const what = t === token ? 'the content of upstream.token' : 'NOT upstream.token';
	return `Bearer ${t.slice(0, SHOWN)}${'*'.repeat(Math.max(0, t.length - SHOWN))} (${t.length} characters: ${what})`;
}

const req = lines.slice(Number(from)).find((e) => e.method === 'POST');
if (!req) console.log('   server| (no request arrived)');
else
	for (const [name, value] of req.rawHeaders)
		console.log(`   server| ${name}: ${/^authorization$/i.test(name) ? masked(value) : value}`);
const withToken = lines.filter((e) => e.headers.authorization === `Bearer ${token}`).length;
const canaries = lines.filter((e) => JSON.stringify(e.headers).includes('agent-canary')).length;
console.log(`   Of the ${lines.length} requests the tool server received in this demo, ${withToken} carried`);
console.log(`   the gateway's token and ${canaries} the Authorization an agent sent of its own (the`);
console.log('   "canary" of the SDK agents\' initialize lines): the gateway removes what agents send.');
