// SPDX-License-Identifier: GPL-2.0
#include <stdio.h>

#include "decide.h"

const char *ag_decision_name(enum ag_decision_kind k)
{
	switch (k) {
	case AG_DECIDE_ALLOW:
		return "allow";
	case AG_DECIDE_HIDDEN:
		return "deny_unknown";
	case AG_DECIDE_DENY:
		return "deny";
	}
	return "deny";
}

/*
 * Until a policy set is configured the per-agent allow-lists decide, and
 * they know only names: what an agent may not call it may not see either,
 * so every refusal is HIDDEN (the model is not invited to retry it).
 */
void ag_decide(const struct ag_decide_ctx *x, const struct ag_jsonrpc_msg *m,
	       struct ag_decision *out)
{
	enum ag_mcp_kind kind;
	const char *what;

	out->kind = AG_DECIDE_ALLOW;
	out->rule = "allow-list";
	out->reason[0] = '\0';
	switch (m->mcp) {
	case AG_MCP_TOOLS_CALL:
		kind = AG_KIND_TOOL;
		what = "tool";
		break;
	case AG_MCP_RESOURCES_READ:
		kind = AG_KIND_RESOURCE;
		what = "resource";
		break;
	case AG_MCP_PROMPTS_GET:
		kind = AG_KIND_PROMPT;
		what = "prompt";
		break;
	default:
		return;
	}
	if (!m->name) {
		/* Nothing to decide on is nothing allowed. */
		out->kind = AG_DECIDE_HIDDEN;
		snprintf(out->reason, sizeof(out->reason), "%s request without a name", what);
		return;
	}
	if (ag_conf_allows(x->agent, kind, x->srv->name, m->name))
		return;
	out->kind = AG_DECIDE_HIDDEN;
	snprintf(out->reason, sizeof(out->reason), "%s %s/%s is not in the allow-list of agent %s",
		 what, x->srv->name, m->name, x->agent_name);
}

bool ag_decide_visible(const struct ag_decide_ctx *x, const char *tool)
{
	return ag_conf_allows(x->agent, AG_KIND_TOOL, x->srv->name, tool);
}
