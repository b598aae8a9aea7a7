// SPDX-License-Identifier: GPL-2.0
/*
 * The MCP path's decisions: by the Cedar policy set when agentgate.json
 * names one ("policy"), else by the per-agent allow-lists.
 *
 * With a policy set, each governed message is one or two requests to the
 * engine (agentgate-policy(5) documents the entities and the context):
 *  - tools/call: first Action::"list" on the tool (a tool the agent may
 *    not see is HIDDEN, "Unknown tool", as if it did not exist), then
 *    Action::"call" with the arguments (a refusal is DENY, an isError
 *    result the model can read);
 *  - resources/read, prompts/get: Action::"read" / Action::"get_prompt";
 *    a refusal is HIDDEN, since neither has an isError result shape;
 *  - tools/list results: Action::"list" per tool (ag_decide_visible).
 * The requests themselves are built by lib/policy_request.c, and the
 * session counters, the entities of delegation chains and the escalation
 * rule are lib/decision.c's: `agentgatectl policy simulate` shares both.
 * Evaluation errors skip the policy (Cedar semantics) and are logged,
 * never counted as a match; an unusable request is a deny.  The state
 * (struct ag_decider) is carried by the daemon, d->decider.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "anomalies.h"
#include "budget.h"
#include "decide.h"
#include "decision.h"
#include "fileio.h"
#include "integrity.h"
#include "inventory.h"
#include "policy.h"
#include "inbound.h"
#include "policy_request.h"
#include "subagent.h"
#include "trail.h"



/* ---- loading ---------------------------------------------------------- */

static bool uid_is(json_t *ent, const char *type, const char *id)
{
	json_t *uid = json_object_get(ent, "uid");

	return json_is_string(json_object_get(uid, "type")) &&
	       !strcmp(json_string_value(json_object_get(uid, "type")), type) &&
	       json_is_string(json_object_get(uid, "id")) &&
	       !strcmp(json_string_value(json_object_get(uid, "id")), id);
}

/*
 * The entities file plus what agentgate.json says of each agent: its
 * "attributes" become attributes of Agent::"<name>" (added to the file's
 * entity of that name, overriding attributes of the same name, or a new
 * entity without parents).  Parents from sub-agent chains are added per
 * chain (chain_ents); *json gets the array.
 */
static struct ag_entities *load_entities(const struct ag_conf *c, json_t **json, struct ag_err *err)
{
	struct ag_policy_error perr = { 0 };
	struct ag_entities *ents = NULL;
	json_error_t jerr;
	json_t *arr;

	if (c->policy.entities[0]) {
		arr = ag_json_load_file(c->policy.entities, JSON_REJECT_DUPLICATES, &jerr);
		if (!arr) {
			ag_errf(err, EINVAL, "%s:%d:%d: %s", c->policy.entities, jerr.line,
				jerr.column, jerr.text);
			return NULL;
		}
		if (!json_is_array(arr)) {
			json_decref(arr);
			ag_errf(err, EINVAL, "%s: expected an array of entities",
				c->policy.entities);
			return NULL;
		}
	} else if (!(arr = json_array())) {
		ag_errf(err, ENOMEM, "policy entities: out of memory");
		return NULL;
	}
	for (int i = 0; i < c->nr_agents; i++) {
		const struct ag_agent_conf *ac = &c->agents[i];
		json_t *attrs, *ent = NULL, *e;
		size_t k;

		if (!ac->attributes)
			continue;
		if (!(attrs = json_loads(ac->attributes, 0, NULL)))
			goto oom;
		json_array_foreach(arr, k, e) if (uid_is(e, "Agent", ac->name)) ent = e;
		if (ent) {
			json_t *old = json_object_get(ent, "attrs");

			if (!json_is_object(old)) {
				json_object_set_new(ent, "attrs", attrs);
			} else {
				json_object_update(old, attrs);
				json_decref(attrs);
			}
		} else if (json_array_append_new(arr, json_pack("{s:{s:s,s:s},s:o,s:[]}", "uid",
								"type", "Agent", "id", ac->name,
								"attrs", attrs, "parents"))) {
			goto oom;
		}
	}
	ents = ag_entities_from_json(arr, &perr);
	if (!ents)
		ag_errf(err, EINVAL, "%s: %s",
			c->policy.entities[0] ? c->policy.entities : "agent attributes", perr.msg);
	if (ents)
		*json = arr;
	else
		json_decref(arr);
	return ents;
oom:
	json_decref(arr);
	ag_errf(err, ENOMEM, "policy entities: out of memory");
	return NULL;
}

