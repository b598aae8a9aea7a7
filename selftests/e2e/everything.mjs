#!/usr/bin/env node
// everything.mjs --port N --mode streamableHttp|sse
//
// Runs @modelcontextprotocol/server-everything (pinned in package.json) over
// HTTP, bound to 127.0.0.1 only, and prints `READY <port>` on stdout once it
// listens (--port 0 lets the kernel pick). Exits 0 on SIGTERM/SIGINT.
//
// The package's own entry points (dist/transports/streamableHttp.js and sse.js)
// call express's app.listen(PORT), which binds every interface, and cannot be
// told otherwise. So this file imports the package's server factory
// (dist/server/index.js createServer) and mounts it exactly the way those entry
// points do, on an express app bound to 127.0.0.1:
//   streamableHttp: POST/GET/DELETE /mcp, one StreamableHTTPServerTransport per
//                   session (Mcp-Session-Id), with an in-memory event store for
//                   resumability (Last-Event-ID)
//   sse (legacy 2024-11-05 HTTP+SSE): GET /sse opens the stream, whose
//                   `endpoint` event names POST /message?sessionId=...
// Permissive CORS as upstream. No DNS-rebinding (Host) checks, as upstream.
// Request logs go to stderr (stdout carries only the READY line).
import { randomUUID } from 'node:crypto';
import { args, exitOnSignals, listenLoopback, log, need, port, ready } from './lib.mjs';

const USAGE = 'everything.mjs --port N --mode streamableHttp|sse';
const opt = args({ port: { type: 'string' }, mode: { type: 'string', default: 'streamableHttp' } }, USAGE);
if (opt.port === undefined) {
	log(`usage: ${USAGE}`);
	process.exit(2);
}
const wantPort = port(opt.port);
if (opt.mode !== 'streamableHttp' && opt.mode !== 'sse') {
	log(`unknown --mode ${opt.mode}; usage: ${USAGE}`);
	process.exit(2);
}

const { default: express } = await need('express');
const { default: cors } = await need('cors');
const { createServer } = await need('@modelcontextprotocol/server-everything/dist/server/index.js');

const app = express();
const sessions = new Map(); // sessionId -> { transport, cleanup }

function badSession(req, res) {
	res.status(400).json({
		jsonrpc: '2.0',
		error: { code: -32000, message: 'Bad Request: No valid session ID provided' },
		id: req?.body?.id ?? null,
	});
}

