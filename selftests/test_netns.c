// SPDX-License-Identifier: GPL-2.0
/*
 * Agents in a network namespace of their own (agentgatectl run --netns),
 * against a real agentgated.  The agent is `sleep`; the test acts as the
 * agent by joining its cgroup and namespace (governed traffic), and as a
 * process the hooks never saw by joining the namespace alone: a raw
 * socket, a packet socket and a UDP flood then meet only the XDP guard on
 * the host side of the veth, which drops them and counts them for the
 * agent.  Every flood is bounded in count and time; the receiving end
 * counts what arrived, so "dropped" is checked at both ends.
 *
 * DNS: the test plays the instance's resolver on a loopback address of its
 * own, port 53, and the agent asks the daemon's relay on the gateway.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <netinet/udp.h>
#include <bpf/bpf.h>

#include "cgroup.h"
#include "guard.h"
#include "mcplib.h"
#include "netns.h"
#include "test.h"
#include "testlib.h"

#define FLOOD 2000  /* UDP datagrams */
#define FRAMES 20   /* raw and packet-socket packets */
#define FLOOD_MS 3000
#define QUIET_MS 300

static const char agent_json[] = "{\"name\": \"a\", \"tools\": [\"t/echo\"]}";

struct nsenv {
	struct mcp_env e;
	pid_t run;	  /* agentgatectl run --netns */
	int nsfd;	  /* the agent's network namespace */
	char run_cg[PATH_MAX];
	char ifname[IF_NAMESIZE];
	struct ag_netns ns;
	uint64_t agent_id;
};

/* Shared with children: what to do in the namespace, and what happened. */
struct job {
	int nsfd;
	struct exchange x;
	uint32_t agent_ip4, gateway_ip4; /* network order */
	uint16_t port;			 /* UDP sink, or the TCP echo server */
	uint8_t host_mac[ETH_ALEN];
	int ifindex; /* eth0, inside */
	int sent, replies, err;
	char echo[16];
	uint32_t dns_dst; /* network order: where dns_query sends */
	uint16_t dns_port;
	uint8_t answer[64];
	int answer_len;
};

/* A query for example.com A, recursion desired, id 0x4a47. */
static const uint8_t dns_q[] = { 0x4a, 0x47, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
				 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0,
				 0, 1, 0, 1 };

static int enter(struct job *j)
{
	if (setns(j->nsfd, CLONE_NEWNET)) {
		j->err = errno;
		return -1;
	}
	return 0;
}

/* Runs fn in a child that joined the namespace, and the agent's cgroup when cg is set. */
static int in_netns(const char *cg, int (*fn)(void *), struct job *j)
{
	int status;
	pid_t pid;

	if (cg)
		return run_in_cgroup(cg, 0, fn, j);
	pid = fork();
	if (pid == 0) {
		alarm(30);
		_exit(fn(j) & 0xff);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static int agent_mcp(void *arg)
{
	struct job *j = arg;

	return enter(j) ? 1 : agent_exchange(&j->x);
}

/* A plain TCP client to 127.0.0.1:port, as the agent knows it. */
static int agent_tcp(void *arg)
{
	struct job *j = arg;
	struct sockaddr_storage ss;
	socklen_t len = make_sockaddr("127.0.0.1", j->port, &ss);
	struct pollfd p;
	int fd;

	if (enter(j))
		return 1;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&ss, len) || send(fd, "ping", 4, 0) != 4) {
		j->err = errno;
		return 1;
	}
	p = (struct pollfd){ .fd = fd, .events = POLLIN };
	if (poll(&p, 1, 5000) == 1 && recv(fd, j->echo, sizeof(j->echo) - 1, 0) > 0)
		j->replies = 1;
	close(fd);
	return 0;
}

/* One DNS query to dns_dst:dns_port; the answer, if one comes within 3 s. */
static int dns_query(void *arg)
{
	struct job *j = arg;
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(j->dns_port),
				  .sin_addr.s_addr = j->dns_dst };
	struct pollfd p;
	int fd;

	if (enter(j))
		return 1;
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0) {
		j->err = errno;
		return 1;
	}
	if (sendto(fd, dns_q, sizeof(dns_q), 0, (struct sockaddr *)&to, sizeof(to)) ==
	    sizeof(dns_q))
		j->sent++;
	else
		j->err = errno;
	p = (struct pollfd){ .fd = fd, .events = POLLIN };
	if (poll(&p, 1, 3000) == 1)
		j->answer_len = (int)recv(fd, j->answer, sizeof(j->answer), 0);
	close(fd);
	return 0;
}

