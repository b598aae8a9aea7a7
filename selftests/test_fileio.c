// SPDX-License-Identifier: GPL-2.0
/*
 * The shared whole-file, buffer, LRU, spare-buffer and string-copy helpers
 * (lib/fileio.h, lib/buf.h, lib/lru.h, lib/spares.h, lib/util.h) against
 * hostile cases: symlinks planted at the temporary or the target name, a
 * FIFO, a file longer than the cap or grown after its size was read, size
 * arithmetic that would overflow, the LRU's order, spares that stay bounded,
 * and a string copy cut to its room.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "fileio.h"
#include "kern_internal.h"
#include "lru.h"
#include "spares.h"
#include "test.h"

struct fdir {
	char dir[64];
	char path[5][128]; /* removed at the end */
	int dfd;
};

static bool fdir_init(struct fdir *f)
{
	memset(f, 0, sizeof(*f));
	f->dfd = -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/agt-fileio-XXXXXX");
	if (!ASSERT_OK_PTR(mkdtemp(f->dir), "mkdtemp"))
		return false;
	f->dfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return ASSERT_GE(f->dfd, 0, "open dir");
}

static const char *fdir_path(struct fdir *f, int i, const char *name)
{
	snprintf(f->path[i], sizeof(f->path[i]), "%s/%s", f->dir, name);
	return f->path[i];
}

static void fdir_fini(struct fdir *f)
{
	for (size_t i = 0; i < AG_ARRAY_SIZE(f->path); i++)
		if (f->path[i][0])
			unlink(f->path[i]);
	if (f->dfd >= 0)
		close(f->dfd);
	rmdir(f->dir);
}

static void put(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	if (ASSERT_OK_PTR(fp, path)) {
		fputs(text, fp);
		fclose(fp);
	}
}

/* The file's text, "" when unreadable. */
static void text_of(const char *path, char *buf, size_t len)
{
	struct ag_err err;
	char *t = NULL;

	buf[0] = '\0';
	if (!ag_read_file(path, len - 1, &t, NULL, &err))
		snprintf(buf, len, "%s", t);
	free(t);
}

TEST(fileio_write_atomic)
{
	struct ag_err err;
	char text[64];
	struct stat st;
	struct fdir f;
	mode_t old;

	if (!fdir_init(&f))
		goto out;
	const char *target = fdir_path(&f, 0, "f");
	const char *tmp = fdir_path(&f, 1, ".f.tmp");
	const char *victim = fdir_path(&f, 2, "victim");

	put(victim, "untouched");
	if (test__start_subtest("symlink_at_temp")) {
		ASSERT_OK(symlink(victim, tmp), "plant a symlink at the temporary name");
		ASSERT_OK(ag_file_write_atomic(target, "new\n", 4, 0600, &err), err.msg);
		text_of(victim, text, sizeof(text));
		ASSERT_STREQ(text, "untouched", "nothing written through the symlink");
		text_of(target, text, sizeof(text));
		ASSERT_STREQ(text, "new\n", "target written");
		ASSERT_ERRNO(lstat(tmp, &st), ENOENT, "no temporary left");
	}
	if (test__start_subtest("symlink_at_target")) {
		unlink(target);
		ASSERT_OK(symlink(victim, target), "plant a symlink at the target");
		ASSERT_OK(ag_file_write_atomic_at(f.dfd, f.dir, "f", "x", 1, 0600, &err), err.msg);
		ASSERT_OK(lstat(target, &st), "lstat");
		ASSERT_TRUE(S_ISREG(st.st_mode), "the symlink is replaced, not followed");
		text_of(victim, text, sizeof(text));
		ASSERT_STREQ(text, "untouched", "victim unchanged");
	}
	if (test__start_subtest("mode_despite_umask")) {
		old = umask(077);
		ASSERT_OK(ag_file_write_atomic(target, "m", 1, 0644, &err), err.msg);
		umask(old);
		ASSERT_OK(stat(target, &st), "stat");
		ASSERT_EQ(st.st_mode & 07777, 0644, "exact mode");
	}
	if (test__start_subtest("create_new_only")) {
		const char *key = fdir_path(&f, 4, "key");

		old = umask(077);
		ASSERT_OK(ag_file_create(key, "k1", 2, 0640, &err), err.msg);
		umask(old);
		ASSERT_OK(stat(key, &st), "stat");
		ASSERT_EQ(st.st_mode & 07777, 0640, "exact mode");
		ASSERT_EQ(ag_file_create(key, "k2", 2, 0600, &err), -EEXIST, "never replaced");
		text_of(key, text, sizeof(text));
		ASSERT_STREQ(text, "k1", "the first one kept");
		unlink(key);
		ASSERT_OK(symlink(victim, key), "plant a symlink at the name");
		ASSERT_EQ(ag_file_create(key, "k3", 2, 0600, &err), -EEXIST, "not through it");
		text_of(victim, text, sizeof(text));
		ASSERT_STREQ(text, "untouched", "victim unchanged");
		unlink(key);
		f.path[4][0] = '\0';
	}
	if (test__start_subtest("refusals")) {
		ASSERT_EQ(ag_file_write_atomic("/nonexistent-agt/f", "x", 1, 0600, &err), -ENOENT,
			  "no directory");
		ASSERT_EQ(ag_file_write_atomic_at(f.dfd, f.dir, "a/b", "x", 1, 0600, &err), -EINVAL,
			  "a name with a slash");
		ASSERT_OK(mkdir(fdir_path(&f, 3, ".d.tmp"), 0700), "a directory at the temporary");
		ASSERT_LT(ag_file_write_atomic_at(f.dfd, f.dir, "d", "x", 1, 0600, &err), 0,
			  "refused");
		rmdir(f.path[3]);
		f.path[3][0] = '\0';
		ASSERT_ERRNO(lstat(fdir_path(&f, 4, "d"), &st), ENOENT, "no target made");
	}
out:
	fdir_fini(&f);
}

