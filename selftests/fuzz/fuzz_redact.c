// SPDX-License-Identifier: GPL-2.0
/*
 * Fuzz output redaction.  Input: one seed byte, then the text.  The text is
 * redacted in one shot and streamed in pieces cut where the seed says; the
 * outputs and hit counts must be equal.  A small max_match_len makes the
 * hold-back boundary easy to reach.  If the text parses as JSON it also
 * goes through the result redactor and the tool hash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "redact.h"
#include "toolhash.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ag_redactor *redactor(void)
{
	static struct ag_redactor *r;
	static const struct ag_redact_rule rules[] = {
		{ .name = "pem", .kind = AG_RULE_DETECTOR, .detector = AG_DET_PEM_KEY },
		{ .name = "bearer", .kind = AG_RULE_DETECTOR, .detector = AG_DET_BEARER },
		{ .name = "cloud", .kind = AG_RULE_DETECTOR, .detector = AG_DET_CLOUD_KEY },
		{ .name = "card", .kind = AG_RULE_DETECTOR, .detector = AG_DET_CARD },
		{ .name = "email", .kind = AG_RULE_DETECTOR, .detector = AG_DET_EMAIL },
		{ .name = "rx", .kind = AG_RULE_REGEX, .regex = "^S|ab+c|x[0-9]{2,}$|q(r|st)+" },
		{ .name = "p", .kind = AG_RULE_PATH, .path = "$.items[*].email" },
		{ .name = "stop",
		  .kind = AG_RULE_REGEX,
		  .regex = "REFUSE",
		  .action = AG_ACT_REFUSE },
	};
	struct ag_err err;

	if (!r)
		r = ag_redactor_new(rules, sizeof(rules) / sizeof(rules[0]), 64, &err);
	if (!r)
		abort();
	return r;
}

static char *streamed(const struct ag_redactor *r, const char *in, size_t len, uint32_t seed,
		      size_t *outlen, unsigned long *hits)
{
	struct ag_redact_stream *s = ag_redact_stream_new(r, NULL);
	struct ag_redact_report rep;
	size_t pos = 0, olen, total = 0;
	char *acc = malloc(1), *o;
	bool done = false;

	*hits = 0;
	if (!s || !acc)
		abort();
	while (!done) {
		size_t n;
		int ret;

		seed = seed * 1103515245u + 12345u;
		n = (seed >> 16) % (seed & 0x100 ? 200 : 8);
		if (n > len - pos)
			n = len - pos;
		done = pos == len;
		ret = done ? ag_redact_stream_finish(s, &o, &olen, &rep, NULL)
			   : ag_redact_stream_feed(s, in + pos, n, &o, &olen, &rep, NULL);
		if (ret)
			abort();
		acc = realloc(acc, total + olen + 1);
		if (!acc)
			abort();
		memcpy(acc + total, o, olen);
		total += olen;
		free(o);
		*hits += rep.total;
		pos += n;
	}
	ag_redact_stream_free(s);
	*outlen = total;
	return acc;
}

static void json_paths(const struct ag_redactor *r, const char *in, size_t len)
{
	char hex[AG_TOOLHASH_HEX_LEN + 1];
	struct ag_redact_report rep;
	json_t *doc = json_loadb(in, len, 0, NULL), *out;

	if (!doc)
		return;
	out = ag_redact_result(r, doc, &rep, NULL);
	if (out && rep.refused_by && !json_is_true(json_object_get(out, "isError")))
		abort();
	json_decref(out);
	ag_tool_hash(doc, hex, NULL);
	json_decref(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct ag_redactor *r = redactor();
	struct ag_redact_report rep;
	unsigned long hits;
	size_t olen, slen;
	char *one, *st;

	if (size < 1 || size > 1 << 16)
		return 0;
	if (ag_redact_text(r, (const char *)data + 1, size - 1, &one, &olen, &rep, NULL))
		abort();
	st = streamed(r, (const char *)data + 1, size - 1, data[0] * 2654435761u, &slen, &hits);
	if (slen != olen || memcmp(st, one, olen) || hits != rep.total)
		abort();
	free(st);
	free(one);
	json_paths(r, (const char *)data + 1, size - 1);
	return 0;
}
