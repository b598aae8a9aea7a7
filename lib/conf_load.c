// SPDX-License-Identifier: GPL-2.0
/*
 * Loading the configuration (see lib/conf_int.h): defaults, the top-level
 * object and its small blocks (listen, audit, policy, agent_uids, limits,
 * metrics), then conf_resolve().  Also freeing it and its kernel view.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_int.h"
#include "audit.h"
#include "fileio.h"
#include "hostport.h"
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
	c->relay_splice = true;
	c->approval_timeout_ms = 120000;
	c->audit_durability = AG_AUDIT_WRITTEN;
	c->audit_sync_ms = 100;
	c->agent_uid_min = AG_DEFAULT_AGENT_UID_MIN;
	c->agent_uid_max = AG_DEFAULT_AGENT_UID_MAX;
	c->header_timeout_ms = AG_HEADER_TIMEOUT_MS;
	c->idle_timeout_ms = AG_IDLE_TIMEOUT_MS;
	c->max_conns_per_agent = AG_MAX_CONNS_PER_AGENT;
	ag_anomaly_conf_default(&c->anomaly);
	read_resolv_conf(c);
	/* Without a "passthrough" list, the gateway relays what it does not govern. */
	c->pass = calloc(1, sizeof(*c->pass));
	if (!c->pass)
		return ag_errf(err, ENOMEM, "default configuration: out of memory");
	c->pass[0].kind = AG_PASS_ANY;
	c->nr_pass = 1;
	return 0;
}

static void free_patterns(char **list, int nr)
{
	for (int i = 0; i < nr; i++)
		free(list[i]);
	free(list);
}

void ag_conf_free(struct ag_conf *c)
{
	conf_dns_free(&c->dns);
	for (int i = 0; i < c->nr_agents; i++) {
		struct ag_agent_conf *a = &c->agents[i];

		conf_dns_free(&a->dns);
		free(a->rules);
		free_patterns(a->tools, a->nr_tools);
		free_patterns(a->resources, a->nr_resources);
		free_patterns(a->prompts, a->nr_prompts);
		free(a->pass);
		free(a->attributes);
		free(a->delegated_by);
		free(a->unix_sockets);
	}
	for (int i = 0; i < c->nr_servers; i++) {
		struct ag_server_conf *s = &c->servers[i];

		free(s->hosts);
		free(s->ports);
		free(s->addrs);
		for (int j = 0; j < s->nr_out_rules; j++) {
			free(s->out_rules[j].text);
			free_patterns(s->out_rules[j].tools, s->out_rules[j].nr_tools);
		}
		free(s->out_rules);
		conf_http_free(s);
		conf_free_hosted(s);
	}
	free(c->agents);
	free(c->rules);
	free(c->servers);
	free(c->pass);
	free(c->policy.files);
	memset(&c->policy, 0, sizeof(c->policy));
	c->agents = NULL;
	c->rules = NULL;
	c->servers = NULL;
	c->pass = NULL;
	c->nr_agents = c->nr_rules = c->nr_servers = c->nr_pass = 0;
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
	k->agent_uid_min = c->agent_uid_min;
	k->agent_uid_max = c->agent_uid_max;
}

