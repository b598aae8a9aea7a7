// SPDX-License-Identifier: GPL-2.0
/*
 * Policy engine tests: the semantics table in selftests/policy_cases.txt (its
 * format is described at the top of that file), the example policies in
 * policies/, directory loading, entity loading and the evaluation API.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy.h"
#include "test.h"

#define CASES_FILE "selftests/policy_cases.txt"
#define CASES_ENTITIES "selftests/policy_cases.entities.json"

struct pcase {
	char name[160];
	char *policy;
	size_t plen, pcap;
	char principal[128], action[128], resource[128];
	char *context; /* NULL: default */
	char expect[16];
	char ids[256];
	char reason[256];
	char *diags[8];
	int n_diags;
	char parse_error[256];
	int line; /* in CASES_FILE */
};

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)n + 1);
		if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		} else if (buf) {
			buf[n] = '\0';
		}
	}
	fclose(f);
	return buf;
}

static void append_policy(struct pcase *c, const char *text)
{
	size_t n = strlen(text);

	if (c->plen + n + 2 > c->pcap) {
		c->pcap = (c->plen + n + 2) * 2;
		c->policy = realloc(c->policy, c->pcap);
		if (!c->policy)
			abort();
	}
	memcpy(c->policy + c->plen, text, n);
	c->plen += n;
	c->policy[c->plen++] = '\n';
	c->policy[c->plen] = '\0';
}

static void reset_case(struct pcase *c)
{
	free(c->policy);
	free(c->context);
	for (int i = 0; i < c->n_diags; i++)
		free(c->diags[i]);
	memset(c, 0, sizeof(*c));
	strcpy(c->principal, "Agent::\"worker\"");
	strcpy(c->action, "Action::\"call\"");
	strcpy(c->resource, "Tool::\"erp/create\"");
}

static bool ref_from_text(const char *text, struct ag_entity_ref *ref)
{
	struct ag_policy_error err;

	return ASSERT_OK(ag_entity_ref_parse(text, ref, &err), text);
}

static void free_ref(struct ag_entity_ref *ref)
{
	free((char *)ref->type);
	free((char *)ref->id);
}

static void join_ids(const struct ag_policy_result *res, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	if (!res->n_determining)
		snprintf(buf, len, "-");
	for (size_t i = 0; i < res->n_determining && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? "," : "",
					res->determining[i]);
}

static void check_diags(const struct pcase *c, const struct ag_policy_result *res)
{
	char line[256];

	ASSERT_EQ(res->n_diags, c->n_diags, "number of diagnostics");
	for (size_t i = 0; i < res->n_diags; i++) {
		snprintf(line, sizeof(line), "%s: %s", res->diags[i].policy_id, res->diags[i].msg);
		if (test__verbose())
			fprintf(stderr, "  diag %s\n", line);
		if (i < (size_t)c->n_diags && !strstr(line, c->diags[i]))
			AG_FAILED("diagnostic \"%s\" does not contain \"%s\"", line, c->diags[i]);
	}
}

