/* SPDX-License-Identifier: GPL-2.0 */
/* Starting processes straight into an agent cgroup, as an unprivileged user. */
#ifndef AG_SPAWN_H
#define AG_SPAWN_H

#include <stdbool.h>
#include <sys/types.h>

#include "util.h"

/*
 * fork() into the cgroup behind cgroup_fd: clone3(CLONE_INTO_CGROUP), so the
 * child never runs, not even for an instruction, outside the cgroup and its
 * hooks.  Returns the pid in the parent, 0 in the child, -errno on failure.
 */
pid_t ag_clone_into_cgroup(int cgroup_fd);

struct ag_user {
	uid_t uid;
	gid_t gid;
	char name[64];
};

/*
 * The user an agent runs as: NAME if given, else the sudo caller
 * (SUDO_UID/SUDO_GID), else nobody.  Never root: a uid-0 process owns the
 * cgroup files and could move itself out of its cgroup.
 */
int ag_user_resolve(const char *name, struct ag_user *u, struct ag_err *err);
/* In the child: supplementary groups, gid, uid, no_new_privs. */
int ag_user_become(const struct ag_user *u, struct ag_err *err);

#endif
