// SPDX-License-Identifier: GPL-2.0
/*
 * Classification (see classify.h).  Reading first bytes costs a wait, so
 * it happens only when a host name can change the outcome, or to tell a
 * refused agent why: a connection its destination already allows goes on
 * at once; one it refuses is read only so that an HTTP agent gets a 403
 * naming the reason instead of a bare reset.  A peek goes
 *
 *	PEEK_RECV --a host name, or no more bytes can tell--> PEEK_RESOLVE
 *	PEEK_RESOLVE --a name's lookup ended--> PEEK_RESOLVE (asks again)
 *	PEEK_RESOLVE --every name known--> decided: MCP path, relay or refused
 *
 * PEEK_RECV is one receive at a time into a buffer of its own, guarded by
 * a linked timeout: protocols whose server speaks first (SSH, SMTP) send
 * nothing, and after PEEK_TIMEOUT_MS they are decided without a host name.
 * The receives of one peek all end by the header timeout (fair.h), counted
 * from accept: a peer that trickles its first bytes is closed then, with
 * "header_timeout", and the MCP path's request head is due by the same time.
 *
 * A host name decides nothing by itself: the agent chose the address it
 * dialled, and that is where a relay goes.  So a name is honoured only
 * when that address is one the name resolves to (resolve.h), and the
 * address of a tool server (its "addresses", its upstream, what its exact
 * "hosts" resolve to) takes the MCP path whatever name the agent sends;
 * the MCP path refuses a Host it does not serve.  A name of a tool server
 * sent to another address is refused, never relayed: the agent's
 * credentials for that server must not reach whoever is there.
 *
 * Ordering hazards:
 *  - a peek in PEEK_RECV is freed only by the completion of its last
 *    receive, so a stop that cancels it never frees what the kernel may
 *    still write; in PEEK_RESOLVE nothing of it is in flight, and a stop
 *    unhooks its waiter and frees it at once;
 *  - what a lookup returns is valid until the next one (a later lookup can
 *    evict it), so each answer is used before the next name is asked.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "admit.h"
#include "classify.h"
#include "daemon.h"
#include "fair.h"
#include "loop.h"
#include "mcp.h"
#include "relay.h"
#include "resolve.h"
#include "stream.h"
#include "tls.h"

#define PEEK_TIMEOUT_MS 2000
/* Lookups a connection waits for, in all; each one ends within its own timeout. */
#define RESOLVE_WAIT_NS (5ull * 1000 * 1000 * 1000)
/*
 * A whole ClientHello record (16 KiB + header) or an HTTP head's start:
 * as much as the MCP path's input buffer takes, since every byte read
 * here must reach it.
 */
#define PEEK_MAX AG_STREAM_IN_SIZE
_Static_assert(PEEK_MAX >= 16 * 1024 + 5, "a whole TLS record fits a peek");

enum peek_state { PEEK_RECV, PEEK_RESOLVE };

struct peek {
	struct ag_io io;
	struct ag_list node;
	struct ag_loop *l;
	enum peek_state state;
	int fd;
	struct ag_admission a;
	struct __kernel_timespec ts;
	uint64_t head_ns; /* the first bytes are due by then (the header timeout) */
	/* PEEK_RESOLVE: what the first bytes said, and the lookup waited for. */
	char host[AG_HOST_LEN]; /* normalized (ag_host_norm); "" when none */
	bool tls;
	bool http; /* the first bytes were an HTTP request head */
	/*
	 * Set when the destination is refused whatever the bytes say: they
	 * are read only to tell an HTTP agent why (a 403), not to decide.
	 */
	const char *refuse;
	uint64_t resolve_deadline;
	struct ag_resolve_wait wait;
	size_t len;
	uint8_t buf[PEEK_MAX];
};

/* What the names of a connection resolved to, as far as its decision needs. */
struct facts {
	const struct ag_server_conf *srv_at; /* the server whose address was dialled */
	bool host_at;	 /* the agent's host name resolves to the address dialled */
	bool unresolved; /* a lookup failed: a mismatch may be no mismatch */
};

struct ag_classify {
	struct ag_list peeks;
};

