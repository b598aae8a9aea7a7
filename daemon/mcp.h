/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The MCP path: agent connections to a governed tool server are parsed as
 * HTTP/1.1 + JSON-RPC (Streamable HTTP of every era and the legacy HTTP+SSE
 * transport), every tools/call, resources/read and prompts/get is decided
 * (decide.h), tools/list results are filtered, and responses stream back
 * unbuffered.  TLS toward the agent is terminated with a leaf from the
 * instance CA; TLS toward the upstream is verified.
 */
#ifndef AG_MCP_H
#define AG_MCP_H

#include <jansson.h>

#include <openssl/ssl.h>

#include "config.h"

struct ag_loop;

int ag_mcp_init(struct ag_loop *l, struct ag_err *err);
/*
 * Takes fd, an agent connection admitted as a (admit.h: its origin, agent
 * and chain, kept for the connection's life) and classified as srv's.
 * initial holds the bytes the classifier already read; tls says they
 * begin a ClientHello.  The first request head is due by head_ns (the
 * header timeout, fair.h).
 */
struct ag_admission;
void ag_mcp_start(struct ag_loop *l, int fd, const struct ag_admission *a,
		  const struct ag_server_conf *srv, const void *initial, size_t len, bool tls,
		  uint64_t head_ns);
/* The same for an outside agent (inbound.h): TLS with ctx, the identity in
 * id (taken: freed with the connection). */
struct ag_inbound_id;
void ag_mcp_start_inbound(struct ag_loop *l, int fd, const struct ag_admission *a,
			  const struct ag_server_conf *srv, SSL_CTX *ctx, struct ag_inbound_id *id);
void ag_mcp_stop(struct ag_loop *l);
/* The turn's audit records went to the writer: the calls waiting for them go
 * on; true if others were decided meanwhile (flush again). */
bool ag_mcp_audit_flushed(struct ag_loop *l);
void ag_mcp_fini(struct ag_loop *l);
/* Per tool server with a credential: its type and, for OAuth, the token's
 * state (never the token), for status. */
json_t *ag_mcp_credentials(struct ag_loop *l);
/* Re-reads the tool servers' secret files, all or none (logged and
 * audited); a negative errno when the running ones were kept. */
int ag_mcp_reload_credentials(struct ag_loop *l, const char *trigger);
/* Connections open on the MCP path (for status). */
unsigned int ag_mcp_active(const struct ag_loop *l);
/* {"open": upstream connections, "idle": those in the tool servers' pools}. */
json_t *ag_mcp_upstreams(const struct ag_loop *l);

#endif
