// SPDX-License-Identifier: GPL-2.0
/*
 * agentgatectl policy: its subcommands and what they share;
 * validate here, test and explain in policy_test.c, simulate in
 * policy_simulate.c, all offline; reload and pull ask the running daemon.
 */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "inventory.h"
#include "policy_cli.h"

static const char usage_validate[] =
    "usage: agentgatectl policy validate DIR [--entities FILE]\n"
    "Parse every *.cedar file in DIR (and the entities file, if given).\n"
    "Prints the number of policies, or one line FILE:LINE:COLUMN: ERROR; exits 1 on error.\n";

static const char usage_reload[] =
    "usage: agentgatectl [--instance NAME] policy reload [--json]\n"
    "Make the running agentgated re-read the policy files and entities named by the\n"
    "\"policy\" key of its configuration.  A set that fails to load does not replace the\n"
    "running one: the error (FILE:LINE:COLUMN: ...) is printed and the exit status is 1.\n"
    "Prints the new set's digest and number of policies.\n";

static const char usage_pull[] =
    "usage: agentgatectl [--instance NAME] policy pull [--json]\n"
    "Make the running agentgated poll its \"policy_source\" git repository now and wait for\n"
    "the outcome: the new commit in force, the same commit unchanged, or the commit refused\n"
    "(unsigned, signed by a key not in allowed_signers, a policy that does not load, a failed\n"
    "fetch) with the reason, and exit status 1.  The running set stays on a refusal.\n";

enum {
	P_POLICIES,
	P_ENTITIES,
	P_REQUEST,
	P_CONTEXT,
	P_CONTEXT_FILE,
	P_PRINCIPAL,
	P_ACTION,
	P_RESOURCE,
	P_JSON
};

int policy_opts(const char *cmd, const char *usage, int argc, char **argv, struct policy_opts *o)
{
	static const struct cli_opt opts[] = {
		[P_POLICIES] = CLI_VAL("policies"),
		[P_ENTITIES] = CLI_VAL("entities"),
		[P_REQUEST] = CLI_VAL("request"),
		[P_CONTEXT] = CLI_VAL("context"),
		[P_CONTEXT_FILE] = CLI_VAL("context-file"),
		[P_PRINCIPAL] = CLI_VAL("principal"),
		[P_ACTION] = CLI_VAL("action"),
		[P_RESOURCE] = CLI_VAL("resource"),
		[P_JSON] = CLI_FLAG("json"),
		CLI_END,
	};
	char who[64];
	const struct cli_spec sp = { .cmd = who, .usage = usage, .opts = opts };
	struct cli_args a;
	int r;

	snprintf(who, sizeof(who), "policy %s", cmd);
	if ((r = cli_parse(&sp, argc, argv, &a)))
		return r;
	cli_args_free(&a);
	*o = (struct policy_opts){
		.policies = a.val[P_POLICIES],
		.entities = a.val[P_ENTITIES],
		.request = a.val[P_REQUEST],
		.context = a.val[P_CONTEXT],
		.context_file = a.val[P_CONTEXT_FILE],
		.principal = a.val[P_PRINCIPAL],
		.action = a.val[P_ACTION],
		.resource = a.val[P_RESOURCE],
		.json = a.val[P_JSON] != NULL,
	};
	if (a.ind < argc)
		o->positional = argv[a.ind++];
	if (a.ind < argc) {
		fprintf(stderr, "policy %s: unexpected argument \"%s\"; see --help\n", cmd,
			argv[a.ind]);
		return 2;
	}
	return 0;
}

static int policy_validate(struct ag_cli *cli, int argc, char **argv)
{
	struct ag_policy_error err;
	struct ag_policy_set *set;
	struct policy_opts o;
	int r = policy_opts("validate", usage_validate, argc, argv, &o);

	if (r)
		return r == 1 ? 0 : 2;
	if (!o.positional) {
		fprintf(stderr, "policy validate: missing policy directory; usage: agentgatectl "
				"policy validate DIR\n");
		return 2;
	}
	set = ag_policy_load_dir(o.positional, &err);
	if (!set) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	if (o.entities) {
		struct ag_entities *ents = ag_entities_load_file(o.entities, &err);

		if (!ents) {
			fprintf(stderr, "%s\n", err.msg);
			ag_policy_set_free(set);
			return 1;
		}
		ag_entities_free(ents);
	}
	printf("%s: %zu policies OK\n", o.positional, ag_policy_count(set));
	ag_policy_set_free(set);
	return 0;
}

