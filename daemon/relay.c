// SPDX-License-Identifier: GPL-2.0
/*
 * The byte relay: agent connection <-> original destination ("upstream").
 *
 * A connection goes
 *
 *	CONN_CONNECTING --connected--> CONN_RELAYING --both EOFs forwarded--> CONN_CLOSING
 *	       |                              |                                   ^
 *	       +--failed, timed out, stop-----+--reset, error, idle, stop---------+
 *
 * and each direction of it (HALF_UP: agent -> upstream, HALF_DOWN: upstream
 * -> agent) goes
 *
 *	HALF_RECV --data--> HALF_SEND --all sent, buffer returned--> HALF_RECV
 *	HALF_SEND --short or EAGAIN: rest spilled, buffer returned--> HALF_SEND
 *	HALF_RECV --ENOBUFS--> HALF_NOBUF --a buffer came back--> HALF_RECV
 *	HALF_RECV --EOF--> HALF_SHUTDOWN --shutdown(to, SHUT_WR) done--> HALF_DONE
 *
 * unless the kernel splices it (bpf/splice.bpf.c, relay_splice.c): then
 *
 *	HALF_IDLE --both sockets paired, `from` spliced--> HALF_SPLICED
 *	HALF_SPLICED --poll: `from` ended, or the verdict kept bytes--> HALF_DRAIN
 *	HALF_DRAIN --TCP counts: all it redirected reached `to`; EOF--> HALF_SHUTDOWN
 *	HALF_DRAIN --the same; kept bytes--> HALF_RECV (copied from then on)
 *	HALF_DRAIN --not yet: a timer, 1 ms doubling to 128 ms--> HALF_DRAIN
 *	HALF_SPLICED --poll: `from` reset--> closed, result=reset
 *
 * A connection is spliced once the upstream is connected and what the
 * classifier read (c->initial) was sent, when the instance has the splice
 * maps (relay_splice, agentgated(8)) and both sockets are still
 * established: the kernel takes nothing else into a socket hash.  Nothing
 * the relay does needs to see the bytes: their counts come from TCP at
 * close, the idle timeout asks TCP when the last byte went (the watch's
 * refresh), an EOF or a reset is seen by a poll of `from`,
 * and the EOF is passed on only once TCP's counts say that every byte
 * `from` received was written to `to`: a FIN must not overtake bytes still
 * in the kernel's backlog.  A half whose socket the map refuses is copied
 * as above; its partner may be spliced still.  So is the agent's half when
 * the classifier read part of what was queued (relay_conn_splice), and a
 * spliced half whose reader fell AG_SPLICE_BACKLOG behind: the verdict then
 * keeps every later skb on `from` (bpf/splice.bpf.c), and once `to` has all
 * it redirected, the daemon copies the rest, kept bytes first.
 * Limit: once `from` ended, a reset of it goes unseen until the other
 * direction ends or is idle (a poll would fire at once on the EOF it
 * already saw).
 *
 * Buffers come from one provided-buffer ring.  A recv picks a buffer only
 * when data is there (IORING_RECVSEND_POLL_FIRST), so an idle connection
 * holds none.  A direction holds at most one, from its recv completion
 * until one non-blocking send of it completed; what that send left over
 * moves to a heap spill (at most BUF_SIZE), so a reader that stalls holds
 * no pool buffer.  The next recv of a direction is armed only once all of
 * its data went out, which is the backpressure: a slow reader stops its
 * writer's recv, never the loop or other connections.
 *
 * Ordering hazards:
 *  - every SQE carrying a connection (or one of its halves) counts in
 *    c->inflight; the struct and its fds are released only at zero, so no
 *    completion ever finds freed memory and no cancel ever targets a reused
 *    fd number;
 *  - a completion handler holds its own count until it returns, so a close
 *    decided inside it never frees the connection under its feet;
 *  - the idle sweep (fair.h) closes a connection from outside any of its
 *    completions: conn_close is safe there too, since it frees only at
 *    inflight 0, and it stops the watch first, so no sweep sees it again;
 *  - returning a buffer can wake another half, possibly of the same
 *    connection, whose recv can fail and close it: every issuing function
 *    re-checks CONN_CLOSING.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admit.h"
#include "anomalies.h"
#include "daemon.h"
#include "fair.h"
#include "loop.h"
#include "metrics.h"
#include "relay.h"
#include "relay_int.h"
#include "subagent.h"
#include "trail.h"

#define BUF_GROUP 0
#define BUF_COUNT 256 /* a power of two: the kernel indexes the ring with a mask */
#define BUF_SIZE (16 * 1024)

