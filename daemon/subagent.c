// SPDX-License-Identifier: GPL-2.0
/*
 * Sub-agent chains of connections (see subagent.h), on the loop thread.
 *
 * Every accept asks, so the answer must cost O(1) whatever an agent does
 * with its subtree (it may make hundreds of cgroups and connect from each
 * once).  Three steps, cheapest first:
 *  1. a cache keyed by cgroup id (ids are never reused), one table per
 *     root agent, each holding at most AGENT_ENTRIES cgroups and evicting
 *     only its own least recently used: one agent's churn never evicts
 *     another's entries;
 *  2. on a miss, the cgroup of the process the kernel recorded, read from
 *     /proc/<pid>/cgroup and checked against the id by a stat: a file read
 *     and one path walk (~20 us), never a tree walk;
 *  3. only when that process is gone or moved since its connect, the
 *     bounded search of the agent's subtree (lib/delegation.h), at most
 *     LIMIT_RATE a second per agent (limit.h): beyond, the cgroup is not
 *     found ("?"), as when the search itself gives up.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "limit.h"
#include "lru.h"
#include "subagent.h"

/* Above the 512 cgroups agentgatectl run lets one run make. */
#define AGENT_ENTRIES 1024
#define AGENT_BUCKETS 1024 /* per agent; a power of two */
#define AGENTS_BUCKETS 64  /* root agents; a power of two */
#define AGENTS_MAX 1024	   /* root agents with a table; later ones are not cached */

struct entry {
	struct entry *next; /* in its bucket */
	uint32_t slot;	    /* in its agent's slot[] */
	uint64_t cgroup_id;
	char rel[]; /* as long as it is: most are short */
};

struct agent_cache {
	struct agent_cache *next;
	uint64_t agent_cgroup_id;
	char root[AG_NAME_LEN];
	struct ag_lru lru; /* over slot[]: a new entry takes the least recent */
	struct ag_lru_link links[AGENT_ENTRIES];
	struct entry *slot[AGENT_ENTRIES]; /* NULL: never filled, or out of memory */
	struct entry *bucket[AGENT_BUCKETS];
};

struct ag_subagents {
	struct agent_cache *bucket[AGENTS_BUCKETS];
	unsigned int nr_agents;
	struct ag_limiter searches; /* subtree searches, per agent */
	struct ag_limiter limit;    /* failed lookups' log lines */
};

int ag_subagents_new(struct ag_subagents **out, struct ag_err *err)
{
	if (!(*out = calloc(1, sizeof(**out))))
		return ag_errf(err, ENOMEM, "sub-agents: out of memory");
	return 0;
}

void ag_subagents_free(struct ag_subagents *s)
{
	if (!s)
		return;
	for (unsigned int i = 0; i < AGENTS_BUCKETS; i++)
		while (s->bucket[i]) {
			struct agent_cache *a = s->bucket[i];

			s->bucket[i] = a->next;
			for (uint32_t k = 0; k < AGENT_ENTRIES; k++)
				free(a->slot[k]);
			free(a);
		}
	free(s);
}

static uint32_t hash(uint64_t id, uint32_t buckets)
{
	return (uint32_t)((id * 0x9e3779b97f4a7c15ull) >> 32) & (buckets - 1);
}

/* The agent's table, made on first sight (root named); NULL when not cached. */
static struct agent_cache *agent_find(struct ag_daemon *d, const struct ag_origin *o)
{
	struct ag_subagents *cache = d->subagents;
	struct agent_cache **head = &cache->bucket[hash(o->agent_cgroup_id, AGENTS_BUCKETS)], *a;
	struct ag_agent agent;

	for (a = *head; a; a = a->next)
		if (a->agent_cgroup_id == o->agent_cgroup_id)
			return a;
	if (ag_agent_lookup(&d->kern, o->agent_cgroup_id, &agent))
		return NULL;
	if (cache->nr_agents >= AGENTS_MAX || !(a = calloc(1, sizeof(*a))))
		return NULL;
	a->agent_cgroup_id = o->agent_cgroup_id;
	memcpy(a->root, agent.name, sizeof(a->root));
	ag_lru_init(&a->lru, a->links, AGENT_ENTRIES);
	a->next = *head;
	*head = a;
	cache->nr_agents++;
	return a;
}

static struct entry *entry_find(struct agent_cache *a, uint64_t cgroup_id)
{
	struct entry *e;

	for (e = a->bucket[hash(cgroup_id, AGENT_BUCKETS)]; e; e = e->next)
		if (e->cgroup_id == cgroup_id) {
			ag_lru_touch(&a->lru, e->slot);
			return e;
		}
	return NULL;
}

