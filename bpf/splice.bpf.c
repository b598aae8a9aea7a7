// SPDX-License-Identifier: GPL-2.0
/*
 * The relay's kernel splice (daemon/relay.c): the bytes of an allowed
 * pass-through connection go from one of its sockets to the other without
 * reaching the daemon.
 *
 * Three maps keyed by socket cookie and filled by the daemon, and a ring
 * buffer the daemon reads:
 *
 *  - splice_peers[cookie of a socket] = the socket its bytes go to.  No
 *    program is attached to it: being there changes nothing for a socket
 *    but makes it a redirect target;
 *  - splice_from: the sockets whose bytes are spliced.  splice_bounded is
 *    attached to it (BPF_SK_SKB_VERDICT), and runs on every skb such a
 *    socket receives;
 *  - splice_flows: what each of those redirected (below);
 *  - splice_kept: the sockets whose verdict began to keep their bytes.
 *
 * The daemon puts both sockets of a connection into splice_peers before
 * either goes into splice_from, so the verdict always finds the partner;
 * had one map served both, the first socket inserted would get bytes while
 * its partner was not yet there.  Should the partner be gone all the same
 * (a close racing the bytes), the skb stays with the socket it came to,
 * where a read finds it, rather than being dropped.
 *
 * The kernel takes a redirected skb off `from` at once, so TCP opens its
 * window again whether or not the partner can send: a partner whose reader
 * reads nothing would have the kernel hold every byte the writer sends
 * (hundreds of MiB a second on loopback, memory no limit counts).  So the
 * verdict counts what it redirected that has not reached the partner's
 * socket yet (the partner's write_seq moves when it does), and once that
 * would pass AG_SPLICE_BACKLOG it keeps this skb and every later one on
 * `from` (SK_PASS): they are charged to `from`'s receive buffer, TCP's
 * window closes, and the writer waits as it would for a copying relay.  The
 * verdict tells the daemon through splice_kept (a poll of the socket for
 * POLLIN would wake it for every redirected skb too); the daemon waits
 * until the partner has all that was redirected, and copies the rest of
 * that direction (relay.c).
 * Kept skbs are never redirected after it: one would overtake another.
 *
 * A socket leaves both socket hashes when it closes, and the daemon
 * deletes its flow: nothing here outlives a connection, but the flows of a
 * killed daemon, which the next one sweeps.  The maps are pinned
 * (splice_from holds the program) and a restarted daemon adopts them
 * (lib/kern_splice.c).
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

/*
 * splice_flows[cookie of a spliced socket]: what its verdict redirected.
 * The daemon puts a zeroed entry in before the socket goes into
 * splice_from and deletes it when the connection closes (an sk_skb program
 * has no socket storage); a restarted daemon sweeps out the entries whose
 * socket is gone.  No entry: the skb stays.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AG_SPLICE_SOCKS);
	__type(key, __u64);
	__type(value, struct ag_splice_flow);
} splice_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, AG_SPLICE_KEPT_RING);
} splice_kept SEC(".maps");

/*
 * From this skb on, every one stays on its socket; the daemon is told once,
 * so that it copies them (a socket it polls only for its end).
 */
static __always_inline int keep(struct ag_splice_flow *f, __u64 *cookie)
{
	f->kept = 1;
	if (!f->told && !bpf_ringbuf_output(&splice_kept, cookie, sizeof(*cookie), 0))
		f->told = 1;
	return SK_PASS;
}

/* The partner's write_seq; -1 if it has none (gone from splice_peers). */
static __always_inline int partner_seq(__u64 *cookie, __u32 *seq)
{
	struct bpf_sock *to = bpf_map_lookup_elem(&splice_peers, cookie);
	struct tcp_sock *tp;
	int ret = -1;

	if (!to)
		return -1;
	tp = bpf_skc_to_tcp_sock(to);
	if (tp) {
		*seq = tp->write_seq;
		ret = 0;
	}
	bpf_sk_release(to);
	return ret;
}

/*
 * Attached as BPF_SK_SKB_VERDICT (no stream parser): libbpf 1.1 has no
 * section name for it.  A daemon adopts a pinned splice_from only beside a
 * pinned splice_flows (lib/kern_splice.c): an older build's verdict had no
 * bound.
 */
SEC("sk_skb")
int splice_bounded(struct __sk_buff *skb)
{
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct ag_splice_flow *f;
	__u32 seq, moved;

	/*
	 * A FIN alone: TCP took note of the EOF already, and the daemon passes
	 * it on (relay.c).  Redirected, its 0 bytes would be a failed send to
	 * the partner's backlog, which reports EPIPE on it and stops sending.
	 */
	if (!skb->len)
		return SK_DROP;
	f = bpf_map_lookup_elem(&splice_flows, &cookie);
	/*
	 * Fail closed: with no count, or no partner, the skb stays here, where
	 * a read finds it, and so does every later one: no skb redirected after
	 * it could overtake it.  (Without a flow, none was ever redirected: the
	 * daemon inserts it first, and deletes it only once the socket closed.)
	 */
	if (!f)
		return SK_PASS;
	if (f->kept)
		return keep(f, &cookie);
	if (!f->started) {
		if (partner_seq(&cookie, &seq))
			return keep(f, &cookie);
		f->started = 1;
		f->partner_seq = seq;
	}
	/*
	 * pending only grows here, so it is at least what the partner has not
	 * taken: the partner is looked at only when that bound would pass, and
	 * a request/response connection almost never.  It moved since by at
	 * most what was redirected since, 2 * AG_SPLICE_BACKLOG at most: the
	 * 32-bit difference is exact.
	 */
	if (f->pending + skb->len > AG_SPLICE_BACKLOG) {
		if (partner_seq(&cookie, &seq))
			return keep(f, &cookie);
		moved = seq - f->partner_seq;
		f->partner_seq = seq;
		f->pending = moved < f->pending ? f->pending - moved : 0;
		if (f->pending + skb->len > AG_SPLICE_BACKLOG)
			return keep(f, &cookie);
	}
	/* Egress of the partner; should it be gone since, the skb stays here, as above. */
	if (bpf_sk_redirect_hash(skb, &splice_peers, &cookie, 0) != SK_PASS)
		return keep(f, &cookie);
	f->pending += skb->len;
	return SK_PASS;
}
