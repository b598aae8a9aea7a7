// SPDX-License-Identifier: GPL-2.0
/*
 * Legacy (2024-11-05) HTTP+SSE sessions on the MCP path (mcp_int.h): a
 * GET stream announces its message endpoint in an "endpoint" event; the
 * POSTs of the session are answered on that stream, so the gateway's own
 * answers wait there for an event boundary.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mcp_int.h"

void mcp_session_drop(struct session *s)
{
	ag_list_del(&s->node);
	json_decref(s->pending);
	json_decref(s->inject);
	free(s);
}

/*
 * The legacy session a POST names, by the id its query carries (decoded as
 * the server decodes it), when the session's stream is still open and is
 * the same agent's.
 */
struct session *mcp_legacy_find(struct mcp_conn *c, const char *sid)
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

/* Messages of the gateway's own, at an event boundary of a legacy stream. */
int mcp_inject_pending(struct mcp_conn *c)
{
	struct session *s = c->legacy.stream;
	size_t i;
	json_t *v;
	int ret = 0;

	if (!s || !json_array_size(s->inject) || c->state != MC_RESPONSE ||
	    c->r->reply.mode != RM_SSE || c->r->reply.held.len ||
	    !ag_sse_at_boundary(&c->r->reply.sse))
		return 0;
	json_array_foreach(s->inject, i, v)
		if ((ret = mcp_send_event(c, NULL, 0, v)))
			break;
	json_array_clear(s->inject);
	return ret;
}

/*
 * A legacy stream's "endpoint" event: the session's message endpoint, a
 * URI (relative or absolute) whose query's only parameter is sessionId.
 * One the gateway cannot read registers nothing, so its POSTs are refused.
 */
void mcp_register_session(struct mcp_conn *c, const char *data, size_t len)
{
	const char *p = data, *end = data + len, *auth;
	char sid[SESSION_ID_MAX];
	struct ag_target t;
	struct ag_err err;
	struct session *s;

	if (c->legacy.stream)
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
	c->legacy.stream = s;
	ag_list_add_tail(&mcp_of(c)->sessions, &s->node);
}

/* Legacy: answers travel on the session's GET stream; the POST itself is
 * only acknowledged, as the upstream would. */
int mcp_legacy_answer(struct mcp_conn *c)
{
	size_t i;
	json_t *v;
	int ret;

	json_array_foreach(c->r->call.extra, i,
			   v) if (mcp_list_append(&c->r->legacy.post->inject, v)) return -ENOMEM;
	ret = mcp_send_local(c, 202, NULL, c->r->call.keep_alive);
	if (mcp_inject_pending(c->r->legacy.post->stream))
		mcp_conn_close(c->r->legacy.post->stream, "error", "could not write to the agent");
	return ret;
}