/* tree: the policy source's export (NULL: the configured dir or files). */
static int load(const struct ag_conf *c, const char *tree, struct ag_policy_set **set,
		struct ag_entities **ents, json_t **json, struct ag_err *err)
{
	struct ag_policy_error perr = { 0 };
	const char **paths;

	if (tree || c->policy.dir[0]) {
		*set = ag_policy_load_dir(tree ? tree : c->policy.dir, &perr);
	} else {
		if (!(paths = calloc(c->policy.nr_files, sizeof(*paths))))
			return ag_errf(err, ENOMEM, "policy: out of memory");
		for (int i = 0; i < c->policy.nr_files; i++)
			paths[i] = c->policy.files[i];
		*set = ag_policy_load_files(paths, c->policy.nr_files, &perr);
		free(paths);
	}
	/* perr.msg already reads "file:line:column: what" or "path: why". */
	if (!*set)
		return ag_errf(err, EINVAL, "%s", perr.msg);
	if (!(*ents = load_entities(c, json, err))) {
		ag_policy_set_free(*set);
		*set = NULL;
		return -EINVAL;
	}
	return 0;
}

static void swap_in(struct ag_decider *p, struct ag_policy_set *set, struct ag_entities *ents,
		    json_t *json)
{
	/* First: the chain stores borrow the old entities. */
	ag_chain_cache_reset(p->chains, ents, json);
	ag_policy_set_free(p->set);
	ag_entities_free(p->ents);
	json_decref(p->ents_json);
	p->set = set;
	p->ents = ents;
	p->ents_json = json;
}

/*
 * Until the policy source's first commit is accepted: no policy, so
 * every governed request is refused (Cedar's default deny), never the
 * allow-lists.  The entities load as they will with the commit.
 */
static int empty_set(const struct ag_conf *c, struct ag_policy_set **set, struct ag_entities **ents,
		     json_t **json, struct ag_err *err)
{
	struct ag_policy_error perr = { 0 };

	if (!(*set = ag_policy_parse_text("policy_source", "", 0, &perr)))
		return ag_errf(err, EINVAL, "%s", perr.msg);
	if (!(*ents = load_entities(c, json, err))) {
		ag_policy_set_free(*set);
		*set = NULL;
		return -EINVAL;
	}
	return 0;
}

int ag_decide_init(struct ag_daemon *d, struct ag_err *err)
{
	struct ag_policy_set *set;
	struct ag_entities *ents;
	struct ag_decider *p;
	json_t *json = NULL;
	int ret;

	if (!(p = calloc(1, sizeof(*p))) || !(p->sessions = ag_sessions_new()) ||
	    !(p->chains = ag_chain_cache_new(AG_CHAIN_STORES))) {
		if (p)
			ag_sessions_free(p->sessions);
		free(p);
		return ag_errf(err, ENOMEM, "policy: out of memory");
	}
	ag_policy_result_init(&p->res);
	d->decider = p;
	if ((ret = ag_anomaly_open(d, &p->anomaly, err))) {
		ag_decide_free(d);
		return ret;
	}
	if (!d->conf.policy.set)
		return 0;
	if (d->conf.policy_source.url[0])
		ret = empty_set(&d->conf, &set, &ents, &json, err);
	else
		ret = load(&d->conf, NULL, &set, &ents, &json, err);
	if (ret) {
		ag_decide_free(d);
		return ret;
	}
	swap_in(p, set, ents, json);
	ag_log(AG_LOG_INFO, "policy", "result=loaded policies=%zu digest=%s", ag_policy_count(set),
	       ag_policy_digest(set));
	return 0;
}

