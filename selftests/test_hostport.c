// SPDX-License-Identifier: GPL-2.0
/*
 * lib/hostport: the one grammar for names, authorities and URLs, and the
 * loopback test.  Hostile inputs first: each is what an agent, a Host
 * header or a mistaken configuration can put in front of it.
 */
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdio.h>
#include <string.h>

#include "hostport.h"
#include "test.h"
#include "util.h"

static void v4(uint8_t a[16], uint8_t b0, uint8_t b1, uint8_t b2, uint8_t b3)
{
	memset(a, 0, 16);
	a[10] = a[11] = 0xff;
	a[12] = b0;
	a[13] = b1;
	a[14] = b2;
	a[15] = b3;
}

TEST(hostport_names)
{
	char big[300], out[AG_HOST_LEN];

	/* NUL inside the length, over-long names and labels, empty labels. */
	ASSERT_FALSE(ag_dns_name_valid("a\0b", 3, 0), "NUL inside");
	memset(big, 'a', sizeof(big));
	ASSERT_FALSE(ag_dns_name_valid(big, 64, 0), "64-byte label");
	ASSERT_TRUE(ag_dns_name_valid(big, 63, 0), "63-byte label");
	for (int i = 63; i < 254; i += 64)
		big[i] = '.';
	ASSERT_TRUE(ag_dns_name_valid(big, AG_DNS_NAME_MAX, 0), "253 bytes");
	ASSERT_FALSE(ag_dns_name_valid(big, AG_DNS_NAME_MAX + 1, 0), "254 bytes");
	ASSERT_FALSE(ag_dns_name_valid("", 0, 0), "empty");
	ASSERT_FALSE(ag_dns_name_valid("a..b", 4, 0), "empty label");
	ASSERT_FALSE(ag_dns_name_valid(".a", 2, 0), "leading dot");
	ASSERT_FALSE(ag_dns_name_valid("a.", 2, 0), "trailing dot");
	ASSERT_FALSE(ag_dns_name_valid("a b", 3, 0), "space");
	ASSERT_FALSE(ag_dns_name_valid("b\xc3\xbcro.test", 10, AG_NAME_ANY_CASE),
		     "IDN bytes: only the xn-- form is a name");
	ASSERT_TRUE(ag_dns_name_valid("xn--bro-hoa.test", 16, 0), "punycode");
	/* Case: the configuration's names are lower case, an SNI may be either. */
	ASSERT_FALSE(ag_dns_name_valid("A.test", 6, 0), "upper case refused by default");
	ASSERT_TRUE(ag_dns_name_valid("A.test", 6, AG_NAME_ANY_CASE), "upper case allowed");
	/* Wildcards only as a whole leading label. */
	ASSERT_FALSE(ag_dns_name_valid("*.test", 6, 0), "no wildcard without the flag");
	ASSERT_TRUE(ag_dns_name_valid("*.test", 6, AG_NAME_WILDCARD), "*.suffix");
	ASSERT_FALSE(ag_dns_name_valid("*", 1, AG_NAME_WILDCARD), "bare *");
	ASSERT_FALSE(ag_dns_name_valid("*.", 2, AG_NAME_WILDCARD), "*. alone");
	ASSERT_FALSE(ag_dns_name_valid("a.*.test", 8, AG_NAME_WILDCARD), "inner *");
	ASSERT_FALSE(ag_dns_name_valid("*a.test", 7, AG_NAME_WILDCARD), "partial *");
	/* An all-digit last label is inet_aton's ("127.1" is 127.0.0.1). */
	ASSERT_TRUE(ag_dns_name_valid("127.1", 5, 0), "numeric allowed without NOT_IP");
	ASSERT_FALSE(ag_dns_name_valid("127.1", 5, AG_NAME_NOT_IP), "numeric refused");
	ASSERT_TRUE(ag_dns_name_valid("1.example", 9, AG_NAME_NOT_IP), "digits, then a name");

	ASSERT_TRUE(ag_host_lower(out, "MCP.Example.TEST.", 17), "lower");
	ASSERT_STREQ(out, "mcp.example.test", "lower case, one trailing dot dropped");
	ASSERT_FALSE(ag_host_lower(out, "a.test\0.evil", 12), "NUL inside");
	ASSERT_TRUE(ag_host_lower(out, "a..", 3), "two dots");
	ASSERT_STREQ(out, "a.", "only one trailing dot dropped");
	memset(big, 'a', sizeof(big));
	ASSERT_FALSE(ag_host_lower(out, big, AG_HOST_LEN), "does not fit");
	ASSERT_TRUE(ag_host_lower(out, big, AG_HOST_LEN - 1), "fits exactly");

	ASSERT_TRUE(ag_host_match("*.example.test", "a.example.test"), "below");
	ASSERT_TRUE(ag_host_match("*.example.test", "a.b.example.test"), "deeper");
	ASSERT_FALSE(ag_host_match("*.example.test", "example.test"), "never the suffix itself");
	ASSERT_FALSE(ag_host_match("*.example.test", "badexample.test"), "label boundary");
	ASSERT_FALSE(ag_host_match("example.test", "a.example.test"), "exact is exact");
	ASSERT_TRUE(ag_host_match("example.test", "example.test"), "exact");
}

