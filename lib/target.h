/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What a governed MCP request asks for: the one such enum, shared by the
 * allow-lists (lib/config.h) and policies (lib/policy_request.h), whose
 * functions name and find it.  lib/jsonrpc.h's enum ag_mcp_method names
 * every method, governed or not.
 */
#ifndef AG_TARGET_H
#define AG_TARGET_H

enum ag_policy_target {
	AG_TARGET_TOOL,	    /* tools/call (and the tools/list filter) */
	AG_TARGET_RESOURCE, /* resources/read */
	AG_TARGET_PROMPT,   /* prompts/get */
	AG_TARGET_ROUTE,    /* a request to an HTTP service (Action::"http") */
};

#endif
