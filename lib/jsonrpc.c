// SPDX-License-Identifier: GPL-2.0
/* JSON-RPC 2.0 / MCP message extraction (see jsonrpc.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "jsonrpc.h"

const struct ag_jsonrpc_limits ag_jsonrpc_default_limits = {
	.max_body = 4u << 20,
	.max_depth = 64,
	.max_batch = 100,
};

const char *ag_jsonrpc_kind_name(enum ag_jsonrpc_kind k)
{
	static const char *const names[] = {
		[AG_JSONRPC_INVALID] = "invalid",
		[AG_JSONRPC_REQUEST] = "request",
		[AG_JSONRPC_NOTIFICATION] = "notification",
		[AG_JSONRPC_RESPONSE] = "response",
		[AG_JSONRPC_ERROR_RESPONSE] = "error_response",
	};

	return (unsigned int)k < AG_ARRAY_SIZE(names) ? names[k] : "unknown";
}

/*
 * Nesting depth before jansson sees the body: its own limit (2048) is a
 * compile-time constant far above what MCP needs, and every later walk of
 * the tree (policy, audit, json_decref) recurses too.  Brackets inside
 * strings do not count; on invalid JSON the count may be off, but then
 * jansson rejects the body anyway.
 */
static bool too_deep(const char *s, size_t len, size_t max)
{
	bool in_string = false, escaped = false;
	size_t depth = 0;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (in_string) {
			if (escaped)
				escaped = false;
			else if (c == '\\')
				escaped = true;
			else if (c == '"')
				in_string = false;
		} else if (c == '"') {
			in_string = true;
		} else if (c == '[' || c == '{') {
			if (++depth > max)
				return true;
		} else if ((c == ']' || c == '}') && depth) {
			depth--;
		}
	}
	return false;
}

/* Returns the JSON-RPC error code, so that `return invalid(...)` reads well. */
static int invalid(struct ag_jsonrpc_msg *m, int code, const char *msg)
{
	m->kind = AG_JSONRPC_INVALID;
	m->error_code = code;
	m->error_msg = msg;
	return code;
}

/* params.<key> as a string; absent is NULL, any other type an error. */
static bool get_string(json_t *params, const char *key, bool required, const char **out)
{
	json_t *v = params ? json_object_get(params, key) : NULL;

	*out = NULL;
	if (!v)
		return !required;
	if (!json_is_string(v))
		return false;
	*out = json_string_value(v);
	return true;
}

static bool get_object(json_t *params, const char *key, json_t **out)
{
	json_t *v = params ? json_object_get(params, key) : NULL;

	*out = v;
	return !v || json_is_object(v);
}

static const struct {
	const char *method;
	enum ag_mcp_method mcp;
	const char *name_key; /* required string member */
	bool has_arguments;
} mcp_methods[] = {
	{ "initialize", AG_MCP_INITIALIZE, "protocolVersion", false },
	{ "tools/call", AG_MCP_TOOLS_CALL, "name", true },
	{ "tools/list", AG_MCP_TOOLS_LIST, NULL, false },
	{ "resources/read", AG_MCP_RESOURCES_READ, "uri", false },
	{ "prompts/get", AG_MCP_PROMPTS_GET, "name", true },
};

/* The decision-relevant params of the methods the policy looks at.
 * Returns 0 or the JSON-RPC error code. */
static int extract_mcp(struct ag_jsonrpc_msg *m, json_t *params)
{
	const char *key = NULL, *s = NULL;
	size_t i;

	m->mcp = AG_MCP_OTHER;
	for (i = 0; i < AG_ARRAY_SIZE(mcp_methods); i++)
		if (!strcmp(m->method, mcp_methods[i].method))
			break;
	if (i == AG_ARRAY_SIZE(mcp_methods))
		return 0;
	m->mcp = mcp_methods[i].mcp;
	key = mcp_methods[i].name_key;
	if (params && !json_is_object(params))
		return invalid(m, AG_JSONRPC_INVALID_PARAMS, "params must be an object");
	if (key && !get_string(params, key, true, &s))
		return invalid(m, AG_JSONRPC_INVALID_PARAMS,
			       m->mcp == AG_MCP_INITIALIZE
				   ? "params.protocolVersion must be a string"
			       : m->mcp == AG_MCP_RESOURCES_READ ? "params.uri must be a string"
								 : "params.name must be a string");
	if (m->mcp == AG_MCP_INITIALIZE)
		m->protocol_version = s;
	else
		m->name = s;
	if (mcp_methods[i].has_arguments && !get_object(params, "arguments", &m->arguments))
		return invalid(m, AG_JSONRPC_INVALID_PARAMS, "params.arguments must be an object");
	if (m->mcp == AG_MCP_TOOLS_LIST && !get_string(params, "cursor", false, &m->cursor))
		return invalid(m, AG_JSONRPC_INVALID_PARAMS, "params.cursor must be a string");
	return 0;
}

