// SPDX-License-Identifier: GPL-2.0
/*
 * agentgatectl run: start a command as a governed agent.
 *
 * The agent gets a fresh cgroup <instance>/agents/<agent>/run-<pid> and is
 * created inside it (clone3 with CLONE_INTO_CGROUP), so not one of its
 * sockets exists outside the hooks.  It runs as an unprivileged user with
 * no_new_privs: setuid binaries cannot give it back what it lacks.  That
 * user is a uid of its own for the run (lib/runuid.h) unless the operator
 * names one, and the agent is sandboxed (lib/sandbox.h) so that it cannot
 * take sockets or anything else from processes that are not its own.  It
 * gets descriptors 0-2 and those the operator names, nothing else: a socket
 * made outside the cgroup is one no hook would see.
 *
 * The run cgroup is delegated to that user, so the agent can start
 * sub-agents without root: `agentgatectl run --agent B` from inside it
 * makes <its own cgroup>/B-<pid> and starts B there, as the same user.
 * The kernel keeps them inside the agent's subtree and its hooks restrict
 * them like the agent; agentgated names their connections B when the
 * configuration says B may be started by its parent (lib/delegation.h).
 *
 * With --netns the agent also gets a network namespace of its own
 * (lib/netns.h): its only way out is a veth to the gateway address, where
 * the XDP guard drops whatever the cgroup hooks could not see.  The
 * namespace, the veth and the guard go when the agent exits.  Its
 * sub-agents share it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "cli.h"
#include "delegation.h"
#include "kern.h"
#include "netns.h"
#include "runuid.h"
#include "sandbox.h"
#include "spawn.h"

/*
 * Sub-cgroups one run's tree may hold, and how deep: what the daemon
 * searches to name a sub-agent (lib/delegation.h) stays bounded whatever
 * the agent does, with room for several runs of one agent.
 */
#define SUB_CGROUPS_MAX 512
#define SUB_CGROUPS_DEPTH (AG_DELEGATION_DEPTH - 1)
/* Descriptors --keep-fd may name. */
#define KEEP_FDS_MAX 16

static const char run_usage[] =
    "usage: agentgatectl [--instance NAME] run --agent AGENT [--user USER] [--netns]\n"
    "                    [--keep-fd N]... -- CMD [ARGS...]\n"
    "\n"
    "Runs CMD as agent AGENT: in a fresh cgroup below <instance>/agents/AGENT, as\n"
    "USER (default: a uid of its own for this run, from \"agent_uids\", with a fresh\n"
    "HOME; never root), with no_new_privs, Landlock and a seccomp filter: it cannot\n"
    "trace or take descriptors from other processes, nor make sockets other than\n"
    "inet, inet6, unix and netlink route.  Every TCP connection it makes goes\n"
    "through agentgated.  It gets descriptors 0-2 and each --keep-fd N, no others.\n"
    "Exits with CMD's status.\n"
    "\n"
    "--netns: CMD also runs in a network namespace of its own, reaching the host\n"
    "only through a veth to agentgated and the configured resolvers (its\n"
    "/etc/resolv.conf names them); an XDP program on the host side drops the rest.\n"
    "\n"
    "Inside an agent, without root, it starts CMD as sub-agent AGENT in a cgroup\n"
    "below the caller's own, as the caller's user (no --user): agentgated names\n"
    "its connections AGENT when the configuration lists the caller's agent in\n"
    "AGENT's \"delegated_by\", else they stay the caller's.\n";

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
 * leaves agentgated mints when it terminates TLS: OpenSSL reads
 * SSL_CERT_FILE, curl CURL_CA_BUNDLE (a curl built with its own default
 * bundle ignores SSL_CERT_FILE), Python requests REQUESTS_CA_BUNDLE (all
 * replace the trust store, hence the bundle), Node adds NODE_EXTRA_CA_CERTS
 * to its own.  Run
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
	setenv("CURL_CA_BUNDLE", ca->bundle, 1);
	setenv("NODE_EXTRA_CA_CERTS", ca->cert, 1);
}

/* What one run starts its agent with; u NULL: a sub-agent, which stays its parent's user. */
struct run_ctx {
	const char *agent;
	const struct ag_user *u;
	const struct ca_files *ca;
	struct ag_netns_run *ns; /* NULL: the caller's network namespace */
	const int *keep;	 /* --keep-fd */
	int nr_keep;
};

