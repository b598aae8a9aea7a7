// SPDX-License-Identifier: GPL-2.0
/*
 * The bypass list of DESIGN section 9, each case against the real kernel
 * programs: an agent process (clone3 into agents/a, uid nobody unless the
 * case needs root) tries to reach a "tool" listener; the test asserts the
 * outcome the agent saw (errno, getpeername), what arrived at the stand-in
 * daemon listener (the origin record, the bytes), and that nothing arrived
 * at the tool itself.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <liburing.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "cgroup.h"
#include "test.h"
#include "testlib.h"

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif

#define PING_RANGE "/proc/sys/net/ipv4/ping_group_range"
#define TCP_FASTOPEN_SYSCTL "/proc/sys/net/ipv4/tcp_fastopen"

static const char marker[] = "agentgate-bypass-marker";

enum connect_mode {
	MODE_CONNECT,
	MODE_V6ONLY,
	MODE_TFO_SENDTO,
	MODE_TFO_CONNECT,
	MODE_URING,
	MODE_URING_ASYNC,
};

/* What the agent asks for, and what it saw; lives in shared memory. */
struct attempt {
	char dst[64];
	uint16_t port;
	int family; /* socket family; AF_INET6 for v4-mapped destinations */
	enum connect_mode mode;
	int ret, err;
	pid_t pid;
	char comm[16];
	uint64_t cookie; /* of the agent's socket */
	struct sockaddr_storage peer;
	socklen_t peerlen;
};

static uint64_t socket_cookie(int fd)
{
	uint64_t cookie = 0;
	socklen_t len = sizeof(cookie);

	getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len);
	return cookie;
}

static int uring_connect(int fd, const struct sockaddr *sa, socklen_t len, bool async)
{
	struct io_uring ring;
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	int ret;

	if (io_uring_queue_init(4, &ring, 0))
		return -EIO;
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_connect(sqe, fd, sa, len);
	if (async)
		sqe->flags |= IOSQE_ASYNC;
	io_uring_submit(&ring);
	ret = io_uring_wait_cqe(&ring, &cqe);
	if (!ret)
		ret = cqe->res;
	io_uring_queue_exit(&ring);
	return ret;
}

static int agent_connect(void *arg)
{
	struct attempt *a = arg;
	struct sockaddr_storage ss;
	socklen_t len = make_sockaddr(a->dst, a->port, &ss);
	int fd, one = 1;
	ssize_t n;

	a->pid = getpid();
	prctl(PR_GET_NAME, a->comm);
	/* "::ffff:a.b.c.d" parses as AF_INET6 already; the socket follows it. */
	fd = socket(a->family, SOCK_STREAM, 0);
	if (fd < 0)
		goto fail;
	switch (a->mode) {
	case MODE_V6ONLY:
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		/* fall through */
	case MODE_CONNECT:
		if (connect(fd, (struct sockaddr *)&ss, len))
			goto fail;
		break;
	case MODE_TFO_SENDTO:
		n = sendto(fd, marker, sizeof(marker), MSG_FASTOPEN, (struct sockaddr *)&ss, len);
		if (n < 0)
			goto fail;
		goto sent;
	case MODE_TFO_CONNECT:
		if (setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &one, sizeof(one)) ||
		    connect(fd, (struct sockaddr *)&ss, len))
			goto fail;
		break;
	case MODE_URING:
	case MODE_URING_ASYNC:
		a->ret =
		    uring_connect(fd, (struct sockaddr *)&ss, len, a->mode == MODE_URING_ASYNC);
		if (a->ret < 0) {
			errno = -a->ret;
			goto fail;
		}
		break;
	}
	if (write(fd, marker, sizeof(marker)) != sizeof(marker))
		goto fail;
sent:
	a->peerlen = sizeof(a->peer);
	getpeername(fd, (struct sockaddr *)&a->peer, &a->peerlen);
	a->cookie = socket_cookie(fd);
	a->ret = 0;
	a->err = 0;
	close(fd);
	return 0;
fail:
	a->ret = -1;
	a->err = errno;
	if (fd >= 0)
		close(fd);
	return 1;
}

static bool peer_is(const struct attempt *a, const char *addr, uint16_t port)
{
	struct sockaddr_storage want;
	socklen_t len = make_sockaddr(addr, port, &want);

	return a->peerlen == len && !memcmp(&a->peer, &want, len);
}

static int note_reason(void *ctx, void *data, size_t size)
{
	const struct ag_event *e = data;

	if (size >= sizeof(*e))
		*(uint32_t *)ctx = e->reason;
	return 0;
}

/* The reason of the newest refusal event in the instance's ring buffer. */
static uint32_t last_refusal(const struct tinst *t)
{
	uint32_t reason = AG_REASON_NONE;
	struct ring_buffer *rb =
	    ring_buffer__new(t->k.map_fd[AG_MAP_EVENTS], note_reason, &reason, NULL);

	if (rb) {
		ring_buffer__consume(rb);
		ring_buffer__free(rb);
	}
	return reason;
}

/*
 * The agent connects to dst:port.  Expected: the connect succeeds, the
 * stand-in daemon accepts one connection whose origin is dst:port from this
 * agent, carrying the marker; getpeername in the agent shows dst:port; the
 * tool listener got nothing.
 */
