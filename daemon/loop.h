/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The event loop (loop.c) and the modules it starts and stops: each one
 * hangs its state off struct ag_loop and issues its I/O on l->ring
 * (ring.h).
 */
#ifndef AG_LOOP_H
#define AG_LOOP_H

#include <stdbool.h>

/* Only for resolve.c, which reaches l->d through this header: goes once
 * it includes daemon.h itself. */
#include "daemon.h"
#include "ring.h"

struct ag_daemon;
struct ag_admit;
struct ag_relay;
struct ag_classify;
struct ag_resolve;
struct ag_mcp;
struct ag_control;
struct ag_events;
struct ag_fair;
struct ag_scrape;

struct ag_loop {
	struct ag_ring ring;
	struct ag_daemon *d;
	bool stopping;
	int status;		/* what ag_loop_run returns: 0, or the fatal error */
	struct ag_admit *admit; /* admit.h */
	struct ag_relay *relay;
	struct ag_classify *classify;
	struct ag_resolve *resolve;
	struct ag_mcp *mcp;
	struct ag_control *control;
	struct ag_events *events;
	struct ag_fair *fair;	  /* fair.h */
	struct ag_scrape *scrape; /* the metrics endpoint (scrape.h) */
};

/*
 * The ring's primitives under their former names, for the modules that
 * still call them so (mcp.c, resolve.c): ring.h says what each does.
 */
static inline struct io_uring_sqe *ag_loop_sqe(struct ag_loop *l, struct ag_io *io, unsigned int op)
{
	return ag_ring_sqe(&l->ring, io, op);
}

static inline struct io_uring_sqe *ag_loop_sqe_untracked(struct ag_loop *l)
{
	return ag_ring_sqe_untracked(&l->ring);
}

static inline bool ag_loop_reserve(struct ag_loop *l, unsigned int n)
{
	return ag_ring_reserve(&l->ring, n);
}

static inline void ag_loop_cancel_fd(struct ag_loop *l, int fd)
{
	ag_ring_cancel_fd(&l->ring, fd);
}

#endif
