/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The metrics endpoint (agentgate.conf(5) "metrics"): Prometheus scrapes
 * GET /metrics over HTTP on a loopback address, served on the loop.  The
 * counters live in metrics.h; agents never reach this listener, since the
 * daemon refuses its address as their destination (ag_metrics_guards).
 */
#ifndef AG_SCRAPE_H
#define AG_SCRAPE_H

#include "util.h"

struct ag_loop;

/* Creates d->metrics, and the listener when the configuration asks for one. */
int ag_scrape_init(struct ag_loop *l, struct ag_err *err);
/* The listener for loop.c to accept on; -1 when metrics are not served. */
int ag_scrape_fd(struct ag_loop *l);
/* Takes ownership of fd, an accepted scrape connection. */
void ag_scrape_accept(struct ag_loop *l, int fd);
/* Closes every client; each goes once its I/O drained. */
void ag_scrape_stop(struct ag_loop *l);
/* Only once no client is left (after a drained stop); frees d->metrics. */
void ag_scrape_fini(struct ag_loop *l);

#endif
