// SPDX-License-Identifier: GPL-2.0
/*
 * Audit writer, the writing half (audit_writer.c is the queue and the
 * records' bytes): whoever holds busy pwrites a serialised batch, an
 * appender that found no write in progress (aw_write_inline) or the
 * committer thread, which alone syncs, rotates and retries.  The state
 * diagram and its ordering hazards are at the top of audit_writer.c.
 */
#include "audit_writer_int.h"

/*
 * The current file reached rotate_bytes: the committer syncs it and starts
 * the next, so a file exceeds the limit by at most one batch.  Read only
 * while nobody is busy.
 */
bool aw_rotate_due_locked(const struct ag_audit_writer *w)
{
	return w->rotate_pending ||
	       (w->cfg.rotate_bytes && w->file_off + w->buf_len >= w->cfg.rotate_bytes);
}

/* ---- Files (the holder of busy) ---------------------------------------------- */

static int sync_dir(const char *path, struct ag_err *err)
{
	char *copy = strdup(path);
	int fd, ret = 0;

	if (!copy)
		return ag_errf(err, -ENOMEM, "%s: out of memory", path);
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd))
		ret = ag_errf(err, -errno, "%s: cannot sync its directory: %s", path,
			      strerror(errno));
	if (fd >= 0)
		close(fd);
	free(copy);
	return ret;
}

int aw_open_segment(struct ag_audit_writer *w, const char *path, bool create, struct ag_err *err)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0), 0640);
	char *copy;

	if (fd < 0)
		return ag_errf(err, -errno, "%s: cannot open the audit log: %s", path,
			       strerror(errno));
	if (create && sync_dir(path, err)) {
		close(fd);
		unlink(path);
		return -EIO;
	}
	copy = strdup(path);
	if (!copy) {
		close(fd);
		return ag_errf(err, -ENOMEM, "%s: out of memory", path);
	}
	if (w->fd >= 0)
		close(w->fd);
	free(w->cur_path);
	w->fd = fd;
	w->cur_path = copy;
	return 0;
}

static int rotate(struct ag_audit_writer *w, struct ag_err *err)
{
	char *path;
	int ret;

	if (asprintf(&path, "%s.%" PRIu64, w->base, w->segment + 1) < 0)
		return ag_errf(err, -ENOMEM, "%s: out of memory", w->base);
	ret = aw_open_segment(w, path, true, err);
	free(path);
	if (ret)
		return ret;
	w->segment++;
	w->file_off = 0;
	w->rotate_pending = false;
	return 0;
}

/* The first len bytes of w->buf, whole records, to the syslog mirror. */
static void mirror(struct ag_audit_writer *w, size_t len)
{
	const char *p = w->buf, *end = w->buf + len;

	while (w->syslog && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		ag_audit_syslog_send(w->syslog, p, (size_t)(nl - p));
		p = nl + 1;
	}
}

/*
 * fdatasync with busy released, so appenders write on meanwhile: under
 * strict the next calls' records are written, and their calls forwarded,
 * while this group syncs.  Returns with busy held again (or taken over
 * from an appender whose write failed: the caller's check of buf_written
 * sees it).
 */
static int sync_aside(struct ag_audit_writer *w, struct ag_err *err)
{
	int fd = w->fd, ret;

	pthread_mutex_lock(&w->mu);
	w->busy = false;
	pthread_mutex_unlock(&w->mu);
	ret = fdatasync(fd) ? -errno : 0;
	pthread_mutex_lock(&w->mu);
	while (w->busy && !w->handoff) {
		w->idle_busy = true;
		pthread_cond_wait(&w->wake, &w->mu);
	}
	w->busy = true;
	pthread_mutex_unlock(&w->mu);
	if (ret)
		return ag_errf(err, ret, "%s: fdatasync: %s", w->cur_path, strerror(-ret));
	return 0;
}

