// SPDX-License-Identifier: GPL-2.0
/* agentgate.json: what parses, and what each mistake is called. */
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "test.h"
#include "testlib.h"

static int load(const char *json, struct ag_conf *c, struct ag_err *err)
{
	char path[] = "/tmp/agentgate-conf-XXXXXX";
	int fd = mkstemp(path), ret;

	if (fd < 0 || write(fd, json, strlen(json)) != (ssize_t)strlen(json))
		return -1;
	close(fd);
	ret = ag_conf_load(c, path, err);
	unlink(path);
	return ret;
}

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
