/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Output rules of the tool servers (agentgate.conf(5) "output_rules"),
 * compiled once at start: per server, the redactor of the rules that apply
 * to every tool, and one per tool that a rule is limited to (those rules
 * plus the general ones), so a result costs one lookup and one pass.
 */
#ifndef AG_OUTRULES_H
#define AG_OUTRULES_H

#include "config.h"
#include "redact.h"

struct ag_outrules;

int ag_outrules_new(const struct ag_conf *conf, struct ag_outrules **out, struct ag_err *err);
void ag_outrules_free(struct ag_outrules *o);
/* What governs results of tool on server s; NULL when no rule applies. */
const struct ag_redactor *ag_outrules_for(const struct ag_outrules *o,
					  const struct ag_server_conf *s, const char *tool);
/* What governs a result no call can be named for: every rule of server s. */
const struct ag_redactor *ag_outrules_all(const struct ag_outrules *o,
					  const struct ag_server_conf *s);

#endif