/* The user's identity in the environment: a per-run uid has no passwd entry to look up. */
static void user_env(const struct ag_user *u)
{
	if (u->home[0])
		setenv("HOME", u->home, 1);
	setenv("USER", u->name, 1);
	setenv("LOGNAME", u->name, 1);
	/* A per-run uid reads what "other" may: say so where it will matter first. */
	if (u->per_run && access(".", R_OK | X_OK))
		fprintf(stderr,
			"agentgatectl run: warning: the agent's uid %u cannot read the current "
			"directory; what it needs must be readable by others, or pass --user\n",
			u->uid);
}

/*
 * The last steps before exec: only 0-2 and the kept descriptors go on, then
 * the sandbox.  Landlock is required unless the uid is the run's own: with
 * a uid that others may share, it is all that keeps them out of reach.
 */
static int confine(const struct run_ctx *rc, struct ag_err *err)
{
	int closed = ag_close_inherited(rc->keep, rc->nr_keep);

	if (closed > 0)
		fprintf(stderr,
			"agentgatectl run: closed %d inherited descriptor%s (--keep-fd N passes "
			"one on)\n",
			closed, closed == 1 ? "" : "s");
	if (!ag_landlock_abi() && rc->u && rc->u->per_run)
		fprintf(stderr, "agentgatectl run: warning: no Landlock on this kernel; the "
				"agent's own uid keeps other processes out of its reach\n");
	return ag_sandbox_apply(rc->u && !rc->u->per_run, err);
}

