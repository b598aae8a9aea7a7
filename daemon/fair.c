// SPDX-License-Identifier: GPL-2.0
/*
 * Fair sharing (see fair.h).
 *
 * Descriptor arithmetic.  At start the soft RLIMIT_NOFILE is raised to the
 * hard limit (no privilege needed), giving `limit` descriptors.  Of these,
 *
 *	reserve = RESERVE_FIXED + limit / RESERVE_SHARE + pooled
 *
 * stay with the daemon: listeners, BPF objects, the audit log and its
 * directory, the control socket and its clients, the DNS relay and the
 * resolver's sockets, credential fetches, eventfds, and the idle upstream
 * connections the tool servers' pools may keep (pooled: the sum of their
 * upstream_pool).  Each agent connection costs at most FDS_PER_CONN
 * descriptors (the agent's socket, the upstream socket of its request and,
 * on the MCP path, one it gave up still draining), so
 *
 *	ceiling = (limit - reserve) / FDS_PER_CONN
 *
 * agent connections fit in all (at least 1).  An agent's cap is its
 * configured one, but never more than its fair share of the ceiling,
 * ceiling / max(2, configured agents), so no agent can hold what another
 * may need.  With limit 1024 and no tool server: ceiling 234; with
 * 524288: 163754.
 *
 * Every agent socket is counted from accept (ag_fair_admit) to its close
 * (ag_fair_release, called where the socket is closed) in an array indexed
 * by descriptor number, so a release costs O(1) and needs no owner pointer
 * carried from the classifier to the relay or the MCP path.
 *
 * Timeouts: every watch is looked at by one periodic timeout on the ring,
 * every quarter of the shorter timeout (between 50 ms and 1 s): a sweep
 * costs a few nanoseconds per connection and the ceiling bounds how many
 * there are (a 10,000-connection sweep takes ~20 us).  Ordering hazard: an
 * expiry closes connections, which may stop other watches; the expired
 * ones are first moved to a list of their own, so a stop unlinks from
 * there and the sweep never follows a freed node.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "daemon.h"
#include "fair.h"
#include "loop.h"

#define RESERVE_FIXED 256
#define RESERVE_SHARE 16
#define FDS_PER_CONN 3
#define FD_INDEX_MAX (1u << 24) /* descriptors tracked, at most */
#define AGENT_SLOTS 4096	/* agents with a slot table entry; a power of two */
#define TICK_MIN_MS 50
#define TICK_MAX_MS 1000

enum { OP_TICK = 1 };

#define REFUSAL_KINDS 8 /* reasons counted apart per agent; the last one: "other" */
#define REFUSAL_NAME 24

struct fair_refusal {
	char reason[REFUSAL_NAME]; /* "": unused */
	uint64_t n;
};

struct fair_agent {
	uint64_t id; /* the root agent's cgroup id; 0: free entry */
	uint32_t conns, cap;
	uint64_t refused; /* every refusal of the daemon's (ag_fair_refused) */
	struct fair_refusal by_reason[REFUSAL_KINDS];
	char name[AG_NAME_LEN];
};

struct ag_fair {
	struct ag_io io;
	struct ag_loop *l;
	struct __kernel_timespec tick;
	struct ag_list watches;
	uint32_t limit, reserve, ceiling, share, active;
	uint64_t refused_cap, refused_ceiling, header_timeouts, idle_timeouts;
	uint32_t nfd;
	uint16_t *owner; /* by descriptor: agents index + 1, 0 none */
	uint32_t nr_agents;
	struct fair_agent agents[AGENT_SLOTS];
};

static uint32_t raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit up = { .rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max };

		/* An unlimited hard limit is capped by fs.nr_open: keep the soft one then. */
		if (!setrlimit(RLIMIT_NOFILE, &up))
			rl.rlim_cur = rl.rlim_max;
	}
	return rl.rlim_cur > FD_INDEX_MAX ? FD_INDEX_MAX : (uint32_t)rl.rlim_cur;
}

