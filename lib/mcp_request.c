// SPDX-License-Identifier: GPL-2.0
/* The agent's request to a governed server, and the one sent upstream (mcp_request.h). */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "audit.h"
#include "mcp_request.h"

static const char *const verb_names[] = {
	[AG_MCP_VERB_NONE] = "",
	[AG_MCP_VERB_POST] = "POST",
	[AG_MCP_VERB_GET] = "GET",
	[AG_MCP_VERB_DELETE] = "DELETE",
};

/* Methods are case-sensitive (RFC 9110 9.1): "post" is not POST. */
enum ag_mcp_verb ag_mcp_verb_of(const struct ag_http_msg *m)
{
	for (int v = AG_MCP_VERB_POST; v <= AG_MCP_VERB_DELETE; v++)
		if (m->method_len == strlen(verb_names[v]) &&
		    !memcmp(m->method, verb_names[v], m->method_len))
			return v;
	return AG_MCP_VERB_NONE;
}

const char *ag_mcp_verb_name(enum ag_mcp_verb v)
{
	return v < AG_MCP_VERB_HTTP ? verb_names[v] : "";
}

const char *ag_http_method_of(const struct ag_http_msg *m)
{
	static const char *const known[] = { "GET", "POST", "PUT", "PATCH", "DELETE", NULL };

	for (const char *const *k = known; *k; k++)
		if (m->method_len == strlen(*k) && !memcmp(m->method, *k, m->method_len))
			return *k;
	return NULL;
}

int ag_target_split(const char *t, size_t len, struct ag_target *out, struct ag_err *err)
{
	const char *q;

	/* Absolute-form names another origin; the gateway chose the upstream. */
	if (!len || t[0] != '/')
		return ag_errf(err, EINVAL, "request target: only \"/path\" is accepted");
	if (memchr(t, '#', len))
		return ag_errf(err, EINVAL, "request target: a fragment is never sent");
	out->path = t;
	q = memchr(t, '?', len);
	out->path_len = q ? (size_t)(q - t) : len;
	out->query = q ? q + 1 : NULL;
	out->query_len = q ? len - out->path_len - 1 : 0;
	return 0;
}

static int hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int ag_pct_decode(const char *s, size_t len, bool plus_space, char *out, size_t cap,
		  size_t *out_len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (c == '%') {
			int hi = i + 2 < len ? hex(s[i + 1]) : -1;
			int lo = hi >= 0 ? hex(s[i + 2]) : -1;

			if (lo < 0 || (hi == 0 && lo == 0))
				return -EINVAL;
			c = (char)(hi << 4 | lo);
			i += 2;
		} else if (c == '+' && plus_space) {
			c = ' ';
		}
		if (n + 1 >= cap)
			return -ENOSPC;
		out[n++] = c;
	}
	out[n] = '\0';
	if (out_len)
		*out_len = n;
	return 0;
}

int ag_query_only_param(const char *q, size_t len, const char *name, char *out, size_t cap,
			struct ag_err *err)
{
	size_t nlen = strlen(name);
	int ret;

	/* Fail closed: a second parameter is a second reading of the query. */
	if (!q || memchr(q, '&', len) || memchr(q, ';', len))
		return ag_errf(err, EINVAL, "query: exactly one parameter, %s, is accepted", name);
	if (len <= nlen || memcmp(q, name, nlen) || q[nlen] != '=')
		return ag_errf(err, EINVAL, "query: expected \"%s=VALUE\"", name);
	ret = ag_pct_decode(q + nlen + 1, len - nlen - 1, true, out, cap, NULL);
	if (ret == -ENOSPC)
		return ag_errf(err, EINVAL, "query: %s longer than %zu bytes", name, cap - 1);
	if (ret || !out[0])
		return ag_errf(err, EINVAL, "query: %s: malformed or empty", name);
	return 0;
}

/* The only field of that name, or NULL; *twice when it came more than once. */
static const struct ag_http_header *only_field(const struct ag_http_msg *m, const char *name,
					       bool *twice)
{
	const struct ag_http_header *h = ag_http_find(m, name, NULL);

	*twice = h && ag_http_find(m, name, h);
	return h;
}

/* "charset=utf-8", quoted or not, any case: the one parameter allowed. */
static bool param_ok(const char *p, size_t n)
{
	static const char cs[] = "charset=";
	const char *v = p + sizeof(cs) - 1;
	size_t vlen = n - (sizeof(cs) - 1);

	if (n < sizeof(cs) - 1 || strncasecmp(p, cs, sizeof(cs) - 1))
		return false;
	if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') {
		v++;
		vlen -= 2;
	}
	return vlen == 5 && !strncasecmp(v, "utf-8", 5);
}

