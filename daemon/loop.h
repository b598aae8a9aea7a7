/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The event loop's internal interface, shared by loop.c (ring, signals,
 * listeners), relay.c (agent connections), control.c (control socket) and
 * events.c (kernel refusals).
 *
 * user_data of every SQE that someone waits for is the address of a
 * struct ag_io (8-byte aligned) with the operation in the low 3 bits; the
 * owner's complete() decodes the operation.  user_data 0 marks completions
 * nobody waits for: linked timeouts (their outcome shows on the operation
 * they guard) and cancel requests (their outcome shows on what they cancel).
 */
#ifndef AG_LOOP_H
#define AG_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <liburing.h>

#include "daemon.h"

#define AG_IO_OP_MASK 7u

#define ag_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Intrusive doubly linked list: unlinking needs no search. */
struct ag_list {
	struct ag_list *prev, *next;
};

static inline void ag_list_init(struct ag_list *head)
{
	head->prev = head->next = head;
}

static inline bool ag_list_empty(const struct ag_list *head)
{
	return head->next == head;
}

static inline void ag_list_add_tail(struct ag_list *head, struct ag_list *node)
{
	node->prev = head->prev;
	node->next = head;
	head->prev->next = node;
	head->prev = node;
}

/* Leaves node self-linked, so a second unlink is harmless. */
static inline void ag_list_del(struct ag_list *node)
{
	node->prev->next = node->next;
	node->next->prev = node->prev;
	ag_list_init(node);
}

struct ag_loop;

struct ag_io {
	void (*complete)(struct ag_io *io, unsigned int op, const struct io_uring_cqe *cqe);
};

/* The operation lives in the address's low bits: they must be free. */
_Static_assert(_Alignof(struct ag_io) > AG_IO_OP_MASK, "struct ag_io alignment");

struct ag_relay;
struct ag_classify;
struct ag_resolve;
struct ag_mcp;
struct ag_control;
struct ag_events;
struct ag_fair;
struct ag_scrape;

struct ag_loop {
	struct io_uring ring;
	struct ag_daemon *d;
	/* SQEs submitted with a non-zero user_data whose last CQE is still due. */
	unsigned int pending;
	bool stopping;
	int status; /* what ag_loop_run returns: 0, or the fatal error */
	struct ag_relay *relay;
	struct ag_classify *classify;
	struct ag_resolve *resolve;
	struct ag_mcp *mcp;
	struct ag_control *control;
	struct ag_events *events;
	struct ag_fair *fair; /* fair.h */
	struct ag_scrape *scrape; /* the metrics endpoint (scrape.h) */
};

/*
 * An SQE for owner io and operation op, counted in l->pending.  Submits
 * what is queued when the SQ is full; NULL only when even that fails, and
 * the caller must then fail the object closed without the ring.
 */
struct io_uring_sqe *ag_loop_sqe(struct ag_loop *l, struct ag_io *io, unsigned int op);
/* An uncounted SQE with user_data 0, for cancels and linked timeouts. */
struct io_uring_sqe *ag_loop_sqe_untracked(struct ag_loop *l);
/* Room for n SQEs in a row, so a linked pair is never split by a submit. */
bool ag_loop_reserve(struct ag_loop *l, unsigned int n);
/*
 * Cancels every operation on fd; each completes with -ECANCELED (or its
 * own result if it won the race).  Without a free SQE a socket is shut down
 * instead, which ends its operations just as well.
 */
void ag_loop_cancel_fd(struct ag_loop *l, int fd);

#endif
