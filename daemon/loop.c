// SPDX-License-Identifier: GPL-2.0
/*
 * agentgated's event loop: one io_uring carries everything the daemon waits
 * for after start-up, so the process never blocks outside
 * io_uring_submit_and_wait:
 *  - signals, through a signalfd read (SIGTERM/SIGINT stop, SIGHUP reloads);
 *  - a multishot accept per listener (agent listeners -> admit.c, the
 *    control socket -> control.c, the metrics endpoint -> scrape.c);
 *  - the agent connections (classify.c, relay.c, the MCP path), control
 *    and metrics clients (client.c) and the kernel's refusal events
 *    (events.c), all on the ring's primitives (ring.c);
 *  - the periodic timeout that sweeps agent connections for the header and
 *    idle timeouts (fair.c).
 *
 * Stopping: stop accepting, cancel every connection, then keep reaping
 * until no counted SQE is left (l->ring.pending), so nothing the kernel may
 * still write to is freed.  If that takes longer than DRAIN_TIMEOUT_NS the
 * loop gives up and leaks what is still in flight rather than free it under
 * the kernel: the process is about to exit anyway.
 *
 * Handing over (SIGUSR2, a live upgrade: upgrade.c):
 *
 *	SERVING --SIGUSR2--> DRAINING --no connection left, or
 *	                        |       AG_UPGRADE_DRAIN_S--> STOPPING
 *	                        +-- SIGTERM/SIGINT ---------> STOPPING
 *
 * DRAINING cancels this ring's accepts on the agents' listeners only: the
 * sockets are the new daemon's too, which accepts from the same backlog,
 * so they are never shut down here.  Connections, control clients, DNS and
 * events go on until the drain ends.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admit.h"
#include "classify.h"
#include "control.h"
#include "daemon.h"
#include "decide.h"
#include "dns.h"
#include "events.h"
#include "fair.h"
#include "loop.h"
#include "mcp.h"
#include "notify.h"
#include "policy_git.h"
#include "relay.h"
#include "resolve.h"
#include "stream.h"
#include "trail.h"
#include "inbound.h"
#include "scrape.h"
#include "upgrade.h"

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
	bool handed_over; /* DRAINING: another daemon accepts from it */
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
	struct listener listeners[AG_LISTEN__COUNT + 3]; /* + control, metrics, inbound */
	int nr_listeners;
	struct ag_dns *dns; /* NULL when the daemon has no relay socket */
	uint64_t drain_end; /* DRAINING until then (ag_now_ns), 0: not draining */
};

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

	if (!ag_ring_reserve(&ls->l->ring, 2)) {
		ag_log(AG_LOG_ERROR, "loop", "listener=%s error=\"no submission queue entry\"",
		       ls->name);
		fatal(ls->l, -EBUSY);
		return;
	}
	if (backoff) {
		sqe = ag_ring_sqe(&ls->l->ring, &ls->io, OP_BACKOFF);
		io_uring_prep_timeout(sqe, &delay, 0, IORING_TIMEOUT_ETIME_SUCCESS);
		sqe->flags |= IOSQE_IO_LINK;
	}
	sqe = ag_ring_sqe(&ls->l->ring, &ls->io, OP_ACCEPT);
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
	} else if (!l->stopping && !ls->handed_over) {
		ag_log(AG_LOG_WARN, "accept_error", "listener=%s error=\"%s\"", ls->name,
		       strerror(-cqe->res));
	}
	if (!(cqe->flags & IORING_CQE_F_MORE) && !l->stopping && !ls->handed_over)
		listener_arm(ls, cqe->res < 0);
}

static void signals_arm(struct signals *s)
{
	struct io_uring_sqe *sqe = ag_ring_sqe(&s->l->ring, &s->io, OP_SIGNAL);

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

		if (ls->handed_over)
			continue; /* cancelled already, and never to be shut down */
		/* A backoff timeout, if any; its linked accept goes with it. */
		ag_ring_cancel_op(&l->ring, &ls->io, OP_BACKOFF);
		ag_ring_cancel_fd(&l->ring, ls->fd);
	}
	ag_ring_cancel_fd(&l->ring, m->sig.fd);
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
	ag_policy_git_stop(l);
}

/* This ring's accepts on ls, never the socket itself (the new daemon's too). */
static void listener_cancel(struct ag_loop *l, struct listener *ls)
{
	if (!ag_ring_reserve(&l->ring, 2))
		return; /* then the accept completes later, and is served */
	ag_ring_cancel_op(&l->ring, &ls->io, OP_BACKOFF);
	ag_ring_cancel_fd(&l->ring, ls->fd);
}

