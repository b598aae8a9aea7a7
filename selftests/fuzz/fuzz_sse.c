// SPDX-License-Identifier: GPL-2.0
/*
 * Fuzz the SSE parser.  Input: two seed bytes, then the stream.  Parsed in
 * one piece and in random pieces, the events (type, id, data) and the
 * verdict must be the same; each event's data goes through the JSON-RPC
 * body parser, as the gateway does with tools/list results on the fly.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsonrpc.h"
#include "sse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_EVENT 512

struct run {
	uint64_t hash;
	unsigned int events;
	int error;
};

static void mix(struct run *r, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		r->hash = (r->hash ^ b[i]) * 0x100000001b3ull;
	r->hash = (r->hash ^ 0x100) * 0x100000001b3ull; /* field separator */
}

static void run(const uint8_t *in, size_t len, uint32_t seed, bool json, struct run *r)
{
	struct ag_sse_parser p;
	struct ag_sse_event ev;

	memset(r, 0, sizeof(*r));
	r->hash = 0xcbf29ce484222325ull;
	if (ag_sse_parser_init(&p, MAX_EVENT, NULL))
		abort();
	for (size_t off = 0, n; off < len && !r->error; off += n) {
		size_t done = 0;

		n = len - off;
		if (seed) {
			seed = seed * 1103515245u + 12345u;
			n = 1 + (seed >> 16) % 13;
			if (n > len - off)
				n = len - off;
		}
		do {
			ssize_t got = ag_sse_parse(&p, in + off + done, n - done, &ev);

			if (got < 0) {
				r->error = (int)got;
				break;
			}
			done += got;
			if (ev.type != AG_SSE_EV_EVENT)
				continue;
			if (ev.data_len >= MAX_EVENT || ev.event_len > AG_SSE_MAX_TYPE ||
			    ev.id_len > AG_SSE_MAX_ID)
				abort();
			r->events++;
			mix(r, ev.event, ev.event_len);
			mix(r, ev.id, ev.id_len);
			mix(r, ev.data, ev.data_len);
			if (json) {
				struct ag_jsonrpc_body b;

				ag_jsonrpc_parse(ev.data, ev.data_len, NULL, &b, NULL);
				ag_jsonrpc_body_free(&b);
			}
		} while (ev.type != AG_SSE_EV_NEED_MORE);
	}
	mix(r, &p.has_retry, sizeof(p.has_retry));
	mix(r, &p.retry_ms, sizeof(p.retry_ms));
	ag_sse_parser_release(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run one, pieces;

	if (size < 2)
		return 0;
	run(data + 2, size - 2, 0, true, &one);
	run(data + 2, size - 2, (data[0] << 8 | data[1]) | 1, false, &pieces);
	if (one.hash != pieces.hash || one.events != pieces.events || one.error != pieces.error)
		abort();
	return 0;
}
