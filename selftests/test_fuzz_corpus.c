// SPDX-License-Identifier: GPL-2.0
/*
 * Every fuzz harness's seed corpus, replayed through the harness built
 * without libFuzzer (build/fuzz/<harness>-replay): the inputs that once
 * found bugs, and the seeds, keep passing.  One subtest per harness.
 */
#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "test.h"
#include "testlib.h"

TEST(fuzz_corpus)
{
	char dir[PATH_MAX + 32];
	struct dirent *de;
	DIR *d;
	int harnesses = 0;

	snprintf(dir, sizeof(dir), "%s/selftests/fuzz", testlib_src_dir());
	d = opendir(dir);
	if (!ASSERT_OK_PTR(d, "selftests/fuzz"))
		return;
	while ((de = readdir(d))) {
		char name[256], corpus[PATH_MAX + 300], *out = NULL;
		size_t n = strlen(de->d_name);
		struct stat st;

		if (strncmp(de->d_name, "fuzz_", 5) || n < 3 || strcmp(de->d_name + n - 2, ".c"))
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)(n - 2), de->d_name);
		if (!test__start_subtest(name))
			continue;
		harnesses++;
		snprintf(corpus, sizeof(corpus), "%s/corpus/%s", dir, name);
		if (!ASSERT_OK(stat(corpus, &st), "seed corpus directory exists"))
			continue;
		ASSERT_EQ(run_capture(&out, "%s/fuzz/%s-replay %s 2>&1", testlib_build_dir(), name,
				      corpus),
			  0, "corpus replays cleanly");
		if (test__verbose() || !out || !strstr(out, "inputs replayed"))
			fprintf(stderr, "%s", out ? out : "");
		free(out);
	}
	closedir(d);
	if (!harnesses)
		test__skip("no fuzz harness in selftests/fuzz: nothing to replay");
}
