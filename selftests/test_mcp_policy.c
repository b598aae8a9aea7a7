// SPDX-License-Identifier: GPL-2.0
/*
 * The MCP path decided by a Cedar policy set with a real agentgated
 * (agentgate.conf(5) "policy"): visibility, argument and session rules,
 * the policy ids in the audit record, and reloads (agentgatectl policy
 * reload, SIGHUP) that keep the running set when the new one is broken.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "mcplib.h"
#include "test.h"
#include "testlib.h"

static const char base_policy[] =
    "@id(\"t-for-a\")\n"
    "permit (principal == Agent::\"a\", action in [Action::\"call\", Action::\"list\"],\n"
    "        resource in Server::\"t\");\n"
    "\n"
    "@id(\"add-limit\")\n"
    "forbid (principal, action == Action::\"call\", resource == Tool::\"t/add\")\n"
    "when { context.args has a && context.args.a > %d };\n"
    "\n"
    "@id(\"hide-secret\")\n"
    "forbid (principal, action, resource == Tool::\"t/secret\");\n"
    "\n"
    "@id(\"once-per-session\")\n"
    "forbid (principal, action == Action::\"call\", resource == Tool::\"t/once\")\n"
    "when { !(context has session) ||\n"
    "       context.session.calls has once && context.session.calls.once >= 1 };\n";

static int write_file(const char *dir, const char *name, const char *text)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (!(f = fopen(path, "w")))
		return -1;
	fputs(text, f);
	return fclose(f);
}

static int write_policy(const char *dir, int add_limit)
{
	char text[2048];

	snprintf(text, sizeof(text), base_policy, add_limit);
	return write_file(dir, "10-base.cedar", text);
}

static void call(struct mcp_env *e, struct exchange *x, const char *session, int id,
		 const char *tool, const char *args)
{
	char headers[256] = "", body[512];

	if (session)
		snprintf(headers, sizeof(headers), "Mcp-Session-Id: %s\r\n", session);
	snprintf(body, sizeof(body),
		 "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":{\"name\":"
		 "\"%s\",\"arguments\":%s}}",
		 id, tool, args);
	post(x, e->orig_port, headers, body);
	run_agent(e, x);
}

static int reload(struct mcp_env *e, char **out)
{
	return run_capture(out, "%s/agentgatectl --instance %s policy reload 2>&1",
			   testlib_build_dir(), e->d.in.name);
}

TEST(mcp_policy)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	char dir[] = "/tmp/agpolicy.XXXXXX", more[PATH_MAX + 64];
	struct mcp_env e = { 0 };
	char *out = NULL;

	if (!ASSERT_OK_PTR(mkdtemp(dir), "policy dir") ||
	    !ASSERT_OK(write_policy(dir, 100), "policy file"))
		return;
	snprintf(more, sizeof(more), "\"policy\": {\"dir\": \"%s\"}", dir);
	/* No allow-list at all: only the policy set can let anything through. */
	if (!ASSERT_OK(env_start_with(&e, "mcppol", REPLY_JSON, "{\"name\": \"a\"}", more),
		       "environment"))
		goto out;
	if (test__start_subtest("list_filtered_by_policy")) {
		post(x, e.orig_port, "",
		     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{}}");
		run_agent(&e, x);
		ASSERT_STRHAS(x->response, "\"name\":\"echo\"", "permitted tool listed");
		ASSERT_STRHAS(x->response, "\"name\":\"add\"", "tool with an argument rule listed");
		ASSERT_NULL(strstr(x->response, "secret"), "forbidden tool hidden");
	}
	if (test__start_subtest("call_permitted")) {
		int before = tool_nseen(&e.tool);

		call(&e, x, NULL, 2, "echo", "{\"text\":\"hi\"}");
		ASSERT_STRHAS(x->response, "\"served\"", "the tool answered");
		ASSERT_EQ(tool_nseen(&e.tool), before + 1, "the call reached the tool server");
	}
	if (test__start_subtest("argument_rule_denies")) {
		int before = tool_nseen(&e.tool);

		call(&e, x, NULL, 3, "add", "{\"a\":101,\"b\":1}");
		ASSERT_STRHAS(x->response, "HTTP/1.1 200", "status 200");
		ASSERT_STRHAS(x->response, "\"isError\":true", "an isError result");
		ASSERT_STRHAS(x->response, "Denied by policy", "the denial text");
		ASSERT_STRHAS(x->response, "add-limit", "the deciding policy named");
		ASSERT_EQ(tool_nseen(&e.tool), before, "nothing reached the tool server");
		call(&e, x, NULL, 4, "add", "{\"a\":100,\"b\":1}");
		ASSERT_STRHAS(x->response, "\"served\"", "within the limit: allowed");
	}
	if (test__start_subtest("hidden_tool_unknown")) {
		int before = tool_nseen(&e.tool);

		call(&e, x, NULL, 5, "secret", "{}");
		ASSERT_STRHAS(x->response, "\"code\":-32602", "unknown-tool error code");
		ASSERT_STRHAS(x->response, "Unknown tool: secret", "unknown-tool message");
		ASSERT_EQ(tool_nseen(&e.tool), before, "nothing reached the tool server");
	}
	if (test__start_subtest("once_per_session")) {
		int before = tool_nseen(&e.tool);

		call(&e, x, "sess-1", 6, "once", "{}");
		ASSERT_STRHAS(x->response, "\"served\"", "first call in the session");
		call(&e, x, "sess-1", 7, "once", "{}");
		ASSERT_STRHAS(x->response, "Denied by policy", "second call in the session");
		ASSERT_STRHAS(x->response, "once-per-session", "the deciding policy named");
		call(&e, x, "sess-2", 8, "once", "{}");
		ASSERT_STRHAS(x->response, "\"served\"", "another session starts from zero");
		call(&e, x, NULL, 9, "once", "{}");
		ASSERT_STRHAS(x->response, "Denied by policy", "no session: no counters, refused");
		ASSERT_EQ(tool_nseen(&e.tool), before + 2, "only the allowed calls forwarded");
	}
	if (test__start_subtest("audit_names_policy")) {
		usleep(100000); /* records are group-committed */
		ASSERT_EQ(run_capture(&out, "grep '\"kind\":\"decision\"' %s/audit.log", e.d.state),
			  0, "decision records");
		if (out) {
			ASSERT_STRHAS(out, "\"policies\":[\"add-limit\"]", "forbid id recorded");
			ASSERT_STRHAS(out, "\"policies\":[\"t-for-a\"]", "permit id recorded");
			ASSERT_STRHAS(out, "\"rule\":\"policy\"", "decided by the policy set");
		}
		free(out);
		out = NULL;
	}
	if (test__start_subtest("reload_broken_keeps_running_set")) {
		ASSERT_OK(
		    write_file(dir, "20-broken.cedar", "permit (principal,\n  action ==\n);\n"),
		    "broken file");
		ASSERT_EQ(reload(&e, &out), 1, "agentgatectl policy reload exits 1");
		if (out)
			ASSERT_STRHAS(out, "20-broken.cedar:3:1",
				      "the error names file:line:column");
		free(out);
		out = NULL;
		call(&e, x, NULL, 10, "add", "{\"a\":101}");
		ASSERT_STRHAS(x->response, "Denied by policy", "still decided by the old set");
		call(&e, x, NULL, 11, "echo", "{}");
		ASSERT_STRHAS(x->response, "\"served\"", "the old set still permits");
		usleep(100000);
		ASSERT_EQ(
		    run_capture(&out, "grep '\"kind\":\"policy_reload\"' %s/audit.log", e.d.state),
		    0, "reload audited");
		if (out) {
			ASSERT_STRHAS(out, "\"ok\":false", "failure audited");
			ASSERT_STRHAS(out, "20-broken.cedar:3:1", "with the error");
		}
		free(out);
		out = NULL;
		run_capture(&out, "rm -f %s/20-broken.cedar", dir);
		free(out);
		out = NULL;
	}
	if (test__start_subtest("reload_valid_changes_decision")) {
		ASSERT_OK(write_policy(dir, 1000), "new policy");
		ASSERT_EQ(reload(&e, &out), 0, "agentgatectl policy reload");
		if (out)
			ASSERT_STRHAS(out, "policy reloaded: 4 policies", "summary");
		free(out);
		out = NULL;
		call(&e, x, NULL, 12, "add", "{\"a\":101}");
		ASSERT_STRHAS(x->response, "\"served\"", "the new limit applies");
		usleep(100000);
		ASSERT_EQ(
		    run_capture(&out, "grep '\"kind\":\"policy_reload\"' %s/audit.log", e.d.state),
		    0, "reload audited");
		if (out) {
			ASSERT_STRHAS(out, "\"ok\":true", "success audited");
			ASSERT_STRHAS(out, "\"digest\":\"", "with the set's digest");
		}
		free(out);
		out = NULL;
	}
	if (test__start_subtest("sighup_reload")) {
		ASSERT_OK(write_policy(dir, 10), "new policy");
		kill(e.d.pid, SIGHUP);
		ASSERT_TRUE(
		    log_has(&e.d, 3000, "policy_reload", "result=ok", "trigger=sighup", NULL),
		    "reload logged");
		call(&e, x, NULL, 13, "add", "{\"a\":11}");
		ASSERT_STRHAS(x->response, "Denied by policy", "the SIGHUP-loaded limit applies");
	}
