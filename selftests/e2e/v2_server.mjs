#!/usr/bin/env node
// v2_server.mjs --port N [--legacy stateless|reject] [--response-mode auto|sse|json]
//                [--echo-description TEXT]
//
// A small MCP server for the 2026-07-28 (stateless, per-request) protocol era,
// built with @modelcontextprotocol/server 2.x: createMcpHandler() with a
// per-request McpServer factory, served at POST /mcp on 127.0.0.1:N only.
// Prints `READY <port>` on stdout once listening; exits 0 on SIGTERM/SIGINT.
//
// Tools: echo {text} -> text; add {a,b} -> "a+b" as text (and structured
//        {sum}); secret-tool {} -> "should not be reachable".
// --echo-description replaces echo's description: a server that changes a
// tool after it was trusted (the tool-integrity tests).
//
// Eras: a request carrying the 2026-07-28 envelope (_meta protocol version
// claim, MCP-Protocol-Version: 2026-07-28, Mcp-Method / Mcp-Name headers that
// the SDK checks against the body, -32020 on mismatch) is served by the
// modern path; 2025-era traffic (initialize handshake) gets the SDK's
// stateless legacy fallback unless --legacy reject.
//
// The SDK's handler is web-standard (Request -> Response); the node:http
// bridge below streams the Response body through unbuffered (SSE responses
// reach the client event by event). @modelcontextprotocol/node's
// toNodeHandler does the same; this avoids one more dependency.
import http from 'node:http';
import { Readable } from 'node:stream';
import { args, exitOnSignals, listenLoopback, log, need, port, ready } from './lib.mjs';

const USAGE =
	'v2_server.mjs --port N [--legacy stateless|reject] [--response-mode auto|sse|json] [--echo-description TEXT]';
const opt = args(
	{
		port: { type: 'string' },
		legacy: { type: 'string', default: 'stateless' },
		'response-mode': { type: 'string', default: 'auto' },
		'echo-description': { type: 'string', default: 'Returns the text' },
	},
	USAGE,
);
if (
	opt.port === undefined ||
	!['stateless', 'reject'].includes(opt.legacy) ||
	!['auto', 'sse', 'json'].includes(opt['response-mode'])
) {
	log(`usage: ${USAGE}`);
	process.exit(2);
}
const wantPort = port(opt.port);

const { McpServer, createMcpHandler } = await need('@modelcontextprotocol/server');
const { z } = await need('zod');

function makeServer(ctx) {
	const server = new McpServer({ name: 'agentgate-v2-server', version: '1.0.0' }, { capabilities: { tools: {} } });
	server.registerTool(
		'echo',
		{ description: opt['echo-description'], inputSchema: z.object({ text: z.string() }) },
		async ({ text }) => ({ content: [{ type: 'text', text }] }),
	);
	server.registerTool(
		'add',
		{
			description: 'Returns a+b',
			inputSchema: z.object({ a: z.number(), b: z.number() }),
			outputSchema: z.object({ sum: z.number() }),
		},
		async ({ a, b }) => ({ content: [{ type: 'text', text: String(a + b) }], structuredContent: { sum: a + b } }),
	);
	server.registerTool('secret-tool', { description: 'Must be hidden by policy' }, async () => ({
		content: [{ type: 'text', text: 'should not be reachable' }],
	}));
	log(`v2_server: instance for era=${ctx?.era}`);
	return server;
}

const handler = createMcpHandler(makeServer, {
	legacy: opt.legacy,
	responseMode: opt['response-mode'],
	onerror: (err) => log(`v2_server: ${err?.message ?? err}`),
});

/** node:http request -> web Request (body streamed). */
function toWebRequest(req, signal) {
	const headers = new Headers();
	for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i], req.rawHeaders[i + 1]);
	const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
	return new Request(`http://${req.headers.host ?? '127.0.0.1'}${req.url}`, {
		method: req.method,
		headers,
		body: hasBody ? Readable.toWeb(req) : undefined,
		duplex: hasBody ? 'half' : undefined,
		signal,
	});
}

const httpServer = http.createServer(async (req, res) => {
	log(
		`v2_server: ${req.method} ${req.url} mcp-protocol-version=${req.headers['mcp-protocol-version'] ?? '-'} ` +
			`mcp-method=${req.headers['mcp-method'] ?? '-'} mcp-name=${req.headers['mcp-name'] ?? '-'}`,
	);
	const ac = new AbortController();
	res.on('close', () => ac.abort());
	try {
		if (!req.url.startsWith('/mcp')) {
			res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
			return;
		}
		const response = await handler.fetch(toWebRequest(req, ac.signal));
		const headers = {};
		response.headers.forEach((v, k) => (headers[k] = v));
		res.writeHead(response.status, headers);
		res.flushHeaders();
		if (!response.body) return void res.end();
		const reader = response.body.getReader();
		for (;;) {
			const { done, value } = await reader.read();
			if (done) break;
			res.write(value); // each SSE frame as soon as the SDK produces it
		}
		res.end();
	} catch (err) {
		if (ac.signal.aborted) return;
		log(`v2_server: error: ${err?.stack ?? err}`);
		if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' }).end('internal error\n');
		else res.destroy();
	}
});
httpServer.on('connection', (s) => s.setNoDelay(true));

let bound;
try {
	bound = await listenLoopback(httpServer, wantPort);
} catch (err) {
	log(`v2_server: cannot listen on 127.0.0.1:${wantPort}: ${err.message}`);
	process.exit(1);
}
log(`v2_server: listening on 127.0.0.1:${bound} (legacy=${opt.legacy}, responseMode=${opt['response-mode']})`);
exitOnSignals(async () => {
	await handler.close();
	httpServer.closeAllConnections();
	await new Promise((r) => httpServer.close(r));
});
ready(bound);
