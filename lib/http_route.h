/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The request of an HTTP service (agentgate.conf(5) "http_services") in
 * its one canonical form: what policies decide on is what the upstream
 * gets.  A request-target is read once, strictly; whatever two servers
 * could read two ways is refused, never guessed at:
 *
 *  - each path segment is percent-decoded once; a decoded '/', '\\', NUL
 *    or control byte, a segment "." or ".." (encoded or not), an empty
 *    segment ("//") and ';' (path parameters) are refused; one trailing
 *    '/' is dropped;
 *  - a route's literal segments match without regard to ASCII case and
 *    are forwarded as the route spells them; other segments are forwarded
 *    re-encoded: unreserved bytes as they are, every other byte %XX;
 *  - the query is '&'-separated "key=value" pairs, '+' a space; ';', a
 *    key given twice, an empty key and brackets ("a[b]=", an object to
 *    some parsers) are refused; it is forwarded re-encoded, in order.
 */
#ifndef AG_HTTP_ROUTE_H
#define AG_HTTP_ROUTE_H

#include <stddef.h>

#include <jansson.h>

#include "config.h"
#include "util.h"

#define AG_ROUTE_MAX_SEGS 32
#define AG_ROUTE_MAX_QUERY 32
#define AG_ROUTE_SEG_MAX 256 /* a decoded segment, key or value */

/* A route's path pattern as config check takes it; -EINVAL with err. */
int ag_route_pattern_check(const char *pat, struct ag_err *err);

/* One request, canonical: every member is the caller's to free (ag_route_req_free). */
struct ag_route_req {
	const struct ag_http_route_conf *route; /* NULL: no route matched */
	char *path;				/* canonical path, e.g. "/todos/7" */
	char *target;				/* path and canonical query: what is forwarded */
	json_t *params; /* {name: decoded segment} of the route's {params} */
	json_t *query;	/* {key: decoded value} */
};

/*
 * Reads the request-target t of a request with method against svc's
 * routes.  0 with out set (route NULL when none matched); -EINVAL with
 * err saying what was refused; -ENOMEM.
 */
int ag_route_match(const struct ag_http_svc_conf *svc, const char *method, const char *t,
		   size_t len, struct ag_route_req *out, struct ag_err *err);
void ag_route_req_free(struct ag_route_req *r);

#endif
