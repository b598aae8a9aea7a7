// SPDX-License-Identifier: GPL-2.0
/* Access tokens from outside, checked (see oauth_rs.h). */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "jwt.h"
#include "oauth_rs.h"
#include "tls_int.h"

#define ES256_PART 32
#define RSA_MIN_BITS 2048
#define RSA_MAX_BYTES 1024  /* 8192 bits */
#define PART_MAX (8 * 1024) /* decoded header or payload */

enum rs_alg {
	RS_ES256,
	RS_RS256,
};

struct rs_key {
	EVP_PKEY *pkey;
	enum rs_alg alg;
	char kid[AG_RS_NAME_MAX];
};

struct ag_rs_keys {
	struct rs_key key[AG_RS_MAX_KEYS];
	size_t n;
};

/* A base64url member of jwk into out (cap bytes), exactly want bytes unless want is 0. */
static int jwk_bytes(json_t *jwk, const char *name, unsigned char *out, size_t cap, size_t want,
		     size_t *len, struct ag_err *err)
{
	const char *s = json_string_value(json_object_get(jwk, name));

	if (!s || ag_b64url_decode(s, out, cap, len, err) || (want && *len != want))
		return ag_errf(err, EINVAL, "JWK member \"%s\": missing or malformed", name);
	return 0;
}

static EVP_PKEY *pkey_from(OSSL_PARAM_BLD *bld, const char *type)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY *pkey = NULL;

	if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		pkey = NULL;
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return pkey;
}

static EVP_PKEY *ec_key(json_t *jwk, struct ag_err *err)
{
	unsigned char pt[1 + 2 * ES256_PART];
	OSSL_PARAM_BLD *bld;
	EVP_PKEY *pkey = NULL;
	size_t len;

	/* Fail closed: only P-256, the curve ES256 names. */
	if (strcmp(json_string_value(json_object_get(jwk, "crv")) ?: "", "P-256")) {
		ag_errf(err, EINVAL, "JWK: EC key not on P-256");
		return NULL;
	}
	pt[0] = 0x04;
	if (jwk_bytes(jwk, "x", pt + 1, ES256_PART, ES256_PART, &len, err) ||
	    jwk_bytes(jwk, "y", pt + 1 + ES256_PART, ES256_PART, ES256_PART, &len, err))
		return NULL;
	if ((bld = OSSL_PARAM_BLD_new()) &&
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) &&
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt)))
		pkey = pkey_from(bld, "EC");
	OSSL_PARAM_BLD_free(bld);
	if (!pkey)
		ag_tls_ossl_err(err, EINVAL, "JWK: EC point");
	return pkey;
}

