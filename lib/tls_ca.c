// SPDX-License-Identifier: GPL-2.0
/* The instance CA of lib/tls.h: its files, and the leaf certificates it mints by name. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "fileio.h"
#include "hostport.h"
#include "secret.h"
#include "tls_int.h"

#define SYSTEM_BUNDLE "/etc/ssl/certs/ca-certificates.crt"
#define BUNDLE_MAX (8 * 1024 * 1024)
#define CERT_MAX (64 * 1024)
#define CA_DAYS (10 * 365 + 3)
#define LEAF_SECS (7 * 24 * 3600L)
#define LEAF_BACKDATE 3600L	 /* clocks of agents lag */
#define LEAF_REMINT (24 * 3600L) /* a cached leaf always has 6 days left */

struct leaf {
	char name[AG_TLS_NAME_MAX];
	X509 *cert;
	time_t minted;
};

struct ag_tls_ca {
	EVP_PKEY *key;
	X509 *cert;
	EVP_PKEY *leaf_key; /* shared by every leaf, never written anywhere */
	struct leaf leaves[AG_TLS_LEAF_CACHE];
	size_t next; /* round robin over leaves: the oldest goes first */
	char cert_path[PATH_MAX];
	char bundle_path[PATH_MAX];
};

/* ---- files ---- */

static int path_in(char *buf, size_t len, const char *dir, const char *name, struct ag_err *err)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);

	if (n < 0 || (size_t)n >= len)
		return ag_errf(err, ENAMETOOLONG, "%s: directory name too long", dir);
	return 0;
}

/* ---- certificates ---- */

/* 128 random bits, top bit clear so the DER INTEGER stays positive and 16 bytes. */
static int set_serial(X509 *x)
{
	unsigned char b[16];
	BIGNUM *bn;
	int ok;

	if (RAND_bytes(b, sizeof(b)) != 1)
		return 0;
	b[0] &= 0x7f;
	b[0] |= 0x01; /* never zero, never short */
	bn = BN_bin2bn(b, sizeof(b), NULL);
	ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
	BN_free(bn);
	return ok;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return 0;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok;
}

/* A certificate with serial, validity and subject; issuer and extensions left to the caller. */
static X509 *cert_new(EVP_PKEY *pub, const char *cn, time_t now, long secs)
{
	X509 *x = X509_new();
	X509_NAME *subj;

	if (!x || !X509_set_version(x, 2) || !set_serial(x) ||
	    !X509_time_adj_ex(X509_getm_notBefore(x), 0, -LEAF_BACKDATE, &now) ||
	    !X509_time_adj_ex(X509_getm_notAfter(x), (int)(secs / 86400), secs % 86400, &now) ||
	    !X509_set_pubkey(x, pub))
		goto fail;
	subj = X509_get_subject_name(x);
	/* CN is limited to 64 bytes; longer names live in the SAN alone. */
	if (cn && strlen(cn) <= 64 &&
	    !X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
					-1, 0))
		goto fail;
	return x;
fail:
	X509_free(x);
	return NULL;
}

static X509 *ca_mint(EVP_PKEY *key, const char *instance)
{
	char cn[128];
	X509 *x;

	snprintf(cn, sizeof(cn), "agentgate %s CA", instance);
	x = cert_new(key, cn, time(NULL), CA_DAYS * 86400L);
	if (!x || !X509_set_issuer_name(x, X509_get_subject_name(x)) ||
	    !add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE") ||
	    !add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") ||
	    !add_ext(x, x, NID_subject_key_identifier, "hash") ||
	    !X509_sign(x, key, EVP_sha256())) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/* name: validated DNS name or IP literal, so it cannot inject into the extension text. */
static X509 *leaf_mint(const struct ag_tls_ca *ca, const char *name, time_t now)
{
	char san[AG_TLS_NAME_MAX + 8];
	X509 *x;

	snprintf(san, sizeof(san), "%s:%s", ag_ip_literal(name) ? "IP" : "DNS", name);
	x = cert_new(ca->leaf_key, name, now, LEAF_SECS);
	if (!x || !X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) ||
	    !add_ext(x, ca->cert, NID_basic_constraints, "critical,CA:FALSE") ||
	    !add_ext(x, ca->cert, NID_key_usage, "critical,digitalSignature") ||
	    !add_ext(x, ca->cert, NID_ext_key_usage, "serverAuth") ||
	    !add_ext(x, ca->cert, NID_subject_alt_name, san) ||
	    !add_ext(x, ca->cert, NID_authority_key_identifier, "keyid:always") ||
	    !X509_sign(x, ca->key, EVP_sha256())) {
		X509_free(x);
		return NULL;
	}
	return x;
}

