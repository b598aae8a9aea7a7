// SPDX-License-Identifier: GPL-2.0
/*
 * The command line of agentgatectl's subcommands, from tables: their
 * options (struct cli_spec) read with getopt_long, so every command
 * accepts --name V, --name=V, unique abbreviations and options after
 * operands alike and says the same thing about a bad one; and their
 * subcommands (struct cli_table), whose usage is made from the table: each
 * subcommand's synopsis, and the list of names agentgatectl --help shows.
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
			if (sp->usage)
				fputs(sp->usage, stdout);
			else if (sp->table)
				cli_table_usage(stdout, sp->table);
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

/* sp's usage on stderr, for a usage error. */
static int spec_usage_error(const struct cli_spec *sp)
{
	if (sp->usage)
		fputs(sp->usage, stderr);
	else if (sp->table)
		cli_table_usage(stderr, sp->table);
	return AG_EXIT_USAGE;
}

int cli_parse_one(const struct cli_spec *sp, bool first, int argc, char **argv, struct cli_args *a)
{
	int skip = first ? 1 : 0, r;

	if (first && (argc < 2 || argv[1][0] == '-'))
		return spec_usage_error(sp);
	/* first: parsed as if the operand were the command, so none may follow. */
	if ((r = cli_parse(sp, argc - skip, argv + skip, a)))
		return r;
	cli_args_free(a);
	if (a->ind + skip + !first != argc)
		return spec_usage_error(sp);
	a->ind = first ? 1 : a->ind;
	return 0;
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

/* Listed: a named subcommand that is not an alias of --help. */
static bool listed(const struct cli_cmd *e)
{
	return e->name && e->fn;
}

/* The synopsis of usage: its first line and the indented lines after it. */
static void synopsis(FILE *f, const char *usage, bool first)
{
	static const char head[] = "usage: ";
	const char *p = usage, *nl;

	if (!first && !strncmp(p, head, sizeof(head) - 1)) {
		fprintf(f, "%*s", (int)sizeof(head) - 1, "");
		p += sizeof(head) - 1;
	}
	do {
		nl = strchr(p, '\n');
		fprintf(f, "%.*s\n", nl ? (int)(nl - p) : (int)strlen(p), p);
		p = nl ? nl + 1 : "";
	} while (*p == ' ');
}

void cli_table_usage(FILE *f, const struct cli_table *t)
{
	bool first = true;

	for (size_t i = 0; i < t->n; i++) {
		if (!t->cmds[i].usage)
			continue;
		synopsis(f, t->cmds[i].usage, first);
		first = false;
	}
	if (t->about)
		fputs(t->about, f);
}

int cli_table_fail(const struct cli_table *t)
{
	cli_table_usage(stderr, t);
	return AG_EXIT_USAGE;
}

/* t's listed names, between sep and, before the last, last. */
static void names(FILE *f, const struct cli_table *t, const char *sep, const char *last)
{
	size_t n = 0, k = 0;

	for (size_t i = 0; i < t->n; i++)
		n += listed(&t->cmds[i]);
	for (size_t i = 0; i < t->n; i++)
		if (listed(&t->cmds[i]))
			fprintf(f, "%s%s", k++ ? (k == n ? last : sep) : "", t->cmds[i].name);
}

void cli_table_names(FILE *f, const struct cli_table *t)
{
	bool def = false;

	for (size_t i = 0; i < t->n; i++)
		def |= !t->cmds[i].name;
	fputs(def ? "[" : "", f);
	names(f, t, "|", "|");
	fputs(def ? "]" : "", f);
}

int cli_dispatch(const struct cli_table *t, struct ag_cli *c, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : NULL;
	bool help = sub && (!strcmp(sub, "--help") || !strcmp(sub, "-h"));
	const struct cli_cmd *def = NULL;

	for (size_t i = 0; i < t->n; i++) {
		const struct cli_cmd *e = &t->cmds[i];

		if (!e->name)
			def = e;
		else if (help || !sub || strcmp(sub, e->name))
			continue;
		else if (!e->fn) /* an alias of --help */
			help = true;
		else
			return e->fn(c, argc - 1, argv + 1);
	}
	if (help) {
		cli_table_usage(stdout, t);
		return 0;
	}
	/* The default reads the command's own options: tools --json. */
	if (def && (!sub || sub[0] == '-'))
		return def->fn(c, argc, argv);
	if (!sub)
		return cli_table_fail(t);
	fprintf(stderr, "agentgatectl %s: unknown subcommand \"%s\"; use ", t->cmd, sub);
	names(stderr, t, ", ", " or ");
	fputc('\n', stderr);
	return AG_EXIT_USAGE;
}
