// SPDX-License-Identifier: GPL-2.0
/*
 * HTTP services on the MCP path (see http_svc.h).  A request goes
 *
 *	head: method known, fields once, JSON body type, route matched and
 *	      the target made canonical (http_route.h), or refused (4xx)
 *	end:  context built -> decided (Action::"http") -> decision record
 *	      -> 403, or the canonical request forwarded once the record is
 *	      durable (mcp_audit_hold) with the gateway's credential
 *	answer: JSON read whole, output rules applied, result record
 *
 * Ordering hazards: the head lives in the request parser's block until
 * the response ends (mcp_conn.c), so the fields read at the end and the
 * forwarded head come from the same bytes the route was matched on; the
 * result record is owed from forwarding until the response ends, and
 * http_svc_done runs before the next head resets the call.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "http_svc.h"
#include "mcp_int.h"

/* context.body: top-level fields of a JSON object, as many and as long as this. */
#define BODY_FIELDS_MAX 64
#define BODY_STRING_MAX 1024

bool http_svc_head(struct mcp_conn *c)
{
	const struct ag_http_msg *m = &c->r->req.msg;
	const char *method = ag_http_method_of(m), *base = c->srv->upstream_path;
	size_t blen = strlen(base);
	struct ag_err err;
	char msg[600];

	if (!method) {
		mcp_refuse_request(c, 405, 0, "HTTP services take GET, POST, PUT, PATCH, DELETE");
		return false;
	}
	if (ag_mcp_fields_check(m, &err)) {
		mcp_refuse_request(c, 400, 0, err.msg);
		return false;
	}
	/* Fail closed: a body is decided and forwarded as JSON, or not at all. */
	if ((m->framing == AG_HTTP_BODY_CHUNKED ||
	     (m->framing == AG_HTTP_BODY_LENGTH && m->content_length)) &&
	    ag_mcp_body_type_check(m, &err)) {
		mcp_refuse_request(c, 415, 0, err.msg);
		return false;
	}
	if (ag_route_match(c->srv->http, method, m->target, m->target_len, &c->r->http.req, &err)) {
		snprintf(msg, sizeof(msg), "request target: %s", err.msg);
		mcp_refuse_request(c, err.code == ENOMEM ? 503 : 400, 0, msg);
		return false;
	}
	c->r->call.verb = AG_MCP_VERB_HTTP;
	/* The upstream URL's path prefixes the canonical one ("/api" + "/todos"). */
	blen -= blen && base[blen - 1] == '/';
	if (!(c->r->call.fwd_target = malloc(blen + strlen(c->r->http.req.target) + 1))) {
		mcp_conn_close(c, "error", "out of memory");
		return false;
	}
	memcpy(c->r->call.fwd_target, base, blen);
	strcpy(c->r->call.fwd_target + blen, c->r->http.req.target);
	return true;
}

/* context.headers: the configured fields the agent sent, each once. */
static int context_headers(struct mcp_conn *c, json_t *out, struct ag_err *err)
{
	const struct ag_http_svc_conf *h = c->srv->http;

	for (int i = 0; i < h->nr_headers; i++) {
		const struct ag_http_header *f = ag_http_find(&c->r->req.msg, h->headers[i], NULL);
		json_t *v;

		if (!f)
			continue;
		/* Fail closed: a policy reads one value; a server might join two. */
		if (ag_http_find(&c->r->req.msg, h->headers[i], f))
			return ag_errf(err, EINVAL, "%s: given more than once", h->headers[i]);
		if (!(v = json_stringn(f->value, f->value_len)) ||
		    json_object_set_new(out, h->headers[i], v))
			return ag_errf(err, EINVAL, "%s: not UTF-8", h->headers[i]);
	}
	return 0;
}

/*
 * context.body: a JSON object's top-level strings (up to BODY_STRING_MAX
 * bytes), integers and booleans; other members are left out, so a policy
 * tests `context.body has x` first.
 */
static json_t *context_body(json_t *root)
{
	json_t *out = json_object(), *v;
	const char *k;

	json_object_foreach(root, k, v)
	{
		if (json_object_size(out) == BODY_FIELDS_MAX)
			break;
		if ((json_is_string(v) && json_string_length(v) > BODY_STRING_MAX) ||
		    !(json_is_string(v) || json_is_integer(v) || json_is_boolean(v)))
			continue;
		if (json_object_set(out, k, v)) {
			json_decref(out);
			return NULL;
		}
	}
	return out;
}

/* The body, parsed once and re-serialised: the canonical body forwarded. */
static int read_body(struct mcp_conn *c, json_t *ctx, struct ag_err *err)
{
	json_t *root;

	if (!c->r->call.body.len)
		return 0;
	/* The same reading as MCP bodies: one value, no duplicate keys. */
	if (!(root =
		  json_loadb(c->r->call.body.p, c->r->call.body.len, JSON_REJECT_DUPLICATES, NULL)))
		return ag_errf(err, EINVAL, "body: not one JSON value without duplicate keys");
	c->r->call.fwd_body =
	    json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
	c->r->call.fwd_len = c->r->call.fwd_body ? strlen(c->r->call.fwd_body) : 0;
	if (!c->r->call.fwd_body ||
	    (json_is_object(root) && json_object_set_new(ctx, "body", context_body(root)))) {
		json_decref(root);
		return ag_errf(err, ENOMEM, "body: out of memory");
	}
	json_decref(root);
	return 0;
}