static int parse_audit(struct parse *p, json_t *v, struct ag_conf *c)
{
	json_t *e;
	uint64_t n;
	int ret;

	if ((ret = conf_check_keys(p, "$.audit", v, conf_audit_keys)))
		return ret;
	if ((e = json_object_get(v, "durability"))) {
		const char *d;

		if ((ret = conf_get_string(p, "$.audit.durability", e, &d)))
			return ret;
		/* Fail closed: "batch" never waited for the disk; guessing a
		 * new mode for it could weaken or slow what a config meant. */
		if (!strcmp(d, "batch"))
			return conf_bad(p, "$.audit.durability",
					"\"batch\" is gone: use \"written\" (the default: "
					"written before a call is forwarded, synced within "
					"sync_interval_ms) or \"strict\"");
		if ((c->audit_durability = ag_audit_durability_parse(d)) < 0)
			return conf_badf(p, "$.audit.durability",
					 "\"%s\": expected \"written\", \"strict\", \"sync\" "
					 "or \"none\"",
					 d);
	}
	if ((e = json_object_get(v, "sync_interval_ms"))) {
		if ((ret = conf_get_uint(p, "$.audit.sync_interval_ms", e, 60000, &n)))
			return ret;
		c->audit_sync_ms = (uint32_t)n;
	}
	if ((e = json_object_get(v, "rotate_bytes"))) {
		if ((ret = conf_get_uint(p, "$.audit.rotate_bytes", e, UINT64_MAX >> 1, &n)))
			return ret;
		/* A file smaller than a checkpoint and a few records would rotate forever. */
		if (n && n < 65536)
			return conf_bad(p, "$.audit.rotate_bytes",
					"must be 0 (never) or at least 65536");
		c->audit_rotate_bytes = n;
	}
	if ((e = json_object_get(v, "syslog")) &&
	    (ret = conf_path(p, "$.audit.syslog", e, c->audit_syslog)))
		return ret;
	if ((e = json_object_get(v, "ship")) && (ret = conf_parse_ship(p, e, &c->audit_ship)))
		return ret;
	return 0;
}

/*
 * "policy": {"dir": DIR | "files": [FILE...], "entities": FILE}, or
 * only "entities" with a "policy_source" (lib/conf_source.c).  Only
 * the shape is checked here: the daemon parses the files, so that a
 * reload reads them again and reports errors by file:line:column.
 */
static int parse_policy(struct parse *p, json_t *v, bool source, struct ag_policy_conf *pc)
{
	json_t *dir = json_object_get(v, "dir"), *files = json_object_get(v, "files"), *f;
	char where[64];
	size_t i, n;
	int ret;

	if ((ret = conf_check_keys(p, "$.policy", v, conf_policy_keys)))
		return ret;
	/* A git source brings the files: "policy" then only names the entities. */
	if (source && (dir || files))
		return conf_bad(p, "$.policy",
				"\"dir\" and \"files\" conflict with \"policy_source\"");
	if (!source && !dir == !files)
		return conf_bad(p, "$.policy", "expected exactly one of \"dir\" and \"files\"");
	if (dir && (ret = conf_path(p, "$.policy.dir", dir, pc->dir)))
		return ret;
	if (files) {
		if (!(pc->files =
			  conf_get_array(p, "$.policy.files", files, sizeof(*pc->files), &n, &ret)))
			return ret;
		if (!n)
			return conf_bad(p, "$.policy.files", "expected at least one file");
		json_array_foreach(files, i, f)
		{
			snprintf(where, sizeof(where), "$.policy.files[%zu]", i);
			if ((ret = conf_path(p, where, f, pc->files[i])))
				return ret;
			pc->nr_files++;
		}
	}
	if ((v = json_object_get(v, "entities")) &&
	    (ret = conf_path(p, "$.policy.entities", v, pc->entities)))
		return ret;
	pc->set = true;
	return 0;
}

/* "agent_uids": a range of plain uids, never root, none above INT32_MAX. */
static int parse_agent_uids(struct parse *p, json_t *v, struct ag_conf *c)
{
	uint64_t lo, hi;
	int ret;

	if ((ret = conf_check_keys(p, "$.agent_uids", v, conf_agent_uids_keys)) ||
	    (ret =
		 conf_get_uint(p, "$.agent_uids.min", json_object_get(v, "min"), INT32_MAX, &lo)) ||
	    (ret = conf_get_uint(p, "$.agent_uids.max", json_object_get(v, "max"), INT32_MAX, &hi)))
		return ret;
	if (!lo || lo > hi)
		return conf_bad(p, "$.agent_uids", "expected 1 <= min <= max");
	c->agent_uid_min = (uint32_t)lo;
	c->agent_uid_max = (uint32_t)hi;
	return 0;
}

