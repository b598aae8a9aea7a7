// SPDX-License-Identifier: GPL-2.0
/*
 * Differential fuzzing of the response envelope scanner (lib/jsonrpc_scan.h)
 * against jansson, the gateway's reading of a body: every body the scanner
 * accepts, json_loadb(JSON_REJECT_DUPLICATES) accepts too (so a body
 * jansson refuses is never passed on unread), and the two agree on the
 * batch, each message's kind, id, error, result and result.isError, and
 * on the string values of each result (ag_jsonrpc_scan_strings, as a
 * multiset: count, bytes and an order-free sum of their hashes).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "jsonrpc_scan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_id(const struct ag_scan_msg *m, json_t *id)
{
	switch (m->id_type) {
	case AG_SCAN_ID_NONE:
		if (id)
			abort();
		break;
	case AG_SCAN_ID_INT:
		if (!json_is_integer(id) || json_integer_value(id) != m->id_int)
			abort();
		break;
	case AG_SCAN_ID_STRING:
		if (!json_is_string(id) || json_string_length(id) != m->id_len ||
		    memcmp(json_string_value(id), m->id_str, m->id_len))
			abort();
		break;
	case AG_SCAN_ID_OTHER:
		if (!id || json_is_integer(id) || json_is_string(id))
			abort();
		break;
	}
}

struct strings {
	size_t n, bytes;
	uint64_t hash_sum;
};

static uint64_t fnv(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return h;
}

static void add(struct strings *st, const char *s, size_t len)
{
	st->n++;
	st->bytes += len;
	st->hash_sum += fnv(s, len);
}

static int add_scanned(void *arg, const char *s, size_t len)
{
	add(arg, s, len);
	return 0;
}

static void add_tree(struct strings *st, json_t *v)
{
	const char *key;
	json_t *child;
	size_t i;

	if (json_is_string(v))
		add(st, json_string_value(v), json_string_length(v));
	json_array_foreach(v, i, child) add_tree(st, child);
	json_object_foreach(v, key, child) add_tree(st, child);
}

static void check_strings(const struct ag_scan_msg *m, json_t *result)
{
	struct strings scanned = { 0 }, tree = { 0 };

	if (!m->has_result)
		return;
	if (ag_jsonrpc_scan_strings(m->result, m->result_len, add_scanned, &scanned))
		abort();
	add_tree(&tree, result);
	if (memcmp(&scanned, &tree, sizeof(tree)))
		abort();
}

static void check_msg(const struct ag_scan_msg *m, json_t *msg)
{
	json_t *result = json_object_get(msg, "result");

	if (!json_is_object(msg)) {
		if (m->kind != AG_SCAN_OTHER)
			abort();
		return;
	}
	if (m->kind != (json_object_get(msg, "method") ? AG_SCAN_METHOD : AG_SCAN_REPLY))
		abort();
	check_id(m, json_object_get(msg, "id"));
	if (m->has_error != !!json_object_get(msg, "error") || m->has_result != !!result ||
	    m->result_object != json_is_object(result) ||
	    m->result_tools != json_is_array(json_object_get(result, "tools")) ||
	    m->result_is_error != json_is_true(json_object_get(result, "isError")))
		abort();
	check_strings(m, result);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	struct ag_scan s;

	if (ag_jsonrpc_scan(data, size, &s)) {
		json_decref(root);
		return 0;
	}
	/* Accepted by the scanner: jansson reads it, and the same way. */
	if (!root || s.batch != json_is_array(root) ||
	    s.nr != (s.batch ? json_array_size(root) : 1))
		abort();
	for (size_t i = 0; i < s.nr; i++)
		check_msg(&s.msg[i], s.batch ? json_array_get(root, i) : root);
	json_decref(root);
	return 0;
}
