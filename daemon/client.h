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
 * bounded time; an operation cut by it completes with -ECANCELED.  A
 * response is sent whole (one send after another) before the owner hears
 * of it.
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

/* The owner's handlers; received and sent are never called when closing. */
struct ag_client_ops {
	/* A recv completed: res as in its CQE. */
	void (*received)(struct ag_client *c, int res);
	/* The response went out: res > 0; or the result of the send that failed. */
	void (*sent)(struct ag_client *c, int res);
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
	char *out;			   /* the response being sent, until all of it is */
	size_t out_len, out_off;
};

void ag_clients_init(struct ag_clients *set, unsigned int max);
static inline bool ag_clients_full(const struct ag_clients *set)
{
	return set->nr >= set->max;
}
/* Closes every client of set (each released once its I/O drained). */
void ag_clients_stop(struct ag_clients *set);

/*
 * c serves fd in set.  c is the first member of the owner's object, which
 * was zeroed by calloc: released, the client frees it (with its socket
 * and response), so the owner's object may hold no other allocation.
 */
void ag_client_start(struct ag_client *c, struct ag_clients *set, struct ag_loop *l, int fd,
		     const struct ag_client_ops *ops);
/* The deadline of every operation from now on: seconds from now. */
void ag_client_deadline(struct ag_client *c, unsigned int seconds);
/* -> AG_CLIENT_READING: up to len bytes into buf; closed when no SQE. */
void ag_client_recv(struct ag_client *c, void *buf, size_t len);
/* -> AG_CLIENT_WRITING: the response out (len bytes, malloc'd: taken); closed when no SQE. */
void ag_client_send(struct ag_client *c, char *out, size_t len);
/* -> AG_CLIENT_CLOSING; released now or when the last cancelled operation completes. */
void ag_client_close(struct ag_client *c);

#endif
