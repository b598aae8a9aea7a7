// SPDX-License-Identifier: GPL-2.0
/*
 * Governed MCP requests as Cedar requests; see policy_request.h.  Moved
 * out of daemon/decide.c so that the daemon and `policy simulate` cannot
 * drift apart: the reasons here are the ones agents and audit records see.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agentgate.h" /* AG_NAME_LEN */
#include "policy_request.h"

/* Each governed target: the MCP method that asks for it, its word (the
 * audit record's key of its name), its Cedar entity type and action. */
static const struct {
	enum ag_mcp_method mcp;
	const char *method, *word, *type, *action;
} targets[] = {
	[AG_TARGET_TOOL] = { AG_MCP_TOOLS_CALL, "tools/call", "tool", "Tool", "call" },
	[AG_TARGET_RESOURCE] = { AG_MCP_RESOURCES_READ, "resources/read", "resource", "Resource",
				 "read" },
	[AG_TARGET_PROMPT] = { AG_MCP_PROMPTS_GET, "prompts/get", "prompt", "Prompt",
			       "get_prompt" },
	[AG_TARGET_ROUTE] = { AG_MCP_HTTP, "http", "route", "Route", "http" },
};

const char *ag_policy_target_action(enum ag_policy_target t)
{
	return (size_t)t < AG_ARRAY_SIZE(targets) ? targets[t].action : "call";
}

const char *ag_policy_target_name(enum ag_policy_target t)
{
	return (size_t)t < AG_ARRAY_SIZE(targets) ? targets[t].word : "tool";
}

static const char *target_type(enum ag_policy_target t)
{
	return (size_t)t < AG_ARRAY_SIZE(targets) ? targets[t].type : "Tool";
}

int ag_policy_target_of_method(enum ag_mcp_method m, enum ag_policy_target *t)
{
	for (size_t i = 0; i < AG_ARRAY_SIZE(targets); i++)
		if (targets[i].mcp == m) {
			*t = (enum ag_policy_target)i;
			return 0;
		}
	return -1;
}

int ag_policy_target_of_method_name(const char *method, enum ag_policy_target *t)
{
	for (size_t i = 0; method && i < AG_ARRAY_SIZE(targets); i++)
		if (!strcmp(targets[i].method, method)) {
			*t = (enum ag_policy_target)i;
			return 0;
		}
	return -1;
}

const char *ag_policy_outcome_name(enum ag_policy_outcome k)
{
	switch (k) {
	case AG_OUTCOME_ALLOW:
		return "allow";
	case AG_OUTCOME_HIDDEN:
		return "deny_unknown";
	case AG_OUTCOME_ESCALATE:
		return "ask";
	default:
		return "deny";
	}
}

/* The tool's annotations that policies see, as agentgate-policy(5) lists them. */
static int put_annotations(json_t *attrs, const json_t *def)
{
	static const char *const hints[] = { AG_POLICY_TOOL_HINTS };
	json_t *ann = json_object_get(def, "annotations"), *title, *v;

	for (size_t i = 0; i < sizeof(hints) / sizeof(hints[0]); i++)
		if (json_is_boolean(v = json_object_get(ann, hints[i])) &&
		    json_object_set(attrs, hints[i], v))
			return -1;
	/* MCP displays the tool's title before annotations.title. */
	title = json_object_get(def, "title");
	if (!json_is_string(title))
		title = json_object_get(ann, "title");
	return json_is_string(title) ? json_object_set(attrs, "title", title) : 0;
}

json_t *ag_policy_target_entity(enum ag_policy_target t, const char *server, const char *name,
				const json_t *def)
{
	json_t *ent = json_pack("{s:{s:s,s:s++},s:{s:s},s:[{s:s,s:s}]}", "uid", "type",
				target_type(t), "id", server, "/", name, "attrs", "server", server,
				"parents", "type", "Server", "id", server);

	if (ent && t == AG_TARGET_TOOL && put_annotations(json_object_get(ent, "attrs"), def)) {
		json_decref(ent);
		return NULL;
	}
	return ent;
}

int ag_policy_target_of(const struct ag_entity_ref *ref, enum ag_policy_target *t, char *server,
			size_t len, const char **name)
{
	static const enum ag_policy_target all[] = { AG_TARGET_TOOL, AG_TARGET_RESOURCE,
						     AG_TARGET_PROMPT };
	const char *slash = strchr(ref->id, '/');

	if (!slash || (size_t)(slash - ref->id) >= len)
		return -1;
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (strcmp(ref->type, target_type(all[i])))
			continue;
		*t = all[i];
		snprintf(server, len, "%.*s", (int)(slash - ref->id), ref->id);
		*name = slash + 1;
		return 0;
	}
	return -1;
}

