// SPDX-License-Identifier: GPL-2.0
/*
 * Metric families and their series (metrics.h).  A family's series live in
 * an array in first-seen order (the exposition's order) with an
 * open-addressing index over their label values; both are bounded by
 * AG_METRICS_MAX_SERIES.  Label values are stored normalised (metrics.h),
 * so the index never sees what an agent chose beyond the bounded sets.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "buf.h"
#include "cgroup.h"
#include "daemon.h"
#include "fleet.h"
#include "metrics.h"
#include "trail.h"

#define MAX_LABELS 3
#define LABEL_LEN 128
#define MAX_BUCKETS 16
#define INDEX_SIZE (2 * AG_METRICS_MAX_SERIES) /* power of two, load <= 1/2 */
#define OTHER "_other"

enum fam_type { FAM_COUNTER, FAM_GAUGE, FAM_HISTOGRAM };

enum fam_id {
	F_CONN_ACTIVE,
	F_CONNECTIONS,
	F_DECISIONS,
	F_TOOL_CALLS,
	F_TOOL_LATENCY,
	F_KERNEL_REFUSALS,
	F_AUDIT_WAIT,
	F_ANOMALIES,
	F__COUNT,
};

struct series {
	char label[MAX_LABELS][LABEL_LEN];
	int64_t value;		      /* counter, gauge; a histogram's count */
	uint64_t bucket[MAX_BUCKETS]; /* per bound, not cumulative */
	double sum;
};

struct family {
	const char *name, *help;
	enum fam_type type;
	const char *labels[MAX_LABELS]; /* NULL-terminated when fewer */
	const double *bounds;		/* histograms: upper bounds, ascending */
	int nr_bounds;
	struct series *s;
	uint32_t nr;
	size_t cap;
	uint32_t *index; /* INDEX_SIZE slots: 0 free, else series index + 1 */
};

/* The tools of one configured server that have a series of their own. */
struct tool_slots {
	char name[AG_METRICS_MAX_TOOLS][LABEL_LEN];
	int n;
};

struct ag_metrics {
	const struct ag_conf *conf;
	struct family fam[F__COUNT];
	struct tool_slots *tools; /* one per configured server */
	uint64_t appended;	  /* records appended: the last seq + 1 */
	uint64_t records;	  /* appended since the loop started */
	uint64_t dropped;	  /* updates past a family's series cap */
	uint64_t scrape_errors;
};

/* Seconds: a tool call takes milliseconds to minutes. */
static const double call_bounds[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
				      0.25,  0.5,    1,	    2.5,  5,	 10,   30 };
/* Seconds: a group commit is an fdatasync, microseconds to a slow disk's second. */
static const double wait_bounds[] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
				      0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5 };

_Static_assert(AG_ARRAY_SIZE(call_bounds) <= MAX_BUCKETS, "call_bounds");
_Static_assert(AG_ARRAY_SIZE(wait_bounds) <= MAX_BUCKETS, "wait_bounds");

static const struct family templates[F__COUNT] = {
	[F_CONN_ACTIVE] = { "agentgate_agent_connections_active",
			    "Agent connections open now, relayed or on the MCP path.",
			    FAM_GAUGE,
			    { "agent" } },
	[F_CONNECTIONS] = { "agentgate_agent_connections_total",
			    "Agent connections ended or refused by the daemon (connect records), "
			    "by result.",
			    FAM_COUNTER,
			    { "agent", "result" } },
	[F_DECISIONS] = { "agentgate_decisions_total",
			  "MCP decisions (decision records) by outcome and the rule that decided.",
			  FAM_COUNTER,
			  { "agent", "decision", "rule" } },
	[F_TOOL_CALLS] = { "agentgate_tool_calls_total",
			   "tools/call requests decided, per tool server and tool.",
			   FAM_COUNTER,
			   { "server", "tool", "decision" } },
	[F_TOOL_LATENCY] = { "agentgate_tool_call_duration_seconds",
			     "Time from a forwarded tools/call to its result.",
			     FAM_HISTOGRAM,
			     { "server", "tool" },
			     call_bounds,
			     AG_ARRAY_SIZE(call_bounds) },
	[F_KERNEL_REFUSALS] = { "agentgate_kernel_refusals_total",
				"Refusals by the kernel's hooks, by reason.",
				FAM_COUNTER,
				{ "reason" } },
	[F_AUDIT_WAIT] = { "agentgate_audit_durability_wait_seconds",
			   "Time a governed call (strict: its answer) was held until its "
			   "decision record was written (sync, strict: durable).",
			   FAM_HISTOGRAM,
			   {},
			   wait_bounds,
			   AG_ARRAY_SIZE(wait_bounds) },
	[F_ANOMALIES] = { "agentgate_anomalies_total",
			  "Anomaly flags raised (anomaly records), by agent and flag.",
			  FAM_COUNTER,
			  { "agent", "flag" } },
};

