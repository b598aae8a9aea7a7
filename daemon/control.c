// SPDX-License-Identifier: GPL-2.0
/*
 * The control socket, server side.  A client (client.h) goes
 *
 *	AG_CLIENT_READING --a full line--> AG_CLIENT_WRITING --response sent--> AG_CLIENT_READING
 *	      |                                  |
 *	      +--EOF, error, timeout, stop-------+--> AG_CLIENT_CLOSING (freed when no I/O is left)
 *
 * Requests are at most CTL_MAX_REQUEST bytes with their newline; a longer
 * one gets an error response and the connection is closed, since where the
 * next request would start is unknown.  Every recv and send carries a
 * linked timeout at an absolute deadline, renewed after each response, so a
 * client that stalls mid-request or never reads holds its slot for at most
 * CTL_TIMEOUT_S seconds.  The socket is mode 0600 (root only), yet requests
 * are still treated as untrusted input: a bug in the CLI must not take the
 * daemon down.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <jansson.h>

#include "approvals.h"
#include "audit.h"
#include "budget.h"
#include "client.h"
#include "control.h"
#include "daemon.h"
#include "mcp.h"
#include "decide.h"
#include "fair.h"
#include "fleet.h"
#include "integrity.h"
#include "loop.h"
#include "policy_git.h"
#include "trail.h"

#define CTL_MAX_REQUEST 4096
#define CTL_MAX_CLIENTS 16
#define CTL_TIMEOUT_S 5

struct client {
	struct ag_client c; /* first: client.h frees the whole when released */
	bool close_after_send;
	size_t in_len;
	char in[CTL_MAX_REQUEST];
};

_Static_assert(offsetof(struct client, c) == 0, "client.h frees struct client");

struct ag_control {
	struct ag_clients clients;
};

static void client_next(struct client *cl);

/* Where agents' DNS goes: the loopback relay of host agents, the gateway's. */
static json_t *dns_status(const struct ag_daemon *d)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	char addr[INET_ADDRSTRLEN + 8] = "";

	if (d->dns_host_fd >= 0 && !getsockname(d->dns_host_fd, (struct sockaddr *)&sin, &len) &&
	    inet_ntop(AF_INET, &sin.sin_addr, addr, INET_ADDRSTRLEN))
		snprintf(addr + strlen(addr), sizeof(addr) - strlen(addr), ":%u",
			 ntohs(sin.sin_port));
	return json_pack("{s:s?,s:b}", "host_relay", addr[0] ? addr : NULL, "netns_relay",
			 d->dns_fd >= 0);
}

static json_t *status(struct ag_loop *l)
{
	struct ag_daemon *d = l->d;
	const struct ag_daemon_stats *s = &d->stats;
	struct ag_err why = { 0 };
	bool audit_ok = ag_daemon_audit_ok(d, &why);
	json_t *held = ag_approvals_list(l->approvals), *st;

	st = json_pack("{s:b, s:s, s:i, s:I, s:i, s:b, s:s, s:{s:I, s:I, s:I, s:I}, s:I, "
		       "s:{s:s, s:s, s:b, s:s?, s:I}}",
		       "ok", 1, "instance", d->inst.name, "pid", (int)getpid(), "uptime_s",
		       (json_int_t)((ag_now_ns() - d->start_ns) / 1000000000), "listen_port",
		       (int)d->conf.port, "ipv6", d->listen_fd[AG_LISTEN_V6] >= 0, "kernel",
		       d->kern.adopted ? "adopted" : "loaded", "connections", "active",
		       (json_int_t)s->conns_active, "total", (json_int_t)s->conns_total, "rejected",
		       (json_int_t)s->conns_rejected, "upstream_failed",
		       (json_int_t)s->upstream_failed, "kernel_refusals",
		       (json_int_t)s->kernel_refusals, "audit", "log", d->audit_path, "key",
		       d->audit_key, "ok", audit_ok, "error", audit_ok ? NULL : why.msg, "lost",
		       (json_int_t)(s->audit_lost + s->audit_errors));
	if (st)
		json_object_set_new(
		    st, "mcp",
		    json_pack("{s:i,s:i,s:o,s:i,s:o,s:o}", "tool_servers", d->conf.nr_servers,
			      "active", (int)ag_mcp_active(l), "upstreams", ag_mcp_upstreams(l),
			      "held_for_approval", (int)json_array_size(held), "tools",
			      ag_integrity_summary(d), "credentials", ag_mcp_credentials(l)));
	json_decref(held);
	if (st)
		json_object_set_new(st, "limits", ag_fair_status(l));
	if (st)
		json_object_set_new(
		    json_object_get(st, "audit"), "durability",
		    json_string(ag_audit_durability_name(d->conf.audit_durability)));
	if (st)
		json_object_set_new(st, "dns", dns_status(d));
	if (st)
		json_object_set_new(st, "relay",
				    json_pack("{s:b,s:s?,s:I,s:I,s:I}", "splice", !d->splice_off[0],
					      "splice_off", d->splice_off[0] ? d->splice_off : NULL,
					      "spliced", (json_int_t)d->stats.relay_spliced,
					      "unspliced", (json_int_t)d->stats.relay_unspliced,
					      "bytes_copied", (json_int_t)d->stats.relay_copied));
	if (st && d->policy_git)
		json_object_set_new(st, "policy_source", ag_policy_git_status(d));
	if (st && d->fleet)
		json_object_set_new(st, "fleet", ag_fleet_status(d->fleet));
	if (st && d->ship) {
		uint64_t lag;
		bool up;

		json_object_set_new(json_object_get(st, "audit"), "ship",
				    ag_daemon_ship_status(d, &lag, &up));
	}
	return st;
}

