// SPDX-License-Identifier: GPL-2.0
/*
 * agentgated's event loop: one io_uring carries everything the daemon waits
 * for after start-up, so the process never blocks outside
 * io_uring_submit_and_wait:
 *  - signals, through a signalfd read (SIGTERM/SIGINT stop, SIGHUP reloads);
 *  - a multishot accept per listener (agent listeners -> relay.c, the
 *    control socket -> control.c);
 *  - the agent connections (relay.c), control clients (control.c) and the
 *    kernel's refusal events (events.c);
 *  - the periodic timeout that sweeps agent connections for the header and
 *    idle timeouts (fair.c).
 *
 * Stopping: stop accepting, cancel every connection, then keep reaping
 * until no counted SQE is left (l->pending), so nothing the kernel may
 * still write to is freed.  If that takes longer than DRAIN_TIMEOUT_NS the
 * loop gives up and leaks what is still in flight rather than free it under
 * the kernel: the process is about to exit anyway.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "classify.h"
#include "control.h"
#include "decide.h"
#include "dns.h"
#include "events.h"
#include "fair.h"
#include "mcp.h"
#include "notify.h"
#include "relay.h"
#include "resolve.h"
#include "scrape.h"

#define RING_ENTRIES 1024
#define DRAIN_TIMEOUT_NS (5ull * 1000 * 1000 * 1000)

enum { OP_ACCEPT = 1, OP_BACKOFF }; /* on listener.io */
enum { OP_SIGNAL = 1 };		    /* on signals.io */

struct listener {
	struct ag_io io;
	struct ag_loop *l;
	int fd;
	const char *name;
	void (*take)(struct ag_loop *l, int fd);
};

struct signals {
	struct ag_io io;
	struct ag_loop *l;
	int fd;
	struct signalfd_siginfo si;
};

struct loop_main {
	struct ag_loop l;
	struct signals sig;
	struct listener listeners[AG_LISTEN__COUNT + 2]; /* + control, metrics */
	int nr_listeners;
	struct ag_dns *dns; /* NULL when the daemon has no relay socket */
};

static struct io_uring_sqe *get_sqe(struct ag_loop *l)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);

	if (!sqe) {
		io_uring_submit(&l->ring);
		sqe = io_uring_get_sqe(&l->ring);
	}
	return sqe;
}

struct io_uring_sqe *ag_loop_sqe(struct ag_loop *l, struct ag_io *io, unsigned int op)
{
	struct io_uring_sqe *sqe = get_sqe(l);

	if (!sqe)
		return NULL;
	io_uring_sqe_set_data64(sqe, (uintptr_t)io | op);
	l->pending++;
	return sqe;
}

struct io_uring_sqe *ag_loop_sqe_untracked(struct ag_loop *l)
{
	struct io_uring_sqe *sqe = get_sqe(l);

	/* SQEs are recycled: a stale user_data would be dispatched. */
	if (sqe)
		io_uring_sqe_set_data64(sqe, 0);
	return sqe;
}

bool ag_loop_reserve(struct ag_loop *l, unsigned int n)
{
	if (io_uring_sq_space_left(&l->ring) < n)
		io_uring_submit(&l->ring);
	return io_uring_sq_space_left(&l->ring) >= n;
}

void ag_loop_cancel_fd(struct ag_loop *l, int fd)
{
	struct io_uring_sqe *sqe = ag_loop_sqe_untracked(l);

	if (!sqe) {
		shutdown(fd, SHUT_RDWR);
		return;
	}
	io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
}

static void fatal(struct ag_loop *l, int code)
{
	if (!l->status)
		l->status = code;
}

/*
 * After an error the multishot accept has ended; re-arming at once would
 * spin on a persistent error (EMFILE with a full backlog), so the new
 * accept waits behind a linked 100 ms timeout that counts as success.  The
 * timeout is tracked: a stop must cancel it by user_data, since the accept
 * behind it is not issued yet and so no cancel by fd can find it.
 */
