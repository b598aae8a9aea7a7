// SPDX-License-Identifier: GPL-2.0
/*
 * DNS messages (see dnsmsg.h).  An answer is read in passes over its
 * answer section: the first ones follow the CNAME chain from the question's
 * name (at most CNAME_HOPS links, so a loop ends), the last collects the
 * A or AAAA records of the chain's end.  Records are matched by name, not
 * by position: resolvers order them as they like.  Names are decoded whole
 * before they are compared, and a name with a byte that could make two
 * different names compare equal ('.' or a control byte in a label) refuses
 * the answer.
 */
#include <errno.h>
#include <string.h>

#include "dnsmsg.h"
#include "tls.h"

#define HDR_LEN 12
#define NAME_MAX_LEN 254 /* 253 and the NUL */
#define PTR_HOPS 16
#define CNAME_HOPS 8
#define CLASS_IN 1
#define TYPE_CNAME 5

#define FLAG_QR 0x8000
#define FLAG_OPCODE 0x7800
#define FLAG_TC 0x0200
#define RCODE_MASK 0x000f
#define RCODE_NXDOMAIN 3
#define RCODE_REFUSED 5
#define TYPE_OPT 41
#define FLAG_RA 0x0080

struct rr {
	char owner[NAME_MAX_LEN];
	uint16_t type, class;
	uint32_t ttl;
	size_t rdata; /* offset in the message */
	uint16_t rdlen;
};

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

int ag_dnsmsg_query(uint8_t *buf, size_t cap, uint16_t id, const char *name, uint16_t qtype)
{
	size_t n = strlen(name), off = HDR_LEN;
	const char *label = name;

	if (cap < AG_DNSMSG_QUERY_MAX)
		return -ENOSPC;
	if (!ag_tls_dns_name_valid(name, n))
		return -EINVAL;
	memset(buf, 0, HDR_LEN);
	buf[0] = id >> 8;
	buf[1] = id & 0xff;
	buf[2] = 0x01; /* RD: the resolver recurses */
	buf[5] = 1;    /* one question */
	while (*label) {
		const char *dot = strchr(label, '.');
		size_t len = dot ? (size_t)(dot - label) : strlen(label);

		buf[off++] = (uint8_t)len;
		memcpy(buf + off, label, len);
		off += len;
		label += len + (dot ? 1 : 0);
	}
	buf[off++] = 0;
	buf[off++] = qtype >> 8;
	buf[off++] = qtype & 0xff;
	buf[off++] = 0;
	buf[off++] = CLASS_IN;
	return (int)off;
}

/*
 * The name at *off, lower-cased and dotted, into out; *off moves past it
 * (past the first pointer when compressed).  -EPROTO when it overruns the
 * message, loops, is too long or has a byte that does not belong.
 */
static int read_name(const uint8_t *m, size_t len, size_t *off, char *out)
{
	size_t at = *off, n = 0;
	int hops = 0;
	bool jumped = false;

	for (;;) {
		uint8_t c;

		if (at >= len)
			return -EPROTO;
		c = m[at];
		if ((c & 0xc0) == 0xc0) {
			if (at + 1 >= len || ++hops > PTR_HOPS)
				return -EPROTO;
			if (!jumped)
				*off = at + 2;
			jumped = true;
			at = (size_t)(c & 0x3f) << 8 | m[at + 1];
			continue;
		}
		if (c & 0xc0)
			return -EPROTO; /* reserved label types */
		if (!c)
			break;
		if (at + 1 + c > len || n + c + 1 >= NAME_MAX_LEN)
			return -EPROTO;
		if (n)
			out[n++] = '.';
		for (size_t i = 0; i < c; i++) {
			uint8_t b = m[at + 1 + i];

			if (b <= ' ' || b == '.' || b >= 0x7f)
				return -EPROTO;
			out[n++] = (char)(b >= 'A' && b <= 'Z' ? b + 32 : b);
		}
		at += 1 + c;
	}
	out[n] = '\0';
	if (!jumped)
		*off = at + 1;
	return 0;
}

