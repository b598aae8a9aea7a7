#!/usr/bin/env node
// dial_stdio.mjs
//
// A stdio MCP server (official SDK 1.x, low-level Server over
// StdioServerTransport) that agentgated hosts in the hosted-server tests: it
// shows what the gateway lets a hosted server do, and how the bridge copes
// when one misbehaves. Tools:
//   dial   {host, port}  connects out; text "connected" or "error:<code>"
//   crash  {}            exits with status 3 before answering
//   noise  {}            writes a non-JSON line to stdout, a long line to
//                        stderr, then answers "quiet again"
//   whoami {}            text "<uid> <cwd> <FOO env var> <pid>"
//   huge   {}            writes 5 MiB on stdout without a newline, never answers
import net from 'node:net';
import { writeSync } from 'node:fs';
import { need } from './lib.mjs';

const { Server } = await need('@modelcontextprotocol/sdk/server/index.js');
const { StdioServerTransport } = await need('@modelcontextprotocol/sdk/server/stdio.js');
const { CallToolRequestSchema, ListToolsRequestSchema } = await need('@modelcontextprotocol/sdk/types.js');

const server = new Server({ name: 'dial', version: '1.0.0' }, { capabilities: { tools: {} } });
const obj = (props) => ({ type: 'object', properties: props });
const text = (t) => ({ content: [{ type: 'text', text: t }] });

server.setRequestHandler(ListToolsRequestSchema, async () => ({
	tools: [
		{ name: 'dial', description: 'connect out', inputSchema: obj({ host: { type: 'string' }, port: { type: 'number' } }) },
		{ name: 'crash', description: 'exit', inputSchema: obj({}) },
		{ name: 'noise', description: 'garbage on stdout', inputSchema: obj({}) },
		{ name: 'whoami', description: 'uid, cwd, FOO', inputSchema: obj({}) },
		{ name: 'huge', description: 'a line over 4 MiB', inputSchema: obj({}) },
	],
}));

function dial(host, port) {
	return new Promise((resolve) => {
		const s = net.connect({ host, port });
		const done = (t) => {
			s.destroy();
			resolve(t);
		};
		s.setTimeout(5000, () => done('error:TIMEOUT'));
		s.on('connect', () => done('connected'));
		s.on('error', (e) => done(`error:${e.code}`));
	});
}

server.setRequestHandler(CallToolRequestSchema, async (req) => {
	const a = req.params.arguments || {};
	switch (req.params.name) {
		case 'dial':
			return text(await dial(a.host, a.port));
		case 'crash':
			process.exit(3);
			break;
		case 'noise':
			writeSync(1, 'this is not JSON-RPC\n');
			writeSync(2, 'x'.repeat(2000) + '\n');
			return text('quiet again');
		case 'huge':
			// Through the stream, which waits for the pipe: writeSync would stop at EAGAIN.
			process.stdout.write('x'.repeat(5 << 20));
			return new Promise(() => {});
		case 'whoami':
			return text(`${process.getuid()} ${process.cwd()} ${process.env.FOO} ${process.pid}`);
	}
	throw new Error(`unknown tool ${req.params.name}`);
});

await server.connect(new StdioServerTransport());
