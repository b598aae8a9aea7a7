// SPDX-License-Identifier: GPL-2.0
/*
 * agentgatectl policy validate|test|explain|simulate: offline work on a
 * policy directory, without a running daemon; policy reload: the running
 * daemon's.  Offline decisions name a governed target's entity as the
 * daemon does (ag_policy_target_entity), with a tool's attributes from the
 * instance's tool inventory.  The test file format and the
 * language are documented in agentgate-policy(5).
 */
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "audit.h"
#include "cli.h"
#include "ctl.h"
#include "decision.h"
#include "delegation.h"
#include "inventory.h"
#include "policy.h"
#include "policy_request.h"

static const char usage_validate[] =
    "usage: agentgatectl policy validate DIR [--entities FILE]\n"
    "Parse every *.cedar file in DIR (and the entities file, if given).\n"
    "Prints the number of policies, or one line FILE:LINE:COLUMN: ERROR; exits 1 on error.\n";

static const char usage_test[] =
    "usage: agentgatectl policy test FILE [--policies DIR] [--entities FILE]\n"
    "Run the requests of a JSON test file and compare the decisions with the expected ones.\n"
    "--policies and --entities override the \"policies\" and \"entities\" paths of the file\n"
    "(which are relative to the test file).  Prints a line per failing case and a summary;\n"
    "exits 1 if any case fails, 2 if the test cannot run.  See agentgate-policy(5).\n";

static const char usage_explain[] =
    "usage: agentgatectl policy explain --policies DIR [--entities FILE] [--json]\n"
    "         (--request FILE | --principal REF --action REF --resource REF\n"
    "          [--context JSON | --context-file FILE])\n"
    "Decide one request and show, for every policy, whether its scope matched, whether\n"
    "its conditions held, or which error skipped it.  REF is Type::\"id\"; a request file\n"
    "is {\"principal\": REF, \"action\": REF, \"resource\": REF, \"context\": {...}}.\n";

static const char usage_simulate[] =
    "usage: agentgatectl policy simulate --policies DIR|FILE... [--entities FILE] [--json]\n"
    "         AUDIT_LOG...\n"
    "Replay the decision records of an audit log against a candidate policy set (one\n"
    "directory, or policy files in the order given) and print every decision that would\n"
    "change: seq, ts, agent, action server/name: recorded -> simulated by POLICIES: reason.\n"
    "A call whose arguments were hashed is listed as \"undetermined: arguments not\n"
    "recorded\" when a policy that could match it reads context.args.  A single AUDIT_LOG\n"
    "stands for its rotated series.  Exits 0 when nothing would change, 1 when something\n"
    "would or is undetermined, 2 when it cannot run.\n";

static const char usage_reload[] =
    "usage: agentgatectl [--instance NAME] policy reload [--json]\n"
    "Make the running agentgated re-read the policy files and entities named by the\n"
    "\"policy\" key of its configuration.  A set that fails to load does not replace the\n"
    "running one: the error (FILE:LINE:COLUMN: ...) is printed and the exit status is 1.\n"
    "Prints the new set's digest and number of policies.\n";

static const char usage_policy[] =
    "usage: agentgatectl policy validate|test|explain|simulate|reload [--help]\n";

struct opts {
	const char *policies, *entities, *request, *context, *context_file;
	const char *principal, *action, *resource;
	const char *positional;
	bool json;
};

enum {
	O_POLICIES = 256,
	O_ENTITIES,
	O_REQUEST,
	O_CONTEXT,
	O_CONTEXT_FILE,
	O_PRINCIPAL,
	O_ACTION,
	O_RESOURCE,
	O_JSON
};

/* Returns 0 to go on, 1 after --help, 2 on a usage error. */
static int parse_opts(const char *cmd, const char *usage, int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "policies", required_argument, NULL, O_POLICIES },
		{ "entities", required_argument, NULL, O_ENTITIES },
		{ "request", required_argument, NULL, O_REQUEST },
		{ "context", required_argument, NULL, O_CONTEXT },
		{ "context-file", required_argument, NULL, O_CONTEXT_FILE },
		{ "principal", required_argument, NULL, O_PRINCIPAL },
		{ "action", required_argument, NULL, O_ACTION },
		{ "resource", required_argument, NULL, O_RESOURCE },
		{ "json", no_argument, NULL, O_JSON },
		{ 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(usage, stdout);
			return 1;
		case O_POLICIES:
			o->policies = optarg;
			break;
		case O_ENTITIES:
			o->entities = optarg;
			break;
		case O_REQUEST:
			o->request = optarg;
			break;
		case O_CONTEXT:
			o->context = optarg;
			break;
		case O_CONTEXT_FILE:
			o->context_file = optarg;
			break;
		case O_PRINCIPAL:
			o->principal = optarg;
			break;
		case O_ACTION:
			o->action = optarg;
			break;
		case O_RESOURCE:
			o->resource = optarg;
			break;
		case O_JSON:
			o->json = true;
			break;
		default:
			fprintf(stderr, "policy %s: unknown or incomplete option %s; see --help\n",
				cmd, argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc)
		o->positional = argv[optind++];
	if (optind < argc) {
		fprintf(stderr, "policy %s: unexpected argument \"%s\"; see --help\n", cmd,
			argv[optind]);
		return 2;
	}
	return 0;
}

