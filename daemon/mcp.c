// SPDX-License-Identifier: GPL-2.0
/*
 * The MCP path (see mcp.h).  A connection alternates between two states,
 * one request at a time, because MCP clients do not pipeline and a request
 * must be decided before any byte of it reaches the upstream:
 *
 *	MC_REQUEST --request decided, forwarded--> MC_RESPONSE --response ended--> MC_REQUEST
 *	MC_REQUEST --answered by the gateway (denial, bad request)--> MC_REQUEST
 *	MC_REQUEST --allowed, decision record not yet durable--> MC_AUDIT_WAIT --durable--> MC_RESPONSE
 *	MC_REQUEST --escalated--> MC_APPROVAL --approved--> (MC_AUDIT_WAIT) MC_RESPONSE
 *	(MC_AUDIT_WAIT) --no OAuth token yet--> MC_CRED_WAIT --token fetched--> MC_RESPONSE
 *	MC_APPROVAL --denied, timed out--> MC_REQUEST (the agent gets an isError result)
 *	any --error, EOF, "Connection: close" done, stop--> MC_CLOSING
 *	MC_REQUEST --head not whole in time (header_timeout)--> MC_CLOSING
 *	MC_REQUEST, MC_RESPONSE --no byte either way (idle_timeout)--> MC_CLOSING
 *
 * The timeouts (fair.h) run from the sweep, outside any completion; the
 * daemon's own waits (MC_APPROVAL, MC_AUDIT_WAIT, MC_CRED_WAIT) are not the
 * agent's idleness and have timeouts of their own.  A request head is due
 * within header_timeout_ms of its first byte (the first one: of accept).
 *
 * The upstream is connected on the first forwarded request and kept alive
 * with the agent connection; a response that ends the upstream connection
 * ends the agent's too (Connection: close), so no request is ever sent on a
 * connection the upstream has given up.
 *
 * A response is passed on in one of three ways:
 *  - RM_STREAM: bytes as they come (re-chunked when the upstream did not
 *    declare a length), for everything the gateway need not read;
 *  - RM_SSE: event by event.  Only the bytes of an event not yet complete
 *    are held (bounded), so progress notifications, sampling and
 *    elicitation requests reach the agent the moment they are whole, and
 *    the gateway can rewrite a tools/list result or insert an event of its
 *    own between events;
 *  - RM_BUFFER: JSON answers to JSON-RPC requests, read whole (bounded) so
 *    tools/list results can be filtered and results audited.
 *
 * Ordering hazards: a stream event handler may close the connection; every
 * function that continues after one re-checks c->own.closing.  The head of
 * the request being answered lives in the request parser's block: the
 * parser is not fed again until the response has ended.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>

#include "approvals.h"
#include "audit.h"
#include "budget.h"
#include "creds.h"
#include "decide.h"
#include "fair.h"
#include "http.h"
#include "integrity.h"
#include "jsonrpc.h"
#include "mcp.h"
#include "mcp_check.h"
#include "metrics.h"
#include "mcp_request.h"
#include "outrules.h"
#include "secret.h"
#include "sse.h"
#include "stream.h"
#include "subagent.h"
#include "tls.h"
#include "trail.h"
#include "waitq.h"

#define HEAD_MAX (40 * 1024)
#define SSE_EVENT_MAX (4 * 1024 * 1024)
#define SESSION_ID_MAX 128
#define ENDPOINT_MAX 512      /* a legacy session's message endpoint */
#define MAX_PENDING 1024      /* answers a connection or legacy session may be owed */

enum mc_state {
	MC_REQUEST,
	MC_APPROVAL,   /* an escalated call, waiting for agentgatectl approve/deny */
	MC_AUDIT_WAIT, /* decided and allowed, held until its record is durable */
	MC_CRED_WAIT,  /* held until the tool server's first OAuth token arrives */
	MC_RESPONSE,
	MC_CLOSING,
};

enum resp_mode {
	RM_STREAM,
	RM_SSE,
	RM_BUFFER,
};

struct session;

struct mcp_conn {
	struct ag_stream_owner own;
	struct ag_list node;   /* in mcp->conns */
	struct ag_watch watch; /* header and idle timeouts, until MC_CLOSING */
	bool head_started;     /* a byte of the next request head came */
	struct ag_loop *l;
	enum mc_state state;
	struct ag_stream a;
	struct ag_stream *u;	   /* NULL until the first forwarded request */
	struct ag_stream *retired; /* an upstream given up while its I/O drains */
	bool up_ready;		   /* u connected (and TLS up) */
	bool closing_after; /* end the agent connection after this response */
	struct ag_http_parser req, resp;
	bool resp_init;
	const struct ag_server_conf *srv;
	const struct ag_agent_conf *ac;
	struct ag_origin o;
	char agent[AG_NAME_LEN];
	bool agent_tls;
	uint64_t start_ns;
	unsigned int requests;
	/* The request being handled. */
	uint64_t req_ns;
	enum ag_mcp_verb verb;
	char *fwd_target; /* what the gateway sends upstream: the endpoint's */
	bool req_keep_alive, req_v2026;
	char req_host[AG_HOST_LEN];  /* Host, for policies (context.request) */
	char req_version[32];	     /* MCP-Protocol-Version, likewise */
	uint8_t *body;
	size_t body_len, body_cap;
	char *fwd_body; /* the canonical body: the allowed messages, re-serialised */
	size_t fwd_len;
	json_t *extra;	  /* the gateway's own answers to merge in, or NULL */
	bool extra_batch; /* the request was a batch: answer with an array */
	json_t *pending;  /* the answers owed (see remember_request) */
	char session_id[SESSION_ID_MAX];
	/* A legacy POST: its session's id, from the query; the session itself
	 * only while the POST is decided: it goes with its GET stream, which
	 * may close any time. */
	char legacy_sid[SESSION_ID_MAX];
	struct session *legacy;
	char req_tool[256]; /* the tool of a lone tools/call, for minted assertions */
	json_t *req_id;	    /* the id of a lone request, for the gateway's own errors */
	/* The credential for the request being forwarded (creds.h): wiped once
	 * it is in the upstream's send queue. */
	bool cred_ready;
	const char *cred_name;
	char *cred_value;
	size_t cred_len;
	uint64_t cred_gen;
	/* An escalated call: held in MC_APPROVAL until a human decides. */
	char esc_tool[256];
	char esc_reason[256];
	bool escalated; /* the lone request (req_id) waits for a human */
	struct ag_approval *approval;
	uint64_t audit_seq;	/* the last decision record of the request, +1 (0: none) */
	bool audit_lost;	/* a decision record could not be written */
	uint64_t held_ns;    /* when MC_AUDIT_WAIT began (metrics) */
	struct ag_list wait; /* in audit_q (MC_AUDIT_WAIT) or cred_q (MC_CRED_WAIT) of the mcp */
	/* The response. */
	enum resp_mode mode;
	int status;
	bool chunked_down;
	bool head_sent;
	uint8_t *rbody;
	size_t rbody_len, rbody_cap;
	struct ag_sse_parser sse;
	bool sse_init;
	uint8_t *held; /* raw bytes of an SSE event not yet complete */
	size_t held_len, held_cap;
	struct session *stream_of; /* the legacy session whose GET stream this is */
	/* What the connection log line says. */
	const char *result;
	char error[192];
};

/* A legacy (2024-11-05) HTTP+SSE session: the POSTs of a session are
 * answered on its GET stream, so denials and list filtering reach there. */
struct session {
	struct ag_list node;
	char id[SESSION_ID_MAX]; /* decoded, as the server reads it */
	const struct ag_server_conf *srv;
	char agent[AG_NAME_LEN]; /* whose stream: no other agent posts into it */
	/* The message endpoint the server announced (origin-form): what every
	 * POST of the session is sent to, whatever target the agent used. */
	char target[ENDPOINT_MAX];
	size_t path_len;
	struct mcp_conn *stream;
	json_t *pending; /* the answers owed on the stream (see remember_request) */
	json_t *inject;	 /* messages waiting for an event boundary */
};

struct ag_mcp {
	struct ag_loop *l;
	struct ag_waitq audit_q; /* calls waiting for their decision record (MC_AUDIT_WAIT) */
	struct ag_approvals approvals; /* calls held for a human (MC_APPROVAL) */
	struct ag_list conns;
	struct ag_list sessions;
	unsigned int active;
	struct ag_tls_ca *ca;
	SSL_CTX *server_ctx;
	SSL_CTX **client_ctx; /* per tool server with an https upstream */
	struct ag_creds *creds;
	struct ag_waitq cred_q; /* calls waiting for an OAuth token (MC_CRED_WAIT) */
	struct ag_outrules *outrules;
	char head[HEAD_MAX];
};

static void req_next(struct mcp_conn *c);
static void resp_parse(struct mcp_conn *c);
static void approval_cancel(struct mcp_conn *c);
static int inject_pending(struct mcp_conn *c);

static struct ag_mcp *mcp_of(const struct mcp_conn *c)
{
	return c->l->mcp;
}

/* ---- closing ---------------------------------------------------------- */

static void session_drop(struct session *s)
{
	ag_list_del(&s->node);
	json_decref(s->pending);
	json_decref(s->inject);
	free(s);
}

static void cred_wipe(struct mcp_conn *c)
{
	if (c->cred_value)
		OPENSSL_cleanse(c->cred_value, c->cred_len);
	free(c->cred_value);
	c->cred_value = NULL;
	c->cred_len = 0;
	c->cred_ready = false;
}

static void request_reset(struct mcp_conn *c)
{
	free(c->body);
	free(c->fwd_body);
	free(c->fwd_target);
	c->body = NULL;
	c->fwd_body = c->fwd_target = NULL;
	c->body_len = c->body_cap = c->fwd_len = 0;
	json_decref(c->extra);
	json_decref(c->pending);
	c->extra = c->pending = NULL;
	free(c->rbody);
	c->rbody = NULL;
	c->rbody_len = c->rbody_cap = 0;
	free(c->held);
	c->held = NULL;
	c->held_len = c->held_cap = 0;
	if (c->sse_init)
		ag_sse_parser_release(&c->sse);
	c->sse_init = false;
	c->legacy = NULL;
	c->legacy_sid[0] = '\0';
	c->audit_seq = 0;
	c->audit_lost = false;
	c->escalated = false;
	c->esc_tool[0] = c->esc_reason[0] = c->req_tool[0] = '\0';
	json_decref(c->req_id);
	c->req_id = NULL;
	c->head_sent = false;
	c->session_id[0] = '\0';
	cred_wipe(c);
}

