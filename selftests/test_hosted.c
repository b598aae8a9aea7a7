// SPDX-License-Identifier: GPL-2.0
/*
 * Hosted stdio servers (tool_servers[].command, daemon/hosted.h): real
 * stdio MCP servers from npm started by agentgated, reached by agents
 * through the governed MCP path at the server's configured address,
 * confined like agents, gone with the daemon however it stops.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "e2elib.h"
#include "fileio.h"
#include "mcplib.h"
#include "test.h"
#include "testlib.h"

struct henv {
	char e2e[PATH_MAX];
	char node[PATH_MAX];
	char dir[32];		     /* served by the filesystem server */
	char pol[32];		     /* policies */
	uint16_t fs_port, dial_port; /* where agents know the servers (nothing listens) */
	uint16_t dial_up;	     /* the dial server's bridge, its upstream */
	struct tdaemon d;
	bool up;
};

static const char policy[] =
    "@id(\"fs-for-a\")\n"
    "permit (principal == Agent::\"a\", action in [Action::\"call\", Action::\"list\"],\n"
    "        resource in Server::\"fs\");\n"
    "@id(\"dial-for-a\")\n"
    "permit (principal == Agent::\"a\", action in [Action::\"call\", Action::\"list\"],\n"
    "        resource in Server::\"dial\");\n";

static int write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -errno;
	fputs(text, f);
	return fclose(f) ? -errno : 0;
}

/* The node the e2e tests run (scripts/node.sh puts >= 20 first in PATH), as an absolute path. */
static int node_path(char *out, size_t len)
{
	char *o = NULL;
	int ret = run_capture(&o, "command -v node");

	if (!ret && o && o[0] == '/')
		snprintf(out, len, "%.*s", (int)strcspn(o, "\n"), o);
	else
		ret = -ENOENT;
	free(o);
	return ret;
}

/* Hosted "fs" (server-filesystem on dir) and "dial" (dial_stdio.mjs); dial_more: more of its
 * command. */
static int henv_start(struct henv *e, const char *suffix, const char *dial_more)
{
	char extra[6 * PATH_MAX], path[PATH_MAX];
	char *out = NULL;
	int ret;

	strcpy(e->dir, "/tmp/agt-hfs.XXXXXX");
	strcpy(e->pol, "/tmp/agt-hpol.XXXXXX");
	if (!mkdtemp(e->dir) || !mkdtemp(e->pol) || node_path(e->node, sizeof(e->node)))
		return -errno;
	/* The servers run as uids of their own: what they serve must be theirs to read. */
	chmod(e->dir, 0755);
	snprintf(path, sizeof(path), "%s/a.txt", e->dir);
	if ((ret = write_text(path, "hello\n")))
		return ret;
	snprintf(path, sizeof(path), "%s/10-hosted.cedar", e->pol);
	if ((ret = write_text(path, policy)) ||
	    (ret = run_capture(&out, "cp %s/policies/00-agents.cedar %s/", testlib_src_dir(),
			       e->pol)))
		goto out;
	e->fs_port = free_port();
	e->dial_port = free_port();
	e->dial_up = free_port();
	snprintf(
	    extra, sizeof(extra),
	    "\"tool_servers\": ["
	    "{\"name\": \"fs\", \"match\": {\"addresses\": [\"127.0.0.1\"], \"ports\": [%u]}, "
	    "\"upstream\": \"http://127.0.0.1:%u/mcp\", \"command\": {\"argv\": [\"%s\", "
	    "\"%s/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js\", "
	    "\"%s\"], \"cwd\": \"%s\"}}, "
	    "{\"name\": \"dial\", \"match\": {\"addresses\": [\"127.0.0.1\"], \"ports\": [%u]}, "
	    "\"upstream\": \"http://127.0.0.1:%u/mcp\", \"command\": {\"argv\": [\"%s\", "
	    "\"%s/selftests/e2e/dial_stdio.mjs\"], \"cwd\": \"/tmp\", "
	    "\"env\": {\"AGENTGATE_E2E_DIR\": \"%s\", \"FOO\": \"bar\"}%s}}], "
	    "\"agents\": [{\"name\": \"a\", \"tools\": [\"fs/*\", \"dial/*\"]}], "
	    "\"policy\": {\"dir\": \"%s\"}",
	    e->fs_port, free_port(), e->node, e->e2e, e->dir, e->dir, e->dial_port, e->dial_up,
	    e->node, testlib_src_dir(), e->e2e, dial_more, e->pol);
	if ((ret = tdaemon_start(&e->d, suffix, extra, 0)))
		goto out;
	e->up = true;
	/* The agent runs as a uid of its own: it must reach the scripts. */
	chmod(e->d.dir, 0711);
	chmod(e->d.state, 0711);
out:
	free(out);
	return ret;
}

