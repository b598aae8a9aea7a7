// SPDX-License-Identifier: GPL-2.0
/*
 * quota_charge: one tool call against the agent's call budgets, under the
 * quota value's lock, so that it and the connect hooks (sock.bpf.c
 * quota_take) never undo each other's changes.
 *
 * Its own object rather than a program of sock.bpf.c: it is attached to
 * nothing and pinned nowhere, so the daemon loads it at every start, fresh
 * or adopted, with the instance's pinned quota map reused (libbpf
 * bpf_map__reuse_fd), and the pinned instance's programs stay untouched.
 *
 * A syscall program: BPF_PROG_TEST_RUN copies the context in and back out
 * with no packet to build, and running a loaded program by fd needs no
 * capability, so the daemon still charges after dropping them.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "agentgate.h"

char LICENSE[] SEC("license") = "GPL";

/* The definition of sock.bpf.c: libbpf checks it against the pinned map. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AG_MAX_AGENTS);
	__type(key, __u64);
	__type(value, struct ag_quota);
} quota SEC(".maps");

SEC("syscall")
int quota_charge(struct ag_charge *c)
{
	__u64 agent_id = c->agent_id, now = bpf_ktime_get_ns();
	struct ag_quota *q = bpf_map_lookup_elem(&quota, &agent_id);
	__u32 spent = AG_BUDGET_NONE, limit = 0;

	c->spent = AG_BUDGET_NONE;
	c->limit = 0;
	c->calls_minute = c->calls_day = 0;
	if (!q)
		return 0;
	bpf_spin_lock(&q->lock);
	/*
	 * A window that has ended, or never started (a new entry has 0, which
	 * is not "at boot"), starts with this call.
	 */
	if (!q->minute_start_ns || now - q->minute_start_ns >= AG_MINUTE_NS) {
		q->minute_start_ns = now;
		q->calls_minute = 0;
	}
	if (!q->day_start_ns || now - q->day_start_ns >= AG_DAY_NS) {
		q->day_start_ns = now;
		q->calls_day = 0;
	}
	if (q->calls_per_minute && q->calls_minute >= q->calls_per_minute) {
		spent = AG_BUDGET_MINUTE;
		limit = q->calls_per_minute;
	} else if (q->calls_per_day && q->calls_day >= q->calls_per_day) {
		spent = AG_BUDGET_DAY;
		limit = q->calls_per_day;
	}
	if (spent) {
		q->calls_refused++;
	} else {
		q->calls_minute++;
		q->calls_day++;
	}
	c->calls_minute = q->calls_minute;
	c->calls_day = q->calls_day;
	bpf_spin_unlock(&q->lock);
	c->spent = spent;
	c->limit = limit;
	return 0;
}
