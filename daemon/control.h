/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The control socket, server side: newline-delimited JSON, one response line
 * per request line.  The client side is lib/ctl.h.
 */
#ifndef AG_CONTROL_H
#define AG_CONTROL_H

#include "util.h"

struct ag_loop;

int ag_control_init(struct ag_loop *l, struct ag_err *err);
/* Takes ownership of fd, an accepted control connection. */
void ag_control_accept(struct ag_loop *l, int fd);
/* Closes every client; each goes once its I/O drained. */
void ag_control_stop(struct ag_loop *l);
/* Only once no client is left (after a drained stop). */
void ag_control_fini(struct ag_loop *l);

#endif