static void entry_unhash(struct agent_cache *a, struct entry *e)
{
	struct entry **pp = &a->bucket[hash(e->cgroup_id, AGENT_BUCKETS)];

	while (*pp != e)
		pp = &(*pp)->next;
	*pp = e->next;
}

/* Remembers rel for cgroup_id, evicting the agent's own oldest when full. */
static void entry_add(struct agent_cache *a, uint64_t cgroup_id, const char *rel)
{
	size_t len = strlen(rel) + 1; /* < AG_DELEGATION_PATH */
	struct entry *e, **head;
	bool reused;
	uint32_t i = ag_lru_take(&a->lru, &reused);

	/* The least recent entry leaves its bucket before its slot is reused. */
	if (reused && a->slot[i]) {
		entry_unhash(a, a->slot[i]);
		free(a->slot[i]);
	}
	if (!(e = a->slot[i] = malloc(sizeof(*e) + len)))
		return; /* not cached: the next connection looks again */
	e->slot = i;
	e->cgroup_id = cgroup_id;
	memcpy(e->rel, rel, len);
	head = &a->bucket[hash(cgroup_id, AGENT_BUCKETS)];
	e->next = *head;
	*head = e;
}

/* Steps 2 and 3 of the top comment: rel of o's cgroup below dir. */
static int locate(struct ag_daemon *d, const struct ag_origin *o, const char *dir, char *rel,
		  size_t len, struct ag_err *err)
{
	uint64_t suppressed;

	if (!ag_delegation_find_pid(d->inst.cgroup2, dir, (pid_t)o->tgid, o->cgroup_id, rel, len,
				    err))
		return 0;
	/* Fail closed (attributed to the root, marked "?"): the agent chose to race. */
	if (!ag_limit_allow(&d->subagents->searches, o->agent_cgroup_id, &suppressed))
		return ag_errf(err, EBUSY,
			       "cgroup %llu: its process is gone and searches "
			       "of this agent's subtree are over their rate",
			       (unsigned long long)o->cgroup_id);
	return ag_delegation_find(dir, o->cgroup_id, rel, len, err);
}

int ag_daemon_delegation(struct ag_daemon *d, const struct ag_origin *o, struct ag_delegation *out)
{
	struct agent_cache *a;
	struct ag_agent agent;
	char dir[PATH_MAX], q[512], rel[AG_DELEGATION_PATH], root[AG_NAME_LEN];
	struct entry *e;
	uint64_t suppressed;
	struct ag_err err;
	int ret;

	if ((a = agent_find(d, o))) {
		if ((e = entry_find(a, o->cgroup_id))) {
			ag_delegation_chain(&d->conf, a->root, e->rel, out);
			return 0;
		}
		memcpy(root, a->root, sizeof(root));
	} else if (!ag_agent_lookup(&d->kern, o->agent_cgroup_id, &agent)) {
		memcpy(root, agent.name, sizeof(root));
	} else {
		return -ENOENT;
	}
	if (snprintf(dir, sizeof(dir), "%s/%s", d->inst.cg_agents, root) >= (int)sizeof(dir))
		ret = ag_errf(&err, ENAMETOOLONG, "cgroup of agent %s: path too long", root);
	else
		ret = locate(d, o, dir, rel, sizeof(rel), &err);
	if (ret) {
		/* Not cached: the next connection looks again.  The agent
		 * shapes its subtree, so what it makes us log is bounded. */
		if (ag_limit_allow(&d->subagents->limit, o->cgroup_id, &suppressed))
			ag_log(AG_LOG_WARN, "delegation",
			       "agent=%s cgroup_id=%llu error=%s suppressed=%llu", root,
			       (unsigned long long)o->cgroup_id, ag_logq(q, sizeof(q), err.msg),
			       (unsigned long long)suppressed);
		ag_delegation_chain(&d->conf, root, "", out);
		snprintf(out->sub_cgroup, sizeof(out->sub_cgroup), "?");
		out->cut = true;
		return 0;
	}
	if (a)
		entry_add(a, o->cgroup_id, rel);
	ag_delegation_chain(&d->conf, root, rel, out);
	return 0;
}

void ag_delegation_fields(const struct ag_delegation *dg, char *buf, size_t len)
{
	char list[AG_DELEGATION_MAX * AG_NAME_LEN], q[2 * AG_DELEGATION_PATH];
	int n = 0;

	buf[0] = '\0';
	if (dg->n > 1)
		n = snprintf(buf, len, " delegation=%s", ag_delegation_fmt(dg, list, sizeof(list)));
	if (dg->cut && n >= 0 && (size_t)n < len)
		snprintf(buf + n, len - n, " sub_cgroup=%s", ag_logq(q, sizeof(q), dg->sub_cgroup));
}
