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
    "Dumps the instance's pinned maps (config, agents, dest_rules, stats, origin)\n"
    "with named fields; origin as its slots in use and the newest records (a slot\n"
    "keeps its last socket's record).  events is a ring buffer, read by agentgated.\n"
    "bpftool map dump pinned /sys/fs/bpf/<instance>/<map> shows the same data.\n";

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
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "redirected",
			 (json_int_t)s->redirected, "direct", (json_int_t)s->direct, "denied",
			 (json_int_t)s->denied, "sock_denied", (json_int_t)s->sock_denied,
			 "udp_denied", (json_int_t)s->udp_denied, "no_daemon",
			 (json_int_t)s->no_daemon, "bind_denied", (json_int_t)s->bind_denied,
			 "udp_allowed", (json_int_t)s->udp_allowed, "quota_denied",
			 (json_int_t)s->quota_denied, "unix_denied", (json_int_t)s->unix_denied);
}

/* Calls fn for each key of a hash-like map; key_size bytes at most 128. */
int map_foreach(int fd, size_t key_size, void (*fn)(const void *key, void *arg), void *arg)
{
	unsigned char key[128], next[128];
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

static void unix_entry(const void *key, void *arg)
{
	const struct ag_unix_key *uk = key;
	struct dump *d = arg;
	char addr[4 * AG_UNIX_PATH_LEN + 8];

	json_array_append_new(
	    d->out, json_pack("{s:I,s:s}", "agent_cgroup_id", (json_int_t)uk->agent_cgroup_id,
			      "address", ag_unix_addr_fmt(uk->path, uk->len, addr, sizeof(addr))));
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

static void quota_entry(const void *key, void *arg)
{
	struct dump *d = arg;
	uint64_t id = *(const uint64_t *)key;
	struct ag_agent a;
	struct ag_quota q;
	json_t *e;

	if (ag_quota_get(d->k, id, &q))
		return;
	if (ag_agent_lookup(d->k, id, &a))
		snprintf(a.name, sizeof(a.name), "cgroup-%llu", (unsigned long long)id);
	e = quota_json(a.name, &q);
	json_object_set_new(e, "agent_cgroup_id", json_integer((json_int_t)id));
	json_array_append_new(d->out, e);
}

/* netns is keyed by the namespace's cookie, netns_links by ifindex: same values. */
static void netns_entry(const void *key, void *arg, enum ag_map_id id)
{
	struct dump *d = arg;
	struct ag_netns ns;
	__u8 gw[16] = { [10] = 0xff, [11] = 0xff }, agent[16] = { [10] = 0xff, [11] = 0xff };

	if (bpf_map_lookup_elem(d->k->map_fd[id], key, &ns))
		return;
	memcpy(gw + 12, &ns.gateway_ip4, 4);
	memcpy(agent + 12, &ns.agent_ip4, 4);
	json_array_append_new(d->out,
			      json_pack("{s:I,s:I,s:o,s:o,s:I,s:I,s:I}", "agent_cgroup_id",
					(json_int_t)ns.agent_cgroup_id, "slot", (json_int_t)ns.slot,
					"gateway", addr_json(gw, 0), "agent", addr_json(agent, 0),
					"ifindex", (json_int_t)ns.ifindex, "netns_cookie",
					(json_int_t)ns.cookie, "nsid", (json_int_t)ns.nsid));
}

static void netns_cookie_entry(const void *key, void *arg)
{
	netns_entry(key, arg, AG_MAP_NETNS);
}

static void netns_link_entry(const void *key, void *arg)
{
	netns_entry(key, arg, AG_MAP_NETNS_LINKS);
}

#define ORIGIN_NEWEST 32
#define ORIGIN_BATCH 4096

static int origin_newest_first(const void *a, const void *b)
{
	const struct ag_origin *x = a, *y = b;

	return x->ts_ns < y->ts_ns ? 1 : x->ts_ns > y->ts_ns ? -1 : 0;
}

/* The origin map's slots in use, and the ORIGIN_NEWEST newest records. */
static json_t *origin_json(int fd)
{
	struct ag_origin *batch = calloc(ORIGIN_BATCH, sizeof(*batch));
	struct ag_origin newest[ORIGIN_NEWEST];
	__u32 keys[ORIGIN_BATCH], in = 0, out;
	size_t used = 0, kept = 0;
	bool first = true, done = false;
	json_t *list = json_array();

	if (!batch)
		return json_null();
	while (!done) {
		__u32 count = ORIGIN_BATCH;
		int ret =
		    bpf_map_lookup_batch(fd, first ? NULL : &in, &out, keys, batch, &count, NULL);

		/* A partial count would pass for the whole map. */
		if (ret && errno != ENOENT) {
			int e = errno;

			free(batch);
			json_decref(list);
			return json_sprintf("lookup failed: %s", strerror(e));
		}
		done = ret != 0;
		first = false;
		in = out;
		for (__u32 i = 0; i < count; i++) {
			size_t oldest = 0;

			if (!batch[i].cookie)
				continue;
			used++;
			if (kept < ORIGIN_NEWEST) {
				newest[kept++] = batch[i];
				continue;
			}
			for (size_t j = 1; j < kept; j++)
				if (newest[j].ts_ns < newest[oldest].ts_ns)
					oldest = j;
			if (batch[i].ts_ns > newest[oldest].ts_ns)
				newest[oldest] = batch[i];
		}
	}
	free(batch);
	qsort(newest, kept, sizeof(newest[0]), origin_newest_first);
	for (size_t i = 0; i < kept; i++) {
		const struct ag_origin *o = &newest[i];

		json_array_append_new(list, json_pack("{s:I,s:I,s:I,s:s#,s:o}", "cookie",
						      (json_int_t)o->cookie, "agent_cgroup_id",
						      (json_int_t)o->agent_cgroup_id, "pid",
						      (json_int_t)o->tgid, "comm", o->comm,
						      strnlen(o->comm, AG_COMM_LEN), "dest",
						      addr_json(o->addr, o->port)));
	}
	return json_pack("{s:I,s:I,s:o}", "slots", (json_int_t)AG_ORIGIN_SLOTS, "in_use",
			 (json_int_t)used, "newest", list);
}

static json_t *dump_map(const struct ag_kern *k, const struct ag_instance *in, enum ag_map_id id)
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
	case AG_MAP_QUOTA:
		map_foreach(k->map_fd[id], sizeof(uint64_t), quota_entry, &d);
		break;
	case AG_MAP_NETNS:
		map_foreach(k->map_fd[id], sizeof(uint64_t), netns_cookie_entry, &d);
		break;
	case AG_MAP_NETNS_LINKS:
		map_foreach(k->map_fd[id], sizeof(uint32_t), netns_link_entry, &d);
		break;
	case AG_MAP_ORIGIN:
		json_decref(d.out);
		return origin_json(k->map_fd[id]);
	case AG_MAP_EVENTS:
		json_decref(d.out);
		return json_string("ring buffer: read by agentgated");
	case AG_MAP_SERVING:
		json_decref(d.out);
		return json_boolean(ag_kern_is_serving(in));
	case AG_MAP_UNIX_PATHS:
		map_foreach(k->map_fd[id], sizeof(struct ag_unix_key), unix_entry, &d);
		break;
	default:
		break;
	}
	return d.out;
}

