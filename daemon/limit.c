// SPDX-License-Identifier: GPL-2.0
#include "limit.h"
#include "util.h"

bool ag_limit_allow(struct ag_limiter *lim, uint64_t key, uint64_t *suppressed)
{
	struct ag_limit_slot *b = &lim->slots[(key * 0x9E3779B97F4A7C15ull) >> 56];
	uint64_t now = ag_now_ns(), refill;

	if (b->key != key) {
		b->key = key;
		b->tokens = LIMIT_BURST;
		b->refill_ns = now;
	}
	refill = (now - b->refill_ns) / (1000000000ull / LIMIT_RATE);
	if (refill) {
		b->tokens =
		    refill >= LIMIT_BURST - b->tokens ? LIMIT_BURST : b->tokens + (uint32_t)refill;
		b->refill_ns = now;
	}
	if (!b->tokens) {
		b->suppressed++;
		return false;
	}
	b->tokens--;
	*suppressed = b->suppressed;
	b->suppressed = 0;
	return true;
}
