// SPDX-License-Identifier: GPL-2.0
/* TLS over memory BIOs: the instance CA, minted leaves, contexts, connections, SNI parsing. */
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

#include "secret.h"
#include "tls.h"

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

struct ag_tls {
	SSL *ssl;
	BIO *in, *out; /* owned by ssl */
	bool server;
	bool shut;
	char name[AG_TLS_NAME_MAX]; /* client: the upstream; server: the fallback */
	char sni[AG_TLS_NAME_MAX];
	/* Why the certificate callback refused; OpenSSL only says "cert cb error". */
	char why[sizeof(((struct ag_err *)0)->msg)];
};

/* The most specific OpenSSL reason, then an empty queue: no error leaks to the next caller. */
static int ossl_err(struct ag_err *err, int code, const char *what)
{
	char buf[256];
	unsigned long e = ERR_peek_last_error();

	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return ag_errf(err, code, "%s: %s", what, e ? buf : "OpenSSL failure");
}

bool ag_tls_dns_name_valid(const char *name, size_t len)
{
	size_t label = 0;
	bool numeric = true;

	if (!len || len > AG_TLS_NAME_MAX - 1)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c == '.') {
			if (!label)
				return false;
			label = 0;
			numeric = true;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
		if (!(c >= '0' && c <= '9'))
			numeric = false;
		if (++label > 63)
			return false;
	}
	/* A trailing dot is not allowed in SNI; an all-digit last label is an IP literal. */
	return label && !numeric;
}

/* "a.b.c.d" or a v6 literal (a bracketed one is not). */
static bool ip_literal(const char *s)
{
	unsigned char a[16];

	return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

static void lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s += 'a' - 'A';
}

/* ---- files ---- */

static int path_in(char *buf, size_t len, const char *dir, const char *name, struct ag_err *err)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);

	if (n < 0 || (size_t)n >= len)
		return ag_errf(err, ENAMETOOLONG, "%s: directory name too long", dir);
	return 0;
}