static uint16_t csum(const void *data, size_t len)
{
	const uint16_t *p = data;
	uint32_t sum = 0;

	for (; len > 1; len -= 2)
		sum += *p++;
	if (len)
		sum += *(const uint8_t *)p;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* ICMP echo requests to the gateway address from a raw socket; counts replies. */
static int raw_ping(void *arg)
{
	struct job *j = arg;
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr.s_addr = j->gateway_ip4 };
	char buf[256];
	int fd;

	if (enter(j))
		return 1;
	fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
	if (fd < 0) {
		j->err = errno;
		return 1;
	}
	for (int i = 0; i < FRAMES; i++) {
		struct icmphdr h = { .type = ICMP_ECHO };

		h.un.echo.id = htons(0x4147);
		h.un.echo.sequence = htons(i);
		h.checksum = csum(&h, sizeof(h));
		if (sendto(fd, &h, sizeof(h), 0, (struct sockaddr *)&to, sizeof(to)) == sizeof(h))
			j->sent++;
	}
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (poll(&p, 1, QUIET_MS) != 1 || recv(fd, buf, sizeof(buf), 0) <= 0)
			break;
		if (((struct icmphdr *)(buf + ((struct iphdr *)buf)->ihl * 4))->type ==
		    ICMP_ECHOREPLY)
			j->replies++;
	}
	close(fd);
	return 0;
}

/* Hand-made Ethernet frames, UDP to the sink, from an AF_PACKET socket on eth0. */
static int packet_send(void *arg)
{
	struct job *j = arg;
	struct sockaddr_ll ll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_IP),
				  .sll_halen = ETH_ALEN };
	struct {
		struct ethhdr eth;
		struct iphdr ip;
		struct udphdr udp;
		char payload[8];
	} __attribute__((packed)) f;
	int fd;

	if (enter(j))
		return 1;
	fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_IP));
	if (fd < 0) {
		j->err = errno;
		return 1;
	}
	ll.sll_ifindex = j->ifindex;
	memcpy(ll.sll_addr, j->host_mac, ETH_ALEN);
	memset(&f, 0, sizeof(f));
	memcpy(f.eth.h_dest, j->host_mac, ETH_ALEN);
	f.eth.h_proto = htons(ETH_P_IP);
	f.ip.version = 4;
	f.ip.ihl = 5;
	f.ip.ttl = 64;
	f.ip.protocol = IPPROTO_UDP;
	f.ip.tot_len = htons(sizeof(f) - sizeof(f.eth));
	f.ip.saddr = j->agent_ip4;
	f.ip.daddr = j->gateway_ip4;
	f.ip.check = csum(&f.ip, sizeof(f.ip));
	f.udp.source = htons(40000);
	f.udp.dest = htons(j->port);
	f.udp.len = htons(sizeof(f.udp) + sizeof(f.payload));
	for (int i = 0; i < FRAMES; i++)
		if (sendto(fd, &f, sizeof(f), 0, (struct sockaddr *)&ll, sizeof(ll)) == sizeof(f))
			j->sent++;
	close(fd);
	return 0;
}

/* FLOOD datagrams to the sink, or as many as FLOOD_MS allows. */
static int udp_flood(void *arg)
{
	struct job *j = arg;
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(j->port),
				  .sin_addr.s_addr = j->gateway_ip4 };
	struct timespec t0, t;
	int fd;

	if (enter(j))
		return 1;
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0) {
		j->err = errno;
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < FLOOD; i++) {
		if (sendto(fd, "flood", 5, 0, (struct sockaddr *)&to, sizeof(to)) == 5)
			j->sent++;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > FLOOD_MS)
			break;
	}
	close(fd);
	return 0;
}

