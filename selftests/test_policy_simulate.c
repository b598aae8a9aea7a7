// SPDX-License-Identifier: GPL-2.0
/*
 * agentgatectl policy simulate: a hand-made audit log with the daemon's
 * decision records (docs/audit.md), replayed against candidate sets.  The
 * log is written here rather than by a daemon so that seq, ts and the
 * arguments are fixed and the expected lines can be exact; the hashed
 * record goes through the real redaction (ag_audit_redact).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "test.h"
#include "testlib.h"

#define BASE                                                                          \
	"@id(\"base\")\n"                                                             \
	"permit (principal == Agent::\"a\",\n"                                        \
	"        action in [Action::\"call\", Action::\"list\", Action::\"read\"],\n" \
	"        resource in Server::\"t\");\n"

struct simlog {
	char dir[64];
	char log[128];
	FILE *f;
	int seq;
};

/*
 * One decision record as mcp_audit_decision() in daemon/mcp_audit.c writes it; args
 * is JSON text or NULL, hash says whether the daemon hashed it.
 */
static void rec(struct simlog *l, const char *ts, const char *method, const char *key,
		const char *name, const char *args, bool hash, const char *decision,
		const char *session)
{
	json_t *r =
	    json_pack("{s:I,s:s,s:s,s:{s:s,s:i},s:s,s:s,s:i,s:s,s:b,s:s,s:s?,s:s}", "seq",
		      (json_int_t)l->seq, "ts", ts, "kind", "decision", "agent", "name", "a", "pid",
		      100, "server", "t", "method", method, "id", l->seq + 100, "decision",
		      decision, "hidden", 0, "rule", "policy", "session", session, "prev", "0");
	struct ag_err err;
	char *line;

	l->seq++;
	if (key)
		json_object_set_new(r, key, json_string(name));
	if (args)
		json_object_set_new(r, "args", json_loads(args, 0, NULL));
	if (hash)
		ASSERT_OK(ag_audit_redact(r, "args", AG_AUDIT_REDACT_HASH, &err), "redact");
	line = json_dumps(r, JSON_COMPACT | JSON_SORT_KEYS);
	fprintf(l->f, "%s\n", line);
	free(line);
	json_decref(r);
}

static bool simlog_create(struct simlog *l)
{
	memset(l, 0, sizeof(*l));
	strcpy(l->dir, "/tmp/agentgate-sim-XXXXXX");
	if (!ASSERT_OK_PTR(mkdtemp(l->dir), "mkdtemp"))
		return false;
	snprintf(l->log, sizeof(l->log), "%s/audit.log", l->dir);
	l->f = fopen(l->log, "w");
	if (!ASSERT_OK_PTR(l->f, "audit log"))
		return false;
	/* Not a decision: neither replayed nor counted. */
	fprintf(l->f, "{\"agent\":{\"name\":\"a\"},\"kind\":\"connect\",\"prev\":\"0\","
		      "\"seq\":0,\"server\":\"t\",\"ts\":\"2026-11-22T09:59:00.000000000Z\"}\n");
	l->seq = 1;
	rec(l, "2026-11-22T10:00:01.000000001Z", "tools/call", "tool", "echo", "{\"text\":\"hi\"}",
	    false, "allow", "s1");
	rec(l, "2026-11-22T10:00:02.000000002Z", "tools/call", "tool", "add", "{\"a\":5,\"b\":1}",
	    false, "allow", NULL);
	rec(l, "2026-11-22T10:00:03.000000003Z", "tools/call", "tool", "add", "{\"a\":50,\"b\":1}",
	    false, "allow", NULL);
	rec(l, "2026-11-22T10:00:04.000000004Z", "tools/call", "tool", "add", "{\"a\":70,\"b\":1}",
	    true, "allow", NULL);
	rec(l, "2026-11-22T10:00:05.000000005Z", "tools/call", "tool", "echo", "{\"text\":\"yo\"}",
	    false, "allow", "s1");
	/* A call without a tool name: nothing a policy could decide. */
	rec(l, "2026-11-22T10:00:06.000000006Z", "tools/call", NULL, NULL, NULL, false, "deny",
	    NULL);
	rec(l, "2026-11-22T23:00:07.000000007Z", "resources/read", "resource", "readme", NULL,
	    false, "allow", NULL);
	fclose(l->f);
	l->f = NULL;
	return true;
}

