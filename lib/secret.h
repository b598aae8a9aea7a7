/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Secrets read from files: bearer tokens, header values, client secrets and
 * the instance's private keys.  A secret file must be a regular file owned
 * by root with mode 0600 or 0400; anything else is refused, because a secret
 * that another user can read or replace is no longer a secret.  The bytes
 * live in their own mapping, excluded from core dumps and wiped on free, and
 * never appear in an error message.
 */
#ifndef AG_SECRET_H
#define AG_SECRET_H

#include <stddef.h>
#include <sys/types.h>

#include "util.h"

#define AG_SECRET_MAX (64 * 1024)

/* Keep the file's bytes as they are (PEM keys): no trailing newline stripping. */
#define AG_SECRET_RAW 0x1u

struct ag_secret {
	unsigned char *data; /* len bytes, then a NUL (so header values can be used as strings) */
	size_t len;
	size_t map_len; /* the whole mapping, this header included */
};

/*
 * Loads the secret in path.  Refused (with a message naming path, the cause
 * and the fix): not a regular file, a symlink, not owned by root, any mode
 * bit beyond 0600, larger than AG_SECRET_MAX, a NUL byte, or empty.  One
 * trailing "\n" or "\r\n" is stripped unless flags has AG_SECRET_RAW.
 */
int ag_secret_load(const char *path, unsigned int flags, struct ag_secret **out,
		   struct ag_err *err);
/* Wipes and unmaps s; NULL is fine. */
void ag_secret_free(struct ag_secret *s);

/*
 * Checks that the open file fd (named path in messages) may hold a secret:
 * a regular file owned by root, no permission bits beyond 0600, at most
 * AG_SECRET_MAX bytes.  *size (if not NULL) receives its size.
 */
int ag_secret_check_fd(int fd, const char *path, size_t *size, struct ag_err *err);

/*
 * Makes the process non-dumpable: no core dumps, no ptrace or /proc/PID/mem
 * by other processes of the same uid.  Returns 0 or -errno.
 */
int ag_secret_process_harden(void);

/*
 * A directory holding keys must be ours and closed to writes by others:
 * whoever can write to it can swap what is read from it.  create_mode 0:
 * it must exist; else it is created with that mode when missing.  The
 * error says how to fix the directory.
 */
int ag_secret_dir_check(const char *dir, mode_t create_mode, struct ag_err *err);

#endif