int cmd_maps(struct ag_cli *c, int argc, char **argv)
{
	static const struct cli_opt opts[] = { CLI_FLAG("json"), CLI_END };
	static const struct cli_spec sp = { .cmd = "agentgatectl maps",
					    .usage = maps_usage,
					    .opts = opts };
	const char *only;
	struct cli_args a;
	bool json;
	struct ag_kern k;
	struct ag_err err;
	json_t *out;
	int found = 0, r;

	if ((r = cli_parse(&sp, argc, argv, &a)))
		return r == 1 ? 0 : AG_EXIT_USAGE;
	cli_args_free(&a);
	json = a.val[0] != NULL;
	if (argc - a.ind > 1) {
		fprintf(stderr, "agentgatectl maps: unexpected argument \"%s\"\n%s",
			argv[a.ind + 1], maps_usage);
		return AG_EXIT_USAGE;
	}
	only = a.ind < argc ? argv[a.ind] : NULL;
	if (ag_kern_open(&k, &c->inst, &err))
		return cli_fail("maps: %s", err.msg);
	out = json_object();
	for (int i = 0; i < AG_MAP__COUNT; i++) {
		if (only && strcmp(only, ag_map_names[i]))
			continue;
		found++;
		json_object_set_new(out, ag_map_names[i], dump_map(&k, &c->inst, i));
	}
	ag_kern_close(&k);
	if (!found) {
		json_decref(out);
		return cli_fail("maps: no map \"%s\" (maps: config, agents, dest_rules, stats, "
				"origin, events, quota, netns, netns_links)",
				only);
	}
	if (json) {
		json_dumpf(out, stdout, JSON_INDENT(2));
	} else {
		const char *name;
		json_t *v;

		json_object_foreach(out, name, v)
		{
			char *text = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);

			printf("%s: %s\n", name, text ? text : "?");
			free(text);
		}
	}
	if (json)
		putchar('\n');
	json_decref(out);
	return 0;
}
