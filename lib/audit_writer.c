// SPDX-License-Identifier: GPL-2.0
/*
 * Audit writer: appenders serialise their event body outside the lock and
 * queue it with a seq and a timestamp.  The holder of "busy" writes: an
 * appender that finds no write in progress takes the queue and writes it
 * itself (unless its record may wait: AG_AUDIT_LATER, written by the next
 * append, ag_audit_flush or the committer), else the committer thread does
 * (audit_writer_commit.c).  Writing splices in the reserved members,
 * extends the hash chain and the Merkle tree, signs checkpoints and
 * pwrites the batch.  The committer alone syncs (when the durability mode
 * says, audit.h), rotates and retries:
 *
 *	idle --append NOW or flush, rotation not due--> appender busy --written--> idle
 *	appender busy --write failed--> committer busy (handoff: retried, failed)
 *	idle --queue, sync or rotation due, stop--> committer busy --done--> idle
 *
 * Ordering hazards: the "Committer only" fields belong to the holder of
 * busy, taken and released under mu; the committer reads buf_len and
 * buf_since only while nobody is busy, so a release wakes it if it saw
 * busy (idle_busy) or has something new to do.  written and durable
 * advance under mu only once the bytes are in the file, synced.
 *
 * Fail closed: a failed write or sync truncates the file back to the last
 * durable offset, refuses new appends and retries the same bytes until they
 * land, so the file only ever holds whole records and seq has no gap.
 *
 * Opening (recovery of an existing log) and closing are in audit_open.c.
 */
#include "audit_writer_int.h"
#include "buf.h"

void ag_audit_vwarn(void (*fn)(void *ctx, const char *msg), void *ctx, const char *fmt, va_list ap)
{
	char msg[512];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (fn)
		fn(ctx, msg);
	else
		fprintf(stderr, "agentgate audit: warning: %s\n", msg);
}

void aw_warn(const struct ag_audit_writer *w, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ag_audit_vwarn(w->cfg.warn, w->cfg.warn_ctx, fmt, ap);
	va_end(ap);
}

void ag_audit_config_init(struct ag_audit_config *c)
{
	memset(c, 0, sizeof(*c));
	c->origin = AG_AUDIT_DEFAULT_ORIGIN;
	c->durability = AG_AUDIT_SYNC;
	c->batch_max = 64;
	c->sync_ms = 100;
	c->write_max = 4096;
	c->checkpoint_records = 4096;
	c->checkpoint_ms = 1000;
	c->queue_max = 65536;
	c->retry_ms = 100;
}

void aw_notify(struct ag_audit_writer *w)
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
	/* Who queues wakes the committer if it must (a busy writer takes it next). */
	w->count++;
	if (seq)
		*seq = e->seq;
}

/* ts is CLOCK_REALTIME, as for the records. */
bool aw_push_checkpoint_locked(struct ag_audit_writer *w, const struct timespec *ts, uint64_t *seq)
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

/* The kind's static name, or a refusal: checkpoints are the writer's own. */
static const char *event_kind(const char *kind, struct ag_err *err)
{
	const char *k = ag_audit_kind_name(kind);

	if (!k || !strcmp(k, "checkpoint")) {
		ag_errf(err, -EINVAL, "audit record kind \"%s\" is not an event kind",
			kind ? kind : "(null)");
		return NULL;
	}
	return k;
}

/* Why a body could not be serialised (ret from the canonicaliser), or 0. */
static int canon_refused(int ret, bool nul, const char *k, struct ag_err *err)
{
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
	if (nul)
		return ag_errf(err, -EINVAL, "audit %s record: a string contains a NUL", k);
	return 0;
}

/*
 * Takes the queue to write it inline if nobody is writing and no rotation
 * is due (the committer's, woken here); 0: nothing taken.
 */
static size_t take_inline_locked(struct ag_audit_writer *w)
{
	/* A busy writer takes the queue when done; a rotation is the committer's. */
	if (!w->busy && aw_rotate_due_locked(w)) {
		pthread_cond_signal(&w->wake);
	} else if (!w->busy && w->count) {
		w->busy = true;
		return aw_take_locked(w);
	}
	return 0;
}

/* Queues body (taken) with a seq and a timestamp; writes the queue if nobody is (NOW). */
static int queue(struct ag_audit_writer *w, const char *k, struct ag_audit_text *body,
		 const uint32_t *at, enum ag_audit_when when, uint64_t *seq, struct ag_err *err)
{
	size_t mine = 0;
	int ret = 0;

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
			aw_push_checkpoint_locked(w, &now, NULL);
		if (!w->since_cp++) {
			clock_gettime(CLOCK_MONOTONIC, &w->first_unsigned);
			w->first_unsigned_ts = now;
		}
		push_locked(w, k, body, at, &now, seq);
		body->text = NULL;
		if (w->since_cp >= w->cfg.checkpoint_records)
			aw_push_checkpoint_locked(w, &now, NULL);
		if (when == AG_AUDIT_NOW)
			mine = take_inline_locked(w);
	}
	pthread_mutex_unlock(&w->mu);
	free(body->text);
	if (mine)
		aw_write_inline(w, mine, true);
	return ret;
}

