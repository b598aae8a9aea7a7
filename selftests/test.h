/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The agentgate test framework, shaped like the kernel's BPF selftests:
 *
 *	TEST(policy_parse)
 *	{
 *		if (test__start_subtest("empty")) {
 *			ASSERT_EQ(parse(""), 0, "parse empty");
 *		}
 *	}
 *
 * A test with subtests counts each subtest; a test without counts once.
 * ASSERT_* print the expression's values when they fail and evaluate to
 * true when the assertion held, so a test can stop early:
 *	if (!ASSERT_OK(err, "load")) goto out;
 * test__skip() marks the current (sub)test skipped with a reason; use it for
 * what the machine cannot do, never to hide a failure.
 */
#ifndef AG_TEST_H
#define AG_TEST_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

struct ag_test {
	const char *name;
	void (*fn)(void);
	struct ag_test *next;
};

void test__register(struct ag_test *t);
bool test__start_subtest(const char *name);
void test__fail(void);
void test__skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
bool test__verbose(void);
/* A name unique to this test run, for instances, cgroups and namespaces. */
const char *test__instance(const char *suffix);

#define TEST(tname)                                                                     \
	static void test_##tname(void);                                                 \
	static struct ag_test ag_test_##tname = { .name = #tname, .fn = test_##tname }; \
	__attribute__((constructor)) static void ag_register_##tname(void)              \
	{                                                                               \
		test__register(&ag_test_##tname);                                       \
	}                                                                               \
	static void test_##tname(void)

#define AG_FAILED(fmt, ...)                                                                   \
	do {                                                                                  \
		fprintf(stderr, "%s:%d: FAIL: " fmt "\n", __FILE__, __LINE__, ##__VA_ARGS__); \
		test__fail();                                                                 \
	} while (0)

#define ASSERT_TRUE(cond, name)                                          \
	({                                                               \
		bool ___ok = !!(cond);                                   \
		if (!___ok)                                              \
			AG_FAILED("%s: expected true: %s", name, #cond); \
		___ok;                                                   \
	})

#define ASSERT_FALSE(cond, name)                                          \
	({                                                                \
		bool ___ok = !(cond);                                     \
		if (!___ok)                                               \
			AG_FAILED("%s: expected false: %s", name, #cond); \
		___ok;                                                    \
	})

#define AG_ASSERT_CMP(a, b, op, name)                                                           \
	({                                                                                      \
		long long ___a = (long long)(a), ___b = (long long)(b);                         \
		bool ___ok = ___a op ___b;                                                      \
		if (!___ok)                                                                     \
			AG_FAILED("%s: expected %s %s %s, got %lld vs %lld", name, #a, #op, #b, \
				  ___a, ___b);                                                  \
		___ok;                                                                          \
	})

#define ASSERT_EQ(a, b, name) AG_ASSERT_CMP(a, b, ==, name)
#define ASSERT_NEQ(a, b, name) AG_ASSERT_CMP(a, b, !=, name)
#define ASSERT_LT(a, b, name) AG_ASSERT_CMP(a, b, <, name)
#define ASSERT_LE(a, b, name) AG_ASSERT_CMP(a, b, <=, name)
#define ASSERT_GT(a, b, name) AG_ASSERT_CMP(a, b, >, name)
#define ASSERT_GE(a, b, name) AG_ASSERT_CMP(a, b, >=, name)

/* err is 0 on success, or a negative errno / -1 with errno set. */
#define ASSERT_OK(err, name)                                                                     \
	({                                                                                       \
		long long ___e = (long long)(err);                                               \
		bool ___ok = ___e == 0;                                                          \
		if (!___ok)                                                                      \
			AG_FAILED("%s: unexpected error %lld (errno %d: %s)", name, ___e, errno, \
				  strerror(errno));                                              \
		___ok;                                                                           \
	})

/* A syscall-style call that must fail with exactly this errno. */
#define ASSERT_ERRNO(ret, expected, name)                                      \
	({                                                                     \
		long long ___r = (long long)(ret);                             \
		int ___en = errno;                                             \
		bool ___ok = ___r < 0 && ___en == (expected);                  \
		if (!___ok)                                                    \
			AG_FAILED("%s: expected failure with %s, got ret "     \
				  "%lld errno %d (%s)",                        \
				  name, #expected, ___r, ___r < 0 ? ___en : 0, \
				  ___r < 0 ? strerror(___en) : "success");     \
		___ok;                                                         \
	})

#define ASSERT_STREQ(a, b, name)                                                                   \
	({                                                                                         \
		const char *___a = (a), *___b = (b);                                               \
		bool ___ok = ___a && ___b && strcmp(___a, ___b) == 0;                              \
		if (!___ok)                                                                        \
			AG_FAILED("%s: expected \"%s\", got \"%s\"", name, ___b ? ___b : "(null)", \
				  ___a ? ___a : "(null)");                                         \
		___ok;                                                                             \
	})

/* haystack contains needle; a failure shows the start of the haystack. */
#define ASSERT_STRHAS(hay, needle, name)                                                           \
	({                                                                                         \
		const char *___h = (hay), *___n = (needle);                                        \
		bool ___ok = ___h && ___n && strstr(___h, ___n) != NULL;                           \
		if (!___ok)                                                                        \
			AG_FAILED("%s: \"%s\" not found in \"%.400s\"", name, ___n ? ___n : "(null)", \
				  ___h ? ___h : "(null)");                                         \
		___ok;                                                                             \
	})

/* p is NULL: for "must not contain", shows what was found. */
#define ASSERT_NULL(p, name)                                                              \
	({                                                                                \
		const char *___p = (const char *)(p);                                     \
		bool ___ok = ___p == NULL;                                                \
		if (!___ok)                                                               \
			AG_FAILED("%s: unexpectedly found \"%.120s\"", name, ___p);       \
		___ok;                                                                    \
	})

#define ASSERT_MEMEQ(a, b, len, name)                                           \
	({                                                                      \
		bool ___ok = memcmp(a, b, len) == 0;                            \
		if (!___ok)                                                     \
			AG_FAILED("%s: %zu bytes differ", name, (size_t)(len)); \
		___ok;                                                          \
	})

#define ASSERT_OK_PTR(p, name)                                                       \
	({                                                                           \
		bool ___ok = (p) != NULL;                                            \
		if (!___ok)                                                          \
			AG_FAILED("%s: unexpected NULL (errno %d: %s)", name, errno, \
				  strerror(errno));                                  \
		___ok;                                                               \
	})

#endif /* AG_TEST_H */