/*
 * The Host field of an HTTP request head in buf, if the head is complete
 * enough to tell: 1 found, 0 not HTTP or no Host, -EAGAIN need more.  Only
 * a hint for routing: the MCP path's strict parser reads the head again
 * and refuses what does not agree.
 */
static int http_host(const uint8_t *buf, size_t len, char *out, size_t cap)
{
	const char *p = (const char *)buf, *end = p + len, *line, *eol;

	/* Request line: a token, SP.  Anything else is not HTTP. */
	for (line = p; line < end && *line != ' '; line++)
		if (*line < 'A' || *line > 'Z')
			return 0;
	if (line == end)
		return len < 16 ? -EAGAIN : 0;
	if (!(eol = memchr(p, '\n', len)))
		return -EAGAIN;
	for (line = eol + 1; line < end; line = eol + 1) {
		const char *v;
		size_t n;

		if (!(eol = memchr(line, '\n', end - line)))
			return -EAGAIN;
		if (eol == line || (eol == line + 1 && *line == '\r'))
			return 0; /* end of head, no Host */
		if (eol - line < 5 || strncasecmp(line, "host:", 5))
			continue;
		for (v = line + 5; v < eol && (*v == ' ' || *v == '\t'); v++)
			;
		for (n = eol - v; n && (v[n - 1] == '\r' || v[n - 1] == ' ' || v[n - 1] == '\t');
		     n--)
			;
		if (!n || n >= cap)
			return 0;
		memcpy(out, v, n);
		out[n] = '\0';
		return 1;
	}
	return -EAGAIN;
}

static void peek_free(struct peek *p)
{
	ag_list_del(&p->node);
	free(p);
}

/*
 * One name of the decision: 1 known (*at says whether the address dialled
 * is one of its), 0 waiting (p waits, unless it does already), -1 refused.
 */
static int lookup(struct peek *p, const char *name, bool *at, struct facts *f)
{
	const struct ag_resolve_set *set;
	int r = ag_resolve(p->l, name, &p->wait, &set);

	if (r < 0)
		return -1;
	if (r == 1) {
		*at = ag_resolve_has(set, p->a.o.addr);
		f->unresolved |= set->failed;
	}
	return r;
}

/* Every name the decision needs: 1 all known, 0 waiting, -1 refused. */
static int gather(struct peek *p, struct facts *f)
{
	const struct ag_conf *conf = &p->l->d->conf;
	const struct ag_agent_conf *ac = ag_conf_agent(conf, p->a.agent);
	int known = 1, r;
	bool at;

	*f = (struct facts){ .srv_at = ag_conf_server_at(conf, p->a.o.addr, p->a.o.port) };
	/* The exact names of the servers on this port: is the address theirs? */
	for (int i = 0; !f->srv_at && i < conf->nr_servers; i++) {
		const struct ag_server_conf *s = &conf->servers[i];

		if (!ag_server_port_ok(s, p->a.o.port))
			continue;
		for (int j = 0; j < s->nr_hosts; j++) {
			if (!strncmp(s->hosts[j], "*.", 2))
				continue;
			at = false;
			if ((r = lookup(p, s->hosts[j], &at, f)) < 0)
				return -1;
			known &= r;
			if (r && at) {
				f->srv_at = s;
				break;
			}
		}
	}
	/* The agent's name, when an entry would take it. */
	if (p->host[0] && (ag_conf_server_named(conf, p->a.o.port, p->host) ||
			   ag_conf_pass_match(conf, ac, p->a.o.addr, p->a.o.port, p->host, false) ==
			       AG_PASS_NAMED)) {
		if ((r = lookup(p, p->host, &f->host_at, f)) < 0)
			return -1;
		known &= r;
	}
	return known;
}

/* A refusal told the agent's way: a 403 to an HTTP request, else a reset. */
static void refuse(struct peek *p, const char *reason)
{
	if (p->http)
		ag_admit_refuse_http(p->l, p->fd, reason, &p->a);
	else
		ag_admit_refuse(p->l, p->fd, reason, &p->a);
}

