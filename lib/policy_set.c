// SPDX-License-Identifier: GPL-2.0
/* Policy sets: loading files and directories, and what the API exposes of them. */
#define AG_POLICY_INTERNAL
#include "policy.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <openssl/evp.h>

#include "util.h"
#include "buf.h"

static bool same_scope(const struct agp_scope *a, const struct agp_scope *b)
{
	if (a->op != b->op || a->which != b->which || a->n_set != b->n_set)
		return false;
	if ((a->op == AGP_SC_IS || a->op == AGP_SC_IS_IN) &&
	    (a->is_tlen != b->is_tlen || memcmp(a->is_type, b->is_type, a->is_tlen)))
		return false;
	if (a->op != AGP_SC_IS && a->op != AGP_SC_IN_SET && !agp_uid_eq(&a->uid, &b->uid))
		return false;
	for (uint32_t i = 0; i < a->n_set; i++)
		if (!agp_uid_eq(&a->set[i], &b->set[i]))
			return false;
	return true;
}

static int intern_scope(struct ag_policy_set *set, struct agp_scope *sc)
{
	size_t i;

	if (sc->op == AGP_SC_ANY)
		return 0;
	for (i = 0; i < set->n_scopes; i++)
		if (same_scope(set->scopes[i], sc))
			break;
	if (i == set->n_scopes) {
		if (ag_grow(&set->scopes, &set->cap_scopes, set->n_scopes + 1, sizeof(*set->scopes),
			    32, UINT32_MAX))
			return -1;
		set->scopes[set->n_scopes++] = sc;
	}
	sc->memo = (uint32_t)i;
	return 0;
}

static struct ag_policy_set *set_new(struct ag_policy_error *err)
{
	struct ag_policy_set *set = calloc(1, sizeof(*set));

	if (set) {
		set->arena = agp_arena_new(SIZE_MAX / 2);
		set->sha = EVP_MD_CTX_new();
	}
	if (!set || !set->arena || !set->sha || !EVP_DigestInit_ex(set->sha, EVP_sha256(), NULL)) {
		ag_policy_set_free(set);
		agp_error(err, 0, 0, "policy set: out of memory");
		return NULL;
	}
	return set;
}

/* Names the path e (a variable followed by attributes) in buf, with lengths
 * so that any attribute name is unambiguous; returns the key length, or 0
 * when e is not such a path or its key does not fit. */
static size_t path_key(const struct agp_expr *e, char *buf, size_t cap)
{
	size_t n;
	int k;

	if (e->kind == AGP_E_VAR)
		return (size_t)snprintf(buf, cap, "%u", e->op);
	if (e->kind != AGP_E_ATTR)
		return 0;
	n = path_key(e->kid[0], buf, cap);
	if (!n)
		return 0;
	k = snprintf(buf + n, cap - n, "/%u:", e->nlen);
	if (k < 0 || (size_t)k >= cap - n || e->nlen >= cap - n - (size_t)k)
		return 0;
	memcpy(buf + n + k, e->name, e->nlen);
	return n + (size_t)k + e->nlen;
}

static int intern_path(struct ag_policy_set *set, struct agp_expr *e)
{
	char key[256];
	size_t len = path_key(e, key, sizeof(key)), i;

	if (!len)
		return 0;
	for (i = 0; i < set->n_paths; i++)
		if (set->paths[i].len == len && !memcmp(set->paths[i].key, key, len))
			break;
	if (i == set->n_paths) {
		if (i >= UINT32_MAX - 1)
			return 0;
		if (ag_grow(&set->paths, &set->cap_paths, i + 1, sizeof(*set->paths), 16, 0))
			return -1;
		set->paths[i].key = malloc(len);
		if (!set->paths[i].key)
			return -1;
		memcpy(set->paths[i].key, key, len);
		set->paths[i].len = len;
		set->n_paths++;
	}
	e->memo = (uint32_t)i + 1;
	return 0;
}

/* Recursion is bounded by the tree height the parser enforces. */
static int intern_paths(struct ag_policy_set *set, struct agp_expr *e)
{
	for (int i = 0; i < 3; i++)
		if (e->kid[i] && intern_paths(set, e->kid[i]))
			return -1;
	for (uint32_t i = 0; e->kids && i < e->n; i++)
		if (intern_paths(set, e->kids[i]))
			return -1;
	return e->kind == AGP_E_ATTR ? intern_path(set, e) : 0;
}

uint32_t agp_bucket_hash(uint8_t which, const struct agp_uid *uid)
{
	return uid->hash ^ (which * 0x9e3779b9u);
}

/* The `==` scope of pol shared by the fewest policies, or NULL. */
static const struct agp_scope *index_key(const struct agp_policy *pol, const uint32_t *count)
{
	const struct agp_scope *best = NULL;

	for (int k = 0; k < 3; k++) {
		const struct agp_scope *sc = &pol->scope[k];

		if (sc->op == AGP_SC_EQ && (!best || count[sc->memo] < count[best->memo]))
			best = sc;
	}
	return best;
}

