// SPDX-License-Identifier: GPL-2.0
/*
 * "fleet": the Redis that call budgets of scope "fleet" are leased from
 * (daemon/fleet.h).  Plain values only: the password file is read when
 * the daemon connects, never here.
 */
#include <stdio.h>
#include <string.h>

#include "conf_int.h"
#include "hostport.h"

/* "unix:/absolute/path" or "host:port" (a DNS name or an IPv4 literal). */
static int parse_redis(struct parse *p, json_t *v, struct ag_fleet_conf *f)
{
	static const char where[] = "$.fleet.redis";
	const char *s, *colon;
	size_t n;
	int ret;

	if ((ret = conf_get_string(p, where, v, &s)))
		return ret;
	n = strlen(s);
	if (!n || n >= sizeof(f->redis) || conf_has_control(s))
		return conf_badf(p, where, "expected 1-%zu printable bytes", sizeof(f->redis) - 1);
	memcpy(f->redis, s, n + 1);
	if (!strncmp(s, "unix:", 5)) {
		if (s[5] != '/')
			return conf_bad(p, where, "expected \"unix:/absolute/path\"");
		snprintf(f->host, sizeof(f->host), "%s", s + 5);
		return 0;
	}
	colon = strrchr(s, ':');
	if (!colon || colon == s || !ag_port_parse(colon + 1, strlen(colon + 1), &f->port) ||
	    !f->port || !ag_dns_name_valid(s, (size_t)(colon - s), 0))
		return conf_bad(p, where, "expected \"unix:/path\" or \"host:port\"");
	memcpy(f->host, s, (size_t)(colon - s));
	f->host[colon - s] = '\0';
	return 0;
}

int conf_parse_fleet(struct parse *p, json_t *v, struct ag_conf *c)
{
	struct ag_fleet_conf *f = &c->fleet;
	json_t *lease = json_object_get(v, "lease_calls");
	json_t *unreach = json_object_get(v, "on_unreachable");
	uint64_t n;
	int ret;

	if ((ret = conf_check_keys(p, "$.fleet", v, conf_fleet_keys)))
		return ret;
	memset(f, 0, sizeof(*f));
	f->lease_calls = AG_FLEET_LEASE_CALLS;
	snprintf(f->key_prefix, sizeof(f->key_prefix), "agentgate");
	if ((ret = parse_redis(p, json_object_get(v, "redis"), f)) ||
	    (ret = conf_get_optional(p, "$.fleet", v, "user", f->user, sizeof(f->user))) ||
	    (ret = conf_get_optional(p, "$.fleet", v, "key_prefix", f->key_prefix,
				     sizeof(f->key_prefix))))
		return ret;
	if (strpbrk(f->key_prefix, " {}") || strpbrk(f->user, " "))
		return conf_bad(p, "$.fleet", "user and key_prefix take no spaces or braces");
	if (json_object_get(v, "password_file") &&
	    (ret = conf_path(p, "$.fleet.password_file", json_object_get(v, "password_file"),
			     f->password_file)))
		return ret;
	if (lease) {
		if ((ret = conf_get_uint(p, "$.fleet.lease_calls", lease, AG_FLEET_MAX_LEASE, &n)))
			return ret;
		if (!n)
			return conf_bad(p, "$.fleet.lease_calls", "expected at least 1");
		f->lease_calls = (uint32_t)n;
	}
	if (unreach &&
	    (!json_is_string(unreach) || (strcmp(json_string_value(unreach), "fail_closed") &&
					  strcmp(json_string_value(unreach), "leases"))))
		return conf_bad(p, "$.fleet.on_unreachable",
				"expected \"fail_closed\" or \"leases\"");
	f->unreachable_leases = unreach && !strcmp(json_string_value(unreach), "leases");
	return 0;
}

/* After the agents: a fleet-wide budget needs a fleet to hold it. */
int conf_check_fleet(struct parse *p, const struct ag_conf *c)
{
	char where[64];

	for (int i = 0; i < c->nr_agents; i++) {
		if (!c->agents[i].fleet_scope || c->fleet.redis[0])
			continue;
		snprintf(where, sizeof(where), "$.agents[%d].quota.scope", i);
		return conf_bad(p, where, "\"fleet\" needs a \"fleet\" block naming the redis");
	}
	return 0;
}
