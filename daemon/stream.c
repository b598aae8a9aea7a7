// SPDX-License-Identifier: GPL-2.0
/*
 * Buffered streams for the MCP path (see stream.h).
 *
 * At most one receive and one send are in flight per stream.  The receive
 * buffers (in, and net under TLS) exist only while bytes are on their
 * way, so an idle connection costs no 32 KiB: with nothing buffered and
 * the socket drained by the last receive, the stream waits with a poll
 * (no buffer), and the buffers are allocated when the poll says bytes
 * came.  A receive that filled its buffer is followed by another at once
 * (a bulk transfer pays no poll per buffer); should the peer pause right
 * then, that receive holds its buffer until the next byte or the owner's
 * idle timeout.  A buffer or send chunk "freed" goes to the loop's spares
 * (stream.h) while there is room, and the next stream to need one takes
 * it: a keep-alive connection costs no malloc of 48 KiB per request, an
 * idle one still holds nothing.  Ordering hazards:
 *  - a receive in flight owns its buffer until its completion: the
 *    buffers are freed only where a poll is armed (arm_poll) or in fini,
 *    when nothing is in flight; under TLS receives fill net, and an empty
 *    in goes after each pass of OpenSSL (tls_pump);
 *  - bytes not consumed yet (preloaded by the classifier, or kept by an
 *    owner that stops reading: backpressure) keep the buffer: the stream
 *    waits with a receive into its free room, not a poll;
 *  - an event handler may close the owner, and with it this stream: after
 *    every s->event() call the stream re-checks usable() before it touches
 *    the ring or its buffers again;
 *  - under TLS, reading can produce output (handshake messages, session
 *    tickets, alerts) and writing needs no input, so every place that runs
 *    OpenSSL flushes its output and kicks the send afterwards;
 *  - the chunk being sent is freed only by its send's completion, never
 *    while the kernel may still read it; a spare chunk or buffer is the
 *    loop's, so the stream forgets it as it gives it back (a wiped chunk
 *    is wiped first), and the loop's last stream to finish frees them,
 *    with the spare head blocks of the MCP path's HTTP parsers (http.h);
 *  - a send is not prepared when bytes are queued but once per loop turn,
 *    just before the ring is submitted (ag_stream_flush): a head and a
 *    body written back to back then leave in one send and one segment,
 *    not two, which halves the peer's wake-ups.  A stream waiting there
 *    sits in l->send_due; fini takes it off, so the flush never sees a
 *    freed stream, and the flush checks usable() as kick_send did.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "stream.h"
#include "http.h"
#include "loop.h"
#include "tls.h"

enum { OP_RECV = 1, OP_SEND, OP_CONNECT, OP_SHUTDOWN, OP_POLL };

/* The connect SQE reads the address when it is submitted, and its linked
 * timeout the timespec, both later than the caller returns. */
struct ag_stream_dial {
	struct __kernel_timespec ts;
	struct sockaddr_storage peer;
};

/* When the message cannot be allocated, the failure still says something. */
static const char why_oom[] = "out of memory";

#define CHUNK_SIZE (16 * 1024)
/* The queue never grows beyond this: a peer that stops reading is cut off. */
#define OUT_MAX (16u * 1024 * 1024)
#define LOW_WATER (64 * 1024)

void ag_stream_owner_put(struct ag_stream_owner *o)
{
	if (!--o->inflight && o->closing)
		o->release(o);
}

static void stream_complete(struct ag_io *io, unsigned int op, const struct io_uring_cqe *cqe);

void ag_stream_init(struct ag_stream *s, struct ag_loop *l, struct ag_stream_owner *owner, int fd,
		    const char *side)
{
	memset(s, 0, sizeof(*s));
	s->io.complete = stream_complete;
	s->l = l;
	s->owner = owner;
	s->fd = fd;
	s->side = side;
	ag_list_init(&s->send_due);
	if (!l->spares.streams++) {
		l->spares.in.size = AG_STREAM_IN_SIZE;
		l->spares.chunk.size = sizeof(struct ag_chunk) + CHUNK_SIZE;
	}
	s->counted = true;
}

/* A receive buffer (in or net), a spare one when the loop has one. */
static uint8_t *buf_get(struct ag_stream *s)
{
	return ag_spares_get(&s->l->spares.in);
}

static void buf_put(struct ag_stream *s, uint8_t *buf)
{
	ag_spares_put(&s->l->spares.in, buf);
}

