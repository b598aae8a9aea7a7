// SPDX-License-Identifier: GPL-2.0
/*
 * Detaching (detach.h).  The fork comes first, before any thread, io_uring
 * ring, BPF object, socket or lock exists: a fork copies only the calling
 * thread, so a daemon that forked after the audit writer's committer
 * thread started had no committer, and every record, every governed call
 * waiting on one, and its stop, waited forever.
 *
 *   parent: socketpair, fork ─── recv ──┬─ "R<summary>": print it, exit 0
 *                                       ├─ "E<error>": print it, exit with
 *                                       │   the child's status
 *                                       └─ EOF (the child died): exit with
 *                                           its status, never 0
 *   child:  setsid, stdio to /dev/null ─ start ─ serving: send "R", close
 *                                            └── failed: send "E", close
 *
 * Ordering hazards: the child reports "R" only once its listeners are
 * armed and its audit writer has made a record durable (main.c), so an
 * exit status of 0 means agents are being served.  The report goes over a
 * SOCK_SEQPACKET pair, not a pipe: a parent killed while waiting costs the
 * child an EPIPE (MSG_NOSIGNAL), never a SIGPIPE.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "detach.h"

#define REPORT_MAX 1024

/* The parent's side: the exit status of agentgated as its caller sees it. */
static int await_child(pid_t pid, int fd)
{
	char msg[REPORT_MAX + 2];
	sigset_t none;
	ssize_t n;
	int status;

	/* The child inherited the blocked stop signals; the parent may be interrupted. */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	do
		n = recv(fd, msg, sizeof(msg) - 1, 0);
	while (n < 0 && errno == EINTR);
	msg[n > 0 ? n : 0] = '\0';
	if (n > 0 && msg[0] == 'R') {
		printf("agentgated: %s\n", msg + 1);
		return 0;
	}
	if (n > 0)
		fprintf(stderr, "agentgated: %s\n", msg + 1);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			fprintf(stderr, "agentgated: waitpid %d: %s\n", pid, strerror(errno));
			return 1;
		}
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "agentgated: the daemon (pid %d) was killed by %s before serving\n",
			pid, sigabbrev_np(WTERMSIG(status)) ?: "a signal");
		return 128 + WTERMSIG(status);
	}
	if (n <= 0)
		fprintf(stderr,
			"agentgated: the daemon (pid %d) exited with status %d before serving\n",
			pid, WEXITSTATUS(status));
	/* It never served: whatever it exited with, the start failed. */
	return WEXITSTATUS(status) ?: 1;
}

static int stdio_to_null(struct ag_err *err)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return ag_errf(err, errno, "/dev/null: %s", strerror(errno));
	for (int i = STDIN_FILENO; i <= STDERR_FILENO; i++)
		if (dup2(fd, i) < 0) {
			int e = errno;

			close(fd);
			return ag_errf(err, e, "/dev/null: dup2: %s", strerror(e));
		}
	close(fd);
	return 0;
}

int ag_detach(struct ag_detach *dt, struct ag_err *err)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		return ag_errf(err, errno, "detach: socketpair: %s", strerror(errno));
	/* Nothing buffered may be written twice, by parent and child. */
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		int e = errno;

		close(sv[0]);
		close(sv[1]);
		return ag_errf(err, e, "detach: fork: %s", strerror(e));
	}
	if (pid > 0) {
		close(sv[1]);
		exit(await_child(pid, sv[0]));
	}
	close(sv[0]);
	dt->report_fd = sv[1];
	dt->detached = true;
	/*
	 * From here on errors reach the caller through the parent only: the
	 * caller's terminal or pipe must not stay open in a daemon.
	 */
	if (setsid() < 0)
		return ag_errf(err, errno, "detach: setsid: %s", strerror(errno));
	return stdio_to_null(err);
}

int ag_detach_log(const struct ag_detach *dt, const char *log, struct ag_err *err)
{
	int fd;

	if (!dt->detached)
		return 0;
	fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return ag_errf(err, errno, "%s: %s", log, strerror(errno));
	if (dup2(fd, STDERR_FILENO) < 0) {
		int e = errno;

		close(fd);
		return ag_errf(err, e, "%s: dup2: %s", log, strerror(e));
	}
	close(fd);
	return 0;
}

void ag_detach_report(struct ag_detach *dt, const char *error, const char *summary)
{
	char msg[REPORT_MAX + 1];
	int n;

	if (dt->report_fd < 0)
		return;
	n = snprintf(msg, sizeof(msg), "%c%s", error ? 'E' : 'R', error ? error : summary);
	if (n > (int)sizeof(msg) - 1)
		n = sizeof(msg) - 1;
	/* The parent may be gone (interrupted): nothing to do about it. */
	if (n > 0 && send(dt->report_fd, msg, n, MSG_NOSIGNAL) < 0)
		ag_log(AG_LOG_WARN, "detach", "report=%c error=\"%s\"", msg[0], strerror(errno));
	close(dt->report_fd);
	dt->report_fd = -1;
}
