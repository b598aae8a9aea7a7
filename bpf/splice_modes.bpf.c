// SPDX-License-Identifier: GPL-2.0
/*
 * Bench only (bench/splice_modes.c loads it; the daemon never does): the
 * kernel splice designs a relay could use, so that their cost on this
 * kernel is measured before one is built.  The relay (bpf/splice.bpf.c)
 * redirects each skb that reaches one of the daemon's sockets to the
 * other's egress; the alternatives also put the agent's own socket in a
 * map and redirect its sendmsg (sk_msg) straight to the upstream socket's
 * egress, and the upstream's skbs straight to the agent socket's ingress.
 *
 * Sockets in socks, by role: ACCEPTED (the proxy's side of the agent's
 * connection), UPSTREAM (the proxy's connection to the server), CLIENT (the
 * agent's socket).  The array down says where the upstream's bytes go.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

enum { ROLE_ACCEPTED = 1, ROLE_UPSTREAM = 2, ROLE_CLIENT = 3 };

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} socks SEC(".maps");

/* The sockets whose received skbs the verdict redirects (key: role). */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} skb_from SEC(".maps");

/* The sockets whose sendmsg the sk_msg verdict redirects (the client's). */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} msg_from SEC(".maps");

/* [0]: where the upstream's bytes go (ROLE_ACCEPTED: egress, ROLE_CLIENT:
 * ingress); [1]: the accepted socket's local port, to tell it apart. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} down SEC(".maps");

SEC("sk_skb")
int modes_skb(struct __sk_buff *skb)
{
	__u32 k0 = 0, k1 = 1, lport = skb->local_port, to;
	__u32 *where = bpf_map_lookup_elem(&down, &k0);
	__u32 *accepted = bpf_map_lookup_elem(&down, &k1);

	if (!skb->len || !where || !accepted)
		return SK_DROP;
	to = lport == *accepted ? ROLE_UPSTREAM : *where;
	bpf_sk_redirect_hash(skb, &socks, &to, to == ROLE_CLIENT ? BPF_F_INGRESS : 0);
	return SK_PASS;
}

SEC("sk_msg")
int modes_msg(struct sk_msg_md *msg)
{
	__u32 to = ROLE_UPSTREAM;

	return bpf_msg_redirect_hash(msg, &socks, &to, 0);
}