static EVP_PKEY *rsa_key(json_t *jwk, struct ag_err *err)
{
	unsigned char n[RSA_MAX_BYTES], e[8];
	size_t nlen, elen;
	BIGNUM *bn = NULL, *be = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	EVP_PKEY *pkey = NULL;

	if (jwk_bytes(jwk, "n", n, sizeof(n), 0, &nlen, err) ||
	    jwk_bytes(jwk, "e", e, sizeof(e), 0, &elen, err))
		return NULL;
	/* Fail closed: a short modulus can be factored. */
	if (nlen * 8 < RSA_MIN_BITS) {
		ag_errf(err, EINVAL, "JWK: RSA key shorter than %d bits", RSA_MIN_BITS);
		return NULL;
	}
	if ((bn = BN_bin2bn(n, (int)nlen, NULL)) && (be = BN_bin2bn(e, (int)elen, NULL)) &&
	    (bld = OSSL_PARAM_BLD_new()) &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
		pkey = pkey_from(bld, "RSA");
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	if (!pkey)
		ag_tls_ossl_err(err, EINVAL, "JWK: RSA key");
	return pkey;
}

/* One JWK into k->key[k->n]; 1 when skipped (not a signature key we take). */
static int key_add(struct ag_rs_keys *k, json_t *jwk, struct ag_err *err)
{
	const char *kty = json_string_value(json_object_get(jwk, "kty"));
	const char *use = json_string_value(json_object_get(jwk, "use"));
	const char *alg = json_string_value(json_object_get(jwk, "alg"));
	const char *kid = json_string_value(json_object_get(jwk, "kid"));
	struct rs_key *key = &k->key[k->n];

	if (!kty || (use && strcmp(use, "sig")) || (kid && strlen(kid) >= sizeof(key->kid)))
		return 1;
	if (!strcmp(kty, "EC") && (!alg || !strcmp(alg, "ES256"))) {
		key->alg = RS_ES256;
		key->pkey = ec_key(jwk, err);
	} else if (!strcmp(kty, "RSA") && (!alg || !strcmp(alg, "RS256"))) {
		key->alg = RS_RS256;
		key->pkey = rsa_key(jwk, err);
	} else {
		return 1;
	}
	if (!key->pkey)
		return -EINVAL;
	snprintf(key->kid, sizeof(key->kid), "%s", kid ?: "");
	k->n++;
	return 0;
}

int ag_rs_keys_parse(const char *json, size_t len, struct ag_rs_keys **out, struct ag_err *err)
{
	struct ag_rs_keys *k;
	json_error_t je;
	json_t *root, *keys, *jwk;
	size_t i;

	if (len > AG_RS_JWKS_MAX)
		return ag_errf(err, E2BIG, "JWKS: larger than %d bytes", AG_RS_JWKS_MAX);
	if (!(root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je)))
		return ag_errf(err, EINVAL, "JWKS: not JSON: %s", je.text);
	if (!json_is_array(keys = json_object_get(root, "keys"))) {
		json_decref(root);
		return ag_errf(err, EINVAL, "JWKS: no \"keys\" array");
	}
	if (!(k = calloc(1, sizeof(*k)))) {
		json_decref(root);
		return ag_errf(err, ENOMEM, "JWKS: out of memory");
	}
	json_array_foreach(keys, i, jwk)
	{
		if (k->n == AG_RS_MAX_KEYS)
			break;
		/* One bad key must not cost the others: it is skipped. */
		key_add(k, jwk, err);
	}
	json_decref(root);
	if (!k->n) {
		ag_rs_keys_free(k);
		return ag_errf(err, ENOKEY, "JWKS: no ES256 or RS256 signature key");
	}
	*out = k;
	return 0;
}

void ag_rs_keys_free(struct ag_rs_keys *k)
{
	if (!k)
		return;
	for (size_t i = 0; i < k->n; i++)
		EVP_PKEY_free(k->key[i].pkey);
	free(k);
}

size_t ag_rs_keys_count(const struct ag_rs_keys *k)
{
	return k ? k->n : 0;
}

/* The key for alg and kid ("" : the only key of alg); NULL when none. */
static const struct rs_key *key_find(const struct ag_rs_keys *k, enum rs_alg alg, const char *kid)
{
	const struct rs_key *found = NULL;

	for (size_t i = 0; i < k->n; i++) {
		if (k->key[i].alg != alg)
			continue;
		if (kid[0] && !strcmp(kid, k->key[i].kid))
			return &k->key[i];
		if (!kid[0]) {
			/* Fail closed: without a kid, two keys are ambiguous. */
			if (found)
				return NULL;
			found = &k->key[i];
		}
	}
	return found;
}

/* JWS ES256 carries R || S; OpenSSL verifies DER. */
static int es256_raw_to_der(const unsigned char *raw, size_t len, unsigned char **der, int *dlen)
{
	ECDSA_SIG *sig = ECDSA_SIG_new();
	BIGNUM *r, *s;

	if (!sig || len != 2 * ES256_PART)
		goto fail;
	r = BN_bin2bn(raw, ES256_PART, NULL);
	s = BN_bin2bn(raw + ES256_PART, ES256_PART, NULL);
	if (!r || !s || !ECDSA_SIG_set0(sig, r, s)) {
		BN_free(r);
		BN_free(s);
		goto fail;
	}
	*der = NULL;
	*dlen = i2d_ECDSA_SIG(sig, der);
	ECDSA_SIG_free(sig);
	return *dlen > 0 ? 0 : -1;
fail:
	ECDSA_SIG_free(sig);
	return -1;
}