static const char *const result_names[] = {
	[RESULT_OK] = "ok",
	[RESULT_CONNECT_FAILED] = "connect_failed",
	[RESULT_RESET] = "reset",
	[RESULT_ERROR] = "error",
	[RESULT_SHUTDOWN] = "shutdown",
	[RESULT_IDLE_TIMEOUT] = "idle_timeout",
};

/* The user-space cost of an idle connection. */
_Static_assert(sizeof(struct conn) <= 1024, "struct conn exceeds 1 KiB");

struct ag_relay {
	struct io_uring_buf_ring *br;
	unsigned char *bufs;
	/*
	 * Buffers in the ring as far as completions reaped so far tell: it
	 * overestimates while CQEs that took buffers are still unreaped, which
	 * only makes an -ENOBUFS recv retry once more, never wait forever.
	 */
	unsigned int free_bufs;
	struct ag_list conns;
	struct ag_list waiters; /* halves in HALF_NOBUF, oldest first */
	struct __kernel_timespec connect_ts;
	struct relay_kept *kept; /* the splice verdict's notices (relay_splice.c) */
};

const char *relay_fd_side(const struct conn *c, int fd)
{
	return fd == c->agent_fd ? "agent" : "upstream";
}

static void buf_put(struct ag_relay *r, uint16_t bid)
{
	io_uring_buf_ring_add(r->br, r->bufs + (size_t)bid * BUF_SIZE, BUF_SIZE, bid,
			      io_uring_buf_ring_mask(BUF_COUNT), 0);
	io_uring_buf_ring_advance(r->br, 1);
	r->free_bufs++;
	/* One buffer back, one waiter retried: never a herd, never a spin. */
	if (!ag_list_empty(&r->waiters)) {
		struct half *h = ag_container_of(r->waiters.next, struct half, wait);

		ag_list_del(&h->wait);
		relay_half_recv(h);
	}
}

/* The buffer a recv completion carries, if any, now counted as taken. */
static bool cqe_buf(struct ag_relay *r, const struct io_uring_cqe *cqe, uint16_t *bid)
{
	if (!(cqe->flags & IORING_CQE_F_BUFFER))
		return false;
	*bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
	r->free_bufs--;
	return true;
}

/* The connection's record (docs/audit.md "connect"). */
static void audit_close(struct conn *c, const char *dst, double ms, uint64_t up, uint64_t down,
			const char *error)
{
	struct ag_audit_agent agent;
	struct ag_audit_member f[] = {
		{ .key = "agent" }, /* below, once agent is filled in */
		AG_AM_S("dst", dst),
		AG_AM_S("result", result_names[c->result]),
		AG_AM_I("bytes_up", (long long)up),
		AG_AM_I("bytes_down", (long long)down),
		AG_AM_I("latency_us", (long long)(ms * 1000)),
		AG_AM_S("error", error),
	};

	ag_audit_agent_members(&agent, c->agent, &c->o, c->dg);
	f[0] = ag_audit_agent_member(&agent);
	ag_daemon_audit_members(c->l->d, "connect", f, sizeof(f) / sizeof(f[0]), NULL);
}

