/* SPDX-License-Identifier: GPL-2.0 */
/* Kernel refusals: the events ring buffer, read through the loop's ring and logged. */
#ifndef AG_EVENTS_H
#define AG_EVENTS_H

#include "util.h"

struct ag_loop;

/* Opens the BPF ring buffer; l->events is set on success. */
int ag_events_init(struct ag_loop *l, struct ag_err *err);
/* Arms the multishot poll on the ring buffer's epoll fd. */
void ag_events_start(struct ag_loop *l);
/* Cancels the poll; records still queued in the kernel are read first. */
void ag_events_stop(struct ag_loop *l);
void ag_events_fini(struct ag_loop *l);

#endif
