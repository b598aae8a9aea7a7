#!/usr/bin/env node
// agent.mjs --url URL [--transport streamable|sse] --steps a,b,c
//           [--call TOOL --args JSON]... [--timeout MS]
//           [--progress-duration S] [--progress-steps N]
//
// An MCP agent built on the official TypeScript SDK 1.x Client
// (@modelcontextprotocol/sdk, StreamableHTTPClientTransport or the legacy
// SSEClientTransport). It runs the steps in order and prints ONE JSON line per
// step on stdout (written synchronously). Diagnostics go to stderr.
//
// Every HTTP request it sends (POST, GET stream, DELETE; both transports)
// carries `Authorization: Bearer agent-canary-<random>`; the initialize line
// reports it as "canary" so a test can check it never reaches the upstream.
//
// Steps (see README.md for the exact output of each):
//   initialize   connect + initialize handshake (done implicitly, with its line,
//                before the first step that needs a connection)
//   list         tools/list, all pages            -> "tools":[names]
//   call         tools/call of the next --call TOOL with its --args JSON
//                (the i-th call step uses the i-th --call/--args; the last
//                pair repeats)                    -> "isError","text"
//                JSON-RPC error response          -> ok:false,"code","message"
//   progress     trigger-long-running-operation with a progress token
//   sampling     trigger-sampling-request; our sampling/createMessage handler
//                answers "agentgate-sampled"
//   elicitation  trigger-elicitation-request; our elicitation/create handler
//                accepts with name "agentgate-elicited"
//   ping         ping request
//   delete       streamable: DELETE the session (transport.terminateSession());
//                sse: close the GET stream (no DELETE exists in that transport)
//
// Exit status: 0 when every line had ok:true, except that a `call` step
// answered with a JSON-RPC error (ok:false with "code") is data, not failure;
// 1 when any other line had ok:false (including a call that failed without a
// JSON-RPC error: transport error, timeout); 2 on bad usage; 4 on the overall
// timeout (a final {"step":"timeout","ok":false} line is printed).
import { randomBytes } from 'node:crypto';
import { agentPlan, args, emit, log, need, resultText, since, withTimeout } from './lib.mjs';

const USAGE =
	'agent.mjs --url URL [--transport streamable|sse] --steps a,b,c [--call TOOL --args JSON]... [--timeout MS]';
const opt = args(
	{
		url: { type: 'string' },
		transport: { type: 'string', default: 'streamable' },
		steps: { type: 'string', default: 'initialize,list' },
		call: { type: 'string', multiple: true, default: [] },
		args: { type: 'string', multiple: true, default: [] },
		timeout: { type: 'string', default: '20000' },
		'progress-duration': { type: 'string', default: '1' },
		'progress-steps': { type: 'string', default: '4' },
	},
	USAGE,
);
if (!opt.url || !['streamable', 'sse'].includes(opt.transport)) {
	log(`usage: ${USAGE}`);
	process.exit(2);
}
const { overallMs, steps, callArgs, watchdog } = agentPlan(opt);

const { Client } = await need('@modelcontextprotocol/sdk/client/index.js');
const { StreamableHTTPClientTransport } = await need('@modelcontextprotocol/sdk/client/streamableHttp.js');
const { SSEClientTransport } = await need('@modelcontextprotocol/sdk/client/sse.js');
const { CreateMessageRequestSchema, ElicitRequestSchema, McpError } = await need('@modelcontextprotocol/sdk/types.js');

const canary = `Bearer agent-canary-${randomBytes(12).toString('hex')}`;
const SAMPLED = 'agentgate-sampled';
const ELICITED = 'agentgate-elicited';
const stepTimeout = Math.max(1000, overallMs - 1000);

// Record what the transport's fetches returned (for the delete line and debugging).
const httpLog = [];
const recordingFetch = async (url, init) => {
	const res = await fetch(url, init);
	httpLog.push({ method: init?.method ?? 'GET', status: res.status });
	if (httpLog.length > 1000) httpLog.shift();
	return res;
};

