/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Minted assertions: short-lived JWTs (RFC 7519, compact JWS RFC 7515)
 * signed with the instance key, EdDSA over Ed25519 (RFC 8037) or ES256
 * (RFC 7518), their JWKS, and the key directory with rotation.
 *
 * Key id: kid = base64url(first 16 bytes of SHA-256(raw public key)), 22
 * characters.  The raw public key is the 32-byte Ed25519 key (RFC 8032) or
 * the 65-byte uncompressed P-256 point 0x04 || X || Y (SEC 1).
 *
 * Key directory (owned by the effective uid, not writable by group or others;
 * created 0700), one writer at a time (flock on the directory):
 *   jwt-<kid>.pem  a PKCS#8 PEM private key, root-owned, mode 0600
 *   keys.json      {"current":"<kid>","keys":[{"kid":..,"alg":"EdDSA"|"ES256",
 *                   "created_at":UNIX,"retired_at":UNIX}, ...]}
 * retired_at is absent on the current key.  A retired key stays published in
 * the JWKS while now <= retired_at + AG_JWT_MAX_TTL (a token it signed may
 * still be valid); after that the next rotation deletes it.
 */
#ifndef AG_JWT_H
#define AG_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define AG_JWT_MAX_TTL 300 /* seconds: the longest a minted token lives */
#define AG_JWT_KID_LEN 22  /* base64url of 16 bytes, no padding */
#define AG_JWT_MAX_CHAIN 16
#define AG_JWT_MAX_NAME 256 /* bytes of one claim string or agent name */
#define AG_JWT_RAW_PUB_MAX 65

enum ag_jwt_alg {
	AG_JWT_EDDSA,
	AG_JWT_ES256,
};

const char *ag_jwt_alg_name(enum ag_jwt_alg alg); /* "EdDSA", "ES256" */
int ag_jwt_alg_parse(const char *s, enum ag_jwt_alg *out, struct ag_err *err);

/* base64url without padding; *out is NUL-terminated, caller frees. */
int ag_b64url_encode(const unsigned char *in, size_t len, char **out, struct ag_err *err);
/* Decodes into out (room for cap bytes); refuses padding and foreign characters. */
int ag_b64url_decode(const char *in, unsigned char *out, size_t cap, size_t *len,
		     struct ag_err *err);

struct ag_jwt_key;

int ag_jwt_key_generate(enum ag_jwt_alg alg, struct ag_jwt_key **out, struct ag_err *err);
/* Writes the private key as PEM to a new file (O_EXCL), mode 0600. */
int ag_jwt_key_save(const struct ag_jwt_key *k, const char *path, struct ag_err *err);
/* Loads a PEM private key from a secret file (same ownership and mode rules). */
int ag_jwt_key_load(const char *path, struct ag_jwt_key **out, struct ag_err *err);
void ag_jwt_key_free(struct ag_jwt_key *k);
enum ag_jwt_alg ag_jwt_key_alg(const struct ag_jwt_key *k);
const char *ag_jwt_key_kid(const struct ag_jwt_key *k);
/* The raw public key the kid is computed from (see above); *len is 32 or 65. */
int ag_jwt_key_public_raw(const struct ag_jwt_key *k, unsigned char out[AG_JWT_RAW_PUB_MAX],
			  size_t *len, struct ag_err *err);

struct ag_jwt_claims {
	const char *iss;     /* the instance */
	const char *sub;     /* the operator */
	const char *aud;     /* the tool server */
	const char *session; /* agentgate_session, optional */
	const char *tool;    /* agentgate_tool, optional */
	/* Agent names, root first; the last is the calling agent (the outermost act). */
	const char *const *chain;
	size_t chain_len;
	int64_t iat;  /* seconds since the epoch */
	uint32_t ttl; /* 1..AG_JWT_MAX_TTL; exp = iat + ttl */
};

/* A compact JWS; *out is the caller's to free. */
int ag_jwt_mint(const struct ag_jwt_key *k, const struct ag_jwt_claims *c, char **out,
		struct ag_err *err);

/* {"keys":[JWK, ...]} for the given keys, compact with sorted keys; caller frees. */
int ag_jwks_json(const struct ag_jwt_key *const *keys, size_t n, char **out, struct ag_err *err);

/* The key directory described above. */
struct ag_keyring;

/*
 * Adds a new key of alg to dir (created 0700 if missing) and makes it
 * current; the previous current key is retired at now, and keys retired
 * more than AG_JWT_MAX_TTL before now are deleted.  *kid_out, if not NULL,
 * receives the new kid (room for AG_JWT_KID_LEN + 1).
 */
int ag_keyring_rotate(const char *dir, enum ag_jwt_alg alg, int64_t now, char *kid_out,
		      struct ag_err *err);
/* An instance's key directory for alg: <state_dir>/keys/<alg name>. */
int ag_keyring_dir(const char *state_dir, enum ag_jwt_alg alg, char *out, size_t cap,
		   struct ag_err *err);
/* Loads the current key and every key still published at now. */
int ag_keyring_open(const char *dir, int64_t now, struct ag_keyring **out, struct ag_err *err);
void ag_keyring_free(struct ag_keyring *kr);
/* The key new tokens are signed with. */
const struct ag_jwt_key *ag_keyring_current(const struct ag_keyring *kr);
/* The JWKS of every key loaded by ag_keyring_open(), current first. */
int ag_keyring_jwks(const struct ag_keyring *kr, char **out, struct ag_err *err);

#endif
