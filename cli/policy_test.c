// SPDX-License-Identifier: GPL-2.0
/*
 * agentgatectl policy test|explain: requests decided offline against a
 * policy directory, naming a governed target's entity as the daemon does
 * (ag_policy_target_entity) with a tool's attributes from the instance's
 * tool inventory.  The test file format is in agentgate-policy(5).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "inventory.h"
#include "policy_cli.h"
#include "policy_request.h"

const char policy_usage_test[] =
    "usage: agentgatectl policy test FILE [--policies DIR] [--entities FILE]\n"
    "Run the requests of a JSON test file and compare the decisions with the expected ones.\n"
    "--policies and --entities override the \"policies\" and \"entities\" paths of the file\n"
    "(which are relative to the test file).  Prints a line per failing case and a summary;\n"
    "exits 1 if any case fails, 2 if the test cannot run.  See agentgate-policy(5).\n";

const char policy_usage_explain[] =
    "usage: agentgatectl policy explain --policies DIR [--entities FILE] [--json]\n"
    "         (--request FILE | --principal REF --action REF --resource REF\n"
    "          [--context JSON | --context-file FILE])\n"
    "Decide one request and show, for every policy, whether its scope matched, whether\n"
    "its conditions held, or which error skipped it.  REF is Type::\"id\"; a request file\n"
    "is {\"principal\": REF, \"action\": REF, \"resource\": REF, \"context\": {...}}.\n";

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

int policy_test(struct ag_cli *cli, int argc, char **argv)
{
	const struct ag_instance *in = &cli->inst;
	struct ag_policy_set *set = NULL;
	struct ag_entities *ents = NULL;
	struct ag_inventory *inv = NULL;
	struct ag_policy_result res;
	size_t i, passed = 0, failed = 0;
	json_error_t jerr;
	json_t *doc, *cases, *c;
	struct policy_opts o;
	int r = policy_opts("test", policy_usage_test, argc, argv, &o);

	if (r)
		return r == 1 ? 0 : 2;
	if (!o.positional) {
		fprintf(stderr, "policy test: missing test file; usage: agentgatectl policy test "
				"FILE [--policies DIR] [--entities FILE]\n");
		return 2;
	}
	doc = ag_json_load_file(o.positional, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc) {
		policy_json_error("test", "test file", o.positional, &jerr);
		return 2;
	}
	cases = json_object_get(doc, "cases");
	if (!json_is_array(cases)) {
		fprintf(stderr, "policy test: %s: expected an object with a \"cases\" array\n",
			o.positional);
		json_decref(doc);
		return 2;
	}
	r = policy_load_inputs("test", o.positional, doc, &o, &set, &ents);
	if (!r)
		r = policy_inv_load(in, "test", &inv);
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
	json_t *j = file ? ag_json_load_file(file, 0, &jerr) : json_loads(text, 0, &jerr);

	if (!j)
		policy_json_error(cmd, what, file ? file : "argument", &jerr);
	return j;
}

static int explain_request(const struct policy_opts *o, struct ag_policy_request *req)
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

int policy_explain(struct ag_cli *cli, int argc, char **argv)
{
	const struct ag_instance *in = &cli->inst;
	struct ag_policy_request req = { 0 };
	struct ag_policy_set *set = NULL;
	struct ag_entities *ents = NULL;
	struct ag_inventory *inv = NULL;
	enum ag_policy_status *st = NULL;
	struct ag_policy_result res;
	struct ag_policy_error err;
	struct policy_opts o;
	int r = policy_opts("explain", policy_usage_explain, argc, argv, &o);

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
	if (policy_load_inputs("explain", ".", NULL, &o, &set, &ents) ||
	    explain_request(&o, &req) || policy_inv_load(in, "explain", &inv))
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
