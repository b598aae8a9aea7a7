// SPDX-License-Identifier: GPL-2.0
/*
 * Fuzz the JSON-RPC / MCP body parser.  Every message of an accepted body
 * must be consistently classified; the replies built for it (an error for
 * an invalid message, a denial for a tool call) must parse back as
 * responses; and the routing headers copied from a request body must pass
 * the 2026-07-28 check; and the body re-serialised as the gateway forwards
 * it (ag_json_compact) must be json_dumps' bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "jsonrpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct ag_jsonrpc_limits lim = {
	.max_body = 1 << 16,
	.max_depth = 16,
	.max_batch = 8,
};

/* A reply must serialize and parse back as one response of `kind`. */
static void check_reply(json_t *reply, enum ag_jsonrpc_kind kind)
{
	struct ag_jsonrpc_body b;
	char *s;

	if (!reply)
		abort();
	s = json_dumps(reply, JSON_COMPACT);
	if (!s || ag_jsonrpc_parse(s, strlen(s), NULL, &b, NULL) || b.count != 1 ||
	    b.msgs[0].kind != kind)
		abort();
	ag_jsonrpc_body_free(&b);
	free(s);
	json_decref(reply);
}

/* What the gateway forwards (ag_json_compact) is what json_dumps writes. */
static void check_compact(const json_t *root)
{
	char *want = json_dumps(root, JSON_COMPACT | JSON_ENCODE_ANY);
	struct ag_audit_text got;

	if (!want || ag_json_compact(root, SIZE_MAX / 2, &got))
		abort();
	if (got.len != strlen(want) || memcmp(got.text, want, got.len))
		abort();
	free(got.text);
	free(want);
}

static void check_msg(const struct ag_jsonrpc_body *b, const struct ag_jsonrpc_msg *m)
{
	bool named = m->mcp == AG_MCP_TOOLS_CALL || m->mcp == AG_MCP_PROMPTS_GET ||
		     m->mcp == AG_MCP_RESOURCES_READ;

	switch (m->kind) {
	case AG_JSONRPC_INVALID:
		if (!m->error_msg || m->error_code > -32600 || m->error_code < -32700)
			abort();
		check_reply(ag_jsonrpc_error(m->id, m->error_code, m->error_msg, NULL),
			    AG_JSONRPC_ERROR_RESPONSE);
		break;
	case AG_JSONRPC_REQUEST:
	case AG_JSONRPC_NOTIFICATION:
		if (!m->method || (named && !m->name) ||
		    (m->arguments && !json_is_object(m->arguments)))
			abort();
		if (m->kind == AG_JSONRPC_REQUEST && m->mcp == AG_MCP_TOOLS_CALL)
			check_reply(ag_mcp_tool_denied(m->id, m->name, NULL, true),
				    AG_JSONRPC_RESPONSE);
		if (!b->batch &&
		    ag_mcp_check_headers(b, m->method, strlen(m->method), named ? m->name : NULL,
					 named ? strlen(m->name) : 0, true, NULL))
			abort();
		break;
	case AG_JSONRPC_RESPONSE:
	case AG_JSONRPC_ERROR_RESPONSE:
		if (m->method)
			abort();
		break;
	default:
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ag_jsonrpc_body b;

	if (ag_jsonrpc_parse(data, size, &lim, &b, NULL)) {
		if (b.root || b.msgs)
			abort();
		return 0;
	}
	if (!b.count || b.count > lim.max_batch)
		abort();
	for (size_t i = 0; i < b.count; i++)
		check_msg(&b, &b.msgs[i]);
	check_compact(b.root);
	ag_jsonrpc_body_free(&b);
	return 0;
}