void ag_decide_free(struct ag_daemon *d)
{
	struct ag_decider *p = d->decider;

	if (!p)
		return;
	swap_in(p, NULL, NULL, NULL);
	ag_anomaly_close(p->anomaly);
	ag_chain_cache_free(p->chains);
	ag_sessions_free(p->sessions);
	ag_policy_result_fini(&p->res);
	free(p);
	d->decider = NULL;
}

int ag_decide_reload(struct ag_daemon *d, const char *trigger, struct ag_policy_info *info,
		     struct ag_err *err)
{
	struct ag_decider *p = d->decider;
	struct ag_policy_set *set = NULL;
	struct ag_entities *ents = NULL;
	json_t *json = NULL;
	char q[2 * sizeof(err->msg)];
	int ret = 0;

	if (!d->conf.policy.set)
		ret = ag_errf(err, ENOENT, "no \"policy\" in the configuration: nothing to reload");
	else if (d->conf.policy_source.url[0] && !p->tree[0])
		ret = ag_errf(err, ENOENT,
			      "policy_source: no commit accepted yet: nothing to reload");
	else
		ret = load(&d->conf, p->tree[0] ? p->tree : NULL, &set, &ents, &json, err);
	if (ret) {
		/* The running set stays: a typo must not open or close the gateway. */
		ag_log(AG_LOG_ERROR, "policy_reload", "result=error trigger=%s running=%s error=%s",
		       trigger, p->set ? ag_policy_digest(p->set) : "none",
		       ag_logq(q, sizeof(q), err->msg));
		ag_daemon_audit(d, "policy_reload",
				json_pack("{s:b,s:s,s:s,s:s?}", "ok", 0, "trigger", trigger,
					  "error", err->msg, "running_digest",
					  p->set ? ag_policy_digest(p->set) : NULL));
	} else {
		swap_in(p, set, ents, json);
		ag_log(AG_LOG_INFO, "policy_reload", "result=ok trigger=%s policies=%zu digest=%s",
		       trigger, ag_policy_count(set), ag_policy_digest(set));
		ag_daemon_audit(d, "policy_reload",
				json_pack("{s:b,s:s,s:s,s:I}", "ok", 1, "trigger", trigger,
					  "digest", ag_policy_digest(set), "policies",
					  (json_int_t)ag_policy_count(set)));
	}
	if (info) {
		snprintf(info->digest, sizeof(info->digest), "%s",
			 p->set ? ag_policy_digest(p->set) : "");
		info->policies = p->set ? ag_policy_count(p->set) : 0;
	}
	return ret;
}

int ag_decide_load_tree(struct ag_daemon *d, const char *dir, const char *commit,
			struct ag_policy_info *info, struct ag_err *err)
{
	struct ag_decider *p = d->decider;
	struct ag_policy_set *set = NULL;
	struct ag_entities *ents = NULL;
	json_t *json = NULL;
	int ret;

	if (strlen(dir) >= sizeof(p->tree) || strlen(commit) >= sizeof(p->commit))
		return ag_errf(err, ENAMETOOLONG, "%s: path too long", dir);
	if ((ret = load(&d->conf, dir, &set, &ents, &json, err)))
		return ret;
	swap_in(p, set, ents, json);
	snprintf(p->tree, sizeof(p->tree), "%s", dir);
	snprintf(p->commit, sizeof(p->commit), "%s", commit);
	if (info) {
		snprintf(info->digest, sizeof(info->digest), "%s", ag_policy_digest(set));
		info->policies = ag_policy_count(set);
	}
	return 0;
}

