// SPDX-License-Identifier: GPL-2.0
/* Credentials: secret files, minted JWTs checked with plain OpenSSL, JWKS and key rotation. */
#include <ftw.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "jwt.h"
#include "secret.h"
#include "test.h"

#define CANARY "canary-7f3e9a-do-not-leak"

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	return remove(path);
}

static bool tmp_dir(char *dir, size_t len)
{
	snprintf(dir, len, "/tmp/ag_cred.XXXXXX");
	return ASSERT_OK_PTR(mkdtemp(dir), "mkdtemp");
}

static void tmp_dir_remove(const char *dir)
{
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

static bool put_file(const char *path, const void *data, size_t len, mode_t mode, uid_t uid)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	bool ok = fd >= 0 && write(fd, data, len) == (ssize_t)len && !fchmod(fd, mode) &&
		  !fchown(fd, uid, 0);

	if (fd >= 0)
		close(fd);
	return ASSERT_TRUE(ok, path);
}

/* Loads path expecting a refusal with errno code; the message names path, never the secret. */
static void expect_refused(const char *path, int code, const char *fix)
{
	struct ag_secret *s = (struct ag_secret *)1;
	struct ag_err err = { 0 };

	ASSERT_EQ(ag_secret_load(path, 0, &s, &err), -code, path);
	ASSERT_TRUE(s == NULL, "no secret on refusal");
	ASSERT_TRUE(strstr(err.msg, path) != NULL, err.msg);
	ASSERT_TRUE(strstr(err.msg, "canary") == NULL, err.msg);
	ASSERT_TRUE(strchr(err.msg, '\n') == NULL, "one line");
	if (fix)
		ASSERT_TRUE(strstr(err.msg, fix) != NULL, err.msg);
}

/* The VmFlags of the mapping holding addr include "dd" (MADV_DONTDUMP). */
static bool mapping_dontdump(const void *addr)
{
	char line[512];
	bool in = false, dd = false;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		/* Field lines start with a name, never with "hex-hex". */
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
			in = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
		} else if (in && !strncmp(line, "VmFlags:", 8)) {
			dd = strstr(line, " dd") != NULL;
			break;
		}
	}
	fclose(f);
	return dd;
}

