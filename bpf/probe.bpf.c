// SPDX-License-Identifier: GPL-2.0
/*
 * Feature probe, never left attached: can this kernel attach BPF-LSM
 * programs?  BPF-LSM would cover sockets carried into an agent cgroup from
 * outside (inherited fds, SCM_RIGHTS), which the cgroup hooks do not see.
 * It needs BPF trampolines, which need ftrace; kernels without it fail the
 * attach, and agentgatectl status reports the gap.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

SEC("lsm/socket_connect")
int BPF_PROG(ag_probe_lsm, struct socket *sock, struct sockaddr *address, int addrlen)
{
	return 0;
}
