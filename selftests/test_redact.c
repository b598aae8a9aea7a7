// SPDX-License-Identifier: GPL-2.0
/* Tool-definition hashing and output redaction (one-shot and streaming). */
#include <stdlib.h>

#include "redact.h"
#include "test.h"
#include "toolhash.h"

static void hash_of(const char *json, char hex[AG_TOOLHASH_HEX_LEN + 1])
{
	struct ag_err err = { 0 };
	json_t *t = json_loads(json, 0, NULL);

	hex[0] = '\0';
	if (!ASSERT_OK_PTR(t, "parse tool"))
		return;
	ASSERT_OK(ag_tool_hash(t, hex, &err), err.msg);
	json_decref(t);
}

static const char tool_a[] =
    "{\"name\":\"get_weather\",\"description\":\"Get the weather for a city\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\","
    "\"maxLength\":64},\"units\":{\"enum\":[\"c\",\"f\"]}},\"required\":[\"city\",\"units\"]},"
    "\"annotations\":{\"readOnlyHint\":true},\"_meta\":{\"v\":1}}";

TEST(redact_toolhash)
{
	char h1[AG_TOOLHASH_HEX_LEN + 1], h2[AG_TOOLHASH_HEX_LEN + 1];
	struct ag_err err = { 0 };

	hash_of(tool_a, h1);
	ASSERT_EQ(strlen(h1), 64, "hex length");
	if (test__start_subtest("reorder_and_whitespace")) {
		hash_of(
		    "{ \"_meta\" : {\"v\": 2},\n \"annotations\": {\"readOnlyHint\": true},\n"
		    "\"inputSchema\": {\"required\": [\"city\", \"units\"], \"properties\": {"
		    "\"units\": {\"enum\": [\"c\", \"f\"]}, \"city\": {\"maxLength\": 64, "
		    "\"type\": \"string\"}}, \"type\": \"object\"},\n"
		    "\"description\": \"Get the weather for a city\", \"name\": \"get_weather\"}",
		    h2);
		ASSERT_STREQ(h2, h1, "key order, whitespace and _meta are neutral");
	}
	if (test__start_subtest("description_word")) {
		char *t = strdup(tool_a);

		memcpy(strstr(t, "city\","), "town", 4);
		hash_of(t, h2);
		ASSERT_TRUE(strcmp(h1, h2) != 0, "changed description changes hash");
		free(t);
	}
	if (test__start_subtest("array_order_matters")) {
		char *t = strdup(tool_a);

		memcpy(strstr(t, "[\"city\",\"units\"]"), "[\"units\",\"city\"]", 16);
		hash_of(t, h2);
		ASSERT_TRUE(strcmp(h1, h2) != 0, "reordered required is a change");
		free(t);
	}
	if (test__start_subtest("canonical_text")) {
		json_t *t = json_loads("{\"name\":\"x\",\"inputSchema\":{\"b\":1.0,\"a\":[0.5,1e30,"
				       "-3],\"\\u00e9\":\"\\u0001\\n\\\"/\",\"\\ud83d\\ude00\":1,"
				       "\"\\uffff\":2}}",
				       0, NULL);
		char *c = NULL;
		size_t len;

		if (ASSERT_OK_PTR(t, "parse") &&
		    ASSERT_OK(ag_tool_canonical(t, &c, &len, &err), err.msg))
			ASSERT_STREQ(c,
				     "{\"inputSchema\":{\"a\":[0.5,1e+30,-3],\"b\":1,"
				     "\"\xc3\xa9\":\"\\u0001\\n\\\"/\",\"\xf0\x9f\x98\x80\":1,"
				     "\"\xef\xbf\xbf\":2},\"name\":\"x\"}",
				     "JCS form, UTF-16 key order (surrogates before U+FFFF)");
		free(c);
		json_decref(t);
	}
	if (test__start_subtest("too_deep")) {
		char buf[512] = "{\"name\":\"x\",\"inputSchema\":";
		json_t *t;

		for (int i = 0; i < 70; i++)
			strcat(buf, "[");
		for (int i = 0; i < 70; i++)
			strcat(buf, "]");
		strcat(buf, "}");
		t = json_loads(buf, 0, NULL);
		ASSERT_EQ(ag_tool_hash(t, h2, &err), -E2BIG, "depth bound");
		json_decref(t);
	}
}

