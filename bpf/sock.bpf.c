// SPDX-License-Identifier: GPL-2.0
/*
 * The enforcement point: cgroup socket hooks on <instance>/agents.
 *
 * Every outbound TCP connect of an agent is rewritten to agentgated's
 * listener, and what the agent asked for (the origin) is written, before
 * the SYN leaves, into the origin map's slot for the socket's cookie.
 * After accept() the daemon finds the agent's socket at the other end of
 * the connection and takes the record of that socket's cookie
 * (bpf/daemon.bpf.c origin_claim); getpeername() reads it back for the
 * agent.  Everything that could leave the host without a TCP connect (raw,
 * ping, MPTCP, SCTP sockets; UDP) is refused here, in the kernel, so the
 * agent's configuration is irrelevant; UDP to a configured resolver alone
 * is sent on, to the daemon's DNS relay (udp_verdict).
 *
 * Fail closed: unless the daemon is serving (alive, and its listeners
 * accepting), a connect that would be redirected is refused instead of
 * being let through.
 *
 * Cost: these hooks run on every socket and every connect of every agent,
 * so a connect runs two programs (sock_create, connect4/6) and the
 * redirect allocates nothing: the record goes into a preallocated slot,
 * where a socket-local storage would cost an allocation and a free per
 * connection, and a tuple-keyed hand-off a sockops program on five TCP
 * callbacks per connection (bench/README.md has the figures).
 *
 * Verifier notes (clang 14): every ctx field is read once into a local; the
 * verifier rejects re-reads of ctx->user_ip6 words after branches and loops
 * over them, and structs handed to helpers are fully initialised.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "agentgate.h"
#include "addr.h"
#include "bucket.h"
#include "shared_maps.h"

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define EPERM 1
#define ECONNREFUSED 111
#define EDQUOT 122

/* sock_addr hooks: 1 lets the call proceed, 0 refuses it. */
#define SOCK_ALLOW 1
#define SOCK_REFUSE 0

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AG_MAX_AGENTS);
	__type(key, __u64);
	__type(value, struct ag_agent);
} agents SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, AG_MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ag_rule_key);
	__type(value, struct ag_rule);
} dest_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AG_MAX_AGENTS + 1);
	__type(key, __u64);
	__type(value, struct ag_stats);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AG_MAX_AGENTS);
	__type(key, __u64);
	__type(value, struct ag_netns);
} netns SEC(".maps");

/* A socket of the daemon's while it serves (ag_kern_serving); see daemon_serving. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u64));
} serving SEC(".maps");

/* The resolver each relayed UDP socket addressed (struct ag_dns_peer). */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ag_dns_peer);
} dns_peer SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

/*
 * Force BTF for the event type: it only appears as ring buffer payload, and
 * user space decodes it by name.
 */
const struct ag_event *unused_event __attribute__((unused));

static __always_inline const struct ag_config *get_config(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&ag_config, &zero);
}

/*
 * The agent is the cgroup right below <instance>/agents that contains the
 * caller, so a sub-agent started in a nested cgroup is accounted to (and
 * restricted like) its parent agent.
 */
static __always_inline __u64 current_agent(const struct ag_config *cfg)
{
	return bpf_get_current_ancestor_cgroup_id(cfg->agents_level + 1);
}

static __always_inline struct ag_stats *stats_of(__u64 agent_id)
{
	struct ag_stats *s = bpf_map_lookup_elem(&stats, &agent_id);
	struct ag_stats zero = {};

	if (s)
		return s;
	bpf_map_update_elem(&stats, &agent_id, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&stats, &agent_id);
}

#define STAT_INC(s, field)                                    \
	do {                                                  \
		if (s)                                        \
			__sync_fetch_and_add(&(s)->field, 1); \
	} while (0)

static __always_inline void set_v4_mapped(__u8 *addr, __u32 ip4)
{
	__builtin_memset(addr, 0, 10);
	addr[10] = 0xff;
	addr[11] = 0xff;
	__builtin_memcpy(addr + 12, &ip4, 4);
}

static __always_inline void set_v6(__u8 *addr, __u32 a0, __u32 a1, __u32 a2, __u32 a3)
{
	__builtin_memcpy(addr, &a0, 4);
	__builtin_memcpy(addr + 4, &a1, 4);
	__builtin_memcpy(addr + 8, &a2, 4);
	__builtin_memcpy(addr + 12, &a3, 4);
}

static __always_inline bool is_v4_mapped(__u32 a0, __u32 a1, __u32 a2)
{
	return a0 == 0 && a1 == 0 && a2 == bpf_htonl(0xffff);
}

static __always_inline bool addr_eq(const __u8 *a, const __u8 *b)
{
	__u64 a_hi, a_lo, b_hi, b_lo;

	__builtin_memcpy(&a_hi, a, 8);
	__builtin_memcpy(&a_lo, a + 8, 8);
	__builtin_memcpy(&b_hi, b, 8);
	__builtin_memcpy(&b_lo, b + 8, 8);
	return a_hi == b_hi && a_lo == b_lo;
}