TEST(credentials_secret)
{
	char dir[64], path[128], link[128];
	struct ag_secret *s = NULL;
	struct ag_err err;

	if (geteuid() != 0) {
		test__skip("secret files must be root-owned: needs root");
		return;
	}
	if (!tmp_dir(dir, sizeof(dir)))
		return;
	snprintf(path, sizeof(path), "%s/token", dir);
	snprintf(link, sizeof(link), "%s/link", dir);

	if (test__start_subtest("mode_0600_newline_stripped")) {
		put_file(path, CANARY "\n", strlen(CANARY) + 1, 0600, 0);
		if (ASSERT_OK(ag_secret_load(path, 0, &s, &err), err.msg)) {
			ASSERT_EQ(s->len, strlen(CANARY), "len");
			ASSERT_STREQ((char *)s->data, CANARY, "data");
			ASSERT_TRUE(mapping_dontdump(s->data), "MADV_DONTDUMP");
			ag_secret_free(s);
		}
	}
	if (test__start_subtest("mode_0400_crlf_and_raw")) {
		put_file(path, CANARY "\r\n", strlen(CANARY) + 2, 0400, 0);
		if (ASSERT_OK(ag_secret_load(path, 0, &s, &err), err.msg)) {
			ASSERT_STREQ((char *)s->data, CANARY, "crlf stripped");
			ag_secret_free(s);
		}
		if (ASSERT_OK(ag_secret_load(path, AG_SECRET_RAW, &s, &err), err.msg)) {
			ASSERT_EQ(s->len, strlen(CANARY) + 2, "raw keeps the newline");
			ag_secret_free(s);
		}
	}
	if (test__start_subtest("mode_0644")) {
		put_file(path, CANARY, strlen(CANARY), 0644, 0);
		expect_refused(path, EPERM, "chmod 600");
	}
	if (test__start_subtest("mode_0640")) {
		put_file(path, CANARY, strlen(CANARY), 0640, 0);
		expect_refused(path, EPERM, "chmod 600");
	}
	if (test__start_subtest("owner_not_root")) {
		put_file(path, CANARY, strlen(CANARY), 0600, 65534);
		expect_refused(path, EPERM, "chown root");
	}
	if (test__start_subtest("symlink")) {
		put_file(path, CANARY, strlen(CANARY), 0600, 0);
		unlink(link);
		ASSERT_OK(symlink(path, link), "symlink");
		expect_refused(link, ELOOP, NULL);
	}
	if (test__start_subtest("directory")) {
		expect_refused(dir, EINVAL, NULL);
	}
	if (test__start_subtest("oversize")) {
		size_t n = AG_SECRET_MAX + 1;
		char *big = malloc(n);

		if (ASSERT_OK_PTR(big, "malloc")) {
			memset(big, 'a', n);
			memcpy(big, CANARY, strlen(CANARY));
			put_file(path, big, n, 0600, 0);
			expect_refused(path, EFBIG, NULL);
			free(big);
		}
	}
	if (test__start_subtest("nul_byte")) {
		put_file(path, CANARY "\0x", strlen(CANARY) + 2, 0600, 0);
		expect_refused(path, EINVAL, NULL);
	}
	if (test__start_subtest("empty")) {
		put_file(path, "\n", 1, 0600, 0);
		expect_refused(path, EINVAL, NULL);
	}
	if (test__start_subtest("process_harden")) {
		pid_t pid = fork();
		int status = 0;

		if (pid == 0)
			_exit(ag_secret_process_harden() || prctl(PR_GET_DUMPABLE) != 0);
		ASSERT_GT(pid, 0, "fork");
		ASSERT_EQ(waitpid(pid, &status, 0), pid, "waitpid");
		ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0, "not dumpable");
	}
	tmp_dir_remove(dir);
}

/* Part idx (0 header, 1 payload) of a compact JWS, decoded and parsed; NULL if malformed. */
static json_t *jwt_part(const char *tok, int idx)
{
	unsigned char buf[2048];
	char part[2048];
	size_t n, len;

	for (; idx > 0 && tok; idx--) {
		tok = strchr(tok, '.');
		tok = tok ? tok + 1 : NULL;
	}
	if (!tok)
		return NULL;
	n = strcspn(tok, ".");
	if (n >= sizeof(part))
		return NULL;
	memcpy(part, tok, n);
	part[n] = '\0';
	if (ag_b64url_decode(part, buf, sizeof(buf), &len, NULL))
		return NULL;
	return json_loadb((char *)buf, len, 0, NULL);
}

/* A string member of o, or "" so that comparisons fail instead of crashing. */
static const char *str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

