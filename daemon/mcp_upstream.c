// SPDX-License-Identifier: GPL-2.0
/*
 * The upstream side of the MCP path (mcp_int.h): the connections to the
 * tool servers, the forwarded request, and the gateway's credential for it
 * (creds.h), wiped once it is in the send queue.
 *
 * An upstream connection carries one request at a time for whichever
 * agent connection forwards it, and waits between requests in its tool
 * server's pool (at most upstream_pool idle, the newest used first):
 *
 *	pool --taken by a forwarded request--> in use --response ended, kept
 *		alive, nothing left over or in flight--> pool
 *	(none idle) --connected--> in use
 *	in use --anything else (error, Connection: close, the agent's
 *		connection ends first)--> closing
 *	pool --EOF, bytes, error (the server closed it), pool full--> closing
 *
 * So the server sees at most upstream_pool idle connections plus one per
 * request in flight.  Tool servers are fixed for the daemon's life (no
 * reload changes them), so a pool never serves another upstream.  A
 * request is never sent twice: one sent on a pooled connection the server
 * closed at that moment fails as an upstream failure (the server may have
 * read it and acted).
 *
 * Each connection is an owner of its own (its I/O counts there), because
 * it outlives the agent connections it serves.  Ordering hazard: its
 * handler can close the agent connection it serves, so it holds a count
 * of that connection while it runs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>

#include "creds.h"
#include "daemon.h"
#include "mcp_int.h"
#include "trail.h"

/* An upstream connection (struct mcp_conn's u is &s). */
struct mcp_up {
	struct ag_stream_owner own;
	struct ag_stream s;
	struct ag_list node;   /* in its pool while idle, else self-linked */
	struct mcp_conn *c;    /* whose request it carries; NULL: idle or closing */
	struct mcp_pool *pool; /* its tool server's */
};

/* A tool server's idle upstream connections, the newest last. */
struct mcp_pool {
	struct ag_list idle;
	unsigned int nidle;
};

static void upstream_event(struct ag_stream *s, enum ag_stream_ev ev);

int mcp_pools_new(struct ag_mcp *mcp, int nr_servers)
{
	if (!(mcp->pools = calloc(nr_servers, sizeof(*mcp->pools))))
		return -ENOMEM;
	for (int i = 0; i < nr_servers; i++)
		ag_list_init(&mcp->pools[i].idle);
	return 0;
}

static void up_release(struct ag_stream_owner *own)
{
	struct mcp_up *up = ag_container_of(own, struct mcp_up, own);

	up->s.l->mcp->upstreams_open--;
	ag_stream_fini(&up->s);
	free(up);
}

/* Closes an upstream connection that nobody uses: freed once its I/O is done. */
static void up_close(struct mcp_up *up)
{
	if (up->own.closing)
		return;
	if (!ag_list_empty(&up->node)) {
		ag_list_del(&up->node);
		up->pool->nidle--;
	}
	up->c = NULL;
	up->own.closing = true;
	if (!up->own.inflight)
		up_release(&up->own);
	else
		ag_stream_cancel(&up->s);
}

void mcp_pools_stop(struct ag_mcp *mcp)
{
	for (int i = 0; mcp->pools && i < mcp->l->d->conf.nr_servers; i++)
		while (!ag_list_empty(&mcp->pools[i].idle))
			up_close(ag_container_of(mcp->pools[i].idle.next, struct mcp_up, node));
}

json_t *ag_mcp_upstreams(const struct ag_loop *l)
{
	unsigned int idle = 0;

	for (int i = 0; l->mcp && l->mcp->pools && i < l->d->conf.nr_servers; i++)
		idle += l->mcp->pools[i].nidle;
	return json_pack("{s:i,s:i}", "open", l->mcp ? (int)l->mcp->upstreams_open : 0, "idle",
			 (int)idle);
}

/* Whether c's upstream can carry another request once its response ended. */
static bool up_reusable(const struct mcp_conn *c)
{
	const struct ag_stream *u = c->u;

	/* Bytes past the response, or a request not all sent: out of step.
	 * A server's SSE stream (GET, either transport) is not reused even
	 * when it ended cleanly: servers tie state to it. */
	return c->up_ready && c->r && c->r->up_reuse && c->r->call.verb != AG_MCP_VERB_GET &&
	       !c->legacy.stream && !u->eof && !u->failed && !u->in_len && !ag_stream_queued(u) &&
	       !u->send_armed && !u->shut_pending;
}

void mcp_upstream_done(struct mcp_conn *c, bool done)
{
	struct mcp_up *up;

	if (!c->u)
		return;
	up = ag_container_of(c->u, struct mcp_up, s);
	if (done && up_reusable(c) && up->pool->nidle < c->srv->upstream_pool) {
		up->c = NULL;
		ag_list_add_tail(&up->pool->idle, &up->node);
		up->pool->nidle++;
		/* Armed while idle, so a server that closes it is noticed at once. */
		ag_stream_read(&up->s);
	} else {
		up_close(up);
	}
	c->u = NULL;
	c->up_ready = false;
}

