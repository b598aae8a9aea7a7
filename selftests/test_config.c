// SPDX-License-Identifier: GPL-2.0
/* agentgate.json: what parses, and what each mistake is called. */
#include <stdlib.h>
#include <unistd.h>
#include <jansson.h>

#include "config.h"
#include "test.h"
#include "testlib.h"

static int load(const char *json, struct ag_conf *c, struct ag_err *err)
{
	return tconf_load(json, c, err);
}

/* One tool server "s"; SERVER_U's upstream and extra members are the test's. */
#define SERVER_U(upstream, extra)                                                           \
	"{\"tool_servers\": [{\"name\": \"s\", \"upstream\": \"" upstream "\", \"match\": " \
	"{\"hosts\": [\"s.test\"]}" extra "}]"
#define SERVER(extra) SERVER_U("http://127.0.0.1:3001", extra)
/* Agent "a" with unix_sockets [list]. */
#define UNIX_SOCKETS(list) "{\"agents\": [{\"name\": \"a\", \"unix_sockets\": [" list "]}]}"

TEST(config)
{
	static const struct {
		const char *name, *json, *error; /* error: NULL when valid */
	} cases[] = {
		{ "empty_object", "{}", NULL },
		{ "full",
		  "{\"listen\": {\"port\": 1234, \"ipv6\": false}, \"mark\": 7,"
		  " \"resolvers\": [\"127.0.0.53\", \"::1\"], \"default_verdict\": \"deny\","
		  " \"connect_timeout_ms\": 500,"
		  " \"rules\": [{\"dest\": \"10.0.0.0/8\", \"port\": 443, \"verdict\": "
		  "\"direct\"}],"
		  " \"agents\": [{\"name\": \"a\", \"verdict\": \"redirect\","
		  "   \"rules\": [{\"dest\": \"::1\", \"verdict\": \"deny\"}]}]}",
		  NULL },
		{ "not_json", "{", ":1:" },
		{ "duplicate_key", "{\"mark\": 1, \"mark\": 2}", "duplicate" },
		{ "unknown_key", "{\"lisen\": {}}", "$.lisen: unknown key" },
		{ "unknown_nested_key", "{\"listen\": {\"prot\": 1}}",
		  "$.listen.prot: unknown key" },
		{ "port_range", "{\"listen\": {\"port\": 70000}}",
		  "$.listen.port: must be between" },
		{ "port_zero", "{\"listen\": {\"port\": 0}}", "$.listen.port: must not be 0" },
		{ "port_type", "{\"listen\": {\"port\": \"80\"}}",
		  "$.listen.port: expected an integer" },
		{ "mark_zero", "{\"mark\": 0}", "$.mark: must not be 0" },
		{ "bad_resolver", "{\"resolvers\": [\"dns.example\"]}",
		  "$.resolvers[0]: expected" },
		{ "resolver_cidr", "{\"resolvers\": [\"10.0.0.0/8\"]}",
		  "$.resolvers[0]: expected" },
		{ "too_many_resolvers",
		  "{\"resolvers\": [\"127.0.0.1\",\"127.0.0.2\",\"127.0.0.3\",\"127.0.0.4\","
		  "\"127.0.0.5\"]}",
		  "$.resolvers[4]: at most 4" },
		{ "bad_verdict", "{\"default_verdict\": \"allow\"}",
		  "$.default_verdict: expected one of" },
		{ "bad_cidr", "{\"rules\": [{\"dest\": \"10.0.0.0/33\", \"verdict\": \"deny\"}]}",
		  "$.rules[0].dest" },
		{ "rule_without_verdict", "{\"rules\": [{\"dest\": \"10.0.0.1\"}]}",
		  "$.rules[0].verdict" },
		{ "bad_agent_name", "{\"agents\": [{\"name\": \"../x\"}]}", "$.agents[0].name" },
		{ "duplicate_agent", "{\"agents\": [{\"name\": \"a\"}, {\"name\": \"a\"}]}",
		  "$.agents[1].name: duplicate" },
		{ "agent_rule_error",
		  "{\"agents\": [{\"name\": \"a\", \"rules\": [{\"dest\": \"x\", \"verdict\": "
		  "\"deny\"}]}]}",
		  "$.agents[0].rules[0].dest" },
		{ "root_not_object", "[]", "$: expected an object" },
		{ "agent_uids", "{\"agent_uids\": {\"min\": 100000, \"max\": 100999}}", NULL },
		{ "agent_uids_reversed", "{\"agent_uids\": {\"min\": 9, \"max\": 8}}",
		  "$.agent_uids: expected 1 <= min <= max" },
		{ "agent_uids_root", "{\"agent_uids\": {\"min\": 0, \"max\": 8}}",
		  "$.agent_uids: expected 1 <= min <= max" },
		{ "agent_uids_max", "{\"agent_uids\": {\"min\": 1}}",
		  "$.agent_uids.max: expected an integer" },
		/* Fair sharing (daemon/fair.h). */
		{ "limits",
		  "{\"limits\": {\"header_timeout_ms\": 1000, \"idle_timeout_ms\": 2000,"
		  " \"max_conns_per_agent\": 8}, \"agents\": [{\"name\": \"a\", \"max_conns\": "
		  "4}]}",
		  NULL },
		{ "limits_zero", "{\"limits\": {\"idle_timeout_ms\": 0}}",
		  "$.limits.idle_timeout_ms: must not be 0" },
		{ "limits_unknown", "{\"limits\": {\"read_timeout_ms\": 1}}",
		  "$.limits.read_timeout_ms: unknown key" },
		{ "agent_max_conns_zero", "{\"agents\": [{\"name\": \"a\", \"max_conns\": 0}]}",
		  "$.agents[0].max_conns: must not be 0" },
		/* Tool servers, allow-lists and pass-through. */
		{ "server_minimal", SERVER("") "}", NULL },
		{ "server_not_loop", SERVER_U("http://127.0.0.1:15081", "") "}", NULL },
		{ "servers_not_array", "{\"tool_servers\": {}}",
		  "$.tool_servers: expected an array" },
		{ "server_unknown_key", SERVER(", \"colour\": 1") "}",
		  "$.tool_servers[0].colour: unknown key" },
		{ "match_unknown_key",
		  "{\"tool_servers\": [{\"name\": \"s\", \"upstream\": \"http://127.0.0.1:3001\","
		  " \"match\": {\"hosts\": [\"s.test\"], \"portz\": [1]}}]}",
		  "$.tool_servers[0].match.portz: unknown key" },
		{ "bad_server_name",
		  "{\"tool_servers\": [{\"name\": \"a/b\", \"upstream\": \"http://127.0.0.1:1\","
		  " \"match\": {\"hosts\": [\"s.test\"]}}]}",
		  "$.tool_servers[0].name: expected a name" },
		{ "duplicate_server",
		  "{\"tool_servers\": [{\"name\": \"s\", \"upstream\": \"http://127.0.0.1:1\","
		  " \"match\": {\"hosts\": [\"s.test\"]}}, {\"name\": \"s\", \"upstream\":"
		  " \"http://127.0.0.1:2\", \"match\": {\"hosts\": [\"t.test\"]}}]}",
		  "$.tool_servers[1].name: duplicate tool server name \"s\"" },
		{ "upstream_missing",
		  "{\"tool_servers\": [{\"name\": \"s\", \"match\": {\"hosts\": [\"s.test\"]}}]}",
		  "$.tool_servers[0].upstream: expected a string" },
		{ "upstream_scheme", SERVER_U("ftp://127.0.0.1/", "") "}",
		  "$.tool_servers[0].upstream: \"ftp://127.0.0.1/\": expected an http:// or "
		  "https://" },
		{ "upstream_userinfo", SERVER_U("http://u:p@127.0.0.1/", "") "}",
		  "$.tool_servers[0].upstream: \"http://u:p@127.0.0.1/\": user information" },
		{ "upstream_port_zero", SERVER_U("http://127.0.0.1:0/", "") "}",
		  "$.tool_servers[0].upstream: \"http://127.0.0.1:0/\": the port must be" },
		{ "upstream_empty_port", SERVER_U("http://127.0.0.1:/", "") "}",
		  "$.tool_servers[0].upstream: \"http://127.0.0.1:/\": the port must be" },
		{ "upstream_bad_ipv6", SERVER_U("http://[::g]:80/", "") "}",
		  "$.tool_servers[0].upstream: \"http://[::g]:80/\": \"::g\" is not an IPv6" },
		{ "upstream_bad_host", SERVER_U("http://a b/", "") "}",
		  "$.tool_servers[0].upstream: \"http://a b/\": \"a b\" is not a host name" },
		{ "upstream_fragment", SERVER_U("http://127.0.0.1/x#y", "") "}",
		  "$.tool_servers[0].upstream: \"http://127.0.0.1/x#y\": a fragment" },
		{ "upstream_unresolvable", SERVER_U("http://no-such-host.invalid/", "") "}",
		  "$.tool_servers[0].upstream: host \"no-such-host.invalid\"" },
		{ "upstream_loop", SERVER_U("http://127.0.0.1:15080/mcp", "") "}",
		  "$.tool_servers[0].upstream: \"http://127.0.0.1:15080/mcp\": that is the "
		  "gateway's own listener (port 15080): it would loop" },
		{ "upstream_loop_listen_v6",
		  "{\"listen\": {\"port\": 3002}, \"tool_servers\": [{\"name\": \"s\", "
		  "\"upstream\": "
		  "\"http://[::1]:3002\", \"match\": {\"hosts\": [\"s.test\"]}}]}",
		  "$.tool_servers[0].upstream: \"http://[::1]:3002\": that is the gateway's own" },
		{ "upstream_loop_unspecified", SERVER_U("http://0.0.0.0:15080", "") "}",
		  "would loop" },
		{ "tls_with_http", SERVER_U("http://127.0.0.1:3001", ", \"tls\": {}") "}",
		  "$.tool_servers[0].tls: only applies to an https:// upstream" },
		{ "tls_unknown_key",
		  SERVER_U("https://127.0.0.1:3001", ", \"tls\": {\"verify\": false}") "}",
		  "$.tool_servers[0].tls.verify: unknown key" },
		{ "tls_ca_missing",
		  SERVER_U("https://127.0.0.1",
			   ", \"tls\": {\"ca_file\": \"/nonexistent/ca.pem\"}") "}",
		  "$.tool_servers[0].tls.ca_file: /nonexistent/ca.pem: No such file" },
		{ "tls_ca_directory",
		  SERVER_U("https://127.0.0.1", ", \"tls\": {\"ca_file\": \"/tmp\"}") "}",
		  "$.tool_servers[0].tls.ca_file: /tmp: not a regular file" },
		{ "tls_bad_server_name",
		  SERVER_U("https://127.0.0.1", ", \"tls\": {\"server_name\": \"a..b\"}") "}",
		  "$.tool_servers[0].tls.server_name: \"a..b\"" },
		{ "missing_match",
		  "{\"tool_servers\": [{\"name\": \"s\", \"upstream\": \"http://"
		  "127.0.0.1:1\"}]}",
		  "$.tool_servers[0].match: required" },
		{ "match_only_ports",
		  "{\"tool_servers\": [{\"name\": \"s\", \"upstream\": \"http://127.0.0.1:1\","
		  " \"match\": {\"ports\": [1], \"hosts\": []}}]}",
		  "$.tool_servers[0].match: needs at least one of hosts or addresses" },
		{ "match_port_zero",
		  "{\"tool_servers\": [{\"name\": \"s\", \"upstream\": \"http://127.0.0.1:1\","
		  " \"match\": {\"hosts\": [\"s.test\"], \"ports\": [3001, 0]}}]}",
		  "$.tool_servers[0].match.ports[1]: expected a port from 1 to 65535" },
		{ "match_port_string",
		  "{\"tool_servers\": [{\"name\": \"s\", \"upstream\": \"http://127.0.0.1:1\","
		  " \"match\": {\"hosts\": [\"s.test\"], \"ports\": [\"80\"]}}]}",
		  "$.tool_servers[0].match.ports[0]: expected a port" },
		{ "match_bad_host",
		  "{\"tool_servers\": [{\"name\": \"s\", \"upstream\": \"http://127.0.0.1:1\","
		  " \"match\": {\"hosts\": [\"ok.test\", \"a b.test\"]}}]}",
		  "$.tool_servers[0].match.hosts[1]: \"a b.test\": expected a host name" },
		{ "match_host_star",
		  "{\"tool_servers\": [{\"name\": \"s\", \"upstream\": \"http://127.0.0.1:1\","
		  " \"match\": {\"hosts\": [\"*\"]}}]}",
		  "$.tool_servers[0].match.hosts[0]" },
		{ "match_bad_address",
		  "{\"tool_servers\": [{\"name\": \"s\", \"upstream\": \"http://127.0.0.1:1\","
		  " \"match\": {\"addresses\": [\"10.0.0.0/33\"]}}]}",
		  "$.tool_servers[0].match.addresses[0]: \"10.0.0.0/33\"" },
		{ "pattern_unknown_server",
		  SERVER("") ", \"agents\": [{\"name\": \"a\", \"tools\":"
			     " [\"s/x\", \"other/x\"]}]}",
		  "$.agents[0].tools[1]: \"other/x\": no tool server named \"other\"" },
		{ "pattern_no_server", "{\"agents\": [{\"name\": \"a\", \"tools\": [\"s/x\"]}]}",
		  "$.agents[0].tools[0]: \"s/x\": no tool server named \"s\"" },
		{ "pattern_without_slash",
		  SERVER("") ", \"agents\": [{\"name\": \"a\", "
			     "\"resources\": [\"echo\"]}]}",
		  "$.agents[0].resources[0]: \"echo\": expected \"SERVER/NAME\"" },
		{ "pattern_glob_server",
		  SERVER("") ", \"agents\": [{\"name\": \"a\", "
			     "\"prompts\": [\"*/x\"]}]}",
		  "$.agents[0].prompts[0]: \"*/x\": no tool server named \"*\"" },
		{ "pattern_type", SERVER("") ", \"agents\": [{\"name\": \"a\", \"tools\": [1]}]}",
		  "$.agents[0].tools[0]: expected a string" },
		{ "pattern_nul",
		  SERVER("") ", \"agents\": [{\"name\": \"a\", \"tools\": "
			     "[\"s/a\\u0000b\"]}]}",
		  "is not allowed" }, /* jansson refuses it before a path could be named */
		{ "pass_valid",
		  "{\"passthrough\": [\"*\", \"*:443\", \"api.github.com:443\", \"*.example.com\","
		  " \"10.0.0.0/8\", \"[::1]:8080\", \"127.0.0.1:9000\", \"[fe80::/10]:443\"]}",
		  NULL },
		{ "pass_not_array", "{\"passthrough\": \"*\"}",
		  "$.passthrough: expected an array" },
		{ "pass_bare_ipv6", "{\"passthrough\": [\"*\", \"::1\"]}",
		  "$.passthrough[1]: \"::1\": write IPv6 in brackets" },
		{ "pass_port_zero", "{\"passthrough\": [\"a.test:0\"]}",
		  "$.passthrough[0]: \"a.test:0\": the port must be 1 to 65535" },
		{ "pass_port_name", "{\"passthrough\": [\"a.test:https\"]}",
		  "$.passthrough[0]: \"a.test:https\": the port must be" },
		{ "pass_bad_cidr", "{\"passthrough\": [\"10.0.0.0/33\"]}",
		  "$.passthrough[0]: \"10.0.0.0/33\": expected an IPv4 address or CIDR" },
		{ "pass_v4_in_brackets", "{\"passthrough\": [\"[10.0.0.1]:80\"]}",
		  "$.passthrough[0]: \"[10.0.0.1]:80\": expected an IPv6 address" },
		{ "pass_unclosed_bracket", "{\"passthrough\": [\"[::1:80\"]}",
		  "$.passthrough[0]: \"[::1:80\": missing \"]\"" },
		{ "pass_bad_host", "{\"passthrough\": [\"exa mple.com\"]}",
		  "$.passthrough[0]: \"exa mple.com\": expected \"*\", a host name" },
		{ "pass_inner_star", "{\"passthrough\": [\"a.*.com\"]}", "$.passthrough[0]" },
		{ "agent_pass_error",
		  "{\"agents\": [{\"name\": \"a\", \"passthrough\": [\"*\", "
		  "\"a..b\"]}]}",
		  "$.agents[0].passthrough[1]: \"a..b\"" },
		{ "unix_sockets", UNIX_SOCKETS("\"/run/a.sock\", \"@x\""), NULL },
		{ "unix_relative", UNIX_SOCKETS("\"run/a.sock\""),
		  "$.agents[0].unix_sockets[0]: \"run/a.sock\": expected an absolute path" },
		{ "unix_empty_abstract", UNIX_SOCKETS("\"@\""),
		  "$.agents[0].unix_sockets[0]: \"@\": expected" },
		{ "unix_too_long",
		  UNIX_SOCKETS(
		      "\"/"
		      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""),
		  "longer than a socket address (108 bytes)" },
		{ "unix_duplicate", UNIX_SOCKETS("\"@x\", \"@x\""),
		  "$.agents[0].unix_sockets[1]: duplicate address \"@x\"" },
		{ "anomaly_full",
		  "{\"anomaly\": {\"enabled\": false, \"rate_multiple\": 5, \"min_rate_per_min\": "
		  "2,"
		  " \"rate_window_s\": 30, \"baseline_s\": 600, \"denials\": 64,"
		  " \"denial_window_s\": 10}}",
		  NULL },
		{ "anomaly_unknown_key", "{\"anomaly\": {\"rate\": 1}}",
		  "$.anomaly.rate: unknown key" },
		{ "anomaly_multiple_1", "{\"anomaly\": {\"rate_multiple\": 1}}",
		  "$.anomaly.rate_multiple: must be at least 2" },
		{ "anomaly_denials_over", "{\"anomaly\": {\"denials\": 65}}",
		  "$.anomaly.denials: must be between 0 and 64" },
		{ "anomaly_window_over_baseline", "{\"anomaly\": {\"rate_window_s\": 3600}}",
		  "$.anomaly.rate_window_s: must be less than baseline_s" },
		{ "anomaly_enabled_string", "{\"anomaly\": {\"enabled\": \"yes\"}}",
		  "$.anomaly.enabled: expected true or false" },
	};
	struct ag_conf c;
	struct ag_err err;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int ret;

		if (!test__start_subtest(cases[i].name))
			continue;
		memset(&err, 0, sizeof(err));
		ret = load(cases[i].json, &c, &err);
		if (!cases[i].error) {
			if (ASSERT_OK(ret, err.msg))
				ag_conf_free(&c);
			continue;
		}
		ASSERT_NEQ(ret, 0, "rejected");
		if (!ASSERT_TRUE(strstr(err.msg, cases[i].error), "error names the value"))
			fprintf(stderr, "  got: %s\n", err.msg);
		ASSERT_TRUE(strstr(err.msg, "/tmp/agentgate-conf-"), "error names the file");
	}
	if (test__start_subtest("full_values")) {
		ASSERT_OK(load(cases[1].json, &c, &err), "load");
		ASSERT_EQ(c.port, 1234, "port");
		ASSERT_FALSE(c.ipv6, "ipv6");
		ASSERT_EQ(c.mark, 7, "mark");
		ASSERT_EQ(c.nr_resolvers, 2, "resolvers");
		ASSERT_EQ(c.default_verdict, AG_VERDICT_DENY, "default verdict");
		ASSERT_EQ(c.nr_rules, 1, "rules");
		ASSERT_EQ(c.rules[0].prefixlen, 96 + 8, "v4 prefix in v6 bits");
		ASSERT_EQ(c.rules[0].port, 443, "rule port");
		ASSERT_EQ(c.nr_agents, 1, "agents");
		ASSERT_EQ(c.agents[0].nr_rules, 1, "agent rules");
		ASSERT_EQ(c.agents[0].rules[0].prefixlen, 128, "host rule");
		ag_conf_free(&c);
	}
	if (test__start_subtest("defaults")) {
		ASSERT_OK(ag_conf_default(&c, &err), "default");
		ASSERT_EQ(c.port, AG_DEFAULT_PORT, "port");
		ASSERT_EQ(c.default_verdict, AG_VERDICT_REDIRECT, "redirect by default");
		ASSERT_EQ(c.resolver_port, 53, "resolver port");
		ag_conf_free(&c);
	}
	if (test__start_subtest("missing_file")) {
		ASSERT_NEQ(ag_conf_load(&c, "/nonexistent/agentgate.json", &err), 0, "rejected");
		ASSERT_TRUE(strstr(err.msg, "/nonexistent/agentgate.json"), "names the file");
	}
}

