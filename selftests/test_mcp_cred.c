// SPDX-License-Identifier: GPL-2.0
/*
 * Credential brokering end to end: a real agentgated presents to the tool
 * server (a thread of this test, so every header that reaches it is seen)
 * an OAuth token it got from a real authorization server (oidc-provider,
 * which counts the token requests), or a JWT it minted and that an
 * independent library (jose) verifies against agentgatectl keys jwks.  The
 * agent's own token never passes, and no secret shows up where it must not.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "idplib.h"
#include "jwt.h"
#include "mcplib.h"
#include "test.h"
#include "testlib.h"

#define RESOURCE "https://tools.example/mcp"
#define AGENT_CANARY "agent-canary-5ee1d"

static const char agent_json[] = "{\"name\": \"a\", \"tools\": [\"t/*\"], \"operator\": \"ada\"}";

/* A root-owned 0600 secret file in dir. */
static int secret_file(char *path, size_t len, const char *dir, const char *value, mode_t mode)
{
	int fd;

	snprintf(path, len, "%s/secret", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, value, strlen(value)) != (ssize_t)strlen(value) || fchmod(fd, mode)) {
		close(fd);
		return -EIO;
	}
	return close(fd);
}

/* A tools/call with the agent's own credential, which must not pass. */
static void call(struct mcp_env *e, struct exchange *x, int id)
{
	char body[160];

	snprintf(body, sizeof(body),
		 "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":{\"name\":"
		 "\"echo\",\"arguments\":{}}}",
		 id);
	post(x, e->orig_port, "Authorization: Bearer " AGENT_CANARY "\r\n", body);
	run_agent(e, x);
}

/* The payload of a compact JWS, decoded (not verified). */
static json_t *jwt_payload(const char *jwt)
{
	const char *p = strchr(jwt, '.'), *q = p ? strchr(p + 1, '.') : NULL;
	unsigned char buf[8192];
	char part[8192];
	size_t n;
	struct ag_err err;

	if (!q || (size_t)(q - p - 1) >= sizeof(part))
		return NULL;
	snprintf(part, sizeof(part), "%.*s", (int)(q - p - 1), p + 1);
	if (ag_b64url_decode(part, buf, sizeof(buf), &n, &err))
		return NULL;
	return json_loadb((const char *)buf, n, 0, NULL);
}

/* Whether s occurs in what the operator can see: logs, audit, CLI output. */
static bool leaked(struct mcp_env *e, const char *s)
{
	char *out = NULL;
	bool found;

	run_capture(&out,
		    "cat %s %s/audit.log; %s/agentgatectl --instance %s --state-dir %s status "
		    "--json; %s/agentgatectl --instance %s --state-dir %s approvals --json",
		    e->d.log, e->d.state, testlib_build_dir(), e->d.in.name, e->d.state,
		    testlib_build_dir(), e->d.in.name, e->d.state);
	found = !out || strstr(out, s);
	free(out);
	return found;
}

static void remove_tree(const char *dir)
{
	char *out = NULL;

	run_capture(&out, "rm -rf '%s'", dir);
	free(out);
}

static int cred_env(struct mcp_env *e, struct idp *idp, const char *suffix, char *dir,
		    char *server_json, size_t len)
{
	char secret[64];
	int ret;

	if (!mkdtemp(dir))
		return -errno;
	if ((ret = secret_file(secret, sizeof(secret), dir, IDP_CLIENT_SECRET, 0600)))
		return ret;
	snprintf(server_json, len,
		 "\"credential\": {\"type\": \"oauth2_client_credentials\", \"token_url\": \"%s\", "
		 "\"client_id\": \"" IDP_CLIENT_ID "\", \"client_secret_file\": \"%s\", "
		 "\"scope\": \"tools:read\", \"resource\": \"" RESOURCE "\"}",
		 idp->url, secret);
	e->server_json = server_json;
	return env_start(e, suffix, REPLY_JSON, agent_json);
}

TEST(mcp_cred_oauth)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	struct mcp_env e = { 0 };
	struct idp idp = { .pid = -1 };
	char e2e[PATH_MAX], dir[] = "/tmp/agt-cred.XXXXXX", server_json[2048];
	char tok1[4096] = "", tok2[4096], *out = NULL;
	json_t *payload;
	int before, n;

	if (!idp_installed(e2e, sizeof(e2e))) {
		test__skip("oidc-provider not installed (scripts/e2e-deps.sh)");
		return;
	}
	if (!ASSERT_OK(idp_start(&idp, e2e, NULL), "authorization server") ||
	    !ASSERT_OK(cred_env(&e, &idp, "credoauth", dir, server_json, sizeof(server_json)),
		       "environment"))
		goto out;
	if (test__start_subtest("cached")) {
		for (int i = 0; i < 5; i++) {
			call(&e, x, 10 + i);
			ASSERT_STRHAS(x->response, "\"served\"", "call served");
		}
		ASSERT_EQ(tool_nseen(&e.tool), 5, "five calls upstream");
		ASSERT_EQ(idp_token_requests(&idp), 1, "one token request for five calls");
		tool_seen_bearer(&e.tool, 0, tok1, sizeof(tok1));
		tool_seen_bearer(&e.tool, 4, tok2, sizeof(tok2));
		ASSERT_STREQ(tok2, tok1, "the same cached token");
		payload = jwt_payload(tok1);
		ASSERT_STREQ(json_string_value(json_object_get(payload, "aud")), RESOURCE,
			     "token for the resource (RFC 8707)");
		json_decref(payload);
		ASSERT_NULL(strstr(e.tool.seen[0].head, AGENT_CANARY), "agent's token not upstream");
	}
	if (test__start_subtest("refused_token_renewed_once")) {
		tool_seen_bearer(&e.tool, tool_nseen(&e.tool) - 1, tok1, sizeof(tok1));
		/* The tool server revokes the token the gateway holds. */
		snprintf(e.tool.reject_auth, sizeof(e.tool.reject_auth), "%s", tok1);
		before = idp_token_requests(&idp);
		call(&e, x, 20);
		ASSERT_STRHAS(x->response, "refused the gateway's credential", "a tool error");
		ASSERT_STRHAS(x->response, "\"id\":20,", "answering the call's id");
		ASSERT_NULL(strstr(x->response, "WWW-Authenticate"), "not the upstream's 401");
		for (n = 0; n < 50 && idp_token_requests(&idp) == before; n++)
			usleep(100000);
		usleep(500000);
		ASSERT_EQ(idp_token_requests(&idp), before + 1, "exactly one refresh");
		call(&e, x, 21);
		ASSERT_STRHAS(x->response, "\"served\"", "served with the new token");
		tool_seen_bearer(&e.tool, tool_nseen(&e.tool) - 1, tok2, sizeof(tok2));
		ASSERT_TRUE(tok2[0] && strcmp(tok1, tok2), "a new token upstream");
		ASSERT_EQ(idp_token_requests(&idp), before + 1, "still one refresh");
		ASSERT_EQ(run_capture(&out, "grep -c 'refused the gateway' %s/audit.log",
				      e.d.state),
			  0, "the cause is audited");
	}
	if (test__start_subtest("no_leaks")) {
		/* The token the gateway holds now, whichever subtests ran before. */
		call(&e, x, 30);
		tool_seen_bearer(&e.tool, tool_nseen(&e.tool) - 1, tok1, sizeof(tok1));
		ASSERT_TRUE(tok1[0], "a token upstream to look for");
		ASSERT_FALSE(leaked(&e, IDP_CLIENT_SECRET), "client secret nowhere");
		ASSERT_FALSE(leaked(&e, tok1), "token nowhere");
		ASSERT_FALSE(leaked(&e, AGENT_CANARY), "agent's token nowhere");
		for (int i = 0; i < tool_nseen(&e.tool) && i < MAX_SEEN; i++)
			ASSERT_NULL(strstr(e.tool.seen[i].head, IDP_CLIENT_SECRET),
				    "client secret not upstream");
		/* What agentgatectl run hands an agent: nothing of the gateway's. */
		ASSERT_EQ(run_capture(&out,
				      "%s/agentgatectl --instance %s run --agent a -- "
				      "sh -c 'tr \"\\0\" \"\\n\" < /proc/$$/environ'",
				      testlib_build_dir(), e.d.in.name),
			  0, "the agent's environment");
		ASSERT_STRHAS(out, "PATH=", "read it");
		ASSERT_NULL(out ? strstr(out, IDP_CLIENT_SECRET) : NULL, "no client secret in it");
		ASSERT_NULL(out ? strstr(out, tok1) : NULL, "no token in it");
		ASSERT_NULL(out ? strstr(out, "s3cr") : NULL, "not a part of the secret either");
	}
out:
	free(out);
	env_stop(&e);
	idp_stop(&idp);
	remove_tree(dir);
}

