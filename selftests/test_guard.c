// SPDX-License-Identifier: GPL-2.0
/*
 * The XDP ingress guard between two network namespaces of the test's own:
 * a server namespace whose veth end carries the guard, and a client
 * namespace with two source addresses.  One source floods beyond its
 * bucket and is dropped in XDP, counted against that source; the other is
 * served throughout.  Counts, not rates: the bucket does not refill
 * (rate 0), so exactly the burst goes through.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "guard.h"
#include "test.h"
#include "testlib.h"

#define SERVER "10.211.0.1"
#define FLOODER "10.211.0.2"
#define NEIGHBOUR "10.211.0.3"
#define UDP_PORT 9999
#define TCP_PORT 8888

struct udp_count {
	int ready[2];
	int from_flooder, from_neighbour;
};

/* In the server namespace: count datagrams per source until 500 ms of quiet. */
static int udp_server(void *arg)
{
	struct udp_count *c = arg;
	struct sockaddr_storage ss;
	int fd = udp_bind(SERVER, UDP_PORT, NULL);
	char buf[64];

	if (fd < 0 || write(c->ready[1], "r", 1) != 1)
		return 1;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		struct sockaddr_in from;
		socklen_t len = sizeof(from);

		if (poll(&p, 1, 500) <= 0)
			break;
		if (recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &len) < 0)
			continue;
		make_sockaddr(FLOODER, 0, &ss);
		if (from.sin_addr.s_addr == ((struct sockaddr_in *)&ss)->sin_addr.s_addr)
			c->from_flooder++;
		else
			c->from_neighbour++;
	}
	close(fd);
	return 0;
}

struct send_args {
	const char *from;
	int count;
	int tcp_ret, tcp_err;
};

static int udp_send(void *arg)
{
	struct send_args *s = arg;
	struct sockaddr_storage ss;
	int fd = udp_bind(s->from, 0, NULL);
	socklen_t len = make_sockaddr(SERVER, UDP_PORT, &ss);

	for (int i = 0; i < s->count; i++)
		sendto(fd, "flood", 5, 0, (struct sockaddr *)&ss, len);
	close(fd);
	return 0;
}

static int tcp_connect_from(void *arg)
{
	struct send_args *s = arg;
	struct sockaddr_storage ss, src;
	struct timeval tv = { 0, 300 * 1000 };
	socklen_t len = make_sockaddr(SERVER, TCP_PORT, &ss);
	socklen_t slen = make_sockaddr(s->from, 0, &src);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	/* A dropped SYN is retried after 1 s: 300 ms tells "dropped" from "served". */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	bind(fd, (struct sockaddr *)&src, slen);
	s->tcp_ret = connect(fd, (struct sockaddr *)&ss, len);
	s->tcp_err = errno;
	close(fd);
	return 0;
}

/* Sends from the client namespace while the server namespace counts. */
static void udp_round(const char *srv, const char *cli, int flood, int neighbour,
		      struct udp_count *c)
{
	struct send_args *s = shared_alloc(sizeof(*s));
	pid_t server;
	char r;

	memset(c, 0, sizeof(*c));
	if (pipe(c->ready))
		return;
	server = fork();
	if (server == 0)
		_exit(tnetns_run(srv, udp_server, c));
	if (read(c->ready[0], &r, 1) != 1)
		fprintf(stderr, "udp server did not start\n");
	s->from = FLOODER;
	s->count = flood;
	tnetns_run(cli, udp_send, s);
	s->from = NEIGHBOUR;
	s->count = neighbour;
	tnetns_run(cli, udp_send, s);
	waitpid(server, NULL, 0);
	close(c->ready[0]);
	close(c->ready[1]);
	munmap(s, sizeof(*s));
}

struct attach_args {
	struct ag_instance in;
	char ifname[IF_NAMESIZE];
	struct ag_guard_config cfg;
	bool detach;
	char err[512];
};

static int attach_in_ns(void *arg)
{
	struct attach_args *a = arg;
	struct ag_err err = { 0 };
	int ret = a->detach ? ag_guard_detach(&a->in, a->ifname, &err)
			    : ag_guard_attach(&a->in, a->ifname, &a->cfg, &err);

	snprintf(a->err, sizeof(a->err), "%s", err.msg);
	return ret ? 1 : 0;
}

static int tcp_listen_in_ns(void *arg)
{
	int *ready = arg, fd = tcp_listen(SERVER, TCP_PORT, NULL), c;

	if (fd < 0 || write(ready[1], "r", 1) != 1)
		return 1;
	/* Accept whatever comes for 2 s; the client side tells what got through. */
	while ((c = accept_timeout(fd, 2000)) >= 0)
		close(c);
	close(fd);
	return 0;
}