out:
	env_stop(&e);
	run_capture(&out, "rm -rf %s", dir);
	free(out);
}

/* A policy set that does not parse fails the start, naming file:line:column. */
TEST(mcp_policy_bad_start)
{
	char dir[] = "/tmp/agpolicy.XXXXXX", more[PATH_MAX + 64];
	struct mcp_env e = { 0 };
	char *out = NULL;

	if (!ASSERT_OK_PTR(mkdtemp(dir), "policy dir") ||
	    !ASSERT_OK(write_file(dir, "a.cedar", "forbid (principal, action, resource)\nwhen {"),
		       "policy file"))
		return;
	snprintf(more, sizeof(more), "\"policy\": {\"files\": [\"%s/a.cedar\"]}", dir);
	ASSERT_NEQ(env_start_with(&e, "mcppolbad", REPLY_JSON, "{\"name\": \"a\"}", more), 0,
		   "the daemon does not start");
	ASSERT_TRUE(log_has(&e.d, 1000, "a.cedar:2:", NULL), "the error names the file");
	env_stop(&e);
	run_capture(&out, "rm -rf %s", dir);
	free(out);
}

static const char escalate_policy[] =
    "@id(\"see-t\")\n"
    "permit (principal == Agent::\"a\", action == Action::\"list\", resource in Server::\"t\");\n"
    "@id(\"small-add\")\n"
    "permit (principal == Agent::\"a\", action == Action::\"call\", resource == Tool::\"t/add\")\n"
    "when { context.args.a <= 5000 };\n"
    "@id(\"big-add\")\n"
    "@escalate(\"amounts above 5000 need a human\")\n"
    "permit (principal == Agent::\"a\", action == Action::\"call\", resource == Tool::\"t/add\")\n"
    "when { context.args.a > 5000 };\n";