static __always_inline void fill_event(struct ag_event *e, __u64 agent_id, const __u8 *addr,
				       __u16 port, __u16 family, __u16 type, __u16 protocol,
				       __u32 hook, __u32 reason)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	e->ts_ns = bpf_ktime_get_ns();
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->agent_cgroup_id = agent_id;
	e->tgid = pid_tgid >> 32;
	e->uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	if (addr)
		__builtin_memcpy(e->addr, addr, 16);
	e->port = port;
	e->family = family;
	e->type = type;
	e->protocol = protocol;
	e->hook = hook;
	e->reason = reason;
}

/*
 * Every record wakes the daemon (BPF_RB_FORCE_WAKEUP).  The default wakes
 * it only when it has read everything before the record; with the daemon
 * woken through an epoll fd polled by io_uring, a flood lost that wakeup
 * now and then and the rest of it sat unread, unaudited, until the next
 * refusal or the daemon's stop.  Refusals are rare, and the kernel
 * coalesces the wakeups of a flood.
 */
static __always_inline void emit_event(__u64 agent_id, const __u8 *addr, __u16 port, __u16 family,
				       __u16 type, __u16 protocol, __u32 hook, __u32 reason)
{
	struct ag_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e)
		return;
	__builtin_memset(e, 0, sizeof(*e));
	fill_event(e, agent_id, addr, port, family, type, protocol, hook, reason);
	bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
}

/* Every refusal counts in denied, and in the counter of its reason if it has one. */
static __always_inline void count_refusal(struct ag_stats *s, __u32 reason)
{
	STAT_INC(s, denied);
	switch (reason) {
	case AG_REASON_UDP_DEST:
		STAT_INC(s, udp_denied);
		break;
	case AG_REASON_NO_DAEMON:
	case AG_REASON_NO_GATEWAY:
	case AG_REASON_NO_V6_LISTENER:
	case AG_REASON_NO_DNS_RELAY:
		STAT_INC(s, no_daemon);
		break;
	case AG_REASON_BIND_PORT:
		STAT_INC(s, bind_denied);
		break;
	case AG_REASON_CONNECT_RATE:
	case AG_REASON_CALL_BUDGET:
		STAT_INC(s, quota_denied);
		break;
	case AG_REASON_UNIX_PATH:
		STAT_INC(s, unix_denied);
		break;
	}
}

/* Refuse with a reason: counted, reported, and an errno the agent sees. */
static __always_inline int refuse(struct ag_stats *s, __u64 agent_id, const __u8 *addr, __u16 port,
				  __u16 family, __u16 type, __u32 hook, __u32 reason, int err)
{
	count_refusal(s, reason);
	emit_event(agent_id, addr, port, family, type, 0, hook, reason);
	/* Without this the agent sees EPERM, which is right for policy. */
	if (err != EPERM)
		bpf_set_retval(-err);
	return SOCK_REFUSE;
}

static __always_inline const struct ag_rule *lookup_rule(__u32 agent_index, __u32 port,
							 const __u8 *addr)
{
	struct ag_rule_key key = {};

	key.prefixlen = 64 + 128;
	key.agent_index = agent_index;
	key.port = port;
	__builtin_memcpy(key.addr, addr, 16);
	return bpf_map_lookup_elem(&dest_rules, &key);
}

/* The order of agentgate.h: the agent's own rules, exact port first. */
static __always_inline const struct ag_rule *find_rule(__u32 agent_index, const __u8 *addr,
						       __u16 port)
{
	const struct ag_rule *r = NULL;

	if (agent_index) {
		r = lookup_rule(agent_index, port, addr);
		if (!r)
			r = lookup_rule(agent_index, 0, addr);
	}
	if (!r)
		r = lookup_rule(0, port, addr);
	if (!r)
		r = lookup_rule(0, 0, addr);
	return r;
}

/*
 * Is the daemon serving?  Once its listeners accept it puts a socket of
 * its own into the serving map, and takes it out before they close
 * (ag_kern_serving), so a listener that is not there, or one bound to the
 * port by someone else in the meantime, never receives an agent's
 * connection.  A crash takes it out as well: the kernel removes a socket
 * from a sockmap when it closes, and the dying process's files close in
 * do_exit().  The listener itself could not serve as that socket: the
 * daemon accepts through io_uring, whose requests hold the listening
 * socket, and a killed process's ring is torn down asynchronously, so for
 * a few milliseconds after kill -9 the listener still completes handshakes
 * that nobody will serve.
 */
static __always_inline bool daemon_serving(void)
{
	__u32 zero = 0;
	struct bpf_sock *sk = bpf_map_lookup_elem(&serving, &zero);

	if (!sk)
		return false;
	bpf_sk_release(sk);
	return true;
}

static __always_inline bool is_gateway(const struct ag_config *cfg, const struct ag_netns *ns,
				       const __u8 *addr, __u16 port)
{
	__u8 gw4[16];

	if (port != cfg->daemon_port)
		return false;
	set_v4_mapped(gw4, ns ? ns->gateway_ip4 : cfg->daemon_ip4);
	return addr_eq(addr, gw4) || addr_eq(addr, cfg->daemon_ip6);
}

static __always_inline bool is_resolver(const struct ag_config *cfg, const __u8 *addr, __u16 port)
{
	if (port != cfg->resolver_port)
		return false;
	for (int i = 0; i < AG_MAX_RESOLVERS; i++) {
		if (i >= cfg->nr_resolvers)
			break;
		if (addr_eq(addr, cfg->resolvers[i]))
			return true;
	}
	return false;
}

