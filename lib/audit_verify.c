// SPDX-License-Identifier: GPL-2.0
/*
 * Audit verifier.  The files are read as attacker-controlled input: every
 * line is bounded, parsed strictly and checked in order for its seq, its
 * prev link, and (for checkpoints) size, root and signature against the
 * records before it.  Witness logs contribute only their signed checkpoints,
 * compared with this log's tree at the same size to expose forks.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "buf.h"

static const char *const finding_names[] = {
	[AG_AUDIT_CLEAN] = "clean",
	[AG_AUDIT_IO] = "unreadable",
	[AG_AUDIT_MALFORMED] = "malformed record",
	[AG_AUDIT_SEQ] = "deleted, inserted or reordered record",
	[AG_AUDIT_CHAIN] = "modified record",
	[AG_AUDIT_ROOT] = "checkpoint does not match the records",
	[AG_AUDIT_OTHER_KEY] = "checkpoint signed by another key",
	[AG_AUDIT_BAD_SIG] = "bad checkpoint signature",
	[AG_AUDIT_UNSIGNED_TAIL] = "unsigned records after the last checkpoint",
	[AG_AUDIT_FORK] = "fork",
	[AG_AUDIT_TRUNCATED] = "truncated log",
};

const char *ag_audit_finding_name(enum ag_audit_finding f)
{
	if ((unsigned int)f >= sizeof(finding_names) / sizeof(finding_names[0]))
		return "unknown";
	return finding_names[f];
}

struct witness_cp {
	uint64_t size;
	uint8_t root[AG_AUDIT_HASH_LEN];
	size_t file;
};

/* The hash of a recent record's line, for a collector's second copy. */
struct seen {
	uint64_t seq;
	uint8_t hash[AG_AUDIT_HASH_LEN];
};

struct vstate {
	const struct ag_audit_verify_opts *o;
	struct ag_audit_verify_result *r;
	struct ag_audit_tree tree;
	uint8_t prev[AG_AUDIT_HASH_LEN];
	uint64_t next;			    /* expected seq */
	uint64_t last_cp;		    /* seq of the last checkpoint + 1; 0: none yet */
	struct timespec tail_min, tail_max; /* ts of the records after it */
	struct witness_cp *wit;
	size_t nwit, wi;
	const char *path;
	uint64_t lineno;
	struct seen *seen; /* collected: AG_AUDIT_DEDUPE_WINDOW, by seq */
};