/*
 * A credential sent upstream must not outlive its send in freed heap, nor
 * be left in a spare chunk.  Only chunks of the usual capacity are spares.
 */
static void chunk_free(const struct ag_stream *s, struct ag_chunk *c)
{
	if (s->wipe)
		OPENSSL_cleanse(c->data, c->len);
	if (c->cap == CHUNK_SIZE)
		ag_spares_put(&s->l->spares.chunk, c);
	else
		free(c);
}

void ag_stream_fini(struct ag_stream *s)
{
	struct ag_chunk *c, *next;

	ag_list_del(&s->send_due);
	if (s->tls)
		ag_tls_free(s->tls);
	for (c = s->head; c; c = next) {
		next = c->next;
		chunk_free(s, c);
	}
	buf_put(s, s->in);
	buf_put(s, s->net);
	free(s->dial);
	if (s->why != why_oom)
		free((char *)s->why);
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	s->tls = NULL;
	s->head = s->tail = NULL;
	s->in = s->net = NULL;
	s->dial = NULL;
	s->why = NULL;
	/* The loop's last stream: nobody will take the spares, they go, and
	 * the HTTP parsers' spare head blocks (http.h) of its thread too. */
	if (s->counted && !--s->l->spares.streams) {
		ag_spares_drain(&s->l->spares.in);
		ag_spares_drain(&s->l->spares.chunk);
		ag_http_spares_drain();
	}
	s->counted = false;
}

static bool usable(const struct ag_stream *s)
{
	return !s->owner->closing && !s->failed;
}

static void fail(struct ag_stream *s, int error, const char *why)
{
	char *msg;

	if (s->failed)
		return;
	s->failed = true;
	s->error = error;
	if (asprintf(&msg, "%s: %.180s", s->side, why ? why : strerror(error)) < 0)
		msg = NULL;
	s->why = msg ? msg : why_oom;
	if (!s->owner->closing)
		s->event(s, AG_STREAM_ERROR);
}

static struct io_uring_sqe *stream_sqe(struct ag_stream *s, unsigned int op)
{
	struct io_uring_sqe *sqe = ag_ring_sqe(&s->l->ring, &s->io, op);

	if (sqe)
		s->owner->inflight++;
	else
		fail(s, EBUSY, "the ring is full");
	return sqe;
}

static int queue(struct ag_stream *s, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	if (s->out_len + len > OUT_MAX)
		return -ENOBUFS;
	while (len) {
		struct ag_chunk *t = s->tail;
		size_t n;

		if (!t || t->len == t->cap) {
			size_t cap = len > CHUNK_SIZE ? len : CHUNK_SIZE;

			t = cap == CHUNK_SIZE ? ag_spares_get(&s->l->spares.chunk)
					      : malloc(sizeof(*t) + cap);
			if (!t)
				return -ENOMEM;
			t->next = NULL;
			t->off = t->len = 0;
			t->cap = cap;
			if (s->tail)
				s->tail->next = t;
			else
				s->head = t;
			s->tail = t;
		}
		n = t->cap - t->len < len ? t->cap - t->len : len;
		memcpy(t->data + t->len, p, n);
		t->len += n;
		s->out_len += n;
		p += n;
		len -= n;
	}
	if (s->out_len > AG_STREAM_HIGH_WATER)
		s->was_high = true;
	return 0;
}

/* Moves what OpenSSL produced into the send queue. */
static int tls_flush(struct ag_stream *s)
{
	const void *data;
	size_t n;
	int ret;

	while ((n = ag_tls_out(s->tls, &data))) {
		if ((ret = queue(s, data, n)))
			return ret;
		ag_tls_out_consume(s->tls, n);
	}
	return 0;
}

static void send_shutdown(struct ag_stream *s)
{
	struct io_uring_sqe *sqe;

	if (!(sqe = stream_sqe(s, OP_SHUTDOWN)))
		return;
	io_uring_prep_shutdown(sqe, s->fd, SHUT_WR);
	s->send_armed = true;
	s->shut_done = true;
}

