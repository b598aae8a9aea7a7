// SPDX-License-Identifier: GPL-2.0
/*
 * The configuration's schema: the key tables of every object it reads and
 * the typed readers its parts (lib/conf_*.c, see lib/conf_int.h) take
 * values with, each error naming the file and the JSON path.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_int.h"
#include "kern.h"

/*
 * The key tables: an object with any other key is refused, and every key
 * here is documented in docs/agentgate.conf.5 (selftests/test_docs.c).
 */
const char *const conf_root_keys[] = { "listen",
				       "mark",
				       "resolvers",
				       "default_verdict",
				       "rules",
				       "agents",
				       "connect_timeout_ms",
				       "tool_servers",
				       "http_services",
				       "passthrough",
				       "policy",
				       "approval_timeout_ms",
				       "audit",
				       "tools_lock",
				       "agent_uids",
				       "limits",
				       "dns",
				       "metrics",
				       "anomaly",
				       "policy_source",
				       "fleet",
				       "inbound",
				       "relay_splice",
				       NULL };
const char *const conf_listen_keys[] = { "port", "ipv6", NULL };
const char *const conf_audit_keys[] = { "durability", "rotate_bytes",	  "syslog",
					"ship",	      "sync_interval_ms", NULL };
const char *const conf_ship_keys[] = { "address",   "ca_file",	"server_name",
				       "cert_file", "key_file", NULL };
const char *const conf_inbound_keys[] = { "listen",	    "cert_file",
					  "key_file",	    "server",
					  "resource",	    "issuer",
					  "jwks_uri",	    "ca_file",
					  "scopes",	    "clock_skew_s",
					  "jwks_refresh_s", "jwks_min_interval_s",
					  "guard",	    NULL };
const char *const conf_inbound_guard_keys[] = { "interface", "rate", "burst", NULL };
const char *const conf_policy_keys[] = { "dir", "files", "entities", NULL };
const char *const conf_agent_uids_keys[] = { "min", "max", NULL };
const char *const conf_limits_keys[] = { "header_timeout_ms", "idle_timeout_ms",
					 "max_conns_per_agent", NULL };
const char *const conf_metrics_keys[] = { "listen", NULL };
const char *const conf_anomaly_keys[] = { "enabled",	      "rate_multiple",
					  "min_rate_per_min", "rate_window_s",
					  "baseline_s",	      "denials",
					  "denial_window_s",  NULL };
const char *const conf_policy_source_keys[] = { "url",	"ref", "interval_s", "allowed_signers",
						"path", NULL };
const char *const conf_fleet_keys[] = { "redis",       "user",		 "password_file",
					"lease_calls", "on_unreachable", "key_prefix",
					NULL };
const char *const conf_rule_keys[] = { "dest", "port", "verdict", NULL };
const char *const conf_agent_keys[] = {
	"name",	     "verdict",	     "rules",	 "quota",      "tools",	       "resources",
	"prompts",   "passthrough",  "operator", "attributes", "delegated_by", "loop_protection",
	"max_conns", "unix_sockets", "dns",	 NULL
};
const char *const conf_quota_keys[] = { "connect_rate",	 "connect_burst", "calls_per_minute",
					"calls_per_day", "scope",	  NULL };
const char *const conf_loop_keys[] = { "max_identical", "window_s", "action", NULL };
const char *const conf_dns_keys[] = { "allow", "deny", NULL };
const char *const conf_server_keys[] = { "name",       "match",		"upstream", "tls",
					 "credential", "audit_args",	"trust",    "output_rules",
					 "command",    "upstream_pool", NULL };
const char *const conf_http_service_keys[] = {
	"name",	      "match",	       "upstream", "tls",	"credential",
	"audit_args", "output_rules",  "routes",   "unmatched", "context_headers",
	"openapi",    "upstream_pool", NULL
};
const char *const conf_http_route_keys[] = { "name", "method", "path", NULL };
/* "tool_servers[].command" (lib/conf_hosted.c). */
const char *const conf_hosted_keys[] = { "argv",      "env",	      "cwd", "user", "agent",
					 "processes", "max_sessions", NULL };
const char *const conf_tls_keys[] = { "ca_file", "server_name", NULL };
const char *const conf_match_keys[] = { "hosts", "ports", "addresses", NULL };
const char *const conf_output_rule_keys[] = { "name",	"detector", "path", "regex",
					      "action", "tools",    NULL };

const char *const *conf_cred_keys(enum ag_cred_kind k)
{
	static const char *const bearer[] = { "type", "secret_file", NULL };
	static const char *const header[] = { "type", "secret_file", "header", NULL };
	static const char *const oauth[] = {
		"type",	    "token_url", "client_id", "client_secret_file", "scope", "resource",
		"audience", "ca_file",	 NULL
	};
	static const char *const assertion[] = { "type", "audience", "alg", "ttl_s", NULL };

	switch (k) {
	case AG_CRED_HEADER:
		return header;
	case AG_CRED_OAUTH:
		return oauth;
	case AG_CRED_ASSERTION:
		return assertion;
	default:
		return bearer;
	}
}

/* ---- typed readers ---- */