static void henv_stop(struct henv *e)
{
	char *out = NULL;

	if (e->up)
		tdaemon_destroy(&e->d);
	e->up = false;
	if (e->dir[0])
		run_capture(&out, "rm -rf %s %s", e->dir, e->pol);
	free(out);
}

/* agent.mjs as agent "a" against the server at 127.0.0.1:port; its JSON lines. */
static json_t *agent(struct henv *e, uint16_t port, const char *args)
{
	char *out = NULL;
	json_t *lines;
	int status;

	status = run_capture(&out,
			     "cd /tmp && AGENTGATE_E2E_DIR=%s timeout 60 %s/agentgatectl "
			     "--instance %s run --agent a -- %s %s/selftests/e2e/agent.mjs "
			     "--url http://127.0.0.1:%u/mcp %s 2>&1",
			     e->e2e, testlib_build_dir(), e->d.in.name, e->node, testlib_src_dir(),
			     port, args);
	lines = parse_lines(out);
	if (status != 0 || getenv("AG_VERBOSE"))
		fprintf(stderr, "agent exited %d:\n%s\n", status, out ? out : "");
	free(out);
	return lines;
}

static const char *call_text(json_t *lines, int nth)
{
	return json_string_value(json_object_get(step(lines, "call", nth), "text"));
}

/* The pid of the nth start of server in the daemon's log, 0 if none. */
static pid_t hosted_pid(struct henv *e, const char *server, int nth)
{
	char *out = NULL;
	int pid = 0;

	if (!run_capture(&out, "grep -o 'server=%s pid=[0-9]* start' %s | sed -n %dp", server,
			 e->d.log, nth + 1) &&
	    out)
		sscanf(out, "server=%*s pid=%d", &pid);
	free(out);
	return pid;
}

/* A field of /proc/PID/status ("" when unreadable); a static buffer. */
static const char *status_field(pid_t pid, const char *name)
{
	static char val[64];
	char *out = NULL;

	val[0] = 0;
	if (!run_capture(&out, "awk '$1 == \"%s:\" {print $2}' /proc/%d/status", name, pid) && out)
		snprintf(val, sizeof(val), "%.*s", (int)strcspn(out, "\n"), out);
	free(out);
	return val;
}

/* Whether pid is gone (not even a zombie) within ms. */
static bool gone(pid_t pid, int ms)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d", pid);
	for (int i = 0; i < ms / 10; i++) {
		if (stat(path, &st) && errno == ENOENT)
			return true;
		usleep(10000);
	}
	return false;
}

/* The cgroup of the server's nth process (from 1). */
static bool cgroup_exists(struct henv *e, const char *server, int nth)
{
	char path[PATH_MAX + 64];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s/hosted-%s-%d", e->d.in.cg_agents, server, server, nth);
	return !stat(path, &st);
}

/*
 * The reference filesystem server from npm, hosted: listed, a read-only
 * call answered, write_file refused by the shipped forbid (and recorded
 * so), and nothing of it left once the daemon stopped.
 */
