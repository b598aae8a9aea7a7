// SPDX-License-Identifier: GPL-2.0
/*
 * The incremental HTTP/1.1 parser (see http.h).  Head lines are gathered
 * in the head block and judged only once complete, so each verdict depends
 * on the bytes alone, never on where the input was split: a split-time
 * check would let two gateways (or a fuzzer's one-shot and piecewise runs)
 * disagree about the same stream.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_int.h"

enum {
	ST_START,  /* before the start line; empty lines are skipped */
	ST_FIELDS, /* field lines until the empty line */
	ST_BODY_LENGTH,
	ST_CHUNK_LINE,
	ST_CHUNK_DATA,
	ST_CHUNK_DATA_CR,
	ST_CHUNK_DATA_LF,
	ST_TRAILERS,
	ST_BODY_CLOSE,
	ST_END_READY, /* the message is complete, END not yet reported */
	ST_CLOSED,    /* no message may follow */
	ST_ERROR,
};

const struct ag_http_limits ag_http_default_limits = {
	.max_start_line = 8192,
	.max_line = 8192,
	.max_head = 32768,
	.max_fields = 100,
	.max_chunk_line = 1024,
	.max_body = 4u << 20,
};

static const char *const error_names[AG_HTTP_E_COUNT] = {
	[AG_HTTP_OK] = "ok",
	[AG_HTTP_E_CL_AND_TE] = "cl_and_te",
	[AG_HTTP_E_CL_DUPLICATE] = "cl_duplicate",
	[AG_HTTP_E_CL_LIST] = "cl_list",
	[AG_HTTP_E_CL_INVALID] = "cl_invalid",
	[AG_HTTP_E_CL_OVERFLOW] = "cl_overflow",
	[AG_HTTP_E_TE_UNSUPPORTED] = "te_unsupported",
	[AG_HTTP_E_TE_NOT_CHUNKED] = "te_not_chunked",
	[AG_HTTP_E_TE_HTTP10] = "te_http10",
	[AG_HTTP_E_OBS_FOLD] = "obs_fold",
	[AG_HTTP_E_BARE_CR] = "bare_cr",
	[AG_HTTP_E_BARE_LF] = "bare_lf",
	[AG_HTTP_E_NAME_WS] = "name_ws",
	[AG_HTTP_E_NAME_INVALID] = "name_invalid",
	[AG_HTTP_E_VALUE_CTL] = "value_ctl",
	[AG_HTTP_E_METHOD_INVALID] = "method_invalid",
	[AG_HTTP_E_TARGET_INVALID] = "target_invalid",
	[AG_HTTP_E_START_LINE] = "start_line",
	[AG_HTTP_E_VERSION] = "version",
	[AG_HTTP_E_STATUS] = "status",
	[AG_HTTP_E_HOST] = "host",
	[AG_HTTP_E_START_LINE_TOO_LONG] = "start_line_too_long",
	[AG_HTTP_E_LINE_TOO_LONG] = "line_too_long",
	[AG_HTTP_E_HEAD_TOO_LARGE] = "head_too_large",
	[AG_HTTP_E_TOO_MANY_FIELDS] = "too_many_fields",
	[AG_HTTP_E_BODY_TOO_LARGE] = "body_too_large",
	[AG_HTTP_E_CHUNK_SIZE] = "chunk_size",
	[AG_HTTP_E_CHUNK_OVERFLOW] = "chunk_overflow",
	[AG_HTTP_E_CHUNK_LINE_TOO_LONG] = "chunk_line_too_long",
	[AG_HTTP_E_CHUNK_DATA_END] = "chunk_data_end",
	[AG_HTTP_E_AFTER_CLOSE] = "after_close",
	[AG_HTTP_E_TRUNCATED] = "truncated",
	[AG_HTTP_E_NOMEM] = "nomem",
};

const char *ag_http_error_name(enum ag_http_error e)
{
	return (unsigned int)e < AG_HTTP_E_COUNT ? error_names[e] : "unknown";
}

/* Too large for the limits is E2BIG, anything malformed EPROTO. */
static int error_errno(enum ag_http_error e)
{
	switch (e) {
	case AG_HTTP_E_START_LINE_TOO_LONG:
	case AG_HTTP_E_LINE_TOO_LONG:
	case AG_HTTP_E_HEAD_TOO_LARGE:
	case AG_HTTP_E_TOO_MANY_FIELDS:
	case AG_HTTP_E_BODY_TOO_LARGE:
	case AG_HTTP_E_CHUNK_LINE_TOO_LONG:
		return E2BIG;
	case AG_HTTP_E_NOMEM:
		return ENOMEM;
	default:
		return EPROTO;
	}
}

