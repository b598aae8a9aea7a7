/* SPDX-License-Identifier: GPL-2.0 */
/* Starting processes straight into an agent cgroup, as an unprivileged user. */
#ifndef AG_SPAWN_H
#define AG_SPAWN_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "util.h"

/*
 * fork() into the cgroup behind cgroup_fd: clone3(CLONE_INTO_CGROUP), so the
 * child never runs, not even for an instruction, outside the cgroup and its
 * hooks.  Returns the pid in the parent, 0 in the child, -errno on failure.
 */
pid_t ag_clone_into_cgroup(int cgroup_fd);

#define AG_USER_MAX_GROUPS 64

struct ag_user {
	uid_t uid;
	gid_t gid;
	char name[64];
	char home[PATH_MAX];
	/* A per-run uid (runuid.h): no supplementary groups, and its lock. */
	bool per_run;
	int lock_fd;
	/*
	 * Supplementary groups, looked up by ag_user_resolve outside the
	 * agent's cgroup: inside it glibc's lookups would try nscd's socket,
	 * which the AF_UNIX hooks refuse and audit as the agent's doing.
	 */
	int nr_groups;
	gid_t groups[AG_USER_MAX_GROUPS];
};

/*
 * The user an agent runs as when the operator names one (run --user):
 * its uid, primary gid and home from the user database.  Never root: a
 * uid-0 process owns the cgroup files and could move itself out of its
 * cgroup.
 */
int ag_user_resolve(const char *name, struct ag_user *u, struct ag_err *err);
/* In the child: supplementary groups (u's, none if it has none), gid, uid, no_new_privs. */
int ag_user_become(const struct ag_user *u, struct ag_err *err);

/*
 * In the child before exec: closes every descriptor but 0-2 and the keep
 * ones (whose close-on-exec flag it clears).  Returns how many of those it
 * closed would have reached the new program (not close-on-exec), -1 when
 * /proc could not say.
 */
int ag_close_inherited(const int *keep, int nr_keep);

#endif
