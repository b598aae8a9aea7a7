// SPDX-License-Identifier: GPL-2.0
/*
 * What the connect hooks cost an agent, measured two ways in one run:
 *
 *  1. end to end: connect()+close() per second from a process in the agent
 *     cgroup (redirected: connect4, sk lookup, origin storage, sockops),
 *     from an agent with a quota (one that never refuses: only its cost
 *     shows), both reaching the marked listener in <instance>/daemon, and
 *     with no program at all: a client and a listener outside the instance;
 *     rounds alternate so machine drift hits all three;
 *  2. in the kernel: BPF_STATS_RUN_TIME, the run time the kernel itself
 *     accounts to each program, divided by its run count.
 *  3. what charging one tool call to a call budget costs the daemon: a
 *     quota_charge run (BPF_PROG_TEST_RUN) on the quota agent's entry.
 *
 *	connect_bench [-n CONNECTS_PER_ROUND] [-r ROUNDS]
 *
 * Needs root.  Uses its own instance (agbench-<pid>), loopback only, and a
 * bounded number of connects; removes everything it created.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "cgroup.h"
#include "kern.h"
#include "spawn.h"

struct round {
	uint64_t ns;
	int failed;
};

static int connect_loop(uint16_t port, int n, struct round *r)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	uint64_t start;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	start = ag_now_ns();
	for (int i = 0; i < n; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)))
			r->failed++;
		if (fd >= 0)
			close(fd);
	}
	r->ns = ag_now_ns() - start;
	return 0;
}

/* One round in a child created inside cgroup; the parent drains accepts. */
static int run_round(const char *cgroup, int lfd, uint16_t port, int n, struct round *r)
{
	int cgfd = open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC), status;
	pid_t pid;

	if (cgfd < 0)
		return -errno;
	memset(r, 0, sizeof(*r));
	pid = ag_clone_into_cgroup(cgfd);
	if (pid == 0)
		_exit(connect_loop(port, n, r));
	close(cgfd);
	if (pid < 0)
		return pid;
	for (;;) {
		struct pollfd p = { .fd = lfd, .events = POLLIN };
		int fd;

		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
		if (poll(&p, 1, 10) > 0)
			while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
				close(fd);
	}
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

static int listen_marked(uint32_t mark, uint16_t *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) ||
	    bind(fd, (struct sockaddr *)&sin, sizeof(sin)) || listen(fd, 4096) ||
	    getsockname(fd, (struct sockaddr *)&sin, &len))
		return -1;
	*port = ntohs(sin.sin_port);
	return fd;
}