/* One-shot redaction with every detector; returns malloc'd output. */
static char *redact_all(const char *in, unsigned long *hits)
{
	struct ag_redact_report rep;
	struct ag_err err = { 0 };
	struct ag_redactor *r = ag_redactor_all_detectors(0, &err);
	char *out = NULL;
	size_t len;

	if (!ASSERT_OK_PTR(r, err.msg))
		return NULL;
	ASSERT_OK(ag_redact_text(r, in, strlen(in), &out, &len, &rep, &err), err.msg);
	*hits = rep.total;
	ag_redactor_free(r);
	return out;
}

static void expect(const char *in, const char *want, const char *name)
{
	unsigned long hits = 0;
	char *out = redact_all(in, &hits);

	ASSERT_STREQ(out, want, name);
	free(out);
}

#define PEM_KEY                                                                          \
	"-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tP\n" \
	"f9Cnzj4p4WGeKLs1Pt8Qu\n-----END RSA PRIVATE KEY-----"
/* The same key as a JSON string body. */
#define PEM_KEY_JSON                                                                       \
	"-----BEGIN RSA PRIVATE KEY-----\\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tP\\n" \
	"f9Cnzj4p4WGeKLs1Pt8Qu\\n-----END RSA PRIVATE KEY-----"
#define JWT "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlX3Rlc3Q"
#define CARD "4111 1111 1111 1111"

TEST(redact_detectors)
{
	if (test__start_subtest("pem")) {
		expect("key: " PEM_KEY " end", "key: [REDACTED:pem_private_key] end", "pem");
		expect("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
		       "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
		       "public key untouched");
	}
	if (test__start_subtest("bearer_jwt")) {
		expect("Authorization: Bearer abcdefgh12345678.x",
		       "Authorization: [REDACTED:bearer_token]", "bearer");
		expect("token=" JWT ";", "token=[REDACTED:bearer_token];", "jwt");
		expect("Bearer short", "Bearer short", "short bearer untouched");
		expect("eyJhbGciOiJIUzI1NiJ9 alone", "eyJhbGciOiJIUzI1NiJ9 alone", "not a jwt");
	}
	if (test__start_subtest("cloud_keys")) {
		expect("id AKIAIOSFODNN7EXAMPLE.", "id [REDACTED:cloud_access_key].", "aws");
		expect("id AKIAIOSFODNN7EXAMPL.", "id AKIAIOSFODNN7EXAMPL.",
		       "aws 15 chars untouched");
		expect("id ASIAIOSFODNN7EXAMPLE", "id [REDACTED:cloud_access_key]",
		       "aws session key");
		expect("id AKIAIOSFODNN7EXAMPLEX", "id AKIAIOSFODNN7EXAMPLEX",
		       "aws 17 chars untouched");
		expect("ghp_0123456789abcdefghijABCDEFGHIJ012345 x",
		       "[REDACTED:cloud_access_key] x", "github");
		expect("github_pat_11ABCDEFG0123456789_abcdefghij", "[REDACTED:cloud_access_key]",
		       "github pat");
		expect("xoxb-1234567890-abcdef", "[REDACTED:cloud_access_key]", "slack");
		expect("AIzaSyA-0123456789abcdefghijklmnopqrstu", "[REDACTED:cloud_access_key]",
		       "google");
		expect("xoxq-1234567890-abcdef", "xoxq-1234567890-abcdef", "not slack");
	}
	if (test__start_subtest("cards")) {
		expect("card " CARD ".", "card [REDACTED:credit_card].", "spaced visa");
		expect("card 5500-0000-0000-0004", "card [REDACTED:credit_card]", "dashed mc");
		expect("card 4111111111111112", "card 4111111111111112", "luhn failure untouched");
		expect("id 41111111111111110", "id 41111111111111110", "17 digits, luhn fails");
		expect("4111  1111 1111 1111", "4111  1111 1111 1111", "double space splits");
	}
	if (test__start_subtest("email")) {
		expect("mail bob.smith+x@mail.example.com, thanks", "mail [REDACTED:email], thanks",
		       "email");
		expect("user@localhost here", "user@localhost here", "no TLD untouched");
		expect("a@b.c1", "a@b.c1", "numeric TLD untouched");
	}
}

