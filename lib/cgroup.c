// SPDX-License-Identifier: GPL-2.0
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"

int ag_cgroup2_mount(char *buf, size_t len, struct ag_err *err)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];
	int ret =
	    ag_errf(err, ENOENT, "no cgroup2 filesystem is mounted (see /proc/self/mountinfo)");

	if (!f)
		return ag_errf(err, errno, "/proc/self/mountinfo: %s", strerror(errno));
	/* "36 25 0:31 / /sys/fs/cgroup/unified rw,... - cgroup2 cgroup2 rw" */
	while (fgets(line, sizeof(line), f)) {
		char *sep = strstr(line, " - ");
		char mnt[PATH_MAX];

		if (!sep || strncmp(sep + 3, "cgroup2 ", 8))
			continue;
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1)
			continue;
		if (strlen(mnt) >= len) {
			ret = ag_errf(err, ENAMETOOLONG, "cgroup2 mount path too long");
			break;
		}
		strcpy(buf, mnt);
		ret = 0;
		break;
	}
	fclose(f);
	return ret;
}

int ag_cgroup_mkdir(const char *path, struct ag_err *err)
{
	if (mkdir(path, 0755) && errno != EEXIST)
		return ag_errf(err, errno, "cgroup %s: mkdir: %s", path, strerror(errno));
	return 0;
}

int ag_cgroup_id(const char *path, uint64_t *id, struct ag_err *err)
{
	struct {
		struct file_handle fh;
		uint64_t id;
	} h = { .fh.handle_bytes = sizeof(uint64_t) };
	int mount_id;

	/* The file handle of a cgroup2 directory is its kernfs id. */
	if (name_to_handle_at(AT_FDCWD, path, &h.fh, &mount_id, 0))
		return ag_errf(err, errno, "cgroup %s: name_to_handle_at: %s", path,
			       strerror(errno));
	*id = h.id;
	return 0;
}

int ag_cgroup_level(const char *cgroup2, const char *path)
{
	size_t n = strlen(cgroup2);
	int level = 0;

	if (strncmp(path, cgroup2, n))
		return -EINVAL;
	for (const char *p = path + n; *p; p++)
		if (*p == '/' && p[1] && p[1] != '/')
			level++;
	return level;
}

int ag_cgroup_delegate(const char *path, uid_t uid, gid_t gid, struct ag_err *err)
{
	static const char *const files[] = { "", "/cgroup.procs", "/cgroup.threads",
					     "/cgroup.subtree_control" };
	char file[PATH_MAX];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (snprintf(file, sizeof(file), "%s%s", path, files[i]) >= (int)sizeof(file))
			return ag_errf(err, ENAMETOOLONG, "cgroup %s: path too long", path);
		if (chown(file, uid, gid))
			return ag_errf(err, errno, "cgroup %s: delegating to uid %u: chown %s: %s",
				       path, uid, file, strerror(errno));
	}
	return 0;
}

int ag_cgroup_of(const char *cgroup2, pid_t pid, char *buf, size_t len, struct ag_err *err)
{
	char proc[64], line[PATH_MAX + 16];
	FILE *f;
	int ret;

	if (pid)
		snprintf(proc, sizeof(proc), "/proc/%d/cgroup", (int)pid);
	else
		snprintf(proc, sizeof(proc), "/proc/self/cgroup");
	if (!(f = fopen(proc, "re")))
		return ag_errf(err, errno, "%s: %s", proc, strerror(errno));
	ret = ag_errf(err, ENOENT, "%s: no cgroup2 (\"0::\") entry", proc);
	while (fgets(line, sizeof(line), f)) {
		size_t n = strcspn(line, "\n");

		if (strncmp(line, "0::/", 4))
			continue;
		line[n] = '\0';
		/* "0::/" is the root itself: no trailing slash in the result. */
		if (snprintf(buf, len, "%s%s", cgroup2, line[4] ? line + 3 : "") >= (int)len)
			ret = ag_errf(err, ENAMETOOLONG, "cgroup %s: path too long", line + 3);
		else
			ret = 0;
		break;
	}
	fclose(f);
	return ret;
}

int ag_cgroup_self(const char *cgroup2, char *buf, size_t len, struct ag_err *err)
{
	return ag_cgroup_of(cgroup2, 0, buf, len, err);
}

int ag_cgroup_enter(const char *path, pid_t pid, struct ag_err *err)
{
	char file[PATH_MAX], num[32];
	int ret;

	snprintf(num, sizeof(num), "%d", pid ? pid : getpid());
	if (snprintf(file, sizeof(file), "%s/cgroup.procs", path) >= (int)sizeof(file))
		return ag_errf(err, ENAMETOOLONG, "cgroup %s: path too long", path);
	ret = ag_write_file(file, num, err);
	return ret;
}

typedef int (*cg_visit_fn)(const char *path, void *arg);

/* Post-order walk: children before the directory itself. */
static int cg_walk(const char *path, cg_visit_fn fn, void *arg, int depth)
{
	DIR *d;
	struct dirent *de;
	int ret = 0;

	if (depth > 64)
		return -ELOOP;
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char child[PATH_MAX];

		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		if (snprintf(child, sizeof(child), "%s/%s", path, de->d_name) >= (int)sizeof(child))
			continue;
		ret = cg_walk(child, fn, arg, depth + 1);
		if (ret)
			break;
	}
	closedir(d);
	return ret ? ret : fn(path, arg);
}

static int count_procs(const char *path, void *arg)
{
	char file[PATH_MAX], *text = NULL;
	int *count = arg;

	snprintf(file, sizeof(file), "%s/cgroup.procs", path);
	if (ag_read_file(file, 1 << 22, &text, NULL, NULL))
		return 0;
	for (char *p = text; *p; p++)
		if (*p == '\n')
			(*count)++;
	free(text);
	return 0;
}

int ag_cgroup_count_procs(const char *path)
{
	int count = 0;

	cg_walk(path, count_procs, &count, 0);
	return count;
}

static int rmdir_one(const char *path, void *arg)
{
	struct ag_err *err = arg;

	if (rmdir(path) && errno != ENOENT)
		return ag_errf(err, errno, "cgroup %s: rmdir: %s", path, strerror(errno));
	return 0;
}

int ag_cgroup_rmtree(const char *path, struct ag_err *err)
{
	int ret = cg_walk(path, rmdir_one, err, 0);

	return ret == -ENOENT ? 0 : ret;
}

int ag_cgroup_destroy(const char *path, struct ag_err *err)
{
	char file[PATH_MAX];
	struct timespec pause = { 0, 10 * 1000 * 1000 };
	struct stat st;

	if (stat(path, &st))
		return errno == ENOENT
			   ? 0
			   : ag_errf(err, errno, "cgroup %s: %s", path, strerror(errno));
	snprintf(file, sizeof(file), "%s/cgroup.kill", path);
	if (ag_cgroup_count_procs(path) > 0 && ag_write_file(file, "1", err))
		return -err->code;
	/* cgroup.kill is asynchronous: wait for the exits, bounded to 5 s. */
	for (int i = 0; i < 500 && ag_cgroup_count_procs(path) > 0; i++)
		nanosleep(&pause, NULL);
	if (ag_cgroup_count_procs(path) > 0)
		return ag_errf(err, EBUSY, "cgroup %s: processes still running after kill", path);
	return ag_cgroup_rmtree(path, err);
}