/*
 * The version file of a live upgrade, with symlinks planted at every
 * temporary name it was or is written through: the victim stays as it was.
 */
TEST(fileio_version_file_hostile)
{
	struct ag_instance in = { .name = "fileio" };
	struct ag_err err;
	char text[64];
	struct stat st;
	struct fdir f;

	if (!fdir_init(&f))
		goto out;
	const char *victim = fdir_path(&f, 0, "victim");

	snprintf(in.run_dir, sizeof(in.run_dir), "%s", f.dir);
	put(victim, "untouched");
	ASSERT_OK(symlink(victim, fdir_path(&f, 1, "kern.version.tmp")), "old temporary name");
	ASSERT_OK(symlink(victim, fdir_path(&f, 2, ".kern.version.tmp")), "new temporary name");
	ASSERT_OK(ag_kern_version_write(&in, &err), err.msg);
	text_of(victim, text, sizeof(text));
	ASSERT_STREQ(text, "untouched", "nothing written through a symlink");
	text_of(fdir_path(&f, 3, "kern.version"), text, sizeof(text));
	ASSERT_STREQ(text, AG_VERSION "\n", "the version recorded");
	if (ASSERT_OK(lstat(f.path[3], &st), "lstat"))
		ASSERT_EQ(st.st_mode & 07777, 0644, "mode");
out:
	fdir_fini(&f);
}

