// SPDX-License-Identifier: GPL-2.0
/* agentgatectl agents: who is governed, how, and what the kernel counted. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <bpf/bpf.h>
#include <jansson.h>

#include "cgroup.h"
#include "cli.h"
#include "ctl.h"
#include "kern.h"
#include "maps.h"

static const char agents_usage[] =
    "usage: agentgatectl [--instance NAME] agents [--json]\n"
    "\n"
    "Lists the registered agents: cgroup id, verdict for TCP, running processes, the\n"
    "kernel's counters (redirected, direct, denied, ...) and the daemon's refusals\n"
    "(by reason, since agentgated started; not shown while it is not running).\n";

struct collect {
	const struct ag_kern *k;
	const struct ag_instance *in;
	json_t *out;
	json_t *refusals; /* the daemon's "agents" answer; NULL when it is not running */
};

/*
 * The daemon's refusals of agent id: {refused, reasons}, zero when it has
 * none; JSON null when the daemon did not answer.
 */
static json_t *daemon_refusals(const struct collect *c, uint64_t id)
{
	size_t i;
	json_t *r;

	if (!c->refusals)
		return json_null();
	json_array_foreach(c->refusals, i,
			   r) if ((uint64_t)json_integer_value(json_object_get(r, "cgroup_id")) ==
				  id) return json_pack("{s:O,s:O}", "refused",
						       json_object_get(r, "refused"), "reasons",
						       json_object_get(r, "reasons"));
	return json_pack("{s:i,s:{}}", "refused", 0, "reasons");
}

/* The daemon's "agents" answer, or NULL (then err says why): not running, or too old. */
static json_t *ask_daemon(const struct ag_instance *in, struct ag_err *err)
{
	json_t *req = json_pack("{s:s}", "cmd", "agents"), *resp = NULL, *list;

	if (!req || ag_ctl_call(in, req, &resp, err)) {
		json_decref(req);
		return NULL;
	}
	json_decref(req);
	list = json_incref(json_object_get(resp, "agents"));
	json_decref(resp);
	if (json_is_array(list))
		return list;
	json_decref(list);
	ag_errf(err, EPROTO, "agentgated: no \"agents\" list in its answer");
	return NULL;
}

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
	row = json_pack("{s:s,s:I,s:I,s:s,s:i,s:o,s:o}", "name", a.name, "cgroup_id",
			(json_int_t)id, "index", (json_int_t)a.index, "verdict",
			ag_verdict_name(a.verdict), "processes", ag_cgroup_count_procs(path),
			"stats", map_stats_json(&s), "daemon", daemon_refusals(c, id));
	json_array_append_new(c->out, row);
}

/* DENIED: the kernel's refusals; REFUSED: the daemon's ("-" while it is not running). */
static void print_table(json_t *rows, bool daemon_up)
{
	size_t i;
	json_t *row;

	printf("%-20s %-10s %-9s %5s %10s %8s %8s %8s\n", "AGENT", "CGROUP", "VERDICT", "PROCS",
	       "REDIRECTED", "DIRECT", "DENIED", "REFUSED");
	json_array_foreach(rows, i, row)
	{
		json_t *s = json_object_get(row, "stats");
		char refused[24] = "-";

		if (daemon_up)
			snprintf(refused, sizeof(refused), "%lld",
				 json_integer_value(
				     json_object_get(json_object_get(row, "daemon"), "refused")));
		printf("%-20s %-10lld %-9s %5lld %10lld %8lld %8lld %8s\n",
		       json_string_value(json_object_get(row, "name")),
		       json_integer_value(json_object_get(row, "cgroup_id")),
		       json_string_value(json_object_get(row, "verdict")),
		       json_integer_value(json_object_get(row, "processes")),
		       json_integer_value(json_object_get(s, "redirected")),
		       json_integer_value(json_object_get(s, "direct")),
		       json_integer_value(json_object_get(s, "denied")), refused);
	}
}

int cmd_agents(struct ag_cli *cli, int argc, char **argv)
{
	bool json = false;
	struct ag_kern k;
	struct ag_err err;
	struct collect c;
	int ret = cli_simple_opts(argc, argv, agents_usage, &json);

	if (ret)
		return ret > 0 ? 0 : AG_EXIT_USAGE;
	if (ag_kern_open(&k, &cli->inst, &err))
		return cli_fail("agents: %s", err.msg);
	c = (struct collect){ .k = &k,
			      .in = &cli->inst,
			      .out = json_array(),
			      .refusals = ask_daemon(&cli->inst, &err) };
	map_foreach(k.map_fd[AG_MAP_AGENTS], sizeof(uint64_t), agent_row, &c);
	ag_kern_close(&k);
	if (json) {
		json_dumpf(c.out, stdout, JSON_INDENT(2));
		putchar('\n');
	} else {
		print_table(c.out, c.refusals != NULL);
	}
	if (!json && !c.refusals)
		printf("the daemon's refusals are not known (%s): REFUSED is \"-\", DENIED "
		       "counts the kernel's only\n",
		       err.msg);
	json_decref(c.out);
	json_decref(c.refusals);
	return 0;
}
