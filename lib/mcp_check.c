// SPDX-License-Identifier: GPL-2.0
/* Pure checks of an agent's request on the MCP path (mcp_check.h). */
#include <string.h>
#include <strings.h>

#include "hostport.h"
#include "mcp_check.h"

/*
 * A page that rebinds evil.example to the tool's address still sends
 * "Host: evil.example", and a foreign Origin is refused the same way.
 */
bool ag_mcp_authority_ok(const struct ag_mcp_authority *w, const char *s, size_t len)
{
	char name[AG_HOST_LEN];
	struct ag_authority a;
	uint16_t port;

	if (ag_authority_split(s, len, false, &a) || !a.host_len)
		return false;
	if (a.port && (!ag_port_parse(a.port, a.port_len, &port) || port != w->port))
		return false;
	if (!ag_host_lower(name, a.host, a.host_len) || !name[0])
		return false;
	for (int i = 0; i < w->nr_hosts; i++)
		if (ag_host_match(w->hosts[i], name))
			return true;
	return ag_host_names_addr(name, w->addr);
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
