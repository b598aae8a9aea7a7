// SPDX-License-Identifier: GPL-2.0
/*
 * The MCP path end to end with a real agentgated: an agent process in the
 * instance's agent cgroup speaks HTTP to a tool server's original address,
 * the kernel redirects it, and a tool server played by this process (a
 * thread, so every byte that reaches it can be checked) answers.
 * Real third-party MCP peers are driven by test_mcp_e2e.c.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "http.h"
#include "test.h"
#include "testlib.h"

#define MAX_SEEN 16
#define BIG 65536

/* ---- the tool server -------------------------------------------------- */

enum reply_kind {
	REPLY_JSON,	/* answers each JSON-RPC request of the body */
	REPLY_SSE_SLOW, /* progress event, waits for the agent to see it, result */
};

struct seen {
	char head[4096];
	char body[8192];
};

struct tool {
	int lfd;
	uint16_t port;
	pthread_t th;
	volatile bool stop;
	enum reply_kind kind;
	pthread_mutex_t lock;
	int nseen;
	struct seen seen[MAX_SEEN];
	/* REPLY_SSE_SLOW: set by the agent child (shared memory) once it has
	 * read the progress event. */
	volatile int *progress_seen;
	int progress_waited_ms;
};

static const char tools_list_result[] =
	"{\"tools\":[{\"name\":\"echo\",\"inputSchema\":{\"type\":\"object\"}},"
	"{\"name\":\"secret\",\"inputSchema\":{\"type\":\"object\"}},"
	"{\"name\":\"add\",\"inputSchema\":{\"type\":\"object\"}}]}";

/* The answer to one request: tools/list lists three tools, anything else echoes. */
static int answer_one(const char *msg, char *out, size_t cap)
{
	const char *id = strstr(msg, "\"id\":"), *end;
	char idbuf[64] = "null";

	if (!id)
		return 0; /* a notification or response: nothing to answer */
	id += 5;
	end = id + strcspn(id, ",}");
	snprintf(idbuf, sizeof(idbuf), "%.*s", (int)(end - id), id);
	if (strstr(msg, "\"tools/list\""))
		return snprintf(out, cap, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":%s}", idbuf,
				tools_list_result);
	return snprintf(out, cap,
			"{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"content\":[{\"type\":\"text\","
			"\"text\":\"served\"}]}}",
			idbuf);
}

/* Answers a body: one message or a batch (split at top-level "},{"). */
static size_t answer_body(const char *body, char *out, size_t cap)
{
	size_t n = 0;

	if (body[0] != '[')
		return answer_one(body, out, cap);
	n += snprintf(out + n, cap - n, "[");
	for (const char *p = body + 1; *p && n < cap;) {
		const char *next = strstr(p, "},{");
		char one[2048];
		size_t len = next ? (size_t)(next - p + 1) : strlen(p) - 1;
		int w;

		snprintf(one, sizeof(one), "%.*s", (int)len, p);
		if (n > 1 && out[n - 1] != '[')
			n += snprintf(out + n, cap - n, ",");
		w = answer_one(one, out + n, cap - n);
		if (!w && n && out[n - 1] == ',')
			n--;
		n += w;
		if (!next)
			break;
		p = next + 2;
	}
	n += snprintf(out + n, cap - n, "]");
	return n;
}

static void record(struct tool *t, const char *head, size_t hlen, const char *body, size_t blen)
{
	pthread_mutex_lock(&t->lock);
	if (t->nseen < MAX_SEEN) {
		struct seen *s = &t->seen[t->nseen++];

		snprintf(s->head, sizeof(s->head), "%.*s", (int)hlen, head);
		snprintf(s->body, sizeof(s->body), "%.*s", (int)blen, body);
	}
	pthread_mutex_unlock(&t->lock);
}

static bool send_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n <= 0)
			return false;
		buf += n;
		len -= n;
	}
	return true;
}

