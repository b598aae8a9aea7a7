// SPDX-License-Identifier: GPL-2.0
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

/* Descriptors the fallback closes at most, whatever the limit says. */
#define CLOSE_LOOP_MAX (1L << 20)

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

/* u's supplementary groups, resolved here rather than in the agent's cgroup. */
static int user_groups(struct ag_user *u, struct ag_err *err)
{
	int n = AG_USER_MAX_GROUPS;

	if (getgrouplist(u->name, u->gid, u->groups, &n) < 0)
		return ag_errf(err, E2BIG, "user %s: more than %d groups", u->name,
			       AG_USER_MAX_GROUPS);
	u->nr_groups = n;
	return 0;
}

int ag_user_resolve(const char *name, struct ag_user *u, struct ag_err *err)
{
	struct passwd *pw = getpwnam(name);
	unsigned long id;

	memset(u, 0, sizeof(*u));
	u->lock_fd = -1;
	if (!pw && !parse_id(name, &id))
		pw = getpwuid((uid_t)id);
	if (!pw)
		return ag_errf(err, ENOENT, "user %s: no such user", name);
	if (pw->pw_uid == 0)
		return ag_errf(err, EPERM,
			       "user %s: agents never run as root (a root process can move itself "
			       "out of its cgroup); pass another --user, or none for a uid of its "
			       "own",
			       pw->pw_name);
	u->uid = pw->pw_uid;
	u->gid = pw->pw_gid;
	snprintf(u->name, sizeof(u->name), "%s", pw->pw_name);
	snprintf(u->home, sizeof(u->home), "%s", pw->pw_dir);
	return user_groups(u, err);
}

int ag_user_become(const struct ag_user *u, struct ag_err *err)
{
	/* A per-run uid is in no group (nr_groups 0), not even by name. */
	if (setgroups(u->nr_groups, u->nr_groups ? u->groups : NULL))
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

static bool kept(int fd, const int *keep, int nr_keep)
{
	for (int i = 0; i < nr_keep; i++)
		if (keep[i] == fd)
			return true;
	return false;
}

/* Descriptors above 2 that exec would pass on: neither close-on-exec nor kept. */
static int count_inherited(const int *keep, int nr_keep)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d))) {
		int fd = atoi(de->d_name), flags;

		if (fd <= 2 || fd == dirfd(d) || kept(fd, keep, nr_keep))
			continue;
		flags = fcntl(fd, F_GETFD);
		if (flags >= 0 && !(flags & FD_CLOEXEC))
			n++;
	}
	closedir(d);
	return n;
}

/* Closes lo..hi; before close_range (Linux 5.9), one by one up to the limit. */
static void close_span(unsigned int lo, unsigned int hi)
{
	long max = sysconf(_SC_OPEN_MAX);

	if (lo > hi || !syscall(SYS_close_range, lo, hi, 0))
		return;
	if (max < 0 || max > CLOSE_LOOP_MAX)
		max = CLOSE_LOOP_MAX;
	for (unsigned int fd = lo; fd <= hi && fd < (unsigned long)max; fd++)
		close((int)fd);
}

int ag_close_inherited(const int *keep, int nr_keep)
{
	int n = count_inherited(keep, nr_keep);
	unsigned int lo = 3;

	/* One span per gap between kept descriptors, lowest first. */
	for (int round = 0; round <= nr_keep; round++) {
		int next = -1;

		for (int i = 0; i < nr_keep; i++)
			if (keep[i] >= (int)lo && (next < 0 || keep[i] < next))
				next = keep[i];
		if (next < 0) {
			close_span(lo, ~0U);
			break;
		}
		close_span(lo, (unsigned int)next - 1);
		fcntl(next, F_SETFD, 0);
		lo = (unsigned int)next + 1;
	}
	return n;
}