static int read_rr(const uint8_t *m, size_t len, size_t *off, struct rr *rr)
{
	if (read_name(m, len, off, rr->owner) || *off + 10 > len)
		return -EPROTO;
	rr->type = get16(m + *off);
	rr->class = get16(m + *off + 2);
	rr->ttl = (uint32_t)get16(m + *off + 4) << 16 | get16(m + *off + 6);
	/* RFC 2181 §8: a TTL with the top bit set counts as 0. */
	if (rr->ttl & 0x80000000u)
		rr->ttl = 0;
	rr->rdlen = get16(m + *off + 8);
	rr->rdata = *off + 10;
	if (rr->rdata + rr->rdlen > len)
		return -EPROTO;
	*off = rr->rdata + rr->rdlen;
	return 0;
}

static void use_ttl(struct ag_dnsmsg_answer *out, bool *first, uint32_t ttl)
{
	if (*first || ttl < out->ttl)
		out->ttl = ttl;
	*first = false;
}

/* The records of the answer section, from an, one at a time through fn. */
static int scan(const uint8_t *m, size_t len, size_t an, uint16_t count,
		int (*fn)(const uint8_t *m, const struct rr *rr, void *ctx), void *ctx)
{
	struct rr rr;
	int ret;

	for (uint16_t i = 0; i < count; i++) {
		if (read_rr(m, len, &an, &rr))
			return -EPROTO;
		if ((ret = fn(m, &rr, ctx)))
			return ret;
	}
	return 0;
}

struct walk {
	const uint8_t *msg;
	size_t len;
	uint16_t qtype;
	char name[NAME_MAX_LEN]; /* the chain's current end */
	bool moved, first;
	struct ag_dnsmsg_answer *out;
};

static int follow_cname(const uint8_t *m, const struct rr *rr, void *ctx)
{
	struct walk *w = ctx;
	size_t at = rr->rdata;

	if (w->moved || rr->type != TYPE_CNAME || rr->class != CLASS_IN ||
	    strcmp(rr->owner, w->name))
		return 0;
	if (read_name(m, w->len, &at, w->name) || at != rr->rdata + rr->rdlen)
		return -EPROTO;
	use_ttl(w->out, &w->first, rr->ttl);
	w->moved = true;
	return 0;
}

static int collect(const uint8_t *m, const struct rr *rr, void *ctx)
{
	struct walk *w = ctx;
	struct ag_dnsmsg_answer *out = w->out;
	size_t alen = w->qtype == AG_DNS_A ? 4 : 16;

	if (rr->type != w->qtype || rr->class != CLASS_IN || strcmp(rr->owner, w->name))
		return 0;
	if (rr->rdlen != alen)
		return -EPROTO;
	if (out->nr == AG_DNSMSG_MAX_ADDRS)
		return 0;
	memset(out->addr[out->nr], 0, 16);
	if (alen == 4) {
		out->addr[out->nr][10] = out->addr[out->nr][11] = 0xff;
		memcpy(out->addr[out->nr] + 12, m + rr->rdata, 4);
	} else {
		memcpy(out->addr[out->nr], m + rr->rdata, 16);
	}
	out->nr++;
	use_ttl(out, &w->first, rr->ttl);
	return 0;
}

/* The question must be the one asked: one entry, same name, type, class. */
static int check_question(const uint8_t *m, size_t len, size_t *off, const char *name,
			  uint16_t qtype)
{
	char qname[NAME_MAX_LEN];

	if (get16(m + 4) != 1 || read_name(m, len, off, qname) || *off + 4 > len)
		return -EPROTO;
	if (strcmp(qname, name) || get16(m + *off) != qtype || get16(m + *off + 2) != CLASS_IN)
		return -EPROTO;
	*off += 4;
	return 0;
}

int ag_dnsmsg_parse(const uint8_t *msg, size_t len, uint16_t id, const char *name, uint16_t qtype,
		    struct ag_dnsmsg_answer *out)
{
	struct walk w = { .msg = msg, .len = len, .qtype = qtype, .first = true, .out = out };
	size_t an = HDR_LEN;
	uint16_t flags, count;
	int hops;

