// SPDX-License-Identifier: GPL-2.0
/*
 * The SSE parser, against the WHATWG interpretation rules; every stream is
 * also fed split at every position and byte by byte, as the network may.
 */
#include <stdlib.h>

#include "sse.h"
#include "test.h"

#define TX_MAX 8192

/* Events as "type|id|data;" and a final "X" on error. */
static void transcript(const char *in, size_t len, size_t max_event, size_t first, size_t step,
		       char *out)
{
	struct ag_sse_parser p;
	struct ag_sse_event ev;
	size_t off = 0, o = 0;

	out[0] = 0;
	if (ag_sse_parser_init(&p, max_event, NULL)) {
		strcpy(out, "init failed");
		return;
	}
	for (bool started = false; off < len; started = true) {
		size_t n = started ? step : first, done = 0;

		if (n > len - off)
			n = len - off;
		do {
			ssize_t r = ag_sse_parse(&p, in + off + done, n - done, &ev);

			if (r < 0) {
				snprintf(out + o, TX_MAX - o, "X");
				goto out;
			}
			done += r;
			if (ev.type == AG_SSE_EV_EVENT)
				o += snprintf(out + o, TX_MAX - o, "%.*s|%.*s|%.*s;",
					      (int)ev.event_len, ev.event, (int)ev.id_len, ev.id,
					      (int)ev.data_len, ev.data);
		} while (ev.type != AG_SSE_EV_NEED_MORE);
		off += n;
	}
	if (p.has_retry)
		snprintf(out + o, TX_MAX - o, "retry=%llu", (unsigned long long)p.retry_ms);
out:
	ag_sse_parser_release(&p);
}

static void expect_events_n(const char *in, size_t len, size_t max_event, const char *want)
{
	char one[TX_MAX], t[TX_MAX];

	transcript(in, len, max_event, len, len, one);
	if (!ASSERT_STREQ(one, want, "events"))
		return;
	for (size_t k = 0; k <= len; k++) {
		transcript(in, len, max_event, k, len, t);
		if (!ASSERT_STREQ(t, one, "split in two")) {
			fprintf(stderr, "split at %zu\n", k);
			return;
		}
	}
	transcript(in, len, max_event, 1, 1, t);
	ASSERT_STREQ(t, one, "byte by byte");
}

static void expect_events(const char *in, const char *want)
{
	expect_events_n(in, strlen(in), 4096, want);
}

TEST(sse_parse)
{
	if (test__start_subtest("simple"))
		expect_events("data: {\"jsonrpc\":\"2.0\"}\n\n", "message||{\"jsonrpc\":\"2.0\"};");
	if (test__start_subtest("multi_line_data"))
		expect_events("data: a\ndata:b\ndata:  c\ndata\n\n", "message||a\nb\n c\n;");
	if (test__start_subtest("event_and_id"))
		expect_events("event: endpoint\nid: 7\ndata: /messages?s=1\n\ndata: x\n\n",
			      "endpoint|7|/messages?s=1;message|7|x;");
	if (test__start_subtest("line_endings"))
		expect_events("data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\r",
			      "message||a\nb\nc;message||d;");
	if (test__start_subtest("crlf_is_one_line_end"))
		expect_events("data: a\r\n\r\ndata: b\r\n\r\n", "message||a;message||b;");
	if (test__start_subtest("comments"))
		expect_events(": keep-alive\n:\ndata: a\n: in the middle\n\n", "message||a;");
	if (test__start_subtest("no_data_no_event"))
		expect_events("event: x\nid: 1\n\ndata: y\n\n", "message|1|y;");
	if (test__start_subtest("empty_data_is_an_event"))
		expect_events("data\n\ndata:\n\n", "message||;message||;");
	if (test__start_subtest("unknown_fields"))
		expect_events("foo: bar\nDATA: no\ndata : no\n\n", "");
	if (test__start_subtest("id_reset_and_nul")) {
		static const char in[] = "id: 5\ndata: a\n\nid\ndata: b\n\nid: 9\0x\ndata: c\n\n";

		expect_events_n(in, sizeof(in) - 1, 4096, "message|5|a;message||b;message||c;");
	}
	if (test__start_subtest("retry"))
		expect_events("retry: 3000\nretry: 12x\nretry:\ndata: a\n\n",
			      "message||a;retry=3000");
	if (test__start_subtest("retry_overflow"))
		expect_events("retry: 99999999999999999999999\n", "");
	if (test__start_subtest("bom"))
		expect_events("\xef\xbb\xbf"
			      "data: a\n\n",
			      "message||a;");
	if (test__start_subtest("bom_only_once"))
		expect_events("\xef\xbb\xbf\xef\xbb\xbf"
			      "data: a\n\n",
			      "");
	if (test__start_subtest("partial_bom"))
		expect_events("\xef\xbb"
			      "data: a\n\ndata: b\n\n",
			      "message||b;");
	if (test__start_subtest("no_colon_space_kept"))
		expect_events("data:\tx \n\n", "message||\tx ;");
	if (test__start_subtest("incomplete_event_dropped"))
		expect_events("data: a\n\ndata: b\n", "message||a;");
	if (test__start_subtest("json_rpc_stream"))
		expect_events("id: s1-1\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\n"
			      "data: \"result\":{}}\n\n",
			      "message|s1-1|{\"jsonrpc\":\"2.0\",\"id\":1,\n\"result\":{}};");
}

TEST(sse_limits)
{
	char big[3000];

	if (test__start_subtest("event_size")) {
		/* 16 bytes: data "0123456789" plus "\n" fits, one more line not. */
		expect_events_n("data: 0123456789\n\n", 18, 16, "message||0123456789;");
		expect_events_n("data: 0123456789\ndata: 0\n\n", 26, 16, "X");
		expect_events_n("data: 01234567890\n\n", 19, 16, "X");
	}
	if (test__start_subtest("long_comment_is_free")) {
		memset(big, ':', sizeof(big));
		big[sizeof(big) - 2] = '\n';
		memcpy(big + sizeof(big) - 12, "\ndata: a\n\n", 10);
		expect_events_n(big, sizeof(big) - 2, 16, "message||a;");
	}
	if (test__start_subtest("type_and_id")) {
		memset(big, 'a', sizeof(big));
		memcpy(big, "event: ", 7);
		big[7 + AG_SSE_MAX_TYPE + 1] = '\n';
		expect_events_n(big, 7 + AG_SSE_MAX_TYPE + 2, 4096, "X");
		memset(big, 'a', sizeof(big));
		memcpy(big, "id: ", 4);
		big[4 + AG_SSE_MAX_ID + 1] = '\n';
		expect_events_n(big, 4 + AG_SSE_MAX_ID + 2, 4096, "X");
	}
	if (test__start_subtest("sticky_error")) {
		struct ag_sse_parser p;
		struct ag_sse_event ev;

		if (ASSERT_OK(ag_sse_parser_init(&p, 8, NULL), "init")) {
			ASSERT_EQ(ag_sse_parse(&p, "data: 0123\n", 11, &ev), -E2BIG, "too big");
			ASSERT_TRUE(strstr(p.err.msg, "larger than 8") != NULL, "message");
			ASSERT_EQ(ag_sse_parse(&p, "\n", 1, &ev), -E2BIG, "sticky");
			ag_sse_parser_release(&p);
		}
		ASSERT_EQ(ag_sse_parser_init(&p, 0, NULL), -EINVAL, "zero limit");
	}
}
