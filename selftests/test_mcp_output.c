// SPDX-License-Identifier: GPL-2.0
/*
 * Output governance and tool integrity on the MCP path, with a real
 * agentgated: tool results are masked or refused by the server's output
 * rules (JSON and SSE, secrets split across chunks included) and audited
 * by rule, never by value; a tool whose definition changes is hidden and
 * refused until agentgatectl tools approve.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mcplib.h"
#include "test.h"
#include "testlib.h"

static const char agent_json[] = "{\"name\": \"a\", \"tools\": [\"t/*\"]}";

static const char output_rules[] =
	"\"output_rules\": ["
	"{\"name\": \"ssn\", \"path\": \"$.structuredContent.ssn\"},"
	"{\"name\": \"ssn_text\", \"path\": \"$.ssn\"},"
	"{\"name\": \"card\", \"detector\": \"credit_card\"},"
	"{\"name\": \"mail\", \"detector\": \"email\"},"
	"{\"name\": \"token\", \"detector\": \"bearer_token\"},"
	"{\"name\": \"cloud\", \"detector\": \"cloud_access_key\"},"
	"{\"name\": \"pem\", \"detector\": \"pem_private_key\", \"action\": \"refuse\"},"
	"{\"name\": \"emp\", \"regex\": \"EMP-[0-9]{6}\", \"tools\": [\"echo\"]},"
	"{\"name\": \"project\", \"regex\": \"PROJECT-(ALPHA|OMEGA)\", \"action\": \"refuse\"}]";

/* The result record of call id, once group commit has written it. */
static char *result_record(struct mcp_env *e, int id)
{
	char *out = NULL;

	/* Records have sorted keys: "id" comes before "kind". */
	if (run_capture(&out,
			"for i in $(seq 50); do grep '\"id\":%d,.*\"kind\":\"result\"' %s/audit.log "
			"&& break; sleep 0.1; done",
			id, e->d.state) || !out || !*out) {
		free(out);
		return NULL;
	}
	return out;
}

static void text_result(char *buf, size_t len, const char *text)
{
	snprintf(buf, len, "{\"content\":[{\"type\":\"text\",\"text\":\"%s\"}]}", text);
}

