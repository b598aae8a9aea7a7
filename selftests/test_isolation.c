// SPDX-License-Identifier: GPL-2.0
/*
 * Agents cannot act on processes that are not theirs, and get no
 * descriptors but their own: what an agent started by `agentgatectl run`
 * tries (build/agent_probe, see selftests/agent_probe.c) against a process
 * outside its cgroup, another agent, an inherited socket, and socket
 * families the cgroup hooks do not govern.
 */
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox.h"
#include "test.h"
#include "testlib.h"

/* agentgatectl for the test's instance, never as a sudo caller's user. */
static int ctl(char **out, const struct ag_instance *in, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int ctl(char **out, const struct ag_instance *in, const char *fmt, ...)
{
	char args[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	return run_capture(out, "env -u SUDO_UID -u SUDO_GID %s/agentgatectl --instance %s %s 2>&1",
			   testlib_build_dir(), in->name, args);
}

/*
 * A process outside every agent cgroup, running as uid like a service
 * started as that user (dumpable), holding an unconnected TCP socket.
 */
struct holder {
	pid_t pid;
	int fd;
};

static int holder_start(struct holder *h, uid_t uid)
{
	int p[2], fd = -1;

	if (pipe(p))
		return -1;
	h->pid = fork();
	if (h->pid == 0) {
		close(p[0]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (setgroups(0, NULL) || setresgid(uid, uid, uid) || setresuid(uid, uid, uid))
			_exit(1);
		prctl(PR_SET_DUMPABLE, 1);
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (write(p[1], &fd, sizeof(fd)) != sizeof(fd))
			_exit(1);
		sleep(60);
		_exit(0);
	}
	close(p[1]);
	if (h->pid < 0 || read(p[0], &fd, sizeof(fd)) != sizeof(fd) || fd < 0)
		fd = -1;
	close(p[0]);
	h->fd = fd;
	return fd < 0 ? -1 : 0;
}

static void holder_stop(struct holder *h)
{
	if (h->pid > 0) {
		kill(h->pid, SIGKILL);
		waitpid(h->pid, NULL, 0);
	}
	h->pid = 0;
}

/* Nothing an agent did reached the destination directly, nor through the daemon. */
static void nothing_reached(int tool)
{
	int c = accept_timeout(tool, 300);

	ASSERT_LT(c, 0, "nothing reached the destination");
	if (c >= 0)
		close(c);
}

/*
 * What the agent tries against a process outside running as nobody (who
 * the agent itself ran as before, when run had no sudo caller): its socket,
 * its memory, tracing it, signalling it.
 */
static void try_outside(const struct tdaemon *d, const char *user, uint16_t tool_port, int tool)
{
	struct holder hold = { 0 }, *h = &hold;
	char *out = NULL;

	if (!ASSERT_OK(holder_start(h, NOBODY_UID), "holder"))
		goto out;

	ASSERT_EQ(ctl(&out, &d->in,
		      "run --agent a %s -- %s/agent_probe getfd %d %d %u ptrace %d mem %d kill %d",
		      user, testlib_build_dir(), h->pid, h->fd, tool_port, h->pid, h->pid, h->pid),
		  0, "run");
	ASSERT_STRHAS(out, "getfd=EPERM", "pidfd_getfd refused");
	ASSERT_NULL(strstr(out, "connect="), "no socket to connect");
	ASSERT_STRHAS(out, "seize=EPERM", "PTRACE_SEIZE refused");
	ASSERT_STRHAS(out, "attach=EPERM", "PTRACE_ATTACH refused");
	ASSERT_STRHAS(out, "mem=EACCES", "/proc/PID/mem refused");
	if (ag_landlock_abi() >= AG_LANDLOCK_ABI_SCOPES)
		ASSERT_STRHAS(out, "kill=EPERM", "signals refused");
	if (test__verbose())
		fprintf(stderr, "%s", out);
	free(out);
	nothing_reached(tool);
out:
	holder_stop(h);
}

TEST(isolation_outside_process)
{
	uint16_t tool_port;
	struct tdaemon d;
	int tool = tcp_listen("127.0.0.1", 0, &tool_port);

	if (!ASSERT_OK(tdaemon_start(&d, "isoout", "", 0), "daemon"))
		goto out;
	if (test__start_subtest("default_user"))
		try_outside(&d, "", tool_port, tool);
	if (test__start_subtest("user_nobody"))
		try_outside(&d, "--user nobody", tool_port, tool);
out:
	close(tool);
	tdaemon_destroy(&d);
}

/* Agent B's "hold=PID FD" line in file, waiting up to 10 s for it. */
static bool held_by(const char *file, int *pid, int *fd)
{
	for (int i = 0; i < 100; i++) {
		FILE *f = fopen(file, "r");
		char line[128];
		bool ok = false;

		while (f && !ok && fgets(line, sizeof(line), f))
			ok = sscanf(line, "hold=%d %d", pid, fd) == 2;
		if (f)
			fclose(f);
		if (ok)
			return true;
		usleep(100 * 1000);
	}
	return false;
}

TEST(isolation_other_agent)
{
	char file[PATH_MAX], *out = NULL;
	int tool, bpid = 0, bfd = -1;
	uint16_t tool_port;
	struct tdaemon d;
	pid_t b = -1;

	tool = tcp_listen("127.0.0.1", 0, &tool_port);
	if (!ASSERT_OK(tdaemon_start(&d, "isoagt", "", 0), "daemon"))
		goto out;
	snprintf(file, sizeof(file), "%s/b.out", d.dir);
	b = fork();
	if (b == 0) {
		char *o = NULL;

		ctl(&o, &d.in, "run --agent B -- %s/agent_probe hold 30 > %s", testlib_build_dir(),
		    file);
		_exit(0);
	}
	if (!ASSERT_TRUE(held_by(file, &bpid, &bfd), "agent B holds a socket"))
		goto out;
	ASSERT_EQ(ctl(&out, &d.in, "run --agent A -- %s/agent_probe getfd %d %d %u ptrace %d",
		      testlib_build_dir(), bpid, bfd, tool_port, bpid),
		  0, "run A");
	ASSERT_STRHAS(out, "getfd=EPERM", "A cannot take B's socket");
	ASSERT_STRHAS(out, "seize=EPERM", "A cannot trace B");
	free(out);
	nothing_reached(tool);
out:
	if (bpid > 0)
		kill(bpid, SIGKILL);
	if (b > 0)
		waitpid(b, NULL, 0);
	close(tool);
	tdaemon_destroy(&d);
}

TEST(isolation_inherited_fd)
{
	int s = socket(AF_INET, SOCK_STREAM, 0); /* not CLOEXEC: the shell passes it on */
	char *out = NULL;
	struct tdaemon d;

	if (!ASSERT_OK(tdaemon_start(&d, "isofd", "", 0), "daemon"))
		goto out;
	if (test__start_subtest("closed")) {
		ASSERT_EQ(ctl(&out, &d.in, "run --agent a -- %s/agent_probe fd %d",
			      testlib_build_dir(), s),
			  0, "run");
		ASSERT_STRHAS(out, "fd=EBADF", "the inherited socket is closed");
		ASSERT_STRHAS(out, "inherited descriptor", "run says it closed some");
		free(out);
	}
	if (test__start_subtest("keep_fd")) {
		ASSERT_EQ(ctl(&out, &d.in, "run --agent a --keep-fd %d -- %s/agent_probe fd %d", s,
			      testlib_build_dir(), s),
			  0, "run");
		ASSERT_STRHAS(out, "fd=ok", "a named descriptor is kept");
		free(out);
		ASSERT_EQ(ctl(&out, &d.in, "run --agent a --keep-fd 1 -- true"), 2, "0-2 always");
		free(out);
		ASSERT_EQ(ctl(&out, &d.in, "run --agent a --keep-fd 999 -- true"), 2, "not open");
		free(out);
	}
out:
	close(s);
	tdaemon_destroy(&d);
}

TEST(isolation_socket_families)
{
	char *out = NULL, want[64];
	uint16_t tool_port;
	struct tdaemon d;
	pid_t server = -1;
	int tool = tcp_listen("127.0.0.1", 0, &tool_port);

	if (!ASSERT_OK(tdaemon_start(&d, "isofam", "", 0), "daemon"))
		goto out;
	server = serve_one(tool, "pong");
	/* AF_VSOCK 40 stream; AF_NETLINK 16 raw: NETLINK_SOCK_DIAG 4, NETLINK_ROUTE 0. */
	ASSERT_EQ(ctl(&out, &d.in,
		      "run --agent a -- %s/agent_probe socket 40 1 0 socket 16 3 4 socket 16 3 0 "
		      "io_uring tiocsti tcp %u",
		      testlib_build_dir(), tool_port),
		  0, "run");
	ASSERT_STRHAS(out,
		      "socket=EAFNOSUPPORT\nsocket=EPERM\nsocket=ok\nio_uring=ENOSYS\n"
		      "tiocsti=EPERM\ntcp=ok\nreply=pong",
		      "vsock, sock_diag refused; netlink route, TCP work; io_uring absent");
	free(out);
	snprintf(want, sizeof(want), "dst=127.0.0.1:%u", tool_port);
	ASSERT_TRUE(log_has(&d, 2000, "event=conn ", "agent=\"a\"", want, NULL),
		    "the TCP connection went through the daemon");
out:
	if (server > 0)
		waitpid(server, NULL, 0);
	close(tool);
	tdaemon_destroy(&d);
}

/*
 * The rest of the filter: reaching into other processes, the keyrings, the
 * console, the x32 ABI.  Each step first outside the sandbox, where it works
 * (or fails for want of a console or an x32 kernel), so the refusals below
 * are the filter's.
 */
TEST(isolation_process_syscalls)
{
	const char *steps = "tioclinux vmread madvise kcmp keyring x32";
	char *out = NULL;
	struct tdaemon d;

	ASSERT_EQ(run_capture(&out, "%s/agent_probe %s </dev/null", testlib_build_dir(), steps), 0,
		  "unsandboxed probe");
	ASSERT_STRHAS(out,
		      "tioclinux=ENOTTY\nvmread=ok\nmadvise=ok\nkcmp=ok\nkeyring=ok\nx32=",
		      "outside the sandbox each call reaches the kernel");
	free(out);
	out = NULL;
	if (!ASSERT_OK(tdaemon_start(&d, "isoproc", "", 0), "daemon"))
		return;
	ASSERT_EQ(ctl(&out, &d.in, "run --agent a -- %s/agent_probe %s </dev/null",
		      testlib_build_dir(), steps),
		  0, "run");
	ASSERT_STRHAS(out,
		      "tioclinux=EPERM\nvmread=EPERM\nmadvise=EPERM\nkcmp=EPERM\n"
		      "keyring=EPERM\nx32=SIGSYS",
		      "under run: refused, and an x32 call kills the agent");
	free(out);
	tdaemon_destroy(&d);
}

TEST(isolation_per_run_uid)
{
	char *out = NULL, *p, want[64];
	unsigned int uid[2] = { 0 }, gid[2] = { 0 };
	char home[2][128] = { "", "" };
	struct tdaemon d;
	struct stat st;

	if (!ASSERT_OK(
		tdaemon_start(&d, "isouid", "\"agent_uids\": {\"min\": 70000, \"max\": 70003}", 0),
		"daemon"))
		goto out;
	/* Two runs at once: each its own uid from the range, no groups, a fresh home. */
	ASSERT_EQ(
	    run_capture(&out,
			"for i in 0 1; do env -u SUDO_UID %s/agentgatectl --instance %s run "
			"--agent a -- sh -c 'echo \"U=$(id -u) G=$(id -G) H=$HOME\"; sleep 1' & "
			"done; wait",
			testlib_build_dir(), d.in.name),
	    0, "runs");
	p = out;
	for (int i = 0; i < 2 && p && (p = strstr(p, "U=")); i++, p++)
		sscanf(p, "U=%u G=%u H=%127s", &uid[i], &gid[i], home[i]);
	ASSERT_TRUE(uid[0] >= 70000 && uid[0] <= 70003, "first uid from the range");
	ASSERT_TRUE(uid[1] >= 70000 && uid[1] <= 70003, "second uid from the range");
	ASSERT_NEQ(uid[0], uid[1], "concurrent runs, different uids");
	snprintf(want, sizeof(want), "U=%u G=%u H=", uid[0], uid[0]);
	ASSERT_STRHAS(out, want, "its gid the same, and no other group");
	ASSERT_TRUE(!strncmp(home[0], "/tmp/agentgate-", 15), "a home of its own");
	ASSERT_EQ(stat(home[0], &st), -1, "the home goes with the run");
	if (test__verbose())
		fprintf(stderr, "%s", out);
	free(out);
out:
	tdaemon_destroy(&d);
}