static void expect_redirect(struct tinst *t, int tool_fd, const char *dst, uint16_t port,
			    int family, enum connect_mode mode)
{
	struct attempt *a = shared_alloc(sizeof(*a));
	struct ag_origin o, stored;
	__u32 slot;
	uint8_t want[16];
	char buf[64] = { 0 };
	int fd, lfd, plen;

	snprintf(a->dst, sizeof(a->dst), "%s", dst);
	a->port = port;
	a->family = family;
	a->mode = mode;
	ASSERT_EQ(tinst_agent(t, NOBODY_UID, agent_connect, a), 0, "agent connect");
	if (!ASSERT_EQ(a->ret, 0, "connect result"))
		fprintf(stderr, "  agent saw errno %d (%s)\n", a->err, strerror(a->err));
	lfd = ag_addr_parse(dst, want, &plen) == 0 && ag_addr_is_v4(want) ? t->lfd4 : t->lfd6;
	fd = accept_timeout(lfd, 2000);
	if (!ASSERT_GE(fd, 0, "daemon accepted"))
		goto out;
	if (ASSERT_OK(ag_kern_origin(&t->k, fd, &o), "origin record")) {
		ASSERT_MEMEQ(o.addr, want, 16, "origin address");
		ASSERT_EQ(o.port, port, "origin port");
		ASSERT_EQ(o.family, family, "origin family");
		ASSERT_EQ(o.tgid, a->pid, "origin tgid");
		ASSERT_EQ(o.uid, NOBODY_UID, "origin uid");
		ASSERT_EQ(o.agent_cgroup_id, t->agent_cg, "origin agent cgroup");
		ASSERT_EQ(o.cgroup_id, t->agent_cg, "origin cgroup");
		/* An async io_uring connect runs in the agent's io-wq worker. */
		if (mode == MODE_URING_ASYNC)
			ASSERT_EQ(strncmp(o.comm, "iou-wrk-", 8), 0, "origin comm of io worker");
		else
			ASSERT_STREQ(o.comm, a->comm, "origin comm");
		/* The agent socket's own slot holds it, under its cookie. */
		slot = o.cookie & (AG_ORIGIN_SLOTS - 1);
		if (ASSERT_OK(bpf_map_lookup_elem(t->k.map_fd[AG_MAP_ORIGIN], &slot, &stored),
			      "origin slot"))
			ASSERT_EQ(stored.cookie, a->cookie, "slot holds the agent socket's record");
	}
	ASSERT_EQ(recv(fd, buf, sizeof(buf), MSG_WAITALL), sizeof(marker), "bytes at daemon");
	ASSERT_STREQ(buf, marker, "marker at daemon");
	ASSERT_TRUE(peer_is(a, dst, port), "getpeername shows the original peer");
	close(fd);
out:
	ASSERT_FALSE(has_pending(tool_fd), "nothing reached the tool");
	munmap(a, sizeof(*a));
}

/*
 * TCP_FASTOPEN_CONNECT with no cookie needed: connect() returns at once and
 * the SYN waits for the first send.  In between, another redirected connect
 * from the same thread.
 */
static int agent_tfo_deferred(void *arg)
{
	struct attempt *a = arg;
	struct sockaddr_storage ss;
	socklen_t len = make_sockaddr(a->dst, a->port, &ss);
	int fd, other = -1, one = 1;

	a->pid = getpid();
	prctl(PR_GET_NAME, a->comm);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &one, sizeof(one)) ||
	    connect(fd, (struct sockaddr *)&ss, len))
		goto fail;
	other = socket(AF_INET, SOCK_STREAM, 0);
	if (other < 0 || connect(other, (struct sockaddr *)&ss, len))
		goto fail;
	close(other);
	if (write(fd, marker, sizeof(marker)) != sizeof(marker))
		goto fail;
	a->peerlen = sizeof(a->peer);
	getpeername(fd, (struct sockaddr *)&a->peer, &a->peerlen);
	a->ret = 0;
	close(fd);
	return 0;
fail:
	a->ret = -1;
	a->err = errno;
	if (other >= 0)
		close(other);
	if (fd >= 0)
		close(fd);
	return 1;
}

/*
 * The deferred connection's SYN leaves in write(), after the other
 * connection's: both must reach the daemon with this agent's origin, and the
 * marker must come on one of them.
 */
static void expect_tfo_deferred(struct tinst *t, int tool_fd, uint16_t port)
{
	struct attempt *a = shared_alloc(sizeof(*a));
	struct timeval tv = { .tv_sec = 2 };
	char *saved = NULL, buf[64];
	struct ag_origin o;
	struct ag_err err;
	int fd, markers = 0;

	if (ag_read_file(TCP_FASTOPEN_SYSCTL, 64, &saved, NULL, &err) ||
	    !ASSERT_OK(ag_write_file(TCP_FASTOPEN_SYSCTL, "5", &err),
		       "tcp_fastopen client, no cookie"))
		goto out;
	snprintf(a->dst, sizeof(a->dst), "127.0.0.1");
	a->port = port;
	ASSERT_EQ(tinst_agent(t, NOBODY_UID, agent_tfo_deferred, a), 0, "agent connects");
	if (!ASSERT_EQ(a->ret, 0, "connect and write"))
		fprintf(stderr, "  agent saw errno %d (%s)\n", a->err, strerror(a->err));
	ASSERT_TRUE(peer_is(a, "127.0.0.1", port), "getpeername shows the original peer");
	for (int i = 0; i < 2; i++) {
		fd = accept_timeout(t->lfd4, 2000);
		if (!ASSERT_GE(fd, 0, "daemon accepted"))
			break;
		if (ASSERT_OK(ag_kern_origin(&t->k, fd, &o), "origin record")) {
			ASSERT_EQ(o.port, port, "origin port");
			ASSERT_EQ(o.tgid, a->pid, "origin tgid");
			ASSERT_EQ(o.agent_cgroup_id, t->agent_cg, "origin agent cgroup");
		}
		memset(buf, 0, sizeof(buf));
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (recv(fd, buf, sizeof(buf), MSG_WAITALL) == sizeof(marker) &&
		    !strcmp(buf, marker))
			markers++;
		close(fd);
	}
	ASSERT_EQ(markers, 1, "marker at daemon");
	ASSERT_FALSE(has_pending(tool_fd), "nothing reached the tool");
out:
	if (saved) {
		ag_write_file(TCP_FASTOPEN_SYSCTL, saved, &err);
		free(saved);
	}
	munmap(a, sizeof(*a));
}

