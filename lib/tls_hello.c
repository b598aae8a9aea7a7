// SPDX-License-Identifier: GPL-2.0
/* The SNI of a ClientHello, read before any TLS library sees the bytes (lib/tls.h). */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "hostport.h"
#include "tls.h"

/* ---- ClientHello ---- */

bool ag_tls_looks_like(const void *buf, size_t len)
{
	const unsigned char *p = buf;

	return len >= 3 && p[0] == 0x16 && p[1] == 3 && p[2] <= 4;
}

/* A bounds-checked reader over [p, end). */
struct rd {
	const unsigned char *p, *end;
};

static bool rd_u8(struct rd *r, size_t *v)
{
	if (r->end - r->p < 1)
		return false;
	*v = r->p[0];
	r->p += 1;
	return true;
}

static bool rd_u16(struct rd *r, size_t *v)
{
	if (r->end - r->p < 2)
		return false;
	*v = (size_t)r->p[0] << 8 | r->p[1];
	r->p += 2;
	return true;
}

static bool rd_skip(struct rd *r, size_t n)
{
	if ((size_t)(r->end - r->p) < n)
		return false;
	r->p += n;
	return true;
}

/* A sub-reader of n bytes, which the parent skips. */
static bool rd_sub(struct rd *r, size_t n, struct rd *sub)
{
	sub->p = r->p;
	if (!rd_skip(r, n))
		return false;
	sub->end = r->p;
	return true;
}

/* server_name extension body: 1 if a host_name was copied, 0 if none, -EPROTO. */
static int sni_ext(struct rd ext, char *out, size_t cap)
{
	struct rd list;
	size_t len, type, n;
	int found = 0;

	if (!rd_u16(&ext, &len) || !rd_sub(&ext, len, &list) || ext.p != ext.end || !len)
		return -EPROTO;
	while (list.p < list.end) {
		struct rd name;

		if (!rd_u8(&list, &type) || !rd_u16(&list, &n) || !rd_sub(&list, n, &name))
			return -EPROTO;
		if (type != 0) /* only host_name is defined; others are skipped */
			continue;
		/* RFC 6066: at most one name of a type. */
		if (found)
			return -EPROTO;
		if (!ag_tls_dns_name_valid((const char *)name.p, n) || n >= cap)
			return -EPROTO;
		memcpy(out, name.p, n);
		out[n] = '\0';
		ag_ascii_lower(out);
		found = 1;
	}
	return found;
}

int ag_tls_client_hello_sni(const void *buf, size_t len, char *out, size_t cap)
{
	const unsigned char *p = buf;
	struct rd r, body, exts;
	size_t rec_len, hs_len, n, v;
	int found = 0;

	if (cap < AG_TLS_NAME_MAX)
		return -ENOSPC;
	out[0] = '\0';
	/* What the bytes present so far say, before waiting for the rest. */
	if (len >= 1 && p[0] != 0x16)
		return -EPROTO;
	if (len >= 2 && p[1] != 3)
		return -EPROTO;
	if (len >= 3 && p[2] > 4)
		return -EPROTO;
	if (len < 5)
		return -EAGAIN;
	rec_len = (size_t)p[3] << 8 | p[4];
	/* Smaller than a handshake header, or beyond the plaintext record limit. */
	if (rec_len < 4 || rec_len > 16384)
		return -EPROTO;
	if (len >= 6 && p[5] != 1) /* ClientHello */
		return -EPROTO;
	if (len >= 9) {
		hs_len = (size_t)p[6] << 16 | (size_t)p[7] << 8 | p[8];
		/* One record must hold it all (see tls.h). */
		if (hs_len + 4 != rec_len)
			return -EPROTO;
	}
	if (len < 5 + rec_len)
		return -EAGAIN;
	hs_len = rec_len - 4;
	body.p = p + 9;
	body.end = body.p + hs_len;
	r = body;
	/* legacy_version, random, session_id, cipher_suites, compression_methods. */
	if (!rd_u16(&r, &v) || v >> 8 != 3 || !rd_skip(&r, 32) || !rd_u8(&r, &n) || n > 32 ||
	    !rd_skip(&r, n) || !rd_u16(&r, &n) || n < 2 || n % 2 || !rd_skip(&r, n) ||
	    !rd_u8(&r, &n) || n < 1 || !rd_skip(&r, n))
		return -EPROTO;
	if (r.p == r.end)
		return 0; /* no extensions at all */
	if (!rd_u16(&r, &n) || !rd_sub(&r, n, &exts) || r.p != r.end)
		return -EPROTO;
	while (exts.p < exts.end) {
		struct rd ext;
		size_t type;

		if (!rd_u16(&exts, &type) || !rd_u16(&exts, &n) || !rd_sub(&exts, n, &ext))
			return -EPROTO;
		if (type != 0)
			continue;
		if (found) /* a second server_name extension */
			return -EPROTO;
		found = sni_ext(ext, out, cap);
		if (found < 0) {
			out[0] = '\0';
			return found;
		}
		found = 1 + found; /* 1: extension seen without host_name, 2: name */
	}
	if (found == 2)
		return 1;
	return 0;
}
