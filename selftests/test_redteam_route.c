// SPDX-License-Identifier: GPL-2.0
/*
 * Hostile routing (issue 14): what a connection reaches is decided by the
 * address the agent dialled, never by the name it writes in its Host
 * header or SNI.  A DNS responder thread of the test (dnsstub.h) is the
 * daemon's resolver, so names resolve to loopback addresses of the test's
 * choosing: api.test and *.wild.test are at 127.0.0.2, tools.test at
 * 127.0.0.5, nothing is at 127.0.0.3 and 127.0.0.6.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dnsstub.h"
#include "mcplib.h"
#include "test.h"
#include "testlib.h"

static const struct dnsstub_name names[] = {
	{ "api.test", "127.0.0.2" },
	{ "w.wild.test", "127.0.0.2" },
	{ "tools.test", "127.0.0.5" },
};

static void http_get(struct exchange *x, const char *addr, uint16_t port, const char *host)
{
	memset(x, 0, sizeof(*x));
	snprintf(x->addr, sizeof(x->addr), "%s", addr);
	x->port = port;
	snprintf(x->request, sizeof(x->request),
		 "GET / HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer agent-canary-rt\r\n"
		 "Connection: close\r\n\r\n",
		 host);
}

/* x reaches the listener: its first bytes verbatim, and the answer comes back. */
static void relayed(const char *agent_cg, struct exchange *x, int lfd, size_t len)
{
	char got[2048];
	int c;

	if (fork() == 0)
		_exit(run_in_cgroup(agent_cg, NOBODY_UID, agent_exchange, x));
	c = accept_timeout(lfd, 5000);
	if (ASSERT_GE(c, 0, "relayed connection at the dialled address")) {
		size_t n = 0;
		ssize_t r;

		while (n < len && (r = recv(c, got + n, sizeof(got) - n, 0)) > 0)
			n += (size_t)r;
		ASSERT_EQ(n, len, "the agent's first bytes");
		ASSERT_MEMEQ(got, x->big ? x->big : x->request, len, "verbatim");
		send_all(c, "HTTP/1.1 204 No Content\r\n\r\n", 27);
		close(c);
	}
	wait(NULL);
	ASSERT_STRHAS(x->response, "204", "the answer reached the agent");
}

/*
 * x is refused for reason: nothing at lfd, logged and audited; an HTTP
 * request is answered 403 with the reason, anything else (TLS) not at all.
 */
static void refused(const struct tdaemon *d, const char *agent_cg, struct exchange *x, int lfd,
		    const char *reason)
{
	char why[64], *out = NULL;
	bool http = !x->big && x->request[0] >= 'A' && x->request[0] <= 'Z';

	ASSERT_EQ(run_in_cgroup(agent_cg, NOBODY_UID, agent_exchange, x), 0, "agent ran");
	snprintf(why, sizeof(why), "reason=%s ", reason);
	if (http) {
		ASSERT_TRUE(!strncmp(x->response, "HTTP/1.1 403 Forbidden\r\n", 24),
			    "an HTTP agent is told: 403");
		ASSERT_STRHAS(x->response, why, "the answer names the reason");
	} else {
		ASSERT_EQ(x->len, 0, "no answer");
	}
	ASSERT_FALSE(has_pending(lfd), "nothing at the dialled address");
	snprintf(why, sizeof(why), "reason=%s", reason);
	ASSERT_TRUE(log_has(d, 2000, "conn_rejected", why, NULL), "refusal logged");
	/* Records are group-committed: give the batch its moment. */
	usleep(100000);
	snprintf(why, sizeof(why), "\"reason\":\"%s\"", reason);
	ASSERT_EQ(run_capture(&out, "grep '\"kind\":\"connect\"' %s/audit.log", d->state), 0,
		  "connect records");
	ASSERT_STRHAS(out, why, "refusal audited with its reason");
	free(out);
}

static void tls_hello(struct exchange *x, const char *addr, uint16_t port, const char *sni,
		      unsigned char *buf, size_t cap)
{
	memset(x, 0, sizeof(*x));
	snprintf(x->addr, sizeof(x->addr), "%s", addr);
	x->port = port;
	x->big = (const char *)buf;
	x->big_len = tls_client_hello(sni, buf, cap);
}

