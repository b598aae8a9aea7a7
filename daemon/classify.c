// SPDX-License-Identifier: GPL-2.0
/*
 * Classification (see classify.h).  Reading first bytes costs a wait, so
 * it happens only when a host name can change the outcome; a connection
 * whose fate its destination already decides goes on at once.
 *
 * A peek is one receive at a time into a buffer of its own, guarded by a
 * linked timeout: protocols whose server speaks first (SSH, SMTP) send
 * nothing, and after PEEK_TIMEOUT_MS they are decided without a host name.
 * Its struct is freed only by the completion of its last receive, so a
 * stop that cancels it never frees what the kernel may still write.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "classify.h"
#include "mcp.h"
#include "relay.h"
#include "tls.h"

#define PEEK_TIMEOUT_MS 2000
/* A whole ClientHello record (16 KiB + header) or an HTTP head's start. */
#define PEEK_MAX (16 * 1024 + 5)

struct peek {
	struct ag_io io;
	struct ag_list node;
	struct ag_loop *l;
	int fd;
	struct ag_origin o;
	char agent[AG_NAME_LEN];
	struct __kernel_timespec ts;
	size_t len;
	uint8_t buf[PEEK_MAX];
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
		for (n = eol - v; n && (v[n - 1] == '\r' || v[n - 1] == ' ' || v[n - 1] == '\t'); n--)
			;
		if (!n || n >= cap)
			return 0;
		memcpy(out, v, n);
		out[n] = '\0';
		return 1;
	}
	return -EAGAIN;
}

static void decide(struct ag_loop *l, int fd, const struct ag_origin *o, const char *agent,
		   const char *host, const uint8_t *buf, size_t len, bool tls)
{
	const struct ag_conf *conf = &l->d->conf;
	const struct ag_agent_conf *ac = ag_conf_agent(conf, agent);
	const struct ag_server_conf *srv = ag_conf_match_server(conf, o->addr, o->port, host);

	if (srv) {
		ag_mcp_start(l, fd, o, agent, srv, buf, len, tls);
		return;
	}
	if (ag_conf_pass_allows(conf, ac, o->addr, o->port, host)) {
		ag_relay_start(l, fd, o, agent, buf, len);
		return;
	}
	ag_relay_reject(l, fd, "not_allowed", o);
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
	decide(p->l, p->fd, &p->o, p->agent, host[0] ? host : NULL, p->buf, p->len, tls);
	return true;
}

static void peek_free(struct peek *p)
{
	ag_list_del(&p->node);
	free(p);
}

static void peek_complete(struct ag_io *io, unsigned int op, const struct io_uring_cqe *cqe)
{
	struct peek *p = ag_container_of(io, struct peek, io);
	int res = cqe->res;

	if (p->l->stopping) {
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
			peek_free(p);
		return;
	}
	/* ECANCELED: the timeout; 0: the agent sent nothing and closed. */
	if (res == -ECANCELED || (res == 0 && p->len)) {
		peek_done(p, true);
	} else {
		ag_log(AG_LOG_DEBUG, "classify", "agent=%s result=closed error=%d", p->agent, -res);
		close(p->fd);
	}
	peek_free(p);
}

static void peek_recv(struct peek *p)
{
	struct ag_loop *l = p->l;
	struct io_uring_sqe *sqe;

	if (!ag_loop_reserve(l, 2) || !(sqe = ag_loop_sqe(l, &p->io, 1))) {
		ag_relay_reject(l, p->fd, "busy", &p->o);
		peek_free(p);
		return;
	}
	io_uring_prep_recv(sqe, p->fd, p->buf + p->len, PEEK_MAX - p->len, 0);
	sqe->flags |= IOSQE_IO_LINK;
	io_uring_prep_link_timeout(ag_loop_sqe_untracked(l), &p->ts, 0);
}

void ag_route(struct ag_loop *l, int fd, const struct ag_origin *o, const char *agent)
{
	const struct ag_conf *conf = &l->d->conf;
	const struct ag_agent_conf *ac = ag_conf_agent(conf, agent);
	struct peek *p;

	/* Neither a tool server nor a host-named pass-through can apply. */
	if (!ag_conf_match_server(conf, o->addr, o->port, NULL) &&
	    !ag_conf_server_port(conf, o->port) && !ag_conf_pass_needs_host(conf, ac)) {
		decide(l, fd, o, agent, NULL, NULL, 0, false);
		return;
	}
	if (!(p = calloc(1, sizeof(*p)))) {
		ag_relay_reject(l, fd, "out_of_memory", o);
		return;
	}
	p->io.complete = peek_complete;
	p->l = l;
	p->fd = fd;
	p->o = *o;
	snprintf(p->agent, sizeof(p->agent), "%s", agent);
	p->ts.tv_sec = PEEK_TIMEOUT_MS / 1000;
	p->ts.tv_nsec = (long long)(PEEK_TIMEOUT_MS % 1000) * 1000000;
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
	struct ag_list *pos;

	for (pos = l->classify->peeks.next; pos != &l->classify->peeks; pos = pos->next)
		ag_loop_cancel_fd(l, ag_container_of(pos, struct peek, node)->fd);
}

void ag_classify_fini(struct ag_loop *l)
{
	free(l->classify);
	l->classify = NULL;
}