/* Starts a big add as the agent; it stays open while the call is held. */
static pid_t big_add(struct mcp_env *e, struct exchange *x, int id)
{
	char body[256];
	pid_t pid;

	snprintf(body, sizeof(body),
		 "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":{\"name\":"
		 "\"add\",\"arguments\":{\"a\":6000,\"b\":1}}}",
		 id);
	post(x, e->orig_port, "Mcp-Session-Id: esc-1\r\n", body);
	pid = fork();
	if (pid == 0)
		_exit(run_in_cgroup(e->agent_cg, NOBODY_UID, agent_exchange, x));
	return pid;
}

TEST(mcp_escalation)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	char dir[] = "/tmp/agpolicy.XXXXXX", more[PATH_MAX + 96];
	struct mcp_env e = { 0 };
	char *out = NULL;
	long long id;
	pid_t pid;

	if (!ASSERT_OK_PTR(mkdtemp(dir), "policy dir") ||
	    !ASSERT_OK(write_file(dir, "10-escalate.cedar", escalate_policy), "policy file"))
		return;
	snprintf(more, sizeof(more), "\"policy\": {\"dir\": \"%s\"}, \"approval_timeout_ms\": 3000",
		 dir);
	if (!ASSERT_OK(env_start_with(&e, "mcpesc", REPLY_JSON, "{\"name\": \"a\"}", more),
		       "environment"))
		goto out;
	if (test__start_subtest("approved_call_goes_on")) {
		int before = tool_nseen(&e.tool);

		pid = big_add(&e, x, 1);
		id = held_approval_id(&e.d.in);
		ASSERT_GT(id, 0, "the call is listed as held");
		ASSERT_EQ(tool_nseen(&e.tool), before, "nothing reached the tool while held");
		run_capture(&out, "%s/agentgatectl --instance %s status", testlib_build_dir(),
			    e.d.in.name);
		ASSERT_STRHAS(out, "1 calls held for approval", "status counts it");
		free(out);
		out = NULL;
		ASSERT_EQ(run_capture(&out, "%s/agentgatectl --instance %s approve %lld --by alice",
				      testlib_build_dir(), e.d.in.name, id),
			  0, "approve");
		free(out);
		out = NULL;
		waitpid(pid, NULL, 0);
		ASSERT_STRHAS(x->response, "\"served\"", "the tool answered after approval");
		ASSERT_EQ(tool_nseen(&e.tool), before + 1, "the call reached the tool server");
	}
	if (test__start_subtest("denied_call_refused")) {
		int before = tool_nseen(&e.tool);

		pid = big_add(&e, x, 2);
		id = held_approval_id(&e.d.in);
		ASSERT_EQ(run_capture(&out, "%s/agentgatectl --instance %s deny %lld --by bob",
				      testlib_build_dir(), e.d.in.name, id),
			  0, "deny");
		free(out);
		out = NULL;
		waitpid(pid, NULL, 0);
		ASSERT_STRHAS(x->response, "\"isError\":true", "an isError result");
		ASSERT_STRHAS(x->response, "denied by an operator", "says a human refused");
		ASSERT_EQ(tool_nseen(&e.tool), before, "nothing reached the tool server");
	}
	if (test__start_subtest("timeout_refuses")) {
		int before = tool_nseen(&e.tool);

		pid = big_add(&e, x, 3);
		waitpid(pid, NULL, 0);
		ASSERT_STRHAS(x->response, "no approval in time", "refused when nobody decided");
		ASSERT_EQ(tool_nseen(&e.tool), before, "nothing reached the tool server");
		ASSERT_EQ(run_capture(&out, "%s/agentgatectl --instance %s approvals",
				      testlib_build_dir(), e.d.in.name),
			  0, "approvals");
		ASSERT_STRHAS(out, "no calls wait", "nothing left waiting");
		free(out);
		out = NULL;
	}
	if (test__start_subtest("unknown_id")) {
		ASSERT_EQ(run_capture(&out, "%s/agentgatectl --instance %s approve 999 2>&1",
				      testlib_build_dir(), e.d.in.name),
			  1, "approving nothing fails");
		ASSERT_STRHAS(out, "no call waits for approval 999", "says why");
		free(out);
		out = NULL;
	}
	if (test__start_subtest("audited")) {
		usleep(100000);
		ASSERT_EQ(run_capture(&out, "grep '\"kind\":\"approval\"' %s/audit.log", e.d.state), 0,
			  "approval records");
		ASSERT_STRHAS(out, "\"by\":\"alice\"", "who approved");
		ASSERT_STRHAS(out, "\"by\":\"bob\"", "who denied");
		ASSERT_STRHAS(out, "\"decision\":\"allow\"", "the approval");
		free(out);
		out = NULL;
		ASSERT_EQ(run_capture(&out, "grep -c '\"decision\":\"ask\"' %s/audit.log", e.d.state),
			  0, "the escalation itself recorded");
		free(out);
		out = NULL;
	}
out:
	env_stop(&e);
	run_capture(&out, "rm -rf %s", dir);
	free(out);
}

