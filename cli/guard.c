// SPDX-License-Identifier: GPL-2.0
/* agentgatectl guard: the XDP ingress guard on an interface. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "cli.h"
#include "guard.h"

static const char usage_attach[] =
    "usage: agentgatectl [--instance NAME] guard attach IFACE [--rate N] [--burst N]\n"
    "                    [--port PORT]\n";
static const char usage_detach[] = "usage: agentgatectl [--instance NAME] guard detach IFACE\n";
static const char usage_show[] = "usage: agentgatectl [--instance NAME] guard show [--json]\n";

static int guard_attach(struct ag_cli *c, int argc, char **argv)
{
	static const struct cli_opt opts[] = { CLI_VAL("rate"), CLI_VAL("burst"), CLI_VAL("port"),
					       CLI_END };
	static const struct cli_spec sp = { .cmd = "agentgatectl guard attach",
					    .table = &cli_guard,
					    .opts = opts };
	struct ag_guard_config cfg = { .rate = 100, .burst = 200 };
	struct cli_args a;
	struct ag_err err;
	uint32_t port = 0;
	int ret;

	/* argv[1] is the interface: the options follow it. */
	if ((ret = cli_parse_one(&sp, true, argc, argv, &a)))
		return ret == 1 ? 0 : AG_EXIT_USAGE;
	if (a.val[0] &&
	    (ret = cli_parse_u32("guard attach", "rate", a.val[0], UINT32_MAX, &cfg.rate)))
		return ret;
	if (a.val[1] &&
	    (ret = cli_parse_u32("guard attach", "burst", a.val[1], UINT32_MAX, &cfg.burst)))
		return ret;
	if (a.val[2] && (ret = cli_parse_u32("guard attach", "port", a.val[2], 65535, &port)))
		return ret;
	cfg.port = (uint16_t)port;
	if (ag_guard_attach(&c->inst, argv[1], &cfg, &err))
		return cli_fail("guard attach: %s", err.msg);
	return 0;
}

struct show {
	const struct ag_instance *in;
	json_t *out;
};

static void show_one(const char *ifname, void *arg)
{
	struct show *s = arg;
	struct ag_guard_info g;
	struct ag_err err;

	if (ag_guard_info(s->in, ifname, &g, &err))
		return;
	/* An agent's guard is about its namespace: whose, not a bucket. */
	bool agent = g.cfg.flags & AG_GUARD_F_AGENT;

	json_array_append_new(
	    s->out,
	    json_pack(
		"{s:s,s:s,s:b,s:s,s:s,s:o,s:{s:I,s:I,s:I}}", "interface", ifname, "kind",
		agent ? "agent" : "ingress", "attached", g.attached, "mode", g.mode, "dispatcher",
		g.legacy ? "legacy (single program)" : "libxdp multi-program", "config",
		agent ? json_pack("{s:I}", "agent_cgroup_id", (json_int_t)g.cfg.agent_cgroup_id)
		      : json_pack("{s:I,s:I,s:I}", "rate", (json_int_t)g.cfg.rate, "burst",
				  (json_int_t)g.cfg.burst, "port", (json_int_t)g.cfg.port),
		"stats", "passed", (json_int_t)g.stats.passed, "dropped",
		(json_int_t)g.stats.dropped, "uncounted", (json_int_t)g.stats.uncounted));
}

/* The guards of an instance as JSON; status uses it too. */
json_t *guard_list_json(const struct ag_instance *in)
{
	struct show s = { .in = in, .out = json_array() };

	ag_guard_foreach(in, show_one, &s);
	return s.out;
}

static int guard_show(struct ag_cli *c, int argc, char **argv)
{
	static const struct cli_opt opts[] = { CLI_FLAG("json"), CLI_END };
	static const struct cli_spec sp = { .cmd = "agentgatectl guard show",
					    .table = &cli_guard,
					    .opts = opts };
	struct cli_args a;
	json_t *list, *g;
	bool json;
	size_t i;
	int ret;

	if ((ret = cli_parse(&sp, argc, argv, &a)))
		return ret == 1 ? 0 : AG_EXIT_USAGE;
	cli_args_free(&a);
	if (a.ind < argc)
		return cli_table_fail(&cli_guard);
	json = a.val[0] != NULL;
	list = guard_list_json(&c->inst);
	if (json) {
		json_dumpf(list, stdout, JSON_INDENT(2));
		putchar('\n');
	} else {
		printf("%-16s %-8s %-9s %-24s %8s %8s %6s %10s %10s\n", "INTERFACE", "KIND", "MODE",
		       "DISPATCHER", "RATE", "BURST", "PORT", "PASSED", "DROPPED");
		json_array_foreach(list, i, g)
		{
			json_t *cf = json_object_get(g, "config"),
			       *st = json_object_get(g, "stats");

			printf("%-16s %-8s %-9s %-24s %8lld %8lld %6lld %10lld %10lld\n",
			       json_string_value(json_object_get(g, "interface")),
			       json_string_value(json_object_get(g, "kind")),
			       json_string_value(json_object_get(g, "mode")),
			       json_string_value(json_object_get(g, "dispatcher")),
			       json_integer_value(json_object_get(cf, "rate")),
			       json_integer_value(json_object_get(cf, "burst")),
			       json_integer_value(json_object_get(cf, "port")),
			       json_integer_value(json_object_get(st, "passed")),
			       json_integer_value(json_object_get(st, "dropped")));
		}
	}
	json_decref(list);
	return 0;
}

static int guard_detach(struct ag_cli *c, int argc, char **argv)
{
	static const struct cli_spec sp = { .cmd = "agentgatectl guard detach",
					    .table = &cli_guard };
	struct cli_args a;
	struct ag_err err;
	int ret;

	if ((ret = cli_parse_one(&sp, false, argc, argv, &a)))
		return ret == 1 ? 0 : AG_EXIT_USAGE;
	if (ag_guard_detach(&c->inst, argv[a.ind], &err))
		return cli_fail("guard detach: %s", err.msg);
	return 0;
}

static const struct cli_cmd subcommands[] = {
	{ "attach", guard_attach, usage_attach },
	{ "detach", guard_detach, usage_detach },
	{ "show", guard_show, usage_show },
};

const struct cli_table cli_guard =
    CLI_TABLE("guard", subcommands,
	      "\n"
	      "An XDP program on IFACE gives each source address a token bucket (--rate per\n"
	      "second, --burst; defaults 100 and 200): new TCP connections and UDP datagrams\n"
	      "to PORT (default: every port) beyond it are dropped before they reach the\n"
	      "stack.  Established TCP, ARP and ICMP pass.  Attached with libxdp, natively\n"
	      "where the driver can, else in generic mode.\n"
	      "\n"
	      "show also lists the guards of agents run with --netns (kind \"agent\"): what\n"
	      "each agent's namespace sent that was neither for the gateway, a resolver nor\n"
	      "neighbour resolution was dropped and counted there.\n");
