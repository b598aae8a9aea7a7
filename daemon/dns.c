// SPDX-License-Identifier: GPL-2.0
/*
 * The DNS relay (dns.h).  Queries come in on two sockets, one recvmsg at
 * a time on each: the gateway one, for agents in namespaces of their own,
 * and the loopback one, for agents in the daemon's namespace, whose
 * datagrams to a resolver the hooks send there instead (bpf/sock.bpf.c
 * udp_verdict).  Each datagram goes through
 *
 *	whose? --> a plain query? --> a name the agent may resolve? --> query
 *	  |            |                  |
 *	  dropped      dropped, counted,  REFUSED answer, audited
 *	               audited (limited)
 *
 * and each query, on a socket of its own connected to the resolver,
 *
 *	send to the resolver --LINK--> recv the answer --LINK--> timeout (absolute)
 *	answer with the query's id --> sendmsg to the agent --> audited, freed
 *
 * so the kernel delivers only datagrams from the resolver's address and
 * port and a fresh source port per query makes answers hard to guess; the
 * id is checked here.  An answer with another id is dropped and the
 * receive re-armed against the same absolute deadline, so nothing extends
 * a query's life.
 *
 * Whose: on the gateway socket, the datagram's ingress interface
 * (IP_PKTINFO) must be the host-side veth of a namespace in netns_links
 * and its source that namespace's address, as for the TCP listener
 * (ag_gateway_filter, also attached to that socket, keeps everything off
 * the other interfaces before the loop sees it).  On the loopback socket,
 * the agent is the cgroup of the UDP socket that holds the source port
 * (ag_kern_dns_claim; its limits are in bpf/daemon.bpf.c).
 *
 * What passes: a well-formed standard query for one name of class IN
 * (ag_dnsmsg_question), whatever its type, for a name the agent's "dns"
 * lists allow (ag_conf_dns_allows); the answer goes back as the resolver
 * sent it.  Everything else is a tunnel as far as the relay can tell, and
 * goes nowhere.
 *
 * Bounds: at most QUERIES_MAX queries in flight, each holding one socket
 * and one MSG_MAX buffer for at most QUERY_TIMEOUT_NS; larger datagrams are
 * dropped whole as malformed (MSG_TRUNC reports their real length).  Refusals are
 * logged once per class, rate-limited (limit.h); malformed datagrams are
 * audited rate-limited per agent, every query and denial is audited.
 *
 * A query is freed when its last operation completed (q->inflight), so a
 * completion never finds freed memory and a cancel never targets a reused
 * fd number.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "daemon.h"
#include "dns.h"
#include "loop.h"
#include "dnsmsg.h"
#include "limit.h"
#include "resolve.h"
#include "trail.h"

#define MSG_MIN 12 /* the header: the id and the flags */
#define MSG_MAX 4096
#define QUERIES_MAX 64
#define QUERY_TIMEOUT_NS (5ull * 1000 * 1000 * 1000)

enum { OP_RECV = 1 }; /* on relay_sock.io */
/* on query.io: AG_RESOLVER_SEND and _ANSWER (resolve.h), then the reply */
enum { OP_REPLY = AG_RESOLVER_ANSWER + 1 };

/* Why a datagram went unanswered: one log line per class, rate-limited. */
enum refusal {
	REFUSE_NOT_AGENT, /* not from an agent's socket (or namespace over its own veth) */
	REFUSE_NO_RESOLVER,
	REFUSE_BUSY,	 /* QUERIES_MAX in flight */
	REFUSE_UPSTREAM, /* socket, send or receive towards the resolver failed */
	REFUSE_TIMEOUT,
	REFUSE_BAD_ANSWER, /* answer of the wrong size or with another id */
	REFUSE_REPLY,	   /* the answer could not be sent to the agent */
	REFUSE_RECV,	   /* the relay socket's receive failed */
	REFUSE_MALFORMED,  /* not a plain query (ag_dnsmsg_question), or over MSG_MAX */
};

static const char *const refusal_names[] = {
	[REFUSE_NOT_AGENT] = "not_agent", [REFUSE_NO_RESOLVER] = "no_resolver",
	[REFUSE_BUSY] = "busy",		  [REFUSE_UPSTREAM] = "upstream_error",
	[REFUSE_TIMEOUT] = "timeout",	  [REFUSE_BAD_ANSWER] = "bad_answer",
	[REFUSE_REPLY] = "reply_error",	  [REFUSE_RECV] = "recv_error",
	[REFUSE_MALFORMED] = "malformed",
};

