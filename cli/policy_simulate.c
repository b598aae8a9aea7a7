// SPDX-License-Identifier: GPL-2.0
/*
 * agentgatectl policy simulate: the decision records of an audit log
 * replayed against a candidate policy set.  The requests are the daemon's
 * (lib/policy_request.h), and so are the session counters, the entities
 * of delegation chains and the escalation rule (lib/decision.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "audit.h"
#include "decision.h"
#include "delegation.h"
#include "fileio.h"
#include "inventory.h"
#include "policy_cli.h"
#include "policy_request.h"

const char policy_usage_simulate[] =
    "usage: agentgatectl policy simulate --policies DIR|FILE... [--entities FILE] [--json]\n"
    "         AUDIT_LOG...\n"
    "Replay the decision records of an audit log against a candidate policy set (one\n"
    "directory, or policy files in the order given) and print every decision that would\n"
    "change: seq, ts, agent, action server/name: recorded -> simulated by POLICIES: reason.\n"
    "A call whose arguments were hashed is listed as \"undetermined: arguments not\n"
    "recorded\" when a policy that could match it reads context.args.  A single AUDIT_LOG\n"
    "stands for its rotated series.  Exits 0 when nothing would change, 1 when something\n"
    "would or is undetermined, 2 when it cannot run.\n";

enum { SIM_POLICIES, SIM_ENTITIES, SIM_JSON };

/*
 * Replays the decision records of an audit log against a candidate set.
 * Each record becomes the request the daemon would have built
 * (lib/policy_request.c); what the log does not hold is rebuilt or left
 * out, as agentgatectl(8) documents: context.time from the record's ts,
 * context.session.calls/approved by replaying the log in order,
 * context.delegation (and the sub-agent in its parents) from the record's
 * agent.delegation, context.operator from the record's operator (absent
 * when the agent had none), context.request empty, a tool's attributes
 * from the definition the inventory trusts now.
 */
struct sim {
	const struct ag_policy_set *set;
	const struct ag_entities *ents;
	json_t *ents_json;	  /* what ents was made of, for delegation chains; NULL: none */
	struct ag_inventory *inv; /* the instance's tool inventory; NULL: none */
	struct ag_chain_cache *chains; /* the entities of delegation chains */
	struct ag_policy_result res;
	bool reads_args;	      /* some policy of the candidate reads context.args */
	struct ag_sessions *sessions; /* the daemon's session counters, replayed */
	json_t *changes;	      /* --json */
	json_t *unknown;	      /* --json: the undetermined decisions */
	bool json;
	size_t replayed, changed, undetermined, skipped;
};

/* {"sha256": "<64 hex>"}: what ag_audit_redact() leaves of a value. */
static bool is_hash(json_t *v)
{
	const char *h = json_string_value(json_object_get(v, "sha256"));

	return json_is_object(v) && json_object_size(v) == 1 && h && strlen(h) == 64 &&
	       strspn(h, "0123456789abcdef") == 64;
}

/* The daemon hashes each member's value, or the whole value of non-object
 * arguments: either way the values are gone. */
static bool args_hashed(json_t *args)
{
	const char *k;
	json_t *v;

	if (is_hash(args))
		return true;
	json_object_foreach(args, k, v) if (is_hash(v)) return true;
	return false;
}

/* The session a record was in, as the daemon keeps it (lib/decision.h). */
static struct ag_session *sim_session(struct sim *s, const char *agent, const char *server,
				      const char *id)
{
	const struct ag_session_key k = { agent, server, id };

	return ag_session_get(s->sessions, &k, true, NULL);
}

/* The agent's name: the daemon writes an object, older records a string. */
static const char *rec_agent(json_t *rec)
{
	json_t *a = json_object_get(rec, "agent");

	return json_is_string(a) ? json_string_value(a)
				 : json_string_value(json_object_get(a, "name"));
}

/* agent.delegation (root first) into names; -1 when it is not a list of
 * at most AG_DELEGATION_MAX - 1 names. */
static int rec_delegation(json_t *rec, const char **names, size_t *n)
{
	json_t *list = json_object_get(json_object_get(rec, "agent"), "delegation"), *v;
	size_t i;

	*n = 0;
	if (!list)
		return 0;
	if (!json_is_array(list) || json_array_size(list) >= AG_DELEGATION_MAX)
		return -1;
	json_array_foreach(list, i, v) if (!(names[(*n)++] = json_string_value(v))) return -1;
	return 0;
}

/* The entities c is decided with, as the daemon's (ag_chain_ents).  -1
 * (and a message) when they cannot be made. */
