// SPDX-License-Identifier: GPL-2.0
/*
 * The response on the MCP path (mcp_int.h), passed on in one of three
 * modes chosen from its head (see mcp_conn.c): RM_STREAM as it comes,
 * RM_SSE event by event, RM_BUFFER whole.  What the gateway reads in the
 * messages is mcp_govern.c's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mcp_check.h"
#include "mcp_int.h"

static int send_chunk(struct mcp_conn *c, const void *data, size_t len)
{
	char prefix[AG_HTTP_CHUNK_PREFIX_MAX];
	size_t n;
	int ret;

	if (!len)
		return 0;
	if (!c->r->reply.chunked_down)
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
		.keep_alive = c->r->call.keep_alive && c->r->resp.msg.keep_alive,
	};
	struct ag_err err;
	size_t hlen;
	int ret;

	/* An HTTP/1.0 agent cannot take chunks: the close delimits instead. */
	if (framing == AG_HTTP_BODY_CHUNKED && c->r->req.msg.version_minor == 0) {
		e.framing = AG_HTTP_BODY_NONE;
		e.keep_alive = false;
	}
	c->r->reply.chunked_down = e.framing == AG_HTTP_BODY_CHUNKED;
	if (!e.keep_alive)
		c->closing_after = true;
	if ((ret = ag_http_serialize_head(&c->r->resp.msg, &e, mcp->head, sizeof(mcp->head), &hlen,
					  &err)))
		return ret;
	c->r->reply.head_sent = true;
	return ag_stream_write(&c->a, mcp->head, hlen);
}