/* A file with the given contents; path is a mkstemp template to fill. */
static bool write_tmp(char *path, const char *text)
{
	int fd = mkstemp(path);
	bool ok;

	if (fd < 0)
		return false;
	ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
	close(fd);
	return ok;
}

static void addr_of(const char *s, uint8_t addr[16])
{
	int plen;

	memset(addr, 0, 16);
	if (ag_addr_parse(s, addr, &plen))
		AG_FAILED("test address %s does not parse", s);
}

TEST(config_tool_servers)
{
	char ca[] = "/tmp/agentgate-ca-XXXXXX", json[4096];
	struct ag_conf c;
	struct ag_err err;
	uint8_t want[16];

	if (!ASSERT_TRUE(write_tmp(ca, "not checked at load\n"), "ca file"))
		return;
	snprintf(json, sizeof(json),
		 "{\"tool_servers\": ["
		 " {\"name\": \"everything\", \"upstream\": \"http://127.0.0.1:3001/mcp\","
		 "  \"match\": {\"hosts\": [\"MCP.Example.Test.\", \"*.tools.internal\"],"
		 "   \"addresses\": [\"10.0.0.0/8\", \"fd00::/8\", \"::1\"]}},"
		 " {\"name\": \"named\", \"upstream\": \"HTTPS://LocalHost/v1?x=1\","
		 "  \"match\": {\"hosts\": [\"named.test\"], \"ports\": [443, 8443]},"
		 "  \"tls\": {\"ca_file\": \"%s\", \"server_name\": \"MCP.Internal\"}},"
		 " {\"name\": \"v6\", \"upstream\": \"https://[::1]:9443\","
		 "  \"match\": {\"addresses\": [\"::1\"]}}],"
		 " \"passthrough\": [\"api.github.com:443\", \"[fd00::/8]:8080\"],"
		 " \"agents\": [{\"name\": \"a\", \"tools\": [\"everything/echo\", \"named/*\"],"
		 "   \"resources\": [\"everything/demo://resource/*\"],"
		 "   \"prompts\": [\"everything/simple-prompt\"], \"passthrough\": []},"
		 "  {\"name\": \"b\"}]}",
		 ca);
	if (!ASSERT_OK(load(json, &c, &err), err.msg))
		goto out_ca;
	if (test__start_subtest("servers")) {
		const struct ag_server_conf *s = &c.servers[0];

		ASSERT_EQ(c.nr_servers, 3, "servers");
		ASSERT_STREQ(s->name, "everything", "name");
		ASSERT_EQ(s->nr_hosts, 2, "hosts");
		ASSERT_STREQ(s->hosts[0], "mcp.example.test", "lower case, no trailing dot");
		ASSERT_STREQ(s->hosts[1], "*.tools.internal", "wildcard kept");
		ASSERT_EQ(s->nr_ports, 0, "no ports: the upstream's");
		ASSERT_EQ(s->nr_addrs, 3, "addresses");
		ASSERT_EQ(s->addrs[0].prefixlen, 96 + 8, "v4 prefix in v6 bits");
		ASSERT_EQ(s->addrs[1].prefixlen, 8, "v6 prefix");
		ASSERT_EQ(s->addrs[2].prefixlen, 128, "v6 host");
		ASSERT_FALSE(s->upstream_tls, "http");
		ASSERT_STREQ(s->upstream_host, "127.0.0.1", "upstream host");
		ASSERT_EQ(s->upstream_port, 3001, "upstream port");
		ASSERT_STREQ(s->upstream_path, "/mcp", "upstream path");
		addr_of("127.0.0.1", want);
		ASSERT_MEMEQ(s->upstream_addr, want, 16, "upstream address v4-mapped");
		ASSERT_STREQ(s->server_name, "127.0.0.1", "server name defaults to the host");
		ASSERT_STREQ(s->ca_file, "", "system store");

		s = &c.servers[1];
		ASSERT_TRUE(s->upstream_tls, "https, scheme case-insensitive");
		ASSERT_STREQ(s->upstream_host, "localhost", "host lower-cased");
		ASSERT_EQ(s->upstream_port, 443, "https default port");
		ASSERT_STREQ(s->upstream_path, "/v1?x=1", "path and query kept");
		ASSERT_TRUE(ag_addr_is_loopback(s->upstream_addr), "localhost resolved");
		ASSERT_EQ(s->nr_ports, 2, "ports");
		ASSERT_EQ(s->ports[1], 8443, "second port");
		ASSERT_STREQ(s->ca_file, ca, "ca file");
		ASSERT_STREQ(s->server_name, "mcp.internal", "server name lower-cased");

		s = &c.servers[2];
		ASSERT_STREQ(s->upstream_host, "[::1]", "IPv6 host keeps its brackets");
		ASSERT_EQ(s->upstream_port, 9443, "port after ]");
		ASSERT_STREQ(s->upstream_path, "", "no path");
		addr_of("::1", want);
		ASSERT_MEMEQ(s->upstream_addr, want, 16, "upstream ::1");
		ASSERT_STREQ(s->server_name, "::1", "server name without brackets");
	}
	if (test__start_subtest("agents")) {
		const struct ag_agent_conf *a = ag_conf_agent(&c, "a");

		if (ASSERT_TRUE(a == &c.agents[0], "agent a")) {
			ASSERT_EQ(a->nr_tools, 2, "tools");
			ASSERT_STREQ(a->tools[1], "named/*", "tool pattern");
			ASSERT_EQ(a->nr_resources, 1, "resources");
			ASSERT_STREQ(a->resources[0], "everything/demo://resource/*", "resource");
			ASSERT_EQ(a->nr_prompts, 1, "prompts");
			ASSERT_TRUE(a->pass_set, "empty list is set");
			ASSERT_EQ(a->nr_pass, 0, "and empty");
		}
		a = ag_conf_agent(&c, "b");
		if (ASSERT_TRUE(a == &c.agents[1], "agent b")) {
			ASSERT_FALSE(a->pass_set, "inherits");
			ASSERT_EQ(a->nr_tools + a->nr_resources + a->nr_prompts, 0, "no lists");
		}
		ASSERT_TRUE(ag_conf_agent(&c, "c") == NULL, "unknown agent");
		ASSERT_TRUE(ag_conf_agent(&c, "A") == NULL, "names are case-sensitive");
		ASSERT_TRUE(ag_conf_agent(&c, NULL) == NULL, "no name");
	}
	if (test__start_subtest("passthrough")) {
		ASSERT_EQ(c.nr_pass, 2, "top-level list replaces the default");
		ASSERT_EQ(c.pass[0].kind, AG_PASS_HOST, "host");
		ASSERT_STREQ(c.pass[0].host, "api.github.com", "host name");
		ASSERT_EQ(c.pass[0].port, 443, "host port");
		ASSERT_EQ(c.pass[1].kind, AG_PASS_CIDR, "cidr");
		ASSERT_EQ(c.pass[1].prefixlen, 8, "cidr prefix");
		ASSERT_EQ(c.pass[1].port, 8080, "cidr port");
	}
	ag_conf_free(&c);
	ASSERT_TRUE(c.servers == NULL && c.nr_servers == 0 && c.pass == NULL, "freed");
out_ca:
	unlink(ca);
}