int ag_metrics_new(const struct ag_conf *c, struct ag_metrics **out, struct ag_err *err)
{
	struct ag_metrics *m = calloc(1, sizeof(*m));

	if (!m || !(m->tools = calloc(c->nr_servers ? c->nr_servers : 1, sizeof(*m->tools))))
		goto oom;
	m->conf = c;
	for (int i = 0; i < F__COUNT; i++) {
		m->fam[i] = templates[i];
		if (!(m->fam[i].index = calloc(INDEX_SIZE, sizeof(uint32_t))))
			goto oom;
	}
	*out = m;
	return 0;
oom:
	ag_metrics_free(m);
	return ag_errf(err, ENOMEM, "metrics: out of memory");
}

void ag_metrics_free(struct ag_metrics *m)
{
	if (!m)
		return;
	for (int i = 0; i < F__COUNT; i++) {
		free(m->fam[i].s);
		free(m->fam[i].index);
	}
	free(m->tools);
	free(m);
}

static uint32_t labels_hash(const char *const *v, int n)
{
	uint32_t h = 2166136261u; /* FNV-1a, with a separator between values */

	for (int i = 0; i < n; i++) {
		for (const char *p = v[i]; *p; p++)
			h = (h ^ (uint8_t)*p) * 16777619u;
		h = (h ^ 0xff) * 16777619u;
	}
	return h;
}

static int nr_labels(const struct family *f)
{
	int n = 0;

	while (n < MAX_LABELS && f->labels[n])
		n++;
	return n;
}

static bool series_is(const struct series *s, const char *const *v, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(s->label[i], v[i]))
			return false;
	return true;
}

/* The series with label values v (normalised, each < LABEL_LEN), created
 * on first use; NULL past the cap or out of memory (counted as dropped). */
static struct series *series_get(struct ag_metrics *m, enum fam_id id, const char *const *v)
{
	struct family *f = &m->fam[id];
	int n = nr_labels(f);
	uint32_t slot = labels_hash(v, n) & (INDEX_SIZE - 1);
	struct series *s;

	for (; f->index[slot]; slot = (slot + 1) & (INDEX_SIZE - 1))
		if (series_is(&f->s[f->index[slot] - 1], v, n))
			return &f->s[f->index[slot] - 1];
	/* Past the cap (-E2BIG) or out of memory: dropped. */
	if (ag_grow(&f->s, &f->cap, (size_t)f->nr + 1, sizeof(*f->s), 16, AG_METRICS_MAX_SERIES))
		goto drop;
	s = &f->s[f->nr];
	memset(s, 0, sizeof(*s));
	for (int i = 0; i < n; i++)
		snprintf(s->label[i], LABEL_LEN, "%s", v[i]);
	f->index[slot] = ++f->nr;
	return s;
drop:
	m->dropped++;
	return NULL;
}

static void add(struct ag_metrics *m, enum fam_id id, const char *const *v, int64_t delta)
{
	struct series *s = series_get(m, id, v);

	if (s)
		s->value += delta;
}

static void observe(struct ag_metrics *m, enum fam_id id, const char *const *v, double x)
{
	const struct family *f = &m->fam[id];
	struct series *s = series_get(m, id, v);
	int b = 0;

	if (!s)
		return;
	while (b < f->nr_bounds && x > f->bounds[b])
		b++;
	if (b < f->nr_bounds)
		s->bucket[b]++;
	s->value++;
	s->sum += x;
}

/* ---- label values ------------------------------------------------------ */

static const char *agent_label(const struct ag_metrics *m, const char *name)
{
	return name && ag_conf_agent(m->conf, name) ? name : OTHER;
}

static int server_index(const struct ag_metrics *m, const char *name)
{
	for (int i = 0; name && i < m->conf->nr_servers; i++)
		if (!strcmp(m->conf->servers[i].name, name))
			return i;
	return -1;
}

/* A tool's own label once claimed (claim: an allowed call of it), else "_other". */
static const char *tool_label(struct ag_metrics *m, int srv, const char *tool, bool claim)
{
	struct tool_slots *t;

	if (srv < 0 || !tool || strlen(tool) >= LABEL_LEN)
		return OTHER;
	t = &m->tools[srv];
	for (int i = 0; i < t->n; i++)
		if (!strcmp(t->name[i], tool))
			return t->name[i];
	if (!claim || t->n == AG_METRICS_MAX_TOOLS)
		return OTHER;
	snprintf(t->name[t->n], LABEL_LEN, "%s", tool);
	return t->name[t->n++];
}