static long long num(const json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

/* The private key file read with plain OpenSSL, independent of jwt.c. */
static EVP_PKEY *pem_key(const char *dir, const char *kid)
{
	char path[256];
	EVP_PKEY *pkey;
	FILE *f;

	snprintf(path, sizeof(path), "%s/jwt-%s.pem", dir, kid);
	f = fopen(path, "r");
	if (!ASSERT_OK_PTR(f, path))
		return NULL;
	pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	ASSERT_OK_PTR(pkey, "PEM_read_PrivateKey");
	return pkey;
}

/* Verifies the JWS signature of tok with pkey using OpenSSL only. */
static bool verify_jws(const char *tok, EVP_PKEY *pkey, bool es256)
{
	const char *dot2 = strrchr(tok, '.');
	unsigned char sig[128], *der = NULL;
	EVP_MD_CTX *ctx;
	size_t siglen;
	int derlen = 0;
	bool ok;

	if (!dot2 || ag_b64url_decode(dot2 + 1, sig, sizeof(sig), &siglen, NULL))
		return false;
	/* JWS carries R || S; OpenSSL verifies DER, so rebuild it. */
	if (es256) {
		ECDSA_SIG *es = ECDSA_SIG_new();
		BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);

		if (!es || !r || !s || siglen != 64 || !ECDSA_SIG_set0(es, r, s)) {
			BN_free(r);
			BN_free(s);
			ECDSA_SIG_free(es);
			return false;
		}
		derlen = i2d_ECDSA_SIG(es, &der);
		ECDSA_SIG_free(es);
		if (derlen <= 0)
			return false;
	}
	ctx = EVP_MD_CTX_new();
	ok = ctx && EVP_DigestVerifyInit(ctx, NULL, es256 ? EVP_sha256() : NULL, NULL, pkey) == 1 &&
	     EVP_DigestVerify(ctx, es256 ? der : sig, es256 ? (size_t)derlen : siglen,
			      (const unsigned char *)tok, (size_t)(dot2 - tok)) == 1;
	OPENSSL_free(der);
	EVP_MD_CTX_free(ctx);
	return ok;
}

/* The raw public key (Ed25519 32 bytes, P-256 0x04||X||Y) read with OpenSSL; 0 on error. */
static size_t raw_pub(EVP_PKEY *pkey, bool es256, unsigned char out[65])
{
	size_t len = 65;

	if (!es256)
		return EVP_PKEY_get_raw_public_key(pkey, out, &len) ? len : 0;
	return EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, out, 65,
					       &len)
		   ? len
		   : 0;
}

static void check_token(const char *dir, const char *tok, const char *kid, bool es256,
			const char *const *chain, size_t n)
{
	json_t *h = jwt_part(tok, 0), *p = jwt_part(tok, 1), *act;
	EVP_PKEY *pkey;

	ASSERT_TRUE(strchr(tok, '=') == NULL, "no padding");
	if (ASSERT_OK_PTR(h, "header") && ASSERT_OK_PTR(p, "payload")) {
		ASSERT_STREQ(str(h, "alg"), es256 ? "ES256" : "EdDSA", "alg");
		ASSERT_STREQ(str(h, "typ"), "JWT", "typ");
		ASSERT_STREQ(str(h, "kid"), kid, "kid");
		ASSERT_STREQ(str(p, "aud"), "github-mcp", "aud");
		ASSERT_STREQ(str(p, "sub"), "alice", "sub");
		ASSERT_STREQ(str(p, "iss"), "agentgate", "iss");
		ASSERT_STREQ(str(p, "agentgate_tool"), "create_issue", "tool");
		ASSERT_STREQ(str(p, "agentgate_session"), "s1", "session");
		ASSERT_EQ(num(p, "iat"), 1800000000, "iat");
		ASSERT_GT(num(p, "exp"), num(p, "iat"), "exp > iat");
		ASSERT_LE(num(p, "exp") - num(p, "iat"), AG_JWT_MAX_TTL, "exp - iat");
		ASSERT_EQ(strlen(str(p, "jti")), 22, "jti is 128 bits");
		/* The calling agent outermost, its delegators nested towards the root. */
		act = json_object_get(p, "act");
		for (size_t i = n; i-- > 0;) {
			char want[64];

			snprintf(want, sizeof(want), "agent:%s", chain[i]);
			ASSERT_STREQ(str(act, "sub"), want, "act.sub");
			act = json_object_get(act, "act");
		}
		ASSERT_TRUE(act == NULL, "act chain ends at the root");
	}
	json_decref(h);
	json_decref(p);
	pkey = pem_key(dir, kid);
	if (pkey)
		ASSERT_TRUE(verify_jws(tok, pkey, es256), "signature verifies with OpenSSL");
	EVP_PKEY_free(pkey);
}