if (opt.mode === 'streamableHttp') {
	const { StreamableHTTPServerTransport } = await need('@modelcontextprotocol/sdk/server/streamableHttp.js');

	// Same in-memory event store as upstream's streamableHttp entry, bounded.
	class InMemoryEventStore {
		events = new Map();
		async storeEvent(streamId, message) {
			const eventId = randomUUID();
			this.events.set(eventId, { streamId, message });
			if (this.events.size > 10000) this.events.delete(this.events.keys().next().value);
			return eventId;
		}
		async replayEventsAfter(lastEventId, { send }) {
			const entries = Array.from(this.events.entries());
			const start = entries.findIndex(([id]) => id === lastEventId);
			if (start === -1) return lastEventId;
			const streamId = entries[start][1].streamId;
			let last = lastEventId;
			for (let i = start + 1; i < entries.length; i++) {
				const [eventId, ev] = entries[i];
				if (ev.streamId !== streamId) continue;
				await send(eventId, ev.message);
				last = eventId;
			}
			return last;
		}
	}

	app.use(
		cors({
			origin: '*',
			methods: 'GET,POST,DELETE',
			preflightContinue: false,
			optionsSuccessStatus: 204,
			exposedHeaders: ['mcp-session-id', 'last-event-id', 'mcp-protocol-version'],
		}),
	);

	app.post('/mcp', async (req, res) => {
		const sid = req.headers['mcp-session-id'];
		log(`POST /mcp session=${sid ?? '-'}`);
		try {
			if (sid && sessions.has(sid)) {
				await sessions.get(sid).transport.handleRequest(req, res);
				return;
			}
			if (sid) return badSession(req, res);
			const { server, cleanup } = createServer();
			const transport = new StreamableHTTPServerTransport({
				sessionIdGenerator: () => randomUUID(),
				eventStore: new InMemoryEventStore(),
				onsessioninitialized: (id) => {
					log(`session initialized ${id}`);
					sessions.set(id, { transport, cleanup });
				},
			});
			server.server.onclose = async () => {
				const id = transport.sessionId;
				if (id && sessions.has(id)) {
					log(`session closed ${id}`);
					sessions.delete(id);
					cleanup(id);
				}
			};
			await server.connect(transport);
			await transport.handleRequest(req, res);
		} catch (err) {
			log(`error handling POST: ${err?.stack ?? err}`);
			if (!res.headersSent)
				res.status(500).json({
					jsonrpc: '2.0',
					error: { code: -32603, message: 'Internal server error' },
					id: req?.body?.id ?? null,
				});
		}
	});

	const existing = (method) => async (req, res) => {
		const sid = req.headers['mcp-session-id'];
		log(`${method} /mcp session=${sid ?? '-'} last-event-id=${req.headers['last-event-id'] ?? '-'}`);
		if (!sid || !sessions.has(sid)) return badSession(req, res);
		try {
			await sessions.get(sid).transport.handleRequest(req, res);
		} catch (err) {
			log(`error handling ${method}: ${err?.stack ?? err}`);
			if (!res.headersSent)
				res.status(500).json({
					jsonrpc: '2.0',
					error: { code: -32603, message: 'Internal server error' },
					id: null,
				});
		}
	};
	app.get('/mcp', existing('GET'));
	app.delete('/mcp', existing('DELETE'));
} else {
	const { SSEServerTransport } = await need('@modelcontextprotocol/sdk/server/sse.js');

	app.use(cors({ origin: '*', methods: 'GET,POST', preflightContinue: false, optionsSuccessStatus: 204 }));

	app.get('/sse', async (req, res) => {
		log('GET /sse');
		try {
			const { server, cleanup } = createServer();
			const transport = new SSEServerTransport('/message', res);
			sessions.set(transport.sessionId, { transport, cleanup });
			server.server.onclose = async () => {
				log(`session closed ${transport.sessionId}`);
				sessions.delete(transport.sessionId);
				cleanup(transport.sessionId);
			};
			await server.connect(transport);
			log(`session connected ${transport.sessionId}`);
		} catch (err) {
			log(`error handling GET /sse: ${err?.stack ?? err}`);
			if (!res.headersSent) res.status(500).end();
		}
	});

	app.post('/message', async (req, res) => {
		const sid = req.query?.sessionId;
		log(`POST /message session=${sid ?? '-'}`);
		const s = sid && sessions.get(String(sid));
		if (!s) {
			res.status(404).type('text/plain').send('Session not found');
			return;
		}
		try {
			await s.transport.handlePostMessage(req, res);
		} catch (err) {
			log(`error handling POST /message: ${err?.stack ?? err}`);
			if (!res.headersSent) res.status(500).end();
		}
	});
}

const httpServer = (await import('node:http')).createServer(app);
let bound;
try {
	bound = await listenLoopback(httpServer, wantPort);
} catch (err) {
	log(`everything.mjs: cannot listen on 127.0.0.1:${wantPort}: ${err.message}`);
	process.exit(1);
}
log(`server-everything (${opt.mode}) listening on 127.0.0.1:${bound}`);
exitOnSignals(async () => {
	for (const [id, s] of sessions) {
		try {
			await s.transport.close();
		} catch {}
		s.cleanup(id);
	}
	sessions.clear();
	httpServer.closeAllConnections?.();
	await new Promise((r) => httpServer.close(r));
});
ready(bound);
