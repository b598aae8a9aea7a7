/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The daemon's metrics: counters, gauges and histograms kept by the loop's
 * thread (every update comes from it), rendered in the Prometheus text
 * format 0.0.4 for the scrape endpoint (scrape.h).  agentgated(8) METRICS
 * lists every family.
 *
 * Cardinality is bounded whatever agents do: an agent label is a
 * configured agent's name or "_other"; a server label a configured tool
 * server's; a tool gets its own series only once a call of it was allowed,
 * at most AG_METRICS_MAX_TOOLS per server, every other name counts as
 * "_other" (an agent cannot mint series by calling made-up names); the
 * other labels take values the daemon's code names.  Each family holds at
 * most AG_METRICS_MAX_SERIES series; past that an update is counted in
 * agentgate_metrics_dropped_total instead.
 */
#ifndef AG_DAEMON_METRICS_H
#define AG_DAEMON_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "config.h"

struct ag_daemon;

#define AG_METRICS_MAX_TOOLS 64
#define AG_METRICS_MAX_SERIES 8192

struct ag_metrics;
struct ag_audit_member;

int ag_metrics_new(const struct ag_conf *c, struct ag_metrics **out, struct ag_err *err);
void ag_metrics_free(struct ag_metrics *m);

/*
 * An audit record the daemon appended (trail.c): connect, decision, result
 * records are counted from their fields.  seq: the record's sequence
 * number, for the writer's lag.  m NULL (no loop yet): ignored.
 */
void ag_metrics_record(struct ag_metrics *m, const char *kind, const json_t *fields, uint64_t seq);
/* The same, for a record appended as members (ag_audit_append_members). */
void ag_metrics_record_members(struct ag_metrics *m, const char *kind,
			       const struct ag_audit_member *fields, size_t n, uint64_t seq);
/* An agent connection starts (delta 1) or ends (-1) on the relay or MCP path. */
void ag_metrics_conn(struct ag_metrics *m, const char *agent, int delta);
/* A refusal the kernel's hooks reported (events.c), counted before rate limiting. */
void ag_metrics_kernel_refusal(struct ag_metrics *m, const char *reason);
/* A governed call (or its answer) was held ns nanoseconds for its decision record. */
void ag_metrics_audit_wait(struct ag_metrics *m, uint64_t ns);
/* A scrape request refused (bad request, too many clients, timeout). */
void ag_metrics_scrape_error(struct ag_metrics *m);

/* The exposition, malloc'd (*len bytes, no NUL); NULL when out of memory. */
char *ag_metrics_render(struct ag_metrics *m, struct ag_daemon *d, size_t *len);

/*
 * Whether an agent's original destination addr:port (16 bytes, v4-mapped)
 * reaches the metrics endpoint: its address, or any loopback or
 * unspecified address, on its port.  Such a connection is refused whatever
 * pass-through says (admit.c).
 */
bool ag_metrics_guards(const struct ag_conf *c, const uint8_t addr[16], uint16_t port);

#endif
