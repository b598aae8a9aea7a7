// SPDX-License-Identifier: GPL-2.0
/* The audit log library: writer, chain, checkpoints, rotation and verifier. */
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "test.h"
#include "testlib.h"

struct fx {
	char dir[64];
	char log[128];
	char key[128];
};

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	return remove(path);
}

static bool fx_init(struct fx *f)
{
	snprintf(f->dir, sizeof(f->dir), "/tmp/ag_audit.XXXXXX");
	if (!ASSERT_OK_PTR(mkdtemp(f->dir), "mkdtemp"))
		return false;
	snprintf(f->log, sizeof(f->log), "%s/audit.log", f->dir);
	snprintf(f->key, sizeof(f->key), "%s/audit.key", f->dir);
	return true;
}

static void fx_fini(struct fx *f)
{
	if (f->dir[0])
		nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static char last_warning[512];

static void keep_warning(void *ctx, const char *msg)
{
	snprintf(last_warning, sizeof(last_warning), "%s", msg);
}

static void test_config(struct ag_audit_config *c, const struct fx *f)
{
	ag_audit_config_init(c);
	c->path = f->log;
	c->key_path = f->key;
	c->durability = AG_AUDIT_WRITTEN;
	c->sync_ms = 1;
	c->checkpoint_records = 16;
	c->checkpoint_ms = 60000; /* only count-based checkpoints: a fixed layout */
	c->warn = keep_warning;
}

static json_t *event(const char *tag, unsigned int i)
{
	char tool[64];

	snprintf(tool, sizeof(tool), "%s%u", tag, i);
	return json_pack("{s:{s:s, s:I, s:i}, s:s, s:{s:s, s:i}, s:s, s:[s]}", "agent", "name",
			 "claude", "cgroup_id", (json_int_t)4242, "pid", 100 + (int)i, "tool", tool,
			 "args", "path", "/srv/data", "n", (int)i, "decision", "allow", "policies",
			 "p1");
}

/* Appends n events; with c NULL, a default writer for f. */
static bool append_events(const struct fx *f, const struct ag_audit_config *c, const char *tag,
			  unsigned int n)
{
	struct ag_audit_config def;
	struct ag_audit_writer *w;
	struct ag_err err;
	bool ok = true;

	if (!c) {
		test_config(&def, f);
		c = &def;
	}
	if (!ASSERT_OK(ag_audit_open(c, &w, &err), err.msg))
		return false;
	for (unsigned int i = 0; ok && i < n; i++) {
		json_t *ev = event(tag, i);
		uint64_t seq;

		ok = ASSERT_OK(ag_audit_append(w, "decision", ev, &seq, &err), err.msg);
		json_decref(ev);
	}
	return ASSERT_OK(ag_audit_close(w, &err), err.msg) && ok;
}

struct lines {
	char **v;
	size_t n;
};

static void lines_free(struct lines *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static bool lines_read(const char *path, struct lines *l)
{
	FILE *fp = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;

	l->v = NULL;
	l->n = 0;
	if (!ASSERT_OK_PTR(fp, path))
		return false;
	while ((len = getline(&line, &cap, fp)) > 0) {
		if (line[len - 1] == '\n')
			line[len - 1] = '\0';
		l->v = reallocarray(l->v, l->n + 1, sizeof(*l->v));
		l->v[l->n++] = strdup(line);
	}
	free(line);
	fclose(fp);
	return true;
}

static bool lines_write(const char *path, const struct lines *l)
{
	FILE *fp = fopen(path, "w");

	if (!ASSERT_OK_PTR(fp, path))
		return false;
	for (size_t i = 0; i < l->n; i++)
		fprintf(fp, "%s\n", l->v[i]);
	return ASSERT_OK(fclose(fp), path);
}

/* Verifies the series at base with the key at key_path (if any). */
static int verify(const char *base, const char *key_path, const char *witness, bool allow_tail,
		  struct ag_audit_verify_result *r)
{
	struct ag_audit_verify_opts o = { .allow_unsigned_tail = allow_tail };
	struct ag_audit_key *key = NULL;
	struct ag_err err;
	char **paths;
	size_t n;
	int ret;

	if (key_path && !ASSERT_OK(ag_audit_pubkey_load(key_path, &key, &err), err.msg))
		return -1;
	if (!ASSERT_OK(ag_audit_series(base, &paths, &n, &err), err.msg)) {
		ag_audit_key_free(key);
		return -1;
	}
	o.pubkey = key;
	o.witness = witness ? &witness : NULL;
	o.nwitness = witness ? 1 : 0;
	ret = ag_audit_verify((const char *const *)paths, n, &o, r);
	if (test__verbose())
		fprintf(stderr, "verify %s: %s: seq %llu: %s\n", base,
			ag_audit_finding_name(r->finding), (unsigned long long)r->seq, r->reason);
	ag_audit_series_free(paths, n);
	ag_audit_key_free(key);
	return ret;
}

/* A log of 50 events: checkpoints at lines 16, 33, 50 and a final one at 53. */
static bool standard_log(struct fx *f, struct lines *l)
{
	return fx_init(f) && append_events(f, NULL, "t", 50) && lines_read(f->log, l) &&
	       ASSERT_EQ(l->n, 54, "lines");
}

static bool expect(int ret, const struct ag_audit_verify_result *r, enum ag_audit_finding want,
		   uint64_t seq, const char *name)
{
	bool ok = ASSERT_EQ(ret, -EBADMSG, name);

	ok = ASSERT_EQ(r->finding, want, name) && ok;
	ok = ASSERT_EQ(r->seq, seq, name) && ok;
	if (!ok)
		fprintf(stderr, "  reason: %s\n", r->reason);
	return ok;
}

TEST(audit_verify)
{
	struct ag_audit_verify_result r;
	struct lines l = { 0 };
	struct fx f = { 0 };

	if (test__start_subtest("clean")) {
		if (standard_log(&f, &l)) {
			ASSERT_OK(verify(f.log, f.key, NULL, false, &r), r.reason);
			ASSERT_EQ(r.records, 54, "records");
			ASSERT_EQ(r.checkpoints, 4, "checkpoints");
			ASSERT_EQ(r.signed_size, 53, "signed size");
			for (size_t i = 0; i < l.n; i++) {
				json_t *obj = json_loads(l.v[i], 0, NULL);
				char *again = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);

				/* Sorted keys, compact: the bytes are canonical. */
				if (!ASSERT_STREQ(again, l.v[i], "canonical line"))
					i = l.n;
				ASSERT_EQ(json_integer_value(json_object_get(obj, "seq")),
					  (long long)i, "seq");
				free(again);
				json_decref(obj);
			}
			ASSERT_TRUE(strstr(l.v[0], "\"prev\":\"0000000000000000") != NULL,
				    "first prev is zero");
		}
		lines_free(&l);
		fx_fini(&f);
	}
	if (test__start_subtest("modified_byte")) {
		if (standard_log(&f, &l)) {
			char *p = strstr(l.v[5], "\"tool\":\"t5\"");

			if (ASSERT_OK_PTR(p, "tool in line 5")) {
				p[9] = 'u';
				lines_write(f.log, &l);
				expect(verify(f.log, f.key, NULL, false, &r), &r, AG_AUDIT_CHAIN, 5,
				       "modified");
			}
		}
		lines_free(&l);
		fx_fini(&f);
	}
	if (test__start_subtest("deleted_record")) {
		if (standard_log(&f, &l)) {
			free(l.v[7]);
			memmove(&l.v[7], &l.v[8], (l.n - 8) * sizeof(*l.v));
			l.n--;
			lines_write(f.log, &l);
			expect(verify(f.log, f.key, NULL, false, &r), &r, AG_AUDIT_SEQ, 7,
			       "deleted");
		}
		lines_free(&l);
		fx_fini(&f);
	}
	if (test__start_subtest("inserted_record")) {
		if (standard_log(&f, &l)) {
			uint8_t h[AG_AUDIT_HASH_LEN];
			char hex[AG_AUDIT_HEX_LEN + 1], *forged;

			/* A well-formed forgery that links to record 5 correctly. */
			ag_audit_line_hash(l.v[5], strlen(l.v[5]), h);
			ag_audit_hex(h, hex);
			if (asprintf(
				&forged,
				"{\"decision\":\"allow\",\"kind\":\"decision\",\"prev\":\"%s\","
				"\"seq\":6,\"tool\":\"forged\",\"ts\":"
				"\"2026-11-22T00:00:00.000000000Z\"}",
				hex) > 0) {
				l.v = reallocarray(l.v, l.n + 1, sizeof(*l.v));
				memmove(&l.v[7], &l.v[6], (l.n - 6) * sizeof(*l.v));
				l.v[6] = forged;
				l.n++;
				lines_write(f.log, &l);
				expect(verify(f.log, f.key, NULL, false, &r), &r, AG_AUDIT_SEQ, 6,
				       "inserted");
			}
		}
		lines_free(&l);
		fx_fini(&f);
	}
	if (test__start_subtest("swapped_records")) {
		if (standard_log(&f, &l)) {
			char *t = l.v[9];

			l.v[9] = l.v[10];
			l.v[10] = t;
			lines_write(f.log, &l);
			expect(verify(f.log, f.key, NULL, false, &r), &r, AG_AUDIT_SEQ, 9,
			       "swapped");
		}
		lines_free(&l);
		fx_fini(&f);
	}
	if (test__start_subtest("truncated_after_checkpoint")) {
		if (standard_log(&f, &l)) {
			/* Drop the final checkpoint: records 51 and 52 lose their signature. */
			free(l.v[--l.n]);
			lines_write(f.log, &l);
			expect(verify(f.log, f.key, NULL, false, &r), &r, AG_AUDIT_UNSIGNED_TAIL,
			       51, "truncated");
			ASSERT_EQ(r.unsigned_tail, 2, "unsigned tail");
			ASSERT_OK(verify(f.log, f.key, NULL, true, &r), "allowed tail");
			ASSERT_EQ(r.unsigned_tail, 2, "reported tail");
		}
		lines_free(&l);
		fx_fini(&f);
	}
	if (test__start_subtest("checkpoint_other_key")) {
		struct ag_audit_key *other = NULL;
		struct ag_err err;
		char other_path[160];

		if (standard_log(&f, &l)) {
			json_t *cp = json_loads(l.v[33], 0, NULL);
			const char *note = json_string_value(json_object_get(cp, "note"));
			char *text = note ? strndup(note, strstr(note, "\n\n") + 1 - note) : NULL;
			char *resigned = NULL;

			snprintf(other_path, sizeof(other_path), "%s/other.key", f.dir);
			if (ASSERT_OK_PTR(text, "checkpoint text") &&
			    ASSERT_OK(ag_audit_key_open(other_path, true, &other, &err), err.msg) &&
			    ASSERT_OK(ag_audit_note_sign(other, AG_AUDIT_DEFAULT_ORIGIN, text,
							 &resigned, &err),
				      err.msg)) {
				json_object_set_new(cp, "note", json_string(resigned));
				free(l.v[33]);
				l.v[33] = json_dumps(cp, JSON_COMPACT | JSON_SORT_KEYS);
				lines_write(f.log, &l);
				expect(verify(f.log, f.key, NULL, false, &r), &r,
				       AG_AUDIT_OTHER_KEY, 33, "resigned");
				/* The whole log against the wrong key fails at once. */
				expect(verify(f.log, other_path, NULL, false, &r), &r,
				       AG_AUDIT_OTHER_KEY, 16, "wrong key");
			}
			free(resigned);
			free(text);
			json_decref(cp);
			ag_audit_key_free(other);
		}
		lines_free(&l);
		fx_fini(&f);
	}
	if (test__start_subtest("fork")) {
		struct fx g = { 0 };
		char prefix[160];

		if (standard_log(&f, &l) && fx_init(&g)) {
			/* g holds a copy, then both copies grow apart under the same key. */
			snprintf(g.key, sizeof(g.key), "%s", f.key);
			snprintf(prefix, sizeof(prefix), "%s/prefix.log", g.dir);
			if (lines_write(g.log, &l) && lines_write(prefix, &l) &&
			    append_events(&f, NULL, "a", 3) && append_events(&g, NULL, "b", 3)) {
				ASSERT_OK(verify(f.log, f.key, NULL, false, &r), "f alone");
				ASSERT_OK(verify(g.log, f.key, NULL, false, &r), "g alone");
				expect(verify(f.log, f.key, g.log, false, &r), &r, AG_AUDIT_FORK,
				       57, "fork");
				/* A consistent prefix is not a fork... */
				ASSERT_OK(verify(f.log, f.key, prefix, false, &r),
					  "prefix witness");
				/* ...but the prefix alone misses records a witness signed. */
				expect(verify(prefix, f.key, f.log, false, &r), &r,
				       AG_AUDIT_TRUNCATED, 54, "truncated against witness");
			}
		}
		fx_fini(&g);
		lines_free(&l);
		fx_fini(&f);
	}
}

/* True if the file's bytes are whole records: it ends with a newline. */
static bool whole_records(const char *path, size_t *nlines)
{
	struct lines l;
	struct stat st;
	char last = '\n';
	int fd = open(path, O_RDONLY);
	bool ok;

	if (!ASSERT_GE(fd, 0, path))
		return false;
	ok = ASSERT_OK(fstat(fd, &st), "fstat");
	if (ok && st.st_size)
		ok = ASSERT_EQ(pread(fd, &last, 1, st.st_size - 1), 1, "pread");
	close(fd);
	ok = ok && ASSERT_EQ(last, '\n', "file ends with a newline") && lines_read(path, &l);
	for (size_t i = 0; ok && i < l.n; i++) {
		json_t *obj = json_loads(l.v[i], 0, NULL);

		ok = ASSERT_OK_PTR(obj, "line parses");
		json_decref(obj);
	}
	if (ok)
		*nlines = l.n;
	lines_free(&l);
	return ok;
}

TEST(audit_writer)
{
	struct ag_audit_verify_result r;
	struct ag_audit_config c;
	struct ag_audit_writer *w;
	struct ag_err err;
	struct fx f = { 0 };
	struct lines l = { 0 };
	uint64_t seq;

	if (test__start_subtest("rotation_chain")) {
		char **paths = NULL;
		size_t n = 0;

		if (fx_init(&f)) {
			test_config(&c, &f);
			c.rotate_bytes = 4096;
			/* Rotation happens between writes: keep them small. */
			c.batch_max = c.write_max = 4;
			if (append_events(&f, &c, "r", 60) &&
			    ASSERT_OK(ag_audit_series(f.log, &paths, &n, &err), err.msg) &&
			    ASSERT_GE(n, 3, "rotated files")) {
				struct lines a, b;

				ASSERT_OK(verify(f.log, f.key, NULL, false, &r), r.reason);
				ASSERT_EQ(r.records, 64, "records across files");
				if (lines_read(paths[0], &a) && lines_read(paths[1], &b)) {
					uint8_t h[AG_AUDIT_HASH_LEN];
					char hex[AG_AUDIT_HEX_LEN + 1], want[80];

					ag_audit_line_hash(a.v[a.n - 1], strlen(a.v[a.n - 1]), h);
					ag_audit_hex(h, hex);
					snprintf(want, sizeof(want), "\"prev\":\"%s\"", hex);
					ASSERT_TRUE(strstr(b.v[0], want) != NULL,
						    "next file links to the last line");
					lines_free(&a);
					lines_free(&b);
				}
				/* Reopening continues the last file of the series. */
				if (append_events(&f, &c, "s", 5)) {
					ASSERT_OK(verify(f.log, f.key, NULL, false, &r), r.reason);
					ASSERT_EQ(r.records, 70, "records after reopen");
				}
			}
			ag_audit_series_free(paths, n);
		}
		fx_fini(&f);
	}
	if (test__start_subtest("reopen_after_torn_write")) {
		if (fx_init(&f) && append_events(&f, NULL, "t", 5)) {
			FILE *fp = fopen(f.log, "a");
			size_t n = 0;

			fputs("{\"kind\":\"decision\",\"prev\":\"00", fp);
			fclose(fp);
			expect(verify(f.log, f.key, NULL, false, &r), &r, AG_AUDIT_MALFORMED, 6,
			       "torn");
			last_warning[0] = '\0';
			if (append_events(&f, NULL, "u", 3)) {
				ASSERT_TRUE(strstr(last_warning, "partial last record") != NULL,
					    last_warning);
				ASSERT_TRUE(whole_records(f.log, &n), "whole records");
				ASSERT_OK(verify(f.log, f.key, NULL, false, &r), r.reason);
				ASSERT_EQ(r.records, 10, "seq continues");
			}
		}
		fx_fini(&f);
	}
	if (test__start_subtest("write_max")) {
		if (fx_init(&f)) {
			test_config(&c, &f);
			c.write_max = c.batch_max - 1;
			ASSERT_EQ(ag_audit_open(&c, &w, &err), -EINVAL, "write_max < batch_max");
			ASSERT_STRHAS(err.msg, "write_max", "the message names it");
			c.write_max = 65537;
			ASSERT_EQ(ag_audit_open(&c, &w, &err), -EINVAL, "write_max > 65536");
			/* 0: batch_max records per write, the strict cap. */
			c.write_max = 0;
			if (ASSERT_OK(ag_audit_open(&c, &w, &err), err.msg)) {
				json_t *ev = json_pack("{s:s}", "tool", "t");

				ASSERT_OK(ag_audit_append(w, "decision", ev, &seq, &err), err.msg);
				ASSERT_OK(ag_audit_close(w, &err), err.msg);
				json_decref(ev);
				ASSERT_OK(verify(f.log, f.key, NULL, false, &r), r.reason);
			}
		}
		fx_fini(&f);
	}
	if (test__start_subtest("reserved_fields")) {
		static const char *const reserved[] = { "seq", "ts", "kind", "prev" };

		if (fx_init(&f)) {
			test_config(&c, &f);
			if (ASSERT_OK(ag_audit_open(&c, &w, &err), err.msg)) {
				json_t *ev = json_pack("{s:s}", "tool", "line\nbreak\"quote");
				json_t *arr = json_array();

				for (size_t i = 0; i < 4; i++) {
					json_t *bad =
					    json_pack("{s:s, s:i}", "tool", "x", reserved[i], 1);

					ASSERT_EQ(ag_audit_append(w, "decision", bad, &seq, &err),
						  -EINVAL, reserved[i]);
					ASSERT_TRUE(strstr(err.msg, reserved[i]) != NULL, err.msg);
					json_decref(bad);
				}
				ASSERT_EQ(ag_audit_append(w, "decision", arr, &seq, &err), -EINVAL,
					  "not an object");
				ASSERT_EQ(ag_audit_append(w, "checkpoint", ev, &seq, &err), -EINVAL,
					  "checkpoint kind");
				ASSERT_EQ(ag_audit_append(w, "bogus", ev, &seq, &err), -EINVAL,
					  "unknown kind");
				json_t *nul = json_pack("{s:s#}", "tool", "a\0b", (size_t)3);

				ASSERT_EQ(ag_audit_append(w, "decision", nul, &seq, &err), -EINVAL,
					  "NUL in a string");
				json_decref(nul);
				ASSERT_OK(ag_audit_append(w, "decision", ev, &seq, &err), err.msg);
				ASSERT_EQ(seq, 0, "first seq");
				json_decref(ev);
				json_decref(arr);
				ASSERT_OK(ag_audit_close(w, &err), err.msg);
				/* The newline in a value is escaped: one line per record. */
				if (lines_read(f.log, &l) && ASSERT_EQ(l.n, 2, "lines"))
					ASSERT_TRUE(strstr(l.v[0], "line\\nbreak\\\"quote") != NULL,
						    "escaped");
				lines_free(&l);
			}
		}
		fx_fini(&f);
	}
	/* Reserved members are spliced in where sorting puts them, whatever the keys. */
	if (test__start_subtest("canonical_splice")) {
		/* JSON spellings: escapes sort below letters, UTF-8 above. */
		static const char *const keys[] = {
			"",	  "A",	   "_x",	  "a\\\"b",  "k",
			"ki",	  "kind0", "kind\\u0001", "p\\\\",   "prev_x",
			"s",	  "se",	   "sequence",	  "t",	     "t\\u0001",
			"ts\\\"", "tz",	   "\\u00e9",	  "\\u20ac",
		};

		if (fx_init(&f)) {
			test_config(&c, &f);
			if (ASSERT_OK(ag_audit_open(&c, &w, &err), err.msg)) {
				json_t *ev = json_object(),
				       *nested = json_pack("{s:[{s:s}], s:s}", "z", "ts", "}{\"",
							   "kinds", "x,y");

				for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
					json_error_t je;
					char doc[64];
					json_t *k;

					snprintf(doc, sizeof(doc), "{\"%s\": %zu}", keys[i], i);
					k = json_loads(doc, 0, &je);
					if (ASSERT_OK_PTR(k, je.text))
						json_object_update(ev, k);
					json_decref(k);
				}
				json_object_set_new(ev, "nested", nested);
				ASSERT_OK(ag_audit_append(w, "result", ev, &seq, &err), err.msg);
				json_object_del(ev, "");
				ASSERT_OK(ag_audit_append(w, "result", nested, &seq, &err),
					  err.msg);
				json_object_clear(ev);
				ASSERT_OK(ag_audit_append(w, "result", ev, &seq, &err), err.msg);
				json_decref(ev);
				ASSERT_OK(ag_audit_close(w, &err), err.msg);
				/* The verifier rejects any line that is not the canonical dump. */
				ASSERT_OK(verify(f.log, f.key, NULL, false, &r), r.reason);
				ASSERT_EQ(r.records, 4, "records");
			}
		}
		fx_fini(&f);
	}
	if (test__start_subtest("redaction")) {
		json_t *fields = json_pack("{s:s, s:{s:s, s:[i,i]}}", "tool", "read", "args",
					   "path", "/etc/shadow", "range", 1, 2);
		enum ag_audit_redact mode;
		uint8_t h[AG_AUDIT_HASH_LEN];
		char hex[AG_AUDIT_HEX_LEN + 1];
		json_t *copy = json_deep_copy(fields);

		ASSERT_OK(ag_audit_redact_parse("full", &mode), "full");
		ASSERT_OK(ag_audit_redact(copy, "args", mode, &err), err.msg);
		ASSERT_TRUE(json_equal(copy, fields), "full keeps the arguments");
		ASSERT_OK(ag_audit_redact_parse("hash", &mode), "hash");
		ASSERT_OK(ag_audit_redact(copy, "args", mode, &err), err.msg);
		ag_audit_line_hash("\"/etc/shadow\"", 13, h);
		ag_audit_hex(h, hex);
		ASSERT_STREQ(json_string_value(json_object_get(
				 json_object_get(json_object_get(copy, "args"), "path"), "sha256")),
			     hex, "hash of the path value");
		ag_audit_line_hash("[1,2]", 5, h);
		ag_audit_hex(h, hex);
		ASSERT_STREQ(
		    json_string_value(json_object_get(
			json_object_get(json_object_get(copy, "args"), "range"), "sha256")),
		    hex, "hash of the range value");
		ASSERT_OK(ag_audit_redact_parse("drop", &mode), "drop");
		ASSERT_OK(ag_audit_redact(copy, "args", mode, &err), err.msg);
		ASSERT_FALSE(json_object_get(copy, "args"), "dropped");
		ASSERT_STREQ(json_string_value(json_object_get(copy, "tool")), "read", "tool kept");
		ASSERT_EQ(ag_audit_redact_parse("some", &mode), -EINVAL, "unknown mode");
		json_decref(copy);
		json_decref(fields);
	}
	if (test__start_subtest("syslog_mirror")) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		char msg[4096], sock[96];
		int fd = -1;
		ssize_t n;

		if (fx_init(&f)) {
			snprintf(sock, sizeof(sock), "%s/log.sock", f.dir);
			memcpy(sa.sun_path, sock, strlen(sock) + 1); /* dir is 20 bytes */
			fd = socket(AF_UNIX, SOCK_DGRAM, 0);
			test_config(&c, &f);
			c.syslog_path = sock;
			if (ASSERT_GE(fd, 0, "socket") &&
			    ASSERT_OK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), "bind") &&
			    ASSERT_OK(ag_audit_open(&c, &w, &err), err.msg)) {
				json_t *ev = event("sys", 0);
				struct timeval tv = { .tv_sec = 2 };

				setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
				ASSERT_OK(ag_audit_append(w, "decision", ev, &seq, &err), err.msg);
				ASSERT_OK(ag_audit_wait(w, seq, &err), err.msg);
				n = recv(fd, msg, sizeof(msg) - 1, 0);
				if (ASSERT_GT(n, 0, "syslog message")) {
					msg[n] = '\0';
					ASSERT_TRUE(!strncmp(msg, "<86>1 ", 6), msg);
					ASSERT_TRUE(strstr(msg, " agentgate ") != NULL, msg);
					ASSERT_TRUE(strstr(msg, "\"tool\":\"sys0\"") != NULL, msg);
				}
				json_decref(ev);
				ASSERT_OK(ag_audit_close(w, &err), err.msg);
			}
			if (fd >= 0)
				close(fd);
		}
		fx_fini(&f);
	}
	/* The writer keeps going when the syslog receiver is gone. */
	if (test__start_subtest("syslog_missing")) {
		if (fx_init(&f)) {
			test_config(&c, &f);
			c.syslog_path = "/nonexistent/agentgate.sock";
			c.durability = AG_AUDIT_SYNC;
			if (ASSERT_OK(ag_audit_open(&c, &w, &err), err.msg)) {
				json_t *ev = event("nosys", 0);

				ASSERT_OK(ag_audit_append(w, "decision", ev, &seq, &err), err.msg);
				ASSERT_OK(ag_audit_wait(w, seq, &err), err.msg);
				ASSERT_FALSE(ag_audit_failed(w, NULL), "not failed");
				json_decref(ev);
				ASSERT_OK(ag_audit_close(w, &err), err.msg);
			}
		}
		fx_fini(&f);
	}
	if (test__start_subtest("sync_eventfd")) {
		if (fx_init(&f)) {
			test_config(&c, &f);
			c.durability = AG_AUDIT_SYNC;
			if (ASSERT_OK(ag_audit_open(&c, &w, &err), err.msg)) {
				json_t *ev = event("e", 0);
				struct pollfd pfd = { .fd = ag_audit_event_fd(w),
						      .events = POLLIN };
				uint64_t v;

				ASSERT_OK(ag_audit_append(w, "decision", ev, &seq, &err), err.msg);
				ASSERT_EQ(poll(&pfd, 1, 2000), 1, "eventfd readable");
				ASSERT_EQ(read(pfd.fd, &v, sizeof(v)), 8, "read eventfd");
				ASSERT_GT(ag_audit_durable(w), seq, "durable");
				ASSERT_OK(ag_audit_wait(w, seq, &err), err.msg);
				ASSERT_FALSE(ag_audit_failed(w, NULL), "not failed");
				json_decref(ev);
				ASSERT_OK(ag_audit_close(w, &err), err.msg);
			}
		}
		fx_fini(&f);
	}
}

