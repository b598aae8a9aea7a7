// SPDX-License-Identifier: GPL-2.0
/*
 * The configuration of agents ("agents", see lib/conf_int.h) and the
 * address lists they share with the top level: "rules", "passthrough",
 * "dns".  Plain values only: nothing here reads a file or the network.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_int.h"
#include "hostport.h"
#include "kern.h"

int conf_parse_rules(struct parse *p, const char *path, json_t *arr, struct ag_rule_conf **out,
		     int *nr)
{
	size_t i, n = json_array_size(arr);
	json_t *r;
	char where[256];

	if (!json_is_array(arr))
		return conf_bad(p, path, "expected an array");
	if (n > AG_MAX_CONF_RULES)
		return conf_bad(p, path, "too many rules (at most 256)");
	*out = calloc(n ? n : 1, sizeof(**out));
	if (!*out)
		return ag_errf(p->err, ENOMEM, "%s: out of memory", p->file);
	json_array_foreach(arr, i, r)
	{
		struct ag_rule_conf *rc = &(*out)[i];
		json_t *dest = json_object_get(r, "dest");
		uint64_t port = 0;
		int ret;

		snprintf(where, sizeof(where), "%s[%zu]", path, i);
		if ((ret = conf_check_keys(p, where, r, conf_rule_keys)))
			return ret;
		snprintf(where, sizeof(where), "%s[%zu].dest", path, i);
		if (!json_is_string(dest) ||
		    ag_addr_parse(json_string_value(dest), rc->addr, &rc->prefixlen))
			return conf_bad(p, where,
					"expected an address or CIDR, e.g. \"10.0.0.0/8\"");
		snprintf(where, sizeof(where), "%s[%zu].port", path, i);
		if (json_object_get(r, "port") &&
		    (ret = conf_get_uint(p, where, json_object_get(r, "port"), 65535, &port)))
			return ret;
		rc->port = (uint16_t)port;
		snprintf(where, sizeof(where), "%s[%zu].verdict", path, i);
		if ((ret = conf_get_verdict(p, where, json_object_get(r, "verdict"), &rc->verdict)))
			return ret;
		(*nr)++;
	}
	return 0;
}

/* "scope": "host" (the default) or "fleet" (lib/conf_fleet.c, daemon/fleet.h). */
static int parse_scope(struct parse *p, const char *path, json_t *v, struct ag_agent_conf *ac)
{
	char where[320];

	snprintf(where, sizeof(where), "%s.scope", path);
	if (v && (!json_is_string(v) ||
		  (strcmp(json_string_value(v), "host") && strcmp(json_string_value(v), "fleet"))))
		return conf_bad(p, where, "expected \"host\" or \"fleet\"");
	ac->fleet_scope = v && !strcmp(json_string_value(v), "fleet");
	if (ac->fleet_scope && !ac->calls_per_minute && !ac->calls_per_day)
		return conf_bad(p, where, "\"fleet\" needs calls_per_minute or calls_per_day");
	return 0;
}

static int parse_quota(struct parse *p, const char *path, json_t *q, struct ag_agent_conf *ac)
{
	uint32_t *fields[] = { &ac->connect_rate, &ac->connect_burst, &ac->calls_per_minute,
			       &ac->calls_per_day };
	char where[320];
	int ret;

	if ((ret = conf_check_keys(p, path, q, conf_quota_keys)))
		return ret;
	for (int i = 0; conf_quota_keys[i]; i++) {
		json_t *v = json_object_get(q, conf_quota_keys[i]);
		uint64_t n;

		if (!v || !strcmp(conf_quota_keys[i], "scope"))
			continue;
		snprintf(where, sizeof(where), "%s.%s", path, conf_quota_keys[i]);
		if ((ret = conf_get_uint(p, where, v, UINT32_MAX, &n)))
			return ret;
		*fields[i] = (uint32_t)n;
	}
	if (ac->connect_rate && !ac->connect_burst)
		return conf_bad(p, path, "connect_rate needs a connect_burst of at least 1");
	return parse_scope(p, path, json_object_get(q, "scope"), ac);
}

static int parse_loop_protection(struct parse *p, const char *path, json_t *lp,
				 struct ag_agent_conf *ac)
{
	json_t *action = json_object_get(lp, "action");
	char where[320];
	uint64_t n;
	int ret;