TEST(hostport_ports)
{
	uint16_t port = 7;

	ASSERT_FALSE(ag_port_parse("", 0, &port), "empty");
	ASSERT_FALSE(ag_port_parse("0", 1, &port), "0");
	ASSERT_FALSE(ag_port_parse("65536", 5, &port), "65536");
	ASSERT_FALSE(ag_port_parse("000080", 6, &port), "six digits, even when small");
	ASSERT_FALSE(ag_port_parse("+80", 3, &port), "sign");
	ASSERT_FALSE(ag_port_parse(" 80", 3, &port), "space");
	ASSERT_FALSE(ag_port_parse("8\0", 2, &port), "NUL");
	ASSERT_FALSE(ag_port_parse("https", 5, &port), "a service name");
	ASSERT_EQ(port, 7, "untouched on failure");
	ASSERT_TRUE(ag_port_parse("65535", 5, &port), "65535");
	ASSERT_EQ(port, 65535, "value");
	ASSERT_TRUE(ag_port_parse("00443", 5, &port), "leading zeros within 5 digits");
	ASSERT_EQ(port, 443, "value");
}

static bool split(const char *s, bool loose, const char *host, const char *port)
{
	struct ag_authority a;

	if (ag_authority_split(s, strlen(s), loose, &a))
		return false;
	if (a.host_len != strlen(host) || memcmp(a.host, host, a.host_len))
		return false;
	if (!port)
		return !a.port;
	return a.port && a.port_len == strlen(port) && !memcmp(a.port, port, a.port_len);
}

TEST(hostport_authority)
{
	struct ag_authority a;
	char out[AG_HOST_LEN];

	ASSERT_EQ(ag_authority_split("[::1", 4, false, &a), AG_AUTH_E_BRACKET, "unclosed [");
	ASSERT_EQ(ag_authority_split("[::1]x", 6, false, &a), AG_AUTH_E_AFTER_BRACKET, "]x");
	ASSERT_EQ(ag_authority_split("[::1]]", 6, false, &a), AG_AUTH_E_AFTER_BRACKET, "]]");
	ASSERT_TRUE(split("[::1]:", false, "::1", ""), "empty port is a port to refuse");
	ASSERT_TRUE(split("[]:80", false, "", "80"), "empty brackets: the caller refuses");
	ASSERT_TRUE(split("[::1]:443", false, "::1", "443"), "[v6]:port");
	ASSERT_TRUE(split("a.test:443", false, "a.test", "443"), "name:port");
	ASSERT_TRUE(split("a.test", false, "a.test", NULL), "no port");
	ASSERT_TRUE(split("::1", false, "", ":1"), "bare v6, strict: a port with a colon");
	ASSERT_TRUE(split("::1", true, "::1", NULL), "bare v6, loose: the host");
	ASSERT_TRUE(split("[::1]junk", true, "::1", NULL), "loose ignores what follows ]");
	ASSERT_TRUE(split("u@h:1", false, "u@h", "1"), "userinfo is the caller's to refuse");

	/* A Host is bytes with a length: a NUL must not cut "a.test\0.evil" to a.test. */
	ASSERT_EQ(ag_authority_split("a.test\0.evil:80", 15, false, &a), AG_AUTH_OK, "NUL");
	ASSERT_FALSE(ag_host_lower(out, a.host, a.host_len), "NUL inside a Host's name");
	ASSERT_FALSE(ag_host_norm(NULL, out), "NULL");
	ASSERT_FALSE(ag_host_norm("", out), "empty");
	ASSERT_FALSE(ag_host_norm(":80", out), "no host");
	ASSERT_FALSE(ag_host_norm("[]", out), "empty brackets");
	ASSERT_FALSE(ag_host_norm("[::1", out), "unclosed");
	ASSERT_FALSE(ag_host_norm(".", out), "only a dot");
	ASSERT_TRUE(ag_host_norm("MCP.Example.Test.:8443", out), "Host with port");
	ASSERT_STREQ(out, "mcp.example.test", "normalized");
	ASSERT_TRUE(ag_host_norm("[FD00::1]:443", out), "[v6]:port");
	ASSERT_STREQ(out, "fd00::1", "brackets and port gone, lower case");
	ASSERT_TRUE(ag_host_norm("fd00::1", out), "bare v6");
	ASSERT_STREQ(out, "fd00::1", "whole");
}

