// SPDX-License-Identifier: GPL-2.0
/*
 * JSON-RPC / MCP extraction, the reply builders, the 2026-07-28 header
 * check, and the JSONTestSuite replay of the body parser.
 */
#include <dirent.h>
#include <stdlib.h>

#include "audit.h"
#include "jsonrpc.h"
#include "jsonrpc_scan.h"
#include "test.h"
#include "testlib.h"

static int parse(const char *s, struct ag_jsonrpc_body *b)
{
	struct ag_err err;

	return ag_jsonrpc_parse(s, strlen(s), NULL, b, &err);
}

/* Parses s, which must hold one message, and checks its kind. */
static const struct ag_jsonrpc_msg *one(struct ag_jsonrpc_body *b, const char *s,
					enum ag_jsonrpc_kind kind)
{
	if (!ASSERT_OK(parse(s, b), "parse") || !ASSERT_EQ(b->count, 1, "one message"))
		return NULL;
	if (!ASSERT_STREQ(ag_jsonrpc_kind_name(b->msgs[0].kind), ag_jsonrpc_kind_name(kind),
			  "kind")) {
		fprintf(stderr, "body %s: %s\n", s,
			b->msgs[0].error_msg ? b->msgs[0].error_msg : "");
		return NULL;
	}
	return &b->msgs[0];
}

TEST(jsonrpc_classify)
{
	static const struct {
		const char *name, *body;
		enum ag_jsonrpc_kind kind;
		int code;
	} cases[] = {
		{ "request", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}",
		  AG_JSONRPC_REQUEST, 0 },
		{ "request_string_id",
		  "{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"x\",\"params\":[]}",
		  AG_JSONRPC_REQUEST, 0 },
		{ "notification", "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}",
		  AG_JSONRPC_NOTIFICATION, 0 },
		{ "response", "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}", AG_JSONRPC_RESPONSE,
		  0 },
		{ "error_response",
		  "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"x\"}}",
		  AG_JSONRPC_ERROR_RESPONSE, 0 },
		{ "scalar", "42", AG_JSONRPC_INVALID, AG_JSONRPC_INVALID_REQUEST },
		{ "no_version", "{\"id\":1,\"method\":\"ping\"}", AG_JSONRPC_INVALID,
		  AG_JSONRPC_INVALID_REQUEST },
		{ "version_1", "{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}",
		  AG_JSONRPC_INVALID, AG_JSONRPC_INVALID_REQUEST },
		{ "method_number", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":5}",
		  AG_JSONRPC_INVALID, AG_JSONRPC_INVALID_REQUEST },
		{ "id_fraction", "{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}",
		  AG_JSONRPC_INVALID, AG_JSONRPC_INVALID_REQUEST },
		{ "id_null_request", "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}",
		  AG_JSONRPC_INVALID, AG_JSONRPC_INVALID_REQUEST },
		{ "params_string",
		  "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"params\":\"a\"}",
		  AG_JSONRPC_INVALID, AG_JSONRPC_INVALID_REQUEST },
		{ "method_and_result",
		  "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"result\":{}}",
		  AG_JSONRPC_INVALID, AG_JSONRPC_INVALID_REQUEST },
		{ "result_and_error",
		  "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},\"error\":{\"code\":1,\"message\":"
		  "\"\"}}",
		  AG_JSONRPC_INVALID, AG_JSONRPC_INVALID_REQUEST },
		{ "result_null_id", "{\"jsonrpc\":\"2.0\",\"id\":null,\"result\":1}",
		  AG_JSONRPC_INVALID, AG_JSONRPC_INVALID_REQUEST },
		{ "error_bad_code",
		  "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":\"x\",\"message\":\"m\"}}",
		  AG_JSONRPC_INVALID, AG_JSONRPC_INVALID_REQUEST },
		{ "no_method_no_id", "{\"jsonrpc\":\"2.0\"}", AG_JSONRPC_INVALID,
		  AG_JSONRPC_INVALID_REQUEST },
		{ "empty_batch", "[]", AG_JSONRPC_INVALID, AG_JSONRPC_INVALID_REQUEST },
		{ "call_no_name",
		  "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{}}",
		  AG_JSONRPC_INVALID, AG_JSONRPC_INVALID_PARAMS },
		{ "call_no_params", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\"}",
		  AG_JSONRPC_INVALID, AG_JSONRPC_INVALID_PARAMS },
		{ "call_array_params",
		  "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":[\"x\"]}",
		  AG_JSONRPC_INVALID, AG_JSONRPC_INVALID_PARAMS },
		{ "call_arguments_array",
		  "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":"
		  "{\"name\":\"x\",\"arguments\":[]}}",
		  AG_JSONRPC_INVALID, AG_JSONRPC_INVALID_PARAMS },
		{ "read_uri_number",
		  "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"resources/"
		  "read\",\"params\":{\"uri\":1}}",
		  AG_JSONRPC_INVALID, AG_JSONRPC_INVALID_PARAMS },
		{ "list_cursor_number",
		  "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/"
		  "list\",\"params\":{\"cursor\":1}}",
		  AG_JSONRPC_INVALID, AG_JSONRPC_INVALID_PARAMS },
		{ "initialize_no_version",
		  "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{}}",
		  AG_JSONRPC_INVALID, AG_JSONRPC_INVALID_PARAMS },
	};

	for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
		struct ag_jsonrpc_body b;
		const struct ag_jsonrpc_msg *m;

		if (!test__start_subtest(cases[i].name))
			continue;
		m = one(&b, cases[i].body, cases[i].kind);
		if (m && cases[i].kind == AG_JSONRPC_INVALID) {
			ASSERT_EQ(m->error_code, cases[i].code, "error code");
			ASSERT_OK_PTR(m->error_msg, "error message");
		}
		ag_jsonrpc_body_free(&b);
	}
}

