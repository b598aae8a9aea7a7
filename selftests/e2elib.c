// SPDX-License-Identifier: GPL-2.0
/* Shared by the tests that drive real npm peers (e2elib.h). */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "e2elib.h"
#include "testlib.h"

/* The packages come from scripts/e2e-deps.sh; without them the tests skip. */
bool e2e_installed(char *dir, size_t len)
{
	struct stat st;
	char p[PATH_MAX + 64];

	snprintf(dir, len, "%s/e2e", testlib_build_dir());
	snprintf(p, sizeof(p), "%s/node_modules/@modelcontextprotocol/sdk", dir);
	return !stat(p, &st);
}

/* The JSON line of an agent's output for `step` (the nth such), or NULL. */
json_t *step(json_t *lines, const char *name, int nth)
{
	size_t i;
	json_t *l;

	json_array_foreach(lines, i, l)
	{
		const char *s = json_string_value(json_object_get(l, "step"));

		if (s && !strcmp(s, name) && !nth--)
			return l;
	}
	return NULL;
}

json_t *parse_lines(const char *out)
{
	json_t *lines = json_array();

	for (const char *p = out; p && *p;) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		json_t *j = p[0] == '{' ? json_loadb(p, len, 0, NULL) : NULL;

		if (j)
			json_array_append_new(lines, j);
		p = eol ? eol + 1 : NULL;
	}
	return lines;
}

bool step_ok(json_t *lines, const char *name, int nth)
{
	json_t *s = step(lines, name, nth);

	return s && json_is_true(json_object_get(s, "ok"));
}

bool list_has(json_t *lines, const char *tool)
{
	json_t *tools = json_object_get(step(lines, "list", 0), "tools");
	size_t i;
	json_t *t;

	json_array_foreach(tools, i, t) if (json_is_string(t) &&
					    !strcmp(json_string_value(t), tool)) return true;
	return false;
}
