/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Tamper-evident audit log: JSON Lines records chained by SHA-256, an
 * RFC 6962 Merkle tree over every record, Ed25519-signed checkpoints in the
 * C2SP signed-note format, a group-committing writer that fails closed, size
 * rotation and an offline verifier.  The format is specified in docs/audit.md.
 *
 * Every function that can fail returns 0 or a negative errno and, when err is
 * not NULL, fills err->msg with one line naming the object and the cause.
 */
#ifndef AG_AUDIT_H
#define AG_AUDIT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "util.h"

#define AG_AUDIT_HASH_LEN 32
#define AG_AUDIT_HEX_LEN 64
/* A record longer than this is refused by the writer and the verifier. */
#define AG_AUDIT_MAX_LINE (1u << 20)
#define AG_AUDIT_DEFAULT_ORIGIN "agentgate"
/*
 * The longest checkpoint interval a writer accepts (checkpoint_records,
 * checkpoint_ms).  A writer's own interval is not signed anywhere, so the
 * verifier bounds an unsigned tail by these: an honest writer's tail never
 * holds more records, nor spans more time, than one interval.
 */
#define AG_AUDIT_INTERVAL_RECORDS 4096u
#define AG_AUDIT_INTERVAL_MS 60000u
/*
 * Time a tail may span beyond AG_AUDIT_INTERVAL_MS: writers before the tail
 * bound checked the time only in their committer, up to one commit late.
 */
#define AG_AUDIT_TAIL_SLACK_MS 1000u

/* ---- Records ---------------------------------------------------------- */

/*
 * The event kinds of docs/audit.md: returns the library's static copy of
 * kind, or NULL if it is not one (the writer refuses other kinds).
 */
const char *ag_audit_kind_name(const char *kind);

enum ag_audit_redact {
	AG_AUDIT_REDACT_FULL,
	AG_AUDIT_REDACT_HASH, /* each argument value -> {"sha256": hex} */
	AG_AUDIT_REDACT_DROP, /* the arguments member is removed */
};

int ag_audit_redact_parse(const char *name, enum ag_audit_redact *mode);
/*
 * Applies mode to fields[key] in place.  An object has each member value
 * hashed (the names stay readable); any other JSON value is hashed whole.
 */
int ag_audit_redact(json_t *fields, const char *key, enum ag_audit_redact mode, struct ag_err *err);

/* RFC 3339 UTC with nanoseconds: "2026-11-22T04:05:06.123456789Z". */
#define AG_AUDIT_TS_LEN 31
void ag_audit_format_ts(const struct timespec *ts, char out[AG_AUDIT_TS_LEN]);
int ag_audit_parse_ts(const char *s, struct timespec *ts);
/* Time arithmetic for the writer's deadlines and the checkpoint interval. */
void ag_audit_ts_add_us(struct timespec *t, uint64_t us);
bool ag_audit_ts_reached(const struct timespec *now, const struct timespec *t);

/* ---- Hashes and the Merkle tree --------------------------------------- */

void ag_audit_line_hash(const void *line, size_t len, uint8_t out[AG_AUDIT_HASH_LEN]);
void ag_audit_leaf_hash(const void *line, size_t len, uint8_t out[AG_AUDIT_HASH_LEN]);
void ag_audit_hex(const uint8_t h[AG_AUDIT_HASH_LEN], char out[AG_AUDIT_HEX_LEN + 1]);
int ag_audit_unhex(const char *s, uint8_t out[AG_AUDIT_HASH_LEN]);

/*
 * RFC 6962 tree kept as its compact range: the roots of the perfect subtrees
 * that the binary digits of size describe, largest first.
 */
struct ag_audit_tree {
	uint64_t size;
	uint8_t node[64][AG_AUDIT_HASH_LEN];
};

void ag_audit_tree_init(struct ag_audit_tree *t);
void ag_audit_tree_append(struct ag_audit_tree *t, const uint8_t leaf[AG_AUDIT_HASH_LEN]);
void ag_audit_tree_root(const struct ag_audit_tree *t, uint8_t root[AG_AUDIT_HASH_LEN]);

/* ---- Keys and signed notes -------------------------------------------- */

struct ag_audit_key;

/*
 * Loads the Ed25519 private key in PEM at path, creating it with mode 0600 if
 * create is set and it does not exist.  A key file with any group or other
 * permission bit is refused.
 */