/* The JWKS entry for kid: its key's bytes, and a kid computed here from them. */
static void check_jwk(const char *dir, const json_t *jwks, const char *kid, bool es256)
{
	unsigned char want[65], got[65], md[32];
	size_t wlen = 0, xlen = 0, ylen = 0;
	EVP_PKEY *pkey = pem_key(dir, kid);
	const json_t *key = NULL, *k;
	char *want_kid = NULL;
	size_t i;

	json_array_foreach(json_object_get(jwks, "keys"), i, k)
	{
		if (!strcmp(str(k, "kid"), kid))
			key = k;
	}
	if (!ASSERT_OK_PTR(key, kid) || !pkey)
		goto out;
	wlen = raw_pub(pkey, es256, want);
	ASSERT_EQ(wlen, es256 ? 65 : 32, "raw public key");
	ASSERT_STREQ(str(key, "use"), "sig", "use");
	ASSERT_STREQ(str(key, "alg"), es256 ? "ES256" : "EdDSA", "alg");
	ASSERT_STREQ(str(key, "kty"), es256 ? "EC" : "OKP", "kty");
	ASSERT_STREQ(str(key, "crv"), es256 ? "P-256" : "Ed25519", "crv");
	got[0] = 0x04;
	ASSERT_OK(ag_b64url_decode(str(key, "x"), got + es256, 32, &xlen, NULL), "x");
	if (es256)
		ASSERT_OK(ag_b64url_decode(str(key, "y"), got + 33, 32, &ylen, NULL), "y");
	else
		ASSERT_TRUE(json_object_get(key, "y") == NULL, "no y for OKP");
	ASSERT_EQ(es256 + xlen + ylen, wlen, "x/y length");
	ASSERT_MEMEQ(got, want, wlen, "x/y are the public key");
	EVP_Digest(want, wlen, md, NULL, EVP_sha256(), NULL);
	if (ASSERT_OK(ag_b64url_encode(md, 16, &want_kid, NULL), "kid"))
		ASSERT_STREQ(kid, want_kid, "kid = b64url(sha256(raw)[:16])");
	free(want_kid);
out:
	EVP_PKEY_free(pkey);
}

static void check_alg(enum ag_jwt_alg alg)
{
	static const char *const chain[] = { "planner", "coder" };
	bool es256 = alg == AG_JWT_ES256;
	struct ag_jwt_claims c = {
		.iss = "agentgate",
		.sub = "alice",
		.aud = "github-mcp",
		.session = "s1",
		.tool = "create_issue",
		.chain = chain,
		.chain_len = 1,
		.iat = 1800000000,
		.ttl = 300,
	};
	char dir[64], kid[AG_JWT_KID_LEN + 1], *t1 = NULL, *t2 = NULL, *t3 = NULL, *jwks = NULL;
	struct ag_keyring *kr = NULL;
	const struct ag_jwt_key *k;
	struct ag_err err;

	if (!tmp_dir(dir, sizeof(dir)))
		return;
	if (!ASSERT_OK(ag_keyring_rotate(dir, alg, c.iat, kid, &err), err.msg) ||
	    !ASSERT_OK(ag_keyring_open(dir, c.iat, &kr, &err), err.msg))
		goto out;
	k = ag_keyring_current(kr);
	ASSERT_STREQ(ag_jwt_key_kid(k), kid, "current kid");
	if (ASSERT_OK(ag_jwt_mint(k, &c, &t1, &err), err.msg))
		check_token(dir, t1, kid, es256, chain, 1);
	c.chain_len = 2; /* coder, a sub-agent of planner */
	if (ASSERT_OK(ag_jwt_mint(k, &c, &t2, &err), err.msg))
		check_token(dir, t2, kid, es256, chain, 2);
	if (t1 && t2) {
		json_t *p1 = jwt_part(t1, 1), *p2 = jwt_part(t2, 1);

		ASSERT_TRUE(strcmp(str(p1, "jti"), str(p2, "jti")), "jti unique");
		json_decref(p1);
		json_decref(p2);
	}
	c.ttl = AG_JWT_MAX_TTL + 1;
	ASSERT_EQ(ag_jwt_mint(k, &c, &t3, &err), -EINVAL, "ttl 301 refused");
	ASSERT_TRUE(t3 == NULL, "no token");
	if (ASSERT_OK(ag_keyring_jwks(kr, &jwks, &err), err.msg)) {
		json_t *j = json_loads(jwks, 0, NULL);

		ASSERT_EQ(json_array_size(json_object_get(j, "keys")), 1, "one key");
		check_jwk(dir, j, kid, es256);
		json_decref(j);
	}
out:
	free(jwks);
	free(t1);
	free(t2);
	ag_keyring_free(kr);
	tmp_dir_remove(dir);
}