/* The newest idle connection of c's tool server, if any. */
static bool up_take(struct mcp_conn *c)
{
	struct mcp_pool *pool = &mcp_of(c)->pools[c->srv - c->l->d->conf.servers];
	struct mcp_up *up;

	if (ag_list_empty(&pool->idle))
		return false;
	up = ag_container_of(pool->idle.prev, struct mcp_up, node);
	ag_list_del(&up->node);
	pool->nidle--;
	up->c = c;
	c->u = &up->s;
	c->up_ready = true;
	return true;
}

void mcp_cred_wipe(struct mcp_conn *c)
{
	if (c->r->cred.value)
		OPENSSL_cleanse(c->r->cred.value, c->r->cred.len);
	free(c->r->cred.value);
	c->r->cred.value = NULL;
	c->r->cred.len = 0;
	c->r->cred.ready = false;
}

/*
 * "host[:port]", cut to cap as snprintf would, without a printf per call.
 * upstream_host keeps IPv6 brackets, so it goes into Host as it is.
 */
static void upstream_authority(const struct ag_server_conf *s, char *out, size_t cap)
{
	char port[8], *p = port + sizeof(port) - 1; /* ":65535" */
	size_t n;

	*p = '\0';
	if (s->upstream_port != (s->upstream_tls ? 443 : 80)) {
		p = ag_audit_u64(s->upstream_port, p);
		*--p = ':';
	}
	ag_strcpy_cut(out, cap, s->upstream_host);
	n = strlen(out);
	ag_strcpy_cut(out + n, cap - n, p);
}

/*
 * A head and a body written back to back go out as two sends when the
 * first is still in flight; with Nagle the second waits for an ACK the
 * peer delays (40 ms).  Messages here are whole when written: no delay.
 */
void mcp_no_delay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int upstream_start(struct mcp_conn *c)
{
	const struct ag_server_conf *srv = c->srv;
	struct ag_mcp *mcp = mcp_of(c);
	uint32_t mark = c->l->d->conf.mark;
	struct mcp_up *up;
	union {
		struct sockaddr sa;
		struct sockaddr_in sin;
		struct sockaddr_in6 sin6;
	} dst;
	socklen_t len;
	int fd, ret;

	len = ag_addr_sockaddr(srv->upstream_addr, srv->upstream_port, &dst.sa, sizeof(dst));
	fd = socket(dst.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark))) {
		ret = -errno;
		close(fd);
		return ret;
	}
	mcp_no_delay(fd);
	if (!(up = calloc(1, sizeof(*up)))) {
		close(fd);
		return -ENOMEM;
	}
	ag_stream_init(&up->s, c->l, &up->own, fd, "upstream");
	up->own.release = up_release;
	ag_list_init(&up->node);
	up->pool = &mcp->pools[srv - c->l->d->conf.servers];
	up->c = c;
	mcp->upstreams_open++;
	c->u = &up->s;
	c->u->event = upstream_event;
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
		.verb = c->r->call.verb,
		.target = c->r->call.fwd_target,
		.authority = host,
		.body_len = c->r->call.fwd_len,
	};
	struct ag_err err;
	size_t hlen = 0;
	int ret;

	upstream_authority(c->srv, host, sizeof(host));
	if (c->r->cred.value) {
		cred = (struct ag_http_header){ c->r->cred.name, strlen(c->r->cred.name),
						c->r->cred.value, c->r->cred.len };
		f.cred = &cred;
	}
	ret = ag_mcp_forward_head(&c->r->req.msg, &f, mcp->head, sizeof(mcp->head), &hlen, &err);
	mcp_cred_wipe(c);
	if (!ret)
		ret = ag_stream_write(c->u, mcp->head, hlen);
	/* The head held the secret: it is in the stream's queue now, not here. */
	OPENSSL_cleanse(mcp->head, hlen < sizeof(mcp->head) ? hlen : sizeof(mcp->head));
	if (ret || !c->r->call.fwd_len)
		return ret;
	return ag_stream_write(c->u, c->r->call.fwd_body, c->r->call.fwd_len);
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
	struct ag_cred_call call = {
		.operator= c->ac && c->ac->operator_name[0] ? c->ac->operator_name : c->agent,
		.chain = chain,
		.session = mcp_policy_session(c),
		.tool = c->r->call.tool[0] ? c->r->call.tool : NULL,
	};
	struct ag_err err = { 0 };
	char msg[320];
	int ret;

	if (c->r->cred.ready)
		return 0;
	/* The act claim names the calling agent and who delegated to it (a
	 * root agent's connection carries no chain: it is alone in it). */
	if (c->srv->cred == AG_CRED_ASSERTION && c->dg) {
		for (size_t i = 0; i < c->dg->n; i++)
			chain[i] = c->dg->name[i];
		call.chain_len = c->dg->n;
	} else {
		chain[0] = c->agent;
		call.chain_len = 1;
	}
	ret = ag_creds_header(mcp->creds, c->srv, &call, &c->r->cred.name, &c->r->cred.value,
			      &c->r->cred.len, &c->r->cred.gen, &err);
	if (!ret) {
		c->r->cred.ready = true;
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
	mcp_refuse(c, 503, AG_JSONRPC_INTERNAL_ERROR, msg);
	return -1;
}

