// SPDX-License-Identifier: GPL-2.0
/* The incremental Server-Sent Events parser (see sse.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sse.h"

static const char bom[3] = { '\xef', '\xbb', '\xbf' };

int ag_sse_parser_init(struct ag_sse_parser *p, size_t max_event, struct ag_err *err)
{
	memset(p, 0, sizeof(*p));
	if (!max_event)
		return ag_errf(err, EINVAL, "sse parser: max_event must be positive");
	p->buf = malloc(max_event);
	if (!p->buf)
		return ag_errf(err, ENOMEM, "sse parser: event buffer of %zu bytes: out of memory",
			       max_event);
	p->max_event = max_event;
	return 0;
}

void ag_sse_parser_release(struct ag_sse_parser *p)
{
	free(p->buf);
	p->buf = NULL;
}

__attribute__((format(printf, 3, 4))) static int fail(struct ag_sse_parser *p, int code,
						      const char *fmt, ...)
{
	char detail[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	p->failed = true;
	return ag_errf(&p->err, code, "sse stream: %s", detail);
}

static bool field_is(const char *name, size_t n, const char *lit)
{
	return strlen(lit) == n && !memcmp(name, lit, n);
}

static void set_retry(struct ag_sse_parser *p, const char *v, size_t n)
{
	uint64_t ms = 0;

	if (!n)
		return;
	for (size_t i = 0; i < n; i++)
		if (v[i] < '0' || v[i] > '9' || __builtin_mul_overflow(ms, 10, &ms) ||
		    __builtin_add_overflow(ms, v[i] - '0', &ms))
			return;
	p->retry_ms = ms;
	p->has_retry = true;
}

/* One complete, non-empty, non-comment line in buf[data_len..]. */
static int field(struct ag_sse_parser *p)
{
	char *line = p->buf + p->data_len, *colon = memchr(line, ':', p->line_len);
	size_t n = colon ? (size_t)(colon - line) : p->line_len;
	char *v = colon ? colon + 1 : line + p->line_len;
	size_t vlen = line + p->line_len - v;

	if (vlen && *v == ' ')
		v++, vlen--;
	if (field_is(line, n, "data")) {
		/* The value moves down over the field name; it always fits
		 * because "data" is longer than the LF that replaces it. */
		memmove(p->buf + p->data_len, v, vlen);
		p->data_len += vlen;
		p->buf[p->data_len++] = '\n';
	} else if (field_is(line, n, "event")) {
		if (vlen > AG_SSE_MAX_TYPE)
			return fail(p, E2BIG, "event type longer than %d bytes", AG_SSE_MAX_TYPE);
		memcpy(p->type, v, vlen);
		p->type_len = vlen;
	} else if (field_is(line, n, "id")) {
		if (vlen > AG_SSE_MAX_ID)
			return fail(p, E2BIG, "event id longer than %d bytes", AG_SSE_MAX_ID);
		if (!memchr(v, '\0', vlen)) {
			memcpy(p->id, v, vlen);
			p->id_len = vlen;
		}
	} else if (field_is(line, n, "retry")) {
		set_retry(p, v, vlen);
	}
	return 0;
}

/* End of line: returns 1 when an event is ready. */
static int end_line(struct ag_sse_parser *p, struct ag_sse_event *ev)
{
	int r;

	if (p->in_comment) {
		p->in_comment = false;
		return 0;
	}
	if (p->line_len) {
		r = field(p);
		p->line_len = 0;
		return r;
	}
	if (!p->data_len) {
		p->type_len = 0;
		return 0;
	}
	ev->type = AG_SSE_EV_EVENT;
	ev->event = p->type_len ? p->type : "message";
	ev->event_len = p->type_len ? p->type_len : 7;
	ev->data = p->buf;
	ev->data_len = p->data_len - 1;
	ev->id = p->id;
	ev->id_len = p->id_len;
	p->dispatched = true;
	return 1;
}

static int append(struct ag_sse_parser *p, const char *s, size_t n)
{
	if (n > p->max_event - p->data_len - p->line_len)
		return fail(p, E2BIG, "event larger than %zu bytes", p->max_event);
	memcpy(p->buf + p->data_len + p->line_len, s, n);
	p->line_len += n;
	return 0;
}

/* Bytes of a line up to (not including) CR or LF, from s[0..n). */
static int line_bytes(struct ag_sse_parser *p, const char *s, size_t n)
{
	if (!p->line_len && !p->in_comment && s[0] == ':')
		p->in_comment = true;
	return p->in_comment ? 0 : append(p, s, n);
}

ssize_t ag_sse_parse(struct ag_sse_parser *p, const void *data, size_t len, struct ag_sse_event *ev)
{
	const char *buf = data;
	size_t off = 0;
	int r;

	memset(ev, 0, sizeof(*ev));
	ev->type = AG_SSE_EV_NEED_MORE;
	if (p->failed)
		return -p->err.code;
	if (p->dispatched) {
		p->dispatched = false;
		p->data_len = 0;
		p->type_len = 0;
	}
	while (off < len) {
		char c = buf[off];
		size_t e;

		if (p->bom < 3) {
			if (c == bom[p->bom]) {
				p->bom++;
				off++;
				continue;
			}
			/* Not a BOM after all: what matched is line data. */
			r = p->bom ? line_bytes(p, bom, p->bom) : 0;
			p->bom = 3;
			if (r)
				return r;
		}
		if (c == '\r' || c == '\n') {
			bool crlf = c == '\n' && p->after_cr;

			p->after_cr = c == '\r';
			off++;
			if (crlf)
				continue;
			r = end_line(p, ev);
			if (r < 0)
				return r;
			if (r)
				return off;
			continue;
		}
		p->after_cr = false;
		for (e = off; e < len && buf[e] != '\r' && buf[e] != '\n'; e++)
			;
		r = line_bytes(p, buf + off, e - off);
		if (r)
			return r;
		off = e;
	}
	return off;
}

bool ag_sse_at_boundary(const struct ag_sse_parser *p)
{
	bool pending = !p->dispatched && (p->data_len || p->type_len);

	return !p->failed && !p->line_len && !p->in_comment && !p->after_cr && !pending;
}