/* A short-lived token is replaced before it expires: no call ever carries
 * an expired one, and none waits. */
TEST(mcp_cred_oauth_refresh)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	struct mcp_env e = { 0 };
	struct idp idp = { .pid = -1 };
	char e2e[PATH_MAX], dir[] = "/tmp/agt-cred.XXXXXX", server_json[2048], tok[4096];
	int expired = 0, distinct = 0;
	char last[4096] = "";

	if (!idp_installed(e2e, sizeof(e2e))) {
		test__skip("oidc-provider not installed (scripts/e2e-deps.sh)");
		return;
	}
	if (!ASSERT_OK(idp_start(&idp, e2e, NULL), "authorization server") ||
	    !ASSERT_TRUE(idp_set(&idp, "/ttl?s=3"), "3 s tokens") ||
	    !ASSERT_OK(cred_env(&e, &idp, "credrefresh", dir, server_json, sizeof(server_json)),
		       "environment"))
		goto out;
	/* 12 calls over about 6 s: two token lifetimes. */
	for (int i = 0; i < 12; i++) {
		json_t *p;

		call(&e, x, 100 + i);
		ASSERT_STRHAS(x->response, "\"served\"", "call served");
		tool_seen_bearer(&e.tool, i < MAX_SEEN ? i : MAX_SEEN - 1, tok, sizeof(tok));
		p = jwt_payload(tok);
		if (json_integer_value(json_object_get(p, "exp")) < (json_int_t)time(NULL))
			expired++;
		json_decref(p);
		if (strcmp(tok, last))
			distinct++;
		snprintf(last, sizeof(last), "%s", tok);
		usleep(500000);
	}
	ASSERT_EQ(expired, 0, "no expired token upstream");
	ASSERT_GE(distinct, 2, "the token was renewed");
	ASSERT_LE(idp_token_requests(&idp), 12, "renewals bounded by the lifetime");
