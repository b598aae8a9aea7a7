/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared by the tests that drive real npm peers (selftests/e2e/): where the
 * packages are, and the JSON lines an agent script (agent.mjs) prints.
 */
#ifndef AG_SELFTEST_E2ELIB_H
#define AG_SELFTEST_E2ELIB_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* <build>/e2e into dir; whether scripts/e2e-deps.sh installed the packages there. */
bool e2e_installed(char *dir, size_t len);
/* An agent's output: its JSON lines, in order. */
json_t *parse_lines(const char *out);
/* The nth line of step name, or NULL. */
json_t *step(json_t *lines, const char *name, int nth);
bool step_ok(json_t *lines, const char *name, int nth);
/* Whether the "list" step's tools name tool. */
bool list_has(json_t *lines, const char *tool);

#endif
