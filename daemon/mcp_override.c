// SPDX-License-Identifier: GPL-2.0
/*
 * Where the MCP path still overrides what ag_decide() decided, kept in one
 * function so that it can move into decide.c whole (decide.h says the data
 * path never decides): the tool-integrity hold, the budget, and which
 * calls may wait for a human.  The order is the verdict's: integrity
 * first (a hidden call is not charged), then the budget (an allowed or
 * escalated call may be over it), then escalation eligibility.
 */
#include <stdio.h>

#include "budget.h"
#include "integrity.h"
#include "mcp_int.h"

void mcp_override_decision(struct mcp_conn *c, const struct ag_jsonrpc_body *b,
			   const struct ag_jsonrpc_msg *m, struct ag_decision *dec)
{
	if (m->mcp == AG_MCP_TOOLS_CALL && dec->kind != AG_DECIDE_HIDDEN && m->name &&
	    !ag_integrity_callable(c->l->d, c->srv, m->name)) {
		dec->kind = AG_DECIDE_HIDDEN;
		dec->rule = "tool_integrity";
		snprintf(dec->reason, sizeof(dec->reason),
			 "the tool's definition is not approved "
			 "(agentgatectl tools approve)");
		dec->policies[0] = 0;
	}
	if (m->mcp == AG_MCP_TOOLS_CALL &&
	    (dec->kind == AG_DECIDE_ALLOW || dec->kind == AG_DECIDE_ESCALATE))
		ag_budget_check(c->l->d, c->ac, c->agent, &c->o, c->dg, c->srv, m, dec);
	/*
	 * Only a lone request can wait for a human: an element of a batch
	 * would hold its neighbours' answers, and a legacy POST is answered
	 * on another connection.
	 */
	if (dec->kind == AG_DECIDE_ESCALATE &&
	    (b->count != 1 || !m->id || !m->name || c->legacy.post))
		dec->kind = AG_DECIDE_DENY;
}