static void run_case(const struct pcase *c, const struct ag_entities *ents, json_t *defctx)
{
	struct ag_policy_request req = { 0 };
	struct ag_policy_error err = { 0 };
	struct ag_policy_result res;
	struct ag_policy_set *set;
	json_t *ctx = defctx;
	size_t plen = c->plen;
	char ids[512];

	ag_policy_result_init(&res);
	/* Blank lines between cases belong to no policy: keep one final newline
	 * so end-of-input errors point at the line after the policy. */
	while (plen > 1 && c->policy[plen - 1] == '\n' && c->policy[plen - 2] == '\n')
		plen--;
	set = ag_policy_parse_text("case", c->policy ? c->policy : "", plen, &err);
	if (c->parse_error[0]) {
		if (ASSERT_TRUE(set == NULL, "parse must fail") && !strstr(err.msg, c->parse_error))
			AG_FAILED("parse error \"%s\" does not contain \"%s\"", err.msg,
				  c->parse_error);
		goto out;
	}
	if (!ASSERT_OK_PTR(set, err.msg))
		goto out;
	if (c->context)
		ctx = strcmp(c->context, "null") ? json_loads(c->context, 0, NULL) : NULL;
	if (c->context && strcmp(c->context, "null") && !ASSERT_OK_PTR(ctx, "case context JSON"))
		goto out;
	if (!ref_from_text(c->principal, &req.principal) ||
	    !ref_from_text(c->action, &req.action) || !ref_from_text(c->resource, &req.resource))
		goto out;
	req.context = ctx;
	if (!ASSERT_OK(ag_policy_evaluate(set, ents, &req, &res, NULL, &err), err.msg))
		goto out;
	ASSERT_STREQ(ag_policy_decision_name(res.decision), c->expect, "decision");
	join_ids(&res, ids, sizeof(ids));
	if (c->ids[0])
		ASSERT_STREQ(ids, c->ids, "determining policies");
	if (c->reason[0])
		ASSERT_STREQ(res.escalate_reason, c->reason, "escalate reason");
	check_diags(c, &res);
out:
	if (ctx != defctx)
		json_decref(ctx);
	free_ref(&req.principal);
	free_ref(&req.action);
	free_ref(&req.resource);
	ag_policy_result_fini(&res);
	ag_policy_set_free(set);
}

static bool directive(struct pcase *c, const char *d, char **defctx)
{
	static const struct {
		const char *key;
		size_t off, len;
	} fields[] = {
		{ "principal ", offsetof(struct pcase, principal), sizeof(c->principal) },
		{ "action ", offsetof(struct pcase, action), sizeof(c->action) },
		{ "resource ", offsetof(struct pcase, resource), sizeof(c->resource) },
		{ "expect ", offsetof(struct pcase, expect), sizeof(c->expect) },
		{ "ids ", offsetof(struct pcase, ids), sizeof(c->ids) },
		{ "reason ", offsetof(struct pcase, reason), sizeof(c->reason) },
		{ "parse-error ", offsetof(struct pcase, parse_error), sizeof(c->parse_error) },
	};

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		size_t k = strlen(fields[i].key);

		if (!strncmp(d, fields[i].key, k)) {
			snprintf((char *)c + fields[i].off, fields[i].len, "%s", d + k);
			return true;
		}
	}
	if (!strncmp(d, "context ", 8)) {
		char **dst = defctx ? defctx : &c->context;

		free(*dst);
		*dst = strdup(d + 8);
		return *dst != NULL;
	}
	if (!strncmp(d, "diag ", 5) && c->n_diags < 8) {
		c->diags[c->n_diags++] = strdup(d + 5);
		return true;
	}
	return false;
}

static void run_pending(const struct pcase *c, bool have, const struct ag_entities *ents,
			json_t *defctx)
{
	if (!have || !test__start_subtest(c->name))
		return;
	if (!c->expect[0] && !c->parse_error[0])
		AG_FAILED("%s:%d: case has no expectation", CASES_FILE, c->line);
	else
		run_case(c, ents, defctx);
}

static void run_table(const struct ag_entities *ents)
{
	char *text = slurp(CASES_FILE), *line, *next, *defctx_text = NULL;
	struct pcase c = { 0 };
	json_t *defctx = NULL;
	int lineno = 0, cases = 0;
	bool have = false;

	if (!ASSERT_OK_PTR(text, CASES_FILE))
		return;
	reset_case(&c);
	for (line = text; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		if (!strncmp(line, "### ", 4)) {
			run_pending(&c, have, ents, defctx);
			reset_case(&c);
			snprintf(c.name, sizeof(c.name), "%s", line + 4);
			c.line = lineno;
			have = true;
			cases++;
		} else if (line[0] == '#' || (!line[0] && !have)) {
			continue;
		} else if (!strncmp(line, "> ", 2)) {
			if (!directive(&c, line + 2, have ? NULL : &defctx_text))
				AG_FAILED("%s:%d: unknown directive", CASES_FILE, lineno);
			if (!have && defctx_text && !defctx) {
				defctx = json_loads(defctx_text, 0, NULL);
				ASSERT_OK_PTR(defctx, "default context JSON");
			}
		} else if (!strncmp(line, "? ", 2)) {
			char *policy;

			if (asprintf(&policy, "permit(principal, action, resource) when { %s };",
				     line + 2) < 0)
				abort();
			append_policy(&c, policy);
			free(policy);
		} else if (have) {
			append_policy(&c, line);
		}
	}
	run_pending(&c, have, ents, defctx);
	if (test__start_subtest("table size"))
		ASSERT_GE(cases, 150, "semantic cases in " CASES_FILE);
	reset_case(&c);
	free(defctx_text);
	json_decref(defctx);
	free(text);
}

