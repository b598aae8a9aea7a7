// SPDX-License-Identifier: GPL-2.0
/*
 * Call budgets and loop protection of the MCP path (budget.h).
 *
 * Budgets are charged in the kernel (lib/kern.h ag_quota_charge runs
 * bpf/daemon.bpf.c), under the quota value's lock the connect hooks also
 * take: the daemon never writes usage itself.  The program does nothing
 * for an agent without a quota entry, so the daemon skips its system call
 * for those it knows have none: the ids with an entry are read from the
 * map at start (after the control socket listens, so a change made before
 * is read and one made after is told), again whenever agentgatectl quota
 * set says it changed one ("budgets_changed", control.c), and by a call
 * that finds them read more than QUOTA_REREAD_NS ago, so an entry written
 * by anything else (bpftool) is charged within that time (the price: a
 * walk of the quota map, a system call per entry, at most once a second
 * while calls come).  Until the first read, or after one that failed,
 * every call is charged.
 *
 * Loop protection is daemon memory, per configured agent, allocated at the
 * agent's first call:
 *  - a call is identified by the SHA-256 of its server, tool name and
 *    canonical arguments (lib/toolhash.h's RFC 8785-style serialisation,
 *    so {"a":1,"b":2} and {"b":2,"a":1.0} are the same call);
 *  - at most LOOP_CALLS distinct calls are remembered; a new one, when all
 *    slots are in use, takes the slot of the least recently made (an LRU
 *    list), so an agent varying its arguments costs a fixed amount of
 *    memory, whatever it sends: LOOP_CALLS x (slot + max_identical times);
 *  - each slot keeps the times of its last max_identical calls that went
 *    through, a ring ordered oldest first: a call is one too many when the
 *    ring is full and its oldest time is still inside the window (a
 *    sliding window, exact);
 *  - slots are found by the hash's first bytes in LOOP_BUCKETS chains.
 * Refused or held calls are not recorded: the window slides on the calls
 * that ran, so a loop that keeps going stays stopped only until the
 * oldest of them leaves the window.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>

#include "budget.h"
#include "fleet.h"
#include "lru.h"
#include "toolhash.h"

#define LOOP_CALLS 1024
#define LOOP_BUCKETS 2048 /* a power of two */
#define LOOP_NIL UINT32_MAX
/* How stale the ids with a quota entry may be when a call is charged. */
#define QUOTA_REREAD_NS 1000000000ull

struct loop_call {
	uint8_t hash[32];
	uint32_t chain;		/* next slot in the bucket, LOOP_NIL at the end */
	uint32_t oldest, count; /* the ring: times[oldest], count of them */
};

struct loop_agent {
	/* The configuration this state was made for: a change starts afresh. */
	char name[AG_NAME_LEN];
	uint32_t max;
	uint64_t window_ns;
	struct ag_lru lru; /* over calls[]: a new call takes the least recent */
	struct ag_lru_link links[LOOP_CALLS];
	uint32_t bucket[LOOP_BUCKETS];
	struct loop_call calls[LOOP_CALLS];
	uint64_t times[]; /* LOOP_CALLS rings of max */
};

struct ag_budget_state {
	/* The agent ids with a quota entry, sorted; valid only when known. */
	bool known;
	uint64_t read_ns; /* when they were last read (or tried) */
	size_t nr_quota;
	uint64_t *quota_ids;
	/* Loop protection per configured agent, by its position in d->conf.agents. */
	int nr;
	struct loop_agent *agents[];
};

int ag_budget_init(struct ag_daemon *d, struct ag_err *err)
{
	d->budget =
	    calloc(1, sizeof(*d->budget) + d->conf.nr_agents * sizeof(d->budget->agents[0]));
	if (!d->budget)
		return ag_errf(err, ENOMEM, "loop protection: out of memory");
	d->budget->nr = d->conf.nr_agents;
	return 0;
}