static int sim_ents(struct sim *s, const struct ag_policy_call *c, const struct ag_entities **out)
{
	struct ag_policy_error perr = { 0 };
	char key[AG_DELEGATION_MAX * AG_NAME_LEN];

	if (!ag_chain_ents(s->chains, c, out, key, sizeof(key), &perr))
		return 0;
	fprintf(stderr, "policy simulate: entities of the delegation chain of %s: %s\n", c->agent,
		perr.msg);
	return -1;
}

/* A human approved a call the candidate would also have held. */
static void sim_approval(struct sim *s, json_t *rec)
{
	const char *tool = json_string_value(json_object_get(rec, "tool"));
	const char *agent = rec_agent(rec),
		   *server = json_string_value(json_object_get(rec, "server"));
	const char *dec = json_string_value(json_object_get(rec, "decision"));
	struct ag_session *sess;

	if (!tool || !agent || !server || !dec || strcmp(dec, "allow"))
		return;
	sess = sim_session(s, agent, server, json_string_value(json_object_get(rec, "session")));
	if (sess && ag_session_unhold(sess, tool, json_object_get(rec, "id")))
		ag_session_approve(sess, tool);
}

/* An undetermined decision: what was recorded, and why it cannot be replayed. */
static void sim_print_unknown(struct sim *s, json_t *rec, const struct ag_policy_call *c,
			      const char *recorded)
{
	static const char why[] = "arguments not recorded";
	const char *ts = json_string_value(json_object_get(rec, "ts")) ?: "?";
	const char *action = ag_policy_target_action(c->target);
	json_int_t seq = json_integer_value(json_object_get(rec, "seq"));

	if (!s->json) {
		printf("seq %lld %s %s %s %s/%s: %s -> undetermined: %s\n", (long long)seq, ts,
		       c->agent, action, c->server, c->name, recorded, why);
		return;
	}
	json_array_append_new(s->unknown,
			      json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "seq", seq, "ts", ts,
					"agent", c->agent, "server", c->server, "name", c->name,
					"action", action, "recorded", recorded, "reason", why));
}

static void sim_print(struct sim *s, json_t *rec, const struct ag_policy_call *c,
		      const char *recorded, const struct ag_policy_verdict *v)
{
	const char *ts = json_string_value(json_object_get(rec, "ts")) ?: "?";
	const char *action = ag_policy_target_action(c->target);
	json_int_t seq = json_integer_value(json_object_get(rec, "seq"));
	json_t *ids, *o;
	char *p, *save;
	char buf[sizeof(v->policies)];

	if (!s->json) {
		printf("seq %lld %s %s %s %s/%s: %s -> %s by %s%s%s\n", (long long)seq, ts,
		       c->agent, action, c->server, c->name, recorded,
		       ag_policy_outcome_name(v->kind), v->policies[0] ? v->policies : "none",
		       v->reason[0] ? ": " : "", v->reason);
		return;
	}
	ids = json_array();
	snprintf(buf, sizeof(buf), "%s", v->policies);
	for (p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save))
		json_array_append_new(ids, json_string(p));
	o = json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:s}", "seq", seq, "ts", ts, "agent",
		      c->agent, "server", c->server, "name", c->name, "action", action, "recorded",
		      recorded, "simulated", ag_policy_outcome_name(v->kind), "policies", ids,
		      "reason", v->reason);
	json_array_append_new(s->changes, o);
}

/* The daemon records only tools/call, resources/read and prompts/get,
 * with the target's name under its word ("tool", "resource", "prompt"). */
static bool rec_target(json_t *rec, enum ag_policy_target *t, const char **name)
{
	if (ag_policy_target_of_method_name(json_string_value(json_object_get(rec, "method")), t))
		return false;
	*name = json_string_value(json_object_get(rec, ag_policy_target_name(*t)));
	return *name != NULL;
}

/*
 * Whether the daemon could have held the call for a human
 * (ag_escalation_eligible): the record has an id, and it was not refused
 * as an escalation the daemon could not hold (a batch element, a legacy
 * POST: recorded as a deny with the escalation's reason).
 */
static bool rec_holdable(json_t *rec, const char *dec, const char *reason)
{
	json_t *id = json_object_get(rec, "id");
	bool lone = strcmp(dec, "deny") || !reason ||
		    strncmp(reason, AG_POLICY_ESCALATE_PREFIX, strlen(AG_POLICY_ESCALATE_PREFIX));

	return ag_escalation_eligible(lone, id && !json_is_null(id), true);
}

