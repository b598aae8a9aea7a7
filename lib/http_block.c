// SPDX-License-Identifier: GPL-2.0
/*
 * The HTTP parser's head block (see http_int.h), with its field array in
 * one allocation: a parser per message costs one malloc, or none when a
 * spare block waits.  Spare blocks are per thread (the daemon's loop is
 * one): a parser per request and one per upstream response take the block
 * of the last one released instead of a malloc and a free of 35 KiB.
 * Only blocks of the default limits' size are kept, at most AG_SPARES_MAX,
 * until ag_http_spares_drain.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "http_int.h"
#include "spares.h"

/* Where the field array starts after the head block. */
#define HEADERS_ALIGN _Alignof(struct ag_http_header)

static __thread struct ag_spares spare_blocks;

/* A block's bytes with its field array after it (at *fields); 0: they overflow. */
static size_t block_size(const struct ag_http_limits *lim, size_t *fields)
{
	size_t align = (lim->max_head + HEADERS_ALIGN - 1) / HEADERS_ALIGN * HEADERS_ALIGN;

	if (align < lim->max_head ||
	    lim->max_fields > (SIZE_MAX - align) / sizeof(struct ag_http_header))
		return 0;
	*fields = align;
	return align + lim->max_fields * sizeof(struct ag_http_header);
}

static bool block_spare(size_t size)
{
	if (!spare_blocks.size) {
		size_t fields;

		spare_blocks.size = block_size(&ag_http_default_limits, &fields);
	}
	return size == spare_blocks.size;
}

int http_block_get(const struct ag_http_limits *lim, char **block, size_t *fields)
{
	size_t size = block_size(lim, fields);

	if (!size)
		return -E2BIG;
	*block = block_spare(size) ? ag_spares_get(&spare_blocks) : malloc(size);
	return *block ? 0 : -ENOMEM;
}

void http_block_put(const struct ag_http_limits *lim, char *block)
{
	size_t fields;

	if (block_spare(block_size(lim, &fields)))
		ag_spares_put(&spare_blocks, block);
	else
		free(block);
}

void ag_http_spares_drain(void)
{
	ag_spares_drain(&spare_blocks);
}
