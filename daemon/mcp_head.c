// SPDX-License-Identifier: GPL-2.0
/*
 * A request head on the MCP path (mcp_int.h): the pure checks of
 * mcp_check.h and mcp_request.h applied to it, in the order that decides
 * which refusal the agent gets, and the upstream target chosen.
 */
#include <stdlib.h>
#include <string.h>

#include "http_svc.h"
#include "inbound.h"
#include "mcp_check.h"
#include "mcp_int.h"

static void copy_header(const struct ag_http_msg *m, const char *name, char *out, size_t cap)
{
	const struct ag_http_header *h = ag_http_find(m, name, NULL);

	out[0] = '\0';
	if (h && h->value_len < cap) {
		memcpy(out, h->value, h->value_len);
		out[h->value_len] = '\0';
	}
}

/* The endpoint of the configured upstream URL: path and query, "/" if none. */
static const char *endpoint(const struct ag_server_conf *srv)
{
	return srv->upstream_path[0] ? srv->upstream_path : "/";
}

/*
 * Where the request goes upstream, set in c->r->call.fwd_target: the configured
 * endpoint, or for a POST to a legacy session's message endpoint, that
 * endpoint as the server announced it.  Anything else on the tool server's
 * origin is refused: the gateway's credential and decision are for the
 * MCP endpoint, never a confused deputy for other paths.
 */
static int request_target(struct mcp_conn *c, const struct ag_http_msg *m)
{
	const char *ep = endpoint(c->srv), *target = ep;
	/* An outside agent names the resource's path; the upstream gets its endpoint. */
	const char *want = c->in ? ag_inbound_target(c) : ep;
	struct ag_target t;
	struct ag_err err;
	struct session *s;

	if (ag_target_split(m->target, m->target_len, &t, &err)) {
		mcp_refuse_request(c, 400, AG_JSONRPC_INVALID_REQUEST, err.msg);
		return -1;
	}
	if (m->target_len == strlen(want) && !memcmp(m->target, want, m->target_len))
		goto found;
	if (!c->in && c->r->call.verb == AG_MCP_VERB_POST && t.query &&
	    !ag_query_only_param(t.query, t.query_len, "sessionId", c->r->legacy.sid,
				 sizeof(c->r->legacy.sid), &err) &&
	    (s = mcp_legacy_find(c, c->r->legacy.sid)) && s->path_len == t.path_len &&
	    !memcmp(s->target, t.path, t.path_len)) {
		target = s->target;
		goto found;
	}
	c->r->legacy.sid[0] = '\0';
	/* Fail closed: not the endpoint the decision is about. */
	mcp_refuse_request(c, 404, AG_JSONRPC_INVALID_REQUEST,
			   "not the tool server's MCP endpoint (nor an open session's)");
	return -1;
found:
	if (!(c->r->call.fwd_target = strdup(target))) {
		mcp_conn_close(c, "error", "out of memory");
		return -1;
	}
	return 0;
}

/* A local agent's request must name the tool server it dialled. */
static bool authority_ok(struct mcp_conn *c, const struct ag_http_msg *m)
{
	const struct ag_http_header *h = ag_http_find(m, "Host", NULL);
	const struct ag_mcp_authority w = { c->srv->hosts, c->srv->nr_hosts, c->o.addr, c->o.port };

	/*
	 * DNS-rebinding protection: a request must name the tool server by one
	 * of its configured names or by the address the agent connected to.
	 * HTTP/1.0 has no Host requirement; the gateway still needs one.
	 */
	if (!h || !ag_mcp_authority_ok(&w, h->value, h->value_len)) {
		mcp_refuse_request(c, 403, AG_JSONRPC_INVALID_REQUEST,
				   "Host not allowed by the gateway");
		return false;
	}
	if ((h = ag_http_find(m, "Origin", NULL)) &&
	    !ag_mcp_origin_ok(&w, h->value, h->value_len)) {
		mcp_refuse_request(c, 403, AG_JSONRPC_INVALID_REQUEST,
				   "Origin not allowed by the gateway");
		return false;
	}
	return true;
}

/* Checks a request head before any of its body is read. */
bool mcp_request_head(struct mcp_conn *c)
{
	const struct ag_http_msg *m = &c->r->req.msg;
	const struct ag_http_header *h;
	struct ag_err err;

	mcp_request_reset(c);
	c->r->call.ns = ag_now_ns();
	c->r->call.keep_alive = m->keep_alive;
	/* An outside agent's token and Host are inbound.h's to check. */
	if (c->in ? !ag_inbound_head(c) : !authority_ok(c, m))
		return false;
	if ((h = ag_http_find(m, "Upgrade", NULL))) {
		mcp_refuse_request(c, 400, AG_JSONRPC_INVALID_REQUEST,
				   "protocol upgrades are not supported");
		return false;
	}
	if (c->srv->http) {
		copy_header(m, "Host", c->r->call.host, sizeof(c->r->call.host));
		return http_svc_head(c);
	}
	if ((c->r->call.verb = ag_mcp_verb_of(m)) == AG_MCP_VERB_NONE) {
		mcp_refuse_request(c, 405, AG_JSONRPC_INVALID_REQUEST,
				   "MCP defines only POST, GET and DELETE on its endpoint");
		return false;
	}
	if (ag_mcp_fields_check(m, &err)) {
		mcp_refuse_request(c, 400, AG_JSONRPC_INVALID_REQUEST, err.msg);
		return false;
	}
	if (c->r->call.verb == AG_MCP_VERB_POST && ag_mcp_body_type_check(m, &err)) {
		mcp_refuse_request(c, 415, AG_JSONRPC_INVALID_REQUEST, err.msg);
		return false;
	}
	if (request_target(c, m))
		return false;
	copy_header(m, "MCP-Protocol-Version", c->r->call.version, sizeof(c->r->call.version));
	c->r->call.v2026 = !strcmp(c->r->call.version, "2026-07-28");
	copy_header(m, "Host", c->r->call.host, sizeof(c->r->call.host));
	copy_header(m, "Mcp-Session-Id", c->r->call.session_id, sizeof(c->r->call.session_id));
	return true;
}
