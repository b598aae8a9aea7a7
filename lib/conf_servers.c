// SPDX-License-Identifier: GPL-2.0
/*
 * The configuration of tool servers ("tool_servers", see lib/conf_int.h):
 * upstream URL, match, TLS, credential, output rules.  Plain values only:
 * the upstream's address, the CA and secret files and the rules' regexes
 * are conf_resolve()'s.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>

#include "conf_int.h"
#include "audit.h"
#include "hostport.h"
#include "http.h"
#include "inventory.h"
#include "jwt.h"
#include "kern.h"
#include "redact.h"

/* "http[s]://host[:port][/path]" by the grammar of lib/hostport.h. */
static int parse_upstream(struct parse *p, const char *path, const char *url,
			  struct ag_server_conf *s)
{
	struct ag_url u;
	char why[300];

	if (ag_url_parse(url, &u, why, sizeof(why)))
		return conf_badf(p, path, "\"%s\": %s", url, why);
	s->upstream_tls = u.https;
	s->upstream_port = u.port;
	/* Brackets kept: upstream_host goes into URLs and Host headers as is. */
	snprintf(s->upstream_host, sizeof(s->upstream_host), u.bracketed ? "[%s]" : "%s", u.host);
	/* The server name defaults to the host, without brackets (tls.server_name may set it). */
	strcpy(s->server_name, u.host);
	if (u.path[0] && !ag_url_target(&u, s->upstream_path, sizeof(s->upstream_path)))
		return conf_badf(p, path, "\"%.40s...\": the path is too long", url);
	/* Fits: the host, the port and the path were bounded above. */
	snprintf(s->upstream_url, sizeof(s->upstream_url), "%s", url);
	return 0;
}

static int parse_tls(struct parse *p, const char *path, json_t *t, struct ag_server_conf *s)
{
	char where[320];
	const char *v;
	json_t *e;
	int ret;

	if ((ret = conf_check_keys(p, path, t, conf_tls_keys)))
		return ret;
	if (!s->upstream_tls)
		return conf_bad(p, path, "only applies to an https:// upstream");
	if ((e = json_object_get(t, "ca_file"))) {
		snprintf(where, sizeof(where), "%s.ca_file", path);
		if ((ret = conf_get_string(p, where, e, &v)))
			return ret;
		if (!*v || strlen(v) >= sizeof(s->ca_file))
			return conf_bad(p, where, "expected a file name");
		/* Opened by conf_resolve(): a missing CA fails the start, not every call. */
		strcpy(s->ca_file, v);
	}
	if ((e = json_object_get(t, "server_name"))) {
		uint8_t a[16];

		snprintf(where, sizeof(where), "%s.server_name", path);
		if ((ret = conf_get_string(p, where, e, &v)))
			return ret;
		if (!ag_host_lower(s->server_name, v, strlen(v)) ||
		    (!ag_dns_name_valid(s->server_name, strlen(s->server_name), 0) &&
		     inet_pton(AF_INET6, s->server_name, a) != 1))
			return conf_badf(p, where, "\"%s\": expected a host name or address", v);
	}
	return 0;
}

static int parse_match(struct parse *p, const char *path, json_t *m, struct ag_server_conf *s)
{
	char where[320];
	size_t i, n;
	json_t *v, *e;
	int ret;

	if (!m)
		return conf_bad(p, path, "required: hosts or addresses to recognize the server by");
	if ((ret = conf_check_keys(p, path, m, conf_match_keys)))
		return ret;
	if ((v = json_object_get(m, "hosts"))) {
		snprintf(where, sizeof(where), "%s.hosts", path);
		if (!(s->hosts = conf_get_array(p, where, v, sizeof(*s->hosts), &n, &ret)))
			return ret;
		json_array_foreach(v, i, e)
		{
			const char *h;

			snprintf(where, sizeof(where), "%s.hosts[%zu]", path, i);
			if ((ret = conf_get_string(p, where, e, &h)))
				return ret;
			if (!ag_host_lower(s->hosts[i], h, strlen(h)) ||
			    !ag_dns_name_valid(s->hosts[i], strlen(s->hosts[i]), AG_NAME_WILDCARD))
				return conf_badf(p, where,
						 "\"%s\": expected a host name or \"*.suffix\"", h);
			s->nr_hosts++;
		}
	}
	if ((v = json_object_get(m, "ports"))) {
		snprintf(where, sizeof(where), "%s.ports", path);
		if (!(s->ports = conf_get_array(p, where, v, sizeof(*s->ports), &n, &ret)))
			return ret;
		json_array_foreach(v, i, e)
		{
			snprintf(where, sizeof(where), "%s.ports[%zu]", path, i);
			if (!json_is_integer(e) || json_integer_value(e) < 1 ||
			    json_integer_value(e) > 65535)
				return conf_bad(p, where, "expected a port from 1 to 65535");
			s->ports[s->nr_ports++] = (uint16_t)json_integer_value(e);
		}
	}
	if ((v = json_object_get(m, "addresses"))) {
		snprintf(where, sizeof(where), "%s.addresses", path);
		if (!(s->addrs = conf_get_array(p, where, v, sizeof(*s->addrs), &n, &ret)))
			return ret;
		json_array_foreach(v, i, e)
		{
			struct ag_rule_conf *r = &s->addrs[i];
			const char *a;

			snprintf(where, sizeof(where), "%s.addresses[%zu]", path, i);
			if ((ret = conf_get_string(p, where, e, &a)))
				return ret;
			if (ag_addr_parse(a, r->addr, &r->prefixlen))
				return conf_badf(p, where, "\"%s\": expected an address or CIDR",
						 a);
			s->nr_addrs++;
		}
	}
	if (!s->nr_hosts && !s->nr_addrs)
		return conf_bad(p, path, "needs at least one of hosts or addresses");
	return 0;
}