/* Writes len bytes to path through path.tmp and a rename: readers see the old or the new file. */
static int write_atomic(const char *path, const void *data, size_t len, mode_t mode,
			struct ag_err *err)
{
	char tmp[PATH_MAX];
	int fd, ret = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return ag_errf(err, ENAMETOOLONG, "%s: name too long", path);
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return ag_errf(err, errno, "%s: create: %s", tmp, strerror(errno));
	/* The umask may have taken bits away; the mode is part of the contract. */
	if (fchmod(fd, mode))
		ret = ag_errf(err, errno, "%s: chmod: %s", tmp, strerror(errno));
	for (size_t off = 0; !ret && off < len;) {
		ssize_t w = write(fd, (const char *)data + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			ret = ag_errf(err, errno, "%s: write: %s", tmp, strerror(errno));
		else
			off += (size_t)w;
	}
	if (!ret && fsync(fd))
		ret = ag_errf(err, errno, "%s: fsync: %s", tmp, strerror(errno));
	close(fd);
	if (!ret && rename(tmp, path))
		ret = ag_errf(err, errno, "%s: rename: %s", path, strerror(errno));
	if (ret)
		unlink(tmp);
	return ret;
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

	snprintf(san, sizeof(san), "%s:%s", ip_literal(name) ? "IP" : "DNS", name);
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
	lower(key);
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
		ossl_err(err, EIO, "TLS leaf certificate");
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
		return ossl_err(err, EIO, "TLS CA key");
	ca->cert = ca_mint(ca->key, instance);
	if (!ca->cert || !pem_cert(ca->cert, &pem, &len))
		return ossl_err(err, EIO, "TLS CA certificate");
	/* The certificate first: a crash before the key is renamed in leaves a stale ca.crt. */
	ret = write_atomic(ca->cert_path, pem, (size_t)len, 0644, err);
	free(pem);
	if (ret)
		return ret;
	bio = BIO_new(BIO_s_secmem());
	if (!bio || !PEM_write_bio_PrivateKey(bio, ca->key, NULL, NULL, 0, NULL, NULL)) {
		BIO_free(bio);
		return ossl_err(err, EIO, key_path);
	}
	len = BIO_get_mem_data(bio, &pem);
	ret = write_atomic(key_path, pem, (size_t)len, 0600, err);
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
	ret = write_atomic(ca->bundle_path, all, slen + clen, 0644, err);
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
			ret = ossl_err(err, EIO, "TLS leaf key");
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

/* ---- contexts ---- */

/* Picks the leaf once the ClientHello (and its SNI) has been parsed. */
static int server_cert_cb(SSL *ssl, void *arg)
{
	struct ag_tls_ca *ca = arg;
	struct ag_tls *t = SSL_get_app_data(ssl);
	const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	const char *name;
	struct ag_err err;
	X509 *leaf;

	if (!t)
		return 0;
	if (sni) {
		size_t n = strlen(sni);

		/* The agent chose these bytes: only a plain DNS name becomes a certificate. */
		if (!ag_tls_dns_name_valid(sni, n)) {
			snprintf(t->why, sizeof(t->why), "SNI is not a valid DNS name");
			return 0;
		}
		memcpy(t->sni, sni, n + 1);
		lower(t->sni);
		name = t->sni;
	} else if (t->name[0]) {
		name = t->name;
	} else {
		snprintf(t->why, sizeof(t->why), "no SNI and no fallback name to mint for");
		return 0;
	}
	leaf = ag_tls_ca_leaf(ca, name, &err);
	if (!leaf) {
		snprintf(t->why, sizeof(t->why), "%s", err.msg);
		return 0;
	}
	return SSL_use_certificate(ssl, leaf) == 1 && SSL_use_PrivateKey(ssl, ca->leaf_key) == 1;
}

/* Only HTTP/1.1 is spoken to agents: h2 is never selected even if offered first. */
static int server_alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
			  const unsigned char *in, unsigned int inlen, void *arg)
{
	for (unsigned int i = 0; i < inlen;) {
		unsigned int n = in[i];

		if (n > inlen - i - 1)
			break;
		if (n == 8 && !memcmp(in + i + 1, "http/1.1", 8)) {
			*out = in + i + 1;
			*outlen = (unsigned char)n;
			return SSL_TLSEXT_ERR_OK;
		}
		i += 1 + n;
	}
	return SSL_TLSEXT_ERR_NOACK;
}

static SSL_CTX *ctx_new(const SSL_METHOD *m, struct ag_err *err)
{
	SSL_CTX *ctx = SSL_CTX_new(m);

	if (!ctx) {
		ossl_err(err, ENOMEM, "TLS context");
		return NULL;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
		ossl_err(err, EINVAL, "TLS context: minimum version");
		SSL_CTX_free(ctx);
		return NULL;
	}
	/* Renegotiation and compression are attack surface nobody here needs. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	return ctx;
}

SSL_CTX *ag_tls_server_ctx(struct ag_tls_ca *ca, struct ag_err *err)
{
	SSL_CTX *ctx = ctx_new(TLS_server_method(), err);

	if (!ctx)
		return NULL;
	SSL_CTX_set_cert_cb(ctx, server_cert_cb, ca);
	SSL_CTX_set_alpn_select_cb(ctx, server_alpn_cb, NULL);
	/* Connections are short and one per agent request; no session cache to bound. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_num_tickets(ctx, 0);
	return ctx;
}

SSL_CTX *ag_tls_client_ctx(const char *ca_file, struct ag_err *err)
{
	static const unsigned char alpn[] = "\x08http/1.1";
	SSL_CTX *ctx = ctx_new(TLS_client_method(), err);
	char what[PATH_MAX + 32];

	if (!ctx)
		return NULL;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (ca_file && *ca_file) {
		if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
			snprintf(what, sizeof(what), "TLS CA file %s", ca_file);
			goto fail;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		snprintf(what, sizeof(what), "TLS system CA paths");
		goto fail;
	}
	if (SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1)) {
		snprintf(what, sizeof(what), "TLS ALPN");
		goto fail;
	}
	return ctx;
fail:
	ossl_err(err, EINVAL, what);
	SSL_CTX_free(ctx);
	return NULL;
}

/* ---- connections ---- */

static struct ag_tls *tls_new(SSL_CTX *ctx, bool server, const char *name, struct ag_err *err)
{
	struct ag_tls *t = calloc(1, sizeof(*t));

	if (!t) {
		ag_errf(err, ENOMEM, "TLS connection: out of memory");
		return NULL;
	}
	t->server = server;
	if (name && strlen(name) >= sizeof(t->name)) {
		ag_errf(err, EINVAL, "TLS name %.64s...: longer than %d bytes", name,
			AG_TLS_NAME_MAX - 1);
		goto fail;
	}
	if (name)
		strcpy(t->name, name);
	t->ssl = SSL_new(ctx);
	t->in = BIO_new(BIO_s_mem());
	t->out = BIO_new(BIO_s_mem());
	if (!t->ssl || !t->in || !t->out) {
		BIO_free(t->in);
		BIO_free(t->out);
		ossl_err(err, ENOMEM, "TLS connection");
		goto fail;
	}
	/* An empty memory BIO means "wait for more", not EOF. */
	BIO_set_mem_eof_return(t->in, -1);
	BIO_set_mem_eof_return(t->out, -1);
	SSL_set_bio(t->ssl, t->in, t->out);
	SSL_set_app_data(t->ssl, t);
	return t;
fail:
	SSL_free(t->ssl);
	free(t);
	return NULL;
}

struct ag_tls *ag_tls_new_server(SSL_CTX *ctx, const char *fallback_name, struct ag_err *err)
{
	struct ag_tls *t = tls_new(ctx, true, fallback_name, err);

	if (t)
		SSL_set_accept_state(t->ssl);
	return t;
}

struct ag_tls *ag_tls_new_client(SSL_CTX *ctx, const char *server_name, struct ag_err *err)
{
	struct ag_tls *t;
	int ok;

	/* Never a connection that verifies nothing. */
	if (!server_name || !*server_name) {
		ag_errf(err, EINVAL, "TLS client: no server name to verify");
		return NULL;
	}
	t = tls_new(ctx, false, server_name, err);
	if (!t)
		return NULL;
	SSL_set_connect_state(t->ssl);
	if (ip_literal(server_name)) {
		/* RFC 6066: no SNI for literals; the certificate needs an IP SAN. */
		ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), server_name);
	} else {
		SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		ok = SSL_set_tlsext_host_name(t->ssl, server_name) == 1 &&
		     SSL_set1_host(t->ssl, server_name) == 1;
	}
	if (!ok) {
		char what[AG_TLS_NAME_MAX + 32];

		snprintf(what, sizeof(what), "TLS client for %s", t->name);
		ossl_err(err, EINVAL, what);
		ag_tls_free(t);
		return NULL;
	}
	return t;
}

