// SPDX-License-Identifier: GPL-2.0
/*
 * The DNS relay (dns.h).  One recvmsg at a time on the relay socket; each
 * datagram that passes the checks becomes a query:
 *
 *	send to the resolver --LINK--> recv the answer --LINK--> timeout (absolute)
 *	answer with the query's id --> sendmsg to the agent --> freed
 *
 * on a socket of its own, connected to the resolver, so the kernel delivers
 * only datagrams from the resolver's address and port and a fresh source
 * port per query makes answers hard to guess; the id is checked here.  An
 * answer with another id is dropped and the receive re-armed against the
 * same absolute deadline, so nothing extends a query's life.
 *
 * Who may ask: the datagram's ingress interface (IP_PKTINFO) must be the
 * host-side veth of a namespace in netns_links and its source that
 * namespace's address, as for the TCP listener (ag_gateway_filter, also
 * attached to the relay socket, keeps everything off the other interfaces
 * before the loop sees it).  Nothing beyond the 12-byte header is parsed.
 *
 * Bounds: at most QUERIES_MAX queries in flight, each holding one socket
 * and one MSG_MAX buffer for at most QUERY_TIMEOUT_NS; larger datagrams are
 * dropped whole (MSG_TRUNC reports their real length).  Refusals are
 * logged once per class, rate-limited (limit.h).
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

#include "dns.h"
#include "limit.h"
#include "resolve.h"

#define MSG_MIN 12 /* the header: the id and the flags */
#define MSG_MAX 4096
#define QUERIES_MAX 64
#define QUERY_TIMEOUT_NS (5ull * 1000 * 1000 * 1000)

enum { OP_RECV = 1 };			   /* on ag_dns.io */
/* on query.io: AG_RESOLVER_SEND and _ANSWER (resolve.h), then the reply */
enum { OP_REPLY = AG_RESOLVER_ANSWER + 1 };

/* Why a datagram went unanswered: one log line per class, rate-limited. */
enum refusal {
	REFUSE_SIZE,	  /* query shorter than a header or over MSG_MAX */
	REFUSE_NOT_AGENT, /* not from a registered namespace over its own veth */
	REFUSE_NO_RESOLVER,
	REFUSE_BUSY,	 /* QUERIES_MAX in flight */
	REFUSE_UPSTREAM, /* socket, send or receive towards the resolver failed */
	REFUSE_TIMEOUT,
	REFUSE_BAD_ANSWER, /* answer of the wrong size or with another id */
	REFUSE_REPLY,	   /* the answer could not be sent to the agent */
	REFUSE_RECV,	   /* the relay socket's receive failed */
};

static const char *const refusal_names[] = {
	[REFUSE_SIZE] = "size",
	[REFUSE_NOT_AGENT] = "not_agent",
	[REFUSE_NO_RESOLVER] = "no_resolver",
	[REFUSE_BUSY] = "busy",
	[REFUSE_UPSTREAM] = "upstream_error",
	[REFUSE_TIMEOUT] = "timeout",
	[REFUSE_BAD_ANSWER] = "bad_answer",
	[REFUSE_REPLY] = "reply_error",
	[REFUSE_RECV] = "recv_error",
};

struct ag_dns;

struct query {
	struct ag_io io;
	struct ag_list node; /* in dns->queries */
	struct ag_dns *dns;
	int fd; /* connected to the resolver */
	unsigned int inflight;
	bool failed; /* the send failed: the receive's cancel is no timeout */
	uint16_t id; /* network order, as in the header */
	struct sockaddr_in agent;
	struct __kernel_timespec deadline; /* CLOCK_MONOTONIC, absolute */
	struct iovec iov;
	struct msghdr msg; /* the reply */
	unsigned char buf[MSG_MAX];
};

struct ag_dns {
	struct ag_io io;
	struct ag_loop *l;
	int fd;
	int links_fd; /* netns_links */
	struct ag_list queries;
	unsigned int nr_queries;
	struct sockaddr_in from;
	struct iovec iov;
	struct msghdr msg;
	union {
		char buf[CMSG_SPACE(sizeof(struct in_pktinfo))];
		struct cmsghdr align;
	} cmsg;
	unsigned char rx[MSG_MAX];
	struct ag_limiter limit;
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
	struct io_uring_sqe *sqe = ag_loop_sqe(q->dns->l, &q->io, OP_REPLY);