TEST(hosted_filesystem)
{
	struct henv e = { 0 };
	char args[2048], path[PATH_MAX + 16];
	char *out = NULL;
	json_t *lines, *l;
	pid_t pid;

	if (!e2e_installed(e.e2e, sizeof(e.e2e))) {
		test__skip("npm peers not installed (scripts/e2e-deps.sh)");
		return;
	}
	if (!ASSERT_OK(henv_start(&e, "hfs", ""), "daemon with hosted servers"))
		goto out;
	ASSERT_TRUE(log_has(&e.d, 2000, "hosted", "server=fs", "processes=shared", NULL),
		    "serving, started on demand only");
	ASSERT_EQ(hosted_pid(&e, "fs", 0), 0, "no process before the first call");
	snprintf(args, sizeof(args),
		 "--steps initialize,list,call,call,call "
		 "--call read_text_file --args '{\"path\":\"%s/a.txt\"}' "
		 "--call write_file --args '{\"path\":\"%s/b.txt\",\"content\":\"pwned\"}' "
		 "--call list_directory --args '{\"path\":\"%s\"}'",
		 e.dir, e.dir, e.dir);
	lines = agent(&e, e.fs_port, args);
	ASSERT_TRUE(step_ok(lines, "initialize", 0), "initialize through the gateway");
	ASSERT_TRUE(list_has(lines, "read_text_file"), "tools/list from the stdio server");
	ASSERT_STREQ(call_text(lines, 0), "hello\n", "allowed call answered by the server");
	l = step(lines, "call", 1);
	ASSERT_TRUE(json_is_true(json_object_get(l, "isError")), "write_file refused");
	ASSERT_STRHAS(json_string_value(json_object_get(l, "text")), "no-destructive-tools",
		      "by the shipped forbid");
	ASSERT_STRHAS(call_text(lines, 2), "[FILE] a.txt", "list_directory answered");
	json_decref(lines);
	snprintf(path, sizeof(path), "%s/b.txt", e.dir);
	ASSERT_NEQ(access(path, F_OK), 0, "the file was not written");
	ASSERT_EQ(run_capture(&out, "grep '\"kind\":\"decision\"' %s/audit.log | grep write_file",
			      e.d.state),
		  0, "the decision record");
	ASSERT_STRHAS(out, "\"decision\":\"deny\"", "recorded as a deny");
	ASSERT_STRHAS(out, "\"policies\":[\"no-destructive-tools\"]", "naming the policy");
	pid = hosted_pid(&e, "fs", 0);
	ASSERT_GT(pid, 0, "the server's start logged");
	ASSERT_EQ(hosted_pid(&e, "fs", 1), 0, "one shared process for the session");
	ASSERT_TRUE(cgroup_exists(&e, "fs", 1), "in a cgroup of its own below agent fs");
	ASSERT_OK(tdaemon_stop(&e.d, SIGTERM, 20000), "daemon stops");
	ASSERT_TRUE(pid > 0 && gone(pid, 5000), "the server is gone with the daemon");
	ASSERT_FALSE(cgroup_exists(&e, "fs", 1), "and its cgroup");
out:
	free(out);
	henv_stop(&e);
}

/*
 * A hosted server is confined like an agent: a uid of its own, only the
 * environment configured, no egress (agent "dial" is not configured:
 * verdict deny).  A server that writes garbage or crashes mid-call gives
 * the agent a JSON-RPC error and is restarted after a backoff; after a
 * kill -9 of the daemon, the keeper still kills it.
 */
