// SPDX-License-Identifier: GPL-2.0
/*
 * Kernel refusals.  The hooks push a struct ag_event for every refusal into
 * the events ring buffer; libbpf's consumer exposes an epoll fd that becomes
 * readable when records are there, and a multishot poll on that fd through
 * the loop's ring wakes us, so the loop never blocks in epoll_wait.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/libbpf.h>

#include "daemon.h"
#include "events.h"
#include "limit.h"
#include "loop.h"
#include "metrics.h"
#include "subagent.h"
#include "trail.h"

enum { OP_POLL = 1 };

struct ag_events {
	struct ag_io io;
	struct ag_loop *l;
	struct ring_buffer *rb;
	struct ag_limiter limit; /* an agent spinning on refused sends */
};

/* Every field of a record is the agent's doing: sizes are checked, strings quoted. */
static int on_event(void *ctx, void *data, size_t size)
{
	struct ag_loop *l = ctx;
	const struct ag_event *e = data;
	uint64_t id, suppressed = 0;
	struct ag_agent agent;
	char name[AG_NAME_LEN], qname[8 * AG_NAME_LEN], comm_raw[AG_COMM_LEN + 1];
	char comm[8 * AG_COMM_LEN], dst[4 * AG_UNIX_PATH_LEN + 8] = "-";

	if (size < sizeof(*e)) {
		ag_log(AG_LOG_WARN, "kernel_refusal", "error=\"record of %zu bytes, expected %zu\"",
		       size, sizeof(*e));
		return 0;
	}
	/* The agent's cgroup, as in conn lines; the caller's own is below it. */
	id = e->agent_cgroup_id ? e->agent_cgroup_id : e->cgroup_id;
	l->d->stats.kernel_refusals++;
	ag_metrics_kernel_refusal(l->d->metrics, ag_reason_name(e->reason));
	if (!ag_limit_allow(&l->events->limit, id, &suppressed))
		return 0;
	if (e->agent_cgroup_id && !ag_agent_lookup(&l->d->kern, e->agent_cgroup_id, &agent))
		memcpy(name, agent.name, sizeof(name));
	else
		snprintf(name, sizeof(name), "cgroup-%llu", (unsigned long long)id);
	memcpy(comm_raw, e->comm, AG_COMM_LEN);
	comm_raw[AG_COMM_LEN] = '\0';
	if (e->hook == AG_HOOK_CONNECT_UNIX || e->hook == AG_HOOK_SENDMSG_UNIX) {
		const struct ag_unix_event *u = data;

		/* The socket's address: a path, or "@name" for an abstract one. */
		if (size >= sizeof(*u) && u->path_len)
			ag_unix_addr_fmt(u->path, u->path_len, dst, sizeof(dst));
	} else if (e->hook != AG_HOOK_SOCK_CREATE) {
		ag_addr_fmt(e->addr, e->port, dst, sizeof(dst));
	}
	ag_log(AG_LOG_WARN, "kernel_refusal",
	       "agent=%s cgroup_id=%llu pid=%u uid=%u comm=%s hook=%s reason=%s dst=%s family=%u "
	       "type=%u protocol=%u suppressed=%llu",
	       ag_logq(qname, sizeof(qname), name), (unsigned long long)id, e->tgid, e->uid,
	       ag_logq(comm, sizeof(comm), comm_raw), ag_hook_name(e->hook),
	       ag_reason_name(e->reason), dst, e->family, e->type, e->protocol,
	       (unsigned long long)suppressed);
	{
		struct ag_origin who = { .agent_cgroup_id = id,
					 .cgroup_id = e->cgroup_id,
					 .tgid = e->tgid,
					 .uid = e->uid };

		struct ag_delegation dg;
		bool chained = id && !ag_daemon_delegation(l->d, &who, &dg);

		memcpy(who.comm, e->comm, AG_COMM_LEN);
		ag_daemon_audit(l->d, "kernel_refusal",
				json_pack("{s:o,s:s,s:s,s:s,s:i,s:i,s:i,s:I}", "agent",
					  ag_audit_agent_chain(name, &who, chained ? &dg : NULL),
					  "hook", ag_hook_name(e->hook), "reason",
					  ag_reason_name(e->reason), "dst", dst, "family",
					  e->family, "type", e->type, "protocol", e->protocol,
					  "suppressed", (json_int_t)suppressed));
	}
	return 0;
}

static void consume(struct ag_events *ev)
{
	int ret = ring_buffer__consume(ev->rb);

	if (ret < 0)
		ag_log(AG_LOG_ERROR, "kernel_refusal", "error=\"events ring buffer: %s\"",
		       strerror(-ret));
}

static void events_complete(struct ag_io *io, unsigned int op, const struct io_uring_cqe *cqe)
{
	struct ag_events *ev = ag_container_of(io, struct ag_events, io);

	if (cqe->res > 0)
		consume(ev);
	else if (!ev->l->stopping)
		/* Not re-armed: a poll that failed once would fail in a loop. */
		ag_log(AG_LOG_ERROR, "kernel_refusal",
		       "error=\"events ring buffer poll: %s; refusals are still enforced, "
		       "no longer logged\"",
		       strerror(-cqe->res));
	if (cqe->res > 0 && !(cqe->flags & IORING_CQE_F_MORE) && !ev->l->stopping)
		ag_events_start(ev->l);
}

int ag_events_init(struct ag_loop *l, struct ag_err *err)
{
	struct ag_events *ev = calloc(1, sizeof(*ev));
	int fd = l->d->kern.map_fd[AG_MAP_EVENTS];

	if (!ev)
		return ag_errf(err, ENOMEM, "events: out of memory");
	ev->io.complete = events_complete;
	ev->l = l;
	ev->rb = ring_buffer__new(fd, on_event, l, NULL);
	if (!ev->rb) {
		int e = errno;

		free(ev);
		return ag_errf(err, e, "map %s (fd %d): ring buffer: %s",
			       ag_map_names[AG_MAP_EVENTS], fd, strerror(e));
	}
	l->events = ev;
	return 0;
}

void ag_events_start(struct ag_loop *l)
{
	struct io_uring_sqe *sqe = ag_ring_sqe(&l->ring, &l->events->io, OP_POLL);

	if (!sqe) {
		ag_log(AG_LOG_ERROR, "kernel_refusal",
		       "error=\"no submission queue entry for the events poll\"");
		return;
	}
	io_uring_prep_poll_multishot(sqe, ring_buffer__epoll_fd(l->events->rb), POLLIN);
}

void ag_events_stop(struct ag_loop *l)
{
	consume(l->events);
	ag_ring_cancel_fd(&l->ring, ring_buffer__epoll_fd(l->events->rb));
}

void ag_events_fini(struct ag_loop *l)
{
	ring_buffer__free(l->events->rb);
	free(l->events);
	l->events = NULL;
}
