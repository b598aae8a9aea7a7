// SPDX-License-Identifier: GPL-2.0
/*
 * Anomaly flags in the daemon (anomaly.h): the records, the state file.
 * Everything runs on the loop's thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admit.h"
#include "anomalies.h"
#include "daemon.h"
#include "decide.h"
#include "fileio.h"
#include "trail.h"

#define STATE_FILE "anomaly.json"
#define STATE_MAX (64u << 20) /* far above what the caps can write */
#define SAVE_EVERY_NS (60ull * 1000000000ull)

struct ag_anomaly {
	struct ag_anomaly_table *t;
	char path[PATH_MAX];
	uint64_t saved_ns;	   /* ag_now_ns() of the last save */
	uint64_t evictions_logged; /* ag_anomaly_evictions() last logged */
};

static int64_t now_ms(void)
{
	return (int64_t)(ag_wall_ns() / 1000000);
}

/* Reads the state file into a->t; any failure leaves it empty, logged. */
static void load(struct ag_anomaly *a)
{
	struct ag_err err = { 0 };
	char *text = NULL, bad[PATH_MAX + 8], q[512];
	json_error_t jerr;
	json_t *j = NULL;
	int ret;

	ret = ag_file_read_at(AT_FDCWD, NULL, a->path, AG_FILE_NOFOLLOW, STATE_MAX, &text, NULL,
			      &err);
	if (ret == -ENOENT)
		return;
	if (!ret && !(j = json_loads(text, JSON_REJECT_DUPLICATES, &jerr)))
		ret = ag_errf(&err, EINVAL, "%d:%d: %s", jerr.line, jerr.column, jerr.text);
	if (!ret)
		ret = ag_anomaly_table_load(a->t, j, &err);
	free(text);
	json_decref(j);
	if (!ret) {
		ag_log(AG_LOG_INFO, "anomaly", "result=loaded path=%s", a->path);
		return;
	}
	/* Fail toward flagging: an empty state knows no tool, so it flags more. */
	snprintf(bad, sizeof(bad), "%s.bad", a->path);
	ag_log(AG_LOG_ERROR, "anomaly", "result=refused path=%s error=%s moved_to=%s msg=%s",
	       a->path, ag_logq(q, sizeof(q), err.msg), bad,
	       "\"state file not usable: starting with no baselines\"");
	if (rename(a->path, bad))
		ag_log(AG_LOG_WARN, "anomaly", "rename=%s errno=%d", bad, errno);
}

static void save(struct ag_anomaly *a)
{
	struct ag_err err = { 0 };
	json_t *j = ag_anomaly_table_json(a->t);
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL, q[512];

	a->saved_ns = ag_now_ns();
	if (!text || ag_file_write_atomic(a->path, text, strlen(text), 0600, &err))
		ag_log(AG_LOG_WARN, "anomaly", "result=save_failed path=%s error=%s", a->path,
		       ag_logq(q, sizeof(q), text ? err.msg : "out of memory"));
	free(text);
	json_decref(j);
}

int ag_anomaly_open(struct ag_daemon *d, struct ag_anomaly **out, struct ag_err *err)
{
	struct ag_anomaly *a;

	*out = NULL;
	if (!d->conf.anomaly.enabled)
		return 0;
	if (!(a = calloc(1, sizeof(*a))) || !(a->t = ag_anomaly_table_new(&d->conf.anomaly))) {
		free(a);
		return ag_errf(err, ENOMEM, "anomaly: out of memory");
	}
	snprintf(a->path, sizeof(a->path), "%s/" STATE_FILE, d->inst.state_dir);
	load(a);
	a->saved_ns = ag_now_ns();
	*out = a;
	return 0;
}

void ag_anomaly_close(struct ag_anomaly *a)
{
	if (!a)
		return;
	if (ag_anomaly_dirty(a->t))
		save(a);
	ag_anomaly_table_free(a->t);
	free(a);
}

/* Saves when due, and says once per save period that a cap dropped entries. */
static void housekeep(struct ag_anomaly *a)
{
	uint64_t ev = ag_anomaly_evictions(a->t);

	if (ag_now_ns() - a->saved_ns < SAVE_EVERY_NS)
		return;
	if (ev != a->evictions_logged)
		ag_log(AG_LOG_WARN, "anomaly", "evicted=%llu agents_cap=%d seen_cap=%d msg=\"%s\"",
		       (unsigned long long)(ev - a->evictions_logged), AG_ANOMALY_AGENTS,
		       AG_ANOMALY_SEEN, "least recent entries dropped: they count as new again");
	a->evictions_logged = ev;
	if (ag_anomaly_dirty(a->t))
		save(a);
}

/* Rounded to a hundredth: the figures are estimates. */
static double figure(double x)
{
	return round(x * 100) / 100;
}

static void record(struct ag_daemon *d, const char *agent, const struct ag_origin *o,
		   const struct ag_delegation *dg, enum ag_anomaly_flag f, const char *server,
		   const char *tool, const struct ag_anomaly_verdict *v)
{
	const struct ag_anomaly_conf *c = &d->conf.anomaly;
	json_t *r =
	    json_pack("{s:o,s:s,s:s}", "agent",
		      o ? ag_audit_agent_chain(agent, o, dg) : json_pack("{s:s}", "name", agent),
		      "flag", ag_anomaly_flag_name(f), "destination", server);

	if (!r)
		return;
	switch (f) {
	case AG_ANOMALY_FIRST_TOOL:
		json_object_set_new(r, "tool", json_string(tool));
		break;
	case AG_ANOMALY_RATE:
		json_object_update_new(
		    r, json_pack("{s:f,s:f,s:i,s:i,s:i}", "observed_per_min",
				 figure(v->rate.observed_per_min), "baseline_per_min",
				 figure(v->rate.baseline_per_min), "rate_multiple",
				 c->rate_multiple, "min_rate_per_min", c->min_rate_per_min,
				 "rate_window_s", c->rate_window_s));
		break;
	case AG_ANOMALY_DENIALS:
		json_object_update_new(r, json_pack("{s:i,s:i}", "denials", v->denials,
						    "denial_window_s", c->denial_window_s));
		break;
	default:
		break;
	}
	ag_daemon_audit(d, "anomaly", r);
}

void ag_anomaly_flags(struct ag_daemon *d, struct ag_anomaly *a, const char *agent,
		      const struct ag_origin *o, const struct ag_delegation *dg, const char *server,
		      const char *tool, struct ag_anomaly_verdict *v)
{
	memset(v, 0, sizeof(*v));
	if (!a)
		return;
	ag_anomaly_call(a->t, agent, server, tool, now_ms(), v);
	for (int f = 0; f < AG_ANOMALY__COUNT; f++)
		if (v->record[f])
			record(d, agent, o, dg, f, server, tool, v);
	housekeep(a);
}

void ag_anomaly_settle(struct ag_anomaly *a, const char *agent, const char *server,
		       const char *tool, bool allowed)
{
	if (a)
		ag_anomaly_outcome(a->t, agent, server, tool, allowed, now_ms());
}

void ag_anomaly_relayed(struct ag_daemon *d, const struct ag_admission *a)
{
	struct ag_anomaly *an = d->decider ? d->decider->anomaly : NULL;
	struct ag_anomaly_verdict v = { 0 };
	char dst[64];

	ag_addr_fmt(a->o.addr, a->o.port, dst, sizeof(dst));
	if (an && ag_anomaly_reach(an->t, a->agent, dst))
		record(d, a->agent, &a->o, ag_admission_chain(a), AG_ANOMALY_FIRST_DESTINATION, dst,
		       NULL, &v);
}
