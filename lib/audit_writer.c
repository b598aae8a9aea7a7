// SPDX-License-Identifier: GPL-2.0
/*
 * Audit writer: appenders serialise their event body outside the lock and
 * queue it with a seq and a timestamp; one committer thread splices in the
 * reserved members, extends the hash chain and the Merkle tree, signs
 * checkpoints and makes each batch durable with one pwrite + fdatasync.
 *
 * Fail closed: a failed write or sync truncates the file back to the last
 * durable offset, refuses new appends and retries the same bytes until they
 * land, so the file only ever holds whole records and seq has no gap.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "audit.h"
#include "buf.h"

#define CP_SLACK 64 /* queue room kept for checkpoints beyond queue_max */
#define RESERVED 4

/* The members the writer adds, in their sorted order. */
static const char *const reserved[RESERVED] = { "kind", "prev", "seq", "ts" };

struct entry {
	const char *kind; /* static, from ag_audit_kind_name() */
	char *body;	  /* the caller's fields in canonical form; NULL: checkpoint */
	size_t len;
	uint32_t at[RESERVED]; /* where each reserved member goes in body */
	uint64_t seq;
	struct timespec ts;
};

struct ag_audit_writer {
	struct ag_audit_config cfg;
	char *base, *origin, *syslog_path;
	struct ag_audit_key *key;
	struct ag_audit_syslog *syslog;
	pthread_t thread;
	int efd;

	pthread_mutex_t mu;
	pthread_cond_t wake;	   /* committer: work or stop */
	pthread_cond_t durable_cv; /* waiters */
	/* Under mu. */
	struct entry *ring;
	size_t ring_cap, head, count;
	uint64_t next_seq, durable, since_cp;
	struct timespec first_queued, first_unsigned; /* CLOCK_MONOTONIC */
	struct timespec first_unsigned_ts;	      /* its ts, CLOCK_REALTIME */
	bool failed, stop;
	char failmsg[sizeof(((struct ag_err *)0)->msg)];

	/* Committer only. */
	int fd;
	char *cur_path;
	uint64_t segment, file_off;
	bool rotate_pending;
	uint64_t unwritten; /* records given up on at close while failed */
	uint8_t prev[AG_AUDIT_HASH_LEN], saved_prev[AG_AUDIT_HASH_LEN];
	struct ag_audit_tree tree, saved_tree;
	struct entry *batch;
	char *buf;
	size_t buf_len, buf_cap;
};