TEST(config_match_server)
{
	static const char json[] =
	    "{\"tool_servers\": ["
	    " {\"name\": \"alpha\", \"upstream\": \"http://127.0.0.1:3001/mcp\","
	    "  \"match\": {\"hosts\": [\"mcp.example.test\", \"*.tools.internal\"]}},"
	    " {\"name\": \"beta\", \"upstream\": \"https://127.0.0.1:9443\","
	    "  \"match\": {\"addresses\": [\"10.0.0.0/8\", \"fd00::/8\"], \"ports\": [443, 8443]}},"
	    " {\"name\": \"gamma\", \"upstream\": \"http://127.0.0.1:4000\","
	    "  \"match\": {\"hosts\": [\"mcp.example.test\"], \"ports\": [443]}}]}";
	static const struct {
		const char *name, *addr, *host, *want; /* want: NULL for no server */
		uint16_t port;
	} cases[] = {
		{ "host_exact", "192.0.2.1", "mcp.example.test", "alpha", 3001 },
		{ "host_case", "192.0.2.1", "MCP.Example.TEST", "alpha", 3001 },
		{ "host_trailing_dot", "192.0.2.1", "mcp.example.test.", "alpha", 3001 },
		{ "host_with_port", "192.0.2.1", "MCP.example.test.:3001", "alpha", 3001 },
		{ "host_other", "192.0.2.1", "mcp.example.org", NULL, 3001 },
		{ "host_suffix_only", "192.0.2.1", "example.test", NULL, 3001 },
		{ "wildcard_one_level", "192.0.2.1", "a.tools.internal", "alpha", 3001 },
		{ "wildcard_two_levels", "192.0.2.1", "x.y.tools.internal", "alpha", 3001 },
		{ "wildcard_not_itself", "192.0.2.1", "tools.internal", NULL, 3001 },
		{ "wildcard_not_sibling", "192.0.2.1", "eviltools.internal", NULL, 3001 },
		{ "port_mismatch", "192.0.2.1", "mcp.example.test", NULL, 3002 },
		{ "ports_list", "192.0.2.1", "mcp.example.test", "gamma", 443 },
		{ "addr_v4", "10.1.2.3", NULL, "beta", 443 },
		{ "addr_v4_second_port", "10.1.2.3", "", "beta", 8443 },
		{ "addr_port_mismatch", "10.1.2.3", NULL, NULL, 80 },
		{ "addr_outside", "11.0.0.1", NULL, NULL, 443 },
		{ "addr_v6", "fd00::5", NULL, "beta", 443 },
		{ "addr_v6_outside", "fe80::5", NULL, NULL, 443 },
		{ "first_in_file_order", "10.0.0.1", "mcp.example.test", "beta", 443 },
		{ "v6_literal_host", "192.0.2.1", "[::1]:3001", NULL, 3001 },
		{ "bare_v6_host", "192.0.2.1", "::1", NULL, 3001 },
		{ "no_host_no_match", "192.0.2.1", NULL, NULL, 3001 },
	};
	struct ag_conf c;
	struct ag_err err;
	uint8_t addr[16];

	if (!ASSERT_OK(load(json, &c, &err), err.msg))
		return;
	for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
		const struct ag_server_conf *s;

		if (!test__start_subtest(cases[i].name))
			continue;
		addr_of(cases[i].addr, addr);
		s = ag_conf_server_at(&c, addr, cases[i].port);
		if (!s)
			s = ag_conf_server_named(&c, cases[i].port, cases[i].host);
		if (!cases[i].want)
			ASSERT_TRUE(s == NULL, "no server");
		else if (ASSERT_TRUE(s != NULL, "a server"))
			ASSERT_STREQ(s->name, cases[i].want, "server");
	}
	if (test__start_subtest("no_host")) {
		ASSERT_TRUE(ag_conf_server_named(&c, 443, NULL) == NULL, "nothing known");
		ASSERT_TRUE(ag_conf_server_named(&c, 443, "mcp.example.test") == &c.servers[2],
			    "host alone");
	}
	if (test__start_subtest("upstream_address")) {
		addr_of("127.0.0.1", addr);
		ASSERT_TRUE(ag_conf_server_at(&c, addr, 3001) == &c.servers[0], "alpha's upstream");
		ASSERT_TRUE(ag_conf_server_at(&c, addr, 4000) == &c.servers[2], "gamma's upstream");
		ASSERT_TRUE(ag_conf_server_at(&c, addr, 3002) == NULL, "another port");
	}
	if (test__start_subtest("server_port")) {
		ASSERT_TRUE(ag_conf_server_port(&c, 3001), "upstream port of a host server");
		ASSERT_TRUE(ag_conf_server_port(&c, 443), "listed port of a host server");
		ASSERT_FALSE(ag_conf_server_port(&c, 8443), "only an address server");
		ASSERT_FALSE(ag_conf_server_port(&c, 4000), "gamma's upstream port is not matched");
		ASSERT_FALSE(ag_conf_server_port(&c, 80), "no server");
	}
	ag_conf_free(&c);
}

