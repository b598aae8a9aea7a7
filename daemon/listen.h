/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The sockets agentgated serves on: the agents' listeners (v4, and v6 when
 * configured), the DNS relay's sockets and the control socket, each made
 * at start-up (main.c) or, for --upgrade, taken over from the running
 * daemon (upgrade.h).
 */
#ifndef AG_LISTEN_H
#define AG_LISTEN_H

#include "agentgate.h"
#include "instance.h"
#include "util.h"

struct ag_daemon;

/*
 * Opens the agents' listeners and the DNS relay's sockets into d.  kcfg
 * gets the host relay's address, and loses the daemon's IPv6 address when
 * the host has none on loopback.  A DNS relay that cannot be opened is
 * logged and left off; a listener that cannot, fails the start.
 */
int ag_listen_open(struct ag_daemon *d, struct ag_config *kcfg, struct ag_err *err);
/*
 * --upgrade: the old daemon's sockets, the same ports, so agents' connects
 * keep landing in the same backlog and their DNS in the same relay.
 */
int ag_listen_take(struct ag_daemon *d, struct ag_config *kcfg, struct ag_err *err);
/* The control socket, mode 0600 from its creation; its fd, or -errno. */
int ag_listen_control(const struct ag_instance *in, struct ag_err *err);

#endif
