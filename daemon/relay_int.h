/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What relay.c (the connection, its copying halves) shares with
 * relay_splice.c (the halves the kernel splices): the state of a relayed
 * connection, whose diagram and ordering hazards are at relay.c's top.
 */
#ifndef AG_RELAY_INT_H
#define AG_RELAY_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "agentgate.h"
#include "fair.h"
#include "ring.h"

struct ag_loop;
struct ag_delegation;

enum conn_state {
	CONN_CONNECTING,
	CONN_RELAYING,
	CONN_CLOSING,
};

enum half_state {
	HALF_IDLE, /* before the upstream connect completed */
	HALF_RECV,
	HALF_NOBUF,
	HALF_SEND,
	HALF_SHUTDOWN,
	HALF_DONE,
	HALF_SPLICED,
	HALF_DRAIN,
};

enum conn_result {
	RESULT_OK,
	RESULT_CONNECT_FAILED,
	RESULT_RESET,
	RESULT_ERROR,
	RESULT_SHUTDOWN,
	RESULT_IDLE_TIMEOUT,
};

enum { HALF_UP, HALF_DOWN };

/* Operations, in the low bits of user_data. */
enum { OP_CONNECT = 1 };				       /* on conn.io */
enum { OP_RECV = 1, OP_SEND, OP_SHUTDOWN, OP_POLL, OP_DRAIN }; /* on half.io */

struct conn;

struct half {
	struct ag_io io;
	struct conn *c;
	struct ag_list wait; /* in relay->waiters while HALF_NOBUF */
	int from, to;
	enum half_state state;
	uint16_t bid;	      /* the pool buffer held in HALF_SEND, unless spilled */
	unsigned char *spill; /* what a full socket did not take, off the pool */
	uint32_t off, len;
	uint64_t bytes; /* delivered to `to` by the daemon */
	bool spliced;
	bool fin; /* shutdown(to, SHUT_WR) done: its FIN counts in to's written bytes */
	/* At the splice: what `from` had given the daemon, what `to` was given. */
	uint64_t taken0, written0;
	uint64_t cookie;    /* from's, while it has a flow in splice_flows; 0: none */
	uint8_t drain_step; /* HALF_DRAIN: how long it waits to look again (relay_splice.c) */
};

struct conn {
	struct ag_io io;
	struct ag_list node;   /* in relay->conns */
	struct ag_watch watch; /* the idle timeout, until CONN_CLOSING */
	struct ag_loop *l;
	enum conn_state state;
	enum conn_result result;
	int agent_fd, up_fd;
	unsigned int inflight;
	int error;		/* errno behind result, 0 if none */
	const char *error_side; /* "agent", "upstream" or "daemon" */
	uint64_t start_ns;
	struct ag_origin o;
	char agent[AG_NAME_LEN];
	struct ag_delegation *dg; /* a sub-agent's chain (admit.h), NULL for none */
	union {
		struct sockaddr sa;
		struct sockaddr_in sin;
		struct sockaddr_in6 sin6;
	} dst;
	socklen_t dst_len;
	struct half half[2];
	/* What the classifier read before the relay took over: sent first. */
	unsigned char *initial;
	size_t initial_len;
	bool splice_next; /* splice once the initial bytes went */
};

/* relay.c */
/* The first cause of a close is the one logged. */
void relay_conn_fail(struct conn *c, enum conn_result result, const char *side, int error);
/* An SQE counted in c->inflight, or NULL with c closed (EBUSY). */
struct io_uring_sqe *relay_conn_sqe(struct conn *c, struct ag_io *io, unsigned int op);
const char *relay_fd_side(const struct conn *c, int fd);
/* The half whose `from` has that cookie, NULL if none. */
struct half *relay_half_of(struct ag_loop *l, uint64_t cookie);
void relay_half_recv(struct half *h);
void relay_half_shutdown(struct half *h);

/* relay_splice.c */
/* Both halves, no I/O of theirs in flight: HALF_SPLICED if the kernel takes them, else copied. */
void relay_conn_splice(struct conn *c);
void relay_half_on_poll(struct half *h, const struct io_uring_cqe *cqe);
void relay_half_drain(struct half *h);
/* Before the sockets close: their flows leave splice_flows. */
void relay_conn_flows_del(struct conn *c);
struct relay_kept;
/* The verdict's notices, read if the instance splices (*k NULL if not); stop, then close. */
int relay_kept_open(struct ag_loop *l, struct relay_kept **k, struct ag_err *err);
void relay_kept_stop(struct relay_kept *k);
void relay_kept_close(struct relay_kept *k);
/* What h delivered to `to`, copied or spliced: before its sockets close. */
uint64_t relay_half_bytes(const struct half *h);
/* The watch's refresh (fair.h) of a connection whose bytes the kernel splices. */
void relay_conn_refresh(struct ag_watch *w);

#endif
