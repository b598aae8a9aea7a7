/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Tool integrity: a canonical form and SHA-256 of an MCP tool definition, so
 * that a server which changes a tool after the agent approved it (a "rug
 * pull") is noticed when the next tools/list arrives.
 *
 * Only the fields that define the tool are hashed: name, title,
 * description, inputSchema, outputSchema, annotations.  Everything else
 * (_meta, icons, vendor extensions) is ignored, so servers may vary it.
 *
 * Serialisation follows RFC 8785 (JCS): keys sorted by UTF-16 code units
 * (general rule, not only ASCII), no whitespace, minimal string escaping
 * (\" \\ \b \f \n \r \t, other controls as \u00xx), raw UTF-8 otherwise.
 * Integers print in decimal; a real with an integral value below 2^53
 * prints as that integer (1.0 == 1, as in JCS); other reals print as the
 * shortest "%.*g" that round-trips, which may differ from ECMAScript's
 * exponent spelling (1e+21 vs 1e21) -- stable, but not byte-for-byte JCS.
 * Arrays keep their order: reordering "required" or "enum" is a change.
 * Nesting deeper than AG_TOOLHASH_MAX_DEPTH is rejected (E2BIG).
 */
#ifndef AG_TOOLHASH_H
#define AG_TOOLHASH_H

#include <stddef.h>

#include <jansson.h>

#include "util.h"

#define AG_TOOLHASH_HEX_LEN 64
#define AG_TOOLHASH_MAX_DEPTH 64

/* The canonical text of tool's defining fields; *out is malloc'd, NUL-terminated. */
int ag_tool_canonical(const json_t *tool, char **out, size_t *len, struct ag_err *err);
/* hex receives the lowercase SHA-256 of the canonical text. */
int ag_tool_hash(const json_t *tool, char hex[AG_TOOLHASH_HEX_LEN + 1], struct ag_err *err);

#endif
