// SPDX-License-Identifier: GPL-2.0
/*
 * What the hooks cost an agent's connect, and the daemon per connection,
 * measured in one run:
 *
 *  1. end to end, with the kernel's BPF run-time accounting off (it adds
 *     two clock reads to every program run): connect()+close() per second
 *     with no program at all (a client and a listener outside the
 *     instance), from an agent (redirected to the listener of this
 *     process, which serves as the daemon) and from an agent with a quota
 *     that never refuses.  The variants take turns within each round, in
 *     an order that reverses every round, so drift of the machine hits all
 *     of them alike; the cost is the median of the per-round differences
 *     with its distribution-free 95% interval.
 *  2. in the kernel, with the accounting on: BPF_STATS_RUN_TIME of every
 *     program of the instance, per run and per redirected connect.
 *  3. what the daemon pays per accepted connection to learn its origin
 *     (ag_kern_origin), on an agent's connection held open.
 *  4. what charging one tool call to a call budget costs the daemon: a
 *     quota_charge run (BPF_PROG_TEST_RUN) on the quota agent's entry.
 *
 *	connect_bench [-n CONNECTS_PER_ROUND] [-r ROUNDS]
 *
 * With two CPUs or more the connecting child runs on the last one and this
 * process, which accepts, on the first: neither then waits for the other's
 * time slice, and the figures move far less from run to run.
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
#include <sched.h>
#include <bpf/bpf.h>

#include "cgroup.h"
#include "kern.h"
#include "spawn.h"

#define MAX_ROUNDS 201

enum variant { PLAIN, AGENT, QUOTA, NR_VARIANTS };

static const char *const variant_names[NR_VARIANTS] = {
	[PLAIN] = "no programs (outside instance)",
	[AGENT] = "agent (redirected)",
	[QUOTA] = "agent with a quota (redirected)",
};

struct round {
	uint64_t ns;
	int failed;
};

struct target {
	char cgroup[PATH_MAX];
	int lfd;
	uint16_t port; /* what the child connects to */
};

/*
 * Each connection is reset rather than closed: no TIME_WAIT piles up, so
 * the kernel's search for a free source port costs every round and every
 * variant the same, however many connects came before.
 */
static int connect_loop(uint16_t port, int n, struct round *r)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct linger reset = { .l_onoff = 1, .l_linger = 0 };
	uint64_t start;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	start = ag_now_ns();
	for (int i = 0; i < n; i++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset)) ||
		    connect(fd, (struct sockaddr *)&sin, sizeof(sin)))
			r->failed++;
		if (fd >= 0)
			close(fd);
	}
	r->ns = ag_now_ns() - start;
	return 0;
}

static int nr_cpus;

