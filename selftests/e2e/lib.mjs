// Shared helpers for the end-to-end MCP peers (agent.mjs, everything.mjs, v2_*.mjs).
//
// The pinned npm packages live in the install dir made by scripts/e2e-deps.sh,
// outside the source tree:
//   $AGENTGATE_E2E_DIR                 if set, else
//   $BUILD_DIR/e2e                     if BUILD_DIR is set, else
//   <repo>/build/e2e
// Importing this module registers a resolve hook (resolve-hooks.mjs) so that a
// later dynamic `await import('<package>')` finds them there. Static imports of
// npm packages cannot work (they resolve before this module runs): use need().
import { register } from 'node:module';
import { existsSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));

export const E2E_DIR = resolve(
	process.env.AGENTGATE_E2E_DIR ||
		(process.env.BUILD_DIR ? join(process.env.BUILD_DIR, 'e2e') : join(here, '..', '..', 'build', 'e2e')),
);

register('./resolve-hooks.mjs', import.meta.url, {
	data: { base: pathToFileURL(E2E_DIR + '/').href },
});

/** Import an npm package from the install dir, failing with a clear message. */
export async function need(spec) {
	try {
		return await import(spec);
	} catch (err) {
		if (err?.code === 'ERR_MODULE_NOT_FOUND' && !existsSync(join(E2E_DIR, 'node_modules'))) {
			process.stderr.write(
				`e2e: ${spec} not installed: no ${join(E2E_DIR, 'node_modules')}; run scripts/e2e-deps.sh first\n`,
			);
			process.exit(3);
		}
		throw err;
	}
}

/** Write one JSON line to stdout synchronously (flushed before any exit). */
export function emit(obj) {
	writeSync(1, JSON.stringify(obj) + '\n');
}

/** Print `READY <port>` on stdout (the line the test harness waits for). */
export function ready(boundPort) {
	writeSync(1, `READY ${boundPort}\n`);
}

/** Write one diagnostic line to stderr synchronously. */
export function log(...parts) {
	writeSync(2, parts.map((p) => (typeof p === 'string' ? p : JSON.stringify(p))).join(' ') + '\n');
}

/** node:util parseArgs with a usage message on error. */
export function args(options, usage) {
	try {
		return parseArgs({ options, allowPositionals: false, strict: true }).values;
	} catch (err) {
		process.stderr.write(`${err.message}\nusage: ${usage}\n`);
		process.exit(2);
	}
}

/** Parse a TCP port (0 = let the kernel pick). */
export function port(value, what = '--port') {
	const n = Number(value);
	if (!Number.isInteger(n) || n < 0 || n > 65535) {
		process.stderr.write(`${what}: bad port ${JSON.stringify(value)}\n`);
		process.exit(2);
	}
	return n;
}

/** Text of a CallToolResult: every text content item, joined by newlines. */
export function resultText(result) {
	return (result?.content ?? [])
		.filter((c) => c?.type === 'text')
		.map((c) => c.text)
		.join('\n');
}

/** Milliseconds since `t0` (a performance.now() value), rounded. */
export function since(t0) {
	return Math.round(performance.now() - t0);
}

/** Run `fn` with a time bound; rejects with Error(`${what} timed out`). */
export function withTimeout(promise, ms, what) {
	let timer;
	return Promise.race([
		promise,
		new Promise((_, reject) => {
			timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
		}),
	]).finally(() => clearTimeout(timer));
}

/**
 * Exit after SIGTERM/SIGINT: run `cleanup` (bounded to 2 s), then exit 0.
 */
export function exitOnSignals(cleanup) {
	let stopping = false;
	const stop = (sig) => {
		if (stopping) return;
		stopping = true;
		log(`e2e: ${sig}, shutting down`);
		setTimeout(() => process.exit(0), 2000).unref();
		Promise.resolve()
			.then(cleanup)
			.catch((err) => log(`e2e: cleanup: ${err?.message ?? err}`))
			.finally(() => process.exit(0));
	};
	process.on('SIGTERM', () => stop('SIGTERM'));
	process.on('SIGINT', () => stop('SIGINT'));
}

/** Listen on 127.0.0.1 only; resolves with the bound port. */
export function listenLoopback(server, wantPort, host = '127.0.0.1') {
	return new Promise((resolveListen, reject) => {
		server.once('error', reject);
		server.listen({ host, port: wantPort, exclusive: true }, () => {
			server.off('error', reject);
			resolveListen(server.address().port);
		});
	});
}

// The agents' shared start: the steps to run, one JSON value per --args,
// and a watchdog that ends the agent (exit 4) after its overall timeout.
// Usage errors exit 2.
export function agentPlan(opt) {
	const overallMs = Number(opt.timeout) || 20000;
	const steps = opt.steps.split(',').map((s) => s.trim()).filter(Boolean);
	let callArgs;
	try {
		callArgs = opt.args.map((a) => JSON.parse(a));
	} catch (err) {
		log(`--args: bad JSON: ${err.message}`);
		process.exit(2);
	}
	const watchdog = setTimeout(() => {
		emit({ step: 'timeout', ok: false, error: `overall timeout of ${overallMs} ms` });
		process.exit(4);
	}, overallMs);
	return { overallMs, steps, callArgs, watchdog };
}
