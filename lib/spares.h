/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Spare buffers: a bounded free list of buffers of one size, so that a
 * busy path takes the buffer the last request gave back instead of a
 * malloc and a free of a large block per request.  Bounded (at most
 * AG_SPARES_MAX kept; one more given back is freed), owned by one thread,
 * and emptied by its owner when it has no use for them (ag_spares_drain).
 *
 *	buffer: ag_spares_get --> in use --ag_spares_put--> kept (nr < MAX)
 *	        or freed (full); kept --ag_spares_get--> in use (the newest
 *	        first) or --ag_spares_drain--> freed
 *
 * A buffer comes back with the bytes of its last use: the caller reads
 * only what it wrote, and wipes a secret before it puts the buffer back.
 */
#ifndef AG_SPARES_H
#define AG_SPARES_H

#include <stddef.h>

#define AG_SPARES_MAX 8

struct ag_spares {
	size_t size; /* of every buffer, set once */
	unsigned int nr;
	void *buf[AG_SPARES_MAX];
};

/* A buffer of sp->size bytes, uninitialised: a spare one, else malloc's (NULL: out of memory). */
void *ag_spares_get(struct ag_spares *sp);
/* Gives a buffer from ag_spares_get back: kept while there is room, else freed (NULL: no-op). */
void ag_spares_put(struct ag_spares *sp, void *buf);
/* Frees every kept buffer. */
void ag_spares_drain(struct ag_spares *sp);

#endif
