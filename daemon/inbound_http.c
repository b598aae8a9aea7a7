// SPDX-License-Identifier: GPL-2.0
/*
 * Each request of an outside connection (see inbound.h for the order of
 * the checks): its token, its identity and session, and the scopes its
 * tools/call messages need.  Refusals follow RFC 6750 §3 and RFC 9728
 * §5.1: 401 with WWW-Authenticate naming the resource metadata, 403
 * insufficient_scope naming the scopes that would do.  Messages never
 * quote the token.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/sha.h>

#include "daemon.h"
#include "inbound_int.h"
#include "jwt.h"
#include "metrics.h"
#include "trail.h"

#define CHALLENGE_MAX (2 * AG_INBOUND_URL_LEN + 512)

static struct ag_inbound *inbound_of(const struct mcp_conn *c)
{
	return c->l->d->inbound;
}

/* 401 (or 403 with scope) and the challenge; the connection ends after it. */
static void challenge(struct mcp_conn *c, int status, const char *error, const char *scope,
		      const char *why)
{
	struct ag_inbound *in = inbound_of(c);
	char hdr[CHALLENGE_MAX];
	json_t *e;

	/* Scopes, errors and the URL are checked tokens: nothing to escape. */
	snprintf(hdr, sizeof(hdr),
		 "WWW-Authenticate: Bearer resource_metadata=\"%s\"%s%s%s%s%s%s\r\n",
		 in->metadata_url, error ? ", error=\"" : "", error ?: "", error ? "\"" : "",
		 scope ? ", scope=\"" : "", scope ?: "", scope ? "\"" : "");
	snprintf(c->error, sizeof(c->error), "inbound: %.170s", why);
	e = ag_jsonrpc_error(c->r->call.id, AG_JSONRPC_INVALID_REQUEST, why, NULL);
	mcp_answer_close(c, status, hdr, e);
	json_decref(e);
}

static bool is_metadata(const struct ag_inbound *in, const struct ag_http_msg *m)
{
	size_t n = m->target_len;

	return (n == strlen(METADATA_PATH) && !memcmp(m->target, METADATA_PATH, n)) ||
	       (n == strlen(in->metadata_path) && !memcmp(m->target, in->metadata_path, n));
}

/* RFC 9728 §3: the metadata, to anyone, without a token. */
static void metadata_send(struct mcp_conn *c)
{
	json_t *doc = json_loads(inbound_of(c)->metadata, 0, NULL);

	mcp_answer_close(c, 200, "Cache-Control: max-age=300\r\n", doc);
	json_decref(doc);
}

/* Bytes a name may show as is: a local agent's, and '@' (no quoting needed anywhere). */
static bool plain(const char *s)
{
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("_.-@", *s))
			return false;
	return true;
}

/*
 * The name the connection goes by from now on (metrics, sessions,
 * budgets, logs): "c:" or "u:" and the principal's id, or "c#" and its
 * hash when that does not fit or needs quoting; never a local agent's
 * name, which has neither ':' nor '#'.
 */
static void agent_name(const struct ag_inbound_id *id, char out[AG_NAME_LEN])
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	char *b64 = NULL;
	struct ag_err err;
	char kind = id->principal_type[0] == 'C' ? 'c' : 'u';

	if (strlen(id->principal_id) + 2 < AG_NAME_LEN && plain(id->principal_id)) {
		snprintf(out, AG_NAME_LEN, "%c:%s", kind, id->principal_id);
		return;
	}
	SHA256((const unsigned char *)id->principal_id, strlen(id->principal_id), md);
	if (ag_b64url_encode(md, sizeof(md), &b64, &err))
		snprintf(out, AG_NAME_LEN, "%c#", kind);
	else
		snprintf(out, AG_NAME_LEN, "%c#%.*s", kind, AG_NAME_LEN - 3, b64);
	free(b64);
}

