/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The XDP ingress guard (bpf/xdp_guard.bpf.c) on a named interface,
 * attached with libxdp.  Its maps are pinned in
 * /sys/fs/bpf/<instance>/guard-<ifname>/ (config, sources, stats), which is
 * also how an instance knows which interfaces it guards.
 */
#ifndef AG_GUARD_H
#define AG_GUARD_H

#include <net/if.h>
#include <stdbool.h>

#include "agentgate.h"
#include "instance.h"

struct ag_guard_info {
	char ifname[IF_NAMESIZE];
	bool attached;	  /* our program is on the interface */
	const char *mode; /* "native", "skb", "hw" or "none" */
	bool legacy;	  /* libxdp's single-program fallback (no freplace) */
	struct ag_guard_config cfg;
	struct ag_guard_stats stats;
};

/* Native mode first, generic (skb) where the driver has none. */
int ag_guard_attach(const struct ag_instance *in, const char *ifname,
		    const struct ag_guard_config *cfg, struct ag_err *err);
/* Attaches it, or sets the config of the one this instance already has there. */
int ag_guard_set(const struct ag_instance *in, const char *ifname,
		 const struct ag_guard_config *cfg, struct ag_err *err);
int ag_guard_detach(const struct ag_instance *in, const char *ifname, struct ag_err *err);
/* Detaches every guard of the instance (uninstall). */
int ag_guard_detach_all(const struct ag_instance *in, struct ag_err *err);
int ag_guard_info(const struct ag_instance *in, const char *ifname, struct ag_guard_info *info,
		  struct ag_err *err);
/* Calls fn for each guarded interface of the instance. */
int ag_guard_foreach(const struct ag_instance *in, void (*fn)(const char *ifname, void *arg),
		     void *arg);

#endif
