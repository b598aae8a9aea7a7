// SPDX-License-Identifier: GPL-2.0
/*
 * Fuzz the HTTP/1.1 parser.  Input: one flags byte (bit 0: parse requests,
 * bit 1: the first response answers HEAD), two bytes seeding the split
 * points, then the stream.  The stream is parsed in one piece and again in
 * pseudo-random pieces; the two runs must agree on every head, on the body
 * bytes and on the error, whatever the split.  The first head is also
 * serialized and parsed back (under the default limits: the serializer may
 * add a field), which must succeed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct ag_http_limits lim = {
	.max_start_line = 256,
	.max_line = 256,
	.max_head = 1024,
	.max_fields = 16,
	.max_chunk_line = 64,
	.max_body = 4096,
};

struct run {
	uint64_t hash; /* FNV-1a over heads, bodies and ends */
	unsigned int heads, ends;
	enum ag_http_error error;
	char first_head[1100];
	size_t first_head_len;
	bool first_is_head_resp;
};

static void mix(struct run *r, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		r->hash = (r->hash ^ b[i]) * 0x100000001b3ull;
}

static void on_head(struct run *r, struct ag_http_parser *p)
{
	const struct ag_http_msg *m = &p->msg;
	struct ag_http_edit e = { .framing = m->framing == AG_HTTP_BODY_LENGTH ? AG_HTTP_BODY_LENGTH
					     : m->framing == AG_HTTP_BODY_CHUNKED
						 ? AG_HTTP_BODY_CHUNKED
						 : AG_HTTP_BODY_NONE,
				  .content_length = m->content_length,
				  .keep_alive = m->keep_alive };
	struct ag_err err;

	r->heads++;
	mix(r, m->method ? m->method : "", m->method_len);
	mix(r, m->target ? m->target : "", m->target_len);
	mix(r, &m->status, sizeof(m->status));
	mix(r, &m->framing, sizeof(m->framing));
	mix(r, &m->content_length, sizeof(m->content_length));
	for (unsigned int i = 0; i < m->nfields; i++) {
		mix(r, m->headers[i].name, m->headers[i].name_len);
		mix(r, ":", 1);
		mix(r, m->headers[i].value, m->headers[i].value_len);
	}
	if (r->heads == 1 && ag_http_serialize_head(m, &e, r->first_head, sizeof(r->first_head),
						    &r->first_head_len, &err))
		abort();
}

static void run(const uint8_t *in, size_t len, const struct ag_http_limits *l, bool req, bool head,
		uint32_t seed, struct run *r)
{
	struct ag_http_parser p;
	struct ag_http_event ev;
	size_t off = 0;

	memset(r, 0, sizeof(*r));
	r->hash = 0xcbf29ce484222325ull;
	if (ag_http_parser_init(&p, req, l, NULL))
		abort();
	if (head)
		ag_http_parser_expect_head(&p);
	while (off < len) {
		size_t n = len - off, done = 0;

		if (seed) {
			seed = seed * 1103515245u + 12345u;
			n = (seed >> 16) % 17;
			if (n > len - off)
				n = len - off;
		}
		do {
			ssize_t got = ag_http_parse(&p, in + off + done, n - done, &ev);

			if (got < 0) {
				r->error = p.error;
				goto out;
			}
			if ((size_t)got > n - done)
				abort();
			done += got;
			if (ev.type == AG_HTTP_EV_HEAD)
				on_head(r, &p);
			else if (ev.type == AG_HTTP_EV_BODY)
				mix(r, ev.data, ev.len);
			else if (ev.type == AG_HTTP_EV_END)
				r->ends++, mix(r, "\0END", 4);
		} while (ev.type != AG_HTTP_EV_NEED_MORE);
		if (done != n)
			abort();
		off += n;
	}
	if (ag_http_parse_eof(&p, &ev))
		r->error = p.error;
	else if (ev.type == AG_HTTP_EV_END)
		r->ends++, mix(r, "\0END", 4);
out:
	if (r->error == AG_HTTP_OK && r->ends > r->heads)
		abort();
	ag_http_parser_release(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run one, pieces, back;
	bool req, head;
	uint32_t seed;

	if (size < 3)
		return 0;
	req = data[0] & 1;
	head = !req && (data[0] & 2);
	seed = (data[1] << 8 | data[2]) | 1;
	run(data + 3, size - 3, &lim, req, head, 0, &one);
	run(data + 3, size - 3, &lim, req, head, seed, &pieces);
	if (one.hash != pieces.hash || one.error != pieces.error || one.heads != pieces.heads ||
	    one.ends != pieces.ends)
		abort();
	/* Whatever we would forward must be a valid head itself; its body is
	 * not there, so only the HEAD event is required. */
	if (one.heads) {
		run((const uint8_t *)one.first_head, one.first_head_len, NULL, req, head, 0, &back);
		if (!back.heads)
			abort();
	}
	return 0;
}
