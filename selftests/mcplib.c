// SPDX-License-Identifier: GPL-2.0
/* The tool server, agent and environment of the MCP tests (mcplib.h). */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/tcp.h>

#include "http.h"
#include "mcplib.h"
#include "test.h"

/* ---- the tool server -------------------------------------------------- */

/* Each connection is served by a thread of its own, as a real server
 * serves keep-alive connections side by side (the gateway pools them). */
static __thread SSL *conn_ssl; /* the connection being served */

static const char tools_list_result[] =
	"{\"tools\":[{\"name\":\"echo\",\"inputSchema\":{\"type\":\"object\"}},"
	"{\"name\":\"secret\",\"inputSchema\":{\"type\":\"object\"}},"
	"{\"name\":\"add\",\"inputSchema\":{\"type\":\"object\"}}]}";

/* The answer to one request: tools/list lists t->list_result (default:
 * three tools), anything else gets t->call_result (default: a text result
 * "served"). */
static int answer_one(const struct tool *t, const char *msg, char *out, size_t cap)
{
	const char *id = strstr(msg, "\"id\":"), *end;
	char idbuf[64] = "null";

	if (!id)
		return 0; /* a notification or response: nothing to answer */
	id += 5;
	end = id + strcspn(id, ",}");
	snprintf(idbuf, sizeof(idbuf), "%.*s", (int)(end - id), id);
	if (strstr(msg, "\"tools/list\""))
		return snprintf(out, cap, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":%s}", idbuf,
				t->list_result ? t->list_result : tools_list_result);
	return snprintf(out, cap, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":%s}", idbuf,
			t->call_result ? t->call_result
				       : "{\"content\":[{\"type\":\"text\",\"text\":\"served\"}]}");
}

/* Answers a body: one message or a batch (split at top-level "},{"). */
static size_t answer_body(const struct tool *t, const char *body, char *out, size_t cap)
{
	size_t n = 0;

	if (body[0] != '[')
		return answer_one(t, body, out, cap);
	n += snprintf(out + n, cap - n, "[");
	for (const char *p = body + 1; *p && n < cap;) {
		const char *next = strstr(p, "},{");
		char one[2048];
		size_t len = next ? (size_t)(next - p + 1) : strlen(p) - 1;
		int w;

		snprintf(one, sizeof(one), "%.*s", (int)len, p);
		if (n > 1 && out[n - 1] != '[')
			n += snprintf(out + n, cap - n, ",");
		w = answer_one(t, one, out + n, cap - n);
		if (!w && n && out[n - 1] == ',')
			n--;
		n += w;
		if (!next)
			break;
		p = next + 2;
	}
	n += snprintf(out + n, cap - n, "]");
	return n;
}

static void record(struct tool *t, const char *head, size_t hlen, const char *body, size_t blen,
		   unsigned int segs)
{
	const char *id = strstr(body, "\"id\":");

	pthread_mutex_lock(&t->lock);
	if (id && t->nids < MAX_IDS)
		t->ids[t->nids++] = atoi(id + 5);
	if (t->nseen < MAX_SEEN) {
		struct seen *s = &t->seen[t->nseen++];

		snprintf(s->head, sizeof(s->head), "%.*s", (int)hlen, head);
		snprintf(s->body, sizeof(s->body), "%.*s", (int)blen, body);
		s->body_len = blen;
		s->segs = segs;
	}
	pthread_mutex_unlock(&t->lock);
}

bool send_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n <= 0)
			return false;
		buf += n;
		len -= n;
	}
	return true;
}

/* To the gateway, in the clear or over the connection's TLS. */
static void tool_send(struct tool *t, int fd, const char *buf, size_t len)
{
	if (conn_ssl)
		SSL_write(conn_ssl, buf, (int)len);
	else
		send_all(fd, buf, len);
}

