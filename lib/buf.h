/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Growable memory: the one place that doubles a capacity, with every size
 * computation checked for overflow.  ag_grow() grows an array of any
 * element; struct ag_buf is a byte buffer that always keeps room for a NUL.
 */
#ifndef AG_BUF_H
#define AG_BUF_H

#include <stddef.h>

/*
 * Room for need elements of size bytes at *(T **)pp, whose capacity is
 * *cap elements: doubles from first (when *cap is 0) until need fits, but
 * never beyond limit elements (0: as far as size_t goes).  On failure *pp
 * and *cap are unchanged: -E2BIG when need is beyond limit or the byte
 * count overflows, -ENOMEM when realloc fails.
 */
int ag_grow(void *pp, size_t *cap, size_t need, size_t size, size_t first, size_t limit);

struct ag_buf {
	char *p;
	size_t len, cap; /* len < cap once anything is reserved: room for a NUL */
};

/*
 * Room for more bytes after len and a NUL after those, in at most limit
 * bytes of capacity (0: no limit); -E2BIG or -ENOMEM as ag_grow().
 */
int ag_buf_reserve(struct ag_buf *b, size_t more, size_t limit);
/* Appends n bytes and keeps the buffer NUL-terminated. */
int ag_buf_put(struct ag_buf *b, const void *data, size_t n, size_t limit);
/* Frees the memory; b is empty and reusable. */
void ag_buf_free(struct ag_buf *b);

#endif
