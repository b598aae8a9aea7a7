/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The control socket, client side (agentgatectl): one JSON request line to
 * /run/<instance>/control.sock, one JSON response line back.
 */
#ifndef AG_CTL_H
#define AG_CTL_H

#include <jansson.h>

#include "instance.h"
#include "util.h"

#define AG_CTL_TIMEOUT_MS 5000

/*
 * Sends request, returns 0 and *response (caller decrefs) when the daemon
 * answered {"ok":true,...}.  Otherwise a negative errno with err set:
 * -ENOENT or -ECONNREFUSED when agentgated is not running, -ETIMEDOUT,
 * -EPROTO for an unreadable response, -EREMOTEIO with the daemon's "error"
 * text when it answered {"ok":false}.
 */
int ag_ctl_call(const struct ag_instance *in, json_t *request, json_t **response,
		struct ag_err *err);

/*
 * Tells agentgated that an agent's quota entry was made or removed: 0 once
 * it has read the quota map again (its next call of any agent is charged
 * as the map says), or when it is not running (it reads the map at start).
 */
int ag_ctl_budgets_changed(const struct ag_instance *in, struct ag_err *err);

#endif