TEST(jsonrpc_mcp_fields)
{
	struct ag_jsonrpc_body b;
	const struct ag_jsonrpc_msg *m;

	if (test__start_subtest("tools_call")) {
		m = one(&b,
			"{\"jsonrpc\":\"2.0\",\"id\":\"r1\",\"method\":\"tools/call\",\"params\":"
			"{\"name\":\"create_expense_report\",\"arguments\":{\"amount\":7000}}}",
			AG_JSONRPC_REQUEST);
		if (m) {
			ASSERT_EQ(m->mcp, AG_MCP_TOOLS_CALL, "mcp");
			ASSERT_STREQ(m->name, "create_expense_report", "name");
			ASSERT_EQ(json_integer_value(json_object_get(m->arguments, "amount")), 7000,
				  "arguments");
			ASSERT_STREQ(json_string_value(m->id), "r1", "id");
		}
		ag_jsonrpc_body_free(&b);
	}
	if (test__start_subtest("tools_call_notification")) {
		m = one(
		    &b,
		    "{\"jsonrpc\":\"2.0\",\"method\":\"tools/call\",\"params\":{\"name\":\"rm\"}}",
		    AG_JSONRPC_NOTIFICATION);
		if (m) {
			ASSERT_STREQ(m->name, "rm", "name still extracted");
			ASSERT_TRUE(m->arguments == NULL, "no arguments");
		}
		ag_jsonrpc_body_free(&b);
	}
	if (test__start_subtest("tools_list")) {
		m = one(&b,
			"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\",\"params\":"
			"{\"cursor\":\"page2\"}}",
			AG_JSONRPC_REQUEST);
		if (m && ASSERT_EQ(m->mcp, AG_MCP_TOOLS_LIST, "mcp"))
			ASSERT_STREQ(m->cursor, "page2", "cursor");
		ag_jsonrpc_body_free(&b);
		m = one(&b, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}",
			AG_JSONRPC_REQUEST);
		if (m)
			ASSERT_TRUE(m->cursor == NULL, "first page");
		ag_jsonrpc_body_free(&b);
	}
	if (test__start_subtest("resources_read")) {
		m = one(&b,
			"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"resources/read\",\"params\":"
			"{\"uri\":\"file:///etc/passwd\"}}",
			AG_JSONRPC_REQUEST);
		if (m && ASSERT_EQ(m->mcp, AG_MCP_RESOURCES_READ, "mcp"))
			ASSERT_STREQ(m->name, "file:///etc/passwd", "uri");
		ag_jsonrpc_body_free(&b);
	}
	if (test__start_subtest("prompts_get")) {
		m = one(&b,
			"{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"prompts/get\",\"params\":"
			"{\"name\":\"review\",\"arguments\":{\"lang\":\"c\"}}}",
			AG_JSONRPC_REQUEST);
		if (m && ASSERT_EQ(m->mcp, AG_MCP_PROMPTS_GET, "mcp")) {
			ASSERT_STREQ(m->name, "review", "name");
			ASSERT_TRUE(json_is_object(m->arguments), "arguments");
		}
		ag_jsonrpc_body_free(&b);
	}
	if (test__start_subtest("initialize")) {
		m = one(&b,
			"{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":"
			"{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{}}}",
			AG_JSONRPC_REQUEST);
		if (m && ASSERT_EQ(m->mcp, AG_MCP_INITIALIZE, "mcp"))
			ASSERT_STREQ(m->protocol_version, "2025-06-18", "version");
		ag_jsonrpc_body_free(&b);
	}
	if (test__start_subtest("other_method")) {
		m = one(&b, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/calls\"}",
			AG_JSONRPC_REQUEST);
		if (m)
			ASSERT_EQ(m->mcp, AG_MCP_OTHER, "not tools/call");
		ag_jsonrpc_body_free(&b);
	}
}

