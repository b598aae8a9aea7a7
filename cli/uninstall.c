// SPDX-License-Identifier: GPL-2.0
/*
 * agentgatectl uninstall: remove an instance.  Order matters: the agents go
 * before the links, because an agent still running when its hooks detach
 * would be ungoverned.  The state directory (audit logs) is kept.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "cli.h"
#include "kern.h"

static const char uninstall_usage[] =
    "usage: agentgatectl [--instance NAME] uninstall\n"
    "\n"
    "Stops agentgated, ends every agent process of the instance, detaches and unpins\n"
    "its programs and maps, and removes its cgroups and run directory.  The state\n"
    "directory (/var/lib/<instance>, audit logs) is kept.\n";

static int stop_daemon(const struct ag_instance *in)
{
	struct timespec pause = { 0, 10 * 1000 * 1000 };
	int pid = ag_instance_daemon_pid(in);

	if (!pid)
		return 0;
	kill(pid, SIGTERM);
	for (int i = 0; i < 500 && ag_instance_daemon_pid(in) == pid; i++)
		nanosleep(&pause, NULL);
	if (kill(pid, 0) == 0) {
		kill(pid, SIGKILL);
		nanosleep(&pause, NULL);
	}
	return pid;
}

int cmd_uninstall(struct ag_cli *c, int argc, char **argv)
{
	const struct ag_instance *in = &c->inst;
	struct ag_err err;
	char path[PATH_MAX];
	int ret = cli_simple_opts(argc, argv, uninstall_usage, NULL), pid;

	if (ret)
		return ret > 0 ? 0 : AG_EXIT_USAGE;
	if (geteuid() != 0)
		return cli_fail("uninstall: must run as root");
	pid = stop_daemon(in);
	if (pid)
		printf("stopped agentgated (pid %d)\n", pid);
	if (ag_cgroup_destroy(in->cg_agents, &err))
		return cli_fail("uninstall: %s; programs left attached (fail closed)", err.msg);
	if (ag_kern_uninstall(in, &err))
		return cli_fail("uninstall: %s", err.msg);
	if (ag_cgroup_destroy(in->cg_root, &err))
		return cli_fail("uninstall: %s", err.msg);
	snprintf(path, sizeof(path), "%s", in->control_path);
	unlink(path);
	unlink(in->pid_path);
	if (rmdir(in->run_dir) && errno != ENOENT)
		fprintf(stderr, "agentgatectl uninstall: %s: %s\n", in->run_dir, strerror(errno));
	printf("instance %s uninstalled; state directory %s kept\n", in->name, in->state_dir);
	return 0;
}