static void warn(const struct ag_audit_writer *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void warn(const struct ag_audit_writer *w, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (w->cfg.warn)
		w->cfg.warn(w->cfg.warn_ctx, msg);
	else
		fprintf(stderr, "agentgate audit: warning: %s\n", msg);
}

void ag_audit_config_init(struct ag_audit_config *c)
{
	memset(c, 0, sizeof(*c));
	c->origin = AG_AUDIT_DEFAULT_ORIGIN;
	c->durability = AG_AUDIT_SYNC;
	c->batch_max = 64;
	c->batch_us = 1000;
	c->write_max = 4096;
	c->checkpoint_records = 4096;
	c->checkpoint_ms = 1000;
	c->queue_max = 65536;
	c->retry_ms = 100;
}

static void notify(struct ag_audit_writer *w)
{
	uint64_t one = 1;

	pthread_cond_broadcast(&w->durable_cv);
	/*
	 * Can only fail with EAGAIN on a saturated counter, which is still
	 * readable: the wake-up is delivered either way.
	 */
	(void)!write(w->efd, &one, sizeof(one));
}

/* ---- Queue (under mu) ---------------------------------------------------- */

static void push_locked(struct ag_audit_writer *w, const char *kind,
			const struct ag_audit_text *body, const uint32_t *at,
			const struct timespec *ts, uint64_t *seq)
{
	struct entry *e = &w->ring[(w->head + w->count) % w->ring_cap];

	e->kind = kind;
	e->body = body ? body->text : NULL;
	e->len = body ? body->len : 0;
	if (at)
		memcpy(e->at, at, sizeof(e->at));
	e->seq = w->next_seq++;
	e->ts = *ts;
	if (!w->count) {
		clock_gettime(CLOCK_MONOTONIC, &w->first_queued);
		pthread_cond_signal(&w->wake);
	} else if (w->count + 1 == w->cfg.batch_max) {
		pthread_cond_signal(&w->wake);
	}
	w->count++;
	if (seq)
		*seq = e->seq;
}

/* ts is CLOCK_REALTIME, as for the records. */
static bool push_checkpoint_locked(struct ag_audit_writer *w, const struct timespec *ts,
				   uint64_t *seq)
{
	if (!w->since_cp || w->count >= w->ring_cap)
		return false;
	push_locked(w, "checkpoint", NULL, NULL, ts, seq);
	w->since_cp = 0;
	return true;
}

/*
 * Whether a record stamped ts may join the unsigned tail: the verifier
 * accepts a tail whose timestamps span at most one checkpoint_ms, whatever
 * delayed the committer's own timer (a slow fdatasync, a restart, a clock
 * stepped back).
 */
static bool in_interval_locked(const struct ag_audit_writer *w, const struct timespec *ts)
{
	struct timespec end = w->first_unsigned_ts;

	ag_audit_ts_add_us(&end, (uint64_t)w->cfg.checkpoint_ms * 1000);
	return ag_audit_ts_reached(ts, &w->first_unsigned_ts) && ag_audit_ts_reached(&end, ts);
}

int ag_audit_append(struct ag_audit_writer *w, const char *kind, const json_t *fields,
		    uint64_t *seq, struct ag_err *err)
{
	const char *k = ag_audit_kind_name(kind);
	struct ag_audit_text body;
	uint32_t at[RESERVED];
	int ret = 0;

	if (!k || !strcmp(k, "checkpoint"))
		return ag_errf(err, -EINVAL, "audit record kind \"%s\" is not an event kind",
			       kind ? kind : "(null)");
	if (!json_is_object(fields))
		return ag_errf(err, -EINVAL, "audit %s record: fields must be a JSON object", k);
	for (size_t i = 0; i < RESERVED; i++)
		if (json_object_get(fields, reserved[i]))
			return ag_errf(err, -EINVAL,
				       "audit %s record: field \"%s\" is reserved for the log", k,
				       reserved[i]);
	/* Leave room for the reserved members within the line limit. */
	ret = ag_audit_canon(fields, AG_AUDIT_MAX_LINE - 256, reserved, RESERVED, at, &body);
	if (ret == -E2BIG)
		return ag_errf(err, ret, "audit %s record: over the %u byte limit", k,
			       AG_AUDIT_MAX_LINE - 256);
	if (ret == -EILSEQ || ret == -ELOOP)
		return ag_errf(err, -EINVAL, "audit %s record: %s", k,
			       ret == -EILSEQ ? "a string is not UTF-8"
					      : "nested too deep (or a cycle)");
	if (ret)
		return ag_errf(err, ret, "audit %s record: cannot serialise fields: %s", k,
			       strerror(-ret));
	/* A NUL in a string would make a record the strict verifier refuses. */
	if (body.nul) {
		free(body.text);
		return ag_errf(err, -EINVAL, "audit %s record: a string contains a NUL", k);
	}

	pthread_mutex_lock(&w->mu);
	if (w->failed) {
		ret = ag_errf(err, -EIO, "audit log refuses records: %s", w->failmsg);
	} else if (w->stop) {
		ret = ag_errf(err, -ESHUTDOWN, "audit log %s is closing", w->base);
	} else if (w->count >= w->cfg.queue_max) {
		ret = ag_errf(err, -ENOBUFS, "audit log %s: %zu records wait for the disk", w->base,
			      w->count);
	} else {
		struct timespec now;

		clock_gettime(CLOCK_REALTIME, &now);
		if (w->since_cp && !in_interval_locked(w, &now))
			push_checkpoint_locked(w, &now, NULL);
		if (!w->since_cp++) {
			clock_gettime(CLOCK_MONOTONIC, &w->first_unsigned);
			w->first_unsigned_ts = now;
		}
		push_locked(w, k, &body, at, &now, seq);
		body.text = NULL;
		if (w->since_cp >= w->cfg.checkpoint_records)
			push_checkpoint_locked(w, &now, NULL);
	}
	pthread_mutex_unlock(&w->mu);
	free(body.text);
	return ret;
}

int ag_audit_checkpoint(struct ag_audit_writer *w, uint64_t *seq, struct ag_err *err)
{
	struct timespec now;
	int ret = 0;

	*seq = UINT64_MAX;
	pthread_mutex_lock(&w->mu);
	clock_gettime(CLOCK_REALTIME, &now);
	if (w->failed)
		ret = ag_errf(err, -EIO, "audit log refuses records: %s", w->failmsg);
	else if (w->since_cp && !push_checkpoint_locked(w, &now, seq))
		ret = ag_errf(err, -ENOBUFS, "audit log %s: queue full", w->base);
	pthread_mutex_unlock(&w->mu);
	return ret;
}

int ag_audit_wait(struct ag_audit_writer *w, uint64_t seq, struct ag_err *err)
{
	int ret = 0;

	pthread_mutex_lock(&w->mu);
	if (seq >= w->next_seq) {
		ret =
		    ag_errf(err, -EINVAL, "audit log %s: no record %" PRIu64 " yet", w->base, seq);
		goto out;
	}
	while (w->durable <= seq && !w->failed && !w->stop)
		pthread_cond_wait(&w->durable_cv, &w->mu);
	if (w->durable > seq)
		goto out;
	if (w->failed)
		ret = ag_errf(err, -EIO, "audit record %" PRIu64 " is not durable: %s", seq,
			      w->failmsg);
	else
		ret = ag_errf(err, -ESHUTDOWN,
			      "audit log %s closed before record %" PRIu64 " was durable", w->base,
			      seq);
out:
	pthread_mutex_unlock(&w->mu);
	return ret;
}

uint64_t ag_audit_durable(struct ag_audit_writer *w)
{
	uint64_t d;

	pthread_mutex_lock(&w->mu);
	d = w->durable;
	pthread_mutex_unlock(&w->mu);
	return d;
}

int ag_audit_event_fd(struct ag_audit_writer *w)
{
	return w->efd;
}

bool ag_audit_failed(struct ag_audit_writer *w, struct ag_err *why)
{
	bool failed;

	pthread_mutex_lock(&w->mu);
	failed = w->failed;
	if (failed && why)
		snprintf(why->msg, sizeof(why->msg), "%s", w->failmsg);
	pthread_mutex_unlock(&w->mu);
	return failed;
}

/* ---- Serialisation (committer) ------------------------------------------ */

static int buf_reserve(struct ag_audit_writer *w, size_t more)
{
	if (more > SIZE_MAX / 2 - w->buf_len)
		return -ENOMEM;
	return ag_grow(&w->buf, &w->buf_cap, w->buf_len + more, 1, 65536, 0) ? -ENOMEM : 0;
}

static void buf_put(struct ag_audit_writer *w, const void *p, size_t len)
{
	memcpy(w->buf + w->buf_len, p, len);
	w->buf_len += len;
}

/*
 * "name":value into out (at least 128 bytes), the value quoted unless it is
 * a number; returns the length.  Plain copies: the committer builds four of
 * these per record, and snprintf's format parsing showed up in its profile.
 */
static size_t put_member(char *out, const char *name, const char *val, bool quote)
{
	size_t n = strlen(name), v = strlen(val), o = 0;

	out[o++] = '"';
	memcpy(out + o, name, n);
	o += n;
	out[o++] = '"';
	out[o++] = ':';
	if (quote)
		out[o++] = '"';
	memcpy(out + o, val, v);
	o += v;
	if (quote)
		out[o++] = '"';
	return o;
}

/*
 * Emits the record as jansson would dump it with sorted keys: the body's
 * members with kind, prev, seq and ts spliced in at the places the
 * appender's serialisation noted, so the committer copies and never parses.
 */
static int emit_event(struct ag_audit_writer *w, const struct entry *e, const char *prev,
		      const char *ts)
{
	char member[RESERVED][128], digits[21] = { 0 };
	const char *seq = ag_audit_u64(e->seq, digits + 20);
	const char *vals[RESERVED] = { e->kind, prev, seq, ts };
	/* A comma per member, and the newline serialise() adds. */
	size_t mlen[RESERVED], pos = 0, total = e->len + RESERVED + 1;

	for (int r = 0; r < RESERVED; r++) {
		mlen[r] = put_member(member[r], reserved[r], vals[r], vals[r] != seq);
		total += mlen[r];
	}
	if (buf_reserve(w, total))
		return -ENOMEM;
	for (int r = 0; r < RESERVED; r++) {
		size_t at = e->at[r];
		/* At the closing brace, a member follows whatever came before. */
		bool last = e->body[at] == '}';

		buf_put(w, e->body + pos, at - pos);
		pos = at;
		if (last && (at > 1 || r))
			buf_put(w, ",", 1);
		buf_put(w, member[r], mlen[r]);
		if (!last)
			buf_put(w, ",", 1);
	}
	buf_put(w, e->body + pos, e->len - pos);
	return 0;
}

static int emit_checkpoint(struct ag_audit_writer *w, const struct entry *e, const char *prev,
			   const char *ts, struct ag_err *err)
{
	uint8_t root[AG_AUDIT_HASH_LEN];
	char text[512], b64[4 * ((AG_AUDIT_HASH_LEN + 2) / 3) + 1], *note = NULL, *line = NULL;
	json_t *obj;
	int ret;

	ag_audit_tree_root(&w->tree, root);
	EVP_EncodeBlock((unsigned char *)b64, root, AG_AUDIT_HASH_LEN);
	snprintf(text, sizeof(text), "%s\n%" PRIu64 "\n%s\n", w->origin, w->tree.size, b64);
	ret = ag_audit_note_sign(w->key, w->origin, text, &note, err);
	if (ret)
		return ret;
	obj = json_pack("{s:s, s:s, s:s, s:I, s:s}", "kind", "checkpoint", "note", note, "prev",
			prev, "seq", (json_int_t)e->seq, "ts", ts);
	if (obj)
		line = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(obj);
	free(note);
	if (!line || buf_reserve(w, strlen(line) + 1)) {
		free(line);
		return ag_errf(err, -ENOMEM, "audit checkpoint: out of memory");
	}
	buf_put(w, line, strlen(line));
	free(line);
	return 0;
}

/* Serialises the batch into w->buf, advancing prev and the tree. */
static int serialise(struct ag_audit_writer *w, size_t n, struct ag_err *err)
{
	char prev[AG_AUDIT_HEX_LEN + 1], ts[AG_AUDIT_TS_LEN];
	uint8_t leaf[AG_AUDIT_HASH_LEN];

	w->buf_len = 0;
	for (size_t i = 0; i < n; i++) {
		const struct entry *e = &w->batch[i];
		size_t start = w->buf_len;
		int ret;

		ag_audit_hex(w->prev, prev);
		ag_audit_format_ts(&e->ts, ts);
		if (e->body)
			ret = emit_event(w, e, prev, ts) ? -ENOMEM : 0;
		else
			ret = emit_checkpoint(w, e, prev, ts, err);
		if (ret)
			return ret == -ENOMEM ? ag_errf(err, ret, "audit: out of memory") : ret;
		ag_audit_line_hash(w->buf + start, w->buf_len - start, w->prev);
		ag_audit_leaf_hash(w->buf + start, w->buf_len - start, leaf);
		ag_audit_tree_append(&w->tree, leaf);
		buf_put(w, "\n", 1);
	}
	return 0;
}

/* Serialises a batch, or leaves the chain state as it was. */
static int prepare(struct ag_audit_writer *w, size_t n, struct ag_err *err)
{
	int ret;

	memcpy(w->saved_prev, w->prev, sizeof(w->prev));
	w->saved_tree = w->tree;
	ret = serialise(w, n, err);
	if (ret) {
		memcpy(w->prev, w->saved_prev, sizeof(w->prev));
		w->tree = w->saved_tree;
		w->buf_len = 0;
	}
	return ret;
}

/* ---- Files (committer) --------------------------------------------------- */

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

static int open_segment(struct ag_audit_writer *w, const char *path, bool create,
			struct ag_err *err)
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
	ret = open_segment(w, path, true, err);
	free(path);
	if (ret)
		return ret;
	w->segment++;
	w->file_off = 0;
	w->rotate_pending = false;
	return 0;
}

