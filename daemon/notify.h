/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The service manager's readiness protocol (sd_notify(3)), without
 * libsystemd: one datagram per state change to the AF_UNIX socket named by
 * $NOTIFY_SOCKET (a path, or "@name" in the abstract namespace).  The
 * daemon sends "READY=1\nMAINPID=<pid>" once it serves, "STOPPING=1" when
 * it begins to stop, and "RELOADING=1"/"READY=1" around a SIGHUP reload.
 */
#ifndef AG_DAEMON_NOTIFY_H
#define AG_DAEMON_NOTIFY_H

#include <stdbool.h>

#include "util.h"

/*
 * Reads $NOTIFY_SOCKET and unsets it, so nothing the daemon starts
 * inherits it, and opens the datagram socket the states go out on.
 * Without the variable nothing is opened.  Fails on an address that
 * cannot be an AF_UNIX socket (too long, neither "/..." nor "@...").
 */
int ag_notify_open(struct ag_err *err);
/* Whether a service manager waits for the states ($NOTIFY_SOCKET was set). */
bool ag_notify_managed(void);
/* Sends one state; a no-op without a manager, a logged warning on failure. */
void ag_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "RELOADING=1" with the MONOTONIC_USEC that notify-reload services need. */
void ag_notify_reloading(void);
void ag_notify_close(void);

#endif
