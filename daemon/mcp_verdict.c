// SPDX-License-Identifier: GPL-2.0
/*
 * A POST body on the MCP path (mcp_int.h): every message decided by
 * ag_decide_message (decide.h: the whole verdict), the allowed ones kept
 * for the upstream and owed an answer, the refused ones answered by the
 * gateway; a lone
 * escalated call is held in the approval registry until a human decides.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "mcp_check.h"
#include "mcp_int.h"

/* Appends v to the array *list, made on first use. */
int mcp_list_append(json_t **list, json_t *v)
{
	if (!*list && !(*list = json_array()))
		return -ENOMEM;
	return json_array_append(*list, v) ? -ENOMEM : 0;
}

/* A key of a pending set: in buf (an integer's at its end), or malloc'd in heap when longer. */
struct id_key {
	char buf[48];
	char *heap;
};

/*
 * A request id as a key of a pending set: its JSON type kept, so that 5
 * and "5" (or "#5") are two requests, as they are to the server.  NULL
 * for an id of another type, or out of memory; release with id_key_free.
 */
static const char *id_key(json_t *id, struct id_key *k)
{
	const char *s = json_string_value(id);
	size_t n;

	k->heap = NULL;
	if (json_is_integer(id)) {
		/* "i:%lld" without a printf per message: written from the end. */
		json_int_t v = json_integer_value(id);
		char *p = ag_audit_u64(v < 0 ? -(uint64_t)v : (uint64_t)v,
				       k->buf + sizeof(k->buf) - 1);

		k->buf[sizeof(k->buf) - 1] = '\0';
		if (v < 0)
			*--p = '-';
		*--p = ':';
		*--p = 'i';
		return p;
	}
	if (!s)
		return NULL;
	n = strlen(s);
	if (n < sizeof(k->buf) - 2) {
		memcpy(k->buf, "s:", 2);
		memcpy(k->buf + 2, s, n + 1);
		return k->buf;
	}
	if (asprintf(&k->heap, "s:%s", s) < 0)
		k->heap = NULL;
	return k->heap;
}

static void id_key_free(struct id_key *k)
{
	free(k->heap);
}

/*
 * A forwarded request whose answer the gateway must see: a tools/call's
 * result goes through the output rules and the audit log, a tools/list's
 * through the filter.  Each is owed once, by its typed id; a legacy
 * session's answers come on its GET stream, so they are owed there.  What
 * a connection or session is owed is bounded, or an agent could grow the
 * gateway's memory without end; an id already owed is refused (-EEXIST):
 * two answers with one id cannot be told apart.
 */
static int remember_request(struct mcp_conn *c, const struct ag_jsonrpc_msg *m)
{
	json_t **pending = c->r->legacy.post ? &c->r->legacy.post->pending : &c->r->call.pending;
	struct id_key k;
	const char *key;
	json_t *what;
	int ret = -EEXIST;

	if (m->kind != AG_JSONRPC_REQUEST || !m->id)
		return 0;
	if (!*pending && !(*pending = json_object()))
		return -ENOMEM;
	if (json_object_size(*pending) >= MAX_PENDING)
		return -ENOSPC;
	if (!(key = id_key(m->id, &k)))
		return -ENOMEM;
	if (!json_object_get(*pending, key)) {
		what = m->mcp == AG_MCP_TOOLS_CALL && m->name ? json_string(m->name)
							      : json_integer(m->mcp);
		ret = json_object_set_new(*pending, key, what) ? -ENOMEM : 0;
	}
	id_key_free(&k);
	return ret;
}

/* What the answer with this id was owed for (a reference), taken off the
 * set; NULL when nothing was. */
static json_t *pending_get(struct mcp_conn *c, json_t *id, bool take)
{
	json_t *pending = c->legacy.stream ? c->legacy.stream->pending : c->r->call.pending, *what;
	struct id_key k;
	const char *key = id_key(id, &k);

	what = key ? json_object_get(pending, key) : NULL;
	if (what && take) {
		json_incref(what);
		json_object_del(pending, key);
	}
	id_key_free(&k);
	return what;
}