	if ((ret = conf_check_keys(p, path, lp, conf_loop_keys)))
		return ret;
	snprintf(where, sizeof(where), "%s.max_identical", path);
	if ((ret = conf_get_uint(p, where, json_object_get(lp, "max_identical"),
				 AG_LOOP_MAX_IDENTICAL, &n)))
		return ret;
	if (!n)
		return conf_bad(p, where,
				"expected at least 1 (leave loop_protection out to turn it off)");
	ac->loop_max_identical = (uint32_t)n;
	snprintf(where, sizeof(where), "%s.window_s", path);
	if ((ret = conf_get_uint(p, where, json_object_get(lp, "window_s"), AG_LOOP_MAX_WINDOW_S,
				 &n)))
		return ret;
	if (!n)
		return conf_bad(p, where, "expected at least 1");
	ac->loop_window_s = (uint32_t)n;
	snprintf(where, sizeof(where), "%s.action", path);
	if (action && (!json_is_string(action) || (strcmp(json_string_value(action), "deny") &&
						   strcmp(json_string_value(action), "escalate"))))
		return conf_bad(p, where, "expected \"deny\" or \"escalate\"");
	ac->loop_escalate = action && !strcmp(json_string_value(action), "escalate");
	return 0;
}

/*
 * A passthrough entry, one of
 *	*[:PORT]			every destination
 *	NAME[:PORT], *.SUFFIX[:PORT]	by TLS SNI or HTTP Host
 *	IPV4[/LEN][:PORT]		by original destination address
 *	[IPV6[/LEN]][:PORT]		IPv6 always in brackets, so its colons
 *					never read as a port
 */
int conf_parse_pass_entry(struct parse *p, const char *path, const char *s, struct ag_pass_conf *pc)
{
	static const char syntax[] = "expected \"*\", a host name, \"*.suffix\", an IPv4 address "
				     "or CIDR, or \"[IPv6]\" or \"[IPv6/len]\", each with an "
				     "optional \":PORT\"";
	char host[AG_HOST_LEN + 8];
	struct ag_authority a;
	size_t n = strlen(s);

	memset(pc, 0, sizeof(*pc));
	if (n >= sizeof(host))
		return conf_badf(p, path, "\"%.40s...\": too long", s);
	switch (ag_authority_split(s, n, false, &a)) {
	case AG_AUTH_E_BRACKET:
		return conf_badf(p, path, "\"%s\": missing \"]\" after the IPv6 address", s);
	case AG_AUTH_E_AFTER_BRACKET:
		return conf_badf(p, path, "\"%s\": expected \":PORT\" after \"]\"", s);
	case AG_AUTH_OK:
		break;
	}
	if (!a.bracketed && a.port && memchr(a.port, ':', a.port_len))
		return conf_badf(p, path,
				 "\"%s\": write IPv6 in brackets, e.g. \"[::1]\" or "
				 "\"[fd00::/8]:443\"",
				 s);
	memcpy(host, a.host, a.host_len);
	host[a.host_len] = '\0';
	if (a.bracketed) {
		if (!strchr(host, ':') || ag_addr_parse(host, pc->addr, &pc->prefixlen))
			return conf_badf(p, path,
					 "\"%s\": expected an IPv6 address or CIDR in brackets", s);
		pc->kind = AG_PASS_CIDR;
	} else if (!strcmp(host, "*")) {
		pc->kind = AG_PASS_ANY;
	} else if (host[0] && strspn(host, "0123456789./") == a.host_len) {
		if (ag_addr_parse(host, pc->addr, &pc->prefixlen))
			return conf_badf(p, path, "\"%s\": expected an IPv4 address or CIDR", s);
		pc->kind = AG_PASS_CIDR;
	} else {
		if (!ag_host_lower(pc->host, host, a.host_len) ||
		    !ag_dns_name_valid(pc->host, strlen(pc->host), AG_NAME_WILDCARD))
			return conf_badf(p, path, "\"%s\": %s", s, syntax);
		pc->kind = AG_PASS_HOST;
	}
	if (a.port && !ag_port_parse(a.port, a.port_len, &pc->port))
		return conf_badf(p, path, "\"%s\": the port must be 1 to 65535", s);
	return 0;
}

static int pass_item(struct parse *p, const char *where, const char *s, void *slot, void *ctx)
{
	return conf_parse_pass_entry(p, where, s, slot);
}

