// SPDX-License-Identifier: GPL-2.0
/*
 * Policies from git (agentgate.conf(5) "policy_source") with a real
 * agentgated, the real git and real SSH signing keys made by ssh-keygen:
 * a local bare repository stands in for the organisation's.  A good
 * signed commit is picked up within the interval and decides calls; an
 * unsigned commit, one signed by a key not in allowed_signers and one
 * whose policy does not parse are refused, logged and audited while the
 * old set still decides; `agentgatectl policy pull` polls at once; a
 * restart resumes the accepted commit; before any commit, nothing passes.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mcplib.h"
#include "test.h"
#include "testlib.h"

/* Agent "a" may list and call every tool of "t" but echo. */
static const char pol_deny[] =
    "@id(\"see-t\")\n"
    "permit (principal == Agent::\"a\", action in [Action::\"call\", Action::\"list\"],\n"
    "        resource in Server::\"t\");\n"
    "@id(\"no-echo\")\n"
    "forbid (principal, action == Action::\"call\", resource == Tool::\"t/echo\");\n";
static const char pol_allow[] =
    "@id(\"see-t\")\n"
    "permit (principal == Agent::\"a\", action in [Action::\"call\", Action::\"list\"],\n"
    "        resource in Server::\"t\");\n";
static const char pol_broken[] = "permit (principal,\n  action ==\n);\n";

/* The signers' side: keys, the allowed-signers file, the origin, a work tree. */
struct repo {
	char dir[64];
	char *out;
};

/* A shell line in the repository's world: its own HOME, no system git config. */
static int sh(struct repo *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int sh(struct repo *r, const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	int n;

	n = snprintf(cmd, sizeof(cmd), "cd %s && HOME=%s GIT_CONFIG_NOSYSTEM=1 ", r->dir, r->dir);
	va_start(ap, fmt);
	vsnprintf(cmd + n, sizeof(cmd) - n, fmt, ap);
	va_end(ap);
	free(r->out);
	r->out = NULL;
	return run_capture(&r->out, "%s 2>&1", cmd);
}

static int repo_init(struct repo *r)
{
	snprintf(r->dir, sizeof(r->dir), "/tmp/agpgit.XXXXXX");
	r->out = NULL;
	if (!mkdtemp(r->dir))
		return -1;
	return sh(r,
		  "ssh-keygen -q -t ed25519 -N '' -C good -f good && "
		  "ssh-keygen -q -t ed25519 -N '' -C rogue -f rogue && "
		  "printf 'ops@example.com %%s\\n' \"$(cut -d' ' -f1,2 good.pub)\" "
		  "> allowed_signers && chmod 0644 allowed_signers && "
		  "git init -q --bare -b main origin.git && git init -q -b main work && "
		  "git -C work config user.email ops@example.com && "
		  "git -C work config user.name ops && "
		  "git -C work config gpg.format ssh && "
		  "git -C work remote add origin %s/origin.git && mkdir work/policies",
		  r->dir);
}

/*
 * Commits text as policies/10.cedar and pushes it; key "good", "rogue" or
 * NULL (unsigned).  *commit gets the new commit's id.
 */
static int repo_commit(struct repo *r, const char *text, const char *key, char commit[65])
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/work/policies/10.cedar", r->dir);
	if (!(f = fopen(path, "w")))
		return -1;
	fputs(text, f);
	fclose(f);
	if (key ? sh(r,
		     "git -C work add -A && git -C work -c user.signingkey=%s/%s commit -q -S "
		     "--allow-empty -m 'policy %s' && git -C work push -q origin main",
		     r->dir, key, key)
		: sh(r, "git -C work add -A && git -C work commit -q --no-gpg-sign --allow-empty "
			"-m unsigned && git -C work push -q origin main"))
		return -1;
	if (sh(r, "git -C work rev-parse HEAD") || !r->out || strlen(r->out) < 40)
		return -1;
	snprintf(commit, 65, "%.40s", r->out);
	return 0;
}

static void repo_fini(struct repo *r)
{
	char *out = NULL;

	if (r->dir[0] && strncmp(r->dir, "/tmp/agpgit.", 12) == 0)
		run_capture(&out, "rm -rf %s", r->dir);
	free(out);
	free(r->out);
}

/* The daemon with the repository as its policy source. */
static int start(struct mcp_env *e, struct repo *r, const char *suffix, int interval_s)
{
	char more[1024];

	snprintf(more, sizeof(more),
		 "\"policy_source\": {\"url\": \"file://%s/origin.git\", \"ref\": \"main\", "
		 "\"interval_s\": %d, \"allowed_signers\": \"%s/allowed_signers\", "
		 "\"path\": \"policies\"}",
		 r->dir, interval_s, r->dir);
	return env_start_with(e, suffix, REPLY_JSON, "{\"name\": \"a\"}", more);
}