TEST(bypass_tcp)
{
	struct tinst t;
	uint16_t tool_port;
	int tool4, tool6, tool_any;
	char host4[INET_ADDRSTRLEN] = "", host6[INET6_ADDRSTRLEN] = "";
	struct ifaddrs *ifa, *i;

	if (!ASSERT_OK(tinst_create(&t, "tcp", 0, NULL, 0), "instance"))
		return;
	tool4 = tcp_listen("127.0.0.1", 0, &tool_port);
	tool6 = tcp_listen("::1", tool_port, NULL);
	if (!ASSERT_GE(tool4, 0, "tool v4") || !ASSERT_GE(tool6, 0, "tool v6"))
		goto out;

	if (test__start_subtest("ipv4"))
		expect_redirect(&t, tool4, "127.0.0.1", tool_port, AF_INET, MODE_CONNECT);
	if (test__start_subtest("ipv6"))
		expect_redirect(&t, tool6, "::1", tool_port, AF_INET6, MODE_CONNECT);
	if (test__start_subtest("v4_mapped"))
		expect_redirect(&t, tool4, "::ffff:127.0.0.1", tool_port, AF_INET6, MODE_CONNECT);
	if (test__start_subtest("v4_mapped_v6only")) {
		struct attempt *a = shared_alloc(sizeof(*a));

		snprintf(a->dst, sizeof(a->dst), "::ffff:127.0.0.1");
		a->port = tool_port;
		a->family = AF_INET6;
		a->mode = MODE_V6ONLY;
		tinst_agent(&t, NOBODY_UID, agent_connect, a);
		/* Rewritten or not, a v6-only socket cannot reach a v4 peer. */
		ASSERT_EQ(a->ret, -1, "connect fails");
		ASSERT_EQ(a->err, ENETUNREACH, "errno");
		ASSERT_FALSE(has_pending(t.lfd4), "nothing at the daemon");
		ASSERT_FALSE(has_pending(tool4), "nothing at the tool");
		munmap(a, sizeof(*a));
	}
	if (test__start_subtest("tfo_sendto"))
		expect_redirect(&t, tool4, "127.0.0.1", tool_port, AF_INET, MODE_TFO_SENDTO);
	if (test__start_subtest("tfo_connect"))
		expect_redirect(&t, tool4, "127.0.0.1", tool_port, AF_INET, MODE_TFO_CONNECT);
	if (test__start_subtest("tfo_connect_deferred"))
		expect_tfo_deferred(&t, tool4, tool_port);
	if (test__start_subtest("io_uring_inline"))
		expect_redirect(&t, tool4, "127.0.0.1", tool_port, AF_INET, MODE_URING);
	if (test__start_subtest("io_uring_async"))
		expect_redirect(&t, tool4, "127.0.0.1", tool_port, AF_INET, MODE_URING_ASYNC);
	if (test__start_subtest("any_address")) {
		tool_any = tcp_listen("0.0.0.0", 0, &tool_port);
		if (ASSERT_GE(tool_any, 0, "tool on 0.0.0.0")) {
			expect_redirect(&t, tool_any, "0.0.0.0", tool_port, AF_INET, MODE_CONNECT);
			close(tool_any);
		}
	}
	if (test__start_subtest("host_address")) {
		/* The host's own non-loopback addresses never leave the host either. */
		if (!getifaddrs(&ifa)) {
			for (i = ifa; i; i = i->ifa_next) {
				if (!i->ifa_addr || (i->ifa_flags & IFF_LOOPBACK))
					continue;
				if (i->ifa_addr->sa_family == AF_INET && !host4[0])
					inet_ntop(AF_INET,
						  &((struct sockaddr_in *)i->ifa_addr)->sin_addr,
						  host4, sizeof(host4));
				if (i->ifa_addr->sa_family == AF_INET6 && !host6[0] &&
				    !IN6_IS_ADDR_LINKLOCAL(
					&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr))
					inet_ntop(AF_INET6,
						  &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr,
						  host6, sizeof(host6));
			}
			freeifaddrs(ifa);
		}
		if (!host4[0] && !host6[0]) {
			test__skip("the host has no non-loopback address");
		} else {
			tool_any = tcp_listen(host4[0] ? host4 : host6, 0, &tool_port);
			if (ASSERT_GE(tool_any, 0, "tool on the host address")) {
				expect_redirect(&t, tool_any, host4[0] ? host4 : host6, tool_port,
						host4[0] ? AF_INET : AF_INET6, MODE_CONNECT);
				close(tool_any);
			}
		}
	}
out:
	if (tool4 >= 0)
		close(tool4);
	if (tool6 >= 0)
		close(tool6);
	tinst_destroy(&t);
}