struct ag_dns;

/* Who asked: the agent's cgroup and its name (cgroup-<id> when unregistered). */
struct asker {
	uint64_t agent_id;
	char name[AG_NAME_LEN];
};

/* One of the relay's receiving sockets. */
struct relay_sock {
	struct ag_io io;
	struct ag_dns *dns;
	int fd;
	bool host; /* the loopback one: agents found by ag_kern_dns_claim */
	struct sockaddr_in from;
	struct iovec iov;
	struct msghdr msg;
	union {
		char buf[CMSG_SPACE(sizeof(struct in_pktinfo))];
		struct cmsghdr align;
	} cmsg;
	unsigned char rx[MSG_MAX];
};

struct query {
	struct ag_io io;
	struct ag_list node; /* in dns->queries */
	struct ag_dns *dns;
	struct relay_sock *via; /* where the question came in, and the answer goes out */
	int fd;			/* connected to the resolver */
	unsigned int inflight;
	bool failed; /* the send failed: the receive's cancel is no timeout */
	uint16_t id; /* network order, as in the header */
	struct sockaddr_in agent;
	struct asker who;
	struct ag_dnsmsg_question q;
	struct __kernel_timespec deadline; /* CLOCK_MONOTONIC, absolute */
	struct iovec iov;
	struct msghdr msg; /* the reply */
	unsigned char buf[MSG_MAX];
};

struct ag_dns {
	struct ag_loop *l;
	int links_fd; /* netns_links */
	struct relay_sock sock[2];
	int nr_socks;
	struct ag_list queries;
	unsigned int nr_queries;
	uint64_t malformed;	       /* datagrams dropped as not a plain query, ever */
	struct ag_limiter limit;       /* log lines, per refusal class */
	struct ag_limiter audit_limit; /* malformed records, per agent */
};

static void refuse(struct ag_dns *dns, enum refusal why, const struct sockaddr_in *from, int error)
{
	uint8_t a[16] = { [10] = 0xff, [11] = 0xff };
	uint64_t suppressed = 0;
	char src[64] = "-";

	if (!ag_limit_allow(&dns->limit, why + 1, &suppressed))
		return;
	if (from) {
		memcpy(a + 12, &from->sin_addr, 4);
		ag_addr_fmt(a, ntohs(from->sin_port), src, sizeof(src));
	}
	ag_log(AG_LOG_WARN, "dns_refused", "reason=%s src=%s error=\"%s\" suppressed=%llu",
	       refusal_names[why], src, error ? strerror(error) : "-",
	       (unsigned long long)suppressed);
}

/* RFC 1035 and later mnemonics of the common types; RFC 3597's TYPEn else. */
static const char *type_name(uint16_t t, char *buf, size_t len)
{
	static const struct {
		uint16_t t;
		const char *name;
	} types[] = { { 1, "A" },    { 2, "NS" },    { 5, "CNAME" },  { 6, "SOA" },
		      { 12, "PTR" }, { 15, "MX" },   { 16, "TXT" },   { 28, "AAAA" },
		      { 33, "SRV" }, { 64, "SVCB" }, { 65, "HTTPS" }, { 255, "ANY" } };

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (types[i].t == t)
			return types[i].name;
	snprintf(buf, len, "TYPE%u", t);
	return buf;
}

static const char *rcode_name(unsigned int rcode, char *buf, size_t len)
{
	static const char *const names[] = { "NOERROR",	 "FORMERR", "SERVFAIL",
					     "NXDOMAIN", "NOTIMP",  "REFUSED" };

	if (rcode < sizeof(names) / sizeof(names[0]))
		return names[rcode];
	snprintf(buf, len, "RCODE%u", rcode);
	return buf;
}

/* A "dns" audit record (docs/audit.md); more: the verdict's own fields, taken. */
static void audit(struct ag_dns *dns, const struct asker *who, const char *verdict, json_t *more)
{
	json_t *rec = json_pack("{s:{s:s,s:I},s:s}", "agent", "name", who->name, "cgroup_id",
				(json_int_t)who->agent_id, "verdict", verdict);

	if (rec && more && json_object_update(rec, more)) {
		json_decref(rec);
		rec = NULL;
	}
	json_decref(more);
	ag_daemon_audit(dns->l->d, "dns", rec);
}