static void conn_release(struct ag_stream_owner *own)
{
	struct mcp_conn *c = ag_container_of(own, struct mcp_conn, own);
	struct ag_daemon *d = c->l->d;
	char agent[4 * AG_NAME_LEN], dst[64], err[256] = "";
	double ms = (double)(ag_now_ns() - c->start_ns) / 1e6;

	if (c->error[0]) {
		int n = snprintf(err, sizeof(err), " error=");

		ag_logq(err + n, sizeof(err) - n, c->error);
	}
	ag_addr_fmt(c->o.addr, c->o.port, dst, sizeof(dst));
	ag_log(strcmp(c->result, "ok") && strcmp(c->result, "shutdown") ? AG_LOG_WARN
									 : AG_LOG_INFO,
	       "mcp_conn",
	       "agent=%s cgroup_id=%llu pid=%u server=%s dst=%s tls=%s requests=%u bytes_up=%llu "
	       "bytes_down=%llu duration_ms=%.3f result=%s%s",
	       ag_logq(agent, sizeof(agent), c->agent), (unsigned long long)c->o.agent_cgroup_id,
	       c->o.tgid, c->srv->name, dst, c->agent_tls ? "yes" : "no", c->requests,
	       (unsigned long long)c->a.bytes_in, (unsigned long long)c->a.bytes_out, ms,
	       c->result, err);
	ag_daemon_audit(d, "connect",
			json_pack("{s:o,s:s,s:s,s:s,s:I,s:I,s:I,s:i,s:s?}", "agent",
				  ag_audit_agent_json(c->agent, &c->o), "dst", dst, "server",
				  c->srv->name, "result", c->result, "bytes_up",
				  (json_int_t)c->a.bytes_in, "bytes_down",
				  (json_int_t)c->a.bytes_out, "latency_us", (json_int_t)(ms * 1000),
				  "requests", (int)c->requests, "error",
				  c->error[0] ? c->error : NULL));
	if (c->stream_of)
		session_drop(c->stream_of);
	request_reset(c);
	ag_http_parser_release(&c->req);
	if (c->resp_init)
		ag_http_parser_release(&c->resp);
	ag_fair_release(c->l, c->a.fd);
	ag_stream_fini(&c->a);
	for (int i = 0; i < 2; i++) {
		struct ag_stream *u = i ? c->retired : c->u;

		if (u) {
			ag_stream_fini(u);
			free(u);
		}
	}
	ag_list_del(&c->node);
	mcp_of(c)->active--;
	d->stats.conns_active--;
	ag_metrics_conn(d->metrics, c->agent, -1);
	free(c);
}

static void conn_close(struct mcp_conn *c, const char *result, const char *why)
{
	if (c->state == MC_CLOSING)
		return;
	c->state = MC_CLOSING;
	ag_watch_stop(&c->watch);
	c->result = result;
	if (why && !c->error[0])
		snprintf(c->error, sizeof(c->error), "%s", why);
	if (c->stream_of)
		c->stream_of->stream = NULL;
	ag_list_del(&c->wait);
	approval_cancel(c);
	c->own.closing = true;
	if (!c->own.inflight) {
		conn_release(&c->own);
		return;
	}
	ag_stream_cancel(&c->a);
	if (c->u)
		ag_stream_cancel(c->u);
	if (c->retired)
		ag_stream_cancel(c->retired);
}

/* ---- answering the agent ---------------------------------------------- */

static const char *reason_phrase(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 202:
		return "Accepted";
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 413:
		return "Content Too Large";
	case 415:
		return "Unsupported Media Type";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	}
	return "Error";
}

/* A response of the gateway's own: JSON body (or none), with a length. */
static int send_local(struct mcp_conn *c, int status, const json_t *body, bool keep_alive)
{
	char head[256], *text = NULL;
	size_t len = 0;
	int n, ret;

	if (body && !(text = json_dumps(body, JSON_COMPACT)))
		return -ENOMEM;
	len = text ? strlen(text) : 0;
	n = snprintf(head, sizeof(head),
		     "HTTP/1.1 %d %s\r\n%s%sContent-Length: %zu\r\n%s\r\n", status,
		     reason_phrase(status), status == 405 ? "Allow: GET, POST, DELETE\r\n" : "",
		     text ? "Content-Type: application/json\r\n" : "", len,
		     keep_alive ? "" : "Connection: close\r\n");
	ret = ag_stream_write(&c->a, head, n);
	if (!ret && len)
		ret = ag_stream_write(&c->a, text, len);
	free(text);
	return ret;
}

/* The agent's request cannot be served: answer and end the connection. */
static void refuse(struct mcp_conn *c, int status, int code, const char *msg)
{
	/* A lone request's id, once known: the agent can match the answer. */
	json_t *e = ag_jsonrpc_error(c->req_id, code, msg, NULL);

	/* The request is answered: what is left is the goodbye. */
	ag_list_del(&c->wait);
	approval_cancel(c);
	c->state = MC_REQUEST;
	c->closing_after = true;
	if (send_local(c, status, e, false)) {
		json_decref(e);
		conn_close(c, "error", "could not answer the agent");
		return;
	}
	json_decref(e);
	ag_stream_shutdown(&c->a);
	/* The agent's EOF (or reset) is what ends the connection now. */
	ag_stream_read(&c->a);
}

/*
 * The agent's request itself is refused (not one of its calls): the
 * connection's record says why (result "refused"), so the attempt is in
 * the audit log.
 */
static void refuse_request(struct mcp_conn *c, int status, int code, const char *msg)
{
	snprintf(c->error, sizeof(c->error), "request: %.170s", msg);
	refuse(c, status, code, msg);
}

/* ---- audit ------------------------------------------------------------ */

/* The field that names what was asked for: a tool, a resource, a prompt. */
static const char *target_key(enum ag_mcp_method m)
{
	switch (m) {
	case AG_MCP_RESOURCES_READ:
		return "resource";
	case AG_MCP_PROMPTS_GET:
		return "prompt";
	default:
		return "tool";
	}
}

/* The session policies count calls in: streamable HTTP's header, else the
 * legacy transport's sessionId (of the POST, or of the GET stream). */
static const char *policy_session(const struct mcp_conn *c)
{
	if (c->session_id[0])
		return c->session_id;
	if (c->legacy)
		return c->legacy->id;
	return c->stream_of ? c->stream_of->id : NULL;
}

/* "a,b" (struct ag_decision) -> ["a","b"], as docs/audit.md has it. */
static json_t *policy_ids(const char *list)
{
	json_t *ids = json_array();

	for (const char *p = list; ids && *p;) {
		size_t n = strcspn(p, ",");

		json_array_append_new(ids, json_stringn(p, n));
		p += n + (p[n] == ',');
	}
	return ids;
}

static void audit_decision(struct mcp_conn *c, const struct ag_jsonrpc_msg *m,
			   const struct ag_decision *dec)
{
	/* A copy of the arguments: redaction rewrites the record's in place,
	 * and the parsed ones are what is forwarded. */
	json_t *rec = json_pack("{s:o,s:s,s:s?,s:O?,s:s,s:b,s:s,s:s?,s:o?,s:s?}", "agent",
				ag_audit_agent_json(c->agent, &c->o), "server", c->srv->name,
				"method", m->method, "id", m->id, "decision",
				dec->kind == AG_DECIDE_ALLOW	  ? "allow"
				: dec->kind == AG_DECIDE_ESCALATE ? "ask"
								  : "deny",
				"hidden",
				dec->kind == AG_DECIDE_HIDDEN, "rule", dec->rule, "reason",
				dec->reason[0] ? dec->reason : NULL, "args",
				m->arguments ? json_deep_copy(m->arguments) : NULL, "session",
				c->session_id[0] ? c->session_id : NULL);
	struct ag_err err;
	uint64_t seq;

	if (rec && m->name)
		json_object_set_new(rec, target_key(m->mcp), json_string(m->name));
	if (rec && dec->policies[0])
		json_object_set_new(rec, "policies", policy_ids(dec->policies));
	/* What context.operator was: policy simulate replays it. */
	if (rec && c->ac && c->ac->operator_name[0])
		json_object_set_new(rec, "operator", json_string(c->ac->operator_name));
	/* Arguments may carry secrets: by default the log proves what was sent
	 * (each value's SHA-256) without holding it (audit_args). */
	if (rec && ag_audit_redact(rec, "args", c->srv->audit_args, &err)) {
		json_decref(rec);
		rec = NULL; /* counted as a lost record, never written in the clear */
	}
	/* The call waits for this record (MC_AUDIT_WAIT); one that cannot be
	 * written refuses the request: nothing governed goes unrecorded. */
	if (ag_daemon_audit_seq(c->l->d, "decision", rec, &seq))
		c->audit_lost = true;
	else
		c->audit_seq = seq + 1;
}

/* Where output rules acted, for the result record: rules and places, never values. */
static json_t *redactions_json(const struct ag_redact_report *rep)
{
	json_t *hits = json_array();

	for (unsigned int i = 0; hits && i < rep->n_hits; i++) {
		const struct ag_redact_hit *h = &rep->hits[i];

		json_array_append_new(hits, json_pack("{s:s,s:s,s:I,s:I}", "rule", h->rule, "path",
						      h->path, "offset", (json_int_t)h->offset,
						      "len", (json_int_t)h->len));
	}
	return json_pack("{s:o,s:I,s:s?}", "hits", hits, "total", (json_int_t)rep->total,
			 "refused_by", rep->refused_by);
}

/*
 * Applies the output rules to a tools/call result (tool NULL: one the
 * gateway cannot attribute, which gets every rule of the server).  1 if
 * msg was rewritten.  A result the rules cannot be applied to (nested too
 * deep, out of memory) does not reach the agent.
 */
static int redact_result(struct mcp_conn *c, json_t *msg, const char *tool,
			 struct ag_redact_report *rep)
{
	const struct ag_redactor *r = tool ? ag_outrules_for(mcp_of(c)->outrules, c->srv, tool)
					   : ag_outrules_all(mcp_of(c)->outrules, c->srv);
	json_t *result = json_object_get(msg, "result"), *out;
	struct ag_err err = { 0 };

	if (!r || !json_is_object(result))
		return 0;
	if (!(out = ag_redact_result(r, result, rep, &err))) {
		ag_log(AG_LOG_WARN, "mcp", "agent=%s server=%s tool=\"%.64s\" result=withheld "
		       "error=\"%s\"", c->agent, c->srv->name, tool ? tool : "", err.msg);
		out = json_pack("{s:[{s:s,s:s}],s:b}", "content", "type", "text", "text",
				"The tool's result could not be checked by the gateway's output "
				"rules and was withheld", "isError", 1);
		rep->refused_by = "gateway";
		if (!out)
			return -ENOMEM;
	} else if (!rep->total && !rep->refused_by) {
		json_decref(out);
		return 0;
	}
	return json_object_set_new(msg, "result", out) ? -ENOMEM : 1;
}

/*
 * A tools/call result seen in a response: output rules, then the record of
 * its outcome (never its content).  tool NULL: a result the gateway cannot
 * pair with a call it forwarded (a replay, a resumed stream, an id answered
 * twice), governed by every rule and recorded as such.  1 if msg was
 * rewritten.
 */
