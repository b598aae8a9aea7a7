// SPDX-License-Identifier: GPL-2.0
/* Whole small files: the one reader and the one atomic writer (fileio.h). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "fileio.h"

/* "dir/name" or "name" for messages. */
#define NAMED(dir) (dir) ? (dir) : "", (dir) ? "/" : ""

int ag_file_open(int dirfd, const char *dir, const char *path, unsigned int flags, struct stat *st,
		 struct ag_err *err)
{
	int oflags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
	struct stat sb;
	int fd;

	if (flags & AG_FILE_NOFOLLOW)
		oflags |= O_NOFOLLOW;
	fd = openat(dirfd, path, oflags);
	if (fd < 0)
		return ag_errf(err, errno, "%s%s%s: open: %s", NAMED(dir), path, strerror(errno));
	if (!st)
		st = &sb;
	if (fstat(fd, st)) {
		int e = errno;

		close(fd);
		return ag_errf(err, e, "%s%s%s: stat: %s", NAMED(dir), path, strerror(e));
	}
	/* Fail closed: a FIFO or device could block the caller or never end. */
	if (!S_ISREG(st->st_mode)) {
		close(fd);
		return ag_errf(err, EINVAL, "%s%s%s: not a regular file", NAMED(dir), path);
	}
	return fd;
}

int ag_file_read_into(int fd, const char *name, void *buf, size_t cap, size_t *len,
		      struct ag_err *err)
{
	size_t n = 0;

	for (;;) {
		char probe; /* a byte beyond cap tells a file too long, or grown */
		ssize_t r = n < cap ? read(fd, (char *)buf + n, cap - n) : read(fd, &probe, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return ag_errf(err, errno, "%s: read: %s", name, strerror(errno));
		if (r == 0)
			break;
		if (n == cap) {
			explicit_bzero(&probe, 1); /* it may be a secret's */
			return -EFBIG;
		}
		n += (size_t)r;
	}
	*len = n;
	return 0;
}

int ag_file_read_fd(int fd, const char *name, size_t max, char **out, size_t *len,
		    struct ag_err *err)
{
	struct ag_buf b = { 0 };

	size_t limit = max + 2; /* max bytes, one that tells a longer file, the NUL */

