// SPDX-License-Identifier: GPL-2.0
/*
 * The Debian package, end to end on this machine: make deb, dpkg -i, the
 * unit passes systemd-analyze verify, agentgated started exactly as the
 * unit's ExecStart line says under an emulated NOTIFY_SOCKET (no systemd
 * PID 1 here) reports READY=1 only once it serves, an agent started with
 * the installed agentgatectl makes a governed MCP call, and dpkg --purge
 * leaves no pinned object, cgroup, unit, configuration or state behind.
 *
 * It installs the default instance "agentgate", as the package does: it
 * refuses to run (and fails) on a machine where that instance or the
 * package is already in use, rather than take them over.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mcplib.h"
#include "test.h"
#include "testlib.h"

#define UNIT "/lib/systemd/system/agentgated.service"
#define CONF "/etc/agentgate/agentgate.json"
#define CTL "/usr/sbin/agentgatectl"

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* The ExecStart= command line of the installed unit. */
static int exec_start(char *line, size_t len)
{
	char *text = NULL, *p;
	int ret = -ENOENT;

	if (ag_read_file(UNIT, 1 << 16, &text, NULL, NULL))
		return -errno;
	p = strstr(text, "\nExecStart=");
	if (p) {
		p += strlen("\nExecStart=");
		p[strcspn(p, "\n")] = 0;
		ret = snprintf(line, len, "%s", p) < (int)len ? 0 : -ENAMETOOLONG;
	}
	free(text);
	return ret;
}

