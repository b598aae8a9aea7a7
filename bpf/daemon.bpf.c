// SPDX-License-Identifier: GPL-2.0
/*
 * The programs agentgated runs itself, with BPF_PROG_TEST_RUN, on maps of
 * the instance that the hooks write too:
 *
 *  - quota_charge: one tool call against the agent's call budgets, under
 *    the quota value's lock, so that it and the connect hooks (sock.bpf.c
 *    quota_take) never undo each other's changes;
 *  - origin_claim: the origin of an accepted connection, the record of the
 *    agent's socket at its other end (see struct ag_claim).
 *
 * Their own object rather than programs of sock.bpf.c: attached to nothing
 * and pinned nowhere, so the daemon loads them at every start, fresh or
 * adopted, with the instance's pinned maps reused (libbpf
 * bpf_map__reuse_fd), and the pinned instance's programs stay untouched.
 *
 * BPF_PROG_TEST_RUN copies the input in and back out (a syscall program's
 * context; origin_claim's packet), and running a loaded program by fd
 * needs no capability, so the daemon still runs them after dropping its
 * own.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "agentgate.h"
#include "addr.h"
#include "shared_maps.h"

char LICENSE[] SEC("license") = "GPL";

#define ENOENT 2
#define TCP_LISTEN 10

SEC("syscall")
int quota_charge(struct ag_charge *c)
{
	__u64 agent_id = c->agent_id, now = bpf_ktime_get_ns();
	struct ag_quota *q = bpf_map_lookup_elem(&quota, &agent_id);
	__u32 spent = AG_BUDGET_NONE, limit = 0;

	c->spent = AG_BUDGET_NONE;
	c->limit = 0;
	c->calls_minute = c->calls_day = 0;
	if (!q)
		return 0;
	bpf_spin_lock(&q->lock);
	/*
	 * A window that has ended, or never started (a new entry has 0, which
	 * is not "at boot"), starts with this call.
	 */
	if (!q->minute_start_ns || now - q->minute_start_ns >= AG_MINUTE_NS) {
		q->minute_start_ns = now;
		q->calls_minute = 0;
	}
	if (!q->day_start_ns || now - q->day_start_ns >= AG_DAY_NS) {
		q->day_start_ns = now;
		q->calls_day = 0;
	}
	if (q->calls_per_minute && q->calls_minute >= q->calls_per_minute) {
		spent = AG_BUDGET_MINUTE;
		limit = q->calls_per_minute;
	} else if (q->calls_per_day && q->calls_day >= q->calls_per_day) {
		spent = AG_BUDGET_DAY;
		limit = q->calls_per_day;
	}
	if (spent) {
		q->calls_refused++;
	} else {
		q->calls_minute++;
		q->calls_day++;
	}
	c->calls_minute = q->calls_minute;
	c->calls_day = q->calls_day;
	bpf_spin_unlock(&q->lock);
	c->spent = spent;
	c->limit = limit;
	return 0;
}

struct netns_search {
	__u32 agent_ip4;
	__s32 nsid;	   /* -1 until found */
	__u32 gateway_ip4; /* out: the namespace's gateway, the daemon's end */
};

static long match_agent(struct bpf_map *map, const __u32 *ifindex, const struct ag_netns *ns,
			struct netns_search *q)
{
	if (ns->agent_ip4 != q->agent_ip4)
		return 0;
	q->nsid = ns->nsid;
	q->gateway_ip4 = ns->gateway_ip4;
	return 1;
}

/*
 * The namespace to look the agent's socket up in: the daemon's own (-1),
 * or for a peer on a netns agent's address (unique on the host,
 * agentgate.h), that namespace, and its gateway in *gateway_ip4.  -2 for
 * an address of that range that no namespace has: nobody's.
 */
static __always_inline __s32 peer_netns(const struct ag_claim *c, __u32 *gateway_ip4)
{
	struct netns_search q = { .nsid = -2 };

	if (!ag_addr_v4_mapped(c->addr))
		return -1;
	__builtin_memcpy(&q.agent_ip4, c->addr + 12, 4);
	if ((bpf_ntohl(q.agent_ip4) & AG_NETNS_MASK) != AG_NETNS_AGENT_BASE)
		return -1;
	bpf_for_each_map_elem(&netns_links, match_agent, &q, 0);
	*gateway_ip4 = q.gateway_ip4;
	return q.nsid;
}

/*
 * The cookie of the agent's socket of a connection the daemon accepted:
 * found as a packet from the daemon's end would find it, in the agent's
 * namespace.  An agent that has closed its socket already (it sent its
 * request and a FIN) leaves a timewait socket in its place, with the same
 * cookie.  0 when there is none (the agent has reset the connection, or
 * the peer is not a TCP socket of this host).
 */
