// SPDX-License-Identifier: GPL-2.0
/*
 * The MCP path (see mcp.h; its files are listed in mcp_int.h): the
 * connection's life cycle and its state machine.  A connection alternates
 * between two states, one request at a time, because MCP clients do not
 * pipeline and a request must be decided before any byte of it reaches the
 * upstream:
 *
 *	MC_REQUEST --request decided, forwarded--> MC_RESPONSE --response ended--> MC_REQUEST
 *	MC_REQUEST --answered by the gateway (denial, bad request)--> MC_REQUEST
 *	MC_REQUEST --allowed, decision record not yet written (sync: durable)--> MC_AUDIT_WAIT
 *		--written (durable)--> MC_RESPONSE
 *	  (records are written when the loop's turn ends: every allowed call waits
 *	  until then, longer if the writer was busy or, sync, for the disk: mcp_hold.c)
 *	MC_RESPONSE --strict, answer before the record is durable--> (held: audit.result_held,
 *		the upstream's bytes unread) --durable--> MC_RESPONSE --failed--> MC_CLOSING
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
 * A request holds what it needs (struct mcp_req) from its first byte to
 * the end of its response; between requests a connection holds no buffer
 * (stream.c) and no parser.  Its upstream is taken from the tool server's
 * pool (or connected) when it is forwarded and given back when its
 * response ends (mcp_upstream.c); a response that ends the upstream
 * connection ends the agent's too (Connection: close), as the agent was
 * told in the head passed on.
 *
 * Pipelining: a request that arrives before the previous response ended
 * waits in the agent's buffer (unparsed) until mcp_req_next.
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
 * function that continues after one re-checks c->own.closing.  An upstream
 * completion holds a count of the connection it serves for the length of
 * its handler (mcp_upstream.c).  mcp_req_next frees c->r: its callers
 * return at once, and one that may reach it re-checks c->r.  The head of
 * the request being answered lives in the request parser's block: the
 * parser is not fed again until the response has ended.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <arpa/inet.h>

#include "admit.h"
#include "audit.h"
#include "creds.h"
#include "inbound.h"
#include "daemon.h"
#include "http_svc.h"
#include "mcp_int.h"
#include "metrics.h"
#include "trail.h"

void mcp_request_reset(struct mcp_conn *c)
{
	ag_buf_free(&c->r->call.body);
	free(c->r->call.fwd_body);
	free(c->r->call.fwd_target);
	c->r->call.fwd_body = c->r->call.fwd_target = NULL;
	c->r->call.fwd_len = 0;
	json_decref(c->r->call.extra);
	json_decref(c->r->call.pending);
	c->r->call.extra = c->r->call.pending = NULL;
	ag_buf_free(&c->r->reply.body);
	ag_buf_free(&c->r->reply.held);
	if (c->r->reply.sse_init)
		ag_sse_parser_release(&c->r->reply.sse);
	c->r->reply.sse_init = false;
	c->r->legacy.post = NULL;
	c->r->legacy.sid[0] = '\0';
	c->r->audit.seq = 0;
	c->r->audit.lost = false;
	c->r->audit.result_held = false;
	c->r->esc.waiting = false;
	c->r->esc.tool[0] = c->r->esc.reason[0] = c->r->call.tool[0] = '\0';
	json_decref(c->r->call.id);
	c->r->call.id = NULL;
	c->r->reply.head_sent = false;
	c->r->call.session_id[0] = '\0';
	mcp_cred_wipe(c);
	ag_route_req_free(&c->r->http.req);
	c->r->http.owed = false;
}

/* A request's first byte came: what it holds is allocated now.  False
 * when the connection was closed (out of memory). */
static bool req_begin(struct mcp_conn *c)
{
	struct ag_err err;

	if (!(c->r = calloc(1, sizeof(*c->r)))) {
		mcp_conn_close(c, "error", "out of memory");
		return false;
	}
	if (ag_http_parser_init(&c->r->req, true, NULL, &err)) {
		free(c->r);
		c->r = NULL;
		mcp_conn_close(c, "error", err.msg);
		return false;
	}
	return true;
}