/* A random string over the bytes whose escaping differs: controls, quotes, UTF-8. */
static void random_text(unsigned int *rs, char *out, size_t cap, size_t *len)
{
	static const char *const parts[] = {
		"a",	"Z",  "k",	  "kind",	  "ts",
		"/",	"\"", "\\",	  "\b",		  "\f",
		"\n",	"\r", "\t",	  "\x01",	  "\x1f",
		"\x7f", " ",  "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
		"",	"\0",
	};
	size_t n = (size_t)rand_r(rs) % 6;

	*len = 0;
	for (size_t i = 0; i < n; i++) {
		size_t k = (size_t)rand_r(rs) % (sizeof(parts) / sizeof(parts[0]));
		size_t plen = k + 1 == sizeof(parts) / sizeof(parts[0]) ? 1 : strlen(parts[k]);

		if (*len + plen >= cap)
			break;
		memcpy(out + *len, parts[k], plen);
		*len += plen;
	}
}

static json_t *random_json(unsigned int *rs, int depth)
{
	static const double reals[] = {
		0.1, -0.0, 1e300, 5e-324, 3.0, 123456789.125, 1e21, -2.5e-7
	};
	static const json_int_t ints[] = { 0, -1, 7, 1234567890123LL, LLONG_MAX, LLONG_MIN };
	int kind = depth > 3 ? rand_r(rs) % 6 : rand_r(rs) % 8;
	char text[64];
	size_t len, n;
	json_t *v;

	switch (kind) {
	case 0:
		random_text(rs, text, sizeof(text), &len);
		return json_stringn(text, len);
	case 1:
		return json_integer(rand_r(rs) % 2 ? ints[rand_r(rs) % 6]
						   : (json_int_t)rand_r(rs) - RAND_MAX / 2);
	case 2:
		return json_real(reals[rand_r(rs) % 8]);
	case 3:
		return json_true();
	case 4:
		return json_false();
	case 5:
		return json_null();
	case 6:
		v = json_array();
		for (n = (size_t)rand_r(rs) % 5; v && n; n--)
			json_array_append_new(v, random_json(rs, depth + 1));
		return v;
	default:
		/* Up to 24 members: past 16 the sort takes its other path. */
		v = json_object();
		for (n = (size_t)rand_r(rs) % 25; v && n; n--) {
			random_text(rs, text, sizeof(text), &len);
			json_object_setn_new(v, text, len, random_json(rs, depth + 1));
		}
		return v;
	}
}