static void decide(struct peek *p, const struct facts *f)
{
	struct ag_loop *l = p->l;
	const struct ag_conf *conf = &l->d->conf;
	const struct ag_agent_conf *ac = ag_conf_agent(conf, p->a.agent);
	const struct ag_server_conf *named = ag_conf_server_named(conf, p->a.o.port, p->host);
	const char *host = p->host[0] ? p->host : NULL;

	/* A tool server's address is governed, whatever name the agent sends. */
	if (f->srv_at) {
		ag_mcp_start(l, p->fd, &p->a, f->srv_at, p->buf, p->len, p->tls, p->head_ns);
		return;
	}
	if (named && f->host_at) {
		ag_mcp_start(l, p->fd, &p->a, named, p->buf, p->len, p->tls, p->head_ns);
		return;
	}
	/* Fail closed: a tool server's name at another address is not that server. */
	if (named) {
		refuse(p, f->unresolved ? "unresolved" : "host_mismatch");
		return;
	}
	switch (ag_conf_pass_match(conf, ac, p->a.o.addr, p->a.o.port, host, f->host_at)) {
	case AG_PASS_ALLOW:
		ag_relay_start(l, p->fd, &p->a, p->buf, p->len);
		return;
	case AG_PASS_NAMED:
		/* Fail closed: the name is allowed, the address it was sent to is not its. */
		refuse(p, f->unresolved ? "unresolved" : "host_mismatch");
		return;
	case AG_PASS_DENY:
		break;
	}
	/* Fail closed: nothing allows this destination. */
	refuse(p, "not_allowed");
}

/* PEEK_RESOLVE: decides once every name is known; false while waiting. */
static bool resolve_step(struct peek *p)
{
	struct facts f;
	int r = gather(p, &f);

	if (r == 0 && ag_now_ns() < p->resolve_deadline)
		return false;
	ag_resolve_wait_cancel(&p->wait);
	if (r == 1)
		decide(p, &f);
	else /* Fail closed: what cannot be resolved in time is not allowed. */
		refuse(p, r ? "busy" : "unresolved");
	return true;
}

static void resolved(struct ag_resolve_wait *w)
{
	struct peek *p = ag_container_of(w, struct peek, wait);

	if (resolve_step(p))
		peek_free(p);
}

/* PEEK_RECV -> PEEK_RESOLVE, which may decide at once. */
static void resolve_start(struct peek *p, const char *host, bool tls)
{
	p->state = PEEK_RESOLVE;
	p->tls = tls;
	if (!ag_host_norm(host, p->host))
		p->host[0] = '\0';
	p->resolve_deadline = ag_now_ns() + RESOLVE_WAIT_NS;
	resolve_step(p);
}

/* The receive's part is over: p goes unless a lookup still holds it. */
static void peek_settle(struct peek *p)
{
	if (p->state != PEEK_RESOLVE || ag_list_empty(&p->wait.node))
		peek_free(p);
}

static void peek_recv(struct peek *p);

/* What the bytes so far say; false when more are needed and can come. */
static bool peek_done(struct peek *p, bool final)
{
	char host[AG_HOST_LEN] = "";
	bool tls = ag_tls_looks_like(p->buf, p->len);
	int r;

	if (tls)
		r = ag_tls_client_hello_sni(p->buf, p->len, host, sizeof(host));
	else
		r = http_host(p->buf, p->len, host, sizeof(host));
	if (r == -EAGAIN && !final && p->len < PEEK_MAX)
		return false;
	if (r != 1)
		host[0] = '\0';
	p->http = !tls && r == 1;
	if (p->refuse) {
		refuse(p, p->refuse);
		return true;
	}
	resolve_start(p, host, tls);
	return true;
}

static void peek_complete(struct ag_io *io, unsigned int op, const struct io_uring_cqe *cqe)
{
	struct peek *p = ag_container_of(io, struct peek, io);
	int res = cqe->res;

	if (p->l->stopping) {
		ag_fair_release(p->l, p->fd);
		close(p->fd);
		peek_free(p);
		return;
	}
	if (res == -EINTR || res == -EAGAIN) {
		peek_recv(p);
		return;
	}
	if (res > 0) {
		p->len += res;
		if (!peek_done(p, false))
			peek_recv(p);
		else
			peek_settle(p);
		return;
	}
	/* ECANCELED: the timeout; 0: the agent sent nothing and closed. */
	if (res == -ECANCELED && p->len && ag_now_ns() >= p->head_ns) {
		/* Fail closed: a trickle of first bytes holds no slot for long. */
		ag_admit_refuse(p->l, p->fd, p->refuse ? p->refuse : "header_timeout", &p->a);
	} else if (res == -ECANCELED || (res == 0 && p->len)) {
		peek_done(p, true);
	} else if (p->refuse) {
		/* Gone without a byte: refused all the same, and on record. */
		ag_admit_refuse(p->l, p->fd, p->refuse, &p->a);
	} else {
		ag_log(AG_LOG_DEBUG, "classify", "agent=%s result=closed error=%d", p->a.agent,
		       -res);
		ag_fair_release(p->l, p->fd);
		close(p->fd);
	}
	peek_settle(p);
}

