/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The daemon's own name lookups, for decisions that a host name takes
 * part in (classify.c): the addresses a name resolves to.  IP literals
 * are their own address; "localhost" and the names of /etc/hosts (read
 * once at start) are answered from there and never asked of DNS; any
 * other name is asked of the first configured resolver (A and AAAA over
 * UDP, on the ring) and the answer cached for its TTL, clamped.
 */
#ifndef AG_RESOLVE_H
#define AG_RESOLVE_H

#include "dnsmsg.h"
#include "ring.h"

struct ag_conf;
struct ag_loop;

#define AG_RESOLVE_MAX_ADDRS (2 * AG_DNSMSG_MAX_ADDRS)

struct ag_resolve_set {
	uint8_t addr[AG_RESOLVE_MAX_ADDRS][16]; /* v4-mapped for IPv4 */
	int nr;
	/* The lookup failed (no resolver, timeout, error): the set may be
	 * short; a name that does not exist is no failure. */
	bool failed;
};

/* Someone waiting for a lookup; node self-linked (ag_list_init) when not. */
struct ag_resolve_wait {
	struct ag_list node;
	void (*done)(struct ag_resolve_wait *w);
};

int ag_resolve_init(struct ag_loop *l, struct ag_err *err);
/*
 * The addresses of name (lower case, as ag_host_norm leaves it): 1 with
 * *out valid until the next call, when known; 0 while its lookup runs, and
 * then w, unless NULL or waiting already, is called once it ended (to ask
 * again); -EBUSY when no lookup can be started now.
 */
int ag_resolve(struct ag_loop *l, const char *name, struct ag_resolve_wait *w,
	       const struct ag_resolve_set **out);
/* w is no longer called. */
void ag_resolve_wait_cancel(struct ag_resolve_wait *w);
bool ag_resolve_has(const struct ag_resolve_set *s, const uint8_t addr[16]);
/*
 * A UDP socket of the daemon's (its mark), connected to the first
 * configured resolver: the fd, or -errno (-ENOENT: none configured).
 */
int ag_resolver_socket(const struct ag_conf *c);
/* The operations of ag_resolver_exchange's SQEs, on the caller's io. */
enum { AG_RESOLVER_SEND = 1, AG_RESOLVER_ANSWER };
/*
 * A query's round trip on fd (ag_resolver_socket): the send of query
 * (qlen bytes), then the receive of the answer into buf (cap bytes,
 * MSG_TRUNC: the result is the datagram's real length), linked and bounded
 * by deadline (CLOCK_MONOTONIC, absolute); query NULL: the receive alone.
 * Returns how many SQEs carry io (the caller's in-flight count), 0 when
 * the ring has no room and nothing was queued.
 */
unsigned int ag_resolver_exchange(struct ag_loop *l, struct ag_io *io, int fd, const void *query,
				  size_t qlen, void *buf, size_t cap,
				  struct __kernel_timespec *deadline);
/* Cancels every lookup in flight; waiters are not called any more. */
void ag_resolve_stop(struct ag_loop *l);
/* Frees the cache; only once no lookup is in flight. */
void ag_resolve_fini(struct ag_loop *l);

#endif