TEST(fileio_read)
{
	struct ag_err err;
	char *t = NULL;
	struct fdir f;
	size_t len;
	int fd;

	if (!fdir_init(&f))
		goto out;
	const char *file = fdir_path(&f, 0, "f");
	const char *link = fdir_path(&f, 1, "l");
	const char *fifo = fdir_path(&f, 2, "p");

	put(file, "0123456789");
	if (test__start_subtest("cap")) {
		ASSERT_OK(ag_read_file(file, 10, &t, &len, &err), err.msg);
		ASSERT_EQ(len, 10, "all of it at the cap");
		ASSERT_STREQ(t, "0123456789", "NUL-terminated");
		free(t);
		t = NULL;
		ASSERT_EQ(ag_read_file(file, 9, &t, &len, &err), -EFBIG, "one past the cap");
		ASSERT_NULL(t, "nothing handed out");
		/* procfs says size 0: the cap holds on the bytes, not on fstat. */
		ASSERT_EQ(ag_read_file("/proc/self/status", 16, &t, NULL, &err), -EFBIG,
			  "procfs past the cap");
	}
	if (test__start_subtest("grown_after_fstat")) {
		struct stat st;
		char buf[10];

		fd = ag_file_open(AT_FDCWD, NULL, file, 0, &st, &err);
		if (ASSERT_GE(fd, 0, err.msg)) {
			FILE *fp = fopen(file, "a");

			if (fp) {
				fputs("more", fp);
				fclose(fp);
			}
			ASSERT_EQ(st.st_size, 10, "size as opened");
			ASSERT_EQ(ag_file_read_into(fd, file, buf, (size_t)st.st_size, &len, &err),
				  -EFBIG, "grown file refused");
			lseek(fd, 0, SEEK_SET);
			ASSERT_EQ(ag_file_read_fd(fd, file, 10, &t, &len, &err), -EFBIG,
				  "grown past max");
			close(fd);
		}
	}
	if (test__start_subtest("fifo")) {
		/* Without O_NONBLOCK and the type check this open would block. */
		ASSERT_OK(mkfifo(fifo, 0600), "mkfifo");
		ASSERT_EQ(ag_read_file(fifo, 64, &t, NULL, &err), -EINVAL, "a FIFO refused");
		ASSERT_STRHAS(err.msg, "not a regular file", "says why");
		ASSERT_EQ(ag_read_file(f.dir, 64, &t, NULL, &err), -EINVAL, "a directory");
	}
	if (test__start_subtest("symlink")) {
		ASSERT_OK(symlink(file, link), "symlink");
		ASSERT_EQ(ag_file_read_at(f.dfd, f.dir, "l", AG_FILE_NOFOLLOW, 64, &t, NULL, &err),
			  -ELOOP, "refused with NOFOLLOW");
		ASSERT_OK(ag_file_read_at(f.dfd, f.dir, "l", 0, 64, &t, NULL, &err), "followed");
		free(t);
		t = NULL;
	}
	if (test__start_subtest("empty")) {
		put(file, "");
		ASSERT_OK(ag_read_file(file, 0, &t, &len, &err), err.msg);
		ASSERT_EQ(len, 0, "empty");
		ASSERT_STREQ(t, "", "an empty string");
		free(t);
		t = NULL;
	}
out:
	fdir_fini(&f);
}

TEST(buf_grow)
{
	struct ag_buf b = { 0 };
	uint64_t *v = NULL;
	size_t cap = 0;

	ASSERT_OK(ag_grow(&v, &cap, 3, sizeof(*v), 2, 0), "grow");
	ASSERT_EQ(cap, 4, "doubled from first");
	ASSERT_EQ(ag_grow(&v, &cap, SIZE_MAX / sizeof(*v) + 1, sizeof(*v), 2, 0), -E2BIG,
		  "bytes would overflow");
	ASSERT_EQ(ag_grow(&v, &cap, 11, sizeof(*v), 2, 10), -E2BIG, "beyond the limit");
	ASSERT_EQ(cap, 4, "unchanged on failure");
	ASSERT_OK(ag_grow(&v, &cap, 9, sizeof(*v), 2, 10), "up to the limit");
	ASSERT_EQ(cap, 10, "clamped to the limit, not doubled past it");
	free(v);

	ASSERT_OK(ag_buf_put(&b, "", 0, 0), "empty put");
	ASSERT_STREQ(b.p, "", "an empty string");
	ASSERT_OK(ag_buf_put(&b, "abc", 3, 8), "put");
	ASSERT_OK(ag_buf_put(&b, "defg", 4, 8), "put to the limit with its NUL");
	ASSERT_STREQ(b.p, "abcdefg", "appended");
	ASSERT_EQ(ag_buf_put(&b, "h", 1, 8), -E2BIG, "NUL would pass the limit");
	ASSERT_EQ(ag_buf_reserve(&b, SIZE_MAX, 0), -E2BIG, "len + more wraps");
	ASSERT_EQ(ag_buf_reserve(&b, SIZE_MAX - b.len, 0), -E2BIG, "the NUL wraps");
	ASSERT_EQ(b.len, 7, "unchanged");
	ag_buf_free(&b);
	ASSERT_NULL(b.p, "freed");
}

