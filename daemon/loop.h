/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The event loop (loop.c) and the modules it starts and stops: each one
 * hangs its state off struct ag_loop and issues its I/O on l->ring
 * (ring.h).
 */
#ifndef AG_LOOP_H
#define AG_LOOP_H

#include <stdbool.h>

#include "ring.h"
#include "stream.h"

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
struct ag_approvals;

struct ag_loop {
	struct ag_ring ring;
	struct ag_daemon *d;
	struct ag_list send_due; /* streams whose sends start at the next flush (stream.h) */
	struct ag_stream_spares spares; /* their buffers given back (stream.h) */
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
	/* Calls held for a human (approvals.h): the MCP path's registry,
	 * which the control socket lists and resolves. */
	struct ag_approvals *approvals;
};

#endif