static struct ag_redactor *rules_new(const struct ag_redact_rule *rules, size_t n)
{
	struct ag_err err = { 0 };
	struct ag_redactor *r = ag_redactor_new(rules, n, 0, &err);

	ASSERT_OK_PTR(r, err.msg);
	return r;
}

static char *redact_json(struct ag_redactor *r, const char *in, struct ag_redact_report *rep)
{
	struct ag_err err = { 0 };
	json_t *res = json_loads(in, 0, NULL), *out;
	char *s = NULL;

	if (!ASSERT_OK_PTR(res, "parse result"))
		return NULL;
	out = ag_redact_result(r, res, rep, &err);
	if (ASSERT_OK_PTR(out, err.msg))
		s = json_dumps(out, JSON_COMPACT);
	json_decref(out);
	json_decref(res);
	return s;
}

#define CANARY "CANARY-7f3a9c"

TEST(redact_result)
{
	const struct ag_redact_rule rules[] = {
		{ .name = "ssn", .kind = AG_RULE_PATH, .path = "$.structuredContent.user.ssn" },
		{ .name = "item_email", .kind = AG_RULE_PATH, .path = "$.items[*].email" },
		{ .name = "first", .kind = AG_RULE_PATH, .path = "$.list[0]" },
		{ .name = "card", .kind = AG_RULE_DETECTOR, .detector = AG_DET_CARD },
		{ .name = "ticket", .kind = AG_RULE_REGEX, .regex = "TICKET-[0-9]{4,8}" },
	};
	struct ag_redactor *r = rules_new(rules, AG_ARRAY_SIZE(rules));
	struct ag_redact_report rep;
	char *s;

	if (!r)
		return;
	if (test__start_subtest("paths")) {
		s = redact_json(r,
				"{\"structuredContent\":{\"user\":{\"ssn\":\"" CANARY
				"\",\"n\":1}},"
				"\"items\":[{\"email\":\"a\"},{\"email\":{\"x\":1}},{\"no\":2}],"
				"\"list\":[\"" CANARY "\",\"b\"]}",
				&rep);
		ASSERT_STREQ(
		    s,
		    "{\"structuredContent\":{\"user\":{\"ssn\":\"[REDACTED:ssn]\",\"n\":1}},"
		    "\"items\":[{\"email\":\"[REDACTED:item_email]\"},{\"email\":"
		    "\"[REDACTED:item_email]\"},{\"no\":2}],\"list\":[\"[REDACTED:first]\","
		    "\"b\"]}",
		    "field paths");
		ASSERT_EQ(rep.total, 4, "hits");
		ASSERT_STREQ(rep.hits[0].path, "$.structuredContent.user.ssn", "hit path");
		ASSERT_STREQ(rep.hits[2].path, "$.items[1].email", "wildcard path");
		free(s);
	}
	if (test__start_subtest("json_in_text")) {
		s = redact_json(r,
				"{\"content\":[{\"type\":\"text\",\"text\":\"{\\\"items\\\":"
				"[{\\\"email\\\":\\\"x@y.org\\\"}],\\\"c\\\":\\\"" CARD "\\\"}\"},"
				"{\"type\":\"text\",\"text\":\"pay " CARD " TICKET-12345\"}]}",
				&rep);
		ASSERT_STREQ(s,
			     "{\"content\":[{\"type\":\"text\",\"text\":\"{\\\"items\\\":"
			     "[{\\\"email\\\":\\\"[REDACTED:item_email]\\\"}],\\\"c\\\":"
			     "\\\"[REDACTED:card]\\\"}\"},{\"type\":\"text\",\"text\":"
			     "\"pay [REDACTED:card] [REDACTED:ticket]\"}]}",
			     "JSON inside text");
		ASSERT_STREQ(rep.hits[0].path, "$.content[0].text#$.items[0].email", "text path");
		ASSERT_STREQ(rep.hits[3].path, "$.content[1].text", "plain text path");
		ASSERT_EQ(rep.hits[3].offset, 24, "regex offset");
		free(s);
	}
	if (test__start_subtest("regex_negative")) {
		s = redact_json(r, "{\"a\":\"TICKET-123 TICKET-\"}", &rep);
		ASSERT_STREQ(s, "{\"a\":\"TICKET-123 TICKET-\"}", "regex needs 4 digits");
		ASSERT_EQ(rep.total, 0, "no hits");
		free(s);
	}
	if (test__start_subtest("too_deep")) {
		char buf[400] = "{\"a\":";
		struct ag_err err = { 0 };
		json_t *res;

		for (int i = 0; i < 80; i++)
			strcat(buf, "[");
		for (int i = 0; i < 80; i++)
			strcat(buf, "]");
		strcat(buf, "}");
		res = json_loads(buf, 0, NULL);
		ASSERT_TRUE(ag_redact_result(r, res, &rep, &err) == NULL, "fails closed");
		ASSERT_EQ(err.code, E2BIG, "E2BIG");
		json_decref(res);
	}
	ag_redactor_free(r);
}

