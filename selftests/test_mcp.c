// SPDX-License-Identifier: GPL-2.0
/*
 * The MCP path end to end with a real agentgated: an agent process in the
 * instance's agent cgroup speaks HTTP to a tool server's original address,
 * the kernel redirects it, and a tool server played by this process (a
 * thread, so every byte that reaches it can be checked) answers.
 * Real third-party MCP peers are driven by test_mcp_e2e.c.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "http.h"
#include "mcplib.h"
#include "test.h"
#include "testlib.h"

static const char default_agent[] = "{\"name\": \"a\", \"tools\": [\"t/echo\", \"t/add\"]}";

TEST(mcp_governed)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	struct mcp_env e = { 0 };

	if (!ASSERT_OK(env_start(&e, "mcpgov", REPLY_JSON, default_agent), "environment"))
		goto out;
	if (test__start_subtest("list_filtered")) {
		post(x, e.orig_port, "",
		     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{}}");
		run_agent(&e, x);
		ASSERT_STRHAS(x->response, "HTTP/1.1 200", "status");
		ASSERT_STRHAS(x->response, "\"name\":\"echo\"", "allowed tool listed");
		ASSERT_STRHAS(x->response, "\"name\":\"add\"", "second allowed tool listed");
		ASSERT_NULL(strstr(x->response, "secret"), "tool outside the allow-list hidden");
		ASSERT_EQ(tool_nseen(&e.tool), 1, "one request at the tool server");
	}
	if (test__start_subtest("call_allowed_credentials_stripped")) {
		int before = tool_nseen(&e.tool);

		post(x, e.orig_port,
		     "Authorization: Bearer agent-canary-7f3a\r\nCookie: sid=agent-canary-c00k\r\n"
		     "Proxy-Authorization: Basic agent-canary-pxy\r\n",
		     "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":"
		     "\"echo\",\"arguments\":{\"text\":\"hi\"}}}");
		run_agent(&e, x);
		ASSERT_STRHAS(x->response, "\"served\"", "the tool's result reached the agent");
		if (ASSERT_EQ(tool_nseen(&e.tool), before + 1, "the call reached the tool server")) {
			struct seen *s = &e.tool.seen[before];
			char host[64];

			ASSERT_STRHAS(s->body, "\"name\":\"echo\"", "body forwarded");
			ASSERT_NULL(strstr(s->head, "agent-canary"), "no agent credential upstream");
			ASSERT_NULL(strcasestr(s->head, "authorization:"), "no Authorization upstream");
			ASSERT_NULL(strcasestr(s->head, "cookie:"), "no Cookie upstream");
			snprintf(host, sizeof(host), "Host: 127.0.0.1:%u\n", e.tool.port);
			ASSERT_STRHAS(s->head, host, "Host names the upstream");
			/* Head and body leave in one send: one wake-up of the server. */
			ASSERT_EQ(s->segs, 1, "the request came in one segment");
		}
	}
	if (test__start_subtest("identity_encoding_upstream")) {
		int before = tool_nseen(&e.tool);

		post(x, e.orig_port, "Accept-Encoding: gzip, br\r\n",
		     "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/list\"}");
		run_agent(&e, x);
		/* A compressed list could not be filtered: the gateway asks for none. */
		if (ASSERT_EQ(tool_nseen(&e.tool), before + 1, "forwarded")) {
			ASSERT_STRHAS(e.tool.seen[before].head, "Accept-Encoding: identity\n",
				      "identity asked for");
			ASSERT_NULL(strstr(e.tool.seen[before].head, "gzip"), "not the agent's");
		}
	}
	if (test__start_subtest("body_only_on_post")) {
		int before = tool_nseen(&e.tool);

		memset(x, 0, sizeof(*x));
		x->port = e.orig_port;
		snprintf(x->request, sizeof(x->request),
			 "DELETE /mcp HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nContent-Length: 73\r\n\r\n"
			 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":"
			 "{\"name\":\"secret\"}}",
			 e.orig_port);
		run_agent(&e, x);
		ASSERT_STRHAS(x->response, "HTTP/1.1 400", "a body on DELETE is refused");
		ASSERT_EQ(tool_nseen(&e.tool), before, "nothing reached the tool server");
	}
	if (test__start_subtest("call_denied_never_forwarded")) {
		int before = tool_nseen(&e.tool);

		post(x, e.orig_port, "",
		     "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":"
		     "\"secret\",\"arguments\":{}}}");
		run_agent(&e, x);
		ASSERT_STRHAS(x->response, "HTTP/1.1 200", "status 200");
		ASSERT_STRHAS(x->response, "\"code\":-32602", "unknown-tool error code");
		ASSERT_STRHAS(x->response, "Unknown tool: secret", "unknown-tool message");
		ASSERT_EQ(tool_nseen(&e.tool), before, "nothing reached the tool server");
	}
	if (test__start_subtest("batch_mixed")) {
		int before = tool_nseen(&e.tool);

		post(x, e.orig_port, "",
		     "[{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":"
		     "\"echo\"}},{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\","
		     "\"params\":{\"name\":\"secret\"}}]");
		run_agent(&e, x);
		ASSERT_STRHAS(x->response, "\"id\":4,\"result\"", "allowed element answered");
		ASSERT_STRHAS(x->response, "\"id\":5,\"error\"", "denied element answered");
		if (ASSERT_EQ(tool_nseen(&e.tool), before + 1, "one request at the tool server")) {
			ASSERT_STRHAS(e.tool.seen[before].body, "\"echo\"", "allowed element forwarded");
			ASSERT_NULL(strstr(e.tool.seen[before].body, "secret"),
				    "denied element not forwarded");
		}
	}
	if (test__start_subtest("header_mismatch_2026")) {
		int before = tool_nseen(&e.tool);

		post(x, e.orig_port,
		     "MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\n"
		     "Mcp-Name: echo\r\n",
		     "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/call\",\"params\":{\"name\":"
		     "\"secret\"}}");
		run_agent(&e, x);
		ASSERT_STRHAS(x->response, "HTTP/1.1 400", "status 400");
		ASSERT_STRHAS(x->response, "-32020", "header mismatch code");
		ASSERT_EQ(tool_nseen(&e.tool), before, "nothing reached the tool server");
	}
	if (test__start_subtest("headers_agree_2026")) {
		post(x, e.orig_port,
		     "MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\n"
		     "Mcp-Name: secret\r\n",
		     "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":"
		     "\"secret\"}}");
		run_agent(&e, x);
		/* Consistent headers, decided on the body: still not allowed. */
		ASSERT_STRHAS(x->response, "Unknown tool: secret", "decided on the body");
	}
	if (test__start_subtest("host_rebinding_refused")) {
		int before = tool_nseen(&e.tool);

		memset(x, 0, sizeof(*x));
		x->port = e.orig_port;
		snprintf(x->request, sizeof(x->request),
			 "POST /mcp HTTP/1.1\r\nHost: evil.example:%u\r\nContent-Type: "
			 "application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
			 e.orig_port);
		run_agent(&e, x);
		ASSERT_STRHAS(x->response, "HTTP/1.1 403", "foreign Host refused");
		post(x, e.orig_port, "Origin: http://evil.example\r\n",
		     "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/list\"}");
		run_agent(&e, x);
		ASSERT_STRHAS(x->response, "HTTP/1.1 403", "foreign Origin refused");
		ASSERT_EQ(tool_nseen(&e.tool), before, "nothing reached the tool server");
	}
	if (test__start_subtest("audit_decisions")) {
		char *out = NULL;

		/* Records are group-committed: give the batch its millisecond. */
		usleep(100000);
		ASSERT_EQ(run_capture(&out, "grep '\"kind\":\"decision\"' %s/audit.log", e.d.state), 0,
			  "decision records");
		if (out) {
			ASSERT_STRHAS(out, "\"decision\":\"allow\"", "allow recorded");
			ASSERT_STRHAS(out, "\"decision\":\"deny\"", "denial recorded");
			ASSERT_STRHAS(out, "\"hidden\":true", "denial hid the tool");
			ASSERT_STRHAS(out, "\"tool\":\"secret\"", "the tool named");
			ASSERT_STRHAS(out, "\"args\":{\"text\":{\"sha256\":\"", "arguments hashed");
			ASSERT_NULL(strstr(out, "\"hi\""), "argument values not logged");
		}
		free(out);
		out = NULL;
		ASSERT_EQ(run_capture(&out, "grep -c '\"kind\":\"result\"' %s/audit.log", e.d.state),
			  0, "result records");
		free(out);
	}
