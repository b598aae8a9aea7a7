// SPDX-License-Identifier: GPL-2.0
/*
 * An LD_PRELOAD shim for the audit durability tests
 * (test_mcp_durability.c), loaded into agentgated only: it slows the
 * audit log's pwrite and fdatasync, so a call forwarded before its record
 * is written, or a result passed on before its record is durable, shows.
 *
 *	AG_SHIM_WRITE_US  sleep before each pwrite to an audit.log file
 *	AG_SHIM_SYNC_US   sleep before each fdatasync of one
 *	AG_SHIM_LOG       gets a line per such fdatasync that succeeded:
 *	                  "<file size when it began> <CLOCK_MONOTONIC ns when it returned>",
 *	                  that is, from when on which prefix of the log is durable
 *	AG_SHIM_WRITE_LOG gets a line per pwrite to one: the decision records it holds
 *	AG_SHIM_FAIL_IF   while this file exists, each such pwrite fails with ENOSPC
 *
 * Built by make test-bins (build/audit_slow.so): it is no part of the product.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static bool audit_fd(int fd)
{
	char link[64], path[4096];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n <= 0)
		return false;
	path[n] = '\0';
	return strstr(path, "/audit.log") && !strstr(path, "cursor");
}

static void delay(const char *var)
{
	const char *v = getenv(var);
	long us = v ? strtol(v, NULL, 10) : 0;

	if (us > 0 && us < 10 * 1000 * 1000)
		usleep((useconds_t)us);
}

/* Appends a line to the log named by var; a line lost makes the test fail. */
static void log_line(const char *var, const char *line, int len)
{
	const char *log = getenv(var);
	int lfd;

	if (!log || len <= 0)
		return;
	lfd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (lfd >= 0) {
		(void)!write(lfd, line, (size_t)len);
		close(lfd);
	}
}

/* How many decision records one write of the log holds. */
static void log_write(const void *buf, size_t n)
{
	static const char kind[] = "\"kind\":\"decision\"";
	const char *p = buf, *end = p + n;
	char line[32];
	long k = 0;

	while ((p = memmem(p, (size_t)(end - p), kind, sizeof(kind) - 1))) {
		k++;
		p += sizeof(kind) - 1;
	}
	log_line("AG_SHIM_WRITE_LOG", line, snprintf(line, sizeof(line), "%ld\n", k));
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	static ssize_t (*real)(int, const void *, size_t, off_t);

	if (!real)
		real = (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite64");
	if (audit_fd(fd)) {
		const char *fail = getenv("AG_SHIM_FAIL_IF");

		delay("AG_SHIM_WRITE_US");
		if (fail && !access(fail, F_OK)) {
			errno = ENOSPC;
			return -1;
		}
		log_write(buf, n);
	}
	return real(fd, buf, n, off);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	return pwrite64(fd, buf, n, off);
}

int fdatasync(int fd)
{
	static int (*real)(int);
	struct timespec ts;
	struct stat st;
	bool audit = audit_fd(fd);
	char line[64];
	int ret;

	if (!real)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	if (!audit)
		return real(fd);
	if (fstat(fd, &st))
		st.st_size = -1;
	delay("AG_SHIM_SYNC_US");
	ret = real(fd);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (ret || st.st_size < 0)
		return ret;
	log_line("AG_SHIM_LOG", line,
		 snprintf(line, sizeof(line), "%lld %lld\n", (long long)st.st_size,
			  (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec));
	return ret;
}
