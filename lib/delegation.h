/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Sub-agents (DESIGN section 4, agentgatectl(8) run).  The run cgroup
 * <agents>/<root>/run-<pid> of an agent is delegated to the agent's user,
 * who may start sub-agents below it, each in <parent's cgroup>/<name>-<pid>.
 * The kernel keeps all of them inside the root agent's subtree, and its
 * hooks restrict them like the root agent.  The daemon names a connection
 * by the chain of agents its cgroup's path spells, root first, and honours
 * a name only where the configuration says that agent may be started by
 * its parent ("delegated_by"): the agent chooses its sub-cgroup names, the
 * configuration decides what they mean.
 */
#ifndef AG_DELEGATION_H
#define AG_DELEGATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"

/* Directories below <agents>/<root> a search descends (run-<pid> is the first). */
#define AG_DELEGATION_DEPTH 8
/* Directories one search looks at, at most. */
#define AG_DELEGATION_ENTRIES 4096
/* Agents in a chain, the root included: one per level below run-<pid>, plus the root. */
#define AG_DELEGATION_MAX AG_DELEGATION_DEPTH
/* Bytes of a relative path kept (a sub-cgroup name longer than an agent name
 * plus "-<pid>" can never be honoured, so nothing useful is cut). */
#define AG_DELEGATION_PATH 512

struct ag_delegation {
	size_t n; /* >= 1: name[0] is the root agent, name[n - 1] the calling agent */
	char name[AG_DELEGATION_MAX][AG_NAME_LEN];
	/*
	 * The caller's cgroup below <agents>/<root> ("" for the root's own),
	 * e.g. "run-12/B-34".  cut: part of it was not honoured (an undeclared
	 * or invalid name, too deep, or the cgroup was not found), so the
	 * chain stops at the last honoured agent; logs show sub_cgroup then.
	 */
	char sub_cgroup[AG_DELEGATION_PATH];
	bool cut;
};

/*
 * The directory below root_dir (<agents>/<root>) whose cgroup id is
 * cgroup_id (a cgroup2 directory's inode number), as a path relative to
 * root_dir ("" for root_dir itself).  Searches at most
 * AG_DELEGATION_DEPTH levels and AG_DELEGATION_ENTRIES directories.
 * -ENOENT when not found, -E2BIG when the limits stopped the search,
 * -ENAMETOOLONG when the path does not fit in len.
 */
int ag_delegation_find(const char *root_dir, uint64_t cgroup_id, char *rel, size_t len,
		       struct ag_err *err);

/*
 * What ag_delegation_find returns, found from the cgroup process pid is in
 * (/proc/<pid>/cgroup, cgroup2 the mount point) at the cost of one file
 * read and one stat, whatever the tree's width: the kernel recorded both
 * the pid and the cgroup id at connect time.  -ESTALE when that process is
 * no longer in cgroup_id (it exited, moved, or its pid was reused), and
 * only then must the caller search.
 */
int ag_delegation_find_pid(const char *cgroup2, const char *root_dir, pid_t pid, uint64_t cgroup_id,
			   char *rel, size_t len, struct ag_err *err);

/*
 * The agent a sub-cgroup's name says, into name: "B-456" and "B" both say
 * B.  -EINVAL when what is left is not a valid agent name.
 */
int ag_delegation_component(const char *comp, size_t len, char name[AG_NAME_LEN]);

/*
 * The chain of root's connection from cgroup rel (relative to
 * <agents>/<root>): its first component is agentgatectl run's "run-<pid>",
 * each further one a sub-agent, honoured when c declares its parent in the
 * sub-agent's "delegated_by".  A path whose first component is not
 * "run-<digits>" was made by someone else (root): it names nobody.
 */
void ag_delegation_chain(const struct ag_conf *c, const char *root, const char *rel,
			 struct ag_delegation *out);

/* The agents before the calling one, "A,B" (root first); "" when none. */
const char *ag_delegation_fmt(const struct ag_delegation *dg, char *buf, size_t len);

#endif
