// SPDX-License-Identifier: GPL-2.0
/*
 * Anomaly flags with a real agentgated (agentgate.conf(5) "anomaly"): an
 * agent's first call of a tool is an "anomaly" record and the second is
 * not; a policy that escalates on context.anomaly.first_tool holds a new
 * tool's call; a restart keeps what the agent used (the state file); a
 * burst far above the agent's baseline is a "rate" record; the metric
 * counts the flags.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mcplib.h"
#include "test.h"
#include "testlib.h"

static const char anomaly_policy[] =
    "@id(\"see-t\")\n"
    "permit (principal == Agent::\"a\", action == Action::\"list\", resource in Server::\"t\");\n"
    "@id(\"echo-always\")\n"
    "permit (principal == Agent::\"a\", action == Action::\"call\", resource == "
    "Tool::\"t/echo\");\n"
    "@id(\"known-tools\")\n"
    "permit (principal == Agent::\"a\", action == Action::\"call\", resource in Server::\"t\")\n"
    "when { !context.anomaly.first_tool };\n"
    "@id(\"first-use-waits\")\n"
    "@escalate(\"first use of a tool\")\n"
    "permit (principal == Agent::\"a\", action == Action::\"call\", resource in Server::\"t\")\n"
    "when { context.anomaly.first_tool };\n";

/* Lines of the audit log holding every one of two strings. */
static int audit_count(struct mcp_env *e, const char *a, const char *b)
{
	char *out = NULL;
	int n = -1;

	usleep(50000); /* batch records may still be in the writer's queue */
	if (run_capture(&out, "grep -F '%s' %s/audit.log | grep -cF '%s'", a, e->d.state, b) <= 1 &&
	    out)
		n = atoi(out);
	free(out);
	return n;
}

