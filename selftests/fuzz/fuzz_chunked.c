// SPDX-License-Identifier: GPL-2.0
/*
 * Fuzz the chunked decoder and encoder.  Decoding: the input (after a seed
 * byte) is a chunked response body, parsed in one piece and in random
 * pieces, which must deliver the same bytes and the same verdict.
 * Encoding: the same input cut into chunks by the seed, encoded and parsed
 * back, must come out unchanged.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char head[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";

static const struct ag_http_limits lim = {
	.max_start_line = 128,
	.max_line = 128,
	.max_head = 512,
	.max_fields = 8,
	.max_chunk_line = 32,
	.max_body = 1 << 16,
};

struct result {
	uint8_t body[1 << 16];
	size_t len;
	int ends;
	enum ag_http_error error;
};

static uint32_t next(uint32_t *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return *seed >> 16;
}

static void feed(struct ag_http_parser *p, const uint8_t *in, size_t n, struct result *r)
{
	struct ag_http_event ev;
	size_t done = 0;

	do {
		ssize_t got = ag_http_parse(p, in + done, n - done, &ev);

		if (got < 0) {
			r->error = p->error;
			return;
		}
		done += got;
		if (ev.type == AG_HTTP_EV_BODY) {
			if (ev.len > sizeof(r->body) - r->len)
				abort(); /* beyond max_body */
			memcpy(r->body + r->len, ev.data, ev.len);
			r->len += ev.len;
		} else if (ev.type == AG_HTTP_EV_END) {
			r->ends++;
		}
	} while (ev.type != AG_HTTP_EV_NEED_MORE);
}

/* seed 0: one piece. */
static void decode(const uint8_t *in, size_t len, uint32_t seed, struct result *r)
{
	struct ag_http_parser p;
	struct ag_http_event ev;

	r->len = 0;
	r->ends = 0;
	r->error = AG_HTTP_OK;
	if (ag_http_parser_init(&p, false, &lim, NULL))
		abort();
	feed(&p, (const uint8_t *)head, sizeof(head) - 1, r);
	for (size_t off = 0, n; off < len && !r->error; off += n) {
		n = seed ? 1 + next(&seed) % 9 : len;
		if (n > len - off)
			n = len - off;
		feed(&p, in + off, n, r);
	}
	if (!r->error && ag_http_parse_eof(&p, &ev))
		r->error = p.error;
	ag_http_parser_release(&p);
}

static struct result one, pieces;
static uint8_t encoded[(1 << 16) + 64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t seed;
	size_t elen = 0, n;

	if (size < 1 || size > 1 << 13)
		return 0;
	seed = data[0] | 0x100;
	decode(data + 1, size - 1, 0, &one);
	decode(data + 1, size - 1, seed, &pieces);
	if (one.error != pieces.error || one.ends != pieces.ends || one.len != pieces.len ||
	    memcmp(one.body, pieces.body, one.len))
		abort();

	/* Up to 8 bytes of framing per input byte: 1-byte chunks. */
	for (size_t off = 1, enc; off < size; off += n) {
		n = 1 + next(&seed) % 300;
		if (n > size - off)
			n = size - off;
		if (ag_http_chunk_encode(data + off, n, (char *)encoded + elen,
					 sizeof(encoded) - elen, &enc))
			abort();
		elen += enc;
	}
	memcpy(encoded + elen, AG_HTTP_CHUNK_LAST, 5);
	decode(encoded, elen + 5, 0, &one);
	if (one.error || one.ends != 1 || one.len != size - 1 ||
	    memcmp(one.body, data + 1, size - 1))
		abort();
	return 0;
}