static int url(const char *s, struct ag_url *u, char *why)
{
	return ag_url_parse(s, u, why, 200);
}

TEST(hostport_url)
{
	static const struct {
		const char *url, *why;
	} bad[] = {
		{ "ftp://h/", "expected an http:// or https:// URL" },
		{ "http:/h/", "expected an http://" },
		{ "http://u:p@h/", "user information" },
		{ "http://h@/", "user information" },
		{ "http://[::1/", "expected \"[IPv6]\" as the host" },
		{ "http://[]/", "expected \"[IPv6]\" as the host" },
		{ "http://[::1]x/", "expected \":PORT\" after \"]\"" },
		{ "http://[::g]/", "\"::g\" is not an IPv6 address" },
		{ "http://[fe80::1%eth0]/", "is not an IPv6 address" },
		{ "http://::1/", "\"\" is not a host name" },
		{ "http:///x", "\"\" is not a host name" },
		{ "http://a..b/", "is not a host name" },
		{ "http://h./", "\"h.\" is not a host name" },
		{ "http://127.1/", "\"127.1\" is not a host name or IPv4" },
		{ "http://999.1.1.1/", "is not a host name" },
		{ "http://b\xc3\xbcro.test/", "is not a host name" },
		{ "http://a b/", "\"a b\" is not a host name" },
		{ "http://h:0/", "the port must be 1 to 65535" },
		{ "http://h:65536/", "the port must be" },
		{ "http://h:/", "the port must be" },
		{ "http://h:000080/", "the port must be" },
		{ "http://h:8a/", "the port must be" },
		{ "http://h/x#y", "a fragment" },
		{ "http://h#y", "a fragment" },
		{ "http://h/a b", "the path contains" },
		{ "http://h/\x7f", "the path contains" },
		{ "http://h/\xc3\xa9", "non-ASCII" },
		{ "http://h/a\tb", "the path contains" },
	};
	char why[200], target[64], longhost[AG_HOST_LEN + 16];
	struct ag_url u;

	for (size_t i = 0; i < AG_ARRAY_SIZE(bad); i++) {
		why[0] = '\0';
		ASSERT_EQ(url(bad[i].url, &u, why), -EINVAL, bad[i].url);
		ASSERT_STRHAS(why, bad[i].why, bad[i].url);
	}
	snprintf(longhost, sizeof(longhost), "http://%0*d/", AG_HOST_LEN, 0);
	ASSERT_EQ(url(longhost, &u, why), -EINVAL, "over-long host");
	ASSERT_STRHAS(why, "too long", "over-long host");

	if (ASSERT_OK(url("HTTPS://Example.COM:8443/v1?x=1", &u, why), why)) {
		ASSERT_TRUE(u.https, "scheme in any case");
		ASSERT_STREQ(u.host, "example.com", "host lower case");
		ASSERT_EQ(u.port, 8443, "port");
		ASSERT_EQ(u.authority_len, 16, "authority as written");
		ASSERT_TRUE(!memcmp(u.authority, "Example.COM:8443", 16), "authority bytes");
		ASSERT_STREQ(u.path, "/v1?x=1", "path and query");
	}
	if (ASSERT_OK(url("http://[::1]", &u, why), why)) {
		ASSERT_TRUE(u.bracketed, "v6");
		ASSERT_STREQ(u.host, "::1", "without brackets");
		ASSERT_EQ(u.port, 80, "http default");
		ASSERT_STREQ(u.path, "", "no path");
		ASSERT_TRUE(ag_url_target(&u, target, sizeof(target)), "target");
		ASSERT_STREQ(target, "/", "an empty path asks for /");
	}
	/* Copies disagreed: config refused a query right after the host, OAuth sent "/?q". */
	if (ASSERT_OK(url("https://h?q=1", &u, why), why)) {
		ASSERT_EQ(u.port, 443, "https default");
		ASSERT_TRUE(ag_url_target(&u, target, sizeof(target)), "target");
		ASSERT_STREQ(target, "/?q=1", "query without a path");
	}
	ASSERT_OK(url("http://127.0.0.1:3001/mcp", &u, why), "IPv4");
	ASSERT_OK(url("http://under_score.test/", &u, why), "underscore");
	ASSERT_FALSE(ag_url_target(&u, target, 1), "target does not fit");
}

