// SPDX-License-Identifier: GPL-2.0
/*
 * Anomaly flags, the pure part (anomaly.h): the scoring and the bounded
 * per-agent tables.  Both tables are a key set: slots in an array, a
 * chained hash index over their keys and a lib/lru.h order that picks the
 * slot to reuse at the cap.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentgate.h" /* AG_NAME_LEN */
#include "anomaly.h"
#include "lru.h"

static const char *const flag_names[AG_ANOMALY__COUNT] = {
	[AG_ANOMALY_FIRST_TOOL] = "first_tool",
	[AG_ANOMALY_FIRST_DESTINATION] = "first_destination",
	[AG_ANOMALY_RATE] = "rate",
	[AG_ANOMALY_DENIALS] = "denials",
};

const char *ag_anomaly_flag_name(enum ag_anomaly_flag f)
{
	return (unsigned int)f < AG_ANOMALY__COUNT ? flag_names[f] : "unknown";
}

size_t ag_anomaly_flag_names(const bool on[AG_ANOMALY__COUNT], const char *names[AG_ANOMALY__COUNT])
{
	size_t n = 0;

	for (int f = 0; f < AG_ANOMALY__COUNT; f++)
		if (on[f])
			names[n++] = flag_names[f];
	return n;
}

void ag_anomaly_flags_parse(const json_t *names, bool on[AG_ANOMALY__COUNT])
{
	const json_t *v;
	size_t i;

	memset(on, 0, AG_ANOMALY__COUNT * sizeof(on[0]));
	json_array_foreach(names, i, v)
	{
		for (int f = 0; f < AG_ANOMALY__COUNT; f++)
			if (json_is_string(v) && !strcmp(json_string_value(v), flag_names[f]))
				on[f] = true;
	}
}

void ag_anomaly_conf_default(struct ag_anomaly_conf *c)
{
	*c = (struct ag_anomaly_conf){
		.enabled = true,
		.rate_multiple = 10,
		.min_rate_per_min = 30,
		.rate_window_s = 60,
		.baseline_s = 3600,
		.denials = 5,
		.denial_window_s = 60,
	};
}

/* ---- scoring ---- */

/* x decayed over dt_ms with time constant tau_s. */
static double decay(double x, int64_t dt_ms, uint32_t tau_s)
{
	return x * exp(-(double)dt_ms / (1000.0 * tau_s));
}

bool ag_rate_call(struct ag_rate *r, const struct ag_anomaly_conf *c, int64_t now_ms,
		  struct ag_rate_figures *fig)
{
	int64_t dt = r->at_ms && now_ms > r->at_ms ? now_ms - r->at_ms : 0;
	double cur, base;

	r->cur_per_s = decay(r->cur_per_s, dt, c->rate_window_s) + 1.0 / c->rate_window_s;
	base = decay(r->base_per_s, dt, c->baseline_s);
	r->base_per_s = base + 1.0 / c->baseline_s;
	if (now_ms > r->at_ms)
		r->at_ms = now_ms;
	cur = r->cur_per_s * 60;
	fig->observed_per_min = cur;
	fig->baseline_per_min = base * 60;
	return cur >= c->min_rate_per_min && cur > c->rate_multiple * base * 60;
}

void ag_denials_add(struct ag_denials *d, int64_t now_ms)
{
	d->at_ms[d->n % AG_ANOMALY_DENIALS_MAX] = now_ms;
	d->n++;
}

bool ag_denials_over(const struct ag_denials *d, const struct ag_anomaly_conf *c, int64_t now_ms)
{
	uint32_t k = c->denials;

	if (!k || k > AG_ANOMALY_DENIALS_MAX || d->n < k)
		return false;
	/* The k-th most recent denial: all k fell after it or at it. */
	return now_ms - d->at_ms[(d->n - k) % AG_ANOMALY_DENIALS_MAX] <=
	       (int64_t)c->denial_window_s * 1000;
}

/* ---- key sets ---- */

struct kset {
	uint32_t cap, mask; /* mask + 1 buckets, a power of two >= 2 * cap */
	struct ag_lru lru;
	struct ag_lru_link *link;
	uint32_t *head, *next, *hash; /* bucket heads; per slot: chain, hash */
	char **key;		      /* per slot; NULL: never used */
	uint16_t *klen;
};

static int kset_init(struct kset *s, uint32_t cap)
{
	uint32_t n = 1;

	while (n < 2 * cap)
		n <<= 1;
	s->cap = cap;
	s->mask = n - 1;
	s->link = calloc(cap, sizeof(*s->link));
	s->head = malloc(n * sizeof(*s->head));
	s->next = calloc(cap, sizeof(*s->next));
	s->hash = calloc(cap, sizeof(*s->hash));
	s->key = calloc(cap, sizeof(*s->key));
	s->klen = calloc(cap, sizeof(*s->klen));
	if (!s->link || !s->head || !s->next || !s->hash || !s->key || !s->klen)
		return -ENOMEM;
	memset(s->head, 0xff, n * sizeof(*s->head)); /* AG_LRU_NIL */
	ag_lru_init(&s->lru, s->link, cap);
	return 0;
}

