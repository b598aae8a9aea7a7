// SPDX-License-Identifier: GPL-2.0
/* Eventfd wait queues (see waitq.h). */
#include <poll.h>
#include <unistd.h>

#include "loop.h"
#include "waitq.h"

void ag_waitq_arm(struct ag_waitq *q)
{
	struct io_uring_sqe *sqe;

	if (q->armed || ag_list_empty(&q->waiters) || q->l->stopping)
		return;
	if (!(sqe = ag_ring_sqe(&q->l->ring, &q->io, 1))) {
		/* Nothing would wake the held calls: refuse them rather than hang. */
		while (!ag_list_empty(&q->waiters)) {
			struct ag_list *w = q->waiters.next;

			ag_list_del(w);
			q->stuck(w, q->refusal);
		}
		return;
	}
	/*
	 * A poll, not a read: the eventfd is non-blocking, and io_uring
	 * answers a read of it with -EAGAIN at once instead of waiting.
	 */
	io_uring_prep_poll_add(sqe, q->fd, POLLIN);
	q->armed = true;
}

static void waitq_complete(struct ag_io *io, unsigned int op, const struct io_uring_cqe *cqe)
{
	struct ag_waitq *q = ag_container_of(io, struct ag_waitq, io);

	q->armed = false;
	if (q->l->stopping)
		return;
	/* Reset the counter; what changed is read from its source, not from it. */
	(void)!read(q->fd, &q->counter, sizeof(q->counter));
	q->woken(q);
	ag_waitq_arm(q);
}

void ag_waitq_init(struct ag_waitq *q, struct ag_loop *l, int fd, void (*woken)(struct ag_waitq *q),
		   void (*stuck)(struct ag_list *w, const char *refusal), const char *refusal)
{
	q->io.complete = waitq_complete;
	q->l = l;
	q->fd = fd;
	q->woken = woken;
	q->stuck = stuck;
	q->refusal = refusal;
	ag_list_init(&q->waiters);
}
