// SPDX-License-Identifier: GPL-2.0
/*
 * The source tree's layout keeps its promises.
 *
 * Every file a comment or a document names exists: a path under one of the
 * tree's top directories ("daemon/decide.c", "docs/audit.md", a glob such
 * as "selftests/fuzz/fuzz_*.c" matching at least one file), and a bare file
 * name ("decide.h", "README.md") naming some file of the tree.  Read are
 * the comments of C sources and headers, the '#' comments of scripts and
 * the Makefile, and the whole of the documents.  A file a test writes
 * itself (its name ends a string literal of that test) is no reference.
 * A reader who follows a name to a file that is gone has been misled.
 *
 * One job per file: a C file of daemon/, lib/ or cli/ longer than
 * LONG_LINES says why at its top ("long on purpose: ...").
 */
#include <fnmatch.h>
#include <fts.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "testlib.h"

#define PATHS_MAX 4096
#define NAME_MAX_LEN 200
#define LONG_LINES 800
#define LONG_REASON_WITHIN 1024 /* bytes of the file's top */

/* The tree as the walk found it, paths relative to the source directory. */
struct tree {
	char *path[PATHS_MAX];
	size_t n;
};

static const char *const roots[] = { "bpf",	  "lib",     "daemon", "cli",  ".ci",
				     "selftests", "scripts", "bench",  "docs", "packaging" };

static bool skipped_dir(const char *rel)
{
	return !strcmp(rel, "selftests/e2e/node_modules");
}

static int tree_add(struct tree *t, const char *rel)
{
	if (t->n == PATHS_MAX || !(t->path[t->n] = strdup(rel)))
		return -1;
	t->n++;
	return 0;
}

/* The files below the source directory's roots and the top's own. */
static int tree_load(struct tree *t)
{
	char src[PATH_MAX], *dirs[sizeof(roots) / sizeof(roots[0]) + 1];
	size_t skip;
	FTSENT *e;
	FTS *fts;
	int ret = 0;

	memset(t, 0, sizeof(*t));
	snprintf(src, sizeof(src), "%s", testlib_src_dir());
	skip = strlen(src) + 1;
	for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++)
		if (asprintf(&dirs[i], "%s/%s", src, roots[i]) < 0)
			return -1; /* the test fails; what was allocated is not worth freeing */
	dirs[sizeof(roots) / sizeof(roots[0])] = NULL;
	fts = fts_open(dirs, FTS_PHYSICAL | FTS_NOCHDIR, NULL);
	while (fts && !ret && (e = fts_read(fts))) {
		if (e->fts_info == FTS_D && skipped_dir(e->fts_path + skip))
			fts_set(fts, e, FTS_SKIP);
		else if (e->fts_info == FTS_F)
			ret = tree_add(t, e->fts_path + skip);
	}
	if (!fts || (fts_close(fts) && !ret))
		ret = -1;
	for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++)
		free(dirs[i]);
	return ret ?: tree_add(t, "README.md") ?: tree_add(t, "Makefile") ?: tree_add(t, "vmlinux.h");
}

static void tree_free(struct tree *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->path[i]);
}

/*
 * A path of the tree, a glob one of its paths matches, or a module named
 * without its extension ("lib/hostport" for lib/hostport.c and .h).
 */
static bool tree_has_path(const struct tree *t, const char *p)
{
	size_t n = strlen(p);

	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->path[i], p) || (strchr(p, '*') && !fnmatch(p, t->path[i], 0)) ||
		    (!strncmp(t->path[i], p, n) &&
		     (!strcmp(t->path[i] + n, ".c") || !strcmp(t->path[i] + n, ".h"))))
			return true;
	/* A directory: some file lies below it. */
	for (size_t i = 0; i < t->n; i++)
		if (!strncmp(t->path[i], p, n) && t->path[i][n] == '/')
			return true;
	return false;
}

