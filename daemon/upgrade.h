/* SPDX-License-Identifier: GPL-2.0 */
/*
 * agentgated --upgrade: this daemon takes over a running one of the same
 * instance (upgrade.c has the sequence and its hazards).
 */
#ifndef AG_UPGRADE_H
#define AG_UPGRADE_H

#include <stdint.h>

#include "instance.h"

struct ag_daemon;

/* How long the old daemon may drain its connections (loop.c), and a bit. */
#define AG_UPGRADE_DRAIN_S 60
#define AG_UPGRADE_WAIT_S (AG_UPGRADE_DRAIN_S + 15)

struct ag_upgrade {
	int pid;	    /* the old daemon */
	int pidfd;	    /* pins it: signals and the exit wait cannot hit a reused pid */
	uint64_t switch_ns; /* ag_now_ns() when the new daemon took the serving entry */
};

/* The running daemon to take over; refused when there is none. */
int ag_upgrade_begin(struct ag_upgrade *u, const struct ag_instance *in, struct ag_err *err);
/*
 * Copies of the old daemon's listeners and DNS relay sockets (pidfd_getfd,
 * which needs CAP_SYS_PTRACE: before the capabilities go) into d.
 * dns_port: the host relay's port, from the instance's config map.
 */
int ag_upgrade_take(struct ag_upgrade *u, struct ag_daemon *d, uint16_t dns_port,
		    struct ag_err *err);
/*
 * Once this daemon is in the serving map: tells the old one to stop
 * accepting and finish its connections (SIGUSR2), and waits for its exit.
 */
int ag_upgrade_handoff(struct ag_upgrade *u, struct ag_err *err);
void ag_upgrade_end(struct ag_upgrade *u);

#endif