static void listener_arm(struct listener *ls, bool backoff)
{
	static struct __kernel_timespec delay = { .tv_nsec = 100 * 1000 * 1000 };
	struct io_uring_sqe *sqe;

	if (!ag_loop_reserve(ls->l, 2)) {
		ag_log(AG_LOG_ERROR, "loop", "listener=%s error=\"no submission queue entry\"",
		       ls->name);
		fatal(ls->l, -EBUSY);
		return;
	}
	if (backoff) {
		sqe = ag_loop_sqe(ls->l, &ls->io, OP_BACKOFF);
		io_uring_prep_timeout(sqe, &delay, 0, IORING_TIMEOUT_ETIME_SUCCESS);
		sqe->flags |= IOSQE_IO_LINK;
	}
	sqe = ag_loop_sqe(ls->l, &ls->io, OP_ACCEPT);
	io_uring_prep_multishot_accept(sqe, ls->fd, NULL, NULL, SOCK_CLOEXEC);
}

static void listener_complete(struct ag_io *io, unsigned int op, const struct io_uring_cqe *cqe)
{
	struct listener *ls = ag_container_of(io, struct listener, io);
	struct ag_loop *l = ls->l;

	if (op == OP_BACKOFF)
		return;
	if (cqe->res >= 0) {
		/* Accepted in the race with the stop: refused like any later connect. */
		if (l->stopping)
			close(cqe->res);
		else
			ls->take(l, cqe->res);
	} else if (!l->stopping) {
		ag_log(AG_LOG_WARN, "accept_error", "listener=%s error=\"%s\"", ls->name,
		       strerror(-cqe->res));
	}
	if (!(cqe->flags & IORING_CQE_F_MORE) && !l->stopping)
		listener_arm(ls, cqe->res < 0);
}

static void signals_arm(struct signals *s)
{
	struct io_uring_sqe *sqe = ag_loop_sqe(s->l, &s->io, OP_SIGNAL);

	if (!sqe) {
		ag_log(AG_LOG_ERROR, "loop", "signalfd: error=\"no submission queue entry\"");
		fatal(s->l, -EBUSY);
		return;
	}
	io_uring_prep_read(sqe, s->fd, &s->si, sizeof(s->si), 0);
}

static void loop_stop(struct loop_main *m)
{
	struct ag_loop *l = &m->l;

	if (l->stopping)
		return;
	l->stopping = true;
	ag_notify("STOPPING=1");
	for (int i = 0; i < m->nr_listeners; i++) {
		struct listener *ls = &m->listeners[i];
		struct io_uring_sqe *sqe = ag_loop_sqe_untracked(l);

		/* A backoff timeout, if any; its linked accept goes with it. */
		if (sqe)
			io_uring_prep_cancel64(sqe, (uintptr_t)&ls->io | OP_BACKOFF, 0);
		ag_loop_cancel_fd(l, ls->fd);
	}
	ag_loop_cancel_fd(l, m->sig.fd);
	ag_fair_stop(l);
	ag_relay_stop(l);
	/* Before the lookups: a peek waiting for one is freed, not woken. */
	ag_classify_stop(l);
	ag_resolve_stop(l);
	ag_mcp_stop(l);
	ag_control_stop(l);
	ag_events_stop(l);
	ag_dns_stop(m->dns);
	ag_scrape_stop(l);
}

