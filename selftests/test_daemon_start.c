// SPDX-License-Identifier: GPL-2.0
/*
 * agentgated started the ways an operator starts it, not with the
 * --foreground the other tests use: detached, as README.md's "Using it"
 * runs it, and under a service manager's NOTIFY_SOCKET, as a Type=notify
 * unit's ExecStart does (the manager played by a datagram socket here).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <jansson.h>
#include <bpf/bpf.h>

#include "ctl.h"
#include "kern.h"
#include "mcplib.h"
#include "test.h"
#include "testlib.h"

/* Generous: a stop drains for at most 5 s (loop.c), and takes ~0.1 s. */
#define STOP_MS 8000

static const char agent_json[] = "{\"name\": \"a\", \"tools\": [\"t/echo\"]}";

/* A governed tools/call from agent "a": the tool's answer reached it. */
/* The id of the program pinned as name in the instance's directory (0: none). */
static __u32 pinned_prog_id(const struct ag_instance *in, const char *name)
{
	struct bpf_prog_info info = { 0 };
	__u32 len = sizeof(info);
	char path[PATH_MAX];
	int fd;

	if (ag_pin_path(in, name, path, sizeof(path)) || (fd = bpf_obj_get(path)) < 0)
		return 0;
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		info.id = 0;
	close(fd);
	return info.id;
}

static bool governed_call(struct mcp_env *e, struct exchange *x, int id)
{
	char body[256];
	int before = tool_nseen(&e->tool);

	snprintf(body, sizeof(body),
		 "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":{\"name\":"
		 "\"echo\",\"arguments\":{\"text\":\"hi\"}}}",
		 id);
	post(x, e->orig_port, "", body);
	run_agent(e, x);
	return ASSERT_STRHAS(x->response, "\"served\"", "the tool's answer reached the agent") &&
	       ASSERT_EQ(tool_nseen(&e->tool), before + 1, "the call reached the tool server");
}

/* The decision record of call id is in the log (group commit: bounded wait). */
static bool decision_recorded(const struct tdaemon *d, int id)
{
	char *out = NULL;
	bool found = false;

	for (int i = 0; i < 100 && !found; i++) {
		run_capture(
		    &out,
		    "grep '\"kind\":\"decision\"' %s/audit.log | grep '\"decision\":\"allow\"'"
		    " | grep -c '\"id\":%d'",
		    d->state, id);
		found = out && atoi(out) > 0;
		free(out);
		out = NULL;
		if (!found)
			usleep(20 * 1000);
	}
	return found;
}

static int ctl_status(const struct tdaemon *d, char **out)
{
	return run_capture(out, "%s/agentgatectl --instance %s status --json", testlib_build_dir(),
			   d->in.name);
}

/*
 * Started as the README shows it (no --foreground): the launcher returns
 * 0 only once the daemon serves, a governed MCP call goes through and is
 * recorded, status says serving, SIGTERM stops it promptly and a restart
 * serves again.  A daemon that forked after its audit writer's thread
 * existed hung the call, its record, its stop and so its restart.
 */
TEST(daemon_detached)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	struct mcp_env e = { 0 };
	char *out = NULL;
	pid_t first;

	if (!ASSERT_OK(env_start_flags(&e, "detach", REPLY_JSON, agent_json, "", TDAEMON_DETACHED),
		       "agentgated (detached) exited 0 and serves"))
		goto out;
	first = e.d.pid;
	ASSERT_NEQ(getsid(first), getsid(0), "the daemon is in a session of its own");
	if (test__start_subtest("governed_call_recorded")) {
		governed_call(&e, x, 11);
		ASSERT_TRUE(decision_recorded(&e.d, 11), "its decision record is in audit.log");
	}
	if (test__start_subtest("status_serving")) {
		ASSERT_EQ(ctl_status(&e.d, &out), 0, "status exits 0 (serving)");
		ASSERT_STRHAS(out, "\"serving\": true", "the kernel redirects to the daemon");
		free(out);
		out = NULL;
	}
	if (test__start_subtest("sigterm_stops")) {
		ASSERT_OK(tdaemon_stop(&e.d, SIGTERM, STOP_MS), "stopped within the bound");
		ASSERT_TRUE(log_has(&e.d, 0, "event=stop", "status=ok", NULL), "a clean stop");
		ASSERT_EQ(run_capture(&out,
				      "%s/agentgatectl audit verify --pubkey %s/audit.key "
				      "%s/audit.log 2>&1",
				      testlib_build_dir(), e.d.state, e.d.state),
			  0, "the audit log verifies (closed with a checkpoint)");
		free(out);
		out = NULL;
		/* The pins stay: the kernel refuses agents while nothing serves. */
		ASSERT_FALSE(ag_kern_is_serving(&e.d.in), "not serving after the stop");
	}
	if (test__start_subtest("restart_serves")) {
		__u32 claim = pinned_prog_id(&e.d.in, "daemon_origin_claim");

		ASSERT_NEQ(claim, 0, "the daemon's own programs are pinned");
		if (ASSERT_OK(tdaemon_restart(&e.d), "a detached restart exits 0 and serves")) {
			ASSERT_NEQ(e.d.pid, first, "a new daemon");
			/* Loading them again reads the kernel's BTF: most of a restart. */
			ASSERT_EQ(pinned_prog_id(&e.d.in, "daemon_origin_claim"), claim,
				  "the restarted daemon adopted them");
			governed_call(&e, x, 12);
			ASSERT_TRUE(decision_recorded(&e.d, 12), "recorded after the restart");
		}
	}
	if (test__start_subtest("failure_reported")) {
		/* A second start of a running instance: the launcher says why, and fails. */
		ASSERT_EQ(run_capture(&out,
				      "%s/agentgated --instance %s --config %s --state-dir %s 2>&1",
				      testlib_build_dir(), e.d.in.name, e.d.conf, e.d.state),
			  1, "exit status 1");
		ASSERT_STRHAS(out, "already running", "the daemon's error, from the launcher");
		free(out);
		out = NULL;
		/* It failed before its install: its teardown had no kernel objects to touch. */
		ASSERT_FALSE(log_has(&e.d, 0, "map serving", NULL), "no teardown of fd 0");
	}
out:
	env_stop(&e);
	munmap(x, sizeof(*x));
}