static void kset_free(struct kset *s)
{
	for (uint32_t i = 0; s->key && i < s->cap; i++)
		free(s->key[i]);
	free(s->link);
	free(s->head);
	free(s->next);
	free(s->hash);
	free(s->key);
	free(s->klen);
}

static uint32_t key_hash(const void *key, size_t len)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (size_t i = 0; i < len; i++)
		h = (h ^ ((const uint8_t *)key)[i]) * 16777619u;
	return h;
}

static uint32_t kset_find(const struct kset *s, const void *key, size_t len)
{
	uint32_t h = key_hash(key, len);

	for (uint32_t i = s->head[h & s->mask]; i != AG_LRU_NIL; i = s->next[i])
		if (s->hash[i] == h && s->klen[i] == len && !memcmp(s->key[i], key, len))
			return i;
	return AG_LRU_NIL;
}

static void kset_unlink(struct kset *s, uint32_t i)
{
	uint32_t *p = &s->head[s->hash[i] & s->mask];

	while (*p != i)
		p = &s->next[*p];
	*p = s->next[i];
}

/* A new slot for key (not in s); *evicted when the oldest made room.
 * AG_LRU_NIL when out of memory. */
static uint32_t kset_put(struct kset *s, const void *key, size_t len, bool *evicted)
{
	char *copy = malloc(len);
	uint32_t i;

	if (!copy)
		return AG_LRU_NIL;
	memcpy(copy, key, len);
	i = ag_lru_take(&s->lru, evicted);
	/* lru.h's hazard: drop the old entry from the index first. */
	if (*evicted) {
		kset_unlink(s, i);
		free(s->key[i]);
	}
	s->key[i] = copy;
	s->klen[i] = (uint16_t)len;
	s->hash[i] = key_hash(key, len);
	s->next[i] = s->head[s->hash[i] & s->mask];
	s->head[s->hash[i] & s->mask] = i;
	return i;
}

/* ---- the table ---- */

struct agent_state {
	struct ag_rate rate;
	struct ag_denials den;
	bool rate_on, denials_on; /* an episode is open: recorded once */
};

struct ag_anomaly_table {
	struct ag_anomaly_conf conf;
	struct kset agents, seen;
	struct agent_state *st; /* per agents slot */
	uint64_t evictions;
	bool dirty;
};

enum seen_kind { SEEN_TOOL = 't', SEEN_DEST = 'd' };

/* A seen key: the agent's name with its length first, the kind, the name. */
#define SEEN_KEY_MAX (1 + AG_NAME_LEN + 1 + AG_ANOMALY_KEY_MAX + AG_NAME_LEN + 1)

struct ag_anomaly_table *ag_anomaly_table_new(const struct ag_anomaly_conf *c)
{
	struct ag_anomaly_table *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->conf = *c;
	if (kset_init(&t->agents, AG_ANOMALY_AGENTS) || kset_init(&t->seen, AG_ANOMALY_SEEN) ||
	    !(t->st = calloc(AG_ANOMALY_AGENTS, sizeof(*t->st)))) {
		ag_anomaly_table_free(t);
		return NULL;
	}
	return t;
}

void ag_anomaly_table_free(struct ag_anomaly_table *t)
{
	if (!t)
		return;
	kset_free(&t->agents);
	kset_free(&t->seen);
	free(t->st);
	free(t);
}

uint64_t ag_anomaly_evictions(const struct ag_anomaly_table *t)
{
	return t->evictions;
}

bool ag_anomaly_dirty(const struct ag_anomaly_table *t)
{
	return t->dirty;
}

/* The agent's state, made on first sight; NULL: a name too long, or out of memory. */
static struct agent_state *agent_get(struct ag_anomaly_table *t, const char *agent)
{
	size_t len = strlen(agent);
	uint32_t i = len < AG_NAME_LEN ? kset_find(&t->agents, agent, len) : AG_LRU_NIL;
	bool evicted;

	if (i != AG_LRU_NIL) {
		ag_lru_touch(&t->agents.lru, i);
		return &t->st[i];
	}
	if (len >= AG_NAME_LEN || (i = kset_put(&t->agents, agent, len, &evicted)) == AG_LRU_NIL)
		return NULL;
	t->evictions += evicted;
	memset(&t->st[i], 0, sizeof(t->st[i]));
	t->dirty = true;
	return &t->st[i];
}