static void conn_release(struct conn *c)
{
	struct ag_daemon *d = c->l->d;
	char agent[8 * AG_NAME_LEN], comm_raw[AG_COMM_LEN + 1], comm[8 * AG_COMM_LEN];
	char dst[64], cause[128], err[256] = "", sub[AG_DELEGATION_PATH + 64] = "";
	double ms = (double)(ag_now_ns() - c->start_ns) / 1e6;
	/* Before the sockets close: TCP's counts go with them. */
	uint64_t up = relay_half_bytes(&c->half[HALF_UP]),
		 down = relay_half_bytes(&c->half[HALF_DOWN]);

	memcpy(comm_raw, c->o.comm, AG_COMM_LEN);
	comm_raw[AG_COMM_LEN] = '\0';
	if (c->error) {
		int n = snprintf(err, sizeof(err), " error=");

		snprintf(cause, sizeof(cause), "%s: %s", c->error_side, strerror(c->error));
		ag_logq(err + n, sizeof(err) - n, cause);
	}
	if (c->dg)
		ag_delegation_fields(c->dg, sub, sizeof(sub));
	ag_log(c->result == RESULT_OK || c->result == RESULT_SHUTDOWN ? AG_LOG_INFO : AG_LOG_WARN,
	       "conn",
	       "agent=%s cgroup_id=%llu pid=%u uid=%u comm=%s dst=%s bytes_up=%llu "
	       "bytes_down=%llu duration_ms=%.3f result=%s%s%s",
	       ag_logq(agent, sizeof(agent), c->agent), (unsigned long long)c->o.agent_cgroup_id,
	       c->o.tgid, c->o.uid, ag_logq(comm, sizeof(comm), comm_raw),
	       ag_addr_fmt(c->o.addr, c->o.port, dst, sizeof(dst)), (unsigned long long)up,
	       (unsigned long long)down, ms, result_names[c->result], sub, err);
	audit_close(c, dst, ms, up, down, c->error ? cause : NULL);
	relay_conn_flows_del(c);
	ag_fair_release(c->l, c->agent_fd);
	close(c->agent_fd);
	if (c->up_fd >= 0)
		close(c->up_fd);
	ag_list_del(&c->node);
	d->stats.conns_active--;
	ag_metrics_conn(d->metrics, c->agent, -1);
	free(c->initial);
	free(c->dg);
	free(c);
}

/*
 * CONN_* -> CONN_CLOSING.  The struct goes once the cancelled operations
 * have all completed (conn_put), at once if none is in flight.
 */
static void conn_close(struct conn *c)
{
	if (c->state == CONN_CLOSING)
		return;
	c->state = CONN_CLOSING;
	ag_watch_stop(&c->watch);
	for (int i = 0; i < 2; i++)
		ag_list_del(&c->half[i].wait);
	/*
	 * Anything but a clean end resets both peers: a FIN would let a reader
	 * that frames by EOF (HTTP/1.0, a file download) take a cut stream for
	 * a whole one.
	 */
	if (c->result != RESULT_OK) {
		ag_set_rst(c->agent_fd);
		if (c->up_fd >= 0)
			ag_set_rst(c->up_fd);
	}
	if (!c->inflight) {
		conn_release(c);
		return;
	}
	ag_ring_cancel_fd(&c->l->ring, c->agent_fd);
	if (c->up_fd >= 0)
		ag_ring_cancel_fd(&c->l->ring, c->up_fd);
}

/* The first cause of a close is the one logged. */
void relay_conn_fail(struct conn *c, enum conn_result result, const char *side, int error)
{
	if (c->state == CONN_CLOSING)
		return;
	c->result = result;
	c->error_side = side;
	c->error = error;
	conn_close(c);
}

static void conn_put(struct conn *c)
{
	if (!--c->inflight && c->state == CONN_CLOSING)
		conn_release(c);
}

struct io_uring_sqe *relay_conn_sqe(struct conn *c, struct ag_io *io, unsigned int op)
{
	struct io_uring_sqe *sqe = ag_ring_sqe(&c->l->ring, io, op);

	if (sqe)
		c->inflight++;
	else
		relay_conn_fail(c, RESULT_ERROR, "daemon", EBUSY);
	return sqe;
}