/* A value the daemon's code names (a result, a rule); bounded by that code. */
static const char *code_label(const char *v)
{
	return v && *v && strlen(v) < LABEL_LEN ? v : "none";
}

/* An appended record: its tree, or its members (ag_audit_append_members). */
struct rec {
	const json_t *j;
	const struct ag_audit_member *m;
	size_t n;
};

static const char *str(const struct rec *r, const char *key)
{
	const struct ag_audit_member *v;

	if (r->j)
		return json_string_value(json_object_get(r->j, key));
	v = ag_audit_member_get(r->m, r->n, key);
	return v && v->type == AG_AM_STR ? v->s : NULL;
}

static bool integer(const struct rec *r, const char *key, long long *i)
{
	const struct ag_audit_member *v;
	const json_t *j;

	if (r->j) {
		j = json_object_get(r->j, key);
		*i = json_integer_value(j);
		return json_is_integer(j);
	}
	v = ag_audit_member_get(r->m, r->n, key);
	*i = v && v->type == AG_AM_INT ? v->i : 0;
	return v && v->type == AG_AM_INT;
}

static const char *record_agent(const struct ag_metrics *m, const struct rec *r)
{
	const struct ag_audit_member *v;
	struct rec agent = { 0 };

	if (r->j)
		agent.j = json_object_get(r->j, "agent");
	else if ((v = ag_audit_member_get(r->m, r->n, "agent")) && v->type == AG_AM_OBJ)
		agent = (struct rec){ .m = v->obj, .n = v->n };
	return agent_label(m, agent.j || agent.m ? str(&agent, "name") : NULL);
}

/* ---- updates ----------------------------------------------------------- */

static void count_decision(struct ag_metrics *m, const struct rec *rec)
{
	const char *decision = str(rec, "decision"), *method = str(rec, "method");
	int srv = server_index(m, str(rec, "server"));

	if (!decision ||
	    (strcmp(decision, "allow") && strcmp(decision, "ask") && strcmp(decision, "deny")))
		decision = OTHER;
	add(m, F_DECISIONS,
	    (const char *[]){ record_agent(m, rec), decision, code_label(str(rec, "rule")) }, 1);
	if (!method || strcmp(method, "tools/call"))
		return;
	add(m, F_TOOL_CALLS,
	    (const char *[]){ srv < 0 ? OTHER : m->conf->servers[srv].name,
			      tool_label(m, srv, str(rec, "tool"), !strcmp(decision, "allow")),
			      decision },
	    1);
}

static void count_result(struct ag_metrics *m, const struct rec *rec)
{
	int srv = server_index(m, str(rec, "server"));
	long long us;

	if (!integer(rec, "latency_us", &us) || srv < 0)
		return;
	observe(m, F_TOOL_LATENCY,
		(const char *[]){ m->conf->servers[srv].name,
				  tool_label(m, srv, str(rec, "tool"), false) },
		(double)us / 1e6);
}

static void count_record(struct ag_metrics *m, const char *kind, const struct rec *fields,
			 uint64_t seq)
{
	m->records++;
	if (seq + 1 > m->appended)
		m->appended = seq + 1;
	if (!strcmp(kind, "connect"))
		add(m, F_CONNECTIONS,
		    (const char *[]){ record_agent(m, fields), code_label(str(fields, "result")) },
		    1);
	else if (!strcmp(kind, "decision"))
		count_decision(m, fields);
	else if (!strcmp(kind, "result"))
		count_result(m, fields);
	else if (!strcmp(kind, "anomaly"))
		add(m, F_ANOMALIES,
		    (const char *[]){ record_agent(m, fields), code_label(str(fields, "flag")) },
		    1);
}

void ag_metrics_record(struct ag_metrics *m, const char *kind, const json_t *fields, uint64_t seq)
{
	if (m)
		count_record(m, kind, &(struct rec){ .j = fields }, seq);
}

void ag_metrics_record_members(struct ag_metrics *m, const char *kind,
			       const struct ag_audit_member *fields, size_t n, uint64_t seq)
{
	if (m)
		count_record(m, kind, &(struct rec){ .m = fields, .n = n }, seq);
}

void ag_metrics_conn(struct ag_metrics *m, const char *agent, int delta)
{
	if (m)
		add(m, F_CONN_ACTIVE, (const char *[]){ agent_label(m, agent) }, delta);
}