static bool tree_has_name(const struct tree *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++) {
		const char *slash = strrchr(t->path[i], '/');

		if (!strcmp(slash ? slash + 1 : t->path[i], name))
			return true;
	}
	return false;
}

static bool path_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '.' || c == '/' || c == '*';
}

static bool name_char(char c)
{
	return path_char(c) && c != '/' && c != '*';
}

static const char *const exts[] = { ".c", ".h", ".sh", ".md" };

/*
 * At s[at], one of exts that ends a name: the text ends there, or a
 * character no name has follows, or a full stop that ends a sentence.
 */
static bool bare_name_end(const char *s, size_t len, size_t at, size_t *ext_len)
{
	for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
		size_t n = strlen(exts[i]), e = at + n;

		if (e > len || strncmp(s + at, exts[i], n))
			continue;
		if (e < len && s[e] == '.')
			e++;
		if (e == len || !name_char(s[e])) {
			*ext_len = n;
			return true;
		}
	}
	return false;
}

static void report(const char *file, const char *what, const char *name)
{
	ASSERT_TRUE(false, "every named file exists");
	fprintf(stderr, "  %s: %s %s does not exist\n", file, what, name);
}

/* Paths "root/..." in text: each must be a file, directory or glob of the tree. */
static void check_paths(const struct tree *t, const char *file, const char *s, size_t len)
{
	char p[NAME_MAX_LEN];

	for (size_t i = 0; i < len; i++) {
		size_t n = 0;

		if (i && path_char(s[i - 1]))
			continue;
		for (size_t r = 0; r < sizeof(roots) / sizeof(roots[0]); r++) {
			size_t rl = strlen(roots[r]);

			if (i + rl < len && !strncmp(s + i, roots[r], rl) && s[i + rl] == '/')
				n = rl;
		}
		if (!n)
			continue;
		while (i + n < len && path_char(s[i + n]) && n < sizeof(p) - 1)
			n++;
		while (n && (s[i + n - 1] == '.' || s[i + n - 1] == '/'))
			n--; /* end of a sentence, or a directory's slash */
		memcpy(p, s + i, n);
		p[n] = 0;
		if (!tree_has_path(t, p))
			report(file, "path", p);
		i += n;
	}
}

/* The C source writes a file of this name: "NAME" or ".../NAME" is a literal. */
static bool written_here(const char *source, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = source ? strstr(source, name) : NULL; p; p = strstr(p + 1, name))
		if (p > source && (p[-1] == '"' || p[-1] == '/') && p[n] == '"')
			return true;
	return false;
}

/*
 * Bare names "x.c", "x.bpf.c", "README.md": each must name a file of the
 * tree, unless source (a C file's whole text, or NULL) writes it.
 */
static void check_names(const struct tree *t, const char *file, const char *source, const char *s,
			size_t len)
{
	char name[NAME_MAX_LEN];

	for (size_t i = 1; i < len; i++) {
		size_t ext_len, start = i;

		if (s[i] != '.' || !bare_name_end(s, len, i, &ext_len))
			continue;
		while (start && name_char(s[start - 1]))
			start--;
		if (start == i || (start && (s[start - 1] == '/' || s[start - 1] == '*')) ||
		    i + ext_len - start >= sizeof(name))
			continue; /* no name, part of a path, or not a name */
		memcpy(name, s + start, i + ext_len - start);
		name[i + ext_len - start] = 0;
		if (name[0] != '.' && !tree_has_name(t, name) && !written_here(source, name))
			report(file, "file", name);
	}
}

static void check_text(const struct tree *t, const char *file, const char *source, const char *s,
		       size_t len)
{
	check_paths(t, file, s, len);
	check_names(t, file, source, s, len);
}

