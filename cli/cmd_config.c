// SPDX-License-Identifier: GPL-2.0
/*
 * agentgatectl config check: load agentgate.json exactly as agentgated(8)
 * would, but without root, the kernel or a running daemon, so a file can be
 * checked before it is deployed.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <jansson.h>

#include "cli.h"
#include "config.h"

static const char usage_check[] =
    "usage: agentgatectl config check [--config FILE] [--json]\n"
    "Load FILE as agentgated would, without touching the kernel, and print\n"
    "\"FILE: ok: N tool servers, N agents\", or the first error (exit status 1).\n"
    "Without --config, the embedded default is checked.  --json prints the tool\n"
    "servers and agents as loaded, with the defaults filled in.\n";

static json_t *pass_json(const struct ag_pass_conf *list, int nr)
{
	json_t *a = json_array();
	char buf[AG_HOST_LEN + 64];

	for (int i = 0; i < nr; i++)
		json_array_append_new(a, json_string(ag_pass_fmt(&list[i], buf, sizeof(buf))));
	return a;
}

static json_t *patterns_json(char *const *list, int nr)
{
	json_t *a = json_array();

	for (int i = 0; i < nr; i++)
		json_array_append_new(a, json_string(list[i]));
	return a;
}

static json_t *server_json(const struct ag_server_conf *s)
{
	json_t *hosts = json_array(), *ports = json_array(), *addrs = json_array(), *o;
	char buf[INET6_ADDRSTRLEN + 8], url[AG_HOST_LEN + 1100];

	for (int i = 0; i < s->nr_hosts; i++)
		json_array_append_new(hosts, json_string(s->hosts[i]));
	/* The ports it really matches: the upstream's when none are listed. */
	if (!s->nr_ports)
		json_array_append_new(ports, json_integer(s->upstream_port));
	for (int i = 0; i < s->nr_ports; i++)
		json_array_append_new(ports, json_integer(s->ports[i]));
	for (int i = 0; i < s->nr_addrs; i++)
		json_array_append_new(
		    addrs, json_string(ag_conf_cidr_fmt(s->addrs[i].addr, s->addrs[i].prefixlen,
							buf, sizeof(buf))));
	snprintf(url, sizeof(url), "%s://%s:%u%s", s->upstream_tls ? "https" : "http",
		 s->upstream_host, s->upstream_port, s->upstream_path);
	o = json_pack("{s:s, s:s, s:s, s:{s:o, s:o, s:o}}", "name", s->name, "upstream", url,
		      "upstream_addr", ag_conf_cidr_fmt(s->upstream_addr, 128, buf, sizeof(buf)),
		      "match", "hosts", hosts, "ports", ports, "addresses", addrs);
	if (o && s->upstream_tls)
		json_object_set_new(o, "tls",
				    json_pack("{s:s?, s:s}", "ca_file",
					      s->ca_file[0] ? s->ca_file : NULL, "server_name",
					      s->server_name));
	return o;
}

static json_t *agent_json(const struct ag_conf *c, const struct ag_agent_conf *a)
{
	const struct ag_pass_conf *pass = a->pass_set ? a->pass : c->pass;
	int nr_pass = a->pass_set ? a->nr_pass : c->nr_pass;

	return json_pack("{s:s, s:o, s:o, s:o, s:o, s:b}", "name", a->name, "tools",
			 patterns_json(a->tools, a->nr_tools), "resources",
			 patterns_json(a->resources, a->nr_resources), "prompts",
			 patterns_json(a->prompts, a->nr_prompts), "passthrough",
			 pass_json(pass, nr_pass), "passthrough_inherited", !a->pass_set);
}

static int print_json(const struct ag_conf *c, const char *file)
{
	json_t *servers = json_array(), *agents = json_array(), *o;

	for (int i = 0; i < c->nr_servers; i++)
		json_array_append_new(servers, server_json(&c->servers[i]));
	for (int i = 0; i < c->nr_agents; i++)
		json_array_append_new(agents, agent_json(c, &c->agents[i]));
	o = json_pack("{s:s?, s:b, s:o, s:o, s:o}", "file", file, "ok", 1, "tool_servers", servers,
		      "passthrough", pass_json(c->pass, c->nr_pass), "agents", agents);
	if (!o)
		return cli_fail("config check: out of memory");
	json_dumpf(o, stdout, JSON_INDENT(2));
	putchar('\n');
	json_decref(o);
	return 0;
}

static int cmd_check(struct ag_cli *c, int argc, char **argv)
{
	static const struct cli_opt opts[] = { CLI_VAL("config"), CLI_FLAG("json"), CLI_END };
	static const struct cli_spec sp = { .cmd = "config check",
					    .usage = usage_check,
					    .opts = opts };
	const char *file;
	struct ag_conf conf;
	struct cli_args a;
	struct ag_err err;
	bool json;
	int ret;

	if ((ret = cli_parse(&sp, argc, argv, &a)))
		return ret == 1 ? 0 : AG_EXIT_USAGE;
	cli_args_free(&a);
	file = a.val[0];
	json = a.val[1] != NULL;
	if (a.ind < argc) {
		fprintf(stderr, "config check: unexpected argument \"%s\"\n%s", argv[a.ind],
			usage_check);
		return AG_EXIT_USAGE;
	}
	ret = file ? ag_conf_load(&conf, file, &err) : ag_conf_default(&conf, &err);
	if (ret)
		return cli_fail("%s", err.msg);
	if (json)
		ret = print_json(&conf, file);
	else
		printf("%s: ok: %d tool servers, %d agents\n", file ? file : "embedded default",
		       conf.nr_servers, conf.nr_agents);
	ag_conf_free(&conf);
	return ret;
}

static const struct cli_cmd subcommands[] = {
	{ "check", cmd_check, usage_check },
};

const struct cli_table cli_config = CLI_TABLE("config", subcommands, NULL);