static void call_echo(struct mcp_env *e, struct exchange *x, int id)
{
	char body[256];

	snprintf(body, sizeof(body),
		 "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":{\"name\":"
		 "\"echo\",\"arguments\":{\"text\":\"hi\"}}}",
		 id);
	post(x, e->orig_port, "", body);
	run_agent(e, x);
}

/* Whether the audit log has a line containing every string (NULL-terminated). */
static bool audit_has(struct mcp_env *e, const char *a, const char *b, const char *c)
{
	char *out = NULL;
	bool found = false;

	/* Records are group-committed: give the writer its moment. */
	for (int i = 0; i < 20 && !found; i++) {
		usleep(100 * 1000);
		run_capture(&out, "grep -F '%s' %s/audit.log | grep -F '%s' | grep -F '%s'", a,
			    e->d.state, b, c ? c : "");
		found = out && *out;
		free(out);
		out = NULL;
	}
	return found;
}

/* Deny first, then a signed commit that allows, picked up by the interval. */
TEST(policy_git_pickup)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	char c1[65], c2[65], want[128];
	struct mcp_env e = { 0 };
	struct repo r = { 0 };

	if (!ASSERT_OK(repo_init(&r), r.out ? r.out : "repository") ||
	    !ASSERT_OK(repo_commit(&r, pol_deny, "good", c1), r.out ? r.out : "first commit"))
		goto out;
	if (!ASSERT_OK(start(&e, &r, "pgitpick", 1), "environment"))
		goto out;
	ASSERT_TRUE(log_has(&e.d, 10000, "policy_source", "result=ok", c1, NULL),
		    "the first commit accepted");
	call_echo(&e, x, 1);
	ASSERT_STRHAS(x->response, "Denied by policy", "the first commit's forbid decides");
	ASSERT_TRUE(audit_has(&e, "\"kind\":\"policy_source\"", "\"ok\":true", c1),
		    "its acceptance audited");
	snprintf(want, sizeof(want), "\"policy_commit\":\"%s\"", c1);
	ASSERT_TRUE(audit_has(&e, "\"kind\":\"decision\"", want, NULL),
		    "the decision names its commit");

	if (!ASSERT_OK(repo_commit(&r, pol_allow, "good", c2), r.out ? r.out : "second commit"))
		goto out;
	/* interval_s 1: within a few seconds, a fetch included. */
	ASSERT_TRUE(log_has(&e.d, 5000, "policy_source", "result=ok", "trigger=interval", c2, NULL),
		    "the second commit picked up within the interval");
	call_echo(&e, x, 2);
	ASSERT_STRHAS(x->response, "\"served\"", "the new set allows echo");
	snprintf(want, sizeof(want), "\"policy_commit\":\"%s\"", c2);
	ASSERT_TRUE(audit_has(&e, "\"kind\":\"decision\"", want, "\"decision\":\"allow\""),
		    "the allowing decision names the new commit");
out:
	env_stop(&e);
	repo_fini(&r);
}

/*
 * A commit of text signed with key (NULL: unsigned) is refused at stage
 * with cause, in the log and the audit log, and the deny set still decides.
 */
static void refused(struct mcp_env *e, struct repo *r, struct exchange *x, const char *text,
		    const char *key, const char *stage, const char *cause)
{
	char bad[65], st_log[32], st_audit[32];

	if (!ASSERT_OK(repo_commit(r, text, key, bad), r->out ? r->out : "commit"))
		return;
	snprintf(st_log, sizeof(st_log), "stage=%s", stage);
	snprintf(st_audit, sizeof(st_audit), "\"stage\":\"%s\"", stage);
	ASSERT_TRUE(log_has(&e->d, 5000, "result=refused", bad, st_log, cause, NULL),
		    "refused with a clear message");
	ASSERT_TRUE(audit_has(e, "\"ok\":false", bad, st_audit),
		    "the refusal audited with its commit");
	call_echo(e, x, 1);
	ASSERT_STRHAS(x->response, "Denied by policy", "the old set still decides");
}

/* Refused commits: unsigned, an unknown key, a broken policy; the old set stays. */
TEST(policy_git_refused)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	struct mcp_env e = { 0 };
	struct repo r = { 0 };
	char c1[65], *out = NULL;

	if (!ASSERT_OK(repo_init(&r), r.out ? r.out : "repository") ||
	    !ASSERT_OK(repo_commit(&r, pol_deny, "good", c1), r.out ? r.out : "first commit"))
		goto out;
	if (!ASSERT_OK(start(&e, &r, "pgitref", 1), "environment"))
		goto out;
	ASSERT_TRUE(log_has(&e.d, 10000, "policy_source", "result=ok", c1, NULL),
		    "the first commit accepted");
	if (test__start_subtest("unsigned"))
		refused(&e, &r, x, pol_allow, NULL, "verify", "is not signed");
	if (test__start_subtest("unknown_key"))
		refused(&e, &r, x, pol_allow, "rogue", "verify",
			"its key is not in allowed_signers");
	if (test__start_subtest("broken_policy")) {
		/* The parser's file:line:column, in the exported tree. */
		refused(&e, &r, x, pol_broken, "good", "load", "policies/10.cedar:3:1");
		run_capture(&out, "%s/agentgatectl --instance %s status", testlib_build_dir(),
			    e.d.in.name);
		ASSERT_STRHAS(out, c1, "status names the commit in force");
		ASSERT_STRHAS(out, "last refused: commit", "and the last refusal");
		free(out);
	}
