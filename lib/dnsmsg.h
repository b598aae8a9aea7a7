/* SPDX-License-Identifier: GPL-2.0 */
/*
 * DNS messages (RFC 1035), as far as the daemon's own lookups need them
 * (daemon/resolve.h): a query for the A or AAAA records of one name, and
 * the addresses its answer gives that name, following CNAMEs within the
 * answer section.  Parsing is strict and bounded: every length is checked
 * against the message, a compressed name follows at most a few pointers,
 * and an answer that does not add up is refused whole, never half used.
 */
#ifndef AG_DNSMSG_H
#define AG_DNSMSG_H

#include <stddef.h>
#include <stdint.h>

#define AG_DNS_A 1
#define AG_DNS_AAAA 28
/* A query is at most this long: header, a 253-byte name, type, class. */
#define AG_DNSMSG_QUERY_MAX (12 + 255 + 4)
/* Addresses kept of one answer; more are left out (fewer allowed, never more). */
#define AG_DNSMSG_MAX_ADDRS 16

struct ag_dnsmsg_answer {
	uint8_t addr[AG_DNSMSG_MAX_ADDRS][16]; /* v4-mapped for A */
	int nr;
	uint32_t ttl; /* the smallest TTL of the records used; 0 when none */
};

/*
 * A recursive query for qtype records of name (lower case, no trailing
 * dot, a valid DNS name) into buf: its length, or -EINVAL for a name that
 * is not one, -ENOSPC when cap is below AG_DNSMSG_QUERY_MAX.
 */
int ag_dnsmsg_query(uint8_t *buf, size_t cap, uint16_t id, const char *name, uint16_t qtype);

/*
 * The answer in msg to the query (id, name, qtype): 0 with out filled
 * (out->nr 0: the name has no such record), -ENOENT for NXDOMAIN, -EAGAIN
 * when the resolver truncated it (TC), -EIO for another error code, and
 * -EPROTO when it is malformed or answers another question.
 */
int ag_dnsmsg_parse(const uint8_t *msg, size_t len, uint16_t id, const char *name, uint16_t qtype,
		    struct ag_dnsmsg_answer *out);

/*
 * A query as the DNS relay forwards it (daemon/dns.c): the question, and
 * where it ends in the message.
 */
struct ag_dnsmsg_question {
	char name[254]; /* lower case, dotted, no trailing dot */
	uint16_t qtype;
	size_t end; /* offset just past the question */
};

/* At most this many bytes of EDNS options ride along (AG_DNSMSG_OPT_MAX). */
#define AG_DNSMSG_OPT_MAX 64

/*
 * Whether msg is a plain standard query, and nothing else: QR 0, opcode
 * QUERY, TC 0, rcode 0; exactly one question, of class IN, whose name is
 * uncompressed, non-empty and made of 1-63 byte labels of [A-Za-z0-9_-]
 * (at most 253 bytes dotted); no answer or authority records; at most one
 * additional record, an OPT (EDNS, RFC 6891) on the root name with at most
 * AG_DNSMSG_OPT_MAX bytes of options; no byte after it.  0 with q filled,
 * -EPROTO otherwise.
 */
int ag_dnsmsg_question(const uint8_t *msg, size_t len, struct ag_dnsmsg_question *q);

/*
 * The REFUSED answer to query (whose question q describes) into out: the
 * query's header and question, QR and RA set, rcode REFUSED, no records.
 * Its length, or -ENOSPC when cap is below q->end.
 */
int ag_dnsmsg_refused(const uint8_t *query, const struct ag_dnsmsg_question *q, uint8_t *out,
		      size_t cap);

/*
 * An answer's header as the relay reports it: its rcode and the number of
 * records in its answer section.  -EPROTO when msg is not an answer (too
 * short for a header, or QR clear).
 */
int ag_dnsmsg_answer_head(const uint8_t *msg, size_t len, unsigned int *rcode,
			  unsigned int *answers);

#endif
