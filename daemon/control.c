// SPDX-License-Identifier: GPL-2.0
/*
 * The control socket, server side.  A client goes
 *
 *	CLIENT_READING --a full line--> CLIENT_WRITING --response sent--> CLIENT_READING
 *	      |                               |
 *	      +--EOF, error, timeout, stop----+--> CLIENT_CLOSING (freed when no I/O is left)
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
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <jansson.h>

#include "approvals.h"
#include "audit.h"
#include "control.h"
#include "mcp.h"
#include "decide.h"
#include "fair.h"
#include "integrity.h"
#include "trail.h"

#define CTL_MAX_REQUEST 4096
#define CTL_MAX_CLIENTS 16
#define CTL_TIMEOUT_S 5

enum client_state {
	CLIENT_READING,
	CLIENT_WRITING,
	CLIENT_CLOSING,
};

enum { OP_RECV = 1, OP_SEND };

struct client {
	struct ag_io io;
	struct ag_list node; /* in control->clients */
	struct ag_loop *l;
	int fd;
	enum client_state state;
	unsigned int inflight;
	bool close_after_send;
	struct __kernel_timespec deadline; /* CLOCK_MONOTONIC, absolute */
	char *out;
	size_t out_len, out_off;
	size_t in_len;
	char in[CTL_MAX_REQUEST];
};

struct ag_control {
	struct ag_list clients;
	unsigned int nr_clients;
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
	json_t *held = ag_approvals_list(ag_mcp_approvals(l)), *st;

	st = json_pack("{s:b, s:s, s:i, s:I, s:i, s:b, s:s, s:{s:I, s:I, s:I, s:I}, s:I, "
			 "s:{s:s, s:s, s:b, s:s?, s:I}}",
			 "ok", 1, "instance", d->inst.name, "pid", (int)getpid(), "uptime_s",
			 (json_int_t)((ag_now_ns() - d->start_ns) / 1000000000), "listen_port",
			 (int)d->conf.port, "ipv6", d->listen_fd[AG_LISTEN_V6] >= 0, "kernel",
			 d->kern.adopted ? "adopted" : "loaded", "connections", "active",
			 (json_int_t)s->conns_active, "total", (json_int_t)s->conns_total,
			 "rejected", (json_int_t)s->conns_rejected, "upstream_failed",
			 (json_int_t)s->upstream_failed, "kernel_refusals",
			 (json_int_t)s->kernel_refusals, "audit", "log", d->audit_path, "key",
			 d->audit_key, "ok", audit_ok, "error", audit_ok ? NULL : why.msg, "lost",
			 (json_int_t)(s->audit_lost + s->audit_errors));
	if (st)
		json_object_set_new(st, "mcp",
				    json_pack("{s:i,s:i,s:i,s:o,s:o}", "tool_servers",
					      d->conf.nr_servers, "active", (int)ag_mcp_active(l),
					      "held_for_approval", (int)json_array_size(held), "tools",
					      ag_integrity_summary(d), "credentials",
					      ag_mcp_credentials(l)));
	json_decref(held);
	if (st)
		json_object_set_new(st, "limits", ag_fair_status(l));
	if (st)
		json_object_set_new(json_object_get(st, "audit"), "durability",
				    json_string(ag_audit_durability_name(d->conf.audit_durability)));
	if (st)
		json_object_set_new(st, "dns", dns_status(d));
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
	if (ag_approvals_resolve(ag_mcp_approvals(l), (uint64_t)json_integer_value(id), allow, by,
				 &err))
		return error("%s", err.msg);
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
	else if (!strcmp(cmd, "approvals"))
		resp = json_pack("{s:b,s:o}", "ok", 1, "approvals",
				 ag_approvals_list(ag_mcp_approvals(l)));
	else if (!strcmp(cmd, "approve") || !strcmp(cmd, "deny"))
		resp = resolve(l, req, !strcmp(cmd, "approve"));
	else if (!strcmp(cmd, "agents"))
		resp = json_pack("{s:b,s:o}", "ok", 1, "agents", ag_fair_refusals(l));
	else if (!strcmp(cmd, "tools_approve"))
		resp = ag_integrity_approve(d, req);
	else
		resp = error("unknown command \"%s\"", cmd);
	json_decref(req);
	return resp;
}

static void deadline_renew(struct client *cl)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	cl->deadline.tv_sec = now.tv_sec + CTL_TIMEOUT_S;
	cl->deadline.tv_nsec = now.tv_nsec;
}

static void client_release(struct client *cl)
{
	ag_list_del(&cl->node);
	cl->l->control->nr_clients--;
	close(cl->fd);
	free(cl->out);
	free(cl);
}

/* -> CLIENT_CLOSING; freed now or when the last cancelled operation completes. */
static void client_close(struct client *cl)
{
	if (cl->state == CLIENT_CLOSING)
		return;
	cl->state = CLIENT_CLOSING;
	if (cl->inflight)
		ag_loop_cancel_fd(cl->l, cl->fd);
	else
		client_release(cl);
}

/* An operation and its linked timeout, in one submit. */
static struct io_uring_sqe *client_sqe(struct client *cl, unsigned int op)
{
	struct io_uring_sqe *sqe;

	if (!ag_loop_reserve(cl->l, 2)) {
		client_close(cl);
		return NULL;
	}
	sqe = ag_loop_sqe(cl->l, &cl->io, op);
	cl->inflight++;
	return sqe;
}

