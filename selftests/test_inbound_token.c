// SPDX-License-Identifier: GPL-2.0
/*
 * lib/oauth_rs.c: the resource server's token checks, against tokens the
 * test signs itself (ES256 and RS256 keys made here), so every way a token
 * can be wrong is tried: alg none and HS256, a bad signature, another
 * issuer or audience, expired, not yet valid, a key not in the JWKS.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "jwt.h"
#include "oauth_rs.h"
#include "test.h"

#define ISS "https://as.example"
#define RES "https://gw.example:8443/mcp"
#define NOW 1800000000

struct signer {
	EVP_PKEY *pkey;
	const char *alg, *kid;
};

static char *b64(const void *p, size_t n)
{
	struct ag_err err;
	char *out = NULL;

	ag_b64url_encode(p, n, &out, &err);
	return out;
}

static char *b64_json(json_t *j)
{
	char *text = json_dumps(j, JSON_COMPACT), *out = text ? b64(text, strlen(text)) : NULL;

	free(text);
	json_decref(j);
	return out;
}

/* The JWK of s's public key. */
static json_t *jwk(const struct signer *s)
{
	unsigned char pt[65], nb[512], eb[8];
	BIGNUM *n = NULL, *e = NULL;
	size_t len = 0;
	json_t *j;
	char *x, *y;

	if (!strcmp(s->alg, "ES256")) {
		EVP_PKEY_get_octet_string_param(s->pkey, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt),
						&len);
		x = b64(pt + 1, 32);
		y = b64(pt + 33, 32);
		j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "kty", "EC", "crv", "P-256", "x", x, "y",
			      y, "kid", s->kid, "alg", "ES256");
	} else {
		EVP_PKEY_get_bn_param(s->pkey, OSSL_PKEY_PARAM_RSA_N, &n);
		EVP_PKEY_get_bn_param(s->pkey, OSSL_PKEY_PARAM_RSA_E, &e);
		x = b64(nb, (size_t)BN_bn2bin(n, nb));
		y = b64(eb, (size_t)BN_bn2bin(e, eb));
		j = json_pack("{s:s,s:s,s:s,s:s,s:s}", "kty", "RSA", "n", x, "e", y, "kid", s->kid,
			      "alg", "RS256");
		BN_free(n);
		BN_free(e);
	}
	free(x);
	free(y);
	return j;
}

static char *jwks(const struct signer *a, const struct signer *b)
{
	json_t *keys = json_array(), *doc;
	char *out;

	json_array_append_new(keys, jwk(a));
	if (b)
		json_array_append_new(keys, jwk(b));
	doc = json_pack("{s:o}", "keys", keys);
	out = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	return out;
}

/* header.payload signed by s (alg as s says, or alg_override with a junk signature). */
static char *sign(const struct signer *s, json_t *payload, const char *alg_override)
{
	char *h = b64_json(json_pack("{s:s,s:s,s:s}", "alg", alg_override ?: s->alg, "kid", s->kid,
				     "typ", "at+jwt"));
	char *p = b64_json(payload), *tbs = NULL, *sig = NULL, *out = NULL;
	unsigned char der[600], raw[64];
	size_t dlen = sizeof(der);
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	if (asprintf(&tbs, "%s.%s", h, p) < 0)
		goto out;
	if (alg_override) {
		sig = b64("junk-signature", 14);
	} else if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, s->pkey) == 1 &&
		   EVP_DigestSign(md, der, &dlen, (unsigned char *)tbs, strlen(tbs)) == 1) {
		if (!strcmp(s->alg, "ES256")) {
			const unsigned char *q = der;
			ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &q, (long)dlen);
			const BIGNUM *r, *ss;

			ECDSA_SIG_get0(es, &r, &ss);
			BN_bn2binpad(r, raw, 32);
			BN_bn2binpad(ss, raw + 32, 32);
			ECDSA_SIG_free(es);
			sig = b64(raw, 64);
		} else {
			sig = b64(der, dlen);
		}
	}
	if (sig && asprintf(&out, "%s.%s", tbs, sig) < 0)
		out = NULL;
out:
	EVP_MD_CTX_free(md);
	free(h);
	free(p);
	free(tbs);
	free(sig);
	return out;
}

static json_t *claims(void)
{
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:I}", "iss", ISS, "aud", RES, "sub",
			 "partner-a", "client_id", "partner-a", "scope", "tools:read", "exp",
			 (json_int_t)NOW + 300, "iat", (json_int_t)NOW);
}