/* The request is over: the connection keeps nothing of it. */
static void req_end(struct mcp_conn *c)
{
	mcp_request_reset(c);
	ag_http_parser_release(&c->r->req);
	if (c->r->resp_init)
		ag_http_parser_release(&c->r->resp);
	free(c->r);
	c->r = NULL;
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
	ag_log(strcmp(c->result, "ok") && strcmp(c->result, "shutdown") ? AG_LOG_WARN : AG_LOG_INFO,
	       "mcp_conn",
	       "agent=%s cgroup_id=%llu pid=%u server=%s dst=%s tls=%s requests=%u bytes_up=%llu "
	       "bytes_down=%llu duration_ms=%.3f result=%s%s",
	       ag_logq(agent, sizeof(agent), c->agent), (unsigned long long)c->o.agent_cgroup_id,
	       c->o.tgid, c->srv->name, dst, c->agent_tls ? "yes" : "no", c->requests,
	       (unsigned long long)c->a.bytes_in, (unsigned long long)c->a.bytes_out, ms, c->result,
	       err);
	mcp_audit_connect(c, dst, ms);
	if (c->legacy.stream)
		mcp_session_drop(c->legacy.stream);
	if (c->r)
		req_end(c);
	ag_fair_release(c->l, c->a.fd);
	ag_stream_fini(&c->a);
	ag_list_del(&c->node);
	mcp_of(c)->active--;
	d->stats.conns_active--;
	ag_metrics_conn(d->metrics, c->agent, -1);
	free(c->dg);
	ag_inbound_conn_end(d, c->in);
	free(c);
}

void mcp_conn_close(struct mcp_conn *c, const char *result, const char *why)
{
	if (c->state == MC_CLOSING)
		return;
	c->state = MC_CLOSING;
	ag_watch_stop(&c->watch);
	c->result = result;
	if (why && !c->error[0])
		snprintf(c->error, sizeof(c->error), "%s", why);
	if (c->legacy.stream)
		c->legacy.stream->stream = NULL;
	ag_list_del(&c->wait);
	if (c->r)
		mcp_approval_cancel(c);
	/* Mid-request: its response is not read to its end, nothing else may be. */
	mcp_upstream_done(c, false);
	c->own.closing = true;
	if (!c->own.inflight) {
		conn_release(&c->own);
		return;
	}
	ag_stream_cancel(&c->a);
}

/* A response of the gateway's own: JSON body (or none), with a length. */
int mcp_send_local_hdr(struct mcp_conn *c, int status, const char *extra, const json_t *body,
		       bool keep_alive)
{
	char head[3072], *text = NULL;
	size_t len = 0;
	int n, ret;

	if (body && !(text = json_dumps(body, JSON_COMPACT)))
		return -ENOMEM;
	len = text ? strlen(text) : 0;
	n = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\n%s%s%sContent-Length: %zu\r\n%s\r\n",
		     status, ag_http_reason(status),
		     status != 405  ? ""
		     : c->srv->http ? "Allow: GET, POST, PUT, PATCH, DELETE\r\n"
				    : "Allow: GET, POST, DELETE\r\n",
		     extra ?: "",
		     text ? "Content-Type: application/json\r\n" : "", len,
		     keep_alive ? "" : "Connection: close\r\n");
	/* Fail closed: a head cut short would frame the body wrongly. */
	ret = n < 0 || n >= (int)sizeof(head) ? -ENOSPC : ag_stream_write(&c->a, head, n);
	if (!ret && len)
		ret = ag_stream_write(&c->a, text, len);
	free(text);
	return ret;
}

int mcp_send_local(struct mcp_conn *c, int status, const json_t *body, bool keep_alive)
{
	return mcp_send_local_hdr(c, status, NULL, body, keep_alive);
}