/* The manager's side of NOTIFY_SOCKET: a datagram socket at addr ("@name" or a path). */
static int notify_listen(const char *addr)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	socklen_t len = offsetof(struct sockaddr_un, sun_path) + strlen(addr);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	memcpy(sun.sun_path, addr, strlen(addr));
	if (addr[0] == '@')
		sun.sun_path[0] = '\0';
	else
		unlink(addr);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sun, len)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* The next state datagram within ms, "" if none came. */
static void notify_next(int fd, int ms, char *buf, size_t len)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n = 0;

	if (poll(&p, 1, ms) == 1)
		n = recv(fd, buf, len - 1, MSG_DONTWAIT);
	buf[n > 0 ? n : 0] = '\0';
}

/* Whether the daemon answers on its listener and its control socket right now. */
static bool serving_now(const struct tdaemon *d)
{
	struct sockaddr_storage ss;
	socklen_t sl = make_sockaddr("127.0.0.1", d->port, &ss);
	json_t *req = json_pack("{s:s}", "cmd", "ping"), *resp = NULL;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool listening = fd >= 0 && !connect(fd, (struct sockaddr *)&ss, sl);
	struct ag_err err;
	bool answers = !ag_ctl_call(&d->in, req, &resp, &err);

	if (fd >= 0)
		close(fd);
	json_decref(req);
	json_decref(resp);
	return ASSERT_TRUE(listening, "its listener accepts") &&
	       ASSERT_TRUE(answers, "its loop answers the control socket") &&
	       ASSERT_TRUE(ag_kern_is_serving(&d->in), "the kernel redirects to it");
}

/* READY=1 with MAINPID, as the first datagram, once the daemon serves. */
static void expect_ready(int fd, const struct tdaemon *d)
{
	char msg[256], want[64];

	/* The start takes ~0.5 s; the first datagram must be READY, at serving time. */
	notify_next(fd, 10000, msg, sizeof(msg));
	snprintf(want, sizeof(want), "READY=1\nMAINPID=%d", d->pid);
	if (ASSERT_STREQ(msg, want, "READY=1 with the daemon's pid, first"))
		serving_now(d);
}

/*
 * As a Type=notify unit starts it: READY=1 arrives only once the daemon
 * serves, RELOADING=1/READY=1 around a SIGHUP reload, STOPPING=1 on
 * SIGTERM; the daemon stays the manager's child (no fork), and takes a
 * path socket as well as an abstract one.
 */
TEST(daemon_notify)
{
	char abstract[108], path[PATH_MAX], msg[256], *out = NULL;
	struct tdaemon d = { 0 };
	int fd = -1, status = -1;

	snprintf(abstract, sizeof(abstract), "@%s-notify", test__instance("notify"));
	fd = notify_listen(abstract);
	if (!ASSERT_GE(fd, 0, "notify socket"))
		goto out;
	setenv("NOTIFY_SOCKET", abstract, 1);
	if (!ASSERT_OK(tdaemon_start(&d, "notify", "", TDAEMON_NOTIFY), "agentgated started"))
		goto out;
	expect_ready(fd, &d);
	ASSERT_EQ(waitpid(d.pid, NULL, WNOHANG), 0, "no fork: the manager's child serves");
	ASSERT_EQ(run_capture(&out, "grep -c '\"kind\":\"daemon_start\"' %s/audit.log", d.state), 0,
		  "its daemon_start record is written by then");
	free(out);
	out = NULL;
	if (test__start_subtest("reload")) {
		kill(d.pid, SIGHUP);
		notify_next(fd, 5000, msg, sizeof(msg));
		ASSERT_TRUE(!strncmp(msg, "RELOADING=1\nMONOTONIC_USEC=", 27), "RELOADING=1 first");
		notify_next(fd, 5000, msg, sizeof(msg));
		ASSERT_STREQ(msg, "READY=1", "READY=1 after the reload");
	}
	if (test__start_subtest("stopping")) {
		kill(d.pid, SIGTERM);
		notify_next(fd, 5000, msg, sizeof(msg));
		ASSERT_STREQ(msg, "STOPPING=1", "STOPPING=1 on SIGTERM");
		for (int i = 0; i < STOP_MS / 10 && waitpid(d.pid, &status, WNOHANG) == 0; i++)
			usleep(10 * 1000);
		ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exited 0 in time");
		d.pid = 0;
	}
	if (test__start_subtest("path_socket")) {
		close(fd);
		snprintf(path, sizeof(path), "%s/notify.sock", d.dir);
		fd = notify_listen(path);
		setenv("NOTIFY_SOCKET", path, 1);
		tdaemon_kill(&d, SIGTERM);
		if (ASSERT_GE(fd, 0, "path socket") && ASSERT_OK(tdaemon_restart(&d), "restart"))
			expect_ready(fd, &d);
	}
out:
	unsetenv("NOTIFY_SOCKET");
	tdaemon_destroy(&d);
	if (fd >= 0)
		close(fd);
}