int ag_mcp_body_type_check(const struct ag_http_msg *m, struct ag_err *err)
{
	const struct ag_http_header *h;
	const char *s, *end, *semi;
	bool twice;

	/* Fail closed: a coded body is not the body the gateway parsed. */
	if (ag_http_find(m, "Content-Encoding", NULL))
		return ag_errf(err, EPROTO, "Content-Encoding: the gateway takes no coded body");
	h = only_field(m, "Content-Type", &twice);
	if (!h || twice)
		return ag_errf(err, EPROTO, "Content-Type: expected one \"application/json\"");
	s = h->value;
	end = s + h->value_len;
	semi = memchr(s, ';', h->value_len);
	if ((semi ? semi : end) - s != 16 || strncasecmp(s, "application/json", 16))
		return ag_errf(err, EPROTO, "Content-Type: expected \"application/json\"");
	/*
	 * Fail closed: a server that honours a declared charset (UTF-7, say)
	 * reads another call out of the same bytes.
	 */
	while (semi) {
		const char *p = semi + 1, *next;

		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		next = p < end ? memchr(p, ';', (size_t)(end - p)) : NULL;
		semi = next;
		if (!next)
			next = end;
		while (next > p && (next[-1] == ' ' || next[-1] == '\t'))
			next--;
		if (!param_ok(p, next - p))
			return ag_errf(err, EPROTO,
				       "Content-Type: only \"charset=utf-8\" may follow "
				       "\"application/json\"");
	}
	return 0;
}

/*
 * What of the agent's request the tool server gets: the protocol's own
 * fields and trace context.  Everything else (credentials, cookies,
 * forwarding headers, X-HTTP-Method-Override and every name nobody thought
 * of) stays with the gateway.
 */
const char *const ag_mcp_forward_fields[] = {
	"Accept",   "MCP-Protocol-Version", "Mcp-Session-Id", "Last-Event-ID", "Mcp-Method",
	"Mcp-Name", "User-Agent",	    "traceparent",    "tracestate",    NULL,
};

int ag_mcp_fields_check(const struct ag_http_msg *m, struct ag_err *err)
{
	for (const char *const *f = ag_mcp_forward_fields; *f; f++) {
		bool twice;

		/* Fail closed: the gateway read the first, a server may join both. */
		if (only_field(m, *f, &twice) && twice)
			return ag_errf(err, EINVAL, "%s: given more than once", *f);
	}
	return 0;
}

/* What of the agent's request an HTTP service gets: content negotiation
 * and trace context; the rest (credentials, cookies, method overrides)
 * stays with the gateway. */
static const char *const http_forward_fields[] = {
	"Accept", "User-Agent", "traceparent", "tracestate", NULL,
};

int ag_mcp_forward_head(const struct ag_http_msg *m, const struct ag_mcp_forward *f, char *buf,
			size_t cap, size_t *out_len, struct ag_err *err)
{
	bool http = f->verb == AG_MCP_VERB_HTTP,
	     body = f->verb == AG_MCP_VERB_POST || (http && f->body_len);
	struct ag_http_header add[4] = {
		{ "Host", 4, f->authority, strlen(f->authority) },
		/* Responses are read for filtering and audit: no compression. */
		{ "Accept-Encoding", 15, "identity", 8 },
	};
	struct ag_http_edit e = {
		.keep = http ? http_forward_fields : ag_mcp_forward_fields,
		.method = http ? ag_http_method_of(m) : ag_mcp_verb_name(f->verb),
		.target = f->target,
		.add = add,
		.nadd = 2,
		.framing = body ? AG_HTTP_BODY_LENGTH : AG_HTTP_BODY_NONE,
		.content_length = f->body_len,
		.keep_alive = true,
	};

	/* Fail closed: a method no route takes is never sent. */
	if (!e.method)
		return ag_errf(err, EINVAL, "request: a method HTTP services do not take");
	if (body)
		add[e.nadd++] =
		    (struct ag_http_header){ "Content-Type", 12, "application/json", 16 };
	if (f->cred)
		add[e.nadd++] = *f->cred;
	return ag_http_serialize_head(m, &e, buf, cap, out_len, err);
}

char *ag_mcp_body_dump(json_t *kept, bool batch, size_t *len)
{
	json_t *v = batch ? kept : json_array_get(kept, 0);
	struct ag_audit_text t;

	/*
	 * Compact and UTF-8 (JSON_ENSURE_ASCII would also do): one reading.
	 * The audit log's serialiser, members in their order: json_dumps'
	 * bytes at a fraction of its cost, and, like it, no bound but memory
	 * (the body it came from was bounded).
	 */
	if (!v || ag_json_compact(v, SIZE_MAX / 2, &t)) {
		*len = 0;
		return NULL;
	}
	*len = t.len;
	return t.text;
}
