/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A loop client: one accepted socket of a small local server (the control
 * socket, control.c; the metrics endpoint, scrape.c) that receives a
 * request and sends its response through the ring.  It goes
 *
 *	AG_CLIENT_READING <--recv/send--> AG_CLIENT_WRITING
 *	        |                                 |
 *	        +--ag_client_close, no SQE--------+--> AG_CLIENT_CLOSING
 *	                                               (released when no I/O is left)
 *
 * Every recv and send carries a linked timeout at one absolute deadline
 * (ag_client_deadline), so a client that stalls holds its slot for a
 * bounded time; an operation cut by it completes with -ECANCELED.
 *
 * Ordering hazards:
 *  - each operation counts in inflight; the socket is closed and the
 *    owner's object released only at zero, so no completion finds freed
 *    memory and no cancel targets a reused fd number;
 *  - a completion holds its own count until its handler returns, so a
 *    close decided inside the handler never frees the client under it.
 */
#ifndef AG_CLIENT_H
#define AG_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "ring.h"

struct ag_loop;
struct ag_client;

enum ag_client_state {
	AG_CLIENT_READING,
	AG_CLIENT_WRITING,
	AG_CLIENT_CLOSING,
};

enum ag_client_op {
	AG_CLIENT_RECV = 1,
	AG_CLIENT_SEND,
};

struct ag_client_ops {
	/* An operation completed (res as in its CQE); never called when closing. */
	void (*done)(struct ag_client *c, enum ag_client_op op, int res);
	/* Frees the owner's object; the socket is closed and unlisted already. */
	void (*release)(struct ag_client *c);
};

/* A server's clients, at most max at once. */
struct ag_clients {
	struct ag_list list;
	unsigned int nr, max;
};

struct ag_client {
	struct ag_io io;
	struct ag_list node; /* in its server's ag_clients */
	struct ag_clients *set;
	struct ag_loop *l;
	const struct ag_client_ops *ops;
	int fd;
	enum ag_client_state state;
	unsigned int inflight;
	struct __kernel_timespec deadline; /* CLOCK_MONOTONIC, absolute */
};

void ag_clients_init(struct ag_clients *set, unsigned int max);
static inline bool ag_clients_full(const struct ag_clients *set)
{
	return set->nr >= set->max;
}
/* Closes every client of set (each released once its I/O drained). */
void ag_clients_stop(struct ag_clients *set);

/* c (zeroed, owned by the caller until released) serves fd in set. */
void ag_client_start(struct ag_client *c, struct ag_clients *set, struct ag_loop *l, int fd,
		     const struct ag_client_ops *ops);
/* The deadline of every operation from now on: seconds from now. */
void ag_client_deadline(struct ag_client *c, unsigned int seconds);
/* -> AG_CLIENT_READING: up to len bytes into buf; closed when no SQE. */
void ag_client_recv(struct ag_client *c, void *buf, size_t len);
/* -> AG_CLIENT_WRITING: len bytes of buf; closed when no SQE. */
void ag_client_send(struct ag_client *c, const void *buf, size_t len);
/* -> AG_CLIENT_CLOSING; released now or when the last cancelled operation completes. */
void ag_client_close(struct ag_client *c);

#endif
