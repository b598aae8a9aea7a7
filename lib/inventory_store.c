// SPDX-License-Identifier: GPL-2.0
/*
 * The tool inventory's directory: one file per server, written atomically under
 * a flock, read strictly (see inventory.h).
 */
#include "fileio.h"
#include "inventory_int.h"

/* ---- persistence ---- */

static int dir_lock(struct ag_inventory *inv, struct ag_err *err)
{
	if (inv->held)
		return 0;
	while (flock(inv->dirfd, LOCK_EX))
		if (errno != EINTR)
			return ag_errf(err, errno, "%s: flock: %s", inv->dir, strerror(errno));
	return 0;
}

static void dir_unlock(struct ag_inventory *inv)
{
	if (!inv->held)
		flock(inv->dirfd, LOCK_UN);
}

int inv_def_put(json_t *obj, const char *key, const struct inv_def *d)
{
	if (d->hash[0] && json_object_set_new(obj, key, json_string(d->hash)))
		return -1;
	return 0;
}

static json_t *tool_json(const struct inv_tool *t)
{
	json_t *o = json_pack("{s:s,s:I}", "state", ag_tool_state_name(t->state), "first_seen",
			      (json_int_t)t->first_seen);
	int bad = !o;

	if (!bad && t->trusted.hash[0])
		bad = inv_def_put(o, "hash", &t->trusted);
	if (!bad && t->trusted.def)
		bad = json_object_set(o, "definition", t->trusted.def);
	if (!bad && t->approved_by)
		bad = json_object_set_new(o, "approved_at", json_integer(t->approved_at)) ||
		      json_object_set_new(o, "approved_by", json_string(t->approved_by));
	if (!bad && t->offered.hash[0])
		bad = json_object_set_new(o, "offered",
					  json_pack("{s:s,s:O,s:I}", "hash", t->offered.hash,
						    "definition", t->offered.def, "seen_at",
						    (json_int_t)t->offered_at));
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static char *server_text(const struct inv_server *s)
{
	json_t *tools = json_object(), *root;
	char *text = NULL;
	size_t i;

	for (i = 0; tools && i < s->n; i++)
		if (json_object_set_new(tools, s->tools[i].name, tool_json(&s->tools[i])))
			break;
	if (!tools || i < s->n) {
		json_decref(tools);
		return NULL;
	}
	root = json_pack("{s:i,s:s,s:o}", "version", 1, "server", s->name, "tools", tools);
	if (root)
		text = json_dumps(root, JSON_INDENT(1) | JSON_SORT_KEYS);
	json_decref(root);
	return text;
}

/* DIR/<server>.json through a temporary file and a rename, then the directory synced:
 * after a crash readers see the old or the new file, never a mix. */
int inv_server_write(struct ag_inventory *inv, const struct inv_server *s, struct ag_err *err)
{
	char name[AG_INV_SERVER_MAX + 16], *text;
	size_t len;
	int ret;

	snprintf(name, sizeof(name), "%s" FILE_SUFFIX, s->name);
	text = server_text(s);
	if (!text)
		return ag_errf(err, ENOMEM, "%s/%s: out of memory", inv->dir, name);
	len = strlen(text);
	text[len++] = '\n'; /* over the NUL: text is written by length */
	/* Never write what the next load would refuse. */
	if (len > AG_INV_FILE_MAX) {
		free(text);
		return ag_errf(err, E2BIG, "%s/%s: would be larger than %d bytes", inv->dir, name,
			       AG_INV_FILE_MAX);
	}
	ret = dir_lock(inv, err);
	if (ret) {
		free(text);
		return ret;
	}
	ret = ag_file_write_atomic_at(inv->dirfd, inv->dir, name, text, len, 0600, err);
	dir_unlock(inv);
	free(text);
	return ret;
}

/*
 * Puts next (moved in) in the place of *t, or inserts it when t is NULL,
 * and writes the server's file; a failed write restores the previous state.
 */
int inv_commit(struct ag_inventory *inv, struct inv_server *s, struct inv_tool *t,
	       struct inv_tool *next, struct ag_err *err)
{
	struct inv_tool prev;
	int ret;

	if (!t) {
		ret = inv_server_insert(s, next, &t, err);
		if (ret) {
			inv_tool_release(next);
			return ret;
		}
		ret = inv_server_write(inv, s, err);
		if (ret)
			inv_server_remove(s, t);
		return ret;
	}
	prev = *t;
	*t = *next;
	memset(next, 0, sizeof(*next));
	ret = inv_server_write(inv, s, err);
	if (ret) {
		inv_tool_release(t);
		*t = prev;
	} else {
		inv_tool_release(&prev);
	}
	return ret;
}

/* ---- loading ---- */

/* The first member of obj not in keys, or NULL. */
static const char *unknown_key(const json_t *obj, const char *const *keys, size_t n)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)obj, k, v)
	{
		size_t i;

		for (i = 0; i < n && strcmp(k, keys[i]); i++)
			;
		if (i == n)
			return k;
	}
	return NULL;
}

