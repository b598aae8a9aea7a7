// SPDX-License-Identifier: GPL-2.0
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>

#include "config.h"
#include "secret.h"
#include "http.h"
#include "audit.h"
#include "kern.h"
#include "inventory.h"
#include "jwt.h"
#include "redact.h"

#define RESOLV_CONF "/etc/resolv.conf"

static int add_resolver(struct ag_conf *c, const char *s)
{
	int plen;

	if (c->nr_resolvers >= AG_MAX_RESOLVERS)
		return -ENOSPC;
	if (ag_addr_parse(s, c->resolvers[c->nr_resolvers], &plen) || plen != 128)
		return -EINVAL;
	c->nr_resolvers++;
	return 0;
}

/* "nameserver ADDR" lines; scoped v6 (fe80::1%eth0) and extras are skipped. */
static void read_resolv_conf(struct ag_conf *c)
{
	FILE *f = fopen(RESOLV_CONF, "re");
	char line[256], addr[128];

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, " nameserver %127s", addr) == 1)
			add_resolver(c, addr);
	fclose(f);
}

int ag_conf_default(struct ag_conf *c, struct ag_err *err)
{
	memset(c, 0, sizeof(*c));
	c->port = AG_DEFAULT_PORT;
	c->ipv6 = true;
	c->mark = AG_DEFAULT_MARK;
	c->resolver_port = 53;
	c->default_verdict = AG_VERDICT_REDIRECT;
	c->connect_timeout_ms = 10000;
	c->approval_timeout_ms = 120000;
	c->audit_durability = AG_AUDIT_SYNC;
	c->agent_uid_min = AG_DEFAULT_AGENT_UID_MIN;
	c->agent_uid_max = AG_DEFAULT_AGENT_UID_MAX;
	c->header_timeout_ms = AG_HEADER_TIMEOUT_MS;
	c->idle_timeout_ms = AG_IDLE_TIMEOUT_MS;
	c->max_conns_per_agent = AG_MAX_CONNS_PER_AGENT;
	read_resolv_conf(c);
	/* Without a "passthrough" list, the gateway relays what it does not govern. */
	c->pass = calloc(1, sizeof(*c->pass));
	if (!c->pass)
		return ag_errf(err, ENOMEM, "default configuration: out of memory");
	c->pass[0].kind = AG_PASS_ANY;
	c->nr_pass = 1;
	return 0;
}

static void free_patterns(char **list, int nr)
{
	for (int i = 0; i < nr; i++)
		free(list[i]);
	free(list);
}

static void dns_conf_free(struct ag_dns_conf *d)
{
	free(d->allow);
	free(d->deny);
	memset(d, 0, sizeof(*d));
}

void ag_conf_free(struct ag_conf *c)
{
	dns_conf_free(&c->dns);
	for (int i = 0; i < c->nr_agents; i++) {
		struct ag_agent_conf *a = &c->agents[i];

		dns_conf_free(&a->dns);
		free(a->rules);
		free_patterns(a->tools, a->nr_tools);
		free_patterns(a->resources, a->nr_resources);
		free_patterns(a->prompts, a->nr_prompts);
		free(a->pass);
		free(a->attributes);
		free(a->delegated_by);
		free(a->unix_sockets);
	}
	for (int i = 0; i < c->nr_servers; i++) {
		struct ag_server_conf *s = &c->servers[i];

		free(s->hosts);
		free(s->ports);
		free(s->addrs);
		for (int j = 0; j < s->nr_out_rules; j++) {
			free(s->out_rules[j].text);
			free_patterns(s->out_rules[j].tools, s->out_rules[j].nr_tools);
		}
		free(s->out_rules);
	}
	free(c->agents);
	free(c->rules);
	free(c->servers);
	free(c->pass);
	free(c->policy.files);
	memset(&c->policy, 0, sizeof(c->policy));
	c->agents = NULL;
	c->rules = NULL;
	c->servers = NULL;
	c->pass = NULL;
	c->nr_agents = c->nr_rules = c->nr_servers = c->nr_pass = 0;
}

void ag_conf_to_kernel(const struct ag_conf *c, struct ag_config *k)
{
	uint32_t lo = htonl(INADDR_LOOPBACK);

	memset(k, 0, sizeof(*k));
	memcpy(&k->daemon_ip4, &lo, 4);
	if (c->ipv6)
		k->daemon_ip6[15] = 1; /* ::1 */
	k->daemon_port = c->port;
	k->mark = c->mark;
	k->nr_resolvers = c->nr_resolvers;
	memcpy(k->resolvers, c->resolvers, sizeof(k->resolvers));
	k->resolver_port = c->resolver_port;
	k->default_verdict = c->default_verdict;
	k->agent_uid_min = c->agent_uid_min;
	k->agent_uid_max = c->agent_uid_max;
}

/* Every error names the file and the JSON path of the offending value. */
struct parse {
	const char *file;
	struct ag_err *err;
	char dir[PATH_MAX]; /* of file: where relative paths start */
};

static int bad(struct parse *p, const char *path, const char *what)
{
	return ag_errf(p->err, EINVAL, "%s: %s: %s", p->file, path, what);
}

