// SPDX-License-Identifier: GPL-2.0
/* The approval registry (see approvals.h). */
#include <errno.h>
#include <stdlib.h>

#include "approvals.h"
#include "daemon.h"
#include "loop.h"

struct ag_approval {
	struct ag_io io;     /* the timeout */
	struct ag_list node; /* in r->held while undecided */
	struct ag_approvals *r;
	const struct ag_approval_ops *ops;
	void *owner; /* NULL once decided or orphaned */
	uint64_t id;
	uint64_t created_ns;
	struct __kernel_timespec ts;
};

void ag_approvals_init(struct ag_approvals *r, struct ag_loop *l)
{
	r->l = l;
	ag_list_init(&r->held);
}

uint64_t ag_approval_id(const struct ag_approval *a)
{
	return a->id;
}

/* Ends the timeout early: its completion (-ECANCELED) frees a. */
void ag_approval_drop(struct ag_approval *a)
{
	struct io_uring_sqe *sqe = ag_ring_sqe_untracked(&a->r->l->ring);

	ag_list_del(&a->node);
	a->owner = NULL;
	if (sqe)
		io_uring_prep_timeout_remove(sqe, (uintptr_t)&a->io | 1, 0);
}

static void approval_complete(struct ag_io *io, unsigned int op, const struct io_uring_cqe *cqe)
{
	struct ag_approval *a = ag_container_of(io, struct ag_approval, io);
	void *owner = a->owner;

	if (owner && cqe->res == -ETIME && !a->r->l->stopping) {
		ag_list_del(&a->node);
		a->owner = NULL;
		a->ops->decided(owner, a->id, false, "gateway", "no approval in time");
	}
	free(a);
}

struct ag_approval *ag_approval_hold(struct ag_approvals *r, const struct ag_approval_ops *ops,
				     void *owner)
{
	uint32_t ms = r->l->d->conf.approval_timeout_ms;
	struct ag_approval *a = calloc(1, sizeof(*a));
	struct io_uring_sqe *sqe;

	if (!a || !(sqe = ag_ring_sqe(&r->l->ring, &a->io, 1))) {
		free(a);
		return NULL;
	}
	a->io.complete = approval_complete;
	a->r = r;
	a->ops = ops;
	a->owner = owner;
	a->id = ++r->next_id;
	a->created_ns = ag_now_ns();
	a->ts.tv_sec = ms / 1000;
	a->ts.tv_nsec = (long long)(ms % 1000) * 1000000;
	io_uring_prep_timeout(sqe, &a->ts, 0, 0);
	ag_list_add_tail(&r->held, &a->node);
	return a;
}

json_t *ag_approvals_list(struct ag_approvals *r)
{
	json_t *list = json_array();
	uint64_t now = ag_now_ns();
	struct ag_list *pos;

	if (!list)
		return NULL;
	for (pos = r->held.next; pos != &r->held; pos = pos->next) {
		struct ag_approval *a = ag_container_of(pos, struct ag_approval, node);
		uint64_t waited = (now - a->created_ns) / 1000000;

		json_array_append_new(list, a->ops->describe(a->owner, a->id, waited,
							     r->l->d->conf.approval_timeout_ms));
	}
	return list;
}

int ag_approvals_resolve(struct ag_approvals *r, uint64_t id, bool allow, const char *by,
			 struct ag_err *err)
{
	struct ag_list *pos;

	for (pos = r->held.next; pos != &r->held; pos = pos->next) {
		struct ag_approval *a = ag_container_of(pos, struct ag_approval, node);
		void *owner = a->owner;

		if (a->id != id)
			continue;
		ag_approval_drop(a);
		a->ops->decided(owner, id, allow, by, allow ? "approved" : "denied by an operator");
		return 0;
	}
	return ag_errf(err, ENOENT, "no call waits for approval %llu (decided, timed out or gone)",
		       (unsigned long long)id);
}