int ag_audit_key_open(const char *path, bool create, struct ag_audit_key **key, struct ag_err *err);
/* A verifier key: a PEM public key, a PEM private key or a C2SP vkey line. */
int ag_audit_pubkey_load(const char *path, struct ag_audit_key **key, struct ag_err *err);
void ag_audit_key_free(struct ag_audit_key *key);
/* The public key as PEM; the caller frees it. */
char *ag_audit_key_pem(const struct ag_audit_key *key);
/* "<name>+<hex key id>+<base64(0x01 || public key)>"; the caller frees it. */
char *ag_audit_key_vkey(const struct ag_audit_key *key, const char *name);

/* text must end in '\n'; *note gets text, a blank line and one signature line. */
int ag_audit_note_sign(const struct ag_audit_key *key, const char *name, const char *text,
		       char **note, struct ag_err *err);

struct ag_audit_checkpoint {
	char origin[256];
	uint64_t size;
	uint8_t root[AG_AUDIT_HASH_LEN];
};

enum ag_audit_note_status {
	AG_AUDIT_NOTE_OK,
	AG_AUDIT_NOTE_MALFORMED,
	AG_AUDIT_NOTE_OTHER_KEY, /* no signature by this key (name + key id) */
	AG_AUDIT_NOTE_BAD_SIG,
};

/*
 * Parses a checkpoint note; with key set, also requires a valid signature by
 * key under the origin's name.  Safe on hostile input.
 */
enum ag_audit_note_status ag_audit_note_open(const char *note, size_t len,
					     const struct ag_audit_key *key,
					     struct ag_audit_checkpoint *cp, struct ag_err *err);

/* ---- Rotated files ----------------------------------------------------- */

/*
 * A log is the series base, base.1, base.2, ... in that order.  Lists the
 * files that exist (base alone if none do), in order; free with
 * ag_audit_series_free().
 */
int ag_audit_series(const char *base, char ***paths, size_t *n, struct ag_err *err);
void ag_audit_series_free(char **paths, size_t n);

/* ---- Syslog mirror ----------------------------------------------------- */

struct ag_audit_syslog;

/* RFC 5424 over a unix datagram socket (default /dev/log); best effort. */
struct ag_audit_syslog *ag_audit_syslog_open(const char *path, const char *app);
void ag_audit_syslog_send(struct ag_audit_syslog *s, const char *line, size_t len);
void ag_audit_syslog_close(struct ag_audit_syslog *s);

/* ---- Writer ------------------------------------------------------------ */

/*
 * What a record's "written" and "durable" mean for callers, per mode (the
 * daemon's promises under crash and power loss are in docs/audit.md):
 * written: pwrite(2) done, in the page cache, survives a kill -9 of the
 * process; durable: fdatasync(2) done, survives a kernel crash or power loss.
 */
enum ag_audit_durability {
	AG_AUDIT_SYNC,	  /* fdatasync as soon as written; callers wait for durable */
	AG_AUDIT_WRITTEN, /* written at once, fdatasync within sync_ms */
	AG_AUDIT_NONE,	  /* written at once, never fdatasync (the kernel's writeback) */
	AG_AUDIT_STRICT,  /* fdatasync as soon as written, as SYNC; callers wait differently */
};

/* "sync", "written", "none", "strict": the configuration's and the status's spelling. */
const char *ag_audit_durability_name(enum ag_audit_durability d);
/* The durability spelled s, or -1. */
int ag_audit_durability_parse(const char *s);

struct ag_audit_config {
	const char *path;     /* the series base, e.g. /var/log/agentgate/audit.log */
	const char *key_path; /* Ed25519 PEM, created 0600 on first use */
	const char *origin;   /* checkpoint origin and key name */
	enum ag_audit_durability durability;
	unsigned int batch_max; /* the least write_max may be, default 64 */
	/* AG_AUDIT_WRITTEN: longest a written record waits for fdatasync, default 100. */
	unsigned int sync_ms;
	/*
	 * Most records one write takes, default 4096: records that queued
	 * during the previous write + fdatasync join the next one together.
	 * batch_max..65536; 0 means batch_max.
	 */
	unsigned int write_max;
	unsigned int checkpoint_records; /* default 4096, at most AG_AUDIT_INTERVAL_RECORDS */
	unsigned int checkpoint_ms;	 /* default 1000, at most AG_AUDIT_INTERVAL_MS */
	unsigned int queue_max;		 /* accepted, not yet written; default 65536 */
	unsigned int retry_ms;		 /* retry period while failed, default 100 */
	uint64_t rotate_bytes;		 /* 0: never rotate */
	const char *syslog_path;	 /* NULL: no mirror */
	/*
	 * Warnings (torn tail truncated, failed, recovered); NULL: stderr.
	 * Called from the committer thread, never with the writer's lock held.
	 */
	void (*warn)(void *ctx, const char *msg);
	void *warn_ctx;
};

