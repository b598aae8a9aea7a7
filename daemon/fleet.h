/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Call budgets shared by a fleet of instances (agentgate.conf(5) "fleet",
 * docs/fleet.md): an agent's calls_per_minute and calls_per_day of scope
 * "fleet" are counted in Redis, per wall-clock window, and each instance
 * serves calls from leases, slices of what is left that it took with one
 * atomic script.  A call costs no round trip: it takes a call from the
 * lease held in memory, and a thread refills the lease before it runs out.
 * Bound: Redis grants only what is left, so the fleet serves at most N
 * calls per window; what leases hold unspent (at most hosts x lease_calls
 * per budget) may stay unserved until returned (clean stop) or the window
 * ends.
 */
#ifndef AG_DAEMON_FLEET_H
#define AG_DAEMON_FLEET_H

#include <stdio.h>
#include <jansson.h>

#include "daemon.h"

enum ag_fleet_verdict {
	AG_FLEET_OK,	      /* charged to a lease, or the agent has no fleet budget */
	AG_FLEET_SPENT,	      /* the fleet-wide budget of the window is spent */
	AG_FLEET_NO_LEASE,    /* the lease ran out before its refill arrived */
	AG_FLEET_UNREACHABLE, /* Redis unreachable and on_unreachable fail_closed */
};

struct ag_fleet_refusal {
	const char *window; /* "calls_per_minute" or "calls_per_day" */
	uint32_t limit;
};

/*
 * Starts the lease thread when the configuration has a "fleet" (else
 * d->fleet stays NULL): the password file is read now (lib/secret.h), and
 * the first leases are asked for at once.
 */
int ag_fleet_start(struct ag_daemon *d, struct ag_err *err);
/* Stops the thread, returning unspent leases to Redis first; NULL is fine. */
void ag_fleet_stop(struct ag_daemon *d);

/*
 * One call of agent ac against its fleet budgets: every budget must have
 * a call left in its lease, and then each gives one.  Never waits for
 * Redis.  f NULL or an agent without fleet budgets: AG_FLEET_OK.
 */
enum ag_fleet_verdict ag_fleet_take(struct ag_fleet *f, const struct ag_agent_conf *ac,
				    struct ag_fleet_refusal *why);

/* For agentgatectl status: {redis, reachable, on_unreachable, budgets}. */
json_t *ag_fleet_status(struct ag_fleet *f);
/* The fleet's metric families, in the Prometheus text format. */
void ag_fleet_metrics(struct ag_fleet *f, FILE *out);

#endif