/* A datagram socket at path, as a service manager's NOTIFY_SOCKET. */
static int notify_listen(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (strlen(path) >= sizeof(sun.sun_path)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	unlink(path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int notify_recv(int fd, char *buf, size_t len, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n;

	if (poll(&p, 1, ms) != 1)
		return -ETIMEDOUT;
	n = recv(fd, buf, len - 1, 0);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	return 0;
}

static int last_line(const char *text, char *line, size_t len)
{
	size_t n = strlen(text);
	const char *start;

	while (n && text[n - 1] == '\n')
		n--;
	for (start = text + n; start > text && start[-1] != '\n'; start--)
		;
	if (!n || (size_t)(text + n - start) >= len)
		return -EINVAL;
	memcpy(line, start, (size_t)(text + n - start));
	line[text + n - start] = 0;
	return 0;
}

static bool port_accepts(uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t sl = make_sockaddr("127.0.0.1", port, &ss);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&ss, sl) == 0;

	if (fd >= 0)
		close(fd);
	return ok;
}

static pid_t start_as_unit(const char *line, const char *notify_path)
{
	pid_t pid = fork();

	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		setenv("NOTIFY_SOCKET", notify_path, 1);
		char cmd[PATH_MAX + 8];

		dup2(null, 0);
		/* As systemd runs it: the command itself is the main process. */
		snprintf(cmd, sizeof(cmd), "exec %s", line);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static bool machine_is_free(void)
{
	static const char *const in_use[] = { "/sys/fs/bpf/agentgate", "/etc/agentgate",
					      "/var/lib/agentgate", UNIT, "/usr/sbin/agentgated" };
	char *out = NULL;
	bool ok = true;

	for (size_t i = 0; i < sizeof(in_use) / sizeof(in_use[0]); i++)
		if (exists(in_use[i])) {
			fprintf(stderr,
				"package test: %s exists: the default instance or the package "
				"is in use on this machine; not touching it\n",
				in_use[i]);
			ok = false;
		}
	if (!run_capture(&out, "dpkg-query -W -f='${Status}' agentgate 2>/dev/null") &&
	    strstr(out, "installed")) {
		fprintf(stderr, "package test: package agentgate is installed here\n");
		ok = false;
	}
	free(out);
	return ok;
}

static void purge(void)
{
	char *out = NULL;

	if (run_capture(&out, "dpkg --purge agentgate 2>&1"))
		fprintf(stderr, "cleanup: dpkg --purge agentgate: %s\n", out);
	free(out);
}

static const char call[] = "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\","
			   "\"params\":{\"name\":\"echo\",\"arguments\":{\"x\":1}}}";

TEST(package_deb_install_serve_purge)
{
	char deb[PATH_MAX], line[PATH_MAX], notify[128], msg[512], *out = NULL;
	struct ag_instance in;
	struct tool tool = {};
	bool installed = false;
	uint16_t port, orig;
	struct ag_err err;
	pid_t pid = 0;
	int nfd = -1;
	FILE *f;

	if (!ASSERT_TRUE(machine_is_free(), "no agentgate package or default instance here"))
		return;
	if (!ASSERT_EQ(run_capture(&out, "make -s --no-print-directory -C '%s' deb BUILD='%s' 2>&1",
				   testlib_src_dir(), testlib_build_dir()),
		       0, "make deb")) {
		fprintf(stderr, "%s", out);
		goto out;
	}
	/* make deb prints the package's path (relative to the tree) last. */
	if (!ASSERT_OK(last_line(out, deb, sizeof(deb)), "package path"))
		goto out;
	free(out);
	out = NULL;
	installed = true;
	if (!ASSERT_EQ(run_capture(&out, "cd '%s' && dpkg -i '%s' 2>&1", testlib_src_dir(), deb), 0,
		       "dpkg -i")) {
		fprintf(stderr, "%s", out);
		goto out;
	}
	free(out);
	out = NULL;
	ASSERT_TRUE(exists("/usr/sbin/agentgated") && exists(CTL) && exists(UNIT) && exists(CONF) &&
			exists("/usr/share/man/man8/agentgated.8.gz"),
		    "installed files");
	ASSERT_EQ(run_capture(&out, "systemd-analyze verify --man=no " UNIT " 2>&1"), 0,
		  "systemd-analyze verify");
	ASSERT_STREQ(out, "", "verify has nothing to say");
	free(out);
	out = NULL;

	/* The operator's configuration: a tool server and an agent allowed echo. */
	if (!ASSERT_OK(tool_start(&tool, REPLY_JSON), "tool server"))
		goto out;
	port = free_port();
	orig = free_port();
	f = fopen(CONF, "w");
	if (!ASSERT_OK_PTR(f, CONF))
		goto out;
	fprintf(f,
		"{\"listen\": {\"port\": %u}, \"resolvers\": [], \"tool_servers\": [{\"name\": "
		"\"t\", \"match\": {\"addresses\": [\"127.0.0.1\"], \"ports\": [%u]}, "
		"\"upstream\": \"http://127.0.0.1:%u/mcp\"}], \"agents\": [{\"name\": \"a\", "
		"\"tools\": [\"t/echo\"]}]}\n",
		port, orig, tool.port);
	fclose(f);

	if (!ASSERT_OK(exec_start(line, sizeof(line)), "ExecStart of the unit"))
		goto out;
	ASSERT_STREQ(line, "/usr/sbin/agentgated --config " CONF, "ExecStart");
	snprintf(notify, sizeof(notify), "/tmp/%s.notify", test__instance("pkg"));
	nfd = notify_listen(notify);
	if (!ASSERT_GE(nfd, 0, "notify socket"))
		goto out;
	pid = start_as_unit(line, notify);
	if (!ASSERT_OK(notify_recv(nfd, msg, sizeof(msg), 20000), "a notification"))
		goto out;
	ASSERT_TRUE(!strncmp(msg, "READY=1\n", 8), "the first notification is READY=1");
	/* READY only once it serves: its listener accepts right now. */
	ASSERT_TRUE(port_accepts(port), "serving when READY=1 arrived");
	ASSERT_EQ(waitpid(pid, NULL, WNOHANG), 0, "no fork: the unit's main process serves");

	ASSERT_EQ(run_capture(&out,
			      "env -u SUDO_UID -u SUDO_GID " CTL " run --agent a -- curl -s -m 10 "
			      "-H 'Content-Type: application/json' "
			      "-H 'Accept: application/json, text/event-stream' "
			      "--data-binary '%s' http://127.0.0.1:%u/mcp 2>&1",
			      call, orig),
		  0, "agent's curl");
	ASSERT_STRHAS(out, "\"id\":7", "the agent got its answer");
	ASSERT_GE(tool_nseen(&tool), 1, "the call reached the tool server");
	free(out);
	out = NULL;
	ASSERT_EQ(
	    run_capture(&out, "grep -c '\"decision\":\"allow\"' /var/lib/agentgate/audit.log"), 0,
	    "decision record");

	kill(pid, SIGTERM);
	ASSERT_OK(notify_recv(nfd, msg, sizeof(msg), 10000), "STOPPING");
	ASSERT_STRHAS(msg, "STOPPING=1", "STOPPING=1 on SIGTERM");
	waitpid(pid, NULL, 0);
	pid = 0;

	free(out);
	out = NULL;
	ASSERT_EQ(run_capture(&out, "dpkg --purge agentgate 2>&1"), 0, "dpkg --purge");
	installed = false;
	ASSERT_FALSE(exists("/sys/fs/bpf/agentgate"), "no pinned object left");
	if (ASSERT_OK(ag_instance_init(&in, "agentgate", NULL, &err), "instance paths"))
		ASSERT_FALSE(exists(in.cg_root), "no cgroup left");
	ASSERT_FALSE(exists(UNIT), "no unit left");
	ASSERT_FALSE(exists("/etc/agentgate"), "no configuration left");
	ASSERT_FALSE(exists("/var/lib/agentgate"), "no state left");
	ASSERT_FALSE(exists("/usr/sbin/agentgated"), "no binary left");
out:
	free(out);
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	if (nfd >= 0) {
		close(nfd);
		unlink(notify);
	}
	if (installed)
		purge();
	if (tool.lfd > 0)
		tool_stop(&tool);
}