int conf_parse_pass(struct parse *p, const char *path, json_t *v, struct ag_pass_conf **out,
		    int *nr)
{
	return conf_parse_strings(p, path, v, sizeof(**out), (void **)out, nr, pass_item, NULL);
}

/* "server/name" patterns of an allow-list; server must be configured. */
static int pattern_item(struct parse *p, const char *where, const char *s, void *slot, void *ctx)
{
	const struct ag_conf *c = ctx;
	const char *slash = strchr(s, '/');
	bool known = false;

	if (!slash || slash == s || !slash[1])
		return conf_badf(p, where,
				 "\"%s\": expected \"SERVER/NAME\", where NAME may use '*'", s);
	if (conf_has_control(s))
		return conf_badf(p, where, "\"%s\": contains a control character", s);
	for (int j = 0; j < c->nr_servers && !known; j++)
		known = strlen(c->servers[j].name) == (size_t)(slash - s) &&
			!strncmp(c->servers[j].name, s, (size_t)(slash - s));
	if (!known)
		return conf_badf(p, where, "\"%s\": no tool server named \"%.*s\"", s,
				 (int)(slash - s), s);
	if (!(*(char **)slot = strdup(s)))
		return conf_nomem(p);
	return 0;
}

static int parse_patterns(struct parse *p, const char *path, json_t *v, const struct ag_conf *c,
			  char ***out, int *nr)
{
	return conf_parse_strings(p, path, v, sizeof(**out), (void **)out, nr, pattern_item,
				  (void *)c);
}

/* "operator" and "attributes": what policies see of the agent. */
static int parse_agent_policy(struct parse *p, const char *path, json_t *a,
			      struct ag_agent_conf *ac)
{
	char where[320];
	const char *v, *key;
	json_t *e, *val;
	int ret;

	if ((e = json_object_get(a, "operator"))) {
		snprintf(where, sizeof(where), "%s.operator", path);
		if ((ret = conf_get_string(p, where, e, &v)))
			return ret;
		if (!*v || strlen(v) >= sizeof(ac->operator_name))
			return conf_badf(p, where, "expected a user name of 1 to %zu bytes",
					 sizeof(ac->operator_name) - 1);
		strcpy(ac->operator_name, v);
	}
	if (!(e = json_object_get(a, "attributes")))
		return 0;
	snprintf(where, sizeof(where), "%s.attributes", path);
	if (!json_is_object(e))
		return conf_bad(p, where, "expected an object");
	json_object_foreach(e, key, val)
	{
		snprintf(where, sizeof(where), "%s.attributes.%s", path, key);
		/* Scalars only: they are what owner/team/trust need, and each
		 * maps to exactly one Cedar type. */
		if (!*key)
			return conf_bad(p, where, "expected a non-empty attribute name");
		if (json_is_string(val) && (ret = conf_get_string(p, where, val, &v)))
			return ret;
		if (!json_is_string(val) && !json_is_integer(val) && !json_is_boolean(val))
			return conf_bad(p, where, "expected a string, an integer or a boolean");
	}
	if (!(ac->attributes = json_dumps(e, JSON_COMPACT | JSON_SORT_KEYS)))
		return conf_nomem(p);
	return 0;
}

/* "delegated_by": agent names; they need not be configured agents themselves. */
static int parse_delegated_by(struct parse *p, const char *path, json_t *v,
			      struct ag_agent_conf *ac)
{
	char where[320];
	size_t i, n;
	json_t *e;
	int ret;

	if (!(ac->delegated_by = conf_get_array(p, path, v, sizeof(*ac->delegated_by), &n, &ret)))
		return ret;
	json_array_foreach(v, i, e)
	{
		const char *s;

		snprintf(where, sizeof(where), "%s[%zu]", path, i);
		if ((ret = conf_get_string(p, where, e, &s)))
			return ret;
		if (!ag_agent_name_valid(s))
			return conf_badf(p, where,
					 "\"%s\": expected an agent name of [A-Za-z0-9_.-]", s);
		if (!strcmp(s, ac->name))
			return conf_badf(p, where, "\"%s\": an agent cannot delegate to itself", s);
		for (size_t j = 0; j < i; j++)
			if (!strcmp(ac->delegated_by[j], s))
				return conf_badf(p, where, "duplicate agent name \"%s\"", s);
		strcpy(ac->delegated_by[i], s);
		ac->nr_delegated_by++;
	}
	return 0;
}