__attribute__((format(printf, 3, 4))) static int fail(struct ag_http_parser *p,
						      enum ag_http_error e, const char *fmt, ...)
{
	char detail[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	p->error = e;
	p->state = ST_ERROR;
	return ag_errf(&p->err, error_errno(e), "http %s: %s",
		       p->is_request ? "request" : "response", detail);
}

bool ag_http_is_tchar(uint8_t c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c);
}

/* Field-value bytes: VCHAR, obs-text, SP and HTAB; never other controls. */
bool ag_http_is_value_byte(uint8_t c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool is_ows(uint8_t c)
{
	return c == ' ' || c == '\t';
}

/*
 * The first byte, case folded, first: a field name is compared with many
 * literals per message (hop-by-hop, allow-lists), and most differ there.
 * Two bytes strncasecmp holds equal (the same, or one ASCII letter in two
 * cases) are equal ORed with 0x20: a difference there is one to it too.
 */
static bool span_eq(const char *s, size_t n, const char *lit)
{
	if (n && (s[0] | 0x20) != (lit[0] | 0x20))
		return false;
	return strlen(lit) == n && !strncasecmp(s, lit, n);
}

bool ag_http_name_eq(const struct ag_http_header *h, const char *name)
{
	return span_eq(h->name, h->name_len, name);
}

const struct ag_http_header *ag_http_find(const struct ag_http_msg *m, const char *name,
					  const struct ag_http_header *after)
{
	unsigned int i = after ? (unsigned int)(after - m->headers) + 1 : 0;

	for (; i < m->nfields; i++)
		if (ag_http_name_eq(&m->headers[i], name))
			return &m->headers[i];
	return NULL;
}

bool ag_http_list_next(const char **s, const char *end, const char **elem, size_t *elen)
{
	const char *p = *s, *e;

	if (p >= end)
		return false;
	e = memchr(p, ',', end - p);
	if (!e)
		e = end;
	*s = e < end ? e + 1 : end;
	while (p < e && is_ows(*p))
		p++;
	while (e > p && is_ows(e[-1]))
		e--;
	*elem = p;
	*elen = e - p;
	return true;
}

bool ag_http_list_has(const char *value, size_t len, const char *token)
{
	const char *s = value, *elem;
	size_t elen;

	while (ag_http_list_next(&s, value + len, &elem, &elen))
		if (span_eq(elem, elen, token))
			return true;
	return false;
}

int ag_http_parser_init(struct ag_http_parser *p, bool is_request, const struct ag_http_limits *lim,
			struct ag_err *err)
{
	size_t fields;
	int ret;

	memset(p, 0, sizeof(*p));
	p->lim = lim ? *lim : ag_http_default_limits;
	p->is_request = is_request;
	if (!p->lim.max_start_line || !p->lim.max_line || !p->lim.max_head || !p->lim.max_fields ||
	    !p->lim.max_chunk_line)
		return ag_errf(err, EINVAL, "http parser: every limit must be positive");
	/* No zeroing: a field is read only once it is written (below nfields +
	 * ntrailers), the block only up to used + line_len. */
	if ((ret = http_block_get(&p->lim, &p->block, &fields)))
		return ag_errf(err, -ret, "http parser: head block of %zu bytes: %s",
			       p->lim.max_head, ret == -E2BIG ? "too large" : "out of memory");
	p->msg.headers = (struct ag_http_header *)(p->block + fields);
	p->state = ST_START;
	return 0;
}

void ag_http_parser_release(struct ag_http_parser *p)
{
	http_block_put(&p->lim, p->block);
	p->block = NULL;
	p->msg.headers = NULL;
}

void ag_http_parser_expect_head(struct ag_http_parser *p)
{
	p->expect_head = true;
}

/*
 * Gathers one line (up to LF) into the block.  Returns 1 with the complete
 * line in *line and *n (CRLF excluded), 0 when the input ran out first, or an
 * error.  Bytes beyond the block are counted, not stored, so that "line
 * too long" and "head too large" are decided on the whole line whatever
 * the split.
 */
static int take_line(struct ag_http_parser *p, const uint8_t *buf, size_t len, size_t *off,
		     size_t limit, enum ag_http_error too_long, const char **line, size_t *n)
{
	size_t room = limit + 1 - p->line_len, avail = len - *off;
	size_t scan = avail < room ? avail : room, take, space;
	const uint8_t *lf = memchr(buf + *off, '\n', scan);

	take = lf ? (size_t)(lf - (buf + *off)) + 1 : scan;
	space = p->lim.max_head - p->used;
	if (p->line_len < space)
		memcpy(p->block + p->used + p->line_len, buf + *off,
		       take < space - p->line_len ? take : space - p->line_len);
	p->line_len += take;
	*off += take;
	if (p->line_len > limit)
		return fail(p, too_long, "%s longer than %zu bytes",
			    too_long == AG_HTTP_E_START_LINE_TOO_LONG ? "start line" : "field line",
			    limit);
	if (!lf)
		return 0;
	*n = p->line_len;
	p->line_len = 0;
	if (*n > space)
		return fail(p, AG_HTTP_E_HEAD_TOO_LARGE, "head larger than %zu bytes",
			    p->lim.max_head);
	*line = p->block + p->used;
	if (*n < 2 || (*line)[*n - 2] != '\r')
		return fail(p, AG_HTTP_E_BARE_LF, "line ends with LF without CR");
	if (memchr(*line, '\r', *n - 2))
		return fail(p, AG_HTTP_E_BARE_CR, "CR not followed by LF");
	*n -= 2;
	return 1;
}

static int parse_version(struct ag_http_parser *p, const char *s, size_t n)
{
	if (n != 8 || memcmp(s, "HTTP/", 5) || s[5] < '0' || s[5] > '9' || s[6] != '.' ||
	    s[7] < '0' || s[7] > '9')
		return fail(p, AG_HTTP_E_START_LINE, "malformed HTTP version \"%.*s\"",
			    (int)(n < 16 ? n : 16), s);
	if (s[5] != '1' || (s[7] != '0' && s[7] != '1'))
		return fail(p, AG_HTTP_E_VERSION, "HTTP version %.8s not supported", s);
	p->msg.version_minor = s[7] - '0';
	return 0;
}

static int parse_request_line(struct ag_http_parser *p, const char *s, size_t n)
{
	const char *sp, *end = s + n;
	size_t i;

	sp = memchr(s, ' ', n);
	if (!sp)
		return fail(p, AG_HTTP_E_START_LINE, "request line without SP");
	if (sp == s)
		return fail(p, AG_HTTP_E_METHOD_INVALID, "empty method");
	for (i = 0; s + i < sp; i++)
		if (!ag_http_is_tchar(s[i]))
			return fail(p, AG_HTTP_E_METHOD_INVALID,
				    "method: byte 0x%02x at offset %zu is not a token character",
				    (uint8_t)s[i], i);
	p->msg.method = s;
	p->msg.method_len = sp - s;
	s = sp + 1;
	sp = memchr(s, ' ', end - s);
	if (!sp)
		return fail(p, AG_HTTP_E_START_LINE, "request line without version");
	if (sp == s)
		return fail(p, AG_HTTP_E_TARGET_INVALID, "empty request-target");
	for (i = 0; s + i < sp; i++)
		if ((uint8_t)s[i] <= 0x20 || (uint8_t)s[i] >= 0x7f)
			return fail(p, AG_HTTP_E_TARGET_INVALID,
				    "request-target: byte 0x%02x at offset %zu", (uint8_t)s[i], i);
	p->msg.target = s;
	p->msg.target_len = sp - s;
	return parse_version(p, sp + 1, end - sp - 1);
}

static int parse_status_line(struct ag_http_parser *p, const char *s, size_t n)
{
	int err = parse_version(p, s, n < 8 ? n : 8);

	if (err)
		return err;
	/* "HTTP/1.1 200" without SP and reason is common enough to allow. */
	if (n < 12 || s[8] != ' ' || s[9] < '0' || s[9] > '9' || s[10] < '0' || s[10] > '9' ||
	    s[11] < '0' || s[11] > '9' || (n > 12 && s[12] != ' '))
		return fail(p, AG_HTTP_E_START_LINE, "malformed status code");
	p->msg.status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
	if (p->msg.status < 100 || p->msg.status > 599)
		return fail(p, AG_HTTP_E_STATUS, "status code %d outside 100..599", p->msg.status);
	p->msg.reason = n > 12 ? s + 13 : s + n;
	p->msg.reason_len = n > 12 ? n - 13 : 0;
	for (size_t i = 0; i < p->msg.reason_len; i++)
		if (!ag_http_is_value_byte(p->msg.reason[i]))
			return fail(p, AG_HTTP_E_START_LINE, "reason phrase: control byte 0x%02x",
				    (uint8_t)p->msg.reason[i]);
	return 0;
}

/* One "name: value" line, kept in the block; headers[] points into it. */
static int parse_field(struct ag_http_parser *p, const char *s, size_t n, bool trailer)
{
	struct ag_http_header *h;
	size_t i = 0, v, e;

	if (is_ows(s[0]))
		return fail(p, AG_HTTP_E_OBS_FOLD, "%s line starts with whitespace (obs-fold)",
			    trailer ? "trailer" : "field");
	while (i < n && ag_http_is_tchar(s[i]))
		i++;
	if (i == n)
		return fail(p, AG_HTTP_E_NAME_INVALID, "field \"%.*s\" without colon",
			    (int)(n < 64 ? n : 64), s);
	if (is_ows(s[i]))
		return fail(p, AG_HTTP_E_NAME_WS, "field \"%.*s\": whitespace before colon",
			    (int)(i < 64 ? i : 64), s);
	if (s[i] != ':')
		return fail(p, AG_HTTP_E_NAME_INVALID,
			    "field name: byte 0x%02x at offset %zu is not a token character",
			    (uint8_t)s[i], i);
	if (i == 0)
		return fail(p, AG_HTTP_E_NAME_INVALID, "empty field name");
	for (v = i + 1; v < n && is_ows(s[v]); v++)
		;
	for (e = n; e > v && is_ows(s[e - 1]); e--)
		;
	for (size_t k = v; k < e; k++)
		if (!ag_http_is_value_byte(s[k]))
			return fail(p, AG_HTTP_E_VALUE_CTL,
				    "field %.*s: control byte 0x%02x in value",
				    (int)(i < 64 ? i : 64), s, (uint8_t)s[k]);
	if (p->msg.nfields + p->msg.ntrailers >= p->lim.max_fields)
		return fail(p, AG_HTTP_E_TOO_MANY_FIELDS, "more than %u fields", p->lim.max_fields);
	h = &p->msg.headers[p->msg.nfields + p->msg.ntrailers];
	h->name = s;
	h->name_len = i;
	h->value = s + v;
	h->value_len = e - v;
	if (trailer)
		p->msg.ntrailers++;
	else
		p->msg.nfields++;
	return 0;
}

static int parse_content_length(struct ag_http_parser *p, const struct ag_http_header *h,
				uint64_t *out)
{
	uint64_t v = 0;

	if (memchr(h->value, ',', h->value_len))
		return fail(p, AG_HTTP_E_CL_LIST, "Content-Length is a list: \"%.*s\"",
			    (int)(h->value_len < 64 ? h->value_len : 64), h->value);
	if (!h->value_len)
		return fail(p, AG_HTTP_E_CL_INVALID, "empty Content-Length");
	for (size_t i = 0; i < h->value_len; i++) {
		uint8_t c = h->value[i];

		if (c < '0' || c > '9')
			return fail(p, AG_HTTP_E_CL_INVALID,
				    "Content-Length: byte 0x%02x is not a digit", c);
		if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, c - '0', &v))
			return fail(p, AG_HTTP_E_CL_OVERFLOW, "Content-Length overflows 64 bits");
	}
	*out = v;
	return 0;
}

