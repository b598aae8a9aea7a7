// SPDX-License-Identifier: GPL-2.0
/*
 * Red team, MCP path: what the gateway decided on is exactly what reaches
 * the tool server.  Each subtest is an attempt an agent made to have the
 * server act on something other than what the gateway parsed and audited
 * (a declared charset, a coding, another path or method on the same
 * origin, a field the gateway did not read, a second answer for one id);
 * the tool server is a thread of the test, so the bytes it received are
 * checked, not assumed.  New protocol features extend this suite (tests
 * named redteam_*; the real-peer attempts are in test_mcp_e2e.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mcplib.h"
#include "test.h"
#include "testlib.h"

static const char agent_json[] = "{\"name\": \"a\", \"tools\": [\"t/echo\"]}";

static const char echo_call[] =
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
    "\"arguments\":{\"text\":\"hi\"}}}";

/* x: the agent's raw request; nothing of it may reach the tool server. */
static void refused(struct mcp_env *e, struct exchange *x, const char *status, const char *what)
{
	int before = tool_nseen(&e->tool);

	x->port = e->orig_port;
	run_agent(e, x);
	ASSERT_STRHAS(x->response, status, what);
	ASSERT_EQ(tool_nseen(&e->tool), before, "nothing reached the tool server");
}

/* An agent's request: head lines (after Host), then body with its length. */
static void raw(struct exchange *x, uint16_t port, const char *start, const char *fields,
		const char *body)
{
	memset(x, 0, sizeof(*x));
	snprintf(x->request, sizeof(x->request),
		 "%s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n%sContent-Length: %zu\r\n\r\n%s", start,
		 port, fields, strlen(body), body);
}

#define JSON_TYPE "Content-Type: application/json\r\n"

/* Requests the gateway refuses whole: nothing of them reaches the server. */
static const struct refusal {
	const char *name, *start, *fields, *status, *what;
} refusals[] = {
	{ "charset_utf7", "POST /mcp", "Content-Type: application/json; charset=utf-7\r\n",
	  "HTTP/1.1 415", "a declared charset other than UTF-8" },
	{ "content_encoding", "POST /mcp", JSON_TYPE "Content-Encoding: identity, gzip\r\n",
	  "HTTP/1.1 415", "a coded body" },
	{ "two_content_types", "POST /mcp",
	  JSON_TYPE "Content-Type: text/plain; charset=utf-16\r\n", "HTTP/1.1 415",
	  "two Content-Types" },
	{ "other_path", "POST /admin/reset", JSON_TYPE, "HTTP/1.1 404",
	  "another path of the origin" },
	{ "get_other_path", "GET /admin/users?all=1", "", "HTTP/1.1 404", "a GET of another path" },
	{ "endpoint_with_query", "POST /mcp?debug=1", JSON_TYPE, "HTTP/1.1 404",
	  "the endpoint with a query of the agent's" },
	{ "absolute_form", "POST http://127.0.0.1/mcp", JSON_TYPE, "HTTP/1.1 400",
	  "an absolute-form target" },
	{ "method_put", "PUT /mcp", JSON_TYPE, "HTTP/1.1 405", "a method MCP does not define" },
	{ "lower_case_method", "post /mcp", JSON_TYPE, "HTTP/1.1 405",
	  "a method in lower case (methods are case-sensitive)" },
	{ "duplicate_session_field", "POST /mcp",
	  JSON_TYPE "Mcp-Session-Id: mine\r\nMcp-Session-Id: theirs\r\n", "HTTP/1.1 400",
	  "an allowed field given twice" },
};

