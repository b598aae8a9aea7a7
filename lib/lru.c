// SPDX-License-Identifier: GPL-2.0
/* A small LRU order over array slots (lru.h). */
#include "lru.h"

void ag_lru_init(struct ag_lru *l, struct ag_lru_link *link, uint32_t cap)
{
	l->link = link;
	l->cap = cap;
	l->used = 0;
	l->newest = l->oldest = AG_LRU_NIL;
}

static void unlink_slot(struct ag_lru *l, uint32_t i)
{
	struct ag_lru_link *c = &l->link[i];

	if (c->newer != AG_LRU_NIL)
		l->link[c->newer].older = c->older;
	else
		l->newest = c->older;
	if (c->older != AG_LRU_NIL)
		l->link[c->older].newer = c->newer;
	else
		l->oldest = c->newer;
}

static void push_newest(struct ag_lru *l, uint32_t i)
{
	struct ag_lru_link *c = &l->link[i];

	c->newer = AG_LRU_NIL;
	c->older = l->newest;
	if (l->newest != AG_LRU_NIL)
		l->link[l->newest].newer = i;
	else
		l->oldest = i;
	l->newest = i;
}

void ag_lru_touch(struct ag_lru *l, uint32_t i)
{
	if (l->newest == i)
		return;
	unlink_slot(l, i);
	push_newest(l, i);
}

uint32_t ag_lru_take(struct ag_lru *l, bool *reused)
{
	uint32_t i;

	*reused = l->used >= l->cap;
	if (*reused) {
		i = l->oldest;
		unlink_slot(l, i);
	} else {
		i = l->used++;
	}
	push_newest(l, i);
	return i;
}