static void reply(struct tool *t, int fd, const char *body)
{
	static __thread char out[BIG], msg[BIG];
	size_t n = answer_body(t, body, msg, sizeof(msg));
	/* Read once: the test may clear them while this thread sleeps. */
	const char *smuggle = t->smuggle;
	bool late = t->smuggle_late;
	int w;

	if (t->kind == REPLY_SSE_SPLIT && n) {
		/* One event in two chunks (and TCP segments), cut sse_split
		 * bytes into the message: the gateway must join them. */
		size_t cut = t->sse_split < n ? t->sse_split : n / 2;
		static const char ev[] = "event: message\ndata: ";

		w = snprintf(out, sizeof(out),
			     "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
			     "Transfer-Encoding: chunked\r\n\r\n%zx\r\n%s%.*s\r\n",
			     sizeof(ev) - 1 + cut, ev, (int)cut, msg);
		tool_send(t, fd, out, w);
		usleep(50000);
		w = snprintf(out, sizeof(out), "%zx\r\n%.*s\n\n\r\n0\r\n\r\n", n - cut + 2,
			     (int)(n - cut), msg + cut);
		tool_send(t, fd, out, w);
		return;
	}
	if (t->kind == REPLY_SSE_SLOW) {
		const char progress[] = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":"
					"\"notifications/progress\",\"params\":{\"progressToken\":1,"
					"\"progress\":1}}\n\n";
		char chunk[256];

		w = snprintf(out, sizeof(out),
			     "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
			     "Transfer-Encoding: chunked\r\n\r\n%zx\r\n%s\r\n",
			     sizeof(progress) - 1, progress);
		tool_send(t, fd, out, w);
		/* The result waits until the agent has the progress event: proof
		 * that the gateway does not hold the stream back. */
		for (t->progress_waited_ms = 0; t->progress_waited_ms < 5000 && !*t->progress_seen;
		     t->progress_waited_ms += 10)
			usleep(10000);
		w = snprintf(chunk, sizeof(chunk), "event: message\ndata: ");
		w = snprintf(out, sizeof(out), "%zx\r\n%s%.*s\n\n\r\n0\r\n\r\n", w + n + 2, chunk,
			     (int)n, msg);
		tool_send(t, fd, out, w);
		return;
	}
	if (!n) {
		w = snprintf(out, sizeof(out), "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
		tool_send(t, fd, out, w);
		return;
	}
	w = snprintf(out, sizeof(out),
		     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
		     "%s\r\n%.*s%s",
		     n, t->conn_close ? "Connection: close\r\n" : "", (int)n, msg,
		     smuggle && !late ? smuggle : "");
	tool_send(t, fd, out, w);
	if (smuggle && late) {
		usleep(100 * 1000);
		tool_send(t, fd, smuggle, strlen(smuggle));
	}
}

/* What a tool server says to a token it no longer accepts. */
static void reply_unauthorized(struct tool *t, int fd)
{
	static const char r[] = "HTTP/1.1 401 Unauthorized\r\n"
				"WWW-Authenticate: Bearer error=\"invalid_token\"\r\n"
				"Content-Type: application/json\r\nContent-Length: 25\r\n\r\n"
				"{\"error\":\"invalid_token\"}";

	tool_send(t, fd, r, sizeof(r) - 1);
}

static const char no_get[] = "HTTP/1.1 405 Method Not Allowed\r\nAllow: POST\r\n"
			     "Content-Length: 0\r\n\r\n";

/* The TCP segments with data that came in on fd so far. */
static unsigned int data_segs_in(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
		return 0;
	return ti.tcpi_data_segs_in;
}

/* One connection: requests parsed with the project's own strict parser. */
static void tool_conn(struct tool *t, int fd)
{
	static __thread char buf[BIG], body[TOOL_BODY_MAX];
	struct ag_http_parser p;
	struct ag_http_event ev;
	struct ag_err err;
	size_t blen = 0, hlen = 0;
	unsigned int segs_before = 0;
	char head[4096];

	if (ag_http_parser_init(&p, true, NULL, &err))
		return;
	if (t->tls) {
		conn_ssl = SSL_new(t->tls);
		/* A gateway that refuses the certificate ends here. */
		if (!conn_ssl || !SSL_set_fd(conn_ssl, fd) || SSL_accept(conn_ssl) != 1) {
			__atomic_add_fetch(&t->tls_failures, 1, __ATOMIC_SEQ_CST);
			goto out;
		}
	}
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;
		const char *in = buf;

		if (t->stop || t->close_idle)
			break;
		if (!(conn_ssl && SSL_pending(conn_ssl))) {
			if (poll(&pfd, 1, 100) < 0)
				break;
			if (!(pfd.revents & (POLLIN | POLLHUP)))
				continue;
		}
		n = conn_ssl ? SSL_read(conn_ssl, buf, sizeof(buf)) : recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			break;
		while (n >= 0) {
			ssize_t used = ag_http_parse(&p, in, n, &ev);

			if (used < 0)
				goto out;
			in += used;
			n -= used;
			if (ev.type == AG_HTTP_EV_HEAD) {
				const struct ag_http_msg *m = &p.msg;

				hlen = snprintf(head, sizeof(head), "%.*s %.*s\n", (int)m->method_len,
						m->method, (int)m->target_len, m->target);
				for (unsigned int i = 0; i < m->nfields && hlen < sizeof(head); i++)
					hlen += snprintf(head + hlen, sizeof(head) - hlen,
							 "%.*s: %.*s\n", (int)m->headers[i].name_len,
							 m->headers[i].name,
							 (int)m->headers[i].value_len,
							 m->headers[i].value);
				blen = 0;
			} else if (ev.type == AG_HTTP_EV_BODY) {
				if (blen + ev.len < sizeof(body) - 1) {
					memcpy(body + blen, ev.data, ev.len);
					blen += ev.len;
				}
			} else if (ev.type == AG_HTTP_EV_END) {
				unsigned int segs = data_segs_in(fd);

				body[blen] = '\0';
				record(t, head, hlen, body, blen, segs - segs_before);
				segs_before = segs;
				if (t->reject_auth[0] && strstr(head, t->reject_auth))
					reply_unauthorized(t, fd);
				else if (t->one_shot && !strncmp(head, "GET ", 4))
					tool_send(t, fd, no_get, sizeof(no_get) - 1);
				else
					reply(t, fd, body);
				if (t->one_shot || t->conn_close)
					goto out;
			} else {
				break;
			}
		}
	}
out:
	if (conn_ssl)
		SSL_free(conn_ssl);
	conn_ssl = NULL;
	ag_http_parser_release(&p);
}

