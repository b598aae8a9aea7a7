// SPDX-License-Identifier: GPL-2.0
/*
 * lib/decision.c, the glue the daemon and `policy simulate` share: session
 * counters with their bounds and eviction, approvals and held calls, the
 * escalation rule, and the entity stores of delegation chains (checked by
 * what a `principal in Agent::"root"` policy decides with them).
 */
#include <stdio.h>
#include <string.h>

#include "decision.h"
#include "test.h"

static struct ag_policy_call tool_call(const char *agent, const char *tool, const char *sid)
{
	return (struct ag_policy_call){ .agent = agent,
					.server = "srv",
					.target = AG_TARGET_TOOL,
					.name = tool,
					.session_id = sid };
}

static struct ag_policy_verdict allowed(void)
{
	return (struct ag_policy_verdict){ .kind = AG_OUTCOME_ALLOW };
}

static json_int_t calls_of(struct ag_sessions *t, const char *agent, const char *sid,
			   const char *tool)
{
	const struct ag_session_key k = { agent, "srv", sid };
	struct ag_session *s = ag_session_get(t, &k, false, NULL);

	return s ? json_integer_value(json_object_get(s->calls, tool)) : -1;
}

TEST(decision_session_counts)
{
	struct ag_sessions *t = ag_sessions_new();
	struct ag_policy_call c = tool_call("a", "echo", "s1");
	struct ag_policy_verdict v = allowed();
	const struct ag_session_key none = { "a", "srv", "" };
	char big[AG_SESSION_ID_LEN + 1];

	ASSERT_TRUE(t != NULL, "sessions_new");
	ag_session_settle(t, &c, &v);
	ag_session_settle(t, &c, &v);
	ASSERT_EQ(v.kind, AG_OUTCOME_ALLOW, "counted call stays allowed");
	ASSERT_EQ(calls_of(t, "a", "s1", "echo"), 2, "two allowed calls counted");
	ASSERT_EQ(calls_of(t, "b", "s1", "echo"), -1, "another agent's session is apart");

	/* Only allowed tool calls count. */
	v.kind = AG_OUTCOME_DENY;
	ag_session_settle(t, &c, &v);
	c.target = AG_TARGET_RESOURCE;
	v = allowed();
	ag_session_settle(t, &c, &v);
	ASSERT_EQ(calls_of(t, "a", "s1", "echo"), 2, "refusals and resources do not count");

	/* No session id: no counters, nothing refused. */
	c = tool_call("a", "echo", NULL);
	ag_session_settle(t, &c, &v);
	ASSERT_EQ(v.kind, AG_OUTCOME_ALLOW, "no session: allowed");
	ASSERT_NULL(ag_session_get(t, &none, true, NULL), "empty id has no session");

	/* An id the daemon cannot key is refused rather than left uncounted. */
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	c = tool_call("a", "echo", big);
	ag_session_settle(t, &c, &v);
	ASSERT_EQ(v.kind, AG_OUTCOME_DENY, "unkeyable session refused");
	ASSERT_STREQ(v.reason, "the session's call counters are full", "reason");
	ag_sessions_free(t);
}

TEST(decision_session_tools_bound)
{
	struct ag_sessions *t = ag_sessions_new();
	struct ag_policy_verdict v;
	struct ag_policy_call c;
	char tool[32];

	for (int i = 0; i < AG_SESSION_TOOLS; i++) {
		snprintf(tool, sizeof(tool), "t%d", i);
		c = tool_call("a", tool, "s");
		v = allowed();
		ag_session_settle(t, &c, &v);
		if (!ASSERT_EQ(v.kind, AG_OUTCOME_ALLOW, "within the bound"))
			break;
	}
	/* A known tool still counts; a new one is refused. */
	c = tool_call("a", "t0", "s");
	v = allowed();
	ag_session_settle(t, &c, &v);
	ASSERT_EQ(v.kind, AG_OUTCOME_ALLOW, "known tool counts");
	ASSERT_EQ(calls_of(t, "a", "s", "t0"), 2, "t0 twice");
	c = tool_call("a", "new", "s");
	ag_session_settle(t, &c, &v);
	ASSERT_EQ(v.kind, AG_OUTCOME_DENY, "tool past the bound refused");
	ASSERT_STREQ(v.reason, "the session's call counters are full", "reason");
	ag_sessions_free(t);
}

TEST(decision_session_eviction)
{
	struct ag_sessions *t = ag_sessions_new();
	struct ag_session_evicted ev = { 0 };
	struct ag_session_key k = { "a", "srv", NULL };
	char id[32];

	for (int i = 0; i < AG_SESSION_SLOTS; i++) {
		snprintf(id, sizeof(id), "s%d", i);
		k.id = id;
		ASSERT_TRUE(ag_session_get(t, &k, true, &ev) != NULL, "session made");
		if (!ASSERT_FALSE(ev.evicted, "free slot taken"))
			break;
	}
	/* s0 is used again: s1 is now the least recently used. */
	k.id = "s0";
	ASSERT_TRUE(ag_session_get(t, &k, false, NULL) != NULL, "s0 kept");
	k = (struct ag_session_key){ "b", "other", "new" };
	ASSERT_TRUE(ag_session_get(t, &k, true, &ev) != NULL, "new session made");
	ASSERT_TRUE(ev.evicted, "a slot was taken");
	ASSERT_STREQ(ev.agent, "a", "evicted agent");
	ASSERT_STREQ(ev.server, "srv", "evicted server");
	k = (struct ag_session_key){ "a", "srv", "s1" };
	ASSERT_NULL(ag_session_get(t, &k, false, NULL), "s1 evicted");
	k.id = "s0";
	ASSERT_TRUE(ag_session_get(t, &k, false, NULL) != NULL, "s0 still there");
	ag_sessions_free(t);
}

