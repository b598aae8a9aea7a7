// SPDX-License-Identifier: GPL-2.0
/* The instance's JWT key directory: rotation, publication and pruning (layout in jwt.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "fileio.h"
#include "jwt.h"
#include "secret.h"

#define KEYRING_MAX 32 /* keys in the index: far more than rotations within 300 s */
#define INDEX_NAME "keys.json"
#define INDEX_MAX (64 * 1024)

struct key_entry {
	char kid[AG_JWT_KID_LEN + 1];
	enum ag_jwt_alg alg;
	int64_t created_at;
	int64_t retired_at; /* 0: the current key */
};

struct key_index {
	size_t n;
	struct key_entry e[KEYRING_MAX];
};

struct ag_keyring {
	size_t n;
	struct ag_jwt_key *keys[KEYRING_MAX]; /* keys[0] is current */
};

static bool entry_published(const struct key_entry *e, int64_t now)
{
	return !e->retired_at || now - e->retired_at <= AG_JWT_MAX_TTL;
}

/* The kid becomes part of a file name: only base64url characters of the right length. */
static bool kid_valid(const char *kid)
{
	if (strlen(kid) != AG_JWT_KID_LEN)
		return false;
	for (const char *p = kid; *p; p++) {
		if (!(*p >= 'A' && *p <= 'Z') && !(*p >= 'a' && *p <= 'z') &&
		    !(*p >= '0' && *p <= '9') && *p != '-' && *p != '_')
			return false;
	}
	return true;
}

/* dir/<prefix><name><suffix> into buf, refusing to truncate. */
static int dir_path(char *buf, size_t len, const char *dir, const char *prefix, const char *name,
		    const char *suffix, struct ag_err *err)
{
	int n = snprintf(buf, len, "%s/%s%s%s", dir, prefix, name, suffix);

	if (n < 0 || (size_t)n >= len)
		return ag_errf(err, ENAMETOOLONG, "%s: directory name too long", dir);
	return 0;
}

/* Reads dir's index; a missing index is an empty one. */
static int index_read(const char *dir, struct key_index *idx, struct ag_err *err)
{
	char path[PATH_MAX], *text;
	json_t *root, *keys, *k;
	json_error_t jerr;
	const char *current;
	size_t i, ncur = 0;
	int ret;

	memset(idx, 0, sizeof(*idx));
	ret = dir_path(path, sizeof(path), dir, "", INDEX_NAME, "", err);
	if (ret)
		return ret;
	ret = ag_read_file(path, INDEX_MAX, &text, NULL, err);
	if (ret == -ENOENT)
		return 0;
	if (ret)
		return ret;
	root = json_loads(text, 0, &jerr);
	free(text);
	if (!root)
		return ag_errf(err, EINVAL, "%s:%d: %s", path, jerr.line, jerr.text);
	current = json_string_value(json_object_get(root, "current"));
	keys = json_object_get(root, "keys");
	if (!current || !json_is_array(keys)) {
		ret =
		    ag_errf(err, EINVAL, "%s: expected {\"current\": KID, \"keys\": [...]}", path);
		goto out;
	}
	if (json_array_size(keys) > KEYRING_MAX) {
		ret = ag_errf(err, E2BIG, "%s: more than %d keys", path, KEYRING_MAX);
		goto out;
	}
	json_array_foreach(keys, i, k)
	{
		struct key_entry *e = &idx->e[idx->n];
		const char *kid = json_string_value(json_object_get(k, "kid"));
		const char *alg = json_string_value(json_object_get(k, "alg"));
		json_t *created = json_object_get(k, "created_at");
		json_t *retired = json_object_get(k, "retired_at");

		if (!kid || !kid_valid(kid) || !alg || !json_is_integer(created) ||
		    (retired && json_integer_value(retired) <= 0)) {
			ret =
			    ag_errf(err, EINVAL,
				    "%s: key %zu: bad kid, alg, created_at or retired_at", path, i);
			goto out;
		}
		ret = ag_jwt_alg_parse(alg, &e->alg, err);
		if (ret)
			goto out;
		memcpy(e->kid, kid, sizeof(e->kid));
		e->created_at = json_integer_value(created);
		e->retired_at = retired ? json_integer_value(retired) : 0;
		if (!strcmp(kid, current) != !e->retired_at) {
			ret = ag_errf(err, EINVAL,
				      "%s: key %s: retired_at must be set on every key "
				      "but the current one",
				      path, kid);
			goto out;
		}
		ncur += !e->retired_at;
		idx->n++;
	}
	if (ncur != 1)
		ret = ag_errf(err, EINVAL, "%s: current key %s is not listed once", path, current);
out:
	json_decref(root);
	return ret;
}

