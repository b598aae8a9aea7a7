// SPDX-License-Identifier: GPL-2.0
/*
 * Audit writer, open and close: open reads the existing series (chain
 * head, Merkle tree, next seq, a torn tail cut off, the unsigned records
 * since the last checkpoint) and starts the committer; close stops it.
 */
#include "audit_writer_int.h"

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

/*
 * Where the state the last clean close saved lets recovery start (the
 * offset in paths[*first]), with w's chain head and tree, the record count
 * and the last line taken from it; 0: read the whole series.
 */
static uint64_t resume_at(struct ag_audit_writer *w, char **paths, size_t n, size_t *first,
			  uint64_t *count, char **last, size_t *last_cap, struct tail *tail)
{
	static const char cp[] = "{\"kind\":\"checkpoint\",";
	struct ag_audit_resume rs;
	uint8_t h[AG_AUDIT_HASH_LEN];
	char seg[PATH_MAX], *line = NULL;
	size_t i = 0, len = 0;
	json_t *obj = NULL;
	bool ok;

	if (ag_audit_resume_load(w->base, &rs) || !rs.count)
		return 0;
	if (rs.segment)
		snprintf(seg, sizeof(seg), "%s.%" PRIu64, w->base, rs.segment);
	else
		snprintf(seg, sizeof(seg), "%s", w->base);
	while (i < n && strcmp(paths[i], seg))
		i++;
	if (i == n || ag_audit_resume_last_line(seg, rs.offset, &line, &len))
		return 0;
	ag_audit_line_hash(line, len, h);
	obj = json_loads(line, JSON_REJECT_DUPLICATES, NULL);
	/* Only at a checkpoint: no unsigned tail to count before the offset. */
	ok = !memcmp(h, rs.prev, sizeof(h)) && len > sizeof(cp) - 1 &&
	     !memcmp(line, cp, sizeof(cp) - 1) &&
	     json_integer_value(json_object_get(obj, "seq")) == (json_int_t)(rs.count - 1) &&
	     !keep_line(last, last_cap, line, len) && !tail_add(tail, line, len);
	json_decref(obj);
	free(line);
	if (!ok)
		return 0;
	memcpy(w->prev, rs.prev, sizeof(w->prev));
	w->tree = rs.tree;
	*count = rs.count;
	*first = i;
	return rs.offset;
}

/* Reads the existing series: chain head, tree, next seq, torn tail. */
static int recover(struct ag_audit_writer *w, struct ag_err *err)
{
	char **paths = NULL, *last = NULL;
	size_t n = 0, last_cap = 0, first = 0;
	struct tail tail = { 0 };
	uint64_t count = 0, from;
	int ret;

	ret = ag_audit_series(w->base, &paths, &n, err);
	if (ret)
		return ret;
	from = resume_at(w, paths, n, &first, &count, &last, &last_cap, &tail);
	w->recovered_read = count;
	for (size_t i = first; i < n; i++) {
		struct ag_audit_reader *r = NULL;
		const char *line;
		size_t len;
		bool torn;

		if (access(paths[i], F_OK) && errno == ENOENT && i + 1 == n && !i)
			break; /* a new log */
		ret = ag_audit_reader_open(paths[i], &r, err);
		if (!ret && i == first && from)
			ret = ag_audit_reader_seek(r, from, err);
		if (ret) {
			ag_audit_reader_close(r);
			goto out;
		}
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
				aw_warn(w,
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
	w->next_seq = w->written = w->durable = w->buf_seq = w->synced_seq = count;
	w->recovered = count;
	w->recovered_read = count - w->recovered_read;
	if (!ret) {
		const char *cur = paths[n - 1];
		const char *dot = cur + strlen(w->base);

		w->segment = *dot == '.' ? strtoull(dot + 1, NULL, 10) : 0;
		ret = aw_open_segment(w, cur, access(cur, F_OK) != 0, err);
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
	    c->checkpoint_ms > AG_AUDIT_INTERVAL_MS || !c->retry_ms || c->sync_ms > 60000 ||
	    (c->write_max && (c->write_max < c->batch_max || c->write_max > 65536)))
		/* Fail closed: a longer interval would write tails the verifier refuses. */
		return ag_errf(err, -EINVAL,
			       "audit config for %s: batch_max 1..4096, write_max 0 or "
			       "batch_max..65536, queue_max 1..16M, checkpoint_records 1..%u, "
			       "checkpoint_ms 0..%u, retry_ms > 0, sync_ms 0..60000",
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
	ret = -pthread_create(&w->thread, NULL, aw_committer, w);
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
	if (w->count || w->unwritten) {
		ret = ag_errf(err, -EIO, "%s: %" PRIu64 " records were not written: %s", w->base,
			      w->count + w->unwritten, w->failmsg);
		ag_audit_resume_remove(w->base);
	} else if (w->next_seq && !w->failed) {
		struct ag_audit_resume rs = { .segment = w->segment,
					      .offset = w->file_off,
					      .count = w->next_seq,
					      .tree = w->tree };
		struct ag_err e;

		memcpy(rs.prev, w->prev, sizeof(rs.prev));
		/* Best effort: without it the next open reads the whole series. */
		if (ag_audit_resume_save(&rs, w->base, &e))
			aw_warn(w, "%s", e.msg);
	}
	writer_free(w);
	return ret;
}

void ag_audit_recovery(const struct ag_audit_writer *w, uint64_t *records, uint64_t *read)
{
	*records = w->recovered;
	*read = w->recovered_read;
}

static const char *const durability_names[] = {
	[AG_AUDIT_SYNC] = "sync",
	[AG_AUDIT_WRITTEN] = "written",
	[AG_AUDIT_NONE] = "none",
	[AG_AUDIT_STRICT] = "strict",
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