void ag_tls_free(struct ag_tls *t)
{
	if (!t)
		return;
	SSL_free(t->ssl); /* frees both BIOs */
	free(t);
}

SSL *ag_tls_ssl(struct ag_tls *t)
{
	return t->ssl;
}

int ag_tls_feed(struct ag_tls *t, const void *buf, size_t len)
{
	size_t pending = BIO_ctrl_pending(t->in);

	if (len > AG_TLS_FEED_MAX || pending > AG_TLS_FEED_MAX - len)
		return -ENOBUFS;
	if (len && BIO_write(t->in, buf, (int)len) != (int)len) {
		ERR_clear_error();
		return -ENOMEM;
	}
	return 0;
}

/* Who the connection is with, for messages. */
static const char *peer(const struct ag_tls *t, char *buf, size_t len)
{
	if (!t->server)
		snprintf(buf, len, "TLS to %s", t->name);
	else if (t->sni[0])
		snprintf(buf, len, "TLS from agent (SNI %s)", t->sni);
	else
		snprintf(buf, len, "TLS from agent (%s)", t->name[0] ? t->name : "no SNI");
	return buf;
}

/* Turns a failed SSL_* call into -EAGAIN, 0 (clean close) or an error with its reason. */
static int ssl_result(struct ag_tls *t, int r, const char *op, struct ag_err *err)
{
	int e = SSL_get_error(t->ssl, r);
	char who[AG_TLS_NAME_MAX + 48], what[AG_TLS_NAME_MAX + 96];
	long v;

	switch (e) {
	case SSL_ERROR_WANT_READ:
		ERR_clear_error();
		return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		ERR_clear_error();
		return 0;
	default:
		break;
	}
	peer(t, who, sizeof(who));
	v = SSL_get_verify_result(t->ssl);
	if (!t->server && v != X509_V_OK) {
		ERR_clear_error();
		return ag_errf(err, EPROTO, "%s: %s: certificate verify failed: %s", who, op,
			       X509_verify_cert_error_string(v));
	}
	if (t->why[0]) {
		ERR_clear_error();
		return ag_errf(err, EPROTO, "%s: %s: %s", who, op, t->why);
	}
	if (e == SSL_ERROR_SSL || ERR_peek_last_error()) {
		snprintf(what, sizeof(what), "%s: %s", who, op);
		return ossl_err(err, EPROTO, what);
	}
	ERR_clear_error();
	return ag_errf(err, EPROTO, "%s: %s: unexpected end of the connection (error %d)", who, op,
		       e);
}