TEST(hosted_confined)
{
	struct henv e = { 0 };
	char args[1024], want[128], *out = NULL;
	uint16_t port = 0;
	int lfd = -1, uid = -1, pid1 = 0, pid2 = 0;
	char cwd[64] = "", foo[64] = "";
	json_t *lines, *l;
	pid_t keeper;

	if (!e2e_installed(e.e2e, sizeof(e.e2e))) {
		test__skip("npm peers not installed (scripts/e2e-deps.sh)");
		return;
	}
	lfd = tcp_listen("127.0.0.1", 0, &port);
	if (!ASSERT_GE(lfd, 0, "a listener the server must not reach") ||
	    !ASSERT_OK(henv_start(&e, "hconf", ""), "daemon with hosted servers"))
		goto out;
	snprintf(
	    args, sizeof(args),
	    "--steps initialize,list,call,call,call,call "
	    "--call whoami --args '{}' --call dial --args '{\"host\":\"127.0.0.1\",\"port\":%u}' "
	    "--call noise --args '{}' --call crash --args '{}'",
	    port);
	lines = agent(&e, e.dial_port, args);
	ASSERT_TRUE(list_has(lines, "dial"), "listed");
	ASSERT_EQ(sscanf(call_text(lines, 0) ? call_text(lines, 0) : "", "%d %63s %63s %d", &uid,
			 cwd, foo, &pid1),
		  4, "whoami answered");
	ASSERT_GT(uid, 0, "not root");
	ASSERT_STREQ(cwd, "/tmp", "in its configured directory");
	ASSERT_STREQ(foo, "bar", "with its configured environment");
	ASSERT_STREQ(call_text(lines, 1), "error:EPERM", "its own connect refused by the hooks");
	ASSERT_FALSE(has_pending(lfd), "nothing reached the listener");
	snprintf(want, sizeof(want), "dst=127.0.0.1:%u", port);
	ASSERT_TRUE(log_has(&e.d, 2000, "kernel_refusal", "agent=\"dial\"", want, NULL),
		    "the refusal counted for the server's agent");
	ASSERT_STREQ(call_text(lines, 2), "quiet again", "answers after garbage on stdout");
	l = step(lines, "call", 3);
	ASSERT_EQ(json_integer_value(json_object_get(l, "code")), -32603,
		  "a crash mid-call: a JSON-RPC error");
	ASSERT_STRHAS(json_string_value(json_object_get(l, "message")), "exited",
		      "saying the server exited");
	json_decref(lines);
	ASSERT_TRUE(log_has(&e.d, 2000, "server=dial", "stdout=not_jsonrpc", NULL),
		    "garbage logged");
	ASSERT_TRUE(log_has(&e.d, 2000, "server=dial", "stderr=\"xxxx", "truncated=1", NULL),
		    "stderr logged, bounded");
	snprintf(want, sizeof(want), "pid=%d exit=3", pid1);
	ASSERT_TRUE(log_has(&e.d, 2000, "server=dial", want, "restart_in_ms=500", NULL),
		    "the crash logged with its backoff");
	usleep(600 * 1000);
	lines = agent(&e, e.dial_port, "--steps initialize,call --call whoami --args '{}'");
	ASSERT_EQ(sscanf(call_text(lines, 0) ? call_text(lines, 0) : "", "%d %63s %63s %d", &uid,
			 cwd, foo, &pid2),
		  4, "restarted after the backoff");
	ASSERT_NEQ(pid2, pid1, "a new process");
	ASSERT_FALSE(cgroup_exists(&e, "dial", 1), "the crashed one's cgroup removed");
	ASSERT_TRUE(cgroup_exists(&e, "dial", 2), "the new one in a cgroup of its own");
	json_decref(lines);
	if (!ASSERT_EQ(
		run_capture(&out, "grep -o 'keeper=[0-9]*' %s | head -1 | cut -d= -f2", e.d.log), 0,
		"keeper logged"))
		goto out;
	keeper = atoi(out);
	ASSERT_GT(keeper, 0, "keeper pid");
	/* CHOWN, FOWNER, KILL, SETGID, SETUID: what starting servers as users takes. */
	ASSERT_STREQ(status_field(keeper, "CapEff"), "00000000000000e9",
		     "the keeper keeps only what it needs");
	ASSERT_STREQ(status_field(keeper, "CapBnd"), "00000000000000e9", "nor can it get more");
	ASSERT_STREQ(status_field(pid2, "CapEff"), "0000000000000000", "the server has none");
	ASSERT_STREQ(status_field(pid2, "NoNewPrivs"), "1", "nor can it get any");
	ASSERT_STREQ(status_field(pid2, "Seccomp"), "2", "under the agents' seccomp filter");
	/* kill -9: no teardown runs; the keeper sees its pipe close. */
	tdaemon_stop(&e.d, SIGKILL, 5000);
	ASSERT_TRUE(gone(pid2, 5000), "the server is gone after kill -9 of the daemon");
	ASSERT_TRUE(keeper > 0 && gone(keeper, 5000), "and the keeper");
	ASSERT_FALSE(cgroup_exists(&e, "dial", 2), "and the server's cgroup");
out:
	free(out);
	if (lfd >= 0)
		close(lfd);
	henv_stop(&e);
}