/* Fair sharing (daemon/fair.h): timeouts of agent connections, connection caps. */
static int parse_limits(struct parse *p, json_t *v, struct ag_conf *c)
{
	static const struct {
		const char *key, *path;
		uint64_t max;
		size_t off;
	} f[] = {
		{ "header_timeout_ms", "$.limits.header_timeout_ms", 3600000,
		  offsetof(struct ag_conf, header_timeout_ms) },
		{ "idle_timeout_ms", "$.limits.idle_timeout_ms", 86400000,
		  offsetof(struct ag_conf, idle_timeout_ms) },
		{ "max_conns_per_agent", "$.limits.max_conns_per_agent", AG_MAX_CONNS_LIMIT,
		  offsetof(struct ag_conf, max_conns_per_agent) },
	};
	uint64_t n;
	int ret;

	if ((ret = conf_check_keys(p, "$.limits", v, conf_limits_keys)))
		return ret;
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		json_t *e = json_object_get(v, f[i].key);

		if (!e)
			continue;
		if ((ret = conf_get_uint(p, f[i].path, e, f[i].max, &n)))
			return ret;
		/* Fail closed: no limit at all is what let one agent starve the rest. */
		if (!n)
			return conf_bad(p, f[i].path, "must not be 0");
		*(uint32_t *)((char *)c + f[i].off) = (uint32_t)n;
	}
	return 0;
}

/* Whether a "direct" rule lets agents' connects reach addr:port untouched. */
static bool direct_reaches(const struct ag_rule_conf *r, int n, const uint8_t addr[16],
			   uint16_t port)
{
	for (int i = 0; i < n; i++)
		if (r[i].verdict == AG_VERDICT_DIRECT && (!r[i].port || r[i].port == port) &&
		    conf_cidr_contains(r[i].addr, r[i].prefixlen, addr))
			return true;
	return false;
}

/*
 * Fail closed: the endpoint must stay out of agents' reach, and "direct"
 * connects never come to the daemon that would refuse them.  0.0.0.0 and
 * [::] reach a loopback listener too.
 */
static int metrics_unreachable(struct parse *p, const struct ag_conf *c)
{
	uint8_t any[2][16] = { { [10] = 0xff, [11] = 0xff } };
	const char *why = "a \"direct\" rule lets agents reach it: narrow the rule";

	if (c->default_verdict == AG_VERDICT_DIRECT)
		return conf_bad(p, "$.metrics.listen",
				"default_verdict \"direct\" lets agents reach it");
	for (int i = 0; i < c->nr_agents; i++)
		if (c->agents[i].verdict == AG_VERDICT_DIRECT)
			return conf_bad(p, "$.metrics.listen",
					"an agent's verdict \"direct\" lets it reach it");
	for (int k = 0; k < 3; k++) {
		const uint8_t *a = k == 2 ? c->metrics_addr : any[k];

		if (direct_reaches(c->rules, c->nr_rules, a, c->metrics_port))
			return conf_bad(p, "$.metrics.listen", why);
		for (int i = 0; i < c->nr_agents; i++)
			if (direct_reaches(c->agents[i].rules, c->agents[i].nr_rules, a,
					   c->metrics_port))
				return conf_bad(p, "$.metrics.listen", why);
	}
	return 0;
}

/*
 * "metrics": {"listen": "ADDRESS:PORT"}: a loopback address only, since
 * the endpoint answers anyone who reaches it (agents never do: the daemon
 * refuses it as their destination).
 */