json_t *mcp_take_pending(struct mcp_conn *c, json_t *id)
{
	return pending_get(c, id, true);
}

/* The same, borrowed and left on the set: what a scanned answer would be governed as. */
json_t *mcp_peek_pending(struct mcp_conn *c, json_t *id)
{
	return pending_get(c, id, false);
}

/* Whether an answer the gateway must read is owed on this connection. */
bool mcp_owes_answer(const struct mcp_conn *c)
{
	return json_object_size(c->legacy.stream ? c->legacy.stream->pending : c->r->call.pending) >
	       0;
}

/* The gateway's answer to one refused message (NULL for notifications). */
static json_t *denial(const struct mcp_conn *c, const struct ag_jsonrpc_msg *m,
		      const struct ag_decision *dec)
{
	json_t *meta;

	if (m->kind == AG_JSONRPC_INVALID)
		return ag_jsonrpc_error(m->id, m->error_code, m->error_msg, NULL);
	if (!m->id)
		return NULL;
	if (dec->kind == AG_OUTCOME_DENY) {
		json_t *r;

		meta = json_pack("{s:s,s:s}", "decision", ag_policy_outcome_name(dec->kind), "rule",
				 dec->rule);
		r = ag_mcp_tool_denied(m->id, dec->reason, meta, c->r->call.v2026);
		json_decref(meta);
		return r;
	}
	/* Never -32000/-32001: clients read those as a lost connection. */
	switch (m->mcp) {
	case AG_MCP_RESOURCES_READ:
		return ag_jsonrpc_error(m->id, -32002, "Resource not found", NULL);
	case AG_MCP_PROMPTS_GET: {
		char msg[320];

		snprintf(msg, sizeof(msg), "Unknown prompt: %s", m->name ? m->name : "");
		return ag_jsonrpc_error(m->id, AG_JSONRPC_INVALID_PARAMS, msg, NULL);
	}
	default: {
		char msg[320];

		snprintf(msg, sizeof(msg), "Unknown tool: %s", m->name ? m->name : "");
		return ag_jsonrpc_error(m->id, AG_JSONRPC_INVALID_PARAMS, msg, NULL);
	}
	}
}

/*
 * Decides every message of the body.  Returns the number forwarded; the
 * refused ones have their answers in c->r->call.extra.  -ENOMEM on failure.
 */
static int decide_body(struct mcp_conn *c, struct ag_jsonrpc_body *b, json_t **keep)
{
	struct ag_decide_ctx x = mcp_decide_ctx(c);
	int forwarded = 0, ret;

	for (size_t i = 0; i < b->count; i++) {
		struct ag_jsonrpc_msg *m = &b->msgs[i];
		struct ag_decision dec = { .kind = AG_OUTCOME_ALLOW, .rule = "gateway" };
		json_t *answer;

		if (m->kind == AG_JSONRPC_INVALID) {
			dec.kind = AG_OUTCOME_HIDDEN;
		} else if (m->kind == AG_JSONRPC_REQUEST || m->kind == AG_JSONRPC_NOTIFICATION) {
			/* Only a lone request can wait for a human: an element of a
			 * batch would hold its neighbours' answers, and a legacy POST
			 * is answered on another connection. */
			ag_decide_message(&x, m, b->count == 1 && !c->r->legacy.post, &dec);
			if (m->mcp == AG_MCP_TOOLS_CALL || m->mcp == AG_MCP_RESOURCES_READ ||
			    m->mcp == AG_MCP_PROMPTS_GET)
				mcp_audit_decision(c, m, &dec);
		}
		if (dec.kind == AG_OUTCOME_ESCALATE) {
			snprintf(c->r->esc.tool, sizeof(c->r->esc.tool), "%s", m->name);
			snprintf(c->r->esc.reason, sizeof(c->r->esc.reason), "%s", dec.reason);
			c->r->esc.waiting =
			    true; /* its id is req_id: only a lone request escalates */
			dec.kind = AG_OUTCOME_ALLOW; /* forwarded once approved */
		}
		if (dec.kind == AG_OUTCOME_ALLOW) {
			if (json_array_append(*keep, m->json))
				return -ENOMEM;
			forwarded++;
			if ((ret = remember_request(c, m)))
				return ret;
			if (m->mcp == AG_MCP_TOOLS_CALL && b->count == 1 && m->name)
				ag_strcpy_cut(c->r->call.tool, sizeof(c->r->call.tool), m->name);
			if (b->count == 1 && m->id && !c->r->call.id)
				c->r->call.id = json_incref(m->id);
			continue;
		}
		ag_fair_refused(c->l, &c->o,
				dec.kind == AG_OUTCOME_HIDDEN ? "mcp_hidden" : "mcp_denied");
		if (!(answer = denial(c, m, &dec)))
			continue;
		if (mcp_list_append(&c->r->call.extra, answer)) {
			json_decref(answer);
			return -ENOMEM;
		}
		json_decref(answer);
	}
	return forwarded;
}

