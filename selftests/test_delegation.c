// SPDX-License-Identifier: GPL-2.0
/*
 * Sub-agents (lib/delegation.h): cgroup paths to agent chains, the
 * "delegated_by" declaration, the chain in policy requests, and, with a
 * real agentgated, agents started by `agentgatectl run` from inside other
 * agents without root: what the daemon names them, what policies see of
 * them, and that the kernel restricts them exactly like their root agent.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "delegation.h"
#include "idplib.h"
#include "mcplib.h"
#include "policy.h"
#include "policy_request.h"
#include "test.h"
#include "testlib.h"

/* ---- unit: paths, components, chains --------------------------------- */

static void expect_chain(const struct ag_conf *c, const char *rel, const char *want, bool cut)
{
	struct ag_delegation dg;
	char got[AG_DELEGATION_MAX * AG_NAME_LEN] = "";
	size_t o = 0;

	ag_delegation_chain(c, "A", rel, &dg);
	for (size_t i = 0; i < dg.n; i++)
		o += snprintf(got + o, sizeof(got) - o, "%s%s", i ? ">" : "", dg.name[i]);
	ASSERT_STREQ(got, want, rel);
	ASSERT_EQ(dg.cut, cut, rel);
	ASSERT_STREQ(dg.sub_cgroup, rel, "sub_cgroup is the path");
}

static int write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -1;
	fputs(text, f);
	return fclose(f);
}

TEST(delegation_chain)
{
	char by_b[1][AG_NAME_LEN] = { "A" }, by_c[1][AG_NAME_LEN] = { "B" };
	struct ag_agent_conf agents[] = {
		{ .name = "B", .delegated_by = by_b, .nr_delegated_by = 1 },
		{ .name = "C", .delegated_by = by_c, .nr_delegated_by = 1 },
		{ .name = "D" },
	};
	struct ag_conf c = { .agents = agents, .nr_agents = 3 };
	char name[AG_NAME_LEN], list[256], long_name[64];
	struct ag_delegation dg;

	if (test__start_subtest("components")) {
		ASSERT_OK(ag_delegation_component("B-456", 5, name), "B-456");
		ASSERT_STREQ(name, "B", "pid suffix stripped");
		ASSERT_OK(ag_delegation_component("B", 1, name), "B");
		ASSERT_STREQ(name, "B", "no suffix");
		ASSERT_OK(ag_delegation_component("my-agent-7", 10, name), "dashes in the name");
		ASSERT_STREQ(name, "my-agent", "only the last -<digits> goes");
		ASSERT_OK(ag_delegation_component("B-/x", 2, name), "length bounds the component");
		ASSERT_STREQ(name, "B-", "a dash without digits stays");
		ASSERT_EQ(ag_delegation_component("-5", 2, name), -EINVAL, "nothing before -5");
		ASSERT_EQ(ag_delegation_component(".x-1", 4, name), -EINVAL, "leading dot");
		ASSERT_EQ(ag_delegation_component("a b-1", 5, name), -EINVAL, "space");
		memset(long_name, 'x', 40);
		strcpy(long_name + 40, "-1");
		ASSERT_EQ(ag_delegation_component(long_name, 42, name), -EINVAL, "too long");
	}
	if (test__start_subtest("chains")) {
		expect_chain(&c, "", "A", false);
		expect_chain(&c, "run-12", "A", false);
		expect_chain(&c, "run-12/B-34", "A>B", false);
		expect_chain(&c, "run-12/B", "A>B", false);
		expect_chain(&c, "run-12/B-34/C-56", "A>B>C", false);
		/* Undeclared names stop the chain where they appear. */
		expect_chain(&c, "run-12/admin-5", "A", true);
		expect_chain(&c, "run-12/B-34/admin-9/C-1", "A>B", true);
		expect_chain(&c, "run-12/C-3", "A", true);	 /* C is B's, not A's */
		expect_chain(&c, "run-12/D-3", "A", true);	 /* D declares nobody */
		expect_chain(&c, "run-12/B-3/B-4", "A>B", true); /* B is not B's */
		expect_chain(&c, "run-12/-5", "A", true);
		/* Only agentgatectl run's cgroup starts a chain. */
		expect_chain(&c, "x/B-3", "A", true);
		expect_chain(&c, "run-x/B-3", "A", true);
	}
	if (test__start_subtest("fmt")) {
		ag_delegation_chain(&c, "A", "run-1/B-2/C-3", &dg);
		ASSERT_STREQ(ag_delegation_fmt(&dg, list, sizeof(list)), "A,B",
			     "before the caller");
		ag_delegation_chain(&c, "A", "run-1", &dg);
		ASSERT_STREQ(ag_delegation_fmt(&dg, list, sizeof(list)), "", "root agent: none");
	}
}

