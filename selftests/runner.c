// SPDX-License-Identifier: GPL-2.0
/*
 * test_progs: runs every registered test, each in its own child process so a
 * crash or a hang is one failed test, not a dead run.  The child reports each
 * (sub)test result over a pipe; the parent counts and prints one summary line
 * "N passed, N failed, N skipped".
 *
 *	test_progs [-v] [-t SUBSTRING]... [-T SECONDS]
 */
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"
#include "util.h"
#include "testlib.h"

static struct ag_test *tests;
static int report_fd = -1;
static bool verbose;

/* Per-child state: the (sub)test now running. */
static const struct ag_test *cur_test;
static char cur_sub[128];
static bool cur_failed, cur_skipped, cur_has_subtests;
static char cur_skip_reason[256];

void test__register(struct ag_test *t)
{
	/* Constructors run in link order; keep registration order. */
	struct ag_test **pp = &tests;

	while (*pp)
		pp = &(*pp)->next;
	*pp = t;
}

bool test__verbose(void)
{
	return verbose;
}

static void report_current(void)
{
	char line[512];
	const char *status = cur_failed ? "FAIL" : cur_skipped ? "SKIP" : "OK";
	int n;

	n = snprintf(line, sizeof(line), "%s %s%s%s%s%s\n", status, cur_test->name,
		     cur_sub[0] ? "/" : "", cur_sub, cur_skipped && !cur_failed ? ": " : "",
		     cur_skipped && !cur_failed ? cur_skip_reason : "");
	if (n > (int)sizeof(line) - 1)
		n = sizeof(line) - 1;
	if (write(report_fd, line, n) != n)
		_exit(3);
}

static void end_subtest(void)
{
	if (cur_sub[0])
		report_current();
	cur_sub[0] = '\0';
	cur_failed = cur_skipped = false;
}

bool test__start_subtest(const char *name)
{
	end_subtest();
	cur_has_subtests = true;
	snprintf(cur_sub, sizeof(cur_sub), "%s", name);
	if (verbose)
		fprintf(stderr, "#   %s/%s\n", cur_test->name, name);
	return true;
}

void test__fail(void)
{
	cur_failed = true;
}

void test__skip(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cur_skip_reason, sizeof(cur_skip_reason), fmt, ap);
	va_end(ap);
	cur_skipped = true;
}

static void run_child(const struct ag_test *t)
{
	cur_test = t;
	t->fn();
	if (cur_has_subtests)
		end_subtest();
	else
		report_current();
	testlib_cleanup();
	_exit(0);
}

struct counts {
	int passed, failed, skipped;
};

/* Counts the child's report lines; returns how many (sub)tests it reported. */
static int collect(FILE *f, struct counts *c)
{
	char line[512];
	int n = 0;

	while (fgets(line, sizeof(line), f)) {
		n++;
		if (!strncmp(line, "OK ", 3)) {
			c->passed++;
			if (verbose)
				printf("%s", line);
		} else if (!strncmp(line, "SKIP ", 5)) {
			c->skipped++;
			printf("%s", line);
		} else {
			c->failed++;
			printf("%s", line);
		}
	}
	return n;
}

static bool selected(const char *name, char **filters, int nfilters)
{
	if (!nfilters)
		return true;
	for (int i = 0; i < nfilters; i++)
		if (strstr(name, filters[i]))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	char *filters[64];
	int nfilters = 0, opt;
	unsigned int timeout = 300;
	struct counts c = { 0 };

	while ((opt = getopt(argc, argv, "vt:T:")) != -1) {
		switch (opt) {
		case 'v':
			verbose = true;
			break;
		case 't':
			if (nfilters < 64)
				filters[nfilters++] = optarg;
			break;
		case 'T':
			timeout = strtoul(optarg, NULL, 10);
			break;
		default:
			fprintf(stderr, "usage: %s [-v] [-t NAME]... [-T SECONDS]\n", argv[0]);
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* Library code run in-process logs as it would in the daemon; tests
	 * judge outcomes, so its warnings are noise unless asked for. */
	if (!verbose)
		ag_log_set_level(AG_LOG_ERROR);
	testlib_init(argv[0]);

	for (struct ag_test *t = tests; t; t = t->next) {
		int pfd[2], status;
		pid_t pid;
		FILE *f;
		int reported;

		if (!selected(t->name, filters, nfilters))
			continue;
		if (verbose)
			fprintf(stderr, "# %s\n", t->name);
		/* CLOEXEC: a daemon a test starts must not keep the report open. */
		if (pipe2(pfd, O_CLOEXEC)) {
			perror("pipe");
			return 2;
		}
		fflush(NULL);
		pid = fork();
		if (pid < 0) {
			perror("fork");
			return 2;
		}
		if (pid == 0) {
			close(pfd[0]);
			report_fd = pfd[1];
			/* A hung test ends as a failure, never hangs CI. */
			alarm(timeout);
			run_child(t);
		}
		close(pfd[1]);
		f = fdopen(pfd[0], "r");
		reported = collect(f, &c);
		fclose(f);
		waitpid(pid, &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			printf("FAIL %s: test process %s %d after %d result(s)\n", t->name,
			       WIFSIGNALED(status) ? "killed by signal" : "exited with",
			       WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
			       reported);
			c.failed++;
		}
		/* Whatever a crashed test left behind goes now. */
		testlib_sweep();
	}
	printf("%d passed, %d failed, %d skipped\n", c.passed, c.failed, c.skipped);
	return c.failed ? 1 : 0;
}