static int govern_result(struct mcp_conn *c, json_t *msg, const char *tool)
{
	json_t *result, *latency;
	struct ag_redact_report rep = { 0 };
	int changed;

	changed = redact_result(c, msg, tool, &rep);
	result = json_object_get(msg, "result");
	/* A legacy session's results come on its stream, opened long before. */
	latency = c->stream_of || !tool
			  ? NULL
			  : json_integer((json_int_t)((ag_now_ns() - c->req_ns) / 1000));
	ag_daemon_audit(c->l->d, "result",
			json_pack("{s:o,s:s,s:s?,s:O?,s:i,s:b,s:O?,s:o*,s:s?,s:o*,s:o*}", "agent",
				  ag_audit_agent_json(c->agent, &c->o), "server", c->srv->name,
				  "tool", tool, "id", json_object_get(msg, "id"),
				  "upstream_status", c->status, "is_error",
				  json_is_true(json_object_get(result, "isError")), "error",
				  json_object_get(msg, "error"), "latency_us", latency, "session",
				  policy_session(c), "redactions",
				  rep.total || rep.refused_by ? redactions_json(&rep) : NULL,
				  "unattributed", tool ? NULL : json_true()));
	return changed;
}

/* ---- the request ------------------------------------------------------ */

static void copy_header(const struct ag_http_msg *m, const char *name, char *out, size_t cap)
{
	const struct ag_http_header *h = ag_http_find(m, name, NULL);

	out[0] = '\0';
	if (h && h->value_len < cap) {
		memcpy(out, h->value, h->value_len);
		out[h->value_len] = '\0';
	}
}

/*
 * The legacy session a POST names, by the id its query carries (decoded as
 * the server decodes it), when the session's stream is still open and is
 * the same agent's.
 */
static struct session *legacy_find(struct mcp_conn *c, const char *sid)
{
	struct ag_list *pos;

	for (pos = mcp_of(c)->sessions.next; pos != &mcp_of(c)->sessions; pos = pos->next) {
		struct session *s = ag_container_of(pos, struct session, node);

		if (s->srv == c->srv && s->stream && !strcmp(s->id, sid) &&
		    !strcmp(s->agent, c->agent))
			return s;
	}
	return NULL;
}

/* Appends v to the array *list, made on first use. */
static int list_append(json_t **list, json_t *v)
{
	if (!*list && !(*list = json_array()))
		return -ENOMEM;
	return json_array_append(*list, v) ? -ENOMEM : 0;
}

/* A request id as a key of a pending set: its JSON type kept, so that 5
 * and "5" (or "#5") are two requests, as they are to the server. */
static char *id_key(json_t *id)
{
	char *key = NULL;

	if (json_is_integer(id) &&
	    asprintf(&key, "i:%lld", (long long)json_integer_value(id)) < 0)
		return NULL;
	if (json_is_string(id) && asprintf(&key, "s:%s", json_string_value(id)) < 0)
		return NULL;
	return key;
}

/*
 * A forwarded request whose answer the gateway must see: a tools/call's
 * result goes through the output rules and the audit log, a tools/list's
 * through the filter.  Each is owed once, by its typed id; a legacy
 * session's answers come on its GET stream, so they are owed there.  What
 * a connection or session is owed is bounded, or an agent could grow the
 * gateway's memory without end; an id already owed is refused (-EEXIST):
 * two answers with one id cannot be told apart.
 */
static int remember_request(struct mcp_conn *c, const struct ag_jsonrpc_msg *m)
{
	json_t **pending = c->legacy ? &c->legacy->pending : &c->pending;
	json_t *what;
	char *key;
	int ret = -EEXIST;

	if (m->kind != AG_JSONRPC_REQUEST || !m->id)
		return 0;
	if (!*pending && !(*pending = json_object()))
		return -ENOMEM;
	if (json_object_size(*pending) >= MAX_PENDING)
		return -ENOSPC;
	if (!(key = id_key(m->id)))
		return -ENOMEM;
	if (!json_object_get(*pending, key)) {
		what = m->mcp == AG_MCP_TOOLS_CALL && m->name ? json_string(m->name)
							      : json_integer(m->mcp);
		ret = json_object_set_new(*pending, key, what) ? -ENOMEM : 0;
	}
	free(key);
	return ret;
}

/* What the answer with this id was owed for (a reference), taken off the
 * set; NULL when nothing was. */
static json_t *take_pending(struct mcp_conn *c, json_t *id)
{
	json_t *pending = c->stream_of ? c->stream_of->pending : c->pending, *what;
	char *key = id_key(id);

	what = key ? json_incref(json_object_get(pending, key)) : NULL;
	if (what)
		json_object_del(pending, key);
	free(key);
	return what;
}

/* Whether an answer the gateway must read is owed on this connection. */
static bool owes_answer(const struct mcp_conn *c)
{
	return json_object_size(c->stream_of ? c->stream_of->pending : c->pending) > 0;
}

/* The gateway's answer to one refused message (NULL for notifications). */
static json_t *denial(const struct mcp_conn *c, const struct ag_jsonrpc_msg *m,
		      const struct ag_decision *dec)
{
	json_t *meta;

	if (m->kind == AG_JSONRPC_INVALID)
		return ag_jsonrpc_error(m->id, m->error_code, m->error_msg, NULL);
	if (!m->id)
		return NULL;
	if (dec->kind == AG_DECIDE_DENY) {
		json_t *r;

		meta = json_pack("{s:s,s:s}", "decision", ag_decision_name(dec->kind), "rule",
				 dec->rule);
		r = ag_mcp_tool_denied(m->id, dec->reason, meta, c->req_v2026);
		json_decref(meta);
		return r;
	}
	/* Never -32000/-32001: clients read those as a lost connection. */
	switch (m->mcp) {
	case AG_MCP_RESOURCES_READ:
		return ag_jsonrpc_error(m->id, -32002, "Resource not found", NULL);
	case AG_MCP_PROMPTS_GET: {
		char msg[320];

		snprintf(msg, sizeof(msg), "Unknown prompt: %s", m->name ? m->name : "");
		return ag_jsonrpc_error(m->id, AG_JSONRPC_INVALID_PARAMS, msg, NULL);
	}
	default: {
		char msg[320];

		snprintf(msg, sizeof(msg), "Unknown tool: %s", m->name ? m->name : "");
		return ag_jsonrpc_error(m->id, AG_JSONRPC_INVALID_PARAMS, msg, NULL);
	}
	}
}

/*
 * Decides every message of the body.  Returns the number forwarded; the
 * refused ones have their answers in c->extra.  -ENOMEM on failure.
 */
static int decide_body(struct mcp_conn *c, struct ag_jsonrpc_body *b, json_t **keep)
{
	struct ag_decide_ctx x = { c->l->d, c->ac, c->agent, c->srv, policy_session(c),
				   c->req_host, c->req_version, &c->o };
	int forwarded = 0, ret;

	for (size_t i = 0; i < b->count; i++) {
		struct ag_jsonrpc_msg *m = &b->msgs[i];
		struct ag_decision dec = { .kind = AG_DECIDE_ALLOW, .rule = "gateway" };
		json_t *answer;

		if (m->kind == AG_JSONRPC_INVALID) {
			dec.kind = AG_DECIDE_HIDDEN;
		} else if (m->kind == AG_JSONRPC_REQUEST || m->kind == AG_JSONRPC_NOTIFICATION) {
			ag_decide(&x, m, &dec);
			if (m->mcp == AG_MCP_TOOLS_CALL && dec.kind != AG_DECIDE_HIDDEN && m->name &&
			    !ag_integrity_callable(c->l->d, c->srv, m->name)) {
				dec.kind = AG_DECIDE_HIDDEN;
				dec.rule = "tool_integrity";
				snprintf(dec.reason, sizeof(dec.reason),
					 "the tool's definition is not approved "
					 "(agentgatectl tools approve)");
				dec.policies[0] = 0;
			}
			if (m->mcp == AG_MCP_TOOLS_CALL &&
			    (dec.kind == AG_DECIDE_ALLOW || dec.kind == AG_DECIDE_ESCALATE))
				ag_budget_check(c->l->d, c->ac, c->agent, &c->o, c->srv, m, &dec);
			/*
			 * Only a lone request can wait for a human: an element of a
			 * batch would hold its neighbours' answers, and a legacy
			 * POST is answered on another connection.
			 */
			if (dec.kind == AG_DECIDE_ESCALATE &&
			    (b->count != 1 || !m->id || !m->name || c->legacy))
				dec.kind = AG_DECIDE_DENY;
			if (m->mcp == AG_MCP_TOOLS_CALL || m->mcp == AG_MCP_RESOURCES_READ ||
			    m->mcp == AG_MCP_PROMPTS_GET)
				audit_decision(c, m, &dec);
		}
		if (dec.kind == AG_DECIDE_ESCALATE) {
			snprintf(c->esc_tool, sizeof(c->esc_tool), "%s", m->name);
			snprintf(c->esc_reason, sizeof(c->esc_reason), "%s", dec.reason);
			c->escalated = true; /* its id is req_id: only a lone request escalates */
			dec.kind = AG_DECIDE_ALLOW; /* forwarded once approved */
		}
		if (dec.kind == AG_DECIDE_ALLOW) {
			if (json_array_append(*keep, m->json))
				return -ENOMEM;
			forwarded++;
			if ((ret = remember_request(c, m)))
				return ret;
			if (m->mcp == AG_MCP_TOOLS_CALL && b->count == 1 && m->name)
				snprintf(c->req_tool, sizeof(c->req_tool), "%s", m->name);
			if (b->count == 1 && m->id && !c->req_id)
				c->req_id = json_incref(m->id);
			continue;
		}
		ag_fair_refused(c->l, &c->o,
				dec.kind == AG_DECIDE_HIDDEN ? "mcp_hidden" : "mcp_denied");
		if (!(answer = denial(c, m, &dec)))
			continue;
		if (list_append(&c->extra, answer)) {
			json_decref(answer);
			return -ENOMEM;
		}
		json_decref(answer);
	}
	return forwarded;
}

/* Answers the refused part of a request, in place of the upstream. */
static int answer_locally(struct mcp_conn *c)
{
	json_t *body = NULL;
	int ret;

	if (c->legacy) {
		/* Legacy: answers travel on the session's GET stream; the POST
		 * itself is only acknowledged, as the upstream would. */
		size_t i;
		json_t *v;

		json_array_foreach(c->extra, i, v)
			if (list_append(&c->legacy->inject, v))
				return -ENOMEM;
		ret = send_local(c, 202, NULL, c->req_keep_alive);
		if (inject_pending(c->legacy->stream))
			conn_close(c->legacy->stream, "error", "could not write to the agent");
		return ret;
	}
	if (!c->extra)
		return send_local(c, 202, NULL, c->req_keep_alive);
	body = c->extra_batch ? json_incref(c->extra) : json_incref(json_array_get(c->extra, 0));
	ret = send_local(c, 200, body, c->req_keep_alive);
	json_decref(body);
	return ret;
}

/* upstream_host keeps IPv6 brackets, so it goes into Host as it is. */
static int upstream_authority(const struct ag_server_conf *s, char *out, size_t cap)
{
	if (s->upstream_port == (s->upstream_tls ? 443 : 80))
		return snprintf(out, cap, "%s", s->upstream_host);
	return snprintf(out, cap, "%s:%u", s->upstream_host, s->upstream_port);
}

static void upstream_event(struct ag_stream *s, enum ag_stream_ev ev);

/*
 * A head and a body written back to back go out as two sends when the
 * first is still in flight; with Nagle the second waits for an ACK the
 * peer delays (40 ms).  Messages here are whole when written: no delay.
 */