/* "unix_sockets": exact addresses, as ag_unix_key_make() takes them. */
static int unix_item(struct parse *p, const char *where, const char *s, void *slot, void *ctx)
{
	const struct ag_agent_conf *ac = ctx;
	struct ag_unix_key key;
	int ret;

	if (conf_has_control(s))
		return conf_bad(p, where, "contains a control character");
	ret = ag_unix_key_make(0, s, &key);
	if (ret == -ENAMETOOLONG)
		return conf_badf(p, where, "\"%s\": longer than a socket address (%d bytes)", s,
				 AG_UNIX_PATH_LEN);
	if (ret)
		return conf_badf(p, where,
				 "\"%s\": expected an absolute path or \"@NAME\" (abstract)", s);
	for (int j = 0; j < ac->nr_unix_sockets; j++)
		if (!strcmp(ac->unix_sockets[j], s))
			return conf_badf(p, where, "duplicate address \"%s\"", s);
	strcpy(slot, s);
	return 0;
}

static int parse_unix_sockets(struct parse *p, const char *path, json_t *v,
			      struct ag_agent_conf *ac)
{
	size_t n = 0;
	int ret;

	if ((ret = conf_get_list(p, path, v, &n)))
		return ret;
	if (n > AG_MAX_UNIX_SOCKETS)
		return conf_badf(p, path, "too many entries (at most %d)", AG_MAX_UNIX_SOCKETS);
	return conf_parse_strings(p, path, v, sizeof(*ac->unix_sockets), (void **)&ac->unix_sockets,
				  &ac->nr_unix_sockets, unix_item, ac);
}

void conf_dns_free(struct ag_dns_conf *d)
{
	free(d->allow);
	free(d->deny);
	memset(d, 0, sizeof(*d));
}

/* One entry of a "dns" block: a host name, "*.suffix", and in allow "*" (ctx non-NULL). */
static int dns_item(struct parse *p, const char *where, const char *h, void *slot, void *star)
{
	char *name = slot;

	if (!ag_host_lower(name, h, strlen(h)) ||
	    !((star && !strcmp(name, "*")) ||
	      ag_dns_name_valid(name, strlen(name), AG_NAME_WILDCARD)))
		return conf_badf(p, where, "\"%s\": expected a host name or \"*.suffix\"%s", h,
				 star ? " or \"*\"" : "");
	return 0;
}

static int parse_dns_names(struct parse *p, const char *path, json_t *v, bool star,
			   char (**out)[AG_HOST_LEN], int *nr)
{
	static const char yes;

	return conf_parse_strings(p, path, v, sizeof(**out), (void **)out, nr, dns_item,
				  star ? (void *)&yes : NULL);
}

int conf_parse_dns(struct parse *p, const char *path, json_t *v, struct ag_dns_conf *d)
{
	char where[300];
	json_t *e;
	int ret;

	if ((ret = conf_check_keys(p, path, v, conf_dns_keys)))
		return ret;
	conf_dns_free(d);
	d->set = true;
	snprintf(where, sizeof(where), "%s.allow", path);
	if ((e = json_object_get(v, "allow"))) {
		d->allow_set = true;
		if ((ret = parse_dns_names(p, where, e, true, &d->allow, &d->nr_allow)))
			return ret;
	}
	snprintf(where, sizeof(where), "%s.deny", path);
	if ((e = json_object_get(v, "deny")) &&
	    (ret = parse_dns_names(p, where, e, false, &d->deny, &d->nr_deny)))
		return ret;
	return 0;
}