TEST(config_passthrough)
{
	static const char json[] =
	    "{\"passthrough\": [\"api.github.com:443\", \"*.example.com\", \"10.0.0.0/8\","
	    "  \"[fd00::/8]:8080\", \"127.0.0.1:9000\", \"[::1]\", \"172.16.0.0/12\","
	    "  \"[fe80::/10]:443\"],"
	    " \"agents\": [{\"name\": \"inherit\"}, {\"name\": \"open\", \"passthrough\": [\"*\"]},"
	    "  {\"name\": \"closed\", \"passthrough\": []},"
	    "  {\"name\": \"tls_only\", \"passthrough\": [\"*:443\"]}]}";
	static const struct {
		const char *name, *agent, *addr, *host; /* agent NULL: not in the file */
		uint16_t port;
		bool want;
	} cases[] = {
		{ "host", "inherit", "192.0.2.1", "api.github.com", 443, true },
		{ "host_unknown_agent", NULL, "192.0.2.1", "api.github.com", 443, true },
		{ "host_normalized", "inherit", "192.0.2.1", "API.GitHub.com.:443", 443, true },
		{ "host_wrong_port", "inherit", "192.0.2.1", "api.github.com", 80, false },
		{ "host_unknown", "inherit", "192.0.2.1", NULL, 443, false },
		{ "host_other", "inherit", "192.0.2.1", "github.com", 443, false },
		{ "wildcard_below", "inherit", "192.0.2.1", "a.b.example.com", 22, true },
		{ "wildcard_not_itself", "inherit", "192.0.2.1", "example.com", 443, false },
		{ "cidr_v4", "inherit", "10.9.9.9", NULL, 22, true },
		{ "cidr_v4_outside", "inherit", "11.0.0.1", NULL, 22, false },
		{ "cidr_v6_port", "inherit", "fd00::1", NULL, 8080, true },
		{ "cidr_v6_wrong_port", "inherit", "fd00::1", NULL, 8081, false },
		{ "cidr_v6_outside", "inherit", "fe80::1", NULL, 8080, false },
		{ "v6_host_any_port", "inherit", "::1", NULL, 1, true },
		{ "address_port", "inherit", "127.0.0.1", NULL, 9000, true },
		{ "address_wrong_port", "inherit", "127.0.0.1", NULL, 9001, false },
		{ "address_other", "inherit", "127.0.0.2", NULL, 9000, false },
		{ "cidr_v4_bits", "inherit", "172.31.255.255", NULL, 80, true },
		{ "cidr_v4_bits_outside", "inherit", "172.32.0.1", NULL, 80, false },
		{ "cidr_v6_bits", "inherit", "febf::1", NULL, 443, true },
		{ "cidr_v6_bits_outside", "inherit", "fec0::1", NULL, 443, false },
		{ "v4_mapped_outside", "inherit", "192.0.2.1", NULL, 8080, false },
		{ "agent_any", "open", "192.0.2.1", NULL, 1, true },
		{ "agent_empty_overrides", "closed", "192.0.2.1", "api.github.com", 443, false },
		{ "agent_empty_cidr", "closed", "10.0.0.1", NULL, 22, false },
		{ "agent_any_port", "tls_only", "198.51.100.1", NULL, 443, true },
		{ "agent_any_wrong_port", "tls_only", "10.0.0.1", NULL, 80, false },
	};
	struct ag_conf c;
	struct ag_err err;
	uint8_t addr[16];

	if (!ASSERT_OK(load(json, &c, &err), err.msg))
		return;
	for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
		const struct ag_agent_conf *a = NULL;

		if (!test__start_subtest(cases[i].name))
			continue;
		if (cases[i].agent &&
		    !ASSERT_OK_PTR(a = ag_conf_agent(&c, cases[i].agent), "agent"))
			continue;
		addr_of(cases[i].addr, addr);
		ASSERT_EQ(ag_conf_pass_match(&c, a, addr, cases[i].port, cases[i].host, true) ==
			      AG_PASS_ALLOW,
			  cases[i].want, "decision");
	}
	if (test__start_subtest("host_not_at_address")) {
		addr_of("192.0.2.1", addr);
		ASSERT_EQ(ag_conf_pass_match(&c, NULL, addr, 443, "api.github.com", false),
			  AG_PASS_NAMED, "named, not allowed");
		ASSERT_EQ(ag_conf_pass_match(&c, NULL, addr, 443, "a.example.com", false),
			  AG_PASS_NAMED, "wildcard named, not allowed");
		ASSERT_EQ(ag_conf_pass_match(&c, NULL, addr, 443, "github.com", false),
			  AG_PASS_DENY, "not named");
		addr_of("10.1.1.1", addr);
		ASSERT_EQ(ag_conf_pass_match(&c, NULL, addr, 443, "api.github.com", false),
			  AG_PASS_ALLOW, "the address allows");
	}
	if (test__start_subtest("needs_host")) {
		ASSERT_TRUE(ag_conf_pass_needs_host(&c, NULL), "top level has host entries");
		ASSERT_TRUE(ag_conf_pass_needs_host(&c, ag_conf_agent(&c, "inherit")), "inherited");
		ASSERT_FALSE(ag_conf_pass_needs_host(&c, ag_conf_agent(&c, "open")), "*");
		ASSERT_FALSE(ag_conf_pass_needs_host(&c, ag_conf_agent(&c, "closed")), "[]");
	}
	if (test__start_subtest("format")) {
		static const char *const want[] = { "api.github.com:443", "*.example.com",
						    "10.0.0.0/8",	  "[fd00::/8]:8080",
						    "127.0.0.1:9000",	  "[::1]",
						    "172.16.0.0/12",	  "[fe80::/10]:443" };
		char buf[300];

		if (ASSERT_EQ(c.nr_pass, (int)AG_ARRAY_SIZE(want), "entries"))
			for (size_t i = 0; i < AG_ARRAY_SIZE(want); i++)
				ASSERT_STREQ(ag_pass_fmt(&c.pass[i], buf, sizeof(buf)), want[i],
					     "round trip");
	}
	ag_conf_free(&c);
	if (test__start_subtest("default_relays_everything")) {
		ASSERT_OK(ag_conf_default(&c, &err), "default");
		if (ASSERT_EQ(c.nr_pass, 1, "one entry"))
			ASSERT_EQ(c.pass[0].kind, AG_PASS_ANY, "*");
		addr_of("203.0.113.9", addr);
		ASSERT_EQ(ag_conf_pass_match(&c, NULL, addr, 12345, NULL, false), AG_PASS_ALLOW,
			  "anything");
		ASSERT_FALSE(ag_conf_pass_needs_host(&c, NULL), "no host needed");
		ag_conf_free(&c);
	}
	if (test__start_subtest("empty_top_level_relays_nothing")) {
		if (ASSERT_OK(load("{\"passthrough\": []}", &c, &err), err.msg)) {
			addr_of("203.0.113.9", addr);
			ASSERT_EQ(c.nr_pass, 0, "no entries");
			ASSERT_EQ(ag_conf_pass_match(&c, NULL, addr, 443, "a.test", true),
				  AG_PASS_DENY, "nothing");
			ag_conf_free(&c);
		}
	}
}

