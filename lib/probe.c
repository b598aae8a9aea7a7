// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "kern.h"

#include "probe.h"
#include "probe.skel.h"
#include "util.h"

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return 0;
}

bool ag_probe_bpf_lsm(char *why, size_t len)
{
	libbpf_print_fn_t old = libbpf_set_print(quiet);
	struct probe_bpf *skel = NULL;
	struct bpf_link *link = NULL;
	char *lsms = NULL;
	bool ok = false;

	/* Without "bpf" in the active LSM list the attach could never work. */
	if (!ag_read_file("/sys/kernel/security/lsm", 4096, &lsms, NULL, NULL) &&
	    !strstr(lsms, "bpf")) {
		snprintf(why, len, "\"bpf\" is not in the active LSMs (%s)", lsms);
		goto out;
	}
	skel = probe_bpf__open_and_load();
	if (!skel) {
		/* Typically EPERM/EINVAL when the kernel has no BPF trampolines. */
		snprintf(why, len,
			 "the kernel refuses LSM programs (load: %s; they need BPF trampolines, "
			 "which need ftrace)",
			 strerror(errno));
		goto out;
	}
	link = bpf_program__attach_lsm(skel->progs.ag_probe_lsm);
	if (!link) {
		snprintf(why, len, "cannot attach an LSM program: %s%s", strerror(errno),
			 errno == EOPNOTSUPP || errno == 524 /* ENOTSUPP */
			     ? " (no BPF trampolines: kernel without ftrace)"
			     : "");
		goto out;
	}
	ok = true;
	snprintf(why, len, "available");
out:
	bpf_link__destroy(link);
	probe_bpf__destroy(skel);
	free(lsms);
	libbpf_set_print(old);
	return ok;
}

bool ag_probe_unix_hooks(char *why, size_t len)
{
	/* r0 = 1 (allow); exit */
	static const struct bpf_insn allow[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 1 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	static int probed; /* 0: not yet, else the errno of the load, or -1: loaded */
	LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = AG_ATTACH_UNIX_CONNECT);

	if (!probed) {
		int fd = bpf_prog_load(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, "ag_probe_unix", "GPL",
				       allow, AG_ARRAY_SIZE(allow), &opts);

		probed = fd >= 0 ? -1 : errno ? errno : EINVAL;
		if (fd >= 0)
			close(fd);
	}
	if (probed == -1) {
		snprintf(why, len, "available");
		return true;
	}
	if (probed == EINVAL)
		snprintf(why, len, "the kernel has no unix-socket cgroup hooks (they need 6.7)");
	else
		snprintf(why, len, "unix-socket hook probe: %s", strerror(probed));
	return false;
}
