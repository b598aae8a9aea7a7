// SPDX-License-Identifier: GPL-2.0
/*
 * git(1) as a bounded child (lib/git.h): spawning with a clean
 * environment, waiting on its pidfd, its output and the stop descriptor
 * until the deadline, and the three steps of the policy source on top.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "fileio.h"
#include "git.h"

#define GIT_BIN "/usr/bin/git"
#define GIT_MAX_ARGS 24

/* What a child's output becomes: at most cap - 1 bytes, NUL-terminated. */
struct sink {
	int fd;
	char *buf;
	size_t cap, len;
};

static void sink_read(struct sink *s)
{
	char scratch[512];
	ssize_t n;
	size_t room = s->cap - 1 - s->len;

	/* Past the cap the bytes are read and dropped: a full pipe must not stall the child. */
	n = room ? read(s->fd, s->buf + s->len, room) : read(s->fd, scratch, sizeof(scratch));
	if (n <= 0) {
		if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
			close(s->fd);
			s->fd = -1;
		}
		return;
	}
	if (room)
		s->len += (size_t)n;
	s->buf[s->len] = '\0';
}

/* The first line of text, control characters made spaces, for one-line messages. */
static const char *first_line(const char *text, char *buf, size_t cap)
{
	size_t n;

	text += strspn(text, "\n ");
	n = strcspn(text, "\n");
	snprintf(buf, cap, "%.*s", (int)n, text);
	for (char *p = buf; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	return buf;
}

/*
 * In the child of a threaded process: async-signal-safe calls only, then
 * exec.  Nothing of the daemon's but stdio survives: not its sockets, not
 * its keys (close_range), not its blocked signals.
 */
static void child(char *const argv[], char *const envp[], int out, int errw)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	int null = open("/dev/null", O_RDONLY);
	sigset_t none;

	if (null < 0 || dup2(null, 0) < 0 || dup2(out, 1) < 0 || dup2(errw, 2) < 0 ||
	    syscall(SYS_close_range, 3, ~0u, 0) || setsid() < 0)
		_exit(127);
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execve(argv[0], argv, envp);
	_exit(127);
}

static int spawn(char *const argv[], char *const envp[], int out, int errw, pid_t *pid,
		 struct ag_err *err)
{
	*pid = fork();
	if (*pid < 0)
		return ag_errf(err, errno, "%s: fork: %s", argv[0], strerror(errno));
	if (!*pid)
		child(argv, envp, out, errw);
	return 0;
}

/* Kills the child's whole session (it leads its group) and reaps it; returns its wait status. */
static int reap(pid_t pid, bool kill_all)
{
	int status = 0;

	if (kill_all)
		kill(-pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return status;
}

/*
 * Waits for the child and drains out and errs until both are closed.
 * -ETIMEDOUT past the deadline, -ECANCELED when stop_fd became readable.
 */
static int wait_child(const struct ag_git *g, pid_t pid, struct sink *s, int *status)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pid, 0), ret = 0;
	bool exited = false;

	if (pidfd < 0)
		return -errno;
	while (!exited || s[0].fd >= 0 || s[1].fd >= 0) {
		struct pollfd p[4] = { { pidfd, POLLIN, 0 },
				       { s[0].fd, POLLIN, 0 },
				       { s[1].fd, POLLIN, 0 },
				       { g->stop_fd, POLLIN, 0 } };
		uint64_t now = ag_now_ns();
		int ms = now >= g->deadline_ns ? 0 : (int)((g->deadline_ns - now) / 1000000 + 1);

		if (exited)
			p[0].fd = -1;
		if (now >= g->deadline_ns || poll(p, 4, ms) == 0) {
			ret = -ETIMEDOUT;
			break;
		}
		if (p[3].revents) {
			ret = -ECANCELED;
			break;
		}
		if (p[0].revents && !exited) {
			exited = true;
			/* Whatever it left behind in its session goes too: the pipes then close. */
			kill(-pid, SIGKILL);
		}
		for (int i = 0; i < 2; i++)
			if (p[i + 1].revents)
				sink_read(&s[i]);
	}
	close(pidfd);
	*status = reap(pid, ret != 0);
	return ret;
}

/* What a run of git gets besides its arguments, and what it leaves. */
struct run {
	const char *what;      /* for messages: "fetch" */
	const char *extra_env; /* NULL or "NAME=value" */
	char *out;	       /* stdout, NULL: dropped */
	size_t cap;
	char errbuf[AG_GIT_OUT_MAX]; /* stderr */
};