static int prog_stats(const struct ag_instance *in, const char *link, uint64_t *ns, uint64_t *cnt)
{
	struct ag_link_status links[AG_PROG_COUNT];
	struct bpf_prog_info info;
	__u32 len = sizeof(info);
	int fd;

	ag_kern_links(in, links);
	for (int i = 0; i < AG_PROG_COUNT; i++) {
		if (strcmp(links[i].name, link))
			continue;
		fd = bpf_prog_get_fd_by_id(links[i].prog_id);
		if (fd < 0)
			return -errno;
		memset(&info, 0, sizeof(info));
		if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
			close(fd);
			return -errno;
		}
		close(fd);
		*ns = info.run_time_ns;
		*cnt = info.run_cnt;
		return 0;
	}
	return -ENOENT;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	int n = 20000, rounds = 5, opt, lfd = -1, plain_lfd = -1, stats_fd = -1, ret = 1;
	char name[AG_INSTANCE_MAX], agent_cg[PATH_MAX], plain_cg[PATH_MAX], self_cg[PATH_MAX];
	char quota_cg[PATH_MAX];
	uint64_t base[64], hooked[64], quota[64], ns0, cnt0, ns1, cnt1, sns0, scnt0, sns1, scnt1;
	uint64_t quota_id = 0, charge_ns;
	struct ag_charge charge;
	struct round *r =
	    mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct ag_instance in;
	struct ag_config cfg = { 0 };
	struct ag_kern k = { 0 };
	struct ag_err err;
	uint32_t lo = htonl(INADDR_LOOPBACK);
	uint16_t port, plain_port;
	char *text = NULL, *v2;

	while ((opt = getopt(argc, argv, "n:r:")) != -1) {
		if (opt == 'n')
			n = atoi(optarg);
		else if (opt == 'r')
			rounds = atoi(optarg);
		else
			return 2;
	}
	if (n < 100 || n > 1000000 || rounds < 1 || rounds > 64) {
		fprintf(stderr, "connect_bench: -n 100..1000000, -r 1..64\n");
		return 2;
	}
	snprintf(name, sizeof(name), "agbench-%d", getpid());
	if (ag_instance_init(&in, name, NULL, &err) || ag_bpffs_ensure(&err) ||
	    ag_cgroup_mkdir(in.cg_root, &err) || ag_cgroup_mkdir(in.cg_agents, &err) ||
	    ag_cgroup_mkdir(in.cg_daemon, &err)) {
		fprintf(stderr, "connect_bench: %s\n", err.msg);
		return 1;
	}
	snprintf(agent_cg, sizeof(agent_cg), "%s/bench", in.cg_agents);
	/* Outside the instance: not even sockops (attached at its root) runs there. */
	snprintf(plain_cg, sizeof(plain_cg), "%s-plain", in.cg_root);
	snprintf(quota_cg, sizeof(quota_cg), "%s/quota", in.cg_agents);
	ag_cgroup_mkdir(plain_cg, &err);
	/* This process plays the daemon: in its cgroup, owning the listener. */
	if (ag_read_file("/proc/self/cgroup", 4096, &text, NULL, &err) ||
	    !(v2 = strstr(text, "0::"))) {
		fprintf(stderr, "connect_bench: cannot read /proc/self/cgroup\n");
		goto out;
	}
	snprintf(self_cg, sizeof(self_cg), "%s%.*s", in.cgroup2, (int)strcspn(v2 + 3, "\n"),
		 v2 + 3);
	/* The baseline's listener is created here, before joining the daemon's cgroup. */
	plain_lfd = listen_marked(0, &plain_port);
	if (plain_lfd < 0 || ag_cgroup_enter(in.cg_daemon, 0, &err))
		goto fail;
	cfg.mark = 0x41470000 | (getpid() & 0xffff);
	lfd = listen_marked(cfg.mark, &port);
	if (lfd < 0) {
		fprintf(stderr, "connect_bench: listener: %s\n", strerror(errno));
		goto out;
	}
	memcpy(&cfg.daemon_ip4, &lo, 4);
	cfg.daemon_port = port;
	cfg.agents_level = ag_cgroup_level(in.cgroup2, in.cg_agents);
	{
		uint64_t id = 0;

		ag_cgroup_id(in.cg_daemon, &id, &err);
		cfg.daemon_cgroup_id = id;
	}
	cfg.default_verdict = AG_VERDICT_REDIRECT;
	if (ag_kern_install(&k, &in, &cfg, &err))
		goto fail;
	{
		/* Large enough never to refuse within the run. */
		struct ag_quota_limits l = { .connect_rate = 1000000000,
					     .connect_burst = 1000000000 };

		if (ag_agent_register(&k, &in, "bench", AG_VERDICT_REDIRECT, NULL, &err) ||
		    ag_agent_register(&k, &in, "quota", AG_VERDICT_REDIRECT, &quota_id, &err) ||
		    ag_quota_set(&k, quota_id, &l, &err))
			goto fail;
	}
	stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
	if (stats_fd < 0)
		fprintf(stderr, "connect_bench: BPF run-time stats unavailable: %s\n",
			strerror(errno));

	/* Warm-up, then alternate: unhooked, hooked, unhooked, ... */
	run_round(plain_cg, plain_lfd, plain_port, n / 10, r);
	run_round(agent_cg, lfd, port, n / 10, r);
	prog_stats(&in, "connect4", &ns0, &cnt0);
	prog_stats(&in, "sockops", &sns0, &scnt0);
	for (int i = 0; i < rounds; i++) {
		/* The hooked child connects to 127.0.0.1:9, redirected to the listener. */
		if (run_round(plain_cg, plain_lfd, plain_port, n, r) || r->failed)
			goto round_failed;
		base[i] = r->ns;
		if (run_round(agent_cg, lfd, 9, n, r) || r->failed)
			goto round_failed;
		hooked[i] = r->ns;
		if (run_round(quota_cg, lfd, 9, n, r) || r->failed)
			goto round_failed;
		quota[i] = r->ns;
	}
	prog_stats(&in, "connect4", &ns1, &cnt1);
	prog_stats(&in, "sockops", &sns1, &scnt1);
	/* What the daemon adds per tool call of an agent with a call budget. */
	charge_ns = ag_now_ns();
	for (int i = 0; i < n; i++)
		if (ag_quota_charge(&k, quota_id, &charge, &err))
			goto fail;
	charge_ns = ag_now_ns() - charge_ns;
	qsort(base, rounds, sizeof(base[0]), cmp_u64);
	qsort(hooked, rounds, sizeof(hooked[0]), cmp_u64);
	qsort(quota, rounds, sizeof(quota[0]), cmp_u64);
	{
		double b = (double)base[rounds / 2] / n, h = (double)hooked[rounds / 2] / n;
		double q = (double)quota[rounds / 2] / n;

		printf(
		    "connect_bench: %d rounds x %d connect()+close() on 127.0.0.1, median round\n",
		    rounds, n);
		printf("  %-34s %9.0f connects/s  %7.2f us/connect\n", "no programs (outside instance)",
		       1e9 / b, b / 1000);
		printf("  %-34s %9.0f connects/s  %7.2f us/connect\n", "agent cgroup (redirected)",
		       1e9 / h, h / 1000);
		printf("  %-34s %9.0f connects/s  %7.2f us/connect\n",
		       "agent with a quota (redirected)", 1e9 / q, q / 1000);
		printf("  %-34s %+9.2f us/connect (%.2fx)\n", "hooks, end to end", (h - b) / 1000,
		       h / b);
		printf("  %-34s %+9.2f us/connect\n", "quota on top of that", (q - h) / 1000);
		printf("  %-34s %9.2f us/call (BPF_PROG_TEST_RUN, %d calls)\n",
		       "call budget charge (quota_charge)", (double)charge_ns / n / 1000, n);
		if (cnt1 > cnt0)
			printf("  %-34s %9.0f ns/run over %llu runs\n",
			       "connect4 program (kernel stats)",
			       (double)(ns1 - ns0) / (cnt1 - cnt0),
			       (unsigned long long)(cnt1 - cnt0));
		if (scnt1 > scnt0)
			printf("  %-34s %9.0f ns/run over %llu runs\n",
			       "sockops program (kernel stats)",
			       (double)(sns1 - sns0) / (scnt1 - scnt0),
			       (unsigned long long)(scnt1 - scnt0));
	}
	ret = 0;
	goto cleanup;
round_failed:
	fprintf(stderr, "connect_bench: a round failed (%d connects refused)\n", r->failed);
	goto cleanup;
fail:
	fprintf(stderr, "connect_bench: %s\n", err.msg);
cleanup:
	if (stats_fd >= 0)
		close(stats_fd);
	close(lfd);
	close(plain_lfd);
	ag_cgroup_enter(self_cg, 0, &err);
	ag_cgroup_destroy(plain_cg, &err);
	ag_kern_close(&k);
	ag_cgroup_destroy(in.cg_agents, &err);
	ag_kern_uninstall(&in, &err);
	ag_cgroup_destroy(in.cg_root, &err);
out:
	free(text);
	return ret;
}