/* One attempt to make w->buf durable at the end of the current file. */
static int commit(struct ag_audit_writer *w, struct ag_err *err)
{
	size_t done = 0;
	int ret;

	if (w->rotate_pending) {
		ret = rotate(w, err);
		if (ret)
			return ret;
	}
	while (done < w->buf_len) {
		ssize_t n =
		    pwrite(w->fd, w->buf + done, w->buf_len - done, (off_t)(w->file_off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = ag_errf(err, n ? -errno : -EIO, "%s: write: %s", w->cur_path,
				      n ? strerror(errno) : "no progress");
			goto undo;
		}
		done += (size_t)n;
	}
	if (w->cfg.durability != AG_AUDIT_NONE && fdatasync(w->fd)) {
		ret = ag_errf(err, -errno, "%s: fdatasync: %s", w->cur_path, strerror(errno));
		goto undo;
	}
	w->file_off += w->buf_len;
	if (w->cfg.rotate_bytes && w->file_off >= w->cfg.rotate_bytes)
		w->rotate_pending = true;
	return 0;
undo:
	/*
	 * Drop the partial batch so the file ends on a whole record.  After a
	 * failed fdatasync the page cache cannot be trusted, so the retry
	 * rewrites the bytes instead of syncing again.
	 */
	if (ftruncate(w->fd, (off_t)w->file_off))
		warn(w, "%s: cannot truncate back to %" PRIu64 ": %s", w->cur_path, w->file_off,
		     strerror(errno));
	return ret;
}

static void mirror(struct ag_audit_writer *w)
{
	const char *p = w->buf, *end = w->buf + w->buf_len;

	while (w->syslog && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		ag_audit_syslog_send(w->syslog, p, (size_t)(nl - p));
		p = nl + 1;
	}
}

/* Commits one batch, retrying while failed; false if it gave up on stop. */
static bool commit_batch(struct ag_audit_writer *w, size_t n)
{
	struct ag_err err;
	struct timespec until;
	uint64_t durable = w->batch[n - 1].seq + 1;
	bool ok, stopping, first, recovered;

	ok = !prepare(w, n, &err) && !commit(w, &err);
	while (!ok) {
		pthread_mutex_lock(&w->mu);
		first = !w->failed;
		if (first) {
			w->failed = true;
			snprintf(w->failmsg, sizeof(w->failmsg), "%s", err.msg);
			notify(w);
		}
		pthread_mutex_unlock(&w->mu);
		/* warn() runs caller code: never under the writer's lock. */
		if (first)
			warn(w, "audit log failed, refusing records: %s", err.msg);
		pthread_mutex_lock(&w->mu);
		clock_gettime(CLOCK_MONOTONIC, &until);
		ag_audit_ts_add_us(&until, (uint64_t)w->cfg.retry_ms * 1000);
		while (!w->stop && pthread_cond_timedwait(&w->wake, &w->mu, &until) != ETIMEDOUT)
			;
		stopping = w->stop;
		pthread_mutex_unlock(&w->mu);
		/* A batch that failed to serialise (no memory) is retried whole. */
		ok = (w->buf_len || !prepare(w, n, &err)) && !commit(w, &err);
		if (!ok && stopping)
			return false;
	}
	mirror(w);
	pthread_mutex_lock(&w->mu);
	w->durable = durable;
	recovered = w->failed;
	w->failed = false;
	notify(w);
	pthread_mutex_unlock(&w->mu);
	if (recovered)
		warn(w, "audit log %s recovered at seq %" PRIu64, w->cur_path, durable);
	for (size_t i = 0; i < n; i++)
		free(w->batch[i].body);
	return true;
}

static void *committer(void *arg)
{
	struct ag_audit_writer *w = arg;
	struct timespec now, wall, deadline, cp_at;
	bool has_deadline;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		cp_at = w->first_unsigned;
		ag_audit_ts_add_us(&cp_at, (uint64_t)w->cfg.checkpoint_ms * 1000);
		if (w->since_cp && (ag_audit_ts_reached(&now, &cp_at) || w->stop)) {
			clock_gettime(CLOCK_REALTIME, &wall);
			push_checkpoint_locked(w, &wall, NULL);
		}
		deadline = w->first_queued;
		ag_audit_ts_add_us(&deadline, w->cfg.batch_us);
		if (w->count && (w->count >= w->cfg.batch_max || w->stop ||
				 ag_audit_ts_reached(&now, &deadline))) {
			/*
			 * batch_max and batch_us decide when a write starts;
			 * it then takes everything that waits (up to
			 * write_max), so a backlog built during a slow
			 * fdatasync costs one more sync, not one per
			 * batch_max records.
			 */
			size_t n = w->count < w->cfg.write_max ? w->count : w->cfg.write_max;

			for (size_t i = 0; i < n; i++)
				w->batch[i] = w->ring[(w->head + i) % w->ring_cap];
			w->head = (w->head + n) % w->ring_cap;
			w->count -= n;
			/* Later records have waited at most since now. */
			w->first_queued = now;
			pthread_mutex_unlock(&w->mu);
			w->buf_len = 0;
			if (!commit_batch(w, n)) {
				/* Closing while failed: close() reports what was lost. */
				for (size_t i = 0; i < n; i++)
					free(w->batch[i].body);
				pthread_mutex_lock(&w->mu);
				w->unwritten = n;
				break;
			}
			pthread_mutex_lock(&w->mu);
			continue;
		}
		if (w->stop)
			break;
		has_deadline = w->count || w->since_cp;
		if (w->since_cp && (!w->count || ag_audit_ts_reached(&deadline, &cp_at)))
			deadline = cp_at;
		if (has_deadline)
			pthread_cond_timedwait(&w->wake, &w->mu, &deadline);
		else
			pthread_cond_wait(&w->wake, &w->mu);
	}
	notify(w);
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* ---- Open and close ------------------------------------------------------ */

/* A copy of line in *buf, NUL-terminated. */
static int keep_line(char **buf, size_t *cap, const char *line, size_t len)
{
	if (len >= *cap) {
		char *b = realloc(*buf, len + 1);

		if (!b)
			return -ENOMEM;
		*buf = b;
		*cap = len + 1;
	}
	memcpy(*buf, line, len);
	(*buf)[len] = '\0';
	return 0;
}

/* The unsigned records at the end of the series: how many, and the first. */
struct tail {
	uint64_t n;
	char *first;
	size_t cap;
};

/*
 * A checkpoint's line starts with its kind, which sorts before its other
 * members; an event's top-level kind is never "checkpoint".
 */
static int tail_add(struct tail *t, const char *line, size_t len)
{
	static const char cp[] = "{\"kind\":\"checkpoint\",";

	if (len >= sizeof(cp) - 1 && !memcmp(line, cp, sizeof(cp) - 1)) {
		t->n = 0;
		return 0;
	}
	return t->n++ ? 0 : keep_line(&t->first, &t->cap, line, len);
}

/*
 * An unsigned tail from a crash counts towards the next checkpoint, in
 * records and in time from its first record, so the tail this writer adds
 * to stays within one interval; it gets signed within checkpoint_ms.
 */
static void inherit_tail(struct ag_audit_writer *w, const struct tail *t)
{
	json_t *obj;
	const char *ts;

	if (!t->n)
		return;
	w->since_cp = t->n;
	clock_gettime(CLOCK_MONOTONIC, &w->first_unsigned);
	obj = json_loads(t->first, JSON_REJECT_DUPLICATES, NULL);
	ts = json_string_value(json_object_get(obj, "ts"));
	/* Unreadable: time zero puts a checkpoint before the next record. */
	if (!ts || ag_audit_parse_ts(ts, &w->first_unsigned_ts))
		memset(&w->first_unsigned_ts, 0, sizeof(w->first_unsigned_ts));
	json_decref(obj);
}

/* Reads the existing series: chain head, tree, next seq, torn tail. */
static int recover(struct ag_audit_writer *w, struct ag_err *err)
{
	char **paths = NULL, *last = NULL;
	size_t n = 0, last_cap = 0;
	struct tail tail = { 0 };
	uint64_t count = 0;
	int ret;

	ret = ag_audit_series(w->base, &paths, &n, err);
	if (ret)
		return ret;
	for (size_t i = 0; i < n; i++) {
		struct ag_audit_reader *r;
		const char *line;
		size_t len;
		bool torn;

		if (access(paths[i], F_OK) && errno == ENOENT && i + 1 == n && !i)
			break; /* a new log */
		ret = ag_audit_reader_open(paths[i], &r, err);
		if (ret)
			goto out;
		while ((ret = ag_audit_reader_next(r, &line, &len, &torn, err)) == 1) {
			uint8_t leaf[AG_AUDIT_HASH_LEN];

			if (torn) {
				if (i + 1 < n) {
					ret = ag_errf(err, -EBADMSG,
						      "%s: ends in a partial record but is "
						      "not the last file of the log",
						      paths[i]);
					break;
				}
				warn(w,
				     "%s: removing %zu bytes of a partial last record "
				     "(torn write; it was never reported durable)",
				     paths[i], len);
				if (truncate(paths[i], (off_t)(ag_audit_reader_offset(r) - len)))
					ret = ag_errf(err, -errno, "%s: cannot truncate: %s",
						      paths[i], strerror(errno));
				break;
			}
			ag_audit_line_hash(line, len, w->prev);
			ag_audit_leaf_hash(line, len, leaf);
			ag_audit_tree_append(&w->tree, leaf);
			count++;
			if (keep_line(&last, &last_cap, line, len) || tail_add(&tail, line, len)) {
				ret = ag_errf(err, -ENOMEM, "%s: out of memory", paths[i]);
				break;
			}
		}
		ag_audit_reader_close(r);
		if (ret < 0)
			goto out;
		ret = 0;
	}
	if (count) {
		json_t *obj = json_loads(last, JSON_REJECT_DUPLICATES, NULL);
		json_t *seq = json_object_get(obj, "seq");

		if (!json_is_integer(seq) || json_integer_value(seq) != (json_int_t)(count - 1))
			ret = ag_errf(err, -EBADMSG,
				      "%s: last record is not record %" PRIu64
				      " of the log; run 'agentgatectl audit verify' and move "
				      "the log aside to start a new one",
				      paths[n - 1], count - 1);
		else
			inherit_tail(w, &tail);
		json_decref(obj);
	}
	w->next_seq = w->durable = count;
	if (!ret) {
		const char *cur = paths[n - 1];
		const char *dot = cur + strlen(w->base);

		w->segment = *dot == '.' ? strtoull(dot + 1, NULL, 10) : 0;
		ret = open_segment(w, cur, access(cur, F_OK) != 0, err);
		if (!ret) {
			struct stat st;

			if (fstat(w->fd, &st) || fdatasync(w->fd))
				ret = ag_errf(err, -errno, "%s: %s", cur, strerror(errno));
			else
				w->file_off = (uint64_t)st.st_size;
			w->rotate_pending =
			    w->cfg.rotate_bytes && w->file_off >= w->cfg.rotate_bytes;
		}
	}
out:
	free(last);
	free(tail.first);
	ag_audit_series_free(paths, n);
	return ret;
}

static void writer_free(struct ag_audit_writer *w)
{
	for (size_t i = 0; w->ring && i < w->count; i++)
		free(w->ring[(w->head + i) % w->ring_cap].body);
	free(w->ring);
	free(w->batch);
	free(w->buf);
	free(w->cur_path);
	free(w->base);
	free(w->origin);
	free(w->syslog_path);
	if (w->fd >= 0)
		close(w->fd);
	if (w->efd >= 0)
		close(w->efd);
	ag_audit_key_free(w->key);
	ag_audit_syslog_close(w->syslog);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->wake);
	pthread_cond_destroy(&w->durable_cv);
	free(w);
}