static void reply(struct tool *t, int fd, const char *body)
{
	static char out[BIG], msg[BIG];
	size_t n = answer_body(body, msg, sizeof(msg));
	int w;

	if (t->kind == REPLY_SSE_SLOW) {
		const char progress[] = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":"
					"\"notifications/progress\",\"params\":{\"progressToken\":1,"
					"\"progress\":1}}\n\n";
		char chunk[256];

		w = snprintf(out, sizeof(out),
			     "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
			     "Transfer-Encoding: chunked\r\n\r\n%zx\r\n%s\r\n",
			     sizeof(progress) - 1, progress);
		send_all(fd, out, w);
		/* The result waits until the agent has the progress event: proof
		 * that the gateway does not hold the stream back. */
		for (t->progress_waited_ms = 0; t->progress_waited_ms < 5000 && !*t->progress_seen;
		     t->progress_waited_ms += 10)
			usleep(10000);
		w = snprintf(chunk, sizeof(chunk), "event: message\ndata: ");
		w = snprintf(out, sizeof(out), "%zx\r\n%s%.*s\n\n\r\n0\r\n\r\n", w + n + 2, chunk,
			     (int)n, msg);
		send_all(fd, out, w);
		return;
	}
	if (!n) {
		w = snprintf(out, sizeof(out), "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
		send_all(fd, out, w);
		return;
	}
	w = snprintf(out, sizeof(out),
		     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
		     "\r\n%.*s",
		     n, (int)n, msg);
	send_all(fd, out, w);
}

/* One connection: requests parsed with the project's own strict parser. */
static void tool_conn(struct tool *t, int fd)
{
	static char buf[BIG], body[BIG];
	struct ag_http_parser p;
	struct ag_http_event ev;
	struct ag_err err;
	size_t blen = 0, hlen = 0;
	char head[4096];

	if (ag_http_parser_init(&p, true, NULL, &err))
		return;
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;
		const char *in = buf;

		if (t->stop || poll(&pfd, 1, 100) < 0)
			break;
		if (!(pfd.revents & (POLLIN | POLLHUP)))
			continue;
		n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			break;
		while (n >= 0) {
			ssize_t used = ag_http_parse(&p, in, n, &ev);

			if (used < 0)
				goto out;
			in += used;
			n -= used;
			if (ev.type == AG_HTTP_EV_HEAD) {
				const struct ag_http_msg *m = &p.msg;

				hlen = snprintf(head, sizeof(head), "%.*s %.*s\n", (int)m->method_len,
						m->method, (int)m->target_len, m->target);
				for (unsigned int i = 0; i < m->nfields && hlen < sizeof(head); i++)
					hlen += snprintf(head + hlen, sizeof(head) - hlen,
							 "%.*s: %.*s\n", (int)m->headers[i].name_len,
							 m->headers[i].name,
							 (int)m->headers[i].value_len,
							 m->headers[i].value);
				blen = 0;
			} else if (ev.type == AG_HTTP_EV_BODY) {
				if (blen + ev.len < sizeof(body) - 1) {
					memcpy(body + blen, ev.data, ev.len);
					blen += ev.len;
				}
			} else if (ev.type == AG_HTTP_EV_END) {
				body[blen] = '\0';
				record(t, head, hlen, body, blen);
				reply(t, fd, body);
			} else {
				break;
			}
		}
	}
out:
	ag_http_parser_release(&p);
}

static void *tool_main(void *arg)
{
	struct tool *t = arg;

	while (!t->stop) {
		int fd = accept_timeout(t->lfd, 100);

		if (fd < 0)
			continue;
		tool_conn(t, fd);
		close(fd);
	}
	return NULL;
}

static int tool_start(struct tool *t, enum reply_kind kind)
{
	memset(t, 0, sizeof(*t));
	t->kind = kind;
	pthread_mutex_init(&t->lock, NULL);
	t->progress_seen = shared_alloc(sizeof(int));
	t->lfd = tcp_listen("127.0.0.1", 0, &t->port);
	if (t->lfd < 0)
		return -errno;
	return pthread_create(&t->th, NULL, tool_main, t) ? -EAGAIN : 0;
}