struct tool_arg {
	struct tool *t;
	int fd;
};

static void *tool_conn_main(void *arg)
{
	struct tool_arg a = *(struct tool_arg *)arg;

	free(arg);
	tool_conn(a.t, a.fd);
	close(a.fd);
	__atomic_sub_fetch(&a.t->conns_open, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void *tool_main(void *arg)
{
	struct tool *t = arg;
	pthread_attr_t at;

	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	while (!t->stop) {
		struct tool_arg *a;
		pthread_t th;
		int fd = accept_timeout(t->lfd, 100);

		if (fd < 0)
			continue;
		__atomic_add_fetch(&t->conns_open, 1, __ATOMIC_SEQ_CST);
		__atomic_add_fetch(&t->conns_total, 1, __ATOMIC_SEQ_CST);
		if (!(a = malloc(sizeof(*a))) || (*a = (struct tool_arg){ t, fd },
						  pthread_create(&th, &at, tool_conn_main, a))) {
			free(a);
			close(fd);
			__atomic_sub_fetch(&t->conns_open, 1, __ATOMIC_SEQ_CST);
		}
	}
	pthread_attr_destroy(&at);
	return NULL;
}

int tool_start(struct tool *t, enum reply_kind kind)
{
	memset(t, 0, sizeof(*t));
	t->kind = kind;
	pthread_mutex_init(&t->lock, NULL);
	t->progress_seen = shared_alloc(sizeof(int));
	t->lfd = tcp_listen("127.0.0.1", 0, &t->port);
	if (t->lfd < 0)
		return -errno;
	return pthread_create(&t->th, NULL, tool_main, t) ? -EAGAIN : 0;
}

void tool_stop(struct tool *t)
{
	t->stop = true;
	pthread_join(t->th, NULL);
	/* Every connection's thread sees stop within its 100 ms poll. */
	for (int i = 0; i < 500 && __atomic_load_n(&t->conns_open, __ATOMIC_SEQ_CST); i++)
		usleep(10000);
	close(t->lfd);
}

void tool_seen_bearer(struct tool *t, int nth, char *out, size_t len)
{
	const char *h = NULL, *end;

	out[0] = '\0';
	if (nth >= 0 && nth < tool_nseen(t) && nth < MAX_SEEN)
		h = strstr(t->seen[nth].head, "Authorization: Bearer ");
	if (!h)
		return;
	h += strlen("Authorization: Bearer ");
	end = h + strcspn(h, "\r\n");
	snprintf(out, len, "%.*s", (int)(end - h), h);
}

int tool_nseen(struct tool *t)
{
	int n;

	pthread_mutex_lock(&t->lock);

	n = t->nseen;
	pthread_mutex_unlock(&t->lock);
	return n;
}

/* ---- the agent -------------------------------------------------------- */

int agent_exchange(void *arg)
{
	struct exchange *x = arg;
	struct sockaddr_storage ss;
	socklen_t sl = make_sockaddr(x->addr[0] ? x->addr : "127.0.0.1", x->port, &ss);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	const char *req = x->big ? x->big : x->request;
	size_t len = x->big ? x->big_len : strlen(x->request);

	/* One send: the gateway may well read all of it at once. */
	if (connect(fd, (struct sockaddr *)&ss, sl) || !send_all(fd, req, len)) {
		x->err = errno;
		return 1;
	}
	while (x->len < (int)sizeof(x->response) - 1) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, 5000) <= 0) {
			x->err = ETIMEDOUT;
			break;
		}
		n = recv(fd, x->response + x->len, sizeof(x->response) - 1 - x->len, 0);
		if (n <= 0) {
			if (n < 0)
				x->err = errno;
			break;
		}
		x->len += n;
		x->response[x->len] = '\0';
		if (x->progress_seen && strstr(x->response, "notifications/progress"))
			*x->progress_seen = 1;
	}
	close(fd);
	return 0;
}

