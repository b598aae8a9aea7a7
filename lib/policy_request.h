/* SPDX-License-Identifier: GPL-2.0 */
/*
 * How a governed MCP request becomes Cedar requests (agentgate-policy(5)):
 * principal Agent::"<agent>", action Action::"call"|"list"|"read"|
 * "get_prompt", resource Tool|Resource|Prompt::"<server>/<name>" in
 * Server::"<server>", and the context (args, operator, session,
 * delegation, time, request, anomaly).  A request to an HTTP service is
 * Action::"http" on Route::"<service>/<route>", its args the context's
 * own members (method, path, params, query, headers, body).  The daemon decides live traffic with it (daemon/decide.c) and
 * `agentgatectl policy simulate` replays audit records with it, so a
 * simulation asks the engine exactly what the gateway would have asked.
 * Nothing here keeps state: session counters belong to the caller.
 */
#ifndef AG_POLICY_REQUEST_H
#define AG_POLICY_REQUEST_H

#include <stdint.h>
#include <jansson.h>

#include "anomaly.h"
#include "jsonrpc.h"
#include "policy.h"
#include "target.h"

/* The target a method asks for (m, or its name as audit records hold
 * it); -1 when the method is not governed. */
int ag_policy_target_of_method(enum ag_mcp_method m, enum ag_policy_target *t);
int ag_policy_target_of_method_name(const char *method, enum ag_policy_target *t);
/* "tool", "resource", "prompt": for messages, and the key of the
 * target's name in an audit record. */
const char *ag_policy_target_name(enum ag_policy_target t);

/* What the gateway knows of one governed request; everything is borrowed. */
struct ag_policy_call {
	const char *agent;  /* principal Agent::"agent" */
	const char *server; /* the tool server's configured name */
	enum ag_policy_target target;
	const char *name; /* the tool, resource or prompt */
	/* A tool's definition as the inventory trusts it
	 * (ag_inventory_definition), for its attributes; NULL: unknown. */
	const json_t *definition;
	json_t *args;		   /* tools/call "arguments" as sent; NULL: none */
	const char *operator_name; /* NULL or "": no context.operator */
	/* NULL or "": no context.session.  calls (tool -> count of allowed
	 * calls) and approved (tools a human approved) are the session's
	 * counters so far; NULL counts as empty. */
	const char *session_id;
	json_t *calls, *approved;
	int64_t now;			     /* context.time: seconds since the epoch, UTC */
	const char *host, *protocol_version; /* context.request; NULL: "" */
	/* context.delegation: the agents that started agent, root first
	 * (lib/delegation.h); n_delegation 0: agent is a root agent.  The
	 * caller evaluates with entities in which agent is in each of them
	 * (ag_policy_delegation_entities). */
	const char *const *delegation;
	size_t n_delegation;
	/* context.anomaly: this call's flags (lib/anomaly.h), computed before
	 * its decision; NULL: every flag false. */
	const struct ag_anomaly_verdict *anomaly;
	/*
	 * Called after each engine request, for logs: res is the outcome, or
	 * NULL when the request itself was unusable, then error says why.
	 * May be NULL.
	 */
	void (*report)(void *arg, const char *action, const char *resource,
		       const struct ag_policy_result *res, const char *error);
	void *report_arg;
	/* The principal's entity type, agent its id: NULL is "Agent"; an
	 * outside agent's is "Client" or "User" (daemon/inbound.h). */
	const char *principal_type;
};

/* The gateway's verdict on a governed message: the one verdict enum of the
 * MCP path (daemon/decide.h's struct ag_decision has it too). */
enum ag_policy_outcome {
	AG_OUTCOME_ALLOW,
	AG_OUTCOME_HIDDEN,   /* not even visible: "Unknown tool" */
	AG_OUTCOME_DENY,     /* visible, this call refused */
	AG_OUTCOME_ESCALATE, /* allowed once a human approves */
};

/* "allow", "deny_unknown" (HIDDEN), "deny", "ask": for logs and the
 * agent's _meta, and what `policy simulate` compares with the log. */