const url = new URL(opt.url);
const requestInit = { headers: { Authorization: canary } };
const transport =
	opt.transport === 'sse'
		? new SSEClientTransport(url, { requestInit, fetch: recordingFetch })
		: new StreamableHTTPClientTransport(url, { requestInit, fetch: recordingFetch });

// The SDK calls setProtocolVersion(negotiated) after initialize: record it.
let negotiatedVersion;
const origSetVersion = transport.setProtocolVersion?.bind(transport);
transport.setProtocolVersion = (v) => {
	negotiatedVersion = v;
	origSetVersion?.(v);
};

const client = new Client(
	{ name: 'agentgate-e2e-agent', version: '1.0.0' },
	{ capabilities: { sampling: {}, elicitation: { form: {} } } },
);
client.onerror = (err) => log(`client error: ${err?.message ?? err}`);

let samplingCalls = 0;
client.setRequestHandler(CreateMessageRequestSchema, async () => {
	samplingCalls++;
	return {
		role: 'assistant',
		content: { type: 'text', text: SAMPLED },
		model: 'agentgate-canned',
		stopReason: 'endTurn',
	};
});
let elicitCalls = 0;
client.setRequestHandler(ElicitRequestSchema, async () => {
	elicitCalls++;
	return { action: 'accept', content: { name: ELICITED, check: true } };
});

// Wire tap for the progress step: sees every JSON-RPC message in transport order.
let wireTap = null;
const origSend = transport.send.bind(transport);
transport.send = (msg, options) => {
	if (wireTap && msg?.method === 'tools/call' && msg.params?.name === wireTap.tool) wireTap.id = msg.id;
	return origSend(msg, options);
};
function tapIncoming(msg) {
	const t = wireTap;
	if (!t || t.id === undefined || !msg) return;
	if (msg.method === 'notifications/progress' && msg.params?.progressToken === t.id)
		t.events.push({ progress: msg.params.progress, ms: since(t.t0), afterResult: t.resultMs !== null });
	else if (msg.id === t.id && ('result' in msg || 'error' in msg) && t.resultMs === null) t.resultMs = since(t.t0);
}

let connected = false;
let failed = false;

function out(obj) {
	if (!obj.ok && !obj.data) failed = true;
	delete obj.data;
	emit(obj);
}

async function ensureConnected() {
	if (connected) return;
	connected = true; // one attempt only
	const t0 = performance.now();
	await withTimeout(client.connect(transport, { timeout: stepTimeout }), stepTimeout, 'initialize');
	const onmessage = transport.onmessage; // installed by client.connect()
	transport.onmessage = (msg, extra) => {
		tapIncoming(msg);
		onmessage?.(msg, extra);
	};
	const info = client.getServerVersion() ?? {};
	out({
		step: 'initialize',
		ok: true,
		protocolVersion: negotiatedVersion ?? null,
		serverName: info.name ?? null,
		serverVersion: info.version ?? null,
		sessionId: transport.sessionId ?? null,
		transport: opt.transport,
		canary,
		ms: since(t0),
	});
}

/** tools/call, with optional onprogress; resolves to the raw result. */
function callTool(name, toolArgs, extra = {}) {
	return client.callTool({ name, arguments: toolArgs }, undefined, { timeout: stepTimeout, ...extra });
}

