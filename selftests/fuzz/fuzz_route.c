// SPDX-License-Identifier: GPL-2.0
/*
 * The canonical form of HTTP services' requests (lib/http_route.h).  The
 * input is a request-target.  When the gateway accepts it, the target it
 * forwards must read the same way again: matched a second time it gives
 * the same route, parameters, query and target (what the upstream is sent
 * is what was decided), and it must hold nothing a server could read in
 * another way: no dot segment, no "//", no ';', no encoded separator.  The
 * harness aborts otherwise.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ag_http_route_conf routes[] = {
	{ "get", "GET", "/todos/{id}" },
	{ "sub", "GET", "/Users/{u}/items/{n}" },
	{ "list", "GET", "/todos" },
	{ "root", "GET", "/" },
};
static const struct ag_http_svc_conf svc = { .routes = routes, .nr_routes = 4 };

/* What a server must not find in a forwarded path. */
static bool ambiguous(const char *path)
{
	return strstr(path, "//") || strstr(path, "/./") || strstr(path, "/../") ||
	       strchr(path, ';') || strchr(path, '\\') || strstr(path, "%2F") ||
	       strstr(path, "%2f") || strstr(path, "%5C") || strstr(path, "%2E") ||
	       (strlen(path) >= 2 && !strcmp(path + strlen(path) - 2, "/.")) ||
	       (strlen(path) >= 3 && !strcmp(path + strlen(path) - 3, "/.."));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ag_route_req a, b;
	struct ag_err err;

	if (ag_route_match(&svc, "GET", (const char *)data, size, &a, &err))
		return 0;
	if (ambiguous(a.path))
		abort();
	if (ag_route_match(&svc, "GET", a.target, strlen(a.target), &b, &err))
		abort(); /* the forwarded form is refused when read again */
	if (a.route != b.route || strcmp(a.target, b.target) || strcmp(a.path, b.path) ||
	    !json_equal(a.params, b.params) || !json_equal(a.query, b.query))
		abort();
	ag_route_req_free(&a);
	ag_route_req_free(&b);
	return 0;
}
