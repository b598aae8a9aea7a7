/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What kern.c shares with kern_upgrade.c only: loading sock.bpf.o and
 * comparing it with what an instance pinned.  Not for the daemon or CLI.
 */
#ifndef AG_KERN_INTERNAL_H
#define AG_KERN_INTERNAL_H

#include <stddef.h>

#include "kern.h"

struct bpf_map;

int ag_kern_link_pin_path(const struct ag_instance *in, const char *name, char *buf, size_t len);
struct bpf_map *ag_kern_skel_map(struct sock_bpf *skel, enum ag_map_id id);
/* Attach types set, unsupported programs left unloaded. */
int ag_kern_progs_prepare(struct sock_bpf *skel, struct ag_err *err);
/*
 * bpf/daemon.bpf.c on k's maps: charge_fd, claim_fd, dns_claim_fd, pinned in
 * the instance's directory; adopt: take the pinned ones when there are.
 */
int ag_kern_daemon_progs_load(struct ag_kern *k, const struct ag_instance *in, bool adopt,
			      struct ag_err *err);
/* The listener's filter for namespaced agents' traffic (ag_kern_gateway_filter). */
#define GATEWAY_FILTER_PIN "gateway_filter"
/*
 * Pins prog_fd (a program or a map) as name in the instance's directory, over the old pin, never
 * missing (pinned as name_new first: bpffs refuses dots in names).
 */
int ag_kern_prog_repin(const struct ag_instance *in, int prog_fd, const char *name,
		       struct ag_err *err);
/* 0 when every pinned map has this build's type, key, value and size. */
int ag_kern_same_maps(const struct ag_kern *k, const struct ag_instance *in, struct ag_err *err);

/*
 * <run_dir>/kern.version: the version of the build that pinned the
 * instance's programs.  Check refuses one newer than this build (a
 * downgrade); a missing file is a build from before the file existed.
 */
int ag_kern_version_check(const struct ag_instance *in, struct ag_err *err);
int ag_kern_version_write(const struct ag_instance *in, struct ag_err *err);
/* With the pins: uninstall. */
void ag_kern_version_remove(const struct ag_instance *in);

#endif