static int cmd_validate(const struct ag_instance *in, int argc, char **argv)
{
	struct ag_policy_error err;
	struct ag_policy_set *set;
	struct opts o;
	int r = parse_opts("validate", usage_validate, argc, argv, &o);

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

/* A reference is either the string Type::"id" or {"type": .., "id": ..}. */
static int ref_from_json(json_t *j, const char *what, struct ag_entity_ref *ref, char *msg,
			 size_t len)
{
	struct ag_policy_error err;

	if (json_is_string(j)) {
		if (!ag_entity_ref_parse(json_string_value(j), ref, &err))
			return 0;
		snprintf(msg, len, "%s: %s", what, err.msg);
		return -1;
	}
	if (json_is_object(j) && json_is_string(json_object_get(j, "type")) &&
	    json_is_string(json_object_get(j, "id"))) {
		ref->type = strdup(json_string_value(json_object_get(j, "type")));
		ref->id = strdup(json_string_value(json_object_get(j, "id")));
		if (ref->type && ref->id)
			return 0;
		free((char *)ref->type);
		free((char *)ref->id);
		snprintf(msg, len, "%s: out of memory", what);
		return -1;
	}
	snprintf(msg, len, "%s must be Type::\"id\" or {\"type\": .., \"id\": ..}", what);
	return -1;
}

static void request_free(struct ag_policy_request *req)
{
	struct ag_entity_ref *refs[] = { &req->principal, &req->action, &req->resource };

	for (size_t i = 0; i < 3; i++) {
		free((char *)refs[i]->type);
		free((char *)refs[i]->id);
	}
	json_decref(req->context);
	memset(req, 0, sizeof(*req));
}

/* Fills req from a JSON object with principal/action/resource/context. */
static int request_from_json(json_t *j, struct ag_policy_request *req, char *msg, size_t len)
{
	static const char *const keys[] = { "principal", "action", "resource" };
	struct ag_entity_ref *refs[] = { &req->principal, &req->action, &req->resource };
	json_t *ctx = json_object_get(j, "context");

	memset(req, 0, sizeof(*req));
	for (size_t i = 0; i < 3; i++)
		if (ref_from_json(json_object_get(j, keys[i]), keys[i], refs[i], msg, len))
			return -1;
	if (ctx && !json_is_object(ctx)) {
		snprintf(msg, len, "context must be a JSON object");
		return -1;
	}
	req->context = json_incref(ctx);
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

static bool ids_match(json_t *want, const struct ag_policy_result *res)
{
	size_t i;
	json_t *v;

	if (json_array_size(want) != res->n_determining)
		return false;
	json_array_foreach(want, i,
			   v) if (!json_is_string(v) ||
				  strcmp(json_string_value(v), res->determining[i])) return false;
	return true;
}

static void print_ids(FILE *f, const struct ag_policy_result *res)
{
	for (size_t i = 0; i < res->n_determining; i++)
		fprintf(f, "%s%s", i ? "," : "", res->determining[i]);
	if (!res->n_determining)
		fputs("none", f);
}

/* jansson reports an unreadable file with line -1 and its own wording. */
static void print_json_error(const char *cmd, const char *what, const char *where,
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
static int inv_load(const struct ag_instance *in, const char *cmd, struct ag_inventory **out)
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

/*
 * ag_policy_evaluate_with the entity the daemon would build for req's
 * resource when it names a governed target (Tool::"server/name"...), so
 * that an offline answer is the live one.
 */
static int evaluate(const struct ag_policy_set *set, const struct ag_entities *ents,
		    const struct ag_inventory *inv, const struct ag_policy_request *req,
		    struct ag_policy_result *res, enum ag_policy_status *st,
		    struct ag_policy_error *err)
{
	char server[AG_INV_SERVER_MAX + 1];
	enum ag_policy_target t;
	const char *name;
	json_t *ent = NULL;
	int ret;

	if (!ag_policy_target_of(&req->resource, &t, server, sizeof(server), &name)) {
		ent = ag_policy_target_entity(t, server, name,
					      ag_inventory_definition(inv, server, name));
		if (!ent) {
			snprintf(err->msg, sizeof(err->msg), "policy request: out of memory");
			return -1;
		}
	}
	ret = ag_policy_evaluate_with(set, ents, req, ent, res, st, err);
	json_decref(ent);
	return ret;
}

/* Returns 1 if the case passed, 0 if it failed, -1 if it is malformed (printed). */
static int run_test_case(const struct ag_policy_set *set, const struct ag_entities *ents,
			 const struct ag_inventory *inv, json_t *c, size_t idx,
			 struct ag_policy_result *res)
{
	const char *name = json_string_value(json_object_get(c, "name"));
	const char *want = json_string_value(json_object_get(c, "decision"));
	json_t *want_ids = json_object_get(c, "policies");
	const char *want_reason = json_string_value(json_object_get(c, "reason"));
	struct ag_policy_request req;
	struct ag_policy_error err;
	char label[64], msg[600];
	int ok;

	if (!name) {
		snprintf(label, sizeof(label), "case %zu", idx);
		name = label;
	}
	if (!want || (strcmp(want, "allow") && strcmp(want, "deny") && strcmp(want, "escalate"))) {
		printf("FAIL %s: \"decision\" must be \"allow\", \"deny\" or \"escalate\"\n", name);
		return -1;
	}
	if (want_ids && !json_is_array(want_ids)) {
		printf("FAIL %s: \"policies\" must be an array of policy ids\n", name);
		return -1;
	}
	if (request_from_json(c, &req, msg, sizeof(msg))) {
		printf("FAIL %s: %s\n", name, msg);
		request_free(&req);
		return -1;
	}
	if (evaluate(set, ents, inv, &req, res, NULL, &err)) {
		printf("FAIL %s: %s\n", name, err.msg);
		request_free(&req);
		return -1;
	}
	request_free(&req);
	ok = !strcmp(ag_policy_decision_name(res->decision), want) &&
	     (!want_ids || ids_match(want_ids, res)) &&
	     (!want_reason || (res->escalate_reason && !strcmp(want_reason, res->escalate_reason)));
	if (!ok) {
		printf("FAIL %s: expected %s, got %s (policies: ", name, want,
		       ag_policy_decision_name(res->decision));
		print_ids(stdout, res);
		if (res->escalate_reason)
			printf("; reason: %s", res->escalate_reason);
		for (size_t i = 0; i < res->n_diags; i++)
			printf("; error in %s: %s", res->diags[i].policy_id, res->diags[i].msg);
		printf(")\n");
	}
	return ok;
}

/* Loads policies and entities named on the command line or, failing that, in
 * the test file. */
static int load_inputs(const char *cmd, const char *file, json_t *doc, const struct opts *o,
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

static int cmd_test(const struct ag_instance *in, int argc, char **argv)
{
	struct ag_policy_set *set = NULL;
	struct ag_entities *ents = NULL;
	struct ag_inventory *inv = NULL;
	struct ag_policy_result res;
	size_t i, passed = 0, failed = 0;
	json_error_t jerr;
	json_t *doc, *cases, *c;
	struct opts o;
	int r = parse_opts("test", usage_test, argc, argv, &o);

	if (r)
		return r == 1 ? 0 : 2;
	if (!o.positional) {
		fprintf(stderr, "policy test: missing test file; usage: agentgatectl policy test "
				"FILE [--policies DIR] [--entities FILE]\n");
		return 2;
	}
	doc = json_load_file(o.positional, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc) {
		print_json_error("test", "test file", o.positional, &jerr);
		return 2;
	}
	cases = json_object_get(doc, "cases");
	if (!json_is_array(cases)) {
		fprintf(stderr, "policy test: %s: expected an object with a \"cases\" array\n",
			o.positional);
		json_decref(doc);
		return 2;
	}
	r = load_inputs("test", o.positional, doc, &o, &set, &ents);
	if (!r)
		r = inv_load(in, "test", &inv);
	ag_policy_result_init(&res);
	json_array_foreach(cases, i, c)
	{
		if (r)
			break;
		if (run_test_case(set, ents, inv, c, i, &res) == 1)
			passed++;
		else
			failed++;
	}
	if (!r) {
		printf("%zu passed, %zu failed\n", passed, failed);
		r = failed ? 1 : 0;
	}
	ag_policy_result_fini(&res);
	ag_policy_set_free(set);
	ag_entities_free(ents);
	ag_inventory_free(inv);
	json_decref(doc);
	return r;
}

static json_t *load_json_arg(const char *cmd, const char *what, const char *text, const char *file)
{
	json_error_t jerr;
	json_t *j = file ? json_load_file(file, 0, &jerr) : json_loads(text, 0, &jerr);

	if (!j)
		print_json_error(cmd, what, file ? file : "argument", &jerr);
	return j;
}

static int explain_request(const struct opts *o, struct ag_policy_request *req)
{
	char msg[600];
	json_t *j;
	int ret;

	if (o->request) {
		j = load_json_arg("explain", "request", NULL, o->request);
	} else {
		if (!o->principal || !o->action || !o->resource) {
			fprintf(stderr,
				"policy explain: give --request FILE or all of --principal, "
				"--action and --resource\n");
			return -1;
		}
		j = json_pack("{ssssss}", "principal", o->principal, "action", o->action,
			      "resource", o->resource);
		if (j && (o->context || o->context_file)) {
			json_t *ctx =
			    load_json_arg("explain", "context", o->context, o->context_file);

			if (!ctx) {
				json_decref(j);
				return -1;
			}
			json_object_set_new(j, "context", ctx);
		}
	}
	if (!j)
		return -1;
	ret = request_from_json(j, req, msg, sizeof(msg));
	if (ret)
		fprintf(stderr, "policy explain: %s\n", msg);
	json_decref(j);
	return ret;
}

static const char *status_name(enum ag_policy_status st)
{
	switch (st) {
	case AG_POLICY_SCOPE_MISMATCH:
		return "scope does not match";
	case AG_POLICY_CONDITION_FALSE:
		return "condition false";
	case AG_POLICY_SATISFIED:
		return "satisfied";
	default:
		return "error";
	}
}

static const char *diag_for(const struct ag_policy_result *res, const char *id)
{
	for (size_t i = 0; i < res->n_diags; i++)
		if (!strcmp(res->diags[i].policy_id, id))
			return res->diags[i].msg;
	return NULL;
}

static void explain_text(const struct ag_policy_set *set, const struct ag_policy_result *res,
			 const enum ag_policy_status *st)
{
	printf("decision: %s\n", ag_policy_decision_name(res->decision));
	if (res->escalate_reason)
		printf("reason: %s\n", res->escalate_reason);
	printf("determined by: ");
	print_ids(stdout, res);
	printf("%s\n", res->n_determining ? "" : " (default deny)");
	for (size_t i = 0; i < ag_policy_count(set); i++) {
		const char *id = ag_policy_id(set, i);
		const char *diag = st[i] == AG_POLICY_ERROR ? diag_for(res, id) : NULL;

		printf("  %-40s %-6s %s%s%s\n", id,
		       ag_policy_effect(set, i) == AG_PERMIT ? "permit" : "forbid",
		       status_name(st[i]), diag ? ": " : "", diag ? diag : "");
	}
}

static void explain_json(const struct ag_policy_set *set, const struct ag_policy_result *res,
			 const enum ag_policy_status *st)
{
	json_t *out = json_object(), *det = json_array(), *pols = json_array();

	for (size_t i = 0; i < res->n_determining; i++)
		json_array_append_new(det, json_string(res->determining[i]));
	for (size_t i = 0; i < ag_policy_count(set); i++) {
		const char *id = ag_policy_id(set, i);
		json_t *p = json_pack("{ssssss}", "id", id, "effect",
				      ag_policy_effect(set, i) == AG_PERMIT ? "permit" : "forbid",
				      "status", status_name(st[i]));

		if (p && st[i] == AG_POLICY_ERROR && diag_for(res, id))
			json_object_set_new(p, "error", json_string(diag_for(res, id)));
		json_array_append_new(pols, p);
	}
	json_object_set_new(out, "decision", json_string(ag_policy_decision_name(res->decision)));
	json_object_set_new(out, "reason",
			    res->escalate_reason ? json_string(res->escalate_reason) : json_null());
	json_object_set_new(out, "determining", det);
	json_object_set_new(out, "policies", pols);
	json_dumpf(out, stdout, JSON_INDENT(2));
	putchar('\n');
	json_decref(out);
}

static int cmd_explain(const struct ag_instance *in, int argc, char **argv)
{
	struct ag_policy_request req = { 0 };
	struct ag_policy_set *set = NULL;
	struct ag_entities *ents = NULL;
	struct ag_inventory *inv = NULL;
	enum ag_policy_status *st = NULL;
	struct ag_policy_result res;
	struct ag_policy_error err;
	struct opts o;
	int r = parse_opts("explain", usage_explain, argc, argv, &o);

	if (r)
		return r == 1 ? 0 : 2;
	ag_policy_result_init(&res);
	if (o.positional) {
		fprintf(stderr, "policy explain: unexpected argument \"%s\"; see --help\n",
			o.positional);
		r = 2;
		goto out;
	}
	r = 2;
	if (load_inputs("explain", ".", NULL, &o, &set, &ents) || explain_request(&o, &req) ||
	    inv_load(in, "explain", &inv))
		goto out;
	st = calloc(ag_policy_count(set) + 1, sizeof(*st));
	if (!st) {
		fprintf(stderr, "policy explain: out of memory\n");
		goto out;
	}
	if (evaluate(set, ents, inv, &req, &res, st, &err)) {
		fprintf(stderr, "policy explain: %s\n", err.msg);
		goto out;
	}
	if (o.json)
		explain_json(set, &res, st);
	else
		explain_text(set, &res, st);
	r = 0;
out:
	free(st);
	request_free(&req);
	ag_policy_result_fini(&res);
	ag_policy_set_free(set);
	ag_entities_free(ents);
	ag_inventory_free(inv);
	return r;
}

/* ---- simulate --------------------------------------------------------- */

/*
 * Replays the decision records of an audit log against a candidate set.
 * Each record becomes the request the daemon would have built
 * (lib/policy_request.c); what the log does not hold is rebuilt or left
 * out, as agentgatectl(8) documents: context.time from the record's ts,
 * context.session.calls/approved by replaying the log in order,
 * context.delegation (and the sub-agent in its parents) from the record's
 * agent.delegation, context.operator from the record's operator (absent
 * when the agent had none), context.request empty, a tool's attributes
 * from the definition the inventory trusts now.
 */
struct sim {
	const struct ag_policy_set *set;
	const struct ag_entities *ents;
	json_t *ents_json;	  /* what ents was made of, for delegation chains; NULL: none */
	struct ag_inventory *inv; /* the instance's tool inventory; NULL: none */
	struct ag_chain_cache *chains; /* the entities of delegation chains */
	struct ag_policy_result res;
	bool reads_args;	      /* some policy of the candidate reads context.args */
	struct ag_sessions *sessions; /* the daemon's session counters, replayed */
	json_t *changes;	      /* --json */
	json_t *unknown;	      /* --json: the undetermined decisions */
	bool json;
	size_t replayed, changed, undetermined, skipped;
};

/* {"sha256": "<64 hex>"}: what ag_audit_redact() leaves of a value. */
static bool is_hash(json_t *v)
{
	const char *h = json_string_value(json_object_get(v, "sha256"));

	return json_is_object(v) && json_object_size(v) == 1 && h && strlen(h) == 64 &&
	       strspn(h, "0123456789abcdef") == 64;
}

/* The daemon hashes each member's value, or the whole value of non-object
 * arguments: either way the values are gone. */
static bool args_hashed(json_t *args)
{
	const char *k;
	json_t *v;

	if (is_hash(args))
		return true;
	json_object_foreach(args, k, v) if (is_hash(v)) return true;
	return false;
}

/* The session a record was in, as the daemon keeps it (lib/decision.h). */
static struct ag_session *sim_session(struct sim *s, const char *agent, const char *server,
				      const char *id)
{
	const struct ag_session_key k = { agent, server, id };

	return ag_session_get(s->sessions, &k, true, NULL);
}

/* The agent's name: the daemon writes an object, older records a string. */
static const char *rec_agent(json_t *rec)
{
	json_t *a = json_object_get(rec, "agent");

	return json_is_string(a) ? json_string_value(a)
				 : json_string_value(json_object_get(a, "name"));
}

/* agent.delegation (root first) into names; -1 when it is not a list of
 * at most AG_DELEGATION_MAX - 1 names. */
static int rec_delegation(json_t *rec, const char **names, size_t *n)
{
	json_t *list = json_object_get(json_object_get(rec, "agent"), "delegation"), *v;
	size_t i;

	*n = 0;
	if (!list)
		return 0;
	if (!json_is_array(list) || json_array_size(list) >= AG_DELEGATION_MAX)
		return -1;
	json_array_foreach(list, i, v) if (!(names[(*n)++] = json_string_value(v))) return -1;
	return 0;
}

/* The entities c is decided with, as the daemon's (ag_chain_ents).  -1
 * (and a message) when they cannot be made. */
static int sim_ents(struct sim *s, const struct ag_policy_call *c, const struct ag_entities **out)
{
	struct ag_policy_error perr = { 0 };
	char key[AG_DELEGATION_MAX * AG_NAME_LEN];

	if (!ag_chain_ents(s->chains, c, out, key, sizeof(key), &perr))
		return 0;
	fprintf(stderr, "policy simulate: entities of the delegation chain of %s: %s\n", c->agent,
		perr.msg);
	return -1;
}

/* A human approved a call the candidate would also have held. */
static void sim_approval(struct sim *s, json_t *rec)
{
	const char *tool = json_string_value(json_object_get(rec, "tool"));
	const char *agent = rec_agent(rec),
		   *server = json_string_value(json_object_get(rec, "server"));
	const char *dec = json_string_value(json_object_get(rec, "decision"));
	struct ag_session *sess;

	if (!tool || !agent || !server || !dec || strcmp(dec, "allow"))
		return;
	sess = sim_session(s, agent, server, json_string_value(json_object_get(rec, "session")));
	if (sess && ag_session_unhold(sess, tool, json_object_get(rec, "id")))
		ag_session_approve(sess, tool);
}

/* An undetermined decision: what was recorded, and why it cannot be replayed. */
static void sim_print_unknown(struct sim *s, json_t *rec, const struct ag_policy_call *c,
			      const char *recorded)
{
	static const char why[] = "arguments not recorded";
	const char *ts = json_string_value(json_object_get(rec, "ts")) ?: "?";
	const char *action = ag_policy_target_action(c->target);
	json_int_t seq = json_integer_value(json_object_get(rec, "seq"));

	if (!s->json) {
		printf("seq %lld %s %s %s %s/%s: %s -> undetermined: %s\n", (long long)seq, ts,
		       c->agent, action, c->server, c->name, recorded, why);
		return;
	}
	json_array_append_new(s->unknown,
			      json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "seq", seq, "ts", ts,
					"agent", c->agent, "server", c->server, "name", c->name,
					"action", action, "recorded", recorded, "reason", why));
}

static void sim_print(struct sim *s, json_t *rec, const struct ag_policy_call *c,
		      const char *recorded, const struct ag_policy_verdict *v)
{
	const char *ts = json_string_value(json_object_get(rec, "ts")) ?: "?";
	const char *action = ag_policy_target_action(c->target);
	json_int_t seq = json_integer_value(json_object_get(rec, "seq"));
	json_t *ids, *o;
	char *p, *save;
	char buf[sizeof(v->policies)];

	if (!s->json) {
		printf("seq %lld %s %s %s %s/%s: %s -> %s by %s%s%s\n", (long long)seq, ts,
		       c->agent, action, c->server, c->name, recorded,
		       ag_policy_outcome_name(v->kind), v->policies[0] ? v->policies : "none",
		       v->reason[0] ? ": " : "", v->reason);
		return;
	}
	ids = json_array();
	snprintf(buf, sizeof(buf), "%s", v->policies);
	for (p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save))
		json_array_append_new(ids, json_string(p));
	o = json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:s}", "seq", seq, "ts", ts, "agent",
		      c->agent, "server", c->server, "name", c->name, "action", action, "recorded",
		      recorded, "simulated", ag_policy_outcome_name(v->kind), "policies", ids,
		      "reason", v->reason);
	json_array_append_new(s->changes, o);
}

