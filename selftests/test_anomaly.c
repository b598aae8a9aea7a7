// SPDX-License-Identifier: GPL-2.0
/*
 * The pure part of the anomaly flags (lib/anomaly.h), on a clock of the
 * test's: the rate against its own baseline, the minimum rate, the
 * denial window, first use and first contact, the caps failing toward
 * flagging, and the state's JSON (all or nothing).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "anomaly.h"
#include "test.h"

static struct ag_anomaly_conf conf(void)
{
	struct ag_anomaly_conf c;

	ag_anomaly_conf_default(&c);
	return c;
}

/* n calls every step_ms from *t; returns how many were flagged. */
static int calls(struct ag_rate *r, const struct ag_anomaly_conf *c, int64_t *t, int n,
		 int64_t step_ms, struct ag_rate_figures *fig)
{
	int flagged = 0;

	for (int i = 0; i < n; i++, *t += step_ms)
		flagged += ag_rate_call(r, c, *t, fig);
	return flagged;
}

TEST(anomaly_rate_baseline)
{
	struct ag_anomaly_conf c = conf();
	struct ag_rate r = { 0 };
	struct ag_rate_figures fig;
	int64_t t = 1000000;

	/* A new agent at 40 calls a minute is above a baseline it does not have
	 * yet (warm-up, some 6 minutes: 10% of baseline_s); then, steady, never. */
	ASSERT_GE(calls(&r, &c, &t, 20 * 40, 1500, &fig), 1, "warm-up: flagged");
	ASSERT_EQ(calls(&r, &c, &t, 2 * 60 * 40, 1500, &fig), 0, "steady rate: no flag");
	ASSERT_TRUE(fig.baseline_per_min > 30 && fig.baseline_per_min < 45, "baseline learnt");
	/* 5x the baseline for a minute: above the minimum, below the multiple. */
	ASSERT_EQ(calls(&r, &c, &t, 200, 300, &fig), 0, "5x: no flag");
	/* Then 20 calls a second: the current rate passes 10x the baseline. */
	ASSERT_GE(calls(&r, &c, &t, 600, 50, &fig), 1, "burst 10x: flagged");
	ASSERT_TRUE(fig.observed_per_min > 10 * fig.baseline_per_min, "figures say 10x");
}

TEST(anomaly_rate_minimum)
{
	struct ag_anomaly_conf c = conf();
	struct ag_rate r = { 0 };
	struct ag_rate_figures fig;
	int64_t t = 5000;

	/* A new agent has no baseline: only the minimum rate keeps it quiet. */
	ASSERT_EQ(calls(&r, &c, &t, 2, 1000, &fig), 0, "a quiet agent's second call");
	ASSERT_EQ(calls(&r, &c, &t, 10, 1000, &fig), 0, "ten calls in ten seconds");
	ASSERT_GE(calls(&r, &c, &t, 40, 10, &fig), 1, "forty in half a second");
	/* A clock that goes back is no time passing, never a negative decay. */
	ASSERT_TRUE(ag_rate_call(&r, &c, 1, &fig), "still a burst after a clock step back");
	ASSERT_TRUE(fig.observed_per_min < 1e6, "figures stay finite");
}

TEST(anomaly_denials_window)
{
	struct ag_anomaly_conf c = conf();
	struct ag_denials d = { 0 };

	c.denials = 3;
	c.denial_window_s = 10;
	ag_denials_add(&d, 0);
	ag_denials_add(&d, 20000);
	ag_denials_add(&d, 25000);
	ASSERT_FALSE(ag_denials_over(&d, &c, 25000), "3 denials over 25 s: not within 10 s");
	ag_denials_add(&d, 26000);
	ASSERT_TRUE(ag_denials_over(&d, &c, 26000), "3 within 6 s");
	ASSERT_FALSE(ag_denials_over(&d, &c, 40000), "the window passed");
	for (int i = 0; i < 200; i++)
		ag_denials_add(&d, 50000 + i);
	c.denials = AG_ANOMALY_DENIALS_MAX;
	ASSERT_TRUE(ag_denials_over(&d, &c, 50200), "the ring wraps");
}

TEST(anomaly_first_use)
{
	struct ag_anomaly_conf c = conf();
	struct ag_anomaly_table *t = ag_anomaly_table_new(&c);
	struct ag_anomaly_verdict v;

	if (!ASSERT_OK_PTR(t, "table"))
		return;
	ag_anomaly_call(t, "a", "srv", "echo", 1000, &v);
	ASSERT_TRUE(v.on[AG_ANOMALY_FIRST_TOOL] && v.record[AG_ANOMALY_FIRST_TOOL], "first tool");
	ASSERT_TRUE(v.on[AG_ANOMALY_FIRST_DESTINATION], "first destination");
	ASSERT_FALSE(v.on[AG_ANOMALY_RATE] || v.on[AG_ANOMALY_DENIALS], "no burst, no denial");
	/* Refused: still first next time (an unapproved first call proves nothing). */
	ag_anomaly_outcome(t, "a", "srv", "echo", false, 1000);
	ag_anomaly_call(t, "a", "srv", "echo", 2000, &v);
	ASSERT_TRUE(v.on[AG_ANOMALY_FIRST_TOOL], "refused first call: first again");
	ag_anomaly_outcome(t, "a", "srv", "echo", true, 2000);
	ag_anomaly_call(t, "a", "srv", "echo", 3000, &v);
	ASSERT_FALSE(v.on[AG_ANOMALY_FIRST_TOOL] || v.on[AG_ANOMALY_FIRST_DESTINATION],
		     "allowed once: used");
	ag_anomaly_call(t, "a", "srv", "add", 4000, &v);
	ASSERT_TRUE(v.on[AG_ANOMALY_FIRST_TOOL] && !v.on[AG_ANOMALY_FIRST_DESTINATION],
		    "a new tool on a known server");
	ag_anomaly_call(t, "b", "srv", "echo", 4000, &v);
	ASSERT_TRUE(v.on[AG_ANOMALY_FIRST_TOOL], "per agent: b never used it");
	ASSERT_TRUE(ag_anomaly_reach(t, "a", "10.0.0.1:443"), "pass-through: first contact");
	ASSERT_FALSE(ag_anomaly_reach(t, "a", "10.0.0.1:443"), "then known");
	ag_anomaly_table_free(t);
}