/* ag_strcpy_cut writes what snprintf("%s") would: cut to cap - 1 bytes, always terminated. */
TEST(strcpy_cut)
{
	static const char *const srcs[] = { "", "a", "abc", "abcd", "abcdefgh" };
	char got[8], want[8];

	for (size_t i = 0; i < AG_ARRAY_SIZE(srcs); i++)
		for (size_t cap = 1; cap <= 5; cap++) {
			memset(got, 'x', sizeof(got));
			memset(want, 'x', sizeof(want));
			ag_strcpy_cut(got, cap, srcs[i]);
			snprintf(want, cap, "%s", srcs[i]);
			ASSERT_MEMEQ(got, want, sizeof(got), srcs[i]);
		}
}

/* Spares are reused newest first, never more than AG_SPARES_MAX are kept, and a drain frees all. */
TEST(spares_bounded)
{
	struct ag_spares sp = { .size = 32 * 1024 };
	void *b[AG_SPARES_MAX + 2], *again;

	for (int i = 0; i < AG_SPARES_MAX + 2; i++)
		if (!ASSERT_TRUE((b[i] = ag_spares_get(&sp)) != NULL, "a buffer"))
			return;
	ASSERT_EQ(sp.nr, 0, "nothing kept yet");
	memset(b[0], 0xa5, sp.size); /* the whole size is usable */
	for (int i = 0; i < AG_SPARES_MAX + 2; i++)
		ag_spares_put(&sp, b[i]); /* the two beyond the bound are freed */
	ASSERT_EQ(sp.nr, AG_SPARES_MAX, "bounded");
	ag_spares_put(&sp, NULL);
	ASSERT_EQ(sp.nr, AG_SPARES_MAX, "NULL is not kept");
	again = ag_spares_get(&sp);
	ASSERT_TRUE(again == b[AG_SPARES_MAX - 1], "the newest kept comes back first");
	ASSERT_EQ(sp.nr, AG_SPARES_MAX - 1, "taken");
	ag_spares_put(&sp, again);
	ag_spares_drain(&sp);
	ASSERT_EQ(sp.nr, 0, "drained");
	again = ag_spares_get(&sp);
	ASSERT_TRUE(again != NULL, "a fresh buffer after the drain");
	ag_spares_put(&sp, again);
	ag_spares_drain(&sp);
}

TEST(lru_order)
{
	struct ag_lru_link link[3];
	struct ag_lru l;
	bool reused;

	ag_lru_init(&l, link, 3);
	ASSERT_EQ(ag_lru_take(&l, &reused), 0, "fresh 0");
	ASSERT_FALSE(reused, "fresh");
	ASSERT_EQ(ag_lru_take(&l, &reused), 1, "fresh 1");
	ASSERT_EQ(ag_lru_take(&l, &reused), 2, "fresh 2");
	ASSERT_FALSE(reused, "still fresh");
	ag_lru_touch(&l, 0); /* order, oldest first: 1 2 0 */
	ASSERT_EQ(ag_lru_take(&l, &reused), 1, "least recent reused");
	ASSERT_TRUE(reused, "reused");
	ag_lru_touch(&l, 0);				  /* 2 1 0 */
	ag_lru_touch(&l, 0);				  /* the newest touched again: no change */
	ASSERT_EQ(ag_lru_take(&l, &reused), 2, "then 2"); /* 1 0 2 */
	ag_lru_touch(&l, 1);				  /* 0 2 1 */
	ASSERT_EQ(ag_lru_take(&l, &reused), 0, "then 0");
	ASSERT_EQ(ag_lru_take(&l, &reused), 2, "then 2 again");
	ASSERT_EQ(ag_lru_take(&l, &reused), 1, "then 1");
	ASSERT_TRUE(reused, "all reused");

	ag_lru_init(&l, link, 1);
	ASSERT_EQ(ag_lru_take(&l, &reused), 0, "one slot");
	ASSERT_EQ(ag_lru_take(&l, &reused), 0, "the same slot");
	ASSERT_TRUE(reused, "reused");
}
