/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The byte relay: an admitted agent connection (admit.h) that the
 * classifier (classify.h) passes through is spliced, through the ring, to
 * its original destination.
 */
#ifndef AG_RELAY_H
#define AG_RELAY_H

#include <stddef.h>

#include "util.h"

struct ag_loop;
struct ag_admission;

/* Registers the provided-buffer ring; l->relay is set on success. */
int ag_relay_init(struct ag_loop *l, struct ag_err *err);
/* Relays fd, of a, to its original destination; initial (len bytes,
 * copied) was read from the agent already and goes first. */
void ag_relay_start(struct ag_loop *l, int fd, const struct ag_admission *a, const void *initial,
		    size_t len);
/* Closes every connection (each logs result=shutdown once its I/O drained). */
void ag_relay_stop(struct ag_loop *l);
/* Unregisters and frees the buffers; only once no connection is left. */
void ag_relay_fini(struct ag_loop *l);

#endif
