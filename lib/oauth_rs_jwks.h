/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The authorization server's JWKS, kept fresh by a thread of its own (the
 * HTTP/TLS client of lib/oauth.c), so the daemon's loop only ever checks
 * a token against the keys in memory (oauth_rs.h):
 *
 *	start -> thread: fetch at once, then every refresh_s; a failed
 *	fetch is retried after min_interval_s.  A token with an unknown kid
 *	(the server rotated its keys) asks for a fetch now
 *	(ag_rs_jwks_refetch), at most one per min_interval_s, so tokens
 *	with made-up kids cannot make the gateway hammer the server.
 *
 * A fetch that fails or brings no usable key keeps the keys in use.
 */
#ifndef AG_OAUTH_RS_JWKS_H
#define AG_OAUTH_RS_JWKS_H

#include <stdint.h>

#include "oauth_rs.h"

struct ag_rs_jwks_conf {
	const char *url;
	const char *ca_file; /* NULL: the system store */
	uint32_t mark;	     /* SO_MARK of the fetch's socket */
	uint32_t refresh_s, min_interval_s;
	/* an eventfd rung after each fetch that changed the keys; -1: none */
	int notify_fd;
};

struct ag_rs_jwks;

int ag_rs_jwks_start(const struct ag_rs_jwks_conf *conf, struct ag_rs_jwks **out,
		     struct ag_err *err);
/* ag_rs_verify() with the keys in use; AG_RS_UNKNOWN_KID also when none arrived yet. */
enum ag_rs_result ag_rs_jwks_verify(struct ag_rs_jwks *j, const struct ag_rs_expect *x,
				    const char *token, size_t len, int64_t now,
				    struct ag_rs_token *out, struct ag_err *err);
/* Asks for a fetch now, unless one ran less than min_interval_s ago. */
void ag_rs_jwks_refetch(struct ag_rs_jwks *j);
/* Keys in use (0: none yet) and fetches so far, for status and tests. */
void ag_rs_jwks_counts(struct ag_rs_jwks *j, size_t *keys, uint64_t *fetches);
/* Stops and joins the thread; NULL is fine. */
void ag_rs_jwks_stop(struct ag_rs_jwks *j);

#endif