TEST(config_allows)
{
	static const char json[] =
	    "{\"tool_servers\": ["
	    " {\"name\": \"everything\", \"upstream\": \"http://127.0.0.1:3001\","
	    "  \"match\": {\"hosts\": [\"e.test\"]}},"
	    " {\"name\": \"other\", \"upstream\": \"http://127.0.0.1:3002\","
	    "  \"match\": {\"hosts\": [\"o.test\"]}}],"
	    " \"agents\": [{\"name\": \"a\","
	    "   \"tools\": [\"everything/echo\", \"everything/get-*\", \"everything/a*b*c\","
	    "     \"other/*\"],"
	    "   \"resources\": [\"everything/demo://resource/*\"],"
	    "   \"prompts\": [\"everything/simple-prompt\"]},"
	    "  {\"name\": \"none\"}]}";
	static const struct {
		const char *name, *agent, *server, *item;
		enum ag_policy_target kind;
		bool want;
	} cases[] = {
		{ "exact", "a", "everything", "echo", AG_TARGET_TOOL, true },
		{ "exact_longer", "a", "everything", "echo2", AG_TARGET_TOOL, false },
		{ "case_sensitive", "a", "everything", "Echo", AG_TARGET_TOOL, false },
		{ "glob_suffix", "a", "everything", "get-weather", AG_TARGET_TOOL, true },
		{ "glob_empty_run", "a", "everything", "get-", AG_TARGET_TOOL, true },
		{ "glob_needs_prefix", "a", "everything", "get", AG_TARGET_TOOL, false },
		{ "glob_backtracks", "a", "everything", "aXbYbZc", AG_TARGET_TOOL, true },
		{ "glob_must_end", "a", "everything", "abcX", AG_TARGET_TOOL, false },
		{ "server_star", "a", "other", "anything", AG_TARGET_TOOL, true },
		{ "star_spans_slash", "a", "other", "x/y", AG_TARGET_TOOL, true },
		{ "wrong_server", "a", "other2", "echo", AG_TARGET_TOOL, false },
		{ "server_prefix", "a", "every", "thing/echo", AG_TARGET_TOOL, false },
		{ "server_case", "a", "Everything", "echo", AG_TARGET_TOOL, false },
		{ "kind_separate", "a", "everything", "echo", AG_TARGET_PROMPT, false },
		{ "resource", "a", "everything", "demo://resource/1", AG_TARGET_RESOURCE, true },
		{ "resource_deeper", "a", "everything", "demo://resource/a/b", AG_TARGET_RESOURCE,
		  true },
		{ "resource_other", "a", "everything", "demo://other", AG_TARGET_RESOURCE, false },
		{ "prompt", "a", "everything", "simple-prompt", AG_TARGET_PROMPT, true },
		{ "prompt_longer", "a", "everything", "simple-prompt-2", AG_TARGET_PROMPT, false },
		{ "deny_by_default", "none", "everything", "echo", AG_TARGET_TOOL, false },
		{ "deny_by_default_resource", "none", "everything", "x", AG_TARGET_RESOURCE,
		  false },
		{ "unknown_agent", NULL, "everything", "echo", AG_TARGET_TOOL, false },
	};
	struct ag_conf c;
	struct ag_err err;

	if (!ASSERT_OK(load(json, &c, &err), err.msg))
		return;
	for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
		const struct ag_agent_conf *a = NULL;

		if (!test__start_subtest(cases[i].name))
			continue;
		if (cases[i].agent &&
		    !ASSERT_OK_PTR(a = ag_conf_agent(&c, cases[i].agent), "agent"))
			continue;
		ASSERT_EQ(ag_conf_allows(a, cases[i].kind, cases[i].server, cases[i].item),
			  cases[i].want, "decision");
	}
	if (test__start_subtest("null_names")) {
		const struct ag_agent_conf *a = ag_conf_agent(&c, "a");

		ASSERT_FALSE(ag_conf_allows(a, AG_TARGET_TOOL, NULL, "echo"), "no server");
		ASSERT_FALSE(ag_conf_allows(a, AG_TARGET_TOOL, "everything", NULL), "no name");
	}
	ag_conf_free(&c);
}

