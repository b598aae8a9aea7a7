/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The ABI shared by the kernel programs (bpf/sock.bpf.c) and user space.
 *
 * Every map value here is BTF-typed so that `bpftool map dump pinned
 * /sys/fs/bpf/<instance>/<map>` prints field names.  Field order and sizes are
 * part of the ABI between a pinned instance and a restarted daemon: append new
 * fields at the end of a struct, never reorder.
 *
 * Conventions: IPv4 addresses are carried as IPv4-mapped IPv6 addresses
 * (::ffff:a.b.c.d) wherever one key or value has to hold both families, so a
 * v4 destination reached through an AF_INET6 socket gets exactly the verdict
 * it gets through an AF_INET socket.  Ports are in host byte order unless a
 * field name says otherwise.
 */
#ifndef AGENTGATE_H
#define AGENTGATE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#include <linux/bpf.h> /* struct bpf_spin_lock */
#endif

#define AG_COMM_LEN 16
#define AG_NAME_LEN 32
#define AG_MAX_RESOLVERS 4
#define AG_MAX_AGENTS 4096
#define AG_MAX_RULES 16384
/*
 * Sockets in each of the relay's splice maps (bpf/splice.bpf.c): two per
 * spliced connection.  A connection that finds them full is copied instead.
 */
#define AG_SPLICE_SOCKS 65536
/*
 * Bytes a spliced socket's verdict may have redirected that its partner's
 * socket has not taken yet (bpf/splice.bpf.c); past it, that direction of
 * the connection is copied.  Linux's largest default send buffer.
 */
#define AG_SPLICE_BACKLOG (4u << 20)
/*
 * Slots of the origin map: a redirected socket's record lives in slot
 * (socket cookie mod AG_ORIGIN_SLOTS) until a socket created that many
 * cookies later takes the slot over.  A power of two.
 */
#define AG_ORIGIN_SLOTS 65536

/* What happens to a TCP connect of an agent. */
enum ag_verdict {
	AG_VERDICT_REDIRECT = 0, /* to agentgated, origin recorded */
	AG_VERDICT_DIRECT = 1,	 /* explicit allow-list: untouched */
	AG_VERDICT_DENY = 2,	 /* refused with EPERM */
};

/* Why a hook refused something; carried in events and in the log. */
enum ag_reason {
	AG_REASON_NONE = 0,
	AG_REASON_SOCK_TYPE = 1,      /* raw, ping, MPTCP, SCTP, ... socket */
	AG_REASON_RULE = 2,	      /* dest_rules or agent mode said DENY */
	AG_REASON_NO_DAEMON = 3,      /* the daemon is not serving: fail closed */
	AG_REASON_UDP_DEST = 4,	      /* UDP to something not a resolver */
	AG_REASON_BIND_PORT = 5,      /* bind of the gateway's port */
	AG_REASON_GATEWAY_LOOP = 6,   /* connect straight to the listener */
	AG_REASON_NO_STORAGE = 7,     /* origin record could not be stored */
	AG_REASON_NO_V6_LISTENER = 8, /* IPv6 destination, no [::1] listener */
	AG_REASON_CONNECT_RATE = 9,   /* the agent's connect bucket is empty */
	AG_REASON_CALL_BUDGET = 10,   /* a tool-call budget is spent */
	AG_REASON_NO_GATEWAY = 11,    /* a network namespace the daemon does not serve */
	AG_REASON_UNIX_PATH = 12,     /* AF_UNIX address not in the agent's unix_sockets */
	AG_REASON_NO_DNS_RELAY = 13,  /* UDP to a resolver, no DNS relay to send it to */
};

/* Which hook produced an event. */
enum ag_hook {
	AG_HOOK_SOCK_CREATE = 1,
	AG_HOOK_CONNECT4 = 2,
	AG_HOOK_CONNECT6 = 3,
	AG_HOOK_SENDMSG4 = 4,
	AG_HOOK_SENDMSG6 = 5,
	AG_HOOK_BIND4 = 6,
	AG_HOOK_BIND6 = 7,
	AG_HOOK_CONNECT_UNIX = 8, /* AF_UNIX connect, stream and datagram */
	AG_HOOK_SENDMSG_UNIX = 9, /* AF_UNIX datagram sendto/sendmsg with an address */
};