out:
	env_stop(&e);
}

/* Ambiguous framing from an agent: 400, connection closed, nothing forwarded. */
TEST(mcp_framing)
{
	static const struct {
		const char *name;
		const char *fields;
		const char *body;
	} cases[] = {
		{ "cl_and_te", "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n", "2\r\n{}\r\n0\r\n\r\n" },
		{ "duplicate_cl", "Content-Length: 2\r\nContent-Length: 2\r\n", "{}" },
		{ "obs_fold", "Content-Length: 2\r\nX-Folded: a\r\n b\r\n", "{}" },
		{ "bare_lf", "Content-Length: 2\nX-A: b\r\n", "{}" },
		{ "bare_cr", "Content-Length: 2\r\nX-A: b\rc\r\n", "{}" },
		{ "chunk_size_overflow", "Transfer-Encoding: chunked\r\n",
		  "10000000000000000\r\n{}\r\n0\r\n\r\n" },
	};
	struct exchange *x = shared_alloc(sizeof(*x));
	struct mcp_env e = { 0 };

	if (!ASSERT_OK(env_start(&e, "mcpframe", REPLY_JSON, default_agent), "environment"))
		goto out;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (!test__start_subtest(cases[i].name))
			continue;
		memset(x, 0, sizeof(*x));
		x->port = e.orig_port;
		snprintf(x->request, sizeof(x->request),
			 "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nContent-Type: application/json\r\n"
			 "%s\r\n%s",
			 e.orig_port, cases[i].fields, cases[i].body);
		run_agent(&e, x);
		ASSERT_STRHAS(x->response, "HTTP/1.1 400", "refused with 400");
		ASSERT_STRHAS(x->response, "Connection: close", "connection closed");
		ASSERT_EQ(tool_nseen(&e.tool), 0, "nothing reached the tool server");
	}