/*
 * The agent's quota, if it has one: 0 when a new connection may go ahead,
 * else the reason it may not.  Takes a token from the bucket on success.
 */
static __always_inline __u32 quota_take(__u64 agent_id)
{
	struct ag_quota *q = bpf_map_lookup_elem(&quota, &agent_id);
	__u64 now = bpf_ktime_get_ns();
	__u32 reason = AG_REASON_NONE;

	if (!q)
		return AG_REASON_NONE;
	bpf_spin_lock(&q->lock);
	if ((q->calls_per_minute && q->calls_minute >= q->calls_per_minute &&
	     now - q->minute_start_ns < AG_MINUTE_NS) ||
	    (q->calls_per_day && q->calls_day >= q->calls_per_day &&
	     now - q->day_start_ns < AG_DAY_NS)) {
		reason = AG_REASON_CALL_BUDGET;
	} else if (q->connect_burst &&
		   !ag_bucket_take(&q->connect_tokens_milli, &q->connect_refill_ns, now,
				   q->connect_rate, q->connect_burst)) {
		reason = AG_REASON_CONNECT_RATE;
	}
	if (reason == AG_REASON_CONNECT_RATE)
		q->connect_refused++;
	else if (reason == AG_REASON_CALL_BUDGET)
		q->calls_refused++;
	bpf_spin_unlock(&q->lock);
	return reason;
}

/* The slot of a socket's record (struct ag_origin). */
static __always_inline struct ag_origin *origin_slot(__u64 cookie)
{
	__u32 slot = cookie & (AG_ORIGIN_SLOTS - 1);

	return bpf_map_lookup_elem(&origin, &slot);
}

/* What tcp_verdict decided; the caller rewrites the address on REDIRECT. */
enum tcp_outcome {
	TCP_REFUSED,
	TCP_DIRECT,
	TCP_REDIRECT,
};

/*
 * TCP connect: decide, and on REDIRECT record the origin.  dst_v4 says
 * whether the destination is IPv4 (an AF_INET socket, or AF_INET6 with a
 * v4-mapped address); the rewrite is left to the caller, which knows the
 * socket's family.
 */
static __always_inline enum tcp_outcome tcp_verdict(struct bpf_sock_addr *ctx,
						    const struct ag_config *cfg, bool has_gateway,
						    const struct ag_netns *ns, const __u8 *addr,
						    __u16 port, __u16 family, bool dst_v4,
						    __u32 hook)
{
	__u64 agent_id = current_agent(cfg);
	struct ag_stats *s = stats_of(agent_id);
	const struct ag_agent *agent = NULL;
	const struct ag_rule *rule;
	struct ag_origin *o;
	__u32 verdict = cfg->default_verdict;
	__u32 index = 0;
	__u64 pid_tgid, cookie;

	if (agent_id)
		agent = bpf_map_lookup_elem(&agents, &agent_id);
	if (agent) {
		verdict = agent->verdict;
		index = agent->index;
	}
	/* Trie lookups are the dearest part of a verdict; most setups have no rule. */
	rule = cfg->nr_rules ? find_rule(index, addr, port) : NULL;
	if (rule)
		verdict = rule->verdict;

	if (verdict != AG_VERDICT_REDIRECT && verdict != AG_VERDICT_DIRECT) {
		refuse(s, agent_id, addr, port, family, SOCK_STREAM, hook, AG_REASON_RULE, EPERM);
		return TCP_REFUSED;
	}
	/* A quota counts every connection the agent gets, direct ones too. */
	if (agent && (agent->flags & AG_AGENT_F_QUOTA)) {
		__u32 why = quota_take(agent_id);

		if (why) {
			refuse(s, agent_id, addr, port, family, SOCK_STREAM, hook, why, EDQUOT);
			return TCP_REFUSED;
		}
	}
	if (verdict == AG_VERDICT_DIRECT) {
		STAT_INC(s, direct);
		return TCP_DIRECT;
	}
	/*
	 * A connect straight to the listener would arrive with the listener
	 * itself as origin, and the daemon would relay to itself.
	 */
	if (is_gateway(cfg, ns, addr, port)) {
		refuse(s, agent_id, addr, port, family, SOCK_STREAM, hook, AG_REASON_GATEWAY_LOOP,
		       EPERM);
		return TCP_REFUSED;
	}
	if (!dst_v4 && (ns || !cfg->daemon_ip6[15])) {
		refuse(s, agent_id, addr, port, family, SOCK_STREAM, hook, AG_REASON_NO_V6_LISTENER,
		       ECONNREFUSED);
		return TCP_REFUSED;
	}
	if (!has_gateway || !daemon_serving()) {
		refuse(s, agent_id, addr, port, family, SOCK_STREAM, hook,
		       has_gateway ? AG_REASON_NO_DAEMON : AG_REASON_NO_GATEWAY, ECONNREFUSED);
		return TCP_REFUSED;
	}

	cookie = bpf_get_socket_cookie(ctx);
	o = origin_slot(cookie);
	if (!o) {
		refuse(s, agent_id, addr, port, family, SOCK_STREAM, hook, AG_REASON_NO_STORAGE,
		       ECONNREFUSED);
		return TCP_REFUSED;
	}
	/*
	 * The cookie is cleared first and written last: a reader that finds
	 * its cookie both before and after reading the rest (origin_claim,
	 * own_peer) has read one socket's record whole, even if another
	 * socket's connect takes the slot over meanwhile.  x86-64 keeps
	 * stores, and loads, in program order; the barriers keep the compiler
	 * from reordering them.
	 */
	o->cookie = 0;
	barrier();
	pid_tgid = bpf_get_current_pid_tgid();
	o->cgroup_id = bpf_get_current_cgroup_id();
	o->agent_cgroup_id = agent_id;
	o->ts_ns = bpf_ktime_get_ns();
	o->tgid = pid_tgid >> 32;
	o->uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(o->comm, sizeof(o->comm));
	__builtin_memcpy(o->addr, addr, 16);
	o->port = port;
	o->family = family;
	barrier();
	o->cookie = cookie;
	STAT_INC(s, redirected);
	return TCP_REDIRECT;
}

