/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Tool integrity in the daemon: every tool a tools/list result shows is
 * checked against the inventory in <state-dir>/tools (lib/inventory.h),
 * pinned by the configured tools_lock.  A tool whose definition changed
 * since it was trusted (a "rug pull") disappears from lists and its calls
 * get the unknown-tool error until an operator approves the new definition.
 */
#ifndef AG_INTEGRITY_H
#define AG_INTEGRITY_H

#include <stdbool.h>
#include <jansson.h>

#include "daemon.h"
#include "delegation.h"

int ag_integrity_open(struct ag_daemon *d, struct ag_err *err);
void ag_integrity_close(struct ag_daemon *d);
/* One tool of a tools/list result the agent was sent: whether it stays in
 * the list.  Changes of the inventory are logged and audited, seen by
 * agent of origin o and chain dg (admit.h; NULL: none). */
bool ag_integrity_listed(struct ag_daemon *d, const struct ag_server_conf *s, const json_t *tool,
			 const char *agent, const struct ag_origin *o,
			 const struct ag_delegation *dg);
/* Whether a tools/call of tool may go to server s. */
bool ag_integrity_callable(struct ag_daemon *d, const struct ag_server_conf *s, const char *tool);
/* {"trusted": N, "pending": N, "blocked": N}, for status. */
json_t *ag_integrity_summary(struct ag_daemon *d);
/* The control request {"cmd":"tools_approve","server","tool","hash","by"}. */
json_t *ag_integrity_approve(struct ag_daemon *d, const json_t *req);

#endif
