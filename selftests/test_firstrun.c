// SPDX-License-Identifier: GPL-2.0
/*
 * A first run on a fresh Debian 12: make run and make test get a Node.js
 * that is new enough themselves (scripts/node.sh), and work from a clone
 * that other users cannot read, such as one under /root
 * (scripts/reachable.sh).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"
#include "testlib.h"

/* A node on PATH that says it is 18, as Debian 12's does, and runs npm with the real one. */
static int fake_old_node(const char *dir)
{
	char path[PATH_MAX + 8], *real = NULL;
	FILE *f;

	if (run_capture(&real, "command -v node") || !real[0]) {
		free(real);
		return -1;
	}
	real[strcspn(real, "\n")] = 0;
	snprintf(path, sizeof(path), "%s/node", dir);
	f = fopen(path, "w");
	if (!f) {
		free(real);
		return -1;
	}
	fprintf(f,
		"#!/bin/sh\n"
		"case \"$*\" in *process.versions.node*) echo 18; exit 0;; esac\n"
		"exec %s \"$@\"\n",
		real);
	free(real);
	fclose(f);
	return chmod(path, 0755);
}

TEST(firstrun_node_from_registry)
{
	char dir[256], fake[300], env[1024], *out = NULL;

	if (run_capture(&out, "command -v npm") || !out[0]) {
		test__skip("npm is not installed (scripts/deps.sh installs it)");
		goto out;
	}
	free(out);
	out = NULL;
	snprintf(dir, sizeof(dir), "/tmp/%s", test__instance("node"));
	snprintf(fake, sizeof(fake), "%s/fake", dir);
	if (!ASSERT_OK(run_capture(&out, "mkdir -p '%s'", fake), "mkdir") ||
	    !ASSERT_OK(fake_old_node(fake), "fake node 18"))
		goto out;
	free(out);
	snprintf(env, sizeof(env),
		 "PATH='%s':\"$PATH\" AG_NODE_PREFIX='%s/prefix' AG_NODE_LINK='%s/bin/node'", fake,
		 dir, dir);
	ASSERT_EQ(run_capture(&out, "%s %s/scripts/node.sh 2>&1", env, testlib_src_dir()), 0,
		  "node.sh with Node 18 on PATH");
	ASSERT_STRHAS(out, "installed Node.js v20.", "what it did");
	free(out);
	ASSERT_EQ(
	    run_capture(&out, "'%s/bin/node' -p 'process.versions.node.split(\".\")[0]'", dir), 0,
	    "the installed node runs");
	ASSERT_STREQ(out, "20\n", "its major version");
	free(out);
	/* With the new one first on PATH, as /usr/local/bin is: nothing to do. */
	ASSERT_EQ(run_capture(&out, "PATH='%s/bin':'%s':\"$PATH\" %s/scripts/node.sh 2>&1", dir,
			      fake, testlib_src_dir()),
		  0, "second run");
	ASSERT_STREQ(out, "", "second run is silent");
out:
	free(out);
	out = NULL;
	if (run_capture(&out, "rm -rf '/tmp/%s'", test__instance("node")))
		fprintf(stderr, "cleanup of /tmp/%s failed\n", test__instance("node"));
	free(out);
}

#define AS_NOBODY "setpriv --reuid=65534 --regid=65534 --clear-groups"

TEST(firstrun_tree_reachable_from_private_home)
{
	char home[PATH_MAX], *out = NULL;
	struct stat st;

	snprintf(home, sizeof(home), "/tmp/%s", test__instance("home"));
	/* A home like /root: 0700; in it a clone whose files are world-readable. */
	if (!ASSERT_OK(
		run_capture(&out,
			    "mkdir -m 0700 '%s' && mkdir -p '%s/x/scripts' && "
			    "cp '%s/scripts/reachable.sh' '%s/x/scripts/' && "
			    "echo all: > '%s/x/Makefile' && echo agent-readable > '%s/x/file'",
			    home, home, testlib_src_dir(), home, home, home),
		"a clone in a private home"))
		goto out;
	free(out);
	ASSERT_NEQ(run_capture(&out, AS_NOBODY " cat '%s/x/file' 2>&1", home), 0,
		   "another user cannot read the clone in place");
	free(out);
	ASSERT_EQ(run_capture(&out,
			      "'%s/x/scripts/reachable.sh' sh -c '" AS_NOBODY
			      " cat \"$PWD/file\"; echo \"$PWD\"' 2>&1",
			      home),
		  0, "reachable.sh");
	if (ASSERT_STRHAS(out, "agent-readable\n/run/agentgate-tree.", "read through the view")) {
		char *view = strstr(out, "/run/");

		view[strcspn(view, "\n")] = 0;
		ASSERT_ERRNO(stat(view, &st), ENOENT, "the view is gone afterwards");
	}
	free(out);
	ASSERT_OK(stat(home, &st), "home");
	ASSERT_EQ(st.st_mode & 07777, 0700, "the home keeps its mode");
	/* A clone that is reachable already runs in place. */
	ASSERT_EQ(
	    run_capture(&out, "chmod 0755 '%s' && '%s/x/scripts/reachable.sh' pwd", home, home), 0,
	    "reachable clone");
	ASSERT_STRHAS(out, home, "in place");
out:
	free(out);
	out = NULL;
	if (run_capture(&out, "rm -rf '%s'", home))
		fprintf(stderr, "cleanup of %s failed\n", home);
	free(out);
}