static void signals_complete(struct ag_io *io, unsigned int op, const struct io_uring_cqe *cqe)
{
	struct signals *s = ag_container_of(io, struct signals, io);
	struct ag_loop *l = s->l;

	if (l->stopping)
		return;
	if (cqe->res != sizeof(s->si)) {
		/* A signalfd read cannot fail short of a bug: stop rather than spin. */
		ag_log(AG_LOG_ERROR, "loop", "signalfd: read returned %d (%s)", cqe->res,
		       cqe->res < 0 ? strerror(-cqe->res) : "short read");
		fatal(l, cqe->res < 0 ? cqe->res : -EIO);
		return;
	}
	if (s->si.ssi_signo == SIGHUP) {
		struct ag_err err = { 0 };

		ag_notify_reloading();
		/* Between two events: no decision sees half a set.  The
		 * outcome is logged and audited by the reload itself. */
		if (l->d->conf.policy.set)
			ag_decide_reload(l->d, "sighup", NULL, &err);
		else
			ag_log(AG_LOG_INFO, "reload", "result=noop msg=\"no policy configured\"");
		ag_mcp_reload_credentials(l, "sighup");
		ag_notify("READY=1");
	} else {
		ag_log(AG_LOG_INFO, "stopping", "signal=%s pid=%u", sigabbrev_np(s->si.ssi_signo),
		       s->si.ssi_pid);
	}
	if (s->si.ssi_signo == SIGHUP)
		signals_arm(s);
	else
		loop_stop(ag_container_of(l, struct loop_main, l));
}

static void dispatch(struct ag_loop *l, const struct io_uring_cqe *cqe)
{
	struct ag_io *io = (struct ag_io *)(uintptr_t)(cqe->user_data & ~(__u64)AG_IO_OP_MASK);

	if (!io)
		return;
	if (!(cqe->flags & IORING_CQE_F_MORE))
		l->pending--;
	io->complete(io, cqe->user_data & AG_IO_OP_MASK, cqe);
}

static void add_listener(struct loop_main *m, int fd, const char *name,
			 void (*take)(struct ag_loop *l, int fd))
{
	struct listener *ls = &m->listeners[m->nr_listeners++];

	ls->io.complete = listener_complete;
	ls->l = &m->l;
	ls->fd = fd;
	ls->name = name;
	ls->take = take;
	listener_arm(ls, false);
}

/* Reaps until stopped and drained; false if the drain timed out. */
static bool run(struct loop_main *m)
{
	struct ag_loop *l = &m->l;
	struct __kernel_timespec tick = { .tv_sec = 1 };
	struct io_uring_cqe *cqe, copy;
	uint64_t deadline = 0;
	int ret;

	while (!l->stopping || l->pending) {
		if (l->status)
			loop_stop(m);
		if (l->stopping && !deadline)
			deadline = ag_now_ns() + DRAIN_TIMEOUT_NS;
		if (deadline && ag_now_ns() > deadline) {
			ag_log(AG_LOG_ERROR, "loop",
			       "stop: %u operations still in flight after %llu s, leaving them",
			       l->pending, DRAIN_TIMEOUT_NS / 1000000000);
			return false;
		}
		ret = io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1, deadline ? &tick : NULL,
						       NULL);
		/* EBUSY/EAGAIN: completions must be reaped before more can be submitted. */
		if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EBUSY && ret != -EAGAIN) {
			ag_log(AG_LOG_ERROR, "loop", "io_uring_submit_and_wait: %s",
			       strerror(-ret));
			fatal(l, ret);
		}
		/* Copied and marked seen first: a handler may submit, and the slot is free. */
		while (!io_uring_peek_cqe(&l->ring, &cqe)) {
			copy = *cqe;
			io_uring_cqe_seen(&l->ring, cqe);
			dispatch(l, &copy);
		}
	}
	return true;
}

