// SPDX-License-Identifier: GPL-2.0
/*
 * Governed MCP requests as Cedar requests; see policy_request.h.  Moved
 * out of daemon/decide.c so that the daemon and `policy simulate` cannot
 * drift apart: the reasons here are the ones agents and audit records see.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "agentgate.h" /* AG_NAME_LEN */
#include "policy_request.h"

const char *ag_policy_target_action(enum ag_policy_target t)
{
	switch (t) {
	case AG_TARGET_RESOURCE:
		return "read";
	case AG_TARGET_PROMPT:
		return "get_prompt";
	default:
		return "call";
	}
}

static const char *target_type(enum ag_policy_target t)
{
	switch (t) {
	case AG_TARGET_RESOURCE:
		return "Resource";
	case AG_TARGET_PROMPT:
		return "Prompt";
	default:
		return "Tool";
	}
}

static const char *target_word(enum ag_policy_target t)
{
	switch (t) {
	case AG_TARGET_RESOURCE:
		return "resource";
	case AG_TARGET_PROMPT:
		return "prompt";
	default:
		return "tool";
	}
}

/*
 * context: args, operator, session {id, calls, approved}, time {hour,
 * weekday, epoch} (UTC), request {host, protocol_version}.  args is
 * borrowed.
 */
json_t *ag_policy_call_context(const struct ag_policy_call *c, json_t *args)
{
	time_t now = (time_t)c->now;
	json_t *ctx;
	struct tm tm;

	if (!gmtime_r(&now, &tm))
		memset(&tm, 0, sizeof(tm));
	ctx = json_pack("{s:{s:i,s:i,s:I},s:{s:s,s:s}}", "time", "hour", tm.tm_hour, "weekday",
			tm.tm_wday, "epoch", (json_int_t)c->now, "request", "host",
			c->host ? c->host : "", "protocol_version",
			c->protocol_version ? c->protocol_version : "");
	if (!ctx)
		return NULL;
	if (args && json_object_set(ctx, "args", args))
		goto oom;
	if (c->operator_name && c->operator_name[0] &&
	    json_object_set_new(
		ctx, "operator",
		json_pack("{s:{s:s,s:s}}", "__entity", "type", "User", "id", c->operator_name)))
		goto oom;
	if (c->session_id && c->session_id[0] &&
	    json_object_set_new(ctx, "session",
				json_pack("{s:s,s:o,s:o}", "id", c->session_id, "calls",
					  c->calls ? json_incref(c->calls) : json_object(),
					  "approved",
					  c->approved ? json_incref(c->approved) : json_array())))
		goto oom;
	return ctx;
oom:
	json_decref(ctx);
	return NULL;
}

/* Appends the policy ids in list to out ("a,b"), cut short when full. */
static void ids_fmt(char *out, size_t cap, const char *const *list, size_t n)
{
	size_t len = strlen(out);

	for (size_t i = 0; i < n && len < cap; i++)
		len += snprintf(out + len, cap - len, "%s%s", len ? "," : "", list[i]);
}

enum ag_policy_decision ag_policy_call_eval(const struct ag_policy_set *set,
					    const struct ag_entities *ents,
					    const struct ag_policy_call *c, const char *action,
					    json_t *args, struct ag_policy_result *res,
					    struct ag_policy_verdict *out)
{
	/* The daemon's bound since the first release: a server name and 1 KiB. */
	char action_id[32], resource[AG_NAME_LEN + 1024];
	struct ag_entity_ref parent = { "Server", c->server };
	struct ag_policy_request req = {
		.principal = { "Agent", c->agent },
		.action = { "Action", action_id },
		.resource = { target_type(c->target), resource },
	};
	struct ag_policy_error perr = { 0 };
	int ret;

