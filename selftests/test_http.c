// SPDX-License-Identifier: GPL-2.0
/*
 * The HTTP/1.1 parser and serializer.  Every message is parsed once in one
 * piece, then again split at every position and byte by byte, and the
 * transcripts (heads, de-chunked bodies, trailers, errors) must match: the
 * daemon receives whatever pieces the network gives it.
 */
#include <stdlib.h>

#include "http.h"
#include "test.h"

#define TX_MAX 16384

struct tx {
	char s[TX_MAX];
	size_t len;
	enum ag_http_error error;
	unsigned int heads; /* bit i: the i-th final response answers HEAD */
	unsigned int finals;
};

__attribute__((format(printf, 2, 3))) static void tx_add(struct tx *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(t->s + t->len, TX_MAX - t->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		t->len = t->len + n < TX_MAX ? t->len + n : TX_MAX - 1;
}

static void tx_fields(struct tx *t, const struct ag_http_msg *m, unsigned int from, unsigned int n)
{
	for (unsigned int i = from; i < from + n; i++)
		tx_add(t, "%.*s=%.*s|", (int)m->headers[i].name_len, m->headers[i].name,
		       (int)m->headers[i].value_len, m->headers[i].value);
}

static void tx_event(struct tx *t, struct ag_http_parser *p, const struct ag_http_event *ev)
{
	const struct ag_http_msg *m = &p->msg;

	switch (ev->type) {
	case AG_HTTP_EV_HEAD:
		if (m->is_request)
			tx_add(t, "H %.*s %.*s 1.%d ", (int)m->method_len, m->method,
			       (int)m->target_len, m->target, m->version_minor);
		else
			tx_add(t, "H %d %.*s 1.%d ", m->status, (int)m->reason_len, m->reason,
			       m->version_minor);
		tx_fields(t, m, 0, m->nfields);
		tx_add(t, " framing=%d ka=%d\nB:", m->framing, m->keep_alive);
		break;
	case AG_HTTP_EV_BODY:
		tx_add(t, "%.*s", (int)ev->len, ev->data);
		break;
	case AG_HTTP_EV_END:
		tx_add(t, "\nT:");
		tx_fields(t, m, m->nfields, m->ntrailers);
		tx_add(t, "\nE%s\n", m->upgrade ? " upgrade" : "");
		if (!m->is_request && (m->status >= 200 || m->status < 100)) {
			t->finals++;
			if (t->heads & (1u << t->finals))
				ag_http_parser_expect_head(p);
		}
		break;
	case AG_HTTP_EV_NEED_MORE:
		break;
	}
}

/* Feeds in[0..len) in pieces of `step` bytes after the first `first`. */
static void transcript(bool req, const struct ag_http_limits *lim, const char *in, size_t len,
		       size_t first, size_t step, struct tx *t)
{
	struct ag_http_parser p;
	struct ag_http_event ev;
	size_t off = 0;

	t->len = 0;
	t->s[0] = 0;
	t->error = AG_HTTP_OK;
	t->finals = 0;
	if (ag_http_parser_init(&p, req, lim, NULL)) {
		tx_add(t, "init failed");
		return;
	}
	if (t->heads & 1)
		ag_http_parser_expect_head(&p);
	for (bool started = false; off < len; started = true) {
		size_t n = started ? step : first, done = 0;

		if (n > len - off)
			n = len - off;
		do {
			ssize_t r = ag_http_parse(&p, in + off + done, n - done, &ev);

			if (r < 0) {
				t->error = p.error;
				tx_add(t, "X %s", ag_http_error_name(p.error));
				goto out;
			}
			done += r;
			tx_event(t, &p, &ev);
		} while (ev.type != AG_HTTP_EV_NEED_MORE);
		off += n;
	}
	if (ag_http_parse_eof(&p, &ev) < 0) {
		t->error = p.error;
		tx_add(t, "X %s", ag_http_error_name(p.error));
	} else {
		tx_event(t, &p, &ev);
	}
out:
	ag_http_parser_release(&p);
}

/* Returns the one-shot transcript after checking every split agrees. */
static bool parse_all_splits(bool req, const struct ag_http_limits *lim, const char *in, size_t len,
			     unsigned int heads, struct tx *one)
{
	struct tx *t = malloc(sizeof(*t));
	bool ok = true;

	if (!ASSERT_OK_PTR(t, "malloc"))
		return false;
	one->heads = t->heads = heads;
	transcript(req, lim, in, len, len, len, one);
	for (size_t k = 0; ok && k <= len; k++) {
		transcript(req, lim, in, len, k, len, t);
		ok = ASSERT_STREQ(t->s, one->s, "split in two");
		if (!ok)
			fprintf(stderr, "split at %zu\n", k);
	}
	transcript(req, lim, in, len, 1, 1, t);
	ok = ok && ASSERT_STREQ(t->s, one->s, "byte by byte");
	transcript(req, lim, in, len, 0, 3, t);
	ok = ok && ASSERT_STREQ(t->s, one->s, "3 bytes at a time");
	free(t);
	return ok;
}

static void expect_parse(bool req, const char *in, unsigned int heads, const char *want)
{
	struct tx one;

	if (parse_all_splits(req, NULL, in, strlen(in), heads, &one))
		ASSERT_STREQ(one.s, want, "transcript");
}

static void expect_reject_n(bool req, const struct ag_http_limits *lim, const char *in, size_t len,
			    enum ag_http_error want)
{
	struct tx one;

	if (parse_all_splits(req, lim, in, len, 0, &one) &&
	    !ASSERT_EQ(one.error, want, "error code"))
		fprintf(stderr, "want %s, transcript: %s\n", ag_http_error_name(want), one.s);
}

static void expect_reject_lim(bool req, const struct ag_http_limits *lim, const char *in,
			      enum ag_http_error want)
{
	expect_reject_n(req, lim, in, strlen(in), want);
}

static void expect_reject(bool req, const char *in, enum ag_http_error want)
{
	expect_reject_n(req, NULL, in, strlen(in), want);
}

TEST(http_valid_requests)
{
	if (test__start_subtest("get"))
		expect_parse(
		    true, "GET /mcp?x=1 HTTP/1.1\r\nHost: a.example\r\nAccept:  */* \r\n\r\n", 0,
		    "H GET /mcp?x=1 1.1 Host=a.example|Accept=*/*| framing=0 ka=1\nB:\nT:\nE\n");
	if (test__start_subtest("post_content_length"))
		expect_parse(
		    true, "POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello", 0,
		    "H POST /mcp 1.1 Host=h|Content-Length=5| framing=1 ka=1\nB:hello\nT:\nE\n");
	/* Field names in any case frame the message the same (span_eq's folded first byte). */
	if (test__start_subtest("field_names_any_case")) {
		expect_parse(
		    true, "POST / HTTP/1.1\r\nhOST: h\r\ncONTENT-lENGTH: 5\r\n\r\nhello", 0,
		    "H POST / 1.1 hOST=h|cONTENT-lENGTH=5| framing=1 ka=1\nB:hello\nT:\nE\n");
		expect_parse(
		    true,
		    "POST / HTTP/1.1\r\nHost: h\r\ntRANSFER-eNCODING: chunked\r\n"
		    "cONNECTION: close\r\n\r\n1\r\nx\r\n0\r\n\r\n",
		    0,
		    "H POST / 1.1 Host=h|tRANSFER-eNCODING=chunked|cONNECTION=close| framing=2 "
		    "ka=0\nB:x\nT:\nE\n");
	}
	if (test__start_subtest("chunked_extensions_trailers"))
		expect_parse(true,
			     "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n"
			     "5;name=val;q=\"x y\"\r\nhello\r\n00A \t;ext\r\n, world!!!\r\n0\r\n"
			     "Digest: abc\r\nX-T:\r\n\r\n",
			     0,
			     "H POST / 1.1 Host=h|Transfer-Encoding=Chunked| framing=2 ka=1\n"
			     "B:hello, world!!!\nT:Digest=abc|X-T=|\nE\n");
	if (test__start_subtest("keep_alive_pipeline"))
		expect_parse(
		    true,
		    "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n{}"
		    "\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n"
		    "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "1\r\nx\r\n0\r\n\r\n"
		    "DELETE /d HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
		    0,
		    "H POST /a 1.1 Host=h|Content-Length=2| framing=1 ka=1\nB:{}\nT:\nE\n"
		    "H GET /b 1.1 Host=h| framing=0 ka=1\nB:\nT:\nE\n"
		    "H POST /c 1.1 Host=h|Transfer-Encoding=chunked| framing=2 ka=1\nB:x\nT:\nE\n"
		    "H DELETE /d 1.1 Host=h|Connection=close| framing=0 ka=0\nB:\nT:\nE\n");
	if (test__start_subtest("http10"))
		expect_parse(
		    true, "GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		    0, "H GET / 1.0  framing=0 ka=0\nB:\nT:\nE\nX after_close");
	if (test__start_subtest("http10_keep_alive"))
		expect_parse(
		    true, "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
		    0,
		    "H GET / 1.0 Connection=Keep-Alive| framing=0 ka=1\nB:\nT:\nE\n"
		    "H GET / 1.0  framing=0 ka=0\nB:\nT:\nE\n");
	if (test__start_subtest("obs_text_value"))
		expect_parse(true, "GET / HTTP/1.1\r\nHost: h\r\nX: caf\xc3\xa9 \tb\r\n\r\n", 0,
			     "H GET / 1.1 Host=h|X=caf\xc3\xa9 \tb| framing=0 ka=1\nB:\nT:\nE\n");
	if (test__start_subtest("truncated_head"))
		expect_reject(true, "GET / HTTP/1.1\r\nHost: h\r\n", AG_HTTP_E_TRUNCATED);
	if (test__start_subtest("truncated_body"))
		expect_reject(true, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\n\r\nabc",
			      AG_HTTP_E_TRUNCATED);
}

TEST(http_valid_responses)
{
	if (test__start_subtest("content_length"))
		expect_parse(false,
			     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
			     "Content-Length: 2\r\n\r\n{}",
			     0,
			     "H 200 OK 1.1 Content-Type=application/json|Content-Length=2| "
			     "framing=1 ka=1\nB:{}\nT:\nE\n");
	if (test__start_subtest("chunked_sse"))
		expect_parse(
		    false,
		    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
		    "Transfer-Encoding: chunked\r\n\r\n"
		    "c\r\ndata: {}\n\n\r\n\r\n0\r\n\r\n",
		    0,
		    "H 200 OK 1.1 Content-Type=text/event-stream|Transfer-Encoding=chunked| "
		    "framing=2 ka=1\nB:data: {}\n\n\r\n\nT:\nE\n");
	if (test__start_subtest("no_body_statuses"))
		expect_parse(
		    false,
		    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n"
		    "Content-Length: 7\r\n\r\nHTTP/1.1 304 Not Modified\r\n"
		    "Content-Length: 9\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n",
		    0,
		    "H 100 Continue 1.1  framing=0 ka=1\nB:\nT:\nE\n"
		    "H 204 No Content 1.1 Content-Length=7| framing=0 ka=1\nB:\nT:\nE\n"
		    "H 304 Not Modified 1.1 Content-Length=9| framing=0 ka=1\nB:\nT:\nE\n"
		    "H 202 Accepted 1.1 Content-Length=0| framing=0 ka=1\nB:\nT:\nE\n");
	/* The second final response answers HEAD (bit 1), the rest do not. */
	if (test__start_subtest("head_response"))
		expect_parse(false,
			     "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"
			     "HTTP/1.1 103 Early Hints\r\n\r\n"
			     "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n"
			     "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\ny",
			     1u << 1,
			     "H 200 OK 1.1 Content-Length=1| framing=1 ka=1\nB:x\nT:\nE\n"
			     "H 103 Early Hints 1.1  framing=0 ka=1\nB:\nT:\nE\n"
			     "H 200 OK 1.1 Content-Length=50| framing=0 ka=1\nB:\nT:\nE\n"
			     "H 200 OK 1.1 Content-Length=1| framing=1 ka=1\nB:y\nT:\nE\n");
	if (test__start_subtest("until_close"))
		expect_parse(
		    false, "HTTP/1.1 200 OK\r\n\r\nevent: x\r\ndata: 1\r\n\r\n", 0,
		    "H 200 OK 1.1  framing=3 ka=0\nB:event: x\r\ndata: 1\r\n\r\n\nT:\nE\n");
	if (test__start_subtest("no_reason"))
		expect_parse(false, "HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n", 0,
			     "H 404  1.1 Content-Length=0| framing=0 ka=1\nB:\nT:\nE\n");
	if (test__start_subtest("upgrade"))
		expect_parse(false,
			     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", 0,
			     "H 101 Switching Protocols 1.1 Upgrade=websocket| framing=0 ka=1\n"
			     "B:\nT:\nE upgrade\n");
	if (test__start_subtest("bytes_after_upgrade"))
		expect_reject(false, "HTTP/1.1 101 Switching Protocols\r\n\r\n\x81\x00",
			      AG_HTTP_E_AFTER_CLOSE);
	if (test__start_subtest("close_then_bytes"))
		expect_reject(false,
			      "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\nX",
			      AG_HTTP_E_AFTER_CLOSE);
}

/* The six the design names, one test each. */
TEST(http_reject_cl_and_te)
{
	expect_reject(true,
		      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
		      "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		      AG_HTTP_E_CL_AND_TE);
}

TEST(http_reject_duplicate_cl)
{
	expect_reject(
	    true, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
	    AG_HTTP_E_CL_DUPLICATE);
}

TEST(http_reject_obs_fold)
{
	expect_reject(true, "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n 2\r\n\r\n",
		      AG_HTTP_E_OBS_FOLD);
}

TEST(http_reject_bare_lf)
{
	expect_reject(true, "GET / HTTP/1.1\r\nHost: h\nX: 1\r\n\r\n", AG_HTTP_E_BARE_LF);
}

TEST(http_reject_bare_cr)
{
	expect_reject(true, "GET / HTTP/1.1\r\nHost: h\rX: 1\r\n\r\n", AG_HTTP_E_BARE_CR);
}

TEST(http_reject_oversized_chunk)
{
	expect_reject(true,
		      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
		      "10000000000000000\r\n",
		      AG_HTTP_E_CHUNK_OVERFLOW);
}

static const struct {
	const char *name;
	bool req;
	const char *in;
	enum ag_http_error want;
} rejects[] = {
	{ "cl_list", true, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc",
	  AG_HTTP_E_CL_LIST },
	{ "cl_list_differ", false, "HTTP/1.1 200 OK\r\nContent-Length: 3,4\r\n\r\nabc",
	  AG_HTTP_E_CL_LIST },
	{ "cl_empty", true, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n",
	  AG_HTTP_E_CL_INVALID },
	{ "cl_sign", true, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc",
	  AG_HTTP_E_CL_INVALID },
	{ "cl_hex", false, "HTTP/1.1 200 OK\r\nContent-Length: 0x3\r\n\r\nabc",
	  AG_HTTP_E_CL_INVALID },
	{ "cl_overflow", true,
	  "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551616\r\n\r\n",
	  AG_HTTP_E_CL_OVERFLOW },
	{ "te_gzip_chunked", true,
	  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
	  AG_HTTP_E_TE_UNSUPPORTED },
	{ "te_chunked_twice", true,
	  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
	  "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	  AG_HTTP_E_TE_UNSUPPORTED },
	{ "te_empty_element", true,
	  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n",
	  AG_HTTP_E_TE_UNSUPPORTED },
	{ "te_param", true,
	  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n",
	  AG_HTTP_E_TE_NOT_CHUNKED },
	{ "te_chunked_gzip", false, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
	  AG_HTTP_E_TE_NOT_CHUNKED },
	{ "te_identity", false, "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n",
	  AG_HTTP_E_TE_NOT_CHUNKED },
	{ "te_http10", false, "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	  AG_HTTP_E_TE_HTTP10 },
	{ "ws_before_first_field", true, "GET / HTTP/1.1\r\n Host: h\r\n\r\n", AG_HTTP_E_OBS_FOLD },
	{ "bare_lf_end_of_head", true, "GET / HTTP/1.1\r\nHost: h\r\n\n", AG_HTTP_E_BARE_LF },
	{ "bare_lf_start_line", false, "HTTP/1.1 200 OK\n\r\n", AG_HTTP_E_BARE_LF },
	{ "bare_cr_value", false, "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", AG_HTTP_E_BARE_CR },
	{ "name_ws", true, "GET / HTTP/1.1\r\nHost : h\r\n\r\n", AG_HTTP_E_NAME_WS },
	{ "name_tab", true, "GET / HTTP/1.1\r\nHost\t: h\r\n\r\n", AG_HTTP_E_NAME_WS },
	{ "name_invalid", true, "GET / HTTP/1.1\r\nHo(st: h\r\n\r\n", AG_HTTP_E_NAME_INVALID },
	{ "name_empty", true, "GET / HTTP/1.1\r\n: h\r\n\r\n", AG_HTTP_E_NAME_INVALID },
	{ "no_colon", true, "GET / HTTP/1.1\r\nHost\r\n\r\n", AG_HTTP_E_NAME_INVALID },
	{ "value_esc", true, "GET / HTTP/1.1\r\nHost: h\x1b[0m\r\n\r\n", AG_HTTP_E_VALUE_CTL },
	{ "value_del", true, "GET / HTTP/1.1\r\nHost: h\x7f\r\n\r\n", AG_HTTP_E_VALUE_CTL },
	{ "method_invalid", true, "G@T / HTTP/1.1\r\nHost: h\r\n\r\n", AG_HTTP_E_METHOD_INVALID },
	{ "method_empty", true, " / HTTP/1.1\r\nHost: h\r\n\r\n", AG_HTTP_E_METHOD_INVALID },
	{ "target_ctl", true, "GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n", AG_HTTP_E_TARGET_INVALID },
	{ "target_double_sp", true, "GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
	  AG_HTTP_E_TARGET_INVALID },
	{ "target_obs_text", true, "GET /\xff HTTP/1.1\r\nHost: h\r\n\r\n",
	  AG_HTTP_E_TARGET_INVALID },
	{ "no_version", true, "GET /\r\nHost: h\r\n\r\n", AG_HTTP_E_START_LINE },
	{ "version_lower", true, "GET / http/1.1\r\nHost: h\r\n\r\n", AG_HTTP_E_START_LINE },
	{ "version_trailing", true, "GET / HTTP/1.1 \r\nHost: h\r\n\r\n", AG_HTTP_E_START_LINE },
	{ "version_2", true, "GET / HTTP/2.0\r\nHost: h\r\n\r\n", AG_HTTP_E_VERSION },
	{ "version_0_9", false, "HTTP/0.9 200 OK\r\n\r\n", AG_HTTP_E_VERSION },
	{ "version_1_2", false, "HTTP/1.2 200 OK\r\n\r\n", AG_HTTP_E_VERSION },
	{ "status_short", false, "HTTP/1.1 20 OK\r\n\r\n", AG_HTTP_E_START_LINE },
	{ "status_600", false, "HTTP/1.1 600 X\r\n\r\n", AG_HTTP_E_STATUS },
	{ "status_099", false, "HTTP/1.1 099 X\r\n\r\n", AG_HTTP_E_STATUS },
	{ "reason_ctl", false, "HTTP/1.1 200 O\x01K\r\n\r\n", AG_HTTP_E_START_LINE },
	{ "no_host", true, "GET / HTTP/1.1\r\n\r\n", AG_HTTP_E_HOST },
	{ "two_hosts", true, "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", AG_HTTP_E_HOST },
	{ "chunk_size_empty", true,
	  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
	  AG_HTTP_E_CHUNK_SIZE },
	{ "chunk_size_sign", true,
	  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
	  AG_HTTP_E_CHUNK_SIZE },
	{ "chunk_size_0x", true,
	  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0x1\r\nx\r\n0\r\n\r\n",
	  AG_HTTP_E_CHUNK_SIZE },
	{ "chunk_size_trailing_ws", true,
	  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1 \r\nx\r\n0\r\n\r\n",
	  AG_HTTP_E_CHUNK_SIZE },
	{ "chunk_ext_ctl", true,
	  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1;a\x01\r\nx\r\n",
	  AG_HTTP_E_CHUNK_SIZE },
	{ "chunk_line_bare_lf", true,
	  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\nx\r\n",
	  AG_HTTP_E_BARE_LF },
	{ "chunk_line_bare_cr", true,
	  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\rx\r\n",
	  AG_HTTP_E_BARE_CR },
	{ "chunk_data_end", true,
	  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n0\r\n\r\n",
	  AG_HTTP_E_CHUNK_DATA_END },
	{ "chunk_data_bare_lf", true,
	  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\n0\r\n\r\n",
	  AG_HTTP_E_BARE_LF },
	{ "chunk_body_too_large", true,
	  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n400001\r\n",
	  AG_HTTP_E_BODY_TOO_LARGE },
	{ "trailer_obs_fold", true,
	  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: "
	  "1\r\n\t2\r\n\r\n",
	  AG_HTTP_E_OBS_FOLD },
	{ "trailer_bare_lf", true,
	  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: 1\n\r\n",
	  AG_HTTP_E_BARE_LF },
	{ "cl_body_too_large", false, "HTTP/1.1 200 OK\r\nContent-Length: 4194305\r\n\r\n",
	  AG_HTTP_E_BODY_TOO_LARGE },
	{ "after_close_request", true,
	  "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n",
	  AG_HTTP_E_AFTER_CLOSE },
};

TEST(http_reject)
{
	static const char nul[] = "GET / HTTP/1.1\r\nHost: h\0x\r\n\r\n";

	for (size_t i = 0; i < AG_ARRAY_SIZE(rejects); i++)
		if (test__start_subtest(rejects[i].name))
			expect_reject(rejects[i].req, rejects[i].in, rejects[i].want);
	if (test__start_subtest("value_nul"))
		expect_reject_n(true, NULL, nul, sizeof(nul) - 1, AG_HTTP_E_VALUE_CTL);
}

TEST(http_limits)
{
	struct ag_http_limits lim = ag_http_default_limits;
	char *big = malloc(40000);

	if (!ASSERT_OK_PTR(big, "malloc"))
		return;
	lim.max_start_line = 40;
	lim.max_line = 30;
	lim.max_head = 120;
	lim.max_fields = 3;
	lim.max_chunk_line = 12;
	lim.max_body = 10;
	if (test__start_subtest("start_line")) {
		expect_reject_lim(true, &lim, "GET /0123456789012345678901234 HTTP/1.1\r\n\r\n",
				  AG_HTTP_E_START_LINE_TOO_LONG);
		/* Exactly at the limit passes. */
		expect_reject_lim(true, &lim, "GET /012345678901234567890123 HTTP/1.1\r\n\r\n",
				  AG_HTTP_E_HOST);
	}
	if (test__start_subtest("field_line"))
		expect_reject_lim(true, &lim,
				  "GET / HTTP/1.1\r\nHost: 01234567890123456789012\r\n\r\n",
				  AG_HTTP_E_LINE_TOO_LONG);
	if (test__start_subtest("head"))
		expect_reject_lim(true, &lim,
				  "GET / HTTP/1.1\r\nHost: 0123456789012345678\r\n"
				  "A: 01234567890123456789012\r\nB: 01234567890123456789012\r\n"
				  "C: 01234567890123456789012\r\n\r\n",
				  AG_HTTP_E_HEAD_TOO_LARGE);
	if (test__start_subtest("fields"))
		expect_reject_lim(true, &lim,
				  "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
				  AG_HTTP_E_TOO_MANY_FIELDS);
	if (test__start_subtest("trailers_count_with_fields"))
		expect_reject_lim(true, &lim,
				  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
				  "0\r\nA: 1\r\nB: 2\r\n\r\n",
				  AG_HTTP_E_TOO_MANY_FIELDS);
	if (test__start_subtest("chunk_line"))
		expect_reject_lim(true, &lim,
				  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
				  "1;aaaaaaaaa\r\nx\r\n",
				  AG_HTTP_E_CHUNK_LINE_TOO_LONG);
	if (test__start_subtest("chunk_leading_zeros")) {
		lim.max_chunk_line = 1024;
		memset(big, 0, 40000);
		strcpy(big, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
		memset(big + strlen(big), '0', 100);
		strcat(big, "1\r\nx\r\n0\r\n\r\n");
		expect_reject_lim(true, &lim, big, AG_HTTP_OK);
	}
	if (test__start_subtest("chunked_body_sum"))
		expect_reject_lim(true, &lim,
				  "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
				  "5\r\n01234\r\n6\r\n012345\r\n0\r\n\r\n",
				  AG_HTTP_E_BODY_TOO_LARGE);
	if (test__start_subtest("close_body"))
		expect_reject_lim(false, &lim, "HTTP/1.1 200 OK\r\n\r\n0123456789x",
				  AG_HTTP_E_BODY_TOO_LARGE);
	if (test__start_subtest("close_body_at_limit"))
		expect_reject_lim(false, &lim, "HTTP/1.1 200 OK\r\n\r\n0123456789", AG_HTTP_OK);
	if (test__start_subtest("default_header_line")) {
		memset(big, 0, 40000);
		strcpy(big, "GET / HTTP/1.1\r\nHost: h\r\nX: ");
		memset(big + strlen(big), 'a', 8190);
		strcat(big, "\r\n\r\n");
		expect_reject(true, big, AG_HTTP_E_LINE_TOO_LONG);
	}
	if (test__start_subtest("default_head_size")) {
		memset(big, 0, 40000);
		strcpy(big, "GET / HTTP/1.1\r\nHost: h\r\n");
		for (int i = 0; i < 9; i++) {
			strcat(big, "X: ");
			memset(big + strlen(big), 'a', 4000);
			strcat(big, "\r\n");
		}
		strcat(big, "\r\n");
		expect_reject(true, big, AG_HTTP_E_HEAD_TOO_LARGE);
	}
	if (test__start_subtest("zero_limit")) {
		struct ag_http_parser p;
		struct ag_err err;

		lim.max_head = 0;
		ASSERT_EQ(ag_http_parser_init(&p, true, &lim, &err), -EINVAL, "rejected");
	}
	if (test__start_subtest("head_size_wraps")) {
		struct ag_http_parser p;
		struct ag_err err;

		/* The block and the field array after it are one size: it must not wrap. */
		lim = ag_http_default_limits;
		lim.max_head = SIZE_MAX - 2;
		ASSERT_EQ(ag_http_parser_init(&p, true, &lim, &err), -E2BIG, "block rounded up");
		lim.max_head = SIZE_MAX - 64 * sizeof(struct ag_http_header);
		ASSERT_EQ(ag_http_parser_init(&p, true, &lim, &err), -E2BIG, "fields after it");
	}
	free(big);
}

TEST(http_after_error)
{
	struct ag_http_parser p;
	struct ag_http_event ev;
	static const char in[] = "GET / HTTP/1.1\r\nHost: h\nX: 1\r\n\r\n";

	if (!ASSERT_OK(ag_http_parser_init(&p, true, NULL, NULL), "init"))
		return;
	ASSERT_EQ(ag_http_parse(&p, in, sizeof(in) - 1, &ev), -EPROTO, "first");
	ASSERT_EQ(p.error, AG_HTTP_E_BARE_LF, "code");
	ASSERT_TRUE(strstr(p.err.msg, "LF") != NULL, "message names the cause");
	ASSERT_EQ(ag_http_parse(&p, "GET", 3, &ev), -EPROTO, "sticky");
	ASSERT_EQ(ag_http_parse_eof(&p, &ev), -EPROTO, "sticky at eof");
	ag_http_parser_release(&p);
}

static int parse_head(struct ag_http_parser *p, bool req, const char *in)
{
	struct ag_http_event ev;
	ssize_t n;

	if (ag_http_parser_init(p, req, NULL, NULL))
		return -1;
	n = ag_http_parse(p, in, strlen(in), &ev);
	return n < 0 || ev.type != AG_HTTP_EV_HEAD ? -1 : 0;
}

TEST(http_serialize)
{
	static const char req[] =
	    "POST /mcp HTTP/1.1\r\nHost: up.example\r\nAuthorization: Bearer agent\r\n"
	    "Cookie: a=b\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\n"
	    "Keep-Alive: 5\r\nTE: trailers\r\nUpgrade: h2c\r\nProxy-Connection: x\r\n"
	    "Content-Type: application/json\r\nMcp-Session-Id: 42\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n";
	static const char *const strip[] = { "authorization", "COOKIE", NULL };
	struct ag_http_header add[] = {
		{ "Authorization", 13, "Bearer upstream", 15 },
	};
	struct ag_http_edit e = { .remove = strip,
				  .add = add,
				  .nadd = 1,
				  .framing = AG_HTTP_BODY_LENGTH,
				  .content_length = 12,
				  .keep_alive = true };
	struct ag_http_parser p, q;
	char out[1024];
	size_t n;
	struct ag_err err;

	if (!ASSERT_OK(parse_head(&p, true, req), "parse"))
		goto out;
	if (test__start_subtest("request")) {
		if (ASSERT_OK(ag_http_serialize_head(&p.msg, &e, out, sizeof(out), &n, &err),
			      "serialize")) {
			out[n] = 0;
			ASSERT_STREQ(out,
				     "POST /mcp HTTP/1.1\r\nHost: up.example\r\n"
				     "Content-Type: application/json\r\nMcp-Session-Id: 42\r\n"
				     "Authorization: Bearer upstream\r\nContent-Length: 12\r\n\r\n",
				     "head");
			/* What we send parses back. */
			ASSERT_OK(parse_head(&q, true, out), "reparse");
			ag_http_parser_release(&q);
		}
	}
	if (test__start_subtest("connection_cannot_name_host")) {
		static const char named[] = "GET / HTTP/1.1\r\nHost: h\r\n"
					    "Connection: close, Host\r\n\r\n";
		struct ag_http_edit none = { .framing = AG_HTTP_BODY_NONE };
		struct ag_http_parser r;

		/* Found by fuzz_http: dropping Host made an invalid request. */
		if (ASSERT_OK(parse_head(&r, true, named), "parse")) {
			if (ASSERT_OK(ag_http_serialize_head(&r.msg, &none, out, sizeof(out), &n,
							     &err),
				      "serialize")) {
				out[n] = 0;
				ASSERT_STRHAS(out, "Host: h\r\n", "Host kept");
			}
			ag_http_parser_release(&r);
		}
	}
	if (test__start_subtest("chunked_close")) {
		e.framing = AG_HTTP_BODY_CHUNKED;
		e.keep_alive = false;
		e.nadd = 0;
		if (ASSERT_OK(ag_http_serialize_head(&p.msg, &e, out, sizeof(out), &n, &err),
			      "serialize")) {
			out[n] = 0;
			ASSERT_TRUE(
			    strstr(out,
				   "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n") !=
				NULL,
			    "framing and close");
		}
	}
	if (test__start_subtest("too_small")) {
		ASSERT_EQ(ag_http_serialize_head(&p.msg, &e, out, 20, &n, &err), -ENOSPC, "short");
		ASSERT_TRUE(strstr(err.msg, "20 bytes") != NULL, "message");
	}
	if (test__start_subtest("injection")) {
		struct ag_http_header bad[] = {
			{ "X-A", 3, "v\r\nInjected: 1", 14 },
			{ "X A", 3, "v", 1 },
			{ "", 0, "v", 1 },
		};

		e.add = bad;
		for (size_t i = 0; i < AG_ARRAY_SIZE(bad); i++) {
			e.add = &bad[i];
			e.nadd = 1;
			ASSERT_EQ(ag_http_serialize_head(&p.msg, &e, out, sizeof(out), &n, &err),
				  -EINVAL, "bad field rejected");
		}
	}
	if (test__start_subtest("response")) {
		struct ag_http_parser r;
		struct ag_http_edit re = { .framing = AG_HTTP_BODY_NONE, .keep_alive = true };

		if (ASSERT_OK(parse_head(&r, false,
					 "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
			      "parse response")) {
			ASSERT_OK(ag_http_serialize_head(&r.msg, &re, out, sizeof(out), &n, &err),
				  "serialize");
			out[n] = 0;
			ASSERT_STREQ(out,
				     "HTTP/1.0 404 Not Found\r\nConnection: keep-alive\r\n\r\n",
				     "head");
		}
		ag_http_parser_release(&r);
	}
out:
	ag_http_parser_release(&p);
}

TEST(http_chunk_encoder)
{
	char prefix[AG_HTTP_CHUNK_PREFIX_MAX], out[64], stream[256];
	size_t n, len;
	struct tx one;

	ASSERT_EQ(ag_http_chunk_prefix(0, prefix), 0, "zero refused");
	ASSERT_EQ(ag_http_chunk_prefix(UINT64_MAX, prefix), 18, "longest");
	ASSERT_STREQ(prefix, "ffffffffffffffff\r\n", "max prefix");
	ASSERT_EQ(ag_http_chunk_encode("abc", 0, out, sizeof(out), &n), -EINVAL, "empty chunk");
	ASSERT_EQ(ag_http_chunk_encode("abc", 3, out, 7, &n), -ENOSPC, "short buffer");
	/* Encoded pieces decode to the original body. */
	len = snprintf(stream, sizeof(stream),
		       "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
	for (int i = 1; i <= 20; i += 7) {
		char piece[32];

		memset(piece, 'a' + i, i);
		if (!ASSERT_OK(ag_http_chunk_encode(piece, i, out, sizeof(out), &n), "encode"))
			return;
		memcpy(stream + len, out, n);
		len += n;
	}
	memcpy(stream + len, AG_HTTP_CHUNK_LAST, sizeof(AG_HTTP_CHUNK_LAST));
	if (parse_all_splits(true, NULL, stream, len + 5, 0, &one))
		ASSERT_TRUE(strstr(one.s, "B:biiiiiiiippppppppppppppp\n") != NULL, "round trip");
}

TEST(http_helpers)
{
	struct ag_http_parser p;
	const struct ag_http_header *h;

	ASSERT_TRUE(ag_http_list_has("a, Close ,b", 11, "close"), "listed");
	ASSERT_FALSE(ag_http_list_has("closed", 6, "close"), "prefix is not a match");
	ASSERT_FALSE(ag_http_list_has("", 0, "close"), "empty");
	if (!ASSERT_OK(parse_head(&p, true, "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\na: 2\r\n\r\n"),
		       "parse"))
		goto out;
	h = ag_http_find(&p.msg, "A", NULL);
	if (ASSERT_OK_PTR(h, "first"))
		ASSERT_MEMEQ(h->value, "1", 1, "first value");
	h = ag_http_find(&p.msg, "a", h);
	if (ASSERT_OK_PTR(h, "second"))
		ASSERT_MEMEQ(h->value, "2", 1, "second value");
	ASSERT_TRUE(ag_http_find(&p.msg, "A", h) == NULL, "no third");
	ASSERT_STREQ(ag_http_error_name(AG_HTTP_E_CL_AND_TE), "cl_and_te", "error name");
	ASSERT_STREQ(ag_http_error_name(AG_HTTP_E_COUNT), "unknown", "out of range");
out:
	ag_http_parser_release(&p);
}
