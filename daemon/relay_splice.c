// SPDX-License-Identifier: GPL-2.0
/*
 * The relay's halves that the kernel splices (bpf/splice.bpf.c; their
 * states are in relay.c's diagram): the sockets put into the splice maps,
 * a spliced half's EOF passed on, and what TCP tells of the bytes the
 * daemon no longer sees.
 *
 * The counts are TCP's own sequence arithmetic, as TCP_INFO and the queue
 * ioctls expose it: bytes_received (rcv_nxt) less what is still queued
 * (SIOCINQ) is what was taken off the socket; bytes_acked plus the unacked
 * rest (SIOCOUTQ) is everything written to it.  Both count the connection's
 * SYN and FIN the way TCP does, so only differences taken while the socket
 * was established are compared.
 */
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <netinet/in.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "daemon.h"
#include "loop.h"
#include "relay_int.h"

/*
 * How long a draining half waits before it looks again for its last bytes
 * to leave: 1 ms, doubling each time up to 128 ms.  A reader that reads
 * nothing can hold a drain for as long as it likes, so its connections must
 * cost the daemon a few looks a second, not a thousand.
 */
#define DRAIN_STEPS 8
#define DRAIN_MS(step) (1L << (step))

static struct __kernel_timespec drain_ts[DRAIN_STEPS] = {
	{ .tv_nsec = DRAIN_MS(0) * 1000000 }, { .tv_nsec = DRAIN_MS(1) * 1000000 },
	{ .tv_nsec = DRAIN_MS(2) * 1000000 }, { .tv_nsec = DRAIN_MS(3) * 1000000 },
	{ .tv_nsec = DRAIN_MS(4) * 1000000 }, { .tv_nsec = DRAIN_MS(5) * 1000000 },
	{ .tv_nsec = DRAIN_MS(6) * 1000000 }, { .tv_nsec = DRAIN_MS(7) * 1000000 },
};

/* One socket's byte counts, from TCP_INFO and the queue ioctls. */
struct sock_bytes {
	uint64_t taken;	   /* received and taken off the socket (read or redirected) */
	uint64_t received; /* received in all, the peer's FIN counting one */
	uint64_t written;  /* handed to it for sending, SYN and our FIN counting one each */
	uint32_t quiet_ms; /* since the last data either way */
	bool open;	   /* established, or half-closed: not reset or closed */
};

/*
 * Whether fd's peer sent its FIN.  Asked before sock_bytes: TCP counts the
 * FIN in before it marks the EOF, so an EOF seen here is in the counts
 * taken after (never the other way).
 */
static int sock_eof(int fd, bool *eof)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };

	if (poll(&p, 1, 0) < 0)
		return -errno;
	*eof = p.revents & POLLRDHUP;
	return 0;
}

static int sock_bytes(int fd, struct sock_bytes *b)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int inq, outq;

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
		return -errno;
	/* bytes_received came with Linux 4.1, long before a verdict could splice. */
	if (len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(ti.tcpi_bytes_received))
		return -EPROTO;
	/* A closed socket answers SIOCINQ with EINVAL only when listening: never here. */
	if (ioctl(fd, SIOCINQ, &inq) || ioctl(fd, SIOCOUTQ, &outq))
		return -errno;
	b->received = ti.tcpi_bytes_received;
	b->taken = ti.tcpi_bytes_received - (uint32_t)inq;
	b->written = ti.tcpi_bytes_acked + (uint32_t)outq;
	b->quiet_ms = ti.tcpi_last_data_recv < ti.tcpi_last_data_sent ? ti.tcpi_last_data_recv
								      : ti.tcpi_last_data_sent;
	/* The kernel's TCP states, which linux/bpf.h names for BPF. */
	b->open = ti.tcpi_state == BPF_TCP_ESTABLISHED || ti.tcpi_state == BPF_TCP_CLOSE_WAIT ||
		  ti.tcpi_state == BPF_TCP_FIN_WAIT1 || ti.tcpi_state == BPF_TCP_FIN_WAIT2;
	return 0;
}

static int cookie(int fd, uint64_t *c)
{
	socklen_t len = sizeof(*c);

	return getsockopt(fd, SOL_SOCKET, SO_COOKIE, c, &len) ? -errno : 0;
}

