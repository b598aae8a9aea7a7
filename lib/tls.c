// SPDX-License-Identifier: GPL-2.0
/*
 * TLS over memory BIOs: contexts and connections.  The instance CA and its
 * leaves are lib/tls_ca.c, the ClientHello's SNI lib/tls_hello.c.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "hostport.h"
#include "secret.h"
#include "tls_int.h"

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

int ag_tls_ossl_err(struct ag_err *err, int code, const char *what)
{
	char buf[256];
	unsigned long e = ERR_peek_last_error();

	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return ag_errf(err, code, "%s: %s", what, e ? buf : "OpenSSL failure");
}

bool ag_tls_dns_name_valid(const char *name, size_t len)
{
	/* A trailing dot is not allowed in SNI; an all-digit last label is an IP literal. */
	return ag_dns_name_valid(name, len, AG_NAME_ANY_CASE | AG_NAME_NOT_IP);
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
		ag_ascii_lower(t->sni);
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
	return SSL_use_certificate(ssl, leaf) == 1 &&
	       SSL_use_PrivateKey(ssl, ag_tls_ca_leaf_key(ca)) == 1;
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
		ag_tls_ossl_err(err, ENOMEM, "TLS context");
		return NULL;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
		ag_tls_ossl_err(err, EINVAL, "TLS context: minimum version");
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

SSL_CTX *ag_tls_server_ctx_files(const char *cert_file, const char *key_file, struct ag_err *err)
{
	SSL_CTX *ctx = ctx_new(TLS_server_method(), err);
	struct ag_secret *key = NULL;
	EVP_PKEY *pkey = NULL;
	BIO *bio = NULL;
	char what[PATH_MAX + 32];

	if (!ctx)
		return NULL;
	/* The private key is a secret file: root-owned, 0600 (secret.h). */
	if (ag_secret_load(key_file, AG_SECRET_RAW, &key, err))
		goto fail;
	if ((bio = BIO_new_mem_buf(key->data, (int)key->len)))
		pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"");
	snprintf(what, sizeof(what), "TLS certificate %s", cert_file);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1 || !pkey ||
	    SSL_CTX_use_PrivateKey(ctx, pkey) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
		ag_tls_ossl_err(err, EINVAL, what);
		goto fail;
	}
	SSL_CTX_set_alpn_select_cb(ctx, server_alpn_cb, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_num_tickets(ctx, 0);
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	ag_secret_free(key);
	return ctx;
fail:
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	ag_secret_free(key);
	SSL_CTX_free(ctx);
	return NULL;
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
	ag_tls_ossl_err(err, EINVAL, what);
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
		ag_tls_ossl_err(err, ENOMEM, "TLS connection");
		goto fail;
	}
	/* An empty memory BIO means "wait for more", not EOF. */
	BIO_set_mem_eof_return(t->in, -1);
	BIO_set_mem_eof_return(t->out, -1);
	SSL_set_bio(t->ssl, t->in, t->out);
	/* An idle connection keeps no record buffers (daemon/stream.c's goal too). */
	SSL_set_mode(t->ssl, SSL_MODE_RELEASE_BUFFERS);
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
	if (ag_ip_literal(server_name)) {
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
		ag_tls_ossl_err(err, EINVAL, what);
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
		return ag_tls_ossl_err(err, EPROTO, what);
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
