/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The maps that both kernel objects use: sock.bpf.c creates and pins them,
 * daemon.bpf.c reuses the pinned ones (libbpf bpf_map__reuse_fd), and
 * libbpf checks this one definition against what is pinned.
 */
#ifndef AG_SHARED_MAPS_H
#define AG_SHARED_MAPS_H

#include "agentgate.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ag_config);
} ag_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AG_MAX_AGENTS);
	__type(key, __u64);
	__type(value, struct ag_quota);
} quota SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AG_ORIGIN_SLOTS);
	__type(key, __u32);
	__type(value, struct ag_origin);
} origin SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AG_MAX_AGENTS);
	__type(key, __u32);
	__type(value, struct ag_netns);
} netns_links SEC(".maps");

#endif /* AG_SHARED_MAPS_H */
