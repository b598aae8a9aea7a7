// SPDX-License-Identifier: GPL-2.0
/* Per-run uids: see runuid.h for the claim's steps and their order. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "fileio.h"
#include "runuid.h"

void ag_runuid_range(const struct ag_config *cfg, uint32_t *min, uint32_t *max)
{
	*min = cfg->agent_uid_min ? cfg->agent_uid_min : AG_DEFAULT_AGENT_UID_MIN;
	*max = cfg->agent_uid_min ? cfg->agent_uid_max : AG_DEFAULT_AGENT_UID_MAX;
}

/* Whether a "Uid:" or "Gid:" line of /proc/PID/status names id. */
static bool status_has_id(const char *status, uint32_t id)
{
	static const char *const keys[] = { "\nUid:", "\nGid:" };

	for (size_t k = 0; k < 2; k++) {
		const char *p = strstr(status, keys[k]);
		unsigned long v[4];

		if (p && sscanf(p + 5, "%lu %lu %lu %lu", &v[0], &v[1], &v[2], &v[3]) == 4)
			for (int i = 0; i < 4; i++)
				if (v[i] == id)
					return true;
	}
	return false;
}

/* Whether any process of the host runs with id as a uid or gid. */
static bool id_in_use(uint32_t id)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	bool used = false;

	if (!d)
		return true; /* Fail closed: cannot tell, so not free. */
	while (!used && (de = readdir(d))) {
		char path[300], *status = NULL;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/status", de->d_name);
		/* A process that exited meanwhile does not use it. */
		if (!ag_read_file(path, 16384, &status, NULL, NULL))
			used = status_has_id(status, id);
		free(status);
	}
	closedir(d);
	return used;
}

static int lock_dir(struct ag_err *err)
{
	int fd;

	if (mkdir(AG_RUNUID_DIR, 0700) && errno != EEXIST)
		return ag_errf(err, errno, "%s: %s", AG_RUNUID_DIR, strerror(errno));
	fd = open(AG_RUNUID_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return ag_errf(err, errno, "%s: %s", AG_RUNUID_DIR, strerror(errno));
	return fd;
}

/* The lock of uid id, or -1 when another run holds it. */
static int lock_uid(int dirfd, uint32_t id)
{
	char name[16];
	int fd;

	snprintf(name, sizeof(name), "%u", id);
	fd = openat(dirfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB)) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static int make_home(struct ag_user *u, struct ag_err *err)
{
	snprintf(u->home, sizeof(u->home), "/tmp/agentgate-%u.XXXXXX", u->uid);
	if (!mkdtemp(u->home))
		return ag_errf(err, errno, "home %s: %s", u->home, strerror(errno));
	if (chown(u->home, u->uid, u->gid)) {
		int e = errno;

		rmdir(u->home);
		return ag_errf(err, e, "home %s: chown: %s", u->home, strerror(e));
	}
	return 0;
}

int ag_runuid_claim(uint32_t min, uint32_t max, struct ag_user *u, struct ag_err *err)
{
	uint64_t span = (uint64_t)max - min + 1;
	uint32_t r = 0;
	int dirfd, scans = 0, ret;

	if (!min || min > max)
		return ag_errf(err, EINVAL, "agent uids %u-%u: not a range", min, max);
	if ((dirfd = lock_dir(err)) < 0)
		return dirfd;
	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
		r = (uint32_t)getpid();
	for (uint64_t i = 0; i < span && scans < AG_RUNUID_SCANS; i++) {
		uint32_t id = (uint32_t)(min + (r + i) % span);
		int fd = lock_uid(dirfd, id);

		if (fd < 0)
			continue;
		if (getpwuid(id) || getgrgid(id) || (scans++, id_in_use(id))) {
			close(fd);
			continue;
		}
		close(dirfd);
		memset(u, 0, sizeof(*u));
		u->uid = id;
		u->gid = id;
		u->per_run = true;
		u->lock_fd = fd;
		snprintf(u->name, sizeof(u->name), "agentgate-%u", id);
		if ((ret = make_home(u, err))) {
			close(fd);
			memset(u, 0, sizeof(*u));
			u->lock_fd = -1;
		}
		return ret;
	}
	close(dirfd);
	return ag_errf(err, EAGAIN,
		       "agent uids %u-%u: no free uid (every one is in use, in the user "
		       "database or held by another run)",
		       min, max);
}

void ag_runuid_release(struct ag_user *u)
{
	pid_t pid;

	if (!u->per_run)
		return;
	/* As U: a symlink the agent put in its home cannot point root anywhere. */
	pid = fork();
	if (pid == 0) {
		if (setgroups(0, NULL) || setresgid(u->gid, u->gid, u->gid) ||
		    setresuid(u->uid, u->uid, u->uid))
			_exit(1);
		ag_file_remove_tree(u->home);
		_exit(0);
	}
	if (pid > 0)
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	/* Its last entry, /tmp/agentgate-U.X, is U's: only root may remove it from sticky /tmp. */
	rmdir(u->home);
	close(u->lock_fd);
	u->lock_fd = -1;
	u->per_run = false;
}