/* Every coding must be "chunked" and it must come once: gzip'd bodies could
 * not be inspected, and repeated chunking is a classic smuggling vector. */
static int parse_transfer_encoding(struct ag_http_parser *p, const struct ag_http_header *h,
				   bool *chunked, bool *other)
{
	const char *s = h->value, *elem;
	size_t elen;

	if (!h->value_len)
		return fail(p, AG_HTTP_E_TE_UNSUPPORTED, "empty Transfer-Encoding");
	while (ag_http_list_next(&s, h->value + h->value_len, &elem, &elen)) {
		if (!elen)
			return fail(p, AG_HTTP_E_TE_UNSUPPORTED, "empty transfer coding in list");
		if (span_eq(elem, elen, "chunked")) {
			if (*chunked)
				return fail(p, AG_HTTP_E_TE_UNSUPPORTED,
					    "chunked applied more than once");
			*chunked = true;
		} else {
			if (*chunked)
				return fail(p, AG_HTTP_E_TE_NOT_CHUNKED,
					    "transfer coding \"%.*s\" after chunked",
					    (int)(elen < 64 ? elen : 64), elem);
			*other = true;
		}
	}
	return 0;
}

enum { CS_SIZE, CS_BWS, CS_EXT, CS_CR };

static void start_chunk_line(struct ag_http_parser *p)
{
	p->state = ST_CHUNK_LINE;
	p->chunk_size = 0;
	p->chunk_line = 0;
	p->chunk_digits = 0;
	p->chunk_state = CS_SIZE;
}

