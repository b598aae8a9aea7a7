/* SPDX-License-Identifier: GPL-2.0 */
/* What daemon/inbound.c (listener, keys) and inbound_http.c (each request) share. */
#ifndef AG_INBOUND_INT_H
#define AG_INBOUND_INT_H

#include <stdint.h>

#include <openssl/ssl.h>

#include "config.h"
#include "limit.h"
#include "inbound.h"
#include "mcp_int.h"
#include "oauth_rs_jwks.h"

#define INBOUND_SESSIONS 1024 /* session ids bound to an identity; the oldest goes */
#define METADATA_PATH "/.well-known/oauth-protected-resource"

/* A session id, bound to the identity that first presented it. */
struct inbound_session {
	char id[SESSION_ID_MAX];
	char client_id[AG_RS_NAME_MAX];
	char sub[AG_RS_NAME_MAX];
	uint64_t used_ns; /* 0: free */
};

struct ag_inbound {
	const struct ag_inbound_conf *conf;
	const struct ag_server_conf *srv;
	int fd;
	SSL_CTX *ctx;
	struct ag_rs_jwks *jwks;
	char authority[AG_HOST_LEN + 8]; /* the resource URL's host[:port], for Host */
	char metadata_url[2 * AG_INBOUND_URL_LEN + 128];
	char metadata_path[AG_INBOUND_URL_LEN + 64]; /* RFC 9728 §3.1: with the resource's path */
	char *metadata;				     /* the document, JSON */
	struct inbound_session sessions[INBOUND_SESSIONS];
	unsigned int active;	 /* connections open; at most limits.max_conns_per_agent */
	struct ag_limiter limit; /* log lines of refusals over that */
};

#endif
