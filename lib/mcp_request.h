/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What an agent may send a governed tool server over HTTP, and the request
 * the gateway sends in its place: what the gateway decided on is exactly
 * what it sends.
 *
 * The agent's request is read once, strictly, and never forwarded as it
 * came.  The upstream gets a request the gateway wrote: the method MCP
 * defines, the target of the configured endpoint (or the one the server
 * announced for a legacy session), the fields of an allow-list, each at
 * most once, and a body re-serialised from the parsed JSON-RPC as UTF-8
 * "application/json".  Nothing the gateway did not read can reach the
 * upstream, so no second parser there sees a different request: not a
 * declared charset, not a content coding, not a duplicate field, not
 * another path on the same origin.
 */
#ifndef AG_MCP_REQUEST_H
#define AG_MCP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "http.h"
#include "util.h"

/* The requests MCP's HTTP transports define on an endpoint. */
enum ag_mcp_verb {
	AG_MCP_VERB_NONE,   /* anything else: 405 */
	AG_MCP_VERB_POST,   /* JSON-RPC messages */
	AG_MCP_VERB_GET,    /* the server's SSE stream (either transport) */
	AG_MCP_VERB_DELETE, /* the end of a Streamable HTTP session */
	/* An HTTP service's request (daemon/http_svc.c): the agent's method,
	 * one of ag_http_method_of's, decided by route. */
	AG_MCP_VERB_HTTP,
};

/* The methods an HTTP service's routes take ("GET", "POST", "PUT",
 * "PATCH", "DELETE"): m's method as one of them, or NULL. */
const char *ag_http_method_of(const struct ag_http_msg *m);

enum ag_mcp_verb ag_mcp_verb_of(const struct ag_http_msg *m);
const char *ag_mcp_verb_name(enum ag_mcp_verb v);

/* An origin-form request-target ("/path?query"), split at the first '?'. */
struct ag_target {
	const char *path;
	size_t path_len;
	const char *query; /* after '?'; NULL when there is none */
	size_t query_len;
};

/* -EINVAL for absolute-form, authority-form, "*" and fragments. */
int ag_target_split(const char *t, size_t len, struct ag_target *out, struct ag_err *err);

/*
 * Percent-decodes s (and '+' as a space when plus_space, as form-encoded
 * queries are read) into out, NUL-terminated.  -EINVAL for a malformed
 * escape or a decoded NUL, -ENOSPC when out is short.
 */
int ag_pct_decode(const char *s, size_t len, bool plus_space, char *out, size_t cap,
		  size_t *out_len);

/*
 * The value of a query whose only parameter is `name`, decoded as servers
 * decode queries.  Whatever else could be read two ways is refused
 * (-EINVAL): another parameter (a decoy before the real one), the name
 * twice, an encoded name, brackets ("name[]=": an array to some parsers).
 */
int ag_query_only_param(const char *q, size_t len, const char *name, char *out, size_t cap,
			struct ag_err *err);

/*
 * A POST body the gateway reads the way the upstream will: "application/
 * json", with at most "charset=utf-8", and no Content-Encoding.  -EPROTO
 * (answered with 415) naming what is refused.
 */
int ag_mcp_body_type_check(const struct ag_http_msg *m, struct ag_err *err);

/* The agent's fields that reach the upstream; each at most once (-EINVAL). */
extern const char *const ag_mcp_forward_fields[];
int ag_mcp_fields_check(const struct ag_http_msg *m, struct ag_err *err);

/* The request the gateway sends upstream. */
struct ag_mcp_forward {
	enum ag_mcp_verb verb;
	const char *target;		   /* origin-form, the gateway's */
	const char *authority;		   /* Host */
	const struct ag_http_header *cred; /* the gateway's credential, or NULL */
	size_t body_len;		   /* POST, HTTP: the canonical body's length */
};

/* Writes the head (ag_http_serialize_head's errors). */
int ag_mcp_forward_head(const struct ag_http_msg *m, const struct ag_mcp_forward *f, char *buf,
			size_t cap, size_t *out_len, struct ag_err *err);

/*
 * The canonical body: the forwarded messages, an array when the agent sent
 * a batch, else the one object; compact, UTF-8, each object's members in
 * the order they came (ag_json_compact).  NULL when out of memory.
 */
char *ag_mcp_body_dump(json_t *kept, bool batch, size_t *len);

#endif