/* The head is complete: decide the framing (RFC 9112 section 6.3). */
static int finish_head(struct ag_http_parser *p)
{
	struct ag_http_msg *m = &p->msg;
	bool have_cl = false, have_te = false, chunked = false, other = false;
	bool close = false, ka = false;
	unsigned int hosts = 0;
	int err;

	for (unsigned int i = 0; i < m->nfields; i++) {
		const struct ag_http_header *h = &m->headers[i];

		if (ag_http_name_eq(h, "Content-Length")) {
			if (have_cl)
				return fail(p, AG_HTTP_E_CL_DUPLICATE,
					    "Content-Length given twice");
			have_cl = true;
			err = parse_content_length(p, h, &m->content_length);
		} else if (ag_http_name_eq(h, "Transfer-Encoding")) {
			have_te = true;
			err = parse_transfer_encoding(p, h, &chunked, &other);
		} else if (ag_http_name_eq(h, "Connection")) {
			close |= ag_http_list_has(h->value, h->value_len, "close");
			ka |= ag_http_list_has(h->value, h->value_len, "keep-alive");
			err = 0;
		} else {
			hosts += ag_http_name_eq(h, "Host");
			err = 0;
		}
		if (err)
			return err;
	}
	if (have_te && !chunked)
		return fail(p, AG_HTTP_E_TE_NOT_CHUNKED, "final transfer coding is not chunked");
	if (other)
		return fail(p, AG_HTTP_E_TE_UNSUPPORTED, "transfer codings other than chunked");
	if (have_te && m->version_minor == 0)
		return fail(p, AG_HTTP_E_TE_HTTP10, "Transfer-Encoding in an HTTP/1.0 message");
	if (have_cl && have_te)
		return fail(p, AG_HTTP_E_CL_AND_TE, "both Content-Length and Transfer-Encoding");
	if (p->is_request && (hosts > 1 || (hosts == 0 && m->version_minor == 1)))
		return fail(p, AG_HTTP_E_HOST, "%u Host fields, need exactly one", hosts);
	m->is_request = p->is_request;
	m->keep_alive = !close && (m->version_minor == 1 || ka);

	if (!p->is_request &&
	    (p->expect_head || m->status < 200 || m->status == 204 || m->status == 304)) {
		m->framing = AG_HTTP_BODY_NONE;
		m->upgrade = m->status == 101;
	} else if (chunked) {
		m->framing = AG_HTTP_BODY_CHUNKED;
	} else if (have_cl) {
		m->framing = m->content_length ? AG_HTTP_BODY_LENGTH : AG_HTTP_BODY_NONE;
	} else if (p->is_request) {
		m->framing = AG_HTTP_BODY_NONE;
	} else {
		m->framing = AG_HTTP_BODY_CLOSE;
		m->keep_alive = false;
	}
	if (m->framing == AG_HTTP_BODY_LENGTH && m->content_length > p->lim.max_body)
		return fail(p, AG_HTTP_E_BODY_TOO_LARGE,
			    "Content-Length %" PRIu64 " above the limit of %" PRIu64,
			    m->content_length, p->lim.max_body);
	switch (m->framing) {
	case AG_HTTP_BODY_NONE:
		p->state = ST_END_READY;
		break;
	case AG_HTTP_BODY_LENGTH:
		p->remaining = m->content_length;
		p->state = ST_BODY_LENGTH;
		break;
	case AG_HTTP_BODY_CHUNKED:
		start_chunk_line(p);
		break;
	case AG_HTTP_BODY_CLOSE:
		p->state = ST_BODY_CLOSE;
		break;
	}
	return 0;
}