/* HALF_IDLE, HALF_NOBUF, HALF_SEND -> HALF_RECV */
void relay_half_recv(struct half *h)
{
	struct io_uring_sqe *sqe;

	if (h->c->state == CONN_CLOSING || !(sqe = relay_conn_sqe(h->c, &h->io, OP_RECV)))
		return;
	io_uring_prep_recv(sqe, h->from, NULL, BUF_SIZE, 0);
	sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BUF_GROUP;
	h->state = HALF_RECV;
}

static unsigned char *half_data(const struct half *h)
{
	return h->spill ? h->spill : h->c->l->relay->bufs + (size_t)h->bid * BUF_SIZE;
}

/* Gives back what held the bytes being sent. */
static void half_data_done(struct half *h)
{
	if (h->spill) {
		free(h->spill);
		h->spill = NULL;
	} else {
		buf_put(h->c->l->relay, h->bid);
	}
}

/*
 * HALF_RECV, HALF_SEND -> HALF_SEND: the rest of the data.  A pool buffer
 * is offered to the socket once, without waiting (MSG_DONTWAIT); only a
 * spill waits for a slow reader.  Were pool buffers to wait, BUF_COUNT
 * connections whose readers stall would pin the whole pool and starve
 * every other connection, of every agent.
 */
static void half_send(struct half *h)
{
	struct io_uring_sqe *sqe;

	h->state = HALF_SEND;
	if (h->c->state == CONN_CLOSING || !(sqe = relay_conn_sqe(h->c, &h->io, OP_SEND))) {
		half_data_done(h);
		return;
	}
	io_uring_prep_send(sqe, h->to, half_data(h) + h->off, h->len - h->off,
			   MSG_NOSIGNAL | (h->spill ? 0 : MSG_DONTWAIT));
}

/* Moves the unsent rest of a pool buffer to the heap and returns the buffer. */
static int half_spill(struct half *h)
{
	uint32_t rest = h->len - h->off;
	unsigned char *p = malloc(rest);
	uint16_t bid = h->bid;

	if (!p)
		return -ENOMEM;
	memcpy(p, half_data(h) + h->off, rest);
	h->spill = p;
	h->off = 0;
	h->len = rest;
	buf_put(h->c->l->relay, bid);
	return 0;
}

/* HALF_RECV -> HALF_SHUTDOWN: the peer's EOF, passed on; the other way keeps going. */
void relay_half_shutdown(struct half *h)
{
	struct io_uring_sqe *sqe;

	if (h->c->state == CONN_CLOSING || !(sqe = relay_conn_sqe(h->c, &h->io, OP_SHUTDOWN)))
		return;
	io_uring_prep_shutdown(sqe, h->to, SHUT_WR);
	h->state = HALF_SHUTDOWN;
}

static void half_on_recv(struct half *h, const struct io_uring_cqe *cqe)
{
	struct conn *c = h->c;
	struct ag_relay *r = c->l->relay;
	bool has_buf = cqe_buf(r, cqe, &h->bid);

	if (c->state == CONN_CLOSING || cqe->res <= 0) {
		if (has_buf)
			buf_put(r, h->bid);
		if (c->state == CONN_CLOSING)
			return;
	}
	switch (cqe->res) {
	case 0:
		relay_half_shutdown(h);
		return;
	case -ENOBUFS:
		if (r->free_bufs) {
			relay_half_recv(h);
		} else {
			if (ag_list_empty(&r->waiters))
				ag_log(AG_LOG_DEBUG, "relay_nobuf",
				       "msg=\"all %u buffers in flight, receives wait\"",
				       BUF_COUNT);
			h->state = HALF_NOBUF;
			ag_list_add_tail(&r->waiters, &h->wait);
		}
		return;
	case -EINTR:
	case -EAGAIN:
		relay_half_recv(h);
		return;
	case -ECONNRESET:
		relay_conn_fail(c, RESULT_RESET, relay_fd_side(c, h->from), -cqe->res);
		return;
	}
	if (cqe->res < 0 || !has_buf) {
		relay_conn_fail(c, RESULT_ERROR, relay_fd_side(c, h->from),
				cqe->res < 0 ? -cqe->res : EIO);
		return;
	}
	ag_watch_touch(&c->watch);
	h->off = 0;
	h->len = cqe->res;
	half_send(h);
}