static int badf(struct parse *p, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int badf(struct parse *p, const char *path, const char *fmt, ...)
{
	char what[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return bad(p, path, what);
}

static int check_keys(struct parse *p, const char *path, json_t *obj, const char *const *allowed)
{
	const char *key;
	json_t *v;
	char where[256];

	if (!json_is_object(obj))
		return bad(p, path, "expected an object");
	json_object_foreach(obj, key, v)
	{
		bool ok = false;

		for (const char *const *a = allowed; *a; a++)
			ok |= !strcmp(key, *a);
		if (!ok) {
			snprintf(where, sizeof(where), "%s.%s", path, key);
			return bad(p, where, "unknown key");
		}
	}
	return 0;
}

static int get_uint(struct parse *p, const char *path, json_t *v, uint64_t max, uint64_t *out)
{
	json_int_t n;

	if (!json_is_integer(v))
		return bad(p, path, "expected an integer");
	n = json_integer_value(v);
	if (n < 0 || (uint64_t)n > max) {
		char what[64];

		snprintf(what, sizeof(what), "must be between 0 and %llu", (unsigned long long)max);
		return bad(p, path, what);
	}
	*out = (uint64_t)n;
	return 0;
}

static int get_verdict(struct parse *p, const char *path, json_t *v, uint32_t *out)
{
	if (!json_is_string(v) || ag_verdict_parse(json_string_value(v), out))
		return bad(p, path, "expected one of \"redirect\", \"direct\", \"deny\"");
	return 0;
}

static int parse_rules(struct parse *p, const char *path, json_t *arr, struct ag_rule_conf **out,
		       int *nr)
{
	static const char *const keys[] = { "dest", "port", "verdict", NULL };
	size_t i, n = json_array_size(arr);
	json_t *r;
	char where[256];

	if (!json_is_array(arr))
		return bad(p, path, "expected an array");
	if (n > AG_MAX_CONF_RULES)
		return bad(p, path, "too many rules (at most 256)");
	*out = calloc(n ? n : 1, sizeof(**out));
	if (!*out)
		return ag_errf(p->err, ENOMEM, "%s: out of memory", p->file);
	json_array_foreach(arr, i, r)
	{
		struct ag_rule_conf *rc = &(*out)[i];
		json_t *dest = json_object_get(r, "dest");
		uint64_t port = 0;
		int ret;

		snprintf(where, sizeof(where), "%s[%zu]", path, i);
		if ((ret = check_keys(p, where, r, keys)))
			return ret;
		snprintf(where, sizeof(where), "%s[%zu].dest", path, i);
		if (!json_is_string(dest) ||
		    ag_addr_parse(json_string_value(dest), rc->addr, &rc->prefixlen))
			return bad(p, where, "expected an address or CIDR, e.g. \"10.0.0.0/8\"");
		snprintf(where, sizeof(where), "%s[%zu].port", path, i);
		if (json_object_get(r, "port") &&
		    (ret = get_uint(p, where, json_object_get(r, "port"), 65535, &port)))
			return ret;
		rc->port = (uint16_t)port;
		snprintf(where, sizeof(where), "%s[%zu].verdict", path, i);
		if ((ret = get_verdict(p, where, json_object_get(r, "verdict"), &rc->verdict)))
			return ret;
		(*nr)++;
	}
	return 0;
}

static int parse_quota(struct parse *p, const char *path, json_t *q, struct ag_agent_conf *ac)
{
	static const char *const keys[] = { "connect_rate", "connect_burst", "calls_per_minute",
					    "calls_per_day", NULL };
	uint32_t *fields[] = { &ac->connect_rate, &ac->connect_burst, &ac->calls_per_minute,
			       &ac->calls_per_day };
	char where[320];
	int ret;

	if ((ret = check_keys(p, path, q, keys)))
		return ret;
	for (int i = 0; keys[i]; i++) {
		json_t *v = json_object_get(q, keys[i]);
		uint64_t n;

		if (!v)
			continue;
		snprintf(where, sizeof(where), "%s.%s", path, keys[i]);
		if ((ret = get_uint(p, where, v, UINT32_MAX, &n)))
			return ret;
		*fields[i] = (uint32_t)n;
	}
	if (ac->connect_rate && !ac->connect_burst)
		return bad(p, path, "connect_rate needs a connect_burst of at least 1");
	return 0;
}

static int parse_loop_protection(struct parse *p, const char *path, json_t *lp,
				 struct ag_agent_conf *ac)
{
	static const char *const keys[] = { "max_identical", "window_s", "action", NULL };
	json_t *action = json_object_get(lp, "action");
	char where[320];
	uint64_t n;
	int ret;

	if ((ret = check_keys(p, path, lp, keys)))
		return ret;
	snprintf(where, sizeof(where), "%s.max_identical", path);
	if ((ret = get_uint(p, where, json_object_get(lp, "max_identical"), AG_LOOP_MAX_IDENTICAL,
			    &n)))
		return ret;
	if (!n)
		return bad(p, where, "expected at least 1 (leave loop_protection out to turn it off)");
	ac->loop_max_identical = (uint32_t)n;
	snprintf(where, sizeof(where), "%s.window_s", path);
	if ((ret = get_uint(p, where, json_object_get(lp, "window_s"), AG_LOOP_MAX_WINDOW_S, &n)))
		return ret;
	if (!n)
		return bad(p, where, "expected at least 1");
	ac->loop_window_s = (uint32_t)n;
	snprintf(where, sizeof(where), "%s.action", path);
	if (action && (!json_is_string(action) || (strcmp(json_string_value(action), "deny") &&
						   strcmp(json_string_value(action), "escalate"))))
		return bad(p, where, "expected \"deny\" or \"escalate\"");
	ac->loop_escalate = action && !strcmp(json_string_value(action), "escalate");
	return 0;
}

/*
 * Host names are compared in lower case without a trailing dot, so that
 * "MCP.example.test." in a Host header names the same server as the file's
 * "mcp.example.test".
 */
static char ascii_lower(char ch)
{
	return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

/* Copies s lower-cased without one trailing dot; false when it does not fit. */
static bool host_copy(char out[AG_HOST_LEN], const char *s, size_t n)
{
	if (n && s[n - 1] == '.')
		n--;
	if (n >= AG_HOST_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		out[i] = ascii_lower(s[i]);
	out[n] = '\0';
	return true;
}

/*
 * A lower-case DNS name: labels of 1-63 of [a-z0-9_-], at most 253 bytes,
 * and with wildcard a leading "*." (any name strictly below the rest).
 */
static bool dns_name_valid(const char *s, bool wildcard)
{
	size_t label = 0;

	if (wildcard && !strncmp(s, "*.", 2))
		s += 2;
	if (!*s || strlen(s) > 253)
		return false;
	for (; *s; s++) {
		if (*s == '.') {
			if (!label)
				return false;
			label = 0;
			continue;
		}
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' ||
		      *s == '_') ||
		    ++label > 63)
			return false;
	}
	return label > 0;
}

/* "1..65535" in decimal, nothing else: a port of a passthrough or upstream. */
static bool port_parse(const char *s, size_t n, uint16_t *out)
{
	unsigned long v = 0;

	if (n == 0 || n > 5)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v < 1 || v > 65535)
		return false;
	*out = (uint16_t)v;
	return true;
}

/* A JSON string without NUL bytes, which C would silently cut short. */
static int get_string(struct parse *p, const char *path, json_t *v, const char **out)
{
	if (!json_is_string(v))
		return bad(p, path, "expected a string");
	if (json_string_length(v) != strlen(json_string_value(v)))
		return bad(p, path, "contains a NUL byte");
	*out = json_string_value(v);
	return 0;
}

static int nomem(struct parse *p)
{
	return ag_errf(p->err, ENOMEM, "%s: out of memory", p->file);
}

static int get_list(struct parse *p, const char *path, json_t *v, size_t *n)
{
	if (!json_is_array(v))
		return bad(p, path, "expected an array");
	*n = json_array_size(v);
	if (*n > AG_MAX_CONF_LIST)
		return badf(p, path, "too many entries (at most %d)", AG_MAX_CONF_LIST);
	return 0;
}

/*
 * A JSON array at path and zeroed room for its n elements of size bytes
 * each (at least one, so an empty list is not mistaken for a failure).
 * NULL with *ret set when the value is not a list or memory is short.
 */
static void *get_array(struct parse *p, const char *path, json_t *v, size_t size, size_t *n,
		       int *ret)
{
	void *a;

	if ((*ret = get_list(p, path, v, n)))
		return NULL;
	if (!(a = calloc(*n ? *n : 1, size)))
		*ret = nomem(p);
	return a;
}

/* What each string of a list is checked and stored by; slot is its element. */
typedef int (*string_item_fn)(struct parse *p, const char *where, const char *s, void *slot,
			      void *ctx);

/*
 * The strings of the array v at path into a new array of as many elements
 * of elem bytes (*out, zeroed, the caller's to free), each through fn with
 * its own path for messages; *nr counts those stored.
 */
static int parse_strings(struct parse *p, const char *path, json_t *v, size_t elem, void **out,
			 int *nr, string_item_fn fn, void *ctx)
{
	char where[320];
	size_t i, n;
	json_t *e;
	int ret;

	if (!(*out = get_array(p, path, v, elem, &n, &ret)))
		return ret;
	json_array_foreach(v, i, e)
	{
		const char *s;

		snprintf(where, sizeof(where), "%s[%zu]", path, i);
		if ((ret = get_string(p, where, e, &s)) ||
		    (ret = fn(p, where, s, (char *)*out + i * elem, ctx)))
			return ret;
		(*nr)++;
	}
	return 0;
}

static bool has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/*
 * A passthrough entry, one of
 *	*[:PORT]			every destination
 *	NAME[:PORT], *.SUFFIX[:PORT]	by TLS SNI or HTTP Host
 *	IPV4[/LEN][:PORT]		by original destination address
 *	[IPV6[/LEN]][:PORT]		IPv6 always in brackets, so its colons
 *					never read as a port
 */
static int parse_pass_entry(struct parse *p, const char *path, const char *s,
			    struct ag_pass_conf *pc)
{
	static const char syntax[] = "expected \"*\", a host name, \"*.suffix\", an IPv4 address "
				     "or CIDR, or \"[IPv6]\" or \"[IPv6/len]\", each with an "
				     "optional \":PORT\"";
	char buf[AG_HOST_LEN + 8];
	const char *port = NULL;
	size_t n = strlen(s);

	memset(pc, 0, sizeof(*pc));
	if (n >= sizeof(buf))
		return badf(p, path, "\"%.40s...\": too long", s);
	memcpy(buf, s, n + 1);
	if (buf[0] == '[') {
		char *close = strchr(buf, ']');

		if (!close)
			return badf(p, path, "\"%s\": missing \"]\" after the IPv6 address", s);
		*close = '\0';
		if (close[1] == ':')
			port = close + 2;
		else if (close[1])
			return badf(p, path, "\"%s\": expected \":PORT\" after \"]\"", s);
		if (!strchr(buf + 1, ':') || ag_addr_parse(buf + 1, pc->addr, &pc->prefixlen))
			return badf(p, path, "\"%s\": expected an IPv6 address or CIDR in brackets",
				    s);
		pc->kind = AG_PASS_CIDR;
	} else {
		char *colon = strchr(buf, ':');

		if (colon && strchr(colon + 1, ':'))
			return badf(p, path,
				    "\"%s\": write IPv6 in brackets, e.g. \"[::1]\" or "
				    "\"[fd00::/8]:443\"",
				    s);
		if (colon) {
			*colon = '\0';
			port = colon + 1;
		}
		if (!strcmp(buf, "*")) {
			pc->kind = AG_PASS_ANY;
		} else if (buf[0] && strspn(buf, "0123456789./") == strlen(buf)) {
			if (ag_addr_parse(buf, pc->addr, &pc->prefixlen))
				return badf(p, path, "\"%s\": expected an IPv4 address or CIDR", s);
			pc->kind = AG_PASS_CIDR;
		} else {
			if (!host_copy(pc->host, buf, strlen(buf)) ||
			    !dns_name_valid(pc->host, true))
				return badf(p, path, "\"%s\": %s", s, syntax);
			pc->kind = AG_PASS_HOST;
		}
	}
	if (port && !port_parse(port, strlen(port), &pc->port))
		return badf(p, path, "\"%s\": the port must be 1 to 65535", s);
	return 0;
}

static int pass_item(struct parse *p, const char *where, const char *s, void *slot, void *ctx)
{
	return parse_pass_entry(p, where, s, slot);
}

static int parse_pass(struct parse *p, const char *path, json_t *v, struct ag_pass_conf **out,
		      int *nr)
{
	return parse_strings(p, path, v, sizeof(**out), (void **)out, nr, pass_item, NULL);
}

/* "server/name" patterns of an allow-list; server must be configured. */
static int pattern_item(struct parse *p, const char *where, const char *s, void *slot, void *ctx)
{
	const struct ag_conf *c = ctx;
	const char *slash = strchr(s, '/');
	bool known = false;

	if (!slash || slash == s || !slash[1])
		return badf(p, where, "\"%s\": expected \"SERVER/NAME\", where NAME may use '*'",
			    s);
	if (has_control(s))
		return badf(p, where, "\"%s\": contains a control character", s);
	for (int j = 0; j < c->nr_servers && !known; j++)
		known = strlen(c->servers[j].name) == (size_t)(slash - s) &&
			!strncmp(c->servers[j].name, s, (size_t)(slash - s));
	if (!known)
		return badf(p, where, "\"%s\": no tool server named \"%.*s\"", s, (int)(slash - s),
			    s);
	if (!(*(char **)slot = strdup(s)))
		return nomem(p);
	return 0;
}

static int parse_patterns(struct parse *p, const char *path, json_t *v, const struct ag_conf *c,
			  char ***out, int *nr)
{
	return parse_strings(p, path, v, sizeof(**out), (void **)out, nr, pattern_item, (void *)c);
}

/* An upstream on the host itself: 127/8, ::1 and the unspecified addresses. */
static bool addr_is_local(const uint8_t a[16])
{
	static const uint8_t v6_loopback[16] = { [15] = 1 }, v6_any[16];

	if (ag_addr_is_v4(a))
		return a[12] == 127 || !(a[12] | a[13] | a[14] | a[15]);
	return !memcmp(a, v6_loopback, 16) || !memcmp(a, v6_any, 16);
}

/* "http[s]://host[:port][/path]"; userinfo and fragments are refused. */
static int parse_upstream(struct parse *p, const char *path, const char *url,
			  struct ag_server_conf *s)
{
	const char *h, *end, *host_end, *port = NULL;
	char inner[INET6_ADDRSTRLEN + 1];
	uint8_t a6[16];

	if (!strncasecmp(url, "http://", 7)) {
		h = url + 7;
	} else if (!strncasecmp(url, "https://", 8)) {
		h = url + 8;
		s->upstream_tls = true;
	} else {
		return badf(p, path, "\"%s\": expected an http:// or https:// URL", url);
	}
	end = h + strcspn(h, "/?#");
	if (*end && *end != '/')
		return badf(p, path, "\"%s\": expected \"/\" after the host", url);
	if (memchr(h, '@', (size_t)(end - h)))
		return badf(p, path, "\"%s\": user information is not allowed in the URL", url);
	if (h[0] == '[') {
		const char *close = memchr(h, ']', (size_t)(end - h));
		size_t n = close ? (size_t)(close - h - 1) : 0;

		if (!close || n == 0 || n >= sizeof(inner))
			return badf(p, path, "\"%s\": expected \"[IPv6]\" as the host", url);
		memcpy(inner, h + 1, n);
		inner[n] = '\0';
		if (inet_pton(AF_INET6, inner, a6) != 1)
			return badf(p, path, "\"%s\": \"%s\" is not an IPv6 address", url, inner);
		host_end = close + 1;
		if (host_end < end && *host_end != ':')
			return badf(p, path, "\"%s\": expected \":PORT\" after \"]\"", url);
	} else {
		host_end = memchr(h, ':', (size_t)(end - h));
		if (!host_end)
			host_end = end;
	}
	if (host_end < end)
		port = host_end + 1;
	if (host_end - h >= AG_HOST_LEN)
		return badf(p, path, "\"%s\": the host name is too long", url);
	/* Brackets kept: upstream_host goes into URLs and Host headers as is. */
	for (const char *q = h; q < host_end; q++)
		s->upstream_host[q - h] = ascii_lower(*q);
	s->upstream_host[host_end - h] = '\0';
	if (h[0] != '[' && !dns_name_valid(s->upstream_host, false))
		return badf(p, path, "\"%s\": \"%s\" is not a host name or IPv4 address", url,
			    s->upstream_host);
	s->upstream_port = s->upstream_tls ? 443 : 80;
	if (port && !port_parse(port, (size_t)(end - port), &s->upstream_port))
		return badf(p, path, "\"%s\": the port must be 1 to 65535", url);
	if (strchr(end, '#'))
		return badf(p, path, "\"%s\": a fragment is never sent upstream", url);
	for (const char *q = end; *q; q++)
		if ((unsigned char)*q <= 0x20 || *q == 0x7f)
			return badf(p, path,
				    "\"%s\": the path contains a space or control character", url);
	if (strlen(end) >= sizeof(s->upstream_path))
		return badf(p, path, "\"%.40s...\": the path is too long", url);
	strcpy(s->upstream_path, end);
	return 0;
}

/*
 * Resolved once, at load: the relay must not block on DNS, and a typo
 * should stop the daemon from starting rather than fail every call.
 */
static int resolve_upstream(struct parse *p, const char *path, struct ag_server_conf *s)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res, *ai;
	char name[AG_HOST_LEN];
	size_t n = strlen(s->upstream_host);
	int ret;

	if (s->upstream_host[0] == '[') {
		memcpy(name, s->upstream_host + 1, n - 2);
		name[n - 2] = '\0';
	} else {
		memcpy(name, s->upstream_host, n + 1);
	}
	ret = getaddrinfo(name, NULL, &hints, &res);
	if (ret)
		return badf(p, path, "host \"%s\": %s", name,
			    ret == EAI_SYSTEM ? strerror(errno) : gai_strerror(ret));
	for (ai = res; ai; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET) {
			const struct sockaddr_in *sin = (const void *)ai->ai_addr;

			memset(s->upstream_addr, 0, 16);
			s->upstream_addr[10] = s->upstream_addr[11] = 0xff;
			memcpy(s->upstream_addr + 12, &sin->sin_addr, 4);
			break;
		}
		if (ai->ai_family == AF_INET6) {
			const struct sockaddr_in6 *sin6 = (const void *)ai->ai_addr;

			memcpy(s->upstream_addr, &sin6->sin6_addr, 16);
			break;
		}
	}
	freeaddrinfo(res);
	if (!ai)
		return badf(p, path, "host \"%s\": no IPv4 or IPv6 address", name);
	return 0;
}