/*
 * The first synced bytes of w->buf are in the file for good: if they hold
 * the last checkpoint, the next open may start there (audit_resume.c).
 * Only noted here; the committer saves it (save_checkpoint), so an
 * appender writing inline never waits for that file.
 */
static void note_synced(struct ag_audit_writer *w, size_t synced)
{
	if (!w->cp_due)
		return;
	if (w->cp_end > synced) {
		w->cp_end -= synced;
		return;
	}
	w->cp_due = false;
	w->cp_ready = true;
	w->cp.segment = w->segment;
	w->cp.offset = w->file_off + w->cp_end;
}

/* A failed save costs the next open a longer read, nothing else. */
static void save_checkpoint(struct ag_audit_writer *w)
{
	struct ag_err err;

	if (!w->cp_ready)
		return;
	w->cp_ready = false;
	if (ag_audit_resume_save(&w->cp, w->base, &err))
		aw_warn(w, "%s", err.msg);
}

/*
 * One attempt: writes what of w->buf the file lacks and, if settle, makes
 * it durable (but for AG_AUDIT_NONE, which never syncs) and drops it from
 * w->buf, which keeps what appenders wrote during the sync.
 */
static int commit_file(struct ag_audit_writer *w, bool settle, struct ag_err *err)
{
	size_t synced;
	uint64_t seq;
	int ret;

	if (w->rotate_pending && !w->buf_written) {
		ret = rotate(w, err);
		if (ret)
			return ret;
	}
	while (w->buf_written < w->buf_len) {
		ssize_t n = pwrite(w->fd, w->buf + w->buf_written, w->buf_len - w->buf_written,
				   (off_t)(w->file_off + w->buf_written));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = ag_errf(err, n ? -errno : -EIO, "%s: write: %s", w->cur_path,
				      n ? strerror(errno) : "no progress");
			goto undo;
		}
		w->buf_written += (size_t)n;
	}
	if (!settle)
		return 0;
	synced = w->buf_len;
	seq = w->buf_seq;
	if (w->cfg.durability != AG_AUDIT_NONE && (ret = sync_aside(w, err)))
		goto undo;
	/* Fail closed: an appender's failed write cut the file during the sync. */
	if (w->buf_written < synced) {
		ret =
		    ag_errf(err, -EIO, "%s: a write failed while the log was synced", w->cur_path);
		goto undo;
	}
	mirror(w, synced);
	note_synced(w, synced);
	memmove(w->buf, w->buf + synced, w->buf_len - synced);
	w->buf_len -= synced;
	w->buf_written -= synced;
	w->file_off += synced;
	w->synced_seq = seq;
	/* What was written during the sync waits from now. */
	if (w->buf_len)
		clock_gettime(CLOCK_MONOTONIC, &w->buf_since);
	if (w->cfg.rotate_bytes && w->file_off >= w->cfg.rotate_bytes)
		w->rotate_pending = true;
	return 0;
undo:
	/*
	 * Drop everything past the durable end so the file ends on a whole
	 * record.  After a failed fdatasync the page cache cannot be trusted,
	 * so the retry rewrites the bytes instead of syncing again.
	 */
	if (ftruncate(w->fd, (off_t)w->file_off))
		aw_warn(w, "%s: cannot truncate back to %" PRIu64 ": %s", w->cur_path, w->file_off,
			strerror(errno));
	w->buf_written = 0;
	return ret;
}

/* The committer made progress: written (and, if settled, durable) advance. */
static void publish(struct ag_audit_writer *w, bool settled)
{
	bool recovered;

	pthread_mutex_lock(&w->mu);
	w->written = w->buf_seq;
	if (settled)
		w->durable = w->synced_seq;
	recovered = w->failed;
	w->failed = false;
	/* Under sync nothing waits for written alone: spare the wake-up. */
	if (settled || recovered || w->cfg.durability != AG_AUDIT_SYNC)
		aw_notify(w);
	pthread_mutex_unlock(&w->mu);
	if (recovered)
		aw_warn(w, "audit log %s recovered at seq %" PRIu64, w->cur_path, w->buf_seq);
}