const char *ag_policy_outcome_name(enum ag_policy_outcome k);

/* How an escalation's reason starts (then the policy's @escalate text). */
#define AG_POLICY_ESCALATE_PREFIX "needs approval: "

struct ag_policy_verdict {
	enum ag_policy_outcome kind;
	char reason[256];   /* "" for a plain allow; never an argument value */
	char policies[256]; /* deciding policy ids, comma-separated; "" none */
};

/*
 * The entities of base (Cedar's entities JSON, borrowed) with the chain
 * chain[0] > chain[1] > ... > chain[n - 1] as parents: Agent::chain[i + 1]
 * is in Agent::chain[i], so `principal in Agent::"<root>"` holds for every
 * sub-agent below it.  An agent the array lacks is added without
 * attributes.  Returns a new array, or NULL when out of memory.
 */
json_t *ag_policy_delegation_entities(json_t *base, const char *const *chain, size_t n);

/* MCP's tool annotations that a Tool entity carries as boolean attributes. */
#define AG_POLICY_TOOL_HINTS "destructiveHint", "readOnlyHint", "idempotentHint", "openWorldHint"

/*
 * The entity a governed request names, in Cedar's entities JSON:
 * Tool|Resource|Prompt::"<server>/<name>" in Server::"<server>", with
 * attribute server (a string).  A tool also carries, from def (its
 * definition as the inventory trusts it; NULL: unknown), each of
 * AG_POLICY_TOOL_HINTS that its annotations give as a boolean, and title
 * (a string: the tool's title, else annotations.title, as MCP displays
 * it); what def lacks is absent, so policies test `resource has x` first.
 * The daemon and `agentgatectl policy` both decide with this entity.
 * Returns a new object, or NULL when out of memory.
 */
json_t *ag_policy_target_entity(enum ag_policy_target t, const char *server, const char *name,
				const json_t *def);

/*
 * The target a Cedar resource reference names: Tool|Resource|Prompt and an
 * id "<server>/<name>" (a server name holds no '/').  0 with *t, server
 * (copied into len bytes) and *name (into ref->id) set; -1 when ref names
 * no governed target or the server's name does not fit.
 */
int ag_policy_target_of(const struct ag_entity_ref *ref, enum ag_policy_target *t, char *server,
			size_t len, const char **name);

/* The Cedar action of a target: "call", "read", "get_prompt". */
const char *ag_policy_target_action(enum ag_policy_target t);

/*
 * context for one request of c, args as given (NULL: no context.args).
 * Returns a new object, or NULL when out of memory.
 */
json_t *ag_policy_call_context(const struct ag_policy_call *c, json_t *args);

/*
 * One engine request: action on the target of c, with args as
 * context.args.  Returns the engine's decision; AG_DENY with out->reason
 * set when the request is unusable.  out->policies is set.
 */
enum ag_policy_decision ag_policy_call_eval(const struct ag_policy_set *set,
					    const struct ag_entities *ents,
					    const struct ag_policy_call *c, const char *action,
					    json_t *args, struct ag_policy_result *res,
					    struct ag_policy_verdict *out);

/*
 * Whether the decision on c may turn on the values of its arguments: a
 * policy whose scope the request meets reads context.args (or the whole
 * context).  When none does, a call whose arguments were not recorded can
 * still be decided.  True, to be safe, when the request cannot be built.
 * res is scratch.
 */
bool ag_policy_call_reads_args(const struct ag_policy_set *set, const struct ag_entities *ents,
			       const struct ag_policy_call *c, struct ag_policy_result *res);

/*
 * The gateway's decision on c: for a tool, Action::"list" first (a tool
 * the agent may not list is HIDDEN), then Action::"call" with the
 * arguments (absent arguments are an empty record); a refused resource or
 * prompt is HIDDEN; only a tool call escalates.  The caller counts an
 * allowed tool call in its session (and may still refuse it if it cannot).
 */
void ag_policy_call_decide(const struct ag_policy_set *set, const struct ag_entities *ents,
			   const struct ag_policy_call *c, struct ag_policy_result *res,
			   struct ag_policy_verdict *out);

#endif