/* Tools whose annotations say what they do. */
static const char annotated_tools[] =
    "{\"tools\":[{\"name\":\"wipe\",\"inputSchema\":{\"type\":\"object\"},"
    "\"annotations\":{\"destructiveHint\":true}},"
    "{\"name\":\"echo\",\"inputSchema\":{\"type\":\"object\"},"
    "\"annotations\":{\"readOnlyHint\":true}}]}";

static const char t_for_a[] =
    "@id(\"t-for-a\")\n"
    "permit (principal == Agent::\"a\", action in [Action::\"call\", Action::\"list\"],\n"
    "        resource in Server::\"t\");\n";

static const char offline_cases[] =
    "{\"policies\": \".\", \"cases\": [{\"name\": \"wipe\", \"principal\": \"Agent::\\\"a\\\"\", "
    "\"action\": \"Action::\\\"call\\\"\", \"resource\": \"Tool::\\\"t/wipe\\\"\", "
    "\"decision\": \"deny\", \"policies\": [\"no-destructive-tools\"]}, "
    "{\"name\": \"echo\", \"principal\": \"Agent::\\\"a\\\"\", "
    "\"action\": \"Action::\\\"call\\\"\", \"resource\": \"Tool::\\\"t/echo\\\"\", "
    "\"decision\": \"allow\", \"policies\": [\"t-for-a\"]}]}";