/*
 * git with the global options and args (NULL-terminated), in the clean
 * environment plus r->extra_env.  0 when it exits 0; else -EIO with "git
 * WHAT: CAUSE" (the first line of its stderr).
 */
static int git_run(const struct ag_git *g, const char *const *args, struct run *r,
		   struct ag_err *err)
{
	const char *what = r->what, *extra_env = r->extra_env;
	char home[PATH_MAX + 8], gitdir[PATH_MAX + 16], scratch[64], *errbuf = r->errbuf;
	char line[512];
	char *out = r->out;
	size_t cap = r->cap;
	char *envp[] = { "PATH=/usr/local/bin:/usr/bin:/bin",
			 "LC_ALL=C",
			 home,
			 "GIT_CONFIG_NOSYSTEM=1",
			 "GIT_CONFIG_GLOBAL=/dev/null",
			 "GIT_TERMINAL_PROMPT=0",
			 "GIT_NO_REPLACE_OBJECTS=1",
			 (char *)extra_env,
			 NULL };
	const char *argv[GIT_MAX_ARGS] = { GIT_BIN,
					   "-c",
					   "core.hooksPath=/dev/null",
					   "-c",
					   "core.symlinks=false",
					   "-c",
					   "protocol.ext.allow=never",
					   gitdir };
	struct sink s[2] = { { -1, out ? out : scratch, out ? cap : sizeof(scratch), 0 },
			     { -1, errbuf, sizeof(r->errbuf), 0 } };
	int po[2] = { -1, -1 }, pe[2] = { -1, -1 }, status = 0, ret;
	size_t n = 8;
	pid_t pid;