int conf_bad(struct parse *p, const char *path, const char *what)
{
	return ag_errf(p->err, EINVAL, "%s: %s: %s", p->file, path, what);
}

int conf_badf(struct parse *p, const char *path, const char *fmt, ...)
{
	char what[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return conf_bad(p, path, what);
}

int conf_check_keys(struct parse *p, const char *path, json_t *obj, const char *const *allowed)
{
	const char *key;
	json_t *v;
	char where[256];

	if (!json_is_object(obj))
		return conf_bad(p, path, "expected an object");
	json_object_foreach(obj, key, v)
	{
		bool ok = false;

		for (const char *const *a = allowed; *a; a++)
			ok |= !strcmp(key, *a);
		if (!ok) {
			snprintf(where, sizeof(where), "%s.%s", path, key);
			return conf_bad(p, where, "unknown key");
		}
	}
	return 0;
}

int conf_get_uint(struct parse *p, const char *path, json_t *v, uint64_t max, uint64_t *out)
{
	json_int_t n;

	if (!json_is_integer(v))
		return conf_bad(p, path, "expected an integer");
	n = json_integer_value(v);
	if (n < 0 || (uint64_t)n > max) {
		char what[64];

		snprintf(what, sizeof(what), "must be between 0 and %llu", (unsigned long long)max);
		return conf_bad(p, path, what);
	}
	*out = (uint64_t)n;
	return 0;
}

int conf_get_verdict(struct parse *p, const char *path, json_t *v, uint32_t *out)
{
	if (!json_is_string(v) || ag_verdict_parse(json_string_value(v), out))
		return conf_bad(p, path, "expected one of \"redirect\", \"direct\", \"deny\"");
	return 0;
}

int conf_get_string(struct parse *p, const char *path, json_t *v, const char **out)
{
	if (!json_is_string(v))
		return conf_bad(p, path, "expected a string");
	if (json_string_length(v) != strlen(json_string_value(v)))
		return conf_bad(p, path, "contains a NUL byte");
	*out = json_string_value(v);
	return 0;
}

int conf_nomem(struct parse *p)
{
	return ag_errf(p->err, ENOMEM, "%s: out of memory", p->file);
}

int conf_get_list(struct parse *p, const char *path, json_t *v, size_t *n)
{
	if (!json_is_array(v))
		return conf_bad(p, path, "expected an array");
	*n = json_array_size(v);
	if (*n > AG_MAX_CONF_LIST)
		return conf_badf(p, path, "too many entries (at most %d)", AG_MAX_CONF_LIST);
	return 0;
}

/*
 * A JSON array at path and zeroed room for its n elements of size bytes
 * each (at least one, so an empty list is not mistaken for a failure).
 * NULL with *ret set when the value is not a list or memory is short.
 */
void *conf_get_array(struct parse *p, const char *path, json_t *v, size_t size, size_t *n, int *ret)
{
	void *a;

	if ((*ret = conf_get_list(p, path, v, n)))
		return NULL;
	if (!(a = calloc(*n ? *n : 1, size)))
		*ret = conf_nomem(p);
	return a;
}

/*
 * The strings of the array v at path into a new array of as many elements
 * of elem bytes (*out, zeroed, the caller's to free), each through fn with
 * its own path for messages; *nr counts those stored.
 */
int conf_parse_strings(struct parse *p, const char *path, json_t *v, size_t elem, void **out,
		       int *nr, conf_string_fn fn, void *ctx)
{
	char where[320];
	size_t i, n;
	json_t *e;
	int ret;

	if (!(*out = conf_get_array(p, path, v, elem, &n, &ret)))
		return ret;
	json_array_foreach(v, i, e)
	{
		const char *s;

		snprintf(where, sizeof(where), "%s[%zu]", path, i);
		if ((ret = conf_get_string(p, where, e, &s)) ||
		    (ret = fn(p, where, s, (char *)*out + i * elem, ctx)))
			return ret;
		(*nr)++;
	}
	return 0;
}

bool conf_has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* A path in the file; relative ones are resolved against the config's directory. */
int conf_path(struct parse *p, const char *path, json_t *v, char out[PATH_MAX])
{
	const char *s;
	int ret, n;

	if ((ret = conf_get_string(p, path, v, &s)))
		return ret;
	if (!*s)
		return conf_bad(p, path, "expected a path");
	n = s[0] == '/' ? snprintf(out, PATH_MAX, "%s", s)
			: snprintf(out, PATH_MAX, "%s/%s", p->dir, s);
	if (n < 0 || n >= PATH_MAX)
		return conf_bad(p, path, "path too long");
	return 0;
}

int conf_get_optional(struct parse *p, const char *path, json_t *obj, const char *key, char *out,
		      size_t cap)
{
	char where[400];
	const char *v;
	int ret;

	if (!json_object_get(obj, key))
		return 0;
	snprintf(where, sizeof(where), "%s.%s", path, key);
	if ((ret = conf_get_string(p, where, json_object_get(obj, key), &v)))
		return ret;
	if (!*v || strlen(v) >= cap)
		return conf_badf(p, where, "expected 1-%zu bytes", cap - 1);
	for (const char *c = v; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return conf_bad(p, where, "contains a control character");
	memcpy(out, v, strlen(v) + 1);
	return 0;
}
