/* SPDX-License-Identifier: GPL-2.0 */
/*
 * JSON-RPC 2.0 and MCP message extraction from HTTP bodies.
 *
 * The gateway decides each tool call from the body, never from headers, so
 * the body must have exactly one reading: duplicate keys (which member
 * would the server use?), embedded NUL (where does a C server stop?) and
 * invalid UTF-8 are rejected for the whole body, as are bodies over the
 * size, depth and batch limits.  Inside a valid JSON document each message
 * is classified separately, because a batch is decided element by element:
 * a malformed element becomes AG_JSONRPC_INVALID with the error the
 * gateway should answer, and its neighbours are still usable.
 */
#ifndef AG_JSONRPC_H
#define AG_JSONRPC_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "util.h"

/* JSON-RPC and MCP error codes the gateway answers with. */
#define AG_JSONRPC_PARSE_ERROR -32700
#define AG_JSONRPC_INVALID_REQUEST -32600
#define AG_JSONRPC_METHOD_NOT_FOUND -32601
#define AG_JSONRPC_INVALID_PARAMS -32602
#define AG_JSONRPC_INTERNAL_ERROR -32603
/* MCP 2026-07-28: Mcp-Method / Mcp-Name disagree with the body. */
#define AG_MCP_HEADER_MISMATCH -32020

enum ag_jsonrpc_kind {
	AG_JSONRPC_INVALID,
	AG_JSONRPC_REQUEST,
	AG_JSONRPC_NOTIFICATION,
	AG_JSONRPC_RESPONSE,
	AG_JSONRPC_ERROR_RESPONSE,
};

enum ag_mcp_method {
	AG_MCP_NONE, /* not a request or notification */
	AG_MCP_OTHER,
	AG_MCP_INITIALIZE,
	AG_MCP_TOOLS_CALL,
	AG_MCP_TOOLS_LIST,
	AG_MCP_RESOURCES_READ,
	AG_MCP_PROMPTS_GET,
	/* Not JSON-RPC: a request to an HTTP service, as the decision point
	 * takes it (daemon/http_svc.c); no message parses to it. */
	AG_MCP_HTTP,
};

/*
 * One message.  Every pointer borrows from the body's JSON tree and lives
 * as long as the ag_jsonrpc_body.  The MCP fields are extracted for
 * notifications too: a server that executes a "tools/call" notification
 * must not get it past the policy.
 */
struct ag_jsonrpc_msg {
	enum ag_jsonrpc_kind kind;
	json_t *json;	    /* the element itself */
	json_t *id;	    /* string or integer; NULL if absent or unusable */
	const char *method; /* requests and notifications */
	enum ag_mcp_method mcp;
	/* tools/call, prompts/get: params.name; resources/read: params.uri. */
	const char *name;
	json_t *arguments;	      /* tools/call, prompts/get: object or NULL */
	const char *cursor;	      /* tools/list: params.cursor or NULL */
	const char *protocol_version; /* initialize: params.protocolVersion */
	/* AG_JSONRPC_INVALID: the code and message to answer with. */
	int error_code;
	const char *error_msg;
};

struct ag_jsonrpc_body {
	json_t *root;
	bool batch; /* the body was an array */
	size_t count;
	struct ag_jsonrpc_msg *msgs;
};

struct ag_jsonrpc_limits {
	size_t max_body;  /* bytes */
	size_t max_depth; /* nesting of arrays and objects */
	size_t max_batch; /* elements of a batch */
};

/* 4 MiB, depth 64, 100 messages per batch. */
extern const struct ag_jsonrpc_limits ag_jsonrpc_default_limits;

/*
 * Parses an HTTP body into messages.  lim NULL means the defaults.
 * Returns 0, or -EPROTO (not one valid JSON document: NUL, invalid UTF-8,
 * syntax, duplicate key), -E2BIG (over a limit), -ENOMEM; the caller then
 * answers AG_JSONRPC_PARSE_ERROR (or the size error).  A JSON document that
 * is not a valid JSON-RPC message, an empty batch included, parses to one
 * AG_JSONRPC_INVALID message, as JSON-RPC answers it with one error.
 */
int ag_jsonrpc_parse(const void *body, size_t len, const struct ag_jsonrpc_limits *lim,
		     struct ag_jsonrpc_body *out, struct ag_err *err);
void ag_jsonrpc_body_free(struct ag_jsonrpc_body *b);

const char *ag_jsonrpc_kind_name(enum ag_jsonrpc_kind k);

/*
 * {"jsonrpc":"2.0","id":id,"error":{"code":code,"message":message,"data":data}}
 * id NULL becomes null; data NULL is left out; both are borrowed.  Never
 * use -32000/-32001: clients read them as connection loss.
 * Returns a new reference, or NULL on allocation failure or when message
 * is not valid UTF-8.
 */
json_t *ag_jsonrpc_error(json_t *id, int code, const char *message, json_t *data);

/*
 * The tool result for a call denied by an argument or context rule: HTTP
 * 200 and isError, so the model sees the reason and the client does not
 * treat it as a protocol failure.  reason is shown as "Denied by policy:
 * <reason>"; meta (borrowed, may be NULL) is the machine-readable decision,
 * put under result._meta["agentgate/decision"]; result_type_complete adds
 * "resultType":"complete" for 2026-07-28 clients.  Returns a new reference,
 * or NULL on allocation failure or when reason is not valid UTF-8.
 */
json_t *ag_mcp_tool_denied(json_t *id, const char *reason, json_t *meta, bool result_type_complete);

/*
 * MCP 2026-07-28 routing headers (SEP-2243) against the body they mirror.
 * method_hdr/name_hdr are the raw values (NULL when absent).  required:
 * the request negotiated 2026-07-28, where Mcp-Method is mandatory and
 * Mcp-Name is mandatory when the body names a tool, prompt or resource.
 * Without `required`, headers that are present must still agree.  A batch
 * with the headers, a header naming what the body does not, or a missing
 * mandatory header: -EPROTO with err naming the header, and the gateway
 * answers HTTP 400 with AG_MCP_HEADER_MISMATCH.
 */
int ag_mcp_check_headers(const struct ag_jsonrpc_body *b, const char *method_hdr, size_t method_len,
			 const char *name_hdr, size_t name_len, bool required, struct ag_err *err);

#endif