TEST(delegation_find)
{
	char dir[] = "/tmp/agdelegfind.XXXXXX", path[PATH_MAX], rel[AG_DELEGATION_PATH];
	char *junk = NULL;
	struct ag_err err;
	struct stat st;
	size_t n;

	if (!ASSERT_OK_PTR(mkdtemp(dir), "tree"))
		return;
	/* Inodes of a plain directory tree stand in for cgroup ids. */
	n = (size_t)snprintf(path, sizeof(path), "%s", dir);
	for (int i = 1; i <= 10; i++) {
		n += (size_t)snprintf(path + n, sizeof(path) - n, i == 1 ? "/run-%d" : "/s%d-1", i);
		if (!ASSERT_OK(mkdir(path, 0755), "mkdir"))
			goto out;
	}
	snprintf(path, sizeof(path), "%s/run-1/s2-1/s3-1", dir);
	if (ASSERT_OK(stat(path, &st), "stat") &&
	    ASSERT_OK(ag_delegation_find(dir, st.st_ino, rel, sizeof(rel), &err), "found"))
		ASSERT_STREQ(rel, "run-1/s2-1/s3-1", "relative path");
	if (ASSERT_OK(stat(dir, &st), "stat root") &&
	    ASSERT_OK(ag_delegation_find(dir, st.st_ino, rel, sizeof(rel), &err), "root"))
		ASSERT_STREQ(rel, "", "the root itself");
	ASSERT_EQ(ag_delegation_find(dir, 1, rel, sizeof(rel), &err), -ENOENT, "unknown id");
	/* Depth 9 is beyond the search: a bounded walk, not a complete one. */
	snprintf(path, sizeof(path), "%s/run-1/s2-1/s3-1/s4-1/s5-1/s6-1/s7-1/s8-1/s9-1", dir);
	if (ASSERT_OK(stat(path, &st), "stat deep"))
		ASSERT_EQ(ag_delegation_find(dir, st.st_ino, rel, sizeof(rel), &err), -ENOENT,
			  "too deep");
	snprintf(path, sizeof(path), "%s/run-1/s2-1/s3-1/s4-1/s5-1/s6-1/s7-1/s8-1", dir);
	if (ASSERT_OK(stat(path, &st), "stat depth 8"))
		ASSERT_OK(ag_delegation_find(dir, st.st_ino, rel, sizeof(rel), &err), "depth 8");
	ASSERT_EQ(ag_delegation_find(dir, st.st_ino, rel, 8, &err), -ENAMETOOLONG, "small buffer");
out:
	run_capture(&junk, "rm -rf %s", dir);
	free(junk);
}

TEST(delegation_config)
{
	char dir[] = "/tmp/agdelegconf.XXXXXX", path[PATH_MAX];
	static const struct {
		const char *json, *error; /* error NULL: loads */
	} cases[] = {
		{ "{\"agents\": [{\"name\": \"B\", \"delegated_by\": [\"A\", \"orch\"]}]}", NULL },
		{ "{\"agents\": [{\"name\": \"B\", \"delegated_by\": [\"a b\"]}]}",
		  "$.agents[0].delegated_by[0]" },
		{ "{\"agents\": [{\"name\": \"B\", \"delegated_by\": [\"B\"]}]}", "itself" },
		{ "{\"agents\": [{\"name\": \"B\", \"delegated_by\": [\"A\", \"A\"]}]}",
		  "duplicate" },
		{ "{\"agents\": [{\"name\": \"B\", \"delegated_by\": \"A\"}]}",
		  "$.agents[0].delegated_by" },
	};
	struct ag_conf c;
	struct ag_err err;

	if (!ASSERT_OK_PTR(mkdtemp(dir), "dir"))
		return;
	snprintf(path, sizeof(path), "%s/agentgate.json", dir);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int ret;

		if (!ASSERT_OK(write_text(path, cases[i].json), "config file"))
			break;
		ret = ag_conf_load(&c, path, &err);
		if (!cases[i].error) {
			if (ASSERT_OK(ret, cases[i].json) && ASSERT_EQ(c.nr_agents, 1, "agents") &&
			    ASSERT_EQ(c.agents[0].nr_delegated_by, 2, "delegated_by")) {
				ASSERT_STREQ(c.agents[0].delegated_by[0], "A", "first");
				ASSERT_STREQ(c.agents[0].delegated_by[1], "orch", "second");
			}
			ag_conf_free(&c);
		} else if (ASSERT_NEQ(ret, 0, cases[i].json)) {
			ASSERT_STRHAS(err.msg, cases[i].error, "error names the problem");
		}
	}
	unlink(path);
	rmdir(dir);
}