/* The agent's own network namespace, if agentgatectl run --netns made it. */
static __always_inline const struct ag_netns *netns_of(struct bpf_sock_addr *ctx)
{
	__u64 cookie = bpf_get_netns_cookie(ctx);

	return bpf_map_lookup_elem(&netns, &cookie);
}

/*
 * Where a redirected connect of this socket goes: the daemon's listener,
 * when the socket is in the daemon's network namespace (*ns NULL); the
 * gateway of a namespace agentgatectl run --netns made (*ns), whose
 * address the daemon's wildcard listener holds for the veths of the
 * netns_links map only (ag_gateway_filter); or nowhere (false): a
 * namespace the agent made itself has no gateway, and its connects are
 * refused rather than sent to whatever listens on the daemon's port there.
 */
static __always_inline bool gateway_of(struct bpf_sock_addr *ctx, const struct ag_config *cfg,
				       const struct ag_netns **ns)
{
	__u64 cookie = bpf_get_netns_cookie(ctx);

	*ns = NULL;
	if (cookie == cfg->netns_cookie)
		return true;
	*ns = bpf_map_lookup_elem(&netns, &cookie);
	return *ns != NULL;
}

/* The agent's resolver in its namespace: the daemon's relay at the gateway (daemon/dns.c). */
static __always_inline bool to_dns_relay(struct bpf_sock_addr *ctx, __u32 ip4, __u16 port)
{
	const struct ag_netns *ns;

	if (port != AG_NETNS_DNS_PORT)
		return false;
	ns = netns_of(ctx);
	return ns && ip4 == ns->gateway_ip4;
}

/*
 * The DNS relay a resolver's datagram goes to instead: the daemon's on
 * its gateway for a namespace agentgatectl run --netns made, its loopback
 * one (config) for an agent in the daemon's namespace; none in a namespace
 * the agent made itself, or while the daemon has no loopback relay.
 */
static __always_inline bool dns_relay_of(struct bpf_sock_addr *ctx, const struct ag_config *cfg,
					 __u8 *relay, __u16 *relay_port)
{
	const struct ag_netns *ns;

	if (!gateway_of(ctx, cfg, &ns))
		return false;
	if (ns) {
		set_v4_mapped(relay, ns->gateway_ip4);
		*relay_port = AG_NETNS_DNS_PORT;
		return true;
	}
	set_v4_mapped(relay, cfg->dns_relay_ip4);
	*relay_port = cfg->dns_relay_port;
	return cfg->dns_relay_port != 0;
}

/* What udp_verdict decided; the caller rewrites the destination on UDP_RELAY. */
enum udp_outcome {
	UDP_REFUSED,
	UDP_ALLOWED,
	UDP_RELAY,
};

/*
 * UDP goes to the daemon's DNS relay and nowhere else.  A namespaced
 * agent's datagram to the relay on its gateway (to_relay, IPv4 hooks
 * only) passes as it is.  One to a configured resolver is sent to the
 * relay instead (relay, relay_port), which forwards well-formed queries
 * only (daemon/dns.c), and the resolver is recorded in the socket's
 * dns_peer for the replies.  The relay listens on IPv4: a resolver with
 * an IPv6 address cannot be relayed (sendmsg6 may not rewrite to a
 * v4-mapped address), so UDP to it is refused.
 */
static __always_inline enum udp_outcome udp_verdict(struct bpf_sock_addr *ctx, const __u8 *addr,
						    __u16 port, __u16 family, __u32 hook,
						    bool to_relay, __u8 *relay, __u16 *relay_port)
{
	const struct ag_config *cfg = get_config();
	struct bpf_sock *sk = ctx->sk;
	struct ag_dns_peer *p;
	struct ag_stats *s;
	__u64 agent_id;
	__u32 reason = AG_REASON_NO_DNS_RELAY;

	if (!cfg)
		return UDP_REFUSED;
	agent_id = current_agent(cfg);
	s = stats_of(agent_id);
	if (to_relay) {
		STAT_INC(s, udp_allowed);
		return UDP_ALLOWED;
	}
	if (!is_resolver(cfg, addr, port)) {
		refuse(s, agent_id, addr, port, family, SOCK_DGRAM, hook, AG_REASON_UDP_DEST,
		       EPERM);
		return UDP_REFUSED;
	}
	/* Fail closed: no relay, or a relay nobody serves, means no DNS. */
	if (ag_addr_v4_mapped(addr) && dns_relay_of(ctx, cfg, relay, relay_port)) {
		reason = AG_REASON_NO_DAEMON;
		if (daemon_serving()) {
			reason = AG_REASON_NO_STORAGE;
			p = sk ? bpf_sk_storage_get(&dns_peer, sk, 0, BPF_SK_STORAGE_GET_F_CREATE)
			       : NULL;
			if (p) {
				__builtin_memcpy(p->addr, addr, 16);
				__builtin_memcpy(p->relay, relay, 16);
				p->port = port;
				p->relay_port = *relay_port;
				STAT_INC(s, udp_allowed);
				return UDP_RELAY;
			}
		}
	}
	refuse(s, agent_id, addr, port, family, SOCK_DGRAM, hook, reason, ECONNREFUSED);
	return UDP_REFUSED;
}