static bool sig_ok(const struct rs_key *key, const char *tbs, size_t tbs_len,
		   const unsigned char *sig, size_t sig_len)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char *der = NULL;
	int dlen = 0;
	bool ok = false;

	if (key->alg == RS_ES256 && es256_raw_to_der(sig, sig_len, &der, &dlen))
		goto out;
	if (md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key->pkey) == 1)
		ok = EVP_DigestVerify(md, der ? der : sig, der ? (size_t)dlen : sig_len,
				      (const unsigned char *)tbs, tbs_len) == 1;
out:
	OPENSSL_free(der);
	EVP_MD_CTX_free(md);
	return ok;
}

/* A base64url part (NUL-terminated) decoded as a JSON object. */
static json_t *part_json(const char *b64, const char *what, struct ag_err *err)
{
	unsigned char buf[PART_MAX];
	json_error_t je;
	size_t len;
	json_t *v;

	if (ag_b64url_decode(b64, buf, sizeof(buf), &len, err))
		return NULL;
	v = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(v)) {
		json_decref(v);
		ag_errf(err, EINVAL, "token %s: not a JSON object", what);
		return NULL;
	}
	return v;
}

static bool aud_has(json_t *aud, const char *resource)
{
	json_t *v;
	size_t i;

	if (json_is_string(aud))
		return !strcmp(json_string_value(aud), resource);
	json_array_foreach(aud, i, v) if (json_is_string(v) &&
					  !strcmp(json_string_value(v), resource)) return true;
	return false;
}