struct ag_audit_writer;

void ag_audit_config_init(struct ag_audit_config *c);
/* Opens or creates the log, truncates a torn last line, continues the chain. */
int ag_audit_open(const struct ag_audit_config *c, struct ag_audit_writer **w, struct ag_err *err);
/*
 * Appends one record.  fields is the event body (an object, not modified,
 * serialised before return); it must not set seq, ts, kind or prev, hold
 * a NUL in a string, a string that is not UTF-8 or nest past the parser's
 * limit of 2048 (-EINVAL); at most about 1 MiB (-E2BIG).  *seq receives
 * the record's sequence number.  Thread-safe.  Refused with -EIO while the
 * writer is failed and with -ENOBUFS while queue_max records wait.
 */
int ag_audit_append(struct ag_audit_writer *w, const char *kind, const json_t *fields,
		    uint64_t *seq, struct ag_err *err);

/*
 * A record built straight from its members (audit_canon.c), for the
 * records of every call: serialised into the log's canonical form with no
 * jansson tree, byte for byte what ag_audit_members_json() + ag_audit_canon
 * give.  Members come in any order; an object names a key once and has at
 * most AG_AUDIT_MEMBERS_MAX members.
 */
#define AG_AUDIT_MEMBERS_MAX 32

enum ag_audit_mtype {
	AG_AM_STR,  /* s: a UTF-8 string; NULL: null (json_pack's "s?") */
	AG_AM_INT,  /* i */
	AG_AM_BOOL, /* b */
	AG_AM_JSON, /* j: a value that exists already (NULL: null), redacted as redact says */
	AG_AM_OBJ,  /* obj[n]: an object of members */
	AG_AM_STRV, /* strv[n]: an array of strings */
	AG_AM_CSV,  /* s: "a,b" as ["a","b"] */
};

struct ag_audit_member {
	const char *key;
	enum ag_audit_mtype type;
	enum ag_audit_redact redact; /* AG_AM_JSON: ag_audit_redact's modes (drop: absent) */
	size_t n;
	union {
		const char *s;
		long long i;
		bool b;
		const json_t *j;
		const struct ag_audit_member *obj;
		const char *const *strv;
	};
};

#define AG_AM_S(k, v) ((struct ag_audit_member){ .key = (k), .type = AG_AM_STR, .s = (v) })
#define AG_AM_I(k, v) ((struct ag_audit_member){ .key = (k), .type = AG_AM_INT, .i = (v) })
#define AG_AM_B(k, v) ((struct ag_audit_member){ .key = (k), .type = AG_AM_BOOL, .b = (v) })
#define AG_AM_J(k, v) ((struct ag_audit_member){ .key = (k), .type = AG_AM_JSON, .j = (v) })

/*
 * A caller's buffer for records, reused from one to the next: it grows to
 * the longest (at most AG_AUDIT_MAX_LINE) and keeps up to
 * AG_AUDIT_BUF_KEEP bytes between records.
 */
#define AG_AUDIT_BUF_KEEP (64u << 10)
struct ag_audit_buf {
	char *b;
	size_t len, cap;
	bool nul; /* a string held U+0000 */
};

/* Frees what a buffer holds beyond AG_AUDIT_BUF_KEEP; ag_audit_buf_free all of it. */
void ag_audit_buf_trim(struct ag_audit_buf *b);
void ag_audit_buf_free(struct ag_audit_buf *b);
/*
 * When an appended record goes to the file.  NOW: as ag_audit_append (the
 * appender writes the queue itself if nobody is writing).  LATER: it waits
 * in the queue for the next write, an appender's or the committer's, or
 * for ag_audit_flush, so that the records of one event-loop turn share
 * one pwrite: a caller that waits for one (a decision) calls the flush
 * itself before it looks at ag_audit_written().
 */
enum ag_audit_when { AG_AUDIT_NOW, AG_AUDIT_LATER };
/* As ag_audit_append, fields given as members; scratch: the caller's buffer. */
int ag_audit_append_members(struct ag_audit_writer *w, const char *kind,
			    const struct ag_audit_member *m, size_t n, struct ag_audit_buf *scratch,
			    enum ag_audit_when when, uint64_t *seq, struct ag_err *err);
/*
 * Writes what waits in the queue if nobody is writing (AG_AUDIT_LATER
 * records).  What it writes does not signal ag_audit_event_fd: the caller
 * looks at ag_audit_written() for the calls it holds (a busy writer's or a
 * failure's progress still signals it).
 */