/* The daemon records only tools/call, resources/read and prompts/get,
 * with the target's name under its word ("tool", "resource", "prompt"). */
static bool rec_target(json_t *rec, enum ag_policy_target *t, const char **name)
{
	if (ag_policy_target_of_method_name(json_string_value(json_object_get(rec, "method")), t))
		return false;
	*name = json_string_value(json_object_get(rec, ag_policy_target_name(*t)));
	return *name != NULL;
}

/*
 * Whether the daemon could have held the call for a human
 * (ag_escalation_eligible): the record has an id, and it was not refused
 * as an escalation the daemon could not hold (a batch element, a legacy
 * POST: recorded as a deny with the escalation's reason).
 */
static bool rec_holdable(json_t *rec, const char *dec, const char *reason)
{
	json_t *id = json_object_get(rec, "id");
	bool lone = strcmp(dec, "deny") || !reason ||
		    strncmp(reason, AG_POLICY_ESCALATE_PREFIX, strlen(AG_POLICY_ESCALATE_PREFIX));

	return ag_escalation_eligible(lone, id && !json_is_null(id), true);
}

static void sim_decision(struct sim *s, json_t *rec)
{
	const char *dec = json_string_value(json_object_get(rec, "decision"));
	struct ag_policy_call c = { .agent = rec_agent(rec),
				    .server = json_string_value(json_object_get(rec, "server")) };
	json_t *args = json_object_get(rec, "args"), *id = json_object_get(rec, "id");
	const char *recorded, *sid = json_string_value(json_object_get(rec, "session"));
	struct ag_session *sess, *tool_sess;
	const char *chain[AG_DELEGATION_MAX];
	const struct ag_entities *ents;
	struct ag_policy_verdict v;
	struct timespec ts;

	if (!c.agent || !c.server || !dec || !rec_target(rec, &c.target, &c.name) ||
	    ag_audit_parse_ts(json_string_value(json_object_get(rec, "ts")) ?: "", &ts) ||
	    rec_delegation(rec, chain, &c.n_delegation)) {
		s->skipped++;
		return;
	}
	c.delegation = chain;
	c.operator_name = json_string_value(json_object_get(rec, "operator"));
	if (c.target == AG_TARGET_TOOL)
		c.definition = ag_inventory_definition(s->inv, c.server, c.name);
	if (sim_ents(s, &c, &ents)) {
		s->skipped++;
		return;
	}
	recorded = !strcmp(dec, "deny") && json_is_true(json_object_get(rec, "hidden"))
		       ? "deny_unknown"
		       : dec;
	/* Every target sees the session; only tool calls count in it. */
	sess = sim_session(s, c.agent, c.server, sid);
	tool_sess = c.target == AG_TARGET_TOOL ? sess : NULL;
	if (c.target == AG_TARGET_TOOL && args && s->reads_args && args_hashed(args) &&
	    ag_policy_call_reads_args(s->set, ents, &c, &s->res)) {
		/* The values are gone: say so rather than guess.  The recorded
		 * outcome is the best count for the session. */
		s->undetermined++;
		sim_print_unknown(s, rec, &c, recorded);
		if (tool_sess && !strcmp(dec, "allow"))
			ag_session_count(tool_sess, c.name);
		if (tool_sess)
			ag_session_hold(tool_sess, !strcmp(dec, "ask"), c.name, id);
		return;
	}
	c.args = json_is_null(args) ? NULL : args;
	c.session_id = sid;
	c.calls = sess ? sess->calls : NULL;
	c.approved = sess ? sess->approved : NULL;
	c.now = (int64_t)ts.tv_sec;
	ag_policy_call_decide(s->set, ents, &c, &s->res, &v);
	ag_session_settle(s->sessions, &c, &v);
	/* The daemon refuses what it cannot hold, and would refuse it again. */
	if (v.kind == AG_OUTCOME_ESCALATE &&
	    !rec_holdable(rec, dec, json_string_value(json_object_get(rec, "reason"))))
		v.kind = AG_OUTCOME_DENY;
	s->replayed++;
	if (tool_sess)
		ag_session_hold(tool_sess, v.kind == AG_OUTCOME_ESCALATE, c.name, id);
	if (!strcmp(recorded, ag_policy_outcome_name(v.kind)))
		return;
	s->changed++;
	sim_print(s, rec, &c, recorded, &v);
}

