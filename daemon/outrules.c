// SPDX-License-Identifier: GPL-2.0
/* Output rules compiled per server and tool (see outrules.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "outrules.h"

struct tool_redactor {
	const char *tool; /* points into the configuration */
	struct ag_redactor *r;
};

struct server_rules {
	struct ag_redactor *general; /* rules without "tools"; NULL if none */
	struct ag_redactor *all;     /* every rule, for results of no known tool */
	struct tool_redactor *tools;
	size_t nr_tools, tools_cap;
};

struct ag_outrules {
	const struct ag_conf *conf;
	struct server_rules *servers; /* conf->nr_servers */
};

/* ALL_TOOLS: a tool the gateway cannot name, which any rule may be for. */
static const char ALL_TOOLS[] = "";

static bool rule_applies(const struct ag_output_rule *o, const char *tool)
{
	if (!o->nr_tools || tool == ALL_TOOLS)
		return true;
	for (int i = 0; tool && i < o->nr_tools; i++)
		if (!strcmp(o->tools[i], tool))
			return true;
	return false;
}

/* The redactor of the rules that apply to tool (NULL: the general ones only). */
static int build(const struct ag_server_conf *s, const char *tool, struct ag_redactor **out,
		 struct ag_err *err)
{
	struct ag_redact_rule all[AG_REDACT_MAX_RULES], pick[AG_REDACT_MAX_RULES];
	size_t n = 0;

	*out = NULL;
	ag_output_rules_view(s, all);
	for (int i = 0; i < s->nr_out_rules; i++)
		if (tool ? rule_applies(&s->out_rules[i], tool) : !s->out_rules[i].nr_tools)
			pick[n++] = all[i];
	if (!n)
		return 0;
	if (!(*out = ag_redactor_new(pick, n, 0, err)))
		return ag_errf(err, err->code ? err->code : EINVAL, "tool server %s: %s", s->name,
			       err->msg);
	return 0;
}

static bool seen(const struct server_rules *sr, const char *tool)
{
	for (size_t i = 0; i < sr->nr_tools; i++)
		if (!strcmp(sr->tools[i].tool, tool))
			return true;
	return false;
}

static int build_server(const struct ag_server_conf *s, struct server_rules *sr,
			struct ag_err *err)
{
	int ret;

	if ((ret = build(s, NULL, &sr->general, err)) || (ret = build(s, ALL_TOOLS, &sr->all, err)))
		return ret;
	for (int i = 0; i < s->nr_out_rules; i++) {
		const struct ag_output_rule *o = &s->out_rules[i];

		for (int t = 0; t < o->nr_tools; t++) {
			struct tool_redactor *tr;

			if (seen(sr, o->tools[t]))
				continue;
			if (ag_grow(&sr->tools, &sr->tools_cap, sr->nr_tools + 1, sizeof(*tr), 4, 0))
				return ag_errf(err, ENOMEM, "output rules: out of memory");
			tr = sr->tools;
			tr[sr->nr_tools].tool = o->tools[t];
			if ((ret = build(s, o->tools[t], &tr[sr->nr_tools].r, err)))
				return ret;
			sr->nr_tools++;
		}
	}
	return 0;
}

int ag_outrules_new(const struct ag_conf *conf, struct ag_outrules **out, struct ag_err *err)
{
	struct ag_outrules *o = calloc(1, sizeof(*o));
	int ret;

	*out = NULL;
	if (!o || !(o->servers = calloc(conf->nr_servers ? conf->nr_servers : 1,
					sizeof(*o->servers)))) {
		free(o);
		return ag_errf(err, ENOMEM, "output rules: out of memory");
	}
	o->conf = conf;
	for (int i = 0; i < conf->nr_servers; i++) {
		if ((ret = build_server(&conf->servers[i], &o->servers[i], err))) {
			ag_outrules_free(o);
			return ret;
		}
	}
	*out = o;
	return 0;
}

void ag_outrules_free(struct ag_outrules *o)
{
	if (!o)
		return;
	for (int i = 0; i < o->conf->nr_servers; i++) {
		struct server_rules *sr = &o->servers[i];

		ag_redactor_free(sr->general);
		ag_redactor_free(sr->all);
		for (size_t t = 0; t < sr->nr_tools; t++)
			ag_redactor_free(sr->tools[t].r);
		free(sr->tools);
	}
	free(o->servers);
	free(o);
}

const struct ag_redactor *ag_outrules_for(const struct ag_outrules *o,
					  const struct ag_server_conf *s, const char *tool)
{
	const struct server_rules *sr = &o->servers[s - o->conf->servers];

	for (size_t i = 0; tool && i < sr->nr_tools; i++)
		if (!strcmp(sr->tools[i].tool, tool))
			return sr->tools[i].r;
	return sr->general;
}

const struct ag_redactor *ag_outrules_all(const struct ag_outrules *o,
					  const struct ag_server_conf *s)
{
	return o->servers[s - o->conf->servers].all;
}
