/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The JSON-RPC envelope of a response body, found without building a tree:
 * per message its kind, its id and result.isError, what the gateway reads
 * of a response that no filter or output rule applies to.
 *
 * The scanner accepts a subset of what json_loadb(JSON_REJECT_DUPLICATES)
 * accepts, and on everything it accepts agrees with it (selftests/fuzz/
 * fuzz_jsonrpc_scan.c checks both): one array or object, strict UTF-8, no
 * control characters, escapes as jansson decodes them (no \u0000, paired
 * surrogates), no duplicate key at any depth, numbers jansson reads
 * without overflow, nothing after the value but whitespace.  What it does
 * not take on it refuses rather than guesses: keys with escapes, ids with
 * escapes, long integers, deep nesting, objects with many keys, batches
 * over AG_JSONRPC_SCAN_MAX.  A refusal therefore means "ask jansson", never
 * "invalid"; the bytes of a body it accepts are the one reading jansson
 * would give them.
 */
#ifndef AG_JSONRPC_SCAN_H
#define AG_JSONRPC_SCAN_H

#include <stdbool.h>
#include <stddef.h>

#define AG_JSONRPC_SCAN_MAX 16

enum ag_scan_kind {
	AG_SCAN_OTHER,	/* not an object */
	AG_SCAN_METHOD, /* has "method": a request or notification */
	AG_SCAN_REPLY,	/* an object without "method" */
};

enum ag_scan_id {
	AG_SCAN_ID_NONE, /* no "id" member */
	AG_SCAN_ID_INT,
	AG_SCAN_ID_STRING,
	AG_SCAN_ID_OTHER, /* null, a real, a boolean, an array or object */
};

struct ag_scan_msg {
	enum ag_scan_kind kind;
	enum ag_scan_id id_type;
	long long id_int;
	const char *id_str; /* AG_SCAN_ID_STRING: into the body, no escapes, no NUL */
	size_t id_len;
	bool has_error;	      /* an "error" member, of any type */
	bool has_result;      /* a "result" member, of any type */
	bool result_object;   /* "result" is an object */
	bool result_tools;    /* ... with a "tools" member that is an array */
	bool result_is_error; /* ... with "isError": true */
	const char *result;   /* the bytes of the "result" value, in the body */
	size_t result_len;
};

struct ag_scan {
	bool batch; /* the body is an array */
	size_t nr;
	struct ag_scan_msg msg[AG_JSONRPC_SCAN_MAX];
};

/* 0 with *s filled, or -EINVAL: not accepted (see above), ask jansson. */
int ag_jsonrpc_scan(const void *data, size_t len, struct ag_scan *s);

/*
 * Calls fn with every string value (never a key) of a JSON value the
 * scanner accepted, such as a message's result, decoded as jansson
 * decodes it; stops at fn's first nonzero return and returns it.
 * -ENOMEM when a decoded copy could not be made.
 */
int ag_jsonrpc_scan_strings(const char *value, size_t len,
			    int (*fn)(void *arg, const char *s, size_t len), void *arg);

#endif
