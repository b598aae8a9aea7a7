// SPDX-License-Identifier: GPL-2.0
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "hostport.h"
#include "util.h"

static char lower_char(char ch)
{
	return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

static bool name_char(char c, unsigned int flags)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
	       ((flags & AG_NAME_ANY_CASE) && c >= 'A' && c <= 'Z');
}

bool ag_dns_name_valid(const char *s, size_t n, unsigned int flags)
{
	size_t label = 0;
	bool numeric = true;

	if ((flags & AG_NAME_WILDCARD) && n >= 2 && s[0] == '*' && s[1] == '.') {
		s += 2;
		n -= 2;
	}
	if (!n || n > AG_DNS_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (!label)
				return false;
			label = 0;
			numeric = true;
			continue;
		}
		if (!name_char(s[i], flags) || ++label > 63)
			return false;
		numeric &= s[i] >= '0' && s[i] <= '9';
	}
	/* An all-digit last label reads as an IPv4 address to inet_aton ("127.1"). */
	return label && !((flags & AG_NAME_NOT_IP) && numeric);
}

void ag_ascii_lower(char *s)
{
	for (; *s; s++)
		*s = lower_char(*s);
}

/*
 * Host names are compared in lower case without a trailing dot, so that
 * "MCP.example.test." in a Host header names the same server as the file's
 * "mcp.example.test".
 */
bool ag_host_lower(char out[AG_HOST_LEN], const char *s, size_t n)
{
	if (n && s[n - 1] == '.')
		n--;
	/* Fail closed: a NUL inside would end the copy early, "a.test\0.evil" as "a.test". */
	if (n >= AG_HOST_LEN || memchr(s, '\0', n))
		return false;
	for (size_t i = 0; i < n; i++)
		out[i] = lower_char(s[i]);
	out[n] = '\0';
	return true;
}

bool ag_port_parse(const char *s, size_t n, uint16_t *out)
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

/* "*.suffix" matches names strictly below suffix, never suffix itself. */
bool ag_host_match(const char *pattern, const char *name)
{
	size_t pn, nn;

	if (strncmp(pattern, "*.", 2))
		return !strcmp(pattern, name);
	pn = strlen(pattern + 1);
	nn = strlen(name);
	return nn > pn && !strcmp(name + nn - pn, pattern + 1);
}

enum ag_authority_error ag_authority_split(const char *s, size_t len, bool loose,
					   struct ag_authority *a)
{
	const char *end = s + len, *colon;

	memset(a, 0, sizeof(*a));
	if (len && s[0] == '[') {
		const char *close = memchr(s, ']', len);

		if (!close)
			return AG_AUTH_E_BRACKET;
		a->bracketed = true;
		a->host = s + 1;
		a->host_len = (size_t)(close - s - 1);
		if (loose || close + 1 == end)
			return AG_AUTH_OK;
		if (close[1] != ':')
			return AG_AUTH_E_AFTER_BRACKET;
		a->port = close + 2;
		a->port_len = (size_t)(end - a->port);
		return AG_AUTH_OK;
	}
	a->host = s;
	a->host_len = len;
	colon = memchr(s, ':', len);
	/* More than one colon: a bare IPv6 literal, not "name:port". */
	if (!colon || (loose && memchr(colon + 1, ':', (size_t)(end - colon - 1))))
		return AG_AUTH_OK;
	a->host_len = (size_t)(colon - s);
	a->port = colon + 1;
	a->port_len = (size_t)(end - a->port);
	return AG_AUTH_OK;
}

bool ag_host_norm(const char *host, char out[AG_HOST_LEN])
{
	struct ag_authority a;

	if (!host || !*host || ag_authority_split(host, strlen(host), true, &a))
		return false;
	return a.host_len && ag_host_lower(out, a.host, a.host_len) && out[0];
}

