/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What an agent (or an anonymous peer) makes the daemon write is bounded:
 * per key, a bucket of LIMIT_BURST records refilled at LIMIT_RATE per
 * second.  What is held back is counted and handed to the next record that
 * gets through, so floods are summarised, never silently lost.  Keys share
 * a slot when they collide: memory stays fixed whatever agents do.
 */
#ifndef AG_DAEMON_LIMIT_H
#define AG_DAEMON_LIMIT_H

#include <stdbool.h>
#include <stdint.h>

#define LIMIT_SLOTS 256
#define LIMIT_RATE 20
#define LIMIT_BURST 100

struct ag_limit_slot {
	uint64_t key;
	uint64_t refill_ns;
	uint32_t tokens;
	uint64_t suppressed;
};

struct ag_limiter {
	struct ag_limit_slot slots[LIMIT_SLOTS];
};

/* Whether key may write now; *suppressed: records held back since its last. */
bool ag_limit_allow(struct ag_limiter *lim, uint64_t key, uint64_t *suppressed);

#endif