	*out = NULL;
	if (max > SIZE_MAX / 2)
		return ag_errf(err, EINVAL, "%s: no size limit", name);
	for (;;) {
		size_t more = b.len < 4096 ? 4096 : b.len;
		ssize_t r;

		if (more > limit - 1 - b.len)
			more = limit - 1 - b.len;
		if (ag_buf_reserve(&b, more, limit)) {
			ag_buf_free(&b);
			return ag_errf(err, ENOMEM, "%s: out of memory", name);
		}
		r = read(fd, b.p + b.len, b.cap - 1 - b.len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;

			ag_buf_free(&b);
			return ag_errf(err, e, "%s: read: %s", name, strerror(e));
		}
		if (r == 0)
			break;
		b.len += (size_t)r;
		/* Fail closed: longer than max, or grew past it while read. */
		if (b.len > max) {
			ag_buf_free(&b);
			return ag_errf(err, EFBIG, "%s: larger than %zu bytes", name, max);
		}
	}
	b.p[b.len] = '\0';
	*out = b.p;
	if (len)
		*len = b.len;
	return 0;
}

int ag_file_read_at(int dirfd, const char *dir, const char *path, unsigned int flags, size_t max,
		    char **out, size_t *len, struct ag_err *err)
{
	char name[PATH_MAX];
	int fd, ret;

	*out = NULL;
	fd = ag_file_open(dirfd, dir, path, flags, NULL, err);
	if (fd < 0)
		return fd;
	snprintf(name, sizeof(name), "%s%s%s", NAMED(dir), path);
	ret = ag_file_read_fd(fd, name, max, out, len, err);
	close(fd);
	return ret;
}

int ag_read_file(const char *path, size_t max, char **out, size_t *len, struct ag_err *err)
{
	return ag_file_read_at(AT_FDCWD, NULL, path, 0, max, out, len, err);
}

json_t *ag_json_load_file(const char *path, size_t flags, json_error_t *jerr)
{
	json_error_t scratch;
	struct ag_err err;
	char *text;
	size_t len;
	json_t *j;

	jerr = jerr ? jerr : &scratch;
	if (ag_read_file(path, AG_JSON_FILE_MAX, &text, &len, &err)) {
		memset(jerr, 0, sizeof(*jerr));
		jerr->line = jerr->column = -1;
		/* Cut to jansson's fields, as its own messages are. */
		snprintf(jerr->text, sizeof(jerr->text), "%.*s", (int)sizeof(jerr->text) - 1,
			 err.msg);
		snprintf(jerr->source, sizeof(jerr->source), "%.*s",
			 (int)sizeof(jerr->source) - 1, path);
		return NULL;
	}
	j = json_loadb(text, len, flags, jerr);
	if (!j)
		snprintf(jerr->source, sizeof(jerr->source), "%.*s",
			 (int)sizeof(jerr->source) - 1, path);
	free(text);
	return j;
}

/* Writes all of data to fd, retrying short writes. */
static int write_all(int fd, const char *name, const void *data, size_t len, struct ag_err *err)
{
	for (size_t off = 0; off < len;) {
		ssize_t w = write(fd, (const char *)data + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return ag_errf(err, errno, "%s: write: %s", name, strerror(errno));
		off += (size_t)w;
	}
	return 0;
}

/*
 * dirfd/name made afresh (never through a name someone else made: O_EXCL |
 * O_NOFOLLOW) with exactly mode, data written and synced; removed again
 * when any of that fails.
 */
static int create_synced(int dirfd, const char *label, const char *name, const void *data,
			 size_t len, mode_t mode, struct ag_err *err)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	int ret;

	if (fd < 0)
		return ag_errf(err, errno, "%s: create: %s", label, strerror(errno));
	/* The umask may have taken bits away; the mode is part of the contract. */
	ret = fchmod(fd, mode) ? ag_errf(err, errno, "%s: chmod: %s", label, strerror(errno)) : 0;
	if (!ret)
		ret = write_all(fd, label, data, len, err);
	if (!ret && fsync(fd))
		ret = ag_errf(err, errno, "%s: fsync: %s", label, strerror(errno));
	close(fd);
	if (ret)
		unlinkat(dirfd, name, 0);
	return ret;
}

/* A new entry of the directory is durable only once the directory is synced. */
static int sync_dir(int dirfd, const char *dir, struct ag_err *err)
{
	if (fsync(dirfd))
		return ag_errf(err, errno, "%s: fsync: %s", dir ? dir : ".", strerror(errno));
	return 0;
}

int ag_file_write_atomic_at(int dirfd, const char *dir, const char *name, const void *data,
			    size_t len, mode_t mode, struct ag_err *err)
{
	char tmp[NAME_MAX + 1], label[PATH_MAX];
	int ret;

	if (strchr(name, '/') || snprintf(tmp, sizeof(tmp), ".%s.tmp", name) >= (int)sizeof(tmp))
		return ag_errf(err, EINVAL, "%s%s%s: not a plain file name", NAMED(dir), name);
	snprintf(label, sizeof(label), "%s%s%s", NAMED(dir), tmp);
	/* A leftover of a crash (or a planted symlink: unlink does not follow it). */
	if (unlinkat(dirfd, tmp, 0) && errno != ENOENT)
		return ag_errf(err, errno, "%s: unlink: %s", label, strerror(errno));
	ret = create_synced(dirfd, label, tmp, data, len, mode, err);
	if (ret)
		return ret;
	if (renameat(dirfd, tmp, dirfd, name)) {
		ret = ag_errf(err, errno, "%s%s%s: rename: %s", NAMED(dir), name, strerror(errno));
		unlinkat(dirfd, tmp, 0);
		return ret;
	}
	return sync_dir(dirfd, dir, err);
}

static int create_at(int dirfd, const char *dir, const char *name, const void *data, size_t len,
		     mode_t mode, struct ag_err *err)
{
	char label[PATH_MAX];
	int ret;

	snprintf(label, sizeof(label), "%s%s%s", NAMED(dir), name);
	ret = create_synced(dirfd, label, name, data, len, mode, err);
	return ret ? ret : sync_dir(dirfd, dir, err);
}

/* Runs fn on path's directory (opened for the call) and last component. */
static int
in_parent(int (*fn)(int, const char *, const char *, const void *, size_t, mode_t, struct ag_err *),
	  const char *path, const void *data, size_t len, mode_t mode, struct ag_err *err)
{
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX];
	int dfd, ret;

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else if ((size_t)(slash - path) >= sizeof(dir))
		return ag_errf(err, ENAMETOOLONG, "%s: name too long", path);
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return ag_errf(err, errno, "%s: open: %s", dir, strerror(errno));
	ret = fn(dfd, dir, slash ? slash + 1 : path, data, len, mode, err);
	close(dfd);
	return ret;
}

int ag_file_write_atomic(const char *path, const void *data, size_t len, mode_t mode,
			 struct ag_err *err)
{
	return in_parent(ag_file_write_atomic_at, path, data, len, mode, err);
}

int ag_file_create(const char *path, const void *data, size_t len, mode_t mode, struct ag_err *err)
{
	return in_parent(create_at, path, data, len, mode, err);
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

void ag_file_remove_tree(const char *path)
{
	nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}
