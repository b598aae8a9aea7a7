// SPDX-License-Identifier: GPL-2.0
/*
 * Following an audit log as it grows: the series base, base.1, ... read
 * forward, whole lines only (lib/audit_ship.c reads what it ships here).
 * The writer appends whole batches to the last file and rotates after a
 * write, so at the end of a file whose successor exists one more read finds
 * whatever remained; a line without its newline is a write in progress and
 * waits.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"

#define CHUNK (64 * 1024)

int ag_audit_tail_init(struct ag_audit_tail *r, const char *base)
{
	*r = (struct ag_audit_tail){ .base = base, .fd = -1, .cap = AG_AUDIT_MAX_LINE + CHUNK };
	r->buf = malloc(r->cap);
	return r->buf ? 0 : -ENOMEM;
}

void ag_audit_tail_fini(struct ag_audit_tail *r)
{
	if (r->fd >= 0)
		close(r->fd);
	free(r->buf);
	r->fd = -1;
	r->buf = NULL;
}

static int open_seg(struct ag_audit_tail *r, uint64_t seg, struct ag_err *err)
{
	char path[PATH_MAX];
	int fd;

	if (seg)
		snprintf(path, sizeof(path), "%s.%" PRIu64, r->base, seg);
	else
		snprintf(path, sizeof(path), "%s", r->base);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ag_errf(err, -errno, "%s: cannot open: %s", path, strerror(errno));
	if (r->fd >= 0)
		close(r->fd);
	r->fd = fd;
	r->seg = seg;
	r->off = 0;
	r->start = r->end = 0;
	return 0;
}

/* Puts the reader at seg:off, the start of record seq. */
int ag_audit_tail_seek(struct ag_audit_tail *r, uint64_t seg, uint64_t off, uint64_t seq,
		       struct ag_err *err)
{
	int ret = open_seg(r, seg, err);

	if (ret)
		return ret;
	r->off = off;
	r->seq = seq;
	if (lseek(r->fd, (off_t)off, SEEK_SET) < 0)
		return ag_errf(err, -errno, "%s: seek: %s", r->base, strerror(errno));
	return 0;
}

static bool seg_exists(const struct ag_audit_tail *r, uint64_t seg)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s.%" PRIu64, r->base, seg);
	return !access(path, F_OK);
}

static int fill(struct ag_audit_tail *r, struct ag_err *err)
{
	ssize_t n;

	if (r->start) {
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->end -= r->start;
		r->start = 0;
	}
	if (r->end == r->cap)
		return ag_errf(err, -E2BIG, "%s: a line longer than %u bytes", r->base,
			       AG_AUDIT_MAX_LINE);
	do
		n = read(r->fd, r->buf + r->end, r->cap - r->end);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return ag_errf(err, -errno, "%s: read: %s", r->base, strerror(errno));
	r->end += (size_t)n;
	return (int)(n > 0);
}

/*
 * The next whole line: 1 (*line, *len without '\n'), 0 none yet, <0 error.
 * *seg and *off say where it starts.
 */
int ag_audit_tail_next(struct ag_audit_tail *r, const char **line, size_t *len, uint64_t *seg,
		       uint64_t *off, struct ag_err *err)
{
	for (int tries = 0; tries < 4; tries++) {
		char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
		int ret;

		if (nl) {
			*line = r->buf + r->start;
			*len = (size_t)(nl - *line);
			*seg = r->seg;
			*off = r->off;
			r->start += *len + 1;
			r->off += *len + 1;
			r->seq++;
			return 1;
		}
		ret = fill(r, err);
		if (ret < 0)
			return ret;
		if (ret)
			continue;
		/* At the end: the next file, once this one has nothing more. */
		if (!seg_exists(r, r->seg + 1))
			return 0;
		if ((ret = fill(r, err)))
			continue;
		if (r->end != r->start)
			return ag_errf(err, -EBADMSG, "%s.%" PRIu64 " ends in a partial line",
				       r->base, r->seg);
		if ((ret = open_seg(r, r->seg + 1, err)))
			return ret;
	}
	return 0;
}
