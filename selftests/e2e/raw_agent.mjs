#!/usr/bin/env node
// raw_agent.mjs --url BASE --scenario NAME [--secret TEXT]
//
// A hostile MCP agent written with node:http only, for the red-team tests
// (selftests/test_redteam_mcp.c): it sends what an SDK client never would
// and prints ONE JSON line per step on stdout. BASE is the server's origin
// (http://127.0.0.1:PORT). Scenarios:
//   replay          Streamable HTTP (/mcp): a tools/call of echo answered on
//                   an SSE stream, then a GET with Last-Event-ID that makes
//                   the server replay that result  -> "replayed":TEXT
//   legacy-decoy    legacy HTTP+SSE (/sse): a tools/call POSTed to
//                   /message?xsessionId=bogus&sessionId=<id>
//                                                  -> "status", "streamed":TEXT
//   legacy-encoded  the same with the session id percent-encoded
//   legacy-utf7     a tools/call of echo that reads as one of get-env in
//                   UTF-7, with "Content-Type: application/json; charset=utf-7"
//                                                  -> "status", "streamed":TEXT
// "streamed" is the text of the tools/call result that came on the session's
// stream within 3 s, or null.
import http from 'node:http';
import { args, emit, log } from './lib.mjs';

const opt = args(
	{
		url: { type: 'string' },
		scenario: { type: 'string' },
		secret: { type: 'string', default: 'agentgate-secret-42' },
	},
	'raw_agent.mjs --url BASE --scenario NAME [--secret TEXT]',
);
const base = new URL(opt.url);
const initialize = {
	jsonrpc: '2.0',
	id: 1,
	method: 'initialize',
	params: {
		protocolVersion: '2025-11-25',
		capabilities: {},
		clientInfo: { name: 'raw-agent', version: '0' },
	},
};
const echo = (id) => ({
	jsonrpc: '2.0',
	id,
	method: 'tools/call',
	params: { name: 'echo', arguments: { message: `${opt.secret} and more` } },
});

function request(method, path, headers, body) {
	return new Promise((resolve, reject) => {
		const req = http.request(
			{ host: base.hostname, port: base.port, method, path, headers },
			resolve,
		);
		req.on('error', reject);
		req.end(body);
	});
}

async function readAll(res) {
	let s = '';
	for await (const chunk of res) s += chunk;
	return s;
}

// SSE events of a response, as they come: calls onEvent({id, event, data}).
function events(res, onEvent) {
	let buf = '';
	res.setEncoding('utf8');
	res.on('data', (chunk) => {
		buf += chunk.replace(/\r\n/g, '\n');
		let i;
		while ((i = buf.indexOf('\n\n')) >= 0) {
			const ev = { id: null, event: 'message', data: '' };
			for (const line of buf.slice(0, i).split('\n')) {
				const m = /^(\w+): ?(.*)$/.exec(line);
				if (m && m[1] === 'data') ev.data += m[2];
				else if (m) ev[m[1]] = m[2];
			}
			buf = buf.slice(i + 2);
			onEvent(ev);
		}
	});
}

const resultText = (msg) => msg?.result?.content?.[0]?.text ?? null;
const json = { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' };

async function replay() {
	let res = await request('POST', '/mcp', json, JSON.stringify(initialize));
	const sid = res.headers['mcp-session-id'];
	await readAll(res);
	const h = { ...json, 'Mcp-Session-Id': sid, 'MCP-Protocol-Version': '2025-11-25' };
	res = await request('POST', '/mcp', h, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));
	await readAll(res);
	res = await request('POST', '/mcp', h, JSON.stringify(echo(2)));
	const seen = [];
	let live = null;
	await new Promise((resolve) => {
		events(res, (ev) => {
			seen.push(ev.id);
			if (ev.data) live = resultText(JSON.parse(ev.data));
		});
		res.on('end', resolve);
	});
	emit({ step: 'call', ok: live !== null, text: live, eventIds: seen.length });
	// Resume after the first event (the priming one): the result is replayed.
	res = await request('GET', '/mcp', { ...h, Accept: 'text/event-stream', 'Last-Event-ID': seen[0] });
	const replayed = await new Promise((resolve) => {
		const t = setTimeout(() => resolve(null), 3000);
		events(res, (ev) => {
			if (!ev.data) return;
			clearTimeout(t);
			resolve(resultText(JSON.parse(ev.data)));
		});
		res.on('end', () => resolve(null));
	});
	res.destroy();
	emit({ step: 'replay', ok: true, status: res.statusCode, replayed });
}

// Opens the legacy stream; resolves with its session id and a way to await
// the result of a request id on it.
async function legacyOpen() {
	const res = await request('GET', '/sse', { Accept: 'text/event-stream' });
	const waiters = new Map();
	const endpoint = await new Promise((resolve) => {
		events(res, (ev) => {
			if (ev.event === 'endpoint') return resolve(ev.data);
			const msg = JSON.parse(ev.data);
			waiters.get(msg.id)?.(msg);
		});
	});
	const wait = (id) =>
		new Promise((resolve) => {
			const t = setTimeout(() => resolve(null), 3000);
			waiters.set(id, (msg) => {
				clearTimeout(t);
				resolve(msg);
			});
		});
	const u = new URL(endpoint, base);
	return { res, path: u.pathname, sid: u.searchParams.get('sessionId'), wait };
}

async function legacyPost(s, target, headers, body, id) {
	const answer = s.wait(id);
	const res = await request('POST', target, headers, body);
	await readAll(res);
	return { status: res.statusCode, msg: res.statusCode < 300 ? await answer : null };
}

async function legacy(kind) {
	const s = await legacyOpen();
	const ok = `${s.path}?sessionId=${encodeURIComponent(s.sid)}`;
	let r = await legacyPost(s, ok, json, JSON.stringify(initialize), 1);
	emit({ step: 'initialize', ok: r.status === 202 && !!r.msg, status: r.status });
	await legacyPost(s, ok, json, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));
	if (kind === 'utf7') {
		// As UTF-8, a call of echo whose message is text; as UTF-7, that text
		// closes the message and names get-env again (the last "name" wins).
		const inject =
			'+ACIAfQAsACIAbgBhAG0AZQAiADoAIgBnAGUAdAAtAGUAbgB2ACIALAAiAGEAcgBnAHUAbQBlAG4AdABzACIAOgB7ACIAbQAiADoAIg-';
		const body = `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"message":"${inject}"}}}`;
		r = await legacyPost(s, ok, { ...json, 'Content-Type': 'application/json; charset=utf-7' }, body, 3);
	} else {
		const encoded = [...s.sid].map((c) => '%' + c.charCodeAt(0).toString(16).padStart(2, '0')).join('');
		const target =
			kind === 'decoy' ? `${s.path}?xsessionId=bogus&sessionId=${s.sid}` : `${s.path}?sessionId=${encoded}`;
		r = await legacyPost(s, target, json, JSON.stringify(echo(3)), 3);
	}
	emit({ step: 'call', ok: true, status: r.status, streamed: resultText(r.msg), error: r.msg?.error?.message ?? null });
	s.res.destroy();
}

try {
	if (opt.scenario === 'replay') await replay();
	else if (opt.scenario.startsWith('legacy-')) await legacy(opt.scenario.slice(7));
	else throw new Error(`unknown scenario ${opt.scenario}`);
	process.exit(0);
} catch (err) {
	log(err?.stack ?? String(err));
	emit({ step: 'error', ok: false, message: String(err?.message ?? err) });
	process.exit(1);
}
