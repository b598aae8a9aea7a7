/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The approval registry: calls held until a human (agentgatectl approve,
 * deny) or the clock (approval_timeout_ms) decides them.  An approval
 * lives until its timeout SQE completes (fired, or removed when a human or
 * its owner ended it first), so the kernel never completes into freed
 * memory.  What is held, and what a verdict does to it, is the owner's:
 * the registry holds, lists, resolves and times out.
 *
 *	hold --human: ag_approvals_resolve--> decided(owner, allow)
 *	hold --timeout--> decided(owner, deny, "gateway", "no approval in time")
 *	hold --owner: ag_approval_drop--> (nothing is called)
 *
 * Ordering hazard: decided() runs after the approval left the registry,
 * and its owner must forget the approval first thing (it is freed when
 * its timeout completes).
 */
#ifndef AG_APPROVALS_H
#define AG_APPROVALS_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>

#include "ring.h"

struct ag_loop;

struct ag_approval_ops {
	/* The verdict on the held call of owner (the approval is gone). */
	void (*decided)(void *owner, uint64_t id, bool allow, const char *by, const char *why);
	/* What agentgatectl approvals shows of owner's call. */
	json_t *(*describe)(void *owner, uint64_t id, uint64_t waited_ms, uint32_t timeout_ms);
};

struct ag_approval;

struct ag_approvals {
	struct ag_loop *l;
	struct ag_list held; /* undecided approvals */
	uint64_t next_id;
};

void ag_approvals_init(struct ag_approvals *r, struct ag_loop *l);
/* Holds owner's call for approval_timeout_ms; NULL without memory or SQE. */
struct ag_approval *ag_approval_hold(struct ag_approvals *r, const struct ag_approval_ops *ops,
				     void *owner);
uint64_t ag_approval_id(const struct ag_approval *a);
/* The owner no longer waits: ends the timeout early, calls nothing. */
void ag_approval_drop(struct ag_approval *a);
/* Calls held for approval, for agentgatectl approvals: a JSON array. */
json_t *ag_approvals_list(struct ag_approvals *r);
/* A human's verdict on held call id; -ENOENT when none waits. */
int ag_approvals_resolve(struct ag_approvals *r, uint64_t id, bool allow, const char *by,
			 struct ag_err *err);

#endif