static void no_delay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int upstream_start(struct mcp_conn *c)
{
	const struct ag_server_conf *srv = c->srv;
	struct ag_mcp *mcp = mcp_of(c);
	uint32_t mark = c->l->d->conf.mark;
	union {
		struct sockaddr sa;
		struct sockaddr_in sin;
		struct sockaddr_in6 sin6;
	} dst;
	socklen_t len;
	int fd, ret;

	memset(&dst, 0, sizeof(dst));
	if (ag_addr_is_v4(srv->upstream_addr)) {
		dst.sin.sin_family = AF_INET;
		dst.sin.sin_port = htons(srv->upstream_port);
		memcpy(&dst.sin.sin_addr, srv->upstream_addr + 12, 4);
		len = sizeof(dst.sin);
	} else {
		dst.sin6.sin6_family = AF_INET6;
		dst.sin6.sin6_port = htons(srv->upstream_port);
		memcpy(&dst.sin6.sin6_addr, srv->upstream_addr, 16);
		len = sizeof(dst.sin6);
	}
	fd = socket(dst.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark))) {
		ret = -errno;
		close(fd);
		return ret;
	}
	no_delay(fd);
	if (!(c->u = malloc(sizeof(*c->u)))) {
		close(fd);
		return -ENOMEM;
	}
	if ((ret = ag_stream_init(c->u, c->l, &c->own, fd, "upstream"))) {
		free(c->u->in);
		free(c->u);
		c->u = NULL;
		close(fd);
		return ret;
	}
	c->u->event = upstream_event;
	c->u->ctx = c;
	c->u->wipe = srv->cred != AG_CRED_NONE;
	if (srv->upstream_tls) {
		struct ag_err err;
		struct ag_tls *t =
		    ag_tls_new_client(mcp->client_ctx[srv - c->l->d->conf.servers],
				      srv->server_name, &err);

		if (!t) {
			snprintf(c->error, sizeof(c->error), "upstream TLS: %.160s", err.msg);
			return -EPROTO;
		}
		ag_stream_tls(c->u, t);
	}
	ag_stream_connect(c->u, &dst.sa, len, c->l->d->conf.connect_timeout_ms);
	return 0;
}

/* Sends the decided request: the gateway's head, then the canonical body. */
static int forward_request(struct mcp_conn *c)
{
	struct ag_mcp *mcp = mcp_of(c);
	char host[AG_HOST_LEN + 16];
	struct ag_http_header cred;
	struct ag_mcp_forward f = {
		.verb = c->verb,
		.target = c->fwd_target,
		.authority = host,
		.body_len = c->fwd_len,
	};
	struct ag_err err;
	size_t hlen = 0;
	int ret;

	upstream_authority(c->srv, host, sizeof(host));
	if (c->cred_value) {
		cred = (struct ag_http_header){ c->cred_name, strlen(c->cred_name), c->cred_value,
						c->cred_len };
		f.cred = &cred;
	}
	ret = ag_mcp_forward_head(&c->req.msg, &f, mcp->head, sizeof(mcp->head), &hlen, &err);
	cred_wipe(c);
	if (!ret)
		ret = ag_stream_write(c->u, mcp->head, hlen);
	/* The head held the secret: it is in the stream's queue now, not here. */
	OPENSSL_cleanse(mcp->head, hlen < sizeof(mcp->head) ? hlen : sizeof(mcp->head));
	if (ret || !c->fwd_len)
		return ret;
	return ag_stream_write(c->u, c->fwd_body, c->fwd_len);
}

/*
 * The credential for this request, before anything is sent: 0 when ready
 * (or none is needed), 1 when the call waits for the first OAuth token,
 * -1 when the agent was answered with why there is none.
 */
static int cred_fetch(struct mcp_conn *c)
{
	struct ag_mcp *mcp = mcp_of(c);
	const char *chain[AG_DELEGATION_MAX];
	struct ag_delegation del;
	struct ag_cred_call call = {
		.operator = c->ac && c->ac->operator_name[0] ? c->ac->operator_name : c->agent,
		.chain = chain,
		.session = policy_session(c),
		.tool = c->req_tool[0] ? c->req_tool : NULL,
	};
	struct ag_err err = { 0 };
	char msg[320];
	int ret;

	if (c->cred_ready)
		return 0;
	/* The act claim names the calling agent and who delegated to it. */
	if (c->srv->cred == AG_CRED_ASSERTION && !ag_daemon_delegation(c->l->d, &c->o, &del)) {
		for (size_t i = 0; i < del.n; i++)
			chain[i] = del.name[i];
		call.chain_len = del.n;
	} else {
		chain[0] = c->agent;
		call.chain_len = 1;
	}
	ret = ag_creds_header(mcp->creds, c->srv, &call, &c->cred_name, &c->cred_value,
			      &c->cred_len, &c->cred_gen, &err);
	if (!ret) {
		c->cred_ready = true;
		return 0;
	}
	if (ret == -EAGAIN) {
		c->state = MC_CRED_WAIT;
		ag_list_add_tail(&mcp->cred_q.waiters, &c->wait);
		ag_waitq_arm(&mcp->cred_q);
		return 1;
	}
	snprintf(c->error, sizeof(c->error), "credential: %.170s", err.msg);
	snprintf(msg, sizeof(msg), "the gateway has no credential for tool server %s: %.200s",
		 c->srv->name, err.msg);
	refuse(c, 503, AG_JSONRPC_INTERNAL_ERROR, msg);
	return -1;
}

static void request_forward(struct mcp_conn *c)
{
	int ret;

	if (cred_fetch(c))
		return;
	c->state = MC_RESPONSE;
	/* An agent that closes an open SSE stream must be noticed. */
	ag_stream_read(&c->a);
	if (!c->resp_init) {
		struct ag_err err;

		if (ag_http_parser_init(&c->resp, false, NULL, &err)) {
			conn_close(c, "error", err.msg);
			return;
		}
		c->resp_init = true;
	}
	if (!c->u && (ret = upstream_start(c))) {
		c->l->d->stats.upstream_failed++;
		refuse(c, 502, AG_JSONRPC_INTERNAL_ERROR, "the tool server cannot be reached");
		return;
	}
	if (!c->up_ready)
		return; /* upstream_event(CONNECTED) sends it */
	if ((ret = forward_request(c)))
		conn_close(c, "error", "could not forward the request");
	else
		ag_stream_read(c->u);
}

/* A wait queue cannot be polled: its held call is refused, not left hanging. */
static void wait_refuse(struct ag_list *w, const char *refusal)
{
	refuse(ag_container_of(w, struct mcp_conn, wait), 503, AG_JSONRPC_INTERNAL_ERROR,
	       refusal);
}

/* Holds an allowed call until its decision records are durable; true if held. */
static bool audit_hold(struct mcp_conn *c)
{
	struct ag_daemon *d = c->l->d;
	struct ag_waitq *q = &mcp_of(c)->audit_q;

	if (d->audit_durability != AG_AUDIT_SYNC || !c->audit_seq ||
	    ag_audit_durable(d->audit) >= c->audit_seq)
		return false;
	c->state = MC_AUDIT_WAIT;
	c->held_ns = ag_now_ns();
	ag_list_add_tail(&q->waiters, &c->wait);
	ag_waitq_arm(q);
	return true;
}

/* The writer made progress, failed or recovered: release or refuse the held. */
static void audit_woken(struct ag_waitq *q)
{
	struct ag_daemon *d = q->l->d;
	struct ag_list *pos, *next;
	uint64_t durable = ag_audit_durable(d->audit);
	bool failed = ag_audit_failed(d->audit, NULL);

	for (pos = q->waiters.next; pos != &q->waiters; pos = next) {
		struct mcp_conn *c = ag_container_of(pos, struct mcp_conn, wait);

		next = pos->next;
		if (durable >= c->audit_seq) {
			ag_list_del(&c->wait);
			ag_metrics_audit_wait(d->metrics, ag_now_ns() - c->held_ns);
			request_forward(c);
		} else if (failed) {
			/* Fail closed: an unrecorded call is never made. */
			ag_list_del(&c->wait);
			refuse(c, 503, AG_JSONRPC_INTERNAL_ERROR,
			       "the gateway cannot record this call in its audit log: refused");
		}
	}
}

/* A token request finished: every held call asks again (and gets the
 * token, or the reason there is none). */
static void cred_woken(struct ag_waitq *q)
{
	struct ag_list held;

	/* request_forward may hold a call again: take the list out first. */
	ag_list_init(&held);
	while (!ag_list_empty(&q->waiters)) {
		struct ag_list *pos = q->waiters.next;

		ag_list_del(pos);
		ag_list_add_tail(&held, pos);
	}
	while (!ag_list_empty(&held)) {
		struct mcp_conn *c = ag_container_of(held.next, struct mcp_conn, wait);

		ag_list_del(&c->wait);
		request_forward(c);
	}
}

/* The connection no longer waits for a human: its approval goes. */
static void approval_cancel(struct mcp_conn *c)
{
	if (c->approval)
		ag_approval_drop(c->approval);
	c->approval = NULL;
}

static void audit_approval(struct mcp_conn *c, uint64_t id, bool allow, const char *by,
			   const char *why)
{
	ag_daemon_audit(c->l->d, "approval",
			json_pack("{s:o,s:s,s:s,s:O?,s:I,s:s,s:s,s:s?,s:s?}", "agent",
				  ag_audit_agent_json(c->agent, &c->o), "server", c->srv->name,
				  "tool", c->esc_tool, "id", c->req_id, "approval", (json_int_t)id,
				  "decision", allow ? "allow" : "deny", "by", by, "reason", why,
				  "session", c->session_id[0] ? c->session_id : NULL));
}

/* A human (or the clock) decided the held call of c (an ag_approval_ops). */
static void approval_decided(void *owner, uint64_t id, bool allow, const char *by,
			     const char *why)
{
	struct mcp_conn *c = owner;
	struct ag_decide_ctx x = { c->l->d, c->ac, c->agent, c->srv, policy_session(c),
				   c->req_host, c->req_version, &c->o };
	char reason[320];
	json_t *answer, *meta;

	c->approval = NULL;
	if (allow && ag_decide_approved(&x, c->esc_tool)) {
		allow = false;
		why = "the approval could not be recorded in the session";
	}
	audit_approval(c, id, allow, by, why);
	if (allow) {
		c->state = MC_REQUEST;
		if (!audit_hold(c))
			request_forward(c);
		return;
	}
	c->state = MC_REQUEST;
	snprintf(reason, sizeof(reason), "%s (%s)", c->esc_reason, why);
	meta = json_pack("{s:s,s:s}", "decision", "deny", "rule", "approval");
	answer = ag_mcp_tool_denied(c->req_id, reason, meta, c->req_v2026);
	json_decref(meta);
	json_decref(c->extra);
	c->extra = answer ? json_pack("[o]", answer) : NULL;
	c->extra_batch = false;
	if (!c->extra || answer_locally(c)) {
		conn_close(c, "error", "could not answer the agent");
		return;
	}
	req_next(c);
}

