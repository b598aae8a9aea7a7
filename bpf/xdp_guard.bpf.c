// SPDX-License-Identifier: GPL-2.0
/*
 * xdp_guard, in two modes (struct ag_guard_config.flags).
 *
 * Agent mode, on the host-side veth of an agent in a network namespace of
 * its own: the backstop behind the cgroup hooks.  A socket the hooks never
 * saw (made outside the agent's cgroup and carried in, a raw or packet
 * socket of a process that joined the namespace) still has to leave the
 * namespace through this veth, and only the gateway (its TCP listener and
 * the daemon's DNS relay on UDP AG_NETNS_DNS_PORT), the resolvers and
 * neighbour resolution get past it.
 *
 * Ingress mode: drops floods before they reach the stack.  Attached with
 * libxdp to the interface an exposed gateway listener is reached through;
 * each source address gets a token bucket (struct ag_guard_source), and a
 * new TCP connection or a UDP datagram to the guarded port needs a token.
 *
 * Why SYN and UDP only: they are what floods are made of, and what opens
 * state on the host; segments of established connections pass, so a source
 * within its budget never has a transfer cut short.
 *
 * IPv6 extension headers are not walked: a packet whose next header is
 * neither TCP, UDP nor ICMPv6 is counted against its source when every port
 * is guarded (it could hide either) and passes when one port is (it cannot
 * be told apart from other traffic).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "agentgate.h"
#include "bucket.h"

#define ETH_P_IP 0x0800
#define ETH_P_ARP 0x0806
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_ICMP 1
#define IPPROTO_ICMPV6 58
#define IP_MF 0x2000
#define IP_OFFSET 0x1FFF
#define ND_FIRST 133 /* router solicitation .. redirect */
#define ND_LAST 137

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ag_guard_config);
} guard_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u8[16]);
	__type(value, struct ag_guard_source);
} guard_sources SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ag_guard_stats);
} guard_stats SEC(".maps");

enum verdict {
	UNCOUNTED,
	COUNTED,
};

static __always_inline void count(__u64 *field)
{
	__sync_fetch_and_add(field, 1);
}

/* Layer 4 of a packet: whether it is subject to the guard. */
static __always_inline enum verdict classify(void *l4, void *end, __u8 proto,
					     const struct ag_guard_config *cfg)
{
	if (proto == IPPROTO_TCP) {
		struct tcphdr *th = l4;

		if ((void *)(th + 1) > end)
			return COUNTED; /* a truncated header is no one's established flow */
		if (!th->syn || th->ack)
			return UNCOUNTED;
		return !cfg->port || bpf_ntohs(th->dest) == cfg->port ? COUNTED : UNCOUNTED;
	}
	if (proto == IPPROTO_UDP) {
		struct udphdr *uh = l4;

		if ((void *)(uh + 1) > end)
			return COUNTED;
		return !cfg->port || bpf_ntohs(uh->dest) == cfg->port ? COUNTED : UNCOUNTED;
	}
	if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6)
		return UNCOUNTED;
	return cfg->port ? UNCOUNTED : COUNTED;
}

/* Takes a token from the source's bucket; false when there is none. */
static __always_inline bool take_token(const __u8 *src, const struct ag_guard_config *cfg)
{
	struct ag_guard_source *b = bpf_map_lookup_elem(&guard_sources, src);
	__u64 now = bpf_ktime_get_ns(), cap = (__u64)cfg->burst * AG_QUOTA_MILLI;
	bool ok;

	if (!b) {
		struct ag_guard_source fresh = {};

		fresh.tokens_milli = cap;
		fresh.refill_ns = now;
		bpf_map_update_elem(&guard_sources, src, &fresh, BPF_NOEXIST);
		b = bpf_map_lookup_elem(&guard_sources, src);
		if (!b)
			return false; /* no room to track it: fail closed */
	}
	ok = ag_bucket_take(&b->tokens_milli, &b->refill_ns, now, cfg->rate, cfg->burst);
	count(ok ? &b->passed : &b->dropped);
	return ok;
}

static __always_inline bool is_resolver(const struct ag_guard_config *cfg, const __u8 *dst,
					__u16 port)
{
	__u64 hi, lo, r_hi, r_lo;

	if (port != cfg->resolver_port)
		return false;
	__builtin_memcpy(&hi, dst, 8);
	__builtin_memcpy(&lo, dst + 8, 8);
	for (int i = 0; i < AG_MAX_RESOLVERS; i++) {
		if (i >= cfg->nr_resolvers)
			break;
		__builtin_memcpy(&r_hi, cfg->resolvers[i], 8);
		__builtin_memcpy(&r_lo, cfg->resolvers[i] + 8, 8);
		if (hi == r_hi && lo == r_lo)
			return true;
	}
	return false;
}