/* context.anomaly: a boolean per flag, every one always present. */
static json_t *anomaly_context(const struct ag_anomaly_verdict *v)
{
	json_t *o = json_object();

	for (int f = 0; o && f < AG_ANOMALY__COUNT; f++)
		if (json_object_set_new(o, ag_anomaly_flag_name(f), json_boolean(v && v->on[f]))) {
			json_decref(o);
			return NULL;
		}
	return o;
}

/*
 * context: args, operator, session {id, calls, approved}, delegation (a
 * set of agent names, empty for a root agent), time {hour, weekday,
 * epoch} (UTC), request {host, protocol_version}, anomaly {first_tool,
 * first_destination, rate, denials}.  args is borrowed.
 */
json_t *ag_policy_call_context(const struct ag_policy_call *c, json_t *args)
{
	time_t now = (time_t)c->now;
	json_t *ctx, *chain;
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
	if (!(chain = json_array()) || json_object_set_new(ctx, "delegation", chain) ||
	    json_object_set_new(ctx, "anomaly", anomaly_context(c->anomaly)))
		goto oom;
	for (size_t i = 0; i < c->n_delegation; i++)
		if (json_array_append_new(chain, json_string(c->delegation[i])))
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

static bool is_agent(json_t *ent, const char *id)
{
	json_t *uid = json_object_get(ent, "uid");
	const char *type = json_string_value(json_object_get(uid, "type"));
	const char *eid = json_string_value(json_object_get(uid, "id"));

	return type && eid && !strcmp(type, "Agent") && !strcmp(eid, id);
}

/* Agent::child's entity in arr, added when absent; gets parent Agent::parent. */
static int add_parent(json_t *arr, const char *child, const char *parent)
{
	json_t *ent = NULL, *e, *parents;
	size_t i;

	json_array_foreach(arr, i, e) if (is_agent(e, child)) ent = e;
	if (!ent) {
		ent = json_pack("{s:{s:s,s:s},s:{},s:[]}", "uid", "type", "Agent", "id", child,
				"attrs", "parents");
		if (!ent || json_array_append_new(arr, ent))
			return -1;
	}
	parents = json_object_get(ent, "parents");
	if (!parents) {
		if (json_object_set_new(ent, "parents", parents = json_array()))
			return -1;
	}
	/* A malformed entity is the entity parser's to report. */
	if (!json_is_array(parents))
		return 0;
	return json_array_append_new(parents,
				     json_pack("{s:s,s:s}", "type", "Agent", "id", parent));
}

json_t *ag_policy_delegation_entities(json_t *base, const char *const *chain, size_t n)
{
	json_t *arr = base ? json_deep_copy(base) : json_array();

	for (size_t i = 1; arr && i < n; i++)
		if (add_parent(arr, chain[i], chain[i - 1])) {
			json_decref(arr);
			return NULL;
		}
	return arr;
}

/* Appends the policy ids in list to out ("a,b"), cut short when full. */
static void ids_fmt(char *out, size_t cap, const char *const *list, size_t n)
{
	size_t len = strlen(out);

	for (size_t i = 0; i < n && len < cap; i++)
		len += snprintf(out + len, cap - len, "%s%s", len ? "," : "", list[i]);
}

/* One engine request for c with ctx as its context; see ag_policy_call_eval.
 * status: as for ag_policy_evaluate. */
static enum ag_policy_decision eval_ctx(const struct ag_policy_set *set,
					const struct ag_entities *ents,
					const struct ag_policy_call *c, const char *action,
					json_t *ctx, enum ag_policy_status *status,
					struct ag_policy_result *res, struct ag_policy_verdict *out)
{
	/* The daemon's bound since the first release: a server name and 1 KiB. */
	char action_id[32], resource[AG_NAME_LEN + 1024];
	struct ag_policy_request req = {
		.principal = { c->principal_type ? c->principal_type : "Agent", c->agent },
		.action = { "Action", action_id },
		.resource = { target_type(c->target), resource },
		.context = ctx,
	};
	struct ag_policy_error perr = { 0 };
	json_t *ent;
	int ret;

	out->policies[0] = '\0';
	snprintf(action_id, sizeof(action_id), "%s", action);
	if ((size_t)snprintf(resource, sizeof(resource), "%s/%s", c->server, c->name) >=
	    sizeof(resource)) {
		snprintf(out->reason, sizeof(out->reason), "name too long for a policy request");
		return AG_DENY;
	}
	/* Tools are learnt from the server, not declared: the gateway says
	 * what they are (ag_policy_target_entity). */
	ent = ctx ? ag_policy_target_entity(c->target, c->server, c->name, c->definition) : NULL;
	if (!ent) {
		snprintf(out->reason, sizeof(out->reason), "policy request: out of memory");
		return AG_DENY;
	}
	ret = ag_policy_evaluate_with(set, ents, &req, ent, res, status, &perr);
	json_decref(ent);
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

enum ag_policy_decision ag_policy_call_eval(const struct ag_policy_set *set,
					    const struct ag_entities *ents,
					    const struct ag_policy_call *c, const char *action,
					    json_t *args, struct ag_policy_result *res,
					    struct ag_policy_verdict *out)
{
	json_t *ctx = ag_policy_call_context(c, args);
	enum ag_policy_decision d = eval_ctx(set, ents, c, action, ctx, NULL, res, out);

	json_decref(ctx);
	return d;
}

bool ag_policy_call_reads_args(const struct ag_policy_set *set, const struct ag_entities *ents,
			       const struct ag_policy_call *c, struct ag_policy_result *res)
{
	enum ag_policy_status *st = calloc(ag_policy_count(set) + 1, sizeof(*st));
	struct ag_policy_call quiet = *c;
	struct ag_policy_verdict v = { 0 };
	json_t *ctx = json_object();
	bool reads = true;

	/* Scopes do not look at the context: an empty one says which match. */
	quiet.report = NULL;
	if (st && ctx) {
		eval_ctx(set, ents, &quiet, ag_policy_target_action(c->target), ctx, st, res, &v);
		reads = v.reason[0] != '\0'; /* not evaluated: assume it does */
		for (size_t i = 0; !reads && i < ag_policy_count(set); i++)
			reads = st[i] != AG_POLICY_SCOPE_MISMATCH &&
				ag_policy_reads_context_at(set, i, "args");
	}
	json_decref(ctx);
	free(st);
	return reads;
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
	/* One context for both requests: only context.args differs. */
	json_t *ctx = ag_policy_call_context(c, NULL), *args = c->args;
	enum ag_policy_decision pd;
	const char *why;

	out->reason[0] = '\0';
	out->policies[0] = '\0';
	/* A route's request: its method, path, params, query, headers and
	 * body are the context's own members, not context.args. */
	if (c->target == AG_TARGET_ROUTE && ctx && json_object_update(ctx, args)) {
		json_decref(ctx);
		ctx = NULL;
	}
	if (tool) {
		/* A tool the agent may not list does not exist for it. */
		pd = eval_ctx(set, ents, c, "list", ctx, NULL, res, out);
		if (pd != AG_ALLOW) {
			out->kind = AG_OUTCOME_HIDDEN;
			if (!out->reason[0])
				snprintf(out->reason, sizeof(out->reason),
					 "tool %s/%s is not visible to agent %s", c->server,
					 c->name, c->agent);
			json_decref(ctx);
			return;
		}
		if (args && !json_is_object(args)) {
			out->kind = AG_OUTCOME_DENY;
			snprintf(out->reason, sizeof(out->reason), "arguments are not an object");
			json_decref(ctx);
			return;
		}
		/* No arguments are an empty record: `context.args has x` is false. */
		if (ctx && (args ? json_object_set(ctx, "args", args)
				 : json_object_set_new(ctx, "args", json_object()))) {
			json_decref(ctx);
			ctx = NULL;
		}
	}
	pd = eval_ctx(set, ents, c, action, ctx, NULL, res, out);
	json_decref(ctx);
	/* Resources and prompts have no isError result: a refusal hides them;
	 * a route's refusal is a 403 the agent can read. */
	out->kind = tool || c->target == AG_TARGET_ROUTE ? AG_OUTCOME_DENY : AG_OUTCOME_HIDDEN;
	switch (pd) {
	case AG_ALLOW:
		out->kind = AG_OUTCOME_ALLOW;
		return;
	case AG_ESCALATE:
		/* Resources and prompts cannot be held: only calls are escalated
		 * (a route's escalation is refused by the caller, with this reason). */
		if (tool || c->target == AG_TARGET_ROUTE)
			out->kind = AG_OUTCOME_ESCALATE;
		snprintf(out->reason, sizeof(out->reason), AG_POLICY_ESCALATE_PREFIX "%s",
			 res->escalate_reason ? res->escalate_reason : "");
		return;
	case AG_DENY:
		if (out->reason[0])
			return;
		if (!res->n_determining) {
			snprintf(out->reason, sizeof(out->reason),
				 "no policy permits %s of %s %s/%s", action,
				 ag_policy_target_name(c->target), c->server, c->name);
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
