/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What a tool call costs an agent (DESIGN section 7): its call budgets
 * per minute and per day, kept in the kernel's quota map so that a spent
 * budget also stops new connections, and loop protection, which stops the
 * same call being made over and over (agentgate.conf(5)
 * "loop_protection").  Budgets of scope "fleet" are taken from a lease
 * held in memory instead (fleet.h).
 */
#ifndef AG_DAEMON_BUDGET_H
#define AG_DAEMON_BUDGET_H

#include "daemon.h"
#include "decide.h"
#include "delegation.h"
#include "jsonrpc.h"

/*
 * A tools/call the decision allowed (or escalated) on server srv: charges
 * the call budgets of the agent the kernel accounts the connection to
 * (o->agent_cgroup_id: the root of dg, the chain admission found, else
 * ac's agent; an agent ag_budget_refresh found without a quota entry
 * costs no system call) and applies ac's loop
 * protection.  May turn *dec into AG_OUTCOME_DENY (rule "quota" or "loop",
 * the reason naming the budget or the repeated tool and the limit) or
 * AG_OUTCOME_ESCALATE (loop protection with action escalate).  A call that
 * loop protection refuses is not charged; a call refused for its budget
 * is counted in calls_refused.  Fails closed: a call that cannot be
 * charged or hashed is denied.  Loop thread only.
 */
void ag_budget_check(struct ag_daemon *d, const struct ag_agent_conf *ac, const char *agent,
		     const struct ag_origin *o, const struct ag_delegation *dg,
		     const struct ag_server_conf *srv, const struct ag_jsonrpc_msg *m,
		     struct ag_decision *dec);

/* After the configuration is loaded; allocates nothing per agent yet. */
int ag_budget_init(struct ag_daemon *d, struct ag_err *err);
/*
 * Reads which agents have a quota entry (budget.c): once the control
 * socket listens, whenever the entries change ("budgets_changed"), and
 * from a call that finds the last read over a second old.  Fails closed:
 * until a read succeeds every call is charged.
 */
void ag_budget_refresh(struct ag_daemon *d);
void ag_budget_fini(struct ag_daemon *d);

#endif