static void sim_decision(struct sim *s, json_t *rec)
{
	const char *dec = json_string_value(json_object_get(rec, "decision"));
	struct ag_policy_call c = { .agent = rec_agent(rec),
				    .server = json_string_value(json_object_get(rec, "server")) };
	json_t *args = json_object_get(rec, "args"), *id = json_object_get(rec, "id");
	const char *recorded, *sid = json_string_value(json_object_get(rec, "session"));
	struct ag_session *sess, *tool_sess;
	const char *chain[AG_DELEGATION_MAX];
	const struct ag_entities *ents;
	struct ag_anomaly_verdict av = { 0 };
	struct ag_policy_verdict v;
	struct timespec ts;

	if (!c.agent || !c.server || !dec || !rec_target(rec, &c.target, &c.name) ||
	    ag_audit_parse_ts(json_string_value(json_object_get(rec, "ts")) ?: "", &ts) ||
	    rec_delegation(rec, chain, &c.n_delegation)) {
		s->skipped++;
		return;
	}
	c.delegation = chain;
	c.operator_name = json_string_value(json_object_get(rec, "operator"));
	if (c.target == AG_TARGET_TOOL)
		c.definition = ag_inventory_definition(s->inv, c.server, c.name);
	if (sim_ents(s, &c, &ents)) {
		s->skipped++;
		return;
	}
	recorded = !strcmp(dec, "deny") && json_is_true(json_object_get(rec, "hidden"))
		       ? "deny_unknown"
		       : dec;
	/* Every target sees the session; only tool calls count in it. */
	sess = sim_session(s, c.agent, c.server, sid);
	tool_sess = c.target == AG_TARGET_TOOL ? sess : NULL;
	if (c.target == AG_TARGET_TOOL && args && s->reads_args && args_hashed(args) &&
	    ag_policy_call_reads_args(s->set, ents, &c, &s->res)) {
		/* The values are gone: say so rather than guess.  The recorded
		 * outcome is the best count for the session. */
		s->undetermined++;
		sim_print_unknown(s, rec, &c, recorded);
		if (tool_sess && !strcmp(dec, "allow"))
			ag_session_count(tool_sess, c.name);
		if (tool_sess)
			ag_session_hold(tool_sess, !strcmp(dec, "ask"), c.name, id);
		return;
	}
	c.args = json_is_null(args) ? NULL : args;
	c.session_id = sid;
	c.calls = sess ? sess->calls : NULL;
	c.approved = sess ? sess->approved : NULL;
	c.now = (int64_t)ts.tv_sec;
	ag_anomaly_flags_parse(json_object_get(rec, "anomaly"), av.on);
	c.anomaly = &av;
	ag_policy_call_decide(s->set, ents, &c, &s->res, &v);
	ag_session_settle(s->sessions, &c, &v);
	/* The daemon refuses what it cannot hold, and would refuse it again. */
	if (v.kind == AG_OUTCOME_ESCALATE &&
	    !rec_holdable(rec, dec, json_string_value(json_object_get(rec, "reason"))))
		v.kind = AG_OUTCOME_DENY;
	s->replayed++;
	if (tool_sess)
		ag_session_hold(tool_sess, v.kind == AG_OUTCOME_ESCALATE, c.name, id);
	if (!strcmp(recorded, ag_policy_outcome_name(v.kind)))
		return;
	s->changed++;
	sim_print(s, rec, &c, recorded, &v);
}

/* Returns 0, or 2 after saying which file cannot be read. */
static int sim_file(struct sim *s, const char *path)
{
	struct ag_audit_reader *r;
	struct ag_err err;
	const char *line;
	size_t len, n = 0;
	bool torn;
	int ret;

	if (ag_audit_reader_open(path, &r, &err)) {
		fprintf(stderr, "policy simulate: %s; check the log path\n", err.msg);
		return 2;
	}
	/* A torn last line was never durable: the daemon did not act on it. */
	while ((ret = ag_audit_reader_next(r, &line, &len, &torn, &err)) == 1 && !torn) {
		json_t *rec = json_loadb(line, len, 0, NULL);
		const char *kind = json_string_value(json_object_get(rec, "kind"));

		n++;
		if (!kind) {
			json_decref(rec);
			fprintf(stderr,
				"policy simulate: %s:%zu: not an audit record; run 'agentgatectl "
				"audit verify' on it\n",
				path, n);
			ag_audit_reader_close(r);
			return 2;
		}
		if (!strcmp(kind, "decision"))
			sim_decision(s, rec);
		else if (!strcmp(kind, "approval"))
			sim_approval(s, rec);
		json_decref(rec);
	}
	ag_audit_reader_close(r);
	if (ret < 0) {
		fprintf(stderr, "policy simulate: %s; run 'agentgatectl audit verify' on it\n",
			err.msg);
		return 2;
	}
	return 0;
}

/* One directory, or the files in the order given. */
static struct ag_policy_set *sim_load(const char *const *paths, size_t n)
{
	struct ag_policy_error err;
	struct ag_policy_set *set;
	struct stat st;

