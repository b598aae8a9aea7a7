// SPDX-License-Identifier: GPL-2.0
/*
 * Admission (see admit.h).  An accepted connection is checked in order,
 * cheapest and most certain first; each step fails closed:
 *
 *	origin recorded? --no--> no_origin
 *	an agent's?      --no--> no_agent
 *	the gateway?     --yes-> gateway_loop
 *	within its share (fair.h)?   --no--> its reason
 *	the metrics endpoint?        --yes-> metrics_endpoint
 *	its chain (subagent.h) -> agent name -> the classifier (classify.h)
 *
 * The chain comes after the share on purpose: an agent over its share
 * costs no other work.  A refusal before the chain is known works it out
 * for its record only (the limiter allowing); an admitted connection
 * carries its chain from here on, and nothing asks for it again.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admit.h"
#include "classify.h"
#include "daemon.h"
#include "fair.h"
#include "limit.h"
#include "loop.h"
#include "metrics.h"
#include "subagent.h"
#include "trail.h"

struct ag_admit {
	/* Log lines an agent makes us write: refusals per agent (0: no
	 * origin), "not a declared sub-agent" per run cgroup. */
	struct ag_limiter limit;
};

void ag_set_rst(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	/* Best effort: on failure the peer sees a FIN instead of a RST. */
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

const struct ag_delegation *ag_admission_chain(const struct ag_admission *a)
{
	return a->chained && (a->dg.n > 1 || a->dg.cut) ? &a->dg : NULL;
}

int ag_admission_chain_dup(const struct ag_admission *a, struct ag_delegation **out)
{
	const struct ag_delegation *dg = ag_admission_chain(a);

	*out = NULL;
	if (!dg)
		return 0;
	if (!(*out = malloc(sizeof(**out))))
		return -ENOMEM;
	**out = *dg;
	return 0;
}

/*
 * Any loopback or unspecified address at the listener's port: 0.0.0.0 and
 * [::] reach the local host too, and a listener on 0.0.0.0 answers
 * 127.0.0.2 as well, so the whole of 127.0.0.0/8 counts.
 */
static bool is_gateway(const struct ag_daemon *d, const struct ag_origin *o)
{
	return o->port == d->conf.port && ag_addr_is_local(o->addr);
}

static void peer_fmt(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	uint8_t addr[16] = { [10] = 0xff, [11] = 0xff };
	uint16_t port = 0;

	if (!getpeername(fd, (struct sockaddr *)&ss, &sl)) {
		if (ss.ss_family == AF_INET) {
			const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;

			memcpy(addr + 12, &sin->sin_addr, 4);
			port = ntohs(sin->sin_port);
		} else {
			const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;

			memcpy(addr, &sin6->sin6_addr, 16);
			port = ntohs(sin6->sin6_port);
		}
	}
	ag_addr_fmt(addr, port, buf, len);
}

/*
 * The "agent" object of a refusal's record: the root agent, and its chain
 * as far as it shows there; a (admitted) carries the chain, else it is
 * worked out now.  JSON null without an origin.
 */
static json_t *refused_agent(struct ag_daemon *d, const struct ag_origin *o,
			     const struct ag_admission *a)
{
	struct ag_delegation dg;
	struct ag_agent agent;

	if (!o)
		return json_null();
	if (a)
		return ag_audit_agent_chain(a->chained ? a->dg.name[0] : "", o,
					    ag_admission_chain(a));
	if (!o->agent_cgroup_id || ag_agent_lookup(&d->kern, o->agent_cgroup_id, &agent))
		return ag_audit_agent_chain("", o, NULL);
	return ag_audit_agent_chain(agent.name, o, ag_daemon_delegation(d, o, &dg) ? NULL : &dg);
}

/* o (NULL: no origin) or a (admitted, o is its origin) say whose fd is. */
static void reject(struct ag_loop *l, int fd, const char *reason, const struct ag_origin *o,
		   const struct ag_admission *a, bool rst)
{
	char peer[64], dst[64], comm_raw[AG_COMM_LEN + 1], comm[8 * AG_COMM_LEN];
	uint64_t suppressed = 0;

	peer_fmt(fd, peer, sizeof(peer));
	l->d->stats.conns_rejected++;
	ag_fair_refused(l, o, reason);
	/* Anyone local can connect here: what it makes us write is bounded. */
	if (!ag_limit_allow(&l->admit->limit, o ? o->agent_cgroup_id : 0, &suppressed))
		goto out;
	if (o) {
		memcpy(comm_raw, o->comm, AG_COMM_LEN);
		comm_raw[AG_COMM_LEN] = '\0';
		ag_log(AG_LOG_WARN, "conn_rejected",
		       "reason=%s peer=%s cgroup_id=%llu agent_cgroup_id=%llu pid=%u uid=%u "
		       "comm=%s dst=%s suppressed=%llu",
		       reason, peer, (unsigned long long)o->cgroup_id,
		       (unsigned long long)o->agent_cgroup_id, o->tgid, o->uid,
		       ag_logq(comm, sizeof(comm), comm_raw),
		       ag_addr_fmt(o->addr, o->port, dst, sizeof(dst)),
		       (unsigned long long)suppressed);
	} else {
		ag_log(AG_LOG_WARN, "conn_rejected", "reason=%s peer=%s suppressed=%llu", reason,
		       peer, (unsigned long long)suppressed);
	}
	ag_daemon_audit(l->d, "connect",
			json_pack("{s:o,s:s,s:o,s:s,s:s,s:I}", "agent", refused_agent(l->d, o, a),
				  "peer", peer, "dst", o ? json_string(dst) : json_null(), "result",
				  "rejected", "reason", reason, "suppressed",
				  (json_int_t)suppressed));
out:
	if (rst)
		ag_set_rst(fd);
	ag_fair_release(l, fd);
	close(fd);
}

void ag_admit_refuse(struct ag_loop *l, int fd, const char *reason, const struct ag_admission *a)
{
	reject(l, fd, reason, &a->o, a, true);
}

/* A sub-agent's connection is decided by its own configuration: its name. */
static void name_agent(struct ag_loop *l, struct ag_admission *a)
{
	char fields[AG_DELEGATION_PATH + 64], q[8 * AG_NAME_LEN];
	const struct ag_origin *o = &a->o;
	uint64_t suppressed;

	a->chained = !ag_daemon_delegation(l->d, o, &a->dg);
	if (!a->chained) {
		snprintf(a->agent, sizeof(a->agent), "cgroup-%llu",
			 (unsigned long long)o->agent_cgroup_id);
		return;
	}
	memcpy(a->agent, a->dg.name[a->dg.n - 1], sizeof(a->agent));
	if (a->dg.cut && ag_limit_allow(&l->admit->limit, o->cgroup_id, &suppressed)) {
		ag_delegation_fields(&a->dg, fields, sizeof(fields));
		ag_log(AG_LOG_WARN, "delegation",
		       "agent=%s cgroup_id=%llu run_cgroup_id=%llu pid=%u%s suppressed=%llu "
		       "msg=\"not a declared sub-agent: attributed to its parent\"",
		       ag_logq(q, sizeof(q), a->agent), (unsigned long long)o->agent_cgroup_id,
		       (unsigned long long)o->cgroup_id, o->tgid, fields,
		       (unsigned long long)suppressed);
	}
}

void ag_admit_accept(struct ag_loop *l, int fd)
{
	struct ag_daemon *d = l->d;
	struct ag_admission a;
	const char *why;

	/* Fail closed: whatever cannot be attributed to an agent goes nowhere. */
	if (ag_kern_origin(&d->kern, fd, &a.o)) {
		reject(l, fd, "no_origin", NULL, NULL, true);
		return;
	}
	if (!a.o.agent_cgroup_id) {
		reject(l, fd, "no_agent", &a.o, NULL, true);
		return;
	}
	/* Fail closed: the gateway relaying to itself would loop forever. */
	if (is_gateway(d, &a.o)) {
		reject(l, fd, "gateway_loop", &a.o, NULL, true);
		return;
	}
	/* Fail closed: first, so an agent over its share costs no other work. */
	if ((why = ag_fair_admit(l, fd, &a.o))) {
		reject(l, fd, why, &a.o, NULL, true);
		return;
	}
	/* Fail closed: the metrics endpoint is never an agent's, whatever passes. */
	if (ag_metrics_guards(&d->conf, a.o.addr, a.o.port)) {
		reject(l, fd, "metrics_endpoint", &a.o, NULL, true);
		return;
	}
	name_agent(l, &a);
	ag_route(l, fd, &a);
}

/* What each refusal a 403 can carry means, for the agent's developer. */
static const char *refusal_text(const char *reason)
{
	static const struct {
		const char *reason, *text;
	} texts[] = {
		{ "not_allowed", "no pass-through entry of the configuration allows this "
				 "destination for this agent" },
		{ "host_mismatch", "the host name sent does not resolve to the address dialled" },
		{ "unresolved", "the host name sent could not be resolved to check it" },
	};

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		if (!strcmp(reason, texts[i].reason))
			return texts[i].text;
	return "refused by the gateway";
}

void ag_admit_refuse_http(struct ag_loop *l, int fd, const char *reason,
			  const struct ag_admission *a)
{
	char body[512], resp[1024], dst[64];
	int blen, rlen;

	/* Agent names are [A-Za-z0-9_.-] (ag_agent_name_valid): nothing to escape. */
	blen = snprintf(body, sizeof(body),
			"agentgate refused this connection: %s (reason=%s agent=%s "
			"destination=%s)\n",
			refusal_text(reason), reason, a->agent,
			ag_addr_fmt(a->o.addr, a->o.port, dst, sizeof(dst)));
	blen = blen < 0 ? 0 : blen >= (int)sizeof(body) ? (int)sizeof(body) - 1 : blen;
	rlen = snprintf(resp, sizeof(resp),
			"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\n"
			"Content-Length: %d\r\nConnection: close\r\n\r\n%.*s",
			blen, blen, body);
	/*
	 * The socket is fresh: a few hundred bytes fit its send buffer, so
	 * this never blocks the loop; if they do not, the agent gets less.
	 */
	if (rlen > 0 && rlen < (int)sizeof(resp) &&
	    send(fd, resp, (size_t)rlen, MSG_DONTWAIT | MSG_NOSIGNAL) == rlen)
		shutdown(fd, SHUT_WR);
	reject(l, fd, reason, &a->o, a, false);
}

int ag_admit_init(struct ag_loop *l, struct ag_err *err)
{
	if (!(l->admit = calloc(1, sizeof(*l->admit))))
		return ag_errf(err, ENOMEM, "admit: out of memory");
	return 0;
}

void ag_admit_fini(struct ag_loop *l)
{
	free(l->admit);
	l->admit = NULL;
}
