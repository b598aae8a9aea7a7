// SPDX-License-Identifier: GPL-2.0
/* Sub-agent chains from cgroup paths; see delegation.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup.h"
#include "delegation.h"
#include "kern.h" /* ag_agent_name_valid */

struct search {
	uint64_t id;
	size_t visited;
	char *rel;
	size_t len;
};

/*
 * Depth-first below the directory dfd, whose path relative to the root is
 * s->rel[0..at).  1 when found (s->rel then holds the path), 0 when not,
 * negative errno when a limit stopped the search.  The agent owns the
 * delegated part of the tree and may make it as wide and deep as the
 * kernel lets it (agentgatectl run caps both), so every step is bounded.
 */
static int search_dir(struct search *s, int dfd, size_t at, int depth)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;
	int ret = 0;

	if (!d) {
		close(dfd);
		return 0; /* unreadable: an agent may hide its own cgroups, not others' */
	}
	while (!ret && (de = readdir(d))) {
		size_t nl = strlen(de->d_name);
		int cfd;

		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		if (++s->visited > AG_DELEGATION_ENTRIES) {
			ret = -E2BIG;
			break;
		}
		if (at + !!at + nl >= s->len) {
			ret = -ENAMETOOLONG;
			break;
		}
		if (at)
			s->rel[at] = '/';
		memcpy(s->rel + at + !!at, de->d_name, nl + 1);
		/* The kernfs inode of a cgroup2 directory is its cgroup id. */
		if ((uint64_t)de->d_ino == s->id) {
			ret = 1;
			break;
		}
		if (depth + 1 >= AG_DELEGATION_DEPTH)
			continue;
		cfd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (cfd >= 0)
			ret = search_dir(s, cfd, at + !!at + nl, depth + 1);
	}
	closedir(d);
	if (!ret)
		s->rel[at] = '\0';
	return ret;
}

int ag_delegation_find(const char *root_dir, uint64_t cgroup_id, char *rel, size_t len,
		       struct ag_err *err)
{
	struct search s = { .id = cgroup_id, .rel = rel, .len = len };
	struct stat st;
	int dfd, ret;

	if (!len)
		return ag_errf(err, ENAMETOOLONG, "cgroup %s: no room for a path", root_dir);
	rel[0] = '\0';
	dfd = open(root_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return ag_errf(err, errno, "cgroup %s: %s", root_dir, strerror(errno));
	if (fstat(dfd, &st)) {
		ret = errno;
		close(dfd);
		return ag_errf(err, ret, "cgroup %s: %s", root_dir, strerror(ret));
	}
	if ((uint64_t)st.st_ino == cgroup_id) {
		close(dfd);
		return 0;
	}
	ret = search_dir(&s, dfd, 0, 0);
	if (ret == 1)
		return 0;
	if (ret == -E2BIG)
		return ag_errf(err, E2BIG, "cgroup %llu: not among the first %d cgroups below %s",
			       (unsigned long long)cgroup_id, AG_DELEGATION_ENTRIES, root_dir);
	if (ret == -ENAMETOOLONG)
		return ag_errf(err, ENAMETOOLONG, "cgroup path below %s: longer than %zu bytes",
			       root_dir, len - 1);
	return ag_errf(err, ENOENT, "cgroup %llu: not found within %d levels below %s",
		       (unsigned long long)cgroup_id, AG_DELEGATION_DEPTH, root_dir);
}

int ag_delegation_find_pid(const char *cgroup2, const char *root_dir, pid_t pid, uint64_t cgroup_id,
			   char *rel, size_t len, struct ag_err *err)
{
	size_t n = strlen(root_dir);
	char path[PATH_MAX];
	struct stat st;
	int ret;

	if ((ret = ag_cgroup_of(cgroup2, pid, path, sizeof(path), err)))
		return ret;
	if (strncmp(path, root_dir, n) || (path[n] && path[n] != '/'))
		return ag_errf(err, ESTALE, "process %d: cgroup %s: not below %s", (int)pid, path,
			       root_dir);
	/* The id is the directory's inode: the process may have moved or gone since. */
	if (stat(path, &st) || (uint64_t)st.st_ino != cgroup_id)
		return ag_errf(err, ESTALE, "process %d: no longer in cgroup %llu", (int)pid,
			       (unsigned long long)cgroup_id);
	if (snprintf(rel, len, "%s", path[n] ? path + n + 1 : "") >= (int)len)
		return ag_errf(err, ENAMETOOLONG, "cgroup path below %s: longer than %zu bytes",
			       root_dir, len ? len - 1 : 0);
	return 0;
}

int ag_delegation_component(const char *comp, size_t len, char name[AG_NAME_LEN])
{
	size_t n = len;

	/* agentgatectl run names it <agent>-<pid>; the pid says nothing. */
	while (n && comp[n - 1] >= '0' && comp[n - 1] <= '9')
		n--;
	if (n && n < len && comp[n - 1] == '-')
		len = n - 1;
	if (!len || len >= AG_NAME_LEN)
		return -EINVAL;
	memcpy(name, comp, len);
	name[len] = '\0';
	return ag_agent_name_valid(name) ? 0 : -EINVAL;
}

static bool run_component(const char *comp, size_t len)
{
	if (len <= 4 || strncmp(comp, "run-", 4))
		return false;
	for (size_t i = 4; i < len; i++)
		if (comp[i] < '0' || comp[i] > '9')
			return false;
	return true;
}

static bool declares(const struct ag_agent_conf *ac, const char *parent)
{
	for (int i = 0; ac && i < ac->nr_delegated_by; i++)
		if (!strcmp(ac->delegated_by[i], parent))
			return true;
	return false;
}

void ag_delegation_chain(const struct ag_conf *c, const char *root, const char *rel,
			 struct ag_delegation *out)
{
	const char *p = rel, *end;
	bool first = true;

	out->n = 1;
	snprintf(out->name[0], sizeof(out->name[0]), "%s", root);
	out->cut = snprintf(out->sub_cgroup, sizeof(out->sub_cgroup), "%s", rel) >=
		   (int)sizeof(out->sub_cgroup);
	for (; *p && !out->cut; p = *end ? end + 1 : end, first = false) {
		char name[AG_NAME_LEN];
		size_t len;

		end = strchrnul(p, '/');
		len = (size_t)(end - p);
		if (first) {
			out->cut = !run_component(p, len);
			continue;
		}
		if (out->n == AG_DELEGATION_MAX || ag_delegation_component(p, len, name) ||
		    !declares(ag_conf_agent(c, name), out->name[out->n - 1])) {
			out->cut = true;
			break;
		}
		memcpy(out->name[out->n++], name, sizeof(name));
	}
}

const char *ag_delegation_fmt(const struct ag_delegation *dg, char *buf, size_t len)
{
	size_t o = 0;

	if (len)
		buf[0] = '\0';
	for (size_t i = 0; i + 1 < dg->n && o < len; i++)
		o += snprintf(buf + o, len - o, "%s%s", i ? "," : "", dg->name[i]);
	return buf;
}
