// SPDX-License-Identifier: GPL-2.0
/*
 * The MCP path's pure request checks (mcp_check.h), fed hostile values
 * directly: case, ports, brackets, trailing dots, empty, over-long, NUL
 * bytes, duplicate fields.  They pin today's behaviour exactly, quirks
 * included (each marked "today:"), so a rewrite of the host grammar shows
 * every difference as a failing line.
 */
#include <string.h>

#include "mcp_check.h"
#include "test.h"

static char hosts[2][AG_HOST_LEN] = { "tools.example.com", "*.svc.example" };
static const uint8_t lo4[16] = { [10] = 0xff, [11] = 0xff, [12] = 127, [15] = 1 };
static const uint8_t lo6[16] = { [15] = 1 };
static const uint8_t ten[16] = { [10] = 0xff, [11] = 0xff, [12] = 10, [15] = 1 };

/* The checks take lengths, not C strings: NUL bytes are passed through. */
#define AUTH(w, lit) ag_mcp_authority_ok(w, lit, sizeof(lit) - 1)
#define ORIGIN(w, lit) ag_mcp_origin_ok(w, lit, sizeof(lit) - 1)

TEST(mcp_check_host_matches)
{
	ASSERT_TRUE(ag_mcp_host_matches("a.example", "A.EXAMPLE", 9), "case-insensitive");
	ASSERT_FALSE(ag_mcp_host_matches("a.example", "a.example", 8), "length counts");
	ASSERT_TRUE(ag_mcp_host_matches("*.example", "x.example", 9), "wildcard child");
	ASSERT_TRUE(ag_mcp_host_matches("*.example", "x.y.example", 11), "wildcard grandchild");
	ASSERT_FALSE(ag_mcp_host_matches("*.example", "example", 7), "wildcard: not the apex");
	ASSERT_FALSE(ag_mcp_host_matches("*.example", ".example", 8), "wildcard: empty label");
	ASSERT_FALSE(ag_mcp_host_matches("*.example", "xexample", 8), "wildcard: label boundary");
	ASSERT_FALSE(ag_mcp_host_matches("a.example", "", 0), "empty host");
}

TEST(mcp_check_authority_names)
{
	struct ag_mcp_authority w = { hosts, 2, lo4, 8080 };
	char longname[400];

	ASSERT_TRUE(AUTH(&w, "tools.example.com"), "configured name");
	ASSERT_TRUE(AUTH(&w, "TOOLS.Example.COM"), "case");
	ASSERT_TRUE(AUTH(&w, "tools.example.com."), "one trailing dot");
	ASSERT_FALSE(AUTH(&w, "tools.example.com.."), "two trailing dots");
	ASSERT_TRUE(AUTH(&w, "a.svc.example"), "wildcard");
	ASSERT_TRUE(AUTH(&w, "a.svc.example.:8080"), "wildcard, dot and port");
	ASSERT_FALSE(AUTH(&w, "svc.example"), "wildcard apex");
	ASSERT_FALSE(AUTH(&w, "evil.example"), "foreign name");
	ASSERT_FALSE(AUTH(&w, "tools.example.com.evil.example"), "suffix of a foreign name");
	ASSERT_FALSE(AUTH(&w, "xtools.example.com"), "prefix");
	/* today: the wildcard pattern itself, sent as a Host, is a name below it */
	ASSERT_TRUE(AUTH(&w, "*.svc.example"), "pattern as host");
	ASSERT_FALSE(AUTH(&w, ""), "empty");
	ASSERT_FALSE(AUTH(&w, "."), "only a dot");
	ASSERT_FALSE(AUTH(&w, ":8080"), "only a port");
	ASSERT_FALSE(AUTH(&w, "tools.example.com\0.evil"), "NUL inside a name");
	memset(longname, 'a', sizeof(longname));
	memcpy(longname + sizeof(longname) - 18, ".tools.example.com", 18);
	ASSERT_FALSE(ag_mcp_authority_ok(&w, longname, sizeof(longname)),
		     "over-long name, exact pattern");
	w.nr_hosts = 0;
	ASSERT_FALSE(AUTH(&w, "tools.example.com"), "no names configured");
}