TEST(policy_semantics)
{
	struct ag_policy_error err;
	struct ag_entities *ents = ag_entities_load_file(CASES_ENTITIES, &err);

	if (!ASSERT_OK_PTR(ents, err.msg))
		return;
	run_table(ents);
	ag_entities_free(ents);
}

/* The shipped example policies, decided against policies/entities.json. */
struct example {
	const char *name, *principal, *resource, *context, *decision, *ids;
	const char *operator; /* NULL: alice */
};

static const struct example examples[] = {
	{ "small expense allowed", "expense-bot", "erp/create_expense_report",
	  "{\"args\":{\"amount\":120},\"session\":{\"calls\":{}}}", "allow", "expense-report",
	  NULL },
	{ "sub-agent inherits the permit", "receipt-scanner", "erp/create_expense_report",
	  "{\"args\":{\"amount\":120},\"session\":{\"calls\":{}}}", "allow", "expense-report",
	  NULL },
	{ "agent outside the tree denied", "intern-bot", "erp/create_expense_report",
	  "{\"args\":{\"amount\":120},\"session\":{\"calls\":{}}}", "deny", "-", NULL },
	{ "large expense escalates", "expense-bot", "erp/create_expense_report",
	  "{\"args\":{\"amount\":7000},\"session\":{\"calls\":{}}}", "escalate",
	  "expense-report-large", NULL },
	{ "second expense in a session denied", "expense-bot", "erp/create_expense_report",
	  "{\"args\":{\"amount\":120},\"session\":{\"calls\":{\"create_expense_report\":1}}}",
	  "deny", "expense-report-once-per-session", NULL },
	{ "sub-agent inherits the once-per-session limit", "receipt-scanner",
	  "erp/create_expense_report",
	  "{\"args\":{\"amount\":7000},\"session\":{\"calls\":{\"create_expense_report\":2}}}",
	  "deny", "expense-report-once-per-session", NULL },
	{ "fractional amount denied", "expense-bot", "erp/create_expense_report",
	  "{\"args\":{\"amount\":99.5},\"session\":{\"calls\":{}}}", "deny", "-", NULL },
	{ "own cost center allowed", "expense-bot", "erp/lookup_cost_center",
	  "{\"args\":{\"cost_center\":\"CC-4410\"}}", "allow", "orchestrator-tree-erp", NULL },
	{ "other cost center denied", "expense-bot", "erp/lookup_cost_center",
	  "{\"args\":{\"cost_center\":\"CC-1000\"}}", "deny", "own-cost-center-only", NULL },
	{ "cost center lookup without argument denied", "expense-bot", "erp/lookup_cost_center",
	  "{\"args\":{}}", "deny", "own-cost-center-only", NULL },
	{ "notify the manager allowed", "receipt-scanner", "mail/notify",
	  "{\"args\":{\"to\":\"bob@example.com\"}}", "allow", "orchestrator-tree-mail", NULL },
	{ "notify someone else denied", "receipt-scanner", "mail/notify",
	  "{\"args\":{\"to\":\"dana@example.com\"}}", "deny", "notify-manager-only", NULL },
	{ "destructive tool denied", "orchestrator", "erp/delete_report", "{\"args\":{}}", "deny",
	  "no-destructive-tools", NULL },
	{ "unknown operator: cost center lookup fails closed", "expense-bot",
	  "erp/lookup_cost_center", "{\"args\":{\"cost_center\":\"CC-4410\"}}", "deny",
	  "own-cost-center-only", "mallory" },
	{ "unknown operator: notify fails closed", "receipt-scanner", "mail/notify",
	  "{\"args\":{\"to\":\"bob@example.com\"}}", "deny", "notify-manager-only", "mallory" },
	{ "manager without email: notify fails closed", "receipt-scanner", "mail/notify",
	  "{\"args\":{\"to\":\"bob@example.com\"}}", "deny", "notify-manager-only", "bob" },
};