/* Whether JSON text holds the escape \u0000 (not an escaped backslash before "u0000"). */
static bool has_nul_escape(const char *s)
{
	for (; *s; s++)
		if (*s == '\\' && !strncmp(++s, "u0000", 5))
			return true;
	return false;
}

/* ag_audit_canon() == json_dumps(COMPACT | SORT_KEYS | ENCODE_ANY), and at[] is exact. */
static bool canon_agrees(json_t *v, const char *what)
{
	static const char *const names[] = { "kind", "prev", "seq", "ts" };
	struct ag_audit_text t = { 0 };
	char *want = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	bool obj = json_is_object(v), ok;
	uint32_t at[4];

	for (size_t i = 0; obj && i < 4; i++)
		json_object_del(v, names[i]);
	free(want);
	want = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	ok = ASSERT_OK_PTR(want, what) &&
	     ASSERT_OK(ag_audit_canon(v, 1 << 20, obj ? names : NULL, obj ? 4 : 0, at, &t), what) &&
	     ASSERT_EQ(t.len, strlen(want), what) && ASSERT_STREQ(t.text, want, what) &&
	     ASSERT_EQ(t.nul, has_nul_escape(want), what);
	for (size_t i = 0; ok && obj && i < 4; i++) {
		/* The member lands where at[i] says, after a comma if it comes last. */
		char *with, *hit, member[16];
		bool end = t.text[at[i]] == '}';

		/* '@' is outside random_text()'s alphabet: no nested twin. */
		json_object_set_new(v, names[i], json_string("@"));
		with = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
		json_object_del(v, names[i]);
		snprintf(member, sizeof(member), "\"%s\":\"@\"", names[i]);
		hit = with ? strstr(with, member) : NULL;
		ok = ASSERT_OK_PTR(hit, what) &&
		     ASSERT_EQ((size_t)(hit - with), at[i] + (end && at[i] > 1), names[i]);
		free(with);
	}
	free(t.text);
	free(want);
	return ok;
}

