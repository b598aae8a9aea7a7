// SPDX-License-Identifier: GPL-2.0
/*
 * The OAuth token thread's connection (lib/oauth_int.h): a non-blocking
 * socket it waits on with poll, so that every wait also watches the wake
 * eventfd, and TLS through tls.h's memory BIOs over it.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "oauth_int.h"

static bool stopping(struct ag_oauth *o)
{
	bool s;

	pthread_mutex_lock(&o->lock);
	s = o->stopping;
	pthread_mutex_unlock(&o->lock);
	return s;
}

void oauth_ring(int fd)
{
	uint64_t one = 1;

	/* Only fails when the counter is saturated: it is rung already. */
	if (fd >= 0 && write(fd, &one, sizeof(one)) < 0)
		return;
}

static void drain(int fd)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0)
		return; /* EAGAIN: someone else drained it; nothing lost, state is under lock */
}

/*
 * Sleeps until deadline or the wake eventfd rings; fd >= 0: or until fd
 * has events.  1: fd is ready; 0: deadline or woken (look again).
 */
int oauth_wait_for(struct ag_oauth *o, int fd, short events, uint64_t deadline)
{
	struct pollfd p[2] = {
		{ .fd = o->wake_fd, .events = POLLIN },
		{ .fd = fd, .events = events },
	};
	uint64_t now = ag_now_ns();
	int ms, n;

	if (now >= deadline)
		return 0;
	/* Round up: waking a little early would only spin. */
	ms = (int)((deadline - now + NS_PER_MS - 1) / NS_PER_MS);
	n = poll(p, fd >= 0 ? 2 : 1, ms);
	if (n <= 0)
		return 0; /* timeout, or EINTR: the caller looks again */
	if (p[0].revents)
		drain(o->wake_fd);
	return fd >= 0 && p[1].revents ? 1 : 0;
}

/* Waits for the socket within the request's deadline; -ETIMEDOUT, -ECANCELED (stop). */
static int conn_wait(struct conn *c, short events, struct ag_err *err)
{
	for (;;) {
		if (stopping(c->o))
			return ag_errf(err, ECANCELED, "OAuth token endpoint %s: stopped",
				       c->o->url);
		if (ag_now_ns() >= c->deadline)
			return ag_errf(err, ETIMEDOUT,
				       "OAuth token endpoint %s: no complete answer within %u ms",
				       c->o->url, c->o->timeout_ms);
		if (oauth_wait_for(c->o, c->fd, events, c->deadline) == 1)
			return 0;
	}
}

static const char *addr_str(const struct sockaddr_storage *ss, socklen_t len, char *buf, size_t cap)
{
	if (getnameinfo((const struct sockaddr *)ss, len, buf, (socklen_t)cap, NULL, 0,
			NI_NUMERICHOST))
		snprintf(buf, cap, "?");
	return buf;
}

/* Connects to the first address that answers. */
int oauth_conn_open(struct conn *c, struct ag_err *err)
{
	struct ag_oauth *o = c->o;
	char a[INET6_ADDRSTRLEN + 8];
	int e = 0, ret;

	for (int i = 0; i < o->naddrs; i++) {
		int fd =
		    socket(o->addrs[i].ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		socklen_t sl = sizeof(e);

		if (fd < 0)
			return ag_errf(err, errno, "OAuth token endpoint %s: socket: %s", o->url,
				       strerror(errno));
		/* The daemon's own traffic must not be redirected back to itself. */
		if (o->mark && setsockopt(fd, SOL_SOCKET, SO_MARK, &o->mark, sizeof(o->mark))) {
			e = errno;
			close(fd);
			return ag_errf(err, e, "OAuth token endpoint %s: SO_MARK: %s", o->url,
				       strerror(e));
		}
		c->fd = fd;
		if (connect(fd, (struct sockaddr *)&o->addrs[i], o->addr_lens[i]) &&
		    errno != EINPROGRESS) {
			e = errno;
		} else {
			ret = conn_wait(c, POLLOUT, err);
			if (ret) {
				close(fd);
				c->fd = -1;
				return ret;
			}
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl))
				e = errno;
			if (!e)
				return 0;
		}
		close(fd);
		c->fd = -1;
		addr_str(&o->addrs[i], o->addr_lens[i], a, sizeof(a));
	}
	return ag_errf(err, e, "OAuth token endpoint %s: connect to %s: %s", o->url, a,
		       strerror(e));
}

