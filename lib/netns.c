// SPDX-License-Identifier: GPL-2.0
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/if_link.h>
#include <linux/net_namespace.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <bpf/bpf.h>

#include "fileio.h"
#include "guard.h"
#include "netns.h"

#include <dirent.h>

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

/* One rtnetlink request: the largest is a veth with its peer, well below this. */
struct nlreq {
	struct nlmsghdr h;
	char buf[512];
};

static struct rtattr *nl_put(struct nlreq *r, int type, const void *data, size_t len)
{
	struct rtattr *a = (struct rtattr *)((char *)&r->h + NLMSG_ALIGN(r->h.nlmsg_len));
	size_t need = NLMSG_ALIGN(r->h.nlmsg_len) + RTA_SPACE(len);

	/* Sizes are fixed by the callers: overflowing is a bug, not input. */
	if (need > sizeof(*r))
		return NULL;
	a->rta_type = type;
	a->rta_len = RTA_LENGTH(len);
	if (len)
		memcpy(RTA_DATA(a), data, len);
	r->h.nlmsg_len = need;
	return a;
}

static void nl_end(struct nlreq *r, struct rtattr *nest)
{
	nest->rta_len = (char *)&r->h + r->h.nlmsg_len - (char *)nest;
}

static void nl_init(struct nlreq *r, int type, int flags, const void *hdr, size_t len)
{
	memset(r, 0, sizeof(*r));
	r->h.nlmsg_len = NLMSG_LENGTH(len);
	r->h.nlmsg_type = type;
	r->h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	memcpy(NLMSG_DATA(&r->h), hdr, len);
}

static int nl_open(void)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);

	return fd < 0 ? -errno : fd;
}

/*
 * Sends one request, returns its ack's error (0 or a negative errno); a
 * reply that comes before the ack goes to on_reply, when given.
 */
static int nl_ask(int fd, struct nlreq *r, void (*on_reply)(const struct nlmsghdr *h, void *arg),
		  void *arg)
{
	char buf[1024];
	ssize_t n;

	if (send(fd, &r->h, r->h.nlmsg_len, 0) < 0)
		return -errno;
	for (;;) {
		n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n);
		     h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_ERROR)
				return ((struct nlmsgerr *)NLMSG_DATA(h))->error;
			if (on_reply)
				on_reply(h, arg);
		}
	}
}

static int nl_talk(int fd, struct nlreq *r)
{
	return nl_ask(fd, r, NULL, NULL);
}

static void nsid_reply(const struct nlmsghdr *h, void *arg)
{
	const struct rtattr *a = (const struct rtattr *)((const char *)NLMSG_DATA(h) +
							 NLMSG_ALIGN(sizeof(struct rtgenmsg)));
	int len = (int)h->nlmsg_len - NLMSG_LENGTH(NLMSG_ALIGN(sizeof(struct rtgenmsg)));

	if (h->nlmsg_type != RTM_NEWNSID)
		return;
	for (; RTA_OK(a, len); a = RTA_NEXT(a, len))
		if (a->rta_type == NETNSA_NSID && RTA_PAYLOAD(a) == sizeof(int32_t))
			memcpy(arg, RTA_DATA(a), sizeof(int32_t));
}

/*
 * The id the root namespace (fd's) gives the namespace of nsfd, allocated
 * if it has none: the daemon names the agent's namespace by it when it
 * looks the agent's socket up (origin_claim).
 */
static int netns_id(int fd, int nsfd, int32_t *nsid)
{
	struct rtgenmsg g = { .rtgen_family = AF_UNSPEC };
	int32_t any = -1;
	struct nlreq r;
	int ret;

	nl_init(&r, RTM_NEWNSID, 0, &g, sizeof(g));
	nl_put(&r, NETNSA_FD, &nsfd, sizeof(nsfd));
	nl_put(&r, NETNSA_NSID, &any, sizeof(any));
	ret = nl_talk(fd, &r);
	if (ret && ret != -EEXIST)
		return ret;
	nl_init(&r, RTM_GETNSID, 0, &g, sizeof(g));
	nl_put(&r, NETNSA_FD, &nsfd, sizeof(nsfd));
	*nsid = -1;
	ret = nl_ask(fd, &r, nsid_reply, nsid);
	return ret ? ret : *nsid >= 0 ? 0 : -ENOENT;
}