/* Pass-through entries by name, with no port: each allows its name's addresses only. */
TEST(redteam_route_passthrough_host)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	static unsigned char hello[4096];
	struct dnsstub dns = { .fd = -1 };
	struct tdaemon d = { 0 };
	char extra[512], cg[PATH_MAX];
	uint16_t gport, bport;
	int good = tcp_listen("127.0.0.2", 0, &gport), bad = tcp_listen("127.0.0.3", 0, &bport);

	if (!ASSERT_GE(good, 0, "listener at 127.0.0.2") || !ASSERT_GE(bad, 0, "at 127.0.0.3") ||
	    !ASSERT_OK(dnsstub_start(&dns, names, 3), "resolver"))
		goto out;
	snprintf(extra, sizeof(extra),
		 "\"resolvers\": [\"%s\"], \"agents\": [{\"name\": \"a\", "
		 "\"passthrough\": [\"api.test\", \"*.wild.test\"]}]",
		 dns.addr);
	if (!ASSERT_OK(tdaemon_start(&d, "rtpass", extra, 0), "daemon"))
		goto out;
	snprintf(cg, sizeof(cg), "%s/a", d.in.cg_agents);
	if (test__start_subtest("host_at_its_address")) {
		http_get(x, "127.0.0.2", gport, "api.test");
		relayed(cg, x, good, strlen(x->request));
	}
	if (test__start_subtest("host_elsewhere_refused")) {
		http_get(x, "127.0.0.3", bport, "api.test");
		refused(&d, cg, x, bad, "host_mismatch");
	}
	if (test__start_subtest("wildcard_at_its_address")) {
		http_get(x, "127.0.0.2", gport, "W.Wild.Test:8080");
		relayed(cg, x, good, strlen(x->request));
	}
	if (test__start_subtest("wildcard_elsewhere_refused")) {
		http_get(x, "127.0.0.3", bport, "w.wild.test");
		refused(&d, cg, x, bad, "host_mismatch");
	}
	if (test__start_subtest("nonexistent_name_refused")) {
		http_get(x, "127.0.0.2", gport, "gone.wild.test");
		refused(&d, cg, x, good, "host_mismatch");
	}
	if (test__start_subtest("sni_at_its_address")) {
		tls_hello(x, "127.0.0.2", gport, "api.test", hello, sizeof(hello));
		if (ASSERT_GT(x->big_len, 0, "ClientHello"))
			relayed(cg, x, good, x->big_len);
	}
	if (test__start_subtest("sni_elsewhere_refused")) {
		tls_hello(x, "127.0.0.3", bport, "api.test", hello, sizeof(hello));
		if (ASSERT_GT(x->big_len, 0, "ClientHello"))
			refused(&d, cg, x, bad, "host_mismatch");
	}
	if (test__start_subtest("resolver_asked")) {
		ASSERT_GT(dns.queries, 0, "the daemon asked the resolver");
	}
out:
	if (d.pid)
		tdaemon_destroy(&d);
	dnsstub_stop(&dns);
	close(good);
	close(bad);
}

static void tool_post(struct exchange *x, const char *addr, uint16_t port, const char *host,
		      const char *tool)
{
	char body[256];

	snprintf(body, sizeof(body),
		 "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":"
		 "\"%s\"}}",
		 tool);
	memset(x, 0, sizeof(*x));
	snprintf(x->addr, sizeof(x->addr), "%s", addr);
	x->port = port;
	snprintf(x->request, sizeof(x->request),
		 "POST /mcp HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
		 "Accept: application/json, text/event-stream\r\n"
		 "Authorization: Bearer agent-canary-rt\r\nContent-Length: %zu\r\n"
		 "Connection: close\r\n\r\n%s",
		 host, strlen(body), body);
}

/*
 * A tool server matched by host name, with the default pass-through "*":
 * its address and its upstream's take the MCP path whatever Host the agent
 * sends, and its name sent to another address reaches nothing.
 */
TEST(redteam_route_tool_server_host)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	struct dnsstub dns = { .fd = -1 };
	struct mcp_env e = { 0 };
	char extra[1024], host[64], *log = NULL;
	uint16_t port = free_port();
	int front = tcp_listen("127.0.0.5", port, NULL),
	    other = tcp_listen("127.0.0.6", port, NULL);

	if (!ASSERT_GE(front, 0, "the server's own address") || !ASSERT_GE(other, 0, "another") ||
	    !ASSERT_OK(dnsstub_start(&dns, names, 3), "resolver") ||
	    !ASSERT_OK(tool_start(&e.tool, REPLY_JSON), "tool server"))
		goto out;
	snprintf(
	    extra, sizeof(extra),
	    "\"resolvers\": [\"%s\"], \"tool_servers\": [{\"name\": \"t\", \"match\": "
	    "{\"hosts\": [\"tools.test\"], \"ports\": [%u]}, \"upstream\": "
	    "\"http://127.0.0.1:%u/mcp\"}], \"agents\": [{\"name\": \"a\", \"tools\": [\"t/echo\"]}]",
	    dns.addr, port, e.tool.port);
	if (!ASSERT_OK(tdaemon_start(&e.d, "rttool", extra, 0), "daemon"))
		goto out;
	snprintf(e.agent_cg, sizeof(e.agent_cg), "%s/a", e.d.in.cg_agents);
	if (test__start_subtest("other_host_at_server_address")) {
		tool_post(x, "127.0.0.5", port, "other.test", "secret");
		run_agent(&e, x);
		ASSERT_STRHAS(x->response, "HTTP/1.1 403", "the gateway refused the Host");
		ASSERT_FALSE(has_pending(front), "nothing relayed to the server's address");
		ASSERT_EQ(tool_nseen(&e.tool), 0, "nothing reached the tool server");
		ASSERT_OK(run_capture(&log,
				      "for i in $(seq 30); do grep -q '\"error\":\"request: Host not "
				      "allowed.*\"result\":\"refused\"' %s/audit.log && exit 0; "
				      "sleep 0.1; done; exit 1",
				      e.d.state),
			  "the refusal audited");
		free(log);
		log = NULL;
	}
	if (test__start_subtest("other_host_at_upstream")) {
		tool_post(x, "127.0.0.1", e.tool.port, "other.test", "secret");
		run_agent(&e, x);
		ASSERT_STRHAS(x->response, "HTTP/1.1 403", "the gateway refused the Host");
		ASSERT_EQ(tool_nseen(&e.tool), 0, "the agent's Authorization never reached it");
	}
	if (test__start_subtest("server_name_elsewhere_refused")) {
		tool_post(x, "127.0.0.6", port, "tools.test", "echo");
		refused(&e.d, e.agent_cg, x, other, "host_mismatch");
		ASSERT_EQ(tool_nseen(&e.tool), 0, "nothing reached the tool server");
	}
	if (test__start_subtest("server_name_at_its_address_governed")) {
		snprintf(host, sizeof(host), "tools.test:%u", port);
		tool_post(x, "127.0.0.5", port, host, "echo");
		run_agent(&e, x);
		ASSERT_STRHAS(x->response, "\"served\"", "the call was served");
		if (ASSERT_EQ(tool_nseen(&e.tool), 1, "through the gateway"))
			ASSERT_NULL(strstr(e.tool.seen[0].head, "agent-canary"),
				    "no agent credential upstream");
		ASSERT_FALSE(has_pending(front), "never relayed");
	}
