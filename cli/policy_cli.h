/* SPDX-License-Identifier: GPL-2.0 */
/* agentgatectl policy: what its subcommand files (cli/policy*.c) share. */
#ifndef AG_POLICY_CLI_H
#define AG_POLICY_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

#include "cli.h"
#include "policy.h"

struct ag_inventory;

/* The options of validate, test and explain, and their one operand. */
struct policy_opts {
	const char *policies, *entities, *request, *context, *context_file;
	const char *principal, *action, *resource;
	const char *positional;
	bool json;
};

/* Returns 0 to go on, 1 after --help, 2 on a usage error. */
int policy_opts(const char *cmd, const char *usage, int argc, char **argv, struct policy_opts *o);
/* A JSON file or argument that did not load, said on stderr. */
void policy_json_error(const char *cmd, const char *what, const char *where,
		       const json_error_t *jerr);
/*
 * The instance's tool inventory, read as it is: an instance without one
 * (no <state>/tools) leaves *out NULL, and its tools only their server.
 * Returns 0, or 2 after saying why the inventory cannot be read.
 */
int policy_inv_load(const struct ag_instance *in, const char *cmd, struct ag_inventory **out);
/* Loads policies and entities named on the command line or, failing that,
 * in the test file doc (paths relative to file).  0, or 2 after saying why. */
int policy_load_inputs(const char *cmd, const char *file, json_t *doc, const struct policy_opts *o,
		       struct ag_policy_set **set, struct ag_entities **ents);

/* The subcommands in the other files, with their usage. */
extern const char policy_usage_test[], policy_usage_explain[], policy_usage_simulate[];
int policy_test(struct ag_cli *c, int argc, char **argv);
int policy_explain(struct ag_cli *c, int argc, char **argv);
int policy_simulate(struct ag_cli *c, int argc, char **argv);

#endif