static int link_up(int fd, int ifindex)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC,
				 .ifi_index = ifindex,
				 .ifi_flags = IFF_UP,
				 .ifi_change = IFF_UP };
	struct nlreq r;

	nl_init(&r, RTM_NEWLINK, 0, &ifi, sizeof(ifi));
	return nl_talk(fd, &r);
}

static int link_del(int fd, int ifindex)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC, .ifi_index = ifindex };
	struct nlreq r;

	nl_init(&r, RTM_DELLINK, 0, &ifi, sizeof(ifi));
	return nl_talk(fd, &r);
}

/* local/32 on ifindex with peer/32 at the other end (addresses in network order). */
static int addr_p2p(int fd, int ifindex, uint32_t local, uint32_t peer)
{
	struct ifaddrmsg ifa = { .ifa_family = AF_INET,
				 .ifa_prefixlen = 32,
				 .ifa_scope = RT_SCOPE_LINK,
				 .ifa_index = ifindex };
	struct nlreq r;

	nl_init(&r, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &ifa, sizeof(ifa));
	nl_put(&r, IFA_LOCAL, &local, 4);
	nl_put(&r, IFA_ADDRESS, &peer, 4);
	return nl_talk(fd, &r);
}

static int default_route(int fd, int ifindex, uint32_t gateway)
{
	struct rtmsg rt = { .rtm_family = AF_INET,
			    .rtm_table = RT_TABLE_MAIN,
			    .rtm_protocol = RTPROT_STATIC,
			    .rtm_scope = RT_SCOPE_UNIVERSE,
			    .rtm_type = RTN_UNICAST,
			    .rtm_flags = RTNH_F_ONLINK };
	struct nlreq r;

	nl_init(&r, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &rt, sizeof(rt));
	nl_put(&r, RTA_GATEWAY, &gateway, 4);
	nl_put(&r, RTA_OIF, &ifindex, 4);
	return nl_talk(fd, &r);
}

/*
 * "eth0" in the namespace fd lives in, its peer `peer` in the namespace of
 * peer_nsfd: made from inside, so the peer's name is claimed atomically
 * where it matters, in the root namespace.
 */
static int veth_add(int fd, const char *peer, int peer_nsfd)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	struct rtattr *info, *data, *p;
	struct nlreq r;

	nl_init(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof(ifi));
	nl_put(&r, IFLA_IFNAME, "eth0", sizeof("eth0"));
	info = nl_put(&r, IFLA_LINKINFO, NULL, 0);
	nl_put(&r, IFLA_INFO_KIND, "veth", sizeof("veth"));
	data = nl_put(&r, IFLA_INFO_DATA, NULL, 0);
	p = nl_put(&r, VETH_INFO_PEER, &ifi, sizeof(ifi));
	nl_put(&r, IFLA_IFNAME, peer, strlen(peer) + 1);
	if (!nl_put(&r, IFLA_NET_NS_FD, &peer_nsfd, sizeof(peer_nsfd)))
		return -EMSGSIZE;
	nl_end(&r, p);
	nl_end(&r, data);
	nl_end(&r, info);
	return nl_talk(fd, &r);
}

/*
 * Inside the new namespace: lo up, the veth claimed (trying slots from a
 * per-process start, so concurrent runs rarely collide), eth0 addressed
 * with a default route via the gateway (r->ns.gateway_ip4, set).  A failure leaves nothing the
 * namespace's end does not take with it when the namespace goes.
 */