static json_t *question_json(const struct ag_dnsmsg_question *q)
{
	char t[16];

	return json_pack("{s:s,s:s}", "name", q->name, "type", type_name(q->qtype, t, sizeof(t)));
}

static void audit_answer(struct query *q, const unsigned char *msg, size_t len)
{
	unsigned int rcode, answers;
	json_t *more = question_json(&q->q);
	char r[16];

	if (more && !ag_dnsmsg_answer_head(msg, len, &rcode, &answers) &&
	    json_object_update_new(more, json_pack("{s:i,s:s}", "answers", (int)answers, "rcode",
						   rcode_name(rcode, r, sizeof(r))))) {
		json_decref(more);
		more = NULL;
	}
	audit(q->dns, &q->who, "allow", more);
}

/* An allowed query that got no answer to pass on: audited with why. */
static void audit_unanswered(struct query *q, const char *error)
{
	json_t *more = question_json(&q->q);

	if (more && json_object_set_new(more, "error", json_string(error))) {
		json_decref(more);
		more = NULL;
	}
	audit(q->dns, &q->who, "allow", more);
}

static void query_put(struct query *q)
{
	if (--q->inflight)
		return;
	close(q->fd);
	ag_list_del(&q->node);
	q->dns->nr_queries--;
	free(q);
}

/* The answer's receive, behind the send or alone, bounded by the deadline. */
static void arm_answer(struct query *q, bool after_send)
{
	q->inflight += ag_resolver_exchange(q->dns->l, &q->io, q->fd, after_send ? q->buf : NULL,
					    q->iov.iov_len, q->buf, sizeof(q->buf), &q->deadline);
}

static void reply(struct query *q, size_t len)
{
	struct io_uring_sqe *sqe = ag_ring_sqe(&q->dns->l->ring, &q->io, OP_REPLY);

	if (!sqe) {
		refuse(q->dns, REFUSE_REPLY, &q->agent, EBUSY);
		return;
	}
	q->iov = (struct iovec){ .iov_base = q->buf, .iov_len = len };
	q->msg = (struct msghdr){ .msg_name = &q->agent,
				  .msg_namelen = sizeof(q->agent),
				  .msg_iov = &q->iov,
				  .msg_iovlen = 1 };
	io_uring_prep_sendmsg(sqe, q->via->fd, &q->msg, MSG_DONTWAIT);
	q->inflight++;
}

static void query_complete(struct ag_io *io, unsigned int op, const struct io_uring_cqe *cqe)
{
	struct query *q = ag_container_of(io, struct query, io);
	struct ag_dns *dns = q->dns;
	int res = cqe->res;

	if (dns->l->stopping) {
		query_put(q);
		return;
	}
	if (op == AG_RESOLVER_SEND && res < 0) {
		/* The receive behind it ends with -ECANCELED: not a timeout. */
		q->failed = true;
		refuse(dns, REFUSE_UPSTREAM, &q->agent, -res);
		audit_unanswered(q, "upstream_error");
	} else if (op == AG_RESOLVER_ANSWER && res < 0) {
		if (!q->failed) {
			refuse(dns, res == -ECANCELED ? REFUSE_TIMEOUT : REFUSE_UPSTREAM, &q->agent,
			       res == -ECANCELED ? 0 : -res);
			audit_unanswered(q, res == -ECANCELED ? "timeout" : "upstream_error");
		}
	} else if (op == AG_RESOLVER_ANSWER) {
		if (res >= MSG_MIN && res <= MSG_MAX && !memcmp(q->buf, &q->id, 2)) {
			audit_answer(q, q->buf, (size_t)res);
			reply(q, (size_t)res);
		} else {
			refuse(dns, REFUSE_BAD_ANSWER, &q->agent, 0);
			/* The right answer may still come before the deadline. */
			arm_answer(q, false);
		}
	} else if (op == OP_REPLY && res < 0) {
		refuse(dns, REFUSE_REPLY, &q->agent, -res);
	}
	query_put(q);
}

