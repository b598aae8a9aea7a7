/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Which agent a connection is, when agents start sub-agents
 * (lib/delegation.h): the chain from the root agent, whose cgroup the
 * kernel recorded (origin agent_cgroup_id), down to the calling agent,
 * whose cgroup it also recorded (origin cgroup_id).
 */
#ifndef AG_DAEMON_SUBAGENT_H
#define AG_DAEMON_SUBAGENT_H

#include <stddef.h>

#include "agentgate.h"
#include "delegation.h"
#include "util.h"

struct ag_daemon;

struct ag_subagents;

/* The cache below, one per daemon (d->subagents), from start-up to teardown. */
int ag_subagents_new(struct ag_subagents **out, struct ag_err *err);
void ag_subagents_free(struct ag_subagents *s);

/*
 * The chain of o into *out (names copied: valid as long as *out): root
 * first, the calling agent last, the agent every decision of the
 * connection is made for.  -ENOENT (nothing in *out) when the root agent
 * is not registered.  A sub-cgroup that cannot be found leaves the root
 * alone in the chain, with cut set and sub_cgroup "?".  O(1) whatever
 * the agent does with its subtree (subagent.c): cached by cgroup id per
 * root agent, a miss reads the cgroup of the process the kernel recorded.
 * Loop thread only.
 */
int ag_daemon_delegation(struct ag_daemon *d, const struct ag_origin *o, struct ag_delegation *out);
/*
 * The chain's part of a log line, " delegation=A,B" (the agents before
 * the calling one) and " sub_cgroup=..." when cut; "" for the root alone.
 */
void ag_delegation_fields(const struct ag_delegation *dg, char *buf, size_t len);

#endif
