/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The DNS relay for agents in network namespaces of their own: their
 * resolv.conf names the gateway address, and the daemon forwards each
 * datagram that reaches AG_NETNS_GATEWAY:AG_NETNS_DNS_PORT from a
 * registered namespace to the first configured resolver, then the answer
 * back.  UDP only: TCP to the gateway's port 53 is redirected like any other
 * connect and finds no upstream, so an answer too large for UDP (the
 * resolver sets TC) leaves the agent with the truncated one.
 */
#ifndef AG_DNS_H
#define AG_DNS_H

#include "loop.h"

struct ag_dns;

/*
 * Starts relaying on l->d->dns_fd (a UDP socket bound by main.c); *out is
 * NULL, and nothing is relayed, when the daemon has no such socket.
 */
int ag_dns_init(struct ag_loop *l, struct ag_dns **out, struct ag_err *err);
/* Cancels the receive and every query in flight. */
void ag_dns_stop(struct ag_dns *dns);
/* Frees what is left; only once no operation of the relay is in flight. */
void ag_dns_fini(struct ag_dns *dns);

#endif
