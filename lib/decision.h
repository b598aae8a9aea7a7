/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The glue around a policy decision that the daemon (daemon/decide.c) and
 * `agentgatectl policy simulate` must share so that a replay asks what the
 * gateway asked: the sessions' call counters (context.session), the
 * entities of sub-agents' delegation chains, and which escalated calls may
 * wait for a human.  lib/policy_request.c builds the requests themselves.
 * Nothing here logs or keeps global state: the caller owns each table.
 */
#ifndef AG_DECISION_H
#define AG_DECISION_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "delegation.h"
#include "policy.h"
#include "policy_request.h"

/* Sessions whose call counts are kept; the least recently used goes first. */
#define AG_SESSION_SLOTS 1024
/* A longer session id has no counters (the gateway's ids are shorter). */
#define AG_SESSION_ID_LEN 128
/* Distinct tools counted per session: a session past it is refused new
 * tools rather than let a "once per session" rule lose its count. */
#define AG_SESSION_TOOLS 256

/* Delegation-chain entity stores a decider keeps (ag_chain_cache_new). */
#define AG_CHAIN_STORES 16

/* Whose session: the agent, the tool server and the session id. */
struct ag_session_key {
	const char *agent, *server, *id; /* id NULL or "": no session */
};

struct ag_session {
	bool used; /* false: a free slot */
	char agent[AG_NAME_LEN];
	char server[AG_NAME_LEN];
	char id[AG_SESSION_ID_LEN];
	json_t *calls;	  /* tool name -> count of allowed calls */
	json_t *approved; /* tool names a human approved a call of */
	/* A replay's view of the session's last call: {"tool", "id"} when it
	 * was held for a human, NULL otherwise (the daemon holds the call on
	 * its connection instead). */
	json_t *held;
};

struct ag_sessions;

/* Whose counters a new session took: the caller logs it. */
struct ag_session_evicted {
	bool evicted;
	char agent[AG_NAME_LEN];
	char server[AG_NAME_LEN];
};

struct ag_sessions *ag_sessions_new(void);
void ag_sessions_free(struct ag_sessions *t);

/*
 * The session of k, NULL when k has none (no id, an id of
 * AG_SESSION_ID_LEN or more, a name too long) or, with create, when out of
 * memory.  create takes the least recently used slot when all are in use;
 * ev (if not NULL) then says whose it was.
 */
struct ag_session *ag_session_get(struct ag_sessions *t, const struct ag_session_key *k,
				  bool create, struct ag_session_evicted *ev);

/* Counts an allowed call of tool; -1 when the session's counters are full. */
int ag_session_count(struct ag_session *s, const char *tool);
/* A human approved a held call of tool: it joins approved (while there is
 * room) and counts as a call.  -1 when it cannot be counted. */
int ag_session_approve(struct ag_session *s, const char *tool);
/* Records whether the session's last call, of tool with JSON-RPC id, was
 * held for a human (a replay's approval record resolves it). */
void ag_session_hold(struct ag_session *s, bool held, const char *tool, json_t *id);
/* Whether the held call is tool's with id; clears it if so. */
bool ag_session_unhold(struct ag_session *s, const char *tool, json_t *id);

/*
 * The outcome v of a call c settled in its session: an allowed tool call
 * counts, and one that cannot be counted is refused (DENY) rather than let
 * a "once per session" rule lose its count.  t may be NULL (no counters).
 */
void ag_session_settle(struct ag_sessions *t, const struct ag_policy_call *c,
		       struct ag_policy_verdict *v);

/*
 * Whether a call the policies escalate may wait for a human: only a lone
 * request with an id and a name can (an element of a batch would hold its
 * neighbours' answers, a legacy POST is answered on another connection).
 * Otherwise the gateway refuses it with the escalation's reason.
 */
bool ag_escalation_eligible(bool lone, bool has_id, bool has_name);

/*
 * Entity stores for sub-agents' delegation chains: each is the base store
 * with the chain as Agent parents (ag_policy_delegation_entities), kept
 * for the slots most recently used chains.
 */
struct ag_chain_cache;

struct ag_chain_cache *ag_chain_cache_new(size_t slots);
void ag_chain_cache_free(struct ag_chain_cache *cc);
/*
 * The base store (ents) and the JSON it was made of (json; NULL: none),
 * both borrowed; drops every chain's store.  Call it again whenever the
 * base changes.
 */
void ag_chain_cache_reset(struct ag_chain_cache *cc, const struct ag_entities *ents, json_t *json);

/*
 * The entities c is decided with: the base for a root agent, else the
 * base with c's delegation chain as Agent parents, so that `principal in
 * Agent::"<root>"` holds for it (and only while it runs as that root's
 * sub-agent).  -1 with perr->msg set, and key the chain ("A/B/agent"),
 * when they cannot be made: the request is then refused.
 */
int ag_chain_ents(struct ag_chain_cache *cc, const struct ag_policy_call *c,
		  const struct ag_entities **out, char *key, size_t len,
		  struct ag_policy_error *perr);

#endif