static void run_example(const struct ag_policy_set *set, const struct ag_entities *ents,
			const struct example *ex)
{
	const char *operator= ex->operator? ex->operator: "alice";
	struct ag_policy_request req = {
		{ "Agent", ex->principal }, { "Action", "call" }, { "Tool", ex->resource }, NULL
	};
	struct ag_policy_error err;
	struct ag_policy_result res;
	json_t *ctx = json_loads(ex->context, 0, NULL);
	char ids[512];

	ag_policy_result_init(&res);
	if (!ASSERT_OK_PTR(ctx, "example context"))
		return;
	json_object_set_new(ctx, "operator",
			    json_pack("{s{ssss}}", "__entity", "type", "User", "id", operator));
	req.context = ctx;
	if (ASSERT_OK(ag_policy_evaluate(set, ents, &req, &res, NULL, &err), err.msg)) {
		ASSERT_STREQ(ag_policy_decision_name(res.decision), ex->decision, "decision");
		join_ids(&res, ids, sizeof(ids));
		ASSERT_STREQ(ids, ex->ids, "determining policies");
	}
	ag_policy_result_fini(&res);
	json_decref(ctx);
}

TEST(policy_examples)
{
	struct ag_policy_error err;
	struct ag_policy_set *set = ag_policy_load_dir("policies", &err);
	struct ag_entities *ents = ag_entities_load_file("policies/entities.json", &err);

	if (ASSERT_OK_PTR(set, err.msg) && ASSERT_OK_PTR(ents, err.msg)) {
		for (size_t i = 0; i < sizeof(examples) / sizeof(examples[0]); i++)
			if (test__start_subtest(examples[i].name))
				run_example(set, ents, &examples[i]);
		if (test__start_subtest("escalate reason")) {
			ASSERT_STREQ(
			    ag_policy_annotation(set, 4, "escalate"),
			    "amounts above 5000 need the approval of the operator's manager",
			    "@escalate of expense-report-large");
			ASSERT_STREQ(ag_policy_id(set, 4), "expense-report-large", "policy 4 id");
			ASSERT_TRUE(ag_policy_annotation(set, 4, "nope") == NULL, "absent");
		}
	}
	ag_policy_set_free(set);
	ag_entities_free(ents);
}

static bool write_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	FILE *f;
	bool ok;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f)
		return false;
	ok = fputs(text, f) >= 0;
	return fclose(f) == 0 && ok;
}