static int raw_send(struct conn *c, const void *buf, size_t len, struct ag_err *err)
{
	const char *p = buf;

	while (len) {
		ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
		int ret;

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (errno != EAGAIN && errno != EINTR)
			return ag_errf(err, errno, "OAuth token endpoint %s: send: %s", c->o->url,
				       strerror(errno));
		ret = conn_wait(c, POLLOUT, err);
		if (ret)
			return ret;
	}
	return 0;
}

/* >0 bytes, 0 at the end of the stream. */
static ssize_t raw_recv(struct conn *c, void *buf, size_t cap, struct ag_err *err)
{
	for (;;) {
		ssize_t n = recv(c->fd, buf, cap, 0);
		int ret;

		if (n >= 0)
			return n;
		if (errno != EAGAIN && errno != EINTR)
			return ag_errf(err, errno, "OAuth token endpoint %s: recv: %s", c->o->url,
				       strerror(errno));
		ret = conn_wait(c, POLLIN, err);
		if (ret)
			return ret;
	}
}

/* Sends the ciphertext TLS has queued. */
static int tls_flush(struct conn *c, struct ag_err *err)
{
	const void *p;
	size_t n;

	while ((n = ag_tls_out(c->tls, &p))) {
		int ret = raw_send(c, p, n, err);

		if (ret)
			return ret;
		ag_tls_out_consume(c->tls, n);
	}
	return 0;
}

/* tls.h's messages name the peer; ours name the endpoint too. */
static int tls_err(struct conn *c, int ret, struct ag_err *err)
{
	char why[sizeof(err->msg)];

	snprintf(why, sizeof(why), "%s", err->msg);
	return ag_errf(err, ret, "OAuth token endpoint %s: %s", c->o->url, why);
}

static int tls_feed(struct conn *c, const char *what, struct ag_err *err)
{
	ssize_t n = raw_recv(c, c->o->raw, sizeof(c->o->raw), err);

	if (n < 0)
		return (int)n;
	if (n == 0)
		return ag_errf(err, ECONNRESET, "OAuth token endpoint %s: connection closed %s",
			       c->o->url, what);
	if (ag_tls_feed(c->tls, c->o->raw, (size_t)n))
		return ag_errf(err, ENOBUFS, "OAuth token endpoint %s: TLS: too much input",
			       c->o->url);
	return 0;
}

int oauth_conn_tls(struct conn *c, struct ag_err *err)
{
	int ret;

	c->tls = ag_tls_new_client(c->o->ctx, c->o->host, err);
	if (!c->tls)
		return tls_err(c, err->code, err);
	for (;;) {
		int hs = ag_tls_handshake(c->tls, err);

		/* Whatever it queued goes out, an alert on failure included. */
		ret = tls_flush(c, err);
		if (hs && hs != -EAGAIN)
			return tls_err(c, hs, err);
		if (ret)
			return ret;
		if (!hs)
			return 0;
		ret = tls_feed(c, "during the TLS handshake", err);
		if (ret)
			return ret;
	}
}

int oauth_conn_send(struct conn *c, const void *buf, size_t len, struct ag_err *err)
{
	ssize_t n;

	if (!c->tls)
		return raw_send(c, buf, len, err);
	n = ag_tls_write(c->tls, buf, len, err);
	if (n < 0)
		return tls_err(c, (int)n, err);
	return tls_flush(c, err);
}

/* Plaintext: >0 bytes, 0 at the end of the stream (c->tls_closed: with close_notify). */
ssize_t oauth_conn_recv(struct conn *c, void *buf, size_t cap, struct ag_err *err)
{
	if (!c->tls)
		return raw_recv(c, buf, cap, err);
	for (;;) {
		ssize_t n = ag_tls_read(c->tls, buf, cap, err);
		ssize_t r;
		int ret;

		if (n > 0)
			return n;
		if (n == 0) {
			c->tls_closed = true;
			return 0;
		}
		if (n != -EAGAIN)
			return tls_err(c, (int)n, err);
		ret = tls_flush(c, err);
		if (ret)
			return ret;
		r = raw_recv(c, c->o->raw, sizeof(c->o->raw), err);
		if (r <= 0)
			return r;
		if (ag_tls_feed(c->tls, c->o->raw, (size_t)r))
			return ag_errf(err, ENOBUFS, "OAuth token endpoint %s: TLS: too much input",
				       c->o->url);
	}
}

void oauth_conn_close(struct conn *c)
{
	ag_tls_free(c->tls);
	c->tls = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}
