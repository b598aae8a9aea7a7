/* SPDX-License-Identifier: GPL-2.0 */
/*
 * One grammar for what names a peer: DNS names and "*.suffix" patterns,
 * "host[:port]" and "[v6][:port]" authorities, http(s) URLs, and the
 * loopback test.  The configuration, OAuth, TLS and the MCP path all take
 * them from here, so a name is valid (or refused) the same way everywhere.
 *
 * Pure functions: no DNS, no allocation, nothing read past the lengths given.
 */
#ifndef AG_HOSTPORT_H
#define AG_HOSTPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AG_HOST_LEN 256	    /* a DNS name, "*." included, NUL included */
#define AG_DNS_NAME_MAX 253 /* bytes of a name without "*.", RFC 1035 */

enum ag_name_flags {
	AG_NAME_WILDCARD = 1 << 0, /* a leading "*.": names strictly below the rest */
	AG_NAME_ANY_CASE = 1 << 1, /* upper case letters too (else lower case only) */
	AG_NAME_NOT_IP = 1 << 2,   /* the last label not all digits: never an IPv4 text */
};

/*
 * The n bytes at s as a DNS name: labels of 1-63 of [A-Za-z0-9_-] joined
 * by single dots, at most AG_DNS_NAME_MAX bytes, no trailing dot.
 */
bool ag_dns_name_valid(const char *s, size_t n, unsigned int flags);
/* s lower-cased in place (ASCII only: names are compared byte for byte). */
void ag_ascii_lower(char *s);
/* The n bytes at s lower-cased without one trailing dot; false if they do not fit
 * or hold a NUL. */
bool ag_host_lower(char out[AG_HOST_LEN], const char *s, size_t n);
/* "1".."65535" in at most 5 decimal digits, nothing else. */
bool ag_port_parse(const char *s, size_t n, uint16_t *out);
/* name (lower case) is pattern, or is strictly below "*.suffix". */
bool ag_host_match(const char *pattern, const char *name);

/* An authority split into its host and port, pointing into the input. */
struct ag_authority {
	const char *host; /* without brackets; may be empty: the caller checks it */
	size_t host_len;
	bool bracketed;	  /* "[...]": an IPv6 literal (or CIDR) by the grammar */
	const char *port; /* after ':'; NULL: none given */
	size_t port_len;
};

enum ag_authority_error {
	AG_AUTH_OK,
	AG_AUTH_E_BRACKET,	 /* "[" without "]" */
	AG_AUTH_E_AFTER_BRACKET, /* "]" followed by anything but ":PORT" */
};

/*
 * Splits the len bytes at s: "[v6]", "[v6]:port", "host" or "host:port",
 * where the port is everything after the first ':' (check it with
 * ag_port_parse; a second ':' there is a bare IPv6 literal).  loose: what
 * a connection gives (a Host or SNI): text after "]" is ignored and a bare
 * IPv6 literal is the host, without a port.
 */
enum ag_authority_error ag_authority_split(const char *s, size_t len, bool loose,
					   struct ag_authority *a);

/*
 * The name a connection gives (SNI, or a Host header that may carry a
 * ":port", "[v6]:port" or a trailing dot) lower-cased, without port,
 * brackets or trailing dot; false when there is none worth comparing.
 */
bool ag_host_norm(const char *host, char out[AG_HOST_LEN]);

/* An http:// or https:// URL, see ag_url_parse. */
struct ag_url {
	bool https;
	bool bracketed;		/* the host is an IPv6 literal */
	char host[AG_HOST_LEN]; /* lower case, without brackets */
	uint16_t port;		/* as given, else 443 or 80 */
	const char *authority;	/* into the URL: host[:port] as written, for Host */
	size_t authority_len;
	const char *path; /* into the URL: "" or from the first '/' or '?' on */
};

/*
 * "http[s]://host[:port][/path][?query]", the scheme in any case.  host is
 * a DNS name (not all-digit last label), an IPv4 address or "[IPv6]".
 * Refused: user information, fragments, and spaces, controls and non-ASCII
 * bytes in the path (they are sent as they are).  -EINVAL with why set to
 * "expected ..." text for "\"URL\": why" messages.
 */
int ag_url_parse(const char *url, struct ag_url *u, char *why, size_t why_cap);
/* The request target: the path, "/" in front when it starts with '?' or is empty. */
bool ag_url_target(const struct ag_url *u, char *out, size_t cap);

/* "a.b.c.d" or a bare IPv6 literal (a bracketed one is not). */
bool ag_ip_literal(const char *s);
/* 127.0.0.0/8 or ::1 (v4-mapped addresses as IPv4). */
bool ag_addr_is_loopback(const uint8_t a[16]);
/* Loopback or unspecified (0.0.0.0, ::): a listener on this host answers both. */
bool ag_addr_is_local(const uint8_t a[16]);
/* name (lower case, no brackets) is addr's literal, or "localhost" and addr is loopback. */
bool ag_host_names_addr(const char *name, const uint8_t addr[16]);

#endif