static void size_ceiling(struct ag_fair *f, const struct ag_conf *c)
{
	uint32_t agents = c->nr_agents > 2 ? (uint32_t)c->nr_agents : 2;
	uint64_t pooled = 0;

	/* At most 64 servers of at most AG_UPSTREAM_POOL_MAX: no overflow. */
	for (int i = 0; i < c->nr_servers; i++)
		pooled += c->servers[i].upstream_pool;
	f->reserve = RESERVE_FIXED + f->limit / RESERVE_SHARE +
		     (pooled < f->limit ? (uint32_t)pooled : f->limit);
	f->ceiling =
	    f->limit > f->reserve + FDS_PER_CONN ? (f->limit - f->reserve) / FDS_PER_CONN : 1;
	f->share = f->ceiling / agents ? f->ceiling / agents : 1;
}

static void tick_arm(struct ag_fair *f)
{
	struct io_uring_sqe *sqe = ag_ring_sqe(&f->l->ring, &f->io, OP_TICK);

	if (!sqe) {
		/* Without the sweep no timeout holds: stop rather than run unbounded. */
		ag_log(AG_LOG_ERROR, "fair", "error=\"no submission queue entry for the sweep\"");
		if (!f->l->status)
			f->l->status = -EBUSY;
		return;
	}
	io_uring_prep_timeout(sqe, &f->tick, 0, 0);
}

/* The reason w is due at now, or NULL. */
static const char *due(const struct ag_fair *f, const struct ag_watch *w, uint64_t now)
{
	uint64_t idle = (uint64_t)f->l->d->conf.idle_timeout_ms * 1000000;

	if (w->head_ns && now >= w->head_ns)
		return "header_timeout";
	if (now - w->active_ns >= idle)
		return "idle_timeout";
	return NULL;
}

static void sweep(struct ag_fair *f)
{
	uint64_t now = ag_now_ns();
	struct ag_list expired, *pos, *next;

	ag_list_init(&expired);
	for (pos = f->watches.next; pos != &f->watches; pos = next) {
		struct ag_watch *w = ag_container_of(pos, struct ag_watch, node);

		next = pos->next;
		if (due(f, w, now) && w->refresh)
			w->refresh(w);
		if (due(f, w, now)) {
			ag_list_del(pos);
			ag_list_add_tail(&expired, pos);
		}
	}
	while (!ag_list_empty(&expired)) {
		struct ag_watch *w = ag_container_of(expired.next, struct ag_watch, node);
		const char *why = due(f, w, now);

		ag_list_del(&w->node);
		if (!strcmp(why, "header_timeout"))
			f->header_timeouts++;
		else
			f->idle_timeouts++;
		w->expire(w, why);
	}
}

static void tick_complete(struct ag_io *io, unsigned int op, const struct io_uring_cqe *cqe)
{
	struct ag_fair *f = ag_container_of(io, struct ag_fair, io);

	if (f->l->stopping)
		return;
	sweep(f);
	tick_arm(f);
}