	for (size_t i = 0; i < n; i++) {
		if (stat(paths[i], &st) || !S_ISDIR(st.st_mode))
			continue;
		if (n == 1)
			break;
		fprintf(stderr,
			"policy simulate: %s is a directory: give one directory or policy files, "
			"not both\n",
			paths[i]);
		return NULL;
	}
	if (n == 1 && !stat(paths[0], &st) && S_ISDIR(st.st_mode))
		set = ag_policy_load_dir(paths[0], &err);
	else
		set = ag_policy_load_files(paths, n, &err);
	if (!set)
		fprintf(stderr, "policy simulate: %s\n", err.msg);
	return set;
}

int policy_simulate(struct ag_cli *cli, int argc, char **argv)
{
	static const struct cli_opt opts[] = {
		[SIM_POLICIES] = { .name = "policies", .arg = true, .many = true },
		[SIM_ENTITIES] = CLI_VAL("entities"),
		[SIM_JSON] = CLI_FLAG("json"),
		CLI_END,
	};
	const char **pols, *entities;
	struct sim s = { 0 };
	struct ag_policy_set *set = NULL;
	struct ag_entities *ents = NULL;
	struct ag_policy_error perr;
	struct cli_args a;
	struct ag_err err;
	size_t npols;
	static const struct cli_spec sp = { .cmd = "policy simulate",
					    .usage = policy_usage_simulate,
					    .opts = opts };
	int r = cli_parse(&sp, argc, argv, &a);

	if (r)
		return r == 1 ? 0 : 2;
	pols = a.list;
	npols = a.n_list;
	entities = a.val[SIM_ENTITIES];
	s.json = a.val[SIM_JSON] != NULL;
	r = 2;
	ag_policy_result_init(&s.res);
	if (!npols || a.ind >= argc) {
		fprintf(stderr,
			"policy simulate: %s; usage: agentgatectl policy simulate --policies "
			"DIR|FILE... [--entities FILE] [--json] AUDIT_LOG...\n",
			npols ? "missing audit log" : "missing --policies");
		goto out;
	}
	if (!(set = sim_load(pols, npols)))
		goto out;
	if (entities && !(ents = ag_entities_load_file(entities, &perr))) {
		fprintf(stderr, "policy simulate: %s\n", perr.msg);
		goto out;
	}
	/* Loaded: the file is valid JSON, read once more for delegation chains. */
	if (entities && !(s.ents_json = ag_json_load_file(entities, JSON_REJECT_DUPLICATES, NULL))) {
		fprintf(stderr, "policy simulate: %s: cannot read it again\n", entities);
		goto out;
	}
	if ((r = policy_inv_load(&cli->inst, "simulate", &s.inv)))
		goto out;
	r = 2;
	s.set = set;
	s.ents = ents;
	s.reads_args = ag_policy_reads_context(set, "args");
	s.sessions = ag_sessions_new();
	s.chains = ag_chain_cache_new(AG_CHAIN_STORES);
	s.changes = json_array();
	s.unknown = json_array();
	if (!s.sessions || !s.chains || !s.changes || !s.unknown) {
		fprintf(stderr, "policy simulate: out of memory\n");
		goto out;
	}
	ag_chain_cache_reset(s.chains, ents, s.ents_json);
	/* A single LOG stands for its rotated series, as in `audit`. */
	if (a.ind + 1 == argc) {
		char **paths;
		size_t np;

		if (ag_audit_series(argv[a.ind], &paths, &np, &err)) {
			fprintf(stderr, "policy simulate: %s; check the log path\n", err.msg);
			goto out;
		}
		for (size_t i = 0; i < np && !(r = sim_file(&s, paths[i])); i++)
			;
		ag_audit_series_free(paths, np);
	} else {
		for (int i = a.ind; i < argc && !(r = sim_file(&s, argv[i])); i++)
			;
	}
	if (r)
		goto out;
	if (s.json) {
		json_t *o =
		    json_pack("{s:I,s:I,s:I,s:I,s:O,s:O}", "replayed", (json_int_t)s.replayed,
			      "changed", (json_int_t)s.changed, "undetermined",
			      (json_int_t)s.undetermined, "skipped", (json_int_t)s.skipped,
			      "changes", s.changes, "undetermined_decisions", s.unknown);

		json_dumpf(o, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(o);
	}
	/* The summary goes to stderr with --json, so stdout stays one document. */
	fprintf(s.json ? stderr : stdout,
		"%zu decisions replayed, %zu would change, %zu undetermined (arguments not "
		"recorded), %zu skipped (not a governed call)\n",
		s.replayed, s.changed, s.undetermined, s.skipped);
	r = s.changed || s.undetermined ? 1 : 0;
out:
	cli_args_free(&a);
	ag_sessions_free(s.sessions);
	ag_chain_cache_free(s.chains);
	json_decref(s.changes);
	json_decref(s.unknown);
	json_decref(s.ents_json);
	ag_inventory_free(s.inv);
	ag_policy_result_fini(&s.res);
	ag_policy_set_free(set);
	ag_entities_free(ents);
	return r;
}