static void half_on_send(struct half *h, const struct io_uring_cqe *cqe)
{
	struct conn *c = h->c;
	int res = cqe->res;

	if (c->state == CONN_CLOSING) {
		half_data_done(h);
		return;
	}
	if (res > 0) {
		h->bytes += res;
		c->l->d->stats.relay_copied += res;
		h->off += res;
		if (h->off == h->len) {
			half_data_done(h);
			if (c->splice_next)
				relay_conn_splice(c);
			else
				relay_half_recv(h);
			return;
		}
	}
	if (res > 0 || res == -EAGAIN || res == -EINTR) {
		/* The socket is full (or was interrupted): the rest waits, off the pool. */
		if (!h->spill && half_spill(h)) {
			half_data_done(h);
			relay_conn_fail(c, RESULT_ERROR, "daemon", ENOMEM);
			return;
		}
		half_send(h);
		return;
	}
	half_data_done(h);
	if (res == -ECONNRESET || res == -EPIPE)
		relay_conn_fail(c, RESULT_RESET, relay_fd_side(c, h->to), -res);
	else
		relay_conn_fail(c, RESULT_ERROR, relay_fd_side(c, h->to), res ? -res : EIO);
}

static void half_on_shutdown(struct half *h, const struct io_uring_cqe *cqe)
{
	struct conn *c = h->c;

	h->fin = cqe->res >= 0;
	if (c->state == CONN_CLOSING)
		return;
	/* ENOTCONN: the peer is gone already; the other direction will tell how. */
	if (cqe->res < 0 && cqe->res != -ENOTCONN) {
		relay_conn_fail(c, RESULT_ERROR, relay_fd_side(c, h->to), -cqe->res);
		return;
	}
	h->state = HALF_DONE;
	if (c->half[HALF_UP].state == HALF_DONE && c->half[HALF_DOWN].state == HALF_DONE)
		conn_close(c);
}

static void half_complete(struct ag_io *io, unsigned int op, const struct io_uring_cqe *cqe)
{
	struct half *h = ag_container_of(io, struct half, io);
	struct conn *c = h->c;

	switch (op) {
	case OP_RECV:
		half_on_recv(h, cqe);
		break;
	case OP_SEND:
		half_on_send(h, cqe);
		break;
	case OP_SHUTDOWN:
		half_on_shutdown(h, cqe);
		break;
	case OP_POLL:
		relay_half_on_poll(h, cqe);
		break;
	case OP_DRAIN:
		if (c->state != CONN_CLOSING)
			relay_half_drain(h);
		break;
	}
	conn_put(c);
}

/* CONN_CONNECTING -> CONN_RELAYING, or closed with connect_failed. */
static void conn_on_connect(struct conn *c, const struct io_uring_cqe *cqe)
{
	if (c->state == CONN_CLOSING)
		return;
	if (cqe->res < 0) {
		c->l->d->stats.upstream_failed++;
		/* ECANCELED here means the linked timeout fired, not a cancel of ours. */
		relay_conn_fail(c, RESULT_CONNECT_FAILED, "upstream",
				cqe->res == -ECANCELED ? ETIMEDOUT : -cqe->res);
		return;
	}
	c->state = CONN_RELAYING;
	c->splice_next = c->l->d->splice.from_fd >= 0;
	if (c->initial) {
		struct half *up = &c->half[HALF_UP];

		/* A spill is what half_send sends and frees: hand the bytes over. */
		up->spill = c->initial;
		up->off = 0;
		up->len = c->initial_len;
		c->initial = NULL;
		/* The splice waits for them: they go first (half_on_send). */
		half_send(up);
	} else if (c->splice_next) {
		relay_conn_splice(c);
		return;
	} else {
		relay_half_recv(&c->half[HALF_UP]);
	}
	if (!c->splice_next)
		relay_half_recv(&c->half[HALF_DOWN]);
}

