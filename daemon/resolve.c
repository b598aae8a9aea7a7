// SPDX-License-Identifier: GPL-2.0
/*
 * Name lookups and their cache (resolve.h).  A name's cache entry goes
 *
 *	(new) --ag_resolve--> PENDING --both queries ended--> READY --TTL over,
 *	asked again--> PENDING ...
 *
 * and READY entries are evicted, soonest to expire first, to make room
 * for a new name once CACHE_MAX are cached.  An entry from /etc/hosts is
 * READY for the daemon's life and never evicted.  Each lookup is two
 * queries, A and AAAA, each on a socket of its own connected to the
 * resolver (a fresh source port each, and the kernel delivers only the
 * resolver's datagrams):
 *
 *	send --LINK--> recv the answer --LINK--> timeout (absolute)
 *
 * An answer that is not the one asked for (another id, another question,
 * malformed) is dropped and the receive re-armed against the same
 * deadline, as in dns.c.  Lifetimes and TTLs are clamped to
 * [TTL_MIN_S, TTL_MAX_S]; a name that does not exist or has no address is
 * cached for NEG_TTL_S, and so is a failed lookup, so that neither a
 * flood of one name nor a dead resolver costs a query per connection.
 *
 * Ordering hazards:
 *  - a query is freed when its last operation completed (q->inflight) and
 *    its entry only once no query of it is left (e->queries), so no
 *    completion finds freed memory;
 *  - a waiter's done() may ask for other names, which can evict the entry
 *    that just became READY: its waiters are moved to a list of their own
 *    first, and the entry is not touched after that;
 *  - once the loop stops, completions only drop counts: nobody is woken.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "daemon.h"
#include "loop.h"
#include "resolve.h"
#include "tls.h"

#define HOSTS_FILE "/etc/hosts"
#define HOSTS_MAX 256 /* names taken from it */
#define CACHE_MAX 1024
#define TTL_MIN_S 5
#define TTL_MAX_S 3600
#define NEG_TTL_S 5
#define QUERY_TIMEOUT_NS (3ull * 1000 * 1000 * 1000)
#define MSG_MAX 1232 /* more than a UDP answer without EDNS can be */
#define NS_PER_S 1000000000ull

enum entry_state { ENTRY_PENDING, ENTRY_READY };

struct entry {
	struct ag_list node; /* in r->entries */
	char name[AG_HOST_LEN];
	enum entry_state state;
	bool permanent; /* /etc/hosts */
	unsigned int queries;
	uint64_t expires_ns;
	uint32_t ttl; /* smallest of the answers so far */
	struct ag_resolve_set set;
	struct ag_list waiters;
};

struct query {
	struct ag_io io;
	struct ag_list node; /* in r->queries */
	struct ag_resolve *r;
	struct entry *e;
	int fd;
	unsigned int inflight;
	uint16_t id, qtype;
	int result; /* of ag_dnsmsg_parse, or -errno of the I/O */
	struct ag_dnsmsg_answer ans;
	struct __kernel_timespec deadline; /* CLOCK_MONOTONIC, absolute */
	size_t qlen;
	uint8_t q[AG_DNSMSG_QUERY_MAX];
	uint8_t buf[MSG_MAX];
};

struct ag_resolve {
	struct ag_loop *l;
	struct ag_list entries;
	struct ag_list queries;
	unsigned int nr_cached;	       /* not counting /etc/hosts */
	struct ag_resolve_set literal; /* the answer for an IP literal */
};

bool ag_resolve_has(const struct ag_resolve_set *s, const uint8_t addr[16])
{
	for (int i = 0; i < s->nr; i++)
		if (!memcmp(s->addr[i], addr, 16))
			return true;
	return false;
}

static void set_add(struct ag_resolve_set *s, const uint8_t addr[16])
{
	if (s->nr < AG_RESOLVE_MAX_ADDRS && !ag_resolve_has(s, addr))
		memcpy(s->addr[s->nr++], addr, 16);
}