/* The same connect from a process outside agents/: never touched. */
TEST(bypass_outside_agents_untouched)
{
	struct tinst t;
	uint16_t tool_port;
	int tool, fd, c;
	struct sockaddr_storage ss;
	socklen_t len;

	if (!ASSERT_OK(tinst_create(&t, "outside", 0, NULL, 0), "instance"))
		return;
	tool = tcp_listen("127.0.0.1", 0, &tool_port);
	len = make_sockaddr("127.0.0.1", tool_port, &ss);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	ASSERT_OK(connect(fd, (struct sockaddr *)&ss, len), "connect from outside");
	c = accept_timeout(tool, 2000);
	ASSERT_GE(c, 0, "tool accepted directly");
	ASSERT_FALSE(has_pending(t.lfd4), "nothing at the daemon");
	close(c);
	close(fd);
	close(tool);
	tinst_destroy(&t);
}

struct gateway_attempt {
	uint16_t port;
	int ret, err;
};

static int agent_connect_gateway(void *arg)
{
	struct gateway_attempt *g = arg;
	struct sockaddr_storage ss;
	socklen_t len = make_sockaddr("127.0.0.1", g->port, &ss);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	g->ret = connect(fd, (struct sockaddr *)&ss, len);
	g->err = errno;
	close(fd);
	return 0;
}

TEST(bypass_gateway)
{
	struct tinst t;
	struct ag_origin o;
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, c;

	if (!ASSERT_OK(tinst_create(&t, "gw", 0, NULL, 0), "instance"))
		return;
	if (test__start_subtest("no_origin")) {
		/* A process outside the agents: its connection has no record. */
		len = make_sockaddr("127.0.0.1", t.port, &ss);
		fd = socket(AF_INET, SOCK_STREAM, 0);
		ASSERT_OK(connect(fd, (struct sockaddr *)&ss, len), "connect");
		c = accept_timeout(t.lfd4, 2000);
		if (ASSERT_GE(c, 0, "accept"))
			ASSERT_EQ(ag_kern_origin(&t.k, c, &o), -ENOENT, "no origin record");
		close(c);
		close(fd);
	}
	if (test__start_subtest("agent_connects_to_gateway")) {
		struct gateway_attempt *g = shared_alloc(sizeof(*g));

		g->port = t.port;
		tinst_agent(&t, NOBODY_UID, agent_connect_gateway, g);
		ASSERT_EQ(g->ret, -1, "connect refused");
		ASSERT_EQ(g->err, EPERM, "errno");
		ASSERT_FALSE(has_pending(t.lfd4), "nothing at the daemon");
		munmap(g, sizeof(*g));
	}
	tinst_destroy(&t);
}

/*
 * The daemon's process is gone but its listener is not (a killed daemon's
 * io_uring releases it asynchronously): refused, nothing accepted.
 */
TEST(bypass_listener_without_daemon)
{
	struct gateway_attempt *g = shared_alloc(sizeof(*g));
	uint16_t tool_port;
	struct tinst t;
	int tool;

	if (!ASSERT_OK(tinst_create(&t, "nodaemon", 0, NULL, 0), "instance"))
		return;
	tool = tcp_listen("127.0.0.1", 0, &tool_port);
	tinst_kill_daemon(&t);
	g->port = tool_port;
	tinst_agent(&t, NOBODY_UID, agent_connect_gateway, g);
	ASSERT_EQ(g->ret, -1, "connect refused");
	ASSERT_EQ(g->err, ECONNREFUSED, "errno");
	ASSERT_EQ(last_refusal(&t), AG_REASON_NO_DAEMON, "reason: the daemon is not serving");
	ASSERT_FALSE(has_pending(t.lfd4), "nothing in the orphaned listener's queue");
	ASSERT_FALSE(has_pending(tool), "nothing reached the tool");
	close(tool);
	munmap(g, sizeof(*g));
	tinst_destroy(&t);
}

struct bind_attempt {
	char addr[64];
	uint16_t port;
	int ret, err;
};

static int agent_bind(void *arg)
{
	struct bind_attempt *b = arg;
	struct sockaddr_storage ss;
	socklen_t len = make_sockaddr(b->addr, b->port, &ss);
	int fd = socket(ss.ss_family, SOCK_STREAM, 0), one = 1;

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	b->ret = bind(fd, (struct sockaddr *)&ss, len);
	b->err = errno;
	close(fd);
	return 0;
}

TEST(bypass_bind_gateway_port)
{
	static const char *const addrs[] = { "127.0.0.1", "0.0.0.0", "::1", "::" };
	struct bind_attempt *b = shared_alloc(sizeof(*b));
	struct tinst t;

	if (!ASSERT_OK(tinst_create(&t, "bind", TINST_NO_LISTENER, NULL, 0), "instance"))
		return;
	for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		char name[32];

		snprintf(name, sizeof(name), "gateway_port_%s", addrs[i]);
		if (!test__start_subtest(name))
			continue;
		snprintf(b->addr, sizeof(b->addr), "%s", addrs[i]);
		b->port = t.port;
		tinst_agent(&t, NOBODY_UID, agent_bind, b);
		ASSERT_EQ(b->ret, -1, "bind refused");
		ASSERT_EQ(b->err, EPERM, "errno");
	}
	if (test__start_subtest("other_port_allowed")) {
		snprintf(b->addr, sizeof(b->addr), "127.0.0.1");
		b->port = free_port();
		tinst_agent(&t, NOBODY_UID, agent_bind, b);
		ASSERT_EQ(b->ret, 0, "bind of another port works");
	}
	munmap(b, sizeof(*b));
	tinst_destroy(&t);
}

struct udp_attempt {
	char dst[64];
	uint16_t port;
	int family;
	bool use_connect, use_sendmmsg;
	int ret, err;
};

