// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "audit_ship.h"
#include "daemon.h"
#include "metrics.h"
#include "trail.h"

/* The library warns from its committer thread: one log line each. */
static void warn(void *ctx, const char *msg)
{
	char q[1024];

	ag_log(AG_LOG_WARN, "audit", "error=%s", ag_logq(q, sizeof(q), msg));
}

/* The shipper warns from its thread: one log line each. */
static void ship_warn(void *ctx, const char *msg)
{
	char q[1024];

	(void)ctx;
	ag_log(AG_LOG_WARN, "audit-ship", "error=%s", ag_logq(q, sizeof(q), msg));
}

/*
 * After the writer: it has truncated a torn tail, so the files hold whole
 * records only, and it bounds what is shipped to what is durable.
 */
static int ship_open(struct ag_daemon *d, struct ag_err *err)
{
	const struct ag_ship_conf *sc = &d->conf.audit_ship;
	struct ag_audit_ship_config c = {
		.log = d->audit_path,
		.cursor_path = d->ship_cursor,
		.host = sc->host,
		.port = sc->port,
		.server_name = sc->server_name[0] ? sc->server_name : NULL,
		.ca_file = sc->ca_file,
		.cert_file = sc->cert_file[0] ? sc->cert_file : NULL,
		.key_file = sc->key_file[0] ? sc->key_file : NULL,
		.instance = d->inst.name,
		.warn = ship_warn,
	};

	if (!sc->host[0])
		return 0;
	snprintf(d->ship_cursor, sizeof(d->ship_cursor), "%s/audit.ship.cursor", d->inst.state_dir);
	return ag_audit_ship_open(&c, d->audit, &d->ship, err) ? -EIO : 0;
}

int ag_daemon_audit_open(struct ag_daemon *d, struct ag_err *err)
{
	struct ag_audit_config c;

	snprintf(d->audit_path, sizeof(d->audit_path), "%s/audit.log", d->inst.state_dir);
	snprintf(d->audit_key, sizeof(d->audit_key), "%s/audit.key", d->inst.state_dir);
	ag_audit_config_init(&c);
	c.path = d->audit_path;
	c.key_path = d->audit_key;
	c.origin = d->inst.name;
	/*
	 * Connection records need no wait: nothing is held for them.  The
	 * MCP path holds each governed call until its decision is written
	 * (sync: durable), and under strict its answer until the decision is
	 * durable (agentgate.conf(5) "audit", docs/audit.md).
	 */
	c.durability = d->audit_durability = d->conf.audit_durability;
	c.sync_ms = d->conf.audit_sync_ms;
	c.rotate_bytes = d->conf.audit_rotate_bytes;
	c.syslog_path = d->conf.audit_syslog[0] ? d->conf.audit_syslog : NULL;
	c.warn = warn;
	c.warn_ctx = d;
	if (ag_audit_open(&c, &d->audit, err))
		return -EIO;
	return ship_open(d, err);
}

bool ag_daemon_audit_ok(struct ag_daemon *d, struct ag_err *why)
{
	return !ag_audit_failed(d->audit, why);
}

void ag_daemon_audit(struct ag_daemon *d, const char *kind, json_t *fields)
{
	ag_daemon_audit_seq(d, kind, fields, NULL);
}

/* A record appended (ret 0) or lost: losses are logged when they start and end. */
static int account(struct ag_daemon *d, const char *kind, int ret, const struct ag_err *err)
{
	char q[1024];

	/* Logged when the writer starts failing, not once per record. */
	if (ret && !d->stats.audit_errors++)
		ag_log(AG_LOG_ERROR, "audit", "kind=%s error=%s", kind,
		       ag_logq(q, sizeof(q), err->msg));
	if (!ret && d->stats.audit_errors) {
		ag_log(AG_LOG_INFO, "audit", "recovered=yes lost=%llu",
		       (unsigned long long)d->stats.audit_errors);
		d->stats.audit_lost += d->stats.audit_errors;
		d->stats.audit_errors = 0;
	}
	return ret;
}

int ag_daemon_audit_seq(struct ag_daemon *d, const char *kind, json_t *fields, uint64_t *seq)
{
	struct ag_err err;
	uint64_t at;
	int ret;

	if (!fields) {
		/* jansson could not build it: only memory can be short here. */
		d->stats.audit_errors++;
		return -ENOMEM;
	}
	ret = ag_audit_append(d->audit, kind, fields, &at, &err);
	if (!ret) {
		/* Counted from what the record says, as written. */
		ag_metrics_record(d->metrics, kind, fields, at);
		if (seq)
			*seq = at;
	}
	json_decref(fields);
	return account(d, kind, ret, &err);
}

