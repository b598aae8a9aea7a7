// SPDX-License-Identifier: GPL-2.0
/* Growable memory (buf.h). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

int ag_grow(void *pp, size_t *cap, size_t need, size_t size, size_t first, size_t limit)
{
	size_t ncap = *cap ? *cap : (first ? first : 1);
	void *p;

	if (!size)
		return -EINVAL;
	if (!limit || limit > SIZE_MAX / size)
		limit = SIZE_MAX / size;
	/* Fail closed: nothing beyond the limit, nothing that overflows. */
	if (need > limit)
		return -E2BIG;
	if (need <= *cap)
		return 0;
	while (ncap < need)
		ncap = ncap > limit / 2 ? limit : ncap * 2;
	if (ncap > limit)
		ncap = limit;
	/* *(void **)pp is read and written by memcpy: pp may point at any T *. */
	memcpy(&p, pp, sizeof(p));
	p = realloc(p, ncap * size);
	if (!p)
		return -ENOMEM;
	memcpy(pp, &p, sizeof(p));
	*cap = ncap;
	return 0;
}

int ag_buf_reserve(struct ag_buf *b, size_t more, size_t limit)
{
	/* Fail closed: len + more + 1 must not wrap. */
	if (more > SIZE_MAX - 1 - b->len)
		return -E2BIG;
	return ag_grow(&b->p, &b->cap, b->len + more + 1, 1, 256, limit);
}

int ag_buf_put(struct ag_buf *b, const void *data, size_t n, size_t limit)
{
	int ret = ag_buf_reserve(b, n, limit);

	if (ret)
		return ret;
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

void ag_buf_free(struct ag_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}
