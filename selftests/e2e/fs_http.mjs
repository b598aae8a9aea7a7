#!/usr/bin/env node
// fs_http.mjs --port N --root DIR
//
// Serves @modelcontextprotocol/server-filesystem (pinned in package.json),
// which speaks only stdio, over Streamable HTTP on 127.0.0.1 (POST/GET/DELETE
// /mcp), and prints `READY <port>` once it listens. The server runs as a child
// with DIR as its one allowed directory; each JSON-RPC message is passed
// through unchanged in both directions, so the gateway sees the server's own
// tools/list (annotations included) and answers. One session: the tests run
// one agent against it. Exits 0 on SIGTERM/SIGINT.
import { createRequire } from 'node:module';
import { randomUUID } from 'node:crypto';
import { E2E_DIR, args, exitOnSignals, listenLoopback, log, need, port, ready } from './lib.mjs';

const USAGE = 'fs_http.mjs --port N --root DIR';
const opt = args({ port: { type: 'string' }, root: { type: 'string' } }, USAGE);
if (opt.port === undefined || !opt.root) {
	log(`usage: ${USAGE}`);
	process.exit(2);
}
const wantPort = port(opt.port);

const { StdioClientTransport } = await need('@modelcontextprotocol/sdk/client/stdio.js');
const { StreamableHTTPServerTransport } = await need('@modelcontextprotocol/sdk/server/streamableHttp.js');

const require = createRequire(`${E2E_DIR}/node_modules/`);
const serverJs = require.resolve('@modelcontextprotocol/server-filesystem/dist/index.js');
const child = new StdioClientTransport({ command: process.execPath, args: [serverJs, opt.root], stderr: 'inherit' });
const http = new StreamableHTTPServerTransport({ sessionIdGenerator: () => randomUUID() });

http.onmessage = (msg) => child.send(msg).catch((err) => log(`to the server: ${err.message}`));
child.onmessage = (msg) => http.send(msg).catch((err) => log(`to the client: ${err.message}`));
child.onclose = () => log('filesystem server exited');
await child.start();
await http.start();

const httpServer = (await import('node:http')).createServer((req, res) => {
	log(`${req.method} ${req.url} session=${req.headers['mcp-session-id'] ?? '-'}`);
	if (new URL(req.url, 'http://x').pathname !== '/mcp') {
		res.writeHead(404).end();
		return;
	}
	http.handleRequest(req, res).catch((err) => {
		log(`error handling ${req.method}: ${err?.stack ?? err}`);
		if (!res.headersSent) res.writeHead(500).end();
	});
});
let bound;
try {
	bound = await listenLoopback(httpServer, wantPort);
} catch (err) {
	log(`fs_http.mjs: cannot listen on 127.0.0.1:${wantPort}: ${err.message}`);
	process.exit(1);
}
log(`server-filesystem (${opt.root}) listening on 127.0.0.1:${bound}`);
exitOnSignals(async () => {
	await http.close().catch(() => {});
	await child.close().catch(() => {});
	httpServer.closeAllConnections?.();
	await new Promise((r) => httpServer.close(r));
});
ready(bound);
