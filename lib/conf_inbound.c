// SPDX-License-Identifier: GPL-2.0
/*
 * "inbound" (struct ag_inbound_conf): agents from outside.  Plain values
 * only: the daemon loads the certificate and fetches the JWKS when it
 * starts, and refuses to start if it cannot.
 */
#include <string.h>

#include "conf_int.h"
#include "hostport.h"

#define WHERE "$.inbound"

static int parse_listen(struct parse *p, json_t *v, struct ag_inbound_conf *in, uint16_t port)
{
	struct ag_pass_conf pc;
	int ret;

	if (!json_is_string(v))
		return conf_bad(p, WHERE ".listen", "expected \"ADDRESS:PORT\"");
	if ((ret = conf_parse_pass_entry(p, WHERE ".listen", json_string_value(v), &pc)))
		return ret;
	if (pc.kind != AG_PASS_CIDR || pc.prefixlen != 128 || !pc.port)
		return conf_bad(p, WHERE ".listen",
				"expected \"ADDRESS:PORT\", e.g. \"0.0.0.0:8443\"");
	if (pc.port == port)
		return conf_bad(p, WHERE ".listen", "must not be the agents' listen.port");
	memcpy(in->addr, pc.addr, 16);
	in->port = pc.port;
	return 0;
}

/* An http(s) URL member, required (http only on a network the operator trusts). */
static int parse_url(struct parse *p, json_t *obj, const char *key, char *out, size_t cap,
		     char *target, size_t target_cap)
{
	char path[64], why[300];
	struct ag_url u;
	int ret;

	snprintf(path, sizeof(path), WHERE ".%s", key);
	if (!json_object_get(obj, key))
		return conf_badf(p, WHERE, "expected \"%s\": a URL", key);
	if ((ret = conf_get_optional(p, WHERE, obj, key, out, cap)))
		return ret;
	if (ag_url_parse(out, &u, why, sizeof(why)))
		return conf_badf(p, path, "%s", why);
	if (target && !ag_url_target(&u, target, target_cap))
		return conf_bad(p, path, "path too long");
	return 0;
}

/* "scopes": {"SCOPE": ["tool", "*"], ...} */
static int parse_scopes(struct parse *p, json_t *v, struct ag_inbound_conf *in)
{
	const char *scope;
	json_t *tools, *t;
	size_t i;

	if (!json_is_object(v))
		return conf_bad(p, WHERE ".scopes", "expected {\"SCOPE\": [\"TOOL\", ...]}");
	json_object_foreach(v, scope, tools)
	{
		if (!*scope || strlen(scope) >= AG_INBOUND_SCOPE_LEN || strpbrk(scope, " \"\\") ||
		    conf_has_control(scope))
			return conf_badf(p, WHERE ".scopes", "\"%.64s\": not a scope token", scope);
		if (!json_is_array(tools))
			return conf_badf(p, WHERE ".scopes", "\"%s\": expected a list of tools",
					 scope);
		json_array_foreach(tools, i, t)
		{
			struct ag_inbound_grant *g = &in->grants[in->nr_grants];
			const char *name = json_string_value(t);

			if (in->nr_grants == AG_INBOUND_MAX_GRANTS)
				return conf_badf(p, WHERE ".scopes", "more than %d tools in all",
						 AG_INBOUND_MAX_GRANTS);
			if (!name || !*name || strlen(name) >= sizeof(g->tool) ||
			    conf_has_control(name))
				return conf_badf(p, WHERE ".scopes", "\"%s\"[%zu]: not a tool name",
						 scope, i);
			strcpy(g->scope, scope);
			strcpy(g->tool, name);
			in->nr_grants++;
		}
	}
	return 0;
}

static int parse_num(struct parse *p, json_t *obj, const char *key, uint64_t max, uint32_t def,
		     uint32_t *out)
{
	json_t *v = json_object_get(obj, key);
	char path[64];
	uint64_t n;
	int ret;

	*out = def;
	if (!v)
		return 0;
	snprintf(path, sizeof(path), WHERE ".%s", key);
	if ((ret = conf_get_uint(p, path, v, max, &n)))
		return ret;
	*out = (uint32_t)n;
	return 0;
}

static int server_known(struct parse *p, const struct ag_conf *c, const char *name)
{
	for (int i = 0; i < c->nr_servers; i++)
		if (!strcmp(c->servers[i].name, name))
			/* Scopes name MCP tools: an HTTP service has none. */
			return c->servers[i].http ? conf_badf(p, WHERE ".server",
							      "\"%s\": an HTTP service, not "
							      "an MCP tool server",
							      name)
						  : 0;
	return conf_badf(p, WHERE ".server", "\"%s\": no tool server of that name", name);
}

int conf_parse_inbound(struct parse *p, json_t *v, struct ag_conf *c)
{
	struct ag_inbound_conf *in = &c->inbound;
	json_t *e;
	int ret;

	if ((ret = conf_check_keys(p, WHERE, v, conf_inbound_keys)))
		return ret;
	if (!(e = json_object_get(v, "listen")))
		return conf_bad(p, WHERE, "expected \"listen\": \"ADDRESS:PORT\"");
	if ((ret = parse_listen(p, e, in, c->port)))
		return ret;
	/* Fail closed: an outside listener never speaks plain text. */
	if (!json_object_get(v, "cert_file") || !json_object_get(v, "key_file"))
		return conf_bad(p, WHERE, "expected \"cert_file\" and \"key_file\" (TLS)");
	if ((ret = conf_path(p, WHERE ".cert_file", json_object_get(v, "cert_file"),
			     in->cert_file)) ||
	    (ret = conf_path(p, WHERE ".key_file", json_object_get(v, "key_file"), in->key_file)))
		return ret;
	if (!json_object_get(v, "server"))
		return conf_bad(p, WHERE, "expected \"server\": the tool server exposed");
	if ((ret = conf_get_optional(p, WHERE, v, "server", in->server, sizeof(in->server))) ||
	    (ret = server_known(p, c, in->server)))
		return ret;
	if ((ret = parse_url(p, v, "resource", in->resource, sizeof(in->resource),
			     in->resource_path, sizeof(in->resource_path))) ||
	    (ret = parse_url(p, v, "issuer", in->issuer, sizeof(in->issuer), NULL, 0)) ||
	    (ret = parse_url(p, v, "jwks_uri", in->jwks_uri, sizeof(in->jwks_uri), NULL, 0)))
		return ret;
	if ((e = json_object_get(v, "ca_file")) &&
	    (ret = conf_path(p, WHERE ".ca_file", e, in->ca_file)))
		return ret;
	/* Fail closed: without a scope map no tool is callable from outside. */
	if (!(e = json_object_get(v, "scopes")))
		return conf_bad(p, WHERE, "expected \"scopes\": which scope allows which tools");
	if ((ret = parse_scopes(p, e, in)))
		return ret;
	if ((ret = parse_num(p, v, "clock_skew_s", 600, AG_INBOUND_SKEW_DEFAULT,
			     &in->clock_skew_s)) ||
	    (ret = parse_num(p, v, "jwks_refresh_s", 86400, AG_INBOUND_REFRESH_DEFAULT,
			     &in->jwks_refresh_s)) ||
	    (ret = parse_num(p, v, "jwks_min_interval_s", 3600, AG_INBOUND_MIN_INTERVAL_DEFAULT,
			     &in->jwks_min_interval_s)))
		return ret;
	if (!in->jwks_refresh_s)
		return conf_bad(p, WHERE ".jwks_refresh_s", "must be at least 1");
	return 0;
}
