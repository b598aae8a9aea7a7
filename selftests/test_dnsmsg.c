// SPDX-License-Identifier: GPL-2.0
/*
 * DNS answers as the daemon's lookups read them (lib/dnsmsg.h), over the
 * fuzz harness's seed corpus: what each answer gives, and what is refused.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnsmsg.h"
#include "test.h"
#include "testlib.h"
#include "util.h"

TEST(dnsmsg_parse)
{
	static const struct {
		const char *file, *name;
		uint16_t qtype;
		int ret, nr;
		uint32_t ttl;
		const char *first; /* the first address, as ag_addr_fmt writes it (port 0) */
	} cases[] = {
		{ "a_answer", "example.com", AG_DNS_A, 0, 2, 60, "93.184.216.34:0" },
		{ "cname_chain", "example.com", AG_DNS_A, 0, 1, 30, "192.0.2.7:0" },
		{ "a_for_other_name", "example.com", AG_DNS_A, 0, 0, 0, NULL },
		{ "a_answer", "example.com", AG_DNS_AAAA, -EPROTO, 0, 0, NULL },
		{ "a_answer", "example.org", AG_DNS_A, -EPROTO, 0, 0, NULL },
		{ "nxdomain", "example.com", AG_DNS_A, -ENOENT, 0, 0, NULL },
		{ "truncated", "example.com", AG_DNS_A, -EAGAIN, 0, 0, NULL },
		{ "pointer_loop", "example.com", AG_DNS_A, -EPROTO, 0, 0, NULL },
		{ "cname_loop", "example.com", AG_DNS_A, -EPROTO, 0, 0, NULL },
		{ "aaaa_answer", "a.b.test", AG_DNS_AAAA, 0, 1, 0,
		  "[1:203:405:607:809:a0b:c0d:e0f]:0" },
	};

	for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
		struct ag_dnsmsg_answer a;
		char path[PATH_MAX], sub[96], addr[64];
		struct ag_err err;
		uint16_t id;
		char *data;
		size_t len;

		snprintf(sub, sizeof(sub), "%s_%s_%u", cases[i].file, cases[i].name,
			 cases[i].qtype);
		if (!test__start_subtest(sub))
			continue;
		snprintf(path, sizeof(path), "%s/selftests/fuzz/corpus/fuzz_dnsmsg/%s",
			 testlib_src_dir(), cases[i].file);
		if (!ASSERT_OK(ag_read_file(path, 4096, &data, &len, &err), err.msg))
			continue;
		id = (uint16_t)((uint8_t)data[0] << 8 | (uint8_t)data[1]);
		ASSERT_EQ(ag_dnsmsg_parse((const uint8_t *)data, len, id, cases[i].name,
					  cases[i].qtype, &a),
			  cases[i].ret, "result");
		ASSERT_EQ(a.nr, cases[i].nr, "addresses");
		ASSERT_EQ(a.ttl, cases[i].ttl, "ttl");
		if (cases[i].first && a.nr)
			ASSERT_STREQ(ag_addr_fmt(a.addr[0], 0, addr, sizeof(addr)), cases[i].first,
				     "first address");
		free(data);
	}
}

TEST(dnsmsg_query)
{
	static const uint8_t want[] = "\x41\x47\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
				      "\x03"
				      "api"
				      "\x07"
				      "example"
				      "\x03"
				      "com"
				      "\x00\x00\x1c\x00\x01";
	uint8_t q[AG_DNSMSG_QUERY_MAX];

	ASSERT_EQ(ag_dnsmsg_query(q, sizeof(q), 0x4147, "api.example.com", AG_DNS_AAAA),
		  (int)sizeof(want) - 1, "length");
	ASSERT_MEMEQ(q, want, sizeof(want) - 1, "wire form");
	ASSERT_EQ(ag_dnsmsg_query(q, sizeof(q), 1, "bad..name", AG_DNS_A), -EINVAL, "empty label");
	ASSERT_EQ(ag_dnsmsg_query(q, sizeof(q), 1, "", AG_DNS_A), -EINVAL, "empty name");
	ASSERT_EQ(ag_dnsmsg_query(q, 20, 1, "a.test", AG_DNS_A), -ENOSPC, "small buffer");
}

/* Which datagrams the DNS relay takes for a plain query, and the REFUSED answer it makes. */
TEST(dnsmsg_question)
{
	static const struct {
		const char *file;
		int ret;
		const char *name;
		uint16_t qtype;
	} cases[] = {
		{ "query_plain", 0, "tools.test", AG_DNS_AAAA },
		{ "query_edns", 0, "tools.test", AG_DNS_A },
		{ "name_as_query", -EPROTO, "", 0 },
		{ "a_answer", -EPROTO, "", 0 },
		{ "query_with_answer", -EPROTO, "", 0 },
		{ "query_trailing", -EPROTO, "", 0 },
		{ "query_binary_label", -EPROTO, "", 0 },
		{ "query_big_opt", -EPROTO, "", 0 },
		{ "not_dns_520", -EPROTO, "", 0 },
	};

	for (size_t i = 0; i < AG_ARRAY_SIZE(cases); i++) {
		struct ag_dnsmsg_question q;
		unsigned int rcode, answers;
		uint8_t out[600];
		char path[PATH_MAX];
		struct ag_err err;
		char *data;
		size_t len;
		int n;

		if (!test__start_subtest(cases[i].file))
			continue;
		snprintf(path, sizeof(path), "%s/selftests/fuzz/corpus/fuzz_dnsmsg/%s",
			 testlib_src_dir(), cases[i].file);
		if (!ASSERT_OK(ag_read_file(path, 4096, &data, &len, &err), err.msg))
			continue;
		ASSERT_EQ(ag_dnsmsg_question((const uint8_t *)data, len, &q), cases[i].ret,
			  "result");
		ASSERT_STREQ(q.name, cases[i].name, "name");
		ASSERT_EQ(q.qtype, cases[i].qtype, "type");
		if (!cases[i].ret) {
			n = ag_dnsmsg_refused((const uint8_t *)data, &q, out, sizeof(out));
			ASSERT_EQ(n, (int)q.end, "the question, no records");
			ASSERT_OK(ag_dnsmsg_answer_head(out, (size_t)n, &rcode, &answers),
				  "an answer");
			ASSERT_EQ(rcode, 5, "REFUSED");
			ASSERT_EQ(answers, 0, "no answers");
			ASSERT_MEMEQ(out, data, 2, "same id");
			ASSERT_EQ(ag_dnsmsg_question(out, (size_t)n, &q), -EPROTO,
				  "an answer is no query");
		}
		free(data);
	}
}
