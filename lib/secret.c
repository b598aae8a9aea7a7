// SPDX-License-Identifier: GPL-2.0
/* Secret files: strict ownership and mode checks, memory kept out of core dumps. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "secret.h"

int ag_secret_check_fd(int fd, const char *path, size_t *size, struct ag_err *err)
{
	struct stat st;

	if (fstat(fd, &st))
		return ag_errf(err, errno, "%s: stat: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return ag_errf(err, EINVAL, "%s: not a regular file; a secret must be a plain file",
			       path);
	if (st.st_uid != 0)
		return ag_errf(err, EPERM, "%s: owned by uid %u, not root; fix with: chown root %s",
			       path, (unsigned int)st.st_uid, path);
	if (st.st_mode & 07177)
		return ag_errf(
		    err, EPERM,
		    "%s: mode %04o, a secret must be 0600 or 0400; fix with: chmod 600 %s", path,
		    (unsigned int)(st.st_mode & 07777), path);
	if (st.st_size > AG_SECRET_MAX)
		return ag_errf(err, EFBIG, "%s: %lld bytes, more than the %d allowed for a secret",
			       path, (long long)st.st_size, AG_SECRET_MAX);
	if (size)
		*size = (size_t)st.st_size;
	return 0;
}

/* A mapping of at least want bytes after the header, kept out of core dumps. */
static struct ag_secret *secret_alloc(size_t want)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t len = (sizeof(struct ag_secret) + want + page - 1) / page * page;
	struct ag_secret *s;

	s = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (s == MAP_FAILED)
		return NULL;
	if (madvise(s, len, MADV_DONTDUMP)) {
		munmap(s, len);
		return NULL;
	}
	s->data = (unsigned char *)(s + 1);
	s->len = 0;
	s->map_len = len;
	return s;
}

void ag_secret_free(struct ag_secret *s)
{
	size_t len;

	if (!s)
		return;
	len = s->map_len;
	explicit_bzero(s, len);
	munmap(s, len);
}

/* Reads the whole file into s; cap is the room in s->data without the final NUL. */
static int secret_read(int fd, const char *path, struct ag_secret *s, size_t cap,
		       struct ag_err *err)
{
	int ret = ag_file_read_into(fd, path, s->data, cap, &s->len, err);

	/* More than fstat said: it grew after the check. */
	if (ret == -EFBIG)
		return ag_errf(err, EAGAIN, "%s: changed while being read; try again", path);
	return ret;
}

int ag_secret_load(const char *path, unsigned int flags, struct ag_secret **out, struct ag_err *err)
{
	struct ag_secret *s = NULL;
	size_t size;
	int fd, ret;

	*out = NULL;
	/* O_NOFOLLOW: a symlink swapped in after any check of ours is refused by the kernel. */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0 && errno == ELOOP)
		return ag_errf(err, ELOOP, "%s: is a symlink; point the configuration at the file",
			       path);
	if (fd < 0)
		return ag_errf(err, errno, "%s: open: %s", path, strerror(errno));
	ret = ag_secret_check_fd(fd, path, &size, err);
	if (ret)
		goto out;
	/* +1 for the NUL after the data. */
	s = secret_alloc(size + 1);
	if (!s) {
		ret = ag_errf(err, ENOMEM, "%s: cannot map memory for the secret", path);
		goto out;
	}
	ret = secret_read(fd, path, s, size, err);
	if (ret)
		goto out;
	if (memchr(s->data, '\0', s->len)) {
		ret = ag_errf(err, EINVAL, "%s: contains a NUL byte; a secret must be text", path);
		goto out;
	}
	if (!(flags & AG_SECRET_RAW) && s->len && s->data[s->len - 1] == '\n') {
		s->len--;
		if (s->len && s->data[s->len - 1] == '\r')
			s->len--;
	}
	if (!s->len) {
		ret = ag_errf(err, EINVAL, "%s: is empty", path);
		goto out;
	}
	s->data[s->len] = '\0';
	*out = s;
	s = NULL;
out:
	ag_secret_free(s);
	close(fd);
	return ret;
}

int ag_secret_process_harden(void)
{
	return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) ? -errno : 0;
}

int ag_secret_dir_check(const char *dir, mode_t create_mode, struct ag_err *err)
{
	struct stat st;

	if (create_mode && mkdir(dir, create_mode) && errno != EEXIST)
		return ag_errf(err, errno, "%s: mkdir: %s", dir, strerror(errno));
	if (lstat(dir, &st))
		return ag_errf(err, errno, "%s: stat: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return ag_errf(err, ENOTDIR, "%s: not a directory", dir);
	if (st.st_uid != geteuid())
		return ag_errf(
		    err, EPERM, "%s: owned by uid %u, not by uid %u; fix with: chown %u %s", dir,
		    (unsigned int)st.st_uid, (unsigned int)geteuid(), (unsigned int)geteuid(), dir);
	if (st.st_mode & 022)
		return ag_errf(err, EPERM,
			       "%s: writable by group or others; fix with: chmod go-w %s", dir,
			       dir);
	return 0;
}