void ag_audit_flush(struct ag_audit_writer *w);
/* The member named key (a dropped one is absent), NULL if none. */
const struct ag_audit_member *ag_audit_member_get(const struct ag_audit_member *m, size_t n,
						  const char *key);
/* The same record as a tree (for the records kept in one, and tests); NULL: no memory. */
json_t *ag_audit_members_json(const struct ag_audit_member *m, size_t n);
/*
 * Blocks until record seq is durable (0); under AG_AUDIT_WRITTEN it asks
 * for an fdatasync now rather than at the end of sync_ms; under
 * AG_AUDIT_NONE, written is all there is.  Returns -EIO at once while the
 * writer is failed: refuse the governed call (the record itself is written
 * if the writer recovers, see docs/audit.md).
 */
int ag_audit_wait(struct ag_audit_writer *w, uint64_t seq, struct ag_err *err);
/* Records with seq < ag_audit_durable() are durable. */
uint64_t ag_audit_durable(struct ag_audit_writer *w);
/* Records with seq < ag_audit_written() are written (in the file, maybe not synced). */
uint64_t ag_audit_written(struct ag_audit_writer *w);
/*
 * An eventfd (non-blocking) that becomes readable when durability advances
 * (and, but for AG_AUDIT_SYNC, when records are written, not by
 * ag_audit_flush) or the writer fails
 * or recovers; read it to re-arm, then ask ag_audit_durable(),
 * ag_audit_written() and ag_audit_failed().
 */
int ag_audit_event_fd(struct ag_audit_writer *w);
/* True while failed; why gets the error. */
bool ag_audit_failed(struct ag_audit_writer *w, struct ag_err *why);
/* Queues a checkpoint now; *seq is its seq, or UINT64_MAX if none was due. */
int ag_audit_checkpoint(struct ag_audit_writer *w, uint64_t *seq, struct ag_err *err);
/*
 * Writes a final checkpoint, flushes, stops the committer and frees w; no
 * other call on w may be in progress.  Returns -EIO if records could not be
 * made durable (a failed writer gets one last attempt).
 */
int ag_audit_close(struct ag_audit_writer *w, struct ag_err *err);
/*
 * What open found: the records in the log, and how many of them it read;
 * the others were taken from the state the last clean close saved
 * (<log>-resume), so a restart reads only the tail.
 */
void ag_audit_recovery(const struct ag_audit_writer *w, uint64_t *records, uint64_t *read);

/* ---- Verifier ---------------------------------------------------------- */

enum ag_audit_finding {
	AG_AUDIT_CLEAN,
	AG_AUDIT_IO,		/* a file could not be read */
	AG_AUDIT_MALFORMED,	/* not a record: bad JSON, missing field, torn line */
	AG_AUDIT_SEQ,		/* deleted, inserted or reordered record */
	AG_AUDIT_CHAIN,		/* prev does not hash the previous line: modified */
	AG_AUDIT_ROOT,		/* checkpoint size or root differs from the records */
	AG_AUDIT_OTHER_KEY,	/* checkpoint not signed by the given key */
	AG_AUDIT_BAD_SIG,	/* checkpoint signature invalid */
	AG_AUDIT_UNSIGNED_TAIL, /* records after the last checkpoint */
	AG_AUDIT_FORK,		/* a witness checkpoint has another root */
	AG_AUDIT_TRUNCATED,	/* a witness checkpoint covers more records */
};

struct ag_audit_verify_opts {
	const struct ag_audit_key *pubkey; /* NULL: signatures not checked */
	const char *const *witness;	   /* other logs' checkpoints to compare */
	size_t nwitness;
	/*
	 * A live log: accept records after the last checkpoint (or a log
	 * without one) if they fit in one checkpoint interval, at most
	 * AG_AUDIT_INTERVAL_RECORDS records within AG_AUDIT_INTERVAL_MS +
	 * AG_AUDIT_TAIL_SLACK_MS; a longer tail is still UNSIGNED_TAIL.
	 */
	bool allow_unsigned_tail;
	/*
	 * A collector's file (docs/audit.md "Shipping"): a record may come
	 * again, shipped twice; a copy byte-identical to the record of its seq
	 * (among the last AG_AUDIT_DEDUPE_WINDOW) is skipped and counted.
	 */
	bool collected;
};

#define AG_AUDIT_DEDUPE_WINDOW 65536u

