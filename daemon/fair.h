/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Fair sharing between agents (agentgated(8) LIMITS): no agent can hold
 * the daemon's descriptors or connection slots away from the others.
 *
 *  - Slots: every agent connection holds one slot of its root agent from
 *    accept until its socket is closed.  An agent holds at most its cap
 *    (max_conns, limits.max_conns_per_agent), all agents together at most
 *    the ceiling the descriptor limit leaves (fair.c's arithmetic).  A
 *    connection over either is closed at accept, before any other work.
 *  - Refusals: every refusal of the daemon's (a connection rejected, an
 *    MCP request denied) is counted for its agent, by reason, while the
 *    daemon runs (agentgatectl agents shows them next to the kernel's).
 *  - Watches: an agent connection past classification is watched for the
 *    header timeout (its request head is not whole in time) and the idle
 *    timeout (no byte either way).  One timer on the loop sweeps them.
 */
#ifndef AG_DAEMON_FAIR_H
#define AG_DAEMON_FAIR_H

#include <jansson.h>

#include "agentgate.h"
#include "ring.h"

struct ag_loop;

struct ag_watch;

/* why: "header_timeout" or "idle_timeout".  Called from the sweep only. */
typedef void (*ag_watch_expire)(struct ag_watch *w, const char *why);
/*
 * Moves active_ns up to bytes the daemon did not see (the kernel's splice);
 * asked by the sweep before an idle timeout.  Must not stop any watch.
 */
typedef void (*ag_watch_refresh)(struct ag_watch *w);

struct ag_watch {
	struct ag_list node; /* in the sweep's list while started */
	uint64_t active_ns;  /* the last byte either way (or the start) */
	uint64_t head_ns;    /* the request head is due by then; 0: none due */
	ag_watch_expire expire;
	ag_watch_refresh refresh; /* NULL (ag_watch_start), or set after it */
};

int ag_fair_init(struct ag_loop *l, struct ag_err *err);
void ag_fair_stop(struct ag_loop *l);
void ag_fair_fini(struct ag_loop *l);

/*
 * Takes a slot of o's agent for fd.  NULL when admitted; else the reason
 * to refuse ("over_agent_cap", "over_ceiling"), counted, and the caller
 * closes fd at once.
 */
const char *ag_fair_admit(struct ag_loop *l, int fd, const struct ag_origin *o);
/*
 * Counts a refusal of reason for o's agent (nothing without one).  At most
 * REFUSAL_KINDS reasons apart per agent, further ones as "other".
 */
void ag_fair_refused(struct ag_loop *l, const struct ag_origin *o, const char *reason);
/* "agents" of the control socket: [{agent, cgroup_id, refused, reasons{}}], refused > 0. */
json_t *ag_fair_refusals(const struct ag_loop *l);
/* Gives back the slot fd holds, if any: before every close of an agent socket. */
void ag_fair_release(struct ag_loop *l, int fd);

/* When a request head that starts now is due (the header timeout). */
uint64_t ag_fair_head_due(const struct ag_loop *l);
void ag_watch_start(struct ag_loop *l, struct ag_watch *w, uint64_t head_ns,
		    ag_watch_expire expire);
/* Harmless when not started (the node is self-linked). */
void ag_watch_stop(struct ag_watch *w);
static inline void ag_watch_touch(struct ag_watch *w)
{
	w->active_ns = ag_now_ns();
}

/* "limits" of agentgatectl status: the figures and each agent's slots. */
json_t *ag_fair_status(const struct ag_loop *l);

#endif