/* A stored definition: its canonical hash must be hash, its name the tool's. */
static int load_def(const char *label, const json_t *v, const char *hash, const char *name,
		    struct inv_def *out, struct ag_err *err)
{
	int ret;

	if (!json_is_object(v))
		return ag_errf(err, EINVAL, "%s: an object expected", label);
	ret = inv_def_from_tool(label, v, out, err);
	if (ret)
		return ret;
	if (strcmp(out->hash, hash)) {
		inv_def_release(out);
		return ag_errf(err, EINVAL, "%s: hashes to %s, not to the recorded hash", label,
			       out->hash);
	}
	if (strcmp(inv_jstr(json_object_get(out->def, "name")), name)) {
		inv_def_release(out);
		return ag_errf(err, EINVAL, "%s: its name is not the tool's", label);
	}
	return 0;
}

static bool get_time(const json_t *v, int64_t *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*out = json_integer_value(v);
	return true;
}

static int load_tool(const char *path, const char *name, const json_t *o, struct inv_tool *t,
		     struct ag_err *err)
{
	static const char *const keys[] = { "state",	  "hash",	 "definition",
					    "first_seen", "approved_at", "approved_by",
					    "offered" };
	static const char *const okeys[] = { "hash", "definition", "seen_at" };
	const json_t *hash = json_object_get(o, "hash"), *def = json_object_get(o, "definition");
	const json_t *off = json_object_get(o, "offered"), *by = json_object_get(o, "approved_by");
	const json_t *at = json_object_get(o, "approved_at");
	char label[LABEL_MAX + 64];
	const char *k;
	int ret = 0;

	memset(t, 0, sizeof(*t));
	snprintf(label, sizeof(label), "%s: tools.%s", path, name);
	if (!json_is_object(o))
		return ag_errf(err, EINVAL, "%s: an object expected", label);
	if ((k = unknown_key(o, keys, AG_ARRAY_SIZE(keys))))
		return ag_errf(err, EINVAL, "%s.%s: unknown member", label, k);
	if (inv_state_parse(json_string_value(json_object_get(o, "state")), &t->state))
		return ag_errf(err, EINVAL, "%s.state: trusted, pending or blocked expected",
			       label);
	if ((t->state == AG_TOOL_PENDING) != !hash)
		return ag_errf(err, EINVAL, "%s.hash: %s for a %s tool", label,
			       hash ? "unexpected" : "missing", ag_tool_state_name(t->state));
	if (hash && !inv_is_hash(inv_jstr(hash)))
		return ag_errf(err, EINVAL, "%s.hash: 64 lowercase hex digits expected", label);
	if ((t->state == AG_TOOL_TRUSTED) == !!off)
		return ag_errf(err, EINVAL, "%s.offered: %s for a %s tool", label,
			       off ? "unexpected" : "missing", ag_tool_state_name(t->state));
	if (!get_time(json_object_get(o, "first_seen"), &t->first_seen))
		return ag_errf(err, EINVAL, "%s.first_seen: a unix time expected", label);
	if (!by != !at)
		return ag_errf(err, EINVAL, "%s: approved_at and approved_by go together", label);
	if (at && !get_time(at, &t->approved_at))
		return ag_errf(err, EINVAL, "%s.approved_at: a unix time expected", label);
	if (by && (!json_is_string(by) || json_string_length(by) > AG_INV_BY_MAX ||
		   strlen(json_string_value(by)) != json_string_length(by)))
		return ag_errf(err, EINVAL, "%s.approved_by: a string of up to %d bytes expected",
			       label, AG_INV_BY_MAX);
	if (!(t->name = strdup(name)) || (by && !(t->approved_by = strdup(json_string_value(by)))))
		return ag_errf(err, ENOMEM, "%s: out of memory", label);
	if (hash)
		memcpy(t->trusted.hash, json_string_value(hash), HEX_LEN + 1);
	if (t->state == AG_TOOL_TRUSTED && !def)
		return ag_errf(err, EINVAL, "%s.definition: missing for a trusted tool", label);
	if (def && !hash)
		return ag_errf(err, EINVAL, "%s.definition: unexpected for a pending tool", label);
	if (def) {
		char dl[LABEL_MAX + 128];

		snprintf(dl, sizeof(dl), "%s.definition", label);
		if ((ret = load_def(dl, def, json_string_value(hash), name, &t->trusted, err)))
			return ret;
	}
	if (off) {
		const json_t *oh = json_object_get(off, "hash");
		char dl[LABEL_MAX + 128];

		if (!json_is_object(off))
			return ag_errf(err, EINVAL, "%s.offered: an object expected", label);
		if ((k = unknown_key(off, okeys, AG_ARRAY_SIZE(okeys))))
			return ag_errf(err, EINVAL, "%s.offered.%s: unknown member", label, k);
		if (!inv_is_hash(inv_jstr(oh)))
			return ag_errf(err, EINVAL,
				       "%s.offered.hash: 64 lowercase hex digits expected", label);
		if (!strcmp(json_string_value(oh), t->trusted.hash))
			return ag_errf(err, EINVAL,
				       "%s.offered.hash: the trusted hash, not another", label);
		if (!get_time(json_object_get(off, "seen_at"), &t->offered_at))
			return ag_errf(err, EINVAL, "%s.offered.seen_at: a unix time expected",
				       label);
		snprintf(dl, sizeof(dl), "%s.offered.definition", label);
		ret = load_def(dl, json_object_get(off, "definition"), json_string_value(oh), name,
			       &t->offered, err);
	}
	return ret;
}

