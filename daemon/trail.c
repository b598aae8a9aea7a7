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
	if ((ret = ag_audit_append(d->audit, kind, fields, &at, &err))) {
		char q[1024];

		/* Logged when the writer starts failing, not once per record. */
		if (!d->stats.audit_errors++)
			ag_log(AG_LOG_ERROR, "audit", "kind=%s error=%s", kind,
			       ag_logq(q, sizeof(q), err.msg));
	} else {
		/* Counted from what the record says, as written. */
		ag_metrics_record(d->metrics, kind, fields, at);
		if (seq)
			*seq = at;
	}
	if (!ret && d->stats.audit_errors) {
		ag_log(AG_LOG_INFO, "audit", "recovered=yes lost=%llu",
		       (unsigned long long)d->stats.audit_errors);
		d->stats.audit_lost += d->stats.audit_errors;
		d->stats.audit_errors = 0;
	}
	json_decref(fields);
	return ret;
}

void ag_daemon_audit_close(struct ag_daemon *d)
{
	struct ag_err err;

	/* The shipper reads the files alone from here: the writer is going. */
	ag_audit_ship_writer(d->ship, NULL);
	if (d->audit && ag_audit_close(d->audit, &err))
		ag_log(AG_LOG_ERROR, "audit", "close=failed error=\"%s\"", err.msg);
	d->audit = NULL;
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
static json_t *comm_json(const char *comm)
{
	char out[AG_COMM_LEN * 4 + 1];
	size_t o = 0;

	for (size_t i = 0; i < AG_COMM_LEN && comm[i]; i++) {
		unsigned char c = comm[i];

		if (c >= 0x20 && c < 0x7f)
			out[o++] = c;
		else
			o += snprintf(out + o, sizeof(out) - o, "\\x%02x", c);
	}
	out[o] = '\0';
	return json_string(out);
}

/*
 * The agents that started name, root first, when name is in the chain
 * (kernel refusals name the root agent, which has none); with
 * sub_cgroup when the chain was cut right after name, so that a record
 * shows what the agent called its cgroup.
 */
static int delegation_json(json_t *agent, const char *name, const struct ag_delegation *dg)
{
	json_t *list;
	size_t k;

	if (!dg)
		return 0;
	for (k = 0; k < dg->n && strcmp(dg->name[k], name); k++)
		;
	if (k == dg->n)
		return 0;
	if (k && !(list = json_array()))
		return -1;
	for (size_t i = 0; i < k; i++)
		if (json_array_append_new(list, json_string(dg->name[i]))) {
			json_decref(list);
			return -1;
		}
	if (k && json_object_set_new(agent, "delegation", list))
		return -1;
	if (dg->cut && k + 1 == dg->n &&
	    json_object_set_new(agent, "sub_cgroup", json_string(dg->sub_cgroup)))
		return -1;
	return 0;
}

json_t *ag_audit_agent_chain(const char *name, const struct ag_origin *o,
			     const struct ag_delegation *dg)
{
	json_t *agent =
	    json_pack("{s:s,s:I,s:I,s:i,s:i,s:o}", "name", name, "cgroup_id",
		      (json_int_t)o->agent_cgroup_id, "run_cgroup_id", (json_int_t)o->cgroup_id,
		      "pid", (int)o->tgid, "uid", (int)o->uid, "comm", comm_json(o->comm));

	if (agent && delegation_json(agent, name, dg)) {
		json_decref(agent);
		return NULL;
	}
	return agent;
}
