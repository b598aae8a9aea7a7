// SPDX-License-Identifier: GPL-2.0
/*
 * The agent sandbox (sandbox.h): a scope-only Landlock domain and a seccomp
 * filter.  Order: Landlock first, then seccomp, both after no_new_privs
 * (each refuses an unprivileged caller without it) and after the last
 * setuid (a uid change after Landlock would not matter, but the filter
 * could refuse one a later step needs).
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>

#include "sandbox.h"

/* linux/landlock.h of older distributions lacks the ABI 6 scopes. */
#define LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define LL_SCOPE_SIGNAL (1ULL << 1)

/* struct landlock_ruleset_attr as of ABI 6; older kernels take it when the
 * fields they do not know are zero. */
struct ll_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;
	uint64_t scoped;
};

int ag_landlock_abi(void)
{
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);

	return abi < 0 ? 0 : (int)abi;
}

/*
 * A domain of the agent's own.  From ABI 6 it only scopes.  Before, the
 * kernel refuses a ruleset that handles nothing (ENOMSG), so it handles
 * making block devices, with no rule allowing it: an agent cannot do that
 * anyway (CAP_MKNOD), and the domain, which is what keeps other processes
 * out of reach, exists.
 */
static int landlock_apply(int abi, struct ag_err *err)
{
	struct ll_ruleset_attr attr = { 0 };
	int fd, ret = 0;

	if (abi >= AG_LANDLOCK_ABI_SCOPES)
		attr.scoped = LL_SCOPE_ABSTRACT_UNIX_SOCKET | LL_SCOPE_SIGNAL;
	else
		attr.handled_access_fs = LANDLOCK_ACCESS_FS_MAKE_BLOCK;
	fd = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
	if (fd < 0)
		return ag_errf(err, errno, "landlock (ABI %d): create ruleset: %s", abi,
			       strerror(errno));
	if (syscall(SYS_landlock_restrict_self, fd, 0))
		ret = ag_errf(err, errno, "landlock (ABI %d): restrict self: %s", abi,
			      strerror(errno));
	close(fd);
	return ret;
}

#if defined(__x86_64__)
#define AUDIT_ARCH_NATIVE AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define AUDIT_ARCH_NATIVE AUDIT_ARCH_AARCH64
#else
#define AUDIT_ARCH_NATIVE 0 /* unsupported: ag_sandbox_apply fails closed */
#endif

/* The low 32 bits of syscall argument i: what the kernel reads of an int. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ARG_LO(i) (offsetof(struct seccomp_data, args[i]))
#else
#define ARG_LO(i) (offsetof(struct seccomp_data, args[i]) + 4)
#endif

#define LD(off) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (off))
#define JEQ(k, jt, jf) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (k), (jt), (jf))
#define RET(v) BPF_STMT(BPF_RET | BPF_K, (v))
#define ERRNO(e) RET(SECCOMP_RET_ERRNO | (e))

/*
 * Refused whatever their arguments:
 *  - ptrace, pidfd_getfd, process_vm_readv/writev, process_madvise, kcmp:
 *    they read, write or take from another process (its memory, its
 *    descriptors: a socket taken from a process outside the cgroup was
 *    created where no hook sees it);
 *  - add_key, keyctl, request_key: the kernel keyrings are per uid, not per
 *    process tree, so with --user they are shared with the user's other
 *    processes;
 *  - io_uring_*: IORING_OP_SOCKET makes sockets without socket(), past the
 *    family check below; ENOSYS makes libuv and the like fall back.
 */
static const struct {
	long nr;
	int err;
} refused[] = {
	{ SYS_ptrace, EPERM },		 { SYS_pidfd_getfd, EPERM },
	{ SYS_process_vm_readv, EPERM }, { SYS_process_vm_writev, EPERM },
	{ SYS_process_madvise, EPERM },	 { SYS_kcmp, EPERM },
	{ SYS_add_key, EPERM },		 { SYS_keyctl, EPERM },
	{ SYS_request_key, EPERM },	 { SYS_io_uring_setup, ENOSYS },
	{ SYS_io_uring_enter, ENOSYS },	 { SYS_io_uring_register, ENOSYS },
};

/* The first instructions: a foreign ABI (i386, x32) is not filtered the same
 * way, so a process that uses one is killed. */
