/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The relay's kernel splice (bpf/splice.bpf.c): the sockets of a relayed
 * connection put into the splice maps, and what TCP itself tells of the
 * bytes the daemon no longer sees.  relay.c decides when; this says how.
 */
#ifndef AG_DAEMON_SPLICE_H
#define AG_DAEMON_SPLICE_H

#include <stdbool.h>
#include <stdint.h>

#include "kern.h"

/* One socket's byte counts, from TCP_INFO and the queue ioctls. */
struct ag_sock_bytes {
	uint64_t taken;	   /* received and taken off the socket (read or redirected) */
	uint64_t received; /* received in all, the peer's FIN counting one */
	uint64_t written;  /* handed to it for sending, SYN and our FIN counting one each */
	uint32_t quiet_ms; /* since the last data either way */
	bool open;	   /* established, or half-closed: not reset or closed */
};

int ag_sock_bytes(int fd, struct ag_sock_bytes *b);
/*
 * Makes a and b each other's redirect target (splice_peers): nothing moves
 * yet.  0, or -errno with neither entry left behind.
 */
int ag_splice_pair(const struct ag_splice_maps *m, int a, int b);
/*
 * Splices what fd receives from now on to its partner (ag_splice_pair
 * first).  0, or -errno with nothing changed.
 */
int ag_splice_from(const struct ag_splice_maps *m, int fd);
/* After ag_splice_from: what fd held unread goes too, now rather than with the next skb. */
int ag_splice_kick(int fd);

#endif