TEST(redact_refuse_audit)
{
	const struct ag_redact_rule rules[] = {
		{ .name = "mail", .kind = AG_RULE_DETECTOR, .detector = AG_DET_EMAIL },
		{ .name = "no_keys",
		  .kind = AG_RULE_DETECTOR,
		  .detector = AG_DET_PEM_KEY,
		  .action = AG_ACT_REFUSE },
		{ .name = "canary", .kind = AG_RULE_REGEX, .regex = "CANARY-[0-9a-f]+" },
	};
	struct ag_redactor *r = rules_new(rules, AG_ARRAY_SIZE(rules));
	struct ag_redact_report rep;
	char *s;

	if (!r)
		return;
	if (test__start_subtest("refuse")) {
		s = redact_json(
		    r, "{\"content\":[{\"type\":\"text\",\"text\":\"" PEM_KEY_JSON "\"}]}", &rep);
		ASSERT_STREQ(s,
			     "{\"content\":[{\"type\":\"text\",\"text\":\"Refused by output rule "
			     "no_keys\"}],\"isError\":true}",
			     "refusal");
		ASSERT_STREQ(rep.refused_by, "no_keys", "refused_by");
		free(s);
	}
	if (test__start_subtest("report_has_no_secret")) {
		s = redact_json(r, "{\"a\":\"" CANARY " to " CANARY "@corp.example\"}", &rep);
		ASSERT_STREQ(s, "{\"a\":\"[REDACTED:canary] to [REDACTED:mail]\"}", "masked");
		ASSERT_EQ(rep.total, 2, "two hits");
		ASSERT_STREQ(rep.hits[0].rule, "canary", "rule name");
		ASSERT_STREQ(rep.hits[1].rule, "mail", "rule name");
		ASSERT_TRUE(memmem(&rep, sizeof(rep), "CANARY", 6) == NULL, "no secret in report");
		ASSERT_TRUE(strstr(s, "7f3a9c") == NULL, "no secret in output");
		free(s);
	}
	if (test__start_subtest("bad_rules")) {
		const struct ag_redact_rule bad[] = {
			{ .name = "x", .kind = AG_RULE_REGEX, .regex = "a(" },
			{ .name = "x", .kind = AG_RULE_REGEX, .regex = "a*" },
			{ .name = "x", .kind = AG_RULE_PATH, .path = "items" },
			{ .name = "x y", .kind = AG_RULE_DETECTOR, .detector = AG_DET_CARD },
		};
		struct ag_err err = { 0 };

		for (size_t i = 0; i < AG_ARRAY_SIZE(bad); i++)
			ASSERT_TRUE(ag_redactor_new(&bad[i], 1, 0, &err) == NULL, "rejected");
	}
	ag_redactor_free(r);
}

struct acc {
	char *p;
	size_t len;
	unsigned long hits;
};

static void acc_add(struct acc *a, char *o, size_t olen, const struct ag_redact_report *rep)
{
	char *p = realloc(a->p, a->len + olen + 1);

	if (ASSERT_OK_PTR(p, "realloc")) {
		memcpy(p + a->len, o, olen);
		a->p = p;
		a->len += olen;
		a->p[a->len] = '\0';
	}
	a->hits += rep->total;
	free(o);
}