/* Returns 0 or the JSON-RPC error code for the element. */
static int classify(struct ag_jsonrpc_msg *m, json_t *e)
{
	json_t *v, *id, *method, *params, *result, *error;

	memset(m, 0, sizeof(*m));
	m->json = e;
	m->mcp = AG_MCP_NONE;
	if (!json_is_object(e))
		return invalid(m, AG_JSONRPC_INVALID_REQUEST, "message is not an object");
	id = json_object_get(e, "id");
	/* MCP ids are strings or integers; JSON-RPC's fractions are refused. */
	if (json_is_string(id) || json_is_integer(id))
		m->id = id;
	v = json_object_get(e, "jsonrpc");
	if (!json_is_string(v) || strcmp(json_string_value(v), "2.0"))
		return invalid(m, AG_JSONRPC_INVALID_REQUEST, "jsonrpc must be \"2.0\"");
	if (id && !m->id && !json_is_null(id))
		return invalid(m, AG_JSONRPC_INVALID_REQUEST, "id must be a string or an integer");
	method = json_object_get(e, "method");
	result = json_object_get(e, "result");
	error = json_object_get(e, "error");
	if (method) {
		if (!json_is_string(method))
			return invalid(m, AG_JSONRPC_INVALID_REQUEST, "method must be a string");
		if (result || error)
			return invalid(m, AG_JSONRPC_INVALID_REQUEST,
				       "a request cannot carry result or error");
		if (id && !m->id)
			return invalid(m, AG_JSONRPC_INVALID_REQUEST,
				       "request id must not be null");
		params = json_object_get(e, "params");
		if (params && !json_is_object(params) && !json_is_array(params))
			return invalid(m, AG_JSONRPC_INVALID_REQUEST,
				       "params must be an object or an array");
		m->kind = id ? AG_JSONRPC_REQUEST : AG_JSONRPC_NOTIFICATION;
		m->method = json_string_value(method);
		return extract_mcp(m, params);
	}
	if (!id)
		return invalid(m, AG_JSONRPC_INVALID_REQUEST, "neither method nor id");
	if (!result == !error)
		return invalid(m, AG_JSONRPC_INVALID_REQUEST,
			       "a response carries exactly one of result and error");
	if (result) {
		if (!m->id)
			return invalid(m, AG_JSONRPC_INVALID_REQUEST, "result with a null id");
		m->kind = AG_JSONRPC_RESPONSE;
		return 0;
	}
	if (!json_is_object(error) || !json_is_integer(json_object_get(error, "code")) ||
	    !json_is_string(json_object_get(error, "message")))
		return invalid(m, AG_JSONRPC_INVALID_REQUEST,
			       "error must be an object with an integer code and a string message");
	m->kind = AG_JSONRPC_ERROR_RESPONSE;
	return 0;
}

int ag_jsonrpc_parse(const void *body, size_t len, const struct ag_jsonrpc_limits *lim,
		     struct ag_jsonrpc_body *out, struct ag_err *err)
{
	json_error_t jerr;
	size_t n;

	memset(out, 0, sizeof(*out));
	if (!lim)
		lim = &ag_jsonrpc_default_limits;
	if (len > lim->max_body)
		return ag_errf(err, E2BIG, "json-rpc body: %zu bytes, limit %zu", len,
			       lim->max_body);
	if (memchr(body, '\0', len))
		return ag_errf(err, EPROTO, "json-rpc body: NUL byte");
	if (too_deep(body, len, lim->max_depth))
		return ag_errf(err, E2BIG, "json-rpc body: nested deeper than %zu", lim->max_depth);
	/* No JSON_ALLOW_NUL: "\u0000" is refused like a raw NUL.  jansson
	 * also refuses invalid UTF-8 and, with JSON_DECODE_ANY, takes any
	 * JSON value, so a bare scalar is an invalid message, not a parse
	 * error, as JSON-RPC says. */
	out->root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!out->root)
		return ag_errf(err, EPROTO, "json-rpc body: line %d column %d: %s", jerr.line,
			       jerr.column, jerr.text);
	out->batch = json_is_array(out->root);
	n = out->batch ? json_array_size(out->root) : 1;
	if (n > lim->max_batch) {
		ag_jsonrpc_body_free(out);
		return ag_errf(err, E2BIG, "json-rpc batch: %zu messages, limit %zu", n,
			       lim->max_batch);
	}
	out->count = n ? n : 1;
	out->msgs = calloc(out->count, sizeof(*out->msgs));
	if (!out->msgs) {
		ag_jsonrpc_body_free(out);
		return ag_errf(err, ENOMEM, "json-rpc body: %zu messages: out of memory", n);
	}
	if (!n) {
		out->msgs[0].json = out->root;
		invalid(&out->msgs[0], AG_JSONRPC_INVALID_REQUEST, "empty batch");
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		classify(&out->msgs[i], out->batch ? json_array_get(out->root, i) : out->root);
	return 0;
}