/* An IPv4 hook's verdict, the destination rewritten to the relay when relayed. */
static __always_inline int udp_verdict4(struct bpf_sock_addr *ctx, __u32 ip4, __u16 port,
					__u16 family, __u32 hook)
{
	__u8 addr[16], relay[16];
	__u16 relay_port = 0;
	__u32 relay4;

	set_v4_mapped(addr, ip4);
	switch (udp_verdict(ctx, addr, port, family, hook, to_dns_relay(ctx, ip4, port), relay,
			    &relay_port)) {
	case UDP_ALLOWED:
		return SOCK_ALLOW;
	case UDP_RELAY:
		__builtin_memcpy(&relay4, relay + 12, 4);
		ctx->user_ip4 = relay4;
		ctx->user_port = bpf_htons(relay_port);
		return SOCK_ALLOW;
	default:
		return SOCK_REFUSE;
	}
}

/*
 * The resolver a relayed socket addressed, when addr and port are the
 * relay it was sent to: what the agent sees as the source of a reply
 * (recvmsg) or as the peer (getpeername of a connected socket), so that
 * resolvers that check where answers come from (glibc, c-ares) take them.
 */
static __always_inline const struct ag_dns_peer *relayed_peer(struct bpf_sock_addr *ctx,
							      const __u8 *addr, __u16 port)
{
	struct bpf_sock *sk = ctx->sk;
	const struct ag_dns_peer *p;

	if (!sk)
		return NULL;
	p = bpf_sk_storage_get(&dns_peer, sk, 0, 0);
	if (!p || p->relay_port != port || !addr_eq(p->relay, addr))
		return NULL;
	return p;
}

/* The IPv4 address ctx names, shown as the resolver when it is the relay. */
static __always_inline void show_resolver4(struct bpf_sock_addr *ctx)
{
	__u32 ip4 = ctx->user_ip4;
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	const struct ag_dns_peer *p;
	__u8 addr[16];

	set_v4_mapped(addr, ip4);
	p = relayed_peer(ctx, addr, port);
	if (!p)
		return;
	__builtin_memcpy(&ip4, p->addr + 12, 4);
	ctx->user_ip4 = ip4;
	ctx->user_port = bpf_htons(p->port);
}

/* The same for an AF_INET6 socket, which reaches the relay v4-mapped. */
static __always_inline void show_resolver6(struct bpf_sock_addr *ctx)
{
	__u32 a0 = ctx->user_ip6[0], a1 = ctx->user_ip6[1];
	__u32 a2 = ctx->user_ip6[2], a3 = ctx->user_ip6[3];
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	const struct ag_dns_peer *p;
	__u8 addr[16];
	__u32 d[4];

	set_v6(addr, a0, a1, a2, a3);
	p = relayed_peer(ctx, addr, port);
	if (!p)
		return;
	__builtin_memcpy(d, p->addr, 16);
	ctx->user_ip6[0] = d[0];
	ctx->user_ip6[1] = d[1];
	ctx->user_ip6[2] = d[2];
	ctx->user_ip6[3] = d[3];
	ctx->user_port = bpf_htons(p->port);
}

/* Where a redirected IPv4 connect goes: the daemon as seen from the agent's namespace. */
static __always_inline __u32 daemon_ip4(const struct ag_config *cfg, const struct ag_netns *ns)
{
	return ns ? ns->gateway_ip4 : cfg->daemon_ip4;
}

SEC("cgroup/connect4")
int ag_connect4(struct bpf_sock_addr *ctx)
{
	const struct ag_config *cfg = get_config();
	const struct ag_netns *ns;
	enum tcp_outcome outcome;
	bool has_gateway;
	__u32 type = ctx->type;
	__u32 ip4 = ctx->user_ip4;
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	__u8 addr[16];

	if (type == SOCK_DGRAM)
		return udp_verdict4(ctx, ip4, port, AF_INET, AG_HOOK_CONNECT4);
	set_v4_mapped(addr, ip4);
	if (!cfg)
		return SOCK_REFUSE;
	has_gateway = gateway_of(ctx, cfg, &ns);
	outcome =
	    tcp_verdict(ctx, cfg, has_gateway, ns, addr, port, AF_INET, true, AG_HOOK_CONNECT4);
	switch (outcome) {
	case TCP_DIRECT:
		return SOCK_ALLOW;
	case TCP_REDIRECT:
		ctx->user_ip4 = daemon_ip4(cfg, ns);
		ctx->user_port = bpf_htons(cfg->daemon_port);
		return SOCK_ALLOW;
	default:
		return SOCK_REFUSE;
	}
}