/* Destination port of a TCP or UDP header, 0 for anything else. */
static __always_inline __u16 dest_port(void *l4, void *end, __u8 proto)
{
	if (proto == IPPROTO_TCP) {
		struct tcphdr *th = l4;

		return (void *)(th + 1) > end ? 0 : bpf_ntohs(th->dest);
	}
	if (proto == IPPROTO_UDP) {
		struct udphdr *uh = l4;

		return (void *)(uh + 1) > end ? 0 : bpf_ntohs(uh->dest);
	}
	return 0;
}

/*
 * Agent mode: what may leave the namespace.  VLAN tags, IPv4 fragments
 * past the first (no ports to judge) and IPv6 extension headers are
 * dropped: nothing the agent needs sends them to the gateway or a resolver.
 */
static __always_inline bool agent_may_send(const struct ag_guard_config *cfg, void *l3, void *end,
					   __u16 proto)
{
	__u8 dst[16] = {};
	__u16 port;

	if (proto == bpf_htons(ETH_P_ARP))
		return true;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;
		__u32 ihl;

		if ((void *)(ip + 1) > end)
			return false;
		ihl = ip->ihl * 4;
		if (ihl < sizeof(*ip) || (ip->frag_off & bpf_htons(IP_OFFSET)))
			return false;
		port = dest_port(l3 + ihl, end, ip->protocol);
		if (ip->daddr == cfg->gateway_ip4 &&
		    ((ip->protocol == IPPROTO_TCP && port == cfg->gateway_port) ||
		     (ip->protocol == IPPROTO_UDP && port == AG_NETNS_DNS_PORT)))
			return true;
		dst[10] = dst[11] = 0xff;
		__builtin_memcpy(dst + 12, &ip->daddr, 4);
		return port && is_resolver(cfg, dst, port);
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;
		__u8 nexthdr;

		if ((void *)(ip6 + 1) > end)
			return false;
		nexthdr = ip6->nexthdr;
		if (nexthdr == IPPROTO_ICMPV6) {
			struct icmp6hdr *ic = (void *)(ip6 + 1);

			return (void *)(ic + 1) <= end && ic->icmp6_type >= ND_FIRST &&
			       ic->icmp6_type <= ND_LAST;
		}
		port = dest_port(ip6 + 1, end, nexthdr);
		__builtin_memcpy(dst, &ip6->daddr, 16);
		return port && is_resolver(cfg, dst, port);
	}
	return false;
}

SEC("xdp")
int ag_xdp_guard(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	const struct ag_guard_config *cfg;
	struct ag_guard_stats *st;
	__u32 zero = 0;
	__u8 src[16] = {};
	__u16 proto;
	void *l3, *l4;
	__u8 l4proto;

	cfg = bpf_map_lookup_elem(&guard_config, &zero);
	st = bpf_map_lookup_elem(&guard_stats, &zero);
	if (!cfg || !st || (void *)(eth + 1) > end)
		return XDP_PASS;
	proto = eth->h_proto;
	l3 = eth + 1;
	if (cfg->flags & AG_GUARD_F_AGENT) {
		if (agent_may_send(cfg, l3, end, proto)) {
			count(&st->passed);
			return XDP_PASS;
		}
		count(&st->dropped);
		return XDP_DROP;
	}
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan_hdr *vh = l3;

		if ((void *)(vh + 1) > end)
			return XDP_PASS;
		proto = vh->h_vlan_encapsulated_proto;
		l3 = vh + 1;
	}
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;
		__u32 ihl;

		if ((void *)(ip + 1) > end)
			return XDP_PASS;
		ihl = ip->ihl * 4;
		if (ihl < sizeof(*ip))
			return XDP_DROP; /* malformed: the stack would drop it too */
		src[10] = src[11] = 0xff;
		__builtin_memcpy(src + 12, &ip->saddr, 4);
		l4proto = ip->protocol;
		l4 = l3 + ihl;
		/* A later fragment has no ports: it counts like the first would. */
		if (ip->frag_off & bpf_htons(IP_OFFSET)) {
			if (cfg->port) {
				count(&st->uncounted);
				return XDP_PASS;
			}
			goto counted;
		}
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;

		if ((void *)(ip6 + 1) > end)
			return XDP_PASS;
		__builtin_memcpy(src, &ip6->saddr, 16);
		l4proto = ip6->nexthdr;
		l4 = ip6 + 1;
	} else {
		count(&st->uncounted);
		return XDP_PASS;
	}
	if (classify(l4, end, l4proto, cfg) == UNCOUNTED) {
		count(&st->uncounted);
		return XDP_PASS;
	}
counted:
	if (take_token(src, cfg)) {
		count(&st->passed);
		return XDP_PASS;
	}
	count(&st->dropped);
	return XDP_DROP;
}
