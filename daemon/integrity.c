// SPDX-License-Identifier: GPL-2.0
/* Tool integrity in the daemon (see integrity.h). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "integrity.h"
#include "inventory.h"
#include "trail.h"

int ag_integrity_open(struct ag_daemon *d, struct ag_err *err)
{
	char dir[PATH_MAX];
	int ret;

	snprintf(dir, sizeof(dir), "%s/tools", d->inst.state_dir);
	if ((ret = ag_inventory_open(dir, &d->inventory, err)))
		return ret;
	if (!d->conf.tools_lock[0])
		return 0;
	/* A lock that is configured but missing pins nothing: say so, loudly,
	 * rather than refuse to start a gateway whose lock is yet to be written. */
	ret = ag_inventory_lock_import(d->inventory, d->conf.tools_lock, err);
	if (ret == -ENOENT) {
		ag_log(AG_LOG_WARN, "tools", "lock=%s error=\"missing: no tool is pinned\"",
		       d->conf.tools_lock);
		return 0;
	}
	return ret;
}

void ag_integrity_close(struct ag_daemon *d)
{
	ag_inventory_free(d->inventory);
	d->inventory = NULL;
}

static void audit_change(struct ag_daemon *d, const struct ag_server_conf *s, const char *tool,
			 const struct ag_inv_result *r, const char *agent,
			 const struct ag_origin *o, const struct ag_delegation *dg)
{
	ag_log(r->event == AG_INV_NEW_TRUSTED ? AG_LOG_INFO : AG_LOG_WARN, "tools",
	       "server=%s tool=\"%.64s\" event=%s state=%s old=%.12s new=%.12s agent=%s", s->name,
	       tool, ag_inv_event_name(r->event), ag_tool_state_name(r->state), r->old_hash,
	       r->new_hash, agent);
	ag_daemon_audit(d, "tool",
			json_pack("{s:s,s:s,s:s,s:s,s:s?,s:s,s:o}", "server", s->name, "tool", tool,
				  "event", ag_inv_event_name(r->event), "state",
				  ag_tool_state_name(r->state), "old_hash",
				  r->old_hash[0] ? r->old_hash : NULL, "hash", r->new_hash,
				  "seen_by", ag_audit_agent_chain(agent, o, dg)));
}

bool ag_integrity_listed(struct ag_daemon *d, const struct ag_server_conf *s, const json_t *tool,
			 const char *agent, const struct ag_origin *o,
			 const struct ag_delegation *dg)
{
	const char *name = json_string_value(json_object_get(tool, "name"));
	struct ag_inv_result r = { 0 };
	struct ag_err err = { 0 };

	if (!name)
		return false;
	if (ag_inventory_observe(d->inventory, s->name, s->trust, tool, time(NULL), &r, &err)) {
		/* Unrecorded is unreviewed: it stays out of the agent's view. */
		ag_log(AG_LOG_WARN, "tools", "server=%s tool=\"%.64s\" hidden=1 error=\"%s\"",
		       s->name, name, err.msg);
		return false;
	}
	if (r.event != AG_INV_NONE)
		audit_change(d, s, name, &r, agent, o, dg);
	return r.state == AG_TOOL_TRUSTED;
}

bool ag_integrity_callable(struct ag_daemon *d, const struct ag_server_conf *s, const char *tool)
{
	enum ag_tool_state st;

	/* Never listed through the gateway: its definition is unknown, which
	 * explicit trust does not accept and first-use trust does. */
	if (ag_inventory_state(d->inventory, s->name, tool, &st))
		return s->trust == AG_TRUST_ON_FIRST_USE;
	return st == AG_TOOL_TRUSTED;
}

json_t *ag_integrity_approve(struct ag_daemon *d, const json_t *req)
{
	const char *server = json_string_value(json_object_get(req, "server"));
	const char *tool = json_string_value(json_object_get(req, "tool"));
	const char *hash = json_string_value(json_object_get(req, "hash"));
	const char *by = json_string_value(json_object_get(req, "by"));
	char hex[AG_TOOLHASH_HEX_LEN + 1] = "", offered[AG_TOOLHASH_HEX_LEN + 1];
	struct ag_err err = { 0 };
	bool pin_overridden = false;

	if (!server || !tool)
		return json_pack("{s:b,s:s}", "ok", 0, "error",
				 "bad request: \"server\" and \"tool\" must be strings");
	if (!by || !*by || strlen(by) > 64)
		return json_pack("{s:b,s:s}", "ok", 0, "error",
				 "bad request: \"by\" must name who approves (1-64 bytes)");
	if (json_object_get(req, "hash") && !json_is_null(json_object_get(req, "hash")) &&
	    !hash)
		return json_pack("{s:b,s:s}", "ok", 0, "error",
				 "bad request: \"hash\" must be a string or null");
	if (ag_inventory_approve(d->inventory, server, tool, hash, by, time(NULL),
				 &pin_overridden, &err))
		return json_pack("{s:b,s:s}", "ok", 0, "error", err.msg);
	ag_inventory_hashes(d->inventory, server, tool, hex, offered);
	ag_log(AG_LOG_INFO, "tools", "server=%s tool=\"%.64s\" event=approved hash=%.12s by=%s",
	       server, tool, hex, by);
	ag_daemon_audit(d, "tool",
			json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:b}", "server", server, "tool", tool,
				  "event", "approved", "state", "trusted", "hash", hex, "by", by,
				  "pin_overridden", pin_overridden));
	return json_pack("{s:b,s:s,s:b}", "ok", 1, "hash", hex, "pin_overridden", pin_overridden);
}

json_t *ag_integrity_summary(struct ag_daemon *d)
{
	json_t *inv = ag_inventory_json(d->inventory), *tools, *t;
	json_int_t n[3] = { 0 };
	const char *server, *name;

	json_object_foreach(inv, server, tools)
		json_object_foreach(tools, name, t)
		{
			const char *st = json_string_value(json_object_get(t, "state"));

			for (int i = AG_TOOL_TRUSTED; st && i <= AG_TOOL_BLOCKED; i++)
				n[i] += !strcmp(st, ag_tool_state_name(i));
		}
	json_decref(inv);
	return json_pack("{s:I,s:I,s:I}", "trusted", n[AG_TOOL_TRUSTED], "pending",
			 n[AG_TOOL_PENDING], "blocked", n[AG_TOOL_BLOCKED]);
}
