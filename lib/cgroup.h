/* SPDX-License-Identifier: GPL-2.0 */
/* cgroup v2 helpers: discovery, ids, membership, teardown. */
#ifndef AG_CGROUP_H
#define AG_CGROUP_H

#include <stdint.h>
#include <sys/types.h>

#include "util.h"

/* The cgroup2 mount point from /proc/self/mountinfo (unified or hybrid). */
int ag_cgroup2_mount(char *buf, size_t len, struct ag_err *err);
/* mkdir; an existing directory is fine. */
int ag_cgroup_mkdir(const char *path, struct ag_err *err);
/* The cgroup id (kernfs node id) that BPF's cgroup helpers return. */
int ag_cgroup_id(const char *path, uint64_t *id, struct ag_err *err);
/* Depth below the cgroup2 root: <root> is 0, <root>/a is 1. */
int ag_cgroup_level(const char *cgroup2, const char *path);
/*
 * Delegates the cgroup to uid/gid as the kernel's cgroup-v2 documentation
 * describes ("Delegation"): the directory and its cgroup.procs,
 * cgroup.threads and cgroup.subtree_control.  The user may then create
 * cgroups below it and move its processes among them, never out of it
 * (moving needs write access to the common ancestor's cgroup.procs).
 */
int ag_cgroup_delegate(const char *path, uid_t uid, gid_t gid, struct ag_err *err);
/*
 * The cgroup directory of process pid (0: the caller): cgroup2 joined with
 * /proc/<pid>/cgroup's "0::" path.  A file read, whatever the tree's size.
 */
int ag_cgroup_of(const char *cgroup2, pid_t pid, char *buf, size_t len, struct ag_err *err);
/* The caller's own cgroup directory (ag_cgroup_of(cgroup2, 0, ...)). */
int ag_cgroup_self(const char *cgroup2, char *buf, size_t len, struct ag_err *err);
/* Moves a process (0: the caller) into the cgroup. */
int ag_cgroup_enter(const char *path, pid_t pid, struct ag_err *err);
/* Number of processes in the cgroup and below it. */
int ag_cgroup_count_procs(const char *path);
/* Kills every process in the cgroup and below (cgroup.kill), waits until
 * it is empty (bounded), then removes the whole subtree. */
int ag_cgroup_destroy(const char *path, struct ag_err *err);
/* Removes empty cgroups below and including path, deepest first. */
int ag_cgroup_rmtree(const char *path, struct ag_err *err);

#endif