static void start_message(struct ag_http_parser *p)
{
	struct ag_http_header *headers = p->msg.headers;

	memset(&p->msg, 0, sizeof(p->msg));
	p->msg.headers = headers;
	p->used = 0;
	p->body_total = 0;
}

/* Start line, fields or trailers: returns 1 when the event is ready. */
static int step_head(struct ag_http_parser *p, const uint8_t *buf, size_t len, size_t *off)
{
	bool start = p->state == ST_START;
	const char *line = NULL;
	size_t n = 0;
	int r;

	if (start && !p->line_len)
		start_message(p);
	r = take_line(p, buf, len, off, start ? p->lim.max_start_line : p->lim.max_line,
		      start ? AG_HTTP_E_START_LINE_TOO_LONG : AG_HTTP_E_LINE_TOO_LONG, &line, &n);
	if (r <= 0)
		return r;
	if (start) {
		/* RFC 9112 2.2: a CRLF left after a previous body is tolerated. */
		if (!n)
			return 0;
		r = p->is_request ? parse_request_line(p, line, n) : parse_status_line(p, line, n);
		p->used += n + 2;
		p->state = ST_FIELDS;
		return r;
	}
	if (n) {
		r = parse_field(p, line, n, p->state == ST_TRAILERS);
		p->used += n + 2;
		return r;
	}
	if (p->state == ST_TRAILERS) {
		p->state = ST_END_READY;
		return 0;
	}
	r = finish_head(p);
	return r ? r : 1;
}

