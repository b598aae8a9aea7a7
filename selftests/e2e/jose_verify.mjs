#!/usr/bin/env node
// jose_verify.mjs JWKS_FILE TOKEN AUD [EXPECTED_ACT_CHAIN_JSON]
//
// Verifies a minted assertion the way a tool server would, with `jose`
// (pinned npm package): the compact JWS against the keys of JWKS_FILE
// (`agentgatectl keys jwks`), algorithms EdDSA and ES256 only, audience AUD,
// exp/nbf/iat checked. EXPECTED_ACT_CHAIN_JSON, when given, is a JSON array
// of agent names, root first and the calling agent last: payload.act.sub
// must be "agent:" + the last name (lib/jwt.c's subject form), payload.act.act.sub
// "agent:" + the one before, and so on, with no act nested deeper than the chain.
//
// Prints the payload as one JSON line and exits 0; on any failure prints
// "error: ..." on stdout and exits 1 (2: bad usage, 3: jose not installed).
import { readFileSync, writeSync } from 'node:fs';
import { emit, need } from './lib.mjs';

const [jwksFile, token, aud, chainJson] = process.argv.slice(2);
if (!jwksFile || !token || !aud) {
	process.stderr.write('usage: jose_verify.mjs JWKS_FILE TOKEN AUD [EXPECTED_ACT_CHAIN_JSON]\n');
	process.exit(2);
}

function checkChain(payload, chain) {
	if (!Array.isArray(chain) || !chain.length || !chain.every((n) => typeof n === 'string'))
		throw new Error('the expected chain must be a non-empty JSON array of names');
	let act = payload.act;
	for (let i = chain.length - 1; i >= 0; i--) {
		const depth = chain.length - 1 - i;
		if (!act || typeof act !== 'object')
			throw new Error(`act chain: no act at depth ${depth} (expected agent ${JSON.stringify(chain[i])})`);
		const want = `agent:${chain[i]}`;
		if (act.sub !== want)
			throw new Error(`act chain: depth ${depth} has sub ${JSON.stringify(act.sub)}, expected ${JSON.stringify(want)}`);
		act = act.act;
	}
	if (act !== undefined) throw new Error(`act chain: nested deeper than the ${chain.length} expected`);
}

try {
	const { createLocalJWKSet, jwtVerify } = await need('jose');
	const jwks = createLocalJWKSet(JSON.parse(readFileSync(jwksFile, 'utf8')));
	const { payload } = await jwtVerify(token, jwks, { algorithms: ['EdDSA', 'ES256'], audience: aud });
	if (chainJson !== undefined) checkChain(payload, JSON.parse(chainJson));
	emit(payload);
} catch (err) {
	writeSync(1, `error: ${err?.code ? `${err.code}: ` : ''}${err?.message ?? err}\n`);
	process.exit(1);
}
