/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The decision point of the MCP path: what an agent may call, read, get
 * and see on a governed tool server.  Every governed message goes through
 * here, so the data path never decides by itself.
 */
#ifndef AG_DECIDE_H
#define AG_DECIDE_H

#include <stdbool.h>

#include <jansson.h>

#include "config.h"
#include "daemon.h"
#include "jsonrpc.h"

enum ag_decision_kind {
	AG_DECIDE_ALLOW,
	AG_DECIDE_HIDDEN, /* the agent may not even see it: "Unknown tool" */
	AG_DECIDE_DENY,	  /* visible, but this call is refused: an isError result */
};

struct ag_decision {
	enum ag_decision_kind kind;
	const char *rule;  /* what decided: "allow-list" */
	char reason[256];  /* for the agent and the audit log; no argument values */
};

struct ag_decide_ctx {
	struct ag_daemon *d;
	const struct ag_agent_conf *agent; /* NULL: not in the configuration */
	const char *agent_name;
	const struct ag_server_conf *srv;
};

/* A request or notification the MCP path governs (tools/call,
 * resources/read, prompts/get); everything else is AG_DECIDE_ALLOW. */
void ag_decide(const struct ag_decide_ctx *x, const struct ag_jsonrpc_msg *m,
	       struct ag_decision *out);
/* Whether a tool of a tools/list result stays in the agent's view. */
bool ag_decide_visible(const struct ag_decide_ctx *x, const char *tool);
/* The name of a decision for logs and audit records. */
const char *ag_decision_name(enum ag_decision_kind k);

#endif
