/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The kernel side of an instance: load, pin, adopt, inspect, remove.
 *
 * Programs are attached as bpf_links pinned under /sys/fs/bpf/<instance>/
 * links/; maps are pinned as /sys/fs/bpf/<instance>/<map>.  A pinned link
 * outlives the process that created it, which is what makes the instance
 * fail closed when the daemon dies.
 */
#ifndef AG_KERN_H
#define AG_KERN_H

#include <stdbool.h>
#include <stdint.h>

#include "agentgate.h"
#include "instance.h"

enum ag_map_id {
	AG_MAP_CONFIG,
	AG_MAP_AGENTS,
	AG_MAP_DEST_RULES,
	AG_MAP_STATS,
	AG_MAP_ORIGIN,
	AG_MAP_EVENTS,
	AG_MAP_QUOTA,
	AG_MAP_NETNS,
	AG_MAP_NETNS_LINKS,
	AG_MAP_SERVING,
	AG_MAP_UNIX_PATHS,
	AG_MAP__COUNT,
};

/* Pin names, indexed by enum ag_map_id. */
extern const char *const ag_map_names[AG_MAP__COUNT];

#define AG_PROG_COUNT 13

/*
 * enum bpf_attach_type values of the unix-socket hooks (kernel 6.7), which
 * the uapi headers of the build host (Debian 12: 6.1) do not have yet.
 */
#define AG_ATTACH_UNIX_CONNECT 49 /* BPF_CGROUP_UNIX_CONNECT */
#define AG_ATTACH_UNIX_SENDMSG 50 /* BPF_CGROUP_UNIX_SENDMSG */

/* Every program is attached to <instance>/agents. */
struct ag_prog_desc {
	const char *name; /* link pin name, links/<name> */
	const char *prog; /* program name in sock.bpf.c */
	int attach_type;  /* enum bpf_attach_type, set before load */
};

extern const struct ag_prog_desc ag_progs[AG_PROG_COUNT];

struct sock_bpf;

struct ag_kern {
	struct sock_bpf *skel; /* set only in the process that loaded them */
	int map_fd[AG_MAP__COUNT];
	bool adopted; /* found pinned and reused */
	/* bpf/daemon.bpf.c programs, -1 unless installed by this process */
	int charge_fd;
	int claim_fd;
	int dns_claim_fd;
	/* the socket in the serving map while this process serves, else -1 */
	int serving_fd;
};

/*
 * Loads and attaches the instance's programs, or adopts them if they are
 * already pinned (a daemon restart: nothing is detached, nothing
 * re-attached).  cfg is written before any program is attached.  Either
 * way it also loads bpf/daemon.bpf.c on the instance's maps, for
 * ag_quota_charge and ag_kern_origin.  The instance does not serve until
 * ag_kern_serving says so.
 */
int ag_kern_install(struct ag_kern *k, const struct ag_instance *in, const struct ag_config *cfg,
		    struct ag_err *err);
/* Opens the pinned maps of an installed instance (CLI, tests). */
int ag_kern_open(struct ag_kern *k, const struct ag_instance *in, struct ag_err *err);
/*
 * ag_gateway_filter, the socket filter that lets the daemon's wildcard IPv4
 * listener serve loopback and the veths of namespaced agents only (pinned
 * as <pin_dir>/gateway_filter).  Returns a program fd for SO_ATTACH_BPF.
 */
int ag_kern_gateway_filter(const struct ag_instance *in, struct ag_err *err);
/* No fd held: what ag_kern_close may be called on before install or open. */
void ag_kern_reset(struct ag_kern *k);
/* Closes fds; never detaches or unpins. */
void ag_kern_close(struct ag_kern *k);
/* Whether every link of the instance that this kernel can have is pinned. */
bool ag_kern_installed(const struct ag_instance *in);
/* Whether ag_progs[i] is loaded on this kernel (unix hooks need 6.7). */
bool ag_kern_prog_supported(int i);
/* Unpins links (detaching the programs) and maps, removes the directory. */
int ag_kern_uninstall(const struct ag_instance *in, struct ag_err *err);

/* cfg->netns_cookie 0 stands for this process's network namespace. */
int ag_kern_set_config(const struct ag_kern *k, const struct ag_config *cfg, struct ag_err *err);
int ag_kern_get_config(const struct ag_kern *k, struct ag_config *cfg, struct ag_err *err);

/*
 * The origin of a connection accepted by the daemon (fd): the record of
 * the agent's socket at its other end, written by the connect hook before
 * its SYN left.  -ENOENT: the connection did not come through a hook, or
 * its agent has reset it already.  Only in a process that installed the
 * instance (claim_fd).
 */
int ag_kern_origin(const struct ag_kern *k, int fd, struct ag_origin *o);

/*
 * The agent (its cgroup id) of a datagram that reached the loopback DNS
 * relay from peer (bpf/daemon.bpf.c dns_claim): 0, or -ENOENT when no
 * socket of an agent holds that address and port.  Only in a process that
 * installed the instance (dns_claim_fd).
 */
struct sockaddr_in;
int ag_kern_dns_claim(const struct ag_kern *k, const struct sockaddr_in *peer, uint64_t *agent);

/*
 * Whether the connect hooks redirect agents' connects: on once this
 * process's listeners accept, off before they close.  On puts a socket of
 * this process's into the serving map (serving_fd); the kernel takes it out
 * when the socket closes, so a process that dies stops serving with it,
 * and a process that hands serving_fd to another (a child) and closes its
 * own copy leaves the instance serving for as long as that one lives.  Off
 * takes out only this process's socket: without one, it does nothing.
 */