void ag_jsonrpc_body_free(struct ag_jsonrpc_body *b)
{
	json_decref(b->root);
	free(b->msgs);
	memset(b, 0, sizeof(*b));
}

/* Takes the reference to member, NULL included (an earlier failure). */
static json_t *envelope(json_t *id, const char *key, json_t *member)
{
	if (!member)
		return NULL;
	return json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id ? id : json_null(), key,
			 member);
}

json_t *ag_jsonrpc_error(json_t *id, int code, const char *message, json_t *data)
{
	json_t *e = json_pack("{s:i, s:s}", "code", code, "message", message);

	if (e && data && json_object_set(e, "data", data)) {
		json_decref(e);
		return NULL;
	}
	return envelope(id, "error", e);
}

json_t *ag_mcp_tool_denied(json_t *id, const char *reason, json_t *meta, bool result_type_complete)
{
	json_t *decision = json_is_object(meta) ? json_deep_copy(meta) : json_object();
	json_t *result = NULL;

	if (!decision)
		return NULL;
	if (json_object_set_new(decision, "decision", json_string("deny")) ||
	    (!json_object_get(decision, "reason") &&
	     json_object_set_new(decision, "reason", json_string(reason)))) {
		json_decref(decision);
		return NULL;
	}
	result = json_pack("{s:[{s:s, s:o}], s:b, s:{s:o}}", "content", "type", "text", "text",
			   json_sprintf("Denied by policy: %s", reason), "isError", 1, "_meta",
			   "agentgate/decision", decision);
	if (result && result_type_complete &&
	    json_object_set_new(result, "resultType", json_string("complete"))) {
		json_decref(result);
		return NULL;
	}
	return envelope(id, "result", result);
}

static bool hdr_eq(const char *h, size_t hlen, const char *s)
{
	return s && strlen(s) == hlen && !memcmp(h, s, hlen);
}

int ag_mcp_check_headers(const struct ag_jsonrpc_body *b, const char *method_hdr, size_t method_len,
			 const char *name_hdr, size_t name_len, bool required, struct ag_err *err)
{
	const struct ag_jsonrpc_msg *m = &b->msgs[0];
	const char *body_name = NULL;

	if (!method_hdr && !name_hdr && !required)
		return 0;
	if (b->batch)
		return ag_errf(err, EPROTO, "Mcp-Method: a batch cannot carry routing headers");
	if (m->kind != AG_JSONRPC_REQUEST && m->kind != AG_JSONRPC_NOTIFICATION)
		return ag_errf(err, EPROTO, "Mcp-Method: body is a %s, not a request",
			       ag_jsonrpc_kind_name(m->kind));
	if (!method_hdr)
		return ag_errf(err, EPROTO, "Mcp-Method header missing (body method \"%.64s\")",
			       m->method);
	if (!hdr_eq(method_hdr, method_len, m->method))
		return ag_errf(err, EPROTO,
			       "Mcp-Method header \"%.*s\" does not match body method \"%.64s\"",
			       (int)(method_len < 64 ? method_len : 64), method_hdr, m->method);
	if (m->mcp == AG_MCP_TOOLS_CALL || m->mcp == AG_MCP_PROMPTS_GET ||
	    m->mcp == AG_MCP_RESOURCES_READ)
		body_name = m->name;
	if (name_hdr && !body_name)
		return ag_errf(err, EPROTO, "Mcp-Name header present but %.64s names nothing",
			       m->method);
	if (name_hdr && !hdr_eq(name_hdr, name_len, body_name))
		return ag_errf(err, EPROTO,
			       "Mcp-Name header \"%.*s\" does not match body \"%.64s\"",
			       (int)(name_len < 64 ? name_len : 64), name_hdr, body_name);
	if (!name_hdr && required && body_name)
		return ag_errf(err, EPROTO, "Mcp-Name header missing (body names \"%.64s\")",
			       body_name);
	return 0;
}