/* The chunk-size line, byte by byte: returns 1 at its end. */
static int step_chunk_line(struct ag_http_parser *p, const uint8_t *buf, size_t len, size_t *off)
{
	while (*off < len) {
		uint8_t c = buf[(*off)++];
		int d = -1;

		if (++p->chunk_line > p->lim.max_chunk_line)
			return fail(p, AG_HTTP_E_CHUNK_LINE_TOO_LONG,
				    "chunk-size line longer than %zu bytes", p->lim.max_chunk_line);
		switch (p->chunk_state) {
		case CS_SIZE:
			if (c >= '0' && c <= '9')
				d = c - '0';
			else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
				d = (c | 0x20) - 'a' + 10;
			if (d >= 0) {
				if (p->chunk_size >> 60)
					return fail(p, AG_HTTP_E_CHUNK_OVERFLOW,
						    "chunk size overflows 64 bits");
				p->chunk_size = p->chunk_size << 4 | d;
				p->chunk_digits++;
				break;
			}
			if (!p->chunk_digits)
				return fail(p, AG_HTTP_E_CHUNK_SIZE,
					    "chunk size: byte 0x%02x is not a hex digit", c);
			if (c == '\r')
				p->chunk_state = CS_CR;
			else if (c == ';')
				p->chunk_state = CS_EXT;
			else if (is_ows(c))
				p->chunk_state = CS_BWS;
			else if (c == '\n')
				return fail(p, AG_HTTP_E_BARE_LF,
					    "chunk-size line ends with bare LF");
			else
				return fail(p, AG_HTTP_E_CHUNK_SIZE,
					    "chunk size: byte 0x%02x is not a hex digit", c);
			break;
		case CS_BWS:
			if (c == ';')
				p->chunk_state = CS_EXT;
			else if (!is_ows(c))
				return fail(p, AG_HTTP_E_CHUNK_SIZE,
					    "whitespace after chunk size not followed by ';'");
			break;
		case CS_EXT:
			/* Extensions are ignored: only their bytes are checked. */
			if (c == '\r')
				p->chunk_state = CS_CR;
			else if (c == '\n')
				return fail(p, AG_HTTP_E_BARE_LF,
					    "chunk-size line ends with bare LF");
			else if (!ag_http_is_value_byte(c))
				return fail(p, AG_HTTP_E_CHUNK_SIZE,
					    "chunk extension: control byte 0x%02x", c);
			break;
		case CS_CR:
			if (c != '\n')
				return fail(p, AG_HTTP_E_BARE_CR, "chunk-size line: CR without LF");
			return 1;
		}
	}
	return 0;
}

static int end_chunk_line(struct ag_http_parser *p)
{
	uint64_t total;

	if (!p->chunk_size) {
		p->state = ST_TRAILERS;
		return 0;
	}
	if (__builtin_add_overflow(p->body_total, p->chunk_size, &total) || total > p->lim.max_body)
		return fail(p, AG_HTTP_E_BODY_TOO_LARGE,
			    "chunked body larger than %" PRIu64 " bytes", p->lim.max_body);
	p->remaining = p->chunk_size;
	p->state = ST_CHUNK_DATA;
	return 0;
}