	out->policies[0] = '\0';
	snprintf(action_id, sizeof(action_id), "%s", action);
	if ((size_t)snprintf(resource, sizeof(resource), "%s/%s", c->server, c->name) >=
	    sizeof(resource)) {
		snprintf(out->reason, sizeof(out->reason), "name too long for a policy request");
		return AG_DENY;
	}
	if (!(req.context = ag_policy_call_context(c, args))) {
		snprintf(out->reason, sizeof(out->reason), "policy request: out of memory");
		return AG_DENY;
	}
	/* Tools are learnt from the server, not declared: each is in its server. */
	ret = ag_policy_evaluate_in(set, ents, &req, &parent, 1, res, NULL, &perr);
	json_decref(req.context);
	if (ret) {
		if (c->report)
			c->report(c->report_arg, action, resource, NULL, perr.msg);
		snprintf(out->reason, sizeof(out->reason), "request not decidable: %.200s",
			 perr.msg);
		return AG_DENY;
	}
	if (c->report)
		c->report(c->report_arg, action, resource, res, NULL);
	ids_fmt(out->policies, sizeof(out->policies), res->determining, res->n_determining);
	return res->decision;
}

/* @reason("...") of the first determining forbid, for the agent's message. */
static const char *forbid_reason(const struct ag_policy_set *set,
				 const struct ag_policy_result *res)
{
	if (!res->n_determining)
		return NULL;
	for (size_t i = 0; i < ag_policy_count(set); i++)
		if (ag_policy_id(set, i) == res->determining[0] ||
		    !strcmp(ag_policy_id(set, i), res->determining[0]))
			return ag_policy_annotation(set, i, "reason");
	return NULL;
}

void ag_policy_call_decide(const struct ag_policy_set *set, const struct ag_entities *ents,
			   const struct ag_policy_call *c, struct ag_policy_result *res,
			   struct ag_policy_verdict *out)
{
	const char *action = ag_policy_target_action(c->target);
	bool tool = c->target == AG_TARGET_TOOL;
	enum ag_policy_decision pd;
	const char *why;

	out->reason[0] = '\0';
	out->policies[0] = '\0';
	if (tool) {
		/* A tool the agent may not list does not exist for it. */
		pd = ag_policy_call_eval(set, ents, c, "list", NULL, res, out);
		if (pd != AG_ALLOW) {
			out->kind = AG_OUTCOME_HIDDEN;
			if (!out->reason[0])
				snprintf(out->reason, sizeof(out->reason),
					 "tool %s/%s is not visible to agent %s", c->server,
					 c->name, c->agent);
			return;
		}
		if (c->args && !json_is_object(c->args)) {
			out->kind = AG_OUTCOME_DENY;
			snprintf(out->reason, sizeof(out->reason), "arguments are not an object");
			return;
		}
	}
	if (tool && !c->args) {
		/* No arguments are an empty record: `context.args has x` is false. */
		json_t *none = json_object();

		pd = none ? ag_policy_call_eval(set, ents, c, action, none, res, out) : AG_DENY;
		if (!none)
			snprintf(out->reason, sizeof(out->reason), "policy request: out of memory");
		json_decref(none);
	} else {
		pd = ag_policy_call_eval(set, ents, c, action, tool ? c->args : NULL, res, out);
	}
	/* Resources and prompts have no isError result: a refusal hides them. */
	out->kind = tool ? AG_OUTCOME_DENY : AG_OUTCOME_HIDDEN;
	switch (pd) {
	case AG_ALLOW:
		out->kind = AG_OUTCOME_ALLOW;
		return;
	case AG_ESCALATE:
		/* Resources and prompts cannot be held: only calls are escalated. */
		if (tool)
			out->kind = AG_OUTCOME_ESCALATE;
		snprintf(out->reason, sizeof(out->reason), "needs approval: %s",
			 res->escalate_reason ? res->escalate_reason : "");
		return;
	case AG_DENY:
		if (out->reason[0])
			return;
		if (!res->n_determining) {
			snprintf(out->reason, sizeof(out->reason),
				 "no policy permits %s of %s %s/%s", action, target_word(c->target),
				 c->server, c->name);
			return;
		}
		why = forbid_reason(set, res);
		if (why && *why)
			snprintf(out->reason, sizeof(out->reason), "%s", why);
		else
			snprintf(out->reason, sizeof(out->reason), "forbidden by %.200s",
				 out->policies);
		return;
	}
}
