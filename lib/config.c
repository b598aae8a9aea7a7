// SPDX-License-Identifier: GPL-2.0
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "config.h"
#include "kern.h"

#define RESOLV_CONF "/etc/resolv.conf"

static int add_resolver(struct ag_conf *c, const char *s)
{
	int plen;

	if (c->nr_resolvers >= AG_MAX_RESOLVERS)
		return -ENOSPC;
	if (ag_addr_parse(s, c->resolvers[c->nr_resolvers], &plen) || plen != 128)
		return -EINVAL;
	c->nr_resolvers++;
	return 0;
}

/* "nameserver ADDR" lines; scoped v6 (fe80::1%eth0) and extras are skipped. */
static void read_resolv_conf(struct ag_conf *c)
{
	FILE *f = fopen(RESOLV_CONF, "re");
	char line[256], addr[128];

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, " nameserver %127s", addr) == 1)
			add_resolver(c, addr);
	fclose(f);
}

int ag_conf_default(struct ag_conf *c, struct ag_err *err)
{
	memset(c, 0, sizeof(*c));
	c->port = AG_DEFAULT_PORT;
	c->ipv6 = true;
	c->mark = AG_DEFAULT_MARK;
	c->resolver_port = 53;
	c->default_verdict = AG_VERDICT_REDIRECT;
	c->connect_timeout_ms = 10000;
	read_resolv_conf(c);
	return 0;
}

void ag_conf_free(struct ag_conf *c)
{
	for (int i = 0; i < c->nr_agents; i++)
		free(c->agents[i].rules);
	free(c->agents);
	free(c->rules);
	c->agents = NULL;
	c->rules = NULL;
	c->nr_agents = c->nr_rules = 0;
}

void ag_conf_to_kernel(const struct ag_conf *c, struct ag_config *k)
{
	uint32_t lo = htonl(INADDR_LOOPBACK);

	memset(k, 0, sizeof(*k));
	memcpy(&k->daemon_ip4, &lo, 4);
	if (c->ipv6)
		k->daemon_ip6[15] = 1; /* ::1 */
	k->daemon_port = c->port;
	k->mark = c->mark;
	k->nr_resolvers = c->nr_resolvers;
	memcpy(k->resolvers, c->resolvers, sizeof(k->resolvers));
	k->resolver_port = c->resolver_port;
	k->default_verdict = c->default_verdict;
}

/* Every error names the file and the JSON path of the offending value. */
struct parse {
	const char *file;
	struct ag_err *err;
};

static int bad(struct parse *p, const char *path, const char *what)
{
	return ag_errf(p->err, EINVAL, "%s: %s: %s", p->file, path, what);
}

static int check_keys(struct parse *p, const char *path, json_t *obj, const char *const *allowed)
{
	const char *key;
	json_t *v;
	char where[256];

	if (!json_is_object(obj))
		return bad(p, path, "expected an object");
	json_object_foreach(obj, key, v)
	{
		bool ok = false;

		for (const char *const *a = allowed; *a; a++)
			ok |= !strcmp(key, *a);
		if (!ok) {
			snprintf(where, sizeof(where), "%s.%s", path, key);
			return bad(p, where, "unknown key");
		}
	}
	return 0;
}

static int get_uint(struct parse *p, const char *path, json_t *v, uint64_t max, uint64_t *out)
{
	json_int_t n;

	if (!json_is_integer(v))
		return bad(p, path, "expected an integer");
	n = json_integer_value(v);
	if (n < 0 || (uint64_t)n > max) {
		char what[64];

		snprintf(what, sizeof(what), "must be between 0 and %llu", (unsigned long long)max);
		return bad(p, path, what);
	}
	*out = (uint64_t)n;
	return 0;
}

static int get_verdict(struct parse *p, const char *path, json_t *v, uint32_t *out)
{
	if (!json_is_string(v) || ag_verdict_parse(json_string_value(v), out))
		return bad(p, path, "expected one of \"redirect\", \"direct\", \"deny\"");
	return 0;
}