static int loop_init(struct loop_main *m, struct ag_err *err)
{
	struct io_uring_params p = {
		/* One thread submits and reaps: completions run when it asks for them. */
		.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER |
			 IORING_SETUP_DEFER_TASKRUN,
	};
	int ret;

	/* First: a policy set that does not load fails the start, and
	 * nothing else is set up yet. */
	if ((ret = ag_decide_init(m->l.d, err)))
		return ret;
	if ((ret = io_uring_queue_init_params(RING_ENTRIES, &m->l.ring, &p))) {
		ag_decide_fini();
		return ag_errf(err, -ret, "io_uring: setup: %s", strerror(-ret));
	}
	if ((ret = ag_fair_init(&m->l, err)))
		goto err_ring;
	if ((ret = ag_relay_init(&m->l, err)))
		goto err_fair;
	if ((ret = ag_resolve_init(&m->l, err)))
		goto err_relay;
	if ((ret = ag_classify_init(&m->l, err)))
		goto err_resolve;
	if ((ret = ag_mcp_init(&m->l, err)))
		goto err_mcp;
	if ((ret = ag_control_init(&m->l, err)))
		goto err_mcp;
	if ((ret = ag_events_init(&m->l, err)))
		goto err_control;
	if ((ret = ag_dns_init(&m->l, &m->dns, err)))
		goto err_events;
	if ((ret = ag_scrape_init(&m->l, err)))
		goto err_dns;
	return 0;

err_dns:
	ag_dns_fini(m->dns);
err_events:
	ag_events_fini(&m->l);
err_control:
	ag_control_fini(&m->l);
err_mcp:
	ag_mcp_fini(&m->l);
	ag_classify_fini(&m->l);
err_resolve:
	ag_resolve_fini(&m->l);
err_relay:
	ag_relay_fini(&m->l);
err_fair:
	ag_fair_fini(&m->l);
err_ring:
	io_uring_queue_exit(&m->l.ring);
	ag_decide_fini();
	return ret;
}

int ag_loop_run(struct ag_daemon *d)
{
	struct loop_main m = { .l = { .d = d }, .sig = { .fd = -1 } };
	struct ag_err err = { 0 };
	char q[2 * sizeof(err.msg)];
	sigset_t mask;
	bool drained;
	int ret;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	/*
	 * Blocked first, so no signal can hit its default action before the fd
	 * sees it, and never unblocked: a second SIGTERM during the drain must
	 * not kill the process before main.c's teardown.
	 */
	sigprocmask(SIG_BLOCK, &mask, NULL);
	m.sig.fd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (m.sig.fd < 0) {
		ret = ag_errf(&err, errno, "signalfd: %s", strerror(errno));
		goto out;
	}
	if ((ret = loop_init(&m, &err)))
		goto out;
	m.sig.io.complete = signals_complete;
	m.sig.l = &m.l;
	signals_arm(&m.sig);
	if (d->listen_fd[AG_LISTEN_V4] >= 0)
		add_listener(&m, d->listen_fd[AG_LISTEN_V4], "v4", ag_relay_accept);
	if (d->listen_fd[AG_LISTEN_V6] >= 0)
		add_listener(&m, d->listen_fd[AG_LISTEN_V6], "v6", ag_relay_accept);
	add_listener(&m, d->control_fd, "control", ag_control_accept);
	if (ag_scrape_fd(&m.l) >= 0)
		add_listener(&m, ag_scrape_fd(&m.l), "metrics", ag_scrape_accept);
	ag_events_start(&m.l);
	ag_daemon_started(d, NULL);

	drained = run(&m);
	ret = m.l.status;
	ag_events_fini(&m.l);
	if (drained) {
		ag_scrape_fini(&m.l);
		ag_dns_fini(m.dns);
		ag_control_fini(&m.l);
		ag_mcp_fini(&m.l);
		ag_classify_fini(&m.l);
		ag_resolve_fini(&m.l);
		ag_relay_fini(&m.l);
		ag_fair_fini(&m.l);
		ag_decide_fini();
	}
	io_uring_queue_exit(&m.l.ring);
out:
	if (m.sig.fd >= 0)
		close(m.sig.fd);
	if (ret && err.msg[0]) {
		ag_log(AG_LOG_ERROR, "loop", "error=%s", ag_logq(q, sizeof(q), err.msg));
		ag_daemon_started(d, err.msg); /* unless it already serves */
	}
	return ret;
}