/* Principal B with and without its chain A > B in the entities. */
TEST(delegation_policy)
{
	static const char text[] = "@id(\"sub-of-a\")\n"
				   "permit (principal in Agent::\"A\", action, resource)\n"
				   "when { context.delegation.contains(\"A\") };\n";
	const char *const chain[] = { "A", "B" };
	struct ag_policy_call call = {
		.agent = "B",
		.server = "t",
		.target = AG_TARGET_TOOL,
		.name = "echo",
		.delegation = chain,
		.n_delegation = 1,
	};
	struct ag_policy_error perr = { 0 };
	struct ag_entities *plain = NULL, *chained = NULL;
	struct ag_policy_set *set;
	struct ag_policy_verdict v;
	struct ag_policy_result res;
	json_t *base, *arr = NULL, *ctx;

	ag_policy_result_init(&res);
	set = ag_policy_parse_text("t.cedar", text, sizeof(text) - 1, &perr);
	/* The entity store already knows B, with an attribute and a parent. */
	base = json_loads("[{\"uid\": {\"type\": \"Agent\", \"id\": \"B\"}, \"attrs\": {\"team\": "
			  "\"x\"}, \"parents\": [{\"type\": \"Team\", \"id\": \"x\"}]}]",
			  0, NULL);
	if (!ASSERT_OK_PTR(set, perr.msg) || !ASSERT_OK_PTR(base, "base entities"))
		goto out;
	arr = ag_policy_delegation_entities(base, chain, 2);
	if (!ASSERT_OK_PTR(arr, "chain entities"))
		goto out;
	ASSERT_EQ(json_array_size(json_object_get(json_array_get(base, 0), "parents")), 1,
		  "base untouched");
	ASSERT_EQ(json_array_size(json_object_get(json_array_get(arr, 0), "parents")), 2,
		  "B gets parent A, keeps its own");
	plain = ag_entities_from_json(base, &perr);
	chained = ag_entities_from_json(arr, &perr);
	if (!ASSERT_OK_PTR(plain, perr.msg) || !ASSERT_OK_PTR(chained, perr.msg))
		goto out;
	ctx = ag_policy_call_context(&call, NULL);
	if (ASSERT_OK_PTR(ctx, "context")) {
		char *s = json_dumps(json_object_get(ctx, "delegation"), JSON_COMPACT);

		ASSERT_STREQ(s ? s : "", "[\"A\"]", "context.delegation");
		free(s);
		json_decref(ctx);
	}
	ag_policy_call_decide(set, chained, &call, &res, &v);
	ASSERT_EQ(v.kind, AG_OUTCOME_ALLOW, "B in A with the chain");
	ag_policy_call_decide(set, plain, &call, &res, &v);
	ASSERT_EQ(v.kind, AG_OUTCOME_HIDDEN, "B alone is not in A");
	call.n_delegation = 0;
	ctx = ag_policy_call_context(&call, NULL);
	if (ASSERT_OK_PTR(ctx, "context")) {
		ASSERT_EQ(json_array_size(json_object_get(ctx, "delegation")), 0,
			  "root agent: empty delegation");
		json_decref(ctx);
	}
out:
	ag_entities_free(plain);
	ag_entities_free(chained);
	json_decref(arr);
	json_decref(base);
	ag_policy_set_free(set);
	ag_policy_result_fini(&res);
}

/* ---- end to end ------------------------------------------------------- */

/*
 * client.sh CTL INSTANCE PORT ACTION...: "sub AGENT ACTION..." starts the
 * rest as sub-agent AGENT (no root: it runs inside an agent), "call TOOL"
 * makes one governed tools/call, "bypass" connects to a denied address.
 */