/*
 * Writes a batch of n records (0: none, only settling; in_buf: already
 * serialised into w->buf) and settles w->buf if asked, retrying while
 * failed; false if it gave up on stop, with w->unwritten set.
 */
static bool commit_batch(struct ag_audit_writer *w, size_t n, bool in_buf, bool settle)
{
	struct ag_err err;
	struct timespec until;
	bool ok, stopping, first;

	in_buf = in_buf || !n;
	ok = (in_buf = in_buf || !aw_prepare(w, n, &err)) && !commit_file(w, settle, &err);
	while (!ok) {
		pthread_mutex_lock(&w->mu);
		first = !w->failed;
		if (first) {
			w->failed = true;
			snprintf(w->failmsg, sizeof(w->failmsg), "%s", err.msg);
			aw_notify(w);
		}
		pthread_mutex_unlock(&w->mu);
		/* aw_warn() runs caller code: never under the writer's lock. */
		if (first)
			aw_warn(w, "audit log failed, refusing records: %s", err.msg);
		pthread_mutex_lock(&w->mu);
		clock_gettime(CLOCK_MONOTONIC, &until);
		ag_audit_ts_add_us(&until, (uint64_t)w->cfg.retry_ms * 1000);
		while (!w->stop && pthread_cond_timedwait(&w->wake, &w->mu, &until) != ETIMEDOUT)
			;
		stopping = w->stop;
		pthread_mutex_unlock(&w->mu);
		/*
		 * A batch that failed to serialise (no memory) is retried
		 * whole; after a failure only a sync says the bytes are there.
		 */
		settle = true;
		ok = (in_buf = in_buf || !aw_prepare(w, n, &err)) && !commit_file(w, true, &err);
		if (!ok && stopping) {
			w->unwritten = (in_buf ? 0 : n) + w->buf_seq - w->durable;
			return false;
		}
	}
	publish(w, settle);
	save_checkpoint(w);
	return true;
}

/*
 * Whether w->buf is to be made durable now.  Under AG_AUDIT_WRITTEN: once
 * its first record waited sync_ms, a caller waits (ag_audit_wait), it
 * holds AW_SETTLE_BYTES, the file is to rotate, or the log closes;
 * otherwise with every write.
 */
static bool settle_due_locked(const struct ag_audit_writer *w, const struct timespec *now,
			      struct timespec *at)
{
	*at = w->buf_since;
	ag_audit_ts_add_us(at, (uint64_t)w->cfg.sync_ms * 1000);
	if (w->cfg.durability != AG_AUDIT_WRITTEN || w->stop || w->sync_wanted ||
	    aw_rotate_due_locked(w))
		return true;
	return w->buf_len && (w->buf_len >= AW_SETTLE_BYTES || ag_audit_ts_reached(now, at));
}

/* Moves what waits (up to write_max) from the queue to w->batch; how many. */
size_t aw_take_locked(struct ag_audit_writer *w)
{
	size_t n = w->count < w->cfg.write_max ? w->count : w->cfg.write_max;

	for (size_t i = 0; i < n; i++)
		w->batch[i] = w->ring[(w->head + i) % w->ring_cap];
	w->head = (w->head + n) % w->ring_cap;
	w->count -= n;
	return n;
}

/*
 * An appender that found the committer idle writes the queue itself, so
 * its record is written (safe from a kill -9) when ag_audit_append
 * returns, with no thread switch on a call's path.  Syncing stays the
 * committer's, as does any retry: a failure hands the batch over.  wake:
 * whether others' records among the n may have calls held for them
 * (ag_audit_event_fd); a flush's caller looks at its held calls itself.
 */