/* ---- session counters ------------------------------------------------- */

static struct ag_session *session_of(const struct ag_decide_ctx *x, bool create)
{
	const struct ag_session_key k = { x->agent_name, x->srv->name, x->session_id };
	struct ag_session_evicted ev;
	struct ag_session *s;

	s = ag_session_get(x->d->decider->sessions, &k, create, &ev);
	if (ev.evicted)
		ag_log(AG_LOG_WARN, "policy", "session_evicted agent=%s server=%s slots=%d",
		       ev.agent, ev.server, AG_SESSION_SLOTS);
	return s;
}

int ag_decide_approved(const struct ag_decide_ctx *x, const char *tool)
{
	struct ag_session *s;

	ag_anomaly_settle(x->d->decider->anomaly, x->agent_name, x->srv->name, tool, true);
	if (!x->session_id || !x->session_id[0])
		return 0;
	if (!(s = session_of(x, true)))
		return -1;
	return ag_session_approve(s, tool);
}

/* ---- evaluation ------------------------------------------------------- */

/* Evaluation errors are reported, never matched: Cedar skips the policy. */
static void report(void *arg, const char *action, const char *resource,
		   const struct ag_policy_result *res, const char *error)
{
	const struct ag_decide_ctx *x = arg;
	char q1[512], q2[512], q3[512];

	if (!res) {
		ag_log(AG_LOG_WARN, "policy_error", "agent=%s action=%s resource=%s error=%s",
		       x->agent_name, action, ag_logq(q1, sizeof(q1), resource),
		       ag_logq(q2, sizeof(q2), error));
		return;
	}
	for (size_t i = 0; i < res->n_diags; i++)
		ag_log(AG_LOG_WARN, "policy_error",
		       "agent=%s action=%s resource=%s policy=%s error=%s msg=\"policy skipped\"",
		       x->agent_name, action, ag_logq(q1, sizeof(q1), resource),
		       ag_logq(q3, sizeof(q3), res->diags[i].policy_id),
		       ag_logq(q2, sizeof(q2), res->diags[i].msg));
}

/* The agents that started the calling agent, root first, as the policy request's. */
struct call_chain {
	const char *names[AG_DELEGATION_MAX];
};

static size_t chain_init(const struct ag_decide_ctx *x, struct call_chain *ch)
{
	size_t k;

	if (!x->chain)
		return 0;
	for (k = 0; k < x->chain->n && strcmp(x->chain->name[k], x->agent_name); k++)
		ch->names[k] = x->chain->name[k];
	return k < x->chain->n ? k : 0;
}

/*
 * The request as lib/policy_request.c builds it (shared with `policy
 * simulate`): context.session from this session's counters, context.time
 * from the clock, context.delegation from the connection's cgroup, a
 * tool's attributes from the definition the inventory trusts,
 * context.anomaly from av (NULL: no flags).
 */
static void call_init(const struct ag_decide_ctx *x, enum ag_policy_target t, const char *name,
		      json_t *args, const struct ag_anomaly_verdict *av, struct call_chain *ch,
		      struct ag_policy_call *c)
{
	struct ag_session *s = session_of(x, false);
	size_t n = chain_init(x, ch);

	*c = (struct ag_policy_call){
		.agent = x->inbound ? x->inbound->principal_id : x->agent_name,
		.principal_type = x->inbound ? x->inbound->principal_type : NULL,
		.server = x->srv->name,
		.target = t,
		.name = name,
		.definition = t == AG_TARGET_TOOL
				  ? ag_inventory_definition(x->d->inventory, x->srv->name, name)
				  : NULL,
		.args = args,
		.operator_name = x->agent ? x->agent->operator_name : NULL,
		.session_id = x->session_id,
		.calls = s ? s->calls : NULL,
		.approved = s ? s->approved : NULL,
		.now = (int64_t)time(NULL),
		.host = x->host,
		.protocol_version = x->protocol_version,
		.report = report,
		.report_arg = (void *)x,
		.delegation = ch->names,
		.n_delegation = n,
		.anomaly = av,
	};
}

