// SPDX-License-Identifier: GPL-2.0
/*
 * Policy decision cost: a generated set of 100 policies with argument
 * conditions, decided against a tools/call-shaped request.  Shapes:
 * "typical" (permits are per tool, so most fail their scope check),
 * "worst" (every policy's scope matches and every condition is evaluated),
 * "empty" (no policies: the fixed cost of a request, mostly converting the
 * context JSON, which happens on every decision as in the daemon), and
 * "gateway": the typical set decided as the daemon decides a tools/call
 * (ag_policy_call_decide: the context built from the call, Action::"list"
 * then Action::"call").  Each decision is timed on its own (CLOCK_MONOTONIC,
 * the clock read's own cost subtracted) for the median and p99; decisions/s
 * is CPU time over the whole run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy.h"
#include "policy_request.h"

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

enum shape { EMPTY, TYPICAL, WORST, GATEWAY };

static const char *const shape_names[] = { "empty", "typical", "worst", "gateway" };

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
		if (i == 0 && shape != WORST)
			/* The gateway asks whether the agent may see the tool first. */
			n = snprintf(text + len, cap - len,
				     "@id(\"list\")\npermit(principal in Agent::\"orchestrator\", "
				     "action == Action::\"list\", resource in Server::\"srv\");\n");
		else if (i < N_POLICIES - N_FORBIDS)
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

static double cpu_now(void)
{
	struct timespec ts;

	/* CPU time: the machine is shared, wall time would measure the neighbours. */
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline long long mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return (x > y) - (x < y);
}

/* The clock read's own cost: the median of back-to-back reads. */
static long long clock_cost(void)
{
	long long d[1001];

	for (int i = 0; i < 1001; i++) {
		long long t = mono_ns();

		d[i] = mono_ns() - t;
	}
	qsort(d, 1001, sizeof(*d), cmp_ll);
	return d[500];
}

/* What the daemon knows of the bench's request (context_json in struct form). */
struct gw {
	struct ag_policy_call call;
	json_t *args, *calls, *approved;
	const char *chain[1];
};

static void gw_init(struct gw *g, json_t *ctx)
{
	json_t *sess = json_object_get(ctx, "session");

	g->args = json_object_get(ctx, "args");
	g->calls = json_object_get(sess, "calls");
	g->approved = json_object_get(sess, "approved");
	g->chain[0] = "orchestrator";
	g->call = (struct ag_policy_call){
		.agent = "worker",
		.server = "srv",
		.target = AG_TARGET_TOOL,
		.name = "tool42",
		.args = g->args,
		.operator_name = "alice",
		.session_id = "s-1",
		.calls = g->calls,
		.approved = g->approved,
		.now = 1795000000,
		.host = "erp.example.com",
		.protocol_version = "2025-06-18",
		.delegation = g->chain,
		.n_delegation = 1,
	};
}

static int decide_once(enum shape shape, const struct ag_policy_set *set,
		       const struct ag_entities *ents, const struct ag_policy_request *req,
		       const struct gw *g, struct ag_policy_result *res)
{
	struct ag_policy_verdict v;
	struct ag_policy_error err;

	if (shape != GATEWAY) {
		if (!ag_policy_evaluate(set, ents, req, res, NULL, &err))
			return 0;
		fprintf(stderr, "policy_bench: %s\n", err.msg);
		return -1;
	}
	ag_policy_call_decide(set, ents, &g->call, res, &v);
	if (v.kind == AG_OUTCOME_ALLOW)
		return 0;
	fprintf(stderr, "policy_bench: gateway decision is not allow: %s\n", v.reason);
	return -1;
}

static int run(enum shape shape, struct ag_entities *ents, json_t *ctx, long iters, long long *lat)
{
	struct ag_policy_request req = {
		{ "Agent", "worker" }, { "Action", "call" }, { "Tool", "srv/tool42" }, ctx
	};
	struct ag_policy_error err;
	struct ag_policy_result res;
	struct ag_policy_set *set;
	char *text = generate(shape == GATEWAY ? TYPICAL : shape);
	long long overhead = clock_cost();
	double t0, dt;
	struct gw g;
	int ret = 0;

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
	gw_init(&g, ctx);
	ag_policy_result_init(&res);
	for (long i = 0; i < 1000 && !ret; i++)
		ret = decide_once(shape, set, ents, &req, &g, &res);
	t0 = cpu_now();
	for (long i = 0; i < iters && !ret; i++) {
		long long t = mono_ns();

		ret = decide_once(shape, set, ents, &req, &g, &res);
		lat[i] = mono_ns() - t - overhead;
	}
	dt = cpu_now() - t0;
	if (!ret) {
		qsort(lat, (size_t)iters, sizeof(*lat), cmp_ll);
		printf("%-8s %zu policies: %s, %zu satisfied, %zu errors; %.0f decisions/s, "
		       "%.0f ns/decision (CPU time); median %lld ns, p99 %lld ns\n",
		       shape_names[shape], ag_policy_count(set),
		       ag_policy_decision_name(res.decision), res.n_matches, res.n_diags,
		       (double)iters / dt, dt * 1e9 / (double)iters, lat[iters / 2],
		       lat[iters - 1 - iters / 100]);
	}
	ag_policy_result_fini(&res);
	ag_policy_set_free(set);
	return ret ? 1 : 0;
}

int main(int argc, char **argv)
{
	long iters = argc > 1 ? atol(argv[1]) : 200000;
	struct ag_policy_error err;
	json_t *ents_json = json_loads(entities_json, 0, NULL);
	json_t *ctx = json_loads(context_json, 0, NULL);
	struct ag_entities *ents = ag_entities_from_json(ents_json, &err);
	long long *lat =
	    iters > 0 && iters <= 100000000 ? calloc((size_t)iters, sizeof(*lat)) : NULL;
	int ret;

	if (!ents || !ctx || !lat) {
		fprintf(stderr, "policy_bench: setup failed: %s\n",
			ents ? "bad context, or iterations not in 1..100000000" : err.msg);
		return 1;
	}
	ret = run(EMPTY, ents, ctx, iters, lat) || run(TYPICAL, ents, ctx, iters, lat) ||
	      run(WORST, ents, ctx, iters, lat) || run(GATEWAY, ents, ctx, iters, lat);
	free(lat);
	ag_entities_free(ents);
	json_decref(ents_json);
	json_decref(ctx);
	return ret;
}