/* Returns 0, or 2 after saying which file cannot be read. */
static int sim_file(struct sim *s, const char *path)
{
	struct ag_audit_reader *r;
	struct ag_err err;
	const char *line;
	size_t len, n = 0;
	bool torn;
	int ret;

	if (ag_audit_reader_open(path, &r, &err)) {
		fprintf(stderr, "policy simulate: %s; check the log path\n", err.msg);
		return 2;
	}
	/* A torn last line was never durable: the daemon did not act on it. */
	while ((ret = ag_audit_reader_next(r, &line, &len, &torn, &err)) == 1 && !torn) {
		json_t *rec = json_loadb(line, len, 0, NULL);
		const char *kind = json_string_value(json_object_get(rec, "kind"));

		n++;
		if (!kind) {
			json_decref(rec);
			fprintf(stderr,
				"policy simulate: %s:%zu: not an audit record; run 'agentgatectl "
				"audit verify' on it\n",
				path, n);
			ag_audit_reader_close(r);
			return 2;
		}
		if (!strcmp(kind, "decision"))
			sim_decision(s, rec);
		else if (!strcmp(kind, "approval"))
			sim_approval(s, rec);
		json_decref(rec);
	}
	ag_audit_reader_close(r);
	if (ret < 0) {
		fprintf(stderr, "policy simulate: %s; run 'agentgatectl audit verify' on it\n",
			err.msg);
		return 2;
	}
	return 0;
}