static int finding(struct ag_audit_verify_result *r, enum ag_audit_finding f, uint64_t seq,
		   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int finding(struct ag_audit_verify_result *r, enum ag_audit_finding f, uint64_t seq,
		   const char *fmt, ...)
{
	va_list ap;

	r->finding = f;
	r->seq = seq;
	va_start(ap, fmt);
	vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
	va_end(ap);
	return f == AG_AUDIT_IO ? -EIO : -EBADMSG;
}

/*
 * A collector's file may hold a record twice (shipped at least once): 1
 * when line is byte for byte the record of its seq, else a finding.
 */
static int duplicate(struct vstate *st, const char *line, size_t len, uint64_t seq)
{
	struct seen *sn = &st->seen[seq % AG_AUDIT_DEDUPE_WINDOW];
	uint8_t h[AG_AUDIT_HASH_LEN];

	ag_audit_line_hash(line, len, h);
	if (sn->seq == seq && !memcmp(sn->hash, h, sizeof(h))) {
		st->r->duplicates++;
		return 1;
	}
	return finding(st->r, AG_AUDIT_SEQ, seq, "%s:%" PRIu64 ": record %" PRIu64 " again, %s",
		       st->path, st->lineno, seq,
		       sn->seq == seq ? "with other bytes than its first copy"
				      : "further back than the collector's resend window");
}

/* Compares the witnesses' checkpoints of the tree's current size. */
static int check_witness(struct vstate *st)
{
	uint8_t root[AG_AUDIT_HASH_LEN];
	bool have_root = false;

	for (; st->wi < st->nwit && st->wit[st->wi].size <= st->tree.size; st->wi++) {
		const struct witness_cp *w = &st->wit[st->wi];
		char a[AG_AUDIT_HEX_LEN + 1], b[AG_AUDIT_HEX_LEN + 1];

		if (!have_root)
			ag_audit_tree_root(&st->tree, root);
		have_root = true;
		if (!memcmp(root, w->root, AG_AUDIT_HASH_LEN))
			continue;
		ag_audit_hex(w->root, a);
		ag_audit_hex(root, b);
		return finding(st->r, AG_AUDIT_FORK, w->size,
			       "fork: %s has a signed checkpoint of %" PRIu64
			       " records with root %s, this log's first %" PRIu64
			       " records hash to %s",
			       st->o->witness[w->file], w->size, a, w->size, b);
	}
	return 0;
}

static int check_checkpoint(struct vstate *st, json_t *obj, uint64_t seq)
{
	const char *note = json_string_value(json_object_get(obj, "note"));
	struct ag_audit_checkpoint cp;
	struct ag_err err = { 0 };
	uint8_t root[AG_AUDIT_HASH_LEN];
	enum ag_audit_note_status s;

	if (!note)
		return finding(st->r, AG_AUDIT_MALFORMED, seq,
			       "%s:%" PRIu64 ": checkpoint %" PRIu64 " has no note", st->path,
			       st->lineno, seq);
	s = ag_audit_note_open(note, json_string_length(json_object_get(obj, "note")),
			       st->o->pubkey, &cp, &err);
	if (s != AG_AUDIT_NOTE_OK)
		return finding(st->r,
			       s == AG_AUDIT_NOTE_OTHER_KEY ? AG_AUDIT_OTHER_KEY
			       : s == AG_AUDIT_NOTE_BAD_SIG ? AG_AUDIT_BAD_SIG
							    : AG_AUDIT_MALFORMED,
			       seq, "%s:%" PRIu64 ": checkpoint %" PRIu64 ": %s", st->path,
			       st->lineno, seq, err.msg);
	if (cp.size != seq)
		return finding(st->r, AG_AUDIT_ROOT, seq,
			       "%s:%" PRIu64 ": checkpoint %" PRIu64 " signs a tree of %" PRIu64
			       " records, %" PRIu64 " precede it",
			       st->path, st->lineno, seq, cp.size, seq);
	ag_audit_tree_root(&st->tree, root);
	if (memcmp(root, cp.root, AG_AUDIT_HASH_LEN))
		return finding(st->r, AG_AUDIT_ROOT, seq,
			       "%s:%" PRIu64 ": checkpoint %" PRIu64 " root hash does not match "
			       "records 0..%" PRIu64 ": a record before it was changed",
			       st->path, st->lineno, seq, seq ? seq - 1 : 0);
	st->r->checkpoints++;
	st->r->signed_size = seq;
	st->last_cp = seq + 1;
	return 0;
}

/* Widens the time the unsigned tail spans by an event record's ts. */
static void tail_ts(struct vstate *st, const struct timespec *ts)
{
	bool first = st->next == st->last_cp;

	if (first || !ag_audit_ts_reached(ts, &st->tail_min))
		st->tail_min = *ts;
	if (first || !ag_audit_ts_reached(&st->tail_max, ts))
		st->tail_max = *ts;
}

static int check_line(struct vstate *st, const char *line, size_t len)
{
	static const uint8_t zero[AG_AUDIT_HASH_LEN];
	uint8_t prev[AG_AUDIT_HASH_LEN], leaf[AG_AUDIT_HASH_LEN];
	struct timespec ts;
	json_error_t jerr;
	json_t *obj, *jseq;
	const char *kind, *sts, *sprev;
	char *canon = NULL;
	uint64_t seq, e = st->next;
	int ret = 0;

	obj = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(obj)) {
		ret = finding(st->r, AG_AUDIT_MALFORMED, e,
			      "%s:%" PRIu64 ": record %" PRIu64 " is not a JSON object: %s",
			      st->path, st->lineno, e, obj ? "other JSON value" : jerr.text);
		goto out;
	}
	jseq = json_object_get(obj, "seq");
	kind = json_string_value(json_object_get(obj, "kind"));
	sts = json_string_value(json_object_get(obj, "ts"));
	sprev = json_string_value(json_object_get(obj, "prev"));
	if (!json_is_integer(jseq) || json_integer_value(jseq) < 0 || !kind ||
	    !ag_audit_kind_name(kind) || !sts || ag_audit_parse_ts(sts, &ts) || !sprev ||
	    ag_audit_unhex(sprev, prev)) {
		ret = finding(st->r, AG_AUDIT_MALFORMED, e,
			      "%s:%" PRIu64 ": record %" PRIu64
			      " lacks a valid seq, ts, kind or prev (modified record)",
			      st->path, st->lineno, e);
		goto out;
	}
	/*
	 * The writer's bytes are jansson's compact sorted dump; any other
	 * spelling of the same JSON is an edit the hashes might not see
	 * (the last checkpoint's fields outside its signed note).
	 */
	canon = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
	if (!canon || strlen(canon) != len || memcmp(canon, line, len)) {
		ret = finding(st->r, AG_AUDIT_MALFORMED, e,
			      "%s:%" PRIu64 ": record %" PRIu64
			      " is not in the writer's canonical form (modified record)",
			      st->path, st->lineno, e);
		goto out;
	}
	seq = (uint64_t)json_integer_value(jseq);
	if (seq > e) {
		ret = finding(st->r, AG_AUDIT_SEQ, e,
			      "%s:%" PRIu64 ": expected record %" PRIu64 ", found %" PRIu64
			      ": records %" PRIu64 "..%" PRIu64 " deleted or reordered",
			      st->path, st->lineno, e, seq, e, seq - 1);
		goto out;
	}
	if (seq < e && st->seen) {
		ret = duplicate(st, line, len, seq);
		if (ret > 0)
			ret = 0;
		goto out;
	}
	if (seq < e) {
		ret = finding(st->r, AG_AUDIT_SEQ, seq,
			      "%s:%" PRIu64 ": expected record %" PRIu64 ", found %" PRIu64
			      " again: record inserted or reordered",
			      st->path, st->lineno, e, seq);
		goto out;
	}
	if (!e && memcmp(prev, zero, sizeof(zero))) {
		ret = finding(st->r, AG_AUDIT_CHAIN, 0,
			      "%s:%" PRIu64 ": record 0 does not start a log (prev is not zero)",
			      st->path, st->lineno);
		goto out;
	}
	if (e && memcmp(prev, st->prev, sizeof(prev))) {
		ret = finding(st->r, AG_AUDIT_CHAIN, e - 1,
			      "%s:%" PRIu64 ": prev of record %" PRIu64
			      " is not the hash of record %" PRIu64 ": record %" PRIu64
			      " was modified",
			      st->path, st->lineno, e, e - 1, e - 1);
		goto out;
	}
	ret = check_witness(st);
	if (!ret && !strcmp(kind, "checkpoint"))
		ret = check_checkpoint(st, obj, seq);
	else if (!ret)
		tail_ts(st, &ts);
	if (ret)
		goto out;
	ag_audit_line_hash(line, len, st->prev);
	if (st->seen) {
		st->seen[e % AG_AUDIT_DEDUPE_WINDOW].seq = e;
		memcpy(st->seen[e % AG_AUDIT_DEDUPE_WINDOW].hash, st->prev, AG_AUDIT_HASH_LEN);
	}
	ag_audit_leaf_hash(line, len, leaf);
	ag_audit_tree_append(&st->tree, leaf);
	st->next++;
	st->r->records++;
out:
	free(canon);
	json_decref(obj);
	return ret;
}

