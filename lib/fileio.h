/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Whole small files: the one reader and the one atomic writer.
 *
 * Reading: a regular file only (a FIFO or a device would block or never
 * end), opened non-blocking, read to its end and refused when it holds more
 * than max bytes, including a file that grows past max while it is read.
 *
 * Writing: DIR/.NAME.tmp is created afresh (O_EXCL | O_NOFOLLOW: never
 * through a symlink planted at the temporary name), given exactly its mode,
 * written, fsynced, renamed over DIR/NAME (rename replaces a symlink there
 * instead of following it), and DIR is fsynced so that the rename itself
 * survives a crash.  Readers see the old file or the new one, never a mix.
 * Two writers of one name must be serialised by the caller.
 */
#ifndef AG_FILEIO_H
#define AG_FILEIO_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <jansson.h>

#include "util.h"

/* ag_file_open() flags. */
#define AG_FILE_NOFOLLOW 0x1u /* refuse a symlink as the last component (ELOOP) */

/*
 * Opens dir/path (dirfd may be AT_FDCWD; dir only names the file in
 * messages, NULL when path says it all) for reading and checks it is a
 * regular file; *st (optional) gets its status.  Returns the fd or -errno.
 */
int ag_file_open(int dirfd, const char *dir, const char *path, unsigned int flags, struct stat *st,
		 struct ag_err *err);

/*
 * Reads fd to its end into a fresh buffer; *out is NUL-terminated and the
 * caller's, *len (optional) its length.  -EFBIG when fd holds more than max.
 * name is for messages.
 */
int ag_file_read_fd(int fd, const char *name, size_t max, char **out, size_t *len,
		    struct ag_err *err);

/*
 * Reads fd to its end into buf of cap bytes (no NUL added); -EFBIG,
 * without a message, when there is more than cap: the caller says why.
 */
int ag_file_read_into(int fd, const char *name, void *buf, size_t cap, size_t *len,
		      struct ag_err *err);

/* ag_file_open() and ag_file_read_fd() in one. */
int ag_file_read_at(int dirfd, const char *dir, const char *path, unsigned int flags, size_t max,
		    char **out, size_t *len, struct ag_err *err);

/*
 * Replaces dirfd/name with len bytes of data and the given mode, as the top
 * comment says; dirfd is an open directory (it is fsynced: not AT_FDCWD),
 * dir names it in messages.  -ENOENT when the
 * directory does not exist.
 */
int ag_file_write_atomic_at(int dirfd, const char *dir, const char *name, const void *data,
			    size_t len, mode_t mode, struct ag_err *err);

/* The same for a path: its directory is opened for the call. */
int ag_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
			 struct ag_err *err);

/*
 * Makes path, which must not exist yet (-EEXIST; a symlink there counts),
 * with len bytes of data and exactly mode, synced with its directory;
 * nothing is left behind on failure.  For files that are never replaced,
 * such as a new private key.
 */
int ag_file_create(const char *path, const void *data, size_t len, mode_t mode, struct ag_err *err);

/* The JSON documents operators and tests hand in (configuration, entities,
 * test cases) stay far below this. */
#define AG_JSON_FILE_MAX (16u << 20)

/*
 * json_load_file() under the reader's rules: a regular file of at most
 * AG_JSON_FILE_MAX bytes, so a FIFO named as a configuration does not hang
 * the reader and an endless file does not fill its memory.  jerr (optional)
 * as jansson fills it; a file that cannot be read gives line -1 and the
 * cause in its text, as jansson does for a file it cannot open.
 */
json_t *ag_json_load_file(const char *path, size_t flags, json_error_t *jerr);

/*
 * Removes path and everything under it, best effort: symlinks are removed,
 * never followed, and other file systems mounted below are not entered.
 */
void ag_file_remove_tree(const char *path);

#endif
