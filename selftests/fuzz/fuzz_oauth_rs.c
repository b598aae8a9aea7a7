// SPDX-License-Identifier: GPL-2.0
/*
 * Fuzz the checks of the access tokens agents from outside present
 * (lib/oauth_rs.c), the Authorization value they arrive in and the JWKS
 * they are checked against.  The first byte picks: 'K' a JWKS document,
 * 'B' an Authorization value, anything else a token (all the bytes).
 * Beyond memory safety: the only token ever accepted carries the header
 * and payload of the seed token byte for byte (its signing key is not in
 * this tree: nothing else can verify) and yields the claims that were
 * signed; a bearer token found lies inside its value and is a token68.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oauth_rs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The public half of the key the seed token was signed with. */
static const char jwks[] = "{\"keys\": [{\"kty\": \"EC\", \"crv\": \"P-256\", \"x\": "
			   "\"wqjO_Y5JRGQdKBRHfiQXSoimEb2_igP3fiu0GBzYHcA\", \"y\": "
			   "\"kx0Vwsp0XHR-TsugNPPQUJgvbgVro-RMY1d3pHZX9Fc\", \"kid\": \"k1\", "
			   "\"alg\": \"ES256\", \"use\": \"sig\"}]}";
/* What that key signed: the seed token up to its signature. */
static const char signed_part[] =
    "eyJhbGciOiAiRVMyNTYiLCAia2lkIjogImsxIiwgInR5cCI6ICJhdCtqd3QifQ."
    "eyJpc3MiOiAiaHR0cHM6Ly9hcy50ZXN0IiwgImF1ZCI6ICJodHRwczovL3JzLnRlc3QvbWNwIiwgImV4cCI6IDQxMDI0ND"
    "Q4MDAsICJzdWIiOiAidTEiLCAiY2xpZW50X2lkIjogImMxIiwgInNjb3BlIjogInRvb2xzOnJlYWQifQ";

static const struct ag_rs_keys *keys(void)
{
	static struct ag_rs_keys *k;
	struct ag_err err;

	if (!k && ag_rs_keys_parse(jwks, strlen(jwks), &k, &err))
		abort();
	return k;
}

static void token(const uint8_t *data, size_t size)
{
	const struct ag_rs_expect x = { .issuer = "https://as.test",
					.resource = "https://rs.test/mcp",
					.skew_s = 60 };
	size_t n = sizeof(signed_part) - 1;
	struct ag_rs_token out;
	struct ag_err err;

	if (ag_rs_verify(keys(), &x, (const char *)data, size, 1800000000, &out, &err) != AG_RS_OK)
		return;
	if (size <= n || memcmp(data, signed_part, n) || data[n] != '.' || strcmp(out.sub, "u1") ||
	    strcmp(out.client_id, "c1") || strcmp(out.scope, "tools:read"))
		abort();
}

static void bearer(const char *value, size_t size)
{
	size_t len = 0;
	const char *t = ag_rs_bearer(value, size, &len);

	if (!t)
		return;
	if (t < value || !len || len > size || (size_t)(t - value) > size - len)
		abort();
	for (size_t i = 0; i < len; i++)
		if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=",
			    t[i]) ||
		    !t[i])
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ag_rs_keys *k = NULL;
	struct ag_err err;

	if (size && data[0] == 'K') {
		if (!ag_rs_keys_parse((const char *)data + 1, size - 1, &k, &err) &&
		    !ag_rs_keys_count(k))
			abort();
		ag_rs_keys_free(k);
	} else if (size && data[0] == 'B') {
		bearer((const char *)data + 1, size - 1);
	} else {
		token(data, size);
	}
	return 0;
}
