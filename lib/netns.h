/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Network-namespace agents (agentgatectl run --netns): a namespace of the
 * agent's own, a veth pair into the root namespace, the XDP guard in agent
 * mode on the host-side end, and the namespace registered in the netns and
 * netns_links maps so the connect hooks redirect to the gateway address and
 * the daemon's listener accepts from it.
 *
 * Addressing (bpf/agentgate.h): point to point, the host side is the
 * instance's gateway (config netns_gateway_ip4) and the agent side
 * AG_NETNS_AGENT(slot).  A slot is claimed by creating the host-side
 * interface "agh<slot>": the kernel refuses a second interface of that
 * name, so concurrent runs of any instance never share an address, without
 * a lock file.
 */
#ifndef AG_NETNS_H
#define AG_NETNS_H

#include <limits.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>

#include "agentgate.h"
#include "instance.h"
#include "kern.h"

#define AG_NETNS_IFPREFIX "agh"

struct ag_netns_run {
	int nsfd; /* the agent's network namespace, -1 when none */
	char ifname[IF_NAMESIZE];
	struct ag_netns ns;
	char resolv[PATH_MAX]; /* what the agent sees as /etc/resolv.conf */
	const char *xdp_mode;  /* "native" or "skb" */
	bool xdp_legacy;       /* libxdp's single-program fallback */
};

/*
 * Makes the namespace and everything around it for agent_id (its cgroup
 * id under <instance>/agents).  On failure nothing is left behind.
 */
int ag_netns_create(const struct ag_kern *k, const struct ag_instance *in, uint64_t agent_id,
		    struct ag_netns_run *r, struct ag_err *err);
/*
 * For the agent's process, before it drops privileges: joins the
 * namespace, and a private mount namespace whose /etc/resolv.conf names
 * the daemon's DNS relay on the gateway.
 */
int ag_netns_enter(const struct ag_netns_run *r, struct ag_err *err);
/* Undoes ag_netns_create: maps, XDP, veth (which takes the namespace's end), files. */
int ag_netns_destroy(const struct ag_kern *k, const struct ag_instance *in, struct ag_netns_run *r,
		     struct ag_err *err);
/*
 * The instance's gateway address (network order): the one its pinned
 * config holds, else the first of AG_NETNS_GATEWAY_AT(), from a start
 * derived from its name, that no other pinned instance holds.  Two
 * instances starting at once with colliding names can still pick the same
 * one: the second's DNS relay bind then fails (EADDRINUSE) and says so.
 */
int ag_netns_gateway_choose(const struct ag_instance *in, uint32_t *gw, struct ag_err *err);
/* Every namespace of the instance (uninstall), found through its netns_links map. */
int ag_netns_remove_all(const struct ag_instance *in, struct ag_err *err);

#endif
