// SPDX-License-Identifier: GPL-2.0
/*
 * README.md's first "Using it" block, run as it is written: from the tree,
 * as root (sudo dropped: the suite is root already), on the default
 * instance, every line exiting 0.  Then what it should have done: the
 * daemon detached and served, the agent's connect to the denied address
 * was refused in the kernel and recorded, and uninstall left nothing.
 *
 * The default instance must be free: the test fails, rather than take it
 * over, when it is in use.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "test.h"
#include "testlib.h"

#define BLOCK_MAX 8192

/* The first ```sh block after "## Using it", without its fences. */
static int using_it_block(char *out, size_t len)
{
	char path[PATH_MAX], *text = NULL, *start, *end;
	int ret = -ENOENT;

	snprintf(path, sizeof(path), "%s/README.md", testlib_src_dir());
	if (ag_read_file(path, 1 << 20, &text, NULL, NULL))
		return -errno;
	start = strstr(text, "\n## Using it\n");
	start = start ? strstr(start, "\n```sh\n") : NULL;
	end = start ? strstr(start + 7, "\n```\n") : NULL;
	if (start && end) {
		start += 7;
		ret = (size_t)(end - start + 1) < len ? 0 : -E2BIG;
		if (!ret) {
			memcpy(out, start, (size_t)(end - start));
			out[end - start] = '\n';
			out[end - start + 1] = 0;
		}
	}
	free(text);
	return ret;
}

static bool exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/*
 * On a fresh Debian 12 make itself is missing: the Quick start names the
 * one apt-get line that gets it, before the two make commands.
 */
TEST(readme_quick_start_first_line)
{
	char path[PATH_MAX], *text = NULL, *start, *apt, *run;

	snprintf(path, sizeof(path), "%s/README.md", testlib_src_dir());
	if (!ASSERT_OK(ag_read_file(path, 1 << 20, &text, NULL, NULL), "README.md"))
		return;
	start = strstr(text, "\n## Quick start");
	apt = start ? strstr(start, "\nsudo apt-get install -y make") : NULL;
	run = start ? strstr(start, "\nsudo make run") : NULL;
	ASSERT_OK_PTR(apt, "the apt-get line for make");
	ASSERT_TRUE(apt && run && apt < run, "before make run");
	free(text);
}

TEST(readme_using_it_verbatim)
{
	char block[BLOCK_MAX], script[PATH_MAX], *out = NULL, *log = NULL;
	bool state_was_there = exists("/var/lib/agentgate");
	struct ag_instance in;
	struct ag_err err;
	FILE *f;

	if (!ASSERT_OK(using_it_block(block, sizeof(block)), "README.md: Using it block"))
		return;
	if (!ASSERT_FALSE(exists("/sys/fs/bpf/agentgate") || exists("/run/agentgate"),
			  "the default instance is free on this machine"))
		return;
	/* As a root shell runs it; the suite runs as root, so sudo goes. */
	snprintf(script, sizeof(script), "/tmp/%s.sh", test__instance("readme"));
	f = fopen(script, "w");
	if (!ASSERT_OK_PTR(f, "script"))
		return;
	fputs("set -e\nsudo() { \"$@\"; }\n", f);
	fputs(block, f);
	fclose(f);
	ASSERT_EQ(run_capture(&out,
			      "cd '%s' && env -u SUDO_UID -u SUDO_GID timeout 120 sh -x '%s' 2>&1",
			      testlib_src_dir(), script),
		  0, "every line of the block");
	ASSERT_STRHAS(out, "agentgated: instance agentgate serving",
		      "the daemon detached, serving");
	ASSERT_STRHAS(out, "refused: curl exit 7", "the denied connect failed for the agent");
	ASSERT_STRHAS(out, "\"denied\"", "bpftool shows the counters");
	if (ag_read_file("/var/lib/agentgate/audit.log", 16 << 20, &log, NULL, NULL) == 0) {
		ASSERT_STRHAS(log, "\"kind\":\"kernel_refusal\"",
			      "the refusal is in the audit log");
		ASSERT_STRHAS(log, "\"dst\":\"127.0.0.2:9000\"", "with the destination");
		ASSERT_STRHAS(log, "\"kind\":\"daemon_stop\"", "uninstall stopped the daemon");
	} else {
		ASSERT_TRUE(false, "audit log read");
	}
	ASSERT_FALSE(exists("/sys/fs/bpf/agentgate"), "uninstall left no pins");
	if (ASSERT_OK(ag_instance_init(&in, "agentgate", NULL, &err), "instance paths"))
		ASSERT_FALSE(exists(in.cg_root), "uninstall left no cgroup");
	if (!ASSERT_TRUE(!strstr(out, "FAIL"), "no FAIL in the output"))
		fprintf(stderr, "%s\n", out);
	free(out);
	free(log);
	out = NULL;
	/* Whatever happened: leave the machine as it was. */
	if (run_capture(&out, "%s/agentgatectl uninstall >/dev/null 2>&1; rm -f '%s'%s",
			testlib_build_dir(), script,
			state_was_there ? "" : "; rm -rf /var/lib/agentgate"))
		fprintf(stderr, "cleanup failed: %s\n", out);
	free(out);
}