static int agent_udp(void *arg)
{
	struct udp_attempt *u = arg;
	struct sockaddr_storage ss;
	socklen_t len = make_sockaddr(u->dst, u->port, &ss);
	int fd = socket(u->family, SOCK_DGRAM, 0);

	if (u->use_connect) {
		u->ret = connect(fd, (struct sockaddr *)&ss, len);
		if (!u->ret)
			u->ret = send(fd, marker, sizeof(marker), 0) == sizeof(marker) ? 0 : -1;
	} else if (u->use_sendmmsg) {
		struct iovec iov = { .iov_base = (void *)marker, .iov_len = sizeof(marker) };
		struct mmsghdr msgs[2] = { 0 };

		for (int i = 0; i < 2; i++) {
			msgs[i].msg_hdr.msg_name = &ss;
			msgs[i].msg_hdr.msg_namelen = len;
			msgs[i].msg_hdr.msg_iov = &iov;
			msgs[i].msg_hdr.msg_iovlen = 1;
		}
		u->ret = sendmmsg(fd, msgs, 2, 0);
	} else {
		u->ret = sendto(fd, marker, sizeof(marker), 0, (struct sockaddr *)&ss, len);
		if (u->ret > 0)
			u->ret = 0;
	}
	u->err = errno;
	close(fd);
	return 0;
}

/* refused_with: the errno of the refusal, 0 when the datagram must arrive. */
static void udp_case(struct tinst *t, int sink, const char *dst, uint16_t port, int family,
		     bool use_connect, bool use_sendmmsg, int refused_with)
{
	struct udp_attempt *u = shared_alloc(sizeof(*u));
	char buf[64];

	snprintf(u->dst, sizeof(u->dst), "%s", dst);
	u->port = port;
	u->family = family;
	u->use_connect = use_connect;
	u->use_sendmmsg = use_sendmmsg;
	tinst_agent(t, NOBODY_UID, agent_udp, u);
	if (!refused_with) {
		ASSERT_GE(u->ret, 0, "send works");
		ASSERT_EQ(recv(sink, buf, sizeof(buf), MSG_DONTWAIT), sizeof(marker),
			  "datagram arrived");
	} else {
		ASSERT_EQ(u->ret, -1, "send refused");
		ASSERT_EQ(u->err, refused_with, "errno");
		ASSERT_EQ(recv(sink, buf, sizeof(buf), MSG_DONTWAIT), -1, "nothing arrived");
	}
	munmap(u, sizeof(*u));
}

/*
 * UDP leaves an agent for the DNS relay only (test_dns.c has the relay):
 * the stand-in daemon has none, so even the resolver's datagrams are
 * refused (fail closed) and none reaches it directly.
 */
TEST(bypass_udp)
{
	uint8_t resolver[16];
	uint16_t rport, oport;
	int rsink, osink, osink6;
	struct tinst t;

	rsink = udp_bind("127.0.0.1", 0, &rport);
	osink = udp_bind("127.0.0.1", 0, &oport);
	osink6 = udp_bind("::1", oport, NULL);
	ag_addr_parse("127.0.0.1", resolver, NULL);
	if (!ASSERT_GE(osink6, 0, "sinks") ||
	    !ASSERT_OK(tinst_create(&t, "udp", TINST_NO_LISTENER, resolver, rport), "instance"))
		return;
	if (test__start_subtest("sendto_resolver"))
		udp_case(&t, rsink, "127.0.0.1", rport, AF_INET, false, false, ECONNREFUSED);
	if (test__start_subtest("sendto_other"))
		udp_case(&t, osink, "127.0.0.1", oport, AF_INET, false, false, EPERM);
	if (test__start_subtest("connect_resolver"))
		udp_case(&t, rsink, "127.0.0.1", rport, AF_INET, true, false, ECONNREFUSED);
	if (test__start_subtest("connect_other"))
		udp_case(&t, osink, "127.0.0.1", oport, AF_INET, true, false, EPERM);
	if (test__start_subtest("sendmmsg_other"))
		udp_case(&t, osink, "127.0.0.1", oport, AF_INET, false, true, EPERM);
	if (test__start_subtest("v6_sendto_v4_mapped_other"))
		udp_case(&t, osink, "::ffff:127.0.0.1", oport, AF_INET6, false, false, EPERM);
	if (test__start_subtest("v6_sendto_v4_mapped_resolver"))
		udp_case(&t, rsink, "::ffff:127.0.0.1", rport, AF_INET6, false, false,
			 ECONNREFUSED);
	if (test__start_subtest("v6_connect_v4_mapped_other"))
		udp_case(&t, osink, "::ffff:127.0.0.1", oport, AF_INET6, true, false, EPERM);
	if (test__start_subtest("v6_sendto_other"))
		udp_case(&t, osink6, "::1", oport, AF_INET6, false, false, EPERM);
	close(rsink);
	close(osink);
	close(osink6);
	tinst_destroy(&t);
}

struct sock_attempt {
	int family, type, protocol;
	bool new_userns;
	int ret, err;
};

static int open_socket(void *arg)
{
	struct sock_attempt *s = arg;
	int fd;

	if (s->new_userns && unshare(CLONE_NEWUSER | CLONE_NEWNET)) {
		s->ret = -2;
		s->err = errno;
		return 0;
	}
	fd = socket(s->family, s->type, s->protocol);
	s->ret = fd < 0 ? -1 : 0;
	s->err = errno;
	if (fd >= 0)
		close(fd);
	return 0;
}

/*
 * Socket types no tool call needs.  Each is tried as root in the agent
 * cgroup (root holds CAP_NET_RAW, so only the hook can refuse), and by
 * nobody inside a fresh user namespace, where it holds CAP_NET_RAW too.
 * A control run in a scratch cgroup outside the agents shows the kernel
 * would have allowed it: the refusal is the hook's.
 */