TEST(credentials_jwt)
{
	if (test__start_subtest("eddsa"))
		check_alg(AG_JWT_EDDSA);
	if (test__start_subtest("es256"))
		check_alg(AG_JWT_ES256);
	if (test__start_subtest("b64url")) {
		unsigned char out[8];
		char *s = NULL;
		size_t n;

		if (ASSERT_OK(ag_b64url_encode((const unsigned char *)"\xfb\xff", 2, &s, NULL),
			      "enc"))
			ASSERT_STREQ(s, "-_8", "url alphabet, no padding");
		free(s);
		ASSERT_OK(ag_b64url_decode("-_8", out, sizeof(out), &n, NULL), "dec");
		ASSERT_EQ(n, 2, "len");
		ASSERT_MEMEQ(out, "\xfb\xff", 2, "bytes");
		ASSERT_NEQ(ag_b64url_decode("+/8=", out, sizeof(out), &n, NULL), 0, "std refused");
		ASSERT_NEQ(ag_b64url_decode("AAAAAAAAAAAA", out, 8, &n, NULL), 0, "too long");
	}
}

/* The keyring's JWKS, parsed. */
static json_t *keyring_jwks(const struct ag_keyring *kr)
{
	char *s = NULL;
	json_t *j;

	if (ag_keyring_jwks(kr, &s, NULL))
		return NULL;
	j = json_loads(s, 0, NULL);
	free(s);
	return j;
}

static bool jwks_has(const json_t *jwks, const char *kid)
{
	const json_t *k;
	size_t i;

	json_array_foreach(json_object_get(jwks, "keys"), i, k)
	{
		if (!strcmp(str(k, "kid"), kid))
			return true;
	}
	return false;
}

static bool key_file_exists(const char *dir, const char *kid)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/jwt-%s.pem", dir, kid);
	return access(path, F_OK) == 0;
}