/* What agentgatectl approvals shows of c's held call (an ag_approval_ops). */
static json_t *approval_describe(void *owner, uint64_t id, uint64_t waited_ms,
				 uint32_t timeout_ms)
{
	struct mcp_conn *c = owner;

	return json_pack("{s:I,s:s,s:s,s:s,s:s,s:O?,s:s?,s:I,s:I}", "id", (json_int_t)id,
			 "agent", c->agent, "server", c->srv->name, "tool", c->esc_tool, "reason",
			 c->esc_reason, "request_id", c->req_id, "session",
			 c->session_id[0] ? c->session_id : NULL, "waited_ms",
			 (json_int_t)waited_ms, "timeout_ms", (json_int_t)timeout_ms);
}

static const struct ag_approval_ops approval_ops = {
	.decided = approval_decided,
	.describe = approval_describe,
};

static void approval_hold(struct mcp_conn *c)
{
	struct ag_approval *a = ag_approval_hold(&mcp_of(c)->approvals, &approval_ops, c);

	if (!a) {
		refuse(c, 503, AG_JSONRPC_INTERNAL_ERROR, "the gateway cannot hold this call");
		return;
	}
	c->approval = a;
	c->state = MC_APPROVAL;
	ag_log(AG_LOG_INFO, "approval_wait", "id=%llu agent=%s server=%s tool=%s",
	       (unsigned long long)ag_approval_id(a), c->agent, c->srv->name, c->esc_tool);
}

struct ag_approvals *ag_mcp_approvals(struct ag_loop *l)
{
	return &l->mcp->approvals;
}

/* A POST body: decide each message, then forward, answer, or both. */
static void request_decide(struct mcp_conn *c)
{
	const struct ag_http_msg *m = &c->req.msg;
	const struct ag_http_header *mh = ag_http_find(m, "Mcp-Method", NULL);
	const struct ag_http_header *nh = ag_http_find(m, "Mcp-Name", NULL);
	struct ag_jsonrpc_body b;
	struct ag_err err;
	json_t *keep = NULL;
	int fwd = -ENOMEM;

	if (ag_jsonrpc_parse(c->body, c->body_len, NULL, &b, &err)) {
		refuse(c, 400, AG_JSONRPC_PARSE_ERROR, "Parse error: the body is not one JSON value");
		return;
	}
	/* Fail closed: two answers with one id could not be told apart. */
	if (!ag_mcp_ids_unique(&b)) {
		ag_jsonrpc_body_free(&b);
		refuse_request(c, 400, AG_JSONRPC_INVALID_REQUEST,
			       "two messages of the body share a request id");
		return;
	}
	/* Policy is decided on the body; the routing headers must say the same. */
	if (ag_mcp_check_headers(&b, mh ? mh->value : NULL, mh ? mh->value_len : 0,
				 nh ? nh->value : NULL, nh ? nh->value_len : 0, c->req_v2026,
				 &err)) {
		ag_jsonrpc_body_free(&b);
		refuse(c, 400, AG_MCP_HEADER_MISMATCH, err.msg);
		return;
	}
	c->extra_batch = b.batch;
	if (!(keep = json_array()) || (fwd = decide_body(c, &b, &keep)) < 0) {
		json_decref(keep);
		ag_jsonrpc_body_free(&b);
		if (fwd == -EEXIST)
			refuse_request(c, 400, AG_JSONRPC_INVALID_REQUEST,
				       "a request with this id still awaits its answer");
		else
			conn_close(c, "error",
				   fwd == -ENOSPC ? "too many answers owed to the session"
						  : "out of memory");
		return;
	}
	if (fwd) {
		/* What was decided is what is sent: the allowed messages as the
		 * gateway parsed them, never the agent's bytes. */
		c->fwd_body = ag_mcp_body_dump(keep, b.batch, &c->fwd_len);
		if (!c->fwd_body) {
			json_decref(keep);
			ag_jsonrpc_body_free(&b);
			conn_close(c, "error", "out of memory");
			return;
		}
	}
	json_decref(keep);
	ag_jsonrpc_body_free(&b);
	if (c->audit_lost) {
		refuse(c, 503, AG_JSONRPC_INTERNAL_ERROR,
		       "the gateway cannot record this call in its audit log: refused");
		return;
	}
	if (c->escalated) {
		approval_hold(c);
		return;
	}
	if (fwd && audit_hold(c))
		return;
	if (fwd) {
		request_forward(c);
		return;
	}
	if (answer_locally(c)) {
		conn_close(c, "error", "could not answer the agent");
		return;
	}
	req_next(c);
}

static void request_end(struct mcp_conn *c)
{
	c->requests++;
	if (c->verb == AG_MCP_VERB_POST) {
		/* Looked up now, and forgotten once decided (see struct mcp_conn). */
		if (c->legacy_sid[0] && !(c->legacy = legacy_find(c, c->legacy_sid))) {
			refuse_request(c, 404, AG_JSONRPC_INVALID_REQUEST,
				       "the legacy session's stream has ended");
			return;
		}
		request_decide(c);
		c->legacy = NULL;
		return;
	}
	/* Only a POST body is decided: no other method may carry one past us. */
	if (c->body_len) {
		refuse(c, 400, AG_JSONRPC_INVALID_REQUEST,
		       "only POST requests may carry a body on a governed route");
		return;
	}
	request_forward(c);
}

/* The endpoint of the configured upstream URL: path and query, "/" if none. */
static const char *endpoint(const struct ag_server_conf *srv)
{
	return srv->upstream_path[0] ? srv->upstream_path : "/";
}

/*
 * Where the request goes upstream, set in c->fwd_target: the configured
 * endpoint, or for a POST to a legacy session's message endpoint, that
 * endpoint as the server announced it.  Anything else on the tool server's
 * origin is refused: the gateway's credential and decision are for the
 * MCP endpoint, never a confused deputy for other paths.
 */
static int request_target(struct mcp_conn *c, const struct ag_http_msg *m)
{
	const char *ep = endpoint(c->srv), *target = ep;
	struct ag_target t;
	struct ag_err err;
	struct session *s;

	if (ag_target_split(m->target, m->target_len, &t, &err)) {
		refuse_request(c, 400, AG_JSONRPC_INVALID_REQUEST, err.msg);
		return -1;
	}
	if (m->target_len == strlen(ep) && !memcmp(m->target, ep, m->target_len))
		goto found;
	if (c->verb == AG_MCP_VERB_POST && t.query &&
	    !ag_query_only_param(t.query, t.query_len, "sessionId", c->legacy_sid,
				 sizeof(c->legacy_sid), &err) &&
	    (s = legacy_find(c, c->legacy_sid)) && s->path_len == t.path_len &&
	    !memcmp(s->target, t.path, t.path_len)) {
		target = s->target;
		goto found;
	}
	c->legacy_sid[0] = '\0';
	/* Fail closed: not the endpoint the decision is about. */
	refuse_request(c, 404, AG_JSONRPC_INVALID_REQUEST,
		       "not the tool server's MCP endpoint (nor an open session's)");
	return -1;
found:
	if (!(c->fwd_target = strdup(target))) {
		conn_close(c, "error", "out of memory");
		return -1;
	}
	return 0;
}

/* Checks a request head before any of its body is read. */
static bool request_head(struct mcp_conn *c)
{
	const struct ag_http_msg *m = &c->req.msg;
	const struct ag_http_header *h = ag_http_find(m, "Host", NULL);
	const struct ag_mcp_authority w = { c->srv->hosts, c->srv->nr_hosts, c->o.addr,
					    c->o.port };
	char version[32];
	struct ag_err err;

	request_reset(c);
	c->req_ns = ag_now_ns();
	c->req_keep_alive = m->keep_alive;
	/*
	 * DNS-rebinding protection: a request must name the tool server by one
	 * of its configured names or by the address the agent connected to.
	 * HTTP/1.0 has no Host requirement; the gateway still needs one.
	 */
	if (!h || !ag_mcp_authority_ok(&w, h->value, h->value_len)) {
		refuse_request(c, 403, AG_JSONRPC_INVALID_REQUEST,
			       "Host not allowed by the gateway");
		return false;
	}
	if ((h = ag_http_find(m, "Origin", NULL)) && !ag_mcp_origin_ok(&w, h->value, h->value_len)) {
		refuse_request(c, 403, AG_JSONRPC_INVALID_REQUEST,
			       "Origin not allowed by the gateway");
		return false;
	}
	if ((h = ag_http_find(m, "Upgrade", NULL))) {
		refuse_request(c, 400, AG_JSONRPC_INVALID_REQUEST,
			       "protocol upgrades are not supported");
		return false;
	}
	if ((c->verb = ag_mcp_verb_of(m)) == AG_MCP_VERB_NONE) {
		refuse_request(c, 405, AG_JSONRPC_INVALID_REQUEST,
			       "MCP defines only POST, GET and DELETE on its endpoint");
		return false;
	}
	if (ag_mcp_fields_check(m, &err)) {
		refuse_request(c, 400, AG_JSONRPC_INVALID_REQUEST, err.msg);
		return false;
	}
	if (c->verb == AG_MCP_VERB_POST && ag_mcp_body_type_check(m, &err)) {
		refuse_request(c, 415, AG_JSONRPC_INVALID_REQUEST, err.msg);
		return false;
	}
	if (request_target(c, m))
		return false;
	copy_header(m, "MCP-Protocol-Version", version, sizeof(version));
	c->req_v2026 = !strcmp(version, "2026-07-28");
	snprintf(c->req_version, sizeof(c->req_version), "%s", version);
	copy_header(m, "Host", c->req_host, sizeof(c->req_host));
	copy_header(m, "Mcp-Session-Id", c->session_id, sizeof(c->session_id));
	return true;
}

static int body_append(struct mcp_conn *c, const uint8_t *data, size_t len)
{
	if (c->body_len + len > c->body_cap) {
		size_t cap = c->body_cap ? c->body_cap : 4096;
		uint8_t *p;

		/* The parser bounds the body (4 MiB), so this cannot overflow. */
		while (cap < c->body_len + len)
			cap *= 2;
		if (!(p = realloc(c->body, cap)))
			return -ENOMEM;
		c->body = p;
		c->body_cap = cap;
	}
	memcpy(c->body + c->body_len, data, len);
	c->body_len += len;
	return 0;
}

/* MC_REQUEST: parses what the agent sent, up to the end of one request. */
static void req_parse(struct mcp_conn *c)
{
	struct ag_http_event ev;

	while (c->state == MC_REQUEST && !c->closing_after) {
		ssize_t n;

		if (!c->head_started && c->a.in_len) {
			c->head_started = true;
			c->watch.head_ns = ag_fair_head_due(c->l);
		}
		n = ag_http_parse(&c->req, ag_stream_data(&c->a), c->a.in_len, &ev);
		if (n < 0) {
			char msg[256];

			snprintf(msg, sizeof(msg), "Invalid HTTP request: %.200s", c->req.err.msg);
			snprintf(c->error, sizeof(c->error), "agent: %s",
				 ag_http_error_name(c->req.error));
			refuse(c, n == -E2BIG ? 413 : 400, AG_JSONRPC_INVALID_REQUEST, msg);
			return;
		}
		ag_stream_consume(&c->a, n);
		switch (ev.type) {
		case AG_HTTP_EV_NEED_MORE:
			if (c->a.eof) {
				/* Between requests an EOF is the agent's clean goodbye. */
				if (ag_http_parse_eof(&c->req, &ev))
					conn_close(c, "error", "agent: request truncated");
				else
					conn_close(c, "ok", NULL);
				return;
			}
			ag_stream_read(&c->a);
			return;
		case AG_HTTP_EV_HEAD:
			c->watch.head_ns = 0;
			if (!request_head(c))
				return;
			break;
		case AG_HTTP_EV_BODY:
			if (body_append(c, ev.data, ev.len)) {
				conn_close(c, "error", "out of memory");
				return;
			}
			break;
		case AG_HTTP_EV_END:
			request_end(c);
			return;
		}
	}
}