/* Datagrams waiting at the sink until QUIET_MS of silence. */
static int drain(int fd)
{
	char buf[64];
	int n = 0;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (poll(&p, 1, QUIET_MS) != 1 || recv(fd, buf, sizeof(buf), 0) < 0)
			return n;
		n++;
	}
}

static uint64_t dropped(struct nsenv *n)
{
	struct ag_guard_info g;
	struct ag_err err;

	return ag_guard_info(&n->e.d.in, n->ifname, &g, &err) ? 0 : g.stats.dropped;
}

/* The netns_links entry of agent a, once run has registered it. */
static bool find_netns(struct nsenv *n)
{
	char path[PATH_MAX];
	bool found = false;
	__u32 key, *prev = NULL;
	int fd;

	ag_pin_path(&n->e.d.in, "netns_links", path, sizeof(path));
	fd = bpf_obj_get(path);
	if (fd < 0)
		return false;
	while (!found && !bpf_map_get_next_key(fd, prev, &key)) {
		prev = &key;
		found = !bpf_map_lookup_elem(fd, &key, &n->ns) &&
			n->ns.agent_cgroup_id == n->agent_id;
	}
	close(fd);
	if (found)
		snprintf(n->ifname, sizeof(n->ifname), AG_NETNS_IFPREFIX "%u", n->ns.slot);
	return found;
}

/* Starts `agentgatectl run --netns --agent a -- sleep 60`, waits for its agent. */
static int start_run(struct nsenv *n)
{
	char ctl[PATH_MAX], procs[PATH_MAX + 16], *text = NULL, ns[64];
	struct stat self, st;
	struct ag_err err;

	snprintf(ctl, sizeof(ctl), "%s/agentgatectl", testlib_build_dir());
	n->run = fork();
	if (n->run == 0) {
		execl(ctl, ctl, "--instance", n->e.d.in.name, "run", "--netns", "--agent", "a",
		      "--", "sleep", "60", (char *)NULL);
		_exit(127);
	}
	if (n->run < 0)
		return -1;
	snprintf(n->run_cg, sizeof(n->run_cg), "%s/a/run-%d", n->e.d.in.cg_agents, n->run);
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", n->run_cg);
	if (stat("/proc/self/ns/net", &self))
		return -1;
	/*
	 * A process is in the run cgroup before it is in the new namespace
	 * (clone3 puts it there first): wait until its namespace is not ours,
	 * or the jobs below would "enter" the host's and prove nothing.
	 */
	for (int i = 0; i < 500 && n->nsfd < 0; i++) {
		free(text);
		text = NULL;
		if (!ag_read_file(procs, 4096, &text, NULL, &err) && text[0]) {
			snprintf(ns, sizeof(ns), "/proc/%d/ns/net", atoi(text));
			if (!stat(ns, &st) && st.st_ino != self.st_ino)
				n->nsfd = open(ns, O_RDONLY | O_CLOEXEC);
		}
		if (n->nsfd < 0)
			usleep(20 * 1000);
	}
	free(text);
	/* The agent cgroup, not agents/: its id is what the hooks count by. */
	snprintf(procs, sizeof(procs), "%s/a", n->e.d.in.cg_agents);
	if (n->nsfd < 0 || ag_cgroup_id(procs, &n->agent_id, &err))
		return -1;
	/* run registers the namespace once its veth and guard are up. */
	for (int i = 0; i < 250; i++) {
		if (find_netns(n))
			return 0;
		usleep(20 * 1000);
	}
	return -1;
}