TEST(audit_canon)
{
	if (test__start_subtest("matches_jansson")) {
		unsigned int rs = 20261122;
		json_t *fixed = json_pack("{s:s, s:s#, s:[i, I, f, b, n], s:{}, s:[], s:s}", "path",
					  "C:\\u0000 \"q\" \x01\x7f/\xc3\xa9", "nul", "a\0b",
					  (size_t)3, "mix", -42, (json_int_t)LLONG_MIN, 1.5, 0,
					  "empty", "none", "zz", "\xf0\x9f\x98\x80");

		ASSERT_OK_PTR(fixed, "fixed value");
		if (fixed)
			canon_agrees(fixed, "fixed value");
		json_decref(fixed);
		for (int i = 0; i < 3000; i++) {
			json_t *v = random_json(&rs, 0);
			char what[32];
			bool ok;

			snprintf(what, sizeof(what), "random value %d", i);
			ok = ASSERT_OK_PTR(v, what) && canon_agrees(v, what);
			json_decref(v);
			if (!ok)
				break;
		}
	}
	if (test__start_subtest("refusals")) {
		struct ag_audit_text t;
		json_t *bad = json_stringn_nocheck("\xc3(", 2), *deep = json_array(), *loop, *inner;
		json_t *big = json_pack("{s:s}", "k", "0123456789");

		ASSERT_NULL(json_dumps(bad, JSON_ENCODE_ANY), "jansson refuses bad UTF-8");
		ASSERT_EQ(ag_audit_canon(bad, 1 << 20, NULL, 0, NULL, &t), -EILSEQ, "bad UTF-8");
		for (int i = 0; deep && i < 2100; i++) {
			json_t *outer = json_array();

			json_array_append_new(outer, deep);
			deep = outer;
		}
		ASSERT_EQ(ag_audit_canon(deep, 1 << 20, NULL, 0, NULL, &t), -ELOOP, "2100 deep");
		/* jansson refuses an array in itself, not one two levels down. */
		loop = json_array();
		inner = json_array();
		json_array_append(inner, loop);
		json_array_append(loop, inner);
		ASSERT_EQ(ag_audit_canon(loop, 1 << 20, NULL, 0, NULL, &t), -ELOOP, "a cycle");
		json_array_clear(loop);
		json_decref(inner);
		ASSERT_EQ(ag_audit_canon(big, 16, NULL, 0, NULL, &t), -E2BIG, "over max");
		if (ASSERT_OK(ag_audit_canon(big, 18, NULL, 0, NULL, &t), "exactly max")) {
			ASSERT_EQ(t.len, 18, "length");
			free(t.text);
		}
		json_decref(loop);
		json_decref(bad);
		json_decref(deep);
		json_decref(big);
	}
}

/* ---- Records given as members (ag_audit_canon_members) ------------------ */

static const char *const reserved4[] = { "kind", "prev", "seq", "ts" };

/* Both canonical forms of one record: the tree's (want) and the members' (got). */
static bool members_agree(const json_t *tree, const struct ag_audit_member *m, size_t n,
			  struct ag_audit_buf *buf, const char *what)
{
	struct ag_audit_text t = { 0 };
	uint32_t at_tree[4], at_members[4];
	bool ok;

	ok =
	    ASSERT_OK_PTR(tree, what) &&
	    ASSERT_OK(ag_audit_canon(tree, 1 << 20, reserved4, 4, at_tree, &t), what) &&
	    ASSERT_OK(ag_audit_canon_members(buf, 1 << 20, m, n, reserved4, 4, at_members), what) &&
	    ASSERT_EQ(buf->len, t.len, what) && ASSERT_STREQ(buf->b, t.text, what) &&
	    ASSERT_EQ(buf->nul, t.nul, what) &&
	    ASSERT_OK(memcmp(at_tree, at_members, sizeof(at_tree)), "reserved offsets");
	if (!ok && t.text)
		fprintf(stderr, "tree:    %s\nmembers: %s\n", t.text, buf->b ? buf->b : "");
	free(t.text);
	return ok;
}

/* What a call's record varies in, as the daemon has it (mcp_audit.c). */
struct call_case {
	const char *args; /* JSON text, NULL: no arguments */
	enum ag_audit_redact redact;
	const char *id;		   /* JSON text, NULL: a notification */
	const char *name, *target; /* the tool (resource, prompt) and its key */
	const char *reason, *session, *policies, *commit, *operator_name;
	bool anomaly[2];
	size_t chain; /* agents before the caller */
	bool cut, inbound;
};

static const char *const chain_names[] = { "root", "planner", "coder" };

/*
 * The agent object as trail.c and inbound_http.c built it before members:
 * json_pack, then delegation, sub_cgroup, client and subject set one by one.
 */
static json_t *old_agent(const struct call_case *k)
{
	json_t *agent =
	    json_pack("{s:s,s:I,s:I,s:i,s:i,s:o}", "name", chain_names[k->chain], "cgroup_id",
		      (json_int_t)9007199254740993LL, "run_cgroup_id", (json_int_t)42, "pid", 4242,
		      "uid", (int)4294967294u, "comm", json_string("ag\\x01\\x7f\xc3\xa9"));

	if (k->chain) {
		json_t *list = json_array();

		for (size_t i = 0; i < k->chain; i++)
			json_array_append_new(list, json_string(chain_names[i]));
		json_object_set_new(agent, "delegation", list);
	}
	if (k->cut)
		json_object_set_new(agent, "sub_cgroup", json_string("run-12/B-\"34\""));
	if (k->inbound && !json_object_set_new(agent, "client", json_string("cli\xe2\x82\xac")))
		json_object_set_new(agent, "subject", json_string("user\n1"));
	return agent;
}

static size_t new_agent(const struct call_case *k, struct ag_audit_member *a)
{
	size_t n = 0;

	a[n++] = AG_AM_S("name", chain_names[k->chain]);
	a[n++] = AG_AM_I("cgroup_id", 9007199254740993LL);
	a[n++] = AG_AM_I("run_cgroup_id", 42);
	a[n++] = AG_AM_I("pid", 4242);
	a[n++] = AG_AM_I("uid", (int)4294967294u);
	a[n++] = AG_AM_S("comm", "ag\\x01\\x7f\xc3\xa9");
	if (k->chain)
		a[n++] = (struct ag_audit_member){
			.key = "delegation", .type = AG_AM_STRV, .strv = chain_names, .n = k->chain
		};
	if (k->cut)
		a[n++] = AG_AM_S("sub_cgroup", "run-12/B-\"34\"");
	if (k->inbound) {
		a[n++] = AG_AM_S("client", "cli\xe2\x82\xac");
		a[n++] = AG_AM_S("subject", "user\n1");
	}
	return n;
}