/* Path p relative to the directory of file, unless absolute. */
static char *relative_to(const char *file, const char *p)
{
	char *copy, *out = NULL;

	if (p[0] == '/')
		return strdup(p);
	copy = strdup(file);
	if (copy && asprintf(&out, "%s/%s", dirname(copy), p) < 0)
		out = NULL;
	free(copy);
	return out;
}

/* jansson reports an unreadable file with line -1 and its own wording. */
void policy_json_error(const char *cmd, const char *what, const char *where,
		       const json_error_t *jerr)
{
	if (jerr->line < 0)
		fprintf(stderr, "policy %s: %s: %s\n", cmd, what, jerr->text);
	else
		fprintf(stderr, "policy %s: %s %s:%d:%d: %s; fix the JSON\n", cmd, what, where,
			jerr->line, jerr->column, jerr->text);
}

/*
 * The instance's tool inventory, read as it is: an instance without one
 * (no <state>/tools) leaves *out NULL, and its tools only their server.
 * Returns 0, or 2 after saying why the inventory cannot be read.
 */
int policy_inv_load(const struct ag_instance *in, const char *cmd, struct ag_inventory **out)
{
	char dir[AG_PATH_MAX + 8];
	struct ag_err err;
	struct stat st;

	*out = NULL;
	snprintf(dir, sizeof(dir), "%s/tools", in->state_dir);
	if (stat(dir, &st))
		return 0;
	if (!ag_inventory_open(dir, out, &err))
		return 0;
	fprintf(stderr, "policy %s: %s; check --state-dir or --instance\n", cmd, err.msg);
	return 2;
}

/* Loads policies and entities named on the command line or, failing that, in
 * the test file. */
int policy_load_inputs(const char *cmd, const char *file, json_t *doc, const struct policy_opts *o,
		       struct ag_policy_set **set, struct ag_entities **ents)
{
	const char *pol = o->policies, *ent = o->entities;
	char *pol_path = NULL, *ent_path = NULL;
	struct ag_policy_error err;
	int ret = 2;

	if (!pol && json_is_string(json_object_get(doc, "policies")))
		pol = pol_path =
		    relative_to(file, json_string_value(json_object_get(doc, "policies")));
	if (!ent && json_is_string(json_object_get(doc, "entities")))
		ent = ent_path =
		    relative_to(file, json_string_value(json_object_get(doc, "entities")));
	if (!pol) {
		fprintf(stderr, "policy %s: no policy directory; pass --policies DIR\n", cmd);
		goto out;
	}
	*set = ag_policy_load_dir(pol, &err);
	if (!*set) {
		fprintf(stderr, "policy %s: %s\n", cmd, err.msg);
		goto out;
	}
	if (ent) {
		*ents = ag_entities_load_file(ent, &err);
		if (!*ents) {
			fprintf(stderr, "policy %s: %s\n", cmd, err.msg);
			goto out;
		}
	}
	ret = 0;
out:
	free(pol_path);
	free(ent_path);
	return ret;
}

static int policy_reload(struct ag_cli *cli, int argc, char **argv)
{
	const struct ag_instance *in = &cli->inst;
	json_t *req, *resp = NULL;
	struct ag_err err = { 0 };
	bool json = false;
	int r;

	if ((r = cli_simple_opts(argc, argv, usage_reload, &json)))
		return r > 0 ? 0 : AG_EXIT_USAGE;
	if (!(req = json_pack("{s:s}", "cmd", "policy_reload"))) {
		fprintf(stderr, "policy reload: out of memory\n");
		return AG_EXIT_FAIL;
	}
	r = ag_ctl_call(in, req, &resp, &err);
	json_decref(req);
	if (r) {
		/* The daemon's message already names file:line:column. */
		if (json && (resp = json_pack("{s:b,s:s}", "ok", 0, "error", err.msg))) {
			json_dumpf(resp, stdout, JSON_COMPACT);
			putchar('\n');
			json_decref(resp);
		}
		fprintf(stderr, "policy reload: %s\n", err.msg);
		return AG_EXIT_FAIL;
	}
	if (json) {
		json_dumpf(resp, stdout, JSON_COMPACT);
		putchar('\n');
	} else {
		printf("policy reloaded: %lld policies, digest %s\n",
		       (long long)json_integer_value(json_object_get(resp, "policies")),
		       json_string_value(json_object_get(resp, "digest")) ?: "?");
	}
	json_decref(resp);
	return 0;
}

