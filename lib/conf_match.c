// SPDX-License-Identifier: GPL-2.0
/*
 * The questions the daemon asks the loaded configuration at run time:
 * which agent, which tool server an address or name is, whether a
 * passthrough entry, a DNS name or an MCP tool is allowed; and how
 * addresses and entries print.  Read-only on struct ag_conf.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "conf_int.h"
#include "hostport.h"

const char *ag_conf_cidr_fmt(const uint8_t addr[16], int prefixlen, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	if (ag_addr_is_v4(addr) && prefixlen >= 96) {
		inet_ntop(AF_INET, addr + 12, ip, sizeof(ip));
		prefixlen -= 96;
		if (prefixlen == 32)
			snprintf(buf, len, "%s", ip);
		else
			snprintf(buf, len, "%s/%d", ip, prefixlen);
	} else {
		inet_ntop(AF_INET6, addr, ip, sizeof(ip));
		if (prefixlen == 128)
			snprintf(buf, len, "%s", ip);
		else
			snprintf(buf, len, "%s/%d", ip, prefixlen);
	}
	return buf;
}

const char *ag_pass_fmt(const struct ag_pass_conf *pc, char *buf, size_t len)
{
	char what[AG_HOST_LEN + 64], port[8] = "";

	if (pc->port)
		snprintf(port, sizeof(port), ":%u", pc->port);
	switch (pc->kind) {
	case AG_PASS_ANY:
		snprintf(buf, len, "*%s", port);
		break;
	case AG_PASS_HOST:
		snprintf(buf, len, "%s%s", pc->host, port);
		break;
	case AG_PASS_CIDR:
		ag_conf_cidr_fmt(pc->addr, pc->prefixlen, what, sizeof(what));
		if (ag_addr_is_v4(pc->addr) && pc->prefixlen >= 96)
			snprintf(buf, len, "%s%s", what, port);
		else
			snprintf(buf, len, "[%s]%s", what, port);
		break;
	}
	return buf;
}

const struct ag_agent_conf *ag_conf_agent(const struct ag_conf *c, const char *name)
{
	if (!name)
		return NULL;
	for (int i = 0; i < c->nr_agents; i++)
		if (!strcmp(c->agents[i].name, name))
			return &c->agents[i];
	return NULL;
}

static bool dns_listed(char (*list)[AG_HOST_LEN], int nr, const char *name)
{
	for (int i = 0; i < nr; i++)
		if (!strcmp(list[i], "*") || ag_host_match(list[i], name))
			return true;
	return false;
}

bool ag_conf_dns_allows(const struct ag_conf *c, const struct ag_agent_conf *agent,
			const char *name)
{
	const struct ag_dns_conf *d = agent && agent->dns.set ? &agent->dns : &c->dns;

	if (dns_listed(d->deny, d->nr_deny, name))
		return false;
	return !d->allow_set || dns_listed(d->allow, d->nr_allow, name);
}

bool conf_cidr_contains(const uint8_t net[16], int prefixlen, const uint8_t addr[16])
{
	int bytes = prefixlen / 8, bits = prefixlen % 8;

	if (memcmp(net, addr, (size_t)bytes))
		return false;
	return !bits || !((net[bytes] ^ addr[bytes]) & (uint8_t)(0xff << (8 - bits)));
}

bool ag_server_port_ok(const struct ag_server_conf *s, uint16_t port)
{
	if (!s->nr_ports)
		return port == s->upstream_port;
	for (int i = 0; i < s->nr_ports; i++)
		if (s->ports[i] == port)
			return true;
	return false;
}

const struct ag_server_conf *ag_conf_server_at(const struct ag_conf *c, const uint8_t addr[16],
					       uint16_t port)
{
	for (int i = 0; i < c->nr_servers; i++) {
		const struct ag_server_conf *s = &c->servers[i];

		if (port == s->upstream_port && !memcmp(addr, s->upstream_addr, 16))
			return s;
		if (!ag_server_port_ok(s, port))
			continue;
		for (int j = 0; j < s->nr_addrs; j++)
			if (conf_cidr_contains(s->addrs[j].addr, s->addrs[j].prefixlen, addr))
				return s;
	}
	return NULL;
}

const struct ag_server_conf *ag_conf_server_named(const struct ag_conf *c, uint16_t port,
						  const char *host)
{
	char name[AG_HOST_LEN];

	if (!ag_host_norm(host, name))
		return NULL;
	for (int i = 0; i < c->nr_servers; i++) {
		const struct ag_server_conf *s = &c->servers[i];

		if (!ag_server_port_ok(s, port))
			continue;
		for (int j = 0; j < s->nr_hosts; j++)
			if (ag_host_match(s->hosts[j], name))
				return s;
	}
	return NULL;
}

bool ag_conf_server_port(const struct ag_conf *c, uint16_t port)
{
	for (int i = 0; i < c->nr_servers; i++)
		if (c->servers[i].nr_hosts && ag_server_port_ok(&c->servers[i], port))
			return true;
	return false;
}

static const struct ag_pass_conf *pass_list(const struct ag_conf *c,
					    const struct ag_agent_conf *agent, int *nr)
{
	if (agent && agent->pass_set) {
		*nr = agent->nr_pass;
		return agent->pass;
	}
	*nr = c->nr_pass;
	return c->pass;
}

enum ag_pass_match ag_conf_pass_match(const struct ag_conf *c, const struct ag_agent_conf *agent,
				      const uint8_t addr[16], uint16_t port, const char *host,
				      bool host_at_addr)
{
	char name[AG_HOST_LEN];
	bool have_name = ag_host_norm(host, name);
	enum ag_pass_match ret = AG_PASS_DENY;
	int nr;
	const struct ag_pass_conf *list = pass_list(c, agent, &nr);

	for (int i = 0; i < nr; i++) {
		const struct ag_pass_conf *e = &list[i];

		if (e->port && e->port != port)
			continue;
		if (e->kind == AG_PASS_ANY ||
		    (e->kind == AG_PASS_CIDR && conf_cidr_contains(e->addr, e->prefixlen, addr)))
			return AG_PASS_ALLOW;
		if (e->kind == AG_PASS_HOST && have_name && ag_host_match(e->host, name)) {
			/* The name alone proves nothing: the address must be its. */
			if (host_at_addr)
				return AG_PASS_ALLOW;
			ret = AG_PASS_NAMED;
		}
	}
	return ret;
}