out:
	env_stop(&e);
}

/* SSE responses pass event by event: a progress notification reaches the
 * agent while the tool server still holds the result back. */
TEST(mcp_sse_streaming)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	struct mcp_env e = { 0 };

	if (!ASSERT_OK(env_start(&e, "mcpsse", REPLY_SSE_SLOW, default_agent), "environment"))
		goto out;
	if (test__start_subtest("progress_before_result")) {
		post(x, e.orig_port, "",
		     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
		     "\"echo\",\"_meta\":{\"progressToken\":1}}}");
		x->progress_seen = e.tool.progress_seen;
		run_agent(&e, x);
		ASSERT_EQ(*e.tool.progress_seen, 1, "the agent saw the progress event");
		ASSERT_LT(e.tool.progress_waited_ms, 5000, "the result was not needed to get it");
		ASSERT_STRHAS(x->response, "\"served\"", "then the result");
		ASSERT_LT(strstr(x->response, "progress") - x->response,
			  strstr(x->response, "served") - x->response, "progress came first");
	}
	if (test__start_subtest("list_filtered_in_stream")) {
		*e.tool.progress_seen = 1; /* no waiting in the tool server */
		post(x, e.orig_port, "", "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}");
		run_agent(&e, x);
		ASSERT_STRHAS(x->response, "\"name\":\"echo\"", "allowed tool in the event");
		ASSERT_NULL(strstr(x->response, "secret"), "hidden tool filtered from the event");
		ASSERT_STRHAS(x->response, "progress", "other events passed on");
	}
out:
	env_stop(&e);
}