void mcp_request_forward(struct mcp_conn *c)
{
	int ret;

	if (cred_fetch(c))
		return;
	c->state = MC_RESPONSE;
	/* An agent that closes an open SSE stream must be noticed. */
	ag_stream_read(&c->a);
	if (!c->r->resp_init) {
		struct ag_err err;

		if (ag_http_parser_init(&c->r->resp, false, NULL, &err)) {
			mcp_conn_close(c, "error", err.msg);
			return;
		}
		c->r->resp_init = true;
	}
	if (!c->u && !up_take(c) && (ret = upstream_start(c))) {
		c->l->d->stats.upstream_failed++;
		mcp_refuse(c, 502, AG_JSONRPC_INTERNAL_ERROR, "the tool server cannot be reached");
		return;
	}
	if (!c->up_ready)
		return; /* upstream_event(CONNECTED) sends it */
	if ((ret = forward_request(c)))
		mcp_conn_close(c, "error", "could not forward the request");
	else
		ag_stream_read(c->u);
}

/* A token request finished: every held call asks again (and gets the
 * token, or the reason there is none). */
void mcp_cred_woken(struct ag_waitq *q)
{
	struct ag_list held;

	/* mcp_request_forward may hold a call again: take the list out first. */
	ag_list_init(&held);
	while (!ag_list_empty(&q->waiters)) {
		struct ag_list *pos = q->waiters.next;

		ag_list_del(pos);
		ag_list_add_tail(&held, pos);
	}
	while (!ag_list_empty(&held)) {
		struct mcp_conn *c = ag_container_of(held.next, struct mcp_conn, wait);

		ag_list_del(&c->wait);
		mcp_request_forward(c);
	}
}

/* The upstream refused the gateway's credential: an OAuth token is renewed
 * once, the cause is audited, and the agent gets an error, not the 401. */
void mcp_credential_refused(struct mcp_conn *c)
{
	char msg[256];

	ag_creds_refused(mcp_of(c)->creds, c->srv, c->r->cred.gen);
	snprintf(c->error, sizeof(c->error), "upstream refused the gateway's credential (HTTP %d)",
		 c->r->reply.status);
	mcp_audit_cred_refused(c);
	snprintf(msg, sizeof(msg),
		 "tool server %s refused the gateway's credential (HTTP %d); it is being renewed, "
		 "retry the call",
		 c->srv->name, c->r->reply.status);
	mcp_refuse(c, 502, AG_JSONRPC_INTERNAL_ERROR, msg);
}

/* c's upstream, in use: what it says is about c's request. */
static void upstream_conn_event(struct mcp_conn *c, struct ag_stream *s, enum ag_stream_ev ev)
{
	switch (ev) {
	case AG_STREAM_CONNECTED:
		c->up_ready = true;
		if (c->state == MC_RESPONSE) {
			if (forward_request(c))
				mcp_conn_close(c, "error", "could not forward the request");
			else
				ag_stream_read(c->u);
		}
		return;
	case AG_STREAM_READ:
	case AG_STREAM_EOF:
		ag_watch_touch(&c->watch);
		if (c->state == MC_RESPONSE)
			mcp_resp_parse(c);
		else
			mcp_upstream_done(c, false); /* nothing asked: out of step */
		return;
	case AG_STREAM_ERROR:
		if (!c->up_ready) {
			c->l->d->stats.upstream_failed++;
			snprintf(c->error, sizeof(c->error), "%s", s->why);
			mcp_refuse(c, 502, AG_JSONRPC_INTERNAL_ERROR, "the tool server cannot be reached");
			return;
		}
		if (c->state == MC_RESPONSE)
			mcp_response_fail(c, s->why);
		else
			mcp_conn_close(c, "error", s->why);
		return;
	case AG_STREAM_DRAINED:
	case AG_STREAM_SHUT:
		return;
	}
}

static void upstream_event(struct ag_stream *s, enum ag_stream_ev ev)
{
	struct mcp_up *up = ag_container_of(s, struct mcp_up, s);
	struct mcp_conn *c = up->c;

	/* Idle in the pool: the server closed it, or sent what nobody asked. */
	if (!c) {
		up_close(up);
		return;
	}
	/* The handler may close c: it stays until the handler returns. */
	c->own.inflight++;
	upstream_conn_event(c, s, ev);
	ag_stream_owner_put(&c->own);
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
	mcp_audit_cred_reload(l, ret, trigger, &err);
	return ret < 0 ? ret : 0;
}
