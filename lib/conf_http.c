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

static int parse_route(struct parse *p, const char *at, json_t *e, struct ag_http_svc_conf *h,
		       int i)
{
	static const char *const methods[] = { "GET", "POST", "PUT", "PATCH", "DELETE", NULL };
	struct ag_http_route_conf *r = &h->routes[i];
	char where[400];
	const char *v;
	struct ag_err err;
	int ret;

	if ((ret = conf_check_keys(p, at, e, conf_http_route_keys)))
		return ret;
	snprintf(where, sizeof(where), "%s.name", at);
	if ((ret = conf_get_name(p, where, json_object_get(e, "name"), &v)))
		return ret;
	for (int j = 0; j < i; j++)
		if (!strcmp(h->routes[j].name, v))
			return conf_badf(p, where, "duplicate route name \"%s\"", v);
	strcpy(r->name, v);
	snprintf(where, sizeof(where), "%s.method", at);
	if ((ret = conf_get_string(p, where, json_object_get(e, "method"), &v)))
		return ret;
	for (const char *const *m = methods; *m && !r->method[0]; m++)
		if (!strcmp(*m, v))
			strcpy(r->method, v);
	if (!r->method[0])
		return conf_badf(
		    p, where,
		    "\"%s\": expected \"GET\", \"POST\", \"PUT\", \"PATCH\" or \"DELETE\"", v);
	snprintf(where, sizeof(where), "%s.path", at);
	if ((ret = conf_get_string(p, where, json_object_get(e, "path"), &v)))
		return ret;
	if (strlen(v) >= sizeof(r->path))
		return conf_badf(p, where, "longer than %zu bytes", sizeof(r->path) - 1);
	if (ag_route_pattern_check(v, &err))
		return conf_badf(p, where, "\"%s\": %s", v, err.msg);
	strcpy(r->path, v);
	return 0;
}

static int parse_routes(struct parse *p, const char *at, json_t *v, struct ag_http_svc_conf *h)
{
	char where[340];
	size_t i, n;
	json_t *e;
	int ret;

	if (!(h->routes = conf_get_array(p, at, v, sizeof(*h->routes), &n, &ret)))
		return ret;
	if (n > AG_HTTP_MAX_ROUTES)
		return conf_badf(p, at, "too many routes (at most %d)", AG_HTTP_MAX_ROUTES);
	json_array_foreach(v, i, e)
	{
		snprintf(where, sizeof(where), "%s[%zu]", at, i);
		if ((ret = parse_route(p, where, e, h, (int)i)))
			return ret;
		h->nr_routes++;
	}
	return 0;
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
	if (!json_object_get(e, "routes"))
		return conf_bad(p, where, "required: the routes requests are decided by");
	if ((ret = parse_routes(p, where, json_object_get(e, "routes"), h)))
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