static __always_inline __u64 peer_cookie(struct xdp_md *ctx, const struct ag_claim *c)
{
	__u32 gateway_ip4 = 0;
	__s32 nsid = peer_netns(c, &gateway_ip4);
	__u64 netns = nsid < 0 ? BPF_F_CURRENT_NETNS : (__u64)nsid;
	const struct ag_config *cfg;
	struct bpf_sock_tuple t = {};
	struct tcp_timewait_sock *tw;
	struct bpf_sock *sk;
	struct tcp_sock *tp;
	__u64 cookie = 0;
	__u32 zero = 0, len;

	cfg = bpf_map_lookup_elem(&ag_config, &zero);
	if (!cfg || nsid == -2)
		return 0;
	if (ag_addr_v4_mapped(c->addr)) {
		t.ipv4.saddr = nsid < 0 ? cfg->daemon_ip4 : gateway_ip4;
		__builtin_memcpy(&t.ipv4.daddr, c->addr + 12, 4);
		t.ipv4.sport = bpf_htons(cfg->daemon_port);
		t.ipv4.dport = bpf_htons(c->port);
		len = sizeof(t.ipv4);
	} else {
		__builtin_memcpy(t.ipv6.saddr, cfg->daemon_ip6, 16);
		__builtin_memcpy(t.ipv6.daddr, c->addr, 16);
		t.ipv6.sport = bpf_htons(cfg->daemon_port);
		t.ipv6.dport = bpf_htons(c->port);
		len = sizeof(t.ipv6);
	}
	sk = bpf_skc_lookup_tcp(ctx, &t, len, netns, 0);
	if (!sk)
		return 0;
	/* A listener on the agent's port is not the agent's end. */
	if (sk->state != TCP_LISTEN) {
		tp = bpf_skc_to_tcp_sock(sk);
		tw = tp ? NULL : bpf_skc_to_tcp_timewait_sock(sk);
		if (tp)
			cookie = tp->inet_conn.icsk_inet.sk.__sk_common.skc_cookie.counter;
		else if (tw)
			cookie = tw->tw_sk.__tw_common.skc_cookie.counter;
	}
	bpf_sk_release(sk);
	return cookie;
}

/*
 * An XDP program for its BPF_PROG_TEST_RUN: the claim goes in as the
 * packet and comes back out in it, and XDP has the socket lookups.  Only
 * the agent's own socket leads to its record: a connection to the daemon
 * from anything else (a host process that reuses an agent's source port,
 * say) finds another socket, with another cookie.
 */
SEC("xdp")
int origin_claim(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ag_claim *c = data;
	const struct ag_origin *o;
	__u64 cookie;
	__u32 slot;

	if ((void *)(c + 1) > end)
		return XDP_ABORTED;
	c->result = -ENOENT;
	cookie = peer_cookie(ctx, c);
	if (!cookie)
		return XDP_PASS;
	slot = cookie & (AG_ORIGIN_SLOTS - 1);
	o = bpf_map_lookup_elem(&origin, &slot);
	if (!o || o->cookie != cookie)
		return XDP_PASS;
	/* Whole, or not at all: see the writer in sock.bpf.c tcp_verdict. */
	barrier();
	__builtin_memcpy(&c->origin, o, sizeof(c->origin));
	barrier();
	if (o->cookie == cookie && c->origin.cookie == cookie)
		c->result = 0;
	return XDP_PASS;
}

/*
 * A cgroup_skb program for its BPF_PROG_TEST_RUN, the one type with both
 * the UDP socket lookup and the socket cgroup helpers; its claim goes in
 * and out through cb[] (enum ag_dns_claim_cb).  The socket is the one the
 * relay's answer would be delivered to: it holds the datagram's source
 * address and port now.  Its cgroup is the one it was created in, which
 * is also what decides which hooks run on it, so the agent named is the
 * one whose hooks sent the datagram here.  Limits: the socket may have
 * closed since it sent (nothing to attribute: dropped), or in that
 * instant its port been taken by another socket, which would then be
 * named instead (a fire-and-forget sender can only lose its own query).
 */
SEC("cgroup_skb/ingress")
int dns_claim(struct __sk_buff *skb)
{
	__u32 ip4 = skb->cb[AG_DNS_CLAIM_ADDR], port = skb->cb[AG_DNS_CLAIM_PORT];
	const struct ag_config *cfg;
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	__u64 agent = 0;
	__u32 zero = 0;

	cfg = bpf_map_lookup_elem(&ag_config, &zero);
	if (cfg && cfg->dns_relay_port) {
		t.ipv4.saddr = cfg->dns_relay_ip4;
		t.ipv4.sport = bpf_htons(cfg->dns_relay_port);
		t.ipv4.daddr = ip4;
		t.ipv4.dport = bpf_htons((__u16)port);
		sk = bpf_sk_lookup_udp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
		if (sk) {
			agent = bpf_sk_ancestor_cgroup_id(sk, cfg->agents_level + 1);
			bpf_sk_release(sk);
		}
	}
	skb->cb[AG_DNS_CLAIM_RESULT] = agent ? 0 : ENOENT;
	skb->cb[AG_DNS_CLAIM_AGENT_LO] = (__u32)agent;
	skb->cb[AG_DNS_CLAIM_AGENT_HI] = (__u32)(agent >> 32);
	return 1;
}