/* config: one element, written by the loader, read by every hook. */
struct ag_config {
	__u8 daemon_ip6[16]; /* [::1] listener, all zero if none */
	__u32 daemon_ip4;    /* network byte order, 0 if no v4 listener */
	__u16 daemon_port;   /* host byte order */
	__u16 nr_resolvers;
	__u32 mark;			      /* SO_MARK of the daemon's sockets */
	__u32 agents_level;		      /* cgroup level of <instance>/agents */
	__u64 daemon_cgroup_id;		      /* <instance>/daemon */
	__u8 resolvers[AG_MAX_RESOLVERS][16]; /* v4-mapped or v6 */
	__u16 resolver_port;		      /* host byte order, normally 53 */
	__u16 pad;
	__u32 default_verdict; /* enum ag_verdict for unknown agents */
	__u32 nr_rules;	       /* entries in dest_rules; 0 skips the lookups */
	__u64 netns_cookie;    /* the daemon's network namespace (SO_NETNS_COOKIE) */
	/* agentgatectl run's per-run uid range; 0: its defaults (not read by BPF). */
	__u32 agent_uid_min;
	__u32 agent_uid_max;
	/*
	 * The daemon's DNS relay for agents in its own network namespace
	 * (daemon/dns.c): UDP of theirs to a resolver goes here instead.
	 * Port 0: no relay, and that UDP is refused (fail closed).
	 */
	__u32 dns_relay_ip4;  /* network byte order, 127.0.0.1 */
	__u16 dns_relay_port; /* host byte order */
	__u16 pad2;
	/*
	 * The host-side address of this instance's namespaced agents' veths
	 * and of its DNS relay for them (network byte order; 0: none yet),
	 * one of AG_NETNS_GATEWAY_AT(): chosen by the daemon at install,
	 * kept across restarts (lib/netns.c ag_netns_gateway_choose).
	 */
	__u32 netns_gateway_ip4;
	__u32 pad3;
};

/* ag_agent.flags */
#define AG_AGENT_F_QUOTA (1u << 0) /* has a quota entry: check it on connect */

/*
 * Agents in a network namespace of their own (agentgatectl run --netns)
 * reach the daemon over a veth pair, point to point: every host-side end
 * of an instance carries that instance's gateway address
 * (ag_config.netns_gateway_ip4), and the agent's end an address of its
 * own, AG_NETNS_AGENT(slot), so addresses are unique on the host across
 * agents and instances (the slot is claimed by creating the host-side
 * interface, whose name holds it).  Link-local: never routed off the host.
 */
#define AG_NETNS_AGENT_BASE 0xa9fe4000u /* 169.254.64.0, host byte order */
#define AG_NETNS_SLOTS 16380u		/* 169.254.64.2 .. 169.254.127.253 */
#define AG_NETNS_MASK 0xffffc000u	/* 169.254.64.0/18: every agent, no gateway */
#define AG_NETNS_AGENT(slot) (AG_NETNS_AGENT_BASE + 2 + (slot))
/*
 * Instances' gateway addresses: 169.254.128.1 .. 169.254.191.254, outside
 * AG_NETNS_MASK, so a gateway is never taken for an agent's address.
 */
#define AG_NETNS_GATEWAY_BASE 0xa9fe8000u /* 169.254.128.0, host byte order */
#define AG_NETNS_GATEWAYS 16382u
#define AG_NETNS_GATEWAY_AT(i) (AG_NETNS_GATEWAY_BASE + 1 + (i))
/* The daemon's DNS relay on the gateway address: the namespace's resolver. */
#define AG_NETNS_DNS_PORT 53

/*
 * netns: key = the namespace's cookie (SO_NETNS_COOKIE), for the connect
 * hooks; netns_links: key = the host-side ifindex, for the listener's
 * filter.  Both hold the same value for one namespace.
 */
struct ag_netns {
	__u32 gateway_ip4; /* network byte order: the redirect target */
	__u32 agent_ip4;   /* network byte order: the agent's end */
	__u32 ifindex;	   /* host-side end, root namespace */
	__u32 slot;
	__u64 agent_cgroup_id;
	__u64 cookie; /* of the agent's namespace */
	__s32 nsid;   /* the namespace's id in the root namespace (origin_claim) */
	__u32 pad;
};