/* The first token names the connection's identity; a later one must be the same. */
static bool identity_bind(struct mcp_conn *c, const struct ag_rs_token *t)
{
	struct ag_inbound_id *id = c->in;
	struct ag_metrics *mx = c->l->d->metrics;

	if (id->bound)
		return !strcmp(id->client_id, t->client_id) && !strcmp(id->sub, t->sub);
	snprintf(id->client_id, sizeof(id->client_id), "%s", t->client_id);
	snprintf(id->sub, sizeof(id->sub), "%s", t->sub);
	/* A client for itself (client_credentials) is the Client; else its User. */
	if (id->client_id[0] && (!id->sub[0] || !strcmp(id->sub, id->client_id))) {
		id->principal_type = "Client";
		id->principal_id = id->client_id;
	} else {
		id->principal_type = "User";
		id->principal_id = id->sub;
	}
	id->bound = true;
	ag_metrics_conn(mx, c->agent, -1);
	agent_name(id, c->agent);
	ag_metrics_conn(mx, c->agent, 1);
	return true;
}

/* A session id belongs to the identity that first used it; false: another's. */
static bool session_bind(struct ag_inbound *in, const char *sid, const struct ag_inbound_id *id)
{
	struct inbound_session *s, *free_or_old = &in->sessions[0];

	for (int i = 0; i < INBOUND_SESSIONS; i++) {
		s = &in->sessions[i];
		if (s->used_ns && !strcmp(s->id, sid)) {
			if (strcmp(s->client_id, id->client_id) || strcmp(s->sub, id->sub))
				return false;
			s->used_ns = ag_now_ns();
			return true;
		}
		if (s->used_ns < free_or_old->used_ns)
			free_or_old = s;
	}
	s = free_or_old;
	snprintf(s->id, sizeof(s->id), "%s", sid);
	snprintf(s->client_id, sizeof(s->client_id), "%s", id->client_id);
	snprintf(s->sub, sizeof(s->sub), "%s", id->sub);
	s->used_ns = ag_now_ns();
	return true;
}

static bool host_ok(const struct ag_inbound *in, const struct ag_http_msg *m)
{
	const struct ag_http_header *h = ag_http_find(m, "Host", NULL);

	return h && h->value_len == strlen(in->authority) &&
	       !strncasecmp(h->value, in->authority, h->value_len);
}

bool ag_inbound_head(struct mcp_conn *c)
{
	struct ag_inbound *in = inbound_of(c);
	const struct ag_http_msg *m = &c->r->req.msg;
	const struct ag_rs_expect x = { in->conf->issuer, in->conf->resource,
					in->conf->clock_skew_s };
	const struct ag_http_header *h;
	struct ag_rs_token t;
	struct ag_err err = { 0 };
	const char *tok;
	size_t len;

	if (m->method_len == 3 && !memcmp(m->method, "GET", 3) && is_metadata(in, m)) {
		metadata_send(c);
		return false;
	}
	/* Fail closed: DNS rebinding, or a request meant for another resource. */
	if (!host_ok(in, m)) {
		mcp_refuse_request(c, 403, AG_JSONRPC_INVALID_REQUEST,
				   "Host is not this resource's");
		return false;
	}
	if (!(h = ag_http_find(m, "Authorization", NULL))) {
		challenge(c, 401, NULL, NULL, "no access token");
		return false;
	}
	if (!(tok = ag_rs_bearer(h->value, h->value_len, &len))) {
		challenge(c, 401, "invalid_token", NULL, "Authorization is not a Bearer token");
		return false;
	}
	switch (ag_rs_jwks_verify(in->jwks, &x, tok, len, (int64_t)time(NULL), &t, &err)) {
	case AG_RS_OK:
		break;
	case AG_RS_UNKNOWN_KID:
		/* The server may have rotated its keys: look again (rate-bounded). */
		ag_rs_jwks_refetch(in->jwks);
		/* fallthrough */
	case AG_RS_INVALID:
		challenge(c, 401, "invalid_token", NULL, err.msg);
		return false;
	}
	if (!identity_bind(c, &t)) {
		challenge(c, 401, "invalid_token", NULL,
			  "this connection belongs to another client or subject");
		return false;
	}
	snprintf(c->in->scope, sizeof(c->in->scope), "%s", t.scope);
	h = ag_http_find(m, "Mcp-Session-Id", NULL);
	/* Fail closed: a session id too long to bind would pass unbound. */
	if (h && h->value_len >= SESSION_ID_MAX) {
		mcp_refuse_request(c, 400, AG_JSONRPC_INVALID_REQUEST, "Mcp-Session-Id too long");
		return false;
	}
	if (h) {
		char sid[SESSION_ID_MAX];

		memcpy(sid, h->value, h->value_len);
		sid[h->value_len] = '\0';
		/* Fail closed: a session is its subject's alone. */
		if (!session_bind(in, sid, c->in)) {
			mcp_refuse_request(c, 403, AG_JSONRPC_INVALID_REQUEST,
					   "this session belongs to another client or subject");
			return false;
		}
	}
	return true;
}