/* One directory, or the files in the order given. */
static struct ag_policy_set *sim_load(const char *const *paths, size_t n)
{
	struct ag_policy_error err;
	struct ag_policy_set *set;
	struct stat st;

	for (size_t i = 0; i < n; i++) {
		if (stat(paths[i], &st) || !S_ISDIR(st.st_mode))
			continue;
		if (n == 1)
			break;
		fprintf(stderr,
			"policy simulate: %s is a directory: give one directory or policy files, "
			"not both\n",
			paths[i]);
		return NULL;
	}
	if (n == 1 && !stat(paths[0], &st) && S_ISDIR(st.st_mode))
		set = ag_policy_load_dir(paths[0], &err);
	else
		set = ag_policy_load_files(paths, n, &err);
	if (!set)
		fprintf(stderr, "policy simulate: %s\n", err.msg);
	return set;
}

static int cmd_simulate(const struct ag_instance *in, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "policies", required_argument, NULL, O_POLICIES },
		{ "entities", required_argument, NULL, O_ENTITIES },
		{ "json", no_argument, NULL, O_JSON },
		{ 0 },
	};
	const char **pols = calloc((size_t)argc, sizeof(*pols));
	const char *entities = NULL;
	struct sim s = { 0 };
	struct ag_policy_set *set = NULL;
	struct ag_entities *ents = NULL;
	struct ag_policy_error perr;
	struct ag_err err;
	size_t npols = 0;
	int c, r = 2;

	if (!pols) {
		fprintf(stderr, "policy simulate: out of memory\n");
		return 2;
	}
	ag_policy_result_init(&s.res);
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(usage_simulate, stdout);
			r = 0;
			goto out;
		case O_POLICIES:
			pols[npols++] = optarg;
			break;
		case O_ENTITIES:
			entities = optarg;
			break;
		case O_JSON:
			s.json = true;
			break;
		default:
			fprintf(stderr,
				"policy simulate: unknown or incomplete option %s; see --help\n",
				argv[optind - 1]);
			goto out;
		}
	}
	if (!npols || optind >= argc) {
		fprintf(stderr,
			"policy simulate: %s; usage: agentgatectl policy simulate --policies "
			"DIR|FILE... [--entities FILE] [--json] AUDIT_LOG...\n",
			npols ? "missing audit log" : "missing --policies");
		goto out;
	}
	if (!(set = sim_load(pols, npols)))
		goto out;
	if (entities && !(ents = ag_entities_load_file(entities, &perr))) {
		fprintf(stderr, "policy simulate: %s\n", perr.msg);
		goto out;
	}
	/* Loaded: the file is valid JSON, read once more for delegation chains. */
	if (entities && !(s.ents_json = json_load_file(entities, JSON_REJECT_DUPLICATES, NULL))) {
		fprintf(stderr, "policy simulate: %s: cannot read it again\n", entities);
		goto out;
	}
	if ((r = inv_load(in, "simulate", &s.inv)))
		goto out;
	r = 2;
	s.set = set;
	s.ents = ents;
	s.reads_args = ag_policy_reads_context(set, "args");
	s.sessions = ag_sessions_new();
	s.chains = ag_chain_cache_new(AG_CHAIN_STORES);
	s.changes = json_array();
	s.unknown = json_array();
	if (!s.sessions || !s.chains || !s.changes || !s.unknown) {
		fprintf(stderr, "policy simulate: out of memory\n");
		goto out;
	}
	ag_chain_cache_reset(s.chains, ents, s.ents_json);
	/* A single LOG stands for its rotated series, as in `audit`. */
	if (optind + 1 == argc) {
		char **paths;
		size_t np;

		if (ag_audit_series(argv[optind], &paths, &np, &err)) {
			fprintf(stderr, "policy simulate: %s; check the log path\n", err.msg);
			goto out;
		}
		for (size_t i = 0; i < np && !(r = sim_file(&s, paths[i])); i++)
			;
		ag_audit_series_free(paths, np);
	} else {
		for (int i = optind; i < argc && !(r = sim_file(&s, argv[i])); i++)
			;
	}
	if (r)
		goto out;
	if (s.json) {
		json_t *o =
		    json_pack("{s:I,s:I,s:I,s:I,s:O,s:O}", "replayed", (json_int_t)s.replayed,
			      "changed", (json_int_t)s.changed, "undetermined",
			      (json_int_t)s.undetermined, "skipped", (json_int_t)s.skipped,
			      "changes", s.changes, "undetermined_decisions", s.unknown);

		json_dumpf(o, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(o);
	}
	/* The summary goes to stderr with --json, so stdout stays one document. */
	fprintf(s.json ? stderr : stdout,
		"%zu decisions replayed, %zu would change, %zu undetermined (arguments not "
		"recorded), %zu skipped (not a governed call)\n",
		s.replayed, s.changed, s.undetermined, s.skipped);
	r = s.changed || s.undetermined ? 1 : 0;
out:
	free(pols);
	ag_sessions_free(s.sessions);
	ag_chain_cache_free(s.chains);
	json_decref(s.changes);
	json_decref(s.unknown);
	json_decref(s.ents_json);
	ag_inventory_free(s.inv);
	ag_policy_result_fini(&s.res);
	ag_policy_set_free(set);
	ag_entities_free(ents);
	return r;
}

int ag_cmd_policy_reload(const struct ag_instance *in, int argc, char **argv)
{
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

int ag_cmd_policy(const struct ag_instance *in, int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(const struct ag_instance *, int, char **);
	} cmds[] = {
		{ "validate", cmd_validate },
		{ "test", cmd_test },
		{ "explain", cmd_explain },
		{ "simulate", cmd_simulate },
	};

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(usage_policy, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(in, argc - 1, argv + 1);
	fprintf(
	    stderr,
	    "policy: unknown subcommand \"%s\"; use validate, test, explain, simulate or reload\n",
	    argv[1]);
	return 2;
}