static int inside_setup(int root_nsfd, struct ag_netns_run *r, struct ag_err *err)
{
	uint32_t start = (uint32_t)getpid() * 2654435761u % AG_NETNS_SLOTS;
	int fd = nl_open(), ret, eth0;
	socklen_t len = sizeof(r->ns.cookie);
	uint32_t slot = 0;

	if (fd < 0)
		return ag_errf(err, -fd, "netns: netlink: %s", strerror(-fd));
	if ((ret = link_up(fd, 1))) {
		ag_errf(err, -ret, "netns: lo up: %s", strerror(-ret));
		goto out;
	}
	for (uint32_t i = 0; i < AG_NETNS_SLOTS; i++) {
		slot = (start + i) % AG_NETNS_SLOTS;
		snprintf(r->ifname, sizeof(r->ifname), AG_NETNS_IFPREFIX "%u", slot);
		ret = veth_add(fd, r->ifname, root_nsfd);
		if (ret != -EEXIST)
			break;
	}
	if (ret) {
		ag_errf(err, -ret, "netns: veth %s: %s%s", r->ifname, strerror(-ret),
			ret == -EEXIST ? " (every slot is taken)" : "");
		goto out;
	}
	r->ns.slot = slot;
	r->ns.agent_ip4 = htonl(AG_NETNS_AGENT(slot));
	eth0 = if_nametoindex("eth0");
	ret = eth0 ? link_up(fd, eth0) : -ENODEV;
	if (!ret)
		ret = addr_p2p(fd, eth0, r->ns.agent_ip4, r->ns.gateway_ip4);
	if (!ret)
		ret = default_route(fd, eth0, r->ns.gateway_ip4);
	if (ret) {
		ag_errf(err, -ret, "netns: eth0 of %s: %s", r->ifname, strerror(-ret));
		goto out;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &r->ns.cookie, &len)) {
		ret = ag_errf(err, errno, "netns: cookie: %s", strerror(errno));
		goto out;
	}
	ret = 0;
out:
	close(fd);
	return ret;
}

/*
 * The namespace's one nameserver is the daemon's DNS relay on the gateway
 * (daemon/dns.c), which asks the instance's first resolver: no resolver is
 * reachable from the namespace itself.
 */
static int write_resolv(const struct ag_instance *in, struct ag_netns_run *r, struct ag_err *err)
{
	char text[256], addr[INET_ADDRSTRLEN];

	if (snprintf(r->resolv, sizeof(r->resolv), "%s/netns-%s.resolv.conf", in->run_dir,
		     r->ifname) >= (int)sizeof(r->resolv))
		return ag_errf(err, ENAMETOOLONG, "%s: path too long", in->run_dir);
	inet_ntop(AF_INET, &r->ns.gateway_ip4, addr, sizeof(addr));
	snprintf(text, sizeof(text),
		 "# agentgate instance %s, agent namespace %s: agentgated relays DNS\n"
		 "nameserver %s\n",
		 in->name, r->ifname, addr);
	if (mkdir(in->run_dir, 0700) && errno != EEXIST)
		return ag_errf(err, errno, "%s: mkdir: %s", in->run_dir, strerror(errno));
	/* 0644: the agent reads it as itself once it is bind-mounted. */
	return ag_file_write_atomic(r->resolv, text, strlen(text), 0644, err);
}

static int host_setup(const struct ag_kern *k, const struct ag_instance *in,
		      const struct ag_config *cfg, struct ag_netns_run *r, struct ag_err *err)
{
	struct ag_guard_config g = {
		.flags = AG_GUARD_F_AGENT,
		.gateway_ip4 = r->ns.gateway_ip4,
		.gateway_port = cfg->daemon_port,
		.resolver_port = cfg->resolver_port,
		.nr_resolvers = cfg->nr_resolvers,
		.agent_cgroup_id = r->ns.agent_cgroup_id,
	};
	struct ag_guard_info info;
	int fd = nl_open(), ret;

	if (fd < 0)
		return ag_errf(err, -fd, "netns: netlink: %s", strerror(-fd));
	r->ns.ifindex = if_nametoindex(r->ifname);
	ret = r->ns.ifindex ? addr_p2p(fd, r->ns.ifindex, r->ns.gateway_ip4, r->ns.agent_ip4)
			    : -ENODEV;
	if (!ret)
		ret = link_up(fd, r->ns.ifindex);
	if (!ret)
		ret = netns_id(fd, r->nsfd, &r->ns.nsid);
	close(fd);
	if (ret)
		return ag_errf(err, -ret, "netns: %s: %s", r->ifname, strerror(-ret));
	memcpy(g.resolvers, cfg->resolvers, sizeof(g.resolvers));
	/* The guard is on before the namespace is registered: no window without it. */
	if ((ret = ag_guard_attach(in, r->ifname, &g, err)))
		return ret;
	if ((ret = ag_guard_info(in, r->ifname, &info, err)))
		return ret;
	r->xdp_mode = info.mode;
	r->xdp_legacy = info.legacy;
	if (bpf_map_update_elem(k->map_fd[AG_MAP_NETNS_LINKS], &r->ns.ifindex, &r->ns,
				BPF_NOEXIST) ||
	    bpf_map_update_elem(k->map_fd[AG_MAP_NETNS], &r->ns.cookie, &r->ns, BPF_NOEXIST))
		return ag_errf(err, errno, "netns %s: register: %s", r->ifname, strerror(errno));
	return write_resolv(in, r, err);
}