TEST(redteam_mcp_forward)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	struct mcp_env e = { 0 };
	struct seen *s;

	if (!ASSERT_OK(env_start(&e, "rtfwd", REPLY_JSON, agent_json), "environment"))
		goto out;
	for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		const struct refusal *r = &refusals[i];

		if (!test__start_subtest(r->name))
			continue;
		raw(x, e.orig_port, r->start, r->fields, r->start[0] == 'G' ? "" : echo_call);
		refused(&e, x, r->status, r->what);
		if (!strcmp(r->status, "HTTP/1.1 405"))
			ASSERT_STRHAS(x->response, "Allow: GET, POST, DELETE",
				      "405 names the methods");
	}
	if (test__start_subtest("canonical_request")) {
		int n = tool_nseen(&e.tool);

		/* Whitespace, escapes and fields the server must never see. */
		raw(x, e.orig_port, "POST /mcp",
		    "Content-Type: application/json; charset=UTF-8\r\nX-HTTP-Method-Override: "
		    "DELETE\r\nX-Forwarded-For: 10.0.0.1\r\nCookie: s=1\r\nMcp-Session-Id: "
		    "sess-1\r\n",
		    " {\"jsonrpc\" : \"2.0\", \"id\":7 ,\"method\":\"tools/\\u0063all\",\"params\""
		    ":{\"name\":\"\\u0065cho\",\"arguments\":{\"text\":\"caf\\u00e9\"}}}\n");
		x->port = e.orig_port;
		run_agent(&e, x);
		ASSERT_STRHAS(x->response, "HTTP/1.1 200", "answered");
		if (!ASSERT_EQ(tool_nseen(&e.tool), n + 1, "forwarded once"))
			goto out;
		s = &e.tool.seen[n];
		/* The tool thread records "METHOD target\n" and "Name: value\n" lines. */
		ASSERT_TRUE(!strncmp(s->head, "POST /mcp\n", 10), "the endpoint's start line");
		ASSERT_STRHAS(s->head, "Content-Type: application/json\n", "the gateway's type");
		ASSERT_NULL(strcasestr(s->head, "charset"), "no charset upstream");
		ASSERT_NULL(strcasestr(s->head, "X-HTTP-Method-Override"), "no override upstream");
		ASSERT_NULL(strcasestr(s->head, "X-Forwarded-For"), "no forwarding field upstream");
		ASSERT_NULL(strcasestr(s->head, "Cookie"), "no cookie upstream");
		ASSERT_STRHAS(s->head, "Mcp-Session-Id: sess-1\n", "the session field passes");
		ASSERT_STREQ(s->body,
			     "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":"
			     "{\"name\":\"echo\",\"arguments\":{\"text\":\"caf\xc3\xa9\"}}}",
			     "the body as the gateway parsed it");
	}
	if (test__start_subtest("duplicate_ids")) {
		raw(x, e.orig_port, "POST /mcp", JSON_TYPE,
		    "[{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":"
		    "\"echo\"}},{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":"
		    "{\"name\":\"echo\"}}]");
		refused(&e, x, "HTTP/1.1 400", "two requests with one id are refused");
	}
out:
	env_stop(&e);
}

/*
 * A batch whose ids differ only in their JSON type (5 and "#5") is two
 * calls, and both results go through the output rules and into the audit
 * log: one bookkeeping key for both let the second result pass unread.
 */
TEST(redteam_mcp_typed_ids)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	struct mcp_env e = { .server_json = "\"output_rules\": [{\"name\": \"leak\", \"regex\": "
					    "\"agentgate-secret-[0-9]+\"}]" };
	char *out = NULL;

	if (!ASSERT_OK(env_start(&e, "rtids", REPLY_JSON, agent_json), "environment"))
		goto out;
	e.tool.call_result = "{\"content\":[{\"type\":\"text\",\"text\":\"agentgate-secret-7\"}]}";
	raw(x, e.orig_port, "POST /mcp", "Content-Type: application/json\r\n",
	    "[{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/"
	    "call\",\"params\":{\"name\":\"echo\"}},"
	    "{\"jsonrpc\":\"2.0\",\"id\":\"#5\",\"method\":\"tools/call\",\"params\":{\"name\":"
	    "\"echo\"}}]");
	x->port = e.orig_port;
	run_agent(&e, x);
	ASSERT_STRHAS(x->response, "HTTP/1.1 200", "answered");
	ASSERT_NULL(strstr(x->response, "agentgate-secret-7"), "no result unmasked");
	ASSERT_STRHAS(x->response, "\"id\":\"#5\"", "the string id's answer came");
	ASSERT_OK(
	    run_capture(&out,
			"for i in $(seq 50); do n=$(grep -c '\"kind\":\"result\"' %s/audit.log);"
			" [ \"$n\" -ge 2 ] && break; sleep 0.1; done; echo $n",
			e.d.state),
	    "audit log");
	ASSERT_STREQ(out, "2\n", "a result record for each call");
