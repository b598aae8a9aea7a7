/* SPDX-License-Identifier: GPL-2.0 */
/*
 * HTTP services (agentgate.conf(5) "http_services"): plain HTTP APIs on
 * the MCP path's machinery.  A connection to one is an MCP connection
 * (mcp_conn.c) whose server has an http block; these hooks take the
 * places where the MCP path reads JSON-RPC:
 *
 *	head	the route, canonical target, method and body type
 *		(http_svc_head, from mcp_request_head)
 *	body	context, decision, its record, then the canonical request
 *		forwarded or a 403 (http_svc_request, from request_end)
 *	answer	output rules on a JSON answer and the result record
 *		(http_svc_answer, from mcp_inspect_messages; http_svc_done
 *		records a result the gateway did not read)
 *
 * Everything else is the MCP path's as it is: Host/Origin checks,
 * upstream dial and TLS, credential injection, the audit hold, response
 * framing, timeouts.
 */
#ifndef AG_HTTP_SVC_H
#define AG_HTTP_SVC_H

#include <stdbool.h>

#include <jansson.h>

struct mcp_conn;

/* After the Host, Origin and Upgrade checks; false when refused. */
bool http_svc_head(struct mcp_conn *c);
/* The request is whole: decide it, then forward or answer. */
void http_svc_request(struct mcp_conn *c);
/* A JSON answer: output rules, result record.  1 if root was rewritten. */
int http_svc_answer(struct mcp_conn *c, json_t *root);
/* The response ended: the result record, if the answer was not read. */
void http_svc_done(struct mcp_conn *c);

#endif
