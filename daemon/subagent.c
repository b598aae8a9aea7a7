// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "limit.h"
#include "subagent.h"

/* Connections come in bursts from few cgroups: a small LRU is enough. */
#define CACHE_SLOTS 256

struct cached {
	uint64_t used; /* LRU clock; 0: free */
	uint64_t cgroup_id, agent_cgroup_id;
	char root[AG_NAME_LEN];
	char rel[AG_DELEGATION_PATH];
};

static struct {
	uint64_t clock;
	struct cached slot[CACHE_SLOTS];
	struct ag_limiter limit; /* of failed searches' log lines */
} cache;

static struct cached *cache_find(const struct ag_origin *o)
{
	struct cached *c, *lru = &cache.slot[0];

	for (int i = 0; i < CACHE_SLOTS; i++) {
		c = &cache.slot[i];
		if (c->used && c->cgroup_id == o->cgroup_id &&
		    c->agent_cgroup_id == o->agent_cgroup_id) {
			c->used = ++cache.clock;
			return c;
		}
		if (c->used < lru->used)
			lru = c;
	}
	return lru;
}

int ag_daemon_delegation(struct ag_daemon *d, const struct ag_origin *o, struct ag_delegation *out)
{
	struct cached *c = cache_find(o);
	char dir[PATH_MAX], q[512];
	struct ag_agent agent;
	uint64_t suppressed;
	struct ag_err err;
	int ret;

	if (c->used && c->cgroup_id == o->cgroup_id && c->agent_cgroup_id == o->agent_cgroup_id) {
		ag_delegation_chain(&d->conf, c->root, c->rel, out);
		return 0;
	}
	if (ag_agent_lookup(&d->kern, o->agent_cgroup_id, &agent))
		return -ENOENT;
	memset(c, 0, sizeof(*c));
	memcpy(c->root, agent.name, sizeof(c->root));
	if (snprintf(dir, sizeof(dir), "%s/%s", d->inst.cg_agents, c->root) >= (int)sizeof(dir))
		ret = ag_errf(&err, ENAMETOOLONG, "cgroup of agent %s: path too long", c->root);
	else
		ret = ag_delegation_find(dir, o->cgroup_id, c->rel, sizeof(c->rel), &err);
	if (ret) {
		/* Not cached: the next connection searches again.  The agent
		 * shapes its subtree, so what it makes us log is bounded. */
		if (ag_limit_allow(&cache.limit, o->cgroup_id, &suppressed))
			ag_log(AG_LOG_WARN, "delegation",
			       "agent=%s cgroup_id=%llu error=%s suppressed=%llu", c->root,
			       (unsigned long long)o->cgroup_id, ag_logq(q, sizeof(q), err.msg),
			       (unsigned long long)suppressed);
		ag_delegation_chain(&d->conf, c->root, "", out);
		snprintf(out->sub_cgroup, sizeof(out->sub_cgroup), "?");
		out->cut = true;
		return 0;
	}
	c->cgroup_id = o->cgroup_id;
	c->agent_cgroup_id = o->agent_cgroup_id;
	c->used = ++cache.clock;
	ag_delegation_chain(&d->conf, c->root, c->rel, out);
	return 0;
}
