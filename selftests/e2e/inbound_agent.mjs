#!/usr/bin/env node
// inbound_agent.mjs --url URL --issuer URL --a ID:SECRET --b ID:SECRET --other URL
//
// An agent from outside (test_inbound.c runs it in another network
// namespace) against agentgate's inbound MCP surface, an OAuth 2.1
// resource server. Prints one JSON line of what each step saw:
//   sdk       the official SDK client (ClientCredentialsProvider) as client a
//             with scope tools:read: discovers the metadata from the 401,
//             gets a token from the issuer, lists the tools, calls echo
//   b_sdk     the same as client b (scope tools:read): a policy may refuse it
//   no_token  a POST without Authorization: status and WWW-Authenticate
//   metadata  the document the 401's resource_metadata names
//   other_aud a token for --other (another resource): status, WWW-Authenticate
//   scope     a's tools:read token calling add: status, WWW-Authenticate
//   expired   a token that lived 1 s, used 3 s later
//   session   a binds a session id, then b presents it: both statuses
//   rotated   after the issuer's key rotation (/rotate): a's first call
//             (unknown kid: the gateway refetches the JWKS) and a retry
// The issuer is oidc_server.mjs, whose /ttl control sets token lifetimes.
import { args, emit, log, need } from './lib.mjs';

const USAGE = 'inbound_agent.mjs --url URL --issuer URL --a ID:SECRET --b ID:SECRET --other URL';
const opt = args(
	{
		url: { type: 'string' },
		issuer: { type: 'string' },
		a: { type: 'string' },
		b: { type: 'string' },
		other: { type: 'string' },
	},
	USAGE,
);
if (!opt.url || !opt.issuer || !opt.a || !opt.b || !opt.other) {
	log(`usage: ${USAGE}`);
	process.exit(2);
}

const { Client } = await need('@modelcontextprotocol/sdk/client/index.js');
const { StreamableHTTPClientTransport } = await need('@modelcontextprotocol/sdk/client/streamableHttp.js');
const { ClientCredentialsProvider } = await need('@modelcontextprotocol/sdk/client/auth-extensions.js');

const split = (s) => ({ id: s.slice(0, s.indexOf(':')), secret: s.slice(s.indexOf(':') + 1) });
const A = split(opt.a);
const B = split(opt.b);
const out = {};

async function sdk(cred) {
	const authProvider = new ClientCredentialsProvider({
		clientId: cred.id,
		clientSecret: cred.secret,
		scope: 'tools:read',
		expectedIssuer: opt.issuer,
	});
	const client = new Client({ name: `outside-${cred.id}`, version: '1.0.0' });
	const r = {};
	try {
		await client.connect(new StreamableHTTPClientTransport(new URL(opt.url), { authProvider }));
		r.tools = (await client.listTools()).tools.map((t) => t.name);
		const res = await client.callTool({ name: 'echo', arguments: { text: 'hi' } });
		r.is_error = !!res.isError;
		r.text = res.content?.[0]?.text ?? null;
	} catch (e) {
		r.error = String(e?.message ?? e);
	}
	await client.close().catch(() => {});
	return r;
}

async function token(cred, resource, scope) {
	const basic = Buffer.from(`${encodeURIComponent(cred.id)}:${encodeURIComponent(cred.secret)}`).toString('base64');
	const res = await fetch(`${opt.issuer}/token`, {
		method: 'POST',
		headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded' },
		body: new URLSearchParams({ grant_type: 'client_credentials', resource, scope }),
	});
	const j = await res.json();
	if (!j.access_token) throw new Error(`token: ${JSON.stringify(j)}`);
	return j.access_token;
}

async function post(tok, body, headers = {}) {
	const h = {
		'content-type': 'application/json',
		accept: 'application/json, text/event-stream',
		'mcp-protocol-version': '2025-06-18',
		...headers,
	};
	if (tok) h.authorization = `Bearer ${tok}`;
	const res = await fetch(opt.url, { method: 'POST', headers: h, body: JSON.stringify(body) });
	return { status: res.status, www: res.headers.get('www-authenticate'), body: await res.text() };
}

const call = (name) => ({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name, arguments: {} } });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

try {
	out.sdk = await sdk(A);
	out.b_sdk = await sdk(B);
	out.no_token = await post(null, call('echo'));
	const m = /resource_metadata="([^"]+)"/.exec(out.no_token.www ?? '');
	out.metadata = m ? await (await fetch(m[1])).json() : null;
	out.other_aud = await post(await token(A, opt.other, 'tools:read'), call('echo'));
	const readTok = await token(A, opt.url, 'tools:read');
	out.scope = await post(readTok, call('add'));
	await fetch(`${opt.issuer}/ttl?s=1`);
	const shortTok = await token(A, opt.url, 'tools:read');
	await fetch(`${opt.issuer}/ttl?s=300`);
	await sleep(3000);
	out.expired = await post(shortTok, call('echo'));
	const sid = { 'mcp-session-id': `sess-${process.pid}` };
	out.session = {
		a: (await post(readTok, call('echo'), sid)).status,
		b: (await post(await token(B, opt.url, 'tools:read'), call('echo'), sid)).status,
	};
	await fetch(`${opt.issuer}/rotate`);
	const newTok = await token(A, opt.url, 'tools:read');
	const first = await post(newTok, call('echo'));
	let retry = first;
	for (let i = 0; i < 20 && retry.status !== 200; i++) {
		await sleep(250);
		retry = await post(newTok, call('echo'));
	}
	out.rotated = { first: first.status, retry: retry.status };
} catch (e) {
	out.error = String(e?.stack ?? e);
}
emit(out);
