/* SPDX-License-Identifier: GPL-2.0 */
#ifndef AG_CLI_H
#define AG_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "instance.h"

/* Exit codes: 0 success, 1 the operation failed, 2 bad usage. */
#define AG_EXIT_FAIL 1
#define AG_EXIT_USAGE 2

struct ag_cli {
	const char *instance;
	struct ag_instance inst;
};

/* Each command: argv[0] is its name; returns the exit code. */
int cmd_run(struct ag_cli *c, int argc, char **argv);
int cmd_status(struct ag_cli *c, int argc, char **argv);
int cmd_agents(struct ag_cli *c, int argc, char **argv);
int cmd_maps(struct ag_cli *c, int argc, char **argv);
int cmd_uninstall(struct ag_cli *c, int argc, char **argv);
int cmd_approvals(struct ag_cli *c, int argc, char **argv);
/* approve and deny */
int cmd_resolve(struct ag_cli *c, int argc, char **argv);
int cmd_upgrade(struct ag_cli *c, int argc, char **argv);
/* The commands made of subcommands, run by cli_dispatch. */
struct cli_table;
extern const struct cli_table cli_quota;  /* show, set, reset */
extern const struct cli_table cli_guard;  /* attach, detach, show */
extern const struct cli_table cli_tools;  /* the tool inventory: list, diff, approve, lock */
extern const struct cli_table cli_audit;  /* the audit log, offline: verify, tail, query, pubkey */
extern const struct cli_table cli_keys;	  /* minted assertions' signing keys: jwks, rotate, mint */
extern const struct cli_table cli_config; /* check: agentgate.json loaded as the daemon would */
extern const struct cli_table cli_policy; /* Cedar: validate, test, explain, simulate, reload, pull */
/* The instance's XDP guards as a JSON array (guard show, status). */
struct json_t;
struct json_t *guard_list_json(const struct ag_instance *in);

/* Prints "agentgatectl: MSG" on stderr and returns AG_EXIT_FAIL. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints a command's usage on stderr and returns AG_EXIT_USAGE. */
int cli_usage(const char *usage);
/* A decimal number from 0 to max for option --opt of command cmd. */
int cli_parse_u32(const char *cmd, const char *opt, const char *s, uint32_t max, uint32_t *out);
/* Who approves when --by is not given: SUDO_USER, else the invoking user. */
const char *cli_default_approver(void);
/*
 * The one option parser (cli/opts.c).  A command describes its options in
 * a table ending with { NULL }; --help/-h prints its usage on stdout.
 */
#define CLI_OPTS_MAX 16
#define CLI_OPT_BASE 256 /* getopt values of table entries: above any letter */
struct cli_opt {
	const char *name; /* --name; NULL: only -letter */
	bool arg;	  /* takes a value: --name V or --name=V */
	bool many;	  /* may repeat: every value is kept in cli_args.list */
	char letter;	  /* also -letter; 0: none */
};
/* Table entries: a flag, an option with a value, the end. */
#define CLI_FLAG(n)         \
	{                   \
		.name = (n) \
	}
#define CLI_VAL(n)                       \
	{                                \
		.name = (n), .arg = true \
	}
#define CLI_END              \
	{                    \
		.name = NULL \
	}
struct cli_spec {
	const char *cmd;	    /* what messages start with: "agentgatectl status" */
	const char *usage;	    /* printed by --help */
	const struct cli_opt *opts; /* NULL: none */
	uint32_t allowed;	    /* bit i: opts[i] applies here; 0: every one */
#define CLI_NONE (1u << 31)	    /* allowed: none of opts applies */
	bool stop;		    /* options end at the first operand */
	/* usage NULL: --help prints this table's; both NULL: the caller's after a 1 */
	const struct cli_table *table;
};
struct cli_args {
	const char *val[CLI_OPTS_MAX]; /* opts[i]'s (last) value; "" a flag; NULL absent */
	const char **list;	       /* the values of a `many` option, in order */
	size_t n_list;
	int ind; /* argv[ind] is the first operand */
};
/*
 * Parses argv (argv[0] the command's name) against sp.  0 to go on, 1
 * after --help, 2 on a usage error said on stderr.  Release a with
 * cli_args_free after a 0.
 */
int cli_parse(const struct cli_spec *sp, int argc, char **argv, struct cli_args *a);
void cli_args_free(struct cli_args *a);
/*
 * cli_parse of exactly one operand, argv[a->ind]; first: argv[1], before
 * the options (quota set AGENT --connect-rate N).  Returns as cli_parse,
 * with a released; a usage error prints sp's usage.
 */
int cli_parse_one(const struct cli_spec *sp, bool first, int argc, char **argv, struct cli_args *a);
/*
 * A subcommand: every command and subcommand has this signature.  A table
 * may have one default (name NULL), run with the command's own argv when
 * no subcommand is named (tools, tools --json), and aliases of --help
 * (fn NULL: audit help).
 */
struct cli_cmd {
	const char *name;
	int (*fn)(struct ag_cli *c, int argc, char **argv);
	/* "usage: agentgatectl CMD NAME ...": its first line and the indented
	 * ones after it are the synopsis the command's usage is made of. */
	const char *usage;
};
struct cli_table {
	const char *cmd; /* "quota": its name, what messages start with */
	const struct cli_cmd *cmds;
	size_t n;
	const char *about; /* after the synopses in the usage; NULL: none */
};
#define CLI_TABLE(name, tab, text)                                    \
	{                                                             \
		(name), (tab), sizeof(tab) / sizeof((tab)[0]), (text) \
	}
/*
 * Runs subcommand argv[1] of t, or its default.  Without one, or with one
 * not in t, says so (the usage, or the names of the subcommands) and
 * returns AG_EXIT_USAGE; --help prints the usage on stdout and returns 0.
 */
int cli_dispatch(const struct cli_table *t, struct ag_cli *c, int argc, char **argv);
/* t's usage on f: every subcommand's synopsis, then t->about. */
void cli_table_usage(FILE *f, const struct cli_table *t);
/* The names of t's subcommands joined by '|', in brackets when t has a
 * default ("[diff|approve|lock]"): what agentgatectl --help lists. */
void cli_table_names(FILE *f, const struct cli_table *t);
/* t's usage on stderr; returns AG_EXIT_USAGE. */
int cli_table_fail(const struct cli_table *t);
/* cli_parse of [--json] (json NULL: no option) and no operand; 1 after
 * --help, -1 on a usage error (said, with the usage). */
int cli_simple_opts(int argc, char **argv, const char *usage, bool *json);

#endif