static bool put_policy(const struct simlog *l, const char *text)
{
	char path[160];
	FILE *f;

	snprintf(path, sizeof(path), "%s/candidate.cedar", l->dir);
	if (!(f = fopen(path, "w")))
		return false;
	fputs(text, f);
	return !fclose(f);
}

/*
 * A held call a human decided (approved: "allow" or "deny"), then a small
 * call that the candidate permits only after an approval in the session.
 */
static bool esc_log(struct simlog *l, const char *approved)
{
	l->f = fopen(l->log, "w");
	if (!ASSERT_OK_PTR(l->f, "audit log"))
		return false;
	l->seq = 0;
	rec(l, "2026-11-22T10:00:00.000000000Z", "tools/call", "tool", "pay", "{\"amount\":9000}",
	    false, "ask", "s2");
	fprintf(l->f,
		"{\"agent\":{\"name\":\"a\"},\"approval\":1,\"by\":\"op\",\"decision\":\"%s\","
		"\"id\":100,\"kind\":\"approval\",\"prev\":\"0\",\"seq\":1,\"server\":\"t\","
		"\"session\":\"s2\",\"tool\":\"pay\",\"ts\":\"2026-11-22T10:00:01.000000000Z\"}\n",
		approved);
	l->seq = 2;
	rec(l, "2026-11-22T10:00:02.000000000Z", "tools/call", "tool", "pay", "{\"amount\":10}",
	    false, "allow", "s2");
	return ASSERT_OK(fclose(l->f), "close");
}

/* Runs simulate over the log with the candidate; *out is what it printed. */
static int simulate(const struct simlog *l, const char *extra, char **out)
{
	return run_capture(out,
			   "%s/agentgatectl policy simulate --policies %s/candidate.cedar %s %s "
			   "2>&1",
			   testlib_build_dir(), l->dir, extra, l->log);
}

