// SPDX-License-Identifier: GPL-2.0
/*
 * The XDP guard's drop rate against the kernel stack, in one run: a sender
 * in one network namespace pushes UDP datagrams over a veth pair for a
 * fixed time to a receiver namespace, first with no program (every
 * datagram goes up the stack to a socket), then with xdp_guard dropping
 * every one: in ingress mode (burst 0, a bucket lookup per datagram) and
 * in agent mode (the guard on a namespaced agent's veth, where datagrams
 * to neither the gateway nor a resolver are dropped without any lookup).
 * On a veth the sender's CPU carries the receive path too, so datagrams
 * sent per second is the cost of what receiving them takes.
 *
 *	xdp_bench [-s SECONDS]
 *
 * Needs root.  Namespaces and addresses are the benchmark's own and are
 * removed at the end; the send loop is bounded in time and count.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guard.h"

#define RECEIVER "10.212.0.1"
#define SENDER "10.212.0.2"
#define PORT 9999
#define MAX_PACKETS 50000000ull
#define BATCH 64

struct result {
	uint64_t sent, received;
	uint64_t ns;
};

static char srv_ns[64], cli_ns[64], ifname[IF_NAMESIZE];

static int enter_netns(const char *name)
{
	char path[128];
	int fd, ret;

	snprintf(path, sizeof(path), "/run/netns/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ret = setns(fd, CLONE_NEWNET);
	close(fd);
	return ret;
}

static void sender(double seconds, struct result *r)
{
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(PORT) };
	struct mmsghdr msgs[BATCH];
	struct iovec iov = { .iov_base = "xdp-bench-payload", .iov_len = 17 };
	uint64_t start, deadline;
	int fd;

	if (enter_netns(cli_ns))
		_exit(1);
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	inet_pton(AF_INET, RECEIVER, &dst.sin_addr);
	memset(msgs, 0, sizeof(msgs));
	for (int i = 0; i < BATCH; i++) {
		msgs[i].msg_hdr.msg_name = &dst;
		msgs[i].msg_hdr.msg_namelen = sizeof(dst);
		msgs[i].msg_hdr.msg_iov = &iov;
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	start = ag_now_ns();
	deadline = start + (uint64_t)(seconds * 1e9);
	while (ag_now_ns() < deadline && r->sent < MAX_PACKETS) {
		int n = sendmmsg(fd, msgs, BATCH, 0);

		if (n > 0)
			r->sent += n;
	}
	r->ns = ag_now_ns() - start;
	close(fd);
	_exit(0);
}

/* Counts what reaches a socket in the receiver namespace until quiet. */
static void receiver(int ready, struct result *r)
{
	int fd, rcvbuf = 8 << 20;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(PORT) };
	struct timeval tv = { 0, 300 * 1000 };
	char buf[64];

	if (enter_netns(srv_ns))
		_exit(1);
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	inet_pton(AF_INET, RECEIVER, &a.sin_addr);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || write(ready, "r", 1) != 1)
		_exit(1);
	while (recv(fd, buf, sizeof(buf), 0) > 0)
		r->received++;
	_exit(0);
}

static void run(double seconds, struct result *r)
{
	int ready[2];
	pid_t rx, tx;
	char c;

	memset(r, 0, sizeof(*r));
	if (pipe(ready))
		return;
	rx = fork();
	if (rx == 0)
		receiver(ready[1], r);
	if (read(ready[0], &c, 1) != 1)
		fprintf(stderr, "xdp_bench: receiver did not start\n");
	tx = fork();
	if (tx == 0)
		sender(seconds, r);
	waitpid(tx, NULL, 0);
	waitpid(rx, NULL, 0);
	close(ready[0]);
	close(ready[1]);
}

/* cfg NULL: detach. */
static int guard(const struct ag_guard_config *cfg, const struct ag_instance *in)
{
	struct ag_err err;
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		if (enter_netns(srv_ns))
			_exit(1);
		if ((cfg ? ag_guard_attach(in, ifname, cfg, &err)
			 : ag_guard_detach(in, ifname, &err))) {
			fprintf(stderr, "xdp_bench: %s\n", err.msg);
			_exit(1);
		}
		_exit(0);
	}
	waitpid(pid, &status, 0);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct result *r =
	    mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct ag_guard_info info;
	struct ag_instance in;
	struct ag_err err;
	double seconds = 2, base, dropped;
	/* Agent mode's gateway is elsewhere: the datagrams are for nobody it passes. */
	const struct {
		const char *name;
		struct ag_guard_config cfg;
	} modes[] = {
		{ "xdp_guard ingress, dropping all", { .rate = 0, .burst = 0, .port = PORT } },
		{ "xdp_guard agent mode, dropping all",
		  { .flags = AG_GUARD_F_AGENT, .gateway_ip4 = htonl(AG_NETNS_GATEWAY_AT(0)),
		    .gateway_port = PORT } },
	};
	char cmd[1024];
	int opt, ret = 1;

	while ((opt = getopt(argc, argv, "s:")) != -1) {
		if (opt != 's' || (seconds = atof(optarg)) <= 0 || seconds > 30) {
			fprintf(stderr, "usage: xdp_bench [-s SECONDS (0-30)]\n");
			return 2;
		}
	}
	snprintf(srv_ns, sizeof(srv_ns), "agxb%d-rx", getpid());
	snprintf(cli_ns, sizeof(cli_ns), "agxb%d-tx", getpid());
	snprintf(ifname, sizeof(ifname), "agxb%drx", getpid() % 100000);
	snprintf(cmd, sizeof(cmd),
		 "ip netns add %s && ip netns add %s && "
		 "ip link add %s type veth peer name agxb%dtx && "
		 "ip link set %s netns %s && ip link set agxb%dtx netns %s && "
		 "ip -n %s addr add " RECEIVER "/24 dev %s && ip -n %s link set %s up && "
		 "ip -n %s addr add " SENDER "/24 dev agxb%dtx && ip -n %s link set agxb%dtx up",
		 srv_ns, cli_ns, ifname, getpid() % 100000, ifname, srv_ns, getpid() % 100000,
		 cli_ns, srv_ns, ifname, srv_ns, ifname, cli_ns, getpid() % 100000, cli_ns,
		 getpid() % 100000);
	if (system(cmd) || ag_instance_init(&in, srv_ns, NULL, &err)) {
		fprintf(stderr, "xdp_bench: cannot set up the namespaces\n");
		goto out;
	}
	run(seconds, r);
	base = r->sent / (r->ns / 1e9);
	printf("xdp_bench: UDP over a veth for %.1f s each, one sender\n", seconds);
	printf("  %-36s %11.0f packets/s sent, %.0f%% reached the socket\n",
	       "no program (kernel stack)", base, r->sent ? 100.0 * r->received / r->sent : 0);
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		if (guard(&modes[i].cfg, &in))
			goto out;
		run(seconds, r);
		dropped = r->sent / (r->ns / 1e9);
		/* The pinned stats are readable from here; the interface is not. */
		ag_guard_info(&in, ifname, &info, &err);
		guard(NULL, &in);
		printf("  %-36s %11.0f packets/s sent, %llu dropped in XDP, %llu reached the "
		       "socket, %.2fx\n",
		       modes[i].name, dropped, (unsigned long long)info.stats.dropped,
		       (unsigned long long)r->received, dropped / base);
	}
	ret = 0;
out:
	snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null; ip netns del %s 2>/dev/null",
		 srv_ns, cli_ns);
	if (system(cmd))
		ret = 1;
	rmdir(in.pin_dir);
	return ret;
}