/* The entities c is decided with (ag_chain_ents); NULL, logged, when they
 * cannot be made: the request is then refused. */
static const struct ag_entities *chain_ents(const struct ag_decide_ctx *x,
					    const struct ag_policy_call *c)
{
	struct ag_policy_error perr = { 0 };
	const struct ag_entities *ents;
	char key[AG_DELEGATION_MAX * AG_NAME_LEN], q[1024];

	if (!ag_chain_ents(x->d->decider->chains, c, &ents, key, sizeof(key), &perr))
		return ents;
	ag_log(AG_LOG_ERROR, "policy_error", "agent=%s delegation=%s error=%s", c->agent,
	       ag_logq(q, sizeof(q), key), perr.msg);
	return NULL;
}

static void policy_decide(const struct ag_decide_ctx *x, enum ag_policy_target t,
			  const struct ag_jsonrpc_msg *m, const struct ag_anomaly_verdict *av,
			  struct ag_decision *out)
{
	struct ag_decider *p = x->d->decider;
	const struct ag_entities *ents;
	struct ag_policy_verdict v;
	struct ag_policy_call c;
	struct call_chain ch;

	out->rule = "policy";
	call_init(x, t, m->name, m->arguments, av, &ch, &c);
	if (!(ents = chain_ents(x, &c))) {
		/* Fail closed: without the chain's entities, no policy can be trusted. */
		out->kind = AG_OUTCOME_DENY;
		snprintf(out->reason, sizeof(out->reason),
			 "the entities of the delegation chain could not be made");
		return;
	}
	ag_policy_call_decide(p->set, ents, &c, &p->res, &v);
	ag_session_settle(p->sessions, &c, &v);
	out->kind = v.kind;
	ag_strcpy_cut(out->reason, sizeof(out->reason), v.reason);
	ag_strcpy_cut(out->policies, sizeof(out->policies), v.policies);
}

/* ---- the decision point ----------------------------------------------- */

/*
 * An outside agent's scopes (inbound.h) name tools only: without a policy
 * set its resources and prompts are refused, with one they are the
 * policies' to decide.
 */
static bool inbound_allows(const struct ag_decide_ctx *x, enum ag_policy_target t, const char *name)
{
	if (t == AG_TARGET_TOOL)
		return ag_inbound_tool_granted(x->d, x->inbound, name);
	return x->d->decider->set != NULL;
}

/*
 * Without a policy set the per-agent allow-lists decide, and they know
 * only names: what an agent may not call it may not see either, so every
 * refusal is HIDDEN (the model is not invited to retry it).
 */
void ag_decide(const struct ag_decide_ctx *x, const struct ag_jsonrpc_msg *m,
	       struct ag_decision *out)
{
	const struct ag_decider *p = x->d->decider;
	struct ag_anomaly_verdict av;
	enum ag_policy_target t;