TEST(policy_simulate)
{
	struct simlog l;
	char *out = NULL;

	if (!simlog_create(&l))
		goto out;
	if (test__start_subtest("nothing changes") && ASSERT_TRUE(put_policy(&l, BASE), "policy")) {
		/* The base set reads no arguments: the hashed record replays too. */
		ASSERT_EQ(simulate(&l, "", &out), 0, "exit");
		ASSERT_STREQ(out,
			     "6 decisions replayed, 0 would change, 0 undetermined (arguments not "
			     "recorded), 1 skipped (not a governed call)\n",
			     "output");
		free(out), out = NULL;
	}
	if (test__start_subtest("forbid one tool") &&
	    ASSERT_TRUE(put_policy(&l, BASE "@id(\"no-echo\") @reason(\"echo is retired\")\n"
					    "forbid (principal, action == Action::\"call\",\n"
					    "        resource == Tool::\"t/echo\");\n"),
			"policy")) {
		ASSERT_EQ(simulate(&l, "", &out), 1, "exit");
		ASSERT_STREQ(out,
			     "seq 1 2026-11-22T10:00:01.000000001Z a call t/echo: allow -> deny by "
			     "no-echo: echo is retired\n"
			     "seq 5 2026-11-22T10:00:05.000000005Z a call t/echo: allow -> deny by "
			     "no-echo: echo is retired\n"
			     "6 decisions replayed, 2 would change, 0 undetermined (arguments not "
			     "recorded), 1 skipped (not a governed call)\n",
			     "output");
		free(out), out = NULL;
	}
	if (test__start_subtest("argument condition") &&
	    ASSERT_TRUE(put_policy(&l, BASE "@id(\"add-limit\")\n"
					    "forbid (principal, action == Action::\"call\",\n"
					    "        resource == Tool::\"t/add\")\n"
					    "when { context.args.a > 10 };\n"),
			"policy")) {
		ASSERT_EQ(simulate(&l, "", &out), 1, "exit");
		ASSERT_STREQ(out,
			     "seq 3 2026-11-22T10:00:03.000000003Z a call t/add: allow -> deny by "
			     "add-limit: forbidden by add-limit\n"
			     "seq 4 2026-11-22T10:00:04.000000004Z a call t/add: allow -> "
			     "undetermined: arguments not recorded\n"
			     "5 decisions replayed, 1 would change, 1 undetermined (arguments not "
			     "recorded), 1 skipped (not a governed call)\n",
			     "output");
		free(out), out = NULL;
	}
	if (test__start_subtest("arguments read only elsewhere") &&
	    ASSERT_TRUE(put_policy(&l, BASE "@id(\"echo-hi\")\n"
					    "forbid (principal, action == Action::\"call\",\n"
					    "        resource == Tool::\"t/echo\")\n"
					    "when { context.args.text == \"hi\" };\n"),
			"policy")) {
		/* No policy that could match t/add reads its arguments: decided. */
		ASSERT_EQ(simulate(&l, "", &out), 1, "exit");
		ASSERT_STREQ(out,
			     "seq 1 2026-11-22T10:00:01.000000001Z a call t/echo: allow -> deny by "
			     "echo-hi: forbidden by echo-hi\n"
			     "6 decisions replayed, 1 would change, 0 undetermined (arguments not "
			     "recorded), 1 skipped (not a governed call)\n",
			     "output");
		free(out), out = NULL;
	}
	if (test__start_subtest("session counts rebuilt") &&
	    ASSERT_TRUE(put_policy(&l, BASE
				   "@id(\"echo-once\")\n"
				   "forbid (principal, action == Action::\"call\",\n"
				   "        resource == Tool::\"t/echo\")\n"
				   "when { context has session && context.session.calls has echo "
				   "&& context.session.calls.echo >= 1 };\n"),
			"policy")) {
		ASSERT_EQ(simulate(&l, "", &out), 1, "exit");
		ASSERT_STRHAS(out,
			      "seq 5 2026-11-22T10:00:05.000000005Z a call t/echo: allow -> deny "
			      "by echo-once: forbidden by echo-once\n6 decisions replayed, 1 would",
			      "only the second call of the session");
		free(out), out = NULL;
	}
	if (test__start_subtest("time from the record") &&
	    ASSERT_TRUE(put_policy(&l,
				   BASE "@id(\"office-hours\")\n"
					"forbid (principal, action == Action::\"read\", resource)\n"
					"when { context.time.hour >= 22 };\n"),
			"policy")) {
		ASSERT_EQ(simulate(&l, "", &out), 1, "exit");
		/* A refused resource is hidden, as the daemon does it. */
		ASSERT_STRHAS(
		    out,
		    "seq 7 2026-11-22T23:00:07.000000007Z a read t/readme: allow -> "
		    "deny_unknown by office-hours: forbidden by office-hours\n6 decisions",
		    "the 23:00 read");
		free(out), out = NULL;
	}
	if (test__start_subtest("json") &&
	    ASSERT_TRUE(
		put_policy(&l, BASE
			   "@id(\"no-add\")\n"
			   "forbid (principal, action == Action::\"call\",\n"
			   "        resource == Tool::\"t/add\") when { context.args.b == 1 };\n"),
		"policy")) {
		ASSERT_EQ(run_capture(&out,
				      "%s/agentgatectl policy simulate --json --policies "
				      "%s/candidate.cedar %s 2>/dev/null",
				      testlib_build_dir(), l.dir, l.log),
			  1, "exit");
		ASSERT_STREQ(
		    out,
		    "{\"replayed\":5,\"changed\":2,\"undetermined\":1,\"skipped\":1,"
		    "\"changes\":[{\"seq\":2,\"ts\":\"2026-11-22T10:00:02.000000002Z\","
		    "\"agent\":\"a\",\"server\":\"t\",\"name\":\"add\",\"action\":\"call\","
		    "\"recorded\":\"allow\",\"simulated\":\"deny\",\"policies\":[\"no-add\"],"
		    "\"reason\":\"forbidden by no-add\"},{\"seq\":3,\"ts\":"
		    "\"2026-11-22T10:00:03.000000003Z\",\"agent\":\"a\",\"server\":\"t\","
		    "\"name\":\"add\",\"action\":\"call\",\"recorded\":\"allow\","
		    "\"simulated\":\"deny\",\"policies\":[\"no-add\"],\"reason\":"
		    "\"forbidden by no-add\"}],\"undetermined_decisions\":[{\"seq\":4,\"ts\":"
		    "\"2026-11-22T10:00:04.000000004Z\",\"agent\":\"a\",\"server\":\"t\","
		    "\"name\":\"add\",\"action\":\"call\",\"recorded\":\"allow\","
		    "\"reason\":\"arguments not recorded\"}]}\n",
		    "output");
		free(out), out = NULL;
	}
	if (test__start_subtest("approvals rebuilt") &&
	    ASSERT_TRUE(put_policy(&l, "@id(\"see\")\n"
				       "permit (principal, action == Action::\"list\", resource);\n"
				       "@id(\"big\") @escalate(\"big payment\")\n"
				       "permit (principal, action == Action::\"call\", resource)\n"
				       "when { context.args.amount > 5000 };\n"
				       "@id(\"small\")\n"
				       "permit (principal, action == Action::\"call\", resource)\n"
				       "when { context.args.amount <= 5000 };\n"
				       "@id(\"after-approval\")\n"
				       "forbid (principal, action == Action::\"call\", resource)\n"
				       "unless { context.session.approved.contains(\"pay\") ||\n"
				       "         context.args.amount > 5000 };\n"),
			"policy")) {
		/* The approval record lets the later call through, as it did. */
		if (esc_log(&l, "allow")) {
			ASSERT_EQ(simulate(&l, "", &out), 0, "exit");
			ASSERT_STREQ(out,
				     "2 decisions replayed, 0 would change, 0 undetermined "
				     "(arguments not recorded), 0 skipped (not a governed call)\n",
				     "approved");
			free(out), out = NULL;
		}
		/* Refused by the human: the session holds no approval. */
		if (esc_log(&l, "deny")) {
			ASSERT_EQ(simulate(&l, "", &out), 1, "exit");
			ASSERT_STREQ(out,
				     "seq 2 2026-11-22T10:00:02.000000000Z a call t/pay: allow -> "
				     "deny by after-approval: forbidden by after-approval\n"
				     "2 decisions replayed, 1 would change, 0 undetermined "
				     "(arguments not recorded), 0 skipped (not a governed call)\n",
				     "not approved");
			free(out), out = NULL;
		}
	}
	if (test__start_subtest("sub-agent chain from the record") &&
	    ASSERT_TRUE(put_policy(&l, "@id(\"under-a\")\n"
				       "permit (principal in Agent::\"a\",\n"
				       "        action in [Action::\"call\", Action::\"list\"],\n"
				       "        resource in Server::\"t\");\n"),
			"policy") &&
	    ASSERT_OK_PTR(l.f = fopen(l.log, "w"), "audit log")) {
		/* b as a sub-agent of a, then b on its own: only the first is in a. */
		for (int i = 0; i < 2; i++)
			fprintf(l.f,
				"{\"agent\":{\"name\":\"b\"%s},\"args\":{},\"decision\":\"allow\","
				"\"hidden\":false,\"id\":%d,\"kind\":\"decision\",\"method\":"
				"\"tools/call\",\"prev\":\"0\",\"rule\":\"policy\",\"seq\":%d,"
				"\"server\":\"t\",\"tool\":\"echo\",\"ts\":"
				"\"2026-11-22T10:00:0%d.000000000Z\"}\n",
				i ? "" : ",\"delegation\":[\"a\"]", i + 1, i, i);
		if (ASSERT_OK(fclose(l.f), "close")) {
			ASSERT_EQ(simulate(&l, "", &out), 1, "exit");
			ASSERT_STREQ(out,
				     "seq 1 2026-11-22T10:00:01.000000000Z b call t/echo: allow -> "
				     "deny_unknown by none: tool t/echo is not visible to agent b\n"
				     "2 decisions replayed, 1 would change, 0 undetermined "
				     "(arguments not recorded), 0 skipped (not a governed call)\n",
				     "only the root b changes");
			free(out), out = NULL;
		}
		l.f = NULL;
	}
	if (test__start_subtest("usage and input errors")) {
		ASSERT_EQ(run_capture(&out, "%s/agentgatectl policy simulate %s 2>&1",
				      testlib_build_dir(), l.log),
			  2, "no --policies");
		ASSERT_STRHAS(out, "missing --policies", "says what is missing");
		free(out), out = NULL;
		ASSERT_EQ(
		    run_capture(&out,
				"%s/agentgatectl policy simulate --policies %s/candidate.cedar "
				"%s/nolog 2>&1",
				testlib_build_dir(), l.dir, l.dir),
		    2, "missing log");
		ASSERT_STRHAS(out, "nolog", "names the log");
		free(out), out = NULL;
		ASSERT_TRUE(put_policy(&l, "permit (principal,\n"), "broken policy");
		ASSERT_EQ(simulate(&l, "", &out), 2, "broken candidate");
		ASSERT_STRHAS(out, "candidate.cedar:", "file:line:column");
		free(out), out = NULL;
	}
out:
	free(out);
	run_capture(&out, "rm -rf %s", l.dir);
	free(out);
}