/* per_session: each agent session its own process, gone when the session is. */
TEST(hosted_per_session)
{
	struct henv e = { 0 };
	int pid[2] = { 0, 0 }, uid;
	char cwd[64], foo[64];
	json_t *lines;

	if (!e2e_installed(e.e2e, sizeof(e.e2e))) {
		test__skip("npm peers not installed (scripts/e2e-deps.sh)");
		return;
	}
	if (!ASSERT_OK(henv_start(&e, "hsess", ", \"processes\": \"per_session\""),
		       "daemon with hosted servers"))
		goto out;
	for (int i = 0; i < 2; i++) {
		lines = agent(&e, e.dial_port,
			      "--steps initialize,call,delete --call whoami --args '{}'");
		ASSERT_EQ(sscanf(call_text(lines, 0) ? call_text(lines, 0) : "", "%d %63s %63s %d",
				 &uid, cwd, foo, &pid[i]),
			  4, "whoami answered");
		ASSERT_TRUE(step_ok(lines, "delete", 0), "session DELETE");
		json_decref(lines);
		ASSERT_TRUE(pid[i] > 0 && gone(pid[i], 5000), "its process gone with the session");
	}
	ASSERT_NEQ(pid[0], pid[1], "a process per session");
out:
	henv_stop(&e);
}

/* The dial server's whoami pid through the gateway, 0 if it did not answer. */
static int whoami_pid(struct henv *e)
{
	json_t *lines = agent(e, e->dial_port, "--steps initialize,call --call whoami --args '{}'");
	const char *t = call_text(lines, 0);
	char cwd[64], foo[64];
	int uid, pid = 0;

	if (!t || sscanf(t, "%d %63s %63s %d", &uid, cwd, foo, &pid) != 4)
		pid = 0;
	json_decref(lines);
	return pid;
}

/*
 * A live upgrade: the new daemon's keeper binds beside the old one's
 * (SO_REUSEPORT); the old one's servers go with the old daemon, and the
 * next call starts one under the new daemon.
 */
TEST(hosted_upgrade)
{
	struct henv e = { 0 };
	char *out = NULL;
	pid_t old_daemon;
	int pid1, pid2;

	if (!e2e_installed(e.e2e, sizeof(e.e2e))) {
		test__skip("npm peers not installed (scripts/e2e-deps.sh)");
		return;
	}
	if (!ASSERT_OK(henv_start(&e, "hupg", ""), "daemon with hosted servers"))
		goto out;
	pid1 = whoami_pid(&e);
	ASSERT_GT(pid1, 0, "served before the upgrade");
	old_daemon = e.d.pid;
	if (!ASSERT_EQ(run_capture(&out,
				   "timeout 60 %s/agentgatectl --instance %s upgrade --daemon "
				   "%s/agentgated 2>&1",
				   testlib_build_dir(), e.d.in.name, testlib_build_dir()),
		       0, "agentgatectl upgrade")) {
		fprintf(stderr, "%s\n", out ? out : "");
		goto out;
	}
	waitpid(old_daemon, NULL, 0);
	/* The new daemon is detached and logs in its state directory. */
	e.d.pid = ag_instance_daemon_pid(&e.d.in);
	e.d.flags |= TDAEMON_DETACHED;
	if (snprintf(e.d.log, sizeof(e.d.log), "%s/agentgated.log", e.d.state) >=
	    (int)sizeof(e.d.log))
		goto out;
	ASSERT_TRUE(gone(pid1, 5000), "the old daemon's server went with it");
	ASSERT_TRUE(log_has(&e.d, 2000, "hosted", "server=dial", "serving=", NULL),
		    "the new daemon serves it");
	pid2 = whoami_pid(&e);
	ASSERT_GT(pid2, 0, "served after the upgrade");
	ASSERT_NEQ(pid2, pid1, "by a process of the new daemon's");
out:
	free(out);
	henv_stop(&e);
}

