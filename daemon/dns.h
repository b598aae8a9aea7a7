/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The DNS relay, every agent's way to a resolver: for agents in network
 * namespaces of their own, at the instance's gateway, port AG_NETNS_DNS_PORT (their
 * resolv.conf names it); for the others, on a loopback port of the
 * daemon's, where the hooks send their datagrams to a configured resolver
 * instead.  The daemon forwards each well-formed query for a name the
 * agent may resolve to the first configured resolver, then the answer
 * back, and audits it ("dns" records, docs/audit.md).  UDP only: TCP to the gateway's port 53 is
 * redirected like any other connect and finds no upstream, so an answer too large for UDP (the
 * resolver sets TC) leaves the agent with the truncated one.
 */
#ifndef AG_DNS_H
#define AG_DNS_H

#include "util.h"

struct ag_loop;

struct ag_dns;

/*
 * Starts relaying on l->d->dns_fd and l->d->dns_host_fd (UDP sockets bound
 * by main.c); *out is NULL, and nothing is relayed, when it has neither.
 */
int ag_dns_init(struct ag_loop *l, struct ag_dns **out, struct ag_err *err);
/* Cancels the receive and every query in flight. */
void ag_dns_stop(struct ag_dns *dns);
/* Frees what is left; only once no operation of the relay is in flight. */
void ag_dns_fini(struct ag_dns *dns);

#endif
