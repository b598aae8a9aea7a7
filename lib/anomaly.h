/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Anomaly flags, the pure part (daemon/anomalies.h does the audit records,
 * the metrics and the state file): per agent, the tools it has used and
 * the destinations it has reached, its call rate against its own
 * baseline, and its recent denials.  Nothing here does I/O or reads a
 * clock: the caller passes the wall-clock time in milliseconds.
 *
 * Every operation is O(1) (a hash lookup, an LRU touch, two exponential
 * decays) and the memory is bounded: at most AG_ANOMALY_AGENTS agents and
 * AG_ANOMALY_SEEN used tools and reached destinations in all.  At a cap
 * the least recently used entry is dropped, and what was dropped counts
 * as never seen again: the bounds fail toward flagging, never toward
 * silence.  A name longer than AG_ANOMALY_KEY_MAX is never stored, so it
 * is "first" every time.
 */
#ifndef AG_ANOMALY_H
#define AG_ANOMALY_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "util.h"

#define AG_ANOMALY_AGENTS 1024
#define AG_ANOMALY_SEEN 16384
#define AG_ANOMALY_KEY_MAX 512	  /* bytes of "server/tool" or a destination */
#define AG_ANOMALY_DENIALS_MAX 64 /* the largest "denials" threshold */

enum ag_anomaly_flag {
	AG_ANOMALY_FIRST_TOOL,	      /* a tool this agent never called before */
	AG_ANOMALY_FIRST_DESTINATION, /* a tool server or pass-through never reached */
	AG_ANOMALY_RATE,	      /* call rate far above its own baseline */
	AG_ANOMALY_DENIALS,	      /* N denials within a window */
	AG_ANOMALY__COUNT,
};

/* "first_tool", "first_destination", "rate", "denials": the audit
 * record's "flag", the metric's label and the key in context.anomaly. */
const char *ag_anomaly_flag_name(enum ag_anomaly_flag f);

/* agentgate.conf(5) "anomaly". */
struct ag_anomaly_conf {
	bool enabled;
	uint32_t rate_multiple;	   /* flag above this many times the baseline */
	uint32_t min_rate_per_min; /* ... and above this rate */
	uint32_t rate_window_s;	   /* the current rate's time constant */
	uint32_t baseline_s;	   /* the baseline's time constant */
	uint32_t denials;	   /* this many denials ... */
	uint32_t denial_window_s;  /* ... within this many seconds */
};

void ag_anomaly_conf_default(struct ag_anomaly_conf *c);

/* The names of the flags on, as a decision record's "anomaly" lists them;
 * how many (0: the field is absent). */
size_t ag_anomaly_flag_names(const bool on[AG_ANOMALY__COUNT],
			     const char *names[AG_ANOMALY__COUNT]);
/* The flags a record's "anomaly" names into on (unknown names ignored). */
void ag_anomaly_flags_parse(const json_t *names, bool on[AG_ANOMALY__COUNT]);

/* ---- pure scoring ---- */

/*
 * An agent's call rate as two exponentially decayed averages of calls per
 * second: the current rate over rate_window_s, the baseline over
 * baseline_s.  Each call decays both to now and adds 1/T to each.
 */
struct ag_rate {
	double cur_per_s, base_per_s;
	int64_t at_ms; /* the last update; 0: never */
};

struct ag_rate_figures {
	double observed_per_min; /* the current rate, this call counted */
	double baseline_per_min; /* the baseline before this call */
};

/*
 * Counts a call at now_ms.  True when the current rate is at least
 * min_rate_per_min and above rate_multiple times the baseline as it was
 * before this call (a burst does not raise its own bar).  A clock that
 * went back counts as no time passed.
 */
bool ag_rate_call(struct ag_rate *r, const struct ag_anomaly_conf *c, int64_t now_ms,
		  struct ag_rate_figures *fig);

/* The times of an agent's last AG_ANOMALY_DENIALS_MAX denials. */
struct ag_denials {
	int64_t at_ms[AG_ANOMALY_DENIALS_MAX];
	uint32_t n; /* denials ever added; the next goes to at_ms[n % MAX] */
};

void ag_denials_add(struct ag_denials *d, int64_t now_ms);
/* Whether the last c->denials denials all fell within c->denial_window_s of now_ms. */
bool ag_denials_over(const struct ag_denials *d, const struct ag_anomaly_conf *c, int64_t now_ms);

/* ---- per-agent state ---- */

struct ag_anomaly_table;

/* NULL when out of memory. */
struct ag_anomaly_table *ag_anomaly_table_new(const struct ag_anomaly_conf *c);
void ag_anomaly_table_free(struct ag_anomaly_table *t);

/* The flags of one call, computed before its decision. */
struct ag_anomaly_verdict {
	bool on[AG_ANOMALY__COUNT]; /* context.anomaly */
	bool
	    record[AG_ANOMALY__COUNT]; /* to audit: first_* each time, rate and denials on rising */
	struct ag_rate_figures rate;
	uint32_t denials; /* in the window, up to the threshold (when on) */
};

/*
 * A governed call of agent to destination dest (a tool server's name),
 * tool its tool ("server/tool" is stored; NULL: not a tools/call), at
 * now_ms.  v gets the flags.  The call counts toward the rate; the tool
 * and the destination are not marked used until ag_anomaly_outcome says
 * the call was allowed, so a refused or unapproved first call stays
 * "first" for the next attempt.
 */
void ag_anomaly_call(struct ag_anomaly_table *t, const char *agent, const char *dest,
		     const char *tool, int64_t now_ms, struct ag_anomaly_verdict *v);

/* How that call ended: allowed (tool and dest become used) or refused (a denial). */
void ag_anomaly_outcome(struct ag_anomaly_table *t, const char *agent, const char *dest,
			const char *tool, bool allowed, int64_t now_ms);

/*
 * A destination reached without a policy decision (the pass-through
 * relay): true, and dest becomes reached, when agent never reached it.
 */
bool ag_anomaly_reach(struct ag_anomaly_table *t, const char *agent, const char *dest);

/* Entries dropped at a cap since the table was made. */
uint64_t ag_anomaly_evictions(const struct ag_anomaly_table *t);
/* Whether anything changed since the last ag_anomaly_table_json. */
bool ag_anomaly_dirty(const struct ag_anomaly_table *t);

/*
 * The state that survives a restart, oldest first: {"version": 1,
 * "agents": [{"name", "cur_per_s", "base_per_s", "at_ms"}], "seen":
 * [{"agent", "tool" | "destination"}]}.  Clears the dirty mark.  NULL
 * when out of memory.
 */
json_t *ag_anomaly_table_json(struct ag_anomaly_table *t);
/*
 * Loads what ag_anomaly_table_json made into an empty t.  All or
 * nothing: -EINVAL with err saying what is wrong, and t stays empty.
 */
int ag_anomaly_table_load(struct ag_anomaly_table *t, const json_t *j, struct ag_err *err);

#endif