/* A connected AF_INET6 UDP socket: relayed to the v4-mapped relay like sendmsg4 does. */
static __always_inline int udp_connect6(struct bpf_sock_addr *ctx, const __u8 *addr, __u16 port)
{
	__u8 relay[16];
	__u16 relay_port = 0;
	__u32 relay4;

	switch (
	    udp_verdict(ctx, addr, port, AF_INET6, AG_HOOK_CONNECT6, false, relay, &relay_port)) {
	case UDP_ALLOWED:
		return SOCK_ALLOW;
	case UDP_RELAY:
		__builtin_memcpy(&relay4, relay + 12, 4);
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0xffff);
		ctx->user_ip6[3] = relay4;
		ctx->user_port = bpf_htons(relay_port);
		return SOCK_ALLOW;
	default:
		return SOCK_REFUSE;
	}
}

SEC("cgroup/connect6")
int ag_connect6(struct bpf_sock_addr *ctx)
{
	const struct ag_config *cfg = get_config();
	const struct ag_netns *ns;
	enum tcp_outcome outcome;
	bool has_gateway;
	__u32 type = ctx->type;
	__u32 a0 = ctx->user_ip6[0], a1 = ctx->user_ip6[1];
	__u32 a2 = ctx->user_ip6[2], a3 = ctx->user_ip6[3];
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	bool v4 = is_v4_mapped(a0, a1, a2);
	__u8 addr[16];

	set_v6(addr, a0, a1, a2, a3);
	if (type == SOCK_DGRAM)
		return udp_connect6(ctx, addr, port);
	if (!cfg)
		return SOCK_REFUSE;
	has_gateway = gateway_of(ctx, cfg, &ns);
	outcome =
	    tcp_verdict(ctx, cfg, has_gateway, ns, addr, port, AF_INET6, v4, AG_HOOK_CONNECT6);
	switch (outcome) {
	case TCP_DIRECT:
		return SOCK_ALLOW;
	case TCP_REDIRECT:
		break;
	default:
		return SOCK_REFUSE;
	}
	/*
	 * A v4-mapped destination goes to the IPv4 listener through the same
	 * mapped form, so a dual-stack socket stays dual-stack (and an
	 * IPV6_V6ONLY socket fails as it would have anyway).
	 */
	if (v4) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0xffff);
		ctx->user_ip6[3] = daemon_ip4(cfg, ns);
	} else {
		__u32 d[4];

		__builtin_memcpy(d, cfg->daemon_ip6, 16);
		ctx->user_ip6[0] = d[0];
		ctx->user_ip6[1] = d[1];
		ctx->user_ip6[2] = d[2];
		ctx->user_ip6[3] = d[3];
	}
	ctx->user_port = bpf_htons(cfg->daemon_port);
	return SOCK_ALLOW;
}

/*
 * Unconnected UDP sends.  An AF_INET6 sendto to a v4-mapped address runs
 * the sendmsg4 hook, not this one, so both are needed.
 */
SEC("cgroup/sendmsg4")
int ag_sendmsg4(struct bpf_sock_addr *ctx)
{
	__u32 ip4 = ctx->user_ip4;
	__u16 port = bpf_ntohs((__u16)ctx->user_port);

	return udp_verdict4(ctx, ip4, port, AF_INET, AG_HOOK_SENDMSG4);
}

SEC("cgroup/sendmsg6")
int ag_sendmsg6(struct bpf_sock_addr *ctx)
{
	__u32 a0 = ctx->user_ip6[0], a1 = ctx->user_ip6[1];
	__u32 a2 = ctx->user_ip6[2], a3 = ctx->user_ip6[3];
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	__u8 addr[16];

	__u8 relay[16];
	__u16 relay_port;

	set_v6(addr, a0, a1, a2, a3);
	/* Only native IPv6 destinations come here: never relayed (udp_verdict). */
	return udp_verdict(ctx, addr, port, AF_INET6, AG_HOOK_SENDMSG6, false, relay,
			   &relay_port) == UDP_ALLOWED
		   ? SOCK_ALLOW
		   : SOCK_REFUSE;
}

/* Replies from the relay: the agent sees the resolver it asked as their source. */
SEC("cgroup/recvmsg4")
int ag_recvmsg4(struct bpf_sock_addr *ctx)
{
	show_resolver4(ctx);
	return SOCK_ALLOW;
}

SEC("cgroup/recvmsg6")
int ag_recvmsg6(struct bpf_sock_addr *ctx)
{
	show_resolver6(ctx);
	return SOCK_ALLOW;
}

/*
 * Only TCP and UDP over IPv4/IPv6.  Raw and ping sockets would bypass the
 * connect hooks entirely, and MPTCP/SCTP would need hooks of their own;
 * none of them is needed to call a tool.  Holding CAP_NET_RAW in a user
 * namespace changes nothing here.
 */