out:
	env_stop(&e);
	idp_stop(&idp);
	remove_tree(dir);
}

/* A secret file that is not root's 0600 stops the daemon with one line. */
TEST(mcp_cred_secret_mode)
{
	char dir[] = "/tmp/agt-cred.XXXXXX", secret[64], server_json[256], *out = NULL;
	struct mcp_env e = { 0 };

	if (!ASSERT_OK_PTR(mkdtemp(dir), "temp dir") ||
	    !ASSERT_OK(secret_file(secret, sizeof(secret), dir, "s3cret-value", 0644), "secret"))
		goto out;
	snprintf(server_json, sizeof(server_json),
		 "\"credential\": {\"type\": \"bearer\", \"secret_file\": \"%s\"}", secret);
	e.server_json = server_json;
	ASSERT_NEQ(env_start(&e, "credmode", REPLY_JSON, agent_json), 0,
		   "the daemon refuses to start");
	ASSERT_EQ(run_capture(&out, "grep -c '%s' %s", secret, e.d.log), 0, "log names the file");
	ASSERT_STREQ(out, "1\n", "in one line");
	free(out);
	out = NULL;
	ASSERT_EQ(run_capture(&out, "grep -c 's3cret-value' %s", e.d.log), 1, "never the secret");
out:
	free(out);
	env_stop(&e);
	remove_tree(dir);
}

