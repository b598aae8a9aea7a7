// SPDX-License-Identifier: GPL-2.0
/* agentgatectl agents: who is governed, how, and what the kernel counted. */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <bpf/bpf.h>
#include <jansson.h>

#include "cgroup.h"
#include "cli.h"
#include "kern.h"
#include "maps.h"

static const char agents_usage[] =
    "usage: agentgatectl [--instance NAME] agents [--json]\n"
    "\n"
    "Lists the registered agents: cgroup id, verdict for TCP, running processes and\n"
    "the kernel's counters (redirected, direct, denied, ...).\n";

struct collect {
	const struct ag_kern *k;
	const struct ag_instance *in;
	json_t *out;
};

static void agent_row(const void *key, void *arg)
{
	struct collect *c = arg;
	uint64_t id = *(const uint64_t *)key;
	struct ag_agent a;
	struct ag_stats s;
	char path[PATH_MAX];
	json_t *row;

	if (ag_agent_lookup(c->k, id, &a))
		return;
	if (bpf_map_lookup_elem(c->k->map_fd[AG_MAP_STATS], &id, &s))
		memset(&s, 0, sizeof(s));
	snprintf(path, sizeof(path), "%s/%s", c->in->cg_agents, a.name);
	row = json_pack("{s:s,s:I,s:I,s:s,s:i,s:o}", "name", a.name, "cgroup_id", (json_int_t)id,
			"index", (json_int_t)a.index, "verdict", ag_verdict_name(a.verdict),
			"processes", ag_cgroup_count_procs(path), "stats", map_stats_json(&s));
	json_array_append_new(c->out, row);
}

int cmd_agents(struct ag_cli *cli, int argc, char **argv)
{
	bool json = false;
	struct ag_kern k;
	struct ag_err err;
	struct collect c;
	size_t i;
	json_t *row;
	int ret = cli_simple_opts(argc, argv, agents_usage, &json);

	if (ret)
		return ret > 0 ? 0 : AG_EXIT_USAGE;
	if (ag_kern_open(&k, &cli->inst, &err))
		return cli_fail("agents: %s", err.msg);
	c = (struct collect){ .k = &k, .in = &cli->inst, .out = json_array() };
	map_foreach(k.map_fd[AG_MAP_AGENTS], sizeof(uint64_t), agent_row, &c);
	ag_kern_close(&k);
	if (json) {
		json_dumpf(c.out, stdout, JSON_INDENT(2));
		putchar('\n');
	} else {
		printf("%-20s %-10s %-9s %5s %10s %8s %8s\n", "AGENT", "CGROUP", "VERDICT", "PROCS",
		       "REDIRECTED", "DIRECT", "DENIED");
		json_array_foreach(c.out, i, row)
		{
			json_t *s = json_object_get(row, "stats");

			printf("%-20s %-10lld %-9s %5lld %10lld %8lld %8lld\n",
			       json_string_value(json_object_get(row, "name")),
			       json_integer_value(json_object_get(row, "cgroup_id")),
			       json_string_value(json_object_get(row, "verdict")),
			       json_integer_value(json_object_get(row, "processes")),
			       json_integer_value(json_object_get(s, "redirected")),
			       json_integer_value(json_object_get(s, "direct")),
			       json_integer_value(json_object_get(s, "denied")));
		}
	}
	json_decref(c.out);
	return 0;
}
