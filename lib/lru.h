/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A small LRU order over a fixed array of cap slots, by index: the caller
 * keeps the entries (and whatever index finds them by key); this keeps
 * which slot was used least recently.  No allocation: the links are an
 * array of the caller's, cap of them.
 *
 *	slot: never used --ag_lru_take--> newest --ag_lru_touch--> newest ...
 *	      --(cap others taken or touched since)--> oldest
 *	      --ag_lru_take (all slots used)--> reused, newest
 *
 * Ordering hazard: ag_lru_take() reports a reused slot; the caller must
 * drop the old entry from its own index before it stores the new one.
 */
#ifndef AG_LRU_H
#define AG_LRU_H

#include <stdbool.h>
#include <stdint.h>

#define AG_LRU_NIL UINT32_MAX

struct ag_lru_link {
	uint32_t newer, older; /* AG_LRU_NIL at the ends */
};

struct ag_lru {
	struct ag_lru_link *link; /* cap of them, the caller's */
	uint32_t cap;
	uint32_t used; /* slots handed out so far: 0..used-1 */
	uint32_t newest, oldest;
};

/* An empty order over link[0..cap-1]; 1 <= cap < AG_LRU_NIL. */
void ag_lru_init(struct ag_lru *l, struct ag_lru_link *link, uint32_t cap);
/* Makes slot i (one handed out) the most recently used. */
void ag_lru_touch(struct ag_lru *l, uint32_t i);
/*
 * A slot for a new entry, made the most recent: a never used one while
 * there is one (*reused false), else the least recently used (*reused true).
 */
uint32_t ag_lru_take(struct ag_lru *l, bool *reused);

#endif