	out->kind = AG_OUTCOME_ALLOW;
	out->rule = p->set ? "policy" : "allow-list";
	out->reason[0] = '\0';
	out->policies[0] = '\0';
	memset(out->anomaly, 0, sizeof(out->anomaly));
	ag_strcpy_cut(out->policy_commit, sizeof(out->policy_commit), p->commit);
	if (ag_policy_target_of_method(m->mcp, &t))
		return;
	if (!m->name) {
		/* Nothing to decide on is nothing allowed. */
		out->kind = AG_OUTCOME_HIDDEN;
		snprintf(out->reason, sizeof(out->reason), "%s request without a name",
			 ag_policy_target_name(t));
		return;
	}
	/* Before the decision, which may read them (context.anomaly). */
	ag_anomaly_flags(x->d, p->anomaly, x->agent_name, x->origin, x->chain, x->srv->name,
			 t == AG_TARGET_TOOL ? m->name : NULL, &av);
	memcpy(out->anomaly, av.on, sizeof(out->anomaly));
	/* Fail closed: an outside agent's token bounds what any policy allows. */
	if (x->inbound && !inbound_allows(x, t, m->name)) {
		out->kind = AG_OUTCOME_HIDDEN;
		out->rule = "scope";
		snprintf(out->reason, sizeof(out->reason),
			 "%s %s/%s is not covered by the token's scopes", ag_policy_target_name(t),
			 x->srv->name, m->name);
		return;
	}
	if (p->set) {
		policy_decide(x, t, m, &av, out);
		return;
	}
	/* Without policies, an outside agent's scopes are its allow-list. */
	if (x->inbound || ag_conf_allows(x->agent, t, x->srv->name, m->name))
		return;
	out->kind = AG_OUTCOME_HIDDEN;
	snprintf(out->reason, sizeof(out->reason), "%s %s/%s is not in the allow-list of agent %s",
		 ag_policy_target_name(t), x->srv->name, m->name, x->agent_name);
}

bool ag_decide_visible(const struct ag_decide_ctx *x, const char *tool)
{
	struct ag_decider *p = x->d->decider;
	struct ag_policy_verdict scratch;
	const struct ag_entities *ents;
	struct ag_policy_call c;
	struct call_chain ch;

	if (x->inbound && !ag_inbound_tool_granted(x->d, x->inbound, tool))
		return false;
	if (p->set) {
		call_init(x, AG_TARGET_TOOL, tool, NULL, NULL, &ch, &c);
		return (ents = chain_ents(x, &c)) &&
		       ag_policy_call_eval(p->set, ents, &c, "list", NULL, &p->res, &scratch) ==
			   AG_ALLOW;
	}
	return x->inbound || ag_conf_allows(x->agent, AG_TARGET_TOOL, x->srv->name, tool);
}

/*
 * For the anomaly flags (daemon/anomalies.h), the final verdict on m: an
 * allowed call marks its tool and server used, a refused one counts as a
 * denial; an escalation waits for ag_decide_approved.
 */
static void settle(const struct ag_decide_ctx *x, const struct ag_jsonrpc_msg *m,
		   const struct ag_decision *dec)
{
	enum ag_policy_target t;

	if (ag_policy_target_of_method(m->mcp, &t) || !m->name || dec->kind == AG_OUTCOME_ESCALATE)
		return;
	ag_anomaly_settle(x->d->decider->anomaly, x->agent_name, x->srv->name,
			  t == AG_TARGET_TOOL ? m->name : NULL, dec->kind == AG_OUTCOME_ALLOW);
}

void ag_decide_message(const struct ag_decide_ctx *x, const struct ag_jsonrpc_msg *m, bool lone,
		       struct ag_decision *out)
{
	ag_decide(x, m, out);
	if (m->mcp != AG_MCP_TOOLS_CALL)
		goto hold;
	if (out->kind != AG_OUTCOME_HIDDEN && m->name &&
	    !ag_integrity_callable(x->d, x->srv, m->name)) {
		/* Fail closed: a changed definition is not the tool a human approved. */
		out->kind = AG_OUTCOME_HIDDEN;
		out->rule = "tool_integrity";
		snprintf(out->reason, sizeof(out->reason),
			 "the tool's definition is not approved (agentgatectl tools approve)");
		out->policies[0] = '\0';
	}
	if (out->kind == AG_OUTCOME_ALLOW || out->kind == AG_OUTCOME_ESCALATE)
		ag_budget_check(x->d, x->agent, x->agent_name, x->origin, x->chain, x->srv, m, out);
hold:
	/* Fail closed: what cannot wait for a human is refused, with the escalation's reason. */
	if (out->kind == AG_OUTCOME_ESCALATE && !ag_escalation_eligible(lone, m->id, m->name))
		out->kind = AG_OUTCOME_DENY;
	settle(x, m, out);
}
