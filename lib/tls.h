/* SPDX-License-Identifier: GPL-2.0 */
/*
 * TLS for the daemon, without any I/O: every connection runs over memory
 * BIOs, the io_uring loop moves ciphertext between them and the sockets.
 *
 *	agent --TLS--> agentgated: a leaf certificate minted on the fly for the
 *	name the agent asked for, signed by the instance CA that `agentgatectl
 *	run` makes the agent trust.
 *	agentgated --TLS--> upstream: verified client TLS.
 *
 * Nothing here is thread-safe: one event loop owns a CA, its contexts and
 * its connections.
 */
#ifndef AG_TLS_H
#define AG_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "util.h"

/* Room for any name ag_tls_client_hello_sni() returns, NUL included. */
#define AG_TLS_NAME_MAX 254
/* Ciphertext ag_tls_feed() buffers before refusing more: four full records. */
#define AG_TLS_FEED_MAX (4 * (16384 + 2048 + 5))
/* Leaf certificates kept by name; the oldest is dropped. */
#define AG_TLS_LEAF_CACHE 256

/*
 * The instance CA, in dir:
 *	ca.key		0600, root-owned, EC P-256 (read with ag_secret_load's checks)
 *	ca.crt		0644, self-signed, CN "agentgate <instance> CA", 10 years
 *	bundle.pem	0644, the system CA bundle followed by ca.crt
 * dir is created 0711 when missing: the agent, an unprivileged user, must
 * be able to open ca.crt and bundle.pem by name, but not list the directory.
 * ca.key is the commit point of a creation (renamed last): a ca.crt without
 * ca.key is replaced, a ca.key without ca.crt is refused.  bundle.pem is
 * rewritten (atomically) on every open, so it follows the system bundle.
 */
struct ag_tls_ca;
int ag_tls_ca_open(struct ag_tls_ca **out, const char *dir, const char *instance,
		   struct ag_err *err);
void ag_tls_ca_free(struct ag_tls_ca *ca);
/* For NODE_EXTRA_CA_CERTS, and SSL_CERT_FILE / REQUESTS_CA_BUNDLE. */
const char *ag_tls_ca_cert_path(const struct ag_tls_ca *ca);
const char *ag_tls_ca_bundle_path(const struct ag_tls_ca *ca);
const X509 *ag_tls_ca_cert(const struct ag_tls_ca *ca);
/*
 * The cached leaf for name (a DNS name, or an IPv4/IPv6 literal which gets
 * an IP SAN), minted when missing or older than a day.  Borrowed: valid
 * until the CA is freed or the entry is evicted.
 */
X509 *ag_tls_ca_leaf(struct ag_tls_ca *ca, const char *name, struct ag_err *err);

/*
 * Server context toward agents: TLS 1.2+, certificates from ca by SNI or the
 * connection's fallback name, ALPN "http/1.1" only when the agent offers it.
 * ca must outlive the context.  Free with SSL_CTX_free().
 */
SSL_CTX *ag_tls_server_ctx(struct ag_tls_ca *ca, struct ag_err *err);
/*
 * Server context with the operator's certificate (chain PEM) and key (a
 * secret file, secret.h): TLS 1.2+, ALPN "http/1.1" only, as above.
 */
SSL_CTX *ag_tls_server_ctx_files(const char *cert_file, const char *key_file, struct ag_err *err);
/*
 * Client context toward upstreams: TLS 1.2+, peer verified against ca_file
 * (NULL or "": the system default paths), ALPN "http/1.1".
 */
SSL_CTX *ag_tls_client_ctx(const char *ca_file, struct ag_err *err);

struct ag_tls;
/* fallback_name (may be NULL): the name to mint for when the agent sends no SNI. */
struct ag_tls *ag_tls_new_server(SSL_CTX *ctx, const char *fallback_name, struct ag_err *err);
/*
 * server_name is required: sent as SNI unless it is an IP literal, and
 * always verified (DNS name, or IP SAN for literals).
 */
struct ag_tls *ag_tls_new_client(SSL_CTX *ctx, const char *server_name, struct ag_err *err);
void ag_tls_free(struct ag_tls *t);
/* The underlying SSL, for what this API does not cover (ALPN result, peer cert). */
SSL *ag_tls_ssl(struct ag_tls *t);

/* Ciphertext from the network; -ENOBUFS when more than AG_TLS_FEED_MAX would wait. */
int ag_tls_feed(struct ag_tls *t, const void *buf, size_t len);
/*
 * 0: handshake done.  -EAGAIN: needs more input (send ag_tls_out first).
 * Other <0: failed, err says why ("certificate verify failed: hostname
 * mismatch"); ag_tls_out may still hold an alert worth sending.
 */
int ag_tls_handshake(struct ag_tls *t, struct ag_err *err);
/* Plaintext: >0 bytes, 0 close_notify from the peer, -EAGAIN more input needed, <0 error. */
ssize_t ag_tls_read(struct ag_tls *t, void *buf, size_t cap, struct ag_err *err);
/* Encrypts all of len (output in ag_tls_out); -EAGAIN before the handshake is done. */
ssize_t ag_tls_write(struct ag_tls *t, const void *buf, size_t len, struct ag_err *err);
/* Queues close_notify. */
void ag_tls_shutdown(struct ag_tls *t);
/*
 * The ciphertext waiting for the network, in one contiguous piece.  *data
 * stays valid until the next handshake, read, write or shutdown call on t
 * (they may grow and move the buffer); ag_tls_out_consume() does not move it.
 */
size_t ag_tls_out(struct ag_tls *t, const void **data);
void ag_tls_out_consume(struct ag_tls *t, size_t n);
/* Server side: the (validated, lower-case) SNI the agent sent, or NULL. */
const char *ag_tls_sni(const struct ag_tls *t);

/*
 * Parses the ClientHello at the start of a connection, without OpenSSL.
 * 1: out holds the SNI host_name, lower-cased and validated as a DNS name
 * (LDH and '_' labels of 1..63, at most 253 bytes, not numeric at the end).
 * 0: a complete ClientHello without SNI.  -EAGAIN: incomplete (never more
 * than 5 + 16384 bytes are needed).  -EPROTO: not a ClientHello, malformed,
 * an invalid name, or a ClientHello spread over several records (which no
 * client we know of sends; refusing it keeps the parser simple).
 * -ENOSPC: cap is below AG_TLS_NAME_MAX.  Reads nothing beyond len.
 */
int ag_tls_client_hello_sni(const void *buf, size_t len, char *out, size_t cap);
/* First bytes look like a TLS handshake record: 0x16 0x03 0x00..0x04 (needs 3 bytes). */
bool ag_tls_looks_like(const void *buf, size_t len);
/* Whether name is acceptable as SNI / DNS SAN, as above: ag_dns_name_valid() of
 * lib/hostport.h, any case, not an IP text. */
bool ag_tls_dns_name_valid(const char *name, size_t len);

#endif