static int splice_pair(const struct ag_splice_maps *m, int a, int b)
{
	uint64_t ca, cb, va = (uint64_t)a, vb = (uint64_t)b;
	int ret;

	if ((ret = cookie(a, &ca)) || (ret = cookie(b, &cb)))
		return ret;
	/* a's bytes go to b, b's to a. */
	if (bpf_map_update_elem(m->peers_fd, &ca, &vb, BPF_NOEXIST))
		return -errno;
	if (bpf_map_update_elem(m->peers_fd, &cb, &va, BPF_NOEXIST)) {
		ret = -errno;
		bpf_map_delete_elem(m->peers_fd, &ca);
		return ret;
	}
	return 0;
}

/* fd's flow (bpf/splice.bpf.c), then fd into splice_from: its verdict finds the flow. */
static int splice_from(const struct ag_splice_maps *m, int fd, uint64_t *c)
{
	struct ag_splice_flow flow = { 0 };
	uint64_t v = (uint64_t)fd;
	int ret;

	if ((ret = cookie(fd, c)))
		return ret;
	if (bpf_map_update_elem(m->flows_fd, c, &flow, BPF_NOEXIST))
		return -errno;
	if (bpf_map_update_elem(m->from_fd, c, &v, BPF_NOEXIST)) {
		ret = -errno;
		bpf_map_delete_elem(m->flows_fd, c);
		return ret;
	}
	return 0;
}

void relay_conn_flows_del(struct conn *c)
{
	for (int i = 0; i < 2; i++)
		if (c->half[i].cookie)
			bpf_map_delete_elem(c->l->d->splice.flows_fd, &c->half[i].cookie);
}

/*
 * The verdict runs when data arrives: what came before the insert would
 * wait for the next skb.  Setting the receive low-water mark (to its
 * default) makes TCP check for data ready at once, which hands the queued
 * bytes to the verdict now.
 */
static int splice_kick(int fd)
{
	int one = 1;

	return setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one)) ? -errno : 0;
}

/*
 * What h delivered to `to`: what the daemon copied, and for a spliced half
 * what TCP says the kernel wrote to `to` since (our FIN not counted).
 */
uint64_t relay_half_bytes(const struct half *h)
{
	struct sock_bytes to;

	if (!h->spliced || sock_bytes(h->to, &to) || to.written < h->written0 + h->fin)
		return h->bytes;
	return h->bytes + to.written - h->written0 - h->fin;
}

/* HALF_IDLE -> HALF_SPLICED: waits for `from` to end (or fail). */
static void half_poll(struct half *h)
{
	struct io_uring_sqe *sqe;

	if (h->c->state == CONN_CLOSING || !(sqe = relay_conn_sqe(h->c, &h->io, OP_POLL)))
		return;
	io_uring_prep_poll_add(sqe, h->from, POLLRDHUP);
	h->state = HALF_SPLICED;
}

/*
 * HALF_DRAIN -> HALF_RECV: the verdict keeps every skb from now on, and the
 * partner has everything it redirected, so the daemon copies the rest,
 * starting with what was kept.  What the kernel delivered is the daemon's
 * count from here on.
 */
static void half_unsplice(struct half *h, uint64_t spliced)
{
	h->bytes += spliced;
	h->spliced = false;
	h->c->l->d->stats.relay_unspliced++;
	relay_half_recv(h);
}

/*
 * HALF_SPLICED, HALF_DRAIN: once `to` was written every byte the verdict
 * took off `from` (what it kept is not taken: SIOCINQ counts it), either
 * HALF_SHUTDOWN at `from`'s EOF, or the kept bytes are copied
 * (half_unsplice); until then HALF_DRAIN, looking again after drain_ts.
 * Neither may come sooner: a FIN or a copied byte would overtake what
 * the kernel's backlog still holds.  A `to` that closed meanwhile will
 * never take them.  A look with neither (a notice's cancel that came with
 * nothing kept yet to read) polls again.
 */
