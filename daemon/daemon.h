/* SPDX-License-Identifier: GPL-2.0 */
/*
 * agentgated's shared state.  main.c does the privileged set-up (cgroup,
 * BPF objects, listeners (listen.c), marks) and drops capabilities; loop.c
 * runs the io_uring event loop over what main.c opened.
 */
#ifndef AG_DAEMON_H
#define AG_DAEMON_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "audit.h"
#include "config.h"
#include "detach.h"
#include "instance.h"
#include "kern.h"

enum ag_listener {
	AG_LISTEN_V4,
	AG_LISTEN_V6,
	AG_LISTEN__COUNT,
};

struct ag_daemon_stats {
	uint64_t conns_total; /* accepted from agents */
	uint64_t conns_active;
	uint64_t conns_rejected;  /* no origin, unknown agent, gateway loop */
	uint64_t upstream_failed; /* connect to the original destination failed */
	uint64_t kernel_refusals; /* records read from the events ring buffer */
	uint64_t audit_errors;	  /* records not written since the writer failed */
	uint64_t audit_lost;	  /* records not written, over the daemon's life */
	uint64_t relay_copied;	  /* bytes the relay sent itself (relay.c) */
	uint64_t relay_spliced;	  /* relay directions the kernel spliced */
	uint64_t relay_unspliced; /* of those, copied after all: the reader fell behind */
};

struct ag_audit_writer;
struct ag_audit_ship;
struct ag_inventory;
struct ag_budget_state;
struct ag_metrics;
struct ag_subagents;
struct ag_upgrade;
struct ag_policy_git;

struct ag_daemon {
	struct ag_instance inst;
	struct ag_conf conf;
	struct ag_kern kern;
	struct ag_splice_maps splice;	 /* the relay's (relay.c); -1s when off */
	char splice_off[512];		 /* why the relay copies every byte; "" when it splices */
	int listen_fd[AG_LISTEN__COUNT]; /* -1 when not listening */
	int control_fd;			 /* unix stream listener */
	int dns_fd;			 /* DNS relay (dns.h), -1 when off */
	int dns_host_fd;		 /* its loopback socket, for host agents; -1: off */
	uint64_t start_ns;		 /* ag_now_ns() at start */
	uint32_t nr_rules;		 /* entries in dest_rules after sync */
	struct ag_audit_writer *audit;	 /* lib/audit.h */
	/* The loop thread's records serialised (trail.c), reused from one to the next. */
	struct ag_audit_buf audit_buf;
	/* lib/audit.h's enum ag_audit_durability: what a governed call and
	 * its answer wait for (daemon/mcp_conn.c, docs/audit.md). */
	int audit_durability;
	char audit_path[PATH_MAX];
	char audit_key[PATH_MAX];
	struct ag_daemon_stats stats;
	struct ag_inventory *inventory; /* tool integrity (integrity.h) */
	struct ag_budget_state *budget; /* loop protection state (budget.h) */
	struct ag_metrics *metrics;	/* metrics.h; NULL outside the loop */
	struct ag_subagents *subagents; /* chains' cache (subagent.h) */
	struct ag_upgrade *upgrade;	/* the daemon --upgrade takes over (upgrade.h) */
	char log_path[PATH_MAX];	/* <state-dir>/agentgated.log: where a detached one logs */
	bool start_reported;		/* ag_daemon_started ran once */
	struct ag_detach detach;	/* main.c: whether, and to whom, to report the start */
	struct ag_decider *decider;	/* decide.h; NULL outside the loop */
	struct ag_policy_git *policy_git; /* policy_git.h; NULL without a policy_source */
	struct ag_fleet *fleet;		  /* fleet.h; NULL without a "fleet" */
	struct ag_audit_ship *ship;	/* lib/audit_ship.h; NULL: not shipped */
	char ship_cursor[PATH_MAX];	/* <state-dir>/audit.ship.cursor */
	struct ag_inbound *inbound;	/* inbound.h; NULL without "inbound" */
	struct ag_hosted *hosted;	/* hosted.h; NULL without a "command" */
};

/*
 * Runs until SIGTERM or SIGINT.  Returns 0 on a clean stop, a negative
 * errno (with a log line) on a fatal error.  On return every agent
 * connection is closed; main.c then closes the listeners and exits, after
 * which new agent connects are refused by the kernel (the links stay
 * pinned).
 */
int ag_loop_run(struct ag_daemon *d);

/*
 * The start's outcome (main.c), reported once to whoever waits for it:
 * the parent of a detached start (detach.h), the service manager
 * (notify.h).  error NULL: serving; loop.c says so once its listeners
 * are armed.
 */
void ag_daemon_started(struct ag_daemon *d, const char *error);

#endif