out:
	if (e.d.pid)
		tdaemon_destroy(&e.d);
	if (e.tool.lfd > 0)
		tool_stop(&e.tool);
	dnsstub_stop(&dns);
	close(front);
	close(other);
}

/* A first request far over one buffer, in one write: served whole. */
TEST(redteam_route_big_first_request)
{
	static const char head[] = "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\","
				   "\"params\":{\"name\":\"echo\",\"arguments\":{\"text\":\"";
	struct exchange *x = shared_alloc(sizeof(*x));
	size_t text = 100 * 1024, blen = sizeof(head) - 1 + text + 4, n;
	struct mcp_env e = { 0 };
	char *req = malloc(blen + 512);

	if (!ASSERT_OK_PTR(req, "request") ||
	    !ASSERT_OK(
		env_start(&e, "rtbig", REPLY_JSON, "{\"name\": \"a\", \"tools\": [\"t/echo\"]}"),
		"environment"))
		goto out;
	memset(x, 0, sizeof(*x));
	x->port = e.orig_port;
	n = (size_t)snprintf(req, 512,
			     "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nContent-Type: "
			     "application/json\r\nAccept: application/json, text/event-stream\r\n"
			     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
			     e.orig_port, blen, head);
	memset(req + n, 'a', text);
	memcpy(req + n + text, "\"}}}", 4);
	x->big = req;
	x->big_len = n + text + 4;
	run_agent(&e, x);
	ASSERT_STRHAS(x->response, "\"served\"", "answered");
	if (ASSERT_EQ(tool_nseen(&e.tool), 1, "at the tool server"))
		ASSERT_EQ(e.tool.seen[0].body_len, blen, "the body whole");
out:
	if (req)
		env_stop(&e);
	free(req);
}

/*
 * A destination nothing allows is refused before any byte is read; the
 * bytes are read only to tell an HTTP agent why (a 403 naming the
 * reason), while a TLS agent, or one that sends nothing, is reset.
 * Either way nothing reaches the destination and the refusal is audited.
 */
TEST(redteam_route_refused_told_why)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	static unsigned char hello[4096];
	struct tdaemon d = { 0 };
	char extra[256], cg[PATH_MAX];
	uint16_t port;
	int lfd = tcp_listen("127.0.0.3", 0, &port);

	if (!ASSERT_GE(lfd, 0, "listener at 127.0.0.3"))
		goto out;
	snprintf(extra, sizeof(extra),
		 "\"agents\": [{\"name\": \"a\", \"passthrough\": [\"127.0.0.2:80\"]}]");
	if (!ASSERT_OK(tdaemon_start(&d, "rttold", extra, 0), "daemon"))
		goto out;
	snprintf(cg, sizeof(cg), "%s/a", d.in.cg_agents);
	if (test__start_subtest("http_gets_403")) {
		http_get(x, "127.0.0.3", port, "anything.test");
		refused(&d, cg, x, lfd, "not_allowed");
		ASSERT_STRHAS(x->response, "agent=a destination=127.0.0.3:", "who and where");
	}
	if (test__start_subtest("tls_is_reset")) {
		tls_hello(x, "127.0.0.3", port, "anything.test", hello, sizeof(hello));
		refused(&d, cg, x, lfd, "not_allowed");
	}
out:
	tdaemon_destroy(&d);
	if (lfd >= 0)
		close(lfd);
}