/* What is not a governed tool server: relayed if the agent may, else refused. */
TEST(mcp_passthrough)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	struct mcp_env e = { 0 };
	uint16_t other_port;
	int other = tcp_listen("127.0.0.1", 0, &other_port);
	char agent[256];

	/*
	 * Allowed by Host name only: the daemon must read the first bytes, and
	 * the name must be at the address dialled (localhost needs no DNS).
	 */
	snprintf(agent, sizeof(agent),
		 "{\"name\": \"a\", \"tools\": [\"t/echo\"], \"passthrough\": [\"localhost\"]}");
	if (!ASSERT_OK(env_start(&e, "mcppass", REPLY_JSON, agent), "environment"))
		goto out;
	if (test__start_subtest("host_allowed_relayed")) {
		char got[512] = "";
		int c;

		memset(x, 0, sizeof(*x));
		x->port = other_port;
		snprintf(x->request, sizeof(x->request),
			 "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
		if (fork() == 0)
			_exit(run_in_cgroup(e.agent_cg, NOBODY_UID, agent_exchange, x));
		c = accept_timeout(other, 5000);
		if (ASSERT_GE(c, 0, "relayed connection at the destination")) {
			ssize_t n = recv(c, got, sizeof(got) - 1, 0);

			ASSERT_GT(n, 0, "bytes at the destination");
			ASSERT_STREQ(got, x->request, "the agent's first bytes, verbatim");
			send_all(c, "HTTP/1.1 204 No Content\r\n\r\n", 27);
			close(c);
		}
		wait(NULL);
		ASSERT_STRHAS(x->response, "204", "the answer reached the agent");
	}
	if (test__start_subtest("other_host_refused")) {
		memset(x, 0, sizeof(*x));
		x->port = other_port;
		snprintf(x->request, sizeof(x->request),
			 "GET / HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n");
		run_agent(&e, x);
		ASSERT_STRHAS(x->response, "HTTP/1.1 403 Forbidden", "told: 403");
		ASSERT_STRHAS(x->response, "reason=not_allowed", "and why");
		ASSERT_FALSE(has_pending(other), "nothing at the destination");
		ASSERT_TRUE(log_has(&e.d, 2000, "conn_rejected", "reason=not_allowed", NULL),
			    "refusal logged");
	}
out:
	env_stop(&e);
	close(other);
}

/*
 * TLS toward the upstream is verified: the tool server's certificate is
 * trusted through tls.ca_file only; a wrong name or an
 * unknown CA ends the handshake and the agent gets a 502, while nothing of
 * the request reaches the server.
 */