TEST(mcp_output_rules)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	struct mcp_env e = { .server_json = output_rules };
	char result[2048], *rec;

	if (!ASSERT_OK(env_start(&e, "mcpout", REPLY_JSON, agent_json), "environment"))
		goto out;
	if (test__start_subtest("field_paths")) {
		e.tool.call_result = "{\"content\":[{\"type\":\"text\",\"text\":"
				     "\"{\\\"ssn\\\":\\\"078-05-1120\\\",\\\"name\\\":\\\"Ada\\\"}\"}],"
				     "\"structuredContent\":{\"ssn\":\"219-09-9999\",\"name\":\"Ada\"}}";
		call_tool(&e, x, "echo", 1);
		ASSERT_STRHAS(x->response, "HTTP/1.1 200", "answered");
		ASSERT_NULL(strstr(x->response, "219-09-9999"), "structured field masked");
		ASSERT_NULL(strstr(x->response, "078-05-1120"), "field of JSON text masked");
		ASSERT_STRHAS(x->response, "[REDACTED:ssn]", "mask names the rule");
		ASSERT_STRHAS(x->response, "[REDACTED:ssn_text]", "mask of the text names its rule");
		ASSERT_STRHAS(x->response, "Ada", "other fields kept");
		rec = result_record(&e, 1);
		ASSERT_OK_PTR(rec, "result record");
		ASSERT_STRHAS(rec, "\"rule\":\"ssn\"", "audit names the rule");
		ASSERT_STRHAS(rec, "\"path\":\"$.structuredContent.ssn\"", "audit names the place");
		ASSERT_NULL(rec ? strstr(rec, "219-09-9999") : NULL, "audit holds no value");
		free(rec);
	}
	if (test__start_subtest("cards_luhn")) {
		text_result(result, sizeof(result),
			    "paid 4111 1111 1111 1111; order 4111 1111 1111 1112");
		e.tool.call_result = result;
		call_tool(&e, x, "echo", 2);
		ASSERT_NULL(strstr(x->response, "4111 1111 1111 1111"), "Luhn-valid card masked");
		ASSERT_STRHAS(x->response, "4111 1111 1111 1112", "Luhn-invalid number kept");
		ASSERT_STRHAS(x->response, "[REDACTED:card]", "card mask");
	}
	if (test__start_subtest("email")) {
		text_result(result, sizeof(result), "write to ada@example.org, not to ada@localhost");
		e.tool.call_result = result;
		call_tool(&e, x, "echo", 3);
		ASSERT_NULL(strstr(x->response, "ada@example.org"), "address masked");
		ASSERT_STRHAS(x->response, "ada@localhost", "no TLD: not an address, kept");
	}
	if (test__start_subtest("tokens_and_keys")) {
		text_result(result, sizeof(result),
			    "use Bearer abcDEF0123456789ghiJKL0123 or AKIAIOSFODNN7EXAMPLE; "
			    "AKIA alone is a word");
		e.tool.call_result = result;
		call_tool(&e, x, "echo", 4);
		ASSERT_NULL(strstr(x->response, "abcDEF0123456789ghiJKL0123"), "bearer token masked");
		ASSERT_NULL(strstr(x->response, "AKIAIOSFODNN7EXAMPLE"), "access key masked");
		ASSERT_STRHAS(x->response, "AKIA alone", "a prefix alone is kept");
		rec = result_record(&e, 4);
		ASSERT_STRHAS(rec, "\"rule\":\"token\"", "token rule audited");
		ASSERT_STRHAS(rec, "\"rule\":\"cloud\"", "cloud rule audited");
		ASSERT_NULL(rec ? strstr(rec, "AKIAIOSFODNN7EXAMPLE") : NULL, "audit holds no key");
		free(rec);
	}
	if (test__start_subtest("regex_per_tool")) {
		text_result(result, sizeof(result), "employee EMP-123456 and EMP-12345");
		e.tool.call_result = result;
		call_tool(&e, x, "echo", 5);
		ASSERT_NULL(strstr(x->response, "EMP-123456"), "regex masks for echo");
		ASSERT_STRHAS(x->response, "EMP-12345\"", "five digits: no match");
		call_tool(&e, x, "add", 6);
		ASSERT_STRHAS(x->response, "EMP-123456", "the rule is limited to echo");
	}
	if (test__start_subtest("refuse_on_detect")) {
		text_result(result, sizeof(result),
			    "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\\n"
			    "-----END PRIVATE KEY-----");
		e.tool.call_result = result;
		call_tool(&e, x, "echo", 7);
		ASSERT_STRHAS(x->response, "\"isError\":true", "the agent gets a tool error");
		ASSERT_STRHAS(x->response, "Refused by output rule pem", "naming the rule");
		ASSERT_NULL(strstr(x->response, "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"),
			    "nothing of the key");
		rec = result_record(&e, 7);
		ASSERT_STRHAS(rec, "\"refused_by\":\"pem\"", "refusal audited");
		free(rec);
		text_result(result, sizeof(result), "status of PROJECT-OMEGA: green");
		call_tool(&e, x, "add", 8);
		ASSERT_STRHAS(x->response, "Refused by output rule project", "regex refusal");
	}
	if (test__start_subtest("clean_result_untouched")) {
		text_result(result, sizeof(result), "nothing to see: 12 apples");
		e.tool.call_result = result;
		call_tool(&e, x, "echo", 9);
		ASSERT_STRHAS(x->response, "nothing to see: 12 apples", "passed on");
		rec = result_record(&e, 9);
		if (ASSERT_OK_PTR(rec, "result record"))
			ASSERT_NULL(strstr(rec, "redactions"), "no redactions recorded");
		free(rec);
	}
out:
	env_stop(&e);
}