static void client_link_timeout(struct client *cl, struct io_uring_sqe *sqe)
{
	sqe->flags |= IOSQE_IO_LINK;
	io_uring_prep_link_timeout(ag_loop_sqe_untracked(cl->l), &cl->deadline, IORING_TIMEOUT_ABS);
}

/* -> CLIENT_READING */
static void client_recv(struct client *cl)
{
	struct io_uring_sqe *sqe = client_sqe(cl, OP_RECV);

	if (!sqe)
		return;
	cl->state = CLIENT_READING;
	io_uring_prep_recv(sqe, cl->fd, cl->in + cl->in_len, sizeof(cl->in) - cl->in_len, 0);
	client_link_timeout(cl, sqe);
}

/* -> CLIENT_WRITING: the rest of cl->out. */
static void client_send(struct client *cl)
{
	struct io_uring_sqe *sqe = client_sqe(cl, OP_SEND);

	if (!sqe)
		return;
	cl->state = CLIENT_WRITING;
	io_uring_prep_send(sqe, cl->fd, cl->out + cl->out_off, cl->out_len - cl->out_off,
			   MSG_NOSIGNAL);
	client_link_timeout(cl, sqe);
}

/* Serialises resp (consumed) as one line and sends it. */
static void client_respond(struct client *cl, json_t *resp)
{
	size_t len = resp ? json_dumpb(resp, NULL, 0, JSON_COMPACT) : 0;

	free(cl->out);
	cl->out = len ? malloc(len + 1) : NULL;
	if (!cl->out) {
		json_decref(resp);
		ag_log(AG_LOG_ERROR, "control", "error=\"response: out of memory\"");
		client_close(cl);
		return;
	}
	json_dumpb(resp, cl->out, len, JSON_COMPACT);
	json_decref(resp);
	cl->out[len] = '\n';
	cl->out_len = len + 1;
	cl->out_off = 0;
	client_send(cl);
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
	resp = handle(cl->l, cl->in, len && nl[-1] == '\r' ? len - 1 : len);
	cl->in_len -= len + 1;
	memmove(cl->in, nl + 1, cl->in_len);
	client_respond(cl, resp);
}

static void client_on_recv(struct client *cl, int res)
{
	if (res > 0) {
		cl->in_len += res;
		client_next(cl);
		return;
	}
	/* ECANCELED: the deadline passed (our own cancels come only when closing). */
	if (res < 0 && res != -ECONNRESET)
		ag_log(AG_LOG_DEBUG, "control", "fd=%d error=\"recv: %s\"", cl->fd,
		       strerror(res == -ECANCELED ? ETIMEDOUT : -res));
	client_close(cl);
}

static void client_on_send(struct client *cl, int res)
{
	if (res <= 0) {
		ag_log(AG_LOG_DEBUG, "control", "fd=%d error=\"send: %s\"", cl->fd,
		       strerror(res == -ECANCELED ? ETIMEDOUT
				: res		  ? -res
						  : EIO));
		client_close(cl);
		return;
	}
	cl->out_off += res;
	if (cl->out_off < cl->out_len) {
		client_send(cl);
		return;
	}
	if (cl->close_after_send) {
		client_close(cl);
		return;
	}
	deadline_renew(cl);
	client_next(cl);
}

static void client_complete(struct ag_io *io, unsigned int op, const struct io_uring_cqe *cqe)
{
	struct client *cl = ag_container_of(io, struct client, io);

	/* Held until the handler is done, so a close inside it cannot free cl. */
	if (cl->state != CLIENT_CLOSING) {
		if (op == OP_RECV)
			client_on_recv(cl, cqe->res);
		else
			client_on_send(cl, cqe->res);
	}
	if (!--cl->inflight && cl->state == CLIENT_CLOSING)
		client_release(cl);
}

void ag_control_accept(struct ag_loop *l, int fd)
{
	struct ag_control *ctl = l->control;
	struct client *cl;

	if (ctl->nr_clients >= CTL_MAX_CLIENTS || !(cl = calloc(1, sizeof(*cl)))) {
		ag_log(AG_LOG_WARN, "control", "error=\"connection refused: %s\"",
		       ctl->nr_clients >= CTL_MAX_CLIENTS ? "too many clients" : "out of memory");
		close(fd);
		return;
	}
	cl->io.complete = client_complete;
	cl->l = l;
	cl->fd = fd;
	ag_list_add_tail(&ctl->clients, &cl->node);
	ctl->nr_clients++;
	deadline_renew(cl);
	client_recv(cl);
}

int ag_control_init(struct ag_loop *l, struct ag_err *err)
{
	struct ag_control *ctl = calloc(1, sizeof(*ctl));

	if (!ctl)
		return ag_errf(err, ENOMEM, "control: out of memory");
	ag_list_init(&ctl->clients);
	l->control = ctl;
	return 0;
}

void ag_control_stop(struct ag_loop *l)
{
	struct ag_list *pos, *next;

	for (pos = l->control->clients.next; pos != &l->control->clients; pos = next) {
		next = pos->next;
		client_close(ag_container_of(pos, struct client, node));
	}
}

void ag_control_fini(struct ag_loop *l)
{
	free(l->control);
	l->control = NULL;
}
