/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A real OAuth 2.0 authorization server for the credential tests:
 * oidc-provider (selftests/e2e/oidc_server.mjs, a pinned npm package) with
 * one client-credentials client, counting the token requests it gets.
 */
#ifndef AG_SELFTEST_IDPLIB_H
#define AG_SELFTEST_IDPLIB_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

#define IDP_CLIENT_ID "agt-client"
/* Every character class Basic's form-urlencoding must get right. */
#define IDP_CLIENT_SECRET "s3cr:t +/%&=\"x~"

struct idp {
	pid_t pid;
	int port;
	char url[64]; /* the token endpoint */
};

/* Whether node and oidc-provider are installed (build/e2e); dir gets build/e2e. */
bool idp_installed(char *dir, size_t len);
/* Starts the server (over TLS with tls_dir's cert.pem and key.pem, if not NULL). */
int idp_start(struct idp *s, const char *e2e_dir, const char *tls_dir);
/* The same with more arguments for oidc_server.mjs (NULL-terminated). */
int idp_start_args(struct idp *s, const char *e2e_dir, const char *tls_dir,
		   const char *const *extra);
void idp_stop(struct idp *s);
/* GET path on the server's control endpoints (/count, /fail?n=K, /ttl?s=S): the JSON body. */
json_t *idp_get(struct idp *s, const char *path);
bool idp_set(struct idp *s, const char *path);
/* POSTs to the token endpoint so far, failed ones included; -1 if unknown. */
int idp_token_requests(struct idp *s);

struct tdaemon;
/* agentgatectl keys jwks of the test daemon's instance, saved in its directory. */
int jwks_save(const struct tdaemon *d, char *path, size_t len);
/*
 * selftests/e2e/jose_verify.mjs: the exit status of verifying token with
 * the jose library against the JWKS file, for audience aud and (unless
 * NULL) the act chain chain_json (["root", ..., "caller"]); *out gets its
 * output (the payload on success), freed first.
 */
int jose_verify(const char *e2e, const char *jwks, const char *token, const char *aud,
		const char *chain_json, char **out);

#endif
