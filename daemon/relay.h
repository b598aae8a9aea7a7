/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The byte relay: each accepted agent connection is checked against its
 * origin record and spliced, through the ring, to its original destination.
 */
#ifndef AG_RELAY_H
#define AG_RELAY_H

#include "loop.h"

/* Registers the provided-buffer ring; l->relay is set on success. */
int ag_relay_init(struct ag_loop *l, struct ag_err *err);
/* Takes ownership of fd, an accepted agent connection: checks its origin
 * and hands it to the classifier (classify.h). */
void ag_relay_accept(struct ag_loop *l, int fd);
/* Relays fd to its original destination; initial (len bytes, copied) was
 * read from the agent already and goes first. */
void ag_relay_start(struct ag_loop *l, int fd, const struct ag_origin *o, const char *agent,
		    const void *initial, size_t len);
/* Refuses fd: logged (rate-limited), audited, reset. */
void ag_relay_reject(struct ag_loop *l, int fd, const char *reason, const struct ag_origin *o);
/*
 * The same for an agent whose first bytes were a whole HTTP request head:
 * it is answered "403 Forbidden" with a body that names the destination,
 * the agent and why, then closed (a reset could destroy the answer).
 */
void ag_relay_refuse_http(struct ag_loop *l, int fd, const char *reason,
			  const struct ag_origin *o, const char *agent);
/* Closes every connection (each logs result=shutdown once its I/O drained). */
void ag_relay_stop(struct ag_loop *l);
/* Unregisters and frees the buffers; only once no connection is left. */
void ag_relay_fini(struct ag_loop *l);

#endif