/* SSE: each event is judged whole, even when the upstream cut a secret in two. */
TEST(mcp_output_sse)
{
	static const char token_text[] = "{\"content\":[{\"type\":\"text\",\"text\":"
					 "\"key AKIAIOSFODNN7EXAMPLE and 5500 0000 0000 0004\"}]}";
	struct exchange *x = shared_alloc(sizeof(*x));
	struct mcp_env e = { .server_json = output_rules };
	const char *cut;

	if (!ASSERT_OK(env_start(&e, "mcpoutsse", REPLY_SSE_SPLIT, agent_json), "environment"))
		goto out;
	e.tool.call_result = token_text;
	if (test__start_subtest("split_access_key")) {
		/* The message is {"jsonrpc":"2.0","id":11,"result":<token_text>}:
		 * cut in the middle of the access key. */
		cut = strstr(token_text, "AKIAIOSF");
		e.tool.sse_split = strlen("{\"jsonrpc\":\"2.0\",\"id\":11,\"result\":") +
				   (size_t)(cut - token_text) + 8;
		call_tool(&e, x, "echo", 11);
		ASSERT_STRHAS(x->response, "text/event-stream", "an SSE answer");
		ASSERT_NULL(strstr(x->response, "AKIAIOSFODNN7EXAMPLE"), "split key masked");
		ASSERT_NULL(strstr(x->response, "ODNN7EXAMPLE"), "no half of it either");
		ASSERT_STRHAS(x->response, "[REDACTED:cloud]", "mask");
	}
	if (test__start_subtest("split_card")) {
		cut = strstr(token_text, "5500 00");
		e.tool.sse_split = strlen("{\"jsonrpc\":\"2.0\",\"id\":12,\"result\":") +
				   (size_t)(cut - token_text) + 7;
		call_tool(&e, x, "echo", 12);
		ASSERT_NULL(strstr(x->response, "0000 0004"), "split card masked");
		ASSERT_STRHAS(x->response, "[REDACTED:card]", "card mask");
	}
	if (test__start_subtest("refuse")) {
		e.tool.call_result = "{\"content\":[{\"type\":\"text\",\"text\":\"PROJECT-ALPHA\"}]}";
		e.tool.sse_split = 40;
		call_tool(&e, x, "echo", 13);
		ASSERT_STRHAS(x->response, "Refused by output rule project", "refused in SSE");
		ASSERT_NULL(strstr(x->response, "PROJECT-ALPHA"), "nothing of it");
	}
out:
	env_stop(&e);
}

/* Without "output_rules", secrets are masked and nothing else is touched. */
TEST(mcp_output_default)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	struct mcp_env e = { 0 };
	char result[512];

	if (!ASSERT_OK(env_start(&e, "mcpoutdef", REPLY_JSON, agent_json), "environment"))
		goto out;
	text_result(result, sizeof(result),
		    "token ghp_0123456789abcdefghijABCDEFGHIJ012345 for ada@example.org, "
		    "card 4111 1111 1111 1111");
	e.tool.call_result = result;
	call_tool(&e, x, "echo", 1);
	ASSERT_NULL(strstr(x->response, "ghp_0123456789abcdefghij"), "access token masked");
	ASSERT_STRHAS(x->response, "ada@example.org", "e-mail not a default rule");
	ASSERT_STRHAS(x->response, "4111 1111 1111 1111", "cards not a default rule");
out:
	env_stop(&e);
}

static const char list_v1[] =
	"{\"tools\":[{\"name\":\"echo\",\"description\":\"Returns the text\","
	"\"inputSchema\":{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\"}}}},"
	"{\"name\":\"add\",\"description\":\"Adds\",\"inputSchema\":{\"type\":\"object\"}}]}";
/* The same definitions, keys reordered and spaced: not a change. */
static const char list_v1_reordered[] =
	"{\"tools\":[{\"inputSchema\":{ \"properties\":{\"text\":{\"type\":\"string\"}}, "
	"\"type\":\"object\"},\"description\":\"Returns the text\",\"name\":\"echo\"},"
	"{\"description\":\"Adds\",\"name\":\"add\",\"inputSchema\":{\"type\":\"object\"}}]}";