void relay_half_drain(struct half *h)
{
	struct conn *c = h->c;
	struct sock_bytes from, to;
	struct io_uring_sqe *sqe;
	uint64_t redirected;
	bool eof = false;
	int ret;

	if ((ret = sock_eof(h->from, &eof)) || (ret = sock_bytes(h->from, &from)) ||
	    (ret = sock_bytes(h->to, &to))) {
		relay_conn_fail(c, RESULT_ERROR, "daemon", -ret);
		return;
	}
	/* taken0 and written0 were taken without a FIN; `to` has none from us yet. */
	redirected = from.taken - h->taken0 - eof;
	if (to.written - h->written0 >= redirected) {
		if (from.received > from.taken)
			half_unsplice(h, to.written - h->written0);
		else if (eof)
			relay_half_shutdown(h);
		else
			half_poll(h);
		return;
	}
	if (!to.open) {
		relay_conn_fail(c, RESULT_RESET, relay_fd_side(c, h->to), ECONNRESET);
		return;
	}
	if (!(sqe = relay_conn_sqe(c, &h->io, OP_DRAIN)))
		return;
	h->drain_step =
	    h->state != HALF_DRAIN ? 0 : h->drain_step + (h->drain_step < DRAIN_STEPS - 1);
	/* Static: the kernel reads the timespec when the ring submits, after this returns. */
	io_uring_prep_timeout(sqe, &drain_ts[h->drain_step], 0, 0);
	h->state = HALF_DRAIN;
}

void relay_half_on_poll(struct half *h, const struct io_uring_cqe *cqe)
{
	struct conn *c = h->c;
	int e = 0;
	socklen_t len = sizeof(e);

	if (c->state == CONN_CLOSING)
		return;
	/* Cancelled by the verdict's notice (relay_kept_notice): the counts tell what to do. */
	if (cqe->res == -ECANCELED) {
		relay_half_drain(h);
		return;
	}
	if (cqe->res < 0) {
		relay_conn_fail(c, RESULT_ERROR, "daemon", -cqe->res);
		return;
	}
	if (cqe->res & POLLERR) {
		if (getsockopt(h->from, SOL_SOCKET, SO_ERROR, &e, &len) || !e)
			e = EIO;
		relay_conn_fail(c, e == ECONNRESET || e == EPIPE ? RESULT_RESET : RESULT_ERROR,
				relay_fd_side(c, h->from), e);
		return;
	}
	relay_half_drain(h);
}

/*
 * HALF_IDLE -> HALF_SPLICED if the kernel takes `from` (paired: both
 * sockets are each other's target already), else HALF_RECV: copied.
 * from and to: their counts before the pairing.
 */
static void half_splice(struct half *h, bool paired, const struct sock_bytes *from,
			const struct sock_bytes *to)
{
	struct conn *c = h->c;
	int ret;

	if (!paired || splice_from(&c->l->d->splice, h->from, &h->cookie)) {
		h->cookie = 0;
		relay_half_recv(h);
		return;
	}
	h->spliced = true;
	h->taken0 = from->taken;
	h->written0 = to->written;
	c->l->d->stats.relay_spliced++;
	/* Fail closed: bytes that came before the insert would wait for the next skb. */
	if ((ret = splice_kick(h->from))) {
		relay_conn_fail(c, RESULT_ERROR, "daemon", -ret);
		return;
	}
	half_poll(h);
}

/*
 * Both halves, from HALF_IDLE (the up half from HALF_SEND, once the
 * classifier's bytes went): spliced if the kernel takes them, copied if
 * not.  The sockets are paired first, so neither verdict can run before its
 * target is in place.  They are counted before that: once in a socket hash,
 * a socket's SIOCINQ tells only what a verdict kept for it, not what TCP
 * holds unread, and nothing has moved yet.
 */
void relay_conn_splice(struct conn *c)
{
	struct sock_bytes agent, up;
	bool paired;

	c->splice_next = false;
	if (c->state == CONN_CLOSING)
		return;
	paired = !sock_bytes(c->agent_fd, &agent) && !sock_bytes(c->up_fd, &up) &&
		 !splice_pair(&c->l->d->splice, c->agent_fd, c->up_fd);
	/*
	 * The verdict is handed whole skbs from the head of the receive queue:
	 * one the classifier read part of would be sent again.  Bytes still
	 * queued after its read may be such a rest, or new skbs; which, only
	 * the kernel knows, so the agent's side is then copied.
	 */
	half_splice(&c->half[HALF_UP], paired && (!c->initial_len || agent.taken == agent.received),
		    &agent, &up);
	half_splice(&c->half[HALF_DOWN], paired, &up, &agent);
}