void mcp_answer_close(struct mcp_conn *c, int status, const char *extra, const json_t *body)
{
	/* The request is answered: what is left is the goodbye. */
	ag_list_del(&c->wait);
	mcp_approval_cancel(c);
	mcp_upstream_done(c, false);
	c->state = MC_REQUEST;
	c->closing_after = true;
	if (mcp_send_local_hdr(c, status, extra, body, false)) {
		mcp_conn_close(c, "error", "could not answer the agent");
		return;
	}
	ag_stream_shutdown(&c->a);
	/* The agent's EOF (or reset) is what ends the connection now. */
	ag_stream_read(&c->a);
}

/* The agent's request cannot be served: answer and end the connection. */
void mcp_refuse(struct mcp_conn *c, int status, int code, const char *msg)
{
	/* A lone request's id, once known: the agent can match the answer.
	 * An HTTP service's agent reads plain JSON. */
	json_t *e = c->srv->http ? json_pack("{s:s}", "error", msg)
				 : ag_jsonrpc_error(c->r ? c->r->call.id : NULL, code, msg, NULL);

	mcp_answer_close(c, status, NULL, e);
	json_decref(e);
}

/*
 * The agent's request itself is refused (not one of its calls): the
 * connection's record says why (result "refused"), so the attempt is in
 * the audit log.
 */
void mcp_refuse_request(struct mcp_conn *c, int status, int code, const char *msg)
{
	snprintf(c->error, sizeof(c->error), "request: %.170s", msg);
	mcp_refuse(c, status, code, msg);
}

/* The session policies count calls in: streamable HTTP's header, else the
 * legacy transport's sessionId (of the POST, or of the GET stream). */
const char *mcp_policy_session(const struct mcp_conn *c)
{
	if (c->r && c->r->call.session_id[0])
		return c->r->call.session_id;
	if (c->r && c->r->legacy.post)
		return c->r->legacy.post->id;
	return c->legacy.stream ? c->legacy.stream->id : NULL;
}

/* A wait queue cannot be polled: its held call is refused, not left hanging. */
static void wait_refuse(struct ag_list *w, const char *refusal)
{
	mcp_refuse(ag_container_of(w, struct mcp_conn, wait), 503, AG_JSONRPC_INTERNAL_ERROR,
		   refusal);
}

/* What decide.h is told of the request being handled. */
struct ag_decide_ctx mcp_decide_ctx(const struct mcp_conn *c)
{
	return (struct ag_decide_ctx){ c->l->d,
				       c->ac,
				       c->agent,
				       c->srv,
				       mcp_policy_session(c),
				       c->r->call.host,
				       c->r->call.version,
				       &c->o,
				       c->dg,
				       c->in };
}

static void request_end(struct mcp_conn *c)
{
	c->requests++;
	if (c->srv->http) {
		http_svc_request(c);
		return;
	}
	if (c->r->call.verb == AG_MCP_VERB_POST) {
		/* Looked up now, and forgotten once decided (see struct mcp_conn). */
		if (c->r->legacy.sid[0] &&
		    !(c->r->legacy.post = mcp_legacy_find(c, c->r->legacy.sid))) {
			mcp_refuse_request(c, 404, AG_JSONRPC_INVALID_REQUEST,
					   "the legacy session's stream has ended");
			return;
		}
		/* An outside agent's scopes first: refused with 403, not decided. */
		if (c->in && !ag_inbound_body(c))
			return;
		mcp_request_decide(c);
		/* Decided: the request may be over, and with it c->r. */
		if (c->r)
			c->r->legacy.post = NULL;
		return;
	}
	/* Only a POST body is decided: no other method may carry one past us. */
	if (c->r->call.body.len) {
		mcp_refuse(c, 400, AG_JSONRPC_INVALID_REQUEST,
			   "only POST requests may carry a body on a governed route");
		return;
	}
	mcp_request_forward(c);
}

