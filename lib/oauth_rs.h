/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The resource server's side of OAuth 2.1 (agentgate.conf(5) "inbound"):
 * access tokens presented by agents from outside, checked without any
 * I/O.  A token is a JWT access token (RFC 9068) signed by a key of the
 * authorization server's JWKS (RFC 7517); it is accepted only when all of
 * these hold, in this order:
 *
 *	compact JWS, three base64url parts, header and payload JSON objects
 *	alg ES256 or RS256 (never "none", never HS*: a shared secret would
 *	    let anyone holding the JWKS mint tokens)
 *	kid names a key of the JWKS of that alg (no kid: the only such key)
 *	the signature verifies
 *	iss is the configured issuer
 *	aud is, or contains, this resource (RFC 8707)
 *	exp is present and now <= exp + skew; nbf, if present, now >= nbf - skew
 *	sub or client_id is present (the principal needs one)
 *
 * An unknown kid is told apart (AG_RS_UNKNOWN_KID): the caller refetches
 * the JWKS (key rotation) and the token is refused meanwhile.
 *
 * Nothing here logs or keeps the token; error messages never quote it.
 */
#ifndef AG_OAUTH_RS_H
#define AG_OAUTH_RS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define AG_RS_TOKEN_MAX (16 * 1024) /* bytes of a presented token */
#define AG_RS_NAME_MAX 256	    /* bytes of sub, client_id, kid */
#define AG_RS_SCOPE_MAX 1024	    /* bytes of the scope claim */
#define AG_RS_MAX_KEYS 32	    /* keys of one JWKS that are kept */
#define AG_RS_JWKS_MAX (256 * 1024) /* bytes of a JWKS document */

/* A parsed JWKS: the usable signature keys (EC P-256, RSA >= 2048 bits). */
struct ag_rs_keys;

/* Keys that are not for signatures or of another type are skipped; no usable key is an error. */
int ag_rs_keys_parse(const char *json, size_t len, struct ag_rs_keys **out, struct ag_err *err);
void ag_rs_keys_free(struct ag_rs_keys *k);
size_t ag_rs_keys_count(const struct ag_rs_keys *k);

struct ag_rs_expect {
	const char *issuer;   /* iss, exactly */
	const char *resource; /* one of aud, exactly */
	uint32_t skew_s;      /* allowed clock difference for exp and nbf */
};

/* What the gateway takes from an accepted token. */
struct ag_rs_token {
	char sub[AG_RS_NAME_MAX];	/* "" when absent */
	char client_id[AG_RS_NAME_MAX]; /* client_id, else azp; "" when absent */
	char scope[AG_RS_SCOPE_MAX];	/* space-separated; "" none */
	char kid[AG_RS_NAME_MAX];
	int64_t exp;
};

enum ag_rs_result {
	AG_RS_OK,
	AG_RS_INVALID,	   /* refused: err says why */
	AG_RS_UNKNOWN_KID, /* refused for now: no key of the JWKS has its kid */
};

/* Checks token (len bytes, no "Bearer ") at now (seconds since the epoch). */
enum ag_rs_result ag_rs_verify(const struct ag_rs_keys *k, const struct ag_rs_expect *x,
			       const char *token, size_t len, int64_t now, struct ag_rs_token *out,
			       struct ag_err *err);

/* Whether the space-separated list has the scope s (whole words only). */
bool ag_rs_scope_has(const char *list, const char *s);

/*
 * The token of an Authorization field value: "Bearer" (any case), one or
 * more spaces, then a token68 (RFC 6750 §2.1).  NULL when the value is not
 * that; *len is the token's length.
 */
const char *ag_rs_bearer(const char *value, size_t value_len, size_t *len);

#endif