static void pin_to(int cpu)
{
	cpu_set_t set;

	if (nr_cpus < 2)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

/* One round in a child created inside the target's cgroup; the parent drains accepts. */
static int run_round(const struct target *t, int n, struct round *r)
{
	int cgfd = open(t->cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC), status;
	pid_t pid;

	if (cgfd < 0)
		return -errno;
	memset(r, 0, sizeof(*r));
	pid = ag_clone_into_cgroup(cgfd);
	if (pid == 0) {
		pin_to(nr_cpus - 1);
		_exit(connect_loop(t->port, n, r));
	}
	close(cgfd);
	if (pid < 0)
		return pid;
	for (;;) {
		struct pollfd p = { .fd = t->lfd, .events = POLLIN };
		int fd;

		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
		if (poll(&p, 1, 10) <= 0)
			continue;
		while ((fd = accept4(t->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
			close(fd);
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return -EIO;
	return r->failed ? -ECONNREFUSED : 0;
}

/* An agent's connection that stays open until the parent has measured its claims. */
static int hold_connection(const struct target *t, int *done_fd)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(t->port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	char byte;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)))
		return 1;
	return read(*done_fd, &byte, 1) == 1 ? 0 : 1;
}

/*
 * What agentgated pays per accepted connection to learn who is calling
 * (ag_kern_origin: the peer's address, and origin_claim run with
 * BPF_PROG_TEST_RUN), in ns per claim; 0 on failure.
 */
static double claim_ns(const struct ag_kern *k, const struct target *t, int n)
{
	int cgfd = open(t->cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC), done[2], fd = -1, ok = 0;
	struct ag_origin o;
	uint64_t start = 0, end = 0;
	pid_t pid;

	if (cgfd < 0 || pipe2(done, O_CLOEXEC)) {
		if (cgfd >= 0)
			close(cgfd);
		return 0;
	}
	pid = ag_clone_into_cgroup(cgfd);
	if (pid == 0)
		_exit(hold_connection(t, &done[0]));
	close(cgfd);
	if (pid > 0) {
		struct pollfd p = { .fd = t->lfd, .events = POLLIN };

		if (poll(&p, 1, 2000) == 1)
			fd = accept4(t->lfd, NULL, NULL, SOCK_CLOEXEC);
		start = ag_now_ns();
		for (int i = 0; fd >= 0 && i < n; i++)
			ok += !ag_kern_origin(k, fd, &o);
		end = ag_now_ns();
		if (write(done[1], "x", 1) != 1)
			kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	if (fd >= 0)
		close(fd);
	close(done[0]);
	close(done[1]);
	return ok == n ? (double)(end - start) / n : 0;
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

struct prog_run {
	uint64_t ns, cnt;
};

/* Run time and count of every program of the instance, in ag_progs order. */
static void prog_runs(const struct ag_instance *in, struct prog_run out[AG_PROG_COUNT])
{
	struct ag_link_status links[AG_PROG_COUNT];

	ag_kern_links(in, links);
	for (int i = 0; i < AG_PROG_COUNT; i++) {
		struct bpf_prog_info info;
		__u32 len = sizeof(info);
		int fd = bpf_prog_get_fd_by_id(links[i].prog_id);

		memset(&out[i], 0, sizeof(out[i]));
		if (fd < 0)
			continue;
		memset(&info, 0, sizeof(info));
		if (!bpf_obj_get_info_by_fd(fd, &info, &len)) {
			out[i].ns = info.run_time_ns;
			out[i].cnt = info.run_cnt;
		}
		close(fd);
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(v[0]), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/*
 * The distribution-free 95% interval of a median from sorted samples: the
 * k-th smallest and k-th largest, k the largest with P(Binomial(n, 1/2) < k)
 * <= 2.5%.  0 when n is too small for one (fewer than 6 samples).
 */
static int median_ci_rank(int n)
{
	double p = 1, cdf = 0, coef = 1;
	int k = 0;

	for (int i = 0; i < n; i++)
		p /= 2;
	for (int i = 0; i < n; i++) {
		cdf += coef * p;
		if (cdf > 0.025)
			break;
		k = i + 1;
		coef = coef * (n - i) / (i + 1);
	}
	return k;
}

/* Median of per-round (b - a) in us per connect, and its interval. */
static void print_diff(const char *what, const double *a, const double *b, int rounds)
{
	double d[MAX_ROUNDS];
	int k = median_ci_rank(rounds);
	double m;

	for (int i = 0; i < rounds; i++)
		d[i] = b[i] - a[i];
	m = median(d, rounds);
	if (k > 0)
		printf("  %-34s %+8.2f us/connect (95%% interval %+.2f .. %+.2f)\n", what, m,
		       d[k - 1], d[rounds - k]);
	else
		printf("  %-34s %+8.2f us/connect (too few rounds for an interval)\n", what, m);
}

int main(int argc, char **argv)
{
	int n = 5000, rounds = 31, opt, stats_fd = -1, ret = 1;
	char name[AG_INSTANCE_MAX], self_cg[PATH_MAX];
	double us[NR_VARIANTS][MAX_ROUNDS], tmp[MAX_ROUNDS];
	struct prog_run before[AG_PROG_COUNT], after[AG_PROG_COUNT];
	struct target t[NR_VARIANTS];
	uint64_t quota_id = 0, charge_ns, connects;
	double claim;
	struct ag_charge charge;
	struct round *r =
	    mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct ag_instance in;
	struct ag_config cfg = { 0 };
	struct ag_kern k = { 0 };
	struct ag_err err;
	uint32_t lo = htonl(INADDR_LOOPBACK);
	uint16_t port;
	char *text = NULL, *v2;

	while ((opt = getopt(argc, argv, "n:r:")) != -1) {
		if (opt == 'n')
			n = atoi(optarg);
		else if (opt == 'r')
			rounds = atoi(optarg);
		else
			return 2;
	}
	if (n < 100 || n > 1000000 || rounds < 1 || rounds > MAX_ROUNDS) {
		fprintf(stderr, "connect_bench: -n 100..1000000, -r 1..%d\n", MAX_ROUNDS);
		return 2;
	}
	if (r == MAP_FAILED) {
		perror("connect_bench: mmap");
		return 1;
	}
	for (int v = 0; v < NR_VARIANTS; v++)
		t[v].lfd = -1;
	nr_cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
	pin_to(0);
	snprintf(name, sizeof(name), "agbench-%d", getpid());
	if (ag_instance_init(&in, name, NULL, &err) || ag_bpffs_ensure(&err) ||
	    ag_cgroup_mkdir(in.cg_root, &err) || ag_cgroup_mkdir(in.cg_agents, &err) ||
	    ag_cgroup_mkdir(in.cg_daemon, &err)) {
		fprintf(stderr, "connect_bench: %s\n", err.msg);
		return 1;
	}
	snprintf(t[AGENT].cgroup, PATH_MAX, "%s/bench", in.cg_agents);
	snprintf(t[QUOTA].cgroup, PATH_MAX, "%s/quota", in.cg_agents);
	/* Outside the instance: not even sockops (attached at its root) runs there. */
	snprintf(t[PLAIN].cgroup, PATH_MAX, "%s-plain", in.cg_root);
	ag_cgroup_mkdir(t[PLAIN].cgroup, &err);
	/* This process plays the daemon: in its cgroup, owning the listener. */
	if (ag_read_file("/proc/self/cgroup", 4096, &text, NULL, &err) ||
	    !(v2 = strstr(text, "0::"))) {
		fprintf(stderr, "connect_bench: cannot read /proc/self/cgroup\n");
		goto out;
	}
	snprintf(self_cg, sizeof(self_cg), "%s%.*s", in.cgroup2, (int)strcspn(v2 + 3, "\n"),
		 v2 + 3);
	/* The baseline's listener is created here, before joining the daemon's cgroup. */
	t[PLAIN].lfd = listen_marked(0, &t[PLAIN].port);
	if (t[PLAIN].lfd < 0 || ag_cgroup_enter(in.cg_daemon, 0, &err))
		goto fail;
	cfg.mark = 0x41470000 | (getpid() & 0xffff);
	t[AGENT].lfd = listen_marked(cfg.mark, &port);
	if (t[AGENT].lfd < 0) {
		fprintf(stderr, "connect_bench: listener: %s\n", strerror(errno));
		goto out;
	}
	/* Agents connect to 127.0.0.1:9, where nothing listens: redirected to the listener. */
	t[AGENT].port = t[QUOTA].port = 9;
	t[QUOTA].lfd = t[AGENT].lfd;
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
		    ag_quota_set(&k, quota_id, &l, &err) || ag_kern_serving(&k, true, &err))
			goto fail;
	}

	/* Warm-up, then the rounds: ABC, CBA, ABC, ... */
	for (int v = 0; v < NR_VARIANTS; v++)
		if (run_round(&t[v], n / 10, r))
			goto round_failed;
	for (int i = 0; i < rounds; i++) {
		for (int j = 0; j < NR_VARIANTS; j++) {
			int v = i % 2 ? NR_VARIANTS - 1 - j : j;

			if (run_round(&t[v], n, r))
				goto round_failed;
			us[v][i] = (double)r->ns / n / 1000;
		}
	}

	/* The kernel's own accounting, in rounds of the plain agent only. */
	stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
	if (stats_fd < 0)
		fprintf(stderr, "connect_bench: BPF run-time stats unavailable: %s\n",
			strerror(errno));
	prog_runs(&in, before);
	connects = 0;
	for (int i = 0; i < (rounds + 1) / 2; i++) {
		if (run_round(&t[AGENT], n, r))
			goto round_failed;
		connects += n;
	}
	prog_runs(&in, after);

	claim = claim_ns(&k, &t[AGENT], n);
	/* What the daemon adds per tool call of an agent with a call budget. */
	charge_ns = ag_now_ns();
	for (int i = 0; i < n; i++)
		if (ag_quota_charge(&k, quota_id, &charge, &err))
			goto fail;
	charge_ns = ag_now_ns() - charge_ns;

	printf("connect_bench: %d rounds x %d connect()+close() on 127.0.0.1, BPF stats off\n",
	       rounds, n);
	for (int v = 0; v < NR_VARIANTS; v++) {
		double m;

		memcpy(tmp, us[v], sizeof(double) * rounds);
		m = median(tmp, rounds);
		printf("  %-34s %9.0f connects/s  %7.2f us/connect (median round)\n",
		       variant_names[v], 1e6 / m, m);
	}
	print_diff("hooks, end to end", us[PLAIN], us[AGENT], rounds);
	print_diff("quota on top of that", us[AGENT], us[QUOTA], rounds);
	if (stats_fd >= 0) {
		double total = 0;

		printf("kernel BPF run time, %llu redirected connects, stats on:\n",
		       (unsigned long long)connects);
		for (int i = 0; i < AG_PROG_COUNT; i++) {
			uint64_t runs = after[i].cnt - before[i].cnt;
			double ns = (double)(after[i].ns - before[i].ns);

			if (!runs)
				continue;
			printf("  %-14s %6.0f ns/run  %5.2f runs/connect  %6.0f ns/connect\n",
			       ag_progs[i].name, ns / runs, (double)runs / connects, ns / connects);
			total += ns / connects;
		}
		printf("  %-14s %44.0f ns/connect\n", "all programs", total);
	}
	if (claim > 0)
		printf("  %-34s %9.2f us/connection (%d claims)\n", "origin claim (agentgated)",
		       claim / 1000, n);
	else
		fprintf(stderr, "connect_bench: the origin claim failed\n");
	printf("  %-34s %9.2f us/call (BPF_PROG_TEST_RUN, %d calls)\n",
	       "call budget charge (quota_charge)", (double)charge_ns / n / 1000, n);
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
	close(t[AGENT].lfd);
	close(t[PLAIN].lfd);
	ag_cgroup_enter(self_cg, 0, &err);
	ag_cgroup_destroy(t[PLAIN].cgroup, &err);
	ag_kern_close(&k);
	ag_cgroup_destroy(in.cg_agents, &err);
	ag_kern_uninstall(&in, &err);
	ag_cgroup_destroy(in.cg_root, &err);
out:
	free(text);
	return ret;
}
