// SPDX-License-Identifier: GPL-2.0
/*
 * Verdicts from configuration, through the real daemon: an agent's default
 * verdict, dest_rules for every agent and for one agent (which wins), port-
 * specific rules, DIRECT (the agent reaches the destination itself).
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "testlib.h"

struct attempt {
	char dst[64];
	uint16_t port;
	int ret, err;
	uint16_t local_port; /* the agent socket's own port, to spot DIRECT */
};

static int agent_connect(void *arg)
{
	struct attempt *a = arg;
	struct sockaddr_storage ss, local;
	socklen_t len = make_sockaddr(a->dst, a->port, &ss), llen = sizeof(local);
	int fd = socket(ss.ss_family, SOCK_STREAM, 0);

	a->ret = connect(fd, (struct sockaddr *)&ss, len);
	a->err = errno;
	if (!a->ret && !getsockname(fd, (struct sockaddr *)&local, &llen))
		a->local_port = ntohs(((struct sockaddr_in *)&local)->sin_port);
	if (!a->ret && write(fd, "x", 1) != 1)
		a->ret = -1;
	/* Keep the socket until the test has looked at the tool's side. */
	usleep(200 * 1000);
	close(fd);
	return 0;
}

/*
 * One socket, redirected to dst:port, then disconnected (AF_UNSPEC) and
 * connected again to dst:other_port, which a rule lets through directly;
 * what getpeername says after each connect.
 */
struct reconnect {
	char dst[64];
	uint16_t port, other_port;
	uint16_t peer_first, peer_second;
	int ret;
};

static uint16_t peer_port_of(int fd)
{
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer);

	if (getpeername(fd, (struct sockaddr *)&peer, &plen))
		return 0;
	return ntohs(((struct sockaddr_in *)&peer)->sin_port);
}

static int agent_reconnect(void *arg)
{
	struct reconnect *r = arg;
	struct sockaddr_storage ss;
	struct sockaddr unspec = { .sa_family = AF_UNSPEC };
	socklen_t len = make_sockaddr(r->dst, r->port, &ss);
	int fd = socket(ss.ss_family, SOCK_STREAM, 0);

	r->ret = -1;
	if (fd < 0 || connect(fd, (struct sockaddr *)&ss, len))
		goto out;
	r->peer_first = peer_port_of(fd);
	if (connect(fd, &unspec, sizeof(unspec)))
		goto out;
	len = make_sockaddr(r->dst, r->other_port, &ss);
	if (connect(fd, (struct sockaddr *)&ss, len))
		goto out;
	r->peer_second = peer_port_of(fd);
	r->ret = 0;
out:
	if (fd >= 0)
		close(fd);
	return 0;
}

enum outcome { DENIED, RELAYED, DIRECT };

/*
 * DENIED: EPERM, nothing at the tool.  RELAYED: the tool's peer is the
 * daemon's socket, not the agent's.  DIRECT: the tool's peer is the agent's
 * own socket.
 */
static void expect(const struct tdaemon *d, const char *agent, const char *dst, int tool,
		   uint16_t tool_port, enum outcome want)
{
	struct attempt *a = shared_alloc(sizeof(*a));
	char cg[PATH_MAX];
	pid_t pid;
	int c = -1;

	snprintf(cg, sizeof(cg), "%s/%s", d->in.cg_agents, agent);
	snprintf(a->dst, sizeof(a->dst), "%s", dst);
	a->port = tool_port;
	pid = fork();
	if (pid == 0)
		_exit(run_in_cgroup(cg, NOBODY_UID, agent_connect, a) ? 1 : 0);
	if (want != DENIED)
		c = accept_timeout(tool, 3000);
	waitpid(pid, NULL, 0);
	switch (want) {
	case DENIED:
		ASSERT_EQ(a->ret, -1, "connect refused");
		ASSERT_EQ(a->err, EPERM, "errno");
		ASSERT_FALSE(has_pending(tool), "nothing at the tool");
		break;
	case RELAYED:
	case DIRECT: {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		uint16_t peer_port = 0;

		ASSERT_EQ(a->ret, 0, "connect");
		if (!ASSERT_GE(c, 0, "tool accepted"))
			break;
		getpeername(c, (struct sockaddr *)&peer, &plen);
		peer_port = ntohs(((struct sockaddr_in *)&peer)->sin_port);
		if (want == DIRECT)
			ASSERT_EQ(peer_port, a->local_port, "the tool's peer is the agent itself");
		else
			ASSERT_NEQ(peer_port, a->local_port, "the tool's peer is the daemon");
		break;
	}
	}
	if (c >= 0)
		close(c);
	munmap(a, sizeof(*a));
}