SEC("cgroup/sock_create")
int ag_sock_create(struct bpf_sock *sk)
{
	__u32 family = sk->family;
	__u32 type = sk->type;
	__u32 protocol = sk->protocol;
	const struct ag_config *cfg;
	__u64 agent_id = 0;

	if ((family == AF_INET || family == AF_INET6) &&
	    ((type == SOCK_STREAM && protocol == IPPROTO_TCP) ||
	     (type == SOCK_DGRAM && protocol == IPPROTO_UDP)))
		return SOCK_ALLOW;

	cfg = get_config();
	if (cfg) {
		struct ag_stats *s;

		agent_id = current_agent(cfg);
		s = stats_of(agent_id);
		STAT_INC(s, denied);
		STAT_INC(s, sock_denied);
	}
	emit_event(agent_id, NULL, 0, family, type, protocol, AG_HOOK_SOCK_CREATE,
		   AG_REASON_SOCK_TYPE);
	return SOCK_REFUSE;
}

/* The gateway's port on any address belongs to the gateway. */
static __always_inline int bind_verdict(const __u8 *addr, __u16 port, __u16 family, __u32 type,
					__u32 hook)
{
	const struct ag_config *cfg = get_config();
	__u64 agent_id;

	if (!cfg)
		return SOCK_REFUSE;
	if (port != cfg->daemon_port)
		return SOCK_ALLOW;
	agent_id = current_agent(cfg);
	return refuse(stats_of(agent_id), agent_id, addr, port, family, type, hook,
		      AG_REASON_BIND_PORT, EPERM);
}

SEC("cgroup/bind4")
int ag_bind4(struct bpf_sock_addr *ctx)
{
	__u32 type = ctx->type;
	__u32 ip4 = ctx->user_ip4;
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	__u8 addr[16];

	set_v4_mapped(addr, ip4);
	return bind_verdict(addr, port, AF_INET, type, AG_HOOK_BIND4);
}

SEC("cgroup/bind6")
int ag_bind6(struct bpf_sock_addr *ctx)
{
	__u32 type = ctx->type;
	__u32 a0 = ctx->user_ip6[0], a1 = ctx->user_ip6[1];
	__u32 a2 = ctx->user_ip6[2], a3 = ctx->user_ip6[3];
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	__u8 addr[16];

	set_v6(addr, a0, a1, a2, a3);
	return bind_verdict(addr, port, AF_INET6, type, AG_HOOK_BIND6);
}

/*
 * A redirected socket reports the peer the agent asked for: the record in
 * its slot, if the slot still holds its own (see AG_ORIGIN_SLOTS), and if
 * the socket is connected to the gateway now -- after a disconnect
 * (AF_UNSPEC) the same socket may be connected elsewhere, directly.
 */
static __always_inline bool own_peer(struct bpf_sock_addr *ctx, __u16 family, __u8 *addr,
				     __u16 *port)
{
	const struct ag_config *cfg = get_config();
	__u16 peer_port = bpf_ntohs((__u16)ctx->user_port);
	const struct ag_origin *o;
	__u64 cookie;

	if (!cfg || peer_port != cfg->daemon_port)
		return false;
	cookie = bpf_get_socket_cookie(ctx);
	o = origin_slot(cookie);
	if (!o || o->cookie != cookie)
		return false;
	barrier();
	__builtin_memcpy(addr, o->addr, 16);
	*port = o->port;
	if (o->family != family)
		return false;
	barrier();
	return o->cookie == cookie;
}

SEC("cgroup/getpeername4")
int ag_getpeername4(struct bpf_sock_addr *ctx)
{
	__u8 addr[16];
	__u16 port;
	__u32 ip4;

	if (!own_peer(ctx, AF_INET, addr, &port)) {
		show_resolver4(ctx);
		return SOCK_ALLOW;
	}
	__builtin_memcpy(&ip4, addr + 12, 4);
	ctx->user_ip4 = ip4;
	ctx->user_port = bpf_htons(port);
	return SOCK_ALLOW;
}

SEC("cgroup/getpeername6")
int ag_getpeername6(struct bpf_sock_addr *ctx)
{
	__u8 addr[16];
	__u16 port;
	__u32 d[4];

	if (!own_peer(ctx, AF_INET6, addr, &port)) {
		show_resolver6(ctx);
		return SOCK_ALLOW;
	}
	__builtin_memcpy(d, addr, 16);
	ctx->user_ip6[0] = d[0];
	ctx->user_ip6[1] = d[1];
	ctx->user_ip6[2] = d[2];
	ctx->user_ip6[3] = d[3];
	ctx->user_port = bpf_htons(port);
	return SOCK_ALLOW;
}

/*
 * The daemon's IPv4 listener is bound to the wildcard address, so that the
 * gateway address on the veths of namespaced agents reaches it; this filter
 * (SO_ATTACH_BPF, attached before bind) is what keeps it off every other
 * interface.  A packet passes when it came through loopback, or through
 * the host-side veth of a namespace in netns_links, from that namespace's
 * address, to the gateway address.  Anything else -- a SYN from another
 * host to any of this host's addresses, or a spoofed source on the wrong
 * veth -- is dropped before the handshake: nothing outside the host can
 * even tell the port is open.  Accepted sockets inherit the filter.
 */
#define LOOPBACK_IFINDEX 1

SEC("socket")
int ag_gateway_filter(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	const struct ag_netns *ns;
	__u32 addrs[2];

	if (ifindex == LOOPBACK_IFINDEX)
		return skb->len;
	ns = bpf_map_lookup_elem(&netns_links, &ifindex);
	if (!ns || bpf_skb_load_bytes_relative(skb, 12, addrs, sizeof(addrs), BPF_HDR_START_NET))
		return 0;
	return addrs[0] == ns->agent_ip4 && addrs[1] == ns->gateway_ip4 ? skb->len : 0;
}

