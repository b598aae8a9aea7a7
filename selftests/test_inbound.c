// SPDX-License-Identifier: GPL-2.0
/*
 * Agents from outside (agentgate.conf(5) "inbound"): the official MCP SDK
 * client, in another network namespace, reaches a real agentgated's
 * inbound listener over a veth, discovers the resource metadata from the
 * 401, gets a token from a real authorization server (oidc-provider,
 * selftests/e2e/oidc_server.mjs) and calls a tool of the tool server the
 * listener exposes (a thread of the test, which sees every byte).
 * Refusals: no token, another audience, a scope that does not cover the
 * tool, an expired token, another subject's session.  One policy gives
 * two clients different decisions; the audit names client and subject;
 * no token ever reaches the tool server.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "idplib.h"
#include "mcplib.h"
#include "test.h"
#include "testlib.h"

#define CLIENT_A "agt-client-a"
#define SECRET_A "a-secret-19c"
#define CLIENT_B "agt-client-b"
#define SECRET_B "b-secret-7f3"

static const char agent_json[] = "{\"name\": \"a\", \"tools\": [\"t/*\"]}";

/* Client b may list echo but not call it; everything else is allowed. */
static const char policy[] =
    "permit (principal, action, resource);\n"
    "forbid (principal == Client::\"" CLIENT_B "\", action == Action::\"call\",\n"
    "        resource == Tool::\"t/echo\");\n";

struct net {
	char ns[64];
	char veth[16];
	char host[32], peer[32]; /* the host's end and the namespace's */
};

static int sh(const char *cmd)
{
	char *out = NULL;
	int r = run_capture(&out, "%s", cmd);

	if (r)
		fprintf(stderr, "%s", out ? out : "");
	free(out);
	return r;
}

/* A namespace on a /30 of its own (from the pid: parallel runs differ). */
static int net_up(struct net *n)
{
	const char *ns = tnetns_add("inb");
	int k = getpid() % 16000, r;
	char cmd[1024];

	if (!ns)
		return -1;
	snprintf(n->ns, sizeof(n->ns), "%s", ns);
	snprintf(n->veth, sizeof(n->veth), "agi%d", getpid() % 100000);
	snprintf(n->host, sizeof(n->host), "10.%d.%d.%d", 180 + k / 4096, (k / 64) % 64 * 4,
		 (k % 64) * 4 + 1);
	snprintf(n->peer, sizeof(n->peer), "10.%d.%d.%d", 180 + k / 4096, (k / 64) % 64 * 4,
		 (k % 64) * 4 + 2);
	snprintf(cmd, sizeof(cmd),
		 "ip link add %s type veth peer name %sp && ip link set %sp netns %s && "
		 "ip addr add %s/30 dev %s && ip link set %s up && "
		 "ip -n %s addr add %s/30 dev %sp && ip -n %s link set %sp up && "
		 "ip -n %s link set lo up",
		 n->veth, n->veth, n->veth, n->ns, n->host, n->veth, n->veth, n->ns, n->peer,
		 n->veth, n->ns, n->veth, n->ns);
	r = sh(cmd);
	return r;
}

static void net_down(struct net *n)
{
	if (n->veth[0]) {
		char *out = NULL;

		run_capture(&out, "ip link del %s 2>/dev/null", n->veth);
		free(out);
	}
	if (n->ns[0])
		tnetns_del(n->ns);
}

/* The operator's certificate for the host's address, and its key (0600). */
static int make_cert(const char *dir, const char *ip)
{
	char *out = NULL, key[PATH_MAX];
	int r =
	    run_capture(&out,
			"cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
			"-nodes -keyout key.pem -out cert.pem -days 1 -subj /CN=inbound "
			"-addext subjectAltName=IP:%s 2>&1",
			dir, ip);

	free(out);
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	return r ? -EIO : chmod(key, 0600);
}

static int write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	int r;

	if (!f)
		return -errno;
	r = fputs(text, f) < 0;
	return fclose(f) || r ? -EIO : 0;
}

