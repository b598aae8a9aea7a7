// SPDX-License-Identifier: GPL-2.0
/* agentgatectl: the operator's tool.  See agentgatectl(8). */
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char usage_head[] =
    "usage: agentgatectl [--instance NAME] [--state-dir DIR] COMMAND [ARGS...]\n"
    "\n"
    "commands:\n";
static const char usage_tail[] =
    "\n"
    "Each command takes --help.  NAME defaults to \"" AG_INSTANCE_DEFAULT "\"; DIR, the\n"
    "instance's state directory, to the one agentgated(8) uses by default.\n";

int cli_fail(const char *fmt, ...)
{
	va_list ap;

	fputs("agentgatectl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return AG_EXIT_FAIL;
}

int cli_usage(const char *cmd_usage)
{
	fputs(cmd_usage, stderr);
	return AG_EXIT_USAGE;
}

int cli_parse_u32(const char *cmd, const char *opt, const char *s, uint32_t max, uint32_t *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || end == s || s[0] == '-' || v > max)
		return cli_fail("%s: --%s %s: expected a number from 0 to %u", cmd, opt, s, max);
	*out = (uint32_t)v;
	return 0;
}

/* The human behind sudo, else the user: what an audit record should name. */
const char *cli_default_approver(void)
{
	const char *s = getenv("SUDO_USER");
	struct passwd *pw;

	if (s && *s)
		return s;
	pw = getpwuid(getuid());
	return pw ? pw->pw_name : "unknown";
}

/*
 * The command table is the usage: a command cannot be dispatched without
 * being listed by --help (selftests/test_docs.c checks the man page against
 * the same list).
 */
static const struct {
	const char *name;
	const char *synopsis; /* after the name; NULL: the names of subs */
	const char *summary;
	int (*fn)(struct ag_cli *c, int argc, char **argv); /* NULL: cli_dispatch(subs) */
	const struct cli_table *subs;
} commands[] = {
	{ "run", "--agent NAME [--user USER] [--netns] [--keep-fd N] -- CMD [ARGS...]",
	  "run CMD as agent NAME under governance", cmd_run, NULL },
	{ "status", "[--verbose] [--json]",
	  "serving, coverage on this kernel, audit; then the details", cmd_status, NULL },
	{ "agents", "[--json]", "registered agents with their counters", cmd_agents, NULL },
	{ "maps", "[--json] [MAP]", "decoded dumps of the pinned maps", cmd_maps, NULL },
	{ "quota", NULL, "per-agent connect rate and call budgets, live", NULL, &cli_quota },
	{ "policy", NULL,
	  "Cedar policies: offline checks, a what-if replay of the audit log, a live reload, "
	  "a poll of the git policy source",
	  NULL, &cli_policy },
	{ "approvals", "[--json]", "calls held for a human (policies' @escalate)", cmd_approvals,
	  NULL },
	{ "approve", "ID [--by NAME]", "resume a held call", cmd_resolve, NULL },
	{ "deny", "ID [--by NAME]", "refuse a held call", cmd_resolve, NULL },
	{ "tools", NULL,
	  "tool definitions seen and their trusted hashes; review and approve a changed tool, "
	  "write the lock file",
	  NULL, &cli_tools },
	{ "audit", NULL, "the audit log: verify its chain and signatures, follow it, search it",
	  NULL, &cli_audit },
	{ "keys", NULL, "the signing keys of minted credential assertions", NULL, &cli_keys },
	{ "guard", NULL, "the XDP ingress guard on an interface", NULL, &cli_guard },
	{ "config", NULL, "load agentgate.json as the daemon would and report the first error",
	  NULL, &cli_config },
	{ "uninstall", "", "stop the daemon and agents, detach and unpin everything", cmd_uninstall,
	  NULL },
	{ "upgrade", "[--daemon PATH]",
	  "replace the running daemon by a new build, agents never unhooked or refused",
	  cmd_upgrade, NULL },
};

#define NR_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void print_usage(FILE *f)
{
	fputs(usage_head, f);
	for (size_t n = 0; n < NR_COMMANDS; n++) {
		fprintf(f, "  %s", commands[n].name);
		if (commands[n].subs) {
			fputc(' ', f);
			cli_table_names(f, commands[n].subs);
		} else if (commands[n].synopsis[0]) {
			fprintf(f, " %s", commands[n].synopsis);
		}
		fprintf(f, "\n      %s\n", commands[n].summary);
	}
	fputs(usage_tail, f);
}

int main(int argc, char **argv)
{
	struct ag_cli c = { .instance = AG_INSTANCE_DEFAULT };
	static const struct cli_opt opts[] = { CLI_VAL("instance"), CLI_VAL("state-dir"), CLI_END };
	/* No usage text: print_usage says it after a 1. */
	static const struct cli_spec sp = { .cmd = "agentgatectl", .opts = opts, .stop = true };
	struct cli_args a;
	struct ag_err err;
	int i;

	switch (cli_parse(&sp, argc, argv, &a)) {
	case 0:
		break;
	case 1:
		print_usage(stdout);
		return 0;
	default:
		print_usage(stderr);
		return AG_EXIT_USAGE;
	}
	cli_args_free(&a);
	c.instance = a.val[0] ? a.val[0] : c.instance;
	i = a.ind;
	if (i >= argc) {
		print_usage(stderr);
		return AG_EXIT_USAGE;
	}
	for (size_t n = 0; n < NR_COMMANDS; n++) {
		if (strcmp(argv[i], commands[n].name))
			continue;
		if (ag_instance_init(&c.inst, c.instance, a.val[1], &err))
			return cli_fail("%s", err.msg);
		if (commands[n].subs)
			return cli_dispatch(commands[n].subs, &c, argc - i, argv + i);
		return commands[n].fn(&c, argc - i, argv + i);
	}
	fprintf(stderr, "agentgatectl: unknown command \"%s\"\n", argv[i]);
	print_usage(stderr);
	return AG_EXIT_USAGE;
}