/* Sends the head chunk now: only from ag_stream_flush. */
static void start_send(struct ag_stream *s)
{
	struct io_uring_sqe *sqe;
	struct ag_chunk *c = s->head;

	if (!usable(s) || s->send_armed || s->tcp_pending)
		return;
	if (!c) {
		if (s->shut_pending && !s->shut_done)
			send_shutdown(s);
		return;
	}
	if (!(sqe = stream_sqe(s, OP_SEND)))
		return;
	io_uring_prep_send(sqe, s->fd, c->data + c->off, c->len - c->off, MSG_NOSIGNAL);
	s->send_armed = true;
}

/* Something may be sendable: the send starts at the next flush. */
static void kick_send(struct ag_stream *s)
{
	if (!usable(s) || s->send_armed || s->tcp_pending || !ag_list_empty(&s->send_due))
		return;
	ag_list_add_tail(&s->l->send_due, &s->send_due);
}

void ag_stream_flush(struct ag_loop *l)
{
	/* start_send may fail a stream, and its owner may then free other
	 * streams: each is taken off the list before it is looked at. */
	while (!ag_list_empty(&l->send_due)) {
		struct ag_list *n = l->send_due.next;

		ag_list_del(n);
		start_send(ag_container_of(n, struct ag_stream, send_due));
	}
}

static void on_send(struct ag_stream *s, int res)
{
	struct ag_chunk *c = s->head;

	s->send_armed = false;
	if (!usable(s))
		return;
	if (res < 0) {
		if (res == -EINTR || res == -EAGAIN) {
			kick_send(s);
			return;
		}
		fail(s, -res, NULL);
		return;
	}
	c->off += res;
	s->out_len -= res;
	/* An emptied chunk goes, the tail too: an idle stream holds none. */
	if (c->off == c->len) {
		s->head = c->next;
		if (!s->head)
			s->tail = NULL;
		chunk_free(s, c);
	}
	if (s->was_high && s->out_len < LOW_WATER) {
		s->was_high = false;
		s->event(s, AG_STREAM_DRAINED);
		if (!usable(s))
			return;
	}
	kick_send(s);
}

static void on_shutdown(struct ag_stream *s, int res)
{
	s->send_armed = false;
	if (!usable(s))
		return;
	/* ENOTCONN: the peer is gone already; its side will tell how. */
	if (res < 0 && res != -ENOTCONN)
		fail(s, -res, NULL);
	else
		s->event(s, AG_STREAM_SHUT);
}

int ag_stream_write(struct ag_stream *s, const void *buf, size_t len)
{
	struct ag_err err;
	int ret;

	if (!usable(s) || s->shut_pending)
		return -EPIPE;
	if (!len)
		return 0;
	if (s->tls) {
		if (ag_tls_write(s->tls, buf, len, &err) < 0) {
			fail(s, EPROTO, err.msg);
			return -EPIPE;
		}
		ret = tls_flush(s);
	} else {
		ret = queue(s, buf, len);
	}
	if (ret) {
		fail(s, -ret, ret == -ENOBUFS ? "the peer does not read: write queue full" : NULL);
		return ret;
	}
	s->bytes_out += len;
	kick_send(s);
	return 0;
}

void ag_stream_shutdown(struct ag_stream *s)
{
	if (!usable(s) || s->shut_pending)
		return;
	s->shut_pending = true;
	if (s->tls && s->tls_up) {
		ag_tls_shutdown(s->tls);
		if (tls_flush(s)) {
			fail(s, ENOMEM, NULL);
			return;
		}
	}
	kick_send(s);
}

void ag_stream_consume(struct ag_stream *s, size_t n)
{
	s->in_off += n;
	s->in_len -= n;
	if (!s->in_len)
		s->in_off = 0;
}

/* The plaintext buffer, allocated when bytes come. */
static bool in_alloc(struct ag_stream *s)
{
	if (!s->in && !(s->in = buf_get(s))) {
		fail(s, ENOMEM, NULL);
		return false;
	}
	return true;
}

int ag_stream_preload(struct ag_stream *s, const void *buf, size_t len)
{
	if (len > AG_STREAM_IN_SIZE)
		return -E2BIG;
	if (s->tls) {
		if (ag_tls_feed(s->tls, buf, len))
			return -ENOBUFS;
		return 0;
	}
	if (!len)
		return 0;
	if (!in_alloc(s))
		return -ENOMEM;
	memcpy(s->in, buf, len);
	s->in_off = 0;
	s->in_len = len;
	s->bytes_in += len;
	return 0;
}

static size_t room(const struct ag_stream *s)
{
	return AG_STREAM_IN_SIZE - s->in_off - s->in_len;
}

