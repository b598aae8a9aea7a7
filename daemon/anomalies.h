/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Anomaly flags in the daemon (agentgate.conf(5) "anomaly"; the scoring
 * and the bounded tables are lib/anomaly.h's): each governed call is
 * flagged before its decision (ag_anomaly_flags, which policies see as
 * context.anomaly), each flag raised is an "anomaly" audit record, which
 * daemon/metrics.c counts, and the state survives restarts in
 * <state-dir>/anomaly.json.
 *
 * The state file is written atomically (lib/fileio.h) at most once a
 * minute while something changed (on the loop, from the call that finds
 * it due) and at shutdown; it is read at start.  A file that cannot be
 * read or parsed is refused with a log line, renamed to anomaly.json.bad
 * and the state starts empty: a broken file never stops the daemon, and
 * an empty state only flags more.
 */
#ifndef AG_DAEMON_ANOMALIES_H
#define AG_DAEMON_ANOMALIES_H

#include <stdbool.h>

#include "agentgate.h"
#include "anomaly.h"
#include "delegation.h"

struct ag_daemon;
struct ag_admission;
struct ag_anomaly;

/* *out NULL when the configuration turns the flags off.  -ENOMEM only. */
int ag_anomaly_open(struct ag_daemon *d, struct ag_anomaly **out, struct ag_err *err);
/* Saves the state (if changed) and frees a.  a may be NULL. */
void ag_anomaly_close(struct ag_anomaly *a);

/*
 * A governed call of agent (o: its connection's origin, NULL: unknown; dg:
 * its delegation chain, NULL: a root agent) to
 * tool server server, tool its tool (NULL: not a tools/call): v gets its
 * flags, and the flags to record are audited.  a NULL: every flag false.
 */
void ag_anomaly_flags(struct ag_daemon *d, struct ag_anomaly *a, const char *agent,
		      const struct ag_origin *o, const struct ag_delegation *dg, const char *server,
		      const char *tool, struct ag_anomaly_verdict *v);
/* How that call was decided: allowed (tool and server become used) or refused. */
void ag_anomaly_settle(struct ag_anomaly *a, const char *agent, const char *server,
		       const char *tool, bool allowed);
/*
 * A pass-through connection of a about to be relayed: a first_destination
 * record the first time its agent reaches that ADDR:PORT (no policy is
 * asked on the relay, so no context.anomaly).
 */
void ag_anomaly_relayed(struct ag_daemon *d, const struct ag_admission *a);

#endif
