// SPDX-License-Identifier: GPL-2.0
/* The agents, dest_rules and unix_paths maps, and the names of the ABI's enums. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>

#include "cgroup.h"
#include "kern.h"

bool ag_agent_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n >= AG_NAME_LEN || name[0] == '.' || name[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.'))
			return false;
	}
	return true;
}

int ag_agent_lookup(const struct ag_kern *k, uint64_t cgroup_id, struct ag_agent *agent)
{
	if (bpf_map_lookup_elem(k->map_fd[AG_MAP_AGENTS], &cgroup_id, agent))
		return -errno;
	agent->name[AG_NAME_LEN - 1] = '\0';
	return 0;
}

/* The smallest index above every registered agent's; 0 stays "all agents". */
static uint32_t next_index(const struct ag_kern *k)
{
	uint64_t key, next;
	struct ag_agent a;
	uint32_t max = 0;
	void *prev = NULL;

	while (!bpf_map_get_next_key(k->map_fd[AG_MAP_AGENTS], prev, &next)) {
		key = next;
		prev = &key;
		if (!bpf_map_lookup_elem(k->map_fd[AG_MAP_AGENTS], &key, &a) && a.index > max)
			max = a.index;
	}
	return max + 1;
}

int ag_agent_register(const struct ag_kern *k, const struct ag_instance *in, const char *name,
		      uint32_t verdict, uint64_t *cgroup_id, struct ag_err *err)
{
	char path[PATH_MAX];
	struct ag_agent a;
	uint64_t id;
	int ret;

	if (!ag_agent_name_valid(name))
		return ag_errf(err, EINVAL,
			       "agent name \"%s\": use 1-%d of [A-Za-z0-9_.-], not starting with "
			       "'.' or '-'",
			       name, AG_NAME_LEN - 1);
	if (snprintf(path, sizeof(path), "%s/%s", in->cg_agents, name) >= (int)sizeof(path))
		return ag_errf(err, ENAMETOOLONG, "agent %s: cgroup path too long", name);
	ret = ag_cgroup_mkdir(path, err);
	if (ret)
		return ret;
	ret = ag_cgroup_id(path, &id, err);
	if (ret)
		return ret;
	if (cgroup_id)
		*cgroup_id = id;
	if (!bpf_map_lookup_elem(k->map_fd[AG_MAP_AGENTS], &id, &a)) {
		if (verdict == AG_VERDICT_KEEP || a.verdict == verdict)
			return 0;
	} else {
		memset(&a, 0, sizeof(a));
		a.index = next_index(k);
		snprintf(a.name, sizeof(a.name), "%s", name);
		if (verdict == AG_VERDICT_KEEP) {
			struct ag_config cfg;

			ret = ag_kern_get_config(k, &cfg, err);
			if (ret)
				return ret;
			verdict = cfg.default_verdict;
		}
	}
	a.verdict = verdict;
	if (bpf_map_update_elem(k->map_fd[AG_MAP_AGENTS], &id, &a, BPF_ANY))
		return ag_errf(err, errno, "agent %s: map agents: update: %s", name,
			       strerror(errno));
	return 0;
}

int ag_rule_add(const struct ag_kern *k, uint32_t agent_index, const uint8_t addr[16],
		int prefixlen, uint16_t port, uint32_t verdict, struct ag_err *err)
{
	struct ag_rule_key key;
	struct ag_rule rule;
	char buf[64];

	if (prefixlen < 0 || prefixlen > 128 || verdict > AG_VERDICT_DENY)
		return ag_errf(err, EINVAL, "rule %s/%d: bad prefix or verdict",
			       ag_addr_fmt(addr, port, buf, sizeof(buf)), prefixlen);
	memset(&key, 0, sizeof(key));
	memset(&rule, 0, sizeof(rule));
	key.prefixlen = 64 + prefixlen;
	key.agent_index = agent_index;
	key.port = port;
	memcpy(key.addr, addr, 16);
	rule.verdict = verdict;
	if (bpf_map_update_elem(k->map_fd[AG_MAP_DEST_RULES], &key, &rule, BPF_ANY))
		return ag_errf(err, errno, "rule %s/%d: map dest_rules: update: %s",
			       ag_addr_fmt(addr, port, buf, sizeof(buf)), prefixlen,
			       strerror(errno));
	return 0;
}

static const char *const verdict_names[] = {
	[AG_VERDICT_REDIRECT] = "redirect",
	[AG_VERDICT_DIRECT] = "direct",
	[AG_VERDICT_DENY] = "deny",
};

const char *ag_verdict_name(uint32_t verdict)
{
	return verdict < AG_ARRAY_SIZE(verdict_names) ? verdict_names[verdict] : "unknown";
}