static void query_start(struct relay_sock *rs, const struct asker *who,
			const struct ag_dnsmsg_question *question, size_t len)
{
	struct ag_dns *dns = rs->dns;
	struct query *q;
	struct timespec now;
	uint64_t at;
	int fd;

	if (!ag_ring_reserve(&dns->l->ring, 3)) {
		refuse(dns, REFUSE_BUSY, &rs->from, EBUSY);
		return;
	}
	fd = ag_resolver_socket(&dns->l->d->conf);
	if (fd < 0) {
		refuse(dns, REFUSE_UPSTREAM, &rs->from, -fd);
		return;
	}
	q = malloc(sizeof(*q));
	if (!q) {
		close(fd);
		refuse(dns, REFUSE_BUSY, &rs->from, ENOMEM);
		return;
	}
	q->io.complete = query_complete;
	q->dns = dns;
	q->via = rs;
	q->fd = fd;
	q->inflight = 0;
	q->failed = false;
	q->agent = rs->from;
	q->who = *who;
	q->q = *question;
	memcpy(q->buf, rs->rx, len);
	memcpy(&q->id, rs->rx, 2);
	q->iov.iov_len = len;
	clock_gettime(CLOCK_MONOTONIC, &now);
	at = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec + QUERY_TIMEOUT_NS;
	q->deadline = (struct __kernel_timespec){ .tv_sec = at / 1000000000ull,
						  .tv_nsec = at % 1000000000ull };
	ag_list_add_tail(&dns->queries, &q->node);
	dns->nr_queries++;
	arm_answer(q, true);
}

/* The namespace behind the datagram's ingress interface, and it alone. */
static bool from_netns_agent(struct relay_sock *rs, uint64_t *agent_id)
{
	struct in_pktinfo pi;
	struct ag_netns ns;
	struct cmsghdr *c;

	for (c = CMSG_FIRSTHDR(&rs->msg); c; c = CMSG_NXTHDR(&rs->msg, c)) {
		if (c->cmsg_level != IPPROTO_IP || c->cmsg_type != IP_PKTINFO)
			continue;
		memcpy(&pi, CMSG_DATA(c), sizeof(pi));
		if (bpf_map_lookup_elem(rs->dns->links_fd, &pi.ipi_ifindex, &ns) ||
		    ns.agent_ip4 != rs->from.sin_addr.s_addr ||
		    rs->msg.msg_namelen != sizeof(rs->from))
			return false;
		*agent_id = ns.agent_cgroup_id;
		return true;
	}
	return false;
}

/* Who sent the datagram on rs: an agent, named, or false. */
static bool find_asker(struct relay_sock *rs, struct asker *who)
{
	struct ag_daemon *d = rs->dns->l->d;
	struct ag_agent agent;

	if (rs->msg.msg_namelen != sizeof(rs->from))
		return false;
	if (rs->host ? ag_kern_dns_claim(&d->kern, &rs->from, &who->agent_id)
		     : !from_netns_agent(rs, &who->agent_id))
		return false;
	if (!ag_agent_lookup(&d->kern, who->agent_id, &agent))
		snprintf(who->name, sizeof(who->name), "%.*s", AG_NAME_LEN - 1, agent.name);
	else
		snprintf(who->name, sizeof(who->name), "cgroup-%llu",
			 (unsigned long long)who->agent_id);
	return true;
}

/*
 * Not a plain query: a tunnel as far as the relay can tell.  Dropped
 * unanswered, counted, and audited at most LIMIT_RATE times a second per
 * agent, with what was held back.
 */
static void drop_malformed(struct relay_sock *rs, const struct asker *who, size_t len)
{
	uint64_t suppressed = 0;

	rs->dns->malformed++;
	refuse(rs->dns, REFUSE_MALFORMED, &rs->from, 0);
	if (!ag_limit_allow(&rs->dns->audit_limit, who->agent_id, &suppressed))
		return;
	audit(rs->dns, who, "malformed",
	      json_pack("{s:I,s:I,s:I}", "bytes", (json_int_t)len, "suppressed",
			(json_int_t)suppressed, "dropped", (json_int_t)rs->dns->malformed));
}

/*
 * A name the agent may not resolve: answered REFUSED at once, so the
 * agent's resolver does not wait for a timeout.  A non-blocking send of
 * one datagram on loopback or a veth: it cannot hold up the loop.
 */
static void deny(struct relay_sock *rs, const struct asker *who, const struct ag_dnsmsg_question *q)
{
	unsigned char out[MSG_MAX];
	int n = ag_dnsmsg_refused(rs->rx, q, out, sizeof(out));

	audit(rs->dns, who, "deny", question_json(q));
	if (n > 0 && sendto(rs->fd, out, (size_t)n, MSG_DONTWAIT, (struct sockaddr *)&rs->from,
			    sizeof(rs->from)) < 0)
		refuse(rs->dns, REFUSE_REPLY, &rs->from, errno);
}

