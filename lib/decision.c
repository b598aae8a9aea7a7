// SPDX-License-Identifier: GPL-2.0
/*
 * Session counters, delegation-chain entity stores and the escalation
 * rule, shared by daemon/decide.c and `agentgatectl policy simulate`
 * (see decision.h).  Both tables are small arrays searched linearly with
 * an LRU clock: lookups happen once or twice per governed call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decision.h"

struct ag_sessions {
	uint64_t clock;
	struct ag_session slot[AG_SESSION_SLOTS];
};

struct chain_store {
	uint64_t used;				   /* LRU clock; 0: free slot */
	char key[AG_DELEGATION_MAX * AG_NAME_LEN]; /* the chain, '/'-separated */
	struct ag_entities *ents;
};

struct ag_chain_cache {
	const struct ag_entities *ents; /* the base store, borrowed */
	json_t *json;			/* what it was made of, borrowed; NULL: none */
	uint64_t clock;
	size_t n;
	struct chain_store store[];
};

/* ---- sessions --------------------------------------------------------- */

struct ag_sessions *ag_sessions_new(void)
{
	return calloc(1, sizeof(struct ag_sessions));
}

static void session_clear(struct ag_session *s)
{
	json_decref(s->calls);
	json_decref(s->approved);
	json_decref(s->held);
	memset(s, 0, sizeof(*s));
}

void ag_sessions_free(struct ag_sessions *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < AG_SESSION_SLOTS; i++)
		session_clear(&t->slot[i]);
	free(t);
}

static bool key_usable(const struct ag_session_key *k)
{
	return k->id && k->id[0] && strlen(k->id) < AG_SESSION_ID_LEN && k->agent &&
	       strlen(k->agent) < AG_NAME_LEN && k->server && strlen(k->server) < AG_NAME_LEN;
}

struct ag_session *ag_session_get(struct ag_sessions *t, const struct ag_session_key *k,
				  bool create, struct ag_session_evicted *ev)
{
	struct ag_session *s, *lru;

	if (ev)
		ev->evicted = false;
	if (!t || !key_usable(k))
		return NULL;
	lru = &t->slot[0];
	for (size_t i = 0; i < AG_SESSION_SLOTS; i++) {
		s = &t->slot[i];
		if (s->used && !strcmp(s->id, k->id) && !strcmp(s->agent, k->agent) &&
		    !strcmp(s->server, k->server)) {
			s->used = ++t->clock;
			return s;
		}
		if (s->used < lru->used)
			lru = s;
	}
	if (!create)
		return NULL;
	if (ev && lru->used) {
		ev->evicted = true;
		snprintf(ev->agent, sizeof(ev->agent), "%s", lru->agent);
		snprintf(ev->server, sizeof(ev->server), "%s", lru->server);
	}
	session_clear(lru);
	if (!(lru->calls = json_object()) || !(lru->approved = json_array()))
		return NULL;
	snprintf(lru->agent, sizeof(lru->agent), "%s", k->agent);
	snprintf(lru->server, sizeof(lru->server), "%s", k->server);
	snprintf(lru->id, sizeof(lru->id), "%s", k->id);
	lru->used = ++t->clock;
	return lru;
}

int ag_session_count(struct ag_session *s, const char *tool)
{
	json_t *n = json_object_get(s->calls, tool);

	if (!n && json_object_size(s->calls) >= AG_SESSION_TOOLS)
		return -1;
	return json_object_set_new(s->calls, tool, json_integer(n ? json_integer_value(n) + 1 : 1));
}

int ag_session_approve(struct ag_session *s, const char *tool)
{
	if (json_array_size(s->approved) < AG_SESSION_TOOLS &&
	    json_array_append_new(s->approved, json_string(tool)))
		return -1;
	return ag_session_count(s, tool);
}

void ag_session_hold(struct ag_session *s, bool held, const char *tool, json_t *id)
{
	json_decref(s->held);
	s->held = held ? json_pack("{s:s,s:O}", "tool", tool, "id", id ? id : json_null()) : NULL;
}

bool ag_session_unhold(struct ag_session *s, const char *tool, json_t *id)
{
	if (!s->held || strcmp(json_string_value(json_object_get(s->held, "tool")) ?: "", tool) ||
	    !json_equal(json_object_get(s->held, "id"), id))
		return false;
	json_decref(s->held);
	s->held = NULL;
	return true;
}

