// SPDX-License-Identifier: GPL-2.0
/*
 * Fuzz the policy parser and evaluator.  Input: a policy set, optionally
 * followed by a line "%%" and a JSON request context, so agent-controlled
 * context values are fuzzed together with the conditions that read them.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char entities_json[] =
    "[{\"uid\":{\"type\":\"Agent\",\"id\":\"orchestrator\"},\"attrs\":{\"team\":\"fin\"}},"
    "{\"uid\":{\"type\":\"Agent\",\"id\":\"worker\"},\"attrs\":{\"trust\":2},"
    "\"parents\":[{\"type\":\"Agent\",\"id\":\"orchestrator\"}]},"
    "{\"uid\":{\"type\":\"User\",\"id\":\"alice\"},\"attrs\":{\"cost_center\":\"CC-1\","
    "\"manager\":{\"__entity\":{\"type\":\"User\",\"id\":\"bob\"}}}},"
    "{\"uid\":{\"type\":\"User\",\"id\":\"bob\"},\"parents\":[{\"type\":\"User\",\"id\":\"alice\"}]"
    "},"
    "{\"uid\":{\"type\":\"Tool\",\"id\":\"erp/create_expense_report\"},"
    "\"attrs\":{\"readOnlyHint\":false},\"parents\":[{\"type\":\"Server\",\"id\":\"erp\"}]}]";

static const char default_context[] =
    "{\"args\":{\"amount\":7000,\"cost_center\":\"CC-1\",\"to\":\"bob\",\"x\":1.5},"
    "\"operator\":{\"__entity\":{\"type\":\"User\",\"id\":\"alice\"}},"
    "\"session\":{\"id\":\"s1\",\"calls\":{\"create_expense_report\":1},\"approved\":[]},"
    "\"delegation\":[\"orchestrator\",\"worker\"],"
    "\"time\":{\"hour\":10,\"weekday\":2,\"epoch\":1795000000},"
    "\"request\":{\"host\":\"10.1.2.3\",\"protocol_version\":\"2025-06-18\"}}";

static const struct ag_policy_request base_requests[] = {
	{ { "Agent", "worker" }, { "Action", "call" }, { "Tool", "erp/create_expense_report" }, 0 },
	{ { "Agent", "orchestrator" }, { "Action", "list" }, { "Server", "erp" }, 0 },
	{ { "User", "bob" }, { "Action", "read" }, { "Tool", "nope/none" }, 0 },
};

static struct ag_entities *entities(void)
{
	static struct ag_entities *ents;

	if (!ents) {
		json_t *j = json_loads(entities_json, 0, NULL);

		ents = ag_entities_from_json(j, NULL);
		json_decref(j);
		if (!ents)
			abort();
	}
	return ents;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data, *sep = memmem(data, size, "\n%%\n", 4);
	size_t plen = sep ? (size_t)(sep - text) : size;
	struct ag_policy_error err;
	struct ag_policy_result res;
	enum ag_policy_status *status;
	struct ag_policy_set *set;
	json_t *ctx;

	set = ag_policy_parse_text("fuzz.cedar", text, plen, &err);
	if (!set)
		return 0;
	if (sep)
		ctx = json_loadb(sep + 4, size - plen - 4, 0, NULL);
	else
		ctx = json_loads(default_context, 0, NULL);
	status = calloc(ag_policy_count(set) + 1, sizeof(*status));
	ag_policy_result_init(&res);
	for (size_t i = 0; status && i < sizeof(base_requests) / sizeof(base_requests[0]); i++) {
		struct ag_policy_request req = base_requests[i];

		req.context = ctx;
		if (ag_policy_evaluate(set, entities(), &req, &res, status, &err) == 0 &&
		    res.decision == AG_ESCALATE && !res.escalate_reason)
			abort();
	}
	ag_policy_result_fini(&res);
	free(status);
	json_decref(ctx);
	ag_policy_set_free(set);
	return 0;
}