/* Whether any request the tool server saw carried text in its head or body. */
static bool upstream_saw(struct mcp_env *e, const char *text)
{
	for (int i = 0; i < tool_nseen(&e->tool) && i < MAX_SEEN; i++)
		if (strstr(e->tool.seen[i].head, text) || strstr(e->tool.seen[i].body, text))
			return true;
	return false;
}

static json_t *get(json_t *o, const char *a, const char *b)
{
	json_t *v = json_object_get(o, a);

	return b ? json_object_get(v, b) : v;
}

static const char *str(json_t *o, const char *a, const char *b)
{
	return json_string_value(get(o, a, b)) ?: "";
}

static int status(json_t *o, const char *a)
{
	return (int)json_integer_value(get(o, a, "status"));
}

TEST(inbound_oauth)
{
	struct mcp_env e = { 0 };
	struct idp idp = { .pid = -1 };
	struct net n = { 0 };
	char e2e[PATH_MAX], dir[] = "/tmp/agt-inb.XXXXXX", more[8192], listen[64], url[128];
	char issuer[96], client2[128], prefix[96], cedar[PATH_MAX], *out = NULL;
	const char *idp_args[] = { "--listen", NULL, "--resource-prefix", prefix, "--client2",
				   client2,    NULL };
	json_t *r = NULL;
	uint16_t port = free_port();

	if (!idp_installed(e2e, sizeof(e2e))) {
		test__skip("oidc-provider not installed (scripts/e2e-deps.sh)");
		return;
	}
	if (!ASSERT_OK_PTR(mkdtemp(dir), "temp dir") || !ASSERT_OK(net_up(&n), "veth to a netns") ||
	    !ASSERT_OK(make_cert(dir, n.host), "operator certificate"))
		goto out;
	snprintf(listen, sizeof(listen), "%s:%u", n.host, port);
	snprintf(url, sizeof(url), "https://%s/mcp", listen);
	snprintf(prefix, sizeof(prefix), "https://%s/", listen);
	snprintf(client2, sizeof(client2), CLIENT_A ":" SECRET_A "," CLIENT_B ":" SECRET_B);
	idp_args[1] = n.host;
	if (!ASSERT_OK(idp_start_args(&idp, e2e, NULL, idp_args), "authorization server"))
		goto out;
	snprintf(issuer, sizeof(issuer), "http://%s:%d", n.host, idp.port);
	snprintf(cedar, sizeof(cedar), "%s/policy.cedar", dir);
	if (!ASSERT_OK(write_text(cedar, policy), "policy"))
		goto out;
	snprintf(more, sizeof(more),
		 "\"policy\": {\"files\": [\"%s\"]}, \"inbound\": {\"listen\": \"%s\", "
		 "\"cert_file\": \"%s/cert.pem\", \"key_file\": \"%s/key.pem\", \"server\": \"t\", "
		 "\"resource\": \"%s\", \"issuer\": \"%s\", \"jwks_uri\": \"%s/jwks\", "
		 "\"scopes\": {\"tools:read\": [\"echo\"], \"tools:write\": [\"*\"]}, "
		 "\"clock_skew_s\": 0, \"jwks_min_interval_s\": 1}",
		 cedar, listen, dir, dir, url, issuer, issuer);
	if (!ASSERT_OK(env_start_with(&e, "inb", REPLY_JSON, agent_json, more), "daemon"))
		goto out;
	e.tool.one_shot = true;
	/* initialize's result and a tool's, in one: the tool server answers both alike. */
	e.tool.call_result = "{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{\"tools\":{}},"
			     "\"serverInfo\":{\"name\":\"t\",\"version\":\"1\"},"
			     "\"content\":[{\"type\":\"text\",\"text\":\"served\"}]}";
	ASSERT_TRUE(log_has(&e.d, 10000, "jwks", "keys=1", NULL), "JWKS fetched");
	ASSERT_EQ(run_capture(&out,
			      "ip netns exec %s env NODE_EXTRA_CA_CERTS=%s/cert.pem "
			      "AGENTGATE_E2E_DIR=%s node %s/selftests/e2e/inbound_agent.mjs "
			      "--url %s --issuer %s --a " CLIENT_A ":" SECRET_A " --b " CLIENT_B
			      ":" SECRET_B " --other https://%s/other",
			      n.ns, dir, e2e, testlib_src_dir(), url, issuer, listen),
		  0, "outside agent ran");
	r = json_loads(out ? out : "", JSON_DECODE_ANY, NULL);
	if (!ASSERT_OK_PTR(r, "its report") || !ASSERT_STREQ(str(r, "error", NULL), "", "no error"))
		goto out;
	if (test__verbose())
		fprintf(stderr, "%s\n", out);

	/* The SDK's own OAuth: metadata from the 401, token, call. */
	ASSERT_STREQ(str(r, "sdk", "error"), "", "SDK client connected");
	ASSERT_STREQ(str(r, "sdk", "text"), "served", "SDK client's call served");
	ASSERT_EQ(json_array_size(get(r, "sdk", "tools")), 1, "tools:read lists echo only");
	ASSERT_STRHAS(str(r, "no_token", "www"), "resource_metadata=", "401 names the metadata");
	ASSERT_EQ(status(r, "no_token"), 401, "no token: 401");
	ASSERT_STREQ(str(r, "metadata", "resource"), url, "metadata names the resource");
	ASSERT_STREQ(
	    json_string_value(json_array_get(get(r, "metadata", "authorization_servers"), 0)) ?: "",
	    issuer, "metadata names the issuer");
	/* Refusals. */
	ASSERT_EQ(status(r, "other_aud"), 401, "another audience: 401");
	ASSERT_STRHAS(str(r, "other_aud", "www"), "error=\"invalid_token\"", "invalid_token");
	ASSERT_EQ(status(r, "expired"), 401, "expired: 401");
	ASSERT_STRHAS(str(r, "expired", "www"), "error=\"invalid_token\"", "invalid_token");
	ASSERT_EQ(status(r, "scope"), 403, "insufficient scope: 403");
	ASSERT_STRHAS(str(r, "scope", "www"), "error=\"insufficient_scope\"", "insufficient_scope");
	ASSERT_STRHAS(str(r, "scope", "www"), "scope=\"tools:write\"", "names the scope needed");
	ASSERT_EQ(json_integer_value(get(r, "session", "a")), 200, "a's session");
	ASSERT_EQ(json_integer_value(get(r, "session", "b")), 403, "b refused a's session");
	/* Key rotation: the unknown kid makes the gateway fetch the JWKS again. */
	ASSERT_EQ(json_integer_value(get(r, "rotated", "first")), 401, "new kid: refused at first");
	ASSERT_EQ(json_integer_value(get(r, "rotated", "retry")), 200, "then served");
	/* One policy, two clients. */
	ASSERT_STREQ(str(r, "b_sdk", "error"), "", "client b connected");
	ASSERT_TRUE(json_is_true(get(r, "b_sdk", "is_error")) || !str(r, "b_sdk", "text")[0] ||
			strcmp(str(r, "b_sdk", "text"), "served"),
		    "client b's call refused by the policy");
	/* Tokens stay here; the audit names client and subject. */
	ASSERT_FALSE(upstream_saw(&e, "Bearer"), "no token upstream");
	ASSERT_FALSE(upstream_saw(&e, "eyJ"), "no JWT upstream");
	ASSERT_EQ(run_capture(&out,
			      "grep '\"kind\":\"decision\"' %s/audit.log | "
			      "grep -c '\"client\":\"" CLIENT_B "\"'",
			      e.d.state),
		  0, "b's decisions audited with its client");
	ASSERT_EQ(
	    run_capture(&out, "grep -c '\"subject\":\"" CLIENT_A "\"' %s/audit.log", e.d.state), 0,
	    "a's records name its subject");
out:
	if (out && test__verbose())
		fprintf(stderr, "%s\n", out);
	free(out);
	json_decref(r);
	env_stop(&e);
	idp_stop(&idp);
	net_down(&n);
	snprintf(more, sizeof(more), "rm -rf '%s'", dir);
	sh(more);
}