static int parse_metrics(struct parse *p, json_t *v, struct ag_conf *c)
{
	struct ag_pass_conf pc;
	json_t *l;
	int ret;

	if ((ret = conf_check_keys(p, "$.metrics", v, conf_metrics_keys)))
		return ret;
	if (!(l = json_object_get(v, "listen")))
		return 0;
	if (!json_is_string(l))
		return conf_bad(p, "$.metrics.listen", "expected \"ADDRESS:PORT\"");
	if ((ret = conf_parse_pass_entry(p, "$.metrics.listen", json_string_value(l), &pc)))
		return ret;
	if (pc.kind != AG_PASS_CIDR || pc.prefixlen != 128 || !pc.port)
		return conf_bad(p, "$.metrics.listen",
				"expected \"ADDRESS:PORT\", e.g. \"127.0.0.1:9464\"");
	if (!ag_addr_is_loopback(pc.addr))
		return conf_bad(p, "$.metrics.listen",
				"must be a loopback address (127.0.0.0/8 or [::1])");
	if (pc.port == c->port)
		return conf_bad(p, "$.metrics.listen", "must not be the agents' listen.port");
	memcpy(c->metrics_addr, pc.addr, 16);
	c->metrics_port = pc.port;
	return metrics_unreachable(p, c);
}

static int parse_root(struct parse *p, json_t *root, struct ag_conf *c)
{
	json_t *v;
	uint64_t n;
	int ret;

	if ((ret = conf_check_keys(p, "$", root, conf_root_keys)))
		return ret;
	if ((v = json_object_get(root, "listen"))) {
		if ((ret = conf_check_keys(p, "$.listen", v, conf_listen_keys)))
			return ret;
		if (json_object_get(v, "port")) {
			if ((ret = conf_get_uint(p, "$.listen.port", json_object_get(v, "port"),
						 65535, &n)))
				return ret;
			if (!n)
				return conf_bad(p, "$.listen.port", "must not be 0");
			c->port = (uint16_t)n;
		}
		if (json_object_get(v, "ipv6")) {
			if (!json_is_boolean(json_object_get(v, "ipv6")))
				return conf_bad(p, "$.listen.ipv6", "expected true or false");
			c->ipv6 = json_is_true(json_object_get(v, "ipv6"));
		}
	}
	if ((v = json_object_get(root, "mark"))) {
		if ((ret = conf_get_uint(p, "$.mark", v, UINT32_MAX, &n)))
			return ret;
		if (!n)
			return conf_bad(p, "$.mark",
					"must not be 0 (unmarked sockets are everyone's)");
		c->mark = (uint32_t)n;
	}
	if ((v = json_object_get(root, "audit")) && (ret = parse_audit(p, v, c)))
		return ret;
	if ((v = json_object_get(root, "limits")) && (ret = parse_limits(p, v, c)))
		return ret;
	if ((v = json_object_get(root, "dns")) && (ret = conf_parse_dns(p, "$.dns", v, &c->dns)))
		return ret;
	if ((v = json_object_get(root, "approval_timeout_ms"))) {
		if ((ret = conf_get_uint(p, "$.approval_timeout_ms", v, 3600000, &n)))
			return ret;
		if (!n)
			return conf_bad(p, "$.approval_timeout_ms", "must not be 0");
		c->approval_timeout_ms = (uint32_t)n;
	}
	if ((v = json_object_get(root, "connect_timeout_ms"))) {
		if ((ret = conf_get_uint(p, "$.connect_timeout_ms", v, 600000, &n)))
			return ret;
		c->connect_timeout_ms = (uint32_t)n;
	}
	if ((v = json_object_get(root, "relay_splice"))) {
		if (!json_is_boolean(v))
			return conf_bad(p, "$.relay_splice", "expected true or false");
		c->relay_splice = json_is_true(v);
	}
	if ((v = json_object_get(root, "resolvers"))) {
		size_t i;
		json_t *r;
		char where[64];

		if (!json_is_array(v))
			return conf_bad(p, "$.resolvers", "expected an array of addresses");
		c->nr_resolvers = 0;
		json_array_foreach(v, i, r)
		{
			snprintf(where, sizeof(where), "$.resolvers[%zu]", i);
			if (!json_is_string(r))
				return conf_bad(p, where, "expected an address string");
			ret = add_resolver(c, json_string_value(r));
			if (ret == -ENOSPC)
				return conf_bad(p, where, "at most 4 resolvers");
			if (ret)
				return conf_bad(p, where, "expected an IPv4 or IPv6 address");
		}
	}
	if ((v = json_object_get(root, "default_verdict")) &&
	    (ret = conf_get_verdict(p, "$.default_verdict", v, &c->default_verdict)))
		return ret;
	if ((v = json_object_get(root, "rules")) &&
	    (ret = conf_parse_rules(p, "$.rules", v, &c->rules, &c->nr_rules)))
		return ret;
	if ((v = json_object_get(root, "passthrough"))) {
		free(c->pass);
		c->pass = NULL;
		c->nr_pass = 0;
		if ((ret = conf_parse_pass(p, "$.passthrough", v, &c->pass, &c->nr_pass)))
			return ret;
	}
	/* After listen (the loop check) and before agents (their allow-lists). */
	if ((v = json_object_get(root, "tool_servers")) && (ret = conf_parse_servers(p, v, c)))
		return ret;
	if ((v = json_object_get(root, "http_services")) && (ret = conf_parse_http(p, v, c)))
		return ret;
	if ((v = json_object_get(root, "agents")) && (ret = conf_parse_agents(p, v, c)))
		return ret;
	if ((ret = conf_check_hosted(p, c)))
		return ret;
	if ((v = json_object_get(root, "tools_lock")) &&
	    (ret = conf_path(p, "$.tools_lock", v, c->tools_lock)))
		return ret;
	if ((v = json_object_get(root, "policy_source"))) {
		if ((ret = conf_parse_policy_source(p, v, &c->policy_source)))
			return ret;
		c->policy.set = true; /* decided by policies, from the first commit on */
	}
	if ((v = json_object_get(root, "policy")) &&
	    (ret = parse_policy(p, v, c->policy_source.url[0], &c->policy)))
		return ret;
	if ((v = json_object_get(root, "agent_uids")) && (ret = parse_agent_uids(p, v, c)))
		return ret;
	if ((v = json_object_get(root, "metrics")) && (ret = parse_metrics(p, v, c)))
		return ret;
	if ((v = json_object_get(root, "anomaly")) && (ret = conf_parse_anomaly(p, v, &c->anomaly)))
		return ret;
	if ((v = json_object_get(root, "fleet")) && (ret = conf_parse_fleet(p, v, c)))
		return ret;
	if ((v = json_object_get(root, "inbound")) && (ret = conf_parse_inbound(p, v, c)))
		return ret;
	return conf_check_fleet(p, c);
}