static json_t *error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static json_t *error(const char *fmt, ...)
{
	char msg[CTL_MAX_REQUEST + 64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
}

/* Re-reads the policy set; the error (file:line:column) goes to the CLI. */
static json_t *policy_reload(struct ag_daemon *d)
{
	struct ag_policy_info info;
	struct ag_err err = { 0 };

	if (ag_decide_reload(d, "control", &info, &err))
		return json_pack("{s:b, s:s, s:s?}", "ok", 0, "error", err.msg, "running_digest",
				 info.digest[0] ? info.digest : NULL);
	return json_pack("{s:b, s:s, s:I}", "ok", 1, "digest", info.digest, "policies",
			 (json_int_t)info.policies);
}

/* approve / deny {"id": N, "by": NAME}: a human's verdict on a held call. */
static json_t *resolve(struct ag_loop *l, json_t *req, bool allow)
{
	json_t *id = json_object_get(req, "id");
	const char *by = json_string_value(json_object_get(req, "by"));
	struct ag_err err = { 0 };

	if (!json_is_integer(id) || json_integer_value(id) <= 0)
		return error("bad request: \"id\" must be a positive integer");
	if (!by || !*by || strlen(by) > 64)
		return error("bad request: \"by\" must name who decides (1-64 bytes)");
	if (ag_approvals_resolve(l->approvals, (uint64_t)json_integer_value(id), allow, by, &err))
		return error("%s", err.msg);
	return json_pack("{s:b}", "ok", 1);
}

/* Answered after the read: quota set returns once the next call is charged as set. */
static json_t *budgets_changed(struct ag_daemon *d)
{
	ag_budget_refresh(d);
	return json_pack("{s:b}", "ok", 1);
}

/* One request line, without its newline. */
static json_t *handle(struct ag_loop *l, const char *line, size_t len)
{
	struct ag_daemon *d = l->d;
	json_error_t jerr;
	json_t *req = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr), *resp;
	const char *cmd;

	if (!req)
		return error("bad request: %s", jerr.text);
	cmd = json_string_value(json_object_get(req, "cmd"));
	if (!json_is_object(req))
		resp = error("bad request: not a JSON object");
	else if (!cmd)
		resp = error("bad request: no \"cmd\" string");
	else if (!strcmp(cmd, "status"))
		resp = status(l);
	else if (!strcmp(cmd, "ping"))
		resp = json_pack("{s:b}", "ok", 1);
	else if (!strcmp(cmd, "policy_reload"))
		resp = policy_reload(d);
	else if (!strcmp(cmd, "policy_pull"))
		resp = ag_policy_git_pull(d);
	else if (!strcmp(cmd, "policy_source"))
		resp = d->policy_git ? json_pack("{s:b,s:o}", "ok", 1, "policy_source",
						 ag_policy_git_status(d))
				     : error("no \"policy_source\" in the configuration");
	else if (!strcmp(cmd, "approvals"))
		resp =
		    json_pack("{s:b,s:o}", "ok", 1, "approvals", ag_approvals_list(l->approvals));
	else if (!strcmp(cmd, "approve") || !strcmp(cmd, "deny"))
		resp = resolve(l, req, !strcmp(cmd, "approve"));
	else if (!strcmp(cmd, "agents"))
		resp = json_pack("{s:b,s:o}", "ok", 1, "agents", ag_fair_refusals(l));
	else if (!strcmp(cmd, "tools_approve"))
		resp = ag_integrity_approve(d, req);
	else if (!strcmp(cmd, "budgets_changed"))
		resp = budgets_changed(d);
	else
		resp = error("unknown command \"%s\"", cmd);
	json_decref(req);
	return resp;
}