static int verify_file(struct vstate *st, const char *path)
{
	struct ag_audit_reader *rd;
	struct ag_err err;
	const char *line;
	size_t len;
	bool torn;
	int ret;

	st->path = path;
	st->lineno = 0;
	ret = ag_audit_reader_open(path, &rd, &err);
	if (ret) {
		finding(st->r, AG_AUDIT_IO, st->next, "%s", err.msg);
		return ret;
	}
	while ((ret = ag_audit_reader_next(rd, &line, &len, &torn, &err)) == 1) {
		st->lineno++;
		if (torn) {
			ret = finding(st->r, AG_AUDIT_MALFORMED, st->next,
				      "%s:%" PRIu64 ": record %" PRIu64
				      " has no newline (torn write or truncated file)",
				      path, st->lineno, st->next);
			break;
		}
		ret = check_line(st, line, len);
		if (ret)
			break;
	}
	if (ret == -E2BIG)
		ret = finding(st->r, AG_AUDIT_MALFORMED, st->next, "%s", err.msg);
	else if (ret < 0 && ret != -EBADMSG)
		finding(st->r, AG_AUDIT_IO, st->next, "%s", err.msg);
	ag_audit_reader_close(rd);
	return ret;
}

static int cmp_wit(const void *a, const void *b)
{
	const struct witness_cp *x = a, *y = b;

	return x->size < y->size ? -1 : x->size > y->size;
}