int ag_audit_append(struct ag_audit_writer *w, const char *kind, const json_t *fields,
		    uint64_t *seq, struct ag_err *err)
{
	const char *k = event_kind(kind, err);
	struct ag_audit_text body;
	uint32_t at[RESERVED];
	bool nul;
	int ret;

	if (!k)
		return -EINVAL;
	if (!json_is_object(fields))
		return ag_errf(err, -EINVAL, "audit %s record: fields must be a JSON object", k);
	for (size_t i = 0; i < RESERVED; i++)
		if (json_object_get(fields, reserved[i]))
			return ag_errf(err, -EINVAL,
				       "audit %s record: field \"%s\" is reserved for the log", k,
				       reserved[i]);
	/* Leave room for the reserved members within the line limit. */
	ret = ag_audit_canon(fields, AG_AUDIT_MAX_LINE - 256, reserved, RESERVED, at, &body);
	nul = !ret && body.nul;
	if (nul)
		free(body.text);
	if ((ret = canon_refused(ret, nul, k, err)))
		return ret;
	return queue(w, k, &body, at, AG_AUDIT_NOW, seq, err);
}

int ag_audit_append_members(struct ag_audit_writer *w, const char *kind,
			    const struct ag_audit_member *m, size_t n, struct ag_audit_buf *scratch,
			    enum ag_audit_when when, uint64_t *seq, struct ag_err *err)
{
	const char *k = event_kind(kind, err);
	struct ag_audit_text body;
	uint32_t at[RESERVED];
	int ret;

	if (!k)
		return -EINVAL;
	for (size_t i = 0; i < RESERVED; i++)
		if (ag_audit_member_get(m, n, reserved[i]))
			return ag_errf(err, -EINVAL,
				       "audit %s record: field \"%s\" is reserved for the log", k,
				       reserved[i]);
	ret =
	    ag_audit_canon_members(scratch, AG_AUDIT_MAX_LINE - 256, m, n, reserved, RESERVED, at);
	ret = canon_refused(ret, !ret && scratch->nul, k, err);
	/* The queue holds the body until it is written: one exact copy. */
	if (!ret && !(body.text = malloc(scratch->len + 1)))
		ret = ag_errf(err, -ENOMEM, "audit %s record: out of memory", k);
	if (!ret) {
		memcpy(body.text, scratch->b, scratch->len + 1);
		body.len = scratch->len;
		body.nul = false;
	}
	ag_audit_buf_trim(scratch);
	return ret ? ret : queue(w, k, &body, at, when, seq, err);
}

void ag_audit_flush(struct ag_audit_writer *w)
{
	size_t mine;

	pthread_mutex_lock(&w->mu);
	mine = w->failed || w->stop ? 0 : take_inline_locked(w);
	pthread_mutex_unlock(&w->mu);
	if (mine)
		aw_write_inline(w, mine, false);
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
	else if (w->since_cp && !aw_push_checkpoint_locked(w, &now, seq))
		ret = ag_errf(err, -ENOBUFS, "audit log %s: queue full", w->base);
	else
		pthread_cond_signal(&w->wake);
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
	if (w->durable <= seq && !w->sync_wanted) {
		/* Written mode would sync within sync_ms: a waiter wants it now. */
		w->sync_wanted = true;
		pthread_cond_signal(&w->wake);
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

/* A seq the committer advances, read under the lock. */
static uint64_t read_seq(struct ag_audit_writer *w, const uint64_t *seq)
{
	uint64_t v;

	pthread_mutex_lock(&w->mu);
	v = *seq;
	pthread_mutex_unlock(&w->mu);
	return v;
}

uint64_t ag_audit_durable(struct ag_audit_writer *w)
{
	return read_seq(w, &w->durable);
}

uint64_t ag_audit_written(struct ag_audit_writer *w)
{
	return read_seq(w, &w->written);
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

/* ---- Serialisation (the holder of busy) ------------------------------------ */

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

/* The state to resume from once the checkpoint just serialised is durable. */
static void note_checkpoint(struct ag_audit_writer *w, uint64_t seq)
{
	w->cp.count = seq + 1;
	memcpy(w->cp.prev, w->prev, sizeof(w->cp.prev));
	w->cp.tree = w->tree;
	w->cp_end = w->buf_len;
	w->cp_due = true;
}

/* Serialises the batch onto the end of w->buf, advancing prev and the tree. */
static int serialise(struct ag_audit_writer *w, size_t n, struct ag_err *err)
{
	char prev[AG_AUDIT_HEX_LEN + 1], ts[AG_AUDIT_TS_LEN];
	uint8_t leaf[AG_AUDIT_HASH_LEN];

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
		if (!e->body)
			note_checkpoint(w, e->seq);
	}
	return 0;
}

/*
 * Serialises a batch after what w->buf holds and frees the entries' bodies
 * (a retry rewrites w->buf), or leaves everything as it was.
 */
int aw_prepare(struct ag_audit_writer *w, size_t n, struct ag_err *err)
{
	size_t len = w->buf_len;
	int ret;

	memcpy(w->saved_prev, w->prev, sizeof(w->prev));
	w->saved_tree = w->tree;
	ret = serialise(w, n, err);
	if (ret) {
		memcpy(w->prev, w->saved_prev, sizeof(w->prev));
		w->tree = w->saved_tree;
		w->buf_len = len;
		/* A checkpoint of the batch undone is not in the log. */
		if (w->cp_due && w->cp_end > len)
			w->cp_due = false;
		return ret;
	}
	if (!len)
		clock_gettime(CLOCK_MONOTONIC, &w->buf_since);
	w->buf_seq = w->batch[n - 1].seq + 1;
	for (size_t i = 0; i < n; i++) {
		free(w->batch[i].body);
		w->batch[i].body = NULL;
	}
	return 0;
}