X509 *ag_tls_ca_leaf(struct ag_tls_ca *ca, const char *name, struct ag_err *err)
{
	char key[AG_TLS_NAME_MAX];
	unsigned char ip[16];
	time_t now = time(NULL);
	struct leaf *l;
	size_t n = strlen(name);

	if (n >= sizeof(key)) {
		ag_errf(err, EINVAL, "TLS name: longer than %d bytes", AG_TLS_NAME_MAX - 1);
		return NULL;
	}
	memcpy(key, name, n + 1);
	ag_ascii_lower(key);
	/* Canonical form, so "::1" and "0::1" share one entry and the SAN text is ours. */
	if (inet_pton(AF_INET, key, ip) == 1)
		inet_ntop(AF_INET, ip, key, sizeof(key));
	else if (inet_pton(AF_INET6, key, ip) == 1)
		inet_ntop(AF_INET6, ip, key, sizeof(key));
	else if (!ag_tls_dns_name_valid(key, n)) {
		ag_errf(err, EINVAL, "TLS name %.64s: not a DNS name or IP address", key);
		return NULL;
	}
	for (size_t i = 0; i < AG_TLS_LEAF_CACHE; i++) {
		l = &ca->leaves[i];
		if (l->cert && !strcmp(l->name, key) && now - l->minted < LEAF_REMINT &&
		    now >= l->minted)
			return l->cert;
	}
	l = &ca->leaves[ca->next];
	ca->next = (ca->next + 1) % AG_TLS_LEAF_CACHE;
	X509_free(l->cert);
	l->cert = leaf_mint(ca, key, now);
	if (!l->cert) {
		ag_tls_ossl_err(err, EIO, "TLS leaf certificate");
		return NULL;
	}
	memcpy(l->name, key, sizeof(l->name));
	l->minted = now;
	return l->cert;
}

/* ---- the CA ---- */

/* An encrypted key is refused: OpenSSL's default would prompt on the terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

static int ca_load(struct ag_tls_ca *ca, const char *key_path, struct ag_err *err)
{
	struct ag_secret *s;
	char *pem;
	size_t len;
	BIO *bio;
	int ret;

	ret = ag_secret_load(key_path, AG_SECRET_RAW, &s, err);
	if (ret)
		return ret;
	bio = BIO_new_mem_buf(s->data, (int)s->len);
	ca->key = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
	BIO_free(bio);
	ag_secret_free(s);
	if (!ca->key) {
		ERR_clear_error();
		return ag_errf(err, EINVAL, "%s: not a PEM private key", key_path);
	}
	ret = ag_read_file(ca->cert_path, CERT_MAX, &pem, &len, err);
	if (ret == -ENOENT)
		return ag_errf(err, ENOENT,
			       "%s: missing while %s exists; restore it, or remove both to make "
			       "a new CA (agents must then be restarted)",
			       ca->cert_path, key_path);
	if (ret)
		return ret;
	bio = BIO_new_mem_buf(pem, (int)len);
	ca->cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	free(pem);
	if (!ca->cert) {
		ERR_clear_error();
		return ag_errf(err, EINVAL, "%s: not a PEM certificate", ca->cert_path);
	}
	if (X509_check_private_key(ca->cert, ca->key) != 1) {
		ERR_clear_error();
		return ag_errf(err, EINVAL, "%s: does not match the key in %s", ca->cert_path,
			       key_path);
	}
	return 0;
}

static int pem_cert(X509 *x, char **out, long *len)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *p;

	if (!bio || !PEM_write_bio_X509(bio, x)) {
		BIO_free(bio);
		return 0;
	}
	*len = BIO_get_mem_data(bio, &p);
	*out = malloc((size_t)*len);
	if (*out)
		memcpy(*out, p, (size_t)*len);
	BIO_free(bio);
	return *out != NULL;
}

static int ca_create(struct ag_tls_ca *ca, const char *key_path, const char *instance,
		     struct ag_err *err)
{
	BIO *bio = NULL;
	char *pem = NULL;
	long len;
	int ret;

	ca->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!ca->key)
		return ag_tls_ossl_err(err, EIO, "TLS CA key");
	ca->cert = ca_mint(ca->key, instance);
	if (!ca->cert || !pem_cert(ca->cert, &pem, &len))
		return ag_tls_ossl_err(err, EIO, "TLS CA certificate");
	/* The certificate first: a crash before the key is renamed in leaves a stale ca.crt. */
	ret = ag_file_write_atomic(ca->cert_path, pem, (size_t)len, 0644, err);
	free(pem);
	if (ret)
		return ret;
	bio = BIO_new(BIO_s_secmem());
	if (!bio || !PEM_write_bio_PrivateKey(bio, ca->key, NULL, NULL, 0, NULL, NULL)) {
		BIO_free(bio);
		return ag_tls_ossl_err(err, EIO, key_path);
	}
	len = BIO_get_mem_data(bio, &pem);
	ret = ag_file_write_atomic(key_path, pem, (size_t)len, 0600, err);
	BIO_free(bio); /* secmem: wiped */
	return ret;
}