/* MC_REQUEST: parses what the agent sent, up to the end of one request. */
static void req_parse(struct mcp_conn *c)
{
	struct ag_http_event ev;

	while (c->state == MC_REQUEST && !c->closing_after) {
		ssize_t n;

		if (!c->r) {
			/* Idle: nothing of a request yet, and nothing held for one. */
			if (!c->a.in_len) {
				/* Between requests an EOF is the agent's clean goodbye. */
				if (c->a.eof)
					mcp_conn_close(c, "ok", NULL);
				else
					ag_stream_read(&c->a);
				return;
			}
			if (!req_begin(c))
				return;
		}
		if (!c->head_started && c->a.in_len) {
			c->head_started = true;
			c->watch.head_ns = ag_fair_head_due(c->l);
		}
		n = ag_http_parse(&c->r->req, ag_stream_data(&c->a), c->a.in_len, &ev);
		if (n < 0) {
			char msg[256];

			snprintf(msg, sizeof(msg), "Invalid HTTP request: %.200s",
				 c->r->req.err.msg);
			snprintf(c->error, sizeof(c->error), "agent: %s",
				 ag_http_error_name(c->r->req.error));
			mcp_refuse(c, n == -E2BIG ? 413 : 400, AG_JSONRPC_INVALID_REQUEST, msg);
			return;
		}
		ag_stream_consume(&c->a, n);
		switch (ev.type) {
		case AG_HTTP_EV_NEED_MORE:
			if (c->a.eof) {
				/* Between requests an EOF is the agent's clean goodbye. */
				if (ag_http_parse_eof(&c->r->req, &ev))
					mcp_conn_close(c, "error", "agent: request truncated");
				else
					mcp_conn_close(c, "ok", NULL);
				return;
			}
			ag_stream_read(&c->a);
			return;
		case AG_HTTP_EV_HEAD:
			c->watch.head_ns = 0;
			if (!mcp_request_head(c))
				return;
			break;
		case AG_HTTP_EV_BODY:
			if (ag_buf_put(&c->r->call.body, ev.data, ev.len,
				       ag_http_default_limits.max_body)) {
				mcp_conn_close(c, "error", "out of memory");
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
void mcp_req_next(struct mcp_conn *c)
{
	if (c->state == MC_CLOSING)
		return;
	http_svc_done(c);
	c->state = MC_REQUEST;
	/* A legacy session ends with its GET stream: nothing may be injected
	 * into the next request's bytes. */
	if (c->legacy.stream)
		c->closing_after = true;
	mcp_upstream_done(c, true);
	if (!c->r->call.keep_alive || c->closing_after) {
		c->closing_after = true;
		ag_stream_shutdown(&c->a);
		ag_stream_read(&c->a);
		return;
	}
	/* Nothing of it is read after this: every caller returns at once. */
	req_end(c);
	c->head_started = false;
	req_parse(c);
}

/* The connection is ending: once our answer is out and the agent is done. */
static void agent_finish(struct mcp_conn *c)
{
	if (c->a.eof && c->a.shut_done && !c->a.send_armed)
		mcp_conn_close(c, c->error[0] ? "refused" : "ok", NULL);
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
			     (c->state == MC_RESPONSE && c->r->reply.mode == RM_SSE &&
			      c->r->reply.head_sent)))
				mcp_conn_close(c, "ok", NULL);
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
		mcp_conn_close(c, s->error == ECONNRESET || s->error == EPIPE ? "reset" : "error",
			       s->why);
		return;
	case AG_STREAM_DRAINED:
		if (c->state == MC_RESPONSE)
			mcp_resp_parse(c);
		return;
	case AG_STREAM_CONNECTED:
		return;
	}
}

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
	mcp_conn_close(c, why,
		       head ? "agent: request head not whole within the header timeout"
			    : "no byte either way within the idle timeout");
}