/* Answers the refused part of a request, in place of the upstream. */
static int answer_locally(struct mcp_conn *c)
{
	json_t *body = NULL;
	int ret;

	if (c->r->legacy.post)
		return mcp_legacy_answer(c);
	if (!c->r->call.extra)
		return mcp_send_local(c, 202, NULL, c->r->call.keep_alive);
	body = c->r->call.extra_batch ? json_incref(c->r->call.extra)
				      : json_incref(json_array_get(c->r->call.extra, 0));
	ret = mcp_send_local(c, 200, body, c->r->call.keep_alive);
	json_decref(body);
	return ret;
}

/* The connection no longer waits for a human: its approval goes. */
void mcp_approval_cancel(struct mcp_conn *c)
{
	if (c->r->esc.approval)
		ag_approval_drop(c->r->esc.approval);
	c->r->esc.approval = NULL;
}

/* A human (or the clock) decided the held call of c (an ag_approval_ops). */
static void approval_decided(void *owner, uint64_t id, bool allow, const char *by,
			     const char *why)
{
	struct mcp_conn *c = owner;
	struct ag_decide_ctx x = mcp_decide_ctx(c);
	char reason[320];
	json_t *answer, *meta;

	c->r->esc.approval = NULL;
	if (allow && ag_decide_approved(&x, c->r->esc.tool)) {
		allow = false;
		why = "the approval could not be recorded in the session";
	}
	mcp_audit_approval(c, id, allow, by, why);
	if (allow) {
		c->state = MC_REQUEST;
		if (!mcp_audit_hold(c))
			mcp_request_forward(c);
		return;
	}
	c->state = MC_REQUEST;
	snprintf(reason, sizeof(reason), "%s (%s)", c->r->esc.reason, why);
	meta = json_pack("{s:s,s:s}", "decision", "deny", "rule", "approval");
	answer = ag_mcp_tool_denied(c->r->call.id, reason, meta, c->r->call.v2026);
	json_decref(meta);
	json_decref(c->r->call.extra);
	c->r->call.extra = answer ? json_pack("[o]", answer) : NULL;
	c->r->call.extra_batch = false;
	if (!c->r->call.extra || answer_locally(c)) {
		mcp_conn_close(c, "error", "could not answer the agent");
		return;
	}
	mcp_req_next(c);
}

/* What agentgatectl approvals shows of c's held call (an ag_approval_ops). */
static json_t *approval_describe(void *owner, uint64_t id, uint64_t waited_ms,
				 uint32_t timeout_ms)
{
	struct mcp_conn *c = owner;

	return json_pack("{s:I,s:s,s:s,s:s,s:s,s:O?,s:s?,s:I,s:I}", "id", (json_int_t)id, "agent",
			 c->agent, "server", c->srv->name, "tool", c->r->esc.tool, "reason",
			 c->r->esc.reason, "request_id", c->r->call.id, "session",
			 c->r->call.session_id[0] ? c->r->call.session_id : NULL, "waited_ms",
			 (json_int_t)waited_ms, "timeout_ms", (json_int_t)timeout_ms);
}

