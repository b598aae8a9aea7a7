// SPDX-License-Identifier: GPL-2.0
/*
 * The option parser of agentgatectl's subcommands: a table of options
 * (struct cli_opt) read with getopt_long, so every command accepts
 * --name V, --name=V, unique abbreviations and options after operands
 * alike, and says the same thing about a bad one.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_parse(const char *cmd, const char *usage, const struct cli_opt *opts, int argc, char **argv,
	      struct cli_args *a)
{
	struct option longopts[CLI_OPTS_MAX + 2] = { { "help", no_argument, NULL, 'h' } };
	size_t n = 0;
	int c, li;

	memset(a, 0, sizeof(*a));
	for (; opts && opts[n].name; n++) {
		if (n == CLI_OPTS_MAX) {
			fprintf(stderr, "%s: too many options in the command table\n", cmd);
			return 2;
		}
		longopts[n + 1] =
		    (struct option){ opts[n].name, opts[n].arg ? required_argument : no_argument,
				     NULL, 256 + (int)n };
	}
	/* Repeated values: at most one per argument. */
	if (!(a->list = calloc((size_t)argc + 1, sizeof(*a->list)))) {
		fprintf(stderr, "%s: out of memory\n", cmd);
		return 2;
	}
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", longopts, &li)) != -1) {
		if (c == 'h') {
			fputs(usage, stdout);
			cli_args_free(a);
			return 1;
		}
		if (c < 256) {
			fprintf(stderr, "%s: unknown or incomplete option %s; see --help\n", cmd,
				argv[optind - 1]);
			cli_args_free(a);
			return 2;
		}
		c -= 256;
		a->val[c] = optarg ? optarg : "";
		if (opts[c].many)
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
