// SPDX-License-Identifier: GPL-2.0
/*
 * Fuzz the canonical form of a tool definition (lib/toolhash.h): every
 * tools/list answer from an upstream goes through it before the tool
 * inventory compares hashes, so a tool server controls the input.  Beyond
 * memory safety: the canonical text parses back as JSON, is a fixed point
 * (canonicalising it again gives the same bytes, so key order and spacing
 * can never count as a change), and the hash agrees with it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "toolhash.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char hex[AG_TOOLHASH_HEX_LEN + 1], hex2[AG_TOOLHASH_HEX_LEN + 1];
	json_t *tool = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	char *text = NULL, *again = NULL;
	size_t len, len2;
	struct ag_err err;
	json_t *back;

	if (!tool)
		return 0;
	if (ag_tool_canonical(tool, &text, &len, &err)) {
		/* Refusals must be refusals every time. */
		if (!ag_tool_hash(tool, hex, &err))
			abort();
		json_decref(tool);
		return 0;
	}
	if (strlen(text) != len || ag_tool_hash(tool, hex, &err))
		abort();
	back = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
	if (!back)
		abort();
	/* The canonical object holds only defining fields: it canonicalises to itself. */
	if (json_is_object(back)) {
		if (ag_tool_canonical(back, &again, &len2, &err) || len2 != len ||
		    memcmp(again, text, len) || ag_tool_hash(back, hex2, &err) ||
		    strcmp(hex, hex2))
			abort();
	}
	free(again);
	free(text);
	json_decref(back);
	json_decref(tool);
	return 0;
}
