#!/usr/bin/env node
// v2_agent.mjs --url URL --steps a,b,c [--call TOOL --args JSON]...
//              [--era modern|auto|legacy] [--timeout MS]
//
// An MCP agent built on @modelcontextprotocol/client 2.x (Streamable HTTP),
// speaking the 2026-07-28 stateless era by default: the client is constructed
// with versionNegotiation { mode: { pin: '2026-07-28' } }, so connect() sends a
// `server/discover` probe instead of `initialize`, and every request then
// carries MCP-Protocol-Version: 2026-07-28, the `Mcp-Method` header (and
// `Mcp-Name` for tools/call, prompts/get, resources/read) plus the _meta
// envelope. --era auto probes and falls back to 2025; --era legacy runs the
// plain 2025 initialize handshake.
//
// Same JSON-line output as agent.mjs, and each line carries "sent": the MCP
// headers of the HTTP request(s) that step made (mcp-protocol-version,
// mcp-method, mcp-name, mcp-session-id, mcp-param-*), as the client really
// sent them (recorded by the fetch function handed to the transport).
// Every request also carries `Authorization: Bearer agent-canary-<random>`,
// reported as "canary" on the initialize line.
//
// Steps: initialize, list, call (i-th call uses the i-th --call/--args, the
// last pair repeats). (No ping: the 2026-07-28 era has no `ping` method and
// the 2.x SDK refuses to send one on a modern connection.) Exit status as agent.mjs: 0 when every line was
// ok, a call answered with a JSON-RPC error (ok:false with "code") being data;
// 1 otherwise; 2 bad usage; 4 overall timeout.
import { randomBytes } from 'node:crypto';
import { agentPlan, args, emit, log, need, resultText, since, withTimeout } from './lib.mjs';

const USAGE = 'v2_agent.mjs --url URL --steps a,b,c [--call TOOL --args JSON]... [--era modern|auto|legacy] [--timeout MS]';
const opt = args(
	{
		url: { type: 'string' },
		steps: { type: 'string', default: 'initialize,list' },
		call: { type: 'string', multiple: true, default: [] },
		args: { type: 'string', multiple: true, default: [] },
		era: { type: 'string', default: 'modern' },
		timeout: { type: 'string', default: '20000' },
	},
	USAGE,
);
if (!opt.url || !['modern', 'auto', 'legacy'].includes(opt.era)) {
	log(`usage: ${USAGE}`);
	process.exit(2);
}
const { overallMs, steps, callArgs, watchdog } = agentPlan(opt);
const stepTimeout = Math.max(1000, overallMs - 1000);

const { Client, StreamableHTTPClientTransport, ProtocolError } = await need('@modelcontextprotocol/client');

const MODERN = '2026-07-28';
const canary = `Bearer agent-canary-${randomBytes(12).toString('hex')}`;

// Record the MCP headers of every request the transport sends.
let sent = [];
const recordingFetch = async (url, init) => {
	const h = new Headers(init?.headers);
	const mcp = { method: init?.method ?? 'GET' };
	for (const [k, v] of h) if (k.startsWith('mcp-')) mcp[k] = v;
	const res = await fetch(url, init);
	mcp.status = res.status;
	sent.push(mcp);
	if (sent.length > 100) sent.shift();
	return res;
};
function takeSent() {
	const s = sent;
	sent = [];
	return s;
}

const transport = new StreamableHTTPClientTransport(new URL(opt.url), {
	requestInit: { headers: { Authorization: canary } },
	fetch: recordingFetch,
});
const versionNegotiation =
	opt.era === 'modern' ? { mode: { pin: MODERN } } : opt.era === 'auto' ? { mode: 'auto' } : undefined;
const client = new Client({ name: 'agentgate-e2e-v2-agent', version: '1.0.0' }, { capabilities: {}, versionNegotiation });
client.onerror = (err) => log(`client error: ${err?.message ?? err}`);

let connected = false;
let failed = false;
function out(obj) {
	if (!obj.ok && !obj.data) failed = true;
	delete obj.data;
	obj.sent = takeSent();
	emit(obj);
}

async function ensureConnected() {
	if (connected) return;
	connected = true;
	const t0 = performance.now();
	await withTimeout(client.connect(transport, { timeout: stepTimeout }), stepTimeout, 'initialize');
	const info = client.getServerVersion() ?? {};
	out({
		step: 'initialize',
		ok: true,
		protocolVersion: client.getNegotiatedProtocolVersion() ?? null,
		era: client.getProtocolEra?.() ?? null,
		serverName: info.name ?? null,
		serverVersion: info.version ?? null,
		sessionId: transport.sessionId ?? null,
		canary,
		ms: since(t0),
	});
}

let callIndex = 0;
const handlers = {
	async initialize() {
		if (connected) throw new Error('already initialized');
		await ensureConnected();
	},
	async list() {
		await ensureConnected();
		const r = await client.listTools(undefined, { timeout: stepTimeout }); // all pages (bounded by the SDK)
		out({ step: 'list', ok: true, tools: r.tools.map((t) => t.name) });
	},
	async call() {
		await ensureConnected();
		if (opt.call.length === 0) throw new Error('call step needs --call TOOL');
		const tool = opt.call[Math.min(callIndex, opt.call.length - 1)];
		const toolArgs = callArgs[Math.min(callIndex, callArgs.length - 1)] ?? {};
		callIndex++;
		try {
			const r = await client.callTool({ name: tool, arguments: toolArgs }, { timeout: stepTimeout });
			out({
				step: 'call',
				tool,
				ok: true,
				isError: r.isError === true,
				text: resultText(r),
				resultType: r.resultType,
				_meta: r._meta,
			});
		} catch (err) {
			if (err instanceof ProtocolError && typeof err.code === 'number')
				out({ step: 'call', tool, ok: false, data: true, code: err.code, message: err.message });
			else throw Object.assign(err, { tool });
		}
	},
};

for (const step of steps) {
	const handler = Object.hasOwn(handlers, step) ? handlers[step] : null;
	if (!handler) {
		out({ step, ok: false, error: `unknown step (known: ${Object.keys(handlers).join(',')})` });
		continue;
	}
	try {
		await withTimeout(handler(), stepTimeout, step);
	} catch (err) {
		const line = { step, ok: false };
		if (err?.tool) line.tool = err.tool;
		if (typeof err?.code === 'number' || typeof err?.code === 'string') line.code = err.code;
		line.error = err?.message ?? String(err);
		out(line);
		if (step === 'initialize' || !connected) break;
	}
}

clearTimeout(watchdog);
try {
	await withTimeout(client.close(), 2000, 'close');
} catch (err) {
	log(`v2_agent: close: ${err.message}`);
}
process.exit(failed ? 1 : 0);