static void client_recv(struct client *cl)
{
	ag_client_recv(&cl->c, cl->in + cl->in_len, sizeof(cl->in) - cl->in_len);
}

/* Serialises resp (consumed) as one line and sends it. */
static void client_respond(struct client *cl, json_t *resp)
{
	size_t len = resp ? json_dumpb(resp, NULL, 0, JSON_COMPACT) : 0;
	char *out = len ? malloc(len + 1) : NULL;

	if (!out) {
		json_decref(resp);
		ag_log(AG_LOG_ERROR, "control", "error=\"response: out of memory\"");
		ag_client_close(&cl->c);
		return;
	}
	json_dumpb(resp, out, len, JSON_COMPACT);
	json_decref(resp);
	out[len] = '\n';
	ag_client_send(&cl->c, out, len + 1);
}

/* The next buffered request, if complete; else more input. */
static void client_next(struct client *cl)
{
	char *nl = memchr(cl->in, '\n', cl->in_len);
	json_t *resp;
	size_t len;

	if (!nl) {
		if (cl->in_len < sizeof(cl->in)) {
			client_recv(cl);
			return;
		}
		cl->close_after_send = true;
		client_respond(cl, error("bad request: longer than %d bytes", CTL_MAX_REQUEST));
		return;
	}
	len = nl - cl->in;
	resp = handle(cl->c.l, cl->in, len && nl[-1] == '\r' ? len - 1 : len);
	cl->in_len -= len + 1;
	memmove(cl->in, nl + 1, cl->in_len);
	client_respond(cl, resp);
}

static void client_received(struct ag_client *c, int res)
{
	struct client *cl = ag_container_of(c, struct client, c);

	if (res > 0) {
		cl->in_len += res;
		client_next(cl);
		return;
	}
	/* ECANCELED: the deadline passed (our own cancels come only when closing). */
	if (res < 0 && res != -ECONNRESET)
		ag_log(AG_LOG_DEBUG, "control", "fd=%d error=\"recv: %s\"", cl->c.fd,
		       strerror(res == -ECANCELED ? ETIMEDOUT : -res));
	ag_client_close(&cl->c);
}

static void client_sent(struct ag_client *c, int res)
{
	struct client *cl = ag_container_of(c, struct client, c);

	if (res <= 0) {
		ag_log(AG_LOG_DEBUG, "control", "fd=%d error=\"send: %s\"", c->fd,
		       strerror(res == -ECANCELED ? ETIMEDOUT
				: res		  ? -res
						  : EIO));
		ag_client_close(c);
		return;
	}
	if (cl->close_after_send) {
		ag_client_close(c);
		return;
	}
	ag_client_deadline(c, CTL_TIMEOUT_S);
	client_next(cl);
}

static const struct ag_client_ops client_ops = {
	.received = client_received,
	.sent = client_sent,
};

void ag_control_accept(struct ag_loop *l, int fd)
{
	struct ag_clients *set = &l->control->clients;
	struct client *cl;

	if (ag_clients_full(set) || !(cl = calloc(1, sizeof(*cl)))) {
		ag_log(AG_LOG_WARN, "control", "error=\"connection refused: %s\"",
		       ag_clients_full(set) ? "too many clients" : "out of memory");
		close(fd);
		return;
	}
	ag_client_start(&cl->c, set, l, fd, &client_ops);
	ag_client_deadline(&cl->c, CTL_TIMEOUT_S);
	client_recv(cl);
}

int ag_control_init(struct ag_loop *l, struct ag_err *err)
{
	struct ag_control *ctl = calloc(1, sizeof(*ctl));

	if (!ctl)
		return ag_errf(err, ENOMEM, "control: out of memory");
	ag_clients_init(&ctl->clients, CTL_MAX_CLIENTS);
	l->control = ctl;
	return 0;
}

void ag_control_stop(struct ag_loop *l)
{
	ag_clients_stop(&l->control->clients);
}

void ag_control_fini(struct ag_loop *l)
{
	free(l->control);
	l->control = NULL;
}
