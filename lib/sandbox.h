/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The sandbox every agent runs in: what agentgatectl run applies in the
 * child after it has become the agent's user (no_new_privs set) and before
 * exec.  Both layers are inherited by everything the agent starts,
 * sub-agents included, and neither can be lifted.
 *
 *  - A Landlock domain of its own, scoping only (no file system or network
 *    rights are handled): the kernel then refuses ptrace, pidfd_getfd,
 *    /proc/PID/mem and the like on any process outside the domain, even
 *    one with the same uid; with Landlock ABI >= 6, signals and connects to
 *    abstract unix sockets too.  This is what holds for `run --user`, whose
 *    uid other processes may share.
 *  - A seccomp filter: the syscalls that act on other processes refused
 *    outright, io_uring reported absent, socket() limited to the families
 *    the cgroup hooks govern (see sandbox.c for the list and why).
 */
#ifndef AG_SANDBOX_H
#define AG_SANDBOX_H

#include <stdbool.h>

#include "util.h"

/* The Landlock ABI version this kernel offers; 0 when it has none. */
int ag_landlock_abi(void);
/* From this ABI on, Landlock scopes signals and abstract unix sockets. */
#define AG_LANDLOCK_ABI_SCOPES 6
/* Whether this kernel takes seccomp filters. */
bool ag_seccomp_available(void);

/*
 * Applies both layers to the calling process, which must have set
 * no_new_privs.  Without seccomp it fails; without Landlock it fails when
 * landlock_required, else it goes on with the filter alone (the caller's
 * uid then is what keeps other processes out of reach).
 */
int ag_sandbox_apply(bool landlock_required, struct ag_err *err);

#endif
