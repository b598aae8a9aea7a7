// SPDX-License-Identifier: GPL-2.0
/*
 * lib/tls.c: the instance CA on disk, real OpenSSL handshakes between a
 * server and a client ag_tls pumped through memory, and the ClientHello
 * parser on real and hand-made hellos.
 */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "test.h"
#include "testlib.h"
#include "tls.h"

struct cadir {
	char root[64];
	char dir[128];
};

static bool cadir_make(struct cadir *d)
{
	snprintf(d->root, sizeof(d->root), "/tmp/agtls.XXXXXX");
	if (!mkdtemp(d->root))
		return false;
	snprintf(d->dir, sizeof(d->dir), "%s/tls", d->root);
	return true;
}

static void cadir_remove(struct cadir *d)
{
	static const char *const files[] = { "ca.key",	    "ca.crt",	   "bundle.pem",
					     ".ca.key.tmp", ".ca.crt.tmp", ".bundle.pem.tmp",
					     "ca.crt.saved" };
	char path[256];

	for (size_t i = 0; i < AG_ARRAY_SIZE(files); i++) {
		snprintf(path, sizeof(path), "%s/%s", d->dir, files[i]);
		unlink(path);
	}
	rmdir(d->dir);
	rmdir(d->root);
}

static mode_t file_mode(const char *dir, const char *name)
{
	char path[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return stat(path, &st) ? (mode_t)-1 : st.st_mode & 07777;
}

/* SHA-256 of the DER of the PEM certificate in path. */
static bool file_fingerprint(const char *path, unsigned char md[32])
{
	FILE *f = fopen(path, "r");
	X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	unsigned int n = 0;
	bool ok = x && X509_digest(x, EVP_sha256(), md, &n) && n == 32;

	X509_free(x);
	if (f)
		fclose(f);
	return ok;
}

static size_t move(struct ag_tls *from, struct ag_tls *to)
{
	const void *p;
	size_t n = ag_tls_out(from, &p);

	if (n) {
		if (ag_tls_feed(to, p, n))
			return 0;
		ag_tls_out_consume(from, n);
	}
	return n;
}

struct hs {
	int sret, cret;
	struct ag_err serr, cerr;
};

/* Both sides step until both are done or one failed; the failing side's alert is delivered. */
static void handshake(struct ag_tls *s, struct ag_tls *c, struct hs *h)
{
	memset(h, 0, sizeof(*h));
	h->sret = h->cret = -EAGAIN;
	for (int i = 0; i < 50; i++) {
		if (h->cret == -EAGAIN)
			h->cret = ag_tls_handshake(c, &h->cerr);
		move(c, s);
		if (h->sret == -EAGAIN)
			h->sret = ag_tls_handshake(s, &h->serr);
		move(s, c);
		if ((!h->sret && !h->cret) || (h->sret != -EAGAIN && h->sret) ||
		    (h->cret != -EAGAIN && h->cret))
			break;
	}
	/* The other side reads the alert. */
	if (h->cret == -EAGAIN)
		h->cret = ag_tls_handshake(c, &h->cerr);
	if (h->sret == -EAGAIN)
		h->sret = ag_tls_handshake(s, &h->serr);
}

struct env {
	struct cadir d;
	struct ag_tls_ca *ca;
	SSL_CTX *sctx, *cctx;
};

static bool env_open(struct env *e)
{
	struct ag_err err;

	memset(e, 0, sizeof(*e));
	if (!ASSERT_TRUE(cadir_make(&e->d), "mkdtemp"))
		return false;
	if (!ASSERT_OK(ag_tls_ca_open(&e->ca, e->d.dir, "test", &err), err.msg))
		return false;
	e->sctx = ag_tls_server_ctx(e->ca, &err);
	if (!ASSERT_OK_PTR(e->sctx, err.msg))
		return false;
	e->cctx = ag_tls_client_ctx(ag_tls_ca_cert_path(e->ca), &err);
	return ASSERT_OK_PTR(e->cctx, err.msg);
}

static void env_close(struct env *e)
{
	SSL_CTX_free(e->sctx);
	SSL_CTX_free(e->cctx);
	ag_tls_ca_free(e->ca);
	cadir_remove(&e->d);
}

/* A connected pair; *s and *c are NULL when creating either failed. */
static void pair(struct env *e, const char *fallback, const char *name, struct ag_tls **s,
		 struct ag_tls **c)
{
	struct ag_err err;

	*s = ag_tls_new_server(e->sctx, fallback, &err);
	ASSERT_OK_PTR(*s, err.msg);
	*c = ag_tls_new_client(e->cctx, name, &err);
	ASSERT_OK_PTR(*c, err.msg);
}

TEST(tls_ca)
{
	unsigned char fp1[32], fp2[32];
	struct ag_tls_ca *ca = NULL;
	struct ag_err err;
	struct cadir d;
	char path[256], *bundle = NULL;
	size_t blen = 0;

	if (!ASSERT_TRUE(cadir_make(&d), "mkdtemp"))
		return;
	if (test__start_subtest("create")) {
		if (ASSERT_OK(ag_tls_ca_open(&ca, d.dir, "test", &err), err.msg)) {
			ASSERT_EQ(file_mode(d.dir, "ca.key"), 0600, "ca.key mode");
			ASSERT_EQ(file_mode(d.dir, "ca.crt"), 0644, "ca.crt mode");
			ASSERT_EQ(file_mode(d.dir, "bundle.pem"), 0644, "bundle.pem mode");
			ASSERT_EQ(file_mode(d.root, "tls"), 0711, "directory mode");
			snprintf(path, sizeof(path), "%s/ca.crt", d.dir);
			ASSERT_STREQ(ag_tls_ca_cert_path(ca), path, "cert path");
			ASSERT_TRUE(X509_check_ca((X509 *)ag_tls_ca_cert(ca)) == 1, "is a CA");
			ASSERT_OK_PTR(
			    strstr(X509_NAME_oneline(X509_get_subject_name(ag_tls_ca_cert(ca)),
						     path, sizeof(path)),
				   "CN=agentgate test CA"),
			    "subject");
			ASSERT_OK(
			    ag_read_file(ag_tls_ca_bundle_path(ca), 16 << 20, &bundle, &blen, &err),
			    err.msg);
		}
		if (bundle) {
			char *crt = NULL;
			size_t clen = 0;

			ASSERT_OK(ag_read_file(ag_tls_ca_cert_path(ca), 65536, &crt, &clen, &err),
				  err.msg);
			ASSERT_TRUE(crt && blen >= clen && !memcmp(bundle + blen - clen, crt, clen),
				    "bundle ends with ca.crt");
			if (access("/etc/ssl/certs/ca-certificates.crt", R_OK) == 0)
				ASSERT_GT(blen, clen + 1000, "bundle has the system CAs");
			free(crt);
			free(bundle);
		}
		ag_tls_ca_free(ca);
		ca = NULL;
	}
	if (test__start_subtest("reopen")) {
		snprintf(path, sizeof(path), "%s/ca.crt", d.dir);
		ASSERT_TRUE(file_fingerprint(path, fp1), "fingerprint before");
		if (ASSERT_OK(ag_tls_ca_open(&ca, d.dir, "test", &err), err.msg)) {
			unsigned int n = 0;

			ASSERT_TRUE(file_fingerprint(path, fp2), "fingerprint after");
			ASSERT_MEMEQ(fp1, fp2, 32, "same CA certificate file");
			X509_digest(ag_tls_ca_cert(ca), EVP_sha256(), fp2, &n);
			ASSERT_MEMEQ(fp1, fp2, 32, "same CA loaded");
		}
		ag_tls_ca_free(ca);
		ca = NULL;
	}
	if (test__start_subtest("key_mode_refused")) {
		snprintf(path, sizeof(path), "%s/ca.key", d.dir);
		ASSERT_OK(chmod(path, 0644), "chmod 0644");
		err.msg[0] = '\0';
		ASSERT_EQ(ag_tls_ca_open(&ca, d.dir, "test", &err), -EPERM, "0644 key refused");
		ASSERT_TRUE(ca == NULL, "no CA");
		ASSERT_OK_PTR(strstr(err.msg, path), "message names the key file");
		ASSERT_OK_PTR(strstr(err.msg, "0644"), "message says the mode");
		chmod(path, 0600);
	}
	if (test__start_subtest("cert_missing_refused")) {
		char saved[256];

		snprintf(path, sizeof(path), "%s/ca.crt", d.dir);
		snprintf(saved, sizeof(saved), "%s/ca.crt.saved", d.dir);
		ASSERT_OK(rename(path, saved), "move ca.crt away");
		ASSERT_EQ(ag_tls_ca_open(&ca, d.dir, "test", &err), -ENOENT, "refused");
		ASSERT_OK_PTR(strstr(err.msg, "ca.crt"), "message names ca.crt");
		rename(saved, path);
	}
	cadir_remove(&d);
}

TEST(tls_handshake)
{
	struct ag_tls *s = NULL, *c = NULL;
	struct env e;
	struct hs h;

	if (!env_open(&e))
		goto out;
	if (test__start_subtest("sni")) {
		pair(&e, "127.0.0.1", "mcp.example.test", &s, &c);
		if (s && c) {
			X509 *peer;

			handshake(s, c, &h);
			ASSERT_OK(h.cret, h.cerr.msg);
			ASSERT_OK(h.sret, h.serr.msg);
			ASSERT_STREQ(ag_tls_sni(s), "mcp.example.test", "server saw SNI");
			ASSERT_EQ(SSL_get_verify_result(ag_tls_ssl(c)), X509_V_OK, "verified");
			ASSERT_STREQ(SSL_get0_peername(ag_tls_ssl(c)), "mcp.example.test",
				     "verified name");
			peer = SSL_get1_peer_certificate(ag_tls_ssl(c));
			ASSERT_EQ(X509_check_host(peer, "mcp.example.test", 0, 0, NULL), 1,
				  "leaf DNS SAN");
			X509_free(peer);
			ASSERT_GE(SSL_version(ag_tls_ssl(c)), TLS1_2_VERSION, "TLS 1.2+");
		}
		ag_tls_free(s);
		ag_tls_free(c);
	}
	if (test__start_subtest("tls12")) {
		pair(&e, NULL, "mcp.example.test", &s, &c);
		if (s && c) {
			SSL_set_max_proto_version(ag_tls_ssl(c), TLS1_2_VERSION);
			handshake(s, c, &h);
			ASSERT_OK(h.cret, h.cerr.msg);
			ASSERT_OK(h.sret, h.serr.msg);
			ASSERT_EQ(SSL_version(ag_tls_ssl(s)), TLS1_2_VERSION, "TLS 1.2");
			ASSERT_STREQ(ag_tls_sni(s), "mcp.example.test", "server saw SNI");
		}
		ag_tls_free(s);
		ag_tls_free(c);
	}
	if (test__start_subtest("tls11_refused")) {
		pair(&e, NULL, "mcp.example.test", &s, &c);
		if (s && c) {
			SSL_set_security_level(ag_tls_ssl(c), 0);
			SSL_set_min_proto_version(ag_tls_ssl(c), TLS1_VERSION);
			SSL_set_max_proto_version(ag_tls_ssl(c), TLS1_1_VERSION);
			handshake(s, c, &h);
			ASSERT_LT(h.sret, 0, "server refuses TLS 1.1");
			ASSERT_NEQ(h.sret, -EAGAIN, "refuses, not waits");
		}
		ag_tls_free(s);
		ag_tls_free(c);
	}
	if (test__start_subtest("sni_upper_case")) {
		pair(&e, NULL, "MCP.Example.TEST", &s, &c);
		if (s && c) {
			handshake(s, c, &h);
			ASSERT_OK(h.cret, h.cerr.msg);
			ASSERT_STREQ(ag_tls_sni(s), "mcp.example.test", "SNI lower-cased");
		}
		ag_tls_free(s);
		ag_tls_free(c);
	}
	if (test__start_subtest("ip_fallback")) {
		pair(&e, "127.0.0.1", "127.0.0.1", &s, &c);
		if (s && c) {
			X509 *peer;

			handshake(s, c, &h);
			ASSERT_OK(h.cret, h.cerr.msg);
			ASSERT_OK(h.sret, h.serr.msg);
			ASSERT_TRUE(ag_tls_sni(s) == NULL, "no SNI for an IP literal");
			peer = SSL_get1_peer_certificate(ag_tls_ssl(c));
			ASSERT_EQ(X509_check_ip_asc(peer, "127.0.0.1", 0), 1, "leaf IP SAN");
			X509_free(peer);
		}
		ag_tls_free(s);
		ag_tls_free(c);
	}
	if (test__start_subtest("ipv6_fallback")) {
		pair(&e, "::1", "::1", &s, &c);
		if (s && c) {
			handshake(s, c, &h);
			ASSERT_OK(h.cret, h.cerr.msg);
			ASSERT_OK(h.sret, h.serr.msg);
		}
		ag_tls_free(s);
		ag_tls_free(c);
	}
	if (test__start_subtest("no_name")) {
		pair(&e, NULL, "127.0.0.1", &s, &c);
		if (s && c) {
			handshake(s, c, &h);
			ASSERT_LT(h.sret, 0, "server fails without SNI or fallback");
			ASSERT_OK_PTR(strstr(h.serr.msg, "no SNI and no fallback"), h.serr.msg);
			ASSERT_NEQ(h.sret, -EAGAIN, "server fails, not waits");
			ASSERT_LT(h.cret, 0, "client fails");
		}
		ag_tls_free(s);
		ag_tls_free(c);
	}
	if (test__start_subtest("hostname_mismatch")) {
		pair(&e, NULL, "other.example.test", &s, &c);
		if (s && c) {
			/* The client asks for one name and checks another. */
			SSL_set_tlsext_host_name(ag_tls_ssl(c), "mcp.example.test");
			handshake(s, c, &h);
			ASSERT_LT(h.cret, 0, "client refuses");
			ASSERT_OK_PTR(strstr(h.cerr.msg, "certificate verify failed: hostname "
							 "mismatch"),
				      h.cerr.msg);
			ASSERT_OK_PTR(strstr(h.cerr.msg, "other.example.test"),
				      "message names the upstream");
			ASSERT_LT(h.sret, 0, "server sees the alert");
		}
		ag_tls_free(s);
		ag_tls_free(c);
	}
	if (test__start_subtest("ip_mismatch")) {
		pair(&e, "mcp.example.test", "127.0.0.2", &s, &c);
		if (s && c) {
			handshake(s, c, &h);
			ASSERT_LT(h.cret, 0, "client refuses");
			ASSERT_OK_PTR(strstr(h.cerr.msg, "IP address mismatch"), h.cerr.msg);
		}
		ag_tls_free(s);
		ag_tls_free(c);
	}
	if (test__start_subtest("unknown_ca")) {
		struct ag_tls_ca *other = NULL;
		struct ag_err err;
		SSL_CTX *cctx = NULL;
		struct cadir d2;

		if (ASSERT_TRUE(cadir_make(&d2), "mkdtemp") &&
		    ASSERT_OK(ag_tls_ca_open(&other, d2.dir, "other", &err), err.msg))
			cctx = ag_tls_client_ctx(ag_tls_ca_cert_path(other), &err);
		if (ASSERT_OK_PTR(cctx, err.msg)) {
			s = ag_tls_new_server(e.sctx, NULL, &err);
			c = ag_tls_new_client(cctx, "mcp.example.test", &err);
			if (ASSERT_OK_PTR(s, "server") && ASSERT_OK_PTR(c, "client")) {
				handshake(s, c, &h);
				ASSERT_LT(h.cret, 0, "client refuses");
				ASSERT_OK_PTR(strstr(h.cerr.msg, "certificate verify failed: "),
					      h.cerr.msg);
				ASSERT_LT(h.sret, 0, "server sees the alert");
				ASSERT_OK_PTR(strstr(h.serr.msg, "unknown ca"), h.serr.msg);
			}
			ag_tls_free(s);
			ag_tls_free(c);
		}
		SSL_CTX_free(cctx);
		ag_tls_ca_free(other);
		cadir_remove(&d2);
	}
	if (test__start_subtest("client_without_name")) {
		struct ag_err err;

		ASSERT_TRUE(ag_tls_new_client(e.cctx, NULL, &err) == NULL, "NULL refused");
		ASSERT_TRUE(ag_tls_new_client(e.cctx, "", &err) == NULL, "empty refused");
	}
	if (test__start_subtest("alpn")) {
		static const unsigned char both[] = "\x02h2\x08http/1.1";
		const unsigned char *sel = NULL;
		unsigned int len = 0;

		pair(&e, NULL, "mcp.example.test", &s, &c);
		if (s && c) {
			SSL_set_alpn_protos(ag_tls_ssl(c), both, sizeof(both) - 1);
			handshake(s, c, &h);
			ASSERT_OK(h.cret, h.cerr.msg);
			SSL_get0_alpn_selected(ag_tls_ssl(c), &sel, &len);
			ASSERT_TRUE(len == 8 && !memcmp(sel, "http/1.1", 8), "http/1.1 selected");
		}
		ag_tls_free(s);
		ag_tls_free(c);
		pair(&e, NULL, "mcp.example.test", &s, &c);
		if (s && c) {
			SSL_set_alpn_protos(ag_tls_ssl(c), both, 3);
			handshake(s, c, &h);
			ASSERT_OK(h.cret, h.cerr.msg);
			SSL_get0_alpn_selected(ag_tls_ssl(c), &sel, &len);
			ASSERT_EQ(len, 0, "h2 alone: no ALPN, never h2");
		}
		ag_tls_free(s);
		ag_tls_free(c);
	}
	if (test__start_subtest("roundtrip")) {
		size_t big = 100 * 1024, got = 0;
		unsigned char *msg = malloc(big), *buf = malloc(big);
		struct ag_err err;
		ssize_t r;

		pair(&e, NULL, "mcp.example.test", &s, &c);
		if (s && c && msg && buf) {
			for (size_t i = 0; i < big; i++)
				msg[i] = (unsigned char)(i * 7 + (i >> 8));
			handshake(s, c, &h);
			ASSERT_OK(h.cret, h.cerr.msg);
			ASSERT_OK(h.sret, h.serr.msg);
			ASSERT_EQ(ag_tls_read(c, buf, 100, &err), -EAGAIN, "nothing yet");
			/* Client to server in uneven pieces, the server reading as it goes. */
			for (size_t off = 0; off < big;) {
				size_t n = big - off < 7001 ? big - off : 7001;

				ASSERT_EQ(ag_tls_write(c, msg + off, n, &err), n, "client write");
				off += n;
				move(c, s);
				while (got < big &&
				       (r = ag_tls_read(s, buf + got, big - got, &err)) > 0)
					got += (size_t)r;
				if (got < big && !ASSERT_EQ(r, -EAGAIN, err.msg))
					break;
			}
			ASSERT_EQ(got, big, "server got everything");
			ASSERT_MEMEQ(buf, msg, big, "server got the bytes");
			/* Server to client in one write, fed in small pieces. */
			memset(buf, 0, big);
			got = 0;
			ASSERT_EQ(ag_tls_write(s, msg, big, &err), big, "server write");
			for (int i = 0; i < 10000 && got < big; i++) {
				const void *p;
				size_t n = ag_tls_out(s, &p);

				if (n > 1500)
					n = 1500;
				if (!ASSERT_OK(ag_tls_feed(c, p, n), "feed"))
					break;
				ag_tls_out_consume(s, n);
				while (got < big &&
				       (r = ag_tls_read(c, buf + got, big - got, &err)) > 0)
					got += (size_t)r;
			}
			ASSERT_EQ(got, big, "client got everything");
			ASSERT_MEMEQ(buf, msg, big, "client got the bytes");
			/* close_notify. */
			ag_tls_shutdown(c);
			move(c, s);
			ASSERT_EQ(ag_tls_read(s, buf, big, &err), 0, "clean close seen");
		}
		free(msg);
		free(buf);
		ag_tls_free(s);
		ag_tls_free(c);
	}
	if (test__start_subtest("feed_bound")) {
		static unsigned char junk[AG_TLS_FEED_MAX / 4];
		struct ag_err err;

		s = ag_tls_new_server(e.sctx, NULL, &err);
		if (ASSERT_OK_PTR(s, err.msg)) {
			for (int i = 0; i < 4; i++)
				ASSERT_OK(ag_tls_feed(s, junk, sizeof(junk)), "within the bound");
			ASSERT_EQ(ag_tls_feed(s, junk, 1), -ENOBUFS, "beyond the bound");
		}
		ag_tls_free(s);
	}
	if (test__start_subtest("leaf_cache")) {
		struct ag_err err;
		X509 *a = ag_tls_ca_leaf(e.ca, "mcp.example.test", &err);
		X509 *b = ag_tls_ca_leaf(e.ca, "MCP.example.test", &err);
		X509 *v6a = ag_tls_ca_leaf(e.ca, "::1", &err);
		X509 *v6b = ag_tls_ca_leaf(e.ca, "0:0::1", &err);
		X509_STORE *store = X509_STORE_new();
		X509_STORE_CTX *vctx = X509_STORE_CTX_new();

		ASSERT_OK_PTR(a, err.msg);
		ASSERT_TRUE(a == b, "same leaf for the same name");
		ASSERT_TRUE(v6a && v6a == v6b, "same leaf for one address");
		ASSERT_TRUE(a != ag_tls_ca_leaf(e.ca, "other.example.test", &err), "other name");
		ASSERT_TRUE(ag_tls_ca_leaf(e.ca, "bad name", &err) == NULL, "bad name refused");
		ASSERT_TRUE(ag_tls_ca_leaf(e.ca, "1.2.3", &err) == NULL, "numeric refused");
		/* What `openssl verify -CAfile ca.crt leaf.pem` checks. */
		if (a && store && vctx &&
		    X509_STORE_add_cert(store, (X509 *)ag_tls_ca_cert(e.ca)) &&
		    X509_STORE_CTX_init(vctx, store, a, NULL)) {
			X509_STORE_CTX_set_purpose(vctx, X509_PURPOSE_SSL_SERVER);
			ASSERT_EQ(X509_verify_cert(vctx), 1, "leaf verifies against the CA");
		}
		X509_STORE_CTX_free(vctx);
		X509_STORE_free(store);
		/* Filling the cache evicts the oldest without breaking lookups. */
		for (int i = 0; i < AG_TLS_LEAF_CACHE + 5; i++) {
			char name[64];

			snprintf(name, sizeof(name), "h%d.example.test", i);
			if (!ASSERT_OK_PTR(ag_tls_ca_leaf(e.ca, name, &err), err.msg))
				break;
		}
		a = ag_tls_ca_leaf(e.ca, "h300.example.test", &err);
		ASSERT_TRUE(a && a == ag_tls_ca_leaf(e.ca, "h300.example.test", &err),
			    "cached after churn");
	}
out:
	env_close(&e);
}

static void put16(unsigned char *p, size_t v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
}

/* A minimal ClientHello; sni==NULL: no extensions; nsni: server_name extensions. */
static size_t make_hello(unsigned char *b, const char *sni, int nsni)
{
	size_t n = 9, ext_start;

	b[0] = 0x16, b[1] = 3, b[2] = 1;
	b[5] = 1;
	b[n++] = 3, b[n++] = 3;
	memset(b + n, 0xab, 32), n += 32;
	b[n++] = 0;		 /* session id */
	put16(b + n, 2), n += 2; /* cipher suites */
	b[n++] = 0x13, b[n++] = 0x01;
	b[n++] = 1, b[n++] = 0; /* compression */
	if (sni) {
		size_t l = strlen(sni);

		ext_start = n;
		n += 2;
		for (int i = 0; i < nsni; i++) {
			put16(b + n, 0), n += 2;
			put16(b + n, l + 5), n += 2;
			put16(b + n, l + 3), n += 2;
			b[n++] = 0;
			put16(b + n, l), n += 2;
			memcpy(b + n, sni, l), n += l;
		}
		put16(b + ext_start, n - ext_start - 2);
	}
	put16(b + 3, n - 5);
	b[6] = 0;
	put16(b + 7, n - 9);
	return n;
}

TEST(tls_client_hello)
{
	unsigned char hello[4096], b[1024];
	char out[AG_TLS_NAME_MAX];
	size_t n;

	if (test__start_subtest("real_with_sni")) {
		n = tls_client_hello("mcp.example.test", hello, sizeof(hello));
		if (ASSERT_GT(n, 100, "ClientHello produced")) {
			ASSERT_TRUE(ag_tls_looks_like(hello, n), "looks like TLS");
			ASSERT_EQ(ag_tls_client_hello_sni(hello, n, out, sizeof(out)), 1, "SNI");
			ASSERT_STREQ(out, "mcp.example.test", "host_name");
			for (size_t i = 0; i < n; i++)
				if (!ASSERT_EQ(ag_tls_client_hello_sni(hello, i, out, sizeof(out)),
					       -EAGAIN, "prefix needs more"))
					break;
			/* Bytes after the record (the next flight) do not matter. */
			memset(hello + n, 0x17, 16);
			ASSERT_EQ(ag_tls_client_hello_sni(hello, n + 16, out, sizeof(out)), 1,
				  "trailing bytes");
		}
	}
	if (test__start_subtest("real_ip_literal")) {
		n = tls_client_hello("127.0.0.1", hello, sizeof(hello));
		if (ASSERT_GT(n, 100, "ClientHello produced")) {
			ASSERT_EQ(ag_tls_client_hello_sni(hello, n, out, sizeof(out)), 0, "no SNI");
			for (size_t i = 0; i < n; i++)
				if (!ASSERT_EQ(ag_tls_client_hello_sni(hello, i, out, sizeof(out)),
					       -EAGAIN, "prefix needs more"))
					break;
		}
	}
	if (test__start_subtest("http")) {
		static const char get[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

		ASSERT_FALSE(ag_tls_looks_like(get, sizeof(get) - 1), "HTTP is not TLS");
		ASSERT_EQ(ag_tls_client_hello_sni(get, sizeof(get) - 1, out, sizeof(out)), -EPROTO,
			  "HTTP");
		ASSERT_EQ(ag_tls_client_hello_sni(get, 1, out, sizeof(out)), -EPROTO,
			  "first byte decides");
		ASSERT_EQ(ag_tls_client_hello_sni("\x16\x02", 2, out, sizeof(out)), -EPROTO,
			  "SSLv2-ish version");
		ASSERT_EQ(ag_tls_client_hello_sni("", 0, out, sizeof(out)), -EAGAIN, "empty");
		ASSERT_FALSE(ag_tls_looks_like("\x16\x03", 2), "too short to tell");
	}
	if (test__start_subtest("crafted")) {
		n = make_hello(b, "Api.Example.COM", 1);
		ASSERT_EQ(ag_tls_client_hello_sni(b, n, out, sizeof(out)), 1, "crafted SNI");
		ASSERT_STREQ(out, "api.example.com", "lower-cased");
		n = make_hello(b, NULL, 0);
		ASSERT_EQ(ag_tls_client_hello_sni(b, n, out, sizeof(out)), 0, "no extensions");
		n = make_hello(b, "a.example", 2);
		ASSERT_EQ(ag_tls_client_hello_sni(b, n, out, sizeof(out)), -EPROTO,
			  "two server_name extensions");
		ASSERT_EQ(ag_tls_client_hello_sni(b, n, out, 16), -ENOSPC, "small out");
	}
	if (test__start_subtest("bad_names")) {
		static const char *const bad[] = {
			"a b.example", "x..y", ".x",   "x.",
			"1.2.3.4",     "a/b",  "x\\y", "\xc3\xa9.example",
		};
		char label[80];

		for (size_t i = 0; i < AG_ARRAY_SIZE(bad); i++) {
			n = make_hello(b, bad[i], 1);
			ASSERT_EQ(ag_tls_client_hello_sni(b, n, out, sizeof(out)), -EPROTO, bad[i]);
		}
		memset(label, 'a', 64);
		label[64] = '\0';
		n = make_hello(b, label, 1);
		ASSERT_EQ(ag_tls_client_hello_sni(b, n, out, sizeof(out)), -EPROTO,
			  "64-byte label");
		label[63] = '\0';
		n = make_hello(b, label, 1);
		ASSERT_EQ(ag_tls_client_hello_sni(b, n, out, sizeof(out)), 1, "63-byte label");
		ASSERT_TRUE(ag_tls_dns_name_valid("under_score.example", 19), "underscore");
	}
	if (test__start_subtest("malformed_lengths")) {
		size_t base = make_hello(b, "mcp.example.test", 1);
		unsigned char m[1024];
		/* Offsets in make_hello's layout. */
		const size_t sid = 9 + 2 + 32, exts = sid + 1 + 2 + 2 + 2, sni_list = exts + 6;

		memcpy(m, b, base);
		m[sid] = 33;
		ASSERT_EQ(ag_tls_client_hello_sni(m, base, out, sizeof(out)), -EPROTO,
			  "session id > 32");
		memcpy(m, b, base);
		m[sid] = 200;
		ASSERT_EQ(ag_tls_client_hello_sni(m, base, out, sizeof(out)), -EPROTO,
			  "session id past the end");
		memcpy(m, b, base);
		put16(m + exts, (size_t)(m[exts] << 8 | m[exts + 1]) + 1);
		ASSERT_EQ(ag_tls_client_hello_sni(m, base, out, sizeof(out)), -EPROTO,
			  "extensions one too long");
		memcpy(m, b, base);
		put16(m + exts, (size_t)(m[exts] << 8 | m[exts + 1]) - 1);
		ASSERT_EQ(ag_tls_client_hello_sni(m, base, out, sizeof(out)), -EPROTO,
			  "extensions one too short");
		memcpy(m, b, base);
		put16(m + sni_list, 0);
		ASSERT_EQ(ag_tls_client_hello_sni(m, base, out, sizeof(out)), -EPROTO,
			  "empty server_name list");
		memcpy(m, b, base);
		put16(m + sni_list + 3, 0xffff);
		ASSERT_EQ(ag_tls_client_hello_sni(m, base, out, sizeof(out)), -EPROTO,
			  "host_name past the end");
		memcpy(m, b, base);
		m[7]++;
		ASSERT_EQ(ag_tls_client_hello_sni(m, base, out, sizeof(out)), -EPROTO,
			  "handshake longer than the record");
		memcpy(m, b, base);
		m[5] = 2;
		ASSERT_EQ(ag_tls_client_hello_sni(m, base, out, sizeof(out)), -EPROTO,
			  "ServerHello");
		memcpy(m, b, base);
		put16(m + 3, 16385);
		ASSERT_EQ(ag_tls_client_hello_sni(m, base, out, sizeof(out)), -EPROTO,
			  "record over 16 KiB");
		memcpy(m, b, base);
		put16(m + sid + 1, 3);
		ASSERT_EQ(ag_tls_client_hello_sni(m, base, out, sizeof(out)), -EPROTO,
			  "odd cipher suite length");
	}
}

/* agentgatectl run points the agent at the instance CA that agentgated keeps in <state>/tls. */
TEST(tls_run_env)
{
	char state[256], tls[512], want[2048], *out = NULL;
	struct ag_tls_ca *ca = NULL;
	struct ag_err err;
	struct tdaemon d;

	if (!ASSERT_OK(tdaemon_start(&d, "tlsenv", "", 0), "daemon"))
		goto out;
	/* The CLI looks in the instance's default state directory. */
	snprintf(state, sizeof(state), "/var/lib/%s", d.in.name);
	snprintf(tls, sizeof(tls), "%s/tls", state);
	if (!ASSERT_OK(mkdir(state, 0711), state) ||
	    !ASSERT_OK(ag_tls_ca_open(&ca, tls, d.in.name, &err), err.msg))
		goto out;
	if (test__start_subtest("readable")) {
		ASSERT_EQ(run_capture(
			      &out,
			      "env -u SUDO_UID -u SUDO_GID -u SSL_CERT_FILE %s/agentgatectl "
			      "--instance %s run --agent demo -- sh -c 'echo "
			      "\"S=$SSL_CERT_FILE R=$REQUESTS_CA_BUNDLE C=$CURL_CA_BUNDLE N=$NODE_EXTRA_CA_CERTS\"; "
			      "head -c 27 \"$NODE_EXTRA_CA_CERTS\"' 2>&1",
			      testlib_build_dir(), d.in.name),
			  0, "run");
		snprintf(want, sizeof(want), "S=%s R=%s C=%s N=%s\n-----BEGIN CERTIFICATE-----",
			 ag_tls_ca_bundle_path(ca), ag_tls_ca_bundle_path(ca),
			 ag_tls_ca_bundle_path(ca), ag_tls_ca_cert_path(ca));
		ASSERT_OK_PTR(out ? strstr(out, want) : NULL, out ? out : "no output");
		free(out);
		out = NULL;
	}
	if (test__start_subtest("unreadable")) {
		chmod(state, 0700);
		ASSERT_EQ(run_capture(
			      &out,
			      "env -u SUDO_UID -u SUDO_GID -u SSL_CERT_FILE %s/agentgatectl "
			      "--instance %s run --agent demo -- sh -c 'echo \"S=$SSL_CERT_FILE\"' "
			      "2>&1",
			      testlib_build_dir(), d.in.name),
			  0, "run");
		ASSERT_OK_PTR(out ? strstr(out, "S=\n") : NULL, "no variable");
		ASSERT_OK_PTR(out ? strstr(out, "not readable by the agent's user") : NULL,
			      out ? out : "no output");
		free(out);
		out = NULL;
	}
out:
	if (ca) {
		unlink(ag_tls_ca_bundle_path(ca));
		unlink(ag_tls_ca_cert_path(ca));
		snprintf(tls, sizeof(tls), "%s/tls/ca.key", state);
		unlink(tls);
		snprintf(tls, sizeof(tls), "%s/tls", state);
		rmdir(tls);
		ag_tls_ca_free(ca);
	}
	rmdir(state);
	tdaemon_destroy(&d);
}