/* Streams in in pieces ending at cuts[], then the rest; returns the output. */
static char *stream_pieces(const struct ag_redactor *r, const char *in, size_t len,
			   const size_t *cuts, size_t ncuts, unsigned long *hits)
{
	struct ag_redact_report rep;
	struct ag_err err = { 0 };
	struct ag_redact_stream *s = ag_redact_stream_new(r, &err);
	struct acc a = { 0 };
	size_t prev = 0, olen;
	char *o;

	for (size_t i = 0; s && i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : len;

		if (!ASSERT_OK(
			ag_redact_stream_feed(s, in + prev, end - prev, &o, &olen, &rep, &err),
			err.msg))
			goto out;
		acc_add(&a, o, olen, &rep);
		prev = end;
	}
	if (s && ASSERT_OK(ag_redact_stream_finish(s, &o, &olen, &rep, &err), err.msg))
		acc_add(&a, o, olen, &rep);
out:
	ag_redact_stream_free(s);
	*hits = a.hits;
	return a.p;
}

static void split_everywhere(const struct ag_redactor *r, const char *in, const char *name)
{
	size_t len = strlen(in), olen;
	struct ag_redact_report rep;
	struct ag_err err = { 0 };
	unsigned long hits;
	char *one, *st;

	if (!ASSERT_OK(ag_redact_text(r, in, len, &one, &olen, &rep, &err), err.msg))
		return;
	ASSERT_GT(rep.total, 0, name);
	for (size_t cut = 0; cut <= len; cut++) {
		st = stream_pieces(r, in, len, &cut, 1, &hits);
		if (!ASSERT_STREQ(st, one, name) || !ASSERT_EQ(hits, rep.total, name)) {
			fprintf(stderr, "  split at %zu\n", cut);
			free(st);
			break;
		}
		free(st);
	}
	free(one);
}

TEST(redact_stream)
{
	struct ag_err err = { 0 };
	struct ag_redactor *r = ag_redactor_all_detectors(AG_REDACT_MIN_MATCH_LEN * 2, &err);
	const struct ag_redact_rule rx[] = {
		{ .name = "ticket",
		  .kind = AG_RULE_REGEX,
		  .regex = "^Tx|TICKET-[0-9]{4}[0-9]*$|TICKET-1234" },
	};
	struct ag_redactor *rr = rules_new(rx, 1);

	if (!ASSERT_OK_PTR(r, err.msg) || !rr)
		goto out;
	if (test__start_subtest("split_token"))
		split_everywhere(r,
				 "data: {\"auth\":\"Bearer abcdefgh12345678\",\"k\":\"" JWT "\"}",
				 "bearer split");
	if (test__start_subtest("split_card"))
		split_everywhere(r, "card " CARD " and 5500-0000-0000-0004 ok", "card split");
	if (test__start_subtest("split_mixed"))
		split_everywhere(r, "x AKIAIOSFODNN7EXAMPLE a@b.example.org " PEM_KEY " end",
				 "mixed split");
	if (test__start_subtest("split_regex"))
		split_everywhere(rr, "Tx TICKET-1234 TICKET-99999", "regex split");
	if (test__start_subtest("bounded_holdback")) {
		char big[4096], *o;
		struct ag_redact_report rep;
		struct ag_redact_stream *s = ag_redact_stream_new(r, &err);
		size_t olen;

		memset(big, 'z', sizeof(big));
		if (ASSERT_OK_PTR(s, err.msg) &&
		    ASSERT_OK(ag_redact_stream_feed(s, big, sizeof(big), &o, &olen, &rep, &err),
			      err.msg)) {
			ASSERT_GE(olen, sizeof(big) - 2 * AG_REDACT_MIN_MATCH_LEN, "held back");
			free(o);
		}
		ag_redact_stream_free(s);
	}
	if (test__start_subtest("one_byte_chunks")) {
		static const char in[] =
		    "pre " CARD " mid ghp_0123456789abcdefghijABCDEFGHIJ012345 "
		    "and " PEM_KEY " post";
		size_t cuts[sizeof(in)], olen;
		struct ag_redact_report rep;
		unsigned long hits;
		char *one, *st;

		for (size_t i = 0; i < sizeof(in) - 1; i++)
			cuts[i] = i;
		if (ASSERT_OK(ag_redact_text(r, in, sizeof(in) - 1, &one, &olen, &rep, &err),
			      err.msg)) {
			st = stream_pieces(r, in, sizeof(in) - 1, cuts, sizeof(in) - 1, &hits);
			ASSERT_STREQ(st, one, "byte by byte");
			ASSERT_EQ(hits, 3, "three secrets");
			free(st);
			free(one);
		}
	}
out:
	ag_redactor_free(r);
	ag_redactor_free(rr);
}
