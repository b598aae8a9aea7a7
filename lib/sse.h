/* SPDX-License-Identifier: GPL-2.0 */
/*
 * An incremental Server-Sent Events parser (WHATWG HTML, "Server-sent
 * events", event stream interpretation).
 *
 * The gateway forwards SSE bytes as they arrive (holding them back would
 * deadlock sampling and elicitation) and feeds the same bytes here to see
 * the JSON-RPC messages inside `data`.  So the parser never owns the
 * stream: it consumes the caller's buffer and reports complete events one
 * at a time, with the same loop as the HTTP parser:
 *
 *	do {
 *		ssize_t n = ag_sse_parse(p, buf, len, &ev);
 *		if (n < 0)
 *			return n;
 *		buf += n, len -= n;
 *		if (ev.type == AG_SSE_EV_EVENT)
 *			handle(&ev);
 *	} while (ev.type != AG_SSE_EV_NEED_MORE);
 *
 * Buffering is bounded: an event's data plus the line being read may not
 * exceed max_event bytes (-E2BIG, final), because an upstream could
 * otherwise make the gateway buffer without end.  Comment lines are
 * skipped without buffering, so keep-alive padding costs nothing.  Bytes
 * are not decoded: the data is handed on as received (the JSON parser
 * checks UTF-8).
 */
#ifndef AG_SSE_H
#define AG_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

#define AG_SSE_MAX_TYPE 128 /* event type bytes */
#define AG_SSE_MAX_ID 1024  /* event id bytes */

enum ag_sse_ev_type {
	AG_SSE_EV_NEED_MORE, /* all input consumed, no complete event */
	AG_SSE_EV_EVENT,
};

/* Valid until the next ag_sse_parse call. */
struct ag_sse_event {
	enum ag_sse_ev_type type;
	const char *event; /* the type, "message" when no event field */
	size_t event_len;
	const char *data; /* data lines joined with LF, final LF removed */
	size_t data_len;
	const char *id; /* the last event ID: it persists across events */
	size_t id_len;
};

struct ag_sse_parser {
	/* Public, read-only. */
	struct ag_err err;
	bool has_retry; /* a valid retry field was seen */
	uint64_t retry_ms;
	/* Private. */
	size_t max_event;
	char *buf;	 /* max_event bytes: the event's data, then the line */
	size_t data_len; /* data bytes, each line with its LF */
	size_t line_len; /* bytes of the line being read */
	size_t type_len; /* 0: "message" */
	size_t id_len;
	unsigned int bom; /* bytes of a leading BOM matched so far, 3 when done */
	bool after_cr;	  /* an LF right now ends nothing: CRLF */
	bool in_comment;  /* skipping a comment line */
	bool dispatched;  /* the data and type were reported: reset them */
	bool failed;
	char type[AG_SSE_MAX_TYPE];
	char id[AG_SSE_MAX_ID];
};

int ag_sse_parser_init(struct ag_sse_parser *p, size_t max_event, struct ag_err *err);
void ag_sse_parser_release(struct ag_sse_parser *p);

/*
 * Consumes bytes up to and including the end of the next complete event
 * (ev->type EVENT) or all of them (NEED_MORE).  Returns the bytes consumed
 * or a negative errno with p->err set; errors are final.  At the end of the
 * stream an incomplete event is dropped, as the specification says: there
 * is nothing to call.
 */
ssize_t ag_sse_parse(struct ag_sse_parser *p, const void *buf, size_t len, struct ag_sse_event *ev);

/*
 * Whether the bytes consumed so far end between events: no partial line,
 * no pending field of the next event, no CR whose LF may follow.  Only
 * there can a gateway insert an event of its own or forward what it held
 * without splitting an event the reader has half-parsed.
 */
bool ag_sse_at_boundary(const struct ag_sse_parser *p);

#endif