/* RM_BUFFER at the end: filter, merge the gateway's answers, send whole. */
static int buffer_finish(struct mcp_conn *c)
{
	json_t *root = NULL;
	char *text = NULL;
	const void *out = c->r->reply.body.p;
	size_t len = c->r->reply.body.len;
	int changed = 0, ret;

	changed = len ? mcp_inspect_body(c, out, len, c->r->call.extra != NULL, &root) : 0;
	if (changed < 0) {
		json_decref(root);
		/* What cannot be read cannot be governed: it does not pass. */
		return changed == -EBADMSG ? -EPROTO : changed;
	}
	if (c->r->call.extra) {
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
		json_array_foreach(c->r->call.extra, i, v) json_array_append(all, v);
		json_decref(root);
		root = all;
		changed = 1;
		if (c->r->reply.status == 202 || c->r->reply.status == 204)
			c->r->resp.msg.status = c->r->reply.status = 200;
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

/* Held bytes are one event and what precedes it in the same read. */
#define HELD_MAX (SSE_EVENT_MAX + 64 * 1024)

static int flush_held(struct mcp_conn *c)
{
	int ret = send_chunk(c, c->r->reply.held.p, c->r->reply.held.len);

	c->r->reply.held.len = 0;
	return ret;
}

int mcp_send_event(struct mcp_conn *c, const char *id, size_t id_len, json_t *msg)
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

/* One complete SSE event: forward what was held, or its rewrite. */
static int sse_event(struct mcp_conn *c, const struct ag_sse_event *ev)
{
	json_t *root;
	int ret;

	if (ev->event_len == 8 && !memcmp(ev->event, "endpoint", 8)) {
		mcp_register_session(c, ev->data, ev->data_len);
		return flush_held(c);
	}
	if (ev->event_len != 7 || memcmp(ev->event, "message", 7))
		return flush_held(c);
	/* An empty event carries nothing (a priming event: only its id). */
	if (!ev->data_len)
		return flush_held(c);
	ret = mcp_inspect_body(c, ev->data, ev->data_len, false, &root);
	if (ret == -EBADMSG) {
		/* It might be a result or a list: what cannot be read does not pass. */
		c->r->reply.held.len = 0;
		ag_log(AG_LOG_WARN, "mcp", "agent=%s server=%s dropped=sse_event "
		       "reason=\"a message event that is not one JSON value\"%s",
		       c->agent, c->srv->name, mcp_owes_answer(c) ? " owed=yes" : "");
		return 0;
	}
	if (ret <= 0) {
		json_decref(root);
		return ret ? ret : flush_held(c);
	}
	/* The held bytes are this event (and maybe comments before it). */
	c->r->reply.held.len = 0;
	ret = mcp_send_event(c, ev->id, ev->id_len, root);
	json_decref(root);
	return ret;
}

static int sse_feed(struct mcp_conn *c, const uint8_t *data, size_t len)
{
	struct ag_sse_event ev;
	int ret;

	do {
		ssize_t n = ag_sse_parse(&c->r->reply.sse, data, len, &ev);

		if (n < 0)
			return (int)n;
		if ((ret = ag_buf_put(&c->r->reply.held, data, n, HELD_MAX)))
			return ret;
		data += n;
		len -= n;
		if (ev.type == AG_SSE_EV_EVENT && (ret = sse_event(c, &ev)))
			return ret;
	} while (ev.type != AG_SSE_EV_NEED_MORE);
	/* Comments and blank lines go on at once: keep-alives must not wait. */
	if (ag_sse_at_boundary(&c->r->reply.sse) && c->r->reply.held.len && (ret = flush_held(c)))
		return ret;
	return mcp_inject_pending(c);
}

static int response_head(struct mcp_conn *c)
{
	const struct ag_http_msg *m = &c->r->resp.msg;
	const struct ag_http_header *h;
	struct ag_err err;

	c->r->reply.status = m->status;
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
	    (ag_mcp_content_type_is(m, "application/json") ||
	     ag_mcp_content_type_is(m, "text/event-stream")))
		return -EPROTO;
	if (ag_mcp_content_type_is(m, "text/event-stream")) {
		c->r->reply.mode = RM_SSE;
		if (ag_sse_parser_init(&c->r->reply.sse, SSE_EVENT_MAX, &err))
			return -ENOMEM;
		c->r->reply.sse_init = true;
		return send_resp_head(c, AG_HTTP_BODY_CHUNKED, 0);
	}
	if (c->r->call.extra || ag_mcp_content_type_is(m, "application/json")) {
		c->r->reply.mode = RM_BUFFER;
		return 0;
	}
	c->r->reply.mode = RM_STREAM;
	if (m->framing == AG_HTTP_BODY_LENGTH || m->framing == AG_HTTP_BODY_NONE)
		return send_resp_head(c, m->framing, m->content_length);
	return send_resp_head(c, AG_HTTP_BODY_CHUNKED, 0);
}

static int response_body(struct mcp_conn *c, const uint8_t *data, size_t len)
{
	switch (c->r->reply.mode) {
	case RM_SSE:
		return sse_feed(c, data, len);
	case RM_BUFFER:
		return ag_buf_put(&c->r->reply.body, data, len, ag_http_default_limits.max_body);
	case RM_STREAM:
		return send_chunk(c, data, len);
	}
	return 0;
}

static int response_end(struct mcp_conn *c)
{
	int ret = 0;

	if (c->r->reply.mode == RM_BUFFER)
		return buffer_finish(c);
	if (c->r->reply.mode == RM_SSE) {
		size_t i;
		json_t *v;

		/* A stream cut inside an event: pass on what was held anyway. */
		if ((ret = flush_held(c)))
			return ret;
		json_array_foreach(c->r->call.extra, i,
				   v) if ((ret = mcp_send_event(c, NULL, 0, v))) return ret;
	}
	if (c->r->reply.chunked_down)
		ret = ag_stream_write(&c->a, AG_HTTP_CHUNK_LAST, strlen(AG_HTTP_CHUNK_LAST));
	return ret;
}

void mcp_response_fail(struct mcp_conn *c, const char *why)
{
	/* Before the head went out the agent can still get a clean error. */
	if (!c->r->reply.head_sent) {
		snprintf(c->error, sizeof(c->error), "%s", why);
		mcp_refuse(c, 502, AG_JSONRPC_INTERNAL_ERROR,
			   "the tool server's response was invalid");
		return;
	}
	mcp_conn_close(c, "error", why);
}

/* MC_RESPONSE: parses the upstream's bytes and passes them on. */
void mcp_resp_parse(struct mcp_conn *c)
{
	struct ag_http_event ev;

	if (mcp_result_hold(c))
		return;
	while (c->state == MC_RESPONSE) {
		ssize_t n;
		int ret = 0;

		/* Backpressure: a slow agent stops the upstream's reads. */
		if (ag_stream_queued(&c->a) > AG_STREAM_HIGH_WATER)
			return;
		if (!c->u)
			return;
		n = ag_http_parse(&c->r->resp, ag_stream_data(c->u), c->u->in_len, &ev);
		if (n < 0) {
			char msg[192];

			snprintf(msg, sizeof(msg), "upstream: %s",
				 ag_http_error_name(c->r->resp.error));
			mcp_response_fail(c, msg);
			return;
		}
		ag_stream_consume(c->u, n);
		switch (ev.type) {
		case AG_HTTP_EV_NEED_MORE:
			if (c->u->eof) {
				if (ag_http_parse_eof(&c->r->resp, &ev) ||
				    ev.type != AG_HTTP_EV_END) {
					mcp_response_fail(c, "upstream: response truncated");
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
			mcp_credential_refused(c);
			return;
		}
		if (ret) {
			mcp_response_fail(
			    c, ret == -E2BIG	? "upstream: response over the gateway's limit"
			       : ret == -EPROTO ? "upstream: response the gateway cannot inspect"
						: "upstream: response could not be passed on");
			return;
		}
		if (c->state == MC_CLOSING)
			return;
		if (ev.type == AG_HTTP_EV_END || (ev.type == AG_HTTP_EV_NEED_MORE && c->u->eof)) {
			if (c->r->reply.status < 200)
				continue;
			if (!c->r->resp.msg.keep_alive)
				c->closing_after = true;
			else
				c->r->up_reuse = ev.type == AG_HTTP_EV_END; /* mcp_upstream_done */
			if ((ret = response_end(c))) {
				mcp_response_fail(
				    c, ret == -EPROTO
					   ? "upstream: a tools/list answer that cannot be read"
					   : "could not write to the agent");
				return;
			}
			mcp_req_next(c);
			return;
		}
	}
}