/* Collects the witnesses' checkpoints that verify under the key. */
static int load_witnesses(struct vstate *st)
{
	size_t cap = 0;

	for (size_t f = 0; f < st->o->nwitness; f++) {
		struct ag_audit_reader *rd;
		struct ag_err err;
		const char *line;
		size_t len;
		bool torn;
		int ret = ag_audit_reader_open(st->o->witness[f], &rd, &err);

		if (ret) {
			finding(st->r, AG_AUDIT_IO, 0, "witness %s", err.msg);
			return ret;
		}
		while ((ret = ag_audit_reader_next(rd, &line, &len, &torn, &err)) == 1) {
			json_t *obj = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
			json_t *note = json_object_get(obj, "note");
			const char *kind = json_string_value(json_object_get(obj, "kind"));
			struct ag_audit_checkpoint cp;

			if (kind && !strcmp(kind, "checkpoint") && json_is_string(note) &&
			    ag_audit_note_open(json_string_value(note), json_string_length(note),
					       st->o->pubkey, &cp, NULL) == AG_AUDIT_NOTE_OK) {
				if (ag_grow(&st->wit, &cap, st->nwit + 1, sizeof(*st->wit), 64,
					    0)) {
					json_decref(obj);
					ret = -ENOMEM;
					snprintf(err.msg, sizeof(err.msg), "%s: out of memory",
						 st->o->witness[f]);
					break;
				}
				st->wit[st->nwit].size = cp.size;
				memcpy(st->wit[st->nwit].root, cp.root, AG_AUDIT_HASH_LEN);
				st->wit[st->nwit++].file = f;
			}
			json_decref(obj);
		}
		ag_audit_reader_close(rd);
		if (ret < 0 && ret != -E2BIG) {
			finding(st->r, AG_AUDIT_IO, 0, "witness %s", err.msg);
			return ret;
		}
	}
	if (st->nwit)
		qsort(st->wit, st->nwit, sizeof(*st->wit), cmp_wit);
	/* Two witnesses disagreeing with each other is a fork on its own. */
	for (size_t i = 1; i < st->nwit; i++)
		if (st->wit[i].size == st->wit[i - 1].size &&
		    memcmp(st->wit[i].root, st->wit[i - 1].root, AG_AUDIT_HASH_LEN))
			return finding(st->r, AG_AUDIT_FORK, st->wit[i].size,
				       "fork: %s and %s sign different trees of %" PRIu64
				       " records",
				       st->o->witness[st->wit[i - 1].file],
				       st->o->witness[st->wit[i].file], st->wit[i].size);
	return 0;
}

/*
 * An allowed unsigned tail must fit in one checkpoint interval: an honest
 * writer signs before its tail holds more records or spans more time, so a
 * longer tail (or a whole log without a checkpoint) was written without the
 * key.  log names the log in the finding.
 */