/*
 * A versioned document of ours (a server file, the lock file): parsed
 * strictly, an object with only the given members, version 1, and a
 * "tools" object of at most max_tools entries.  *root is the caller's.
 */
int inv_load_doc(const char *path, const char *text, size_t len, size_t flags,
		 const char *const *keys, size_t nkeys, size_t max_tools, json_t **root,
		 const json_t **tools, struct ag_err *err)
{
	json_error_t jerr;
	const char *k;
	int ret = 0;

	*root = json_loadb(text, len, JSON_REJECT_DUPLICATES | flags, &jerr);
	if (!*root)
		return ag_errf(err, EINVAL, "%s: line %d: %s", path, jerr.line, jerr.text);
	*tools = json_object_get(*root, "tools");
	if (!json_is_object(*root))
		ret = ag_errf(err, EINVAL, "%s: an object expected", path);
	else if ((k = unknown_key(*root, keys, nkeys)))
		ret = ag_errf(err, EINVAL, "%s: %s: unknown member", path, k);
	else if (!json_is_integer(json_object_get(*root, "version")) ||
		 json_integer_value(json_object_get(*root, "version")) != 1)
		ret = ag_errf(err, EINVAL, "%s: version: 1 expected", path);
	else if (!json_is_object(*tools) || json_object_size(*tools) > max_tools)
		ret = ag_errf(err, EINVAL, "%s: tools: an object of up to %zu entries expected",
			      path, max_tools);
	if (ret) {
		json_decref(*root);
		*root = NULL;
	}
	return ret;
}