void ag_budget_fini(struct ag_daemon *d)
{
	if (!d->budget)
		return;
	for (int i = 0; i < d->budget->nr; i++)
		free(d->budget->agents[i]);
	free(d->budget->quota_ids);
	free(d->budget);
	d->budget = NULL;
}

static void decide(struct ag_decision *dec, enum ag_policy_outcome kind, const char *rule,
		   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void decide(struct ag_decision *dec, enum ag_policy_outcome kind, const char *rule,
		   const char *fmt, ...)
{
	va_list ap;

	dec->kind = kind;
	dec->rule = rule;
	dec->policies[0] = '\0';
	va_start(ap, fmt);
	vsnprintf(dec->reason, sizeof(dec->reason), fmt, ap);
	va_end(ap);
}

/*
 * The configuration of the agent whose quota entry the kernel charges: the
 * root of a sub-agent's delegation chain, since the hooks account a
 * sub-agent's connections to the root's cgroup.  Without a chain ac's
 * agent is its own root.
 */
static const struct ag_agent_conf *budget_owner(struct ag_daemon *d, const struct ag_agent_conf *ac,
						const struct ag_origin *o,
						const struct ag_delegation *dg)
{
	if (o->cgroup_id == o->agent_cgroup_id || !dg)
		return ac;
	return ag_conf_agent(&d->conf, dg->name[0]);
}

static int id_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

void ag_budget_refresh(struct ag_daemon *d)
{
	struct ag_budget_state *b = d->budget;
	uint64_t *ids, key, next, *prev = NULL;
	size_t n = 0;
	int e = 0;

	if (!b)
		return;
	/* Fail closed: while the ids are read, and if that fails, every call is charged. */
	b->known = false;
	b->read_ns = ag_now_ns();
	ids = malloc(AG_MAX_AGENTS * sizeof(*ids));
	if (!ids)
		e = ENOMEM;
	/* An entry deleted meanwhile restarts the walk: bounded, and a miss is an error. */
	while (!e && !bpf_map_get_next_key(d->kern.map_fd[AG_MAP_QUOTA], prev, &next)) {
		if (n == AG_MAX_AGENTS) {
			e = EOVERFLOW;
			break;
		}
		ids[n++] = key = next;
		prev = &key;
	}
	if (!e && errno != ENOENT)
		e = errno;
	if (e) {
		ag_log(AG_LOG_ERROR, "quota",
		       "error=\"map quota: read: %s; every call is charged\"", strerror(e));
		free(ids);
		return;
	}
	qsort(ids, n, sizeof(*ids), id_cmp);
	free(b->quota_ids);
	b->quota_ids = ids;
	b->nr_quota = n;
	b->known = true;
}

/*
 * Whether quota_charge would find agent_id's entry, as far as the daemon
 * can tell: ids read more than QUOTA_REREAD_NS ago are read again first.
 */
static bool may_have_quota(struct ag_daemon *d, uint64_t agent_id)
{
	struct ag_budget_state *b = d->budget;

	if (b && ag_now_ns() - b->read_ns >= QUOTA_REREAD_NS)
		ag_budget_refresh(d);
	return !b || !b->known ||
	       bsearch(&agent_id, b->quota_ids, b->nr_quota, sizeof(agent_id), id_cmp);
}

/*
 * Returns whether the call may go on.  Every agent with a quota entry is
 * charged, not only those configured with a budget: agentgatectl quota set
 * gives one live (and tells the daemon, ag_budget_refresh).
 */
static bool charge(struct ag_daemon *d, const char *owner, const struct ag_origin *o,
		   struct ag_decision *dec)
{
	struct ag_charge c;
	struct ag_err err;
	char q[512];

	if (!may_have_quota(d, o->agent_cgroup_id))
		return true;
	if (ag_quota_charge(&d->kern, o->agent_cgroup_id, &c, &err)) {
		ag_log(AG_LOG_ERROR, "quota", "agent=%s error=%s", owner,
		       ag_logq(q, sizeof(q), err.msg));
		decide(dec, AG_OUTCOME_DENY, "quota",
		       "the call budget of agent %s could not be charged", owner);
		return false;
	}
	if (c.spent == AG_BUDGET_NONE)
		return true;
	decide(dec, AG_OUTCOME_DENY, "quota", "call budget %s (%u) of agent %s is spent",
	       c.spent == AG_BUDGET_MINUTE ? "calls_per_minute" : "calls_per_day", c.limit, owner);
	return false;
}

/*
 * An owner with fleet-wide budgets takes the call from its lease first
 * (fleet.h): a call the kernel then refuses costs the fleet one call,
 * never the other way round, so the fleet never serves more than N.
 */
static bool fleet_charge(struct ag_daemon *d, const struct ag_agent_conf *owner, const char *name,
			 struct ag_decision *dec)
{
	struct ag_fleet_refusal why = { 0 };

	switch (ag_fleet_take(d->fleet, owner, &why)) {
	case AG_FLEET_OK:
		return true;
	case AG_FLEET_SPENT:
		decide(dec, AG_OUTCOME_DENY, "quota",
		       "call budget %s (%u) of agent %s is spent across the fleet", why.window,
		       why.limit, name);
		break;
	case AG_FLEET_NO_LEASE:
		/* Fail closed: the refill is on its way; the agent may retry. */
		decide(dec, AG_OUTCOME_DENY, "quota",
		       "call budget %s of agent %s: no fleet lease held yet, retry", why.window,
		       name);
		break;
	case AG_FLEET_UNREACHABLE:
		/* Fail closed: on_unreachable is fail_closed. */
		decide(dec, AG_OUTCOME_DENY, "quota",
		       "call budget %s of agent %s: the fleet's redis is unreachable", why.window,
		       name);
		break;
	}
	return false;
}

/*
 * SHA-256 of {"name": "server/tool", "inputSchema": arguments}: the tool
 * definition hash's canonical form, reused for a call.  Server names have
 * no '/', so the name is unambiguous.
 */
static int call_hash(const struct ag_server_conf *srv, const struct ag_jsonrpc_msg *m,
		     uint8_t hash[32], struct ag_err *err)
{
	char hex[AG_TOOLHASH_HEX_LEN + 1];
	json_t *call = json_pack("{s:s++,s:O*}", "name", srv ? srv->name : "", "/",
				 m->name ? m->name : "", "inputSchema", m->arguments);
	int ret;

	if (!call)
		return ag_errf(err, ENOMEM, "call hash: out of memory");
	ret = ag_tool_hash(call, hex, err);
	json_decref(call);
	for (int i = 0; !ret && i < 32; i++)
		sscanf(hex + 2 * i, "%2hhx", &hash[i]);
	return ret;
}

static struct loop_agent *loop_state(struct ag_daemon *d, const struct ag_agent_conf *ac)
{
	ptrdiff_t i = ac - d->conf.agents;
	uint64_t window_ns = (uint64_t)ac->loop_window_s * 1000000000ull;
	struct loop_agent *la;

	if (!d->budget || i < 0 || i >= d->budget->nr)
		return NULL;
	la = d->budget->agents[i];
	if (la && la->max == ac->loop_max_identical && la->window_ns == window_ns &&
	    !strcmp(la->name, ac->name))
		return la;
	free(la);
	la = calloc(1, sizeof(*la) +
			   (size_t)LOOP_CALLS * ac->loop_max_identical * sizeof(la->times[0]));
	d->budget->agents[i] = la;
	if (!la)
		return NULL;
	memcpy(la->name, ac->name, sizeof(la->name));
	la->max = ac->loop_max_identical;
	la->window_ns = window_ns;
	ag_lru_init(&la->lru, la->links, LOOP_CALLS);
	memset(la->bucket, 0xff, sizeof(la->bucket));
	return la;
}

static uint32_t bucket_of(const uint8_t hash[32])
{
	uint32_t b;

	memcpy(&b, hash, sizeof(b));
	return b & (LOOP_BUCKETS - 1);
}

/* The slot of hash, made the most recent; a new one when there is none. */
static struct loop_call *loop_find(struct loop_agent *la, const uint8_t hash[32])
{
	uint32_t *link = &la->bucket[bucket_of(hash)], i;
	bool reused;

	for (i = *link; i != LOOP_NIL; i = la->calls[i].chain)
		if (!memcmp(la->calls[i].hash, hash, 32)) {
			ag_lru_touch(&la->lru, i);
			return &la->calls[i];
		}
	i = ag_lru_take(&la->lru, &reused);
	if (reused) {
		uint32_t *p;

		/* The least recent call leaves its bucket before its slot is reused. */
		for (p = &la->bucket[bucket_of(la->calls[i].hash)]; *p != i;
		     p = &la->calls[*p].chain)
			;
		*p = la->calls[i].chain;
	}
	memcpy(la->calls[i].hash, hash, 32);
	la->calls[i].oldest = la->calls[i].count = 0;
	la->calls[i].chain = *link;
	*link = i;
	return &la->calls[i];
}

/* Whether one more call now would exceed the limit; forgets times out of the window. */
static bool loop_over(struct loop_agent *la, struct loop_call *c, uint64_t now)
{
	uint64_t *times = &la->times[(size_t)(c - la->calls) * la->max];

	while (c->count && now - times[c->oldest] >= la->window_ns) {
		c->oldest = (c->oldest + 1) % la->max;
		c->count--;
	}
	return c->count >= la->max;
}

static void loop_record(struct loop_agent *la, struct loop_call *c, uint64_t now)
{
	uint64_t *times = &la->times[(size_t)(c - la->calls) * la->max];

	times[(c->oldest + c->count) % la->max] = now;
	c->count++;
}

void ag_budget_check(struct ag_daemon *d, const struct ag_agent_conf *ac, const char *agent,
		     const struct ag_origin *o, const struct ag_delegation *dg,
		     const struct ag_server_conf *srv, const struct ag_jsonrpc_msg *m,
		     struct ag_decision *dec)
{
	const struct ag_agent_conf *owner = budget_owner(d, ac, o, dg);
	struct loop_agent *la = NULL;
	struct loop_call *call = NULL;
	uint64_t now = ag_now_ns();
	bool looping = false;
	uint8_t hash[32];
	struct ag_err err;
	char q[512];

	if (ac && ac->loop_max_identical) {
		if (!call_hash(srv, m, hash, &err) && !(la = loop_state(d, ac)))
			ag_errf(&err, ENOMEM, "out of memory");
		if (!la) {
			ag_log(AG_LOG_ERROR, "loop_protection", "agent=%s error=%s", ac->name,
			       ag_logq(q, sizeof(q), err.msg));
			decide(dec, AG_OUTCOME_DENY, "loop", "loop protection of agent %s failed",
			       agent);
			return;
		}
		call = loop_find(la, hash);
		looping = loop_over(la, call, now);
		if (looping && !ac->loop_escalate) {
			decide(dec, AG_OUTCOME_DENY, "loop",
			       "loop protection: more than %u identical calls of %s/%s within %u s "
			       "by agent %s",
			       ac->loop_max_identical, srv ? srv->name : "", m->name ? m->name : "",
			       ac->loop_window_s, agent);
			return;
		}
	}
	/* An escalated call is charged now: it runs if a human approves. */
	if (!fleet_charge(d, owner, owner ? owner->name : agent, dec) ||
	    !charge(d, owner ? owner->name : agent, o, dec))
		return;
	if (looping) {
		decide(
		    dec, AG_OUTCOME_ESCALATE, "loop",
		    "loop protection: more than %u identical calls of %s/%s within %u s by agent "
		    "%s; held for approval",
		    ac->loop_max_identical, srv ? srv->name : "", m->name ? m->name : "",
		    ac->loop_window_s, agent);
		return;
	}
	if (call)
		loop_record(la, call, now);
}
