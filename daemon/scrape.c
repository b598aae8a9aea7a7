// SPDX-License-Identifier: GPL-2.0
/*
 * The metrics endpoint, server side: one HTTP request per connection
 * (client.h).
 *
 *	AG_CLIENT_READING --request head complete--> AG_CLIENT_WRITING --response sent--> closed
 *	      |                                            |
 *	      +--EOF, error, deadline, too long, stop------+--> AG_CLIENT_CLOSING
 *	                                                        (freed when no I/O is left)
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
#include <unistd.h>

#include "client.h"
#include "daemon.h"
#include "loop.h"
#include "metrics.h"
#include "scrape.h"

#define SCRAPE_MAX_REQUEST 2048
#define SCRAPE_MAX_CLIENTS 8
#define SCRAPE_TIMEOUT_S 5

struct scraper {
	struct ag_client c; /* first: client.h frees the whole when released */
	size_t in_len;
	char in[SCRAPE_MAX_REQUEST];
};

_Static_assert(offsetof(struct scraper, c) == 0, "client.h frees struct scraper");

struct ag_scrape {
	int fd; /* the listener, -1 when off */
	struct ag_clients clients;
};

static void scraper_recv(struct scraper *s)
{
	ag_client_recv(&s->c, s->in + s->in_len, sizeof(s->in) - s->in_len);
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
	char *out;
	int head;

	if (!body)
		len = strlen(status) + 1;
	head = snprintf(NULL, 0, fmt, status, type, len);
	out = head < 0 ? NULL : malloc((size_t)head + len + 1);
	if (!out) {
		free(body);
		ag_log(AG_LOG_ERROR, "metrics", "error=\"response: out of memory\"");
		ag_client_close(&s->c);
		return;
	}
	snprintf(out, (size_t)head + 1, fmt, status, type, len);
	if (body)
		memcpy(out + head, body, len);
	else
		snprintf(out + head, len + 1, "%s\n", status);
	free(body);
	ag_client_send(&s->c, out, (size_t)head + len);
}

/* A complete request head: only GET /metrics is served. */
static void scraper_handle(struct scraper *s)
{
	static const char path[] = "GET /metrics";
	size_t n = sizeof(path) - 1, len;
	bool is_get = s->in_len > 4 && !memcmp(s->in, "GET ", 4);
	char *body;

	if (s->in_len <= n || memcmp(s->in, path, n) || (s->in[n] != ' ' && s->in[n] != '?')) {
		ag_metrics_scrape_error(s->c.l->d->metrics);
		scraper_respond(s, is_get ? "404 Not Found" : "405 Method Not Allowed", NULL, 0);
		return;
	}
	body = ag_metrics_render(s->c.l->d->metrics, s->c.l->d, &len);
	if (!body) {
		ag_metrics_scrape_error(s->c.l->d->metrics);
		scraper_respond(s, "503 Service Unavailable", NULL, 0);
		return;
	}
	scraper_respond(s, "200 OK", body, len);
}

static bool head_complete(const struct scraper *s)
{
	return memmem(s->in, s->in_len, "\r\n\r\n", 4) || memmem(s->in, s->in_len, "\n\n", 2);
}

static void scraper_received(struct ag_client *c, int res)
{
	struct scraper *s = ag_container_of(c, struct scraper, c);

	if (res <= 0) {
		/* ECANCELED: the deadline passed (our own cancels come only when closing). */
		if (res == -ECANCELED)
			ag_metrics_scrape_error(s->c.l->d->metrics);
		ag_client_close(&s->c);
		return;
	}
	s->in_len += res;
	if (head_complete(s)) {
		scraper_handle(s);
	} else if (s->in_len == sizeof(s->in)) {
		ag_metrics_scrape_error(s->c.l->d->metrics);
		scraper_respond(s, "431 Request Header Fields Too Large", NULL, 0);
	} else {
		scraper_recv(s);
	}
}

static void scraper_sent(struct ag_client *c, int res)
{
	if (res <= 0)
		ag_metrics_scrape_error(c->l->d->metrics);
	ag_client_close(c); /* one response per connection */
}

static const struct ag_client_ops scraper_ops = {
	.received = scraper_received,
	.sent = scraper_sent,
};

void ag_scrape_accept(struct ag_loop *l, int fd)
{
	struct ag_clients *set = &l->scrape->clients;
	struct scraper *s;

	if (ag_clients_full(set) || !(s = calloc(1, sizeof(*s)))) {
		ag_metrics_scrape_error(l->d->metrics);
		close(fd);
		return;
	}
	ag_client_start(&s->c, set, l, fd, &scraper_ops);
	ag_client_deadline(&s->c, SCRAPE_TIMEOUT_S);
	scraper_recv(s);
}

static int scrape_listen(const struct ag_conf *c, struct ag_err *err)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t len;
	char where[64];
	int fd, one = 1;

	ag_addr_fmt(c->metrics_addr, c->metrics_port, where, sizeof(where));
	len =
	    ag_addr_sockaddr(c->metrics_addr, c->metrics_port, (struct sockaddr *)&ss, sizeof(ss));
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return ag_errf(err, errno, "metrics: listener %s: socket: %s", where,
			       strerror(errno));
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    ag_bind_wait(fd, (struct sockaddr *)&ss, len, 200) || listen(fd, SCRAPE_MAX_CLIENTS)) {
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
	ag_clients_init(&sc->clients, SCRAPE_MAX_CLIENTS);
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
	ag_clients_stop(&l->scrape->clients);
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
