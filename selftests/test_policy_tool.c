// SPDX-License-Identifier: GPL-2.0
/*
 * A tool's entity as the gateway makes it (ag_policy_target_entity): its
 * server and the annotations of the definition the inventory trusts, merged
 * with an entities file's word on the same tool, and the shipped
 * no-destructive-tools policy deciding with it.
 */
#include <stdio.h>
#include <string.h>

#include "policy.h"
#include "policy_request.h"
#include "test.h"

/* A definition as the inventory keeps it: the canonical defining fields. */
static const char write_file_def[] =
    "{\"name\": \"write_file\", \"title\": \"Write File\", \"inputSchema\": "
    "{\"type\": \"object\"}, \"annotations\": {\"readOnlyHint\": false, "
    "\"idempotentHint\": true, \"destructiveHint\": true, \"openWorldHint\": false}}";

static json_t *attrs_of(const char *def_text)
{
	json_t *def = def_text ? json_loads(def_text, 0, NULL) : NULL;
	json_t *ent = ag_policy_target_entity(AG_TARGET_TOOL, "fs", "write_file", def);
	json_t *attrs = json_incref(json_object_get(ent, "attrs"));

	json_decref(ent);
	json_decref(def);
	return attrs;
}

/* Whether a equals want, which it consumes. */
static bool equals(const json_t *a, json_t *want)
{
	bool eq = json_equal(a, want);

	json_decref(want);
	return eq;
}

TEST(policy_tool_entity)
{
	json_t *ent, *attrs;

	if (test__start_subtest("every_annotation")) {
		attrs = attrs_of(write_file_def);
		ASSERT_TRUE(equals(attrs, json_pack("{s:s,s:b,s:b,s:b,s:b,s:s}", "server", "fs",
						    "destructiveHint", 1, "readOnlyHint", 0,
						    "idempotentHint", 1, "openWorldHint", 0,
						    "title", "Write File")),
			    "server, four hints and the title");
		json_decref(attrs);
	}
	if (test__start_subtest("absent_stays_absent")) {
		attrs =
		    attrs_of("{\"name\": \"write_file\", \"annotations\": "
			     "{\"destructiveHint\": \"yes\", \"title\": \"From annotations\"}}");
		ASSERT_TRUE(equals(attrs, json_pack("{s:s,s:s}", "server", "fs", "title",
						    "From annotations")),
			    "no boolean hint: none; annotations.title without a title");
		json_decref(attrs);
		attrs = attrs_of(NULL);
		ASSERT_TRUE(equals(attrs, json_pack("{s:s}", "server", "fs")),
			    "unknown definition: only the server");
		json_decref(attrs);
	}
	if (test__start_subtest("uid_and_parent")) {
		ent = ag_policy_target_entity(AG_TARGET_PROMPT, "fs", "p", NULL);
		ASSERT_TRUE(equals(ent, json_pack("{s:{s:s,s:s},s:{s:s},s:[{s:s,s:s}]}", "uid",
						  "type", "Prompt", "id", "fs/p", "attrs", "server",
						  "fs", "parents", "type", "Server", "id", "fs")),
			    "Prompt::\"fs/p\" in Server::\"fs\"");
		json_decref(ent);
	}
}

static int decide(const char *policy, const char *ents_json, const char *def_text,
		  struct ag_policy_verdict *v)
{
	struct ag_policy_set *set = ag_policy_parse_text("t", policy, strlen(policy), NULL);
	json_t *arr = ents_json ? json_loads(ents_json, 0, NULL) : NULL;
	struct ag_entities *ents = arr ? ag_entities_from_json(arr, NULL) : NULL;
	json_t *def = def_text ? json_loads(def_text, 0, NULL) : NULL;
	struct ag_policy_call c = { .agent = "a",
				    .server = "fs",
				    .target = AG_TARGET_TOOL,
				    .name = "write_file",
				    .definition = def };
	struct ag_policy_result res;

	if (!set)
		return -1;
	ag_policy_result_init(&res);
	ag_policy_call_decide(set, ents, &c, &res, v);
	ag_policy_result_fini(&res);
	ag_policy_set_free(set);
	ag_entities_free(ents);
	json_decref(arr);
	json_decref(def);
	return 0;
}

/* The shipped policy's form, with a permit for agent a on server fs. */
static const char destructive_policy[] =
    "@id(\"fs\") permit (principal == Agent::\"a\", action, resource in Server::\"fs\");\n"
    "@id(\"no-destructive-tools\")\n"
    "forbid (principal is Agent, action == Action::\"call\", resource is Tool)\n"
    "when { resource has destructiveHint && resource.destructiveHint };\n";

TEST(policy_tool_destructive)
{
	static const char marked_safe[] =
	    "[{\"uid\": {\"type\": \"Tool\", \"id\": \"fs/write_file\"}, "
	    "\"attrs\": {\"destructiveHint\": false}, "
	    "\"parents\": [{\"type\": \"Group\", \"id\": \"g\"}]}]";
	struct ag_policy_verdict v;

	ASSERT_OK(decide(destructive_policy, NULL, write_file_def, &v), "decide");
	ASSERT_EQ(v.kind, AG_OUTCOME_DENY, "a destructive tool is refused");
	ASSERT_STREQ(v.policies, "no-destructive-tools", "by the forbid");
	ASSERT_OK(decide(destructive_policy, NULL, NULL, &v), "decide");
	ASSERT_EQ(v.kind, AG_OUTCOME_ALLOW, "unknown definition: no hint, the permit holds");
	/* The entities file speaks for the operator: its attributes win, its
	 * parents add to the server. */
	ASSERT_OK(decide(destructive_policy, marked_safe, write_file_def, &v), "decide");
	ASSERT_EQ(v.kind, AG_OUTCOME_ALLOW, "the file's destructiveHint wins");
	ASSERT_OK(decide("permit (principal, action, resource in Group::\"g\") "
			 "when { resource.server == \"fs\" && resource.idempotentHint };",
			 marked_safe, write_file_def, &v),
		  "decide");
	ASSERT_EQ(v.kind, AG_OUTCOME_ALLOW, "the file's parent and the gateway's attributes");
}