static void loop_drain(struct loop_main *m)
{
	if (m->drain_end || m->l.stopping)
		return;
	m->drain_end = ag_now_ns() + AG_UPGRADE_DRAIN_S * 1000000000ull;
	ag_notify("STOPPING=1");
	ag_log(AG_LOG_INFO, "upgrade", "handing over: accepting no more, draining %llu connections",
	       (unsigned long long)m->l.d->stats.conns_active);
	for (int i = 0; i < m->nr_listeners; i++) {
		struct listener *ls = &m->listeners[i];

		if (ls->take == ag_admit_accept) {
			ls->handed_over = true;
			listener_cancel(&m->l, ls);
		}
	}
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
	} else if (s->si.ssi_signo != SIGUSR2) {
		ag_log(AG_LOG_INFO, "stopping", "signal=%s pid=%u", sigabbrev_np(s->si.ssi_signo),
		       s->si.ssi_pid);
	}
	if (s->si.ssi_signo == SIGUSR2)
		loop_drain(ag_container_of(l, struct loop_main, l));
	if (s->si.ssi_signo == SIGHUP || s->si.ssi_signo == SIGUSR2)
		signals_arm(s);
	else
		loop_stop(ag_container_of(l, struct loop_main, l));
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

	while (!l->stopping || l->ring.pending) {
		if (l->status)
			loop_stop(m);
		/* DRAINING ends with the last connection, or at its deadline. */
		if (m->drain_end && (!l->d->stats.conns_active || ag_now_ns() > m->drain_end))
			loop_stop(m);
		if (l->stopping && !deadline)
			deadline = ag_now_ns() + DRAIN_TIMEOUT_NS;
		if (deadline && ag_now_ns() > deadline) {
			ag_log(AG_LOG_ERROR, "loop",
			       "stop: %u operations still in flight after %llu s, leaving them",
			       l->ring.pending, DRAIN_TIMEOUT_NS / 1000000000);
			return false;
		}
		/*
		 * The turn's records first, in one write: the calls they decide
		 * are forwarded only then, and the answers they describe go after.
		 */
		do
			ag_daemon_audit_flush(l->d);
		while (ag_mcp_audit_flushed(l));
		ag_stream_flush(l);
		ret = io_uring_submit_and_wait_timeout(
		    &l->ring.uring, &cqe, 1, deadline || m->drain_end ? &tick : NULL, NULL);
		/* EBUSY/EAGAIN: completions must be reaped before more can be submitted. */
		if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EBUSY && ret != -EAGAIN) {
			ag_log(AG_LOG_ERROR, "loop", "io_uring_submit_and_wait: %s",
			       strerror(-ret));
			fatal(l, ret);
		}
		/* Copied and marked seen first: a handler may submit, and the slot is free. */
		while (!io_uring_peek_cqe(&l->ring.uring, &cqe)) {
			copy = *cqe;
			io_uring_cqe_seen(&l->ring.uring, cqe);
			ag_ring_dispatch(&l->ring, &copy);
		}
	}
	return true;
}

static int loop_init(struct loop_main *m, struct ag_err *err)
{
	int ret;

	/* First: a policy set that does not load fails the start, and
	 * nothing else is set up yet. */
	if ((ret = ag_decide_init(m->l.d, err)))
		return ret;
	ag_list_init(&m->l.send_due);
	if ((ret = ag_ring_init(&m->l.ring, RING_ENTRIES, err))) {
		ag_decide_free(m->l.d);
		return ret;
	}
	if ((ret = ag_fair_init(&m->l, err)))
		goto err_ring;
	if ((ret = ag_admit_init(&m->l, err)))
		goto err_fair;
	if ((ret = ag_relay_init(&m->l, err)))
		goto err_admit;
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
err_admit:
	ag_admit_fini(&m->l);
err_fair:
	ag_fair_fini(&m->l);
err_ring:
	ag_ring_exit(&m->l.ring);
	ag_decide_free(m->l.d);
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
	sigaddset(&mask, SIGUSR2);
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
		add_listener(&m, d->listen_fd[AG_LISTEN_V4], "v4", ag_admit_accept);
	if (d->listen_fd[AG_LISTEN_V6] >= 0)
		add_listener(&m, d->listen_fd[AG_LISTEN_V6], "v6", ag_admit_accept);
	add_listener(&m, d->control_fd, "control", ag_control_accept);
	if (ag_scrape_fd(&m.l) >= 0)
		add_listener(&m, ag_scrape_fd(&m.l), "metrics", ag_scrape_accept);
	if (ag_inbound_fd(d) >= 0)
		add_listener(&m, ag_inbound_fd(d), "inbound", ag_inbound_accept);
	ag_events_start(&m.l);
	ag_policy_git_start(&m.l);
	ag_daemon_started(d, NULL);

	drained = run(&m);
	ret = m.l.status;
	ag_events_fini(&m.l);
	ag_policy_git_fini(&m.l); /* joins its thread, which never touches the ring */
	if (drained) {
		ag_scrape_fini(&m.l);
		ag_dns_fini(m.dns);
		ag_control_fini(&m.l);
		ag_mcp_fini(&m.l);
		ag_classify_fini(&m.l);
		ag_resolve_fini(&m.l);
		ag_relay_fini(&m.l);
		ag_admit_fini(&m.l);
		ag_fair_fini(&m.l);
		ag_decide_free(m.l.d);
	}
	ag_ring_exit(&m.l.ring);
out:
	if (m.sig.fd >= 0)
		close(m.sig.fd);
	if (ret && err.msg[0]) {
		ag_log(AG_LOG_ERROR, "loop", "error=%s", ag_logq(q, sizeof(q), err.msg));
		ag_daemon_started(d, err.msg); /* unless it already serves */
	}
	return ret;
}
