// SPDX-License-Identifier: GPL-2.0
/*
 * Calls held for their audit records (mcp_conn.c's MC_AUDIT_WAIT, and
 * strict's held answers): a call is forwarded only once its decision
 * records are written (sync: durable), and under strict an answer reaches
 * the agent only once they are durable (docs/audit.md, Durability).
 *
 * Decision records are written when the loop's turn ends
 * (ag_daemon_audit_flush), one pwrite for every record of the turn, so an
 * allowed call waits in the mcp's audit_turn list until then; right after
 * the flush, before the turn's sends start, ag_mcp_audit_flushed forwards
 * the calls whose records are written and parks the rest in audit_q, an
 * eventfd wait queue the writer signals when it makes progress of its own
 * (a busy writer's write, a sync, a failure, a recovery).
 *
 * Ordering hazards: forwarding or refusing a call may end its request and
 * decide the agent's pipelined next one, which joins audit_turn while it
 * is walked: the walk takes the calls present when it began, and the loop
 * flushes again while audit_turn is not empty.  A connection closed
 * meanwhile leaves whichever list it is in (mcp_conn_close).
 */
#include "audit.h"
#include "daemon.h"
#include "mcp_int.h"
#include "metrics.h"

/*
 * What a call waits for before it is forwarded (docs/audit.md,
 * Durability): its decision records durable under sync, written (a kill
 * -9 cannot lose them) in every other mode.
 */
static bool audit_forwardable(struct ag_daemon *d, uint64_t seq)
{
	return (d->audit_durability == AG_AUDIT_SYNC ? ag_audit_durable(d->audit)
						     : ag_audit_written(d->audit)) >= seq;
}

static void audit_park(struct mcp_conn *c)
{
	struct ag_waitq *q = &mcp_of(c)->audit_q;

	ag_list_add_tail(&q->waiters, &c->wait);
	ag_waitq_arm(q);
}

/*
 * Holds an allowed call until its decision records are written or durable;
 * true if held.  Decision records are written when the loop's turn ends
 * (ag_daemon_audit_flush), one pwrite for every call decided in the turn,
 * so the call waits in audit_turn until then (ag_mcp_audit_flushed), and in
 * audit_q if that did not make its record written (sync: durable).
 */
bool mcp_audit_hold(struct mcp_conn *c)
{
	if (!c->r->audit.seq || audit_forwardable(c->l->d, c->r->audit.seq))
		return false;
	c->state = MC_AUDIT_WAIT;
	c->r->audit.held_ns = ag_now_ns();
	ag_list_add_tail(&mcp_of(c)->audit_turn, &c->wait);
	return true;
}

/*
 * Strict durability: holds the upstream's answer, unread, until the
 * call's decision records are durable; true if held.  Their fdatasync
 * started when they were written, before the call was forwarded, so it
 * overlaps the upstream's work.
 */
bool mcp_result_hold(struct mcp_conn *c)
{
	struct ag_daemon *d = c->l->d;

	if (c->r->audit.result_held)
		return true;
	if (d->audit_durability != AG_AUDIT_STRICT || !c->r->audit.seq)
		return false;
	if (ag_audit_durable(d->audit) >= c->r->audit.seq) {
		c->r->audit.seq = 0; /* checked once per call */
		return false;
	}
	c->r->audit.result_held = true;
	c->r->audit.held_ns = ag_now_ns();
	audit_park(c);
	return true;
}

/* A held answer's records are durable: pass it on, or fail closed. */
static void result_woken(struct mcp_conn *c, uint64_t durable, bool failed)
{
	struct ag_daemon *d = c->l->d;

	if (durable >= c->r->audit.seq) {
		ag_list_del(&c->wait);
		c->r->audit.result_held = false;
		c->r->audit.seq = 0;
		ag_metrics_audit_wait(d->metrics, ag_now_ns() - c->r->audit.held_ns);
		mcp_resp_parse(c);
	} else if (failed) {
		/* Fail closed: no result reaches the agent before its record is durable. */
		mcp_conn_close(c, "error", "audit: the decision record could not be made durable");
	}
}

/* A call held for its decision records: forwarded or refused (true), or still held. */
static bool audit_release(struct mcp_conn *c, bool failed)
{
	struct ag_daemon *d = c->l->d;

	if (audit_forwardable(d, c->r->audit.seq)) {
		ag_list_del(&c->wait);
		ag_metrics_audit_wait(d->metrics, ag_now_ns() - c->r->audit.held_ns);
		mcp_request_forward(c);
	} else if (failed) {
		/* Fail closed: an unrecorded call is never made. */
		ag_list_del(&c->wait);
		mcp_refuse(c, 503, AG_JSONRPC_INTERNAL_ERROR,
			   "the gateway cannot record this call in its audit log: refused");
	} else {
		return false;
	}
	return true;
}

/* Moves every node of from to the end of to. */
static void list_take(struct ag_list *to, struct ag_list *from)
{
	while (!ag_list_empty(from)) {
		struct ag_list *n = from->next;

		ag_list_del(n);
		ag_list_add_tail(to, n);
	}
}

/*
 * The writer made progress, failed or recovered: release or refuse the
 * held.  Should releasing one ever close another held connection, a
 * saved next node would be freed under the walk: it takes them one at a
 * time from a list of its own instead, each back in audit_q before it is
 * looked at, so what stays held is there and what is released or closed
 * leaves it.
 */
void mcp_audit_woken(struct ag_waitq *q)
{
	struct ag_daemon *d = q->l->d;
	uint64_t durable = ag_audit_durable(d->audit);
	bool failed = ag_audit_failed(d->audit, NULL);
	struct ag_list walk;

	ag_list_init(&walk);
	list_take(&walk, &q->waiters);
	while (!ag_list_empty(&walk)) {
		struct mcp_conn *c = ag_container_of(walk.next, struct mcp_conn, wait);

		ag_list_del(&c->wait);
		ag_list_add_tail(&q->waiters, &c->wait);
		if (c->r->audit.result_held)
			result_woken(c, durable, failed);
		else
			audit_release(c, failed);
	}
}

/*
 * The turn's records went to the writer (loop.c, before the turn's sends
 * start): the calls decided in the turn are forwarded, or wait in audit_q
 * for a writer that was busy (or, under sync, for the disk).  True if
 * calls were decided meanwhile (a refused call's pipelined successor):
 * their records want another flush.
 */
bool ag_mcp_audit_flushed(struct ag_loop *l)
{
	struct ag_mcp *mcp = l->mcp;
	struct ag_list turn;
	bool failed;

	if (!mcp)
		return false;
	/* The flush signals nobody: what it wrote may release held calls too. */
	if (!ag_list_empty(&mcp->audit_q.waiters))
		mcp_audit_woken(&mcp->audit_q);
	ag_list_init(&turn);
	list_take(&turn, &mcp->audit_turn);
	failed = ag_audit_failed(l->d->audit, NULL);
	while (!ag_list_empty(&turn)) {
		struct mcp_conn *c = ag_container_of(turn.next, struct mcp_conn, wait);

		if (!audit_release(c, failed)) {
			ag_list_del(&c->wait);
			audit_park(c);
		}
	}
	return !ag_list_empty(&mcp->audit_turn);
}