/* The system bundle plus our CA, for tools that read one file (SSL_CERT_FILE). */
static int bundle_write(struct ag_tls_ca *ca, struct ag_err *err)
{
	char *sys = NULL, *crt = NULL, *all;
	size_t slen = 0, clen;
	int ret;

	ret = ag_read_file(SYSTEM_BUNDLE, BUNDLE_MAX, &sys, &slen, err);
	if (ret && ret != -ENOENT)
		return ret;
	ret = ag_read_file(ca->cert_path, CERT_MAX, &crt, &clen, err);
	if (ret)
		goto out;
	all = malloc(slen + 1 + clen);
	if (!all) {
		ret = ag_errf(err, ENOMEM, "%s: out of memory", ca->bundle_path);
		goto out;
	}
	if (slen)
		memcpy(all, sys, slen);
	if (slen && sys[slen - 1] != '\n')
		all[slen++] = '\n';
	memcpy(all + slen, crt, clen);
	ret = ag_file_write_atomic(ca->bundle_path, all, slen + clen, 0644, err);
	free(all);
out:
	free(sys);
	free(crt);
	return ret;
}

int ag_tls_ca_open(struct ag_tls_ca **out, const char *dir, const char *instance,
		   struct ag_err *err)
{
	char key_path[PATH_MAX];
	struct ag_tls_ca *ca;
	struct stat st;
	int fd, ret;

	*out = NULL;
	ret = ag_secret_dir_check(dir, 0711, err);
	if (ret)
		return ret;
	ca = calloc(1, sizeof(*ca));
	if (!ca)
		return ag_errf(err, ENOMEM, "%s: out of memory", dir);
	if ((ret = path_in(key_path, sizeof(key_path), dir, "ca.key", err)) ||
	    (ret = path_in(ca->cert_path, sizeof(ca->cert_path), dir, "ca.crt", err)) ||
	    (ret = path_in(ca->bundle_path, sizeof(ca->bundle_path), dir, "bundle.pem", err))) {
		free(ca);
		return ret;
	}
	/* Two daemons of one instance starting at once must not mint two CAs. */
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		ret = ag_errf(err, errno, "%s: open: %s", dir, strerror(errno));
		goto out;
	}
	if (flock(fd, LOCK_EX)) {
		ret = ag_errf(err, errno, "%s: lock: %s", dir, strerror(errno));
		goto out;
	}
	if (lstat(key_path, &st) == 0 || errno != ENOENT)
		ret = ca_load(ca, key_path, err);
	else
		ret = ca_create(ca, key_path, instance, err);
	if (!ret)
		ret = bundle_write(ca, err);
	if (!ret) {
		ca->leaf_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		if (!ca->leaf_key)
			ret = ag_tls_ossl_err(err, EIO, "TLS leaf key");
	}
out:
	if (fd >= 0)
		close(fd);
	ERR_clear_error();
	if (ret) {
		ag_tls_ca_free(ca);
		return ret;
	}
	*out = ca;
	return 0;
}

void ag_tls_ca_free(struct ag_tls_ca *ca)
{
	if (!ca)
		return;
	for (size_t i = 0; i < AG_TLS_LEAF_CACHE; i++)
		X509_free(ca->leaves[i].cert);
	EVP_PKEY_free(ca->key);
	EVP_PKEY_free(ca->leaf_key);
	X509_free(ca->cert);
	free(ca);
}

const char *ag_tls_ca_cert_path(const struct ag_tls_ca *ca)
{
	return ca->cert_path;
}

const char *ag_tls_ca_bundle_path(const struct ag_tls_ca *ca)
{
	return ca->bundle_path;
}

const X509 *ag_tls_ca_cert(const struct ag_tls_ca *ca)
{
	return ca->cert;
}

EVP_PKEY *ag_tls_ca_leaf_key(const struct ag_tls_ca *ca)
{
	return ca->leaf_key;
}
