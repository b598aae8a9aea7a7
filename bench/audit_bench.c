// SPDX-License-Identifier: GPL-2.0
/*
 * audit_bench: durable audit records per second with group commit, and how
 * long an appender waits for its record to be durable.
 *
 *	audit_bench [-t THREADS] [-w WINDOW] [-s SECONDS] [-m sync|batch|none]
 *		    [-b BATCH_MAX] [-u BATCH_US] [-W WRITE_MAX] [-f FORM] [-d DIR]
 *
 * Each thread appends a decision record and keeps at most WINDOW records in
 * flight, waiting (ag_audit_wait) for the oldest when the window is full, as
 * an event loop serving WINDOW concurrent calls would.  WINDOW 1 is a plain
 * blocking caller.  The wait is measured from append to durable.
 *
 * FORM is how the record is given: "prebuilt" (one tree appended again and
 * again), "tree" (packed and freed for each record, as the daemon once
 * did) or "members" (ag_audit_append_members, as the daemon's per-call
 * records are now).
 *
 * Throughput on a shared VM drifts with its load, so the report also gives
 * CPU time per record, split between the appenders (serialising their
 * fields) and the rest of the process (the committer: splicing, hashing,
 * signing, write and fdatasync), and what one 4 KiB append + fdatasync costs
 * on DIR's file system right before the run.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <linux/magic.h>

#include "audit.h"

#define MAX_SAMPLES (1u << 21)

enum form { FORM_PREBUILT, FORM_TREE, FORM_MEMBERS };
static const char *const form_names[] = { "prebuilt", "tree", "members" };

struct worker {
	pthread_t thread;
	enum form form;
	struct ag_audit_writer *w;
	unsigned int id, window;
	atomic_bool *stop;
	uint64_t records;
	uint64_t *lat_ns;
	size_t nlat;
	uint64_t cpu_ns;
	int err;
};

static uint64_t clock_ns(clockid_t id)
{
	struct timespec t;

	clock_gettime(id, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static uint64_t now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

static uint64_t process_cpu_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000u +
	       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * The disk under the figures: the file system of dir and the median of 50
 * appends of 4 KiB, each followed by fdatasync (what a small group commit
 * pays).  Returns a negative errno if the probe file cannot be written.
 */
