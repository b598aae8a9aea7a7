// SPDX-License-Identifier: GPL-2.0
/* The event loop's io_uring primitives (see ring.h). */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "ring.h"

int ag_ring_init(struct ag_ring *r, unsigned int entries, struct ag_err *err)
{
	struct io_uring_params p = {
		.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER |
			 IORING_SETUP_DEFER_TASKRUN,
	};
	int ret;

	r->pending = 0;
	if ((ret = io_uring_queue_init_params(entries, &r->uring, &p)))
		return ag_errf(err, -ret, "io_uring: setup: %s", strerror(-ret));
	return 0;
}

void ag_ring_exit(struct ag_ring *r)
{
	io_uring_queue_exit(&r->uring);
}

static struct io_uring_sqe *get_sqe(struct ag_ring *r)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->uring);

	if (!sqe) {
		io_uring_submit(&r->uring);
		sqe = io_uring_get_sqe(&r->uring);
	}
	return sqe;
}

struct io_uring_sqe *ag_ring_sqe(struct ag_ring *r, struct ag_io *io, unsigned int op)
{
	struct io_uring_sqe *sqe = get_sqe(r);

	if (!sqe)
		return NULL;
	io_uring_sqe_set_data64(sqe, (uintptr_t)io | op);
	r->pending++;
	return sqe;
}

struct io_uring_sqe *ag_ring_sqe_untracked(struct ag_ring *r)
{
	struct io_uring_sqe *sqe = get_sqe(r);

	/* SQEs are recycled: a stale user_data would be dispatched. */
	if (sqe)
		io_uring_sqe_set_data64(sqe, 0);
	return sqe;
}

bool ag_ring_reserve(struct ag_ring *r, unsigned int n)
{
	if (io_uring_sq_space_left(&r->uring) < n)
		io_uring_submit(&r->uring);
	return io_uring_sq_space_left(&r->uring) >= n;
}

void ag_ring_link_timeout(struct ag_ring *r, struct io_uring_sqe *sqe, struct __kernel_timespec *ts,
			  unsigned int flags)
{
	sqe->flags |= IOSQE_IO_LINK;
	io_uring_prep_link_timeout(ag_ring_sqe_untracked(r), ts, flags);
}

void ag_ring_cancel_fd(struct ag_ring *r, int fd)
{
	struct io_uring_sqe *sqe = ag_ring_sqe_untracked(r);

	if (!sqe) {
		shutdown(fd, SHUT_RDWR);
		return;
	}
	io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
}

void ag_ring_cancel_op(struct ag_ring *r, struct ag_io *io, unsigned int op)
{
	struct io_uring_sqe *sqe = ag_ring_sqe_untracked(r);

	if (sqe)
		io_uring_prep_cancel64(sqe, (uintptr_t)io | op, 0);
}

void ag_ring_dispatch(struct ag_ring *r, const struct io_uring_cqe *cqe)
{
	struct ag_io *io = (struct ag_io *)(uintptr_t)(cqe->user_data & ~(__u64)AG_IO_OP_MASK);

	if (!io)
		return;
	if (!(cqe->flags & IORING_CQE_F_MORE))
		r->pending--;
	io->complete(io, cqe->user_data & AG_IO_OP_MASK, cqe);
}