TEST(xdp_guard)
{
	struct attach_args *a = shared_alloc(sizeof(*a));
	struct udp_count *c = shared_alloc(sizeof(*c));
	struct send_args *s = shared_alloc(sizeof(*s));
	char cmd[512], path[PATH_MAX + 64], *out = NULL;
	struct ag_guard_source src;
	const char *srv, *cli;
	uint8_t key[16];
	struct ag_err err;
	int fd, ready[2];
	pid_t listener;

	srv = tnetns_add("gsrv");
	cli = tnetns_add("gcli");
	if (!ASSERT_OK_PTR(srv, "server netns") || !ASSERT_OK_PTR(cli, "client netns"))
		goto out;
	snprintf(a->ifname, sizeof(a->ifname), "agv%ds", getpid() % 100000);
	snprintf(cmd, sizeof(cmd),
		 "ip link add %s type veth peer name agv%dc && "
		 "ip link set %s netns %s && ip link set agv%dc netns %s && "
		 "ip -n %s addr add " SERVER "/24 dev %s && ip -n %s link set %s up && "
		 "ip -n %s addr add " FLOODER "/24 dev agv%dc && "
		 "ip -n %s addr add " NEIGHBOUR "/24 dev agv%dc && ip -n %s link set agv%dc up",
		 a->ifname, getpid() % 100000, a->ifname, srv, getpid() % 100000, cli, srv,
		 a->ifname, srv, a->ifname, cli, getpid() % 100000, cli, getpid() % 100000, cli,
		 getpid() % 100000);
	if (!ASSERT_EQ(system(cmd), 0, "veth between the namespaces"))
		goto out;
	if (!ASSERT_OK(ag_instance_init(&a->in, test__instance("guard"), NULL, &err), "instance"))
		goto out;

	if (test__start_subtest("without_guard_all_served")) {
		udp_round(srv, cli, 50, 3, c);
		ASSERT_EQ(c->from_flooder, 50, "flooder's datagrams");
		ASSERT_EQ(c->from_neighbour, 3, "neighbour's datagrams");
	}
	a->cfg = (struct ag_guard_config){ .rate = 0, .burst = 5 };
	if (!ASSERT_EQ(tnetns_run(srv, attach_in_ns, a), 0, "attach") &&
	    fprintf(stderr, "  %s\n", a->err))
		goto out;

	if (test__start_subtest("flood_dropped_per_source")) {
		udp_round(srv, cli, 50, 3, c);
		ASSERT_EQ(c->from_flooder, 5, "the flooder gets its burst");
		ASSERT_EQ(c->from_neighbour, 3, "the neighbour is served");
		snprintf(path, sizeof(path), "%s/guard-%s/sources", a->in.pin_dir, a->ifname);
		fd = bpf_obj_get(path);
		ag_addr_parse(FLOODER, key, NULL);
		if (ASSERT_GE(fd, 0, "pinned sources map") &&
		    ASSERT_OK(bpf_map_lookup_elem(fd, key, &src), "flooder's bucket")) {
			ASSERT_EQ(src.passed, 5, "flooder passed");
			ASSERT_EQ(src.dropped, 45, "flooder dropped, counted in XDP");
		}
		ag_addr_parse(NEIGHBOUR, key, NULL);
		if (fd >= 0 && ASSERT_OK(bpf_map_lookup_elem(fd, key, &src), "neighbour's bucket"))
			ASSERT_EQ(src.dropped, 0, "neighbour dropped");
		if (fd >= 0)
			close(fd);
	}
	if (test__start_subtest("tcp_syn_limited")) {
		ASSERT_OK(pipe(ready), "pipe");
		listener = fork();
		if (listener == 0)
			_exit(tnetns_run(srv, tcp_listen_in_ns, ready));
		ASSERT_EQ(read(ready[0], cmd, 1), 1, "listener up");
		s->from = NEIGHBOUR; /* 2 tokens left of 5 */
		tnetns_run(cli, tcp_connect_from, s);
		ASSERT_EQ(s->tcp_ret, 0, "neighbour connects");
		s->from = FLOODER; /* bucket empty */
		tnetns_run(cli, tcp_connect_from, s);
		ASSERT_EQ(s->tcp_ret, -1, "flooder's SYN dropped");
		ASSERT_TRUE(s->tcp_err == EINPROGRESS || s->tcp_err == ETIMEDOUT ||
				s->tcp_err == EAGAIN,
			    "connect timed out");
		waitpid(listener, NULL, 0);
		close(ready[0]);
		close(ready[1]);
	}
	if (test__start_subtest("show")) {
		snprintf(cmd, sizeof(cmd), "%s/agentgatectl --instance %s guard show",
			 testlib_build_dir(), a->in.name);
		/* The interface lives in the server namespace. */
		ASSERT_EQ(run_capture(&out, "nsenter --net=/run/netns/%s %s", srv, cmd), 0, "show");
		ASSERT_TRUE(out && strstr(out, a->ifname), "interface listed");
		ASSERT_TRUE(out && (strstr(out, "native") || strstr(out, "skb")), "XDP mode");
		ASSERT_TRUE(out && (strstr(out, "legacy") || strstr(out, "multi-program")),
			    "dispatcher");
		if (test__verbose())
			fprintf(stderr, "%s", out ? out : "");
		free(out);
	}
	if (test__start_subtest("detach")) {
		a->detach = true;
		ASSERT_EQ(tnetns_run(srv, attach_in_ns, a), 0, "detach");
		udp_round(srv, cli, 20, 0, c);
		ASSERT_EQ(c->from_flooder, 20, "all served once detached");
	}
out:
	a->detach = true;
	if (srv)
		tnetns_run(srv, attach_in_ns, a);
	if (srv)
		tnetns_del(srv);
	if (cli)
		tnetns_del(cli);
	rmdir(a->in.pin_dir);
	munmap(a, sizeof(*a));
	munmap(c, sizeof(*c));
	munmap(s, sizeof(*s));
}