static const char client_sh[] =
    "#!/bin/sh\n"
    "ctl=$1 inst=$2 port=$3\n"
    "shift 3\n"
    "case \"$1\" in\n"
    "sub) agent=$2; shift 2\n"
    "     exec \"$ctl\" --instance \"$inst\" run --agent \"$agent\" -- \"$0\" \"$ctl\" \"$inst\" "
    "\"$port\" \"$@\" ;;\n"
    "call) exec curl -sS --noproxy '*' -m 10 -H 'Content-Type: application/json' "
    "-H 'Accept: application/json, text/event-stream' "
    "-d \"{\\\"jsonrpc\\\":\\\"2.0\\\",\\\"id\\\":1,\\\"method\\\":\\\"tools/call\\\","
    "\\\"params\\\":{\\\"name\\\":\\\"$2\\\",\\\"arguments\\\":{}}}\" "
    "\"http://127.0.0.1:$port/mcp\" ;;\n"
    "bypass) exec bash -c \"exec 3<>/dev/tcp/127.0.0.3/$port && echo connected\" 2>&1 ;;\n"
    "whoami) cat /proc/self/cgroup ;;\n"
    "esac\n";

static const char policy[] =
    "@id(\"sub-of-a\")\n"
    "permit (principal in Agent::\"A\", action in [Action::\"call\", Action::\"list\"],\n"
    "        resource == Tool::\"t/echo\");\n"
    "@id(\"only-a\")\n"
    "permit (principal == Agent::\"A\", action in [Action::\"call\", Action::\"list\"],\n"
    "        resource == Tool::\"t/add\");\n";

struct deleg_env {
	struct mcp_env e;
	char dir[32];
	char script[64];
};

/* Runs agent A (as nobody) with client.sh's actions; *out its output. */
static int as_agent_a(struct deleg_env *de, char **out, const char *actions)
{
	free(*out);
	*out = NULL;
	return run_capture(out,
			   "%s/agentgatectl --instance %s run --agent A --user nobody -- %s "
			   "%s/agentgatectl %s %u %s 2>&1",
			   testlib_build_dir(), de->e.d.in.name, de->script, testlib_build_dir(),
			   de->e.d.in.name, de->e.orig_port, actions);
}

/* The decision records whose agent is named name, in one string. */
static char *decisions_of(struct deleg_env *de, const char *name)
{
	char *out = NULL;

	run_capture(&out, "grep '\"kind\":\"decision\"' %s/audit.log | grep '\"name\":\"%s\"'",
		    de->e.d.state, name);
	return out;
}

