// SPDX-License-Identifier: GPL-2.0
/* agentgatectl quota: per-agent limits and usage, live in the kernel map. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "cgroup.h"
#include "cli.h"
#include "ctl.h"
#include "kern.h"
#include "maps.h"

static const char usage_show[] =
    "usage: agentgatectl [--instance NAME] quota show [--json] [AGENT]\n";
static const char usage_set[] =
    "usage: agentgatectl [--instance NAME] quota set AGENT [--connect-rate N]\n"
    "                    [--connect-burst N] [--calls-per-minute N] [--calls-per-day N]\n";
static const char usage_reset[] = "usage: agentgatectl [--instance NAME] quota reset AGENT\n";

static int kern_open(struct ag_cli *c, struct ag_kern *k)
{
	struct ag_err err;

	if (ag_kern_open(k, &c->inst, &err))
		return cli_fail("quota: %s", err.msg);
	return 0;
}

static int agent_id(const struct ag_instance *in, const char *name, uint64_t *id)
{
	char path[PATH_MAX];
	struct ag_err err;

	if (!ag_agent_name_valid(name))
		return cli_fail("quota: \"%s\" is not an agent name", name);
	snprintf(path, sizeof(path), "%s/%s", in->cg_agents, name);
	if (ag_cgroup_id(path, id, &err))
		return cli_fail("quota: agent %s is not registered in instance %s (run it once, or "
				"configure it)",
				name, in->name);
	return 0;
}

json_t *quota_json(const char *name, const struct ag_quota *q)
{
	uint64_t now = ag_now_ns();
	bool minute_live = now - q->minute_start_ns < AG_MINUTE_NS;
	bool day_live = now - q->day_start_ns < AG_DAY_NS;

	return json_pack("{s:s,s:{s:I,s:I,s:I,s:I},s:{s:f,s:I,s:I},s:{s:I,s:I}}", "agent", name,
			 "limits", "connect_rate", (json_int_t)q->connect_rate, "connect_burst",
			 (json_int_t)q->connect_burst, "calls_per_minute",
			 (json_int_t)q->calls_per_minute, "calls_per_day",
			 (json_int_t)q->calls_per_day, "usage", "connect_tokens",
			 (double)q->connect_tokens_milli / AG_QUOTA_MILLI, "calls_minute",
			 (json_int_t)(minute_live ? q->calls_minute : 0), "calls_day",
			 (json_int_t)(day_live ? q->calls_day : 0), "refused", "connects",
			 (json_int_t)q->connect_refused, "calls", (json_int_t)q->calls_refused);
}

struct show {
	const struct ag_kern *k;
	const char *only;
	json_t *out;
};

static void show_agent(const void *key, void *arg)
{
	struct show *s = arg;
	uint64_t id = *(const uint64_t *)key;
	struct ag_agent a;
	struct ag_quota q;

	if (ag_agent_lookup(s->k, id, &a) || (s->only && strcmp(s->only, a.name)) ||
	    ag_quota_get(s->k, id, &q))
		return;
	json_array_append_new(s->out, quota_json(a.name, &q));
}

static int quota_show(struct ag_cli *c, int argc, char **argv)
{
	static const struct cli_opt opts[] = { CLI_FLAG("json"), CLI_END };
	static const struct cli_spec sp = { .cmd = "agentgatectl quota show",
					    .table = &cli_quota,
					    .opts = opts };
	struct ag_kern kern, *k = &kern;
	struct show s = { .k = k };
	struct cli_args a;
	bool json;
	size_t i;
	json_t *row;
	int ret;

	if ((ret = cli_parse(&sp, argc, argv, &a)))
		return ret == 1 ? 0 : AG_EXIT_USAGE;
	cli_args_free(&a);
	if (a.ind + 1 < argc)
		return cli_table_fail(&cli_quota);
	if ((ret = kern_open(c, k)))
		return ret;
	json = a.val[0] != NULL;
	s.only = a.ind < argc ? argv[a.ind] : NULL;
	s.out = json_array();
	map_foreach(k->map_fd[AG_MAP_AGENTS], sizeof(uint64_t), show_agent, &s);
	if (json) {
		json_dumpf(s.out, stdout, JSON_INDENT(2));
		putchar('\n');
	} else {
		printf("%-20s %14s %17s %17s %9s %9s\n", "AGENT", "CONNECT/S:BURST", "CALLS/MIN",
		       "CALLS/DAY", "REFUSED", "TOKENS");
		json_array_foreach(s.out, i, row)
		{
			json_t *l = json_object_get(row, "limits"),
			       *u = json_object_get(row, "usage"),
			       *r = json_object_get(row, "refused");
			char rate[32], min[32], day[32];

			snprintf(rate, sizeof(rate), "%lld:%lld",
				 json_integer_value(json_object_get(l, "connect_rate")),
				 json_integer_value(json_object_get(l, "connect_burst")));
			snprintf(min, sizeof(min), "%lld/%lld",
				 json_integer_value(json_object_get(u, "calls_minute")),
				 json_integer_value(json_object_get(l, "calls_per_minute")));
			snprintf(day, sizeof(day), "%lld/%lld",
				 json_integer_value(json_object_get(u, "calls_day")),
				 json_integer_value(json_object_get(l, "calls_per_day")));
			printf("%-20s %14s %17s %17s %9lld %9.1f\n",
			       json_string_value(json_object_get(row, "agent")), rate, min, day,
			       json_integer_value(json_object_get(r, "connects")) +
				   json_integer_value(json_object_get(r, "calls")),
			       json_real_value(json_object_get(u, "connect_tokens")));
		}
	}
	ret = s.only && !json_array_size(s.out) ? cli_fail("quota: agent %s has no quota", s.only)
						: 0;
	json_decref(s.out);
	ag_kern_close(k);
	return ret;
}

static int quota_set(struct ag_cli *c, int argc, char **argv)
{
	/* In the order of struct ag_quota_limits. */
	static const struct cli_opt opts[] = { CLI_VAL("connect-rate"), CLI_VAL("connect-burst"),
					       CLI_VAL("calls-per-minute"),
					       CLI_VAL("calls-per-day"), CLI_END };
	static const struct cli_spec sp = { .cmd = "agentgatectl quota set",
					    .table = &cli_quota,
					    .opts = opts };
	struct ag_quota_limits l = { 0 };
	uint32_t *fields[] = { &l.connect_rate, &l.connect_burst, &l.calls_per_minute,
			       &l.calls_per_day };
	struct cli_args a;
	struct ag_quota q;
	struct ag_kern k;
	struct ag_err err;
	uint64_t id;
	int ret;

	if ((ret = cli_parse_one(&sp, true, argc, argv, &a)))
		return ret == 1 ? 0 : AG_EXIT_USAGE;
	if ((ret = kern_open(c, &k)))
		return ret;
	if ((ret = agent_id(&c->inst, argv[1], &id)))
		goto out;
	if (!ag_quota_get(&k, id, &q)) {
		l.connect_rate = q.connect_rate;
		l.connect_burst = q.connect_burst;
		l.calls_per_minute = q.calls_per_minute;
		l.calls_per_day = q.calls_per_day;
	}
	for (size_t i = 0; i < AG_ARRAY_SIZE(fields); i++)
		if (a.val[i] && (ret = cli_parse_u32("quota set", opts[i].name, a.val[i],
						     UINT32_MAX, fields[i])))
			goto out;
	if (ag_quota_set(&k, id, &l, &err))
		ret = cli_fail("quota set %s: %s", argv[1], err.msg);
	/* The daemon charges only agents it knows have an entry (daemon/budget.c). */
	else if (ag_ctl_budgets_changed(&c->inst, &err))
		ret = cli_fail("quota set %s: the limits are set, but agentgated was not told, so "
			       "its calls may go uncharged: %s",
			       argv[1], err.msg);
