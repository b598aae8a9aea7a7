// SPDX-License-Identifier: GPL-2.0
/* Minted JWTs (EdDSA, ES256), their signing keys and the JWKS. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "fileio.h"
#include "jwt.h"
#include "secret.h"

struct ag_jwt_key {
	EVP_PKEY *pkey;
	enum ag_jwt_alg alg;
	char kid[AG_JWT_KID_LEN + 1];
};

#define ES256_PART 32 /* bytes of R, S, X and Y for P-256 */
#define JTI_BYTES 16

/* An OpenSSL failure: the caller's context and OpenSSL's reason, queue emptied. */
static int ossl_err(struct ag_err *err, const char *what)
{
	char buf[256];
	unsigned long e = ERR_peek_last_error();

	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return ag_errf(err, EIO, "%s: %s", what, e ? buf : "OpenSSL failure");
}

const char *ag_jwt_alg_name(enum ag_jwt_alg alg)
{
	return alg == AG_JWT_ES256 ? "ES256" : "EdDSA";
}

int ag_jwt_alg_parse(const char *s, enum ag_jwt_alg *out, struct ag_err *err)
{
	if (!strcmp(s, "EdDSA"))
		*out = AG_JWT_EDDSA;
	else if (!strcmp(s, "ES256"))
		*out = AG_JWT_ES256;
	else
		return ag_errf(err, EINVAL, "algorithm \"%s\": expected EdDSA or ES256", s);
	return 0;
}

int ag_b64url_encode(const unsigned char *in, size_t len, char **out, struct ag_err *err)
{
	char *buf;
	int n;

	/* EVP_EncodeBlock takes an int length; secrets and tokens are far smaller. */
	if (len > AG_SECRET_MAX)
		return ag_errf(err, EFBIG, "base64url: %zu bytes is too long", len);
	buf = malloc((len + 2) / 3 * 4 + 1);
	if (!buf)
		return ag_errf(err, ENOMEM, "base64url: out of memory");
	n = EVP_EncodeBlock((unsigned char *)buf, in, (int)len);
	while (n > 0 && buf[n - 1] == '=')
		n--;
	buf[n] = '\0';
	for (char *p = buf; *p; p++) {
		if (*p == '+')
			*p = '-';
		else if (*p == '/')
			*p = '_';
	}
	*out = buf;
	return 0;
}

int ag_b64url_decode(const char *in, unsigned char *out, size_t cap, size_t *len,
		     struct ag_err *err)
{
	size_t n = strlen(in), pad, full;
	unsigned char *buf;
	int r;

	if (n > AG_SECRET_MAX || n % 4 == 1)
		return ag_errf(err, EINVAL, "base64url: bad length %zu", n);
	pad = (4 - n % 4) % 4;
	full = n + pad;
	if (full / 4 * 3 - pad > cap)
		return ag_errf(err, ENOSPC, "base64url: decodes to more than %zu bytes", cap);
	/* The standard text, then room for what it decodes to (+1: malloc(0) may fail). */
	buf = malloc(full + full / 4 * 3 + 1);
	if (!buf)
		return ag_errf(err, ENOMEM, "base64url: out of memory");
	for (size_t i = 0; i < n; i++) {
		char c = in[i];

		if (c == '-')
			c = '+';
		else if (c == '_')
			c = '/';
		else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			   (c >= '0' && c <= '9'))) {
			free(buf);
			return ag_errf(err, EINVAL, "base64url: invalid character at offset %zu",
				       i);
		}
		buf[i] = (unsigned char)c;
	}
	memset(buf + n, '=', pad);
	r = EVP_DecodeBlock(buf + full, buf, (int)full);
	if (r >= 0) {
		*len = (size_t)r - pad;
		memcpy(out, buf + full, *len);
	}
	free(buf);
	if (r < 0)
		return ag_errf(err, EINVAL, "base64url: not valid base64url");
	return 0;
}

int ag_jwt_key_public_raw(const struct ag_jwt_key *k, unsigned char out[AG_JWT_RAW_PUB_MAX],
			  size_t *len, struct ag_err *err)
{
	BIGNUM *x = NULL, *y = NULL;
	int ret = 0;

	if (k->alg == AG_JWT_EDDSA) {
		*len = AG_JWT_RAW_PUB_MAX;
		if (!EVP_PKEY_get_raw_public_key(k->pkey, out, len))
			return ossl_err(err, "Ed25519 public key");
		return 0;
	}
	if (!EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_EC_PUB_X, &x) ||
	    !EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &y) ||
	    BN_bn2binpad(x, out + 1, ES256_PART) != ES256_PART ||
	    BN_bn2binpad(y, out + 1 + ES256_PART, ES256_PART) != ES256_PART)
		ret = ossl_err(err, "P-256 public key");
	out[0] = 0x04; /* SEC 1 uncompressed point */
	*len = 1 + 2 * ES256_PART;
	BN_free(x);
	BN_free(y);
	return ret;
}