static int probe_disk(const char *dir, const char **fs, double *sync_us)
{
	uint64_t t[50];
	char path[300], block[4096] = { 0 };
	struct statfs sf;
	int fd, ret;

	*fs = statfs(dir, &sf)		      ? "?"
	      : sf.f_type == TMPFS_MAGIC      ? "tmpfs"
	      : sf.f_type == EXT4_SUPER_MAGIC ? "ext4"
					      : "other";
	snprintf(path, sizeof(path), "%s/probe", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	for (size_t i = 0; i < 50; i++) {
		uint64_t t0 = now_ns();

		if (write(fd, block, sizeof(block)) != sizeof(block) || fdatasync(fd)) {
			ret = errno ? -errno : -EIO;
			close(fd);
			unlink(path);
			return ret;
		}
		t[i] = now_ns() - t0;
	}
	close(fd);
	unlink(path);
	qsort(t, 50, sizeof(t[0]), cmp_u64);
	*sync_us = (double)t[25] / 1e3;
	return 0;
}

static void sample(struct worker *k, uint64_t start)
{
	if (k->nlat < MAX_SAMPLES / 16)
		k->lat_ns[k->nlat++] = now_ns() - start;
}

static json_t *pack_event(void)
{
	return json_pack("{s:{s:s, s:I, s:i, s:i, s:s}, s:s, s:s, s:s, s:{s:s}, s:s, s:[s], s:i}",
			 "agent", "name", "bench", "cgroup_id", (json_int_t)1234, "pid", 4321,
			 "uid", 1000, "exe", "/usr/bin/agent", "session", "s-1", "server", "files",
			 "tool", "read_file", "args", "path", "/srv/data/report.txt", "decision",
			 "allow", "policies", "p-readonly", "latency_us", 42);
}

/* The same record in each form; args: the request's, read in place. */
static int append_one(struct worker *k, const json_t *ev, struct ag_audit_buf *buf, uint64_t *seq,
		      struct ag_err *err)
{
	const struct ag_audit_member agent[] = {
		AG_AM_S("name", "bench"), AG_AM_I("cgroup_id", 1234),	    AG_AM_I("pid", 4321),
		AG_AM_I("uid", 1000),	  AG_AM_S("exe", "/usr/bin/agent"),
	};
	const struct ag_audit_member f[] = {
		{ .key = "agent", .type = AG_AM_OBJ, .obj = agent, .n = 5 },
		AG_AM_S("session", "s-1"),
		AG_AM_S("server", "files"),
		AG_AM_S("tool", "read_file"),
		AG_AM_J("args", json_object_get(ev, "args")),
		AG_AM_S("decision", "allow"),
		{ .key = "policies", .type = AG_AM_CSV, .s = "p-readonly" },
		AG_AM_I("latency_us", 42),
	};
	json_t *tree;
	int ret;

	switch (k->form) {
	case FORM_TREE:
		tree = pack_event();
		ret = ag_audit_append(k->w, "decision", tree, seq, err);
		json_decref(tree);
		return ret;
	case FORM_MEMBERS:
		return ag_audit_append_members(k->w, "decision", f, 8, buf, AG_AUDIT_NOW, seq, err);
	default:
		return ag_audit_append(k->w, "decision", ev, seq, err);
	}
}

static void *run(void *arg)
{
	struct worker *k = arg;
	uint64_t *seqs = calloc(k->window, sizeof(*seqs)), *t0 = calloc(k->window, sizeof(*t0));
	struct ag_audit_buf buf = { 0 };
	struct ag_err err;
	size_t head = 0, n = 0;
	json_t *ev = pack_event();

	if (!seqs || !t0 || !ev) {
		k->err = -ENOMEM;
		goto out;
	}
	while (!atomic_load_explicit(k->stop, memory_order_relaxed)) {
		if (n == k->window) {
			k->err = ag_audit_wait(k->w, seqs[head], &err);
			if (k->err)
				break;
			sample(k, t0[head]);
			head = (head + 1) % k->window;
			n--;
		}
		k->err = append_one(k, ev, &buf, &seqs[(head + n) % k->window], &err);
		if (k->err)
			break;
		t0[(head + n) % k->window] = now_ns();
		n++;
		k->records++;
	}
	for (; !k->err && n; n--, head = (head + 1) % k->window) {
		k->err = ag_audit_wait(k->w, seqs[head], &err);
		sample(k, t0[head]);
	}
	if (k->err)
		fprintf(stderr, "audit_bench: thread %u: %s\n", k->id, err.msg);
	k->cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID);
out:
	ag_audit_buf_free(&buf);
	json_decref(ev);
	free(seqs);
	free(t0);
	return NULL;
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	return remove(path);
}

