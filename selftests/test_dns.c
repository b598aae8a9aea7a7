// SPDX-License-Identifier: GPL-2.0
/*
 * DNS is governed: a host agent's UDP to the configured resolver goes
 * through the daemon's relay (daemon/dns.c), which passes only well-formed
 * queries for names the agent may resolve, audits each, and answers as
 * the resolver (the recvmsg hooks), so real clients take the answers.  A
 * real agentgated, with a DNS responder thread of the test (dnsstub.h) as
 * its resolver.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dnsmsg.h"
#include "dnsstub.h"
#include "test.h"
#include "testlib.h"

static const struct dnsstub_name names[] = {
	{ "tools.test", "127.0.0.1" },
	{ "evil.test", "127.0.0.9" },
	{ "x.evil.test", "127.0.0.9" },
};

enum probe_kind {
	PROBE_RAW,   /* a datagram of raw_len bytes that is no DNS message */
	PROBE_QUERY, /* a query for name, type A, built here */
	PROBE_GLIBC, /* res_nquery with the resolver as the one name server */
	PROBE_NODE,  /* Node's dns.Resolver (c-ares) with the resolver as its server */
};

/* What an agent tried and got; shared with the agent child. */
struct probe {
	enum probe_kind kind;
	char server[32];
	char name[64];
	size_t raw_len;
	bool use_connect;
	int ret, err; /* of the send, or of res_nquery */
	int got;      /* bytes of the answer, 0: none within the wait */
	uint8_t answer[512];
	char from[64];	/* the answer's source as recvfrom gave it */
	char peer[64];	/* getpeername of a connected socket */
	char text[128]; /* what Node printed: the addresses, or the error code */
};

static void fmt_sin(const struct sockaddr_in *sin, char *out, size_t len)
{
	char a[INET_ADDRSTRLEN] = "?";

	inet_ntop(AF_INET, &sin->sin_addr, a, sizeof(a));
	snprintf(out, len, "%s:%u", a, ntohs(sin->sin_port));
}

static int probe_glibc(struct probe *p)
{
	struct __res_state st;

	memset(&st, 0, sizeof(st));
	if (res_ninit(&st))
		return 1;
	st.nscount = 1;
	st.nsaddr_list[0] = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons(53) };
	inet_pton(AF_INET, p->server, &st.nsaddr_list[0].sin_addr);
	st.retrans = 2;
	st.retry = 1;
	p->ret = res_nquery(&st, p->name, ns_c_in, ns_t_a, p->answer, sizeof(p->answer));
	p->got = p->ret > 0 ? p->ret : 0;
	res_nclose(&st);
	return 0;
}

static int probe_node(struct probe *p)
{
	char cmd[512];
	FILE *f;

	snprintf(cmd, sizeof(cmd),
		 "node -e \"const r = new (require('dns').Resolver)({timeout: 2000, tries: 1}); "
		 "r.setServers(['%s']); r.resolve4('%s', (e, a) => "
		 "console.log(e ? e.code : a.join(',')))\" 2>&1",
		 p->server, p->name);
	f = popen(cmd, "r");
	if (!f)
		return 1;
	if (!fgets(p->text, sizeof(p->text), f))
		p->text[0] = '\0';
	p->text[strcspn(p->text, "\n")] = '\0';
	pclose(f);
	return 0;
}

static int agent_probe(void *arg)
{
	struct probe *p = arg;
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(53) }, from;
	socklen_t flen = sizeof(from);
	uint8_t msg[600];
	struct pollfd pfd;
	int fd, len;

	if (p->kind == PROBE_GLIBC)
		return probe_glibc(p);
	if (p->kind == PROBE_NODE)
		return probe_node(p);
	inet_pton(AF_INET, p->server, &to.sin_addr);
	if (p->kind == PROBE_RAW) {
		len = (int)p->raw_len;
		memset(msg, 'X', (size_t)len);
	} else {
		len = ag_dnsmsg_query(msg, sizeof(msg), 0x4147, p->name, AG_DNS_A);
	}
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || len <= 0)
		return 1;
	if (p->use_connect) {
		p->ret = connect(fd, (struct sockaddr *)&to, sizeof(to));
		if (!p->ret) {
			struct sockaddr_in peer;
			socklen_t plen = sizeof(peer);

			getpeername(fd, (struct sockaddr *)&peer, &plen);
			fmt_sin(&peer, p->peer, sizeof(p->peer));
			p->ret = (int)send(fd, msg, (size_t)len, 0);
		}
	} else {
		p->ret = (int)sendto(fd, msg, (size_t)len, 0, (struct sockaddr *)&to, sizeof(to));
	}
	p->err = errno;
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	if (p->ret >= 0 && poll(&pfd, 1, 1500) == 1) {
		len = (int)recvfrom(fd, p->answer, sizeof(p->answer), 0, (struct sockaddr *)&from,
				    &flen);
		p->got = len > 0 ? len : 0;
		fmt_sin(&from, p->from, sizeof(p->from));
	}
	close(fd);
	return 0;
}