int ag_fair_init(struct ag_loop *l, struct ag_err *err)
{
	const struct ag_conf *c = &l->d->conf;
	uint32_t ms =
	    c->header_timeout_ms < c->idle_timeout_ms ? c->header_timeout_ms : c->idle_timeout_ms;
	struct ag_fair *f = calloc(1, sizeof(*f));
	int ret;

	if (!f)
		return ag_errf(err, ENOMEM, "fair: out of memory");
	f->l = l;
	f->io.complete = tick_complete;
	ag_list_init(&f->watches);
	f->limit = raise_nofile();
	size_ceiling(f, c);
	/* Lazily backed: only the pages of descriptor numbers in use are touched. */
	f->nfd = f->limit;
	if (!(f->owner = calloc(f->nfd, sizeof(*f->owner)))) {
		ret = ag_errf(err, ENOMEM, "fair: %u descriptors: out of memory", f->nfd);
		free(f);
		return ret;
	}
	ms /= 4;
	ms = ms < TICK_MIN_MS ? TICK_MIN_MS : ms > TICK_MAX_MS ? TICK_MAX_MS : ms;
	f->tick.tv_sec = ms / 1000;
	f->tick.tv_nsec = (long long)(ms % 1000) * 1000000;
	l->fair = f;
	ag_log(AG_LOG_INFO, "limits",
	       "nofile=%u reserve=%u ceiling=%u fair_share=%u max_conns_per_agent=%u "
	       "header_timeout_ms=%u idle_timeout_ms=%u",
	       f->limit, f->reserve, f->ceiling, f->share, c->max_conns_per_agent,
	       c->header_timeout_ms, c->idle_timeout_ms);
	tick_arm(f);
	return 0;
}

void ag_fair_stop(struct ag_loop *l)
{
	struct io_uring_sqe *sqe = ag_ring_sqe_untracked(&l->ring);

	/* A timeout has no descriptor: it is cancelled by its user_data. */
	if (sqe)
		io_uring_prep_cancel64(sqe, (uintptr_t)&l->fair->io | OP_TICK, 0);
}

void ag_fair_fini(struct ag_loop *l)
{
	if (!l->fair)
		return;
	free(l->fair->owner);
	free(l->fair);
	l->fair = NULL;
}

/* The entry of agent id, made on first sight; NULL when the table is full. */
static struct fair_agent *agent_of(struct ag_fair *f, const struct ag_origin *o)
{
	const struct ag_conf *c = &f->l->d->conf;
	uint32_t i = (uint32_t)(o->agent_cgroup_id * 0x9e3779b97f4a7c15ull >> 52);
	const struct ag_agent_conf *ac;
	struct fair_agent *a;
	struct ag_agent agent;

	for (uint32_t n = 0; n < AGENT_SLOTS; n++, i = (i + 1) & (AGENT_SLOTS - 1)) {
		a = &f->agents[i];
		if (a->id == o->agent_cgroup_id)
			return a;
		if (!a->id)
			break;
	}
	/* Kept while the daemon runs: agents are few, and their counts are stats. */
	if (a->id || f->nr_agents >= AGENT_SLOTS / 2)
		return NULL;
	a->id = o->agent_cgroup_id;
	f->nr_agents++;
	if (!ag_agent_lookup(&f->l->d->kern, o->agent_cgroup_id, &agent))
		memcpy(a->name, agent.name, sizeof(a->name));
	ac = ag_conf_agent(c, a->name);
	a->cap = ac && ac->max_conns ? ac->max_conns : c->max_conns_per_agent;
	if (a->cap > f->share)
		a->cap = f->share;
	return a;
}

const char *ag_fair_admit(struct ag_loop *l, int fd, const struct ag_origin *o)
{
	struct ag_fair *f = l->fair;
	struct fair_agent *a = agent_of(f, o);

	/* Fail closed: a connection that cannot be counted is not taken. */
	/* The caller's reject() counts these for the agent (ag_fair_refused). */
	if (!a || fd < 0 || (uint32_t)fd >= f->nfd || f->active >= f->ceiling) {
		f->refused_ceiling++;
		return "over_ceiling";
	}
	/* Fail closed: the agent holds its share already. */
	if (a->conns >= a->cap) {
		f->refused_cap++;
		return "over_agent_cap";
	}
	a->conns++;
	f->active++;
	f->owner[fd] = (uint16_t)(a - f->agents + 1);
	return NULL;
}

