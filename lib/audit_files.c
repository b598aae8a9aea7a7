// SPDX-License-Identifier: GPL-2.0
/* Audit files: bounded line reading and the rotated series base, base.1, ... */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "buf.h"

#define READ_CHUNK (64 * 1024)

struct ag_audit_reader {
	int fd;
	bool eof;
	char *buf;
	size_t cap, start, end;
	uint64_t off; /* file offset of buf[start] */
	char *path;
};

int ag_audit_reader_open(const char *path, struct ag_audit_reader **out, struct ag_err *err)
{
	struct ag_audit_reader *r = calloc(1, sizeof(*r));

	if (!r)
		return ag_errf(err, -ENOMEM, "%s: out of memory", path);
	r->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0) {
		int e = errno;

		free(r);
		return ag_errf(err, -e, "%s: cannot open: %s", path, strerror(e));
	}
	r->cap = READ_CHUNK;
	r->buf = malloc(r->cap);
	r->path = strdup(path);
	if (!r->buf || !r->path) {
		ag_audit_reader_close(r);
		return ag_errf(err, -ENOMEM, "%s: out of memory", path);
	}
	*out = r;
	return 0;
}

void ag_audit_reader_close(struct ag_audit_reader *r)
{
	if (!r)
		return;
	if (r->fd >= 0)
		close(r->fd);
	free(r->buf);
	free(r->path);
	free(r);
}

int ag_audit_reader_seek(struct ag_audit_reader *r, uint64_t off, struct ag_err *err)
{
	if (lseek(r->fd, (off_t)off, SEEK_SET) < 0)
		return ag_errf(err, -errno, "%s: seek: %s", r->path, strerror(errno));
	r->start = r->end = 0;
	r->off = off;
	r->eof = false;
	return 0;
}

uint64_t ag_audit_reader_offset(const struct ag_audit_reader *r)
{
	return r->off;
}

/* Makes room for at least READ_CHUNK more bytes, never beyond one max line. */
static int reader_fill(struct ag_audit_reader *r, struct ag_err *err)
{
	ssize_t n;

	if (r->start) {
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->end -= r->start;
		r->start = 0;
	}
	if (r->cap - r->end < READ_CHUNK) {
		size_t cap = r->cap * 2;
		char *b;

		if (cap > AG_AUDIT_MAX_LINE + 2 * READ_CHUNK)
			cap = AG_AUDIT_MAX_LINE + 2 * READ_CHUNK;
		b = realloc(r->buf, cap);
		if (!b)
			return ag_errf(err, -ENOMEM, "%s: out of memory", r->path);
		r->buf = b;
		r->cap = cap;
	}
	do
		n = read(r->fd, r->buf + r->end, r->cap - r->end);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return ag_errf(err, -errno, "%s: read: %s", r->path, strerror(errno));
	if (!n)
		r->eof = true;
	r->end += (size_t)n;
	return 0;
}

int ag_audit_reader_next(struct ag_audit_reader *r, const char **line, size_t *len, bool *torn,
			 struct ag_err *err)
{
	size_t scanned = 0;
	int ret;

	for (;;) {
		char *nl = memchr(r->buf + r->start + scanned, '\n', r->end - r->start - scanned);
		size_t avail = r->end - r->start;

		if (nl || (r->eof && avail)) {
			*line = r->buf + r->start;
			*len = nl ? (size_t)(nl - *line) : avail;
			*torn = !nl;
			if (*len > AG_AUDIT_MAX_LINE)
				break;
			r->start += *len + !!nl;
			r->off += *len + !!nl;
			return 1;
		}
		if (r->eof)
			return 0;
		if (avail > AG_AUDIT_MAX_LINE)
			break;
		scanned = avail;
		ret = reader_fill(r, err);
		if (ret)
			return ret;
	}
	return ag_errf(err, -E2BIG, "%s: line at offset %llu is longer than %u bytes", r->path,
		       (unsigned long long)r->off, AG_AUDIT_MAX_LINE);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

void ag_audit_series_free(char **paths, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
}

/* Collects the N of every "<name>.<N>" in dir, N > 0 without leading zeros. */
static int suffixes(const char *dir, const char *name, uint64_t **out, size_t *n,
		    struct ag_err *err)
{
	size_t nlen = strlen(name), cap = 0;
	uint64_t *v = NULL;
	struct dirent *de;
	DIR *d = opendir(dir);

	*n = 0;
	if (!d)
		return ag_errf(err, -errno, "%s: cannot list the directory: %s", dir,
			       strerror(errno));
	while ((de = readdir(d))) {
		const char *s = de->d_name + nlen + 1;
		char *end;
		unsigned long long x;

		if (strncmp(de->d_name, name, nlen) || de->d_name[nlen] != '.' || *s < '1' ||
		    *s > '9')
			continue;
		errno = 0;
		x = strtoull(s, &end, 10);
		if (*end || errno)
			continue;
		if (ag_grow(&v, &cap, *n + 1, sizeof(*v), 16, 0)) {
			free(v);
			closedir(d);
			return ag_errf(err, -ENOMEM, "%s: out of memory", dir);
		}
		v[(*n)++] = x;
	}
	closedir(d);
	if (*n)
		qsort(v, *n, sizeof(*v), cmp_u64);
	*out = v;
	return 0;
}

int ag_audit_series(const char *base, char ***paths, size_t *n, struct ag_err *err)
{
	char *copy = strdup(base), *slash, **p = NULL;
	const char *dir, *name;
	uint64_t *v = NULL;
	size_t nv = 0, k = 0;
	int ret;

	if (!copy)
		return ag_errf(err, -ENOMEM, "%s: out of memory", base);
	slash = strrchr(copy, '/');
	if (slash) {
		*slash = '\0';
		dir = slash == copy ? "/" : copy;
		name = slash + 1;
	} else {
		dir = ".";
		name = copy;
	}
	ret = suffixes(dir, name, &v, &nv, err);
	if (ret)
		goto out;
	p = calloc(nv + 1, sizeof(*p));
	if (!p || asprintf(&p[k++], "%s", base) < 0)
		goto nomem;
	for (size_t i = 0; i < nv; i++)
		if (asprintf(&p[k++], "%s.%llu", base, (unsigned long long)v[i]) < 0)
			goto nomem;
	*paths = p;
	*n = k;
	goto out;
nomem:
	if (p && k)
		p[--k] = NULL;
	ag_audit_series_free(p, k);
	ret = ag_errf(err, -ENOMEM, "%s: out of memory", base);
out:
	free(v);
	free(copy);
	return ret;
}