/* agents: key = cgroup id of <instance>/agents/<name>. */
struct ag_agent {
	__u32 index;   /* > 0; dest_rules key, 0 means "all agents" */
	__u32 verdict; /* enum ag_verdict: default for this agent's TCP */
	__u32 flags;   /* AG_AGENT_F_* */
	__u32 pad;
	char name[AG_NAME_LEN];
};

/*
 * dest_rules: LPM trie.  prefixlen counts the 64 bits of agent_index and
 * port, which are always matched in full, plus the significant bits of
 * addr.  agent_index 0 holds the rules for every agent; port 0 the rules
 * for every port.  A connect is judged by the first of: this agent and this
 * port, this agent and every port, every agent and this port, every agent
 * and every port; within each, the longest address prefix.
 */
struct ag_rule_key {
	__u32 prefixlen;
	__u32 agent_index;
	__u32 port; /* host byte order */
	__u8 addr[16];
};

struct ag_rule {
	__u32 verdict; /* enum ag_verdict */
};

/* stats: key = agent cgroup id (0: a cgroup below agents/ with no agent). */
struct ag_stats {
	__u64 redirected;
	__u64 direct;
	__u64 denied;	   /* every refusal, whatever the reason */
	__u64 sock_denied; /* of which: socket type */
	__u64 udp_denied;  /* of which: UDP destination */
	__u64 no_daemon;   /* of which: no daemon to redirect to (not serving, or no gateway) */
	__u64 bind_denied; /* of which: gateway port bind */
	__u64 udp_allowed;
	__u64 quota_denied; /* reserved for the quota hooks */
	__u64 unix_denied;  /* of which: AF_UNIX address not allowed */
};

/*
 * quota: key = agent cgroup id.  Limits are written by user space, usage by
 * the hooks (connect bucket) and the daemon (call budgets), all under lock,
 * with BPF_F_LOCK from user space, so nobody reads a torn value.  A limit of
 * 0 means no limit.  The connect bucket holds tokens in thousandths so that
 * slow rates refill smoothly.  A budget window that has ended counts as
 * unspent even before the daemon resets it.
 */
#define AG_QUOTA_MILLI 1000ull
#define AG_MINUTE_NS (60ull * 1000000000ull)
#define AG_DAY_NS (86400ull * 1000000000ull)

struct ag_quota {
	struct bpf_spin_lock lock;
	__u32 connect_rate;  /* new connections per second */
	__u32 connect_burst; /* bucket size */
	__u32 calls_per_minute;
	__u32 calls_per_day;
	__u32 pad;
	__u64 connect_tokens_milli; /* tokens x 1000 */
	__u64 connect_refill_ns;    /* bpf_ktime_get_ns() of the last refill */
	__u64 connect_refused;
	__u64 calls_minute; /* calls in the window starting at ... */
	__u64 minute_start_ns;
	__u64 calls_day;
	__u64 day_start_ns;
	__u64 calls_refused;
};

/*
 * quota_charge (bpf/daemon.bpf.c), run by the daemon with BPF_PROG_TEST_RUN
 * once per tool call: the context goes in with agent_id and comes back
 * with the outcome.  Charging is done in BPF because only a program can
 * take the value's lock for a read-modify-write; a BPF_F_LOCK update from
 * user space writes the whole value and would undo a connect hook's token
 * taken between the lookup and the update.
 */
enum ag_budget {
	AG_BUDGET_NONE = 0,   /* charged, or the agent has no quota entry */
	AG_BUDGET_MINUTE = 1, /* calls_per_minute is spent: refused */
	AG_BUDGET_DAY = 2,    /* calls_per_day is spent: refused */
};

struct ag_charge {
	__u64 agent_id;	    /* in: the agent's cgroup id */
	__u64 calls_minute; /* out: usage after this call, current windows */
	__u64 calls_day;
	__u32 spent; /* out: enum ag_budget */
	__u32 limit; /* out: the spent budget's limit, 0 when none is spent */
};