static int rcode(const struct probe *p)
{
	return p->got >= 12 ? p->answer[3] & 0x0f : -1;
}

static int ancount(const struct probe *p)
{
	return p->got >= 12 ? p->answer[6] << 8 | p->answer[7] : -1;
}

/* Lines of the audit log with every one of the strings, waiting up to 2 s for want. */
static int audit_count(const struct tdaemon *d, int want, const char *a, const char *b,
		       const char *c)
{
	char *out = NULL;
	int n = -1;

	for (int i = 0; i < 40; i++) {
		free(out);
		out = NULL;
		n = -1;
		if (run_capture(&out,
				"grep -F '\"kind\":\"dns\"' %s/audit.log | grep -F '%s' | "
				"grep -F '%s' | grep -cF '%s'",
				d->state, a, b, c) >= 0 &&
		    out)
			n = atoi(out);
		if (n >= want)
			break;
		usleep(50 * 1000);
	}
	free(out);
	return n;
}

struct env {
	struct tdaemon d;
	struct dnsstub stub;
	char agent_cg[PATH_MAX];
	struct probe *p;
};

static int env_start(struct env *e, const char *suffix)
{
	char extra[512];
	struct ag_kern k;
	struct ag_err err;
	int ret;

	e->stub.fd = -1;
	e->p = shared_alloc(sizeof(*e->p));
	if ((ret = dnsstub_start(&e->stub, names, 3)))
		return ret;
	snprintf(extra, sizeof(extra),
		 "\"resolvers\": [\"%s\"], \"agents\": [{\"name\": \"a\", \"dns\": "
		 "{\"deny\": [\"evil.test\", \"*.evil.test\"]}}]",
		 e->stub.addr);
	if ((ret = tdaemon_start(&e->d, suffix, extra, 0)))
		return ret;
	if (ag_kern_open(&k, &e->d.in, &err))
		return -ENOENT;
	ret = ag_agent_register(&k, &e->d.in, "a", AG_VERDICT_KEEP, NULL, &err);
	ag_kern_close(&k);
	snprintf(e->agent_cg, sizeof(e->agent_cg), "%s/a", e->d.in.cg_agents);
	return ret;
}

static void env_stop(struct env *e)
{
	tdaemon_destroy(&e->d);
	dnsstub_stop(&e->stub);
	munmap(e->p, sizeof(*e->p));
}

static void probe_run(struct env *e, enum probe_kind kind, const char *name, bool use_connect)
{
	memset(e->p, 0, sizeof(*e->p));
	e->p->kind = kind;
	snprintf(e->p->server, sizeof(e->p->server), "%s", e->stub.addr);
	snprintf(e->p->name, sizeof(e->p->name), "%s", name);
	e->p->raw_len = 520;
	e->p->use_connect = use_connect;
	run_in_cgroup(e->agent_cg, NOBODY_UID, agent_probe, e->p);
}

/* A 520-byte datagram that is no DNS message never reaches the resolver. */
TEST(dns_tunnel_refused)
{
	struct env e;

	if (!ASSERT_OK(env_start(&e, "dnsraw"), "daemon and resolver"))
		goto out;
	probe_run(&e, PROBE_RAW, "", false);
	ASSERT_EQ(e.p->ret, 520, "sent (to the relay)");
	ASSERT_EQ(e.p->got, 0, "no answer");
	probe_run(&e, PROBE_RAW, "", true);
	ASSERT_EQ(e.p->got, 0, "no answer on a connected socket either");
	usleep(200 * 1000);
	ASSERT_EQ(e.stub.received, 0, "nothing reached the resolver");
	ASSERT_EQ(e.stub.rx_bytes, 0, "not a byte");
	ASSERT_GE(
	    audit_count(&e.d, 1, "\"verdict\":\"malformed\"", "\"bytes\":520", "\"name\":\"a\""), 1,
	    "audited");
out:
	env_stop(&e);
}