/* ctx: the TLS server context when tls (NULL: the instance CA's). */
static void conn_start(struct ag_loop *l, int fd, const struct ag_admission *adm,
		       const struct ag_server_conf *srv, const void *initial, size_t len, bool tls,
		       SSL_CTX *ctx, struct ag_inbound_id *in, uint64_t head_ns)
{
	const struct ag_origin *o = &adm->o;
	const char *agent = adm->agent;
	struct ag_mcp *mcp = l->mcp;
	struct ag_daemon *d = l->d;
	struct ag_err err;
	struct mcp_conn *c = calloc(1, sizeof(*c));
	char dst[64];

	if (!c || ag_admission_chain_dup(adm, &c->dg)) {
		free(c);
		ag_inbound_conn_end(d, in);
		ag_log(AG_LOG_ERROR, "mcp_conn", "agent=%s result=error error=\"out of memory\"",
		       agent);
		ag_fair_release(l, fd);
		close(fd);
		return;
	}
	ag_stream_init(&c->a, l, &c->own, fd, "agent");
	mcp_no_delay(fd);
	c->own.release = conn_release;
	ag_list_init(&c->wait);
	c->l = l;
	c->srv = srv;
	c->in = in;
	/* An outside agent is never a local agent of the same name. */
	c->ac = in ? NULL : ag_conf_agent(&d->conf, agent);
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
	if (tls) {
		struct ag_tls *t;

		if (ag_addr_is_v4(o->addr))
			inet_ntop(AF_INET, o->addr + 12, dst, sizeof(dst));
		else
			inet_ntop(AF_INET6, o->addr, dst, sizeof(dst));
		/* Without SNI the leaf names the address the agent dialled. */
		if (!ctx && !(ctx = mcp->server_ctx)) {
			mcp_conn_close(c, "refused",
				       "TLS to a governed server, but no instance CA");
			return;
		}
		if (!(t = ag_tls_new_server(ctx, dst, &err))) {
			mcp_conn_close(c, "error", err.msg);
			return;
		}
		ag_stream_tls(&c->a, t);
	}
	/* Under TLS the first bytes are ciphertext: preloading feeds them. */
	if (ag_stream_preload(&c->a, initial, len)) {
		mcp_conn_close(c, "error", "first bytes over the buffer");
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

void ag_mcp_start(struct ag_loop *l, int fd, const struct ag_admission *adm,
		  const struct ag_server_conf *srv, const void *initial, size_t len, bool tls,
		  uint64_t head_ns)
{
	conn_start(l, fd, adm, srv, initial, len, tls, NULL, NULL, head_ns);
}

void ag_mcp_start_inbound(struct ag_loop *l, int fd, const struct ag_admission *a,
			  const struct ag_server_conf *srv, SSL_CTX *ctx, struct ag_inbound_id *id)
{
	conn_start(l, fd, a, srv, NULL, 0, true, ctx, id, ag_fair_head_due(l));
}

void ag_mcp_stop(struct ag_loop *l)
{
	struct ag_list *pos, *next;

	for (pos = l->mcp->conns.next; pos != &l->mcp->conns; pos = next) {
		next = pos->next;
		mcp_conn_close(ag_container_of(pos, struct mcp_conn, node), "shutdown", NULL);
	}
	mcp_pools_stop(l->mcp);
	if (l->mcp->audit_q.armed)
		ag_ring_cancel_fd(&l->ring, l->mcp->audit_q.fd);
	if (l->mcp->cred_q.armed)
		ag_ring_cancel_fd(&l->ring, l->mcp->cred_q.fd);
	/* Closing the connections dropped every approval's timeout. */
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
	ag_list_init(&mcp->audit_turn);
	ag_approvals_init(&mcp->approvals, l);
	ag_waitq_init(&mcp->audit_q, l, ag_audit_event_fd(d->audit), mcp_audit_woken, wait_refuse,
		      "the gateway cannot wait for its audit log: refused");
	ag_waitq_init(&mcp->cred_q, l, -1, mcp_cred_woken, wait_refuse,
		      "the gateway cannot wait for the tool server's token: refused");
	mcp->l = l;
	l->mcp = mcp;
	l->approvals = &mcp->approvals;
	if (!d->conf.nr_servers)
		return 0;
	mcp->client_ctx = calloc(d->conf.nr_servers, sizeof(*mcp->client_ctx));
	if (!mcp->client_ctx || mcp_pools_new(mcp, d->conf.nr_servers))
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
		mcp_session_drop(ag_container_of(pos, struct session, node));
	}
	for (int i = 0; mcp->client_ctx && i < l->d->conf.nr_servers; i++)
		if (mcp->client_ctx[i])
			SSL_CTX_free(mcp->client_ctx[i]);
	free(mcp->client_ctx);
	free(mcp->pools);
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
	l->approvals = NULL;
}
