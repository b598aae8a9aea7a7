/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The audit writer's private header: the writer and its queue entries,
 * shared by audit_writer.c (queue, serialisation, committer thread) and
 * audit_open.c (recovery at open, close).
 */
#ifndef AG_AUDIT_WRITER_INT_H
#define AG_AUDIT_WRITER_INT_H
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

#define CP_SLACK 64 /* queue room kept for checkpoints beyond queue_max */
#define RESERVED 4
/* Written bytes that make an fdatasync due at once (AG_AUDIT_WRITTEN). */
#define AW_SETTLE_BYTES (1u << 20)

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

/* The writer's state at a checkpoint or a clean close (audit_resume.c). */
struct ag_audit_resume {
	uint64_t segment, offset; /* the log's end: segment number, bytes in it */
	uint64_t count;		  /* records before it */
	uint8_t prev[AG_AUDIT_HASH_LEN];
	struct ag_audit_tree tree;
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
	uint64_t next_seq, written, durable, since_cp;
	bool sync_wanted;		   /* ag_audit_wait() waits for a sync */
	struct timespec first_unsigned;	   /* CLOCK_MONOTONIC */
	struct timespec first_unsigned_ts; /* its ts, CLOCK_REALTIME */
	bool failed, stop;
	/*
	 * One thread at a time writes: the committer, or an appender that
	 * found it idle (write_inline).  The "Committer only" fields below
	 * belong to whoever set busy.  handoff: an appender's write failed
	 * and its n records (in batch; in buf if handoff_in_buf) are the
	 * committer's to retry, busy staying set.
	 */
	bool busy, handoff_in_buf;
	bool idle_busy; /* the committer found busy set: the writer's release wakes it */
	size_t handoff;
	char failmsg[sizeof(((struct ag_err *)0)->msg)];

	/* Committer only (the holder of busy). */
	int fd;
	char *cur_path;
	uint64_t segment, file_off;
	bool rotate_pending;
	uint64_t unwritten; /* records given up on at close while failed */
	uint8_t prev[AG_AUDIT_HASH_LEN], saved_prev[AG_AUDIT_HASH_LEN];
	struct ag_audit_tree tree, saved_tree;
	struct entry *batch;
	/*
	 * The bytes past file_off (the durable end of the file): written up
	 * to buf_written, not yet synced, kept so a failed fdatasync can
	 * rewrite them; buf_seq is the seq after the last record in buf,
	 * buf_since when buf stopped being empty (CLOCK_MONOTONIC).
	 */
	char *buf;
	size_t buf_len, buf_cap, buf_written;
	uint64_t buf_seq, synced_seq; /* synced_seq: after the last record synced */
	struct timespec buf_since;
	uint64_t recovered, recovered_read; /* records at open; those it read (not resumed) */
	/*
	 * The resume state (audit_resume.c) as of the last checkpoint in
	 * w->buf, which ends cp_end bytes into it: saved once that is
	 * durable (cp_ready; segment and offset filled in then), so a crash
	 * makes the next open read only what came after it.
	 */
	struct ag_audit_resume cp;
	size_t cp_end;
	bool cp_due, cp_ready;
};

void aw_warn(const struct ag_audit_writer *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int aw_open_segment(struct ag_audit_writer *w, const char *path, bool create, struct ag_err *err);
void *aw_committer(void *arg);

/* audit_writer.c, for audit_writer_commit.c */
/* Wakes those waiting for written, durable, failed (cv and eventfd); under mu. */
void aw_notify(struct ag_audit_writer *w);
bool aw_push_checkpoint_locked(struct ag_audit_writer *w, const struct timespec *ts, uint64_t *seq);
/* Serialises w->batch[0..n) after w->buf, freeing their bodies; or changes nothing. */
int aw_prepare(struct ag_audit_writer *w, size_t n, struct ag_err *err);

/* audit_writer_commit.c, for audit_writer.c (under mu) */
bool aw_rotate_due_locked(const struct ag_audit_writer *w);
size_t aw_take_locked(struct ag_audit_writer *w);
/* Writes the n records aw_take_locked gave, busy held; releases busy. */
void aw_write_inline(struct ag_audit_writer *w, size_t n, bool wake);

/* ---- lib/audit_resume.c: the state a checkpoint or a clean close leaves for the next open */

int ag_audit_resume_save(const struct ag_audit_resume *rs, const char *base, struct ag_err *err);
/* 0, or -errno when there is none or it does not parse. */
int ag_audit_resume_load(const char *base, struct ag_audit_resume *rs);
void ag_audit_resume_remove(const char *base);
/* The line that ends at off in path (its newline not included), malloc'd. */
int ag_audit_resume_last_line(const char *path, uint64_t off, char **buf, size_t *len);

#endif