/* A denied name: REFUSED from the relay, the resolver never asked, audited. */
TEST(dns_denied_name)
{
	char want[64];
	struct env e;

	if (!ASSERT_OK(env_start(&e, "dnsdeny"), "daemon and resolver"))
		goto out;
	snprintf(want, sizeof(want), "%s:53", e.stub.addr);
	probe_run(&e, PROBE_QUERY, "x.evil.test", false);
	ASSERT_GT(e.p->got, 0, "answered");
	ASSERT_EQ(rcode(e.p), 5, "REFUSED");
	ASSERT_EQ(ancount(e.p), 0, "no records");
	ASSERT_STREQ(e.p->from, want, "from the resolver, as the agent sees it");
	probe_run(&e, PROBE_QUERY, "EVIL.test", true);
	ASSERT_EQ(rcode(e.p), 5, "REFUSED, whatever the case");
	probe_run(&e, PROBE_NODE, "x.evil.test", false);
	ASSERT_STREQ(e.p->text, "EREFUSED", "Node is told at once");
	usleep(200 * 1000);
	ASSERT_EQ(e.stub.received, 0, "the resolver never saw them");
	ASSERT_GE(audit_count(&e.d, 1, "\"verdict\":\"deny\"", "\"name\":\"x.evil.test\"",
			      "\"type\":\"A\""),
		  1, "audited with name and type");
	ASSERT_EQ(
	    audit_count(&e.d, 1, "\"verdict\":\"deny\"", "\"name\":\"evil.test\"", "\"agent\":{"),
	    1, "the other too");
out:
	env_stop(&e);
}

/* An allowed name resolves through the relay, answered as the resolver. */
TEST(dns_allowed_name)
{
	char want[64];
	struct env e;

	if (!ASSERT_OK(env_start(&e, "dnsallow"), "daemon and resolver"))
		goto out;
	snprintf(want, sizeof(want), "%s:53", e.stub.addr);
	if (test__start_subtest("sendto")) {
		probe_run(&e, PROBE_QUERY, "tools.test", false);
		ASSERT_EQ(rcode(e.p), 0, "NOERROR");
		ASSERT_EQ(ancount(e.p), 1, "one address");
		ASSERT_STREQ(e.p->from, want, "the answer comes from the resolver");
	}
	if (test__start_subtest("connected")) {
		probe_run(&e, PROBE_QUERY, "tools.test", true);
		ASSERT_EQ(ancount(e.p), 1, "one address");
		ASSERT_STREQ(e.p->peer, want, "the peer is the resolver");
		ASSERT_STREQ(e.p->from, want, "the answer comes from the resolver");
	}
	if (test__start_subtest("glibc")) {
		probe_run(&e, PROBE_GLIBC, "tools.test", false);
		ASSERT_GT(e.p->ret, 0, "res_nquery took the answer");
		ASSERT_EQ(ancount(e.p), 1, "one address");
	}
	if (test__start_subtest("node")) {
		probe_run(&e, PROBE_NODE, "tools.test", false);
		ASSERT_STREQ(e.p->text, "127.0.0.1", "Node's resolver took the answer");
	}
	ASSERT_GE(e.stub.queries, 1, "the resolver answered");
	ASSERT_GE(audit_count(&e.d, 1, "\"verdict\":\"allow\"", "\"name\":\"tools.test\"",
			      "\"answers\":1"),
		  1, "audited with name and answer count");
	ASSERT_GE(audit_count(&e.d, 1, "\"type\":\"A\"", "\"rcode\":\"NOERROR\"",
			      "\"name\":\"tools.test\""),
		  1, "type and rcode");
out:
	env_stop(&e);
}

/* Fail closed: with the daemon gone, DNS fails; nothing goes to the resolver directly. */
TEST(dns_daemon_down)
{
	struct env e;

	if (!ASSERT_OK(env_start(&e, "dnsdown"), "daemon and resolver"))
		goto out;
	tdaemon_kill(&e.d, SIGKILL);
	probe_run(&e, PROBE_QUERY, "tools.test", false);
	ASSERT_EQ(e.p->ret, -1, "send refused");
	ASSERT_EQ(e.p->err, ECONNREFUSED, "errno");
	usleep(200 * 1000);
	ASSERT_EQ(e.stub.received, 0, "nothing reached the resolver");
out:
	env_stop(&e);
}
