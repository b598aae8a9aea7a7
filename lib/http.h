/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A strict, incremental HTTP/1.1 parser and serializer for the MCP path.
 *
 * Both ends of a governed connection are untrusted: the agent may try to
 * smuggle a second request past the policy decision, and the upstream may
 * try to desynchronise the gateway's view of a response stream.  So the
 * parser accepts only one reading of the framing (RFC 9112) and rejects
 * everything another implementation could read differently: CL with TE,
 * repeated or listed Content-Length, codings other than a single
 * "chunked", obs-fold, bare CR, bare LF, whitespace before the colon.
 * Every rejection has its own code (enum ag_http_error) and a message that
 * names the field and the cause.
 *
 * Push model, one event per call, so the caller can stop right after the
 * head (to decide) without the parser running ahead:
 *
 *	struct ag_http_event ev;
 *	do {
 *		ssize_t n = ag_http_parse(p, buf, len, &ev);
 *		if (n < 0)
 *			return n;			(p->err says why)
 *		buf += n, len -= n;
 *		handle(&ev);				(HEAD, BODY, END)
 *	} while (ev.type != AG_HTTP_EV_NEED_MORE);
 *
 * NEED_MORE means every byte offered was consumed.  The input may arrive
 * split at any point, one byte at a time included, and the events are the
 * same except that body data comes in more pieces.  Body data is not
 * copied: ev.data points into the caller's buffer.  The head (start line,
 * fields, trailers) is copied into one block of limits.max_head bytes
 * allocated at init, so memory per connection is fixed and the head's
 * pointers stay valid however the input was split: until the first byte of
 * the next message is fed.
 */
#ifndef AG_HTTP_H
#define AG_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

enum ag_http_error {
	AG_HTTP_OK = 0,
	AG_HTTP_E_CL_AND_TE,	  /* both Content-Length and Transfer-Encoding */
	AG_HTTP_E_CL_DUPLICATE,	  /* Content-Length given twice */
	AG_HTTP_E_CL_LIST,	  /* Content-Length: 1, 2 */
	AG_HTTP_E_CL_INVALID,	  /* empty or non-digit Content-Length */
	AG_HTTP_E_CL_OVERFLOW,	  /* Content-Length beyond 64 bits */
	AG_HTTP_E_TE_UNSUPPORTED, /* a coding other than one "chunked" */
	AG_HTTP_E_TE_NOT_CHUNKED, /* codings whose final one is not chunked */
	AG_HTTP_E_TE_HTTP10,	  /* Transfer-Encoding in an HTTP/1.0 message */
	AG_HTTP_E_OBS_FOLD,	  /* a field line starting with SP or HTAB */
	AG_HTTP_E_BARE_CR,	  /* CR not followed by LF */
	AG_HTTP_E_BARE_LF,	  /* LF not preceded by CR */
	AG_HTTP_E_NAME_WS,	  /* whitespace between field name and colon */
	AG_HTTP_E_NAME_INVALID,	  /* empty field name, non-token byte, no colon */
	AG_HTTP_E_VALUE_CTL,	  /* control byte in a field value */
	AG_HTTP_E_METHOD_INVALID, /* empty method or non-token byte */
	AG_HTTP_E_TARGET_INVALID, /* empty request-target or byte outside VCHAR */
	AG_HTTP_E_START_LINE,	  /* malformed request or status line */
	AG_HTTP_E_VERSION,	  /* HTTP version other than 1.0 and 1.1 */
	AG_HTTP_E_STATUS,	  /* status code outside 100..599 */
	AG_HTTP_E_HOST,		  /* HTTP/1.1 request without one Host */
	AG_HTTP_E_START_LINE_TOO_LONG,
	AG_HTTP_E_LINE_TOO_LONG,   /* a field or trailer line */
	AG_HTTP_E_HEAD_TOO_LARGE,  /* start line, fields and trailers together */
	AG_HTTP_E_TOO_MANY_FIELDS, /* fields and trailers together */
	AG_HTTP_E_BODY_TOO_LARGE,
	AG_HTTP_E_CHUNK_SIZE,	  /* malformed chunk-size line */
	AG_HTTP_E_CHUNK_OVERFLOW, /* chunk size beyond 64 bits */
	AG_HTTP_E_CHUNK_LINE_TOO_LONG,
	AG_HTTP_E_CHUNK_DATA_END, /* chunk data not followed by CRLF */
	AG_HTTP_E_AFTER_CLOSE,	  /* bytes after a message that ends the connection */
	AG_HTTP_E_TRUNCATED,	  /* end of stream inside a message */
	AG_HTTP_E_NOMEM,
	AG_HTTP_E_COUNT
};

