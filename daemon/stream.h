/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A buffered byte stream over one socket, driven by the ring, optionally
 * wrapped in TLS (lib/tls.h, memory BIOs): the MCP path's view of each
 * side of a governed connection.  The relay (relay.c) does without it
 * because it never looks at the bytes; the MCP path must parse them, so
 * it reads into a buffer of its own and writes through a queue.
 *
 * Lifetime: every SQE a stream issues counts in its owner's inflight, and
 * a completion that finds the owner closing only drops its count, so the
 * owner frees its streams once inflight is 0 (ag_stream_owner_put).
 */
#ifndef AG_STREAM_H
#define AG_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "ring.h"
#include "spares.h"

struct ag_loop;

struct ag_tls;
struct ag_stream_dial;

/* A piece of the write queue.  Appending to the tail's free room is safe
 * while the tail is being sent: a send covers only the bytes it was given. */
struct ag_chunk {
	struct ag_chunk *next;
	size_t off, len, cap;
	uint8_t data[];
};

enum ag_stream_ev {
	AG_STREAM_READ,	     /* new bytes in ag_stream_data() */
	AG_STREAM_EOF,	     /* the peer finished sending (bytes may remain) */
	AG_STREAM_ERROR,     /* s->error says why; the stream is dead */
	AG_STREAM_DRAINED,   /* the write queue fell below the low mark */
	AG_STREAM_CONNECTED, /* ag_stream_connect succeeded (and TLS is up) */
	AG_STREAM_SHUT,	     /* everything queued went out, the write side is shut */
};

struct ag_stream_owner {
	unsigned int inflight;
	bool closing;
	void (*release)(struct ag_stream_owner *o);
};

/* Drops one count of the owner; releases it when closing and none is left. */
void ag_stream_owner_put(struct ag_stream_owner *o);

/*
 * Plaintext received and not consumed yet.  It holds what the classifier
 * read before the MCP path started (up to a whole TLS record with its
 * header, classify.c), which ag_stream_preload must take whole.  The
 * buffer exists only while bytes are on their way: a stream waiting for
 * its peer holds none (stream.c).
 */
#define AG_STREAM_IN_SIZE (32 * 1024)
/* Writers stop producing above this many queued bytes (backpressure). */
#define AG_STREAM_HIGH_WATER (256 * 1024)

/*
 * The loop's spare stream buffers (lib/spares.h): a keep-alive connection
 * that gives its receive buffer and its send chunk back after a request
 * takes them again for the next one, without a malloc and a free of 48
 * KiB.  Kept only while the loop has streams: the last one to go frees
 * them, so a loop without connections holds none.
 */
struct ag_stream_spares {
	unsigned int streams;	/* initialised and not finished yet */
	struct ag_spares in;	/* AG_STREAM_IN_SIZE: in and net */
	struct ag_spares chunk; /* chunks of the usual capacity (stream.c) */
};

struct ag_stream {
	struct ag_io io;
	struct ag_loop *l;
	struct ag_list send_due; /* in l->send_due while a send waits for the flush */
	struct ag_stream_owner *owner;
	void (*event)(struct ag_stream *s, enum ag_stream_ev ev);
	void *ctx;	  /* the owner's, for event() */
	const char *side; /* "agent" or "upstream", for messages */
	int fd;
	struct ag_tls *tls;
	bool tls_up;	  /* handshake done */
	bool wipe;	  /* what is sent may hold a credential: wiped before reuse or free */
	bool connecting;  /* a CONNECTED event is due */
	bool tcp_pending; /* the connect SQE is in flight: nothing can be sent */
	bool recv_armed;
	bool send_armed;
	bool eof;	   /* the peer's EOF (or close_notify) seen */
	bool shut_pending; /* shut down the write side once the queue is empty */
	bool shut_done;
	bool failed;
	bool was_high; /* the queue went above the high mark: DRAINED is due */
	bool more;     /* the last receive filled its buffer: more may be waiting */
	bool counted;  /* in l->spares.streams: between init and fini */
	int error;
	const char *why; /* once failed: TLS failures say more than an errno */
	/* Plaintext received: in[in_off, in_off + in_len); NULL while waiting. */
	uint8_t *in;
	size_t in_off, in_len;
	/* TLS only: ciphertext receive buffer, NULL while waiting. */
	uint8_t *net;
	/* Bytes to send (ciphertext under TLS), oldest chunk first. */
	struct ag_chunk *head, *tail;
	size_t out_len;
	uint64_t bytes_in, bytes_out; /* plaintext */
	/* Only a connecting stream's: what its connect SQE reads. */
	struct ag_stream_dial *dial;
};

void ag_stream_init(struct ag_stream *s, struct ag_loop *l, struct ag_stream_owner *owner, int fd,
		    const char *side);
/* Frees the buffers and the TLS state and closes fd; only at inflight 0. */
void ag_stream_fini(struct ag_stream *s);
/* Bytes received and not yet consumed. */
static inline const uint8_t *ag_stream_data(const struct ag_stream *s)
{
	return s->in ? s->in + s->in_off : (const uint8_t *)"";
}
void ag_stream_consume(struct ag_stream *s, size_t n);
/* Preloads bytes already read by someone else (the classifier). */
int ag_stream_preload(struct ag_stream *s, const void *buf, size_t len);
/* Keeps a receive armed while there is room: READ/EOF/ERROR follow. */
void ag_stream_read(struct ag_stream *s);
/* Queues bytes (encrypted first under TLS).  -ENOMEM, -EPIPE when dead. */
int ag_stream_write(struct ag_stream *s, const void *buf, size_t len);
static inline size_t ag_stream_queued(const struct ag_stream *s)
{
	return s->out_len;
}
/* Starts the sends that ag_stream_write and friends queued since the last
 * call: the loop calls it before every submit. */
void ag_stream_flush(struct ag_loop *l);
/* Ends the write side once everything queued went out (close_notify first). */
void ag_stream_shutdown(struct ag_stream *s);
/* Connects fd to sa within timeout_ms (0: none); CONNECTED or ERROR follows. */
void ag_stream_connect(struct ag_stream *s, const struct sockaddr *sa, socklen_t len,
		       uint32_t timeout_ms);
/* Wraps the stream in TLS (takes t).  A client starts its handshake now;
 * for a server the peer's bytes (preloaded or read) drive it. */
int ag_stream_tls(struct ag_stream *s, struct ag_tls *t);
/* Cancels the stream's operations (the owner is closing). */
void ag_stream_cancel(struct ag_stream *s);

#endif