/* The context policies decide on (agentgate-policy(5)), or NULL with err. */
static json_t *request_context(struct mcp_conn *c, const char *method, struct ag_err *err)
{
	json_t *ctx =
	    json_pack("{s:s,s:s,s:O,s:O,s:{}}", "method", method, "path", c->r->http.req.path,
		      "params", c->r->http.req.params, "query", c->r->http.req.query, "headers");

	if (!ctx) {
		ag_errf(err, ENOMEM, "request: out of memory");
		return NULL;
	}
	if (context_headers(c, json_object_get(ctx, "headers"), err) || read_body(c, ctx, err)) {
		json_decref(ctx);
		return NULL;
	}
	return ctx;
}

/* The decision on msg: a request no route takes is refused unless the service says. */
static void decide(struct mcp_conn *c, const struct ag_jsonrpc_msg *msg, struct ag_decision *dec)
{
	struct ag_decide_ctx x = mcp_decide_ctx(c);

	if (c->r->http.req.route || c->srv->http->unmatched_policy) {
		ag_decide_message(&x, msg, false, dec);
		return;
	}
	/* Fail closed: no route, nothing the configuration allows. */
	*dec = (struct ag_decision){ .kind = AG_OUTCOME_DENY, .rule = "route" };
	snprintf(dec->reason, sizeof(dec->reason), "no route of HTTP service %s takes %s %.120s",
		 c->srv->name, msg->method, c->r->http.req.path);
}

static void deny(struct mcp_conn *c, const struct ag_decision *dec)
{
	json_t *body = json_pack("{s:s,s:s}", "error", dec->reason[0] ? dec->reason : "denied",
				 "decision", ag_policy_outcome_name(dec->kind));

	if (!body || mcp_send_local(c, 403, body, c->r->call.keep_alive)) {
		json_decref(body);
		mcp_conn_close(c, "error", "could not answer the agent");
		return;
	}
	json_decref(body);
	mcp_req_next(c);
}

void http_svc_request(struct mcp_conn *c)
{
	const char *method = ag_http_method_of(&c->r->req.msg);
	struct ag_decision dec;
	struct ag_err err;
	json_t *ctx = request_context(c, method, &err);
	struct ag_jsonrpc_msg msg = {
		.kind = AG_JSONRPC_REQUEST,
		.method = method,
		.mcp = AG_MCP_HTTP,
		.name = c->r->http.req.route ? c->r->http.req.route->name : "*",
		.arguments = ctx,
	};

	if (!ctx) {
		mcp_refuse_request(c, err.code == ENOMEM ? 503 : 400, 0, err.msg);
		return;
	}
	decide(c, &msg, &dec);
	/* Escalation needs a JSON-RPC id to answer on: a route cannot wait for a human. */
	if (dec.kind != AG_OUTCOME_ALLOW)
		dec.kind = AG_OUTCOME_DENY;
	mcp_audit_decision(c, &msg, &dec);
	json_decref(ctx);
	if (c->r->audit.lost) {
		/* Fail closed: an unrecorded request is never made. */
		mcp_refuse(c, 503, 0, "the gateway cannot record this request in its audit log");
		return;
	}
	if (dec.kind != AG_OUTCOME_ALLOW) {
		deny(c, &dec);
		return;
	}
	c->r->http.owed = true;
	if (mcp_audit_hold(c))
		return;
	mcp_request_forward(c);
}

/* The result record: the upstream's status, is_error from it, redactions. */
static void record(struct mcp_conn *c, const struct ag_redact_report *rep)
{
	json_t *msg = json_pack("{s:{s:b}}", "result", "isError", c->r->reply.status >= 400);

	c->r->http.owed = false;
	mcp_audit_result(c, msg, c->r->http.req.route ? c->r->http.req.route->name : "*", rep);
	json_decref(msg);
}

/* out replaces root's content in place (the caller holds root): 0, or -EPROTO. */
static int replace(json_t *root, json_t *out)
{
	if (json_is_object(root) && json_is_object(out))
		return json_object_clear(root) || json_object_update(root, out) ? -ENOMEM : 0;
	if (json_is_array(root) && json_is_array(out))
		return json_array_clear(root) || json_array_extend(root, out) ? -ENOMEM : 0;
	return -EPROTO;
}

int http_svc_answer(struct mcp_conn *c, json_t *root)
{
	const struct ag_redactor *r = ag_outrules_all(mcp_of(c)->outrules, c->srv);
	struct ag_redact_report rep = { 0 };
	struct ag_err err = { 0 };
	json_t *out;
	int ret = 0;

	if (!c->r->http.owed)
		return 0;
	if (r && !(out = ag_redact_result(r, root, &rep, &err))) {
		rep.refused_by = "gateway";
		ret = -EPROTO;
	} else if (r && rep.refused_by) {
		/* Fail closed: the answer does not pass; the agent gets the rule's name. */
		json_decref(out);
		out = json_pack("{s:s+}", "error", "refused by output rule ", rep.refused_by);
		c->r->resp.msg.status = c->r->reply.status = 502;
		c->r->resp.msg.reason = "Bad Gateway";
		c->r->resp.msg.reason_len = 11;
		ret = out ? replace(root, out) : -ENOMEM;
		json_decref(out);
		ret = ret ? ret : 1;
	} else if (r) {
		ret = rep.total ? replace(root, out) : 0;
		ret = ret ? ret : rep.total > 0;
		json_decref(out);
	}
	record(c, &rep);
	return ret;
}

void http_svc_done(struct mcp_conn *c)
{
	struct ag_redact_report rep = { 0 };

	if (c->srv->http && c->r->http.owed)
		record(c, &rep);
}