static const struct sock_filter head[] = {
	LD(offsetof(struct seccomp_data, arch)),
	JEQ(AUDIT_ARCH_NATIVE, 1, 0),
	RET(SECCOMP_RET_KILL_PROCESS),
	LD(offsetof(struct seccomp_data, nr)),
#ifdef __x86_64__
	BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000 /* __X32_SYSCALL_BIT */, 0, 1),
	RET(SECCOMP_RET_KILL_PROCESS),
#endif
};

/*
 * The last ones, where the accumulator still holds nr.  ioctl: the agent
 * shares the operator's terminal (fds 0-2); TIOCSTI would type commands
 * into it that the operator's shell runs once the agent exits, TIOCLINUX
 * paste into a console.  socket(), socketpair(): only the families the
 * cgroup hooks govern (inet, inet6) or that stay on the host (unix), and
 * netlink for NETLINK_ROUTE alone (getaddrinfo asks it for the host's
 * addresses); sock_diag would list every socket of the host, vsock and
 * packet sockets go where no hook looks.  The numbers are instruction
 * indices for the jumps.
 */
static const struct sock_filter tail[] = {
	/* 0 */ JEQ(SYS_ioctl, 0, 5),
	/* 1 */ LD(ARG_LO(1)),
	/* 2 */ JEQ(TIOCSTI, 2, 0),
	/* 3 */ JEQ(TIOCLINUX, 1, 0),
	/* 4 */ RET(SECCOMP_RET_ALLOW),
	/* 5 */ ERRNO(EPERM),
	/* 6 */ JEQ(SYS_socket, 1, 0),
	/* 7 */ JEQ(SYS_socketpair, 0, 9),
	/* 8 */ LD(ARG_LO(0)),
	/* 9 */ JEQ(AF_INET, 7, 0),
	/* 10 */ JEQ(AF_INET6, 6, 0),
	/* 11 */ JEQ(AF_UNIX, 5, 0),
	/* 12 */ JEQ(AF_NETLINK, 1, 0),
	/* 13 */ ERRNO(EAFNOSUPPORT),
	/* 14 */ LD(ARG_LO(2)),
	/* 15 */ JEQ(NETLINK_ROUTE, 1, 0),
	/* 16 */ ERRNO(EPERM),
	/* 17 */ RET(SECCOMP_RET_ALLOW),
};

#define FILTER_LEN (AG_ARRAY_SIZE(head) + 2 * AG_ARRAY_SIZE(refused) + AG_ARRAY_SIZE(tail))

bool ag_seccomp_available(void)
{
	uint32_t action = SECCOMP_RET_KILL_PROCESS;

	return syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) == 0;
}

static int seccomp_apply(struct ag_err *err)
{
	struct sock_filter insn[FILTER_LEN];
	struct sock_fprog prog = { .len = FILTER_LEN, .filter = insn };
	size_t n = 0;

	if (!AUDIT_ARCH_NATIVE)
		/* Fail closed: no filter written for this architecture. */
		return ag_errf(err, ENOSYS, "seccomp: no filter for this architecture");
	memcpy(insn, head, sizeof(head));
	n = AG_ARRAY_SIZE(head);
	for (size_t i = 0; i < AG_ARRAY_SIZE(refused); i++) {
		insn[n++] = (struct sock_filter)JEQ((uint32_t)refused[i].nr, 0, 1);
		insn[n++] = (struct sock_filter)ERRNO((uint32_t)refused[i].err);
	}
	memcpy(insn + n, tail, sizeof(tail));
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog))
		return ag_errf(err, errno, "seccomp: install filter: %s", strerror(errno));
	return 0;
}

int ag_sandbox_apply(bool landlock_required, struct ag_err *err)
{
	int abi = ag_landlock_abi(), ret;

	if (!ag_seccomp_available())
		/* Fail closed: nothing else refuses pidfd_getfd, vsock, sock_diag. */
		return ag_errf(err, ENOSYS, "seccomp: this kernel takes no filters");
	if (!abi && landlock_required)
		/* Fail closed: with a uid others share, only Landlock keeps them out of reach. */
		return ag_errf(err, ENOSYS,
			       "landlock: not available (not built or not in the lsm= list), and "
			       "the agent's uid may be shared: run without --user for a uid of "
			       "its own");
	if (abi && (ret = landlock_apply(abi, err)))
		return ret;
	return seccomp_apply(err);
}