const char *ag_inbound_target(const struct mcp_conn *c)
{
	return inbound_of(c)->conf->resource_path;
}

bool ag_inbound_tool_granted(const struct ag_daemon *d, const struct ag_inbound_id *id,
			     const char *tool)
{
	const struct ag_inbound_conf *ic = &d->conf.inbound;

	for (int i = 0; i < ic->nr_grants; i++)
		if ((!strcmp(ic->grants[i].tool, "*") || !strcmp(ic->grants[i].tool, tool)) &&
		    ag_rs_scope_has(id->scope, ic->grants[i].scope))
			return true;
	return false;
}

/* The scopes that would let tool be called, space-separated, into out. */
static void scopes_for(const struct ag_inbound_conf *ic, const char *tool, char *out, size_t cap)
{
	size_t len = 0;

	out[0] = '\0';
	for (int i = 0; i < ic->nr_grants && len < cap; i++)
		if ((!strcmp(ic->grants[i].tool, "*") || !strcmp(ic->grants[i].tool, tool)) &&
		    !ag_rs_scope_has(out, ic->grants[i].scope))
			len += snprintf(out + len, cap - len, "%s%s", len ? " " : "",
					ic->grants[i].scope);
}

/* The tool of a tools/call message; NULL for any other message. */
static const char *called_tool(json_t *msg)
{
	const char *method = json_string_value(json_object_get(msg, "method"));

	if (!method || strcmp(method, "tools/call"))
		return NULL;
	return json_string_value(json_object_get(json_object_get(msg, "params"), "name")) ?: "";
}

bool ag_inbound_body(struct mcp_conn *c)
{
	const struct ag_inbound_conf *ic = inbound_of(c)->conf;
	json_t *root = json_loadb(c->r->call.body.p, c->r->call.body.len, 0, NULL);
	char need[512], why[512];
	const char *tool = NULL;
	json_t *msg;
	size_t i;

	/* What does not parse is the MCP path's to refuse. */
	if (!root)
		return true;
	if (json_is_object(root))
		tool = called_tool(root);
	if (tool && ag_inbound_tool_granted(c->l->d, c->in, tool))
		tool = NULL;
	json_array_foreach(root, i, msg)
	{
		if (tool)
			break;
		if ((tool = called_tool(msg)) && ag_inbound_tool_granted(c->l->d, c->in, tool))
			tool = NULL;
	}
	if (tool) {
		scopes_for(ic, tool, need, sizeof(need));
		snprintf(why, sizeof(why), "no scope of the token covers tool %.200s", tool);
		challenge(c, 403, "insufficient_scope", need[0] ? need : NULL, why);
	}
	json_decref(root);
	return !tool;
}

void ag_inbound_audit_agent_members(const struct mcp_conn *c, struct ag_audit_agent *a)
{
	ag_audit_agent_members(a, c->agent, &c->o, c->dg);
	if (c->in && c->in->bound) {
		a->m[a->n++] = AG_AM_S("client", c->in->client_id);
		a->m[a->n++] = AG_AM_S("subject", c->in->sub);
	}
}

json_t *ag_inbound_audit_agent(const struct mcp_conn *c)
{
	struct ag_audit_agent a;

	ag_inbound_audit_agent_members(c, &a);
	return ag_audit_members_json(a.m, a.n);
}