/* Fields the gateway owns or that frame the message: never a credential. */
static bool cred_header_ok(const char *h)
{
	static const char *const reserved[] = {
		"host",	      "content-length",	  "transfer-encoding",
		"connection", "keep-alive",	  "upgrade",
		"te",	      "trailer",	  "cookie",
		"origin",     "proxy-connection", NULL,
	};

	if (!*h || strlen(h) >= 64)
		return false;
	for (const char *c = h; *c; c++)
		if (!ag_http_is_tchar((uint8_t)*c))
			return false;
	for (const char *const *r = reserved; *r; r++)
		if (!strcasecmp(h, *r))
			return false;
	return true;
}

static int parse_oauth(struct parse *p, const char *path, json_t *v, struct ag_server_conf *s)
{
	char where[400], why[300];
	struct ag_url u;
	int ret;

	snprintf(where, sizeof(where), "%s.token_url", path);
	if (!json_object_get(v, "token_url"))
		return conf_bad(p, where, "required for \"type\": \"oauth2_client_credentials\"");
	if ((ret = conf_get_optional(p, path, v, "token_url", s->oauth_token_url,
				     sizeof(s->oauth_token_url))))
		return ret;
	/* The grammar lib/oauth.c parses it with, so config check refuses what it would. */
	if (ag_url_parse(s->oauth_token_url, &u, why, sizeof(why)))
		return conf_badf(p, where, "\"%s\": %s", s->oauth_token_url, why);
	snprintf(where, sizeof(where), "%s.client_id", path);
	if (!json_object_get(v, "client_id"))
		return conf_bad(p, where, "required for \"type\": \"oauth2_client_credentials\"");
	if ((ret = conf_get_optional(p, path, v, "client_id", s->oauth_client_id,
				     sizeof(s->oauth_client_id))) ||
	    (ret =
		 conf_get_optional(p, path, v, "scope", s->oauth_scope, sizeof(s->oauth_scope))) ||
	    (ret = conf_get_optional(p, path, v, "resource", s->oauth_resource,
				     sizeof(s->oauth_resource))) ||
	    (ret = conf_get_optional(p, path, v, "audience", s->cred_audience,
				     sizeof(s->cred_audience))))
		return ret;
	snprintf(where, sizeof(where), "%s.ca_file", path);
	if (json_object_get(v, "ca_file") &&
	    (ret = conf_path(p, where, json_object_get(v, "ca_file"), s->oauth_ca_file)))
		return ret;
	snprintf(where, sizeof(where), "%s.client_secret_file", path);
	return conf_path(p, where, json_object_get(v, "client_secret_file"), s->cred_file);
}