int ag_tls_handshake(struct ag_tls *t, struct ag_err *err)
{
	int r;

	ERR_clear_error();
	r = SSL_do_handshake(t->ssl);
	if (r == 1)
		return 0;
	r = ssl_result(t, r, "handshake", err);
	if (r == 0) {
		char who[AG_TLS_NAME_MAX + 48];

		return ag_errf(err, EPROTO, "%s: handshake: closed by the peer",
			       peer(t, who, sizeof(who)));
	}
	return r;
}

ssize_t ag_tls_read(struct ag_tls *t, void *buf, size_t cap, struct ag_err *err)
{
	size_t got = 0;

	ERR_clear_error();
	if (!cap)
		return ag_errf(err, EINVAL, "TLS read: no room");
	if (SSL_read_ex(t->ssl, buf, cap, &got) == 1)
		return (ssize_t)got;
	return ssl_result(t, 0, "read", err);
}

ssize_t ag_tls_write(struct ag_tls *t, const void *buf, size_t len, struct ag_err *err)
{
	size_t done = 0;

	ERR_clear_error();
	if (!len)
		return 0;
	/* Memory BIOs never fill up, so one call encrypts everything. */
	if (SSL_write_ex(t->ssl, buf, len, &done) == 1)
		return (ssize_t)done;
	{
		int r = ssl_result(t, 0, "write", err);

		if (r == 0) {
			char who[AG_TLS_NAME_MAX + 48];

			return ag_errf(err, EPIPE, "%s: write after close",
				       peer(t, who, sizeof(who)));
		}
		return r;
	}
}

void ag_tls_shutdown(struct ag_tls *t)
{
	if (t->shut)
		return;
	t->shut = true;
	/* Only our close_notify is wanted; the peer's answer arrives through read. */
	SSL_shutdown(t->ssl);
	ERR_clear_error();
}

size_t ag_tls_out(struct ag_tls *t, const void **data)
{
	char *p = NULL;
	long n = BIO_get_mem_data(t->out, &p);

	*data = p;
	return n > 0 ? (size_t)n : 0;
}

void ag_tls_out_consume(struct ag_tls *t, size_t n)
{
	char scratch[4096];

	/* A memory BIO read only advances its read pointer; the copy is the price of the API. */
	while (n) {
		int chunk = n < sizeof(scratch) ? (int)n : (int)sizeof(scratch);
		int r = BIO_read(t->out, scratch, chunk);

		if (r <= 0)
			break;
		n -= (size_t)r;
	}
}

const char *ag_tls_sni(const struct ag_tls *t)
{
	return t->server && t->sni[0] ? t->sni : NULL;
}

/* ---- ClientHello ---- */

bool ag_tls_looks_like(const void *buf, size_t len)
{
	const unsigned char *p = buf;

	return len >= 3 && p[0] == 0x16 && p[1] == 3 && p[2] <= 4;
}

/* A bounds-checked reader over [p, end). */
struct rd {
	const unsigned char *p, *end;
};

static bool rd_u8(struct rd *r, size_t *v)
{
	if (r->end - r->p < 1)
		return false;
	*v = r->p[0];
	r->p += 1;
	return true;
}

static bool rd_u16(struct rd *r, size_t *v)
{
	if (r->end - r->p < 2)
		return false;
	*v = (size_t)r->p[0] << 8 | r->p[1];
	r->p += 2;
	return true;
}