static void tool_stop(struct tool *t)
{
	t->stop = true;
	pthread_join(t->th, NULL);
	close(t->lfd);
}

static int tool_nseen(struct tool *t)
{
	int n;

	pthread_mutex_lock(&t->lock);
	n = t->nseen;
	pthread_mutex_unlock(&t->lock);
	return n;
}

/* ---- the agent -------------------------------------------------------- */

struct exchange {
	uint16_t port;	    /* the tool server's original port, as the agent knows it */
	char request[8192]; /* sent as is */
	char response[BIG]; /* everything read until EOF */
	int len;
	int err;
	volatile int *progress_seen; /* set once "notifications/progress" arrived */
};

static int agent_exchange(void *arg)
{
	struct exchange *x = arg;
	struct sockaddr_storage ss;
	socklen_t sl = make_sockaddr("127.0.0.1", x->port, &ss);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	size_t len = strlen(x->request);

	if (connect(fd, (struct sockaddr *)&ss, sl) || !send_all(fd, x->request, len)) {
		x->err = errno;
		return 1;
	}
	while (x->len < (int)sizeof(x->response) - 1) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, 5000) <= 0) {
			x->err = ETIMEDOUT;
			break;
		}
		n = recv(fd, x->response + x->len, sizeof(x->response) - 1 - x->len, 0);
		if (n <= 0) {
			if (n < 0)
				x->err = errno;
			break;
		}
		x->len += n;
		x->response[x->len] = '\0';
		if (x->progress_seen && strstr(x->response, "notifications/progress"))
			*x->progress_seen = 1;
	}
	close(fd);
	return 0;
}

/* An MCP POST as an agent sends it, ending the connection after the answer. */
static void post(struct exchange *x, uint16_t port, const char *extra_headers, const char *body)
{
	memset(x, 0, sizeof(*x));
	x->port = port;
	snprintf(x->request, sizeof(x->request),
		 "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nContent-Type: application/json\r\n"
		 "Accept: application/json, text/event-stream\r\n%sContent-Length: %zu\r\n"
		 "Connection: close\r\n\r\n%s",
		 port, extra_headers, strlen(body), body);
}

struct mcp_env {
	struct tdaemon d;
	struct tool tool;
	uint16_t orig_port; /* where the agent believes the tool server is */
	char agent_cg[PATH_MAX];
};

/*
 * The tool server is "t", known to the agent as 127.0.0.1:orig_port
 * (nothing listens there: only the redirect makes it reachable) and
 * reached by the gateway at the thread's real port.
 */
static int env_start(struct mcp_env *e, const char *suffix, enum reply_kind kind,
		     const char *agent_json)
{
	char extra[2048];
	int ret;

	if ((ret = tool_start(&e->tool, kind)))
		return ret;
	e->orig_port = free_port();
	snprintf(extra, sizeof(extra),
		 "\"tool_servers\": [{\"name\": \"t\", \"match\": {\"addresses\": [\"127.0.0.1\"], "
		 "\"ports\": [%u]}, \"upstream\": \"http://127.0.0.1:%u\"}], \"agents\": [%s]",
		 e->orig_port, e->tool.port, agent_json);
	if ((ret = tdaemon_start(&e->d, suffix, extra, 0)))
		return ret;
	snprintf(e->agent_cg, sizeof(e->agent_cg), "%s/a", e->d.in.cg_agents);
	return 0;
}

static void env_stop(struct mcp_env *e)
{
	tdaemon_destroy(&e->d);
	tool_stop(&e->tool);
}

static struct exchange *run_agent(struct mcp_env *e, struct exchange *x)
{
	ASSERT_EQ(run_in_cgroup(e->agent_cg, NOBODY_UID, agent_exchange, x), 0, "agent ran");
	return x;
}

static const char default_agent[] = "{\"name\": \"a\", \"tools\": [\"t/echo\", \"t/add\"]}";