static void compact(struct ag_stream *s)
{
	if (s->in && s->in_off && s->in_len)
		memmove(s->in, s->in + s->in_off, s->in_len);
	s->in_off = 0;
}

/*
 * Runs OpenSSL over the ciphertext fed so far: the handshake, then
 * decryption into s->in while there is room.  Returns 1 when plaintext
 * arrived, 0 when nothing did, -1 when the stream failed or closed.
 */
static int tls_pump(struct ag_stream *s)
{
	struct ag_err err;
	int got = 0, ret;

	if (!s->tls_up) {
		ret = ag_tls_handshake(s->tls, &err);
		if (tls_flush(s)) {
			fail(s, ENOMEM, NULL);
			return -1;
		}
		kick_send(s);
		if (ret == -EAGAIN)
			return 0;
		if (ret) {
			fail(s, EPROTO, err.msg);
			return -1;
		}
		s->tls_up = true;
		if (s->connecting) {
			s->connecting = false;
			kick_send(s);
			s->event(s, AG_STREAM_CONNECTED);
			if (!usable(s))
				return -1;
		}
	}
	if (!in_alloc(s))
		return -1;
	compact(s);
	while (room(s)) {
		ssize_t n = ag_tls_read(s->tls, s->in + s->in_len, room(s), &err);

		if (n == -EAGAIN)
			break;
		if (n == 0) {
			s->eof = true;
			break;
		}
		if (n < 0) {
			fail(s, EPROTO, err.msg);
			return -1;
		}
		s->in_len += n;
		s->bytes_in += n;
		got = 1;
	}
	if (tls_flush(s)) {
		fail(s, ENOMEM, NULL);
		return -1;
	}
	kick_send(s);
	/* Under TLS no receive writes to in: empty, it can go at once. */
	if (!s->in_len) {
		buf_put(s, s->in);
		s->in = NULL;
		s->in_off = 0;
	}
	return got;
}

/*
 * Waits for the peer's next bytes holding no buffer: what is buffered was
 * consumed and no receive is in flight, so the buffers can go.
 */
static void arm_poll(struct ag_stream *s)
{
	struct io_uring_sqe *sqe;

	buf_put(s, s->in);
	buf_put(s, s->net);
	s->in = s->net = NULL;
	s->in_off = 0;
	if (!(sqe = stream_sqe(s, OP_POLL)))
		return;
	/* An EOF or an error is readable too: the receive after tells which. */
	io_uring_prep_poll_add(sqe, s->fd, POLLIN);
	s->recv_armed = true;
}

static void recv_now(struct ag_stream *s)
{
	struct io_uring_sqe *sqe;

	if (s->tls) {
		if (!s->net && !(s->net = buf_get(s))) {
			fail(s, ENOMEM, NULL);
			return;
		}
	} else {
		if (!in_alloc(s))
			return;
		compact(s);
		if (!room(s))
			return; /* the owner consumes first: backpressure */
	}
	if (!(sqe = stream_sqe(s, OP_RECV)))
		return;
	if (s->tls)
		io_uring_prep_recv(sqe, s->fd, s->net, AG_STREAM_IN_SIZE, 0);
	else
		io_uring_prep_recv(sqe, s->fd, s->in + s->in_len, room(s), 0);
	s->recv_armed = true;
}

static void arm_recv(struct ag_stream *s)
{
	if (!usable(s) || s->recv_armed || s->eof)
		return;
	if (!s->in_len && !s->more)
		arm_poll(s);
	else
		recv_now(s);
}

void ag_stream_read(struct ag_stream *s)
{
	/* Plaintext may be waiting inside OpenSSL from an earlier full buffer. */
	if (s->tls && usable(s) && !s->eof) {
		int got = tls_pump(s);

		if (got < 0)
			return;
		if (got) {
			s->event(s, AG_STREAM_READ);
			return;
		}
	}
	arm_recv(s);
}

