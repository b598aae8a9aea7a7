// SPDX-License-Identifier: GPL-2.0
/*
 * Idle governed connections cost what a proxy's cost (issue 18): an agent
 * connection between requests holds no buffer and no request state, and
 * the tool server sees at most upstream_pool idle connections however
 * many agent connections stay open (mcp_upstream.c).
 *
 * A fleet of keep-alive agent connections runs in the agent's cgroup and
 * is steered by this process through shared memory: open them (one call
 * each), call again on every one at once, close them.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>

#include "config.h"
#include "mcplib.h"
#include "test.h"
#include "testlib.h"

#define POOL 4
#define FLEET_MAX 4096

enum fleet_cmd { FLEET_HOLD, FLEET_CALL, FLEET_CLOSE };

struct fleet {
	uint16_t port;
	int n;		     /* connections to open */
	volatile int opened; /* answered on their first call */
	volatile int called; /* answered again (FLEET_CALL) */
	volatile int failed; /* calls without a 200 and a result */
	volatile enum fleet_cmd cmd;
	volatile int gen;      /* bumped with each command */
	volatile int done_gen; /* the last command carried out */
	char error[256];
	int fd[FLEET_MAX];
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool fleet_send(struct fleet *f, int fd, int id)
{
	char req[512], body[160];
	int n;

	snprintf(body, sizeof(body),
		 "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":{\"name\":"
		 "\"echo\",\"arguments\":{}}}",
		 id);
	n = snprintf(
	    req, sizeof(req),
	    "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nContent-Type: application/json\r\n"
	    "Accept: application/json, text/event-stream\r\nContent-Length: %zu\r\n\r\n%s",
	    f->port, strlen(body), body);
	return send_all(fd, req, n);
}

/* One whole answer (Content-Length or chunked) with a result: true. */
static bool fleet_answer(struct fleet *f, int fd)
{
	char buf[8192], *hend;
	size_t len = 0, want = 0;
	uint64_t end = now_ms() + 10000;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		buf[len] = '\0';
		if ((hend = strstr(buf, "\r\n\r\n"))) {
			const char *cl = strcasestr(buf, "Content-Length:");

			if (cl && cl < hend)
				want = hend + 4 - buf + strtoul(cl + 15, NULL, 10);
			else if (strstr(hend, "\r\n0\r\n\r\n"))
				want = len;
			if (want && len >= want)
				break;
		}
		if (len >= sizeof(buf) - 1 || poll(&p, 1, (int)(end - now_ms())) <= 0 ||
		    (n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0)) <= 0) {
			snprintf(f->error, sizeof(f->error), "no whole answer: %.200s", buf);
			return false;
		}
		len += n;
	}
	if (strncmp(buf, "HTTP/1.1 200", 12) || !strstr(buf, "\"served\"")) {
		snprintf(f->error, sizeof(f->error), "answer: %.200s", buf);
		return false;
	}
	return true;
}