TEST(anomaly_episodes)
{
	struct ag_anomaly_conf c = conf();
	struct ag_anomaly_table *t = ag_anomaly_table_new(&c);
	struct ag_anomaly_verdict v;
	int on = 0, rec = 0;

	if (!ASSERT_OK_PTR(t, "table"))
		return;
	for (int i = 0; i < 5; i++)
		ag_anomaly_outcome(t, "a", "srv", "echo", false, 1000 + i);
	for (int i = 0; i < 100; i++) {
		ag_anomaly_call(t, "a", "srv", NULL, 2000 + i, &v);
		on += v.on[AG_ANOMALY_RATE];
		rec += v.record[AG_ANOMALY_RATE];
	}
	ASSERT_GE(on, 50, "the burst is flagged on every call past the minimum");
	ASSERT_EQ(rec, 1, "and recorded once while it lasts");
	ASSERT_TRUE(v.on[AG_ANOMALY_DENIALS], "5 denials within a minute");
	ASSERT_FALSE(v.on[AG_ANOMALY_FIRST_TOOL], "not a tools/call: no first_tool");
	ag_anomaly_call(t, "a", "srv", NULL, 3600000, &v);
	ASSERT_FALSE(v.on[AG_ANOMALY_RATE] || v.on[AG_ANOMALY_DENIALS], "an hour later: quiet");
	ag_anomaly_table_free(t);
}

TEST(anomaly_caps_flag)
{
	struct ag_anomaly_conf c = conf();
	struct ag_anomaly_table *t = ag_anomaly_table_new(&c);
	struct ag_anomaly_verdict v;
	char tool[32], longname[AG_ANOMALY_KEY_MAX + 2];

	if (!ASSERT_OK_PTR(t, "table"))
		return;
	ag_anomaly_outcome(t, "a", "srv", "t0", true, 1);
	for (int i = 1; i <= AG_ANOMALY_SEEN; i++) {
		snprintf(tool, sizeof(tool), "t%d", i);
		ag_anomaly_outcome(t, "a", "srv", tool, true, 1);
	}
	ASSERT_GE(ag_anomaly_evictions(t), 1, "the seen cap evicted");
	ag_anomaly_call(t, "a", "srv", "t0", 2, &v);
	ASSERT_TRUE(v.on[AG_ANOMALY_FIRST_TOOL], "evicted: flagged again, never silent");
	ag_anomaly_call(t, "a", "srv", tool, 2, &v);
	ASSERT_FALSE(v.on[AG_ANOMALY_FIRST_TOOL], "the newest is kept");
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	ag_anomaly_outcome(t, "a", "srv", longname, true, 3);
	ag_anomaly_call(t, "a", "srv", longname, 3, &v);
	ASSERT_TRUE(v.on[AG_ANOMALY_FIRST_TOOL], "a name too long to keep is always first");
	ag_anomaly_table_free(t);
}

TEST(anomaly_state_json)
{
	struct ag_anomaly_conf c = conf();
	struct ag_anomaly_table *t = ag_anomaly_table_new(&c), *u = ag_anomaly_table_new(&c);
	struct ag_anomaly_verdict v;
	struct ag_err err = { 0 };
	json_t *j = NULL, *bad;

	if (!ASSERT_OK_PTR(t, "table") || !ASSERT_OK_PTR(u, "table"))
		goto out;
	ag_anomaly_call(t, "a", "srv", "echo", 1000, &v);
	ag_anomaly_outcome(t, "a", "srv", "echo", true, 1000);
	ASSERT_TRUE(ag_anomaly_dirty(t), "changed");
	j = ag_anomaly_table_json(t);
	if (!ASSERT_OK_PTR(j, "json"))
		goto out;
	ASSERT_FALSE(ag_anomaly_dirty(t), "saved");
	ASSERT_OK(ag_anomaly_table_load(u, j, &err), "loaded");
	ag_anomaly_call(u, "a", "srv", "echo", 2000, &v);
	ASSERT_FALSE(v.on[AG_ANOMALY_FIRST_TOOL] || v.on[AG_ANOMALY_FIRST_DESTINATION],
		     "known after the round trip");
	/* Corrupt: refused whole, the table left empty. */
	bad = json_deep_copy(j);
	json_array_append_new(json_object_get(bad, "seen"), json_pack("{s:s}", "agent", "a"));
	ag_anomaly_table_free(u);
	u = ag_anomaly_table_new(&c);
	ASSERT_EQ(ag_anomaly_table_load(u, bad, &err), -EINVAL, "a bad entry refuses the file");
	ASSERT_STRHAS(err.msg, "seen[", "the message names it");
	ag_anomaly_call(u, "a", "srv", "echo", 3000, &v);
	ASSERT_TRUE(v.on[AG_ANOMALY_FIRST_TOOL], "nothing half-loaded");
	json_object_set_new(bad, "version", json_integer(2));
	ASSERT_EQ(ag_anomaly_table_load(u, bad, &err), -EINVAL, "an unknown version refused");
	json_decref(bad);
out:
	json_decref(j);
	ag_anomaly_table_free(t);
	ag_anomaly_table_free(u);
}