/* Sends req to the dial server's bridge (as the daemon would), reads until EOF into out. */
static void bridge(struct henv *e, const char *req, size_t len, char *out, size_t cap)
{
	struct sockaddr_storage ss;
	socklen_t sl = make_sockaddr("127.0.0.1", e->dial_up, &ss);
	struct timeval tv = { .tv_sec = 15 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	size_t n = 0;
	ssize_t r;

	out[0] = 0;
	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (!connect(fd, (struct sockaddr *)&ss, sl) && send_all(fd, req, len))
		while (n < cap - 1 && (r = recv(fd, out + n, cap - 1 - n, 0)) > 0)
			n += (size_t)r;
	out[n] = 0;
	close(fd);
}

static void post_json(struct henv *e, const char *body, char *out, size_t cap)
{
	char req[4096];
	int n = snprintf(req, sizeof(req),
			 "POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
			 "Connection: close\r\nContent-Length: %zu\r\n\r\n%s",
			 strlen(body), body);

	bridge(e, req, (size_t)n, out, cap);
}

/*
 * The bridge as the daemon dials it, fed what no daemon sends, and a server
 * that writes a line over 4 MiB: statuses and JSON-RPC errors, never a
 * crash; the server is killed and the next call restarts it.
 */
TEST(hosted_bridge_hostile)
{
	static const struct {
		const char *req, *status;
	} bad[] = {
		{ "GET /mcp HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 405 " },
		{ "A B\r\r\n\r\n", "HTTP/1.1 405 " },
		{ "\r\n\r\n", "HTTP/1.1 400 " },
		{ "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", "HTTP/1.1 501 " },
		{ "POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", "HTTP/1.1 413 " },
		{ "POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", "HTTP/1.1 400 " },
		{ "POST / HTTP/1.1\r\nContent-Length: 8\r\n\r\nnot json", "HTTP/1.1 400 " },
	};
	static const char init[] =
	    "{\"jsonrpc\":\"2.0\",\"id\":\"i\",\"method\":\"initialize\",\"params\":"
	    "{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":"
	    "{\"name\":\"t\",\"version\":\"1\"}}}";
	struct henv e = { 0 };
	char *big = malloc(20000), out[8192];

	if (!e2e_installed(e.e2e, sizeof(e.e2e))) {
		test__skip("npm peers not installed (scripts/e2e-deps.sh)");
		goto out;
	}
	if (!ASSERT_OK_PTR(big, "buffer") ||
	    !ASSERT_OK(henv_start(&e, "hbad", ""), "daemon with hosted servers"))
		goto out;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		bridge(&e, bad[i].req, strlen(bad[i].req), out, sizeof(out));
		ASSERT_STRHAS(out, bad[i].status, bad[i].req);
	}
	memset(big, 'a', 20000);
	bridge(&e, big, 20000, out, sizeof(out));
	ASSERT_STRHAS(out, "HTTP/1.1 431 ", "a head over 16 KiB");
	post_json(&e, init, out, sizeof(out));
	ASSERT_STRHAS(out, "HTTP/1.1 200 ", "initialize answered");
	ASSERT_STRHAS(out, "Mcp-Session-Id: ", "with a session");
	ASSERT_STRHAS(out, "\"id\":\"i\"", "under the caller's own id");
	post_json(&e,
		  "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":"
		  "{\"name\":\"huge\",\"arguments\":{}}}",
		  out, sizeof(out));
	ASSERT_STRHAS(out, "\"code\":-32603", "a line over 4 MiB: a JSON-RPC error");
	ASSERT_STRHAS(out, "\"id\":7", "for that call");
	ASSERT_TRUE(log_has(&e.d, 2000, "server=dial", "kill=\"a stdout line over 4 MiB\"", NULL),
		    "the server killed, and the log says why");
	usleep(600 * 1000); /* the restart backoff */
	post_json(&e, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/list\"}", out, sizeof(out));
	ASSERT_STRHAS(out, "\"whoami\"", "restarted, initialized again, answering");
	ASSERT_GT(hosted_pid(&e, "dial", 1), 0, "by a second process");
out:
	free(big);
	henv_stop(&e);
}