int ag_audit_open(const struct ag_audit_config *c, struct ag_audit_writer **out, struct ag_err *err)
{
	struct ag_audit_writer *w;
	pthread_condattr_t ca;
	int ret;

	if (!c->path || !c->key_path)
		return ag_errf(err, -EINVAL, "audit config needs a log path and a key path");
	if (!c->batch_max || c->batch_max > 4096 || !c->queue_max || c->queue_max > (1u << 24) ||
	    !c->checkpoint_records || c->checkpoint_records > AG_AUDIT_INTERVAL_RECORDS ||
	    c->checkpoint_ms > AG_AUDIT_INTERVAL_MS || !c->retry_ms ||
	    (c->write_max && (c->write_max < c->batch_max || c->write_max > 65536)))
		/* Fail closed: a longer interval would write tails the verifier refuses. */
		return ag_errf(err, -EINVAL,
			       "audit config for %s: batch_max 1..4096, write_max 0 or "
			       "batch_max..65536, queue_max 1..16M, checkpoint_records 1..%u, "
			       "checkpoint_ms 0..%u, retry_ms > 0",
			       c->path, AG_AUDIT_INTERVAL_RECORDS, AG_AUDIT_INTERVAL_MS);
	w = calloc(1, sizeof(*w));
	if (!w)
		return ag_errf(err, -ENOMEM, "%s: out of memory", c->path);
	w->fd = w->efd = -1;
	w->cfg = *c;
	if (!w->cfg.write_max)
		w->cfg.write_max = c->batch_max;
	pthread_mutex_init(&w->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->wake, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&w->durable_cv, NULL);
	w->base = strdup(c->path);
	w->origin = strdup(c->origin ? c->origin : AG_AUDIT_DEFAULT_ORIGIN);
	w->syslog_path = c->syslog_path ? strdup(c->syslog_path) : NULL;
	w->ring_cap = (size_t)c->queue_max + CP_SLACK;
	w->ring = calloc(w->ring_cap, sizeof(*w->ring));
	w->batch = calloc(w->cfg.write_max, sizeof(*w->batch));
	w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!w->base || !w->origin || (c->syslog_path && !w->syslog_path) || !w->ring ||
	    !w->batch || w->efd < 0) {
		ret = ag_errf(err, -ENOMEM, "%s: cannot set up the writer: %s", c->path,
			      strerror(errno));
		goto fail;
	}
	w->cfg.path = w->base;
	w->cfg.origin = w->origin;
	w->cfg.syslog_path = w->syslog_path;
	w->cfg.key_path = NULL;
	ag_audit_tree_init(&w->tree);
	ret = ag_audit_key_open(c->key_path, true, &w->key, err);
	if (ret)
		goto fail;
	{
		/* Refuse a bad origin now rather than at the first checkpoint. */
		char *vkey = ag_audit_key_vkey(w->key, w->origin);

		if (!vkey) {
			ret = ag_errf(err, -EINVAL,
				      "audit origin \"%s\" is not a valid key name (no "
				      "spaces or '+', at most 255 bytes)",
				      w->origin);
			goto fail;
		}
		free(vkey);
	}
	ret = recover(w, err);
	if (ret)
		goto fail;
	if (c->syslog_path)
		w->syslog = ag_audit_syslog_open(c->syslog_path, "agentgate");
	ret = -pthread_create(&w->thread, NULL, committer, w);
	if (ret) {
		ag_errf(err, ret, "%s: cannot start the committer thread", c->path);
		goto fail;
	}
	/* For top -H and perf: the committer's CPU is the log's cost. */
	pthread_setname_np(w->thread, "audit-commit");
	*out = w;
	return 0;
fail:
	writer_free(w);
	return ret;
}

int ag_audit_close(struct ag_audit_writer *w, struct ag_err *err)
{
	int ret = 0;

	if (!w)
		return 0;
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	if (w->count || w->unwritten)
		ret = ag_errf(err, -EIO, "%s: %" PRIu64 " records were not written: %s", w->base,
			      w->count + w->unwritten, w->failmsg);
	writer_free(w);
	return ret;
}

static const char *const durability_names[] = {
	[AG_AUDIT_SYNC] = "sync",
	[AG_AUDIT_BATCH] = "batch",
	[AG_AUDIT_NONE] = "none",
};

const char *ag_audit_durability_name(enum ag_audit_durability d)
{
	return (unsigned int)d < sizeof(durability_names) / sizeof(durability_names[0])
		   ? durability_names[d]
		   : "unknown";
}

int ag_audit_durability_parse(const char *s)
{
	for (size_t i = 0; i < sizeof(durability_names) / sizeof(durability_names[0]); i++)
		if (!strcmp(s, durability_names[i]))
			return (int)i;
	return -1;
}
