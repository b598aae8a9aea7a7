// SPDX-License-Identifier: GPL-2.0
/*
 * The configuration of HTTP services ("http_services", see lib/config.h):
 * a tool server's fields (conf_parse_server) plus the routes, the request
 * fields policies see and what becomes of a request no route matches.
 * Each is appended to c->servers after the tool servers, so matching a
 * connection, the upstream, its TLS and credential are the tool servers'.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_int.h"
#include "http.h"
#include "http_route.h"
#include "kern.h"

static const char *const methods[] = { "GET", "POST", "PUT", "PATCH", "DELETE", NULL };

/* One route appended to h, checked; where names it in errors. */
static int add_route(struct parse *p, const char *where, struct ag_http_svc_conf *h,
		     const char *name, const char *method, const char *path)
{
	const char *const *m = methods;
	struct ag_http_route_conf *r;
	struct ag_err err;

	if (h->nr_routes == AG_HTTP_MAX_ROUTES)
		return conf_badf(p, where, "too many routes (at most %d)", AG_HTTP_MAX_ROUTES);
	if (!ag_agent_name_valid(name))
		return conf_badf(p, where,
				 "\"%s\": expected a route name of 1-31 of [A-Za-z0-9_.-], not "
				 "starting with '.' or '-'",
				 name);
	for (int j = 0; j < h->nr_routes; j++)
		if (!strcmp(h->routes[j].name, name))
			return conf_badf(p, where, "duplicate route name \"%s\"", name);
	while (*m && strcmp(*m, method))
		m++;
	if (!*m)
		return conf_badf(
		    p, where,
		    "\"%s\": expected \"GET\", \"POST\", \"PUT\", \"PATCH\" or \"DELETE\"", method);
	if (strlen(path) >= sizeof(r->path))
		return conf_badf(p, where, "path longer than %zu bytes", sizeof(r->path) - 1);
	if (ag_route_pattern_check(path, &err))
		return conf_badf(p, where, "\"%s\": %s", path, err.msg);
	if (!(r = realloc(h->routes, (h->nr_routes + 1) * sizeof(*r))))
		return conf_nomem(p);
	h->routes = r;
	r += h->nr_routes++;
	snprintf(r->name, sizeof(r->name), "%s", name);
	snprintf(r->method, sizeof(r->method), "%s", method);
	snprintf(r->path, sizeof(r->path), "%s", path);
	return 0;
}

static int parse_routes(struct parse *p, const char *at, json_t *v, struct ag_http_svc_conf *h)
{
	const char *name, *method, *path;
	char where[340];
	size_t i;
	json_t *e;
	int ret;

	if (!json_is_array(v))
		return conf_bad(p, at, "expected an array");
	json_array_foreach(v, i, e)
	{
		snprintf(where, sizeof(where), "%s[%zu]", at, i);
		if ((ret = conf_check_keys(p, where, e, conf_http_route_keys)) ||
		    (ret = conf_get_string(p, where, json_object_get(e, "name"), &name)) ||
		    (ret = conf_get_string(p, where, json_object_get(e, "method"), &method)) ||
		    (ret = conf_get_string(p, where, json_object_get(e, "path"), &path)) ||
		    (ret = add_route(p, where, h, name, method, path)))
			return ret;
	}
	return 0;
}

/* The operations of one path item of an OpenAPI document, as routes. */
static int openapi_item(struct parse *p, const char *at, const char *path, json_t *item,
			struct ag_http_svc_conf *h)
{
	char where[400], lower[8];
	int ret;

	for (const char *const *m = methods; *m; m++) {
		json_t *op;
		size_t k;

		for (k = 0; (*m)[k]; k++)
			lower[k] = (char)((*m)[k] + 32);
		lower[k] = '\0';
		if (!(op = json_object_get(item, lower)))
			continue;
		snprintf(where, sizeof(where), "%s: paths[\"%.100s\"].%s.operationId", at, path,
			 lower);
		if (!json_is_string(json_object_get(op, "operationId")))
			return conf_bad(p, where, "required: it names the route");
		if ((ret = add_route(p, where, h,
				     json_string_value(json_object_get(op, "operationId")), *m,
				     path)))
			return ret;
	}
	return 0;
}

/*
 * "openapi": an OpenAPI 3 document in JSON (read when the file is loaded):
 * a route per operation of its paths, named by its operationId, after the
 * configured routes.
 */
static int parse_openapi(struct parse *p, const char *at, json_t *v, struct ag_http_svc_conf *h)
{
	char file[PATH_MAX], *text = NULL;
	const char *path;
	struct ag_err err;
	json_t *doc, *paths, *item;
	size_t len;
	int ret = 0;

	if ((ret = conf_path(p, at, v, file)))
		return ret;
	if (ag_read_file(file, 4 << 20, &text, &len, &err))
		return conf_badf(p, at, "%s", err.msg);
	doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	free(text);
	paths = json_object_get(doc, "paths");
	if (!json_is_string(json_object_get(doc, "openapi")) || !json_is_object(paths))
		ret = conf_badf(p, at, "\"%s\": expected an OpenAPI 3 document (JSON) with paths",
				file);
	json_object_foreach(paths, path, item)
	{
		if (ret || (ret = openapi_item(p, at, path, item, h)))
			break;
	}
	json_decref(doc);
	return ret;
}

