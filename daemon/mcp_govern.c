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
#include "jsonrpc_scan.h"
#include "mcp_int.h"

/*
 * Applies the output rules to a tools/call result (tool NULL: one the
 * gateway cannot attribute, which gets every rule of the server).  1 if
 * msg was rewritten.  A result the rules cannot be applied to (nested too
 * deep, out of memory) does not reach the agent.
 */
static const struct ag_redactor *result_rules(struct mcp_conn *c, const char *tool)
{
	return tool ? ag_outrules_for(mcp_of(c)->outrules, c->srv, tool)
		    : ag_outrules_all(mcp_of(c)->outrules, c->srv);
}

static int redact_result(struct mcp_conn *c, json_t *msg, const char *tool,
			 struct ag_redact_report *rep)
{
	const struct ag_redactor *r = result_rules(c, tool);
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
 * rewritten.  scanned: msg is a skeleton (skeleton()).
 */
static int govern_result(struct mcp_conn *c, json_t *msg, const char *tool, bool scanned)
{
	struct ag_redact_report rep = { 0 };
	int changed = 0;

	/* A scanned result was found to be one the rules leave alone (needs_tree). */
	if (!scanned)
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

enum governed { G_NONE, G_RESULT, G_LIST };

/*
 * What an answer is governed as: by what it was owed for (mcp_take_pending),
 * and for the answers the gateway did not ask for (a replay of a resumed
 * stream, an id answered twice) by its shape, never passed unread.
 */
static enum governed governed_as(json_t *what, bool result_object, bool result_tools)
{
	if (json_is_string(what))
		return G_RESULT;
	if (what && json_integer_value(what) == AG_MCP_TOOLS_LIST)
		return G_LIST;
	if (!what || json_integer_value(what) == AG_MCP_TOOLS_CALL)
		return !result_object ? G_NONE : result_tools ? G_LIST : G_RESULT;
	return G_NONE;
}

/*
 * One message of a response, by what it answers: a tools/list result is
 * filtered, a tools/call result governed.  1 if msg was rewritten.
 * scanned: msg is the skeleton of a scanned message (skeleton()).
 */
static int govern_message(struct mcp_conn *c, json_t *msg, bool scanned)
{
	json_t *result = json_object_get(msg, "result"), *what;
	int ret = 0;

	/* The server's own requests and notifications answer nothing. */
	if (!json_is_object(msg) || json_object_get(msg, "method"))
		return 0;
	what = mcp_take_pending(c, json_object_get(msg, "id"));
	switch (governed_as(what, json_is_object(result),
			    json_is_array(json_object_get(result, "tools")))) {
	case G_RESULT:
		ret = govern_result(c, msg, json_string_value(what), scanned);
		break;
	case G_LIST:
		ret = filter_tools(c, msg);
		break;
	case G_NONE:
		break;
	}
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
		return govern_message(c, root, false);
	json_array_foreach(root, i, m)
	{
		if ((ret = govern_message(c, m, false)) < 0)
			return ret;
		changed |= ret;
	}
	return changed;
}

/*
 * 1 if a string value of a result needs the tree for output rules r (the
 * text rules would mask or refuse part of it, or it is a text that is
 * JSON, walked inside by ag_redact_result), else 0: r leaves it as it is.
 */
static int text_needs_tree(void *r, const char *s, size_t len)
{
	size_t i = 0;

	while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
		i++;
	if (i < len && (s[i] == '{' || s[i] == '['))
		return 1;
	return ag_redact_text_hit(r, s, len);
}

/* Whether a scanned answer owed what (borrowed) must be read from its tree. */
static bool needs_tree(struct mcp_conn *c, const struct ag_scan_msg *m, json_t *what)
{
	const struct ag_redactor *r;

	switch (governed_as(what, m->result_object, m->result_tools)) {
	case G_NONE:
		return false;
	case G_LIST:
		return true;
	case G_RESULT:
		break;
	}
	/* redact_result leaves a result that is not an object alone. */
	r = m->result_object ? result_rules(c, json_string_value(what)) : NULL;
	/* Path rules need the tree; a walk that fails (out of memory) reads it too. */
	return r && (ag_redact_has_paths(r) ||
		     ag_jsonrpc_scan_strings(m->result, m->result_len, text_needs_tree, (void *)r));
}

/*
 * A scanned answer as govern_message reads it when nothing rewrites it:
 * its id and result.isError (mcp_audit_result's record), in *out; NULL for
 * a message govern_message passes unread.  1 when it needs the whole
 * message: a list to filter, output rules that would change the result
 * (or may, path rules), an error or an id of another type, which the
 * record keeps whole.
 */
static int skeleton(struct mcp_conn *c, const struct ag_scan_msg *m, json_t **out)
{
	json_t *msg, *id = NULL;

	*out = NULL;
	if (m->kind != AG_SCAN_REPLY)
		return 0;
	if (m->has_error || m->id_type == AG_SCAN_ID_OTHER)
		return 1;
	if (!(msg = json_object()))
		return -ENOMEM;
	if (m->id_type == AG_SCAN_ID_INT)
		id = json_integer(m->id_int);
	else if (m->id_type == AG_SCAN_ID_STRING)
		id = json_stringn(m->id_str, m->id_len);
	if ((m->id_type != AG_SCAN_ID_NONE && json_object_set_new(msg, "id", id)) ||
	    (m->result_object &&
	     json_object_set_new(msg, "result",
				 json_pack("{s:b}", "isError", m->result_is_error)))) {
		json_decref(msg);
		return -ENOMEM;
	}
	if (needs_tree(c, m, mcp_peek_pending(c, json_object_get(msg, "id")))) {
		json_decref(msg);
		return 1;
	}
	*out = msg;
	return 0;
}

/*
 * Whether an earlier message of the batch has message i's id: the first
 * takes what was pending, so i is governed as unasked for, by every rule,
 * which peeking before either was taken cannot tell.
 */
static bool answered_before(const struct ag_scan *s, size_t i)
{
	const struct ag_scan_msg *m = &s->msg[i];

	for (size_t j = 0; j < i && m->id_type != AG_SCAN_ID_NONE; j++) {
		const struct ag_scan_msg *o = &s->msg[j];

		if (o->kind == AG_SCAN_REPLY && o->id_type == m->id_type &&
		    (m->id_type == AG_SCAN_ID_INT
			 ? o->id_int == m->id_int
			 : o->id_len == m->id_len && !memcmp(o->id_str, m->id_str, m->id_len)))
			return true;
	}
	return false;
}

/* 0: governed from the scan; 1: the tree is needed; or -errno. */
static int govern_scanned(struct mcp_conn *c, const void *data, size_t len)
{
	json_t *skel[AG_JSONRPC_SCAN_MAX] = { 0 };
	struct ag_scan s;
	size_t i;
	int ret = 0;

	if (ag_jsonrpc_scan(data, len, &s))
		return 1;
	for (i = 0; i < s.nr && !ret; i++)
		ret = answered_before(&s, i) ? 1 : skeleton(c, &s.msg[i], &skel[i]);
	for (i = 0; i < s.nr && !ret; i++)
		/* Fail closed: a rewrite of bytes that pass unchanged cannot be. */
		if (skel[i] && (ret = govern_message(c, skel[i], true)) > 0)
			ret = -EPROTO;
	for (i = 0; i < s.nr; i++)
		json_decref(skel[i]);
	return ret;
}

int mcp_inspect_body(struct mcp_conn *c, const void *data, size_t len, bool want_tree,
		     json_t **root)
{
	int ret;

	*root = NULL;
	if (!want_tree && !c->srv->http && (ret = govern_scanned(c, data, len)) <= 0)
		return ret;
	/* The same rules as request bodies: one reading, no duplicates. */
	if (!(*root = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL)))
		return -EBADMSG;
	return mcp_inspect_messages(c, *root);
}