TEST(jsonrpc_batch)
{
	struct ag_jsonrpc_body b;
	struct ag_jsonrpc_limits lim = ag_jsonrpc_default_limits;
	struct ag_err err;
	static const char batch[] =
	    "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\"}},"
	    " 7, {\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\"},"
	    " {\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\",\"params\":{}},"
	    " {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[]}}]";

	if (test__start_subtest("mixed")) {
		if (ASSERT_OK(parse(batch, &b), "parse") && ASSERT_EQ(b.count, 5, "count")) {
			ASSERT_TRUE(b.batch, "batch");
			ASSERT_EQ(b.msgs[0].kind, AG_JSONRPC_REQUEST, "0");
			ASSERT_STREQ(b.msgs[0].name, "a", "0 name");
			ASSERT_EQ(b.msgs[1].kind, AG_JSONRPC_INVALID, "1");
			ASSERT_EQ(b.msgs[2].kind, AG_JSONRPC_NOTIFICATION, "2");
			ASSERT_EQ(b.msgs[3].kind, AG_JSONRPC_INVALID, "3");
			ASSERT_EQ(b.msgs[3].error_code, AG_JSONRPC_INVALID_PARAMS, "3 code");
			/* The error answer can echo the id of an invalid element. */
			ASSERT_EQ(json_integer_value(b.msgs[3].id), 9, "3 id kept");
			ASSERT_EQ(b.msgs[4].kind, AG_JSONRPC_RESPONSE, "4");
		}
		ag_jsonrpc_body_free(&b);
	}
	if (test__start_subtest("single_is_not_batch")) {
		if (ASSERT_OK(parse("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":1}", &b), "parse"))
			ASSERT_FALSE(b.batch, "not a batch");
		ag_jsonrpc_body_free(&b);
	}
	if (test__start_subtest("batch_limit")) {
		lim.max_batch = 4;
		ASSERT_EQ(ag_jsonrpc_parse(batch, strlen(batch), &lim, &b, &err), -E2BIG, "5 > 4");
		ASSERT_TRUE(strstr(err.msg, "batch") != NULL, "message");
		ASSERT_TRUE(b.root == NULL && b.msgs == NULL, "nothing kept");
		lim.max_batch = 5;
		ASSERT_OK(ag_jsonrpc_parse(batch, strlen(batch), &lim, &b, &err), "5 == 5");
		ag_jsonrpc_body_free(&b);
	}
}

TEST(jsonrpc_reject_body)
{
	struct ag_jsonrpc_limits lim = ag_jsonrpc_default_limits;
	struct ag_jsonrpc_body b;
	struct ag_err err;
	char deep[200];

	if (test__start_subtest("duplicate_key"))
		ASSERT_EQ(parse("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
				"\"params\":{\"name\":\"safe\",\"name\":\"rm\"}}",
				&b),
			  -EPROTO, "duplicate name");
	if (test__start_subtest("raw_nul")) {
		static const char nul[] = "{\"a\":\"x\0\"}";

		ASSERT_EQ(ag_jsonrpc_parse(nul, sizeof(nul) - 1, NULL, &b, &err), -EPROTO, "NUL");
		ASSERT_TRUE(strstr(err.msg, "NUL") != NULL, "message");
	}
	if (test__start_subtest("escaped_nul"))
		ASSERT_EQ(parse("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
				"\"params\":{\"name\":\"safe\\u0000rm\"}}",
				&b),
			  -EPROTO, "\\u0000");
	if (test__start_subtest("invalid_utf8"))
		ASSERT_EQ(parse("[\"\xc3\x28\"]", &b), -EPROTO, "bad UTF-8");
	if (test__start_subtest("trailing_garbage"))
		ASSERT_EQ(parse("{} {}", &b), -EPROTO, "two documents");
	if (test__start_subtest("empty"))
		ASSERT_EQ(parse("", &b), -EPROTO, "empty body");
	if (test__start_subtest("size")) {
		lim.max_body = 4;
		ASSERT_EQ(ag_jsonrpc_parse("[1,2]", 5, &lim, &b, &err), -E2BIG, "5 > 4");
	}
	if (test__start_subtest("depth")) {
		lim = ag_jsonrpc_default_limits;
		lim.max_depth = 3;
		ASSERT_OK(ag_jsonrpc_parse("[[[\"[[[[\"]]]", 12, &lim, &b, &err),
			  "brackets in strings do not count");
		ag_jsonrpc_body_free(&b);
		ASSERT_EQ(ag_jsonrpc_parse("[[[[]]]]", 8, &lim, &b, &err), -E2BIG, "4 > 3");
		memset(deep, '[', 65);
		memset(deep + 65, ']', 65);
		ASSERT_EQ(ag_jsonrpc_parse(deep, 130, NULL, &b, &err), -E2BIG, "default 64");
		ASSERT_OK(ag_jsonrpc_parse(deep + 1, 128, NULL, &b, &err), "64 is fine");
		ag_jsonrpc_body_free(&b);
	}
}

TEST(jsonrpc_builders)
{
	json_t *id = json_integer(3), *data = json_pack("{s:s}", "rule", "r1"), *r;
	char *s;

	if (test__start_subtest("error")) {
		r = ag_jsonrpc_error(id, AG_JSONRPC_INVALID_PARAMS, "Unknown tool: rm", data);
		s = json_dumps(r, JSON_SORT_KEYS | JSON_COMPACT);
		ASSERT_STREQ(s,
			     "{\"error\":{\"code\":-32602,\"data\":{\"rule\":\"r1\"},"
			     "\"message\":\"Unknown tool: rm\"},\"id\":3,\"jsonrpc\":\"2.0\"}",
			     "error");
		free(s);
		json_decref(r);
		r = ag_jsonrpc_error(NULL, AG_JSONRPC_PARSE_ERROR, "Parse error", NULL);
		s = json_dumps(r, JSON_SORT_KEYS | JSON_COMPACT);
		ASSERT_STREQ(s,
			     "{\"error\":{\"code\":-32700,\"message\":\"Parse error\"},"
			     "\"id\":null,\"jsonrpc\":\"2.0\"}",
			     "null id");
		free(s);
		json_decref(r);
	}
	if (test__start_subtest("tool_denied")) {
		r = ag_mcp_tool_denied(id, "amount over 5000", data, false);
		s = json_dumps(r, JSON_SORT_KEYS | JSON_COMPACT);
		ASSERT_STREQ(s,
			     "{\"id\":3,\"jsonrpc\":\"2.0\",\"result\":{\"_meta\":"
			     "{\"agentgate/decision\":{\"decision\":\"deny\",\"reason\":"
			     "\"amount over 5000\",\"rule\":\"r1\"}},\"content\":[{\"text\":"
			     "\"Denied by policy: amount over 5000\",\"type\":\"text\"}],"
			     "\"isError\":true}}",
			     "denied");
		free(s);
		json_decref(r);
		r = ag_mcp_tool_denied(id, "x", NULL, true);
		ASSERT_STREQ(
		    json_string_value(json_object_get(json_object_get(r, "result"), "resultType")),
		    "complete", "2026-07-28 resultType");
		json_decref(r);
		/* The borrowed meta is not modified. */
		ASSERT_EQ(json_object_size(data), 1, "meta untouched");
	}
	json_decref(id);
	json_decref(data);
}

static int check(struct ag_err *err, const struct ag_jsonrpc_body *b, const char *m, const char *n,
		 bool required)
{
	return ag_mcp_check_headers(b, m, m ? strlen(m) : 0, n, n ? strlen(n) : 0, required, err);
}

TEST(jsonrpc_mcp_headers)
{
	static const char call[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
				   "\"params\":{\"name\":\"get_weather\"}}";
	static const char list[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}";
	struct ag_jsonrpc_body b, l, batch;
	struct ag_err err;

	if (!ASSERT_OK(parse(call, &b), "call") || !ASSERT_OK(parse(list, &l), "list") ||
	    !ASSERT_OK(parse("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}]", &batch),
		       "batch"))
		return;
	if (test__start_subtest("match")) {
		ASSERT_OK(check(&err, &b, "tools/call", "get_weather", true), "both match");
		ASSERT_OK(check(&err, &l, "tools/list", NULL, true), "no name needed");
		ASSERT_OK(check(&err, &b, NULL, NULL, false), "legacy request without headers");
	}
	if (test__start_subtest("mismatch")) {
		ASSERT_EQ(check(&err, &b, "tools/list", "get_weather", true), -EPROTO, "method");
		ASSERT_TRUE(strstr(err.msg, "Mcp-Method") != NULL, "names the header");
		ASSERT_EQ(check(&err, &b, "tools/call", "delete_all", true), -EPROTO, "name");
		ASSERT_TRUE(strstr(err.msg, "Mcp-Name") != NULL, "names the header");
		ASSERT_EQ(check(&err, &b, "TOOLS/CALL", "get_weather", false), -EPROTO,
			  "case matters");
		ASSERT_EQ(check(&err, &b, "tools/call", "get_weather ", false), -EPROTO, "exact");
		ASSERT_EQ(check(&err, &l, "tools/list", "x", false), -EPROTO, "orphan Mcp-Name");
		ASSERT_EQ(check(&err, &b, NULL, "get_weather", false), -EPROTO,
			  "name without method");
	}
	if (test__start_subtest("missing")) {
		ASSERT_EQ(check(&err, &b, NULL, NULL, true), -EPROTO, "Mcp-Method required");
		ASSERT_EQ(check(&err, &b, "tools/call", NULL, true), -EPROTO, "Mcp-Name required");
		ASSERT_OK(check(&err, &b, "tools/call", NULL, false), "optional before 2026-07-28");
	}
	if (test__start_subtest("batch")) {
		ASSERT_EQ(check(&err, &batch, "tools/list", NULL, false), -EPROTO,
			  "batch with headers");
		ASSERT_OK(check(&err, &batch, NULL, NULL, false), "legacy batch");
	}
	ag_jsonrpc_body_free(&b);
	ag_jsonrpc_body_free(&l);
	ag_jsonrpc_body_free(&batch);
}

/*
 * y_ files the body parser rejects on purpose, each with its reason.
 * Every other y_ file must parse; every n_ file must be rejected.
 */
static const struct {
	const char *file, *why;
} y_exceptions[] = {
	{ "y_object_duplicated_key.json", "duplicate keys: JSON_REJECT_DUPLICATES" },
	{ "y_object_duplicated_key_and_value.json", "duplicate keys: JSON_REJECT_DUPLICATES" },
	{ "y_object_escaped_null_in_key.json", "\\u0000 in a key: embedded NUL is refused" },
	{ "y_string_null_escape.json", "\\u0000 in a string: embedded NUL is refused" },
};

static const char *y_exception(const char *name)
{
	for (size_t i = 0; i < AG_ARRAY_SIZE(y_exceptions); i++)
		if (!strcmp(name, y_exceptions[i].file))
			return y_exceptions[i].why;
	return NULL;
}

static bool compact_as_jansson(const json_t *v)
{
	char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	struct ag_audit_text got = { 0 };
	bool same = want && !ag_json_compact(v, SIZE_MAX / 2, &got) && got.len == strlen(want) &&
		    !memcmp(got.text, want, got.len);

	free(got.text);
	free(want);
	return same;
}

TEST(jsonrpc_json_test_suite)
{
	char dir[PATH_MAX], path[PATH_MAX + 256];
	struct dirent **names;
	int n, checked[3] = { 0 }, failed = 0;

	snprintf(dir, sizeof(dir), "%s/../shared/corpora/json-test-suite/test_parsing",
		 testlib_src_dir());
	n = scandir(dir, &names, NULL, alphasort);
	if (n < 0) {
		test__skip("JSONTestSuite not found at %s", dir);
		return;
	}
	for (int i = 0; i < n; i++) {
		const char *name = names[i]->d_name, *why;
		struct ag_jsonrpc_body b;
		struct ag_err err;
		char *data = NULL;
		size_t len;
		int ret;

		if ((name[0] != 'y' && name[0] != 'n' && name[0] != 'i') || name[1] != '_')
			goto next;
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		if (!ASSERT_OK(ag_read_file(path, 1u << 24, &data, &len, &err), name))
			goto next;
		ret = ag_jsonrpc_parse(data, len, NULL, &b, &err);
		/* What the gateway would forward is json_dumps' reading of it. */
		if (!ret && !compact_as_jansson(b.root)) {
			AG_FAILED("%s: ag_json_compact differs from json_dumps", name);
			failed++;
		}
		ag_jsonrpc_body_free(&b);
		why = y_exception(name);
		if (name[0] == 'y' && !why && ret) {
			AG_FAILED("%s: valid JSON rejected: %s", name, err.msg);
			failed++;
		} else if (name[0] == 'y' && why && !ret) {
			AG_FAILED("%s: listed exception (%s) but accepted", name, why);
			failed++;
		} else if (name[0] == 'n' && !ret) {
			AG_FAILED("%s: invalid JSON accepted", name);
			failed++;
		}
		checked[name[0] == 'y' ? 0 : name[0] == 'n' ? 1 : 2]++;
	next:
		free(data);
		free(names[i]);
	}
	free(names);
	if (test__verbose() || failed)
		fprintf(stderr, "JSONTestSuite: %d y_, %d n_, %d i_ files, %d failures\n",
			checked[0], checked[1], checked[2], failed);
	ASSERT_GT(checked[0], 0, "y_ files found");
	ASSERT_GT(checked[1], 0, "n_ files found");
}

/* The response envelope scanner (jsonrpc_scan.h): what it reads, what it leaves to jansson. */
TEST(jsonrpc_scan)
{
	static const char *const refused[] = {
		"{\"id\":1,\"result\":{\"a\":1,\"a\":2}}", /* a duplicate key, deep */
		"{\"id\":1,\"id\":1}",
		"{\"id\":1,\"result\":{\"t\":\"\xc3\x28\"}}",	  /* invalid UTF-8 */
		"{\"id\":1,\"result\":{\"t\":\"\xed\xa0\x80\"}}", /* an encoded surrogate */
		"{\"id\":1,\"result\":{\"t\":\"\\u0000\"}}",
		"{\"id\":1,\"result\":{\"t\":\"\\ud800x\"}}",
		"{\"id\":1,\"result\":{}} {\"id\":2}", /* a second value */
		"{\"id\":1,\"result\":{}}x",
		"{\"id\":1,\"result\":{\"n\":1e400}}",
		"{\"id\":1,\"result\":{\"n\":01}}",
		"{\"id\":99999999999999999999}",
		"{\"id\":\"\\u0061\"}", /* an escaped id: jansson's to read */
		"{\"\\u0069d\":1,\"id\":2}",
		"\"a string\"",
		"[1,]",
		"",
	};
	const char *ok =
	    "[{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"content\":[{\"type\":\"text\","
	    "\"text\":\"a \\\"b\\\"\\n\\u00e9\\ud83d\\ude00 \xc3\xa9\"}],\"isError\":true}},"
	    "{\"id\":\"x\",\"result\":{\"tools\":[],\"n\":-1.5e-3}},"
	    "{\"method\":\"notifications/progress\",\"id\":1},"
	    "{\"id\":null,\"error\":{\"code\":-32601}}, 5]";
	char dir[PATH_MAX], path[PATH_MAX + 256];
	struct dirent **names;
	struct ag_scan s;
	int n, accepted = 0;

	for (size_t i = 0; i < AG_ARRAY_SIZE(refused); i++)
		ASSERT_EQ(ag_jsonrpc_scan(refused[i], strlen(refused[i]), &s), -EINVAL, refused[i]);
	if (!ASSERT_OK(ag_jsonrpc_scan(ok, strlen(ok), &s), "a batch") ||
	    !ASSERT_EQ(s.nr, 5, "five messages"))
		return;
	ASSERT_TRUE(s.batch, "a batch");
	ASSERT_EQ(s.msg[0].kind, AG_SCAN_REPLY, "a reply");
	ASSERT_EQ(s.msg[0].id_type, AG_SCAN_ID_INT, "an integer id");
	ASSERT_EQ(s.msg[0].id_int, 7, "its value");
	ASSERT_TRUE(s.msg[0].result_object && s.msg[0].result_is_error, "isError");
	ASSERT_FALSE(s.msg[0].result_tools || s.msg[0].has_error, "no tools, no error");
	ASSERT_EQ(s.msg[1].id_type, AG_SCAN_ID_STRING, "a string id");
	ASSERT_TRUE(s.msg[1].id_len == 1 && s.msg[1].id_str[0] == 'x', "its bytes");
	ASSERT_TRUE(s.msg[1].result_tools && !s.msg[1].result_is_error, "a tools array");
	ASSERT_EQ(s.msg[2].kind, AG_SCAN_METHOD, "a notification");
	ASSERT_EQ(s.msg[3].id_type, AG_SCAN_ID_OTHER, "a null id");
	ASSERT_TRUE(s.msg[3].has_error && !s.msg[3].has_result, "an error");
	ASSERT_EQ(s.msg[4].kind, AG_SCAN_OTHER, "not an object");

	/* JSONTestSuite: nothing the scanner accepts is refused by jansson. */
	snprintf(dir, sizeof(dir), "%s/../shared/corpora/json-test-suite/test_parsing",
		 testlib_src_dir());
	n = scandir(dir, &names, NULL, alphasort);
	for (int i = 0; i < n; i++) {
		struct ag_err err;
		char *data = NULL;
		size_t len;
		json_t *root;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		if (names[i]->d_name[0] != '.' &&
		    !ag_read_file(path, 1u << 24, &data, &len, &err) &&
		    !ag_jsonrpc_scan(data, len, &s)) {
			accepted++;
			root = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
			ASSERT_OK_PTR(root, names[i]->d_name);
			json_decref(root);
		}
		free(data);
		free(names[i]);
	}
	if (n >= 0) {
		free(names);
		ASSERT_GT(accepted, 50, "JSONTestSuite files the scanner reads");
	}
}
