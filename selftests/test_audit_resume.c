// SPDX-License-Identifier: GPL-2.0
/*
 * The writer's resume state (lib/audit_resume.c): a clean close lets the
 * next open read only what comes after it; a crash after it, a rotated
 * log, a stale or tampered state file all stay correct (the verifier reads
 * the whole series and must find it clean).
 */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audit.h"
#include "audit_writer_int.h"
#include "fileio.h"
#include "test.h"

struct rfx {
	char dir[64], log[128], key[128], resume[160];
};

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	return remove(path);
}

static void config(struct ag_audit_config *c, const struct rfx *f, uint64_t rotate_bytes)
{
	ag_audit_config_init(c);
	c->path = f->log;
	c->key_path = f->key;
	c->checkpoint_records = 16;
	c->rotate_bytes = rotate_bytes;
}

/* Opens the log, says what recovery read, appends n records, and closes (or not: a crash). */
static bool session(const struct rfx *f, unsigned int n, uint64_t rotate_bytes, bool crash,
		    uint64_t *records, uint64_t *read)
{
	struct ag_audit_config c;
	struct ag_audit_writer *w;
	struct ag_err err;
	uint64_t seq = 0;
	bool ok = true;

	config(&c, f, rotate_bytes);
	if (!ASSERT_OK(ag_audit_open(&c, &w, &err), err.msg))
		return false;
	ag_audit_recovery(w, records, read);
	for (unsigned int i = 0; ok && i < n; i++) {
		json_t *ev = json_pack("{s:s, s:i}", "tool", "t/echo", "n", (int)i);

		ok = ASSERT_OK(ag_audit_append(w, "decision", ev, &seq, &err), err.msg);
		json_decref(ev);
	}
	if (crash) {
		ok = ok && !ag_audit_wait(w, seq, &err);
		/* The committer saves a checkpoint's state just after it is
		 * durable: a long session's crash comes after its last one. */
		for (int i = 0; ok && n > c.checkpoint_records && i < 500; i++) {
			struct ag_audit_resume rs;

			if (!ag_audit_resume_load(f->log, &rs) &&
			    rs.count + c.checkpoint_records + 1 > seq)
				break;
			usleep(10000);
		}
		/* What a kill -9 leaves: durable records, no close. */
		_exit(ok ? 0 : 1);
	}
	return ASSERT_OK(ag_audit_close(w, &err), err.msg) && ok;
}

static bool crashed_session(const struct rfx *f, unsigned int n)
{
	uint64_t records, read;
	int status = -1;
	pid_t pid = fork();

	if (!pid)
		session(f, n, 0, true, &records, &read);
	return ASSERT_GT(pid, 0, "fork") && ASSERT_EQ(waitpid(pid, &status, 0), pid, "waitpid") &&
	       ASSERT_EQ(status, 0, "the crashed writer's records are durable");
}

static bool verify_clean(const struct rfx *f, uint64_t *records)
{
	struct ag_audit_verify_opts o = { 0 };
	struct ag_audit_verify_result r = { 0 };
	struct ag_audit_key *key = NULL;
	struct ag_err err;
	char **paths;
	size_t n;
	int ret;

	if (!ASSERT_OK(ag_audit_pubkey_load(f->key, &key, &err), err.msg) ||
	    !ASSERT_OK(ag_audit_series(f->log, &paths, &n, &err), err.msg)) {
		ag_audit_key_free(key);
		return false;
	}
	o.pubkey = key;
	o.allow_unsigned_tail = true;
	ret = ag_audit_verify((const char *const *)paths, n, &o, &r);
	ag_audit_series_free(paths, n);
	ag_audit_key_free(key);
	*records = r.records;
	return ASSERT_OK(ret, r.reason);
}

TEST(audit_resume)
{
	struct rfx f = { .dir = "/tmp/ag_resume.XXXXXX" };
	uint64_t records = 0, read = 0, total = 0, before = 0;
	char *saved = NULL;
	size_t saved_len = 0;

	if (!ASSERT_OK_PTR(mkdtemp(f.dir), "mkdtemp"))
		return;
	snprintf(f.log, sizeof(f.log), "%s/audit.log", f.dir);
	snprintf(f.key, sizeof(f.key), "%s/audit.key", f.dir);
	snprintf(f.resume, sizeof(f.resume), "%s-resume", f.log);

	if (!session(&f, 40, 0, false, &records, &read))
		goto out;
	ASSERT_EQ(access(f.resume, F_OK), 0, "a clean close leaves the resume state");
	if (!verify_clean(&f, &total) || !session(&f, 5, 0, false, &records, &read))
		goto out;
	ASSERT_EQ(records, total, "resumed: every record counted");
	ASSERT_EQ(read, 0, "a restart after a clean close reads nothing of the log");

	/* A crash after a clean close: only what the crashed daemon wrote is read. */
	if (!verify_clean(&f, &before) || !crashed_session(&f, 9) || !verify_clean(&f, &total) ||
	    !session(&f, 3, 0, false, &records, &read))
		goto out;
	ASSERT_EQ(records, total, "after a crash: every record counted");
	ASSERT_EQ(read, total - before, "after a crash: only the crashed daemon's records read");

	/* A crash long after the clean close: read from its last checkpoint on. */
	if (!verify_clean(&f, &before) || !crashed_session(&f, 200) ||
	    !verify_clean(&f, &total) || !session(&f, 3, 0, false, &records, &read))
		goto out;
	ASSERT_EQ(records, total, "after a long crash: every record counted");
	ASSERT_GT(read, 0, "after a long crash: the tail read");
	ASSERT_LE(read, 17, "after a long crash: at most one checkpoint interval read");

	/* A stale state (another log's, or tampered): the whole series is read. */
	if (!ASSERT_OK(ag_read_file(f.resume, 1 << 20, &saved, &saved_len, NULL), "read state"))
		goto out;
	{
		char *p = strstr(saved, "\"prev\":\"");

		if (ASSERT_OK_PTR(p, "prev in the state"))
			p[8] = p[8] == '0' ? '1' : '0';
	}
	if (!ASSERT_OK(ag_file_write_atomic(f.resume, saved, saved_len, 0600, NULL), "tamper") ||
	    !verify_clean(&f, &total) || !session(&f, 2, 0, false, &records, &read))
		goto out;
	ASSERT_EQ(read, total, "a state whose chain head does not match: all read");

	/* Rotation: the state names a later segment, which is where reading starts. */
	if (!verify_clean(&f, &total) || !session(&f, 200, 8192, false, &records, &read) ||
	    !verify_clean(&f, &before) || !session(&f, 4, 8192, false, &records, &read))
		goto out;
	ASSERT_EQ(records, before, "rotated: every record counted");
	ASSERT_EQ(read, 0, "rotated: nothing read");

	/* The log moved aside: a new log, whatever the state said. */
	{
		char **paths, aside[256];
		struct ag_err err;
		size_t n;

		if (!ASSERT_OK(ag_audit_series(f.log, &paths, &n, &err), err.msg))
			goto out;
		for (size_t i = 0; i < n; i++) {
			snprintf(aside, sizeof(aside), "%s.aside%zu", f.dir, i);
			ASSERT_OK(rename(paths[i], aside), "moved aside");
			unlink(aside);
		}
		ag_audit_series_free(paths, n);
	}
	if (!session(&f, 3, 0, false, &records, &read) || !verify_clean(&f, &total))
		goto out;
	ASSERT_EQ(records, 0, "a new log starts at record 0");
	ASSERT_EQ(total, 4, "three records and the closing checkpoint");
out:
	free(saved);
	nftw(f.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