static bool rd_skip(struct rd *r, size_t n)
{
	if ((size_t)(r->end - r->p) < n)
		return false;
	r->p += n;
	return true;
}

/* A sub-reader of n bytes, which the parent skips. */
static bool rd_sub(struct rd *r, size_t n, struct rd *sub)
{
	sub->p = r->p;
	if (!rd_skip(r, n))
		return false;
	sub->end = r->p;
	return true;
}

/* server_name extension body: 1 if a host_name was copied, 0 if none, -EPROTO. */
static int sni_ext(struct rd ext, char *out, size_t cap)
{
	struct rd list;
	size_t len, type, n;
	int found = 0;

	if (!rd_u16(&ext, &len) || !rd_sub(&ext, len, &list) || ext.p != ext.end || !len)
		return -EPROTO;
	while (list.p < list.end) {
		struct rd name;

		if (!rd_u8(&list, &type) || !rd_u16(&list, &n) || !rd_sub(&list, n, &name))
			return -EPROTO;
		if (type != 0) /* only host_name is defined; others are skipped */
			continue;
		/* RFC 6066: at most one name of a type. */
		if (found)
			return -EPROTO;
		if (!ag_tls_dns_name_valid((const char *)name.p, n) || n >= cap)
			return -EPROTO;
		memcpy(out, name.p, n);
		out[n] = '\0';
		lower(out);
		found = 1;
	}
	return found;
}

int ag_tls_client_hello_sni(const void *buf, size_t len, char *out, size_t cap)
{
	const unsigned char *p = buf;
	struct rd r, body, exts;
	size_t rec_len, hs_len, n, v;
	int found = 0;

	if (cap < AG_TLS_NAME_MAX)
		return -ENOSPC;
	out[0] = '\0';
	/* What the bytes present so far say, before waiting for the rest. */
	if (len >= 1 && p[0] != 0x16)
		return -EPROTO;
	if (len >= 2 && p[1] != 3)
		return -EPROTO;
	if (len >= 3 && p[2] > 4)
		return -EPROTO;
	if (len < 5)
		return -EAGAIN;
	rec_len = (size_t)p[3] << 8 | p[4];
	/* Smaller than a handshake header, or beyond the plaintext record limit. */
	if (rec_len < 4 || rec_len > 16384)
		return -EPROTO;
	if (len >= 6 && p[5] != 1) /* ClientHello */
		return -EPROTO;
	if (len >= 9) {
		hs_len = (size_t)p[6] << 16 | (size_t)p[7] << 8 | p[8];
		/* One record must hold it all (see tls.h). */
		if (hs_len + 4 != rec_len)
			return -EPROTO;
	}
	if (len < 5 + rec_len)
		return -EAGAIN;
	hs_len = rec_len - 4;
	body.p = p + 9;
	body.end = body.p + hs_len;
	r = body;
	/* legacy_version, random, session_id, cipher_suites, compression_methods. */
	if (!rd_u16(&r, &v) || v >> 8 != 3 || !rd_skip(&r, 32) || !rd_u8(&r, &n) || n > 32 ||
	    !rd_skip(&r, n) || !rd_u16(&r, &n) || n < 2 || n % 2 || !rd_skip(&r, n) ||
	    !rd_u8(&r, &n) || n < 1 || !rd_skip(&r, n))
		return -EPROTO;
	if (r.p == r.end)
		return 0; /* no extensions at all */
	if (!rd_u16(&r, &n) || !rd_sub(&r, n, &exts) || r.p != r.end)
		return -EPROTO;
	while (exts.p < exts.end) {
		struct rd ext;
		size_t type;

		if (!rd_u16(&exts, &type) || !rd_u16(&exts, &n) || !rd_sub(&exts, n, &ext))
			return -EPROTO;
		if (type != 0)
			continue;
		if (found) /* a second server_name extension */
			return -EPROTO;
		found = sni_ext(ext, out, cap);
		if (found < 0) {
			out[0] = '\0';
			return found;
		}
		found = 1 + found; /* 1: extension seen without host_name, 2: name */
	}
	if (found == 2)
		return 1;
	return 0;
}