/* One word of echo's description changed. */
static const char list_v2[] =
	"{\"tools\":[{\"name\":\"echo\",\"description\":\"Returns the secret\","
	"\"inputSchema\":{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\"}}}},"
	"{\"name\":\"add\",\"description\":\"Adds\",\"inputSchema\":{\"type\":\"object\"}}]}";

static void list(struct mcp_env *e, struct exchange *x)
{
	post(x, e->orig_port, "", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
	run_agent(e, x);
}

static int ctl(struct mcp_env *e, char **out, const char *args)
{
	free(*out);
	*out = NULL;
	return run_capture(out, "%s/agentgatectl --instance %s --state-dir %s %s 2>&1",
			   testlib_build_dir(), e->d.in.name, e->d.state, args);
}

TEST(mcp_tool_integrity)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	struct mcp_env e = { 0 };
	char *out = NULL;

	if (!ASSERT_OK(env_start(&e, "mcpinteg", REPLY_JSON, agent_json), "environment"))
		goto out;
	e.tool.list_result = list_v1;
	list(&e, x);
	ASSERT_STRHAS(x->response, "\"name\":\"echo\"", "first sight: trusted");
	if (test__start_subtest("reordered_is_no_change")) {
		e.tool.list_result = list_v1_reordered;
		list(&e, x);
		ASSERT_STRHAS(x->response, "\"name\":\"echo\"", "still listed");
		call_tool(&e, x, "echo", 2);
		ASSERT_STRHAS(x->response, "served", "still callable");
	}
	if (test__start_subtest("changed_is_blocked")) {
		int before;

		e.tool.list_result = list_v2;
		list(&e, x);
		ASSERT_NULL(strstr(x->response, "\"name\":\"echo\""), "changed echo hidden");
		ASSERT_STRHAS(x->response, "\"name\":\"add\"", "unchanged add listed");
		before = tool_nseen(&e.tool);
		call_tool(&e, x, "echo", 3);
		ASSERT_STRHAS(x->response, "Unknown tool: echo", "changed echo refused");
		ASSERT_EQ(tool_nseen(&e.tool), before, "nothing reached the tool server");
		ASSERT_EQ(ctl(&e, &out, "tools --json"), 0, "tools --json");
		ASSERT_STRHAS(out, "\"state\":\"blocked\"", "inventory: blocked");
	}
	if (test__start_subtest("approve_stale_hash")) {
		ASSERT_NEQ(ctl(&e, &out, "tools approve t/echo --by tester --hash "
					"0000000000000000000000000000000000000000000000000000000000000000"),
			  0, "approval of another definition refused");
		call_tool(&e, x, "echo", 4);
		ASSERT_STRHAS(x->response, "Unknown tool: echo", "still refused");
	}
	if (test__start_subtest("approve")) {
		ASSERT_EQ(ctl(&e, &out, "tools approve t/echo --by tester"), 0, "tools approve");
		ASSERT_STRHAS(out, "-  \"description\": \"Returns the text\"", "diff: old");
		ASSERT_STRHAS(out, "+  \"description\": \"Returns the secret\"", "diff: new");
		list(&e, x);
		ASSERT_STRHAS(x->response, "\"name\":\"echo\"", "approved echo listed");
		call_tool(&e, x, "echo", 5);
		ASSERT_STRHAS(x->response, "served", "approved echo callable");
	}
	if (test__start_subtest("survives_restart")) {
		e.tool.list_result = list_v1;
		list(&e, x);
		ASSERT_NULL(strstr(x->response, "\"name\":\"echo\""), "changed back: blocked");
		tdaemon_kill(&e.d, SIGTERM);
		if (ASSERT_OK(tdaemon_restart(&e.d), "restart")) {
			call_tool(&e, x, "echo", 6);
			ASSERT_STRHAS(x->response, "Unknown tool: echo", "blocked after a restart");
		}
	}
	if (test__start_subtest("lock_export")) {
		ASSERT_EQ(ctl(&e, &out, "tools lock"), 0, "tools lock");
		ASSERT_STRHAS(out, "\"t/add\": \"", "trusted tools pinned");
	}
out:
	free(out);
	env_stop(&e);
}