int ag_resolver_socket(const struct ag_conf *c)
{
	union {
		struct sockaddr sa;
		struct sockaddr_in sin;
		struct sockaddr_in6 sin6;
	} to = { 0 };
	socklen_t len;
	int fd;

	if (!c->nr_resolvers)
		return -ENOENT;
	if (ag_addr_is_v4(c->resolvers[0])) {
		to.sin.sin_family = AF_INET;
		to.sin.sin_port = htons(c->resolver_port);
		memcpy(&to.sin.sin_addr, c->resolvers[0] + 12, 4);
		len = sizeof(to.sin);
	} else {
		to.sin6.sin6_family = AF_INET6;
		to.sin6.sin6_port = htons(c->resolver_port);
		memcpy(&to.sin6.sin6_addr, c->resolvers[0], 16);
		len = sizeof(to.sin6);
	}
	fd = socket(to.sa.sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* The daemon's mark, as on every socket of its own. */
	if (setsockopt(fd, SOL_SOCKET, SO_MARK, &c->mark, sizeof(c->mark)) ||
	    connect(fd, &to.sa, len)) {
		int e = errno;

		close(fd);
		return -e;
	}
	return fd;
}

static struct entry *entry_find(struct ag_resolve *r, const char *name)
{
	for (struct ag_list *n = r->entries.next; n != &r->entries; n = n->next) {
		struct entry *e = ag_container_of(n, struct entry, node);

		if (!strcmp(e->name, name))
			return e;
	}
	return NULL;
}

/* Room for one more: the READY entry that expires first goes. */
static bool evict_one(struct ag_resolve *r)
{
	struct entry *victim = NULL;

	for (struct ag_list *n = r->entries.next; n != &r->entries; n = n->next) {
		struct entry *e = ag_container_of(n, struct entry, node);

		if (e->permanent || e->state != ENTRY_READY)
			continue;
		if (!victim || e->expires_ns < victim->expires_ns)
			victim = e;
	}
	if (!victim)
		return false;
	ag_list_del(&victim->node);
	r->nr_cached--;
	free(victim);
	return true;
}

static struct entry *entry_new(struct ag_resolve *r, const char *name, bool permanent)
{
	struct entry *e;

	if (!permanent && r->nr_cached >= CACHE_MAX && !evict_one(r))
		return NULL;
	if (!(e = calloc(1, sizeof(*e))))
		return NULL;
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->permanent = permanent;
	e->state = ENTRY_READY;
	ag_list_init(&e->waiters);
	ag_list_add_tail(&r->entries, &e->node);
	if (!permanent)
		r->nr_cached++;
	return e;
}

/* PENDING -> READY: the set is final, its lifetime starts, waiters wake. */
static void entry_ready(struct entry *e)
{
	struct ag_list woken;
	uint32_t ttl = e->set.nr ? e->ttl : NEG_TTL_S;

	if (e->set.failed && ttl > NEG_TTL_S)
		ttl = NEG_TTL_S; /* what failed is asked again soon */
	ttl = ttl < TTL_MIN_S ? TTL_MIN_S : ttl > TTL_MAX_S ? TTL_MAX_S : ttl;
	e->state = ENTRY_READY;
	e->expires_ns = ag_now_ns() + ttl * NS_PER_S;
	ag_list_init(&woken);
	if (!ag_list_empty(&e->waiters)) {
		woken.next = e->waiters.next;
		woken.prev = e->waiters.prev;
		woken.next->prev = woken.prev->next = &woken;
		ag_list_init(&e->waiters);
	}
	while (!ag_list_empty(&woken)) {
		struct ag_resolve_wait *w =
		    ag_container_of(woken.next, struct ag_resolve_wait, node);

		ag_list_del(&w->node);
		w->done(w);
	}
}

/* The query's outcome joins its entry's set. */
static void query_merge(struct query *q)
{
	struct entry *e = q->e;

	if (q->result == 0) {
		for (int i = 0; i < q->ans.nr; i++)
			set_add(&e->set, q->ans.addr[i]);
		if (q->ans.nr && (!e->ttl || q->ans.ttl < e->ttl))
			e->ttl = q->ans.ttl ? q->ans.ttl : 1;
	} else if (q->result != -ENOENT) {
		/* Fail closed: what is not known is not there. */
		e->set.failed = true;
	}
}

static void query_put(struct query *q)
{
	struct ag_loop *l = q->r->l;
	struct entry *e = q->e;

	if (--q->inflight)
		return;
	close(q->fd);
	ag_list_del(&q->node);
	query_merge(q);
	free(q);
	if (!--e->queries && !l->stopping)
		entry_ready(e);
}

unsigned int ag_resolver_exchange(struct ag_loop *l, struct ag_io *io, int fd, const void *query,
				  size_t qlen, void *buf, size_t cap,
				  struct __kernel_timespec *deadline)
{
	struct io_uring_sqe *sqe;
	unsigned int n = 0;

	/* One submit for the whole chain: a link never spans two. */
	if (!ag_ring_reserve(&l->ring, query ? 3 : 2))
		return 0;
	if (query) {
		sqe = ag_ring_sqe(&l->ring, io, AG_RESOLVER_SEND);
		io_uring_prep_send(sqe, fd, query, qlen, 0);
		sqe->flags |= IOSQE_IO_LINK;
		n++;
	}
	sqe = ag_ring_sqe(&l->ring, io, AG_RESOLVER_ANSWER);
	/* MSG_TRUNC: the result is the datagram's real length, so oversize shows. */
	io_uring_prep_recv(sqe, fd, buf, cap, MSG_TRUNC);
	ag_ring_link_timeout(&l->ring, sqe, deadline, IORING_TIMEOUT_ABS);
	return n + 1;
}

/* The answer's receive, behind the query's send or alone: false if not armed. */
static bool arm_answer(struct query *q, bool after_send)
{
	unsigned int n = ag_resolver_exchange(q->r->l, &q->io, q->fd, after_send ? q->q : NULL,
					      q->qlen, q->buf, sizeof(q->buf), &q->deadline);

	q->inflight += n;
	return n;
}

static void query_complete(struct ag_io *io, unsigned int op, const struct io_uring_cqe *cqe)
{
	struct query *q = ag_container_of(io, struct query, io);
	int res = cqe->res;

	if (q->r->l->stopping) {
		q->result = -ECANCELED;
	} else if (res < 0) {
		/* A failed send cancels the receive behind it: the first error stays. */
		if (!q->result || q->result == -EINPROGRESS)
			q->result = res;
	} else if (op == AG_RESOLVER_ANSWER) {
		q->result = res > MSG_MAX ? -EMSGSIZE
					  : ag_dnsmsg_parse(q->buf, (size_t)res, q->id, q->e->name,
							    q->qtype, &q->ans);
		/* Not the answer to this question: the right one may still come. */
		if (q->result == -EPROTO && arm_answer(q, false))
			q->result = -EINPROGRESS;
	}
	query_put(q);
}

static uint16_t query_id(void)
{
	uint16_t id;

	if (getrandom(&id, sizeof(id), GRND_NONBLOCK) != sizeof(id))
		id = (uint16_t)(ag_now_ns() >> 7);
	return id;
}

/* One query of e's lookup under way; false when it could not start. */
static bool query_start(struct ag_resolve *r, struct entry *e, uint16_t qtype)
{
	const struct ag_conf *c = &r->l->d->conf;
	uint64_t at = ag_now_ns() + QUERY_TIMEOUT_NS;
	struct query *q = calloc(1, sizeof(*q));
	int len;

	if (!q)
		return false;
	q->io.complete = query_complete;
	q->r = r;
	q->e = e;
	q->id = query_id();
	q->qtype = qtype;
	q->result = -EINPROGRESS;
	q->deadline =
	    (struct __kernel_timespec){ .tv_sec = at / NS_PER_S, .tv_nsec = at % NS_PER_S };
	len = ag_dnsmsg_query(q->q, sizeof(q->q), q->id, e->name, qtype);
	if (len < 0 || (q->fd = ag_resolver_socket(c)) < 0) {
		free(q);
		return false;
	}
	q->qlen = (size_t)len;
	if (!arm_answer(q, true)) {
		close(q->fd);
		free(q);
		return false;
	}
	ag_list_add_tail(&r->queries, &q->node);
	e->queries++;
	return true;
}

/* READY (new or expired) -> PENDING, or READY and failed at once. */
static void lookup_start(struct ag_resolve *r, struct entry *e)
{
	memset(&e->set, 0, sizeof(e->set));
	e->ttl = 0;
	e->state = ENTRY_PENDING;
	/* Fail closed: a name that cannot be asked has no address. */
	if (!query_start(r, e, AG_DNS_A))
		e->set.failed = true;
	if (!query_start(r, e, AG_DNS_AAAA))
		e->set.failed = true;
	if (!e->queries)
		entry_ready(e);
}

static bool literal(struct ag_resolve *r, const char *name)
{
	int plen;

	memset(&r->literal, 0, sizeof(r->literal));
	if (ag_addr_parse(name, r->literal.addr[0], &plen) || plen != 128)
		return false;
	r->literal.nr = 1;
	return true;
}

int ag_resolve(struct ag_loop *l, const char *name, struct ag_resolve_wait *w,
	       const struct ag_resolve_set **out)
{
	struct ag_resolve *r = l->resolve;
	struct entry *e;

	if (literal(r, name)) {
		*out = &r->literal;
		return 1;
	}
	e = entry_find(r, name);
	if (!e && !(e = entry_new(r, name, false)))
		return -EBUSY;
	if (e->state == ENTRY_READY && !e->permanent && ag_now_ns() >= e->expires_ns)
		lookup_start(r, e);
	if (e->state == ENTRY_READY) {
		*out = &e->set;
		return 1;
	}
	if (w && ag_list_empty(&w->node))
		ag_list_add_tail(&e->waiters, &w->node);
	return 0;
}

void ag_resolve_wait_cancel(struct ag_resolve_wait *w)
{
	ag_list_del(&w->node);
}

static void hosts_add(struct ag_resolve *r, const char *name, const uint8_t addr[16])
{
	char lower[AG_HOST_LEN];
	struct entry *e;
	size_t n = strlen(name);

	if (n >= sizeof(lower))
		return;
	memcpy(lower, name, n + 1);
	ag_ascii_lower(lower);
	if (!ag_tls_dns_name_valid(lower, n))
		return;
	if ((e = entry_find(r, lower)) || (e = entry_new(r, lower, true)))
		set_add(&e->set, addr);
}

/*
 * "ADDR NAME [ALIAS...]" lines, '#' comments; what does not parse is
 * skipped, as the C library does.  localhost is always the loopback.
 */
static void hosts_read(struct ag_resolve *r)
{
	static const uint8_t lo4[16] = { [10] = 0xff, [11] = 0xff, 127, 0, 0, 1 };
	static const uint8_t lo6[16] = { [15] = 1 };
	char line[1024], *save, *tok, *hash;
	int names = 0, plen;
	uint8_t addr[16];
	FILE *f;

	hosts_add(r, "localhost", lo4);
	hosts_add(r, "localhost", lo6);
	if (!(f = fopen(HOSTS_FILE, "re")))
		return;
	while (fgets(line, sizeof(line), f) && names < HOSTS_MAX) {
		if ((hash = strchr(line, '#')))
			*hash = '\0';
		tok = strtok_r(line, " \t\r\n", &save);
		if (!tok || ag_addr_parse(tok, addr, &plen) || plen != 128)
			continue;
		while ((tok = strtok_r(NULL, " \t\r\n", &save)) && names < HOSTS_MAX) {
			hosts_add(r, tok, addr);
			names++;
		}
	}
	fclose(f);
}

int ag_resolve_init(struct ag_loop *l, struct ag_err *err)
{
	struct ag_resolve *r = calloc(1, sizeof(*r));

	if (!r)
		return ag_errf(err, ENOMEM, "resolve: out of memory");
	r->l = l;
	ag_list_init(&r->entries);
	ag_list_init(&r->queries);
	l->resolve = r;
	hosts_read(r);
	return 0;
}

void ag_resolve_stop(struct ag_loop *l)
{
	struct ag_resolve *r = l->resolve;

	for (struct ag_list *n = r->queries.next; n != &r->queries; n = n->next)
		ag_ring_cancel_fd(&l->ring, ag_container_of(n, struct query, node)->fd);
}

void ag_resolve_fini(struct ag_loop *l)
{
	struct ag_resolve *r = l->resolve;

	if (!r)
		return;
	while (!ag_list_empty(&r->entries)) {
		struct entry *e = ag_container_of(r->entries.next, struct entry, node);

		ag_list_del(&e->node);
		free(e);
	}
	free(r);
	l->resolve = NULL;
}