int ag_kern_serving(struct ag_kern *k, bool on, struct ag_err *err);
/* Whether some process's socket is in the instance's serving map. */
bool ag_kern_is_serving(const struct ag_instance *in);

/*
 * The relay's splice maps (bpf/splice.bpf.c, lib/kern_splice.c): both
 * socket hashes keyed by socket cookie, the verdict attached to from_fd.
 * -1 when not open.
 */
struct ag_splice_maps {
	int peers_fd; /* splice_peers: the socket a cookie's bytes go to */
	int from_fd;  /* splice_from: the sockets whose bytes are spliced */
	int flows_fd; /* splice_flows: what each one's verdict redirected */
	int kept_fd;  /* splice_kept: the sockets whose verdict keeps their bytes */
};
/*
 * Adopts the pinned maps (adopt, and they are this build's), else loads,
 * attaches and pins them over any old pins.  An error is the kernel's
 * refusal: the relay then copies.
 */
int ag_splice_maps_open(struct ag_splice_maps *m, const struct ag_instance *in, bool adopt,
			struct ag_err *err);
void ag_splice_maps_close(struct ag_splice_maps *m);

struct ag_link_status {
	const char *name;
	bool pinned;
	uint32_t link_id;
	uint32_t prog_id;
	uint64_t cgroup_id;
};
/* Status of every link pin of the instance, in ag_progs order. */
void ag_kern_links(const struct ag_instance *in, struct ag_link_status out[AG_PROG_COUNT]);

/*
 * Agents: cgroup <instance>/agents/<name>, registered in the agents map.
 * AG_VERDICT_KEEP keeps a registered agent's verdict and gives a new one the
 * instance's default verdict.
 */
#define AG_VERDICT_KEEP UINT32_MAX
int ag_agent_register(const struct ag_kern *k, const struct ag_instance *in, const char *name,
		      uint32_t verdict, uint64_t *cgroup_id, struct ag_err *err);
int ag_agent_lookup(const struct ag_kern *k, uint64_t cgroup_id, struct ag_agent *agent);
bool ag_agent_name_valid(const char *name);

/* dest_rules: prefixlen in IPv6 bits (v4 addresses are v4-mapped). */
int ag_rule_add(const struct ag_kern *k, uint32_t agent_index, const uint8_t addr[16],
		int prefixlen, uint16_t port, uint32_t verdict, struct ag_err *err);

/*
 * Quotas (DESIGN section 7).  Limits of 0 mean no limit; all four 0 removes
 * the agent's quota.  Setting keeps usage; a new quota starts with a full
 * connect bucket.  Every access holds the value's lock (BPF_F_LOCK).
 */
struct ag_quota_limits {
	uint32_t connect_rate;
	uint32_t connect_burst;
	uint32_t calls_per_minute;
	uint32_t calls_per_day;
};

int ag_quota_set(const struct ag_kern *k, uint64_t agent_id, const struct ag_quota_limits *l,
		 struct ag_err *err);
/* -ENOENT when the agent has no quota. */
int ag_quota_get(const struct ag_kern *k, uint64_t agent_id, struct ag_quota *q);
/* Usage and refusals to zero, the connect bucket full again. */
int ag_quota_reset(const struct ag_kern *k, uint64_t agent_id, struct ag_err *err);
/*
 * One tool call of agent_id against its call budgets (a quota_charge run):
 * counted, or refused and counted as a refusal, with c->spent naming the
 * spent budget.  An agent without a quota entry is not charged.  Needs no
 * capability, only an instance this process installed (charge_fd).
 */
int ag_quota_charge(const struct ag_kern *k, uint64_t agent_id, struct ag_charge *c,
		    struct ag_err *err);

const char *ag_verdict_name(uint32_t verdict);
int ag_verdict_parse(const char *s, uint32_t *verdict);
const char *ag_reason_name(uint32_t reason);
const char *ag_hook_name(uint32_t hook);

/*
 * unix_paths: the AF_UNIX addresses each agent may connect and send to.
 * addr is an absolute filesystem path, or "@name" for an abstract one;
 * -EINVAL or -ENAMETOOLONG otherwise.
 */
int ag_unix_key_make(uint64_t agent_id, const char *addr, struct ag_unix_key *key);
/*
 * Makes the map hold exactly want (sorted here), for every agent: adds
 * before it removes, so an address listed before and after is never
 * refused in between.
 */
int ag_unix_sync(const struct ag_kern *k, struct ag_unix_key *want, int nr, struct ag_err *err);
/* A refused address for logs and audit: "@name" for abstract, bytes escaped. */
const char *ag_unix_addr_fmt(const char *path, uint32_t len, char *buf, size_t size);

/*
 * Live upgrade (kern_upgrade.c): this build's programs replace the pinned
 * ones on the same links (bpf_link_update) and the same maps, contents
 * and all.  Refused, with nothing changed, when the instance was pinned by
 * a newer build or a map's layout differs.  Then like an adopt.
 */
int ag_kern_upgrade(struct ag_kern *k, const struct ag_instance *in, const struct ag_config *cfg,
		    struct ag_err *err);
/* This build's version (Makefile AG_VERSION). */
const char *ag_version(void);

#endif