/* A short stable name for an error code ("cl_and_te"), for logs and metrics. */
const char *ag_http_error_name(enum ag_http_error e);

struct ag_http_limits {
	size_t max_start_line;	 /* request or status line, CRLF included */
	size_t max_line;	 /* one field or trailer line, CRLF included */
	size_t max_head;	 /* start line + fields + trailers: the head block */
	unsigned int max_fields; /* fields + trailers */
	size_t max_chunk_line;	 /* chunk-size line with its ignored extensions */
	uint64_t max_body;	 /* decoded body bytes */
};

/* 8 KiB lines, 32 KiB head, 100 fields, 1 KiB chunk lines, 4 MiB body. */
extern const struct ag_http_limits ag_http_default_limits;

struct ag_http_header {
	const char *name; /* as received; compare with ag_http_name_eq */
	size_t name_len;
	const char *value; /* leading and trailing SP/HTAB removed */
	size_t value_len;
};

enum ag_http_framing {
	AG_HTTP_BODY_NONE,    /* no body: 0 length, 1xx, 204, 304, HEAD */
	AG_HTTP_BODY_LENGTH,  /* Content-Length */
	AG_HTTP_BODY_CHUNKED, /* Transfer-Encoding: chunked */
	AG_HTTP_BODY_CLOSE,   /* response delimited by the end of the stream */
};

struct ag_http_msg {
	bool is_request;
	int version_minor; /* HTTP/1.<version_minor>: 0 or 1 */
	/* Request line. */
	const char *method;
	size_t method_len;
	const char *target;
	size_t target_len;
	/* Status line. */
	int status;
	const char *reason;
	size_t reason_len;
	/* headers[0..nfields) are fields, [nfields..nfields+ntrailers) trailers. */
	struct ag_http_header *headers;
	unsigned int nfields;
	unsigned int ntrailers;
	enum ag_http_framing framing;
	uint64_t content_length; /* AG_HTTP_BODY_LENGTH only */
	/* False when either side asked to close, or the body ends with the
	 * stream: the connection carries no further message. */
	bool keep_alive;
	/* 101 Switching Protocols: what follows is not HTTP any more. */
	bool upgrade;
};

enum ag_http_ev_type {
	AG_HTTP_EV_NEED_MORE, /* all input consumed, nothing else to report */
	AG_HTTP_EV_HEAD,      /* p->msg holds the start line and fields */
	AG_HTTP_EV_BODY,      /* ev.data/ev.len: decoded body bytes */
	AG_HTTP_EV_END,	      /* message complete; trailers are in p->msg */
};

struct ag_http_event {
	enum ag_http_ev_type type;
	const uint8_t *data;
	size_t len;
};

struct ag_http_parser {
	/* Public, read-only. */
	struct ag_http_msg msg;
	enum ag_http_error error;
	struct ag_err err;
	/* Private. */
	struct ag_http_limits lim;
	int state;
	bool is_request;
	bool expect_head;    /* the response answers a HEAD request */
	bool line_started;   /* bytes of the current line are in the block */
	char *block;	     /* lim.max_head bytes: head and trailers; msg.headers after */
	size_t used;	     /* bytes of the block holding complete lines */
	size_t line_len;     /* bytes of the current, incomplete line */
	uint64_t remaining;  /* of the Content-Length body or of the chunk */
	uint64_t body_total; /* decoded body bytes of this message */
	uint64_t chunk_size; /* chunk-size line being parsed */
	size_t chunk_line;   /* its length so far */
	unsigned int chunk_digits;
	int chunk_state;
};

/* is_request: parse requests (agent side) or responses (upstream side).
 * lim NULL means ag_http_default_limits.  Allocates the head block. */
int ag_http_parser_init(struct ag_http_parser *p, bool is_request, const struct ag_http_limits *lim,
			struct ag_err *err);
/* Gives the head block back: of the default size, to the thread's spares (http_block.c). */
void ag_http_parser_release(struct ag_http_parser *p);
/*
 * Frees this thread's spare head blocks: the daemon's loop does when it has
 * no connection left, and a thread that releases parsers must before it ends.
 */
void ag_http_spares_drain(void);

/*
 * Response parsers only: the next response answers a HEAD request, so it
 * has no body whatever its fields say.  The parser cannot know the request
 * method; the caller, which pairs requests with responses, must say so
 * before feeding the response.  It holds through interim (1xx) responses.
 */
