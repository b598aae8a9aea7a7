// SPDX-License-Identifier: GPL-2.0
/* agentgatectl maps: the pinned maps, decoded with the ABI's field names. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <jansson.h>

#include "cli.h"
#include "kern.h"
#include "maps.h"

static const char maps_usage[] =
    "usage: agentgatectl [--instance NAME] maps [--json] [MAP]\n"
    "\n"
    "Dumps the instance's pinned maps (config, agents, dest_rules, stats, handoff)\n"
    "with named fields.  origin is socket-local storage and events a ring buffer:\n"
    "neither can be listed.  bpftool map dump pinned /sys/fs/bpf/<instance>/<map>\n"
    "shows the same data.\n";

static json_t *addr_json(const __u8 addr[16], __u16 port)
{
	char buf[80];

	return json_string(ag_addr_fmt(addr, port, buf, sizeof(buf)));
}

json_t *map_config_json(const struct ag_config *cfg)
{
	__u8 ip4[16] = { [10] = 0xff, [11] = 0xff };
	json_t *res = json_array();

	memcpy(ip4 + 12, &cfg->daemon_ip4, 4);
	for (int i = 0; i < cfg->nr_resolvers && i < AG_MAX_RESOLVERS; i++)
		json_array_append_new(res, addr_json(cfg->resolvers[i], cfg->resolver_port));
	return json_pack(
	    "{s:o,s:o,s:I,s:I,s:I,s:o,s:s}", "daemon_v4", addr_json(ip4, cfg->daemon_port),
	    "daemon_v6",
	    cfg->daemon_ip6[15] ? addr_json(cfg->daemon_ip6, cfg->daemon_port) : json_null(),
	    "mark", (json_int_t)cfg->mark, "agents_level", (json_int_t)cfg->agents_level,
	    "daemon_cgroup_id", (json_int_t)cfg->daemon_cgroup_id, "resolvers", res,
	    "default_verdict", ag_verdict_name(cfg->default_verdict));
}

json_t *map_stats_json(const struct ag_stats *s)
{
	return json_pack(
	    "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "redirected", (json_int_t)s->redirected,
	    "direct", (json_int_t)s->direct, "denied", (json_int_t)s->denied, "sock_denied",
	    (json_int_t)s->sock_denied, "udp_denied", (json_int_t)s->udp_denied, "no_daemon",
	    (json_int_t)s->no_daemon, "bind_denied", (json_int_t)s->bind_denied, "udp_allowed",
	    (json_int_t)s->udp_allowed, "quota_denied", (json_int_t)s->quota_denied);
}

/* Calls fn for each key of a hash-like map; key_size bytes at most 64. */
int map_foreach(int fd, size_t key_size, void (*fn)(const void *key, void *arg), void *arg)
{
	unsigned char key[64], next[64];
	void *prev = NULL;

	if (key_size > sizeof(key))
		return -EINVAL;
	while (!bpf_map_get_next_key(fd, prev, next)) {
		memcpy(key, next, key_size);
		prev = key;
		fn(key, arg);
	}
	return 0;
}

struct dump {
	const struct ag_kern *k;
	json_t *out;
};

static void agent_entry(const void *key, void *arg)
{
	struct dump *d = arg;
	struct ag_agent a;
	uint64_t id = *(const uint64_t *)key;

	if (ag_agent_lookup(d->k, id, &a))
		return;
	json_array_append_new(d->out, json_pack("{s:I,s:s,s:I,s:s}", "cgroup_id", (json_int_t)id,
						"name", a.name, "index", (json_int_t)a.index,
						"verdict", ag_verdict_name(a.verdict)));
}

static void stats_entry(const void *key, void *arg)
{
	struct dump *d = arg;
	struct ag_stats s;
	uint64_t id = *(const uint64_t *)key;
	json_t *e;

	if (bpf_map_lookup_elem(d->k->map_fd[AG_MAP_STATS], &id, &s))
		return;
	e = map_stats_json(&s);
	json_object_set_new(e, "agent_cgroup_id", json_integer((json_int_t)id));
	json_array_append_new(d->out, e);
}