/* The response ended (or the gateway answered): on to the next request. */
static void req_next(struct mcp_conn *c)
{
	if (c->state == MC_CLOSING)
		return;
	c->state = MC_REQUEST;
	if (!c->req_keep_alive || c->closing_after) {
		c->closing_after = true;
		ag_stream_shutdown(&c->a);
		ag_stream_read(&c->a);
		return;
	}
	/* Armed while idle, so an upstream that times out is noticed at once. */
	if (c->u)
		ag_stream_read(c->u);
	c->head_started = false;
	req_parse(c);
}

/* ---- the response ----------------------------------------------------- */

static int send_chunk(struct mcp_conn *c, const void *data, size_t len)
{
	char prefix[AG_HTTP_CHUNK_PREFIX_MAX];
	size_t n;
	int ret;

	if (!len)
		return 0;
	if (!c->chunked_down)
		return ag_stream_write(&c->a, data, len);
	n = ag_http_chunk_prefix(len, prefix);
	if ((ret = ag_stream_write(&c->a, prefix, n)) || (ret = ag_stream_write(&c->a, data, len)))
		return ret;
	return ag_stream_write(&c->a, AG_HTTP_CHUNK_SUFFIX, 2);
}

static int send_resp_head(struct mcp_conn *c, enum ag_http_framing framing, uint64_t length)
{
	struct ag_mcp *mcp = mcp_of(c);
	struct ag_http_edit e = {
		.framing = framing,
		.content_length = length,
		.keep_alive = c->req_keep_alive && c->resp.msg.keep_alive,
	};
	struct ag_err err;
	size_t hlen;
	int ret;

	/* An HTTP/1.0 agent cannot take chunks: the close delimits instead. */
	if (framing == AG_HTTP_BODY_CHUNKED && c->req.msg.version_minor == 0) {
		e.framing = AG_HTTP_BODY_NONE;
		e.keep_alive = false;
	}
	c->chunked_down = e.framing == AG_HTTP_BODY_CHUNKED;
	if (!e.keep_alive)
		c->closing_after = true;
	if ((ret = ag_http_serialize_head(&c->resp.msg, &e, mcp->head, sizeof(mcp->head), &hlen,
					  &err)))
		return ret;
	c->head_sent = true;
	return ag_stream_write(&c->a, mcp->head, hlen);
}

/* tools/list result: drops the tools the agent may not see.  1 if changed. */
static int filter_tools(struct mcp_conn *c, json_t *msg)
{
	struct ag_decide_ctx x = { c->l->d, c->ac, c->agent, c->srv, policy_session(c),
				   c->req_host, c->req_version, &c->o };
	json_t *tools = json_object_get(json_object_get(msg, "result"), "tools");
	size_t i = 0;
	int changed = 0;

	if (!json_is_array(tools))
		return 0;
	while (i < json_array_size(tools)) {
		json_t *tool = json_array_get(tools, i);
		const char *name = json_string_value(json_object_get(tool, "name"));
		/* First: a tool the agent may not see is still inventoried, so a
		 * changed definition is noticed whoever lists first. */
		bool trusted = ag_integrity_listed(c->l->d, c->srv, tool, c->agent, &c->o);

		if (trusted && name && ag_decide_visible(&x, name)) {
			i++;
			continue;
		}
		json_array_remove(tools, i);
		changed = 1;
	}
	return changed;
}

/*
 * One message of a response, by what it answers: a tools/list result is
 * filtered, a tools/call result governed; the answers the gateway did not
 * ask for (a replay of a resumed stream, an id answered twice) are
 * governed by their shape, never passed unread.  1 if msg was rewritten.
 */
static int govern_message(struct mcp_conn *c, json_t *msg)
{
	json_t *result = json_object_get(msg, "result"), *what;
	int ret = 0;

	/* The server's own requests and notifications answer nothing. */
	if (!json_is_object(msg) || json_object_get(msg, "method"))
		return 0;
	what = take_pending(c, json_object_get(msg, "id"));
	if (json_is_string(what))
		ret = govern_result(c, msg, json_string_value(what));
	else if (what && json_integer_value(what) == AG_MCP_TOOLS_LIST)
		ret = filter_tools(c, msg);
	else if (!what || json_integer_value(what) == AG_MCP_TOOLS_CALL)
		ret = !json_is_object(result)			      ? 0
		      : json_is_array(json_object_get(result, "tools")) ? filter_tools(c, msg)
									: govern_result(c, msg, NULL);
	json_decref(what);
	return ret;
}

/* Looks at each JSON-RPC message of a response; 1 if one was rewritten. */
static int inspect_messages(struct mcp_conn *c, json_t *root)
{
	int changed = 0, ret;
	size_t i;
	json_t *m;

	if (!json_is_array(root))
		return govern_message(c, root);
	json_array_foreach(root, i, m)
	{
		if ((ret = govern_message(c, m)) < 0)
			return ret;
		changed |= ret;
	}
	return changed;
}

static json_t *parse_json(const void *data, size_t len)
{
	/* The same rules as request bodies: one reading, no duplicates. */
	return json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
}

/* RM_BUFFER at the end: filter, merge the gateway's answers, send whole. */
static int buffer_finish(struct mcp_conn *c)
{
	json_t *root = c->rbody_len ? parse_json(c->rbody, c->rbody_len) : NULL;
	char *text = NULL;
	const void *out = c->rbody;
	size_t len = c->rbody_len;
	int changed = 0, ret;

	/* What cannot be read cannot be governed: it does not pass. */
	if (!root && c->rbody_len)
		return -EPROTO;
	if (root && (changed = inspect_messages(c, root)) < 0) {
		json_decref(root);
		return changed;
	}
	if (c->extra) {
		/* Answers of the gateway join the upstream's: one array. */
		json_t *all = json_is_array(root) ? json_incref(root) : json_array();
		size_t i;
		json_t *v;

		if (!all) {
			json_decref(root);
			return -ENOMEM;
		}
		if (root && !json_is_array(root))
			json_array_append(all, root);
		json_array_foreach(c->extra, i, v)
			json_array_append(all, v);
		json_decref(root);
		root = all;
		changed = 1;
		if (c->status == 202 || c->status == 204)
			c->resp.msg.status = c->status = 200;
	}
	if (changed) {
		if (!(text = json_dumps(root, JSON_COMPACT))) {
			json_decref(root);
			return -ENOMEM;
		}
		out = text;
		len = strlen(text);
	}
	json_decref(root);
	ret = send_resp_head(c, AG_HTTP_BODY_LENGTH, len);
	if (!ret)
		ret = ag_stream_write(&c->a, out, len);
	free(text);
	return ret;
}

static int held_append(struct mcp_conn *c, const void *data, size_t len)
{
	if (c->held_len + len > c->held_cap) {
		size_t cap = c->held_cap ? c->held_cap : 4096;
		uint8_t *p;

		if (c->held_len + len > SSE_EVENT_MAX + 64 * 1024)
			return -E2BIG;
		while (cap < c->held_len + len)
			cap *= 2;
		if (!(p = realloc(c->held, cap)))
			return -ENOMEM;
		c->held = p;
		c->held_cap = cap;
	}
	memcpy(c->held + c->held_len, data, len);
	c->held_len += len;
	return 0;
}

static int flush_held(struct mcp_conn *c)
{
	int ret = send_chunk(c, c->held, c->held_len);

	c->held_len = 0;
	return ret;
}

static int send_event(struct mcp_conn *c, const char *id, size_t id_len, json_t *msg)
{
	char *text = json_dumps(msg, JSON_COMPACT);
	size_t len;
	char *buf;
	int ret;

	if (!text)
		return -ENOMEM;
	len = strlen(text) + id_len + 40;
	if (!(buf = malloc(len))) {
		free(text);
		return -ENOMEM;
	}
	/* json_dumps escapes every line break: one data line is enough. */
	if (id_len)
		len = snprintf(buf, len, "id: %.*s\nevent: message\ndata: %s\n\n", (int)id_len, id,
			       text);
	else
		len = snprintf(buf, len, "event: message\ndata: %s\n\n", text);
	ret = send_chunk(c, buf, len);
	free(buf);
	free(text);
	return ret;
}

/* Messages of the gateway's own, at an event boundary of a legacy stream. */
static int inject_pending(struct mcp_conn *c)
{
	struct session *s = c->stream_of;
	size_t i;
	json_t *v;
	int ret = 0;

	if (!s || !json_array_size(s->inject) || c->state != MC_RESPONSE || c->mode != RM_SSE ||
	    c->held_len || !ag_sse_at_boundary(&c->sse))
		return 0;
	json_array_foreach(s->inject, i, v)
		if ((ret = send_event(c, NULL, 0, v)))
			break;
	json_array_clear(s->inject);
	return ret;
}

/*
 * A legacy stream's "endpoint" event: the session's message endpoint, a
 * URI (relative or absolute) whose query's only parameter is sessionId.
 * One the gateway cannot read registers nothing, so its POSTs are refused.
 */
static void register_session(struct mcp_conn *c, const char *data, size_t len)
{
	const char *p = data, *end = data + len, *auth;
	char sid[SESSION_ID_MAX];
	struct ag_target t;
	struct ag_err err;
	struct session *s;

	if (c->stream_of)
		return;
	/* An absolute URI ("://" before any "/"): its origin is the upstream's;
	 * keep the target.  One in a relative URI's query is not an origin. */
	if (len && data[0] != '/' && (auth = memmem(data, len, "://", 3)) &&
	    (p = memchr(auth + 3, '/', end - auth - 3)))
		len = end - p;
	if (!p || len >= ENDPOINT_MAX ||
	    ag_target_split(p, len, &t, &err) ||
	    ag_query_only_param(t.query, t.query_len, "sessionId", sid, sizeof(sid), &err)) {
		ag_log(AG_LOG_WARN, "mcp", "agent=%s server=%s session=unregistered "
		       "reason=\"an endpoint event the gateway cannot read\"", c->agent,
		       c->srv->name);
		return;
	}
	if (!(s = calloc(1, sizeof(*s))))
		return;
	memcpy(s->target, p, len);
	s->path_len = t.path_len;
	memcpy(s->id, sid, sizeof(s->id));
	memcpy(s->agent, c->agent, sizeof(s->agent));
	s->srv = c->srv;
	s->stream = c;
	c->stream_of = s;
	ag_list_add_tail(&mcp_of(c)->sessions, &s->node);
}