static int key_wrap(EVP_PKEY *pkey, const char *what, struct ag_jwt_key **out, struct ag_err *err)
{
	unsigned char raw[AG_JWT_RAW_PUB_MAX], md[EVP_MAX_MD_SIZE];
	struct ag_jwt_key *k;
	char group[32], *kid;
	size_t rawlen;
	int ret;

	k = calloc(1, sizeof(*k));
	if (!k) {
		EVP_PKEY_free(pkey);
		return ag_errf(err, ENOMEM, "%s: out of memory", what);
	}
	k->pkey = pkey;
	if (EVP_PKEY_is_a(pkey, "ED25519")) {
		k->alg = AG_JWT_EDDSA;
	} else if (EVP_PKEY_is_a(pkey, "EC") &&
		   EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
						  sizeof(group), NULL) &&
		   (!strcmp(group, "prime256v1") || !strcmp(group, "P-256"))) {
		k->alg = AG_JWT_ES256;
	} else {
		ERR_clear_error();
		ret = ag_errf(err, EINVAL, "%s: not an Ed25519 or P-256 key", what);
		goto fail;
	}
	ret = ag_jwt_key_public_raw(k, raw, &rawlen, err);
	if (ret)
		goto fail;
	if (!EVP_Digest(raw, rawlen, md, NULL, EVP_sha256(), NULL)) {
		ret = ossl_err(err, what);
		goto fail;
	}
	ret = ag_b64url_encode(md, 16, &kid, err);
	if (ret)
		goto fail;
	memcpy(k->kid, kid, sizeof(k->kid));
	free(kid);
	*out = k;
	return 0;
fail:
	ag_jwt_key_free(k);
	return ret;
}

int ag_jwt_key_generate(enum ag_jwt_alg alg, struct ag_jwt_key **out, struct ag_err *err)
{
	EVP_PKEY *pkey;

	if (alg == AG_JWT_ES256)
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	else
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (!pkey)
		return ossl_err(err, "generate key");
	return key_wrap(pkey, "generated key", out, err);
}

int ag_jwt_key_save(const struct ag_jwt_key *k, const char *path, struct ag_err *err)
{
	BIO *bio = BIO_new(BIO_s_secmem());
	char *pem;
	long len;
	int ret = 0;

	if (!bio || !PEM_write_bio_PrivateKey(bio, k->pkey, NULL, NULL, 0, NULL, NULL)) {
		ret = ossl_err(err, path);
		goto out;
	}
	len = BIO_get_mem_data(bio, &pem);
	ret = ag_file_create(path, pem, (size_t)len, 0600, err);
out:
	BIO_free(bio);
	return ret;
}

/* An encrypted key is refused: OpenSSL's default would prompt on the terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

int ag_jwt_key_load(const char *path, struct ag_jwt_key **out, struct ag_err *err)
{
	struct ag_secret *s;
	EVP_PKEY *pkey;
	BIO *bio;
	int ret;

	ret = ag_secret_load(path, AG_SECRET_RAW, &s, err);
	if (ret)
		return ret;
	bio = BIO_new_mem_buf(s->data, (int)s->len);
	pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
	BIO_free(bio);
	ag_secret_free(s);
	if (!pkey) {
		ERR_clear_error();
		return ag_errf(err, EINVAL, "%s: not a PEM private key", path);
	}
	return key_wrap(pkey, path, out, err);
}

void ag_jwt_key_free(struct ag_jwt_key *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

enum ag_jwt_alg ag_jwt_key_alg(const struct ag_jwt_key *k)
{
	return k->alg;
}

const char *ag_jwt_key_kid(const struct ag_jwt_key *k)
{
	return k->kid;
}

/* JWS ES256 wants R || S, each left-padded to 32 bytes; OpenSSL gives DER. */
static int es256_der_to_raw(const unsigned char *der, size_t len, unsigned char raw[2 * ES256_PART],
			    struct ag_err *err)
{
	const unsigned char *p = der;
	ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
	const BIGNUM *r, *s;
	int ret = 0;

	if (!sig)
		return ossl_err(err, "ES256 signature");
	ECDSA_SIG_get0(sig, &r, &s);
	if (BN_bn2binpad(r, raw, ES256_PART) != ES256_PART ||
	    BN_bn2binpad(s, raw + ES256_PART, ES256_PART) != ES256_PART)
		ret = ag_errf(err, EINVAL, "ES256 signature: R or S longer than 32 bytes");
	ECDSA_SIG_free(sig);
	return ret;
}