/* An optional string claim into out; -1 when present but not a string that fits. */
static int claim_str(json_t *p, const char *name, char *out, size_t cap)
{
	json_t *v = json_object_get(p, name);

	out[0] = '\0';
	if (!v)
		return 0;
	if (!json_is_string(v) || json_string_length(v) >= cap ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return -1;
	memcpy(out, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

static enum ag_rs_result claims_check(json_t *p, const struct ag_rs_expect *x, int64_t now,
				      struct ag_rs_token *out, struct ag_err *err)
{
	json_t *exp = json_object_get(p, "exp"), *nbf = json_object_get(p, "nbf");
	const char *iss = json_string_value(json_object_get(p, "iss"));

	/* Fail closed at each: the token is not for us, or not now. */
	if (!iss || strcmp(iss, x->issuer))
		return ag_errf(err, EINVAL, "token: not issued by the configured issuer"),
		       AG_RS_INVALID;
	if (!aud_has(json_object_get(p, "aud"), x->resource))
		return ag_errf(err, EINVAL, "token: audience is not this resource"), AG_RS_INVALID;
	if (!json_is_integer(exp) || now > json_integer_value(exp) + (int64_t)x->skew_s)
		return ag_errf(err, EINVAL, "token: expired or without exp"), AG_RS_INVALID;
	if (nbf && (!json_is_integer(nbf) || now < json_integer_value(nbf) - (int64_t)x->skew_s))
		return ag_errf(err, EINVAL, "token: not valid yet"), AG_RS_INVALID;
	out->exp = json_integer_value(exp);
	if (claim_str(p, "sub", out->sub, sizeof(out->sub)) ||
	    claim_str(p, "client_id", out->client_id, sizeof(out->client_id)) ||
	    claim_str(p, "scope", out->scope, sizeof(out->scope)))
		return ag_errf(err, EINVAL, "token: sub, client_id or scope malformed"),
		       AG_RS_INVALID;
	if (!out->client_id[0] && claim_str(p, "azp", out->client_id, sizeof(out->client_id)))
		return ag_errf(err, EINVAL, "token: azp malformed"), AG_RS_INVALID;
	if (!out->sub[0] && !out->client_id[0])
		return ag_errf(err, EINVAL, "token: neither sub nor client_id"), AG_RS_INVALID;
	return AG_RS_OK;
}

/* The header's alg and kid, and the key they name. */
static enum ag_rs_result header_key(const struct ag_rs_keys *k, json_t *h,
				    const struct rs_key **key, struct ag_rs_token *out,
				    struct ag_err *err)
{
	const char *alg = json_string_value(json_object_get(h, "alg"));
	enum rs_alg a;

	/* Fail closed: "none" and HS* (a key anyone with the JWKS has) are refused. */
	if (alg && !strcmp(alg, "ES256"))
		a = RS_ES256;
	else if (alg && !strcmp(alg, "RS256"))
		a = RS_RS256;
	else
		return ag_errf(err, EINVAL, "token: alg must be ES256 or RS256"), AG_RS_INVALID;
	if (json_object_get(h, "crit"))
		return ag_errf(err, EINVAL, "token: crit header not understood"), AG_RS_INVALID;
	if (claim_str(h, "kid", out->kid, sizeof(out->kid)))
		return ag_errf(err, EINVAL, "token: kid malformed"), AG_RS_INVALID;
	if (!(*key = key_find(k, a, out->kid)))
		return ag_errf(err, ENOKEY, "token: no key of the JWKS has its kid"),
		       AG_RS_UNKNOWN_KID;
	return AG_RS_OK;
}

enum ag_rs_result ag_rs_verify(const struct ag_rs_keys *k, const struct ag_rs_expect *x,
			       const char *token, size_t len, int64_t now, struct ag_rs_token *out,
			       struct ag_err *err)
{
	unsigned char sig[RSA_MAX_BYTES];
	const struct rs_key *key = NULL;
	enum ag_rs_result r = AG_RS_INVALID;
	json_t *h = NULL, *p = NULL;
	char *buf, *d1, *d2;
	size_t sig_len;

	memset(out, 0, sizeof(*out));
	if (!len || len > AG_RS_TOKEN_MAX || memchr(token, '\0', len))
		return ag_errf(err, EINVAL, "token: empty or longer than %d bytes",
			       AG_RS_TOKEN_MAX),
		       AG_RS_INVALID;
	if (!(buf = strndup(token, len)))
		return ag_errf(err, ENOMEM, "token: out of memory"), AG_RS_INVALID;
	if (!(d1 = strchr(buf, '.')) || !(d2 = strchr(d1 + 1, '.')) || strchr(d2 + 1, '.')) {
		ag_errf(err, EINVAL, "token: not a compact JWS");
		goto out;
	}
	*d1 = '\0';
	if (!(h = part_json(buf, "header", err)) ||
	    (r = header_key(k, h, &key, out, err)) != AG_RS_OK)
		goto out;
	r = AG_RS_INVALID;
	*d2 = '\0';
	if (ag_b64url_decode(d2 + 1, sig, sizeof(sig), &sig_len, err))
		goto out;
	/* The signed text is header.payload as sent: the dot goes back. */
	*d1 = '.';
	if (!sig_ok(key, buf, (size_t)(d2 - buf), sig, sig_len)) {
		ag_errf(err, EINVAL, "token: signature does not verify");
		goto out;
	}
	if ((p = part_json(d1 + 1, "payload", err)))
		r = claims_check(p, x, now, out, err);
out:
	json_decref(h);
	json_decref(p);
	OPENSSL_cleanse(buf, len);
	free(buf);
	return r;
}

bool ag_rs_scope_has(const char *list, const char *s)
{
	size_t n = strlen(s);

	for (const char *p = list; n && *p;) {
		size_t w = strcspn(p, " ");

		if (w == n && !memcmp(p, s, n))
			return true;
		p += w;
		p += strspn(p, " ");
	}
	return false;
}

const char *ag_rs_bearer(const char *value, size_t value_len, size_t *len)
{
	size_t i = 6, start;

	if (value_len < 8 || strncasecmp(value, "Bearer", 6) || value[6] != ' ')
		return NULL;
	while (i < value_len && value[i] == ' ')
		i++;
	start = i;
	/* token68: ALPHA DIGIT - . _ ~ + / then '=' padding. */
	while (i < value_len &&
	       (isalnum((unsigned char)value[i]) || (value[i] && strchr("-._~+/", value[i]))))
		i++;
	while (i < value_len && value[i] == '=')
		i++;
	if (i == start || i != value_len)
		return NULL;
	*len = i - start;
	return value + start;
}
