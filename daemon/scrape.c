// SPDX-License-Identifier: GPL-2.0
/*
 * The metrics endpoint, server side: one HTTP request per connection.
 *
 *	SCRAPE_READING --request head complete--> SCRAPE_WRITING --response sent--> closed
 *	      |                                         |
 *	      +--EOF, error, deadline, too long, stop---+--> SCRAPE_CLOSING
 *	                                                     (freed when no I/O is left)
 *
 * A scrape must never stall agents' calls: the response is rendered at once
 * from counters in memory, the request head is at most SCRAPE_MAX_REQUEST
 * bytes, every recv and send carries a linked timeout at one absolute
 * deadline SCRAPE_TIMEOUT_S after the accept, and at most
 * SCRAPE_MAX_CLIENTS are served at once; the rest are closed on accept.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "metrics.h"
#include "scrape.h"

#define SCRAPE_MAX_REQUEST 2048
#define SCRAPE_MAX_CLIENTS 8
#define SCRAPE_TIMEOUT_S 5

enum scrape_state {
	SCRAPE_READING,
	SCRAPE_WRITING,
	SCRAPE_CLOSING,
};

enum { OP_RECV = 1, OP_SEND };

struct scraper {
	struct ag_io io;
	struct ag_list node; /* in ag_scrape.clients */
	struct ag_loop *l;
	int fd;
	enum scrape_state state;
	unsigned int inflight;
	struct __kernel_timespec deadline; /* CLOCK_MONOTONIC, absolute */
	char *out;
	size_t out_len, out_off;
	size_t in_len;
	char in[SCRAPE_MAX_REQUEST];
};

struct ag_scrape {
	int fd; /* the listener, -1 when off */
	struct ag_list clients;
	unsigned int nr_clients;
};

static void scraper_release(struct scraper *s)
{
	ag_list_del(&s->node);
	s->l->scrape->nr_clients--;
	close(s->fd);
	free(s->out);
	free(s);
}

/* -> SCRAPE_CLOSING; freed now or when the last cancelled operation completes. */
static void scraper_close(struct scraper *s)
{
	if (s->state == SCRAPE_CLOSING)
		return;
	s->state = SCRAPE_CLOSING;
	if (s->inflight)
		ag_loop_cancel_fd(s->l, s->fd);
	else
		scraper_release(s);
}

/* op on s->fd, with its linked timeout, in one submit; false when closed instead. */
static struct io_uring_sqe *scraper_sqe(struct scraper *s, unsigned int op)
{
	struct io_uring_sqe *sqe;

	if (!ag_loop_reserve(s->l, 2)) {
		scraper_close(s);
		return NULL;
	}
	sqe = ag_loop_sqe(s->l, &s->io, op);
	s->inflight++;
	sqe->flags |= IOSQE_IO_LINK;
	io_uring_prep_link_timeout(ag_loop_sqe_untracked(s->l), &s->deadline, IORING_TIMEOUT_ABS);
	return sqe;
}

static void scraper_recv(struct scraper *s)
{
	struct io_uring_sqe *sqe = scraper_sqe(s, OP_RECV);

	if (sqe)
		io_uring_prep_recv(sqe, s->fd, s->in + s->in_len, sizeof(s->in) - s->in_len, 0);
}

static void scraper_send(struct scraper *s)
{
	struct io_uring_sqe *sqe;

	s->state = SCRAPE_WRITING;
	sqe = scraper_sqe(s, OP_SEND);
	if (sqe)
		io_uring_prep_send(sqe, s->fd, s->out + s->out_off, s->out_len - s->out_off,
				   MSG_NOSIGNAL);
}

/*
 * The response: status line, headers and body in one buffer.  body (len
 * bytes, consumed) NULL: an error, whose body is the status line's text.
 */
static void scraper_respond(struct scraper *s, const char *status, char *body, size_t len)
{
	static const char fmt[] = "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
				  "Connection: close\r\n\r\n";
	const char *type = body ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain";
	int head;

	if (!body)
		len = strlen(status) + 1;
	head = snprintf(NULL, 0, fmt, status, type, len);
	s->out = head < 0 ? NULL : malloc((size_t)head + len + 1);
	if (!s->out) {
		free(body);
		ag_log(AG_LOG_ERROR, "metrics", "error=\"response: out of memory\"");
		scraper_close(s);
		return;
	}
	snprintf(s->out, (size_t)head + 1, fmt, status, type, len);
	if (body)
		memcpy(s->out + head, body, len);
	else
		snprintf(s->out + head, len + 1, "%s\n", status);
	free(body);
	s->out_len = (size_t)head + len;
	s->out_off = 0;
	scraper_send(s);
}

/* A complete request head: only GET /metrics is served. */
static void scraper_handle(struct scraper *s)
{
	static const char path[] = "GET /metrics";
	size_t n = sizeof(path) - 1, len;
	bool is_get = s->in_len > 4 && !memcmp(s->in, "GET ", 4);
	char *body;

	if (s->in_len <= n || memcmp(s->in, path, n) || (s->in[n] != ' ' && s->in[n] != '?')) {
		ag_metrics_scrape_error(s->l->d->metrics);
		scraper_respond(s, is_get ? "404 Not Found" : "405 Method Not Allowed", NULL, 0);
		return;
	}
	body = ag_metrics_render(s->l->d->metrics, s->l->d, &len);
	if (!body) {
		ag_metrics_scrape_error(s->l->d->metrics);
		scraper_respond(s, "503 Service Unavailable", NULL, 0);
		return;
	}
	scraper_respond(s, "200 OK", body, len);
}