/* The seen key of (agent, kind, name[/tool]) into out; 0 when it does not fit. */
static size_t seen_key(char *out, const char *agent, enum seen_kind kind, const char *name,
		       const char *tool)
{
	size_t a = strlen(agent), n = strlen(name), k = tool ? strlen(tool) : 0;
	size_t len = 1 + a + 1 + n + (tool ? 1 + k : 0);

	if (a >= AG_NAME_LEN || n + (tool ? 1 + k : 0) > AG_ANOMALY_KEY_MAX)
		return 0;
	out[0] = (char)a;
	memcpy(out + 1, agent, a);
	out[1 + a] = (char)kind;
	memcpy(out + 2 + a, name, n);
	if (tool) {
		out[2 + a + n] = '/';
		memcpy(out + 3 + a + n, tool, k);
	}
	return len;
}

static bool seen_has(struct ag_anomaly_table *t, const char *agent, enum seen_kind kind,
		     const char *name, const char *tool)
{
	char key[SEEN_KEY_MAX];
	size_t len = seen_key(key, agent, kind, name, tool);
	uint32_t i = len ? kset_find(&t->seen, key, len) : AG_LRU_NIL;

	if (i == AG_LRU_NIL)
		return false;
	ag_lru_touch(&t->seen.lru, i);
	return true;
}

/* Marks it seen; what does not fit, or finds no memory, stays "first". */
static void seen_add(struct ag_anomaly_table *t, const char *agent, enum seen_kind kind,
		     const char *name, const char *tool)
{
	char key[SEEN_KEY_MAX];
	size_t len = seen_key(key, agent, kind, name, tool);
	bool evicted;

	if (!len || seen_has(t, agent, kind, name, tool))
		return;
	if (kset_put(&t->seen, key, len, &evicted) == AG_LRU_NIL)
		return;
	t->evictions += evicted;
	t->dirty = true;
}

/* An episode flag: on now; recorded when it rises. */
static void episode(struct ag_anomaly_verdict *v, enum ag_anomaly_flag f, bool on, bool *open)
{
	v->on[f] = on;
	v->record[f] = on && !*open;
	*open = on;
}

void ag_anomaly_call(struct ag_anomaly_table *t, const char *agent, const char *dest,
		     const char *tool, int64_t now_ms, struct ag_anomaly_verdict *v)
{
	struct agent_state *st = agent_get(t, agent);

	memset(v, 0, sizeof(*v));
	v->on[AG_ANOMALY_FIRST_TOOL] = tool && !seen_has(t, agent, SEEN_TOOL, dest, tool);
	v->on[AG_ANOMALY_FIRST_DESTINATION] = !seen_has(t, agent, SEEN_DEST, dest, NULL);
	v->record[AG_ANOMALY_FIRST_TOOL] = v->on[AG_ANOMALY_FIRST_TOOL];
	v->record[AG_ANOMALY_FIRST_DESTINATION] = v->on[AG_ANOMALY_FIRST_DESTINATION];
	if (!st) {
		/* Fail toward flagging: an agent without state has no baseline. */
		v->on[AG_ANOMALY_RATE] = v->on[AG_ANOMALY_DENIALS] = true;
		return;
	}
	episode(v, AG_ANOMALY_RATE, ag_rate_call(&st->rate, &t->conf, now_ms, &v->rate),
		&st->rate_on);
	episode(v, AG_ANOMALY_DENIALS, ag_denials_over(&st->den, &t->conf, now_ms),
		&st->denials_on);
	if (v->on[AG_ANOMALY_DENIALS])
		v->denials = t->conf.denials;
	t->dirty = true;
}

void ag_anomaly_outcome(struct ag_anomaly_table *t, const char *agent, const char *dest,
			const char *tool, bool allowed, int64_t now_ms)
{
	struct agent_state *st;

	if (allowed) {
		if (tool)
			seen_add(t, agent, SEEN_TOOL, dest, tool);
		seen_add(t, agent, SEEN_DEST, dest, NULL);
	} else if ((st = agent_get(t, agent))) {
		ag_denials_add(&st->den, now_ms);
	}
}

bool ag_anomaly_reach(struct ag_anomaly_table *t, const char *agent, const char *dest)
{
	if (seen_has(t, agent, SEEN_DEST, dest, NULL))
		return false;
	seen_add(t, agent, SEEN_DEST, dest, NULL);
	return true;
}

/* ---- the state file's JSON ---- */

static int append_agents(struct ag_anomaly_table *t, json_t *arr)
{
	for (uint32_t i = t->agents.lru.oldest; i != AG_LRU_NIL; i = t->agents.link[i].newer) {
		const struct ag_rate *r = &t->st[i].rate;

		if (json_array_append_new(
			arr, json_pack("{s:s%,s:f,s:f,s:I}", "name", t->agents.key[i],
				       (size_t)t->agents.klen[i], "cur_per_s", r->cur_per_s,
				       "base_per_s", r->base_per_s, "at_ms", (json_int_t)r->at_ms)))
			return -1;
	}
	return 0;
}