static void child(const struct ag_cli *c, const struct run_ctx *rc, char **cmd)
{
	struct ag_err err;
	int ret = rc->ns ? ag_netns_enter(rc->ns, &err) : 0;

	signal(SIGINT, SIG_DFL);
	signal(SIGQUIT, SIG_DFL);
	if (!ret && rc->u)
		ret = ag_user_become(rc->u, &err);
	else if (!ret && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		ret = ag_errf(&err, errno, "no_new_privs: %s", strerror(errno));
	if (!ret) {
		setenv("AGENTGATE_INSTANCE", c->inst.name, 1);
		setenv("AGENTGATE_AGENT", rc->agent, 1);
		if (rc->u)
			user_env(rc->u);
		if (rc->ca)
			ca_env(rc->ca);
		ret = confine(rc, &err);
	}
	if (ret) {
		/* Fail closed: an agent that is not confined does not start. */
		fprintf(stderr, "agentgatectl run: %s\n", err.msg);
		_exit(126);
	}
	execvp(cmd[0], cmd);
	fprintf(stderr, "agentgatectl run: %s: %s\n", cmd[0], strerror(errno));
	_exit(errno == ENOENT ? 127 : 126);
}

/* Starts CMD inside cg (made by the caller, removed here), waits for it. */
static int spawn_in(const struct ag_cli *c, const char *cg, const struct run_ctx *rc, char **cmd)
{
	struct ag_err err;
	int cgfd, status;
	pid_t pid;

	cgfd = open(cg, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cgfd < 0) {
		status = errno;
		rmdir(cg);
		return cli_fail("run: cgroup %s: %s", cg, strerror(status));
	}
	signal(SIGINT, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	signal(SIGTERM, forward);
	signal(SIGHUP, forward);
	pid = ag_clone_into_cgroup(cgfd);
	if (pid == 0)
		child(c, rc, cmd);
	close(cgfd);
	if (pid < 0) {
		rmdir(cg);
		return cli_fail("run: clone3 into %s: %s", cg, strerror(-pid));
	}
	child_pid = pid;
	status = wait_child(pid);
	/* Background processes the agent left keep the cgroup (and its rules);
	 * the empty cgroups of its sub-agents go with it. */
	if (ag_cgroup_rmtree(cg, &err) == -EBUSY)
		fprintf(stderr, "agentgatectl run: agent processes are still running in %s\n", cg);
	return status;
}

/* The run cgroup's user may make sub-cgroups, within bounds it cannot change. */
static int delegate(const char *cg, const struct ag_user *u, struct ag_err *err)
{
	static const struct {
		const char *file;
		int value;
	} limits[] = {
		{ "cgroup.max.descendants", SUB_CGROUPS_MAX },
		{ "cgroup.max.depth", SUB_CGROUPS_DEPTH },
	};
	char file[PATH_MAX], num[16];
	int ret;

	for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
		if (snprintf(file, sizeof(file), "%s/%s", cg, limits[i].file) >= (int)sizeof(file))
			return ag_errf(err, ENAMETOOLONG, "cgroup %s: path too long", cg);
		snprintf(num, sizeof(num), "%d", limits[i].value);
		if ((ret = ag_write_file(file, num, err)))
			return ret;
	}
	return ag_cgroup_delegate(cg, u->uid, u->gid, err);
}

/*
 * Not root: only a sub-agent, started from inside an agent's cgroup into
 * one below it.  Nothing is registered in the kernel: the hooks already
 * cover the whole subtree of the root agent.
 */
static int run_sub_agent(const struct ag_cli *c, const char *agent, const char *user,
			 const int *keep, int nr_keep, char **cmd)
{
	size_t n = strlen(c->inst.cg_agents);
	char self[PATH_MAX], cg[PATH_MAX];
	struct ag_err err;

	if (user)
		return cli_fail("run --user: only root chooses an agent's user; a sub-agent runs "
				"as its parent's (%u)",
				getuid());
	if (ag_cgroup_self(c->inst.cgroup2, self, sizeof(self), &err))
		return cli_fail("run: %s", err.msg);
	if (strncmp(self, c->inst.cg_agents, n) || self[n] != '/')
		return cli_fail("run: not root, and not inside an agent of instance %s (this "
				"process is in cgroup %s): run as root (sudo agentgatectl run ...) "
				"to start an agent, or from inside one to start a sub-agent",
				c->inst.name, self);
	if (snprintf(cg, sizeof(cg), "%s/%s-%d", self, agent, getpid()) >= (int)sizeof(cg))
		return cli_fail("run: cgroup below %s: path too long", self);
	if (mkdir(cg, 0755))
		return cli_fail("run: cgroup %s: %s%s", cg, strerror(errno),
				errno == EACCES || errno == EPERM
				    ? " (only agents started by agentgatectl run, whose cgroup is "
				      "delegated to them, can start sub-agents)"
				: errno == EAGAIN ? " (too many or too deeply nested sub-agents)"
						  : "");
	return spawn_in(c, cg,
			&(struct run_ctx){ .agent = agent, .keep = keep, .nr_keep = nr_keep }, cmd);
}

/* spawn_in for an agent whose namespace ag_netns_create made; removes it after. */
static int run_in_netns(const struct ag_cli *c, const struct ag_kern *k, const char *cg,
			const struct run_ctx *rc, char **cmd)
{
	struct ag_netns_run *ns = rc->ns;
	struct ag_err err;
	int status;

	fprintf(stderr,
		"agentgatectl run: agent %s in its own network namespace: veth %s, XDP guard in "
		"%s mode (%s)\n",
		rc->agent, ns->ifname, ns->xdp_mode,
		ns->xdp_legacy ? "libxdp single-program fallback" : "libxdp dispatcher");
	status = spawn_in(c, cg, rc, cmd);
	if (ag_netns_destroy(k, &c->inst, ns, &err))
		fprintf(stderr, "agentgatectl run: %s\n", err.msg);
	return status;
}

/* --keep-fd N: an open descriptor above 2, named once. */
static int keep_fd_add(const char *arg, int *keep, int *nr_keep)
{
	uint32_t fd;

	if (cli_parse_u32("run", "keep-fd", arg, INT_MAX, &fd))
		return -1;
	if (fd <= 2 || fcntl((int)fd, F_GETFD) < 0 || *nr_keep >= KEEP_FDS_MAX) {
		cli_fail("run --keep-fd %s: expected an open descriptor above 2 (at most %d of "
			 "them)",
			 arg, KEEP_FDS_MAX);
		return -1;
	}
	keep[(*nr_keep)++] = (int)fd;
	return 0;
}

/* The user for a root run: the one named, else a uid of the run's own from the config's range. */
static int run_user(const struct ag_kern *k, const char *user, struct ag_user *u,
		    struct ag_err *err)
{
	struct ag_config cfg;
	uint32_t min, max;
	int ret;

	if (user)
		return ag_user_resolve(user, u, err);
	if ((ret = ag_kern_get_config(k, &cfg, err)))
		return ret;
	ag_runuid_range(&cfg, &min, &max);
	return ag_runuid_claim(min, max, u, err);
}

/* The part of a root run between registering the agent and releasing its user. */
static int run_root(struct ag_cli *c, struct ag_kern *k, uint64_t agent_id, struct run_ctx *rc,
		    bool netns, char **cmd)
{
	struct ag_netns_run ns = { .nsfd = -1 };
	char run_cg[PATH_MAX];
	struct ag_err err;
	int ret;

	snprintf(run_cg, sizeof(run_cg), "%s/%s/run-%d", c->inst.cg_agents, rc->agent, getpid());
	if (ag_cgroup_mkdir(run_cg, &err)) {
		ret = cli_fail("run: %s", err.msg);
	} else if (delegate(run_cg, rc->u, &err)) {
		ret = cli_fail("run: %s", err.msg);
		rmdir(run_cg);
	} else if (!netns) {
		ret = spawn_in(c, run_cg, rc, cmd);
	} else if (ag_netns_create(k, &c->inst, agent_id, &ns, &err)) {
		ret = cli_fail("run --netns: %s", err.msg);
		rmdir(run_cg);
	} else {
		rc->ns = &ns;
		ret = run_in_netns(c, k, run_cg, rc, cmd);
	}
	return ret;
}

int cmd_run(struct ag_cli *c, int argc, char **argv)
{
	static const struct cli_opt opts[] = {
		CLI_VAL("agent"),  CLI_VAL("user"),
		CLI_FLAG("netns"), { .name = "keep-fd", .arg = true, .many = true },
		CLI_END,
	};
	/* What follows the first operand is the agent's command line. */
	static const struct cli_spec sp = {
		.cmd = "agentgatectl run", .usage = run_usage, .opts = opts, .stop = true
	};
	const char *agent, *user;
	int keep[KEEP_FDS_MAX], nr_keep = 0;
	struct cli_args a;
	bool netns;
	uint64_t agent_id;
	struct ca_files ca;
	struct ag_kern k;
	struct ag_user u = { .lock_fd = -1 };
	struct ag_err err;
	int ret;

	if ((ret = cli_parse(&sp, argc, argv, &a)))
		return ret == 1 ? 0 : AG_EXIT_USAGE;
	for (size_t i = 0; i < a.n_list; i++)
		if (keep_fd_add(a.list[i], keep, &nr_keep)) {
			cli_args_free(&a);
			return AG_EXIT_USAGE;
		}
	cli_args_free(&a);
	agent = a.val[0];
	user = a.val[1];
	netns = a.val[2] != NULL;
	if (!agent || a.ind >= argc)
		return cli_usage(run_usage);
	if (!ag_agent_name_valid(agent))
		return cli_fail("run: agent name \"%s\": use 1-%d of [A-Za-z0-9_.-], not starting "
				"with '.' or '-'",
				agent, AG_NAME_LEN - 1);
	if (geteuid() != 0 && netns)
		return cli_fail("run --netns: only root makes network namespaces; a sub-agent "
				"shares its parent's");
	if (geteuid() != 0)
		return run_sub_agent(c, agent, user, keep, nr_keep, argv + a.ind);
	if (ag_kern_open(&k, &c->inst, &err))
		return cli_fail("run: %s", err.msg);
	if (run_user(&k, user, &u, &err) ||
	    ag_agent_register(&k, &c->inst, agent, AG_VERDICT_KEEP, &agent_id, &err)) {
		ag_kern_close(&k);
		ag_runuid_release(&u);
		return cli_fail("run: %s", err.msg);
	}
	if (!ag_instance_daemon_pid(&c->inst))
		fprintf(stderr,
			"agentgatectl run: warning: agentgated (instance %s) is not running; the "
			"agent's connections will be refused\n",
			c->inst.name);
	ca_files_find(&c->inst, &ca);
	if (!netns)
		ag_kern_close(&k);
	ret = run_root(c, &k, agent_id,
		       &(struct run_ctx){
			   .agent = agent, .u = &u, .ca = &ca, .keep = keep, .nr_keep = nr_keep },
		       netns, argv + a.ind);
	if (netns)
		ag_kern_close(&k);
	ag_runuid_release(&u);
	return ret;
}