TEST(delegation)
{
	char more[PATH_MAX + 128], *out = NULL, *rec = NULL, *bypass_a = NULL;
	struct deleg_env de = { .dir = "/tmp/agdeleg.XXXXXX" };
	bool started = false;

	if (!ASSERT_OK_PTR(mkdtemp(de.dir), "dir") || !ASSERT_OK(chmod(de.dir, 0755), "chmod"))
		return;
	snprintf(de.script, sizeof(de.script), "%s/client.sh", de.dir);
	snprintf(more, sizeof(more), "%s/10.cedar", de.dir);
	if (!ASSERT_OK(write_text(de.script, client_sh), "client.sh") ||
	    !ASSERT_OK(chmod(de.script, 0755), "chmod client.sh") ||
	    !ASSERT_OK(write_text(more, policy), "policy"))
		goto out;
	snprintf(more, sizeof(more),
		 "\"policy\": {\"dir\": \"%s\"}, \"rules\": [{\"dest\": \"127.0.0.3\", "
		 "\"verdict\": \"deny\"}]",
		 de.dir);
	/* Minted assertions carry the delegation chain in their act claim. */
	de.e.server_json = "\"credential\": {\"type\": \"assertion\", "
			   "\"audience\": \"https://tools.example/t\"}";
	if (!ASSERT_OK(env_start_with(&de.e, "deleg", REPLY_JSON,
				      "{\"name\": \"A\"}, "
				      "{\"name\": \"B\", \"delegated_by\": [\"A\"]}, "
				      "{\"name\": \"C\", \"delegated_by\": [\"B\"]}",
				      more),
		       "environment"))
		goto out;
	started = true;

	if (test__start_subtest("sub_agent_needs_no_root")) {
		ASSERT_EQ(as_agent_a(&de, &out, "sub B whoami"), 0, "run B inside A");
		ASSERT_STRHAS(out, "/agents/A/run-", "B below A's run cgroup");
		ASSERT_STRHAS(out, "/B-", "in its own B-<pid> cgroup");
	}
	if (test__start_subtest("named_by_calling_agent")) {
		ASSERT_EQ(as_agent_a(&de, &out, "sub B call echo"), 0, "B calls echo");
		ASSERT_STRHAS(out, "\"served\"", "principal in Agent::\"A\" covers B");
		rec = decisions_of(&de, "B");
		ASSERT_STRHAS(rec ? rec : "", "\"delegation\":[\"A\"]", "audit: B, delegated by A");
		ASSERT_TRUE(log_has(&de.e.d, 2000, "agent=\"B\"", NULL), "log names B");
	}
	if (test__start_subtest("assertion_act_chain")) {
		char e2e[PATH_MAX], tok[4096], jwks[PATH_MAX];

		if (!idp_installed(e2e, sizeof(e2e))) {
			test__skip("jose not installed (scripts/e2e-deps.sh)");
		} else {
			ASSERT_EQ(as_agent_a(&de, &out, "sub B call echo"), 0, "B calls echo");
			tool_seen_bearer(&de.e.tool, tool_nseen(&de.e.tool) - 1, tok, sizeof(tok));
			ASSERT_OK(jwks_save(&de.e.d, jwks, sizeof(jwks)), "keys jwks");
			ASSERT_EQ(jose_verify(e2e, jwks, tok, "https://tools.example/t",
					      "[\"A\",\"B\"]", &out),
				  0, "act: B, delegated by A, verified by jose");
			ASSERT_EQ(as_agent_a(&de, &out, "call echo"), 0, "A calls echo");
			tool_seen_bearer(&de.e.tool, tool_nseen(&de.e.tool) - 1, tok, sizeof(tok));
			ASSERT_EQ(jose_verify(e2e, jwks, tok, "https://tools.example/t", "[\"A\"]",
					      &out),
				  0, "act: A alone");
		}
	}
	if (test__start_subtest("principal_equals_root_only")) {
		ASSERT_EQ(as_agent_a(&de, &out, "sub B call add"), 0, "B calls add");
		ASSERT_STRHAS(out, "Unknown tool", "principal == Agent::\"A\" is not B");
		ASSERT_EQ(as_agent_a(&de, &out, "call add"), 0, "A calls add");
		ASSERT_STRHAS(out, "\"served\"", "A itself may");
	}
	if (test__start_subtest("undeclared_name_is_the_parent")) {
		ASSERT_EQ(as_agent_a(&de, &out, "sub admin call echo"), 0, "admin calls echo");
		ASSERT_STRHAS(out, "\"served\"", "decided as A");
		free(rec);
		rec = decisions_of(&de, "A");
		ASSERT_STRHAS(rec ? rec : "", "\"sub_cgroup\":\"run-",
			      "audit shows the sub-cgroup");
		ASSERT_STRHAS(rec ? rec : "", "/admin-", "named admin by the agent");
		ASSERT_TRUE(log_has(&de.e.d, 2000, "delegation", "agent=\"A\"", "sub_cgroup=\"run-",
				    "/admin-", NULL),
			    "log line shows the sub-cgroup");
		free(rec);
		rec = decisions_of(&de, "admin");
		ASSERT_STREQ(rec ? rec : "", "", "no record names admin");
	}
	if (test__start_subtest("three_levels")) {
		ASSERT_EQ(as_agent_a(&de, &out, "sub B sub C call echo"), 0, "C inside B inside A");
		ASSERT_STRHAS(out, "\"served\"", "C is in A through B");
		free(rec);
		rec = decisions_of(&de, "C");
		ASSERT_STRHAS(rec ? rec : "", "\"delegation\":[\"A\",\"B\"]", "audit: A > B > C");
	}
	if (test__start_subtest("kernel_still_enforces")) {
		as_agent_a(&de, &bypass_a, "bypass");
		/* bash fails the redirection: the exit status is 1 for both. */
		as_agent_a(&de, &out, "sub B bypass");
		ASSERT_NULL(strstr(out, "connected"), "B's direct connect refused");
		ASSERT_NULL(strstr(bypass_a ? bypass_a : "connected", "connected"),
			    "A's direct connect refused");
		ASSERT_STRHAS(out, "Operation not permitted", "B gets EPERM");
		ASSERT_STREQ(out, bypass_a ? bypass_a : "", "same error as A");
	}
	if (test__start_subtest("outside_an_agent_without_root")) {
		ASSERT_NEQ(run_capture(&out,
				       "setpriv --reuid=65534 --regid=65534 --clear-groups "
				       "%s/agentgatectl --instance %s run --agent B -- true 2>&1",
				       testlib_build_dir(), de.e.d.in.name),
			   0, "refused");
		ASSERT_STRHAS(out, "not root, and not inside an agent", "says why");
	}
out:
	if (started)
		env_stop(&de.e);
	free(out);
	free(rec);
	free(bypass_a);
	unlink(de.script);
	snprintf(more, sizeof(more), "%s/10.cedar", de.dir);
	unlink(more);
	rmdir(de.dir);
}