static int append_seen(struct ag_anomaly_table *t, json_t *arr)
{
	for (uint32_t i = t->seen.lru.oldest; i != AG_LRU_NIL; i = t->seen.link[i].newer) {
		const char *k = t->seen.key[i];
		size_t a = (uint8_t)k[0];

		if (json_array_append_new(arr,
					  json_pack("{s:s%,s:s%}", "agent", k + 1, a,
						    k[1 + a] == SEEN_TOOL ? "tool" : "destination",
						    k + 2 + a, (size_t)t->seen.klen[i] - 2 - a)))
			return -1;
	}
	return 0;
}

json_t *ag_anomaly_table_json(struct ag_anomaly_table *t)
{
	json_t *agents = json_array(), *seen = json_array();
	json_t *j = NULL;

	if (agents && seen && !append_agents(t, agents) && !append_seen(t, seen))
		j = json_pack("{s:i,s:O,s:O}", "version", 1, "agents", agents, "seen", seen);
	json_decref(agents);
	json_decref(seen);
	if (j)
		t->dirty = false;
	return j;
}

static bool finite_rate(const json_t *v)
{
	return json_is_number(v) && isfinite(json_number_value(v)) && json_number_value(v) >= 0 &&
	       json_number_value(v) < 1e9;
}

static int load_agent(struct ag_anomaly_table *t, const json_t *e, size_t k, struct ag_err *err)
{
	const char *name = json_string_value(json_object_get(e, "name"));
	json_t *cur = json_object_get(e, "cur_per_s"), *base = json_object_get(e, "base_per_s");
	json_t *at = json_object_get(e, "at_ms");
	struct agent_state *st;

	if (!name || !*name || strlen(name) >= AG_NAME_LEN || !finite_rate(cur) ||
	    !finite_rate(base) || !json_is_integer(at) || json_integer_value(at) < 0)
		return ag_errf(err, EINVAL,
			       "agents[%zu]: expected name, cur_per_s, base_per_s, at_ms", k);
	if (kset_find(&t->agents, name, strlen(name)) != AG_LRU_NIL)
		return ag_errf(err, EINVAL, "agents[%zu]: %s twice", k, name);
	if (!(st = agent_get(t, name)))
		return ag_errf(err, ENOMEM, "agents[%zu]: out of memory", k);
	st->rate = (struct ag_rate){ json_number_value(cur), json_number_value(base),
				     json_integer_value(at) };
	return 0;
}

static int load_seen(struct ag_anomaly_table *t, const json_t *e, size_t k, struct ag_err *err)
{
	const char *agent = json_string_value(json_object_get(e, "agent"));
	const char *tool = json_string_value(json_object_get(e, "tool"));
	const char *dest = json_string_value(json_object_get(e, "destination"));
	char key[SEEN_KEY_MAX];

	/* A stored tool is "server/tool": the key takes it as one name. */
	if (!agent || !*agent || !(tool || dest) || (tool && dest) ||
	    !seen_key(key, agent, tool ? SEEN_TOOL : SEEN_DEST, tool ? tool : dest, NULL))
		return ag_errf(err, EINVAL, "seen[%zu]: expected agent and tool or destination", k);
	seen_add(t, agent, tool ? SEEN_TOOL : SEEN_DEST, tool ? tool : dest, NULL);
	return 0;
}

int ag_anomaly_table_load(struct ag_anomaly_table *t, const json_t *j, struct ag_err *err)
{
	json_t *agents = json_object_get(j, "agents"), *seen = json_object_get(j, "seen"), *e;
	size_t k;
	int ret = 0;

	if (!json_is_object(j) || json_integer_value(json_object_get(j, "version")) != 1 ||
	    !json_is_array(agents) || !json_is_array(seen))
		ret =
		    ag_errf(err, EINVAL, "expected {\"version\": 1, \"agents\": [], \"seen\": []}");
	json_array_foreach(agents, k, e) if (!ret) ret = load_agent(t, e, k, err);
	json_array_foreach(seen, k, e) if (!ret) ret = load_seen(t, e, k, err);
	if (ret) {
		/* All or nothing: a half-loaded state would say half the truth. */
		struct ag_anomaly_conf c = t->conf;
		struct ag_anomaly_table *fresh = ag_anomaly_table_new(&c);

		if (!fresh)
			return -ENOMEM;
		kset_free(&t->agents);
		kset_free(&t->seen);
		free(t->st);
		*t = *fresh;
		free(fresh);
		return ret;
	}
	t->dirty = false;
	return 0;
}
