/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Classification (docs/architecture.md, step 3): which path an agent connection
 * takes, from its original destination and, when a host name decides,
 * from its first bytes (TLS ClientHello SNI or HTTP Host):
 *	a governed tool server	-> the MCP path (mcp.h)
 *	an allowed pass-through	-> the byte relay (relay.h)
 *	anything else		-> refused and audited
 */
#ifndef AG_CLASSIFY_H
#define AG_CLASSIFY_H

#include "util.h"

struct ag_loop;
struct ag_admission;

int ag_classify_init(struct ag_loop *l, struct ag_err *err);
/* Takes fd, admitted as a (admit.h; copied). */
void ag_route(struct ag_loop *l, int fd, const struct ag_admission *a);
void ag_classify_stop(struct ag_loop *l);
void ag_classify_fini(struct ag_loop *l);

#endif