static int parse_rules(struct parse *p, const char *path, json_t *arr, struct ag_rule_conf **out,
		       int *nr)
{
	static const char *const keys[] = { "dest", "port", "verdict", NULL };
	size_t i, n = json_array_size(arr);
	json_t *r;
	char where[256];

	if (!json_is_array(arr))
		return bad(p, path, "expected an array");
	if (n > AG_MAX_CONF_RULES)
		return bad(p, path, "too many rules (at most 256)");
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
		if ((ret = check_keys(p, where, r, keys)))
			return ret;
		snprintf(where, sizeof(where), "%s[%zu].dest", path, i);
		if (!json_is_string(dest) ||
		    ag_addr_parse(json_string_value(dest), rc->addr, &rc->prefixlen))
			return bad(p, where, "expected an address or CIDR, e.g. \"10.0.0.0/8\"");
		snprintf(where, sizeof(where), "%s[%zu].port", path, i);
		if (json_object_get(r, "port") &&
		    (ret = get_uint(p, where, json_object_get(r, "port"), 65535, &port)))
			return ret;
		rc->port = (uint16_t)port;
		snprintf(where, sizeof(where), "%s[%zu].verdict", path, i);
		if ((ret = get_verdict(p, where, json_object_get(r, "verdict"), &rc->verdict)))
			return ret;
		(*nr)++;
	}
	return 0;
}

static int parse_quota(struct parse *p, const char *path, json_t *q, struct ag_agent_conf *ac)
{
	static const char *const keys[] = { "connect_rate", "connect_burst", "calls_per_minute",
					    "calls_per_day", NULL };
	uint32_t *fields[] = { &ac->connect_rate, &ac->connect_burst, &ac->calls_per_minute,
			       &ac->calls_per_day };
	char where[320];
	int ret;

	if ((ret = check_keys(p, path, q, keys)))
		return ret;
	for (int i = 0; keys[i]; i++) {
		json_t *v = json_object_get(q, keys[i]);
		uint64_t n;

		if (!v)
			continue;
		snprintf(where, sizeof(where), "%s.%s", path, keys[i]);
		if ((ret = get_uint(p, where, v, UINT32_MAX, &n)))
			return ret;
		*fields[i] = (uint32_t)n;
	}
	if (ac->connect_rate && !ac->connect_burst)
		return bad(p, path, "connect_rate needs a connect_burst of at least 1");
	return 0;
}

static int parse_agents(struct parse *p, json_t *arr, struct ag_conf *c)
{
	static const char *const keys[] = { "name", "verdict", "rules", "quota", NULL };
	size_t i, n = json_array_size(arr);
	json_t *a;
	char where[256];

	if (!json_is_array(arr))
		return bad(p, "$.agents", "expected an array");
	if (n > AG_MAX_CONF_AGENTS)
		return bad(p, "$.agents", "too many agents (at most 256)");
	c->agents = calloc(n ? n : 1, sizeof(*c->agents));
	if (!c->agents)
		return ag_errf(p->err, ENOMEM, "%s: out of memory", p->file);
	json_array_foreach(arr, i, a)
	{
		struct ag_agent_conf *ac = &c->agents[i];
		json_t *name = json_object_get(a, "name");
		int ret;

		snprintf(where, sizeof(where), "$.agents[%zu]", i);
		if ((ret = check_keys(p, where, a, keys)))
			return ret;
		c->nr_agents++;
		snprintf(where, sizeof(where), "$.agents[%zu].name", i);
		if (!json_is_string(name) || !ag_agent_name_valid(json_string_value(name)))
			return bad(p, where, "expected an agent name of [A-Za-z0-9_.-]");
		for (size_t j = 0; j < i; j++)
			if (!strcmp(c->agents[j].name, json_string_value(name)))
				return bad(p, where, "duplicate agent name");
		snprintf(ac->name, sizeof(ac->name), "%s", json_string_value(name));
		ac->verdict = c->default_verdict;
		snprintf(where, sizeof(where), "$.agents[%zu].verdict", i);
		if (json_object_get(a, "verdict") &&
		    (ret = get_verdict(p, where, json_object_get(a, "verdict"), &ac->verdict)))
			return ret;
		snprintf(where, sizeof(where), "$.agents[%zu].quota", i);
		if (json_object_get(a, "quota") &&
		    (ret = parse_quota(p, where, json_object_get(a, "quota"), ac)))
			return ret;
		snprintf(where, sizeof(where), "$.agents[%zu].rules", i);
		if (json_object_get(a, "rules") &&
		    (ret = parse_rules(p, where, json_object_get(a, "rules"), &ac->rules,
				       &ac->nr_rules)))
			return ret;
	}
	return 0;
}

