/* SPDX-License-Identifier: GPL-2.0 */
/* Helpers shared by the tests: instances, agents in cgroups, sockets. */
#ifndef AG_TESTLIB_H
#define AG_TESTLIB_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Runner hooks. */
void testlib_init(const char *argv0);
void testlib_cleanup(void); /* end of one test's child process */
void testlib_sweep(void);   /* parent: remove what a crashed test left */

/* Directory of the test binary's build tree (for agentgated, agentgatectl). */
const char *testlib_build_dir(void);
/* The project root (for selftests/fuzz/corpus, policies/, ../shared). */
const char *testlib_src_dir(void);

#endif