TEST(bypass_socket_types)
{
	/*
	 * in_userns: also try from a fresh user namespace.  Not for ping: a
	 * new network namespace starts with an empty ping_group_range, so the
	 * kernel refuses there before any hook runs.
	 */
	static const struct {
		const char *name;
		int family, type, protocol;
		bool in_userns;
	} cases[] = {
		{ "raw4", AF_INET, SOCK_RAW, IPPROTO_ICMP, true },
		{ "raw6", AF_INET6, SOCK_RAW, IPPROTO_ICMPV6, true },
		{ "raw_tcp", AF_INET, SOCK_RAW, IPPROTO_TCP, true },
		{ "ping4", AF_INET, SOCK_DGRAM, IPPROTO_ICMP, false },
		{ "ping6", AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6, false },
		{ "mptcp4", AF_INET, SOCK_STREAM, IPPROTO_MPTCP, true },
		{ "mptcp6", AF_INET6, SOCK_STREAM, IPPROTO_MPTCP, true },
		{ "sctp", AF_INET, SOCK_STREAM, IPPROTO_SCTP, true },
		{ "sctp_seqpacket", AF_INET, SOCK_SEQPACKET, IPPROTO_SCTP, true },
	};
	struct sock_attempt *s = shared_alloc(sizeof(*s));
	char scratch[PATH_MAX], *ping_range = NULL;
	struct ag_stats before, after;
	struct tinst t;
	struct ag_err err;

	if (!ASSERT_OK(tinst_create(&t, "socktype", TINST_NO_LISTENER, NULL, 0), "instance"))
		return;
	snprintf(scratch, sizeof(scratch), "%s/scratch", t.in.cg_root);
	ag_cgroup_mkdir(scratch, &err);
	/*
	 * Ping sockets are refused before the hook runs unless the caller's
	 * group is in ping_group_range; open it up so the hook is what refuses.
	 */
	if (!ag_read_file(PING_RANGE, 64, &ping_range, NULL, &err))
		ag_write_file(PING_RANGE, "0 2147483647", &err);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (!test__start_subtest(cases[i].name))
			continue;
		memset(s, 0, sizeof(*s));
		s->family = cases[i].family;
		s->type = cases[i].type;
		s->protocol = cases[i].protocol;
		run_in_cgroup(scratch, 0, open_socket, s);
		if (s->ret) {
			test__skip("this kernel has no %s sockets (errno %d: %s): nothing to "
				   "bypass with",
				   cases[i].name, s->err, strerror(s->err));
			continue;
		}
		memset(&before, 0, sizeof(before));
		bpf_map_lookup_elem(t.k.map_fd[AG_MAP_STATS], &t.agent_cg, &before);
		s->ret = 0;
		tinst_agent(&t, 0, open_socket, s);
		ASSERT_EQ(s->ret, -1, "refused as root");
		ASSERT_EQ(s->err, EPERM, "errno as root");
		if (cases[i].in_userns) {
			s->new_userns = true;
			tinst_agent(&t, NOBODY_UID, open_socket, s);
			ASSERT_EQ(s->ret, -1, "refused in a new user namespace");
			ASSERT_EQ(s->err, EPERM, "errno in a new user namespace");
		}
		memset(&after, 0, sizeof(after));
		bpf_map_lookup_elem(t.k.map_fd[AG_MAP_STATS], &t.agent_cg, &after);
		ASSERT_EQ(after.sock_denied - before.sock_denied, cases[i].in_userns ? 2 : 1,
			  "sock_denied counted");
	}
	if (ping_range) {
		ag_write_file(PING_RANGE, ping_range, &err);
		free(ping_range);
	}
	munmap(s, sizeof(*s));
	tinst_destroy(&t);
}

struct netns_attempt {
	uint16_t port;
	int unshare_ret, ret, err;
};

static int connect_from_new_netns(void *arg)
{
	struct netns_attempt *n = arg;
	struct sockaddr_storage ss;
	socklen_t len = make_sockaddr("127.0.0.1", n->port, &ss);
	struct ifreq ifr = { 0 };
	int fd;

	n->unshare_ret = unshare(CLONE_NEWUSER | CLONE_NEWNET);
	if (n->unshare_ret) {
		n->err = errno;
		return 0;
	}
	/* Bring the new namespace's lo up: a listener could exist there. */
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	ifr.ifr_flags = IFF_UP;
	ioctl(fd, SIOCSIFFLAGS, &ifr);
	close(fd);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	n->ret = connect(fd, (struct sockaddr *)&ss, len);
	n->err = errno;
	close(fd);
	return 0;
}

/* A new user+net namespace: the hooks still apply; no daemon there. */
TEST(bypass_new_netns)
{
	struct netns_attempt *n = shared_alloc(sizeof(*n));
	struct ag_stats before = { 0 }, after = { 0 };
	uint16_t tool_port;
	struct tinst t;
	int tool;

	if (!ASSERT_OK(tinst_create(&t, "netns", 0, NULL, 0), "instance"))
		return;
	tool = tcp_listen("127.0.0.1", 0, &tool_port);
	n->port = tool_port;
	bpf_map_lookup_elem(t.k.map_fd[AG_MAP_STATS], &t.agent_cg, &before);
	tinst_agent(&t, NOBODY_UID, connect_from_new_netns, n);
	if (ASSERT_EQ(n->unshare_ret, 0, "unshare(CLONE_NEWUSER|CLONE_NEWNET)")) {
		ASSERT_EQ(n->ret, -1, "connect refused");
		ASSERT_EQ(n->err, ECONNREFUSED, "errno");
		bpf_map_lookup_elem(t.k.map_fd[AG_MAP_STATS], &t.agent_cg, &after);
		/* Refused by the hook (no daemon in that namespace), not by TCP. */
		ASSERT_EQ(after.no_daemon - before.no_daemon, 1, "no_daemon counted");
		ASSERT_EQ(last_refusal(&t), AG_REASON_NO_GATEWAY, "reason: no gateway there");
	}
	ASSERT_FALSE(has_pending(tool), "nothing reached the tool");
	ASSERT_FALSE(has_pending(t.lfd4), "nothing reached the host's daemon");
	close(tool);
	munmap(n, sizeof(*n));
	tinst_destroy(&t);
}