static enum ag_rs_result check(const struct ag_rs_keys *k, char *tok, int64_t now,
			       struct ag_rs_token *t)
{
	const struct ag_rs_expect x = { ISS, RES, 60 };
	struct ag_err err = { 0 };
	enum ag_rs_result r =
	    tok ? ag_rs_verify(k, &x, tok, strlen(tok), now, t, &err) : AG_RS_INVALID;

	if (test__verbose())
		fprintf(stderr, "result %d: %s\n", r, err.msg);
	free(tok);
	return r;
}

TEST(inbound_token)
{
	struct signer es = { EVP_EC_gen("P-256"), "ES256", "es-1" };
	struct signer rs = { EVP_RSA_gen(2048), "RS256", "rs-1" };
	struct signer other = { EVP_EC_gen("P-256"), "ES256", "es-2" };
	struct ag_rs_keys *k = NULL;
	struct ag_rs_token t;
	struct ag_err err;
	char *set = jwks(&es, &rs), *tok;
	json_t *c;
	size_t len;
	const char *b;

	if (!ASSERT_OK(ag_rs_keys_parse(set, strlen(set), &k, &err), err.msg))
		goto out;
	ASSERT_EQ(ag_rs_keys_count(k), 2, "two keys");
	ASSERT_EQ(check(k, sign(&es, claims(), NULL), NOW, &t), AG_RS_OK, "ES256 accepted");
	ASSERT_STREQ(t.sub, "partner-a", "sub");
	ASSERT_STREQ(t.client_id, "partner-a", "client_id");
	ASSERT_STREQ(t.scope, "tools:read", "scope");
	ASSERT_EQ(check(k, sign(&rs, claims(), NULL), NOW, &t), AG_RS_OK, "RS256 accepted");
	ASSERT_EQ(check(k, sign(&es, claims(), "none"), NOW, &t), AG_RS_INVALID, "alg none");
	ASSERT_EQ(check(k, sign(&es, claims(), "HS256"), NOW, &t), AG_RS_INVALID, "HS256");
	tok = sign(&es, claims(), NULL);
	tok[strlen(tok) - 3] ^= 1;
	ASSERT_EQ(check(k, tok, NOW, &t), AG_RS_INVALID, "bad signature");
	c = claims();
	json_object_set_new(c, "iss", json_string("https://evil.example"));
	ASSERT_EQ(check(k, sign(&es, c, NULL), NOW, &t), AG_RS_INVALID, "another issuer");
	c = claims();
	json_object_set_new(c, "aud", json_string("https://other.example/mcp"));
	ASSERT_EQ(check(k, sign(&es, c, NULL), NOW, &t), AG_RS_INVALID, "another audience");
	c = claims();
	json_object_set_new(c, "aud", json_pack("[s,s]", "https://other.example", RES));
	ASSERT_EQ(check(k, sign(&es, c, NULL), NOW, &t), AG_RS_OK, "audience in a list");
	ASSERT_EQ(check(k, sign(&es, claims(), NULL), NOW + 300 + 60, &t), AG_RS_OK,
		  "within the skew");
	ASSERT_EQ(check(k, sign(&es, claims(), NULL), NOW + 300 + 61, &t), AG_RS_INVALID,
		  "expired");
	c = claims();
	json_object_del(c, "exp");
	ASSERT_EQ(check(k, sign(&es, c, NULL), NOW, &t), AG_RS_INVALID, "no exp");
	c = claims();
	json_object_set_new(c, "nbf", json_integer(NOW + 120));
	ASSERT_EQ(check(k, sign(&es, c, NULL), NOW, &t), AG_RS_INVALID, "not yet valid");
	ASSERT_EQ(check(k, sign(&other, claims(), NULL), NOW, &t), AG_RS_UNKNOWN_KID,
		  "a key not in the JWKS");
	ASSERT_EQ(check(k, strdup("a.b"), NOW, &t), AG_RS_INVALID, "not a JWS");
	ASSERT_TRUE(ag_rs_scope_has("a tools:read b", "tools:read"), "scope in a list");
	ASSERT_FALSE(ag_rs_scope_has("tools:readx", "tools:read"), "whole words only");
	b = ag_rs_bearer("Bearer  abc.def-_=", 18, &len);
	ASSERT_TRUE(b && len == 10 && !memcmp(b, "abc.def-_=", 10), "bearer token");
	ASSERT_NULL(ag_rs_bearer("Basic abc", 9, &len), "not Bearer");
	ASSERT_NULL(ag_rs_bearer("Bearer a b", 10, &len), "not a token68");
out:
	ag_rs_keys_free(k);
	free(set);
	EVP_PKEY_free(es.pkey);
	EVP_PKEY_free(rs.pkey);
	EVP_PKEY_free(other.pkey);
}