	snprintf(home, sizeof(home), "HOME=%s/home", g->dir);
	snprintf(gitdir, sizeof(gitdir), "--git-dir=%s/repo.git", g->dir);
	for (; *args && n < GIT_MAX_ARGS - 1; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	s[0].buf[0] = errbuf[0] = '\0';
	if (pipe2(po, O_CLOEXEC) || pipe2(pe, O_CLOEXEC)) {
		ret = ag_errf(err, errno, "git %s: pipe: %s", what, strerror(errno));
		goto out;
	}
	if ((ret = spawn((char *const *)argv, envp, po[1], pe[1], &pid, err)))
		goto out;
	close(po[1]);
	close(pe[1]);
	po[1] = pe[1] = -1;
	s[0].fd = po[0];
	s[1].fd = pe[0];
	po[0] = pe[0] = -1;
	ret = wait_child(g, pid, s, &status);
	if (ret == -ETIMEDOUT)
		ret = ag_errf(err, ETIMEDOUT, "git %s: timed out", what);
	else if (ret == -ECANCELED)
		ret = ag_errf(err, ECANCELED, "git %s: stopped", what);
	else if (ret)
		ret = ag_errf(err, -ret, "git %s: pidfd_open: %s", what, strerror(-ret));
	else if (!WIFEXITED(status) || WEXITSTATUS(status))
		ret = ag_errf(err, EIO, "git %s: exit %d: %s", what,
			      WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
			      errbuf[strspn(errbuf, "\n ")] ? first_line(errbuf, line, sizeof(line))
							    : "no message");
out:
	for (int i = 0; i < 2; i++) {
		if (s[i].fd >= 0)
			close(s[i].fd);
		if (po[i] >= 0)
			close(po[i]);
		if (pe[i] >= 0)
			close(pe[i]);
	}
	return ret;
}

int ag_git_prepare(const struct ag_git *g, struct ag_err *err)
{
	char path[PATH_MAX + 16];
	struct stat st;
	const char *init[] = { "init", "--bare", "--quiet", NULL };

	snprintf(path, sizeof(path), "%s/home", g->dir);
	if (mkdir(path, 0700) && errno != EEXIST)
		return ag_errf(err, errno, "%s: mkdir: %s", path, strerror(errno));
	snprintf(path, sizeof(path), "%s/repo.git/HEAD", g->dir);
	if (!stat(path, &st))
		return 0;
	return git_run(g, init, &(struct run){ .what = "init" }, err);
}

static bool is_commit_id(const char *s)
{
	size_t n = strspn(s, "0123456789abcdef");

	return (n == 40 || n == 64) && !s[n];
}

int ag_git_fetch(const struct ag_git *g, const char *url, const char *ref,
		 char commit[AG_GIT_COMMIT_LEN], struct ag_err *err)
{
	const char *fetch[] = { "fetch",
				"--quiet",
				"--no-tags",
				"--no-recurse-submodules",
				"--no-write-fetch-head",
				"--depth=1",
				"--end-of-options",
				url,
				NULL,
				NULL };
	const char *parse[] = { "rev-parse",
				"--verify",
				"--quiet",
				"--end-of-options",
				"refs/agentgate/fetched^{commit}",
				NULL };
	char spec[AG_GIT_COMMIT_LEN + 512], out[128];
	struct run r = { .what = "fetch" };
	int ret;

	/* Into a ref of ours, forced: the source may rewrite its history. */
	snprintf(spec, sizeof(spec), "+%s:refs/agentgate/fetched", ref);
	fetch[8] = spec;
	if ((ret = git_run(g, fetch, &r, err)))
		return ret;
	r = (struct run){ .what = "rev-parse", .out = out, .cap = sizeof(out) };
	if ((ret = git_run(g, parse, &r, err)))
		return ret;
	out[strcspn(out, "\n")] = '\0';
	if (!is_commit_id(out))
		return ag_errf(err, EIO, "git rev-parse: not a commit id: \"%.80s\"", out);
	memcpy(commit, out, strlen(out) + 1); /* 40 or 64 bytes: it fits */
	return 0;
}

/* Fail closed: whoever may write the signers file may sign policies. */
static int signers_check(const char *path, struct ag_err *err)
{
	struct stat st;
	int fd = ag_file_open(AT_FDCWD, NULL, path, 0, &st, err);

	if (fd < 0)
		return fd;
	close(fd);
	if (st.st_uid != 0 && st.st_uid != geteuid())
		return ag_errf(err, EPERM, "%s: owned by uid %u, not root; fix with: chown root %s",
			       path, (unsigned int)st.st_uid, path);
	if (st.st_mode & 022)
		return ag_errf(err, EPERM,
			       "%s: writable by group or others; fix with: chmod go-w %s", path,
			       path);
	return 0;
}

int ag_git_verify(const struct ag_git *g, const char *signers, const char *commit, char *signer,
		  size_t cap, struct ag_err *err)
{
	char opt[PATH_MAX + 40], cat[AG_GIT_OUT_MAX];
	const char *verify[] = { "-c",
				 "gpg.format=ssh",
				 "-c",
				 opt,
				 "-c",
				 "gpg.ssh.program=ssh-keygen",
				 "verify-commit",
				 "--end-of-options",
				 commit,
				 NULL };
	const char *show[] = { "cat-file", "commit", commit, NULL };
	struct run r = { .what = "cat-file", .out = cat, .cap = sizeof(cat) };
	struct ag_err why = { 0 };
	int ret;

	if ((ret = signers_check(signers, err)))
		return ret;
	/* No gpgsig header: unsigned, said plainly rather than by git's silence. */
	if ((ret = git_run(g, show, &r, err)))
		return ret;
	if (!strstr(cat, "\ngpgsig ") && !strstr(cat, "\ngpgsig-sha256 "))
		return ag_errf(err, EPERM, "commit %s is not signed", commit);
	snprintf(opt, sizeof(opt), "gpg.ssh.allowedSignersFile=%s", signers);
	r = (struct run){ .what = "verify-commit" };
	if (git_run(g, verify, &r, &why))
		return ag_errf(err, EPERM, "commit %s: signature not accepted: %s", commit,
			       strstr(r.errbuf, "No principal matched")
				   ? "its key is not in allowed_signers"
				   : why.msg);
	/* "Good "git" signature for PRINCIPAL with ED25519 key SHA256:...". */
	first_line(r.errbuf, signer, cap);
	return 0;
}

int ag_git_export(const struct ag_git *g, const char *commit, const char *dest, struct ag_err *err)
{
	char wt[PATH_MAX + 16], index[PATH_MAX + 32];
	const char *checkout[] = { wt, "checkout", "--quiet", "--force", commit, "--", ".", NULL };

	if (mkdir(dest, 0700))
		return ag_errf(err, errno, "%s: mkdir: %s", dest, strerror(errno));
	snprintf(wt, sizeof(wt), "--work-tree=%s", dest);
	/* An index of its own: the bare repository's is never touched. */
	snprintf(index, sizeof(index), "GIT_INDEX_FILE=%s/.index", g->dir);
	unlink(index + strlen("GIT_INDEX_FILE="));
	return git_run(g, checkout, &(struct run){ .what = "checkout", .extra_env = index }, err);
}