/*
 * origin: what the agent asked for, and who asked, for every redirected
 * socket, in slot (cookie mod AG_ORIGIN_SLOTS), written by the connect
 * hook before the SYN leaves.  The cookie says whose record a slot holds:
 * the daemon takes a record only for the socket at the other end of the
 * connection it accepted (origin_claim), getpeername() only for its own
 * socket.
 */
struct ag_origin {
	__u64 cgroup_id;       /* the calling process's own cgroup */
	__u64 agent_cgroup_id; /* <instance>/agents/<name>, 0 if none */
	__u64 cookie;	       /* socket cookie of the agent's socket, 0: empty slot */
	__u64 ts_ns;	       /* bpf_ktime_get_ns() at connect */
	__u32 tgid;
	__u32 uid;
	char comm[AG_COMM_LEN];
	__u8 addr[16]; /* original destination, v4-mapped for v4 */
	__u16 port;    /* original destination port, host order */
	__u16 family;  /* AF_INET/AF_INET6 of the agent's socket */
	__u32 pad;
};

/*
 * origin_claim (bpf/daemon.bpf.c), run by the daemon with
 * BPF_PROG_TEST_RUN for every accepted connection: it looks up the socket
 * at the other end of the connection, the agent's, in the agent's network
 * namespace, and returns the record of that socket's cookie.  A connection
 * from any other socket finds no record, whatever the slot holds.  The
 * daemon's end is the redirect target the hooks wrote (config) or, for a
 * netns agent (found by its address in netns_links), the gateway, so the
 * peer's address is all the daemon passes.
 */
struct ag_claim {
	__u8 addr[16]; /* in: the peer's address, v4-mapped for v4 */
	__u16 port;    /* in: the peer's port, host order */
	__u16 pad;
	__s32 result;		 /* out: 0, or -ENOENT: no agent socket, or no record of it */
	struct ag_origin origin; /* out, when result is 0 */
};

/* events: ring buffer record for every refusal. */
struct ag_event {
	__u64 ts_ns;
	__u64 cgroup_id;
	__u64 agent_cgroup_id;
	__u32 tgid;
	__u32 uid;
	char comm[AG_COMM_LEN];
	__u8 addr[16];
	__u16 port;
	__u16 family;
	__u16 type; /* SOCK_STREAM, SOCK_DGRAM, ... */
	__u16 protocol;
	__u32 hook;   /* enum ag_hook */
	__u32 reason; /* enum ag_reason */
};

/*
 * AF_UNIX (the unix-socket cgroup hooks, kernel 6.7 and later).  An
 * agent's connect or addressed send to a unix socket goes through only when
 * its address is in unix_paths for the agent: deny by default.  The key
 * holds the address as the kernel resolves it: a filesystem path up to its
 * first NUL byte; an abstract name (path[0] == 0) as all len bytes, NULs
 * included, so that "\0a" and "\0a\0" stay two keys.  Bytes past len are
 * zero.
 */
#define AG_UNIX_PATH_LEN 108   /* sizeof(((struct sockaddr_un *)0)->sun_path) */
#define AG_MAX_UNIX_PATHS 8192 /* AG_MAX_CONF_AGENTS x AG_MAX_UNIX_SOCKETS */

/* unix_paths: key; the value is a __u32, 1. */
struct ag_unix_key {
	__u64 agent_cgroup_id; /* <instance>/agents/<name> */
	__u32 len;	       /* bytes of path that count */
	__u32 pad;
	char path[AG_UNIX_PATH_LEN];
};

/* events: the record of an AF_UNIX refusal, a struct ag_event and the address. */
struct ag_unix_event {
	struct ag_event ev; /* family AF_UNIX, hook AG_HOOK_*_UNIX */
	__u32 path_len;	    /* as ag_unix_key.len */
	__u32 pad;
	char path[AG_UNIX_PATH_LEN];
};

/*
 * xdp_guard (ingress mode): per-source token buckets in front of a listener
 * the gateway exposes on a network interface.  New connections (TCP SYN)
 * and UDP datagrams to the guarded port (0: every port) take a token from
 * their source's bucket or are dropped in XDP.  Established TCP, ARP and
 * ICMP pass: the guard stops floods, it is not a firewall.
 */