static json_t *index_json(const struct key_index *idx)
{
	json_t *keys = json_array();
	const char *current = NULL;

	for (size_t i = 0; keys && i < idx->n; i++) {
		const struct key_entry *e = &idx->e[i];
		json_t *k =
		    json_pack("{s:s,s:s,s:I}", "kid", e->kid, "alg", ag_jwt_alg_name(e->alg),
			      "created_at", (json_int_t)e->created_at);

		if (k && e->retired_at &&
		    json_object_set_new(k, "retired_at", json_integer(e->retired_at))) {
			json_decref(k);
			k = NULL;
		}
		if (!k || json_array_append_new(keys, k)) {
			json_decref(keys);
			keys = NULL;
		}
		if (!e->retired_at)
			current = e->kid;
	}
	/* "o" takes keys over even when packing fails; NULL keys fails it. */
	return json_pack("{s:s,s:o}", "current", current ? current : "", "keys", keys);
}

/* Replaces dir's index atomically: a crash leaves the old or the new one. */
static int index_write(const char *dir, const struct key_index *idx, struct ag_err *err)
{
	char path[PATH_MAX], *text, *grown;
	json_t *root;
	size_t len;
	int ret;

	ret = dir_path(path, sizeof(path), dir, "", INDEX_NAME, "", err);
	if (ret)
		return ret;
	root = index_json(idx);
	text = root ? json_dumps(root, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
	json_decref(root);
	len = text ? strlen(text) : 0;
	grown = text ? realloc(text, len + 2) : NULL; /* room for "\n" */
	if (!grown) {
		free(text);
		return ag_errf(err, ENOMEM, "%s: cannot build the index", path);
	}
	text = grown;
	text[len++] = '\n';
	ret = ag_file_write_atomic(path, text, len, 0600, err);
	free(text);
	return ret;
}

/* Reads, extends and rewrites the index; the caller holds the directory lock. */
static int rotate_locked(const char *dir, enum ag_jwt_alg alg, int64_t now, char *kid_out,
			 struct ag_err *err)
{
	struct key_index idx, next = { 0 };
	char path[PATH_MAX], pruned[KEYRING_MAX][AG_JWT_KID_LEN + 1];
	struct ag_jwt_key *k;
	size_t npruned = 0;
	int ret;

	ret = index_read(dir, &idx, err);
	if (ret)
		return ret;
	for (size_t i = 0; i < idx.n; i++) {
		struct key_entry e = idx.e[i];

		if (!e.retired_at)
			e.retired_at = now;
		if (entry_published(&e, now))
			next.e[next.n++] = e;
		else
			memcpy(pruned[npruned++], e.kid, sizeof(e.kid));
	}
	if (next.n >= KEYRING_MAX)
		return ag_errf(err, E2BIG, "%s: %d keys still published; retry in %d s", dir,
			       KEYRING_MAX, AG_JWT_MAX_TTL);
	ret = ag_jwt_key_generate(alg, &k, err);
	if (ret)
		return ret;
	ret = dir_path(path, sizeof(path), dir, "jwt-", ag_jwt_key_kid(k), ".pem", err);
	if (!ret)
		ret = ag_jwt_key_save(k, path, err);
	if (!ret) {
		struct key_entry *e = &next.e[next.n++];

		memcpy(e->kid, ag_jwt_key_kid(k), sizeof(e->kid));
		e->alg = alg;
		e->created_at = now;
		e->retired_at = 0;
		if (kid_out)
			memcpy(kid_out, e->kid, sizeof(e->kid));
		ret = index_write(dir, &next, err);
		if (ret)
			unlink(path);
	}
	ag_jwt_key_free(k);
	if (ret)
		return ret;
	/* Only once the index no longer names them, so a reader never misses a file. */
	for (size_t i = 0; i < npruned; i++) {
		if (!dir_path(path, sizeof(path), dir, "jwt-", pruned[i], ".pem", NULL))
			unlink(path);
	}
	return 0;
}

int ag_keyring_rotate(const char *dir, enum ag_jwt_alg alg, int64_t now, char *kid_out,
		      struct ag_err *err)
{
	int fd, ret;

	if (now <= 0)
		return ag_errf(err, EINVAL, "%s: rotation time %lld is not after the epoch", dir,
			       (long long)now);
	ret = ag_secret_dir_check(dir, 0700, err);
	if (ret)
		return ret;
	/* Two rotations at once would each retire the same key and lose one new key. */
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return ag_errf(err, errno, "%s: open: %s", dir, strerror(errno));
	if (flock(fd, LOCK_EX))
		ret = ag_errf(err, errno, "%s: lock: %s", dir, strerror(errno));
	else
		ret = rotate_locked(dir, alg, now, kid_out, err);
	close(fd);
	return ret;
}

int ag_keyring_open(const char *dir, int64_t now, struct ag_keyring **out, struct ag_err *err)
{
	struct ag_keyring *kr;
	struct key_index idx;
	char path[PATH_MAX];
	int ret;

	ret = ag_secret_dir_check(dir, 0, err);
	if (!ret)
		ret = index_read(dir, &idx, err);
	if (ret)
		return ret;
	if (!idx.n)
		return ag_errf(err, ENOENT,
			       "%s: no keys; create one with: agentgatectl keys rotate "
			       "--dir %s",
			       dir, dir);
	kr = calloc(1, sizeof(*kr));
	if (!kr)
		return ag_errf(err, ENOMEM, "%s: out of memory", dir);
	/* Two passes put the current key first. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < idx.n; i++) {
			const struct key_entry *e = &idx.e[i];
			struct ag_jwt_key *k;

			if (!e->retired_at != !pass || !entry_published(e, now))
				continue;
			ret = dir_path(path, sizeof(path), dir, "jwt-", e->kid, ".pem", err);
			if (!ret)
				ret = ag_jwt_key_load(path, &k, err);
			if (ret)
				goto fail;
			kr->keys[kr->n++] = k;
			if (strcmp(ag_jwt_key_kid(k), e->kid) || ag_jwt_key_alg(k) != e->alg) {
				ret = ag_errf(err, EINVAL,
					      "%s: key does not match its kid or alg "
					      "in " INDEX_NAME,
					      path);
				goto fail;
			}
		}
	}
	*out = kr;
	return 0;
fail:
	ag_keyring_free(kr);
	return ret;
}

void ag_keyring_free(struct ag_keyring *kr)
{
	if (!kr)
		return;
	for (size_t i = 0; i < kr->n; i++)
		ag_jwt_key_free(kr->keys[i]);
	free(kr);
}

const struct ag_jwt_key *ag_keyring_current(const struct ag_keyring *kr)
{
	return kr->keys[0];
}

int ag_keyring_jwks(const struct ag_keyring *kr, char **out, struct ag_err *err)
{
	return ag_jwks_json((const struct ag_jwt_key *const *)kr->keys, kr->n, out, err);
}
