// SPDX-License-Identifier: GPL-2.0
/* Pure checks of an agent's request on the MCP path (mcp_check.h). */
#include <string.h>
#include <strings.h>

#include "mcp_check.h"

bool ag_mcp_host_matches(const char *pat, const char *host, size_t len)
{
	size_t plen = strlen(pat);

	if (pat[0] == '*' && pat[1] == '.') {
		/* "*.example.com": any name strictly below example.com. */
		return len > plen - 1 && !strncasecmp(host + len - (plen - 1), pat + 1, plen - 1);
	}
	return len == plen && !strncasecmp(host, pat, len);
}

/*
 * A page that rebinds evil.example to the tool's address still sends
 * "Host: evil.example", and a foreign Origin is refused the same way.
 */
bool ag_mcp_authority_ok(const struct ag_mcp_authority *w, const char *s, size_t len)
{
	char addr[64];
	const char *host = s, *colon = NULL;
	size_t hlen = len;
	uint8_t a[16];
	int plen;

	if (len && s[0] == '[') {
		const char *close = memchr(s, ']', len);

		if (!close)
			return false;
		host = s + 1;
		hlen = close - host;
		if ((size_t)(close + 1 - s) < len) {
			if (close[1] != ':')
				return false;
			colon = close + 1;
		}
	} else if ((colon = memchr(s, ':', len))) {
		hlen = colon - s;
	}
	if (colon) {
		unsigned long port = 0;
		size_t i = colon + 1 - s;

		if (i == len || len - i > 5)
			return false;
		for (; i < len; i++) {
			if (s[i] < '0' || s[i] > '9')
				return false;
			port = port * 10 + (s[i] - '0');
		}
		if (port != w->port)
			return false;
	}
	if (hlen && host[hlen - 1] == '.')
		hlen--;
	if (!hlen)
		return false;
	for (int i = 0; i < w->nr_hosts; i++)
		if (ag_mcp_host_matches(w->hosts[i], host, hlen))
			return true;
	if (hlen >= sizeof(addr))
		return false;
	memcpy(addr, host, hlen);
	addr[hlen] = '\0';
	if (!ag_addr_parse(addr, a, &plen) && plen == 128 && !memcmp(a, w->addr, 16))
		return true;
	/* "localhost" is the loopback address, never a name anyone else owns. */
	if (hlen == 9 && !strncasecmp(host, "localhost", 9)) {
		static const uint8_t lo6[16] = { [15] = 1 };

		return (ag_addr_is_v4(w->addr) && w->addr[12] == 127) || !memcmp(w->addr, lo6, 16);
	}
	return false;
}

bool ag_mcp_origin_ok(const struct ag_mcp_authority *w, const char *v, size_t len)
{
	const char *end = v + len, *auth, *slash;

	auth = memmem(v, len, "://", 3);
	if (!auth)
		return false;
	auth += 3;
	slash = memchr(auth, '/', end - auth);
	return ag_mcp_authority_ok(w, auth, (slash ? slash : end) - auth);
}

bool ag_mcp_ids_unique(const struct ag_jsonrpc_body *b)
{
	for (size_t i = 0; i < b->count; i++)
		for (size_t j = i + 1; b->msgs[i].id && j < b->count; j++)
			if (b->msgs[j].id && json_equal(b->msgs[i].id, b->msgs[j].id))
				return false;
	return true;
}

bool ag_mcp_content_type_is(const struct ag_http_msg *m, const char *type)
{
	const struct ag_http_header *h = ag_http_find(m, "Content-Type", NULL);
	size_t n = strlen(type);

	return h && h->value_len >= n && !strncasecmp(h->value, type, n) &&
	       (h->value_len == n || h->value[n] == ';' || h->value[n] == ' ');
}