out:
	free(out);
	env_stop(&e);
}

/* The tools/call names of a body as a lenient server reads it (last key wins). */
static void count_calls(const char *body, json_t *counts)
{
	json_t *root = json_loads(body, 0, NULL), *m;
	size_t i, n = json_is_array(root) ? json_array_size(root) : 1;

	for (i = 0; root && i < n; i++) {
		const char *name;

		m = json_is_array(root) ? json_array_get(root, i) : root;
		name = json_string_value(json_object_get(json_object_get(m, "params"), "name"));
		if (name &&
		    !strcmp(json_string_value(json_object_get(m, "method")) ?: "", "tools/call"))
			json_object_set_new(
			    counts, name,
			    json_integer(json_integer_value(json_object_get(counts, name)) + 1));
	}
	json_decref(root);
}

/*
 * The differential fuzzer's corpus (selftests/fuzz/corpus/fuzz_forward),
 * sent through a real gateway to the recording tool server: every tool
 * the server was asked to run is one an allow decision record names, as
 * many times.
 */
TEST(redteam_mcp_differential)
{
	struct exchange *x = shared_alloc(sizeof(*x));
	struct mcp_env e = { 0 };
	json_t *upstream = json_object(), *audited = json_object();
	char *list = NULL, *rec = NULL, host[64];

	if (!ASSERT_OK(
		env_start(&e, "rtdiff", REPLY_JSON, "{\"name\": \"a\", \"tools\": [\"t/*\"]}"),
		"environment") ||
	    !ASSERT_OK(run_capture(&list, "ls -d %s/selftests/fuzz/corpus/fuzz_forward/*",
				   testlib_src_dir()),
		       "corpus"))
		goto out;
	snprintf(host, sizeof(host), "Host: 127.0.0.1:%u\r\n", e.orig_port);
	for (char *f = strtok(list, "\n"); f; f = strtok(NULL, "\n")) {
		FILE *in = fopen(f, "rb");
		char raw_req[sizeof(x->request)], *h;
		size_t n = in ? fread(raw_req, 1, sizeof(raw_req) - 1, in) : 0;

		if (in)
			fclose(in);
		raw_req[n] = '\0';
		memset(x, 0, sizeof(*x));
		x->port = e.orig_port;
		/* The seeds name host "t": the agent names the address it dialled. */
		if (!(h = strstr(raw_req, "Host: t\r\n")) ||
		    h - raw_req + strlen(host) + strlen(h + 9) >= sizeof(x->request))
			continue;
		/* Fits: checked above. */
		memcpy(x->request, raw_req, h - raw_req);
		strcpy(x->request + (h - raw_req), host);
		strcat(x->request, h + 9);
		run_agent(&e, x);
	}
	for (int i = 0; i < tool_nseen(&e.tool) && i < MAX_SEEN; i++)
		count_calls(e.tool.seen[i].body, upstream);
	ASSERT_OK(run_capture(&rec,
			      "sleep 0.3; grep '\"kind\":\"decision\"' %s/audit.log | "
			      "grep '\"decision\":\"allow\"' | grep -o '\"tool\":\"[^\"]*\"' | "
			      "sort | uniq -c",
			      e.d.state),
		  "decision records");
	for (char *l = strtok(rec, "\n"); l; l = strtok(NULL, "\n")) {
		int count;
		char name[128];

		if (sscanf(l, "%d \"tool\":\"%127[^\"]\"", &count, name) == 2)
			json_object_set_new(audited, name, json_integer(count));
	}
	ASSERT_GT(json_object_size(upstream), 0, "calls reached the tool server");
	ASSERT_TRUE(json_equal(upstream, audited), "what ran upstream is what was decided");
out:
	json_decref(upstream);
	json_decref(audited);
	free(list);
	free(rec);
	env_stop(&e);
}