/* One datagram of res bytes on rs, from an agent or not. */
static void handle(struct relay_sock *rs, int res)
{
	struct ag_dns *dns = rs->dns;
	struct ag_daemon *d = dns->l->d;
	struct ag_dnsmsg_question q;
	struct asker who;

	/* Fail closed: anything that is not an agent's plain query goes nowhere. */
	if (!find_asker(rs, &who))
		refuse(dns, REFUSE_NOT_AGENT, &rs->from, 0);
	else if (res > MSG_MAX || ag_dnsmsg_question(rs->rx, (size_t)res, &q))
		drop_malformed(rs, &who, (size_t)res);
	else if (!ag_conf_dns_allows(&d->conf, ag_conf_agent(&d->conf, who.name), q.name))
		deny(rs, &who, &q);
	else if (!d->conf.nr_resolvers)
		refuse(dns, REFUSE_NO_RESOLVER, &rs->from, 0);
	else if (dns->nr_queries >= QUERIES_MAX)
		refuse(dns, REFUSE_BUSY, &rs->from, 0);
	else
		query_start(rs, &who, &q, (size_t)res);
}

static void recv_arm(struct relay_sock *rs)
{
	struct io_uring_sqe *sqe = ag_ring_sqe(&rs->dns->l->ring, &rs->io, OP_RECV);

	if (!sqe) {
		ag_log(AG_LOG_ERROR, "dns", "error=\"no submission queue entry; relay stopped\"");
		return;
	}
	rs->iov = (struct iovec){ .iov_base = rs->rx, .iov_len = sizeof(rs->rx) };
	rs->msg = (struct msghdr){ .msg_name = &rs->from,
				   .msg_namelen = sizeof(rs->from),
				   .msg_iov = &rs->iov,
				   .msg_iovlen = 1,
				   .msg_control = rs->cmsg.buf,
				   .msg_controllen = sizeof(rs->cmsg.buf) };
	io_uring_prep_recvmsg(sqe, rs->fd, &rs->msg, MSG_TRUNC);
}

static void recv_complete(struct ag_io *io, unsigned int op, const struct io_uring_cqe *cqe)
{
	struct relay_sock *rs = ag_container_of(io, struct relay_sock, io);
	int res = cqe->res;

	(void)op;
	if (rs->dns->l->stopping)
		return;
	if (res < 0)
		refuse(rs->dns, REFUSE_RECV, NULL, -res);
	else
		handle(rs, res);
	recv_arm(rs);
}

static void sock_add(struct ag_dns *dns, int fd, bool host)
{
	struct relay_sock *rs = &dns->sock[dns->nr_socks++];

	rs->io.complete = recv_complete;
	rs->dns = dns;
	rs->fd = fd;
	rs->host = host;
	recv_arm(rs);
}

int ag_dns_init(struct ag_loop *l, struct ag_dns **out, struct ag_err *err)
{
	struct ag_dns *dns;

	*out = NULL;
	if (l->d->dns_fd < 0 && l->d->dns_host_fd < 0)
		return 0;
	dns = calloc(1, sizeof(*dns));
	if (!dns)
		return ag_errf(err, ENOMEM, "dns relay: out of memory");
	dns->l = l;
	dns->links_fd = l->d->kern.map_fd[AG_MAP_NETNS_LINKS];
	ag_list_init(&dns->queries);
	if (l->d->dns_fd >= 0)
		sock_add(dns, l->d->dns_fd, false);
	if (l->d->dns_host_fd >= 0)
		sock_add(dns, l->d->dns_host_fd, true);
	*out = dns;
	return 0;
}

void ag_dns_stop(struct ag_dns *dns)
{
	struct ag_list *n;

	if (!dns)
		return;
	for (int i = 0; i < dns->nr_socks; i++)
		ag_ring_cancel_fd(&dns->l->ring, dns->sock[i].fd);
	for (n = dns->queries.next; n != &dns->queries; n = n->next)
		ag_ring_cancel_fd(&dns->l->ring, ag_container_of(n, struct query, node)->fd);
}

void ag_dns_fini(struct ag_dns *dns)
{
	free(dns);
}