TEST(mcp_governed)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	struct mcp_env e;

	if (!ASSERT_OK(env_start(&e, "mcpgov", REPLY_JSON, default_agent), "environment"))
		goto out;
	if (test__start_subtest("list_filtered")) {
		post(x, e.orig_port, "",
		     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{}}");
		run_agent(&e, x);
		ASSERT_STRHAS(x->response, "HTTP/1.1 200", "status");
		ASSERT_STRHAS(x->response, "\"name\":\"echo\"", "allowed tool listed");
		ASSERT_STRHAS(x->response, "\"name\":\"add\"", "second allowed tool listed");
		ASSERT_NULL(strstr(x->response, "secret"), "tool outside the allow-list hidden");
		ASSERT_EQ(tool_nseen(&e.tool), 1, "one request at the tool server");
	}
	if (test__start_subtest("call_allowed_credentials_stripped")) {
		int before = tool_nseen(&e.tool);

		post(x, e.orig_port,
		     "Authorization: Bearer agent-canary-7f3a\r\nCookie: sid=agent-canary-c00k\r\n"
		     "Proxy-Authorization: Basic agent-canary-pxy\r\n",
		     "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":"
		     "\"echo\",\"arguments\":{\"text\":\"hi\"}}}");
		run_agent(&e, x);
		ASSERT_STRHAS(x->response, "\"served\"", "the tool's result reached the agent");
		if (ASSERT_EQ(tool_nseen(&e.tool), before + 1, "the call reached the tool server")) {
			struct seen *s = &e.tool.seen[before];
			char host[64];

			ASSERT_STRHAS(s->body, "\"name\":\"echo\"", "body forwarded");
			ASSERT_NULL(strstr(s->head, "agent-canary"), "no agent credential upstream");
			ASSERT_NULL(strcasestr(s->head, "authorization:"), "no Authorization upstream");
			ASSERT_NULL(strcasestr(s->head, "cookie:"), "no Cookie upstream");
			snprintf(host, sizeof(host), "Host: 127.0.0.1:%u\n", e.tool.port);
			ASSERT_STRHAS(s->head, host, "Host names the upstream");
		}
	}
	if (test__start_subtest("call_denied_never_forwarded")) {
		int before = tool_nseen(&e.tool);

		post(x, e.orig_port, "",
		     "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":"
		     "\"secret\",\"arguments\":{}}}");
		run_agent(&e, x);
		ASSERT_STRHAS(x->response, "HTTP/1.1 200", "status 200");
		ASSERT_STRHAS(x->response, "\"code\":-32602", "unknown-tool error code");
		ASSERT_STRHAS(x->response, "Unknown tool: secret", "unknown-tool message");
		ASSERT_EQ(tool_nseen(&e.tool), before, "nothing reached the tool server");
	}
	if (test__start_subtest("batch_mixed")) {
		int before = tool_nseen(&e.tool);

		post(x, e.orig_port, "",
		     "[{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":"
		     "\"echo\"}},{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\","
		     "\"params\":{\"name\":\"secret\"}}]");
		run_agent(&e, x);
		ASSERT_STRHAS(x->response, "\"id\":4,\"result\"", "allowed element answered");
		ASSERT_STRHAS(x->response, "\"id\":5,\"error\"", "denied element answered");
		if (ASSERT_EQ(tool_nseen(&e.tool), before + 1, "one request at the tool server")) {
			ASSERT_STRHAS(e.tool.seen[before].body, "\"echo\"", "allowed element forwarded");
			ASSERT_NULL(strstr(e.tool.seen[before].body, "secret"),
				    "denied element not forwarded");
		}
	}
	if (test__start_subtest("header_mismatch_2026")) {
		int before = tool_nseen(&e.tool);

		post(x, e.orig_port,
		     "MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\n"
		     "Mcp-Name: echo\r\n",
		     "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/call\",\"params\":{\"name\":"
		     "\"secret\"}}");
		run_agent(&e, x);
		ASSERT_STRHAS(x->response, "HTTP/1.1 400", "status 400");
		ASSERT_STRHAS(x->response, "-32020", "header mismatch code");
		ASSERT_EQ(tool_nseen(&e.tool), before, "nothing reached the tool server");
	}
	if (test__start_subtest("headers_agree_2026")) {
		post(x, e.orig_port,
		     "MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\n"
		     "Mcp-Name: secret\r\n",
		     "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":"
		     "\"secret\"}}");
		run_agent(&e, x);
		/* Consistent headers, decided on the body: still not allowed. */
		ASSERT_STRHAS(x->response, "Unknown tool: secret", "decided on the body");
	}
	if (test__start_subtest("host_rebinding_refused")) {
		int before = tool_nseen(&e.tool);

		memset(x, 0, sizeof(*x));
		x->port = e.orig_port;
		snprintf(x->request, sizeof(x->request),
			 "POST /mcp HTTP/1.1\r\nHost: evil.example:%u\r\nContent-Type: "
			 "application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
			 e.orig_port);
		run_agent(&e, x);
		ASSERT_STRHAS(x->response, "HTTP/1.1 403", "foreign Host refused");
		post(x, e.orig_port, "Origin: http://evil.example\r\n",
		     "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/list\"}");
		run_agent(&e, x);
		ASSERT_STRHAS(x->response, "HTTP/1.1 403", "foreign Origin refused");
		ASSERT_EQ(tool_nseen(&e.tool), before, "nothing reached the tool server");
	}
	if (test__start_subtest("audit_decisions")) {
		char *out = NULL;

		/* Records are group-committed: give the batch its millisecond. */
		usleep(100000);
		ASSERT_EQ(run_capture(&out, "grep '\"kind\":\"decision\"' %s/audit.log", e.d.state), 0,
			  "decision records");
		if (out) {
			ASSERT_STRHAS(out, "\"decision\":\"allow\"", "allow recorded");
			ASSERT_STRHAS(out, "\"decision\":\"deny_unknown\"", "denial recorded");
			ASSERT_STRHAS(out, "\"args_sha256\":\"", "arguments hashed");
			ASSERT_NULL(strstr(out, "\"hi\""), "argument values not logged");
		}
		free(out);
		out = NULL;
		ASSERT_EQ(run_capture(&out, "grep -c '\"kind\":\"result\"' %s/audit.log", e.d.state),
			  0, "result records");
		free(out);
	}