/* trust: explicit: nothing is listed or called before an operator approves. */
TEST(mcp_tool_trust_explicit)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	struct mcp_env e = { .server_json = "\"trust\": \"explicit\"" };
	char *out = NULL;

	if (!ASSERT_OK(env_start(&e, "mcpexpl", REPLY_JSON, agent_json), "environment"))
		goto out;
	e.tool.list_result = list_v1;
	call_tool(&e, x, "echo", 1);
	ASSERT_STRHAS(x->response, "Unknown tool: echo", "never listed: refused");
	list(&e, x);
	ASSERT_NULL(strstr(x->response, "\"name\":\"echo\""), "pending: hidden");
	ASSERT_EQ(ctl(&e, &out, "tools"), 0, "tools");
	ASSERT_STRHAS(out, "pending", "inventory: pending");
	ASSERT_EQ(ctl(&e, &out, "tools approve t/echo --by tester"), 0, "approve");
	list(&e, x);
	ASSERT_STRHAS(x->response, "\"name\":\"echo\"", "approved: listed");
	ASSERT_NULL(strstr(x->response, "\"name\":\"add\""), "add still pending");
out:
	free(out);
	env_stop(&e);
}

/*
 * A result no rule changes is read by the envelope scanner only
 * (lib/jsonrpc_scan.h): it passes byte for byte and is recorded; what
 * jansson would refuse never passes; a secret behind an escape is found.
 */
TEST(mcp_output_unread)
{
	static const char *const refused[] = {
		"{\"a\":1,\"content\":[],\"a\":2}", /* a duplicate key */
		"{\"content\":[{\"type\":\"text\",\"text\":\"\xc3\x28\"}]}",
		"{\"content\":[{\"type\":\"text\",\"text\":\"\\u0000\"}]}",
		"{\"content\":[]}} {\"second\":1", /* a second JSON value */
		"{\"content\":[]}}garbage{\"x\":1",
	};
	static const char *const secrets[] = {
		"a\\nghp_0123456789abcdefghijABCDEFGHIJ012345",
		"\\u0067hp_0123456789abcdefghijABCDEFGHIJ012345",
	};
	static const char spaced[] =
	    "{ \"content\" : [ {\"type\":\"text\", \"text\":\"caf\\u00e9\\n\"}"
	    " ], \"isError\" : true }";
	struct exchange *x = shared_alloc(sizeof(*x));
	struct mcp_env e = { 0 };
	char result[512], *rec;

	if (!ASSERT_OK(env_start(&e, "mcpoutraw", REPLY_JSON, agent_json), "environment"))
		goto out;
	e.tool.call_result = spaced;
	call_tool(&e, x, "echo", 1);
	ASSERT_STRHAS(x->response, spaced, "passed byte for byte");
	rec = result_record(&e, 1);
	if (ASSERT_OK_PTR(rec, "result record"))
		ASSERT_STRHAS(rec, "\"is_error\":true", "isError recorded");
	free(rec);
	for (size_t i = 0; i < AG_ARRAY_SIZE(refused); i++) {
		e.tool.call_result = refused[i];
		call_tool(&e, x, "echo", 10 + (int)i);
		ASSERT_STRHAS(x->response, "the tool server's response was invalid", refused[i]);
		ASSERT_NULL(strstr(x->response, "\"content\""), "nothing of it passed");
	}
	for (size_t i = 0; i < AG_ARRAY_SIZE(secrets); i++) {
		text_result(result, sizeof(result), secrets[i]);
		e.tool.call_result = result;
		call_tool(&e, x, "echo", 20 + (int)i);
		ASSERT_NULL(strstr(x->response, "0123456789abcdefghij"), secrets[i]);
		ASSERT_STRHAS(x->response, "[REDACTED:", "masked");
	}
out:
	env_stop(&e);
}