static int parse_assertion(struct parse *p, const char *path, json_t *v, struct ag_server_conf *s)
{
	char where[400], alg[16] = "EdDSA";
	enum ag_jwt_alg a;
	struct ag_err why;
	uint64_t ttl = AG_JWT_MAX_TTL;
	int ret;

	if ((ret = conf_get_optional(p, path, v, "audience", s->cred_audience,
				     sizeof(s->cred_audience))) ||
	    (ret = conf_get_optional(p, path, v, "alg", alg, sizeof(alg))))
		return ret;
	snprintf(where, sizeof(where), "%s.alg", path);
	if (ag_jwt_alg_parse(alg, &a, &why))
		return conf_badf(p, where, "\"%s\": expected \"EdDSA\" or \"ES256\"", alg);
	s->assertion_alg = a;
	snprintf(where, sizeof(where), "%s.ttl_s", path);
	if (json_object_get(v, "ttl_s") &&
	    (ret = conf_get_uint(p, where, json_object_get(v, "ttl_s"), AG_JWT_MAX_TTL, &ttl)))
		return ret;
	if (!ttl)
		return conf_badf(p, where, "expected 1-%d seconds", AG_JWT_MAX_TTL);
	s->assertion_ttl = (uint32_t)ttl;
	/* The tool server as its URL names it: what it knows itself as. */
	if (!s->cred_audience[0])
		snprintf(s->cred_audience, sizeof(s->cred_audience), "%s://%s:%u%s",
			 s->upstream_tls ? "https" : "http", s->upstream_host, s->upstream_port,
			 s->upstream_path);
	return 0;
}

/*
 * Secret files are checked here, so a bad one stops the daemon (and config
 * check) with a message naming it, before any call needs it.
 */
static int parse_credential(struct parse *p, const char *path, json_t *v, struct ag_server_conf *s)
{
	char where[320];
	const char *type, *hdr;
	int ret;

	if (!json_is_object(v))
		return conf_bad(p, path, "expected an object");
	snprintf(where, sizeof(where), "%s.type", path);
	if ((ret = conf_get_string(p, where, json_object_get(v, "type"), &type)))
		return ret;
	if (!strcmp(type, "bearer"))
		s->cred = AG_CRED_BEARER;
	else if (!strcmp(type, "header"))
		s->cred = AG_CRED_HEADER;
	else if (!strcmp(type, "oauth2_client_credentials"))
		s->cred = AG_CRED_OAUTH;
	else if (!strcmp(type, "assertion"))
		s->cred = AG_CRED_ASSERTION;
	else
		return conf_badf(p, where,
				 "\"%s\": expected \"bearer\", \"header\", "
				 "\"oauth2_client_credentials\" or \"assertion\"",
				 type);
	if ((ret = conf_check_keys(p, path, v, conf_cred_keys(s->cred))))
		return ret;
	if (s->cred == AG_CRED_ASSERTION)
		return parse_assertion(p, path, v, s);
	if (s->cred == AG_CRED_OAUTH)
		return parse_oauth(p, path, v, s);
	if (s->cred == AG_CRED_HEADER) {
		snprintf(where, sizeof(where), "%s.header", path);
		if ((ret = conf_get_string(p, where, json_object_get(v, "header"), &hdr)))
			return ret;
		if (!cred_header_ok(hdr))
			return conf_badf(p, where,
					 "\"%s\": expected a field name the gateway does not own",
					 hdr);
		snprintf(s->cred_header, sizeof(s->cred_header), "%s", hdr);
	}
	snprintf(where, sizeof(where), "%s.secret_file", path);
	return conf_path(p, where, json_object_get(v, "secret_file"), s->cred_file);
}

/* Secrets that must never reach an agent's context, masked unless configured otherwise. */
static const enum ag_redact_detector default_detectors[] = { AG_DET_PEM_KEY, AG_DET_BEARER,
							     AG_DET_CLOUD_KEY };

static int default_output_rules(struct parse *p, struct ag_server_conf *s)
{
	size_t n = AG_ARRAY_SIZE(default_detectors);

	if (!(s->out_rules = calloc(n, sizeof(*s->out_rules))))
		return conf_nomem(p);
	for (size_t i = 0; i < n; i++) {
		struct ag_output_rule *r = &s->out_rules[i];

		snprintf(r->name, sizeof(r->name), "%s",
			 ag_redact_detector_name(default_detectors[i]));
		r->kind = AG_RULE_DETECTOR;
		r->action = AG_ACT_MASK;
		r->detector = default_detectors[i];
	}
	s->nr_out_rules = (int)n;
	return 0;
}

/* Tool names a rule is limited to: plain names of this server's tools. */
static int parse_rule_tools(struct parse *p, const char *path, json_t *v, struct ag_output_rule *r)
{
	char where[448];
	size_t i, n;
	json_t *e;
	int ret;

	if (!(r->tools = conf_get_array(p, path, v, sizeof(*r->tools), &n, &ret)))
		return ret;
	if (!n)
		return conf_bad(p, path,
				"expected at least one tool name (leave \"tools\" out for all)");
	json_array_foreach(v, i, e)
	{
		const char *t;

		snprintf(where, sizeof(where), "%s[%zu]", path, i);
		if ((ret = conf_get_string(p, where, e, &t)))
			return ret;
		if (!*t || strlen(t) > 255)
			return conf_bad(p, where, "expected a tool name of 1-255 bytes");
		if (!(r->tools[i] = strdup(t)))
			return conf_nomem(p);
		r->nr_tools++;
	}
	return 0;
}

