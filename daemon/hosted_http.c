// SPDX-License-Identifier: GPL-2.0
/*
 * The Streamable HTTP side of a hosted server (hosted_int.h): what
 * agentgated's MCP path dials at the server's "upstream", as it dials any
 * tool server.  One thread per connection, requests one after another:
 *
 *	POST request       -> one line to the child, its answer as application/json
 *	POST notification  -> one line to the child, 202
 *	DELETE (session)   -> per_session: that child killed, 200
 *	GET                -> 405: no server-initiated stream
 *
 * A head over HEAD_MAX, a body over HOSTED_LINE_MAX, chunked bodies and
 * anything but one JSON object are refused; a child that cannot answer
 * gives the agent a JSON-RPC error (-32603), never a hang past
 * HOSTED_CALL_MS.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "hosted_int.h"
#include "http.h"
#include "jsonrpc.h"

#define HEAD_MAX 16384
#define IDLE_S 120 /* a keep-alive connection with nothing to say is closed */

struct req {
	char method[8];
	char sid[HOSTED_SID_LEN + 1]; /* Mcp-Session-Id, "" when absent */
	size_t head_len, body_len;
	bool chunked, close;
};

struct reply {
	int status;
	const char *sid; /* Mcp-Session-Id to send, or NULL */
	json_t *body;	 /* NULL: none */
};