	memset(out, 0, sizeof(*out));
	if ((qtype != AG_DNS_A && qtype != AG_DNS_AAAA) || len < HDR_LEN || get16(msg) != id)
		return -EPROTO;
	flags = get16(msg + 2);
	if (!(flags & FLAG_QR) || (flags & FLAG_OPCODE))
		return -EPROTO;
	if (flags & FLAG_TC)
		return -EAGAIN;
	if ((flags & RCODE_MASK) == RCODE_NXDOMAIN)
		return -ENOENT;
	if (flags & RCODE_MASK)
		return -EIO;
	if (strlen(name) >= sizeof(w.name) || check_question(msg, len, &an, name, qtype))
		return -EPROTO;
	count = get16(msg + 6);
	strcpy(w.name, name);
	for (hops = 0; hops <= CNAME_HOPS; hops++) {
		w.moved = false;
		if (scan(msg, len, an, count, follow_cname, &w))
			goto bad;
		if (!w.moved)
			break;
	}
	if (hops > CNAME_HOPS || scan(msg, len, an, count, collect, &w))
		goto bad;
	return 0;
bad:
	memset(out, 0, sizeof(*out));
	return -EPROTO;
}

/*
 * A question's name as a query carries it: uncompressed, letters, digits,
 * '-' and '_' only, lower-cased into out; *off moves past it.
 */
static int read_query_name(const uint8_t *m, size_t len, size_t *off, char *out)
{
	size_t at = *off, n = 0;

	while (at < len && m[at]) {
		uint8_t c = m[at];

		if (c > 63 || at + 1 + c >= len || n + c + 1 >= NAME_MAX_LEN)
			return -EPROTO;
		if (n)
			out[n++] = '.';
		for (size_t i = 0; i < c; i++) {
			uint8_t b = m[at + 1 + i];

			if (!((b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') ||
			      (b >= '0' && b <= '9') || b == '-' || b == '_'))
				return -EPROTO;
			out[n++] = (char)(b >= 'A' && b <= 'Z' ? b + 32 : b);
		}
		at += 1 + c;
	}
	if (at >= len || !n)
		return -EPROTO;
	out[n] = '\0';
	*off = at + 1;
	return 0;
}

/* The one OPT record a query may carry, ending the message exactly. */
static int check_opt(const uint8_t *m, size_t len, size_t off)
{
	uint16_t rdlen;

	if (off + 11 > len || m[off] || get16(m + off + 1) != TYPE_OPT)
		return -EPROTO;
	rdlen = get16(m + off + 9);
	return rdlen <= AG_DNSMSG_OPT_MAX && off + 11 + rdlen == len ? 0 : -EPROTO;
}

int ag_dnsmsg_question(const uint8_t *msg, size_t len, struct ag_dnsmsg_question *q)
{
	size_t off = HDR_LEN;
	uint16_t flags;

	memset(q, 0, sizeof(*q));
	if (len < HDR_LEN)
		return -EPROTO;
	flags = get16(msg + 2);
	if ((flags & (FLAG_QR | FLAG_OPCODE | FLAG_TC | RCODE_MASK)) || get16(msg + 4) != 1 ||
	    get16(msg + 6) || get16(msg + 8) || get16(msg + 10) > 1)
		goto bad;
	if (read_query_name(msg, len, &off, q->name) || off + 4 > len ||
	    get16(msg + off + 2) != CLASS_IN)
		goto bad;
	q->qtype = get16(msg + off);
	q->end = off + 4;
	if (get16(msg + 10) ? check_opt(msg, len, q->end) : q->end != len)
		goto bad;
	return 0;
bad:
	memset(q, 0, sizeof(*q));
	return -EPROTO;
}

int ag_dnsmsg_refused(const uint8_t *query, const struct ag_dnsmsg_question *q, uint8_t *out,
		      size_t cap)
{
	uint16_t flags;

	if (cap < q->end || q->end < HDR_LEN)
		return -ENOSPC;
	memcpy(out, query, q->end);
	/* Keep RD and CD as asked; the rest of the flags are the answer's. */
	flags = (get16(query + 2) & 0x0110) | FLAG_QR | FLAG_RA | RCODE_REFUSED;
	out[2] = flags >> 8;
	out[3] = flags & 0xff;
	memset(out + 6, 0, 6);
	return (int)q->end;
}

int ag_dnsmsg_answer_head(const uint8_t *msg, size_t len, unsigned int *rcode,
			  unsigned int *answers)
{
	if (len < HDR_LEN || !(get16(msg + 2) & FLAG_QR))
		return -EPROTO;
	*rcode = get16(msg + 2) & RCODE_MASK;
	*answers = get16(msg + 6);
	return 0;
}