struct escape_attempt {
	char target[PATH_MAX];
	int ret, err;
	char cgroup_after[PATH_MAX];
};

static int write_cgroup_procs(void *arg)
{
	struct escape_attempt *e = arg;
	char file[PATH_MAX + 16], pid[16], *text = NULL;
	int fd;

	snprintf(file, sizeof(file), "%s/cgroup.procs", e->target);
	snprintf(pid, sizeof(pid), "%d", getpid());
	fd = open(file, O_WRONLY);
	if (fd < 0) {
		e->ret = -1;
		e->err = errno;
	} else {
		e->ret = write(fd, pid, strlen(pid)) < 0 ? -1 : 0;
		e->err = errno;
		close(fd);
	}
	if (!ag_read_file("/proc/self/cgroup", 4096, &text, NULL, NULL)) {
		char *v2 = strstr(text, "0::");

		snprintf(e->cgroup_after, sizeof(e->cgroup_after), "%s", v2 ? v2 + 3 : "?");
		free(text);
	}
	return 0;
}

TEST(bypass_cgroup_escape)
{
	struct escape_attempt *e = shared_alloc(sizeof(*e));
	char owned[PATH_MAX], file[PATH_MAX + 16], expect[PATH_MAX];
	struct tinst t;
	struct ag_err err;

	if (!ASSERT_OK(tinst_create(&t, "escape", TINST_NO_LISTENER, NULL, 0), "instance"))
		return;
	/* A cgroup outside the instance that the agent's user owns outright. */
	snprintf(owned, sizeof(owned), "%s/%s-owned", t.in.cgroup2, t.in.name);
	ag_cgroup_mkdir(owned, &err);
	ASSERT_OK(chown(owned, NOBODY_UID, NOBODY_GID), "chown cgroup");
	snprintf(file, sizeof(file), "%s/cgroup.procs", owned);
	ASSERT_OK(chown(file, NOBODY_UID, NOBODY_GID), "chown cgroup.procs");
	snprintf(expect, sizeof(expect), "/%s/agents/a\n", t.in.name);

	const char *targets[] = { t.in.cgroup2, t.in.cg_daemon, owned, t.in.cg_root };
	const char *names[] = { "root_cgroup", "daemon_cgroup", "user_owned_cgroup",
				"instance_root" };

	for (int i = 0; i < 4; i++) {
		if (!test__start_subtest(names[i]))
			continue;
		memset(e, 0, sizeof(*e));
		snprintf(e->target, sizeof(e->target), "%s", targets[i]);
		tinst_agent(&t, NOBODY_UID, write_cgroup_procs, e);
		ASSERT_EQ(e->ret, -1, "move refused");
		ASSERT_TRUE(e->err == EACCES || e->err == EPERM, "EACCES or EPERM");
		ASSERT_STREQ(e->cgroup_after, expect, "still in its agent cgroup");
	}
	rmdir(owned);
	munmap(e, sizeof(*e));
	tinst_destroy(&t);
}

/*
 * A socket created outside the agent cgroup is not seen by the cgroup
 * hooks.  An inherited one no longer reaches an agent: agentgatectl run
 * closes every descriptor but 0-2 before exec.  (One handed in over a unix
 * socket by a process outside stays open without BPF-LSM: agentgatectl
 * status lists it.)
 */
TEST(bypass_carried_socket)
{
	int s = socket(AF_INET, SOCK_STREAM, 0); /* not CLOEXEC: the shell passes it on */
	char *out = NULL;
	uint16_t tool_port;
	struct tinst t;
	int tool, c;

	if (!ASSERT_OK(tinst_create(&t, "carried", 0, NULL, 0), "instance"))
		goto out;
	tool = tcp_listen("127.0.0.1", 0, &tool_port);
	ASSERT_EQ(run_capture(&out,
			      "env -u SUDO_UID %s/agentgatectl --instance %s run --agent a -- "
			      "%s/agent_probe connectfd %d %u 2>&1",
			      testlib_build_dir(), t.in.name, testlib_build_dir(), s, tool_port),
		  0, "run");
	ASSERT_STRHAS(out, "connectfd=EBADF", "the agent does not have the socket");
	free(out);
	c = accept_timeout(tool, 500);
	ASSERT_LT(c, 0, "nothing reached the tool directly");
	if (c >= 0)
		close(c);
	ASSERT_FALSE(has_pending(t.lfd4), "nor through the gateway");
	close(tool);
	tinst_destroy(&t);
out:
	close(s);
}

/* An agent connection from a chosen source port, reset once the daemon has it. */
struct sourced_attempt {
	uint16_t sport, port;
	uint64_t cookie;
	int ret, err;
	int go[2]; /* the test writes a byte once it has claimed the connection */
};

