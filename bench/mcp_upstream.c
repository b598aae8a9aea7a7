// SPDX-License-Identifier: GPL-2.0
/*
 * mcp_upstream: the tool server behind bench/mcp_bench.sh, not a benchmark
 * itself (bench/run.sh skips it).
 *
 *	mcp_upstream [-p PORT]
 *
 * A single-threaded epoll HTTP/1.1 keep-alive server on 127.0.0.1 (PORT 0,
 * the default, picks a free one).  It prints "port N" on stdout once it
 * listens, then answers every POST whose body contains "tools/call" with a
 * fixed JSON-RPC result of about 200 bytes carrying the request's id; other
 * requests with an id get an empty result, notifications 202, other methods
 * 405.  Requests are parsed with the project's strict parser (lib/http.h),
 * so it costs what a careful server costs, not less.  SIGTERM or SIGINT ends it.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "http.h"

#define BODY_MAX (64 * 1024)
#define OUT_MAX (16 * 1024)
#define IN_MAX (16 * 1024)

struct conn {
	int fd;
	struct ag_http_parser p;
	bool is_post;
	size_t blen;
	char body[BODY_MAX + 1];
	size_t olen, ooff; /* response bytes not yet sent */
	bool want_out;	   /* EPOLLOUT armed */
	char out[OUT_MAX];
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = 1;
}

/* The request's "id" value as sent (number or string), or NULL. */
static const char *find_id(const char *body, size_t *len)
{
	const char *id = strstr(body, "\"id\"");
	const char *end;

	if (!id)
		return NULL;
	id += 4;
	id += strspn(id, " \t\r\n");
	if (*id != ':')
		return NULL;
	id++;
	id += strspn(id, " \t\r\n");
	if (*id == '"') {
		end = strchr(id + 1, '"');
		if (!end)
			return NULL;
		end++;
	} else {
		end = id + strcspn(id, ",} \t\r\n");
	}
	if (end == id || end - id > 64)
		return NULL;
	*len = end - id;
	return id;
}

static void queue(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void queue(struct conn *c, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(c->out + c->olen, sizeof(c->out) - c->olen, fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n < sizeof(c->out) - c->olen)
		c->olen += n;
}

static void answer(struct conn *c)
{
	static const char result_fmt[] =
		"{\"jsonrpc\":\"2.0\",\"id\":%.*s,\"result\":{\"content\":[{\"type\":\"text\","
		"\"text\":\"hello: a fixed tool result from the mcp_bench upstream, padded to"
		" about two hundred bytes of JSON-RPC\"}],\"isError\":false}}";
	char body[512];
	const char *id;
	size_t idlen = 0;
	int n;

	if (!c->is_post) {
		queue(c, "HTTP/1.1 405 Method Not Allowed\r\nAllow: POST\r\nContent-Length: 0\r\n\r\n");
		return;
	}
	c->body[c->blen] = '\0';
	id = find_id(c->body, &idlen);
	if (!id) {
		queue(c, "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
		return;
	}
	if (strstr(c->body, "tools/call"))
		n = snprintf(body, sizeof(body), result_fmt, (int)idlen, id);
	else
		n = snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\",\"id\":%.*s,\"result\":{}}",
			     (int)idlen, id);
	queue(c,
	      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
	      n, body);
}

static void conn_close(int ep, struct conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	ag_http_parser_release(&c->p);
	free(c);
}

/* Sends what is queued; false on a dead socket. */
static bool flush_out(int ep, struct conn *c)
{
	while (c->ooff < c->olen) {
		ssize_t n = send(c->fd, c->out + c->ooff, c->olen - c->ooff, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };

			if (!c->want_out)
				epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
			c->want_out = true;
			return true;
		}
		if (n <= 0)
			return false;
		c->ooff += n;
	}
	c->olen = c->ooff = 0;
	if (c->want_out) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
		c->want_out = false;
	}
	return true;
}

/* Reads and answers; false when the connection is done. */
static bool conn_read(int ep, struct conn *c)
{
	char buf[IN_MAX];

	for (;;) {
		ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
		const char *in = buf;
		struct ag_http_event ev;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0)
			return false;
		do {
			ssize_t used = ag_http_parse(&c->p, in, n, &ev);

			if (used < 0) {
				fprintf(stderr, "mcp_upstream: bad request: %s\n", c->p.err.msg);
				return false;
			}
			in += used;
			n -= used;
			if (ev.type == AG_HTTP_EV_HEAD) {
				c->is_post = c->p.msg.method_len == 4 &&
					     !memcmp(c->p.msg.method, "POST", 4);
				c->blen = 0;
			} else if (ev.type == AG_HTTP_EV_BODY) {
				size_t take = ev.len;

				if (take > BODY_MAX - c->blen)
					take = BODY_MAX - c->blen;
				memcpy(c->body + c->blen, ev.data, take);
				c->blen += take;
			} else if (ev.type == AG_HTTP_EV_END) {
				if (c->olen > OUT_MAX - 1024) {
					/* Deep pipelining: not what this bench sends. */
					fprintf(stderr, "mcp_upstream: too many requests queued\n");
					return false;
				}
				answer(c);
				if (!c->p.msg.keep_alive) {
					flush_out(ep, c);
					return false;
				}
			}
		} while (ev.type != AG_HTTP_EV_NEED_MORE);
		if (c->olen)
			break; /* answer before reading more: a client waits for it */
	}
	return flush_out(ep, c);
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sigaction act = { .sa_handler = on_signal };
	socklen_t sl = sizeof(sa);
	int lfd, ep, opt, one = 1;
	struct epoll_event lev;

	while ((opt = getopt(argc, argv, "p:")) != -1) {
		if (opt != 'p') {
			fprintf(stderr, "usage: mcp_upstream [-p PORT]\n");
			return 2;
		}
		sa.sin_port = htons(atoi(optarg));
	}
	sigaction(SIGTERM, &act, NULL);
	sigaction(SIGINT, &act, NULL);
	signal(SIGPIPE, SIG_IGN);

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 1024) ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl)) {
		perror("mcp_upstream: listen");
		return 1;
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	lev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = NULL };
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev)) {
		perror("mcp_upstream: epoll");
		return 1;
	}
	printf("port %u\n", ntohs(sa.sin_port));
	fflush(stdout);

	while (!stop) {
		struct epoll_event evs[64];
		int n = epoll_wait(ep, evs, 64, 500);

		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;

			if (!c) {
				int fd;

				while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >=
				       0) {
					struct epoll_event ev = { .events = EPOLLIN };
					struct ag_err err;

					c = malloc(sizeof(*c));
					if (!c || ag_http_parser_init(&c->p, true, NULL, &err)) {
						free(c);
						close(fd);
						continue;
					}
					c->fd = fd;
					c->blen = c->olen = c->ooff = 0;
					c->is_post = c->want_out = false;
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					ev.data.ptr = c;
					if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev))
						conn_close(ep, c);
				}
				continue;
			}
			if ((evs[i].events & EPOLLOUT) && !flush_out(ep, c)) {
				conn_close(ep, c);
				continue;
			}
			if ((evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !conn_read(ep, c))
				conn_close(ep, c);
		}
	}
	return 0;
}
