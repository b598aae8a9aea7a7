/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The io_uring primitives every module of the event loop builds on: the
 * ring with its count of awaited completions, how a completion finds its
 * owner, and the intrusive list the owners keep their objects in.
 *
 * user_data of every SQE that someone waits for is the address of a
 * struct ag_io (8-byte aligned) with the operation in the low 3 bits; the
 * owner's complete() decodes the operation.  user_data 0 marks completions
 * nobody waits for: linked timeouts (their outcome shows on the operation
 * they guard) and cancel requests (their outcome shows on what they cancel).
 */
#ifndef AG_RING_H
#define AG_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <liburing.h>

#include "util.h"

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

struct ag_io {
	void (*complete)(struct ag_io *io, unsigned int op, const struct io_uring_cqe *cqe);
};

/* The operation lives in the address's low bits: they must be free. */
_Static_assert(_Alignof(struct ag_io) > AG_IO_OP_MASK, "struct ag_io alignment");

struct ag_ring {
	struct io_uring uring;
	/* SQEs submitted with a non-zero user_data whose last CQE is still due. */
	unsigned int pending;
};

/* One thread submits and reaps: completions run when it asks for them. */
int ag_ring_init(struct ag_ring *r, unsigned int entries, struct ag_err *err);
void ag_ring_exit(struct ag_ring *r);
/*
 * An SQE for owner io and operation op, counted in r->pending.  Submits
 * what is queued when the SQ is full; NULL only when even that fails, and
 * the caller must then fail the object closed without the ring.
 */
struct io_uring_sqe *ag_ring_sqe(struct ag_ring *r, struct ag_io *io, unsigned int op);
/* An uncounted SQE with user_data 0, for cancels and linked timeouts. */
struct io_uring_sqe *ag_ring_sqe_untracked(struct ag_ring *r);
/* Room for n SQEs in a row, so a linked pair is never split by a submit. */
bool ag_ring_reserve(struct ag_ring *r, unsigned int n);
/*
 * Guards sqe, the last one taken, with a timeout linked to it (ts, with
 * IORING_TIMEOUT_* flags): sqe then completes with -ECANCELED if it is not
 * done in time.  The caller reserved room for both (ag_ring_reserve).
 */
void ag_ring_link_timeout(struct ag_ring *r, struct io_uring_sqe *sqe, struct __kernel_timespec *ts,
			  unsigned int flags);
/*
 * Cancels every operation on fd; each completes with -ECANCELED (or its
 * own result if it won the race).  Without a free SQE a socket is shut down
 * instead, which ends its operations just as well.
 */
void ag_ring_cancel_fd(struct ag_ring *r, int fd);
/* Cancels io's operation op, found by its user_data; best effort. */
void ag_ring_cancel_op(struct ag_ring *r, struct ag_io *io, unsigned int op);
/* Hands a completion to its owner (nothing for user_data 0). */
void ag_ring_dispatch(struct ag_ring *r, const struct io_uring_cqe *cqe);

#endif
