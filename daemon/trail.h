/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The daemon's audit trail (lib/audit.h, docs/audit.md) in
 * <state-dir>/audit.log, signed with <state-dir>/audit.key.
 */
#ifndef AG_DAEMON_TRAIL_H
#define AG_DAEMON_TRAIL_H

#include <jansson.h>

#include <stdbool.h>
#include <stdint.h>

#include "agentgate.h"
#include "audit.h"
#include "delegation.h"
#include "util.h"

struct ag_daemon;

/* Opens (or continues) the log; the daemon does not start without it. */
int ag_daemon_audit_open(struct ag_daemon *d, struct ag_err *err);
/* Appends a record; takes fields.  Failures are counted and logged once. */
void ag_daemon_audit(struct ag_daemon *d, const char *kind, json_t *fields);
/* The same; *seq (may be NULL) gets the record's sequence number, for
 * waiting until it is durable.  0, or -errno when the record is lost. */
int ag_daemon_audit_seq(struct ag_daemon *d, const char *kind, json_t *fields, uint64_t *seq);
/*
 * The same from the loop thread, the record given as members (lib/audit.h),
 * serialised with no tree: the records of every call.
 */
int ag_daemon_audit_members(struct ag_daemon *d, const char *kind, const struct ag_audit_member *m,
			    size_t n, uint64_t *seq);
/* Writes the records of this turn of the loop that wait (AG_AUDIT_LATER). */
void ag_daemon_audit_flush(struct ag_daemon *d);
/* Whether records can be written now (else: refuse what needs one). */
bool ag_daemon_audit_ok(struct ag_daemon *d, struct ag_err *why);
/* Signs the end of the log and closes it. */
void ag_daemon_audit_close(struct ag_daemon *d);
/*
 * Shipping to the collector (lib/audit_ship.h) as status shows it, or NULL
 * when records are not shipped; *lag gets the durable records not yet
 * confirmed by the collector.
 */
json_t *ag_daemon_ship_status(struct ag_daemon *d, uint64_t *lag, bool *connected);
/*
 * The "agent" object of a record: name plus what the kernel recorded, and
 * when name is in dg, o's chain (subagent.h; NULL: none), "delegation":
 * [root, ..., the agent before name] and, if the chain was cut right
 * after name, "sub_cgroup": what the agent called its cgroup.  As members
 * (m[n], pointing into a and its arguments) or as a tree.
 */
#define AG_AUDIT_AGENT_MEMBERS 10 /* 8 here, client and subject (inbound.h) */
struct ag_audit_agent {
	struct ag_audit_member m[AG_AUDIT_AGENT_MEMBERS];
	size_t n;
	char comm[AG_COMM_LEN * 4 + 1];
	const char *chain[AG_DELEGATION_MAX];
};

void ag_audit_agent_members(struct ag_audit_agent *a, const char *name, const struct ag_origin *o,
			    const struct ag_delegation *dg);

/* A record's "agent" member over a's members. */
static inline struct ag_audit_member ag_audit_agent_member(const struct ag_audit_agent *a)
{
	struct ag_audit_member m = { .key = "agent", .type = AG_AM_OBJ, .obj = a->m, .n = a->n };

	return m;
}

json_t *ag_audit_agent_chain(const char *name, const struct ag_origin *o,
			     const struct ag_delegation *dg);

#endif
