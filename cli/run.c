// SPDX-License-Identifier: GPL-2.0
/*
 * agentgatectl run: start a command as a governed agent.
 *
 * The agent gets a fresh cgroup <instance>/agents/<agent>/run-<pid> and is
 * created inside it (clone3 with CLONE_INTO_CGROUP), so not one of its
 * sockets exists outside the hooks.  It runs as an unprivileged user with
 * no_new_privs: setuid binaries cannot give it back what it lacks.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "cli.h"
#include "kern.h"
#include "spawn.h"

static const char run_usage[] =
    "usage: agentgatectl [--instance NAME] run --agent AGENT [--user USER] [--netns]\n"
    "                    -- CMD [ARGS...]\n"
    "\n"
    "Runs CMD as agent AGENT: in a fresh cgroup below <instance>/agents/AGENT, as\n"
    "USER (default: the sudo caller, else nobody; never root), with no_new_privs.\n"
    "Every TCP connection it makes goes through agentgated.  Exits with CMD's status.\n";

static volatile sig_atomic_t child_pid;

/* Signals meant for the agent (a service manager's TERM) are passed on. */
static void forward(int sig)
{
	if (child_pid > 0)
		kill(child_pid, sig);
}

static int wait_child(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return 127;
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

/* The instance CA agentgated keeps in <state_dir>/tls, when it has made one. */
struct ca_files {
	char cert[PATH_MAX];   /* ca.crt */
	char bundle[PATH_MAX]; /* the system bundle plus ca.crt */
	bool present;
};

static bool regular_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static void ca_files_find(const struct ag_instance *in, struct ca_files *ca)
{
	int a = snprintf(ca->cert, sizeof(ca->cert), "%s/tls/ca.crt", in->state_dir);
	int b = snprintf(ca->bundle, sizeof(ca->bundle), "%s/tls/bundle.pem", in->state_dir);

	ca->present = a > 0 && (size_t)a < sizeof(ca->cert) && b > 0 &&
		      (size_t)b < sizeof(ca->bundle) && regular_file(ca->cert) &&
		      regular_file(ca->bundle);
}

/*
 * Points the agent's TLS stacks at the instance CA, so that it trusts the
 * leaves agentgated mints when it terminates TLS: OpenSSL and curl read
 * SSL_CERT_FILE, Python requests REQUESTS_CA_BUNDLE (both replace the trust
 * store, hence the bundle), Node adds NODE_EXTRA_CA_CERTS to its own.  Run
 * after dropping privileges: a file the agent cannot read would break every
 * TLS connection it makes, so it is left out with a warning instead.
 */
static void ca_env(const struct ca_files *ca)
{
	if (!ca->present)
		return;
	if (access(ca->cert, R_OK) || access(ca->bundle, R_OK)) {
		fprintf(stderr,
			"agentgatectl run: warning: %s or %s is not readable by the agent's "
			"user; it will not trust the instance CA\n",
			ca->cert, ca->bundle);
		return;
	}
	setenv("SSL_CERT_FILE", ca->bundle, 1);
	setenv("REQUESTS_CA_BUNDLE", ca->bundle, 1);
	setenv("NODE_EXTRA_CA_CERTS", ca->cert, 1);
}

static void child(const struct ag_cli *c, const char *agent, const struct ag_user *u,
		  const struct ca_files *ca, char **cmd)
{
	struct ag_err err;

	signal(SIGINT, SIG_DFL);
	signal(SIGQUIT, SIG_DFL);
	if (ag_user_become(u, &err)) {
		fprintf(stderr, "agentgatectl run: %s\n", err.msg);
		_exit(126);
	}
	setenv("AGENTGATE_INSTANCE", c->inst.name, 1);
	setenv("AGENTGATE_AGENT", agent, 1);
	ca_env(ca);
	execvp(cmd[0], cmd);
	fprintf(stderr, "agentgatectl run: %s: %s\n", cmd[0], strerror(errno));
	_exit(errno == ENOENT ? 127 : 126);
}

int cmd_run(struct ag_cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "agent", required_argument, NULL, 'a' },
		{ "user", required_argument, NULL, 'u' },
		{ "netns", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *agent = NULL, *user = NULL;
	struct ca_files ca;
	char run_cg[PATH_MAX];
	struct ag_kern k;
	struct ag_user u;
	struct ag_err err;
	int opt, cgfd, status;
	pid_t pid;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		switch (opt) {
		case 'a':
			agent = optarg;
			break;
		case 'u':
			user = optarg;
			break;
		case 'n':
			return cli_fail("run --netns: network-namespace agents are not "
					"supported yet; run without --netns");
		case 'h':
			fputs(run_usage, stdout);
			return 0;
		default:
			return cli_usage(run_usage);
		}
	}
	if (!agent || optind >= argc)
		return cli_usage(run_usage);
	if (geteuid() != 0)
		return cli_fail("run: must run as root (sudo agentgatectl run ...) to create the "
				"agent's cgroup");
	if (ag_user_resolve(user, &u, &err))
		return cli_fail("run: %s", err.msg);
	if (ag_kern_open(&k, &c->inst, &err))
		return cli_fail("run: %s", err.msg);
	if (ag_agent_register(&k, &c->inst, agent, AG_VERDICT_KEEP, NULL, &err)) {
		ag_kern_close(&k);
		return cli_fail("run: %s", err.msg);
	}
	ag_kern_close(&k);
	if (!ag_instance_daemon_pid(&c->inst))
		fprintf(stderr,
			"agentgatectl run: warning: agentgated (instance %s) is not running; the "
			"agent's connections will be refused\n",
			c->inst.name);

	ca_files_find(&c->inst, &ca);

	snprintf(run_cg, sizeof(run_cg), "%s/%s/run-%d", c->inst.cg_agents, agent, getpid());
	if (ag_cgroup_mkdir(run_cg, &err))
		return cli_fail("run: %s", err.msg);
	cgfd = open(run_cg, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cgfd < 0) {
		rmdir(run_cg);
		return cli_fail("run: cgroup %s: %s", run_cg, strerror(errno));
	}
	signal(SIGINT, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	signal(SIGTERM, forward);
	signal(SIGHUP, forward);
	pid = ag_clone_into_cgroup(cgfd);
	if (pid == 0)
		child(c, agent, &u, &ca, argv + optind);
	close(cgfd);
	if (pid < 0) {
		rmdir(run_cg);
		return cli_fail("run: clone3 into %s: %s", run_cg, strerror(-pid));
	}
	child_pid = pid;
	status = wait_child(pid);
	/* Background processes the agent left keep the cgroup (and its rules). */
	if (rmdir(run_cg) && errno == EBUSY)
		fprintf(stderr, "agentgatectl run: agent processes are still running in %s\n",
			run_cg);
	return status;
}