int ag_netns_create(const struct ag_kern *k, const struct ag_instance *in, uint64_t agent_id,
		    struct ag_netns_run *r, struct ag_err *err)
{
	struct ag_config cfg;
	struct ag_err ignored;
	int root = -1, ret;

	memset(r, 0, sizeof(*r));
	r->nsfd = -1;
	r->ns.agent_cgroup_id = agent_id;
	if ((ret = ag_kern_get_config(k, &cfg, err)))
		return ret;
	/* Fail closed: no address of this instance's own to give the veth. */
	if (!cfg.netns_gateway_ip4)
		return ag_errf(err, EADDRNOTAVAIL,
			       "netns: instance %s has no gateway address (start its agentgated)",
			       in->name);
	r->ns.gateway_ip4 = cfg.netns_gateway_ip4;
	root = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (root < 0)
		return ag_errf(err, errno, "netns: /proc/self/ns/net: %s", strerror(errno));
	/* This process is single-threaded: unshare moves all of it, setns all of it back. */
	if (unshare(CLONE_NEWNET)) {
		ret = ag_errf(err, errno, "netns: unshare: %s", strerror(errno));
		close(root);
		return ret;
	}
	r->nsfd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	ret = r->nsfd < 0 ? ag_errf(err, errno, "netns: open: %s", strerror(errno))
			  : inside_setup(root, r, err);
	if (setns(root, CLONE_NEWNET)) {
		/* Not where we started: nothing after this could be trusted. */
		fprintf(stderr, "agentgatectl: netns: cannot return to the root namespace: %s\n",
			strerror(errno));
		_exit(126);
	}
	close(root);
	if (!ret)
		ret = host_setup(k, in, &cfg, r, err);
	if (ret)
		ag_netns_destroy(k, in, r, &ignored);
	return ret;
}

int ag_netns_enter(const struct ag_netns_run *r, struct ag_err *err)
{
	if (setns(r->nsfd, CLONE_NEWNET))
		return ag_errf(err, errno, "netns %s: setns: %s", r->ifname, strerror(errno));
	close(r->nsfd);
	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL))
		return ag_errf(err, errno, "netns %s: mount namespace: %s", r->ifname,
			       strerror(errno));
	if (mount(r->resolv, "/etc/resolv.conf", NULL, MS_BIND, NULL) ||
	    mount(NULL, "/etc/resolv.conf", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL))
		return ag_errf(err, errno, "netns %s: bind %s on /etc/resolv.conf: %s", r->ifname,
			       r->resolv, strerror(errno));
	return 0;
}

/* Deletes the host-side veth if it is still the one of this slot. */
static int veth_del(const struct ag_netns *ns)
{
	char name[IF_NAMESIZE], want[IF_NAMESIZE];
	int fd, ret;

	snprintf(want, sizeof(want), AG_NETNS_IFPREFIX "%u", ns->slot);
	if (!if_indextoname(ns->ifindex, name) || strcmp(name, want))
		return 0;
	fd = nl_open();
	if (fd < 0)
		return fd;
	ret = link_del(fd, ns->ifindex);
	close(fd);
	return ret == -ENODEV ? 0 : ret;
}

int ag_netns_destroy(const struct ag_kern *k, const struct ag_instance *in, struct ag_netns_run *r,
		     struct ag_err *err)
{
	int ret = 0, e;