/*
 * AF_UNIX: an agent reaches a unix socket only at an address listed for it
 * (agents[].unix_sockets), whatever listens there: a local proxy, a
 * container runtime, D-Bus, another agent.  The unix-socket hooks exist
 * since kernel 6.7; libbpf 1.1 knows no section for them, so these two sit
 * in a sock_addr section and the loader sets their attach types from
 * ag_progs (lib/kern.c), or leaves them unloaded on an older kernel.
 *
 * The hooks' context has no field for the path: the kernel's own copy of
 * the address is reached through bpf_cast_to_kern_ctx (a kfunc since 6.2,
 * weak so the object still loads where it is missing) and copied with
 * bpf_probe_read_kernel.  The hooks run after the kernel validated the
 * address (unix_validate_addr: family AF_UNIX, 1 to 108 path bytes) and
 * before it looks the path up, so a refusal reveals nothing about what
 * exists, and a socket that does not exist is refused just the same.
 *
 * Both hooks run for the cgroup of the socket, which is the cgroup of its
 * creator; the agent named is the caller's, as everywhere here.
 */
#define AF_UNIX 1
#define SUN_PATH_OFFSET 2 /* offsetof(struct sockaddr_un, sun_path) */

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym __weak;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AG_MAX_UNIX_PATHS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ag_unix_key);
	__type(value, __u32);
} unix_paths SEC(".maps");

/*
 * The address as the kernel will resolve it (agentgate.h, struct
 * ag_unix_key): false if it cannot be read, which refuses it.
 */
static __always_inline bool unix_address(struct bpf_sock_addr *ctx, struct ag_unix_key *key)
{
	struct bpf_sock_addr_kern *sa = bpf_cast_to_kern_ctx(ctx);
	__u32 len = sa->uaddrlen, end;

	if (len <= SUN_PATH_OFFSET)
		return false;
	/*
	 * All of sun_path, whatever len says: a constant size is what the
	 * verifier can bound, and the kernel's copy of the address is a
	 * struct sockaddr_storage (the syscalls, io_uring), so the bytes are
	 * there.  The ones past the address are cleared below.
	 */
	if (bpf_probe_read_kernel(key->path, AG_UNIX_PATH_LEN,
				  (const char *)sa->uaddr + SUN_PATH_OFFSET))
		return false;
	end = len - SUN_PATH_OFFSET;
	if (end > AG_UNIX_PATH_LEN)
		end = AG_UNIX_PATH_LEN;
	/* A filesystem path ends at its first NUL, as unix_mkname_bsd() has it. */
	if (key->path[0]) {
		for (__u32 i = 1; i < AG_UNIX_PATH_LEN; i++) {
			if (i >= end)
				break;
			if (!key->path[i]) {
				end = i;
				break;
			}
		}
	}
	for (__u32 i = 1; i < AG_UNIX_PATH_LEN; i++)
		if (i >= end)
			key->path[i] = 0;
	key->len = end;
	return true;
}

static __always_inline void emit_unix_event(__u64 agent_id, __u16 type, __u32 hook,
					    const struct ag_unix_key *key)
{
	struct ag_unix_event *u = bpf_ringbuf_reserve(&events, sizeof(*u), 0);

	if (!u)
		return;
	__builtin_memset(u, 0, sizeof(*u));
	fill_event(&u->ev, agent_id, NULL, 0, AF_UNIX, type, 0, hook, AG_REASON_UNIX_PATH);
	u->path_len = key->len;
	__builtin_memcpy(u->path, key->path, AG_UNIX_PATH_LEN);
	bpf_ringbuf_submit(u, BPF_RB_FORCE_WAKEUP); /* as emit_event */
}

static __always_inline int unix_verdict(struct bpf_sock_addr *ctx, __u32 hook)
{
	const struct ag_config *cfg = get_config();
	__u16 type = (__u16)ctx->type;
	struct ag_unix_key key;
	bool readable;

	__builtin_memset(&key, 0, sizeof(key));
	/* Fail closed: without the config, no agent can be told apart. */
	if (!cfg)
		return SOCK_REFUSE;
	key.agent_cgroup_id = current_agent(cfg);
	readable = unix_address(ctx, &key);
	if (readable && bpf_map_lookup_elem(&unix_paths, &key))
		return SOCK_ALLOW;
	/* Fail closed: an address that is not listed, or that could not be read. */
	count_refusal(stats_of(key.agent_cgroup_id), AG_REASON_UNIX_PATH);
	emit_unix_event(key.agent_cgroup_id, type, hook, &key);
	return SOCK_REFUSE;
}

SEC("cgroup/connect4") /* attach type BPF_CGROUP_UNIX_CONNECT, set by the loader */
int ag_connect_unix(struct bpf_sock_addr *ctx)
{
	return unix_verdict(ctx, AG_HOOK_CONNECT_UNIX);
}

SEC("cgroup/sendmsg4") /* attach type BPF_CGROUP_UNIX_SENDMSG, set by the loader */
int ag_sendmsg_unix(struct bpf_sock_addr *ctx)
{
	return unix_verdict(ctx, AG_HOOK_SENDMSG_UNIX);
}