int conf_parse_agents(struct parse *p, json_t *arr, struct ag_conf *c)
{
	size_t i, n = json_array_size(arr);
	json_t *a;
	char where[256];

	if (!json_is_array(arr))
		return conf_bad(p, "$.agents", "expected an array");
	if (n > AG_MAX_CONF_AGENTS)
		return conf_bad(p, "$.agents", "too many agents (at most 256)");
	c->agents = calloc(n ? n : 1, sizeof(*c->agents));
	if (!c->agents)
		return ag_errf(p->err, ENOMEM, "%s: out of memory", p->file);
	json_array_foreach(arr, i, a)
	{
		struct ag_agent_conf *ac = &c->agents[i];
		json_t *name = json_object_get(a, "name");
		int ret;

		snprintf(where, sizeof(where), "$.agents[%zu]", i);
		if ((ret = conf_check_keys(p, where, a, conf_agent_keys)))
			return ret;
		c->nr_agents++;
		snprintf(where, sizeof(where), "$.agents[%zu].name", i);
		if (!json_is_string(name) || !ag_agent_name_valid(json_string_value(name)))
			return conf_bad(p, where, "expected an agent name of [A-Za-z0-9_.-]");
		for (size_t j = 0; j < i; j++)
			if (!strcmp(c->agents[j].name, json_string_value(name)))
				return conf_bad(p, where, "duplicate agent name");
		snprintf(ac->name, sizeof(ac->name), "%s", json_string_value(name));
		ac->verdict = c->default_verdict;
		snprintf(where, sizeof(where), "$.agents[%zu].verdict", i);
		if (json_object_get(a, "verdict") &&
		    (ret = conf_get_verdict(p, where, json_object_get(a, "verdict"), &ac->verdict)))
			return ret;
		snprintf(where, sizeof(where), "$.agents[%zu].quota", i);
		if (json_object_get(a, "quota") &&
		    (ret = parse_quota(p, where, json_object_get(a, "quota"), ac)))
			return ret;
		snprintf(where, sizeof(where), "$.agents[%zu].max_conns", i);
		if (json_object_get(a, "max_conns")) {
			uint64_t mc;

			if ((ret = conf_get_uint(p, where, json_object_get(a, "max_conns"),
						 AG_MAX_CONNS_LIMIT, &mc)))
				return ret;
			if (!mc)
				return conf_bad(p, where, "must not be 0");
			ac->max_conns = (uint32_t)mc;
		}
		snprintf(where, sizeof(where), "$.agents[%zu].loop_protection", i);
		if (json_object_get(a, "loop_protection") &&
		    (ret = parse_loop_protection(p, where, json_object_get(a, "loop_protection"),
						 ac)))
			return ret;
		snprintf(where, sizeof(where), "$.agents[%zu].rules", i);
		if (json_object_get(a, "rules") &&
		    (ret = conf_parse_rules(p, where, json_object_get(a, "rules"), &ac->rules,
					    &ac->nr_rules)))
			return ret;
		snprintf(where, sizeof(where), "$.agents[%zu].tools", i);
		if (json_object_get(a, "tools") &&
		    (ret = parse_patterns(p, where, json_object_get(a, "tools"), c, &ac->tools,
					  &ac->nr_tools)))
			return ret;
		snprintf(where, sizeof(where), "$.agents[%zu].resources", i);
		if (json_object_get(a, "resources") &&
		    (ret = parse_patterns(p, where, json_object_get(a, "resources"), c,
					  &ac->resources, &ac->nr_resources)))
			return ret;
		snprintf(where, sizeof(where), "$.agents[%zu].prompts", i);
		if (json_object_get(a, "prompts") &&
		    (ret = parse_patterns(p, where, json_object_get(a, "prompts"), c, &ac->prompts,
					  &ac->nr_prompts)))
			return ret;
		snprintf(where, sizeof(where), "$.agents[%zu]", i);
		if ((ret = parse_agent_policy(p, where, a, ac)))
			return ret;
		snprintf(where, sizeof(where), "$.agents[%zu].delegated_by", i);
		if (json_object_get(a, "delegated_by") &&
		    (ret = parse_delegated_by(p, where, json_object_get(a, "delegated_by"), ac)))
			return ret;
		snprintf(where, sizeof(where), "$.agents[%zu].unix_sockets", i);
		if (json_object_get(a, "unix_sockets") &&
		    (ret = parse_unix_sockets(p, where, json_object_get(a, "unix_sockets"), ac)))
			return ret;
		snprintf(where, sizeof(where), "$.agents[%zu].dns", i);
		if (json_object_get(a, "dns") &&
		    (ret = conf_parse_dns(p, where, json_object_get(a, "dns"), &ac->dns)))
			return ret;
		snprintf(where, sizeof(where), "$.agents[%zu].passthrough", i);
		if (json_object_get(a, "passthrough")) {
			ac->pass_set = true;
			if ((ret = conf_parse_pass(p, where, json_object_get(a, "passthrough"),
						   &ac->pass, &ac->nr_pass)))
				return ret;
		}
	}
	return 0;
}