/* The names an agent may resolve through the DNS relay: deny wins, allow narrows. */
TEST(config_dns)
{
	static const char json[] = "{\"dns\": {\"deny\": [\"*.evil.test\"]},"
				   " \"agents\": [{\"name\": \"a\", \"dns\": {\"allow\": "
				   "[\"*.example.com\", \"Pypi.org.\"],"
				   "   \"deny\": [\"up.example.com\"]}},"
				   "  {\"name\": \"none\", \"dns\": {\"allow\": []}},"
				   "  {\"name\": \"all\", \"dns\": {\"allow\": [\"*\"]}},"
				   "  {\"name\": \"top\"}]}";
	static const struct {
		const char *agent, *name;
		bool want;
	} cases[] = {
		{ "a", "api.example.com", true }, { "a", "example.com", false },
		{ "a", "up.example.com", false }, { "a", "pypi.org", true },
		{ "a", "x.evil.test", false },	  { "none", "pypi.org", false },
		{ "all", "x.evil.test", true },	  { "top", "pypi.org", true },
		{ "top", "x.evil.test", false },  { "top", "evil.test", true },
		{ NULL, "a.b.evil.test", false }, { NULL, "anything.test", true },
	};
	static const struct {
		const char *json, *error;
	} bad[] = {
		{ "{\"dns\": {\"allow\": [\"a..b\"]}}",
		  "$.dns.allow[0]: \"a..b\": expected a host name" },
		{ "{\"dns\": {\"deny\": [\"*\"]}}", "$.dns.deny[0]: \"*\": expected a host name" },
		{ "{\"dns\": {\"allowed\": []}}", "$.dns.allowed: unknown key" },
		{ "{\"agents\": [{\"name\": \"a\", \"dns\": {\"deny\": \"x.test\"}}]}",
		  "$.agents[0].dns.deny" },
	};
	struct ag_conf c;
	struct ag_err err;

	if (!ASSERT_OK(load(json, &c, &err), err.msg))
		return;
	for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++)
		ASSERT_EQ(ag_conf_dns_allows(
			      &c, cases[i].agent ? ag_conf_agent(&c, cases[i].agent) : NULL,
			      cases[i].name),
			  cases[i].want, cases[i].name);
	ag_conf_free(&c);
	for (size_t i = 0; i < AG_ARRAY_SIZE(bad); i++) {
		ASSERT_NEQ(load(bad[i].json, &c, &err), 0, bad[i].json);
		ASSERT_STRHAS(err.msg, bad[i].error, "error message");
	}
}

/* Appends n items "<pre><index><post>", index from 1, separated by commas. */
static void repeat(char *buf, size_t len, const char *pre, const char *post, int n)
{
	size_t off = strlen(buf);

	for (int i = 0; i < n && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s%d%s", i ? "," : "", pre, i + 1,
					post);
}