/* Fail closed: a hosted server's address someone else holds stops the start, saying so. */
TEST(hosted_address_taken)
{
	char extra[1024];
	struct tdaemon d;
	uint16_t port = 0;
	int lfd = tcp_listen("127.0.0.1", 0, &port);

	if (!ASSERT_GE(lfd, 0, "a listener on the server's address"))
		return;
	snprintf(extra, sizeof(extra),
		 "\"tool_servers\": [{\"name\": \"fs\", \"match\": {\"hosts\": [\"fs.test\"]}, "
		 "\"upstream\": \"http://127.0.0.1:%u/mcp\", \"command\": {\"argv\": "
		 "[\"/bin/cat\"]}}]",
		 port);
	ASSERT_NEQ(tdaemon_start(&d, "htaken", extra, 0), 0, "the daemon does not start");
	ASSERT_TRUE(log_has(&d, 2000, "tool server fs: command: serving at http://127.0.0.1:",
			    "Address already in use", NULL),
		    "and says why");
	tdaemon_destroy(&d);
	close(lfd);
}

static int load(const char *json, struct ag_err *err)
{
	char path[] = "/tmp/agentgate-conf-XXXXXX";
	int fd = mkstemp(path), ret;
	struct ag_conf c;

	if (fd < 0 || write(fd, json, strlen(json)) != (ssize_t)strlen(json))
		return -1;
	close(fd);
	ret = ag_conf_load(&c, path, err);
	if (!ret)
		ag_conf_free(&c);
	unlink(path);
	return ret;
}

#define HOSTED(upstream, command, more)                                                     \
	"{\"tool_servers\": [{\"name\": \"s\", \"upstream\": \"" upstream "\", \"match\": " \
	"{\"hosts\": [\"s.test\"]}, \"command\": " command "}]" more "}"

TEST(hosted_config)
{
	static const struct {
		const char *json, *msg;
	} bad[] = {
		{ HOSTED("http://127.0.0.1:3001", "{\"argv\": [\"node\", \"s.js\"]}", ""),
		  "$.tool_servers[0].command.argv: \"node\": the program must be an absolute "
		  "path" },
		{ HOSTED("https://127.0.0.1:3001", "{\"argv\": [\"/bin/true\"]}", ""),
		  "$.tool_servers[0].command: a hosted server is served at its \"upstream\"" },
		{ HOSTED("http://10.0.0.1:3001", "{\"argv\": [\"/bin/true\"]}", ""),
		  "expected http://127.0.0.1:PORT/PATH" },
		{ HOSTED("http://127.0.0.1:3001", "{}", ""),
		  "$.tool_servers[0].command.argv: expected an array of 1-64 strings" },
		{ HOSTED("http://127.0.0.1:3001",
			 "{\"argv\": [\"/bin/true\"], \"agent\": \"nobody\"}",
			 ", \"agents\": [{\"name\": \"a\"}]"),
		  "$.tool_servers[0].command.agent: \"nobody\": no such agent in \"agents\"" },
		{ HOSTED("http://127.0.0.1:3001",
			 "{\"argv\": [\"/bin/true\"], \"processes\": \"pool\"}", ""),
		  "$.tool_servers[0].command.processes: \"pool\": expected \"shared\" or "
		  "\"per_session\"" },
		{ HOSTED("http://127.0.0.1:3001",
			 "{\"argv\": [\"/bin/true\"], \"env\": {\"A=B\": \"c\"}}", ""),
		  "expected a variable name without '='" },
		{ HOSTED("http://127.0.0.1:3001", "{\"argv\": [\"/bin/true\"], \"shell\": true}",
			 ""),
		  "shell" },
	};
	struct ag_err err;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&err, 0, sizeof(err));
		ASSERT_NEQ(load(bad[i].json, &err), 0, bad[i].msg);
		ASSERT_STRHAS(err.msg, bad[i].msg, "the error names the value and the cause");
	}
	ASSERT_OK(load(HOSTED("http://[::1]:3001/mcp",
			      "{\"argv\": [\"/bin/true\", \"x\"], \"agent\": \"a\", \"processes\": "
			      "\"per_session\", \"max_sessions\": 4, \"env\": {\"A\": \"b\"}}",
			      ", \"agents\": [{\"name\": \"a\"}]"),
		       &err),
		  err.msg);
}

/* The capabilities by the names a unit file gives them. */
#define CAP(c)        \
	{             \
#c, c \
	}