/* The comments of C: "/" "*" ... "*" "/" and "//" to the end of the line. */
static void check_c(const struct tree *t, const char *file, const char *s)
{
	for (const char *p = s; *p; p++) {
		const char *end;

		if (*p == '"' || *p == '\'') {
			char q = *p;

			for (p++; *p && *p != q && *p != '\n'; p++)
				if (*p == '\\' && p[1])
					p++;
			if (!*p)
				return;
		} else if (p[0] == '/' && p[1] == '*') {
			end = strstr(p + 2, "*/");
			end = end ? end : p + strlen(p);
			check_text(t, file, s, p + 2, end - p - 2);
			p = *end ? end + 1 : end - 1;
		} else if (p[0] == '/' && p[1] == '/') {
			end = strchrnul(p, '\n');
			check_text(t, file, s, p + 2, end - p - 2);
			p = end - 1;
		}
	}
}

/* The '#' comments of shell scripts and the Makefile. */
static void check_hash(const struct tree *t, const char *file, const char *s)
{
	for (const char *line = s; *line;) {
		const char *end = strchrnul(line, '\n'), *hash = line;

		while (hash < end && (*hash == ' ' || *hash == '\t'))
			hash++;
		if (hash < end && *hash == '#' && hash[1] != '!')
			check_text(t, file, NULL, hash + 1, end - hash - 1);
		line = *end ? end + 1 : end;
	}
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcmp(s + n - m, suffix);
}

static void check_file(const struct tree *t, const char *rel)
{
	char path[PATH_MAX], *text = NULL;
	struct ag_err err;
	size_t len;

	if (!strncmp(rel, "selftests/fuzz/corpus/", 22) || !strcmp(rel, "vmlinux.h"))
		return; /* data, and a generated header */
	snprintf(path, sizeof(path), "%s/%s", testlib_src_dir(), rel);
	if (!ASSERT_OK(ag_read_file(path, 4 << 20, &text, &len, &err), rel))
		return;
	if (ends_with(rel, ".c") || ends_with(rel, ".h"))
		check_c(t, rel, text);
	else if (ends_with(rel, ".sh") || ends_with(rel, "Makefile") || ends_with(rel, ".in") ||
		 !strcmp(rel, ".ci/run"))
		check_hash(t, rel, text);
	else if (ends_with(rel, ".md") || ends_with(rel, ".5") || ends_with(rel, ".8"))
		check_text(t, rel, NULL, text, len);
	free(text);
}

TEST(layout_named_files_exist)
{
	struct tree t;

	if (!ASSERT_OK(tree_load(&t), "walk the source tree"))
		goto out;
	ASSERT_TRUE(tree_has_path(&t, "daemon/decide.c"), "the walk found the sources");
	for (size_t i = 0; i < t.n; i++)
		check_file(&t, t.path[i]);
out:
	tree_free(&t);
}

static size_t count_lines(const char *s)
{
	size_t n = 0;

	for (; (s = strchr(s, '\n')); s++)
		n++;
	return n;
}

TEST(layout_long_files_say_why)
{
	char path[PATH_MAX], *text;
	struct tree t;
	size_t lines;

	if (!ASSERT_OK(tree_load(&t), "walk the source tree"))
		goto out;
	for (size_t i = 0; i < t.n; i++) {
		const char *rel = t.path[i];

		if ((strncmp(rel, "daemon/", 7) && strncmp(rel, "lib/", 4) &&
		     strncmp(rel, "cli/", 4)) ||
		    (!ends_with(rel, ".c") && !ends_with(rel, ".h")))
			continue;
		snprintf(path, sizeof(path), "%s/%s", testlib_src_dir(), rel);
		if (!ASSERT_OK(ag_read_file(path, 4 << 20, &text, NULL, NULL), rel))
			continue;
		lines = count_lines(text);
		if (lines > LONG_LINES) {
			text[strnlen(text, LONG_REASON_WITHIN)] = 0;
			if (!ASSERT_TRUE(strstr(text, "long on purpose: "), "a long file says why"))
				fprintf(stderr, "  %s: %zu lines\n", rel, lines);
		}
		free(text);
	}
out:
	tree_free(&t);
}
