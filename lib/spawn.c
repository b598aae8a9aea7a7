// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/sched.h>

#include "spawn.h"

pid_t ag_clone_into_cgroup(int cgroup_fd)
{
	struct clone_args args;
	long pid;

	memset(&args, 0, sizeof(args));
	args.flags = CLONE_INTO_CGROUP;
	args.exit_signal = SIGCHLD;
	args.cgroup = (__u64)cgroup_fd;
	/* glibc 2.36 has no clone3() wrapper; the raw call forks like fork(). */
	pid = syscall(SYS_clone3, &args, sizeof(args));
	if (pid < 0)
		return -errno;
	return (pid_t)pid;
}

static int parse_id(const char *s, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(s, &end, 10);
	return errno || *end || end == s || *out > 0x7fffffff ? -EINVAL : 0;
}

int ag_user_resolve(const char *name, struct ag_user *u, struct ag_err *err)
{
	const char *sudo_uid = getenv("SUDO_UID"), *sudo_gid = getenv("SUDO_GID");
	struct passwd *pw;
	unsigned long id;

	memset(u, 0, sizeof(*u));
	if (name) {
		pw = getpwnam(name);
		if (!pw && !parse_id(name, &id))
			pw = getpwuid((uid_t)id);
		if (!pw)
			return ag_errf(err, ENOENT, "user %s: no such user", name);
	} else if (sudo_uid && sudo_gid && !parse_id(sudo_uid, &id) && id != 0) {
		unsigned long gid;

		if (parse_id(sudo_gid, &gid))
			return ag_errf(err, EINVAL, "SUDO_GID=%s: not a group id", sudo_gid);
		u->uid = (uid_t)id;
		u->gid = (gid_t)gid;
		pw = getpwuid(u->uid);
		snprintf(u->name, sizeof(u->name), "%s", pw ? pw->pw_name : sudo_uid);
		return 0;
	} else {
		pw = getpwnam("nobody");
		if (!pw)
			return ag_errf(err, ENOENT, "user nobody: no such user; pass --user");
	}
	if (pw->pw_uid == 0)
		return ag_errf(err, EPERM,
			       "user %s: agents never run as root (a root process can move itself "
			       "out of its cgroup); pass --user",
			       pw->pw_name);
	u->uid = pw->pw_uid;
	u->gid = pw->pw_gid;
	snprintf(u->name, sizeof(u->name), "%s", pw->pw_name);
	return 0;
}

int ag_user_become(const struct ag_user *u, struct ag_err *err)
{
	if (initgroups(u->name, u->gid) && setgroups(0, NULL))
		return ag_errf(err, errno, "user %s: setgroups: %s", u->name, strerror(errno));
	if (setresgid(u->gid, u->gid, u->gid))
		return ag_errf(err, errno, "user %s: setgid %u: %s", u->name, u->gid,
			       strerror(errno));
	if (setresuid(u->uid, u->uid, u->uid))
		return ag_errf(err, errno, "user %s: setuid %u: %s", u->name, u->uid,
			       strerror(errno));
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return ag_errf(err, errno, "no_new_privs: %s", strerror(errno));
	return 0;
}