static const struct {
	const char *name;
	int cap;
} caps[] = {
	CAP(CAP_CHOWN),
	CAP(CAP_DAC_OVERRIDE),
	CAP(CAP_DAC_READ_SEARCH),
	CAP(CAP_FOWNER),
	CAP(CAP_FSETID),
	CAP(CAP_KILL),
	CAP(CAP_SETGID),
	CAP(CAP_SETUID),
	CAP(CAP_SETPCAP),
	CAP(CAP_LINUX_IMMUTABLE),
	CAP(CAP_NET_BIND_SERVICE),
	CAP(CAP_NET_BROADCAST),
	CAP(CAP_NET_ADMIN),
	CAP(CAP_NET_RAW),
	CAP(CAP_IPC_LOCK),
	CAP(CAP_IPC_OWNER),
	CAP(CAP_SYS_MODULE),
	CAP(CAP_SYS_RAWIO),
	CAP(CAP_SYS_CHROOT),
	CAP(CAP_SYS_PTRACE),
	CAP(CAP_SYS_PACCT),
	CAP(CAP_SYS_ADMIN),
	CAP(CAP_SYS_BOOT),
	CAP(CAP_SYS_NICE),
	CAP(CAP_SYS_RESOURCE),
	CAP(CAP_SYS_TIME),
	CAP(CAP_SYS_TTY_CONFIG),
	CAP(CAP_MKNOD),
	CAP(CAP_LEASE),
	CAP(CAP_AUDIT_WRITE),
	CAP(CAP_AUDIT_CONTROL),
	CAP(CAP_SETFCAP),
	CAP(CAP_MAC_OVERRIDE),
	CAP(CAP_MAC_ADMIN),
	CAP(CAP_SYSLOG),
	CAP(CAP_WAKE_ALARM),
	CAP(CAP_BLOCK_SUSPEND),
	CAP(CAP_AUDIT_READ),
	CAP(CAP_PERFMON),
	CAP(CAP_BPF),
	CAP(CAP_CHECKPOINT_RESTORE),
};

/*
 * As the service unit runs it: only the unit's CapabilityBoundingSet and
 * no_new_privs (this test runs in a process of its own, so they stay
 * here).  A hosted server must still start as a user of its own and answer.
 */
TEST(hosted_service_caps)
{
	char unit[PATH_MAX], *text = NULL, *set, *out = NULL;
	struct henv e = { 0 };
	json_t *lines = NULL;
	int keeper;

	if (!e2e_installed(e.e2e, sizeof(e.e2e))) {
		test__skip("npm peers not installed (scripts/e2e-deps.sh)");
		return;
	}
	snprintf(unit, sizeof(unit), "%s/packaging/agentgated.service.in", testlib_src_dir());
	if (!ASSERT_OK(ag_read_file(unit, 1 << 16, &text, NULL, NULL), "the service unit") ||
	    !ASSERT_OK_PTR(set = strstr(text, "\nCapabilityBoundingSet="), "its bounding set"))
		goto out;
	set = strtok(set + strlen("\nCapabilityBoundingSet="), "\n");
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		if (!text_has_word(set, caps[i].name))
			ASSERT_OK(prctl(PR_CAPBSET_DROP, caps[i].cap, 0, 0, 0), caps[i].name);
	ASSERT_OK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs");
	if (!ASSERT_OK(henv_start(&e, "hcap", ""),
		       "daemon with hosted servers, as the unit runs it"))
		goto out;
	lines = agent(&e, e.fs_port,
		      "--steps initialize,call --call list_allowed_directories --args '{}'");
	ASSERT_STRHAS(call_text(lines, 0) ? call_text(lines, 0) : "", e.dir,
		      "the hosted server answered");
	if (ASSERT_EQ(
		run_capture(&out, "grep -o 'keeper=[0-9]*' %s | head -1 | cut -d= -f2", e.d.log), 0,
		"keeper logged")) {
		keeper = atoi(out);
		ASSERT_STREQ(status_field(keeper, "CapEff"), "00000000000000e9",
			     "the keeper has what it needs, and no more");
	}
out:
	json_decref(lines);
	free(out);
	free(text);
	henv_stop(&e);
}