/* Minted assertions verify with jose against agentgatectl keys jwks. */
TEST(mcp_cred_assertion)
{
	static const char server_json[] =
		"\"credential\": {\"type\": \"assertion\", \"audience\": \"" RESOURCE "\", "
		"\"ttl_s\": 120}";
	struct exchange *x = shared_alloc(sizeof(*x));
	struct mcp_env e = { .server_json = server_json };
	char e2e[PATH_MAX], tok[4096], jwks[PATH_MAX], *out = NULL;
	json_t *p;

	if (!idp_installed(e2e, sizeof(e2e))) {
		test__skip("jose not installed (scripts/e2e-deps.sh)");
		return;
	}
	if (!ASSERT_OK(env_start(&e, "credjwt", REPLY_JSON, agent_json), "environment"))
		goto out;
	call(&e, x, 1);
	ASSERT_STRHAS(x->response, "\"served\"", "call served");
	tool_seen_bearer(&e.tool, 0, tok, sizeof(tok));
	ASSERT_OK(jwks_save(&e.d, jwks, sizeof(jwks)), "keys jwks");
	ASSERT_EQ(jose_verify(e2e, jwks, tok, RESOURCE, "[\"a\"]", &out), 0,
		  "jose verifies signature, aud, exp and act");
	p = out ? json_loads(out, 0, NULL) : NULL;
	ASSERT_STREQ(json_string_value(json_object_get(p, "sub")), "ada", "sub: the operator");
	ASSERT_STREQ(json_string_value(json_object_get(p, "agentgate_tool")), "echo",
		     "the tool named");
	ASSERT_LE(json_integer_value(json_object_get(p, "exp")) -
			  json_integer_value(json_object_get(p, "iat")),
		  120, "lives ttl_s");
	json_decref(p);
	free(out);
	out = NULL;
	ASSERT_NEQ(jose_verify(e2e, jwks, tok, "https://other.example", NULL, &out), 0,
		   "another audience is refused");
	ASSERT_NULL(strstr(e.tool.seen[0].head, AGENT_CANARY), "agent's token not upstream");
out:
	free(out);
	env_stop(&e);
}

/* SIGHUP re-reads secret files: a bad one is refused, the running one kept. */
TEST(mcp_cred_reload)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	char dir[] = "/tmp/agt-cred.XXXXXX", secret[64], server_json[256], tok[256];
	struct mcp_env e = { 0 };
	char *out = NULL;

	if (!ASSERT_OK_PTR(mkdtemp(dir), "temp dir") ||
	    !ASSERT_OK(secret_file(secret, sizeof(secret), dir, "tok-one-7c1", 0600), "secret"))
		goto out;
	snprintf(server_json, sizeof(server_json),
		 "\"credential\": {\"type\": \"bearer\", \"secret_file\": \"%s\"}", secret);
	e.server_json = server_json;
	if (!ASSERT_OK(env_start(&e, "credreload", REPLY_JSON, agent_json), "environment"))
		goto out;
	call(&e, x, 1);
	tool_seen_bearer(&e.tool, 0, tok, sizeof(tok));
	ASSERT_STREQ(tok, "tok-one-7c1", "the configured secret upstream");

	/* Rotated, but left readable by others: refused as a whole. */
	ASSERT_OK(secret_file(secret, sizeof(secret), dir, "tok-two-9d2", 0644), "rotate");
	kill(e.d.pid, SIGHUP);
	ASSERT_TRUE(log_has(&e.d, 5000, "credential_reload", "result=refused", secret, NULL),
		    "one line names the file");
	call(&e, x, 2);
	tool_seen_bearer(&e.tool, 1, tok, sizeof(tok));
	ASSERT_STREQ(tok, "tok-one-7c1", "the running secret kept");

	ASSERT_OK(chmod(secret, 0600), "fix the mode");
	kill(e.d.pid, SIGHUP);
	ASSERT_TRUE(log_has(&e.d, 5000, "credential_reload", "result=ok", "changed=1", NULL),
		    "reloaded");
	call(&e, x, 3);
	tool_seen_bearer(&e.tool, 2, tok, sizeof(tok));
	ASSERT_STREQ(tok, "tok-two-9d2", "the new secret upstream");
	ASSERT_EQ(run_capture(&out, "grep -c 'tok-one-7c1\\|tok-two-9d2' %s %s/audit.log", e.d.log,
			      e.d.state),
		  1, "no secret in the log or the audit trail");
	ASSERT_EQ(run_capture(&out, "grep -c '\"kind\":\"credential_reload\"' %s/audit.log",
			      e.d.state),
		  0, "reloads audited");
out:
	free(out);
	env_stop(&e);
	remove_tree(dir);
}