/* base64url(signature over the len bytes of tbs), caller frees *out. */
static int jws_sign(const struct ag_jwt_key *k, const char *tbs, size_t len, char **out,
		    struct ag_err *err)
{
	/* Ed25519 signatures are 64 bytes, DER ECDSA P-256 ones at most 72. */
	unsigned char sig[80], raw[2 * ES256_PART];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t siglen = sizeof(sig);
	int ret;

	/* Ed25519 hashes internally (PureEdDSA): no digest may be given. */
	if (!ctx ||
	    EVP_DigestSignInit(ctx, NULL, k->alg == AG_JWT_ES256 ? EVP_sha256() : NULL, NULL,
			       k->pkey) != 1 ||
	    EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)tbs, len) != 1) {
		EVP_MD_CTX_free(ctx);
		return ossl_err(err, "sign JWT");
	}
	EVP_MD_CTX_free(ctx);
	if (k->alg == AG_JWT_EDDSA)
		return ag_b64url_encode(sig, siglen, out, err);
	ret = es256_der_to_raw(sig, siglen, raw, err);
	if (ret)
		return ret;
	return ag_b64url_encode(raw, sizeof(raw), out, err);
}

/* A required (or, with optional, absent) claim string of bounded length. */
static int check_str(const char *what, const char *s, bool optional, struct ag_err *err)
{
	size_t n;

	if (!s && optional)
		return 0;
	if (!s || !*s)
		return ag_errf(err, EINVAL, "JWT: %s is empty", what);
	n = strnlen(s, AG_JWT_MAX_NAME + 1);
	if (n > AG_JWT_MAX_NAME)
		return ag_errf(err, EINVAL, "JWT: %s is longer than %d bytes", what,
			       AG_JWT_MAX_NAME);
	return 0;
}

/* The RFC 8693 actor claim: the calling agent outermost, its delegators nested inside. */
static int act_claim(const struct ag_jwt_claims *c, json_t **out, struct ag_err *err)
{
	json_t *act = NULL;
	int ret;

	for (size_t i = 0; i < c->chain_len; i++) {
		char sub[AG_JWT_MAX_NAME + sizeof("agent:")];
		json_t *o;

		ret = check_str("agent name", c->chain[i], false, err);
		if (ret)
			goto fail;
		snprintf(sub, sizeof(sub), "agent:%s", c->chain[i]);
		o = json_pack("{s:s}", "sub", sub);
		if (!o) {
			ret = ag_errf(err, EINVAL, "JWT: agent name \"%s\" is not valid UTF-8",
				      c->chain[i]);
			goto fail;
		}
		if (act && json_object_set_new(o, "act", act)) {
			json_decref(o);
			return ag_errf(err, ENOMEM, "JWT: out of memory");
		}
		act = o;
	}
	*out = act;
	return 0;
fail:
	json_decref(act);
	return ret;
}

static int dump_b64(json_t *j, char **out, struct ag_err *err)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	int ret;

	if (!s)
		return ag_errf(err, ENOMEM, "JWT: cannot serialize JSON");
	ret = ag_b64url_encode((const unsigned char *)s, strlen(s), out, err);
	free(s);
	return ret;
}

static int jwt_payload(const struct ag_jwt_claims *c, json_t **out, struct ag_err *err)
{
	unsigned char rnd[JTI_BYTES];
	json_t *payload, *act = NULL;
	char *jti;
	int ret;

	if ((ret = check_str("iss", c->iss, false, err)) ||
	    (ret = check_str("sub", c->sub, false, err)) ||
	    (ret = check_str("aud", c->aud, false, err)) ||
	    (ret = check_str("agentgate_session", c->session, true, err)) ||
	    (ret = check_str("agentgate_tool", c->tool, true, err)))
		return ret;
	if (c->ttl < 1 || c->ttl > AG_JWT_MAX_TTL)
		return ag_errf(err, EINVAL, "JWT: lifetime %u s is outside 1..%d s", c->ttl,
			       AG_JWT_MAX_TTL);
	if (c->iat < 0 || c->iat > INT64_MAX - AG_JWT_MAX_TTL)
		return ag_errf(err, EINVAL, "JWT: iat %lld is out of range", (long long)c->iat);
	if (c->chain_len < 1 || c->chain_len > AG_JWT_MAX_CHAIN)
		return ag_errf(err, EINVAL, "JWT: delegation chain of %zu agents, expected 1..%d",
			       c->chain_len, AG_JWT_MAX_CHAIN);
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return ossl_err(err, "JWT: jti");
	ret = ag_b64url_encode(rnd, sizeof(rnd), &jti, err);
	if (ret)
		return ret;
	ret = act_claim(c, &act, err);
	if (ret) {
		free(jti);
		return ret;
	}
	payload = json_pack("{s:s,s:s,s:s,s:I,s:I,s:s,s:o}", "iss", c->iss, "sub", c->sub, "aud",
			    c->aud, "iat", (json_int_t)c->iat, "exp", (json_int_t)(c->iat + c->ttl),
			    "jti", jti, "act", act);
	free(jti);
	if (!payload ||
	    (c->session &&
	     json_object_set_new(payload, "agentgate_session", json_string(c->session))) ||
	    (c->tool && json_object_set_new(payload, "agentgate_tool", json_string(c->tool)))) {
		json_decref(payload);
		return ag_errf(err, EINVAL, "JWT: a claim is not valid UTF-8");
	}
	*out = payload;
	return 0;
}

