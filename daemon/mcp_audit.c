// SPDX-License-Identifier: GPL-2.0
/*
 * The audit records of the MCP path (mcp_int.h), one function each, so
 * their JSON shapes (docs/audit.md) live in one place: connect, decision,
 * result (and the credential refusal's result), approval,
 * credential_reload.  Decision and result, one each per call, are given
 * as members (lib/audit.h) and serialised with no jansson tree.
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

/* The record's "agent" member, over a. */
static struct ag_audit_member agent_member(struct mcp_conn *c, struct ag_audit_agent *a)
{
	ag_inbound_audit_agent_members(c, a);
	return ag_audit_agent_member(a);
}

/*
 * Written straight from the call's state (ag_daemon_audit_members): no
 * tree, and the arguments are read (hashed, by default) where the request
 * holds them, with no copy.
 */
void mcp_audit_decision(struct mcp_conn *c, const struct ag_jsonrpc_msg *m,
			const struct ag_decision *dec)
{
	const char *flags[AG_ANOMALY__COUNT];
	struct ag_audit_member f[AG_AUDIT_MEMBERS_MAX];
	struct ag_audit_agent agent;
	size_t n = 0, nflags;
	uint64_t seq;

	f[n++] = agent_member(c, &agent);
	f[n++] = AG_AM_S("server", c->srv->name);
	/* A NULL string or value is null, as the records always had it. */
	f[n++] = AG_AM_S("method", m->method);
	f[n++] = AG_AM_J("id", m->id);
	f[n++] = AG_AM_S("decision", dec->kind == AG_OUTCOME_ALLOW	? "allow"
				     : dec->kind == AG_OUTCOME_ESCALATE ? "ask"
									: "deny");
	f[n++] = AG_AM_B("hidden", dec->kind == AG_OUTCOME_HIDDEN);
	f[n++] = AG_AM_S("rule", dec->rule);
	f[n++] = AG_AM_S("reason", dec->reason[0] ? dec->reason : NULL);
	/* Arguments may carry secrets: by default the log proves what was sent
	 * (each value's SHA-256) without holding it (audit_args). */
	f[n++] = (struct ag_audit_member){
		.key = "args", .type = AG_AM_JSON, .j = m->arguments, .redact = c->srv->audit_args
	};
	f[n++] = AG_AM_S("session", c->r->call.session_id[0] ? c->r->call.session_id : NULL);
	if (m->name)
		f[n++] = AG_AM_S(target_key(m->mcp), m->name);
	if (dec->policies[0])
		f[n++] = (struct ag_audit_member){ .key = "policies",
						   .type = AG_AM_CSV,
						   .s = dec->policies };
	/* What context.anomaly was: policy simulate replays it too. */
	if ((nflags = ag_anomaly_flag_names(dec->anomaly, flags)))
		f[n++] = (struct ag_audit_member){
			.key = "anomaly", .type = AG_AM_STRV, .strv = flags, .n = nflags
		};
	if (dec->policy_commit[0])
		f[n++] = AG_AM_S("policy_commit", dec->policy_commit);
	/* What context.operator was: policy simulate replays it. */
	if (c->ac && c->ac->operator_name[0])
		f[n++] = AG_AM_S("operator", c->ac->operator_name);
	/* The call waits for this record (MC_AUDIT_WAIT); one that cannot be
	 * written refuses the request: nothing governed goes unrecorded (a
	 * record that cannot be redacted is lost, never written in the clear). */
	if (ag_daemon_audit_members(c->l->d, "decision", f, n, &seq))
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
	struct ag_audit_agent agent;
	const struct ag_audit_member f[] = {
		agent_member(c, &agent),
		AG_AM_S("dst", dst),
		AG_AM_S("server", c->srv->name),
		AG_AM_S("result", c->result),
		AG_AM_I("bytes_up", (long long)c->a.bytes_in),
		AG_AM_I("bytes_down", (long long)c->a.bytes_out),
		AG_AM_I("latency_us", (long long)(ms * 1000)),
		AG_AM_I("requests", (int)c->requests),
		AG_AM_S("error", c->error[0] ? c->error : NULL),
	};

	ag_daemon_audit_members(c->l->d, "connect", f, sizeof(f) / sizeof(f[0]), NULL);
}

/* A tools/call result's outcome (never its content); tool NULL: one the
 * gateway cannot pair with a call it forwarded. */
void mcp_audit_result(struct mcp_conn *c, json_t *msg, const char *tool,
		      const struct ag_redact_report *rep)
{
	const json_t *result = json_object_get(msg, "result"), *id = json_object_get(msg, "id");
	struct ag_audit_member f[AG_AUDIT_MEMBERS_MAX];
	json_t *redactions = NULL;
	struct ag_audit_agent agent;
	size_t n = 0;

	f[n++] = agent_member(c, &agent);
	f[n++] = AG_AM_S("server", c->srv->name);
	/* A NULL string or value is null, as the records always had it. */
	f[n++] = AG_AM_S(c->srv->http ? "route" : "tool", tool);
	f[n++] = AG_AM_J("id", id);
	f[n++] = AG_AM_I("upstream_status", c->r->reply.status);
	f[n++] = AG_AM_B("is_error", json_is_true(json_object_get(result, "isError")));
	f[n++] = AG_AM_J("error", json_object_get(msg, "error"));
	/* A legacy session's results come on its stream, opened long before. */
	if (!c->legacy.stream && tool)
		f[n++] = AG_AM_I("latency_us", (long long)((ag_now_ns() - c->r->call.ns) / 1000));
	f[n++] = AG_AM_S("session", mcp_policy_session(c));
	/* Rare (output rules acted): a tree of its own. */
	if ((rep->total || rep->refused_by) && (redactions = redactions_json(rep)))
		f[n++] = AG_AM_J("redactions", redactions);
	if (!tool)
		f[n++] = AG_AM_B("unattributed", true);
	ag_daemon_audit_members(c->l->d, "result", f, n, NULL);
	json_decref(redactions);
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