TEST(rules)
{
	char json[1024], *out = NULL;
	uint16_t tool_port, other_port;
	struct tdaemon d;
	int tool, other;

	tool = tcp_listen("127.0.0.1", 0, &tool_port);
	other = tcp_listen("127.0.0.1", 0, &other_port);
	snprintf(json, sizeof(json),
		 "\"rules\": ["
		 "  {\"dest\": \"127.0.0.2/32\", \"verdict\": \"deny\"},"
		 "  {\"dest\": \"127.0.0.1\", \"port\": %u, \"verdict\": \"direct\"}"
		 "],"
		 "\"agents\": ["
		 "  {\"name\": \"plain\"},"
		 "  {\"name\": \"locked\", \"verdict\": \"deny\"},"
		 "  {\"name\": \"special\", \"rules\": ["
		 "    {\"dest\": \"127.0.0.0/8\", \"port\": %u, \"verdict\": \"deny\"},"
		 "    {\"dest\": \"127.0.0.1/32\", \"port\": %u, \"verdict\": \"redirect\"}]}"
		 "]",
		 other_port, tool_port, other_port);
	if (!ASSERT_OK(tdaemon_start(&d, "rules", json, 0), "daemon"))
		goto out;

	if (test__start_subtest("default_relayed"))
		expect(&d, "plain", "127.0.0.1", tool, tool_port, RELAYED);
	if (test__start_subtest("global_deny")) {
		int t2 = tcp_listen("127.0.0.2", tool_port, NULL);

		expect(&d, "plain", "127.0.0.2", t2, tool_port, DENIED);
		close(t2);
	}
	if (test__start_subtest("global_direct_by_port"))
		expect(&d, "plain", "127.0.0.1", other, other_port, DIRECT);
	if (test__start_subtest("agent_verdict_deny"))
		expect(&d, "locked", "127.0.0.1", tool, tool_port, DENIED);
	if (test__start_subtest("agent_rule_beats_global")) {
		/* special's own rule turns the global DIRECT back into REDIRECT... */
		expect(&d, "special", "127.0.0.1", other, other_port, RELAYED);
		/* ...and its /8 DENY for tool_port holds on 127.0.0.1 too. */
		expect(&d, "special", "127.0.0.1", tool, tool_port, DENIED);
	}
	if (test__start_subtest("direct_after_redirect_shows_real_peer")) {
		struct reconnect *r = shared_alloc(sizeof(*r));
		char cg[PATH_MAX];
		int c;

		snprintf(cg, sizeof(cg), "%s/plain", d.in.cg_agents);
		snprintf(r->dst, sizeof(r->dst), "127.0.0.1");
		r->port = tool_port;
		r->other_port = other_port;
		ASSERT_EQ(run_in_cgroup(cg, NOBODY_UID, agent_reconnect, r), 0, "agent");
		ASSERT_EQ(r->ret, 0, "connect, disconnect, connect");
		ASSERT_EQ(r->peer_first, tool_port, "redirected: the original peer");
		ASSERT_EQ(r->peer_second, other_port, "then direct: the real peer");
		c = accept_timeout(other, 3000);
		ASSERT_GE(c, 0, "the direct connection reached its destination");
		if (c >= 0)
			close(c);
		/* The relayed first connection, if it got as far as the tool. */
		c = accept_timeout(tool, 500);
		if (c >= 0)
			close(c);
		munmap(r, sizeof(*r));
	}
	if (test__start_subtest("maps_show_rules")) {
		ASSERT_EQ(run_capture(&out, "%s/agentgatectl --instance %s maps dest_rules",
				      testlib_build_dir(), d.in.name),
			  0, "maps dest_rules");
		ASSERT_TRUE(out && strstr(out, "\"127.0.0.2/32\""), "global deny listed");
		ASSERT_TRUE(out && strstr(out, "\"127.0.0.0/8\""), "agent rule listed");
		free(out);
	}
	if (test__start_subtest("reload_drops_stale_rules")) {
		FILE *f;

		/* Restart with no rules at all: nothing may stay denied. */
		tdaemon_kill(&d, SIGTERM);
		f = fopen(d.conf, "w");
		fprintf(f,
			"{\"listen\": {\"port\": %u}, \"resolvers\": [], "
			"\"agents\": [{\"name\": \"plain\"}]}\n",
			d.port);
		fclose(f);
		ASSERT_OK(tdaemon_restart(&d), "restart");
		expect(&d, "plain", "127.0.0.1", other, other_port, RELAYED);
		ASSERT_EQ(run_capture(&out, "%s/agentgatectl --instance %s maps dest_rules",
				      testlib_build_dir(), d.in.name),
			  0, "maps dest_rules");
		ASSERT_TRUE(out && strstr(out, "dest_rules: []"), "no rule left");
		free(out);
	}
out:
	tdaemon_destroy(&d);
	close(tool);
	close(other);
}