void ag_metrics_kernel_refusal(struct ag_metrics *m, const char *reason)
{
	if (m)
		add(m, F_KERNEL_REFUSALS, (const char *[]){ code_label(reason) }, 1);
}

void ag_metrics_audit_wait(struct ag_metrics *m, uint64_t ns)
{
	if (m)
		observe(m, F_AUDIT_WAIT, (const char *[]){ NULL }, (double)ns / 1e9);
}

void ag_metrics_scrape_error(struct ag_metrics *m)
{
	if (m)
		m->scrape_errors++;
}

/* ---- exposition -------------------------------------------------------- */

/* A label value as the text format quotes it: \\, \" and \n escaped. */
static void put_value(FILE *f, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fputc('\\', f);
		if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
}

/* {a="x",b="y"[,le="..."]}, or nothing without labels. */
static void put_labels(FILE *f, const struct family *fam, const struct series *s, const char *le)
{
	int n = nr_labels(fam);

	if (!n && !le)
		return;
	fputc('{', f);
	for (int i = 0; i < n; i++) {
		fprintf(f, "%s%s=\"", i ? "," : "", fam->labels[i]);
		put_value(f, s->label[i]);
		fputc('"', f);
	}
	if (le)
		fprintf(f, "%sle=\"%s\"", n ? "," : "", le);
	fputc('}', f);
}

static void put_head(FILE *f, const char *name, const char *help, const char *type)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void put_histogram(FILE *f, const struct family *fam, const struct series *s)
{
	uint64_t cum = 0;
	char le[32];

	for (int b = 0; b < fam->nr_bounds; b++) {
		cum += s->bucket[b];
		snprintf(le, sizeof(le), "%g", fam->bounds[b]);
		fprintf(f, "%s_bucket", fam->name);
		put_labels(f, fam, s, le);
		fprintf(f, " %llu\n", (unsigned long long)cum);
	}
	fprintf(f, "%s_bucket", fam->name);
	put_labels(f, fam, s, "+Inf");
	fprintf(f, " %lld\n%s_sum", (long long)s->value, fam->name);
	put_labels(f, fam, s, NULL);
	fprintf(f, " %.9f\n%s_count", s->sum, fam->name);
	put_labels(f, fam, s, NULL);
	fprintf(f, " %lld\n", (long long)s->value);
}

static void put_family(FILE *f, const struct family *fam)
{
	static const char *const types[] = { "counter", "gauge", "histogram" };

	put_head(f, fam->name, fam->help, types[fam->type]);
	for (uint32_t i = 0; i < fam->nr; i++) {
		if (fam->type == FAM_HISTOGRAM) {
			put_histogram(f, fam, &fam->s[i]);
			continue;
		}
		fputs(fam->name, f);
		put_labels(f, fam, &fam->s[i], NULL);
		fprintf(f, " %lld\n", (long long)fam->s[i].value);
	}
}

static void put_one(FILE *f, const char *name, const char *type, const char *help, uint64_t v)
{
	put_head(f, name, help, type);
	fprintf(f, "%s %llu\n", name, (unsigned long long)v);
}

/* Audit shipping, when configured (lib/audit_ship.h). */
static void put_ship(FILE *f, struct ag_daemon *d)
{
	uint64_t lag;
	bool up;
	json_t *st = ag_daemon_ship_status(d, &lag, &up);

	if (!st)
		return;
	put_one(f, "agentgate_audit_ship_connected", "gauge",
		"1 while the connection to the audit collector is up.", up);
	put_one(f, "agentgate_audit_ship_cursor", "gauge",
		"Audit records the collector has confirmed (the saved cursor).",
		(uint64_t)json_integer_value(json_object_get(st, "cursor")));
	put_one(f, "agentgate_audit_ship_lag_records", "gauge",
		"Durable audit records the collector has not confirmed yet.", lag);
	json_decref(st);
}

/* Errors by kind: the daemon's own counts (struct ag_daemon_stats) and ours. */
static void put_errors(FILE *f, const struct ag_metrics *m, const struct ag_daemon_stats *st)
{
	const struct {
		const char *kind;
		uint64_t v;
	} e[] = {
		{ "audit_lost", st->audit_lost + st->audit_errors },
		{ "connection_rejected", st->conns_rejected },
		{ "upstream_connect", st->upstream_failed },
		{ "metrics_dropped", m->dropped },
		{ "scrape", m->scrape_errors },
	};

	put_head(f, "agentgate_errors_total",
		 "Errors by kind: audit records lost, agent connections the daemon rejected, "
		 "failed upstream connects, metric updates past a series cap, refused scrapes.",
		 "counter");
	for (size_t i = 0; i < AG_ARRAY_SIZE(e); i++)
		fprintf(f, "agentgate_errors_total{kind=\"%s\"} %llu\n", e[i].kind,
			(unsigned long long)e[i].v);
}

