/* SPDX-License-Identifier: GPL-2.0 */
/*
 * An instance: everything one running gateway owns, named by the instance
 * name, so tests and the demo never touch a real installation.
 *	<cgroup2>/<name>/{agents,daemon}	/sys/fs/bpf/<name>/
 *	/run/<name>/{control.sock,agentgated.pid}	/var/lib/<name>/
 */
#ifndef AG_INSTANCE_H
#define AG_INSTANCE_H

#include <limits.h>

#include "util.h"

#define AG_INSTANCE_DEFAULT "agentgate"
#define AG_INSTANCE_MAX 48
#define AG_BPFFS "/sys/fs/bpf"
/* Instance paths are short by construction; PATH_MAX buffers can extend them. */
#define AG_PATH_MAX 512

struct ag_instance {
	char name[AG_INSTANCE_MAX];
	char cgroup2[AG_PATH_MAX]; /* the cgroup2 mount point */
	char cg_root[AG_PATH_MAX]; /* <cgroup2>/<name> */
	char cg_agents[AG_PATH_MAX];
	char cg_daemon[AG_PATH_MAX];
	char pin_dir[AG_PATH_MAX]; /* /sys/fs/bpf/<name> */
	char run_dir[AG_PATH_MAX];
	char state_dir[AG_PATH_MAX];
	char control_path[AG_PATH_MAX];
	char pid_path[AG_PATH_MAX];
};

/* Validates the name ([A-Za-z0-9_.-], not starting with '.') and fills the
 * paths; state_dir may be NULL for the default. */
int ag_instance_init(struct ag_instance *in, const char *name, const char *state_dir,
		     struct ag_err *err);
/* Mounts bpffs at /sys/fs/bpf when nothing is mounted there. */
int ag_bpffs_ensure(struct ag_err *err);
/* Path of a pinned object below the instance's bpffs directory. */
int ag_pin_path(const struct ag_instance *in, const char *rel, char *buf, size_t len);
/* The pid in /run/<name>/agentgated.pid if that process is alive, else 0. */
int ag_instance_daemon_pid(const struct ag_instance *in);

#endif