/* The host of a URL's authority into u: "[IPv6]", an IPv4 address or a DNS name. */
static int url_host(const struct ag_authority *a, struct ag_url *u, char *why, size_t cap)
{
	uint8_t a6[16];

	if (a->bracketed && (!a->host_len || a->host_len >= INET6_ADDRSTRLEN)) {
		snprintf(why, cap, "expected \"[IPv6]\" as the host");
		return -EINVAL;
	}
	if (a->host_len >= AG_HOST_LEN) {
		snprintf(why, cap, "the host name is too long");
		return -EINVAL;
	}
	/* Copied whole: a trailing dot stays, and the name check refuses it. */
	memcpy(u->host, a->host, a->host_len);
	u->host[a->host_len] = '\0';
	ag_ascii_lower(u->host);
	u->bracketed = a->bracketed;
	if (a->bracketed && inet_pton(AF_INET6, u->host, a6) != 1) {
		snprintf(why, cap, "\"%s\" is not an IPv6 address", u->host);
		return -EINVAL;
	}
	if (!a->bracketed && inet_pton(AF_INET, u->host, a6) != 1 &&
	    !ag_dns_name_valid(u->host, a->host_len, AG_NAME_NOT_IP)) {
		snprintf(why, cap, "\"%s\" is not a host name or IPv4 address", u->host);
		return -EINVAL;
	}
	return 0;
}

int ag_url_parse(const char *url, struct ag_url *u, char *why, size_t cap)
{
	struct ag_authority a;
	const char *h;

	memset(u, 0, sizeof(*u));
	if (!strncasecmp(url, "http://", 7)) {
		h = url + 7;
	} else if (!strncasecmp(url, "https://", 8)) {
		h = url + 8;
		u->https = true;
	} else {
		snprintf(why, cap, "expected an http:// or https:// URL");
		return -EINVAL;
	}
	u->authority = h;
	u->authority_len = strcspn(h, "/?#");
	u->path = h + u->authority_len;
	if (memchr(h, '@', u->authority_len)) {
		snprintf(why, cap, "user information is not allowed in the URL");
		return -EINVAL;
	}
	switch (ag_authority_split(h, u->authority_len, false, &a)) {
	case AG_AUTH_E_BRACKET:
		snprintf(why, cap, "expected \"[IPv6]\" as the host");
		return -EINVAL;
	case AG_AUTH_E_AFTER_BRACKET:
		snprintf(why, cap, "expected \":PORT\" after \"]\"");
		return -EINVAL;
	case AG_AUTH_OK:
		break;
	}
	if (url_host(&a, u, why, cap))
		return -EINVAL;
	u->port = u->https ? 443 : 80;
	if (a.port && !ag_port_parse(a.port, a.port_len, &u->port)) {
		snprintf(why, cap, "the port must be 1 to 65535");
		return -EINVAL;
	}
	if (strchr(u->path, '#')) {
		snprintf(why, cap, "a fragment is never sent upstream");
		return -EINVAL;
	}
	for (const char *q = u->path; *q; q++)
		if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f) {
			snprintf(why, cap, "the path contains a space, control or non-ASCII byte");
			return -EINVAL;
		}
	return 0;
}

bool ag_url_target(const struct ag_url *u, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s%s", u->path[0] == '/' ? "" : "/", u->path);

	return n >= 0 && (size_t)n < cap;
}

bool ag_ip_literal(const char *s)
{
	unsigned char a[16];

	return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

bool ag_addr_is_loopback(const uint8_t a[16])
{
	static const uint8_t lo6[16] = { [15] = 1 };

	if (ag_addr_is_v4(a))
		return a[12] == 127;
	return !memcmp(a, lo6, 16);
}

bool ag_addr_is_local(const uint8_t a[16])
{
	static const uint8_t any6[16];

	if (ag_addr_is_v4(a) && !(a[12] | a[13] | a[14] | a[15]))
		return true;
	return ag_addr_is_loopback(a) || !memcmp(a, any6, 16);
}

bool ag_host_names_addr(const char *name, const uint8_t addr[16])
{
	uint8_t a[16];
	int plen;

	/* An address, not a prefix: "127.0.0.1/32" is no name of anything. */
	if (!strchr(name, '/') && !ag_addr_parse(name, a, &plen) && !memcmp(a, addr, 16))
		return true;
	/* "localhost" is the loopback address, never a name anyone else owns. */
	return !strcmp(name, "localhost") && ag_addr_is_loopback(addr);
}
