// SPDX-License-Identifier: GPL-2.0
/*
 * The upstream side of the MCP path (mcp_int.h): the connection to the
 * tool server (made on the first forwarded request, kept alive with the
 * agent's, retired when the server closes an idle one), the forwarded
 * request, and the gateway's credential for it (creds.h), wiped once it is
 * in the send queue.
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

static void upstream_event(struct ag_stream *s, enum ag_stream_ev ev);

void mcp_cred_wipe(struct mcp_conn *c)
{
	if (c->cred.value)
		OPENSSL_cleanse(c->cred.value, c->cred.len);
	free(c->cred.value);
	c->cred.value = NULL;
	c->cred.len = 0;
	c->cred.ready = false;
}

/* upstream_host keeps IPv6 brackets, so it goes into Host as it is. */
static int upstream_authority(const struct ag_server_conf *s, char *out, size_t cap)
{
	if (s->upstream_port == (s->upstream_tls ? 443 : 80))
		return snprintf(out, cap, "%s", s->upstream_host);
	return snprintf(out, cap, "%s:%u", s->upstream_host, s->upstream_port);
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
	if (!(c->u = malloc(sizeof(*c->u)))) {
		close(fd);
		return -ENOMEM;
	}
	ag_stream_init(c->u, c->l, &c->own, fd, "upstream");
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
		.verb = c->call.verb,
		.target = c->call.fwd_target,
		.authority = host,
		.body_len = c->call.fwd_len,
	};
	struct ag_err err;
	size_t hlen = 0;
	int ret;

	upstream_authority(c->srv, host, sizeof(host));
	if (c->cred.value) {
		cred = (struct ag_http_header){ c->cred.name, strlen(c->cred.name), c->cred.value,
						c->cred.len };
		f.cred = &cred;
	}
	ret = ag_mcp_forward_head(&c->req.msg, &f, mcp->head, sizeof(mcp->head), &hlen, &err);
	mcp_cred_wipe(c);
	if (!ret)
		ret = ag_stream_write(c->u, mcp->head, hlen);
	/* The head held the secret: it is in the stream's queue now, not here. */
	OPENSSL_cleanse(mcp->head, hlen < sizeof(mcp->head) ? hlen : sizeof(mcp->head));
	if (ret || !c->call.fwd_len)
		return ret;
	return ag_stream_write(c->u, c->call.fwd_body, c->call.fwd_len);
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
		.tool = c->call.tool[0] ? c->call.tool : NULL,
	};
	struct ag_err err = { 0 };
	char msg[320];
	int ret;

	if (c->cred.ready)
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
	ret = ag_creds_header(mcp->creds, c->srv, &call, &c->cred.name, &c->cred.value,
			      &c->cred.len, &c->cred.gen, &err);
	if (!ret) {
		c->cred.ready = true;
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
	if (!c->resp_init) {
		struct ag_err err;

		if (ag_http_parser_init(&c->resp, false, NULL, &err)) {
			mcp_conn_close(c, "error", err.msg);
			return;
		}
		c->resp_init = true;
	}
	if (!c->u && (ret = upstream_start(c))) {
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

	ag_creds_refused(mcp_of(c)->creds, c->srv, c->cred.gen);
	snprintf(c->error, sizeof(c->error), "upstream refused the gateway's credential (HTTP %d)",
		 c->reply.status);
	mcp_audit_cred_refused(c);
	snprintf(msg, sizeof(msg),
		 "tool server %s refused the gateway's credential (HTTP %d); it is being renewed, "
		 "retry the call",
		 c->srv->name, c->reply.status);
	mcp_refuse(c, 502, AG_JSONRPC_INTERNAL_ERROR, msg);
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
		mcp_conn_close(c, "error", "upstream: closed twice with I/O in flight");
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
				mcp_conn_close(c, "error", "could not forward the request");
			else
				ag_stream_read(c->u);
		}
		return;
	case AG_STREAM_READ:
	case AG_STREAM_EOF:
		ag_watch_touch(&c->watch);
		if (c->state == MC_RESPONSE) {
			mcp_resp_parse(c);
		} else if (ev == AG_STREAM_EOF) {
			upstream_retire(c);
		}
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