static bool send_all_fd(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

static bool send_reply(int fd, const struct reply *r)
{
	char *body = r->body ? json_dumps(r->body, JSON_COMPACT) : NULL;
	size_t blen = body ? strlen(body) : 0;
	char head[512];
	int n = snprintf(
	    head, sizeof(head), "HTTP/1.1 %d %s\r\n%s%s%s%sContent-Length: %zu\r\n%s\r\n",
	    r->status, ag_http_reason(r->status), body ? "Content-Type: application/json\r\n" : "",
	    r->sid ? "Mcp-Session-Id: " : "", r->sid ? r->sid : "", r->sid ? "\r\n" : "", blen,
	    r->status == 405 ? "Allow: POST, DELETE\r\n" : "");
	bool ok = n > 0 && (size_t)n < sizeof(head) && send_all_fd(fd, head, (size_t)n) &&
		  send_all_fd(fd, body ? body : "", blen);

	free(body);
	return ok;
}

static json_t *rpc_error(json_t *id, int code, const char *server, const char *why)
{
	char msg[800];

	snprintf(msg, sizeof(msg), "%s: %s", server, why);
	return ag_jsonrpc_error(id, code, msg, NULL);
}

/* One header line: the few fields the bridge reads. */
static int head_field(struct req *q, const char *l, size_t n)
{
	const char *colon = memchr(l, ':', n), *v;
	size_t name, vlen;

	if (!colon)
		return 400;
	name = (size_t)(colon - l);
	for (v = colon + 1; v < l + n && (*v == ' ' || *v == '\t'); v++)
		;
	vlen = (size_t)(l + n - v);
	while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
		vlen--;
	if (name == 14 && !strncasecmp(l, "content-length", 14)) {
		size_t len = 0;

		if (!vlen || vlen > 8)
			return 400;
		for (size_t i = 0; i < vlen; i++) {
			if (v[i] < '0' || v[i] > '9')
				return 400;
			len = len * 10 + (size_t)(v[i] - '0');
		}
		if (len > HOSTED_LINE_MAX)
			return 413;
		q->body_len = len;
	} else if (name == 17 && !strncasecmp(l, "transfer-encoding", 17)) {
		q->chunked = true;
	} else if (name == 14 && !strncasecmp(l, "mcp-session-id", 14)) {
		if (vlen > HOSTED_SID_LEN)
			return 404; /* not one of ours */
		memcpy(q->sid, v, vlen);
		q->sid[vlen] = '\0';
	} else if (name == 10 && !strncasecmp(l, "connection", 10)) {
		q->close = vlen == 5 && !strncasecmp(v, "close", 5);
	}
	return 0;
}

/*
 * The head in buf[0, end), end being where the first CRLF CRLF starts: every
 * CRLF before it ends a line, and no line reaches past it.  0 or an HTTP status.
 */
static int parse_head(struct req *q, const char *buf, size_t end)
{
	const char *p = buf, *stop = buf + end, *eol, *sp;
	bool first = true;
	int ret;

	memset(q, 0, sizeof(*q));
	q->head_len = end + 4;
	while (p < stop || first) {
		if (!(eol = memmem(p, (size_t)(stop - p), "\r\n", 2)))
			eol = stop;
		if (first) {
			sp = memchr(p, ' ', (size_t)(eol - p));
			if (!sp || sp == p || sp - p >= (long)sizeof(q->method))
				return 400;
			memcpy(q->method, p, (size_t)(sp - p));
			first = false;
		} else if ((ret = head_field(q, p, (size_t)(eol - p)))) {
			return ret;
		}
		p = eol == stop ? stop : eol + 2;
	}
	return q->chunked ? 501 : 0;
}

static void new_sid(char out[HOSTED_SID_LEN + 1])
{
	unsigned char r[HOSTED_SID_LEN / 2] = { 0 };

	if (getrandom(r, sizeof(r), 0) != sizeof(r))
		for (size_t i = 0; i < sizeof(r); i++)
			r[i] = (unsigned char)(ag_now_ns() >> (i % 8));
	for (size_t i = 0; i < sizeof(r); i++)
		snprintf(out + 2 * i, 3, "%02x", r[i]);
}

/*
 * A running child for s, with a reference: *slot's, else a new one put
 * there (*started), within the restart backoff.  Under s->lock.
 */
static struct hosted_child *running(struct hosted_srv *s, struct hosted_child **slot, bool *started,
				    char *why, size_t cap)
{
	uint64_t now = ag_now_ns();

	*started = false;
	if (*slot && hosted_child_ref(*slot))
		return *slot;
	hosted_child_put(*slot);
	*slot = NULL;
	if (s->closing) {
		snprintf(why, cap, "the gateway is stopping");
		return NULL;
	}
	if (now < s->not_before_ns) {
		snprintf(why, cap, "the server exited; restarting in %llu ms",
			 (unsigned long long)((s->not_before_ns - now) / 1000000));
		return NULL;
	}
	if (hosted_child_start(s, slot, why, cap))
		return NULL;
	*started = true;
	if (hosted_child_ref(*slot))
		return *slot;
	snprintf(why, cap, "the server exited as it started");
	return NULL;
}

/* A restarted shared child hears the first agent's initialize before anything else. */
static void replay_init(struct hosted_srv *s, struct hosted_child *c, json_t *msg)
{
	const char *m = json_string_value(json_object_get(msg, "method"));
	json_t *init, *r, *note;
	char why[256];

	if (!s->init || (m && !strcmp(m, "initialize")))
		return;
	init = json_deep_copy(s->init);
	r = init ? hosted_call(c, init, why, sizeof(why)) : NULL;
	note = json_pack("{s:s,s:s}", "jsonrpc", "2.0", "method", "notifications/initialized");
	if (r && note)
		hosted_send(c, note, why, sizeof(why));
	json_decref(r);
	json_decref(note);
	json_decref(init);
}

/*
 * The child a request goes to, with a reference, or NULL and the status:
 * shared, every session's is the one process; per_session, initialize
 * starts one and names the session after it.
 */
static struct hosted_child *route(struct hosted_srv *s, const struct req *q, json_t *msg,
				  char *sid_out, int *status, char *why, size_t cap)
{
	const char *m = json_string_value(json_object_get(msg, "method"));
	bool init = m && !strcmp(m, "initialize");
	struct hosted_child *c = NULL;
	bool started;

	pthread_mutex_lock(&s->lock);
	if (!s->h->per_session) {
		if ((c = running(s, &s->shared, &started, why, cap)) && init && !s->init)
			s->init = json_deep_copy(msg);
		if (init)
			new_sid(sid_out);
		pthread_mutex_unlock(&s->lock);
		if (c && started)
			replay_init(s, c, msg);
		return c;
	}
	for (uint32_t i = 0; i < s->h->max_sessions && init; i++) {
		struct hosted_session *se = &s->sessions[i];

		/* A session whose process exited frees its place for a new one. */
		if (se->sid[0] && hosted_child_ref(se->c)) {
			hosted_child_put(se->c);
		} else if (se->sid[0]) {
			hosted_child_put(se->c);
			memset(se, 0, sizeof(*se));
		}
	}
	for (uint32_t i = 0; i < s->h->max_sessions && !c; i++) {
		struct hosted_session *se = &s->sessions[i];

		if (init && !se->sid[0]) {
			if ((c = running(s, &se->c, &started, why, cap))) {
				new_sid(se->sid);
				strcpy(sid_out, se->sid);
			}
			*status = 200;
			pthread_mutex_unlock(&s->lock);
			return c;
		}
		if (!init && se->sid[0] && !strcmp(se->sid, q->sid)) {
			if (hosted_child_ref(se->c)) {
				c = se->c;
			} else {
				hosted_child_put(se->c);
				memset(se, 0, sizeof(*se));
			}
			break;
		}
	}
	pthread_mutex_unlock(&s->lock);
	if (!c) {
		*status = init ? 503 : q->sid[0] ? 404 : 400;
		snprintf(why, cap,
			 init	     ? "too many sessions (max_sessions)"
			 : q->sid[0] ? "no such session (its server exited or it was closed)"
				     : "expected an Mcp-Session-Id");
	}
	return c;
}

static void do_post(struct hosted_srv *s, const struct req *q, const char *body, struct reply *r,
		    char *sid)
{
	json_t *msg = json_loadb(body, q->body_len, JSON_REJECT_DUPLICATES, NULL), *id;
	struct hosted_child *c;
	char why[600];
	int status = 200;

	id = json_is_object(msg) ? json_object_get(msg, "id") : NULL;
	if (!json_is_object(msg)) {
		/* Fail closed: one message per request, as MCP 2025-06 has it. */
		r->status = 400;
		r->body = rpc_error(NULL, -32700, s->conf->name, "expected one JSON-RPC object");
	} else if (!(c = route(s, q, msg, sid, &status, why, sizeof(why)))) {
		r->status = status;
		r->body = rpc_error(id, -32603, s->conf->name, why);
	} else {
		bool request = id && json_object_get(msg, "method");

		r->body = request ? hosted_call(c, msg, why, sizeof(why)) : NULL;
		if (request && !r->body)
			r->body = rpc_error(id, -32603, s->conf->name, why);
		r->status = request ? 200 : hosted_send(c, msg, why, sizeof(why)) ? 503 : 202;
		hosted_child_put(c);
	}
	r->sid = sid[0] ? sid : NULL;
	json_decref(msg);
}

static void do_delete(struct hosted_srv *s, const struct req *q, struct reply *r)
{
	struct hosted_child *c = NULL;

	r->status = s->h->per_session ? 404 : 200;
	pthread_mutex_lock(&s->lock);
	for (uint32_t i = 0; s->h->per_session && q->sid[0] && i < s->h->max_sessions; i++)
		if (!strcmp(s->sessions[i].sid, q->sid)) {
			c = s->sessions[i].c;
			memset(&s->sessions[i], 0, sizeof(s->sessions[i]));
			r->status = 200;
			break;
		}
	pthread_mutex_unlock(&s->lock);
	if (c) {
		hosted_child_stop(c);
		hosted_child_put(c);
	}
}

/* Reads until buf holds a whole request; 0, an HTTP status, or -1 (closed, timed out). */
static int read_request(int fd, char *buf, size_t cap, size_t *len, struct req *q)
{
	char *end;
	int ret;

	for (;;) {
		ssize_t n;

		end = memmem(buf, *len, "\r\n\r\n", 4);
		if (end && (ret = parse_head(q, buf, (size_t)(end - buf))))
			return ret;
		if (end && *len >= q->head_len + q->body_len)
			return 0;
		if (!end && *len >= HEAD_MAX)
			return 431;
		if (*len == cap)
			return 413;
		n = recv(fd, buf + *len, cap - *len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		*len += (size_t)n;
	}
}

void hosted_serve(struct hosted_srv *s, int fd)
{
	size_t cap = HEAD_MAX + HOSTED_LINE_MAX, len = 0;
	struct timeval tv = { .tv_sec = IDLE_S };
	char *buf = malloc(cap);
	struct req q;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	while (buf) {
		char sid[HOSTED_SID_LEN + 1] = "";
		struct reply r = { 0 };
		int ret = read_request(fd, buf, cap, &len, &q);
		bool ok;

		if (ret < 0)
			break;
		if (ret)
			r.status = ret;
		else if (!strcmp(q.method, "POST"))
			do_post(s, &q, buf + q.head_len, &r, sid);
		else if (!strcmp(q.method, "DELETE"))
			do_delete(s, &q, &r);
		else
			r.status = 405;
		ok = send_reply(fd, &r);
		json_decref(r.body);
		/* A refused head leaves the stream unframed: nothing more is read from it. */
		if (!ok || ret || q.close)
			break;
		memmove(buf, buf + q.head_len + q.body_len, len - q.head_len - q.body_len);
		len -= q.head_len + q.body_len;
	}
	free(buf);
	close(fd);
}