TEST(mcp_check_authority_ports)
{
	struct ag_mcp_authority w = { hosts, 2, lo4, 8080 };

	ASSERT_TRUE(AUTH(&w, "tools.example.com:8080"), "the dialled port");
	ASSERT_TRUE(AUTH(&w, "tools.example.com:08080"), "leading zero, 5 digits");
	ASSERT_FALSE(AUTH(&w, "tools.example.com:008080"), "6 digits");
	ASSERT_FALSE(AUTH(&w, "tools.example.com:80"), "another port");
	ASSERT_FALSE(AUTH(&w, "tools.example.com:"), "empty port");
	ASSERT_FALSE(AUTH(&w, "tools.example.com:+8080"), "sign");
	ASSERT_FALSE(AUTH(&w, "tools.example.com:8080x"), "trailing garbage");
	ASSERT_FALSE(AUTH(&w, "tools.example.com:8080:8080"), "two ports");
	ASSERT_FALSE(AUTH(&w, "tools.example.com:73616"), "8080 + 65536 does not wrap");
	ASSERT_FALSE(AUTH(&w, "tools.example.com:8080\0"), "NUL after the port");
	w.port = 0;
	ASSERT_TRUE(AUTH(&w, "tools.example.com:0"), "port 0 when 0 was dialled");
}

TEST(mcp_check_authority_addresses)
{
	struct ag_mcp_authority w = { hosts, 2, lo4, 8080 };

	ASSERT_TRUE(AUTH(&w, "127.0.0.1"), "dialled v4 address");
	ASSERT_TRUE(AUTH(&w, "127.0.0.1:8080"), "dialled v4 address and port");
	ASSERT_FALSE(AUTH(&w, "127.0.0.2"), "another address");
	ASSERT_TRUE(AUTH(&w, "[::ffff:127.0.0.1]:8080"), "v4-mapped in brackets");
	ASSERT_FALSE(AUTH(&w, "[::1]"), "v6 loopback when v4 was dialled");
	ASSERT_TRUE(AUTH(&w, "localhost"), "localhost, v4 loopback");
	ASSERT_TRUE(AUTH(&w, "LocalHost.:8080"), "localhost: case, dot, port");
	ASSERT_FALSE(AUTH(&w, "localhost.localdomain"), "not localhost");
	/* today: ag_addr_parse takes a prefix; /32 is the one address */
	ASSERT_TRUE(AUTH(&w, "127.0.0.1/32"), "address with /32");
	ASSERT_FALSE(AUTH(&w, "127.0.0.1/24"), "address with /24");
	/* today: the address is copied as a C string, so a NUL ends it; the
	 * HTTP parser refuses a NUL in a field value before this check */
	ASSERT_TRUE(AUTH(&w, "127.0.0.1\0evil"), "NUL after the address");

	w.addr = lo6;
	ASSERT_TRUE(AUTH(&w, "[::1]"), "dialled v6 address");
	ASSERT_TRUE(AUTH(&w, "[::1]:8080"), "dialled v6 address and port");
	ASSERT_TRUE(AUTH(&w, "[0:0:0:0:0:0:0:1]"), "v6 spelled out");
	ASSERT_FALSE(AUTH(&w, "[::1]8080"), "garbage after the bracket");
	ASSERT_FALSE(AUTH(&w, "[::1]:"), "empty port after the bracket");
	ASSERT_FALSE(AUTH(&w, "[::1"), "unclosed bracket");
	ASSERT_FALSE(AUTH(&w, "::1"), "v6 without brackets");
	ASSERT_FALSE(AUTH(&w, "[]"), "empty brackets");
	ASSERT_TRUE(AUTH(&w, "localhost"), "localhost, v6 loopback");
	ASSERT_FALSE(AUTH(&w, "127.0.0.1"), "v4 loopback when v6 was dialled");

	w.addr = ten;
	ASSERT_TRUE(AUTH(&w, "10.0.0.1"), "dialled address");
	ASSERT_FALSE(AUTH(&w, "localhost"), "localhost, not a loopback address");
	ASSERT_FALSE(AUTH(&w, "012.0.0.1"), "octal-looking octet");
}

