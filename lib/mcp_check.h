/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Pure checks of an agent's request on the MCP path: they take values (a
 * header's bytes, the tool server's names, the address the agent dialled),
 * never a connection, so they are unit-tested (selftests/test_mcp_check.c)
 * apart from the daemon.  Every one answers "refuse" to what it cannot read.
 */
#ifndef AG_MCP_CHECK_H
#define AG_MCP_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "http.h"
#include "jsonrpc.h"

/* What a request may name as its authority: the tool server's configured
 * names and the address and port the agent connected to. */
struct ag_mcp_authority {
	char (*hosts)[AG_HOST_LEN]; /* lower case, exact or "*.suffix" */
	int nr_hosts;
	const uint8_t *addr; /* 16 bytes, v4-mapped for v4 */
	uint16_t port;	     /* host order */
};

/* pat ("name" or "*.suffix") names host (len bytes, no dot at the end). */
bool ag_mcp_host_matches(const char *pat, const char *host, size_t len);
/*
 * DNS-rebinding protection: a Host (host[:port], [v6][:port]) that names
 * the tool server by one of its names or by the address the agent dialled
 * ("localhost" for a loopback one), with that port if any.
 */
bool ag_mcp_authority_ok(const struct ag_mcp_authority *w, const char *s, size_t len);
/* An Origin (scheme://authority[/...]) whose authority passes the above. */
bool ag_mcp_origin_ok(const struct ag_mcp_authority *w, const char *v, size_t len);
/* No two messages of a body share an id: their answers could not be told apart. */
bool ag_mcp_ids_unique(const struct ag_jsonrpc_body *b);
/* Content-Type is type, with parameters or not (case-insensitive). */
bool ag_mcp_content_type_is(const struct ag_http_msg *m, const char *type);

#endif