/* One complete SSE event: forward what was held, or its rewrite. */
static int sse_event(struct mcp_conn *c, const struct ag_sse_event *ev)
{
	json_t *root;
	int ret;

	if (ev->event_len == 8 && !memcmp(ev->event, "endpoint", 8)) {
		register_session(c, ev->data, ev->data_len);
		return flush_held(c);
	}
	if (ev->event_len != 7 || memcmp(ev->event, "message", 7))
		return flush_held(c);
	/* An empty event carries nothing (a priming event: only its id). */
	if (!ev->data_len)
		return flush_held(c);
	if (!(root = parse_json(ev->data, ev->data_len))) {
		/* It might be a result or a list: what cannot be read does not pass. */
		c->held_len = 0;
		ag_log(AG_LOG_WARN, "mcp", "agent=%s server=%s dropped=sse_event "
		       "reason=\"a message event that is not one JSON value\"%s",
		       c->agent, c->srv->name, owes_answer(c) ? " owed=yes" : "");
		return 0;
	}
	if ((ret = inspect_messages(c, root)) <= 0) {
		json_decref(root);
		return ret ? ret : flush_held(c);
	}
	/* The held bytes are this event (and maybe comments before it). */
	c->held_len = 0;
	ret = send_event(c, ev->id, ev->id_len, root);
	json_decref(root);
	return ret;
}

static int sse_feed(struct mcp_conn *c, const uint8_t *data, size_t len)
{
	struct ag_sse_event ev;
	int ret;

	do {
		ssize_t n = ag_sse_parse(&c->sse, data, len, &ev);

		if (n < 0)
			return (int)n;
		if ((ret = held_append(c, data, n)))
			return ret;
		data += n;
		len -= n;
		if (ev.type == AG_SSE_EV_EVENT && (ret = sse_event(c, &ev)))
			return ret;
	} while (ev.type != AG_SSE_EV_NEED_MORE);
	/* Comments and blank lines go on at once: keep-alives must not wait. */
	if (ag_sse_at_boundary(&c->sse) && c->held_len && (ret = flush_held(c)))
		return ret;
	return inject_pending(c);
}

static int response_head(struct mcp_conn *c)
{
	const struct ag_http_msg *m = &c->resp.msg;
	const struct ag_http_header *h;
	struct ag_err err;

	c->status = m->status;
	if (m->status < 200)
		return 0; /* interim: the gateway never sent Expect, nothing to pass on */
	/* The refusal is of the gateway's credential, not the agent's: its
	 * WWW-Authenticate must not start the agent on a login of its own. */
	if ((m->status == 401 || m->status == 403) && c->srv->cred != AG_CRED_NONE)
		return -EACCES;
	if (m->upgrade)
		return -EPROTO;
	/*
	 * The gateway asked for identity; a coded body it must read is
	 * refused.  JSON and SSE are read whatever was asked: a resumed
	 * stream or a GET can carry results too.
	 */
	h = ag_http_find(m, "Content-Encoding", NULL);
	if (h && !(h->value_len == 8 && !strncasecmp(h->value, "identity", 8)) &&
	    (ag_mcp_content_type_is(m, "application/json") || ag_mcp_content_type_is(m, "text/event-stream")))
		return -EPROTO;
	if (ag_mcp_content_type_is(m, "text/event-stream")) {
		c->mode = RM_SSE;
		if (ag_sse_parser_init(&c->sse, SSE_EVENT_MAX, &err))
			return -ENOMEM;
		c->sse_init = true;
		return send_resp_head(c, AG_HTTP_BODY_CHUNKED, 0);
	}
	if (c->extra || ag_mcp_content_type_is(m, "application/json")) {
		c->mode = RM_BUFFER;
		return 0;
	}
	c->mode = RM_STREAM;
	if (m->framing == AG_HTTP_BODY_LENGTH || m->framing == AG_HTTP_BODY_NONE)
		return send_resp_head(c, m->framing, m->content_length);
	return send_resp_head(c, AG_HTTP_BODY_CHUNKED, 0);
}

static int response_body(struct mcp_conn *c, const uint8_t *data, size_t len)
{
	switch (c->mode) {
	case RM_SSE:
		return sse_feed(c, data, len);
	case RM_BUFFER:
		if (c->rbody_len + len > c->rbody_cap) {
			size_t cap = c->rbody_cap ? c->rbody_cap : 4096;
			uint8_t *p;

			if (c->rbody_len + len > ag_http_default_limits.max_body)
				return -E2BIG;
			while (cap < c->rbody_len + len)
				cap *= 2;
			if (!(p = realloc(c->rbody, cap)))
				return -ENOMEM;
			c->rbody = p;
			c->rbody_cap = cap;
		}
		memcpy(c->rbody + c->rbody_len, data, len);
		c->rbody_len += len;
		return 0;
	case RM_STREAM:
		return send_chunk(c, data, len);
	}
	return 0;
}

static int response_end(struct mcp_conn *c)
{
	int ret = 0;

	if (c->mode == RM_BUFFER)
		return buffer_finish(c);
	if (c->mode == RM_SSE) {
		size_t i;
		json_t *v;

		/* A stream cut inside an event: pass on what was held anyway. */
		if ((ret = flush_held(c)))
			return ret;
		json_array_foreach(c->extra, i, v)
			if ((ret = send_event(c, NULL, 0, v)))
				return ret;
	}
	if (c->chunked_down)
		ret = ag_stream_write(&c->a, AG_HTTP_CHUNK_LAST, strlen(AG_HTTP_CHUNK_LAST));
	return ret;
}

static void response_fail(struct mcp_conn *c, const char *why)
{
	/* Before the head went out the agent can still get a clean error. */
	if (!c->head_sent) {
		snprintf(c->error, sizeof(c->error), "%s", why);
		refuse(c, 502, AG_JSONRPC_INTERNAL_ERROR, "the tool server's response was invalid");
		return;
	}
	conn_close(c, "error", why);
}

/* The upstream refused the gateway's credential: an OAuth token is renewed
 * once, the cause is audited, and the agent gets an error, not the 401. */
static void credential_refused(struct mcp_conn *c)
{
	char msg[256];

	ag_creds_refused(mcp_of(c)->creds, c->srv, c->cred_gen);
	snprintf(c->error, sizeof(c->error), "upstream refused the gateway's credential (HTTP %d)",
		 c->status);
	ag_daemon_audit(c->l->d, "result",
			json_pack("{s:o,s:s,s:s?,s:i,s:b,s:{s:s},s:s?}", "agent",
				  ag_audit_agent_json(c->agent, &c->o), "server", c->srv->name,
				  "tool", c->req_tool[0] ? c->req_tool : NULL, "upstream_status",
				  c->status, "is_error", 1, "error", "message",
				  "the tool server refused the gateway's credential", "session",
				  c->session_id[0] ? c->session_id : NULL));
	snprintf(msg, sizeof(msg),
		 "tool server %s refused the gateway's credential (HTTP %d); it is being renewed, "
		 "retry the call",
		 c->srv->name, c->status);
	refuse(c, 502, AG_JSONRPC_INTERNAL_ERROR, msg);
}

/* MC_RESPONSE: parses the upstream's bytes and passes them on. */
static void resp_parse(struct mcp_conn *c)
{
	struct ag_http_event ev;

	while (c->state == MC_RESPONSE) {
		ssize_t n;
		int ret = 0;

		/* Backpressure: a slow agent stops the upstream's reads. */
		if (ag_stream_queued(&c->a) > AG_STREAM_HIGH_WATER)
			return;
		if (!c->u)
			return;
		n = ag_http_parse(&c->resp, ag_stream_data(c->u), c->u->in_len, &ev);
		if (n < 0) {
			char msg[192];

			snprintf(msg, sizeof(msg), "upstream: %s", ag_http_error_name(c->resp.error));
			response_fail(c, msg);
			return;
		}
		ag_stream_consume(c->u, n);
		switch (ev.type) {
		case AG_HTTP_EV_NEED_MORE:
			if (c->u->eof) {
				if (ag_http_parse_eof(&c->resp, &ev) || ev.type != AG_HTTP_EV_END) {
					response_fail(c, "upstream: response truncated");
					return;
				}
				c->closing_after = true;
				break;
			}
			ag_stream_read(c->u);
			return;
		case AG_HTTP_EV_HEAD:
			ret = response_head(c);
			break;
		case AG_HTTP_EV_BODY:
			ret = response_body(c, ev.data, ev.len);
			break;
		case AG_HTTP_EV_END:
			break;
		}
		if (ret == -EACCES) {
			credential_refused(c);
			return;
		}
		if (ret) {
			response_fail(c, ret == -E2BIG	   ? "upstream: response over the gateway's limit"
					 : ret == -EPROTO ? "upstream: response the gateway cannot inspect"
							  : "upstream: response could not be passed on");
			return;
		}
		if (c->state == MC_CLOSING)
			return;
		if (ev.type == AG_HTTP_EV_END || (ev.type == AG_HTTP_EV_NEED_MORE && c->u->eof)) {
			if (c->status < 200)
				continue;
			if (!c->resp.msg.keep_alive)
				c->closing_after = true;
			if ((ret = response_end(c))) {
				response_fail(c, ret == -EPROTO
							 ? "upstream: a tools/list answer that cannot be read"
							 : "could not write to the agent");
				return;
			}
			req_next(c);
			return;
		}
	}
}

/* ---- stream events ---------------------------------------------------- */

/* The connection is ending: once our answer is out and the agent is done. */
static void agent_finish(struct mcp_conn *c)
{
	if (c->a.eof && c->a.shut_done && !c->a.send_armed)
		conn_close(c, c->error[0] ? "refused" : "ok", NULL);
}

static void agent_event(struct ag_stream *s, enum ag_stream_ev ev)
{
	struct mcp_conn *c = s->ctx;

	switch (ev) {
	case AG_STREAM_READ:
	case AG_STREAM_EOF:
		ag_watch_touch(&c->watch);
		if (c->state != MC_REQUEST) {
			/*
			 * The agent went away while its call was held or its SSE
			 * stream was open: nothing will read what comes.  Any
			 * other EOF may be a half-close: the answer still goes
			 * out, then the connection ends.
			 */
			if (ev == AG_STREAM_EOF &&
			    (c->state == MC_APPROVAL ||
			     (c->state == MC_RESPONSE && c->mode == RM_SSE && c->head_sent)))
				conn_close(c, "ok", NULL);
			else if (ev == AG_STREAM_EOF)
				c->closing_after = true;
			else
				ag_stream_read(s); /* to see an EOF; bytes wait their turn */
			return;
		}
		if (c->closing_after) {
			/* Answered and shutting down: what the agent sends is moot. */
			ag_stream_consume(s, s->in_len);
			if (ev == AG_STREAM_EOF)
				agent_finish(c);
			else
				ag_stream_read(s);
			return;
		}
		req_parse(c);
		return;
	case AG_STREAM_SHUT:
		agent_finish(c);
		return;
	case AG_STREAM_ERROR:
		conn_close(c, s->error == ECONNRESET || s->error == EPIPE ? "reset" : "error", s->why);
		return;
	case AG_STREAM_DRAINED:
		if (c->state == MC_RESPONSE)
			resp_parse(c);
		return;
	case AG_STREAM_CONNECTED:
		return;
	}
}

