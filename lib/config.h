/* SPDX-License-Identifier: GPL-2.0 */
/*
 * agentgate.json: the instance configuration.  Strict: an unknown key or a
 * value of the wrong type is an error naming its JSON path, never ignored.
 * With no file, the embedded default of agentgated(8) applies: every
 * agent's TCP is redirected to the daemon and relayed, UDP goes only to the
 * resolvers of /etc/resolv.conf.
 */
#ifndef AG_CONFIG_H
#define AG_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "agentgate.h"
#include "util.h"

#define AG_DEFAULT_PORT 15080
#define AG_DEFAULT_MARK 0x41470000u /* "AG" */
#define AG_MAX_CONF_RULES 256
#define AG_MAX_CONF_AGENTS 256

struct ag_rule_conf {
	uint8_t addr[16];
	int prefixlen; /* IPv6 bits; v4 rules are v4-mapped */
	uint16_t port; /* 0: every port */
	uint32_t verdict;
};

struct ag_agent_conf {
	char name[AG_NAME_LEN];
	uint32_t verdict;
	/* all 0: no quota (kern.h's struct ag_quota_limits, same fields) */
	uint32_t connect_rate, connect_burst, calls_per_minute, calls_per_day;
	struct ag_rule_conf *rules;
	int nr_rules;
};

struct ag_conf {
	uint16_t port;
	bool ipv6;
	uint32_t mark;
	uint8_t resolvers[AG_MAX_RESOLVERS][16];
	int nr_resolvers;
	uint16_t resolver_port;
	uint32_t default_verdict;
	struct ag_rule_conf *rules;
	int nr_rules;
	struct ag_agent_conf *agents;
	int nr_agents;
	uint32_t connect_timeout_ms;
};

/* The embedded default (reads /etc/resolv.conf). */
int ag_conf_default(struct ag_conf *c, struct ag_err *err);
/* The default, overridden by the file's settings. */
int ag_conf_load(struct ag_conf *c, const char *path, struct ag_err *err);
void ag_conf_free(struct ag_conf *c);
/* The kernel's view of the configuration. */
void ag_conf_to_kernel(const struct ag_conf *c, struct ag_config *k);

#endif