struct ag_guard_config {
	__u32 rate;  /* tokens per second per source */
	__u32 burst; /* bucket size per source; 0 drops every counted packet */
	__u16 port;  /* host byte order, 0: every port */
	__u16 pad;
	__u32 flags; /* AG_GUARD_F_* */
	/* AG_GUARD_F_AGENT only: what the agent's namespace may reach. */
	__u32 gateway_ip4;   /* network byte order */
	__u16 gateway_port;  /* host byte order */
	__u16 resolver_port; /* host byte order */
	__u32 nr_resolvers;
	__u32 pad2;
	__u8 resolvers[AG_MAX_RESOLVERS][16]; /* v4-mapped or v6 */
	__u64 agent_cgroup_id;		      /* whose namespace: for the counters */
};

/*
 * Agent mode, on the host-side veth of a namespaced agent: ARP, IPv6
 * neighbour discovery, the gateway's listener, the DNS relay on the
 * gateway (UDP AG_NETNS_DNS_PORT) and the resolvers pass;
 * everything else the namespace sends is dropped and counted in
 * ag_guard_stats.dropped.  No buckets: a namespace has one source.
 */
#define AG_GUARD_F_AGENT (1u << 0)

/*
 * Unlocked: LRU maps cannot hold a bpf_spin_lock, and an LRU is what keeps
 * a flood of spoofed sources from locking out new ones.  Two CPUs racing on
 * one source may let a packet or two more through than the bucket holds.
 */
struct ag_guard_source {
	__u64 tokens_milli;
	__u64 refill_ns;
	__u64 passed;
	__u64 dropped;
};

struct ag_guard_stats {
	__u64 passed;	 /* counted packets that had a token */
	__u64 dropped;	 /* counted packets that had none */
	__u64 uncounted; /* not subject to the guard */
};

/*
 * dns_peer (socket storage of sock.bpf.c): the resolver an agent's UDP
 * socket last addressed, and the relay the hook sent it to instead, so
 * that recvmsg and getpeername show the agent the resolver as the peer.
 */
struct ag_dns_peer {
	__u8 addr[16];	/* the resolver asked, v4-mapped for v4 */
	__u8 relay[16]; /* where the datagram went, v4-mapped */
	__u16 port;	/* the resolver's port, host order */
	__u16 relay_port;
	__u32 pad;
};

/*
 * dns_claim (bpf/daemon.bpf.c), run by the daemon with BPF_PROG_TEST_RUN
 * for every datagram on its loopback DNS relay: the agent of the UDP
 * socket that holds the datagram's source address and port.  In and out
 * through the context's cb[] (a cgroup_skb program writes nothing else):
 * in cb[0] the source address (network byte order), cb[1] its port (host
 * order); out cb[2] 0 or ENOENT (no such socket of an agent), cb[3] and
 * cb[4] the low and high halves of the agent's cgroup id.
 */
enum ag_dns_claim_cb {
	AG_DNS_CLAIM_ADDR = 0,
	AG_DNS_CLAIM_PORT = 1,
	AG_DNS_CLAIM_RESULT = 2,
	AG_DNS_CLAIM_AGENT_LO = 3,
	AG_DNS_CLAIM_AGENT_HI = 4,
};

/*
 * splice_flows (bpf/splice.bpf.c), by the cookie of a spliced socket: the
 * bytes its verdict redirected that the partner's socket has not taken yet.
 * The daemon inserts it zeroed; the verdict alone writes it after.
 */
struct ag_splice_flow {
	__u64 pending;	   /* redirected, not yet in the partner's socket */
	__u32 partner_seq; /* the partner's write_seq when last looked at */
	__u8 started;	   /* partner_seq was taken */
	__u8 kept;	   /* the backlog was full once: every skb stays here */
	__u8 told;	   /* the daemon was told so (splice_kept) */
	__u8 pad;
};

/*
 * splice_kept (bpf/splice.bpf.c): a ring buffer of the cookies of spliced
 * sockets whose verdict began to keep their skbs, one record each, which the
 * daemon reads to copy the rest (daemon/relay_splice.c).  Room for a record of
 * every socket AG_SPLICE_SOCKS allows at once: no notice is ever dropped.
 */
#define AG_SPLICE_KEPT_RING (AG_SPLICE_SOCKS * 16)

#endif /* AGENTGATE_H */
