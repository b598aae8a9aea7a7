// SPDX-License-Identifier: GPL-2.0
/*
 * Policy decision cost: a generated set of 100 policies with argument
 * conditions, decided against a tools/call-shaped request.  Two shapes:
 * "typical" (permits are per tool, so most fail their scope check) and
 * "worst" (every policy's scope matches and every condition is evaluated).
 * "empty" has no policies: the fixed cost of a request, mostly converting the
 * context JSON, which happens on every decision as in the daemon.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy.h"

#define N_POLICIES 100
#define N_FORBIDS 20

static const char entities_json[] =
    "[{\"uid\":{\"type\":\"Agent\",\"id\":\"orchestrator\"}},"
    "{\"uid\":{\"type\":\"Agent\",\"id\":\"worker\"},"
    "\"parents\":[{\"type\":\"Agent\",\"id\":\"orchestrator\"}]},"
    "{\"uid\":{\"type\":\"User\",\"id\":\"alice\"},\"attrs\":{\"cost_center\":\"CC-4410\"}},"
    "{\"uid\":{\"type\":\"Tool\",\"id\":\"srv/tool42\"},"
    "\"parents\":[{\"type\":\"Server\",\"id\":\"srv\"}]}]";

static const char context_json[] =
    "{\"args\":{\"amount\":420,\"dept\":\"finance\",\"cc\":\"CC-4410\",\"note\":\"q3 travel\","
    "\"items\":[\"hotel\",\"train\"]},"
    "\"operator\":{\"__entity\":{\"type\":\"User\",\"id\":\"alice\"}},"
    "\"session\":{\"id\":\"s-1\",\"calls\":{\"tool42\":1,\"tool7\":2},\"approved\":[]},"
    "\"delegation\":[\"orchestrator\",\"worker\"],"
    "\"time\":{\"hour\":14,\"weekday\":3,\"epoch\":1795000000},"
    "\"request\":{\"host\":\"erp.example.com\",\"protocol_version\":\"2025-06-18\"}}";

enum shape { EMPTY, TYPICAL, WORST };

static const char *const shape_names[] = { "empty", "typical", "worst" };

static char *generate(enum shape shape)
{
	size_t cap = 1 << 16, len = 0;
	char *text = calloc(1, cap);
	int n_policies = shape == EMPTY ? 0 : N_POLICIES;

	for (int i = 0; text && i < n_policies; i++) {
		char scope[64];
		int n;

		if (shape == WORST)
			snprintf(scope, sizeof(scope), "in Server::\"srv\"");
		else
			snprintf(scope, sizeof(scope), "== Tool::\"srv/tool%d\"", i);
		if (i < N_POLICIES - N_FORBIDS)
			n = snprintf(
			    text + len, cap - len,
			    "@id(\"permit-%d\")\npermit(principal in Agent::\"orchestrator\", "
			    "action == Action::\"call\", resource %s)\n"
			    "when { context.args.amount <= %d && context.args.dept like \"fin*\" "
			    "&& context.args.cc == context.operator.cost_center };\n",
			    i, scope, (i + 1) * 10);
		else
			n = snprintf(
			    text + len, cap - len,
			    "@id(\"forbid-%d\")\nforbid(principal, action == Action::\"call\", "
			    "resource in Server::\"srv\")\n"
			    "when { context.session.calls has \"tool%d\" && "
			    "context.session.calls[\"tool%d\"] >= 3 || "
			    "context.args.items.contains(\"flight-%d\") };\n",
			    i, i, i, i);
		if (n < 0 || (size_t)n >= cap - len) {
			free(text);
			return NULL;
		}
		len += (size_t)n;
	}
	return text;
}

static double now(void)
{
	struct timespec ts;

	/* CPU time: the machine is shared, wall time would measure the neighbours. */
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run(enum shape shape, struct ag_entities *ents, json_t *ctx, long iters)
{
	struct ag_policy_request req = {
		{ "Agent", "worker" }, { "Action", "call" }, { "Tool", "srv/tool42" }, ctx
	};
	struct ag_policy_error err;
	struct ag_policy_result res;
	struct ag_policy_set *set;
	char *text = generate(shape);
	double t0, dt;

	if (!text) {
		fprintf(stderr, "policy_bench: cannot generate the policy text\n");
		return 1;
	}
	set = ag_policy_parse_text("bench", text, strlen(text), &err);
	free(text);
	if (!set) {
		fprintf(stderr, "policy_bench: %s\n", err.msg);
		return 1;
	}
	ag_policy_result_init(&res);
	for (long i = 0; i < 1000; i++)
		ag_policy_evaluate(set, ents, &req, &res, NULL, &err);
	t0 = now();
	for (long i = 0; i < iters; i++) {
		if (ag_policy_evaluate(set, ents, &req, &res, NULL, &err)) {
			fprintf(stderr, "policy_bench: %s\n", err.msg);
			return 1;
		}
	}
	dt = now() - t0;
	printf("%-8s %zu policies: %s, %zu satisfied, %zu errors; %.0f decisions/s, %.0f "
	       "ns/decision (CPU time)\n",
	       shape_names[shape], ag_policy_count(set), ag_policy_decision_name(res.decision),
	       res.n_matches, res.n_diags, (double)iters / dt, dt * 1e9 / (double)iters);
	ag_policy_result_fini(&res);
	ag_policy_set_free(set);
	return 0;
}

int main(int argc, char **argv)
{
	long iters = argc > 1 ? atol(argv[1]) : 200000;
	struct ag_policy_error err;
	json_t *ents_json = json_loads(entities_json, 0, NULL);
	json_t *ctx = json_loads(context_json, 0, NULL);
	struct ag_entities *ents = ag_entities_from_json(ents_json, &err);
	int ret;

	if (!ents || !ctx || iters <= 0) {
		fprintf(stderr, "policy_bench: setup failed: %s\n",
			ents ? "bad context/iterations" : err.msg);
		return 1;
	}
	ret = run(EMPTY, ents, ctx, iters) || run(TYPICAL, ents, ctx, iters) ||
	      run(WORST, ents, ctx, iters);
	ag_entities_free(ents);
	json_decref(ents_json);
	json_decref(ctx);
	return ret;
}
