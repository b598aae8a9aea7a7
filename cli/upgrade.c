// SPDX-License-Identifier: GPL-2.0
/*
 * agentgatectl upgrade: starts the new build's agentgated with the running
 * daemon's own arguments and --upgrade, detached, and waits for its
 * outcome: serving (the old daemon has handed over and exited) or the
 * reason it refused (the old daemon then keeps serving).  The sequence is
 * in daemon/upgrade.c.
 */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

#define MAX_ARGS 64
#define MAX_CMDLINE 65536

static const char upgrade_usage[] =
    "usage: agentgatectl [--instance NAME] upgrade [--daemon PATH]\n"
    "\n"
    "Replaces the running agentgated by PATH (default: the agentgated beside this\n"
    "agentgatectl) with no moment in which agents are unhooked or refused: programs\n"
    "replaced on the pinned links, maps kept, listening sockets handed over, the old\n"
    "daemon's connections finished.  A downgrade is refused.  See agentgated(8).\n";

static int default_daemon(char *out, size_t len)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		return -errno;
	self[n] = 0;
	return snprintf(out, len, "%s/agentgated", dirname(self)) >= (int)len ? -ENAMETOOLONG : 0;
}

/* The old daemon's arguments, but --foreground (the new one detaches). */
static int old_args(int pid, char *buf, size_t *len, char **args, int *nr)
{
	char path[64], *text = NULL;
	size_t n = 0;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	if (ag_read_file(path, MAX_CMDLINE, &text, &n, NULL) || n > *len)
		return -EIO;
	memcpy(buf, text, n);
	free(text);
	*nr = 0;
	/* Skips argv[0]: the old binary. */
	for (size_t off = strnlen(buf, n) + 1; off < n && *nr < MAX_ARGS - 3;
	     off += strnlen(buf + off, n - off) + 1)
		if (strcmp(buf + off, "--foreground") && strcmp(buf + off, "--upgrade"))
			args[(*nr)++] = buf + off;
	*len = n;
	return 0;
}

int cmd_upgrade(struct ag_cli *c, int argc, char **argv)
{
	static const struct cli_opt opts[] = { CLI_VAL("daemon"), CLI_END };
	static const struct cli_spec sp = { .cmd = "agentgatectl upgrade",
					    .usage = upgrade_usage,
					    .opts = opts };
	struct cli_args a;
	static char cmdline[MAX_CMDLINE];
	char daemon[PATH_MAX] = "";
	char *args[MAX_ARGS];
	size_t len = sizeof(cmdline);
	int pid, nr, status;
	pid_t child;

	if ((pid = cli_parse(&sp, argc, argv, &a)))
		return pid == 1 ? 0 : AG_EXIT_USAGE;
	cli_args_free(&a);
	if (a.ind < argc || (a.val[0] && strlen(a.val[0]) >= sizeof(daemon)))
		return cli_usage(upgrade_usage);
	if (a.val[0])
		strcpy(daemon, a.val[0]);
	if (!daemon[0] && default_daemon(daemon, sizeof(daemon)))
		return cli_fail(
		    "upgrade: cannot find agentgated beside agentgatectl; use --daemon");
	pid = ag_instance_daemon_pid(&c->inst);
	if (!pid)
		return cli_fail("upgrade: instance %s: agentgated is not running; start it instead",
				c->inst.name);
	if (old_args(pid, cmdline, &len, args + 1, &nr))
		return cli_fail("upgrade: agentgated pid %d: cannot read its arguments", pid);
	args[0] = daemon;
	args[nr + 1] = "--upgrade";
	args[nr + 2] = NULL;
	fflush(NULL);
	child = fork();
	if (child == 0) {
		execv(daemon, args);
		fprintf(stderr, "agentgatectl: upgrade: %s: %s\n", daemon, strerror(errno));
		_exit(127);
	}
	if (child < 0 || waitpid(child, &status, 0) < 0)
		return cli_fail("upgrade: %s: %s", daemon, strerror(errno));
	/* The new daemon said why on stderr; the old one serves on. */
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return cli_fail("upgrade refused or failed; agentgated pid %d %s", pid,
				ag_instance_daemon_pid(&c->inst) == pid ? "still serves"
									: "has stopped");
	printf("upgraded: agentgated pid %d replaced by pid %d\n", pid,
	       ag_instance_daemon_pid(&c->inst));
	return 0;
}