TEST(mcp_upstream_tls)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	char dir[] = "/tmp/agupca.XXXXXX", extra[2048], *out = NULL;
	char path[PATH_MAX], key[PATH_MAX];
	uint16_t orig[3];
	SSL_CTX *ctx = NULL;
	struct mcp_env e = { 0 };

	memset(&e, 0, sizeof(e));
	if (!ASSERT_OK_PTR(mkdtemp(dir), "CA dir"))
		return;
	/* A self-signed certificate for tool.test: its own trust anchor. */
	if (!ASSERT_EQ(run_capture(&out,
				   "cd %s && openssl req -x509 -newkey ec -pkeyopt "
				   "ec_paramgen_curve:P-256 -nodes -keyout key.pem -out ca.crt "
				   "-days 1 -subj /CN=tool.test -addext subjectAltName=DNS:tool.test "
				   "2>&1",
				   dir),
		       0, "upstream certificate"))
		goto out_ca;
	snprintf(path, sizeof(path), "%s/ca.crt", dir);
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	ctx = SSL_CTX_new(TLS_server_method());
	if (!ASSERT_OK_PTR(ctx, "server context") ||
	    !ASSERT_EQ(SSL_CTX_use_certificate_file(ctx, path, SSL_FILETYPE_PEM), 1, "certificate") ||
	    !ASSERT_EQ(SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM), 1, "key"))
		goto out_ca;
	if (!ASSERT_OK(tool_start(&e.tool, REPLY_JSON), "tool server"))
		goto out_ca;
	e.tool.tls = ctx;
	for (int i = 0; i < 3; i++)
		orig[i] = free_port();
	/* One upstream, three ways to trust it: right, wrong name, wrong CA. */
	snprintf(extra, sizeof(extra),
		 "\"tool_servers\": ["
		 "{\"name\": \"t\", \"match\": {\"addresses\": [\"127.0.0.1\"], \"ports\": [%u]}, "
		 "\"upstream\": \"https://127.0.0.1:%u/mcp\", \"tls\": {\"ca_file\": \"%s/ca.crt\", "
		 "\"server_name\": \"tool.test\"}},"
		 "{\"name\": \"wrongname\", \"match\": {\"addresses\": [\"127.0.0.1\"], \"ports\": "
		 "[%u]}, \"upstream\": \"https://127.0.0.1:%u/mcp\", \"tls\": {\"ca_file\": "
		 "\"%s/ca.crt\", \"server_name\": \"other.test\"}},"
		 "{\"name\": \"untrusted\", \"match\": {\"addresses\": [\"127.0.0.1\"], \"ports\": "
		 "[%u]}, \"upstream\": \"https://127.0.0.1:%u/mcp\", \"tls\": {\"server_name\": "
		 "\"tool.test\"}}], "
		 "\"agents\": [{\"name\": \"a\", \"tools\": [\"t/echo\", \"wrongname/echo\", "
		 "\"untrusted/echo\"]}]",
		 orig[0], e.tool.port, dir, orig[1], e.tool.port, dir, orig[2], e.tool.port);
	if (!ASSERT_OK(tdaemon_start(&e.d, "mcpuptls", extra, 0), "daemon"))
		goto out;
	snprintf(e.agent_cg, sizeof(e.agent_cg), "%s/a", e.d.in.cg_agents);
	if (test__start_subtest("verified")) {
		post(x, orig[0], "",
		     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
		     "\"echo\"}}");
		run_agent(&e, x);
		ASSERT_STRHAS(x->response, "\"served\"", "answered over verified TLS");
		ASSERT_EQ(tool_nseen(&e.tool), 1, "the call reached the tool server");
	}
	if (test__start_subtest("name_mismatch")) {
		post(x, orig[1], "",
		     "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":"
		     "\"echo\"}}");
		run_agent(&e, x);
		ASSERT_STRHAS(x->response, "HTTP/1.1 502", "502 to the agent");
		ASSERT_EQ(tool_nseen(&e.tool), 1, "nothing reached the tool server");
		ASSERT_TRUE(log_has(&e.d, 2000, "server=wrongname", "hostname mismatch", NULL),
			    "the cause logged");
	}
	if (test__start_subtest("unknown_ca")) {
		post(x, orig[2], "",
		     "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":"
		     "\"echo\"}}");
		run_agent(&e, x);
		ASSERT_STRHAS(x->response, "HTTP/1.1 502", "502 to the agent");
		ASSERT_EQ(tool_nseen(&e.tool), 1, "nothing reached the tool server");
		ASSERT_TRUE(log_has(&e.d, 2000, "server=untrusted", "certificate verify failed", NULL),
			    "the cause logged");
	}
out:
	env_stop(&e);
out_ca:
	if (ctx)
		SSL_CTX_free(ctx);
	free(out);
	out = NULL;
	run_capture(&out, "rm -rf %s", dir);
	free(out);
}

/*
 * Credential brokering: the tool server gets the gateway's secret, never
 * the agent's; neither reaches the audit log or the daemon's log.
 */