void ag_http_parser_expect_head(struct ag_http_parser *p);

/*
 * Feeds bytes and reports at most one event.  Returns the number of bytes
 * consumed (possibly 0 for HEAD/END with nothing else to take), or a
 * negative errno with p->error and p->err set.  Errors are final: every
 * later call returns the same error.
 */
ssize_t ag_http_parse(struct ag_http_parser *p, const void *buf, size_t len,
		      struct ag_http_event *ev);

/*
 * The peer closed the stream.  A body delimited by the close ends (END);
 * between messages nothing happens (NEED_MORE); anywhere else the message
 * was truncated: AG_HTTP_E_TRUNCATED.
 */
int ag_http_parse_eof(struct ag_http_parser *p, struct ag_http_event *ev);

/* Case-insensitive field name comparison. */
bool ag_http_name_eq(const struct ag_http_header *h, const char *name);
/* The first field (not trailer) named name after `after` (NULL: from the
 * start), or NULL. */
const struct ag_http_header *ag_http_find(const struct ag_http_msg *m, const char *name,
					  const struct ag_http_header *after);
/* Whether a comma-separated field value lists token (case-insensitive). */
bool ag_http_list_has(const char *value, size_t len, const char *token);
/* Iterates a comma-separated list from *s to end: the next element, OWS
 * trimmed (possibly empty), in *elem and *elen; false at the end. */
bool ag_http_list_next(const char **s, const char *end, const char **elem, size_t *elen);
/* RFC 9110 tchar, the bytes of methods and field names. */
bool ag_http_is_tchar(uint8_t c);
/* The reason phrase of a status the gateway sends ("Error" for others). */
const char *ag_http_reason(int status);
/* Bytes allowed in a field value: VCHAR, obs-text, SP, HTAB. */
bool ag_http_is_value_byte(uint8_t c);

/*
 * Serializer: the head to forward, with the gateway's edits.
 *
 * With keep[] set, only the fields it names (case-insensitive) pass; else
 * the fields named in remove[] are dropped.  Always dropped are
 * the hop-by-hop fields (Connection, Keep-Alive, Proxy-Connection, TE,
 * Trailer, Upgrade, Transfer-Encoding, Content-Length and every field the
 * message's Connection field names), because they describe this hop, and
 * the framing is re-declared by the caller: the body may be re-encoded.
 * Then add[] is appended (a replacement is a removal plus an addition),
 * then the framing fields for `framing`, then "Connection: close" when
 * !keep_alive.  Added names and values are validated like received ones,
 * so a caller's string can never inject a line.
 */
struct ag_http_edit {
	const char *const *keep;	  /* NULL-terminated allow-list, or NULL */
	const char *const *remove;	  /* NULL-terminated, or NULL */
	/* Requests: a start line of the caller's in place of the message's
	 * (method and origin-form target, validated like received ones). */
	const char *method;
	const char *target;
	const struct ag_http_header *add; /* nadd fields */
	size_t nadd;
	enum ag_http_framing framing; /* NONE, LENGTH or CHUNKED */
	uint64_t content_length;      /* for AG_HTTP_BODY_LENGTH */
	bool keep_alive;
};

/* Writes the head into buf; *out_len its length.  -ENOSPC when cap is too
 * small, -EINVAL for an invalid added field. */
int ag_http_serialize_head(const struct ag_http_msg *m, const struct ag_http_edit *e, char *buf,
			   size_t cap, size_t *out_len, struct ag_err *err);

/*
 * Chunked encoder, built for writev: prefix, the caller's data untouched,
 * AG_HTTP_CHUNK_SUFFIX; AG_HTTP_CHUNK_LAST ends the body (no trailers).
 */
#define AG_HTTP_CHUNK_PREFIX_MAX 19 /* 16 hex digits + CRLF + NUL */
#define AG_HTTP_CHUNK_SUFFIX "\r\n"
#define AG_HTTP_CHUNK_LAST "0\r\n\r\n"
/* Writes "<hex len>\r\n" (NUL-terminated) and returns its length; len must
 * not be 0, which would end the body: then 0 is returned and nothing
 * written. */
size_t ag_http_chunk_prefix(uint64_t len, char out[AG_HTTP_CHUNK_PREFIX_MAX]);
/* One whole chunk (prefix, data, suffix) into out; -ENOSPC if cap is short,
 * -EINVAL for len 0. */
int ag_http_chunk_encode(const void *data, size_t len, char *out, size_t cap, size_t *out_len);

#endif