static int parse_root(struct parse *p, json_t *root, struct ag_conf *c)
{
	static const char *const keys[] = {
		"listen", "mark",   "resolvers",	  "default_verdict",
		"rules",  "agents", "connect_timeout_ms", NULL
	};
	static const char *const listen_keys[] = { "port", "ipv6", NULL };
	json_t *v;
	uint64_t n;
	int ret;

	if ((ret = check_keys(p, "$", root, keys)))
		return ret;
	if ((v = json_object_get(root, "listen"))) {
		if ((ret = check_keys(p, "$.listen", v, listen_keys)))
			return ret;
		if (json_object_get(v, "port")) {
			if ((ret = get_uint(p, "$.listen.port", json_object_get(v, "port"), 65535,
					    &n)))
				return ret;
			if (!n)
				return bad(p, "$.listen.port", "must not be 0");
			c->port = (uint16_t)n;
		}
		if (json_object_get(v, "ipv6")) {
			if (!json_is_boolean(json_object_get(v, "ipv6")))
				return bad(p, "$.listen.ipv6", "expected true or false");
			c->ipv6 = json_is_true(json_object_get(v, "ipv6"));
		}
	}
	if ((v = json_object_get(root, "mark"))) {
		if ((ret = get_uint(p, "$.mark", v, UINT32_MAX, &n)))
			return ret;
		if (!n)
			return bad(p, "$.mark", "must not be 0 (unmarked sockets are everyone's)");
		c->mark = (uint32_t)n;
	}
	if ((v = json_object_get(root, "connect_timeout_ms"))) {
		if ((ret = get_uint(p, "$.connect_timeout_ms", v, 600000, &n)))
			return ret;
		c->connect_timeout_ms = (uint32_t)n;
	}
	if ((v = json_object_get(root, "resolvers"))) {
		size_t i;
		json_t *r;
		char where[64];

		if (!json_is_array(v))
			return bad(p, "$.resolvers", "expected an array of addresses");
		c->nr_resolvers = 0;
		json_array_foreach(v, i, r)
		{
			snprintf(where, sizeof(where), "$.resolvers[%zu]", i);
			if (!json_is_string(r))
				return bad(p, where, "expected an address string");
			ret = add_resolver(c, json_string_value(r));
			if (ret == -ENOSPC)
				return bad(p, where, "at most 4 resolvers");
			if (ret)
				return bad(p, where, "expected an IPv4 or IPv6 address");
		}
	}
	if ((v = json_object_get(root, "default_verdict")) &&
	    (ret = get_verdict(p, "$.default_verdict", v, &c->default_verdict)))
		return ret;
	if ((v = json_object_get(root, "rules")) &&
	    (ret = parse_rules(p, "$.rules", v, &c->rules, &c->nr_rules)))
		return ret;
	if ((v = json_object_get(root, "agents")) && (ret = parse_agents(p, v, c)))
		return ret;
	return 0;
}

int ag_conf_load(struct ag_conf *c, const char *path, struct ag_err *err)
{
	struct parse p = { .file = path, .err = err };
	json_error_t jerr;
	json_t *root;
	int ret;

	ret = ag_conf_default(c, err);
	if (ret)
		return ret;
	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return ag_errf(err, EINVAL, "%s:%d:%d: %s", path, jerr.line, jerr.column,
			       jerr.text);
	ret = parse_root(&p, root, c);
	json_decref(root);
	if (ret)
		ag_conf_free(c);
	return ret;
}