static void peek_recv(struct peek *p)
{
	struct ag_loop *l = p->l;
	uint64_t now = ag_now_ns(), left = p->head_ns > now ? p->head_ns - now : 0;
	uint64_t wait = (uint64_t)PEEK_TIMEOUT_MS * 1000000;
	struct io_uring_sqe *sqe;

	/* Read within the header timeout; at least 1 ns, 0 would be no timeout. */
	wait = left < wait ? left : wait;
	wait = wait ? wait : 1;
	p->ts.tv_sec = (long long)(wait / 1000000000);
	p->ts.tv_nsec = (long long)(wait % 1000000000);
	if (!ag_ring_reserve(&l->ring, 2) || !(sqe = ag_ring_sqe(&l->ring, &p->io, 1))) {
		ag_admit_refuse(l, p->fd, "busy", &p->a);
		peek_free(p);
		return;
	}
	io_uring_prep_recv(sqe, p->fd, p->buf + p->len, PEEK_MAX - p->len, 0);
	ag_ring_link_timeout(&l->ring, sqe, &p->ts, 0);
}

void ag_route(struct ag_loop *l, int fd, const struct ag_admission *a)
{
	const struct ag_conf *conf = &l->d->conf;
	const struct ag_agent_conf *ac = ag_conf_agent(conf, a->agent);
	const uint8_t *addr = a->o.addr;
	uint16_t port = a->o.port;
	const char *refusal = NULL;
	struct peek *p;

	/* Neither a tool server nor a host name can apply: no lookups. */
	if (!ag_conf_server_at(conf, addr, port) && !ag_conf_server_port(conf, port) &&
	    !ag_conf_pass_needs_host(conf, ac)) {
		if (ag_conf_pass_match(conf, ac, addr, port, NULL, false) == AG_PASS_ALLOW) {
			ag_relay_start(l, fd, a, NULL, 0);
			return;
		}
		/* Fail closed: nothing allows this destination; the bytes only say how to tell. */
		refusal = "not_allowed";
	}
	if (!(p = calloc(1, sizeof(*p)))) {
		ag_admit_refuse(l, fd, "out_of_memory", a);
		return;
	}
	p->io.complete = peek_complete;
	p->wait.done = resolved;
	ag_list_init(&p->wait.node);
	p->l = l;
	p->fd = fd;
	p->a = *a;
	p->head_ns = ag_fair_head_due(l);
	p->refuse = refusal;
	ag_list_add_tail(&l->classify->peeks, &p->node);
	peek_recv(p);
}

int ag_classify_init(struct ag_loop *l, struct ag_err *err)
{
	if (!(l->classify = calloc(1, sizeof(*l->classify))))
		return ag_errf(err, ENOMEM, "classify: out of memory");
	ag_list_init(&l->classify->peeks);
	return 0;
}

void ag_classify_stop(struct ag_loop *l)
{
	struct ag_list *pos, *next;

	for (pos = l->classify->peeks.next; pos != &l->classify->peeks; pos = next) {
		struct peek *p = ag_container_of(pos, struct peek, node);

		next = pos->next;
		if (p->state == PEEK_RECV) {
			ag_ring_cancel_fd(&l->ring, p->fd);
			continue;
		}
		/* Nothing in flight: the lookup's waiter is all that holds it. */
		ag_resolve_wait_cancel(&p->wait);
		ag_fair_release(l, p->fd);
		close(p->fd);
		peek_free(p);
	}
}

void ag_classify_fini(struct ag_loop *l)
{
	free(l->classify);
	l->classify = NULL;
}