/* The audit decision record of the call of tool; NULL when there is none. */
static json_t *live_decision(struct mcp_env *e, const char *tool)
{
	char *out = NULL, *line, *save = NULL;
	json_t *found = NULL;

	run_capture(&out, "grep '\"kind\":\"decision\"' %s/audit.log", e->d.state);
	for (line = strtok_r(out, "\n", &save); line && !found;
	     line = strtok_r(NULL, "\n", &save)) {
		json_t *rec = json_loads(line, 0, NULL);
		const char *t = json_string_value(json_object_get(rec, "tool"));

		if (t && !strcmp(t, tool))
			found = json_incref(rec);
		json_decref(rec);
	}
	free(out);
	return found;
}

/* policy explain --json of agent a calling t/tool, on the instance's inventory. */
static json_t *offline_explain(struct mcp_env *e, const char *dir, const char *tool)
{
	char *out = NULL;
	json_t *j;

	run_capture(&out,
		    "%s/agentgatectl --instance %s --state-dir %s policy explain --policies %s "
		    "--principal 'Agent::\"a\"' --action 'Action::\"call\"' "
		    "--resource 'Tool::\"t/%s\"' --json",
		    testlib_build_dir(), e->d.in.name, e->d.state, dir, tool);
	j = json_loads(out ? out : "", 0, NULL);
	free(out);
	return j;
}

/* The daemon and policy explain decide the same call alike. */
static void same_decision(struct mcp_env *e, const char *dir, const char *tool)
{
	json_t *live = live_decision(e, tool), *offline = offline_explain(e, dir, tool);

	ASSERT_OK_PTR(live, "the daemon's decision record");
	ASSERT_OK_PTR(offline, "policy explain --json");
	ASSERT_STREQ(json_string_value(json_object_get(offline, "decision")),
		     json_string_value(json_object_get(live, "decision")), "same decision");
	ASSERT_TRUE(
	    json_equal(json_object_get(offline, "determining"), json_object_get(live, "policies")),
	    "same deciding policies");
	json_decref(live);
	json_decref(offline);
}

/*
 * A server's destructive tool under the shipped no-destructive-tools
 * forbid: the daemon refuses it from the annotations the inventory
 * recorded, and `policy explain` and `policy test` on that inventory give
 * the daemon's answers, also for the tool its server permits.
 */