/* Spliced bytes pass the daemon by: before an idle timeout, TCP says when the last went. */
void relay_conn_refresh(struct ag_watch *w)
{
	struct conn *c = ag_container_of(w, struct conn, watch);
	struct sock_bytes a, u;
	uint64_t quiet, now = ag_now_ns();

	if ((!c->half[HALF_UP].spliced && !c->half[HALF_DOWN].spliced) ||
	    sock_bytes(c->agent_fd, &a) || sock_bytes(c->up_fd, &u))
		return;
	quiet = (uint64_t)(a.quiet_ms < u.quiet_ms ? a.quiet_ms : u.quiet_ms) * 1000000;
	if (quiet < now && now - quiet > w->active_ns)
		w->active_ns = now - quiet;
}

/*
 * The verdict's notices (splice_kept): the cookie of each socket whose
 * verdict began to keep its bytes.  libbpf's consumer exposes an epoll fd
 * that a multishot poll through the loop's ring watches, as for the
 * kernel's refusals (events.c).
 */
struct relay_kept {
	struct ag_io io;
	struct ag_loop *l;
	struct ring_buffer *rb;
};

/* A half waiting in HALF_SPLICED for its end looks at the counts now instead. */
static int relay_kept_notice(void *ctx, void *data, size_t size)
{
	struct ag_loop *l = ctx;
	struct half *h;
	uint64_t cookie;

	if (size < sizeof(cookie))
		return 0;
	memcpy(&cookie, data, sizeof(cookie));
	h = relay_half_of(l, cookie);
	if (h && h->state == HALF_SPLICED)
		ag_ring_cancel_op(&l->ring, &h->io, OP_POLL);
	return 0;
}

static void relay_kept_poll(struct relay_kept *k)
{
	struct io_uring_sqe *sqe = ag_ring_sqe(&k->l->ring, &k->io, 1);

	/* Fail closed all the same: a kept direction stalls its writer, and idles out. */
	if (!sqe) {
		ag_log(AG_LOG_ERROR, "relay",
		       "error=\"no submission queue entry for splice_kept\"");
		return;
	}
	io_uring_prep_poll_multishot(sqe, ring_buffer__epoll_fd(k->rb), POLLIN);
}

static void relay_kept_complete(struct ag_io *io, unsigned int op, const struct io_uring_cqe *cqe)
{
	struct relay_kept *k = ag_container_of(io, struct relay_kept, io);
	int ret;

	if (cqe->res > 0 && (ret = ring_buffer__consume(k->rb)) < 0)
		ag_log(AG_LOG_ERROR, "relay", "error=\"splice_kept: %s\"", strerror(-ret));
	if (cqe->res <= 0 && !k->l->stopping)
		/* Not re-armed: a poll that failed once would fail in a loop. */
		ag_log(AG_LOG_ERROR, "relay", "error=\"splice_kept poll: %s\"",
		       strerror(-cqe->res));
	if (cqe->res > 0 && !(cqe->flags & IORING_CQE_F_MORE) && !k->l->stopping)
		relay_kept_poll(k);
}

int relay_kept_open(struct ag_loop *l, struct relay_kept **out, struct ag_err *err)
{
	int fd = l->d->splice.kept_fd;
	struct relay_kept *k;

	*out = NULL;
	if (fd < 0)
		return 0;
	if (!(k = calloc(1, sizeof(*k))))
		return ag_errf(err, ENOMEM, "splice_kept: out of memory");
	k->io.complete = relay_kept_complete;
	k->l = l;
	if (!(k->rb = ring_buffer__new(fd, relay_kept_notice, l, NULL))) {
		int e = errno;

		free(k);
		return ag_errf(err, e, "splice_kept (fd %d): ring buffer: %s", fd, strerror(e));
	}
	relay_kept_poll(k);
	*out = k;
	return 0;
}

void relay_kept_stop(struct relay_kept *k)
{
	if (k)
		ag_ring_cancel_fd(&k->l->ring, ring_buffer__epoll_fd(k->rb));
}

void relay_kept_close(struct relay_kept *k)
{
	if (!k)
		return;
	ring_buffer__free(k->rb);
	free(k);
}
