/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The HTTP parser, private: its head block (http_block.c) as the parser
 * (http.c) takes and gives it back.
 */
#ifndef AG_HTTP_INT_H
#define AG_HTTP_INT_H

#include <stddef.h>

#include "http.h"

/*
 * A head block for limits lim: lim->max_head bytes, then the field array
 * (lim->max_fields of them) at *fields, in one allocation, not zeroed.
 * -E2BIG when the size does not fit a size_t, -ENOMEM.
 */
int http_block_get(const struct ag_http_limits *lim, char **block, size_t *fields);
/* Gives a block from http_block_get for the same lim back (NULL: no-op). */
void http_block_put(const struct ag_http_limits *lim, char *block);

#endif