TEST(mcp_credentials)
{
	static const char gw_secret[] = "gw-secret-canary-5d1e";
	struct exchange *x = shared_alloc(sizeof(*x));
	char dir[] = "/tmp/agcred.XXXXXX", extra[PATH_MAX + 1024], file[PATH_MAX], *out = NULL;
	struct mcp_env e = { 0 };
	FILE *f;

	memset(&e, 0, sizeof(e));
	if (!ASSERT_OK_PTR(mkdtemp(dir), "secret dir"))
		return;
	snprintf(file, sizeof(file), "%s/token", dir);
	if (!ASSERT_OK_PTR(f = fopen(file, "w"), "secret file"))
		goto out_dir;
	fprintf(f, "%s\n", gw_secret);
	fclose(f);
	if (!ASSERT_OK(tool_start(&e.tool, REPLY_JSON), "tool server"))
		goto out_dir;
	e.orig_port = free_port();
	snprintf(extra, sizeof(extra),
		 "\"tool_servers\": [{\"name\": \"t\", \"match\": {\"addresses\": [\"127.0.0.1\"], "
		 "\"ports\": [%u]}, \"upstream\": \"http://127.0.0.1:%u/mcp\", \"credential\": "
		 "{\"type\": \"bearer\", \"secret_file\": \"%s\"}}], "
		 "\"agents\": [{\"name\": \"a\", \"tools\": [\"t/echo\"]}]",
		 e.orig_port, e.tool.port, file);
	if (test__start_subtest("loose_secret_refused")) {
		chmod(file, 0644);
		snprintf(file, sizeof(file), "%s/agentgate.json", dir);
		if ((f = fopen(file, "w"))) {
			fprintf(f, "{%s}\n", extra);
			fclose(f);
		}
		ASSERT_EQ(run_capture(&out, "%s/agentgatectl config check --config %s 2>&1",
				      testlib_build_dir(), file),
			  1, "config check refuses");
		ASSERT_STRHAS(out, "/token", "names the secret file");
		ASSERT_NULL(out ? strstr(out, gw_secret) : NULL, "never shows the secret");
		free(out);
		out = NULL;
		snprintf(file, sizeof(file), "%s/token", dir);
		chmod(file, 0600);
	}
	if (!ASSERT_OK(tdaemon_start(&e.d, "mcpcred", extra, 0), "daemon"))
		goto out;
	snprintf(e.agent_cg, sizeof(e.agent_cg), "%s/a", e.d.in.cg_agents);
	if (test__start_subtest("injected_not_passed_through")) {
		post(x, e.orig_port, "Authorization: Bearer agent-canary-91ab\r\n",
		     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
		     "\"echo\",\"arguments\":{\"token\":\"arg-canary-77\"}}}");
		run_agent(&e, x);
		ASSERT_STRHAS(x->response, "\"served\"", "the call went through");
		if (ASSERT_EQ(tool_nseen(&e.tool), 1, "at the tool server")) {
			ASSERT_STRHAS(e.tool.seen[0].head, "Authorization: Bearer gw-secret-canary-5d1e\n",
				      "the gateway's credential upstream");
			ASSERT_NULL(strstr(e.tool.seen[0].head, "agent-canary"),
				    "not the agent's");
		}
	}
	if (test__start_subtest("secrets_not_logged")) {
		usleep(100000);
		ASSERT_EQ(run_capture(&out, "cat %s/audit.log %s", e.d.state, e.d.log), 0, "logs");
		ASSERT_STRHAS(out, "\"kind\":\"decision\"", "the call was audited");
		ASSERT_NULL(out ? strstr(out, gw_secret) : NULL, "no gateway secret in any log");
		ASSERT_NULL(out ? strstr(out, "agent-canary") : NULL, "no agent credential");
		ASSERT_NULL(out ? strstr(out, "arg-canary") : NULL, "argument values hashed");
		free(out);
		out = NULL;
	}
out:
	env_stop(&e);
out_dir:
	run_capture(&out, "rm -rf %s", dir);
	free(out);
}

/*
 * The audit disk fills up: governed calls are refused (503, nothing at
 * the tool server), status says why, and calls work again once there is
 * room.
 */