TEST(credentials_rotation)
{
	char dir[64], kid1[AG_JWT_KID_LEN + 1], kid2[AG_JWT_KID_LEN + 1], kid3[AG_JWT_KID_LEN + 1];
	const int64_t t0 = 1800000000, t1 = t0 + 100;
	struct ag_keyring *kr = NULL;
	struct ag_err err;
	json_t *jwks;

	if (!tmp_dir(dir, sizeof(dir)))
		return;
	/* kid1 (EdDSA) from t0, retired at t1 by kid2 (ES256). */
	if (!ASSERT_OK(ag_keyring_rotate(dir, AG_JWT_EDDSA, t0, kid1, &err), err.msg) ||
	    !ASSERT_OK(ag_keyring_rotate(dir, AG_JWT_ES256, t1, kid2, &err), err.msg))
		goto out;
	ASSERT_TRUE(strcmp(kid1, kid2), "new kid");
	if (test__start_subtest("old_key_published_until_expiry")) {
		if (ASSERT_OK(ag_keyring_open(dir, t1 + AG_JWT_MAX_TTL, &kr, &err), err.msg)) {
			ASSERT_STREQ(ag_jwt_key_kid(ag_keyring_current(kr)), kid2, "current");
			jwks = keyring_jwks(kr);
			ASSERT_TRUE(jwks_has(jwks, kid1), "old key still published");
			ASSERT_TRUE(jwks_has(jwks, kid2), "new key published");
			check_jwk(dir, jwks, kid1, false);
			check_jwk(dir, jwks, kid2, true);
			json_decref(jwks);
			ag_keyring_free(kr);
			kr = NULL;
		}
	}
	if (test__start_subtest("new_tokens_new_kid")) {
		static const char *const chain[] = { "a" };
		struct ag_jwt_claims c = { .iss = "i",
					   .sub = "s",
					   .aud = "a",
					   .chain = chain,
					   .chain_len = 1,
					   .iat = t1 + 1,
					   .ttl = 60 };
		char *tok = NULL;

		if (ASSERT_OK(ag_keyring_open(dir, c.iat, &kr, &err), err.msg) &&
		    ASSERT_OK(ag_jwt_mint(ag_keyring_current(kr), &c, &tok, &err), err.msg)) {
			json_t *h = jwt_part(tok, 0);

			ASSERT_STREQ(str(h, "kid"), kid2, "kid");
			ASSERT_STREQ(str(h, "alg"), "ES256", "alg");
			json_decref(h);
		}
		free(tok);
		ag_keyring_free(kr);
		kr = NULL;
	}
	if (test__start_subtest("expired_key_pruned")) {
		int64_t later = t1 + AG_JWT_MAX_TTL + 1;

		if (ASSERT_OK(ag_keyring_open(dir, later, &kr, &err), err.msg)) {
			jwks = keyring_jwks(kr);
			ASSERT_FALSE(jwks_has(jwks, kid1), "old key no longer published");
			ASSERT_TRUE(jwks_has(jwks, kid2), "current key published");
			json_decref(jwks);
			ag_keyring_free(kr);
			kr = NULL;
		}
		if (ASSERT_OK(ag_keyring_rotate(dir, AG_JWT_EDDSA, later, kid3, &err), err.msg)) {
			ASSERT_FALSE(key_file_exists(dir, kid1), "expired key file deleted");
			ASSERT_TRUE(key_file_exists(dir, kid2), "just retired key kept");
			ASSERT_TRUE(key_file_exists(dir, kid3), "new key written");
		}
	}
	if (test__start_subtest("key_file_mode")) {
		char path[256];
		struct stat st;

		snprintf(path, sizeof(path), "%s/jwt-%s.pem", dir, kid2);
		if (ASSERT_OK(stat(path, &st), "stat"))
			ASSERT_EQ(st.st_mode & 07777, 0600, "key file 0600");
		ASSERT_OK(chmod(path, 0644), "chmod");
		ASSERT_EQ(ag_keyring_open(dir, t1 + 1, &kr, &err), -EPERM, "0644 key refused");
		ASSERT_TRUE(strstr(err.msg, "chmod 600") != NULL, err.msg);
		ag_keyring_free(kr);
		kr = NULL;
	}
	if (test__start_subtest("open_directory_refused")) {
		ASSERT_OK(chmod(dir, 0777), "chmod");
		ASSERT_EQ(ag_keyring_rotate(dir, AG_JWT_EDDSA, t1, kid3, &err), -EPERM, err.msg);
		ASSERT_TRUE(strstr(err.msg, "chmod go-w") != NULL, err.msg);
		ASSERT_EQ(ag_keyring_open(dir, t1, &kr, &err), -EPERM, err.msg);
		ASSERT_OK(chmod(dir, 0700), "chmod");
	}
	if (test__start_subtest("tampered_index")) {
		char path[256];
		const char bad[] = "{\"current\":\"../../etc/x\",\"keys\":[]}";

		snprintf(path, sizeof(path), "%s/keys.json", dir);
		if (put_file(path, bad, strlen(bad), 0600, 0))
			ASSERT_EQ(ag_keyring_open(dir, t1, &kr, &err), -EINVAL, err.msg);
		ag_keyring_free(kr);
	}
out:
	tmp_dir_remove(dir);
}