TEST(config_limits)
{
	size_t len = 64 * 1024;
	char *json = calloc(1, len);
	struct ag_conf c;
	struct ag_err err;

	if (!ASSERT_OK_PTR(json, "buffer"))
		return;
	if (test__start_subtest("ports_at_limit")) {
		strcpy(json,
		       "{\"tool_servers\": [{\"name\": \"s\", \"upstream\": \"http://127.0.0.1:1\","
		       " \"match\": {\"hosts\": [\"s.test\"], \"ports\": [");
		repeat(json, len, "", "", AG_MAX_CONF_LIST);
		strcat(json, "]}}]}");
		if (ASSERT_OK(load(json, &c, &err), err.msg)) {
			ASSERT_EQ(c.servers[0].nr_ports, AG_MAX_CONF_LIST, "all ports");
			ag_conf_free(&c);
		}
	}
	if (test__start_subtest("too_many_hosts")) {
		strcpy(json,
		       "{\"tool_servers\": [{\"name\": \"s\", \"upstream\": \"http://127.0.0.1:1\","
		       " \"match\": {\"hosts\": [");
		repeat(json, len, "\"h", ".test\"", AG_MAX_CONF_LIST + 1);
		strcat(json, "]}}]}");
		ASSERT_NEQ(load(json, &c, &err), 0, "rejected");
		ASSERT_TRUE(strstr(err.msg, "$.tool_servers[0].match.hosts: too many entries"),
			    err.msg);
	}
	if (test__start_subtest("too_many_servers")) {
		strcpy(json, "{\"tool_servers\": [");
		repeat(json, len, "{\"name\": \"s",
		       "\", \"upstream\": \"http://127.0.0.1:1\", \"match\": {\"hosts\": "
		       "[\"s.test\"]}}",
		       AG_MAX_CONF_SERVERS + 1);
		strcat(json, "]}");
		ASSERT_NEQ(load(json, &c, &err), 0, "rejected");
		ASSERT_TRUE(strstr(err.msg, "$.tool_servers: too many tool servers"), err.msg);
	}
	if (test__start_subtest("too_many_passthrough")) {
		strcpy(json, "{\"passthrough\": [");
		repeat(json, len, "\"h", ".test\"", AG_MAX_CONF_LIST + 1);
		strcat(json, "]}");
		ASSERT_NEQ(load(json, &c, &err), 0, "rejected");
		ASSERT_TRUE(strstr(err.msg, "$.passthrough: too many entries"), err.msg);
	}
	free(json);
}

/* agentgatectl config check, offline: no instance, no daemon, no kernel. */
TEST(config_check_cli)
{
	char good[] = "/tmp/agentgate-check-XXXXXX", badf[] = "/tmp/agentgate-check-XXXXXX";
	char *out = NULL, want[128];
	json_t *j = NULL;

	if (!ASSERT_TRUE(write_tmp(good, "{\"tool_servers\": [{\"name\": \"everything\","
					 " \"upstream\": \"http://127.0.0.1:3001/mcp\","
					 " \"match\": {\"hosts\": [\"mcp.test\"]}}],"
					 " \"agents\": [{\"name\": \"a\", \"tools\":"
					 " [\"everything/echo\"]}]}"),
			 "good file") ||
	    !ASSERT_TRUE(write_tmp(badf, "{\"tool_servers\": [{\"name\": \"x\","
					 " \"upstream\": \"ftp://127.0.0.1/\"}]}"),
			 "bad file"))
		goto out;
	if (test__start_subtest("ok")) {
		ASSERT_EQ(run_capture(&out, "%s/agentgatectl config check --config %s 2>&1",
				      testlib_build_dir(), good),
			  0, "exit status");
		snprintf(want, sizeof(want), "%s: ok: 1 tool servers, 1 agents\n", good);
		ASSERT_STREQ(out, want, "summary");
		free(out);
		out = NULL;
	}
	if (test__start_subtest("error")) {
		ASSERT_EQ(run_capture(&out, "%s/agentgatectl config check --config %s 2>&1",
				      testlib_build_dir(), badf),
			  1, "exit status");
		ASSERT_TRUE(strstr(out, badf), "names the file");
		ASSERT_TRUE(strstr(out, "$.tool_servers[0].upstream: \"ftp://127.0.0.1/\""),
			    "names the path");
		free(out);
		out = NULL;
	}
	if (test__start_subtest("missing_file")) {
		ASSERT_EQ(run_capture(&out,
				      "%s/agentgatectl config check --config /nonexistent/x.json "
				      "2>&1",
				      testlib_build_dir()),
			  1, "exit status");
		ASSERT_TRUE(strstr(out, "/nonexistent/x.json"), "names the file");
		free(out);
		out = NULL;
	}
	if (test__start_subtest("usage")) {
		ASSERT_EQ(run_capture(&out, "%s/agentgatectl config check --bogus 2>&1",
				      testlib_build_dir()),
			  2, "unknown option");
		free(out);
		ASSERT_EQ(run_capture(&out, "%s/agentgatectl config 2>&1", testlib_build_dir()), 2,
			  "no subcommand");
		free(out);
		out = NULL;
	}
	if (test__start_subtest("json")) {
		json_error_t jerr;
		json_t *s, *a;

		ASSERT_EQ(run_capture(&out, "%s/agentgatectl config check --config %s --json",
				      testlib_build_dir(), good),
			  0, "exit status");
		j = json_loads(out, 0, &jerr);
		if (!ASSERT_OK_PTR(j, "JSON output"))
			goto out;
		s = json_array_get(json_object_get(j, "tool_servers"), 0);
		a = json_array_get(json_object_get(j, "agents"), 0);
		ASSERT_STREQ(json_string_value(json_object_get(s, "name")), "everything", "server");
		ASSERT_STREQ(json_string_value(json_object_get(s, "upstream")),
			     "http://127.0.0.1:3001/mcp", "upstream");
		ASSERT_EQ(json_integer_value(json_array_get(
			      json_object_get(json_object_get(s, "match"), "ports"), 0)),
			  3001, "the upstream's port is matched");
		ASSERT_STREQ(json_string_value(json_array_get(json_object_get(a, "tools"), 0)),
			     "everything/echo", "agent tools");
		ASSERT_STREQ(
		    json_string_value(json_array_get(json_object_get(a, "passthrough"), 0)), "*",
		    "inherited default passthrough");
		ASSERT_TRUE(json_is_true(json_object_get(a, "passthrough_inherited")), "inherited");
	}
out:
	json_decref(j);
	free(out);
	unlink(good);
	unlink(badf);
}

/* The JSON of json into path (a mkstemp template), for ag_conf_parse. */
static bool conf_file(char *path, const char *json)
{
	return write_tmp(path, json);
}

/*
 * Parsing does no I/O: a name that does not resolve, a missing CA file, a
 * missing secret and a regex that does not compile all parse, and each is
 * refused by the resolve step with the key path parsing used to name.
 */
