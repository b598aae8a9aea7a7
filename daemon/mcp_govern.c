// SPDX-License-Identifier: GPL-2.0
/*
 * What the gateway reads in a response on the MCP path (mcp_int.h): each
 * message paired with the request it answers, tools/list results filtered
 * to what the agent may see, tools/call results through the output rules
 * (outrules.h) and into the audit log.
 */
#include <errno.h>
#include <string.h>

#include "http_svc.h"
#include "integrity.h"
#include "mcp_int.h"

/*
 * Applies the output rules to a tools/call result (tool NULL: one the
 * gateway cannot attribute, which gets every rule of the server).  1 if
 * msg was rewritten.  A result the rules cannot be applied to (nested too
 * deep, out of memory) does not reach the agent.
 */
static int redact_result(struct mcp_conn *c, json_t *msg, const char *tool,
			 struct ag_redact_report *rep)
{
	const struct ag_redactor *r = tool ? ag_outrules_for(mcp_of(c)->outrules, c->srv, tool)
					   : ag_outrules_all(mcp_of(c)->outrules, c->srv);
	json_t *result = json_object_get(msg, "result"), *out;
	struct ag_err err = { 0 };

	if (!r || !json_is_object(result))
		return 0;
	if (!(out = ag_redact_result(r, result, rep, &err))) {
		ag_log(AG_LOG_WARN, "mcp",
		       "agent=%s server=%s tool=\"%.64s\" result=withheld "
		       "error=\"%s\"",
		       c->agent, c->srv->name, tool ? tool : "", err.msg);
		out = json_pack("{s:[{s:s,s:s}],s:b}", "content", "type", "text", "text",
				"The tool's result could not be checked by the gateway's output "
				"rules and was withheld",
				"isError", 1);
		rep->refused_by = "gateway";
		if (!out)
			return -ENOMEM;
	} else if (!rep->total && !rep->refused_by) {
		json_decref(out);
		return 0;
	}
	return json_object_set_new(msg, "result", out) ? -ENOMEM : 1;
}

/*
 * A tools/call result seen in a response: output rules, then the record of
 * its outcome (never its content).  tool NULL: a result the gateway cannot
 * pair with a call it forwarded (a replay, a resumed stream, an id answered
 * twice), governed by every rule and recorded as such.  1 if msg was
 * rewritten.
 */
static int govern_result(struct mcp_conn *c, json_t *msg, const char *tool)
{
	struct ag_redact_report rep = { 0 };
	int changed;

	changed = redact_result(c, msg, tool, &rep);
	mcp_audit_result(c, msg, tool, &rep);
	return changed;
}

/* tools/list result: drops the tools the agent may not see.  1 if changed. */
static int filter_tools(struct mcp_conn *c, json_t *msg)
{
	struct ag_decide_ctx x = mcp_decide_ctx(c);
	json_t *tools = json_object_get(json_object_get(msg, "result"), "tools");
	size_t i = 0;
	int changed = 0;

	if (!json_is_array(tools))
		return 0;
	while (i < json_array_size(tools)) {
		json_t *tool = json_array_get(tools, i);
		const char *name = json_string_value(json_object_get(tool, "name"));
		/* First: a tool the agent may not see is still inventoried, so a
		 * changed definition is noticed whoever lists first. */
		bool trusted = ag_integrity_listed(c->l->d, c->srv, tool, c->agent, &c->o, c->dg);

		if (trusted && name && ag_decide_visible(&x, name)) {
			i++;
			continue;
		}
		json_array_remove(tools, i);
		changed = 1;
	}
	return changed;
}

/*
 * One message of a response, by what it answers: a tools/list result is
 * filtered, a tools/call result governed; the answers the gateway did not
 * ask for (a replay of a resumed stream, an id answered twice) are
 * governed by their shape, never passed unread.  1 if msg was rewritten.
 */
static int govern_message(struct mcp_conn *c, json_t *msg)
{
	json_t *result = json_object_get(msg, "result"), *what;
	int ret = 0;

	/* The server's own requests and notifications answer nothing. */
	if (!json_is_object(msg) || json_object_get(msg, "method"))
		return 0;
	what = mcp_take_pending(c, json_object_get(msg, "id"));
	if (json_is_string(what))
		ret = govern_result(c, msg, json_string_value(what));
	else if (what && json_integer_value(what) == AG_MCP_TOOLS_LIST)
		ret = filter_tools(c, msg);
	else if (!what || json_integer_value(what) == AG_MCP_TOOLS_CALL)
		ret = !json_is_object(result) ? 0
		      : json_is_array(json_object_get(result, "tools"))
			  ? filter_tools(c, msg)
			  : govern_result(c, msg, NULL);
	json_decref(what);
	return ret;
}

/* Looks at each JSON-RPC message of a response; 1 if one was rewritten. */
int mcp_inspect_messages(struct mcp_conn *c, json_t *root)
{
	int changed = 0, ret;
	size_t i;
	json_t *m;

	if (c->srv->http)
		return http_svc_answer(c, root);
	if (!json_is_array(root))
		return govern_message(c, root);
	json_array_foreach(root, i, m)
	{
		if ((ret = govern_message(c, m)) < 0)
			return ret;
		changed |= ret;
	}
	return changed;
}
