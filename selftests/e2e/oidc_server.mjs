#!/usr/bin/env node
// oidc_server.mjs --client-id ID --client-secret SECRET [--port N] [--ttl S]
//                  [--tls-cert PEM --tls-key PEM] [--listen ADDR]
//                  [--resource-prefix URL] [--client2 ID:SECRET[,...]]
//
// A real OAuth 2.0 authorization server (oidc-provider) for the credential
// brokering tests: one confidential client, grant type client_credentials
// only, authenticated with client_secret_basic. Resource indicators
// (RFC 8707) are on: a token request with resource=https://tools.example/...
// gets a JWT access token (RFC 9068, ES256) whose aud is that resource,
// living --ttl seconds (default 300); scopes tools:read and tools:write.
//
// --listen: the address instead of 127.0.0.1 (an outside agent's tests reach
// it from another network namespace); --resource-prefix: the resources
// tokens may be for instead of https://tools.example/; --client2: more
// clients like the first (test_inbound.c: two clients, one policy).
// Listens on 127.0.0.1 (port 0: the kernel picks), over TLS with
// --tls-cert/--tls-key, and prints one line on stdout once ready:
// {"port":N,"issuer":"http://127.0.0.1:N","token_endpoint":...}
// Test controls, answered before oidc-provider sees the request:
//   GET /count       {"token_requests":N}: POSTs to /token so far, failed ones included
//   GET /fail?n=K    the next K token requests get 503 temporarily_unavailable
//   GET /ttl?s=S     tokens issued from now on live S seconds
//   GET /rotate      a new signing key replaces the old one (new kid)
// Nothing else is written to stdout. Exits 0 on SIGTERM/SIGINT.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { args, emit, exitOnSignals, listenLoopback, log, need, port } from './lib.mjs';

const USAGE =
	'oidc_server.mjs --client-id ID --client-secret SECRET [--port N] [--ttl S] [--tls-cert PEM --tls-key PEM]';
const opt = args(
	{
		'client-id': { type: 'string' },
		'client-secret': { type: 'string' },
		port: { type: 'string', default: '0' },
		ttl: { type: 'string', default: '300' },
		'tls-cert': { type: 'string' },
		'tls-key': { type: 'string' },
		listen: { type: 'string', default: '127.0.0.1' },
		'resource-prefix': { type: 'string', default: 'https://tools.example/' },
		client2: { type: 'string' },
	},
	USAGE,
);
if (!opt['client-id'] || !opt['client-secret'] || !opt['tls-cert'] !== !opt['tls-key']) {
	log(`usage: ${USAGE}`);
	process.exit(2);
}

function seconds(value, what) {
	const n = Number(value);
	if (!Number.isInteger(n) || n < 1 || n > 86400) {
		log(`${what}: bad number of seconds ${JSON.stringify(value)}`);
		return null;
	}
	return n;
}

let ttl = seconds(opt.ttl, '--ttl');
if (ttl === null) process.exit(2);

// stdout carries the ready line only, and the test may close it after that:
// oidc-provider's notices (console.log/info) go to stderr.
console.log = console.info = console.error;

const { default: Provider, errors } = await need('oidc-provider');
const { exportJWK, generateKeyPair } = await need('jose');

const RESOURCE_PREFIX = opt['resource-prefix'];
const SCOPES = 'tools:read tools:write';

const { privateKey } = await generateKeyPair('ES256', { extractable: true });
const signingKey = { ...(await exportJWK(privateKey)), kid: 'test-es256', alg: 'ES256', use: 'sig' };

let tokenRequests = 0;
let failNext = 0;
let handler = null;

function json(res, status, body) {
	res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
	res.end(JSON.stringify(body));
}

function serve(req, res) {
	const url = new URL(req.url, 'http://127.0.0.1');
	if (req.method === 'GET' && url.pathname === '/count')
		return json(res, 200, { token_requests: tokenRequests });
	if (req.method === 'GET' && url.pathname === '/fail') {
		failNext = Number(url.searchParams.get('n')) || 0;
		return json(res, 200, { fail_next: failNext });
	}
	if (req.method === 'GET' && url.pathname === '/ttl') {
		const s = seconds(url.searchParams.get('s'), '/ttl');
		if (s === null) return json(res, 400, { error: 'bad s' });
		ttl = s;
		return json(res, 200, { ttl });
	}
	if (req.method === 'GET' && url.pathname === '/rotate') {
		// A new signing key (and kid) replaces the old: key rotation.
		return generateKeyPair('ES256', { extractable: true }).then(async ({ privateKey: k }) => {
			const kid = `test-es256-r${++rotations}`;
			handler = makeProvider({ ...(await exportJWK(k)), kid, alg: 'ES256', use: 'sig' });
			json(res, 200, { kid });
		});
	}
	if (req.method === 'POST' && url.pathname === '/token') {
		tokenRequests++;
		if (failNext > 0) {
			failNext--;
			req.resume();
			return json(res, 503, {
				error: 'temporarily_unavailable',
				error_description: 'failing on purpose (/fail)',
			});
		}
	}
	return handler(req, res);
}

const tls = opt['tls-cert'] && { cert: readFileSync(opt['tls-cert']), key: readFileSync(opt['tls-key']) };
const server = tls ? https.createServer(tls, serve) : http.createServer(serve);

const boundPort = await listenLoopback(server, port(opt.port), opt.listen);
const issuer = `${tls ? 'https' : 'http'}://${opt.listen}:${boundPort}`;
// The first client and --client2's, as [id, secret] pairs.
const credentials = [
	[opt['client-id'], opt['client-secret']],
	...(opt.client2 ? opt.client2.split(',').map((c) => c.split(/:(.*)/s)) : []),
];
let rotations = 0;

function makeProvider(key) {
	const provider = new Provider(issuer, {
		clients: credentials.map(
			([id, secret]) => ({
				client_id: id,
				client_secret: secret,
				grant_types: ['client_credentials'],
				response_types: [],
				redirect_uris: [],
				token_endpoint_auth_method: 'client_secret_basic',
				// The only signing key is ES256; the default (RS256) would refuse the client.
				id_token_signed_response_alg: 'ES256',
				scope: SCOPES,
			}),
		),
		jwks: { keys: [key] },
		ttl: { ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL ?? ttl },
		scopes: SCOPES.split(' '),
		features: {
			devInteractions: { enabled: false },
			clientCredentials: { enabled: true },
			resourceIndicators: {
				enabled: true,
				defaultResource: () => undefined,
				getResourceServerInfo(ctx, resource) {
					if (!resource.startsWith(RESOURCE_PREFIX))
						throw new errors.InvalidTarget(`only ${RESOURCE_PREFIX}... here`);
					return {
						scope: SCOPES,
						audience: resource,
						accessTokenTTL: ttl,
						accessTokenFormat: 'jwt',
						jwt: { sign: { alg: 'ES256' } },
					};
				},
			},
		},
	});
	provider.on('server_error', (ctx, err) => log(`oidc_server: server_error: ${err?.stack ?? err}`));
	return provider.callback();
}
handler = makeProvider(signingKey);

exitOnSignals(() => new Promise((done) => server.close(done)));
emit({ port: boundPort, issuer, token_endpoint: `${issuer}/token`, jwks_uri: `${issuer}/jwks` });
