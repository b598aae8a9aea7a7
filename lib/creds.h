/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the gateway presents to a governed upstream in place of the
 * agent's own credentials (DESIGN §5, agentgate.conf(5) "credential"): a
 * static secret, an OAuth 2.0 client-credentials token kept fresh by a
 * background thread (lib/oauth.h), or a JWT minted per call with the
 * instance's key (lib/jwt.h).  The agent never holds any of them.
 */
#ifndef AG_CREDS_H
#define AG_CREDS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"

struct ag_creds;

/*
 * Loads static secrets (checked again: a file changed since the
 * configuration was read is refused now), starts the OAuth clients, and
 * opens (creating on first use) the signing keys in
 * <state_dir>/keys/<alg>.  issuer is the minted assertions' iss (the
 * instance); conf must outlive the result.  notify_fd is written whenever
 * an OAuth token request finishes.
 */
int ag_creds_new(const struct ag_conf *conf, const char *state_dir, const char *issuer,
		 int notify_fd, struct ag_creds **out, struct ag_err *err);
/*
 * Reads every secret file again (SIGHUP): all of them or none.  The number
 * of secrets that changed, or a negative errno with err naming the file and
 * the cause, the running secrets untouched.
 */
int ag_creds_reload(struct ag_creds *cr, int notify_fd, struct ag_err *err);
/* Stops the token threads and wipes every secret. */
void ag_creds_free(struct ag_creds *cr);

/* Who calls, for minted assertions. */
struct ag_cred_call {
	const char *operator;	 /* sub; the agent's name when it acts for nobody */
	const char *const *chain; /* delegation, root first, the calling agent last */
	size_t chain_len;
	const char *session; /* may be NULL */
	const char *tool;    /* the tools/call's tool, or NULL */
};

/*
 * The field to add for one request to server s: *name and *value (malloc'd,
 * the caller wipes and frees it).  0 with *value NULL when s has no
 * credential; -EAGAIN while the first OAuth token is being fetched (wait
 * for notify_fd, then ask again); another negative errno with err saying
 * why no credential can be had (never containing one).  *generation
 * identifies an OAuth token for ag_creds_refused().
 */
int ag_creds_header(struct ag_creds *cr, const struct ag_server_conf *s,
		    const struct ag_cred_call *call, const char **name, char **value, size_t *len,
		    uint64_t *generation, struct ag_err *err);
/* The upstream answered 401/403 to what ag_creds_header gave: an OAuth
 * token of that generation is dropped and fetched again, once. */
void ag_creds_refused(struct ag_creds *cr, const struct ag_server_conf *s, uint64_t generation);
/* {"<server>": {"type": .., OAuth's request counters ..}} for status. */
json_t *ag_creds_status(struct ag_creds *cr);

#endif
