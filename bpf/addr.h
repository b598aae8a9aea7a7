/* SPDX-License-Identifier: GPL-2.0 */
/* Address helpers both kernel objects use, on the 16-byte form of agentgate.h. */
#ifndef AG_BPF_ADDR_H
#define AG_BPF_ADDR_H

#include <bpf/bpf_endian.h>

/* ::ffff:a.b.c.d, the form IPv4 addresses take in records and maps. */
static __always_inline bool ag_addr_v4_mapped(const __u8 *a)
{
	__u64 hi;
	__u32 mid;

	__builtin_memcpy(&hi, a, 8);
	__builtin_memcpy(&mid, a + 8, 4);
	return hi == 0 && mid == bpf_htonl(0xffff);
}

#endif
