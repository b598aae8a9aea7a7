// SPDX-License-Identifier: GPL-2.0
/*
 * agent_probe: what an agent tries, as a program the isolation tests start
 * with agentgatectl run.  Each step is a word and its arguments; it prints
 * one line "step=ok" or "step=ERRNO_NAME" per step and goes on, so one run
 * tries several things:
 *
 *	hold SECONDS		an unconnected TCP socket; prints "hold=PID FD", sleeps
 *	getfd PID FD PORT	pidfd_getfd(PID, FD), then connect it to 127.0.0.1:PORT
 *	ptrace PID		PTRACE_SEIZE, then PTRACE_ATTACH
 *	mem PID			open /proc/PID/mem read-write
 *	kill PID		kill(PID, 0)
 *	fd N			whether descriptor N is open
 *	connectfd N PORT	connect descriptor N to 127.0.0.1:PORT
 *	socket FAMILY TYPE PROTO
 *	io_uring		io_uring_setup
 *	tiocsti			ioctl(0, TIOCSTI): typing into the terminal
 *	tioclinux		ioctl(0, TIOCLINUX): a console paste (ENOTTY off a console)
 *	vmread			process_vm_readv of its own memory
 *	madvise			process_madvise on its own pidfd
 *	kcmp			kcmp of its own descriptor 0 with itself
 *	keyring			add_key to the session keyring
 *	x32			getpid through the x32 ABI, in a child: "ok", "failed"
 *				(no x32 in this kernel) or the signal that killed it
 *	tcp PORT		connect to 127.0.0.1:PORT, send "ping", print the reply
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <linux/keyctl.h>

static int say(const char *step, int ret)
{
	printf("%s=%s\n", step, ret < 0 ? strerrorname_np(errno) : "ok");
	fflush(stdout);
	return ret;
}

static int connect_local(int fd, const char *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };

	sin.sin_port = htons((uint16_t)atoi(port));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)))
		return -1;
	return write(fd, "X", 1) == 1 ? 0 : -1;
}

static void hold(const char *secs)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	printf("hold=%d %d\n", getpid(), fd);
	fflush(stdout);
	sleep((unsigned int)atoi(secs));
}

static void getfd(const char *pid, const char *fd, const char *port)
{
	int pidfd = say("pidfd_open", (int)syscall(SYS_pidfd_open, atoi(pid), 0)), s;

	if (pidfd < 0)
		return;
	s = say("getfd", (int)syscall(SYS_pidfd_getfd, pidfd, atoi(fd), 0));
	if (s >= 0)
		say("connect", connect_local(s, port));
}

static void tcp(const char *port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	char buf[64];
	ssize_t n;

	if (say("tcp", fd < 0 ? -1 : connect_local(fd, port)) < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	printf("reply=%.*s\n", n > 0 ? (int)n : 0, buf);
}

static void vmread(void)
{
	char src[8] = "secret", dst[8];
	struct iovec l = { dst, sizeof(dst) }, r = { src, sizeof(src) };

	say("vmread", (int)syscall(SYS_process_vm_readv, getpid(), &l, 1, &r, 1, 0));
}

static void madvise_self(void)
{
	static char page[4096] __attribute__((aligned(4096)));
	struct iovec v = { page, sizeof(page) };
	int pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);

	/* MADV_COLD (20): harmless, and allowed on one's own memory. */
	say("madvise", (int)syscall(SYS_process_madvise, pidfd, &v, 1, 20, 0));
	close(pidfd);
}

/* getpid with the x32 bit, in a child the filter may kill. */
static void x32(void)
{
	int status = 0;
	pid_t pid = fork();

	if (pid == 0) {
#if defined(__x86_64__)
		long ret;

		__asm__ volatile("syscall"
				 : "=a"(ret)
				 : "a"(0x40000000L | SYS_getpid)
				 : "rcx", "r11", "memory");
		_exit(ret == getpid() ? 0 : 1);
#else
		_exit(1);
#endif
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		printf("x32=%s\n", strerrorname_np(errno));
	else if (WIFSIGNALED(status))
		printf("x32=SIG%s\n", sigabbrev_np(WTERMSIG(status)));
	else
		printf("x32=%s\n", WEXITSTATUS(status) ? "failed" : "ok");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	char path[64];

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *b = i + 1 < argc ? argv[i + 1] : "0",
			   *c = i + 2 < argc ? argv[i + 2] : "0",
			   *d = i + 3 < argc ? argv[i + 3] : "0";

		if (!strcmp(a, "hold")) {
			hold(b);
			i += 1;
		} else if (!strcmp(a, "getfd")) {
			getfd(b, c, d);
			i += 3;
		} else if (!strcmp(a, "ptrace")) {
			say("seize", (int)ptrace(PTRACE_SEIZE, atoi(b), 0, 0));
			say("attach", (int)ptrace(PTRACE_ATTACH, atoi(b), 0, 0));
			i += 1;
		} else if (!strcmp(a, "mem")) {
			snprintf(path, sizeof(path), "/proc/%d/mem", atoi(b));
			say("mem", open(path, O_RDWR));
			i += 1;
		} else if (!strcmp(a, "kill")) {
			say("kill", kill(atoi(b), 0));
			i += 1;
		} else if (!strcmp(a, "fd")) {
			say("fd", fcntl(atoi(b), F_GETFD));
			i += 1;
		} else if (!strcmp(a, "connectfd")) {
			say("connectfd", connect_local(atoi(b), c));
			i += 2;
		} else if (!strcmp(a, "socket")) {
			say("socket", socket(atoi(b), atoi(c), atoi(d)));
			i += 3;
		} else if (!strcmp(a, "io_uring")) {
			char params[120] = { 0 };

			say("io_uring", (int)syscall(SYS_io_uring_setup, 4, params));
		} else if (!strcmp(a, "tiocsti")) {
			say("tiocsti", ioctl(0, TIOCSTI, "x"));
		} else if (!strcmp(a, "tioclinux")) {
			char sub = 6; /* TIOCL_GETSHIFTSTATE */

			say("tioclinux", ioctl(0, TIOCLINUX, &sub));
		} else if (!strcmp(a, "vmread")) {
			vmread();
		} else if (!strcmp(a, "madvise")) {
			madvise_self();
		} else if (!strcmp(a, "kcmp")) {
			say("kcmp", (int)syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, 0, 0));
		} else if (!strcmp(a, "keyring")) {
			say("keyring", (int)syscall(SYS_add_key, "user", "agentgate-probe", "x", 1,
						    KEY_SPEC_SESSION_KEYRING));
		} else if (!strcmp(a, "x32")) {
			x32();
		} else if (!strcmp(a, "tcp")) {
			tcp(b);
			i += 1;
		} else {
			fprintf(stderr, "agent_probe: unknown step %s\n", a);
			return 2;
		}
	}
	return 0;
}
