// SPDX-License-Identifier: GPL-2.0
/* agentgate.json "inbound": what parses, and what each mistake is called. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "test.h"

#define SERVERS                                                                              \
	"\"tool_servers\": [{\"name\": \"s\", \"upstream\": \"http://127.0.0.1:3001/mcp\", " \
	"\"match\": {\"hosts\": [\"s.test\"]}}]"
#define INBOUND(members)                                                                      \
	"{" SERVERS ", \"inbound\": {\"listen\": \"0.0.0.0:8443\", \"server\": \"s\", "       \
	"\"resource\": \"https://gw.example:8443/mcp\", \"issuer\": \"https://as.example\", " \
	"\"jwks_uri\": \"https://as.example/jwks\"" members "}}"
#define TLS ", \"cert_file\": \"/etc/gw/cert.pem\", \"key_file\": \"/etc/gw/key.pem\""
#define SCOPES ", \"scopes\": {\"tools:read\": [\"search\", \"get\"], \"tools:all\": [\"*\"]}"

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

static void refused(const char *json, const char *msg)
{
	struct ag_conf c;
	struct ag_err err = { 0 };

	if (!ASSERT_NEQ(load(json, &c, &err), 0, "refused")) {
		ag_conf_free(&c);
		return;
	}
	ASSERT_STRHAS(err.msg, msg, "says why");
}

TEST(inbound_config)
{
	struct ag_conf c;
	struct ag_err err;

	if (ASSERT_OK(load(INBOUND(TLS SCOPES), &c, &err), err.msg)) {
		ASSERT_EQ(c.inbound.port, 8443, "port");
		ASSERT_STREQ(c.inbound.server, "s", "server");
		ASSERT_STREQ(c.inbound.resource_path, "/mcp", "the resource's path");
		ASSERT_EQ(c.inbound.nr_grants, 3, "three tools granted");
		ASSERT_STREQ(c.inbound.grants[2].scope, "tools:all", "scope of the wildcard");
		ASSERT_STREQ(c.inbound.grants[2].tool, "*", "the wildcard");
		ASSERT_EQ(c.inbound.clock_skew_s, AG_INBOUND_SKEW_DEFAULT, "default skew");
		ASSERT_EQ(c.inbound.jwks_min_interval_s, AG_INBOUND_MIN_INTERVAL_DEFAULT,
			  "default refetch bound");
		ag_conf_free(&c);
	}
	if (ASSERT_OK(load("{" SERVERS "}", &c, &err), err.msg)) {
		ASSERT_EQ(c.inbound.port, 0, "off without the block");
		ag_conf_free(&c);
	}
	refused(INBOUND(SCOPES), "$.inbound: expected \"cert_file\" and \"key_file\" (TLS)");
	refused(INBOUND(TLS), "$.inbound: expected \"scopes\"");
	refused(INBOUND(TLS SCOPES ", \"introspection\": \"x\""), "introspection");
	refused(INBOUND(TLS ", \"scopes\": {\"a\\\"b\": [\"x\"]}"), "not a scope token");
	refused(INBOUND(TLS SCOPES ", \"clock_skew_s\": 601"), "$.inbound.clock_skew_s");
	refused("{" SERVERS ", \"inbound\": {\"listen\": \"0.0.0.0:8443\", \"server\": \"nope\"" TLS
		"}}",
		"$.inbound.server: \"nope\": no tool server of that name");
	refused("{" SERVERS ", \"inbound\": {\"listen\": \"0.0.0.0\"}}", "$.inbound.listen");
}
