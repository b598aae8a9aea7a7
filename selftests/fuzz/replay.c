// SPDX-License-Identifier: GPL-2.0
/*
 * Replays a fuzz corpus without libFuzzer: every file named on the command
 * line, or found in a directory named there, goes once through the
 * harness's LLVMFuzzerTestOneInput.  A crash or sanitizer abort fails the
 * run; make test runs this for every harness over its seed corpus.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX_INPUT (16u << 20)

static int replay_file(const char *path, int *count)
{
	struct ag_err err;
	char *data;
	size_t len;

	if (ag_read_file(path, REPLAY_MAX_INPUT, &data, &len, &err)) {
		fprintf(stderr, "replay: %s\n", err.msg);
		return 1;
	}
	LLVMFuzzerTestOneInput((const uint8_t *)data, len);
	free(data);
	(*count)++;
	return 0;
}

static int replay(const char *path, int *count)
{
	struct stat st;
	struct dirent **names;
	int n, ret = 0;

	if (stat(path, &st)) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (!S_ISDIR(st.st_mode))
		return replay_file(path, count);
	/* Sorted, so a failing input is found at the same place every run. */
	n = scandir(path, &names, NULL, alphasort);
	if (n < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return 1;
	}
	for (int i = 0; i < n; i++) {
		char child[4096];

		if (names[i]->d_name[0] != '.' && snprintf(child, sizeof(child), "%s/%s", path,
							   names[i]->d_name) < (int)sizeof(child))
			ret |= replay(child, count);
		free(names[i]);
	}
	free(names);
	return ret;
}

int main(int argc, char **argv)
{
	int count = 0, ret = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++)
		ret |= replay(argv[i], &count);
	printf("%d inputs replayed\n", count);
	return ret || count == 0;
}