#define PULL_WAIT_MS 90000 /* beyond the daemon's bound on one poll (60 s) */

/* The daemon's "policy_source" state once it answered pull n; NULL on error or timeout. */
static json_t *pull_wait(const struct ag_instance *in, json_int_t n, struct ag_err *err)
{
	json_t *req = json_pack("{s:s}", "cmd", "policy_source"), *resp = NULL, *src;

	for (int waited = 0; req && waited < PULL_WAIT_MS; waited += 100) {
		if (ag_ctl_call(in, req, &resp, err))
			break;
		src = json_object_get(resp, "policy_source");
		if (json_integer_value(json_object_get(src, "pulls_done")) >= n) {
			json_incref(src);
			json_decref(resp);
			json_decref(req);
			return src;
		}
		json_decref(resp);
		resp = NULL;
		usleep(100 * 1000);
	}
	if (!err->msg[0])
		ag_errf(err, ETIMEDOUT, "no outcome within %d s", PULL_WAIT_MS / 1000);
	json_decref(req);
	return NULL;
}

static int policy_pull(struct ag_cli *cli, int argc, char **argv)
{
	json_t *req, *resp = NULL, *src, *last;
	struct ag_err err = { 0 };
	const char *stage, *commit;
	bool json = false;
	int r;

	if ((r = cli_simple_opts(argc, argv, usage_pull, &json)))
		return r > 0 ? 0 : AG_EXIT_USAGE;
	if (!(req = json_pack("{s:s}", "cmd", "policy_pull"))) {
		fprintf(stderr, "policy pull: out of memory\n");
		return AG_EXIT_FAIL;
	}
	r = ag_ctl_call(&cli->inst, req, &resp, &err);
	json_decref(req);
	src = r ? NULL
		: pull_wait(&cli->inst, json_integer_value(json_object_get(resp, "pull")), &err);
	json_decref(resp);
	if (!src) {
		fprintf(stderr, "policy pull: %s\n", err.msg);
		return AG_EXIT_FAIL;
	}
	last = json_object_get(src, "last");
	stage = json_string_value(json_object_get(last, "stage")) ?: "?";
	commit = json_string_value(json_object_get(last, "commit")) ?: "-";
	r = json_is_true(json_object_get(last, "ok")) ? 0 : AG_EXIT_FAIL;
	if (json) {
		json_dumpf(src, stdout, JSON_COMPACT);
		putchar('\n');
	} else if (!r) {
		printf("policy pull: commit %s in force%s\n", commit,
		       strcmp(stage, "unchanged") ? "" : " (unchanged)");
	} else {
		fprintf(stderr,
			"policy pull: commit %s refused at %s: %s; the running set (%s) stays\n",
			commit, stage,
			json_string_value(json_object_get(last, "error")) ?: "no reason given",
			json_string_value(json_object_get(src, "commit")) ?: "none");
	}
	json_decref(src);
	return r;
}

/* The subcommands; reload and pull talk to the daemon, the others work on files. */
static const struct cli_cmd subcommands[] = {
	{ "validate", policy_validate, usage_validate },
	{ "test", policy_test, policy_usage_test },
	{ "explain", policy_explain, policy_usage_explain },
	{ "simulate", policy_simulate, policy_usage_simulate },
	{ "reload", policy_reload, usage_reload },
	{ "pull", policy_pull, usage_pull },
};

const struct cli_table cli_policy = CLI_TABLE("policy", subcommands, NULL);