/* Ends the agent the way a service manager would; run's exit status, or -1. */
static int stop_run(struct nsenv *n)
{
	int status = 0, r;

	if (n->run <= 0)
		return -1;
	kill(n->run, SIGTERM);
	r = waitpid(n->run, &status, 0);
	n->run = -1;
	return r > 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static bool read_mac(const char *ifname, uint8_t mac[ETH_ALEN])
{
	char path[PATH_MAX], *text = NULL;
	struct ag_err err;
	unsigned int b[ETH_ALEN];
	bool ok;

	snprintf(path, sizeof(path), "/sys/class/net/%s/address", ifname);
	if (ag_read_file(path, 64, &text, NULL, &err))
		return false;
	ok = sscanf(text, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) == 6;
	for (int i = 0; ok && i < ETH_ALEN; i++)
		mac[i] = (uint8_t)b[i];
	free(text);
	return ok;
}

/* From a namespace the daemon knows nothing about: the port must look closed. */
struct probe {
	uint16_t port;
	int connected;
};

static int probe_connect(void *arg)
{
	struct probe *p = arg;
	struct sockaddr_storage ss;
	socklen_t len = make_sockaddr("10.212.0.1", p->port, &ss);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct pollfd pf = { .fd = fd, .events = POLLOUT };
	socklen_t elen = sizeof(int);
	int e = -1;

	if (connect(fd, (struct sockaddr *)&ss, len) && errno != EINPROGRESS)
		return 1;
	if (poll(&pf, 1, 1000) == 1 && !getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen))
		p->connected = e == 0;
	close(fd);
	return 0;
}

static void listener_not_exposed(struct nsenv *n)
{
	struct probe *p = shared_alloc(sizeof(*p));
	char veth[IF_NAMESIZE], *out = NULL;
	const char *ns = tnetns_add("ngx");
	uint16_t open_port;
	int lfd = tcp_listen("0.0.0.0", 0, &open_port);

	snprintf(veth, sizeof(veth), "agx%d", getpid() % 100000);
	if (!ASSERT_TRUE(ns && lfd >= 0, "namespace and control listener"))
		goto out;
	if (!ASSERT_EQ(run_capture(&out,
				   "ip link add %s type veth peer name eth0 netns %s && "
				   "ip addr add 10.212.0.1/30 dev %s && ip link set %s up && "
				   "ip -n %s addr add 10.212.0.2/30 dev eth0 && "
				   "ip -n %s link set eth0 up",
				   veth, ns, veth, veth, ns, ns),
		       0, "foreign veth"))
		goto out;
	p->port = open_port;
	ASSERT_EQ(tnetns_run(ns, probe_connect, p), 0, "probe ran");
	ASSERT_EQ(p->connected, 1, "another listener on 0.0.0.0 is reachable that way");
	p->port = n->e.d.port;
	p->connected = 0;
	ASSERT_EQ(tnetns_run(ns, probe_connect, p), 0, "probe ran");
	ASSERT_EQ(p->connected, 0, "the daemon's port is not");
out:
	free(out);
	out = NULL;
	if (run_capture(&out, "ip link del %s 2>/dev/null", veth) < 0)
		fprintf(stderr, "cleanup: ip link del %s failed\n", veth);
	free(out);
	if (ns)
		tnetns_del(ns);
	if (lfd >= 0)
		close(lfd);
}

/*
 * The resolver's side of one query sent by fn from the namespace: answers
 * what arrives within 3 s (the query with QR set, and another id if
 * wrong_id), then counts what else came.  Returns the number of queries seen.
 */
static int resolve_once(int resolver, const char *cg, int (*fn)(void *), struct job *j,
			bool wrong_id)
{
	struct sockaddr_in from;
	socklen_t flen = sizeof(from);
	uint8_t buf[512];
	struct pollfd p = { .fd = resolver, .events = POLLIN };
	int seen = 0, status;
	ssize_t len;
	pid_t pid;

	j->sent = j->err = 0;
	j->answer_len = -1;
	pid = fork();
	if (pid == 0)
		_exit(in_netns(cg, fn, j));
	if (poll(&p, 1, 3000) == 1 &&
	    (len = recvfrom(resolver, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen)) > 0) {
		seen++;
		if (len == sizeof(dns_q) && !memcmp(buf, dns_q, sizeof(dns_q))) {
			buf[2] |= 0x80; /* QR: an answer */
			buf[0] ^= wrong_id ? 0xff : 0;
			sendto(resolver, buf, len, 0, (struct sockaddr *)&from, flen);
		}
	}
	waitpid(pid, &status, 0);
	return seen + drain(resolver);
}