int ag_jwt_mint(const struct ag_jwt_key *k, const struct ag_jwt_claims *c, char **out,
		struct ag_err *err)
{
	char *h = NULL, *p = NULL, *sig = NULL, *tok = NULL;
	json_t *header, *payload;
	int ret;

	ret = jwt_payload(c, &payload, err);
	if (ret)
		return ret;
	header =
	    json_pack("{s:s,s:s,s:s}", "alg", ag_jwt_alg_name(k->alg), "typ", "JWT", "kid", k->kid);
	if (!header) {
		ret = ag_errf(err, ENOMEM, "JWT: out of memory");
		goto out;
	}
	ret = dump_b64(header, &h, err);
	if (!ret)
		ret = dump_b64(payload, &p, err);
	if (ret)
		goto out;
	if (asprintf(&tok, "%s.%s", h, p) < 0) {
		tok = NULL;
		ret = ag_errf(err, ENOMEM, "JWT: out of memory");
		goto out;
	}
	ret = jws_sign(k, tok, strlen(tok), &sig, err);
	if (ret)
		goto out;
	free(tok);
	if (asprintf(&tok, "%s.%s.%s", h, p, sig) < 0) {
		tok = NULL;
		ret = ag_errf(err, ENOMEM, "JWT: out of memory");
		goto out;
	}
	*out = tok;
	tok = NULL;
out:
	free(tok);
	free(sig);
	free(p);
	free(h);
	json_decref(header);
	json_decref(payload);
	return ret;
}

static int jwk(const struct ag_jwt_key *k, json_t **out, struct ag_err *err)
{
	unsigned char raw[AG_JWT_RAW_PUB_MAX];
	char *x = NULL, *y = NULL;
	size_t len;
	int ret;

	ret = ag_jwt_key_public_raw(k, raw, &len, err);
	if (ret)
		return ret;
	if (k->alg == AG_JWT_EDDSA) {
		ret = ag_b64url_encode(raw, len, &x, err);
		if (!ret)
			*out =
			    json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "kty", "OKP", "crv", "Ed25519",
				      "x", x, "kid", k->kid, "alg", "EdDSA", "use", "sig");
	} else {
		ret = ag_b64url_encode(raw + 1, ES256_PART, &x, err);
		if (!ret)
			ret = ag_b64url_encode(raw + 1 + ES256_PART, ES256_PART, &y, err);
		if (!ret)
			*out =
			    json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "kty", "EC", "crv", "P-256",
				      "x", x, "y", y, "kid", k->kid, "alg", "ES256", "use", "sig");
	}
	free(x);
	free(y);
	if (!ret && !*out)
		ret = ag_errf(err, ENOMEM, "JWKS: out of memory");
	return ret;
}

int ag_jwks_json(const struct ag_jwt_key *const *keys, size_t n, char **out, struct ag_err *err)
{
	json_t *arr = json_array(), *root;
	char *s;

	if (!arr)
		return ag_errf(err, ENOMEM, "JWKS: out of memory");
	for (size_t i = 0; i < n; i++) {
		json_t *j = NULL;
		int ret = jwk(keys[i], &j, err);

		if (ret) {
			json_decref(arr);
			return ret;
		}
		if (json_array_append_new(arr, j)) {
			json_decref(arr);
			return ag_errf(err, ENOMEM, "JWKS: out of memory");
		}
	}
	root = json_pack("{s:o}", "keys", arr);
	s = root ? json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(root);
	if (!s)
		return ag_errf(err, ENOMEM, "JWKS: out of memory");
	*out = s;
	return 0;
}

int ag_keyring_dir(const char *state_dir, enum ag_jwt_alg alg, char *out, size_t cap,
		   struct ag_err *err)
{
	int n = snprintf(out, cap, "%s/keys/%s", state_dir, ag_jwt_alg_name(alg));

	if (n < 0 || (size_t)n >= cap)
		return ag_errf(err, ENAMETOOLONG, "state directory %s: path too long", state_dir);
	return 0;
}