static void conn_complete(struct ag_io *io, unsigned int op, const struct io_uring_cqe *cqe)
{
	struct conn *c = ag_container_of(io, struct conn, io);

	if (op == OP_CONNECT)
		conn_on_connect(c, cqe);
	conn_put(c);
}

/* The upstream socket, marked as the daemon's; ready for the ring's connect. */
static int conn_upstream(struct conn *c)
{
	uint32_t mark = c->l->d->conf.mark;
	int fd;

	c->dst_len = ag_addr_sockaddr(c->o.addr, c->o.port, &c->dst.sa, sizeof(c->dst));
	fd = socket(c->dst.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark))) {
		int e = errno;

		close(fd);
		return -e;
	}
	c->up_fd = fd;
	return 0;
}

/* -> CONN_CONNECTING: connect, and with a timeout configured, a linked timeout. */
static void conn_connect(struct conn *c)
{
	struct ag_relay *r = c->l->relay;
	bool timed = r->connect_ts.tv_sec || r->connect_ts.tv_nsec;
	struct io_uring_sqe *sqe;

	/* Both SQEs in one submit: a link never spans two io_uring_enter calls. */
	if (!ag_ring_reserve(&c->l->ring, 2)) {
		relay_conn_fail(c, RESULT_ERROR, "daemon", EBUSY);
		return;
	}
	if (!(sqe = relay_conn_sqe(c, &c->io, OP_CONNECT)))
		return;
	io_uring_prep_connect(sqe, c->up_fd, &c->dst.sa, c->dst_len);
	if (timed)
		ag_ring_link_timeout(&c->l->ring, sqe, &r->connect_ts, 0);
}

/* The sweep: no byte either way for idle_timeout_ms. */
static void conn_expire(struct ag_watch *w, const char *why)
{
	relay_conn_fail(ag_container_of(w, struct conn, watch), RESULT_IDLE_TIMEOUT, NULL, 0);
}

void ag_relay_start(struct ag_loop *l, int fd, const struct ag_admission *a, const void *initial,
		    size_t len)
{
	struct ag_daemon *d = l->d;
	struct conn *c;
	int ret;

	/*
	 * Fail closed: a connection that cannot be recorded is not relayed.
	 * (The MCP path answers such calls itself, with a 503 that says why.)
	 */
	if (!ag_daemon_audit_ok(d, NULL)) {
		ag_admit_refuse(l, fd, "audit_unavailable", a);
		return;
	}
	ag_anomaly_relayed(d, a); /* a first contact is an anomaly record */
	c = calloc(1, sizeof(*c));
	if (!c || (len && !(c->initial = malloc(len))) || ag_admission_chain_dup(a, &c->dg)) {
		if (c)
			free(c->initial);
		free(c);
		ag_admit_refuse(l, fd, "out_of_memory", a);
		return;
	}
	c->io.complete = conn_complete;
	c->l = l;
	c->state = CONN_CONNECTING;
	c->agent_fd = fd;
	c->up_fd = -1;
	c->start_ns = ag_now_ns();
	c->o = a->o;
	if (len)
		memcpy(c->initial, initial, len);
	c->initial_len = len;
	memcpy(c->agent, a->agent, sizeof(c->agent));
	for (int i = 0; i < 2; i++) {
		c->half[i].io.complete = half_complete;
		c->half[i].c = c;
		ag_list_init(&c->half[i].wait);
	}
	ag_list_add_tail(&l->relay->conns, &c->node);
	ag_watch_start(l, &c->watch, 0, conn_expire);
	c->watch.refresh = relay_conn_refresh;
	d->stats.conns_total++;
	d->stats.conns_active++;
	ag_metrics_conn(d->metrics, c->agent, 1);
	if ((ret = conn_upstream(c))) {
		d->stats.upstream_failed++;
		relay_conn_fail(c, RESULT_ERROR, "upstream", -ret);
		return;
	}
	c->half[HALF_UP].from = c->half[HALF_DOWN].to = c->agent_fd;
	c->half[HALF_UP].to = c->half[HALF_DOWN].from = c->up_fd;
	conn_connect(c);
}