/* The decision record as mcp_audit.c built it before members, redaction included. */
static json_t *old_decision(const struct call_case *k, const json_t *args, const json_t *id)
{
	static const char *const flag[] = { "first_tool", "rate" };
	json_t *rec =
	    json_pack("{s:o,s:s,s:s?,s:O?,s:s,s:b,s:s,s:s?,s:o?,s:s?}", "agent", old_agent(k),
		      "server", "files", "method", "tools/call", "id", id, "decision", "deny",
		      "hidden", 0, "rule", "policy", "reason", k->reason, "args",
		      args ? json_deep_copy(args) : NULL, "session", k->session);
	json_t *flags = NULL;
	struct ag_err err;

	if (rec && k->name)
		json_object_set_new(rec, k->target, json_string(k->name));
	if (rec && k->policies) {
		json_t *ids = json_array();

		for (const char *p = k->policies; ids && *p;) {
			size_t n = strcspn(p, ",");

			json_array_append_new(ids, json_stringn(p, n));
			p += n + (p[n] == ',');
		}
		json_object_set_new(rec, "policies", ids);
	}
	for (int f = 0; f < 2; f++)
		if (k->anomaly[f] && (flags || (flags = json_array())))
			json_array_append_new(flags, json_string(flag[f]));
	if (rec && flags)
		json_object_set_new(rec, "anomaly", flags);
	if (rec && k->commit)
		json_object_set_new(rec, "policy_commit", json_string(k->commit));
	if (rec && k->operator_name)
		json_object_set_new(rec, "operator", json_string(k->operator_name));
	if (rec && ag_audit_redact(rec, "args", k->redact, &err)) {
		json_decref(rec);
		rec = NULL;
	}
	return rec;
}

/* The same record as mcp_audit.c gives it now. */
static size_t new_decision(const struct call_case *k, const json_t *args, const json_t *id,
			   struct ag_audit_member *agent, struct ag_audit_member *f)
{
	static const char *const flag[] = { "first_tool", "rate" };
	static const char *flags[2];
	size_t n = 0, nflags = 0;

	for (int i = 0; i < 2; i++)
		if (k->anomaly[i])
			flags[nflags++] = flag[i];
	f[n++] = (struct ag_audit_member){
		.key = "agent", .type = AG_AM_OBJ, .obj = agent, .n = new_agent(k, agent)
	};
	f[n++] = AG_AM_S("server", "files");
	f[n++] = AG_AM_S("method", "tools/call");
	f[n++] = AG_AM_J("id", id);
	f[n++] = AG_AM_S("decision", "deny");
	f[n++] = AG_AM_B("hidden", false);
	f[n++] = AG_AM_S("rule", "policy");
	f[n++] = AG_AM_S("reason", k->reason);
	f[n++] = (struct ag_audit_member){
		.key = "args", .type = AG_AM_JSON, .j = args, .redact = k->redact
	};
	f[n++] = AG_AM_S("session", k->session);
	if (k->name)
		f[n++] = AG_AM_S(k->target, k->name);
	if (k->policies)
		f[n++] = (struct ag_audit_member){ .key = "policies",
						   .type = AG_AM_CSV,
						   .s = k->policies };
	if (nflags)
		f[n++] = (struct ag_audit_member){
			.key = "anomaly", .type = AG_AM_STRV, .strv = flags, .n = nflags
		};
	if (k->commit)
		f[n++] = AG_AM_S("policy_commit", k->commit);
	if (k->operator_name)
		f[n++] = AG_AM_S("operator", k->operator_name);
	return n;
}

/* The result record, before (json_pack) and now (members). */
static json_t *old_result(const struct call_case *k, const json_t *msg, bool latency)
{
	json_t *result = json_object_get(msg, "result");

	return json_pack(
	    "{s:o,s:s,s:s?,s:O?,s:i,s:b,s:O?,s:o*,s:s?,s:o*,s:o*}", "agent", old_agent(k), "server",
	    "files", k->target, k->name, "id", json_object_get(msg, "id"), "upstream_status", 502,
	    "is_error", json_is_true(json_object_get(result, "isError")), "error",
	    json_object_get(msg, "error"), "latency_us", latency ? json_integer(1234567) : NULL,
	    "session", k->session, "redactions",
	    k->redact == AG_AUDIT_REDACT_DROP
		? json_pack("{s:[{s:s,s:s,s:I,s:I}],s:I,s:s?}", "hits", "rule", "pem", "path",
			    "$.content[0].text", "offset", (json_int_t)3, "len", (json_int_t)40,
			    "total", (json_int_t)1, "refused_by", NULL)
		: NULL,
	    "unattributed", k->name ? NULL : json_true());
}

static size_t new_result(const struct call_case *k, const json_t *msg, bool latency,
			 json_t *redactions, struct ag_audit_member *agent,
			 struct ag_audit_member *f)
{
	size_t n = 0;

	f[n++] = (struct ag_audit_member){
		.key = "agent", .type = AG_AM_OBJ, .obj = agent, .n = new_agent(k, agent)
	};
	f[n++] = AG_AM_S("server", "files");
	f[n++] = AG_AM_S(k->target, k->name);
	f[n++] = AG_AM_J("id", json_object_get(msg, "id"));
	f[n++] = AG_AM_I("upstream_status", 502);
	f[n++] = AG_AM_B("is_error",
			 json_is_true(json_object_get(json_object_get(msg, "result"), "isError")));
	f[n++] = AG_AM_J("error", json_object_get(msg, "error"));
	if (latency)
		f[n++] = AG_AM_I("latency_us", 1234567);
	f[n++] = AG_AM_S("session", k->session);
	if (redactions)
		f[n++] = AG_AM_J("redactions", redactions);
	if (!k->name)
		f[n++] = AG_AM_B("unattributed", true);
	return n;
}

static const struct call_case call_cases[] = {
	{ .args = "{\"path\":\"/etc/passwd\",\"n\":1}",
	  .id = "1",
	  .name = "read_file",
	  .target = "tool" },
	{ .args = "{\"text\":\"caf\\u00e9 \\ud83d\\ude00 \\\"q\\\" \\\\ \\n\\t\\u0001\\u007f\","
		  "\"big\":18446744073709551615,\"neg\":-9223372036854775808,"
		  "\"f\":[0.1,1e300,-0.0,5e-324,123456789.125],"
		  "\"nested\":{\"z\":{\"a\":[true,false,null,{}],\"\":[]},\"A\":\"\"}}",
	  .redact = AG_AUDIT_REDACT_HASH,
	  .id = "\"req-\\u00e9\"",
	  .name = "write_file",
	  .target = "tool",
	  .reason = "policy \"p1\" denies\nwrite",
	  .session = "s-1",
	  .policies = "p1,p-2",
	  .commit = "0123456789abcdef0123456789abcdef01234567",
	  .anomaly = { true, true },
	  .chain = 2,
	  .cut = true,
	  .inbound = true,
	  .operator_name = "alice" },
	{ .args = "{\"secret\":\"sk-\\u0000nul\",\"list\":[1,2,{\"k\":\"v\"}]}",
	  .redact = AG_AUDIT_REDACT_HASH,
	  .id = "null",
	  .name = "docs://a/b",
	  .target = "resource",
	  .policies = "only",
	  .anomaly = { false, true },
	  .chain = 1 },
	{ .args = "[\"not\",\"an\",\"object\",1.5]",
	  .redact = AG_AUDIT_REDACT_HASH,
	  .id = "7",
	  .name = "prompt-\xe2\x82\xac",
	  .target = "prompt",
	  .session = "",
	  .cut = true },
	{ .args = "\"a string\"",
	  .redact = AG_AUDIT_REDACT_DROP,
	  .id = "-3",
	  .name = "t",
	  .target = "tool",
	  .policies = "a,,b,",
	  .inbound = true },
	{ .args = NULL,
	  .redact = AG_AUDIT_REDACT_HASH,
	  .id = NULL,
	  .name = NULL,
	  .target = "tool" },
	{ .args = NULL,
	  .redact = AG_AUDIT_REDACT_FULL,
	  .id = "{\"odd\":[1]}",
	  .name = NULL,
	  .target = "route",
	  .reason = "" },
	{ .args = "{}", .redact = AG_AUDIT_REDACT_HASH, .id = "2", .name = "e", .target = "tool" },
	{ .args = "{\"nul\":\"a\\u0000b\"}",
	  .redact = AG_AUDIT_REDACT_FULL,
	  .id = "3",
	  .name = "n",
	  .target = "tool" },
};

static json_t *loads_or_null(const char *text)
{
	return text ? json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL) : NULL;
}

/*
 * jansson's parser refuses a key holding U+0000, so no request's arguments
 * have one, and json_deep_copy (the tree path's copy) would cut it short.
 */
static bool has_nul_key(const json_t *v)
{
	const char *key;
	json_t *m;
	size_t i;

	json_object_foreach((json_t *)v, key, m)
	{
		if (strlen(key) != json_object_iter_key_len(json_object_key_to_iter(key)) ||
		    has_nul_key(m))
			return true;
	}
	json_array_foreach(v, i, m)
	{
		if (has_nul_key(m))
			return true;
	}
	return false;
}