out:
	env_stop(&e);
}

/* Ambiguous framing from an agent: 400, connection closed, nothing forwarded. */
TEST(mcp_framing)
{
	static const struct {
		const char *name;
		const char *fields;
		const char *body;
	} cases[] = {
		{ "cl_and_te", "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n", "2\r\n{}\r\n0\r\n\r\n" },
		{ "duplicate_cl", "Content-Length: 2\r\nContent-Length: 2\r\n", "{}" },
		{ "obs_fold", "Content-Length: 2\r\nX-Folded: a\r\n b\r\n", "{}" },
		{ "bare_lf", "Content-Length: 2\nX-A: b\r\n", "{}" },
		{ "bare_cr", "Content-Length: 2\r\nX-A: b\rc\r\n", "{}" },
		{ "chunk_size_overflow", "Transfer-Encoding: chunked\r\n",
		  "10000000000000000\r\n{}\r\n0\r\n\r\n" },
	};
	struct exchange *x = shared_alloc(sizeof(*x));
	struct mcp_env e;

	if (!ASSERT_OK(env_start(&e, "mcpframe", REPLY_JSON, default_agent), "environment"))
		goto out;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (!test__start_subtest(cases[i].name))
			continue;
		memset(x, 0, sizeof(*x));
		x->port = e.orig_port;
		snprintf(x->request, sizeof(x->request),
			 "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n%s\r\n%s", e.orig_port,
			 cases[i].fields, cases[i].body);
		run_agent(&e, x);
		ASSERT_STRHAS(x->response, "HTTP/1.1 400", "refused with 400");
		ASSERT_STRHAS(x->response, "Connection: close", "connection closed");
		ASSERT_EQ(tool_nseen(&e.tool), 0, "nothing reached the tool server");
	}