/* Files each policy under its key (see struct ag_policy_set). */
static int build_index(struct ag_policy_set *set)
{
	uint32_t *count = calloc(set->n_scopes + 1, sizeof(*count));
	uint32_t *slot = calloc(set->n_scopes + 1, sizeof(*slot));
	size_t n_keys = 0, n_filed = 0, size = 1, next = 0;
	int ret = -1;

	set->n_words = (set->n + 63) / 64;
	set->rest = calloc(set->n_words + 1, sizeof(*set->rest));
	if (!count || !slot || !set->rest)
		goto out;
	for (size_t i = 0; i < set->n; i++)
		for (int k = 0; k < 3; k++)
			if (set->policies[i].scope[k].op == AGP_SC_EQ)
				count[set->policies[i].scope[k].memo]++;
	/* From here on count[] holds how many policies each key files. */
	for (size_t i = 0; i < set->n; i++) {
		const struct agp_scope *key = index_key(&set->policies[i], count);

		set->policies[i].key = key;
		if (!key)
			set->rest[i / 64] |= 1ull << (i % 64);
	}
	memset(count, 0, (set->n_scopes + 1) * sizeof(*count));
	for (size_t i = 0; i < set->n; i++) {
		const struct agp_scope *key = set->policies[i].key;

		if (key && !count[key->memo]++)
			n_keys++;
		n_filed += key != NULL;
	}
	if (!n_keys) {
		ret = 0;
		goto out;
	}
	while (size < 2 * n_keys)
		size *= 2;
	set->mask = size - 1;
	set->buckets = calloc(size, sizeof(*set->buckets));
	set->filed = calloc(n_filed, sizeof(*set->filed));
	if (!set->buckets || !set->filed)
		goto out;
	for (size_t i = 0; i < set->n; i++) {
		const struct agp_scope *key = set->policies[i].key;
		struct agp_bucket *b;
		size_t h;

		if (!key)
			continue;
		if (!slot[key->memo]) {
			h = agp_bucket_hash(key->which, &key->uid) & set->mask;
			while (set->buckets[h].scope)
				h = (h + 1) & set->mask;
			set->buckets[h] = (struct agp_bucket){ key, (uint32_t)next, 0 };
			next += count[key->memo];
			slot[key->memo] = (uint32_t)h + 1;
		}
		b = &set->buckets[slot[key->memo] - 1];
		set->filed[b->first + b->n++] = (uint32_t)i;
	}
	ret = 0;
out:
	free(count);
	free(slot);
	return ret;
}

/* Runs once every file is parsed: the scopes point into the policy array,
 * which moves while it grows. */
static int seal_set(struct ag_policy_set *set, struct ag_policy_error *err)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (!EVP_DigestFinal_ex(set->sha, md, &mdlen) || mdlen != 32) {
		agp_error(err, 0, 0, "policy set: cannot hash the policy text");
		return -1;
	}
	for (unsigned int i = 0; i < mdlen; i++)
		snprintf(set->digest + 2 * i, 3, "%02x", md[i]);
	EVP_MD_CTX_free(set->sha);
	set->sha = NULL;
	for (size_t i = 0; i < set->n; i++) {
		struct agp_policy *pol = &set->policies[i];

		for (int k = 0; k < 3; k++)
			if (intern_scope(set, &pol->scope[k]))
				goto oom;
		for (uint32_t k = 0; k < pol->n_conds; k++)
			if (intern_paths(set, pol->conds[k]))
				goto oom;
	}
	if (build_index(set))
		goto oom;
	return 0;
oom:
	agp_error(err, 0, 0, "policy set: out of memory");
	return -1;
}

/* One source into the set, hashed first so the digest covers what parsed. */
static int parse_source(struct ag_policy_set *set, const char *name, const char *idname,
			const char *text, size_t len, struct ag_policy_error *err)
{
	uint64_t n[2] = { strlen(idname), len };

	/* Lengths first: "a" + "bc" and "ab" + "c" must not hash alike. */
	if (!EVP_DigestUpdate(set->sha, n, sizeof(n)) ||
	    !EVP_DigestUpdate(set->sha, idname, n[0]) || !EVP_DigestUpdate(set->sha, text, len)) {
		agp_error(err, 0, 0, "%s: cannot hash the policy text", name);
		return -1;
	}
	return agp_parse_into(set, name, idname, text, len, err);
}

struct ag_policy_set *ag_policy_parse_text(const char *name, const char *text, size_t len,
					   struct ag_policy_error *err)
{
	struct ag_policy_set *set = set_new(err);

	if (set && (parse_source(set, name, name, text, len, err) || seal_set(set, err))) {
		ag_policy_set_free(set);
		return NULL;
	}
	return set;
}