void ag_fair_refused(struct ag_loop *l, const struct ag_origin *o, const char *reason)
{
	struct fair_agent *a;
	struct fair_refusal *r;
	size_t i = 0;

	if (!l->fair || !o || !o->agent_cgroup_id || !(a = agent_of(l->fair, o)))
		return;
	r = a->by_reason;
	while (i < REFUSAL_KINDS - 1 && r[i].reason[0] &&
	       strncmp(r[i].reason, reason, REFUSAL_NAME - 1))
		i++;
	if (!r[i].reason[0])
		snprintf(r[i].reason, sizeof(r[i].reason), "%s",
			 i == REFUSAL_KINDS - 1 ? "other" : reason);
	r[i].n++;
	a->refused++;
}

void ag_fair_release(struct ag_loop *l, int fd)
{
	struct ag_fair *f = l->fair;
	uint16_t idx;

	if (fd < 0 || (uint32_t)fd >= f->nfd || !(idx = f->owner[fd]))
		return;
	f->owner[fd] = 0;
	f->agents[idx - 1].conns--;
	f->active--;
}

uint64_t ag_fair_head_due(const struct ag_loop *l)
{
	return ag_now_ns() + (uint64_t)l->d->conf.header_timeout_ms * 1000000;
}

void ag_watch_start(struct ag_loop *l, struct ag_watch *w, uint64_t head_ns, ag_watch_expire expire)
{
	w->active_ns = ag_now_ns();
	w->head_ns = head_ns;
	w->expire = expire;
	w->refresh = NULL;
	ag_list_add_tail(&l->fair->watches, &w->node);
}

void ag_watch_stop(struct ag_watch *w)
{
	ag_list_del(&w->node);
}

json_t *ag_fair_refusals(const struct ag_loop *l)
{
	const struct ag_fair *f = l->fair;
	json_t *agents = json_array(), *reasons;

	for (uint32_t i = 0; f && agents && i < AGENT_SLOTS; i++) {
		const struct fair_agent *a = &f->agents[i];

		if (!a->id || !a->refused)
			continue;
		reasons = json_object();
		for (size_t k = 0; reasons && k < REFUSAL_KINDS && a->by_reason[k].reason[0]; k++)
			json_object_set_new(reasons, a->by_reason[k].reason,
					    json_integer((json_int_t)a->by_reason[k].n));
		json_array_append_new(agents,
				      json_pack("{s:s,s:I,s:I,s:o?}", "agent", a->name, "cgroup_id",
						(json_int_t)a->id, "refused",
						(json_int_t)a->refused, "reasons", reasons));
	}
	return agents;
}

json_t *ag_fair_status(const struct ag_loop *l)
{
	const struct ag_fair *f = l->fair;
	const struct ag_conf *c = &l->d->conf;
	json_t *agents = json_array(), *st;

	for (uint32_t i = 0; agents && i < AGENT_SLOTS; i++) {
		const struct fair_agent *a = &f->agents[i];

		if (a->id && (a->conns || a->refused))
			json_array_append_new(agents,
					      json_pack("{s:s,s:I,s:i,s:i,s:I}", "agent", a->name,
							"cgroup_id", (json_int_t)a->id, "conns",
							(int)a->conns, "cap", (int)a->cap,
							"refused", (json_int_t)a->refused));
	}
	st = json_pack(
	    "{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:I,s:I,s:I,s:I}", "nofile", (int)f->limit, "reserve",
	    (int)f->reserve, "ceiling", (int)f->ceiling, "fair_share", (int)f->share,
	    "max_conns_per_agent", (int)c->max_conns_per_agent, "header_timeout_ms",
	    (int)c->header_timeout_ms, "idle_timeout_ms", (int)c->idle_timeout_ms, "active",
	    (int)f->active, "refused_cap", (json_int_t)f->refused_cap, "refused_ceiling",
	    (json_int_t)f->refused_ceiling, "header_timeouts", (json_int_t)f->header_timeouts,
	    "idle_timeouts", (json_int_t)f->idle_timeouts);
	if (st && agents)
		json_object_set_new(st, "agents", agents);
	else
		json_decref(agents);
	return st;
}