static int parse_output_rule(struct parse *p, const char *path, json_t *v, struct ag_output_rule *r)
{
	static const char *const kinds[] = { "detector", "path", "regex" };
	char where[400];
	const char *str = NULL, *name;
	json_t *e;
	int ret, found = 0;

	if ((ret = conf_check_keys(p, path, v, conf_output_rule_keys)))
		return ret;
	snprintf(where, sizeof(where), "%s.name", path);
	if ((ret = conf_get_name(p, where, json_object_get(v, "name"), &name)))
		return ret;
	snprintf(r->name, sizeof(r->name), "%s", name);
	for (size_t k = 0; k < AG_ARRAY_SIZE(kinds); k++) {
		if (!(e = json_object_get(v, kinds[k])))
			continue;
		snprintf(where, sizeof(where), "%s.%s", path, kinds[k]);
		if ((ret = conf_get_string(p, where, e, &str)))
			return ret;
		r->kind = k == 0 ? AG_RULE_DETECTOR : k == 1 ? AG_RULE_PATH : AG_RULE_REGEX;
		found++;
	}
	if (found != 1)
		return conf_bad(p, path,
				"expected exactly one of \"detector\", \"path\" and \"regex\"");
	if (r->kind == AG_RULE_DETECTOR) {
		enum ag_redact_detector d;

		if (ag_redact_detector_parse(str, &d))
			return conf_badf(p, where,
					 "\"%s\": expected \"pem_private_key\", \"bearer_token\", "
					 "\"cloud_access_key\", \"credit_card\" or \"email\"",
					 str);
		r->detector = d;
	} else if (!(r->text = strdup(str))) {
		return conf_nomem(p);
	}
	r->action = AG_ACT_MASK;
	if ((e = json_object_get(v, "action"))) {
		const char *a;

		snprintf(where, sizeof(where), "%s.action", path);
		if ((ret = conf_get_string(p, where, e, &a)))
			return ret;
		if (!strcmp(a, "refuse"))
			r->action = AG_ACT_REFUSE;
		else if (strcmp(a, "mask"))
			return conf_badf(p, where, "\"%s\": expected \"mask\" or \"refuse\"", a);
	}
	snprintf(where, sizeof(where), "%s.tools", path);
	if ((e = json_object_get(v, "tools")) && (ret = parse_rule_tools(p, where, e, r)))
		return ret;
	return 0;
}

/* The rules as lib/redact.h takes them; rules[i] points into s. */
void ag_output_rules_view(const struct ag_server_conf *s, struct ag_redact_rule *rules)
{
	for (int i = 0; i < s->nr_out_rules; i++) {
		const struct ag_output_rule *o = &s->out_rules[i];

		rules[i] = (struct ag_redact_rule){ .name = o->name,
						    .kind = o->kind,
						    .action = o->action,
						    .path = o->text,
						    .regex = o->text,
						    .detector = o->detector };
	}
}

static int parse_output_rules(struct parse *p, const char *path, json_t *v,
			      struct ag_server_conf *s)
{
	char where[352];
	size_t i, n;
	json_t *e;
	int ret;

	if (!(s->out_rules = conf_get_array(p, path, v, sizeof(*s->out_rules), &n, &ret)))
		return ret;
	if (n > AG_REDACT_MAX_RULES)
		return conf_badf(p, path, "too many rules (at most %d)", AG_REDACT_MAX_RULES);
	json_array_foreach(v, i, e)
	{
		snprintf(where, sizeof(where), "%s[%zu]", path, i);
		s->nr_out_rules++;
		if ((ret = parse_output_rule(p, where, e, &s->out_rules[i])))
			return ret;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(s->out_rules[j].name, s->out_rules[i].name))
				return conf_badf(p, where, "duplicate rule name \"%s\"",
						 s->out_rules[i].name);
	}
	return 0; /* compiled by conf_resolve() */
}

int conf_get_name(struct parse *p, const char *path, json_t *v, const char **out)
{
	int ret = conf_get_string(p, path, v, out);

	if (ret || ag_agent_name_valid(*out))
		return ret;
	return conf_bad(p, path,
			"expected a name of 1-31 of [A-Za-z0-9_.-], not starting with '.' or '-'");
}