static void on_recv(struct ag_stream *s, int res)
{
	int got;

	s->recv_armed = false;
	if (!usable(s))
		return;
	if (res == -EINTR || res == -EAGAIN) {
		arm_recv(s);
		return;
	}
	if (res < 0) {
		fail(s, -res, NULL);
		return;
	}
	if (res == 0) {
		/* Under TLS an EOF without close_notify may be a truncation
		 * attack; HTTP framing tells the owner whether it matters. */
		s->eof = true;
		s->event(s, AG_STREAM_EOF);
		return;
	}
	if (!s->tls) {
		s->in_len += res;
		s->bytes_in += res;
		s->more = !room(s);
		s->event(s, AG_STREAM_READ);
		return;
	}
	s->more = res == AG_STREAM_IN_SIZE;
	if (ag_tls_feed(s->tls, s->net, res)) {
		fail(s, ENOBUFS, "TLS input over its bound");
		return;
	}
	got = tls_pump(s);
	if (got < 0)
		return;
	if (got)
		s->event(s, AG_STREAM_READ);
	else if (s->eof)
		s->event(s, AG_STREAM_EOF);
	else
		arm_recv(s);
}

/* Bytes came to a stream that waited without a buffer: receive them now. */
static void on_poll(struct ag_stream *s, int res)
{
	s->recv_armed = false;
	if (!usable(s))
		return;
	if (res < 0 && res != -EINTR && res != -EAGAIN) {
		fail(s, -res, NULL);
		return;
	}
	if (res >= 0)
		recv_now(s);
	else
		arm_poll(s);
}

static void on_connect(struct ag_stream *s, int res)
{
	s->tcp_pending = false;
	if (!usable(s))
		return;
	if (res < 0) {
		/* ECANCELED here means the linked timeout fired. */
		fail(s, res == -ECANCELED ? ETIMEDOUT : -res, NULL);
		return;
	}
	if (s->tls) {
		/* CONNECTED waits for the handshake: ClientHello goes out now. */
		if (tls_pump(s) < 0)
			return;
		arm_recv(s);
		return;
	}
	s->connecting = false;
	kick_send(s);
	s->event(s, AG_STREAM_CONNECTED);
}

static void stream_complete(struct ag_io *io, unsigned int op, const struct io_uring_cqe *cqe)
{
	struct ag_stream *s = ag_container_of(io, struct ag_stream, io);
	struct ag_stream_owner *o = s->owner;

	switch (op) {
	case OP_RECV:
		on_recv(s, cqe->res);
		break;
	case OP_SEND:
		on_send(s, cqe->res);
		break;
	case OP_SHUTDOWN:
		on_shutdown(s, cqe->res);
		break;
	case OP_CONNECT:
		on_connect(s, cqe->res);
		break;
	case OP_POLL:
		on_poll(s, cqe->res);
		break;
	}
	ag_stream_owner_put(o);
}

void ag_stream_connect(struct ag_stream *s, const struct sockaddr *sa, socklen_t len,
		       uint32_t timeout_ms)
{
	struct io_uring_sqe *sqe;

	if (len > sizeof(s->dial->peer)) {
		fail(s, EINVAL, "address too long");
		return;
	}
	if (!s->dial && !(s->dial = malloc(sizeof(*s->dial)))) {
		fail(s, ENOMEM, NULL);
		return;
	}
	s->connecting = s->tcp_pending = true;
	/* Both SQEs in one submit: a link never spans two io_uring_enter calls. */
	if (!ag_ring_reserve(&s->l->ring, 2)) {
		fail(s, EBUSY, "the ring is full");
		return;
	}
	if (!(sqe = stream_sqe(s, OP_CONNECT)))
		return;
	memcpy(&s->dial->peer, sa, len);
	io_uring_prep_connect(sqe, s->fd, (struct sockaddr *)&s->dial->peer, len);
	if (timeout_ms) {
		s->dial->ts.tv_sec = timeout_ms / 1000;
		s->dial->ts.tv_nsec = (long long)(timeout_ms % 1000) * 1000000;
		ag_ring_link_timeout(&s->l->ring, sqe, &s->dial->ts, 0);
	}
}

int ag_stream_tls(struct ag_stream *s, struct ag_tls *t)
{
	s->tls = t;
	/* Preloaded plaintext cannot exist yet: bytes before TLS are ciphertext. */
	if (s->in_len) {
		int ret = ag_tls_feed(t, s->in + s->in_off, s->in_len);

		s->in_len = s->in_off = 0;
		if (ret)
			return -ENOBUFS;
	}
	return 0;
}

void ag_stream_cancel(struct ag_stream *s)
{
	if (s->fd >= 0 && (s->recv_armed || s->send_armed || s->tcp_pending))
		ag_ring_cancel_fd(&s->l->ring, s->fd);
}