static int load_server(struct ag_inventory *inv, const char *file, struct ag_err *err)
{
	static const char *const keys[] = { "version", "server", "tools" };
	char path[LABEL_MAX], server[AG_INV_SERVER_MAX + 1], *text;
	size_t flen = strlen(file) - strlen(FILE_SUFFIX), len = 0, i = 0;
	const json_t *tools, *v;
	struct inv_server *s;
	json_t *root;
	const char *k;
	int ret;

	snprintf(path, sizeof(path), "%s/%s", inv->dir, file);
	if (flen > AG_INV_SERVER_MAX)
		return ag_errf(err, EINVAL, "%s: server name longer than %d bytes", path,
			       AG_INV_SERVER_MAX);
	memcpy(server, file, flen);
	server[flen] = '\0';
	if ((ret = ag_inventory_check_server(server, err)))
		return inv_err_wrap(err, ret, path);
	if ((ret = ag_file_read_at(inv->dirfd, inv->dir, file, AG_FILE_NOFOLLOW, AG_INV_FILE_MAX,
				   &text, &len, err)))
		return ret;
	ret = inv_load_doc(path, text, len, JSON_ALLOW_NUL, keys, AG_ARRAY_SIZE(keys),
			   AG_INV_MAX_TOOLS, &root, &tools, err);
	free(text);
	if (ret)
		return ret;
	if (strcmp(inv_jstr(json_object_get(root, "server")), server))
		ret = ag_errf(err, EINVAL, "%s: server: \"%s\" expected, as the file name says",
			      path, server);
	if (!ret && inv_server_find(inv, server))
		ret = ag_errf(err, EINVAL, "%s: server %s loaded twice", path, server);
	if (!ret)
		ret = inv_server_get(inv, server, &s, err);
	if (ret) {
		json_decref(root);
		return ret;
	}
	s->tools = calloc(json_object_size(tools) + 1, sizeof(*s->tools));
	if (!s->tools) {
		json_decref(root);
		return ag_errf(err, ENOMEM, "%s: out of memory", path);
	}
	s->cap = json_object_size(tools) + 1;
	json_object_foreach((json_t *)tools, k, v)
	{
		ret = inv_check_tool_name(server, k, strlen(k), err);
		if (ret)
			ret = inv_err_wrap(err, ret, path);
		else
			ret = load_tool(path, k, v, &s->tools[i], err);
		/* A partly loaded tool is released with the server. */
		s->n = ++i;
		if (ret)
			break;
	}
	json_decref(root);
	if (!ret)
		qsort(s->tools, s->n, sizeof(*s->tools), inv_tool_sort_cmp);
	return ret;
}

static int load_dir(struct ag_inventory *inv, struct ag_err *err)
{
	int fd = dup(inv->dirfd), ret = 0;
	struct dirent *de;
	DIR *d;

	d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		ret = ag_errf(err, errno, "%s: opendir: %s", inv->dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return ret;
	}
	errno = 0;
	while (!ret && (de = readdir(d))) {
		size_t len = strlen(de->d_name);

		/* Dot files are ours in flight (.S.json.tmp) or nobody's. */
		if (de->d_name[0] == '.' || len <= strlen(FILE_SUFFIX) ||
		    strcmp(de->d_name + len - strlen(FILE_SUFFIX), FILE_SUFFIX))
			continue;
		ret = load_server(inv, de->d_name, err);
		errno = 0;
	}
	if (!ret && errno)
		ret = ag_errf(err, errno, "%s: readdir: %s", inv->dir, strerror(errno));
	closedir(d);
	return ret;
}

static int inv_open(const char *dir, bool held, struct ag_inventory **out, struct ag_err *err)
{
	struct ag_inventory *inv;
	int ret = 0;

	*out = NULL;
	inv = calloc(1, sizeof(*inv));
	if (!inv || !(inv->dir = strdup(dir))) {
		free(inv);
		return ag_errf(err, ENOMEM, "%s: out of memory", dir);
	}
	inv->dirfd = -1;
	if (!mkdir(dir, 0700)) {
		/* Created here: the umask does not decide who reads it. */
		if (chmod(dir, 0700))
			ret = ag_errf(err, errno, "%s: chmod: %s", dir, strerror(errno));
	} else if (errno != EEXIST) {
		ret = ag_errf(err, errno, "%s: mkdir: %s", dir, strerror(errno));
	}
	if (!ret) {
		inv->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (inv->dirfd < 0)
			ret = ag_errf(err, errno, "%s: open: %s", dir, strerror(errno));
	}
	if (!ret && held)
		ret = dir_lock(inv, err);
	inv->held = held && !ret;
	if (!ret)
		ret = load_dir(inv, err);
	if (ret) {
		ag_inventory_free(inv);
		return ret;
	}
	*out = inv;
	return 0;
}

int ag_inventory_open(const char *dir, struct ag_inventory **out, struct ag_err *err)
{
	return inv_open(dir, false, out, err);
}

int ag_inventory_open_locked(const char *dir, struct ag_inventory **out, struct ag_err *err)
{
	return inv_open(dir, true, out, err);
}

void ag_inventory_free(struct ag_inventory *inv)
{
	if (!inv)
		return;
	for (size_t i = 0; i < inv->nservers; i++)
		inv_server_release(&inv->servers[i]);
	free(inv->servers);
	inv_pins_release(inv->pins, inv->npins);
	if (inv->dirfd >= 0)
		close(inv->dirfd); /* drops the flock when held */
	free(inv->dir);
	free(inv);
}