static int fleet_open(struct fleet *f, int i)
{
	struct sockaddr_storage ss;
	socklen_t sl = make_sockaddr("127.0.0.1", f->port, &ss);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || connect(fd, (struct sockaddr *)&ss, sl)) {
		snprintf(f->error, sizeof(f->error), "connect %d: %s", i, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* In the agent's cgroup: opens the connections one by one, then obeys. */
static int fleet_main(void *arg)
{
	struct fleet *f = arg;
	int seen = 0;

	alarm(120);
	for (int i = 0; i < f->n; i++) {
		if ((f->fd[i] = fleet_open(f, i)) < 0 || !fleet_send(f, f->fd[i], i + 1) ||
		    !fleet_answer(f, f->fd[i])) {
			f->failed++;
			return 1;
		}
		f->opened++;
	}
	for (;;) {
		while (f->gen == seen)
			usleep(1000);
		seen = f->gen;
		if (f->cmd == FLEET_CLOSE)
			break;
		/* Every request first, then every answer: they overlap upstream. */
		for (int i = 0; i < f->n; i++)
			if (!fleet_send(f, f->fd[i], 100000 + i))
				f->failed++;
		for (int i = 0; i < f->n; i++) {
			if (fleet_answer(f, f->fd[i]))
				f->called++;
			else
				f->failed++;
		}
		f->done_gen = seen;
	}
	for (int i = 0; i < f->n; i++)
		close(f->fd[i]);
	return 0;
}

static bool fleet_command(struct fleet *f, enum fleet_cmd cmd, int ms)
{
	int gen = f->gen + 1;
	uint64_t end = now_ms() + ms;

	f->cmd = cmd;
	f->gen = gen;
	while (f->done_gen != gen && !f->failed && now_ms() < end)
		usleep(2000);
	return f->done_gen == gen;
}

/* The fleet runs in a child, which runs it in the cgroup of agent cg. */
static pid_t fleet_start(struct mcp_env *e, struct fleet *f, int n, const char *cg)
{
	pid_t pid;

	memset(f, 0, sizeof(*f));
	f->port = e->orig_port;
	f->n = n;
	pid = fork();
	if (pid == 0)
		_exit(run_in_cgroup(cg, NOBODY_UID, fleet_main, f) & 0xff);
	return pid;
}

static bool fleet_wait_open(struct fleet *f, int n, int ms)
{
	uint64_t end = now_ms() + ms;

	while (f->opened < n && !f->failed && now_ms() < end)
		usleep(2000);
	return f->opened >= n;
}

static int fleet_end(struct fleet *f, pid_t pid)
{
	int status = -1;

	f->cmd = FLEET_CLOSE;
	f->gen++;
	for (int i = 0; i < 1000 && waitpid(pid, &status, WNOHANG) == 0; i++)
		usleep(10000);
	if (waitpid(pid, &status, WNOHANG) == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	return status;
}

/* The tool server's open connections, once they settle (≤ ms). */
static int tool_open_settled(struct tool *t, int want, int ms)
{
	int n = 0;

	for (int i = 0; i < ms / 10; i++) {
		if ((n = __atomic_load_n(&t->conns_open, __ATOMIC_SEQ_CST)) <= want)
			break;
		usleep(10000);
	}
	return n;
}

/* "daemon": {"mcp": {"upstreams": {"open", "idle"}}} of agentgatectl status --json. */
static bool upstreams(struct mcp_env *e, int *open, int *idle)
{
	char *out = NULL;
	json_t *st, *u;
	bool ok;

	run_capture(&out, "%s/agentgatectl --instance %s status --json", testlib_build_dir(),
		    e->d.in.name);
	st = out ? json_loads(out, 0, NULL) : NULL;
	u = json_object_get(json_object_get(json_object_get(st, "daemon"), "mcp"), "upstreams");
	ok = json_is_object(u);
	*open = (int)json_integer_value(json_object_get(u, "open"));
	*idle = (int)json_integer_value(json_object_get(u, "idle"));
	json_decref(st);
	free(out);
	return ok;
}

static long rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	if (!(fp = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof(line), fp))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(fp);
	return kb;
}

/* A request head cut short, then silence until told to go. */
struct half {
	uint16_t port;
	volatile int sent, go;
};

static int half_main(void *arg)
{
	struct half *h = arg;
	struct sockaddr_storage ss;
	socklen_t sl = make_sockaddr("127.0.0.1", h->port, &ss);
	char req[128];
	int fd = socket(AF_INET, SOCK_STREAM, 0), n;

	n = snprintf(req, sizeof(req), "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nContent-Le",
		     h->port);
	if (fd < 0 || connect(fd, (struct sockaddr *)&ss, sl) || !send_all(fd, req, n))
		return 1;
	h->sent = 1;
	for (int i = 0; i < 1000 && !h->go; i++)
		usleep(10000);
	close(fd);
	return 0;
}

static const char pool_agent[] = "{\"name\": \"a\", \"tools\": [\"t/echo\"], \"max_conns\": 5000}";

TEST(mcp_pool_upstreams)
{
	struct fleet *f = shared_alloc(sizeof(*f));
	struct exchange *x = shared_alloc(sizeof(*x));
	struct mcp_env e = { .server_json = "\"upstream_pool\": 4" };
	int open = -1, idle = -1;
	pid_t pid = -1;

	if (!ASSERT_OK(env_start(&e, "mcppool", REPLY_JSON, pool_agent), "environment"))
		goto out;
	if (!ASSERT_GT(pid = fleet_start(&e, f, 50, e.agent_cg), 0, "fleet"))
		goto out;
	if (test__start_subtest("idle_agents_share_the_pool")) {
		ASSERT_TRUE(fleet_wait_open(f, 50, 30000), "50 agent connections answered");
		ASSERT_EQ(f->failed, 0, f->error);
		ASSERT_LE(
		    tool_open_settled(&e.tool, POOL, 2000), POOL,
		    "the tool server sees at most upstream_pool connections while agents idle");
		ASSERT_TRUE(fleet_command(f, FLEET_CALL, 30000), "a call on each at once");
		ASSERT_EQ(f->called, 50, "every call answered");
		ASSERT_EQ(f->failed, 0, f->error);
		ASSERT_LE(tool_open_settled(&e.tool, POOL, 2000), POOL,
			  "idle again: at most upstream_pool left open");
		ASSERT_TRUE(upstreams(&e, &open, &idle), "status says");
		ASSERT_LE(open, POOL, "status: upstream connections open");
		ASSERT_EQ(idle, open, "status: all of them idle");
	}
	if (test__start_subtest("server_closes_pooled")) {
		int before = __atomic_load_n(&e.tool.nids, __ATOMIC_SEQ_CST);

		/* The server times its idle keep-alive connections out. */
		e.tool.close_idle = true;
		ASSERT_EQ(tool_open_settled(&e.tool, 0, 3000), 0, "the server closed them");
		e.tool.close_idle = false;
		/* The gateway sees each end while it is idle and drops it. */
		for (int i = 0; i < 100 && upstreams(&e, &open, &idle) && open; i++)
			usleep(10000);
		ASSERT_EQ(open, 0, "status: no upstream left");
		ASSERT_TRUE(fleet_command(f, FLEET_CALL, 30000), "a call on each again");
		ASSERT_EQ(f->called, 100, "every call answered, over new connections");
		ASSERT_EQ(f->failed, 0, f->error);
		ASSERT_EQ(__atomic_load_n(&e.tool.nids, __ATOMIC_SEQ_CST), before + 50,
			  "each call reached the server once");
		ASSERT_LE(tool_open_settled(&e.tool, POOL, 2000), POOL, "pooled again");
	}
	if (test__start_subtest("connection_close_not_pooled")) {
		int idle_before = -1;

		ASSERT_TRUE(upstreams(&e, &open, &idle_before), "status says");
		e.tool.conn_close = true;
		call_tool(&e, x, "echo", 7);
		ASSERT_STRHAS(x->response, "\"served\"", "answered");
		e.tool.conn_close = false;
		ASSERT_TRUE(upstreams(&e, &open, &idle), "status says");
		/* The answer's connection (the newest idle, or a new one) is not given back. */
		ASSERT_EQ(idle, idle_before > 0 ? idle_before - 1 : 0,
			  "the connection the server ends is not pooled");
		call_tool(&e, x, "echo", 8);
		ASSERT_STRHAS(x->response, "\"served\"", "the next call is served");
	}
	if (test__start_subtest("server_appends_an_answer")) {
		/*
		 * A server that sends a second answer nobody asked for, right
		 * after its answer or once the connection idles: were that
		 * connection pooled, the next agent's call (the newest idle one
		 * goes first) would read it as its own.
		 */
		static const char smuggled[] =
		    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 81\r\n\r\n"
		    "{\"jsonrpc\":\"2.0\",\"id\":9,\"result\":{\"content\":[{\"type\":\"text\","
		    "\"text\":\"SMUGGLED\"}]}}";

		for (int late = 0; late < 2; late++) {
			e.tool.smuggle = smuggled;
			e.tool.smuggle_late = late;
			call_tool(&e, x, "echo", 40 + late);
			ASSERT_STRHAS(x->response, "\"served\"", "the call is answered");
			ASSERT_NULL(strstr(x->response, "SMUGGLED"), "its agent sees one answer");
			e.tool.smuggle = NULL;
			usleep(300 * 1000); /* the late bytes came while it idled */
			for (int i = 0; i < 3; i++) {
				call_tool(&e, x, "echo", 50 + i);
				ASSERT_STRHAS(x->response, "\"served\"", "the next calls are served");
				ASSERT_NULL(strstr(x->response, "SMUGGLED"),
					    "no agent gets the answer nobody asked for");
			}
		}
	}
	if (test__start_subtest("pipelined")) {
		char body[2][160];

		memset(x, 0, sizeof(*x));
		x->port = e.orig_port;
		for (int i = 0; i < 2; i++)
			snprintf(
			    body[i], sizeof(body[i]),
			    "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":"
			    "{\"name\":\"echo\",\"arguments\":{}}}",
			    41 + i);
		/* Two requests in one send; the second ends the connection. */
		snprintf(
		    x->request, sizeof(x->request),
		    "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nContent-Type: application/json\r\n"
		    "Accept: application/json, text/event-stream\r\nContent-Length: %zu\r\n\r\n%s"
		    "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nContent-Type: application/json\r\n"
		    "Accept: application/json, text/event-stream\r\nContent-Length: %zu\r\n"
		    "Connection: close\r\n\r\n%s",
		    e.orig_port, strlen(body[0]), body[0], e.orig_port, strlen(body[1]), body[1]);
		run_agent(&e, x);
		ASSERT_STRHAS(x->response, "\"id\":41", "the first answered");
		ASSERT_STRHAS(x->response, "\"id\":42", "the second answered");
		ASSERT_TRUE(strstr(x->response, "\"id\":41") < strstr(x->response, "\"id\":42"),
			    "in order");
	}
	if (test__start_subtest("partial_request_idles")) {
		struct half *h = shared_alloc(sizeof(*h));
		pid_t hp;

		/* A head cut short, then silence: other agents are served meanwhile. */
		h->port = e.orig_port;
		hp = fork();
		if (hp == 0)
			_exit(run_in_cgroup(e.agent_cg, NOBODY_UID, half_main, h) & 0xff);
		for (int i = 0; i < 500 && !h->sent; i++)
			usleep(10000);
		ASSERT_TRUE(h->sent, "half a head sent");
		call_tool(&e, x, "echo", 9);
		ASSERT_STRHAS(x->response, "\"served\"", "served while a head waits");
		h->go = 1;
		ASSERT_GT(waitpid(hp, NULL, 0), 0, "the half agent left");
		ASSERT_GT(rss_kb(e.d.pid), 0, "the daemon lives");
	}
out:
	if (pid > 0)
		ASSERT_EQ(fleet_end(f, pid), 0, "fleet ended cleanly");
	env_stop(&e);
}

/*
 * RSS growth of the daemon per idle governed connection, each of which
 * made one call: at most 2 KiB (was ~62 KiB: a 32 KiB receive buffer, a
 * 6 KiB connection, and an upstream with its own buffer).  Two agents of
 * 2000 connections each: with the descriptor limit of the tests (20000)
 * one agent's fair share (fair.c) is about 3000.
 */
TEST(mcp_pool_idle_memory)
{
	struct fleet *f[2] = { shared_alloc(sizeof(*f[0])), shared_alloc(sizeof(*f[1])) };
	struct mcp_env e = { 0 };
	char cg[2][PATH_MAX];
	int half = 2000, base_n = 0, n = 0;
	long base, rss;
	pid_t pid[2] = { -1, -1 };

	if (!ASSERT_OK(env_start(&e, "mcpidle", REPLY_JSON,
				 "{\"name\": \"a\", \"tools\": [\"t/echo\"], \"max_conns\": 2500}, "
				 "{\"name\": \"b\", \"tools\": [\"t/echo\"], \"max_conns\": 2500}"),
		       "environment"))
		goto out;
	for (int i = 0; i < 2; i++) {
		snprintf(cg[i], sizeof(cg[i]), "%s/%c", e.d.in.cg_agents, 'a' + i);
		if (!ASSERT_GT(pid[i] = fleet_start(&e, f[i], half, cg[i]), 0, "fleet"))
			goto out;
	}
	/* The first connections warm the allocator and the daemon's caches. */
	for (int i = 0; i < 2; i++)
		if (!ASSERT_TRUE(fleet_wait_open(f[i], 100, 30000), "100 connections each"))
			goto out;
	base = rss_kb(e.d.pid);
	base_n = f[0]->opened + f[1]->opened;
	for (int i = 0; i < 2; i++)
		if (!ASSERT_TRUE(fleet_wait_open(f[i], half, 100000), "2000 connections each") ||
		    !ASSERT_EQ(f[i]->failed, 0, f[i]->error))
			goto out;
	n = f[0]->opened + f[1]->opened;
	usleep(100 * 1000);
	rss = rss_kb(e.d.pid);
	fprintf(stderr, "idle memory: %d connections, rss %ld -> %ld kB: %ld bytes each\n",
		n - base_n, base, rss, (rss - base) * 1024 / (n - base_n));
	ASSERT_LE((rss - base) * 1024 / (n - base_n), 2048, "at most 2 KiB per idle connection");
	ASSERT_LE(tool_open_settled(&e.tool, AG_UPSTREAM_POOL_DEFAULT, 2000),
		  AG_UPSTREAM_POOL_DEFAULT, "upstreams within the pool");
out:
	for (int i = 0; i < 2; i++)
		if (pid[i] > 0)
			ASSERT_EQ(fleet_end(f[i], pid[i]), 0, "fleet ended cleanly");
	env_stop(&e);
}