let callIndex = 0;
const handlers = {
	async initialize() {
		if (connected) throw new Error('already initialized');
		await ensureConnected();
	},

	async list() {
		await ensureConnected();
		const tools = [];
		let cursor;
		for (let page = 0; page < 50; page++) {
			const r = await client.listTools(cursor ? { cursor } : undefined, { timeout: stepTimeout });
			tools.push(...r.tools.map((t) => t.name));
			cursor = r.nextCursor;
			if (!cursor) break;
		}
		out({ step: 'list', ok: true, tools });
	},

	async call() {
		await ensureConnected();
		if (opt.call.length === 0) throw new Error('call step needs --call TOOL');
		const i = Math.min(callIndex, opt.call.length - 1);
		const tool = opt.call[i];
		const toolArgs = callArgs[Math.min(callIndex, callArgs.length - 1)] ?? {};
		callIndex++;
		try {
			const r = await callTool(tool, toolArgs);
			out({ step: 'call', tool, ok: true, isError: r.isError === true, text: resultText(r), _meta: r._meta });
		} catch (err) {
			if (err instanceof McpError && typeof err.code === 'number' && err.code !== -32001) {
				// A JSON-RPC error response: reported as data (see exit status).
				out({ step: 'call', tool, ok: false, data: true, code: err.code, message: err.message });
			} else throw Object.assign(err, { step: 'call', tool });
		}
	},

	async progress() {
		await ensureConnected();
		const duration = Number(opt['progress-duration']);
		const nsteps = Number(opt['progress-steps']);
		const t0 = performance.now();
		let handlerEvents = 0;
		const tap = (wireTap = { t0, tool: 'trigger-long-running-operation', id: undefined, events: [], resultMs: null });
		let r;
		try {
			r = await callTool(tap.tool, { duration, steps: nsteps }, { onprogress: () => handlerEvents++ });
		} finally {
			wireTap = null;
		}
		// Order and timing as seen on the wire (the raw transport messages):
		// the SDK runs progress handlers a microtask late, so a progress event
		// arriving in the same read as the result would be miscounted there.
		const before = tap.events.filter((e) => !e.afterResult).length;
		const firstMs = tap.events[0]?.ms ?? null;
		const resultMs = tap.resultMs ?? since(t0);
		// Live delivery: the first progress event came well before the result
		// (a buffering middlebox would deliver them all at once, with the result).
		const live = firstMs !== null && resultMs - firstMs >= (duration * 1000 * (nsteps - 1)) / nsteps / 2;
		const progressBeforeResult = before === nsteps && tap.events.length === before;
		out({
			step: 'progress',
			ok: progressBeforeResult && live && !r.isError,
			progressEvents: tap.events.length,
			progressBeforeResult,
			live,
			firstProgressMs: firstMs,
			resultMs,
			handlerEvents,
			isError: r.isError === true,
			text: resultText(r),
		});
	},

	async sampling() {
		await ensureConnected();
		const before = samplingCalls;
		const r = await callTool('trigger-sampling-request', { prompt: 'agentgate e2e sampling', maxTokens: 16 });
		const text = resultText(r);
		const handlerCalled = samplingCalls > before;
		out({ step: 'sampling', ok: handlerCalled && !r.isError && text.includes(SAMPLED), handlerCalled, isError: r.isError === true, text });
	},

	async elicitation() {
		await ensureConnected();
		const before = elicitCalls;
		const r = await callTool('trigger-elicitation-request', {});
		const text = resultText(r);
		const handlerCalled = elicitCalls > before;
		out({ step: 'elicitation', ok: handlerCalled && !r.isError && text.includes(ELICITED), handlerCalled, isError: r.isError === true, text });
	},

	async ping() {
		await ensureConnected();
		const t0 = performance.now();
		await client.ping({ timeout: stepTimeout });
		out({ step: 'ping', ok: true, ms: since(t0) });
	},

	async delete() {
		await ensureConnected();
		if (opt.transport === 'sse') {
			await client.close();
			out({ step: 'delete', ok: true, transport: 'sse', closed: true });
			return;
		}
		const sessionId = transport.sessionId ?? null;
		const n = httpLog.length;
		await withTimeout(transport.terminateSession(), stepTimeout, 'terminateSession');
		const del = httpLog.slice(n).find((h) => h.method === 'DELETE');
		out({ step: 'delete', ok: true, sessionId, status: del?.status ?? null, sessionCleared: transport.sessionId === undefined });
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
		const line = { step: err?.step ?? step, ok: false };
		if (err?.tool) line.tool = err.tool;
		if (typeof err?.code === 'number') line.code = err.code;
		line.error = err?.message ?? String(err);
		out(line);
		if (!client.transport && step !== 'delete') {
			// The connection is gone; the remaining steps cannot run.
			log('agent: connection lost, stopping');
			break;
		}
	}
}

clearTimeout(watchdog);
try {
	await withTimeout(client.close(), 2000, 'close');
} catch (err) {
	log(`agent: close: ${err.message}`);
}
process.exit(failed ? 1 : 0);