TEST(decision_session_approve_hold)
{
	struct ag_sessions *t = ag_sessions_new();
	const struct ag_session_key k = { "a", "srv", "s" };
	struct ag_session *s = ag_session_get(t, &k, true, NULL);
	json_t *id = json_integer(7), *other = json_integer(8);

	ASSERT_TRUE(s != NULL, "session");
	ag_session_hold(s, true, "pay", id);
	ASSERT_FALSE(ag_session_unhold(s, "pay", other), "another id is not the held call");
	ASSERT_FALSE(ag_session_unhold(s, "echo", id), "another tool is not the held call");
	ASSERT_FALSE(ag_session_unhold(s, "pay", NULL), "no id is not the held call");
	ASSERT_TRUE(ag_session_unhold(s, "pay", id), "the held call");
	ASSERT_FALSE(ag_session_unhold(s, "pay", id), "resolved once");
	ag_session_hold(s, false, "pay", id);
	ASSERT_FALSE(ag_session_unhold(s, "pay", id), "a call not held");

	ASSERT_OK(ag_session_approve(s, "pay"), "approve");
	ASSERT_EQ(json_array_size(s->approved), 1, "approved listed");
	ASSERT_STREQ(json_string_value(json_array_get(s->approved, 0)), "pay", "approved tool");
	ASSERT_EQ(calls_of(t, "a", "s", "pay"), 1, "approval counts as a call");
	json_decref(id);
	json_decref(other);
	ag_sessions_free(t);
}

TEST(decision_escalation_eligible)
{
	ASSERT_TRUE(ag_escalation_eligible(true, true, true), "lone request with id and name");
	ASSERT_FALSE(ag_escalation_eligible(false, true, true), "batch element or legacy POST");
	ASSERT_FALSE(ag_escalation_eligible(true, false, true), "notification");
	ASSERT_FALSE(ag_escalation_eligible(true, true, false), "no name");
}

static const char chain_policy[] = "@id(\"tree\")\n"
				   "permit (principal in Agent::\"root\", action, resource);\n";

static enum ag_policy_outcome decide_with(const struct ag_policy_set *set,
					  const struct ag_entities *ents,
					  const struct ag_policy_call *c)
{
	struct ag_policy_verdict v;
	struct ag_policy_result res;

	ag_policy_result_init(&res);
	ag_policy_call_decide(set, ents, c, &res, &v);
	ag_policy_result_fini(&res);
	return v.kind;
}

TEST(decision_chain_ents)
{
	struct ag_policy_error perr = { 0 };
	struct ag_policy_set *set =
	    ag_policy_parse_text("chain.cedar", chain_policy, strlen(chain_policy), &perr);
	json_t *base = json_loads("[{\"uid\":{\"type\":\"Agent\",\"id\":\"root\"},\"attrs\":{},"
				  "\"parents\":[]}]",
				  0, NULL);
	struct ag_entities *ents = ag_entities_from_json(base, &perr);
	struct ag_chain_cache *cc = ag_chain_cache_new(2);
	const char *root[] = { "root" }, *other[] = { "other" };
	const char *deep[AG_DELEGATION_MAX] = { 0 };
	struct ag_policy_call c = tool_call("sub", "echo", NULL);
	const struct ag_entities *e1, *e2;
	char key[AG_DELEGATION_MAX * AG_NAME_LEN];

	if (!ASSERT_TRUE(set && ents && cc, "policy, entities, cache"))
		goto out;
	ag_chain_cache_reset(cc, ents, base);
	ASSERT_OK(ag_chain_ents(cc, &c, &e1, key, sizeof(key), &perr), "root agent");
	ASSERT_TRUE(e1 == ents, "a root agent gets the base");
	ASSERT_EQ(decide_with(set, e1, &c), AG_OUTCOME_HIDDEN, "sub alone is not in root");

	c.delegation = root;
	c.n_delegation = 1;
	ASSERT_OK(ag_chain_ents(cc, &c, &e1, key, sizeof(key), &perr), "chain root/sub");
	ASSERT_STREQ(key, "root/sub", "key");
	ASSERT_EQ(decide_with(set, e1, &c), AG_OUTCOME_ALLOW, "sub of root is in root");
	ASSERT_OK(ag_chain_ents(cc, &c, &e2, key, sizeof(key), &perr), "again");
	ASSERT_TRUE(e1 == e2, "the chain's store is kept");

	c.delegation = other;
	ASSERT_OK(ag_chain_ents(cc, &c, &e2, key, sizeof(key), &perr), "chain other/sub");
	ASSERT_EQ(decide_with(set, e2, &c), AG_OUTCOME_HIDDEN, "sub of other is not in root");

	for (int i = 0; i < AG_DELEGATION_MAX; i++)
		deep[i] = "x";
	c.delegation = deep;
	c.n_delegation = AG_DELEGATION_MAX;
	ASSERT_NEQ(ag_chain_ents(cc, &c, &e2, key, sizeof(key), &perr), 0, "chain too long");
	ASSERT_STRHAS(perr.msg, "too long", "why");
out:
	ag_chain_cache_free(cc);
	ag_entities_free(ents);
	json_decref(base);
	ag_policy_set_free(set);
}
