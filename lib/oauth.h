/* SPDX-License-Identifier: GPL-2.0 */
/*
 * OAuth 2.0 client credentials (RFC 6749 §4.4) for a tool server: one
 * background thread per tool server keeps an access token fresh, and the
 * daemon's event loop only ever copies the cached token, so no call waits
 * on the token endpoint while a token is cached.
 *
 *	conf -> ag_oauth_start() -> thread: fetch, cache, sleep until ~80% of
 *	the lifetime, fetch again; on failure retry after 250 ms doubling to
 *	30 s (with jitter), for as long as it runs.
 *
 * The request: POST token_url, grant_type=client_credentials with scope,
 * resource (RFC 8707) and audience when set, the client authenticated with
 * HTTP Basic over the form-urlencoded id and secret (client_secret_basic,
 * RFC 6749 §2.3.1); HTTP/1.1, Connection: close, TLS with certificate and
 * host name verification for https.  The response must be JSON with a
 * Bearer access_token of at most AG_OAUTH_TOKEN_MAX visible ASCII bytes
 * and an integer expires_in (absent: AG_OAUTH_DEFAULT_TTL seconds).
 *
 * A token is used until one second before the end of its expires_in,
 * counted from when the request was sent: expires_in has whole-second
 * granularity and the server rounds its "now" down, so the token's exp may
 * be up to a second earlier than the request time plus expires_in.
 *
 * Secrets: the client secret stays in the caller's struct ag_secret; the
 * Basic credentials exist only in the thread's request buffer during a
 * request, and that buffer, the response buffer and the cached token live
 * in memory excluded from core dumps and are wiped after use, when
 * replaced and on stop.  Error messages carry the HTTP status and the
 * server's error and error_description (sanitised, and withheld if they
 * contain the secret), never the secret or a token.
 */
#ifndef AG_OAUTH_H
#define AG_OAUTH_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "secret.h"
#include "util.h"

#define AG_OAUTH_TOKEN_MAX (16 * 1024) /* bytes of an access token */
#define AG_OAUTH_DEFAULT_TTL 300       /* seconds, when expires_in is absent */
#define AG_OAUTH_TIMEOUT_MS 5000       /* per token request, when timeout_ms is 0 */

struct ag_oauth_conf {
	const char *token_url; /* http:// or https:// URL; host resolved at start */
	const char *client_id;
	const struct ag_secret *client_secret; /* owned by caller, outlives the ag_oauth */
	const char *scope;		       /* optional */
	const char *resource;		       /* optional, RFC 8707 "resource" parameter */
	const char *audience;		       /* optional, "audience" parameter (some servers) */
	const char *ca_file;	 /* optional, for https token endpoints; else system store */
	uint32_t mark;		 /* SO_MARK for the token endpoint socket (0: none) */
	unsigned int timeout_ms; /* per token request, default AG_OAUTH_TIMEOUT_MS */
};

struct ag_oauth;

/*
 * Checks and copies conf (the URL is parsed and its host resolved here, the
 * TLS context made), then starts the thread, which fetches a token at once.
 * notify_fd: an eventfd the thread adds 1 to whenever a fetch ends,
 * successful or not, so the caller can retry what got -EAGAIN; -1: none.
 * It must stay open until ag_oauth_stop().
 */
int ag_oauth_start(const struct ag_oauth_conf *conf, int notify_fd, struct ag_oauth **out,
		   struct ag_err *err);

/*
 * Never blocks on the network.  Copies the cached access token (the token
 * alone, no "Bearer ") into buf with a NUL, its length in *len and its
 * generation (for ag_oauth_invalidate) in *generation; returns 0.
 * -EAGAIN: no valid token yet and a fetch is under way or due (wait for
 * notify_fd).  -EIO: the last fetch failed and no valid token is cached;
 * err says why.  -ENOSPC: cap is not larger than the token.
 */
int ag_oauth_token(struct ag_oauth *o, char *buf, size_t cap, size_t *len, uint64_t *generation,
		   struct ag_err *err);

/*
 * The upstream refused the token of this generation (401/403): it is
 * dropped and a new one fetched at once.  Only the first call for the
 * current generation does anything; a repeated or older generation is
 * ignored, so one refused token costs exactly one refresh.
 */
void ag_oauth_invalidate(struct ag_oauth *o, uint64_t generation);

/*
 * {"requests":n,"failures":n,"expires_in_s":n|null,"last_error":str|null}:
 * fetches that ended and how many failed, the seconds the cached token is
 * still used (null: none), the last fetch's error (null: it succeeded).
 * The caller owns it.
 */
json_t *ag_oauth_status(struct ag_oauth *o);

/* Interrupts any wait or request under way, joins the thread, wipes and frees; NULL is fine. */
void ag_oauth_stop(struct ag_oauth *o);

#endif