static void dns_relay(struct nsenv *n, struct job *j, int resolver, uint32_t resolver_ip4)
{
	struct sockaddr_in gw = { .sin_family = AF_INET, .sin_port = htons(AG_NETNS_DNS_PORT),
				  .sin_addr.s_addr = n->ns.gateway_ip4 };
	char path[PATH_MAX], *text = NULL, want[64], addr[INET_ADDRSTRLEN];
	struct ag_err err;
	uint64_t d0;
	int fd;

	inet_ntop(AF_INET, &n->ns.gateway_ip4, addr, sizeof(addr));
	snprintf(want, sizeof(want), "\nnameserver %s\n", addr);
	snprintf(path, sizeof(path), "%s/netns-%s.resolv.conf", n->e.d.in.run_dir, n->ifname);
	if (ASSERT_OK(ag_read_file(path, 4096, &text, NULL, &err), "the agent's resolv.conf"))
		ASSERT_STRHAS(text, want, "names the gateway");
	free(text);
	j->dns_dst = n->ns.gateway_ip4;
	j->dns_port = AG_NETNS_DNS_PORT;
	ASSERT_EQ(resolve_once(resolver, n->run_cg, dns_query, j, false), 1,
		  "the resolver saw exactly one query");
	ASSERT_EQ(j->sent, 1, "query sent to the gateway");
	ASSERT_EQ(j->answer_len, (int)sizeof(dns_q), "the answer reached the agent");
	ASSERT_TRUE(j->answer_len > 2 && !memcmp(j->answer, dns_q, 2), "with the query's id");
	ASSERT_TRUE(j->answer_len > 2 && (j->answer[2] & 0x80), "an answer (QR)");

	/* An answer with another id is not the answer: dropped, then the query times out. */
	ASSERT_EQ(resolve_once(resolver, n->run_cg, dns_query, j, true), 1, "one query");
	ASSERT_LT(j->answer_len, 1, "no answer reached the agent");
	ASSERT_TRUE(log_has(&n->e.d, 1000, "event=dns_refused", "reason=bad_answer", NULL),
		    "logged: bad answer");
	ASSERT_TRUE(log_has(&n->e.d, 6000, "event=dns_refused", "reason=timeout", NULL),
		    "logged: the query timed out in the relay");

	/* Straight to the resolver: the hooks send it to the relay on the gateway as well. */
	j->dns_dst = resolver_ip4;
	ASSERT_EQ(resolve_once(resolver, n->run_cg, dns_query, j, false), 1,
		  "a query to the resolver's address goes through the relay");
	ASSERT_EQ(j->answer_len, (int)sizeof(dns_q), "and is answered");

	/* Past the hooks, to the gateway but not the relay's port: XDP drops it. */
	d0 = dropped(n);
	j->dns_dst = n->ns.gateway_ip4;
	j->dns_port = AG_NETNS_DNS_PORT + 1;
	ASSERT_EQ(resolve_once(resolver, NULL, dns_query, j, false), 0,
		  "nothing reached the resolver");
	ASSERT_EQ(j->sent, 1, "sent from the namespace");
	ASSERT_GE(dropped(n) - d0, 1ull, "dropped in XDP, counted for a");

	/* From the host, not an agent's namespace: the relay refuses it. */
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	ASSERT_EQ(sendto(fd, dns_q, sizeof(dns_q), 0, (struct sockaddr *)&gw, sizeof(gw)),
		  (ssize_t)sizeof(dns_q), "query from the host");
	close(fd);
	ASSERT_TRUE(log_has(&n->e.d, 3000, "event=dns_refused", "reason=not_agent", NULL),
		    "refused and logged: not an agent");
	ASSERT_EQ(drain(resolver), 0, "nothing reached the resolver");
}

/* The gateway address in the instance's config map (network order), 0 if none. */
static uint32_t instance_gateway(struct tdaemon *d)
{
	struct ag_config cfg = { 0 };
	struct ag_kern k;
	struct ag_err err;

	if (ag_kern_open(&k, &d->in, &err))
		return 0;
	ag_kern_get_config(&k, &cfg, &err);
	ag_kern_close(&k);
	return cfg.netns_gateway_ip4;
}

