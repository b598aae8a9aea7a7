// SPDX-License-Identifier: GPL-2.0
/*
 * The relay's kernel splice (daemon/relay.c): the bytes of an allowed
 * pass-through connection go from one of its sockets to the other without
 * reaching the daemon.
 *
 * Two socket hashes, both keyed by socket cookie and filled by the daemon:
 *
 *  - splice_peers[cookie of a socket] = the socket its bytes go to.  No
 *    program is attached to it: being there changes nothing for a socket
 *    but makes it a redirect target;
 *  - splice_from: the sockets whose bytes are spliced.  splice_verdict is
 *    attached to it (BPF_SK_SKB_VERDICT), and runs on every skb such a
 *    socket receives.
 *
 * The daemon puts both sockets of a connection into splice_peers before
 * either goes into splice_from, so the verdict always finds the partner;
 * had one map served both, the first socket inserted would get bytes while
 * its partner was not yet there.  Should the partner be gone all the same
 * (a close racing the bytes), the skb stays with the socket it came to,
 * where a read finds it, rather than being dropped.
 *
 * A socket leaves both maps when it closes: nothing here outlives a
 * connection.  The maps are pinned (splice_from holds the program) and a
 * restarted daemon adopts them (lib/kern_splice.c).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "agentgate.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, AG_SPLICE_SOCKS);
	__type(key, __u64);
	__type(value, __u64);
} splice_peers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, AG_SPLICE_SOCKS);
	__type(key, __u64);
	__type(value, __u64);
} splice_from SEC(".maps");

/* Attached as BPF_SK_SKB_VERDICT (no stream parser): libbpf 1.1 has no section name for it. */
SEC("sk_skb")
int splice_verdict(struct __sk_buff *skb)
{
	__u64 cookie = bpf_get_socket_cookie(skb);

	/*
	 * A FIN alone: TCP took note of the EOF already, and the daemon passes
	 * it on (relay.c).  Redirected, its 0 bytes would be a failed send to
	 * the partner's backlog, which reports EPIPE on it and stops sending.
	 */
	if (!skb->len)
		return SK_DROP;
	/* Egress of the partner; without one, SK_PASS keeps the skb here. */
	bpf_sk_redirect_hash(skb, &splice_peers, &cookie, 0);
	return SK_PASS;
}