static char *read_file(const char *path, size_t *len, struct ag_policy_error *err)
{
	struct ag_err e;
	char *buf;

	if (ag_read_file(path, AGP_MAX_FILE, &buf, len, &e)) {
		agp_error(err, 0, 0, "%s", e.msg);
		return NULL;
	}
	return buf;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_policy_file(const char *name)
{
	size_t n = strlen(name);

	return name[0] != '.' && n > 6 && !strcmp(name + n - 6, ".cedar");
}

/* Reads and parses one file into set; on failure set is freed and NULL returned. */
static struct ag_policy_set *add_file(struct ag_policy_set *set, const char *path, const char *name,
				      struct ag_policy_error *err)
{
	size_t len;
	char *text = read_file(path, &len, err);
	int ret = text ? parse_source(set, path, name, text, len, err) : -1;

	free(text);
	if (ret) {
		ag_policy_set_free(set);
		return NULL;
	}
	return set;
}

/* The set ready to decide, or NULL (freed) when it does not seal. */
static struct ag_policy_set *seal_or_free(struct ag_policy_set *set, struct ag_policy_error *err)
{
	if (set && seal_set(set, err)) {
		ag_policy_set_free(set);
		return NULL;
	}
	return set;
}

struct ag_policy_set *ag_policy_load_dir(const char *dir, struct ag_policy_error *err)
{
	struct ag_policy_set *set = NULL;
	char **names = NULL;
	size_t n = 0, cap = 0, i;
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d) {
		agp_error(err, 0, 0, "%s: cannot open policy directory: %s", dir, strerror(errno));
		return NULL;
	}
	while ((de = readdir(d))) {
		if (!is_policy_file(de->d_name))
			continue;
		if (ag_grow(&names, &cap, n + 1, sizeof(*names), 16, 0))
			goto oom;
		names[n] = strdup(de->d_name);
		if (!names[n])
			goto oom;
		n++;
	}
	closedir(d);
	d = NULL;
	qsort(names, n, sizeof(*names), cmp_names);
	set = set_new(err);
	for (i = 0; set && i < n; i++) {
		char *path;

		if (asprintf(&path, "%s/%s", dir, names[i]) < 0)
			goto oom;
		set = add_file(set, path, names[i], err);
		free(path);
	}
	set = seal_or_free(set, err);
	goto out;
oom:
	agp_error(err, 0, 0, "%s: out of memory listing policies", dir);
	ag_policy_set_free(set);
	set = NULL;
out:
	if (d)
		closedir(d);
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return set;
}

struct ag_policy_set *ag_policy_load_files(const char *const *paths, size_t n,
					   struct ag_policy_error *err)
{
	struct ag_policy_set *set = set_new(err);

	for (size_t i = 0; set && i < n; i++) {
		const char *slash = strrchr(paths[i], '/');

		set = add_file(set, paths[i], slash ? slash + 1 : paths[i], err);
	}
	return seal_or_free(set, err);
}

const char *ag_policy_digest(const struct ag_policy_set *set)
{
	return set->digest;
}

void ag_policy_set_free(struct ag_policy_set *set)
{
	if (!set)
		return;
	EVP_MD_CTX_free(set->sha);
	agp_arena_free(set->arena);
	free(set->policies);
	free(set->scopes);
	for (size_t i = 0; i < set->n_paths; i++)
		free(set->paths[i].key);
	free(set->paths);
	free(set->buckets);
	free(set->filed);
	free(set->rest);
	free(set);
}

size_t ag_policy_count(const struct ag_policy_set *set)
{
	return set->n;
}

const char *ag_policy_id(const struct ag_policy_set *set, size_t i)
{
	return i < set->n ? set->policies[i].id : NULL;
}

enum ag_effect ag_policy_effect(const struct ag_policy_set *set, size_t i)
{
	return i < set->n ? set->policies[i].effect : AG_FORBID;
}

const char *ag_policy_annotation(const struct ag_policy_set *set, size_t i, const char *name)
{
	if (i >= set->n)
		return NULL;
	for (uint32_t k = 0; k < set->policies[i].n_annots; k++)
		if (!strcmp(set->policies[i].annots[k].name, name))
			return set->policies[i].annots[k].value;
	return NULL;
}

/* Recursion is bounded by the tree height the parser enforces. */
static bool reads_context(const struct agp_expr *e, const char *attr, size_t alen)
{
	const struct agp_expr *k = e->kid[0];

	if (e->kind == AGP_E_VAR)
		return e->op == 3; /* context whole: it could be anything */
	if ((e->kind == AGP_E_ATTR || e->kind == AGP_E_HAS) && k && k->kind == AGP_E_VAR &&
	    k->op == 3)
		return e->nlen == alen && !memcmp(e->name, attr, alen);
	for (int i = 0; i < 3; i++)
		if (e->kid[i] && reads_context(e->kid[i], attr, alen))
			return true;
	for (uint32_t i = 0; e->kids && i < e->n; i++)
		if (reads_context(e->kids[i], attr, alen))
			return true;
	return false;
}

bool ag_policy_reads_context_at(const struct ag_policy_set *set, size_t i, const char *attr)
{
	for (uint32_t k = 0; i < set->n && k < set->policies[i].n_conds; k++)
		if (reads_context(set->policies[i].conds[k], attr, strlen(attr)))
			return true;
	return false;
}

bool ag_policy_reads_context(const struct ag_policy_set *set, const char *attr)
{
	for (size_t i = 0; i < set->n; i++)
		if (ag_policy_reads_context_at(set, i, attr))
			return true;
	return false;
}
