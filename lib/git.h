/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The real git(1), run as a child for the policy source
 * (daemon/policy_git.c): fetch a ref into a private bare repository,
 * verify a commit's SSH signature against an allowed-signers file, and
 * export exactly that commit's tree into a fresh directory.
 *
 * Every call blocks (the daemon runs them on a thread of their own) and
 * is bounded: a child past the deadline, or asked to stop through
 * stop_fd, is killed with its process group; at most AG_GIT_OUT_MAX bytes
 * of its output are kept.  A child gets argv only (no shell), /dev/null
 * as stdin, no inherited descriptor, default signals, a session of its
 * own and a clean environment: PATH, LC_ALL=C, HOME the private
 * directory's home/, GIT_CONFIG_NOSYSTEM=1, no global configuration,
 * GIT_TERMINAL_PROMPT=0; hooks are off (core.hooksPath=/dev/null) and
 * symlinks in a tree are written as plain files (core.symlinks=false).
 */
#ifndef AG_GIT_H
#define AG_GIT_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define AG_GIT_COMMIT_LEN 65 /* hex SHA-1 or SHA-256, NUL */
#define AG_GIT_OUT_MAX 4096

struct ag_git {
	const char *dir;      /* private, root's: repo.git, home, index */
	int stop_fd;	      /* readable: give up now (the child is killed); -1 none */
	uint64_t deadline_ns; /* ag_now_ns(): children still running then are killed */
};

/* Creates dir's bare repository and home if missing. */
int ag_git_prepare(const struct ag_git *g, struct ag_err *err);
/* Fetches ref of url; *commit gets the commit it names (a tag is peeled). */
int ag_git_fetch(const struct ag_git *g, const char *url, const char *ref,
		 char commit[AG_GIT_COMMIT_LEN], struct ag_err *err);
/*
 * Whether commit carries a good SSH signature by a key of signers (an
 * allowed-signers file, ssh-keygen(1)): 0, with git's "Good ... signature
 * for PRINCIPAL with ... key ..." line in signer; else -EPERM (unsigned,
 * unknown key, bad signature) with the cause in err.
 */
int ag_git_verify(const struct ag_git *g, const char *signers, const char *commit, char *signer,
		  size_t cap, struct ag_err *err);
/* Writes commit's tree into dest, which must not exist yet. */
int ag_git_export(const struct ag_git *g, const char *commit, const char *dest, struct ag_err *err);

#endif