int ag_verdict_parse(const char *s, uint32_t *verdict)
{
	for (uint32_t i = 0; i < AG_ARRAY_SIZE(verdict_names); i++) {
		if (!strcmp(s, verdict_names[i])) {
			*verdict = i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *ag_reason_name(uint32_t reason)
{
	static const char *const names[] = {
		[AG_REASON_NONE] = "none",
		[AG_REASON_SOCK_TYPE] = "socket_type",
		[AG_REASON_RULE] = "rule",
		[AG_REASON_NO_DAEMON] = "daemon_down",
		[AG_REASON_UDP_DEST] = "udp_destination",
		[AG_REASON_BIND_PORT] = "gateway_port",
		[AG_REASON_GATEWAY_LOOP] = "gateway_loop",
		[AG_REASON_NO_STORAGE] = "no_storage",
		[AG_REASON_NO_V6_LISTENER] = "no_ipv6_listener",
		[AG_REASON_CONNECT_RATE] = "connect_rate",
		[AG_REASON_CALL_BUDGET] = "call_budget",
		[AG_REASON_NO_GATEWAY] = "no_gateway",
		[AG_REASON_UNIX_PATH] = "unix_path",
		[AG_REASON_NO_DNS_RELAY] = "no_dns_relay",
	};

	return reason < AG_ARRAY_SIZE(names) && names[reason] ? names[reason] : "unknown";
}

const char *ag_hook_name(uint32_t hook)
{
	static const char *const names[] = {
		[AG_HOOK_SOCK_CREATE] = "sock_create",
		[AG_HOOK_CONNECT4] = "connect4",
		[AG_HOOK_CONNECT6] = "connect6",
		[AG_HOOK_SENDMSG4] = "sendmsg4",
		[AG_HOOK_SENDMSG6] = "sendmsg6",
		[AG_HOOK_BIND4] = "bind4",
		[AG_HOOK_BIND6] = "bind6",
		[AG_HOOK_CONNECT_UNIX] = "connect_unix",
		[AG_HOOK_SENDMSG_UNIX] = "sendmsg_unix",
	};

	return hook < AG_ARRAY_SIZE(names) && names[hook] ? names[hook] : "unknown";
}

int ag_unix_key_make(uint64_t agent_id, const char *addr, struct ag_unix_key *key)
{
	size_t n = strlen(addr);

	memset(key, 0, sizeof(*key));
	key->agent_cgroup_id = agent_id;
	if (addr[0] == '@') {
		/* The abstract name: a NUL byte, then the name. */
		if (n < 2)
			return -EINVAL;
		if (n > AG_UNIX_PATH_LEN)
			return -ENAMETOOLONG;
		memcpy(key->path + 1, addr + 1, n - 1);
		key->len = n;
		return 0;
	}
	/* Relative paths resolve against a working directory the agent picks. */
	if (addr[0] != '/')
		return -EINVAL;
	if (n > AG_UNIX_PATH_LEN)
		return -ENAMETOOLONG;
	memcpy(key->path, addr, n);
	key->len = n;
	return 0;
}

static int key_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct ag_unix_key));
}

int ag_unix_sync(const struct ag_kern *k, struct ag_unix_key *want, int nr, struct ag_err *err)
{
	int fd = k->map_fd[AG_MAP_UNIX_PATHS];
	struct ag_unix_key key, next, *prev = NULL;
	uint32_t allow = 1;

	for (int i = 0; i < nr; i++)
		if (bpf_map_update_elem(fd, &want[i], &allow, BPF_ANY))
			return ag_errf(err, errno, "map unix_paths: update: %s", strerror(errno));
	qsort(want, nr, sizeof(*want), key_cmp);
	while (!bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		if (bsearch(&key, want, nr, sizeof(*want), key_cmp))
			continue;
		if (bpf_map_delete_elem(fd, &key))
			return ag_errf(err, errno, "map unix_paths: delete: %s", strerror(errno));
		prev = NULL; /* the iteration restarts after a delete */
	}
	return 0;
}

const char *ag_unix_addr_fmt(const char *path, uint32_t len, char *buf, size_t size)
{
	size_t o = 0;
	uint32_t i = 0;

	if (len > AG_UNIX_PATH_LEN)
		len = AG_UNIX_PATH_LEN;
	if (len && !path[0]) {
		o = snprintf(buf, size, "@");
		i = 1;
	}
	for (; i < len && o + 5 <= size; i++) {
		unsigned char c = path[i];

		/* A path starting with '@' would read as an abstract name. */
		if (c < 0x21 || c > 0x7e || c == '\\' || c == '"' || (c == '@' && i == 0))
			o += snprintf(buf + o, size - o, "\\x%02x", c);
		else
			buf[o++] = c;
	}
	if (size)
		buf[o < size ? o : size - 1] = '\0';
	return buf;
}