/* The JSON of path into c, which is freed on failure; no resolve step. */
int ag_conf_parse(struct ag_conf *c, const char *path, struct ag_err *err)
{
	struct parse p = { .file = path, .err = err };
	const char *slash = strrchr(path, '/');
	json_error_t jerr;
	json_t *root;
	int ret;

	if (!slash)
		snprintf(p.dir, sizeof(p.dir), ".");
	else if (slash == path)
		snprintf(p.dir, sizeof(p.dir), "/");
	else
		snprintf(p.dir, sizeof(p.dir), "%.*s", (int)(slash - path), path);

	ret = ag_conf_default(c, err);
	if (ret)
		return ret;
	root = ag_json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		ag_conf_free(c);
		return ag_errf(err, EINVAL, "%s:%d:%d: %s", path, jerr.line, jerr.column,
			       jerr.text);
	}
	ret = parse_root(&p, root, c);
	json_decref(root);
	if (ret)
		ag_conf_free(c);
	return ret;
}

int ag_conf_load(struct ag_conf *c, const char *path, struct ag_err *err)
{
	int ret = ag_conf_parse(c, path, err);

	if (ret)
		return ret;
	ret = ag_conf_resolve(c, path, err);
	if (ret)
		ag_conf_free(c);
	return ret;
}
