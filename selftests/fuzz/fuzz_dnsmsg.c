// SPDX-License-Identifier: GPL-2.0
/*
 * Fuzz the DNS answer parser, which reads what the resolver sends (or
 * whoever manages to spoof its address).  Beyond memory safety: a refused
 * answer leaves nothing behind; an accepted one holds at most
 * AG_DNSMSG_MAX_ADDRS addresses, v4-mapped ones for A; bytes after the
 * message never change the outcome; and the query built for the input
 * taken as a name, answered with no records, parses as just that.  The
 * relay's query check (ag_dnsmsg_question) reads what agents send: a query
 * it takes ends within the input with a valid name, and the REFUSED answer
 * made of it is an answer with no records that is no query.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dnsmsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int parse(const uint8_t *data, size_t size, const char *name, uint16_t qtype,
		 struct ag_dnsmsg_answer *a)
{
	uint16_t id = size >= 2 ? (uint16_t)(data[0] << 8 | data[1]) : 0;
	int r = ag_dnsmsg_parse(data, size, id, name, qtype, a);

	if (r != 0 && r != -ENOENT && r != -EAGAIN && r != -EIO && r != -EPROTO)
		abort();
	if (r != 0 && (a->nr || a->ttl))
		abort();
	if (a->nr < 0 || a->nr > AG_DNSMSG_MAX_ADDRS)
		abort();
	for (int i = 0; qtype == AG_DNS_A && i < a->nr; i++)
		if (memcmp(a->addr[i], "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12))
			abort();
	return r;
}

static void trailing(const uint8_t *data, size_t size, const char *name, uint16_t qtype)
{
	struct ag_dnsmsg_answer a, b;
	uint8_t *more = malloc(size + 9);
	int r;

	if (!more)
		return;
	memcpy(more, data, size);
	memset(more + size, 0xc0, 9);
	r = parse(data, size, name, qtype, &a);
	if (r != -EPROTO &&
	    (parse(more, size + 9, name, qtype, &b) != r || memcmp(&a, &b, sizeof(a))))
		abort();
	free(more);
}

/* The input as a name: a query for it, answered with nothing, is nothing. */
static void round_trip(const uint8_t *data, size_t size)
{
	uint8_t q[AG_DNSMSG_QUERY_MAX];
	struct ag_dnsmsg_answer a;
	char name[300];
	int len;

	if (size >= sizeof(name) || memchr(data, '\0', size))
		return;
	memcpy(name, data, size);
	name[size] = '\0';
	for (size_t i = 0; i < size; i++)
		if (name[i] >= 'A' && name[i] <= 'Z')
			return; /* answers are compared in lower case */
	len = ag_dnsmsg_query(q, sizeof(q), 0x4147, name, AG_DNS_AAAA);
	if (len == -EINVAL)
		return;
	if (len < 12 || len > AG_DNSMSG_QUERY_MAX)
		abort();
	q[2] |= 0x80; /* QR: the same message, now an answer */
	if (ag_dnsmsg_parse(q, (size_t)len, 0x4147, name, AG_DNS_AAAA, &a) || a.nr)
		abort();
}

static void relay_question(const uint8_t *data, size_t size)
{
	struct ag_dnsmsg_question q, again;
	unsigned int rcode, answers;
	uint8_t out[AG_DNSMSG_QUERY_MAX + 11 + AG_DNSMSG_OPT_MAX];
	int r = ag_dnsmsg_question(data, size, &q), n;

	if (r != 0 && r != -EPROTO)
		abort();
	if (r)
		return;
	if (q.end < 12 + 2 + 4 || q.end > size || !q.name[0] || strlen(q.name) > 253)
		abort();
	n = ag_dnsmsg_refused(data, &q, out, sizeof(out));
	if (n != (int)q.end || ag_dnsmsg_answer_head(out, (size_t)n, &rcode, &answers) ||
	    rcode != 5 || answers || ag_dnsmsg_question(out, (size_t)n, &again) != -EPROTO)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	relay_question(data, size);
	static const char *const names[] = { "example.com", "a.b.test" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		trailing(data, size, names[i], AG_DNS_A);
		trailing(data, size, names[i], AG_DNS_AAAA);
	}
	round_trip(data, size);
	return 0;
}