int ag_daemon_audit_members(struct ag_daemon *d, const char *kind, const struct ag_audit_member *m,
			    size_t n, uint64_t *seq)
{
	struct ag_err err;
	uint64_t at;
	/*
	 * Written at the latest when the loop's turn ends (ag_daemon_audit_flush),
	 * every record of the turn in one pwrite: a call waits for its decision
	 * record until then (mcp_audit_hold), the answers a result or connection
	 * record describes are sent after it.
	 */
	int ret =
	    ag_audit_append_members(d->audit, kind, m, n, &d->audit_buf, AG_AUDIT_LATER, &at, &err);

	if (!ret) {
		ag_metrics_record_members(d->metrics, kind, m, n, at);
		if (seq)
			*seq = at;
	}
	return account(d, kind, ret, &err);
}

void ag_daemon_audit_flush(struct ag_daemon *d)
{
	if (d->audit)
		ag_audit_flush(d->audit);
}

void ag_daemon_audit_close(struct ag_daemon *d)
{
	struct ag_err err;

	/* The shipper reads the files alone from here: the writer is going. */
	ag_audit_ship_writer(d->ship, NULL);
	if (d->audit && ag_audit_close(d->audit, &err))
		ag_log(AG_LOG_ERROR, "audit", "close=failed error=\"%s\"", err.msg);
	d->audit = NULL;
	ag_audit_buf_free(&d->audit_buf);
	/* Then the final checkpoint and daemon_stop go out, for up to 2 s. */
	ag_audit_ship_close(d->ship, 2000);
	d->ship = NULL;
}

json_t *ag_daemon_ship_status(struct ag_daemon *d, uint64_t *lag, bool *connected)
{
	const struct ag_ship_conf *sc = &d->conf.audit_ship;
	struct ag_audit_ship_status st;
	uint64_t durable;
	char addr[AG_HOST_LEN + 16];

	if (!d->ship)
		return NULL;
	ag_audit_ship_status(d->ship, &st);
	durable = d->audit ? ag_audit_durable(d->audit) : st.seen;
	*lag = durable > st.cursor ? durable - st.cursor : 0;
	*connected = st.connected;
	snprintf(addr, sizeof(addr), strchr(sc->host, ':') ? "[%s]:%s" : "%s:%s", sc->host,
		 sc->port);
	return json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:s?}", "address", addr, "connected",
			 st.connected, "cursor", (json_int_t)st.cursor, "sent", (json_int_t)st.sent,
			 "lag", (json_int_t)*lag, "reconnects", (json_int_t)st.reconnects, "error",
			 st.error[0] ? st.error : NULL);
}

/* comm is whatever the agent named itself: printable ASCII, or escaped. */
static const char *comm_text(const char *comm, char out[AG_COMM_LEN * 4 + 1])
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (size_t i = 0; i < AG_COMM_LEN && comm[i]; i++) {
		unsigned char c = comm[i];

		if (c >= 0x20 && c < 0x7f) {
			out[o++] = c;
			continue;
		}
		out[o++] = '\\';
		out[o++] = 'x';
		out[o++] = hex[c >> 4];
		out[o++] = hex[c & 15];
	}
	out[o] = '\0';
	return out;
}

/*
 * The agents that started name, root first, when name is in the chain
 * (kernel refusals name the root agent, which has none); with
 * sub_cgroup when the chain was cut right after name, so that a record
 * shows what the agent called its cgroup.
 */
static void delegation_members(struct ag_audit_agent *a, const char *name,
			       const struct ag_delegation *dg)
{
	size_t k;

	if (!dg)
		return;
	for (k = 0; k < dg->n && strcmp(dg->name[k], name); k++)
		;
	if (k == dg->n)
		return;
	for (size_t i = 0; i < k; i++)
		a->chain[i] = dg->name[i];
	if (k)
		a->m[a->n++] = (struct ag_audit_member){
			.key = "delegation", .type = AG_AM_STRV, .strv = a->chain, .n = k
		};
	if (dg->cut && k + 1 == dg->n)
		a->m[a->n++] = AG_AM_S("sub_cgroup", dg->sub_cgroup);
}

void ag_audit_agent_members(struct ag_audit_agent *a, const char *name, const struct ag_origin *o,
			    const struct ag_delegation *dg)
{
	a->n = 0;
	a->m[a->n++] = AG_AM_S("name", name);
	a->m[a->n++] = AG_AM_I("cgroup_id", (long long)o->agent_cgroup_id);
	a->m[a->n++] = AG_AM_I("run_cgroup_id", (long long)o->cgroup_id);
	a->m[a->n++] = AG_AM_I("pid", (int)o->tgid);
	a->m[a->n++] = AG_AM_I("uid", (int)o->uid);
	a->m[a->n++] = AG_AM_S("comm", comm_text(o->comm, a->comm));
	delegation_members(a, name, dg);
}

json_t *ag_audit_agent_chain(const char *name, const struct ag_origin *o,
			     const struct ag_delegation *dg)
{
	struct ag_audit_agent a;

	ag_audit_agent_members(&a, name, o, dg);
	return ag_audit_members_json(a.m, a.n);
}
