/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A list of waiters held until an eventfd says something changed: the
 * audit writer's (records became durable, or writing failed) and the OAuth
 * clients' (a token request finished).  Each waker looks at its waiters
 * and releases or refuses them.  The queue knows its waiters only as list
 * nodes: what waits, and what releasing it means, is the owner's.
 */
#ifndef AG_WAITQ_H
#define AG_WAITQ_H

#include <stdbool.h>
#include <stdint.h>

#include "ring.h"

struct ag_loop;

struct ag_waitq {
	struct ag_io io; /* a poll of fd */
	struct ag_loop *l;
	int fd;
	bool armed;
	uint64_t counter;
	struct ag_list waiters;
	void (*woken)(struct ag_waitq *q);
	/* Nothing could wake the waiters: w (already unlinked) is refused. */
	void (*stuck)(struct ag_list *w, const char *refusal);
	const char *refusal; /* what stuck is told */
};

void ag_waitq_init(struct ag_waitq *q, struct ag_loop *l, int fd, void (*woken)(struct ag_waitq *q),
		   void (*stuck)(struct ag_list *w, const char *refusal), const char *refusal);
/* Polls fd when there are waiters and no poll is out; without an SQE every
 * waiter is refused through stuck rather than left hanging. */
void ag_waitq_arm(struct ag_waitq *q);

#endif
