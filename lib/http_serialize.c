// SPDX-License-Identifier: GPL-2.0
/*
 * The HTTP/1.1 serializer: the head the gateway forwards, and the chunked
 * encoder for bodies it re-frames (see http.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "audit.h"
#include "http.h"

/* Fields that describe one hop (RFC 9110 7.6.1) or the framing, which the
 * caller declares anew through ag_http_edit. */
static const char *const hop_by_hop[] = {
	"Connection", "Keep-Alive", "Proxy-Connection",	 "TE",
	"Trailer",    "Upgrade",    "Transfer-Encoding", "Content-Length",
};

struct out {
	char *buf;
	size_t cap, len;
	bool short_buf;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->short_buf || n > o->cap - o->len) {
		o->short_buf = true;
		return;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
}

static void put_str(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

static void put_field(struct out *o, const char *name, size_t nlen, const char *value, size_t vlen)
{
	put(o, name, nlen);
	put(o, ": ", 2);
	put(o, value, vlen);
	put(o, "\r\n", 2);
}

static bool named_by_connection(const struct ag_http_msg *m, const struct ag_http_header *h)
{
	const struct ag_http_header *c = NULL;

	while ((c = ag_http_find(m, "Connection", c))) {
		const char *s = c->value, *elem;
		size_t elen;

		while (ag_http_list_next(&s, c->value + c->value_len, &elem, &elen))
			if (elen == h->name_len && !strncasecmp(elem, h->name, elen))
				return true;
	}
	return false;
}

static bool dropped(const struct ag_http_msg *m, const struct ag_http_edit *e,
		    const struct ag_http_header *h)
{
	for (size_t i = 0; i < AG_ARRAY_SIZE(hop_by_hop); i++)
		if (ag_http_name_eq(h, hop_by_hop[i]))
			return true;
	if (e->keep) {
		for (const char *const *k = e->keep; *k; k++)
			if (ag_http_name_eq(h, *k))
				return named_by_connection(m, h);
		return true;
	}
	for (const char *const *r = e->remove; r && *r; r++)
		if (ag_http_name_eq(h, *r))
			return true;
	/*
	 * A sender may make any field hop-by-hop by naming it in Connection,
	 * except Host: "Connection: host" would turn a valid HTTP/1.1 request
	 * into one the next hop must reject (found by fuzz_http).
	 */
	return !ag_http_name_eq(h, "Host") && named_by_connection(m, h);
}

static int check_added(const struct ag_http_header *h, struct ag_err *err)
{
	if (!h->name_len)
		return ag_errf(err, EINVAL, "http serialize: added field with empty name");
	for (size_t i = 0; i < h->name_len; i++)
		if (!ag_http_is_tchar(h->name[i]))
			return ag_errf(
			    err, EINVAL,
			    "http serialize: added field name: byte 0x%02x is not a token "
			    "character",
			    (uint8_t)h->name[i]);
	for (size_t i = 0; i < h->value_len; i++)
		if (!ag_http_is_value_byte(h->value[i]))
			return ag_errf(
			    err, EINVAL,
			    "http serialize: added field %.*s: control byte 0x%02x in value",
			    (int)(h->name_len < 64 ? h->name_len : 64), h->name,
			    (uint8_t)h->value[i]);
	return 0;
}

/* A caller's start line: a token method and an origin-form target. */
static int check_start(const char *method, const char *target, struct ag_err *err)
{
	if (!*method || target[0] != '/')
		return ag_errf(err, EINVAL, "http serialize: empty method or target not \"/...\"");
	for (const char *p = method; *p; p++)
		if (!ag_http_is_tchar(*p))
			return ag_errf(err, EINVAL, "http serialize: method: byte 0x%02x is not a "
				       "token character", (uint8_t)*p);
	for (const char *p = target; *p; p++)
		if ((uint8_t)*p <= 0x20 || (uint8_t)*p >= 0x7f)
			return ag_errf(err, EINVAL, "http serialize: target: byte 0x%02x outside "
				       "VCHAR", (uint8_t)*p);
	return 0;
}

/* " %03d " as printf writes it, without a printf per response: a parsed status is 100..599. */
static void put_status(struct out *o, int status)
{
	char num[16];

	if (status < 0 || status > 999) {
		snprintf(num, sizeof(num), " %03d ", status);
		put_str(o, num);
		return;
	}
	num[0] = ' ';
	num[1] = (char)('0' + status / 100);
	num[2] = (char)('0' + status / 10 % 10);
	num[3] = (char)('0' + status % 10);
	num[4] = ' ';
	put(o, num, 5);
}

int ag_http_serialize_head(const struct ag_http_msg *m, const struct ag_http_edit *e, char *buf,
			   size_t cap, size_t *out_len, struct ag_err *err)
{
	struct out o = { .buf = buf, .cap = cap };
	/* A request of the caller's is the caller's HTTP/1.1, whatever came in. */
	bool v11 = m->version_minor || (m->is_request && e->method);
	const char *version = v11 ? "HTTP/1.1" : "HTTP/1.0";
	char num[32];
	int ret;

	for (size_t i = 0; i < e->nadd; i++)
		if ((ret = check_added(&e->add[i], err)))
			return ret;
	if (m->is_request && e->method) {
		if ((ret = check_start(e->method, e->target, err)))
			return ret;
		put_str(&o, e->method);
		put(&o, " ", 1);
		put_str(&o, e->target);
		put(&o, " ", 1);
		put_str(&o, version);
	} else if (m->is_request) {
		put(&o, m->method, m->method_len);
		put(&o, " ", 1);
		put(&o, m->target, m->target_len);
		put(&o, " ", 1);
		put_str(&o, version);
	} else {
		put_str(&o, version);
		put_status(&o, m->status);
		put(&o, m->reason, m->reason_len);
	}
	put(&o, "\r\n", 2);
	for (unsigned int i = 0; i < m->nfields; i++) {
		const struct ag_http_header *h = &m->headers[i];

		if (!dropped(m, e, h))
			put_field(&o, h->name, h->name_len, h->value, h->value_len);
	}
	for (size_t i = 0; i < e->nadd; i++)
		put_field(&o, e->add[i].name, e->add[i].name_len, e->add[i].value,
			  e->add[i].value_len);
	if (e->framing == AG_HTTP_BODY_LENGTH) {
		const char *d = ag_audit_u64(e->content_length, num + sizeof(num));

		put_field(&o, "Content-Length", 14, d, (size_t)(num + sizeof(num) - d));
	} else if (e->framing == AG_HTTP_BODY_CHUNKED) {
		put_str(&o, "Transfer-Encoding: chunked\r\n");
	}
	if (!e->keep_alive)
		put_str(&o, "Connection: close\r\n");
	else if (!v11)
		put_str(&o, "Connection: keep-alive\r\n");
	put(&o, "\r\n", 2);
	if (o.short_buf)
		return ag_errf(err, ENOSPC, "http serialize: head does not fit in %zu bytes", cap);
	*out_len = o.len;
	return 0;
}

size_t ag_http_chunk_prefix(uint64_t len, char out[AG_HTTP_CHUNK_PREFIX_MAX])
{
	if (!len)
		return 0;
	return snprintf(out, AG_HTTP_CHUNK_PREFIX_MAX, "%" PRIx64 "\r\n", len);
}

int ag_http_chunk_encode(const void *data, size_t len, char *out, size_t cap, size_t *out_len)
{
	char prefix[AG_HTTP_CHUNK_PREFIX_MAX];
	struct out o = { .buf = out, .cap = cap };
	size_t n = ag_http_chunk_prefix(len, prefix);

	if (!n)
		return -EINVAL;
	put(&o, prefix, n);
	put(&o, data, len);
	put(&o, AG_HTTP_CHUNK_SUFFIX, 2);
	if (o.short_buf)
		return -ENOSPC;
	*out_len = o.len;
	return 0;
}

/* The reason phrases of the statuses the gateway writes itself. */
const char *ag_http_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 202:
		return "Accepted";
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 413:
		return "Content Too Large";
	case 415:
		return "Unsupported Media Type";
	case 431:
		return "Request Header Fields Too Large";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	}
	return "Error";
}