static int parse_headers(struct parse *p, const char *at, json_t *v, struct ag_http_svc_conf *h)
{
	char where[340];
	size_t i, n;
	json_t *e;
	int ret;

	if (!(h->headers = conf_get_array(p, at, v, sizeof(*h->headers), &n, &ret)))
		return ret;
	if (n > AG_HTTP_MAX_HEADERS)
		return conf_badf(p, at, "too many fields (at most %d)", AG_HTTP_MAX_HEADERS);
	json_array_foreach(v, i, e)
	{
		const char *name;
		size_t len;

		snprintf(where, sizeof(where), "%s[%zu]", at, i);
		if ((ret = conf_get_string(p, where, e, &name)))
			return ret;
		len = strlen(name);
		for (size_t k = 0; k < len; k++)
			if (!ag_http_is_tchar((uint8_t)name[k]))
				len = 0;
		if (!len || len >= sizeof(h->headers[i]))
			return conf_badf(p, where, "\"%s\": expected a field name", name);
		/* Policies read them as the lower-case keys of context.headers. */
		for (size_t k = 0; k <= len; k++)
			h->headers[i][k] =
			    (char)(name[k] >= 'A' && name[k] <= 'Z' ? name[k] + 32 : name[k]);
		h->nr_headers++;
	}
	return 0;
}

static int parse_service(struct parse *p, const char *at, json_t *e, struct ag_http_svc_conf *h)
{
	char where[300];
	const char *v;
	int ret;

	snprintf(where, sizeof(where), "%s.routes", at);
	if (!json_object_get(e, "routes") && !json_object_get(e, "openapi"))
		return conf_bad(p, where,
				"required (or \"openapi\"): the routes requests are decided by");
	if (json_object_get(e, "routes") &&
	    (ret = parse_routes(p, where, json_object_get(e, "routes"), h)))
		return ret;
	snprintf(where, sizeof(where), "%s.openapi", at);
	if (json_object_get(e, "openapi") &&
	    (ret = parse_openapi(p, where, json_object_get(e, "openapi"), h)))
		return ret;
	snprintf(where, sizeof(where), "%s.context_headers", at);
	if (json_object_get(e, "context_headers") &&
	    (ret = parse_headers(p, where, json_object_get(e, "context_headers"), h)))
		return ret;
	snprintf(where, sizeof(where), "%s.unmatched", at);
	if (!json_object_get(e, "unmatched"))
		return 0;
	if ((ret = conf_get_string(p, where, json_object_get(e, "unmatched"), &v)))
		return ret;
	if (!strcmp(v, "policy"))
		h->unmatched_policy = true;
	else if (strcmp(v, "deny"))
		return conf_badf(p, where, "\"%s\": expected \"deny\" or \"policy\"", v);
	return 0;
}

int conf_parse_http(struct parse *p, json_t *arr, struct ag_conf *c)
{
	size_t i, n = json_array_size(arr);
	struct ag_server_conf *grown;
	char where[256];
	json_t *e;

	if (!json_is_array(arr))
		return conf_bad(p, "$.http_services", "expected an array");
	if (n > (size_t)(AG_MAX_CONF_SERVERS - c->nr_servers))
		return conf_badf(p, "$.http_services",
				 "too many tool servers and HTTP services (at most %d)",
				 AG_MAX_CONF_SERVERS);
	/* Nothing points into c->servers yet: it can move. */
	if (!(grown = realloc(c->servers, (c->nr_servers + n + 1) * sizeof(*grown))))
		return conf_nomem(p);
	c->servers = grown;
	memset(grown + c->nr_servers, 0, (n + 1) * sizeof(*grown));
	json_array_foreach(arr, i, e)
	{
		int k = c->nr_servers, ret;

		snprintf(where, sizeof(where), "$.http_services[%zu]", i);
		if ((ret = conf_check_keys(p, where, e, conf_http_service_keys)))
			return ret;
		c->nr_servers++;
		if (!(c->servers[k].http = calloc(1, sizeof(*c->servers[k].http))))
			return conf_nomem(p);
		if ((ret = conf_parse_server(p, where, e, c, k)))
			return ret;
		/* The upstream's path prefixes the agent's: a query would end up inside it. */
		if (strchr(c->servers[k].upstream_path, '?'))
			return conf_badf(p, where, "upstream: a service's URL takes no query");
		if ((ret = parse_service(p, where, e, c->servers[k].http)))
			return ret;
	}
	return 0;
}

void conf_http_free(struct ag_server_conf *s)
{
	if (!s->http)
		return;
	free(s->http->routes);
	free(s->http->headers);
	free(s->http);
	s->http = NULL;
}