TEST(audit_members)
{
	struct ag_audit_buf buf = { 0 };

	if (test__start_subtest("old_records")) {
		/* Byte for byte what the json_pack records of mcp_audit.c gave. */
		for (size_t i = 0; i < sizeof(call_cases) / sizeof(call_cases[0]); i++) {
			const struct call_case *k = &call_cases[i];
			json_t *args = loads_or_null(k->args), *id = loads_or_null(k->id);
			json_t *msg =
			    json_pack("{s:O?,s:{s:b},s:O?}", "id", id, "result", "isError",
				      (int)(i & 1), "error", i % 3 ? NULL : args);
			json_t *old = old_decision(k, args, id), *red;
			struct ag_audit_member agent[AG_AUDIT_MEMBERS_MAX], f[AG_AUDIT_MEMBERS_MAX];
			char what[48];
			size_t n;
			bool ok;

			snprintf(what, sizeof(what), "decision %zu", i);
			n = new_decision(k, args, id, agent, f);
			ok = members_agree(old, f, n, &buf, what);
			json_decref(old);
			for (int lat = 0; ok && lat < 2; lat++) {
				snprintf(what, sizeof(what), "result %zu latency %d", i, lat);
				old = old_result(k, msg, lat);
				red = json_deep_copy(json_object_get(old, "redactions"));
				n = new_result(k, msg, lat, red, agent, f);
				ok = members_agree(old, f, n, &buf, what);
				json_decref(red);
				json_decref(old);
			}
			json_decref(args);
			json_decref(id);
			json_decref(msg);
			if (!ok)
				break;
		}
	}
	if (test__start_subtest("random_members")) {
		/* Every member type, arguments from random trees, any order, any redaction. */
		static const char *const keys[] = { "agent",  "args", "decision", "id",
						    "method", "rule", "server",	  "tool",
						    "zz",     "a",    "policies", "error" };
		unsigned int rs = 20261207;

		for (int i = 0; i < 2000; i++) {
			struct ag_audit_member f[12], inner[4];
			json_t *vals[12] = { 0 }, *tree;
			char text[12][64], what[32];
			const char *strv[3] = { "x", "\xc3\xa9", "" };
			size_t n = 0;
			bool ok;

			for (size_t k = 0; k < 12; k++) {
				size_t len;

				if (rand_r(&rs) % 3 == 0)
					continue;
				random_text(&rs, text[k], sizeof(text[k]) - 1, &len);
				text[k][len] = '\0';
				switch (rand_r(&rs) % 7) {
				case 0:
					f[n++] = AG_AM_S(keys[k], rand_r(&rs) % 5 ? text[k] : NULL);
					break;
				case 1:
					f[n++] = AG_AM_I(keys[k], (long long)rand_r(&rs) *
								      (rand_r(&rs) % 2 ? -1 : 1) *
								      1000003LL);
					break;
				case 2:
					f[n++] = AG_AM_B(keys[k], rand_r(&rs) % 2);
					break;
				case 3:
					do {
						json_decref(vals[k]);
						vals[k] =
						    rand_r(&rs) % 8 ? random_json(&rs, 1) : NULL;
					} while (has_nul_key(vals[k]));
					f[n++] = (struct ag_audit_member){
						.key = keys[k],
						.type = AG_AM_JSON,
						.j = vals[k],
						.redact = (enum ag_audit_redact)(rand_r(&rs) % 3)
					};
					break;
				case 4:
					inner[0] = AG_AM_S("name", text[k]);
					inner[1] = AG_AM_I("pid", rand_r(&rs));
					inner[2] = AG_AM_S("comm", "c");
					inner[3] = AG_AM_B("b", true);
					f[n++] = (struct ag_audit_member){ .key = keys[k],
									   .type = AG_AM_OBJ,
									   .obj = inner,
									   .n = 4 };
					break;
				case 5:
					f[n++] =
					    (struct ag_audit_member){ .key = keys[k],
								      .type = AG_AM_STRV,
								      .strv = strv,
								      .n =
									  (size_t)rand_r(&rs) % 4 };
					break;
				default:
					f[n++] = (struct ag_audit_member){ .key = keys[k],
									   .type = AG_AM_CSV,
									   .s = text[k] };
				}
			}
			snprintf(what, sizeof(what), "random record %d", i);
			tree = ag_audit_members_json(f, n);
			ok = members_agree(tree, f, n, &buf, what);
			json_decref(tree);
			for (size_t k = 0; k < 12; k++)
				json_decref(vals[k]);
			if (!ok)
				break;
		}
	}
	if (test__start_subtest("refusals")) {
		json_t *big = json_array();
		struct ag_audit_member f[2];
		uint32_t at[4];
		size_t cap;

		f[0] = AG_AM_S("a", "\xc3(");
		ASSERT_EQ(ag_audit_canon_members(&buf, 1 << 20, f, 1, NULL, 0, NULL), -EILSEQ,
			  "bad UTF-8");
		f[1] = AG_AM_I("a", 1);
		f[0] = AG_AM_S("a", "x");
		ASSERT_EQ(ag_audit_canon_members(&buf, 1 << 20, f, 2, NULL, 0, NULL), -EINVAL,
			  "a key twice");
		ASSERT_EQ(ag_audit_canon_members(&buf, 1 << 20, f, AG_AUDIT_MEMBERS_MAX + 1, NULL,
						 0, NULL),
			  -E2BIG, "too many members");
		f[0] = AG_AM_S("k", "0123456789");
		ASSERT_EQ(ag_audit_canon_members(&buf, 17, f, 1, NULL, 0, NULL), -E2BIG,
			  "over max, with a larger buffer kept from before");
		ASSERT_OK(ag_audit_canon_members(&buf, 18, f, 1, NULL, 0, NULL), "exactly max");
		ASSERT_EQ(buf.len, 18, "length");
		/* 2 MiB of arguments hash to a record of a few bytes; the buffer is trimmed. */
		for (int i = 0; big && i < 200000; i++)
			json_array_append_new(big, json_string("0123456789"));
		f[0] = (struct ag_audit_member){
			.key = "args", .type = AG_AM_JSON, .j = big, .redact = AG_AUDIT_REDACT_HASH
		};
		if (ASSERT_OK(ag_audit_canon_members(&buf, 1 << 20, f, 1, reserved4, 4, at),
			      "hashed beyond max"))
			ASSERT_EQ(buf.len, strlen("{\"args\":{\"sha256\":\"\"}}") + 64, "hashed");
		cap = buf.cap;
		ag_audit_buf_trim(&buf);
		ASSERT_TRUE(cap > AG_AUDIT_BUF_KEEP && !buf.b && !buf.cap, "trimmed");
		json_decref(big);
	}
	if (test__start_subtest("written_and_verified")) {
		/* The writer splices its members into members' records as into trees'. */
		const struct call_case *k = &call_cases[1];
		json_t *args = loads_or_null(k->args), *id = loads_or_null(k->id), *old;
		struct ag_audit_member agent[AG_AUDIT_MEMBERS_MAX], f[AG_AUDIT_MEMBERS_MAX];
		struct ag_audit_verify_result r;
		struct ag_audit_config c;
		struct ag_audit_writer *w;
		struct lines l = { 0 };
		struct ag_err err;
		uint64_t seq;
		struct fx fx;
		size_t n;

		if (fx_init(&fx)) {
			test_config(&c, &fx);
			old = old_decision(k, args, id);
			n = new_decision(k, args, id, agent, f);
			if (ASSERT_OK(ag_audit_open(&c, &w, &err), err.msg)) {
				for (int i = 0; i < 40; i++)
					ASSERT_OK(
					    i % 2 ? ag_audit_append(w, "decision", old, &seq, &err)
						  : ag_audit_append_members(
							w, "decision", f, n, &buf,
							i % 4 ? AG_AUDIT_NOW : AG_AUDIT_LATER, &seq,
							&err),
					    err.msg);
				f[n] = AG_AM_S("seq", "mine");
				ASSERT_EQ(ag_audit_append_members(w, "decision", f, n + 1, &buf,
								  AG_AUDIT_NOW, &seq, &err),
					  -EINVAL, "a reserved member");
				ASSERT_OK(ag_audit_close(w, &err), err.msg);
			}
			ASSERT_OK(verify(fx.log, fx.key, NULL, false, &r), "verify");
			if (ASSERT_TRUE(lines_read(fx.log, &l) && l.n > 41, "lines")) {
				/* Alike but for the chain's own members. */
				json_t *a = json_loads(l.v[0], 0, NULL),
				       *b = json_loads(l.v[1], 0, NULL);

				for (size_t i = 0; a && b && i < 4; i++) {
					json_object_del(a, reserved4[i]);
					json_object_del(b, reserved4[i]);
				}
				ASSERT_TRUE(a && b && json_equal(a, b), "records alike");
				json_decref(a);
				json_decref(b);
			}
			lines_free(&l);
			json_decref(old);
			fx_fini(&fx);
		}
		json_decref(args);
		json_decref(id);
	}
	if (test__start_subtest("later_waits_for_flush")) {
		/* A record no caller waits for is written by the next flush. */
		struct ag_audit_member f[] = { AG_AM_S("tool", "t/echo") };
		struct ag_audit_config c;
		struct ag_audit_writer *w;
		struct ag_err err;
		uint64_t now_seq = 0, later_seq = 0;
		struct fx fx;

		if (fx_init(&fx)) {
			test_config(&c, &fx);
			/* No timer wakes the committer meanwhile. */
			c.durability = AG_AUDIT_WRITTEN;
			c.sync_ms = 60000;
			c.checkpoint_ms = AG_AUDIT_INTERVAL_MS;
			if (ASSERT_OK(ag_audit_open(&c, &w, &err), err.msg)) {
				ASSERT_OK(ag_audit_append_members(w, "result", f, 1, &buf, AG_AUDIT_NOW,
								  &now_seq, &err),
					  err.msg);
				ASSERT_GT(ag_audit_written(w), now_seq, "NOW: written on return");
				ASSERT_OK(ag_audit_append_members(w, "result", f, 1, &buf,
								  AG_AUDIT_LATER, &later_seq, &err),
					  err.msg);
				ASSERT_LE(ag_audit_written(w), later_seq, "LATER: queued only");
				ag_audit_flush(w);
				ASSERT_GT(ag_audit_written(w), later_seq, "written by the flush");
				ASSERT_OK(ag_audit_close(w, &err), err.msg);
			}
			fx_fini(&fx);
		}
	}
	ag_audit_buf_free(&buf);
}