TEST(mcp_policy_offline_agrees)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	char dir[] = "/tmp/agpolicy.XXXXXX", more[PATH_MAX + 64];
	struct mcp_env e = { 0 };
	char *out = NULL;
	int before;

	if (!ASSERT_OK_PTR(mkdtemp(dir), "policy dir") ||
	    !ASSERT_OK(
		run_capture(&out, "cp %s/policies/00-agents.cedar %s/", testlib_src_dir(), dir),
		"the shipped policies") ||
	    !ASSERT_OK(write_file(dir, "10-t.cedar", t_for_a), "policy file") ||
	    !ASSERT_OK(write_file(dir, "cases.json", offline_cases), "test file"))
		goto out;
	snprintf(more, sizeof(more), "\"policy\": {\"dir\": \"%s\"}", dir);
	if (!ASSERT_OK(env_start_with(&e, "mcppoloff", REPLY_JSON, "{\"name\": \"a\"}", more),
		       "environment"))
		goto out;
	e.tool.list_result = annotated_tools;
	post(x, e.orig_port, "", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
	run_agent(&e, x);
	ASSERT_STRHAS(x->response, "\"name\":\"wipe\"", "wipe listed");
	before = tool_nseen(&e.tool);
	call(&e, x, NULL, 2, "wipe", "{}");
	ASSERT_STRHAS(x->response, "no-destructive-tools", "wipe refused by the forbid");
	ASSERT_EQ(tool_nseen(&e.tool), before, "nothing reached the tool server");
	call(&e, x, NULL, 3, "echo", "{}");
	ASSERT_STRHAS(x->response, "\"served\"", "echo allowed");
	same_decision(&e, dir, "wipe");
	same_decision(&e, dir, "echo");
	free(out);
	out = NULL;
	ASSERT_EQ(
	    run_capture(&out,
			"%s/agentgatectl --instance %s --state-dir %s policy test %s/cases.json",
			testlib_build_dir(), e.d.in.name, e.d.state, dir),
	    0, "policy test passes the daemon's answers");
	ASSERT_STRHAS(out, "2 passed, 0 failed", "both cases");
out:
	env_stop(&e);
	free(out);
	out = NULL;
	run_capture(&out, "rm -rf %s", dir);
	free(out);
}

static const char operator_policy[] =
    "@id(\"t-for-a\")\n"
    "permit (principal == Agent::\"a\", action in [Action::\"call\", Action::\"list\"],\n"
    "        resource in Server::\"t\");\n"
    "\n"
    "@id(\"echo-for-alice\")\n"
    "forbid (principal, action == Action::\"call\", resource == Tool::\"t/echo\")\n"
    "unless { context has operator && context.operator == User::\"alice\" };\n";

/*
 * Decision records carry the agent's operator, so `policy simulate` of the
 * set that decided them, which reads context.operator, replays them alike.
 */
TEST(mcp_policy_simulate_operator)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	char dir[] = "/tmp/agpolicy.XXXXXX", more[PATH_MAX + 64];
	struct mcp_env e = { 0 };
	json_t *live = NULL;
	char *out = NULL;

	if (!ASSERT_OK_PTR(mkdtemp(dir), "policy dir") ||
	    !ASSERT_OK(write_file(dir, "10-operator.cedar", operator_policy), "policy file"))
		goto out;
	snprintf(more, sizeof(more), "\"policy\": {\"dir\": \"%s\"}", dir);
	if (!ASSERT_OK(env_start_with(&e, "mcpolop", REPLY_JSON,
				      "{\"name\": \"a\", \"operator\": \"alice\"}", more),
		       "environment"))
		goto out;
	call(&e, x, NULL, 1, "echo", "{\"text\": \"hi\"}");
	ASSERT_STRHAS(x->response, "\"served\"", "allowed: a acts for alice");
	call(&e, x, NULL, 2, "add", "{\"a\": 1}");
	live = live_decision(&e, "echo");
	ASSERT_STREQ(json_string_value(json_object_get(live, "operator")), "alice",
		     "the record names the operator");
	json_decref(live);
	ASSERT_EQ(run_capture(&out,
			      "%s/agentgatectl --instance %s --state-dir %s policy simulate "
			      "--policies %s %s/audit.log 2>&1",
			      testlib_build_dir(), e.d.in.name, e.d.state, dir, e.d.state),
		  0, "simulate exits 0: nothing changes");
	ASSERT_STRHAS(out, "2 decisions replayed, 0 would change", "both replayed alike");
out:
	env_stop(&e);
	free(out);
	out = NULL;
	run_capture(&out, "rm -rf %s", dir);
	free(out);
}