/* tdaemon_start writes "resolvers": [], once: the daemon restarts with addr instead. */
static int set_resolver(struct tdaemon *d, const char *addr)
{
	char *text = NULL, *at, conf[4096];
	struct ag_err err;
	FILE *f;
	int n;

	if (ag_read_file(d->conf, sizeof(conf) / 2, &text, NULL, &err))
		return -1;
	at = strstr(text, "\"resolvers\": []");
	n = at ? snprintf(conf, sizeof(conf), "%.*s\"resolvers\": [\"%s\"]%s", (int)(at - text),
			  text, addr, at + strlen("\"resolvers\": []"))
	       : -1;
	free(text);
	if (n < 0 || n >= (int)sizeof(conf) || !(f = fopen(d->conf, "w")))
		return -1;
	n = fputs(conf, f) < 0;
	if (fclose(f) || n)
		return -1;
	tdaemon_kill(d, SIGTERM);
	return tdaemon_restart(d);
}

TEST(netns_agent)
{
	/* Not shared: fork() in tdaemon_start and start_run writes the pid fields. */
	static struct nsenv env;
	struct nsenv *n = &env;
	struct job *j = shared_alloc(sizeof(*j));
	int sink = -1, resolver = -1;
	uint16_t sink_port;
	/* A loopback address of this run's own, so port 53 is free there. */
	uint32_t resolver_ip4 = htonl(0x7f410000u | (getpid() & 0xfffe) | 1);
	char raddr[INET_ADDRSTRLEN];

	n->run = -1;
	n->nsfd = -1;
	inet_ntop(AF_INET, &resolver_ip4, raddr, sizeof(raddr));
	resolver = udp_bind(raddr, AG_NETNS_DNS_PORT, NULL);
	if (!ASSERT_GE(resolver, 0, "resolver socket"))
		goto out;
	if (!ASSERT_OK(env_start(&n->e, "netns", REPLY_JSON, agent_json), "environment") ||
	    !ASSERT_OK(set_resolver(&n->e.d, raddr), "daemon restarted with the resolver"))
		goto out;
	if (!ASSERT_OK(start_run(n), "agent started in its namespace"))
		goto out;
	j->nsfd = n->nsfd;
	j->agent_ip4 = n->ns.agent_ip4;
	j->gateway_ip4 = n->ns.gateway_ip4;
	sink = udp_bind("0.0.0.0", 0, &sink_port);

	if (test__start_subtest("setup")) {
		struct ag_guard_info g;
		struct ag_err err;

		ASSERT_EQ(n->ns.gateway_ip4, instance_gateway(&n->e.d), "the instance's gateway");
		ASSERT_EQ(ntohl(n->ns.gateway_ip4) & AG_NETNS_MASK, AG_NETNS_GATEWAY_BASE,
			  "in the gateways' range, not the agents'");
		ASSERT_EQ(n->ns.agent_ip4, htonl(AG_NETNS_AGENT(n->ns.slot)), "agent address");
		if (ASSERT_OK(ag_guard_info(&n->e.d.in, n->ifname, &g, &err), "guard")) {
			ASSERT_TRUE(g.attached, "XDP on the host-side veth");
			ASSERT_TRUE(!strcmp(g.mode, "native") || !strcmp(g.mode, "skb"), "mode");
			ASSERT_EQ(g.cfg.agent_cgroup_id, n->agent_id, "guard names the agent");
		}
	}
	if (test__start_subtest("mcp_call")) {
		int before = tool_nseen(&n->e.tool);

		post(&j->x, n->e.orig_port, "",
		     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
		     "\"echo\",\"arguments\":{\"text\":\"hi\"}}}");
		ASSERT_EQ(in_netns(n->run_cg, agent_mcp, j), 0, "agent ran");
		ASSERT_STRHAS(j->x.response, "\"served\"", "the tool's result reached the agent");
		ASSERT_EQ(tool_nseen(&n->e.tool), before + 1, "the call reached the tool server");
	}
	if (test__start_subtest("tcp_relayed")) {
		int lfd = tcp_listen("127.0.0.1", 0, &j->port), cfd;
		pid_t pid;
		char buf[8] = "";

		j->replies = 0;
		memset(j->echo, 0, sizeof(j->echo));
		/* The server answers from the parent while the agent waits. */
		pid = fork();
		if (pid == 0)
			_exit(in_netns(n->run_cg, agent_tcp, j));
		cfd = accept_timeout(lfd, 5000);
		if (ASSERT_GE(cfd, 0, "relayed connection arrived")) {
			ASSERT_EQ(recv(cfd, buf, 4, MSG_WAITALL), 4, "agent's bytes");
			ASSERT_EQ(send(cfd, "pong", 4, 0), 4, "answer");
			close(cfd);
		}
		waitpid(pid, NULL, 0);
		ASSERT_STREQ(j->echo, "pong", "answer reached the agent");
		ASSERT_TRUE(log_has(&n->e.d, 3000, "event=conn", "agent=\"a\"", "result=ok", NULL),
			    "daemon relayed it for agent a");
		close(lfd);
	}
	if (test__start_subtest("raw_socket_dropped")) {
		uint64_t d0 = dropped(n);

		j->sent = j->replies = 0;
		ASSERT_EQ(in_netns(NULL, raw_ping, j), 0, "raw socket in the namespace");
		ASSERT_EQ(j->sent, FRAMES, "sent");
		ASSERT_EQ(j->replies, 0, "no echo reply: the requests never arrived");
		ASSERT_GE(dropped(n) - d0, (uint64_t)FRAMES, "dropped in XDP, counted for a");
	}
	if (test__start_subtest("packet_socket_dropped")) {
		uint64_t d0 = dropped(n);

		j->sent = 0;
		j->port = sink_port;
		j->ifindex = 2; /* eth0: the namespace's only interface after lo */
		if (ASSERT_TRUE(read_mac(n->ifname, j->host_mac), "host-side MAC")) {
			ASSERT_EQ(in_netns(NULL, packet_send, j), 0, "packet socket in the namespace");
			ASSERT_EQ(j->sent, FRAMES, "sent");
			ASSERT_EQ(drain(sink), 0, "nothing reached the sink");
			ASSERT_GE(dropped(n) - d0, (uint64_t)FRAMES, "dropped in XDP, counted for a");
		}
	}
	if (test__start_subtest("udp_flood_dropped")) {
		uint64_t d0 = dropped(n);

		j->sent = 0;
		j->port = sink_port;
		ASSERT_EQ(in_netns(NULL, udp_flood, j), 0, "UDP socket in the namespace");
		ASSERT_GT(j->sent, 0, "sent");
		ASSERT_EQ(drain(sink), 0, "nothing reached the sink");
		ASSERT_GE(dropped(n) - d0, (uint64_t)j->sent, "every datagram dropped, counted");
	}
	if (test__start_subtest("dns_relay"))
		dns_relay(n, j, resolver, resolver_ip4);
	if (test__start_subtest("listener_not_exposed"))
		listener_not_exposed(n);
	if (test__start_subtest("teardown")) {
		struct ag_guard_info g;
		struct ag_err err;
		char ifname[IF_NAMESIZE];

		memcpy(ifname, n->ifname, sizeof(ifname));
		ASSERT_EQ(stop_run(n), 128 + SIGTERM, "run exits with its agent's status");
		ASSERT_EQ(if_nametoindex(ifname), 0u, "veth gone");
		ASSERT_LT(ag_guard_info(&n->e.d.in, ifname, &g, &err), 0, "guard unpinned");
		ASSERT_FALSE(find_netns(n), "namespace unregistered");
	}
out:
	stop_run(n);
	if (n->nsfd >= 0)
		close(n->nsfd);
	if (sink >= 0)
		close(sink);
	if (resolver >= 0)
		close(resolver);
	env_stop(&n->e);
}