TEST(config_parse_then_resolve)
{
	static const struct {
		const char *name, *extra, *error;
	} cases[] = {
		{ "dns", "", "$.tool_servers[0].upstream: host \"no-such-host.invalid\"" },
		{ "ca_file", ", \"tls\": {\"ca_file\": \"/nonexistent/ca.pem\"}",
		  "$.tool_servers[0].tls.ca_file: /nonexistent/ca.pem: No such file" },
		{ "secret",
		  ", \"credential\": {\"type\": \"bearer\", \"secret_file\": "
		  "\"/nonexistent/secret\"}",
		  "/nonexistent/secret" },
		{ "regex", ", \"output_rules\": [{\"name\": \"r\", \"regex\": \"(\"}]",
		  "$.tool_servers[0].output_rules: " },
	};
	char json[1024], path[64];
	struct ag_conf c;
	struct ag_err err;

	for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
		const char *host = i ? "127.0.0.1" : "no-such-host.invalid";

		if (!test__start_subtest(cases[i].name))
			continue;
		snprintf(json, sizeof(json),
			 "{\"tool_servers\": [{\"name\": \"s\", \"upstream\": \"https://%s:3001\","
			 " \"match\": {\"hosts\": [\"s.test\"]}%s}]}",
			 host, cases[i].extra);
		snprintf(path, sizeof(path), "/tmp/agentgate-conf-XXXXXX");
		if (!ASSERT_TRUE(conf_file(path, json), "config file"))
			continue;
		if (ASSERT_OK(ag_conf_parse(&c, path, &err), err.msg)) {
			ASSERT_EQ(ag_conf_resolve(&c, path, &err), -EINVAL, "resolve refuses");
			ASSERT_STRHAS(err.msg, cases[i].error, cases[i].name);
			ag_conf_free(&c);
		}
		ASSERT_NEQ(ag_conf_load(&c, path, &err), 0, "load refuses");
		ASSERT_STRHAS(err.msg, cases[i].error, "the same message from load");
		unlink(path);
	}
	if (test__start_subtest("loop_needs_the_address")) {
		snprintf(path, sizeof(path), "/tmp/agentgate-conf-XXXXXX");
		if (ASSERT_TRUE(conf_file(path, SERVER_U("http://localhost:15080/mcp", "") "}"),
				"config file") &&
		    ASSERT_OK(ag_conf_parse(&c, path, &err), err.msg)) {
			ASSERT_EQ(ag_conf_resolve(&c, path, &err), -EINVAL, "loop refused");
			ASSERT_STRHAS(err.msg,
				      "$.tool_servers[0].upstream: \"http://localhost:15080/mcp\": "
				      "that is the gateway's own listener",
				      "names the URL as written");
			ag_conf_free(&c);
		}
		unlink(path);
	}
}

/*
 * Where the configuration's and OAuth's URL parsers disagreed, the one
 * grammar (lib/hostport.h) decides, and config check says so at load.
 */
TEST(config_url_rules)
{
	static const struct {
		const char *name, *json, *error; /* error: NULL when valid */
	} cases[] = {
		/* Was refused by config ("expected / after the host"), sent by OAuth. */
		{ "query_without_path", SERVER_U("http://127.0.0.1:3001?x=1", "") "}", NULL },
		/* Was accepted by config and resolved by inet_aton to 127.0.0.1. */
		{ "inet_aton_short_form", SERVER_U("http://127.1:3001/", "") "}",
		  "\"127.1\" is not a host name or IPv4 address" },
		/* Was sent upstream raw by config, refused by OAuth. */
		{ "non_ascii_path", SERVER_U("http://127.0.0.1:3001/\xc3\xa9", "") "}",
		  "the path contains a space, control or non-ASCII byte" },
		/* token_url: config compared the scheme case-sensitively, OAuth did not. */
		{ "token_url_scheme_case",
		  SERVER(", \"credential\": {\"type\": \"oauth2_client_credentials\", "
			 "\"token_url\": \"HTTPS://127.0.0.1:1/t\", \"client_id\": \"c\", "
			 "\"client_secret_file\": \"/x\"}") "}",
		  NULL },
		/* token_url: OAuth refused these only when the daemon started. */
		{ "token_url_userinfo",
		  SERVER(", \"credential\": {\"type\": \"oauth2_client_credentials\", "
			 "\"token_url\": \"http://u:p@127.0.0.1/t\", \"client_id\": \"c\", "
			 "\"client_secret_file\": \"/x\"}") "}",
		  "$.tool_servers[0].credential.token_url: \"http://u:p@127.0.0.1/t\": user "
		  "information" },
		{ "token_url_port",
		  SERVER(", \"credential\": {\"type\": \"oauth2_client_credentials\", "
			 "\"token_url\": \"http://127.0.0.1:99999/t\", \"client_id\": \"c\", "
			 "\"client_secret_file\": \"/x\"}") "}",
		  "$.tool_servers[0].credential.token_url: \"http://127.0.0.1:99999/t\": the "
		  "port" },
	};
	char path[64];
	struct ag_conf c;
	struct ag_err err;

	for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
		if (!test__start_subtest(cases[i].name))
			continue;
		snprintf(path, sizeof(path), "/tmp/agentgate-conf-XXXXXX");
		if (!ASSERT_TRUE(conf_file(path, cases[i].json), "config file"))
			continue;
		/* Parse only: the secret file of the OAuth cases does not exist. */
		if (!cases[i].error) {
			if (ASSERT_OK(ag_conf_parse(&c, path, &err), err.msg)) {
				if (!strcmp(cases[i].name, "query_without_path"))
					ASSERT_STREQ(c.servers[0].upstream_path, "/?x=1",
						     "a query asks for /");
				ag_conf_free(&c);
			}
		} else {
			ASSERT_EQ(ag_conf_parse(&c, path, &err), -EINVAL, cases[i].name);
			ASSERT_STRHAS(err.msg, cases[i].error, cases[i].name);
		}
		unlink(path);
	}
}

/* "policy_source": the signed git repository; what each mistake is called. */
TEST(config_policy_source)
{
#define SRC(members) "{\"policy_source\": {\"url\": \"file:///srv/p.git\", " members
	/* json without its last '}'; error NULL when valid. */
	static const struct {
		const char *name, *json, *error;
	} cases[] = {
		{ "minimal", SRC("\"allowed_signers\": \"/etc/signers\"}"), NULL },
		{ "entities_only",
		  SRC("\"allowed_signers\": \"/s\"}, \"policy\": {\"entities\": "
		      "\"/e.json\"}"),
		  NULL },
		{ "no_signers", SRC("\"ref\": \"main\"}"),
		  "$.policy_source.allowed_signers: missing" },
		{ "no_url", "{\"policy_source\": {\"allowed_signers\": \"/s\"}",
		  "$.policy_source.url: missing" },
		{ "option_url",
		  "{\"policy_source\": {\"url\": \"--upload-pack=x\", "
		  "\"allowed_signers\": \"/s\"}",
		  "$.policy_source.url: must not start with '-'" },
		{ "refspec_ref", SRC("\"allowed_signers\": \"/s\", \"ref\": \"main:x\"}"),
		  "$.policy_source.ref: expected a branch or tag name" },
		{ "option_ref", SRC("\"allowed_signers\": \"/s\", \"ref\": \"-main\"}"),
		  "$.policy_source.ref: expected" },
		{ "dotdot_path", SRC("\"allowed_signers\": \"/s\", \"path\": \"a/../../etc\"}"),
		  "$.policy_source.path: expected a relative directory" },
		{ "absolute_path", SRC("\"allowed_signers\": \"/s\", \"path\": \"/etc\"}"),
		  "$.policy_source.path: expected" },
		{ "interval_zero", SRC("\"allowed_signers\": \"/s\", \"interval_s\": 0}"),
		  "$.policy_source.interval_s: must be at least 1" },
		{ "interval_max", SRC("\"allowed_signers\": \"/s\", \"interval_s\": 86401}"),
		  "$.policy_source.interval_s: must be between" },
		{ "with_dir", SRC("\"allowed_signers\": \"/s\"}, \"policy\": {\"dir\": \"/p\"}"),
		  "$.policy: \"dir\" and \"files\" conflict with \"policy_source\"" },
		{ "unknown", SRC("\"allowed_signers\": \"/s\", \"branch\": \"x\"}"),
		  "$.policy_source.branch: unknown key" },
	};
#undef SRC
	struct ag_conf c;
	struct ag_err err;

	for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
		char json[512];

		if (!test__start_subtest(cases[i].name))
			continue;
		snprintf(json, sizeof(json), "%s}", cases[i].json);
		if (!cases[i].error) {
			if (!ASSERT_OK(load(json, &c, &err), err.msg))
				continue;
			ASSERT_STREQ(c.policy_source.ref, "main", "ref defaults to main");
			ASSERT_EQ(c.policy_source.interval_s, 60, "interval_s defaults to 60");
			ASSERT_TRUE(c.policy.set, "decided by policies");
			ASSERT_STREQ(c.policy.dir, "", "no local directory");
			ag_conf_free(&c);
			continue;
		}
		ASSERT_NEQ(load(json, &c, &err), 0, "rejected");
		ASSERT_TRUE(strstr(err.msg, cases[i].error), err.msg);
	}
}