/*
 * The fields every governed server has, tool server or HTTP service
 * (conf_http.c): name (unique among both), upstream, match, tls,
 * credential, audit_args, upstream_pool, trust, output_rules.  s is c->servers[i]; at is
 * its place in the file ("$.tool_servers[0]").  The caller checked the keys.
 */
int conf_parse_server(struct parse *p, const char *at, json_t *e, struct ag_conf *c, int i)
{
	struct ag_server_conf *s = &c->servers[i];
	char where[256];
	const char *v;
	int ret;

	snprintf(where, sizeof(where), "%s.name", at);
	if ((ret = conf_get_name(p, where, json_object_get(e, "name"), &v)))
		return ret;
	for (int j = 0; j < i; j++)
		if (!strcmp(c->servers[j].name, v))
			return conf_badf(p, where, "duplicate tool server name \"%s\"", v);
	strcpy(s->name, v);
	snprintf(where, sizeof(where), "%s.upstream", at);
	if ((ret = conf_get_string(p, where, json_object_get(e, "upstream"), &v)) ||
	    (ret = parse_upstream(p, where, v, s)))
		return ret;
	snprintf(where, sizeof(where), "%s.command", at);
	if (json_object_get(e, "command") &&
	    (ret = conf_parse_hosted(p, where, json_object_get(e, "command"), s)))
		return ret;
	snprintf(where, sizeof(where), "%s.match", at);
	if ((ret = parse_match(p, where, json_object_get(e, "match"), s)))
		return ret;
	snprintf(where, sizeof(where), "%s.tls", at);
	if (json_object_get(e, "tls") && (ret = parse_tls(p, where, json_object_get(e, "tls"), s)))
		return ret;
	snprintf(where, sizeof(where), "%s.credential", at);
	if (json_object_get(e, "credential") &&
	    (ret = parse_credential(p, where, json_object_get(e, "credential"), s)))
		return ret;
	s->audit_args = AG_AUDIT_REDACT_HASH;
	snprintf(where, sizeof(where), "%s.audit_args", at);
	if (json_object_get(e, "audit_args")) {
		enum ag_audit_redact mode;

		if ((ret = conf_get_string(p, where, json_object_get(e, "audit_args"), &v)))
			return ret;
		if (ag_audit_redact_parse(v, &mode))
			return conf_badf(p, where,
					 "\"%s\": expected \"hash\", \"full\" or \"drop\"", v);
		s->audit_args = mode;
	}
	snprintf(where, sizeof(where), "%s.upstream_pool", at);
	s->upstream_pool = AG_UPSTREAM_POOL_DEFAULT;
	if (json_object_get(e, "upstream_pool")) {
		uint64_t n;

		if ((ret = conf_get_uint(p, where, json_object_get(e, "upstream_pool"),
					 AG_UPSTREAM_POOL_MAX, &n)))
			return ret;
		s->upstream_pool = n;
	}
	snprintf(where, sizeof(where), "%s.trust", at);
	s->trust = AG_TRUST_ON_FIRST_USE;
	if (json_object_get(e, "trust")) {
		if ((ret = conf_get_string(p, where, json_object_get(e, "trust"), &v)))
			return ret;
		if (!strcmp(v, "explicit"))
			s->trust = AG_TRUST_EXPLICIT;
		else if (strcmp(v, "on-first-use"))
			return conf_badf(p, where,
					 "\"%s\": expected \"on-first-use\" or \"explicit\"", v);
	}
	snprintf(where, sizeof(where), "%s.output_rules", at);
	return json_object_get(e, "output_rules")
		   ? parse_output_rules(p, where, json_object_get(e, "output_rules"), s)
		   : default_output_rules(p, s);
}

int conf_parse_servers(struct parse *p, json_t *arr, struct ag_conf *c)
{
	size_t i, n = json_array_size(arr);
	char where[256];
	json_t *e;

	if (!json_is_array(arr))
		return conf_bad(p, "$.tool_servers", "expected an array");
	if (n > AG_MAX_CONF_SERVERS)
		return conf_badf(p, "$.tool_servers", "too many tool servers (at most %d)",
				 AG_MAX_CONF_SERVERS);
	c->servers = calloc(n ? n : 1, sizeof(*c->servers));
	if (!c->servers)
		return conf_nomem(p);
	json_array_foreach(arr, i, e)
	{
		int ret;

		snprintf(where, sizeof(where), "$.tool_servers[%zu]", i);
		if ((ret = conf_check_keys(p, where, e, conf_server_keys)))
			return ret;
		c->nr_servers++;
		if ((ret = conf_parse_server(p, where, e, c, (int)i)))
			return ret;
	}
	return 0;
}