static void rule_entry(const void *key, void *arg)
{
	const struct ag_rule_key *rk = key;
	struct dump *d = arg;
	struct ag_rule r;
	char buf[96], dest[112];
	int plen = (int)rk->prefixlen - 64;

	if (bpf_map_lookup_elem(d->k->map_fd[AG_MAP_DEST_RULES], rk, &r))
		return;
	ag_addr_fmt(rk->addr, 0, buf, sizeof(buf));
	*strrchr(buf, ':') = '\0';
	if (ag_addr_is_v4(rk->addr))
		plen -= 96;
	snprintf(dest, sizeof(dest), "%s/%d", buf, plen);
	json_array_append_new(d->out, json_pack("{s:I,s:s,s:I,s:s}", "agent_index",
						(json_int_t)rk->agent_index, "dest", dest, "port",
						(json_int_t)rk->port, "verdict",
						ag_verdict_name(r.verdict)));
}

static void handoff_entry(const void *key, void *arg)
{
	const struct ag_tuple *t = key;
	struct dump *d = arg;

	json_array_append_new(d->out, json_pack("{s:o,s:o}", "agent", addr_json(t->saddr, t->sport),
						"daemon", addr_json(t->daddr, t->dport)));
}

static json_t *dump_map(const struct ag_kern *k, enum ag_map_id id)
{
	struct dump d = { .k = k, .out = json_array() };
	struct ag_config cfg;

	switch (id) {
	case AG_MAP_CONFIG:
		json_decref(d.out);
		return ag_kern_get_config(k, &cfg, NULL) ? json_null() : map_config_json(&cfg);
	case AG_MAP_AGENTS:
		map_foreach(k->map_fd[id], sizeof(uint64_t), agent_entry, &d);
		break;
	case AG_MAP_STATS:
		map_foreach(k->map_fd[id], sizeof(uint64_t), stats_entry, &d);
		break;
	case AG_MAP_DEST_RULES:
		map_foreach(k->map_fd[id], sizeof(struct ag_rule_key), rule_entry, &d);
		break;
	case AG_MAP_HANDOFF:
		map_foreach(k->map_fd[id], sizeof(struct ag_tuple), handoff_entry, &d);
		break;
	default:
		json_decref(d.out);
		return json_string(id == AG_MAP_ORIGIN ? "socket-local storage: not listable"
						       : "ring buffer: read by agentgated");
	}
	return d.out;
}

int cmd_maps(struct ag_cli *c, int argc, char **argv)
{
	const char *only = NULL;
	bool json = false;
	struct ag_kern k;
	struct ag_err err;
	json_t *out;
	int found = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(maps_usage, stdout);
			return 0;
		} else if (argv[i][0] != '-' && !only) {
			only = argv[i];
		} else {
			fprintf(stderr, "agentgatectl maps: unexpected argument \"%s\"\n%s",
				argv[i], maps_usage);
			return AG_EXIT_USAGE;
		}
	}
	if (ag_kern_open(&k, &c->inst, &err))
		return cli_fail("maps: %s", err.msg);
	out = json_object();
	for (int i = 0; i < AG_MAP__COUNT; i++) {
		if (only && strcmp(only, ag_map_names[i]))
			continue;
		found++;
		json_object_set_new(out, ag_map_names[i], dump_map(&k, i));
	}
	ag_kern_close(&k);
	if (!found) {
		json_decref(out);
		return cli_fail("maps: no map \"%s\" (maps: config, agents, dest_rules, stats, "
				"origin, handoff, events)",
				only);
	}
	if (json) {
		json_dumpf(out, stdout, JSON_INDENT(2));
	} else {
		const char *name;
		json_t *v;

		json_object_foreach(out, name, v)
		{
			char *text = json_dumps(v, JSON_INDENT(2));

			printf("%s: %s\n", name, text ? text : "?");
			free(text);
		}
	}
	if (json)
		putchar('\n');
	json_decref(out);
	return 0;
}