static const struct ag_approval_ops approval_ops = {
	.decided = approval_decided,
	.describe = approval_describe,
};

static void approval_hold(struct mcp_conn *c)
{
	struct ag_approval *a = ag_approval_hold(&mcp_of(c)->approvals, &approval_ops, c);

	if (!a) {
		mcp_refuse(c, 503, AG_JSONRPC_INTERNAL_ERROR, "the gateway cannot hold this call");
		return;
	}
	c->r->esc.approval = a;
	c->state = MC_APPROVAL;
	ag_log(AG_LOG_INFO, "approval_wait", "id=%llu agent=%s server=%s tool=%s",
	       (unsigned long long)ag_approval_id(a), c->agent, c->srv->name, c->r->esc.tool);
}

/* A POST body: decide each message, then forward, answer, or both. */
void mcp_request_decide(struct mcp_conn *c)
{
	const struct ag_http_msg *m = &c->r->req.msg;
	const struct ag_http_header *mh = ag_http_find(m, "Mcp-Method", NULL);
	const struct ag_http_header *nh = ag_http_find(m, "Mcp-Name", NULL);
	struct ag_jsonrpc_body b;
	struct ag_err err;
	json_t *keep = NULL;
	int fwd = -ENOMEM;

	if (ag_jsonrpc_parse(c->r->call.body.p, c->r->call.body.len, NULL, &b, &err)) {
		mcp_refuse(c, 400, AG_JSONRPC_PARSE_ERROR, "Parse error: the body is not one JSON value");
		return;
	}
	/* Fail closed: two answers with one id could not be told apart. */
	if (!ag_mcp_ids_unique(&b)) {
		ag_jsonrpc_body_free(&b);
		mcp_refuse_request(c, 400, AG_JSONRPC_INVALID_REQUEST,
				   "two messages of the body share a request id");
		return;
	}
	/* Policy is decided on the body; the routing headers must say the same. */
	if (ag_mcp_check_headers(&b, mh ? mh->value : NULL, mh ? mh->value_len : 0,
				 nh ? nh->value : NULL, nh ? nh->value_len : 0, c->r->call.v2026,
				 &err)) {
		ag_jsonrpc_body_free(&b);
		mcp_refuse(c, 400, AG_MCP_HEADER_MISMATCH, err.msg);
		return;
	}
	c->r->call.extra_batch = b.batch;
	if (!(keep = json_array()) || (fwd = decide_body(c, &b, &keep)) < 0) {
		json_decref(keep);
		ag_jsonrpc_body_free(&b);
		if (fwd == -EEXIST)
			mcp_refuse_request(c, 400, AG_JSONRPC_INVALID_REQUEST,
					   "a request with this id still awaits its answer");
		else
			mcp_conn_close(c, "error",
				       fwd == -ENOSPC ? "too many answers owed to the session"
						      : "out of memory");
		return;
	}
	if (fwd) {
		/* What was decided is what is sent: the allowed messages as the
		 * gateway parsed them, never the agent's bytes. */
		c->r->call.fwd_body = ag_mcp_body_dump(keep, b.batch, &c->r->call.fwd_len);
		if (!c->r->call.fwd_body) {
			json_decref(keep);
			ag_jsonrpc_body_free(&b);
			mcp_conn_close(c, "error", "out of memory");
			return;
		}
	}
	json_decref(keep);
	ag_jsonrpc_body_free(&b);
	if (c->r->audit.lost) {
		mcp_refuse(c, 503, AG_JSONRPC_INTERNAL_ERROR,
			   "the gateway cannot record this call in its audit log: refused");
		return;
	}
	if (c->r->esc.waiting) {
		approval_hold(c);
		return;
	}
	if (fwd && mcp_audit_hold(c))
		return;
	if (fwd) {
		mcp_request_forward(c);
		return;
	}
	if (answer_locally(c)) {
		mcp_conn_close(c, "error", "could not answer the agent");
		return;
	}
	mcp_req_next(c);
}