static int parse_tls(struct parse *p, const char *path, json_t *t, struct ag_server_conf *s)
{
	static const char *const keys[] = { "ca_file", "server_name", NULL };
	char where[320];
	const char *v;
	json_t *e;
	int ret;

	if ((ret = check_keys(p, path, t, keys)))
		return ret;
	if (!s->upstream_tls)
		return bad(p, path, "only applies to an https:// upstream");
	if ((e = json_object_get(t, "ca_file"))) {
		struct stat st;
		int fd;

		snprintf(where, sizeof(where), "%s.ca_file", path);
		if ((ret = get_string(p, where, e, &v)))
			return ret;
		if (!*v || strlen(v) >= sizeof(s->ca_file))
			return bad(p, where, "expected a file name");
		/* Checked now so that a missing CA fails the start, not every call. */
		fd = open(v, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return badf(p, where, "%s: %s", v, strerror(errno));
		ret = fstat(fd, &st);
		close(fd);
		if (ret || !S_ISREG(st.st_mode))
			return badf(p, where, "%s: not a regular file", v);
		strcpy(s->ca_file, v);
	}
	if ((e = json_object_get(t, "server_name"))) {
		uint8_t a[16];

		snprintf(where, sizeof(where), "%s.server_name", path);
		if ((ret = get_string(p, where, e, &v)))
			return ret;
		if (!host_copy(s->server_name, v, strlen(v)) ||
		    (!dns_name_valid(s->server_name, false) &&
		     inet_pton(AF_INET6, s->server_name, a) != 1))
			return badf(p, where, "\"%s\": expected a host name or address", v);
	}
	return 0;
}

static int parse_match(struct parse *p, const char *path, json_t *m, struct ag_server_conf *s)
{
	static const char *const keys[] = { "hosts", "ports", "addresses", NULL };
	char where[320];
	size_t i, n;
	json_t *v, *e;
	int ret;

	if (!m)
		return bad(p, path, "required: hosts or addresses to recognize the server by");
	if ((ret = check_keys(p, path, m, keys)))
		return ret;
	if ((v = json_object_get(m, "hosts"))) {
		snprintf(where, sizeof(where), "%s.hosts", path);
		if (!(s->hosts = get_array(p, where, v, sizeof(*s->hosts), &n, &ret)))
			return ret;
		json_array_foreach(v, i, e)
		{
			const char *h;

			snprintf(where, sizeof(where), "%s.hosts[%zu]", path, i);
			if ((ret = get_string(p, where, e, &h)))
				return ret;
			if (!host_copy(s->hosts[i], h, strlen(h)) ||
			    !dns_name_valid(s->hosts[i], true))
				return badf(p, where,
					    "\"%s\": expected a host name or \"*.suffix\"", h);
			s->nr_hosts++;
		}
	}
	if ((v = json_object_get(m, "ports"))) {
		snprintf(where, sizeof(where), "%s.ports", path);
		if (!(s->ports = get_array(p, where, v, sizeof(*s->ports), &n, &ret)))
			return ret;
		json_array_foreach(v, i, e)
		{
			snprintf(where, sizeof(where), "%s.ports[%zu]", path, i);
			if (!json_is_integer(e) || json_integer_value(e) < 1 ||
			    json_integer_value(e) > 65535)
				return bad(p, where, "expected a port from 1 to 65535");
			s->ports[s->nr_ports++] = (uint16_t)json_integer_value(e);
		}
	}
	if ((v = json_object_get(m, "addresses"))) {
		snprintf(where, sizeof(where), "%s.addresses", path);
		if (!(s->addrs = get_array(p, where, v, sizeof(*s->addrs), &n, &ret)))
			return ret;
		json_array_foreach(v, i, e)
		{
			struct ag_rule_conf *r = &s->addrs[i];
			const char *a;

			snprintf(where, sizeof(where), "%s.addresses[%zu]", path, i);
			if ((ret = get_string(p, where, e, &a)))
				return ret;
			if (ag_addr_parse(a, r->addr, &r->prefixlen))
				return badf(p, where, "\"%s\": expected an address or CIDR", a);
			s->nr_addrs++;
		}
	}
	if (!s->nr_hosts && !s->nr_addrs)
		return bad(p, path, "needs at least one of hosts or addresses");
	return 0;
}

/* A path in the file; relative ones are resolved against the config's directory. */
static int config_path(struct parse *p, const char *path, json_t *v, char out[PATH_MAX])
{
	const char *s;
	int ret, n;

	if ((ret = get_string(p, path, v, &s)))
		return ret;
	if (!*s)
		return bad(p, path, "expected a path");
	n = s[0] == '/' ? snprintf(out, PATH_MAX, "%s", s)
			: snprintf(out, PATH_MAX, "%s/%s", p->dir, s);
	if (n < 0 || n >= PATH_MAX)
		return bad(p, path, "path too long");
	return 0;
}

static int parse_audit(struct parse *p, json_t *v, struct ag_conf *c)
{
	static const char *const keys[] = { "durability", "rotate_bytes", "syslog", NULL };
	json_t *e;
	uint64_t n;
	int ret;

	if ((ret = check_keys(p, "$.audit", v, keys)))
		return ret;
	if ((e = json_object_get(v, "durability"))) {
		const char *d;

		if ((ret = get_string(p, "$.audit.durability", e, &d)))
			return ret;
		if ((c->audit_durability = ag_audit_durability_parse(d)) < 0)
			return badf(p, "$.audit.durability",
				    "\"%s\": expected \"sync\", \"batch\" or \"none\"", d);
	}
	if ((e = json_object_get(v, "rotate_bytes"))) {
		if ((ret = get_uint(p, "$.audit.rotate_bytes", e, UINT64_MAX >> 1, &n)))
			return ret;
		/* A file smaller than a checkpoint and a few records would rotate forever. */
		if (n && n < 65536)
			return bad(p, "$.audit.rotate_bytes", "must be 0 (never) or at least 65536");
		c->audit_rotate_bytes = n;
	}
	if ((e = json_object_get(v, "syslog")) &&
	    (ret = config_path(p, "$.audit.syslog", e, c->audit_syslog)))
		return ret;
	return 0;
}

/* Fields the gateway owns or that frame the message: never a credential. */
static bool cred_header_ok(const char *h)
{
	static const char *const reserved[] = {
		"host",	      "content-length", "transfer-encoding", "connection", "keep-alive",
		"upgrade",    "te",		"trailer",	     "cookie",	   "origin",
		"proxy-connection", NULL,
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

/* An optional string member of at most cap - 1 bytes, copied into out. */
static int get_optional(struct parse *p, const char *path, json_t *obj, const char *key,
			char *out, size_t cap)
{
	char where[400];
	const char *v;
	int ret;

	if (!json_object_get(obj, key))
		return 0;
	snprintf(where, sizeof(where), "%s.%s", path, key);
	if ((ret = get_string(p, where, json_object_get(obj, key), &v)))
		return ret;
	if (!*v || strlen(v) >= cap)
		return badf(p, where, "expected 1-%zu bytes", cap - 1);
	for (const char *c = v; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return bad(p, where, "contains a control character");
	memcpy(out, v, strlen(v) + 1);
	return 0;
}

/* Members a credential type takes beyond "type"; the rest are refused. */
static const char *const *cred_keys(enum ag_cred_kind k)
{
	static const char *const bearer[] = { "type", "secret_file", NULL };
	static const char *const header[] = { "type", "secret_file", "header", NULL };
	static const char *const oauth[] = { "type",	      "token_url", "client_id",
					     "client_secret_file", "scope",	   "resource",
					     "audience",	      "ca_file",   NULL };
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

static int parse_oauth(struct parse *p, const char *path, json_t *v, struct ag_server_conf *s)
{
	char where[400];
	int ret;

	snprintf(where, sizeof(where), "%s.token_url", path);
	if (!json_object_get(v, "token_url"))
		return bad(p, where, "required for \"type\": \"oauth2_client_credentials\"");
	if ((ret = get_optional(p, path, v, "token_url", s->oauth_token_url,
				sizeof(s->oauth_token_url))))
		return ret;
	if (strncmp(s->oauth_token_url, "https://", 8) && strncmp(s->oauth_token_url, "http://", 7))
		return badf(p, where, "\"%s\": expected an http:// or https:// URL",
			    s->oauth_token_url);
	snprintf(where, sizeof(where), "%s.client_id", path);
	if (!json_object_get(v, "client_id"))
		return bad(p, where, "required for \"type\": \"oauth2_client_credentials\"");
	if ((ret = get_optional(p, path, v, "client_id", s->oauth_client_id,
				sizeof(s->oauth_client_id))) ||
	    (ret = get_optional(p, path, v, "scope", s->oauth_scope, sizeof(s->oauth_scope))) ||
	    (ret = get_optional(p, path, v, "resource", s->oauth_resource,
				sizeof(s->oauth_resource))) ||
	    (ret = get_optional(p, path, v, "audience", s->cred_audience,
				sizeof(s->cred_audience))))
		return ret;
	snprintf(where, sizeof(where), "%s.ca_file", path);
	if (json_object_get(v, "ca_file") &&
	    (ret = config_path(p, where, json_object_get(v, "ca_file"), s->oauth_ca_file)))
		return ret;
	snprintf(where, sizeof(where), "%s.client_secret_file", path);
	return config_path(p, where, json_object_get(v, "client_secret_file"), s->cred_file);
}

static int parse_assertion(struct parse *p, const char *path, json_t *v,
			   struct ag_server_conf *s)
{
	char where[400], alg[16] = "EdDSA";
	enum ag_jwt_alg a;
	struct ag_err why;
	uint64_t ttl = AG_JWT_MAX_TTL;
	int ret;

	if ((ret = get_optional(p, path, v, "audience", s->cred_audience,
				sizeof(s->cred_audience))) ||
	    (ret = get_optional(p, path, v, "alg", alg, sizeof(alg))))
		return ret;
	snprintf(where, sizeof(where), "%s.alg", path);
	if (ag_jwt_alg_parse(alg, &a, &why))
		return badf(p, where, "\"%s\": expected \"EdDSA\" or \"ES256\"", alg);
	s->assertion_alg = a;
	snprintf(where, sizeof(where), "%s.ttl_s", path);
	if (json_object_get(v, "ttl_s") &&
	    (ret = get_uint(p, where, json_object_get(v, "ttl_s"), AG_JWT_MAX_TTL, &ttl)))
		return ret;
	if (!ttl)
		return badf(p, where, "expected 1-%d seconds", AG_JWT_MAX_TTL);
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
static int parse_credential(struct parse *p, const char *path, json_t *v,
			    struct ag_server_conf *s)
{
	char where[320];
	struct ag_secret *sec = NULL;
	const char *type, *hdr;
	int ret;

	if (!json_is_object(v))
		return bad(p, path, "expected an object");
	snprintf(where, sizeof(where), "%s.type", path);
	if ((ret = get_string(p, where, json_object_get(v, "type"), &type)))
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
		return badf(p, where,
			    "\"%s\": expected \"bearer\", \"header\", "
			    "\"oauth2_client_credentials\" or \"assertion\"",
			    type);
	if ((ret = check_keys(p, path, v, cred_keys(s->cred))))
		return ret;
	if (s->cred == AG_CRED_ASSERTION)
		return parse_assertion(p, path, v, s);
	if (s->cred == AG_CRED_OAUTH) {
		if ((ret = parse_oauth(p, path, v, s)))
			return ret;
	} else {
		if (s->cred == AG_CRED_HEADER) {
			snprintf(where, sizeof(where), "%s.header", path);
			if ((ret = get_string(p, where, json_object_get(v, "header"), &hdr)))
				return ret;
			if (!cred_header_ok(hdr))
				return badf(p, where,
					    "\"%s\": expected a field name the gateway does not own",
					    hdr);
			snprintf(s->cred_header, sizeof(s->cred_header), "%s", hdr);
		}
		snprintf(where, sizeof(where), "%s.secret_file", path);
		if ((ret = config_path(p, where, json_object_get(v, "secret_file"), s->cred_file)))
			return ret;
	}
	if (ag_secret_load(s->cred_file, 0, &sec, p->err))
		return -EINVAL; /* the message names the file and the fix */
	ag_secret_free(sec);
	return 0;
}

/* Secrets that must never reach an agent's context, masked unless configured otherwise. */
static const enum ag_redact_detector default_detectors[] = { AG_DET_PEM_KEY, AG_DET_BEARER,
							     AG_DET_CLOUD_KEY };

static int default_output_rules(struct parse *p, struct ag_server_conf *s)
{
	size_t n = AG_ARRAY_SIZE(default_detectors);

	if (!(s->out_rules = calloc(n, sizeof(*s->out_rules))))
		return nomem(p);
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
static int parse_rule_tools(struct parse *p, const char *path, json_t *v,
			    struct ag_output_rule *r)
{
	char where[448];
	size_t i, n;
	json_t *e;
	int ret;

	if (!(r->tools = get_array(p, path, v, sizeof(*r->tools), &n, &ret)))
		return ret;
	if (!n)
		return bad(p, path, "expected at least one tool name (leave \"tools\" out for all)");
	json_array_foreach(v, i, e)
	{
		const char *t;

		snprintf(where, sizeof(where), "%s[%zu]", path, i);
		if ((ret = get_string(p, where, e, &t)))
			return ret;
		if (!*t || strlen(t) > 255)
			return bad(p, where, "expected a tool name of 1-255 bytes");
		if (!(r->tools[i] = strdup(t)))
			return nomem(p);
		r->nr_tools++;
	}
	return 0;
}

static int parse_output_rule(struct parse *p, const char *path, json_t *v,
			     struct ag_output_rule *r)
{
	static const char *const keys[] = { "name", "detector", "path", "regex",
					    "action", "tools",	  NULL };
	static const char *const kinds[] = { "detector", "path", "regex" };
	char where[400];
	const char *str = NULL, *name;
	json_t *e;
	int ret, found = 0;

	if ((ret = check_keys(p, path, v, keys)))
		return ret;
	snprintf(where, sizeof(where), "%s.name", path);
	if ((ret = get_string(p, where, json_object_get(v, "name"), &name)))
		return ret;
	if (!ag_agent_name_valid(name))
		return bad(p, where,
			   "expected a name of 1-31 of [A-Za-z0-9_.-], not starting with '.' or '-'");
	snprintf(r->name, sizeof(r->name), "%s", name);
	for (size_t k = 0; k < AG_ARRAY_SIZE(kinds); k++) {
		if (!(e = json_object_get(v, kinds[k])))
			continue;
		snprintf(where, sizeof(where), "%s.%s", path, kinds[k]);
		if ((ret = get_string(p, where, e, &str)))
			return ret;
		r->kind = k == 0 ? AG_RULE_DETECTOR : k == 1 ? AG_RULE_PATH : AG_RULE_REGEX;
		found++;
	}
	if (found != 1)
		return bad(p, path, "expected exactly one of \"detector\", \"path\" and \"regex\"");
	if (r->kind == AG_RULE_DETECTOR) {
		enum ag_redact_detector d;

		if (ag_redact_detector_parse(str, &d))
			return badf(p, where,
				    "\"%s\": expected \"pem_private_key\", \"bearer_token\", "
				    "\"cloud_access_key\", \"credit_card\" or \"email\"",
				    str);
		r->detector = d;
	} else if (!(r->text = strdup(str))) {
		return nomem(p);
	}
	r->action = AG_ACT_MASK;
	if ((e = json_object_get(v, "action"))) {
		const char *a;

		snprintf(where, sizeof(where), "%s.action", path);
		if ((ret = get_string(p, where, e, &a)))
			return ret;
		if (!strcmp(a, "refuse"))
			r->action = AG_ACT_REFUSE;
		else if (strcmp(a, "mask"))
			return badf(p, where, "\"%s\": expected \"mask\" or \"refuse\"", a);
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
	struct ag_redact_rule rules[AG_REDACT_MAX_RULES];
	struct ag_redactor *check;
	struct ag_err why;
	char where[352];
	size_t i, n;
	json_t *e;
	int ret;

	if (!(s->out_rules = get_array(p, path, v, sizeof(*s->out_rules), &n, &ret)))
		return ret;
	if (n > AG_REDACT_MAX_RULES)
		return badf(p, path, "too many rules (at most %d)", AG_REDACT_MAX_RULES);
	json_array_foreach(v, i, e)
	{
		snprintf(where, sizeof(where), "%s[%zu]", path, i);
		s->nr_out_rules++;
		if ((ret = parse_output_rule(p, where, e, &s->out_rules[i])))
			return ret;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(s->out_rules[j].name, s->out_rules[i].name))
				return badf(p, where, "duplicate rule name \"%s\"",
					    s->out_rules[i].name);
	}
	/* A bad path or regex is the file's error, not a surprise at the first call. */
	ag_output_rules_view(s, rules);
	if (!(check = ag_redactor_new(rules, n, 0, &why)))
		return badf(p, path, "%s", why.msg);
	ag_redactor_free(check);
	return 0;
}

static int parse_servers(struct parse *p, json_t *arr, struct ag_conf *c)
{
	static const char *const keys[] = { "name",	  "match",	"upstream",
					    "tls",	  "credential", "audit_args",
					    "trust",	  "output_rules", NULL };
	size_t i, n = json_array_size(arr);
	char where[256];
	json_t *e;

	if (!json_is_array(arr))
		return bad(p, "$.tool_servers", "expected an array");
	if (n > AG_MAX_CONF_SERVERS)
		return badf(p, "$.tool_servers", "too many tool servers (at most %d)",
			    AG_MAX_CONF_SERVERS);
	c->servers = calloc(n ? n : 1, sizeof(*c->servers));
	if (!c->servers)
		return nomem(p);
	json_array_foreach(arr, i, e)
	{
		struct ag_server_conf *s = &c->servers[i];
		const char *v;
		int ret;

		snprintf(where, sizeof(where), "$.tool_servers[%zu]", i);
		if ((ret = check_keys(p, where, e, keys)))
			return ret;
		c->nr_servers++;
		snprintf(where, sizeof(where), "$.tool_servers[%zu].name", i);
		if ((ret = get_string(p, where, json_object_get(e, "name"), &v)))
			return ret;
		if (!ag_agent_name_valid(v))
			return bad(p, where,
				   "expected a name of 1-31 of [A-Za-z0-9_.-], not starting with "
				   "'.' or '-'");
		for (size_t j = 0; j < i; j++)
			if (!strcmp(c->servers[j].name, v))
				return badf(p, where, "duplicate tool server name \"%s\"", v);
		strcpy(s->name, v);
		snprintf(where, sizeof(where), "$.tool_servers[%zu].upstream", i);
		if ((ret = get_string(p, where, json_object_get(e, "upstream"), &v)) ||
		    (ret = parse_upstream(p, where, v, s)) || (ret = resolve_upstream(p, where, s)))
			return ret;
		if (addr_is_local(s->upstream_addr) && s->upstream_port == c->port)
			return badf(p, where,
				    "\"%s\": that is the gateway's own listener (port %u): it "
				    "would loop",
				    v, c->port);
		snprintf(where, sizeof(where), "$.tool_servers[%zu].match", i);
		if ((ret = parse_match(p, where, json_object_get(e, "match"), s)))
			return ret;
		snprintf(where, sizeof(where), "$.tool_servers[%zu].tls", i);
		if (json_object_get(e, "tls") &&
		    (ret = parse_tls(p, where, json_object_get(e, "tls"), s)))
			return ret;
		snprintf(where, sizeof(where), "$.tool_servers[%zu].credential", i);
		if (json_object_get(e, "credential") &&
		    (ret = parse_credential(p, where, json_object_get(e, "credential"), s)))
			return ret;
		s->audit_args = AG_AUDIT_REDACT_HASH;
		snprintf(where, sizeof(where), "$.tool_servers[%zu].audit_args", i);
		if (json_object_get(e, "audit_args")) {
			enum ag_audit_redact mode;

			if ((ret = get_string(p, where, json_object_get(e, "audit_args"), &v)))
				return ret;
			if (ag_audit_redact_parse(v, &mode))
				return badf(p, where, "\"%s\": expected \"hash\", \"full\" or \"drop\"",
					    v);
			s->audit_args = mode;
		}
		snprintf(where, sizeof(where), "$.tool_servers[%zu].trust", i);
		s->trust = AG_TRUST_ON_FIRST_USE;
		if (json_object_get(e, "trust")) {
			if ((ret = get_string(p, where, json_object_get(e, "trust"), &v)))
				return ret;
			if (!strcmp(v, "explicit"))
				s->trust = AG_TRUST_EXPLICIT;
			else if (strcmp(v, "on-first-use"))
				return badf(p, where,
					    "\"%s\": expected \"on-first-use\" or \"explicit\"", v);
		}
		snprintf(where, sizeof(where), "$.tool_servers[%zu].output_rules", i);
		ret = json_object_get(e, "output_rules")
			      ? parse_output_rules(p, where, json_object_get(e, "output_rules"), s)
			      : default_output_rules(p, s);
		if (ret)
			return ret;
		if (!s->server_name[0]) {
			size_t hn = strlen(s->upstream_host);

			if (s->upstream_host[0] == '[')
				snprintf(s->server_name, sizeof(s->server_name), "%.*s",
					 (int)(hn - 2), s->upstream_host + 1);
			else
				strcpy(s->server_name, s->upstream_host);
		}
	}
	return 0;
}

/* "operator" and "attributes": what policies see of the agent. */
static int parse_agent_policy(struct parse *p, const char *path, json_t *a,
			      struct ag_agent_conf *ac)
{
	char where[320];
	const char *v, *key;
	json_t *e, *val;
	int ret;

	if ((e = json_object_get(a, "operator"))) {
		snprintf(where, sizeof(where), "%s.operator", path);
		if ((ret = get_string(p, where, e, &v)))
			return ret;
		if (!*v || strlen(v) >= sizeof(ac->operator_name))
			return badf(p, where, "expected a user name of 1 to %zu bytes",
				    sizeof(ac->operator_name) - 1);
		strcpy(ac->operator_name, v);
	}
	if (!(e = json_object_get(a, "attributes")))
		return 0;
	snprintf(where, sizeof(where), "%s.attributes", path);
	if (!json_is_object(e))
		return bad(p, where, "expected an object");
	json_object_foreach(e, key, val)
	{
		snprintf(where, sizeof(where), "%s.attributes.%s", path, key);
		/* Scalars only: they are what owner/team/trust need, and each
		 * maps to exactly one Cedar type. */
		if (!*key)
			return bad(p, where, "expected a non-empty attribute name");
		if (json_is_string(val) && (ret = get_string(p, where, val, &v)))
			return ret;
		if (!json_is_string(val) && !json_is_integer(val) && !json_is_boolean(val))
			return bad(p, where, "expected a string, an integer or a boolean");
	}
	if (!(ac->attributes = json_dumps(e, JSON_COMPACT | JSON_SORT_KEYS)))
		return nomem(p);
	return 0;
}

/* "delegated_by": agent names; they need not be configured agents themselves. */
static int parse_delegated_by(struct parse *p, const char *path, json_t *v,
			      struct ag_agent_conf *ac)
{
	char where[320];
	size_t i, n;
	json_t *e;
	int ret;

	if (!(ac->delegated_by = get_array(p, path, v, sizeof(*ac->delegated_by), &n, &ret)))
		return ret;
	json_array_foreach(v, i, e)
	{
		const char *s;

		snprintf(where, sizeof(where), "%s[%zu]", path, i);
		if ((ret = get_string(p, where, e, &s)))
			return ret;
		if (!ag_agent_name_valid(s))
			return badf(p, where, "\"%s\": expected an agent name of [A-Za-z0-9_.-]", s);
		if (!strcmp(s, ac->name))
			return badf(p, where, "\"%s\": an agent cannot delegate to itself", s);
		for (size_t j = 0; j < i; j++)
			if (!strcmp(ac->delegated_by[j], s))
				return badf(p, where, "duplicate agent name \"%s\"", s);
		strcpy(ac->delegated_by[i], s);
		ac->nr_delegated_by++;
	}
	return 0;
}

/* "unix_sockets": exact addresses, as ag_unix_key_make() takes them. */
static int unix_item(struct parse *p, const char *where, const char *s, void *slot, void *ctx)
{
	const struct ag_agent_conf *ac = ctx;
	struct ag_unix_key key;
	int ret;

	if (has_control(s))
		return bad(p, where, "contains a control character");
	ret = ag_unix_key_make(0, s, &key);
	if (ret == -ENAMETOOLONG)
		return badf(p, where, "\"%s\": longer than a socket address (%d bytes)", s,
			    AG_UNIX_PATH_LEN);
	if (ret)
		return badf(p, where, "\"%s\": expected an absolute path or \"@NAME\" (abstract)",
			    s);
	for (int j = 0; j < ac->nr_unix_sockets; j++)
		if (!strcmp(ac->unix_sockets[j], s))
			return badf(p, where, "duplicate address \"%s\"", s);
	strcpy(slot, s);
	return 0;
}

static int parse_unix_sockets(struct parse *p, const char *path, json_t *v,
			      struct ag_agent_conf *ac)
{
	size_t n = 0;
	int ret;

	if ((ret = get_list(p, path, v, &n)))
		return ret;
	if (n > AG_MAX_UNIX_SOCKETS)
		return badf(p, path, "too many entries (at most %d)", AG_MAX_UNIX_SOCKETS);
	return parse_strings(p, path, v, sizeof(*ac->unix_sockets), (void **)&ac->unix_sockets,
			     &ac->nr_unix_sockets, unix_item, ac);
}

/* One entry of a "dns" block: a host name, "*.suffix", and in allow "*" (ctx non-NULL). */
static int dns_item(struct parse *p, const char *where, const char *h, void *slot, void *star)
{
	char *name = slot;

	if (!host_copy(name, h, strlen(h)) ||
	    !((star && !strcmp(name, "*")) || dns_name_valid(name, true)))
		return badf(p, where, "\"%s\": expected a host name or \"*.suffix\"%s", h,
			    star ? " or \"*\"" : "");
	return 0;
}

static int parse_dns_names(struct parse *p, const char *path, json_t *v, bool star,
			   char (**out)[AG_HOST_LEN], int *nr)
{
	static const char yes;

	return parse_strings(p, path, v, sizeof(**out), (void **)out, nr, dns_item,
			     star ? (void *)&yes : NULL);
}

static int parse_dns(struct parse *p, const char *path, json_t *v, struct ag_dns_conf *d)
{
	static const char *const keys[] = { "allow", "deny", NULL };
	char where[300];
	json_t *e;
	int ret;

	if ((ret = check_keys(p, path, v, keys)))
		return ret;
	dns_conf_free(d);
	d->set = true;
	snprintf(where, sizeof(where), "%s.allow", path);
	if ((e = json_object_get(v, "allow"))) {
		d->allow_set = true;
		if ((ret = parse_dns_names(p, where, e, true, &d->allow, &d->nr_allow)))
			return ret;
	}
	snprintf(where, sizeof(where), "%s.deny", path);
	if ((e = json_object_get(v, "deny")) &&
	    (ret = parse_dns_names(p, where, e, false, &d->deny, &d->nr_deny)))
		return ret;
	return 0;
}

static int parse_agents(struct parse *p, json_t *arr, struct ag_conf *c)
{
	static const char *const keys[] = { "name",	   "verdict",	  "rules",    "quota",
					    "tools",	   "resources",	  "prompts",  "passthrough",
					    "operator",	   "attributes", "delegated_by",
					    "loop_protection", "max_conns", "unix_sockets", "dns",
					    NULL };
	size_t i, n = json_array_size(arr);
	json_t *a;
	char where[256];

	if (!json_is_array(arr))
		return bad(p, "$.agents", "expected an array");
	if (n > AG_MAX_CONF_AGENTS)
		return bad(p, "$.agents", "too many agents (at most 256)");
	c->agents = calloc(n ? n : 1, sizeof(*c->agents));
	if (!c->agents)
		return ag_errf(p->err, ENOMEM, "%s: out of memory", p->file);
	json_array_foreach(arr, i, a)
	{
		struct ag_agent_conf *ac = &c->agents[i];
		json_t *name = json_object_get(a, "name");
		int ret;

		snprintf(where, sizeof(where), "$.agents[%zu]", i);
		if ((ret = check_keys(p, where, a, keys)))
			return ret;
		c->nr_agents++;
		snprintf(where, sizeof(where), "$.agents[%zu].name", i);
		if (!json_is_string(name) || !ag_agent_name_valid(json_string_value(name)))
			return bad(p, where, "expected an agent name of [A-Za-z0-9_.-]");
		for (size_t j = 0; j < i; j++)
			if (!strcmp(c->agents[j].name, json_string_value(name)))
				return bad(p, where, "duplicate agent name");
		snprintf(ac->name, sizeof(ac->name), "%s", json_string_value(name));
		ac->verdict = c->default_verdict;
		snprintf(where, sizeof(where), "$.agents[%zu].verdict", i);
		if (json_object_get(a, "verdict") &&
		    (ret = get_verdict(p, where, json_object_get(a, "verdict"), &ac->verdict)))
			return ret;
		snprintf(where, sizeof(where), "$.agents[%zu].quota", i);
		if (json_object_get(a, "quota") &&
		    (ret = parse_quota(p, where, json_object_get(a, "quota"), ac)))
			return ret;
		snprintf(where, sizeof(where), "$.agents[%zu].max_conns", i);
		if (json_object_get(a, "max_conns")) {
			uint64_t mc;

			if ((ret = get_uint(p, where, json_object_get(a, "max_conns"),
					    AG_MAX_CONNS_LIMIT, &mc)))
				return ret;
			if (!mc)
				return bad(p, where, "must not be 0");
			ac->max_conns = (uint32_t)mc;
		}
		snprintf(where, sizeof(where), "$.agents[%zu].loop_protection", i);
		if (json_object_get(a, "loop_protection") &&
		    (ret = parse_loop_protection(p, where, json_object_get(a, "loop_protection"),
						 ac)))
			return ret;
		snprintf(where, sizeof(where), "$.agents[%zu].rules", i);
		if (json_object_get(a, "rules") &&
		    (ret = parse_rules(p, where, json_object_get(a, "rules"), &ac->rules,
				       &ac->nr_rules)))
			return ret;
		snprintf(where, sizeof(where), "$.agents[%zu].tools", i);
		if (json_object_get(a, "tools") &&
		    (ret = parse_patterns(p, where, json_object_get(a, "tools"), c, &ac->tools,
					  &ac->nr_tools)))
			return ret;
		snprintf(where, sizeof(where), "$.agents[%zu].resources", i);
		if (json_object_get(a, "resources") &&
		    (ret = parse_patterns(p, where, json_object_get(a, "resources"), c,
					  &ac->resources, &ac->nr_resources)))
			return ret;
		snprintf(where, sizeof(where), "$.agents[%zu].prompts", i);
		if (json_object_get(a, "prompts") &&
		    (ret = parse_patterns(p, where, json_object_get(a, "prompts"), c, &ac->prompts,
					  &ac->nr_prompts)))
			return ret;
		snprintf(where, sizeof(where), "$.agents[%zu]", i);
		if ((ret = parse_agent_policy(p, where, a, ac)))
			return ret;
		snprintf(where, sizeof(where), "$.agents[%zu].delegated_by", i);
		if (json_object_get(a, "delegated_by") &&
		    (ret = parse_delegated_by(p, where, json_object_get(a, "delegated_by"), ac)))
			return ret;
		snprintf(where, sizeof(where), "$.agents[%zu].unix_sockets", i);
		if (json_object_get(a, "unix_sockets") &&
		    (ret = parse_unix_sockets(p, where, json_object_get(a, "unix_sockets"), ac)))
			return ret;
		snprintf(where, sizeof(where), "$.agents[%zu].dns", i);
		if (json_object_get(a, "dns") &&
		    (ret = parse_dns(p, where, json_object_get(a, "dns"), &ac->dns)))
			return ret;
		snprintf(where, sizeof(where), "$.agents[%zu].passthrough", i);
		if (json_object_get(a, "passthrough")) {
			ac->pass_set = true;
			if ((ret = parse_pass(p, where, json_object_get(a, "passthrough"),
					      &ac->pass, &ac->nr_pass)))
				return ret;
		}
	}
	return 0;
}


/*
 * "policy": {"dir": DIR | "files": [FILE...], "entities": FILE}.  Only
 * the shape is checked here: the daemon parses the files, so that a
 * reload reads them again and reports errors by file:line:column.
 */
static int parse_policy(struct parse *p, json_t *v, struct ag_policy_conf *pc)
{
	static const char *const keys[] = { "dir", "files", "entities", NULL };
	json_t *dir = json_object_get(v, "dir"), *files = json_object_get(v, "files"), *f;
	char where[64];
	size_t i, n;
	int ret;

	if ((ret = check_keys(p, "$.policy", v, keys)))
		return ret;
	if (!dir == !files)
		return bad(p, "$.policy", "expected exactly one of \"dir\" and \"files\"");
	if (dir && (ret = config_path(p, "$.policy.dir", dir, pc->dir)))
		return ret;
	if (files) {
		if (!(pc->files = get_array(p, "$.policy.files", files, sizeof(*pc->files), &n,
					    &ret)))
			return ret;
		if (!n)
			return bad(p, "$.policy.files", "expected at least one file");
		json_array_foreach(files, i, f)
		{
			snprintf(where, sizeof(where), "$.policy.files[%zu]", i);
			if ((ret = config_path(p, where, f, pc->files[i])))
				return ret;
			pc->nr_files++;
		}
	}
	if ((v = json_object_get(v, "entities")) &&
	    (ret = config_path(p, "$.policy.entities", v, pc->entities)))
		return ret;
	pc->set = true;
	return 0;
}

/* "agent_uids": a range of plain uids, never root, none above INT32_MAX. */
static int parse_agent_uids(struct parse *p, json_t *v, struct ag_conf *c)
{
	static const char *const keys[] = { "min", "max", NULL };
	uint64_t lo, hi;
	int ret;

	if ((ret = check_keys(p, "$.agent_uids", v, keys)) ||
	    (ret = get_uint(p, "$.agent_uids.min", json_object_get(v, "min"), INT32_MAX, &lo)) ||
	    (ret = get_uint(p, "$.agent_uids.max", json_object_get(v, "max"), INT32_MAX, &hi)))
		return ret;
	if (!lo || lo > hi)
		return bad(p, "$.agent_uids", "expected 1 <= min <= max");
	c->agent_uid_min = (uint32_t)lo;
	c->agent_uid_max = (uint32_t)hi;
	return 0;
}

/* Fair sharing (daemon/fair.h): timeouts of agent connections, connection caps. */
static int parse_limits(struct parse *p, json_t *v, struct ag_conf *c)
{
	static const char *const keys[] = { "header_timeout_ms", "idle_timeout_ms",
					    "max_conns_per_agent", NULL };
	static const struct {
		const char *key, *path;
		uint64_t max;
		size_t off;
	} f[] = {
		{ "header_timeout_ms", "$.limits.header_timeout_ms", 3600000,
		  offsetof(struct ag_conf, header_timeout_ms) },
		{ "idle_timeout_ms", "$.limits.idle_timeout_ms", 86400000,
		  offsetof(struct ag_conf, idle_timeout_ms) },
		{ "max_conns_per_agent", "$.limits.max_conns_per_agent", AG_MAX_CONNS_LIMIT,
		  offsetof(struct ag_conf, max_conns_per_agent) },
	};
	uint64_t n;
	int ret;

	if ((ret = check_keys(p, "$.limits", v, keys)))
		return ret;
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		json_t *e = json_object_get(v, f[i].key);

		if (!e)
			continue;
		if ((ret = get_uint(p, f[i].path, e, f[i].max, &n)))
			return ret;
		/* Fail closed: no limit at all is what let one agent starve the rest. */
		if (!n)
			return bad(p, f[i].path, "must not be 0");
		*(uint32_t *)((char *)c + f[i].off) = (uint32_t)n;
	}
	return 0;
}

static bool cidr_contains(const uint8_t net[16], int prefixlen, const uint8_t addr[16]);

/* Whether a "direct" rule lets agents' connects reach addr:port untouched. */
static bool direct_reaches(const struct ag_rule_conf *r, int n, const uint8_t addr[16],
			   uint16_t port)
{
	for (int i = 0; i < n; i++)
		if (r[i].verdict == AG_VERDICT_DIRECT && (!r[i].port || r[i].port == port) &&
		    cidr_contains(r[i].addr, r[i].prefixlen, addr))
			return true;
	return false;
}

/*
 * Fail closed: the endpoint must stay out of agents' reach, and "direct"
 * connects never come to the daemon that would refuse them.  0.0.0.0 and
 * [::] reach a loopback listener too.
 */
static int metrics_unreachable(struct parse *p, const struct ag_conf *c)
{
	uint8_t any[2][16] = { { [10] = 0xff, [11] = 0xff } };
	const char *why = "a \"direct\" rule lets agents reach it: narrow the rule";

	if (c->default_verdict == AG_VERDICT_DIRECT)
		return bad(p, "$.metrics.listen",
			   "default_verdict \"direct\" lets agents reach it");
	for (int i = 0; i < c->nr_agents; i++)
		if (c->agents[i].verdict == AG_VERDICT_DIRECT)
			return bad(p, "$.metrics.listen",
				   "an agent's verdict \"direct\" lets it reach it");
	for (int k = 0; k < 3; k++) {
		const uint8_t *a = k == 2 ? c->metrics_addr : any[k];

		if (direct_reaches(c->rules, c->nr_rules, a, c->metrics_port))
			return bad(p, "$.metrics.listen", why);
		for (int i = 0; i < c->nr_agents; i++)
			if (direct_reaches(c->agents[i].rules, c->agents[i].nr_rules, a,
					   c->metrics_port))
				return bad(p, "$.metrics.listen", why);
	}
	return 0;
}

/*
 * "metrics": {"listen": "ADDRESS:PORT"}: a loopback address only, since
 * the endpoint answers anyone who reaches it (agents never do: the daemon
 * refuses it as their destination).
 */
static int parse_metrics(struct parse *p, json_t *v, struct ag_conf *c)
{
	static const char *const keys[] = { "listen", NULL };
	static const uint8_t lo6[16] = { [15] = 1 };
	struct ag_pass_conf pc;
	json_t *l;
	int ret;

	if ((ret = check_keys(p, "$.metrics", v, keys)))
		return ret;
	if (!(l = json_object_get(v, "listen")))
		return 0;
	if (!json_is_string(l))
		return bad(p, "$.metrics.listen", "expected \"ADDRESS:PORT\"");
	if ((ret = parse_pass_entry(p, "$.metrics.listen", json_string_value(l), &pc)))
		return ret;
	if (pc.kind != AG_PASS_CIDR || pc.prefixlen != 128 || !pc.port)
		return bad(p, "$.metrics.listen",
			   "expected \"ADDRESS:PORT\", e.g. \"127.0.0.1:9464\"");
	if (ag_addr_is_v4(pc.addr) ? pc.addr[12] != 127 : memcmp(pc.addr, lo6, 16))
		return bad(p, "$.metrics.listen",
			   "must be a loopback address (127.0.0.0/8 or [::1])");
	if (pc.port == c->port)
		return bad(p, "$.metrics.listen", "must not be the agents' listen.port");
	memcpy(c->metrics_addr, pc.addr, 16);
	c->metrics_port = pc.port;
	return metrics_unreachable(p, c);
}

static int parse_root(struct parse *p, json_t *root, struct ag_conf *c)
{
	static const char *const keys[] = {
		"listen",      "mark",	 "resolvers",	       "default_verdict",
		"rules",       "agents", "connect_timeout_ms", "tool_servers",
		"passthrough", "policy", "approval_timeout_ms", "audit", "tools_lock",
		"agent_uids",  "limits",      "dns",	 "metrics", NULL
	};
	static const char *const listen_keys[] = { "port", "ipv6", NULL };
	json_t *v;
	uint64_t n;
	int ret;

	if ((ret = check_keys(p, "$", root, keys)))
		return ret;
	if ((v = json_object_get(root, "listen"))) {
		if ((ret = check_keys(p, "$.listen", v, listen_keys)))
			return ret;
		if (json_object_get(v, "port")) {
			if ((ret = get_uint(p, "$.listen.port", json_object_get(v, "port"), 65535,
					    &n)))
				return ret;
			if (!n)
				return bad(p, "$.listen.port", "must not be 0");
			c->port = (uint16_t)n;
		}
		if (json_object_get(v, "ipv6")) {
			if (!json_is_boolean(json_object_get(v, "ipv6")))
				return bad(p, "$.listen.ipv6", "expected true or false");
			c->ipv6 = json_is_true(json_object_get(v, "ipv6"));
		}
	}
	if ((v = json_object_get(root, "mark"))) {
		if ((ret = get_uint(p, "$.mark", v, UINT32_MAX, &n)))
			return ret;
		if (!n)
			return bad(p, "$.mark", "must not be 0 (unmarked sockets are everyone's)");
		c->mark = (uint32_t)n;
	}
	if ((v = json_object_get(root, "audit")) && (ret = parse_audit(p, v, c)))
		return ret;
	if ((v = json_object_get(root, "limits")) && (ret = parse_limits(p, v, c)))
		return ret;
	if ((v = json_object_get(root, "dns")) && (ret = parse_dns(p, "$.dns", v, &c->dns)))
		return ret;
	if ((v = json_object_get(root, "approval_timeout_ms"))) {
		if ((ret = get_uint(p, "$.approval_timeout_ms", v, 3600000, &n)))
			return ret;
		if (!n)
			return bad(p, "$.approval_timeout_ms", "must not be 0");
		c->approval_timeout_ms = (uint32_t)n;
	}
	if ((v = json_object_get(root, "connect_timeout_ms"))) {
		if ((ret = get_uint(p, "$.connect_timeout_ms", v, 600000, &n)))
			return ret;
		c->connect_timeout_ms = (uint32_t)n;
	}
	if ((v = json_object_get(root, "resolvers"))) {
		size_t i;
		json_t *r;
		char where[64];

		if (!json_is_array(v))
			return bad(p, "$.resolvers", "expected an array of addresses");
		c->nr_resolvers = 0;
		json_array_foreach(v, i, r)
		{
			snprintf(where, sizeof(where), "$.resolvers[%zu]", i);
			if (!json_is_string(r))
				return bad(p, where, "expected an address string");
			ret = add_resolver(c, json_string_value(r));
			if (ret == -ENOSPC)
				return bad(p, where, "at most 4 resolvers");
			if (ret)
				return bad(p, where, "expected an IPv4 or IPv6 address");
		}
	}
	if ((v = json_object_get(root, "default_verdict")) &&
	    (ret = get_verdict(p, "$.default_verdict", v, &c->default_verdict)))
		return ret;
	if ((v = json_object_get(root, "rules")) &&
	    (ret = parse_rules(p, "$.rules", v, &c->rules, &c->nr_rules)))
		return ret;
	if ((v = json_object_get(root, "passthrough"))) {
		free(c->pass);
		c->pass = NULL;
		c->nr_pass = 0;
		if ((ret = parse_pass(p, "$.passthrough", v, &c->pass, &c->nr_pass)))
			return ret;
	}
	/* After listen (the loop check) and before agents (their allow-lists). */
	if ((v = json_object_get(root, "tool_servers")) && (ret = parse_servers(p, v, c)))
		return ret;
	if ((v = json_object_get(root, "agents")) && (ret = parse_agents(p, v, c)))
		return ret;
	if ((v = json_object_get(root, "tools_lock")) &&
	    (ret = config_path(p, "$.tools_lock", v, c->tools_lock)))
		return ret;
	if ((v = json_object_get(root, "policy")) && (ret = parse_policy(p, v, &c->policy)))
		return ret;
	if ((v = json_object_get(root, "agent_uids")) && (ret = parse_agent_uids(p, v, c)))
		return ret;
	if ((v = json_object_get(root, "metrics")) && (ret = parse_metrics(p, v, c)))
		return ret;
	return 0;
}

int ag_conf_load(struct ag_conf *c, const char *path, struct ag_err *err)
{
	struct parse p = { .file = path, .err = err };
	const char *slash = strrchr(path, '/');
	json_error_t jerr;
	json_t *root;
	int ret;

	if (!slash)
		snprintf(p.dir, sizeof(p.dir), ".");
	else if (slash == path)
		snprintf(p.dir, sizeof(p.dir), "/");
	else
		snprintf(p.dir, sizeof(p.dir), "%.*s", (int)(slash - path), path);

	ret = ag_conf_default(c, err);
	if (ret)
		return ret;
	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		ag_conf_free(c);
		return ag_errf(err, EINVAL, "%s:%d:%d: %s", path, jerr.line, jerr.column,
			       jerr.text);
	}
	ret = parse_root(&p, root, c);
	json_decref(root);
	if (ret)
		ag_conf_free(c);
	return ret;
}

const char *ag_conf_cidr_fmt(const uint8_t addr[16], int prefixlen, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	if (ag_addr_is_v4(addr) && prefixlen >= 96) {
		inet_ntop(AF_INET, addr + 12, ip, sizeof(ip));
		prefixlen -= 96;
		if (prefixlen == 32)
			snprintf(buf, len, "%s", ip);
		else
			snprintf(buf, len, "%s/%d", ip, prefixlen);
	} else {
		inet_ntop(AF_INET6, addr, ip, sizeof(ip));
		if (prefixlen == 128)
			snprintf(buf, len, "%s", ip);
		else
			snprintf(buf, len, "%s/%d", ip, prefixlen);
	}
	return buf;
}

const char *ag_pass_fmt(const struct ag_pass_conf *pc, char *buf, size_t len)
{
	char what[AG_HOST_LEN + 64], port[8] = "";

	if (pc->port)
		snprintf(port, sizeof(port), ":%u", pc->port);
	switch (pc->kind) {
	case AG_PASS_ANY:
		snprintf(buf, len, "*%s", port);
		break;
	case AG_PASS_HOST:
		snprintf(buf, len, "%s%s", pc->host, port);
		break;
	case AG_PASS_CIDR:
		ag_conf_cidr_fmt(pc->addr, pc->prefixlen, what, sizeof(what));
		if (ag_addr_is_v4(pc->addr) && pc->prefixlen >= 96)
			snprintf(buf, len, "%s%s", what, port);
		else
			snprintf(buf, len, "[%s]%s", what, port);
		break;
	}
	return buf;
}

const struct ag_agent_conf *ag_conf_agent(const struct ag_conf *c, const char *name)
{
	if (!name)
		return NULL;
	for (int i = 0; i < c->nr_agents; i++)
		if (!strcmp(c->agents[i].name, name))
			return &c->agents[i];
	return NULL;
}

/*
 * The name a connection gives (SNI, or a Host header that may carry a
 * ":port", "[v6]:port" or a trailing dot) in the file's form; false when
 * there is none worth comparing.
 */
bool ag_host_norm(const char *host, char out[AG_HOST_LEN])
{
	const char *end;

	if (!host || !*host)
		return false;
	if (host[0] == '[') {
		host++;
		end = strchr(host, ']');
		if (!end)
			return false;
	} else {
		end = strchr(host, ':');
		/* More than one colon: a bare IPv6 literal, not "name:port". */
		if (!end || strchr(end + 1, ':'))
			end = host + strlen(host);
	}
	return end > host && host_copy(out, host, (size_t)(end - host)) && out[0];
}

/* "*.suffix" matches names strictly below suffix, never suffix itself. */
static bool host_match(const char *pattern, const char *name)
{
	size_t pn, nn;

	if (strncmp(pattern, "*.", 2))
		return !strcmp(pattern, name);
	pn = strlen(pattern + 1);
	nn = strlen(name);
	return nn > pn && !strcmp(name + nn - pn, pattern + 1);
}

static bool dns_listed(char (*list)[AG_HOST_LEN], int nr, const char *name)
{
	for (int i = 0; i < nr; i++)
		if (!strcmp(list[i], "*") || host_match(list[i], name))
			return true;
	return false;
}

bool ag_conf_dns_allows(const struct ag_conf *c, const struct ag_agent_conf *agent,
			const char *name)
{
	const struct ag_dns_conf *d = agent && agent->dns.set ? &agent->dns : &c->dns;

	if (dns_listed(d->deny, d->nr_deny, name))
		return false;
	return !d->allow_set || dns_listed(d->allow, d->nr_allow, name);
}

static bool cidr_contains(const uint8_t net[16], int prefixlen, const uint8_t addr[16])
{
	int bytes = prefixlen / 8, bits = prefixlen % 8;

	if (memcmp(net, addr, (size_t)bytes))
		return false;
	return !bits || !((net[bytes] ^ addr[bytes]) & (uint8_t)(0xff << (8 - bits)));
}

bool ag_server_port_ok(const struct ag_server_conf *s, uint16_t port)
{
	if (!s->nr_ports)
		return port == s->upstream_port;
	for (int i = 0; i < s->nr_ports; i++)
		if (s->ports[i] == port)
			return true;
	return false;
}

const struct ag_server_conf *ag_conf_server_at(const struct ag_conf *c, const uint8_t addr[16],
					       uint16_t port)
{
	for (int i = 0; i < c->nr_servers; i++) {
		const struct ag_server_conf *s = &c->servers[i];

		if (port == s->upstream_port && !memcmp(addr, s->upstream_addr, 16))
			return s;
		if (!ag_server_port_ok(s, port))
			continue;
		for (int j = 0; j < s->nr_addrs; j++)
			if (cidr_contains(s->addrs[j].addr, s->addrs[j].prefixlen, addr))
				return s;
	}
	return NULL;
}

const struct ag_server_conf *ag_conf_server_named(const struct ag_conf *c, uint16_t port,
						  const char *host)
{
	char name[AG_HOST_LEN];

	if (!ag_host_norm(host, name))
		return NULL;
	for (int i = 0; i < c->nr_servers; i++) {
		const struct ag_server_conf *s = &c->servers[i];

		if (!ag_server_port_ok(s, port))
			continue;
		for (int j = 0; j < s->nr_hosts; j++)
			if (host_match(s->hosts[j], name))
				return s;
	}
	return NULL;
}

bool ag_conf_server_port(const struct ag_conf *c, uint16_t port)
{
	for (int i = 0; i < c->nr_servers; i++)
		if (c->servers[i].nr_hosts && ag_server_port_ok(&c->servers[i], port))
			return true;
	return false;
}

static const struct ag_pass_conf *pass_list(const struct ag_conf *c,
					    const struct ag_agent_conf *agent, int *nr)
{
	if (agent && agent->pass_set) {
		*nr = agent->nr_pass;
		return agent->pass;
	}
	*nr = c->nr_pass;
	return c->pass;
}

enum ag_pass_match ag_conf_pass_match(const struct ag_conf *c, const struct ag_agent_conf *agent,
				      const uint8_t addr[16], uint16_t port, const char *host,
				      bool host_at_addr)
{
	char name[AG_HOST_LEN];
	bool have_name = ag_host_norm(host, name);
	enum ag_pass_match ret = AG_PASS_DENY;
	int nr;
	const struct ag_pass_conf *list = pass_list(c, agent, &nr);

	for (int i = 0; i < nr; i++) {
		const struct ag_pass_conf *e = &list[i];

		if (e->port && e->port != port)
			continue;
		if (e->kind == AG_PASS_ANY ||
		    (e->kind == AG_PASS_CIDR && cidr_contains(e->addr, e->prefixlen, addr)))
			return AG_PASS_ALLOW;
		if (e->kind == AG_PASS_HOST && have_name && host_match(e->host, name)) {
			/* The name alone proves nothing: the address must be its. */
			if (host_at_addr)
				return AG_PASS_ALLOW;
			ret = AG_PASS_NAMED;
		}
	}
	return ret;
}

bool ag_conf_pass_needs_host(const struct ag_conf *c, const struct ag_agent_conf *agent)
{
	int nr;
	const struct ag_pass_conf *list = pass_list(c, agent, &nr);

	for (int i = 0; i < nr; i++)
		if (list[i].kind == AG_PASS_HOST)
			return true;
	return false;
}

/* '*' matches any run of bytes, '/' included; everything else itself. */
static bool glob_match(const char *pat, const char *s)
{
	const char *star = NULL, *resume = NULL;

	while (*s) {
		if (*pat == '*') {
			star = pat++;
			resume = s;
		} else if (*pat == *s) {
			pat++;
			s++;
		} else if (star) {
			pat = star + 1;
			s = ++resume;
		} else {
			return false;
		}
	}
	while (*pat == '*')
		pat++;
	return !*pat;
}

bool ag_conf_allows(const struct ag_agent_conf *agent, enum ag_mcp_kind kind, const char *server,
		    const char *name)
{
	char *const *list;
	size_t sn;
	int nr;

	if (!agent || !server || !name)
		return false;
	switch (kind) {
	case AG_KIND_TOOL:
		list = agent->tools;
		nr = agent->nr_tools;
		break;
	case AG_KIND_RESOURCE:
		list = agent->resources;
		nr = agent->nr_resources;
		break;
	case AG_KIND_PROMPT:
		list = agent->prompts;
		nr = agent->nr_prompts;
		break;
	default:
		return false;
	}
	/* A pattern's server part is a configured name, never a glob: compare it whole. */
	sn = strlen(server);
	for (int i = 0; i < nr; i++)
		if (!strncmp(list[i], server, sn) && list[i][sn] == '/' &&
		    glob_match(list[i] + sn + 1, name))
			return true;
	return false;
}