int main(int argc, char **argv)
{
	unsigned int threads = 8, window = 64, seconds = 2;
	struct ag_audit_config c;
	struct ag_audit_writer *w;
	struct ag_err err;
	struct worker *ks = NULL;
	char dir[256] = "/tmp/ag_audit_bench.XXXXXX", log[300], key[300];
	const char *base = NULL, *fs;
	atomic_bool stop = false;
	uint64_t total = 0, t_start, t_end, *all = NULL, cpu_start, cpu_all, cpu_app = 0;
	double sync_us = 0;
	size_t nall = 0;
	enum form form = FORM_PREBUILT;
	int opt, perr, ret = 1;

	ag_audit_config_init(&c);
	while ((opt = getopt(argc, argv, "t:w:s:m:b:u:W:f:d:")) != -1) {
		switch (opt) {
		case 't':
			threads = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case 'w':
			window = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case 's':
			seconds = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case 'm':
			if (ag_audit_durability_parse(optarg) < 0) {
				fprintf(stderr, "audit_bench: -m written|strict|sync|none\n");
				return 2;
			}
			c.durability = ag_audit_durability_parse(optarg);
			break;
		case 'b':
			c.batch_max = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case 'u':
			c.sync_ms = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case 'W':
			c.write_max = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case 'f':
			for (form = FORM_PREBUILT; form <= FORM_MEMBERS; form++)
				if (!strcmp(optarg, form_names[form]))
					break;
			if (form > FORM_MEMBERS) {
				fprintf(stderr, "audit_bench: -f prebuilt|tree|members\n");
				return 2;
			}
			break;
		case 'd':
			base = optarg;
			break;
		default:
			fprintf(stderr,
				"usage: %s [-t THREADS] [-w WINDOW] [-s SECONDS] "
				"[-m written|strict|sync|none] [-b BATCH_MAX] [-u SYNC_MS] [-W "
				"WRITE_MAX] "
				"[-f prebuilt|tree|members] [-d DIR]\n",
				argv[0]);
			return 2;
		}
	}
	if (!threads || threads > 256 || !window || window > 4096 || !seconds || seconds > 60) {
		fprintf(stderr, "audit_bench: threads 1..256, window 1..4096, seconds 1..60\n");
		return 2;
	}
	if (base)
		snprintf(dir, sizeof(dir), "%s/ag_audit_bench.XXXXXX", base);
	if (!mkdtemp(dir)) {
		fprintf(stderr, "audit_bench: mkdtemp %s: %s\n", dir, strerror(errno));
		return 1;
	}
	perr = probe_disk(dir, &fs, &sync_us);
	if (perr) {
		fprintf(stderr, "audit_bench: cannot probe %s: %s\n", dir, strerror(-perr));
		goto out;
	}
	snprintf(log, sizeof(log), "%s/audit.log", dir);
	snprintf(key, sizeof(key), "%s/audit.key", dir);
	c.path = log;
	c.key_path = key;
	ks = calloc(threads, sizeof(*ks));
	all = malloc(MAX_SAMPLES * sizeof(*all));
	if (!ks || !all || ag_audit_open(&c, &w, &err)) {
		fprintf(stderr, "audit_bench: %s\n", ks && all ? err.msg : "out of memory");
		goto out;
	}
	t_start = now_ns();
	cpu_start = process_cpu_ns();
	for (unsigned int i = 0; i < threads; i++) {
		ks[i] = (struct worker){
			.w = w, .id = i, .window = window, .stop = &stop, .form = form
		};
		ks[i].lat_ns = malloc(MAX_SAMPLES / 16 * sizeof(uint64_t));
		pthread_create(&ks[i].thread, NULL, run, &ks[i]);
	}
	sleep(seconds);
	atomic_store(&stop, true);
	for (unsigned int i = 0; i < threads; i++) {
		pthread_join(ks[i].thread, NULL);
		total += ks[i].records;
		cpu_app += ks[i].cpu_ns;
		for (size_t j = 0; j < ks[i].nlat && nall < MAX_SAMPLES; j++)
			all[nall++] = ks[i].lat_ns[j];
		free(ks[i].lat_ns);
	}
	t_end = now_ns();
	/* Before close: the final checkpoint and flush are not the run's. */
	cpu_all = process_cpu_ns() - cpu_start;
	if (ag_audit_close(w, &err))
		fprintf(stderr, "audit_bench: close: %s\n", err.msg);
	qsort(all, nall, sizeof(*all), cmp_u64);
	printf("audit_bench: %s (4 KiB append + fdatasync p50 %.0fus), mode %s, form %s, "
	       "%u threads x "
	       "window %u, batch max %u, sync %ums, write max %u: %" PRIu64
	       " durable records in %.2fs = %.0f records/s; commit wait p50 %.1fus p99 %.1fus; "
	       "CPU per record %.2fus (appenders %.2f, committer %.2f)\n",
	       fs, sync_us, ag_audit_durability_name(c.durability), form_names[form], threads,
	       window, c.batch_max, c.sync_ms, c.write_max, total, (double)(t_end - t_start) / 1e9,
	       (double)total * 1e9 / (double)(t_end - t_start),
	       nall ? (double)all[nall / 2] / 1e3 : 0.0,
	       nall ? (double)all[nall * 99 / 100] / 1e3 : 0.0,
	       total ? (double)cpu_all / 1e3 / (double)total : 0.0,
	       total ? (double)cpu_app / 1e3 / (double)total : 0.0,
	       total ? (double)(cpu_all - cpu_app) / 1e3 / (double)total : 0.0);
	ret = 0;
out:
	free(ks);
	free(all);
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return ret;
}