static int agent_connect_from(void *arg)
{
	struct sourced_attempt *a = arg;
	struct linger reset = { .l_onoff = 1, .l_linger = 0 };
	struct sockaddr_storage ss;
	socklen_t len = make_sockaddr("127.0.0.1", a->sport, &ss);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	char byte;

	a->ret = -1;
	if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len))
		goto out;
	len = make_sockaddr("127.0.0.1", a->port, &ss);
	if (connect(fd, (struct sockaddr *)&ss, len))
		goto out;
	a->cookie = socket_cookie(fd);
	a->ret = 0;
	if (read(a->go[0], &byte, 1) != 1)
		a->ret = -1;
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
out:
	a->err = errno;
	if (fd >= 0)
		close(fd);
	return 0;
}

/* A socket outside the agents connected to the daemon; its cookie in *cookie. */
static int outsider_connect(struct tinst *t, uint16_t sport, uint64_t *cookie)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	len = make_sockaddr("127.0.0.1", sport, &ss);
	if (sport && bind(fd, (struct sockaddr *)&ss, len)) {
		close(fd);
		return -1;
	}
	len = make_sockaddr("127.0.0.1", t->port, &ss);
	if (connect(fd, (struct sockaddr *)&ss, len)) {
		close(fd);
		return -1;
	}
	*cookie = socket_cookie(fd);
	return fd;
}

static int plant_origin(struct tinst *t, uint64_t cookie)
{
	__u32 slot = cookie & (AG_ORIGIN_SLOTS - 1);
	struct ag_origin o = { .cookie = cookie, .agent_cgroup_id = t->agent_cg, .port = 443 };

	return bpf_map_update_elem(t->k.map_fd[AG_MAP_ORIGIN], &slot, &o, BPF_ANY);
}

/*
 * The daemon gets a record only for the agent's own socket at the other
 * end of the connection it accepted.  Anything else that connects to the
 * gateway -- a process outside the agents, even one that takes over a
 * closed agent connection's source port, or whose socket's slot holds an
 * agent's record -- gets no identity, so it can use neither an agent's
 * rights nor the credentials the gateway injects for it.
 */
TEST(bypass_claim)
{
	struct ag_origin got;
	uint64_t cookie;
	struct tinst t;
	int fd, c;

	if (!ASSERT_OK(tinst_create(&t, "claim", 0, NULL, 0), "instance"))
		return;
	for (int own = 1; own >= 0; own--) {
		if (!test__start_subtest(own ? "record_of_the_peer_socket" : "record_of_another"))
			continue;
		fd = outsider_connect(&t, 0, &cookie);
		if (!ASSERT_GE(fd, 0, "connect to the daemon"))
			continue;
		/* The same slot either way; only the cookie says whose it is. */
		ASSERT_OK(plant_origin(&t, own ? cookie : cookie + AG_ORIGIN_SLOTS),
			  "plant a record");
		c = accept_timeout(t.lfd4, 2000);
		if (ASSERT_GE(c, 0, "accepted")) {
			if (own)
				ASSERT_OK(ag_kern_origin(&t.k, c, &got), "the peer's own record");
			else
				ASSERT_EQ(ag_kern_origin(&t.k, c, &got), -ENOENT,
					  "no identity from another socket's record");
			close(c);
		}
		close(fd);
	}
	if (test__start_subtest("source_port_taken_over")) {
		struct sourced_attempt *a = shared_alloc(sizeof(*a));
		uint16_t sport;
		pid_t pid;

		close(tcp_listen("127.0.0.1", 0, &sport));
		a->sport = sport;
		a->port = 9;
		ASSERT_OK(pipe(a->go), "pipe");
		pid = fork();
		if (pid == 0)
			_exit(tinst_agent(&t, NOBODY_UID, agent_connect_from, a));
		c = accept_timeout(t.lfd4, 2000);
		memset(&got, 0, sizeof(got));
		if (ASSERT_GE(c, 0, "agent's connection accepted"))
			ASSERT_OK(ag_kern_origin(&t.k, c, &got), "agent's record");
		/* The agent resets its connection: the port is free at once. */
		ASSERT_EQ(write(a->go[1], "x", 1), 1, "release the agent");
		waitpid(pid, NULL, 0);
		ASSERT_EQ(got.cookie, a->cookie, "claimed for the agent's socket");
		if (c >= 0)
			close(c);
		fd = outsider_connect(&t, sport, &cookie);
		if (ASSERT_GE(fd, 0, "outsider connects from the agent's port")) {
			c = accept_timeout(t.lfd4, 2000);
			if (ASSERT_GE(c, 0, "outsider accepted"))
				ASSERT_EQ(ag_kern_origin(&t.k, c, &got), -ENOENT,
					  "no identity for the outsider");
			close(c);
			close(fd);
		}
		close(a->go[0]);
		close(a->go[1]);
		munmap(a, sizeof(*a));
	}
	if (test__start_subtest("reset_before_accept")) {
		struct sourced_attempt *a = shared_alloc(sizeof(*a));

		/* Released at once: the agent resets before the daemon accepts. */
		a->port = 9;
		ASSERT_OK(pipe(a->go), "pipe");
		ASSERT_EQ(write(a->go[1], "x", 1), 1, "release the agent");
		ASSERT_EQ(tinst_agent(&t, NOBODY_UID, agent_connect_from, a), 0, "agent");
		ASSERT_EQ(a->ret, 0, "agent connected");
		c = accept_timeout(t.lfd4, 2000);
		if (ASSERT_GE(c, 0, "accepted"))
			ASSERT_EQ(ag_kern_origin(&t.k, c, &got), -ENOENT,
				  "nobody left to vouch for the connection");
		close(c);
		close(a->go[0]);
		close(a->go[1]);
		munmap(a, sizeof(*a));
	}
	tinst_destroy(&t);
}