TEST(hostport_loopback)
{
	static const uint8_t lo6[16] = { [15] = 1 }, any6[16], mapped_v6[16] = { [0] = 0xfe };
	uint8_t a[16];

	v4(a, 127, 0, 0, 1);
	ASSERT_TRUE(ag_addr_is_loopback(a), "127.0.0.1");
	ASSERT_TRUE(ag_addr_is_local(a), "127.0.0.1 local");
	v4(a, 127, 255, 3, 9);
	ASSERT_TRUE(ag_addr_is_loopback(a), "all of 127/8");
	v4(a, 0, 0, 0, 0);
	ASSERT_FALSE(ag_addr_is_loopback(a), "0.0.0.0 is not loopback");
	ASSERT_TRUE(ag_addr_is_local(a), "0.0.0.0 reaches a local listener");
	v4(a, 128, 0, 0, 1);
	ASSERT_FALSE(ag_addr_is_local(a), "128.0.0.1");
	v4(a, 10, 127, 0, 1);
	ASSERT_FALSE(ag_addr_is_local(a), "127 in another byte");
	ASSERT_TRUE(ag_addr_is_loopback(lo6), "::1");
	ASSERT_FALSE(ag_addr_is_loopback(any6), ":: is not loopback");
	ASSERT_TRUE(ag_addr_is_local(any6), ":: reaches a local listener");
	ASSERT_FALSE(ag_addr_is_local(mapped_v6), "fe00::");
	/* ::127.0.0.1 (v4-compatible, not v4-mapped) is an IPv6 address, not loopback. */
	memset(a, 0, 16);
	a[12] = 127;
	a[15] = 1;
	ASSERT_FALSE(ag_addr_is_local(a), "::127.0.0.1");

	v4(a, 127, 0, 0, 1);
	ASSERT_TRUE(ag_host_names_addr("127.0.0.1", a), "literal");
	ASSERT_TRUE(ag_host_names_addr("localhost", a), "localhost on loopback");
	ASSERT_FALSE(ag_host_names_addr("127.0.0.2", a), "another literal");
	ASSERT_FALSE(ag_host_names_addr("127.0.0.1/32", a), "a CIDR is not a host");
	ASSERT_TRUE(ag_host_names_addr("::1", lo6), "v6 literal");
	ASSERT_TRUE(ag_host_names_addr("localhost", lo6), "localhost on ::1");
	v4(a, 10, 0, 0, 1);
	ASSERT_FALSE(ag_host_names_addr("localhost", a), "localhost never names another host");
	ASSERT_TRUE(ag_ip_literal("10.0.0.1") && ag_ip_literal("fd00::1"), "IP literals");
	ASSERT_FALSE(ag_ip_literal("[::1]") || ag_ip_literal("a.test"), "not IP literals");
}

/* One address and port, as the socket address bound or dialled (ag_addr_sockaddr). */
TEST(hostport_sockaddr)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	struct sockaddr_in small;
	__u8 a[16];
	int plen;

	memset(&ss, 0xa5, sizeof(ss));
	ASSERT_OK(ag_addr_parse("192.0.2.7", a, &plen), "v4 parsed");
	ASSERT_EQ(ag_addr_sockaddr(a, 8443, (struct sockaddr *)&ss, sizeof(ss)), sizeof(*sin),
		  "v4: a sockaddr_in");
	ASSERT_EQ(sin->sin_family, AF_INET, "v4 family");
	ASSERT_EQ(ntohs(sin->sin_port), 8443, "v4 port");
	ASSERT_EQ(ntohl(sin->sin_addr.s_addr), 0xc0000207, "v4 address");
	ASSERT_OK(ag_addr_parse("2001:db8::1", a, &plen), "v6 parsed");
	ASSERT_EQ(ag_addr_sockaddr(a, 443, (struct sockaddr *)&ss, sizeof(ss)), sizeof(*sin6),
		  "v6: a sockaddr_in6");
	ASSERT_EQ(sin6->sin6_family, AF_INET6, "v6 family");
	ASSERT_EQ(ntohs(sin6->sin6_port), 443, "v6 port");
	ASSERT_OK(memcmp(&sin6->sin6_addr, a, 16), "v6 address");
	ASSERT_EQ(sin6->sin6_flowinfo | sin6->sin6_scope_id, 0, "nothing else set");
	ASSERT_EQ(ag_addr_sockaddr(a, 443, (struct sockaddr *)&small, sizeof(small)), 0,
		  "v6 does not fit a sockaddr_in: refused, not cut");
}