TEST(audit_keys)
{
	struct ag_audit_key *key = NULL;
	struct ag_err err;
	struct fx f = { 0 };

	if (test__start_subtest("key_permissions")) {
		struct ag_audit_config c;
		struct ag_audit_writer *w;
		struct stat st;
		char *vkey;

		if (fx_init(&f) && ASSERT_OK(ag_audit_key_open(f.key, true, &key, &err), err.msg) &&
		    ASSERT_OK(stat(f.key, &st), "stat") &&
		    ASSERT_EQ(st.st_mode & 0777, 0600, "created 0600")) {
			vkey = ag_audit_key_vkey(key, "agentgate");
			ASSERT_TRUE(vkey && !strncmp(vkey, "agentgate+", 10), "vkey");
			free(vkey);
			ag_audit_key_free(key);
			key = NULL;
			chmod(f.key, 0644);
			ASSERT_EQ(ag_audit_key_open(f.key, false, &key, &err), -EPERM, "0644 key");
			ASSERT_TRUE(strstr(err.msg, f.key) && strstr(err.msg, "0644"), err.msg);
			test_config(&c, &f);
			ASSERT_EQ(ag_audit_open(&c, &w, &err), -EPERM, "writer refuses it");
			chmod(f.key, 0640);
			ASSERT_EQ(ag_audit_key_open(f.key, false, &key, &err), -EPERM, "0640 key");
		}
		ag_audit_key_free(key);
		fx_fini(&f);
	}
}

/* Fills the filesystem holding dir; returns the filler's path in buf. */
static bool fill_fs(const char *dir, char *buf, size_t len)
{
	static char block[4096];
	int fd;

	snprintf(buf, len, "%s/filler", dir);
	fd = open(buf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (!ASSERT_GE(fd, 0, "filler"))
		return false;
	memset(block, 'x', sizeof(block));
	while (write(fd, block, sizeof(block)) > 0)
		;
	/* Fill the last partial block too. */
	while (write(fd, block, 1) > 0)
		;
	close(fd);
	return true;
}

/*
 * Fills the filesystem holding dir, then appends padded records until one is
 * not made durable (the log's last page may still have room); returns that
 * wait's error and the record's seq in *failed_seq.
 */
static int fill_until_failure(struct ag_audit_writer *w, const char *dir, char *filler, size_t len,
			      uint64_t *failed_seq, struct ag_err *err)
{
	static char pad[1001];
	uint64_t seq;
	int ret = 0;

	if (!fill_fs(dir, filler, len))
		return -1;
	memset(pad, 'p', sizeof(pad) - 1);
	for (unsigned int i = 0; i < 256 && !ret; i++) {
		json_t *ev = json_pack("{s:s, s:s}", "tool", "pad", "args", pad);

		ret = ag_audit_append(w, "decision", ev, &seq, err);
		if (!ret)
			ret = ag_audit_wait(w, *failed_seq = seq, err);
		json_decref(ev);
	}
	return ret;
}

TEST(audit_disk_full)
{
	struct ag_audit_verify_result r;
	struct ag_audit_config c;
	struct ag_audit_writer *w = NULL;
	struct ag_err err;
	struct fx f = { 0 };
	char mnt[96], filler[128];
	bool mounted = false;
	uint64_t seq, failed_seq = 0, durable;
	size_t lines_before = 0, lines_now = 0;
	int ret = 0;

	if (!fx_init(&f))
		return;
	snprintf(mnt, sizeof(mnt), "%s/mnt", f.dir);
	if (!ASSERT_OK(mkdir(mnt, 0700), "mkdir"))
		goto out;
	/*
	 * In a mount namespace of its own (this test's process), the tmpfs goes
	 * away with the process even if the test crashes before cleanup.
	 */
	if (!unshare(CLONE_NEWNS))
		mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=256k")) {
		test__skip("cannot mount tmpfs: %s", strerror(errno));
		goto out;
	}
	mounted = true;
	test_config(&c, &f);
	snprintf(f.log, sizeof(f.log), "%s/audit.log", mnt);
	c.durability = AG_AUDIT_SYNC;
	c.retry_ms = 20;
	if (!ASSERT_OK(ag_audit_open(&c, &w, &err), err.msg))
		goto out;
	for (unsigned int i = 0; i < 5; i++) {
		json_t *ev = event("before", i);

		ASSERT_OK(ag_audit_append(w, "decision", ev, &seq, &err), err.msg);
		ASSERT_OK(ag_audit_wait(w, seq, &err), err.msg);
		json_decref(ev);
	}
	ret = fill_until_failure(w, mnt, filler, sizeof(filler), &failed_seq, &err);
	if (!ASSERT_EQ(ret, -EIO, "disk full fails the writer"))
		goto out;
	ASSERT_TRUE(strstr(err.msg, "No space left") != NULL, err.msg);
	ASSERT_TRUE(ag_audit_failed(w, &err), "failed state");
	{
		json_t *ev = event("refused", 0);

		ASSERT_EQ(ag_audit_append(w, "decision", ev, &seq, &err), -EIO, "refused");
		json_decref(ev);
	}
	ASSERT_TRUE(whole_records(f.log, &lines_before), "whole records while full");
	ASSERT_EQ(lines_before, failed_seq, "only durable records in the file");
	unlink(filler);
	for (int i = 0; i < 300 && ag_audit_failed(w, NULL); i++)
		usleep(10000);
	if (!ASSERT_FALSE(ag_audit_failed(w, &err), "recovered"))
		goto out;
	durable = ag_audit_durable(w);
	ASSERT_GT(durable, failed_seq, "accepted record written on recovery");
	{
		json_t *ev = event("after", 0);

		ASSERT_OK(ag_audit_append(w, "decision", ev, &seq, &err), err.msg);
		ASSERT_EQ(seq, durable, "seq continues without a gap");
		ASSERT_OK(ag_audit_wait(w, seq, &err), err.msg);
		json_decref(ev);
	}
	ASSERT_OK(ag_audit_close(w, &err), err.msg);
	w = NULL;
	ASSERT_TRUE(whole_records(f.log, &lines_now), "whole records after recovery");
	ASSERT_OK(verify(f.log, f.key, NULL, false, &r), r.reason);
	ASSERT_EQ(r.records, seq + 2, "all records, then the final checkpoint");

	/* Closing while failed gives up with -EIO; a reopened writer continues. */
	if (!ASSERT_OK(ag_audit_open(&c, &w, &err), err.msg))
		goto out;
	ret = fill_until_failure(w, mnt, filler, sizeof(filler), &failed_seq, &err);
	ASSERT_EQ(ret, -EIO, "full again");
	ASSERT_EQ(ag_audit_close(w, &err), -EIO, "close while failed");
	w = NULL;
	ASSERT_TRUE(whole_records(f.log, &lines_now), "whole records after giving up");
	ASSERT_EQ(lines_now, failed_seq, "nothing after the last durable record");
	unlink(filler);
	if (append_events(&f, &c, "reopened", 2)) {
		ASSERT_OK(verify(f.log, f.key, NULL, false, &r), r.reason);
		ASSERT_EQ(r.records, failed_seq + 3, "reopened after the durable records");
	}
out:
	if (w)
		ag_audit_close(w, NULL);
	if (mounted)
		umount2(mnt, MNT_DETACH);
	fx_fini(&f);
}

/*
 * A writer killed before its next checkpoint: a child process appends n
 * events with the test config (checkpoint_ms overriding it if not 0), waits
 * until they are durable and exits without closing.
 */
static bool killed_writer(const struct fx *f, unsigned int n, unsigned int checkpoint_ms)
{
	int status = -1;
	pid_t pid = fork();

	if (!pid) {
		struct ag_audit_config c;
		struct ag_audit_writer *w;
		uint64_t seq = 0;

		test_config(&c, f);
		if (checkpoint_ms)
			c.checkpoint_ms = checkpoint_ms;
		if (ag_audit_open(&c, &w, NULL))
			_exit(1);
		for (unsigned int i = 0; i < n; i++) {
			json_t *ev = event("k", i);

			if (ag_audit_append(w, "decision", ev, &seq, NULL))
				_exit(1);
			json_decref(ev);
		}
		_exit(ag_audit_wait(w, seq, NULL) ? 1 : 0);
	}
	return ASSERT_GT(pid, 0, "fork") && ASSERT_EQ(waitpid(pid, &status, 0), pid, "waitpid") &&
	       ASSERT_EQ(status, 0, "the killed writer's records are durable");
}

/* Whether line i of the log at path is a checkpoint. */
static bool is_checkpoint_line(const char *path, size_t i)
{
	struct lines l;
	bool yes;

	if (!lines_read(path, &l))
		return false;
	yes = i < l.n && strstr(l.v[i], "\"kind\":\"checkpoint\"") != NULL;
	lines_free(&l);
	return yes;
}

/*
 * Appends n records to l as someone without the key would: canonical,
 * chained, unsigned; record i is stamped start + i * step_ms.
 */
