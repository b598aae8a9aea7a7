// SPDX-License-Identifier: GPL-2.0
/*
 * agentgatectl approvals | approve ID | deny ID: the human side of
 * escalated calls (policies' @escalate).  The agent's request stays open
 * while the daemon holds it; these commands list what waits and resume or
 * refuse it.  Who decided is recorded in the audit log.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "cli.h"
#include "ctl.h"

static const char usage_list[] = "usage: agentgatectl approvals [--json]\n"
				 "  calls held for approval, oldest first\n";
static const char usage_resolve[] =
    "usage: agentgatectl approve|deny ID [--by NAME]\n"
    "  resume (approve) or refuse (deny) the held call ID; NAME, recorded in the\n"
    "  audit log, defaults to the invoking user (SUDO_USER when run through sudo)\n";

int cmd_approvals(struct ag_cli *c, int argc, char **argv)
{
	json_t *req = json_pack("{s:s}", "cmd", "approvals"), *resp = NULL, *list, *a;
	struct ag_err err = { 0 };
	bool json = false;
	size_t i;
	int r;

	if ((r = cli_simple_opts(argc, argv, usage_list, &json))) {
		json_decref(req);
		return r > 0 ? 0 : AG_EXIT_USAGE;
	}
	if (!req)
		return cli_fail("approvals: out of memory");
	r = ag_ctl_call(&c->inst, req, &resp, &err);
	json_decref(req);
	if (r)
		return cli_fail("approvals: %s", err.msg);
	list = json_object_get(resp, "approvals");
	if (json) {
		json_dumpf(list, stdout, JSON_COMPACT);
		putchar('\n');
	} else if (!json_array_size(list)) {
		printf("no calls wait for approval\n");
	} else {
		printf("%-6s %-16s %-16s %-24s %9s  %s\n", "ID", "AGENT", "SERVER", "TOOL",
		       "WAITED", "REASON");
		json_array_foreach(list, i, a)
		    printf("%-6lld %-16s %-16s %-24s %7llds  %s\n",
			   (long long)json_integer_value(json_object_get(a, "id")),
			   json_string_value(json_object_get(a, "agent")),
			   json_string_value(json_object_get(a, "server")),
			   json_string_value(json_object_get(a, "tool")),
			   (long long)json_integer_value(json_object_get(a, "waited_ms")) / 1000,
			   json_string_value(json_object_get(a, "reason")));
	}
	json_decref(resp);
	return 0;
}

int cmd_resolve(struct ag_cli *c, int argc, char **argv)
{
	static const struct cli_opt opts[] = { CLI_VAL("by"), CLI_END };
	const char *cmd = argv[0], *by = cli_default_approver();
	char label[32];
	const struct cli_spec sp = { .cmd = label, .usage = usage_resolve, .opts = opts };
	struct cli_args a;
	bool allow = !strcmp(cmd, "approve");
	json_t *req, *resp = NULL;
	struct ag_err err = { 0 };
	unsigned long long id;
	char *end;
	int r;

	snprintf(label, sizeof(label), "agentgatectl %s", cmd);
	if ((r = cli_parse_one(&sp, false, argc, argv, &a)))
		return r == 1 ? 0 : AG_EXIT_USAGE;
	if (a.val[0])
		by = a.val[0];
	errno = 0;
	id = strtoull(argv[a.ind], &end, 10);
	if (errno || *end || !id || argv[a.ind][0] == '-')
		return cli_fail("%s: %s: expected the ID agentgatectl approvals shows", cmd,
				argv[a.ind]);
	req = json_pack("{s:s,s:I,s:s}", "cmd", cmd, "id", (json_int_t)id, "by", by);
	if (!req)
		return cli_fail("%s: out of memory", cmd);
	r = ag_ctl_call(&c->inst, req, &resp, &err);
	json_decref(req);
	json_decref(resp);
	if (r)
		return cli_fail("%s %llu: %s", cmd, id, err.msg);
	printf("%s %llu: %s by %s\n", allow ? "approved" : "denied", id,
	       allow ? "the call goes on" : "the agent gets a refusal", by);
	return 0;
}
