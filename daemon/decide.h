/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The decision point of the MCP path: what an agent may call, read, get
 * and see on a governed tool server.  Every governed message goes through
 * here, so the data path never decides by itself.
 */
#ifndef AG_DECIDE_H
#define AG_DECIDE_H

#include <stdbool.h>

#include <jansson.h>

#include "config.h"
#include "daemon.h"
#include "git.h"
#include "jsonrpc.h"
#include "policy_request.h"

struct ag_decision {
	/* lib/policy_request.h's, the one verdict enum of the MCP path */
	enum ag_policy_outcome kind;
	const char *rule;   /* what decided: "allow-list", "policy" */
	char reason[256];   /* for the agent and the audit log; no argument values */
	char policies[256]; /* ids of the deciding policies, comma-separated; "" none */
	bool anomaly[AG_ANOMALY__COUNT]; /* the flags policies saw (context.anomaly) */
	/* The git commit of the set that decided ("policy_source"); "" none. */
	char policy_commit[AG_GIT_COMMIT_LEN];
};

struct ag_decide_ctx {
	struct ag_daemon *d;
	const struct ag_agent_conf *agent; /* NULL: not in the configuration */
	const char *agent_name;
	const struct ag_server_conf *srv;
	/* What policies see of the request (context.session, context.request);
	 * NULL or "" when unknown.  Without a session id there are no session
	 * counters, and context.session is absent. */
	const char *session_id;	      /* Mcp-Session-Id, or the legacy sessionId */
	const char *host;	      /* the request's Host header */
	const char *protocol_version; /* MCP-Protocol-Version */
	const struct ag_origin *origin; /* the connection's; NULL: none */
	/* A sub-agent's delegation chain, worked out once at admission
	 * (daemon/admit.h): context.delegation, and the principal is in each
	 * agent of it.  NULL: a root agent, no delegation. */
	const struct ag_delegation *chain;
	/* An outside agent (inbound.h): its token's principal and scopes;
	 * NULL: a local agent, principal Agent::"<agent_name>". */
	const struct ag_inbound_id *inbound;
};

/*
 * The decision point's state, carried by the daemon (d->decider): the
 * policy set (agentgate.conf(5) "policy") with its entities, the stores
 * of sub-agents' delegation chains and the sessions' call counters
 * (lib/decision.h).  Without a "policy" key set is NULL and the
 * allow-lists decide.  The loop is one thread, so swapping the set
 * between two events is atomic for every decision.
 */
struct ag_decider {
	struct ag_policy_set *set; /* NULL: the allow-lists decide */
	struct ag_entities *ents;
	json_t *ents_json; /* what ents was made of, for the chain stores */
	struct ag_chain_cache *chains;
	struct ag_sessions *sessions;
	struct ag_policy_result res; /* scratch of each evaluation */
	struct ag_anomaly *anomaly;  /* daemon/anomalies.h; NULL: flags off */
	/* With a "policy_source": the commit in force ("" : none yet, the
	 * set is empty and refuses everything) and its exported tree. */
	char commit[AG_GIT_COMMIT_LEN];
	char tree[PATH_MAX];
};

/*
 * Makes d->decider and loads the policy set; without a "policy" key it
 * succeeds and the allow-lists decide.  ag_decide_free releases it.
 */
int ag_decide_init(struct ag_daemon *d, struct ag_err *err);
void ag_decide_free(struct ag_daemon *d);

struct ag_policy_info {
	char digest[65]; /* of the running set's text; "" without a set */
	size_t policies;
};
/*
 * Re-reads the policy files and the entities.  A set that fails to load
 * never replaces the running one: -1 with err saying why (file:line:column
 * for a parse error).  Both outcomes are logged and audited as a
 * "policy_reload" record; trigger says who asked ("sighup", "control").
 * info, if not NULL, describes the running set afterwards.
 */
int ag_decide_reload(struct ag_daemon *d, const char *trigger, struct ag_policy_info *info,
		     struct ag_err *err);

/*
 * The policy source's commit (daemon/policy_git.h): the set in dir, with
 * the configured entities, replaces the running one, loaded as a reload
 * loads.  -1 with err when it does not load (the running set stays).
 * Logging and auditing are the caller's.
 */
int ag_decide_load_tree(struct ag_daemon *d, const char *dir, const char *commit,
			struct ag_policy_info *info, struct ag_err *err);

/* A request or notification the MCP path governs (tools/call,
 * resources/read, prompts/get); everything else is AG_OUTCOME_ALLOW. */
void ag_decide(const struct ag_decide_ctx *x, const struct ag_jsonrpc_msg *m,
	       struct ag_decision *out);
/*
 * The whole verdict on a governed message: ag_decide, then for a
 * tools/call the tool's integrity (a definition not approved is HIDDEN,
 * rule "tool_integrity") and the agent's budgets and loop protection
 * (ag_budget_check); last, an escalation that cannot wait for a human is
 * a DENY (ag_escalation_eligible; lone: m is the only message of its body
 * and not a legacy POST, whose answer goes to another connection).
 */
void ag_decide_message(const struct ag_decide_ctx *x, const struct ag_jsonrpc_msg *m, bool lone,
		       struct ag_decision *out);
/* A human approved a held call of tool: it counts as a call of the
 * session and joins context.session.approved.  -1 when it cannot be
 * recorded (then the call is refused). */
int ag_decide_approved(const struct ag_decide_ctx *x, const char *tool);
/* Whether a tool of a tools/list result stays in the agent's view. */
bool ag_decide_visible(const struct ag_decide_ctx *x, const char *tool);

#endif