TEST(mcp_check_origin)
{
	struct ag_mcp_authority w = { hosts, 2, lo4, 8080 };

	ASSERT_TRUE(ORIGIN(&w, "http://tools.example.com"), "scheme and name");
	ASSERT_TRUE(ORIGIN(&w, "https://tools.example.com:8080/any/path"), "port and path");
	ASSERT_TRUE(ORIGIN(&w, "http://localhost:8080"), "localhost");
	ASSERT_FALSE(ORIGIN(&w, "http://evil.example"), "foreign origin");
	ASSERT_FALSE(ORIGIN(&w, "http://tools.example.com:9"), "another port");
	ASSERT_FALSE(ORIGIN(&w, "null"), "opaque origin");
	ASSERT_FALSE(ORIGIN(&w, ""), "empty");
	ASSERT_FALSE(ORIGIN(&w, "http://"), "empty authority");
	ASSERT_FALSE(ORIGIN(&w, "tools.example.com"), "no scheme");
	ASSERT_TRUE(ORIGIN(&w, "http://tools.example.com/x://evil"), "first :// counts");
	ASSERT_FALSE(ORIGIN(&w, "http://evil.example/://tools.example.com"), "decoy after path");
	/* today: any scheme, even none before "://" */
	ASSERT_TRUE(ORIGIN(&w, "://tools.example.com"), "empty scheme");
}

static bool ids_unique(const char *body)
{
	struct ag_jsonrpc_body b;
	struct ag_err err;
	bool ret;

	if (!ASSERT_OK(ag_jsonrpc_parse(body, strlen(body), NULL, &b, &err), "parse"))
		return false;
	ret = ag_mcp_ids_unique(&b);
	ag_jsonrpc_body_free(&b);
	return ret;
}

TEST(mcp_check_ids_unique)
{
	ASSERT_TRUE(ids_unique("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}"), "one");
	ASSERT_FALSE(ids_unique("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\"},"
				"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"b\"}]"),
		     "same integer id");
	ASSERT_FALSE(ids_unique("[{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"a\"},"
				"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"b\"},"
				"{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"c\"}]"),
		     "same string id, not adjacent");
	ASSERT_TRUE(ids_unique("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\"},"
			       "{\"jsonrpc\":\"2.0\",\"id\":\"1\",\"method\":\"b\"}]"),
		    "1 and \"1\" differ");
	ASSERT_TRUE(ids_unique("[{\"jsonrpc\":\"2.0\",\"method\":\"n\"},"
			       "{\"jsonrpc\":\"2.0\",\"method\":\"n\"}]"),
		    "notifications have no id");
}

static bool ctype(const char *const *values, unsigned int n, const char *type)
{
	struct ag_http_header h[4];
	struct ag_http_msg m = { .headers = h, .nfields = n };

	for (unsigned int i = 0; i < n; i++)
		h[i] = (struct ag_http_header){ "Content-Type", 12, values[i], strlen(values[i]) };
	return ag_mcp_content_type_is(&m, type);
}

TEST(mcp_check_content_type)
{
	static const char *const json[] = { "application/json" },
				 *const cased[] = { "Application/JSON" },
				 *const param[] = { "application/json; charset=utf-8" },
				 *const tight[] = { "application/json;x" },
				 *const longer[] = { "application/jsonx" },
				 *const shorter[] = { "application/jso" },
				 *const twice[] = { "text/plain", "application/json" };

	ASSERT_TRUE(ctype(json, 1, "application/json"), "exact");
	ASSERT_TRUE(ctype(cased, 1, "application/json"), "case");
	ASSERT_TRUE(ctype(param, 1, "application/json"), "with a parameter");
	ASSERT_TRUE(ctype(tight, 1, "application/json"), "';' right after");
	ASSERT_FALSE(ctype(longer, 1, "application/json"), "longer type");
	ASSERT_FALSE(ctype(shorter, 1, "application/json"), "shorter type");
	ASSERT_FALSE(ctype(json, 1, "text/event-stream"), "another type");
	ASSERT_FALSE(ctype(NULL, 0, "application/json"), "no Content-Type");
	/* today: the first of two fields counts */
	ASSERT_FALSE(ctype(twice, 2, "application/json"), "duplicate field, first wins");
}
