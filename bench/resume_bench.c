// SPDX-License-Identifier: GPL-2.0
/*
 * resume_bench: what opening a large audit log costs a restarting daemon,
 * with the state a clean close leaves (<log>-resume: only the tail is read)
 * and without it (the whole series hashed again).
 *
 *	resume_bench [-m MEGABYTES] [-d DIR] [-k]
 *
 * Writes a log of about MEGABYTES (default 150) of decision records in DIR
 * (default /tmp), closes it cleanly, then opens and closes it three times
 * each way and prints the median open time and the records each open read.
 * -k keeps the log, its key and its resume state (a daemon's state directory
 * can take them, to time a whole restart) and prints where.
 */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"
#include "util.h"

#define ROUNDS 3

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	return remove(path);
}

static void config(struct ag_audit_config *c, const char *log, const char *key)
{
	ag_audit_config_init(c);
	c->path = log;
	c->key_path = key;
	c->durability = AG_AUDIT_NONE;
}

static int fill(const char *log, const char *key, uint64_t bytes)
{
	struct ag_audit_config c;
	struct ag_audit_writer *w;
	struct ag_err err;
	struct stat st = { 0 };
	uint64_t seq;
	int ret = 0;

	config(&c, log, key);
	if (ag_audit_open(&c, &w, &err)) {
		fprintf(stderr, "resume_bench: %s\n", err.msg);
		return -1;
	}
	for (unsigned int i = 0; !ret && (uint64_t)st.st_size < bytes; i++) {
		json_t *ev = json_pack("{s:s, s:{s:s, s:i}, s:s, s:[s]}", "tool", "files/read",
				       "args", "path", "/srv/data/report.txt", "n", (int)i,
				       "decision", "allow", "policies", "p1");

		ret = ag_audit_append(w, "decision", ev, &seq, &err);
		json_decref(ev);
		if (!(i % 65536) && (ret = ag_audit_wait(w, seq, &err)) == 0)
			stat(log, &st);
	}
	if (ag_audit_close(w, &err) || ret) {
		fprintf(stderr, "resume_bench: %s\n", err.msg);
		return -1;
	}
	return 0;
}

/* Median microseconds to open (and close) the log; *read: records read. */
static double open_us(const char *log, const char *key, bool resume, uint64_t *records,
		      uint64_t *read)
{
	double t[ROUNDS];

	for (int i = 0; i < ROUNDS; i++) {
		struct ag_audit_config c;
		struct ag_audit_writer *w;
		struct ag_err err;
		char path[512];
		uint64_t t0;

		snprintf(path, sizeof(path), "%s-resume", log);
		if (!resume)
			unlink(path);
		config(&c, log, key);
		t0 = ag_now_ns();
		if (ag_audit_open(&c, &w, &err)) {
			fprintf(stderr, "resume_bench: %s\n", err.msg);
			return -1;
		}
		t[i] = (double)(ag_now_ns() - t0) / 1e3;
		ag_audit_recovery(w, records, read);
		ag_audit_close(w, &err);
	}
	for (int i = 1; i < ROUNDS; i++)
		for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
			double x = t[j];

			t[j] = t[j - 1];
			t[j - 1] = x;
		}
	return t[ROUNDS / 2];
}

int main(int argc, char **argv)
{
	const char *base = "/tmp";
	unsigned long mb = 150;
	char dir[256], log[300], key[300];
	uint64_t records, read_r, read_f;
	struct stat st = { 0 };
	double resumed, full;
	int opt, ret = 1;
	bool keep = false;

	while ((opt = getopt(argc, argv, "m:d:k")) != -1) {
		if (opt == 'm')
			mb = strtoul(optarg, NULL, 10);
		else if (opt == 'd')
			base = optarg;
		else if (opt == 'k')
			keep = true;
		else {
			fprintf(stderr, "usage: %s [-m MEGABYTES] [-d DIR] [-k]\n", argv[0]);
			return 2;
		}
	}
	if (!mb || mb > 4096) {
		fprintf(stderr, "resume_bench: -m 1..4096\n");
		return 2;
	}
	snprintf(dir, sizeof(dir), "%s/resume_bench.XXXXXX", base);
	if (!mkdtemp(dir)) {
		fprintf(stderr, "resume_bench: mkdtemp %s: %s\n", dir, strerror(errno));
		return 1;
	}
	snprintf(log, sizeof(log), "%s/audit.log", dir);
	snprintf(key, sizeof(key), "%s/audit.key", dir);
	if (fill(log, key, (uint64_t)mb << 20))
		goto out;
	stat(log, &st);
	resumed = open_us(log, key, true, &records, &read_r);
	full = open_us(log, key, false, &records, &read_f);
	if (resumed < 0 || full < 0)
		goto out;
	printf("resume_bench: %.0f MB, %llu records: open %.0f us reading %llu records "
	       "(resumed) vs %.0f us reading %llu (whole series)\n",
	       (double)st.st_size / 1048576.0, (unsigned long long)records, resumed,
	       (unsigned long long)read_r, full, (unsigned long long)read_f);
	ret = 0;
out:
	if (keep && !ret)
		printf("resume_bench: kept %s\n", dir);
	else
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return ret;
}