static void body_event(struct ag_http_parser *p, const uint8_t *data, size_t n,
		       struct ag_http_event *ev)
{
	ev->type = AG_HTTP_EV_BODY;
	ev->data = data;
	ev->len = n;
	p->body_total += n;
}

static void end_message(struct ag_http_parser *p, struct ag_http_event *ev)
{
	bool interim = !p->is_request && p->msg.status >= 100 && p->msg.status < 200;

	ev->type = AG_HTTP_EV_END;
	if (p->msg.upgrade || (!interim && !p->msg.keep_alive)) {
		p->state = ST_CLOSED;
	} else {
		p->state = ST_START;
		/* The final response to a HEAD request is still to come. */
		if (!interim)
			p->expect_head = false;
	}
}

ssize_t ag_http_parse(struct ag_http_parser *p, const void *data, size_t len,
		      struct ag_http_event *ev)
{
	const uint8_t *buf = data;
	size_t off = 0, n;
	int r;

	ev->type = AG_HTTP_EV_NEED_MORE;
	ev->data = NULL;
	ev->len = 0;
	for (;;) {
		switch (p->state) {
		case ST_ERROR:
			return -p->err.code;
		case ST_END_READY:
			end_message(p, ev);
			return off;
		case ST_CLOSED:
			if (off < len)
				return fail(p, AG_HTTP_E_AFTER_CLOSE,
					    p->msg.upgrade ? "bytes after 101 Switching Protocols"
							   : "bytes after a message ending the "
							     "connection");
			return off;
		default:
			break;
		}
		if (off == len)
			return off;
		switch (p->state) {
		case ST_START:
		case ST_FIELDS:
		case ST_TRAILERS:
			r = step_head(p, buf, len, &off);
			if (r < 0)
				return r;
			if (r) {
				ev->type = AG_HTTP_EV_HEAD;
				return off;
			}
			break;
		case ST_BODY_LENGTH:
		case ST_CHUNK_DATA:
			n = len - off < p->remaining ? len - off : p->remaining;
			body_event(p, buf + off, n, ev);
			p->remaining -= n;
			if (!p->remaining)
				p->state =
				    p->state == ST_BODY_LENGTH ? ST_END_READY : ST_CHUNK_DATA_CR;
			return off + n;
		case ST_CHUNK_DATA_CR:
			if (buf[off] != '\r')
				return fail(p,
					    buf[off] == '\n' ? AG_HTTP_E_BARE_LF
							     : AG_HTTP_E_CHUNK_DATA_END,
					    "chunk data not followed by CRLF");
			off++;
			p->state = ST_CHUNK_DATA_LF;
			break;
		case ST_CHUNK_DATA_LF:
			if (buf[off] != '\n')
				return fail(p, AG_HTTP_E_BARE_CR, "chunk data: CR without LF");
			off++;
			start_chunk_line(p);
			break;
		case ST_CHUNK_LINE:
			r = step_chunk_line(p, buf, len, &off);
			if (r < 0)
				return r;
			if (r && (r = end_chunk_line(p)) < 0)
				return r;
			break;
		case ST_BODY_CLOSE:
			if (p->body_total == p->lim.max_body)
				return fail(p, AG_HTTP_E_BODY_TOO_LARGE,
					    "body larger than %" PRIu64 " bytes", p->lim.max_body);
			n = len - off;
			if (n > p->lim.max_body - p->body_total)
				n = p->lim.max_body - p->body_total;
			body_event(p, buf + off, n, ev);
			return off + n;
		}
	}
}

int ag_http_parse_eof(struct ag_http_parser *p, struct ag_http_event *ev)
{
	ev->type = AG_HTTP_EV_NEED_MORE;
	ev->data = NULL;
	ev->len = 0;
	switch (p->state) {
	case ST_ERROR:
		return -p->err.code;
	case ST_CLOSED:
		return 0;
	case ST_START:
		if (!p->line_len)
			return 0;
		break;
	case ST_BODY_CLOSE:
	case ST_END_READY:
		end_message(p, ev);
		return 0;
	default:
		break;
	}
	return fail(p, AG_HTTP_E_TRUNCATED, "stream ended inside a message");
}
