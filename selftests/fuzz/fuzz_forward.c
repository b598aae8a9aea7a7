// SPDX-License-Identifier: GPL-2.0
/*
 * Differential fuzzing of what the MCP path forwards.  The input is an
 * agent's raw request.  It goes through the gateway's own steps (the
 * strict HTTP parser, the request checks of mcp_request.h, the JSON-RPC
 * parser) and, when accepted, through the functions that write the
 * upstream request.  A second, independent and lenient reader (as a tool
 * server reads: duplicate keys resolved last-wins, fields split on the
 * first colon) then parses the forwarded bytes, and the harness aborts
 * when it reads another method, path, tool name or argument than the one
 * the gateway decided on (and audits), or a field the gateway did not
 * choose to send.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "jsonrpc.h"
#include "mcp_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct ag_jsonrpc_limits lim = {
	.max_body = 1 << 16,
	.max_depth = 16,
	.max_batch = 8,
};

/* The whole request, or NULL: the parser's head and a copy of the body. */
static uint8_t *read_request(struct ag_http_parser *p, const uint8_t *data, size_t size,
			     size_t *blen)
{
	uint8_t *body = malloc(size + 1);
	struct ag_http_event ev;

	*blen = 0;
	while (body) {
		ssize_t n = ag_http_parse(p, data, size, &ev);

		if (n < 0)
			break;
		data += n;
		size -= n;
		if (ev.type == AG_HTTP_EV_BODY) {
			memcpy(body + *blen, ev.data, ev.len);
			*blen += ev.len;
		} else if (ev.type == AG_HTTP_EV_END) {
			return body;
		} else if (ev.type == AG_HTTP_EV_NEED_MORE) {
			break;
		}
	}
	free(body);
	return NULL;
}

/* The gateway's steps of request_head and request_decide for POST /mcp. */
static bool accepted(const struct ag_http_msg *m)
{
	struct ag_err err;

	return ag_mcp_verb_of(m) == AG_MCP_VERB_POST && m->target_len == 4 &&
	       !memcmp(m->target, "/mcp", 4) && !ag_mcp_fields_check(m, &err) &&
	       !ag_mcp_body_type_check(m, &err);
}

static bool forwarded_field(const char *name, size_t n)
{
	static const char *const gateway[] = { "Host", "Accept-Encoding", "Content-Type",
					       "Content-Length", NULL };

	for (int set = 0; set < 2; set++)
		for (const char *const *f = set ? gateway : ag_mcp_forward_fields; *f; f++)
			if (strlen(*f) == n && !strncasecmp(*f, name, n))
				return true;
	return false;
}

/*
 * The upstream's reading of the head: the start line must be the
 * endpoint's, every field one the gateway sends, once, and the length
 * that of the body that follows.  Returns the body.
 */
static const char *upstream_head(const char *req, size_t len)
{
	const char *end = memmem(req, len, "\r\n\r\n", 4), *line, *eol;
	long cl = -1;

	if (!end || strncmp(req, "POST /mcp HTTP/1.1\r\n", 20))
		abort();
	for (line = strstr(req, "\r\n") + 2; line < end; line = eol + 2) {
		const char *colon = memchr(line, ':', end - line);

		eol = memmem(line, end + 2 - line, "\r\n", 2);
		if (!colon || colon > eol || !forwarded_field(line, colon - line))
			abort();
		/* A field given twice is read two ways; the gateway never sends one. */
		for (const char *l2 = eol + 2; l2 < end; l2 = strstr(l2, "\r\n") + 2)
			if (!strncasecmp(l2, line, colon - line + 1))
				abort();
		if (!strncasecmp(line, "Content-Length:", 15))
			cl = strtol(colon + 1, NULL, 10);
	}
	if (cl != (long)(len - (end + 4 - req)))
		abort();
	return end + 4;
}

static const char *str(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static bool same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

/* What the upstream reads as message i against what the gateway decided. */
static void compare(const struct ag_jsonrpc_msg *m, json_t *up)
{
	json_t *params = json_object_get(up, "params");
	const char *name = m->mcp == AG_MCP_RESOURCES_READ ? str(params, "uri")
							   : str(params, "name");

	if (m->kind != AG_JSONRPC_REQUEST && m->kind != AG_JSONRPC_NOTIFICATION) {
		if (!json_equal(m->json, up))
			abort();
		return;
	}
	if (!same_str(m->method, str(up, "method")))
		abort();
	if (m->name && !same_str(m->name, name))
		abort();
	if (m->arguments && !json_equal(m->arguments, json_object_get(params, "arguments")))
		abort();
	if (!json_equal(m->id, json_object_get(up, "id")) && (m->id || json_object_get(up, "id")))
		abort();
}

static void check_forward(const struct ag_http_msg *msg, const uint8_t *body, size_t blen)
{
	struct ag_mcp_forward f = { .verb = AG_MCP_VERB_POST, .target = "/mcp",
				    .authority = "tool.test" };
	char head[8192], *text, *req;
	json_t *kept = json_array(), *up;
	struct ag_jsonrpc_body b;
	size_t hlen, n = 0;
	struct ag_err err;

	if (!kept || ag_jsonrpc_parse(body, blen, &lim, &b, NULL)) {
		json_decref(kept);
		return;
	}
	/* Every message the gateway would forward (invalid ones it answers). */
	for (size_t i = 0; i < b.count; i++)
		if (b.msgs[i].kind != AG_JSONRPC_INVALID)
			json_array_append(kept, b.msgs[i].json);
	text = json_array_size(kept) ? ag_mcp_body_dump(kept, b.batch, &f.body_len) : NULL;
	if (text && !ag_mcp_forward_head(msg, &f, head, sizeof(head), &hlen, &err) &&
	    (req = malloc(hlen + f.body_len + 1))) {
		memcpy(req, head, hlen);
		memcpy(req + hlen, text, f.body_len);
		req[hlen + f.body_len] = '\0';
		up = json_loads(upstream_head(req, hlen + f.body_len), 0, NULL);
		if (!up || json_is_array(up) != b.batch)
			abort();
		for (size_t i = 0; i < b.count; i++)
			if (b.msgs[i].kind != AG_JSONRPC_INVALID)
				compare(&b.msgs[i], b.batch ? json_array_get(up, n++) : up);
		json_decref(up);
		free(req);
	}
	free(text);
	json_decref(kept);
	ag_jsonrpc_body_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ag_http_limits hl = ag_http_default_limits;
	struct ag_http_parser p;
	uint8_t *body;
	size_t blen;

	hl.max_body = 1 << 16;
	if (ag_http_parser_init(&p, true, &hl, NULL))
		return 0;
	body = read_request(&p, data, size, &blen);
	if (body && accepted(&p.msg))
		check_forward(&p.msg, body, blen);
	free(body);
	ag_http_parser_release(&p);
	return 0;
}