static int check_tail(const struct vstate *st, const char *log)
{
	const struct timespec *a = &st->tail_min, *b = &st->tail_max;
	struct timespec end = *a;
	uint64_t ms = AG_AUDIT_INTERVAL_MS + AG_AUDIT_TAIL_SLACK_MS;
	char where[64] = "in a log without a checkpoint";
	double span;

	if (st->last_cp)
		snprintf(where, sizeof(where), "after the last checkpoint (seq %" PRIu64 ")",
			 st->last_cp - 1);
	/* Fail closed: more records than one interval cannot be an honest tail. */
	if (st->r->unsigned_tail > AG_AUDIT_INTERVAL_RECORDS)
		return finding(st->r, AG_AUDIT_UNSIGNED_TAIL, st->last_cp,
			       "%s: %" PRIu64 " records %s: more than one checkpoint interval "
			       "(%u records / %u s)",
			       log, st->r->unsigned_tail, where, AG_AUDIT_INTERVAL_RECORDS,
			       AG_AUDIT_INTERVAL_MS / 1000);
	ag_audit_ts_add_us(&end, ms * 1000);
	span = (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
	/* Fail closed: nor can records further apart than one interval. */
	if (!ag_audit_ts_reached(&end, b))
		return finding(st->r, AG_AUDIT_UNSIGNED_TAIL, st->last_cp,
			       "%s: %" PRIu64 " records %s span %.3f s: more than one checkpoint "
			       "interval (%u records / %u s, plus %u ms slack)",
			       log, st->r->unsigned_tail, where, span, AG_AUDIT_INTERVAL_RECORDS,
			       AG_AUDIT_INTERVAL_MS / 1000, AG_AUDIT_TAIL_SLACK_MS);
	return 0;
}

int ag_audit_verify(const char *const *paths, size_t npaths, const struct ag_audit_verify_opts *o,
		    struct ag_audit_verify_result *r)
{
	static const struct ag_audit_verify_opts none;
	struct vstate st = { .o = o ? o : &none, .r = r };
	int ret = 0;

	memset(r, 0, sizeof(*r));
	ag_audit_tree_init(&st.tree);
	if (!npaths) {
		ret = finding(r, AG_AUDIT_IO, 0, "no log file given");
		goto out;
	}
	if (st.o->collected && !(st.seen = calloc(AG_AUDIT_DEDUPE_WINDOW, sizeof(*st.seen)))) {
		ret = finding(r, AG_AUDIT_IO, 0, "out of memory");
		goto out;
	}
	ret = load_witnesses(&st);
	for (size_t i = 0; !ret && i < npaths; i++)
		ret = verify_file(&st, paths[i]);
	if (!ret)
		ret = check_witness(&st);
	if (ret)
		goto out;
	if (st.wi < st.nwit) {
		ret = finding(r, AG_AUDIT_TRUNCATED, st.next,
			      "truncated: %s has a signed checkpoint of %" PRIu64
			      " records, this log has %" PRIu64,
			      st.o->witness[st.wit[st.nwit - 1].file], st.wit[st.nwit - 1].size,
			      st.next);
		goto out;
	}
	if (!st.next) {
		ret = finding(r, AG_AUDIT_TRUNCATED, 0, "%s: the log has no records", paths[0]);
		goto out;
	}
	r->unsigned_tail = st.next - st.last_cp;
	if (r->unsigned_tail && !st.o->allow_unsigned_tail) {
		ret = finding(r, AG_AUDIT_UNSIGNED_TAIL, st.last_cp,
			      "%" PRIu64 " records after the last checkpoint (%" PRIu64 "..%" PRIu64
			      ") are unsigned: the log was truncated or its writer did not close",
			      r->unsigned_tail, st.last_cp, st.next - 1);
		goto out;
	}
	if (r->unsigned_tail) {
		ret = check_tail(&st, paths[0]);
		if (ret)
			goto out;
	}
	snprintf(r->reason, sizeof(r->reason),
		 "%" PRIu64 " records, %" PRIu64 " checkpoints%s, %" PRIu64 " unsigned at the end",
		 r->records, r->checkpoints,
		 st.o->pubkey ? " (signatures verified)" : " (signatures not checked: no key)",
		 r->unsigned_tail);
	if (st.seen) {
		size_t n = strlen(r->reason);

		snprintf(r->reason + n, sizeof(r->reason) - n, ", %" PRIu64 " duplicates skipped",
			 r->duplicates);
	}
out:
	free(st.seen);
	free(st.wit);
	return ret;
}
