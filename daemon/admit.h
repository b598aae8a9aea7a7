/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Admission of an accepted agent connection: whose it is (the origin the
 * kernel recorded at connect), whether it may be served at all (not the
 * gateway itself, within its agent's share, not the metrics endpoint),
 * and which agent it is, its delegation chain worked out once here and
 * carried with the connection to the classifier (classify.h), the byte
 * relay (relay.h) and the MCP path.  Refusals, at admission or later,
 * are logged (rate-limited), audited and reset here too.
 */
#ifndef AG_ADMIT_H
#define AG_ADMIT_H

#include <stdbool.h>

#include "agentgate.h"
#include "delegation.h"
#include "util.h"

struct ag_loop;

/* What admission found out about a connection; the same for all its life. */
struct ag_admission {
	struct ag_origin o;
	/* The agent every decision is made for: the chain's last, or
	 * "cgroup-<id>" when its root agent is not registered. */
	char agent[AG_NAME_LEN];
	bool chained; /* dg holds the chain (subagent.h) */
	struct ag_delegation dg;
};

int ag_admit_init(struct ag_loop *l, struct ag_err *err);
void ag_admit_fini(struct ag_loop *l);
/* Takes ownership of fd, accepted on an agents' listener: admits it and
 * hands it to the classifier, or refuses it. */
void ag_admit_accept(struct ag_loop *l, int fd);
/*
 * The chain to show in a's logs and records: NULL when there is nothing
 * to show (no chain, or the root agent alone and honoured).
 */
const struct ag_delegation *ag_admission_chain(const struct ag_admission *a);
/*
 * That chain copied for a connection that outlives a (free() it): *out is
 * NULL when there is none, so a root agent's connection costs no copy.
 * -ENOMEM, *out NULL, when it cannot be copied.
 */
int ag_admission_chain_dup(const struct ag_admission *a, struct ag_delegation **out);
/* Refuses fd of admitted a: logged (rate-limited), audited, reset. */
void ag_admit_refuse(struct ag_loop *l, int fd, const char *reason, const struct ag_admission *a);
/*
 * The same for an agent whose first bytes were a whole HTTP request head:
 * it is answered "403 Forbidden" with a body that names the destination,
 * the agent and why, then closed (a reset could destroy the answer).
 */
void ag_admit_refuse_http(struct ag_loop *l, int fd, const char *reason,
			  const struct ag_admission *a);
/* The socket's close() resets the peer instead of a FIN; best effort. */
void ag_set_rst(int fd);

#endif