out:
	ag_kern_close(&k);
	return ret;
}

static int quota_reset(struct ag_cli *c, int argc, char **argv)
{
	static const struct cli_spec sp = { .cmd = "agentgatectl quota reset",
					    .table = &cli_quota };
	struct cli_args a;
	struct ag_kern k;
	struct ag_err err;
	uint64_t id;
	int ret;

	if ((ret = cli_parse_one(&sp, false, argc, argv, &a)))
		return ret == 1 ? 0 : AG_EXIT_USAGE;
	if ((ret = kern_open(c, &k)))
		return ret;
	if (!(ret = agent_id(&c->inst, argv[a.ind], &id)) && ag_quota_reset(&k, id, &err))
		ret = cli_fail("quota reset %s: %s", argv[a.ind], err.msg);
	ag_kern_close(&k);
	return ret;
}

static const struct cli_cmd subcommands[] = {
	{ "show", quota_show, usage_show },
	{ "set", quota_set, usage_set },
	{ "reset", quota_reset, usage_reset },
};

const struct cli_table cli_quota =
    CLI_TABLE("quota", subcommands,
	      "\n"
	      "Per-agent quotas in the kernel's quota map: a token bucket for new connections\n"
	      "(rate per second, burst), refused with EDQUOT in the connect hooks, and tool-call\n"
	      "budgets per minute and per day.  0 means no limit; set changes only the limits\n"
	      "given and takes effect on the next connect; reset zeroes usage and refusals.\n");