/*
 * A walk of every connection: the notices it serves come once per socket
 * whose reader fell AG_SPLICE_BACKLOG behind.
 */
struct half *relay_half_of(struct ag_loop *l, uint64_t cookie)
{
	struct ag_list *pos;

	for (pos = l->relay->conns.next; pos != &l->relay->conns; pos = pos->next) {
		struct conn *c = ag_container_of(pos, struct conn, node);

		for (int i = 0; i < 2; i++)
			if (c->half[i].cookie == cookie)
				return &c->half[i];
	}
	return NULL;
}

void ag_relay_stop(struct ag_loop *l)
{
	struct ag_list *pos, *next;

	relay_kept_stop(l->relay->kept);
	for (pos = l->relay->conns.next; pos != &l->relay->conns; pos = next) {
		next = pos->next;
		relay_conn_fail(ag_container_of(pos, struct conn, node), RESULT_SHUTDOWN, NULL, 0);
	}
}

static void relay_free(struct ag_relay *r)
{
	relay_kept_close(r->kept);
	if (r->br)
		munmap(r->br, BUF_COUNT * sizeof(struct io_uring_buf));
	if (r->bufs)
		munmap(r->bufs, (size_t)BUF_COUNT * BUF_SIZE);
	free(r);
}

static void *map_anon(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

int ag_relay_init(struct ag_loop *l, struct ag_err *err)
{
	struct ag_relay *r = calloc(1, sizeof(*r));
	struct io_uring_buf_reg reg = { .ring_entries = BUF_COUNT, .bgid = BUF_GROUP };
	uint32_t ms = l->d->conf.connect_timeout_ms;
	int ret;

	if (!r)
		return ag_errf(err, ENOMEM, "relay: out of memory");
	/* The ring must be page-aligned: mmap gives that. */
	r->br = map_anon(BUF_COUNT * sizeof(struct io_uring_buf));
	r->bufs = map_anon((size_t)BUF_COUNT * BUF_SIZE);
	if (!r->br || !r->bufs) {
		relay_free(r);
		return ag_errf(err, ENOMEM, "relay: %u buffers of %u bytes: out of memory",
			       BUF_COUNT, BUF_SIZE);
	}
	reg.ring_addr = (uintptr_t)r->br;
	if ((ret = io_uring_register_buf_ring(&l->ring.uring, &reg, 0))) {
		relay_free(r);
		return ag_errf(err, -ret, "relay: register buffer ring: %s", strerror(-ret));
	}
	io_uring_buf_ring_init(r->br);
	for (int i = 0; i < BUF_COUNT; i++)
		io_uring_buf_ring_add(r->br, r->bufs + (size_t)i * BUF_SIZE, BUF_SIZE, i,
				      io_uring_buf_ring_mask(BUF_COUNT), i);
	io_uring_buf_ring_advance(r->br, BUF_COUNT);
	r->free_bufs = BUF_COUNT;
	ag_list_init(&r->conns);
	ag_list_init(&r->waiters);
	r->connect_ts.tv_sec = ms / 1000;
	r->connect_ts.tv_nsec = (long long)(ms % 1000) * 1000000;
	l->relay = r;
	if ((ret = relay_kept_open(l, &r->kept, err))) {
		ag_relay_fini(l);
		return ret;
	}
	return 0;
}

void ag_relay_fini(struct ag_loop *l)
{
	io_uring_unregister_buf_ring(&l->ring.uring, BUF_GROUP);
	relay_free(l->relay);
	l->relay = NULL;
}
