// SPDX-License-Identifier: GPL-2.0
/*
 * The command line of agentgatectl's subcommands, from tables: their
 * options (struct cli_spec) read with getopt_long, so every command
 * accepts --name V, --name=V, unique abbreviations and options after
 * operands alike and says the same thing about a bad one; and their
 * subcommands (struct cli_cmd), whose usage line is made from the table.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* The table ends at an entry with neither a name nor a letter. */
static bool opt_end(const struct cli_opt *o)
{
	return !o->name && !o->letter;
}

/* The getopt tables of sp: the long options, and "h" plus the letters. */
static int getopt_tables(const struct cli_spec *sp, struct option *lo, char *so, size_t *n)
{
	size_t k = 0, l = 1;

	if (sp->stop)
		so[k++] = '+';
	so[k++] = 'h';
	lo[0] = (struct option){ "help", no_argument, NULL, 'h' };
	for (*n = 0; sp->opts && !opt_end(&sp->opts[*n]); (*n)++) {
		const struct cli_opt *o = &sp->opts[*n];

		if (*n == CLI_OPTS_MAX)
			return -1;
		if (o->name)
			lo[l++] =
			    (struct option){ o->name, o->arg ? required_argument : no_argument,
					     NULL, CLI_OPT_BASE + (int)*n };
		if (o->letter) {
			so[k++] = o->letter;
			if (o->arg)
				so[k++] = ':';
		}
	}
	lo[l] = (struct option){ 0 };
	so[k] = '\0';
	return 0;
}

static int letter_index(const struct cli_spec *sp, size_t n, int c)
{
	for (size_t i = 0; i < n; i++)
		if (sp->opts[i].letter == c)
			return (int)i;
	return -1;
}

int cli_parse(const struct cli_spec *sp, int argc, char **argv, struct cli_args *a)
{
	struct option lo[CLI_OPTS_MAX + 2];
	char so[3 * CLI_OPTS_MAX + 3];
	size_t n;
	int c, li, i;

	memset(a, 0, sizeof(*a));
	if (getopt_tables(sp, lo, so, &n)) {
		fprintf(stderr, "%s: too many options in the command table\n", sp->cmd);
		return 2;
	}
	/* Repeated values: at most one per argument. */
	if (!(a->list = calloc((size_t)argc + 1, sizeof(*a->list)))) {
		fprintf(stderr, "%s: out of memory\n", sp->cmd);
		return 2;
	}
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, so, lo, &li)) != -1) {
		if (c == 'h') {
			fputs(sp->usage, stdout);
			cli_args_free(a);
			return 1;
		}
		i = c >= CLI_OPT_BASE ? c - CLI_OPT_BASE : letter_index(sp, n, c);
		if (i < 0 || c == '?' || c == ':') {
			fprintf(stderr, "%s: unknown or incomplete option %s; see --help\n",
				sp->cmd, argv[optind - 1]);
			cli_args_free(a);
			return 2;
		}
		if (sp->allowed && !(sp->allowed & (1u << i))) {
			if (sp->opts[i].name)
				fprintf(stderr, "%s: option --%s does not apply; see --help\n",
					sp->cmd, sp->opts[i].name);
			else
				fprintf(stderr, "%s: option -%c does not apply; see --help\n",
					sp->cmd, sp->opts[i].letter);
			cli_args_free(a);
			return 2;
		}
		a->val[i] = optarg ? optarg : "";
		if (sp->opts[i].many)
			a->list[a->n_list++] = optarg;
	}
	a->ind = optind;
	return 0;
}

void cli_args_free(struct cli_args *a)
{
	free(a->list);
	a->list = NULL;
	a->n_list = 0;
}

int cli_simple_opts(int argc, char **argv, const char *usage, bool *json)
{
	static const struct cli_opt opts[] = { CLI_FLAG("json"), CLI_END };
	char cmd[64];
	struct cli_spec sp = { .cmd = cmd, .usage = usage, .opts = json ? opts : NULL };
	struct cli_args a;
	int r;

	snprintf(cmd, sizeof(cmd), "agentgatectl %s", argv[0]);
	if ((r = cli_parse(&sp, argc, argv, &a)))
		return r == 1 ? 1 : -1;
	cli_args_free(&a);
	if (json)
		*json = a.val[0] != NULL;
	if (a.ind < argc) {
		fprintf(stderr, "%s: unexpected argument \"%s\"\n%s", cmd, argv[a.ind], usage);
		return -1;
	}
	return 0;
}

/* "usage: agentgatectl CMD a|b|c [--help]" from the table. */
static void dispatch_usage(FILE *f, const char *cmd, const struct cli_cmd *tab, size_t n)
{
	fprintf(f, "usage: agentgatectl %s ", cmd);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s%s", i ? "|" : "", tab[i].name);
	fputs(" [--help]\n", f);
}

int cli_dispatch(const char *cmd, const struct cli_cmd *tab, size_t n, struct ag_cli *c, int argc,
		 char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		dispatch_usage(argc < 2 ? stderr : stdout, cmd, tab, n);
		return argc < 2 ? AG_EXIT_USAGE : 0;
	}
	for (size_t i = 0; i < n; i++)
		if (!strcmp(argv[1], tab[i].name))
			return tab[i].fn(c, argc - 1, argv + 1);
	fprintf(stderr, "%s: unknown subcommand \"%s\"; use ", cmd, argv[1]);
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, "%s%s", tab[i].name, i + 2 < n ? ", " : i + 2 == n ? " or " : "\n");
	return AG_EXIT_USAGE;
}