/* The resolver's side of one query: answered with QR set; 1 if one came within 3 s. */
static int answer_one(int resolver)
{
	struct sockaddr_in from;
	socklen_t flen = sizeof(from);
	struct pollfd p = { .fd = resolver, .events = POLLIN };
	uint8_t buf[512];
	ssize_t len;

	if (poll(&p, 1, 3000) != 1 ||
	    (len = recvfrom(resolver, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen)) <= 2)
		return 0;
	buf[2] |= 0x80;
	sendto(resolver, buf, len, 0, (struct sockaddr *)&from, flen);
	return 1;
}

/*
 * Two instances, a namespaced agent each, both up at once: each instance
 * has a gateway address of its own with its relay bound there, and each
 * agent's DNS query (sent at the same moment) and MCP call reach its own
 * instance's daemon, resolver and tool server only.
 */
TEST(netns_two_instances)
{
	static struct nsenv env[2];
	static const char *const sfx[2] = { "ns2a", "ns2b" };
	struct job *j[2] = { shared_alloc(sizeof(*j[0])), shared_alloc(sizeof(*j[1])) };
	int resolver[2] = { -1, -1 }, seen[2], before[2];
	char raddr[INET_ADDRSTRLEN];
	uint32_t rip4;
	pid_t pid[2];

	for (int i = 0; i < 2; i++) {
		env[i].run = env[i].nsfd = -1;
		/* A loopback address of this run's own per instance, so port 53 is free there. */
		rip4 = htonl(0x7f420000u | (uint32_t)(getpid() & 0x3fff) << 2 | (uint32_t)(i + 1));
		inet_ntop(AF_INET, &rip4, raddr, sizeof(raddr));
		resolver[i] = udp_bind(raddr, AG_NETNS_DNS_PORT, NULL);
		if (!ASSERT_GE(resolver[i], 0, "resolver socket") ||
		    !ASSERT_OK(env_start(&env[i].e, sfx[i], REPLY_JSON, agent_json), "instance") ||
		    !ASSERT_OK(set_resolver(&env[i].e.d, raddr), "restarted with its resolver") ||
		    !ASSERT_OK(start_run(&env[i]), "agent started in its namespace"))
			goto out;
		j[i]->nsfd = env[i].nsfd;
		j[i]->dns_dst = env[i].ns.gateway_ip4;
		j[i]->dns_port = AG_NETNS_DNS_PORT;
		j[i]->answer_len = -1;
	}
	ASSERT_NEQ(env[0].ns.gateway_ip4, env[1].ns.gateway_ip4, "a gateway address each");
	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(env[i].ns.gateway_ip4, instance_gateway(&env[i].e.d),
			  "the one in the instance's config");
		ASSERT_FALSE(log_has(&env[i].e.d, 0, "dns_relay=off", NULL), "its relay is bound");
	}

	/* Both queries in flight at once, each answered by its instance's resolver only. */
	for (int i = 0; i < 2; i++) {
		pid[i] = fork();
		if (pid[i] == 0)
			_exit(in_netns(env[i].run_cg, dns_query, j[i]));
	}
	for (int i = 0; i < 2; i++)
		seen[i] = pid[i] > 0 ? answer_one(resolver[i]) : 0;
	for (int i = 0; i < 2; i++) {
		if (pid[i] > 0)
			waitpid(pid[i], NULL, 0);
		ASSERT_EQ(seen[i], 1, "the instance's resolver got its agent's query");
		ASSERT_EQ(j[i]->answer_len, (int)sizeof(dns_q), "the answer reached the agent");
		ASSERT_EQ(drain(resolver[i]), 0, "and nothing else came");
	}

	/* Each agent's MCP call goes to its own instance's daemon and tool server. */
	for (int i = 0; i < 2; i++)
		before[i] = tool_nseen(&env[i].e.tool);
	for (int i = 0; i < 2; i++) {
		post(&j[i]->x, env[i].e.orig_port, "",
		     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
		     "\"echo\",\"arguments\":{\"text\":\"hi\"}}}");
		ASSERT_EQ(in_netns(env[i].run_cg, agent_mcp, j[i]), 0, "agent ran");
		ASSERT_STRHAS(j[i]->x.response, "\"served\"",
			      "the tool's result reached the agent");
		ASSERT_EQ(tool_nseen(&env[i].e.tool), before[i] + 1, "its own tool server saw it");
		ASSERT_EQ(tool_nseen(&env[1 - i].e.tool), before[1 - i], "the other's did not");
		before[i]++;
	}
out:
	for (int i = 0; i < 2; i++) {
		stop_run(&env[i]);
		if (env[i].nsfd >= 0)
			close(env[i].nsfd);
		if (resolver[i] >= 0)
			close(resolver[i]);
		env_stop(&env[i].e);
	}
}