void ag_session_settle(struct ag_sessions *t, const struct ag_policy_call *c,
		       struct ag_policy_verdict *v)
{
	const struct ag_session_key k = { c->agent, c->server, c->session_id };
	struct ag_session *s;

	if (v->kind != AG_OUTCOME_ALLOW || c->target != AG_TARGET_TOOL || !t || !c->session_id ||
	    !c->session_id[0])
		return; /* no session, no counters: policies see no context.session */
	if ((s = ag_session_get(t, &k, true, NULL)) && !ag_session_count(s, c->name))
		return;
	/* Fail closed: an uncounted call would reset a "once per session" rule. */
	v->kind = AG_OUTCOME_DENY;
	snprintf(v->reason, sizeof(v->reason), "the session's call counters are full");
}

bool ag_escalation_eligible(bool lone, bool has_id, bool has_name)
{
	return lone && has_id && has_name;
}

/* ---- delegation chains ------------------------------------------------ */

struct ag_chain_cache *ag_chain_cache_new(size_t slots)
{
	struct ag_chain_cache *cc;

	if (!slots || slots > 1024)
		return NULL;
	cc = calloc(1, sizeof(*cc) + slots * sizeof(cc->store[0]));
	if (cc)
		cc->n = slots;
	return cc;
}

void ag_chain_cache_reset(struct ag_chain_cache *cc, const struct ag_entities *ents, json_t *json)
{
	for (size_t i = 0; i < cc->n; i++)
		ag_entities_free(cc->store[i].ents);
	memset(cc->store, 0, cc->n * sizeof(cc->store[0]));
	cc->ents = ents;
	cc->json = json;
}

void ag_chain_cache_free(struct ag_chain_cache *cc)
{
	if (!cc)
		return;
	ag_chain_cache_reset(cc, NULL, NULL);
	free(cc);
}

/* The chain "A/B/agent" into key; -1 when it does not fit. */
static int chain_key(const struct ag_policy_call *c, char *key, size_t len)
{
	size_t n = 0;
	int w;

	for (size_t i = 0; i <= c->n_delegation; i++) {
		bool last = i == c->n_delegation;

		w = snprintf(key + n, len - n, last ? "%s" : "%s/",
			     last ? c->agent : c->delegation[i]);
		if (w < 0 || (size_t)w >= len - n)
			return -1;
		n += (size_t)w;
	}
	return 0;
}

int ag_chain_ents(struct ag_chain_cache *cc, const struct ag_policy_call *c,
		  const struct ag_entities **out, char *key, size_t len,
		  struct ag_policy_error *perr)
{
	const char *chain[AG_DELEGATION_MAX + 1];
	struct chain_store *cs, *lru = &cc->store[0];
	json_t *arr;

	*out = cc->ents;
	if (!c->n_delegation)
		return 0;
	if (len > sizeof(lru->key))
		len = sizeof(lru->key);
	if (c->n_delegation >= AG_DELEGATION_MAX || chain_key(c, key, len)) {
		/* Fail closed: a cut key could name another chain's store. */
		snprintf(perr->msg, sizeof(perr->msg), "the delegation chain is too long");
		return -1;
	}
	for (size_t i = 0; i < c->n_delegation; i++)
		chain[i] = c->delegation[i];
	chain[c->n_delegation] = c->agent;
	for (size_t i = 0; i < cc->n; i++) {
		cs = &cc->store[i];
		if (cs->used && !strcmp(cs->key, key)) {
			cs->used = ++cc->clock;
			*out = cs->ents;
			return 0;
		}
		if (cs->used < lru->used)
			lru = cs;
	}
	ag_entities_free(lru->ents);
	memset(lru, 0, sizeof(*lru));
	arr = ag_policy_delegation_entities(cc->json, chain, c->n_delegation + 1);
	lru->ents = arr ? ag_entities_from_json(arr, perr) : NULL;
	json_decref(arr);
	if (!lru->ents) {
		if (!arr)
			snprintf(perr->msg, sizeof(perr->msg),
				 "entities of the delegation chain: out of memory");
		return -1;
	}
	snprintf(lru->key, sizeof(lru->key), "%s", key);
	lru->used = ++cc->clock;
	*out = lru->ents;
	return 0;
}
