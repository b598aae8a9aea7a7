/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Per-run uids, like systemd's DynamicUser: unless the operator names a
 * user, agentgatectl run starts each agent under a uid no other process of
 * the host has, so no process outside the run shares the uid that ptrace,
 * pidfd_getfd, /proc/PID/mem and kill go by.
 *
 * Claiming uid U, from a random start in the range, first free wins:
 *
 *	lock <AG_RUNUID_DIR>/U  --busy-->  next U
 *	   | (flock, held by run until the agent has exited)
 *	U in the user database, or a process has U as a uid or gid?  --yes-->  unlock, next U
 *	   | no
 *	home: a fresh 0700 directory in /tmp owned by U
 *
 * Ordering hazard: the checks must come after the lock, or another run could
 * take U between them.  The lock goes when run exits (even killed); a
 * process the agent left running keeps U in use through the /proc check.
 * What the lock cannot stop: a process outside agentgate setting its uid to
 * U (keep the range reserved), and files a previous run of U left outside
 * its home (/tmp, /dev/shm) being readable by a later run of U.
 */
#ifndef AG_RUNUID_H
#define AG_RUNUID_H

#include <stdint.h>

#include "agentgate.h"
#include "spawn.h"

#define AG_RUNUID_DIR "/run/agentgate-uids"
/* At most this many free-looking uids are checked against /proc per claim. */
#define AG_RUNUID_SCANS 32

/* The range in the instance's config map (agent_uids); the defaults when
 * its daemon never wrote one. */
void ag_runuid_range(const struct ag_config *cfg, uint32_t *min, uint32_t *max);
/* Claims a uid of [min, max] for this run: u gets it (gid the same), its
 * lock and its home; ag_runuid_release gives them back. */
int ag_runuid_claim(uint32_t min, uint32_t max, struct ag_user *u, struct ag_err *err);
/* Removes the home (as U, so nothing the agent planted there can redirect
 * it) and then drops the lock. */
void ag_runuid_release(struct ag_user *u);

#endif