void aw_write_inline(struct ag_audit_writer *w, size_t n, bool wake)
{
	bool was_empty = !w->buf_len, none = w->cfg.durability == AG_AUDIT_NONE, in_buf, ok;
	struct ag_err err;

	ok = (in_buf = !aw_prepare(w, n, &err)) && !commit_file(w, none, &err);
	pthread_mutex_lock(&w->mu);
	if (!ok) {
		w->handoff = n;
		w->handoff_in_buf = in_buf;
		pthread_cond_signal(&w->wake);
		pthread_mutex_unlock(&w->mu);
		return;
	}
	w->written = w->buf_seq;
	if (none)
		w->durable = w->synced_seq;
	w->busy = false;
	/* Wake the committer only for what is new to it: a sync due, a deadline. */
	if (w->idle_busy || w->count || w->stop || w->sync_wanted || was_empty ||
	    aw_rotate_due_locked(w) || (!none && w->cfg.durability != AG_AUDIT_WRITTEN))
		pthread_cond_signal(&w->wake);
	/* Others' records came along: their held calls may go on. */
	if (wake && n > 1)
		aw_notify(w);
	pthread_mutex_unlock(&w->mu);
}

void *aw_committer(void *arg)
{
	struct ag_audit_writer *w = arg;
	struct timespec now, wall, deadline, cp_at, sync_at;
	bool settle, has_deadline;
	size_t n;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		cp_at = w->first_unsigned;
		ag_audit_ts_add_us(&cp_at, (uint64_t)w->cfg.checkpoint_ms * 1000);
		if (w->since_cp && (ag_audit_ts_reached(&now, &cp_at) || w->stop)) {
			clock_gettime(CLOCK_REALTIME, &wall);
			aw_push_checkpoint_locked(w, &wall, NULL);
		}
		if (w->handoff) {
			/* An appender's write failed: its batch is ours (busy stays). */
			bool in_buf = w->handoff_in_buf;

			n = w->handoff;
			w->handoff = 0;
			pthread_mutex_unlock(&w->mu);
			if (!commit_batch(w, n, in_buf, true))
				goto gave_up;
			pthread_mutex_lock(&w->mu);
			w->busy = false;
			continue;
		}
		/* An appender writing (write_inline) signals what it leaves to do. */
		settle = !w->busy && settle_due_locked(w, &now, &sync_at);
		if (!w->busy && (w->count || (settle && w->buf_len))) {
			/*
			 * An idle committer writes at once, taking
			 * everything that waits (up to write_max): records
			 * that queued during the previous write and
			 * fdatasync form the next group, so a backlog costs
			 * one more sync, not one per record.
			 */
			n = aw_take_locked(w);
			/* A waiter's record is in this batch or written before. */
			if (settle && !w->count)
				w->sync_wanted = false;
			w->busy = true;
			pthread_mutex_unlock(&w->mu);
			if (!commit_batch(w, n, false, settle))
				goto gave_up;
			pthread_mutex_lock(&w->mu);
			w->busy = false;
			continue;
		}
		if (w->stop && !w->busy)
			break;
		/* What busy hid (an unsynced tail, a stop) is looked at on release. */
		w->idle_busy = w->busy;
		has_deadline = w->since_cp || (!w->busy && w->buf_len);
		deadline = w->since_cp ? cp_at : sync_at;
		if (!w->busy && w->buf_len && w->since_cp &&
		    ag_audit_ts_reached(&deadline, &sync_at))
			deadline = sync_at;
		if (has_deadline)
			pthread_cond_timedwait(&w->wake, &w->mu, &deadline);
		else
			pthread_cond_wait(&w->wake, &w->mu);
	}
	aw_notify(w);
	pthread_mutex_unlock(&w->mu);
	return NULL;
gave_up:
	/* Closing while failed: close() reports what was lost. */
	for (size_t i = 0; i < n; i++)
		free(w->batch[i].body);
	pthread_mutex_lock(&w->mu);
	aw_notify(w);
	pthread_mutex_unlock(&w->mu);
	return NULL;
}