out:
	env_stop(&e);
}

/* SSE responses pass event by event: a progress notification reaches the
 * agent while the tool server still holds the result back. */
TEST(mcp_sse_streaming)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	struct mcp_env e;

	if (!ASSERT_OK(env_start(&e, "mcpsse", REPLY_SSE_SLOW, default_agent), "environment"))
		goto out;
	if (test__start_subtest("progress_before_result")) {
		post(x, e.orig_port, "",
		     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
		     "\"echo\",\"_meta\":{\"progressToken\":1}}}");
		x->progress_seen = e.tool.progress_seen;
		run_agent(&e, x);
		ASSERT_EQ(*e.tool.progress_seen, 1, "the agent saw the progress event");
		ASSERT_LT(e.tool.progress_waited_ms, 5000, "the result was not needed to get it");
		ASSERT_STRHAS(x->response, "\"served\"", "then the result");
		ASSERT_LT(strstr(x->response, "progress") - x->response,
			  strstr(x->response, "served") - x->response, "progress came first");
	}
	if (test__start_subtest("list_filtered_in_stream")) {
		*e.tool.progress_seen = 1; /* no waiting in the tool server */
		post(x, e.orig_port, "", "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}");
		run_agent(&e, x);
		ASSERT_STRHAS(x->response, "\"name\":\"echo\"", "allowed tool in the event");
		ASSERT_NULL(strstr(x->response, "secret"), "hidden tool filtered from the event");
		ASSERT_STRHAS(x->response, "progress", "other events passed on");
	}
out:
	env_stop(&e);
}

/* What is not a governed tool server: relayed if the agent may, else refused. */
TEST(mcp_passthrough)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	struct mcp_env e;
	uint16_t other_port;
	int other = tcp_listen("127.0.0.1", 0, &other_port);
	char agent[256];

	/* Allowed by Host name only: the daemon must read the first bytes. */
	snprintf(agent, sizeof(agent),
		 "{\"name\": \"a\", \"tools\": [\"t/echo\"], \"passthrough\": [\"allowed.example\"]}");
	if (!ASSERT_OK(env_start(&e, "mcppass", REPLY_JSON, agent), "environment"))
		goto out;
	if (test__start_subtest("host_allowed_relayed")) {
		char got[512] = "";
		int c;

		memset(x, 0, sizeof(*x));
		x->port = other_port;
		snprintf(x->request, sizeof(x->request),
			 "GET / HTTP/1.1\r\nHost: allowed.example\r\nConnection: close\r\n\r\n");
		if (fork() == 0)
			_exit(run_in_cgroup(e.agent_cg, NOBODY_UID, agent_exchange, x));
		c = accept_timeout(other, 5000);
		if (ASSERT_GE(c, 0, "relayed connection at the destination")) {
			ssize_t n = recv(c, got, sizeof(got) - 1, 0);

			ASSERT_GT(n, 0, "bytes at the destination");
			ASSERT_STREQ(got, x->request, "the agent's first bytes, verbatim");
			send_all(c, "HTTP/1.1 204 No Content\r\n\r\n", 27);
			close(c);
		}
		wait(NULL);
		ASSERT_STRHAS(x->response, "204", "the answer reached the agent");
	}
	if (test__start_subtest("other_host_refused")) {
		memset(x, 0, sizeof(*x));
		x->port = other_port;
		snprintf(x->request, sizeof(x->request),
			 "GET / HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n");
		run_agent(&e, x);
		ASSERT_EQ(x->len, 0, "no answer");
		ASSERT_FALSE(has_pending(other), "nothing at the destination");
		ASSERT_TRUE(log_has(&e.d, 2000, "conn_rejected", "reason=not_allowed", NULL),
			    "refusal logged");
	}
out:
	env_stop(&e);
	close(other);
}