out:
	env_stop(&e);
	repo_fini(&r);
}

/* `policy pull` polls now: no waiting for an hour's interval. */
TEST(policy_git_pull)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	char c1[65], c2[65], bad[65];
	struct mcp_env e = { 0 };
	struct repo r = { 0 };
	char *out = NULL;

	if (!ASSERT_OK(repo_init(&r), r.out ? r.out : "repository") ||
	    !ASSERT_OK(repo_commit(&r, pol_deny, "good", c1), r.out ? r.out : "first commit"))
		goto out;
	if (!ASSERT_OK(start(&e, &r, "pgitpull", 3600), "environment"))
		goto out;
	ASSERT_TRUE(log_has(&e.d, 10000, "policy_source", "result=ok", "trigger=start", c1, NULL),
		    "the first commit accepted at start");
	if (!ASSERT_OK(repo_commit(&r, pol_allow, "good", c2), r.out ? r.out : "second commit"))
		goto out;
	ASSERT_EQ(run_capture(&out, "%s/agentgatectl --instance %s policy pull 2>&1",
			      testlib_build_dir(), e.d.in.name),
		  0, "policy pull");
	ASSERT_STRHAS(out, c2, "prints the commit now in force");
	free(out);
	out = NULL;
	call_echo(&e, x, 1);
	ASSERT_STRHAS(x->response, "\"served\"", "the pulled set decides at once");
	ASSERT_TRUE(log_has(&e.d, 1000, "result=ok", "trigger=control", c2, NULL),
		    "logged as asked for");

	ASSERT_EQ(run_capture(&out, "%s/agentgatectl --instance %s policy pull 2>&1",
			      testlib_build_dir(), e.d.in.name),
		  0, "policy pull again");
	ASSERT_STRHAS(out, "(unchanged)", "nothing new");
	free(out);
	out = NULL;

	if (!ASSERT_OK(repo_commit(&r, pol_deny, NULL, bad), r.out ? r.out : "unsigned commit"))
		goto out;
	ASSERT_EQ(run_capture(&out, "%s/agentgatectl --instance %s policy pull 2>&1",
			      testlib_build_dir(), e.d.in.name),
		  1, "policy pull of an unsigned commit exits 1");
	ASSERT_STRHAS(out, "is not signed", "and says why");
	ASSERT_STRHAS(out, c2, "and which set stays");
	call_echo(&e, x, 2);
	ASSERT_STRHAS(x->response, "\"served\"", "the pulled set still decides");

	/* A restart: the accepted commit decides again before the first poll. */
	tdaemon_kill(&e.d, SIGTERM);
	if (!ASSERT_OK(tdaemon_restart(&e.d), "restart"))
		goto out;
	ASSERT_TRUE(log_has(&e.d, 5000, "result=ok", "trigger=resume", c2, NULL),
		    "the accepted commit in force again");
	call_echo(&e, x, 3);
	ASSERT_STRHAS(x->response, "\"served\"", "and deciding");
out:
	free(out);
	env_stop(&e);
	repo_fini(&r);
}

/* Before any commit is accepted, nothing governed passes; then the first one decides. */
TEST(policy_git_first_commit)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	struct mcp_env e = { 0 };
	struct repo r = { 0 };
	char c1[65];
	int before;

	if (!ASSERT_OK(repo_init(&r), r.out ? r.out : "repository"))
		goto out;
	if (!ASSERT_OK(start(&e, &r, "pgitfirst", 1), "environment"))
		goto out;
	ASSERT_TRUE(log_has(&e.d, 10000, "policy_source", "result=refused", "stage=fetch", NULL),
		    "the empty repository cannot be fetched");
	before = tool_nseen(&e.tool);
	call_echo(&e, x, 1);
	ASSERT_STRHAS(x->response, "Unknown tool: echo", "no policy yet: refused");
	ASSERT_EQ(tool_nseen(&e.tool), before, "nothing reached the tool server");
	if (!ASSERT_OK(repo_commit(&r, pol_allow, "good", c1), r.out ? r.out : "first commit"))
		goto out;
	ASSERT_TRUE(log_has(&e.d, 5000, "result=ok", c1, NULL), "the first commit accepted");
	call_echo(&e, x, 2);
	ASSERT_STRHAS(x->response, "\"served\"", "and deciding");
out:
	env_stop(&e);
	repo_fini(&r);
}
