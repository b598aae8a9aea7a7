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
	const char *synopsis; /* after the name */
	const char *summary;
	int (*fn)(struct ag_cli *c, int argc, char **argv);
} commands[] = {
	{ "run", "--agent NAME [--user USER] [--netns] [--keep-fd N] -- CMD [ARGS...]",
	  "run CMD as agent NAME under governance", cmd_run },
	{ "status", "[--verbose] [--json]",
	  "serving, coverage on this kernel, audit; then the details", cmd_status },
	{ "agents", "[--json]", "registered agents with their counters", cmd_agents },
	{ "maps", "[--json] [MAP]", "decoded dumps of the pinned maps", cmd_maps },
	{ "quota", "show|set|reset", "per-agent connect rate and call budgets, live", cmd_quota },
	{ "policy", "validate|test|explain|simulate|reload",
	  "Cedar policies: offline checks, a what-if replay of the audit log, a live reload",
	  cmd_policy },
	{ "approvals", "[--json]", "calls held for a human (policies' @escalate)", cmd_approvals },
	{ "approve", "ID [--by NAME]", "resume a held call", cmd_resolve },
	{ "deny", "ID [--by NAME]", "refuse a held call", cmd_resolve },
	{ "tools", "[diff|approve|lock]",
	  "tool definitions seen and their trusted hashes; review and approve a changed tool, "
	  "write the lock file",
	  cmd_tools },
	{ "audit", "verify|tail|query|pubkey",
	  "the audit log: verify its chain and signatures, follow it, search it", cmd_audit },
	{ "keys", "jwks|rotate|mint", "the signing keys of minted credential assertions",
	  cmd_keys },
	{ "guard", "attach|detach|show", "the XDP ingress guard on an interface", cmd_guard },
	{ "config", "check [--config FILE] [--json]",
	  "load agentgate.json as the daemon would and report the first error", cmd_config },
	{ "uninstall", "", "stop the daemon and agents, detach and unpin everything",
	  cmd_uninstall },
	{ "upgrade", "[--daemon PATH]",
	  "replace the running daemon by a new build, agents never unhooked or refused",
	  cmd_upgrade },
};

#define NR_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void print_usage(FILE *f)
{
	fputs(usage_head, f);
	for (size_t n = 0; n < NR_COMMANDS; n++)
		fprintf(f, "  %s%s%s\n      %s\n", commands[n].name,
			commands[n].synopsis[0] ? " " : "", commands[n].synopsis,
			commands[n].summary);
	fputs(usage_tail, f);
}

int main(int argc, char **argv)
{
	struct ag_cli c = { .instance = AG_INSTANCE_DEFAULT };
	const char *state_dir = NULL;
	struct ag_err err;
	int i = 1;

	while (i < argc && argv[i][0] == '-') {
		if (!strcmp(argv[i], "--instance") && i + 1 < argc) {
			c.instance = argv[i + 1];
			i += 2;
		} else if (!strncmp(argv[i], "--instance=", 11)) {
			c.instance = argv[i] + 11;
			i++;
		} else if (!strcmp(argv[i], "--state-dir") && i + 1 < argc) {
			state_dir = argv[i + 1];
			i += 2;
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			print_usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "agentgatectl: unknown option \"%s\"\n", argv[i]);
			print_usage(stderr);
			return AG_EXIT_USAGE;
		}
	}
	if (i >= argc) {
		print_usage(stderr);
		return AG_EXIT_USAGE;
	}
	for (size_t n = 0; n < NR_COMMANDS; n++) {
		if (strcmp(argv[i], commands[n].name))
			continue;
		if (ag_instance_init(&c.inst, c.instance, state_dir, &err))
			return cli_fail("%s", err.msg);
		return commands[n].fn(&c, argc - i, argv + i);
	}
	fprintf(stderr, "agentgatectl: unknown command \"%s\"\n", argv[i]);
	print_usage(stderr);
	return AG_EXIT_USAGE;
}
