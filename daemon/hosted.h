/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Hosted stdio MCP servers ("tool_servers[].command", agentgate.conf(5)):
 * agentgated serves each at its "upstream" as a Streamable HTTP server, so
 * the MCP path governs it as any other; a keeper process forked at the
 * start runs the servers, each in a cgroup below its agent's.
 */
#ifndef AG_HOSTED_H
#define AG_HOSTED_H

#include "daemon.h"

/* Binds every hosted server's address and forks the keeper; nothing without one. */
int ag_hosted_start(struct ag_daemon *d, struct ag_err *err);
/* The keeper and every hosted process gone, their cgroups removed. */
void ag_hosted_stop(struct ag_daemon *d);

#endif