bool ag_conf_pass_needs_host(const struct ag_conf *c, const struct ag_agent_conf *agent)
{
	int nr;
	const struct ag_pass_conf *list = pass_list(c, agent, &nr);

	for (int i = 0; i < nr; i++)
		if (list[i].kind == AG_PASS_HOST)
			return true;
	return false;
}

/* '*' matches any run of bytes, '/' included; everything else itself. */
static bool glob_match(const char *pat, const char *s)
{
	const char *star = NULL, *resume = NULL;

	while (*s) {
		if (*pat == '*') {
			star = pat++;
			resume = s;
		} else if (*pat == *s) {
			pat++;
			s++;
		} else if (star) {
			pat = star + 1;
			s = ++resume;
		} else {
			return false;
		}
	}
	while (*pat == '*')
		pat++;
	return !*pat;
}

bool ag_conf_allows(const struct ag_agent_conf *agent, enum ag_policy_target kind,
		    const char *server, const char *name)
{
	char *const *list;
	size_t sn;
	int nr;

	if (!agent || !server || !name)
		return false;
	switch (kind) {
	case AG_TARGET_TOOL:
		list = agent->tools;
		nr = agent->nr_tools;
		break;
	case AG_TARGET_RESOURCE:
		list = agent->resources;
		nr = agent->nr_resources;
		break;
	case AG_TARGET_PROMPT:
		list = agent->prompts;
		nr = agent->nr_prompts;
		break;
	default:
		return false;
	}
	/* A pattern's server part is a configured name, never a glob: compare it whole. */
	sn = strlen(server);
	for (int i = 0; i < nr; i++)
		if (!strncmp(list[i], server, sn) && list[i][sn] == '/' &&
		    glob_match(list[i] + sn + 1, name))
			return true;
	return false;
}