/*
 * An idle upstream closed its end (servers time keep-alive connections
 * out): the next request gets a new connection.  The old stream goes at
 * once if nothing of it is in flight, else when the connection does.
 */
static void upstream_retire(struct mcp_conn *c)
{
	struct ag_stream *u = c->u;

	c->u = NULL;
	c->up_ready = false;
	if (!u->recv_armed && !u->send_armed && !u->tcp_pending) {
		ag_stream_fini(u);
		free(u);
		return;
	}
	if (c->retired) {
		/* Two upstreams stuck at once: something is wrong; stop here. */
		c->u = u;
		conn_close(c, "error", "upstream: closed twice with I/O in flight");
		return;
	}
	ag_stream_cancel(u);
	c->retired = u;
}

static void upstream_event(struct ag_stream *s, enum ag_stream_ev ev)
{
	struct mcp_conn *c = s->ctx;

	/* A retired upstream's cancelled I/O has nothing left to say. */
	if (s != c->u)
		return;

	switch (ev) {
	case AG_STREAM_CONNECTED:
		c->up_ready = true;
		if (c->state == MC_RESPONSE) {
			if (forward_request(c))
				conn_close(c, "error", "could not forward the request");
			else
				ag_stream_read(c->u);
		}
		return;
	case AG_STREAM_READ:
	case AG_STREAM_EOF:
		ag_watch_touch(&c->watch);
		if (c->state == MC_RESPONSE) {
			resp_parse(c);
		} else if (ev == AG_STREAM_EOF) {
			upstream_retire(c);
		}
		return;
	case AG_STREAM_ERROR:
		if (!c->up_ready) {
			c->l->d->stats.upstream_failed++;
			snprintf(c->error, sizeof(c->error), "%s", s->why);
			refuse(c, 502, AG_JSONRPC_INTERNAL_ERROR, "the tool server cannot be reached");
			return;
		}
		if (c->state == MC_RESPONSE)
			response_fail(c, s->why);
		else
			conn_close(c, "error", s->why);
		return;
	case AG_STREAM_DRAINED:
	case AG_STREAM_SHUT:
		return;
	}
}

/* ---- set-up ----------------------------------------------------------- */

/* The sweep: a request head not whole in time, or no byte either way. */
static void conn_expire(struct ag_watch *w, const char *why)
{
	struct mcp_conn *c = ag_container_of(w, struct mcp_conn, watch);
	bool head = !strcmp(why, "header_timeout");

	if (!head &&
	    (c->state == MC_APPROVAL || c->state == MC_AUDIT_WAIT || c->state == MC_CRED_WAIT)) {
		ag_watch_start(c->l, w, w->head_ns, conn_expire);
		return;
	}
	conn_close(c, why,
		   head ? "agent: request head not whole within the header timeout"
			: "no byte either way within the idle timeout");
}

void ag_mcp_start(struct ag_loop *l, int fd, const struct ag_origin *o, const char *agent,
		  const struct ag_server_conf *srv, const void *initial, size_t len, bool tls,
		  uint64_t head_ns)
{
	struct ag_mcp *mcp = l->mcp;
	struct ag_daemon *d = l->d;
	struct ag_err err;
	struct mcp_conn *c = calloc(1, sizeof(*c));
	char dst[64];

	if (!c || ag_stream_init(&c->a, l, &c->own, fd, "agent")) {
		if (c)
			free(c->a.in);
		free(c);
		ag_log(AG_LOG_ERROR, "mcp_conn", "agent=%s result=error error=\"out of memory\"",
		       agent);
		ag_fair_release(l, fd);
		close(fd);
		return;
	}
	no_delay(fd);
	c->own.release = conn_release;
	ag_list_init(&c->wait);
	c->l = l;
	c->srv = srv;
	c->ac = ag_conf_agent(&d->conf, agent);
	c->o = *o;
	c->start_ns = ag_now_ns();
	c->result = "ok";
	c->agent_tls = tls;
	snprintf(c->agent, sizeof(c->agent), "%s", agent);
	c->a.event = agent_event;
	c->a.ctx = c;
	ag_list_add_tail(&mcp->conns, &c->node);
	ag_watch_start(l, &c->watch, head_ns, conn_expire);
	c->head_started = true;
	mcp->active++;
	d->stats.conns_total++;
	d->stats.conns_active++;
	ag_metrics_conn(d->metrics, c->agent, 1);
	if (ag_http_parser_init(&c->req, true, NULL, &err)) {
		conn_close(c, "error", err.msg);
		return;
	}
	if (tls) {
		struct ag_tls *t;

		if (ag_addr_is_v4(o->addr))
			inet_ntop(AF_INET, o->addr + 12, dst, sizeof(dst));
		else
			inet_ntop(AF_INET6, o->addr, dst, sizeof(dst));
		/* Without SNI the leaf names the address the agent dialled. */
		if (!mcp->server_ctx) {
			conn_close(c, "refused", "TLS to a governed server, but no instance CA");
			return;
		}
		if (!(t = ag_tls_new_server(mcp->server_ctx, dst, &err))) {
			conn_close(c, "error", err.msg);
			return;
		}
		ag_stream_tls(&c->a, t);
	}
	/* Under TLS the first bytes are ciphertext: preloading feeds them. */
	if (ag_stream_preload(&c->a, initial, len)) {
		conn_close(c, "error", "first bytes over the buffer");
		return;
	}
	c->state = MC_REQUEST;
	/*
	 * Handlers run inside a completion, whose count keeps the connection
	 * alive until they return; this first pass has none, so it holds one.
	 */
	c->own.inflight++;
	if (tls)
		ag_stream_read(&c->a);
	else
		req_parse(c);
	ag_stream_owner_put(&c->own);
}

void ag_mcp_stop(struct ag_loop *l)
{
	struct ag_list *pos, *next;

	for (pos = l->mcp->conns.next; pos != &l->mcp->conns; pos = next) {
		next = pos->next;
		conn_close(ag_container_of(pos, struct mcp_conn, node), "shutdown", NULL);
	}
	if (l->mcp->audit_q.armed)
		ag_loop_cancel_fd(l, l->mcp->audit_q.fd);
	if (l->mcp->cred_q.armed)
		ag_loop_cancel_fd(l, l->mcp->cred_q.fd);
	/* Closing the connections dropped every approval's timeout. */
}

json_t *ag_mcp_credentials(struct ag_loop *l)
{
	return l->mcp && l->mcp->creds ? ag_creds_status(l->mcp->creds) : json_object();
}

int ag_mcp_reload_credentials(struct ag_loop *l, const char *trigger)
{
	struct ag_mcp *mcp = l->mcp;
	struct ag_err err = { 0 };
	int ret;

	if (!mcp || !mcp->creds)
		return 0;
	ret = ag_creds_reload(mcp->creds, mcp->cred_q.fd, &err);
	if (ret < 0)
		ag_log(AG_LOG_ERROR, "credential_reload", "trigger=%s result=refused error=\"%s\"",
		       trigger, err.msg);
	else
		ag_log(AG_LOG_INFO, "credential_reload", "trigger=%s result=ok changed=%d", trigger,
		       ret);
	ag_daemon_audit(l->d, "credential_reload",
			json_pack("{s:b,s:s,s:s?,s:i}", "ok", ret >= 0, "trigger", trigger, "error",
				  ret < 0 ? err.msg : NULL, "changed", ret < 0 ? 0 : ret));
	return ret < 0 ? ret : 0;
}

unsigned int ag_mcp_active(const struct ag_loop *l)
{
	return l->mcp ? l->mcp->active : 0;
}

int ag_mcp_init(struct ag_loop *l, struct ag_err *err)
{
	struct ag_daemon *d = l->d;
	struct ag_mcp *mcp = calloc(1, sizeof(*mcp));
	char dir[PATH_MAX];
	int ret;

	if (!mcp)
		return ag_errf(err, ENOMEM, "mcp: out of memory");
	ag_list_init(&mcp->conns);
	ag_list_init(&mcp->sessions);
	ag_approvals_init(&mcp->approvals, l);
	ag_waitq_init(&mcp->audit_q, l, ag_audit_event_fd(d->audit), audit_woken, wait_refuse,
		      "the gateway cannot wait for its audit log: refused");
	ag_waitq_init(&mcp->cred_q, l, -1, cred_woken, wait_refuse,
		      "the gateway cannot wait for the tool server's token: refused");
	mcp->l = l;
	l->mcp = mcp;
	if (!d->conf.nr_servers)
		return 0;
	mcp->client_ctx = calloc(d->conf.nr_servers, sizeof(*mcp->client_ctx));
	if (!mcp->client_ctx)
		return ag_errf(err, ENOMEM, "mcp: out of memory");
	for (int i = 0; i < d->conf.nr_servers && mcp->cred_q.fd < 0; i++)
		if (d->conf.servers[i].cred == AG_CRED_OAUTH &&
		    (mcp->cred_q.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
			return ag_errf(err, errno, "mcp: eventfd: %s", strerror(errno));
	if ((ret = ag_creds_new(&d->conf, d->inst.state_dir, d->inst.name, mcp->cred_q.fd,
				&mcp->creds, err)))
		return ret;
	for (int i = 0; i < d->conf.nr_servers; i++) {
		const struct ag_server_conf *s = &d->conf.servers[i];

		if (!s->upstream_tls)
			continue;
		mcp->client_ctx[i] = ag_tls_client_ctx(s->ca_file[0] ? s->ca_file : NULL, err);
		if (!mcp->client_ctx[i])
			return ag_errf(err, err->code ? err->code : EINVAL, "tool server %s: %s",
				       s->name, err->msg);
	}
	snprintf(dir, sizeof(dir), "%s/tls", d->inst.state_dir);
	if ((ret = ag_tls_ca_open(&mcp->ca, dir, d->inst.name, err)))
		return ret;
	if ((ret = ag_outrules_new(&d->conf, &mcp->outrules, err)))
		return ret;
	if (!(mcp->server_ctx = ag_tls_server_ctx(mcp->ca, err)))
		return -EINVAL;
	return 0;
}

void ag_mcp_fini(struct ag_loop *l)
{
	struct ag_mcp *mcp = l->mcp;
	struct ag_list *pos, *next;

	if (!mcp)
		return;
	for (pos = mcp->sessions.next; pos != &mcp->sessions; pos = next) {
		next = pos->next;
		session_drop(ag_container_of(pos, struct session, node));
	}
	for (int i = 0; mcp->client_ctx && i < l->d->conf.nr_servers; i++)
		if (mcp->client_ctx[i])
			SSL_CTX_free(mcp->client_ctx[i]);
	free(mcp->client_ctx);
	ag_creds_free(mcp->creds);
	if (mcp->cred_q.fd >= 0)
		close(mcp->cred_q.fd);
	if (mcp->server_ctx)
		SSL_CTX_free(mcp->server_ctx);
	if (mcp->ca)
		ag_tls_ca_free(mcp->ca);
	ag_outrules_free(mcp->outrules);
	free(mcp);
	l->mcp = NULL;
}