TEST(mcp_anomaly)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	char dir[] = "/tmp/aganomaly.XXXXXX", path[PATH_MAX + 32], more[PATH_MAX + 160];
	struct mcp_env e = { 0 };
	char *out = NULL;
	FILE *f;

	if (!ASSERT_OK_PTR(mkdtemp(dir), "policy dir"))
		return;
	snprintf(path, sizeof(path), "%s/10-anomaly.cedar", dir);
	if (!ASSERT_OK_PTR(f = fopen(path, "w"), "policy file"))
		return;
	fputs(anomaly_policy, f);
	fclose(f);
	snprintf(more, sizeof(more),
		 "\"policy\": {\"dir\": \"%s\"}, \"approval_timeout_ms\": 300,"
		 " \"anomaly\": {\"min_rate_per_min\": 12}",
		 dir);
	if (!ASSERT_OK(env_start_with(&e, "mcpanom", REPLY_JSON, "{\"name\": \"a\"}", more),
		       "environment"))
		goto out;
	if (test__start_subtest("first_tool_flagged_once")) {
		call_tool(&e, x, "echo", 1);
		ASSERT_STRHAS(x->response, "\"served\"", "first call served");
		call_tool(&e, x, "echo", 2);
		ASSERT_STRHAS(x->response, "\"served\"", "second call served");
		ASSERT_EQ(audit_count(&e, "\"kind\":\"anomaly\"", "\"flag\":\"first_tool\""), 1,
			  "one first_tool record");
		ASSERT_EQ(audit_count(&e, "\"flag\":\"first_tool\"", "\"tool\":\"echo\""), 1,
			  "it names the tool");
		ASSERT_EQ(
		    audit_count(&e, "\"flag\":\"first_destination\"", "\"destination\":\"t\""), 1,
		    "and the tool server, first contacted");
		ASSERT_EQ(audit_count(&e, "\"flag\":\"first_tool\"", "\"name\":\"a\""), 1,
			  "for agent a");
		/* What an operator reads: audit query names the flag and what it concerns. */
		ASSERT_EQ(run_capture(&out,
				      "%s/agentgatectl audit query --kind anomaly %s/audit.log",
				      testlib_build_dir(), e.d.state),
			  0, "audit query");
		ASSERT_STRHAS(out, " anomaly agent=a tool=echo flag=first_tool destination=t",
			      "the query line shows the flag");
		free(out);
		out = NULL;
	}
	if (test__start_subtest("policy_escalates_first_use")) {
		int before = tool_nseen(&e.tool);

		call_tool(&e, x, "add", 3);
		ASSERT_STRHAS(x->response, "\"isError\":true", "held, then refused");
		ASSERT_STRHAS(x->response, "needs approval: first use of a tool",
			      "the escalation's reason");
		ASSERT_EQ(tool_nseen(&e.tool), before, "nothing reached the tool server");
		ASSERT_EQ(audit_count(&e, "\"flag\":\"first_tool\"", "\"tool\":\"add\""), 1,
			  "flag recorded");
		ASSERT_EQ(audit_count(&e, "\"decision\":\"ask\"", "first-use-waits"), 1,
			  "the decision record names the escalating policy");
		ASSERT_EQ(audit_count(&e, "\"decision\":\"ask\"", "\"anomaly\":[\"first_tool\"]"),
			  1, "and the flag the policy saw");
	}
	if (test__start_subtest("restart_keeps_used_tools")) {
		ASSERT_OK(tdaemon_stop(&e.d, SIGTERM, 10000), "daemon stopped");
		ASSERT_OK(tdaemon_restart(&e.d), "daemon restarted");
		ASSERT_EQ(run_capture(&out, "grep -c echo %s/anomaly.json", e.d.state), 0,
			  "state file written at shutdown");
		free(out);
		out = NULL;
		call_tool(&e, x, "echo", 4);
		ASSERT_STRHAS(x->response, "\"served\"", "served after the restart");
		ASSERT_EQ(audit_count(&e, "\"flag\":\"first_tool\"", "\"tool\":\"echo\""), 1,
			  "echo is not first again");
		call_tool(&e, x, "add", 5);
		ASSERT_STRHAS(x->response, "needs approval", "add, never approved, still first");
	}
	if (test__start_subtest("burst_flags_rate")) {
		ASSERT_EQ(audit_count(&e, "\"kind\":\"anomaly\"", "\"flag\":\"rate\""), 0,
			  "a few calls are no burst");
		for (int i = 0; i < 16; i++)
			call_tool(&e, x, "echo", 10 + i);
		ASSERT_STRHAS(x->response, "\"served\"", "a rate flag alone refuses nothing");
		ASSERT_EQ(audit_count(&e, "\"kind\":\"anomaly\"", "\"flag\":\"rate\""), 1,
			  "one rate record for the burst");
		ASSERT_EQ(audit_count(&e, "\"flag\":\"rate\"", "\"baseline_per_min\":"), 1,
			  "with the baseline it was held against");
	}
	if (test__start_subtest("passthrough_first_contact")) {
		uint16_t port = 0;
		int lfd = tcp_listen("127.0.0.1", 0, &port), n = 0;
		char dst[32];

		ASSERT_GE(lfd, 0, "a pass-through destination");
		for (int i = 0; lfd >= 0 && i < 2; i++) {
			pid_t pid;
			int fd;

			post(x, port, "", "{}");
			pid = fork();
			if (pid == 0)
				_exit(run_in_cgroup(e.agent_cg, NOBODY_UID, agent_exchange, x));
			fd = accept_timeout(lfd, 3000);
			n += fd >= 0;
			if (fd >= 0)
				close(fd);
			waitpid(pid, NULL, 0);
		}
		ASSERT_EQ(n, 2, "both connections relayed");
		snprintf(dst, sizeof(dst), "\"destination\":\"127.0.0.1:%u\"", port);
		ASSERT_EQ(audit_count(&e, "\"flag\":\"first_destination\"", dst), 1,
			  "one first contact record for two connections");
		if (lfd >= 0)
			close(lfd);
	}
	if (test__start_subtest("repeated_denials")) {
		char body[160];

		/* No policy permits a read: each is refused, the 6th comes after 5. */
		for (int i = 0; i < 6; i++) {
			snprintf(body, sizeof(body),
				 "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"resources/read\","
				 "\"params\":{\"uri\":\"file:///etc/shadow\"}}",
				 50 + i);
			post(x, e.orig_port, "", body);
			run_agent(&e, x);
		}
		ASSERT_STRHAS(x->response, "Resource not found", "refused");
		ASSERT_EQ(audit_count(&e, "\"flag\":\"denials\"", "\"denials\":5"), 1,
			  "one denials record");
	}
	if (test__start_subtest("corrupt_state_refused")) {
		snprintf(path, sizeof(path), "%s/anomaly.json", e.d.state);
		ASSERT_OK(tdaemon_stop(&e.d, SIGTERM, 10000), "stopped");
		if (ASSERT_OK_PTR(f = fopen(path, "w"), "state file")) {
			fputs("{\"version\": 1, \"agents\": [{\"name\": 7}], \"seen\": []}", f);
			fclose(f);
		}
		ASSERT_OK(tdaemon_restart(&e.d), "starts despite a corrupt state file");
		ASSERT_TRUE(log_has(&e.d, 3000, "anomaly", "result=refused", NULL),
			    "refused with a log line");
		call_tool(&e, x, "echo", 40);
		ASSERT_STRHAS(x->response, "\"served\"", "serving");
		ASSERT_EQ(audit_count(&e, "\"flag\":\"first_tool\"", "\"tool\":\"echo\""), 2,
			  "started fresh: echo is first again");
	}
	if (test__start_subtest("simulate_replays_flags")) {
		/* Without the flags of each decision record, the escalated first
		 * calls of add would replay as allowed by known-tools. */
		ASSERT_EQ(run_capture(&out,
				      "%s/agentgatectl policy simulate --policies %s %s/audit.log",
				      testlib_build_dir(), dir, e.d.state),
			  0, "policy simulate");
		ASSERT_STRHAS(out, " 0 would change", "the log replays as it was decided");
		free(out);
		out = NULL;
	}
out:
	env_stop(&e);
	run_capture(&out, "rm -rf %s", dir);
	free(out);
}