static bool forge_tail(struct lines *l, unsigned int n, time_t start, unsigned int step_ms)
{
	for (unsigned int i = 0; i < n; i++) {
		uint8_t h[AG_AUDIT_HASH_LEN] = { 0 };
		char hex[AG_AUDIT_HEX_LEN + 1], ts[AG_AUDIT_TS_LEN];
		uint64_t ms = (uint64_t)i * step_ms;
		struct timespec t = { start + (time_t)(ms / 1000), (long)(ms % 1000) * 1000000 };
		json_t *obj;

		if (l->n)
			ag_audit_line_hash(l->v[l->n - 1], strlen(l->v[l->n - 1]), h);
		ag_audit_hex(h, hex);
		ag_audit_format_ts(&t, ts);
		obj = json_pack("{s:s, s:s, s:s, s:I, s:s}", "kind", "decision", "tool", "forged",
				"prev", hex, "seq", (json_int_t)l->n, "ts", ts);
		l->v = reallocarray(l->v, l->n + 1, sizeof(*l->v));
		if (!ASSERT_OK_PTR(l->v, "lines") || !ASSERT_OK_PTR(obj, "forged record"))
			return false;
		l->v[l->n++] = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
		json_decref(obj);
	}
	return true;
}

/* agentgatectl audit verify --pubkey --allow-unsigned-tail: exit status, output in *out. */
static int ctl_verify_tail(const struct fx *f, char **out)
{
	int status = run_capture(out,
				 "%s/agentgatectl audit verify --pubkey %s --allow-unsigned-tail "
				 "%s 2>&1",
				 testlib_build_dir(), f->key, f->log);

	if (test__verbose())
		fprintf(stderr, "verify %s: %d: %s", f->log, status, *out);
	return status;
}

TEST(redteam_audit_tail)
{
	struct ag_audit_verify_result r;
	struct ag_audit_config c;
	struct ag_audit_writer *w;
	struct ag_err err;
	struct lines l = { 0 };
	struct fx f = { 0 };
	char *out = NULL;

	/* A longer interval would let the writer leave tails the verifier refuses. */
	if (test__start_subtest("writer_interval_ceiling")) {
		if (fx_init(&f)) {
			test_config(&c, &f);
			c.checkpoint_records = AG_AUDIT_INTERVAL_RECORDS + 1;
			ASSERT_EQ(ag_audit_open(&c, &w, &err), -EINVAL, "checkpoint_records");
			ASSERT_STRHAS(err.msg, "checkpoint_records 1..4096",
				      "the message names it");
			test_config(&c, &f);
			c.checkpoint_ms = AG_AUDIT_INTERVAL_MS + 1;
			ASSERT_EQ(ag_audit_open(&c, &w, &err), -EINVAL, "checkpoint_ms");
			ASSERT_STRHAS(err.msg, "checkpoint_ms 0..60000", "the message names it");
		}
		fx_fini(&f);
	}
	/* The tail a crash left counts towards the next writer's checkpoint. */
	if (test__start_subtest("inherited_tail_records")) {
		/* 16 records, checkpoint 16, then 4 unsigned (17..20)... */
		if (fx_init(&f) && killed_writer(&f, 20, 0) &&
		    ASSERT_FALSE(is_checkpoint_line(f.log, 20), "unsigned tail") &&
		    /* ...and 12 more make 16: checkpoint 33, not 16 records later. */
		    killed_writer(&f, 12, 0))
			ASSERT_TRUE(is_checkpoint_line(f.log, 33), "checkpoint after 16 unsigned");
		fx_fini(&f);
	}
	/* Reopened later than one interval after its first record, a tail is signed first. */
	if (test__start_subtest("inherited_tail_time")) {
		if (fx_init(&f) && killed_writer(&f, 3, 300)) {
			usleep(400 * 1000);
			test_config(&c, &f);
			c.checkpoint_ms = 300;
			if (ASSERT_OK(ag_audit_open(&c, &w, &err), err.msg)) {
				json_t *ev = event("late", 0);
				uint64_t seq = 0;

				ASSERT_OK(ag_audit_append(w, "decision", ev, &seq, &err), err.msg);
				ASSERT_EQ(seq, 4, "checkpoint 3 signs the old tail first");
				json_decref(ev);
				ASSERT_OK(ag_audit_close(w, &err), err.msg);
				ASSERT_TRUE(is_checkpoint_line(f.log, 3), "checkpoint 3");
			}
		}
		fx_fini(&f);
	}
	/* An attacker without the key rewrites the whole log and drops the checkpoints. */
	if (test__start_subtest("rewritten_without_checkpoint")) {

		if (standard_log(&f, &l)) {
			lines_free(&l);
			if (forge_tail(&l, AG_AUDIT_INTERVAL_RECORDS + 1, time(NULL), 0) &&
			    lines_write(f.log, &l)) {
				ASSERT_EQ(ctl_verify_tail(&f, &out), 1, "rewritten log fails");
				ASSERT_STRHAS(
				    out,
				    "FAIL: unsigned records after the last checkpoint at seq "
				    "0: ",
				    "finding");
				ASSERT_STRHAS(
				    out,
				    "audit.log: 4097 records in a log without a checkpoint: "
				    "more than one checkpoint interval (4096 records / 60 s)",
				    "the cause");
			}
		}
		lines_free(&l);
		free(out);
		out = NULL;
		fx_fini(&f);
	}
	/* What a killed writer leaves verifies, with or without a checkpoint before. */
	if (test__start_subtest("killed_writer_passes")) {
		if (fx_init(&f) && killed_writer(&f, 5, 0)) {
			ASSERT_EQ(ctl_verify_tail(&f, &out), 0, "no checkpoint yet");
			ASSERT_STRHAS(out, "5 unsigned at the end", out);
			free(out);
			out = NULL;
			/* 16 more: checkpoint 16 signs 0..15, then 17..21 are unsigned. */
			if (killed_writer(&f, 16, 0)) {
				ASSERT_EQ(ctl_verify_tail(&f, &out), 0, "tail after a checkpoint");
				ASSERT_STRHAS(out, "5 unsigned at the end", out);
			}
		}
		free(out);
		out = NULL;
		fx_fini(&f);
	}
	if (test__start_subtest("tail_over_records")) {

		/* The signed log of 54 records, then an unsigned tail from 54 on. */
		if (standard_log(&f, &l) &&
		    forge_tail(&l, AG_AUDIT_INTERVAL_RECORDS + 1, time(NULL), 0) &&
		    lines_write(f.log, &l)) {
			ASSERT_EQ(ctl_verify_tail(&f, &out), 1, "one record too many");
			ASSERT_STRHAS(out,
				      "audit.log: 4097 records after the last checkpoint (seq 53): "
				      "more than one checkpoint interval (4096 records / 60 s)",
				      "the cause");
			expect(verify(f.log, f.key, NULL, true, &r), &r, AG_AUDIT_UNSIGNED_TAIL, 54,
			       "library");
			/* One interval exactly is what a killed writer can leave. */
			free(l.v[--l.n]);
			if (lines_write(f.log, &l)) {
				ASSERT_OK(verify(f.log, f.key, NULL, true, &r), r.reason);
				ASSERT_EQ(r.unsigned_tail, AG_AUDIT_INTERVAL_RECORDS, "tail");
			}
		}
		lines_free(&l);
		free(out);
		out = NULL;
		fx_fini(&f);
	}
	if (test__start_subtest("tail_over_time")) {
		size_t signed_n;
		/* Idle for an hour after the checkpoint: time counts from the tail's start. */
		time_t later = time(NULL) + 3600;

		if (standard_log(&f, &l)) {
			signed_n = l.n;
			/* Two records 61.001 s apart: one interval plus the slack, and 1 ms. */
			if (forge_tail(&l, 2, later, 61001) && lines_write(f.log, &l)) {
				ASSERT_EQ(ctl_verify_tail(&f, &out), 1, "too long a span");
				ASSERT_STRHAS(
				    out,
				    "audit.log: 2 records after the last checkpoint (seq "
				    "53) span 61.001 s: more than one checkpoint interval",
				    "the cause");
			}
			while (l.n > signed_n)
				free(l.v[--l.n]);
			if (forge_tail(&l, 2, later, 61000) && lines_write(f.log, &l)) {
				ASSERT_OK(verify(f.log, f.key, NULL, true, &r), r.reason);
				ASSERT_EQ(r.unsigned_tail, 2, "tail");
			}
		}
		lines_free(&l);
		free(out);
		out = NULL;
		fx_fini(&f);
	}
}

/*
 * agentgatectl audit tail -f: the last records, then what is appended, on
 * into the next file of the series once the writer rotates, whole lines
 * only (a line still being written waits for its newline).
 */
TEST(audit_tail_follows_rotation)
{
	char dir[] = "/tmp/agtail.XXXXXX", *out = NULL;

	if (!ASSERT_OK_PTR(mkdtemp(dir), "dir"))
		return;
	/* The log exists first; the writer's appends and rotation come while tail runs. */
	ASSERT_EQ(run_capture(&out,
			      "cd %s || exit 1; printf 'r1\\nr2\\n' > audit.log; "
			      "(sleep 0.5; printf 'r3\\nr4' >> audit.log; sleep 0.5; "
			      "printf '\\n' >> audit.log; printf 'r5\\n' > audit.log.1; sleep 0.5; "
			      "printf 'r6\\n' >> audit.log.1) & "
			      "timeout 3 %s/agentgatectl audit tail -f -n 1 audit.log",
			      dir, testlib_build_dir()),
		  124, "followed until stopped");
	ASSERT_STREQ(out, "r2\nr3\nr4\nr5\nr6\n", "the last record, then each appended, in order");
	free(out);
	run_capture(&out, "rm -rf %s", dir);
	free(out);
}