	if (!r->ifname[0])
		goto out;
	/* Unregistered first: from here the listener refuses this veth. */
	bpf_map_delete_elem(k->map_fd[AG_MAP_NETNS], &r->ns.cookie);
	bpf_map_delete_elem(k->map_fd[AG_MAP_NETNS_LINKS], &r->ns.ifindex);
	if (r->ns.ifindex && (e = veth_del(&r->ns)))
		ret = ag_errf(err, -e, "netns: delete %s: %s", r->ifname, strerror(-e));
	e = ag_guard_detach(in, r->ifname, err);
	if (!ret)
		ret = e;
	if (r->resolv[0])
		unlink(r->resolv);
out:
	if (r->nsfd >= 0)
		close(r->nsfd);
	r->nsfd = -1;
	r->ifname[0] = '\0';
	return ret;
}

int ag_netns_remove_all(const struct ag_instance *in, struct ag_err *err)
{
	char path[PATH_MAX], resolv[PATH_MAX];
	struct ag_netns ns;
	__u32 key;
	int fd, ret = 0, e;

	if (ag_pin_path(in, "netns_links", path, sizeof(path)))
		return ag_errf(err, ENAMETOOLONG, "instance %s: pin path too long", in->name);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return errno == ENOENT ? 0
				       : ag_errf(err, errno, "map %s: %s", path, strerror(errno));
	/* Each delete restarts the walk: the map only shrinks, so this ends. */
	while (!bpf_map_get_next_key(fd, NULL, &key)) {
		if (!bpf_map_lookup_elem(fd, &key, &ns)) {
			if ((e = veth_del(&ns)) && !ret)
				ret = ag_errf(err, -e, "netns: delete %s%u: %s", AG_NETNS_IFPREFIX,
					      ns.slot, strerror(-e));
			snprintf(resolv, sizeof(resolv),
				 "%s/netns-" AG_NETNS_IFPREFIX "%u.resolv.conf", in->run_dir,
				 ns.slot);
			unlink(resolv);
		}
		if (bpf_map_delete_elem(fd, &key))
			break;
	}
	close(fd);
	return ret;
}

/* The gateway in the config map pinned in dir, if that is an instance of this version's. */
static uint32_t pinned_gateway(const char *dir)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info), zero = 0;
	struct ag_config cfg;
	char path[PATH_MAX];
	int fd;

	if (snprintf(path, sizeof(path), "%s/config", dir) >= (int)sizeof(path))
		return 0;
	fd = bpf_obj_get(path);
	if (fd < 0)
		return 0;
	memset(&info, 0, sizeof(info));
	/* Another version's value is shorter: it has no gateway of its own. */
	if (bpf_obj_get_info_by_fd(fd, &info, &len) || info.type != BPF_MAP_TYPE_ARRAY ||
	    info.key_size != sizeof(zero) || info.value_size != sizeof(cfg) ||
	    bpf_map_lookup_elem(fd, &zero, &cfg))
		cfg.netns_gateway_ip4 = 0;
	close(fd);
	return cfg.netns_gateway_ip4;
}

/* Whether another instance pinned in AG_BPFFS has gateway gw (network order). */
static bool gateway_taken(const struct ag_instance *in, uint32_t gw)
{
	char dir[PATH_MAX];
	struct dirent *e;
	bool taken = false;
	DIR *d = opendir(AG_BPFFS);

	if (!d)
		return false;
	while (!taken && (e = readdir(d))) {
		if (e->d_name[0] == '.' || !strcmp(e->d_name, in->name) ||
		    snprintf(dir, sizeof(dir), "%s/%s", AG_BPFFS, e->d_name) >= (int)sizeof(dir))
			continue;
		taken = pinned_gateway(dir) == gw;
	}
	closedir(d);
	return taken;
}

int ag_netns_gateway_choose(const struct ag_instance *in, uint32_t *gw, struct ag_err *err)
{
	uint32_t h = 2166136261u; /* FNV-1a of the name: the same instance, the same start */

	/* Its namespaces' veths carry it: a restart keeps it. */
	if ((*gw = pinned_gateway(in->pin_dir)))
		return 0;
	for (const char *p = in->name; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	/* Bounded: a pass over the range at most, one bpffs scan per candidate. */
	for (uint32_t i = 0; i < AG_NETNS_GATEWAYS; i++) {
		*gw = htonl(AG_NETNS_GATEWAY_AT((h + i) % AG_NETNS_GATEWAYS));
		if (!gateway_taken(in, *gw))
			return 0;
	}
	*gw = 0;
	return ag_errf(err, EADDRNOTAVAIL, "netns: every gateway address is taken");
}
