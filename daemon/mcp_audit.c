// SPDX-License-Identifier: GPL-2.0
/*
 * The audit records of the MCP path (mcp_int.h), one function each, so
 * their JSON shapes (docs/audit.md) live in one place: connect, decision,
 * result (and the credential refusal's result), approval,
 * credential_reload.
 */
#include <string.h>

#include "audit.h"
#include "inbound.h"
#include "mcp_int.h"
#include "trail.h"

/*
 * The field that names what was asked for: a tool, a resource, a prompt;
 * "tool" for the methods no target governs, as records have always had it.
 */
static const char *target_key(enum ag_mcp_method m)
{
	enum ag_policy_target t = AG_TARGET_TOOL;

	ag_policy_target_of_method(m, &t);
	return ag_policy_target_name(t);
}

/* "a,b" (struct ag_decision) -> ["a","b"], as docs/audit.md has it. */
static json_t *policy_ids(const char *list)
{
	json_t *ids = json_array();

	for (const char *p = list; ids && *p;) {
		size_t n = strcspn(p, ",");

		json_array_append_new(ids, json_stringn(p, n));
		p += n + (p[n] == ',');
	}
	return ids;
}

void mcp_audit_decision(struct mcp_conn *c, const struct ag_jsonrpc_msg *m,
			const struct ag_decision *dec)
{
	/* A copy of the arguments: redaction rewrites the record's in place,
	 * and the parsed ones are what is forwarded. */
	json_t *rec = json_pack("{s:o,s:s,s:s?,s:O?,s:s,s:b,s:s,s:s?,s:o?,s:s?}", "agent",
				ag_inbound_audit_agent(c), "server", c->srv->name, "method",
				m->method, "id", m->id, "decision",
				dec->kind == AG_OUTCOME_ALLOW	   ? "allow"
				: dec->kind == AG_OUTCOME_ESCALATE ? "ask"
								   : "deny",
				"hidden", dec->kind == AG_OUTCOME_HIDDEN, "rule", dec->rule,
				"reason", dec->reason[0] ? dec->reason : NULL, "args",
				m->arguments ? json_deep_copy(m->arguments) : NULL, "session",
				c->r->call.session_id[0] ? c->r->call.session_id : NULL);
	struct ag_err err;
	json_t *flags;
	uint64_t seq;

	if (rec && m->name)
		json_object_set_new(rec, target_key(m->mcp), json_string(m->name));
	if (rec && dec->policies[0])
		json_object_set_new(rec, "policies", policy_ids(dec->policies));
	/* What context.anomaly was: policy simulate replays it too. */
	if (rec && (flags = ag_anomaly_flags_json(dec->anomaly)))
		json_object_set_new(rec, "anomaly", flags);
	if (rec && dec->policy_commit[0])
		json_object_set_new(rec, "policy_commit", json_string(dec->policy_commit));
	/* What context.operator was: policy simulate replays it. */
	if (rec && c->ac && c->ac->operator_name[0])
		json_object_set_new(rec, "operator", json_string(c->ac->operator_name));
	/* Arguments may carry secrets: by default the log proves what was sent
	 * (each value's SHA-256) without holding it (audit_args). */
	if (rec && ag_audit_redact(rec, "args", c->srv->audit_args, &err)) {
		json_decref(rec);
		rec = NULL; /* counted as a lost record, never written in the clear */
	}
	/* The call waits for this record (MC_AUDIT_WAIT); one that cannot be
	 * written refuses the request: nothing governed goes unrecorded. */
	if (ag_daemon_audit_seq(c->l->d, "decision", rec, &seq))
		c->r->audit.lost = true;
	else
		c->r->audit.seq = seq + 1;
}

/* Where output rules acted, for the result record: rules and places, never values. */
static json_t *redactions_json(const struct ag_redact_report *rep)
{
	json_t *hits = json_array();

	for (unsigned int i = 0; hits && i < rep->n_hits; i++) {
		const struct ag_redact_hit *h = &rep->hits[i];

		json_array_append_new(hits, json_pack("{s:s,s:s,s:I,s:I}", "rule", h->rule, "path",
						      h->path, "offset", (json_int_t)h->offset,
						      "len", (json_int_t)h->len));
	}
	return json_pack("{s:o,s:I,s:s?}", "hits", hits, "total", (json_int_t)rep->total,
			 "refused_by", rep->refused_by);
}