	if (!sqe) {
		refuse(q->dns, REFUSE_REPLY, &q->agent, EBUSY);
		return;
	}
	q->iov = (struct iovec){ .iov_base = q->buf, .iov_len = len };
	q->msg = (struct msghdr){ .msg_name = &q->agent,
				  .msg_namelen = sizeof(q->agent),
				  .msg_iov = &q->iov,
				  .msg_iovlen = 1 };
	io_uring_prep_sendmsg(sqe, q->dns->fd, &q->msg, MSG_DONTWAIT);
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
	} else if (op == AG_RESOLVER_ANSWER && res < 0) {
		if (!q->failed)
			refuse(dns, res == -ECANCELED ? REFUSE_TIMEOUT : REFUSE_UPSTREAM, &q->agent,
			       res == -ECANCELED ? 0 : -res);
	} else if (op == AG_RESOLVER_ANSWER) {
		if (res >= MSG_MIN && res <= MSG_MAX && !memcmp(q->buf, &q->id, 2)) {
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

static void query_start(struct ag_dns *dns, size_t len)
{
	struct query *q;
	struct timespec now;
	uint64_t at;
	int fd;

	if (!ag_loop_reserve(dns->l, 3)) {
		refuse(dns, REFUSE_BUSY, &dns->from, EBUSY);
		return;
	}
	fd = ag_resolver_socket(&dns->l->d->conf);
	if (fd < 0) {
		refuse(dns, REFUSE_UPSTREAM, &dns->from, -fd);
		return;
	}
	q = malloc(sizeof(*q));
	if (!q) {
		close(fd);
		refuse(dns, REFUSE_BUSY, &dns->from, ENOMEM);
		return;
	}
	q->io.complete = query_complete;
	q->dns = dns;
	q->fd = fd;
	q->inflight = 0;
	q->failed = false;
	q->agent = dns->from;
	memcpy(q->buf, dns->rx, len);
	memcpy(&q->id, dns->rx, 2);
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
static bool from_agent(struct ag_dns *dns)
{
	struct in_pktinfo pi;
	struct ag_netns ns;
	struct cmsghdr *c;

	for (c = CMSG_FIRSTHDR(&dns->msg); c; c = CMSG_NXTHDR(&dns->msg, c)) {
		if (c->cmsg_level != IPPROTO_IP || c->cmsg_type != IP_PKTINFO)
			continue;
		memcpy(&pi, CMSG_DATA(c), sizeof(pi));
		return !bpf_map_lookup_elem(dns->links_fd, &pi.ipi_ifindex, &ns) &&
		       ns.agent_ip4 == dns->from.sin_addr.s_addr &&
		       dns->msg.msg_namelen == sizeof(dns->from);
	}
	return false;
}

static void recv_arm(struct ag_dns *dns)
{
	struct io_uring_sqe *sqe = ag_loop_sqe(dns->l, &dns->io, OP_RECV);

	if (!sqe) {
		ag_log(AG_LOG_ERROR, "dns", "error=\"no submission queue entry; relay stopped\"");
		return;
	}
	dns->iov = (struct iovec){ .iov_base = dns->rx, .iov_len = sizeof(dns->rx) };
	dns->msg = (struct msghdr){ .msg_name = &dns->from,
				    .msg_namelen = sizeof(dns->from),
				    .msg_iov = &dns->iov,
				    .msg_iovlen = 1,
				    .msg_control = dns->cmsg.buf,
				    .msg_controllen = sizeof(dns->cmsg.buf) };
	io_uring_prep_recvmsg(sqe, dns->fd, &dns->msg, MSG_TRUNC);
}

static void recv_complete(struct ag_io *io, unsigned int op, const struct io_uring_cqe *cqe)
{
	struct ag_dns *dns = ag_container_of(io, struct ag_dns, io);
	int res = cqe->res;

	(void)op;
	if (dns->l->stopping)
		return;
	if (res < 0)
		refuse(dns, REFUSE_RECV, NULL, -res);
	else if (!from_agent(dns))
		refuse(dns, REFUSE_NOT_AGENT, &dns->from, 0);
	else if (res < MSG_MIN || res > MSG_MAX)
		refuse(dns, REFUSE_SIZE, &dns->from, 0);
	else if (!dns->l->d->conf.nr_resolvers)
		refuse(dns, REFUSE_NO_RESOLVER, &dns->from, 0);
	else if (dns->nr_queries >= QUERIES_MAX)
		refuse(dns, REFUSE_BUSY, &dns->from, 0);
	else
		query_start(dns, (size_t)res);
	recv_arm(dns);
}

int ag_dns_init(struct ag_loop *l, struct ag_dns **out, struct ag_err *err)
{
	struct ag_dns *dns;

	*out = NULL;
	if (l->d->dns_fd < 0)
		return 0;
	dns = calloc(1, sizeof(*dns));
	if (!dns)
		return ag_errf(err, ENOMEM, "dns relay: out of memory");
	dns->io.complete = recv_complete;
	dns->l = l;
	dns->fd = l->d->dns_fd;
	dns->links_fd = l->d->kern.map_fd[AG_MAP_NETNS_LINKS];
	ag_list_init(&dns->queries);
	recv_arm(dns);
	*out = dns;
	return 0;
}

void ag_dns_stop(struct ag_dns *dns)
{
	struct ag_list *n;

	if (!dns)
		return;
	ag_loop_cancel_fd(dns->l, dns->fd);
	for (n = dns->queries.next; n != &dns->queries; n = n->next)
		ag_loop_cancel_fd(dns->l, ag_container_of(n, struct query, node)->fd);
}

void ag_dns_fini(struct ag_dns *dns)
{
	free(dns);
}
