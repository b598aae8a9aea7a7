// SPDX-License-Identifier: GPL-2.0
/*
 * Session counters, delegation-chain entity stores and the escalation
 * rule, shared by daemon/decide.c and `agentgatectl policy simulate`
 * (see decision.h).  Both tables are small arrays searched linearly (a
 * lookup or two per governed call), their eviction order a lib/lru.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decision.h"
#include "lru.h"

struct ag_sessions {
	struct ag_lru lru;
	struct ag_lru_link link[AG_SESSION_SLOTS];
	struct ag_session slot[AG_SESSION_SLOTS];
};

struct chain_store {
	char key[AG_DELEGATION_MAX * AG_NAME_LEN]; /* the chain, '/'-separated; "": free */
	struct ag_entities *ents;
};

struct ag_chain_cache {
	const struct ag_entities *ents; /* the base store, borrowed */
	json_t *json;			/* what it was made of, borrowed; NULL: none */
	struct ag_lru lru;
	struct ag_lru_link *link; /* n of them, after store[] */
	size_t n;
	struct chain_store store[];
};

/* ---- sessions --------------------------------------------------------- */

struct ag_sessions *ag_sessions_new(void)
{
	struct ag_sessions *t = calloc(1, sizeof(*t));

	if (t)
		ag_lru_init(&t->lru, t->link, AG_SESSION_SLOTS);
	return t;
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
	struct ag_session *s;
	bool reused;

	if (ev)
		ev->evicted = false;
	if (!t || !key_usable(k))
		return NULL;
	for (uint32_t i = 0; i < AG_SESSION_SLOTS; i++) {
		s = &t->slot[i];
		if (s->used && !strcmp(s->id, k->id) && !strcmp(s->agent, k->agent) &&
		    !strcmp(s->server, k->server)) {
			ag_lru_touch(&t->lru, i);
			return s;
		}
	}
	if (!create)
		return NULL;
	s = &t->slot[ag_lru_take(&t->lru, &reused)];
	if (ev && reused) {
		ev->evicted = true;
		snprintf(ev->agent, sizeof(ev->agent), "%s", s->agent);
		snprintf(ev->server, sizeof(ev->server), "%s", s->server);
	}
	/* First: the old entry goes before the slot holds the new one. */
	session_clear(s);
	if (!(s->calls = json_object()) || !(s->approved = json_array()))
		return NULL;
	snprintf(s->agent, sizeof(s->agent), "%s", k->agent);
	snprintf(s->server, sizeof(s->server), "%s", k->server);
	snprintf(s->id, sizeof(s->id), "%s", k->id);
	s->used = true;
	return s;
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
	cc = calloc(1, sizeof(*cc) + slots * (sizeof(cc->store[0]) + sizeof(*cc->link)));
	if (!cc)
		return NULL;
	cc->n = slots;
	cc->link = (struct ag_lru_link *)&cc->store[slots];
	ag_lru_init(&cc->lru, cc->link, (uint32_t)slots);
	return cc;
}

void ag_chain_cache_reset(struct ag_chain_cache *cc, const struct ag_entities *ents, json_t *json)
{
	for (size_t i = 0; i < cc->n; i++)
		ag_entities_free(cc->store[i].ents);
	memset(cc->store, 0, cc->n * sizeof(cc->store[0]));
	ag_lru_init(&cc->lru, cc->link, (uint32_t)cc->n);
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
	struct chain_store *cs;
	bool reused;
	json_t *arr;

	*out = cc->ents;
	if (!c->n_delegation)
		return 0;
	if (len > sizeof(cs->key))
		len = sizeof(cs->key);
	if (c->n_delegation >= AG_DELEGATION_MAX || chain_key(c, key, len)) {
		/* Fail closed: a cut key could name another chain's store. */
		snprintf(perr->msg, sizeof(perr->msg), "the delegation chain is too long");
		return -1;
	}
	for (size_t i = 0; i < c->n_delegation; i++)
		chain[i] = c->delegation[i];
	chain[c->n_delegation] = c->agent;
	for (uint32_t i = 0; i < cc->n; i++) {
		cs = &cc->store[i];
		if (cs->ents && !strcmp(cs->key, key)) {
			ag_lru_touch(&cc->lru, i);
			*out = cs->ents;
			return 0;
		}
	}
	/* First: the old store goes before the slot holds the new one. */
	cs = &cc->store[ag_lru_take(&cc->lru, &reused)];
	ag_entities_free(cs->ents);
	memset(cs, 0, sizeof(*cs));
	arr = ag_policy_delegation_entities(cc->json, chain, c->n_delegation + 1);
	cs->ents = arr ? ag_entities_from_json(arr, perr) : NULL;
	json_decref(arr);
	if (!cs->ents) {
		if (!arr)
			snprintf(perr->msg, sizeof(perr->msg),
				 "entities of the delegation chain: out of memory");
		return -1;
	}
	snprintf(cs->key, sizeof(cs->key), "%s", key);
	*out = cs->ents;
	return 0;
}
