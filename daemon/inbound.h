/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Agents from outside (agentgate.conf(5) "inbound"): a TLS listener with
 * the operator's certificate that serves one configured tool server as an
 * OAuth 2.1 resource server.  Every request carries a bearer token
 * (oauth_rs.h) that is checked before anything else is read; the request
 * then takes the MCP path of local agents (mcp.h: decisions, output rules,
 * credential injection, audit), with the token's client as the principal:
 *
 *	accept -> TLS (operator's certificate) -> request head:
 *	  GET /.well-known/oauth-protected-resource[/path] -> metadata (RFC 9728)
 *	  Host not the resource's                  -> 403
 *	  no token                                  -> 401 + resource_metadata
 *	  bad token (signature, iss, aud, exp, nbf) -> 401 invalid_token
 *	  another identity than the connection's    -> 401 invalid_token
 *	  a session of another identity             -> 403
 *	-> request body: a tools/call whose tool no scope of the token
 *	   covers -> 403 insufficient_scope
 *	-> decided and forwarded as a local agent's (decide.h), the
 *	   Authorization field never forwarded (mcp_request.h's keep-list).
 *
 * Ordering hazard: the connection's identity is set by its first accepted
 * token and never changes; the agent name (metrics, sessions, budgets) is
 * renamed then, once, before any decision.
 */
#ifndef AG_INBOUND_H
#define AG_INBOUND_H

#include <stdbool.h>

#include <jansson.h>

#include "oauth_rs.h"

struct ag_daemon;
struct ag_loop;
struct mcp_conn;

/* Who an outside connection acts for: its first accepted token's. */
struct ag_inbound_id {
	bool bound;
	char client_id[AG_RS_NAME_MAX];
	char sub[AG_RS_NAME_MAX];
	char scope[AG_RS_SCOPE_MAX]; /* of the request being handled */
	/* The Cedar principal (agentgate-policy(5)): "Client" and the
	 * client_id, or "User" and sub for a user's token. */
	const char *principal_type;
	const char *principal_id;
};

/* Opens the listener, loads the certificate, starts the JWKS fetch; 0 without "inbound". */
int ag_inbound_start(struct ag_daemon *d, struct ag_err *err);
/*
 * The XDP ingress guard on inbound.guard.interface for the listener's port,
 * once the instance is installed (its pins live beside the programs').
 */
int ag_inbound_guard(struct ag_daemon *d, struct ag_err *err);
void ag_inbound_stop(struct ag_daemon *d);
/* The listener for the loop (-1: none). */
int ag_inbound_fd(const struct ag_daemon *d);
/* Takes fd, accepted on the inbound listener. */
void ag_inbound_accept(struct ag_loop *l, int fd);
/* An outside connection ended: id (NULL: a local agent's) is freed. */
void ag_inbound_conn_end(struct ag_daemon *d, struct ag_inbound_id *id);

/* MCP path hooks (daemon/inbound_http.c); false: answered, stop here. */
bool ag_inbound_head(struct mcp_conn *c);
bool ag_inbound_body(struct mcp_conn *c);
/* The request target outside agents use: the resource URL's. */
const char *ag_inbound_target(const struct mcp_conn *c);
/* Whether the token's scopes cover tool (decide.h). */
bool ag_inbound_tool_granted(const struct ag_daemon *d, const struct ag_inbound_id *id,
			     const char *tool);
/* The "agent" object of c's audit records: its chain, and client and subject from outside. */
json_t *ag_inbound_audit_agent(const struct mcp_conn *c);
struct ag_audit_agent;
/* The same as members (trail.h), for the records of every call. */
void ag_inbound_audit_agent_members(const struct mcp_conn *c, struct ag_audit_agent *a);

#endif