static bool head_complete(const struct scraper *s)
{
	return memmem(s->in, s->in_len, "\r\n\r\n", 4) || memmem(s->in, s->in_len, "\n\n", 2);
}

static void scraper_on_recv(struct scraper *s, int res)
{
	if (res <= 0) {
		/* ECANCELED: the deadline passed (our own cancels come only when closing). */
		if (res == -ECANCELED)
			ag_metrics_scrape_error(s->l->d->metrics);
		scraper_close(s);
		return;
	}
	s->in_len += res;
	if (head_complete(s)) {
		scraper_handle(s);
	} else if (s->in_len == sizeof(s->in)) {
		ag_metrics_scrape_error(s->l->d->metrics);
		scraper_respond(s, "431 Request Header Fields Too Large", NULL, 0);
	} else {
		scraper_recv(s);
	}
}

static void scraper_on_send(struct scraper *s, int res)
{
	if (res <= 0) {
		ag_metrics_scrape_error(s->l->d->metrics);
		scraper_close(s);
		return;
	}
	s->out_off += res;
	if (s->out_off < s->out_len)
		scraper_send(s);
	else
		scraper_close(s); /* one response per connection */
}

static void scraper_complete(struct ag_io *io, unsigned int op, const struct io_uring_cqe *cqe)
{
	struct scraper *s = ag_container_of(io, struct scraper, io);

	/* Still counted until the handler is done, so a close inside it cannot free s. */
	if (s->state != SCRAPE_CLOSING) {
		if (op == OP_RECV)
			scraper_on_recv(s, cqe->res);
		else
			scraper_on_send(s, cqe->res);
	}
	if (!--s->inflight && s->state == SCRAPE_CLOSING)
		scraper_release(s);
}

void ag_scrape_accept(struct ag_loop *l, int fd)
{
	struct ag_scrape *sc = l->scrape;
	struct timespec now;
	struct scraper *s;

	if (sc->nr_clients >= SCRAPE_MAX_CLIENTS || !(s = calloc(1, sizeof(*s)))) {
		ag_metrics_scrape_error(l->d->metrics);
		close(fd);
		return;
	}
	s->io.complete = scraper_complete;
	s->l = l;
	s->fd = fd;
	s->state = SCRAPE_READING;
	ag_list_add_tail(&sc->clients, &s->node);
	sc->nr_clients++;
	clock_gettime(CLOCK_MONOTONIC, &now);
	s->deadline.tv_sec = now.tv_sec + SCRAPE_TIMEOUT_S;
	s->deadline.tv_nsec = now.tv_nsec;
	scraper_recv(s);
}

static int scrape_listen(const struct ag_conf *c, struct ag_err *err)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len;
	char where[64];
	int fd, one = 1;

	ag_addr_fmt(c->metrics_addr, c->metrics_port, where, sizeof(where));
	if (ag_addr_is_v4(c->metrics_addr)) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(c->metrics_port);
		memcpy(&sin->sin_addr, c->metrics_addr + 12, 4);
		len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(c->metrics_port);
		memcpy(&sin6->sin6_addr, c->metrics_addr, 16);
		len = sizeof(*sin6);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ag_errf(err, errno, "metrics: listener %s: socket: %s", where,
			       strerror(errno));
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&ss, len) || listen(fd, SCRAPE_MAX_CLIENTS)) {
		int e = errno;

		close(fd);
		return ag_errf(err, e, "metrics: listener %s: %s", where, strerror(e));
	}
	return fd;
}

int ag_scrape_init(struct ag_loop *l, struct ag_err *err)
{
	struct ag_daemon *d = l->d;
	struct ag_scrape *sc = calloc(1, sizeof(*sc));
	int ret;

	if (!sc)
		return ag_errf(err, ENOMEM, "metrics: out of memory");
	sc->fd = -1;
	ag_list_init(&sc->clients);
	if ((ret = ag_metrics_new(&d->conf, &d->metrics, err))) {
		free(sc);
		return ret;
	}
	if (d->conf.metrics_port && (sc->fd = scrape_listen(&d->conf, err)) < 0) {
		ret = sc->fd;
		ag_metrics_free(d->metrics);
		d->metrics = NULL;
		free(sc);
		return ret;
	}
	l->scrape = sc;
	return 0;
}

int ag_scrape_fd(struct ag_loop *l)
{
	return l->scrape->fd;
}

void ag_scrape_stop(struct ag_loop *l)
{
	struct ag_list *pos, *next;

	for (pos = l->scrape->clients.next; pos != &l->scrape->clients; pos = next) {
		next = pos->next;
		scraper_close(ag_container_of(pos, struct scraper, node));
	}
}

void ag_scrape_fini(struct ag_loop *l)
{
	if (!l->scrape)
		return;
	if (l->scrape->fd >= 0)
		close(l->scrape->fd);
	ag_metrics_free(l->d->metrics);
	l->d->metrics = NULL;
	free(l->scrape);
	l->scrape = NULL;
}