/* An MCP POST as an agent sends it, ending the connection after the answer. */
void post(struct exchange *x, uint16_t port, const char *extra_headers, const char *body)
{
	memset(x, 0, sizeof(*x));
	x->port = port;

	snprintf(x->request, sizeof(x->request),
		 "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nContent-Type: application/json\r\n"
		 "Accept: application/json, text/event-stream\r\n%sContent-Length: %zu\r\n"
		 "Connection: close\r\n\r\n%s",
		 port, extra_headers, strlen(body), body);
}

/*
 * The tool server is "t", known to the agent as 127.0.0.1:orig_port
 * (nothing listens there: only the redirect makes it reachable) and
 * reached by the gateway at the thread's real port.
 */
int env_start_with(struct mcp_env *e, const char *suffix, enum reply_kind kind,
		   const char *agent_json, const char *more_json)
{
	return env_start_flags(e, suffix, kind, agent_json, more_json, 0);
}

int env_start_flags(struct mcp_env *e, const char *suffix, enum reply_kind kind,
		    const char *agent_json, const char *more_json, unsigned int flags)
{
	char extra[8192];
	int ret;

	if ((ret = tool_start(&e->tool, kind)))
		return ret;
	e->orig_port = free_port();
	snprintf(extra, sizeof(extra),
		 "\"tool_servers\": [{\"name\": \"t\", \"match\": {\"addresses\": [\"127.0.0.1\"], "
		 "\"ports\": [%u]}, \"upstream\": \"http://127.0.0.1:%u/mcp\"%s%s}], \"agents\": "
		 "[%s]%s%s",
		 e->orig_port, e->tool.port, e->server_json ? ", " : "",
		 e->server_json ? e->server_json : "", agent_json, more_json[0] ? ", " : "",
		 more_json);
	if ((ret = tdaemon_start(&e->d, suffix, extra, flags)))
		return ret;
	snprintf(e->agent_cg, sizeof(e->agent_cg), "%s/a", e->d.in.cg_agents);
	return 0;
}

int env_start(struct mcp_env *e, const char *suffix, enum reply_kind kind, const char *agent_json)
{
	return env_start_with(e, suffix, kind, agent_json, "");
}

void env_stop(struct mcp_env *e)
{
	tdaemon_destroy(&e->d);
	tool_stop(&e->tool);
}

struct exchange *run_agent(struct mcp_env *e, struct exchange *x)
{
	if (!ASSERT_EQ(run_in_cgroup(e->agent_cg, NOBODY_UID, agent_exchange, x), 0, "agent ran"))
		fprintf(stderr, "agent: connect to 127.0.0.1:%u (daemon port %u): %s\n", x->port,
			e->d.port, strerror(x->err));
	return x;
}

void call_tool(struct mcp_env *e, struct exchange *x, const char *tool, int id)
{
	char body[256];


	snprintf(body, sizeof(body),
		 "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":{\"name\":"
		 "\"%s\",\"arguments\":{}}}",
		 id, tool);
	post(x, e->orig_port, "", body);
	run_agent(e, x);
}