static void remove_dir(const char *dir, const char *const *names, size_t n)
{
	char path[512];

	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

TEST(policy_load_dir)
{
	static const char *const names[] = { "b.cedar", "a.cedar", "notes.txt", ".hidden.cedar",
					     "c.cedar" };
	char dir[] = "/tmp/agentgate-policy-XXXXXX";
	struct ag_policy_error err = { 0 };
	struct ag_policy_set *set;

	if (!ASSERT_OK_PTR(mkdtemp(dir), "mkdtemp"))
		return;
	if (test__start_subtest("empty directory is an empty set")) {
		set = ag_policy_load_dir(dir, &err);
		if (ASSERT_OK_PTR(set, err.msg))
			ASSERT_EQ(ag_policy_count(set), 0, "policies");
		ag_policy_set_free(set);
	}
	ASSERT_TRUE(write_file(dir, "b.cedar", "forbid(principal, action, resource);\n"), "b");
	ASSERT_TRUE(write_file(dir, "a.cedar",
			       "\n@id(\"first\") permit(principal, action, "
			       "resource);\npermit(principal, action, resource);\n"),
		    "a");
	ASSERT_TRUE(write_file(dir, "notes.txt", "not a policy"), "notes");
	ASSERT_TRUE(write_file(dir, ".hidden.cedar", "not a policy"), "hidden");
	if (test__start_subtest("files in name order, others ignored")) {
		set = ag_policy_load_dir(dir, &err);
		if (ASSERT_OK_PTR(set, err.msg) && ASSERT_EQ(ag_policy_count(set), 3, "policies")) {
			ASSERT_STREQ(ag_policy_id(set, 0), "first", "@id");
			ASSERT_STREQ(ag_policy_id(set, 1), "a.cedar:3", "default id");
			ASSERT_STREQ(ag_policy_id(set, 2), "b.cedar:1", "default id");
			ASSERT_EQ(ag_policy_effect(set, 2), AG_FORBID, "effect");
			ASSERT_TRUE(ag_policy_id(set, 3) == NULL, "out of range id");
		}
		ag_policy_set_free(set);
	}
	ASSERT_TRUE(
	    write_file(dir, "c.cedar", "permit(principal, action, resource)\n  when { 1 < };\n"),
	    "c");
	if (test__start_subtest("one bad file fails the whole set")) {
		char want[600];

		set = ag_policy_load_dir(dir, &err);
		snprintf(want, sizeof(want), "%s/c.cedar:2:14: expected expression, found `}`",
			 dir);
		ASSERT_TRUE(set == NULL, "set must not load");
		ASSERT_STREQ(err.msg, want, "error");
		ASSERT_EQ(err.line, 2, "line");
		ASSERT_EQ(err.column, 14, "column");
	}
	if (test__start_subtest("duplicate id across files")) {
		ASSERT_TRUE(write_file(dir, "c.cedar",
				       "@id(\"first\") permit(principal, action, "
				       "resource);\n"),
			    "c");
		set = ag_policy_load_dir(dir, &err);
		ASSERT_TRUE(set == NULL, "set must not load");
		ASSERT_TRUE(strstr(err.msg, "c.cedar:1:1: duplicate policy id \"first\"") != NULL,
			    err.msg);
	}
	if (test__start_subtest("missing directory")) {
		set = ag_policy_load_dir("/nonexistent/agentgate-policies", &err);
		ASSERT_TRUE(set == NULL, "set must not load");
		ASSERT_STREQ(err.msg,
			     "/nonexistent/agentgate-policies: cannot open policy directory: No "
			     "such file or directory",
			     "error");
	}
	remove_dir(dir, names, sizeof(names) / sizeof(names[0]));
}

static void entities_error(const char *json, const char *want)
{
	struct ag_policy_error err = { 0 };
	json_t *j = json_loads(json, 0, NULL);
	struct ag_entities *ents;

	if (!ASSERT_OK_PTR(j, json))
		return;
	ents = ag_entities_from_json(j, &err);
	json_decref(j);
	if (ASSERT_TRUE(ents == NULL, "entities must not load"))
		ASSERT_STREQ(err.msg, want, "error");
	ag_entities_free(ents);
}

TEST(policy_entities)
{
	if (test__start_subtest("not an array"))
		entities_error("{}", "entities: expected a JSON array of entities");
	if (test__start_subtest("uid without id"))
		entities_error("[{\"uid\":{\"type\":\"A\"}}]",
			       "entities[0]: uid needs string \"type\" and \"id\"");
	if (test__start_subtest("duplicate uid"))
		entities_error("[{\"uid\":{\"type\":\"A\",\"id\":\"x\"}},"
			       "{\"uid\":{\"type\":\"A\",\"id\":\"x\"}}]",
			       "entities: A::\"x\" is defined twice");
	if (test__start_subtest("attrs not an object"))
		entities_error("[{\"uid\":{\"type\":\"A\",\"id\":\"x\"},\"attrs\":[]}]",
			       "entities[0]: \"attrs\" must be an object");
	if (test__start_subtest("attribute too deep")) {
		char json[512] = "[{\"uid\":{\"type\":\"A\",\"id\":\"x\"},\"attrs\":{\"n\":";

		for (int i = 0; i < 70; i++)
			strcat(json, "[");
		for (int i = 0; i < 70; i++)
			strcat(json, "]");
		strcat(json, "}}]");
		entities_error(json,
			       "entities[0] (A::\"x\"): attrs: JSON nested deeper than 64 levels");
	}
	if (test__start_subtest("bad parent"))
		entities_error("[{\"uid\":{\"type\":\"A\",\"id\":\"x\"},\"parents\":[1]}]",
			       "entities[0]: parent needs string \"type\" and \"id\"");
	if (test__start_subtest("uid in __entity form")) {
		struct ag_policy_error err;
		json_t *j =
		    json_loads("[{\"uid\":{\"__entity\":{\"type\":\"A\",\"id\":\"x\"}}}]", 0, NULL);
		struct ag_entities *ents = ag_entities_from_json(j, &err);

		ASSERT_OK_PTR(ents, err.msg);
		ag_entities_free(ents);
		json_decref(j);
	}
	if (test__start_subtest("missing file")) {
		struct ag_policy_error err;

		ASSERT_TRUE(ag_entities_load_file("/nonexistent.json", &err) == NULL, "load");
		ASSERT_TRUE(strstr(err.msg, "/nonexistent.json") != NULL, err.msg);
	}
}

static int eval_text(const char *policy, json_t *ctx, struct ag_policy_result *res,
		     struct ag_policy_error *err)
{
	struct ag_policy_request req = {
		{ "Agent", "a" }, { "Action", "call" }, { "Tool", "s/t" }, ctx
	};
	struct ag_policy_set *set = ag_policy_parse_text("t", policy, strlen(policy), err);
	int ret;

	if (!set)
		return -2;
	ret = ag_policy_evaluate(set, NULL, &req, res, NULL, err);
	ag_policy_set_free(set);
	return ret;
}

TEST(policy_api)
{
	struct ag_policy_error err = { 0 };
	struct ag_policy_result res;

	ag_policy_result_init(&res);
	if (test__start_subtest("context must be an object")) {
		json_t *ctx = json_array();

		ASSERT_EQ(eval_text("permit(principal, action, resource);", ctx, &res, &err), -1,
			  "evaluate");
		ASSERT_STREQ(err.msg, "policy request: context must be a JSON object", "error");
		ASSERT_EQ(res.decision, AG_DENY, "decision");
		json_decref(ctx);
	}
	if (test__start_subtest("deep context is refused")) {
		json_t *ctx = json_object(), *cur = ctx;

		for (int i = 0; i < 100; i++) {
			json_t *n = json_object();

			json_object_set_new(cur, "n", n);
			cur = n;
		}
		ASSERT_EQ(eval_text("permit(principal, action, resource);", ctx, &res, &err), -1,
			  "evaluate");
		ASSERT_STREQ(err.msg, "policy request: context: JSON nested deeper than 64 levels",
			     "error");
		json_decref(ctx);
	}
	if (test__start_subtest("request without principal type")) {
		struct ag_policy_set *set = ag_policy_parse_text("t", "", 0, &err);
		struct ag_policy_request req = {
			{ NULL, "a" }, { "Action", "call" }, { "Tool", "x" }, NULL
		};

		ASSERT_EQ(ag_policy_evaluate(set, NULL, &req, &res, NULL, &err), -1, "evaluate");
		ASSERT_STREQ(err.msg, "policy request: principal has no entity type and id",
			     "error");
		ag_policy_set_free(set);
	}
	if (test__start_subtest("status per policy")) {
		static const char text[] =
		    "permit(principal == Agent::\"b\", action, resource);\n"
		    "permit(principal, action, resource) when { false };\n"
		    "permit(principal, action, resource);\n"
		    "permit(principal, action, resource) when { context.x };\n";
		struct ag_policy_set *set = ag_policy_parse_text("t", text, strlen(text), &err);
		struct ag_policy_request req = {
			{ "Agent", "a" }, { "Action", "call" }, { "Tool", "x" }, NULL
		};
		enum ag_policy_status st[4];

		if (ASSERT_OK_PTR(set, err.msg) &&
		    ASSERT_OK(ag_policy_evaluate(set, NULL, &req, &res, st, &err), err.msg)) {
			ASSERT_EQ(st[0], AG_POLICY_SCOPE_MISMATCH, "scope");
			ASSERT_EQ(st[1], AG_POLICY_CONDITION_FALSE, "false");
			ASSERT_EQ(st[2], AG_POLICY_SATISFIED, "satisfied");
			ASSERT_EQ(st[3], AG_POLICY_ERROR, "error");
			ASSERT_EQ(res.n_matches, 1, "matches");
			ASSERT_STREQ(res.matches[0].policy_id, "t:3", "match id");
		}
		ag_policy_set_free(set);
	}
	if (test__start_subtest("result reuse resets previous output")) {
		ASSERT_OK(eval_text("@escalate(\"r\") permit(principal, action, resource) when "
				    "{ context.y };",
				    NULL, &res, &err),
			  "first");
		ASSERT_EQ(res.n_diags, 1, "first diags");
		ASSERT_OK(eval_text("permit(principal, action, resource);", NULL, &res, &err),
			  "second");
		ASSERT_EQ(res.n_diags, 0, "second diags");
		ASSERT_EQ(res.decision, AG_ALLOW, "second decision");
		ASSERT_TRUE(res.escalate_reason == NULL, "no reason");
	}
	if (test__start_subtest("long operator chains are bounded")) {
		size_t n = 2000, len = 0;
		char *text = malloc(n * 4 + 128);

		len += (size_t)sprintf(text, "permit(principal, action, resource) when { 1");
		for (size_t i = 0; i < n; i++)
			len += (size_t)sprintf(text + len, " + 1");
		strcpy(text + len, " > 0 };");
		ASSERT_EQ(eval_text(text, NULL, &res, &err), -2, "parse");
		ASSERT_TRUE(strstr(err.msg, "expression too large") != NULL, err.msg);
		free(text);
	}
	if (test__start_subtest("long conjunctions are fine")) {
		size_t n = 2000, len = 0;
		char *text = malloc(n * 8 + 128);

		len += (size_t)sprintf(text, "permit(principal, action, resource) when { true");
		for (size_t i = 0; i < n; i++)
			len += (size_t)sprintf(text + len, " && true");
		strcpy(text + len, " };");
		ASSERT_OK(eval_text(text, NULL, &res, &err), err.msg);
		ASSERT_EQ(res.decision, AG_ALLOW, "decision");
		free(text);
	}
	if (test__start_subtest("deep unary nesting is a parse error")) {
		char text[512] = "permit(principal, action, resource) when { ";

		for (int i = 0; i < 100; i++)
			strcat(text, "!");
		strcat(text, "true };");
		ASSERT_EQ(eval_text(text, NULL, &res, &err), -2, "parse");
		ASSERT_TRUE(strstr(err.msg, "nested too deeply") != NULL, err.msg);
	}
	if (test__start_subtest("NUL byte in text")) {
		static const char text[] = "permit(principal, action, resource);\0";
		struct ag_policy_set *set = ag_policy_parse_text("t", text, sizeof(text), &err);

		ASSERT_TRUE(set == NULL, "parse");
		ASSERT_STREQ(err.msg, "t:1:37: unexpected character", "error");
	}
	if (test__start_subtest("entity reference parsing")) {
		struct ag_entity_ref ref;

		if (ASSERT_OK(ag_entity_ref_parse("A::B::\"x\\\"y\"", &ref, &err), err.msg)) {
			ASSERT_STREQ(ref.type, "A::B", "type");
			ASSERT_STREQ(ref.id, "x\"y", "id");
			free((char *)ref.type);
			free((char *)ref.id);
		}
		ASSERT_EQ(ag_entity_ref_parse("Agent", &ref, &err), -1, "no id");
		ASSERT_EQ(ag_entity_ref_parse("Agent::\"a\" x", &ref, &err), -1, "trailing");
		ASSERT_STREQ(err.msg,
			     "entity reference:1:12: expected end of entity reference, "
			     "found `x`",
			     "error");
	}
	ag_policy_result_fini(&res);
}