TEST(mcp_audit_disk_full)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	char filler[PATH_MAX + 16], *out = NULL;
	struct mcp_env e = { 0 };
	int before, status;

	if (!ASSERT_OK(env_start_flags(&e, "mcpfull", REPLY_JSON, default_agent, "",
				       TDAEMON_SMALL_STATE),
		       "environment"))
		goto out;
	post(x, e.orig_port, "",
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\"}}");
	run_agent(&e, x);
	ASSERT_STRHAS(x->response, "\"served\"", "a call before the disk fills");
	snprintf(filler, sizeof(filler), "%s/filler", e.d.state);
	ASSERT_NEQ(run_capture(&out, "dd if=/dev/zero of=%s bs=4k count=1000 2>&1", filler), 0,
		   "fill the disk");
	free(out);
	out = NULL;
	before = e.tool.nids;
	/* The writer notices at its next batch: calls until then may pass. */
	for (int i = 0; i < 50; i++) {
		post(x, e.orig_port, "",
		     "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":"
		     "\"echo\",\"arguments\":{\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}}}");
		run_agent(&e, x);
		if (strstr(x->response, "HTTP/1.1 503"))
			break;
		before = e.tool.nids;
	}
	ASSERT_STRHAS(x->response, "HTTP/1.1 503", "refused while the log cannot be written");
	ASSERT_STRHAS(x->response, "audit log", "says why");
	ASSERT_EQ(e.tool.nids, before, "the refused call never reached the tool server");
	status = run_capture(&out, "%s/agentgatectl --instance %s status", testlib_build_dir(),
			     e.d.in.name);
	ASSERT_NEQ(status, 0, "status is not healthy");
	free(out);
	out = NULL;
	unlink(filler);
	for (int i = 0; i < 100; i++) {
		post(x, e.orig_port, "",
		     "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":"
		     "\"echo\"}}");
		run_agent(&e, x);
		if (strstr(x->response, "\"served\""))
			break;
		usleep(50000);
	}
	ASSERT_STRHAS(x->response, "\"served\"", "calls resume once there is room");
out:
	free(out);
	env_stop(&e);
}

/*
 * The audit settings of agentgate.json: the log rotates by size and the
 * chain verifies across the files; every record also goes to a syslog
 * socket (RFC 5424) for forwarding to a SIEM.
 */
TEST(mcp_audit_rotation_syslog)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	char sock_path[] = "/tmp/agsyslog.XXXXXX", more[PATH_MAX + 128], *out = NULL;
	char buf[8192];
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct mcp_env e = { 0 };
	int sfd = -1, decisions = 0;

	memset(&e, 0, sizeof(e));
	if (!ASSERT_OK_PTR(mkdtemp(sock_path), "socket dir"))
		return;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/log", sock_path);
	sfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (!ASSERT_GE(sfd, 0, "syslog socket") ||
	    !ASSERT_OK(bind(sfd, (struct sockaddr *)&sun, sizeof(sun)), "bind syslog socket"))
		goto out_sock;
	snprintf(more, sizeof(more),
		 "\"audit\": {\"durability\": \"sync\", \"rotate_bytes\": 65536, \"syslog\": \"%s\"}",
		 sun.sun_path);
	if (!ASSERT_OK(env_start_with(&e, "mcprot", REPLY_JSON, default_agent, more), "environment"))
		goto out;
	/* About 1.5 KB of records per call: enough calls for two files. */
	for (int i = 0; i < 120; i++) {
		post(x, e.orig_port, "",
		     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
		     "\"echo\",\"arguments\":{\"text\":\"rotate me\"}}}");
		run_agent(&e, x);
		/* Drain as we go: a datagram socket's queue is short. */
		while (recv(sfd, buf, sizeof(buf) - 1, 0) > 0)
			decisions += strstr(buf, "\"kind\":\"decision\"") != NULL;
	}
	ASSERT_STRHAS(x->response, "\"served\"", "calls went through");
	tdaemon_kill(&e.d, SIGTERM);
	while (recv(sfd, buf, sizeof(buf) - 1, 0) > 0)
		decisions += strstr(buf, "\"kind\":\"decision\"") != NULL;
	ASSERT_EQ(run_capture(&out, "ls %s/audit.log.1", e.d.state), 0, "the log rotated");
	free(out);
	out = NULL;
	ASSERT_EQ(run_capture(&out, "%s/agentgatectl audit verify --pubkey %s/audit.key %s/audit.log 2>&1",
			      testlib_build_dir(), e.d.state, e.d.state),
		  0, "the series verifies");
	ASSERT_STRHAS(out, "OK", "verifier's verdict");
	ASSERT_GE(decisions, 100, "decision records reached syslog");
out:
	env_stop(&e);
out_sock:
	free(out);
	if (sfd >= 0)
		close(sfd);
	out = NULL;
	run_capture(&out, "rm -rf %s", sock_path);
	free(out);
}