/* Calls counted in a window that began at start_ns and lasts len_ns; the
 * kernel resets the count only at the next charge, so a past window is 0. */
static uint64_t window_calls(uint64_t calls, uint64_t start_ns, uint64_t len_ns, uint64_t now)
{
	return now - start_ns < len_ns ? calls : 0;
}

/*
 * Quota use of each configured agent that has a quota entry (config or
 * agentgatectl quota set), read from the kernel's map at scrape time: two
 * syscalls per agent, at most AG_MAX_CONF_AGENTS of them.
 */
static void put_quotas(FILE *f, const struct ag_daemon *d)
{
	static const uint64_t minute = 60ull * 1000000000, day = 86400ull * 1000000000;
	const struct ag_conf *c = &d->conf;
	char path[AG_PATH_MAX + AG_NAME_LEN + 1];
	uint64_t now = ag_now_ns(), id;
	struct ag_quota q;
	struct ag_err err;

	put_head(f, "agentgate_quota_calls",
		 "Tool calls counted against an agent's call budget "
		 "in the current window.",
		 "gauge");
	put_head(f, "agentgate_quota_limit_calls", "An agent's call budget per window (0: none).",
		 "gauge");
	put_head(f, "agentgate_quota_refusals_total",
		 "Connects and tool calls refused by an agent's quota since it was set or reset.",
		 "counter");
	for (int i = 0; i < c->nr_agents; i++) {
		const char *a = c->agents[i].name; /* [A-Za-z0-9_.-]: nothing to escape */

		snprintf(path, sizeof(path), "%s/%s", d->inst.cg_agents, a);
		if (ag_cgroup_id(path, &id, &err) || ag_quota_get(&d->kern, id, &q))
			continue;
		fprintf(f, "agentgate_quota_calls{agent=\"%s\",window=\"minute\"} %llu\n", a,
			(unsigned long long)window_calls(q.calls_minute, q.minute_start_ns, minute,
							 now));
		fprintf(f, "agentgate_quota_calls{agent=\"%s\",window=\"day\"} %llu\n", a,
			(unsigned long long)window_calls(q.calls_day, q.day_start_ns, day, now));
		fprintf(f, "agentgate_quota_limit_calls{agent=\"%s\",window=\"minute\"} %u\n", a,
			q.calls_per_minute);
		fprintf(f, "agentgate_quota_limit_calls{agent=\"%s\",window=\"day\"} %u\n", a,
			q.calls_per_day);
		fprintf(f, "agentgate_quota_refusals_total{agent=\"%s\",kind=\"connect\"} %llu\n",
			a, (unsigned long long)q.connect_refused);
		fprintf(f, "agentgate_quota_refusals_total{agent=\"%s\",kind=\"call\"} %llu\n", a,
			(unsigned long long)q.calls_refused);
	}
}

char *ag_metrics_render(struct ag_metrics *m, struct ag_daemon *d, size_t *len)
{
	uint64_t durable = d->audit ? ag_audit_durable(d->audit) : m->appended;
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	if (!f)
		return NULL;
	put_one(f, "agentgate_uptime_seconds", "gauge", "Seconds since the daemon started.",
		(ag_now_ns() - d->start_ns) / 1000000000);
	put_one(f, "agentgate_connections_accepted_total", "counter",
		"Agent connections the daemon took on the relay or MCP path.",
		d->stats.conns_total);
	for (int i = 0; i < F__COUNT; i++)
		put_family(f, &m->fam[i]);
	put_one(f, "agentgate_audit_records_total", "counter",
		"Audit records the daemon appended since its loop started.", m->records);
	put_one(f, "agentgate_audit_lag_records", "gauge",
		"Audit records appended but not yet durable.",
		m->appended > durable ? m->appended - durable : 0);
	put_ship(f, d);
	put_errors(f, m, &d->stats);
	put_quotas(f, d);
	if (d->fleet)
		ag_fleet_metrics(d->fleet, f);
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* ---- the endpoint as a destination ---------------------------------------- */

bool ag_metrics_guards(const struct ag_conf *c, const uint8_t addr[16], uint16_t port)
{
	if (!c->metrics_port || port != c->metrics_port)
		return false;
	return !memcmp(addr, c->metrics_addr, 16) || ag_addr_is_local(addr);
}
