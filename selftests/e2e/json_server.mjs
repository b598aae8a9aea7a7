#!/usr/bin/env node
// json_server.mjs --db FILE --log FILE [--port N]
//
// A real REST API (json-server, the npm package) for the HTTP service tests:
// its router serves FILE (a JSON database it writes back on every change),
// behind json-server's default middlewares (logger off), so method override,
// body parsing and routing are json-server's own. Each request that reaches
// it is first appended to --log as one JSON line {method, url, headers}:
// what the upstream saw, credentials included.
//
// Listens on 127.0.0.1 (port 0: the kernel picks) and prints {"port":N}
// once ready. Nothing else is written to stdout. Exits 0 on SIGTERM/SIGINT.
import { appendFileSync } from 'node:fs';
import http from 'node:http';
import { args, emit, exitOnSignals, listenLoopback, need, port } from './lib.mjs';

const opt = args(
	{
		db: { type: 'string' },
		log: { type: 'string' },
		port: { type: 'string', default: '0' },
	},
	'json_server.mjs --db FILE --log FILE [--port N]',
);
const jsonServer = (await need('json-server')).default;
const app = jsonServer.create();

app.use((req, res, next) => {
	appendFileSync(
		opt.log,
		JSON.stringify({ method: req.method, url: req.url, headers: req.headers }) + '\n',
	);
	next();
});
app.use(jsonServer.defaults({ logger: false }));
app.use(jsonServer.bodyParser);
app.use(jsonServer.router(opt.db));

const server = http.createServer(app);
exitOnSignals(() => new Promise((done) => server.close(done)));
emit({ port: await listenLoopback(server, port(opt.port)) });
