/* SPDX-License-Identifier: GPL-2.0 */
#ifndef AG_PROBE_H
#define AG_PROBE_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Whether BPF-LSM programs can be attached here: loads and attaches a no-op
 * LSM program, then detaches it.  On false, why is a one-line reason.
 */
bool ag_probe_bpf_lsm(char *why, size_t len);
/*
 * Whether this kernel has the unix-socket cgroup hooks (6.7 and later),
 * which police agents' AF_UNIX connects and sends: loads a program of that
 * attach type, attached to nothing.  Asked once per process.  On false, why
 * says what failed.
 */
bool ag_probe_unix_hooks(char *why, size_t len);

#endif
