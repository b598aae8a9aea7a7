// SPDX-License-Identifier: GPL-2.0
/*
 * Output-rule cost per KB of tool result: every detector on, plus one path
 * rule and one regex, applied to a typical tools/call result (content text
 * that is JSON, records with names, e-mails, ids, prose, one card number) of
 * about 1 KB and 64 KB.  Reported as ns per KB of serialised result, for
 * the JSON path (parse not included) and for streaming the same text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redact.h"

static json_t *make_result(size_t target, size_t *text_len)
{
	json_t *items = json_array(), *doc, *res;
	char *text;

	for (int i = 0; (size_t)i * 140 < target; i++)
		json_array_append_new(
		    items, json_pack("{s:i,s:s,s:s,s:s}", "id", i, "name", "Ada Lovelace", "email",
				     "ada.lovelace@example.org", "note",
				     i == 3 ? "paid with 4111 1111 1111 1111 ok"
					    : "shipped 2026-11-21, tracking 1Z999AA10"));
	doc = json_pack("{s:o}", "items", items);
	text = json_dumps(doc, JSON_COMPACT);
	*text_len = strlen(text);
	res =
	    json_pack("{s:[{s:s,s:s}],s:b}", "content", "type", "text", "text", text, "isError", 0);
	free(text);
	json_decref(doc);
	return res;
}

static double run(const struct ag_redactor *r, size_t target)
{
	struct ag_redact_report rep;
	size_t len, iters = target < 4096 ? 20000 : 400;
	json_t *res = make_result(target, &len), *out;
	uint64_t t0 = ag_now_ns(), t1;

	for (size_t i = 0; i < iters; i++) {
		out = ag_redact_result(r, res, &rep, NULL);
		if (!out)
			exit(1);
		json_decref(out);
	}
	t1 = ag_now_ns();
	json_decref(res);
	return (double)(t1 - t0) / iters / (len / 1024.0);
}

static double run_stream(const struct ag_redactor *r, size_t target)
{
	struct ag_redact_report rep;
	size_t len, olen, iters = target < 4096 ? 20000 : 400;
	json_t *res = make_result(target, &len);
	char *text = json_dumps(res, JSON_COMPACT), *o;
	uint64_t t0 = ag_now_ns(), t1;

	len = strlen(text);
	for (size_t i = 0; i < iters; i++) {
		struct ag_redact_stream *s = ag_redact_stream_new(r, NULL);

		/* SSE-sized pieces of 1400 bytes, as they come off the wire. */
		for (size_t off = 0; off < len; off += 1400) {
			ag_redact_stream_feed(s, text + off, len - off < 1400 ? len - off : 1400,
					      &o, &olen, &rep, NULL);
			free(o);
		}
		ag_redact_stream_finish(s, &o, &olen, &rep, NULL);
		free(o);
		ag_redact_stream_free(s);
	}
	t1 = ag_now_ns();
	free(text);
	json_decref(res);
	return (double)(t1 - t0) / iters / (len / 1024.0);
}

int main(void)
{
	static const struct ag_redact_rule rules[] = {
		{ .name = "pem", .kind = AG_RULE_DETECTOR, .detector = AG_DET_PEM_KEY },
		{ .name = "bearer", .kind = AG_RULE_DETECTOR, .detector = AG_DET_BEARER },
		{ .name = "cloud", .kind = AG_RULE_DETECTOR, .detector = AG_DET_CLOUD_KEY },
		{ .name = "card", .kind = AG_RULE_DETECTOR, .detector = AG_DET_CARD },
		{ .name = "email", .kind = AG_RULE_DETECTOR, .detector = AG_DET_EMAIL },
		{ .name = "ssn", .kind = AG_RULE_PATH, .path = "$.items[*].ssn" },
		{ .name = "ticket", .kind = AG_RULE_REGEX, .regex = "TICKET-[0-9]{6}" },
	};
	struct ag_err err = { 0 };
	struct ag_redactor *r = ag_redactor_new(rules, AG_ARRAY_SIZE(rules), 0, &err);
	struct ag_redactor *det = ag_redactor_all_detectors(0, &err);

	if (!r || !det) {
		fprintf(stderr, "redact_bench: %s\n", err.msg);
		return 1;
	}
	printf("redact detectors      1KB result: %8.0f ns/KB\n", run(det, 1024));
	printf("redact detectors     64KB result: %8.0f ns/KB\n", run(det, 65536));
	printf("redact all+path+regex 1KB result: %8.0f ns/KB\n", run(r, 1024));
	printf("redact all+path+regex 64KB result: %7.0f ns/KB\n", run(r, 65536));
	printf("redact stream all+regex 64KB:     %8.0f ns/KB\n", run_stream(r, 65536));
	ag_redactor_free(r);
	ag_redactor_free(det);
	return 0;
}