struct ag_audit_verify_result {
	enum ag_audit_finding finding;
	uint64_t seq;	      /* the first bad record */
	uint64_t records;     /* records read */
	uint64_t checkpoints; /* checkpoints verified */
	uint64_t signed_size; /* tree size of the last checkpoint */
	uint64_t unsigned_tail;
	uint64_t duplicates; /* copies skipped (collected) */
	char reason[768];
};

const char *ag_audit_finding_name(enum ag_audit_finding f);
/*
 * Verifies the files in order as one log.  Returns 0 if clean, -EBADMSG for a
 * finding and another negative errno if a file cannot be read; r says which.
 */
int ag_audit_verify(const char *const *paths, size_t npaths, const struct ag_audit_verify_opts *o,
		    struct ag_audit_verify_result *r);

/* ---- Internal to lib/audit_*.c ----------------------------------------- */

struct ag_audit_text {
	char *text; /* NUL-terminated; the caller frees it */
	size_t len;
	bool nul; /* a string held U+0000 (written as \u0000) */
};

/*
 * v in the log's canonical form: exactly json_dumps(v, JSON_COMPACT |
 * JSON_SORT_KEYS | JSON_ENCODE_ANY).  With names (nnames sorted member
 * names, none present in the object v), at[i] gets the offset where a member
 * named names[i] belongs: the start of the first member sorting after it, or
 * the closing brace.  -E2BIG past max bytes, -EILSEQ for a string that is
 * not UTF-8, -ELOOP past the parser's nesting limit (or a cycle).
 */
int ag_audit_canon(const json_t *v, size_t max, const char *const *names, size_t nnames,
		   uint32_t *at, struct ag_audit_text *out);
/*
 * The members' object into out (overwritten), as ag_audit_canon; a member
 * named like one of names is -EEXIST, a key given twice -EINVAL.
 */
int ag_audit_canon_members(struct ag_audit_buf *out, size_t max, const struct ag_audit_member *m,
			   size_t n, const char *const *names, size_t nnames, uint32_t *at);
/*
 * v compact with each object's members in their order: exactly
 * json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY), with the same serialiser
 * and errors as ag_audit_canon: what the MCP path forwards (mcp_request.c).
 */
int ag_json_compact(const json_t *v, size_t max, struct ag_audit_text *out);
/* The hex SHA-256 of v's canonical form (ag_audit_redact's hash mode); -errno as ag_audit_canon. */
int ag_audit_canon_hash(const json_t *v, char hex[AG_AUDIT_HEX_LEN + 1]);

/* A warning through fn(ctx) (a configuration's warn), or to stderr without one. */
void ag_audit_vwarn(void (*fn)(void *ctx, const char *msg), void *ctx, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Writes v in decimal just before end (no NUL); returns its first digit. */
char *ag_audit_u64(uint64_t v, char *end);

/* A log followed as it grows, whole lines only (audit_tail.c). */
struct ag_audit_tail {
	const char *base; /* the series base; seg 0 is base, seg N base.N */
	int fd;
	uint64_t seg, off; /* where buf[start] is */
	uint64_t seq;	   /* the next line's record number */
	char *buf;
	size_t cap, start, end;
};

int ag_audit_tail_init(struct ag_audit_tail *t, const char *base);
void ag_audit_tail_fini(struct ag_audit_tail *t);
/* Puts the reader at seg:off, the start of record seq. */
int ag_audit_tail_seek(struct ag_audit_tail *t, uint64_t seg, uint64_t off, uint64_t seq,
		       struct ag_err *err);
/*
 * The next whole line: 1 (*line, *len without '\n', *seg and *off where it
 * starts), 0 none yet, <0 an error (a rotated file ending in a partial line).
 */
int ag_audit_tail_next(struct ag_audit_tail *t, const char **line, size_t *len, uint64_t *seg,
		       uint64_t *off, struct ag_err *err);

/* Reads one line of at most max bytes; see audit_files.c. */
struct ag_audit_reader;
int ag_audit_reader_open(const char *path, struct ag_audit_reader **r, struct ag_err *err);
/* 1: a line (without '\n', *torn set if the file ended without one), 0: EOF. */
int ag_audit_reader_next(struct ag_audit_reader *r, const char **line, size_t *len, bool *torn,
			 struct ag_err *err);
uint64_t ag_audit_reader_offset(const struct ag_audit_reader *r);
/* Reads on from off, a line's start. */
int ag_audit_reader_seek(struct ag_audit_reader *r, uint64_t off, struct ag_err *err);
void ag_audit_reader_close(struct ag_audit_reader *r);

#endif /* AG_AUDIT_H */
