// SPDX-License-Identifier: GPL-2.0
/* The quota map from user space: every access under the value's lock. */
#include <errno.h>
#include <string.h>
#include <bpf/bpf.h>

#include "kern.h"

int ag_quota_get(const struct ag_kern *k, uint64_t agent_id, struct ag_quota *q)
{
	memset(q, 0, sizeof(*q));
	if (bpf_map_lookup_elem_flags(k->map_fd[AG_MAP_QUOTA], &agent_id, q, BPF_F_LOCK))
		return -errno;
	return 0;
}

/* The hooks test the flag before they look for a quota at all. */
static int set_agent_flag(const struct ag_kern *k, uint64_t agent_id, bool on, struct ag_err *err)
{
	struct ag_agent a;

	if (ag_agent_lookup(k, agent_id, &a))
		return ag_errf(err, ENOENT, "agent with cgroup id %llu is not registered",
			       (unsigned long long)agent_id);
	if (!!(a.flags & AG_AGENT_F_QUOTA) == on)
		return 0;
	a.flags = on ? a.flags | AG_AGENT_F_QUOTA : a.flags & ~AG_AGENT_F_QUOTA;
	if (bpf_map_update_elem(k->map_fd[AG_MAP_AGENTS], &agent_id, &a, BPF_EXIST))
		return ag_errf(err, errno, "agent %s: map agents: update: %s", a.name,
			       strerror(errno));
	return 0;
}

int ag_quota_set(const struct ag_kern *k, uint64_t agent_id, const struct ag_quota_limits *l,
		 struct ag_err *err)
{
	int fd = k->map_fd[AG_MAP_QUOTA];
	struct ag_quota q;
	uint64_t cap = (uint64_t)l->connect_burst * AG_QUOTA_MILLI;
	int ret;

	if (!l->connect_rate && !l->connect_burst && !l->calls_per_minute && !l->calls_per_day) {
		/* Flag first: a hook that still sees it finds no entry, no limit. */
		ret = set_agent_flag(k, agent_id, false, err);
		if (!ret && bpf_map_delete_elem(fd, &agent_id) && errno != ENOENT)
			ret = ag_errf(err, errno, "map quota: delete: %s", strerror(errno));
		return ret;
	}
	if (l->connect_rate && !l->connect_burst)
		return ag_errf(err, EINVAL, "a connect rate needs a burst of at least 1");
	if (ag_quota_get(k, agent_id, &q)) {
		memset(&q, 0, sizeof(q));
		q.connect_tokens_milli = cap;
		q.connect_refill_ns = ag_now_ns();
	}
	q.connect_rate = l->connect_rate;
	q.connect_burst = l->connect_burst;
	q.calls_per_minute = l->calls_per_minute;
	q.calls_per_day = l->calls_per_day;
	if (q.connect_tokens_milli > cap)
		q.connect_tokens_milli = cap;
	if (bpf_map_update_elem(fd, &agent_id, &q, BPF_F_LOCK))
		return ag_errf(err, errno, "map quota: update: %s", strerror(errno));
	return set_agent_flag(k, agent_id, true, err);
}

int ag_quota_reset(const struct ag_kern *k, uint64_t agent_id, struct ag_err *err)
{
	struct ag_quota q;

	if (ag_quota_get(k, agent_id, &q))
		return ag_errf(err, ENOENT, "no quota for agent with cgroup id %llu",
			       (unsigned long long)agent_id);
	q.connect_tokens_milli = (uint64_t)q.connect_burst * AG_QUOTA_MILLI;
	q.connect_refill_ns = ag_now_ns();
	q.connect_refused = 0;
	q.calls_minute = q.calls_day = q.calls_refused = 0;
	q.minute_start_ns = q.day_start_ns = q.connect_refill_ns;
	if (bpf_map_update_elem(k->map_fd[AG_MAP_QUOTA], &agent_id, &q, BPF_F_LOCK | BPF_EXIST))
		return ag_errf(err, errno, "map quota: update: %s", strerror(errno));
	return 0;
}
