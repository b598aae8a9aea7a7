#!/usr/bin/env node
// capture_proxy.mjs --listen N --target PORT --log FILE
//
// A tiny HTTP/1.1 reverse proxy for tests: listens on 127.0.0.1:N (0 = kernel
// picks), forwards every request to 127.0.0.1:PORT, and appends one JSON line
// per request to FILE, written synchronously when the request head arrives
// (before it is forwarded):
//   {"seq":1,"time":"...","method":"POST","url":"/mcp","httpVersion":"1.1",
//    "headers":{lower-cased name: value, duplicates joined as Node does},
//    "rawHeaders":[["Name","value"],...]}   (exact case, order and duplicates)
// Bodies are not logged. Request and response bodies stream through unbuffered
// in both directions (an SSE response reaches the client event by event), and
// the request's header lines are forwarded as received (same case, order and
// duplicates, Host included). Prints `READY <port>` on stdout once listening;
// exits 0 on SIGTERM/SIGINT. Needs no npm package.
import http from 'node:http';
import { appendFileSync } from 'node:fs';
import { args, exitOnSignals, listenLoopback, log, port, ready } from './lib.mjs';

const USAGE = 'capture_proxy.mjs --listen N --target PORT --log FILE';
const opt = args({ listen: { type: 'string' }, target: { type: 'string' }, log: { type: 'string' } }, USAGE);
if (opt.listen === undefined || opt.target === undefined || !opt.log) {
	log(`usage: ${USAGE}`);
	process.exit(2);
}
const listenPort = port(opt.listen, '--listen');
const targetPort = port(opt.target, '--target');

function pairs(raw) {
	const out = [];
	for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i], raw[i + 1]]);
	return out;
}

let seq = 0;
const server = http.createServer((req, res) => {
	const entry = {
		seq: ++seq,
		time: new Date().toISOString(),
		method: req.method,
		url: req.url,
		httpVersion: req.httpVersion,
		headers: req.headers,
		rawHeaders: pairs(req.rawHeaders),
	};
	try {
		appendFileSync(opt.log, JSON.stringify(entry) + '\n');
	} catch (err) {
		log(`capture_proxy: cannot append to ${opt.log}: ${err.message}`);
	}

	const up = http.request({
		host: '127.0.0.1',
		port: targetPort,
		method: req.method,
		path: req.url,
		headers: req.rawHeaders, // flat [name, value, ...]: forwarded verbatim
		agent: false, // one upstream connection per request: nothing pooled or reordered
	});
	up.on('response', (upRes) => {
		res.writeHead(upRes.statusCode, upRes.statusMessage, upRes.rawHeaders);
		res.flushHeaders();
		upRes.on('data', (chunk) => res.write(chunk)); // written as it arrives
		upRes.on('end', () => res.end());
		upRes.on('error', () => res.destroy());
	});
	up.on('socket', (s) => s.setNoDelay(true));
	up.on('error', (err) => {
		log(`capture_proxy: upstream ${req.method} ${req.url}: ${err.message}`);
		if (!res.headersSent) {
			res.writeHead(502, { 'content-type': 'text/plain' });
			res.end(`capture_proxy: upstream error: ${err.message}\n`);
		} else res.destroy();
	});
	req.pipe(up);
	// Client went away (e.g. closed its SSE stream): drop the upstream exchange too.
	res.on('close', () => {
		if (!res.writableFinished) up.destroy();
	});
});
server.on('connection', (s) => s.setNoDelay(true));
server.keepAliveTimeout = 30000;

let bound;
try {
	bound = await listenLoopback(server, listenPort);
} catch (err) {
	log(`capture_proxy: cannot listen on 127.0.0.1:${listenPort}: ${err.message}`);
	process.exit(1);
}
log(`capture_proxy: 127.0.0.1:${bound} -> 127.0.0.1:${targetPort}, logging to ${opt.log}`);
exitOnSignals(async () => {
	server.closeAllConnections();
	await new Promise((r) => server.close(r));
});
ready(bound);