void mcp_audit_approval(struct mcp_conn *c, uint64_t id, bool allow, const char *by,
			const char *why)
{
	ag_daemon_audit(c->l->d, "approval",
			json_pack("{s:o,s:s,s:s,s:O?,s:I,s:s,s:s,s:s?,s:s?}", "agent",
				  ag_inbound_audit_agent(c), "server", c->srv->name, "tool",
				  c->r->esc.tool, "id", c->r->call.id, "approval", (json_int_t)id,
				  "decision", allow ? "allow" : "deny", "by", by, "reason", why,
				  "session",
				  c->r->call.session_id[0] ? c->r->call.session_id : NULL));
}

/* The connection's record, when it is released. */
void mcp_audit_connect(struct mcp_conn *c, const char *dst, double ms)
{
	ag_daemon_audit(c->l->d, "connect",
			json_pack("{s:o,s:s,s:s,s:s,s:I,s:I,s:I,s:i,s:s?}", "agent",
				  ag_inbound_audit_agent(c), "dst", dst,
				  "server", c->srv->name, "result", c->result, "bytes_up",
				  (json_int_t)c->a.bytes_in, "bytes_down",
				  (json_int_t)c->a.bytes_out, "latency_us", (json_int_t)(ms * 1000),
				  "requests", (int)c->requests, "error",
				  c->error[0] ? c->error : NULL));
}

/* A tools/call result's outcome (never its content); tool NULL: one the
 * gateway cannot pair with a call it forwarded. */
void mcp_audit_result(struct mcp_conn *c, json_t *msg, const char *tool,
		      const struct ag_redact_report *rep)
{
	json_t *result = json_object_get(msg, "result"), *latency;

	/* A legacy session's results come on its stream, opened long before. */
	latency = c->legacy.stream || !tool
		      ? NULL
		      : json_integer((json_int_t)((ag_now_ns() - c->r->call.ns) / 1000));
	ag_daemon_audit(c->l->d, "result",
			json_pack("{s:o,s:s,s:s?,s:O?,s:i,s:b,s:O?,s:o*,s:s?,s:o*,s:o*}", "agent",
				  ag_inbound_audit_agent(c), "server", c->srv->name,
				  c->srv->http ? "route" : "tool", tool, "id",
				  json_object_get(msg, "id"), "upstream_status", c->r->reply.status,
				  "is_error", json_is_true(json_object_get(result, "isError")),
				  "error", json_object_get(msg, "error"), "latency_us", latency,
				  "session", mcp_policy_session(c), "redactions",
				  rep->total || rep->refused_by ? redactions_json(rep) : NULL,
				  "unattributed", tool ? NULL : json_true()));
}

/* The upstream refused the gateway's credential: the result of the call. */
void mcp_audit_cred_refused(struct mcp_conn *c)
{
	ag_daemon_audit(c->l->d, "result",
			json_pack("{s:o,s:s,s:s?,s:i,s:b,s:{s:s},s:s?}", "agent",
				  ag_inbound_audit_agent(c), "server", c->srv->name, "tool",
				  c->r->call.tool[0] ? c->r->call.tool : NULL, "upstream_status",
				  c->r->reply.status, "is_error", 1, "error", "message",
				  "the tool server refused the gateway's credential", "session",
				  c->r->call.session_id[0] ? c->r->call.session_id : NULL));
}

/* The tool servers' secret files were read again (ret: ag_creds_reload's). */
void mcp_audit_cred_reload(struct ag_loop *l, int ret, const char *trigger,
			   const struct ag_err *err)
{
	ag_daemon_audit(l->d, "credential_reload",
			json_pack("{s:b,s:s,s:s?,s:i}", "ok", ret >= 0, "trigger", trigger, "error",
				  ret < 0 ? err->msg : NULL, "changed", ret < 0 ? 0 : ret));
}
