/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Detaching agentgated (started without --foreground and without a
 * service manager): the process forks before anything else exists, and
 * the parent waits until the child serves or fails, so its exit status is
 * the start's outcome.
 */
#ifndef AG_DAEMON_DETACH_H
#define AG_DAEMON_DETACH_H

#include <stdbool.h>

#include "util.h"

/* A process's detaching: main.c's, in struct ag_daemon. */
struct ag_detach {
	int report_fd; /* the child's end, until it has reported; -1: none */
	bool detached; /* this process is a detached child (ag_detach returned 0) */
};

#define AG_DETACH_INIT          \
	{                       \
		.report_fd = -1 \
	}

/*
 * Forks.  Returns 0 in the child, which is in a session of its own with
 * standard input, output and error on /dev/null; the parent does not
 * return: it exits once the child reports (ag_detach_report) or dies,
 * with 0 only if the child serves.  To be called before any thread, ring,
 * BPF object or socket exists: the child must own all of them.
 */
int ag_detach(struct ag_detach *dt, struct ag_err *err);
/* A detached child: standard error appends to log from here on. */
int ag_detach_log(const struct ag_detach *dt, const char *log, struct ag_err *err);
/*
 * A detached child's outcome, for its parent to print: error NULL means
 * serving, and summary is printed; otherwise error is.  Only the first
 * report counts; a no-op when not detached.
 */
void ag_detach_report(struct ag_detach *dt, const char *error, const char *summary);

#endif
